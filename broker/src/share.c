/* share.c: the share-state engine (see share.h). A share-partition's in-flight window is a
 * list of tracked batches in offset order, each with one entry per record. A batch may
 * span offsets that hold no record (a dataset object's batch claims the rest of the
 * object's offset range, as a compacted batch claims what compaction removed); those gaps
 * are never tracked, handed out or counted. The window's front is trimmed as records are
 * settled, which moves spso. Persisted form of one
 * share-partition (STORE_CF_SHARE):
 *   key   'P' | group_len(2) | group | topic_id(16) | partition(4)
 *   value ver(1)=1 | spso(8) | next(8) | nruns(4) | nruns x {first(8) last(8) state(1) dc(1)}
 * and of a group's config:
 *   key   'G' | group
 *   value ver(1)=1 | lock_ms(4) | max_deliveries(4) | max_inflight(4) | expected(4) | reset(1) */
#include "share.h"
#include "hash.h"

#include "batch.h"
#include "broker.h"
#include "ev.h"
#include "log.h"
#include "store.h"
#include "topic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { KEY_PART = 'P', KEY_GROUP = 'G', STATE_VER = 1, RUN_LEN = 18, CFG_LEN = 18 };

/* Settled states: the record needs nothing more. */
#define SETTLED(s) ((s) == SHARE_ACKED || (s) == SHARE_ARCHIVED)

struct srec {
    int64_t deadline_us;        /* lock deadline while acquired */
    struct share_member *owner; /* while acquired */
    uint32_t delta;             /* offset - the batch's base */
    uint8_t state;
    uint8_t deliveries;
    bool handed; /* acquired before since load (a returned record has deliveries 0) */
};

/* One tracked batch: offsets [base, last] of a stored batch (or the part of it inside the
 * window), and its n records in offset order; r[i] has offset base + r[i].delta. Offsets
 * of [base, last] without a record are gaps. */
struct sbatch {
    struct sbatch *next;
    int64_t base, last;
    int32_t n, unsettled;
    struct srec r[];
};

struct share_member {
    struct share_member *prev, *next;
    struct share_group *g;
    char *id;
    size_t id_len;
    int64_t held;
};

struct share_part {
    struct share_part *gnext;
    struct share_group *g;
    uint8_t topic_id[16];
    int32_t partition;
    int64_t spso, next;
    struct sbatch *head, *tail;
    int64_t window; /* records tracked in the window (gaps are not records) */
    int64_t unsettled, acquired;
    int64_t acked_total, redeliveries_total, archived_total, expired_total;
    bool dirty;
    struct share_part *dnext; /* in the registry's dirty list */
    struct ev_timer timer;
};

struct share_group {
    struct hnode hnode; /* in the registry's table, keyed by id */
    struct shares *ss;
    char *id;
    size_t id_len;
    struct share_config cfg;
    struct share_member *members;
    int32_t nmembers;
    struct share_part *parts;
    int32_t nparts;
};

struct shares {
    struct broker *b;
    struct htab tab;
    struct share_part *dirty;
    share_notify_fn *notify;
    void *notify_arg;
};

static const struct share_config cfg_defaults = {
    .lock_ms = SHARE_DEFAULT_LOCK_MS,
    .max_deliveries = SHARE_DEFAULT_MAX_DELIVERIES,
    .max_inflight = SHARE_DEFAULT_MAX_INFLIGHT,
    .expected_members = 0,
    .auto_reset = SHARE_RESET_LATEST,
};


/* ---- records of a tracked batch ---- */

static int64_t rec_off(const struct sbatch *b, int32_t i)
{
    return b->base + b->r[i].delta;
}

