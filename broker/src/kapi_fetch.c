/* kapi_fetch.c: Fetch and ListOffsets. A Fetch is executed by re-reading its request:
 * when it has to wait, the request bytes are kept, the fetch is hooked onto each of its
 * partitions, and an append (or the timer) runs it again. Re-reading keeps no pointers
 * into topics that could be deleted while it waits. */
#include "acl.h"
#include "auth.h"
#include "broker.h"
#include "conn.h"
#include "ev.h"
#include "fetch.h"
#include "kafka.h"
#include "kapi_share.h"
#include "log.h"
#include "quota.h"
#include "share_view.h"
#include "tiered.h"
#include "topic.h"

#include <stdlib.h>
#include <string.h>

/* One (fetch, partition) hook in the partition's waiter list. */
struct pwait {
    struct pwait *prev, *next; /* in the partition's list */
    struct pwait *fnext;       /* the fetch's other hooks */
    struct partition *p;
    struct pfetch *f;
};

struct pfetch {
    struct fetcher *owner;
    struct kslot *slot;
    struct kreq req;       /* header fields; r/frame point into frame below */
    uint8_t *frame;
    size_t body_at;        /* w.len where the response body starts */
    int64_t deadline_us;
    int32_t min_bytes;
    struct ev_timer timer;
    struct pwait *hooks;
    struct pfetch *rnext;  /* in the retry list */
    struct pfetch *aprev, *anext; /* every parked fetch */
    bool queued;
};

struct fetcher {
    struct broker *b;
    struct pfetch *retry;  /* woken fetches to run before the loop sleeps */
    struct pfetch *all;
};

/* What one execution of a fetch found. */
struct fexec {
    int64_t bytes;
    int64_t view_bytes; /* handed out by shared views: such a fetch never parks again */
    bool error;
    struct pfetch *collect; /* when set, partitions visited are hooked */
};

static void hook_partition(struct pfetch *f, struct partition *p)
{
    struct pwait *w = malloc(sizeof *w);
    if (!w)
        return; /* the timer still answers it */
    *w = (struct pwait){.next = p->waiters, .fnext = f->hooks, .p = p, .f = f};
    if (p->waiters)
        p->waiters->prev = w;
    p->waiters = w;
    f->hooks = w;
}

static void hook_view_part(void *arg, struct partition *p) { hook_partition(arg, p); }

static void unhook_all(struct pfetch *f)
{
    for (struct pwait *w = f->hooks, *n; w; w = n) {
        n = w->fnext;
        if (w->prev)
            w->prev->next = w->next;
        else
            w->p->waiters = w->next;
        if (w->next)
            w->next->prev = w->prev;
        free(w);
    }
    f->hooks = NULL;
}

/* ---- executing a fetch ---- */

/* A shared view's partition being read (share_view.h); its offsets come out of the read. */
struct vread {
    struct sview *sv;
    int32_t idx;
    int64_t hwm, start;
};

/* Writes records as (compact) bytes, reading them straight into the response from the
 * partition log, or from a shared view when vr is set. */
static int16_t write_records(struct kreq *req, kc_writer *w, struct partition *p, int64_t off,
                             int64_t max, bool one, int64_t *copied, struct vread *vr)
{
    size_t at = w->len;
    int lenbytes = req->flexible ? 5 : 4;
    kc_w_room(w, (size_t)lenbytes);
    kc_w_commit(w, (size_t)lenbytes);
    int16_t err = vr ? share_view_read(vr->sv, req->conn, req->client_id, vr->idx, off, max, w,
                                       copied, &vr->hwm, &vr->start)
                     : (int16_t)plog_read(req->b->topics, p, off, max, one, w, copied);
    if (w->err)
        return KERR_UNKNOWN_SERVER;
    if (!req->flexible) {
        kc_w_patch_i32(w, at, (int32_t)*copied);
        return err;
    }
    kc_writer tmp;
    kc_writer_init(&tmp, 16);
    kc_w_uvarint(&tmp, (uint32_t)*copied + 1);
    memmove(w->p + at + tmp.len, w->p + at + 5, (size_t)*copied);
    memcpy(w->p + at, tmp.p, tmp.len);
    w->len -= 5 - tmp.len;
    kc_writer_free(&tmp);
    return err;
}

/* Writes a partition's header; returns where high_watermark went, for a shared view to
 * patch once its read has moved it (patch_partition_head). */
