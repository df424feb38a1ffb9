/* cache.h: the block cache behind dataset topics, in three tiers: memory (a byte
 * budget), local disk (a directory and a byte budget, indexed in RocksDB so it survives
 * restarts) and an origin the caller supplies as a callback (normally S3 ranged GETs;
 * this module knows nothing about S3).
 *
 * Keys and blocks. A block is named by (namespace: the topic's 16-byte id, object index,
 * block index). Block b of an object holds its bytes [b * block_bytes, (b + 1) *
 * block_bytes), so every block but an object's last is exactly block_bytes long. Blocks
 * are immutable: when an object changes, invalidate it.
 *
 * Threads. Everything here runs on the event loop, callbacks included. File I/O (block
 * reads, writes, unlinks and the start-up sweep) runs on a worker thread the cache owns,
 * so the loop never blocks on the disk; the RocksDB index is written from the loop, as
 * the produce path does (no fsync).
 *
 * Reading a block:
 *
 *     struct cache_waiter *w = &req->wait;       // caller-owned, e.g. in the request
 *     w->fn = on_block; w->arg = req;
 *     switch (cache_get(c, &key, &origin, w)) {
 *     case CACHE_HIT:     use(w->block); cache_unpin(c, w->block); break;
 *     case CACHE_PENDING: break;                 // on_block(w) runs later, once
 *     default:            fail(w->err, w->msg);  // error now; on_block not called
 *     }
 *
 * In on_block, w->err is 0 and w->block is pinned, or w->err is negative, w->msg says
 * why and w->block is NULL. A pinned block's bytes stay valid, whatever is evicted or
 * invalidated meanwhile, until cache_unpin. Misses on one block share one load (single
 * flight): N waiters, one disk read or one origin request, N callbacks.
 *
 * Eviction (cache_policy.h) is LIRS by bytes in each tier: a cyclic scan larger than a
 * tier keeps a stable resident set and hits about capacity / dataset of the time.
 * Prefetched blocks sit outside the policy until first read (up to half the memory
 * budget, for at most prefetch_hold_ms), so prefetching neither evicts them before use
 * nor counts as a reuse. */
#ifndef SLUICE_CACHE_H
#define SLUICE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ev_loop;
struct store;
struct config;
struct cache;

struct cache_key {
    uint8_t ns[16];  /* the topic id */
    uint64_t object; /* object index in the topic's scan */
    uint32_t block;  /* block index within the object */
};

/* cache_get's results, and the cache's own error codes. Origin error codes (negative,
 * above -100, e.g. enum s3_err) are passed to waiters unchanged. */
enum {
    CACHE_HIT = 0,
    CACHE_PENDING = 1,
    CACHE_ENOMEM = -100,
    CACHE_ESTALE = -101,  /* invalidated while it was loading: look the object up again */
    CACHE_EBUSY = -102,   /* prefetch refused: the prefetch reservation is full */
    CACHE_EORIGIN = -103, /* the origin refused the request or broke its contract */
    CACHE_EINVAL = -104,
};

/* A block in memory. Read-only for callers; valid while pinned. */
struct cache_block {
    const uint8_t *data;
    size_t len;
    struct cache_key key;
};

/* ---- origin ---- */

/* One origin request in flight; the origin completes it with cache_fill_done. */
struct cache_fill;

/* Asks the origin for block k: bytes [offset, offset + max_len) of the object, fewer
 * for its last block. Returns 0 when the request is under way (or already done: the
 * callback may call cache_fill_done before it returns), or a negative code when it
 * could not start (then cache_fill_done must not be called). */
typedef int cache_origin_fn(void *arg, const struct cache_key *k, uint64_t offset, size_t max_len,
                            struct cache_fill *f);

struct cache_origin {
    cache_origin_fn *fetch;
    void *arg; /* must outlive every fill it starts */
};

/* Completes f exactly once, on the loop: err 0 with the block's bytes (copied; len at
 * most block_bytes, or the fill fails with CACHE_EORIGIN), or a negative err and a
 * message (may be NULL). Each fill must be completed, even after an invalidation, and
 * never after cache_free (stop the origin first: s3_free drops its callbacks). */
void cache_fill_done(struct cache_fill *f, const void *data, size_t len, int err, const char *msg);

/* ---- waiting ---- */

struct cache_waiter;
typedef void cache_ready_fn(struct cache_waiter *w);

/* Owned by the caller and left alone until its callback has run or it is cancelled. */
struct cache_waiter {
    cache_ready_fn *fn;
    void *arg;
    const struct cache_block *block; /* out: pinned on success */
    int err;                         /* out: 0 or negative */
    char msg[160];                   /* out: why, when err < 0 */
    /* private */
    struct cache_waiter *prev, *next;
    void *entry;
};

