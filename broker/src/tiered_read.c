/* tiered_read.c: reading tiered partitions back from S3. A segment is read by
 * stretches (runs of whole batches listed in its manifest record), each one ranged GET
 * checked against the segment's ETag, its length and its first batch's offset. Stretches
 * live in a small LRU by bytes (tiered.cache.bytes); misses share one GET. A Fetch that
 * misses returns what it has and parks as usual; the GET's completion wakes the
 * partition. A ListOffsets whose lookup misses is kept and run again once the bytes are
 * in. Failed GETs are remembered for a second, so parked fetches get
 * KAFKA_STORAGE_ERROR (retriable) instead of hammering S3. */
#include "tiered_int.h"
#include "hash.h"

#include "batch.h"
#include "broker.h"
#include "conn.h"
#include "log.h"
#include "s3.h"
#include "topic.h"

#include <stdlib.h>
#include <string.h>

enum { TC_PENDING = 0, TC_READY = 1, TC_ERROR = 2 };
#define TC_BUCKETS 4096
#define TC_ERROR_HOLD_US 1000000
#define RERUN_MAX 20            /* runs of a ListOffsets before it answers what it has */
#define RERUN_POLL_US 200000

struct tcache_ent {
    struct tcache_ent *hnext;      /* hash chain */
    struct tcache_ent *prev, *next; /* LRU, ready entries only */
    uint8_t topic_id[16];
    int32_t partition;
    int64_t base;     /* segment */
    uint32_t stretch;
    int state;
    uint8_t *data;
    size_t len;
    int64_t until_us; /* TC_ERROR: retry after this */
};

/* One ranged GET of a stretch. */
struct tget {
    struct tctx link;
    struct tiered *t;
    uint8_t topic_id[16];
    int32_t partition;
    int64_t base, first_offset, len;
    uint32_t stretch;
};

struct trerun {
    struct trerun *next;
    struct tiered *t;
    struct kslot *slot;
    struct kreq req;
    uint8_t *frame;
    size_t body_at, body_off;
    kapi_fn *fn;
    int tries;
};

/* ---- the stretch cache ---- */

static size_t ent_hash(const uint8_t id[16], int32_t part, int64_t base, uint32_t stretch)
{
    uint64_t h = hash_bytes(id, 16);
    h = hash_mix(h, (uint32_t)part);
    h = hash_mix(h, (uint64_t)base);
    h = hash_mix(h, stretch);
    return (size_t)(h ^ (h >> 29)) & (TC_BUCKETS - 1);
}

static struct tcache_ent *cache_find(struct tiered *t, const uint8_t id[16], int32_t part,
                                     int64_t base, uint32_t stretch)
{
    for (struct tcache_ent *e = t->buckets[ent_hash(id, part, base, stretch)]; e; e = e->hnext)
        if (e->partition == part && e->base == base && e->stretch == stretch &&
            !memcmp(e->topic_id, id, 16))
            return e;
    return NULL;
}

