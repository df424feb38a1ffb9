/* store.c: the RocksDB instance behind all broker state, and the only file that
 * includes RocksDB. Column families separate data with different access patterns:
 * the log is append-mostly and already compressed by clients, metadata is small.
 *
 * RocksDB's own WAL is off. A logged write is appended to our log (wal.h) and then
 * applied to the memtables; each such batch also sets META "wal.applied" to its
 * sequence number, so after a crash the value RocksDB persisted says where replay
 * starts, and a read of that key from persisted data only says which log segments
 * can be reused. RocksDB flushes all column families atomically (atomic_flush), so
 * what it persisted is always a prefix of the writes. Why not RocksDB's WAL: its
 * write path copies every byte once more, and its fsyncs (new and recycled log files,
 * MANIFEST) queued behind the filesystem journal; ours reuses its segment files in
 * place, so an acks=all fdatasync writes data only (README, Performance). */
#include "store.h"

#include "crc32c.h"
#include "kcodec.h"
#include "log.h"
#include "wal.h"

#include <fcntl.h>
#include <pthread.h>
#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Debian's RocksDB is a portable build whose CRC32C, computed over every WAL record,
 * runs in software at about 1.5 GB/s: the largest single cost of a produce. The library
 * calls rocksdb::crc32c::Extend through its PLT, so defining that symbol here lends it
 * our SSE4.2 implementation, which computes the same function bit for bit (a wrong
 * value would fail every WAL replay, which the restart tests exercise). */
uint32_t _ZN7rocksdb6crc32c6ExtendEjPKcm(uint32_t crc, const char *p, size_t n);
uint32_t _ZN7rocksdb6crc32c6ExtendEjPKcm(uint32_t crc, const char *p, size_t n)
{
    return crc32c(crc, p, n);
}

/* Logs and frees a RocksDB error; returns -1 if there was one. */
static int check(char *e, const char *what)
{
    if (!e)
        return 0;
    log_error("rocksdb %s: %s", what, e);
    free(e);
    return -1;
}

static const char *const cf_names[STORE_CF_COUNT] = {
    "default", "topics", "log", "pstate", "offsets", "share", "cache",
};

static const char wal_key[] = "wal.applied";

struct store {
    rocksdb_t *db;
    struct wal *wal;
    pthread_mutex_t wmu; /* orders logged writes: log order is apply order */
    uint64_t seq;        /* of the last logged write (under wmu) */
    rocksdb_readoptions_t *ro_persisted;
    rocksdb_options_t *opts;
    rocksdb_options_t *cf_opts[STORE_CF_COUNT];
    rocksdb_column_family_handle_t *cf[STORE_CF_COUNT];
    rocksdb_writeoptions_t *wo; /* without RocksDB's WAL, always */
    rocksdb_readoptions_t *ro;
    rocksdb_block_based_table_options_t *bbto;
    rocksdb_cache_t *block_cache;
};

struct store_wb {
    rocksdb_writebatch_t *b;
    struct store *s; /* for the column family handles */
};

struct store_it {
    rocksdb_iterator_t *it;
    rocksdb_readoptions_t *ro;
    uint8_t *bounds; /* lower then upper, owned */
};

/* Options for one column family: the log is stored uncompressed (batches arrive
 * compressed), with larger write buffers since it takes nearly all the bytes. */
static rocksdb_options_t *cf_options(struct store *s, int cf)
{
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_options_set_block_based_table_factory(o, s->bbto);
    if (cf == STORE_CF_LOG) {
        rocksdb_options_set_compression(o, rocksdb_no_compression);
        rocksdb_options_set_write_buffer_size(o, 64u << 20);
        rocksdb_options_set_max_write_buffer_number(o, 4);
        rocksdb_options_set_target_file_size_base(o, 64u << 20);
    } else {
        rocksdb_options_set_compression(o, rocksdb_lz4_compression);
        rocksdb_options_set_write_buffer_size(o, 16u << 20);
    }
    return o;
}

/* Whether dir's filesystem takes O_DIRECT (tmpfs, for one, does not). */
static bool direct_io_works(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/.direct-io-probe", dir);
    int fd = open(path, O_CREAT | O_WRONLY | O_DIRECT | O_CLOEXEC, 0600);
    if (fd >= 0)
        close(fd);
    unlink(path);
    return fd >= 0;
}

