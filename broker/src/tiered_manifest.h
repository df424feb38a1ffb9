/* tiered_manifest.h: the pure parts of tiered storage. A remote segment is a run of
 * stored batches uploaded as one object; its manifest record (one per segment, in the
 * pstate column family) says which offsets it holds, its size, newest timestamp and
 * ETag, and a sparse index of "stretches": runs of whole batches about
 * tiered.read.bytes long that are read back with one ranged GET each. Encoding,
 * decoding, the builder that assembles a segment, and lookups by offset and time. No
 * I/O, so all of it is unit-tested. */
#ifndef SLUICE_TIERED_MANIFEST_H
#define SLUICE_TIERED_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Manifest keys: topic_id(16) | partition(4) | TM_PSTATE_TYPE(1) | base_offset(8). The
 * type byte keeps them apart from plog's log state (0) and producer states (1). */
enum { TM_PSTATE_TYPE = 2, TM_KEY_LEN = 29, TM_ETAG_MAX = 72 };
/* Most stretches one segment may list (a bound on what a stored record may claim). */
#define TM_MAX_STRETCHES 65536

/* A stretch starts at a batch boundary: offset is that batch's base offset, pos its
 * byte position in the object, max_ts the newest timestamp in the stretch. */
struct tm_stretch {
    int64_t offset;
    uint32_t pos;
    int64_t max_ts;
};

struct tm_seg {
    int64_t base, end; /* offsets [base, end) */
    int64_t bytes;     /* object size */
    int64_t max_ts;
    char etag[TM_ETAG_MAX];
    uint32_t nidx;     /* >= 1; idx[0] is {base, 0, ...} */
    struct tm_stretch *idx;
};

/* The manifest key of segment base of a partition, and the bounds of all of them. */
void tm_key(uint8_t k[TM_KEY_LEN], const uint8_t topic_id[16], int32_t partition, int64_t base);
void tm_key_bounds(const uint8_t topic_id[16], int32_t partition, uint8_t lo[21], uint8_t hi[21]);

/* Encodes s as a manifest value. Returns a heap buffer (*len set) or NULL. */
uint8_t *tm_encode(const struct tm_seg *s, size_t *len);
/* Decodes a manifest value for the segment whose key holds base. Checks every length
 * and that the index is ordered and inside the object. Returns 0 (out->idx is heap) or
 * -1 for a corrupt record. */
int tm_decode(int64_t base, const uint8_t *v, size_t vl, struct tm_seg *out);
/* Frees s->idx; the struct itself belongs to the caller. NULL is a no-op. */
void tm_seg_clear(struct tm_seg *s);

/* The object key "<prefix>/<topic-id-hex>/<partition>/<base, 20 digits>-<end>.seg"
 * (no leading '/' when prefix is empty). Returns 0, or -1 if it does not fit. */
int tm_object_key(char *out, size_t cap, const char *prefix, const uint8_t topic_id[16],
                  int32_t partition, int64_t base, int64_t end);

/* Assembles a segment from stored batches in offset order. */
struct tm_builder {
    struct tm_seg seg;
    uint8_t *body;
    size_t len, cap;
    int64_t stretch_bytes; /* a new stretch starts once the current one is this long */
    int64_t batches;
};

void tm_builder_init(struct tm_builder *b, int64_t stretch_bytes);
/* Appends one stored batch (len bytes, its header already checked by the caller).
 * Returns 0, or -1 on a bad header, a gap in offsets or out of memory. */
int tm_builder_add(struct tm_builder *b, const uint8_t *batch, size_t len);
/* Frees what the builder holds (body and index). */
void tm_builder_free(struct tm_builder *b);

/* Index of the segment holding offset in segs[0..n) (sorted by base, contiguous or
 * not), or -1. */
int64_t tm_find(const struct tm_seg *segs, size_t n, int64_t offset);
/* The first segment at or after from whose max_ts >= ts, or -1. */
int64_t tm_find_time(const struct tm_seg *segs, size_t n, size_t from, int64_t ts);
/* The stretch of s that holds offset (the last that starts at or before it). */
uint32_t tm_stretch_find(const struct tm_seg *s, int64_t offset);
/* The first stretch of s whose max_ts >= ts, or s->nidx - 1. */
uint32_t tm_stretch_time(const struct tm_seg *s, int64_t ts);
/* Byte range [*pos, *pos + *len) of stretch i in the object. */
void tm_stretch_range(const struct tm_seg *s, uint32_t i, int64_t *pos, int64_t *len);

/* In a buffer of whole batches, the byte position of the first batch whose last
 * offset is >= offset; len when none. Stops early (returning len) at a malformed
 * header. */
size_t tm_scan_to(const uint8_t *p, size_t len, int64_t offset);

#endif
