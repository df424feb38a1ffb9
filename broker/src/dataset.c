/* dataset.c: the dataset registry. Turns a topic's source.* configs into an S3 client,
 * lists the prefix (ListObjectsV2, paged, async) into a stable index, keeps that index
 * in the store so a restart does not relist, answers the cache's origin requests with
 * ranged GETs, and serves the admin API's dataset endpoints and figures. Reads are in
 * dataset_read.c.
 *
 * The index is stored in STORE_CF_PSTATE under the topic id and the pseudo-partition
 * DS_PSEUDO_PART (never a real partition: counts stop at TOPIC_MAX_PARTITIONS), so a
 * topic delete erases it with the rest of the topic's state:
 *   id(16) | DS_PSEUDO_PART(4) | 'M'            -> objects(8) | bytes(8)
 *   id(16) | DS_PSEUDO_PART(4) | 'O' | index(8) -> size(8) | etag_len(1) etag | key
 * (STORE_CF_CACHE is not used: the disk tier drops every key there it does not own.) */
#include "dataset.h"

#include "broker.h"
#include "dataset_int.h"
#include "kcodec.h"
#include "log.h"
#include "s3.h"
#include "store.h"
#include "topic.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DS_PSEUDO_PART 0xFE000000u
enum { DS_META = 'M', DS_OBJ = 'O' };
#define DS_DEFAULT_CHUNK (1LL << 20)
#define DS_DEFAULT_MAX_RECORD (16LL << 20)
#define DS_MAX_RECORD_CAP (256LL << 20)
#define DS_MAX_OBJECTS (64ULL << 20) /* objects in one index */
#define DS_TICK_US 20000
#define DS_INDEX_MIN (1ULL << 20)

/* ---- configs ---- */

uint64_t ds_index_cap(const struct config *cfg)
{
    uint64_t cap = (uint64_t)cfg->cache_memory_bytes / 8;
    return cap < DS_INDEX_MIN ? DS_INDEX_MIN : cap;
}

int dataset_validate(const struct topic_cfg_change *cfg, int n, char *msg, size_t msglen)
{
    const struct topic_cfg_change *uri = NULL, *other = NULL;
    for (int i = 0; i < n; i++) {
        if (cfg[i].key_len < 7 || memcmp(cfg[i].key, "source.", 7) || !cfg[i].value)
            continue;
        if (cfg[i].key_len == 10 && !memcmp(cfg[i].key, "source.uri", 10))
            uri = &cfg[i];
        else
            other = &cfg[i];
        if (cfg[i].key_len == 13 && !memcmp(cfg[i].key, "source.format", 13)) {
            char f[16];
            snprintf(f, sizeof f, "%.*s", (int)(cfg[i].value_len < 15 ? cfg[i].value_len : 15),
                     cfg[i].value);
            if (dsf_format_parse(f) < 0 || cfg[i].value_len >= 15) {
                snprintf(msg, msglen, "source.format must be object, chunk, lines or tar");
                return KERR_INVALID_CONFIG;
            }
        }
    }
    if (!uri && other) {
        snprintf(msg, msglen, "%.*s needs source.uri", (int)other->key_len, other->key);
        return KERR_INVALID_CONFIG;
    }
    if (!uri)
        return KERR_NONE;
    char u[1100], bucket[64], prefix[1024];
    if (uri->value_len >= sizeof u) {
        snprintf(msg, msglen, "source.uri is too long");
        return KERR_INVALID_CONFIG;
    }
    memcpy(u, uri->value, uri->value_len);
    u[uri->value_len] = 0;
    if (s3_parse_uri(u, bucket, sizeof bucket, prefix, sizeof prefix) < 0 || !bucket[0]) {
        snprintf(msg, msglen, "source.uri must look like s3://bucket/prefix/, got '%.200s'", u);
        return KERR_INVALID_CONFIG;
    }
    return KERR_NONE;
}

bool dataset_is_topic(const struct topic *t) { return topic_config_get(t, "source.uri") != NULL; }

static int64_t cfg_long(const struct topic *t, const char *key, int64_t dflt, int64_t lo,
                        int64_t hi)
{
    const char *v = topic_config_get(t, key);
    char *end;
    long long x = v ? strtoll(v, &end, 10) : 0;
    if (!v || *end || x < lo || x > hi)
        return dflt;
    return x;
}

