/* test_kcodec.c: Kafka wire primitives. Round trips through the writer and reader,
 * varint boundaries, malformed lengths and counts, tagged fields, sticky errors, the
 * writer ceiling and length slots. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "kcodec.h"

/* A reader over the bytes the writer holds. */
static void reader_of(kc_reader *r, const kc_writer *w)
{
    assert_int_equal(w->err, KC_OK);
    kc_reader_init(r, w->p, w->len);
}

static void test_fixed_ints(void **state)
{
    static const uint8_t want[] = { 0x80, 0x80, 0x01, 0x80, 0x00, 0x00, 0x02, 0x80, 0, 0,
                                    0, 0, 0, 0, 0x03, 0xDE, 0xAD, 0xBE, 0xEF, 0x01, 0x00 };
    kc_writer w;
    kc_reader r;

    (void)state;
    kc_writer_init(&w, 0);
    kc_w_i8(&w, INT8_MIN);
    kc_w_i16(&w, (int16_t)0x8001);
    kc_w_i32(&w, (int32_t)0x80000002);
    kc_w_i64(&w, (int64_t)0x8000000000000003ull);
    kc_w_u32(&w, 0xDEADBEEF);
    kc_w_bool(&w, true);
    kc_w_bool(&w, false);
    assert_int_equal(w.len, sizeof(want));
    assert_memory_equal(w.p, want, sizeof(want));

    reader_of(&r, &w);
    assert_int_equal(kc_i8(&r), INT8_MIN);
    assert_int_equal(kc_i16(&r), (int16_t)0x8001);
    assert_int_equal(kc_i32(&r), (int32_t)0x80000002);
    assert_true(kc_i64(&r) == (int64_t)0x8000000000000003ull);
    assert_int_equal(kc_u32(&r), 0xDEADBEEF);
    assert_true(kc_bool(&r));
    assert_false(kc_bool(&r));
    assert_true(kc_ok(&r));
    assert_int_equal(kc_remaining(&r), 0);
    kc_writer_free(&w);
}

static void test_uuid_raw(void **state)
{
    uint8_t id[16], got[16];
    const uint8_t *q;
    kc_writer w;
    kc_reader r;
    int i;

    (void)state;
    for (i = 0; i < 16; i++)
        id[i] = (uint8_t)(i * 17);
    kc_writer_init(&w, 0);
    kc_w_uuid(&w, id);
    kc_w_raw(&w, "xyz", 3);
    reader_of(&r, &w);
    kc_uuid(&r, got);
    assert_memory_equal(got, id, 16);
    q = kc_raw(&r, 3);
    assert_non_null(q);
    assert_memory_equal(q, "xyz", 3);
    assert_null(kc_raw(&r, 1));
    assert_int_equal(r.err, KC_ESHORT);
    kc_uuid(&r, got);
    for (i = 0; i < 16; i++)
        assert_int_equal(got[i], 0);
    kc_writer_free(&w);
}

/* Writes v as an unsigned varint, checks the encoded size and reads it back. */
static void uvarint_rt(uint32_t v, size_t size)
{
    kc_writer w;
    kc_reader r;

    kc_writer_init(&w, 0);
    kc_w_uvarint(&w, v);
    assert_int_equal(w.len, size);
    reader_of(&r, &w);
    assert_int_equal(kc_uvarint(&r), v);
    assert_true(kc_ok(&r));
    assert_int_equal(kc_remaining(&r), 0);
    kc_writer_free(&w);
}

static void varint_rt(int32_t v, size_t size)
{
    kc_writer w;
    kc_reader r;

    kc_writer_init(&w, 0);
    kc_w_varint(&w, v);
    assert_int_equal(w.len, size);
    reader_of(&r, &w);
    assert_int_equal(kc_varint(&r), v);
    assert_true(kc_ok(&r));
    assert_int_equal(kc_remaining(&r), 0);
    kc_writer_free(&w);
}

