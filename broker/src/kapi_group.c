/* kapi_group.c: the group coordinator APIs on the wire: FindCoordinator, JoinGroup,
 * SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, DescribeGroups,
 * ListGroups, DeleteGroups and OffsetDelete. The state machine is group.c; this file
 * parses requests, writes responses and parks JoinGroup/SyncGroup slots until the group
 * answers them. An OffsetCommit is answered only after its write is fsynced.
 *
 * Authorization follows Kafka's KafkaApis: READ on the group to join, sync, heartbeat,
 * leave and commit; DESCRIBE on it to fetch offsets, describe or list it; DELETE to
 * delete it or its offsets. Topics need READ to commit or delete offsets and DESCRIBE to
 * fetch them. A refusal is an error code in the API's usual response shape. */
#include "acl.h"
#include "auth.h"
#include "broker.h"
#include "conn.h"
#include "group.h"
#include "kafka.h"
#include "log.h"
#include "syncer.h"
#include "topic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUTH_OPS_UNKNOWN INT32_MIN

enum { KEY_GROUP = 0, KEY_TXN = 1, KEY_SHARE = 2 };

/* ---- parked calls ---- */

static void waiter_cancel(struct kslot *s)
{
    struct gwaiter *w = s->owner;
    group_waiter_cancel(w);
    free(w);
}

/* Answers a waiter whose response body has just been written: inside the call the
 * handler returns KAPI_DONE; later, the slot completes here. */
static void waiter_finish(struct gwaiter *w)
{
    w->answered = true;
    if (w->in_call)
        return;
    struct kslot *s = w->ctx;
    s->owner = NULL;
    s->cancel = NULL;
    free(w);
    kslot_complete(s);
}

static void write_join(kc_writer *w, const struct gwaiter *gw, const struct gjoin_result *r)
{
    int16_t v = gw->version;
    bool fx = gw->flexible;
    if (v >= 2)
        kc_w_i32(w, 0); /* throttle_time_ms */
    kc_w_i16(w, r->err);
    kc_w_i32(w, r->generation);
    if (v >= 7) {
        kc_w_cstr(w, fx, r->protocol_type);
        kc_w_cstr(w, fx, r->protocol_name);
    } else {
        kc_w_cstr(w, fx, r->protocol_name ? r->protocol_name : "");
    }
    kc_w_cstr(w, fx, r->leader ? r->leader : "");
    if (v >= 9)
        kc_w_bool(w, false); /* skip_assignment */
    kc_w_cstr(w, fx, r->member_id ? r->member_id : "");
    const struct group *g = r->g;
    if (!r->with_members || !g) {
        kc_w_array(w, fx, 0);
    } else {
        kc_w_array(w, fx, g->nmembers);
        for (const struct gmember *m = g->head; m; m = m->next) {
            const struct gproto *p = gmember_protocol(m, g->protocol_name);
            kc_w_cstr(w, fx, m->id);
            if (v >= 5)
                kc_w_cstr(w, fx, m->instance_id);
            kc_w_bytes(w, fx, p ? (const void *)p->meta : "", p ? p->meta_len : 0);
            kc_w_tags(w, fx);
        }
    }
    kc_w_tags(w, fx);
}

static void on_join_done(struct gwaiter *gw, const struct gjoin_result *r)
{
    struct kslot *s = gw->ctx;
    write_join(&s->w, gw, r);
    waiter_finish(gw);
}

static void on_sync_done(struct gwaiter *gw, int16_t err, const struct group *g, const uint8_t *a,
                         int32_t alen)
{
    struct kslot *s = gw->ctx;
    kc_writer *w = &s->w;
    bool fx = gw->flexible;
    if (gw->version >= 1)
        kc_w_i32(w, 0); /* throttle_time_ms */
    kc_w_i16(w, err);
    if (gw->version >= 5) {
        kc_w_cstr(w, fx, err || !g ? NULL : g->protocol_type);
        kc_w_cstr(w, fx, err || !g ? NULL : g->protocol_name);
    }
    kc_w_bytes(w, fx, a ? (const void *)a : "", a ? alen : 0);
    kc_w_tags(w, fx);
    waiter_finish(gw);
}

const struct group_ops kapi_group_ops = {on_join_done, on_sync_done};

static struct gwaiter *waiter_new(struct kreq *req)
{
    struct gwaiter *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->ctx = req->slot;
    w->version = req->api_version;
    w->flexible = req->flexible;
    w->in_call = true;
    return w;
}

/* After group_join/group_sync: answered now, or parked on the slot. */
static int waiter_settle(struct kreq *req, struct gwaiter *w)
{
    w->in_call = false;
    if (w->answered) {
        free(w);
        return KAPI_DONE;
    }
    req->slot->owner = w;
    req->slot->cancel = waiter_cancel;
    return KAPI_DEFER;
}

/* The peer's IP, without the port. */
static void peer_host(const struct conn *c, char *out, size_t cap)
{
    snprintf(out, cap, "%s", c ? c->peer : "");
    char *colon = strrchr(out, ':');
    if (colon)
        *colon = 0;
}

