/* group_offsets.c: committed offsets and group records. Both live in the offsets column
 * family under big-endian, length-prefixed keys, so one group's offsets are one
 * contiguous range:
 *   'g' | u16 len | group                                   -> group record
 *   'o' | u16 len | group | u16 len | topic | i32 partition -> offset record
 * A copy of every offset is kept in memory (a hash per group) so OffsetFetch, lag and
 * expiry never read the store; the store is read once, at startup. */
#include "group.h"
#include "hash.h"

#include "broker.h"
#include "log.h"
#include "share_view.h"
#include "store.h"
#include "topic.h"

#include <stdlib.h>
#include <string.h>

enum { REC_VERSION = 1, KEY_MAX = 3 + GROUP_ID_MAX + 2 + TOPIC_NAME_MAX + 4 };

/* ---- keys and values ---- */

static size_t group_key(uint8_t *k, char tag, const char *id, size_t len)
{
    k[0] = (uint8_t)tag;
    k[1] = (uint8_t)(len >> 8);
    k[2] = (uint8_t)len;
    memcpy(k + 3, id, len);
    return 3 + len;
}

static size_t offset_key(uint8_t *k, const struct group *g, const char *topic, size_t tlen,
                         int32_t partition)
{
    size_t n = group_key(k, 'o', g->id, g->id_len);
    k[n] = (uint8_t)(tlen >> 8);
    k[n + 1] = (uint8_t)tlen;
    memcpy(k + n + 2, topic, tlen);
    n += 2 + tlen;
    kc_put_be32(k + n, (uint32_t)partition);
    return n + 4;
}

/* The first key after every key that starts with prefix k[0..n). */
static void prefix_end(uint8_t *k, size_t n)
{
    for (size_t i = n; i-- > 0;) {
        if (++k[i] != 0)
            return;
    }
}

static void group_value(kc_writer *w, const struct group *g)
{
    kc_w_i8(w, REC_VERSION);
    kc_w_i32(w, g->generation);
    kc_w_i64(w, g->state_ms);
    kc_w_cstr(w, false, g->protocol_type);
}

static void offset_value(kc_writer *w, int64_t offset, int32_t epoch, int64_t ts, kc_str meta)
{
    kc_w_i8(w, REC_VERSION);
    kc_w_i64(w, offset);
    kc_w_i32(w, epoch);
    kc_w_i64(w, ts);
    kc_w_string(w, false, meta.len > 0 ? meta.p : "", meta.len > 0 ? meta.len : 0);
}

/* ---- the in-memory table ---- */

static uint64_t off_hash(const char *topic, size_t tlen, int32_t partition)
{
    return hash_mix(hash_bytes(topic, tlen), (uint32_t)partition);
}

static struct goff *off_find(const struct group *g, const char *topic, size_t tlen,
                             int32_t partition)
{
    uint64_t h = off_hash(topic, tlen, partition);
    for (struct hnode *n = htab_first(&g->offs, h); n; n = htab_next(n)) {
        struct goff *o = HTAB_ENTRY(n, struct goff, hnode);
        if (o->partition == partition && strlen(o->topic) == tlen && !memcmp(o->topic, topic, tlen))
            return o;
    }
    return NULL;
}

const struct goff *group_offset(const struct group *g, const char *topic, size_t tlen,
                                int32_t partition)
{
    return off_find(g, topic, tlen, partition);
}