static size_t write_partition_head(struct kreq *req, kc_writer *w, int32_t idx, int16_t err,
                                   const struct partition *p)
{
    int16_t v = req->api_version;
    kc_w_i32(w, idx);
    kc_w_i16(w, err);
    size_t at = w->len;
    kc_w_i64(w, p ? p->hwm : -1); /* high_watermark */
    if (v >= 4)
        kc_w_i64(w, p ? p->hwm : -1); /* last_stable_offset */
    if (v >= 5)
        kc_w_i64(w, p ? p->log_start : -1);
    if (v >= 4)
        kc_w_array(w, req->flexible, -1); /* aborted_transactions */
    if (v >= 11)
        kc_w_i32(w, -1); /* preferred_read_replica */
    return at;
}

static void patch_partition_head(struct kreq *req, kc_writer *w, size_t at, int64_t hwm,
                                 int64_t start)
{
    if (w->err)
        return;
    kc_put_be64(w->p + at, (uint64_t)hwm);
    if (req->api_version >= 4)
        kc_put_be64(w->p + at + 8, (uint64_t)hwm);
    if (req->api_version >= 5)
        kc_put_be64(w->p + at + 16, (uint64_t)start);
}

/* One partitions[] entry of a shared view: served by share_view_read, never out of range. */
static void fetch_view_partition(struct kreq *req, kc_writer *w, struct sview *sv, int32_t idx,
                                 int64_t off, int32_t pmax, struct fexec *x, int64_t *budget)
{
    int16_t err = req->api_version < 4                         ? KERR_UNSUPPORTED_VERSION
                  : idx < 0 || idx >= share_view_partitions(sv) ? KERR_UNKNOWN_TOPIC_OR_PARTITION
                                                                : KERR_NONE;
    struct vread vr = {sv, idx, -1, -1};
    int64_t copied = 0;
    size_t at = write_partition_head(req, w, idx, err, NULL);
    if (!err && *budget > 0)
        err = write_records(req, w, NULL, off, pmax < *budget ? pmax : *budget, true, &copied,
                            &vr);
    else
        kc_w_bytes(w, req->flexible, "", 0); /* empty, never null: librdkafka 2.0 rejects null */
    if (!err && vr.hwm >= 0)
        patch_partition_head(req, w, at, vr.hwm, vr.start);
    kc_w_tags(w, req->flexible);
    x->bytes += copied;
    x->view_bytes += copied;
    *budget -= copied;
    x->error |= err != KERR_NONE;
    if (x->collect && !err)
        share_view_foreach_real(req->b, sv, hook_view_part, x->collect);
}

/* Reads one partitions[] entry of the request and writes its response. */
static void fetch_partition(struct kreq *req, kc_writer *w, struct topic *t, struct sview *sv,
                            int16_t terr, struct fexec *x, int64_t *budget)
{
    kc_reader *r = &req->r;
    int16_t v = req->api_version;
    int32_t idx = kc_i32(r);
    if (v >= 9)
        kc_i32(r); /* current_leader_epoch */
    int64_t off = kc_i64(r);
    if (v >= 12)
        kc_i32(r); /* last_fetched_epoch */
    if (v >= 5)
        kc_i64(r); /* log_start_offset */
    int32_t pmax = kc_i32(r);
    kc_skip_tags(r, req->flexible);
    if (sv && kc_ok(r)) {
        fetch_view_partition(req, w, sv, idx, off, pmax, x, budget);
        return;
    }
    struct partition *p = t ? topic_partition(req->b->topics, t, idx) : NULL;
    int16_t err = v < 4 ? KERR_UNSUPPORTED_VERSION
                  : terr ? terr
                  : p    ? KERR_NONE
                         : KERR_UNKNOWN_TOPIC_OR_PARTITION;
    if (!err && (off < p->log_start || off > p->hwm))
        err = KERR_OFFSET_OUT_OF_RANGE;
    int64_t copied = 0;
    write_partition_head(req, w, idx, err, err ? NULL : p); /* Kafka sends -1s on error */
    if (!err && off < p->hwm && *budget > 0) {
        int64_t max = pmax < *budget ? pmax : *budget;
        err = write_records(req, w, p, off, max, x->bytes == 0, &copied, NULL);
    } else {
        kc_w_bytes(w, req->flexible, "", 0); /* empty, never null: librdkafka 2.0 rejects null */
    }
    kc_w_tags(w, req->flexible);
    x->bytes += copied;
    *budget -= copied;
    x->error |= err != KERR_NONE;
    if (p && x->collect)
        hook_partition(x->collect, p);
}

/* Resolves the topic (by id from v13, else by name), or a shared view into *sv. What
 * the principal may not read resolves to nothing with TOPIC_AUTHORIZATION_FAILED: a
 * topic, a view (which needs Read on its source too), or a name, whether or not it
 * exists. One check per topic. */
