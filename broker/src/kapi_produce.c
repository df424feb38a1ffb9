/* kapi_produce.c: Produce and InitProducerId. A Produce appends each partition's
 * batches atomically; with acks=all the answer waits for the group-commit fsync. */
#include "acl.h"
#include "auth.h"
#include "broker.h"
#include "conn.h"
#include "kafka.h"
#include "log.h"
#include "quota.h"
#include "store.h"
#include "syncer.h"
#include "topic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PID_BLOCK = 1000 };
static const char pid_block_key[] = "producer_id_block";

/* The response for one partition. */
struct presp {
    int32_t index;
    int16_t err;
    int64_t base_offset;
    int64_t log_start;
    char msg[160];
};

static void write_presp(const struct kreq *req, kc_writer *w, const struct presp *p)
{
    int16_t v = req->api_version;
    bool fx = req->flexible;
    kc_w_i32(w, p->index);
    kc_w_i16(w, p->err);
    kc_w_i64(w, p->err ? -1 : p->base_offset);
    if (v >= 2)
        kc_w_i64(w, -1); /* log_append_time_ms: CreateTime topics */
    if (v >= 5)
        kc_w_i64(w, p->log_start);
    if (v >= 8) {
        kc_w_array(w, fx, 0); /* record_errors */
        kc_w_cstr(w, fx, p->err && p->msg[0] ? p->msg : NULL);
    }
    kc_w_tags(w, fx);
}

/* Appends one partition's records; returns true when data was written that an acks=all
 * answer must wait on. */
static bool produce_partition(struct kreq *req, struct topic *t, bool denied, int16_t acks,
                              kc_bytes recs, struct presp *pr)
{
    pr->base_offset = -1;
    pr->log_start = -1;
    if (denied) {
        pr->err = KERR_TOPIC_AUTHORIZATION_FAILED;
        return false;
    }
    if (req->api_version < 3) {
        pr->err = KERR_UNSUPPORTED_VERSION;
        snprintf(pr->msg, sizeof pr->msg, "Produce v0-2 (message format v0/v1) is not served");
        return false;
    }
    if (acks != 0 && acks != 1 && acks != -1) {
        pr->err = KERR_INVALID_REQUIRED_ACKS;
        return false;
    }
    struct partition *p = t ? topic_partition(req->b->topics, t, pr->index) : NULL;
    if (!p) {
        pr->err = KERR_UNKNOWN_TOPIC_OR_PARTITION;
        return false;
    }
    if (recs.len <= 0) {
        pr->err = KERR_CORRUPT_MESSAGE;
        snprintf(pr->msg, sizeof pr->msg, "no records");
        return false;
    }
    int64_t hwm0 = p->hwm;
    pr->err = (int16_t)plog_append(req->b->topics, p, (uint8_t *)recs.p, (size_t)recs.len,
                                   &pr->base_offset, pr->msg, sizeof pr->msg);
    pr->log_start = p->log_start;
    if (pr->err)
        log_debug("produce to %s-%d rejected (%d): %s", t->name, pr->index, pr->err, pr->msg);
    if (p->hwm == hwm0)
        return false;
    if (t->cfg.mode == MODE_PERSISTENT && t->cfg.flush_interval)
        syncer_flush_within(req->b->syncer, t->cfg.flush_ms);
    return plog_needs_fsync(t);
}

/* Walks topic_data[] from r. Without w it only checks the structure; with w it appends
 * and writes the responses. Returns 0, or -1 for a malformed request. */
static int produce_walk(struct kreq *req, kc_reader *r, kc_writer *w, int16_t acks, bool *wait)
{
    bool fx = req->flexible;
    int32_t nt = kc_array(r, fx, fx ? 2 : 6);
    if (!kc_ok(r) || nt < 0)
        return -1;
    if (w)
        kc_w_array(w, fx, nt);
    for (int32_t i = 0; i < nt; i++) {
        kc_str name = kc_string(r, fx);
        int32_t np = kc_array(r, fx, 8);
        if (!kc_ok(r) || name.len < 0 || np < 0)
            return -1;
        bool denied = w && !auth_allowed(req, ACL_RES_TOPIC, name.p, (size_t)name.len,
                                         ACL_OP_WRITE);
        struct topic *t =
            w && !denied ? topic_find(req->b->topics, name.p, (size_t)name.len) : NULL;
        if (w) {
            kc_w_string(w, fx, name.p, name.len);
            kc_w_array(w, fx, np);
        }
        for (int32_t j = 0; j < np; j++) {
            struct presp pr = {.index = kc_i32(r)};
            kc_bytes recs = kc_bytes_field(r, fx);
            kc_skip_tags(r, fx);
            if (!kc_ok(r))
                return -1;
            if (w) {
                *wait |= produce_partition(req, t, denied, acks, recs, &pr);
                write_presp(req, w, &pr);
            }
        }
        kc_skip_tags(r, fx);
        if (w)
            kc_w_tags(w, fx);
    }
    kc_skip_tags(r, fx);
    return kc_ok(r) ? 0 : -1;
}