/* Whether req's principal may perform op on group id (a nullable wire string). */
static bool group_allowed(struct kreq *req, kc_str id, int8_t op)
{
    return auth_allowed(req, ACL_RES_GROUP, id.p ? id.p : "", id.len > 0 ? (size_t)id.len : 0,
                        op);
}

/* ---- FindCoordinator ---- */

/* Groups and share groups are coordinated here; transactions are not offered. */
static int16_t coordinator_error(int8_t key_type)
{
    if (key_type == KEY_GROUP || key_type == KEY_SHARE)
        return KERR_NONE;
    return key_type == KEY_TXN ? GERR_COORDINATOR_NOT_AVAILABLE : KERR_INVALID_REQUEST;
}

/* The error for one coordinator key: its type, then whether the principal may see
 * the group. */
static int16_t coordinator_key_error(struct kreq *req, int8_t key_type, kc_str key)
{
    int16_t err = coordinator_error(key_type);
    if (!err && !group_allowed(req, key, ACL_OP_DESCRIBE))
        err = KERR_GROUP_AUTHORIZATION_FAILED;
    return err;
}

static const char *coordinator_message(int16_t err)
{
    return err == GERR_COORDINATOR_NOT_AVAILABLE     ? "transactions are not offered"
           : err == KERR_GROUP_AUTHORIZATION_FAILED ? "not authorized to describe the group"
           : err                                    ? "unknown key type"
                                                    : NULL;
}

int kapi_find_coordinator(struct kreq *req, kc_writer *w)
{
    kc_reader *r = &req->r;
    int16_t v = req->api_version;
    bool fx = req->flexible;
    const struct broker *b = req->b;
    const char *host;
    int32_t port;
    conn_advertised(req->conn, &host, &port);
    int8_t key_type = KEY_GROUP;
    int16_t err;
    if (v < 4) {
        kc_str key = kc_string(r, fx);
        if (v >= 1)
            key_type = kc_i8(r);
        kc_skip_tags(r, fx);
        if (!kc_ok(r))
            return KAPI_EPARSE;
        err = coordinator_key_error(req, key_type, key);
        if (v >= 1)
            kc_w_i32(w, 0); /* throttle_time_ms */
        kc_w_i16(w, err);
        if (v >= 1)
            kc_w_cstr(w, fx, coordinator_message(err));
        kc_w_i32(w, err ? -1 : b->cfg.node_id);
        kc_w_cstr(w, fx, err ? "" : host);
        kc_w_i32(w, err ? -1 : port);
        kc_w_tags(w, fx);
        return KAPI_DONE;
    }
    key_type = kc_i8(r);
    int32_t n = kc_array(r, fx, 1);
    if (!kc_ok(r) || n < 0)
        return KAPI_EPARSE;
    kc_w_i32(w, 0); /* throttle_time_ms */
    kc_w_array(w, fx, n);
    for (int32_t i = 0; i < n && kc_ok(r); i++) {
        kc_str key = kc_string(r, fx);
        err = coordinator_key_error(req, key_type, key);
        kc_w_string(w, fx, key.p ? key.p : "", key.len > 0 ? key.len : 0);
        kc_w_i32(w, err ? -1 : b->cfg.node_id);
        kc_w_cstr(w, fx, err ? "" : host);
        kc_w_i32(w, err ? -1 : port);
        kc_w_i16(w, err);
        kc_w_cstr(w, fx, coordinator_message(err));
        kc_w_tags(w, fx);
    }
    kc_skip_tags(r, fx);
    kc_w_tags(w, fx);
    return kc_ok(r) ? KAPI_DONE : KAPI_EPARSE;
}

/* ---- JoinGroup ---- */

/* Answers a JoinGroup that could not be read far enough to reach the group. */
static int join_refuse(struct kreq *req, int16_t err)
{
    struct gwaiter gw = {.version = req->api_version, .flexible = req->flexible};
    struct gjoin_result res = {.err = err, .member_id = "", .generation = -1, .leader = ""};
    write_join(&req->slot->w, &gw, &res);
    return KAPI_DONE;
}