static void init_options(struct store *s, const char *dir)
{
    s->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(s->opts, 1);
    rocksdb_options_set_create_missing_column_families(s->opts, 1);
    rocksdb_options_increase_parallelism(s->opts, 2);
    rocksdb_options_set_max_background_jobs(s->opts, 2);
    rocksdb_options_set_bytes_per_sync(s->opts, 1u << 20);
    rocksdb_options_set_info_log_level(s->opts, 2 /* WARN */);
    rocksdb_options_set_keep_log_file_num(s->opts, 3);
    /* nothing goes through RocksDB's WAL: flushing all column families together is
     * what keeps them (and "wal.applied") consistent after a crash */
    rocksdb_options_set_atomic_flush(s->opts, 1);
    /* unflushed memtables are what our log must keep: this bounds it */
    rocksdb_options_set_db_write_buffer_size(s->opts, 256u << 20);
    /* An acks=all fdatasync must not wait behind a memtable flush's dirty pages (ext4
     * commits them together): flushes and compactions bypass the page cache. */
    if (direct_io_works(dir))
        rocksdb_options_set_use_direct_io_for_flush_and_compaction(s->opts, 1);
    s->block_cache = rocksdb_cache_create_lru(64u << 20);
    s->bbto = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_cache(s->bbto, s->block_cache);
    rocksdb_block_based_options_set_block_size(s->bbto, 16 * 1024);
    /* Debian's portable RocksDB computes CRC32C in software; XXH3 runs at memory speed */
    rocksdb_block_based_options_set_checksum(s->bbto, 4 /* kXXH3 */);
    rocksdb_options_set_block_based_table_factory(s->opts, s->bbto);
    for (int i = 0; i < STORE_CF_COUNT; i++)
        s->cf_opts[i] = cf_options(s, i);
    s->wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_disable_WAL(s->wo, 1);
    s->ro = rocksdb_readoptions_create();
    s->ro_persisted = rocksdb_readoptions_create();
    rocksdb_readoptions_set_read_tier(s->ro_persisted, 2 /* kPersistedTier */);
}

/* The last logged write RocksDB has in its memtables (ro) or in its files (persisted). */
static uint64_t applied_seq(struct store *s, const rocksdb_readoptions_t *ro, int *err)
{
    char *e = NULL;
    size_t vl = 0;
    char *v = rocksdb_get_cf(s->db, ro, s->cf[STORE_CF_META], wal_key, sizeof wal_key - 1, &vl, &e);
    *err = e ? -1 : 0;
    if (e) {
        log_error("rocksdb get %s: %s", wal_key, e);
        free(e);
    }
    uint64_t seq = v && vl == 8 ? kc_get_be64((const uint8_t *)v) : 0;
    free(v);
    return seq;
}

static uint64_t persisted_seq(void *arg)
{
    int err;
    return applied_seq(arg, ((struct store *)arg)->ro_persisted, &err);
}

/* Applies one logged write batch again after a crash. */
static int replay_one(void *arg, uint64_t seq, const uint8_t *payload, size_t len)
{
    struct store *s = arg;
    rocksdb_writebatch_t *b = rocksdb_writebatch_create_from((const char *)payload, len);
    char *e = NULL;
    if (!b)
        return -1;
    rocksdb_write(s->db, s->wo, b, &e);
    rocksdb_writebatch_destroy(b);
    return check(e, "replay");
}

struct store *store_open(const char *dir, char **err)
{
    return store_open_opts(dir, NULL, err);
}

struct store *store_open_opts(const char *dir, const struct store_opts *o, char **err)
{
    struct store *s = calloc(1, sizeof *s);
    if (!s) {
        *err = strdup("out of memory");
        return NULL;
    }
    pthread_mutex_init(&s->wmu, NULL);
    init_options(s, dir);
    char path[4096];
    snprintf(path, sizeof path, "%s/db", dir);
    char *e = NULL;
    s->db = rocksdb_open_column_families(s->opts, path, STORE_CF_COUNT, cf_names,
                                         (const rocksdb_options_t *const *)s->cf_opts, s->cf, &e);
    if (e) {
        *err = e;
        s->db = NULL;
        store_close(s);
        return NULL;
    }
    int rerr;
    uint64_t after = applied_seq(s, s->ro, &rerr), next;
    snprintf(path, sizeof path, "%s/wal", dir);
    uint64_t seg = o && o->wal_segment_bytes ? o->wal_segment_bytes : STORE_WAL_SEGMENT_BYTES;
    if (rerr < 0 ||
        !(s->wal = wal_open(path, seg, after, replay_one, persisted_seq, s, &next, err))) {
        if (rerr < 0 && !*err)
            *err = strdup("cannot read the write-ahead log position");
        store_close(s);
        return NULL;
    }
    s->seq = next - 1;
    return s;
}

