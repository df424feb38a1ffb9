/* dataset_format.h: the pure parts of dataset topics, kept apart so they can be tested
 * without a broker: the offset scheme, ustar header parsing and line splitting.
 *
 * Offsets. Object i of a topic with P partitions lives in partition i mod P as that
 * partition's object j = i / P. Record r of it has offset (j << 24) | r. A partition's
 * high watermark is (objects in it) << 24. Offsets never move: a rescan only appends
 * objects, and an object's records come from its immutable bytes. The gaps between
 * objects are claimed by each object's last batch (lastOffsetDelta runs to the end of
 * the object's range, as a compacted batch's does), so consumers step over them and
 * reach the high watermark at the end of the partition. An object yields at most
 * 2^24 - 1 records; further records (lines past that) are not served. */
#ifndef SLUICE_DATASET_FORMAT_H
#define SLUICE_DATASET_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { DSF_REC_BITS = 24 };
#define DSF_REC_MAX ((int64_t)1 << DSF_REC_BITS) /* records per object, exclusive */

enum dsf_format { DSF_OBJECT = 0, DSF_CHUNK, DSF_LINES, DSF_TAR };

/* "object", "chunk", "lines", "tar" -> enum dsf_format, or -1. */
int dsf_format_parse(const char *s);
const char *dsf_format_name(int f);

static inline int64_t dsf_offset(int64_t j, int64_t r) { return (j << DSF_REC_BITS) | r; }
static inline int64_t dsf_obj_of(int64_t off) { return off >> DSF_REC_BITS; }
static inline int64_t dsf_rec_of(int64_t off) { return off & (DSF_REC_MAX - 1); }

/* Partition of object i, and its place j in that partition; and back. */
static inline int32_t dsf_partition(uint64_t i, int32_t parts) { return (int32_t)(i % (uint64_t)parts); }
static inline uint64_t dsf_local(uint64_t i, int32_t parts) { return i / (uint64_t)parts; }
static inline uint64_t dsf_global(uint64_t j, int32_t p, int32_t parts)
{
    return j * (uint64_t)parts + (uint64_t)p;
}
/* Objects in partition p when the topic holds n objects. */
static inline uint64_t dsf_part_objects(uint64_t n, int32_t p, int32_t parts)
{
    return n > (uint64_t)p ? (n - (uint64_t)p + (uint64_t)parts - 1) / (uint64_t)parts : 0;
}
/* Chunks of an object of size bytes (an empty object is one empty chunk). */
int64_t dsf_chunks(int64_t size, int64_t chunk_bytes);

/* ---- tar (ustar, GNU and pax long names) ---- */

enum { DSF_TAR_BLOCK = 512, DSF_TAR_NAME_MAX = 4096 };

enum dsf_tar_kind {
    DSF_TAR_FILE = 0,    /* a regular member: one record */
    DSF_TAR_SKIP = 1,    /* directories, links, devices: no record */
    DSF_TAR_LONGNAME = 2,/* GNU 'L': the data is the next member's name */
    DSF_TAR_PAX = 3,     /* pax 'x': the data may hold the next member's path */
    DSF_TAR_END = 4,     /* an all-zero block: end of archive */
    DSF_TAR_EBAD = -1,   /* bad checksum, bad size field or impossible size */
};

struct dsf_tar_hdr {
    char name[256 + 2]; /* prefix "/" name, NUL-terminated */
    int64_t size;       /* data bytes (the member takes 512 + round_up(size, 512)) */
    char type;
};

/* Parses the 512-byte header h. Sizes beyond max_size (and base-256 sizes that do not
 * fit 63 bits) are DSF_TAR_EBAD. Returns a dsf_tar_kind. */
int dsf_tar_parse(const uint8_t h[DSF_TAR_BLOCK], int64_t max_size, struct dsf_tar_hdr *out);
/* Bytes a member of data size takes, header included; -1 on overflow. */
int64_t dsf_tar_span(int64_t size);
/* Finds "path=" in a pax extended header's data; copies it into out (NUL-terminated,
 * at most cap - 1 bytes). Returns its length, or -1 when absent or malformed. */
int dsf_pax_path(const uint8_t *p, size_t len, char *out, size_t cap);

/* ---- lines ---- */

/* A line splitter fed an object's bytes in order, block by block. */
struct dsf_lines {
    uint64_t start; /* where the current (unfinished) line starts */
};

/* Called for each line [off, off + len) without its '\n' (a CRLF line keeps its '\r':
 * lines are served byte for byte). Returning nonzero stops the scan. */
typedef int dsf_line_fn(void *arg, uint64_t off, uint64_t len);

/* Feeds bytes [base, base + n) of the object. Returns 0, or what fn returned. */
int dsf_lines_feed(struct dsf_lines *s, const uint8_t *p, size_t n, uint64_t base,
                   dsf_line_fn *fn, void *arg);
/* Ends the object of size bytes: a last line without '\n' is reported. */
int dsf_lines_finish(struct dsf_lines *s, uint64_t size, dsf_line_fn *fn, void *arg);

#endif
