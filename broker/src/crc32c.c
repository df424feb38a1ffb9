/* crc32c.c: CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), run over every
 * produced batch. On x86_64 with SSE4.2 it runs three crc32 instruction streams side by
 * side and joins them with precomputed "append n zero bytes" operators; elsewhere it
 * uses slicing-by-8 tables. All tables are built once, on first use. */
#include "crc32c.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

#define CRC32C_POLY 0x82F63B78u
#define CRC32C_LONG 8192   /* bytes per stream in the big three-way loop */
#define CRC32C_SHORT 256   /* bytes per stream in the small one */

static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;
static uint32_t crc32c_table[8][256];     /* slicing-by-8 */
static uint32_t crc32c_long_op[4][256];   /* shifts a crc over CRC32C_LONG zero bytes */
static uint32_t crc32c_short_op[4][256];  /* ... over CRC32C_SHORT zero bytes */
static int crc32c_hw;

/* ------------------------------------------------------------ table path */

static void crc32c_init_slices(void)
{
    uint32_t n, k, c;

    for (n = 0; n < 256; n++) {
        c = n;
        for (k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        crc32c_table[0][n] = c;
    }
    for (n = 0; n < 256; n++) {
        c = crc32c_table[0][n];
        for (k = 1; k < 8; k++) {
            c = crc32c_table[0][c & 0xff] ^ (c >> 8);
            crc32c_table[k][n] = c;
        }
    }
}

static uint32_t crc32c_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

/* Slicing-by-8 over the raw (non-inverted) register. */
static uint32_t crc32c_slice8(uint32_t c, const uint8_t *p, size_t n)
{
    while (n >= 8) {
        uint32_t lo = crc32c_le32(p) ^ c, hi = crc32c_le32(p + 4);
        c = crc32c_table[7][lo & 0xff] ^ crc32c_table[6][(lo >> 8) & 0xff] ^
            crc32c_table[5][(lo >> 16) & 0xff] ^ crc32c_table[4][lo >> 24] ^
            crc32c_table[3][hi & 0xff] ^ crc32c_table[2][(hi >> 8) & 0xff] ^
            crc32c_table[1][(hi >> 16) & 0xff] ^ crc32c_table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--)
        c = crc32c_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    return c;
}

/* ------------------------------------------------- zero-shift operators */

/* Multiplies the GF(2) 32x32 matrix mat by the vector vec. */
static uint32_t crc32c_gf2_times(const uint32_t *mat, uint32_t vec)
{
    uint32_t sum = 0;

    for (; vec; vec >>= 1, mat++)
        if (vec & 1)
            sum ^= *mat;
    return sum;
}

static void crc32c_gf2_square(uint32_t *sq, const uint32_t *mat)
{
    int n;

    for (n = 0; n < 32; n++)
        sq[n] = crc32c_gf2_times(mat, mat[n]);
}

/* Builds, in op, the operator that feeds len zero bytes (len a power of two >= 1)
 * through the register: start from one zero bit and square up to 8 * len bits. */
static void crc32c_zeros_op(uint32_t op[32], size_t len)
{
    uint32_t a[32], b[32], row = 1;
    size_t bits;
    int n;

    a[0] = CRC32C_POLY;
    for (n = 1; n < 32; n++, row <<= 1)
        a[n] = row;
    for (bits = 1; bits < 8 * len; bits *= 2) {
        crc32c_gf2_square(b, a);
        memcpy(a, b, sizeof(a));
    }
    memcpy(op, a, sizeof(a));
}

static void crc32c_zeros(uint32_t tab[4][256], size_t len)
{
    uint32_t op[32], n;

    crc32c_zeros_op(op, len);
    for (n = 0; n < 256; n++) {
        tab[0][n] = crc32c_gf2_times(op, n);
        tab[1][n] = crc32c_gf2_times(op, n << 8);
        tab[2][n] = crc32c_gf2_times(op, n << 16);
        tab[3][n] = crc32c_gf2_times(op, n << 24);
    }
}

static void crc32c_init(void)
{
    crc32c_init_slices();
    crc32c_zeros(crc32c_long_op, CRC32C_LONG);
    crc32c_zeros(crc32c_short_op, CRC32C_SHORT);
#if defined(__x86_64__)
    __builtin_cpu_init();
    crc32c_hw = __builtin_cpu_supports("sse4.2");
#endif
}

uint32_t crc32c_sw(uint32_t crc, const void *p, size_t n)
{
    pthread_once(&crc32c_once, crc32c_init);
    return ~crc32c_slice8(~crc, p, n);
}

/* ---------------------------------------------------------- SSE4.2 path */

#if defined(__x86_64__)

static uint32_t crc32c_shift(uint32_t tab[4][256], uint32_t c)
{
    return tab[0][c & 0xff] ^ tab[1][(c >> 8) & 0xff] ^ tab[2][(c >> 16) & 0xff] ^
           tab[3][c >> 24];
}

static inline uint64_t crc32c_ld64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Runs three streams of len bytes each at p, p + len, p + 2 * len and joins them into
 * c0, using tab to move a crc over len zero bytes. */
__attribute__((target("sse4.2")))
static uint64_t crc32c_hw3(uint64_t c0, const uint8_t *p, size_t len, uint32_t tab[4][256])
{
    uint64_t c1 = 0, c2 = 0;
    const uint8_t *end = p + len;

    for (; p < end; p += 8) {
        c0 = _mm_crc32_u64(c0, crc32c_ld64(p));
        c1 = _mm_crc32_u64(c1, crc32c_ld64(p + len));
        c2 = _mm_crc32_u64(c2, crc32c_ld64(p + 2 * len));
    }
    c0 = crc32c_shift(tab, (uint32_t)c0) ^ c1;
    return crc32c_shift(tab, (uint32_t)c0) ^ c2;
}

__attribute__((target("sse4.2")))
static uint32_t crc32c_hw_run(uint32_t crc, const uint8_t *p, size_t n)
{
    uint64_t c = crc;

    for (; n && ((uintptr_t)p & 7); n--)
        c = _mm_crc32_u8((uint32_t)c, *p++);
    for (; n >= 3 * CRC32C_LONG; n -= 3 * CRC32C_LONG, p += 3 * CRC32C_LONG)
        c = crc32c_hw3(c, p, CRC32C_LONG, crc32c_long_op);
    for (; n >= 3 * CRC32C_SHORT; n -= 3 * CRC32C_SHORT, p += 3 * CRC32C_SHORT)
        c = crc32c_hw3(c, p, CRC32C_SHORT, crc32c_short_op);
    for (; n >= 8; n -= 8, p += 8)
        c = _mm_crc32_u64(c, crc32c_ld64(p));
    for (; n; n--)
        c = _mm_crc32_u8((uint32_t)c, *p++);
    return (uint32_t)c;
}

#endif

uint32_t crc32c(uint32_t crc, const void *p, size_t n)
{
    pthread_once(&crc32c_once, crc32c_init);
#if defined(__x86_64__)
    if (crc32c_hw)
        return ~crc32c_hw_run(~crc, p, n);
#endif
    return ~crc32c_slice8(~crc, p, n);
}
