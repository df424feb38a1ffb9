/* topic.c: the topic registry. Topics live in the store's topics column family as small
 * JSON records keyed by name; in memory each topic is an entry in two hash tables (by
 * name and by topic id). Configs are kept as the strings the user set, and the typed
 * fields the broker acts on are derived from them. */
#include "topic.h"
#include "hash.h"

#include "broker.h"
#include "dataset.h"
#include "tiered.h"
#include "ev.h"
#include "log.h"
#include "store.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

struct topics {
    struct broker *b;
    size_t total;             /* topics in the store, loaded or not */
    struct ev_timer idle;     /* unloads topics and partitions nobody used lately */
    struct store_wb *scratch; /* reused by appends, so its buffer keeps its size */
    struct topic **by_name, **by_id;
    size_t nbuckets, count;
};

/* ---- hashing ---- */


static size_t name_bucket(const struct topics *ts, const char *name, size_t len)
{
    return hash_bytes(name, len) & (ts->nbuckets - 1);
}

static size_t id_bucket(const struct topics *ts, const uint8_t id[16])
{
    return hash_bytes(id, 16) & (ts->nbuckets - 1);
}

static void link_topic(struct topics *ts, struct topic *t)
{
    size_t a = name_bucket(ts, t->name, strlen(t->name)), i = id_bucket(ts, t->id);
    t->next_name = ts->by_name[a];
    ts->by_name[a] = t;
    t->next_id = ts->by_id[i];
    ts->by_id[i] = t;
}

/* Doubles the tables when the load passes one entry per bucket. */
static int grow(struct topics *ts)
{
    size_t n = ts->nbuckets * 2;
    struct topic **a = calloc(n, sizeof *a), **b = calloc(n, sizeof *b);
    if (!a || !b) {
        free(a);
        free(b);
        return -1;
    }
    struct topic **old = ts->by_name;
    size_t oldn = ts->nbuckets;
    free(ts->by_id);
    ts->by_name = a;
    ts->by_id = b;
    ts->nbuckets = n;
    for (size_t i = 0; i < oldn; i++) {
        for (struct topic *t = old[i], *next; t; t = next) {
            next = t->next_name;
            link_topic(ts, t);
        }
    }
    free(old);
    return 0;
}

static void unlink_topic(struct topics *ts, struct topic *t)
{
    struct topic **pp = &ts->by_name[name_bucket(ts, t->name, strlen(t->name))];
    while (*pp && *pp != t)
        pp = &(*pp)->next_name;
    if (*pp)
        *pp = t->next_name;
    pp = &ts->by_id[id_bucket(ts, t->id)];
    while (*pp && *pp != t)
        pp = &(*pp)->next_id;
    if (*pp)
        *pp = t->next_id;
}

enum { IDLE_SWEEP_US = 60 * 1000000 };

/* META keys: the topic count, and topic id -> name for lookups by id. */
static const char count_key[] = "topic_count";

static void id_key(uint8_t k[17], const uint8_t id[16])
{
    k[0] = 'T';
    memcpy(k + 1, id, 16);
}

static void on_idle_timer(struct ev_loop *l, void *arg);

struct topics *topics_new(struct broker *b)
{
    struct topics *ts = calloc(1, sizeof *ts);
    if (!ts)
        return NULL;
    ts->b = b;
    ts->nbuckets = 1024;
    ev_timer_init(&ts->idle, on_idle_timer, ts);
    ts->by_name = calloc(ts->nbuckets, sizeof *ts->by_name);
    ts->by_id = calloc(ts->nbuckets, sizeof *ts->by_id);
    if (!ts->by_name || !ts->by_id) {
        topics_free(ts);
        return NULL;
    }
    return ts;
}

static void topic_free(struct topic *t)
{
    if (!t)
        return;
    if (t->parts)
        for (int32_t i = 0; i < t->partitions; i++)
            plog_free(t->parts[i]);
    free(t->parts);
    for (int i = 0; i < t->nkv; i++) {
        free(t->kv[i].key);
        free(t->kv[i].value);
    }
    free(t->kv);
    free(t->name);
    free(t);
}

void topics_free(struct topics *ts)
{
    if (!ts)
        return;
    if (ts->b->loop)
        ev_timer_stop(ts->b->loop, &ts->idle);
    for (size_t i = 0; i < ts->nbuckets && ts->by_name; i++) {
        for (struct topic *t = ts->by_name[i], *n; t; t = n) {
            n = t->next_name;
            topic_free(t);
        }
    }
    free(ts->by_name);
    free(ts->by_id);
    store_wb_free(ts->scratch);
    free(ts);
}

size_t topics_count(const struct topics *ts) { return ts->total; }
size_t topics_loaded(const struct topics *ts) { return ts->count; }
struct broker *topics_broker(const struct topics *ts) { return ts->b; }

