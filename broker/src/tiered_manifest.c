/* tiered_manifest.c: manifest records, segment assembly and lookups for tiered storage
 * (see tiered_manifest.h). Record layout, big-endian:
 *   version(1)=1 end(8) bytes(8) max_ts(8) etag_len(1) etag nidx(4)
 *   nidx x {offset(8) pos(4) max_ts(8)} */
#include "tiered_manifest.h"

#include "batch.h"
#include "kcodec.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TM_VERSION = 1, TM_HDR = 1 + 8 + 8 + 8 + 1, TM_ENTRY = 20 };

void tm_key(uint8_t k[TM_KEY_LEN], const uint8_t topic_id[16], int32_t partition, int64_t base)
{
    store_part_prefix(k, topic_id, partition);
    k[20] = TM_PSTATE_TYPE;
    kc_put_be64(k + 21, (uint64_t)base);
}

void tm_key_bounds(const uint8_t topic_id[16], int32_t partition, uint8_t lo[21], uint8_t hi[21])
{
    store_part_prefix(lo, topic_id, partition);
    store_part_prefix(hi, topic_id, partition);
    lo[20] = TM_PSTATE_TYPE;
    hi[20] = TM_PSTATE_TYPE + 1;
}

uint8_t *tm_encode(const struct tm_seg *s, size_t *len)
{
    size_t el = strnlen(s->etag, TM_ETAG_MAX - 1);
    size_t n = TM_HDR + el + 4 + (size_t)s->nidx * TM_ENTRY;
    uint8_t *v = malloc(n), *p = v;
    if (!v)
        return NULL;
    *p++ = TM_VERSION;
    kc_put_be64(p, (uint64_t)s->end);
    kc_put_be64(p + 8, (uint64_t)s->bytes);
    kc_put_be64(p + 16, (uint64_t)s->max_ts);
    p[24] = (uint8_t)el;
    p += 25;
    memcpy(p, s->etag, el);
    p += el;
    kc_put_be32(p, s->nidx);
    p += 4;
    for (uint32_t i = 0; i < s->nidx; i++, p += TM_ENTRY) {
        kc_put_be64(p, (uint64_t)s->idx[i].offset);
        kc_put_be32(p + 8, s->idx[i].pos);
        kc_put_be64(p + 12, (uint64_t)s->idx[i].max_ts);
    }
    *len = n;
    return v;
}

/* Whether the decoded index is ordered, starts at the segment's start and stays in it. */
static bool index_ok(const struct tm_seg *s)
{
    if (s->idx[0].offset != s->base || s->idx[0].pos != 0)
        return false;
    for (uint32_t i = 1; i < s->nidx; i++)
        if (s->idx[i].offset <= s->idx[i - 1].offset || s->idx[i].pos <= s->idx[i - 1].pos ||
            s->idx[i].offset >= s->end || (int64_t)s->idx[i].pos >= s->bytes)
            return false;
    return true;
}

int tm_decode(int64_t base, const uint8_t *v, size_t vl, struct tm_seg *out)
{
    memset(out, 0, sizeof *out);
    if (vl < TM_HDR || v[0] != TM_VERSION)
        return -1;
    out->base = base;
    out->end = (int64_t)kc_get_be64(v + 1);
    out->bytes = (int64_t)kc_get_be64(v + 9);
    out->max_ts = (int64_t)kc_get_be64(v + 17);
    size_t el = v[25], off = TM_HDR;
    if (el >= TM_ETAG_MAX || el + 4 > vl - off || out->end <= base || out->bytes <= 0 ||
        out->bytes > UINT32_MAX)
        return -1;
    memcpy(out->etag, v + off, el);
    out->etag[el] = 0;
    off += el;
    uint32_t n = kc_get_be32(v + off);
    off += 4;
    if (n < 1 || n > TM_MAX_STRETCHES || (size_t)n * TM_ENTRY != vl - off)
        return -1;
    if (!(out->idx = calloc(n, sizeof *out->idx)))
        return -1;
    out->nidx = n;
    for (uint32_t i = 0; i < n; i++, off += TM_ENTRY) {
        out->idx[i].offset = (int64_t)kc_get_be64(v + off);
        out->idx[i].pos = kc_get_be32(v + off + 8);
        out->idx[i].max_ts = (int64_t)kc_get_be64(v + off + 12);
    }
    if (!index_ok(out)) {
        tm_seg_clear(out);
        return -1;
    }
    return 0;
}

void tm_seg_clear(struct tm_seg *s)
{
    if (!s)
        return;
    free(s->idx);
    s->idx = NULL;
    s->nidx = 0;
}

