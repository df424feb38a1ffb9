/* ctl_informer.c: list/watch state machine and the cache updates it makes. */
#include "ctl_informer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_jobs.h"
#include "ctl_util.h"

#define WATCH_ERR_MAX (64u << 10)
#define ABSENT_RETRY_MS 60000 /* a job kind the cluster does not serve: look again */

int ctl_informer_init(struct ctl_informer *inf, struct ctl_ctrl *c, enum ctl_kind kind)
{
    memset(inf, 0, sizeof *inf);
    inf->ctrl = c;
    inf->kind = kind;
    inf->relist = true;
    const char *ns = c->cfg.namespace;
    if (ns && *ns)
        snprintf(inf->path, sizeof inf->path, "%s/namespaces/%s/%s", ctl_kind_api(kind), ns,
                 ctl_kind_plural(kind));
    else
        snprintf(inf->path, sizeof inf->path, "%s/%s", ctl_kind_api(kind), ctl_kind_plural(kind));
    ctl_linebuf_init(&inf->lb, CTL_WATCH_MAX_LINE);
    ctl_backoff_init(&inf->bo, 500, 30000);
    if (ctl_kind_is_job(kind) && !(c->cfg.job_kinds & (1u << kind))) {
        inf->state = CTL_INF_OFF;
        c->synced[kind] = true; /* nothing to wait for */
    }
    return 0;
}

static void inf_release(struct ctl_informer *inf, CURLM *m)
{
    if (inf->h) {
        curl_multi_remove_handle(m, inf->h);
        curl_easy_cleanup(inf->h);
        inf->h = NULL;
    }
    curl_slist_free_all(inf->hdrs);
    inf->hdrs = NULL;
    ctl_http_resp_free(&inf->body);
    ctl_linebuf_reset(&inf->lb);
}

void ctl_informer_free(struct ctl_informer *inf, CURLM *m)
{
    inf_release(inf, m);
    ctl_linebuf_free(&inf->lb);
    free(inf->cont);
    inf->cont = NULL;
}

/* --- cache updates --- */

static const char *j_str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The secondary index value of obj: Topics by broker topic name, Pods by namespace. */
static const char *inf_idx(enum ctl_kind k, const cJSON *obj)
{
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    if (k == CTL_KIND_POD || ctl_kind_is_job(k))
        return j_str(md, "namespace");
    if (k != CTL_KIND_TOPIC)
        return NULL;
    const char *tn = j_str(cJSON_GetObjectItemCaseSensitive(obj, "spec"), "topicName");
    return tn && *tn ? tn : j_str(md, "name");
}

static double pod_qty(const cJSON *v)
{
    if (cJSON_IsNumber(v))
        return v->valuedouble;
    if (cJSON_IsString(v))
        return strtod(v->valuestring, NULL);
    return 0;
}

cJSON *ctl_pod_compact(const cJSON *pod)
{
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(pod, "metadata");
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(pod, "spec");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(pod, "status"), *c;
    cJSON *o = cJSON_CreateObject(), *m = cJSON_AddObjectToObject(o, "metadata");
    if (!m)
        goto fail;
    static const char *const keep[] = {"name", "namespace", "uid", "resourceVersion",
                                       "deletionTimestamp", NULL};
    for (int i = 0; keep[i]; i++)
        if (j_str(md, keep[i]) && !cJSON_AddStringToObject(m, keep[i], j_str(md, keep[i])))
            goto fail;
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(md, "labels");
    if (labels && !cJSON_AddItemToObject(m, "labels", cJSON_Duplicate(labels, 1)))
        goto fail;
    double gpus = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(spec, "containers"))
    {
        const cJSON *res = cJSON_GetObjectItemCaseSensitive(c, "resources");
        const cJSON *q = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(res, "requests"), "nvidia.com/gpu");
        if (!q)
            q = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(res, "limits"),
                                                 "nvidia.com/gpu");
        gpus += pod_qty(q);
    }
    const char *phase = j_str(st, "phase");
    if (!cJSON_AddStringToObject(o, "phase", phase ? phase : "Pending") ||
        !cJSON_AddNumberToObject(o, "gpus", gpus))
        goto fail;
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

struct enq_ns {
    struct ctl_ctrl *c;
    const char *ns;
    size_t nslen;
};

static void enq_dataset_in_ns(void *arg, const struct ctl_obj *o)
{
    struct enq_ns *e = arg;
    if (!strncmp(o->key, e->ns, e->nslen) && o->key[e->nslen] == '/')
        ctl_enqueue_locked(e->c, CTL_KIND_DATASET, o->key);
}