struct store_wb *topics_scratch_wb(struct topics *ts)
{
    if (!ts->scratch)
        ts->scratch = store_wb_new(ts->b->store);
    else
        store_wb_clear(ts->scratch);
    return ts->scratch;
}

static struct topic *load_by_name(struct topics *ts, const char *name, size_t len);

struct topic *topic_find(struct topics *ts, const char *name, size_t len)
{
    for (struct topic *t = ts->by_name[name_bucket(ts, name, len)]; t; t = t->next_name)
        if (strlen(t->name) == len && memcmp(t->name, name, len) == 0) {
            t->last_used_us = ev_now_us();
            return t;
        }
    return len > 0 && len <= TOPIC_NAME_MAX ? load_by_name(ts, name, len) : NULL;
}

struct topic *topic_find_id(struct topics *ts, const uint8_t id[16])
{
    for (struct topic *t = ts->by_id[id_bucket(ts, id)]; t; t = t->next_id)
        if (memcmp(t->id, id, 16) == 0) {
            t->last_used_us = ev_now_us();
            return t;
        }
    uint8_t k[17];
    size_t nl;
    int err;
    id_key(k, id);
    char *name = store_get(ts->b->store, STORE_CF_META, k, sizeof k, &nl, &err);
    struct topic *t = name ? topic_find(ts, name, nl) : NULL;
    free(name);
    return t && memcmp(t->id, id, 16) == 0 ? t : NULL;
}

void topics_foreach(struct topics *ts, topic_list_fn *fn, void *arg)
{
    for (size_t i = 0; i < ts->nbuckets; i++)
        for (struct topic *t = ts->by_name[i]; t; t = t->next_name)
            fn(arg, t);
}

int topic_name_check(const char *name, size_t len)
{
    if (len == 0 || len > TOPIC_NAME_MAX)
        return KERR_INVALID_TOPIC;
    if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
        return KERR_INVALID_TOPIC;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return KERR_INVALID_TOPIC;
    }
    return KERR_NONE;
}

/* ---- configs ---- */

enum cfg_type { CT_LONG, CT_INT, CT_STRING };

#define SHARED_CFG_MAX 3600000 /* ceiling of every numeric shared.* config */

struct cfgdef {
    const char *key;
    enum cfg_type type;
    int64_t min;
    const char *const *choices; /* allowed strings, NULL-terminated */
    bool fixed;                 /* cannot change after creation */
};

static const char *const mode_names[] = {"memory", "hybrid", "persistent", "tiered", NULL};
static const char *const cleanup_choices[] = {"delete", NULL};
static const char *const flush_choices[] = {"batch", "interval", NULL};
static const char *const ts_type_choices[] = {"CreateTime", NULL};
static const char *const compression_choices[] = {"producer", NULL};
static const char *const source_formats[] = {"object", "chunk", "lines", "tar", NULL};
static const char *const free_text[] = {NULL}; /* any value up to 2 KiB */
/* Modes this build can serve; the others are refused with a clear message. */
static const bool mode_available[] = {true, true, true, true};

static const struct cfgdef cfgdefs[] = {
    {"cleanup.policy", CT_STRING, 0, cleanup_choices, false},
    {"compression.type", CT_STRING, 0, compression_choices, false},
    {"flush.ms", CT_LONG, 0, NULL, false},
    {"flush.policy", CT_STRING, 0, flush_choices, false},
    {"local.retention.bytes", CT_LONG, -1, NULL, false},
    {"local.retention.ms", CT_LONG, -1, NULL, false},
    {"max.message.bytes", CT_INT, 0, NULL, false},
    {"message.timestamp.type", CT_STRING, 0, ts_type_choices, false},
    {"min.insync.replicas", CT_INT, 1, NULL, false},
    {"retention.bytes", CT_LONG, -1, NULL, false},
    {"retention.ms", CT_LONG, -1, NULL, false},
    {"segment.bytes", CT_INT, 14, NULL, false},
    {"segment.ms", CT_LONG, 1, NULL, false},
    /* shared view for classic consumers (share_view.h); a NULL choices list means a name */
    {"shared.group", CT_STRING, 0, NULL, false},
    {"shared.lock.ms", CT_LONG, 1000, NULL, false},
    {"shared.max.deliveries", CT_INT, 2, NULL, false},
    {"shared.max.unacked", CT_INT, 1, NULL, false},
    {"shared.name", CT_STRING, 0, NULL, false},
    {"shared.virtual.partitions", CT_INT, 1, NULL, false},
    /* dataset topics (dataset.h): free text is checked as a whole by dataset_validate */
    {"source.access.key.id", CT_STRING, 0, free_text, true},
    {"source.chunk.bytes", CT_LONG, 1, NULL, true},
    {"source.endpoint", CT_STRING, 0, free_text, true},
    {"source.format", CT_STRING, 0, source_formats, true},
    {"source.max.record.bytes", CT_LONG, 1, NULL, true},
    {"source.region", CT_STRING, 0, free_text, true},
    {"source.secret.access.key", CT_STRING, 0, free_text, true},
    {"source.uri", CT_STRING, 0, free_text, true},
    {"storage.mode", CT_STRING, 0, mode_names, true},
};
#define NCFGDEFS (sizeof cfgdefs / sizeof cfgdefs[0])

