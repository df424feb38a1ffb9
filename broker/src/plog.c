/* plog.c: partition logs in every storage mode. A batch is stored under
 * topic_id | partition | base_offset exactly as the client sent it, with baseOffset
 * set by the broker. Per-partition state (log start, bytes, idempotent producers) sits
 * in the pstate column family and is written in the same atomic batch as the records,
 * so a crash can never separate them.
 *   persistent: RocksDB with its WAL;
 *   hybrid:     RocksDB without the WAL, plus an in-memory hot window for tail reads;
 *   memory:     only the in-memory ring (mlog), bounded by retention.bytes;
 *   tiered:     persistent, with older batches moved to S3 (tiered.h). */
#include "batch.h"
#include "broker.h"
#include "dataset.h"
#include "ev.h"
#include "log.h"
#include "mlog.h"
#include "store.h"
#include "tiered.h"
#include "topic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PSTATE_LOG = 0, PSTATE_PID = 1 };

/* Writes the 21-byte pstate key prefix for p and type (a pid key adds 8 bytes). */
static void pstate_key(uint8_t *k, const struct partition *p, int type)
{
    store_part_prefix(k, p->topic->id, p->id);
    k[20] = (uint8_t)type;
}

/* Upper bound for iterating one partition's log: the prefix of the next partition. */
static void part_bounds(const struct partition *p, uint8_t lo[20], uint8_t hi[20])
{
    store_part_prefix(lo, p->topic->id, p->id);
    store_part_prefix(hi, p->topic->id, p->id);
    kc_put_be32(hi + 16, (uint32_t)p->id + 1u);
    if (p->id == INT32_MAX) /* never: partition counts are capped far below */
        memset(hi + 16, 0xff, 4);
}

static struct store_it *log_iter(const struct partition *p, struct store *st)
{
    uint8_t lo[20], hi[20];
    part_bounds(p, lo, hi);
    return store_it_new(st, STORE_CF_LOG, lo, 20, hi, 20);
}

/* Next offset after the batch stored at the iterator. */
static int64_t batch_end(const struct store_it *it)
{
    size_t kl, vl;
    const uint8_t *k = store_it_key(it, &kl), *v = store_it_value(it, &vl);
    if (kl != STORE_LOG_KEY_LEN || vl < BATCH_HEADER_LEN)
        return -1;
    int64_t base = (int64_t)kc_get_be64(k + 20);
    return base + (int32_t)kc_get_be32(v + BATCH_OFF_LAST_DELTA) + 1;
}

/* A producer's stored state: epoch(2) n(1) then n x {first_seq(4) last_seq(4) base(8)},
 * the whole dedup window, so a restart still recognises every recent retry. */
enum { PID_HDR = 3, PID_ENTRY = 16 };

static void pid_load(struct partition *p, const uint8_t *k, const uint8_t *v, size_t vl)
{
    if (vl < PID_HDR || v[2] < 1 || v[2] > PID_BATCHES || vl != (size_t)PID_HDR + (size_t)v[2] * PID_ENTRY)
        return;
    struct pid_state *s = calloc(1, sizeof *s);
    if (!s)
        return;
    s->producer_id = (int64_t)kc_get_be64(k + 21);
    s->epoch = (int16_t)kc_get_be16(v);
    s->n = v[2];
    for (int i = 0; i < s->n; i++) {
        const uint8_t *e = v + PID_HDR + i * PID_ENTRY;
        s->b[i].first_seq = (int32_t)kc_get_be32(e);
        s->b[i].last_seq = (int32_t)kc_get_be32(e + 4);
        s->b[i].base_offset = (int64_t)kc_get_be64(e + 8);
    }
    s->next = p->pids;
    p->pids = s;
}

static void pids_free(struct pid_state *s)
{
    for (struct pid_state *n; s; s = n) {
        n = s->next;
        free(s);
    }
}

/* (Re)loads the idempotent producer states of p from the store. */
static int pids_load(struct partition *p, struct store *st)
{
    uint8_t lo[21], hi[21];
    pids_free(p->pids);
    p->pids = NULL;
    pstate_key(lo, p, PSTATE_PID);
    pstate_key(hi, p, PSTATE_PID + 1);
    struct store_it *it = store_it_new(st, STORE_CF_PSTATE, lo, 21, hi, 21);
    if (!it)
        return -1;
    for (store_it_first(it); store_it_valid(it); store_it_next(it)) {
        size_t kl, l;
        const uint8_t *key = store_it_key(it, &kl), *val = store_it_value(it, &l);
        if (kl == 29)
            pid_load(p, key, val, l);
    }
    store_it_free(it);
    return 0;
}

