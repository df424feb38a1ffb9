/* share.h: the share-state engine behind both shared-subscription doors (KIP-932 share
 * groups in kapi_share.c, shared views for classic consumers in share_view.c).
 *
 * One engine per (share group, topic partition), a "share-partition". Its records are
 *   available -> acquired (by a member, with a lock deadline and a delivery count)
 *             -> acknowledged | archived
 * Release, lock expiry or the member leaving return acquired records to available, until
 * the delivery count reaches the group's limit; then they are archived (a poison record
 * never blocks the partition).
 *
 * Offsets: [spso, next) is the in-flight window, kept as a list of stored batches, each
 * with a per-offset state array (acquire is per batch, acknowledge is per offset). Below
 * spso (the share-partition start offset) everything is acknowledged or archived; from
 * next on, everything is available and not yet fetched. The window holds at most the
 * group's max_inflight records (one batch more when a single batch is bigger).
 *
 * Gaps: offsets that hold no record (between batches, or inside a batch whose
 * lastOffsetDelta claims more offsets than it has records, as compacted batches and
 * dataset objects do) are never tracked: they are not in-flight, count toward no cap, are
 * never handed out in acquired ranges, and acknowledging over them is a no-op. (The one
 * exception is a compressed batch with gaps, which the engine does not decompress: as in
 * Kafka, all its offsets are tracked and clients acknowledge the missing ones as GAP.)
 *
 * Persistence: each share-partition is one record in STORE_CF_SHARE holding spso and the
 * in-flight window as runs of {first, last, state, delivery count}; acquired records are
 * stored as available with their delivery count (a restart returns them). A mutation
 * marks the partition dirty; share_flush() writes every dirty partition in one store
 * batch. A handler that acknowledges something answers only after the WAL fsync:
 *     if (share_flush(b->shares) > 0) { syncer_wait(b->syncer, req->slot); return KAPI_DEFER; }
 *
 * Topics and partitions can be unloaded or deleted at any time, so a share-partition keeps
 * the topic id and resolves it on each call. Everything runs on the event loop. */
#ifndef SLUICE_SHARE_H
#define SLUICE_SHARE_H

#include "kcodec.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct broker;
struct shares;
struct share_group;
struct share_member;
struct share_part;
struct topic;

/* Kafka error codes of the share APIs (int16 on the wire). */
enum {
    SERR_INVALID_RECORD_STATE = 121,
    SERR_SHARE_SESSION_NOT_FOUND = 122,
    SERR_INVALID_SHARE_SESSION_EPOCH = 123,
    SERR_FENCED_STATE_EPOCH = 124,
};

/* AcknowledgeType of ShareFetch/ShareAcknowledge (KIP-932). */
enum share_ack_type {
    SHARE_ACK_GAP = 0,     /* no record at these offsets: archived */
    SHARE_ACK_ACCEPT = 1,  /* processed: acknowledged */
    SHARE_ACK_RELEASE = 2, /* give back: available again (counts toward the limit) */
    SHARE_ACK_REJECT = 3,  /* unprocessable: archived */
};

/* Per-record states (also the persisted values). */
enum share_state {
    SHARE_AVAILABLE = 0,
    SHARE_ACQUIRED = 1,
    SHARE_ACKED = 2,
    SHARE_ARCHIVED = 4,
};

enum share_reset { SHARE_RESET_LATEST = 0, SHARE_RESET_EARLIEST = 1 };

#define SHARE_GROUP_ID_MAX 1024
#define SHARE_MEMBER_ID_MAX 1024
#define SHARE_MAX_DELIVERIES_MAX 100
#define SHARE_DEFAULT_LOCK_MS 30000
#define SHARE_DEFAULT_MAX_DELIVERIES 5
#define SHARE_DEFAULT_MAX_INFLIGHT 2000
#define SHARE_MAX_INFLIGHT_MAX 1000000

/* A share group's settings (share.record.lock.duration.ms, share.delivery.count.limit,
 * share.auto.offset.reset, the per-partition in-flight cap; expected_members is kept for
 * the admin API and the controller). */
struct share_config {
    int32_t lock_ms;
    int32_t max_deliveries;
    int32_t max_inflight;
    int32_t expected_members; /* 0: not set */
    int auto_reset;           /* enum share_reset */
};