/* Index of b's first record at or after offset o; b->n when there is none. */
static int32_t rec_lower(const struct sbatch *b, int64_t o)
{
    if (o <= b->base)
        return 0;
    if (o > b->last)
        return b->n;
    if ((int64_t)b->n == b->last - b->base + 1) /* dense: no gaps */
        return (int32_t)(o - b->base);
    int32_t lo = 0, hi = b->n;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (rec_off(b, mid) < o)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* ---- persistence ---- */

/* Writes sp's key into k (at least 3 + SHARE_GROUP_ID_MAX + 20 bytes); returns its length. */
static size_t part_key(uint8_t *k, const struct share_group *g, const uint8_t topic_id[16],
                       int32_t partition)
{
    k[0] = KEY_PART;
    k[1] = (uint8_t)(g->id_len >> 8);
    k[2] = (uint8_t)g->id_len;
    memcpy(k + 3, g->id, g->id_len);
    memcpy(k + 3 + g->id_len, topic_id, 16);
    kc_put_be32(k + 19 + g->id_len, (uint32_t)partition);
    return 23 + g->id_len;
}

static void mark_dirty(struct share_part *sp)
{
    if (sp->dirty)
        return;
    sp->dirty = true;
    sp->dnext = sp->g->ss->dirty;
    sp->g->ss->dirty = sp;
}

/* The persisted state of a record: acquired ones are stored as available. */
static uint8_t stored_state(uint8_t s)
{
    return s == SHARE_ACQUIRED ? SHARE_AVAILABLE : s;
}

/* Serialises sp into w as runs of equal (state, deliveries) over consecutive offsets: a run
 * never spans a gap, so loading it back tracks only records. */
static void part_encode(const struct share_part *sp, kc_writer *w)
{
    kc_w_i8(w, STATE_VER);
    kc_w_i64(w, sp->spso);
    kc_w_i64(w, sp->next);
    size_t nat = kc_w_reserve(w, 4);
    int32_t n = 0;
    int64_t first = -1, last = -1;
    uint8_t st = 0, dc = 0;
    for (const struct sbatch *b = sp->head; b; b = b->next) {
        for (int32_t i = rec_lower(b, sp->spso); i < b->n; i++) {
            const struct srec *r = &b->r[i];
            int64_t o = rec_off(b, i);
            uint8_t s = stored_state(r->state);
            if (first >= 0 && o == last + 1 && s == st && r->deliveries == dc) {
                last = o;
                continue;
            }
            if (first >= 0) {
                kc_w_i64(w, first), kc_w_i64(w, last), kc_w_i8(w, (int8_t)st);
                kc_w_i8(w, (int8_t)dc), n++;
            }
            first = last = o, st = s, dc = r->deliveries;
        }
    }
    if (first >= 0) {
        kc_w_i64(w, first), kc_w_i64(w, last), kc_w_i8(w, (int8_t)st);
        kc_w_i8(w, (int8_t)dc), n++;
    }
    kc_w_patch_i32(w, nat, n);
}

int share_flush(struct shares *ss)
{
    if (!ss->dirty)
        return 0;
    struct store_wb *wb = store_wb_new(ss->b->store);
    kc_writer w;
    kc_writer_init(&w, 0);
    uint8_t k[23 + SHARE_GROUP_ID_MAX];
    int n = 0, rc = 0;
    for (struct share_part *sp = ss->dirty, *nx; sp; sp = nx) {
        nx = sp->dnext;
        sp->dirty = false;
        sp->dnext = NULL;
        kc_writer_reset(&w);
        part_encode(sp, &w);
        if (w.err || !wb) {
            rc = -1;
            continue;
        }
        store_wb_put(wb, STORE_CF_SHARE, k, part_key(k, sp->g, sp->topic_id, sp->partition), w.p,
                     w.len);
        n++;
    }
    ss->dirty = NULL;
    if (wb && n > 0 && store_write(ss->b->store, wb, 0) < 0)
        rc = -1;
    store_wb_free(wb);
    kc_writer_free(&w);
    if (rc < 0)
        log_error("share: writing share state failed");
    return rc < 0 ? -1 : n;
}

/* ---- the window ---- */

/* A tracked batch spanning [base, last] with room for n records (deltas still to fill). */
static struct sbatch *sbatch_new(int64_t base, int64_t last, int64_t n)
{
    if (last < base || last - base >= INT32_MAX || n <= 0 || n > last - base + 1)
        return NULL;
    struct sbatch *b = calloc(1, sizeof *b + (size_t)n * sizeof(struct srec));
    if (!b)
        return NULL;
    b->base = base;
    b->last = last;
    b->n = b->unsettled = (int32_t)n;
    return b;
}

/* A tracked batch with a record at every offset of [base, last]. */
static struct sbatch *sbatch_dense(int64_t base, int64_t last)
{
    struct sbatch *b = sbatch_new(base, last, last - base + 1);
    for (int32_t i = 0; b && i < b->n; i++)
        b->r[i].delta = (uint32_t)i;
    return b;
}

static void window_append(struct share_part *sp, struct sbatch *b)
{
    if (sp->tail)
        sp->tail->next = b;
    else
        sp->head = b;
    sp->tail = b;
    sp->window += b->n;
    sp->unsettled += b->unsettled;
}

/* Drops settled batches from the front and moves spso to the first unsettled record (or
 * to next when the window is empty): gaps before it are passed over with it. */
static void window_trim(struct share_part *sp)
{
    while (sp->head && sp->head->unsettled == 0) {
        struct sbatch *b = sp->head;
        sp->head = b->next;
        sp->window -= b->n;
        free(b);
    }
    if (!sp->head) {
        sp->tail = NULL;
        sp->spso = sp->next;
        return;
    }
    int32_t i = 0;
    while (i < sp->head->n && SETTLED(sp->head->r[i].state))
        i++;
    sp->spso = rec_off(sp->head, i); /* unsettled > 0: i < n */
}

/* Settles one record. */
static void rec_settle(struct share_part *sp, struct sbatch *b, struct srec *r, int state)
{
    if (r->state == SHARE_ACQUIRED) {
        sp->acquired--;
        r->owner->held--;
    }
    r->owner = NULL;
    r->state = (uint8_t)state;
    b->unsettled--;
    sp->unsettled--;
    if (state == SHARE_ACKED)
        sp->acked_total++;
    else
        sp->archived_total++;
}

/* Returns an acquired record to available, or archives it at the delivery limit. */
static void rec_release(struct share_part *sp, struct sbatch *b, struct srec *r)
{
    if (r->deliveries >= sp->g->cfg.max_deliveries) {
        rec_settle(sp, b, r, SHARE_ARCHIVED);
        return;
    }
    sp->acquired--;
    r->owner->held--;
    r->owner = NULL;
    r->state = SHARE_AVAILABLE;
}

/* Wakes whoever waits for sp's records. */
static void part_notify(struct share_part *sp)
{
    struct shares *ss = sp->g->ss;
    if (ss->notify)
        ss->notify(ss->notify_arg, sp);
    struct topic *t = topic_find_id(ss->b->topics, sp->topic_id);
    if (t && sp->partition < t->partitions && t->parts && t->parts[sp->partition])
        fetch_wake_partition(ss->b, t->parts[sp->partition]);
}

/* ---- lock expiry ---- */

static void arm_timer(struct share_part *sp, int64_t deadline_us)
{
    struct ev_loop *l = sp->g->ss->b->loop;
    int64_t now = ev_now_us();
    if (ev_timer_active(&sp->timer) && sp->timer.when_us <= deadline_us)
        return;
    ev_timer_start(l, &sp->timer, deadline_us > now ? deadline_us - now : 0);
}

int64_t share_part_expire(struct share_part *sp, int64_t now_us)
{
    int64_t n = 0, soonest = INT64_MAX;
    for (struct sbatch *b = sp->head; b; b = b->next)
        for (int32_t i = 0; i < b->n; i++) {
            struct srec *r = &b->r[i];
            if (r->state != SHARE_ACQUIRED)
                continue;
            if (r->deadline_us > now_us) {
                soonest = r->deadline_us < soonest ? r->deadline_us : soonest;
                continue;
            }
            rec_release(sp, b, r);
            n++;
        }
    if (soonest != INT64_MAX)
        arm_timer(sp, soonest);
    if (n > 0) {
        sp->expired_total += n;
        window_trim(sp);
        mark_dirty(sp);
        part_notify(sp);
    }
    return n;
}

static void on_lock_timer(struct ev_loop *l, void *arg)
{
    struct share_part *sp = arg;
    if (share_part_expire(sp, ev_now_us()) > 0)
        share_flush(sp->g->ss);
}

/* ---- loading ---- */

/* Rebuilds the window from a stored value; each run becomes a tracked pseudo-batch (runs
 * of one stored batch are merged again on the next persist only in the encoding). */
static int part_decode(struct share_part *sp, const uint8_t *v, size_t vl)
{
    if (vl < 21 || v[0] != STATE_VER)
        return -1;
    sp->spso = (int64_t)kc_get_be64(v + 1);
    sp->next = (int64_t)kc_get_be64(v + 9);
    uint32_t n = kc_get_be32(v + 17);
    if (n > (vl - 21) / RUN_LEN || vl != 21 + (size_t)n * RUN_LEN || sp->spso > sp->next)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *e = v + 21 + (size_t)i * RUN_LEN;
        int64_t first = (int64_t)kc_get_be64(e), last = (int64_t)kc_get_be64(e + 8);
        uint8_t st = e[16], dc = e[17];
        if (first < sp->spso || last >= sp->next || (sp->tail && first <= sp->tail->last) ||
            (st != SHARE_AVAILABLE && !SETTLED(st)))
            return -1;
        struct sbatch *b = sbatch_dense(first, last);
        if (!b)
            return -1;
        for (int32_t o = 0; o < b->n; o++) {
            b->r[o].state = st;
            b->r[o].deliveries = dc;
        }
        if (SETTLED(st))
            b->unsettled = 0;
        window_append(sp, b);
    }
    window_trim(sp);
    return 0;
}

