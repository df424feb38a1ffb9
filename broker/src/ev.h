/* ev.h: a single-threaded epoll event loop with file events, one-shot timers kept in
 * a binary heap, and hooks that run before the loop sleeps. */
#ifndef SLUICE_EV_H
#define SLUICE_EV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { EV_READ = 1, EV_WRITE = 2 };

struct ev_loop;
typedef void ev_file_fn(struct ev_loop *l, int fd, void *arg, int mask);
typedef void ev_timer_fn(struct ev_loop *l, void *arg);
typedef void ev_hook_fn(struct ev_loop *l, void *arg);

/* A timer is embedded in its owner; idx is its heap slot, or SIZE_MAX when idle. */
struct ev_timer {
    int64_t when_us;
    size_t idx;
    ev_timer_fn *fn;
    void *arg;
};

struct ev_loop *ev_new(void);
void ev_free(struct ev_loop *l);

/* Registers fd for mask (EV_READ and/or EV_WRITE). Returns 0 or -1. */
int ev_add(struct ev_loop *l, int fd, int mask, ev_file_fn *fn, void *arg);
int ev_mod(struct ev_loop *l, int fd, int mask);
void ev_del(struct ev_loop *l, int fd);

void ev_timer_init(struct ev_timer *t, ev_timer_fn *fn, void *arg);
/* (Re)arms t to fire once after delay_us. */
int ev_timer_start(struct ev_loop *l, struct ev_timer *t, int64_t delay_us);
void ev_timer_stop(struct ev_loop *l, struct ev_timer *t);
static inline bool ev_timer_active(const struct ev_timer *t) { return t->idx != (size_t)-1; }

/* Runs fn before every sleep of the loop (at most 8 hooks). */
int ev_hook_add(struct ev_loop *l, ev_hook_fn *fn, void *arg);

/* Runs until ev_stop(). */
void ev_run(struct ev_loop *l);
void ev_stop(struct ev_loop *l);

/* Monotonic clock in microseconds, and wall clock in milliseconds. */
int64_t ev_now_us(void);
int64_t ev_wall_ms(void);

#endif