static void cfg_str(const struct topic *t, const char *key, const char *dflt, char *out,
                    size_t cap)
{
    const char *v = topic_config_get(t, key);
    snprintf(out, cap, "%s", v ? v : dflt ? dflt : "");
}

/* Fills the S3 client's settings from t's configs, falling back to the broker's
 * AWS_* environment for credentials. */
static void s3cfg_of(const struct topic *t, struct s3_config *c)
{
    memset(c, 0, sizeof *c);
    cfg_str(t, "source.endpoint", NULL, c->endpoint, sizeof c->endpoint);
    cfg_str(t, "source.region", "us-east-1", c->region, sizeof c->region);
    const char *ak = topic_config_get(t, "source.access.key.id");
    const char *sk = topic_config_get(t, "source.secret.access.key");
    if (!ak) {
        ak = getenv("AWS_ACCESS_KEY_ID");
        sk = getenv("AWS_SECRET_ACCESS_KEY");
    }
    snprintf(c->access_key, sizeof c->access_key, "%s", ak ? ak : "");
    snprintf(c->secret_key, sizeof c->secret_key, "%s", sk ? sk : "");
    c->max_inflight = 32;
}

/* ---- the index in the store ---- */

static void idx_key(uint8_t *k, const uint8_t id[16], int type, uint64_t i)
{
    memcpy(k, id, 16);
    kc_put_be32(k + 16, DS_PSEUDO_PART);
    k[20] = (uint8_t)type;
    if (type == DS_OBJ)
        kc_put_be64(k + 21, i);
}

/* Appends one object to an array (copying the key). Returns 0 or -1. */
static int obj_push(struct ds_obj **a, uint64_t *n, uint64_t *cap, const char *key, size_t kl,
                    int64_t size, const char *etag)
{
    if (*n >= DS_MAX_OBJECTS)
        return -1;
    if (*n == *cap) {
        uint64_t nc = *cap ? *cap * 2 : 64;
        struct ds_obj *na = realloc(*a, nc * sizeof *na);
        if (!na)
            return -1;
        *a = na;
        *cap = nc;
    }
    struct ds_obj *o = &(*a)[*n];
    if (!(o->key = strndup(key, kl)))
        return -1;
    o->size = size;
    snprintf(o->etag, sizeof o->etag, "%s", etag ? etag : "");
    (*n)++;
    return 0;
}

/* Loads a stored index. Returns 1 when one was found, 0 when none, -1 on error. */
static int index_load(struct dataset *ds, struct store *st)
{
    uint8_t k[29];
    size_t vl;
    int err;
    idx_key(k, ds->id, DS_META, 0);
    uint8_t *meta = store_get(st, STORE_CF_PSTATE, k, 21, &vl, &err);
    if (!meta)
        return err ? -1 : 0;
    uint64_t want = vl == 16 ? kc_get_be64(meta) : 0;
    free(meta);
    uint8_t lo[29], hi[29];
    idx_key(lo, ds->id, DS_OBJ, 0);
    idx_key(hi, ds->id, DS_OBJ + 1, 0);
    struct store_it *it = store_it_new(st, STORE_CF_PSTATE, lo, 21, hi, 21);
    int rc = it ? 1 : -1;
    for (store_it_first(it); it && store_it_valid(it); store_it_next(it)) {
        size_t kl;
        const uint8_t *key = store_it_key(it, &kl), *v = store_it_value(it, &vl);
        if (kl != 29 || kc_get_be64(key + 21) != ds->n || vl < 9 || (size_t)v[8] + 9 > vl) {
            rc = -1;
            break;
        }
        char etag[72];
        snprintf(etag, sizeof etag, "%.*s", v[8] < 71 ? v[8] : 71, (const char *)v + 9);
        if (obj_push(&ds->objs, &ds->n, &ds->cap, (const char *)v + 9 + v[8], vl - 9 - v[8],
                     (int64_t)kc_get_be64(v), etag) < 0) {
            rc = -1;
            break;
        }
        ds->total_bytes += (int64_t)kc_get_be64(v);
    }
    store_it_free(it);
    if (rc == 1 && ds->n != want)
        rc = -1;
    return rc;
}