static void part_free(struct share_part *sp)
{
    ev_timer_stop(sp->g->ss->b->loop, &sp->timer);
    for (struct sbatch *b = sp->head, *n; b; b = n) {
        n = b->next;
        free(b);
    }
    free(sp);
}

/* The real partition of sp, loaded; NULL when the topic or partition is gone. */
static struct partition *part_log(struct share_part *sp)
{
    struct topics *ts = sp->g->ss->b->topics;
    struct topic *t = topic_find_id(ts, sp->topic_id);
    return t ? topic_partition(ts, t, sp->partition) : NULL;
}

struct share_part *share_part_find(struct share_group *g, const uint8_t topic_id[16],
                                   int32_t partition)
{
    for (struct share_part *sp = g->parts; sp; sp = sp->gnext)
        if (sp->partition == partition && memcmp(sp->topic_id, topic_id, 16) == 0)
            return sp;
    return NULL;
}

struct share_part *share_part_get(struct share_group *g, const uint8_t topic_id[16],
                                  int32_t partition)
{
    struct share_part *sp = share_part_find(g, topic_id, partition);
    if (sp)
        return sp;
    if (!(sp = calloc(1, sizeof *sp)))
        return NULL;
    sp->g = g;
    memcpy(sp->topic_id, topic_id, 16);
    sp->partition = partition;
    ev_timer_init(&sp->timer, on_lock_timer, sp);
    struct partition *p = part_log(sp);
    if (!p) {
        free(sp);
        return NULL;
    }
    uint8_t k[23 + SHARE_GROUP_ID_MAX];
    size_t vl;
    int err;
    uint8_t *v = store_get(g->ss->b->store, STORE_CF_SHARE, k, part_key(k, g, topic_id, partition),
                           &vl, &err);
    if (!v && err < 0) {
        free(sp);
        return NULL;
    }
    if (v && part_decode(sp, v, vl) < 0) {
        log_warn("share: group %s partition %d: bad stored state; starting over", g->id, partition);
        for (struct sbatch *b = sp->head, *n; b; b = n)
            n = b->next, free(b);
        sp->head = sp->tail = NULL;
        sp->window = sp->unsettled = 0;
        free(v);
        v = NULL;
    }
    if (!v) {
        sp->spso = sp->next = g->cfg.auto_reset == SHARE_RESET_EARLIEST ? p->log_start : p->hwm;
        mark_dirty(sp);
    }
    free(v);
    sp->gnext = g->parts;
    g->parts = sp;
    g->nparts++;
    return sp;
}

/* ---- acquiring ---- */

static int acq_grow(struct share_acquired *a, bool range)
{
    if (range && a->nr == a->rcap) {
        int cap = a->rcap ? a->rcap * 2 : 8;
        struct share_range *n = realloc(a->r, (size_t)cap * sizeof *n);
        if (!n)
            return -1;
        a->r = n, a->rcap = cap;
    }
    if (!range && a->nb == a->bcap) {
        int cap = a->bcap ? a->bcap * 2 : 8;
        struct share_wbatch *n = realloc(a->b, (size_t)cap * sizeof *n);
        if (!n)
            return -1;
        a->b = n, a->bcap = cap;
    }
    return 0;
}

/* Adds offset o (delivery count dc) to the ranges, extending the last one when it can. */
static int acq_add(struct share_acquired *a, int64_t o, int dc)
{
    struct share_range *l = a->nr ? &a->r[a->nr - 1] : NULL;
    if (l && l->last + 1 == o && l->deliveries == dc) {
        l->last = o;
    } else {
        if (acq_grow(a, true) < 0)
            return -1;
        a->r[a->nr++] = (struct share_range){o, o, dc};
    }
    a->records++;
    return 0;
}

