/* dataset_format.c: offset arithmetic, ustar header parsing and line splitting for
 * dataset topics. Everything here works on bytes it is handed, bounded by their length;
 * nothing allocates or recurses. */
#include "dataset_format.h"

#include <string.h>

static const char *const format_names[] = {"object", "chunk", "lines", "tar", NULL};

int dsf_format_parse(const char *s)
{
    for (int i = 0; s && format_names[i]; i++)
        if (!strcmp(s, format_names[i]))
            return i;
    return -1;
}

const char *dsf_format_name(int f)
{
    return f >= DSF_OBJECT && f <= DSF_TAR ? format_names[f] : "unknown";
}

int64_t dsf_chunks(int64_t size, int64_t chunk_bytes)
{
    if (size <= 0 || chunk_bytes <= 0)
        return 1;
    return (size - 1) / chunk_bytes + 1;
}

/* ---- tar ---- */

int64_t dsf_tar_span(int64_t size)
{
    if (size < 0 || size > INT64_MAX - 2 * DSF_TAR_BLOCK)
        return -1;
    return DSF_TAR_BLOCK + (size + DSF_TAR_BLOCK - 1) / DSF_TAR_BLOCK * DSF_TAR_BLOCK;
}

/* Parses an octal field of n bytes (NUL or space terminated, leading spaces allowed).
 * Returns 0 or -1. */
static int octal(const uint8_t *p, size_t n, int64_t *out)
{
    size_t i = 0;
    int64_t v = 0;
    while (i < n && p[i] == ' ')
        i++;
    size_t digits = 0;
    for (; i < n && p[i] >= '0' && p[i] <= '7'; i++, digits++) {
        if (v > (INT64_MAX >> 3))
            return -1;
        v = (v << 3) | (p[i] - '0');
    }
    if (i < n && p[i] != 0 && p[i] != ' ')
        return -1;
    *out = v;
    return digits ? 0 : -1;
}

/* GNU base-256 numbers: the first byte has bit 7 set; the rest is big-endian. */
static int base256(const uint8_t *p, size_t n, int64_t *out)
{
    if (p[0] != 0x80) /* negative numbers, or more than 63 bits in the first byte */
        return -1;
    uint64_t v = 0;
    for (size_t i = 1; i < n; i++) {
        if (v >> 55)
            return -1;
        v = (v << 8) | p[i];
    }
    if (v > INT64_MAX)
        return -1;
    *out = (int64_t)v;
    return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* The header checksum: the sum of all bytes with the checksum field read as spaces. */
static bool checksum_ok(const uint8_t h[DSF_TAR_BLOCK])
{
    int64_t want;
    if (octal(h + 148, 8, &want) < 0)
        return false;
    int64_t sum = 0;
    for (int i = 0; i < DSF_TAR_BLOCK; i++)
        sum += i >= 148 && i < 156 ? ' ' : h[i];
    return sum == want;
}

/* Copies a field of at most n bytes up to its first NUL. */
static size_t field(char *out, const uint8_t *p, size_t n)
{
    size_t l = 0;
    while (l < n && p[l])
        l++;
    memcpy(out, p, l);
    return l;
}

int dsf_tar_parse(const uint8_t h[DSF_TAR_BLOCK], int64_t max_size, struct dsf_tar_hdr *out)
{
    memset(out, 0, sizeof *out);
    if (all_zero(h, DSF_TAR_BLOCK))
        return DSF_TAR_END;
    if (!checksum_ok(h))
        return DSF_TAR_EBAD;
    int64_t size;
    if ((h[124] & 0x80 ? base256(h + 124, 12, &size) : octal(h + 124, 12, &size)) < 0 ||
        size > max_size || dsf_tar_span(size) < 0)
        return DSF_TAR_EBAD;
    out->size = size;
    out->type = (char)h[156];
    size_t l = 0;
    if (!memcmp(h + 257, "ustar", 5) && h[345]) { /* ustar prefix */
        l = field(out->name, h + 345, 155);
        out->name[l++] = '/';
    }
    l += field(out->name + l, h, 100);
    out->name[l] = 0;
    switch (out->type) {
    case '0':
    case 0:
    case '7':
        return DSF_TAR_FILE;
    case 'L':
        return DSF_TAR_LONGNAME;
    case 'x':
        return DSF_TAR_PAX;
    default:
        return DSF_TAR_SKIP; /* '5' directories, links, 'g' global pax, devices */
    }
}

int dsf_pax_path(const uint8_t *p, size_t len, char *out, size_t cap)
{
    size_t at = 0;
    while (at < len) {
        /* "<len> <key>=<value>\n", len counting the whole record */
        size_t n = 0, i = at;
        while (i < len && p[i] >= '0' && p[i] <= '9' && n < len)
            n = n * 10 + (size_t)(p[i++] - '0');
        if (i >= len || p[i] != ' ' || n == 0 || n > len - at)
            return -1;
        const uint8_t *kv = p + i + 1, *end = p + at + n;
        if (end <= kv || end[-1] != '\n')
            return -1;
        if ((size_t)(end - kv) > 5 && !memcmp(kv, "path=", 5)) {
            size_t vl = (size_t)(end - kv) - 6;
            if (vl >= cap)
                return -1;
            memcpy(out, kv + 5, vl);
            out[vl] = 0;
            return (int)vl;
        }
        at += n;
    }
    return -1;
}

/* ---- lines ---- */

int dsf_lines_feed(struct dsf_lines *s, const uint8_t *p, size_t n, uint64_t base,
                   dsf_line_fn *fn, void *arg)
{
    const uint8_t *at = p, *end = p + n, *nl;
    while (at < end && (nl = memchr(at, '\n', (size_t)(end - at)))) {
        uint64_t pos = base + (uint64_t)(nl - p);
        int rc = fn(arg, s->start, pos - s->start);
        s->start = pos + 1;
        if (rc)
            return rc;
        at = nl + 1;
    }
    return 0;
}

int dsf_lines_finish(struct dsf_lines *s, uint64_t size, dsf_line_fn *fn, void *arg)
{
    if (s->start >= size)
        return 0;
    int rc = fn(arg, s->start, size - s->start);
    s->start = size;
    return rc;
}
