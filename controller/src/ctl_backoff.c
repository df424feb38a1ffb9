/* ctl_backoff.c: exponential backoff with "equal jitter". Half the ceiling is fixed so
 * that retries always spread out; the other half is random so that many resources failing
 * at once (a broker restart) do not retry in lockstep. */
#include "ctl_backoff.h"

#include "ctl_util.h"

void ctl_backoff_init(struct ctl_backoff *b, int64_t base_ms, int64_t max_ms)
{
    b->base_ms = base_ms > 0 ? base_ms : 1;
    b->max_ms = max_ms >= b->base_ms ? max_ms : b->base_ms;
    b->attempt = 0;
}

int64_t ctl_backoff_delay(int64_t base_ms, int64_t max_ms, unsigned failures)
{
    int64_t ceil = base_ms > 0 ? base_ms : 1;
    for (unsigned i = 1; i < failures && ceil < max_ms; i++)
        ceil *= 2;
    if (ceil > max_ms)
        ceil = max_ms;
    int64_t half = ceil / 2;
    return ceil - half + (half > 0 ? (int64_t)(ctl_rand64() % (uint64_t)(half + 1)) : 0);
}

int64_t ctl_backoff_next(struct ctl_backoff *b)
{
    if (b->attempt < 64)
        b->attempt++;
    return ctl_backoff_delay(b->base_ms, b->max_ms, b->attempt);
}

void ctl_backoff_reset(struct ctl_backoff *b)
{
    b->attempt = 0;
}