int plog_stored_state(struct store *st, const uint8_t topic_id[16], int32_t partition,
                      int64_t *log_start, int64_t *bytes)
{
    uint8_t k[21];
    store_part_prefix(k, topic_id, partition);
    k[20] = PSTATE_LOG;
    size_t vl;
    int err;
    uint8_t *v = store_get(st, STORE_CF_PSTATE, k, sizeof k, &vl, &err);
    *log_start = v && vl == 16 ? (int64_t)kc_get_be64(v) : 0;
    *bytes = v && vl == 16 ? (int64_t)kc_get_be64(v + 8) : 0;
    free(v);
    return err;
}

/* Reads log start, byte count and producer states, then finds the log end from the
 * last stored batch. */
static int partition_load(struct topics *ts, struct partition *p, struct store *st)
{
    if (plog_stored_state(st, p->topic->id, p->id, &p->log_start, &p->bytes) < 0)
        return -1;
    p->hwm = p->log_start;
    struct store_it *it = log_iter(p, st);
    if (!it)
        return -1;
    store_it_last(it);
    if (store_it_valid(it) && batch_end(it) > p->hwm)
        p->hwm = batch_end(it);
    store_it_free(it);
    return pids_load(p, st);
}

struct partition *topic_partition(struct topics *ts, struct topic *t, int32_t id)
{
    if (id < 0 || id >= t->partitions)
        return NULL;
    if (t->parts[id]) {
        t->parts[id]->last_used_us = ev_now_us();
        return t->parts[id];
    }
    struct partition *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->topic = t;
    p->id = id;
    bool stored = t->cfg.mode != MODE_MEMORY; /* a memory log starts empty */
    bool hot = t->cfg.mode == MODE_MEMORY || t->cfg.mode == MODE_HYBRID;
    if ((hot && !(p->mem = mlog_new())) ||
        (stored && partition_load(ts, p, topics_broker(ts)->store) < 0) ||
        (t->cfg.mode == MODE_TIERED && tiered_part_load(topics_broker(ts), p) < 0)) {
        mlog_free(p->mem);
        pids_free(p->pids);
        free(p);
        return NULL;
    }
    if (dataset_is_topic(t))
        dataset_partition_init(topics_broker(ts), p);
    p->last_used_us = ev_now_us();
    t->parts[id] = p;
    return p;
}

void plog_free(struct partition *p)
{
    if (!p)
        return;
    pids_free(p->pids);
    mlog_free(p->mem);
    tiered_part_free(p->tier);
    free(p);
}

bool plog_needs_fsync(const struct topic *t)
{
    return t->cfg.mode != MODE_MEMORY && t->cfg.mode != MODE_HYBRID && !t->cfg.flush_interval;
}

/* ---- idempotent producers ---- */

static struct pid_state *pid_find(struct partition *p, int64_t pid)
{
    for (struct pid_state *s = p->pids; s; s = s->next)
        if (s->producer_id == pid)
            return s;
    return NULL;
}

static int32_t seq_add(int32_t seq, int32_t n)
{
    int64_t v = (int64_t)seq + n;
    return (int32_t)(v > INT32_MAX ? v - INT32_MAX - 1 : v);
}

/* Applies Kafka's sequence rules to a batch from an idempotent producer. Returns
 * KERR_NONE to append, KERR_DUPLICATE_SEQUENCE_NUMBER with *dup_offset set for a batch
 * already in the log, or the error to answer. */
static int pid_check(struct partition *p, const struct batch_hdr *h, int64_t *dup_offset)
{
    struct pid_state *s = pid_find(p, h->producer_id);
    if (!s || h->producer_epoch > s->epoch)
        /* no state for a producer mid-stream: its state was lost (memory topic restart,
         * hybrid crash, retention). UNKNOWN_PRODUCER_ID lets the client bump its epoch
         * and go on (KIP-360) where OUT_OF_ORDER would be fatal to it. */
        return h->base_sequence == 0 ? KERR_NONE
               : s                   ? KERR_OUT_OF_ORDER_SEQUENCE_NUMBER
                                     : KERR_UNKNOWN_PRODUCER_ID;
    if (h->producer_epoch < s->epoch)
        return KERR_INVALID_PRODUCER_EPOCH;
    int32_t last = seq_add(h->base_sequence, h->count - 1);
    for (int i = 0; i < s->n; i++) {
        if (s->b[i].first_seq == h->base_sequence && s->b[i].last_seq == last) {
            *dup_offset = s->b[i].base_offset;
            return KERR_DUPLICATE_SEQUENCE_NUMBER;
        }
    }
    if (h->base_sequence != seq_add(s->b[s->n - 1].last_seq, 1))
        return KERR_OUT_OF_ORDER_SEQUENCE_NUMBER;
    return KERR_NONE;
}

