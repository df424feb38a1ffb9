/* syncer.h: group commit. Responses that must not leave before their writes are on
 * disk (acks=all) wait here; one fsync of the RocksDB WAL, run off the event loop,
 * releases every response that was waiting when it started. */
#ifndef SLUICE_SYNCER_H
#define SLUICE_SYNCER_H

#include <stdint.h>

struct broker;
struct kslot;
struct syncer;

struct syncer *syncer_new(struct broker *b);
void syncer_free(struct syncer *s);
/* Completes slot once everything written so far is durable. */
void syncer_wait(struct syncer *s, struct kslot *slot);
/* Asks for an fsync within delay_ms even if nobody waits (flush.policy=interval). */
void syncer_flush_within(struct syncer *s, int64_t delay_ms);
/* Number of fsyncs done, for metrics. */
uint64_t syncer_count(const struct syncer *s);

#endif
