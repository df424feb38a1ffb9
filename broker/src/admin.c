/* admin.c: the admin HTTP API on libmicrohttpd. MHD runs in external epoll mode: its
 * epoll fd sits in the broker's event loop and a timer follows MHD_get_timeout(), so
 * every handler runs on the loop thread and may use the topic registry. */
#include "admin.h"

#include "admin_tls.h"

#include "broker.h"
#include "config.h"
#include "dataset.h"
#include "ev.h"
#include "group.h"
#include "kcodec.h"
#include "log.h"
#include "metrics.h"
#include "principal_admin.h"
#include "principals.h"
#include "share_admin.h"
#include "share_view.h"
#include "topic.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define ADMIN_MAX_BODY (1u << 20)  /* request bodies above this get 413 */
#define ADMIN_MAX_DROP (16u << 20) /* past this, an oversized body closes */
#define ADMIN_MAX_CONNS 64u
#define ADMIN_CONN_TIMEOUT_S 30u
#define ADMIN_CONN_MEMORY (128u << 10) /* MHD's per-connection pool: headers */
#define ADMIN_METRICS_MAX (64u << 20)
#define ADMIN_LIST_DEFAULT 100
#define ADMIN_LIST_MAX 1000
#define ADMIN_MAX_CONFIGS 1024                /* config entries in one request */
#define ADMIN_JSON_INT_MAX 9007199254740992LL /* 2^53: integers a double holds exactly */

struct admin {
    struct broker *b;
    struct MHD_Daemon *d;
    int epfd;              /* MHD's epoll fd, registered with the loop */
    struct ev_timer timer; /* next MHD_run() MHD asked for */
    struct admin_tls *tls; /* admin.ssl.enable: the OpenSSL front that feeds MHD */
};

static void admin_poll(struct admin *a);

/* Whether c came through the TLS front with a verified client certificate. */
static bool admin_tls_client_verified(struct admin *a, struct MHD_Connection *c)
{
    if (!a->tls)
        return false;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci && admin_tls_verified(a->tls, ci->connect_fd);
}

/* The TLS front hands a decrypted connection to MHD. */
static int admin_add_conn(void *arg, int fd, const void *sa, unsigned salen)
{
    struct admin *a = arg;
    if (MHD_add_connection(a->d, fd, (const struct sockaddr *)sa, (socklen_t)salen) != MHD_YES)
        return -1;
    admin_poll(a);
    return 0;
}

/* Per-request state kept by MHD between calls: the body as it arrives. */
struct admin_body {
    char *p; /* NUL-terminated */
    size_t len, cap;
    size_t dropped; /* bytes read and thrown away after too_large */
    bool too_large;
    bool replied; /* a response is queued; further upload data is discarded */
};

/* admin_handle_for_test(): a request that comes without MHD; c is NULL. */
struct admin_test {
    const char *query;         /* "k=v&k2=v2", still escaped */
    const char *authorization; /* the Authorization header, or NULL */
    int status;
    char *out; /* the response body (malloc'd, NUL-terminated) */
    size_t out_len;
};

/* One request being answered. */
struct areq {
    struct admin *a;
    struct MHD_Connection *c;
    const char *method, *url;
    struct admin_body *body;
    struct admin_test *test; /* NULL but in admin_handle_for_test() */
};

/* An error on its way to the client. */
struct aerr {
    int status;
    const char *code;
    char msg[256];
};

/* Config changes collected from a request; num[i] holds ch[i]'s formatted number. */
struct cfg_list {
    struct topic_cfg_change *ch;
    char (*num)[32];
    int n, cap;
};

static void aerr_set(struct aerr *e, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void aerr_set(struct aerr *e, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    e->status = status;
    e->code = code;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
}

/* --- responses --- */

/* Keeps a response for admin_handle_for_test(). Returns MHD_YES, or MHD_NO out of
 * memory. */
static enum MHD_Result admin_test_reply(struct admin_test *t, int status, void *body,
                                        size_t len, bool owned)
{
    free(t->out);
    t->status = status;
    t->out_len = len;
    t->out = malloc(len + 1);
    if (t->out) {
        if (len)
            memcpy(t->out, body, len);
        t->out[len] = 0;
    }
    if (owned)
        free(body);
    return t->out ? MHD_YES : MHD_NO;
}

/* Queues body (len bytes; taken over and freed when `owned`) with status, counts it in
 * the metrics and logs the request. Returns MHD's verdict. */
static enum MHD_Result reply_buf(struct areq *r, int status, const char *ctype, void *body,
                                 size_t len, bool owned, const char *allow)
{
    enum MHD_Result ret = MHD_NO;
    if (r->test) {
        ret = admin_test_reply(r->test, status, body, len, owned);
        goto out;
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, body, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        if (owned)
            free(body);
        goto out;
    }
    if (ctype)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    ret = MHD_queue_response(r->c, (unsigned)status, resp);
    MHD_destroy_response(resp);
out:
    if (r->body)
        r->body->replied = true;
    metrics_http(r->a->b->metrics, status);
    log_debug("admin: %s %s -> %d", r->method, r->url, status);
    return ret;
}

/* Sends j (consumed; NULL after a failed build) as a JSON response. */
static enum MHD_Result reply_json_allow(struct areq *r, int status, cJSON *j, const char *allow)
{
    static char oom[] = "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
    char *s = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!s)
        return reply_buf(r, 500, "application/json", oom, sizeof oom - 1, false, NULL);
    return reply_buf(r, status, "application/json", s, strlen(s), true, allow);
}

static enum MHD_Result reply_json(struct areq *r, int status, cJSON *j)
{
    return reply_json_allow(r, status, j, NULL);
}

/* Sends {"error":{"code":...,"message":...}} with the error's status. */
static enum MHD_Result reply_err(struct areq *r, const struct aerr *e, const char *allow)
{
    cJSON *j = cJSON_CreateObject(), *err = cJSON_AddObjectToObject(j, "error");
    if (!cJSON_AddStringToObject(err, "code", e->code) ||
        !cJSON_AddStringToObject(err, "message", e->msg))
        cJSON_Delete(j), j = NULL;
    return reply_json_allow(r, e->status, j, allow);
}

static enum MHD_Result reply_error(struct areq *r, int status, const char *code, const char *msg)
{
    struct aerr e;
    aerr_set(&e, status, code, "%s", msg);
    return reply_err(r, &e, NULL);
}

static enum MHD_Result reply_too_large(struct areq *r)
{
    return reply_error(r, 413, "payload_too_large", "request body over 1 MiB");
}

/* Maps a Kafka error from the topic registry onto an HTTP error. */
static void aerr_kafka(struct aerr *e, int kerr, const char *msg)
{
    static const struct {
        int kerr, status;
        const char *code;
    } map[] = {
        {KERR_INVALID_TOPIC, 400, "invalid_topic_name"},
        {KERR_TOPIC_ALREADY_EXISTS, 409, "topic_exists"},
        {KERR_INVALID_PARTITIONS, 400, "invalid_partitions"},
        {KERR_INVALID_CONFIG, 400, "invalid_config"},
        {KERR_POLICY_VIOLATION, 403, "policy_violation"},
        {KERR_UNKNOWN_TOPIC_OR_PARTITION, 404, "not_found"},
    };
    size_t i = 0;
    while (i < sizeof map / sizeof map[0] && map[i].kerr != kerr)
        i++;
    if (i == sizeof map / sizeof map[0])
        aerr_set(e, 500, "internal", "%s", *msg ? msg : "topic registry error");
    else
        aerr_set(e, map[i].status, map[i].code, "%s", msg);
}

/* --- topic JSON --- */

