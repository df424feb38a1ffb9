/* batch.c: parsing and validation of Kafka v2 record batches. Validation never
 * allocates and never recurses: uncompressed records are walked once, in place, each
 * inside a reader bounded by its own declared length. */
#include "batch.h"

#include "crc32c.h"
#include "kcodec.h"

#include <string.h>

#define BATCH_MAGIC_V2 2
#define BATCH_MAX_COUNT (1 << 26)
/* length varint + attributes, timestampDelta, offsetDelta, keyLength, valueLength,
 * headersCount: one byte each at the least. */
#define BATCH_MIN_RECORD 7
#define BATCH_MIN_RECORD_BODY (BATCH_MIN_RECORD - 1)

int batch_parse_hdr(const uint8_t *p, size_t len, struct batch_hdr *h)
{
    if (len < BATCH_HEADER_LEN)
        return BATCH_ESHORT;
    h->base_offset = (int64_t)kc_get_be64(p + BATCH_OFF_BASE_OFFSET);
    h->length = (int32_t)kc_get_be32(p + BATCH_OFF_LENGTH);
    h->leader_epoch = (int32_t)kc_get_be32(p + BATCH_OFF_LEADER_EPOCH);
    h->magic = (int8_t)p[BATCH_OFF_MAGIC];
    h->crc = kc_get_be32(p + BATCH_OFF_CRC);
    h->attributes = (int16_t)kc_get_be16(p + BATCH_OFF_ATTRIBUTES);
    h->last_offset_delta = (int32_t)kc_get_be32(p + BATCH_OFF_LAST_DELTA);
    h->first_timestamp = (int64_t)kc_get_be64(p + BATCH_OFF_FIRST_TS);
    h->max_timestamp = (int64_t)kc_get_be64(p + BATCH_OFF_MAX_TS);
    h->producer_id = (int64_t)kc_get_be64(p + BATCH_OFF_PRODUCER_ID);
    h->producer_epoch = (int16_t)kc_get_be16(p + BATCH_OFF_PRODUCER_EPOCH);
    h->base_sequence = (int32_t)kc_get_be32(p + BATCH_OFF_BASE_SEQ);
    h->count = (int32_t)kc_get_be32(p + BATCH_OFF_COUNT);
    return BATCH_OK;
}

/* Only the 12-byte log overhead has to be present, so this also sizes a batch whose
 * body has not been read yet. */
int64_t batch_size(const uint8_t *p, size_t len)
{
    int32_t blen;

    if (len < BATCH_LOG_OVERHEAD)
        return -1;
    blen = (int32_t)kc_get_be32(p + BATCH_OFF_LENGTH);
    if (blen < BATCH_HEADER_LEN - BATCH_LOG_OVERHEAD)
        return -1;
    return (int64_t)BATCH_LOG_OVERHEAD + blen;
}

/* Skips a varint-length field; -1 (null) is allowed only when nullable. */
static int batch_skip_field(kc_reader *r, bool nullable)
{
    int32_t n = kc_varint(r);

    if (!kc_ok(r) || n < -1 || (n == -1 && !nullable))
        return BATCH_ERECORD;
    if (n >= 0)
        kc_raw(r, (size_t)n);
    return kc_ok(r) ? BATCH_OK : BATCH_ERECORD;
}

/* Header: headerKeyLength varint (not null), key, headerValueLength varint, value. */
static int batch_skip_headers(kc_reader *r)
{
    int32_t n = kc_varint(r), i;

    if (!kc_ok(r) || n < 0 || (size_t)n > kc_remaining(r) / 2)
        return BATCH_ERECORD;
    for (i = 0; i < n; i++) {
        if (batch_skip_field(r, false) != BATCH_OK || batch_skip_field(r, true) != BATCH_OK)
            return BATCH_ERECORD;
    }
    return BATCH_OK;
}

/* Checks the body of record i, which must fill r exactly. */
static int batch_check_record_body(kc_reader *r, int32_t i)
{
    int32_t offset_delta;

    kc_i8(r);      /* attributes */
    kc_varlong(r); /* timestampDelta */
    offset_delta = kc_varint(r);
    if (!kc_ok(r))
        return BATCH_ERECORD;
    if (offset_delta != i)
        return BATCH_ECOUNT;
    if (batch_skip_field(r, true) != BATCH_OK ||  /* key */
        batch_skip_field(r, true) != BATCH_OK ||  /* value */
        batch_skip_headers(r) != BATCH_OK)
        return BATCH_ERECORD;
    return kc_remaining(r) == 0 ? BATCH_OK : BATCH_ERECORD;
}

/* Walks exactly count uncompressed records that must end where the batch ends. */
static int batch_walk_records(const uint8_t *p, size_t len, int32_t count)
{
    kc_reader r, body;
    int32_t i, n;
    int rc;

    kc_reader_init(&r, p, len);
    for (i = 0; i < count; i++) {
        n = kc_varint(&r);
        if (!kc_ok(&r) || n < BATCH_MIN_RECORD_BODY || (size_t)n > kc_remaining(&r))
            return BATCH_ERECORD;
        kc_reader_init(&body, kc_raw(&r, (size_t)n), (size_t)n);
        rc = batch_check_record_body(&body, i);
        if (rc != BATCH_OK)
            return rc;
    }
    return kc_remaining(&r) == 0 ? BATCH_OK : BATCH_ERECORD;
}

