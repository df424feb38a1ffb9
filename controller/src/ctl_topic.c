/* ctl_topic.c: Topic resources. The desired topic comes from the spec; the broker is
 * brought to it one way (drift is reverted). Two Topics naming one broker topic: the
 * older (creationTimestamp, then namespace/name) owns it, the other reports Conflict. */
#include "ctl_topic.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_rec.h"
#include "ctl_util.h"

bool ctl_topic_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > CTL_TOPIC_NAME_MAX || !strcmp(name, ".") || !strcmp(name, ".."))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static bool mode_valid(const char *m)
{
    static const char *const modes[] = {"memory", "hybrid", "persistent", "tiered", NULL};
    for (int i = 0; modes[i]; i++)
        if (!strcmp(m, modes[i]))
            return true;
    return false;
}

int ctl_topic_want_from_spec(const cJSON *spec, const char *default_name,
                             struct ctl_topic_want *w, char *err, size_t errcap)
{
    bool ok = true;
    memset(w, 0, sizeof *w);
    const char *tn = ctl_jstr(spec, "topicName");
    const cJSON *tnv = cJSON_GetObjectItemCaseSensitive(spec, "topicName");
    if (tnv && !cJSON_IsNull(tnv) && !cJSON_IsString(tnv)) {
        snprintf(err, errcap, "spec.topicName must be a string");
        return -1;
    }
    if (!tn || !*tn)
        tn = default_name;
    if (!ctl_topic_name_valid(tn)) {
        snprintf(err, errcap, "topic name %.64s is not a valid Kafka topic name", tn);
        return -1;
    }
    snprintf(w->name, sizeof w->name, "%s", tn);
    w->partitions = ctl_jint(spec, "partitions", 1, &ok);
    if (!ok || w->partitions < 1 || w->partitions > 100000) {
        snprintf(err, errcap, "spec.partitions must be an integer from 1 to 100000");
        return -1;
    }
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(spec, "storage");
    if (st && !cJSON_IsObject(st)) {
        snprintf(err, errcap, "spec.storage must be an object");
        return -1;
    }
    const char *mode = ctl_jstr(st, "mode");
    if (cJSON_GetObjectItemCaseSensitive(st, "mode") && (!mode || !mode_valid(mode))) {
        snprintf(err, errcap, "spec.storage.mode must be memory, hybrid, persistent or tiered");
        return -1;
    }
    snprintf(w->mode, sizeof w->mode, "%s", mode ? mode : "persistent");
    w->has_rms = cJSON_GetObjectItemCaseSensitive(st, "retentionMs") != NULL;
    w->rms = ctl_jint(st, "retentionMs", -1, &ok);
    w->has_rbytes = cJSON_GetObjectItemCaseSensitive(st, "retentionBytes") != NULL;
    w->rbytes = ctl_jint(st, "retentionBytes", -1, &ok);
    if (!ok || (w->has_rms && w->rms < -1) || (w->has_rbytes && w->rbytes < -1)) {
        snprintf(err, errcap, "spec.storage retentionMs/retentionBytes must be integers >= -1");
        return -1;
    }
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(spec, "config"), *it;
    if (cfg && !cJSON_IsNull(cfg) && !cJSON_IsObject(cfg)) {
        snprintf(err, errcap, "spec.config must be a map of strings");
        return -1;
    }
    int n = 0;
    cJSON_ArrayForEach(it, cfg)
    {
        if (!cJSON_IsString(it) || ++n > 256 || !*it->string || !strncmp(it->string, "storage.", 8)) {
            snprintf(err, errcap, "spec.config.%.64s must be a string (at most 256 entries; "
                     "storage.* is set through spec.storage)", it->string);
            return -1;
        }
    }
    w->config = cJSON_IsObject(cfg) ? cfg : NULL;
    return 0;
}

/* Adds v as an exact integer. */
static cJSON *add_i64(cJSON *o, const char *k, int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    return cJSON_AddRawToObject(o, k, buf);
}