/* Adds v as an exact JSON integer (cJSON numbers are doubles). Returns false on OOM. */
static bool j_i64(cJSON *o, const char *k, int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    return cJSON_AddRawToObject(o, k, buf) != NULL;
}

/* Adds v (consumed, may be NULL) under k. Returns false when v is NULL or on OOM. */
static bool j_add(cJSON *o, const char *k, cJSON *v)
{
    if (!v)
        return false;
    if (!cJSON_AddItemToObject(o, k, v)) {
        cJSON_Delete(v);
        return false;
    }
    return true;
}

/* Returns {"mode","retention_ms","retention_bytes"} for t, or NULL on OOM. */
static cJSON *tj_storage(const struct topic *t)
{
    cJSON *s = cJSON_CreateObject();
    const char *mode = topic_mode_name(t->cfg.mode);
    bool ok = s && cJSON_AddStringToObject(s, "mode", mode ? mode : "unknown") &&
              j_i64(s, "retention_ms", t->cfg.retention_ms) &&
              j_i64(s, "retention_bytes", t->cfg.retention_bytes);
    if (!ok) {
        cJSON_Delete(s);
        return NULL;
    }
    return s;
}

/* Returns an object of every explicitly set config, or NULL on OOM. */
static cJSON *tj_config(const struct topic *t)
{
    cJSON *c = cJSON_CreateObject();
    for (int i = 0; c && i < t->nkv; i++) {
        bool secret = !strcmp(t->kv[i].key, "source.secret.access.key");
        if (!cJSON_AddStringToObject(c, t->kv[i].key, secret ? "[hidden]" : t->kv[i].value)) {
            cJSON_Delete(c);
            return NULL;
        }
    }
    return c;
}

/* Returns one partition's stats; p NULL (its state failed to load) is reported as such. */
static cJSON *tj_partition(int32_t i, const struct partition *p)
{
    cJSON *o = cJSON_CreateObject();
    bool ok = o && j_i64(o, "partition", i);
    if (ok && p)
        ok = j_i64(o, "log_start_offset", p->log_start) && j_i64(o, "high_watermark", p->hwm) &&
             j_i64(o, "bytes", p->bytes);
    else if (ok)
        ok = cJSON_AddStringToObject(o, "error", "unavailable") != NULL;
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* Returns the live stats of t, loading partitions as needed, or NULL on OOM. */
static cJSON *tj_stats(struct topics *ts, struct topic *t)
{
    cJSON *s = cJSON_CreateObject(), *arr = cJSON_CreateArray();
    int64_t bytes = 0, msgs = 0;
    bool ok = s && arr;
    for (int32_t i = 0; ok && i < t->partitions; i++) {
        struct partition *p = topic_partition(ts, t, i);
        if (p) {
            bytes += p->bytes;
            msgs += p->hwm - p->log_start;
        }
        cJSON *e = tj_partition(i, p);
        ok = e && cJSON_AddItemToArray(arr, e);
        if (!ok)
            cJSON_Delete(e);
    }
    ok = ok && j_add(s, "partitions", arr);
    if (!ok)
        cJSON_Delete(arr); /* not attached */
    ok = ok && j_i64(s, "bytes", bytes) && j_i64(s, "messages", msgs) &&
         j_i64(s, "bytes_in", (int64_t)t->bytes_in) && j_i64(s, "bytes_out", (int64_t)t->bytes_out);
    if (!ok) {
        cJSON_Delete(s);
        return NULL;
    }
    return s;
}

/* Returns the JSON of t; with stats it loads partition state, so listings leave them out.
 * NULL on OOM. */
static cJSON *tj_topic(struct topics *ts, struct topic *t, bool stats)
{
    static const char hex[] = "0123456789abcdef";
    char id[33];
    for (int i = 0; i < 16; i++) {
        id[2 * i] = hex[t->id[i] >> 4];
        id[2 * i + 1] = hex[t->id[i] & 15];
    }
    id[32] = 0;
    cJSON *o = cJSON_CreateObject();
    bool ok = o && cJSON_AddStringToObject(o, "name", t->name) &&
              cJSON_AddStringToObject(o, "id", id) && j_i64(o, "partitions", t->partitions) &&
              j_i64(o, "created_ms", t->created_ms) && j_add(o, "storage", tj_storage(t)) &&
              j_add(o, "config", tj_config(t));
    if (ok && topic_config_get(t, "shared.virtual.partitions")) {
        char view[TOPIC_NAME_MAX + 1];
        share_view_name_of(t, view, sizeof view);
        cJSON *sh = cJSON_AddObjectToObject(o, "shared");
        ok = sh && cJSON_AddStringToObject(sh, "view", view);
    }
    if (ok && dataset_is_topic(t))
        ok = j_add(o, "source", dataset_status_json(topics_broker(ts), t));
    if (ok && stats)
        ok = j_add(o, "stats", tj_stats(ts, t));
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* --- request parsing --- */

/* Returns the member k of o, treating a JSON null like an absent member. */
static const cJSON *j_get(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNull(v) ? NULL : v;
}

/* Reads an integral number in [lo, hi] (within +-2^53). Returns 0, or -1 otherwise. */
static int j_int(const cJSON *v, int64_t lo, int64_t hi, int64_t *out)
{
    if (!cJSON_IsNumber(v))
        return -1;
    double d = v->valuedouble;
    if (!(d >= (double)lo && d <= (double)hi))
        return -1;
    if (d != (double)(int64_t)d)
        return -1;
    *out = (int64_t)d;
    return 0;
}

/* Rejects members of o not named in allowed (NULL-terminated). Returns 0 or -1. */
static int j_known_keys(const cJSON *o, const char *const *allowed, const char *where,
                        struct aerr *e)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, o)
    {
        const char *const *a = allowed;
        while (*a && strcmp(*a, it->string))
            a++;
        if (!*a) {
            aerr_set(e, 400, "invalid_argument", "unknown field %.64s%s", where, it->string);
            return -1;
        }
    }
    return 0;
}

/* Parses the request body as one JSON object. Returns it, or NULL with e set. */
static cJSON *body_json(struct areq *r, struct aerr *e)
{
    const char *end = NULL;
    const char *p = r->body->p ? r->body->p : "";
    cJSON *j = cJSON_ParseWithLengthOpts(p, r->body->len, &end, false);
    while (j && end < p + r->body->len && strchr(" \t\r\n", *end))
        end++;
    if (!j || end != p + r->body->len) {
        cJSON_Delete(j);
        aerr_set(e, 400, "invalid_json", "request body is not valid JSON");
        return NULL;
    }
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        aerr_set(e, 400, "invalid_argument", "request body must be a JSON object");
        return NULL;
    }
    return j;
}

/* Sizes the list for the members of cfg (an object, or NULL) plus the storage settings.
 * Returns 0, or -1 with e set. */
static int cfg_init(struct cfg_list *cl, const cJSON *cfg, struct aerr *e)
{
    int n = cJSON_IsObject(cfg) ? cJSON_GetArraySize(cfg) : 0;
    if (n > ADMIN_MAX_CONFIGS) {
        aerr_set(e, 400, "invalid_argument", "more than %d config entries", ADMIN_MAX_CONFIGS);
        return -1;
    }
    cl->cap = n + 3 + 6 + 8; /* + storage + shared + source settings */
    cl->ch = calloc((size_t)cl->cap, sizeof *cl->ch);
    cl->num = calloc((size_t)cl->cap, sizeof *cl->num);
    if (!cl->ch || !cl->num) {
        aerr_set(e, 500, "internal", "out of memory");
        return -1;
    }
    return 0;
}

static void cfg_free(struct cfg_list *cl)
{
    free(cl->ch);
    free(cl->num);
}

