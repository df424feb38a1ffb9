/* topic.h: the topic registry and partition logs. A topic is one record in the topics
 * column family plus a compact entry here; partition runtime state is built on first
 * use. Everything here runs on the event loop thread. */
#ifndef SLUICE_TOPIC_H
#define SLUICE_TOPIC_H

#include "kcodec.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct broker;
struct kc_writer;

enum storage_mode { MODE_MEMORY = 0, MODE_HYBRID, MODE_PERSISTENT, MODE_TIERED };

#define TOPIC_NAME_MAX 249
#define TOPIC_MAX_PARTITIONS 100000

/* Typed view of the settings the broker acts on. The full set of configs, including
 * ones only stored and shown, is kept as strings in the topic's config list. */
struct topic_config {
    int64_t retention_ms;    /* -1: keep forever */
    int64_t retention_bytes; /* per partition; -1: unbounded */
    int32_t max_message_bytes;
    int mode;                /* enum storage_mode */
    bool flush_interval;     /* flush.policy=interval: acks=all does not wait for fsync */
    int64_t flush_ms;
    int64_t local_retention_ms;    /* tiered: older data goes to S3; -1: never by age */
    int64_t local_retention_bytes; /* tiered: local bytes beyond this go to S3; -1: none */
};

struct topic_kv {
    char *key;
    char *value;
};

struct pwait; /* a parked fetch waiting on a partition; owned by the fetch module */

/* One idempotent producer's recent batches on one partition (Kafka keeps five). */
#define PID_BATCHES 5
struct pid_batch {
    int32_t first_seq, last_seq;
    int64_t base_offset;
};
struct pid_state {
    struct pid_state *next;
    int64_t producer_id;
    int16_t epoch;
    int n; /* valid entries in b, newest last */
    struct pid_batch b[PID_BATCHES];
};

struct partition {
    struct topic *topic;
    int32_t id;
    int64_t log_start;  /* first offset a reader can get */
    int64_t hwm;        /* next offset to assign == high watermark on one broker */
    int64_t bytes;      /* bytes held in the log */
    int64_t appends;    /* batches appended since load, for metrics */
    struct pid_state *pids;
    struct pwait *waiters; /* parked fetches to wake on append */
    struct mlog *mem;      /* memory: the log; hybrid: the hot window; else NULL */
    int64_t last_used_us;  /* idle partitions are unloaded */
    struct tpart *tier;    /* tiered: remote segments and the local start (tiered.h) */
};

struct topic {
    struct topic *next_name, *next_id; /* hash chains */
    char *name;
    uint8_t id[16];
    int32_t partitions;
    int64_t created_ms;
    struct topic_config cfg;
    struct topic_kv *kv; /* every config explicitly set, sorted by key */
    int nkv;
    struct partition **parts; /* [partitions], NULL until first use */
    uint64_t bytes_in, bytes_out, msgs_in; /* metrics, since the topic was loaded */
    int64_t last_used_us;
};

/* Kafka error codes used across modules (int16 on the wire). */
enum kerr {
    KERR_NONE = 0,
    KERR_UNKNOWN_SERVER = -1,
    KERR_OFFSET_OUT_OF_RANGE = 1,
    KERR_CORRUPT_MESSAGE = 2,
    KERR_UNKNOWN_TOPIC_OR_PARTITION = 3,
    KERR_INVALID_FETCH_SIZE = 4,
    KERR_LEADER_NOT_AVAILABLE = 5,
    KERR_NOT_LEADER = 6,
    KERR_REQUEST_TIMED_OUT = 7,
    KERR_MESSAGE_TOO_LARGE = 10,
    KERR_INVALID_TOPIC = 17,
    KERR_RECORD_LIST_TOO_LARGE = 18,
    KERR_INVALID_REQUIRED_ACKS = 21,
    KERR_TOPIC_AUTHORIZATION_FAILED = 29,
    KERR_GROUP_AUTHORIZATION_FAILED = 30,
    KERR_CLUSTER_AUTHORIZATION_FAILED = 31,
    KERR_UNSUPPORTED_SASL_MECHANISM = 33,
    KERR_ILLEGAL_SASL_STATE = 34,
    KERR_SECURITY_DISABLED = 54,
    KERR_SASL_AUTHENTICATION_FAILED = 58,
    KERR_UNSUPPORTED_FOR_MESSAGE_FORMAT = 43,
    KERR_INVALID_REQUEST = 42,
    KERR_UNSUPPORTED_VERSION = 35,
    KERR_TOPIC_ALREADY_EXISTS = 36,
    KERR_INVALID_PARTITIONS = 37,
    KERR_INVALID_REPLICATION_FACTOR = 38,
    KERR_INVALID_REPLICA_ASSIGNMENT = 39,
    KERR_INVALID_CONFIG = 40,
    KERR_POLICY_VIOLATION = 44,
    KERR_OUT_OF_ORDER_SEQUENCE_NUMBER = 45,
    KERR_DUPLICATE_SEQUENCE_NUMBER = 46,
    KERR_INVALID_PRODUCER_EPOCH = 47,
    KERR_KAFKA_STORAGE_ERROR = 56,
    KERR_UNKNOWN_PRODUCER_ID = 59,
    KERR_INVALID_TIMESTAMP = 32,
    KERR_UNKNOWN_TOPIC_ID = 100,
    KERR_INVALID_RECORD = 87,
    KERR_RESOURCE_NOT_FOUND = 91,
    KERR_INCONSISTENT_TOPIC_ID = 103,
};