/* Copies the stored batch holding offset into w (unless it is the batch written last) and
 * records it. Returns 0, or -1 when it is no longer in the log. */
static int acq_copy(struct share_part *sp, struct partition *p, int64_t offset, kc_writer *w,
                    struct share_acquired *a)
{
    if (a->nb && offset >= a->b[a->nb - 1].base && offset <= a->b[a->nb - 1].last)
        return 0;
    size_t at = w->len;
    int64_t copied = 0;
    struct batch_hdr h;
    if (plog_read(sp->g->ss->b->topics, p, offset, 1, true, w, &copied) != KERR_NONE ||
        copied <= 0 || batch_parse_hdr(w->p + at, (size_t)copied, &h) < 0 ||
        offset < h.base_offset || offset > h.base_offset + h.last_offset_delta ||
        acq_grow(a, false) < 0) {
        w->len = at;
        return -1;
    }
    a->b[a->nb++] = (struct share_wbatch){at, (size_t)copied, h.base_offset,
                                          h.base_offset + h.last_offset_delta};
    a->bytes += copied;
    return 0;
}

static void rec_acquire(struct share_part *sp, struct srec *r, struct share_member *m,
                        int64_t deadline)
{
    if (r->deliveries > 0 || r->handed)
        sp->redeliveries_total++;
    r->handed = true;
    if (r->deliveries < UINT8_MAX)
        r->deliveries++;
    r->state = SHARE_ACQUIRED;
    r->owner = m;
    r->deadline_us = deadline;
    sp->acquired++;
    m->held++;
}

/* Acquires records of the window that went back to available. */
static void acquire_window(struct share_part *sp, struct partition *p, struct share_member *m,
                           int32_t max_records, int64_t max_bytes, kc_writer *w,
                           struct share_acquired *a, int64_t deadline)
{
    for (struct sbatch *b = sp->head; b; b = b->next) {
        if (a->records >= max_records || (a->records > 0 && a->bytes >= max_bytes))
            return;
        for (int32_t i = 0; i < b->n; i++) {
            struct srec *r = &b->r[i];
            if (r->state != SHARE_AVAILABLE)
                continue;
            if (r->deliveries >= sp->g->cfg.max_deliveries) {
                rec_settle(sp, b, r, SHARE_ARCHIVED); /* the limit was lowered */
                continue;
            }
            if (acq_copy(sp, p, rec_off(b, i), w, a) < 0) {
                rec_settle(sp, b, r, SHARE_ARCHIVED); /* gone from the log */
                continue;
            }
            rec_acquire(sp, r, m, deadline);
            if (acq_add(a, rec_off(b, i), r->deliveries) < 0)
                return;
        }
    }
}

/* Reads the offset deltas of the n records of an uncompressed batch body into d, strictly
 * increasing and within [0, last_delta]. Returns 0, or -1 when the records do not parse. */
static int batch_deltas(const uint8_t *p, size_t len, int32_t n, int32_t last_delta, uint32_t *d)
{
    kc_reader r;
    kc_reader_init(&r, p, len);
    for (int32_t i = 0; i < n; i++) {
        int32_t sz = kc_varint(&r);
        const uint8_t *rec = kc_raw(&r, sz > 0 ? (size_t)sz : 0);
        if (!kc_ok(&r) || sz <= 0)
            return -1;
        kc_reader body;
        kc_reader_init(&body, rec, (size_t)sz);
        kc_i8(&body);      /* attributes */
        kc_varlong(&body); /* timestampDelta */
        int32_t delta = kc_varint(&body);
        if (!kc_ok(&body) || delta < 0 || delta > last_delta ||
            (i > 0 && (uint32_t)delta <= d[i - 1]))
            return -1;
        d[i] = (uint32_t)delta;
    }
    return 0;
}

/* The tracked batch for the records of the stored batch p (header h) at offsets >= from:
 * only the offsets that hold a record when the batch has gaps (fewer records than offsets)
 * and they can be read; else every offset, as Kafka does (clients acknowledge the gaps of a
 * compressed batch as GAP). Returns 0 (*out NULL when no record is at or past from), or -1
 * when out of memory. */
static int sbatch_of(const uint8_t *p, size_t len, const struct batch_hdr *h, int64_t from,
                     struct sbatch **out)
{
    int64_t base = h->base_offset, last = base + h->last_offset_delta;
    *out = NULL;
    if (from < base)
        from = base;
    if (last < from)
        return 0;
    bool sparse = h->count > 0 && (int64_t)h->count <= h->last_offset_delta &&
                  (h->attributes & BATCH_ATTR_COMPRESSION_MASK) == 0 &&
                  (size_t)h->count <= (len - BATCH_HEADER_LEN) / 7; /* 7: the least record */
    uint32_t *d = sparse ? malloc((size_t)h->count * sizeof *d) : NULL;
    if (sparse && !d)
        return -1;
    if (!sparse || batch_deltas(p + BATCH_HEADER_LEN, len - BATCH_HEADER_LEN, h->count,
                                h->last_offset_delta, d) < 0) {
        free(d);
        return (*out = sbatch_dense(from, last)) ? 0 : -1;
    }
    int32_t i0 = 0;
    while (i0 < h->count && base + d[i0] < from)
        i0++;
    if (i0 == h->count) {
        free(d);
        return 0;
    }
    struct sbatch *b = sbatch_new(from, last, h->count - i0);
    for (int32_t i = 0; b && i < b->n; i++)
        b->r[i].delta = (uint32_t)(base + d[i0 + i] - from);
    free(d);
    *out = b;
    return b ? 0 : -1;
}

/* Acquires the records of the stored batch at w->p + at (len bytes) for m; returns 0, 1
 * when it does not fit (records, bytes or the window cap: nothing changes) or holds no
 * record at or past next (next moves past it), or -1 when it is not a batch. */