/* Appends key = v, where v is a string, a number (integers exactly, other numbers
 * shortest round trip), a boolean, or null (a reset, only when allow_null). Returns 0,
 * or -1 with e set. */
static int cfg_push(struct cfg_list *cl, const char *key, const cJSON *v, bool allow_null,
                    struct aerr *e)
{
    int64_t iv;
    if (cl->n >= cl->cap) {
        aerr_set(e, 400, "invalid_argument", "too many config entries");
        return -1;
    }
    struct topic_cfg_change *c = &cl->ch[cl->n];
    char *num = cl->num[cl->n];
    for (int i = 0; i < cl->n; i++)
        if (cl->ch[i].key_len == strlen(key) && !memcmp(cl->ch[i].key, key, strlen(key))) {
            aerr_set(e, 400, "invalid_argument", "config %.128s given twice", key);
            return -1;
        }
    *c = (struct topic_cfg_change){.key = key, .key_len = strlen(key)};
    if (cJSON_IsString(v))
        c->value = v->valuestring;
    else if (j_int(v, -ADMIN_JSON_INT_MAX, ADMIN_JSON_INT_MAX, &iv) == 0)
        c->value = num, snprintf(num, 32, "%" PRId64, iv);
    else if (cJSON_IsNumber(v)) {
        snprintf(num, 32, "%.15g", v->valuedouble);
        if (strtod(num, NULL) != v->valuedouble)
            snprintf(num, 32, "%.17g", v->valuedouble);
        c->value = num;
    } else if (cJSON_IsBool(v))
        c->value = cJSON_IsTrue(v) ? "true" : "false";
    else if (!(allow_null && cJSON_IsNull(v))) {
        aerr_set(e, 400, "invalid_argument", "config %.128s: value must be a string or number",
                 key);
        return -1;
    }
    c->value_len = c->value ? strlen(c->value) : 0;
    cl->n++;
    return 0;
}

/* Adds every member of the "config" object. Returns 0, or -1 with e set. */
static int cfg_add_object(struct cfg_list *cl, const cJSON *cfg, bool allow_null, struct aerr *e)
{
    if (!cfg)
        return 0;
    if (!cJSON_IsObject(cfg)) {
        aerr_set(e, 400, "invalid_argument", "config must be an object");
        return -1;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, cfg)
    {
        if (cfg_push(cl, it->string, it, allow_null, e) < 0)
            return -1;
    }
    return 0;
}

/* Adds the "storage" object's settings as configs. t is the topic being changed (PATCH),
 * whose mode cannot change, or NULL at create. Returns 0, or -1 with e set. */
static int cfg_add_storage(struct cfg_list *cl, const cJSON *st, const struct topic *t,
                           struct aerr *e)
{
    static const char *const keys[] = {"mode", "retention_ms", "retention_bytes", "replicas", NULL};
    const cJSON *mode, *rms, *rbytes, *rep;
    int64_t v;
    if (!st)
        return 0;
    if (!cJSON_IsObject(st)) {
        aerr_set(e, 400, "invalid_argument", "storage must be an object");
        return -1;
    }
    if (j_known_keys(st, keys, "storage.", e) < 0)
        return -1;
    mode = j_get(st, "mode"), rms = j_get(st, "retention_ms");
    rbytes = j_get(st, "retention_bytes"), rep = j_get(st, "replicas");
    if (rep && (j_int(rep, 1, 1, &v) < 0)) {
        aerr_set(e, 400, "invalid_argument", "storage.replicas must be 1");
        return -1;
    }
    if (mode && !cJSON_IsString(mode)) {
        aerr_set(e, 400, "invalid_argument", "storage.mode must be a string");
        return -1;
    }
    if (mode && t &&
        topic_mode_parse(mode->valuestring, strlen(mode->valuestring)) != t->cfg.mode) {
        aerr_set(e, 400, "invalid_argument", "storage.mode cannot be changed");
        return -1;
    }
    if (mode && !t && cfg_push(cl, "storage.mode", mode, false, e) < 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        const cJSON *n = i ? rbytes : rms;
        if (!n)
            continue;
        if (j_int(n, -ADMIN_JSON_INT_MAX, ADMIN_JSON_INT_MAX, &v) < 0) {
            aerr_set(e, 400, "invalid_argument", "storage.%s must be an integer",
                     i ? "retention_bytes" : "retention_ms");
            return -1;
        }
        if (cfg_push(cl, i ? "retention.bytes" : "retention.ms", n, false, e) < 0)
            return -1;
    }
    return 0;
}

/* Adds the "shared" object ({virtual_partitions, lock_ms, max_deliveries, max_unacked,
 * name, group}) as shared.* configs; topic.c validates them. Returns 0, or -1 with e set. */
static int cfg_add_shared(struct cfg_list *cl, const cJSON *sh, struct aerr *e)
{
    static const char *const keys[] = {"virtual_partitions", "lock_ms", "max_deliveries",
                                       "max_unacked",        "name",    "group",
                                       NULL};
    static const char *const cfgs[] = {"shared.virtual.partitions", "shared.lock.ms",
                                       "shared.max.deliveries",     "shared.max.unacked",
                                       "shared.name",               "shared.group"};
    if (!sh)
        return 0;
    if (!cJSON_IsObject(sh) || j_known_keys(sh, keys, "shared.", e) < 0) {
        if (!cJSON_IsObject(sh))
            aerr_set(e, 400, "invalid_argument", "shared must be an object");
        return -1;
    }
    if (!j_get(sh, "virtual_partitions")) {
        aerr_set(e, 400, "invalid_argument", "shared.virtual_partitions is required");
        return -1;
    }
    for (int i = 0; keys[i]; i++) {
        const cJSON *v = j_get(sh, keys[i]);
        if (v && cfg_push(cl, cfgs[i], v, false, e) < 0)
            return -1;
    }
    return 0;
}

/* Adds the "source" object ({uri, endpoint, region, format, chunk_bytes,
 * max_record_bytes, credentials: {access_key_id, secret_access_key}}) as source.*
 * configs; topic.c and dataset.c validate them. Returns 0, or -1 with e set. */
static int cfg_add_source(struct cfg_list *cl, const cJSON *src, struct aerr *e)
{
    static const char *const keys[] = {"uri",         "endpoint",         "region", "format",
                                       "chunk_bytes", "max_record_bytes", "credentials", NULL};
    static const char *const cfgs[] = {"source.uri",         "source.endpoint",
                                       "source.region",      "source.format",
                                       "source.chunk.bytes", "source.max.record.bytes"};
    static const char *const ckeys[] = {"access_key_id", "secret_access_key", NULL};
    if (!src)
        return 0;
    if (!cJSON_IsObject(src)) {
        aerr_set(e, 400, "invalid_argument", "source must be an object");
        return -1;
    }
    if (j_known_keys(src, keys, "source.", e) < 0)
        return -1;
    if (!cJSON_IsString(j_get(src, "uri"))) {
        aerr_set(e, 400, "invalid_argument", "source.uri (s3://bucket/prefix/) is required");
        return -1;
    }
    for (int i = 0; i < 6; i++) {
        const cJSON *v = j_get(src, keys[i]);
        if (v && cfg_push(cl, cfgs[i], v, false, e) < 0)
            return -1;
    }
    const cJSON *cr = j_get(src, "credentials");
    if (!cr)
        return 0;
    if (!cJSON_IsObject(cr) || j_known_keys(cr, ckeys, "source.credentials.", e) < 0) {
        if (!cJSON_IsObject(cr))
            aerr_set(e, 400, "invalid_argument", "source.credentials must be an object");
        return -1;
    }
    const cJSON *ak = j_get(cr, "access_key_id"), *sk = j_get(cr, "secret_access_key");
    if (!cJSON_IsString(ak) || !cJSON_IsString(sk)) {
        aerr_set(e, 400, "invalid_argument",
                 "source.credentials needs access_key_id and secret_access_key strings");
        return -1;
    }
    if (cfg_push(cl, "source.access.key.id", ak, false, e) < 0 ||
        cfg_push(cl, "source.secret.access.key", sk, false, e) < 0)
        return -1;
    return 0;
}

