/* tiered.c: the tiered storage module (tiered.h): partition state, and upload rounds.
 * A round starts from a timer: the worker thread walks the stored tiered topics and,
 * per partition, decides which remote segments retention drops and assembles the
 * segments to upload from the oldest local batches. Back on the loop, drops move the
 * log start (persisted) before the S3 DELETEs; uploads run one segment after another
 * per partition, and each confirmed PUT writes the manifest record and deletes the
 * local batches in one atomic store write. A crash before that write leaves the local
 * data and at most an orphan object, which the next upload of the same offsets
 * overwrites. A failed round backs off; nothing local is lost meanwhile. */
#include "tiered_int.h"

#include "batch.h"
#include "broker.h"
#include "kcodec.h"
#include "log.h"
#include "s3.h"
#include "store.h"
#include "topic.h"
#include "work.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROUND_BUDGET_MIN (64LL << 20) /* segment bytes one round may hold in memory */
#define BACKOFF_MAX_MS 60000

/* A remote segment retention drops: its range is enough to name the object. */
struct tdrop {
    int64_t base, end;
};

/* One partition's part of a round. */
struct tjob {
    struct tjob *next;
    struct tround *round;
    uint8_t topic_id[16];
    int32_t partition;
    int64_t log_start;          /* as the scan saw it */
    int64_t new_start;          /* retention: the new log start, or -1 */
    struct tdrop *drops;        /* segments to delete from S3 and the manifest */
    size_t ndrops;
    struct tm_builder *segs;    /* segments to upload, in offset order */
    size_t nsegs, next_seg;
    char key[S3_MAX_KEY_LEN + 1];
};

struct tround {
    struct tiered *t;
    int64_t now_ms;
    int64_t budget;   /* segment bytes left to assemble */
    struct tjob *jobs;
    int pending;      /* jobs still uploading */
    bool failed;      /* an upload failed: back off */
    bool more;        /* the budget ran out: go again soon */
};

/* An S3 DELETE of a dropped or orphaned segment. */
struct tdel {
    struct tctx link;
    struct tiered *t;
    uint8_t topic_id[16];
    int32_t partition;
    int64_t base;
    bool manifest; /* remove the manifest record once the object is gone */
};

void tiered_ctx_link(struct tiered *t, struct tctx *c)
{
    c->prev = NULL;
    c->next = t->ctxs;
    if (t->ctxs)
        t->ctxs->prev = c;
    t->ctxs = c;
}

void tiered_ctx_unlink(struct tiered *t, struct tctx *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        t->ctxs = c->next;
    if (c->next)
        c->next->prev = c->prev;
}

int tiered_object_key(const struct tiered *t, const uint8_t topic_id[16], int32_t partition,
                      int64_t base, int64_t end, char *out, size_t cap)
{
    return tm_object_key(out, cap, t->prefix, topic_id, partition, base, end);
}

void tiered_stats(const struct tiered *t, struct tiered_stats *out)
{
    *out = t->st;
}

/* ---- partition state ---- */

/* Appends a decoded segment to tp. Returns 0 or -1. */
static int tpart_push(struct tpart *tp, struct tm_seg *s)
{
    if (tp->n == tp->cap) {
        size_t nc = tp->cap ? tp->cap * 2 : 8;
        struct tm_seg *a = realloc(tp->segs, nc * sizeof *a);
        if (!a)
            return -1;
        tp->segs = a;
        tp->cap = nc;
    }
    tp->segs[tp->n++] = *s;
    return 0;
}

/* Reads a partition's manifest from st into tp (any thread). Returns 0 or -1. */
static int manifest_load(struct store *st, const uint8_t id[16], int32_t part, struct tpart *tp)
{
    uint8_t lo[21], hi[21];
    tm_key_bounds(id, part, lo, hi);
    struct store_it *it = store_it_new(st, STORE_CF_PSTATE, lo, 21, hi, 21);
    if (!it)
        return -1;
    int rc = 0;
    for (store_it_first(it); rc == 0 && store_it_valid(it); store_it_next(it)) {
        size_t kl, vl;
        const uint8_t *k = store_it_key(it, &kl), *v = store_it_value(it, &vl);
        struct tm_seg s;
        if (kl != TM_KEY_LEN || tm_decode((int64_t)kc_get_be64(k + 21), v, vl, &s) < 0) {
            log_warn("tiered: skipping a corrupt manifest record");
            continue;
        }
        if ((rc = tpart_push(tp, &s)) < 0)
            tm_seg_clear(&s);
    }
    store_it_free(it);
    return rc;
}