/* The configs the broker should report: spec.config plus the retention settings. */
static cJSON *want_configs(const struct ctl_topic_want *w)
{
    cJSON *c = w->config ? cJSON_Duplicate(w->config, 1) : cJSON_CreateObject();
    char buf[24];
    if (!c)
        return NULL;
    if (w->has_rms) {
        snprintf(buf, sizeof buf, "%" PRId64, w->rms);
        cJSON_DeleteItemFromObjectCaseSensitive(c, "retention.ms");
        cJSON_AddStringToObject(c, "retention.ms", buf);
    }
    if (w->has_rbytes) {
        snprintf(buf, sizeof buf, "%" PRId64, w->rbytes);
        cJSON_DeleteItemFromObjectCaseSensitive(c, "retention.bytes");
        cJSON_AddStringToObject(c, "retention.bytes", buf);
    }
    return c;
}

cJSON *ctl_topic_create_body(const struct ctl_topic_want *w)
{
    cJSON *b = cJSON_CreateObject(), *st = cJSON_AddObjectToObject(b, "storage");
    cJSON *cfg = w->config ? cJSON_Duplicate(w->config, 1) : NULL;
    bool ok = st && cJSON_AddStringToObject(b, "name", w->name) &&
              add_i64(b, "partitions", w->partitions) &&
              cJSON_AddStringToObject(st, "mode", w->mode) &&
              (!w->has_rms || add_i64(st, "retention_ms", w->rms)) &&
              (!w->has_rbytes || add_i64(st, "retention_bytes", w->rbytes));
    if (ok && cfg) {
        /* retention is carried by storage; the broker refuses a key given twice */
        cJSON_DeleteItemFromObjectCaseSensitive(cfg, w->has_rms ? "retention.ms" : "");
        cJSON_DeleteItemFromObjectCaseSensitive(cfg, w->has_rbytes ? "retention.bytes" : "");
        ok = cJSON_AddItemToObject(b, "config", cfg);
        if (ok)
            cfg = NULL;
    }
    cJSON_Delete(cfg);
    if (!ok) {
        cJSON_Delete(b);
        return NULL;
    }
    return b;
}

/* A broker config value as a string for comparison. */
static const char *cfg_str(const cJSON *v, char *buf, size_t cap)
{
    if (cJSON_IsString(v))
        return v->valuestring;
    if (cJSON_IsNumber(v)) {
        snprintf(buf, cap, "%.17g", v->valuedouble);
        return buf;
    }
    if (cJSON_IsBool(v))
        return cJSON_IsTrue(v) ? "true" : "false";
    return NULL;
}

int ctl_topic_diff(const struct ctl_topic_want *w, const cJSON *broker, cJSON **patch,
                   char *err, size_t errcap)
{
    *patch = NULL;
    bool ok = true;
    int64_t parts = ctl_jint(broker, "partitions", 0, &ok);
    const char *mode = ctl_jstr(cJSON_GetObjectItemCaseSensitive(broker, "storage"), "mode");
    if (mode && strcmp(mode, w->mode)) {
        snprintf(err, errcap, "storage.mode is %s on the broker and cannot change to %s", mode,
                 w->mode);
        return -1;
    }
    if (parts > w->partitions) {
        snprintf(err, errcap, "partitions can only grow: the broker has %" PRId64
                 ", the spec asks for %" PRId64, parts, w->partitions);
        return -1;
    }
    cJSON *p = cJSON_CreateObject(), *cfg = cJSON_CreateObject(), *want = want_configs(w), *it;
    const cJSON *have = cJSON_GetObjectItemCaseSensitive(broker, "config");
    int changes = 0;
    char b1[40];
    if (!p || !cfg || !want)
        goto oom;
    if (parts < w->partitions) {
        add_i64(p, "partitions", w->partitions);
        changes++;
    }
    cJSON_ArrayForEach(it, want)
    {
        const char *hv = cfg_str(cJSON_GetObjectItemCaseSensitive(have, it->string), b1, sizeof b1);
        if (!hv || strcmp(hv, it->valuestring)) {
            cJSON_AddStringToObject(cfg, it->string, it->valuestring);
            changes++;
        }
    }
    cJSON_ArrayForEach(it, have)
    {
        if (!strncmp(it->string, "storage.", 8) ||
            cJSON_GetObjectItemCaseSensitive(want, it->string))
            continue;
        cJSON_AddNullToObject(cfg, it->string); /* set outside the spec: back to default */
        changes++;
    }
    cJSON_Delete(want);
    if (!changes) {
        cJSON_Delete(p);
        cJSON_Delete(cfg);
        return 0;
    }
    if (cfg->child)
        cJSON_AddItemToObject(p, "config", cfg);
    else
        cJSON_Delete(cfg);
    *patch = p;
    return 1;
oom:
    cJSON_Delete(p);
    cJSON_Delete(cfg);
    cJSON_Delete(want);
    snprintf(err, errcap, "out of memory");
    return -1;
}

