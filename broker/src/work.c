/* work.c: one worker thread with a FIFO of jobs; completions come back to the loop
 * through an eventfd, so done() callbacks run single-threaded like everything else. */
#include "work.h"

#include "ev.h"
#include "log.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct job {
    struct job *next;
    work_fn *run, *done;
    void *arg;
};

struct work {
    struct ev_loop *loop;
    int efd;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *todo, *todo_tail, *finished; /* under mu */
    bool quit;
};

static void *work_thread(void *arg)
{
    struct work *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->quit && !w->todo)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->quit)
            break;
        struct job *j = w->todo;
        w->todo = j->next;
        if (!w->todo)
            w->todo_tail = NULL;
        pthread_mutex_unlock(&w->mu);
        j->run(j->arg);
        pthread_mutex_lock(&w->mu);
        j->next = w->finished;
        w->finished = j;
        uint64_t one = 1;
        if (write(w->efd, &one, sizeof one) < 0)
            log_error("work: eventfd write failed");
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void on_done(struct ev_loop *l, int fd, void *arg, int mask)
{
    struct work *w = arg;
    uint64_t v;
    if (read(w->efd, &v, sizeof v) < 0)
        return;
    pthread_mutex_lock(&w->mu);
    struct job *j = w->finished;
    w->finished = NULL;
    pthread_mutex_unlock(&w->mu);
    while (j) {
        struct job *n = j->next;
        if (j->done)
            j->done(j->arg);
        free(j);
        j = n;
    }
}

struct work *work_new(struct ev_loop *loop)
{
    struct work *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->loop = loop;
    w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (w->efd < 0 || ev_add(loop, w->efd, EV_READ, on_done, w) < 0 ||
        pthread_create(&w->thread, NULL, work_thread, w) != 0) {
        if (w->efd >= 0)
            close(w->efd);
        free(w);
        return NULL;
    }
    return w;
}

static void free_jobs(struct job *j)
{
    while (j) {
        struct job *n = j->next;
        free(j);
        j = n;
    }
}

void work_free(struct work *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->quit = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    free_jobs(w->todo);
    free_jobs(w->finished);
    ev_del(w->loop, w->efd);
    close(w->efd);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}

int work_submit(struct work *w, work_fn *run, work_fn *done, void *arg)
{
    struct job *j = calloc(1, sizeof *j);
    if (!j)
        return -1;
    *j = (struct job){NULL, run, done, arg};
    pthread_mutex_lock(&w->mu);
    if (w->todo_tail)
        w->todo_tail->next = j;
    else
        w->todo = j;
    w->todo_tail = j;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return 0;
}
