/* tiered.h: storage.mode tiered. A tiered partition is a persistent log locally; data
 * older than local.retention.ms or beyond local.retention.bytes is uploaded to S3
 * (tiered.s3.uri) as segment objects and deleted locally only once the PUT succeeded
 * and the segment's manifest record is written, in the same atomic store write as the
 * local deletion. Reads below the local start come back from S3 with ranged GETs into
 * a small LRU of segment stretches: a read that has to wait starts the GET, returns
 * what it has, and wakes the partition's parked fetches when the bytes land.
 * retention.ms and retention.bytes count remote and local data together and delete
 * remote segments too. The partition's log start is the remote log start.
 *
 * Threads: everything runs on the loop except the planning scan (which reads the store
 * and assembles segment bodies) on the module's own worker thread. */
#ifndef SLUICE_TIERED_H
#define SLUICE_TIERED_H

#include "kafka.h"
#include "tiered_manifest.h"

#include <stdbool.h>
#include <stdint.h>

struct broker;
struct partition;
struct tiered;

/* A tiered partition's remote side, hung off struct partition. */
struct tpart {
    int64_t local_start;  /* the first stored local batch's base offset; hwm when none */
    struct tm_seg *segs;  /* remote segments in offset order */
    size_t n, cap;
    int64_t remote_bytes; /* of the segments at or above the log start */
};

/* Counters for metrics and the admin API. */
struct tiered_stats {
    uint64_t uploads, upload_bytes, upload_errors;
    uint64_t remote_reads, remote_read_bytes, remote_read_errors;
    uint64_t remote_deletes, cache_hits, cache_misses;
    int64_t cache_bytes;
};

/* Starts the module: the S3 client and the upload timer when tiered.s3.uri is set,
 * otherwise an inert module (tiered topics are then refused at creation). Returns NULL
 * on bad configuration (logged). */
struct tiered *tiered_new(struct broker *b);
void tiered_free(struct tiered *t);
void tiered_stats(const struct tiered *t, struct tiered_stats *out);

/* Deletes a deleted tiered topic's segment objects in the background. */
struct topic;
void tiered_topic_deleted(struct broker *b, const struct topic *tp);

/* ---- hooks for plog.c ---- */

/* Loads p's manifest and finds its local start; moves p->hwm past remote data when the
 * local log is empty. Sets p->tier. Returns 0 or -1. */
int tiered_part_load(struct broker *b, struct partition *p);
void tiered_part_free(struct tpart *tp);
/* The local log lost everything below first_kept (upload, retention, DeleteRecords). */
void tiered_local_cut(struct partition *p, int64_t first_kept);
/* Copies whole batches from S3-backed segments starting at offset (below the local
 * start), like plog_read. What is not in memory yet is fetched and the partition woken
 * when it lands; until then fewer (or no) bytes come back. Returns a Kafka error. */
int tiered_read(struct broker *b, struct partition *p, int64_t offset, int64_t max_bytes,
                bool must_return_one, struct kc_writer *w, int64_t *copied);
/* ListOffsets by time over the remote segments. Sets *answered when the answer lies in
 * them (otherwise the caller scans the local log). When the bytes are not in memory
 * the GET is started, the lookup marked as missed (see tiered_lookup_end) and the
 * stretch's first offset returned meanwhile. */
int64_t tiered_offset_for_time(struct broker *b, struct partition *p, int64_t ts,
                               int64_t *found_ts, bool *answered);

/* ---- hooks for ListOffsets: a request whose lookups missed is run again ---- */

void tiered_lookup_begin(struct broker *b);
/* Called as a handler's last step: when a lookup since tiered_lookup_begin missed, keeps
 * the request and runs fn again once the bytes are in (at most a few times), returning
 * KAPI_DEFER; otherwise KAPI_DONE. body_at/body_off: w->len and req->r.off on entry. */
int tiered_lookup_end(struct kreq *req, kc_writer *w, size_t body_at, size_t body_off,
                      kapi_fn *fn);

#endif
