/* kafka.h: the Kafka protocol layer. One table keyed by API key holds each API's
 * version range, first flexible version and handler; ApiVersions is built from it. */
#ifndef SLUICE_KAFKA_H
#define SLUICE_KAFKA_H

#include "kcodec.h"

#include <stdbool.h>
#include <stdint.h>

struct broker;
struct conn;
struct kslot;

struct kreq {
    struct broker *b;
    struct conn *conn;
    struct kslot *slot;   /* where the response goes */
    int16_t api_key, api_version;
    int32_t correlation_id;
    kc_str client_id;
    bool flexible;
    kc_reader r;          /* positioned at the request body */
    uint8_t *frame;       /* the whole request (after the size prefix); mutable */
    size_t frame_len;
};

/* Handler results. */
enum {
    KAPI_DONE = 0,     /* the response body is in w */
    KAPI_DEFER = 1,    /* the slot completes later through kslot_complete() */
    KAPI_NORESP = 2,   /* no response (Produce with acks=0) */
    KAPI_EPARSE = -1,  /* malformed request: log once and close the connection */
};

typedef int kapi_fn(struct kreq *req, kc_writer *w);

struct kapi {
    const char *name;
    int16_t min, max, flex_min; /* flex_min -1: never flexible */
    kapi_fn *fn;
};

enum { KAPI_MAX_KEY = 90 };

/* The handler table; entries with fn == NULL are not served. */
extern const struct kapi kapi_table[KAPI_MAX_KEY];

/* Handles one complete frame (without its size prefix) for c, filling slot. Returns
 * KAPI_* as above; KAPI_EPARSE means close the connection. */
int kafka_handle(struct broker *b, struct conn *c, struct kslot *slot, uint8_t *frame,
                 size_t len);

/* Handlers, one file per family. */
kapi_fn kapi_api_versions, kapi_metadata, kapi_describe_cluster;
kapi_fn kapi_produce, kapi_init_producer_id;
kapi_fn kapi_fetch, kapi_list_offsets;
kapi_fn kapi_create_topics, kapi_delete_topics, kapi_create_partitions, kapi_delete_records;
kapi_fn kapi_describe_configs, kapi_alter_configs, kapi_incremental_alter_configs;
kapi_fn kapi_find_coordinator, kapi_join_group, kapi_sync_group, kapi_heartbeat,
    kapi_leave_group;
kapi_fn kapi_offset_commit, kapi_offset_fetch, kapi_describe_groups, kapi_list_groups,
    kapi_delete_groups, kapi_offset_delete;
kapi_fn kapi_sasl_handshake, kapi_sasl_authenticate;
kapi_fn kapi_describe_acls, kapi_create_acls, kapi_delete_acls;
kapi_fn kapi_share_group_heartbeat, kapi_share_group_describe, kapi_share_fetch,
    kapi_share_acknowledge;

/* Reads the producer id block from the store at startup. Returns 0 or -1. */
int kafka_producer_ids_load(struct broker *b);

/* Writes the response header for req (correlation id, and tagged fields for flexible
 * responses except ApiVersions). Used by deferred handlers that rebuild a response. */
void kafka_write_response_header(const struct kreq *req, kc_writer *w);

#endif
