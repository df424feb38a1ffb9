/* ctl_ctrl.c: resource paths and queueing helpers around the shared controller state. */
#include "ctl_ctrl.h"

#include <stdio.h>
#include <string.h>

#include "ctl_util.h"

const char *ctl_kind_plural(enum ctl_kind k)
{
    static const char *const p[CTL_NKINDS] = {"topics", "agentchannels", "trainingdatasets",
                                              "pods"};
    return k < CTL_NKINDS ? p[k] : "unknown";
}

const char *ctl_kind_api(enum ctl_kind k)
{
    return k == CTL_KIND_POD ? "/api/v1" : "/apis/" CTL_GROUP_VERSION;
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
    for (int k = 0; k < CTL_NKINDS; k++)
        ctl_metric_set(&ctl_metrics.cache_objects[k], c->cache[k].count);
}
