/* config.h: broker configuration from defaults, a key=value file, SLUICE_* environment
 * variables and command-line flags, applied in that order. */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

struct config {
    char data_dir[1024];
    char kafka_listen[256];     /* host:port */
    char admin_listen[256];
    char advertised[256];       /* host:port clients are told to use */
    char config_file[1024];
    int log_level;
    int32_t node_id;
    char cluster_id[64];
    int64_t max_request_bytes;     /* frames above this close the connection */
    int64_t max_response_bytes;    /* responses are cut to fit */
    int64_t conn_output_limit;     /* stop reading a connection whose output exceeds this */
    int32_t max_inflight_requests; /* per connection */
    int32_t max_connections;
    bool auto_create_topics;
    int32_t default_partitions;
    int64_t default_retention_ms;
    int64_t default_retention_bytes;
    int32_t default_max_message_bytes;
    int64_t retention_check_ms;
    int64_t group_commit_max_wait_us; /* acks=all waits at most this for company */
    int64_t wal_segment_bytes;        /* size of one write-ahead log segment file */
    int64_t memory_partition_max_bytes; /* memory topics: cap when retention.bytes is -1 */
    int64_t hybrid_hot_bytes;           /* hybrid topics: in-memory tail per partition */
    int64_t max_topics;                 /* 0: no limit */
    int64_t topic_idle_ms;              /* unused this long, a topic leaves memory */
    /* consumer groups */
    int32_t group_initial_rebalance_delay_ms; /* an Empty group's first join waits this */
    int32_t group_min_session_timeout_ms;
    int32_t group_max_session_timeout_ms;
    int32_t group_max_size;                   /* members per group */
    int64_t offsets_retention_minutes;        /* offsets of an empty group live this long */
    int64_t offsets_retention_check_ms;
    int32_t offset_metadata_max_bytes;
    /* dataset block cache */
    int64_t cache_memory_bytes; /* memory tier budget */
    int64_t cache_disk_bytes;   /* disk tier budget; 0: no disk tier */
    char cache_disk_dir[1024];  /* empty: <data-dir>/cache */
    int64_t cache_block_bytes;  /* an object is read in blocks of this size */
    /* tiered storage (tiered.h): where old segments go, and how */
    char tiered_s3_uri[512];        /* s3://bucket/prefix; empty: storage.mode tiered refused */
    char tiered_s3_endpoint[256];   /* empty: AWS */
    char tiered_s3_region[64];
    char tiered_s3_access_key[128]; /* empty: $AWS_ACCESS_KEY_ID */
    char tiered_s3_secret_key[256]; /* empty: $AWS_SECRET_ACCESS_KEY */
    int64_t tiered_local_retention_ms;    /* topic default of local.retention.ms */
    int64_t tiered_local_retention_bytes; /* topic default of local.retention.bytes */
    int64_t tiered_segment_bytes; /* largest segment object uploaded */
    int64_t tiered_read_bytes;    /* a segment is read back in ranged GETs of about this */
    int64_t tiered_check_ms;      /* how often partitions are checked for uploads */
    int64_t tiered_cache_bytes;   /* memory for segment bytes read back */
    /* listeners and security (conn.c, tls.c, kapi_sasl.c, acl.c) */
    char listeners[1024];           /* NAME://host:port,...; empty: PLAINTEXT on kafka.listen */
    char advertised_listeners[1024]; /* NAME://host:port,... */
    char listener_protocol_map[512]; /* NAME:PROTOCOL,...; for names that are not protocols */
    char ssl_cert_file[1024];
    char ssl_key_file[1024];
    char ssl_ca_file[1024];
    char ssl_client_auth[16];       /* none | requested | required */
    char ssl_protocol_min[16];      /* TLSv1.2 | TLSv1.3 */
    char ssl_principal[8];          /* cn | dn: what of a client certificate names its user */
    char sasl_mechanisms[128];      /* enabled: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 */
    int32_t sasl_scram_iterations;
    int64_t sasl_max_receive_bytes; /* frame limit before authentication */
    int64_t sasl_auth_timeout_ms;   /* a connection must authenticate within this */
    int64_t sasl_session_lifetime_ms; /* KIP-368: re-authenticate within this; 0: never */
    int32_t failed_auth_delay_ms;   /* a failed authentication is answered after this */
    int32_t failed_auth_per_ip;     /* failures per minute from one IP before refusing */
    char authorizer[16];            /* "" | none | acl */
    char super_users[1024];         /* User:a;User:b */
    char admin_token[256];          /* bearer token for the admin API; empty: none */
    bool admin_ssl;                 /* TLS on the admin listener, with the ssl.* files */
    char admin_ssl_client_auth[16]; /* none | requested | required */
    int32_t max_connections_per_ip; /* 0: no limit */
    int64_t connections_max_idle_ms; /* an idle connection is closed after this */
    int64_t request_read_timeout_ms; /* a frame must arrive whole within this */
    int64_t quota_produce_bps;      /* per principal, bytes/s; 0: none */
    int64_t quota_fetch_bps;
};

/* Fills in the defaults. */
void config_defaults(struct config *c);
/* Sets one key (dotted Kafka style, e.g. "auto.create.topics.enable") from a string.
 * Returns 0, or -1 with a message in err for an unknown key or a bad value. */
int config_set(struct config *c, const char *key, const char *val, char *err, int errlen);
/* Reads key=value lines ('#' comments). Returns 0 or -1 with err set. */
int config_load_file(struct config *c, const char *path, char *err, int errlen);
/* Applies SLUICE_<KEY> variables: the key upper-cased with '.' and '-' as '_'. */
int config_load_env(struct config *c, char *err, int errlen);
/* Applies argv flags; --help prints usage and returns 1. */
int config_load_args(struct config *c, int argc, char **argv, char *err, int errlen);

/* Splits "host:port"; returns 0 or -1. */
int config_split_hostport(const char *s, char *host, int hostlen, int *port);

#endif