/* Returns the value of hex digit c, or -1. */
static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..len) into out (cap bytes with the NUL); plus: '+' is a space.
 * Returns the decoded length, or -1 for a bad escape, a NUL byte or no room. */
static int pct_decode(const char *s, size_t len, bool plus, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            int hi = len - i >= 3 ? hexval(s[i + 1]) : -1;
            int lo = hi >= 0 ? hexval(s[i + 2]) : -1;
            if (lo < 0)
                return -1;
            c = hi << 4 | lo;
            i += 2;
        } else if (c == '+' && plus)
            c = ' ';
        if (c == 0 || o + 1 >= cap)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = 0;
    return (int)o;
}

/* query_param() for admin_handle_for_test(): finds key in q ("k=v&..."), as MHD would
 * (the first occurrence; "k" alone is present and empty). */
static int admin_test_query(const char *q, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key);
    out[0] = 0;
    for (const char *p = q; p && *p;) {
        const char *amp = strchr(p, '&'), *end = amp ? amp : p + strlen(p);
        if ((size_t)(end - p) >= kl && !strncmp(p, key, kl) && (p + kl == end || p[kl] == '=')) {
            const char *v = p + kl == end ? end : p + kl + 1;
            return pct_decode(v, (size_t)(end - v), true, out, cap) < 0 ? -1 : 1;
        }
        p = amp ? amp + 1 : NULL;
    }
    return 0;
}

/* Reads query parameter key, decoded, into out. Returns 1 when present, 0 when absent,
 * -1 when malformed or too long. */
static int query_param(struct areq *r, const char *key, char *out, size_t cap)
{
    if (r->test)
        return admin_test_query(r->test->query, key, out, cap);
    const char *v = MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, key);
    out[0] = 0;
    if (!v)
        return MHD_lookup_connection_value_n(r->c, MHD_GET_ARGUMENT_KIND, key, strlen(key), NULL,
                                             NULL) == MHD_YES;
    return pct_decode(v, strlen(v), true, out, cap) < 0 ? -1 : 1;
}

/* Decodes and checks the {name} path segment, then finds the topic. Returns it, or
 * NULL with e set (400 for a bad name, 404 for an unknown topic). */
static struct topic *path_topic(struct areq *r, const char *seg, struct aerr *e)
{
    char name[TOPIC_NAME_MAX + 1];
    int n = pct_decode(seg, strlen(seg), false, name, sizeof name);
    if (n < 0 || topic_name_check(name, (size_t)n) != KERR_NONE) {
        aerr_set(e, 400, "invalid_topic_name", "invalid topic name");
        return NULL;
    }
    struct topic *t = topic_find(r->a->b->topics, name, (size_t)n);
    if (!t)
        aerr_set(e, 404, "not_found", "topic %s does not exist", name);
    return t;
}

/* --- handlers --- */

typedef enum MHD_Result admin_fn(struct areq *r, const char *seg);

static enum MHD_Result h_healthz(struct areq *r, const char *seg)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "status", "ok");
    return reply_json(r, 200, j);
}

static enum MHD_Result h_readyz(struct areq *r, const char *seg)
{
    struct broker *b = r->a->b;
    if (!b->ready || b->draining)
        return reply_error(r, 503, "not_ready", b->draining ? "draining" : "starting");
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "status", "ready");
    return reply_json(r, 200, j);
}

static enum MHD_Result h_metrics(struct areq *r, const char *seg)
{
    kc_writer w;
    kc_writer_init(&w, ADMIN_METRICS_MAX);
    metrics_render(r->a->b->metrics, r->a->b, &w);
    if (w.err != KC_OK) {
        kc_writer_free(&w);
        return reply_error(r, 500, "internal", "metrics rendering failed");
    }
    return reply_buf(r, 200, "text/plain; version=0.0.4", w.p, w.len, true, NULL);
}

/* Collects one listed topic; t may be a temporary built from the store. */
struct list_ctx {
    struct topics *ts;
    cJSON *arr;
    char last[TOPIC_NAME_MAX + 1];
    bool oom;
};

static void list_one(void *arg, struct topic *t)
{
    struct list_ctx *lc = arg;
    cJSON *o = tj_topic(lc->ts, t, false);
    if (!o || !cJSON_AddItemToArray(lc->arr, o)) {
        cJSON_Delete(o);
        lc->oom = true;
    }
    snprintf(lc->last, sizeof lc->last, "%s", t->name);
}

/* Reads ?prefix=&after=&limit= into the buffers (each cap bytes) and *limit. Returns 0,
 * or -1 with a message in *why. */
static int paging_params(struct areq *r, char *prefix, char *after, size_t cap, int *limit,
                         const char **why)
{
    char lim[16], *endp;
    int have;
    *limit = ADMIN_LIST_DEFAULT;
    if (query_param(r, "prefix", prefix, cap) < 0 || query_param(r, "after", after, cap) < 0 ||
        (have = query_param(r, "limit", lim, sizeof lim)) < 0) {
        *why = "bad prefix, after or limit";
        return -1;
    }
    if (have) {
        long l = strtol(lim, &endp, 10);
        if (!lim[0] || *endp || l < 1 || l > ADMIN_LIST_MAX) {
            *why = "limit must be 1..1000";
            return -1;
        }
        *limit = (int)l;
    }
    return 0;
}

static enum MHD_Result h_list(struct areq *r, const char *seg)
{
    struct list_ctx lc = {.ts = r->a->b->topics};
    char prefix[TOPIC_NAME_MAX + 1], after[TOPIC_NAME_MAX + 1];
    int limit;
    bool more = false;
    const char *why;
    if (paging_params(r, prefix, after, sizeof prefix, &limit, &why) < 0)
        return reply_error(r, 400, "invalid_argument", why);
    cJSON *j = cJSON_CreateObject();
    lc.arr = cJSON_AddArrayToObject(j, "topics");
    if (!lc.arr) {
        cJSON_Delete(j);
        return reply_json(r, 500, NULL);
    }
    int n = topics_list(lc.ts, prefix, after, limit, list_one, &lc, &more);
    if (n < 0 || lc.oom) {
        cJSON_Delete(j);
        return reply_error(r, 500, "internal", n < 0 ? "listing topics failed" : "out of memory");
    }
    if (more && lc.last[0])
        cJSON_AddStringToObject(j, "next", lc.last);
    else
        cJSON_AddNullToObject(j, "next");
    return reply_json(r, 200, j);
}

/* Reads the create request into name, partitions and config changes. Returns 0, or
 * -1 with e set. */
static int create_parse(struct areq *r, const cJSON *j, const char **name, int64_t *parts,
                        struct cfg_list *cl, struct aerr *e)
{
    static const char *const keys[] = {"name",   "partitions", "storage", "config",
                                       "source", "shared",     NULL};
    const cJSON *v;
    if (j_known_keys(j, keys, "", e) < 0)
        return -1;
    v = cJSON_GetObjectItemCaseSensitive(j, "name");
    if (!cJSON_IsString(v)) {
        aerr_set(e, 400, "invalid_argument", "name must be a string");
        return -1;
    }
    *name = v->valuestring;
    *parts = r->a->b->cfg.default_partitions;
    v = j_get(j, "partitions");
    if (v && j_int(v, INT32_MIN, INT32_MAX, parts) < 0) {
        aerr_set(e, 400, "invalid_argument", "partitions must be an integer");
        return -1;
    }
    if (*parts < 1) {
        aerr_set(e, 400, "invalid_partitions", "partitions must be at least 1");
        return -1;
    }
    if (cfg_init(cl, j_get(j, "config"), e) < 0 ||
        cfg_add_storage(cl, j_get(j, "storage"), NULL, e) < 0 ||
        cfg_add_shared(cl, j_get(j, "shared"), e) < 0 ||
        cfg_add_source(cl, j_get(j, "source"), e) < 0 ||
        cfg_add_object(cl, j_get(j, "config"), false, e) < 0)
        return -1;
    return 0;
}

