/* ctl_dataset.c: TrainingDataset resources. Each creates a read-only dataset topic with
 * a shared view, warms its cache, and keeps the share group's expected members in step
 * with the training job's running pods (and their nvidia.com/gpu requests); a pod that
 * disappears has its in-flight records released. The share group id is the topic name.
 *
 * Warming (spec.cache.warmPercent > 0) is asked for once the broker has listed the
 * dataset, and again for each training job that is about to start: a job matching the
 * consumer selector that is suspended (created so, e.g. by Kueue) or whose Kueue
 * Workload is admitted (ctl_jobs.h). status.warm remembers what was warmed for, so each
 * job warms once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_jobs.h"
#include "ctl_labels.h"
#include "ctl_rec.h"
#include "ctl_topic.h"
#include "ctl_util.h"

#define DS_MAX_PODS 4096
#define DS_STATS_REFRESH_MS 30000 /* status figures (objects, cache) refresh */
#define DS_BUSY_REFRESH_MS 2000   /* while the broker scans or warms */

struct ds_pods {
    const struct ctl_selector *sel;
    cJSON *names; /* running matching pods */
    int64_t members;
    int64_t gpus_per;
};

static void ds_pod_visit(void *arg, const struct ctl_obj *o)
{
    struct ds_pods *p = arg;
    cJSON *pod = cJSON_Parse(o->json);
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(pod, "metadata");
    const char *phase = ctl_jstr(pod, "phase");
    if (pod && phase && !strcmp(phase, "Running") && !ctl_jstr(md, "deletionTimestamp") &&
        ctl_selector_matches(p->sel, cJSON_GetObjectItemCaseSensitive(md, "labels")) &&
        cJSON_GetArraySize(p->names) < DS_MAX_PODS) {
        const cJSON *g = cJSON_GetObjectItemCaseSensitive(pod, "gpus");
        int64_t gpus = cJSON_IsNumber(g) ? (int64_t)g->valuedouble : 0;
        int64_t m = gpus / p->gpus_per;
        p->members += m > 0 ? m : 1;
        cJSON_AddItemToArray(p->names, cJSON_CreateString(ctl_jstr(md, "name")));
    }
    cJSON_Delete(pod);
}

struct ds_jobs {
    const struct ctl_selector *sel;
    bool found;
    struct ctl_warm_trigger best;
};

static void ds_job_visit(void *arg, const struct ctl_obj *o)
{
    struct ds_jobs *d = arg;
    struct ctl_warm_trigger t;
    cJSON *j = cJSON_Parse(o->json);
    if (j && ctl_job_trigger(j, d->sel, &t) && (!d->found || ctl_trigger_newer(&t, &d->best))) {
        d->best = t;
        d->found = true;
    }
    cJSON_Delete(j);
}

static bool names_has(const cJSON *arr, const char *s)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        if (cJSON_IsString(it) && !strcmp(it->valuestring, s))
            return true;
    }
    return false;
}

/* Builds the source object, reading credentials from the Secret when named. Returns
 * NULL with the outcome set. */
static cJSON *ds_source(struct ctl_rec *r, const cJSON *src)
{
    cJSON *s = cJSON_CreateObject();
    static const char *const keys[] = {"uri", "endpoint", "region", "format", NULL};
    for (int i = 0; keys[i]; i++)
        if (ctl_jstr(src, keys[i]))
            cJSON_AddStringToObject(s, keys[i], ctl_jstr(src, keys[i]));
    const char *secname = ctl_jstr(src, "credentialsSecret");
    if (!secname || !*secname)
        return s;
    char path[600];
    cJSON *sec = NULL;
    snprintf(path, sizeof path, "/api/v1/namespaces/%s/secrets/%s", r->ns, secname);
    long st = ctl_kube_json(&r->w->kc, "GET", path, NULL, NULL, &sec);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(sec, "data");
    const char *ak = ctl_jstr(data, "AWS_ACCESS_KEY_ID"), *sk = ctl_jstr(data, "AWS_SECRET_ACCESS_KEY");
    if (st != 200 || !ak || !sk) {
        ctl_rec_outcome(r, false, "CredentialsUnavailable",
                        "Secret %s (keys AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY): HTTP %ld", secname,
                        st);
        r->retry = true;
        cJSON_Delete(sec);
        cJSON_Delete(s);
        return NULL;
    }
    size_t l1, l2;
    char *a = (char *)ctl_b64_decode(ak, strlen(ak), &l1), *b = (char *)ctl_b64_decode(sk, strlen(sk), &l2);
    cJSON *cred = cJSON_AddObjectToObject(s, "credentials");
    cJSON_AddStringToObject(cred, "access_key_id", a ? a : "");
    cJSON_AddStringToObject(cred, "secret_access_key", b ? b : "");
    free(a);
    free(b);
    cJSON_Delete(sec);
    return s;
}

