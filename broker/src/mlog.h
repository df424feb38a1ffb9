/* mlog.h: an in-memory log of record batches: the whole log of a `memory` topic's
 * partition, and the hot window of a `hybrid` one. Batches sit in a ring in offset
 * order; the oldest go first when the byte budget is exceeded. */
#ifndef SLUICE_MLOG_H
#define SLUICE_MLOG_H

#include "kcodec.h"

#include <stddef.h>
#include <stdint.h>

struct mlog;

struct mlog *mlog_new(void);
void mlog_free(struct mlog *m);

/* Copies one stored-form batch (baseOffset already set) at the end. base must be at or
 * after the previous batch's end. Returns 0 or -1 (out of memory). */
int mlog_append(struct mlog *m, const uint8_t *batch, size_t len, int64_t base, int32_t count,
                int64_t max_ts);
/* Drops the oldest batches until at most max_bytes are held (max_bytes < 0: no limit). */
void mlog_trim_bytes(struct mlog *m, int64_t max_bytes);
/* Drops batches that end at or before offset. */
void mlog_trim_before(struct mlog *m, int64_t offset);
/* Drops the newest batches whose base is at or after offset (undoing an append). */
void mlog_drop_from(struct mlog *m, int64_t offset);
/* Drops batches whose max timestamp is before ts_ms, stopping at the first that is not. */
void mlog_trim_time(struct mlog *m, int64_t ts_ms);

/* First offset held (base of the oldest batch), or -1 when empty. */
int64_t mlog_first(const struct mlog *m);
int64_t mlog_bytes(const struct mlog *m);

/* Copies whole batches starting with the one holding offset, up to max_bytes but at
 * least one when must_return_one. Sets *copied. Returns 0, or -1 when offset is not
 * held (before the first batch). */
int mlog_read(const struct mlog *m, int64_t offset, int64_t max_bytes, bool must_return_one,
              kc_writer *w, int64_t *copied);
/* Offset of the first record with timestamp >= ts_ms, or -1. */
int64_t mlog_offset_for_time(const struct mlog *m, int64_t ts_ms, int64_t *found_ts);

#endif
