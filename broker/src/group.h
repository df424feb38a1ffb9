/* group.h: classic consumer groups (the JoinGroup/SyncGroup protocol) and their committed
 * offsets. group.c is the coordinator's state machine, group_offsets.c keeps offsets in
 * memory and in the offsets column family. Nothing here knows the wire format: parked
 * JoinGroup/SyncGroup calls are answered through the callbacks in struct group_ops, which
 * kapi_group.c supplies (and unit tests replace). Everything runs on the event loop. */
#ifndef SLUICE_GROUP_H
#define SLUICE_GROUP_H

#include "ev.h"
#include "hash.h"
#include "kcodec.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct broker;
struct groups;
struct group;
struct gmember;

/* Kafka error codes of the group protocol (int16 on the wire). */
enum {
    GERR_COORDINATOR_NOT_AVAILABLE = 15,
    GERR_NOT_COORDINATOR = 16,
    GERR_OFFSET_METADATA_TOO_LARGE = 12,
    GERR_ILLEGAL_GENERATION = 22,
    GERR_INCONSISTENT_GROUP_PROTOCOL = 23,
    GERR_INVALID_GROUP_ID = 24,
    GERR_UNKNOWN_MEMBER_ID = 25,
    GERR_INVALID_SESSION_TIMEOUT = 26,
    GERR_REBALANCE_IN_PROGRESS = 27,
    GERR_INVALID_COMMIT_OFFSET_SIZE = 28,
    GERR_GROUP_AUTHORIZATION_FAILED = 30,
    GERR_INVALID_REQUEST = 42,
    GERR_NON_EMPTY_GROUP = 68,
    GERR_GROUP_ID_NOT_FOUND = 69,
    GERR_MEMBER_ID_REQUIRED = 79,
    GERR_GROUP_MAX_SIZE_REACHED = 81,
    GERR_FENCED_INSTANCE_ID = 82,
    GERR_GROUP_SUBSCRIBED_TO_TOPIC = 86,
};

enum group_state { GS_EMPTY = 0, GS_PREPARING, GS_COMPLETING, GS_STABLE, GS_DEAD };

/* Limits on what one member may make the coordinator keep. A JoinGroup past them is
 * refused with INVALID_REQUEST (and a warning naming the group and client). */
#define GROUP_ID_MAX 1024
#define GROUP_MAX_PROTOCOLS 64
#define GROUP_MEMBER_META_MAX (1u << 20) /* all protocols' metadata of one member */
#define GROUP_ASSIGNMENT_MAX (1u << 20)  /* one member's assignment */
#define GROUP_STR_MAX 1024               /* member, instance, client ids; protocol names */

struct gproto {
    char *name;
    uint8_t *meta;
    int32_t meta_len;
};

/* A JoinGroup or SyncGroup call. The caller allocates it on the heap and sets in_call
 * around group_join/group_sync; the callback answers it, possibly during that call
 * (in_call: only write the response) or later (write, complete, free). ctx, version and
 * flexible are the caller's, for writing the response. */
struct gwaiter {
    struct gmember *m; /* while parked */
    void *ctx;
    int16_t version;
    bool flexible;
    bool parked;
    bool in_call;  /* set by the caller around group_join/group_sync */
    bool answered; /* set by the callback */
};

struct gmember {
    struct gmember *prev, *next; /* the group's members, in join order */
    struct group *g;
    char *id;
    char *instance_id; /* NULL: dynamic member */
    char *client_id;
    char *client_host; /* the peer IP */
    int32_t session_ms, rebalance_ms;
    struct gproto *protos; /* in the member's order of preference */
    int nprotos;
    uint8_t *assignment;
    int32_t assignment_len;
    struct gwaiter *join_w, *sync_w;
    bool awaiting_join; /* has joined the rebalance in progress */
    struct ev_timer session;
};

/* A member id handed out with MEMBER_ID_REQUIRED (KIP-394), waiting for its join. */
struct gpending {
    struct gpending *next;
    struct group *g;
    char *id;
    struct ev_timer timer;
};

