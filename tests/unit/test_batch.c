/* test_batch.c: v2 record batch validation. Batches are built here, record by record,
 * with a real CRC, then damaged one field at a time. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "batch.h"
#include "crc32c.h"
#include "kcodec.h"

/* One record: key/value may be NULL (null); headers alternate non-null/null values. */
struct trec {
    const char *key;
    const char *val;
    int nhdr;
};

static void put_blob(kc_writer *w, const char *s)
{
    if (!s) {
        kc_w_varint(w, -1);
        return;
    }
    kc_w_varint(w, (int32_t)strlen(s));
    kc_w_raw(w, s, strlen(s));
}

/* Appends record delta (offsetDelta) to w, length prefix included. */
static void put_record(kc_writer *w, int32_t delta, const struct trec *t)
{
    kc_writer b;
    int i;

    kc_writer_init(&b, 0);
    kc_w_i8(&b, 0);
    kc_w_varlong(&b, delta * 10);
    kc_w_varint(&b, delta);
    put_blob(&b, t->key);
    put_blob(&b, t->val);
    kc_w_varint(&b, t->nhdr);
    for (i = 0; i < t->nhdr; i++) {
        put_blob(&b, "hk");
        put_blob(&b, i % 2 ? NULL : "hv");
    }
    assert_int_equal(b.err, KC_OK);
    kc_w_varint(w, (int32_t)b.len);
    kc_w_raw(w, b.p, b.len);
    kc_writer_free(&b);
}

/* Recomputes the CRC over attributes..end after a test changed a covered field. */
static void fix_crc(uint8_t *p, size_t len)
{
    kc_put_be32(p + BATCH_OFF_CRC, crc32c(0, p + BATCH_OFF_ATTRIBUTES, len - BATCH_OFF_ATTRIBUTES));
}

/* Builds a batch in out around the record bytes recs, with the given attributes,
 * recordsCount and lastOffsetDelta; returns its length. */
static size_t build(uint8_t *out, size_t cap, int16_t attrs, int32_t count, int32_t lod,
                    const void *recs, size_t rlen)
{
    kc_writer w;
    size_t len;

    kc_writer_init(&w, 0);
    kc_w_i64(&w, 0);
    kc_w_i32(&w, (int32_t)(BATCH_HEADER_LEN - BATCH_LOG_OVERHEAD + rlen));
    kc_w_i32(&w, 7);
    kc_w_i8(&w, 2);
    kc_w_u32(&w, 0);
    kc_w_i16(&w, attrs);
    kc_w_i32(&w, lod);
    kc_w_i64(&w, 1000);
    kc_w_i64(&w, 1000 + lod * 10);
    kc_w_i64(&w, -1);
    kc_w_i16(&w, -1);
    kc_w_i32(&w, -1);
    kc_w_i32(&w, count);
    assert_int_equal(w.len, BATCH_HEADER_LEN);
    kc_w_raw(&w, recs, rlen);
    assert_int_equal(w.err, KC_OK);
    assert_true(w.len <= cap);
    memcpy(out, w.p, w.len);
    len = w.len;
    fix_crc(out, len);
    kc_writer_free(&w);
    return len;
}

/* Builds a batch of n well-formed records with deltas 0..n-1. */
static size_t build_records(uint8_t *out, size_t cap, const struct trec *t, int n)
{
    kc_writer r;
    size_t len;
    int i;

    kc_writer_init(&r, 0);
    for (i = 0; i < n; i++)
        put_record(&r, i, &t[i]);
    len = build(out, cap, 0, n, n - 1, r.p, r.len);
    kc_writer_free(&r);
    return len;
}

static const struct trec three[] = {
    { "key-0", "value-0", 2 },
    { NULL, "value-1", 0 },
    { "key-2", NULL, 1 },
};

static void test_ok_one(void **state)
{
    static const struct trec one = { "k", "v", 0 };
    uint8_t b[256];
    struct batch_hdr h;
    size_t len = build_records(b, sizeof(b), &one, 1);

    (void)state;
    assert_int_equal(batch_validate(b, len, &h), BATCH_OK);
    assert_int_equal(h.count, 1);
    assert_int_equal(h.last_offset_delta, 0);
    assert_int_equal(h.magic, 2);
    assert_int_equal(h.leader_epoch, 7);
    assert_int_equal(h.length, (int32_t)len - BATCH_LOG_OVERHEAD);
    assert_true(h.producer_id == -1);
    assert_true(h.first_timestamp == 1000);
    assert_int_equal(batch_size(b, len), (int64_t)len);
    assert_int_equal(batch_size(b, BATCH_LOG_OVERHEAD), (int64_t)len);
    assert_int_equal(batch_validate(b, len, NULL), BATCH_OK);
}