int kapi_join_group(struct kreq *req, kc_writer *w)
{
    kc_reader *r = &req->r;
    int16_t v = req->api_version;
    bool fx = req->flexible;
    struct gjoin_req rq = {.client_id = req->client_id, .require_known_id = v >= 4};
    rq.group_id = kc_string(r, fx);
    rq.session_ms = kc_i32(r);
    rq.rebalance_ms = v >= 1 ? kc_i32(r) : rq.session_ms;
    if (rq.rebalance_ms <= 0) /* no time to rejoin would evict everyone at once */
        rq.rebalance_ms = rq.session_ms;
    rq.member_id = kc_string(r, fx);
    rq.instance_id = v >= 5 ? kc_string(r, fx) : (kc_str){NULL, -1};
    rq.protocol_type = kc_string(r, fx);
    int32_t n = kc_array(r, fx, fx ? 3 : 6);
    if (!kc_ok(r) || rq.group_id.len < 0 || rq.member_id.len < 0 || rq.protocol_type.len < 0)
        return KAPI_EPARSE;
    if (n < 0 || n > GROUP_MAX_PROTOCOLS) {
        log_warn("group %.*s: JoinGroup with %d protocols refused (limit %d)", rq.group_id.len,
                 rq.group_id.p, n, GROUP_MAX_PROTOCOLS);
        return join_refuse(req, GERR_INVALID_REQUEST);
    }
    struct gproto_in protos[GROUP_MAX_PROTOCOLS];
    for (int32_t i = 0; i < n && kc_ok(r); i++) {
        protos[i].name = kc_string(r, fx);
        protos[i].meta = kc_bytes_field(r, fx);
        kc_skip_tags(r, fx);
    }
    if (v >= 8)
        kc_string(r, fx); /* reason */
    kc_skip_tags(r, fx);
    if (!kc_ok(r))
        return KAPI_EPARSE;
    if (!group_allowed(req, rq.group_id, ACL_OP_READ))
        return join_refuse(req, KERR_GROUP_AUTHORIZATION_FAILED);
    char host[64];
    peer_host(req->conn, host, sizeof host);
    rq.client_host = host;
    rq.protos = protos;
    rq.nprotos = n;
    struct gwaiter *gw = waiter_new(req);
    if (!gw)
        return join_refuse(req, GERR_COORDINATOR_NOT_AVAILABLE);
    group_join(req->b->groups, &rq, gw);
    return waiter_settle(req, gw);
}

/* ---- SyncGroup ---- */

int kapi_sync_group(struct kreq *req, kc_writer *w)
{
    kc_reader *r = &req->r;
    int16_t v = req->api_version;
    bool fx = req->flexible;
    struct gsync_req rq = {0};
    rq.group_id = kc_string(r, fx);
    rq.generation = kc_i32(r);
    rq.member_id = kc_string(r, fx);
    rq.instance_id = v >= 3 ? kc_string(r, fx) : (kc_str){NULL, -1};
    rq.protocol_type = v >= 5 ? kc_string(r, fx) : (kc_str){NULL, -1};
    rq.protocol_name = v >= 5 ? kc_string(r, fx) : (kc_str){NULL, -1};
    int32_t n = kc_array(r, fx, fx ? 3 : 6);
    if (!kc_ok(r) || rq.group_id.len < 0 || rq.member_id.len < 0)
        return KAPI_EPARSE;
    struct gwaiter *gw = waiter_new(req);
    if (!gw)
        return KAPI_EPARSE;
    struct gassign_in *as = NULL;
    if (n > req->b->cfg.group_max_size) {
        log_warn("group %.*s: SyncGroup with %d assignments refused", rq.group_id.len,
                 rq.group_id.p, n);
        on_sync_done(gw, GERR_INVALID_REQUEST, NULL, NULL, 0);
        return waiter_settle(req, gw);
    }
    if (n > 0 && !(as = calloc((size_t)n, sizeof *as))) {
        free(gw);
        return KAPI_EPARSE;
    }
    for (int32_t i = 0; i < n && kc_ok(r); i++) {
        as[i].member_id = kc_string(r, fx);
        as[i].assignment = kc_bytes_field(r, fx);
        kc_skip_tags(r, fx);
    }
    kc_skip_tags(r, fx);
    if (!kc_ok(r)) {
        free(as);
        free(gw);
        return KAPI_EPARSE;
    }
    if (!group_allowed(req, rq.group_id, ACL_OP_READ)) {
        free(as);
        on_sync_done(gw, KERR_GROUP_AUTHORIZATION_FAILED, NULL, NULL, 0);
        return waiter_settle(req, gw);
    }
    rq.assign = as;
    rq.nassign = n > 0 ? n : 0;
    group_sync(req->b->groups, &rq, gw);
    free(as);
    return waiter_settle(req, gw);
}

/* ---- Heartbeat, LeaveGroup ---- */

int kapi_heartbeat(struct kreq *req, kc_writer *w)
{
    kc_reader *r = &req->r;
    bool fx = req->flexible;
    kc_str group = kc_string(r, fx);
    int32_t gen = kc_i32(r);
    kc_str member = kc_string(r, fx);
    kc_str instance = req->api_version >= 3 ? kc_string(r, fx) : (kc_str){NULL, -1};
    kc_skip_tags(r, fx);
    if (!kc_ok(r) || group.len < 0 || member.len < 0)
        return KAPI_EPARSE;
    int16_t err = group_allowed(req, group, ACL_OP_READ)
                      ? group_heartbeat(req->b->groups, group, gen, member, instance)
                      : KERR_GROUP_AUTHORIZATION_FAILED;
    if (req->api_version >= 1)
        kc_w_i32(w, 0); /* throttle_time_ms */
    kc_w_i16(w, err);
    kc_w_tags(w, fx);
    return KAPI_DONE;
}