struct topics;

struct topics *topics_new(struct broker *b);
void topics_free(struct topics *ts);
/* Reads the topic count and starts the idle sweep; topics themselves load on first
 * use. Returns 0 or -1. */
int topics_load(struct topics *ts);
/* Topics in the store, and topics resident in memory. */
size_t topics_count(const struct topics *ts);
size_t topics_loaded(const struct topics *ts);
/* Unloads partitions and topics unused since before_us (never memory logs or
 * partitions with parked fetches). Runs from a timer; exposed for tests. */
void topics_evict_idle(struct topics *ts, int64_t before_us);
struct broker *topics_broker(const struct topics *ts);
/* A cleared write batch owned by the registry, reused by every append so that its
 * buffer stops growing (and copying) once it has reached the request size. */
struct store_wb *topics_scratch_wb(struct topics *ts);

struct topic *topic_find(struct topics *ts, const char *name, size_t len);
struct topic *topic_find_id(struct topics *ts, const uint8_t id[16]);

/* Checks a name against Kafka's rules: 1..249 chars of [a-zA-Z0-9._-], not "." or "..".
 * Returns KERR_NONE or KERR_INVALID_TOPIC. */
int topic_name_check(const char *name, size_t len);

/* A list of config key/values to validate and apply at create or alter time. */
struct topic_cfg_change {
    const char *key;
    size_t key_len;
    const char *value; /* NULL: reset to default */
    size_t value_len;
};

/* Creates a topic. validate_only checks everything and creates nothing. On error
 * returns a Kafka error code and writes a message into msg. */
int topic_create(struct topics *ts, const char *name, size_t len, int32_t partitions,
                 const struct topic_cfg_change *cfg, int ncfg, bool validate_only,
                 struct topic **out, char *msg, size_t msglen);
/* Deletes the topic and all its data. */
int topic_delete(struct topics *ts, struct topic *t);
/* Grows the partition count. */
int topic_add_partitions(struct topics *ts, struct topic *t, int32_t count, bool validate_only,
                         char *msg, size_t msglen);
/* Applies config changes. incremental: only the named keys change; otherwise the full
 * set is replaced (AlterConfigs semantics). */
int topic_alter_config(struct topics *ts, struct topic *t, const struct topic_cfg_change *ch,
                       int n, bool incremental, bool validate_only, char *msg, size_t msglen);

/* Describes every config the topic has: explicitly set ones and defaults. fn is called
 * with is_default set for values that come from broker defaults. */
typedef void topic_config_fn(void *arg, const char *key, const char *value, bool is_default,
                             bool read_only);
void topic_config_describe(struct topics *ts, const struct topic *t, topic_config_fn *fn,
                           void *arg);
/* The explicitly set value of config key, or NULL. */
const char *topic_config_get(const struct topic *t, const char *key);
/* The name of a storage mode, and back; -1 for an unknown name. */
const char *topic_mode_name(int mode);
int topic_mode_parse(const char *s, size_t len);

