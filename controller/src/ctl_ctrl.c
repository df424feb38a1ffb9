/* ctl_ctrl.c: resource paths and queueing helpers around the shared controller state. */
#include "ctl_ctrl.h"

#include <stdio.h>
#include <string.h>

#include "ctl_util.h"

static const char *const plurals[CTL_NKINDS] = {
    "topics", "agentchannels", "trainingdatasets", "pods", "jobs", "pytorchjobs", "jobsets",
    "workloads"};
static const char *const apis[CTL_NKINDS] = {
    "/apis/" CTL_GROUP_VERSION,   "/apis/" CTL_GROUP_VERSION,     "/apis/" CTL_GROUP_VERSION,
    "/api/v1",                    "/apis/batch/v1",               "/apis/kubeflow.org/v1",
    "/apis/jobset.x-k8s.io/v1alpha2", "/apis/kueue.x-k8s.io/v1beta1"};

const char *ctl_kind_plural(enum ctl_kind k)
{
    return k < CTL_NKINDS ? plurals[k] : "unknown";
}

const char *ctl_kind_api(enum ctl_kind k)
{
    return k < CTL_NKINDS ? apis[k] : "/api/v1";
}

int ctl_job_kinds_parse(const char *s, unsigned *mask, char *err, size_t errcap)
{
    *mask = 0;
    while (s && *s) {
        size_t n = strcspn(s, ", ");
        int k = CTL_KIND_JOB;
        while (k < CTL_NKINDS && (strlen(plurals[k]) != n || strncmp(plurals[k], s, n)))
            k++;
        if (k < CTL_NKINDS)
            *mask |= 1u << k;
        else if (n && !(n == 4 && !strncmp(s, "none", 4))) {
            snprintf(err, errcap, "unknown job kind %.*s (jobs, pytorchjobs, jobsets, workloads)",
                     (int)(n > 64 ? 64 : n), s);
            return -1;
        }
        s += n;
        s += strspn(s, ", ");
    }
    return 0;
}

int ctl_object_path(enum ctl_kind k, const char *ns, const char *name, const char *suffix,
                    char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s/namespaces/%s/%s/%s%s", ctl_kind_api(k), ns,
                     ctl_kind_plural(k), name, suffix ? suffix : "");
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

void ctl_enqueue_locked(struct ctl_ctrl *c, enum ctl_kind k, const char *key)
{
    if (k >= CTL_NRECONCILED)
        return;
    if (ctl_queue_add(&c->queue[k], key, ctl_now_ms()) < 0)
        ctl_error("out of memory queueing %s %s", ctl_kind_name(k), key);
}

struct enq_all {
    struct ctl_ctrl *c;
    enum ctl_kind k;
};

static void enq_one(void *arg, const struct ctl_obj *o)
{
    struct enq_all *e = arg;
    ctl_enqueue_locked(e->c, e->k, o->key);
}

void ctl_enqueue_all_locked(struct ctl_ctrl *c)
{
    for (int k = 0; k < CTL_NRECONCILED; k++) {
        struct enq_all e = {c, (enum ctl_kind)k};
        ctl_cache_foreach(&c->cache[k], enq_one, &e);
    }
    ctl_update_gauges_locked(c);
    pthread_cond_broadcast(&c->cv);
}

void ctl_update_gauges_locked(struct ctl_ctrl *c)
{
    for (int k = 0; k < CTL_NRECONCILED; k++)
        ctl_metric_set(&ctl_metrics.queue_depth[k], ctl_queue_len(&c->queue[k]));
    for (int k = 0; k < CTL_NKINDS; k++) {
        ctl_metric_set(&ctl_metrics.cache_objects[k], c->cache[k].count);
        ctl_metric_set(&ctl_metrics.cache_bytes[k], c->cache[k].bytes);
    }
}
