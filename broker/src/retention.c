/* retention.c: enforces retention.ms and retention.bytes per partition, off the loop. */
#include "retention.h"

#include "batch.h"
#include "broker.h"
#include "ev.h"
#include "log.h"
#include "store.h"
#include "topic.h"
#include "work.h"

#include <stdlib.h>
#include <string.h>

/* One partition's snapshot going to the worker and its verdict coming back. */
struct rjob {
    uint8_t topic_id[16];
    int32_t partition;
    int64_t log_start, hwm, bytes;
    int64_t retention_ms, retention_bytes;
    /* results */
    int64_t new_start, cut_base, freed;
};

struct rrun {
    struct retention *owner;
    int64_t now_ms;
    struct rjob *jobs;
    size_t n, cap;
};

struct retention {
    struct broker *b;
    struct work *worker;
    struct ev_timer timer;
    struct rrun *running;
};

static bool needs_check(const struct topic *t, const struct partition *p)
{
    return p->hwm > p->log_start &&
           (t->cfg.retention_ms >= 0 ||
            (t->cfg.retention_bytes >= 0 && p->bytes > t->cfg.retention_bytes));
}

static void collect(void *arg, struct topic *t)
{
    struct rrun *run = arg;
    for (int32_t i = 0; i < t->partitions; i++) {
        struct partition *p = t->parts[i];
        if (p && t->cfg.mode == MODE_MEMORY) { /* its log is in memory: trim it here */
            plog_retain_memory(p, run->now_ms);
            continue;
        }
        if (!p || !needs_check(t, p))
            continue;
        if (run->n == run->cap) {
            size_t nc = run->cap ? run->cap * 2 : 64;
            struct rjob *j = realloc(run->jobs, nc * sizeof *j);
            if (!j)
                return;
            run->jobs = j;
            run->cap = nc;
        }
        struct rjob *j = &run->jobs[run->n++];
        *j = (struct rjob){.partition = i, .log_start = p->log_start, .hwm = p->hwm,
                           .bytes = p->bytes, .retention_ms = t->cfg.retention_ms,
                           .retention_bytes = t->cfg.retention_bytes, .new_start = -1};
        memcpy(j->topic_id, t->id, 16);
    }
}

/* Walks the partition's batches from the oldest while they are expired by time or the
 * log is over its byte limit. Runs on the worker. */
static void scan_one(struct store *st, int64_t now_ms, struct rjob *j)
{
    uint8_t lo[20], hi[20];
    store_part_prefix(lo, j->topic_id, j->partition);
    store_part_prefix(hi, j->topic_id, j->partition + 1);
    struct store_it *it = store_it_new(st, STORE_CF_LOG, lo, 20, hi, 20);
    if (!it)
        return;
    int64_t left = j->bytes, cut_to = -1;
    for (store_it_first(it); store_it_valid(it); store_it_next(it)) {
        size_t kl, vl;
        const uint8_t *k = store_it_key(it, &kl), *v = store_it_value(it, &vl);
        struct batch_hdr h;
        if (kl != STORE_LOG_KEY_LEN || batch_parse_hdr(v, vl, &h) != BATCH_OK)
            break;
        int64_t base = (int64_t)kc_get_be64(k + 20);
        bool expired = j->retention_ms >= 0 && h.max_timestamp < now_ms - j->retention_ms;
        bool over = j->retention_bytes >= 0 && left > j->retention_bytes;
        if (!expired && !over) {
            j->cut_base = base;
            break;
        }
        cut_to = base + h.last_offset_delta + 1;
        left -= (int64_t)vl;
        j->freed += (int64_t)vl;
    }
    store_it_free(it);
    if (cut_to > j->log_start) {
        j->new_start = cut_to;
        if (j->cut_base < cut_to) /* every batch went: later appends must survive */
            j->cut_base = cut_to;
    }
}

static void run_scan(void *arg)
{
    struct rrun *run = arg;
    for (size_t i = 0; i < run->n; i++)
        scan_one(run->owner->b->store, run->now_ms, &run->jobs[i]);
}

/* On the loop: applies each verdict whose partition did not move meanwhile. */
static void apply(void *arg)
{
    struct rrun *run = arg;
    struct retention *r = run->owner;
    struct topics *ts = r->b->topics;
    for (size_t i = 0; i < run->n; i++) {
        struct rjob *j = &run->jobs[i];
        struct topic *t = j->new_start >= 0 ? topic_find_id(ts, j->topic_id) : NULL;
        struct partition *p = t && j->partition < t->partitions ? t->parts[j->partition] : NULL;
        if (!p || p->log_start != j->log_start || j->new_start > p->hwm)
            continue;
        plog_apply_cut(ts, p, j->new_start, j->cut_base, j->freed);
        log_info("retention: %s-%d now starts at %lld", t->name, j->partition,
                 (long long)j->new_start);
    }
    r->running = NULL;
    free(run->jobs);
    free(run);
    ev_timer_start(r->b->loop, &r->timer, r->b->cfg.retention_check_ms * 1000);
}

static void on_timer(struct ev_loop *l, void *arg)
{
    struct retention *r = arg;
    struct rrun *run = calloc(1, sizeof *run);
    if (!run)
        goto later;
    run->owner = r;
    run->now_ms = ev_wall_ms();
    topics_foreach(r->b->topics, collect, run);
    if (run->n && work_submit(r->worker, run_scan, apply, run) == 0) {
        r->running = run;
        return;
    }
    free(run->jobs);
    free(run);
later:
    ev_timer_start(l, &r->timer, r->b->cfg.retention_check_ms * 1000);
}

struct retention *retention_new(struct broker *b)
{
    struct retention *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->b = b;
    r->worker = work_new(b->loop);
    if (!r->worker) {
        free(r);
        return NULL;
    }
    ev_timer_init(&r->timer, on_timer, r);
    ev_timer_start(b->loop, &r->timer, b->cfg.retention_check_ms * 1000);
    return r;
}

void retention_free(struct retention *r)
{
    if (!r)
        return;
    work_free(r->worker); /* joins; a queued or finished run is dropped, not applied */
    if (r->running) {
        free(r->running->jobs);
        free(r->running);
    }
    ev_timer_stop(r->b->loop, &r->timer);
    free(r);
}
