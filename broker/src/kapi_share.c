/* kapi_share.c: the KIP-932 share-group APIs on the wire: ShareGroupHeartbeat (76),
 * ShareGroupDescribe (77), ShareFetch (78) and ShareAcknowledge (79), all at v1 (v0 was
 * Kafka 4.0's early-access format: advertised, answered UNSUPPORTED_VERSION). Membership
 * and share sessions are sgroup.c's, record states the share engine's (share.c).
 *
 * A ShareFetch first applies its session changes and acknowledgements (once), then
 * acquires records. When it acquires nothing it parks: its partitions are kept and the
 * acquisition step alone runs again when one of them may have records (an append, a
 * release, a lock expiry: fetch_wake_partition) or when max_wait_ms runs out. Anything a
 * response reports that changed share state is on disk before the response leaves.
 *
 * Authorization follows Kafka's KafkaApis: READ on the group for ShareGroupHeartbeat,
 * ShareFetch and ShareAcknowledge, DESCRIBE on it for ShareGroupDescribe; READ on each
 * topic fetched or acknowledged, DESCRIBE on each topic subscribed to or described. */
#include "kapi_share.h"

#include "acl.h"
#include "auth.h"
#include "broker.h"
#include "conn.h"
#include "ev.h"
#include "group.h"
#include "kafka.h"
#include "log.h"
#include "sgroup.h"
#include "share.h"
#include "syncer.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUTH_OPS_UNKNOWN INT32_MIN
#define SF_MAX_WAIT_MS 30000
#define SF_DEFAULT_MAX_RECORDS 500

/* A partition named in a request or served by a response. */
struct sf_part {
    uint8_t id[16];
    int32_t partition;
    size_t acks_off;   /* reader offset of its AcknowledgementBatches (0: none) */
    int16_t err;       /* fetch error */
    int16_t ack_err;   /* acknowledgement error */
    bool acked;        /* named with acknowledgements in the request */
    bool in_session;   /* records are acquired for it */
    int8_t readable;   /* READ on its topic: 1 yes, -1 no, 0 not decided yet */
};

/* A parsed ShareFetch or ShareAcknowledge. parts borrow nothing; ids are views. */
struct sf_req {
    kc_str group_id, member_id;
    int32_t epoch;
    int32_t max_wait, max_records;
    int64_t max_bytes;
    struct sf_part *parts; /* Topics[].Partitions[] in request order */
    int nparts;
    struct stp *forget;    /* ForgottenTopicsData */
    int nforget;
    bool any_acks;
    bool bad_acks;         /* some batch is malformed: INVALID_REQUEST for its partition */
};

static void sf_req_free(struct sf_req *q)
{
    free(q->parts);
    free(q->forget);
}

/* ---------------------------------------------------------------- parsing */

/* Reads one partition's AcknowledgementBatches, checking each batch: ascending,
 * non-overlapping ranges; one type for the whole range or one per offset; types
 * Gap/Accept/Release/Reject. Returns false when a batch is malformed. */
static bool read_ack_batches(kc_reader *r, int32_t *count)
{
    bool ok = true;
    int64_t prev_last = -1;
    int32_t nb = kc_array(r, true, 18);
    *count = nb < 0 ? 0 : nb;
    for (int32_t i = 0; i < nb && kc_ok(r); i++) {
        int64_t first = kc_i64(r), last = kc_i64(r);
        int32_t nt = kc_array(r, true, 1);
        for (int32_t t = 0; t < nt && kc_ok(r); t++) {
            int8_t ty = kc_i8(r);
            if (ty < SHARE_ACK_GAP || ty > SHARE_ACK_REJECT)
                ok = false;
        }
        kc_skip_tags(r, true);
        if (first < 0 || last < first || first <= prev_last || nt < 1 ||
            (nt > 1 && (uint64_t)(last - first) != (uint64_t)nt - 1))
            ok = false;
        prev_last = last;
    }
    return ok;
}

/* Reads Topics[] of a ShareFetch (fetch) or ShareAcknowledge into q. Returns 0 or -1. */
static int read_topics(kc_reader *r, struct sf_req *q)
{
    int32_t nt = kc_array(r, true, 18);
    if (nt < 0)
        return -1;
    for (int32_t i = 0; i < nt && kc_ok(r); i++) {
        uint8_t id[16];
        kc_uuid(r, id);
        int32_t np = kc_array(r, true, 6);
        if (np < 0 || q->nparts + np > SGROUP_MAX_SESSION_PARTS)
            return -1;
        struct sf_part *p = realloc(q->parts, (size_t)(q->nparts + np + 1) * sizeof *p);
        if (!p)
            return -1;
        q->parts = p;
        for (int32_t j = 0; j < np && kc_ok(r); j++) {
            struct sf_part *e = &q->parts[q->nparts++];
            *e = (struct sf_part){.partition = kc_i32(r)};
            memcpy(e->id, id, 16);
            size_t at = r->off;
            int32_t nacks;
            if (!read_ack_batches(r, &nacks)) {
                e->ack_err = KERR_INVALID_REQUEST;
                q->bad_acks = true;
            }
            if (nacks > 0) {
                e->acks_off = at;
                e->acked = true;
                q->any_acks = true;
            }
            kc_skip_tags(r, true);
        }
        kc_skip_tags(r, true);
    }
    return kc_ok(r) ? 0 : -1;
}

static int read_forgotten(kc_reader *r, struct sf_req *q)
{
    int32_t nt = kc_array(r, true, 18);
    if (nt < 0)
        return -1;
    for (int32_t i = 0; i < nt && kc_ok(r); i++) {
        uint8_t id[16];
        kc_uuid(r, id);
        int32_t np = kc_array(r, true, 4);
        if (np < 0 || q->nforget + np > SGROUP_MAX_SESSION_PARTS)
            return -1;
        struct stp *f = realloc(q->forget, (size_t)(q->nforget + np + 1) * sizeof *f);
        if (!f)
            return -1;
        q->forget = f;
        for (int32_t j = 0; j < np && kc_ok(r); j++) {
            memcpy(q->forget[q->nforget].id, id, 16);
            q->forget[q->nforget++].partition = kc_i32(r);
        }
        kc_skip_tags(r, true);
    }
    return kc_ok(r) ? 0 : -1;
}

