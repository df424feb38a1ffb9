/* test_cache.c: the dataset block cache against a fake origin: hits and misses across
 * the memory and disk tiers, single flight, pins, budgets, a disk tier that survives a
 * restart, corrupt block files, invalidation, origin errors, prefetch, and the eviction
 * policy's hit rate on cyclic and zipf traces beside an LRU baseline.
 *
 * ev_run() can run only once per loop, so every test that needs the loop (disk I/O on
 * the worker, timer-driven origins) is a script: a function the loop calls every
 * 100 us, resuming where it left off (SCRIPT_BEGIN/WAIT_UNTIL/SCRIPT_END, a switch on
 * the line number). State that must survive a wait lives in the fixture. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache.h"
#include "cache_map.h"
#include "cache_policy.h"
#include "ev.h"
#include "log.h"
#include "store.h"

enum { BLK = 4096, MAXW = 64 };

struct fx;
typedef bool script_fn(struct fx *f);

/* A waiter the tests can look at. */
struct tw {
    struct cache_waiter w;
    struct fx *f;
    int done, err;
    const struct cache_block *b;
    char msg[160];
};

/* An origin delivery waiting on a timer. */
struct pend {
    struct ev_timer t;
    struct fx *f;
    struct cache_key k;
    uint64_t off;
    size_t max;
    struct cache_fill *fill;
};

struct fx {
    char dir[64];
    char cdir[128];
    struct ev_loop *loop;
    struct store *st;
    struct cache *c;
    struct cache_opts o;
    struct cache_origin origin;
    /* the fake origin */
    int calls;
    int fail_err;      /* deliver this error instead of bytes */
    bool refuse;       /* fetch returns -1 */
    int64_t delay_us;  /* 0: fill before fetch returns */
    uint64_t obj_size; /* every object's size */
    int pending;
    /* the script */
    script_fn *script;
    int pc;
    struct ev_timer tick, deadline;
    int i, n, base_calls;
    struct cache_key k;
    struct tw w[MAXW];
};

#define SCRIPT_BEGIN(f)                                                                            \
    switch ((f)->pc) {                                                                             \
    case 0:
#define WAIT_UNTIL(f, cond)                                                                        \
    do {                                                                                           \
        (f)->pc = __LINE__;                                                                        \
        __attribute__((fallthrough));                                                              \
    case __LINE__:                                                                                 \
        if (!(cond))                                                                               \
            return false;                                                                          \
    } while (0)
#define SCRIPT_END(f)                                                                              \
    }                                                                                              \
    return true

/* In a script: reads f->k through f->w[0], waiting when it loads, checks the bytes and
 * unpins. */
#define GET_AND_CHECK(f)                                                                           \
    do {                                                                                           \
        if (tget(f, &(f)->w[0], &(f)->k) == CACHE_HIT)                                             \
            (f)->w[0].done = 1;                                                                    \
        WAIT_UNTIL(f, (f)->w[0].done);                                                             \
        assert_int_equal((f)->w[0].err, 0);                                                        \
        check_block(f, (f)->w[0].b, &(f)->k);                                                      \
        cache_unpin((f)->c, (f)->w[0].b);                                                          \
    } while (0)

/* ---- the fake origin: byte i of object o is a function of (ns, o, i) ---- */

static uint8_t content(const uint8_t ns[16], uint64_t obj, uint64_t i)
{
    return (uint8_t)(ns[0] * 31 + obj * 7 + i * 13 + (i >> 9));
}

static struct cache_key key(uint8_t ns0, uint64_t obj, uint32_t blk)
{
    struct cache_key k;
    memset(&k, 0, sizeof k);
    memset(k.ns, ns0, 16);
    k.object = obj;
    k.block = blk;
    return k;
}

static void deliver(struct fx *f, const struct cache_key *k, uint64_t off, size_t max,
                    struct cache_fill *fill)
{
    if (f->fail_err) {
        cache_fill_done(fill, NULL, 0, f->fail_err, "fake failure");
        return;
    }
    size_t len = off >= f->obj_size ? 0 : f->obj_size - off < max ? f->obj_size - off : max;
    uint8_t *b = malloc(len + 1);
    assert_non_null(b);
    for (size_t i = 0; i < len; i++)
        b[i] = content(k->ns, k->object, off + i);
    cache_fill_done(fill, b, len, 0, NULL);
    free(b);
}

static void on_pend(struct ev_loop *l, void *arg)
{
    struct pend *p = arg;
    p->f->pending--;
    deliver(p->f, &p->k, p->off, p->max, p->fill);
    free(p);
}

static int fake_fetch(void *arg, const struct cache_key *k, uint64_t off, size_t max,
                      struct cache_fill *fill)
{
    struct fx *f = arg;
    f->calls++;
    if (f->refuse)
        return -1;
    if (!f->delay_us) {
        deliver(f, k, off, max, fill);
        return 0;
    }
    struct pend *p = calloc(1, sizeof *p);
    assert_non_null(p);
    *p = (struct pend){.f = f, .k = *k, .off = off, .max = max, .fill = fill};
    ev_timer_init(&p->t, on_pend, p);
    ev_timer_start(f->loop, &p->t, f->delay_us);
    f->pending++;
    return 0;
}

