/* ctl_jobs.c: the compact form of training jobs and Kueue Workloads, and their warm
 * triggers (see ctl_jobs.h). */
#include "ctl_jobs.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ctl_util.h"

#define LABEL_MAX 64 /* labels kept per pod template */

static const cJSON *jget(const cJSON *o, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(o, k);
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = jget(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Follows a NULL-terminated path of member names; NULL when any is missing. */
static const cJSON *jpath(const cJSON *o, ...)
{
    va_list ap;
    const char *k;
    va_start(ap, o);
    while (o && (k = va_arg(ap, const char *)))
        o = jget(o, k);
    va_end(ap);
    return o;
}

static bool cond_true(const cJSON *status, const char *type)
{
    const cJSON *c;
    cJSON_ArrayForEach(c, jget(status, "conditions"))
    {
        const char *t = jstr(c, "type"), *s = jstr(c, "status");
        if (t && s && !strcmp(t, type) && !strcmp(s, "True"))
            return true;
    }
    return false;
}

/* A job that ran to its end: Job Complete/Failed, JobSet Completed/Failed, Kubeflow
 * Succeeded/Failed, Workload Finished. */
static bool finished(const cJSON *status)
{
    static const char *const done[] = {"Complete", "Completed", "Succeeded", "Failed",
                                       "Finished", NULL};
    for (int i = 0; done[i]; i++)
        if (cond_true(status, done[i]))
            return true;
    return false;
}

/* Appends one pod's labels: the template's string labels, then the pairs in kv (key,
 * value, ..., NULL), which win. Returns 0, or -1 on OOM. */
static int add_pod(cJSON *pods, const cJSON *tmpl_labels, const char *const *kv)
{
    const cJSON *it;
    int n = 0;
    if (cJSON_GetArraySize(pods) >= CTL_JOB_MAX_TEMPLATES)
        return 0;
    cJSON *l = cJSON_CreateObject();
    if (!l || !cJSON_AddItemToArray(pods, l)) {
        cJSON_Delete(l);
        return -1;
    }
    for (int i = 0; kv[i] && kv[i + 1]; i += 2, n++)
        if (!cJSON_AddStringToObject(l, kv[i], kv[i + 1]))
            return -1;
    cJSON_ArrayForEach(it, tmpl_labels)
    {
        if (n >= LABEL_MAX || !cJSON_IsString(it) || jget(l, it->string))
            continue;
        if (!cJSON_AddStringToObject(l, it->string, it->valuestring))
            return -1;
        n++;
    }
    return 0;
}

static void lower(char *dst, size_t cap, const char *s)
{
    size_t i = 0;
    for (; s && s[i] && i + 1 < cap; i++)
        dst[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]);
    dst[i] = 0;
}

static const cJSON *controller_owner(const cJSON *md)
{
    const cJSON *o, *first = NULL;
    cJSON_ArrayForEach(o, jget(md, "ownerReferences"))
    {
        if (cJSON_IsTrue(jget(o, "controller")))
            return o;
        if (!first)
            first = o;
    }
    return first;
}

/* batch/v1 Job: its own pod template; a child Job of a JobSet stands for its JobSet. */
static int job_pods(cJSON *c, const cJSON *obj, const char *name, const char *uid)
{
    const cJSON *owner = controller_owner(jget(obj, "metadata"));
    const char *ok = jstr(owner, "kind");
    if (ok && !strcmp(ok, "JobSet") && jstr(owner, "name") && jstr(owner, "uid")) {
        cJSON *j = cJSON_GetObjectItemCaseSensitive(c, "job");
        cJSON_ReplaceItemInObjectCaseSensitive(j, "kind", cJSON_CreateString("JobSet"));
        cJSON_ReplaceItemInObjectCaseSensitive(j, "name", cJSON_CreateString(jstr(owner, "name")));
        cJSON_ReplaceItemInObjectCaseSensitive(j, "uid", cJSON_CreateString(jstr(owner, "uid")));
    }
    const char *kv[] = {"batch.kubernetes.io/job-name", name, "job-name", name,
                        "batch.kubernetes.io/controller-uid", uid, "controller-uid", uid, NULL};
    return add_pod(cJSON_GetObjectItemCaseSensitive(c, "pods"),
                   jpath(obj, "spec", "template", "metadata", "labels", NULL), kv);
}

/* Kubeflow PyTorchJob: one template per replica type (Master, Worker). */
static int pytorch_pods(cJSON *c, const cJSON *obj, const char *name)
{
    const cJSON *rt;
    char type[64];
    cJSON_ArrayForEach(rt, jpath(obj, "spec", "pytorchReplicaSpecs", NULL))
    {
        lower(type, sizeof type, rt->string);
        const char *kv[] = {"training.kubeflow.org/job-name", name,
                            "training.kubeflow.org/operator-name", "pytorchjob-controller",
                            "training.kubeflow.org/replica-type", type,
                            !strcmp(type, "master") ? "training.kubeflow.org/job-role" : NULL,
                            "master", NULL};
        if (add_pod(cJSON_GetObjectItemCaseSensitive(c, "pods"),
                    jpath(rt, "template", "metadata", "labels", NULL), kv) < 0)
            return -1;
    }
    return 0;
}

/* JobSet: one template per replicated job. */
static int jobset_pods(cJSON *c, const cJSON *obj, const char *name)
{
    const cJSON *rj;
    cJSON_ArrayForEach(rj, jpath(obj, "spec", "replicatedJobs", NULL))
    {
        const char *rn = jstr(rj, "name");
        const char *kv[] = {"jobset.sigs.k8s.io/jobset-name", name,
                            rn ? "jobset.sigs.k8s.io/replicatedjob-name" : NULL, rn, NULL};
        if (add_pod(cJSON_GetObjectItemCaseSensitive(c, "pods"),
                    jpath(rj, "template", "spec", "template", "metadata", "labels", NULL), kv) < 0)
            return -1;
    }
    return 0;
}

/* Kueue Workload: its owner is the job; each pod set carries that job's pod template, to
 * which the job's controller will add its labels. */
static int workload_pods(cJSON *c, const cJSON *obj)
{
    const cJSON *owner = controller_owner(jget(obj, "metadata")), *ps;
    const char *kind = jstr(owner, "kind"), *on = jstr(owner, "name"), *ou = jstr(owner, "uid");
    const char *av = jstr(owner, "apiVersion");
    char type[64], op[80];
    if (!kind || !on || !ou)
        return 0; /* not a job's Workload: it warms nothing */
    cJSON *j = cJSON_GetObjectItemCaseSensitive(c, "job");
    cJSON_ReplaceItemInObjectCaseSensitive(j, "kind", cJSON_CreateString(kind));
    cJSON_ReplaceItemInObjectCaseSensitive(j, "name", cJSON_CreateString(on));
    cJSON_ReplaceItemInObjectCaseSensitive(j, "uid", cJSON_CreateString(ou));
    lower(op, sizeof op - 12, kind);
    strcat(op, "-controller");
    cJSON_ArrayForEach(ps, jpath(obj, "spec", "podSets", NULL))
    {
        const char *psn = jstr(ps, "name") ? jstr(ps, "name") : "main";
        const cJSON *tl = jpath(ps, "template", "metadata", "labels", NULL);
        lower(type, sizeof type, psn);
        const char *jobkv[] = {"batch.kubernetes.io/job-name", on, "job-name", on,
                               "batch.kubernetes.io/controller-uid", ou, "controller-uid", ou,
                               NULL};
        const char *kfkv[] = {"training.kubeflow.org/job-name", on,
                              "training.kubeflow.org/operator-name", op,
                              "training.kubeflow.org/replica-type", type, NULL};
        const char *jskv[] = {"jobset.sigs.k8s.io/jobset-name", on,
                              "jobset.sigs.k8s.io/replicatedjob-name", psn, NULL};
        const char *none[] = {NULL};
        const char *const *kv = !strcmp(kind, "Job")                      ? jobkv
                                : !strcmp(kind, "JobSet")                 ? jskv
                                : av && !strncmp(av, "kubeflow.org/", 13) ? kfkv
                                                                          : none;
        if (add_pod(cJSON_GetObjectItemCaseSensitive(c, "pods"), tl, kv) < 0)
            return -1;
    }
    return 0;
}

/* The warm reason obj holds now, or NULL. */
static const char *warm_reason(enum ctl_kind k, const cJSON *obj)
{
    const cJSON *md = jget(obj, "metadata"), *spec = jget(obj, "spec"), *st = jget(obj, "status");
    if (jstr(md, "deletionTimestamp") || finished(st))
        return NULL;
    switch (k) {
    case CTL_KIND_JOB:
    case CTL_KIND_JOBSET:
        return cJSON_IsTrue(jget(spec, "suspend")) ? "JobSuspended" : NULL;
    case CTL_KIND_PYTORCHJOB:
        return cJSON_IsTrue(jpath(spec, "runPolicy", "suspend", NULL)) ? "JobSuspended" : NULL;
    case CTL_KIND_WORKLOAD:
        return cJSON_IsObject(jget(st, "admission")) || cond_true(st, "Admitted")
                   ? "WorkloadAdmitted"
                   : NULL;
    default:
        return NULL;
    }
}

cJSON *ctl_job_compact(enum ctl_kind k, const cJSON *obj)
{
    static const char *const kinds[CTL_NKINDS] = {
        [CTL_KIND_JOB] = "Job", [CTL_KIND_PYTORCHJOB] = "PyTorchJob",
        [CTL_KIND_JOBSET] = "JobSet", [CTL_KIND_WORKLOAD] = "Workload"};
    static const char *const keep[] = {"name", "namespace", "uid", "resourceVersion",
                                       "creationTimestamp", NULL};
    const cJSON *md = jget(obj, "metadata");
    const char *name = jstr(md, "name"), *uid = jstr(md, "uid");
    if (!ctl_kind_is_job(k) || !name || !uid)
        return NULL;
    cJSON *c = cJSON_CreateObject(), *m = cJSON_AddObjectToObject(c, "metadata");
    cJSON *j = cJSON_AddObjectToObject(c, "job");
    int rc = m && j && cJSON_AddArrayToObject(c, "pods") &&
                     cJSON_AddStringToObject(j, "kind", kinds[k]) &&
                     cJSON_AddStringToObject(j, "name", name) &&
                     cJSON_AddStringToObject(j, "uid", uid)
                 ? 0
                 : -1;
    for (int i = 0; rc == 0 && keep[i]; i++)
        if (jstr(md, keep[i]) && !cJSON_AddStringToObject(m, keep[i], jstr(md, keep[i])))
            rc = -1;
    if (rc == 0)
        rc = k == CTL_KIND_JOB          ? job_pods(c, obj, name, uid)
             : k == CTL_KIND_PYTORCHJOB ? pytorch_pods(c, obj, name)
             : k == CTL_KIND_JOBSET     ? jobset_pods(c, obj, name)
                                        : workload_pods(c, obj);
    const char *why = warm_reason(k, obj);
    if (rc == 0 && why && !cJSON_AddStringToObject(c, "warm", why))
        rc = -1;
    if (rc < 0) {
        cJSON_Delete(c);
        return NULL;
    }
    return c;
}

bool ctl_job_trigger(const cJSON *compact, const struct ctl_selector *sel,
                     struct ctl_warm_trigger *t)
{
    const char *why = jstr(compact, "warm");
    const cJSON *job = jget(compact, "job"), *pod;
    const char *kind = jstr(job, "kind"), *name = jstr(job, "name"), *uid = jstr(job, "uid");
    if (!why || !kind || !name || !uid)
        return false;
    cJSON_ArrayForEach(pod, jget(compact, "pods"))
    {
        if (!ctl_selector_matches(sel, pod))
            continue;
        const char *ts = jstr(jget(compact, "metadata"), "creationTimestamp");
        snprintf(t->reason, sizeof t->reason, "%s", why);
        snprintf(t->job, sizeof t->job, "%s/%s", kind, name);
        snprintf(t->uid, sizeof t->uid, "%s", uid);
        t->created = ts ? ctl_parse_rfc3339(ts) : 0;
        return true;
    }
    return false;
}

bool ctl_trigger_newer(const struct ctl_warm_trigger *a, const struct ctl_warm_trigger *b)
{
    if (a->created != b->created)
        return a->created > b->created;
    return strcmp(a->uid, b->uid) > 0;
}