static int acquire_one(struct share_part *sp, struct share_member *m, int32_t max_records,
                       int64_t max_bytes, kc_writer *w, size_t at, size_t len,
                       struct share_acquired *a, int64_t deadline)
{
    struct batch_hdr h;
    if (len < BATCH_HEADER_LEN || batch_parse_hdr(w->p + at, len, &h) < 0)
        return -1;
    int64_t last = h.base_offset + h.last_offset_delta;
    if (last < sp->next) /* wholly before next: a stale batch */
        return 1;
    if (a->records > 0 && (a->records >= max_records || a->bytes + (int64_t)len > max_bytes ||
                           sp->window >= sp->g->cfg.max_inflight))
        return 1;
    struct sbatch *b;
    if (sbatch_of(w->p + at, len, &h, sp->next, &b) < 0 || (b && acq_grow(a, false) < 0)) {
        free(b);
        return 1;
    }
    if (!b) { /* only a gap left of it: nothing to hand out */
        sp->next = last + 1;
        return 1;
    }
    a->b[a->nb++] = (struct share_wbatch){at, len, h.base_offset, last};
    a->bytes += (int64_t)len;
    window_append(sp, b);
    sp->next = last + 1;
    for (int32_t i = 0; i < b->n; i++) {
        rec_acquire(sp, &b->r[i], m, deadline);
        acq_add(a, rec_off(b, i), 1);
    }
    return 0;
}

/* Reads new batches at next (one log read per round) and acquires them whole, within the
 * record, byte and window caps; batches read past the caps are cut off the writer again. */
static void acquire_new(struct share_part *sp, struct partition *p, struct share_member *m,
                        int32_t max_records, int64_t max_bytes, kc_writer *w,
                        struct share_acquired *a, int64_t deadline)
{
    int64_t cap = sp->g->cfg.max_inflight;
    while (sp->next < p->hwm && a->records < max_records &&
           (a->records == 0 || a->bytes < max_bytes) && (sp->window < cap || sp->window == 0)) {
        size_t at = w->len, pos;
        int64_t copied = 0, want = max_bytes - a->bytes;
        int64_t next_before = sp->next;
        if (plog_read(sp->g->ss->b->topics, p, sp->next, want > 0 ? want : 1, a->records == 0, w,
                      &copied) != KERR_NONE ||
            copied <= 0) {
            w->len = at;
            return;
        }
        for (pos = at; pos < at + (size_t)copied;) {
            int64_t len = batch_size(w->p + pos, at + (size_t)copied - pos);
            int rc = len > 0 ? acquire_one(sp, m, max_records, max_bytes, w, pos, (size_t)len, a,
                                           deadline)
                             : -1;
            if (rc != 0)
                break;
            pos += (size_t)len;
        }
        /* drop what was read but not acquired; only a stale batch (next moved) goes on */
        bool cut = pos < at + (size_t)copied;
        w->len = pos;
        if (cut && (pos > at || sp->next == next_before))
            return;
    }
}

/* Follows the log start forward: records deleted by retention leave the window. */
static void follow_log_start(struct share_part *sp, const struct partition *p)
{
    if (sp->spso >= p->log_start)
        return;
    for (struct sbatch *b = sp->head; b && b->base < p->log_start; b = b->next)
        for (int32_t i = 0; i < b->n && rec_off(b, i) < p->log_start; i++) {
            struct srec *r = &b->r[i];
            if (!SETTLED(r->state))
                rec_settle(sp, b, r, SHARE_ARCHIVED);
        }
    if (sp->next < p->log_start)
        sp->next = p->log_start;
    window_trim(sp);
    if (sp->spso < p->log_start && !sp->head)
        sp->spso = sp->next;
    mark_dirty(sp);
}

int16_t share_acquire(struct share_part *sp, struct share_member *m, int32_t max_records,
                      int64_t max_bytes, kc_writer *w, struct share_acquired *out)
{
    struct partition *p = part_log(sp);
    if (!p)
        return KERR_UNKNOWN_TOPIC_OR_PARTITION;
    if (m->g != sp->g)
        return KERR_INVALID_REQUEST;
    if (max_records <= 0)
        max_records = INT32_MAX;
    follow_log_start(sp, p);
    if (sp->next > p->hwm) /* the log was truncated or recreated behind us */
        sp->next = p->hwm;
    int64_t before = out->records;
    int64_t deadline = ev_now_us() + (int64_t)sp->g->cfg.lock_ms * 1000;
    acquire_window(sp, p, m, max_records, max_bytes, w, out, deadline);
    acquire_new(sp, p, m, max_records, max_bytes, w, out, deadline);
    if (out->records > before) {
        arm_timer(sp, deadline);
        mark_dirty(sp);
    }
    window_trim(sp);
    return w->err ? KERR_UNKNOWN_SERVER : KERR_NONE;
}

void share_acquired_free(struct share_acquired *a)
{
    free(a->r);
    free(a->b);
    *a = (struct share_acquired){0};
}

bool share_part_has_available(struct share_part *sp)
{
    for (struct sbatch *b = sp->head; b; b = b->next)
        for (int32_t i = 0; i < b->n; i++)
            if (b->r[i].state == SHARE_AVAILABLE)
                return true;
    struct partition *p = part_log(sp);
    return p && sp->next < p->hwm && sp->window < sp->g->cfg.max_inflight;
}

/* ---- acknowledging ---- */

/* Calls fn on every tracked record of [first, last] (gaps have none). */
typedef void rec_fn(struct share_part *sp, struct sbatch *b, struct srec *r, void *arg);
static void for_range(struct share_part *sp, int64_t first, int64_t last, rec_fn *fn, void *arg)
{
    for (struct sbatch *b = sp->head; b && b->base <= last; b = b->next) {
        if (b->last < first)
            continue;
        for (int32_t i = rec_lower(b, first); i < b->n && rec_off(b, i) <= last; i++)
            fn(sp, b, &b->r[i], arg);
    }
}