static void test_ok_three(void **state)
{
    uint8_t b[512];
    struct batch_hdr h;
    size_t len = build_records(b, sizeof(b), three, 3);

    (void)state;
    assert_int_equal(batch_validate(b, len, &h), BATCH_OK);
    assert_int_equal(h.count, 3);
    assert_int_equal(h.last_offset_delta, 2);
}

static void test_bad_crc(void **state)
{
    uint8_t b[512];
    size_t len = build_records(b, sizeof(b), three, 3);

    (void)state;
    b[len - 1] ^= 1;
    assert_int_equal(batch_validate(b, len, NULL), BATCH_ECRC);
    b[len - 1] ^= 1;
    b[BATCH_OFF_CRC] ^= 0x80;
    assert_int_equal(batch_validate(b, len, NULL), BATCH_ECRC);
    b[BATCH_OFF_CRC] ^= 0x80;
    b[BATCH_OFF_ATTRIBUTES + 1] ^= 0x08;  /* covered by the CRC */
    assert_int_equal(batch_validate(b, len, NULL), BATCH_ECRC);
}

static void test_bad_magic(void **state)
{
    uint8_t b[512];
    size_t len = build_records(b, sizeof(b), three, 3);

    (void)state;
    b[BATCH_OFF_MAGIC] = 1;
    assert_int_equal(batch_validate(b, len, NULL), BATCH_EMAGIC);
    b[BATCH_OFF_MAGIC] = 3;
    assert_int_equal(batch_validate(b, len, NULL), BATCH_EMAGIC);
    b[BATCH_OFF_MAGIC] = 0;
    assert_int_equal(batch_validate(b, 20, NULL), BATCH_EMAGIC);
}

static void test_truncated(void **state)
{
    uint8_t b[512];
    struct batch_hdr h;
    size_t len = build_records(b, sizeof(b), three, 3), cut;

    (void)state;
    for (cut = 0; cut < len; cut++)
        assert_int_equal(batch_validate(b, cut, NULL), BATCH_ESHORT);
    assert_int_equal(batch_parse_hdr(b, BATCH_HEADER_LEN - 1, &h), BATCH_ESHORT);
    assert_int_equal(batch_parse_hdr(b, BATCH_HEADER_LEN, &h), BATCH_OK);
    assert_int_equal(batch_size(b, BATCH_LOG_OVERHEAD - 1), -1);
}

static void test_batch_length(void **state)
{
    uint8_t b[512];
    size_t len = build_records(b, sizeof(b), three, 3);

    (void)state;
    kc_put_be32(b + BATCH_OFF_LENGTH, (uint32_t)(len - BATCH_LOG_OVERHEAD + 1));
    assert_int_equal(batch_validate(b, len, NULL), BATCH_ESHORT);
    kc_put_be32(b + BATCH_OFF_LENGTH, 0x7FFFFFFF);
    assert_int_equal(batch_validate(b, len, NULL), BATCH_ESHORT);
    kc_put_be32(b + BATCH_OFF_LENGTH, (uint32_t)-1);
    assert_int_equal(batch_validate(b, len, NULL), BATCH_ESHORT);
    assert_int_equal(batch_size(b, len), -1);
    kc_put_be32(b + BATCH_OFF_LENGTH, (uint32_t)INT32_MIN);
    assert_int_equal(batch_size(b, len), -1);
    kc_put_be32(b + BATCH_OFF_LENGTH, BATCH_HEADER_LEN - BATCH_LOG_OVERHEAD - 1);
    assert_int_equal(batch_size(b, len), -1);
    assert_int_equal(batch_validate(b, len, NULL), BATCH_ESHORT);
}

/* Rewrites recordsCount and lastOffsetDelta, keeping the CRC right. */
static int recount(uint8_t *b, size_t len, int32_t count, int32_t lod)
{
    kc_put_be32(b + BATCH_OFF_COUNT, (uint32_t)count);
    kc_put_be32(b + BATCH_OFF_LAST_DELTA, (uint32_t)lod);
    fix_crc(b, len);
    return batch_validate(b, len, NULL);
}