/* Asserts b holds block k of the fake origin's object. */
static void check_block(struct fx *f, const struct cache_block *b, const struct cache_key *k)
{
    assert_non_null(b);
    uint64_t off = (uint64_t)k->block * BLK;
    size_t want = f->obj_size - off < BLK ? f->obj_size - off : BLK;
    assert_int_equal(b->len, want);
    for (size_t i = 0; i < b->len; i++)
        if (b->data[i] != content(k->ns, k->object, off + i))
            fail_msg("byte %zu of object %llu block %u differs", i, (unsigned long long)k->object,
                     k->block);
}

/* ---- waiters ---- */

static void on_ready(struct cache_waiter *w)
{
    struct tw *t = (struct tw *)w;
    t->done++;
    t->err = w->err;
    t->b = w->block;
    snprintf(t->msg, sizeof t->msg, "%s", w->msg);
}

/* cache_get through test waiter t; returns cache_get's result. */
static int tget(struct fx *f, struct tw *t, const struct cache_key *k)
{
    memset(t, 0, sizeof *t);
    t->f = f;
    t->w.fn = on_ready;
    int rc = cache_get(f->c, k, &f->origin, &t->w);
    if (rc == CACHE_HIT)
        t->b = t->w.block;
    return rc;
}

/* A get that must hit memory now: checks the bytes and unpins. */
static void get_now(struct fx *f, const struct cache_key *k)
{
    struct tw t;
    assert_int_equal(tget(f, &t, k), CACHE_HIT);
    check_block(f, t.b, k);
    cache_unpin(f->c, t.b);
}

/* ---- fixture ---- */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void cache_open(struct fx *f)
{
    f->c = cache_new(f->loop, f->st, &f->o);
    assert_non_null(f->c);
}

static void cache_restart(struct fx *f)
{
    cache_free(f->c);
    cache_open(f);
}