/* Stores objects [from, n) and the new count in one atomic write. Returns 0 or -1. */
static int index_save(struct dataset *ds, struct store *st, uint64_t from)
{
    struct store_wb *wb = store_wb_new(st);
    if (!wb)
        return -1;
    uint8_t k[29], meta[16], *v = NULL;
    for (uint64_t i = from; i < ds->n; i++) {
        const struct ds_obj *o = &ds->objs[i];
        size_t el = strlen(o->etag), kl = strlen(o->key);
        uint8_t *nv = realloc(v, 9 + el + kl);
        if (!nv) {
            free(v);
            store_wb_free(wb);
            return -1;
        }
        v = nv;
        kc_put_be64(v, (uint64_t)o->size);
        v[8] = (uint8_t)el;
        memcpy(v + 9, o->etag, el);
        memcpy(v + 9 + el, o->key, kl);
        idx_key(k, ds->id, DS_OBJ, i);
        store_wb_put(wb, STORE_CF_PSTATE, k, 29, v, 9 + el + kl);
    }
    free(v);
    kc_put_be64(meta, ds->n);
    kc_put_be64(meta + 8, (uint64_t)ds->total_bytes);
    idx_key(k, ds->id, DS_META, 0);
    store_wb_put(wb, STORE_CF_PSTATE, k, 21, meta, sizeof meta);
    int rc = store_write(st, wb, 0);
    store_wb_free(wb);
    return rc;
}

/* ---- partitions ---- */

uint64_t ds_part_objects(const struct dataset *ds, int32_t p)
{
    return dsf_part_objects(ds->n, p, ds->parts);
}

static void cum_free(struct dataset *ds)
{
    for (int32_t p = 0; ds->cum && p < ds->parts; p++)
        free(ds->cum[p]);
    free(ds->cum);
    ds->cum = NULL;
}

const int64_t *ds_cum(struct dataset *ds, int32_t p)
{
    if (!ds->cum && !(ds->cum = calloc((size_t)ds->parts, sizeof *ds->cum)))
        return NULL;
    if (!ds->cum[p]) {
        uint64_t m = ds_part_objects(ds, p);
        int64_t *c = malloc((m + 1) * sizeof *c);
        if (!c)
            return NULL;
        c[0] = 0;
        for (uint64_t j = 0; j < m; j++)
            c[j + 1] = c[j] + ds->objs[dsf_global(j, p, ds->parts)].size;
        ds->cum[p] = c;
    }
    return ds->cum[p];
}

/* Sets the high watermark of every resident partition from the index and wakes their
 * parked fetches. */
static void parts_refresh(struct dataset *ds)
{
    struct broker *b = ds->owner->b;
    struct topic *t = topic_find_id(b->topics, ds->id);
    for (int32_t p = 0; t && p < t->partitions && p < ds->parts; p++) {
        struct partition *part = t->parts[p];
        if (!part)
            continue;
        part->hwm = dsf_offset((int64_t)ds_part_objects(ds, p), 0);
        fetch_wake_partition(b, part);
    }
}

void ds_wake_obj(struct dataset *ds, uint64_t obj)
{
    if (ds->dead)
        return;
    struct broker *b = ds->owner->b;
    struct topic *t = topic_find_id(b->topics, ds->id);
    int32_t p = dsf_partition(obj, ds->parts);
    if (t && p < t->partitions && t->parts[p])
        fetch_wake_partition(b, t->parts[p]);
}

void dataset_partition_init(struct broker *b, struct partition *p)
{
    struct dataset *ds = b->datasets ? ds_get(b->datasets, p->topic) : NULL;
    p->log_start = 0;
    p->hwm = ds ? dsf_offset((int64_t)ds_part_objects(ds, p->id), 0) : 0;
}

/* ---- scanning ---- */

static void scan_next(struct dataset *ds, const char *token);

static void pend_free(struct dataset *ds)
{
    for (size_t i = 0; i < ds->npend; i++)
        free(ds->pend[i].key);
    free(ds->pend);
    ds->pend = NULL;
    ds->npend = ds->cappend = 0;
}

static int obj_cmp(const void *a, const void *b)
{
    return strcmp(((const struct ds_obj *)a)->key, ((const struct ds_obj *)b)->key);
}

static int keyp_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends the listed objects the index does not hold yet, in key order. Returns how
 * many were added, or -1. */
