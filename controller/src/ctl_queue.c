/* ctl_queue.c: the deduplicating, rate-limited work queue. Each key has one item that
 * lives while the key is queued, delayed, processing or has failures on record; items
 * sit in a hash table, a FIFO of ready keys and a binary heap of delayed keys. */
#include "ctl_queue.h"

#include <stdlib.h>
#include <string.h>

#include "ctl_backoff.h"
#include "ctl_util.h"

struct ctl_qitem {
    struct ctl_qitem *hnext; /* hash chain */
    struct ctl_qitem *next;  /* ready FIFO */
    uint64_t hash;
    int64_t due_ms;    /* when in the heap */
    int64_t redo_ms;   /* processing && dirty: when to requeue */
    size_t heap_idx;   /* valid when delayed */
    unsigned failures;
    bool queued, delayed, processing, dirty;
    char key[];
};

int ctl_queue_init(struct ctl_queue *q, double qps, double burst, int64_t base_ms,
                   int64_t max_ms)
{
    memset(q, 0, sizeof *q);
    q->tab_size = 1024;
    q->tab = calloc(q->tab_size, sizeof *q->tab);
    if (!q->tab)
        return -1;
    q->qps = qps;
    q->burst = burst < 1 ? 1 : burst;
    q->tokens = q->burst;
    q->base_ms = base_ms;
    q->max_ms = max_ms;
    return 0;
}

void ctl_queue_free(struct ctl_queue *q)
{
    for (size_t i = 0; q->tab && i < q->tab_size; i++) {
        struct ctl_qitem *it = q->tab[i];
        while (it) {
            struct ctl_qitem *n = it->hnext;
            free(it);
            it = n;
        }
    }
    free(q->tab);
    free(q->heap);
    memset(q, 0, sizeof *q);
}

static struct ctl_qitem *q_find(const struct ctl_queue *q, const char *key, uint64_t h)
{
    for (struct ctl_qitem *it = q->tab[h & (q->tab_size - 1)]; it; it = it->hnext)
        if (it->hash == h && !strcmp(it->key, key))
            return it;
    return NULL;
}

static void q_grow(struct ctl_queue *q)
{
    size_t ns = q->tab_size * 2;
    struct ctl_qitem **nt = calloc(ns, sizeof *nt);
    if (!nt)
        return; /* chains just get longer */
    for (size_t i = 0; i < q->tab_size; i++) {
        struct ctl_qitem *it = q->tab[i];
        while (it) {
            struct ctl_qitem *n = it->hnext;
            it->hnext = nt[it->hash & (ns - 1)];
            nt[it->hash & (ns - 1)] = it;
            it = n;
        }
    }
    free(q->tab);
    q->tab = nt;
    q->tab_size = ns;
}

static struct ctl_qitem *q_get_or_make(struct ctl_queue *q, const char *key)
{
    size_t len = strlen(key);
    uint64_t h = ctl_hash(key, len);
    struct ctl_qitem *it = q_find(q, key, h);
    if (it)
        return it;
    it = calloc(1, sizeof *it + len + 1);
    if (!it)
        return NULL;
    memcpy(it->key, key, len + 1);
    it->hash = h;
    it->hnext = q->tab[h & (q->tab_size - 1)];
    q->tab[h & (q->tab_size - 1)] = it;
    if (++q->count > q->tab_size)
        q_grow(q);
    return it;
}

/* Frees it if nothing refers to it any more. */
static void q_maybe_drop(struct ctl_queue *q, struct ctl_qitem *it)
{
    if (it->queued || it->delayed || it->processing || it->failures)
        return;
    struct ctl_qitem **pp = &q->tab[it->hash & (q->tab_size - 1)];
    while (*pp != it)
        pp = &(*pp)->hnext;
    *pp = it->hnext;
    q->count--;
    free(it);
}

/* --- heap of delayed items, ordered by due_ms --- */

static void h_swap(struct ctl_queue *q, size_t a, size_t b)
{
    struct ctl_qitem *t = q->heap[a];
    q->heap[a] = q->heap[b];
    q->heap[b] = t;
    q->heap[a]->heap_idx = a;
    q->heap[b]->heap_idx = b;
}