/* The POST /v1/topics body of the dataset topic, its view served by share group topic. */
static cJSON *ds_create_body(const cJSON *spec, const char *topic, cJSON *src)
{
    const cJSON *sv = cJSON_GetObjectItemCaseSensitive(spec, "sharedView");
    cJSON *body = cJSON_CreateObject(), *sh = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "name", topic);
    cJSON_AddNumberToObject(body, "partitions", (double)ctl_jint(spec, "partitions", 8, NULL));
    cJSON_AddItemToObject(body, "source", src);
    cJSON_AddNumberToObject(sh, "virtual_partitions", (double)ctl_jint(sv, "virtualPartitions", 256, NULL));
    cJSON_AddNumberToObject(sh, "lock_ms", (double)ctl_jint(sv, "lockMs", 30000, NULL));
    cJSON_AddNumberToObject(sh, "max_deliveries", (double)ctl_jint(sv, "maxDeliveries", 5, NULL));
    if (ctl_jstr(sv, "name"))
        cJSON_AddStringToObject(sh, "name", ctl_jstr(sv, "name"));
    cJSON_AddStringToObject(sh, "group", topic);
    cJSON_AddItemToObject(body, "shared", sh);
    return body;
}

/* Reads the dataset topic, creating it when missing. Returns the broker's JSON of it
 * (the caller frees it), or NULL with the outcome set. */
static cJSON *ds_topic(struct ctl_rec *r, const cJSON *spec, const char *topic, bool *created)
{
    char path[1024];
    struct ctl_bresp b;
    cJSON *tj = NULL;
    *created = false;
    ctl_broker_topic_path(topic, NULL, path, sizeof path);
    ctl_broker_call(&r->w->bc, "GET", path, NULL, &b);
    if (b.status == 200 && b.json) {
        tj = b.json;
        b.json = NULL;
        ctl_bresp_free(&b);
        return tj;
    }
    if (b.status != 404) {
        ctl_rec_broker_error(r, "reading the dataset topic", &b);
        ctl_bresp_free(&b);
        return NULL;
    }
    ctl_bresp_free(&b);
    cJSON *src = ds_source(r, cJSON_GetObjectItemCaseSensitive(spec, "source"));
    if (!src)
        return NULL;
    cJSON *body = ds_create_body(spec, topic, src);
    ctl_broker_call(&r->w->bc, "POST", "/v1/topics", body, &b);
    cJSON_Delete(body);
    if ((b.status == 201 || b.status == 200) && b.json) {
        *created = true;
        tj = b.json;
        b.json = NULL;
    } else if (b.status == 409) {
        ctl_rec_outcome(r, false, "Pending", "topic %s was created concurrently", topic);
        r->retry = true;
    } else
        ctl_rec_broker_error(r, "creating the dataset topic", &b);
    ctl_bresp_free(&b);
    return tj;
}

/* True when the broker's share group g is configured as the spec asks. */
static bool ds_group_in_step(const cJSON *g, const cJSON *sv, int64_t members)
{
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(g, "config");
    const cJSON *view = cJSON_GetObjectItemCaseSensitive(g, "view");
    return ctl_jint(cfg, "expected_members", -1, NULL) == members &&
           ctl_jint(cfg, "lock_ms", -1, NULL) == ctl_jint(sv, "lockMs", 30000, NULL) &&
           ctl_jint(view, "partitions", -1, NULL) == ctl_jint(sv, "virtualPartitions", 256, NULL);
}

