/* kapi_meta.c: Metadata and DescribeCluster. A single broker leads every partition. */
#include "acl.h"
#include "auth.h"
#include "broker.h"
#include "conn.h"
#include "kafka.h"
#include "log.h"
#include "share_view.h"
#include "topic.h"

#include <stdio.h>
#include <string.h>

#define AUTH_OPS_UNKNOWN INT32_MIN

/* The operations a principal may perform on a resource, as Kafka's authorized
 * operations bit field (bit n: AclOperation n). */
static int32_t authorized_ops(const struct kreq *req, int8_t res, const char *name, size_t len)
{
    static const int8_t topic_ops[] = {ACL_OP_READ,   ACL_OP_WRITE,    ACL_OP_CREATE,
                                       ACL_OP_DELETE, ACL_OP_ALTER,    ACL_OP_DESCRIBE,
                                       ACL_OP_DESCRIBE_CONFIGS, ACL_OP_ALTER_CONFIGS};
    static const int8_t cluster_ops[] = {ACL_OP_CREATE,         ACL_OP_ALTER,
                                         ACL_OP_DESCRIBE,       ACL_OP_CLUSTER_ACTION,
                                         ACL_OP_DESCRIBE_CONFIGS, ACL_OP_ALTER_CONFIGS,
                                         ACL_OP_IDEMPOTENT_WRITE};
    const int8_t *ops = res == ACL_RES_TOPIC ? topic_ops : cluster_ops;
    size_t n = res == ACL_RES_TOPIC ? sizeof topic_ops : sizeof cluster_ops;
    int32_t bits = 0;
    for (size_t i = 0; i < n; i++)
        if (auth_visible(req, res, name, len, ops[i]))
            bits |= 1 << ops[i];
    return bits;
}

static bool topic_describable(const struct kreq *req, const char *name)
{
    return auth_allowed(req, ACL_RES_TOPIC, name, strlen(name), ACL_OP_DESCRIBE);
}

/* The same for the all-topics listing, which leaves them out quietly. */
static bool topic_listable(const struct kreq *req, const char *name)
{
    return auth_visible(req, ACL_RES_TOPIC, name, strlen(name), ACL_OP_DESCRIBE);
}

/* Writes the one broker this cluster has. */
static void write_brokers(const struct kreq *req, kc_writer *w, bool with_rack)
{
    const struct broker *b = req->b;
    const char *host;
    int32_t port;
    conn_advertised(req->conn, &host, &port);
    kc_w_array(w, req->flexible, 1);
    kc_w_i32(w, b->cfg.node_id);
    kc_w_cstr(w, req->flexible, host);
    kc_w_i32(w, port);
    if (with_rack)
        kc_w_string(w, req->flexible, NULL, -1); /* rack */
    kc_w_tags(w, req->flexible);
}

static void write_partition(const struct kreq *req, kc_writer *w, int32_t id)
{
    int16_t v = req->api_version;
    int32_t node = req->b->cfg.node_id;
    kc_w_i16(w, KERR_NONE);
    kc_w_i32(w, id);
    kc_w_i32(w, node); /* leader_id */
    if (v >= 7)
        kc_w_i32(w, 0); /* leader_epoch */
    for (int i = 0; i < 2; i++) { /* replica_nodes, isr_nodes */
        kc_w_array(w, req->flexible, 1);
        kc_w_i32(w, node);
    }
    if (v >= 5)
        kc_w_array(w, req->flexible, 0); /* offline_replicas */
    kc_w_tags(w, req->flexible);
}

/* One topics[] entry: t, or an error for a name (or id) that has no topic. */
static void write_topic(const struct kreq *req, kc_writer *w, const struct topic *t, kc_str name,
                        const uint8_t *id, int16_t err, bool want_ops)
{
    static const uint8_t zero[16];
    int16_t v = req->api_version;
    kc_w_i16(w, err);
    if (t)
        kc_w_cstr(w, req->flexible, t->name);
    else if (v >= 12 && name.len < 0)
        kc_w_string(w, true, NULL, -1);
    else
        kc_w_string(w, req->flexible, name.p ? name.p : "", name.len < 0 ? 0 : name.len);
    if (v >= 10)
        kc_w_uuid(w, t ? t->id : (id ? id : zero));
    if (v >= 1)
        kc_w_bool(w, false); /* is_internal */
    int32_t n = t ? t->partitions : 0;
    kc_w_array(w, req->flexible, n);
    for (int32_t i = 0; i < n; i++)
        write_partition(req, w, i);
    if (v >= 8)
        kc_w_i32(w, want_ops && t ? authorized_ops(req, ACL_RES_TOPIC, t->name, strlen(t->name))
                                  : AUTH_OPS_UNKNOWN);
    kc_w_tags(w, req->flexible);
}