/* Base offset of the first local batch, or -1 when the local log is empty. */
static int64_t local_first(struct store *st, const uint8_t id[16], int32_t part)
{
    uint8_t lo[20], hi[20];
    store_part_prefix(lo, id, part);
    store_part_prefix(hi, id, part + 1);
    struct store_it *it = store_it_new(st, STORE_CF_LOG, lo, 20, hi, 20);
    int64_t first = -1;
    if (!it)
        return -1;
    store_it_first(it);
    if (store_it_valid(it)) {
        size_t kl;
        const uint8_t *k = store_it_key(it, &kl);
        if (kl == STORE_LOG_KEY_LEN)
            first = (int64_t)kc_get_be64(k + 20);
    }
    store_it_free(it);
    return first;
}

static void tpart_recount(struct tpart *tp, int64_t log_start)
{
    tp->remote_bytes = 0;
    for (size_t i = 0; i < tp->n; i++)
        if (tp->segs[i].end > log_start)
            tp->remote_bytes += tp->segs[i].bytes;
}

int tiered_part_load(struct broker *b, struct partition *p)
{
    struct tpart *tp = calloc(1, sizeof *tp);
    if (!tp || manifest_load(b->store, p->topic->id, p->id, tp) < 0) {
        tiered_part_free(tp);
        return -1;
    }
    if (tp->n && tp->segs[tp->n - 1].end > p->hwm)
        p->hwm = tp->segs[tp->n - 1].end; /* everything went to S3 */
    int64_t first = local_first(b->store, p->topic->id, p->id);
    tp->local_start = first >= 0 ? first : p->hwm;
    tpart_recount(tp, p->log_start);
    p->tier = tp;
    return 0;
}

void tiered_part_free(struct tpart *tp)
{
    if (!tp)
        return;
    for (size_t i = 0; i < tp->n; i++)
        tm_seg_clear(&tp->segs[i]);
    free(tp->segs);
    free(tp);
}

void tiered_local_cut(struct partition *p, int64_t first_kept)
{
    if (first_kept > p->tier->local_start)
        p->tier->local_start = first_kept;
    tpart_recount(p->tier, p->log_start);
}

/* Drops the in-memory segments that end at or below p's log start. */
static void tpart_forget_below(struct partition *p)
{
    struct tpart *tp = p->tier;
    size_t k = 0;
    while (k < tp->n && tp->segs[k].end <= p->log_start)
        tm_seg_clear(&tp->segs[k++]);
    memmove(tp->segs, tp->segs + k, (tp->n - k) * sizeof *tp->segs);
    tp->n -= k;
    tpart_recount(tp, p->log_start);
}

/* ---- planning (worker thread) ---- */

/* Decides which remote segments retention drops: those below the log start, and the
 * oldest while they are expired or the partition (remote + local) is over its size. */
static void plan_drops(const struct topic_config *c, int64_t now_ms, const struct tpart *tp,
                       int64_t local_bytes, struct tjob *j)
{
    int64_t total = tp->remote_bytes + local_bytes;
    j->new_start = -1;
    if (!tp->n || !(j->drops = calloc(tp->n, sizeof *j->drops)))
        return;
    for (size_t i = 0; i < tp->n; i++) {
        const struct tm_seg *s = &tp->segs[i];
        bool garbage = s->end <= j->log_start;
        bool expired = c->retention_ms >= 0 && s->max_ts < now_ms - c->retention_ms;
        bool over = c->retention_bytes >= 0 && total > c->retention_bytes;
        if (!garbage && !expired && !over)
            break;
        if (!garbage) {
            total -= s->bytes;
            j->new_start = s->end;
        }
        j->drops[j->ndrops++] = (struct tdrop){s->base, s->end};
    }
}

/* Adds a finished builder to j. Returns 0 or -1. */
static int job_add_seg(struct tjob *j, struct tm_builder *bld)
{
    struct tm_builder *a = realloc(j->segs, (j->nsegs + 1) * sizeof *a);
    if (!a)
        return -1;
    j->segs = a;
    a[j->nsegs++] = *bld;
    return 0;
}

/* Assembles the segments to upload: the oldest local batches while the local log is
 * over local.retention.bytes or they are older than local.retention.ms, cut into
 * segments of at most seg_max bytes. A last, short segment goes only when all of it is
 * old enough by time; otherwise it waits to fill up. */
