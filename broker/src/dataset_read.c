/* dataset_read.c: reading a dataset partition. Finds the records of an object (by
 * format), pins the cache blocks that hold them and encodes them as v2 batches straight
 * from the pinned bytes. A block that is not cached is loaded (one cache_get per block,
 * blocks of one record in parallel) and the read returns what it has; the partition's
 * parked fetches are woken when the block lands. Each sequential reader of a partition
 * gets a prefetch window sized by Little's law (its rate x S3 latency), topped up on each
 * read and whenever an origin request lands (so the cap on requests in flight stays used
 * between fetches), and warm loads a share of the dataset ahead of time. The record
 * indexes of lines and tar objects are one broker-wide cache under a byte cap.
 *
 * Records that cannot be served are still served, as error records: null value, the
 * header "sluice.error" with the reason (a line or member over source.max.record.bytes,
 * a corrupt tar header, an object deleted or changed since the scan). Objects with no
 * records (an empty lines file, a tar without members) yield one record with a
 * "sluice.skip" header. So offsets never depend on what S3 says later, and a consumer
 * always moves on. Transient S3 failures (5xx after retries, timeouts, 403) are not
 * records: the fetch returns what it has and the next one tries again. */
#include "batch.h"
#include "broker.h"
#include "dataset_int.h"
#include "kcodec.h"
#include "log.h"
#include "s3.h"
#include "topic.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { R_READY = 0, R_WAIT = 1, R_FAIL = -1, R_NONE = 2 };
enum { DS_SPAN_MAX = 256 };              /* blocks one record may span */
#define DS_RETRY_US 2000000              /* a transient failure is retried after this */
#define DS_META_MAX (64 << 10)           /* a tar long name / pax header we read */
#define DS_WINDOW_MAX (512LL << 20)      /* prefetch window cap, bytes */
#define DS_PREFETCH_GETS 16              /* origin requests in flight per dataset */
#define DS_WARM_GETS 16
#define DS_RATE_WINDOW_US 200000
#define DS_RECORD_OVERHEAD 256           /* batch header, key and headers: a guess */

/* Pinned blocks of one byte range. */
struct ds_pins {
    const struct cache_block *b[DS_SPAN_MAX];
    int n;
    uint64_t first_off; /* object offset of b[0]'s first byte */
};

/* One record as the format defines it. */
struct ds_recinfo {
    uint64_t off, len;
    const char *name; /* the record key; NULL: the object key */
    size_t name_len;
    int kind;         /* 0 data, 1 error (msg), 2 skip (msg) */
    char msg[200];
    bool last;        /* the object's last record */
};

static struct cache *dcache(const struct dataset *ds) { return ds->owner->cache; }

uint32_t ds_blocks(const struct dataset *ds, uint64_t obj)
{
    int64_t size = ds->objs[obj].size;
    uint64_t bs = ds->owner->block_bytes;
    return size <= 0 ? 0 : (uint32_t)(((uint64_t)size - 1) / bs + 1);
}

static size_t block_len(const struct dataset *ds, uint64_t obj, uint32_t blk)
{
    uint64_t bs = ds->owner->block_bytes, start = (uint64_t)blk * bs;
    uint64_t left = (uint64_t)ds->objs[obj].size - start;
    return (size_t)(left < bs ? left : bs);
}

/* ---- remembered failures ---- */

static struct ds_oerr *oerr_find(struct dataset *ds, uint64_t obj)
{
    for (struct ds_oerr *e = ds->oerrs; e; e = e->next)
        if (e->obj == obj)
            return e;
    return NULL;
}

static void oerr_drop(struct dataset *ds, struct ds_oerr *e)
{
    struct ds_oerr **pp = &ds->oerrs;
    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    free(e);
}

static void oerr_note(struct dataset *ds, uint64_t obj, int err, const char *msg)
{
    if (err == CACHE_ESTALE)
        return;
    struct ds_oerr *e = oerr_find(ds, obj);
    if (!e) {
        if (!(e = calloc(1, sizeof *e)))
            return;
        e->next = ds->oerrs;
        ds->oerrs = e;
    }
    e->obj = obj;
    e->err = err;
    e->permanent = err == S3_ENOTFOUND || err == S3_ECHANGED;
    e->at_us = ev_now_us();
    snprintf(e->msg, sizeof e->msg, "%s", msg && *msg ? msg : "S3 request failed");
    log_warn("dataset %s: object %s: %s (%d)", ds->name, ds->objs[obj].key, e->msg, err);
}

/* ---- loads ---- */

static struct ds_load *load_find(const struct dataset *ds, const struct cache_key *k)
{
    for (struct ds_load *l = ds->loads; l; l = l->next)
        if (l->key.object == k->object && l->key.block == k->block)
            return l;
    return NULL;
}

static void load_unlink(struct dataset *ds, struct ds_load *ld)
{
    struct ds_load **pp = &ds->loads;
    while (*pp && *pp != ld)
        pp = &(*pp)->next;
    if (*pp)
        *pp = ld->next;
}