static struct topic *fetch_topic(struct kreq *req, kc_writer *w, int16_t *terr, struct sview **sv)
{
    uint8_t id[16];
    kc_str name = {NULL, -1};
    struct topic *t;
    *sv = NULL;
    if (req->api_version >= 13) {
        kc_uuid(&req->r, id);
        t = topic_find_id(req->b->topics, id);
        if (!t)
            *sv = share_view_find_id(req->b, id);
        kc_w_uuid(w, id);
    } else {
        name = kc_string(&req->r, req->flexible);
        kc_w_string(w, req->flexible, name.p, name.len < 0 ? 0 : name.len);
        t = name.len >= 0 ? topic_find(req->b->topics, name.p, (size_t)name.len) : NULL;
        if (!t && name.len > 0)
            *sv = share_view_find(req->b, name.p, (size_t)name.len);
    }
    const char *vn = *sv ? share_view_name(*sv) : NULL;
    bool ok = t     ? auth_allowed(req, ACL_RES_TOPIC, t->name, strlen(t->name), ACL_OP_READ)
              : vn  ? auth_topic_read(req, vn, strlen(vn))
                    : name.len < 0 ||
                         auth_allowed(req, ACL_RES_TOPIC, name.p, (size_t)name.len, ACL_OP_READ);
    if (!ok) {
        *terr = KERR_TOPIC_AUTHORIZATION_FAILED;
        *sv = NULL;
        return NULL;
    }
    *terr = t || *sv                   ? KERR_NONE
            : req->api_version >= 13 ? KERR_UNKNOWN_TOPIC_ID
                                     : KERR_UNKNOWN_TOPIC_OR_PARTITION;
    return t;
}

/* Runs the fetch whose body starts at req->r, writing the response body into w.
 * Returns 0, or -1 for a malformed request. */
static int fetch_execute(struct kreq *req, kc_writer *w, struct fexec *x, int32_t *max_wait,
                         int32_t *min_bytes)
{
    kc_reader *r = &req->r;
    int16_t v = req->api_version;
    bool fx = req->flexible;
    kc_i32(r); /* replica_id */
    *max_wait = kc_i32(r);
    *min_bytes = kc_i32(r);
    int64_t budget = v >= 3 ? kc_i32(r) : INT32_MAX;
    if (budget <= 0 || budget > req->b->cfg.max_response_bytes)
        budget = req->b->cfg.max_response_bytes;
    if (v >= 4)
        kc_i8(r); /* isolation_level */
    if (v >= 7) {
        kc_i32(r); /* session_id: sessions are not kept; every fetch is a full one */
        kc_i32(r); /* session_epoch */
    }
    if (v >= 1)
        kc_w_i32(w, 0); /* throttle_time_ms */
    if (v >= 7) {
        kc_w_i16(w, KERR_NONE);
        kc_w_i32(w, 0); /* session_id 0: no session */
    }
    int32_t nt = kc_array(r, fx, fx ? 2 : 6);
    if (!kc_ok(r) || nt < 0)
        return -1;
    kc_w_array(w, fx, nt);
    for (int32_t i = 0; i < nt && kc_ok(r); i++) {
        int16_t terr;
        struct sview *sv;
        struct topic *t = fetch_topic(req, w, &terr, &sv);
        int32_t np = kc_array(r, fx, 16);
        if (!kc_ok(r) || np < 0)
            return -1;
        kc_w_array(w, fx, np);
        for (int32_t j = 0; j < np && kc_ok(r); j++)
            fetch_partition(req, w, t, sv, terr, x, &budget);
        kc_skip_tags(r, fx);
        kc_w_tags(w, fx);
    }
    /* forgotten_topics_data, rack_id and tags follow; nothing in them changes the answer */
    kc_w_tags(w, fx);
    return kc_ok(r) ? 0 : -1;
}

/* Charges the bytes of a finished fetch to the principal's quota and puts the throttle
 * time into the response (throttle_time_ms leads the body from v1). */
static void fetch_charge(const struct kreq *req, kc_writer *w, size_t body_at,
                         const struct fexec *x)
{
    int32_t ms = quota_request(req, QUOTA_FETCH, x->bytes); /* views included */
    if (ms > 0 && req->api_version >= 1 && !w->err && w->len >= body_at + 4)
        kc_w_patch_i32(w, body_at, ms);
}

/* ---- parking ---- */

/* Drops f from the retry list. */
static void pfetch_cancel_queue(struct fetcher *fr, struct pfetch *f)
{
    struct pfetch **pp = &fr->retry;
    while (*pp && *pp != f)
        pp = &(*pp)->rnext;
    if (*pp)
        *pp = f->rnext;
    f->queued = false;
}