/* Brings the share group in step (expected members, view size, lock), and releases the
 * records of pods that were consumers and are gone. Returns false when the broker does
 * not serve share groups. */
static bool ds_share_group(struct ctl_rec *r, const cJSON *spec, const char *topic,
                           int64_t members, const cJSON *pods, const cJSON *old_pods)
{
    char esc[600], path[1400];
    struct ctl_bresp b;
    bool supported = true;
    ctl_path_escape(topic, esc, sizeof esc);
    const cJSON *sv = cJSON_GetObjectItemCaseSensitive(spec, "sharedView"), *it;
    snprintf(path, sizeof path, "/v1/share-groups/%s", esc);
    ctl_broker_call(&r->w->bc, "GET", path, NULL, &b);
    bool in_step = b.status == 200 && ds_group_in_step(b.json, sv, members);
    ctl_bresp_free(&b);
    if (!in_step) {
        cJSON *body = cJSON_CreateObject();
        cJSON_AddStringToObject(body, "topic", topic);
        cJSON_AddNumberToObject(body, "expected_members", (double)members);
        cJSON_AddNumberToObject(body, "virtual_partitions", (double)ctl_jint(sv, "virtualPartitions", 256, NULL));
        cJSON_AddNumberToObject(body, "lock_ms", (double)ctl_jint(sv, "lockMs", 30000, NULL));
        cJSON_AddNumberToObject(body, "max_deliveries", (double)ctl_jint(sv, "maxDeliveries", 5, NULL));
        ctl_broker_call(&r->w->bc, "PUT", path, body, &b);
        cJSON_Delete(body);
        supported = b.status != 404 && b.status != 405;
        if (b.status == 200)
            ctl_info("TrainingDataset %s/%s: share group %s expects %lld members", r->ns, r->name,
                     topic, (long long)members);
        else if (b.status < 0 || b.status >= 500)
            r->retry = true;
        ctl_bresp_free(&b);
    }
    cJSON_ArrayForEach(it, old_pods)
    {
        char pesc[300];
        if (!cJSON_IsString(it) || names_has(pods, it->valuestring))
            continue;
        ctl_path_escape(it->valuestring, pesc, sizeof pesc);
        snprintf(path, sizeof path, "/v1/share-groups/%s/members/%s/release", esc, pesc);
        ctl_broker_call(&r->w->bc, "POST", path, NULL, &b);
        ctl_info("TrainingDataset %s/%s: pod %s is gone; released its records (HTTP %ld)", r->ns,
                 r->name, it->valuestring, b.status);
        if (b.status < 0 || b.status >= 500)
            r->retry = true;
        else
            ctl_rec_event(r, false, "Released", "pod %s is gone; released %lld in-flight records",
                          it->valuestring, (long long)ctl_jint(b.json, "released", 0, NULL));
        ctl_bresp_free(&b);
    }
    return supported;
}

/* GETs /v1/topics/{topic}{suffix}; returns the JSON (caller frees) or NULL. */
static cJSON *ds_get(struct ctl_rec *r, const char *topic, const char *suffix)
{
    char path[1024];
    struct ctl_bresp b;
    cJSON *out = NULL;
    ctl_broker_topic_path(topic, suffix, path, sizeof path);
    ctl_broker_call(&r->w->bc, "GET", path, NULL, &b);
    if (b.status == 200) {
        out = b.json;
        b.json = NULL;
    }
    ctl_bresp_free(&b);
    return out;
}

/* Adds objects, bytes, s3Requests and cachedPercent (bytes in the larger cache tier /
 * dataset bytes) to the status. */