static void on_load(struct cache_waiter *w)
{
    struct ds_load *ld = (struct ds_load *)w;
    struct dataset *ds = ld->ds;
    load_unlink(ds, ld);
    if (ld->warm)
        ds->warm.inflight--;
    if (w->err == 0) {
        if (ld->warm)
            ds->warm.loaded += (int64_t)w->block->len;
        cache_unpin(dcache(ds), w->block);
    } else {
        oerr_note(ds, ld->key.object, w->err, w->msg);
        if (ld->warm) {
            ds->warm.errors++;
            snprintf(ds->warm.last_error, sizeof ds->warm.last_error, "%s", w->msg);
        }
    }
    ds_wake_obj(ds, ld->key.object);
    free(ld);
}

/* Starts (or joins) the load of one block. Returns CACHE_HIT with *b pinned,
 * CACHE_PENDING, or a negative error (noted for the object). */
static int block_get(struct dataset *ds, uint64_t obj, uint32_t blk, bool warm,
                     const struct cache_block **b)
{
    struct cache_key k;
    ds_key(ds, obj, blk, &k);
    if (!warm && load_find(ds, &k))
        return CACHE_PENDING;
    struct ds_load *ld = calloc(1, sizeof *ld);
    if (!ld)
        return CACHE_ENOMEM;
    ld->ds = ds;
    ld->key = k;
    ld->warm = warm;
    ld->w.fn = on_load;
    ld->w.arg = ld;
    int rc = cache_get(dcache(ds), &k, &ds->origin, &ld->w);
    if (rc == CACHE_HIT) {
        *b = ld->w.block;
        free(ld);
    } else if (rc == CACHE_PENDING) {
        ld->next = ds->loads;
        ds->loads = ld;
        if (warm)
            ds->warm.inflight++;
    } else {
        oerr_note(ds, obj, ld->w.err, ld->w.msg);
        free(ld);
    }
    return rc;
}

void ds_cancel_loads(struct dataset *ds)
{
    while (ds->loads) {
        struct ds_load *ld = ds->loads;
        ds->loads = ld->next;
        cache_cancel(dcache(ds), &ld->w);
        free(ld);
    }
    ds->warm.inflight = 0;
}

static void pins_release(struct dataset *ds, struct ds_pins *pn)
{
    for (int i = 0; i < pn->n; i++)
        cache_unpin(dcache(ds), pn->b[i]);
    pn->n = 0;
}

/* Checks what is remembered about obj: R_READY (go ahead), R_WAIT (a recent transient
 * failure) or R_FAIL (permanent; msg set). */
static int oerr_check(struct dataset *ds, uint64_t obj, char *msg, size_t ml)
{
    struct ds_oerr *e = oerr_find(ds, obj);
    if (!e)
        return R_READY;
    if (e->permanent) {
        snprintf(msg, ml, "%s", e->msg);
        return R_FAIL;
    }
    if (ev_now_us() - e->at_us < DS_RETRY_US)
        return R_WAIT;
    oerr_drop(ds, e);
    return R_READY;
}

/* Pins the blocks holding bytes [off, off + len) of obj (len > 0). Returns R_READY with
 * pn filled, R_WAIT (loads under way; nothing pinned) or R_FAIL (msg set). */
static int pin_range(struct dataset *ds, uint64_t obj, uint64_t off, uint64_t len,
                     struct ds_pins *pn, char *msg, size_t ml)
{
    uint64_t bs = ds->owner->block_bytes;
    uint32_t b0 = (uint32_t)(off / bs), b1 = (uint32_t)((off + len - 1) / bs);
    pn->n = 0;
    pn->first_off = (uint64_t)b0 * bs;
    if (b1 - b0 >= DS_SPAN_MAX) {
        snprintf(msg, ml, "a record of %" PRIu64 " bytes spans too many cache blocks", len);
        return R_FAIL;
    }
    int rc = oerr_check(ds, obj, msg, ml);
    if (rc != R_READY)
        return rc;
    bool wait = false;
    for (uint32_t b = b0; b <= b1; b++) {
        const struct cache_block *blk = NULL;
        int g = block_get(ds, obj, b, false, &blk);
        if (g == CACHE_HIT)
            pn->b[pn->n++] = blk;
        else if (g == CACHE_PENDING || g == CACHE_ESTALE)
            wait = true;
        else if ((rc = oerr_check(ds, obj, msg, ml)) != R_READY) {
            pins_release(ds, pn);
            return rc;
        } else
            wait = true;
    }
    if (wait) {
        pins_release(ds, pn);
        return R_WAIT;
    }
    return R_READY;
}

/* Turns pinned blocks into pieces of [off, off + len). Returns the piece count. */
static int pins_pieces(const struct ds_pins *pn, uint64_t off, uint64_t len,
                       struct batch_piece *pc)
{
    int n = 0;
    uint64_t at = pn->first_off, end = off + len;
    for (int i = 0; i < pn->n; i++) {
        uint64_t bstart = at, bend = at + pn->b[i]->len;
        at = bend;
        uint64_t s = off > bstart ? off : bstart, e = end < bend ? end : bend;
        if (s < e)
            pc[n++] = (struct batch_piece){pn->b[i]->data + (s - bstart), (size_t)(e - s)};
    }
    return n;
}