/* One topics[] entry for a shared view (share_view.h): V virtual partitions. */
static void write_view(const struct kreq *req, kc_writer *w, const struct sview *sv,
                       bool want_ops)
{
    int16_t v = req->api_version;
    kc_w_i16(w, KERR_NONE);
    kc_w_cstr(w, req->flexible, share_view_name(sv));
    if (v >= 10)
        kc_w_uuid(w, share_view_id(sv));
    if (v >= 1)
        kc_w_bool(w, false); /* is_internal */
    kc_w_array(w, req->flexible, share_view_partitions(sv));
    for (int32_t i = 0; i < share_view_partitions(sv); i++)
        write_partition(req, w, i);
    const char *vn = share_view_name(sv);
    if (v >= 8)
        kc_w_i32(w, want_ops ? authorized_ops(req, ACL_RES_TOPIC, vn, strlen(vn))
                             : AUTH_OPS_UNKNOWN);
    kc_w_tags(w, req->flexible);
}

struct all_ctx {
    const struct kreq *req;
    kc_writer *w;
    int32_t n;
    bool want_ops;
};

/* One topic of an all-topics request; those the principal may not describe are left
 * out (the count is fixed up after the scan). */
static void write_one_of_all(void *arg, struct topic *t)
{
    struct all_ctx *a = arg;
    static const kc_str none = {NULL, -1};
    if (topic_listable(a->req, t->name)) {
        write_topic(a->req, a->w, t, none, NULL, KERR_NONE, a->want_ops);
        a->n++;
    }
    struct sview *sv = share_view_of(a->req->b, t);
    if (sv && topic_listable(a->req, share_view_name(sv))) {
        write_view(a->req, a->w, sv, a->want_ops);
        a->n++;
    }
}

/* Rewrites the topics[] count at `at` when the scan saw a different number of records
 * than the stored count (a corrupt record): the array length must match exactly. */
static void metadata_fix_count(kc_writer *w, size_t at, bool fx, int32_t n)
{
    if (!fx) {
        kc_w_patch_i32(w, at, n);
        return;
    }
    kc_writer tmp;
    kc_writer_init(&tmp, 16);
    kc_w_array(&tmp, true, n);
    size_t old = 1;
    while (w->p[at + old - 1] & 0x80)
        old++;
    if (tmp.len > old && !kc_w_room(w, tmp.len - old))
        w->err = KC_ENOMEM;
    if (!w->err) {
        memmove(w->p + at + tmp.len, w->p + at + old, w->len - at - old);
        memcpy(w->p + at, tmp.p, tmp.len);
        w->len = w->len + tmp.len - old;
    }
    kc_writer_free(&tmp);
}

/* Whether the principal may create topic name: CREATE on the cluster or the topic. */
static bool may_create(const struct kreq *req, kc_str name)
{
    return auth_visible(req, ACL_RES_CLUSTER, ACL_CLUSTER_NAME, sizeof ACL_CLUSTER_NAME - 1,
                        ACL_OP_CREATE) ||
           auth_allowed(req, ACL_RES_TOPIC, name.p, (size_t)name.len, ACL_OP_CREATE);
}

/* Looks up (and, when allowed, creates) one requested topic and writes its entry. A
 * topic the principal may not describe is answered TOPIC_AUTHORIZATION_FAILED whether
 * or not it exists, so names do not leak. */
static void metadata_one(struct kreq *req, kc_writer *w, kc_str name, const uint8_t *id,
                         bool allow_create, bool want_ops)
{
    static const kc_str none = {NULL, -1};
    struct topics *ts = req->b->topics;
    struct topic *t = NULL;
    static const uint8_t zero[16];
    if (name.len >= 0)
        t = topic_find(ts, name.p, (size_t)name.len);
    else if (id && memcmp(id, zero, 16) != 0)
        t = topic_find_id(ts, id);
    struct sview *sv = t ? NULL
                       : name.len >= 0 ? share_view_find(req->b, name.p, (size_t)name.len)
                       : id && memcmp(id, zero, 16) != 0 ? share_view_find_id(req->b, id)
                                                        : NULL;
    const char *found = sv ? share_view_name(sv) : t ? t->name : NULL;
    if (found && !topic_describable(req, found)) {
        write_topic(req, w, NULL, name.len >= 0 ? name : none, id,
                    KERR_TOPIC_AUTHORIZATION_FAILED, false);
        return;
    }
    if (sv) {
        write_view(req, w, sv, want_ops);
        return;
    }
    if (t || name.len < 0) {
        write_topic(req, w, t, name, id, t ? KERR_NONE : KERR_UNKNOWN_TOPIC_ID, want_ops);
        return;
    }
    bool describe = auth_allowed(req, ACL_RES_TOPIC, name.p, (size_t)name.len, ACL_OP_DESCRIBE);
    bool create = allow_create && req->b->cfg.auto_create_topics && may_create(req, name);
    int16_t err = KERR_UNKNOWN_TOPIC_OR_PARTITION;
    if (!describe && !create) {
        err = KERR_TOPIC_AUTHORIZATION_FAILED;
    } else if (topic_name_check(name.p, (size_t)name.len) != KERR_NONE) {
        err = KERR_INVALID_TOPIC;
    } else if (create) {
        char msg[256];
        err = (int16_t)topic_create(ts, name.p, (size_t)name.len, req->b->cfg.default_partitions,
                                    NULL, 0, false, &t, msg, sizeof msg);
        if (err)
            log_warn("auto-create of %.*s failed: %s", name.len, name.p, msg);
    }
    write_topic(req, w, err ? NULL : t, name, id, err, want_ops);
}