static enum MHD_Result h_create(struct areq *r, const char *seg)
{
    struct topics *ts = r->a->b->topics;
    struct cfg_list cl = {0};
    struct aerr e;
    struct topic *t = NULL;
    const char *name = NULL;
    int64_t parts;
    enum MHD_Result ret;
    cJSON *j = body_json(r, &e);
    if (!j || create_parse(r, j, &name, &parts, &cl, &e) < 0) {
        ret = reply_err(r, &e, NULL);
        goto out;
    }
    char msg[256] = "";
    int rc = topic_create(ts, name, strlen(name), (int32_t)parts, cl.ch, cl.n, false, &t, msg,
                          sizeof msg);
    if (rc != KERR_NONE || !t) {
        aerr_kafka(&e, rc != KERR_NONE ? rc : KERR_UNKNOWN_SERVER, msg);
        ret = reply_err(r, &e, NULL);
        goto out;
    }
    if (share_view_setup(r->a->b, t, msg, sizeof msg) < 0) {
        topic_delete(ts, t);
        aerr_set(&e, 400, "invalid_config", "%s", msg);
        ret = reply_err(r, &e, NULL);
        goto out;
    }
    ret = reply_json(r, 201, tj_topic(ts, t, true));
out:
    cfg_free(&cl);
    cJSON_Delete(j);
    return ret;
}

static enum MHD_Result h_get(struct areq *r, const char *seg)
{
    struct aerr e;
    struct topic *t = path_topic(r, seg, &e);
    if (!t)
        return reply_err(r, &e, NULL);
    return reply_json(r, 200, tj_topic(r->a->b->topics, t, true));
}

/* Runs a PATCH's steps, checking only or applying. Returns 0, or -1 with e set. */
static int patch_apply(struct topics *ts, struct topic *t, const struct cfg_list *cl, int64_t parts,
                       bool validate_only, struct aerr *e)
{
    char msg[256] = "";
    int rc = KERR_NONE;
    if (cl->n)
        rc = topic_alter_config(ts, t, cl->ch, cl->n, true, validate_only, msg, sizeof msg);
    if (rc == KERR_NONE && parts > t->partitions)
        rc = topic_add_partitions(ts, t, (int32_t)parts, validate_only, msg, sizeof msg);
    if (rc == KERR_NONE)
        return 0;
    aerr_kafka(e, rc, msg);
    return -1;
}

static enum MHD_Result h_patch(struct areq *r, const char *seg)
{
    static const char *const keys[] = {"partitions", "storage", "config", NULL};
    struct topics *ts = r->a->b->topics;
    struct cfg_list cl = {0};
    struct aerr e;
    enum MHD_Result ret;
    cJSON *j = NULL;
    struct topic *t = path_topic(r, seg, &e);
    if (!t || !(j = body_json(r, &e)) || j_known_keys(j, keys, "", &e) < 0)
        goto fail;
    int64_t parts = t->partitions;
    const cJSON *v = j_get(j, "partitions");
    if (v && j_int(v, INT32_MIN, INT32_MAX, &parts) < 0) {
        aerr_set(&e, 400, "invalid_argument", "partitions must be an integer");
        goto fail;
    }
    if (parts < t->partitions) {
        aerr_set(&e, 400, "invalid_partitions", "topic has %d partitions; it can only grow",
                 t->partitions);
        goto fail;
    }
    if (cfg_init(&cl, j_get(j, "config"), &e) < 0 ||
        cfg_add_storage(&cl, j_get(j, "storage"), t, &e) < 0 ||
        cfg_add_object(&cl, j_get(j, "config"), true, &e) < 0 ||
        patch_apply(ts, t, &cl, parts, true, &e) < 0 ||
        patch_apply(ts, t, &cl, parts, false, &e) < 0)
        goto fail;
    char vmsg[256];
    if (share_view_setup(r->a->b, t, vmsg, sizeof vmsg) < 0) {
        aerr_set(&e, 400, "invalid_config", "%s", vmsg);
        goto fail;
    }
    ret = reply_json(r, 200, tj_topic(ts, t, true));
    goto out;
fail:
    ret = reply_err(r, &e, NULL);
out:
    cfg_free(&cl);
    cJSON_Delete(j);
    return ret;
}

static enum MHD_Result h_delete(struct areq *r, const char *seg)
{
    struct aerr e;
    struct topic *t = path_topic(r, seg, &e);
    if (!t)
        return reply_err(r, &e, NULL);
    int rc = topic_delete(r->a->b->topics, t);
    if (rc != 0) {
        aerr_kafka(&e, rc > 0 ? rc : KERR_UNKNOWN_SERVER, "deleting the topic failed");
        return reply_err(r, &e, NULL);
    }
    return reply_buf(r, 204, NULL, NULL, 0, false, NULL);
}

/* --- groups --- */

static void list_group(void *arg, struct group *g)
{
    cJSON *arr = arg, *o = cJSON_CreateObject();
    if (!o)
        return;
    cJSON_AddStringToObject(o, "group_id", g->id);
    cJSON_AddStringToObject(o, "type", "classic");
    cJSON_AddStringToObject(o, "state", group_state_name(g->state));
    cJSON_AddStringToObject(o, "protocol_type", g->protocol_type ? g->protocol_type : "");
    cJSON_AddNumberToObject(o, "members", g->nmembers);
    if (!cJSON_AddItemToArray(arr, o))
        cJSON_Delete(o);
}

static enum MHD_Result h_groups(struct areq *r, const char *seg)
{
    cJSON *j = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(j, "groups");
    if (!arr) {
        cJSON_Delete(j);
        return reply_json(r, 500, NULL);
    }
    groups_foreach(r->a->b->groups, list_group, arr);
    share_admin_list(r->a->b, arr);
    return reply_json(r, 200, j);
}

static void assignment_topic(void *arg, const char *topic, size_t tlen, const int32_t *parts,
                             int n)
{
    cJSON *arr = arg, *o = cJSON_CreateObject();
    char name[TOPIC_NAME_MAX + 1];
    snprintf(name, sizeof name, "%.*s", (int)(tlen < TOPIC_NAME_MAX ? tlen : TOPIC_NAME_MAX),
             topic);
    cJSON_AddStringToObject(o, "topic", name);
    cJSON *pa = cJSON_AddArrayToObject(o, "partitions");
    for (int i = 0; pa && i < n; i++)
        cJSON_AddItemToArray(pa, cJSON_CreateNumber(parts[i]));
    if (!cJSON_AddItemToArray(arr, o))
        cJSON_Delete(o);
}

static cJSON *gj_member(const struct group *g, const struct gmember *m)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "member_id", m->id);
    if (m->instance_id)
        cJSON_AddStringToObject(o, "group_instance_id", m->instance_id);
    else
        cJSON_AddNullToObject(o, "group_instance_id");
    cJSON_AddStringToObject(o, "client_id", m->client_id);
    cJSON_AddStringToObject(o, "client_host", m->client_host);
    cJSON *a = cJSON_AddArrayToObject(o, "assignment");
    if (a && g->protocol_type && !strcmp(g->protocol_type, "consumer") &&
        group_decode_assignment(m->assignment, m->assignment_len, assignment_topic, a) < 0)
        cJSON_AddBoolToObject(o, "assignment_undecodable", true);
    return o;
}