/* Copies [off, off + len) of obj into out. Returns R_READY, R_WAIT or R_FAIL. */
static int read_bytes(struct dataset *ds, uint64_t obj, uint64_t off, uint64_t len, uint8_t *out,
                      char *msg, size_t ml)
{
    struct ds_pins pn;
    struct batch_piece pc[DS_SPAN_MAX];
    int rc = pin_range(ds, obj, off, len, &pn, msg, ml);
    if (rc != R_READY)
        return rc;
    int n = pins_pieces(&pn, off, len, pc);
    for (int i = 0; i < n; i++) {
        memcpy(out, pc[i].p, pc[i].len);
        out += pc[i].len;
    }
    pins_release(ds, &pn);
    return R_READY;
}

/* ---- record indexes (lines, tar) ---- */

static void ridx_unlink(struct datasets *d, struct ds_ridx *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        d->ridx_head = x->next;
    if (x->next)
        x->next->prev = x->prev;
    else
        d->ridx_tail = x->prev;
    x->prev = x->next = NULL;
}

static void ridx_push_front(struct datasets *d, struct ds_ridx *x)
{
    x->next = d->ridx_head;
    if (d->ridx_head)
        d->ridx_head->prev = x;
    d->ridx_head = x;
    if (!d->ridx_tail)
        d->ridx_tail = x;
}

/* Brings x's counted size up to date, in its dataset and in the whole broker. */
static void ridx_account(struct ds_ridx *x)
{
    uint64_t now = sizeof *x + (uint64_t)x->cap * sizeof *x->r + x->names_cap;
    struct datasets *d = x->ds->owner;
    d->ridx_bytes = d->ridx_bytes - x->bytes + now;
    x->ds->ridx_bytes = x->ds->ridx_bytes - x->bytes + now;
    x->bytes = now;
}

/* Unlinks and frees x; its bytes leave the counts. */
static void ridx_drop(struct ds_ridx *x)
{
    struct datasets *d = x->ds->owner;
    ridx_unlink(d, x);
    d->ridx_bytes -= x->bytes;
    x->ds->ridx_bytes -= x->bytes;
    free(x->r);
    free(x->names);
    free(x);
}

/* Drops the least recently used record indexes of any dataset, but keep, until the
 * broker's indexes take no more than ridx_cap less room (they are rebuilt from the cache
 * when needed again). keep, the one in use, may alone be larger than the cap: a
 * record's place must never depend on memory. */
static void ridx_trim(struct datasets *d, const struct ds_ridx *keep, uint64_t room)
{
    while (d->ridx_tail && d->ridx_tail != keep && d->ridx_bytes + room > d->ridx_cap) {
        ridx_drop(d->ridx_tail);
        d->ridx_evictions++;
    }
}

/* Finds or makes the record index of obj, most recent first. */
static struct ds_ridx *ridx_get(struct dataset *ds, uint64_t obj)
{
    struct datasets *d = ds->owner;
    for (struct ds_ridx *x = d->ridx_head; x; x = x->next) {
        if (x->ds == ds && x->obj == obj) {
            if (x != d->ridx_head) {
                ridx_unlink(d, x);
                ridx_push_front(d, x);
            }
            return x;
        }
    }
    ridx_trim(d, NULL, sizeof(struct ds_ridx));
    struct ds_ridx *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    x->ds = ds;
    x->obj = obj;
    ridx_push_front(d, x);
    ridx_account(x);
    return x;
}

/* Makes room in x for one more record named by nl bytes. Returns 0 or -1. */
static int ridx_grow(struct ds_ridx *x, size_t nl)
{
    int rc = 0;
    if (x->n == x->cap) {
        uint32_t nc = x->cap ? x->cap * 2 : 64;
        struct ds_rec *nr = realloc(x->r, nc * sizeof *nr);
        if (nr) {
            x->r = nr;
            x->cap = nc;
        } else {
            rc = -1;
        }
    }
    if (rc == 0 && nl && x->names_len + nl > x->names_cap) {
        uint32_t nc = x->names_cap ? x->names_cap : 256;
        while (nc < x->names_len + nl)
            nc *= 2;
        char *nn = realloc(x->names, nc);
        if (nn) {
            x->names = nn;
            x->names_cap = nc;
        } else {
            rc = -1;
        }
    }
    ridx_account(x);
    ridx_trim(x->ds->owner, x, 0);
    return rc;
}

/* Appends a record; name (or an error/skip message when kind != 0) is copied. */
static int ridx_add(struct dataset *ds, struct ds_ridx *x, uint64_t off, uint64_t len,
                    const char *name, size_t nl, int kind)
{
    if ((int64_t)x->n >= DSF_REC_MAX - 1) {
        x->done = true;
        return -1;
    }
    if (nl > UINT16_MAX)
        nl = UINT16_MAX;
    if (ridx_grow(x, nl) < 0)
        return -1;
    struct ds_rec *r = &x->r[x->n++];
    *r = (struct ds_rec){.off = off, .len = len, .name_off = x->names_len,
                         .name_len = (uint16_t)nl, .error = (uint8_t)kind};
    if (nl)
        memcpy(x->names + x->names_len, name, nl);
    x->names_len += (uint32_t)nl;
    return 0;
}

