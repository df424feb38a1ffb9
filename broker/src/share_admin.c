/* share_admin.c: share groups in the admin API (see share_admin.h). */
#include "share_admin.h"

#include "broker.h"
#include "sgroup.h"
#include "share.h"
#include "share_view.h"
#include "topic.h"

#include <stdio.h>
#include <string.h>

static cJSON *err_body(int *status, int st, const char *code, const char *msg)
{
    cJSON *j = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(j, "error");
    cJSON_AddStringToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", msg);
    *status = st;
    return j;
}

/* Reads an optional integer member in [lo, hi]; returns 0 (absent: *out untouched) or -1. */
static int opt_int(const cJSON *o, const char *k, int64_t lo, int64_t hi, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v)
        return 0;
    /* the range first: converting a double outside int64_t's (1e999 is inf) is undefined */
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= (double)lo && v->valuedouble <= (double)hi) ||
        v->valuedouble != (double)(int64_t)v->valuedouble)
        return -1;
    *out = (int64_t)v->valuedouble;
    return 0;
}

/* Gives topic t a view served by share group id, with V partitions and lock_ms. */
static int put_view(struct broker *b, struct topic *t, const char *id, int64_t vparts,
                    int64_t lock_ms, int64_t max_deliveries, char *msg, size_t msglen)
{
    char nv[24], nl[24], nd[24];
    struct topic_cfg_change ch[4];
    int n = 0;
    snprintf(nv, sizeof nv, "%lld", (long long)vparts);
    ch[n++] = (struct topic_cfg_change){"shared.virtual.partitions", 25, nv, strlen(nv)};
    ch[n++] = (struct topic_cfg_change){"shared.group", 12, id, strlen(id)};
    if (lock_ms > 0) {
        snprintf(nl, sizeof nl, "%lld", (long long)lock_ms);
        ch[n++] = (struct topic_cfg_change){"shared.lock.ms", 14, nl, strlen(nl)};
    }
    if (max_deliveries > 0) {
        snprintf(nd, sizeof nd, "%lld", (long long)max_deliveries);
        ch[n++] = (struct topic_cfg_change){"shared.max.deliveries", 21, nd, strlen(nd)};
    }
    int rc = topic_alter_config(b->topics, t, ch, n, true, true, msg, msglen);
    if (rc == KERR_NONE)
        rc = topic_alter_config(b->topics, t, ch, n, true, false, msg, msglen);
    if (rc != KERR_NONE)
        return -1;
    return share_view_setup(b, t, msg, msglen);
}

cJSON *share_admin_put(struct broker *b, const char *id, const cJSON *body, int *status)
{
    int64_t expected = -1, vparts = 0, lock_ms = 0, maxd = 0;
    char msg[256];
    if (!cJSON_IsObject(body))
        return err_body(status, 400, "invalid_argument", "body must be a JSON object");
    const cJSON *topic = cJSON_GetObjectItemCaseSensitive(body, "topic");
    if ((topic && !cJSON_IsString(topic)) ||
        opt_int(body, "expected_members", 0, 1000000, &expected) < 0 ||
        opt_int(body, "virtual_partitions", 1, 65536, &vparts) < 0 ||
        opt_int(body, "lock_ms", 1000, 3600000, &lock_ms) < 0 ||
        opt_int(body, "max_deliveries", 2, SHARE_MAX_DELIVERIES_MAX, &maxd) < 0)
        return err_body(status, 400, "invalid_argument",
                        "topic must be a string; expected_members 0..1000000, "
                        "virtual_partitions 1..65536, lock_ms 1000..3600000, "
                        "max_deliveries 2..100");
    if (vparts && !topic)
        return err_body(status, 400, "invalid_argument", "virtual_partitions needs a topic");
    struct topic *t =
        topic ? topic_find(b->topics, topic->valuestring, strlen(topic->valuestring)) : NULL;
    if (topic && !t)
        return err_body(status, 404, "not_found", "no such topic");
    if (vparts && put_view(b, t, id, vparts, lock_ms, maxd, msg, sizeof msg) < 0)
        return err_body(status, 400, "invalid_config", msg);
    struct share_group *g = share_group_get(b->shares, id, strlen(id), true);
    if (!g)
        return err_body(status, 400, "invalid_group_id", "invalid share group id");
    struct share_config c = *share_group_config(g);
    if (expected >= 0)
        c.expected_members = (int32_t)expected;
    if (lock_ms > 0)
        c.lock_ms = (int32_t)lock_ms;
    if (maxd > 0)
        c.max_deliveries = (int32_t)maxd;
    if (share_group_configure(g, &c, msg, sizeof msg) < 0)
        return err_body(status, 400, "invalid_argument", msg);
    *status = 200;
    return share_admin_group(b, id);
}