/* Records an appended batch in memory and in wb. */
static int pid_record(struct partition *p, struct store_wb *wb, const struct batch_hdr *h,
                      int64_t base)
{
    struct pid_state *s = pid_find(p, h->producer_id);
    if (!s) {
        if (!(s = calloc(1, sizeof *s)))
            return -1;
        s->producer_id = h->producer_id;
        s->next = p->pids;
        p->pids = s;
    }
    if (h->producer_epoch != s->epoch)
        s->n = 0;
    s->epoch = h->producer_epoch;
    if (s->n == PID_BATCHES)
        memmove(s->b, s->b + 1, (PID_BATCHES - 1) * sizeof s->b[0]);
    else
        s->n++;
    s->b[s->n - 1] =
        (struct pid_batch){h->base_sequence, seq_add(h->base_sequence, h->count - 1), base};
    if (!wb)
        return 0; /* a memory log keeps producer state in memory only */
    uint8_t k[29], v[PID_HDR + PID_BATCHES * PID_ENTRY];
    pstate_key(k, p, PSTATE_PID);
    kc_put_be64(k + 21, (uint64_t)h->producer_id);
    v[0] = (uint8_t)((uint16_t)s->epoch >> 8);
    v[1] = (uint8_t)s->epoch;
    v[2] = (uint8_t)s->n;
    for (int i = 0; i < s->n; i++) {
        uint8_t *e = v + PID_HDR + i * PID_ENTRY;
        kc_put_be32(e, (uint32_t)s->b[i].first_seq);
        kc_put_be32(e + 4, (uint32_t)s->b[i].last_seq);
        kc_put_be64(e + 8, (uint64_t)s->b[i].base_offset);
    }
    store_wb_put(wb, STORE_CF_PSTATE, k, 29, v, PID_HDR + (size_t)s->n * PID_ENTRY);
    return 0;
}

/* Deep copy of the producer states, to restore if an append is refused halfway. */
static struct pid_state *pids_copy(const struct pid_state *src, int *err)
{
    struct pid_state *head = NULL, **tail = &head;
    *err = 0;
    for (; src; src = src->next) {
        struct pid_state *c = malloc(sizeof *c);
        if (!c) {
            *err = -1;
            break;
        }
        *c = *src;
        c->next = NULL;
        *tail = c;
        tail = &c->next;
    }
    return head;
}

/* ---- append ---- */

static int map_batch_error(int rc)
{
    switch (rc) {
    case BATCH_EMAGIC:
        return KERR_UNSUPPORTED_FOR_MESSAGE_FORMAT;
    case BATCH_ECOUNT:
    case BATCH_ERECORD:
        return KERR_INVALID_RECORD;
    default:
        return KERR_CORRUPT_MESSAGE;
    }
}

/* Checks every batch in buf before anything is written. Returns a Kafka error. */
static int validate_all(const struct partition *p, const uint8_t *buf, size_t len, int *nbatches,
                        char *msg, size_t msglen)
{
    size_t off = 0;
    *nbatches = 0;
    if (len == 0) {
        snprintf(msg, msglen, "empty record set");
        return KERR_CORRUPT_MESSAGE;
    }
    while (off < len) {
        int64_t sz = batch_size(buf + off, len - off);
        struct batch_hdr h;
        if (sz < 0 || (uint64_t)sz > len - off) {
            snprintf(msg, msglen, "truncated record batch at byte %zu", off);
            return KERR_CORRUPT_MESSAGE;
        }
        int rc = batch_validate(buf + off, (size_t)sz, &h);
        if (rc != BATCH_OK) {
            snprintf(msg, msglen, "invalid record batch at byte %zu (%d)", off, rc);
            return map_batch_error(rc);
        }
        if (sz > p->topic->cfg.max_message_bytes) {
            snprintf(msg, msglen, "batch of %lld bytes is over max.message.bytes %d",
                     (long long)sz, p->topic->cfg.max_message_bytes);
            return KERR_MESSAGE_TOO_LARGE;
        }
        if (h.attributes & (BATCH_ATTR_TRANSACTIONAL | BATCH_ATTR_CONTROL)) {
            snprintf(msg, msglen, "transactional batches are not supported");
            return KERR_UNSUPPORTED_FOR_MESSAGE_FORMAT;
        }
        off += (size_t)sz;
        (*nbatches)++;
    }
    return KERR_NONE;
}