/* Paged, sorted listing straight from the store: calls fn for up to limit topics whose
 * name starts with prefix and sorts after `after`. Returns how many were listed and sets
 * *more when there are further topics. */
typedef void topic_list_fn(void *arg, struct topic *t);
int topics_list(struct topics *ts, const char *prefix, const char *after, int limit,
                topic_list_fn *fn, void *arg, bool *more);

/* A free-standing copy of a stored topic record (not resident, parts NULL), for code
 * off the loop; thread-safe. Free it with topic_release. */
struct topic *topic_parse_record(struct topics *ts, const char *name, size_t nl, const char *v,
                                 size_t vl);
void topic_release(struct topic *t);

/* Calls fn for every topic in the store, in name order, without making them resident
 * (fn must not keep the pointer). O(topics): only for the all-topics Metadata. Returns
 * how many were visited. */
size_t topics_scan(struct topics *ts, topic_list_fn *fn, void *arg);

/* Calls fn for every resident topic (metrics); O(resident), never on a request path. */
void topics_foreach(struct topics *ts, topic_list_fn *fn, void *arg);

/* Returns the runtime state of partition p, loading it on first use; NULL when p is out
 * of range or the store fails. */
struct partition *topic_partition(struct topics *ts, struct topic *t, int32_t p);

/* --- partition log --- */

/* Appends the record batches in buf (len bytes, one or more v2 batches, mutable: the
 * broker rewrites baseOffset). Validates everything first, so a rejected request
 * appends nothing. On success sets *base_offset (-1 for an all-duplicate request) and
 * *log_append_ms. Returns a Kafka error code. flush is applied by the caller. */
int plog_append(struct topics *ts, struct partition *p, uint8_t *buf, size_t len,
                int64_t *base_offset, char *msg, size_t msglen);

/* Copies whole batches starting with the one that holds offset into w, up to max_bytes,
 * but at least one batch when must_return_one is set (KIP-74). Sets *copied. */
int plog_read(struct topics *ts, struct partition *p, int64_t offset, int64_t max_bytes,
              bool must_return_one, struct kc_writer *w, int64_t *copied);

/* The first offset whose batch max timestamp is >= ts, or -1 when none. */
int64_t plog_offset_for_time(struct topics *ts, struct partition *p, int64_t ts_ms,
                             int64_t *found_ts);

/* Moves the log start forward to offset (DeleteRecords and retention). Returns a Kafka
 * error code. offset may equal hwm; -1 means hwm. */
int plog_truncate_before(struct topics *ts, struct partition *p, int64_t offset);

/* Finds where a truncation to offset cuts the log: the base offset of the first batch
 * that survives (-1: none) and the bytes of the batches before it. Reads only through
 * st, so the retention worker can call it off the loop. Returns 0 or -1. */
struct store;
int plog_cut_point(struct store *st, const struct partition *p, int64_t offset,
                   int64_t *cut_base, int64_t *freed);
/* Reads a partition's stored log start and byte count straight from the store (any
 * thread). Returns 0 (zeros when nothing is stored) or -1. */
int plog_stored_state(struct store *st, const uint8_t topic_id[16], int32_t partition,
                      int64_t *log_start, int64_t *bytes);
/* Deletes the batches before cut_base and moves the log start to new_start. */
int plog_apply_cut(struct topics *ts, struct partition *p, int64_t new_start, int64_t cut_base,
                   int64_t freed);

/* plog_apply_cut with the caller's write batch wb, which may already hold writes that
 * must land atomically with the cut (tiered: the manifest record). Writes wb; the
 * caller frees it. */
struct store_wb;
int plog_apply_cut_wb(struct topics *ts, struct partition *p, int64_t new_start,
                      int64_t cut_base, int64_t freed, struct store_wb *wb);

/* Frees a partition's runtime state. */
void plog_free(struct partition *p);
/* Whether an acks=all answer on t must wait for the WAL fsync (persistent topics with
 * flush.policy=batch; memory and hybrid topics never write a WAL). */
bool plog_needs_fsync(const struct topic *t);
/* Applies retention.ms to a memory partition (its log is not in the store). */
void plog_retain_memory(struct partition *p, int64_t now_ms);

/* Called after an append so parked fetches can look again; implemented by fetch. */
void fetch_wake_partition(struct broker *b, struct partition *p);

#endif
