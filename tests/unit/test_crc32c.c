/* test_crc32c.c: CRC-32C known vectors (RFC 3720 B.4), incremental use, and agreement
 * between the SSE4.2 path and the table path. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "crc32c.h"

static void test_check_value(void **state)
{
    (void)state;
    assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(crc32c_sw(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(crc32c(0, "", 0), 0);
    assert_int_equal(crc32c(0x12345678, NULL, 0), 0x12345678);
}

static void check_both(const uint8_t *p, size_t n, uint32_t want)
{
    assert_int_equal(crc32c(0, p, n), want);
    assert_int_equal(crc32c_sw(0, p, n), want);
}

static void test_iscsi_vectors(void **state)
{
    uint8_t b[32];
    int i;

    (void)state;
    memset(b, 0x00, sizeof(b));
    check_both(b, 32, 0x8A9136AAu);
    memset(b, 0xFF, sizeof(b));
    check_both(b, 32, 0x62A8AB43u);
    for (i = 0; i < 32; i++)
        b[i] = (uint8_t)i;
    check_both(b, 32, 0x46DD794Eu);
    for (i = 0; i < 32; i++)
        b[i] = (uint8_t)(31 - i);
    check_both(b, 32, 0x113FDB5Cu);
}

static uint8_t *random_buf(size_t n, unsigned seed)
{
    uint8_t *b = malloc(n);
    size_t i;

    assert_non_null(b);
    srand(seed);
    for (i = 0; i < n; i++)
        b[i] = (uint8_t)rand();
    return b;
}

static void check_hw_sw(const uint8_t *p, size_t len)
{
    assert_int_equal(crc32c(0, p, len), crc32c_sw(0, p, len));
    assert_int_equal(crc32c(0xDEADBEEF, p, len), crc32c_sw(0xDEADBEEF, p, len));
}

/* Lengths around every loop boundary of the hardware path (8, 3 * 256, 3 * 8192) and
 * at every misalignment. */
static void test_hw_equals_sw(void **state)
{
    static const size_t edges[] = { 768, 1536, 24576, 24576 + 768, 49152 };
    const size_t n = 49152 + 64;
    uint8_t *b = random_buf(n, 1);
    size_t len, off, e;

    (void)state;
    for (off = 0; off < 9; off++) {
        for (len = 0; len <= 80; len++)
            check_hw_sw(b + off, len);
        for (e = 0; e < sizeof(edges) / sizeof(edges[0]); e++)
            for (len = edges[e] - 9; len <= edges[e] + 9; len++)
                check_hw_sw(b + off, len);
        for (len = 81; len + off <= n; len += 997)
            check_hw_sw(b + off, len);
    }
    free(b);
}

static void test_incremental(void **state)
{
    const size_t n = 100000;
    uint8_t *b = random_buf(n, 2);
    uint32_t whole = crc32c(0, b, n), c;
    int round;

    (void)state;
    assert_int_equal(whole, crc32c_sw(0, b, n));
    srand(3);
    for (round = 0; round < 200; round++) {
        size_t a = (size_t)rand() % n, z = (size_t)rand() % n, t;
        if (a > z) {
            t = a;
            a = z;
            z = t;
        }
        c = crc32c(0, b, a);
        c = crc32c_sw(c, b + a, z - a);
        c = crc32c(c, b + z, n - z);
        assert_int_equal(c, whole);
    }
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_value),
        cmocka_unit_test(test_iscsi_vectors),
        cmocka_unit_test(test_hw_equals_sw),
        cmocka_unit_test(test_incremental),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