/* Inserts or updates one offset in memory. Returns 0 or -1 (out of memory). */
static int off_put(struct group *g, const char *topic, size_t tlen, int32_t partition,
                   int64_t offset, int32_t epoch, int64_t ts, kc_str meta)
{
    int32_t mlen = meta.len > 0 ? meta.len : 0;
    char *m = malloc((size_t)mlen + 1);
    if (!m)
        return -1;
    if (mlen)
        memcpy(m, meta.p, (size_t)mlen);
    m[mlen] = 0;
    struct goff *o = off_find(g, topic, tlen, partition);
    if (!o) {
        o = calloc(1, sizeof *o + tlen + 1);
        if (!o || htab_insert(&g->offs, &o->hnode, off_hash(topic, tlen, partition)) < 0) {
            free(o);
            free(m);
            return -1;
        }
        memcpy(o->topic, topic, tlen);
        o->partition = partition;
    }
    free(o->metadata);
    o->metadata = m;
    o->metadata_len = mlen;
    o->offset = offset;
    o->leader_epoch = epoch;
    o->commit_ts = ts;
    return 0;
}

static void off_remove(struct group *g, struct goff *o)
{
    htab_remove(&g->offs, &o->hnode);
    free(o->metadata);
    free(o);
}

void group_offsets_free(struct group *g)
{
    HTAB_FOREACH(&g->offs, i, n, nx)
        off_remove(g, HTAB_ENTRY(n, struct goff, hnode));
    htab_free(&g->offs);
}

static int off_cmp(const void *a, const void *b)
{
    const struct goff *x = *(const struct goff *const *)a, *y = *(const struct goff *const *)b;
    int c = strcmp(x->topic, y->topic);
    if (c)
        return c;
    return x->partition < y->partition ? -1 : x->partition > y->partition;
}

const struct goff **group_offsets_sorted(const struct group *g, size_t *n)
{
    *n = 0;
    if (!g->offs.n)
        return NULL;
    const struct goff **v = malloc(g->offs.n * sizeof *v);
    if (!v)
        return NULL;
    HTAB_FOREACH(&g->offs, i, hn, nx)
        v[(*n)++] = HTAB_ENTRY(hn, struct goff, hnode);
    qsort(v, *n, sizeof *v, off_cmp);
    return v;
}

/* ---- writes ---- */

static void wb_group_record(struct store_wb *wb, const struct group *g, kc_writer *w)
{
    uint8_t k[KEY_MAX];
    size_t kl = group_key(k, 'g', g->id, g->id_len);
    kc_writer_reset(w);
    group_value(w, g);
    if (!w->err)
        store_wb_put(wb, STORE_CF_OFFSETS, k, kl, w->p, w->len);
}

int group_persist(struct groups *gs, struct group *g)
{
    struct store_wb *wb = store_wb_new(groups_broker(gs)->store);
    kc_writer w;
    kc_writer_init(&w, 4096);
    int rc = -1;
    if (!wb)
        goto out;
    wb_group_record(wb, g, &w);
    if (w.err == 0 && store_write(groups_broker(gs)->store, wb, 0) == 0) {
        g->persisted = true;
        rc = 0;
    }
out:
    kc_writer_free(&w);
    store_wb_free(wb);
    return rc;
}

int group_unpersist(struct groups *gs, struct group *g, bool offsets)
{
    struct store *st = groups_broker(gs)->store;
    struct store_wb *wb = store_wb_new(st);
    if (!wb)
        return -1;
    uint8_t k[KEY_MAX], e[KEY_MAX];
    size_t kl = group_key(k, 'g', g->id, g->id_len);
    store_wb_del(wb, STORE_CF_OFFSETS, k, kl);
    if (offsets) {
        kl = group_key(k, 'o', g->id, g->id_len);
        memcpy(e, k, kl);
        prefix_end(e, kl);
        store_wb_del_range(wb, STORE_CF_OFFSETS, k, kl, e, kl);
    }
    int rc = store_write(st, wb, 0);
    store_wb_free(wb);
    if (rc == 0) {
        g->persisted = false;
        if (offsets)
            group_offsets_free(g);
    }
    return rc;
}

struct goff_commit {
    kc_str topic;
    int32_t partition;
    kc_str metadata;
};