const char *topic_mode_name(int mode)
{
    return mode >= 0 && mode <= MODE_TIERED ? mode_names[mode] : "unknown";
}

int topic_mode_parse(const char *s, size_t len)
{
    for (int i = 0; mode_names[i]; i++)
        if (strlen(mode_names[i]) == len && memcmp(mode_names[i], s, len) == 0)
            return i;
    return -1;
}

static const struct cfgdef *cfg_find(const char *key, size_t len)
{
    for (size_t i = 0; i < NCFGDEFS; i++)
        if (strlen(cfgdefs[i].key) == len && memcmp(cfgdefs[i].key, key, len) == 0)
            return &cfgdefs[i];
    return NULL;
}

/* Parses a decimal integer that fills exactly len bytes. */
static int parse_i64(const char *s, size_t len, int64_t *out)
{
    char buf[32];
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, s, len);
    buf[len] = 0;
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

/* Checks one value against its definition; writes a reason into msg. */
static int cfg_check(const struct cfgdef *d, const char *v, size_t vl, char *msg, size_t msglen)
{
    int64_t x;
    if (d->type != CT_STRING) {
        if (parse_i64(v, vl, &x) < 0 || x < d->min || (d->type == CT_INT && x > INT32_MAX) ||
            (!strncmp(d->key, "shared.", 7) && x > SHARED_CFG_MAX)) {
            snprintf(msg, msglen, "invalid value '%.*s' for %s", (int)vl, v, d->key);
            return KERR_INVALID_CONFIG;
        }
        return KERR_NONE;
    }
    if (d->choices == free_text && vl <= 2048)
        return KERR_NONE;
    if (!d->choices) { /* a topic or group name */
        if (topic_name_check(v, vl) == KERR_NONE)
            return KERR_NONE;
        snprintf(msg, msglen, "invalid name '%.*s' for %s", (int)vl, v, d->key);
        return KERR_INVALID_CONFIG;
    }
    for (int i = 0; d->choices[i]; i++)
        if (strlen(d->choices[i]) == vl && memcmp(d->choices[i], v, vl) == 0) {
            if (d->choices == mode_names && !mode_available[i]) {
                snprintf(msg, msglen, "storage.mode %.*s is not available in this build",
                         (int)vl, v);
                return KERR_INVALID_CONFIG;
            }
            return KERR_NONE;
        }
    snprintf(msg, msglen, "invalid value '%.*s' for %s", (int)vl, v, d->key);
    return KERR_INVALID_CONFIG;
}

static const char *kv_get(const struct topic *t, const char *key)
{
    for (int i = 0; i < t->nkv; i++)
        if (strcmp(t->kv[i].key, key) == 0)
            return t->kv[i].value;
    return NULL;
}

const char *topic_config_get(const struct topic *t, const char *key) { return kv_get(t, key); }

static int64_t kv_long(const struct topic *t, const char *key, int64_t dflt)
{
    const char *v = kv_get(t, key);
    int64_t x;
    return v && parse_i64(v, strlen(v), &x) == 0 ? x : dflt;
}

/* Derives the typed config from the strings and the broker defaults. */
static void cfg_recompute(struct topics *ts, struct topic *t)
{
    const struct config *c = &ts->b->cfg;
    t->cfg.retention_ms = kv_long(t, "retention.ms", c->default_retention_ms);
    t->cfg.retention_bytes = kv_long(t, "retention.bytes", c->default_retention_bytes);
    t->cfg.max_message_bytes =
        (int32_t)kv_long(t, "max.message.bytes", c->default_max_message_bytes);
    const char *m = kv_get(t, "storage.mode");
    t->cfg.mode = m ? topic_mode_parse(m, strlen(m)) : MODE_PERSISTENT;
    const char *f = kv_get(t, "flush.policy");
    t->cfg.flush_interval = f && strcmp(f, "interval") == 0;
    t->cfg.flush_ms = kv_long(t, "flush.ms", 1000);
    t->cfg.local_retention_ms = kv_long(t, "local.retention.ms", c->tiered_local_retention_ms);
    t->cfg.local_retention_bytes =
        kv_long(t, "local.retention.bytes", c->tiered_local_retention_bytes);
}

static int kv_cmp(const void *a, const void *b)
{
    return strcmp(((const struct topic_kv *)a)->key, ((const struct topic_kv *)b)->key);
}

static void kv_sort(struct topic_kv *kv, int n)
{
    if (n > 1)
        qsort(kv, (size_t)n, sizeof *kv, kv_cmp);
}