/* ShareFetchRequest v1. Returns 0, or -1 for a malformed frame. */
static int parse_fetch(kc_reader *r, struct sf_req *q)
{
    q->group_id = kc_string(r, true);
    q->member_id = kc_string(r, true);
    q->epoch = kc_i32(r);
    q->max_wait = kc_i32(r);
    kc_i32(r); /* MinBytes: any acquired record answers */
    q->max_bytes = kc_i32(r);
    q->max_records = kc_i32(r);
    kc_i32(r); /* BatchSize */
    if (!kc_ok(r) || read_topics(r, q) < 0 || read_forgotten(r, q) < 0)
        return -1;
    kc_skip_tags(r, true);
    return kc_ok(r) ? 0 : -1;
}

/* ShareAcknowledgeRequest v1. */
static int parse_ack(kc_reader *r, struct sf_req *q)
{
    q->group_id = kc_string(r, true);
    q->member_id = kc_string(r, true);
    q->epoch = kc_i32(r);
    if (!kc_ok(r) || read_topics(r, q) < 0)
        return -1;
    kc_skip_tags(r, true);
    return kc_ok(r) ? 0 : -1;
}

/* ---------------------------------------------------------------- authorization */

static bool group_allowed(struct kreq *req, kc_str id, int8_t op)
{
    return auth_allowed(req, ACL_RES_GROUP, id.p ? id.p : "", id.len > 0 ? (size_t)id.len : 0,
                        op);
}

/* The READ decision already made for topic id among parts[0..n), or 0. */
static int8_t readable_known(const struct sf_part *parts, int n, const uint8_t id[16])
{
    for (int i = 0; i < n; i++)
        if (parts[i].readable && !memcmp(parts[i].id, id, 16))
            return parts[i].readable;
    return 0;
}

/* Whether req may READ the topic with id: 1 or -1. An unknown id counts as readable: it
 * is answered UNKNOWN_TOPIC_ID. */
static int8_t readable_check(struct kreq *req, const uint8_t id[16])
{
    const struct topic *t = topic_find_id(req->b->topics, id);
    return !t || auth_topic_read(req, t->name, strlen(t->name)) ? 1 : -1;
}

/* Decides READ for every partition of q, once per topic; acknowledgements on a topic
 * req may not read are refused and not applied. */
static void authorize_parts(struct kreq *req, struct sf_req *q)
{
    for (int i = 0; i < q->nparts; i++) {
        struct sf_part *e = &q->parts[i];
        e->readable = readable_known(q->parts, i, e->id);
        if (!e->readable)
            e->readable = readable_check(req, e->id);
        if (e->readable < 0 && e->acked)
            e->ack_err = KERR_TOPIC_AUTHORIZATION_FAILED;
    }
}

/* ---------------------------------------------------------------- engine helpers */

/* Why (id, partition) cannot be served, or KERR_NONE. */
static int16_t part_error(struct broker *b, const uint8_t id[16], int32_t partition)
{
    struct topic *t = topic_find_id(b->topics, id);
    if (!t)
        return KERR_UNKNOWN_TOPIC_ID;
    if (partition < 0 || partition >= t->partitions)
        return KERR_UNKNOWN_TOPIC_OR_PARTITION;
    return KERR_NONE;
}

static struct share_group *engine_group(struct broker *b, kc_str gid)
{
    return b->shares ? share_group_get(b->shares, gid.p, (size_t)gid.len, true) : NULL;
}

/* Applies one partition's acknowledgement batches for member sm. A batch with one type
 * covers its whole range; per-offset types are applied as runs of equal type. Returns
 * the first error. */
static int16_t apply_acks(struct broker *b, const struct sf_part *e, const uint8_t *frame,
                          size_t frame_len, struct share_group *eg, struct share_member *sm)
{
    int16_t err = part_error(b, e->id, e->partition);
    if (err)
        return err;
    struct share_part *sp = eg && sm ? share_part_get(eg, e->id, e->partition) : NULL;
    if (!sp)
        return KERR_UNKNOWN_TOPIC_OR_PARTITION;
    kc_reader r;
    kc_reader_init(&r, frame, frame_len);
    r.off = e->acks_off;
    int32_t nb = kc_array(&r, true, 18);
    for (int32_t i = 0; i < nb && kc_ok(&r); i++) {
        int64_t first = kc_i64(&r), last = kc_i64(&r);
        int32_t nt = kc_array(&r, true, 1);
        int64_t run = first;
        int8_t ty = kc_i8(&r);
        for (int32_t t = 1; t <= nt && kc_ok(&r); t++) {
            int8_t next = t < nt ? kc_i8(&r) : -1;
            int64_t end = nt == 1 ? last : first + t - 1;
            if (next == ty && t < nt)
                continue;
            int16_t e2 = share_acknowledge(sp, sm, run, end, ty);
            if (e2 && !err)
                err = e2;
            run = end + 1;
            ty = next;
        }
        kc_skip_tags(&r, true);
    }
    return err;
}

/* ---------------------------------------------------------------- response writing */

static void w_leader(kc_writer *w)
{
    kc_w_i32(w, -1); /* CurrentLeader.LeaderId: only set with NOT_LEADER_OR_FOLLOWER */
    kc_w_i32(w, -1); /* LeaderEpoch */
    kc_w_tags(w, true);
}