static int64_t scan_merge(struct dataset *ds)
{
    if (ds->npend)
        qsort(ds->pend, ds->npend, sizeof *ds->pend, obj_cmp);
    char **known = ds->n ? malloc(ds->n * sizeof *known) : NULL;
    if (ds->n && !known)
        return -1;
    for (uint64_t i = 0; i < ds->n; i++)
        known[i] = ds->objs[i].key;
    if (ds->n)
        qsort(known, ds->n, sizeof *known, keyp_cmp);
    int64_t added = 0;
    uint64_t before = ds->n;
    for (size_t i = 0; i < ds->npend; i++) {
        struct ds_obj *o = &ds->pend[i];
        if (before && bsearch(&o->key, known, before, sizeof *known, keyp_cmp))
            continue;
        if (obj_push(&ds->objs, &ds->n, &ds->cap, o->key, strlen(o->key), o->size, o->etag) < 0)
            break;
        ds->total_bytes += o->size;
        added++;
    }
    free(known);
    return added;
}

static void scan_fail(struct dataset *ds, const char *fmt, const char *detail, int status)
{
    snprintf(ds->error, sizeof ds->error, fmt, status, detail ? detail : "");
    ds->state = ds->n ? DS_READY : DS_ERROR;
    ds->listing = false;
    pend_free(ds);
    log_warn("dataset %s: %s", ds->name, ds->error);
    ds->warm.waiting = false; /* nothing to warm: the listing failed */
}

static void scan_done(struct dataset *ds)
{
    uint64_t before = ds->n;
    int64_t added = scan_merge(ds);
    pend_free(ds);
    ds->listing = false;
    ds->scanned_ms = ev_wall_ms();
    if (added < 0 || index_save(ds, ds->owner->b->store, before) < 0) {
        snprintf(ds->error, sizeof ds->error, "could not store the object index");
        ds->state = DS_ERROR;
        return;
    }
    cum_free(ds);
    if (ds->n == 0) {
        snprintf(ds->error, sizeof ds->error, "no objects under %.250s", ds->uri);
        ds->state = DS_ERROR;
    } else {
        ds->error[0] = 0;
        ds->state = DS_READY;
    }
    log_info("dataset %s: %" PRIu64 " objects (%" PRId64 " new), %" PRId64 " bytes", ds->name,
             ds->n, added, ds->total_bytes);
    parts_refresh(ds);
    if (ds->warm.waiting && ds->state == DS_READY) /* a warm asked for during the listing */
        ds_warm_start(ds, ds->warm.want_percent, ds->warm.want_bytes);
    if (ds->rescan_wanted) {
        ds->rescan_wanted = false;
        ds->listing = true;
        scan_next(ds, NULL);
    }
}

static void on_list(void *arg, const struct s3_list_page *pg)
{
    struct dataset *ds = arg;
    if (ds->dead) {
        ds->listing = false;
        ds_maybe_free(ds);
        return;
    }
    if (pg->err) {
        scan_fail(ds, "ListObjectsV2 failed: HTTP %d: %s", pg->message, pg->http_status);
        return;
    }
    ds->list_pages++;
    for (size_t i = 0; i < pg->n; i++) {
        const struct s3_object *o = &pg->objects[i];
        size_t kl = strlen(o->key);
        if (kl && o->key[kl - 1] == '/')
            continue; /* a "directory" marker */
        uint64_t np = ds->npend, cp = ds->cappend;
        if (obj_push(&ds->pend, &np, &cp, o->key, kl, o->size, o->etag) < 0) {
            scan_fail(ds, "listing: out of memory or over the object limit%.0d%s", NULL, 0);
            return;
        }
        ds->npend = np;
        ds->cappend = cp;
    }
    if (pg->truncated && pg->next_token)
        scan_next(ds, pg->next_token);
    else
        scan_done(ds);
}

static void scan_next(struct dataset *ds, const char *token)
{
    if (s3_list(ds->s3, ds->bucket, ds->prefix, token, 1000, on_list, ds) < 0)
        scan_fail(ds, "ListObjectsV2 could not start%.0d%s", NULL, 0);
}

/* Starts a listing, or asks for another after the one running. */
static void scan_start(struct dataset *ds)
{
    if (ds->listing) {
        ds->rescan_wanted = true;
        return;
    }
    ds->listing = true;
    if (!ds->n)
        ds->state = DS_SCANNING;
    scan_next(ds, NULL);
}

/* ---- the origin: ranged GETs ---- */

struct ds_fill {
    struct dataset *ds;
    struct cache_fill *f;
    size_t want;
};

static void on_get(void *arg, const struct s3_result *r)
{
    struct ds_fill *df = arg;
    struct dataset *ds = df->ds;
    bool ok = !r->err && r->len == df->want;
    if (r->err)
        cache_fill_done(df->f, NULL, 0, r->err, r->message);
    else if (r->len != df->want)
        cache_fill_done(df->f, NULL, 0, S3_ECHANGED, "object is shorter than listed");
    else
        cache_fill_done(df->f, r->body, r->len, 0, NULL);
    free(df);
    if (ok)
        ds_fill_landed(ds);
    ds->fills--;
    ds_maybe_free(ds);
}

