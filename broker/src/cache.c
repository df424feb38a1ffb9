/* cache.c: the block cache's front: the memory tier, single-flight loads (disk tier
 * first, then the origin), write-through to disk, prefetch reservations, pins, and
 * per-namespace figures. One entry per key in memory, whatever its state: a load in
 * flight is an entry with waiters, so N misses on a block share one load.
 *
 * Entry lifetime. An entry is "attached" while the key map holds it. Eviction and
 * invalidation detach it; its bytes are freed once nothing references it: no caller pin,
 * no disk write holding its bytes, no load in flight. Every entry is also on c->all,
 * so cache_free can free what jobs it stopped were holding. */
#include "cache.h"

#include "cache_disk.h"
#include "cache_map.h"
#include "cache_policy.h"
#include "config.h"
#include "ev.h"
#include "hash.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    CACHE_LAT_SAMPLES = 256, /* recent fill latencies kept for the p99 */
    CACHE_MIN_BLOCK = 4096,
    CACHE_MAX_BLOCK = 1 << 30,
    CACHE_DEFAULT_HOLD_MS = 30000,
};

enum estate { E_LOADING, E_READY, E_FAILED };

struct cache_fill {
    struct cache *c;
    int64_t started_us;
    bool out; /* the origin owes a cache_fill_done */
};

struct mentry {
    struct cache_block pub; /* first: a cache_block pointer is its entry */
    struct hnode hn;        /* c->map while attached */
    struct clist all;       /* c->all, from birth to free */
    struct clist rlink;     /* c->reserved while prefetched and unread */
    struct cache_fill fill;
    struct cpol_node *pol; /* memory policy node while resident and not reserved */
    struct cache_waiter *wh, *wt;
    struct cache_origin origin;
    bool has_origin;
    bool attached;
    bool prefetch; /* loaded for cache_prefetch and not read yet */
    enum estate state;
    uint32_t refs; /* pins, disk writes, the load in flight, call guards */
    uint32_t pins; /* callers' pins and admission guards: not evictable */
    uint64_t resv; /* bytes of c->reserved_bytes that are this entry's */
    int64_t reserved_at_us;
    int err;
    char msg[160];
};

/* One namespace's figures (or the whole cache's). */
struct nsstat {
    struct hnode hn;
    uint8_t ns[16];
    struct cache_stats st;
    float lat_ms[CACHE_LAT_SAMPLES];
    uint32_t nlat; /* samples taken; the ring holds the last CACHE_LAT_SAMPLES */
    double p99;    /* of the ring, kept up to date: figures are read on every fetch */
};

struct cache {
    struct ev_loop *loop;
    struct cache_opts o;
    struct htab map;
    struct clist all;
    struct cpol *pol;
    struct cdisk *disk;
    struct clist reserved;   /* READY prefetched entries, oldest first */
    uint64_t reserved_bytes; /* theirs plus prefetch loads in flight */
    uint64_t resv_cap;
    struct ev_timer hold;
    struct htab nsmap;
    struct nsstat total;
    uint64_t pinned;
};

#define STAT(c, ns, field, d) stat_add(c, ns, offsetof(struct cache_stats, field), (int64_t)(d))

/* ---- figures ---- */

static uint64_t ns_hash(const uint8_t ns[16])
{
    return cache_mix64(kc_get_be64(ns) ^ cache_mix64(kc_get_be64(ns + 8)));
}

static struct nsstat *ns_find(const struct cache *c, const uint8_t ns[16])
{
    for (struct hnode *n = htab_first(&c->nsmap, ns_hash(ns)); n; n = htab_next(n)) {
        struct nsstat *s = cache_container_of(n, struct nsstat, hn);
        if (memcmp(s->ns, ns, 16) == 0)
            return s;
    }
    return NULL;
}

static struct nsstat *ns_touch(struct cache *c, const uint8_t ns[16])
{
    struct nsstat *s = ns_find(c, ns);
    if (s || !(s = calloc(1, sizeof *s)))
        return s;
    memcpy(s->ns, ns, 16);
    htab_insert(&c->nsmap, &s->hn, ns_hash(ns));
    return s;
}

/* Adds d to one figure, for the whole cache and for namespace ns (when given). A
 * namespace's record is made by its first get, prefetch or block, and not by the late
 * results of loads that an invalidation already disowned. */
