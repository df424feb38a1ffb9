/* ctl_worker.c: the reconcile worker pool. */
#include "ctl_worker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl_util.h"

static void (*const reconcilers[CTL_NRECONCILED])(struct ctl_rec *) = {
    ctl_topic_reconcile, ctl_agent_reconcile, ctl_dataset_reconcile};

enum ctl_result ctl_reconcile_key(struct ctl_worker *w, enum ctl_kind k, const char *key,
                                  char *json, int64_t *requeue_ms)
{
    struct ctl_rec r;
    *requeue_ms = 0;
    if (!json)
        return CTL_RES_SUCCESS; /* deleted: the finalizer already cleaned up */
    cJSON *obj = cJSON_Parse(json);
    if (!obj || ctl_rec_init(&r, w, k, obj) < 0) {
        ctl_error("%s %s: cannot read the cached object", ctl_kind_name(k), key);
        if (!obj)
            return CTL_RES_ERROR;
        ctl_rec_free(&r);
        return CTL_RES_ERROR;
    }
    reconcilers[k](&r);
    bool deleting = ctl_rec_deleting(&r);
    if (r.reason[0] && (!deleting || ctl_rec_has_finalizer(&r))) {
        if (r.retry || !r.ready)
            ctl_info("%s %s: %s: %s", r.kind_name, key, r.reason, r.message);
        ctl_rec_write_status(&r);
    }
    enum ctl_result res = r.retry ? CTL_RES_ERROR : r.requeue_ms ? CTL_RES_REQUEUE : CTL_RES_SUCCESS;
    *requeue_ms = r.requeue_ms;
    ctl_rec_free(&r);
    return res;
}

/* True once everything a TrainingDataset reads is listed: pods and the job kinds. */
static bool dataset_inputs_synced(const struct ctl_ctrl *c)
{
    for (int k = CTL_KIND_POD; k < CTL_NKINDS; k++)
        if (!c->synced[k])
            return false;
    return true;
}

/* Takes the next key, visiting the queues round-robin. Caller holds mu. */
static char *take(struct ctl_ctrl *c, enum ctl_kind *kind, int64_t *wait_ms)
{
    int64_t now = ctl_now_ms(), best = 1000;
    for (int i = 0; i < CTL_NRECONCILED; i++) {
        int k = (int)((c->rr + (unsigned)i) % CTL_NRECONCILED);
        int64_t wt;
        if (!c->synced[k] || (k == CTL_KIND_DATASET && !dataset_inputs_synced(c)))
            continue;
        char *key = ctl_queue_get(&c->queue[k], now, &wt);
        if (key) {
            c->rr = (unsigned)k + 1;
            *kind = (enum ctl_kind)k;
            return key;
        }
        if (wt >= 0 && wt < best)
            best = wt;
    }
    *wait_ms = best;
    return NULL;
}

static void timed_wait(struct ctl_ctrl *c, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ms < 1)
        ms = 1;
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&c->cv, &c->mu, &ts);
}

static void *worker_main(void *arg)
{
    struct ctl_worker *w = arg;
    struct ctl_ctrl *c = w->ctrl;
    pthread_mutex_lock(&c->mu);
    while (!ctl_stopping(c)) {
        enum ctl_kind k = CTL_KIND_TOPIC;
        int64_t wait = 1000;
        char *key = ctl_is_leader(c) ? take(c, &k, &wait) : NULL;
        if (!key) {
            timed_wait(c, wait);
            continue;
        }
        char *json = ctl_cache_get(&c->cache[k], key);
        pthread_mutex_unlock(&c->mu);
        int64_t requeue = 0;
        enum ctl_result res = ctl_reconcile_key(w, k, key, json, &requeue);
        free(json);
        ctl_metric_reconcile(k, res);
        pthread_mutex_lock(&c->mu);
        int64_t now = ctl_now_ms();
        if (res == CTL_RES_ERROR)
            ctl_queue_add_rate_limited(&c->queue[k], key, now);
        else {
            ctl_queue_forget(&c->queue[k], key);
            if (requeue > 0)
                ctl_queue_add_after(&c->queue[k], key, requeue, now);
        }
        ctl_queue_done(&c->queue[k], key, now);
        ctl_update_gauges_locked(c);
        free(key);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

int ctl_workers_start(struct ctl_ctrl *c, struct ctl_worker **out, int n)
{
    struct ctl_worker *ws = calloc((size_t)n, sizeof *ws);
    if (!ws)
        return -1;
    for (int i = 0; i < n; i++) {
        ws[i].ctrl = c;
        ws[i].id = i;
        if (ctl_kclient_init(&ws[i].kc, &c->auth, 30000) < 0 ||
            ctl_bclient_init(&ws[i].bc, c->cfg.broker_admin, c->cfg.broker_token,
                             c->cfg.broker_timeout_ms) < 0 ||
            pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]) != 0) {
            ctl_error("cannot start reconcile worker %d", i);
            __atomic_store_n(&c->stopping, 1, __ATOMIC_RELEASE);
            pthread_mutex_lock(&c->mu);
            pthread_cond_broadcast(&c->cv);
            pthread_mutex_unlock(&c->mu);
            ctl_kclient_free(&ws[i].kc);
            ctl_bclient_free(&ws[i].bc);
            ctl_workers_join(ws, i);
            return -1;
        }
    }
    *out = ws;
    return 0;
}

void ctl_workers_join(struct ctl_worker *ws, int n)
{
    for (int i = 0; ws && i < n; i++) {
        pthread_join(ws[i].thread, NULL);
        ctl_kclient_free(&ws[i].kc);
        ctl_bclient_free(&ws[i].bc);
    }
    free(ws);
}