static void varlong_rt(int64_t v, size_t size)
{
    kc_writer w;
    kc_reader r;

    kc_writer_init(&w, 0);
    kc_w_varlong(&w, v);
    assert_int_equal(w.len, size);
    reader_of(&r, &w);
    assert_true(kc_varlong(&r) == v);
    assert_true(kc_ok(&r));
    assert_int_equal(kc_remaining(&r), 0);
    kc_writer_free(&w);
}

static void test_varint_boundaries(void **state)
{
    (void)state;
    uvarint_rt(0, 1);
    uvarint_rt(1, 1);
    uvarint_rt(127, 1);
    uvarint_rt(128, 2);
    uvarint_rt(16383, 2);
    uvarint_rt(16384, 3);
    uvarint_rt(UINT32_MAX, 5);
    varint_rt(0, 1);
    varint_rt(1, 1);
    varint_rt(-1, 1);
    varint_rt(63, 1);
    varint_rt(64, 2);
    varint_rt(-64, 1);
    varint_rt(-65, 2);
    varint_rt(INT32_MAX, 5);
    varint_rt(INT32_MIN, 5);
    varlong_rt(0, 1);
    varlong_rt(-1, 1);
    varlong_rt(1, 1);
    varlong_rt(INT64_MAX, 10);
    varlong_rt(INT64_MIN, 10);
    varlong_rt((int64_t)1 << 40, 6);  /* zig-zag 2^41: 42 bits */
}

static void test_varint_exact_bytes(void **state)
{
    static const uint8_t m1[] = { 0x01 };          /* zig-zag -1 */
    static const uint8_t p300[] = { 0xAC, 0x02 };  /* unsigned 300 */
    kc_reader r;

    (void)state;
    kc_reader_init(&r, m1, sizeof(m1));
    assert_int_equal(kc_varint(&r), -1);
    kc_reader_init(&r, p300, sizeof(p300));
    assert_int_equal(kc_uvarint(&r), 300);
    kc_reader_init(&r, p300, sizeof(p300));
    assert_true(kc_uvarlong(&r) == 300);
}

static void test_varint_malformed(void **state)
{
    static const uint8_t six[] = { 0x80, 0x80, 0x80, 0x80, 0x80, 0x00 };
    static const uint8_t ovf[] = { 0xFF, 0xFF, 0xFF, 0xFF, 0x10 };  /* 2^32 and up */
    static const uint8_t trunc[] = { 0x80, 0x80 };
    static const uint8_t eleven[] = { 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                                      0x80, 0x80, 0x80, 0x80, 0x00 };
    static const uint8_t lovf[] = { 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02 };
    kc_reader r;

    (void)state;
    kc_reader_init(&r, six, sizeof(six));
    assert_int_equal(kc_uvarint(&r), 0);
    assert_int_equal(r.err, KC_EINVAL);
    kc_reader_init(&r, six, sizeof(six));
    assert_int_equal(kc_varint(&r), 0);
    assert_int_equal(r.err, KC_EINVAL);
    kc_reader_init(&r, ovf, sizeof(ovf));
    kc_uvarint(&r);
    assert_int_equal(r.err, KC_EINVAL);
    kc_reader_init(&r, trunc, sizeof(trunc));
    assert_int_equal(kc_uvarint(&r), 0);
    assert_int_equal(r.err, KC_ESHORT);
    kc_reader_init(&r, trunc, sizeof(trunc));
    kc_varlong(&r);
    assert_int_equal(r.err, KC_ESHORT);
    kc_reader_init(&r, eleven, sizeof(eleven));
    kc_varlong(&r);
    assert_int_equal(r.err, KC_EINVAL);
    kc_reader_init(&r, lovf, sizeof(lovf));
    kc_uvarlong(&r);
    assert_int_equal(r.err, KC_EINVAL);
    kc_reader_init(&r, NULL, 0);
    kc_varint(&r);
    assert_int_equal(r.err, KC_ESHORT);
}

