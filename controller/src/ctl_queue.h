/* ctl_queue.h: a rate-limited work queue of resource keys with deduplication, in the
 * manner of client-go's workqueue. A key is queued at most once; a key added while it is
 * being processed is queued again when it is done; failures requeue with per-key
 * exponential backoff; a token bucket bounds the overall rate. Not thread-safe: the
 * caller holds its lock around every call. */
#ifndef CTL_QUEUE_H
#define CTL_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ctl_qitem;

struct ctl_queue {
    struct ctl_qitem **tab; /* hash table by key, chained */
    size_t tab_size, count;
    struct ctl_qitem *head, *tail; /* ready FIFO */
    size_t ready;
    struct ctl_qitem **heap; /* delayed items by due time */
    size_t heap_len, heap_cap;
    size_t processing;
    /* token bucket */
    double qps, burst, tokens;
    int64_t last_refill_ms;
    int64_t base_ms, max_ms; /* per-key failure backoff */
    uint64_t adds, dedups;   /* statistics */
};

int ctl_queue_init(struct ctl_queue *q, double qps, double burst, int64_t base_ms,
                   int64_t max_ms);
void ctl_queue_free(struct ctl_queue *q);
/* Queues key now. Returns 0, or -1 on OOM. */
int ctl_queue_add(struct ctl_queue *q, const char *key, int64_t now_ms);
/* Queues key once delay_ms has passed (an earlier pending time wins). */
int ctl_queue_add_after(struct ctl_queue *q, const char *key, int64_t delay_ms, int64_t now_ms);
/* Counts a failure of key and queues it after its backoff. Returns the delay, or -1. */
int64_t ctl_queue_add_rate_limited(struct ctl_queue *q, const char *key, int64_t now_ms);
/* Clears key's failure count (after a success). */
void ctl_queue_forget(struct ctl_queue *q, const char *key);
/* Moves due delayed keys to the ready list, then takes the first ready key if the rate
 * allows. Returns a copy of the key (the caller frees it and must call ctl_queue_done), or
 * NULL; *wait_ms then says how long until something may be ready (-1: nothing queued). */
char *ctl_queue_get(struct ctl_queue *q, int64_t now_ms, int64_t *wait_ms);
/* Marks key as no longer processing; requeues it if it was added meanwhile. */
void ctl_queue_done(struct ctl_queue *q, const char *key, int64_t now_ms);
/* Keys waiting (ready plus delayed). */
size_t ctl_queue_len(const struct ctl_queue *q);
/* Failures counted for key. */
unsigned ctl_queue_failures(const struct ctl_queue *q, const char *key);

#endif
