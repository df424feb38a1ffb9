/* sgroup.h: the KIP-932 share-group coordinator and share sessions (door 1 of the shared
 * subscription; the record states live in the share engine, share.h).
 *
 * Membership: a member joins with ShareGroupHeartbeat epoch 0, heartbeats with its
 * current (or previous) member epoch, and leaves with epoch -1. There is no rebalance:
 * every member is assigned every partition of every topic it subscribes to, and a member's
 * epoch moves forward whenever its assignment changes. A member that is silent (no
 * heartbeat, no share fetch) past the session timeout is removed and its acquired records
 * go back to available.
 *
 * Share sessions (one per member on this broker): ShareFetch epoch 0 opens one, each
 * request after it carries the next epoch, -1 closes it. A session holds the partitions
 * the member fetches from. Everything runs on the event loop. */
#ifndef SLUICE_SGROUP_H
#define SLUICE_SGROUP_H

#include "ev.h"
#include "hash.h"
#include "kcodec.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct broker;
struct sgroups;
struct sgroup;

/* Kafka error codes of the share-group APIs not in topic.h / group.h / share.h. */
enum {
    SGERR_FENCED_MEMBER_EPOCH = 110,
};

#define SGROUP_SESSION_MS 45000    /* group.share.session.timeout.ms */
#define SGROUP_HEARTBEAT_MS 5000   /* group.share.heartbeat.interval.ms */
#define SGROUP_MAX_TOPICS 10000    /* subscribed topics of one member */
#define SGROUP_MAX_SESSION_PARTS 2000 /* partitions in one share session */

/* A topic partition named by topic id. */
struct stp {
    uint8_t id[16];
    int32_t partition;
};

/* One topic of a member's assignment: all of its partitions. */
struct sassign {
    uint8_t id[16];
    char *name;
    int32_t partitions;
};

struct smember {
    struct smember *prev, *next; /* the group's members */
    struct sgroup *g;
    char *id;
    char *client_id, *client_host, *rack;
    bool joined;                 /* in the group through ShareGroupHeartbeat */
    int32_t epoch, prev_epoch;   /* member epoch, and the one before it */
    char **topics;               /* subscribed topic names */
    int ntopics;
    struct sassign *assign;      /* sorted by topic id */
    int nassign;
    struct ev_timer timer;       /* session timeout */
    /* the share session on this broker */
    bool session;
    int32_t session_epoch;       /* the epoch the next request must carry */
    struct stp *parts;
    int nparts, pcap;
    uint32_t rr;                 /* rotates which partition is served first */
};

struct sgroup {
    struct hnode hnode;          /* in the registry's table, keyed by id */
    struct sgroups *gs;
    char *id;
    size_t id_len;
    int32_t epoch;               /* group epoch */
    struct smember *head, *tail;
    int nmembers;                /* joined members */
    int nall;                    /* members and session holders */
};

/* A ShareGroupHeartbeat, with views borrowed from the request. topics is NULL when the
 * subscription did not change (null SubscribedTopicNames). */
struct sg_heartbeat {
    kc_str group_id, member_id, rack_id, client_id;
    const char *client_host;
    int32_t member_epoch;
    const kc_str *topics;
    int ntopics;
};

/* What a heartbeat answers. member is NULL on error or after a leave; send_assignment
 * says whether the response carries member->assign. */
struct sg_heartbeat_result {
    int16_t err;
    const char *msg;
    struct smember *member;
    int32_t member_epoch;
    bool send_assignment;
};

struct sgroups *sgroups_new(struct broker *b);
void sgroups_free(struct sgroups *gs);
size_t sgroups_count(const struct sgroups *gs);

struct sgroup *sgroup_find(struct sgroups *gs, const char *id, size_t len);
/* Calls fn for every share group with members or sessions (admin only). */
typedef void sgroup_fn(void *arg, struct sgroup *g);
void sgroups_foreach(struct sgroups *gs, sgroup_fn *fn, void *arg);
/* The group state name Kafka reports: "Empty" or "Stable". */
const char *sgroup_state_name(const struct sgroup *g);

/* ShareGroupHeartbeat. */
void sgroup_heartbeat(struct sgroups *gs, const struct sg_heartbeat *hb,
                      struct sg_heartbeat_result *res);

/* The member id of group for a share fetch or acknowledge; created (not joined) when
 * create is set. Touching it restarts its session timer. NULL when absent. */
struct smember *sgroup_member(struct sgroups *gs, kc_str group_id, kc_str member_id,
                              bool create);
/* Removes m now: it leaves the group, its session closes and its records go back. */
void sgroup_member_remove(struct smember *m, const char *why);
/* Returns to available the records held by every member of share group id whose
 * client.id is client_id (trainers set it to their pod name); the members stay. Returns
 * how many records went back, or -1 when no member has that client id. */
int64_t sgroup_release_client(struct sgroups *gs, const char *id, const char *client_id);

/* Share sessions. Returns the share error for a request with epoch on m's session
 * (SHARE_SESSION_NOT_FOUND, INVALID_SHARE_SESSION_EPOCH or 0). open (epoch 0) replaces
 * an existing session, releasing the records it held. */
int16_t sgroup_session_check(const struct smember *m, int32_t epoch);
int sgroup_session_open(struct smember *m);
/* Moves the session to its next epoch after a successful request. */
void sgroup_session_advance(struct smember *m);
/* Closes m's session and releases the records m holds. */
void sgroup_session_close(struct smember *m);
/* Adds a partition to the session (no-op when present). Returns 0, or -1 when full. */
int sgroup_session_add(struct smember *m, const uint8_t id[16], int32_t partition);
/* Removes a partition and releases what m holds in it. */
void sgroup_session_forget(struct smember *m, const uint8_t id[16], int32_t partition);
bool sgroup_session_has(const struct smember *m, const uint8_t id[16], int32_t partition);

/* The share engine's holder for m (created on first use); NULL without the engine. */
struct share_member;
struct share_member *sgroup_engine_member(struct smember *m);

#endif