static void ds_stats(struct ctl_rec *r, const char *topic, const cJSON *source)
{
    int64_t bytes = ctl_jint(source, "bytes", 0, NULL);
    ctl_status_put(r->status, "objects", cJSON_CreateNumber((double)ctl_jint(source, "objects", 0, NULL)));
    ctl_status_put(r->status, "bytes", cJSON_CreateNumber((double)bytes));
    cJSON *cache = ds_get(r, topic, "/cache");
    if (!cache)
        return;
    const cJSON *tiers = cJSON_GetObjectItemCaseSensitive(cache, "tiers");
    int64_t mem = ctl_jint(cJSON_GetObjectItemCaseSensitive(tiers, "memory"), "bytes", 0, NULL);
    int64_t disk = ctl_jint(cJSON_GetObjectItemCaseSensitive(tiers, "disk"), "bytes", 0, NULL);
    int64_t held = mem > disk ? mem : disk;
    ctl_status_put(r->status, "s3Requests",
                   cJSON_CreateNumber((double)ctl_jint(cJSON_GetObjectItemCaseSensitive(cache, "s3"),
                                                       "requests", 0, NULL)));
    ctl_status_put(r->status, "cachedPercent",
                   cJSON_CreateNumber(bytes <= 0      ? 0
                                      : held >= bytes ? 100
                                                      : (double)(held * 100 / bytes)));
    cJSON_Delete(cache);
}

/* What to warm for now: the newest matching job asking for it, else what was last
 * warmed for, else the dataset's creation. */
static void ds_warm_want(struct ctl_rec *r, const struct ctl_selector *sel, bool has_sel,
                         const cJSON *old, struct ctl_warm_trigger *want)
{
    struct ds_jobs d = {.sel = sel};
    memset(want, 0, sizeof *want);
    if (has_sel) {
        pthread_mutex_lock(&r->w->ctrl->mu);
        for (int k = CTL_KIND_JOB; k < CTL_NKINDS; k++)
            ctl_cache_foreach_idx(&r->w->ctrl->cache[k], r->ns, ds_job_visit, &d);
        pthread_mutex_unlock(&r->w->ctrl->mu);
    }
    if (d.found) {
        *want = d.best;
        return;
    }
    const char *key = ctl_jstr(old, "key"), *trig = ctl_jstr(old, "trigger");
    snprintf(want->uid, sizeof want->uid, "%s", key ? key : "created");
    snprintf(want->reason, sizeof want->reason, "%s", key && trig ? trig : "Created");
    snprintf(want->job, sizeof want->job, "%s", key && ctl_jstr(old, "job") ? ctl_jstr(old, "job") : "");
}

/* The requestedAt of the warm for (key, pct) this process asked for, copied into at
 * (>= 40 bytes); false when it asked for none. */
static bool ds_memo_get(struct ctl_rec *r, const char *key, int64_t pct, char *at)
{
    char want[128], obj[600];
    int n = snprintf(want, sizeof want, "%s|%lld|", key, (long long)pct);
    snprintf(obj, sizeof obj, "%s/%s", r->ns, r->name);
    pthread_mutex_lock(&r->w->ctrl->mu);
    const struct ctl_obj *o = ctl_cache_find(&r->w->ctrl->warmed, obj);
    bool hit = o && !strncmp(o->json, want, (size_t)n);
    if (hit)
        snprintf(at, 40, "%s", o->json + n);
    pthread_mutex_unlock(&r->w->ctrl->mu);
    return hit;
}

static void ds_memo_set(struct ctl_rec *r, const char *key, int64_t pct, const char *at)
{
    char obj[600];
    char *v = ctl_sprintf("%s|%lld|%s", key, (long long)pct, at ? at : "");
    snprintf(obj, sizeof obj, "%s/%s", r->ns, r->name);
    pthread_mutex_lock(&r->w->ctrl->mu);
    if (v && at)
        ctl_cache_put(&r->w->ctrl->warmed, obj, v, NULL, NULL);
    else {
        free(v);
        ctl_cache_del(&r->w->ctrl->warmed, obj, NULL);
    }
    pthread_mutex_unlock(&r->w->ctrl->mu);
}

