/* kcodec.c: Kafka wire primitives. Readers never touch a byte past len and stop at the
 * first error (every later read returns 0); writers grow a heap buffer up to a ceiling.
 * See kcodec.h for the contract. */
#include "kcodec.h"

#include <stdlib.h>
#include <string.h>

/* Stands in for a NULL frame so that empty views still point somewhere valid. */
static const uint8_t kc_empty[1];

/* ---------------------------------------------------------------- reader */

void kc_reader_init(kc_reader *r, const void *p, size_t len)
{
    r->p = p ? p : kc_empty;
    r->len = p ? len : 0;
    r->off = 0;
    r->err = KC_OK;
}

/* Records the first error only; later ones are consequences of it. */
static void kc_fail(kc_reader *r, int err)
{
    if (r->err == KC_OK)
        r->err = err;
}

const uint8_t *kc_raw(kc_reader *r, size_t n)
{
    const uint8_t *q;

    if (r->err != KC_OK)
        return NULL;
    if (n > r->len - r->off) {
        kc_fail(r, KC_ESHORT);
        return NULL;
    }
    q = r->p + r->off;
    r->off += n;
    return q;
}

int8_t kc_i8(kc_reader *r)
{
    const uint8_t *q = kc_raw(r, 1);
    return q ? (int8_t)q[0] : 0;
}

int16_t kc_i16(kc_reader *r)
{
    const uint8_t *q = kc_raw(r, 2);
    return q ? (int16_t)kc_get_be16(q) : 0;
}

int32_t kc_i32(kc_reader *r)
{
    return (int32_t)kc_u32(r);
}

uint32_t kc_u32(kc_reader *r)
{
    const uint8_t *q = kc_raw(r, 4);
    return q ? kc_get_be32(q) : 0;
}

int64_t kc_i64(kc_reader *r)
{
    const uint8_t *q = kc_raw(r, 8);
    return q ? (int64_t)kc_get_be64(q) : 0;
}

bool kc_bool(kc_reader *r)
{
    return kc_i8(r) != 0;
}

/* Reads an unsigned LEB128 of at most maxb bytes whose last byte may carry at most
 * lastmax. Longer encodings and values that overflow 64 bits are KC_EINVAL; a varint
 * cut off by the end of the frame is KC_ESHORT. */
static uint64_t kc_leb128(kc_reader *r, unsigned maxb, uint8_t lastmax)
{
    uint64_t v = 0;
    unsigned i;

    if (r->err != KC_OK)
        return 0;
    for (i = 0; i < maxb; i++) {
        const uint8_t *q = kc_raw(r, 1);
        if (!q)
            return 0;
        if (i == maxb - 1 && *q > lastmax)
            break;
        v |= (uint64_t)(*q & 0x7f) << (7 * i);
        if (!(*q & 0x80))
            return v;
    }
    kc_fail(r, KC_EINVAL);
    return 0;
}

uint32_t kc_uvarint(kc_reader *r)
{
    return (uint32_t)kc_leb128(r, 5, 0x0f);
}

uint64_t kc_uvarlong(kc_reader *r)
{
    return kc_leb128(r, 10, 0x01);
}

int32_t kc_varint(kc_reader *r)
{
    uint32_t u = kc_uvarint(r);
    return (int32_t)((u >> 1) ^ (0u - (u & 1)));
}

int64_t kc_varlong(kc_reader *r)
{
    uint64_t u = kc_uvarlong(r);
    return (int64_t)((u >> 1) ^ (0ull - (u & 1)));
}

void kc_uuid(kc_reader *r, uint8_t out[16])
{
    const uint8_t *q = kc_raw(r, 16);
    if (q)
        memcpy(out, q, 16);
    else
        memset(out, 0, 16);
}

/* Reads a length prefix: int16/int32 when classic, uvarint N+1 when flexible. Returns
 * the length, -1 for null, or 0 with err set. Lengths below -1 (or above INT32_MAX
 * when compact) are KC_EINVAL. */
static int32_t kc_len(kc_reader *r, bool flexible, bool wide)
{
    int64_t n;

    if (flexible)
        n = (int64_t)kc_uvarint(r) - 1;
    else
        n = wide ? kc_i32(r) : kc_i16(r);
    if (r->err != KC_OK)
        return 0;
    if (n < -1 || n > INT32_MAX) {
        kc_fail(r, KC_EINVAL);
        return 0;
    }
    return (int32_t)n;
}

kc_str kc_string(kc_reader *r, bool flexible)
{
    kc_str s = { NULL, 0 };
    int32_t n = kc_len(r, flexible, false);

    if (r->err != KC_OK)
        return s;
    if (n == -1) {
        s.len = -1;
        return s;
    }
    s.p = (const char *)kc_raw(r, (size_t)n);
    s.len = s.p ? n : 0;
    return s;
}