int kapi_produce(struct kreq *req, kc_writer *w)
{
    kc_reader *r = &req->r;
    bool fx = req->flexible, wait = false;
    if (req->api_version >= 3)
        kc_string(r, fx); /* transactional_id: batches that use it are refused */
    int16_t acks = kc_i16(r);
    kc_i32(r); /* timeout_ms */
    /* check the whole request first: a malformed one must append nothing */
    kc_reader check = *r;
    if (!kc_ok(r) || produce_walk(req, &check, NULL, acks, &wait) < 0 ||
        produce_walk(req, r, w, acks, &wait) < 0)
        return KAPI_EPARSE;
    int32_t throttle = quota_request(req, QUOTA_PRODUCE, (int64_t)req->frame_len);
    if (req->api_version >= 1)
        kc_w_i32(w, throttle); /* throttle_time_ms */
    kc_w_tags(w, fx);
    if (acks == 0)
        return KAPI_NORESP;
    if (acks == -1 && wait) {
        syncer_wait(req->b->syncer, req->slot);
        return KAPI_DEFER;
    }
    return KAPI_DONE;
}

/* Hands out the next producer id, reserving ids in blocks that are made durable before
 * use, so a restart can never give out an id twice. Returns -1 on a store error. */
static int64_t next_producer_id(struct broker *b)
{
    if (b->next_producer_id >= b->producer_id_limit) {
        uint8_t v[8];
        int64_t limit = b->next_producer_id + PID_BLOCK;
        kc_put_be64(v, (uint64_t)limit);
        if (store_put(b->store, STORE_CF_META, pid_block_key, sizeof pid_block_key - 1, v, 8) <
                0 ||
            store_sync(b->store) < 0)
            return -1;
        b->producer_id_limit = limit;
    }
    return b->next_producer_id++;
}

int kafka_producer_ids_load(struct broker *b)
{
    size_t vl;
    int err;
    uint8_t *v = store_get(b->store, STORE_CF_META, pid_block_key, sizeof pid_block_key - 1,
                           &vl, &err);
    if (err)
        return -1;
    b->next_producer_id = b->producer_id_limit = v && vl == 8 ? (int64_t)kc_get_be64(v) : 0;
    free(v);
    return 0;
}

int kapi_init_producer_id(struct kreq *req, kc_writer *w)
{
    kc_reader *r = &req->r;
    kc_str txn = kc_string(r, req->flexible);
    kc_i32(r); /* transaction_timeout_ms */
    int64_t pid = req->api_version >= 3 ? kc_i64(r) : -1;
    int16_t epoch = req->api_version >= 3 ? kc_i16(r) : -1;
    kc_skip_tags(r, req->flexible);
    if (!kc_ok(r))
        return KAPI_EPARSE;
    int16_t err = KERR_NONE;
    if (txn.len >= 0) {
        err = KERR_INVALID_REQUEST; /* transactions are not offered */
        pid = -1;
        epoch = -1;
    } else if (pid >= 0 && pid < req->b->next_producer_id && epoch >= 0 && epoch < INT16_MAX) {
        epoch++; /* KIP-360: the same producer bumps its epoch */
    } else {
        pid = next_producer_id(req->b);
        epoch = 0;
        if (pid < 0)
            err = KERR_UNKNOWN_SERVER;
    }
    kc_w_i32(w, 0); /* throttle_time_ms */
    kc_w_i16(w, err);
    kc_w_i64(w, pid);
    kc_w_i16(w, epoch);
    kc_w_tags(w, req->flexible);
    return KAPI_DONE;
}
