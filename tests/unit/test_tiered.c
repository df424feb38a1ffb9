/* test_tiered.c: tiered storage's manifest and segment lookups (tiered_manifest.c), and
 * a tiered partition's state across restarts with a manifest written the way an
 * upload commits it (record and local deletion in one write). S3 itself is covered by
 * tests/e2e/test_tiered.py. */
#include "unit_broker.h"

#include "tiered.h"
#include "tiered_manifest.h"

/* Appends a batch of count records at base (100 bytes of value each) with
 * timestamps first_ts, first_ts + 1, ... to w. */
static void put_batch(kc_writer *w, int64_t base, int32_t count, int64_t first_ts)
{
    struct ub_batch spec = ub_plain(count);
    spec.first_ts = first_ts;
    spec.value_len = 100;
    size_t at = w->len;
    ub_batch_put(w, &spec);
    batch_set_base_offset(w->p + at, base);
}

/* Builds a segment of n batches of 10 records from base, 1 ms apart per record. */
static void build(struct tm_builder *b, int64_t base, int n, int64_t stretch)
{
    kc_writer w;
    kc_writer_init(&w, 0);
    tm_builder_init(b, stretch);
    for (int i = 0; i < n; i++) {
        size_t at = w.len;
        put_batch(&w, base + 10 * i, 10, 1000 + base + 10 * i);
        assert_int_equal(tm_builder_add(b, w.p + at, w.len - at), 0);
    }
    kc_writer_free(&w);
}

static void test_builder_index(void **state)
{
    struct tm_builder b;
    build(&b, 100, 20, 4096);
    struct tm_seg *s = &b.seg;
    assert_int_equal(s->base, 100);
    assert_int_equal(s->end, 300);
    assert_int_equal(s->bytes, (int64_t)b.len);
    assert_int_equal(s->max_ts, 1000 + 299);
    assert_true(s->nidx > 2);
    assert_int_equal(s->idx[0].offset, 100);
    assert_int_equal(s->idx[0].pos, 0);
    int64_t total = 0;
    for (uint32_t i = 0; i < s->nidx; i++) {
        int64_t pos, len;
        tm_stretch_range(s, i, &pos, &len);
        assert_int_equal(pos, total);
        assert_true(len > 0);
        total += len;
        /* a stretch starts on a batch: its first bytes are that batch */
        struct batch_hdr h;
        assert_int_equal(batch_parse_hdr(b.body + pos, b.len - (size_t)pos, &h), BATCH_OK);
        assert_int_equal(h.base_offset, s->idx[i].offset);
        assert_int_equal(s->idx[i].offset % 10, 0);
        assert_true(s->idx[i].max_ts >= 1000 + s->idx[i].offset);
    }
    assert_int_equal(total, s->bytes);
    /* every offset maps to the stretch that holds it, and to its batch inside */
    for (int64_t off = 100; off < 300; off++) {
        uint32_t k = tm_stretch_find(s, off);
        assert_true(s->idx[k].offset <= off);
        assert_true(k + 1 == s->nidx || s->idx[k + 1].offset > off);
        int64_t pos, len;
        tm_stretch_range(s, k, &pos, &len);
        size_t at = tm_scan_to(b.body + pos, (size_t)len, off);
        struct batch_hdr h;
        assert_true(at < (size_t)len);
        assert_int_equal(batch_parse_hdr(b.body + pos + at, (size_t)len - at, &h), BATCH_OK);
        assert_int_equal(h.base_offset, off - off % 10);
    }
    /* by time: the first stretch whose newest record is at or after ts */
    uint32_t k = tm_stretch_time(s, 1000 + 250);
    assert_true(s->idx[k].max_ts >= 1250);
    assert_true(k == 0 || s->idx[k - 1].max_ts < 1250);
    tm_builder_free(&b);
}

static void test_builder_refuses_gaps_backwards_and_garbage(void **state)
{
    struct tm_builder b;
    kc_writer w;
    kc_writer_init(&w, 0);
    tm_builder_init(&b, 1 << 20);
    put_batch(&w, 50, 5, 1);
    assert_int_equal(tm_builder_add(&b, w.p, w.len), 0);
    size_t at = w.len;
    put_batch(&w, 40, 5, 1); /* behind the end */
    assert_int_equal(tm_builder_add(&b, w.p + at, w.len - at), -1);
    assert_int_equal(tm_builder_add(&b, w.p + at, 20), -1); /* truncated */
    assert_int_equal(tm_builder_add(&b, w.p, w.len), -1);   /* two batches as one */
    assert_int_equal(b.seg.end, 55);
    kc_writer_free(&w);
    tm_builder_free(&b);
}