/* Adds {"topic","partition","committed_offset","end_offset","lag","metadata"} per offset
 * and returns the total lag. */
static int64_t gj_offsets(struct groups *gs, const struct group *g, cJSON *arr)
{
    size_t n;
    int64_t total = 0;
    const struct goff **all = group_offsets_sorted(g, &n);
    for (size_t i = 0; i < n; i++) {
        const struct goff *x = all[i];
        int64_t end = group_end_offset(gs, x->topic, x->partition);
        int64_t lag = end >= 0 && x->offset >= 0 && end > x->offset ? end - x->offset : 0;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "topic", x->topic);
        j_i64(o, "partition", x->partition);
        j_i64(o, "committed_offset", x->offset);
        if (end >= 0)
            j_i64(o, "end_offset", end);
        else
            cJSON_AddNullToObject(o, "end_offset");
        j_i64(o, "lag", lag);
        cJSON_AddStringToObject(o, "metadata", x->metadata);
        if (!cJSON_AddItemToArray(arr, o))
            cJSON_Delete(o);
        total += lag;
    }
    free(all);
    return total;
}

static enum MHD_Result h_group(struct areq *r, const char *seg)
{
    char id[GROUP_ID_MAX + 1];
    int n = pct_decode(seg, strlen(seg), false, id, sizeof id);
    if (n <= 0)
        return reply_error(r, 400, "invalid_group_id", "invalid group id");
    struct groups *gs = r->a->b->groups;
    struct group *g = group_find(gs, id, (size_t)n);
    cJSON *share = share_admin_group(r->a->b, id);
    if (!g && share)
        return reply_json(r, 200, share);
    if (!g) {
        struct aerr e;
        aerr_set(&e, 404, "not_found", "group %s does not exist", id);
        return reply_err(r, &e, NULL);
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "group_id", g->id);
    cJSON_AddStringToObject(j, "type", "classic");
    cJSON_AddStringToObject(j, "state", group_state_name(g->state));
    cJSON_AddStringToObject(j, "protocol_type", g->protocol_type ? g->protocol_type : "");
    cJSON_AddStringToObject(j, "protocol", g->protocol_name ? g->protocol_name : "");
    j_i64(j, "generation", g->generation);
    if (g->leader)
        cJSON_AddStringToObject(j, "leader", g->leader);
    else
        cJSON_AddNullToObject(j, "leader");
    cJSON *members = cJSON_AddArrayToObject(j, "members");
    for (const struct gmember *m = g->head; members && m; m = m->next) {
        cJSON *o = gj_member(g, m);
        if (!cJSON_AddItemToArray(members, o))
            cJSON_Delete(o);
    }
    cJSON *offs = cJSON_AddArrayToObject(j, "offsets");
    int64_t lag = offs ? gj_offsets(gs, g, offs) : 0;
    j_i64(j, "lag", lag);
    if (share)
        cJSON_AddItemToObject(j, "share", share);
    return reply_json(r, 200, j);
}

/* --- share groups --- */

/* Splits "{id}" or "{id}/members/{member}/release" into decoded parts. */
static int share_path(const char *seg, char *id, size_t idcap, char *member, size_t mcap)
{
    const char *slash = strchr(seg, '/');
    size_t il = slash ? (size_t)(slash - seg) : strlen(seg);
    int n = pct_decode(seg, il, false, id, idcap);
    if (n <= 0)
        return -1;
    if (!slash)
        return 0;
    static const char mem[] = "/members/", rel[] = "/release";
    const char *ms = slash;
    if (strncmp(ms, mem, sizeof mem - 1))
        return -1;
    ms += sizeof mem - 1;
    const char *end = strchr(ms, '/');
    if (!end || strcmp(end, rel) || end == ms)
        return -1;
    return pct_decode(ms, (size_t)(end - ms), false, member, mcap) > 0 ? 1 : -1;
}

static enum MHD_Result h_share_group(struct areq *r, const char *seg)
{
    char id[GROUP_ID_MAX + 1], member[GROUP_STR_MAX + 1];
    int kind = share_path(seg, id, sizeof id, member, sizeof member);
    bool get = !strcmp(r->method, "GET") || !strcmp(r->method, "HEAD");
    int status = 200;
    cJSON *out = NULL;
    struct aerr e;
    if (kind < 0 || (kind == 1) != !strcmp(r->method, "POST") ||
        (kind == 0 && !get && strcmp(r->method, "PUT")))
        return reply_error(r, kind < 0 ? 404 : 405, kind < 0 ? "not_found" : "method_not_allowed",
                           "no such share group endpoint");
    if (kind == 1) {
        out = share_admin_release(r->a->b, id, member, &status);
    } else if (get) {
        out = share_admin_group(r->a->b, id);
        if (!out)
            return reply_error(r, 404, "not_found", "no such share group");
    } else {
        cJSON *j = body_json(r, &e);
        if (!j)
            return reply_err(r, &e, NULL);
        out = share_admin_put(r->a->b, id, j, &status);
        cJSON_Delete(j);
    }
    return reply_json(r, status, out);
}

/* Dataset endpoints: seg is "{name}/{action}"; dataset.c does the work. */
static enum MHD_Result h_topic_action(struct areq *r, const char *seg)
{
    char name[3 * TOPIC_NAME_MAX + 1], msg[256] = "";
    const char *slash = strchr(seg, '/'), *code = "internal";
    struct aerr e;
    size_t nl = (size_t)(slash - seg);
    if (nl >= sizeof name)
        return reply_error(r, 400, "invalid_topic_name", "invalid topic name");
    memcpy(name, seg, nl);
    name[nl] = 0;
    struct topic *t = path_topic(r, name, &e);
    if (!t)
        return reply_err(r, &e, NULL);
    bool post = !strcmp(r->method, "POST");
    cJSON *body = NULL, *out = NULL;
    if (post && r->body->len > 0 && !(body = body_json(r, &e)))
        return reply_err(r, &e, NULL);
    int st = dataset_admin(r->a->b, t, slash + 1, post ? "POST" : "GET", body, &out, &code, msg,
                           sizeof msg);
    cJSON_Delete(body);
    if (out)
        return reply_json(r, st, out);
    return reply_error(r, st, code, msg);
}

/* --- principals --- */

static enum MHD_Result h_principals(struct areq *r, const char *seg)
{
    char prefix[PRINCIPAL_NAME_MAX + 1], after[PRINCIPAL_NAME_MAX + 1];
    int limit;
    const char *why;
    if (paging_params(r, prefix, after, sizeof prefix, &limit, &why) < 0)
        return reply_error(r, 400, "invalid_argument", why);
    return reply_json(r, 200,
                      principal_admin_list(r->a->b, prefix, after[0] ? after : NULL, limit));
}

static enum MHD_Result h_principal(struct areq *r, const char *seg)
{
    char name[3 * PRINCIPAL_NAME_MAX + 1];
    int n = pct_decode(seg, strlen(seg), false, name, sizeof name);
    if (n <= 0 || n > PRINCIPAL_NAME_MAX || !principals_name_valid(name, (size_t)n))
        return reply_error(r, 400, "invalid_name",
                           "a principal name is 1-255 printable bytes without ',' or '='");
    struct broker *b = r->a->b;
    if (!strcmp(r->method, "DELETE")) {
        int st = principal_admin_delete(b, name);
        return st == 404 ? reply_error(r, 404, "not_found", "no such principal")
                         : reply_buf(r, st, NULL, NULL, 0, false, NULL);
    }
    if (!strcmp(r->method, "PUT")) {
        struct aerr e;
        cJSON *j = body_json(r, &e);
        if (!j)
            return reply_err(r, &e, NULL);
        int status = 500;
        cJSON *out = principal_admin_put(b, name, j, &status);
        cJSON_Delete(j);
        return reply_json(r, status, out);
    }
    cJSON *out = principal_admin_get(b, name);
    if (!out)
        return reply_error(r, 404, "not_found", "no such principal");
    return reply_json(r, 200, out);
}