static void lru_unlink(struct tiered *t, struct tcache_ent *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        t->lru_head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        t->lru_tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push(struct tiered *t, struct tcache_ent *e)
{
    e->prev = NULL;
    e->next = t->lru_head;
    if (t->lru_head)
        t->lru_head->prev = e;
    t->lru_head = e;
    if (!t->lru_tail)
        t->lru_tail = e;
}

static void cache_remove(struct tiered *t, struct tcache_ent *e)
{
    struct tcache_ent **pp = &t->buckets[ent_hash(e->topic_id, e->partition, e->base, e->stretch)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    if (e->state == TC_READY) {
        lru_unlink(t, e);
        t->st.cache_bytes -= (int64_t)e->len;
    }
    free(e->data);
    free(e);
}

/* Evicts the least recently used stretches (never keep) until the budget holds. */
static void cache_evict(struct tiered *t, const struct tcache_ent *keep)
{
    while (t->st.cache_bytes > t->b->cfg.tiered_cache_bytes && t->lru_tail &&
           t->lru_tail != keep)
        cache_remove(t, t->lru_tail);
}

/* ---- GETs ---- */

static void rerun_kick(struct tiered *t);

/* Wakes the fetches parked on a partition, if it is in memory. */
static void wake(struct tiered *t, const uint8_t id[16], int32_t part)
{
    struct topic *tp = topic_find_id(t->b->topics, id);
    if (tp && part < tp->partitions && tp->parts[part])
        fetch_wake_partition(t->b, tp->parts[part]);
}

/* Whether a GET's body is the stretch asked for: its length and first batch. */
static bool body_ok(const struct tget *g, const struct s3_result *r)
{
    struct batch_hdr h;
    return r->err == S3_OK && (int64_t)r->len == g->len &&
           batch_parse_hdr(r->body, r->len, &h) == BATCH_OK && h.base_offset == g->first_offset;
}

static void on_got(void *arg, const struct s3_result *r)
{
    struct tget *g = arg;
    struct tiered *t = g->t;
    tiered_ctx_unlink(t, &g->link);
    struct tcache_ent *e = cache_find(t, g->topic_id, g->partition, g->base, g->stretch);
    if (e && e->state == TC_PENDING) {
        if (body_ok(g, r) && (e->data = malloc(r->len))) {
            memcpy(e->data, r->body, r->len);
            e->len = r->len;
            e->state = TC_READY;
            lru_push(t, e);
            t->st.cache_bytes += (int64_t)e->len;
            t->st.remote_reads++;
            t->st.remote_read_bytes += e->len;
            cache_evict(t, e);
        } else {
            e->state = TC_ERROR;
            e->until_us = ev_now_us() + TC_ERROR_HOLD_US;
            t->st.remote_read_errors++;
            log_warn("tiered: reading segment %lld stretch %u failed: %s", (long long)g->base,
                     g->stretch,
                     r->err ? (r->message ? r->message : "S3 error") : "unexpected contents");
        }
    }
    wake(t, g->topic_id, g->partition);
    rerun_kick(t);
    free(g);
}

/* Starts the GET of stretch k of s. Returns the new entry's state. */
static int start_get(struct tiered *t, const struct partition *p, const struct tm_seg *s,
                     uint32_t k)
{
    char key[S3_MAX_KEY_LEN + 1];
    struct tcache_ent *e = calloc(1, sizeof *e);
    struct tget *g = calloc(1, sizeof *g);
    if (!e || !g) {
        free(e);
        free(g);
        return TC_ERROR;
    }
    memcpy(e->topic_id, p->topic->id, 16);
    e->partition = p->id;
    e->base = s->base;
    e->stretch = k;
    size_t h = ent_hash(e->topic_id, e->partition, e->base, k);
    e->hnext = t->buckets[h];
    t->buckets[h] = e;
    t->st.cache_misses++;
    int64_t pos;
    *g = (struct tget){.t = t, .partition = p->id, .base = s->base,
                       .first_offset = s->idx[k].offset, .stretch = k};
    memcpy(g->topic_id, p->topic->id, 16);
    tm_stretch_range(s, k, &pos, &g->len);
    if (!t->s3 ||
        tiered_object_key(t, p->topic->id, p->id, s->base, s->end, key, sizeof key) < 0 ||
        s3_get(t->s3, t->bucket, key, pos, g->len, s->etag[0] ? s->etag : NULL, on_got, g) < 0) {
        free(g);
        e->state = TC_ERROR;
        e->until_us = ev_now_us() + TC_ERROR_HOLD_US;
        return TC_ERROR;
    }
    tiered_ctx_link(t, &g->link);
    return TC_PENDING;
}

/* Looks stretch k of s up, starting its GET on a miss. Returns its state; *out is set
 * for TC_READY. */
static int stretch_get(struct tiered *t, const struct partition *p, const struct tm_seg *s,
                       uint32_t k, struct tcache_ent **out)
{
    struct tcache_ent *e = cache_find(t, p->topic->id, p->id, s->base, k);
    if (e && e->state == TC_ERROR && ev_now_us() >= e->until_us) {
        cache_remove(t, e);
        e = NULL;
    }
    if (!e)
        return start_get(t, p, s, k);
    if (e->state == TC_READY) {
        lru_unlink(t, e);
        lru_push(t, e);
        t->st.cache_hits++;
        *out = e;
    }
    return e->state;
}

/* ---- Fetch ---- */

/* Copies whole batches of a ready stretch from *offset on, KIP-74 style. Moves *offset
 * past what was copied. Returns true when max_bytes is reached. */
static bool copy_batches(const struct tcache_ent *e, int64_t *offset, int64_t max_bytes,
                         bool must_return_one, kc_writer *w, int64_t *copied)
{
    size_t at = tm_scan_to(e->data, e->len, *offset);
    while (at < e->len) {
        struct batch_hdr h;
        int64_t sz = batch_size(e->data + at, e->len - at);
        if (sz < 0 || (uint64_t)sz > e->len - at ||
            batch_parse_hdr(e->data + at, e->len - at, &h) != BATCH_OK)
            break;
        if (sz + *copied > max_bytes && (*copied > 0 || !must_return_one))
            return true;
        kc_w_raw(w, e->data + at, (size_t)sz);
        *copied += sz;
        *offset = h.base_offset + h.last_offset_delta + 1;
        at += (size_t)sz;
    }
    return false;
}

/* Asks for the stretch after the one holding offset, so a sequential reader finds it. */
static void read_ahead(struct tiered *t, const struct partition *p, int64_t offset)
{
    const struct tpart *tp = p->tier;
    int64_t i = tm_find(tp->segs, tp->n, offset);
    if (i < 0)
        return;
    uint32_t k = tm_stretch_find(&tp->segs[i], offset) + 1;
    if (k >= tp->segs[i].nidx) {
        if ((size_t)++i >= tp->n)
            return;
        k = 0;
    }
    struct tcache_ent *e;
    stretch_get(t, p, &tp->segs[i], k, &e);
}

int tiered_read(struct broker *b, struct partition *p, int64_t offset, int64_t max_bytes,
                bool must_return_one, struct kc_writer *w, int64_t *copied)
{
    struct tiered *t = b->tiered;
    struct tpart *tp = p->tier;
    int rc = KERR_NONE;
    bool full = false;
    *copied = 0;
    if (!t)
        return KERR_KAFKA_STORAGE_ERROR;
    int64_t i = tm_find(tp->segs, tp->n, offset);
    if (i < 0)
        return KERR_OFFSET_OUT_OF_RANGE; /* a hole in the manifest: nothing to serve */
    while (!full && (size_t)i < tp->n && offset < tp->local_start) {
        const struct tm_seg *s = &tp->segs[i];
        if (offset >= s->end || offset < s->base) {
            i = tm_find(tp->segs, tp->n, offset);
            if (i < 0)
                break;
            continue;
        }
        struct tcache_ent *e = NULL;
        int st = stretch_get(t, p, s, tm_stretch_find(s, offset), &e);
        if (st == TC_ERROR && *copied == 0)
            rc = KERR_KAFKA_STORAGE_ERROR;
        if (st != TC_READY)
            break;
        int64_t before = offset;
        full = copy_batches(e, &offset, max_bytes, must_return_one, w, copied);
        if (!full && offset == before)
            break; /* a stretch that did not advance: do not spin */
    }
    if (full)
        read_ahead(t, p, offset);
    p->topic->bytes_out += (uint64_t)*copied;
    return w->err ? KERR_UNKNOWN_SERVER : rc;
}

/* ---- ListOffsets ---- */

/* The first offset in a ready stretch whose record timestamp is >= ts, or -1. */
static int64_t scan_time(const struct tcache_ent *e, int64_t ts, int64_t *found_ts)
{
    for (size_t at = 0; at < e->len;) {
        struct batch_hdr h;
        int64_t sz = batch_size(e->data + at, e->len - at);
        if (sz < 0 || (uint64_t)sz > e->len - at ||
            batch_parse_hdr(e->data + at, e->len - at, &h) != BATCH_OK)
            return -1;
        int32_t d = batch_offset_for_time(e->data + at, (size_t)sz, ts, found_ts);
        if (d >= 0)
            return h.base_offset + d;
        at += (size_t)sz;
    }
    return -1;
}

int64_t tiered_offset_for_time(struct broker *b, struct partition *p, int64_t ts,
                               int64_t *found_ts, bool *answered)
{
    struct tiered *t = b->tiered;
    const struct tpart *tp = p->tier;
    size_t from = 0;
    *answered = false;
    if (!t)
        return -1;
    while (from < tp->n && tp->segs[from].end <= p->log_start)
        from++;
    for (int64_t i = tm_find_time(tp->segs, tp->n, from, ts); i >= 0 && (size_t)i < tp->n; i++) {
        const struct tm_seg *s = &tp->segs[i];
        for (uint32_t k = tm_stretch_time(s, ts); s->max_ts >= ts && k < s->nidx; k++) {
            struct tcache_ent *e = NULL;
            int64_t r;
            if (s->idx[k].max_ts < ts)
                continue;
            *answered = true;
            int st = stretch_get(t, p, s, k, &e);
            if (st == TC_READY)
                r = scan_time(e, ts, found_ts);
            else {
                t->missed |= st == TC_PENDING;
                *found_ts = -1;
                r = s->idx[k].offset; /* the best guess until the bytes are in */
            }
            if (r >= 0)
                return r < p->log_start ? p->log_start : r;
        }
    }
    *answered = false;
    return -1;
}

void tiered_lookup_begin(struct broker *b)
{
    if (b->tiered)
        b->tiered->missed = false;
}

static void rerun_cancel(struct kslot *s)
{
    struct trerun *rr = s->owner;
    struct trerun **pp = &rr->t->reruns;
    while (*pp && *pp != rr)
        pp = &(*pp)->next;
    if (*pp)
        *pp = rr->next;
    free(rr->frame);
    free(rr);
}

int tiered_lookup_end(struct kreq *req, kc_writer *w, size_t body_at, size_t body_off,
                      kapi_fn *fn)
{
    struct tiered *t = req->b->tiered;
    if (!t || !t->missed || t->cur_rerun || req->b->draining)
        return KAPI_DONE;
    struct trerun *rr = calloc(1, sizeof *rr);
    if (!rr || !(rr->frame = malloc(req->frame_len))) {
        free(rr);
        return KAPI_DONE; /* answer with the best guess */
    }
    memcpy(rr->frame, req->frame, req->frame_len);
    rr->t = t;
    rr->slot = req->slot;
    rr->req = *req;
    rr->req.frame = rr->frame;
    rr->req.client_id = (kc_str){NULL, -1};
    rr->body_at = body_at;
    rr->body_off = body_off;
    rr->fn = fn;
    rr->next = t->reruns;
    t->reruns = rr;
    req->slot->owner = rr;
    req->slot->cancel = rerun_cancel;
    w->len = body_at;
    if (!ev_timer_active(&t->rerun_timer))
        ev_timer_start(t->b->loop, &t->rerun_timer, RERUN_POLL_US);
    return KAPI_DEFER;
}

/* Runs a kept request again. Returns true when it was answered (and freed). */
static bool rerun_run(struct trerun *rr)
{
    struct tiered *t = rr->t;
    kc_writer *w = &rr->slot->w;
    struct kreq req = rr->req;
    w->len = rr->body_at;
    w->err = 0;
    kc_reader_init(&req.r, rr->frame, rr->req.frame_len);
    req.r.off = rr->body_off;
    t->missed = false;
    t->cur_rerun = rr;
    int rc = rr->fn(&req, w);
    t->cur_rerun = NULL;
    if (rc == KAPI_DONE && t->missed && ++rr->tries < RERUN_MAX)
        return false;
    struct kslot *s = rr->slot;
    s->owner = NULL;
    free(rr->frame);
    free(rr);
    kslot_complete(s);
    return true;
}

static void on_rerun(struct ev_loop *l, void *arg)
{
    struct tiered *t = arg;
    struct trerun *list = t->reruns;
    t->reruns = NULL;
    while (list) {
        struct trerun *rr = list;
        list = rr->next;
        rr->next = NULL;
        if (!rerun_run(rr)) {
            rr->next = t->reruns;
            t->reruns = rr;
        }
    }
    if (t->reruns)
        ev_timer_start(l, &t->rerun_timer, RERUN_POLL_US);
}

static void rerun_kick(struct tiered *t)
{
    if (t->reruns)
        ev_timer_start(t->b->loop, &t->rerun_timer, 0);
}

/* ---- setup ---- */

int tiered_read_init(struct tiered *t)
{
    t->nbuckets = TC_BUCKETS;
    t->buckets = calloc(TC_BUCKETS, sizeof *t->buckets);
    ev_timer_init(&t->rerun_timer, on_rerun, t);
    return t->buckets ? 0 : -1;
}

void tiered_read_free(struct tiered *t)
{
    ev_timer_stop(t->b->loop, &t->rerun_timer);
    while (t->reruns) { /* their connections are gone by now; never answered */
        struct trerun *rr = t->reruns;
        t->reruns = rr->next;
        rr->slot->owner = NULL;
        rr->slot->cancel = NULL;
        free(rr->frame);
        free(rr);
    }
    for (size_t i = 0; t->buckets && i < t->nbuckets; i++)
        while (t->buckets[i])
            cache_remove(t, t->buckets[i]);
    free(t->buckets);
}