static void put_log_state(struct partition *p, struct store_wb *wb)
{
    uint8_t k[29], v[16];
    pstate_key(k, p, PSTATE_LOG);
    kc_put_be64(v, (uint64_t)p->log_start);
    kc_put_be64(v + 8, (uint64_t)p->bytes);
    store_wb_put(wb, STORE_CF_PSTATE, k, 21, v, 16);
}

/* Adds one validated batch at the log end: to wb (stored modes) and to the memory
 * ring (memory and hybrid). */
static int append_one(struct partition *p, struct store_wb *wb, uint8_t *batch, size_t sz,
                      const struct batch_hdr *h)
{
    int64_t base = p->hwm;
    uint8_t key[STORE_LOG_KEY_LEN];
    batch_set_base_offset(batch, base);
    batch_set_leader_epoch(batch, 0);
    if (wb) {
        store_log_key(key, p->topic->id, p->id, base);
        store_wb_put(wb, STORE_CF_LOG, key, sizeof key, batch, sz);
    }
    if (p->mem && mlog_append(p->mem, batch, sz, base, h->count, h->max_timestamp) < 0)
        return -1;
    if (h->producer_id >= 0 && pid_record(p, wb, h, base) < 0)
        return -1;
    p->hwm += h->count;
    p->bytes += (int64_t)sz;
    return 0;
}

/* Makes an append take effect: a memory log trims itself to its budget, stored modes
 * write the batch (hybrid without the WAL), and hybrid trims its hot window. */
static int commit_append(struct topics *ts, struct partition *p, struct store_wb *wb)
{
    const struct topic_config *c = &p->topic->cfg;
    struct broker *b = topics_broker(ts);
    if (c->mode == MODE_MEMORY) {
        int64_t cap = b->cfg.memory_partition_max_bytes;
        if (c->retention_bytes >= 0 && c->retention_bytes < cap)
            cap = c->retention_bytes;
        mlog_trim_bytes(p->mem, cap);
        p->bytes = mlog_bytes(p->mem);
        p->log_start = mlog_first(p->mem) >= 0 ? mlog_first(p->mem) : p->hwm;
        return KERR_NONE;
    }
    put_log_state(p, wb);
    if (store_write(b->store, wb, c->mode == MODE_HYBRID ? STORE_NO_WAL : 0) < 0)
        return KERR_UNKNOWN_SERVER;
    if (p->mem)
        mlog_trim_bytes(p->mem, b->cfg.hybrid_hot_bytes);
    return KERR_NONE;
}

int plog_append(struct topics *ts, struct partition *p, uint8_t *buf, size_t len,
                int64_t *base_offset, char *msg, size_t msglen)
{
    if (dataset_is_topic(p->topic)) {
        snprintf(msg, msglen, "topic %s is a read-only dataset (its records come from %s)",
                 p->topic->name, topic_config_get(p->topic, "source.uri"));
        return KERR_POLICY_VIOLATION;
    }
    int nb, rc = validate_all(p, buf, len, &nb, msg, msglen);
    if (rc)
        return rc;
    struct broker *b = topics_broker(ts);
    int mode = p->topic->cfg.mode;
    struct store_wb *wb = mode == MODE_MEMORY ? NULL : topics_scratch_wb(ts);
    if (mode != MODE_MEMORY && !wb)
        return KERR_UNKNOWN_SERVER;
    int64_t first = -1, hwm0 = p->hwm, bytes0 = p->bytes;
    int copy_err;
    struct pid_state *saved = pids_copy(p->pids, &copy_err);
    if (copy_err) {
        pids_free(saved);
        return KERR_UNKNOWN_SERVER;
    }
    for (size_t off = 0; off < len && rc == KERR_NONE;) {
        size_t sz = (size_t)batch_size(buf + off, len - off);
        struct batch_hdr h;
        batch_parse_hdr(buf + off, sz, &h);
        int64_t dup = -1;
        int pc = h.producer_id >= 0 ? pid_check(p, &h, &dup) : KERR_NONE;
        if (pc == KERR_DUPLICATE_SEQUENCE_NUMBER) {
            if (first < 0)
                first = dup;
        } else if (pc != KERR_NONE) {
            rc = pc;
            snprintf(msg, msglen, "producer %lld epoch %d sequence %d rejected",
                     (long long)h.producer_id, h.producer_epoch, h.base_sequence);
        } else {
            if (first < 0)
                first = p->hwm;
            if (append_one(p, wb, buf + off, sz, &h) < 0)
                rc = KERR_UNKNOWN_SERVER;
        }
        off += sz;
    }
    if (rc == KERR_NONE && p->hwm != hwm0)
        rc = commit_append(ts, p, wb);
    if (rc != KERR_NONE) {
        /* nothing was written: forget the in-memory advance, producer states too */
        if (p->mem)
            mlog_drop_from(p->mem, hwm0);
        p->hwm = hwm0;
        p->bytes = bytes0;
        pids_free(p->pids);
        p->pids = saved;
        return rc;
    }
    pids_free(saved);
    p->topic->msgs_in += (uint64_t)(p->hwm - hwm0);
    p->topic->bytes_in += len;
    p->appends++;
    *base_offset = first;
    if (p->hwm != hwm0)
        fetch_wake_partition(b, p);
    return KERR_NONE;
}