/* --- the Topic reconciler --- */

struct owner_scan {
    const char *self;
    char best_key[600];
    int64_t best_ts;
};

static void owner_visit(void *arg, const struct ctl_obj *o)
{
    struct owner_scan *s = arg;
    cJSON *j = cJSON_Parse(o->json);
    const char *ts = ctl_jstr(cJSON_GetObjectItemCaseSensitive(j, "metadata"), "creationTimestamp");
    int64_t t = ts ? ctl_parse_rfc3339(ts) : INT64_MAX;
    if (t < 0)
        t = INT64_MAX;
    if (!s->best_key[0] || t < s->best_ts || (t == s->best_ts && strcmp(o->key, s->best_key) < 0)) {
        s->best_ts = t;
        snprintf(s->best_key, sizeof s->best_key, "%s", o->key);
    }
    cJSON_Delete(j);
}

/* Returns true when r's Topic owns broker topic name; otherwise owner gets the key of
 * the Topic that does. */
static bool topic_owner(struct ctl_rec *r, const char *name, char *owner, size_t cap)
{
    struct ctl_ctrl *c = r->w->ctrl;
    char self[600];
    snprintf(self, sizeof self, "%s/%s", r->ns, r->name);
    struct owner_scan s = {.self = self};
    pthread_mutex_lock(&c->mu);
    ctl_cache_foreach_idx(&c->cache[CTL_KIND_TOPIC], name, owner_visit, &s);
    pthread_mutex_unlock(&c->mu);
    snprintf(owner, cap, "%s", s.best_key[0] ? s.best_key : self);
    return !s.best_key[0] || !strcmp(s.best_key, self);
}

/* Deletes the broker topic (if owned) and drops the finalizer. */
static void topic_finalize(struct ctl_rec *r, const char *name, bool owned)
{
    char path[1024];
    struct ctl_bresp b;
    if (!ctl_rec_has_finalizer(r))
        return;
    if (owned && ctl_broker_topic_path(name, NULL, path, sizeof path) == 0) {
        ctl_broker_call(&r->w->bc, "DELETE", path, NULL, &b);
        if (b.status != 204 && b.status != 200 && b.status != 404) {
            ctl_rec_broker_error(r, "deleting the broker topic", &b);
            ctl_bresp_free(&b);
            return;
        }
        ctl_bresp_free(&b);
        ctl_info("Topic %s/%s: deleted broker topic %s", r->ns, r->name, name);
    }
    if (ctl_rec_finalizer(r, false) < 0)
        return;
    r->reason[0] = 0; /* nothing left to report */
}