static void test_counts(void **state)
{
    uint8_t b[512];
    size_t len = build_records(b, sizeof(b), three, 3);

    (void)state;
    assert_int_equal(recount(b, len, 3, 5), BATCH_ECOUNT);
    assert_int_equal(recount(b, len, 3, 1), BATCH_ECOUNT);
    assert_int_equal(recount(b, len, 0, -1), BATCH_ECOUNT);
    assert_int_equal(recount(b, len, -1, -2), BATCH_ECOUNT);
    assert_int_equal(recount(b, len, 1000, 999), BATCH_ECOUNT);
    assert_int_equal(recount(b, len, INT32_MAX, INT32_MAX - 1), BATCH_ECOUNT);
    assert_int_equal(recount(b, len, INT32_MIN, INT32_MAX), BATCH_ECOUNT);
    /* Counts that fit the bytes but not the records. */
    assert_int_equal(recount(b, len, 2, 1), BATCH_ERECORD);
    assert_int_equal(recount(b, len, 4, 3), BATCH_ERECORD);
    assert_int_equal(recount(b, len, 3, 2), BATCH_OK);
}

static void test_impossible_count(void **state)
{
    static const struct trec one = { "k", "v", 0 };
    uint8_t b[256];
    size_t len = build_records(b, sizeof(b), &one, 1);

    (void)state;
    assert_int_equal(recount(b, len, 1000, 999), BATCH_ECOUNT);
    /* 9 bytes of records cannot hold two records of at least 7 bytes each. */
    assert_int_equal(len - BATCH_HEADER_LEN, 9);
    assert_int_equal(recount(b, len, 2, 1), BATCH_ECOUNT);
    assert_int_equal(recount(b, len, 1, 0), BATCH_OK);
}

static void test_trailing_garbage(void **state)
{
    uint8_t b[512];
    kc_writer r;
    size_t len;
    int i;

    (void)state;
    kc_writer_init(&r, 0);
    for (i = 0; i < 3; i++)
        put_record(&r, i, &three[i]);
    kc_w_raw(&r, "\0\0\0", 3);
    len = build(b, sizeof(b), 0, 3, 2, r.p, r.len);
    kc_writer_free(&r);
    assert_int_equal(batch_validate(b, len, NULL), BATCH_ERECORD);

    /* Bytes past batchLength: not this batch. */
    len = build_records(b, sizeof(b), three, 3);
    b[len] = 0;
    assert_int_equal(batch_validate(b, len + 1, NULL), BATCH_ESHORT);
    assert_int_equal(batch_size(b, len + 1), (int64_t)len);
}

/* One record whose length prefix is off by diff and body padded by pad zero bytes. */
static int record_len_case(int diff, size_t pad)
{
    static const struct trec one = { "key", "value", 1 };
    uint8_t b[256];
    kc_writer r, x;
    kc_reader rd;
    int32_t n;
    size_t len;

    kc_writer_init(&r, 0);
    put_record(&r, 0, &one);
    kc_reader_init(&rd, r.p, r.len);
    n = kc_varint(&rd);
    kc_writer_init(&x, 0);
    kc_w_varint(&x, n + diff);
    kc_w_raw(&x, r.p + rd.off, r.len - rd.off);
    kc_w_raw(&x, "\0\0\0\0", pad);
    len = build(b, sizeof(b), 0, 1, 0, x.p, x.len);
    kc_writer_free(&r);
    kc_writer_free(&x);
    return batch_validate(b, len, NULL);
}

static void test_record_length_mismatch(void **state)
{
    (void)state;
    assert_int_equal(record_len_case(0, 0), BATCH_OK);
    assert_int_equal(record_len_case(1, 1), BATCH_ERECORD);   /* body has an extra byte */
    assert_int_equal(record_len_case(-1, 0), BATCH_ERECORD);  /* body cut short */
    assert_int_equal(record_len_case(4, 0), BATCH_ERECORD);   /* runs past the batch */
    assert_int_equal(record_len_case(-100, 0), BATCH_ERECORD);
}

