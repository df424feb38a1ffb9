/* ctl_backoff.h: exponential backoff with jitter, for retries of failed requests,
 * reconnecting watches and requeueing failed reconciles. */
#ifndef CTL_BACKOFF_H
#define CTL_BACKOFF_H

#include <stdint.h>

struct ctl_backoff {
    int64_t base_ms, max_ms;
    unsigned attempt;
};

void ctl_backoff_init(struct ctl_backoff *b, int64_t base_ms, int64_t max_ms);
/* Returns the delay before the next attempt and counts it: the ceiling doubles from
 * base_ms up to max_ms and the delay is drawn from [ceiling/2, ceiling]. */
int64_t ctl_backoff_next(struct ctl_backoff *b);
/* The same for a given failure count (1 = first failure), without state. */
int64_t ctl_backoff_delay(int64_t base_ms, int64_t max_ms, unsigned failures);
void ctl_backoff_reset(struct ctl_backoff *b);

#endif