/* Round trip of null, empty and a short string, classic or compact. */
static void strings_rt(bool flex)
{
    kc_writer w;
    kc_reader r;
    kc_str s;

    kc_writer_init(&w, 0);
    kc_w_string(&w, flex, NULL, 0);
    kc_w_string(&w, flex, "", 0);
    kc_w_string(&w, flex, "hello", 5);
    kc_w_cstr(&w, flex, NULL);
    kc_w_cstr(&w, flex, "topic");
    assert_int_equal(w.len, flex ? 1 + 1 + 6 + 1 + 6 : 2 + 2 + 7 + 2 + 7);
    reader_of(&r, &w);
    s = kc_string(&r, flex);
    assert_int_equal(s.len, -1);
    assert_true(kc_str_eq(s, NULL));
    assert_false(kc_str_eq(s, ""));
    s = kc_string(&r, flex);
    assert_int_equal(s.len, 0);
    assert_true(kc_str_eq(s, ""));
    assert_false(kc_str_eq(s, NULL));
    s = kc_string(&r, flex);
    assert_true(kc_str_eq(s, "hello"));
    assert_false(kc_str_eq(s, "hell"));
    assert_false(kc_str_eq(s, "hello!"));
    assert_int_equal(kc_string(&r, flex).len, -1);
    assert_true(kc_str_eq(kc_string(&r, flex), "topic"));
    assert_true(kc_ok(&r));
    assert_int_equal(kc_remaining(&r), 0);
    kc_writer_free(&w);
}

static void test_strings(void **state)
{
    (void)state;
    strings_rt(false);
    strings_rt(true);
}

static void bytes_rt(bool flex)
{
    kc_writer w;
    kc_reader r;
    kc_bytes b;

    kc_writer_init(&w, 0);
    kc_w_bytes(&w, flex, NULL, 0);
    kc_w_bytes(&w, flex, "", 0);
    kc_w_bytes(&w, flex, "\x00\x01\x02", 3);
    assert_int_equal(w.len, flex ? 1 + 1 + 4 : 4 + 4 + 7);
    reader_of(&r, &w);
    assert_int_equal(kc_bytes_field(&r, flex).len, -1);
    b = kc_bytes_field(&r, flex);
    assert_int_equal(b.len, 0);
    assert_non_null(b.p);
    b = kc_bytes_field(&r, flex);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.p, "\x00\x01\x02", 3);
    assert_true(kc_ok(&r));
    assert_int_equal(kc_remaining(&r), 0);
    kc_writer_free(&w);
}

static void test_bytes(void **state)
{
    (void)state;
    bytes_rt(false);
    bytes_rt(true);
}

static void test_negative_lengths(void **state)
{
    static const uint8_t s16[] = { 0xFF, 0xFE, 'a', 'b' };         /* int16 -2 */
    static const uint8_t s32[] = { 0xFF, 0xFF, 0xFF, 0xFE, 'a' };  /* int32 -2 */
    static const uint8_t smin[] = { 0x80, 0x00, 'a' };            /* int16 min */
    kc_reader r;
    kc_str s;

    (void)state;
    kc_reader_init(&r, s16, sizeof(s16));
    s = kc_string(&r, false);
    assert_null(s.p);
    assert_int_equal(r.err, KC_EINVAL);
    kc_reader_init(&r, smin, sizeof(smin));
    kc_string(&r, false);
    assert_int_equal(r.err, KC_EINVAL);
    kc_reader_init(&r, s32, sizeof(s32));
    kc_bytes_field(&r, false);
    assert_int_equal(r.err, KC_EINVAL);
    kc_reader_init(&r, s32, sizeof(s32));
    kc_array(&r, false, 1);
    assert_int_equal(r.err, KC_EINVAL);
}