struct enq_idx {
    struct ctl_ctrl *c;
    const char *self;
};

static void enq_topic_peer(void *arg, const struct ctl_obj *o)
{
    struct enq_idx *e = arg;
    if (strcmp(o->key, e->self))
        ctl_enqueue_locked(e->c, CTL_KIND_TOPIC, o->key);
}

/* Queues what a change of key (with index values before and after) affects. */
static void inf_affects(struct ctl_informer *inf, const char *key, const char *old_idx,
                        const char *new_idx)
{
    struct ctl_ctrl *c = inf->ctrl;
    if (inf->kind == CTL_KIND_POD || ctl_kind_is_job(inf->kind)) {
        const char *ns = new_idx ? new_idx : old_idx;
        struct enq_ns e = {c, ns ? ns : "", ns ? strlen(ns) : 0};
        ctl_cache_foreach(&c->cache[CTL_KIND_DATASET], enq_dataset_in_ns, &e);
        return;
    }
    ctl_enqueue_locked(c, inf->kind, key);
    if (inf->kind == CTL_KIND_TOPIC) {
        /* Topics naming the same broker topic decide ownership among themselves */
        struct enq_idx e = {c, key};
        if (old_idx)
            ctl_cache_foreach_idx(&c->cache[CTL_KIND_TOPIC], old_idx, enq_topic_peer, &e);
        if (new_idx && (!old_idx || strcmp(old_idx, new_idx)))
            ctl_cache_foreach_idx(&c->cache[CTL_KIND_TOPIC], new_idx, enq_topic_peer, &e);
    }
}

/* True when new differs from the cached old in what reconciles act on: generation,
 * deletion, finalizers, labels or owner (status-only updates are not). A compacted
 * object (pods, jobs) holds only what matters, so any change but its resourceVersion
 * counts. */
static bool inf_changed(enum ctl_kind k, const char *old_json, const cJSON *obj)
{
    if (!old_json)
        return true;
    cJSON *old = cJSON_Parse(old_json);
    if (!old)
        return true;
    bool changed = false;
    if (k == CTL_KIND_POD || ctl_kind_is_job(k)) {
        cJSON *a = cJSON_Duplicate(obj, 1);
        cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(a, "metadata"),
                                                "resourceVersion");
        cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(old, "metadata"),
                                                "resourceVersion");
        changed = !a || !cJSON_Compare(a, old, true);
        cJSON_Delete(a);
        cJSON_Delete(old);
        return changed;
    }
    static const char *const keys[] = {"generation", "deletionTimestamp", "finalizers", "labels",
                                       "uid", NULL};
    const cJSON *om = cJSON_GetObjectItemCaseSensitive(old, "metadata");
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    for (int i = 0; keys[i] && !changed; i++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(om, keys[i]);
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(nm, keys[i]);
        changed = (a == NULL) != (b == NULL) || (a && !cJSON_Compare(a, b, true));
    }
    cJSON_Delete(old);
    return changed;
}

/* Stores obj (an ADDED/MODIFIED object or a list item) and queues what it affects. */
static void inf_upsert(struct ctl_informer *inf, cJSON *obj)
{
    char key[600];
    struct ctl_cache *cache = &inf->ctrl->cache[inf->kind];
    cJSON *compact = NULL;
    if (inf->kind == CTL_KIND_POD)
        obj = compact = ctl_pod_compact(obj);
    else if (ctl_kind_is_job(inf->kind))
        obj = compact = ctl_job_compact(inf->kind, obj);
    else
        ctl_obj_strip(obj);
    if (!obj || ctl_obj_key(obj, key, sizeof key) < 0)
        goto out;
    const struct ctl_obj *old = ctl_cache_find(cache, key);
    bool changed = inf_changed(inf->kind, old ? old->json : NULL, obj);
    char *json = cJSON_PrintUnformatted(obj), *old_idx = NULL;
    const char *idx = inf_idx(inf->kind, obj);
    if (!json || ctl_cache_put(cache, key, json, idx, &old_idx) < 0) {
        ctl_error("out of memory caching %s %s", ctl_kind_name(inf->kind), key);
        goto out;
    }
    if (changed || (old_idx == NULL) != (idx == NULL) || (idx && strcmp(old_idx, idx)))
        inf_affects(inf, key, old_idx, idx);
    free(old_idx);
out:
    cJSON_Delete(compact);
}

