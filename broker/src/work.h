/* work.h: a background worker thread for jobs that must not run on the event loop
 * (retention scans, compaction). run() executes on the worker; done() then runs on the
 * loop with the same argument. */
#ifndef SLUICE_WORK_H
#define SLUICE_WORK_H

struct ev_loop;
struct work;

typedef void work_fn(void *arg);

struct work *work_new(struct ev_loop *loop);
/* Waits for the running job, drops queued ones (their done() is not called). */
void work_free(struct work *w);
/* Queues a job. Returns 0 or -1 (then nothing will run). */
int work_submit(struct work *w, work_fn *run, work_fn *done, void *arg);

#endif
