/* kcodec.h: Kafka wire primitives. A reader borrows from a complete frame and its error
 * is sticky, so a parser reads a run of fields and checks kc_ok() once. A writer grows
 * a heap buffer up to a ceiling and is sticky on error in the same way. */
#ifndef SLUICE_KCODEC_H
#define SLUICE_KCODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Errors a reader or writer can hold. */
enum {
    KC_OK = 0,
    KC_ESHORT = -1,  /* a field runs past the end of the frame */
    KC_EINVAL = -2,  /* a malformed value: bad varint, negative length, count too big */
    KC_ENOMEM = -3,  /* the writer could not grow or passed its ceiling */
};

typedef struct kc_reader {
    const uint8_t *p;
    size_t len;
    size_t off;
    int err;
} kc_reader;

/* A string or byte view borrowed from the frame. len == -1 means null. */
typedef struct kc_str {
    const char *p;
    int32_t len;
} kc_str;

typedef struct kc_bytes {
    const uint8_t *p;
    int32_t len;
} kc_bytes;

void kc_reader_init(kc_reader *r, const void *p, size_t len);
static inline bool kc_ok(const kc_reader *r) { return r->err == 0; }
static inline size_t kc_remaining(const kc_reader *r) { return r->len - r->off; }

int8_t kc_i8(kc_reader *r);
int16_t kc_i16(kc_reader *r);
int32_t kc_i32(kc_reader *r);
int64_t kc_i64(kc_reader *r);
uint32_t kc_u32(kc_reader *r);
bool kc_bool(kc_reader *r);
uint32_t kc_uvarint(kc_reader *r);  /* unsigned LEB128, at most 5 bytes */
int32_t kc_varint(kc_reader *r);    /* zig-zag */
int64_t kc_varlong(kc_reader *r);   /* zig-zag, at most 10 bytes */
uint64_t kc_uvarlong(kc_reader *r);
void kc_uuid(kc_reader *r, uint8_t out[16]);
/* Returns a pointer to the next n bytes and advances, or NULL (and sets err). */
const uint8_t *kc_raw(kc_reader *r, size_t n);

/* STRING / NULLABLE_STRING (int16 length) or COMPACT_[NULLABLE_]STRING (uvarint len+1)
 * when flexible. Null comes back as len -1; callers that forbid null check it. */
kc_str kc_string(kc_reader *r, bool flexible);
/* BYTES / NULLABLE_BYTES (int32 length) or COMPACT_[NULLABLE_]BYTES when flexible. */
kc_bytes kc_bytes_field(kc_reader *r, bool flexible);
/* ARRAY (int32 count) or COMPACT_ARRAY (uvarint count+1). Returns -1 for null.
 * The count is checked against the bytes left: count * min_elem must fit, so a
 * declared count can never make a caller allocate more than the frame justifies. */
int32_t kc_array(kc_reader *r, bool flexible, size_t min_elem);
/* Skips a tagged-field section (KIP-482) when flexible; does nothing otherwise. */
void kc_skip_tags(kc_reader *r, bool flexible);

/* Heap writer with a ceiling. */
typedef struct kc_writer {
    uint8_t *p;
    size_t len;
    size_t cap;
    size_t max;  /* ceiling on len; 0 means KC_WRITER_DEFAULT_MAX */
    int err;
} kc_writer;

#define KC_WRITER_DEFAULT_MAX (256u << 20)

void kc_writer_init(kc_writer *w, size_t max);
void kc_writer_free(kc_writer *w);
void kc_writer_reset(kc_writer *w);            /* keeps the allocation */
/* Ensures room for n more bytes; returns a pointer to them (not yet counted in len), or
 * NULL and sets err. The caller then calls kc_w_commit(w, n). */
uint8_t *kc_w_room(kc_writer *w, size_t n);
static inline void kc_w_commit(kc_writer *w, size_t n) { w->len += n; }

void kc_w_raw(kc_writer *w, const void *p, size_t n);
void kc_w_i8(kc_writer *w, int8_t v);
void kc_w_i16(kc_writer *w, int16_t v);
void kc_w_i32(kc_writer *w, int32_t v);
void kc_w_i64(kc_writer *w, int64_t v);
void kc_w_u32(kc_writer *w, uint32_t v);
void kc_w_bool(kc_writer *w, bool v);
void kc_w_uvarint(kc_writer *w, uint32_t v);
void kc_w_varint(kc_writer *w, int32_t v);
void kc_w_varlong(kc_writer *w, int64_t v);
void kc_w_uuid(kc_writer *w, const uint8_t id[16]);
/* Writes a string of len bytes; p == NULL writes null. */
void kc_w_string(kc_writer *w, bool flexible, const char *p, int32_t len);
void kc_w_cstr(kc_writer *w, bool flexible, const char *s);  /* s may be NULL */
void kc_w_bytes(kc_writer *w, bool flexible, const void *p, int32_t len);
/* Array header: count -1 writes null. */
void kc_w_array(kc_writer *w, bool flexible, int32_t count);
/* An empty tagged-field section when flexible. */
void kc_w_tags(kc_writer *w, bool flexible);

/* Length slots: reserve now, fill in once the contents are written. */
size_t kc_w_reserve(kc_writer *w, size_t n);
void kc_w_patch_i32(kc_writer *w, size_t at, int32_t v);
void kc_w_patch_i16(kc_writer *w, size_t at, int16_t v);

/* Big-endian helpers for keys and headers. */
static inline void kc_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline void kc_put_be64(uint8_t *p, uint64_t v)
{
    kc_put_be32(p, (uint32_t)(v >> 32));
    kc_put_be32(p + 4, (uint32_t)v);
}
static inline uint32_t kc_get_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t kc_get_be64(const uint8_t *p)
{
    return ((uint64_t)kc_get_be32(p) << 32) | kc_get_be32(p + 4);
}
static inline uint16_t kc_get_be16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }

bool kc_str_eq(kc_str s, const char *c);
/* Copies a view into a new NUL-terminated heap string; NULL for a null view or OOM. */
char *kc_str_dup(kc_str s);

#endif
