/* mlog.c: the in-memory batch ring. Entries live in a circular array that doubles when
 * full; lookups by offset are binary searches, so a read costs O(log batches). */
#include "mlog.h"

#include "batch.h"

#include <stdlib.h>
#include <string.h>

struct mentry {
    uint8_t *data;
    size_t len;
    int64_t base;
    int32_t count;
    int64_t max_ts;
};

struct mlog {
    struct mentry *e;
    size_t cap, head, n; /* ring: entries head .. head+n-1 (mod cap) */
    int64_t bytes;
};

struct mlog *mlog_new(void) { return calloc(1, sizeof(struct mlog)); }

static struct mentry *at(const struct mlog *m, size_t i) { return &m->e[(m->head + i) % m->cap]; }

static void drop_oldest(struct mlog *m)
{
    struct mentry *e = at(m, 0);
    m->bytes -= (int64_t)e->len;
    free(e->data);
    e->data = NULL;
    m->head = (m->head + 1) % m->cap;
    m->n--;
}

void mlog_free(struct mlog *m)
{
    if (!m)
        return;
    while (m->n)
        drop_oldest(m);
    free(m->e);
    free(m);
}

/* Doubles the ring, unrolling it so the oldest entry is at index 0. */
static int grow(struct mlog *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    struct mentry *e = malloc(cap * sizeof *e);
    if (!e)
        return -1;
    for (size_t i = 0; i < m->n; i++)
        e[i] = *at(m, i);
    free(m->e);
    m->e = e;
    m->cap = cap;
    m->head = 0;
    return 0;
}

int mlog_append(struct mlog *m, const uint8_t *batch, size_t len, int64_t base, int32_t count,
                int64_t max_ts)
{
    if (m->n == m->cap && grow(m) < 0)
        return -1;
    uint8_t *copy = malloc(len);
    if (!copy)
        return -1;
    memcpy(copy, batch, len);
    *at(m, m->n) = (struct mentry){copy, len, base, count, max_ts};
    m->n++;
    m->bytes += (int64_t)len;
    return 0;
}

void mlog_trim_bytes(struct mlog *m, int64_t max_bytes)
{
    while (max_bytes >= 0 && m->n && m->bytes > max_bytes)
        drop_oldest(m);
}

void mlog_trim_before(struct mlog *m, int64_t offset)
{
    while (m->n && at(m, 0)->base + at(m, 0)->count <= offset)
        drop_oldest(m);
}

void mlog_drop_from(struct mlog *m, int64_t offset)
{
    while (m->n && at(m, m->n - 1)->base >= offset) {
        struct mentry *e = at(m, m->n - 1);
        m->bytes -= (int64_t)e->len;
        free(e->data);
        e->data = NULL;
        m->n--;
    }
}

void mlog_trim_time(struct mlog *m, int64_t ts_ms)
{
    while (m->n && at(m, 0)->max_ts < ts_ms)
        drop_oldest(m);
}

int64_t mlog_first(const struct mlog *m) { return m->n ? at(m, 0)->base : -1; }
int64_t mlog_bytes(const struct mlog *m) { return m->bytes; }

/* Index of the batch holding offset, or of the first batch after it; n if none. */
static size_t find(const struct mlog *m, int64_t offset)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct mentry *e = at(m, mid);
        if (e->base + e->count <= offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int mlog_read(const struct mlog *m, int64_t offset, int64_t max_bytes, bool must_return_one,
              kc_writer *w, int64_t *copied)
{
    *copied = 0;
    if (!m->n || offset < at(m, 0)->base)
        return -1;
    for (size_t i = find(m, offset); i < m->n; i++) {
        const struct mentry *e = at(m, i);
        if ((int64_t)e->len + *copied > max_bytes && (*copied > 0 || !must_return_one))
            break;
        kc_w_raw(w, e->data, e->len);
        *copied += (int64_t)e->len;
    }
    return 0;
}

int64_t mlog_offset_for_time(const struct mlog *m, int64_t ts_ms, int64_t *found_ts)
{
    for (size_t i = 0; i < m->n; i++) {
        const struct mentry *e = at(m, i);
        int32_t d = batch_offset_for_time(e->data, e->len, ts_ms, found_ts);
        if (d >= 0)
            return e->base + d;
    }
    return -1;
}
