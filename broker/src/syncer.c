/* syncer.c: the group-commit thread. The loop queues slots; before it sleeps it hands
 * the whole queue to the thread, which calls store_sync() once and signals an eventfd.
 * While that fsync runs, new waiters gather for the next one, so the fsync rate adapts
 * to the disk instead of to the request rate. */
#include "syncer.h"

#include "broker.h"
#include "conn.h"
#include "ev.h"
#include "log.h"
#include "metrics.h"
#include "store.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

struct squeue {
    struct kslot *head, *tail;
};

struct syncer {
    struct broker *b;
    struct squeue pending, inflight;
    bool busy;          /* an fsync is running */
    bool want;          /* an fsync is wanted even with no waiters */
    int efd;
    struct ev_timer interval;
    uint64_t count;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t asked, done; /* generations, under mu */
    bool quit;
    int rc;
    int64_t dur_us;       /* of the last fsync, under mu */
};

static void q_push(struct squeue *q, struct kslot *s)
{
    s->qnext = NULL;
    s->qprev = q->tail;
    if (q->tail)
        q->tail->qnext = s;
    else
        q->head = s;
    q->tail = s;
    s->owner = q;
}

static void q_unlink(struct squeue *q, struct kslot *s)
{
    if (s->qprev)
        s->qprev->qnext = s->qnext;
    else
        q->head = s->qnext;
    if (s->qnext)
        s->qnext->qprev = s->qprev;
    else
        q->tail = s->qprev;
    s->qprev = s->qnext = NULL;
}

static void slot_cancel(struct kslot *s) { q_unlink(s->owner, s); }

static void *sync_thread(void *arg)
{
    struct syncer *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->quit && s->asked == s->done)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->quit)
            break;
        uint64_t gen = s->asked;
        pthread_mutex_unlock(&s->mu);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int rc = store_sync(s->b->store);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        pthread_mutex_lock(&s->mu);
        s->done = gen;
        s->rc = rc;
        s->dur_us = (t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000;
        uint64_t one = 1;
        if (write(s->efd, &one, sizeof one) < 0)
            log_error("syncer: eventfd write failed");
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Starts an fsync for everything pending, if none is running. */
static void kick(struct syncer *s)
{
    if (s->busy || (!s->pending.head && !s->want))
        return;
    s->inflight = s->pending;
    s->pending = (struct squeue){0};
    for (struct kslot *k = s->inflight.head; k; k = k->qnext)
        k->owner = &s->inflight;
    s->busy = true;
    s->want = false;
    pthread_mutex_lock(&s->mu);
    s->asked++;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void on_hook(struct ev_loop *l, void *arg) { kick(arg); }

static void on_done(struct ev_loop *l, int fd, void *arg, int mask)
{
    struct syncer *s = arg;
    uint64_t v;
    if (read(s->efd, &v, sizeof v) < 0)
        return;
    pthread_mutex_lock(&s->mu);
    int rc = s->rc;
    int64_t dur_us = s->dur_us;
    pthread_mutex_unlock(&s->mu);
    metrics_wal_sync(s->b->metrics, dur_us);
    if (rc < 0)
        log_error("fsync failed; acknowledging anyway would lie, closing waiters");
    s->busy = false;
    s->count++;
    while (s->inflight.head) {
        struct kslot *k = s->inflight.head;
        q_unlink(&s->inflight, k);
        k->owner = NULL;
        k->cancel = NULL;
        if (rc < 0)
            conn_abort(k->conn);
        else
            kslot_complete(k);
    }
    kick(s);
}

static void on_interval(struct ev_loop *l, void *arg)
{
    struct syncer *s = arg;
    s->want = true;
    kick(s);
}

struct syncer *syncer_new(struct broker *b)
{
    struct syncer *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->b = b;
    s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    ev_timer_init(&s->interval, on_interval, s);
    if (s->efd < 0 || ev_add(b->loop, s->efd, EV_READ, on_done, s) < 0 ||
        ev_hook_add(b->loop, on_hook, s) < 0 ||
        pthread_create(&s->thread, NULL, sync_thread, s) != 0) {
        if (s->efd >= 0)
            close(s->efd);
        free(s);
        return NULL;
    }
    return s;
}

void syncer_free(struct syncer *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->quit = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    ev_timer_stop(s->b->loop, &s->interval);
    ev_del(s->b->loop, s->efd);
    close(s->efd);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

void syncer_wait(struct syncer *s, struct kslot *slot)
{
    q_push(&s->pending, slot);
    slot->cancel = slot_cancel;
}

void syncer_flush_within(struct syncer *s, int64_t delay_ms)
{
    if (ev_timer_active(&s->interval) && s->interval.when_us <= ev_now_us() + delay_ms * 1000)
        return;
    ev_timer_start(s->b->loop, &s->interval, delay_ms * 1000);
}

uint64_t syncer_count(const struct syncer *s) { return s->count; }