/* Adds an error record and ends the object. */
static void ridx_fail(struct dataset *ds, struct ds_ridx *x, const char *msg)
{
    ridx_add(ds, x, 0, 0, msg, strlen(msg), 1);
    x->done = true;
}

struct line_ctx {
    struct dataset *ds;
    struct ds_ridx *x;
};

static int on_line(void *arg, uint64_t off, uint64_t len)
{
    struct line_ctx *c = arg;
    if ((int64_t)len > c->ds->max_record) {
        char m[160];
        int n = snprintf(m, sizeof m, "line of %" PRIu64 " bytes at byte %" PRIu64
                         " is over source.max.record.bytes=%" PRId64, len, off, c->ds->max_record);
        return ridx_add(c->ds, c->x, off, len, m, (size_t)n, 1);
    }
    return ridx_add(c->ds, c->x, off, len, NULL, 0, 0);
}

/* Indexes one more block of a lines object. */
static int lines_step(struct dataset *ds, struct ds_ridx *x, char *msg, size_t ml)
{
    uint64_t obj = x->obj, size = (uint64_t)ds->objs[obj].size;
    struct line_ctx lc = {ds, x};
    if (x->pos >= ds_blocks(ds, obj)) {
        dsf_lines_finish(&x->lines, size, on_line, &lc);
        x->done = true;
        return R_READY;
    }
    uint64_t bs = ds->owner->block_bytes, off = x->pos * bs;
    struct ds_pins pn;
    int rc = pin_range(ds, obj, off, block_len(ds, obj, (uint32_t)x->pos), &pn, msg, ml);
    if (rc != R_READY)
        return rc;
    if (dsf_lines_feed(&x->lines, pn.b[0]->data, pn.b[0]->len, off, on_line, &lc))
        x->done = true; /* the record limit per object, or out of memory */
    pins_release(ds, &pn);
    x->pos++;
    return R_READY;
}

/* Reads a long name ('L') or pax path ('x') member's data into x->longname. */
static int tar_meta(struct dataset *ds, struct ds_ridx *x, const struct dsf_tar_hdr *h,
                    char *msg, size_t ml)
{
    if (h->size > DS_META_MAX) {
        ridx_fail(ds, x, "tar long-name or pax header over 64 KiB");
        return R_READY;
    }
    uint8_t *buf = malloc((size_t)h->size + 1);
    if (!buf)
        return R_WAIT;
    int rc = h->size ? read_bytes(ds, x->obj, x->pos + DSF_TAR_BLOCK, (uint64_t)h->size, buf,
                                  msg, ml)
                     : R_READY;
    if (rc == R_READY) {
        int n;
        if (h->type == 'L') {
            n = (int)strnlen((const char *)buf, (size_t)h->size);
            if (n >= DSF_TAR_NAME_MAX)
                n = DSF_TAR_NAME_MAX - 1;
            memcpy(x->longname, buf, (size_t)n);
        } else {
            n = dsf_pax_path(buf, (size_t)h->size, x->longname, sizeof x->longname);
        }
        x->longname_len = n > 0 ? (uint16_t)n : 0;
        x->pos += (uint64_t)dsf_tar_span(h->size);
    }
    free(buf);
    return rc;
}

/* Indexes one more member of a tar object. */
static int tar_step(struct dataset *ds, struct ds_ridx *x, char *msg, size_t ml)
{
    uint64_t size = (uint64_t)ds->objs[x->obj].size;
    char m[200];
    if (x->pos + DSF_TAR_BLOCK > size) {
        if (x->pos < size) {
            snprintf(m, sizeof m, "truncated tar header at byte %" PRIu64, x->pos);
            ridx_fail(ds, x, m);
        }
        x->done = true;
        return R_READY;
    }
    uint8_t hb[DSF_TAR_BLOCK];
    int rc = read_bytes(ds, x->obj, x->pos, DSF_TAR_BLOCK, hb, msg, ml);
    if (rc != R_READY)
        return rc;
    struct dsf_tar_hdr h;
    int kind = dsf_tar_parse(hb, (int64_t)(size - x->pos - DSF_TAR_BLOCK), &h);
    switch (kind) {
    case DSF_TAR_END:
        x->done = true;
        return R_READY;
    case DSF_TAR_EBAD:
        snprintf(m, sizeof m, "corrupt tar header at byte %" PRIu64
                 " (checksum, size field, or a member past the end)", x->pos);
        ridx_fail(ds, x, m);
        return R_READY;
    case DSF_TAR_LONGNAME:
    case DSF_TAR_PAX:
        return tar_meta(ds, x, &h, msg, ml);
    case DSF_TAR_FILE: {
        const char *name = x->longname_len ? x->longname : h.name;
        size_t nl = x->longname_len ? x->longname_len : strlen(h.name);
        if (h.size > ds->max_record) {
            int n = snprintf(m, sizeof m, "tar member %.*s of %" PRId64
                             " bytes is over source.max.record.bytes", (int)(nl < 100 ? nl : 100),
                             name, h.size);
            ridx_add(ds, x, 0, 0, m, (size_t)n, 1);
        } else {
            ridx_add(ds, x, x->pos + DSF_TAR_BLOCK, (uint64_t)h.size, name, nl, 0);
        }
        x->longname_len = 0;
        break;
    }
    default:
        x->longname_len = 0;
        break;
    }
    x->pos += (uint64_t)dsf_tar_span(h.size);
    return R_READY;
}