static void plan_uploads(struct store *st, const struct topic_config *c, int64_t now_ms,
                         int64_t local_bytes, int64_t seg_max, int64_t stretch, struct tjob *j)
{
    uint8_t lo[20], hi[20];
    store_part_prefix(lo, j->topic_id, j->partition);
    store_part_prefix(hi, j->topic_id, j->partition + 1);
    struct store_it *it = store_it_new(st, STORE_CF_LOG, lo, 20, hi, 20);
    struct tm_builder cur;
    bool all_old = true, open = false;
    int64_t left = local_bytes;
    int64_t max_seg = c->local_retention_bytes >= 0 && c->local_retention_bytes < seg_max
                          ? (c->local_retention_bytes > 4096 ? c->local_retention_bytes : 4096)
                          : seg_max;
    for (store_it_first(it); it && store_it_valid(it) && j->round->budget > 0; store_it_next(it)) {
        size_t kl, vl;
        store_it_key(it, &kl);
        const uint8_t *v = store_it_value(it, &vl);
        struct batch_hdr h;
        if (kl != STORE_LOG_KEY_LEN || batch_parse_hdr(v, vl, &h) != BATCH_OK)
            break;
        bool old = c->local_retention_ms >= 0 && h.max_timestamp < now_ms - c->local_retention_ms;
        bool over = c->local_retention_bytes >= 0 && left > c->local_retention_bytes;
        if (!old && !over)
            break;
        if (!open) {
            tm_builder_init(&cur, stretch);
            open = true;
            all_old = true;
        }
        if (tm_builder_add(&cur, v, vl) < 0)
            break;
        all_old &= old;
        left -= (int64_t)vl;
        j->round->budget -= (int64_t)vl;
        if ((int64_t)cur.len >= max_seg) {
            if (job_add_seg(j, &cur) < 0)
                tm_builder_free(&cur);
            open = false;
        }
    }
    if (j->round->budget <= 0)
        j->round->more = true;
    if (open && (!all_old || cur.len == 0 || job_add_seg(j, &cur) < 0))
        tm_builder_free(&cur);
    store_it_free(it);
}

static void job_free(struct tjob *j)
{
    for (size_t i = 0; i < j->nsegs; i++)
        tm_builder_free(&j->segs[i]);
    free(j->segs);
    free(j->drops);
    free(j);
}

/* Plans one stored partition; queues a job on the round when there is work. */
static void plan_partition(struct tround *r, const struct topic *t, int32_t part)
{
    struct broker *b = r->t->b;
    struct tpart tp = {0};
    int64_t local_bytes;
    struct tjob *j = calloc(1, sizeof *j);
    if (!j)
        return;
    j->round = r;
    memcpy(j->topic_id, t->id, 16);
    j->partition = part;
    if (plog_stored_state(b->store, t->id, part, &j->log_start, &local_bytes) < 0 ||
        manifest_load(b->store, t->id, part, &tp) < 0)
        goto out;
    tpart_recount(&tp, j->log_start);
    plan_drops(&t->cfg, r->now_ms, &tp, local_bytes, j);
    if (local_bytes > 0)
        plan_uploads(b->store, &t->cfg, r->now_ms, local_bytes, b->cfg.tiered_segment_bytes,
                     b->cfg.tiered_read_bytes, j);
out:
    for (size_t i = 0; i < tp.n; i++)
        tm_seg_clear(&tp.segs[i]);
    free(tp.segs);
    if (j->ndrops || j->nsegs) {
        j->next = r->jobs;
        r->jobs = j;
    } else {
        job_free(j);
    }
}

/* Worker: every stored tiered topic, every partition. */
static void round_scan(void *arg)
{
    struct tround *r = arg;
    struct broker *b = r->t->b;
    struct store_it *it = store_it_new(b->store, STORE_CF_TOPICS, NULL, 0, NULL, 0);
    for (store_it_first(it); it && store_it_valid(it); store_it_next(it)) {
        size_t kl, vl;
        const uint8_t *k = store_it_key(it, &kl), *v = store_it_value(it, &vl);
        struct topic *t = topic_parse_record(b->topics, (const char *)k, kl, (const char *)v, vl);
        for (int32_t i = 0; t && t->cfg.mode == MODE_TIERED && i < t->partitions; i++)
            plan_partition(r, t, i);
        topic_release(t);
    }
    store_it_free(it);
}