/* One committed offset. topic[] is NUL-terminated (topic names cannot hold NUL). */
struct goff {
    struct hnode hnode; /* in its group's offsets table, keyed by (topic, partition) */
    int32_t partition;
    int64_t offset;
    int32_t leader_epoch;
    int64_t commit_ts;
    char *metadata; /* never NULL: a null commit metadata is kept as "" like Kafka */
    int32_t metadata_len;
    char topic[];
};

struct group {
    struct hnode hnode; /* in the groups table, keyed by id */
    struct groups *gs;
    char *id;
    size_t id_len;
    int state;
    int32_t generation;
    char *protocol_type; /* NULL until a member joins */
    char *protocol_name; /* selected protocol of the current generation; NULL when none */
    char *leader;        /* member id; NULL when none */
    struct gmember *head, *tail;
    int nmembers, nawaiting;
    struct gpending *pending;
    int npending;
    struct ev_timer rebalance; /* join phase: initial delay or rebalance timeout */
    bool initial_delay;        /* in the initial-delay phase of an Empty group's first join */
    bool new_member_added;     /* a member joined during the current initial delay */
    int64_t initial_remaining_ms;
    int64_t state_ms; /* wall clock of the last state change (empty since) */
    bool persisted;   /* the group record is in the store */
    struct htab offs; /* committed offsets (struct goff), keyed by (topic, partition) */
};

/* How parked calls are answered. join_done gets the member's view of the generation: on
 * success with_members says the response carries every member's metadata (the leader).
 * sync_done gets the assignment (NULL, 0 on error). Both are called exactly once per
 * waiter and must not call back into the group module. */
struct gjoin_result {
    int16_t err;
    const char *member_id;
    int32_t generation;
    const char *protocol_type, *protocol_name, *leader;
    bool with_members;
    const struct group *g;
};

struct group_ops {
    void (*join_done)(struct gwaiter *w, const struct gjoin_result *res);
    void (*sync_done)(struct gwaiter *w, int16_t err, const struct group *g, const uint8_t *a,
                      int32_t alen);
};

/* A JoinGroup, with views borrowed from the request. */
struct gproto_in {
    kc_str name;
    kc_bytes meta;
};

struct gjoin_req {
    kc_str group_id, member_id, instance_id, client_id, protocol_type;
    const char *client_host;
    int32_t session_ms, rebalance_ms;
    bool require_known_id; /* JoinGroup v4+: KIP-394 */
    const struct gproto_in *protos;
    int nprotos;
};

struct gassign_in {
    kc_str member_id;
    kc_bytes assignment;
};

struct gsync_req {
    kc_str group_id, member_id, instance_id, protocol_type, protocol_name;
    int32_t generation;
    const struct gassign_in *assign;
    int nassign;
};

/* --- registry --- */

/* Creates the registry and loads groups and offsets from the store. NULL on failure. */
struct groups *groups_new(struct broker *b);
/* Frees everything; parked waiters must have been cancelled (connections closed). */
void groups_free(struct groups *gs);
void groups_set_ops(struct groups *gs, const struct group_ops *ops);
size_t groups_count(const struct groups *gs);
uint64_t groups_rebalances(const struct groups *gs);
struct broker *groups_broker(const struct groups *gs);

struct group *group_find(struct groups *gs, const char *id, size_t len);
/* Calls fn for every group; fn must not add or remove groups. O(groups): admin only. */
typedef void group_fn(void *arg, struct group *g);
void groups_foreach(struct groups *gs, group_fn *fn, void *arg);

const char *group_state_name(int state);
/* Parses a state name (case-insensitive); -1 when unknown. */
int group_state_parse(const char *s, size_t len);

/* --- membership --- */

/* JoinGroup. Returns 0 when w was answered at once, 1 when it is parked. */
int group_join(struct groups *gs, const struct gjoin_req *rq, struct gwaiter *w);
/* SyncGroup. Same contract as group_join. */
int group_sync(struct groups *gs, const struct gsync_req *rq, struct gwaiter *w);
/* Forgets a parked waiter whose connection closed; the caller frees it. */
void group_waiter_cancel(struct gwaiter *w);
/* Heartbeat; returns a Kafka error code. */
int16_t group_heartbeat(struct groups *gs, kc_str group_id, int32_t generation, kc_str member_id,
                        kc_str instance_id);