/* --- routing --- */

enum admin_path {
    P_NONE = 0,
    P_HEALTHZ,
    P_READYZ,
    P_METRICS,
    P_TOPICS,
    P_TOPIC,
    P_GROUPS,
    P_GROUP,
    P_SHARE_GROUP,
    P_TOPIC_ACTION, /* /v1/topics/{name}/{rescan|warm|cache} (dataset topics) */
    P_PRINCIPALS,
    P_PRINCIPAL,
};

static const struct admin_route {
    enum admin_path path;
    const char *method;
    admin_fn *fn;
    bool open; /* served without authentication */
} admin_routes[] = {
    {P_HEALTHZ, "GET", h_healthz, true},  {P_READYZ, "GET", h_readyz, true},
    {P_METRICS, "GET", h_metrics, false}, {P_TOPICS, "GET", h_list, false},
    {P_TOPICS, "POST", h_create, false},  {P_TOPIC, "GET", h_get, false},
    {P_TOPIC, "PATCH", h_patch, false},   {P_TOPIC, "DELETE", h_delete, false},
    {P_GROUPS, "GET", h_groups, false},   {P_GROUP, "GET", h_group, false},
    {P_SHARE_GROUP, "GET", h_share_group, false}, {P_SHARE_GROUP, "PUT", h_share_group, false},
    {P_SHARE_GROUP, "POST", h_share_group, false},
    {P_TOPIC_ACTION, "GET", h_topic_action, false}, {P_TOPIC_ACTION, "POST", h_topic_action, false},
    {P_PRINCIPALS, "GET", h_principals, false}, {P_PRINCIPAL, "GET", h_principal, false},
    {P_PRINCIPAL, "PUT", h_principal, false},   {P_PRINCIPAL, "DELETE", h_principal, false},
};

static const char *const admin_allow[] = {
    [P_HEALTHZ] = "GET, HEAD",
    [P_READYZ] = "GET, HEAD",
    [P_METRICS] = "GET, HEAD",
    [P_TOPICS] = "GET, HEAD, POST",
    [P_TOPIC] = "GET, HEAD, PATCH, DELETE",
    [P_GROUPS] = "GET, HEAD",
    [P_GROUP] = "GET, HEAD",
    [P_SHARE_GROUP] = "GET, HEAD, PUT, POST",
    [P_TOPIC_ACTION] = "GET, HEAD, POST",
    [P_PRINCIPALS] = "GET, HEAD",
    [P_PRINCIPAL] = "GET, HEAD, PUT, DELETE",
};

/* Matches the (still escaped) path; sets *seg to the {name} segment for P_TOPIC. */
static enum admin_path admin_match(const char *url, const char **seg)
{
    static const char topics[] = "/v1/topics", groups[] = "/v1/groups";
    static const char sgroups[] = "/v1/share-groups/", principals[] = "/v1/principals";
    if (!strncmp(url, principals, sizeof principals - 1)) {
        url += sizeof principals - 1;
        if (!*url)
            return P_PRINCIPALS;
        if (*url != '/' || !url[1] || strchr(url + 1, '/'))
            return P_NONE;
        *seg = url + 1;
        return P_PRINCIPAL;
    }
    if (!strncmp(url, sgroups, sizeof sgroups - 1) && url[sizeof sgroups - 1]) {
        *seg = url + sizeof sgroups - 1;
        return P_SHARE_GROUP;
    }
    if (!strncmp(url, groups, sizeof groups - 1)) {
        url += sizeof groups - 1;
        if (!*url)
            return P_GROUPS;
        if (*url != '/' || !url[1] || strchr(url + 1, '/'))
            return P_NONE;
        *seg = url + 1;
        return P_GROUP;
    }
    if (!strcmp(url, "/healthz"))
        return P_HEALTHZ;
    if (!strcmp(url, "/readyz"))
        return P_READYZ;
    if (!strcmp(url, "/metrics"))
        return P_METRICS;
    if (strncmp(url, topics, sizeof topics - 1))
        return P_NONE;
    url += sizeof topics - 1;
    if (!*url)
        return P_TOPICS;
    const char *slash = *url == '/' ? strchr(url + 1, '/') : NULL;
    if (slash && slash > url + 1 && slash[1] && !strchr(slash + 1, '/')) {
        *seg = url + 1;
        return P_TOPIC_ACTION;
    }
    if (*url != '/' || !url[1] || strchr(url + 1, '/'))
        return P_NONE;
    *seg = url + 1;
    return P_TOPIC;
}

/* Returns true when the request may proceed: no admin.token is configured, the
 * request carries it as a bearer token (compared in constant time), or it came over
 * TLS with a verified client certificate. */
static bool admin_authorized(struct areq *r)
{
    const char *tok = r->a->b->cfg.admin_token;
    if (!*tok)
        return true;
    if (admin_tls_client_verified(r->a, r->c))
        return true;
    const char *h = r->test ? r->test->authorization
                            : MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, "Authorization");
    static const char bearer[] = "Bearer ";
    if (!h || strncasecmp(h, bearer, sizeof bearer - 1))
        return false;
    h += sizeof bearer - 1;
    size_t hl = strlen(h), tl = strlen(tok);
    return hl == tl && CRYPTO_memcmp(h, tok, tl) == 0;
}

static enum MHD_Result admin_dispatch(struct areq *r)
{
    const char *seg = "";
    enum admin_path p = admin_match(r->url, &seg);
    const char *m = strcmp(r->method, "HEAD") ? r->method : "GET";
    if (p == P_NONE)
        return reply_error(r, 404, "not_found", "no such endpoint");
    for (size_t i = 0; i < sizeof admin_routes / sizeof admin_routes[0]; i++) {
        const struct admin_route *rt = &admin_routes[i];
        if (rt->path != p || strcmp(rt->method, m))
            continue;
        if (!rt->open && !admin_authorized(r))
            return reply_error(r, 401, "unauthorized", "missing or wrong bearer token");
        return rt->fn(r, seg);
    }
    struct aerr e;
    aerr_set(&e, 405, "method_not_allowed", "%.16s is not allowed here", r->method);
    return reply_err(r, &e, admin_allow[p]);
}

/* --- MHD callbacks --- */

/* Appends upload data, or drops the body once it passes the cap. */
static void body_append(struct admin_body *bd, const char *data, size_t n)
{
    if (bd->too_large)
        return;
    if (n > ADMIN_MAX_BODY - bd->len) {
        bd->too_large = true;
        free(bd->p);
        bd->p = NULL;
        bd->len = bd->cap = 0;
        return;
    }
    if (bd->len + n + 1 > bd->cap) {
        size_t cap = bd->cap ? bd->cap : 4096;
        while (cap < bd->len + n + 1)
            cap *= 2;
        char *p = realloc(bd->p, cap);
        if (!p) {
            bd->too_large = true; /* answered as 413 rather than half a body */
            return;
        }
        bd->p = p;
        bd->cap = cap;
    }
    memcpy(bd->p + bd->len, data, n);
    bd->len += n;
    bd->p[bd->len] = 0;
}

/* Returns true when the declared Content-Length is over the cap. */
static bool body_declared_too_large(struct MHD_Connection *c)
{
    const char *cl =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (!cl)
        return false;
    char *end;
    unsigned long long n = strtoull(cl, &end, 10);
    return n > ADMIN_MAX_BODY;
}