/* ---- applying a round (loop) ---- */

static void round_job_done(struct tjob *j);

/* The partition a job is about, loaded, if it is still a tiered partition. */
static struct partition *job_partition(struct tiered *t, const uint8_t id[16], int32_t part)
{
    struct topic *tp = topic_find_id(t->b->topics, id);
    if (!tp || tp->cfg.mode != MODE_TIERED)
        return NULL;
    struct partition *p = topic_partition(t->b->topics, tp, part);
    return p && p->tier ? p : NULL;
}

static void manifest_del(struct tiered *t, const uint8_t id[16], int32_t part, int64_t base)
{
    uint8_t k[TM_KEY_LEN];
    tm_key(k, id, part, base);
    store_del(t->b->store, STORE_CF_PSTATE, k, sizeof k);
}

static void on_deleted(void *arg, const struct s3_result *res)
{
    struct tdel *d = arg;
    struct tiered *t = d->t;
    tiered_ctx_unlink(t, &d->link);
    if (res->err == S3_OK || res->err == S3_ENOTFOUND) {
        t->st.remote_deletes++;
        if (d->manifest)
            manifest_del(t, d->topic_id, d->partition, d->base);
    } else {
        log_warn("tiered: deleting a segment failed (%s); the next round retries",
                 res->message ? res->message : "?");
    }
    free(d);
}

/* Deletes a segment object; with manifest, its record goes once the object is gone. */
static void segment_delete(struct tiered *t, const uint8_t id[16], int32_t part, int64_t base,
                           int64_t end, bool manifest)
{
    char key[S3_MAX_KEY_LEN + 1];
    struct tdel *d = calloc(1, sizeof *d);
    if (!d || tiered_object_key(t, id, part, base, end, key, sizeof key) < 0) {
        free(d);
        return;
    }
    *d = (struct tdel){.t = t, .partition = part, .base = base, .manifest = manifest};
    memcpy(d->topic_id, id, 16);
    if (s3_delete(t->s3, t->bucket, key, on_deleted, d) < 0) {
        free(d);
        return;
    }
    tiered_ctx_link(t, &d->link);
}

/* A deleted tiered topic's segments: listed under its id and deleted in the
 * background, page by page. Best effort: a failure is logged and leaves orphans that
 * hold no data anyone can reach. */
struct tpurge {
    struct tctx link;
    struct tiered *t;
    char prefix[600];
};

static void purge_page(void *arg, const struct s3_list_page *page);

static void purge_list(struct tpurge *pg, const char *token)
{
    if (s3_list(pg->t->s3, pg->t->bucket, pg->prefix, token, 1000, purge_page, pg) < 0) {
        tiered_ctx_unlink(pg->t, &pg->link);
        free(pg);
    }
}

static void purge_page(void *arg, const struct s3_list_page *page)
{
    struct tpurge *pg = arg;
    struct tiered *t = pg->t;
    if (page->err != S3_OK)
        log_warn("tiered: listing %s to delete it failed (%s)", pg->prefix,
                 page->message ? page->message : "?");
    for (size_t i = 0; page->err == S3_OK && i < page->n; i++) {
        struct tdel *d = calloc(1, sizeof *d);
        if (!d)
            break;
        *d = (struct tdel){.t = t};
        if (s3_delete(t->s3, t->bucket, page->objects[i].key, on_deleted, d) < 0) {
            free(d);
            continue;
        }
        tiered_ctx_link(t, &d->link);
    }
    if (page->err == S3_OK && page->truncated && page->next_token) {
        purge_list(pg, page->next_token);
        return;
    }
    tiered_ctx_unlink(t, &pg->link);
    free(pg);
}

void tiered_topic_deleted(struct broker *b, const struct topic *tp)
{
    struct tiered *t = b->tiered;
    if (!t || !t->s3 || tp->cfg.mode != MODE_TIERED)
        return;
    struct tpurge *pg = calloc(1, sizeof *pg);
    if (!pg)
        return;
    char hex[33];
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", tp->id[i]);
    pg->t = t;
    snprintf(pg->prefix, sizeof pg->prefix, "%s%s%s/", t->prefix, *t->prefix ? "/" : "", hex);
    tiered_ctx_link(t, &pg->link);
    purge_list(pg, NULL);
}

