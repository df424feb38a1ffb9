/* retention.c: enforces retention.ms and retention.bytes in every topic, resident or
 * not. The worker thread walks the stored topics and their logs and decides where each
 * partition should start; the loop then deletes the prefixes whose partitions did not
 * move meanwhile. Memory logs live only in the broker and are trimmed on the loop. */
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

/* One partition's verdict. */
struct rjob {
    uint8_t topic_id[16];
    int32_t partition;
    int64_t log_start; /* what the scan saw; the cut applies only if unchanged */
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

static int push(struct rrun *run, const struct rjob *j)
{
    if (run->n == run->cap) {
        size_t nc = run->cap ? run->cap * 2 : 64;
        struct rjob *a = realloc(run->jobs, nc * sizeof *a);
        if (!a)
            return -1;
        run->jobs = a;
        run->cap = nc;
    }
    run->jobs[run->n++] = *j;
    return 0;
}

/* Walks one partition's batches from the oldest while they are expired by time or the
 * log is over its byte limit. Fills j and returns true when something should go. */
static bool scan_partition(struct store *st, const struct topic_config *c, int64_t now_ms,
                           int64_t bytes, struct rjob *j)
{
    uint8_t lo[20], hi[20];
    store_part_prefix(lo, j->topic_id, j->partition);
    store_part_prefix(hi, j->topic_id, j->partition + 1);
    struct store_it *it = store_it_new(st, STORE_CF_LOG, lo, 20, hi, 20);
    int64_t left = bytes, cut_to = -1;
    j->cut_base = -1;
    for (store_it_first(it); it && store_it_valid(it); store_it_next(it)) {
        size_t kl, vl;
        const uint8_t *k = store_it_key(it, &kl), *v = store_it_value(it, &vl);
        struct batch_hdr h;
        if (kl != STORE_LOG_KEY_LEN || batch_parse_hdr(v, vl, &h) != BATCH_OK)
            break;
        int64_t base = (int64_t)kc_get_be64(k + 20);
        bool expired = c->retention_ms >= 0 && h.max_timestamp < now_ms - c->retention_ms;
        bool over = c->retention_bytes >= 0 && left > c->retention_bytes;
        if (!expired && !over) {
            j->cut_base = base;
            break;
        }
        cut_to = base + h.last_offset_delta + 1;
        left -= (int64_t)vl;
        j->freed += (int64_t)vl;
    }
    store_it_free(it);
    if (cut_to <= j->log_start)
        return false;
    j->new_start = cut_to;
    if (j->cut_base < cut_to) /* every batch went: later appends must survive */
        j->cut_base = cut_to;
    return true;
}

/* Worker: every stored topic with a retention limit, every partition with data. */
static void run_scan(void *arg)
{
    struct rrun *run = arg;
    struct broker *b = run->owner->b;
    struct store_it *it = store_it_new(b->store, STORE_CF_TOPICS, NULL, 0, NULL, 0);
    for (store_it_first(it); it && store_it_valid(it); store_it_next(it)) {
        size_t kl, vl;
        const uint8_t *k = store_it_key(it, &kl), *v = store_it_value(it, &vl);
        struct topic *t = topic_parse_record(b->topics, (const char *)k, kl, (const char *)v, vl);
        if (!t)
            continue;
        const struct topic_config *c = &t->cfg;
        bool limited = c->retention_ms >= 0 || c->retention_bytes >= 0;
        for (int32_t i = 0; limited && c->mode != MODE_MEMORY && i < t->partitions; i++) {
            struct rjob j = {.partition = i};
            int64_t bytes;
            memcpy(j.topic_id, t->id, 16);
            if (plog_stored_state(b->store, t->id, i, &j.log_start, &bytes) < 0 || bytes == 0)
                continue;
            if (scan_partition(b->store, c, run->now_ms, bytes, &j) && push(run, &j) < 0)
                break;
        }
        topic_release(t);
    }
    store_it_free(it);
}

/* On the loop: applies each verdict whose partition did not move meanwhile. */
static void apply(void *arg)
{
    struct rrun *run = arg;
    struct retention *r = run->owner;
    struct topics *ts = r->b->topics;
    for (size_t i = 0; i < run->n; i++) {
        struct rjob *j = &run->jobs[i];
        struct topic *t = topic_find_id(ts, j->topic_id);
        struct partition *p = t ? topic_partition(ts, t, j->partition) : NULL;
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

static void trim_memory(void *arg, struct topic *t)
{
    const int64_t *now_ms = arg;
    for (int32_t i = 0; t->cfg.mode == MODE_MEMORY && i < t->partitions; i++)
        if (t->parts[i])
            plog_retain_memory(t->parts[i], *now_ms);
}

static void on_timer(struct ev_loop *l, void *arg)
{
    struct retention *r = arg;
    int64_t now_ms = ev_wall_ms();
    topics_foreach(r->b->topics, trim_memory, &now_ms);
    struct rrun *run = calloc(1, sizeof *run);
    if (run) {
        run->owner = r;
        run->now_ms = now_ms;
        if (work_submit(r->worker, run_scan, apply, run) == 0) {
            r->running = run;
            return;
        }
        free(run);
    }
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