static const char *err_text(int16_t err)
{
    switch (err) {
    case KERR_NONE: return NULL;
    case SERR_INVALID_RECORD_STATE: return "The record state is invalid for this member";
    case SERR_SHARE_SESSION_NOT_FOUND: return "The share session was not found";
    case SERR_INVALID_SHARE_SESSION_EPOCH: return "The share session epoch is invalid";
    case KERR_UNKNOWN_TOPIC_ID: return "This server does not host this topic ID";
    case KERR_UNKNOWN_TOPIC_OR_PARTITION: return "This server does not host this partition";
    case KERR_INVALID_REQUEST: return "The request is invalid";
    case KERR_UNSUPPORTED_VERSION: return "Share APIs are served at version 1";
    case KERR_TOPIC_AUTHORIZATION_FAILED: return "Topic authorization failed";
    case KERR_GROUP_AUTHORIZATION_FAILED: return "Group authorization failed";
    default: return "share request failed";
    }
}

/* Writes records for one partition as compact bytes, acquiring them for sm straight into
 * the response; then AcquiredRecords. */
static int16_t w_acquire(kc_writer *w, struct share_part *sp, struct share_member *sm,
                         int32_t *records_left, int64_t *bytes_left, int64_t *got)
{
    struct share_acquired a = {0};
    size_t at = w->len;
    kc_w_room(w, 5);
    kc_w_commit(w, 5);
    int16_t err = KERR_NONE;
    if (sp && sm && *records_left > 0 && *bytes_left > 0)
        err = share_acquire(sp, sm, *records_left, *bytes_left, w, &a);
    if (w->err) {
        share_acquired_free(&a);
        return KERR_UNKNOWN_SERVER;
    }
    size_t copied = w->len - at - 5;
    kc_writer tmp;
    kc_writer_init(&tmp, 16);
    kc_w_uvarint(&tmp, (uint32_t)copied + 1);
    memmove(w->p + at + tmp.len, w->p + at + 5, copied);
    memcpy(w->p + at, tmp.p, tmp.len);
    w->len -= 5 - tmp.len;
    kc_writer_free(&tmp);
    kc_w_array(w, true, a.nr); /* AcquiredRecords */
    for (int i = 0; i < a.nr; i++) {
        kc_w_i64(w, a.r[i].first);
        kc_w_i64(w, a.r[i].last);
        kc_w_i16(w, (int16_t)(a.r[i].deliveries > INT16_MAX ? INT16_MAX : a.r[i].deliveries));
        kc_w_tags(w, true);
    }
    *records_left -= (int32_t)(a.records < *records_left ? a.records : *records_left);
    *bytes_left -= (int64_t)copied;
    *got += a.records;
    share_acquired_free(&a);
    return err;
}

/* Where a fetch response gets its records from. */
struct sf_src {
    struct broker *b;
    struct share_group *eg;
    struct share_member *sm;
    int32_t records_left;
    int64_t bytes_left;
    int64_t got;
};

static void w_fetch_part(kc_writer *w, struct sf_src *s, struct sf_part *e)
{
    struct share_part *sp = NULL;
    if (!e->err && e->in_session && s->sm) {
        sp = share_part_get(s->eg, e->id, e->partition);
        if (!sp)
            e->err = KERR_UNKNOWN_TOPIC_OR_PARTITION;
    }
    kc_w_i32(w, e->partition);
    kc_w_i16(w, e->err);
    kc_w_cstr(w, true, err_text(e->err));
    kc_w_i16(w, e->ack_err);
    kc_w_cstr(w, true, err_text(e->ack_err));
    w_leader(w);
    w_acquire(w, sp, s->sm, &s->records_left, &s->bytes_left, &s->got);
    kc_w_tags(w, true);
}

/* Writes Responses[]: parts grouped by topic in the order their topics first appear. */
static void w_fetch_topics(kc_writer *w, struct sf_src *s, struct sf_part *parts, int n)
{
    int ntopics = 0;
    for (int i = 0; i < n; i++) {
        int j = 0;
        while (j < i && memcmp(parts[j].id, parts[i].id, 16) != 0)
            j++;
        ntopics += j == i;
    }
    kc_w_array(w, true, ntopics);
    for (int i = 0; i < n; i++) {
        int j = 0, np = 0;
        while (j < i && memcmp(parts[j].id, parts[i].id, 16) != 0)
            j++;
        if (j < i)
            continue; /* topic written already */
        for (j = i; j < n; j++)
            np += memcmp(parts[j].id, parts[i].id, 16) == 0;
        kc_w_uuid(w, parts[i].id);
        kc_w_array(w, true, np);
        for (j = i; j < n; j++)
            if (memcmp(parts[j].id, parts[i].id, 16) == 0)
                w_fetch_part(w, s, &parts[j]);
        kc_w_tags(w, true);
    }
}

static int32_t lock_ms_of(const struct share_group *eg)
{
    return eg ? share_group_config(eg)->lock_ms : SHARE_DEFAULT_LOCK_MS;
}

/* ShareFetchResponse v1 body. With err set, Responses is empty. */
static void w_fetch_response(kc_writer *w, int16_t err, struct sf_src *s, struct sf_part *parts,
                             int n)
{
    kc_w_i32(w, 0); /* ThrottleTimeMs */
    kc_w_i16(w, err);
    kc_w_cstr(w, true, err_text(err));
    kc_w_i32(w, err ? 0 : lock_ms_of(s->eg)); /* AcquisitionLockTimeoutMs */
    if (err)
        kc_w_array(w, true, 0);
    else
        w_fetch_topics(w, s, parts, n);
    kc_w_array(w, true, 0); /* NodeEndpoints: this broker leads everything */
    kc_w_tags(w, true);
}

/* ---------------------------------------------------------------- parked share fetches */

struct spark {
    struct spark *prev, *next; /* every parked share fetch */
    struct spark *rnext;       /* the retry list */
    bool queued;
    struct share_fetcher *owner;
    struct kslot *slot;
    size_t body_at;            /* where the response body starts in slot->w */
    char *gid, *mid;
    struct sf_part *parts;
    int nparts;
    int32_t max_records;
    int64_t max_bytes;
    int64_t deadline_us;
    bool need_sync;            /* state changed before parking is not yet on disk */
    struct ev_timer timer;
};

struct share_fetcher {
    struct broker *b;
    struct spark *all, *retry;
};