/* ---- records ---- */

static void info_error(struct ds_recinfo *ri, int kind, const char *msg, bool last)
{
    memset(ri, 0, sizeof *ri);
    ri->kind = kind;
    ri->last = last;
    snprintf(ri->msg, sizeof ri->msg, "%s", msg);
}

/* Record r of obj. Returns R_READY (ri filled), R_WAIT, or R_NONE (no record r). */
static int record_at(struct dataset *ds, uint64_t obj, uint32_t r, struct ds_recinfo *ri)
{
    const struct ds_obj *o = &ds->objs[obj];
    char msg[160] = "";
    if (ds->format == DSF_OBJECT || ds->format == DSF_CHUNK) {
        int64_t cb = ds->format == DSF_CHUNK ? ds->chunk_bytes : (o->size ? o->size : 1);
        int64_t total = dsf_chunks(o->size, cb);
        if ((int64_t)r >= total)
            return R_NONE;
        memset(ri, 0, sizeof *ri);
        ri->off = (uint64_t)r * (uint64_t)cb;
        ri->len = (uint64_t)(o->size - (int64_t)ri->off < cb ? o->size - (int64_t)ri->off : cb);
        ri->last = (int64_t)r == total - 1;
        if ((int64_t)ri->len > ds->max_record) {
            snprintf(msg, sizeof msg, "%s of %" PRIu64 " bytes is over source.max.record.bytes=%"
                     PRId64 " (use format chunk)", ds->format == DSF_CHUNK ? "chunk" : "object",
                     ri->len, ds->max_record);
            info_error(ri, 1, msg, ri->last);
        }
        return R_READY;
    }
    struct ds_ridx *x = ridx_get(ds, obj);
    if (!x)
        return R_WAIT;
    while (!x->done && x->n <= r) {
        int rc = ds->format == DSF_LINES ? lines_step(ds, x, msg, sizeof msg)
                                         : tar_step(ds, x, msg, sizeof msg);
        if (rc == R_WAIT)
            return R_WAIT;
        if (rc == R_FAIL)
            ridx_fail(ds, x, msg);
    }
    if (x->done && x->n == 0)
        ridx_add(ds, x, 0, 0, "no records in this object", 25, 2);
    if (r >= x->n)
        return R_NONE;
    const struct ds_rec *rec = &x->r[r];
    memset(ri, 0, sizeof *ri);
    ri->last = x->done && r == x->n - 1;
    if (rec->error) {
        snprintf(msg, sizeof msg, "%.*s", rec->name_len, x->names + rec->name_off);
        info_error(ri, rec->error, msg, ri->last);
        return R_READY;
    }
    ri->off = rec->off;
    ri->len = rec->len;
    if (rec->name_len) {
        ri->name = x->names + rec->name_off;
        ri->name_len = rec->name_len;
    }
    return R_READY;
}

/* A record ready for the encoder: its key, headers and value pieces. */
struct rec_out {
    char num[2][24]; /* numbers the headers point at */
    struct batch_header_kv h[3];
    struct batch_record rec;
};

/* Fills ro with record r of obj as ri describes it, its value being pc[0..np). */
static void rec_out_fill(const struct dataset *ds, uint64_t obj, uint32_t r,
                         const struct ds_recinfo *ri, const struct batch_piece *pc, int np,
                         struct rec_out *ro)
{
    const struct ds_obj *o = &ds->objs[obj];
    int nh = 0;
#define HDR(k, v, vl) (ro->h[nh++] = (struct batch_header_kv){k, strlen(k), v, vl})
    if (ri->kind) {
        const char *k = ri->kind == 1 ? "sluice.error" : "sluice.skip";
        HDR(k, ri->msg, strlen(ri->msg));
    } else if (ds->format == DSF_OBJECT) {
        snprintf(ro->num[0], sizeof ro->num[0], "%" PRId64, o->size);
        HDR("size", ro->num[0], strlen(ro->num[0]));
        HDR("etag", o->etag, strlen(o->etag));
    } else if (ds->format == DSF_CHUNK) {
        snprintf(ro->num[0], sizeof ro->num[0], "%u", r);
        snprintf(ro->num[1], sizeof ro->num[1], "%" PRId64, dsf_chunks(o->size, ds->chunk_bytes));
        HDR("key", o->key, strlen(o->key));
        HDR("index", ro->num[0], strlen(ro->num[0]));
        HDR("total", ro->num[1], strlen(ro->num[1]));
    } else if (ds->format == DSF_LINES) {
        snprintf(ro->num[0], sizeof ro->num[0], "%u", r);
        HDR("line", ro->num[0], strlen(ro->num[0]));
    } else {
        HDR("shard", o->key, strlen(o->key));
    }
#undef HDR
    ro->rec = (struct batch_record){
        .key = ri->name ? ri->name : o->key,
        .key_len = ri->name ? ri->name_len : strlen(o->key),
        .value = pc, .nvalue = np, .null_value = ri->kind != 0,
        .headers = ro->h, .nheaders = nh, .timestamp = ds->ts_ms,
    };
}

