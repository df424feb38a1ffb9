/* store.h: the broker's one RocksDB instance, with our write-ahead log (wal.h) in
 * front of it. Every other module goes through this interface; only store.c includes
 * RocksDB. Keys are big-endian so they sort in the
 * order the broker scans them. */
#ifndef SLUICE_STORE_H
#define SLUICE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum store_cf {
    STORE_CF_META = 0,  /* broker-wide counters: producer id blocks, cluster id */
    STORE_CF_TOPICS,    /* topic name -> topic record */
    STORE_CF_LOG,       /* topic_id(16) | partition(4) | base_offset(8) -> batch */
    STORE_CF_PSTATE,    /* per-partition state: log start, producer sequences */
    STORE_CF_OFFSETS,   /* consumer group offsets */
    STORE_CF_SHARE,     /* share-group state */
    STORE_CF_CACHE,     /* dataset disk-cache index */
    STORE_CF_COUNT
};

enum { STORE_LOG_KEY_LEN = 28, STORE_PART_PREFIX_LEN = 20 };

/* Write flags. A write is logged (wal.h) unless STORE_NO_WAL: an unlogged write is
 * lost in a crash unless RocksDB flushed it first (hybrid topics). STORE_SYNC makes
 * the write durable before returning. */
enum { STORE_NO_WAL = 1, STORE_SYNC = 2 };

enum { STORE_WAL_SEGMENT_BYTES = 64 << 20 };

struct store_opts {
    uint64_t wal_segment_bytes; /* 0: STORE_WAL_SEGMENT_BYTES */
};

struct store;
struct store_wb;
struct store_it;

/* Opens (creating if needed) the database under dir. On failure returns NULL and sets
 * *err to a heap message the caller frees. */
struct store *store_open(const char *dir, char **err);
struct store *store_open_opts(const char *dir, const struct store_opts *o, char **err);
void store_close(struct store *s);

struct store_wb *store_wb_new(struct store *s);
void store_wb_free(struct store_wb *wb);
void store_wb_clear(struct store_wb *wb);
size_t store_wb_count(const struct store_wb *wb);
void store_wb_put(struct store_wb *wb, int cf, const void *k, size_t kl, const void *v, size_t vl);
void store_wb_del(struct store_wb *wb, int cf, const void *k, size_t kl);
/* Deletes [b, e). */
void store_wb_del_range(struct store_wb *wb, int cf, const void *b, size_t bl, const void *e,
                        size_t el);
/* Applies the batch atomically. Returns 0 or -1 (logged). */
int store_write(struct store *s, struct store_wb *wb, int flags);

/* Makes every logged write so far durable (fdatasync of the log). Safe from any
 * thread. */
int store_sync(struct store *s);

struct wal_stats;
void store_wal_stats(struct store *s, struct wal_stats *st);

int store_put(struct store *s, int cf, const void *k, size_t kl, const void *v, size_t vl);
int store_del(struct store *s, int cf, const void *k, size_t kl);
/* Returns a malloc'd copy of the value, or NULL when absent (*err = 0) or on error
 * (*err = -1). */
void *store_get(struct store *s, int cf, const void *k, size_t kl, size_t *vl, int *err);

/* Iterators. Bounds, when given, are copied; the iterator only sees [lower, upper). */
struct store_it *store_it_new(struct store *s, int cf, const void *lower, size_t ll,
                              const void *upper, size_t ul);
void store_it_free(struct store_it *it);
void store_it_seek(struct store_it *it, const void *k, size_t kl);
void store_it_seek_for_prev(struct store_it *it, const void *k, size_t kl);
void store_it_first(struct store_it *it);
void store_it_last(struct store_it *it);
bool store_it_valid(const struct store_it *it);
void store_it_next(struct store_it *it);
void store_it_prev(struct store_it *it);
const uint8_t *store_it_key(const struct store_it *it, size_t *kl);
const uint8_t *store_it_value(const struct store_it *it, size_t *vl);

/* Approximate bytes held (SST files plus memtables). */
uint64_t store_size_bytes(struct store *s);
/* Asks RocksDB to compact [b, e) so deleted ranges give their space back. */
void store_compact(struct store *s, int cf, const void *b, size_t bl, const void *e, size_t el);

/* Key builders. */
void store_log_key(uint8_t k[STORE_LOG_KEY_LEN], const uint8_t topic_id[16], int32_t partition,
                   int64_t base_offset);
void store_part_prefix(uint8_t k[STORE_PART_PREFIX_LEN], const uint8_t topic_id[16],
                       int32_t partition);

#endif
