/* test_dataset.c: the pure parts of dataset topics: the batch encoder (checked by the
 * broker's own validator), the offset scheme, ustar header parsing (good, malformed and
 * huge headers) and the line splitter. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "batch.h"
#include "crc32c.h"
#include "dataset_format.h"
#include "kcodec.h"

/* ---- batch encoder ---- */

static void test_encoder_roundtrip(void **state)
{
    kc_writer w;
    kc_writer_init(&w, 0);
    struct batch_enc e;
    struct batch_piece pc[2] = {{"hello ", 6}, {"world", 5}};
    struct batch_header_kv h[2] = {{"size", 4, "11", 2}, {"nullv", 5, NULL, 0}};
    struct batch_record r1 = {.key = "k1", .key_len = 2, .value = pc, .nvalue = 2,
                              .headers = h, .nheaders = 2, .timestamp = 1000};
    struct batch_record r2 = {.key = NULL, .null_value = true, .timestamp = 1005};
    batch_enc_begin(&e, &w, (int64_t)7 << DSF_REC_BITS, 1000);
    assert_int_equal(batch_enc_add(&e, &r1, 0), 0);
    assert_int_equal(batch_enc_add(&e, &r2, 1), 0);
    assert_int_equal(batch_enc_add(&e, &r2, 1), -1); /* deltas must increase */
    int64_t n = batch_enc_end(&e, -1);
    assert_int_equal(n, (int64_t)w.len);
    assert_int_equal(batch_record_size(&r1, 0, 1000) + batch_record_size(&r2, 1, 1000) +
                         BATCH_HEADER_LEN,
                     n);
    struct batch_hdr hd;
    assert_int_equal(batch_validate(w.p, w.len, &hd), BATCH_OK);
    assert_int_equal(hd.count, 2);
    assert_int_equal(hd.base_offset, (int64_t)7 << DSF_REC_BITS);
    assert_int_equal(hd.max_timestamp, 1005);
    assert_int_equal(hd.producer_id, -1);
    /* the CRC covers attributes onwards: damage a value byte and it fails */
    w.p[w.len - 5] ^= 1;
    assert_int_equal(batch_validate(w.p, w.len, &hd), BATCH_ECRC);
    kc_writer_free(&w);
}

static void test_encoder_claims_gap(void **state)
{
    kc_writer w;
    kc_writer_init(&w, 0);
    struct batch_enc e;
    struct batch_record r = {.key = "k", .key_len = 1, .null_value = true};
    batch_enc_begin(&e, &w, 0, 0);
    assert_int_equal(batch_enc_end(&e, -1), -1); /* no records */
    w.len = 0;
    batch_enc_begin(&e, &w, 5, 0);
    assert_int_equal(batch_enc_add(&e, &r, 0), 0);
    assert_true(batch_enc_end(&e, (int32_t)(DSF_REC_MAX - 1 - 5)) > 0);
    struct batch_hdr hd;
    assert_int_equal(batch_parse_hdr(w.p, w.len, &hd), BATCH_OK);
    assert_int_equal(hd.last_offset_delta, DSF_REC_MAX - 1 - 5);
    assert_int_equal(hd.count, 1);
    /* the CRC is still right (validate rejects count != delta + 1, so check it here) */
    uint32_t crc = crc32c(0, w.p + BATCH_OFF_ATTRIBUTES, w.len - BATCH_OFF_ATTRIBUTES);
    assert_int_equal(crc, hd.crc);
    kc_writer_free(&w);
}

/* ---- offsets ---- */

static void test_offsets(void **state)
{
    int32_t P = 3;
    for (uint64_t i = 0; i < 100; i++) {
        int32_t p = dsf_partition(i, P);
        uint64_t j = dsf_local(i, P);
        assert_int_equal(dsf_global(j, p, P), i);
        int64_t off = dsf_offset((int64_t)j, 5);
        assert_int_equal(dsf_obj_of(off), (int64_t)j);
        assert_int_equal(dsf_rec_of(off), 5);
    }
    /* 10 objects over 3 partitions: 4, 3, 3 */
    assert_int_equal(dsf_part_objects(10, 0, 3), 4);
    assert_int_equal(dsf_part_objects(10, 1, 3), 3);
    assert_int_equal(dsf_part_objects(10, 2, 3), 3);
    assert_int_equal(dsf_part_objects(1, 2, 3), 0);
    assert_int_equal(dsf_part_objects(0, 0, 3), 0);
    assert_int_equal(dsf_chunks(0, 10), 1);
    assert_int_equal(dsf_chunks(10, 10), 1);
    assert_int_equal(dsf_chunks(11, 10), 2);
    assert_int_equal(dsf_format_parse("tar"), DSF_TAR);
    assert_int_equal(dsf_format_parse("parquet"), -1);
}

/* ---- tar ---- */

static void tar_checksum(uint8_t h[512])
{
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    h[155] = ' ';
}

static void tar_header(uint8_t h[512], const char *name, const char *size_octal, char type)
{
    memset(h, 0, 512);
    snprintf((char *)h, 100, "%s", name);
    memcpy(h + 100, "0000644", 7);
    memcpy(h + 124, size_octal, strlen(size_octal));
    h[156] = (uint8_t)type;
    memcpy(h + 257, "ustar\0" "00", 8);
    tar_checksum(h);
}

