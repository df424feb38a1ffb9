/* ctl_dataset.c: TrainingDataset resources. Each creates a read-only dataset topic with
 * a shared view, warms its cache, and keeps the share group's expected members in step
 * with the training job's running pods (and their nvidia.com/gpu requests); a pod that
 * disappears has its in-flight records released. The share group id is the topic name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_labels.h"
#include "ctl_rec.h"
#include "ctl_topic.h"
#include "ctl_util.h"

#define DS_MAX_PODS 4096
#define DS_STATS_REFRESH_MS 30000

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

/* Creates the dataset topic when missing. Returns 0 when it exists, -1 (outcome set). */
static int ds_topic(struct ctl_rec *r, const cJSON *spec, const char *topic, bool *created)
{
    char path[1024];
    struct ctl_bresp b;
    *created = false;
    ctl_broker_topic_path(topic, NULL, path, sizeof path);
    ctl_broker_call(&r->w->bc, "GET", path, NULL, &b);
    if (b.status == 200) {
        ctl_bresp_free(&b);
        return 0;
    }
    if (b.status != 404) {
        ctl_rec_broker_error(r, "reading the dataset topic", &b);
        ctl_bresp_free(&b);
        return -1;
    }
    ctl_bresp_free(&b);
    cJSON *src = ds_source(r, cJSON_GetObjectItemCaseSensitive(spec, "source"));
    if (!src)
        return -1;
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
    cJSON_AddItemToObject(body, "shared", sh);
    ctl_broker_call(&r->w->bc, "POST", "/v1/topics", body, &b);
    cJSON_Delete(body);
    int rc = 0;
    if (b.status == 201 || b.status == 200)
        *created = true;
    else if (b.status != 409) {
        ctl_rec_broker_error(r, "creating the dataset topic", &b);
        rc = -1;
    }
    ctl_bresp_free(&b);
    return rc;
}

/* Warms the cache to warmPercent. Best effort; a 404/400 means the broker cannot. */
static void ds_warm(struct ctl_rec *r, const char *topic, int64_t pct)
{
    char path[1024];
    struct ctl_bresp b;
    ctl_broker_topic_path(topic, "/warm", path, sizeof path);
    cJSON *body = cJSON_CreateObject();
    cJSON_AddNumberToObject(body, "percent", (double)pct);
    ctl_broker_call(&r->w->bc, "POST", path, body, &b);
    cJSON_Delete(body);
    if (b.status >= 200 && b.status < 300)
        ctl_rec_event(r, false, "Warming", "warming %lld%% of %s", (long long)pct, topic);
    ctl_bresp_free(&b);
}

/* Tells the broker the share group's size, and releases vanished pods. Returns false
 * when the broker does not serve share groups. */
static bool ds_share_group(struct ctl_rec *r, const cJSON *spec, const char *topic,
                           int64_t members, const cJSON *pods, const cJSON *old_pods,
                           bool changed)
{
    char esc[600], path[1400];
    struct ctl_bresp b;
    bool supported = true;
    ctl_path_escape(topic, esc, sizeof esc);
    const cJSON *sv = cJSON_GetObjectItemCaseSensitive(spec, "sharedView"), *it;
    if (changed) {
        snprintf(path, sizeof path, "/v1/share-groups/%s", esc);
        cJSON *body = cJSON_CreateObject();
        cJSON_AddStringToObject(body, "topic", topic);
        cJSON_AddNumberToObject(body, "expected_members", (double)members);
        cJSON_AddNumberToObject(body, "virtual_partitions", (double)ctl_jint(sv, "virtualPartitions", 256, NULL));
        cJSON_AddNumberToObject(body, "lock_ms", (double)ctl_jint(sv, "lockMs", 30000, NULL));
        ctl_broker_call(&r->w->bc, "PUT", path, body, &b);
        cJSON_Delete(body);
        supported = b.status != 404;
        if (b.status < 0 || b.status >= 500)
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
        ctl_bresp_free(&b);
    }
    return supported;
}

/* Reads the topic's stats into the status: bytes, objects, cachedPercent, s3Requests. */
static void ds_stats(struct ctl_rec *r, const char *topic)
{
    char path[1024];
    struct ctl_bresp b;
    ctl_broker_topic_path(topic, NULL, path, sizeof path);
    ctl_broker_call(&r->w->bc, "GET", path, NULL, &b);
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(b.json, "stats");
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(b.json, "source");
    if (b.status == 200) {
        cJSON_AddNumberToObject(r->status, "bytes", (double)ctl_jint(st, "bytes", 0, NULL));
        int64_t objs = ctl_jint(st, "objects", -1, NULL);
        if (objs < 0)
            objs = ctl_jint(src, "objects", 0, NULL);
        cJSON_AddNumberToObject(r->status, "objects", (double)objs);
    }
    ctl_bresp_free(&b);
    ctl_broker_topic_path(topic, "/cache", path, sizeof path);
    ctl_broker_call(&r->w->bc, "GET", path, NULL, &b);
    if (b.status == 200) {
        const cJSON *s3 = cJSON_GetObjectItemCaseSensitive(b.json, "s3");
        cJSON_AddNumberToObject(r->status, "s3Requests", (double)ctl_jint(s3, "requests", 0, NULL));
        int64_t pct = ctl_jint(b.json, "cached_percent", -1, NULL);
        if (pct >= 0 && pct <= 100)
            cJSON_AddNumberToObject(r->status, "cachedPercent", (double)pct);
    }
    ctl_bresp_free(&b);
}

