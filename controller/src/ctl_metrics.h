/* ctl_metrics.h: the controller's counters and gauges, rendered as Prometheus text on
 * /metrics. Counters are updated with atomics from any thread. */
#ifndef CTL_METRICS_H
#define CTL_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The reconciled kinds come first (they have work queues), then what they watch: pods,
 * and the training jobs and Kueue Workloads that ask for a dataset to be warmed. */
enum ctl_kind {
    CTL_KIND_TOPIC,
    CTL_KIND_AGENT,
    CTL_KIND_DATASET,
    CTL_KIND_POD,
    CTL_KIND_JOB,        /* batch/v1 Job */
    CTL_KIND_PYTORCHJOB, /* kubeflow.org/v1 PyTorchJob */
    CTL_KIND_JOBSET,     /* jobset.x-k8s.io/v1alpha2 JobSet */
    CTL_KIND_WORKLOAD,   /* kueue.x-k8s.io/v1beta1 Workload */
    CTL_NKINDS
};
#define CTL_NRECONCILED 3 /* Topic, AgentChannel, TrainingDataset: the kinds with queues */

/* True for the training-job kinds (Job, PyTorchJob, JobSet, Workload): watched only
 * when configured, and a cluster that does not serve them (404) or does not let us read
 * them (403) is not an error. */
static inline bool ctl_kind_is_job(enum ctl_kind k)
{
    return k >= CTL_KIND_JOB && k < CTL_NKINDS;
}
enum ctl_result { CTL_RES_SUCCESS, CTL_RES_ERROR, CTL_RES_REQUEUE, CTL_NRESULTS };
enum ctl_target { CTL_TGT_KUBE, CTL_TGT_BROKER, CTL_NTARGETS };
enum ctl_watch_reason { CTL_WR_RECONNECT, CTL_WR_GONE, CTL_WR_ERROR, CTL_NWR };

#define CTL_NMETHODS 6 /* GET POST PUT PATCH DELETE other */
#define CTL_NCODES 6   /* none 2xx 3xx 4xx 5xx 409/410 are within 4xx */

struct ctl_metrics {
    uint64_t reconciles[CTL_NKINDS][CTL_NRESULTS];
    uint64_t requests[CTL_NTARGETS][CTL_NMETHODS][CTL_NCODES];
    uint64_t watch_restarts[CTL_NKINDS][CTL_NWR];
    uint64_t watch_events[CTL_NKINDS];
    uint64_t queue_depth[CTL_NKINDS];   /* gauge */
    uint64_t cache_objects[CTL_NKINDS]; /* gauge */
    uint64_t cache_bytes[CTL_NKINDS];   /* gauge: JSON and keys the cache holds */
    uint64_t leader;                    /* gauge: 1 while holding the lease */
    uint64_t lease_transitions;
    uint64_t events_posted;
};

extern struct ctl_metrics ctl_metrics;

const char *ctl_kind_name(enum ctl_kind k);
void ctl_metric_reconcile(enum ctl_kind k, enum ctl_result r);
void ctl_metric_request(enum ctl_target t, const char *method, long status);
void ctl_metric_watch_restart(enum ctl_kind k, enum ctl_watch_reason r);
void ctl_metric_set(uint64_t *gauge, uint64_t v);
void ctl_metric_inc(uint64_t *counter);
/* Renders every metric into a fresh string (free it); NULL on OOM. */
char *ctl_metrics_render(size_t *len);

#endif