int kapi_metadata(struct kreq *req, kc_writer *w)
{
    kc_reader *r = &req->r;
    int16_t v = req->api_version;
    bool fx = req->flexible;
    int32_t n = kc_array(r, fx, fx ? 2 : 2);
    size_t topics_at = r->off;
    /* First pass: skip the request's topics to reach the flags after them. */
    for (int32_t i = 0; i < n && kc_ok(r); i++) {
        if (v >= 10)
            kc_raw(r, 16);
        kc_string(r, fx);
        kc_skip_tags(r, fx);
    }
    bool allow_create = v >= 4 ? kc_bool(r) : true;
    bool cluster_ops = false, topic_ops = false;
    if (v >= 8 && v <= 10)
        cluster_ops = kc_bool(r); /* include_cluster_authorized_operations */
    if (v >= 8)
        topic_ops = kc_bool(r); /* include_topic_authorized_operations */
    kc_skip_tags(r, fx);
    if (!kc_ok(r))
        return KAPI_EPARSE;
    if (v >= 3)
        kc_w_i32(w, 0); /* throttle_time_ms */
    write_brokers(req, w, v >= 1);
    if (v >= 2)
        kc_w_cstr(w, fx, req->b->cfg.cluster_id);
    if (v >= 1)
        kc_w_i32(w, req->b->cfg.node_id); /* controller_id */
    if (n < 0 || (n == 0 && v == 0)) {
        /* every topic: the one request that is O(topics); the response ceiling bounds it */
        size_t at = w->len;
        kc_w_array(w, fx, (int32_t)topics_count(req->b->topics));
        struct all_ctx a = {req, w, 0, topic_ops};
        topics_scan(req->b->topics, write_one_of_all, &a);
        if (a.n != (int32_t)topics_count(req->b->topics))
            metadata_fix_count(w, at, fx, a.n);
    } else {
        kc_reader tr = *r;
        tr.off = topics_at;
        kc_w_array(w, fx, n);
        for (int32_t i = 0; i < n; i++) {
            uint8_t id[16] = {0};
            if (v >= 10)
                kc_uuid(&tr, id);
            kc_str name = kc_string(&tr, fx);
            kc_skip_tags(&tr, fx);
            metadata_one(req, w, name, v >= 10 ? id : NULL, allow_create, topic_ops);
        }
    }
    if (v >= 8 && v <= 10)
        kc_w_i32(w, cluster_ops ? authorized_ops(req, ACL_RES_CLUSTER, ACL_CLUSTER_NAME,
                                                 sizeof ACL_CLUSTER_NAME - 1)
                                : AUTH_OPS_UNKNOWN);
    kc_w_tags(w, fx);
    return KAPI_DONE;
}

int kapi_describe_cluster(struct kreq *req, kc_writer *w)
{
    kc_reader *r = &req->r;
    bool want_ops = kc_bool(r); /* include_cluster_authorized_operations */
    int8_t endpoint_type = req->api_version >= 1 ? kc_i8(r) : 1;
    kc_skip_tags(r, true);
    if (!kc_ok(r))
        return KAPI_EPARSE;
    kc_w_i32(w, 0); /* throttle_time_ms */
    bool bad = endpoint_type != 1;
    bool denied = !auth_allowed(req, ACL_RES_CLUSTER, ACL_CLUSTER_NAME,
                                sizeof ACL_CLUSTER_NAME - 1, ACL_OP_DESCRIBE);
    kc_w_i16(w, denied ? KERR_CLUSTER_AUTHORIZATION_FAILED : bad ? KERR_INVALID_REQUEST : KERR_NONE);
    kc_w_cstr(w, true, denied ? "not authorized to describe the cluster"
                       : bad  ? "only broker endpoints are served"
                              : NULL);
    if (req->api_version >= 1)
        kc_w_i8(w, endpoint_type);
    kc_w_cstr(w, true, req->b->cfg.cluster_id);
    kc_w_i32(w, req->b->cfg.node_id); /* controller_id */
    write_brokers(req, w, true);
    kc_w_i32(w, want_ops ? authorized_ops(req, ACL_RES_CLUSTER, ACL_CLUSTER_NAME,
                                          sizeof ACL_CLUSTER_NAME - 1)
                         : AUTH_OPS_UNKNOWN);
    kc_w_tags(w, true);
    return KAPI_DONE;
}