static void test_record_roundtrip_and_corruption(void **state)
{
    struct tm_builder b;
    build(&b, 0, 12, 2048);
    snprintf(b.seg.etag, sizeof b.seg.etag, "0123456789abcdef0123456789abcdef");
    size_t vl;
    uint8_t *v = tm_encode(&b.seg, &vl);
    assert_non_null(v);
    struct tm_seg d;
    assert_int_equal(tm_decode(0, v, vl, &d), 0);
    assert_int_equal(d.base, 0);
    assert_int_equal(d.end, b.seg.end);
    assert_int_equal(d.bytes, b.seg.bytes);
    assert_int_equal(d.max_ts, b.seg.max_ts);
    assert_string_equal(d.etag, b.seg.etag);
    assert_int_equal(d.nidx, b.seg.nidx);
    for (uint32_t i = 0; i < d.nidx; i++) {
        assert_int_equal(d.idx[i].offset, b.seg.idx[i].offset);
        assert_int_equal(d.idx[i].pos, b.seg.idx[i].pos);
        assert_int_equal(d.idx[i].max_ts, b.seg.idx[i].max_ts);
    }
    tm_seg_clear(&d);
    /* the key's base must agree with the index */
    assert_int_equal(tm_decode(5, v, vl, &d), -1);
    /* every truncation is refused */
    for (size_t n = 0; n < vl; n++)
        assert_int_equal(tm_decode(0, v, n, &d), -1);
    /* a longer value too */
    uint8_t *big = malloc(vl + 1);
    memcpy(big, v, vl);
    big[vl] = 0;
    assert_int_equal(tm_decode(0, big, vl + 1, &d), -1);
    free(big);
    /* unknown version, an etag length past the record, an unordered index */
    v[0] = 9;
    assert_int_equal(tm_decode(0, v, vl, &d), -1);
    v[0] = 1;
    v[25] = 200;
    assert_int_equal(tm_decode(0, v, vl, &d), -1);
    v[25] = 32;
    if (b.seg.nidx > 2) {
        size_t e1 = 1 + 8 + 8 + 8 + 1 + 32 + 4 + 20; /* second index entry */
        kc_put_be64(v + e1, 0);                        /* offset before the first's */
        assert_int_equal(tm_decode(0, v, vl, &d), -1);
    }
    free(v);
    tm_builder_free(&b);
}

static void test_find_segments(void **state)
{
    struct tm_seg segs[3] = {
        {.base = 0, .end = 100, .max_ts = 50},
        {.base = 100, .end = 250, .max_ts = 40}, /* timestamps need not grow */
        {.base = 300, .end = 400, .max_ts = 90}, /* a hole at 250..300 */
    };
    assert_int_equal(tm_find(segs, 3, 0), 0);
    assert_int_equal(tm_find(segs, 3, 99), 0);
    assert_int_equal(tm_find(segs, 3, 100), 1);
    assert_int_equal(tm_find(segs, 3, 249), 1);
    assert_int_equal(tm_find(segs, 3, 250), -1);
    assert_int_equal(tm_find(segs, 3, 300), 2);
    assert_int_equal(tm_find(segs, 3, 400), -1);
    assert_int_equal(tm_find(segs, 3, -1), -1);
    assert_int_equal(tm_find(segs, 0, 5), -1);
    assert_int_equal(tm_find_time(segs, 3, 0, 45), 0);
    assert_int_equal(tm_find_time(segs, 3, 1, 45), 2);
    assert_int_equal(tm_find_time(segs, 3, 0, 91), -1);
}

static void test_object_key(void **state)
{
    uint8_t id[16];
    char k[128];
    for (int i = 0; i < 16; i++)
        id[i] = (uint8_t)(i * 17);
    assert_int_equal(tm_object_key(k, sizeof k, "pre/fix", id, 3, 42, 1042), 0);
    assert_string_equal(k, "pre/fix/00112233445566778899aabbccddeeff/3/00000000000000000042-1042.seg");
    assert_int_equal(tm_object_key(k, sizeof k, "", id, 0, 0, 1), 0);
    assert_string_equal(k, "00112233445566778899aabbccddeeff/0/00000000000000000000-1.seg");
    assert_int_equal(tm_object_key(k, 20, "p", id, 0, 0, 1), -1);
}

/* ---- a tiered partition on a scratch broker ---- */

static char msg[256];

static struct partition *tiered_part(struct ub *u)
{
    return ub_part(u, "tt", 0);
}

static int setup_tiered(void **state)
{
    ub_setup(state);
    struct ub *u = *state;
    struct topic_cfg_change c = {"storage.mode", 12, "tiered", 6};
    struct topic *t = NULL;
    /* refused without a bucket, accepted with one */
    assert_int_equal(topic_create(u->b.topics, "tt", 2, 1, &c, 1, false, &t, msg, sizeof msg),
                     KERR_INVALID_CONFIG);
    assert_non_null(strstr(msg, "tiered.s3.uri"));
    snprintf(u->b.cfg.tiered_s3_uri, sizeof u->b.cfg.tiered_s3_uri, "s3://b/p");
    assert_int_equal(topic_create(u->b.topics, "tt", 2, 1, &c, 1, false, &t, msg, sizeof msg),
                     KERR_NONE);
    assert_int_equal(t->cfg.mode, MODE_TIERED);
    return 0;
}