/* A fixture with memory of mem_blocks and disk of disk_blocks 4 KiB blocks. */
static struct fx *fx_new(int mem_blocks, int disk_blocks)
{
    struct fx *f = calloc(1, sizeof *f);
    char *err = NULL;
    assert_non_null(f);
    log_min_level = LOG_ERROR;
    snprintf(f->dir, sizeof f->dir, "/tmp/sluice-cache-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->cdir, sizeof f->cdir, "%s/cache", f->dir);
    f->loop = ev_new();
    assert_non_null(f->loop);
    f->st = store_open(f->dir, &err);
    if (!f->st)
        fail_msg("store_open: %s", err);
    f->o.memory_bytes = (int64_t)mem_blocks * BLK;
    f->o.disk_bytes = (int64_t)disk_blocks * BLK;
    f->o.block_bytes = BLK;
    f->o.prefetch_hold_ms = 30000;
    snprintf(f->o.disk_dir, sizeof f->o.disk_dir, "%s", f->cdir);
    f->origin = (struct cache_origin){fake_fetch, f};
    f->obj_size = 3 * BLK + 100; /* blocks 0..2 full, block 3 short */
    cache_open(f);
    return f;
}

static void fx_free(struct fx *f)
{
    assert_int_equal(f->pending, 0);
    cache_free(f->c);
    store_close(f->st);
    ev_free(f->loop);
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
}

static void on_tick(struct ev_loop *l, void *arg)
{
    struct fx *f = arg;
    if (f->script(f))
        ev_stop(l);
    else
        ev_timer_start(l, &f->tick, 100);
}

static void on_deadline(struct ev_loop *l, void *arg)
{
    struct fx *f = arg;
    fail_msg("script stuck at line %d", f->pc);
}

/* Runs script on the fixture's loop until it finishes (10 s at most). */
static void run_script(struct fx *f, script_fn *script)
{
    f->script = script;
    f->pc = 0;
    ev_timer_init(&f->tick, on_tick, f);
    ev_timer_init(&f->deadline, on_deadline, f);
    ev_timer_start(f->loop, &f->tick, 0);
    ev_timer_start(f->loop, &f->deadline, 10 * 1000 * 1000);
    ev_run(f->loop);
    ev_timer_stop(f->loop, &f->deadline);
}

static struct cache_stats stats(struct fx *f, const uint8_t *ns)
{
    struct cache_stats s;
    cache_stats(f->c, ns, &s);
    return s;
}

static bool idle(struct fx *f)
{
    return stats(f, NULL).disk_queue == 0 && f->pending == 0;
}

/* ---- memory tier ---- */

static void test_memory_hit_miss(void **state)
{
    struct fx *f = fx_new(16, 0);
    struct cache_key k = key(1, 5, 3);
    struct tw t;
    assert_int_equal(tget(f, &t, &k), CACHE_HIT); /* a synchronous origin fills at once */
    check_block(f, t.b, &k);
    assert_int_equal(t.b->len, 100); /* the object's short last block */
    cache_unpin(f->c, t.b);
    get_now(f, &k);
    assert_int_equal(f->calls, 1);
    struct cache_stats s = stats(f, NULL);
    assert_int_equal(s.memory.hits, 1);
    assert_int_equal(s.memory.misses, 1);
    assert_int_equal(s.memory.fills, 1);
    assert_int_equal(s.memory.bytes, 100);
    assert_int_equal(s.origin.requests, 1);
    assert_int_equal(s.origin.bytes, 100);
    s = stats(f, k.ns);
    assert_int_equal(s.memory.hits, 1);
    uint8_t other[16] = {9};
    assert_int_equal(stats(f, other).memory.hits, 0);
    assert_int_equal(cache_where(f->c, &k), CACHE_IN_MEMORY);
    fx_free(f);
}

/* ---- tiers and restart ---- */

static bool script_restart(struct fx *f)
{
    struct cache_key k;
    SCRIPT_BEGIN(f);
    for (uint32_t b = 0; b < 4; b++) {
        k = key(2, 7, b);
        get_now(f, &k);
    }
    WAIT_UNTIL(f, idle(f)); /* the sweep and four write-throughs */
    k = key(2, 7, 0);
    assert_int_equal(cache_where(f->c, &k), CACHE_IN_MEMORY | CACHE_ON_DISK);
    assert_int_equal(stats(f, NULL).disk.fills, 4);
    assert_int_equal(stats(f, NULL).disk.blocks, 4);
    cache_restart(f);
    assert_int_equal(cache_where(f->c, &k), CACHE_ON_DISK);
    assert_int_equal(stats(f, NULL).disk.blocks, 4);
    for (f->i = 0; f->i < 4; f->i++) {
        k = key(2, 7, (uint32_t)f->i);
        assert_int_equal(tget(f, &f->w[f->i], &k), CACHE_PENDING);
    }
    WAIT_UNTIL(f, f->w[0].done && f->w[1].done && f->w[2].done && f->w[3].done);
    for (f->i = 0; f->i < 4; f->i++) {
        k = key(2, 7, (uint32_t)f->i);
        assert_int_equal(f->w[f->i].err, 0);
        check_block(f, f->w[f->i].b, &k);
        cache_unpin(f->c, f->w[f->i].b);
    }
    assert_int_equal(f->calls, 4); /* nothing came from the origin after the restart */
    struct cache_stats s = stats(f, NULL);
    assert_int_equal(s.disk.hits, 4);
    assert_int_equal(s.memory.misses, 4);
    k = key(2, 7, 1);
    get_now(f, &k);
    assert_int_equal(stats(f, NULL).memory.hits, 1);
    SCRIPT_END(f);
}

static void test_disk_survives_restart(void **state)
{
    struct fx *f = fx_new(16, 64);
    run_script(f, script_restart);
    fx_free(f);
}

/* Memory too small for the working set: misses go to disk, not to the origin. */
static bool script_disk_tier(struct fx *f)
{
    struct cache_key k;
    SCRIPT_BEGIN(f);
    for (f->i = 0; f->i < 16; f->i++) {
        k = key(3, (uint64_t)f->i, 0);
        get_now(f, &k);
    }
    WAIT_UNTIL(f, idle(f));
    for (f->i = 0; f->i < 16; f->i++) {
        f->k = key(3, (uint64_t)f->i, 0);
        GET_AND_CHECK(f);
    }
    assert_int_equal(f->calls, 16);
    struct cache_stats s = stats(f, NULL);
    assert_true(s.disk.hits >= 8);
    assert_int_equal(s.disk.hits + s.memory.hits, 16);
    assert_true(s.memory.bytes <= s.memory.capacity);
    SCRIPT_END(f);
}

static void test_memory_misses_hit_disk(void **state)
{
    struct fx *f = fx_new(4, 64);
    run_script(f, script_disk_tier);
    fx_free(f);
}

/* ---- single flight ---- */

static bool script_single_flight(struct fx *f)
{
    struct cache_key k = key(4, 1, 2);
    SCRIPT_BEGIN(f);
    f->delay_us = 2000;
    for (f->i = 0; f->i < 10; f->i++)
        assert_int_equal(tget(f, &f->w[f->i], &k), CACHE_PENDING);
    assert_int_equal(cache_prefetch(f->c, &k, &f->origin), 0); /* joins, too */
    assert_int_equal(f->calls, 1);
    WAIT_UNTIL(f, f->w[9].done);
    for (f->i = 0; f->i < 10; f->i++) {
        assert_int_equal(f->w[f->i].done, 1);
        assert_int_equal(f->w[f->i].err, 0);
        assert_ptr_equal(f->w[f->i].b, f->w[0].b);
        check_block(f, f->w[f->i].b, &k);
    }
    assert_int_equal(stats(f, NULL).pinned_blocks, 10);
    for (f->i = 0; f->i < 10; f->i++)
        cache_unpin(f->c, f->w[f->i].b);
    assert_int_equal(stats(f, NULL).pinned_blocks, 0);
    assert_int_equal(f->calls, 1);
    assert_int_equal(stats(f, NULL).origin.requests, 1);
    assert_int_equal(stats(f, NULL).memory.misses, 10);
    assert_true(stats(f, NULL).origin.latency_p99_ms >= 1.0);
    WAIT_UNTIL(f, idle(f));
    SCRIPT_END(f);
}

static void test_single_flight(void **state)
{
    struct fx *f = fx_new(16, 64);
    run_script(f, script_single_flight);
    fx_free(f);
}

static bool script_cancel(struct fx *f)
{
    struct cache_key k = key(4, 9, 0);
    SCRIPT_BEGIN(f);
    f->delay_us = 1000;
    assert_int_equal(tget(f, &f->w[0], &k), CACHE_PENDING);
    assert_int_equal(tget(f, &f->w[1], &k), CACHE_PENDING);
    assert_int_equal(tget(f, &f->w[2], &k), CACHE_PENDING);
    cache_cancel(f->c, &f->w[1].w);
    cache_cancel(f->c, &f->w[1].w); /* twice is harmless */
    WAIT_UNTIL(f, f->w[0].done && f->w[2].done);
    assert_int_equal(f->w[1].done, 0);
    cache_unpin(f->c, f->w[0].b);
    cache_unpin(f->c, f->w[2].b);
    WAIT_UNTIL(f, idle(f));
    SCRIPT_END(f);
}

static void test_cancel(void **state)
{
    struct fx *f = fx_new(16, 64);
    run_script(f, script_cancel);
    fx_free(f);
}

/* ---- pins and budgets ---- */

static void test_pin_prevents_eviction(void **state)
{
    struct fx *f = fx_new(8, 0);
    struct tw pinned, unpinned;
    struct cache_key kp = key(5, 100, 0), ku = key(5, 101, 0);
    /* Fill the protected set first, so the two blocks under test are probationary:
     * the first in line for eviction. */
    for (uint64_t o = 0; o < 8; o++)
        get_now(f, &(struct cache_key){.ns = {5}, .object = o});
    assert_int_equal(tget(f, &pinned, &kp), CACHE_HIT);
    assert_int_equal(tget(f, &unpinned, &ku), CACHE_HIT);
    cache_unpin(f->c, unpinned.b);
    for (uint64_t o = 200; o < 260; o++) {
        struct cache_key k = key(5, o, 0);
        get_now(f, &k);
        struct cache_stats s = stats(f, NULL);
        /* Only the pinned block may hold the tier over its budget. */
        assert_true(s.memory.bytes <= s.memory.capacity + BLK);
    }
    assert_int_equal(cache_where(f->c, &kp), CACHE_IN_MEMORY);
    assert_int_equal(cache_where(f->c, &ku), 0);
    check_block(f, pinned.b, &kp);
    /* Invalidated while pinned: gone from the cache, bytes still readable. */
    cache_invalidate_object(f->c, kp.ns, kp.object);
    assert_int_equal(cache_where(f->c, &kp), 0);
    check_block(f, pinned.b, &kp);
    cache_unpin(f->c, pinned.b);
    assert_true(stats(f, NULL).memory.bytes <= stats(f, NULL).memory.capacity);
    assert_true(stats(f, NULL).memory.evictions > 0);
    fx_free(f);
}

static uint64_t dir_bytes;
static int sum_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    if (flag == FTW_F)
        dir_bytes += (uint64_t)st->st_size;
    return 0;
}