void ctl_dataset_reconcile(struct ctl_rec *r)
{
    char err[256], topic[CTL_TOPIC_NAME_MAX + 1];
    struct ctl_selector sel = {0};
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(r->obj, "spec");
    const char *tn = ctl_jstr(spec, "topicName");
    snprintf(topic, sizeof topic, "%s", tn && *tn ? tn : r->name);
    if (ctl_rec_deleting(r)) {
        if (!ctl_rec_has_finalizer(r))
            return;
        char path[1024];
        struct ctl_bresp b;
        ctl_broker_topic_path(topic, NULL, path, sizeof path);
        ctl_broker_call(&r->w->bc, "DELETE", path, NULL, &b);
        bool ok = b.status == 204 || b.status == 200 || b.status == 404;
        if (!ok)
            ctl_rec_broker_error(r, "deleting the dataset topic", &b);
        ctl_bresp_free(&b);
        if (ok && ctl_rec_finalizer(r, false) == 0)
            r->reason[0] = 0;
        return;
    }
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(spec, "source");
    const char *uri = ctl_jstr(src, "uri");
    const cJSON *cons = cJSON_GetObjectItemCaseSensitive(spec, "consumers");
    bool ok = true;
    int64_t warm = ctl_jint(cJSON_GetObjectItemCaseSensitive(spec, "cache"), "warmPercent", 0, &ok);
    int64_t gpp = ctl_jint(cons, "gpusPerConsumer", 1, &ok);
    if (!uri || strncmp(uri, "s3://", 5) || strlen(uri) < 6 || uri[5] == '/') {
        ctl_rec_outcome(r, false, "InvalidSpec", "spec.source.uri must be s3://bucket/prefix");
        return;
    }
    if (!ctl_topic_name_valid(topic) || !ok || warm < 0 || warm > 100 || gpp < 1 ||
        ctl_jint(spec, "partitions", 8, &ok) < 1 || !ok) {
        ctl_rec_outcome(r, false, "InvalidSpec", "topic name, partitions (>= 1), warmPercent "
                        "(0..100) or gpusPerConsumer (>= 1) is invalid");
        return;
    }
    const cJSON *selj = cJSON_GetObjectItemCaseSensitive(cons, "selector");
    if (selj && ctl_selector_from_json(&sel, selj, err, sizeof err) < 0) {
        ctl_rec_outcome(r, false, "InvalidSpec", "spec.consumers.selector: %s", err);
        return;
    }
    if (ctl_rec_finalizer(r, true) != 0) {
        ctl_rec_outcome(r, false, "KubernetesError", "%s", r->message);
        goto out;
    }
    /* the finalizer update replaced r->obj: re-read what pointed into it */
    spec = cJSON_GetObjectItemCaseSensitive(r->obj, "spec");
    src = cJSON_GetObjectItemCaseSensitive(spec, "source");
    uri = ctl_jstr(src, "uri");
    if (!uri) {
        ctl_rec_outcome(r, false, "InvalidSpec", "spec.source.uri is missing");
        goto out;
    }
    cJSON_AddStringToObject(r->status, "topicName", topic);
    const cJSON *sv = cJSON_GetObjectItemCaseSensitive(spec, "sharedView");
    char view[300];
    snprintf(view, sizeof view, "%s", ctl_jstr(sv, "name") ? ctl_jstr(sv, "name") : "");
    if (!view[0])
        snprintf(view, sizeof view, "%s.shared", topic);
    cJSON_AddStringToObject(r->status, "sharedView", view);

    /* pods first: expected members follow the job even while the topic is pending */
    struct ds_pods p = {.sel = &sel, .names = cJSON_CreateArray(), .gpus_per = gpp};
    if (selj) {
        pthread_mutex_lock(&r->w->ctrl->mu);
        ctl_cache_foreach_idx(&r->w->ctrl->cache[CTL_KIND_POD], r->ns, ds_pod_visit, &p);
        pthread_mutex_unlock(&r->w->ctrl->mu);
    }
    const cJSON *ost = cJSON_GetObjectItemCaseSensitive(r->obj, "status");
    const cJSON *old_pods = cJSON_GetObjectItemCaseSensitive(ost, "pods");
    int64_t old_members = ctl_jint(ost, "consumers", -1, NULL);
    cJSON_AddNumberToObject(r->status, "consumers", (double)p.members);
    cJSON_AddItemToObject(r->status, "pods", p.names);

    bool created = false;
    int trc = ds_topic(r, spec, topic, &created);
    bool sg = ds_share_group(r, spec, topic, p.members, p.names, old_pods,
                             p.members != old_members || created);
    if (trc < 0)
        goto out;
    if (created) {
        ctl_rec_event(r, false, "Created", "created dataset topic %s from %s", topic, uri);
        if (warm > 0)
            ds_warm(r, topic, warm);
    }
    ds_stats(r, topic);
    ctl_rec_outcome(r, true, "Ready", "dataset topic %s serves %s; %lld consumers%s", topic, uri,
                    (long long)p.members, sg ? "" : " (the broker has no share-group API yet)");
    r->requeue_ms = DS_STATS_REFRESH_MS;
out:
    ctl_selector_free(&sel);
}
