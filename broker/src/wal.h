/* wal.h: Sluice's own write-ahead log, under the store. RocksDB runs with its WAL off;
 * store.c appends each logged write batch here, as one record, before applying it, and
 * an fdatasync of this log is what makes an acks=all write durable.
 *
 * The log is a small pool of segment files in <data>/wal/. A segment whose records
 * RocksDB has flushed to its SST files is reused: overwritten in place, so that once
 * the pool has been written through, an append changes no file size and an fdatasync
 * is a data write and a cache flush, with no filesystem journal commit behind it.
 *
 * Segment: a 32-byte header {magic "SLUICEWL", version(4), crc(4) of the rest,
 * first_seq(8), salt(8)}, then records {len(4), crc(4), seq(8), payload(len)} with
 * crc = CRC-32C of salt, seq and payload, all big-endian (kcodec.h). The salt is drawn afresh
 * each time a file is (re)used. Sequence numbers rise by one per record across
 * segments, forever; reading a segment stops at the first record that is torn,
 * corrupt, or left over from the file's previous use (wrong seq or wrong salt). */
#ifndef SLUICE_WAL_H
#define SLUICE_WAL_H

#include <stddef.h>
#include <stdint.h>

enum { WAL_HEADER_LEN = 32, WAL_RECORD_HDR = 16 };

struct wal;

/* Returns the highest sequence number whose effects are durable without the log (the
 * store reads it from RocksDB's persisted data); segments holding only records at or
 * below it can be reused. */
typedef uint64_t wal_persisted_fn(void *arg);

/* Called by wal_open for each record with seq > after, in order. A non-zero return
 * stops the replay and fails wal_open. */
typedef int wal_replay_fn(void *arg, uint64_t seq, const uint8_t *payload, size_t len);

/* Opens (creating if needed) the log in dir, replays every record with seq > after
 * through fn, and readies the log to append record *next_seq, which it sets to one
 * past the last record replayed (or after + 1). segment_bytes is the size of a
 * segment (a record larger than that gets a segment of its own). On failure returns
 * NULL and sets *err to a heap message the caller frees. */
struct wal *wal_open(const char *dir, uint64_t segment_bytes, uint64_t after, wal_replay_fn *fn,
                     wal_persisted_fn *persisted, void *arg, uint64_t *next_seq, char **err);
void wal_close(struct wal *w);

/* Appends one record; seq must be one past the previous record's. Not thread-safe:
 * the caller serializes appends (store.c holds its write lock). Returns 0 or -1
 * (logged); after -1 nothing of the record is counted as written. */
int wal_append(struct wal *w, uint64_t seq, const void *payload, size_t len);

/* Makes every record appended before the call durable. Safe from any thread, at the
 * same time as appends. Returns 0 or -1 (logged). */
int wal_sync(struct wal *w);

struct wal_stats {
    uint64_t segments;       /* files in the pool */
    uint64_t bytes;          /* bytes those files take */
    uint64_t appended_bytes; /* record bytes appended since open */
    uint64_t syncs;          /* fdatasync calls */
    uint64_t reused;         /* segments reused rather than created */
};
void wal_stats(struct wal *w, struct wal_stats *st);

#endif