kc_bytes kc_bytes_field(kc_reader *r, bool flexible)
{
    kc_bytes b = { NULL, 0 };
    int32_t n = kc_len(r, flexible, true);

    if (r->err != KC_OK)
        return b;
    if (n == -1) {
        b.len = -1;
        return b;
    }
    b.p = kc_raw(r, (size_t)n);
    b.len = b.p ? n : 0;
    return b;
}

/* A min_elem of 0 is treated as 1: no Kafka array element is zero bytes long, and a
 * caller that forgot to say must not get an unbounded count. */
int32_t kc_array(kc_reader *r, bool flexible, size_t min_elem)
{
    int32_t n = kc_len(r, flexible, true);

    if (r->err != KC_OK || n <= 0)
        return n;
    if (min_elem == 0)
        min_elem = 1;
    if ((size_t)n > kc_remaining(r) / min_elem) {
        kc_fail(r, KC_EINVAL);
        return 0;
    }
    return n;
}

/* Skips one tagged field; returns its tag. Tags must strictly increase (prev is the
 * previous tag, or -1 before the first). */
static int64_t kc_skip_tag(kc_reader *r, int64_t prev)
{
    uint32_t tag = kc_uvarint(r);
    uint32_t size = kc_uvarint(r);

    if (r->err != KC_OK)
        return prev;
    if ((int64_t)tag <= prev) {
        kc_fail(r, KC_EINVAL);
        return prev;
    }
    kc_raw(r, size);
    return tag;
}

void kc_skip_tags(kc_reader *r, bool flexible)
{
    uint32_t n, i;
    int64_t prev = -1;

    if (!flexible)
        return;
    n = kc_uvarint(r);
    if (r->err != KC_OK)
        return;
    if (n > kc_remaining(r) / 2) {  /* each field is at least tag + size */
        kc_fail(r, KC_EINVAL);
        return;
    }
    for (i = 0; i < n && r->err == KC_OK; i++)
        prev = kc_skip_tag(r, prev);
}

/* ---------------------------------------------------------------- writer */

void kc_writer_init(kc_writer *w, size_t max)
{
    w->p = NULL;
    w->len = 0;
    w->cap = 0;
    w->max = max ? max : KC_WRITER_DEFAULT_MAX;
    w->err = KC_OK;
}

void kc_writer_free(kc_writer *w)
{
    if (!w)
        return;
    free(w->p);
    w->p = NULL;
    w->len = 0;
    w->cap = 0;
    w->err = KC_OK;
}

void kc_writer_reset(kc_writer *w)
{
    w->len = 0;
    w->err = KC_OK;
}

/* Grows the buffer to hold at least need bytes, doubling, never past max. */
static int kc_w_grow(kc_writer *w, size_t need)
{
    size_t cap = w->cap ? w->cap : 256;
    uint8_t *np;

    if (cap > w->max)
        cap = w->max;

    while (cap < need && cap < w->max)
        cap = cap > w->max / 2 ? w->max : cap * 2;
    if (cap < need)
        return KC_ENOMEM;
    np = realloc(w->p, cap);
    if (!np)
        return KC_ENOMEM;
    w->p = np;
    w->cap = cap;
    return KC_OK;
}

uint8_t *kc_w_room(kc_writer *w, size_t n)
{
    if (w->err != KC_OK)
        return NULL;
    if (n > w->max - w->len) {
        w->err = KC_ENOMEM;
        return NULL;
    }
    if (n > w->cap - w->len || !w->p) {
        int rc = kc_w_grow(w, w->len + n);
        if (rc != KC_OK) {
            w->err = rc;
            return NULL;
        }
    }
    return w->p + w->len;
}

void kc_w_raw(kc_writer *w, const void *p, size_t n)
{
    uint8_t *q = kc_w_room(w, n);

    if (!q)
        return;
    if (n)
        memcpy(q, p, n);
    kc_w_commit(w, n);
}

void kc_w_i8(kc_writer *w, int8_t v)
{
    uint8_t b = (uint8_t)v;
    kc_w_raw(w, &b, 1);
}

void kc_w_i16(kc_writer *w, int16_t v)
{
    uint8_t b[2] = { (uint8_t)((uint16_t)v >> 8), (uint8_t)v };
    kc_w_raw(w, b, 2);
}

void kc_w_u32(kc_writer *w, uint32_t v)
{
    uint8_t b[4];
    kc_put_be32(b, v);
    kc_w_raw(w, b, 4);
}

void kc_w_i32(kc_writer *w, int32_t v)
{
    kc_w_u32(w, (uint32_t)v);
}