/* ---- lifecycle ---- */

struct cache_opts {
    int64_t memory_bytes;     /* memory tier budget */
    int64_t disk_bytes;       /* disk tier budget; 0 turns the disk tier off */
    int64_t block_bytes;      /* block size; changing it drops the disk tier on start */
    char disk_dir[1024];      /* block files; the index is in STORE_CF_CACHE */
    int64_t prefetch_hold_ms; /* a prefetched block not read by then leaves memory */
};

/* cache.memory.bytes, cache.disk.bytes, cache.disk.dir (empty: <data-dir>/cache) and
 * cache.block.bytes from the broker configuration. */
void cache_opts_from_config(struct cache_opts *o, const struct config *cfg);

/* Creates the cache on loop. With a disk tier it creates disk_dir, loads the index from
 * store (synchronously: this is start-up) and queues a sweep of files the index does
 * not know. store may be NULL when disk_bytes is 0. Returns NULL (logged) on failure. */
struct cache *cache_new(struct ev_loop *loop, struct store *store, const struct cache_opts *o);
/* Stops the worker (queued writes are dropped; the index stays consistent) and frees
 * everything. Every pin must have been released and every waiter completed or
 * cancelled. cache_free(NULL) is a no-op. */
void cache_free(struct cache *c);

/* ---- blocks ---- */

/* Looks k up (see the example above). A miss reads the disk tier on the worker or asks
 * o (which may be NULL for blocks known to be cached; a miss then fails with
 * CACHE_EORIGIN). Returns CACHE_HIT with w->block pinned, CACHE_PENDING, or a negative
 * error with w->err and w->msg set. */
int cache_get(struct cache *c, const struct cache_key *k, const struct cache_origin *o,
              struct cache_waiter *w);
/* Withdraws a pending waiter; its callback will not run. A no-op for one not pending. */
void cache_cancel(struct cache *c, struct cache_waiter *w);
/* Releases one pin taken by cache_get. */
void cache_unpin(struct cache *c, const struct cache_block *b);
/* Loads k into memory without a waiter, unless it is there or on its way. Returns 0,
 * CACHE_EBUSY when prefetched-but-unread blocks already fill the reservation (back off),
 * or another negative code. Not an access for hit rates or eviction. */
int cache_prefetch(struct cache *c, const struct cache_key *k, const struct cache_origin *o);

enum { CACHE_IN_MEMORY = 1, CACHE_ON_DISK = 2 };
/* Where k is now (a mask of the above; 0: in neither). Changes nothing. */
int cache_where(const struct cache *c, const struct cache_key *k);

/* Forgets every block of a namespace (topic deleted) or of one object (it changed), in
 * both tiers and in the index. Loads in flight complete with CACHE_ESTALE; pinned bytes
 * stay valid until unpinned. */
void cache_invalidate_ns(struct cache *c, const uint8_t ns[16]);
void cache_invalidate_object(struct cache *c, const uint8_t ns[16], uint64_t object);

/* ---- figures ---- */

struct cache_tier_stats {
    uint64_t bytes;    /* held now (memory: resident plus prefetched-unread) */
    uint64_t capacity; /* the budget (whole cache, also in per-namespace figures) */
    uint64_t blocks;
    uint64_t hits, misses;
    uint64_t evictions;
    uint64_t fills;  /* blocks that entered the tier */
    uint64_t errors; /* disk: I/O errors and checksum mismatches */
};

struct cache_origin_stats {
    uint64_t requests, bytes, errors;
    uint64_t inflight;
    double latency_p99_ms; /* request to completion, over recent successful fills */
};

struct cache_stats {
    struct cache_tier_stats memory, disk;
    struct cache_origin_stats origin;
    uint64_t prefetches;      /* loads started by cache_prefetch */
    uint64_t prefetch_unused; /* prefetched blocks dropped unread */
    uint64_t reserved_bytes;  /* memory held by prefetched-unread blocks (and loads) */
    uint64_t pinned_blocks;   /* pins outstanding (whole cache only) */
    uint64_t disk_queue;      /* worker jobs not yet completed (whole cache only) */
};

/* Fills out with the figures of namespace ns, or of the whole cache when ns is NULL.
 * Memory hits and misses count cache_get calls (a call that waits is a miss); disk hits
 * and misses count loads that looked at the disk. */
void cache_stats(const struct cache *c, const uint8_t ns[16], struct cache_stats *out);

uint64_t cache_block_bytes(const struct cache *c);
/* Where the disk tier keeps k's bytes (for tests and tools). Returns 0 or -1. */
int cache_disk_path(const struct cache *c, const struct cache_key *k, char *buf, size_t len);

#endif
