/* ctl_worker.h: the reconcile workers: a fixed pool of threads (SLUICE_WORKERS) that take
 * keys from the work queues in turn, so no kind starves another, and run the blocking
 * reconcile for each. Only the lease holder's workers take work. */
#ifndef CTL_WORKER_H
#define CTL_WORKER_H

#include "ctl_rec.h"

int ctl_workers_start(struct ctl_ctrl *c, struct ctl_worker **out, int n);
/* Joins the workers (after c->stopping is set and cv broadcast) and frees them. */
void ctl_workers_join(struct ctl_worker *ws, int n);
/* Runs one reconcile of key (exposed for tests). Returns the result. */
enum ctl_result ctl_reconcile_key(struct ctl_worker *w, enum ctl_kind k, const char *key,
                                  char *json, int64_t *requeue_ms);

#endif
