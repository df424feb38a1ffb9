/* ctl_leader.c: Lease-based leader election. Expiry is judged by when this replica last
 * saw the lease change (as client-go does), so clock skew between replicas does not
 * matter. */
#include "ctl_leader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl_rec.h"
#include "ctl_util.h"

struct leader {
    struct ctl_ctrl *c;
    struct ctl_kclient kc;
    char path[800], coll[512];
    char seen[512]; /* holder|renewTime|rv last observed */
    int64_t seen_ms, renewed_ms;
};

static void set_leader(struct leader *l, bool on)
{
    struct ctl_ctrl *c = l->c;
    if (ctl_is_leader(c) == on)
        return;
    __atomic_store_n(&c->leader, on ? 1 : 0, __ATOMIC_RELEASE);
    ctl_metric_set(&ctl_metrics.leader, on);
    if (on) {
        ctl_metric_inc(&ctl_metrics.lease_transitions);
        ctl_info("became leader (lease %s held by %s)", l->path, c->cfg.pod_name);
    } else
        ctl_warn("lost the lease; no longer acting");
    pthread_mutex_lock(&c->mu);
    if (on)
        ctl_enqueue_all_locked(c);
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static cJSON *lease_body(struct leader *l, const cJSON *old, const char *holder, bool acquire)
{
    char now[40];
    ctl_rfc3339_micro(now, sizeof now);
    cJSON *b = old ? cJSON_Duplicate(old, 1) : cJSON_CreateObject();
    if (!b)
        return NULL;
    if (!old) {
        cJSON *md = cJSON_AddObjectToObject(b, "metadata");
        cJSON_AddStringToObject(b, "apiVersion", "coordination.k8s.io/v1");
        cJSON_AddStringToObject(b, "kind", "Lease");
        cJSON_AddStringToObject(md, "name", l->c->cfg.lease_name);
        cJSON_AddStringToObject(md, "namespace", l->c->cfg.lease_namespace);
    }
    cJSON *spec = cJSON_GetObjectItemCaseSensitive(b, "spec");
    if (!spec)
        spec = cJSON_AddObjectToObject(b, "spec");
    int64_t trans = ctl_jint(spec, "leaseTransitions", 0, NULL);
    static const char *const keys[] = {"holderIdentity", "leaseDurationSeconds", "renewTime",
                                       "acquireTime", "leaseTransitions", NULL};
    const char *acq = ctl_jstr(spec, "acquireTime");
    char acq_copy[40];
    snprintf(acq_copy, sizeof acq_copy, "%s", acq ? acq : now);
    for (int i = 0; keys[i]; i++)
        cJSON_DeleteItemFromObjectCaseSensitive(spec, keys[i]);
    cJSON_AddStringToObject(spec, "holderIdentity", holder);
    cJSON_AddNumberToObject(spec, "leaseDurationSeconds", CTL_LEASE_DURATION_S);
    cJSON_AddStringToObject(spec, "acquireTime", acquire ? now : acq_copy);
    cJSON_AddStringToObject(spec, "renewTime", now);
    cJSON_AddNumberToObject(spec, "leaseTransitions", (double)(acquire && old ? trans + 1 : trans));
    return b;
}

/* One election round. Returns true while this replica holds the lease. */
static bool lease_round(struct leader *l)
{
    const char *me = l->c->cfg.pod_name;
    cJSON *lease = NULL, *out = NULL, *body = NULL;
    bool held = false;
    long st = ctl_kube_json(&l->kc, "GET", l->path, NULL, NULL, &lease);
    int64_t now = ctl_now_ms();
    if (st == 404) {
        body = lease_body(l, NULL, me, true);
        st = ctl_kube_json(&l->kc, "POST", l->coll, body, NULL, &out);
        held = st == 201 || st == 200;
        goto out;
    }
    if (st != 200 || !lease)
        goto out;
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(lease, "spec");
    const char *holder = ctl_jstr(spec, "holderIdentity");
    const char *renew = ctl_jstr(spec, "renewTime");
    const char *rv = ctl_jstr(cJSON_GetObjectItemCaseSensitive(lease, "metadata"), "resourceVersion");
    int64_t dur = ctl_jint(spec, "leaseDurationSeconds", CTL_LEASE_DURATION_S, NULL);
    char seen[512];
    snprintf(seen, sizeof seen, "%.200s|%.64s|%.64s", holder ? holder : "", renew ? renew : "",
             rv ? rv : "");
    if (strcmp(seen, l->seen)) {
        snprintf(l->seen, sizeof l->seen, "%s", seen);
        l->seen_ms = now;
    }
    bool mine = holder && !strcmp(holder, me);
    bool free_ = !holder || !*holder || now - l->seen_ms > dur * 1000;
    if (!mine && !free_)
        goto out;
    if (mine && now - l->renewed_ms < CTL_LEASE_RENEW_MS - 500 && ctl_is_leader(l->c)) {
        held = true; /* not yet time to renew */
        goto out;
    }
    body = lease_body(l, lease, me, !mine);
    st = ctl_kube_json(&l->kc, "PUT", l->path, body, NULL, &out);
    held = st == 200;
    if (st == 409)
        ctl_debug("lease update conflicted; someone else moved first");
out:
    if (held)
        l->renewed_ms = now;
    cJSON_Delete(lease);
    cJSON_Delete(out);
    cJSON_Delete(body);
    return held;
}

/* Gives the lease up on shutdown so that another replica need not wait for expiry. */
static void lease_release(struct leader *l)
{
    cJSON *lease = NULL, *out = NULL;
    if (ctl_kube_json(&l->kc, "GET", l->path, NULL, NULL, &lease) == 200) {
        const char *holder = ctl_jstr(cJSON_GetObjectItemCaseSensitive(lease, "spec"), "holderIdentity");
        if (holder && !strcmp(holder, l->c->cfg.pod_name)) {
            cJSON *body = lease_body(l, lease, "", false);
            long st = ctl_kube_json(&l->kc, "PUT", l->path, body, NULL, &out);
            ctl_info("released the lease (HTTP %ld)", st);
            cJSON_Delete(body);
        }
    }
    cJSON_Delete(lease);
    cJSON_Delete(out);
}

static void sleep_ms(struct ctl_ctrl *c, int64_t ms)
{
    while (ms > 0 && !ctl_stopping(c)) {
        struct timespec ts = {0, (ms > 100 ? 100 : ms) * 1000000};
        nanosleep(&ts, NULL);
        ms -= 100;
    }
}

static void *leader_main(void *arg)
{
    struct leader *l = arg;
    struct ctl_ctrl *c = l->c;
    while (!ctl_stopping(c)) {
        bool held = lease_round(l);
        if (held)
            set_leader(l, true);
        else if (ctl_is_leader(c) && ctl_now_ms() - l->renewed_ms > CTL_LEASE_DEADLINE_MS)
            set_leader(l, false);
        else if (!held && ctl_is_leader(c)) {
            /* someone else holds it now (our renew conflicted and they are holder) */
            cJSON *lease = NULL;
            if (ctl_kube_json(&l->kc, "GET", l->path, NULL, NULL, &lease) == 200) {
                const char *h = ctl_jstr(cJSON_GetObjectItemCaseSensitive(lease, "spec"), "holderIdentity");
                if (h && *h && strcmp(h, c->cfg.pod_name))
                    set_leader(l, false);
            }
            cJSON_Delete(lease);
        }
        sleep_ms(c, ctl_is_leader(c) ? CTL_LEASE_RENEW_MS : CTL_LEASE_RETRY_MS);
    }
    if (ctl_is_leader(c)) {
        __atomic_store_n(&c->leader, 0, __ATOMIC_RELEASE);
        lease_release(l);
    }
    ctl_kclient_free(&l->kc);
    free(l);
    return NULL;
}

int ctl_leader_start(struct ctl_ctrl *c, pthread_t *t)
{
    struct leader *l = calloc(1, sizeof *l);
    if (!l)
        return -1;
    l->c = c;
    snprintf(l->coll, sizeof l->coll, "/apis/coordination.k8s.io/v1/namespaces/%s/leases",
             c->cfg.lease_namespace);
    snprintf(l->path, sizeof l->path, "%s/%s", l->coll, c->cfg.lease_name);
    if (ctl_kclient_init(&l->kc, &c->auth, 4000) < 0 || pthread_create(t, NULL, leader_main, l)) {
        ctl_kclient_free(&l->kc);
        free(l);
        return -1;
    }
    return 0;
}

void ctl_leader_join(pthread_t t)
{
    pthread_join(t, NULL);
}