static void test_tar_headers(void **state)
{
    uint8_t h[512];
    struct dsf_tar_hdr th;
    tar_header(h, "a/b.jpg", "00000001750", '0');
    assert_int_equal(dsf_tar_parse(h, 1 << 20, &th), DSF_TAR_FILE);
    assert_string_equal(th.name, "a/b.jpg");
    assert_int_equal(th.size, 1000);
    assert_int_equal(dsf_tar_span(1000), 512 + 1024);
    /* ustar prefix */
    memcpy(h + 345, "dir/sub", 7);
    tar_checksum(h);
    assert_int_equal(dsf_tar_parse(h, 1 << 20, &th), DSF_TAR_FILE);
    assert_string_equal(th.name, "dir/sub/a/b.jpg");
    /* bad checksum */
    h[0] ^= 1;
    assert_int_equal(dsf_tar_parse(h, 1 << 20, &th), DSF_TAR_EBAD);
    /* a size past what the object holds, and a huge size */
    tar_header(h, "x", "77777777777", '0');
    assert_int_equal(dsf_tar_parse(h, 1 << 20, &th), DSF_TAR_EBAD);
    /* base-256 sizes: a plausible one, then more than 63 bits */
    tar_header(h, "x", "", '0');
    h[124] = 0x80;
    h[135] = 0x10;
    tar_checksum(h);
    assert_int_equal(dsf_tar_parse(h, 1 << 20, &th), DSF_TAR_FILE);
    assert_int_equal(th.size, 16);
    memset(h + 124, 0xff, 12);
    tar_checksum(h);
    assert_int_equal(dsf_tar_parse(h, INT64_MAX, &th), DSF_TAR_EBAD);
    /* garbage in the size field */
    tar_header(h, "x", "12x4", '0');
    assert_int_equal(dsf_tar_parse(h, 1 << 20, &th), DSF_TAR_EBAD);
    /* kinds */
    tar_header(h, "d/", "0", '5');
    assert_int_equal(dsf_tar_parse(h, 1 << 20, &th), DSF_TAR_SKIP);
    tar_header(h, "././@LongLink", "00000000010", 'L');
    assert_int_equal(dsf_tar_parse(h, 1 << 20, &th), DSF_TAR_LONGNAME);
    tar_header(h, "pax", "00000000010", 'x');
    assert_int_equal(dsf_tar_parse(h, 1 << 20, &th), DSF_TAR_PAX);
    memset(h, 0, 512);
    assert_int_equal(dsf_tar_parse(h, 1 << 20, &th), DSF_TAR_END);
    /* a name field with no NUL stays within 100 bytes */
    tar_header(h, "", "0", '0');
    memset(h, 'n', 100);
    tar_checksum(h);
    assert_int_equal(dsf_tar_parse(h, 1 << 20, &th), DSF_TAR_FILE);
    assert_int_equal(strlen(th.name), 100);
}

static void test_pax_path(void **state)
{
    char out[64];
    const char ok[] = "20 mtime=1234567890\n16 path=a/b.txt\n";
    assert_int_equal(dsf_pax_path((const uint8_t *)ok, sizeof ok - 1, out, sizeof out), 7);
    assert_string_equal(out, "a/b.txt");
    const char bad[] = "999 path=a\n";
    assert_int_equal(dsf_pax_path((const uint8_t *)bad, sizeof bad - 1, out, sizeof out), -1);
    const char zero[] = "0 path=a\n";
    assert_int_equal(dsf_pax_path((const uint8_t *)zero, sizeof zero - 1, out, sizeof out), -1);
    const char none[] = "12 uid=1000\n";
    assert_int_equal(dsf_pax_path((const uint8_t *)none, sizeof none - 1, out, sizeof out), -1);
}

/* ---- lines ---- */

struct lines_seen {
    uint64_t off[16], len[16];
    int n;
};

static int on_line(void *arg, uint64_t off, uint64_t len)
{
    struct lines_seen *s = arg;
    s->off[s->n] = off;
    s->len[s->n] = len;
    return ++s->n >= 16;
}

static void test_lines_split_across_blocks(void **state)
{
    const char text[] = "ab\n\ncdef\r\nlast";
    size_t n = sizeof text - 1;
    for (size_t cut = 1; cut < n; cut++) { /* every place a block boundary can fall */
        struct dsf_lines s = {0};
        struct lines_seen seen = {0};
        dsf_lines_feed(&s, (const uint8_t *)text, cut, 0, on_line, &seen);
        dsf_lines_feed(&s, (const uint8_t *)text + cut, n - cut, cut, on_line, &seen);
        dsf_lines_finish(&s, n, on_line, &seen);
        assert_int_equal(seen.n, 4);
        assert_int_equal(seen.off[0], 0);
        assert_int_equal(seen.len[0], 2);
        assert_int_equal(seen.len[1], 0);
        assert_int_equal(seen.off[2], 4);
        assert_int_equal(seen.len[2], 5); /* "cdef\r": lines are served byte for byte */
        assert_int_equal(seen.off[3], 10);
        assert_int_equal(seen.len[3], 4);
    }
    /* a trailing newline makes no empty last line */
    struct dsf_lines s = {0};
    struct lines_seen seen = {0};
    dsf_lines_feed(&s, (const uint8_t *)"x\n", 2, 0, on_line, &seen);
    dsf_lines_finish(&s, 2, on_line, &seen);
    assert_int_equal(seen.n, 1);
    /* the callback can stop the scan */
    struct dsf_lines s2 = {0};
    struct lines_seen many = {0};
    char buf[64];
    memset(buf, '\n', sizeof buf);
    assert_int_not_equal(dsf_lines_feed(&s2, (const uint8_t *)buf, sizeof buf, 0, on_line, &many), 0);
    assert_int_equal(many.n, 16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encoder_roundtrip),
        cmocka_unit_test(test_encoder_claims_gap),
        cmocka_unit_test(test_offsets),
        cmocka_unit_test(test_tar_headers),
        cmocka_unit_test(test_pax_path),
        cmocka_unit_test(test_lines_split_across_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