int tm_object_key(char *out, size_t cap, const char *prefix, const uint8_t topic_id[16],
                  int32_t partition, int64_t base, int64_t end)
{
    char hex[33];
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", topic_id[i]);
    int n = snprintf(out, cap, "%s%s%s/%d/%020lld-%lld.seg", prefix, *prefix ? "/" : "", hex,
                     partition, (long long)base, (long long)end);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* ---- building a segment ---- */

void tm_builder_init(struct tm_builder *b, int64_t stretch_bytes)
{
    memset(b, 0, sizeof *b);
    b->stretch_bytes = stretch_bytes > 0 ? stretch_bytes : 1 << 20;
    b->seg.max_ts = -1;
}

/* Starts a new stretch at the current end of the body. Returns 0 or -1. */
static int stretch_open(struct tm_builder *b, int64_t offset, int64_t ts)
{
    struct tm_seg *s = &b->seg;
    if (s->nidx >= TM_MAX_STRETCHES)
        return -1;
    struct tm_stretch *n = realloc(s->idx, (s->nidx + 1) * sizeof *n);
    if (!n)
        return -1;
    s->idx = n;
    n[s->nidx++] = (struct tm_stretch){offset, (uint32_t)b->len, ts};
    return 0;
}

int tm_builder_add(struct tm_builder *b, const uint8_t *batch, size_t len)
{
    struct batch_hdr h;
    struct tm_seg *s = &b->seg;
    if (batch_parse_hdr(batch, len, &h) != BATCH_OK || batch_size(batch, len) != (int64_t)len ||
        h.last_offset_delta < 0 || len > UINT32_MAX - b->len)
        return -1;
    if (b->batches > 0 && h.base_offset < s->end)
        return -1; /* offsets must only grow */
    if (b->len + len > b->cap) {
        size_t nc = b->cap ? b->cap : 64 << 10;
        while (nc < b->len + len)
            nc *= 2;
        uint8_t *nb = realloc(b->body, nc);
        if (!nb)
            return -1;
        b->body = nb;
        b->cap = nc;
    }
    struct tm_stretch *cur = s->nidx ? &s->idx[s->nidx - 1] : NULL;
    if (!cur || (int64_t)(b->len - cur->pos) >= b->stretch_bytes) {
        if (stretch_open(b, h.base_offset, h.max_timestamp) < 0)
            return -1;
        cur = &s->idx[s->nidx - 1];
    }
    if (b->batches == 0)
        s->base = h.base_offset;
    memcpy(b->body + b->len, batch, len);
    b->len += len;
    b->batches++;
    s->end = h.base_offset + h.last_offset_delta + 1;
    s->bytes = (int64_t)b->len;
    if (h.max_timestamp > cur->max_ts)
        cur->max_ts = h.max_timestamp;
    if (h.max_timestamp > s->max_ts)
        s->max_ts = h.max_timestamp;
    return 0;
}

void tm_builder_free(struct tm_builder *b)
{
    free(b->body);
    tm_seg_clear(&b->seg);
    b->body = NULL;
    b->len = b->cap = 0;
}

/* ---- lookups ---- */

int64_t tm_find(const struct tm_seg *segs, size_t n, int64_t offset)
{
    size_t lo = 0, hi = n; /* first segment with base > offset */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (segs[mid].base <= offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0 || offset >= segs[lo - 1].end)
        return -1;
    return (int64_t)lo - 1;
}

int64_t tm_find_time(const struct tm_seg *segs, size_t n, size_t from, int64_t ts)
{
    for (size_t i = from; i < n; i++)
        if (segs[i].max_ts >= ts)
            return (int64_t)i;
    return -1;
}

uint32_t tm_stretch_find(const struct tm_seg *s, int64_t offset)
{
    uint32_t lo = 0, hi = s->nidx;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (s->idx[mid].offset <= offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? lo - 1 : 0;
}

uint32_t tm_stretch_time(const struct tm_seg *s, int64_t ts)
{
    for (uint32_t i = 0; i < s->nidx; i++)
        if (s->idx[i].max_ts >= ts)
            return i;
    return s->nidx - 1;
}

void tm_stretch_range(const struct tm_seg *s, uint32_t i, int64_t *pos, int64_t *len)
{
    *pos = s->idx[i].pos;
    *len = (i + 1 < s->nidx ? (int64_t)s->idx[i + 1].pos : s->bytes) - *pos;
}

size_t tm_scan_to(const uint8_t *p, size_t len, int64_t offset)
{
    size_t at = 0;
    while (at < len) {
        struct batch_hdr h;
        int64_t sz = batch_size(p + at, len - at);
        if (sz < 0 || (uint64_t)sz > len - at || batch_parse_hdr(p + at, len - at, &h) != BATCH_OK)
            return len;
        if (h.base_offset + h.last_offset_delta >= offset)
            return at;
        at += (size_t)sz;
    }
    return len;
}