/* Per-partition checks of one commit entry; *view is set for a shared view's partition. */
static int16_t commit_entry_check(struct groups *gs, const struct goff_commit *c, bool *view)
{
    struct broker *b = groups_broker(gs);
    struct topic *t =
        c->topic.len > 0 ? topic_find(b->topics, c->topic.p, (size_t)c->topic.len) : NULL;
    struct sview *sv =
        t || c->topic.len <= 0 ? NULL : share_view_find(b, c->topic.p, (size_t)c->topic.len);
    int32_t parts = t ? t->partitions : sv ? share_view_partitions(sv) : 0;
    *view = sv != NULL;
    if ((!t && !sv) || c->partition < 0 || c->partition >= parts)
        return KERR_UNKNOWN_TOPIC_OR_PARTITION;
    if (c->metadata.len > b->cfg.offset_metadata_max_bytes)
        return GERR_OFFSET_METADATA_TOO_LARGE;
    return KERR_NONE;
}

struct gcommit {
    struct groups *gs;
    struct group *g;
    struct store_wb *wb;
    kc_writer w;
    int64_t now_ms;
    int staged;
    bool failed;
};

struct gcommit *group_commit_begin(struct groups *gs, struct group *g)
{
    struct gcommit *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->gs = gs;
    c->g = g;
    c->now_ms = ev_wall_ms();
    kc_writer_init(&c->w, 0);
    if (!(c->wb = store_wb_new(groups_broker(gs)->store))) {
        free(c);
        return NULL;
    }
    return c;
}

int16_t group_commit_stage(struct gcommit *c, kc_str topic, int32_t partition, int64_t offset,
                           int32_t leader_epoch, kc_str metadata)
{
    struct goff_commit e = {topic, partition, metadata};
    bool view;
    int16_t err = commit_entry_check(c->gs, &e, &view);
    if (err)
        return err;
    uint8_t k[KEY_MAX];
    size_t kl = offset_key(k, c->g, topic.p, (size_t)topic.len, partition);
    kc_writer_reset(&c->w);
    offset_value(&c->w, offset, leader_epoch, c->now_ms, metadata);
    if (c->w.err)
        return KERR_UNKNOWN_SERVER;
    store_wb_put(c->wb, STORE_CF_OFFSETS, k, kl, c->w.p, c->w.len);
    c->staged++;
    return 0;
}

int group_commit_write(struct gcommit *c)
{
    if (!c->staged)
        return 0;
    if (!c->g->persisted)
        wb_group_record(c->wb, c->g, &c->w);
    if (store_write(groups_broker(c->gs)->store, c->wb, 0) < 0) {
        c->failed = true;
        return -1;
    }
    c->g->persisted = true;
    return c->staged;
}

int16_t group_commit_apply(struct gcommit *c, kc_str topic, int32_t partition, int64_t offset,
                           int32_t leader_epoch, kc_str metadata)
{
    struct goff_commit e = {topic, partition, metadata};
    bool view;
    int16_t err = commit_entry_check(c->gs, &e, &view);
    if (err)
        return err;
    if (c->failed)
        return KERR_UNKNOWN_SERVER;
    if (view) /* acknowledges what the view partition gave out below offset */
        share_view_committed(groups_broker(c->gs), c->g->id, topic.p, (size_t)topic.len,
                             partition, offset);
    if (off_put(c->g, topic.p, (size_t)topic.len, partition, offset, leader_epoch, c->now_ms,
                metadata) < 0)
        return KERR_UNKNOWN_SERVER; /* stored, but only visible after a restart */
    return 0;
}

void group_commit_end(struct gcommit *c)
{
    if (!c)
        return;
    kc_writer_free(&c->w);
    store_wb_free(c->wb);
    free(c);
}