static void test_length_past_end(void **state)
{
    static const uint8_t c16[] = { 0x00, 0x05, 'a', 'b' };
    static const uint8_t c32[] = { 0x00, 0x00, 0x00, 0x05, 'a' };
    static const uint8_t cmp[] = { 0x06, 'a', 'b' };              /* compact, len 5 */
    static const uint8_t huge[] = { 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 'a' };  /* len 2^32-2 */
    kc_reader r;
    kc_str s;

    (void)state;
    kc_reader_init(&r, c16, sizeof(c16));
    s = kc_string(&r, false);
    assert_null(s.p);
    assert_int_equal(s.len, 0);
    assert_int_equal(r.err, KC_ESHORT);
    kc_reader_init(&r, c32, sizeof(c32));
    assert_null(kc_bytes_field(&r, false).p);
    assert_int_equal(r.err, KC_ESHORT);
    kc_reader_init(&r, cmp, sizeof(cmp));
    kc_string(&r, true);
    assert_int_equal(r.err, KC_ESHORT);
    kc_reader_init(&r, huge, sizeof(huge));
    kc_bytes_field(&r, true);
    assert_int_equal(r.err, KC_EINVAL);
    kc_reader_init(&r, c16, 1);  /* the length itself is cut */
    kc_string(&r, false);
    assert_int_equal(r.err, KC_ESHORT);
}

static void test_arrays(void **state)
{
    kc_writer w;
    kc_reader r;
    int flex;

    (void)state;
    for (flex = 0; flex < 2; flex++) {
        kc_writer_init(&w, 0);
        kc_w_array(&w, flex, -1);
        kc_w_array(&w, flex, 0);
        kc_w_array(&w, flex, 3);
        kc_w_i32(&w, 1);
        kc_w_i32(&w, 2);
        kc_w_i32(&w, 3);
        assert_int_equal(w.len, flex ? 3 + 12 : 12 + 12);
        reader_of(&r, &w);
        assert_int_equal(kc_array(&r, flex, 4), -1);
        assert_int_equal(kc_array(&r, flex, 4), 0);
        assert_int_equal(kc_array(&r, flex, 4), 3);
        assert_int_equal(kc_i32(&r) + kc_i32(&r) + kc_i32(&r), 6);
        assert_true(kc_ok(&r));
        kc_writer_free(&w);
    }
}

static void test_array_count_too_big(void **state)
{
    uint8_t frame[10] = { 0x3B, 0x9A, 0xCA, 0x00 };  /* 1,000,000,000 */
    uint8_t cframe[10] = { 0x81, 0x94, 0xEB, 0xDC, 0x03 };  /* compact 1e9 */
    kc_reader r;

    (void)state;
    kc_reader_init(&r, frame, sizeof(frame));
    assert_int_equal(kc_array(&r, false, 1), 0);
    assert_int_equal(r.err, KC_EINVAL);
    kc_reader_init(&r, cframe, sizeof(cframe));
    assert_int_equal(kc_array(&r, true, 1), 0);
    assert_int_equal(r.err, KC_EINVAL);
    /* 6 bytes remain: 3 elements of 2 fit, 3 of 3 do not, min_elem 0 acts as 1. */
    frame[0] = 0, frame[1] = 0, frame[2] = 0, frame[3] = 3;
    kc_reader_init(&r, frame, sizeof(frame));
    assert_int_equal(kc_array(&r, false, 2), 3);
    kc_reader_init(&r, frame, sizeof(frame));
    kc_array(&r, false, 3);
    assert_int_equal(r.err, KC_EINVAL);
    frame[3] = 7;
    kc_reader_init(&r, frame, sizeof(frame));
    kc_array(&r, false, 0);
    assert_int_equal(r.err, KC_EINVAL);
}