static bool script_budget(struct fx *f)
{
    SCRIPT_BEGIN(f);
    srand(7);
    for (f->i = 0; f->i < 400; f->i++) {
        f->k = key(6, (uint64_t)(f->i % 3 ? rand() % 40 : 40 + f->i), 0);
        GET_AND_CHECK(f);
        struct cache_stats s = stats(f, NULL);
        assert_true(s.memory.bytes <= s.memory.capacity);
        assert_true(s.disk.bytes <= s.disk.capacity);
    }
    WAIT_UNTIL(f, idle(f));
    dir_bytes = 0;
    nftw(f->cdir, sum_one, 16, FTW_PHYS);
    assert_true(dir_bytes <= (uint64_t)f->o.disk_bytes);
    assert_true(dir_bytes >= (uint64_t)f->o.disk_bytes / 2);
    assert_true(stats(f, NULL).disk.evictions > 0);
    assert_int_equal(stats(f, NULL).disk.bytes, dir_bytes);
    SCRIPT_END(f);
}

static void test_budgets_respected(void **state)
{
    struct fx *f = fx_new(8, 24);
    run_script(f, script_budget);
    fx_free(f);
}

/* ---- corruption ---- */

static void damage(struct fx *f, const struct cache_key *k, bool truncate_it)
{
    char path[1300];
    assert_int_equal(cache_disk_path(f->c, k, path, sizeof path), 0);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    if (truncate_it) {
        assert_int_equal(ftruncate(fd, 10), 0);
    } else {
        uint8_t b;
        assert_int_equal(pread(fd, &b, 1, 77), 1);
        b ^= 0x40;
        assert_int_equal(pwrite(fd, &b, 1, 77), 1);
    }
    close(fd);
}