/* One LeaveGroup member; returns its error code. */
int16_t group_leave(struct groups *gs, kc_str group_id, kc_str member_id, kc_str instance_id);
/* DeleteGroups for one group: removes it with its offsets. Returns an error code. */
int16_t group_delete(struct groups *gs, kc_str group_id);
/* Answers every parked waiter with COORDINATOR_NOT_AVAILABLE (the broker is draining). */
void groups_release_all(struct groups *gs);

/* The metadata m registered for protocol name; NULL when it has none. */
const struct gproto *gmember_protocol(const struct gmember *m, const char *name);
/* Whether some member of a "consumer" group subscribes to topic; true when a
 * subscription cannot be decoded, or always false for other protocol types. */
bool group_subscribed_to(const struct group *g, const char *topic, size_t len);

/* Decodes a ConsumerProtocolAssignment, calling fn per topic. Returns 0 or -1. */
typedef void gassign_fn(void *arg, const char *topic, size_t tlen, const int32_t *parts, int n);
int group_decode_assignment(const uint8_t *p, int32_t len, gassign_fn *fn, void *arg);

/* --- offsets (group_offsets.c) --- */

/* Checks an OffsetCommit's group, generation and member. A simple consumer's commit
 * (generation < 0, no member) to an unknown group creates the group; *g is set when the
 * commit may go ahead. Returns an error code that applies to every partition. */
int16_t group_commit_check(struct groups *gs, kc_str group_id, int32_t generation, kc_str member_id,
                           kc_str instance_id, struct group **g);

/* One OffsetCommit is written in one store batch: stage every partition, write, then
 * apply each partition to memory (apply re-checks it, so the caller can re-read the
 * request to build its response). stage and apply return the partition's error. */
struct gcommit;
struct gcommit *group_commit_begin(struct groups *gs, struct group *g);
int16_t group_commit_stage(struct gcommit *c, kc_str topic, int32_t partition, int64_t offset,
                           int32_t leader_epoch, kc_str metadata);
/* Writes what was staged (WAL, not yet synced). Returns how many partitions were
 * written, or -1 when the store failed. */
int group_commit_write(struct gcommit *c);
int16_t group_commit_apply(struct gcommit *c, kc_str topic, int32_t partition, int64_t offset,
                           int32_t leader_epoch, kc_str metadata);
void group_commit_end(struct gcommit *c);
const struct goff *group_offset(const struct group *g, const char *topic, size_t tlen,
                                int32_t partition);
/* Every offset of g sorted by (topic, partition), in a malloc'd array the caller frees;
 * NULL with *n = 0 when there are none (or out of memory). */
const struct goff **group_offsets_sorted(const struct group *g, size_t *n);
/* Deletes one partition's offset (OffsetDelete). */
int group_offset_delete(struct groups *gs, struct group *g, const char *topic, size_t tlen,
                        int32_t partition);
/* Expires the offsets of groups without members whose retention ran out, as of now_ms,
 * and drops groups left with nothing. Returns how many offsets went. */
int groups_expire_offsets(struct groups *gs, int64_t now_ms);
/* Calls fn once per topic g has offsets for, with the topic's lag: the sum over its
 * partitions of end offset minus committed offset (partitions that no longer exist
 * count 0). */
typedef void glag_fn(void *arg, const char *topic, int64_t lag);
void group_topic_lag(struct groups *gs, const struct group *g, glag_fn *fn, void *arg);
/* The end offset (high watermark) of a partition, or -1 when it does not exist. */
int64_t group_end_offset(struct groups *gs, const char *topic, int32_t partition);

/* Internal to the group module (group.c <-> group_offsets.c). */
int group_offsets_load(struct groups *gs);
void group_offsets_free(struct group *g);
/* Writes g's record (protocol type, generation, state time); deletes it (and with
 * offsets, every offset of g). Return 0 or -1. */
int group_persist(struct groups *gs, struct group *g);
int group_unpersist(struct groups *gs, struct group *g, bool offsets);
struct group *group_get_or_create(struct groups *gs, const char *id, size_t len);
void group_drop_if_unused(struct groups *gs, struct group *g);

#endif