enum { ACK_RETURN = -1 }; /* share_return: a release that undoes its acquisition's count */

struct ack_ctx {
    struct share_member *m;
    int type;
    bool bad;
    int64_t n;
};

static void check_one(struct share_part *sp, struct sbatch *b, struct srec *r, void *arg)
{
    struct ack_ctx *c = arg;
    if (r->state != SHARE_ACQUIRED || r->owner != c->m)
        c->bad = true;
}

static void ack_one(struct share_part *sp, struct sbatch *b, struct srec *r, void *arg)
{
    struct ack_ctx *c = arg;
    if (r->state != SHARE_ACQUIRED || r->owner != c->m)
        return;
    c->n++;
    if (c->type == ACK_RETURN && r->deliveries > 0)
        r->deliveries--;
    if (c->type == SHARE_ACK_ACCEPT)
        rec_settle(sp, b, r, SHARE_ACKED);
    else if (c->type == SHARE_ACK_RELEASE || c->type == ACK_RETURN)
        rec_release(sp, b, r);
    else
        rec_settle(sp, b, r, SHARE_ARCHIVED);
}

/* Applies the ack after the checks; wakes waiters when room or records came free. */
static void ack_apply(struct share_part *sp, int64_t first, int64_t last, struct ack_ctx *c)
{
    int64_t window = sp->window;
    for_range(sp, first, last, ack_one, c);
    if (c->n == 0)
        return;
    window_trim(sp);
    mark_dirty(sp);
    if (c->type == SHARE_ACK_RELEASE || c->type == ACK_RETURN || sp->window < window)
        part_notify(sp);
}

int16_t share_acknowledge(struct share_part *sp, struct share_member *m, int64_t first,
                          int64_t last, int type)
{
    if (first > last || first < 0 || type < SHARE_ACK_GAP || type > SHARE_ACK_REJECT ||
        m->g != sp->g)
        return KERR_INVALID_REQUEST;
    if (first < sp->spso || last >= sp->next)
        return SERR_INVALID_RECORD_STATE;
    struct ack_ctx c = {.m = m, .type = type};
    for_range(sp, first, last, check_one, &c);
    if (c.bad)
        return SERR_INVALID_RECORD_STATE;
    ack_apply(sp, first, last, &c);
    return KERR_NONE;
}

int64_t share_settle(struct share_part *sp, struct share_member *m, int64_t first, int64_t last,
                     int type)
{
    if (first > last || m->g != sp->g)
        return 0;
    struct ack_ctx c = {.m = m, .type = type};
    ack_apply(sp, first, last, &c);
    return c.n;
}

int64_t share_return(struct share_part *sp, struct share_member *m, int64_t first, int64_t last)
{
    if (first > last || m->g != sp->g)
        return 0;
    struct ack_ctx c = {.m = m, .type = ACK_RETURN};
    ack_apply(sp, first, last, &c);
    return c.n;
}

/* ---- members ---- */

struct share_member *share_member_get(struct share_group *g, const char *id, size_t len,
                                      bool create)
{
    for (struct share_member *m = g->members; m; m = m->next)
        if (m->id_len == len && memcmp(m->id, id, len) == 0)
            return m;
    if (!create || len == 0 || len > SHARE_MEMBER_ID_MAX)
        return NULL;
    struct share_member *m = calloc(1, sizeof *m);
    if (!m || !(m->id = malloc(len + 1))) {
        free(m);
        return NULL;
    }
    memcpy(m->id, id, len);
    m->id[len] = 0;
    m->id_len = len;
    m->g = g;
    m->next = g->members;
    if (g->members)
        g->members->prev = m;
    g->members = m;
    g->nmembers++;
    return m;
}

const char *share_member_id(const struct share_member *m)
{
    return m->id;
}
int64_t share_member_inflight(const struct share_member *m)
{
    return m->held;
}

int64_t share_member_release(struct share_member *m)
{
    int64_t total = 0;
    for (struct share_part *sp = m->g->parts; sp && m->held > 0; sp = sp->gnext) {
        int64_t n = 0;
        for (struct sbatch *b = sp->head; b; b = b->next)
            for (int32_t i = 0; i < b->n; i++)
                if (b->r[i].state == SHARE_ACQUIRED && b->r[i].owner == m) {
                    rec_release(sp, b, &b->r[i]);
                    n++;
                }
        if (n > 0) {
            window_trim(sp);
            mark_dirty(sp);
            part_notify(sp);
        }
        total += n;
    }
    return total;
}

int64_t share_member_leave(struct share_member *m)
{
    struct share_group *g = m->g;
    int64_t n = share_member_release(m);
    if (m->prev)
        m->prev->next = m->next;
    else
        g->members = m->next;
    if (m->next)
        m->next->prev = m->prev;
    g->nmembers--;
    free(m->id);
    free(m);
    return n;
}

void share_group_foreach_member(struct share_group *g, share_member_fn *fn, void *arg)
{
    for (struct share_member *m = g->members, *n; m; m = n) {
        n = m->next;
        fn(arg, m);
    }
}

/* ---- inspection ---- */

struct share_group *share_part_group(const struct share_part *sp)
{
    return sp->g;
}
int32_t share_part_partition(const struct share_part *sp)
{
    return sp->partition;
}
const uint8_t *share_part_topic_id(const struct share_part *sp)
{
    return sp->topic_id;
}
int64_t share_part_start(const struct share_part *sp)
{
    return sp->spso;
}
int64_t share_part_next(const struct share_part *sp)
{
    return sp->next;
}

void share_part_stats(const struct share_part *sp, struct share_stats *st)
{
    st->inflight += sp->unsettled;
    st->acquired += sp->acquired;
    st->acked_total += sp->acked_total;
    st->redeliveries_total += sp->redeliveries_total;
    st->archived_total += sp->archived_total;
    st->expired_total += sp->expired_total;
    st->partitions++;
}

