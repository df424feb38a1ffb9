/* ctl_ctrl.h: the controller's shared state: configuration, the Kubernetes credentials,
 * one informer cache per kind, one work queue per reconciled kind, the leader flag, and
 * the lock and condition variable that the event loop and the reconcile workers share. */
#ifndef CTL_CTRL_H
#define CTL_CTRL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "ctl_cache.h"
#include "ctl_kube.h"
#include "ctl_metrics.h"
#include "ctl_queue.h"

#define CTL_FINALIZER "sluice.dev/finalizer"
#define CTL_GROUP_VERSION "sluice.dev/v1alpha1"

struct ctl_config {
    const char *kubeconfig;
    const char *namespace; /* NULL or "": every namespace */
    const char *broker_admin;
    const char *broker_token;
    const char *bootstrap; /* written into AgentChannel Secrets */
    const char *metrics_listen;
    const char *pod_name;
    const char *lease_name;
    const char *lease_namespace;
    int resync_seconds;
    bool leader_election;
    int workers;
    double qps, burst;
    int watch_timeout_s;
    int broker_timeout_ms;
    unsigned job_kinds; /* bit (1u << kind) for each training-job kind to watch */
};

struct ctl_ctrl {
    struct ctl_config cfg;
    struct ctl_kauth auth;
    pthread_mutex_t mu; /* guards caches, queues and synced */
    pthread_cond_t cv;  /* signalled when work may be ready or on stop */
    struct ctl_cache cache[CTL_NKINDS];
    struct ctl_queue queue[CTL_NRECONCILED];
    /* TrainingDataset key -> "<warm key>|<percent>|<requestedAt>" of the last warm asked
     * for: the informer cache may not show that status write yet when the dataset is
     * reconciled again, and a warm must not be asked for twice */
    struct ctl_cache warmed;
    bool synced[CTL_NKINDS];
    int leader;   /* atomic: 1 while this replica may act */
    int stopping; /* atomic */
    unsigned rr;  /* round-robin position over the queues */
};

static inline bool ctl_is_leader(struct ctl_ctrl *c)
{
    return __atomic_load_n(&c->leader, __ATOMIC_ACQUIRE) != 0;
}

static inline bool ctl_stopping(struct ctl_ctrl *c)
{
    return __atomic_load_n(&c->stopping, __ATOMIC_ACQUIRE) != 0;
}

/* Resource paths for a kind: the collection, across namespaces or in ns. */
const char *ctl_kind_plural(enum ctl_kind k);
const char *ctl_kind_api(enum ctl_kind k); /* "/apis/sluice.dev/v1alpha1" or "/api/v1" */
/* Parses a comma-separated list of job kinds by plural ("jobs,pytorchjobs,jobsets,
 * workloads"; "" or "none": none) into a mask of (1u << kind). Returns 0, or -1 naming
 * the unknown one in err. */
int ctl_job_kinds_parse(const char *s, unsigned *mask, char *err, size_t errcap);
/* Writes the path of one object (ns/name) with an optional suffix ("/status"). */
int ctl_object_path(enum ctl_kind k, const char *ns, const char *name, const char *suffix,
                    char *buf, size_t cap);

/* Queues key of kind k (caller holds mu). */
void ctl_enqueue_locked(struct ctl_ctrl *c, enum ctl_kind k, const char *key);
/* Queues every cached object of every reconciled kind (caller holds mu). */
void ctl_enqueue_all_locked(struct ctl_ctrl *c);
/* Updates the queue depth gauges (caller holds mu). */
void ctl_update_gauges_locked(struct ctl_ctrl *c);

#endif