int ctl_topic_ensure(struct ctl_rec *r, const struct ctl_topic_want *w, cJSON **topic_json,
                     bool *created)
{
    char path[1024], err[512];
    struct ctl_bresp b;
    *topic_json = NULL;
    *created = false;
    if (ctl_broker_topic_path(w->name, NULL, path, sizeof path) < 0)
        return -1;
    ctl_broker_call(&r->w->bc, "GET", path, NULL, &b);
    if (b.status == 404) {
        ctl_bresp_free(&b);
        cJSON *body = ctl_topic_create_body(w);
        ctl_broker_call(&r->w->bc, "POST", "/v1/topics", body, &b);
        cJSON_Delete(body);
        if (b.status == 201 || b.status == 200) {
            *created = true;
            *topic_json = b.json;
            return 0;
        }
        if (b.status == 409) { /* created meanwhile: look again soon */
            ctl_rec_outcome(r, false, "Pending", "topic %s was created concurrently", w->name);
            r->retry = true;
        } else
            ctl_rec_broker_error(r, "creating the topic", &b);
        ctl_bresp_free(&b);
        return -1;
    }
    if (b.status != 200 || !b.json) {
        ctl_rec_broker_error(r, "reading the topic", &b);
        ctl_bresp_free(&b);
        return -1;
    }
    cJSON *patch = NULL;
    int d = ctl_topic_diff(w, b.json, &patch, err, sizeof err);
    if (d < 0) {
        ctl_rec_outcome(r, false, "InvalidSpec", "topic %s: %s", w->name, err);
        ctl_bresp_free(&b);
        return -1;
    }
    if (d == 0) {
        *topic_json = b.json;
        return 0;
    }
    ctl_bresp_free(&b);
    char *ps = cJSON_PrintUnformatted(patch);
    ctl_info("%s %s/%s: bringing broker topic %s in step: %s", r->kind_name, r->ns, r->name,
             w->name, ps ? ps : "");
    free(ps);
    ctl_broker_call(&r->w->bc, "PATCH", path, patch, &b);
    cJSON_Delete(patch);
    if (b.status != 200) {
        ctl_rec_broker_error(r, "updating the topic", &b);
        ctl_bresp_free(&b);
        return -1;
    }
    ctl_rec_event(r, false, "Updated", "broker topic %s brought in step with the spec", w->name);
    *topic_json = b.json;
    return 0;
}

void ctl_topic_reconcile(struct ctl_rec *r)
{
    struct ctl_topic_want w;
    char err[512], owner[600];
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(r->obj, "spec");
    const char *tn = ctl_jstr(spec, "topicName");
    const char *bname = tn && *tn ? tn : r->name;
    bool owned = topic_owner(r, bname, owner, sizeof owner);
    if (ctl_rec_deleting(r)) {
        topic_finalize(r, bname, owned);
        return;
    }
    cJSON_AddStringToObject(r->status, "topicName", bname);
    if (!owned) {
        ctl_rec_outcome(r, false, "Conflict", "broker topic %s belongs to Topic %s (the older one)",
                        bname, owner);
        return;
    }
    if (ctl_topic_want_from_spec(spec, r->name, &w, err, sizeof err) < 0) {
        ctl_rec_outcome(r, false, "InvalidSpec", "%s", err);
        return;
    }
    if (ctl_rec_finalizer(r, true) != 0) {
        ctl_rec_outcome(r, false, "KubernetesError", "%s", r->message);
        return;
    }
    spec = cJSON_GetObjectItemCaseSensitive(r->obj, "spec");
    if (ctl_topic_want_from_spec(spec, r->name, &w, err, sizeof err) < 0) {
        ctl_rec_outcome(r, false, "InvalidSpec", "%s", err);
        return;
    }
    cJSON *tj = NULL;
    bool created = false;
    if (ctl_topic_ensure(r, &w, &tj, &created) < 0)
        return;
    if (created) {
        ctl_info("Topic %s/%s: created broker topic %s", r->ns, r->name, w.name);
        ctl_rec_event(r, false, "Created", "created broker topic %s with %lld partitions", w.name,
                      (long long)w.partitions);
    }
    const char *id = ctl_jstr(tj, "id");
    if (id)
        cJSON_AddStringToObject(r->status, "topicId", id);
    cJSON_AddNumberToObject(r->status, "partitions",
                            (double)ctl_jint(tj, "partitions", w.partitions, NULL));
    cJSON_Delete(tj);
    ctl_rec_outcome(r, true, "Ready", "broker topic %s is in step with the spec", w.name);
}