/* Retention's verdict: move the log start (persisted first), then delete the objects. */
static void apply_drops(struct tiered *t, struct tjob *j)
{
    struct partition *p = job_partition(t, j->topic_id, j->partition);
    if (!p || p->log_start != j->log_start)
        return; /* moved meanwhile: the next round decides again */
    if (j->new_start > p->log_start && j->new_start <= p->tier->local_start) {
        if (plog_apply_cut(t->b->topics, p, j->new_start, p->tier->local_start, 0) != KERR_NONE)
            return;
        log_info("tiered: %s-%d now starts at %lld (remote retention)", p->topic->name, p->id,
                 (long long)j->new_start);
    }
    tpart_forget_below(p);
    for (size_t i = 0; i < j->ndrops; i++)
        if (j->drops[i].end <= p->log_start)
            segment_delete(t, j->topic_id, j->partition, j->drops[i].base, j->drops[i].end,
                           true);
}

static void upload_next(struct tjob *j);

/* Records a confirmed upload: the manifest record and the local deletion in one write.
 * Returns 0, or -1 when the partition moved on meanwhile (the object is an orphan). */
static int upload_commit(struct tiered *t, struct tjob *j, struct tm_builder *bld,
                         const char *etag)
{
    struct partition *p = job_partition(t, j->topic_id, j->partition);
    if (!p || p->tier->local_start != bld->seg.base)
        return -1;
    snprintf(bld->seg.etag, sizeof bld->seg.etag, "%s", etag ? etag : "");
    size_t vl;
    uint8_t k[TM_KEY_LEN], *v = tm_encode(&bld->seg, &vl);
    struct store_wb *wb = store_wb_new(t->b->store);
    int rc = -1;
    if (v && wb) {
        tm_key(k, j->topic_id, j->partition, bld->seg.base);
        store_wb_put(wb, STORE_CF_PSTATE, k, sizeof k, v, vl);
        rc = plog_apply_cut_wb(t->b->topics, p, p->log_start, bld->seg.end, (int64_t)bld->len,
                               wb) == KERR_NONE
                 ? 0
                 : -1;
    }
    free(v);
    store_wb_free(wb);
    if (rc < 0 || tpart_push(p->tier, &bld->seg) < 0)
        return -1; /* the store refused: the data stays local, the next round retries */
    memset(&bld->seg, 0, sizeof bld->seg); /* the partition owns the index now */
    tpart_recount(p->tier, p->log_start);
    return 0;
}

static void on_uploaded(void *arg, const struct s3_result *res)
{
    struct tjob *j = arg;
    struct tiered *t = j->round->t;
    struct tm_builder *bld = &j->segs[j->next_seg];
    if (res->err != S3_OK) {
        t->st.upload_errors++;
        log_warn("tiered: upload of %s failed: %s; local data stays, retrying later", j->key,
                 res->message ? res->message : "?");
        j->round->failed = true;
        round_job_done(j);
        return;
    }
    int64_t base = bld->seg.base, end = bld->seg.end;
    if (upload_commit(t, j, bld, res->etag) < 0) {
        log_info("tiered: %s is no longer needed; deleting it", j->key);
        segment_delete(t, j->topic_id, j->partition, base, end, false);
        round_job_done(j);
        return;
    }
    t->st.uploads++;
    t->st.upload_bytes += bld->len;
    log_debug("tiered: uploaded %s (%zu bytes)", j->key, bld->len);
    tm_builder_free(bld);
    j->next_seg++;
    upload_next(j);
}

/* Uploads the job's next segment, or finishes the job. */
static void upload_next(struct tjob *j)
{
    struct tiered *t = j->round->t;
    if (j->next_seg >= j->nsegs) {
        round_job_done(j);
        return;
    }
    struct tm_builder *bld = &j->segs[j->next_seg];
    if (tiered_object_key(t, j->topic_id, j->partition, bld->seg.base, bld->seg.end, j->key,
                          sizeof j->key) < 0 ||
        s3_put(t->s3, t->bucket, j->key, bld->body, bld->len, on_uploaded, j) < 0) {
        j->round->failed = true;
        round_job_done(j);
    }
}

static void round_free(struct tround *r)
{
    for (struct tjob *j = r->jobs, *n; j; j = n) {
        n = j->next;
        job_free(j);
    }
    free(r);
}