/* count must be positive, match lastOffsetDelta, stay under the cap and, when the
 * records are not compressed, fit in the bytes that follow the header. */
static int batch_check_count(const struct batch_hdr *h, size_t body_len)
{
    if (h->count <= 0 || h->count > BATCH_MAX_COUNT)
        return BATCH_ECOUNT;
    if ((int64_t)h->count != (int64_t)h->last_offset_delta + 1)
        return BATCH_ECOUNT;
    if ((h->attributes & BATCH_ATTR_COMPRESSION_MASK) == 0 &&
        (size_t)h->count > body_len / BATCH_MIN_RECORD)
        return BATCH_ECOUNT;
    return BATCH_OK;
}

/* Structural checks that must pass before the header fields mean anything: magic is
 * looked at first because older formats share only the first 17 bytes. */
static int batch_check_frame(const uint8_t *p, size_t len, struct batch_hdr *h)
{
    if (len <= BATCH_OFF_MAGIC)
        return BATCH_ESHORT;
    if ((int8_t)p[BATCH_OFF_MAGIC] != BATCH_MAGIC_V2)
        return BATCH_EMAGIC;
    if (batch_parse_hdr(p, len, h) != BATCH_OK)
        return BATCH_ESHORT;
    if (batch_size(p, len) != (int64_t)len)
        return BATCH_ESHORT;
    return BATCH_OK;
}

int batch_validate(const uint8_t *p, size_t len, struct batch_hdr *h)
{
    struct batch_hdr tmp;
    int rc;

    if (!h)
        h = &tmp;
    rc = batch_check_frame(p, len, h);
    if (rc != BATCH_OK)
        return rc;
    if (crc32c(0, p + BATCH_OFF_ATTRIBUTES, len - BATCH_OFF_ATTRIBUTES) != h->crc)
        return BATCH_ECRC;
    rc = batch_check_count(h, len - BATCH_HEADER_LEN);
    if (rc != BATCH_OK)
        return rc;
    if ((h->attributes & BATCH_ATTR_COMPRESSION_MASK) != 0)
        return BATCH_OK;
    return batch_walk_records(p + BATCH_HEADER_LEN, len - BATCH_HEADER_LEN, h->count);
}

void batch_set_base_offset(uint8_t *p, int64_t base_offset)
{
    kc_put_be64(p + BATCH_OFF_BASE_OFFSET, (uint64_t)base_offset);
}

void batch_set_leader_epoch(uint8_t *p, int32_t epoch)
{
    kc_put_be32(p + BATCH_OFF_LEADER_EPOCH, (uint32_t)epoch);
}

/* Offset delta of the first record at or after ts in a stored, validated batch; -1 when
 * the batch has none. Compressed batches are not opened: the batch's first record
 * stands for all of it when maxTimestamp qualifies. */
int32_t batch_offset_for_time(const uint8_t *p, size_t len, int64_t ts, int64_t *found_ts)
{
    struct batch_hdr h;
    if (batch_parse_hdr(p, len, &h) != BATCH_OK || h.max_timestamp < ts)
        return -1;
    *found_ts = h.max_timestamp;
    if ((h.attributes & BATCH_ATTR_COMPRESSION_MASK) != 0 ||
        (h.attributes & BATCH_ATTR_TIMESTAMP_LOG_APPEND) != 0)
        return 0;
    kc_reader r;
    kc_reader_init(&r, p + BATCH_HEADER_LEN, len - BATCH_HEADER_LEN);
    for (int32_t i = 0; i < h.count; i++) {
        int32_t n = kc_varint(&r);
        const uint8_t *rec = kc_raw(&r, n > 0 ? (size_t)n : 0);
        if (!kc_ok(&r) || n <= 0)
            break;
        kc_reader body;
        kc_reader_init(&body, rec, (size_t)n);
        kc_i8(&body);
        int64_t d = kc_varlong(&body), t;
        if (__builtin_add_overflow(h.first_timestamp, d, &t)) /* the wire chose both */
            t = d < 0 ? INT64_MIN : INT64_MAX;
        int32_t delta = kc_varint(&body);
        if (kc_ok(&body) && t >= ts) {
            *found_ts = t;
            return delta;
        }
    }
    return 0;
}

/* ---- encoding ---- */

static int varint_len(int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    int n = 1;
    while (z >= 0x80) {
        z >>= 7;
        n++;
    }
    return n;
}

static int64_t value_len(const struct batch_record *r)
{
    int64_t n = 0;
    for (int i = 0; i < r->nvalue; i++)
        n += (int64_t)r->value[i].len;
    return n;
}