void kc_w_i64(kc_writer *w, int64_t v)
{
    uint8_t b[8];
    kc_put_be64(b, (uint64_t)v);
    kc_w_raw(w, b, 8);
}

void kc_w_bool(kc_writer *w, bool v)
{
    kc_w_i8(w, v ? 1 : 0);
}

/* Unsigned LEB128 of a 64-bit value: at most 10 bytes. */
static void kc_w_leb128(kc_writer *w, uint64_t v)
{
    uint8_t b[10];
    size_t n = 0;

    while (v >= 0x80) {
        b[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    b[n++] = (uint8_t)v;
    kc_w_raw(w, b, n);
}

void kc_w_uvarint(kc_writer *w, uint32_t v)
{
    kc_w_leb128(w, v);
}

void kc_w_varint(kc_writer *w, int32_t v)
{
    uint32_t u = (uint32_t)v;
    kc_w_leb128(w, (u << 1) ^ (0u - (u >> 31)));
}

void kc_w_varlong(kc_writer *w, int64_t v)
{
    uint64_t u = (uint64_t)v;
    kc_w_leb128(w, (u << 1) ^ (0ull - (u >> 63)));
}

void kc_w_uuid(kc_writer *w, const uint8_t id[16])
{
    kc_w_raw(w, id, 16);
}

/* Writes a length prefix (see kc_len); -1 is null. Classic narrow lengths must fit
 * int16. */
static void kc_w_len(kc_writer *w, bool flexible, bool wide, int32_t n)
{
    if (n < -1 || (!flexible && !wide && n > INT16_MAX)) {
        if (w->err == KC_OK)
            w->err = KC_EINVAL;
        return;
    }
    if (flexible)
        kc_w_uvarint(w, (uint32_t)n + 1);
    else if (wide)
        kc_w_i32(w, n);
    else
        kc_w_i16(w, (int16_t)n);
}

void kc_w_string(kc_writer *w, bool flexible, const char *p, int32_t len)
{
    if (!p) {
        kc_w_len(w, flexible, false, -1);
        return;
    }
    if (len < 0) {
        kc_w_len(w, flexible, false, -2);  /* sets KC_EINVAL */
        return;
    }
    kc_w_len(w, flexible, false, len);
    kc_w_raw(w, p, (size_t)len);
}

void kc_w_cstr(kc_writer *w, bool flexible, const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n > INT32_MAX) {
        if (w->err == KC_OK)
            w->err = KC_EINVAL;
        return;
    }
    kc_w_string(w, flexible, s, (int32_t)n);
}

void kc_w_bytes(kc_writer *w, bool flexible, const void *p, int32_t len)
{
    if (!p) {
        kc_w_len(w, flexible, true, -1);
        return;
    }
    if (len < 0) {
        kc_w_len(w, flexible, true, -2);  /* sets KC_EINVAL */
        return;
    }
    kc_w_len(w, flexible, true, len);
    kc_w_raw(w, p, (size_t)len);
}

void kc_w_array(kc_writer *w, bool flexible, int32_t count)
{
    kc_w_len(w, flexible, true, count);
}

void kc_w_tags(kc_writer *w, bool flexible)
{
    if (flexible)
        kc_w_uvarint(w, 0);
}

/* Returns the offset of n zeroed bytes appended for a later patch. On error the
 * writer's err is set and patches become no-ops. */
size_t kc_w_reserve(kc_writer *w, size_t n)
{
    size_t at = w->len;
    uint8_t *q = kc_w_room(w, n);

    if (!q)
        return at;
    memset(q, 0, n);
    kc_w_commit(w, n);
    return at;
}

void kc_w_patch_i32(kc_writer *w, size_t at, int32_t v)
{
    if (w->err != KC_OK || at > w->len || 4 > w->len - at)
        return;
    kc_put_be32(w->p + at, (uint32_t)v);
}

void kc_w_patch_i16(kc_writer *w, size_t at, int16_t v)
{
    if (w->err != KC_OK || at > w->len || 2 > w->len - at)
        return;
    w->p[at] = (uint8_t)((uint16_t)v >> 8);
    w->p[at + 1] = (uint8_t)v;
}

/* ---------------------------------------------------------------- views */

bool kc_str_eq(kc_str s, const char *c)
{
    size_t n;

    if (!c || s.len < 0)
        return !c && s.len < 0;
    n = strlen(c);
    return n == (size_t)s.len && (n == 0 || memcmp(s.p, c, n) == 0);
}

char *kc_str_dup(kc_str s)
{
    char *d;

    if (s.len < 0)
        return NULL;
    d = malloc((size_t)s.len + 1);
    if (!d)
        return NULL;
    if (s.len)
        memcpy(d, s.p, (size_t)s.len);
    d[s.len] = '\0';
    return d;
}