static bool script_corrupt(struct fx *f)
{
    struct cache_key k0 = key(7, 1, 0), k1 = key(7, 1, 1);
    SCRIPT_BEGIN(f);
    get_now(f, &k0);
    get_now(f, &k1);
    WAIT_UNTIL(f, idle(f));
    cache_restart(f);
    damage(f, &k0, false);
    damage(f, &k1, true);
    f->base_calls = f->calls;
    assert_int_equal(tget(f, &f->w[0], &k0), CACHE_PENDING);
    assert_int_equal(tget(f, &f->w[1], &k1), CACHE_PENDING);
    WAIT_UNTIL(f, f->w[0].done && f->w[1].done);
    assert_int_equal(f->w[0].err, 0);
    assert_int_equal(f->w[1].err, 0);
    check_block(f, f->w[0].b, &k0); /* refilled from the origin, never the bad bytes */
    check_block(f, f->w[1].b, &k1);
    cache_unpin(f->c, f->w[0].b);
    cache_unpin(f->c, f->w[1].b);
    assert_int_equal(f->calls, f->base_calls + 2);
    assert_int_equal(stats(f, NULL).disk.errors, 2);
    WAIT_UNTIL(f, idle(f)); /* the refills were written through again */
    cache_restart(f);
    f->base_calls = f->calls;
    assert_int_equal(tget(f, &f->w[0], &k0), CACHE_PENDING);
    WAIT_UNTIL(f, f->w[0].done);
    check_block(f, f->w[0].b, &k0);
    cache_unpin(f->c, f->w[0].b);
    assert_int_equal(f->calls, f->base_calls);
    assert_int_equal(stats(f, NULL).disk.hits, 1);
    SCRIPT_END(f);
}

static void test_corrupt_disk_block_refilled(void **state)
{
    struct fx *f = fx_new(16, 64);
    run_script(f, script_corrupt);
    fx_free(f);
}

/* ---- invalidation ---- */

static int index_records(struct fx *f, uint8_t ns0)
{
    uint8_t lo[16], hi[17];
    memset(lo, ns0, 16);
    memset(hi, ns0, 16);
    hi[16] = 0xff;
    int n = 0;
    struct store_it *it = store_it_new(f->st, STORE_CF_CACHE, lo, 16, hi, 17);
    for (store_it_first(it); store_it_valid(it); store_it_next(it))
        n++;
    store_it_free(it);
    return n;
}

static bool script_invalidate(struct fx *f)
{
    struct cache_key a1 = key(8, 1, 0), a2 = key(8, 2, 0), b1 = key(9, 1, 0);
    SCRIPT_BEGIN(f);
    get_now(f, &a1);
    get_now(f, &a2);
    get_now(f, &b1);
    WAIT_UNTIL(f, idle(f));
    assert_int_equal(index_records(f, 8), 2);
    cache_invalidate_object(f->c, a1.ns, 1);
    assert_int_equal(cache_where(f->c, &a1), 0);
    assert_int_equal(cache_where(f->c, &a2), CACHE_IN_MEMORY | CACHE_ON_DISK);
    assert_int_equal(index_records(f, 8), 1);
    f->base_calls = f->calls;
    get_now(f, &a1);
    assert_int_equal(f->calls, f->base_calls + 1);
    WAIT_UNTIL(f, idle(f));
    cache_invalidate_ns(f->c, a1.ns);
    assert_int_equal(cache_where(f->c, &a1), 0);
    assert_int_equal(cache_where(f->c, &a2), 0);
    assert_int_equal(cache_where(f->c, &b1), CACHE_IN_MEMORY | CACHE_ON_DISK);
    assert_int_equal(index_records(f, 8), 0);
    assert_int_equal(index_records(f, 9), 1);
    assert_int_equal(stats(f, a1.ns).memory.bytes, 0);
    WAIT_UNTIL(f, idle(f));
    char path[1300];
    assert_int_equal(cache_disk_path(f->c, &a2, path, sizeof path), 0);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(cache_disk_path(f->c, &b1, path, sizeof path), 0);
    assert_int_equal(access(path, F_OK), 0);
    /* A load in flight when its object is invalidated ends with CACHE_ESTALE. */
    f->delay_us = 1000;
    assert_int_equal(tget(f, &f->w[0], &a1), CACHE_PENDING);
    cache_invalidate_object(f->c, a1.ns, 1);
    WAIT_UNTIL(f, f->w[0].done);
    assert_int_equal(f->w[0].err, CACHE_ESTALE);
    assert_null(f->w[0].b);
    assert_int_equal(cache_where(f->c, &a1), 0);
    WAIT_UNTIL(f, idle(f));
    assert_int_equal(index_records(f, 8), 0);
    SCRIPT_END(f);
}

static void test_invalidation(void **state)
{
    struct fx *f = fx_new(16, 64);
    run_script(f, script_invalidate);
    fx_free(f);
}

/* ---- origin errors ---- */