int kapi_leave_group(struct kreq *req, kc_writer *w)
{
    kc_reader *r = &req->r;
    int16_t v = req->api_version;
    bool fx = req->flexible;
    kc_str group = kc_string(r, fx);
    if (v >= 1)
        kc_w_i32(w, 0); /* throttle_time_ms */
    static const kc_str none = {NULL, -1};
    if (v < 3) {
        kc_str member = kc_string(r, fx);
        kc_skip_tags(r, fx);
        if (!kc_ok(r) || group.len < 0 || member.len < 0)
            return KAPI_EPARSE;
        kc_w_i16(w, group_allowed(req, group, ACL_OP_READ)
                        ? group_leave(req->b->groups, group, member, none)
                        : KERR_GROUP_AUTHORIZATION_FAILED);
        kc_w_tags(w, fx);
        return KAPI_DONE;
    }
    int32_t n = kc_array(r, fx, fx ? 3 : 4);
    if (!kc_ok(r) || group.len < 0 || n < 0)
        return KAPI_EPARSE;
    bool denied = !group_allowed(req, group, ACL_OP_READ); /* then no members[] answer */
    kc_w_i16(w, denied ? KERR_GROUP_AUTHORIZATION_FAILED
                : group.len == 0 ? GERR_INVALID_GROUP_ID
                                 : KERR_NONE);
    kc_w_array(w, fx, denied ? 0 : n);
    for (int32_t i = 0; i < n && kc_ok(r); i++) {
        kc_str member = kc_string(r, fx);
        kc_str instance = kc_string(r, fx);
        if (v >= 5)
            kc_string(r, fx); /* reason */
        kc_skip_tags(r, fx);
        if (!kc_ok(r) || member.len < 0)
            return KAPI_EPARSE;
        if (denied)
            continue;
        int16_t err = group_leave(req->b->groups, group, member, instance);
        kc_w_string(w, fx, member.p, member.len);
        kc_w_string(w, fx, instance.p, instance.len);
        kc_w_i16(w, err);
        kc_w_tags(w, fx);
    }
    kc_skip_tags(r, fx);
    kc_w_tags(w, fx);
    return kc_ok(r) ? KAPI_DONE : KAPI_EPARSE;
}

/* ---- OffsetCommit ---- */

/* One partitions[] entry of an OffsetCommit request. */
struct cpart {
    int32_t partition;
    int64_t offset;
    int32_t epoch;
    kc_str metadata;
};

/* The smallest partitions[] entry of an OffsetCommit of version v. */
static size_t cpart_min_size(int16_t v, bool fx)
{
    return 4 + 8 + (v >= 6 ? 4 : 0) + (v == 1 ? 8 : 0) +
           2; /* metadata, or compact metadata and tags */
}

static void read_cpart(struct kreq *req, struct cpart *p)
{
    kc_reader *r = &req->r;
    int16_t v = req->api_version;
    p->partition = kc_i32(r);
    p->offset = kc_i64(r);
    p->epoch = v >= 6 ? kc_i32(r) : -1;
    if (v == 1)
        kc_i64(r); /* commit_timestamp: the broker's clock is used */
    p->metadata = kc_string(r, req->flexible);
    kc_skip_tags(r, req->flexible);
}

/* An OffsetCommit in progress. gerr answers every partition: the group is not
 * authorized, or the member may not commit. topic_ok says, per topics[] entry, whether
 * the topic may be read (decided once, in pass 0; always true when gerr is set). */
struct commit_ctx {
    struct gcommit *c;
    int16_t gerr;
    bool *topic_ok;
};

/* Reads the topics once: pass 0 checks the topics and stages the partitions, pass 1
 * applies them and writes the response. Returns 0 or -1 for a malformed request. */
static int commit_pass(struct kreq *req, kc_writer *w, struct commit_ctx *cc, int pass)
{
    kc_reader *r = &req->r;
    bool fx = req->flexible;
    int32_t nt = kc_array(r, fx, fx ? 2 : 6);
    if (!kc_ok(r) || nt < 0)
        return -1;
    /* nt is bounded by the bytes that remain */
    if (!pass && nt > 0 && !(cc->topic_ok = calloc((size_t)nt, sizeof *cc->topic_ok)))
        return -1;
    if (pass)
        kc_w_array(w, fx, nt);
    for (int32_t i = 0; i < nt && kc_ok(r); i++) {
        kc_str topic = kc_string(r, fx);
        int32_t np = kc_array(r, fx, cpart_min_size(req->api_version, fx));
        if (!kc_ok(r) || topic.len < 0 || np < 0)
            return -1;
        if (!pass)
            cc->topic_ok[i] = cc->gerr || auth_topic_read(req, topic.p, (size_t)topic.len);
        if (pass) {
            kc_w_string(w, fx, topic.p, topic.len);
            kc_w_array(w, fx, np);
        }
        for (int32_t j = 0; j < np && kc_ok(r); j++) {
            struct cpart p;
            read_cpart(req, &p);
            if (!kc_ok(r))
                return -1;
            int16_t err = cc->topic_ok[i] ? cc->gerr : KERR_TOPIC_AUTHORIZATION_FAILED;
            if (!err && !pass)
                group_commit_stage(cc->c, topic, p.partition, p.offset, p.epoch, p.metadata);
            if (!err && pass)
                err = group_commit_apply(cc->c, topic, p.partition, p.offset, p.epoch,
                                         p.metadata);
            if (pass) {
                kc_w_i32(w, p.partition);
                kc_w_i16(w, err);
                kc_w_tags(w, fx);
            }
        }
        kc_skip_tags(r, fx);
        if (pass)
            kc_w_tags(w, fx);
    }
    return kc_ok(r) ? 0 : -1;
}