/* Totals for the admin API and metrics. */
struct share_stats {
    int64_t inflight;           /* records in the window not yet acknowledged or archived */
    int64_t acquired;           /* of which acquired now */
    int64_t acked_total;        /* acknowledged since load */
    int64_t redeliveries_total; /* acquisitions of a record delivered before */
    int64_t archived_total;     /* archived by reject, gap or the delivery limit */
    int64_t expired_total;      /* locks that ran out */
    int32_t members;
    int32_t partitions;
};

/* One acquired range handed to a member: [first, last] real offsets. */
struct share_range {
    int64_t first, last;
    int32_t deliveries; /* delivery count, including this one */
};

/* One stored batch written into the writer by share_acquire, whole, as stored: w->p + at,
 * len bytes, holding offsets [base, last]. Some or all of its records were acquired
 * (the ranges say which). */
struct share_wbatch {
    size_t at;
    size_t len;
    int64_t base, last;
};

/* What one share_acquire call handed out. The caller zero-initialises it and frees it
 * with share_acquired_free; calls may accumulate into one struct across partitions only
 * if the caller copies the arrays out in between (ranges are per partition). */
struct share_acquired {
    struct share_range *r;
    int nr, rcap;
    struct share_wbatch *b;
    int nb, bcap;
    int64_t records, bytes;
};

/* Called when records of a share-partition become available again (release, expiry,
 * acknowledgement freeing window room), so parked fetches can look again. The engine
 * also calls fetch_wake_partition() for the real partition when it is loaded. */
typedef void share_notify_fn(void *arg, struct share_part *sp);

/* --- registry --- */

/* Creates the registry and loads the share groups' configs from the store (share-partition
 * state loads on first use). NULL on failure. */
struct shares *shares_new(struct broker *b);
void shares_free(struct shares *ss);
void shares_set_notify(struct shares *ss, share_notify_fn *fn, void *arg);
/* Writes every dirty share-partition in one store batch (WAL, not synced). Returns how many
 * were written (0: nothing to wait for), or -1 when the store failed. */
int share_flush(struct shares *ss);
size_t shares_group_count(const struct shares *ss);

/* --- groups --- */

/* The share group named id; created (with defaults, not yet persisted) when create is set.
 * NULL when absent, when id is empty or too long, or out of memory. */
struct share_group *share_group_get(struct shares *ss, const char *id, size_t len, bool create);
const char *share_group_id(const struct share_group *g);
const struct share_config *share_group_config(const struct share_group *g);
/* Validates and applies cfg and persists it (synchronously written to the WAL). Lowered
 * caps apply to new acquisitions. Returns 0, or -1 with a message in msg. */
int share_group_configure(struct share_group *g, const struct share_config *cfg, char *msg,
                          size_t msglen);
/* Sets one config by its Kafka name (share.record.lock.duration.ms,
 * share.delivery.count.limit, share.auto.offset.reset, share.partition.max.record.locks);
 * value NULL resets to the default. Returns 0, or -1 (unknown key or bad value) with msg. */
int share_group_set(struct share_group *g, const char *key, size_t klen, const char *value,
                    size_t vlen, bool validate_only, char *msg, size_t msglen);
/* Deletes the group: releases nothing (it has no members left to serve), drops its state
 * from memory and the store. Returns 0 or -1. */
int share_group_delete(struct share_group *g);
/* Sums the group's partitions and members into *st. */
void share_group_stats(const struct share_group *g, struct share_stats *st);
/* Calls fn for every group; O(groups), admin and metrics only. */
typedef void share_group_fn(void *arg, struct share_group *g);
void shares_foreach(struct shares *ss, share_group_fn *fn, void *arg);
/* Calls fn for every loaded share-partition of g with its stats. */
typedef void share_part_fn(void *arg, struct share_part *sp, const struct share_stats *st);
void share_group_foreach_part(struct share_group *g, share_part_fn *fn, void *arg);

/* --- members --- */

/* The member of g with this id; created when create is set. A member is only a holder of
 * acquired records; session and epoch handling belong to the door. */
struct share_member *share_member_get(struct share_group *g, const char *id, size_t len,
                                      bool create);