static void stat_add(struct cache *c, const uint8_t *ns, size_t off, int64_t d)
{
    *(uint64_t *)(void *)((char *)&c->total.st + off) += (uint64_t)d;
    if (!ns)
        return;
    bool grows = d > 0 && (off == offsetof(struct cache_stats, memory.bytes) ||
                           off == offsetof(struct cache_stats, disk.bytes));
    struct nsstat *s = grows ? ns_touch(c, ns) : ns_find(c, ns);
    if (s)
        *(uint64_t *)(void *)((char *)&s->st + off) += (uint64_t)d;
}

static void disk_stat(void *ctx, const uint8_t ns[16], size_t off, int64_t d)
{
    stat_add(ctx, ns, off, d);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static double lat_p99(const struct nsstat *s)
{
    float v[CACHE_LAT_SAMPLES];
    uint32_t n = s->nlat < CACHE_LAT_SAMPLES ? s->nlat : CACHE_LAT_SAMPLES;
    if (!n)
        return 0;
    memcpy(v, s->lat_ms, n * sizeof v[0]);
    qsort(v, n, sizeof v[0], cmp_float);
    return v[(n * 99 + 99) / 100 - 1];
}

/* Adds a sample and recomputes the p99: once per origin fill, not once per read. */
static void lat_add(struct nsstat *s, double ms)
{
    if (!s)
        return;
    s->lat_ms[s->nlat++ % CACHE_LAT_SAMPLES] = (float)ms;
    s->p99 = lat_p99(s);
}

/* ---- entries ---- */

static struct mentry *entry_find(const struct cache *c, const struct cache_key *k)
{
    for (struct hnode *n = htab_first(&c->map, cache_key_hash(k)); n; n = htab_next(n)) {
        struct mentry *e = cache_container_of(n, struct mentry, hn);
        if (cache_key_eq(&e->pub.key, k))
            return e;
    }
    return NULL;
}

static struct mentry *entry_new(struct cache *c, const struct cache_key *k,
                                const struct cache_origin *o)
{
    struct mentry *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->pub.key = *k;
    e->fill.c = c;
    e->state = E_LOADING;
    e->attached = true;
    if (o && o->fetch) {
        e->origin = *o;
        e->has_origin = true;
    }
    clist_init(&e->rlink);
    clist_push_back(&c->all, &e->all);
    htab_insert(&c->map, &e->hn, cache_key_hash(k));
    return e;
}

static void entry_destroy(struct mentry *e)
{
    clist_del(&e->all);
    free((void *)e->pub.data);
    free(e);
}

/* Frees e once detached and unreferenced. */
static void entry_maybe_free(struct mentry *e)
{
    if (!e->attached && e->refs == 0 && !e->fill.out)
        entry_destroy(e);
}

static void entry_put(struct mentry *e)
{
    e->refs--;
    entry_maybe_free(e);
}

/* ---- memory budget ---- */

/* The policy gets the memory budget less what prefetched blocks hold. */
static void set_capacity(struct cache *c)
{
    uint64_t m = (uint64_t)c->o.memory_bytes;
    cpol_set_capacity(c->pol, c->reserved_bytes < m ? m - c->reserved_bytes : 0);
}

static void unreserve(struct cache *c, struct mentry *e)
{
    if (clist_linked(&e->rlink))
        clist_del(&e->rlink);
    c->reserved_bytes -= e->resv;
    e->resv = 0;
    e->prefetch = false;
    set_capacity(c);
}

/* Takes a READY or LOADING entry out of the map (and READY bytes out of the tier). */
static void mem_forget(struct cache *c, struct mentry *e, bool evicted)
{
    const uint8_t *ns = e->pub.key.ns;
    if (e->state == E_READY) {
        if (e->pol && !evicted)
            cpol_remove(c->pol, e->pol);
        e->pol = NULL;
        STAT(c, ns, memory.bytes, -(int64_t)e->pub.len);
        STAT(c, ns, memory.blocks, -1);
        if (evicted)
            STAT(c, ns, memory.evictions, 1);
    }
    if (e->resv || clist_linked(&e->rlink))
        unreserve(c, e);
    htab_remove(&c->map, &e->hn);
    e->attached = false;
}

static bool can_evict(void *ctx, void *owner)
{
    const struct mentry *e = owner;
    return e->pins == 0;
}

/* Evicts until the memory tier fits its budget or only pinned blocks are left. */
static void mem_shrink(struct cache *c)
{
    struct mentry *v;
    while ((v = cpol_evict(c->pol, can_evict, NULL))) {
        mem_forget(c, v, true);
        entry_maybe_free(v);
    }
}

/* Puts a READY entry under the policy as an access, then evicts others to fit. The
 * caller holds a reference. */
static void mem_admit(struct cache *c, struct mentry *e)
{
    e->pins++;
    e->pol = cpol_insert(c->pol, cache_key_hash(&e->pub.key), (uint32_t)e->pub.len, e);
    if (!e->pol)
        mem_forget(c, e, false); /* served to its waiters, then freed */
    mem_shrink(c);
    e->pins--;
}

/* A caller's pin. */
static void pin(struct cache *c, struct mentry *e)
{
    e->refs++;
    e->pins++;
    c->pinned++;
}

static void hold_arm(struct cache *c);

/* Drops prefetched blocks that nobody read within prefetch_hold_ms (the disk tier
 * still has them). */
static void on_hold(struct ev_loop *l, void *arg)
{
    struct cache *c = arg;
    int64_t now = ev_now_us(), hold = c->o.prefetch_hold_ms * 1000;
    struct clist *r;
    while ((r = clist_front(&c->reserved))) {
        struct mentry *e = cache_container_of(r, struct mentry, rlink);
        if (now - e->reserved_at_us < hold)
            break;
        STAT(c, e->pub.key.ns, prefetch_unused, 1);
        mem_forget(c, e, false);
        entry_maybe_free(e);
    }
    hold_arm(c);
}

static void hold_arm(struct cache *c)
{
    struct clist *r = clist_front(&c->reserved);
    if (!r || ev_timer_active(&c->hold))
        return;
    struct mentry *e = cache_container_of(r, struct mentry, rlink);
    int64_t due = e->reserved_at_us + c->o.prefetch_hold_ms * 1000 - ev_now_us();
    ev_timer_start(c->loop, &c->hold, due > 0 ? due : 0);
}

/* ---- completing loads ---- */

static void notify(struct cache *c, struct mentry *e)
{
    struct cache_waiter *w;
    while ((w = e->wh)) {
        e->wh = w->next;
        if (e->wh)
            e->wh->prev = NULL;
        else
            e->wt = NULL;
        w->next = w->prev = NULL;
        w->entry = NULL;
        if (e->state == E_READY) {
            pin(c, e);
            w->block = &e->pub;
            w->err = 0;
            w->msg[0] = 0;
        } else {
            w->block = NULL;
            w->err = e->err;
            snprintf(w->msg, sizeof w->msg, "%s", e->msg);
        }
        w->fn(w);
    }
}

static void write_released(void *arg)
{
    entry_put(arg);
}

/* Queues the write-through of a block the origin just delivered. */
static void write_through(struct cache *c, struct mentry *e)
{
    if (!c->disk || cdisk_has(c->disk, &e->pub.key))
        return;
    e->refs++;
    if (cdisk_write(c->disk, &e->pub.key, e->pub.data, e->pub.len, write_released, e) < 0)
        e->refs--;
}

static void fail_entry(struct cache *c, struct mentry *e, int err, const char *msg)
{
    e->state = E_FAILED;
    e->err = err;
    snprintf(e->msg, sizeof e->msg, "%s", msg && *msg ? msg : "load failed");
    if (e->attached)
        mem_forget(c, e, false); /* no negative caching: the next get tries again */
}

/* Ends a load: buf (malloc'd, taken) on success, else err and msg. Then every waiter
 * hears the outcome. */
static void complete(struct cache *c, struct mentry *e, uint8_t *buf, size_t len, int err,
                     const char *msg, bool from_origin)
{
    e->refs++;
    if (err == 0 && !e->attached) {
        free(buf);
        err = CACHE_ESTALE;
        msg = "invalidated while loading";
    }
    if (err == 0) {
        e->pub.data = buf;
        e->pub.len = len;
        e->state = E_READY;
        STAT(c, e->pub.key.ns, memory.bytes, len);
        STAT(c, e->pub.key.ns, memory.blocks, 1);
        STAT(c, e->pub.key.ns, memory.fills, 1);
        if (e->prefetch) {
            c->reserved_bytes = c->reserved_bytes - e->resv + len;
            e->resv = len;
            e->reserved_at_us = ev_now_us();
            clist_push_back(&c->reserved, &e->rlink);
            set_capacity(c);
            mem_shrink(c);
            hold_arm(c);
        } else {
            mem_admit(c, e);
        }
        if (from_origin)
            write_through(c, e);
    } else {
        fail_entry(c, e, err, msg);
    }
    notify(c, e);
    entry_put(e);
}

static void start_origin(struct cache *c, struct mentry *e)
{
    if (!e->has_origin) {
        complete(c, e, NULL, 0, CACHE_EORIGIN, "block is not cached and no origin was given",
                 false);
        return;
    }
    const struct cache_key *k = &e->pub.key;
    e->fill.out = true;
    e->fill.started_us = ev_now_us();
    e->refs++;
    STAT(c, k->ns, origin.requests, 1);
    STAT(c, k->ns, origin.inflight, 1);
    int rc = e->origin.fetch(e->origin.arg, k, (uint64_t)k->block * (uint64_t)c->o.block_bytes,
                             (size_t)c->o.block_bytes, &e->fill);
    if (rc < 0 && e->fill.out) {
        e->fill.out = false;
        STAT(c, e->pub.key.ns, origin.inflight, -1);
        STAT(c, e->pub.key.ns, origin.errors, 1);
        complete(c, e, NULL, 0, rc > CACHE_ENOMEM ? rc : CACHE_EORIGIN,
                 "the origin refused the request", false);
        entry_put(e);
    }
}

void cache_fill_done(struct cache_fill *f, const void *data, size_t len, int err, const char *msg)
{
    struct mentry *e = cache_container_of(f, struct mentry, fill);
    struct cache *c = f->c;
    char why[160];
    if (!f->out) {
        log_error("cache: the origin completed a fill twice");
        return;
    }
    f->out = false;
    STAT(c, e->pub.key.ns, origin.inflight, -1);
    uint8_t *buf = NULL;
    if (err == 0 && len > (uint64_t)c->o.block_bytes) {
        snprintf(why, sizeof why, "the origin returned %zu bytes for a %lld-byte block", len,
                 (long long)c->o.block_bytes);
        err = CACHE_EORIGIN;
        msg = why;
    } else if (err == 0 && !(buf = malloc(len ? len : 1))) {
        err = CACHE_ENOMEM;
        msg = "out of memory for a block";
    } else if (err == 0) {
        memcpy(buf, data, len);
    } else if (err > 0) {
        err = CACHE_EORIGIN;
    }
    if (err) {
        STAT(c, e->pub.key.ns, origin.errors, 1);
    } else {
        STAT(c, e->pub.key.ns, origin.bytes, len);
        double ms = (double)(ev_now_us() - f->started_us) / 1000.0;
        lat_add(&c->total, ms);
        lat_add(ns_find(c, e->pub.key.ns), ms);
    }
    complete(c, e, buf, len, err, msg, true);
    entry_put(e); /* the fill's reference */
}

static void on_disk_read(void *arg, uint8_t *buf, size_t len, int rc, const char *msg)
{
    struct mentry *e = arg;
    struct cache *c = e->fill.c;
    if (rc == 0)
        complete(c, e, buf, len, 0, NULL, false);
    else if (e->attached)
        start_origin(c, e); /* never serve what failed its checksum: refill */
    else
        complete(c, e, NULL, 0, CACHE_ESTALE, "invalidated while loading", false);
    entry_put(e); /* the read's reference */
}

/* Starts e's load: the disk tier when it has the block, else the origin. */
static void start_load(struct cache *c, struct mentry *e)
{
    if (c->disk) {
        e->refs++;
        if (cdisk_read(c->disk, &e->pub.key, on_disk_read, e) == 0)
            return;
        e->refs--;
    }
    start_origin(c, e);
}

/* ---- API ---- */

void cache_opts_from_config(struct cache_opts *o, const struct config *cfg)
{
    memset(o, 0, sizeof *o);
    o->memory_bytes = cfg->cache_memory_bytes;
    o->disk_bytes = cfg->cache_disk_bytes;
    o->block_bytes = cfg->cache_block_bytes;
    o->prefetch_hold_ms = CACHE_DEFAULT_HOLD_MS;
    if (cfg->cache_disk_dir[0])
        snprintf(o->disk_dir, sizeof o->disk_dir, "%s", cfg->cache_disk_dir);
    else if (snprintf(o->disk_dir, sizeof o->disk_dir, "%s/cache", cfg->data_dir) >=
             (int)sizeof o->disk_dir)
        o->disk_dir[0] = 0;
}

static int check_opts(const struct cache_opts *o, const struct store *store)
{
    if (o->block_bytes < CACHE_MIN_BLOCK || o->block_bytes > CACHE_MAX_BLOCK ||
        o->memory_bytes <= 0 || o->disk_bytes < 0) {
        log_error("cache: bad sizes (memory %lld, disk %lld, block %lld)",
                  (long long)o->memory_bytes, (long long)o->disk_bytes, (long long)o->block_bytes);
        return -1;
    }
    if (o->disk_bytes > 0 && (!store || !o->disk_dir[0])) {
        log_error("cache: the disk tier needs the store and a directory");
        return -1;
    }
    return 0;
}

struct cache *cache_new(struct ev_loop *loop, struct store *store, const struct cache_opts *o)
{
    if (check_opts(o, store) < 0)
        return NULL;
    struct cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->loop = loop;
    c->o = *o;
    if (c->o.prefetch_hold_ms <= 0)
        c->o.prefetch_hold_ms = CACHE_DEFAULT_HOLD_MS;
    clist_init(&c->all);
    clist_init(&c->reserved);
    ev_timer_init(&c->hold, on_hold, c);
    c->resv_cap = (uint64_t)o->memory_bytes / 2;
    uint64_t mem = (uint64_t)o->memory_bytes;
    if (!(c->pol = cpol_new(mem, cpol_probation_for(mem, (uint64_t)o->block_bytes))))
        goto fail;
    if (o->disk_bytes > 0 &&
        !(c->disk = cdisk_new(loop, store, o->disk_dir, (uint64_t)o->disk_bytes,
                              (uint32_t)o->block_bytes, disk_stat, c)))
        goto fail;
    return c;
fail:
    cache_free(c);
    return NULL;
}

void cache_free(struct cache *c)
{
    if (!c)
        return;
    cdisk_free(c->disk); /* first: stops the worker, whose jobs hold entries */
    if (ev_timer_active(&c->hold))
        ev_timer_stop(c->loop, &c->hold);
    if (c->pinned)
        log_error("cache: freed with %llu blocks still pinned", (unsigned long long)c->pinned);
    struct clist *l;
    while ((l = clist_front(&c->all)))
        entry_destroy(cache_container_of(l, struct mentry, all));
    HTAB_FOREACH(&c->nsmap, i, n, nx)
        free(cache_container_of(n, struct nsstat, hn));
    htab_free(&c->nsmap);
    htab_free(&c->map);
    cpol_free(c->pol);
    free(c);
}

static void waiter_add(struct mentry *e, struct cache_waiter *w)
{
    w->entry = e;
    w->next = NULL;
    w->prev = e->wt;
    if (e->wt)
        e->wt->next = w;
    else
        e->wh = w;
    e->wt = w;
}

/* A get on a READY entry: an access for the policy, and a pin. */
static int get_hit(struct cache *c, struct mentry *e, struct cache_waiter *w)
{
    STAT(c, e->pub.key.ns, memory.hits, 1);
    pin(c, e);
    if (e->prefetch) {
        unreserve(c, e); /* first read: now it is an ordinary block */
        mem_admit(c, e);
    } else if (e->pol) {
        cpol_hit(c->pol, e->pol);
    }
    w->block = &e->pub;
    return CACHE_HIT;
}

int cache_get(struct cache *c, const struct cache_key *k, const struct cache_origin *o,
              struct cache_waiter *w)
{
    w->block = NULL;
    w->err = 0;
    w->msg[0] = 0;
    w->prev = w->next = NULL;
    w->entry = NULL;
    struct mentry *e = entry_find(c, k);
    if (e && e->state == E_READY)
        return get_hit(c, e, w);
    ns_touch(c, k->ns);
    STAT(c, k->ns, memory.misses, 1);
    if (e) { /* a load is under way: join it */
        if (e->prefetch)
            unreserve(c, e);
        if (!e->has_origin && o && o->fetch) {
            e->origin = *o;
            e->has_origin = true;
        }
        waiter_add(e, w);
        return CACHE_PENDING;
    }
    if (!(e = entry_new(c, k, o))) {
        w->err = CACHE_ENOMEM;
        snprintf(w->msg, sizeof w->msg, "out of memory");
        return CACHE_ENOMEM;
    }
    e->refs++;
    start_load(c, e);
    int rc = CACHE_PENDING;
    if (e->state == E_READY) { /* the origin answered at once */
        pin(c, e);
        w->block = &e->pub;
        rc = CACHE_HIT;
    } else if (e->state == E_FAILED) {
        w->err = rc = e->err;
        snprintf(w->msg, sizeof w->msg, "%s", e->msg);
    } else {
        waiter_add(e, w);
    }
    entry_put(e);
    return rc;
}

void cache_cancel(struct cache *c, struct cache_waiter *w)
{
    struct mentry *e = w->entry;
    if (!e)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        e->wh = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        e->wt = w->prev;
    w->prev = w->next = NULL;
    w->entry = NULL;
}

void cache_unpin(struct cache *c, const struct cache_block *b)
{
    struct mentry *e = (struct mentry *)(void *)b;
    c->pinned--;
    e->pins--;
    entry_put(e);
    if (cpol_over(c->pol)) /* eviction may have skipped this block while pinned */
        mem_shrink(c);
}

int cache_prefetch(struct cache *c, const struct cache_key *k, const struct cache_origin *o)
{
    if (entry_find(c, k))
        return 0;
    if (c->reserved_bytes + (uint64_t)c->o.block_bytes > c->resv_cap)
        return CACHE_EBUSY;
    ns_touch(c, k->ns);
    struct mentry *e = entry_new(c, k, o);
    if (!e)
        return CACHE_ENOMEM;
    STAT(c, k->ns, prefetches, 1);
    e->prefetch = true;
    e->resv = (uint64_t)c->o.block_bytes;
    c->reserved_bytes += e->resv;
    set_capacity(c);
    mem_shrink(c);
    e->refs++;
    start_load(c, e);
    int rc = e->state == E_FAILED ? e->err : 0;
    entry_put(e);
    return rc;
}

int cache_where(const struct cache *c, const struct cache_key *k)
{
    const struct mentry *e = entry_find(c, k);
    int m = e && e->state == E_READY ? CACHE_IN_MEMORY : 0;
    if (c->disk && cdisk_has(c->disk, k))
        m |= CACHE_ON_DISK;
    return m;
}

static void invalidate(struct cache *c, const uint8_t ns[16], const uint64_t *object)
{
    HTAB_FOREACH(&c->map, i, n, nx) {
        struct mentry *e = cache_container_of(n, struct mentry, hn);
        if (memcmp(e->pub.key.ns, ns, 16) != 0 || (object && e->pub.key.object != *object))
            continue;
        mem_forget(c, e, false); /* a load in flight ends with CACHE_ESTALE */
        entry_maybe_free(e);
    }
    if (c->disk)
        cdisk_invalidate(c->disk, ns, object);
    mem_shrink(c);
}

void cache_invalidate_ns(struct cache *c, const uint8_t ns[16])
{
    invalidate(c, ns, NULL);
    struct nsstat *s = ns_find(c, ns);
    if (s) {
        htab_remove(&c->nsmap, &s->hn);
        free(s);
    }
}

void cache_invalidate_object(struct cache *c, const uint8_t ns[16], uint64_t object)
{
    invalidate(c, ns, &object);
}

void cache_stats(const struct cache *c, const uint8_t ns[16], struct cache_stats *out)
{
    const struct nsstat *s = ns ? ns_find(c, ns) : &c->total;
    memset(out, 0, sizeof *out);
    if (s) {
        *out = s->st;
        out->origin.latency_p99_ms = s->p99;
    }
    out->memory.capacity = (uint64_t)c->o.memory_bytes;
    out->disk.capacity = (uint64_t)c->o.disk_bytes;
    if (!ns) {
        out->reserved_bytes = c->reserved_bytes;
        out->pinned_blocks = c->pinned;
        out->disk_queue = c->disk ? cdisk_queue(c->disk) : 0;
    }
}

uint64_t cache_block_bytes(const struct cache *c)
{
    return (uint64_t)c->o.block_bytes;
}

int cache_disk_path(const struct cache *c, const struct cache_key *k, char *buf, size_t len)
{
    return c->disk ? cdisk_path(c->disk, k, buf, len) : -1;
}