/* Appends n batches of 10 records; returns the total bytes. */
static int64_t append_batches(struct ub *u, int n)
{
    int64_t bytes = 0;
    for (int i = 0; i < n; i++) {
        kc_writer w;
        int64_t base;
        kc_writer_init(&w, 0);
        put_batch(&w, 0, 10, 5000 + i * 10);
        bytes += (int64_t)w.len;
        assert_int_equal(plog_append(u->b.topics, tiered_part(u), w.p, w.len, &base, msg,
                                     sizeof msg),
                         KERR_NONE);
        kc_writer_free(&w);
    }
    return bytes;
}

/* Commits the oldest `batches` local batches as one remote segment, as an upload does. */
static void commit_segment(struct ub *u, int batches)
{
    struct partition *p = tiered_part(u);
    struct tm_builder b;
    tm_builder_init(&b, 1024);
    uint8_t lo[20], hi[20];
    store_part_prefix(lo, p->topic->id, 0);
    store_part_prefix(hi, p->topic->id, 1);
    struct store_it *it = store_it_new(u->b.store, STORE_CF_LOG, lo, 20, hi, 20);
    int n = 0;
    for (store_it_first(it); store_it_valid(it) && n < batches; store_it_next(it), n++) {
        size_t vl;
        const uint8_t *v = store_it_value(it, &vl);
        assert_int_equal(tm_builder_add(&b, v, vl), 0);
    }
    store_it_free(it);
    assert_int_equal(b.seg.base, p->tier->local_start);
    size_t vl;
    uint8_t k[TM_KEY_LEN], *v = tm_encode(&b.seg, &vl);
    struct store_wb *wb = store_wb_new(u->b.store);
    tm_key(k, p->topic->id, 0, b.seg.base);
    store_wb_put(wb, STORE_CF_PSTATE, k, sizeof k, v, vl);
    assert_int_equal(plog_apply_cut_wb(u->b.topics, p, p->log_start, b.seg.end, (int64_t)b.len, wb),
                     KERR_NONE);
    store_wb_free(wb);
    free(v);
    tm_builder_free(&b);
}

static void test_partition_state_across_restarts(void **state)
{
    struct ub *u = *state;
    int64_t bytes = append_batches(u, 6);
    struct partition *p = tiered_part(u);
    assert_non_null(p->tier);
    assert_int_equal(p->tier->local_start, 0);
    assert_int_equal(p->hwm, 60);
    commit_segment(u, 2);
    assert_int_equal(p->tier->local_start, 20);
    assert_int_equal(p->log_start, 0); /* readers still start at 0 */
    assert_int_equal(p->bytes, bytes * 4 / 6);

    ub_restart(u);
    p = tiered_part(u);
    assert_int_equal(p->log_start, 0);
    assert_int_equal(p->hwm, 60);
    assert_int_equal(p->tier->local_start, 20);
    assert_int_equal(p->tier->n, 1);
    assert_int_equal(p->tier->segs[0].base, 0);
    assert_int_equal(p->tier->segs[0].end, 20);
    assert_int_equal(p->tier->remote_bytes, bytes * 2 / 6);

    /* everything remote: the high watermark comes from the manifest */
    commit_segment(u, 4);
    ub_restart(u);
    p = tiered_part(u);
    assert_int_equal(p->bytes, 0);
    assert_int_equal(p->hwm, 60);
    assert_int_equal(p->tier->local_start, 60);
    assert_int_equal(p->tier->n, 1 + 1);
    /* produce goes on at the high watermark */
    append_batches(u, 1);
    assert_int_equal(p->hwm, 70);
    assert_int_equal(p->tier->local_start, 60);

    /* without an S3 client a remote read is a retriable storage error, never a crash */
    kc_writer w;
    int64_t copied;
    kc_writer_init(&w, 0);
    assert_int_equal(plog_read(u->b.topics, p, 5, 1 << 20, true, &w, &copied),
                     KERR_KAFKA_STORAGE_ERROR);
    assert_int_equal(copied, 0);
    assert_int_equal(plog_read(u->b.topics, p, 60, 1 << 20, true, &w, &copied), KERR_NONE);
    assert_true(copied > 0);
    kc_writer_free(&w);

    /* DeleteRecords into the remote part moves the log start, not the local start */
    assert_int_equal(plog_truncate_before(u->b.topics, p, 25), KERR_NONE);
    assert_int_equal(p->log_start, 25);
    assert_int_equal(p->tier->local_start, 60);
    assert_int_equal(p->tier->remote_bytes, p->tier->segs[1].bytes);
    ub_restart(u);
    p = tiered_part(u);
    assert_int_equal(p->log_start, 25);
    assert_int_equal(p->hwm, 70);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builder_index),
        cmocka_unit_test(test_builder_refuses_gaps_backwards_and_garbage),
        cmocka_unit_test(test_record_roundtrip_and_corruption),
        cmocka_unit_test(test_find_segments),
        cmocka_unit_test(test_object_key),
        cmocka_unit_test_setup_teardown(test_partition_state_across_restarts, setup_tiered,
                                        ub_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
