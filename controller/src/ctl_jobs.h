/* ctl_jobs.h: training jobs (batch/v1 Job, Kubeflow PyTorchJob, JobSet) and Kueue
 * Workloads as the controller caches them, and which of them ask for a dataset to be
 * warmed before the job's pods start: a job that is suspended (created so, e.g. by
 * Kueue), or whose Workload Kueue has admitted.
 *
 * A job is tied to a TrainingDataset by the dataset's consumer selector, matched against
 * the labels the job's pods will carry: each pod template's own labels plus those the
 * job's controller adds (batch.kubernetes.io/job-name, training.kubeflow.org/job-name,
 * jobset.sigs.k8s.io/jobset-name, ...). A Workload carries its job's pod templates
 * (spec.podSets) and names the job as its controller owner. */
#ifndef CTL_JOBS_H
#define CTL_JOBS_H

#include <stdbool.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#include "ctl_labels.h"
#include "ctl_metrics.h"

#define CTL_JOB_MAX_TEMPLATES 16 /* pod templates kept per object */

/* Reduces a job or Workload of kind k to what the controller needs:
 *   metadata {name, namespace, uid, resourceVersion, creationTimestamp}
 *   job      {kind, name, uid}: the training job (the object itself; a Workload's owner;
 *            a JobSet's child Job counts as its JobSet)
 *   warm     "JobSuspended" or "WorkloadAdmitted" while that holds (absent otherwise,
 *            and once the job finished or is being deleted)
 *   pods     [labels, ...]: the labels of its pods, one object per pod template.
 * Returns a new object, or NULL (not an object of that kind, or out of memory). */
cJSON *ctl_job_compact(enum ctl_kind k, const cJSON *obj);

struct ctl_warm_trigger {
    char reason[24]; /* "JobSuspended", "WorkloadAdmitted" */
    char job[320];   /* "PyTorchJob/resnet" */
    char uid[64];    /* the training job's uid: a dataset warms once per job */
    int64_t created; /* the object's creationTimestamp, seconds since the epoch */
};

/* True when the compact object asks for a warm of a dataset whose consumers sel selects:
 * it holds a warm reason and one of its pod templates matches sel. Fills t. */
bool ctl_job_trigger(const cJSON *compact, const struct ctl_selector *sel,
                     struct ctl_warm_trigger *t);
/* True when a is the trigger to act on rather than b: the newer object, then the greater
 * uid (so that one of several matching jobs is chosen the same way every time). */
bool ctl_trigger_newer(const struct ctl_warm_trigger *a, const struct ctl_warm_trigger *b);

#endif