const char *share_member_id(const struct share_member *m);
/* Returns every record m holds to available (counting toward the delivery limit only as
 * its acquisition already did) and frees m. Returns how many records went back. */
int64_t share_member_leave(struct share_member *m);
/* Returns m's acquired records to available but keeps m. Returns how many. */
int64_t share_member_release(struct share_member *m);
/* Records m holds across all partitions. */
int64_t share_member_inflight(const struct share_member *m);
typedef void share_member_fn(void *arg, struct share_member *m);
void share_group_foreach_member(struct share_group *g, share_member_fn *fn, void *arg);

/* --- share-partitions --- */

/* The share-partition of g for (topic id, partition), loading its state from the store
 * or starting it at the log start or end (auto_reset) on first use. NULL when the topic or
 * partition does not exist or the store fails. */
struct share_part *share_part_get(struct share_group *g, const uint8_t topic_id[16],
                                  int32_t partition);
/* Lookup without creating or loading; NULL when not resident. */
struct share_part *share_part_find(struct share_group *g, const uint8_t topic_id[16],
                                   int32_t partition);
struct share_group *share_part_group(const struct share_part *sp);
int32_t share_part_partition(const struct share_part *sp);
const uint8_t *share_part_topic_id(const struct share_part *sp);
int64_t share_part_start(const struct share_part *sp); /* spso */
int64_t share_part_next(const struct share_part *sp);  /* end of the window */
void share_part_stats(const struct share_part *sp, struct share_stats *st);

/* Acquires for m the next available records: first those in the window that went back to
 * available (in offset order), then new batches from the log, until max_records or
 * max_bytes (at least one batch when any is available), within the in-flight cap.
 * Whole stored batches are copied into w; out gets the batches and acquired ranges (which
 * cover records only: a gap splits them).
 * A record acquired again has its delivery count raised; one at the limit is archived
 * instead of handed out. Returns a Kafka error code (KERR_NONE when nothing was
 * available: out->records == 0). */
int16_t share_acquire(struct share_part *sp, struct share_member *m, int32_t max_records,
                      int64_t max_bytes, kc_writer *w, struct share_acquired *out);
void share_acquired_free(struct share_acquired *a);
/* Whether an acquire would hand out something now (for deciding to park). */
bool share_part_has_available(struct share_part *sp);

/* Acknowledges [first, last] for m with type (enum share_ack_type). Every offset of the
 * range must be acquired by m (offsets in the window that hold no record are skipped),
 * else nothing changes and the answer is INVALID_RECORD_STATE. RELEASE of a record at the
 * delivery limit archives it. Returns a Kafka error code. */
int16_t share_acknowledge(struct share_part *sp, struct share_member *m, int64_t first,
                          int64_t last, int type);
/* Like share_acknowledge with RELEASE or ACCEPT, but only for the offsets of [first, last]
 * that m holds, ignoring the rest (views: a commit or an owner change covers a range that
 * may hold records whose locks expired). Returns how many records changed. */
int64_t share_settle(struct share_part *sp, struct share_member *m, int64_t first, int64_t last,
                     int type);

/* Gives back the records of [first, last] that m holds as never delivered: available again
 * with the delivery count of their acquisition taken off (a view's prefetched records that
 * its consumer never saw: ownership churn must not archive them). Returns how many. */
int64_t share_return(struct share_part *sp, struct share_member *m, int64_t first, int64_t last);

/* Lock expiry runs from a timer per share-partition; exposed for tests: releases every
 * lock whose deadline is <= now_us. Returns how many records went back. */
int64_t share_part_expire(struct share_part *sp, int64_t now_us);

/* The records acquired by m in sp (in ascending order) as ranges, into a malloc'd array;
 * NULL with *n = 0 when none. For tests and the admin API. */
struct share_range *share_part_held(struct share_part *sp, const struct share_member *m, int *n);
/* The state and delivery count of one offset: SHARE_ACKED below spso (or archived: the
 * engine does not remember which), SHARE_ARCHIVED for a gap in the window, SHARE_AVAILABLE
 * at or past next. */
int share_part_record_state(struct share_part *sp, int64_t offset, int32_t *deliveries);

#endif