/* Writes one record into e. Returns R_READY, R_WAIT (nothing written) or R_NONE (it
 * does not fit the budget). The size is checked before the value's blocks are pinned,
 * so a record that will not be sent costs no cache lookup and starts no load. */
static int emit_record(struct dataset *ds, struct batch_enc *e, uint64_t obj, uint32_t r,
                       uint32_t r0, const struct ds_recinfo *ri, int64_t room, bool force)
{
    char msg[200];
    struct batch_piece pc[DS_SPAN_MAX];
    struct ds_pins pn = {.n = 0};
    struct rec_out ro;
    struct ds_recinfo fail;
    int np = 0;
    int32_t delta = (int32_t)(r - r0);
    if (ri->kind == 0 && ri->len > 0) {
        struct batch_piece whole = {NULL, (size_t)ri->len};
        rec_out_fill(ds, obj, r, ri, &whole, 1, &ro);
        int64_t sz = batch_record_size(&ro.rec, delta, ds->ts_ms);
        if (sz < 0 || (!force && sz > room))
            return R_NONE;
        int rc = pin_range(ds, obj, ri->off, ri->len, &pn, msg, sizeof msg);
        if (rc == R_WAIT)
            return R_WAIT;
        if (rc == R_FAIL) {
            info_error(&fail, 1, msg, ri->last);
            ri = &fail;
        } else {
            np = pins_pieces(&pn, ri->off, ri->len, pc);
        }
    }
    rec_out_fill(ds, obj, r, ri, pc, np, &ro);
    int64_t sz = batch_record_size(&ro.rec, delta, ds->ts_ms);
    int rc = R_READY;
    if (sz < 0 || (!force && sz > room))
        rc = R_NONE;
    else if (batch_enc_add(e, &ro.rec, delta) < 0)
        rc = R_NONE;
    if (ri->kind == 1 && rc == R_READY)
        ds->error_records++;
    pins_release(ds, &pn);
    return rc;
}

/* Writes one batch of obj's records from r onwards. Sets *next_r and *done (the
 * object's last record went out). Returns R_READY (something written), R_WAIT or
 * R_NONE (nothing fits). */
static int emit_object(struct dataset *ds, kc_writer *w, int64_t j, uint64_t obj, uint32_t r,
                       int64_t room, bool force, uint32_t *next_r, bool *done)
{
    struct batch_enc e;
    struct ds_recinfo ri;
    int rc = R_READY;
    bool claim = false;
    *done = false;
    batch_enc_begin(&e, w, dsf_offset(j, r), ds->ts_ms);
    int64_t left = room - BATCH_HEADER_LEN;
    uint32_t k = r;
    for (; (int64_t)k < DSF_REC_MAX - 1; k++) {
        rc = record_at(ds, obj, k, &ri);
        if (rc == R_NONE) {
            claim = *done = true; /* r was past the last record: the gap is claimed */
            break;
        }
        if (rc != R_READY)
            break;
        size_t before = w->len;
        rc = emit_record(ds, &e, obj, k, r, &ri, left, force && e.count == 0);
        if (rc != R_READY)
            break;
        left -= (int64_t)(w->len - before);
        if (ri.last) {
            claim = *done = true;
            k++;
            break;
        }
    }
    *next_r = k;
    if (e.count == 0) {
        w->len = e.at;
        return *done ? R_NONE : rc == R_WAIT ? R_WAIT : R_NONE;
    }
    batch_enc_end(&e, claim ? (int32_t)(DSF_REC_MAX - 1 - r) : -1);
    return w->err ? R_NONE : R_READY;
}

/* ---- readers and prefetch ---- */

/* The stream of partition p reading object j: one that read j or j - 1 last, one that
 * reached the end and starts again at 0 (the next epoch), or a new one. */
static struct ds_stream *stream_match(struct dataset *ds, int32_t p, int64_t j)
{
    if (!ds->pst && !(ds->pst = calloc((size_t)ds->parts, sizeof *ds->pst)))
        return NULL;
    if (!ds->pst[p] && !(ds->pst[p] = calloc(1, sizeof *ds->pst[p])))
        return NULL;
    struct ds_stream *s = ds->pst[p]->s, *pick = NULL;
    int64_t m = (int64_t)ds_part_objects(ds, p), now = ev_now_us();
    for (int i = 0; i < DS_STREAMS; i++)
        if (s[i].used && (j == s[i].cur_j || j == s[i].cur_j + 1))
            return &s[i];
    for (int i = 0; i < DS_STREAMS && j == 0; i++)
        if (s[i].used && s[i].cur_j >= m - 1 && (!pick || s[i].last_us < pick->last_us))
            pick = &s[i]; /* wrapped around: keep its rate */
    if (pick) {
        pick->cur_j = pick->pf_j = 0;
        pick->pf_blk = 0;
        return pick;
    }
    for (int i = 0; i < DS_STREAMS; i++)
        if (!pick || !s[i].used || s[i].last_us < pick->last_us) {
            pick = &s[i];
            if (!s[i].used)
                break;
        }
    *pick = (struct ds_stream){.used = true, .cur_j = j, .pf_j = j, .last_us = now, .win_us = now};
    return pick;
}