static void spark_free(struct spark *k)
{
    struct share_fetcher *f = k->owner;
    if (k->queued) {
        struct spark **pp = &f->retry;
        while (*pp && *pp != k)
            pp = &(*pp)->rnext;
        if (*pp)
            *pp = k->rnext;
    }
    ev_timer_stop(f->b->loop, &k->timer);
    if (k->prev)
        k->prev->next = k->next;
    else
        f->all = k->next;
    if (k->next)
        k->next->prev = k->prev;
    free(k->gid);
    free(k->mid);
    free(k->parts);
    free(k);
}

static void spark_cancel(struct kslot *s) { spark_free(s->owner); }

/* Sends a finished response: after the WAL fsync when share state changed. */
static void finish_slot(struct broker *b, struct kslot *s, bool need_sync)
{
    if ((b->shares && share_flush(b->shares) > 0) || need_sync)
        syncer_wait(b->syncer, s);
    else
        kslot_complete(s);
}

/* Serves the session partitions of member (gid, mid) into w. Returns records acquired. */
static int64_t serve(struct broker *b, kc_str gid, kc_str mid, struct sf_part *parts, int n,
                     int32_t max_records, int64_t max_bytes, kc_writer *w)
{
    struct smember *m = sgroup_member(b->sgroups, gid, mid, false);
    struct sf_src s = {.b = b, .records_left = max_records, .bytes_left = max_bytes};
    if (m && m->session) {
        s.eg = engine_group(b, gid);
        s.sm = s.eg ? sgroup_engine_member(m) : NULL;
        m->rr++;
    }
    w_fetch_response(w, KERR_NONE, &s, parts, n);
    return s.got;
}

static kc_str cview(const char *s) { return (kc_str){s, (int32_t)strlen(s)}; }

static void spark_run(struct spark *k, bool final)
{
    struct broker *b = k->owner->b;
    kc_writer *w = &k->slot->w;
    w->len = k->body_at;
    w->err = 0;
    int64_t got = serve(b, cview(k->gid), cview(k->mid), k->parts, k->nparts, k->max_records,
                        k->max_bytes, w);
    if (!final && got == 0 && !w->err)
        return; /* keep waiting */
    struct kslot *s = k->slot;
    bool need_sync = k->need_sync;
    s->owner = NULL;
    s->cancel = NULL;
    spark_free(k);
    finish_slot(b, s, need_sync);
}

static void on_spark_timeout(struct ev_loop *l, void *arg) { spark_run(arg, true); }

static void on_spark_hook(struct ev_loop *l, void *arg)
{
    struct share_fetcher *f = arg;
    while (f->retry) {
        struct spark *k = f->retry;
        f->retry = k->rnext;
        k->queued = false;
        spark_run(k, ev_now_us() >= k->deadline_us);
    }
}

void share_fetch_wake(struct broker *b, const struct partition *p)
{
    struct share_fetcher *f = b->sfetcher;
    if (!f || !f->all || !p || !p->topic)
        return;
    for (struct spark *k = f->all; k; k = k->next) {
        if (k->queued)
            continue;
        for (int i = 0; i < k->nparts; i++) {
            if (k->parts[i].partition == p->id && memcmp(k->parts[i].id, p->topic->id, 16) == 0) {
                k->queued = true;
                k->rnext = f->retry;
                f->retry = k;
                break;
            }
        }
    }
}

/* Parks a share fetch that found nothing. Returns KAPI_DEFER, or KAPI_DONE when it
 * cannot (the response already in w stands). */
static int spark_park(struct kreq *req, const struct sf_req *q, struct sf_part *parts, int n,
                      size_t body_at, bool need_sync)
{
    struct share_fetcher *f = req->b->sfetcher;
    struct spark *k = f ? calloc(1, sizeof *k) : NULL;
    if (!k)
        return KAPI_DONE;
    k->gid = kc_str_dup(q->group_id);
    k->mid = kc_str_dup(q->member_id);
    k->parts = malloc((size_t)(n + 1) * sizeof *parts);
    if (!k->gid || !k->mid || !k->parts) {
        free(k->gid);
        free(k->mid);
        free(k->parts);
        free(k);
        return KAPI_DONE;
    }
    memcpy(k->parts, parts, (size_t)n * sizeof *parts);
    k->nparts = n;
    k->owner = f;
    k->slot = req->slot;
    k->body_at = body_at;
    k->max_records = q->max_records;
    k->max_bytes = q->max_bytes;
    k->need_sync = need_sync;
    int32_t wait = q->max_wait > SF_MAX_WAIT_MS ? SF_MAX_WAIT_MS : q->max_wait;
    k->deadline_us = ev_now_us() + (int64_t)wait * 1000;
    ev_timer_init(&k->timer, on_spark_timeout, k);
    ev_timer_start(req->b->loop, &k->timer, (int64_t)wait * 1000);
    k->next = f->all;
    if (f->all)
        f->all->prev = k;
    f->all = k;
    req->slot->owner = k;
    req->slot->cancel = spark_cancel;
    return KAPI_DEFER;
}

struct share_fetcher *share_fetcher_new(struct broker *b)
{
    struct share_fetcher *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->b = b;
    if (ev_hook_add(b->loop, on_spark_hook, f) < 0) {
        free(f);
        return NULL;
    }
    return f;
}

void share_fetcher_free(struct share_fetcher *f) { free(f); }

void share_fetcher_release_all(struct share_fetcher *f)
{
    while (f && f->all)
        spark_run(f->all, true);
}

/* ---------------------------------------------------------------- ShareFetch (78) */

/* Adds (id, partition) to the response list unless present; returns its entry. */
static struct sf_part *list_add(struct sf_part *list, int *n, const uint8_t id[16],
                                int32_t partition)
{
    for (int i = 0; i < *n; i++)
        if (list[i].partition == partition && memcmp(list[i].id, id, 16) == 0)
            return &list[i];
    struct sf_part *e = &list[(*n)++];
    *e = (struct sf_part){.partition = partition};
    memcpy(e->id, id, 16);
    return e;
}