/* ---- read ---- */

/* Positions it at the batch holding offset, or the first batch after it. */
static void seek_offset(struct store_it *it, const struct partition *p, int64_t offset)
{
    uint8_t key[STORE_LOG_KEY_LEN];
    store_log_key(key, p->topic->id, p->id, offset);
    store_it_seek_for_prev(it, key, sizeof key);
    if (!store_it_valid(it))
        store_it_seek(it, key, sizeof key);
    else if (batch_end(it) <= offset)
        store_it_next(it);
}

int plog_read(struct topics *ts, struct partition *p, int64_t offset, int64_t max_bytes,
              bool must_return_one, struct kc_writer *w, int64_t *copied)
{
    *copied = 0;
    if (offset < p->log_start || offset > p->hwm)
        return KERR_OFFSET_OUT_OF_RANGE;
    if (offset == p->hwm)
        return KERR_NONE;
    if (dataset_is_topic(p->topic))
        return dataset_read(topics_broker(ts), p, offset, max_bytes, must_return_one, w, copied);
    if (p->tier && offset < p->tier->local_start)
        return tiered_read(topics_broker(ts), p, offset, max_bytes, must_return_one, w, copied);
    if (p->mem && mlog_first(p->mem) >= 0 && offset >= mlog_first(p->mem)) {
        mlog_read(p->mem, offset, max_bytes, must_return_one, w, copied);
        p->topic->bytes_out += (uint64_t)*copied;
        return w->err ? KERR_UNKNOWN_SERVER : KERR_NONE;
    }
    if (p->topic->cfg.mode == MODE_MEMORY)
        return KERR_NONE; /* an empty ring: nothing held yet */
    struct store_it *it = log_iter(p, topics_broker(ts)->store);
    if (!it)
        return KERR_UNKNOWN_SERVER;
    for (seek_offset(it, p, offset); store_it_valid(it); store_it_next(it)) {
        size_t vl;
        const uint8_t *v = store_it_value(it, &vl);
        if ((int64_t)vl + *copied > max_bytes && (*copied > 0 || !must_return_one))
            break;
        kc_w_raw(w, v, vl);
        *copied += (int64_t)vl;
    }
    store_it_free(it);
    p->topic->bytes_out += (uint64_t)*copied;
    return w->err ? KERR_UNKNOWN_SERVER : KERR_NONE;
}

int64_t plog_offset_for_time(struct topics *ts, struct partition *p, int64_t ts_ms,
                             int64_t *found_ts)
{
    if (p->topic->cfg.mode == MODE_MEMORY)
        return mlog_offset_for_time(p->mem, ts_ms, found_ts);
    bool answered = false;
    int64_t remote = p->tier ? tiered_offset_for_time(topics_broker(ts), p, ts_ms, found_ts,
                                                      &answered)
                             : -1;
    if (answered)
        return remote;
    struct store_it *it = log_iter(p, topics_broker(ts)->store);
    int64_t result = -1;
    if (!it)
        return -1;
    for (seek_offset(it, p, p->log_start); store_it_valid(it); store_it_next(it)) {
        size_t kl, vl;
        const uint8_t *k = store_it_key(it, &kl), *v = store_it_value(it, &vl);
        int32_t d = batch_offset_for_time(v, vl, ts_ms, found_ts);
        if (d >= 0) {
            result = (int64_t)kc_get_be64(k + 20) + d;
            break;
        }
    }
    store_it_free(it);
    return result < p->log_start && result >= 0 ? p->log_start : result;
}