static int origin_fetch(void *arg, const struct cache_key *k, uint64_t offset, size_t max_len,
                        struct cache_fill *f)
{
    struct dataset *ds = arg;
    if (k->object >= ds->n || ds->dead)
        return CACHE_EINVAL;
    const struct ds_obj *o = &ds->objs[k->object];
    if ((int64_t)offset >= o->size)
        return CACHE_EINVAL;
    struct ds_fill *df = malloc(sizeof *df);
    if (!df)
        return CACHE_ENOMEM;
    uint64_t left = (uint64_t)o->size - offset;
    *df = (struct ds_fill){.ds = ds, .f = f, .want = left < max_len ? (size_t)left : max_len};
    if (s3_get(ds->s3, ds->bucket, o->key, (int64_t)offset, (int64_t)df->want,
               o->etag[0] ? o->etag : NULL, on_get, df) < 0) {
        free(df);
        return CACHE_EORIGIN;
    }
    ds->fills++;
    return 0;
}

/* ---- the registry ---- */

struct dataset *ds_find_id(struct datasets *d, const uint8_t id[16])
{
    for (struct dataset *ds = d->all; ds; ds = ds->next)
        if (!ds->dead && !memcmp(ds->id, id, 16))
            return ds;
    return NULL;
}

void ds_key(const struct dataset *ds, uint64_t obj, uint32_t blk, struct cache_key *k)
{
    memset(k, 0, sizeof *k);
    memcpy(k->ns, ds->id, 16);
    k->object = obj;
    k->block = blk;
}

static void ds_destroy(struct dataset *ds)
{
    ds_read_free(ds);
    s3_free(ds->s3);
    for (uint64_t i = 0; i < ds->n; i++)
        free(ds->objs[i].key);
    free(ds->objs);
    pend_free(ds);
    cum_free(ds);
    free(ds);
}

bool ds_maybe_free(struct dataset *ds)
{
    if (!ds->dead || ds->fills > 0 || ds->listing)
        return false;
    struct dataset **pp = &ds->owner->all;
    while (*pp && *pp != ds)
        pp = &(*pp)->next;
    if (*pp)
        *pp = ds->next;
    ds_destroy(ds);
    return true;
}

/* Builds the dataset of t from its configs and stored index. NULL on failure. */
static struct dataset *ds_new(struct datasets *d, struct topic *t)
{
    struct dataset *ds = calloc(1, sizeof *ds);
    if (!ds)
        return NULL;
    ds->owner = d;
    memcpy(ds->id, t->id, 16);
    snprintf(ds->name, sizeof ds->name, "%s", t->name);
    ds->parts = t->partitions;
    ds->ts_ms = t->created_ms;
    char f[16];
    cfg_str(t, "source.format", "object", f, sizeof f);
    ds->format = dsf_format_parse(f) < 0 ? DSF_OBJECT : dsf_format_parse(f);
    ds->chunk_bytes = cfg_long(t, "source.chunk.bytes", DS_DEFAULT_CHUNK, 1, DS_MAX_RECORD_CAP);
    ds->max_record =
        cfg_long(t, "source.max.record.bytes", DS_DEFAULT_MAX_RECORD, 1, DS_MAX_RECORD_CAP);
    cfg_str(t, "source.uri", NULL, ds->uri, sizeof ds->uri);
    s3_parse_uri(ds->uri, ds->bucket, sizeof ds->bucket, ds->prefix, sizeof ds->prefix);
    struct s3_config sc;
    s3cfg_of(t, &sc);
    snprintf(ds->endpoint, sizeof ds->endpoint, "%s", sc.endpoint);
    snprintf(ds->region, sizeof ds->region, "%s", sc.region);
    ds->origin = (struct cache_origin){.fetch = origin_fetch, .arg = ds};
    if (!(ds->s3 = s3_new(d->b->loop, &sc))) {
        free(ds);
        return NULL;
    }
    int rc = index_load(ds, d->b->store);
    if (rc < 0) {
        log_warn("dataset %s: stored index unreadable; listing again", ds->name);
        for (uint64_t i = 0; i < ds->n; i++)
            free(ds->objs[i].key);
        ds->n = 0;
        ds->total_bytes = 0;
    }
    ds->next = d->all;
    d->all = ds;
    if (rc == 1) {
        ds->state = ds->n ? DS_READY : DS_ERROR;
        if (!ds->n)
            snprintf(ds->error, sizeof ds->error, "no objects under %.250s", ds->uri);
    } else {
        scan_start(ds);
    }
    return ds;
}