static enum MHD_Result admin_access(void *cls, struct MHD_Connection *c, const char *url,
                                    const char *method, const char *version,
                                    const char *upload_data, size_t *upload_data_size,
                                    void **con_cls)
{
    struct areq r = {cls, c, method, url, *con_cls, NULL};
    if (!r.body) { /* headers only so far */
        if (!(r.body = calloc(1, sizeof *r.body)))
            return MHD_NO;
        *con_cls = r.body;
        if (body_declared_too_large(c))
            return reply_too_large(&r);
        return MHD_YES;
    }
    if (*upload_data_size) {
        /* MHD cannot answer in the middle of a body: an oversized one is read and
         * dropped, then answered 413, unless it goes on far too long */
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (!r.body->too_large && !r.body->replied)
            body_append(r.body, upload_data, n);
        if (r.body->too_large && (r.body->dropped += n) > ADMIN_MAX_DROP)
            return MHD_NO;
        return MHD_YES;
    }
    if (r.body->replied)
        return MHD_YES;
    if (r.body->too_large)
        return reply_too_large(&r);
    return admin_dispatch(&r);
}

static void admin_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                            enum MHD_RequestTerminationCode toe)
{
    struct admin_body *bd = *con_cls;
    if (bd)
        free(bd->p);
    free(bd);
    *con_cls = NULL;
}

/* Leaves the path and query escaped; admin_match and pct_decode do it per segment, so an
 * escaped '/' in a topic name cannot change the route. */
static size_t admin_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    return strlen(s);
}

static void admin_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    buf[strcspn(buf, "\n")] = 0;
    log_warn("admin: %s", buf);
}

/* --- event loop glue --- */

/* Re-arms the timer from MHD_get_timeout(); MHD answers 0 when it has work pending. */
static void admin_arm(struct admin *a)
{
    MHD_UNSIGNED_LONG_LONG ms = 0;
    if (MHD_get_timeout(a->d, &ms) != MHD_YES) {
        ev_timer_stop(a->b->loop, &a->timer);
        return;
    }
    if (ms > 1000ULL * ADMIN_CONN_TIMEOUT_S)
        ms = 1000ULL * ADMIN_CONN_TIMEOUT_S;
    ev_timer_start(a->b->loop, &a->timer, (int64_t)ms * 1000);
}

static void admin_poll(struct admin *a)
{
    MHD_run(a->d);
    admin_arm(a);
}

static void admin_on_fd(struct ev_loop *l, int fd, void *arg, int mask)
{
    admin_poll(arg);
}

static void admin_on_timer(struct ev_loop *l, void *arg)
{
    admin_poll(arg);
}

/* Fills ss from "host:port": an IPv4 or IPv6 literal, a name, or "" / "*" for any.
 * Returns 0 or -1. */
static int admin_addr(const char *listen, struct sockaddr_storage *ss, bool *v6)
{
    char host[256];
    int port;
    if (config_split_hostport(listen, host, sizeof host, &port) < 0)
        return -1;
    char *h = host;
    size_t hl = strlen(h);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']')
        h[hl - 1] = 0, h++;
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    *v6 = false;
    in4->sin_family = AF_INET;
    in4->sin_port = htons((uint16_t)port);
    if (!*h || !strcmp(h, "*") || inet_pton(AF_INET, h, &in4->sin_addr) == 1)
        return 0;
    if (inet_pton(AF_INET6, h, &in6->sin6_addr) != 1) {
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
        if (getaddrinfo(h, NULL, &hints, &ai) != 0)
            return -1;
        memcpy(ss, ai->ai_addr, ai->ai_addrlen);
        freeaddrinfo(ai);
        if (ss->ss_family == AF_INET) {
            in4->sin_port = htons((uint16_t)port);
            return 0;
        }
    }
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    *v6 = true;
    return 0;
}

struct admin *admin_new(struct broker *b)
{
    struct sockaddr_storage ss;
    bool v6;
    struct admin *a = calloc(1, sizeof *a);
    if (!a)
        goto fail;
    a->b = b;
    a->epfd = -1;
    ev_timer_init(&a->timer, admin_on_timer, a);
    if (admin_addr(b->cfg.admin_listen, &ss, &v6) < 0) {
        log_error("admin: bad listen address %s", b->cfg.admin_listen);
        goto fail;
    }
    bool tls = b->cfg.admin_ssl;
    a->d = MHD_start_daemon(
        MHD_USE_EPOLL | MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0) |
            (tls ? MHD_USE_NO_LISTEN_SOCKET : 0),
        ntohs(((struct sockaddr_in *)&ss)->sin_port), NULL, NULL,      /* port: for messages */
        admin_access, a, MHD_OPTION_EXTERNAL_LOGGER, admin_mhd_log, a, /* first: see MHD */
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT, ADMIN_MAX_CONNS,
        MHD_OPTION_CONNECTION_TIMEOUT, ADMIN_CONN_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)ADMIN_CONN_MEMORY, MHD_OPTION_NOTIFY_COMPLETED, admin_completed, a,
        MHD_OPTION_UNESCAPE_CALLBACK, admin_unescape, a, MHD_OPTION_END);
    if (!a->d) {
        log_error("admin: cannot listen on %s", b->cfg.admin_listen);
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(a->d, MHD_DAEMON_INFO_EPOLL_FD);
    if (!di || ev_add(b->loop, di->epoll_fd, EV_READ, admin_on_fd, a) < 0) {
        log_error("admin: cannot register with the event loop");
        goto fail;
    }
    a->epfd = di->epoll_fd;
    if (tls && !(a->tls = admin_tls_new(b, admin_add_conn, a)))
        goto fail;
    admin_arm(a);
    log_info("admin: listening on %s%s%s", b->cfg.admin_listen, tls ? " with TLS" : "",
             b->cfg.admin_token[0] ? ", bearer token required" : "");
    return a;
fail:
    admin_free(a);
    return NULL;
}

void admin_free(struct admin *a)
{
    if (!a)
        return;
    admin_tls_free(a->tls);
    ev_timer_stop(a->b->loop, &a->timer);
    if (a->epfd >= 0)
        ev_del(a->b->loop, a->epfd);
    if (a->d)
        MHD_stop_daemon(a->d);
    free(a);
}

int admin_reload_tls(struct admin *a)
{
    return a && a->tls ? admin_tls_reload(a->tls) : 0;
}

/* --- fuzzing and tests --- */

int admin_handle_for_test(struct broker *b, const char *method, const char *url,
                          const char *authorization, const char *body, size_t len, int *status,
                          char **out, size_t *out_len)
{
    struct admin a = {.b = b, .epfd = -1};
    struct admin_body bd = {0};
    struct admin_test t = {.authorization = authorization, .status = 0};
    char path[4096];
    const char *q = strchr(url, '?');
    size_t pl = q ? (size_t)(q - url) : strlen(url);
    int rc = -1;
    *out = NULL;
    *out_len = 0;
    *status = 0;
    if (pl >= sizeof path)
        return -1; /* MHD refuses such a request line before any handler */
    memcpy(path, url, pl);
    path[pl] = 0;
    t.query = q ? q + 1 : "";
    struct areq r = {&a, NULL, method, path, &bd, &t};
    body_append(&bd, body ? body : "", len);
    enum MHD_Result res = bd.too_large ? reply_too_large(&r) : admin_dispatch(&r);
    if (res == MHD_YES && t.out) {
        *status = t.status;
        *out = t.out;
        *out_len = t.out_len;
        t.out = NULL;
        rc = 0;
    }
    free(t.out);
    free(bd.p);
    return rc;
}