static void stream_account(struct ds_stream *s, int64_t j, int64_t bytes)
{
    int64_t now = ev_now_us();
    s->cur_j = j;
    s->last_us = now;
    s->win_bytes += bytes;
    int64_t dt = now - s->win_us;
    if (dt >= DS_RATE_WINDOW_US) {
        double inst = (double)s->win_bytes * 1e6 / (double)dt;
        s->rate = s->rate > 0 ? 0.5 * s->rate + 0.5 * inst : inst;
        s->win_us = now;
        s->win_bytes = 0;
    }
}

/* Little's law: to keep a reader consuming rate bytes/s fed through requests that take
 * latency s, rate x latency bytes must be in flight; twice that lets the window grow
 * while the rate is still being measured. */
static int64_t window_bytes(const struct dataset *ds, const struct ds_stream *s, double lat_ms)
{
    int64_t bs = (int64_t)ds->owner->block_bytes;
    if (lat_ms < 20)
        lat_ms = 20;
    double w = s->rate * lat_ms / 1000.0 * 2.0;
    int64_t win = (int64_t)w, lo = 2 * bs;
    return win < lo ? lo : win > DS_WINDOW_MAX ? DS_WINDOW_MAX : win;
}

/* What every window of a dataset is sized and capped by, read once per pass. */
struct pf_budget {
    double lat_ms; /* the origin's recent p99 */
    int inflight;  /* origin requests of the dataset in flight */
};

static void pf_budget_of(struct dataset *ds, struct pf_budget *pb)
{
    struct cache_stats cs;
    cache_stats(dcache(ds), ds->id, &cs);
    pb->lat_ms = cs.origin.latency_p99_ms;
    pb->inflight = (int)cs.origin.inflight;
}

/* Requests the blocks of s's window that are neither in memory nor on their way, while
 * pb allows. Returns false when the cap on requests in flight stopped it. */
static bool prefetch(struct dataset *ds, int32_t p, struct ds_stream *s, struct pf_budget *pb)
{
    const int64_t *cum = ds_cum(ds, p);
    int64_t m = (int64_t)ds_part_objects(ds, p);
    if (!cum)
        return true;
    int64_t win = window_bytes(ds, s, pb->lat_ms);
    if (s->pf_j < s->cur_j) {
        s->pf_j = s->cur_j;
        s->pf_blk = 0;
    }
    while (s->pf_j < m && cum[s->pf_j] - cum[s->cur_j] < win) {
        uint64_t obj = dsf_global((uint64_t)s->pf_j, p, ds->parts);
        uint32_t nb = ds_blocks(ds, obj);
        for (; s->pf_blk < nb; s->pf_blk++) {
            struct cache_key k;
            ds_key(ds, obj, s->pf_blk, &k);
            if ((cache_where(dcache(ds), &k) & CACHE_IN_MEMORY) || load_find(ds, &k))
                continue;
            if (pb->inflight >= DS_PREFETCH_GETS)
                return false;
            if (oerr_find(ds, obj))
                return true;
            int rc = cache_prefetch(dcache(ds), &k, &ds->origin);
            if (rc == CACHE_EBUSY)
                return false;
            pb->inflight++;
        }
        s->pf_j++;
        s->pf_blk = 0;
    }
    return true;
}

void ds_fill_landed(struct dataset *ds)
{
    if (!ds->pst || ds->dead)
        return;
    struct pf_budget pb;
    pf_budget_of(ds, &pb);
    int32_t p0 = (int32_t)(ds->pf_next++ % (uint32_t)ds->parts);
    for (int32_t i = 0; i < ds->parts; i++) {
        int32_t p = (p0 + i) % ds->parts;
        for (int k = 0; ds->pst[p] && k < DS_STREAMS; k++)
            if (ds->pst[p]->s[k].used && !prefetch(ds, p, &ds->pst[p]->s[k], &pb))
                return;
    }
}

/* ---- the read ---- */

/* A consumer whose position is past the last record of the partition's last object
 * (it committed last + 1) would see nothing below the high watermark forever: it gets
 * one skip record at hwm - 1 (record index 2^24 - 1 is never a real record), which
 * moves it to the high watermark. */
static void emit_end_marker(struct dataset *ds, kc_writer *w, int64_t m)
{
    static const char msg[] = "end of partition";
    struct batch_header_kv h = {"sluice.skip", 11, msg, sizeof msg - 1};
    struct batch_record rec = {.key = NULL, .null_value = true, .headers = &h, .nheaders = 1,
                               .timestamp = ds->ts_ms};
    struct batch_enc e;
    batch_enc_begin(&e, w, dsf_offset(m, 0) - 1, ds->ts_ms);
    if (batch_enc_add(&e, &rec, 0) < 0 || batch_enc_end(&e, -1) < 0)
        w->len = e.at;
}

/* Grows w once to what this read will likely write (the rest of the partition from
 * object j, up to max_bytes), rather than doubling it many times over a big response,
 * when j's first block is in memory; a read that will wait reserves nothing. */
