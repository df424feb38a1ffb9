/* batch.h: Kafka record batches (magic v2). The broker stores batches exactly as the
 * client sent them and only ever rewrites baseOffset, which lies outside the CRC. */
#ifndef SLUICE_BATCH_H
#define SLUICE_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Byte offsets of the v2 batch header fields. */
enum {
    BATCH_OFF_BASE_OFFSET = 0,
    BATCH_OFF_LENGTH = 8,        /* batchLength: bytes after this field */
    BATCH_OFF_LEADER_EPOCH = 12,
    BATCH_OFF_MAGIC = 16,
    BATCH_OFF_CRC = 17,          /* CRC32C of everything from attributes to the end */
    BATCH_OFF_ATTRIBUTES = 21,
    BATCH_OFF_LAST_DELTA = 23,
    BATCH_OFF_FIRST_TS = 27,
    BATCH_OFF_MAX_TS = 35,
    BATCH_OFF_PRODUCER_ID = 43,
    BATCH_OFF_PRODUCER_EPOCH = 51,
    BATCH_OFF_BASE_SEQ = 53,
    BATCH_OFF_COUNT = 57,
    BATCH_HEADER_LEN = 61,
    BATCH_LOG_OVERHEAD = 12,     /* baseOffset + batchLength */
};

/* Attribute bits. */
enum {
    BATCH_ATTR_COMPRESSION_MASK = 0x07, /* 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd */
    BATCH_ATTR_TIMESTAMP_LOG_APPEND = 0x08,
    BATCH_ATTR_TRANSACTIONAL = 0x10,
    BATCH_ATTR_CONTROL = 0x20,
};

struct batch_hdr {
    int64_t base_offset;
    int32_t length;          /* batchLength */
    int32_t leader_epoch;
    int8_t magic;
    uint32_t crc;
    int16_t attributes;
    int32_t last_offset_delta;
    int64_t first_timestamp;
    int64_t max_timestamp;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
    int32_t count;
};

/* Results of batch_validate, mapped by callers to Kafka error codes. */
enum {
    BATCH_OK = 0,
    BATCH_ESHORT = -1,    /* truncated header or batchLength past the buffer: CORRUPT_MESSAGE */
    BATCH_EMAGIC = -2,    /* magic != 2: UNSUPPORTED_FOR_MESSAGE_FORMAT */
    BATCH_ECRC = -3,      /* CRC32C mismatch: CORRUPT_MESSAGE */
    BATCH_ECOUNT = -4,    /* impossible record count or offset delta: INVALID_RECORD */
    BATCH_ERECORD = -5,   /* an uncompressed record does not parse: INVALID_RECORD */
};

/* Decodes the fixed header of the batch at p (len bytes available). Returns 0 or
 * BATCH_ESHORT. Does not check the CRC. */
int batch_parse_hdr(const uint8_t *p, size_t len, struct batch_hdr *h);

/* Total size on the wire of the batch at p: 12 + batchLength, or -1 if the header is
 * short or batchLength is negative or impossible. */
int64_t batch_size(const uint8_t *p, size_t len);

/* Fully checks one batch occupying exactly len bytes: header, magic, CRC32C, count ==
 * lastOffsetDelta + 1, and for uncompressed batches that exactly count records parse
 * and fill the batch. Fills *h on success. */
int batch_validate(const uint8_t *p, size_t len, struct batch_hdr *h);

/* Offset delta of the first record whose timestamp is >= ts in a stored batch (whose
 * found timestamp goes to *found_ts), or -1 when no record qualifies. Compressed
 * batches answer for their first record. */
int32_t batch_offset_for_time(const uint8_t *p, size_t len, int64_t ts, int64_t *found_ts);

/* ---- encoding (dataset topics build their batches on the broker) ---- */

struct kc_writer;

/* A value in pieces, so a record can be written straight from cache blocks. */
struct batch_piece {
    const void *p;
    size_t len;
};

struct batch_header_kv {
    const char *key;
    size_t key_len;
    const void *value; /* NULL: a null header value */
    size_t value_len;
};

/* One record. key/value NULL means null. The value is value[0..nvalue) concatenated. */
struct batch_record {
    const void *key;
    size_t key_len;
    const struct batch_piece *value;
    int nvalue;
    bool null_value;
    const struct batch_header_kv *headers;
    int nheaders;
    int64_t timestamp;
};

/* An uncompressed magic-v2 batch being written into a writer. */
struct batch_enc {
    struct kc_writer *w;
    size_t at;            /* where the batch starts in w */
    int64_t base_offset;
    int64_t first_ts, max_ts;
    int32_t count;
    int32_t last_delta;   /* offsetDelta of the last record added */
};

/* Bytes record r takes in a batch (its length varint included), or -1 when a field is
 * too big for the format (any length past INT32_MAX). */
int64_t batch_record_size(const struct batch_record *r, int32_t offset_delta, int64_t first_ts);
/* Starts a batch at base_offset; every record's timestamp is a delta from first_ts. */
void batch_enc_begin(struct batch_enc *e, struct kc_writer *w, int64_t base_offset,
                     int64_t first_ts);
/* Appends r with offsetDelta (strictly increasing across calls). Returns 0 or -1. */
int batch_enc_add(struct batch_enc *e, const struct batch_record *r, int32_t offset_delta);
/* Fills in the header and CRC32C. lastOffsetDelta is last_delta, or the larger
 * claim_last_delta (>= 0): a batch may claim offsets past its last record, as compacted
 * batches do, so that consumers move their position past a gap. Returns the batch's
 * size, or -1 (no records, or the writer failed). */
int64_t batch_enc_end(struct batch_enc *e, int32_t claim_last_delta);

/* Rewrites baseOffset in place. */
void batch_set_base_offset(uint8_t *p, int64_t base_offset);
/* Rewrites partitionLeaderEpoch in place (also outside the CRC). */
void batch_set_leader_epoch(uint8_t *p, int32_t epoch);

#endif