/* Sets (value != NULL) or removes one key in a kv array; returns 0 or -1 (OOM). */
static int kv_set(struct topic_kv **kv, int *n, const char *key, size_t kl, const char *value,
                  size_t vl)
{
    for (int i = 0; i < *n; i++) {
        if (strlen((*kv)[i].key) != kl || memcmp((*kv)[i].key, key, kl) != 0)
            continue;
        free((*kv)[i].value);
        if (!value) {
            free((*kv)[i].key);
            (*kv)[i] = (*kv)[--*n];
            return 0;
        }
        return ((*kv)[i].value = strndup(value, vl)) ? 0 : -1;
    }
    if (!value)
        return 0;
    struct topic_kv *nk = realloc(*kv, (size_t)(*n + 1) * sizeof *nk);
    if (!nk)
        return -1;
    *kv = nk;
    nk[*n].key = strndup(key, kl);
    nk[*n].value = strndup(value, vl);
    if (!nk[*n].key || !nk[*n].value) {
        free(nk[*n].key);
        free(nk[*n].value);
        return -1;
    }
    (*n)++;
    return 0;
}

static void kv_free(struct topic_kv *kv, int n)
{
    for (int i = 0; i < n; i++) {
        free(kv[i].key);
        free(kv[i].value);
    }
    free(kv);
}

/* Validates a list of changes. A fixed key may be named only with its current value
 * (existing topic) or at creation (t == NULL). */
static int cfg_validate(const struct topic *t, const struct topic_cfg_change *ch, int n,
                        char *msg, size_t msglen)
{
    for (int i = 0; i < n; i++) {
        const struct cfgdef *d = cfg_find(ch[i].key, ch[i].key_len);
        if (!d) {
            snprintf(msg, msglen, "unknown topic config '%.*s'", (int)ch[i].key_len, ch[i].key);
            return KERR_INVALID_CONFIG;
        }
        if (ch[i].value) {
            int rc = cfg_check(d, ch[i].value, ch[i].value_len, msg, msglen);
            if (rc)
                return rc;
        }
        if (t && d->fixed) {
            const char *cur = kv_get(t, d->key);
            if (!cur)
                cur = "persistent";
            if (!ch[i].value || strlen(cur) != ch[i].value_len ||
                memcmp(cur, ch[i].value, ch[i].value_len) != 0) {
                snprintf(msg, msglen, "%s cannot change after the topic is created", d->key);
                return KERR_INVALID_CONFIG;
            }
        }
    }
    return KERR_NONE;
}

void topic_config_describe(struct topics *ts, const struct topic *t, topic_config_fn *fn,
                           void *arg)
{
    char buf[32];
    for (size_t i = 0; i < NCFGDEFS; i++) {
        const struct cfgdef *d = &cfgdefs[i];
        const char *v = kv_get(t, d->key);
        if (v) {
            bool secret = !strcmp(d->key, "source.secret.access.key");
            fn(arg, d->key, secret ? "[hidden]" : v, false, d->fixed);
            continue;
        }
        if (!strncmp(d->key, "shared.", 7) || !strncmp(d->key, "source.", 7))
            continue; /* only shown when set */
        if (!strcmp(d->key, "retention.ms"))
            snprintf(buf, sizeof buf, "%lld", (long long)ts->b->cfg.default_retention_ms);
        else if (!strcmp(d->key, "retention.bytes"))
            snprintf(buf, sizeof buf, "%lld", (long long)ts->b->cfg.default_retention_bytes);
        else if (!strcmp(d->key, "local.retention.ms"))
            snprintf(buf, sizeof buf, "%lld", (long long)ts->b->cfg.tiered_local_retention_ms);
        else if (!strcmp(d->key, "local.retention.bytes"))
            snprintf(buf, sizeof buf, "%lld", (long long)ts->b->cfg.tiered_local_retention_bytes);
        else if (!strcmp(d->key, "max.message.bytes"))
            snprintf(buf, sizeof buf, "%d", ts->b->cfg.default_max_message_bytes);
        else if (!strcmp(d->key, "storage.mode"))
            snprintf(buf, sizeof buf, "persistent");
        else if (!strcmp(d->key, "flush.ms"))
            snprintf(buf, sizeof buf, "1000");
        else if (!strcmp(d->key, "flush.policy"))
            snprintf(buf, sizeof buf, "batch");
        else if (!strcmp(d->key, "min.insync.replicas"))
            snprintf(buf, sizeof buf, "1");
        else if (!strcmp(d->key, "segment.bytes"))
            snprintf(buf, sizeof buf, "1073741824");
        else if (!strcmp(d->key, "segment.ms"))
            snprintf(buf, sizeof buf, "604800000");
        else
            snprintf(buf, sizeof buf, "%s", d->choices ? d->choices[0] : "");
        fn(arg, d->key, buf, true, d->fixed);
    }
}

/* ---- persistence ---- */