/* The partitions a fetch response reports: the session's (rotated so that a different
 * one is served first each time), then request partitions outside the session (their
 * acknowledgement results). NULL out of memory. */
static struct sf_part *response_list(struct kreq *req, const struct smember *m,
                                     const struct sf_req *q, int *n)
{
    struct broker *b = req->b;
    int cap = (m ? m->nparts : 0) + q->nparts + 1;
    struct sf_part *list = calloc((size_t)cap, sizeof *list);
    *n = 0;
    if (!list)
        return NULL;
    if (m && m->session && q->epoch != -1) {
        for (int i = 0; i < m->nparts; i++) {
            const struct stp *t = &m->parts[(i + m->rr) % (uint32_t)m->nparts];
            struct sf_part *e = list_add(list, n, t->id, t->partition);
            e->in_session = true;
        }
    }
    for (int i = 0; i < q->nparts; i++) {
        const struct sf_part *r = &q->parts[i];
        struct sf_part *e = list_add(list, n, r->id, r->partition);
        if (r->acked && !e->ack_err)
            e->ack_err = r->ack_err;
        e->acked |= r->acked;
    }
    for (int i = 0; i < *n; i++) {
        struct sf_part *e = &list[i];
        e->err = part_error(b, e->id, e->partition);
        if (e->err)
            continue;
        e->readable = readable_known(q->parts, q->nparts, e->id);
        if (!e->readable)
            e->readable = readable_known(list, i, e->id);
        if (!e->readable)
            e->readable = readable_check(req, e->id);
        if (e->readable < 0)
            e->err = KERR_TOPIC_AUTHORIZATION_FAILED; /* stays in the session, as in Kafka */
    }
    return list;
}

/* Session changes of a ShareFetch. Returns a top-level error code. */
static int16_t fetch_session(struct broker *b, struct sf_req *q, struct smember **mp)
{
    struct smember *m = sgroup_member(b->sgroups, q->group_id, q->member_id, q->epoch == 0);
    *mp = m;
    if (q->epoch == 0 && q->any_acks)
        return KERR_INVALID_REQUEST; /* a new session carries no acknowledgements */
    if (q->epoch == -1 && q->nforget > 0)
        return KERR_INVALID_REQUEST;
    if (q->epoch == 0 && !m)
        return KERR_UNKNOWN_SERVER;
    int16_t err = sgroup_session_check(m, q->epoch);
    if (err)
        return err;
    if (q->epoch == 0)
        sgroup_session_open(m);
    return KERR_NONE;
}

/* Applies every acknowledgement of q for m. */
static void ack_all(struct kreq *req, struct sf_req *q, struct smember *m)
{
    struct share_group *eg = engine_group(req->b, q->group_id);
    struct share_member *sm = eg && m ? sgroup_engine_member(m) : NULL;
    for (int i = 0; i < q->nparts; i++) {
        struct sf_part *e = &q->parts[i];
        if (e->acked && !e->ack_err)
            e->ack_err = apply_acks(req->b, e, req->frame, req->frame_len, eg, sm);
    }
}

/* Top-level checks shared by ShareFetch and ShareAcknowledge. */
static int16_t check_ids(const struct kreq *req, const struct sf_req *q)
{
    if (req->api_version < 1)
        return KERR_UNSUPPORTED_VERSION;
    if (q->group_id.len <= 0 || q->member_id.len <= 0 || q->group_id.len > SHARE_GROUP_ID_MAX ||
        q->member_id.len > SHARE_MEMBER_ID_MAX)
        return KERR_INVALID_REQUEST;
    if (!req->b->shares || !req->b->sgroups)
        return KERR_UNKNOWN_SERVER;
    return KERR_NONE;
}

/* Changes the session after the request was applied: forgotten partitions leave it,
 * new ones join it, and it moves to the next epoch (or closes with -1). m may be freed. */
static void fetch_session_update(struct sf_req *q, struct smember *m)
{
    if (q->epoch == -1) {
        sgroup_session_close(m);
        return;
    }
    for (int i = 0; i < q->nforget; i++)
        sgroup_session_forget(m, q->forget[i].id, q->forget[i].partition);
    for (int i = 0; i < q->nparts; i++)
        sgroup_session_add(m, q->parts[i].id, q->parts[i].partition);
    sgroup_session_advance(m);
}

static int fetch_answer(struct kreq *req, kc_writer *w, struct sf_req *q, struct smember *m)
{
    size_t body_at = w->len;
    int n;
    struct sf_part *list = response_list(req, m, q, &n);
    if (!list) {
        struct sf_src none = {.b = req->b};
        w_fetch_response(w, KERR_UNKNOWN_SERVER, &none, NULL, 0);
        return KAPI_DONE;
    }
    bool closing = q->epoch == -1;
    if (closing)
        fetch_session_update(q, m); /* releases what is left; m may be gone */
    int32_t max_records = q->max_records > 0 ? q->max_records : SF_DEFAULT_MAX_RECORDS;
    int64_t max_bytes = q->max_bytes > 0 && q->max_bytes < req->b->cfg.max_response_bytes
                            ? q->max_bytes
                            : req->b->cfg.max_response_bytes;
    int64_t got = serve(req->b, q->group_id, q->member_id, list, n, max_records, max_bytes, w);
    bool quiet = got == 0 && !q->any_acks && !closing && q->max_wait > 0 && !req->b->draining;
    for (int i = 0; quiet && i < n; i++)
        quiet = !list[i].err && list[i].in_session;
    int rc = KAPI_DONE;
    bool dirty = share_flush(req->b->shares) > 0;
    if (quiet && n > 0) {
        struct sf_req pq = *q;
        pq.max_records = max_records;
        pq.max_bytes = max_bytes;
        w->len = body_at;
        rc = spark_park(req, &pq, list, n, body_at, dirty);
        if (rc == KAPI_DONE)
            serve(req->b, q->group_id, q->member_id, list, n, max_records, max_bytes, w);
    }
    if (rc == KAPI_DONE && dirty) {
        syncer_wait(req->b->syncer, req->slot);
        rc = KAPI_DEFER;
    }
    free(list);
    return rc;
}