int group_offset_delete(struct groups *gs, struct group *g, const char *topic, size_t tlen,
                        int32_t partition)
{
    struct goff *o = tlen <= TOPIC_NAME_MAX ? off_find(g, topic, tlen, partition) : NULL;
    if (!o)
        return 0;
    uint8_t k[KEY_MAX];
    size_t kl = offset_key(k, g, topic, tlen, partition);
    if (store_del(groups_broker(gs)->store, STORE_CF_OFFSETS, k, kl) < 0)
        return -1;
    off_remove(g, o);
    return 0;
}

/* ---- expiry ---- */

struct expire_pass {
    struct groups *gs;
    int64_t now_ms, retention_ms;
    int expired;
    struct group **drop;
    size_t ndrop, cap;
};

/* Deletes the offsets of one empty group whose retention ran out. */
static void expire_group(struct expire_pass *x, struct group *g)
{
    struct store *st = groups_broker(x->gs)->store;
    struct store_wb *wb = store_wb_new(st);
    if (!wb)
        return;
    int n = 0;
    HTAB_FOREACH(&g->offs, i, hn, nx) {
        const struct goff *o = HTAB_ENTRY(hn, struct goff, hnode);
        int64_t base = o->commit_ts > g->state_ms ? o->commit_ts : g->state_ms;
        if (base + x->retention_ms > x->now_ms)
            continue;
        uint8_t k[KEY_MAX];
        size_t kl = offset_key(k, g, o->topic, strlen(o->topic), o->partition);
        store_wb_del(wb, STORE_CF_OFFSETS, k, kl);
        n++;
    }
    if (n && store_write(st, wb, 0) == 0) {
        HTAB_FOREACH(&g->offs, i, hn, nx) {
            struct goff *o = HTAB_ENTRY(hn, struct goff, hnode);
            int64_t base = o->commit_ts > g->state_ms ? o->commit_ts : g->state_ms;
            if (base + x->retention_ms <= x->now_ms)
                off_remove(g, o);
        }
        x->expired += n;
    }
    store_wb_free(wb);
}

static void expire_one(void *arg, struct group *g)
{
    struct expire_pass *x = arg;
    if (g->state != GS_EMPTY || g->nmembers || g->npending)
        return;
    expire_group(x, g);
    if (g->offs.n)
        return;
    if (x->ndrop == x->cap) {
        size_t nc = x->cap ? x->cap * 2 : 64;
        struct group **nd = realloc(x->drop, nc * sizeof *nd);
        if (!nd)
            return;
        x->drop = nd;
        x->cap = nc;
    }
    x->drop[x->ndrop++] = g;
}

int groups_expire_offsets(struct groups *gs, int64_t now_ms)
{
    struct expire_pass x = {
        .gs = gs,
        .now_ms = now_ms,
        .retention_ms = groups_broker(gs)->cfg.offsets_retention_minutes * 60000,
    };
    groups_foreach(gs, expire_one, &x);
    for (size_t i = 0; i < x.ndrop; i++)
        group_drop_if_unused(gs, x.drop[i]);
    free(x.drop);
    return x.expired;
}

int64_t group_end_offset(struct groups *gs, const char *topic, int32_t partition)
{
    struct topics *ts = groups_broker(gs)->topics;
    struct topic *t = topic_find(ts, topic, strlen(topic));
    struct partition *p = t ? topic_partition(ts, t, partition) : NULL;
    if (!t)
        return share_view_end_offset(groups_broker(gs), topic, partition);
    return p ? p->hwm : -1;
}

void group_topic_lag(struct groups *gs, const struct group *g, glag_fn *fn, void *arg)
{
    size_t n;
    const struct goff **all = group_offsets_sorted(g, &n);
    for (size_t i = 0; i < n;) {
        int64_t lag = 0;
        size_t j = i;
        for (; j < n && !strcmp(all[j]->topic, all[i]->topic); j++) {
            int64_t end = group_end_offset(gs, all[j]->topic, all[j]->partition);
            if (end >= 0 && all[j]->offset >= 0 && end > all[j]->offset)
                lag += end - all[j]->offset;
        }
        fn(arg, all[i]->topic, lag);
        i = j;
    }
    free(all);
}