static bool script_origin_error(struct fx *f)
{
    struct cache_key k = key(10, 3, 0);
    SCRIPT_BEGIN(f);
    f->delay_us = 1000;
    f->fail_err = -4; /* S3_EUNAVAIL after its retries */
    for (f->i = 0; f->i < 5; f->i++)
        assert_int_equal(tget(f, &f->w[f->i], &k), CACHE_PENDING);
    WAIT_UNTIL(f, f->w[4].done);
    for (f->i = 0; f->i < 5; f->i++) {
        assert_int_equal(f->w[f->i].done, 1);
        assert_int_equal(f->w[f->i].err, -4);
        assert_null(f->w[f->i].b);
        assert_string_equal(f->w[f->i].msg, "fake failure");
    }
    assert_int_equal(f->calls, 1);
    assert_int_equal(stats(f, NULL).origin.errors, 1);
    assert_int_equal(cache_where(f->c, &k), 0);
    /* No negative caching: the next get asks again, and succeeds. */
    f->fail_err = 0;
    assert_int_equal(tget(f, &f->w[0], &k), CACHE_PENDING);
    WAIT_UNTIL(f, f->w[0].done);
    check_block(f, f->w[0].b, &k);
    cache_unpin(f->c, f->w[0].b);
    assert_int_equal(f->calls, 2);
    WAIT_UNTIL(f, idle(f));
    SCRIPT_END(f);
}

static void test_origin_error_reaches_every_waiter(void **state)
{
    struct fx *f = fx_new(16, 64);
    run_script(f, script_origin_error);
    /* Synchronous failures come back from cache_get itself. */
    struct tw t;
    struct cache_key k = key(10, 4, 0);
    f->delay_us = 0;
    f->fail_err = -2;
    assert_int_equal(tget(f, &t, &k), -2);
    assert_int_equal(t.w.err, -2);
    assert_string_equal(t.w.msg, "fake failure");
    f->fail_err = 0;
    f->refuse = true;
    assert_int_equal(tget(f, &t, &k), -1);
    assert_int_equal(t.done, 0);
    assert_int_equal(cache_get(f->c, &k, NULL, &t.w), CACHE_EORIGIN); /* no origin at all */
    fx_free(f);
}

/* An origin that answers with more than a block. */
static int fat_fetch(void *arg, const struct cache_key *k, uint64_t off, size_t max,
                     struct cache_fill *fill)
{
    static uint8_t big[BLK + 1];
    cache_fill_done(fill, big, sizeof big, 0, NULL);
    return 0;
}

static void test_origin_contract(void **state)
{
    struct fx *f = fx_new(16, 0);
    struct cache_origin fat = {fat_fetch, f};
    struct cache_key k = key(11, 0, 0);
    struct tw t;
    memset(&t, 0, sizeof t);
    t.w.fn = on_ready;
    assert_int_equal(cache_get(f->c, &k, &fat, &t.w), CACHE_EORIGIN);
    assert_non_null(strstr(t.w.msg, "bytes for a 4096-byte block"));
    assert_int_equal(cache_where(f->c, &k), 0);
    fx_free(f);
}

/* ---- prefetch ---- */

static bool script_prefetch(struct fx *f)
{
    struct cache_key k = key(12, 0, 0);
    SCRIPT_BEGIN(f);
    assert_int_equal(cache_prefetch(f->c, &k, &f->origin), 0);
    assert_int_equal(f->calls, 1);
    assert_int_equal(cache_where(f->c, &k) & CACHE_IN_MEMORY, CACHE_IN_MEMORY);
    assert_int_equal(cache_prefetch(f->c, &k, &f->origin), 0); /* already there */
    assert_int_equal(f->calls, 1);
    assert_int_equal(stats(f, NULL).memory.hits, 0); /* a prefetch is not a read */
    get_now(f, &k);
    assert_int_equal(stats(f, NULL).memory.hits, 1);
    assert_int_equal(stats(f, NULL).reserved_bytes, 0);
    /* The reservation is half the memory budget (16 blocks here): the ninth waits. */
    for (f->i = 1; f->i <= 8; f->i++) {
        k = key(12, (uint64_t)f->i, 0);
        assert_int_equal(cache_prefetch(f->c, &k, &f->origin), 0);
    }
    k = key(12, 9, 0);
    assert_int_equal(cache_prefetch(f->c, &k, &f->origin), CACHE_EBUSY);
    assert_int_equal(stats(f, NULL).reserved_bytes, 8 * BLK);
    assert_true(stats(f, NULL).memory.bytes <= stats(f, NULL).memory.capacity);
    /* Unread, they leave memory after prefetch_hold_ms, and stay on disk. */
    WAIT_UNTIL(f, stats(f, NULL).reserved_bytes == 0);
    assert_int_equal(stats(f, NULL).prefetch_unused, 8);
    k = key(12, 3, 0);
    assert_int_equal(cache_where(f->c, &k), CACHE_ON_DISK);
    WAIT_UNTIL(f, idle(f));
    SCRIPT_END(f);
}

static void test_prefetch(void **state)
{
    struct fx *f = fx_new(16, 64);
    cache_free(f->c);
    f->o.prefetch_hold_ms = 20;
    cache_open(f);
    run_script(f, script_prefetch);
    fx_free(f);
}

/* ---- eviction policy: cyclic and zipf traces ---- */

/* The baseline: LRU over the same blocks, by timestamps (small traces only). */
struct lru {
    int64_t *last;
    bool *in;
    int cap, n;
    int64_t now;
};