struct share_range *share_part_held(struct share_part *sp, const struct share_member *m, int *n)
{
    struct share_acquired a = {0};
    for (struct sbatch *b = sp->head; b; b = b->next)
        for (int32_t i = 0; i < b->n; i++)
            if (b->r[i].state == SHARE_ACQUIRED && b->r[i].owner == m)
                acq_add(&a, rec_off(b, i), b->r[i].deliveries);
    *n = a.nr;
    return a.r;
}

int share_part_record_state(struct share_part *sp, int64_t offset, int32_t *deliveries)
{
    *deliveries = 0;
    if (offset < sp->spso)
        return SHARE_ACKED;
    for (struct sbatch *b = sp->head; b; b = b->next)
        if (offset >= b->base && offset <= b->last) {
            int32_t i = rec_lower(b, offset);
            if (i == b->n || rec_off(b, i) != offset)
                return SHARE_ARCHIVED; /* a gap */
            *deliveries = b->r[i].deliveries;
            return b->r[i].state;
        }
    return offset < sp->next ? SHARE_ARCHIVED : SHARE_AVAILABLE;
}

/* ---- groups ---- */

static void cfg_encode(const struct share_config *c, uint8_t v[CFG_LEN])
{
    v[0] = STATE_VER;
    kc_put_be32(v + 1, (uint32_t)c->lock_ms);
    kc_put_be32(v + 5, (uint32_t)c->max_deliveries);
    kc_put_be32(v + 9, (uint32_t)c->max_inflight);
    kc_put_be32(v + 13, (uint32_t)c->expected_members);
    v[17] = (uint8_t)c->auto_reset;
}

static int cfg_check(const struct share_config *c, char *msg, size_t msglen)
{
    const char *why = c->lock_ms < 1000 || c->lock_ms > 3600000 ? "lock_ms must be 1000..3600000"
                      : c->max_deliveries < 2 || c->max_deliveries > SHARE_MAX_DELIVERIES_MAX
                          ? "max_deliveries must be 2..100"
                      : c->max_inflight < 1 || c->max_inflight > SHARE_MAX_INFLIGHT_MAX
                          ? "the in-flight cap must be 1..1000000"
                      : c->expected_members < 0 ? "expected_members must be >= 0"
                      : c->auto_reset != SHARE_RESET_LATEST && c->auto_reset != SHARE_RESET_EARLIEST
                          ? "auto reset must be latest or earliest"
                          : NULL;
    if (why)
        snprintf(msg, msglen, "%s", why);
    return why ? -1 : 0;
}

static void cfg_decode(struct share_config *c, const uint8_t *v, size_t vl)
{
    struct share_config n = {0};
    if (vl != CFG_LEN || v[0] != STATE_VER)
        return;
    n.lock_ms = (int32_t)kc_get_be32(v + 1);
    n.max_deliveries = (int32_t)kc_get_be32(v + 5);
    n.max_inflight = (int32_t)kc_get_be32(v + 9);
    n.expected_members = (int32_t)kc_get_be32(v + 13);
    n.auto_reset = v[17];
    char msg[64];
    if (cfg_check(&n, msg, sizeof msg) == 0)
        *c = n;
}

struct share_group *share_group_get(struct shares *ss, const char *id, size_t len, bool create)
{
    if (len == 0 || len > SHARE_GROUP_ID_MAX)
        return NULL;
    uint64_t h = hash_bytes(id, len);
    for (struct hnode *n = htab_first(&ss->tab, h); n; n = htab_next(n)) {
        struct share_group *g = HTAB_ENTRY(n, struct share_group, hnode);
        if (g->id_len == len && memcmp(g->id, id, len) == 0)
            return g;
    }
    if (!create)
        return NULL;
    struct share_group *g = calloc(1, sizeof *g);
    if (!g || !(g->id = malloc(len + 1))) {
        free(g);
        return NULL;
    }
    memcpy(g->id, id, len);
    g->id[len] = 0;
    g->id_len = len;
    g->ss = ss;
    g->cfg = cfg_defaults;
    if (htab_insert(&ss->tab, &g->hnode, h) < 0) {
        free(g->id);
        free(g);
        return NULL;
    }
    return g;
}

const char *share_group_id(const struct share_group *g)
{
    return g->id;
}
const struct share_config *share_group_config(const struct share_group *g)
{
    return &g->cfg;
}

int share_group_configure(struct share_group *g, const struct share_config *cfg, char *msg,
                          size_t msglen)
{
    if (cfg_check(cfg, msg, msglen) < 0)
        return -1;
    g->cfg = *cfg;
    uint8_t k[1 + SHARE_GROUP_ID_MAX], v[CFG_LEN];
    k[0] = KEY_GROUP;
    memcpy(k + 1, g->id, g->id_len);
    cfg_encode(cfg, v);
    if (store_put(g->ss->b->store, STORE_CF_SHARE, k, 1 + g->id_len, v, sizeof v) < 0) {
        snprintf(msg, msglen, "store write failed");
        return -1;
    }
    return 0;
}

/* Parses a decimal int32 of vlen bytes; -1 on anything else. */
static int parse_i32(const char *s, size_t n, int32_t *out)
{
    int64_t v = 0;
    if (n == 0 || n > 10)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v > INT32_MAX)
        return -1;
    *out = (int32_t)v;
    return 0;
}

static bool key_is(const char *k, size_t kl, const char *want)
{
    return kl == strlen(want) && memcmp(k, want, kl) == 0;
}

