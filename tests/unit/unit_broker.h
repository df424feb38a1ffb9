/* unit_broker.h: shared pieces of the broker unit tests. A broker on a scratch data
 * directory, opened in the order main.c's start() uses (without listeners), that can be
 * stopped and started again on the same directory; and a builder for valid magic-2
 * record batches with a real CRC32C. Header-only: each test binary includes it once. */
#ifndef SLUICE_UNIT_BROKER_H
#define SLUICE_UNIT_BROKER_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "broker.h"
#include "crc32c.h"
#include "ev.h"
#include "fetch.h"
#include "group.h"
#include "kafka.h"
#include "kcodec.h"
#include "log.h"
#include "metrics.h"
#include "share.h"
#include "share_view.h"
#include "store.h"
#include "syncer.h"
#include "topic.h"

struct ub {
    struct broker b;
    char dir[64];
};

static inline int ub_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Makes a fresh scratch directory in dir (64 bytes). */
static inline void ub_mkdtemp(char dir[64])
{
    snprintf(dir, 64, "/tmp/sluice-unit-XXXXXX");
    assert_non_null(mkdtemp(dir));
}

/* rm -rf dir. */
static inline void ub_rmdir(const char *dir)
{
    nftw(dir, ub_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Opens the broker's parts on u->dir with the configuration already in u->b.cfg. */
static inline void ub_start(struct ub *u)
{
    struct broker *b = &u->b;
    char *err = NULL;

    b->loop = ev_new();
    assert_non_null(b->loop);
    b->store = store_open(u->dir, &err);
    if (!b->store)
        fail_msg("store_open(%s): %s", u->dir, err);
    assert_int_equal(kafka_producer_ids_load(b), 0);
    b->metrics = metrics_new();
    b->topics = topics_new(b);
    assert_non_null(b->metrics);
    assert_non_null(b->topics);
    assert_int_equal(topics_load(b->topics), 0);
    b->syncer = syncer_new(b);
    b->fetcher = fetcher_new(b);
    assert_non_null(b->syncer);
    assert_non_null(b->fetcher);
    b->groups = groups_new(b);
    assert_non_null(b->groups);
    b->shares = shares_new(b);
    assert_non_null(b->shares);
    b->views = sviews_new(b);
    assert_non_null(b->views);
}

/* Frees everything ub_start opened, in main.c's stop() order; keeps the directory. */
static inline void ub_stop(struct ub *u)
{
    struct broker *b = &u->b;

    fetcher_free(b->fetcher);
    syncer_free(b->syncer);
    sviews_free(b->views);
    shares_free(b->shares);
    groups_free(b->groups);
    topics_free(b->topics);
    assert_int_equal(store_sync(b->store), 0);
    store_close(b->store);
    metrics_free(b->metrics);
    ev_free(b->loop);
    b->fetcher = NULL;
    b->syncer = NULL;
    b->groups = NULL;
    b->shares = NULL;
    b->views = NULL;
    b->topics = NULL;
    b->store = NULL;
    b->metrics = NULL;
    b->loop = NULL;
}

/* A broker restart on the same data directory. */
static inline void ub_restart(struct ub *u)
{
    ub_stop(u);
    ub_start(u);
}

/* Default configuration on a new scratch directory, then start. */
static inline void ub_init(struct ub *u)
{
    log_min_level = LOG_WARN;
    ub_mkdtemp(u->dir);
    config_defaults(&u->b.cfg);
    snprintf(u->b.cfg.data_dir, sizeof u->b.cfg.data_dir, "%s", u->dir);
    snprintf(u->b.cfg.cluster_id, sizeof u->b.cfg.cluster_id, "unit-cluster");
    snprintf(u->b.adv_host, sizeof u->b.adv_host, "127.0.0.1");
    u->b.adv_port = 9092;
    ub_start(u);
}

static inline void ub_fini(struct ub *u)
{
    ub_stop(u);
    ub_rmdir(u->dir);
}

/* cmocka group fixtures for tests whose state is a struct ub. */
static inline int ub_setup(void **state)
{
    struct ub *u = calloc(1, sizeof *u);
    assert_non_null(u);
    ub_init(u);
    *state = u;
    return 0;
}

static inline int ub_teardown(void **state)
{
    ub_fini(*state);
    free(*state);
    return 0;
}

/* Creates a topic with default configs and returns it. */
static inline struct topic *ub_topic(struct ub *u, const char *name, int32_t partitions)
{
    struct topic *t = NULL;
    char msg[256];
    int rc = topic_create(u->b.topics, name, strlen(name), partitions, NULL, 0, false, &t, msg,
                          sizeof msg);
    if (rc != KERR_NONE)
        fail_msg("topic_create(%s): %d %s", name, rc, msg);
    return t;
}

static inline struct partition *ub_part(struct ub *u, const char *topic, int32_t idx)
{
    struct topic *t = topic_find(u->b.topics, topic, strlen(topic));
    assert_non_null(t);
    struct partition *p = topic_partition(u->b.topics, t, idx);
    assert_non_null(p);
    return p;
}

/* Asserts a decoded string view equals want (NULL: a null string). */
static inline void ub_assert_str(kc_str s, const char *want)
{
    if (!want) {
        assert_int_equal(s.len, -1);
        return;
    }
    assert_int_equal(s.len, (int32_t)strlen(want));
    assert_memory_equal(s.p, want, strlen(want));
}

/* Skips a response's final tagged fields and asserts it ended there. */
static inline void ub_assert_done(kc_reader *r, bool fx)
{
    kc_skip_tags(r, fx);
    assert_true(kc_ok(r));
    assert_int_equal(kc_remaining(r), 0);
}

/* Fires timer t now if it is armed, as the loop would when it comes due; returns
 * whether it was armed. Lets tests drive timeouts without sleeping. */
static inline bool ub_fire(struct ub *u, struct ev_timer *t)
{
    if (!ev_timer_active(t))
        return false;
    ev_timer_stop(u->b.loop, t);
    t->fn(u->b.loop, t->arg);
    return true;
}

/* ---- record batches ---- */

/* What one batch holds. Record i has timestamp first_ts + i * ts_step, a null key and
 * a value of value_len bytes. */
struct ub_batch {
    int32_t count;
    int64_t first_ts;
    int64_t ts_step;
    int64_t producer_id; /* -1: not idempotent */
    int16_t epoch;
    int32_t base_seq;
    size_t value_len;
};

/* A plain (non-idempotent) batch of count records. */
static inline struct ub_batch ub_plain(int32_t count)
{
    return (struct ub_batch){count, 1000, 1, -1, -1, -1, 10};
}

/* An idempotent producer's batch of count records. */
static inline struct ub_batch ub_idem(int64_t pid, int16_t epoch, int32_t seq, int32_t count)
{
    return (struct ub_batch){count, 1000, 1, pid, epoch, seq, 10};
}

static inline void ub_record(kc_writer *w, const struct ub_batch *spec, int32_t i)
{
    kc_writer r;

    kc_writer_init(&r, 0);
    kc_w_i8(&r, 0);                      /* attributes */
    kc_w_varlong(&r, i * spec->ts_step); /* timestampDelta */
    kc_w_varint(&r, i);                  /* offsetDelta */
    kc_w_varint(&r, -1);                 /* key: null */
    kc_w_varint(&r, (int32_t)spec->value_len);
    uint8_t *v = kc_w_room(&r, spec->value_len);
    assert_non_null(v);
    memset(v, 'a' + i % 26, spec->value_len);
    kc_w_commit(&r, spec->value_len);
    kc_w_varint(&r, 0); /* headers */
    assert_int_equal(r.err, KC_OK);
    kc_w_varint(w, (int32_t)r.len);
    kc_w_raw(w, r.p, r.len);
    kc_writer_free(&r);
}

/* Recomputes the CRC of the batch at p (len bytes) after a covered field changed. */
static inline void ub_batch_fix_crc(uint8_t *p, size_t len)
{
    kc_put_be32(p + BATCH_OFF_CRC, crc32c(0, p + BATCH_OFF_ATTRIBUTES, len - BATCH_OFF_ATTRIBUTES));
}

/* Appends one valid batch to w and returns its size. baseOffset is set to a value the
 * broker must overwrite. */
static inline size_t ub_batch_put(kc_writer *w, const struct ub_batch *spec)
{
    size_t at = w->len;

    kc_w_i64(w, 987654321); /* baseOffset */
    kc_w_i32(w, 0);         /* batchLength, patched */
    kc_w_i32(w, -1);        /* partitionLeaderEpoch */
    kc_w_i8(w, 2);          /* magic */
    kc_w_u32(w, 0);         /* crc, patched */
    kc_w_i16(w, 0);         /* attributes */
    kc_w_i32(w, spec->count - 1);
    kc_w_i64(w, spec->first_ts);
    kc_w_i64(w, spec->first_ts + (spec->count - 1) * spec->ts_step);
    kc_w_i64(w, spec->producer_id);
    kc_w_i16(w, spec->epoch);
    kc_w_i32(w, spec->base_seq);
    kc_w_i32(w, spec->count);
    for (int32_t i = 0; i < spec->count; i++)
        ub_record(w, spec, i);
    assert_int_equal(w->err, KC_OK);
    size_t len = w->len - at;
    kc_put_be32(w->p + at + BATCH_OFF_LENGTH, (uint32_t)(len - BATCH_LOG_OVERHEAD));
    ub_batch_fix_crc(w->p + at, len);
    return len;
}

#endif