int kapi_share_fetch(struct kreq *req, kc_writer *w)
{
    struct sf_req q = {0};
    struct sf_src none = {.b = req->b};
    if (req->api_version < 1) { /* v0's layout is not served: answer the v1 error */
        w_fetch_response(w, KERR_UNSUPPORTED_VERSION, &none, NULL, 0);
        return KAPI_DONE;
    }
    if (parse_fetch(&req->r, &q) < 0) {
        sf_req_free(&q);
        return KAPI_EPARSE;
    }
    struct smember *m = NULL;
    int16_t err = group_allowed(req, q.group_id, ACL_OP_READ) ? check_ids(req, &q)
                                                               : KERR_GROUP_AUTHORIZATION_FAILED;
    if (!err)
        err = fetch_session(req->b, &q, &m);
    if (err) {
        w_fetch_response(w, err, &none, NULL, 0);
        sf_req_free(&q);
        return KAPI_DONE;
    }
    authorize_parts(req, &q);
    ack_all(req, &q, m);
    if (q.epoch != -1)
        fetch_session_update(&q, m);
    int rc = fetch_answer(req, w, &q, m);
    sf_req_free(&q);
    return rc;
}

/* ---------------------------------------------------------------- ShareAcknowledge (79) */

static void w_ack_response(kc_writer *w, int16_t err, const struct sf_part *parts, int n)
{
    kc_w_i32(w, 0); /* ThrottleTimeMs */
    kc_w_i16(w, err);
    kc_w_cstr(w, true, err_text(err));
    int ntopics = 0;
    for (int i = 0; i < n; i++) {
        int j = 0;
        while (j < i && memcmp(parts[j].id, parts[i].id, 16) != 0)
            j++;
        ntopics += j == i;
    }
    kc_w_array(w, true, err ? 0 : ntopics);
    for (int i = 0; !err && i < n; i++) {
        int j = 0, np = 0;
        while (j < i && memcmp(parts[j].id, parts[i].id, 16) != 0)
            j++;
        if (j < i)
            continue;
        for (j = i; j < n; j++)
            np += memcmp(parts[j].id, parts[i].id, 16) == 0;
        kc_w_uuid(w, parts[i].id);
        kc_w_array(w, true, np);
        for (j = i; j < n; j++) {
            if (memcmp(parts[j].id, parts[i].id, 16) != 0)
                continue;
            kc_w_i32(w, parts[j].partition);
            kc_w_i16(w, parts[j].ack_err);
            kc_w_cstr(w, true, err_text(parts[j].ack_err));
            w_leader(w);
            kc_w_tags(w, true);
        }
        kc_w_tags(w, true);
    }
    kc_w_array(w, true, 0); /* NodeEndpoints */
    kc_w_tags(w, true);
}

int kapi_share_acknowledge(struct kreq *req, kc_writer *w)
{
    struct sf_req q = {0};
    if (req->api_version < 1) {
        w_ack_response(w, KERR_UNSUPPORTED_VERSION, NULL, 0);
        return KAPI_DONE;
    }
    if (parse_ack(&req->r, &q) < 0) {
        sf_req_free(&q);
        return KAPI_EPARSE;
    }
    int16_t err = group_allowed(req, q.group_id, ACL_OP_READ) ? check_ids(req, &q)
                                                               : KERR_GROUP_AUTHORIZATION_FAILED;
    struct smember *m = NULL;
    if (!err && q.epoch == 0)
        err = SERR_INVALID_SHARE_SESSION_EPOCH; /* only a ShareFetch opens a session */
    if (!err) {
        m = sgroup_member(req->b->sgroups, q.group_id, q.member_id, false);
        err = sgroup_session_check(m, q.epoch);
    }
    if (err) {
        w_ack_response(w, err, NULL, 0);
        sf_req_free(&q);
        return KAPI_DONE;
    }
    authorize_parts(req, &q);
    ack_all(req, &q, m);
    int n = 0;
    struct sf_part *list = calloc((size_t)q.nparts + 1, sizeof *list);
    for (int i = 0; list && i < q.nparts; i++) {
        struct sf_part *e = list_add(list, &n, q.parts[i].id, q.parts[i].partition);
        if (!e->ack_err)
            e->ack_err = q.parts[i].ack_err;
    }
    if (q.epoch == -1)
        sgroup_session_close(m);
    else
        sgroup_session_advance(m);
    w_ack_response(w, list ? KERR_NONE : KERR_UNKNOWN_SERVER, list, n);
    free(list);
    sf_req_free(&q);
    if (share_flush(req->b->shares) > 0) {
        syncer_wait(req->b->syncer, req->slot);
        return KAPI_DEFER;
    }
    return KAPI_DONE;
}

/* ---------------------------------------------------------------- ShareGroupHeartbeat (76) */

static void w_heartbeat(kc_writer *w, const struct sg_heartbeat_result *res)
{
    kc_w_i32(w, 0); /* ThrottleTimeMs */
    kc_w_i16(w, res->err);
    kc_w_cstr(w, true, res->err ? res->msg : NULL);
    kc_w_cstr(w, true, res->member ? res->member->id : NULL); /* MemberId */
    kc_w_i32(w, res->err ? -1 : res->member_epoch);
    kc_w_i32(w, SGROUP_HEARTBEAT_MS);
    if (!res->member || !res->send_assignment) {
        kc_w_i8(w, -1); /* Assignment: null, unchanged */
    } else {
        const struct smember *m = res->member;
        kc_w_i8(w, 1);
        kc_w_array(w, true, m->nassign); /* TopicPartitions */
        for (int i = 0; i < m->nassign; i++) {
            kc_w_uuid(w, m->assign[i].id);
            kc_w_array(w, true, m->assign[i].partitions);
            for (int32_t p = 0; p < m->assign[i].partitions; p++)
                kc_w_i32(w, p);
            kc_w_tags(w, true);
        }
        kc_w_tags(w, true);
    }
    kc_w_tags(w, true);
}

