/* ev.c: the epoll event loop. Everything on the broker's request path runs here; work
 * that could block runs in worker threads and reports back through an eventfd. */
#include "ev.h"

#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

struct ev_file {
    ev_file_fn *fn;
    void *arg;
    int mask;
};

struct ev_hook {
    ev_hook_fn *fn;
    void *arg;
};

struct ev_loop {
    int epfd;
    bool stop;
    struct ev_file *files; /* indexed by fd */
    size_t nfiles;
    struct ev_timer **heap;
    size_t nheap, capheap;
    struct ev_hook hooks[8];
    int nhooks;
};

int64_t ev_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t ev_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct ev_loop *ev_new(void)
{
    struct ev_loop *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        free(l);
        return NULL;
    }
    return l;
}

void ev_free(struct ev_loop *l)
{
    if (!l)
        return;
    close(l->epfd);
    free(l->files);
    free(l->heap);
    free(l);
}

/* Grows the fd table so that fd is a valid index. */
static int files_reserve(struct ev_loop *l, int fd)
{
    if ((size_t)fd < l->nfiles)
        return 0;
    size_t n = l->nfiles ? l->nfiles : 64;
    while (n <= (size_t)fd)
        n *= 2;
    struct ev_file *f = realloc(l->files, n * sizeof *f);
    if (!f)
        return -1;
    memset(f + l->nfiles, 0, (n - l->nfiles) * sizeof *f);
    l->files = f;
    l->nfiles = n;
    return 0;
}

static uint32_t to_epoll(int mask)
{
    return ((mask & EV_READ) ? EPOLLIN : 0) | ((mask & EV_WRITE) ? EPOLLOUT : 0);
}

int ev_add(struct ev_loop *l, int fd, int mask, ev_file_fn *fn, void *arg)
{
    if (fd < 0 || files_reserve(l, fd) < 0)
        return -1;
    struct epoll_event ee = {.events = to_epoll(mask), .data.fd = fd};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ee) < 0)
        return -1;
    l->files[fd] = (struct ev_file){fn, arg, mask};
    return 0;
}

int ev_mod(struct ev_loop *l, int fd, int mask)
{
    if (fd < 0 || (size_t)fd >= l->nfiles || !l->files[fd].fn)
        return -1;
    if (l->files[fd].mask == mask)
        return 0;
    struct epoll_event ee = {.events = to_epoll(mask), .data.fd = fd};
    if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ee) < 0)
        return -1;
    l->files[fd].mask = mask;
    return 0;
}

void ev_del(struct ev_loop *l, int fd)
{
    if (fd < 0 || (size_t)fd >= l->nfiles || !l->files[fd].fn)
        return;
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
    l->files[fd] = (struct ev_file){0};
}

void ev_timer_init(struct ev_timer *t, ev_timer_fn *fn, void *arg)
{
    *t = (struct ev_timer){.idx = (size_t)-1, .fn = fn, .arg = arg};
}

static void heap_swap(struct ev_loop *l, size_t a, size_t b)
{
    struct ev_timer *t = l->heap[a];
    l->heap[a] = l->heap[b];
    l->heap[b] = t;
    l->heap[a]->idx = a;
    l->heap[b]->idx = b;
}

static void heap_up(struct ev_loop *l, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (l->heap[p]->when_us <= l->heap[i]->when_us)
            break;
        heap_swap(l, i, p);
        i = p;
    }
}

static void heap_down(struct ev_loop *l, size_t i)
{
    for (;;) {
        size_t c = 2 * i + 1, m = i;
        if (c < l->nheap && l->heap[c]->when_us < l->heap[m]->when_us)
            m = c;
        if (c + 1 < l->nheap && l->heap[c + 1]->when_us < l->heap[m]->when_us)
            m = c + 1;
        if (m == i)
            return;
        heap_swap(l, i, m);
        i = m;
    }
}

void ev_timer_stop(struct ev_loop *l, struct ev_timer *t)
{
    if (!ev_timer_active(t))
        return;
    size_t i = t->idx, last = --l->nheap;
    if (i != last) {
        l->heap[i] = l->heap[last];
        l->heap[i]->idx = i;
        heap_down(l, i);
        heap_up(l, i);
    }
    t->idx = (size_t)-1;
}

int ev_timer_start(struct ev_loop *l, struct ev_timer *t, int64_t delay_us)
{
    ev_timer_stop(l, t);
    if (l->nheap == l->capheap) {
        size_t n = l->capheap ? l->capheap * 2 : 64;
        struct ev_timer **h = realloc(l->heap, n * sizeof *h);
        if (!h)
            return -1;
        l->heap = h;
        l->capheap = n;
    }
    t->when_us = ev_now_us() + delay_us;
    t->idx = l->nheap;
    l->heap[l->nheap++] = t;
    heap_up(l, t->idx);
    return 0;
}

int ev_hook_add(struct ev_loop *l, ev_hook_fn *fn, void *arg)
{
    if (l->nhooks == 8)
        return -1;
    l->hooks[l->nhooks++] = (struct ev_hook){fn, arg};
    return 0;
}

void ev_stop(struct ev_loop *l) { l->stop = true; }

/* Fires every due timer. A callback may start or stop other timers. */
static void run_timers(struct ev_loop *l)
{
    int64_t now = ev_now_us();
    while (l->nheap && l->heap[0]->when_us <= now) {
        struct ev_timer *t = l->heap[0];
        ev_timer_stop(l, t);
        t->fn(l, t->arg);
    }
}

/* Milliseconds until the next timer, rounded up, or -1 to sleep until an event. */
static int next_timeout_ms(struct ev_loop *l)
{
    if (!l->nheap)
        return -1;
    int64_t d = l->heap[0]->when_us - ev_now_us();
    if (d <= 0)
        return 0;
    return d > 3600000000LL ? 3600000 : (int)((d + 999) / 1000);
}

static void dispatch(struct ev_loop *l, struct epoll_event *ev)
{
    int fd = ev->data.fd;
    if ((size_t)fd >= l->nfiles || !l->files[fd].fn)
        return;
    int mask = 0;
    if (ev->events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        mask |= EV_READ;
    if (ev->events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
        mask |= EV_WRITE;
    struct ev_file f = l->files[fd];
    f.fn(l, fd, f.arg, mask & (f.mask | ((ev->events & (EPOLLERR | EPOLLHUP)) ? EV_READ : 0)));
}

void ev_run(struct ev_loop *l)
{
    struct epoll_event evs[256];
    while (!l->stop) {
        for (int i = 0; i < l->nhooks; i++)
            l->hooks[i].fn(l, l->hooks[i].arg);
        int n = epoll_wait(l->epfd, evs, 256, next_timeout_ms(l));
        if (n < 0 && errno != EINTR) {
            log_error("epoll_wait: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++)
            dispatch(l, &evs[i]);
        run_timers(l);
    }
}