cJSON *share_admin_release(struct broker *b, const char *id, const char *member, int *status)
{
    struct share_group *g = share_group_get(b->shares, id, strlen(id), false);
    bool sg = b->sgroups && sgroup_find(b->sgroups, id, strlen(id));
    if (!g && !sg)
        return err_body(status, 404, "not_found", "no such share group");
    int64_t n = 0;
    bool found = false;
    /* a KIP-932 member by member id, then every one whose client.id is {member} (the
     * operator names pods; a member-id match released above gives back nothing twice) */
    struct share_member *m = g ? share_member_get(g, member, strlen(member), false) : NULL;
    if (m) {
        n += share_member_release(m);
        found = true;
    }
    int64_t c = sgroup_release_client(b->sgroups, id, member);
    if (c >= 0) {
        n += c;
        found = true;
    }
    int64_t v = g ? share_view_release_member(b, g, member) : -1;
    if (v >= 0) {
        n += v;
        found = found || v > 0;
    }
    share_flush(b->shares);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "group_id", id);
    cJSON_AddStringToObject(j, "member", member);
    cJSON_AddBoolToObject(j, "known", found);
    cJSON_AddNumberToObject(j, "released", (double)n);
    *status = 200;
    return j;
}

struct part_ctx {
    struct broker *b;
    cJSON *arr;
};

static void add_part(void *arg, struct share_part *sp, const struct share_stats *st)
{
    struct part_ctx *x = arg;
    cJSON *arr = x->arr, *o = cJSON_CreateObject();
    struct topic *t = topic_find_id(x->b->topics, share_part_topic_id(sp));
    cJSON_AddStringToObject(o, "topic", t ? t->name : "");
    cJSON_AddNumberToObject(o, "partition", share_part_partition(sp));
    cJSON_AddNumberToObject(o, "start_offset", (double)share_part_start(sp));
    cJSON_AddNumberToObject(o, "next_offset", (double)share_part_next(sp));
    cJSON_AddNumberToObject(o, "inflight", (double)st->inflight);
    cJSON_AddNumberToObject(o, "acquired", (double)st->acquired);
    cJSON_AddItemToArray(arr, o);
}

static void add_member(void *arg, struct share_member *m)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "member_id", share_member_id(m));
    cJSON_AddNumberToObject(o, "inflight", (double)share_member_inflight(m));
    cJSON_AddItemToArray(arg, o);
}

static cJSON *group_json(struct broker *b, struct share_group *g)
{
    struct share_stats st;
    const struct share_config *c = share_group_config(g);
    share_group_stats(g, &st);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "group_id", share_group_id(g));
    cJSON_AddStringToObject(j, "type", "share");
    cJSON *cfg = cJSON_AddObjectToObject(j, "config");
    cJSON_AddNumberToObject(cfg, "lock_ms", c->lock_ms);
    cJSON_AddNumberToObject(cfg, "max_deliveries", c->max_deliveries);
    cJSON_AddNumberToObject(cfg, "max_inflight", c->max_inflight);
    cJSON_AddNumberToObject(cfg, "expected_members", c->expected_members);
    cJSON_AddStringToObject(cfg, "auto_offset_reset",
                            c->auto_reset == SHARE_RESET_EARLIEST ? "earliest" : "latest");
    cJSON_AddNumberToObject(j, "inflight", (double)st.inflight);
    cJSON_AddNumberToObject(j, "acquired", (double)st.acquired);
    cJSON_AddNumberToObject(j, "acknowledged", (double)st.acked_total);
    cJSON_AddNumberToObject(j, "redeliveries", (double)st.redeliveries_total);
    cJSON_AddNumberToObject(j, "archived", (double)st.archived_total);
    cJSON_AddNumberToObject(j, "lock_expiries", (double)st.expired_total);
    cJSON *members = cJSON_AddArrayToObject(j, "members");
    share_group_foreach_member(g, add_member, members);
    struct part_ctx x = {b, cJSON_AddArrayToObject(j, "partitions")};
    share_group_foreach_part(g, add_part, &x);
    cJSON *view = share_view_json(b, g);
    if (view)
        cJSON_AddItemToObject(j, "view", view);
    return j;
}

cJSON *share_admin_group(struct broker *b, const char *id)
{
    struct share_group *g = share_group_get(b->shares, id, strlen(id), false);
    if (!g)
        g = share_view_group_of_classic(b, id);
    return g ? group_json(b, g) : NULL;
}

static void list_one(void *arg, struct share_group *g)
{
    struct share_stats st;
    share_group_stats(g, &st);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "group_id", share_group_id(g));
    cJSON_AddStringToObject(o, "type", "share");
    cJSON_AddNumberToObject(o, "members", st.members);
    cJSON_AddNumberToObject(o, "inflight", (double)st.inflight);
    cJSON_AddItemToArray(arg, o);
}

void share_admin_list(struct broker *b, cJSON *arr)
{
    shares_foreach(b->shares, list_one, arr);
}
