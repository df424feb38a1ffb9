/* quota.c: byte-rate quotas per principal (quota.h). Each principal with a limit has a
 * token bucket per kind holding at most one second of its rate; a request takes its
 * bytes from it, and a negative balance is the debt the principal must wait off. */
#include "quota.h"

#include "broker.h"
#include "conn.h"
#include "ev.h"
#include "hash.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { QUOTA_MAX_THROTTLE_MS = 30000, QUOTA_NAME_MAX = 263 };

static const char key_prefix[] = "quota/";

struct qent {
    struct hnode hnode; /* in the table, keyed by name */
    int64_t rate[QUOTA_KINDS];   /* -1: the broker default */
    double tokens[QUOTA_KINDS];  /* bytes that may still pass now; may be negative */
    int64_t last_us[QUOTA_KINDS];
    bool override;
    char name[];
};

struct quotas {
    struct store *st;
    int64_t dflt[QUOTA_KINDS];
    struct htab tab;
};

static struct qent *find(const struct quotas *q, const char *name)
{
    uint64_t h = hash_bytes(name, strlen(name));
    for (struct hnode *n = htab_first(&q->tab, h); n; n = htab_next(n)) {
        struct qent *e = HTAB_ENTRY(n, struct qent, hnode);
        if (!strcmp(e->name, name))
            return e;
    }
    return NULL;
}

static struct qent *get(struct quotas *q, const char *name)
{
    struct qent *e = find(q, name);
    size_t len = strlen(name);
    if (e || len > QUOTA_NAME_MAX || !(e = calloc(1, sizeof *e + len + 1)))
        return e;
    memcpy(e->name, name, len + 1);
    for (int k = 0; k < QUOTA_KINDS; k++)
        e->rate[k] = -1;
    if (htab_insert(&q->tab, &e->hnode, hash_bytes(name, len)) < 0) {
        free(e);
        return NULL;
    }
    return e;
}

static int64_t effective(const struct quotas *q, const struct qent *e, int k)
{
    return e && e->rate[k] >= 0 ? e->rate[k] : q->dflt[k];
}

struct quotas *quotas_open(struct store *st, int64_t produce_default, int64_t fetch_default)
{
    struct quotas *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->st = st;
    q->dflt[QUOTA_PRODUCE] = produce_default;
    q->dflt[QUOTA_FETCH] = fetch_default;
    if (!st)
        return q;
    const char *lo = key_prefix, *hi = "quota0"; /* '0' follows '/' */
    struct store_it *it = store_it_new(st, STORE_CF_META, lo, strlen(lo), hi, strlen(hi));
    for (store_it_first(it); it && store_it_valid(it); store_it_next(it)) {
        size_t kl, vl;
        const uint8_t *k = store_it_key(it, &kl), *v = store_it_value(it, &vl);
        char name[QUOTA_NAME_MAX + 1];
        size_t nl = kl - (sizeof key_prefix - 1);
        if (vl != 16 || nl == 0 || nl > QUOTA_NAME_MAX)
            continue;
        memcpy(name, k + sizeof key_prefix - 1, nl);
        name[nl] = 0;
        struct qent *e = get(q, name);
        if (!e)
            continue;
        e->override = true;
        e->rate[0] = (int64_t)kc_get_be64(v);
        e->rate[1] = (int64_t)kc_get_be64(v + 8);
    }
    store_it_free(it);
    return q;
}

void quotas_free(struct quotas *q)
{
    if (!q)
        return;
    HTAB_FOREACH(&q->tab, i, n, nx)
        free(HTAB_ENTRY(n, struct qent, hnode));
    htab_free(&q->tab);
    free(q);
}

int quotas_set(struct quotas *q, const char *principal, const int64_t rate[QUOTA_KINDS])
{
    struct qent *e = get(q, principal);
    if (!e)
        return -1;
    char key[sizeof key_prefix + QUOTA_NAME_MAX];
    int kl = snprintf(key, sizeof key, "%s%s", key_prefix, principal);
    uint8_t v[16];
    kc_put_be64(v, (uint64_t)rate[0]);
    kc_put_be64(v + 8, (uint64_t)rate[1]);
    if (q->st && store_put(q->st, STORE_CF_META, key, (size_t)kl, v, sizeof v) < 0)
        return -1;
    for (int k = 0; k < QUOTA_KINDS; k++) {
        e->rate[k] = rate[k] < 0 ? -1 : rate[k];
        e->last_us[k] = 0; /* a new rate starts with a full bucket */
    }
    e->override = true;
    return 0;
}

bool quotas_get(const struct quotas *q, const char *principal, int64_t rate[QUOTA_KINDS])
{
    const struct qent *e = find(q, principal);
    for (int k = 0; k < QUOTA_KINDS; k++)
        rate[k] = effective(q, e, k);
    return e && e->override;
}

int quotas_delete(struct quotas *q, const char *principal)
{
    struct qent *e = find(q, principal);
    if (!e || !e->override)
        return -1;
    char key[sizeof key_prefix + QUOTA_NAME_MAX];
    int kl = snprintf(key, sizeof key, "%s%s", key_prefix, principal);
    if (q->st && store_del(q->st, STORE_CF_META, key, (size_t)kl) < 0)
        return -1;
    e->override = false;
    for (int k = 0; k < QUOTA_KINDS; k++)
        e->rate[k] = -1;
    return 0;
}

int32_t quotas_charge(struct quotas *q, const char *principal, int kind, int64_t bytes,
                      int64_t now_us)
{
    const struct qent *f = find(q, principal);
    int64_t rate = effective(q, f, kind);
    if (rate <= 0 || bytes <= 0)
        return 0;
    struct qent *e = get(q, principal);
    if (!e)
        return 0;
    if (!e->last_us[kind]) {
        e->tokens[kind] = (double)rate; /* one second of burst to start with */
    } else {
        e->tokens[kind] += (double)rate * (double)(now_us - e->last_us[kind]) / 1e6;
        if (e->tokens[kind] > (double)rate)
            e->tokens[kind] = (double)rate;
    }
    e->last_us[kind] = now_us;
    e->tokens[kind] -= (double)bytes;
    if (e->tokens[kind] >= 0)
        return 0;
    double ms = -e->tokens[kind] * 1000.0 / (double)rate;
    return ms > QUOTA_MAX_THROTTLE_MS ? QUOTA_MAX_THROTTLE_MS : (int32_t)ms + 1;
}

int32_t quota_request(const struct kreq *req, int kind, int64_t bytes)
{
    struct broker *b = req->b;
    if (!b->quotas || !req->conn)
        return 0;
    int32_t ms = quotas_charge(b->quotas, req->conn->principal, kind, bytes, ev_now_us());
    if (ms > 0) {
        conn_throttle(req->conn, ms);
        metrics_throttled(b->metrics, kind, ms);
    }
    return ms;
}