struct dataset *ds_get(struct datasets *d, struct topic *t)
{
    struct dataset *ds = ds_find_id(d, t->id);
    return ds ? ds : dataset_is_topic(t) ? ds_new(d, t) : NULL;
}

void dataset_topic_created(struct broker *b, struct topic *t)
{
    if (b->datasets && dataset_is_topic(t))
        ds_get(b->datasets, t);
}

void dataset_topic_deleted(struct broker *b, const struct topic *t)
{
    struct dataset *ds = b->datasets ? ds_find_id(b->datasets, t->id) : NULL;
    if (!ds)
        return;
    ds_cancel_loads(ds);
    ds->dead = true;
    ds->warm.active = false;
    cache_invalidate_ns(b->datasets->cache, ds->id);
    ds_maybe_free(ds);
}

static void on_tick(struct ev_loop *l, void *arg)
{
    struct datasets *d = arg;
    for (struct dataset *ds = d->all; ds; ds = ds->next)
        if (ds->warm.active && !ds->dead)
            ds_warm_tick(ds);
    ev_timer_start(l, &d->tick, DS_TICK_US);
}

struct datasets *datasets_new(struct broker *b)
{
    struct datasets *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->b = b;
    struct cache_opts o;
    cache_opts_from_config(&o, &b->cfg);
    if (!(d->cache = cache_new(b->loop, b->store, &o))) {
        free(d);
        return NULL;
    }
    d->block_bytes = cache_block_bytes(d->cache);
    d->ridx_cap = ds_index_cap(&b->cfg);
    ev_timer_init(&d->tick, on_tick, d);
    ev_timer_start(b->loop, &d->tick, DS_TICK_US);
    return d;
}

void datasets_free(struct datasets *d)
{
    if (!d)
        return;
    ev_timer_stop(d->b->loop, &d->tick);
    for (struct dataset *ds = d->all; ds; ds = ds->next) {
        ds_cancel_loads(ds);
        s3_free(ds->s3); /* drops its callbacks: no fill completes after this */
        ds->s3 = NULL;
    }
    cache_free(d->cache);
    for (struct dataset *ds = d->all, *n; ds; ds = n) {
        n = ds->next;
        ds_destroy(ds);
    }
    free(d);
}

/* ---- admin ---- */

static const char *state_name(int s)
{
    return s == DS_READY ? "ready" : s == DS_SCANNING ? "scanning" : "error";
}

static bool j_num(cJSON *o, const char *k, double v) { return cJSON_AddNumberToObject(o, k, v); }