/* POSTs the warm. Returns 0, or -1 (logged; r->retry set when it may pass later). */
static int ds_warm_post(struct ctl_rec *r, const char *topic, int64_t pct)
{
    char path[1024];
    struct ctl_bresp b;
    cJSON *body = cJSON_CreateObject();
    cJSON_AddNumberToObject(body, "percent", (double)pct);
    ctl_broker_topic_path(topic, "/warm", path, sizeof path);
    ctl_broker_call(&r->w->bc, "POST", path, body, &b);
    cJSON_Delete(body);
    int rc = 0;
    if (b.status < 200 || b.status >= 300) {
        ctl_warn("TrainingDataset %s/%s: warming %s: HTTP %ld %s", r->ns, r->name, topic, b.status,
                 b.message);
        r->retry = b.status < 0 || b.status >= 500;
        rc = -1;
    }
    ctl_bresp_free(&b);
    return rc;
}

/* Asks the broker to warm pct percent when that has not been asked for the current
 * trigger, and reports it in status.warm. Returns a requeue delay while there is
 * something to watch (the scan, the warming), else 0. */
static int64_t ds_warm(struct ctl_rec *r, const char *topic, int64_t pct, const char *src_state,
                       const struct ctl_selector *sel, bool has_sel)
{
    const cJSON *old = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(r->obj, "status"), "warm");
    struct ctl_warm_trigger want;
    char at[40] = "";
    ds_warm_want(r, sel, has_sel, old, &want);
    const char *okey = ctl_jstr(old, "key"), *oreq = ctl_jstr(old, "requestedAt");
    bool done = okey && oreq && !strcmp(okey, want.uid) &&
                ctl_jint(old, "targetPercent", -1, NULL) == pct;
    if (done)
        snprintf(at, sizeof at, "%s", oreq);
    else
        done = ds_memo_get(r, want.uid, pct, at);
    cJSON *w = cJSON_CreateObject();
    ctl_status_put(r->status, "warm", w);
    cJSON_AddStringToObject(w, "trigger", want.reason);
    if (want.job[0])
        cJSON_AddStringToObject(w, "job", want.job);
    cJSON_AddStringToObject(w, "key", want.uid);
    cJSON_AddNumberToObject(w, "targetPercent", (double)pct);
    if (!done && strcmp(src_state, "ready")) {
        cJSON_AddStringToObject(w, "state", "pending");
        return DS_BUSY_REFRESH_MS; /* the broker is still listing the dataset */
    }
    if (!done) {
        if (ds_warm_post(r, topic, pct) < 0) {
            cJSON_AddStringToObject(w, "state", "failed");
            return 0;
        }
        ctl_rfc3339(at, sizeof at);
        ds_memo_set(r, want.uid, pct, at);
        ctl_rec_event(r, false, "Warming", "warming %lld%% of %s (%s%s%s)", (long long)pct, topic,
                      want.reason, want.job[0] ? " " : "", want.job);
    }
    cJSON_AddStringToObject(w, "requestedAt", at);
    cJSON *prog = ds_get(r, topic, "/warm");
    const char *state = ctl_jstr(prog, "state");
    const cJSON *pc = cJSON_GetObjectItemCaseSensitive(prog, "percent");
    double pv = cJSON_IsNumber(pc) && pc->valuedouble > 0 ? pc->valuedouble : 0;
    cJSON_AddStringToObject(w, "state", state ? state : "unknown");
    cJSON_AddNumberToObject(w, "progressPercent", pv >= 100 ? 100 : (double)(int64_t)pv);
    int64_t again = state && !strcmp(state, "warming") ? DS_BUSY_REFRESH_MS : 0;
    cJSON_Delete(prog);
    return again;
}

/* Deletes the dataset topic (a topic of that name that is not a dataset was never
 * ours), then drops the finalizer. */