static bool lru_access(struct lru *l, int k, int universe)
{
    l->now++;
    bool hit = l->in[k];
    if (!hit) {
        if (l->n == l->cap) {
            int v = -1;
            for (int i = 0; i < universe; i++)
                if (l->in[i] && (v < 0 || l->last[i] < l->last[v]))
                    v = i;
            l->in[v] = false;
            l->n--;
        }
        l->in[k] = true;
        l->n++;
    }
    l->last[k] = l->now;
    return hit;
}

static double lru_rate(const int *trace, int n, int universe, int cap, int warm)
{
    struct lru l = {calloc((size_t)universe, sizeof(int64_t)), calloc((size_t)universe, 1), cap, 0,
                    0};
    int hits = 0;
    for (int i = 0; i < n; i++)
        hits += lru_access(&l, trace[i], universe) && i >= warm;
    free(l.last);
    free(l.in);
    return (double)hits / (n - warm);
}

/* The policy alone, on the same trace, with equal-sized blocks. */
static double cpol_rate(const int *trace, int n, int universe, int cap, int warm)
{
    struct cpol *p = cpol_new((uint64_t)cap * BLK, cpol_probation_for((uint64_t)cap * BLK, BLK));
    struct cpol_node **node = calloc((size_t)universe, sizeof *node);
    int hits = 0;
    for (int i = 0; i < n; i++) {
        int k = trace[i];
        if (node[k]) {
            cpol_hit(p, node[k]);
            hits += i >= warm;
            continue;
        }
        node[k] = cpol_insert(p, cache_mix64((uint64_t)k), BLK, (void *)(intptr_t)(k + 1));
        void *v;
        while ((v = cpol_evict(p, NULL, NULL)))
            node[(intptr_t)v - 1] = NULL;
        struct cpol_stats st;
        cpol_stats(p, &st);
        assert_true(st.used <= st.capacity);
    }
    cpol_free(p);
    free(node);
    return (double)hits / (n - warm);
}

static int *cyclic_trace(int universe, int cycles)
{
    int *t = malloc(sizeof(int) * (size_t)(universe * cycles));
    for (int i = 0; i < universe * cycles; i++)
        t[i] = i % universe;
    return t;
}

static int *zipf_trace(int universe, int n, double s, unsigned seed)
{
    double *cdf = malloc(sizeof(double) * (size_t)universe), tot = 0;
    int *t = malloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < universe; i++)
        cdf[i] = tot += 1.0 / pow(i + 1, s);
    srand(seed);
    for (int i = 0; i < n; i++) {
        double u = (double)rand() / ((double)RAND_MAX + 1) * tot;
        int lo = 0, hi = universe - 1;
        while (lo < hi) {
            int m = (lo + hi) / 2;
            if (cdf[m] < u)
                lo = m + 1;
            else
                hi = m;
        }
        /* Scatter ranks so popularity does not follow key order. */
        t[i] = (int)((uint64_t)lo * 7919 % (uint64_t)universe);
    }
    free(cdf);
    return t;
}

/* The whole cache (memory tier, synchronous origin) on a cyclic scan twice its size. */
static void test_cyclic_scan_keeps_half(void **state)
{
    enum { CAP = 64, DATA = 128, CYCLES = 20 };
    struct fx *f = fx_new(CAP, 0);
    int *trace = cyclic_trace(DATA, CYCLES);
    uint64_t h0 = 0, m0 = 0;
    for (int i = 0; i < DATA * CYCLES; i++) {
        if (i == DATA * 2) { /* warm-up: the first two passes */
            h0 = stats(f, NULL).memory.hits;
            m0 = stats(f, NULL).memory.misses;
        }
        struct cache_key k = key(13, (uint64_t)trace[i], 0);
        get_now(f, &k);
    }
    struct cache_stats s = stats(f, NULL);
    double rate =
        (double)(s.memory.hits - h0) / (double)(s.memory.hits - h0 + s.memory.misses - m0);
    double lru = lru_rate(trace, DATA * CYCLES, DATA, CAP, DATA * 2);
    print_message("cyclic scan, cache = dataset / 2: cache %.3f, LRU %.3f\n", rate, lru);
    assert_true(rate >= 0.45);
    assert_true(lru <= 0.01);
    assert_true(s.memory.bytes <= s.memory.capacity);
    /* Prefetching one block ahead does not break the resident set. */
    uint64_t h1 = s.memory.hits, m1 = s.memory.misses;
    for (int i = 0; i < DATA * 4; i++) {
        struct cache_key next = key(13, (uint64_t)((i + 1) % DATA), 0);
        cache_prefetch(f->c, &next, &f->origin);
        struct cache_key k = key(13, (uint64_t)(i % DATA), 0);
        get_now(f, &k);
    }
    s = stats(f, NULL);
    double with_prefetch =
        (double)(s.memory.hits - h1) / (double)(s.memory.hits - h1 + s.memory.misses - m1);
    print_message("cyclic scan with prefetch: hit %.3f (prefetched blocks count as hits)\n",
                  with_prefetch);
    assert_true(with_prefetch >= 0.95);
    free(trace);
    fx_free(f);
}