int share_group_set(struct share_group *g, const char *key, size_t klen, const char *value,
                    size_t vlen, bool validate_only, char *msg, size_t msglen)
{
    struct share_config c = g->cfg;
    int32_t v = 0;
    bool bad =
        value && !key_is(key, klen, "share.auto.offset.reset") && parse_i32(value, vlen, &v) < 0;
    if (key_is(key, klen, "share.record.lock.duration.ms"))
        c.lock_ms = value ? v : cfg_defaults.lock_ms;
    else if (key_is(key, klen, "share.delivery.count.limit"))
        c.max_deliveries = value ? v : cfg_defaults.max_deliveries;
    else if (key_is(key, klen, "share.partition.max.record.locks"))
        c.max_inflight = value ? v : cfg_defaults.max_inflight;
    else if (key_is(key, klen, "share.auto.offset.reset")) {
        c.auto_reset = !value                            ? cfg_defaults.auto_reset
                       : key_is(value, vlen, "earliest") ? SHARE_RESET_EARLIEST
                       : key_is(value, vlen, "latest")   ? SHARE_RESET_LATEST
                                                         : -1;
    } else {
        snprintf(msg, msglen, "unknown share group config");
        return -1;
    }
    if (bad) {
        snprintf(msg, msglen, "not a number");
        return -1;
    }
    if (cfg_check(&c, msg, msglen) < 0)
        return -1;
    return validate_only ? 0 : share_group_configure(g, &c, msg, msglen);
}

static void group_free(struct share_group *g)
{
    for (struct share_part *sp = g->parts, *n; sp; sp = n) {
        n = sp->gnext;
        part_free(sp);
    }
    for (struct share_member *m = g->members, *n; m; m = n) {
        n = m->next;
        free(m->id);
        free(m);
    }
    free(g->id);
    free(g);
}

/* Drops sp from the registry's dirty list. */
static void undirty(struct shares *ss, struct share_part *sp)
{
    for (struct share_part **pp = &ss->dirty; *pp; pp = &(*pp)->dnext)
        if (*pp == sp) {
            *pp = sp->dnext;
            return;
        }
}

int share_group_delete(struct share_group *g)
{
    struct shares *ss = g->ss;
    uint8_t lo[3 + SHARE_GROUP_ID_MAX], hi[3 + SHARE_GROUP_ID_MAX], k[1 + SHARE_GROUP_ID_MAX];
    lo[0] = hi[0] = KEY_PART;
    lo[1] = hi[1] = (uint8_t)(g->id_len >> 8);
    lo[2] = hi[2] = (uint8_t)g->id_len;
    memcpy(lo + 3, g->id, g->id_len);
    memcpy(hi + 3, g->id, g->id_len);
    /* the upper bound: the same prefix with 0xff... past every topic id */
    uint8_t hk[3 + SHARE_GROUP_ID_MAX + 21];
    memcpy(hk, hi, 3 + g->id_len);
    memset(hk + 3 + g->id_len, 0xff, 21);
    k[0] = KEY_GROUP;
    memcpy(k + 1, g->id, g->id_len);
    struct store_wb *wb = store_wb_new(ss->b->store);
    if (!wb)
        return -1;
    store_wb_del_range(wb, STORE_CF_SHARE, lo, 3 + g->id_len, hk, 3 + g->id_len + 21);
    store_wb_del(wb, STORE_CF_SHARE, k, 1 + g->id_len);
    int rc = store_write(ss->b->store, wb, 0);
    store_wb_free(wb);
    if (rc < 0)
        return -1;
    for (struct share_part *sp = g->parts; sp; sp = sp->gnext)
        if (sp->dirty)
            undirty(ss, sp);
    htab_remove(&ss->tab, &g->hnode);
    group_free(g);
    return 0;
}

void share_group_stats(const struct share_group *g, struct share_stats *st)
{
    *st = (struct share_stats){0};
    for (const struct share_part *sp = g->parts; sp; sp = sp->gnext)
        share_part_stats(sp, st);
    st->members = g->nmembers;
}

void share_group_foreach_part(struct share_group *g, share_part_fn *fn, void *arg)
{
    for (struct share_part *sp = g->parts; sp; sp = sp->gnext) {
        struct share_stats st = {0};
        share_part_stats(sp, &st);
        fn(arg, sp, &st);
    }
}

void shares_foreach(struct shares *ss, share_group_fn *fn, void *arg)
{
    HTAB_FOREACH(&ss->tab, i, n, nx)
        fn(arg, HTAB_ENTRY(n, struct share_group, hnode));
}

/* ---- registry ---- */

static int load_groups(struct shares *ss)
{
    uint8_t lo[1] = {KEY_GROUP}, hi[1] = {KEY_GROUP + 1};
    struct store_it *it = store_it_new(ss->b->store, STORE_CF_SHARE, lo, 1, hi, 1);
    if (!it)
        return -1;
    for (store_it_first(it); store_it_valid(it); store_it_next(it)) {
        size_t kl, vl;
        const uint8_t *k = store_it_key(it, &kl), *v = store_it_value(it, &vl);
        struct share_group *g = share_group_get(ss, (const char *)k + 1, kl - 1, true);
        if (g)
            cfg_decode(&g->cfg, v, vl);
    }
    store_it_free(it);
    return 0;
}

struct shares *shares_new(struct broker *b)
{
    struct shares *ss = calloc(1, sizeof *ss);
    if (!ss)
        return NULL;
    ss->b = b;
    if (load_groups(ss) < 0) {
        shares_free(ss);
        return NULL;
    }
    return ss;
}

void shares_free(struct shares *ss)
{
    if (!ss)
        return;
    share_flush(ss);
    HTAB_FOREACH(&ss->tab, i, n, nx)
        group_free(HTAB_ENTRY(n, struct share_group, hnode));
    htab_free(&ss->tab);
    free(ss);
}

void shares_set_notify(struct shares *ss, share_notify_fn *fn, void *arg)
{
    ss->notify = fn;
    ss->notify_arg = arg;
}

size_t shares_group_count(const struct shares *ss)
{
    return ss->tab.n;
}