struct cJSON *dataset_status_json(struct broker *b, struct topic *t)
{
    struct dataset *ds = b->datasets ? ds_get(b->datasets, t) : NULL;
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    if (!ds) {
        cJSON_AddStringToObject(o, "state", "error");
        cJSON_AddStringToObject(o, "error", "the dataset could not be set up");
        return o;
    }
    bool ok = cJSON_AddStringToObject(o, "state", ds->listing && ds->n ? "scanning"
                                                                       : state_name(ds->state)) &&
              (ds->error[0] ? cJSON_AddStringToObject(o, "error", ds->error)
                            : cJSON_AddNullToObject(o, "error")) &&
              cJSON_AddStringToObject(o, "uri", ds->uri) &&
              cJSON_AddStringToObject(o, "endpoint", ds->endpoint) &&
              cJSON_AddStringToObject(o, "region", ds->region) &&
              cJSON_AddStringToObject(o, "format", dsf_format_name(ds->format)) &&
              j_num(o, "objects", (double)ds->n) && j_num(o, "bytes", (double)ds->total_bytes) &&
              j_num(o, "error_records", (double)ds->error_records) &&
              j_num(o, "scanned_ms", (double)ds->scanned_ms);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *tier_json(const struct cache_tier_stats *s)
{
    cJSON *o = cJSON_CreateObject();
    if (o && j_num(o, "bytes", (double)s->bytes) && j_num(o, "capacity", (double)s->capacity) &&
        j_num(o, "blocks", (double)s->blocks) && j_num(o, "hits", (double)s->hits) &&
        j_num(o, "misses", (double)s->misses) && j_num(o, "evictions", (double)s->evictions))
        return o;
    cJSON_Delete(o);
    return NULL;
}

static cJSON *cache_json(struct dataset *ds)
{
    struct cache_stats cs;
    struct s3_stats ss;
    cache_stats(ds->owner->cache, ds->id, &cs);
    s3_stats(ds->s3, &ss);
    cJSON *o = cJSON_CreateObject(), *tiers = cJSON_AddObjectToObject(o, "tiers");
    cJSON *s3 = cJSON_AddObjectToObject(o, "s3");
    if (!tiers || !s3) {
        cJSON_Delete(o);
        return NULL;
    }
    cJSON_AddItemToObject(tiers, "memory", tier_json(&cs.memory));
    cJSON_AddItemToObject(tiers, "disk", tier_json(&cs.disk));
    j_num(s3, "requests", (double)ss.requests);
    j_num(s3, "gets", (double)ss.gets);
    j_num(s3, "lists", (double)ss.lists);
    j_num(s3, "bytes", (double)ss.bytes);
    j_num(s3, "errors", (double)ss.errors);
    j_num(s3, "retries", (double)ss.retries);
    j_num(s3, "connects", (double)ss.connects);
    j_num(s3, "latency_ms_p99", ss.latency_p99_ms);
    j_num(s3, "inflight", ss.inflight);
    j_num(o, "prefetches", (double)cs.prefetches);
    j_num(o, "prefetch_unused", (double)cs.prefetch_unused);
    j_num(o, "block_bytes", (double)ds->owner->block_bytes);
    j_num(o, "index_bytes", (double)ds->ridx_bytes);
    return o;
}

static cJSON *warm_json(struct dataset *ds)
{
    const struct ds_warm *w = &ds->warm;
    cJSON *o = cJSON_CreateObject();
    double pct = w->target > 0 ? 100.0 * (double)(w->loaded + w->already) / (double)w->target
                               : 0;
    if (pct > 100)
        pct = 100;
    cJSON_AddStringToObject(o, "state", w->waiting  ? "waiting for the listing"
                                        : w->active ? "warming"
                                        : w->target ? "done"
                                                    : "idle");
    j_num(o, "target_bytes", (double)w->target);
    j_num(o, "loaded_bytes", (double)w->loaded);
    j_num(o, "cached_bytes", (double)(w->loaded + w->already));
    j_num(o, "percent", pct);
    j_num(o, "inflight", w->inflight);
    j_num(o, "errors", (double)w->errors);
    if (w->last_error[0])
        cJSON_AddStringToObject(o, "last_error", w->last_error);
    j_num(o, "started_ms", (double)w->started_ms);
    j_num(o, "finished_ms", (double)w->finished_ms);
    return o;
}

/* Reads {"percent":N} (into *percent) or {"bytes":N} (into *bytes, *percent -1).
 * Returns 0 or -1. */
static int warm_target(const cJSON *body, double *percent, int64_t *bytes)
{
    const cJSON *pct = cJSON_GetObjectItemCaseSensitive(body, "percent");
    const cJSON *by = cJSON_GetObjectItemCaseSensitive(body, "bytes");
    *percent = -1;
    *bytes = 0;
    if (cJSON_IsNumber(pct) && !by && pct->valuedouble >= 0 && pct->valuedouble <= 100) {
        *percent = pct->valuedouble;
        return 0;
    }
    if (cJSON_IsNumber(by) && !pct && by->valuedouble >= 0 && by->valuedouble < 9.0e15) {
        *bytes = (int64_t)by->valuedouble;
        return 0;
    }
    return -1;
}

int dataset_admin(struct broker *b, struct topic *t, const char *action, const char *method,
                  const cJSON *body, cJSON **out, const char **code, char *msg, size_t msglen)
{
    struct dataset *ds = b->datasets && dataset_is_topic(t) ? ds_get(b->datasets, t) : NULL;
    bool post = !strcmp(method, "POST");
    *out = NULL;
    *code = "not_found";
    if (!ds) {
        snprintf(msg, msglen, "topic %s is not a dataset", t->name);
        return 404;
    }
    if (!strcmp(action, "rescan") && post) {
        scan_start(ds);
        *out = dataset_status_json(b, t);
        return 202;
    }
    if (!strcmp(action, "warm")) {
        if (post) {
            int64_t bytes;
            double percent;
            if (!body || warm_target(body, &percent, &bytes) < 0) {
                *code = "invalid_argument";
                snprintf(msg, msglen, "warm takes {\"percent\": 0..100} or {\"bytes\": N}");
                return 400;
            }
            ds_warm_start(ds, percent, bytes);
        }
        *out = warm_json(ds);
        return post ? 202 : 200;
    }
    if (!strcmp(action, "cache") && !post) {
        *out = cache_json(ds);
        return 200;
    }
    *code = post ? "method_not_allowed" : "not_found";
    snprintf(msg, msglen, "no %s %s on a dataset topic", method, action);
    return post ? 405 : 404;
}

/* ---- metrics ---- */

static void met(struct kc_writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void met(struct kc_writer *w, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0)
        kc_w_raw(w, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

static void met_tier(struct kc_writer *w, const char *topic, const char *tier,
                     const struct cache_tier_stats *s)
{
    met(w, "sluice_dataset_cache_bytes{topic=\"%s\",tier=\"%s\"} %" PRIu64 "\n", topic, tier,
        s->bytes);
    met(w, "sluice_dataset_cache_hits_total{topic=\"%s\",tier=\"%s\"} %" PRIu64 "\n", topic, tier,
        s->hits);
    met(w, "sluice_dataset_cache_misses_total{topic=\"%s\",tier=\"%s\"} %" PRIu64 "\n", topic,
        tier, s->misses);
}

void dataset_metrics(struct broker *b, struct kc_writer *w)
{
    struct datasets *d = b->datasets;
    if (!d)
        return;
    struct cache_stats all;
    cache_stats(d->cache, NULL, &all);
    met(w, "# TYPE sluice_cache_bytes gauge\n");
    met(w, "sluice_cache_bytes{tier=\"memory\"} %" PRIu64 "\n", all.memory.bytes);
    met(w, "sluice_cache_bytes{tier=\"disk\"} %" PRIu64 "\n", all.disk.bytes);
    met(w, "# TYPE sluice_cache_hits_total counter\n");
    met(w, "sluice_cache_hits_total{tier=\"memory\"} %" PRIu64 "\n", all.memory.hits);
    met(w, "sluice_cache_hits_total{tier=\"disk\"} %" PRIu64 "\n", all.disk.hits);
    met(w, "# TYPE sluice_cache_misses_total counter\n");
    met(w, "sluice_cache_misses_total{tier=\"memory\"} %" PRIu64 "\n", all.memory.misses);
    met(w, "sluice_cache_misses_total{tier=\"disk\"} %" PRIu64 "\n", all.disk.misses);
    met(w, "# TYPE sluice_dataset_index_bytes gauge\n");
    met(w, "sluice_dataset_index_bytes %" PRIu64 "\n", d->ridx_bytes);
    met(w, "# TYPE sluice_dataset_index_cap_bytes gauge\n");
    met(w, "sluice_dataset_index_cap_bytes %" PRIu64 "\n", d->ridx_cap);
    met(w, "# TYPE sluice_dataset_index_evictions_total counter\n");
    met(w, "sluice_dataset_index_evictions_total %" PRIu64 "\n", d->ridx_evictions);
    met(w, "# TYPE sluice_dataset_objects gauge\n");
    for (struct dataset *ds = d->all; ds; ds = ds->next) {
        if (ds->dead)
            continue;
        struct cache_stats cs;
        struct s3_stats ss;
        cache_stats(d->cache, ds->id, &cs);
        s3_stats(ds->s3, &ss);
        met(w, "sluice_dataset_objects{topic=\"%s\"} %" PRIu64 "\n", ds->name, ds->n);
        met(w, "sluice_dataset_bytes{topic=\"%s\"} %" PRId64 "\n", ds->name, ds->total_bytes);
        met_tier(w, ds->name, "memory", &cs.memory);
        met_tier(w, ds->name, "disk", &cs.disk);
        met(w, "sluice_dataset_s3_requests_total{topic=\"%s\"} %" PRIu64 "\n", ds->name,
            ss.requests);
        met(w, "sluice_dataset_s3_bytes_total{topic=\"%s\"} %" PRIu64 "\n", ds->name, ss.bytes);
        met(w, "sluice_dataset_s3_errors_total{topic=\"%s\"} %" PRIu64 "\n", ds->name, ss.errors);
        met(w, "sluice_dataset_s3_latency_ms_p99{topic=\"%s\"} %.3f\n", ds->name,
            ss.latency_p99_ms);
    }
}