static void test_tags(void **state)
{
    static const uint8_t tags[] = { 0x02, 0x00, 0x02, 'a', 'b', 0x05, 0x00, 0x7F };
    static const uint8_t trunc[] = { 0x01, 0x00, 0x05, 'a' };
    static const uint8_t order[] = { 0x02, 0x03, 0x00, 0x03, 0x00 };
    static const uint8_t many[] = { 0x7F, 0x00, 0x00 };
    kc_reader r;
    kc_writer w;

    (void)state;
    kc_reader_init(&r, tags, sizeof(tags));
    kc_skip_tags(&r, true);
    assert_true(kc_ok(&r));
    assert_int_equal(kc_i8(&r), 0x7F);
    kc_reader_init(&r, tags, sizeof(tags));
    kc_skip_tags(&r, false);  /* not flexible: nothing to skip */
    assert_int_equal(r.off, 0);
    kc_reader_init(&r, trunc, sizeof(trunc));
    kc_skip_tags(&r, true);
    assert_int_equal(r.err, KC_ESHORT);
    kc_reader_init(&r, order, sizeof(order));
    kc_skip_tags(&r, true);
    assert_int_equal(r.err, KC_EINVAL);
    kc_reader_init(&r, many, sizeof(many));
    kc_skip_tags(&r, true);
    assert_int_equal(r.err, KC_EINVAL);

    kc_writer_init(&w, 0);
    kc_w_tags(&w, false);
    assert_int_equal(w.len, 0);
    kc_w_tags(&w, true);
    assert_int_equal(w.len, 1);
    reader_of(&r, &w);
    kc_skip_tags(&r, true);
    assert_true(kc_ok(&r));
    assert_int_equal(kc_remaining(&r), 0);
    kc_writer_free(&w);
}