int kapi_offset_commit(struct kreq *req, kc_writer *w)
{
    kc_reader *r = &req->r;
    int16_t v = req->api_version;
    bool fx = req->flexible;
    kc_str group = kc_string(r, fx);
    int32_t gen = v >= 1 ? kc_i32(r) : -1;
    kc_str member = v >= 1 ? kc_string(r, fx) : (kc_str){"", 0};
    kc_str instance = v >= 7 ? kc_string(r, fx) : (kc_str){NULL, -1};
    if (v >= 2 && v <= 4)
        kc_i64(r); /* retention_time_ms: offsets.retention.minutes applies */
    if (!kc_ok(r) || group.len < 0 || member.len < 0)
        return KAPI_EPARSE;
    struct groups *gs = req->b->groups;
    struct group *g = NULL;
    struct commit_ctx cc = {0};
    if (!group_allowed(req, group, ACL_OP_READ))
        cc.gerr = KERR_GROUP_AUTHORIZATION_FAILED; /* before the group is looked up or made */
    else
        cc.gerr = group_commit_check(gs, group, gen, member, instance, &g);
    if (!cc.gerr && !(cc.c = group_commit_begin(gs, g)))
        cc.gerr = GERR_COORDINATOR_NOT_AVAILABLE;
    size_t topics_at = r->off;
    int written = 0, rc = KAPI_EPARSE;
    /* the whole request is read before anything is written */
    if (commit_pass(req, w, &cc, 0) < 0)
        goto out;
    kc_skip_tags(r, fx);
    if (!kc_ok(r))
        goto out;
    if (!cc.gerr)
        written = group_commit_write(cc.c);
    r->off = topics_at;
    if (v >= 3)
        kc_w_i32(w, 0); /* throttle_time_ms */
    if (commit_pass(req, w, &cc, 1) < 0)
        goto out;
    kc_skip_tags(r, fx);
    kc_w_tags(w, fx);
    rc = KAPI_DONE;
    if (written > 0) {
        syncer_wait(req->b->syncer, req->slot); /* answered once it is on disk */
        rc = KAPI_DEFER;
    }
out:
    group_commit_end(cc.c);
    free(cc.topic_ok);
    if (g && written <= 0)
        group_drop_if_unused(gs, g); /* a simple consumer's group that got nothing */
    return rc;
}

/* ---- OffsetFetch ---- */

static void write_fetch_partition(kc_writer *w, int16_t v, bool fx, int32_t partition,
                                  const struct goff *o, int16_t err)
{
    kc_w_i32(w, partition);
    kc_w_i64(w, o ? o->offset : -1);
    if (v >= 5)
        kc_w_i32(w, o ? o->leader_epoch : -1);
    kc_w_string(w, fx, o ? o->metadata : "", o ? o->metadata_len : 0);
    kc_w_i16(w, err);
    kc_w_tags(w, fx);
}

static bool topic_describable(struct kreq *req, const char *name, size_t len)
{
    return auth_allowed(req, ACL_RES_TOPIC, name, len, ACL_OP_DESCRIBE);
}

/* Drops from the sorted offsets all[0..n) the topics req may not describe, checking each
 * topic once. Returns how many are left. */
static size_t keep_describable(struct kreq *req, const struct goff **all, size_t n)
{
    size_t kept = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && !strcmp(all[j]->topic, all[i]->topic))
            j++;
        if (topic_describable(req, all[i]->topic, strlen(all[i]->topic)))
            for (size_t k = i; k < j; k++)
                all[kept++] = all[k];
        i = j;
    }
    return kept;
}

/* Every offset of g, grouped by topic: of the topics req may describe (Kafka leaves the
 * others out without an error). */
static void write_fetch_all(struct kreq *req, kc_writer *w, const struct group *g)
{
    int16_t v = req->api_version;
    bool fx = req->flexible;
    size_t n = 0;
    const struct goff **all = g ? group_offsets_sorted(g, &n) : NULL;
    n = keep_describable(req, all, n);
    int32_t nt = 0;
    for (size_t i = 0; i < n; i++)
        nt += i == 0 || strcmp(all[i]->topic, all[i - 1]->topic) != 0;
    kc_w_array(w, fx, nt);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && !strcmp(all[j]->topic, all[i]->topic))
            j++;
        kc_w_cstr(w, fx, all[i]->topic);
        kc_w_array(w, fx, (int32_t)(j - i));
        for (size_t k = i; k < j; k++)
            write_fetch_partition(w, v, fx, all[k]->partition, all[k], 0);
        kc_w_tags(w, fx);
        i = j;
    }
    free(all);
}