void store_close(struct store *s)
{
    if (!s)
        return;
    if (s->db) {
        /* closing flushes the memtables (RocksDB does when writes skipped its WAL), so
         * the next open has nothing to replay */
        for (int i = 0; i < STORE_CF_COUNT; i++)
            rocksdb_column_family_handle_destroy(s->cf[i]);
        rocksdb_close(s->db);
    }
    wal_close(s->wal);
    for (int i = 0; i < STORE_CF_COUNT; i++)
        if (s->cf_opts[i])
            rocksdb_options_destroy(s->cf_opts[i]);
    if (s->wo)
        rocksdb_writeoptions_destroy(s->wo);
    if (s->ro)
        rocksdb_readoptions_destroy(s->ro);
    if (s->ro_persisted)
        rocksdb_readoptions_destroy(s->ro_persisted);
    if (s->opts)
        rocksdb_options_destroy(s->opts);
    if (s->bbto)
        rocksdb_block_based_options_destroy(s->bbto);
    if (s->block_cache)
        rocksdb_cache_destroy(s->block_cache);
    pthread_mutex_destroy(&s->wmu);
    free(s);
}

struct store_wb *store_wb_new(struct store *s)
{
    struct store_wb *wb = calloc(1, sizeof *wb);
    if (!wb)
        return NULL;
    wb->b = rocksdb_writebatch_create();
    wb->s = s;
    return wb;
}

void store_wb_free(struct store_wb *wb)
{
    if (!wb)
        return;
    rocksdb_writebatch_destroy(wb->b);
    free(wb);
}

void store_wb_clear(struct store_wb *wb)
{
    rocksdb_writebatch_clear(wb->b);
}

size_t store_wb_count(const struct store_wb *wb)
{
    return (size_t)rocksdb_writebatch_count(wb->b);
}

void store_wb_put(struct store_wb *wb, int cf, const void *k, size_t kl, const void *v, size_t vl)
{
    rocksdb_writebatch_put_cf(wb->b, wb->s->cf[cf], k, kl, v, vl);
}

void store_wb_del(struct store_wb *wb, int cf, const void *k, size_t kl)
{
    rocksdb_writebatch_delete_cf(wb->b, wb->s->cf[cf], k, kl);
}

void store_wb_del_range(struct store_wb *wb, int cf, const void *b, size_t bl, const void *e,
                        size_t el)
{
    rocksdb_writebatch_delete_range_cf(wb->b, wb->s->cf[cf], b, bl, e, el);
}

static int write_batch(struct store *s, rocksdb_writebatch_t *b, int flags)
{
    char *e = NULL;
    if (flags & STORE_NO_WAL) {
        rocksdb_write(s->db, s->wo, b, &e);
        return check(e, "write");
    }
    pthread_mutex_lock(&s->wmu);
    uint64_t seq = s->seq + 1;
    uint8_t v[8];
    kc_put_be64(v, seq);
    rocksdb_writebatch_put_cf(b, s->cf[STORE_CF_META], wal_key, sizeof wal_key - 1,
                              (const char *)v, 8);
    size_t n;
    const char *rep = rocksdb_writebatch_data(b, &n);
    int rc = wal_append(s->wal, seq, rep, n);
    if (rc == 0) {
        s->seq = seq;
        rocksdb_write(s->db, s->wo, b, &e);
        rc = check(e, "write");
    }
    pthread_mutex_unlock(&s->wmu);
    if (rc == 0 && (flags & STORE_SYNC))
        rc = wal_sync(s->wal);
    return rc;
}

int store_write(struct store *s, struct store_wb *wb, int flags)
{
    return write_batch(s, wb->b, flags);
}

int store_sync(struct store *s) { return wal_sync(s->wal); }

int store_put(struct store *s, int cf, const void *k, size_t kl, const void *v, size_t vl)
{
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    rocksdb_writebatch_put_cf(b, s->cf[cf], k, kl, v, vl);
    int rc = write_batch(s, b, 0);
    rocksdb_writebatch_destroy(b);
    return rc;
}