static void test_sticky_error(void **state)
{
    static const uint8_t buf[] = { 0x00, 0x09, 'a', 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
    uint8_t id[16];
    kc_reader r;

    (void)state;
    kc_reader_init(&r, buf, 3);
    kc_string(&r, false);
    assert_int_equal(r.err, KC_ESHORT);
    r.len = sizeof(buf);  /* even with bytes available, nothing more is read */
    assert_int_equal(kc_i8(&r), 0);
    assert_int_equal(kc_i16(&r), 0);
    assert_int_equal(kc_i32(&r), 0);
    assert_true(kc_i64(&r) == 0);
    assert_int_equal(kc_u32(&r), 0);
    assert_false(kc_bool(&r));
    assert_int_equal(kc_uvarint(&r), 0);
    assert_int_equal(kc_varint(&r), 0);
    assert_true(kc_varlong(&r) == 0);
    assert_true(kc_uvarlong(&r) == 0);
    assert_null(kc_raw(&r, 0));
    kc_uuid(&r, id);
    assert_int_equal(kc_string(&r, true).len, 0);
    assert_int_equal(kc_bytes_field(&r, false).len, 0);
    assert_int_equal(kc_array(&r, false, 1), 0);
    kc_skip_tags(&r, true);
    assert_int_equal(r.err, KC_ESHORT);
    assert_false(kc_ok(&r));
    assert_int_equal(r.off, 2);
}

static void test_writer_ceiling(void **state)
{
    uint8_t big[100];
    kc_writer w;

    (void)state;
    memset(big, 7, sizeof(big));
    kc_writer_init(&w, 64);
    assert_int_equal(w.max, 64);
    kc_w_raw(&w, big, 60);
    kc_w_i32(&w, 1);
    assert_int_equal(w.err, KC_OK);
    assert_int_equal(w.len, 64);
    kc_w_i8(&w, 1);
    assert_int_equal(w.err, KC_ENOMEM);
    assert_int_equal(w.len, 64);
    kc_w_i8(&w, 1);  /* sticky */
    assert_null(kc_w_room(&w, 0));
    assert_int_equal(w.len, 64);
    kc_writer_reset(&w);
    assert_int_equal(w.err, KC_OK);
    assert_int_equal(w.len, 0);
    kc_w_raw(&w, big, 65);
    assert_int_equal(w.err, KC_ENOMEM);
    kc_writer_free(&w);
    kc_writer_free(NULL);

    kc_writer_init(&w, 0);
    assert_int_equal(w.max, KC_WRITER_DEFAULT_MAX);
    assert_null(kc_w_room(&w, KC_WRITER_DEFAULT_MAX + 1));
    assert_int_equal(w.err, KC_ENOMEM);
    kc_writer_free(&w);
}

static void test_writer_growth(void **state)
{
    kc_writer w;
    kc_reader r;
    int32_t i;

    (void)state;
    kc_writer_init(&w, 0);
    for (i = 0; i < 100000; i++)
        kc_w_i32(&w, i);
    assert_int_equal(w.err, KC_OK);
    assert_int_equal(w.len, 400000);
    assert_true(w.cap >= w.len);
    reader_of(&r, &w);
    for (i = 0; i < 100000; i++)
        assert_int_equal(kc_i32(&r), i);
    assert_true(kc_ok(&r));
    kc_writer_free(&w);
}

static void test_writer_invalid(void **state)
{
    char big[40000];
    kc_writer w;

    (void)state;
    memset(big, 'x', sizeof(big));
    kc_writer_init(&w, 0);
    kc_w_string(&w, false, "abc", -2);
    assert_int_equal(w.err, KC_EINVAL);
    kc_writer_reset(&w);
    kc_w_string(&w, false, big, (int32_t)sizeof(big));  /* over int16 */
    assert_int_equal(w.err, KC_EINVAL);
    kc_writer_reset(&w);
    kc_w_string(&w, true, big, (int32_t)sizeof(big));   /* compact has no such limit */
    assert_int_equal(w.err, KC_OK);
    kc_writer_reset(&w);
    kc_w_array(&w, false, -5);
    assert_int_equal(w.err, KC_EINVAL);
    kc_writer_reset(&w);
    kc_w_bytes(&w, true, "a", -3);
    assert_int_equal(w.err, KC_EINVAL);
    kc_writer_free(&w);
}

static void test_reserve_patch(void **state)
{
    kc_writer w;
    kc_reader r;
    size_t at32, at16;

    (void)state;
    kc_writer_init(&w, 0);
    kc_w_i8(&w, 9);
    at32 = kc_w_reserve(&w, 4);
    at16 = kc_w_reserve(&w, 2);
    assert_int_equal(at32, 1);
    assert_int_equal(at16, 5);
    kc_w_raw(&w, "abc", 3);
    kc_w_patch_i32(&w, at32, (int32_t)(w.len - at32 - 4));
    kc_w_patch_i16(&w, at16, -2);
    kc_w_patch_i32(&w, w.len - 2, 0x7FFFFFFF);  /* past the end: ignored */
    kc_w_patch_i16(&w, w.len, 1);
    reader_of(&r, &w);
    assert_int_equal(kc_i8(&r), 9);
    assert_int_equal(kc_i32(&r), 5);
    assert_int_equal(kc_i16(&r), -2);
    assert_memory_equal(kc_raw(&r, 3), "abc", 3);
    assert_int_equal(kc_remaining(&r), 0);
    kc_writer_free(&w);
}

static void test_str_dup(void **state)
{
    kc_str s = { "hello world", 5 };
    kc_str n = { NULL, -1 };
    kc_str e = { "", 0 };
    char *d;

    (void)state;
    d = kc_str_dup(s);
    assert_string_equal(d, "hello");
    free(d);
    assert_null(kc_str_dup(n));
    d = kc_str_dup(e);
    assert_string_equal(d, "");
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_ints),
        cmocka_unit_test(test_uuid_raw),
        cmocka_unit_test(test_varint_boundaries),
        cmocka_unit_test(test_varint_exact_bytes),
        cmocka_unit_test(test_varint_malformed),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_bytes),
        cmocka_unit_test(test_negative_lengths),
        cmocka_unit_test(test_length_past_end),
        cmocka_unit_test(test_arrays),
        cmocka_unit_test(test_array_count_too_big),
        cmocka_unit_test(test_tags),
        cmocka_unit_test(test_sticky_error),
        cmocka_unit_test(test_writer_ceiling),
        cmocka_unit_test(test_writer_growth),
        cmocka_unit_test(test_writer_invalid),
        cmocka_unit_test(test_reserve_patch),
        cmocka_unit_test(test_str_dup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