/* The peer's IP, without the port. */
static void peer_host(const struct conn *c, char *out, size_t cap)
{
    snprintf(out, cap, "%s", c ? c->peer : "");
    char *colon = strrchr(out, ':');
    if (colon)
        *colon = 0;
}

/* Whether req may DESCRIBE every topic of a subscription (Kafka 4.1 refuses the whole
 * heartbeat otherwise). */
static bool topics_describable(struct kreq *req, const kc_str *topics, int n)
{
    for (int i = 0; i < n; i++)
        if (!auth_allowed(req, ACL_RES_TOPIC, topics[i].p ? topics[i].p : "",
                          topics[i].len > 0 ? (size_t)topics[i].len : 0, ACL_OP_DESCRIBE))
            return false;
    return true;
}

int kapi_share_group_heartbeat(struct kreq *req, kc_writer *w)
{
    struct sg_heartbeat_result res = {.err = KERR_UNSUPPORTED_VERSION,
                                      .msg = "ShareGroupHeartbeat is served at version 1"};
    if (req->api_version < 1) {
        w_heartbeat(w, &res);
        return KAPI_DONE;
    }
    kc_reader *r = &req->r;
    struct sg_heartbeat hb = {.client_id = req->client_id};
    char host[64];
    hb.group_id = kc_string(r, true);
    hb.member_id = kc_string(r, true);
    hb.member_epoch = kc_i32(r);
    hb.rack_id = kc_string(r, true);
    int32_t nt = kc_array(r, true, 1);
    kc_str *topics = nt > 0 && nt <= SGROUP_MAX_TOPICS ? calloc((size_t)nt, sizeof *topics) : NULL;
    for (int32_t i = 0; i < nt && kc_ok(r); i++) {
        kc_str t = kc_string(r, true);
        if (topics)
            topics[i] = t;
        if (t.len < 0)
            r->err = KC_EINVAL;
    }
    kc_skip_tags(r, true);
    if (!kc_ok(r) || hb.group_id.len < 0 || hb.member_id.len < 0) {
        free(topics);
        return KAPI_EPARSE;
    }
    static const kc_str none[1];
    hb.topics = nt < 0 ? NULL : nt == 0 ? none : topics;
    hb.ntopics = nt < 0 ? 0 : nt;
    peer_host(req->conn, host, sizeof host);
    hb.client_host = host;
    if (!group_allowed(req, hb.group_id, ACL_OP_READ))
        res = (struct sg_heartbeat_result){KERR_GROUP_AUTHORIZATION_FAILED,
                                           "Group authorization failed", NULL, -1, false};
    else if (nt > SGROUP_MAX_TOPICS || (nt > 0 && !topics))
        res = (struct sg_heartbeat_result){KERR_INVALID_REQUEST, "too many topics", NULL, -1,
                                           false};
    else if (!topics_describable(req, hb.topics, hb.ntopics))
        res = (struct sg_heartbeat_result){KERR_TOPIC_AUTHORIZATION_FAILED,
                                           "Topic authorization failed", NULL, -1, false};
    else if (hb.group_id.len > 0 &&
             group_find(req->b->groups, hb.group_id.p, (size_t)hb.group_id.len))
        res = (struct sg_heartbeat_result){GERR_GROUP_ID_NOT_FOUND, "not a share group", NULL,
                                           -1, false};
    else if (!req->b->sgroups)
        res = (struct sg_heartbeat_result){GERR_COORDINATOR_NOT_AVAILABLE, "no coordinator",
                                           NULL, -1, false};
    else
        sgroup_heartbeat(req->b->sgroups, &hb, &res);
    w_heartbeat(w, &res);
    free(topics);
    return KAPI_DONE;
}

/* ---------------------------------------------------------------- ShareGroupDescribe (77) */

static void w_member(kc_writer *w, struct broker *b, const struct smember *m)
{
    kc_w_cstr(w, true, m->id);
    kc_w_cstr(w, true, m->rack);
    kc_w_i32(w, m->epoch);
    kc_w_cstr(w, true, m->client_id ? m->client_id : "");
    kc_w_cstr(w, true, m->client_host ? m->client_host : "");
    kc_w_array(w, true, m->ntopics);
    for (int i = 0; i < m->ntopics; i++)
        kc_w_cstr(w, true, m->topics[i]);
    kc_w_array(w, true, m->nassign); /* Assignment.TopicPartitions */
    for (int i = 0; i < m->nassign; i++) {
        kc_w_uuid(w, m->assign[i].id);
        kc_w_cstr(w, true, m->assign[i].name);
        kc_w_array(w, true, m->assign[i].partitions);
        for (int32_t p = 0; p < m->assign[i].partitions; p++)
            kc_w_i32(w, p);
        kc_w_tags(w, true);
    }
    kc_w_tags(w, true); /* Assignment */
    kc_w_tags(w, true); /* Member */
}

/* A group that cannot be shown: only its id and the error (Kafka's defaults elsewhere). */
static void w_described_error(kc_writer *w, kc_str id, int16_t err, const char *msg)
{
    kc_w_i16(w, err);
    kc_w_cstr(w, true, msg);
    kc_w_string(w, true, id.p, id.len);
    kc_w_cstr(w, true, "");        /* GroupState */
    kc_w_i32(w, 0);                /* GroupEpoch */
    kc_w_i32(w, 0);                /* AssignmentEpoch */
    kc_w_cstr(w, true, "");        /* AssignorName */
    kc_w_array(w, true, 0);        /* Members */
    kc_w_i32(w, AUTH_OPS_UNKNOWN);
    kc_w_tags(w, true);
}

static bool topic_describable(struct kreq *req, const char *name)
{
    return auth_allowed(req, ACL_RES_TOPIC, name, strlen(name), ACL_OP_DESCRIBE);
}