/* ---- truncation from the front ---- */

int plog_cut_point(struct store *st, const struct partition *p, int64_t offset,
                   int64_t *cut_base, int64_t *freed)
{
    struct store_it *it = log_iter(p, st);
    *cut_base = -1;
    *freed = 0;
    if (!it)
        return -1;
    for (store_it_first(it); store_it_valid(it); store_it_next(it)) {
        size_t kl, vl;
        const uint8_t *k = store_it_key(it, &kl);
        store_it_value(it, &vl);
        if (batch_end(it) > offset) {
            *cut_base = (int64_t)kc_get_be64(k + 20);
            break;
        }
        *freed += (int64_t)vl;
    }
    store_it_free(it);
    return 0;
}

int plog_apply_cut(struct topics *ts, struct partition *p, int64_t new_start, int64_t cut_base,
                   int64_t freed)
{
    struct store_wb *wb = store_wb_new(topics_broker(ts)->store);
    if (!wb)
        return KERR_UNKNOWN_SERVER;
    int rc = plog_apply_cut_wb(ts, p, new_start, cut_base, freed, wb);
    store_wb_free(wb);
    return rc;
}

int plog_apply_cut_wb(struct topics *ts, struct partition *p, int64_t new_start,
                      int64_t cut_base, int64_t freed, struct store_wb *wb)
{
    struct broker *b = topics_broker(ts);
    uint8_t lo[STORE_LOG_KEY_LEN], hi[STORE_LOG_KEY_LEN];
    store_log_key(lo, p->topic->id, p->id, 0);
    store_log_key(hi, p->topic->id, p->id, cut_base < 0 ? p->hwm : cut_base);
    store_wb_del_range(wb, STORE_CF_LOG, lo, sizeof lo, hi, sizeof hi);
    int64_t old_start = p->log_start, old_bytes = p->bytes;
    p->log_start = new_start;
    p->bytes = p->bytes > freed ? p->bytes - freed : 0;
    put_log_state(p, wb);
    int rc = store_write(b->store, wb, p->topic->cfg.mode == MODE_HYBRID ? STORE_NO_WAL : 0);
    if (rc < 0) {
        p->log_start = old_start;
        p->bytes = old_bytes;
        return KERR_UNKNOWN_SERVER;
    }
    if (p->mem)
        mlog_trim_before(p->mem, new_start);
    if (p->tier)
        tiered_local_cut(p, cut_base < 0 ? p->hwm : cut_base);
    log_debug("%s-%d: log start %lld -> %lld", p->topic->name, p->id, (long long)old_start,
              (long long)new_start);
    return KERR_NONE;
}

/* A memory log moves its start without touching the store. */
static void memory_cut(struct partition *p, int64_t new_start)
{
    mlog_trim_before(p->mem, new_start);
    p->log_start = new_start;
    p->bytes = mlog_bytes(p->mem);
}

void plog_retain_memory(struct partition *p, int64_t now_ms)
{
    const struct topic_config *c = &p->topic->cfg;
    if (c->retention_ms >= 0)
        mlog_trim_time(p->mem, now_ms - c->retention_ms);
    mlog_trim_bytes(p->mem, c->retention_bytes); /* it may have been lowered since */
    int64_t first = mlog_first(p->mem);
    memory_cut(p, first >= 0 ? (first > p->log_start ? first : p->log_start) : p->hwm);
}

int plog_truncate_before(struct topics *ts, struct partition *p, int64_t offset)
{
    if (offset == -1)
        offset = p->hwm;
    if (offset < 0 || offset > p->hwm)
        return KERR_OFFSET_OUT_OF_RANGE;
    if (offset <= p->log_start)
        return KERR_NONE;
    if (dataset_is_topic(p->topic))
        return KERR_POLICY_VIOLATION; /* a dataset's records are its objects */
    if (p->topic->cfg.mode == MODE_MEMORY) {
        memory_cut(p, offset);
        return KERR_NONE;
    }
    int64_t cut_base, freed;
    if (plog_cut_point(topics_broker(ts)->store, p, offset, &cut_base, &freed) < 0)
        return KERR_UNKNOWN_SERVER;
    return plog_apply_cut(ts, p, offset, cut_base, freed);
}