/* Size of the record body (everything after the length varint), or -1. */
static int64_t record_body_size(const struct batch_record *r, int32_t delta, int64_t first_ts)
{
    int64_t vl = value_len(r), n = 1; /* attributes */
    if (vl > INT32_MAX || r->key_len > INT32_MAX || r->nheaders < 0)
        return -1;
    n += varint_len(r->timestamp - first_ts) + varint_len(delta);
    n += r->key ? varint_len((int64_t)r->key_len) + (int64_t)r->key_len : 1;
    n += r->null_value ? 1 : varint_len(vl) + vl;
    n += varint_len(r->nheaders);
    for (int i = 0; i < r->nheaders; i++) {
        const struct batch_header_kv *h = &r->headers[i];
        if (h->key_len > INT32_MAX || h->value_len > INT32_MAX)
            return -1;
        n += varint_len((int64_t)h->key_len) + (int64_t)h->key_len;
        n += h->value ? varint_len((int64_t)h->value_len) + (int64_t)h->value_len : 1;
    }
    return n > INT32_MAX ? -1 : n;
}

int64_t batch_record_size(const struct batch_record *r, int32_t offset_delta, int64_t first_ts)
{
    int64_t n = record_body_size(r, offset_delta, first_ts);
    return n < 0 ? -1 : n + varint_len(n);
}

void batch_enc_begin(struct batch_enc *e, kc_writer *w, int64_t base_offset, int64_t first_ts)
{
    *e = (struct batch_enc){.w = w, .at = w->len, .base_offset = base_offset,
                            .first_ts = first_ts, .max_ts = first_ts, .last_delta = -1};
    uint8_t *h = kc_w_room(w, BATCH_HEADER_LEN);
    if (!h)
        return;
    memset(h, 0, BATCH_HEADER_LEN);
    kc_w_commit(w, BATCH_HEADER_LEN);
}

int batch_enc_add(struct batch_enc *e, const struct batch_record *r, int32_t offset_delta)
{
    int64_t body = record_body_size(r, offset_delta, e->first_ts);
    kc_writer *w = e->w;
    if (body < 0 || offset_delta <= e->last_delta || w->err)
        return -1;
    kc_w_varint(w, (int32_t)body);
    kc_w_i8(w, 0);
    kc_w_varlong(w, r->timestamp - e->first_ts);
    kc_w_varint(w, offset_delta);
    kc_w_varint(w, r->key ? (int32_t)r->key_len : -1);
    if (r->key)
        kc_w_raw(w, r->key, r->key_len);
    kc_w_varint(w, r->null_value ? -1 : (int32_t)value_len(r));
    for (int i = 0; !r->null_value && i < r->nvalue; i++)
        kc_w_raw(w, r->value[i].p, r->value[i].len);
    kc_w_varint(w, r->nheaders);
    for (int i = 0; i < r->nheaders; i++) {
        const struct batch_header_kv *h = &r->headers[i];
        kc_w_varint(w, (int32_t)h->key_len);
        kc_w_raw(w, h->key, h->key_len);
        kc_w_varint(w, h->value ? (int32_t)h->value_len : -1);
        if (h->value)
            kc_w_raw(w, h->value, h->value_len);
    }
    if (r->timestamp > e->max_ts)
        e->max_ts = r->timestamp;
    e->count++;
    e->last_delta = offset_delta;
    return w->err ? -1 : 0;
}

int64_t batch_enc_end(struct batch_enc *e, int32_t claim_last_delta)
{
    kc_writer *w = e->w;
    if (w->err || e->count == 0 || w->len - e->at > INT32_MAX)
        return -1;
    uint8_t *p = w->p + e->at;
    size_t len = w->len - e->at;
    int32_t last = claim_last_delta > e->last_delta ? claim_last_delta : e->last_delta;
    kc_put_be64(p + BATCH_OFF_BASE_OFFSET, (uint64_t)e->base_offset);
    kc_put_be32(p + BATCH_OFF_LENGTH, (uint32_t)(len - BATCH_LOG_OVERHEAD));
    kc_put_be32(p + BATCH_OFF_LEADER_EPOCH, 0);
    p[BATCH_OFF_MAGIC] = BATCH_MAGIC_V2;
    p[BATCH_OFF_ATTRIBUTES] = 0;
    p[BATCH_OFF_ATTRIBUTES + 1] = 0;
    kc_put_be32(p + BATCH_OFF_LAST_DELTA, (uint32_t)last);
    kc_put_be64(p + BATCH_OFF_FIRST_TS, (uint64_t)e->first_ts);
    kc_put_be64(p + BATCH_OFF_MAX_TS, (uint64_t)e->max_ts);
    kc_put_be64(p + BATCH_OFF_PRODUCER_ID, (uint64_t)-1);
    p[BATCH_OFF_PRODUCER_EPOCH] = 0xff;
    p[BATCH_OFF_PRODUCER_EPOCH + 1] = 0xff;
    kc_put_be32(p + BATCH_OFF_BASE_SEQ, (uint32_t)-1);
    kc_put_be32(p + BATCH_OFF_COUNT, (uint32_t)e->count);
    uint32_t crc = crc32c(0, p + BATCH_OFF_ATTRIBUTES, len - BATCH_OFF_ATTRIBUTES);
    kc_put_be32(p + BATCH_OFF_CRC, crc);
    return (int64_t)len;
}