/* Whether req may DESCRIBE every topic g's members subscribe to or are assigned: a
 * described group shows them (Kafka 4.1 refuses the group otherwise). */
static bool group_topics_describable(struct kreq *req, const struct sgroup *g)
{
    for (const struct smember *m = g ? g->head : NULL; m; m = m->next) {
        if (!m->joined)
            continue;
        for (int i = 0; i < m->ntopics; i++)
            if (!topic_describable(req, m->topics[i]))
                return false;
        for (int i = 0; i < m->nassign; i++)
            if (m->assign[i].name && !topic_describable(req, m->assign[i].name))
                return false;
    }
    return true;
}

static void w_described(kc_writer *w, struct kreq *req, kc_str id)
{
    struct broker *b = req->b;
    if (!group_allowed(req, id, ACL_OP_DESCRIBE)) {
        w_described_error(w, id, KERR_GROUP_AUTHORIZATION_FAILED, "Group authorization failed");
        return;
    }
    struct sgroup *g = b->sgroups ? sgroup_find(b->sgroups, id.p, (size_t)id.len) : NULL;
    if (!group_topics_describable(req, g)) {
        w_described_error(w, id, KERR_TOPIC_AUTHORIZATION_FAILED,
                          "The described group uses topics that the client is not authorized "
                          "to describe.");
        return;
    }
    bool known = g || (b->shares && share_group_get(b->shares, id.p, (size_t)id.len, false));
    int16_t err = KERR_NONE;
    const char *msg = NULL;
    if (!known) {
        err = GERR_GROUP_ID_NOT_FOUND;
        msg = group_find(b->groups, id.p, (size_t)id.len) ? "the group is not a share group"
                                                          : "the group does not exist";
    }
    kc_w_i16(w, err);
    kc_w_cstr(w, true, msg);
    kc_w_string(w, true, id.p, id.len);
    kc_w_cstr(w, true, err ? "Dead" : sgroup_state_name(g));
    kc_w_i32(w, g ? g->epoch : 0); /* GroupEpoch */
    kc_w_i32(w, g ? g->epoch : 0); /* AssignmentEpoch */
    kc_w_cstr(w, true, "simple");  /* AssignorName */
    int n = 0;
    for (const struct smember *m = g ? g->head : NULL; m; m = m->next)
        n += m->joined;
    kc_w_array(w, true, n);
    for (const struct smember *m = g ? g->head : NULL; m; m = m->next)
        if (m->joined)
            w_member(w, b, m);
    kc_w_i32(w, AUTH_OPS_UNKNOWN);
    kc_w_tags(w, true);
}

int kapi_share_group_describe(struct kreq *req, kc_writer *w)
{
    kc_reader *r = &req->r;
    kc_w_i32(w, 0); /* ThrottleTimeMs */
    if (req->api_version < 1) {
        kc_w_array(w, true, 0);
        kc_w_tags(w, true);
        return KAPI_DONE;
    }
    kc_reader body = *r;
    int32_t n = kc_array(r, true, 1);
    for (int32_t i = 0; i < n && kc_ok(r); i++)
        if (kc_string(r, true).len < 0)
            r->err = KC_EINVAL;
    kc_bool(r); /* IncludeAuthorizedOperations */
    kc_skip_tags(r, true);
    if (!kc_ok(r) || n < 0)
        return KAPI_EPARSE;
    kc_w_array(w, true, n);
    kc_array(&body, true, 1);
    for (int32_t i = 0; i < n; i++)
        w_described(w, req, kc_string(&body, true));
    kc_w_tags(w, true);
    return KAPI_DONE;
}

/* ---------------------------------------------------------------- GROUP configs */

int16_t kapi_share_group_cfg_alter(struct broker *b, kc_str group, const struct topic_cfg_change *ch,
                                   int n, bool validate_only, char *msg, size_t msglen)
{
    if (group.len <= 0 || group.len > SHARE_GROUP_ID_MAX) {
        snprintf(msg, msglen, "Invalid group id");
        return KERR_INVALID_REQUEST;
    }
    struct share_group *eg = b->shares ? share_group_get(b->shares, group.p, (size_t)group.len,
                                                         true)
                                       : NULL;
    if (!eg) {
        snprintf(msg, msglen, "share groups are not available");
        return KERR_UNKNOWN_SERVER;
    }
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < n; i++) {
            if (share_group_set(eg, ch[i].key, ch[i].key_len, ch[i].value, ch[i].value_len,
                                pass == 0 || validate_only, msg, msglen) < 0)
                return KERR_INVALID_CONFIG;
        }
        if (validate_only)
            break;
    }
    return KERR_NONE;
}

void kapi_share_group_cfg_describe(struct broker *b, kc_str group, topic_config_fn *fn, void *arg)
{
    struct share_group *eg = b->shares && group.len > 0
                                 ? share_group_get(b->shares, group.p, (size_t)group.len, false)
                                 : NULL;
    struct share_config d = {SHARE_DEFAULT_LOCK_MS, SHARE_DEFAULT_MAX_DELIVERIES,
                             SHARE_DEFAULT_MAX_INFLIGHT, 0, SHARE_RESET_LATEST};
    const struct share_config *c = eg ? share_group_config(eg) : &d;
    char v[16];
    fn(arg, "share.auto.offset.reset", c->auto_reset == SHARE_RESET_EARLIEST ? "earliest"
                                                                              : "latest",
       c->auto_reset == d.auto_reset, false);
    snprintf(v, sizeof v, "%" PRId32, c->max_deliveries);
    fn(arg, "share.delivery.count.limit", v, c->max_deliveries == d.max_deliveries, false);
    snprintf(v, sizeof v, "%" PRId32, c->max_inflight);
    fn(arg, "share.partition.max.record.locks", v, c->max_inflight == d.max_inflight, false);
    snprintf(v, sizeof v, "%" PRId32, c->lock_ms);
    fn(arg, "share.record.lock.duration.ms", v, c->lock_ms == d.lock_ms, false);
}
