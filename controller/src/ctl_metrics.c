/* ctl_metrics.c: Prometheus text for the controller's own metrics. */
#include "ctl_metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ctl_metrics ctl_metrics;

static const char *const kind_names[CTL_NKINDS] = {
    "Topic", "AgentChannel", "TrainingDataset", "Pod", "Job", "PyTorchJob", "JobSet", "Workload"};
static const char *const result_names[CTL_NRESULTS] = {"success", "error", "requeue"};
static const char *const target_names[CTL_NTARGETS] = {"kubernetes", "broker"};
static const char *const method_names[CTL_NMETHODS] = {"GET", "POST", "PUT", "PATCH", "DELETE",
                                                       "other"};
static const char *const code_names[CTL_NCODES] = {"error", "2xx", "3xx", "4xx", "5xx", "1xx"};
static const char *const wr_names[CTL_NWR] = {"reconnect", "gone", "error"};

const char *ctl_kind_name(enum ctl_kind k)
{
    return k < CTL_NKINDS ? kind_names[k] : "unknown";
}

void ctl_metric_inc(uint64_t *c)
{
    __atomic_add_fetch(c, 1, __ATOMIC_RELAXED);
}

void ctl_metric_set(uint64_t *g, uint64_t v)
{
    __atomic_store_n(g, v, __ATOMIC_RELAXED);
}

void ctl_metric_reconcile(enum ctl_kind k, enum ctl_result r)
{
    ctl_metric_inc(&ctl_metrics.reconciles[k][r]);
}

void ctl_metric_request(enum ctl_target t, const char *method, long status)
{
    int m = 0;
    while (m < CTL_NMETHODS - 1 && strcmp(method_names[m], method))
        m++;
    int c = status <= 0 ? 0 : status < 200 ? 5 : status < 300 ? 1 : status < 400 ? 2
                                                : status < 500 ? 3 : 4;
    ctl_metric_inc(&ctl_metrics.requests[t][m][c]);
}

void ctl_metric_watch_restart(enum ctl_kind k, enum ctl_watch_reason r)
{
    ctl_metric_inc(&ctl_metrics.watch_restarts[k][r]);
}

static uint64_t ld(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

struct mbuf {
    char *p;
    size_t len, cap;
    int oom;
};

static void mb_printf(struct mbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mb_printf(struct mbuf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || b->oom)
        return;
    if ((size_t)n >= sizeof tmp)
        n = sizeof tmp - 1;
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 8192;
        while (nc < b->len + (size_t)n + 1)
            nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, tmp, (size_t)n + 1);
    b->len += (size_t)n;
}

char *ctl_metrics_render(size_t *len)
{
    struct mbuf b = {0};
    mb_printf(&b, "# HELP sluice_controller_reconciles_total Reconciles by kind and result.\n"
                  "# TYPE sluice_controller_reconciles_total counter\n");
    for (int k = 0; k < CTL_NRECONCILED; k++)
        for (int r = 0; r < CTL_NRESULTS; r++)
            mb_printf(&b, "sluice_controller_reconciles_total{kind=\"%s\",result=\"%s\"} %llu\n",
                      kind_names[k], result_names[r],
                      (unsigned long long)ld(&ctl_metrics.reconciles[k][r]));
    mb_printf(&b, "# HELP sluice_controller_api_requests_total Requests to the Kubernetes API "
                  "and the broker admin API.\n"
                  "# TYPE sluice_controller_api_requests_total counter\n");
    for (int t = 0; t < CTL_NTARGETS; t++)
        for (int m = 0; m < CTL_NMETHODS; m++)
            for (int c = 0; c < CTL_NCODES; c++) {
                uint64_t v = ld(&ctl_metrics.requests[t][m][c]);
                if (v)
                    mb_printf(&b,
                              "sluice_controller_api_requests_total{target=\"%s\",method=\"%s\","
                              "code=\"%s\"} %llu\n",
                              target_names[t], method_names[m], code_names[c],
                              (unsigned long long)v);
            }
    mb_printf(&b, "# HELP sluice_controller_watch_restarts_total Watches restarted, by reason.\n"
                  "# TYPE sluice_controller_watch_restarts_total counter\n");
    for (int k = 0; k < CTL_NKINDS; k++)
        for (int r = 0; r < CTL_NWR; r++)
            mb_printf(&b, "sluice_controller_watch_restarts_total{kind=\"%s\",reason=\"%s\"} %llu\n",
                      kind_names[k], wr_names[r],
                      (unsigned long long)ld(&ctl_metrics.watch_restarts[k][r]));
    mb_printf(&b, "# HELP sluice_controller_watch_events_total Watch events received.\n"
                  "# TYPE sluice_controller_watch_events_total counter\n");
    for (int k = 0; k < CTL_NKINDS; k++)
        mb_printf(&b, "sluice_controller_watch_events_total{kind=\"%s\"} %llu\n", kind_names[k],
                  (unsigned long long)ld(&ctl_metrics.watch_events[k]));
    mb_printf(&b, "# HELP sluice_controller_queue_depth Keys waiting in the work queue.\n"
                  "# TYPE sluice_controller_queue_depth gauge\n");
    for (int k = 0; k < CTL_NRECONCILED; k++)
        mb_printf(&b, "sluice_controller_queue_depth{kind=\"%s\"} %llu\n", kind_names[k],
                  (unsigned long long)ld(&ctl_metrics.queue_depth[k]));
    mb_printf(&b, "# HELP sluice_controller_cache_objects Objects in the informer caches.\n"
                  "# TYPE sluice_controller_cache_objects gauge\n");
    for (int k = 0; k < CTL_NKINDS; k++)
        mb_printf(&b, "sluice_controller_cache_objects{kind=\"%s\"} %llu\n", kind_names[k],
                  (unsigned long long)ld(&ctl_metrics.cache_objects[k]));
    mb_printf(&b, "# HELP sluice_controller_cache_bytes Bytes of object JSON and keys in the "
                  "informer caches.\n"
                  "# TYPE sluice_controller_cache_bytes gauge\n");
    for (int k = 0; k < CTL_NKINDS; k++)
        mb_printf(&b, "sluice_controller_cache_bytes{kind=\"%s\"} %llu\n", kind_names[k],
                  (unsigned long long)ld(&ctl_metrics.cache_bytes[k]));
    mb_printf(&b, "# HELP sluice_controller_leader 1 while this replica holds the lease.\n"
                  "# TYPE sluice_controller_leader gauge\nsluice_controller_leader %llu\n",
              (unsigned long long)ld(&ctl_metrics.leader));
    mb_printf(&b, "# TYPE sluice_controller_lease_transitions_total counter\n"
                  "sluice_controller_lease_transitions_total %llu\n",
              (unsigned long long)ld(&ctl_metrics.lease_transitions));
    mb_printf(&b, "# TYPE sluice_controller_events_posted_total counter\n"
                  "sluice_controller_events_posted_total %llu\n",
              (unsigned long long)ld(&ctl_metrics.events_posted));
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
