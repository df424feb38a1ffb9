/* cache_disk.h: the block cache's disk tier, used only by cache.c. One file per block
 * under dir/<hh>/<key in hex>; the index (key -> block size, length, CRC32C) lives in
 * STORE_CF_CACHE and is loaded at start, so the tier survives restarts. File I/O runs on
 * a worker thread this module owns; the index is written from the loop, and only once
 * the file is complete, so an index record always names a whole file unless the machine
 * crashed, and then the checksum catches it. */
#ifndef SLUICE_CACHE_DISK_H
#define SLUICE_CACHE_DISK_H

#include "cache.h"
#include "cache_map.h"
#include "kcodec.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct ev_loop;
struct store;
struct cdisk;

enum { CACHE_KEY_LEN = 28 }; /* ns(16) | object(8, big-endian) | block(4, big-endian) */

static inline void cache_key_pack(uint8_t out[CACHE_KEY_LEN], const struct cache_key *k)
{
    memcpy(out, k->ns, 16);
    kc_put_be64(out + 16, k->object);
    kc_put_be32(out + 24, k->block);
}

static inline void cache_key_unpack(struct cache_key *k, const uint8_t in[CACHE_KEY_LEN])
{
    memset(k, 0, sizeof *k);
    memcpy(k->ns, in, 16);
    k->object = kc_get_be64(in + 16);
    k->block = kc_get_be32(in + 24);
}

static inline bool cache_key_eq(const struct cache_key *a, const struct cache_key *b)
{
    return a->object == b->object && a->block == b->block && memcmp(a->ns, b->ns, 16) == 0;
}

static inline uint64_t cache_key_hash(const struct cache_key *k)
{
    uint64_t a, b;
    memcpy(&a, k->ns, 8);
    memcpy(&b, k->ns + 8, 8);
    uint64_t h = cache_mix64(a);
    h = cache_mix64(h ^ b);
    h = cache_mix64(h ^ k->object);
    return cache_mix64(h ^ k->block);
}

/* Reports a change to one figure of struct cache_stats (off is its offsetof) for the
 * namespace ns. */
typedef void cdisk_stat_fn(void *ctx, const uint8_t ns[16], size_t off, int64_t delta);
/* A read finished: rc 0 and buf (malloc'd, now the callee's) of len bytes, or rc < 0 and
 * a message; the entry was then dropped from the tier. */
typedef void cdisk_read_fn(void *arg, uint8_t *buf, size_t len, int rc, const char *msg);
/* A write no longer needs the bytes it was given. */
typedef void cdisk_release_fn(void *arg);

/* Opens the tier: creates dir, loads the index, trims it to capacity and queues the
 * sweep of unknown files. Returns NULL (logged) on failure. */
struct cdisk *cdisk_new(struct ev_loop *loop, struct store *store, const char *dir,
                        uint64_t capacity, uint32_t block_bytes, cdisk_stat_fn *stat, void *ctx);
/* Stops the worker and frees the tier. Queued jobs are dropped without their callbacks
 * (read buffers are freed; written bytes are not released). */
void cdisk_free(struct cdisk *d);

bool cdisk_has(const struct cdisk *d, const struct cache_key *k);
/* Reads k on the worker and calls fn on the loop. Returns 0 when queued, 1 when k is not
 * on disk (a miss; fn not called), or -1 when the job could not be queued. */
int cdisk_read(struct cdisk *d, const struct cache_key *k, cdisk_read_fn *fn, void *arg);
/* Admits k (write-through), evicting what the policy says. data stays valid until
 * release(arg) runs on the loop. Returns 0 when queued, or -1 (k already on disk, or no
 * memory; release is not called). */
int cdisk_write(struct cdisk *d, const struct cache_key *k, const uint8_t *data, size_t len,
                cdisk_release_fn *release, void *arg);
/* Drops every block of ns, or of (ns, *object) when object is non-NULL. */
void cdisk_invalidate(struct cdisk *d, const uint8_t ns[16], const uint64_t *object);

uint64_t cdisk_capacity(const struct cdisk *d);
/* Worker jobs queued or running. */
size_t cdisk_queue(const struct cdisk *d);
int cdisk_path(const struct cdisk *d, const struct cache_key *k, char *buf, size_t len);

#endif