static void id_hex(const uint8_t id[16], char out[33])
{
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", id[i]);
}

static int hex_id(const char *s, uint8_t id[16])
{
    if (!s || strlen(s) != 32)
        return -1;
    for (int i = 0; i < 16; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            return -1;
        id[i] = (uint8_t)v;
    }
    return 0;
}

/* The topic's stored record as JSON (heap), or NULL. */
static char *topic_record(const struct topic *t)
{
    cJSON *o = cJSON_CreateObject(), *cfg = cJSON_AddObjectToObject(o, "config");
    char hex[33];
    id_hex(t->id, hex);
    cJSON_AddStringToObject(o, "id", hex);
    cJSON_AddNumberToObject(o, "partitions", t->partitions);
    cJSON_AddNumberToObject(o, "created_ms", (double)t->created_ms);
    for (int i = 0; i < t->nkv; i++)
        cJSON_AddStringToObject(cfg, t->kv[i].key, t->kv[i].value);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* Rewrites the record of an existing topic. Returns 0 or -1. */
static int topic_save(struct topics *ts, const struct topic *t)
{
    char *s = topic_record(t);
    if (!s)
        return -1;
    int rc = store_put(ts->b->store, STORE_CF_TOPICS, t->name, strlen(t->name), s, strlen(s));
    free(s);
    return rc;
}


static void put_count(struct store_wb *wb, size_t n)
{
    uint8_t v[8];
    kc_put_be64(v, (uint64_t)n);
    store_wb_put(wb, STORE_CF_META, count_key, sizeof count_key - 1, v, 8);
}

/* Adds (name, record, id index, count) in one atomic write. */
static int topic_store_new(struct topics *ts, const struct topic *t)
{
    char *rec = topic_record(t);
    struct store_wb *wb = store_wb_new(ts->b->store);
    uint8_t k[17];
    int rc = -1;
    if (rec && wb) {
        store_wb_put(wb, STORE_CF_TOPICS, t->name, strlen(t->name), rec, strlen(rec));
        id_key(k, t->id);
        store_wb_put(wb, STORE_CF_META, k, sizeof k, t->name, strlen(t->name));
        put_count(wb, ts->total + 1);
        rc = store_write(ts->b->store, wb, 0);
    }
    free(rec);
    store_wb_free(wb);
    return rc;
}

/* Builds a topic from its stored record; NULL if the record is corrupt. Touches no
 * shared state, so the retention worker may call it (as topic_parse_record). */
static struct topic *topic_from_record(struct topics *ts, const char *name, size_t nl,
                                       const char *v, size_t vl)
{
    cJSON *o = cJSON_ParseWithLength(v, vl);
    struct topic *t = calloc(1, sizeof *t);
    if (!o || !t)
        goto bad;
    t->name = strndup(name, nl);
    cJSON *parts = cJSON_GetObjectItem(o, "partitions"), *cfg = cJSON_GetObjectItem(o, "config");
    cJSON *created = cJSON_GetObjectItem(o, "created_ms");
    if (!t->name || hex_id(cJSON_GetStringValue(cJSON_GetObjectItem(o, "id")), t->id) < 0 ||
        !cJSON_IsNumber(parts) || parts->valuedouble < 1 ||
        parts->valuedouble > TOPIC_MAX_PARTITIONS)
        goto bad;
    t->partitions = (int32_t)parts->valuedouble;
    t->created_ms = cJSON_IsNumber(created) ? (int64_t)created->valuedouble : 0;
    cJSON *it;
    cJSON_ArrayForEach(it, cfg)
    {
        const char *s = cJSON_GetStringValue(it);
        if (s && kv_set(&t->kv, &t->nkv, it->string, strlen(it->string), s, strlen(s)) < 0)
            goto bad;
    }
    kv_sort(t->kv, t->nkv);
    cfg_recompute(ts, t);
    cJSON_Delete(o);
    return t;
bad:
    log_error("corrupt topic record for '%.*s'", (int)nl, name);
    cJSON_Delete(o);
    topic_free(t);
    return NULL;
}

static int topic_insert(struct topics *ts, struct topic *t)
{
    if (ts->count >= ts->nbuckets && grow(ts) < 0)
        return -1;
    t->parts = calloc((size_t)t->partitions, sizeof *t->parts);
    if (!t->parts)
        return -1;
    link_topic(ts, t);
    ts->count++;
    return 0;
}

/* Reads a topic that is not resident from the store and makes it resident. */
static struct topic *load_by_name(struct topics *ts, const char *name, size_t len)
{
    size_t vl;
    int err;
    char *v = store_get(ts->b->store, STORE_CF_TOPICS, name, len, &vl, &err);
    if (!v)
        return NULL;
    struct topic *t = topic_from_record(ts, name, len, v, vl);
    free(v);
    if (t && topic_insert(ts, t) < 0) {
        topic_free(t);
        return NULL;
    }
    if (t)
        t->last_used_us = ev_now_us();
    return t;
}

/* Counts the stored topics and writes the id index for each: the one full scan, run
 * only for a data dir that has no count yet. */
static int topics_reindex(struct topics *ts)
{
    struct store_it *it = store_it_new(ts->b->store, STORE_CF_TOPICS, NULL, 0, NULL, 0);
    struct store_wb *wb = store_wb_new(ts->b->store);
    size_t n = 0;
    int rc = it && wb ? 0 : -1;
    for (store_it_first(it); rc == 0 && store_it_valid(it); store_it_next(it)) {
        size_t kl, vl;
        const uint8_t *k = store_it_key(it, &kl), *v = store_it_value(it, &vl);
        struct topic *t = topic_from_record(ts, (const char *)k, kl, (const char *)v, vl);
        if (!t)
            continue;
        uint8_t ik[17];
        id_key(ik, t->id);
        store_wb_put(wb, STORE_CF_META, ik, sizeof ik, k, kl);
        topic_free(t);
        n++;
    }
    if (rc == 0) {
        put_count(wb, n);
        rc = store_write(ts->b->store, wb, 0);
    }
    store_it_free(it);
    store_wb_free(wb);
    ts->total = n;
    return rc;
}

static void on_idle_timer(struct ev_loop *l, void *arg);

int topics_load(struct topics *ts)
{
    size_t vl;
    int err;
    uint8_t *v = store_get(ts->b->store, STORE_CF_META, count_key, sizeof count_key - 1, &vl,
                           &err);
    if (err)
        return -1;
    if (v && vl == 8)
        ts->total = (size_t)kc_get_be64(v);
    else if (topics_reindex(ts) < 0) {
        free(v);
        return -1;
    }
    free(v);
    ev_timer_init(&ts->idle, on_idle_timer, ts);
    ev_timer_start(ts->b->loop, &ts->idle, IDLE_SWEEP_US);
    log_info("%zu topics in the store; each loads on first use", ts->total);
    return 0;
}

struct topic *topic_parse_record(struct topics *ts, const char *name, size_t nl, const char *v,
                                 size_t vl)
{
    return topic_from_record(ts, name, nl, v, vl);
}

void topic_release(struct topic *t) { topic_free(t); }

size_t topics_scan(struct topics *ts, topic_list_fn *fn, void *arg)
{
    struct store_it *it = store_it_new(ts->b->store, STORE_CF_TOPICS, NULL, 0, NULL, 0);
    size_t n = 0;
    for (store_it_first(it); it && store_it_valid(it); store_it_next(it)) {
        size_t kl, vl;
        const uint8_t *k = store_it_key(it, &kl), *v = store_it_value(it, &vl);
        struct topic *t = ts->by_name[name_bucket(ts, (const char *)k, kl)];
        while (t && (strlen(t->name) != kl || memcmp(t->name, k, kl) != 0))
            t = t->next_name;
        if (t) {
            fn(arg, t);
        } else if ((t = topic_from_record(ts, (const char *)k, kl, (const char *)v, vl))) {
            t->parts = calloc((size_t)t->partitions, sizeof *t->parts);
            if (t->parts)
                fn(arg, t); /* a passing copy: the scan does not make topics resident */
            topic_free(t);
        }
        n++;
    }
    store_it_free(it);
    return n;
}

/* ---- unloading what is idle ---- */

/* Whether nothing in memory depends on p: memory logs hold their data, parked fetches
 * hold hooks. */
static bool partition_idle(const struct topic *t, const struct partition *p, int64_t before_us)
{
    return t->cfg.mode != MODE_MEMORY && !p->waiters && p->last_used_us < before_us;
}

/* Frees the idle partitions of t; returns true when t holds none any more. */
static bool evict_partitions(struct topic *t, int64_t before_us)
{
    bool empty = true;
    for (int32_t i = 0; i < t->partitions; i++) {
        struct partition *p = t->parts[i];
        if (p && partition_idle(t, p, before_us)) {
            plog_free(p);
            t->parts[i] = NULL;
        }
        empty &= t->parts[i] == NULL;
    }
    return empty;
}

void topics_evict_idle(struct topics *ts, int64_t before_us)
{
    size_t parts = 0, topics = 0;
    for (size_t i = 0; i < ts->nbuckets; i++) {
        for (struct topic *t = ts->by_name[i], *n; t; t = n) {
            n = t->next_name;
            bool empty = evict_partitions(t, before_us);
            parts++;
            if (empty && t->last_used_us < before_us) {
                unlink_topic(ts, t);
                ts->count--;
                topic_free(t);
                topics++;
            }
        }
    }
    if (topics)
        log_debug("unloaded %zu idle topics (%zu resident)", topics, ts->count);
}

static void on_idle_timer(struct ev_loop *l, void *arg)
{
    struct topics *ts = arg;
    int64_t idle_us = ts->b->cfg.topic_idle_ms * 1000;
    topics_evict_idle(ts, ev_now_us() - idle_us);
    ev_timer_start(l, &ts->idle, IDLE_SWEEP_US);
}

int topics_list(struct topics *ts, const char *prefix, const char *after, int limit,
                topic_list_fn *fn, void *arg, bool *more)
{
    size_t pl = prefix ? strlen(prefix) : 0;
    struct store_it *it = store_it_new(ts->b->store, STORE_CF_TOPICS, NULL, 0, NULL, 0);
    int n = 0;
    *more = false;
    if (!it)
        return -1;
    if (after && *after && (!prefix || strcmp(after, prefix) >= 0)) {
        store_it_seek(it, after, strlen(after));
        if (store_it_valid(it)) {
            size_t kl;
            const uint8_t *k = store_it_key(it, &kl);
            if (kl == strlen(after) && memcmp(k, after, kl) == 0)
                store_it_next(it);
        }
    } else {
        store_it_seek(it, prefix ? prefix : "", pl);
    }
    for (; store_it_valid(it); store_it_next(it)) {
        size_t kl;
        const uint8_t *k = store_it_key(it, &kl);
        if (kl < pl || memcmp(k, prefix, pl) != 0)
            break;
        if (n == limit) {
            *more = true;
            break;
        }
        struct topic *t = topic_find(ts, (const char *)k, kl);
        if (t) {
            fn(arg, t);
            n++;
        }
    }
    store_it_free(it);
    return n;
}

/* ---- create, delete, alter ---- */

/* Whether a creation's configs ask for storage.mode tiered. */
static bool wants_tiered(const struct topic_cfg_change *cfg, int n)
{
    for (int i = 0; i < n; i++)
        if (cfg[i].key_len == 12 && !memcmp(cfg[i].key, "storage.mode", 12) && cfg[i].value &&
            cfg[i].value_len == 6 && !memcmp(cfg[i].value, "tiered", 6))
            return true;
    return false;
}

int topic_create(struct topics *ts, const char *name, size_t len, int32_t partitions,
                 const struct topic_cfg_change *cfg, int ncfg, bool validate_only,
                 struct topic **out, char *msg, size_t msglen)
{
    msg[0] = 0;
    if (topic_name_check(name, len) != KERR_NONE) {
        snprintf(msg, msglen, "illegal topic name: 1 to %d of [a-zA-Z0-9._-], not '.' or '..'",
                 TOPIC_NAME_MAX);
        return KERR_INVALID_TOPIC;
    }
    if (topic_find(ts, name, len)) {
        snprintf(msg, msglen, "topic '%.*s' already exists", (int)len, name);
        return KERR_TOPIC_ALREADY_EXISTS;
    }
    if (partitions < 1 || partitions > TOPIC_MAX_PARTITIONS) {
        snprintf(msg, msglen, "partitions must be between 1 and %d", TOPIC_MAX_PARTITIONS);
        return KERR_INVALID_PARTITIONS;
    }
    if (ts->b->cfg.max_topics > 0 && ts->total >= (size_t)ts->b->cfg.max_topics) {
        snprintf(msg, msglen, "the broker holds max.topics=%lld topics",
                 (long long)ts->b->cfg.max_topics);
        return KERR_POLICY_VIOLATION;
    }
    int rc = cfg_validate(NULL, cfg, ncfg, msg, msglen);
    if (rc == KERR_NONE)
        rc = dataset_validate(cfg, ncfg, msg, msglen);
    if (rc == KERR_NONE && !ts->b->cfg.tiered_s3_uri[0] && wants_tiered(cfg, ncfg)) {
        snprintf(msg, msglen, "storage.mode tiered is not available: the broker has no "
                              "tiered.s3.uri");
        rc = KERR_INVALID_CONFIG;
    }
    if (rc || validate_only)
        return rc;
    struct topic *t = calloc(1, sizeof *t);
    if (!t || !(t->name = strndup(name, len)))
        goto oom;
    t->partitions = partitions;
    t->created_ms = ev_wall_ms();
    if (getrandom(t->id, 16, 0) != 16)
        goto oom;
    t->id[6] = (uint8_t)((t->id[6] & 0x0f) | 0x40); /* UUID v4 */
    t->id[8] = (uint8_t)((t->id[8] & 0x3f) | 0x80);
    for (int i = 0; i < ncfg; i++)
        if (kv_set(&t->kv, &t->nkv, cfg[i].key, cfg[i].key_len, cfg[i].value,
                   cfg[i].value_len) < 0)
            goto oom;
    kv_sort(t->kv, t->nkv);
    cfg_recompute(ts, t);
    if (topic_store_new(ts, t) < 0 || topic_insert(ts, t) < 0)
        goto oom;
    ts->total++;
    t->last_used_us = ev_now_us();
    log_debug("created topic %s with %d partitions", t->name, partitions);
    dataset_topic_created(ts->b, t);
    if (out)
        *out = t;
    return KERR_NONE;
oom:
    topic_free(t);
    snprintf(msg, msglen, "could not create the topic (out of memory or storage error)");
    return KERR_UNKNOWN_SERVER;
}

/* Deletes everything stored under the topic id: its log and partition state. */
static int topic_erase_data(struct topics *ts, const struct topic *t)
{
    uint8_t lo[16], hi[17];
    memcpy(lo, t->id, 16);
    memcpy(hi, t->id, 16);
    hi[16] = 0xff; /* every key under the id is 16 bytes of id then more */
    struct store_wb *wb = store_wb_new(ts->b->store);
    if (!wb)
        return -1;
    store_wb_del_range(wb, STORE_CF_LOG, lo, 16, hi, 17);
    store_wb_del_range(wb, STORE_CF_PSTATE, lo, 16, hi, 17);
    store_wb_del(wb, STORE_CF_TOPICS, t->name, strlen(t->name));
    uint8_t k[17];
    id_key(k, t->id);
    store_wb_del(wb, STORE_CF_META, k, sizeof k);
    put_count(wb, ts->total - 1);
    int rc = store_write(ts->b->store, wb, 0);
    store_wb_free(wb);
    return rc;
}

int topic_delete(struct topics *ts, struct topic *t)
{
    dataset_topic_deleted(ts->b, t);
    tiered_topic_deleted(ts->b, t);
    if (topic_erase_data(ts, t) < 0)
        return KERR_UNKNOWN_SERVER;
    for (int32_t i = 0; i < t->partitions; i++)
        if (t->parts[i])
            fetch_wake_partition(ts->b, t->parts[i]);
    unlink_topic(ts, t);
    ts->count--;
    ts->total--;
    log_info("deleted topic %s", t->name);
    topic_free(t);
    return KERR_NONE;
}

int topic_add_partitions(struct topics *ts, struct topic *t, int32_t count, bool validate_only,
                         char *msg, size_t msglen)
{
    msg[0] = 0;
    if (count <= t->partitions || count > TOPIC_MAX_PARTITIONS) {
        snprintf(msg, msglen, "topic has %d partitions; the new count must be larger (max %d)",
                 t->partitions, TOPIC_MAX_PARTITIONS);
        return KERR_INVALID_PARTITIONS;
    }
    if (dataset_is_topic(t)) {
        snprintf(msg, msglen, "a dataset topic keeps its partition count (objects map to "
                 "partitions by index)");
        return KERR_POLICY_VIOLATION;
    }
    if (validate_only)
        return KERR_NONE;
    struct partition **np = realloc(t->parts, (size_t)count * sizeof *np);
    if (!np)
        return KERR_UNKNOWN_SERVER;
    memset(np + t->partitions, 0, (size_t)(count - t->partitions) * sizeof *np);
    t->parts = np;
    int32_t old = t->partitions;
    t->partitions = count;
    if (topic_save(ts, t) < 0) {
        t->partitions = old;
        return KERR_UNKNOWN_SERVER;
    }
    log_info("topic %s now has %d partitions", t->name, count);
    return KERR_NONE;
}

int topic_alter_config(struct topics *ts, struct topic *t, const struct topic_cfg_change *ch,
                       int n, bool incremental, bool validate_only, char *msg, size_t msglen)
{
    msg[0] = 0;
    int rc = cfg_validate(t, ch, n, msg, msglen);
    if (rc || validate_only)
        return rc;
    struct topic_kv *kv = NULL;
    int nkv = 0;
    if (incremental || kv_get(t, "storage.mode") || dataset_is_topic(t)) {
        for (int i = 0; i < t->nkv; i++) {
            bool keep = incremental || strcmp(t->kv[i].key, "storage.mode") == 0 ||
                        strncmp(t->kv[i].key, "source.", 7) == 0;
            if (keep && kv_set(&kv, &nkv, t->kv[i].key, strlen(t->kv[i].key), t->kv[i].value,
                               strlen(t->kv[i].value)) < 0)
                goto oom;
        }
    }
    for (int i = 0; i < n; i++)
        if (kv_set(&kv, &nkv, ch[i].key, ch[i].key_len, ch[i].value, ch[i].value_len) < 0)
            goto oom;
    kv_sort(kv, nkv);
    struct topic_kv *oldkv = t->kv;
    int oldn = t->nkv;
    t->kv = kv;
    t->nkv = nkv;
    if (topic_save(ts, t) < 0) {
        t->kv = oldkv;
        t->nkv = oldn;
        kv_free(kv, nkv);
        return KERR_UNKNOWN_SERVER;
    }
    kv_free(oldkv, oldn);
    cfg_recompute(ts, t);
    return KERR_NONE;
oom:
    kv_free(kv, nkv);
    return KERR_UNKNOWN_SERVER;
}