/* Unhooks f everywhere (partitions, timer, retry list, parked list) and frees it. */
static void pfetch_free(struct pfetch *f)
{
    struct fetcher *fr = f->owner;
    unhook_all(f);
    if (f->queued)
        pfetch_cancel_queue(fr, f);
    ev_timer_stop(fr->b->loop, &f->timer);
    if (f->aprev)
        f->aprev->anext = f->anext;
    else
        fr->all = f->anext;
    if (f->anext)
        f->anext->aprev = f->aprev;
    free(f->frame);
    free(f);
}

static void pfetch_cancel(struct kslot *s) { pfetch_free(s->owner); }

/* Runs a parked fetch again; answers it when it has enough data or its time is up,
 * otherwise hooks it again. */
static void pfetch_run(struct pfetch *f, bool final)
{
    kc_writer *w = &f->slot->w;
    w->len = f->body_at;
    w->err = 0;
    struct kreq req = f->req;
    kc_reader_init(&req.r, f->frame, f->req.frame_len);
    req.r.off = f->req.r.off;
    unhook_all(f);
    struct fexec x = {.collect = final ? NULL : f};
    int32_t max_wait, min_bytes;
    int rc = fetch_execute(&req, w, &x, &max_wait, &min_bytes);
    if (!final && rc == 0 && !x.error && x.bytes < f->min_bytes && !x.view_bytes && !w->err)
        return; /* hooked again; keep waiting */
    fetch_charge(&req, w, f->body_at, &x);
    struct kslot *s = f->slot;
    s->owner = NULL;
    pfetch_free(f);
    kslot_complete(s);
}

static void on_timeout(struct ev_loop *l, void *arg) { pfetch_run(arg, true); }

void fetch_wake_partition(struct broker *b, struct partition *p)
{
    struct fetcher *fr = b->fetcher;
    share_fetch_wake(b, p);
    while (p->waiters) {
        struct pfetch *f = p->waiters->f;
        unhook_all(f); /* removes every hook of f, including this one */
        if (!f->queued) {
            f->queued = true;
            f->rnext = fr->retry;
            fr->retry = f;
        }
    }
}

static void on_hook(struct ev_loop *l, void *arg)
{
    struct fetcher *fr = arg;
    while (fr->retry) {
        struct pfetch *f = fr->retry;
        fr->retry = f->rnext;
        f->queued = false;
        pfetch_run(f, ev_now_us() >= f->deadline_us);
    }
}

/* Keeps the request and waits. Returns KAPI_DEFER, or KAPI_DONE if it cannot park. */
static int park(struct kreq *req, kc_writer *w, size_t body_at, size_t body_off,
                int32_t max_wait, int32_t min_bytes)
{
    struct pfetch *f = calloc(1, sizeof *f);
    if (!f || !(f->frame = malloc(req->frame_len))) {
        free(f);
        return KAPI_DONE;
    }
    memcpy(f->frame, req->frame, req->frame_len);
    f->owner = req->b->fetcher;
    f->slot = req->slot;
    f->req = *req;
    f->req.frame = f->frame;
    f->req.r.off = body_off;
    f->req.client_id = (kc_str){NULL, -1};
    f->body_at = body_at;
    f->min_bytes = min_bytes;
    f->deadline_us = ev_now_us() + (int64_t)max_wait * 1000;
    ev_timer_init(&f->timer, on_timeout, f);
    ev_timer_start(req->b->loop, &f->timer, (int64_t)max_wait * 1000);
    f->anext = f->owner->all;
    if (f->anext)
        f->anext->aprev = f;
    f->owner->all = f;
    req->slot->owner = f;
    req->slot->cancel = pfetch_cancel;
    w->len = body_at;
    /* hook onto the partitions by running it once more in collect mode */
    pfetch_run(f, false);
    return KAPI_DEFER;
}

int kapi_fetch(struct kreq *req, kc_writer *w)
{
    size_t body_at = w->len, body_off = req->r.off;
    struct fexec x = {0};
    int32_t max_wait, min_bytes;
    if (fetch_execute(req, w, &x, &max_wait, &min_bytes) < 0)
        return KAPI_EPARSE;
    if (x.error || x.bytes >= min_bytes || x.view_bytes || max_wait <= 0 || req->b->draining) {
        fetch_charge(req, w, body_at, &x);
        return KAPI_DONE;
    }
    if (max_wait > 300000)
        max_wait = 300000;
    return park(req, w, body_at, body_off, max_wait, min_bytes);
}

