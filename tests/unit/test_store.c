/* test_store.c: the RocksDB wrapper on a scratch directory: big-endian log keys that sort
 * the way the broker scans them, atomic write batches, bounded iterators, and data that
 * survives a close and reopen. */
#include "unit_broker.h"

struct sfx {
    struct store *st;
    char dir[64];
};

static struct store *open_store(const char *dir)
{
    char *err = NULL;
    struct store *st = store_open(dir, &err);
    if (!st)
        fail_msg("store_open(%s): %s", dir, err);
    return st;
}

static int setup(void **state)
{
    struct sfx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    log_min_level = LOG_WARN;
    ub_mkdtemp(f->dir);
    f->st = open_store(f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct sfx *f = *state;
    store_close(f->st);
    ub_rmdir(f->dir);
    free(f);
    return 0;
}

static void put_str(struct store *st, int cf, const char *k, const char *v)
{
    assert_int_equal(store_put(st, cf, k, strlen(k), v, strlen(v)), 0);
}

/* Asserts the value stored under k is v, or absent when v is NULL. */
static void assert_get(struct store *st, int cf, const char *k, const char *v)
{
    size_t vl = 12345;
    int err = -7;
    char *got = store_get(st, cf, k, strlen(k), &vl, &err);
    assert_int_equal(err, 0);
    if (!v) {
        assert_null(got);
        return;
    }
    assert_non_null(got);
    assert_int_equal(vl, strlen(v));
    assert_memory_equal(got, v, vl);
    free(got);
}

/* The keys the iterator yields from its current position forward, joined by ','. */
static void collect(struct store_it *it, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = 0;
    for (; store_it_valid(it); store_it_next(it)) {
        size_t kl;
        const uint8_t *k = store_it_key(it, &kl);
        n += (size_t)snprintf(out + n, cap - n, "%s%.*s", n ? "," : "", (int)kl, (const char *)k);
        assert_true(n < cap);
    }
}

static void test_log_key_layout(void **state)
{
    (void)state;
    uint8_t id[16], k[STORE_LOG_KEY_LEN], p[STORE_PART_PREFIX_LEN];
    for (int i = 0; i < 16; i++)
        id[i] = (uint8_t)(0xa0 + i);
    store_log_key(k, id, 0x01020304, 0x1122334455667788LL);
    assert_memory_equal(k, id, 16);
    static const uint8_t tail[12] = {1, 2, 3, 4, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};
    assert_memory_equal(k + 16, tail, 12);
    store_part_prefix(p, id, 0x01020304);
    assert_memory_equal(p, k, STORE_PART_PREFIX_LEN);
}

/* Log keys compare as (topic id, partition, offset), all unsigned big-endian. */
static void test_log_key_order(void **state)
{
    (void)state;
    uint8_t lo_id[16] = {0}, hi_id[16] = {0};
    hi_id[15] = 1;
    struct {
        const uint8_t *id;
        int32_t part;
        int64_t off;
    } keys[] = {
        {lo_id, 0, 0},         {lo_id, 0, 1},         {lo_id, 0, 255},       {lo_id, 0, 256},
        {lo_id, 0, 65535},     {lo_id, 0, 1LL << 32}, {lo_id, 0, INT64_MAX}, {lo_id, 1, 0},
        {lo_id, 1, 1LL << 40}, {lo_id, 255, 0},       {lo_id, 256, 0},       {lo_id, 65536, 0},
        {lo_id, INT32_MAX, 0}, {hi_id, 0, 0},
    };
    size_t n = sizeof keys / sizeof keys[0];
    for (size_t i = 0; i + 1 < n; i++) {
        uint8_t a[STORE_LOG_KEY_LEN], b[STORE_LOG_KEY_LEN];
        store_log_key(a, keys[i].id, keys[i].part, keys[i].off);
        store_log_key(b, keys[i + 1].id, keys[i + 1].part, keys[i + 1].off);
        if (memcmp(a, b, sizeof a) >= 0)
            fail_msg("key %zu does not sort before key %zu", i, i + 1);
    }
}

/* Written in reverse, log keys come back from the store in offset order. */
static void test_log_keys_iterate_in_offset_order(void **state)
{
    struct sfx *f = *state;
    static const int64_t offs[] = {1LL << 32, 256, 255, 1, 0};
    uint8_t id[16] = {7}, k[STORE_LOG_KEY_LEN], lo[20], hi[20];
    for (size_t i = 0; i < 5; i++) {
        store_log_key(k, id, 3, offs[i]);
        assert_int_equal(store_put(f->st, STORE_CF_LOG, k, sizeof k, "x", 1), 0);
    }
    store_log_key(k, id, 4, 0); /* next partition: outside the bounds */
    assert_int_equal(store_put(f->st, STORE_CF_LOG, k, sizeof k, "y", 1), 0);
    store_part_prefix(lo, id, 3);
    store_part_prefix(hi, id, 4);
    struct store_it *it = store_it_new(f->st, STORE_CF_LOG, lo, 20, hi, 20);
    int i = 4;
    for (store_it_first(it); store_it_valid(it); store_it_next(it), i--) {
        size_t kl;
        const uint8_t *key = store_it_key(it, &kl);
        assert_int_equal(kl, STORE_LOG_KEY_LEN);
        assert_true(i >= 0);
        assert_int_equal((int64_t)kc_get_be64(key + 20), offs[i]);
    }
    assert_int_equal(i, -1);
    store_it_free(it);
}

/* put, del and del_range in one batch land together, in order. */
static void test_write_batch(void **state)
{
    struct sfx *f = *state;
    static const char *const keys[] = {"a", "b", "c", "d", "e", "f"};
    for (int i = 0; i < 6; i++)
        put_str(f->st, STORE_CF_META, keys[i], "old");
    struct store_wb *wb = store_wb_new(f->st);
    store_wb_put(wb, STORE_CF_META, "a", 1, "new", 3);
    store_wb_put(wb, STORE_CF_META, "g", 1, "g1", 2);
    store_wb_del(wb, STORE_CF_META, "b", 1);
    store_wb_del_range(wb, STORE_CF_META, "c", 1, "e", 1); /* c, d; not e */
    store_wb_put(wb, STORE_CF_META, "d", 1, "again", 5);   /* after the range delete */
    store_wb_put(wb, STORE_CF_TOPICS, "a", 1, "other-cf", 8);
    assert_int_equal(store_wb_count(wb), 6);
    assert_get(f->st, STORE_CF_META, "a", "old"); /* nothing applied before the write */
    assert_get(f->st, STORE_CF_META, "g", NULL);
    assert_int_equal(store_write(f->st, wb, 0), 0);
    store_wb_free(wb);
    assert_get(f->st, STORE_CF_META, "a", "new");
    assert_get(f->st, STORE_CF_META, "b", NULL);
    assert_get(f->st, STORE_CF_META, "c", NULL);
    assert_get(f->st, STORE_CF_META, "d", "again");
    assert_get(f->st, STORE_CF_META, "e", "old");
    assert_get(f->st, STORE_CF_META, "f", "old");
    assert_get(f->st, STORE_CF_META, "g", "g1");
    assert_get(f->st, STORE_CF_TOPICS, "a", "other-cf");
}

/* A cleared batch writes nothing; the sync flag works. */
static void test_write_batch_clear_and_sync(void **state)
{
    struct sfx *f = *state;
    struct store_wb *wb = store_wb_new(f->st);
    store_wb_put(wb, STORE_CF_OFFSETS, "k", 1, "v", 1);
    store_wb_clear(wb);
    assert_int_equal(store_wb_count(wb), 0);
    assert_int_equal(store_write(f->st, wb, STORE_SYNC), 0);
    assert_get(f->st, STORE_CF_OFFSETS, "k", NULL);
    store_wb_put(wb, STORE_CF_OFFSETS, "k", 1, "v", 1);
    assert_int_equal(store_write(f->st, wb, STORE_SYNC), 0);
    store_wb_free(wb);
    assert_get(f->st, STORE_CF_OFFSETS, "k", "v");
    assert_int_equal(store_sync(f->st), 0);
}

static void test_get_absent_and_delete(void **state)
{
    struct sfx *f = *state;
    assert_get(f->st, STORE_CF_PSTATE, "nothing", NULL);
    put_str(f->st, STORE_CF_PSTATE, "k", "v");
    assert_get(f->st, STORE_CF_PSTATE, "k", "v");
    assert_get(f->st, STORE_CF_SHARE, "k", NULL); /* column families are separate */
    assert_int_equal(store_del(f->st, STORE_CF_PSTATE, "k", 1), 0);
    assert_get(f->st, STORE_CF_PSTATE, "k", NULL);
    assert_int_equal(store_del(f->st, STORE_CF_PSTATE, "k", 1), 0); /* deleting again is fine */
}

static void fill_cache_cf(struct store *st)
{
    static const char *const keys[] = {"k1", "k2", "k3", "k4", "k5"};
    for (int i = 0; i < 5; i++)
        put_str(st, STORE_CF_CACHE, keys[i], "v");
}

static void test_iterator_bounds(void **state)
{
    struct sfx *f = *state;
    char got[128];
    fill_cache_cf(f->st);

    struct store_it *it = store_it_new(f->st, STORE_CF_CACHE, "k2", 2, "k4", 2);
    store_it_first(it);
    collect(it, got, sizeof got);
    assert_string_equal(got, "k2,k3");
    store_it_last(it);
    assert_true(store_it_valid(it));
    size_t kl, vl;
    assert_memory_equal(store_it_key(it, &kl), "k3", 2);
    assert_memory_equal(store_it_value(it, &vl), "v", 1);
    assert_int_equal(vl, 1);
    store_it_prev(it);
    assert_memory_equal(store_it_key(it, &kl), "k2", 2);
    store_it_prev(it);
    assert_false(store_it_valid(it)); /* k1 is below the lower bound */
    store_it_seek(it, "k0", 2);
    collect(it, got, sizeof got);
    assert_string_equal(got, "k2,k3");
    store_it_free(it);

    it = store_it_new(f->st, STORE_CF_CACHE, "k4", 2, NULL, 0); /* lower bound only */
    store_it_first(it);
    collect(it, got, sizeof got);
    assert_string_equal(got, "k4,k5");
    store_it_free(it);

    it = store_it_new(f->st, STORE_CF_CACHE, NULL, 0, "k2", 2); /* upper bound only */
    store_it_first(it);
    collect(it, got, sizeof got);
    assert_string_equal(got, "k1");
    store_it_free(it);
}

static void test_iterator_seek_for_prev(void **state)
{
    struct sfx *f = *state;
    char got[128];
    size_t kl;
    fill_cache_cf(f->st);
    struct store_it *it = store_it_new(f->st, STORE_CF_CACHE, NULL, 0, NULL, 0);

    store_it_seek_for_prev(it, "k3", 2); /* exact hit */
    assert_memory_equal(store_it_key(it, &kl), "k3", 2);
    store_it_seek_for_prev(it, "k35", 3); /* between keys: the one before */
    assert_memory_equal(store_it_key(it, &kl), "k3", 2);
    store_it_seek_for_prev(it, "k9", 2);
    assert_memory_equal(store_it_key(it, &kl), "k5", 2);
    store_it_seek_for_prev(it, "k0", 2); /* before everything */
    assert_false(store_it_valid(it));
    store_it_seek(it, "k35", 3); /* seek goes the other way */
    collect(it, got, sizeof got);
    assert_string_equal(got, "k4,k5");
    store_it_free(it);

    it = store_it_new(f->st, STORE_CF_CACHE, "k3", 2, NULL, 0);
    store_it_seek_for_prev(it, "k25", 3); /* the key before is under the bound */
    assert_false(store_it_valid(it));
    store_it_free(it);
}

static void test_reopen_keeps_data(void **state)
{
    struct sfx *f = *state;
    uint8_t id[16] = {1, 2, 3}, k[STORE_LOG_KEY_LEN];
    store_log_key(k, id, 0, 42);
    assert_int_equal(store_put(f->st, STORE_CF_LOG, k, sizeof k, "batch", 5), 0);
    put_str(f->st, STORE_CF_TOPICS, "orders", "{}");
    put_str(f->st, STORE_CF_META, "gone", "x");
    assert_int_equal(store_del(f->st, STORE_CF_META, "gone", 4), 0);
    assert_int_equal(store_sync(f->st), 0);
    store_close(f->st);

    f->st = open_store(f->dir);
    size_t vl;
    int err;
    char *v = store_get(f->st, STORE_CF_LOG, k, sizeof k, &vl, &err);
    assert_int_equal(err, 0);
    assert_non_null(v);
    assert_int_equal(vl, 5);
    assert_memory_equal(v, "batch", 5);
    free(v);
    assert_get(f->st, STORE_CF_TOPICS, "orders", "{}");
    assert_get(f->st, STORE_CF_META, "gone", NULL);
    assert_true(store_size_bytes(f->st) > 0);
}

/* A write without the WAL is still readable in the same process. */
static void test_no_wal_write(void **state)
{
    struct sfx *f = *state;
    struct store_wb *wb = store_wb_new(f->st);
    store_wb_put(wb, STORE_CF_META, "nw", 2, "1", 1);
    assert_int_equal(store_write(f->st, wb, STORE_NO_WAL), 0);
    store_wb_free(wb);
    assert_get(f->st, STORE_CF_META, "nw", "1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_key_layout),
        cmocka_unit_test(test_log_key_order),
        cmocka_unit_test_setup_teardown(test_log_keys_iterate_in_offset_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_batch_clear_and_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_absent_and_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iterator_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iterator_seek_for_prev, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_keeps_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_wal_write, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