static void test_bad_record_fields(void **state)
{
    uint8_t b[256];
    kc_writer r;
    size_t len;

    (void)state;
    /* keyLength -2 */
    kc_writer_init(&r, 0);
    kc_w_varint(&r, 6);
    kc_w_i8(&r, 0);
    kc_w_varlong(&r, 0);
    kc_w_varint(&r, 0);
    kc_w_varint(&r, -2);
    kc_w_varint(&r, -1);
    kc_w_varint(&r, 0);
    len = build(b, sizeof(b), 0, 1, 0, r.p, r.len);
    assert_int_equal(batch_validate(b, len, NULL), BATCH_ERECORD);
    /* headersCount -1 */
    kc_writer_reset(&r);
    kc_w_varint(&r, 6);
    kc_w_i8(&r, 0);
    kc_w_varlong(&r, 0);
    kc_w_varint(&r, 0);
    kc_w_varint(&r, -1);
    kc_w_varint(&r, -1);
    kc_w_varint(&r, -1);
    len = build(b, sizeof(b), 0, 1, 0, r.p, r.len);
    assert_int_equal(batch_validate(b, len, NULL), BATCH_ERECORD);
    /* a null header key */
    kc_writer_reset(&r);
    kc_w_varint(&r, 8);
    kc_w_i8(&r, 0);
    kc_w_varlong(&r, 0);
    kc_w_varint(&r, 0);
    kc_w_varint(&r, -1);
    kc_w_varint(&r, -1);
    kc_w_varint(&r, 1);
    kc_w_varint(&r, -1);
    kc_w_varint(&r, -1);
    len = build(b, sizeof(b), 0, 1, 0, r.p, r.len);
    assert_int_equal(batch_validate(b, len, NULL), BATCH_ERECORD);
    /* the same with an empty key is fine */
    r.p[r.len - 2] = 0;
    len = build(b, sizeof(b), 0, 1, 0, r.p, r.len);
    assert_int_equal(batch_validate(b, len, NULL), BATCH_OK);
    kc_writer_free(&r);
}

static void test_offset_delta(void **state)
{
    uint8_t b[512];
    kc_writer r;
    size_t len;

    (void)state;
    kc_writer_init(&r, 0);
    put_record(&r, 0, &three[0]);
    put_record(&r, 2, &three[1]);
    len = build(b, sizeof(b), 0, 2, 1, r.p, r.len);
    assert_int_equal(batch_validate(b, len, NULL), BATCH_ECOUNT);
    kc_writer_reset(&r);
    put_record(&r, 1, &three[0]);
    put_record(&r, 0, &three[1]);
    len = build(b, sizeof(b), 0, 2, 1, r.p, r.len);
    assert_int_equal(batch_validate(b, len, NULL), BATCH_ECOUNT);
    kc_writer_free(&r);
}

static void test_compressed(void **state)
{
    static const uint8_t junk[] = "not a record at all, just compressed bytes";
    uint8_t b[256];
    size_t len;

    (void)state;
    len = build(b, sizeof(b), 1, 5, 4, junk, sizeof(junk));
    assert_int_equal(batch_validate(b, len, NULL), BATCH_OK);
    len = build(b, sizeof(b), 4 | BATCH_ATTR_TRANSACTIONAL, 1000, 999, junk, sizeof(junk));
    assert_int_equal(batch_validate(b, len, NULL), BATCH_OK);
    assert_int_equal(recount(b, len, 5, 5), BATCH_ECOUNT);
    assert_int_equal(recount(b, len, 0, -1), BATCH_ECOUNT);
    assert_int_equal(recount(b, len, (1 << 26) + 1, 1 << 26), BATCH_ECOUNT);
    assert_int_equal(recount(b, len, 1 << 26, (1 << 26) - 1), BATCH_OK);
    /* The same bytes claimed as uncompressed fail. */
    len = build(b, sizeof(b), 0, 5, 4, junk, sizeof(junk));
    assert_int_not_equal(batch_validate(b, len, NULL), BATCH_OK);
}

static void test_set_base_offset(void **state)
{
    uint8_t b[512];
    struct batch_hdr h;
    size_t len = build_records(b, sizeof(b), three, 3);
    uint32_t crc = kc_get_be32(b + BATCH_OFF_CRC);

    (void)state;
    batch_set_base_offset(b, 123456789012345LL);
    batch_set_leader_epoch(b, 42);
    assert_int_equal(kc_get_be32(b + BATCH_OFF_CRC), crc);
    assert_int_equal(batch_validate(b, len, &h), BATCH_OK);
    assert_true(h.base_offset == 123456789012345LL);
    assert_int_equal(h.leader_epoch, 42);
    batch_set_base_offset(b, -1);
    assert_int_equal(batch_validate(b, len, &h), BATCH_OK);
    assert_true(h.base_offset == -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ok_one),
        cmocka_unit_test(test_ok_three),
        cmocka_unit_test(test_bad_crc),
        cmocka_unit_test(test_bad_magic),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_batch_length),
        cmocka_unit_test(test_counts),
        cmocka_unit_test(test_impossible_count),
        cmocka_unit_test(test_trailing_garbage),
        cmocka_unit_test(test_record_length_mismatch),
        cmocka_unit_test(test_bad_record_fields),
        cmocka_unit_test(test_offset_delta),
        cmocka_unit_test(test_compressed),
        cmocka_unit_test(test_set_base_offset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