struct fetcher *fetcher_new(struct broker *b)
{
    struct fetcher *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->b = b;
    if (ev_hook_add(b->loop, on_hook, f) < 0) {
        free(f);
        return NULL;
    }
    return f;
}

void fetcher_free(struct fetcher *f) { free(f); }

void fetcher_release_all(struct fetcher *f)
{
    while (f->all) {
        pfetch_run(f->all, true); /* answers and frees it */
    }
}

/* ---- ListOffsets ---- */

enum { TS_LATEST = -1, TS_EARLIEST = -2 };

/* Resolves one partition's timestamp query into (offset, timestamp). */
static int16_t list_offset(struct kreq *req, struct topic *t, struct sview *sv, int32_t idx,
                           int64_t ts, int64_t *offset, int64_t *found_ts)
{
    if (sv) {
        *found_ts = -1;
        return share_view_list_offset(sv, idx, ts, offset);
    }
    struct partition *p = t ? topic_partition(req->b->topics, t, idx) : NULL;
    *offset = -1;
    *found_ts = -1;
    if (!p)
        return KERR_UNKNOWN_TOPIC_OR_PARTITION;
    if (ts == TS_LATEST)
        *offset = p->hwm;
    else if (ts == TS_EARLIEST)
        *offset = p->log_start;
    else if (ts >= 0)
        *offset = plog_offset_for_time(req->b->topics, p, ts, found_ts);
    else
        return KERR_INVALID_REQUEST;
    return KERR_NONE;
}

static void list_offsets_partition(struct kreq *req, kc_writer *w, struct topic *t,
                                   struct sview *sv, bool denied)
{
    kc_reader *r = &req->r;
    int16_t v = req->api_version;
    int32_t idx = kc_i32(r);
    if (v >= 4)
        kc_i32(r); /* current_leader_epoch */
    int64_t ts = kc_i64(r);
    if (v == 0)
        kc_i32(r); /* max_num_offsets */
    kc_skip_tags(r, req->flexible);
    int64_t offset = -1, found_ts = -1;
    int16_t err = !kc_ok(r) ? 0
                  : denied  ? KERR_TOPIC_AUTHORIZATION_FAILED
                            : list_offset(req, t, sv, idx, ts, &offset, &found_ts);
    kc_w_i32(w, idx);
    kc_w_i16(w, err);
    if (v == 0) {
        kc_w_array(w, false, offset >= 0 ? 1 : 0); /* old_style_offsets */
        if (offset >= 0)
            kc_w_i64(w, offset);
    } else {
        kc_w_i64(w, found_ts);
        kc_w_i64(w, offset);
    }
    if (v >= 4)
        kc_w_i32(w, offset >= 0 ? 0 : -1); /* leader_epoch */
    kc_w_tags(w, req->flexible);
}

int kapi_list_offsets(struct kreq *req, kc_writer *w)
{
    kc_reader *r = &req->r;
    bool fx = req->flexible;
    size_t body_at = w->len, body_off = r->off; /* a tiered lookup may run it again */
    tiered_lookup_begin(req->b);
    kc_i32(r); /* replica_id */
    if (req->api_version >= 2)
        kc_i8(r); /* isolation_level: no transactions, so both levels read the same */
    int32_t nt = kc_array(r, fx, fx ? 2 : 6);
    if (!kc_ok(r) || nt < 0)
        return KAPI_EPARSE;
    if (req->api_version >= 2)
        kc_w_i32(w, 0); /* throttle_time_ms */
    kc_w_array(w, fx, nt);
    for (int32_t i = 0; i < nt && kc_ok(r); i++) {
        kc_str name = kc_string(r, fx);
        int32_t np = kc_array(r, fx, 12);
        if (!kc_ok(r) || name.len < 0 || np < 0)
            return KAPI_EPARSE;
        bool denied = !auth_allowed(req, ACL_RES_TOPIC, name.p, (size_t)name.len,
                                    ACL_OP_DESCRIBE);
        struct topic *t = denied ? NULL : topic_find(req->b->topics, name.p, (size_t)name.len);
        struct sview *sv =
            t || denied ? NULL : share_view_find(req->b, name.p, (size_t)name.len);
        kc_w_string(w, fx, name.p, name.len);
        kc_w_array(w, fx, np);
        for (int32_t j = 0; j < np && kc_ok(r); j++)
            list_offsets_partition(req, w, t, sv, denied);
        kc_skip_tags(r, fx);
        kc_w_tags(w, fx);
    }
    kc_skip_tags(r, fx);
    kc_w_tags(w, fx);
    if (!kc_ok(r))
        return KAPI_EPARSE;
    return tiered_lookup_end(req, w, body_at, body_off, kapi_list_offsets);
}