static void round_end(struct tround *r)
{
    struct tiered *t = r->t;
    int64_t delay = t->b->cfg.tiered_check_ms;
    if (r->failed) {
        t->backoff_ms = t->backoff_ms ? t->backoff_ms * 2 : delay;
        if (t->backoff_ms > BACKOFF_MAX_MS)
            t->backoff_ms = BACKOFF_MAX_MS;
        delay = t->backoff_ms;
    } else {
        t->backoff_ms = 0;
        if (r->more)
            delay = 10;
    }
    t->round = NULL;
    round_free(r);
    ev_timer_start(t->b->loop, &t->timer, delay * 1000);
}

static void round_job_done(struct tjob *j)
{
    struct tround *r = j->round;
    if (--r->pending == 0)
        round_end(r);
}

/* Loop: the scan is back. Drops first, then every partition's uploads in parallel. */
static void round_apply(void *arg)
{
    struct tround *r = arg;
    struct tiered *t = r->t;
    r->pending = 1; /* held until every job has started */
    for (struct tjob *j = r->jobs; j; j = j->next) {
        if (j->ndrops)
            apply_drops(t, j);
        r->pending++;
        upload_next(j);
    }
    if (--r->pending == 0)
        round_end(r);
}

static void on_timer(struct ev_loop *l, void *arg)
{
    struct tiered *t = arg;
    struct tround *r = calloc(1, sizeof *r);
    if (r) {
        r->t = t;
        r->now_ms = ev_wall_ms();
        r->budget = t->b->cfg.tiered_segment_bytes * 4;
        if (r->budget < ROUND_BUDGET_MIN)
            r->budget = ROUND_BUDGET_MIN;
        if (work_submit(t->worker, round_scan, round_apply, r) == 0) {
            t->round = r;
            return;
        }
        free(r);
    }
    ev_timer_start(l, &t->timer, t->b->cfg.tiered_check_ms * 1000);
}

/* ---- the module ---- */

/* Fills the S3 client's settings from the broker's; credentials fall back to the
 * standard AWS environment variables. */
static void s3_settings(const struct config *c, struct s3_config *sc)
{
    const char *ak = c->tiered_s3_access_key[0] ? c->tiered_s3_access_key : getenv("AWS_ACCESS_KEY_ID");
    const char *sk =
        c->tiered_s3_secret_key[0] ? c->tiered_s3_secret_key : getenv("AWS_SECRET_ACCESS_KEY");
    memset(sc, 0, sizeof *sc);
    snprintf(sc->endpoint, sizeof sc->endpoint, "%s", c->tiered_s3_endpoint);
    snprintf(sc->region, sizeof sc->region, "%s", c->tiered_s3_region);
    snprintf(sc->access_key, sizeof sc->access_key, "%s", ak ? ak : "");
    snprintf(sc->secret_key, sizeof sc->secret_key, "%s", sk ? sk : "");
}

struct tiered *tiered_new(struct broker *b)
{
    struct tiered *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->b = b;
    ev_timer_init(&t->timer, on_timer, t);
    if (tiered_read_init(t) < 0)
        goto fail;
    if (!b->cfg.tiered_s3_uri[0])
        return t;
    struct s3_config sc;
    if (s3_parse_uri(b->cfg.tiered_s3_uri, t->bucket, sizeof t->bucket, t->prefix,
                     sizeof t->prefix) < 0) {
        log_error("tiered: tiered.s3.uri %s is not s3://bucket[/prefix]", b->cfg.tiered_s3_uri);
        goto fail;
    }
    size_t n = strlen(t->prefix);
    while (n && t->prefix[n - 1] == '/')
        t->prefix[--n] = 0;
    s3_settings(&b->cfg, &sc);
    if (!(t->s3 = s3_new(b->loop, &sc)) || !(t->worker = work_new(b->loop)))
        goto fail;
    ev_timer_start(b->loop, &t->timer, b->cfg.tiered_check_ms * 1000);
    log_info("tiered: segments go to s3://%s/%s", t->bucket, t->prefix);
    return t;
fail:
    tiered_free(t);
    return NULL;
}

void tiered_free(struct tiered *t)
{
    if (!t)
        return;
    work_free(t->worker); /* joins; a finished scan's round is dropped, not applied */
    s3_free(t->s3);       /* cancels every request without its callback */
    while (t->ctxs) {
        struct tctx *c = t->ctxs;
        tiered_ctx_unlink(t, c);
        free(c);
    }
    if (t->round)
        round_free(t->round);
    ev_timer_stop(t->b->loop, &t->timer);
    tiered_read_free(t);
    free(t);
}