/* Reads one group's topics (null: all) and writes its topics[] answer. A group req may
 * not describe (denied) gets no topics, only its group-level error; v0-1 have no such
 * field, so there each partition carries it. A named topic req may not describe answers
 * TOPIC_AUTHORIZATION_FAILED for each partition. */
static int fetch_group_topics(struct kreq *req, kc_writer *w, const struct group *g, bool denied)
{
    kc_reader *r = &req->r;
    int16_t v = req->api_version;
    bool fx = req->flexible;
    int32_t nt = kc_array(r, fx, fx ? 2 : 6);
    if (!kc_ok(r))
        return -1;
    if (nt < 0) {
        if (denied)
            kc_w_array(w, fx, 0);
        else
            write_fetch_all(req, w, g);
        return 0;
    }
    bool echo = !denied || v < 2;
    kc_w_array(w, fx, echo ? nt : 0);
    for (int32_t i = 0; i < nt && kc_ok(r); i++) {
        kc_str topic = kc_string(r, fx);
        int32_t np = kc_array(r, fx, 4);
        if (!kc_ok(r) || topic.len < 0 || np < 0)
            return -1;
        int16_t err = denied ? KERR_GROUP_AUTHORIZATION_FAILED
                      : topic_describable(req, topic.p, (size_t)topic.len)
                          ? KERR_NONE
                          : KERR_TOPIC_AUTHORIZATION_FAILED;
        if (echo) {
            kc_w_string(w, fx, topic.p, topic.len);
            kc_w_array(w, fx, np);
        }
        for (int32_t j = 0; j < np && kc_ok(r); j++) {
            int32_t part = kc_i32(r);
            if (!echo)
                continue;
            const struct goff *o = g && !err && topic.len <= TOPIC_NAME_MAX
                                       ? group_offset(g, topic.p, (size_t)topic.len, part)
                                       : NULL;
            write_fetch_partition(w, v, fx, part, o, err);
        }
        kc_skip_tags(r, fx);
        if (echo)
            kc_w_tags(w, fx);
    }
    return kc_ok(r) ? 0 : -1;
}

static struct group *find_group(struct kreq *req, kc_str id)
{
    return id.len > 0 ? group_find(req->b->groups, id.p, (size_t)id.len) : NULL;
}

/* The group-level error of an OffsetFetch. */
static int16_t offset_fetch_error(kc_str group, bool denied)
{
    return denied ? KERR_GROUP_AUTHORIZATION_FAILED
           : group.len ? KERR_NONE
                       : GERR_INVALID_GROUP_ID;
}

int kapi_offset_fetch(struct kreq *req, kc_writer *w)
{
    kc_reader *r = &req->r;
    int16_t v = req->api_version;
    bool fx = req->flexible;
    if (v >= 3)
        kc_w_i32(w, 0); /* throttle_time_ms */
    if (v < 8) {
        kc_str group = kc_string(r, fx);
        if (!kc_ok(r) || group.len < 0)
            return KAPI_EPARSE;
        bool denied = !group_allowed(req, group, ACL_OP_DESCRIBE);
        if (fetch_group_topics(req, w, denied ? NULL : find_group(req, group), denied) < 0)
            return KAPI_EPARSE;
        if (v >= 7)
            kc_bool(r); /* require_stable: no transactions, every offset is stable */
        if (v >= 2)
            kc_w_i16(w, offset_fetch_error(group, denied));
        kc_skip_tags(r, fx);
        kc_w_tags(w, fx);
        return kc_ok(r) ? KAPI_DONE : KAPI_EPARSE;
    }
    int32_t ng = kc_array(r, fx, 3);
    if (!kc_ok(r) || ng < 0)
        return KAPI_EPARSE;
    kc_w_array(w, fx, ng);
    for (int32_t i = 0; i < ng && kc_ok(r); i++) {
        kc_str group = kc_string(r, fx);
        if (!kc_ok(r) || group.len < 0)
            return KAPI_EPARSE;
        kc_w_string(w, fx, group.p, group.len);
        bool denied = !group_allowed(req, group, ACL_OP_DESCRIBE);
        if (fetch_group_topics(req, w, denied ? NULL : find_group(req, group), denied) < 0)
            return KAPI_EPARSE;
        kc_skip_tags(r, fx);
        kc_w_i16(w, offset_fetch_error(group, denied));
        kc_w_tags(w, fx);
    }
    kc_bool(r); /* require_stable */
    kc_skip_tags(r, fx);
    kc_w_tags(w, fx);
    return kc_ok(r) ? KAPI_DONE : KAPI_EPARSE;
}

/* ---- DescribeGroups, ListGroups, DeleteGroups, OffsetDelete ---- */