/* ---- loading ---- */

static int load_groups(struct groups *gs)
{
    static const uint8_t lo[] = {'g'}, hi[] = {'h'};
    struct store_it *it = store_it_new(groups_broker(gs)->store, STORE_CF_OFFSETS, lo, 1, hi, 1);
    if (!it)
        return -1;
    int n = 0;
    for (store_it_first(it); store_it_valid(it); store_it_next(it)) {
        size_t kl, vl;
        const uint8_t *k = store_it_key(it, &kl), *v = store_it_value(it, &vl);
        kc_reader r;
        kc_reader_init(&r, v, vl);
        if (kl < 3 || kl != 3 + (size_t)kc_get_be16(k + 1) || kc_i8(&r) != REC_VERSION)
            continue;
        int32_t gen = kc_i32(&r);
        int64_t state_ms = kc_i64(&r);
        kc_str pt = kc_string(&r, false);
        struct group *g = kc_ok(&r) ? group_get_or_create(gs, (const char *)k + 3, kl - 3) : NULL;
        if (!g)
            continue;
        g->generation = gen;
        g->state_ms = state_ms;
        free(g->protocol_type);
        g->protocol_type = pt.len > 0 ? kc_str_dup(pt) : NULL;
        g->persisted = true;
        n++;
    }
    store_it_free(it);
    return n;
}

/* Parses an offset key into its group and topic views. Returns 0 or -1. */
static int parse_offset_key(const uint8_t *k, size_t kl, kc_str *grp, kc_str *topic,
                            int32_t *partition)
{
    if (kl < 3)
        return -1;
    size_t gl = kc_get_be16(k + 1);
    if (kl < 3 + gl + 2)
        return -1;
    size_t tl = kc_get_be16(k + 3 + gl);
    if (kl != 3 + gl + 2 + tl + 4 || tl == 0 || tl > TOPIC_NAME_MAX)
        return -1;
    *grp = (kc_str){(const char *)k + 3, (int32_t)gl};
    *topic = (kc_str){(const char *)k + 5 + gl, (int32_t)tl};
    *partition = (int32_t)kc_get_be32(k + 5 + gl + tl);
    return 0;
}

static int load_offsets(struct groups *gs)
{
    static const uint8_t lo[] = {'o'}, hi[] = {'p'};
    struct store_it *it = store_it_new(groups_broker(gs)->store, STORE_CF_OFFSETS, lo, 1, hi, 1);
    if (!it)
        return -1;
    int n = 0;
    for (store_it_first(it); store_it_valid(it); store_it_next(it)) {
        size_t kl, vl;
        const uint8_t *k = store_it_key(it, &kl), *v = store_it_value(it, &vl);
        kc_str gid, topic;
        int32_t part;
        kc_reader r;
        kc_reader_init(&r, v, vl);
        if (parse_offset_key(k, kl, &gid, &topic, &part) < 0 || kc_i8(&r) != REC_VERSION)
            continue;
        int64_t off = kc_i64(&r);
        int32_t epoch = kc_i32(&r);
        int64_t ts = kc_i64(&r);
        kc_str meta = kc_string(&r, false);
        struct group *g = kc_ok(&r) ? group_get_or_create(gs, gid.p, (size_t)gid.len) : NULL;
        if (!g || memchr(topic.p, 0, (size_t)topic.len) ||
            off_put(g, topic.p, (size_t)topic.len, part, off, epoch, ts, meta) < 0)
            continue;
        n++;
    }
    store_it_free(it);
    return n;
}

int group_offsets_load(struct groups *gs)
{
    int ng = load_groups(gs);
    int no = ng < 0 ? -1 : load_offsets(gs);
    if (no < 0)
        return -1;
    if (ng || no)
        log_info("groups: loaded %zu groups and %d offsets", groups_count(gs), no);
    return 0;
}