static void h_up(struct ctl_queue *q, size_t i)
{
    while (i > 0 && q->heap[(i - 1) / 2]->due_ms > q->heap[i]->due_ms) {
        h_swap(q, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void h_down(struct ctl_queue *q, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < q->heap_len && q->heap[l]->due_ms < q->heap[m]->due_ms)
            m = l;
        if (r < q->heap_len && q->heap[r]->due_ms < q->heap[m]->due_ms)
            m = r;
        if (m == i)
            return;
        h_swap(q, i, m);
        i = m;
    }
}

static int h_push(struct ctl_queue *q, struct ctl_qitem *it)
{
    if (q->heap_len == q->heap_cap) {
        size_t nc = q->heap_cap ? q->heap_cap * 2 : 256;
        struct ctl_qitem **nh = realloc(q->heap, nc * sizeof *nh);
        if (!nh)
            return -1;
        q->heap = nh;
        q->heap_cap = nc;
    }
    it->heap_idx = q->heap_len;
    q->heap[q->heap_len++] = it;
    it->delayed = true;
    h_up(q, it->heap_idx);
    return 0;
}

static void h_remove(struct ctl_queue *q, struct ctl_qitem *it)
{
    size_t i = it->heap_idx;
    it->delayed = false;
    q->heap_len--;
    if (i != q->heap_len) {
        q->heap[i] = q->heap[q->heap_len];
        q->heap[i]->heap_idx = i;
        h_down(q, i);
        h_up(q, i);
    }
}

static void q_push_ready(struct ctl_queue *q, struct ctl_qitem *it)
{
    if (it->delayed)
        h_remove(q, it);
    it->queued = true;
    it->next = NULL;
    if (q->tail)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
    q->ready++;
}

int ctl_queue_add(struct ctl_queue *q, const char *key, int64_t now_ms)
{
    return ctl_queue_add_after(q, key, 0, now_ms);
}

int ctl_queue_add_after(struct ctl_queue *q, const char *key, int64_t delay_ms, int64_t now_ms)
{
    struct ctl_qitem *it = q_get_or_make(q, key);
    if (!it)
        return -1;
    int64_t due = now_ms + (delay_ms > 0 ? delay_ms : 0);
    q->adds++;
    if (it->processing) {
        if (!it->dirty || due < it->redo_ms)
            it->redo_ms = due;
        it->dirty = true;
        return 0;
    }
    if (it->queued) {
        q->dedups++;
        return 0;
    }
    if (due <= now_ms) {
        q_push_ready(q, it);
        return 0;
    }
    if (it->delayed) {
        q->dedups++;
        if (due < it->due_ms) {
            it->due_ms = due;
            h_up(q, it->heap_idx);
        }
        return 0;
    }
    it->due_ms = due;
    if (h_push(q, it) < 0) {
        q_maybe_drop(q, it);
        return -1;
    }
    return 0;
}

int64_t ctl_queue_add_rate_limited(struct ctl_queue *q, const char *key, int64_t now_ms)
{
    struct ctl_qitem *it = q_get_or_make(q, key);
    if (!it)
        return -1;
    if (it->failures < 1000)
        it->failures++;
    int64_t d = ctl_backoff_delay(q->base_ms, q->max_ms, it->failures);
    return ctl_queue_add_after(q, key, d, now_ms) < 0 ? -1 : d;
}

void ctl_queue_forget(struct ctl_queue *q, const char *key)
{
    struct ctl_qitem *it = q_find(q, key, ctl_hash(key, strlen(key)));
    if (it) {
        it->failures = 0;
        q_maybe_drop(q, it);
    }
}

unsigned ctl_queue_failures(const struct ctl_queue *q, const char *key)
{
    struct ctl_qitem *it = q_find(q, key, ctl_hash(key, strlen(key)));
    return it ? it->failures : 0;
}

/* Adds tokens for the time since the last refill. */
static void q_refill(struct ctl_queue *q, int64_t now_ms)
{
    if (q->qps <= 0)
        return;
    if (now_ms > q->last_refill_ms) {
        q->tokens += (double)(now_ms - q->last_refill_ms) * q->qps / 1000.0;
        if (q->tokens > q->burst)
            q->tokens = q->burst;
    }
    q->last_refill_ms = now_ms;
}

char *ctl_queue_get(struct ctl_queue *q, int64_t now_ms, int64_t *wait_ms)
{
    while (q->heap_len && q->heap[0]->due_ms <= now_ms)
        q_push_ready(q, q->heap[0]);
    *wait_ms = q->heap_len ? q->heap[0]->due_ms - now_ms : -1;
    if (!q->head)
        return NULL;
    q_refill(q, now_ms);
    if (q->qps > 0 && q->tokens < 1.0) {
        *wait_ms = (int64_t)((1.0 - q->tokens) * 1000.0 / q->qps) + 1;
        return NULL;
    }
    struct ctl_qitem *it = q->head;
    char *key = strdup(it->key);
    if (!key) {
        *wait_ms = 10;
        return NULL;
    }
    if (q->qps > 0)
        q->tokens -= 1.0;
    q->head = it->next;
    if (!q->head)
        q->tail = NULL;
    q->ready--;
    it->queued = false;
    it->processing = true;
    it->dirty = false;
    q->processing++;
    return key;
}

void ctl_queue_done(struct ctl_queue *q, const char *key, int64_t now_ms)
{
    struct ctl_qitem *it = q_find(q, key, ctl_hash(key, strlen(key)));
    if (!it || !it->processing)
        return;
    it->processing = false;
    q->processing--;
    if (it->dirty) {
        it->dirty = false;
        if (ctl_queue_add_after(q, key, it->redo_ms - now_ms, now_ms) == 0)
            return;
    }
    q_maybe_drop(q, it);
}

size_t ctl_queue_len(const struct ctl_queue *q)
{
    return q->ready + q->heap_len;
}