static void describe_member(kc_writer *w, int16_t v, bool fx, const struct group *g,
                            const struct gmember *m)
{
    bool stable = g->state == GS_STABLE;
    const struct gproto *p = stable ? gmember_protocol(m, g->protocol_name) : NULL;
    char host[80];
    snprintf(host, sizeof host, "/%s", m->client_host);
    kc_w_cstr(w, fx, m->id);
    if (v >= 4)
        kc_w_cstr(w, fx, m->instance_id);
    kc_w_cstr(w, fx, m->client_id);
    kc_w_cstr(w, fx, host);
    kc_w_bytes(w, fx, p ? (const void *)p->meta : "", p ? p->meta_len : 0);
    kc_w_bytes(w, fx, stable && m->assignment ? (const void *)m->assignment : "",
               stable ? m->assignment_len : 0);
    kc_w_tags(w, fx);
}

static void describe_group(kc_writer *w, int16_t v, bool fx, kc_str id, const struct group *g)
{
    kc_w_i16(w, id.len > 0 ? KERR_NONE : GERR_INVALID_GROUP_ID);
    kc_w_string(w, fx, id.p, id.len);
    kc_w_cstr(w, fx, group_state_name(g ? g->state : GS_DEAD));
    kc_w_cstr(w, fx, g && g->protocol_type ? g->protocol_type : "");
    kc_w_cstr(w, fx, g && g->state == GS_STABLE && g->protocol_name ? g->protocol_name : "");
    kc_w_array(w, fx, g ? g->nmembers : 0);
    for (const struct gmember *m = g ? g->head : NULL; m; m = m->next)
        describe_member(w, v, fx, g, m);
    if (v >= 3)
        kc_w_i32(w, AUTH_OPS_UNKNOWN);
    kc_w_tags(w, fx);
}

/* A group req may not describe: Kafka's groupError shape, empty strings and no members. */
static void describe_denied(kc_writer *w, int16_t v, bool fx, kc_str id)
{
    kc_w_i16(w, KERR_GROUP_AUTHORIZATION_FAILED);
    kc_w_string(w, fx, id.p, id.len);
    kc_w_cstr(w, fx, ""); /* group_state */
    kc_w_cstr(w, fx, ""); /* protocol_type */
    kc_w_cstr(w, fx, ""); /* protocol_data */
    kc_w_array(w, fx, 0);
    if (v >= 3)
        kc_w_i32(w, AUTH_OPS_UNKNOWN);
    kc_w_tags(w, fx);
}

int kapi_describe_groups(struct kreq *req, kc_writer *w)
{
    kc_reader *r = &req->r;
    int16_t v = req->api_version;
    bool fx = req->flexible;
    int32_t n = kc_array(r, fx, fx ? 1 : 2);
    if (!kc_ok(r) || n < 0)
        return KAPI_EPARSE;
    size_t ids_at = r->off;
    for (int32_t i = 0; i < n && kc_ok(r); i++)
        kc_string(r, fx);
    if (v >= 3)
        kc_bool(r); /* include_authorized_operations */
    kc_skip_tags(r, fx);
    if (!kc_ok(r))
        return KAPI_EPARSE;
    r->off = ids_at;
    if (v >= 1)
        kc_w_i32(w, 0); /* throttle_time_ms */
    kc_w_array(w, fx, n);
    for (int32_t i = 0; i < n; i++) {
        kc_str id = kc_string(r, fx);
        if (group_allowed(req, id, ACL_OP_DESCRIBE))
            describe_group(w, v, fx, id, find_group(req, id));
        else
            describe_denied(w, v, fx, id);
    }
    kc_w_tags(w, fx);
    return KAPI_DONE;
}

struct list_ctx {
    struct kreq *req;
    kc_writer *w;
    bool fx, with_state;
    bool all;        /* DESCRIBE on the cluster: every group, else those req may describe */
    uint32_t states; /* bit per state; 0: all */
    int32_t n;
};

static void list_one(void *arg, struct group *g)
{
    struct list_ctx *lc = arg;
    if (lc->states && !(lc->states & (1u << g->state)))
        return;
    if (!lc->all && !auth_visible(lc->req, ACL_RES_GROUP, g->id, g->id_len, ACL_OP_DESCRIBE))
        return;
    lc->n++;
    kc_w_string(lc->w, lc->fx, g->id, (int32_t)g->id_len);
    kc_w_cstr(lc->w, lc->fx, g->protocol_type ? g->protocol_type : "");
    if (lc->with_state)
        kc_w_cstr(lc->w, lc->fx, group_state_name(g->state));
    kc_w_tags(lc->w, lc->fx);
}