static void ds_finalize(struct ctl_rec *r, const char *topic)
{
    char path[1024];
    struct ctl_bresp b;
    if (!ctl_rec_has_finalizer(r))
        return;
    ctl_broker_topic_path(topic, NULL, path, sizeof path);
    ctl_broker_call(&r->w->bc, "GET", path, NULL, &b);
    bool ours = b.status == 200 && cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(b.json, "source"));
    bool ok = b.status == 404 || (b.status == 200 && !ours);
    if (!ours && !ok)
        ctl_rec_broker_error(r, "reading the dataset topic", &b);
    ctl_bresp_free(&b);
    if (!ours) {
        if (ok && ctl_rec_finalizer(r, false) == 0) {
            ds_memo_set(r, "", 0, NULL);
            r->reason[0] = 0;
        }
        return;
    }
    ctl_broker_call(&r->w->bc, "DELETE", path, NULL, &b);
    ok = b.status == 204 || b.status == 200 || b.status == 404;
    if (!ok)
        ctl_rec_broker_error(r, "deleting the dataset topic", &b);
    ctl_bresp_free(&b);
    if (ok && ctl_rec_finalizer(r, false) == 0) {
        ds_memo_set(r, "", 0, NULL);
        r->reason[0] = 0;
    }
}

/* Checks what the schema should have caught. Returns 0, or -1 with the outcome set. */
static int ds_validate(struct ctl_rec *r, const cJSON *spec, const char *topic,
                       struct ctl_selector *sel, bool *has_sel, int64_t *warm, int64_t *gpp)
{
    char err[256];
    const char *uri = ctl_jstr(cJSON_GetObjectItemCaseSensitive(spec, "source"), "uri");
    const cJSON *cons = cJSON_GetObjectItemCaseSensitive(spec, "consumers");
    bool ok = true;
    *warm = ctl_jint(cJSON_GetObjectItemCaseSensitive(spec, "cache"), "warmPercent", 0, &ok);
    *gpp = ctl_jint(cons, "gpusPerConsumer", 1, &ok);
    if (!uri || strncmp(uri, "s3://", 5) || strlen(uri) < 6 || uri[5] == '/') {
        ctl_rec_outcome(r, false, "InvalidSpec", "spec.source.uri must be s3://bucket/prefix");
        return -1;
    }
    if (!ctl_topic_name_valid(topic) || !ok || *warm < 0 || *warm > 100 || *gpp < 1 ||
        ctl_jint(spec, "partitions", 8, &ok) < 1 || !ok) {
        ctl_rec_outcome(r, false, "InvalidSpec", "topic name, partitions (>= 1), warmPercent "
                        "(0..100) or gpusPerConsumer (>= 1) is invalid");
        return -1;
    }
    const cJSON *selj = cJSON_GetObjectItemCaseSensitive(cons, "selector");
    *has_sel = selj != NULL;
    if (selj && ctl_selector_from_json(sel, selj, err, sizeof err) < 0) {
        ctl_rec_outcome(r, false, "InvalidSpec", "spec.consumers.selector: %s", err);
        return -1;
    }
    return 0;
}

/* Counts the running pods the selector picks (the caller frees p->names). */
static void ds_consumers(struct ctl_rec *r, const struct ctl_selector *sel, bool has_sel,
                         int64_t gpp, struct ds_pods *p)
{
    *p = (struct ds_pods){.sel = sel, .names = cJSON_CreateArray(), .gpus_per = gpp};
    if (has_sel) {
        pthread_mutex_lock(&r->w->ctrl->mu);
        ctl_cache_foreach_idx(&r->w->ctrl->cache[CTL_KIND_POD], r->ns, ds_pod_visit, p);
        pthread_mutex_unlock(&r->w->ctrl->mu);
    }
}