static void inf_delete(struct ctl_informer *inf, const cJSON *obj)
{
    char key[600], *old_idx = NULL;
    if (ctl_obj_key(obj, key, sizeof key) < 0)
        return;
    if (ctl_cache_del(&inf->ctrl->cache[inf->kind], key, &old_idx))
        inf_affects(inf, key, old_idx, NULL);
    free(old_idx);
}

static void inf_note_rv(struct ctl_informer *inf, const cJSON *obj)
{
    const char *rv = j_str(cJSON_GetObjectItemCaseSensitive(obj, "metadata"), "resourceVersion");
    if (rv && strlen(rv) < sizeof inf->rv)
        snprintf(inf->rv, sizeof inf->rv, "%s", rv);
}

int ctl_informer_event(struct ctl_informer *inf, const char *line, size_t len)
{
    cJSON *ev = cJSON_ParseWithLength(line, len);
    int rc = 0;
    if (!ev) {
        ctl_warn("%s watch: unreadable event (%zu bytes)", ctl_kind_name(inf->kind), len);
        return -1;
    }
    const char *type = j_str(ev, "type");
    cJSON *obj = cJSON_GetObjectItemCaseSensitive(ev, "object");
    ctl_metric_inc(&ctl_metrics.watch_events[inf->kind]);
    if (!type || !cJSON_IsObject(obj)) {
        rc = -1;
    } else if (!strcmp(type, "ERROR")) {
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(obj, "code");
        char msg[256];
        ctl_kube_status_message(obj, msg, sizeof msg);
        rc = cJSON_IsNumber(code) && code->valueint == 410 ? 1 : -1;
        ctl_info("%s watch: ERROR event (%s)", ctl_kind_name(inf->kind), msg);
    } else if (!strcmp(type, "BOOKMARK")) {
        inf_note_rv(inf, obj);
    } else if (!strcmp(type, "ADDED") || !strcmp(type, "MODIFIED")) {
        inf_note_rv(inf, obj);
        inf_upsert(inf, obj);
    } else if (!strcmp(type, "DELETED")) {
        inf_note_rv(inf, obj);
        inf_delete(inf, obj);
    } else {
        ctl_warn("%s watch: unknown event type %.32s", ctl_kind_name(inf->kind), type);
    }
    cJSON_Delete(ev);
    return rc;
}

/* --- transfers --- */

static int inf_line(void *arg, const char *line, size_t len)
{
    struct ctl_informer *inf = arg;
    int rc = ctl_informer_event(inf, line, len);
    inf->events++;
    if (rc == 1) {
        inf->gone = true;
        return -1;
    }
    if (rc < 0 && len && line[0] == '{' && strstr(line, "\"ERROR\"")) {
        inf->watch_error = true;
        return -1;
    }
    return 0;
}

static size_t inf_watch_write(char *p, size_t sz, size_t n, void *arg)
{
    struct ctl_informer *inf = arg;
    long status = 0;
    curl_easy_getinfo(inf->h, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        if (inf->body.len + sz * n > WATCH_ERR_MAX)
            return 0;
        return ctl_http_sink(p, sz, n, &inf->body);
    }
    struct ctl_ctrl *c = inf->ctrl;
    pthread_mutex_lock(&c->mu);
    int rc = ctl_linebuf_feed(&inf->lb, p, sz * n, inf_line, inf);
    ctl_update_gauges_locked(c);
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return rc == 0 ? sz * n : 0;
}