int kapi_list_groups(struct kreq *req, kc_writer *w)
{
    kc_reader *r = &req->r;
    int16_t v = req->api_version;
    bool fx = req->flexible;
    kc_writer groups; /* the entries, counted before the array header goes out */
    kc_writer_init(&groups, w->max);
    struct list_ctx lc = {.req = req, .w = &groups, .fx = fx, .with_state = v >= 4};
    bool unknown_state = false;
    if (v >= 4) {
        int32_t n = kc_array(r, fx, 1);
        for (int32_t i = 0; i < n && kc_ok(r); i++) {
            kc_str s = kc_string(r, fx);
            int st = s.len > 0 ? group_state_parse(s.p, (size_t)s.len) : -1;
            if (st >= 0)
                lc.states |= 1u << st;
            else
                unknown_state = true;
        }
    }
    kc_skip_tags(r, fx);
    if (!kc_ok(r)) {
        kc_writer_free(&groups);
        return KAPI_EPARSE;
    }
    if (unknown_state && !lc.states)
        lc.states = 1u << 31; /* only unknown states asked for: nothing matches */
    lc.all = auth_visible(req, ACL_RES_CLUSTER, ACL_CLUSTER_NAME, sizeof ACL_CLUSTER_NAME - 1,
                          ACL_OP_DESCRIBE);
    groups_foreach(req->b->groups, list_one, &lc);
    if (v >= 1)
        kc_w_i32(w, 0); /* throttle_time_ms */
    kc_w_i16(w, KERR_NONE);
    kc_w_array(w, fx, lc.n);
    kc_w_raw(w, groups.p, groups.len);
    if (groups.err)
        w->err = groups.err;
    kc_writer_free(&groups);
    kc_w_tags(w, fx);
    return KAPI_DONE;
}

int kapi_delete_groups(struct kreq *req, kc_writer *w)
{
    kc_reader *r = &req->r;
    bool fx = req->flexible;
    int32_t n = kc_array(r, fx, fx ? 1 : 2);
    if (!kc_ok(r) || n < 0)
        return KAPI_EPARSE;
    kc_w_i32(w, 0); /* throttle_time_ms */
    kc_w_array(w, fx, n);
    for (int32_t i = 0; i < n && kc_ok(r); i++) {
        kc_str id = kc_string(r, fx);
        if (!kc_ok(r) || id.len < 0)
            return KAPI_EPARSE;
        kc_w_string(w, fx, id.p, id.len);
        kc_w_i16(w, group_allowed(req, id, ACL_OP_DELETE) ? group_delete(req->b->groups, id)
                                                          : KERR_GROUP_AUTHORIZATION_FAILED);
        kc_w_tags(w, fx);
    }
    kc_skip_tags(r, fx);
    kc_w_tags(w, fx);
    return kc_ok(r) ? KAPI_DONE : KAPI_EPARSE;
}

/* The group-level answer of an OffsetDelete. */
static int16_t offset_delete_check(const struct group *g)
{
    if (!g)
        return GERR_GROUP_ID_NOT_FOUND;
    bool consumer = g->protocol_type && !strcmp(g->protocol_type, "consumer");
    if (!consumer && g->state != GS_EMPTY)
        return GERR_NON_EMPTY_GROUP;
    return KERR_NONE;
}

int kapi_offset_delete(struct kreq *req, kc_writer *w)
{
    kc_reader *r = &req->r;
    kc_str id = kc_string(r, false);
    int32_t nt = kc_array(r, false, 6);
    if (!kc_ok(r) || id.len < 0 || nt < 0)
        return KAPI_EPARSE;
    struct groups *gs = req->b->groups;
    bool denied = !group_allowed(req, id, ACL_OP_DELETE);
    struct group *g = denied ? NULL : find_group(req, id);
    int16_t gerr = denied ? KERR_GROUP_AUTHORIZATION_FAILED : offset_delete_check(g);
    kc_w_i16(w, gerr);
    kc_w_i32(w, 0); /* throttle_time_ms */
    kc_w_array(w, false, gerr ? 0 : nt);
    for (int32_t i = 0; i < nt && kc_ok(r); i++) {
        kc_str topic = kc_string(r, false);
        int32_t np = kc_array(r, false, 4);
        if (!kc_ok(r) || topic.len < 0 || np < 0)
            return KAPI_EPARSE;
        bool readable = !gerr && auth_topic_read(req, topic.p, (size_t)topic.len);
        bool subscribed = readable && g->state != GS_EMPTY &&
                          group_subscribed_to(g, topic.p, (size_t)topic.len);
        if (!gerr) {
            kc_w_string(w, false, topic.p, topic.len);
            kc_w_array(w, false, np);
        }
        for (int32_t j = 0; j < np && kc_ok(r); j++) {
            int32_t part = kc_i32(r);
            if (gerr)
                continue;
            int16_t err = !readable    ? KERR_TOPIC_AUTHORIZATION_FAILED
                          : subscribed ? GERR_GROUP_SUBSCRIBED_TO_TOPIC
                                       : KERR_NONE;
            if (!err && group_offset_delete(gs, g, topic.p, (size_t)topic.len, part) < 0)
                err = KERR_UNKNOWN_SERVER;
            kc_w_i32(w, part);
            kc_w_i16(w, err);
        }
    }
    return kc_ok(r) ? KAPI_DONE : KAPI_EPARSE;
}