int store_del(struct store *s, int cf, const void *k, size_t kl)
{
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    rocksdb_writebatch_delete_cf(b, s->cf[cf], k, kl);
    int rc = write_batch(s, b, 0);
    rocksdb_writebatch_destroy(b);
    return rc;
}

void store_wal_stats(struct store *s, struct wal_stats *st) { wal_stats(s->wal, st); }

void *store_get(struct store *s, int cf, const void *k, size_t kl, size_t *vl, int *err)
{
    char *e = NULL;
    char *v = rocksdb_get_cf(s->db, s->ro, s->cf[cf], k, kl, vl, &e);
    *err = check(e, "get");
    return v;
}

struct store_it *store_it_new(struct store *s, int cf, const void *lower, size_t ll,
                              const void *upper, size_t ul)
{
    struct store_it *it = calloc(1, sizeof *it);
    if (!it)
        return NULL;
    it->ro = rocksdb_readoptions_create();
    if (ll + ul) {
        it->bounds = malloc(ll + ul);
        if (!it->bounds) {
            rocksdb_readoptions_destroy(it->ro);
            free(it);
            return NULL;
        }
        if (lower)
            memcpy(it->bounds, lower, ll);
        if (upper)
            memcpy(it->bounds + ll, upper, ul);
        if (lower)
            rocksdb_readoptions_set_iterate_lower_bound(it->ro, (char *)it->bounds, ll);
        if (upper)
            rocksdb_readoptions_set_iterate_upper_bound(it->ro, (char *)it->bounds + ll, ul);
    }
    it->it = rocksdb_create_iterator_cf(s->db, it->ro, s->cf[cf]);
    return it;
}

void store_it_free(struct store_it *it)
{
    if (!it)
        return;
    rocksdb_iter_destroy(it->it);
    rocksdb_readoptions_destroy(it->ro);
    free(it->bounds);
    free(it);
}

void store_it_seek(struct store_it *it, const void *k, size_t kl)
{
    rocksdb_iter_seek(it->it, k, kl);
}

void store_it_seek_for_prev(struct store_it *it, const void *k, size_t kl)
{
    rocksdb_iter_seek_for_prev(it->it, k, kl);
}

void store_it_first(struct store_it *it) { rocksdb_iter_seek_to_first(it->it); }
void store_it_last(struct store_it *it) { rocksdb_iter_seek_to_last(it->it); }
bool store_it_valid(const struct store_it *it) { return rocksdb_iter_valid(it->it) != 0; }
void store_it_next(struct store_it *it) { rocksdb_iter_next(it->it); }
void store_it_prev(struct store_it *it) { rocksdb_iter_prev(it->it); }

const uint8_t *store_it_key(const struct store_it *it, size_t *kl)
{
    return (const uint8_t *)rocksdb_iter_key(it->it, kl);
}

const uint8_t *store_it_value(const struct store_it *it, size_t *vl)
{
    return (const uint8_t *)rocksdb_iter_value(it->it, vl);
}

static uint64_t prop(struct store *s, int cf, const char *name)
{
    uint64_t v = 0;
    if (rocksdb_property_int_cf(s->db, s->cf[cf], name, &v) != 0)
        return 0;
    return v;
}

uint64_t store_size_bytes(struct store *s)
{
    uint64_t total = 0;
    for (int i = 0; i < STORE_CF_COUNT; i++)
        total += prop(s, i, "rocksdb.total-sst-files-size") +
                 prop(s, i, "rocksdb.size-all-mem-tables");
    return total;
}

void store_compact(struct store *s, int cf, const void *b, size_t bl, const void *e, size_t el)
{
    rocksdb_compact_range_cf(s->db, s->cf[cf], b, bl, e, el);
}

void store_log_key(uint8_t k[STORE_LOG_KEY_LEN], const uint8_t topic_id[16], int32_t partition,
                   int64_t base_offset)
{
    memcpy(k, topic_id, 16);
    kc_put_be32(k + 16, (uint32_t)partition);
    kc_put_be64(k + 20, (uint64_t)base_offset);
}

void store_part_prefix(uint8_t k[STORE_PART_PREFIX_LEN], const uint8_t topic_id[16],
                       int32_t partition)
{
    memcpy(k, topic_id, 16);
    kc_put_be32(k + 16, (uint32_t)partition);
}