/* Starts a GET of url (relative to the server) on inf->h with the given sink. */
static int inf_start(struct ctl_informer *inf, CURLM *m, const char *url_path, bool watch,
                     long timeout_ms)
{
    char *url = ctl_sprintf("%s%s", inf->ctrl->auth.server, url_path);
    inf->h = curl_easy_init();
    inf->hdrs = ctl_kauth_headers(&inf->ctrl->auth, NULL);
    if (!url || !inf->h || !inf->hdrs) {
        free(url);
        inf_release(inf, m);
        return -1;
    }
    ctl_kauth_setup(&inf->ctrl->auth, inf->h);
    curl_easy_setopt(inf->h, CURLOPT_URL, url);
    curl_easy_setopt(inf->h, CURLOPT_HTTPHEADER, inf->hdrs);
    curl_easy_setopt(inf->h, CURLOPT_PRIVATE, inf);
    curl_easy_setopt(inf->h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(inf->h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(inf->h, CURLOPT_ACCEPT_ENCODING, "");
    if (watch) {
        curl_easy_setopt(inf->h, CURLOPT_WRITEFUNCTION, inf_watch_write);
        curl_easy_setopt(inf->h, CURLOPT_WRITEDATA, inf);
    } else {
        curl_easy_setopt(inf->h, CURLOPT_WRITEFUNCTION, ctl_http_sink);
        curl_easy_setopt(inf->h, CURLOPT_WRITEDATA, &inf->body);
    }
    free(url);
    if (curl_multi_add_handle(m, inf->h) != CURLM_OK) {
        inf_release(inf, m);
        return -1;
    }
    inf->started_ms = ctl_now_ms();
    return 0;
}

static void inf_retry_later(struct ctl_informer *inf, bool relist)
{
    int64_t d = ctl_backoff_next(&inf->bo);
    inf->state = CTL_INF_WAITING;
    inf->relist = relist;
    inf->due_ms = ctl_now_ms() + d;
    ctl_info("%s: retrying the %s in %lld ms", ctl_kind_name(inf->kind),
             relist ? "list" : "watch", (long long)d);
}

static void inf_start_list(struct ctl_informer *inf, CURLM *m)
{
    char path[2048];
    if (inf->cont) {
        char *esc = curl_easy_escape(NULL, inf->cont, 0);
        snprintf(path, sizeof path, "%s?limit=%d&continue=%s", inf->path, CTL_LIST_PAGE,
                 esc ? esc : "");
        curl_free(esc);
    } else {
        snprintf(path, sizeof path, "%s?limit=%d", inf->path, CTL_LIST_PAGE);
        pthread_mutex_lock(&inf->ctrl->mu);
        ctl_cache_begin_relist(&inf->ctrl->cache[inf->kind]);
        pthread_mutex_unlock(&inf->ctrl->mu);
    }
    inf->state = CTL_INF_LISTING;
    if (inf_start(inf, m, path, false, 60000) < 0)
        inf_retry_later(inf, true);
}

static void inf_start_watch(struct ctl_informer *inf, CURLM *m)
{
    char path[1024];
    int to = inf->ctrl->cfg.watch_timeout_s;
    to += (int)(ctl_rand64() % (uint64_t)(to / 5 + 1)); /* spread reconnects */
    snprintf(path, sizeof path,
             "%s?watch=1&allowWatchBookmarks=true&resourceVersion=%s&timeoutSeconds=%d",
             inf->path, inf->rv, to);
    inf->state = CTL_INF_WATCHING;
    inf->gone = inf->watch_error = false;
    inf->events = 0;
    if (inf_start(inf, m, path, true, (long)(to + 30) * 1000) < 0)
        inf_retry_later(inf, false);
}

void ctl_informer_tick(struct ctl_informer *inf, CURLM *m, int64_t now)
{
    if (inf->state != CTL_INF_WAITING || now < inf->due_ms)
        return;
    if (inf->relist)
        inf_start_list(inf, m);
    else
        inf_start_watch(inf, m);
}

int64_t ctl_informer_wait(const struct ctl_informer *inf, int64_t now)
{
    if (inf->state != CTL_INF_WAITING)
        return -1;
    return inf->due_ms > now ? inf->due_ms - now : 0;
}

static void inf_sweep_one(void *arg, const struct ctl_obj *o)
{
    struct ctl_informer *inf = arg;
    inf_affects(inf, o->key, o->idx, NULL);
}

/* Applies one list page; returns 0, or -1 when the page cannot be read. */
static int inf_list_page(struct ctl_informer *inf)
{
    cJSON *j = inf->body.body ? cJSON_ParseWithLength(inf->body.body, inf->body.len) : NULL;
    cJSON *it;
    if (!j)
        return -1;
    struct ctl_ctrl *c = inf->ctrl;
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(j, "metadata");
    const char *rv = j_str(md, "resourceVersion"), *cont = j_str(md, "continue");
    pthread_mutex_lock(&c->mu);
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(j, "items"))
    {
        if (cJSON_IsObject(it))
            inf_upsert(inf, it);
    }
    free(inf->cont);
    inf->cont = cont && *cont ? strdup(cont) : NULL;
    if (!inf->cont) {
        size_t gone = ctl_cache_sweep(&c->cache[inf->kind], inf_sweep_one, inf);
        snprintf(inf->rv, sizeof inf->rv, "%s", rv ? rv : "0");
        c->synced[inf->kind] = true;
        ctl_info("%s: listed %zu objects at resourceVersion %s (%zu gone)",
                 ctl_kind_name(inf->kind), c->cache[inf->kind].count, inf->rv, gone);
    }
    ctl_metric_set(&ctl_metrics.cache_objects[inf->kind], c->cache[inf->kind].count);
    ctl_update_gauges_locked(c);
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    cJSON_Delete(j);
    return 0;
}

/* A job kind the cluster does not serve or lets us read: empty it, call it synced (so
 * that datasets are not held up), and look again in a minute. */
static void inf_absent(struct ctl_informer *inf, CURLM *m, long status)
{
    struct ctl_ctrl *c = inf->ctrl;
    inf_release(inf, m);
    free(inf->cont);
    inf->cont = NULL;
    pthread_mutex_lock(&c->mu);
    ctl_cache_begin_relist(&c->cache[inf->kind]);
    size_t gone = ctl_cache_sweep(&c->cache[inf->kind], inf_sweep_one, inf);
    c->synced[inf->kind] = true;
    ctl_update_gauges_locked(c);
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (!inf->absent || gone)
        ctl_info("%s: %s (HTTP %ld); not watching it, looking again every %d s",
                 ctl_kind_name(inf->kind), status == 404 ? "not served by this cluster"
                                                         : "not allowed to list it",
                 status, ABSENT_RETRY_MS / 1000);
    inf->absent = true;
    inf->state = CTL_INF_WAITING;
    inf->relist = true;
    inf->due_ms = ctl_now_ms() + ABSENT_RETRY_MS;
}

static void inf_list_done(struct ctl_informer *inf, CURLM *m, CURLcode rc, long status)
{
    if (rc == CURLE_OK && (status == 404 || status == 403) && ctl_kind_is_job(inf->kind)) {
        inf_absent(inf, m, status);
        return;
    }
    if (rc == CURLE_OK && status == 200 && inf_list_page(inf) == 0) {
        if (inf->absent && !inf->cont)
            ctl_info("%s: now served; watching it", ctl_kind_name(inf->kind));
        if (!inf->cont)
            inf->absent = false;
        inf_release(inf, m);
        ctl_backoff_reset(&inf->bo);
        inf->state = CTL_INF_WAITING;
        inf->relist = inf->cont != NULL;
        inf->due_ms = 0;
        return;
    }
    ctl_warn("%s: list failed: %s (HTTP %ld)", ctl_kind_name(inf->kind),
             rc != CURLE_OK ? curl_easy_strerror(rc) : "bad answer", status);
    if (status == 401)
        ctl_kauth_invalidate(&inf->ctrl->auth);
    inf_release(inf, m);
    free(inf->cont); /* a 410 on a continue token, or any error: list afresh */
    inf->cont = NULL;
    ctl_metric_watch_restart(inf->kind, status == 410 ? CTL_WR_GONE : CTL_WR_ERROR);
    inf_retry_later(inf, true);
}

static void inf_watch_done(struct ctl_informer *inf, CURLM *m, CURLcode rc, long status)
{
    int64_t lasted = ctl_now_ms() - inf->started_ms;
    if (inf->gone || status == 410) {
        ctl_info("%s: watch from %s is gone (410); relisting", ctl_kind_name(inf->kind), inf->rv);
        ctl_metric_watch_restart(inf->kind, CTL_WR_GONE);
        inf_release(inf, m);
        inf->state = CTL_INF_WAITING;
        inf->relist = true;
        inf->due_ms = 0;
        return;
    }
    bool clean = status == 200 && !inf->watch_error &&
                 (rc == CURLE_OK || rc == CURLE_OPERATION_TIMEDOUT);
    if (status == 401)
        ctl_kauth_invalidate(&inf->ctrl->auth);
    inf_release(inf, m);
    if (clean && (inf->events || lasted > 1000)) {
        ctl_debug("%s: watch ended after %lld ms; reconnecting", ctl_kind_name(inf->kind),
                  (long long)lasted);
        ctl_metric_watch_restart(inf->kind, CTL_WR_RECONNECT);
        ctl_backoff_reset(&inf->bo);
        inf->state = CTL_INF_WAITING;
        inf->relist = false;
        inf->due_ms = 0;
        return;
    }
    ctl_warn("%s: watch failed: %s (HTTP %ld)", ctl_kind_name(inf->kind),
             rc != CURLE_OK ? curl_easy_strerror(rc) : "ended at once", status);
    ctl_metric_watch_restart(inf->kind, CTL_WR_ERROR);
    inf_retry_later(inf, status == 404 || status == 403); /* gone or forbidden: list again */
}

void ctl_informer_done(struct ctl_informer *inf, CURLM *m, CURLcode rc)
{
    long status = 0;
    curl_easy_getinfo(inf->h, CURLINFO_RESPONSE_CODE, &status);
    if (inf->state == CTL_INF_LISTING)
        inf_list_done(inf, m, rc, status);
    else
        inf_watch_done(inf, m, rc, status);
}