static void reserve(struct dataset *ds, int32_t p, int64_t j, int64_t max_bytes, kc_writer *w)
{
    const int64_t *cum = ds_cum(ds, p);
    struct cache_key k;
    ds_key(ds, dsf_global((uint64_t)j, p, ds->parts), 0, &k);
    if (!cum || !(cache_where(dcache(ds), &k) & CACHE_IN_MEMORY))
        return;
    int64_t m = (int64_t)ds_part_objects(ds, p);
    int64_t want = cum[m] - cum[j] + (m - j) * DS_RECORD_OVERHEAD;
    if (want > max_bytes)
        want = max_bytes;
    size_t lim = w->max > w->len ? w->max - w->len : 0;
    if (want > 0 && (size_t)want <= lim)
        kc_w_room(w, (size_t)want);
}

int dataset_read(struct broker *b, struct partition *p, int64_t offset, int64_t max_bytes,
                 bool must_return_one, kc_writer *w, int64_t *copied)
{
    struct dataset *ds = b->datasets ? ds_get(b->datasets, p->topic) : NULL;
    *copied = 0;
    if (!ds)
        return KERR_UNKNOWN_SERVER;
    int64_t m = (int64_t)ds_part_objects(ds, p->id);
    int64_t j = dsf_obj_of(offset);
    uint32_t r = (uint32_t)dsf_rec_of(offset);
    struct ds_stream *s = j < m ? stream_match(ds, p->id, j) : NULL;
    size_t start = w->len;
    if (j < m)
        reserve(ds, p->id, j, max_bytes, w);
    while (j < m && !w->err) {
        uint64_t obj = dsf_global((uint64_t)j, p->id, ds->parts);
        int64_t room = max_bytes - (int64_t)(w->len - start);
        bool force = must_return_one && w->len == start;
        uint32_t next_r;
        bool done;
        int rc = emit_object(ds, w, j, obj, r, room, force, &next_r, &done);
        if (rc == R_WAIT || (rc == R_NONE && !done))
            break;
        if (!done)
            break; /* the budget ran out inside the object */
        j++;
        r = 0;
    }
    if (j == m && m > 0 && w->len == start && !w->err)
        emit_end_marker(ds, w, m);
    *copied = (int64_t)(w->len - start);
    if (s) {
        struct pf_budget pb;
        stream_account(s, j < m ? j : m - 1, *copied);
        pf_budget_of(ds, &pb);
        prefetch(ds, p->id, s, &pb);
    }
    p->topic->bytes_out += (uint64_t)*copied;
    return w->err ? KERR_UNKNOWN_SERVER : KERR_NONE;
}

/* ---- warm ---- */

void ds_warm_start(struct dataset *ds, double percent, int64_t bytes)
{
    struct ds_warm *w = &ds->warm;
    int inflight = w->inflight;
    if (ds->state == DS_SCANNING && ds->n == 0) {
        *w = (struct ds_warm){.waiting = true, .inflight = inflight, .want_percent = percent,
                              .want_bytes = bytes, .started_ms = ev_wall_ms()};
        return;
    }
    if (percent >= 0)
        bytes = (int64_t)((double)ds->total_bytes * percent / 100.0 + 0.5);
    *w = (struct ds_warm){.active = true, .inflight = inflight,
                          .target = bytes < ds->total_bytes ? bytes : ds->total_bytes,
                          .started_ms = ev_wall_ms()};
    ds_warm_tick(ds);
}

void ds_warm_tick(struct dataset *ds)
{
    struct ds_warm *w = &ds->warm;
    while (w->inflight < DS_WARM_GETS && w->scheduled < w->target && w->cursor_obj < ds->n) {
        uint64_t obj = w->cursor_obj;
        if (w->cursor_blk >= ds_blocks(ds, obj)) {
            w->cursor_obj++;
            w->cursor_blk = 0;
            continue;
        }
        struct cache_key k;
        ds_key(ds, obj, w->cursor_blk, &k);
        int64_t len = (int64_t)block_len(ds, obj, w->cursor_blk);
        const struct cache_block *blk = NULL;
        if (cache_where(dcache(ds), &k)) {
            w->already += len;
        } else {
            int rc = block_get(ds, obj, w->cursor_blk, true, &blk);
            if (rc == CACHE_HIT) {
                w->already += len;
                cache_unpin(dcache(ds), blk);
            } else if (rc < 0) {
                w->errors++;
                snprintf(w->last_error, sizeof w->last_error, "object %s: load failed (%d)",
                         ds->objs[obj].key, rc);
            }
        }
        w->scheduled += len;
        w->cursor_blk++;
    }
    if (w->inflight == 0 && (w->scheduled >= w->target || w->cursor_obj >= ds->n)) {
        w->active = false;
        w->finished_ms = ev_wall_ms();
    }
}

void ds_read_free(struct dataset *ds)
{
    ds_cancel_loads(ds);
    for (struct ds_ridx *x = ds->owner->ridx_head, *next; x; x = next) {
        next = x->next;
        if (x->ds == ds)
            ridx_drop(x);
    }
    for (int32_t p = 0; ds->pst && p < ds->parts; p++)
        free(ds->pst[p]);
    free(ds->pst);
    ds->pst = NULL;
    while (ds->oerrs)
        oerr_drop(ds, ds->oerrs);
}