/* Sets the outcome from the broker's view of the source, and when to look again. */
static void ds_outcome(struct ctl_rec *r, const char *topic, const cJSON *source, int64_t members,
                       bool sg, int64_t warm_requeue)
{
    const char *state = ctl_jstr(source, "state"), *uri = ctl_jstr(source, "uri");
    r->requeue_ms = DS_STATS_REFRESH_MS;
    if (!cJSON_IsObject(source)) {
        ctl_rec_outcome(r, false, "Conflict", "broker topic %s exists and is not a dataset "
                        "(set spec.topicName to another name)", topic);
        return;
    }
    if (r->retry) {
        ctl_rec_outcome(r, false, "BrokerUnavailable", "the broker did not take the share "
                        "group update or a release call; retrying");
        return;
    }
    if (state && !strcmp(state, "error")) {
        ctl_rec_outcome(r, false, "SourceError", "the broker cannot read %s: %s", uri ? uri : "",
                        ctl_jstr(source, "error") ? ctl_jstr(source, "error") : "unknown error");
        return;
    }
    if (state && !strcmp(state, "scanning")) {
        ctl_rec_outcome(r, false, "Scanning", "the broker is listing %s (%lld objects so far)",
                        uri ? uri : "", (long long)ctl_jint(source, "objects", 0, NULL));
        r->requeue_ms = DS_BUSY_REFRESH_MS;
        return;
    }
    if (warm_requeue > 0)
        r->requeue_ms = warm_requeue;
    ctl_rec_outcome(r, true, "Ready", "dataset topic %s serves %s; %lld consumers%s", topic,
                    uri ? uri : "", (long long)members,
                    sg ? "" : " (the broker has no share-group API yet)");
}

void ctl_dataset_reconcile(struct ctl_rec *r)
{
    char topic[CTL_TOPIC_NAME_MAX + 1], view[300];
    struct ctl_selector sel = {0};
    bool has_sel = false, created = false;
    int64_t warm = 0, gpp = 1;
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(r->obj, "spec");
    const char *tn = ctl_jstr(spec, "topicName");
    snprintf(topic, sizeof topic, "%s", tn && *tn ? tn : r->name);
    if (ctl_rec_deleting(r)) {
        ds_finalize(r, topic);
        return;
    }
    if (ds_validate(r, spec, topic, &sel, &has_sel, &warm, &gpp) < 0)
        goto out;
    if (ctl_rec_finalizer(r, true) != 0) {
        ctl_rec_outcome(r, false, "KubernetesError", "%s", r->message);
        goto out;
    }
    /* the finalizer update replaced r->obj: re-read what pointed into it */
    spec = cJSON_GetObjectItemCaseSensitive(r->obj, "spec");
    const cJSON *sv = cJSON_GetObjectItemCaseSensitive(spec, "sharedView");
    snprintf(view, sizeof view, "%s", ctl_jstr(sv, "name") ? ctl_jstr(sv, "name") : "");
    if (!view[0])
        snprintf(view, sizeof view, "%.249s.shared", topic);
    /* what a failed step does not recompute keeps its value; status.pods in particular
     * keeps a vanished pod until its records have been released */
    ctl_rec_carry_status(r);
    ctl_status_put(r->status, "topicName", cJSON_CreateString(topic));
    ctl_status_put(r->status, "sharedView", cJSON_CreateString(view));
    ctl_status_put(r->status, "shareGroup", cJSON_CreateString(topic));
    struct ds_pods p;
    ds_consumers(r, &sel, has_sel, gpp, &p);
    ctl_status_put(r->status, "consumers", cJSON_CreateNumber((double)p.members));
    const cJSON *old_pods =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r->obj, "status"), "pods");
    cJSON *tj = ds_topic(r, spec, topic, &created);
    if (!tj) {
        cJSON_Delete(p.names);
        goto out;
    }
    if (created)
        ctl_rec_event(r, false, "Created", "created dataset topic %s from %s", topic,
                      ctl_jstr(cJSON_GetObjectItemCaseSensitive(spec, "source"), "uri"));
    bool sg = ds_share_group(r, spec, topic, p.members, p.names, old_pods);
    if (r->retry)
        cJSON_Delete(p.names); /* released nothing for sure: keep the old list */
    else
        ctl_status_put(r->status, "pods", p.names);
    const cJSON *source = cJSON_GetObjectItemCaseSensitive(tj, "source");
    const char *state = ctl_jstr(source, "state");
    int64_t wq = warm > 0 ? ds_warm(r, topic, warm, state ? state : "", &sel, has_sel) : 0;
    ds_stats(r, topic, source);
    ds_outcome(r, topic, source, p.members, sg, wq);
    cJSON_Delete(tj);
out:
    ctl_selector_free(&sel);
}