static void test_policy_cyclic_and_zipf(void **state)
{
    int *cyc = cyclic_trace(2000, 10);
    double lirs = cpol_rate(cyc, 20000, 2000, 1000, 4000);
    double lru = lru_rate(cyc, 20000, 2000, 1000, 4000);
    print_message("policy, cyclic 2x: %.3f, LRU %.3f\n", lirs, lru);
    assert_true(lirs >= 0.45);
    assert_true(lru <= 0.01);
    free(cyc);
    /* A dataset 1.5x and 4x the cache: about cache / dataset. */
    cyc = cyclic_trace(150, 20);
    assert_true(cpol_rate(cyc, 3000, 150, 100, 600) >= 0.6);
    free(cyc);
    cyc = cyclic_trace(400, 20);
    assert_true(cpol_rate(cyc, 8000, 400, 100, 1600) >= 0.22);
    free(cyc);
    const double skews[] = {0.6, 0.9, 1.2};
    for (int i = 0; i < 3; i++) {
        int *z = zipf_trace(2000, 60000, skews[i], 11 + (unsigned)i);
        double a = cpol_rate(z, 60000, 2000, 200, 10000);
        double b = lru_rate(z, 60000, 2000, 200, 10000);
        print_message("policy, zipf %.1f: %.3f, LRU %.3f\n", skews[i], a, b);
        assert_true(a >= b - 0.03);
        free(z);
    }
}

/* A set nobody reads any more gives its place up to a new cyclic scan. */
static void test_policy_stale_set_ages_out(void **state)
{
    enum { CAP = 100 };
    int *t = malloc(sizeof(int) * 60000);
    int n = 0;
    for (int r = 0; r < 20; r++)
        for (int i = 0; i < CAP; i++)
            t[n++] = i; /* the old working set, hot */
    for (int r = 0; n + 500 <= 60000; r++)
        for (int i = 0; i < 500; i++)
            t[n++] = 1000 + i; /* a new dataset, five times the cache */
    double rate = cpol_rate(t, n, 1500, CAP, n - 5000);
    print_message("policy, new 5x scan after an old hot set: %.3f\n", rate);
    assert_true(rate >= 0.15);
    free(t);
}

/* Blocks of mixed sizes (short last blocks): the byte budget holds. */
static void test_policy_bytes(void **state)
{
    struct cpol *p = cpol_new(100000, cpol_probation_for(100000, 8192));
    struct cpol_node *node[500] = {0};
    srand(3);
    for (int i = 0; i < 20000; i++) {
        int k = rand() % 500;
        if (node[k]) {
            cpol_hit(p, node[k]);
            continue;
        }
        node[k] = cpol_insert(p, (uint64_t)k, (uint32_t)(1 + (k * 37) % 8192), &node[k]);
        struct cpol_node **v;
        while ((v = cpol_evict(p, NULL, NULL)))
            *v = NULL;
        struct cpol_stats st;
        cpol_stats(p, &st);
        assert_true(st.used <= st.capacity);
        assert_true(st.ghosts <= 2 * st.resident + 16);
    }
    for (int k = 0; k < 500; k++)
        if (node[k] && k % 2)
            cpol_remove(p, node[k]);
    cpol_free(p);
}

/* The disk tier on its own: memory of 8 blocks, disk of 64, a cyclic scan of 128. */
static bool script_disk_cyclic(struct fx *f)
{
    SCRIPT_BEGIN(f);
    for (f->i = 0; f->i < 128 * 8; f->i++) {
        if (f->i == 128 * 3) {
            f->base_calls = f->calls;
            f->n = (int)stats(f, NULL).disk.hits;
        }
        f->k = key(14, (uint64_t)(f->i % 128), 0);
        GET_AND_CHECK(f);
        WAIT_UNTIL(f, idle(f));
    }
    {
        int reads = 128 * 5;
        int disk_hits = (int)stats(f, NULL).disk.hits - f->n;
        int origin = f->calls - f->base_calls;
        print_message("disk tier, cyclic 2x: disk hits %.3f, origin %.3f of reads\n",
                      (double)disk_hits / reads, (double)origin / reads);
        assert_true((double)(reads - origin) / reads >= 0.45);
    }
    SCRIPT_END(f);
}

static void test_disk_tier_cyclic_scan(void **state)
{
    struct fx *f = fx_new(8, 64);
    run_script(f, script_disk_cyclic);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_hit_miss),
        cmocka_unit_test(test_disk_survives_restart),
        cmocka_unit_test(test_memory_misses_hit_disk),
        cmocka_unit_test(test_single_flight),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_pin_prevents_eviction),
        cmocka_unit_test(test_budgets_respected),
        cmocka_unit_test(test_corrupt_disk_block_refilled),
        cmocka_unit_test(test_invalidation),
        cmocka_unit_test(test_origin_error_reaches_every_waiter),
        cmocka_unit_test(test_origin_contract),
        cmocka_unit_test(test_prefetch),
        cmocka_unit_test(test_cyclic_scan_keeps_half),
        cmocka_unit_test(test_policy_cyclic_and_zipf),
        cmocka_unit_test(test_policy_stale_set_ages_out),
        cmocka_unit_test(test_policy_bytes),
        cmocka_unit_test(test_disk_tier_cyclic_scan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
