/* cache_policy.h: the eviction policy of one cache tier, LIRS weighted by bytes. It
 * keeps a protected resident set (LIR) that only a block reused sooner than the set's
 * least recently used member can enter, plus a small probationary FIFO (resident HIR)
 * that new blocks pass through. A cyclic scan larger than the tier therefore leaves the
 * protected set alone and hits about (capacity - probation) / dataset of the time,
 * where LRU hits nothing. It knows blocks only by a 64-bit hash, a size and an opaque
 * owner pointer; it does no I/O and never frees what an owner points to.
 *
 * Departures from textbook LIRS, and why:
 * - Sizes are bytes, not block counts: objects smaller than a block make short blocks.
 * - Remembered non-resident blocks (ghosts) are capped at 2 x resident + 16, dropped
 *   oldest first, so metadata stays proportional to the tier.
 * - A protected block not touched for stale_factor x capacity bytes of traffic is
 *   demoted, so a working set that stops being read (the previous dataset) gives its
 *   place up even when the new one is too large for ghosts to remember its reuse.
 * - Eviction takes only probationary blocks, skipping those the owner says are busy
 *   (pinned). When every one is pinned the tier stays over capacity, by at most the
 *   pinned bytes, rather than evict a protected block: that would let a burst of pins
 *   erode the stable set. (Protected blocks leave only by demotion into Q.) */
#ifndef SLUICE_CACHE_POLICY_H
#define SLUICE_CACHE_POLICY_H

#include <stdbool.h>
#include <stdint.h>

struct cpol;
struct cpol_node;

/* Whether the owner of a resident block may be evicted now. */
typedef bool cpol_can_evict_fn(void *ctx, void *owner);

struct cpol_stats {
    uint64_t capacity, used, lir_bytes, hir_bytes;
    uint64_t resident, ghosts;
    uint64_t promotions, demotions, stale_demotions;
};

/* capacity: bytes the tier may hold. probation: bytes kept back for the probationary
 * FIFO; it must hold at least the largest block, or new blocks push protected ones out
 * (cpol_probation_for picks it). Returns NULL on allocation failure. */
struct cpol *cpol_new(uint64_t capacity, uint64_t probation);
/* Frees the policy and every node; owners are not told. */
void cpol_free(struct cpol *p);

/* The probationary share the cache uses: 1/32 of capacity, and never less than one
 * block of max_block bytes. */
uint64_t cpol_probation_for(uint64_t capacity, uint64_t max_block);

/* Changes the capacity (the memory tier lends part of its budget to prefetched
 * blocks). Shrinking demotes protected blocks; the caller then evicts. */
void cpol_set_capacity(struct cpol *p, uint64_t capacity);

/* A resident block was read. */
void cpol_hit(struct cpol *p, struct cpol_node *n);
/* A block with hash h and size bytes became resident (a miss that was filled). A
 * remembered ghost with the same hash turns it into a reuse. Returns its node, or NULL
 * on allocation failure (then the caller should not keep the block). The tier may now
 * be over capacity: call cpol_evict until it returns NULL. */
struct cpol_node *cpol_insert(struct cpol *p, uint64_t h, uint32_t size, void *owner);
/* Chooses a victim while the tier is over capacity: the oldest probationary block for
 * which can_evict (when non-NULL) says yes. Removes it from the resident set (it may be
 * remembered as a ghost) and returns its owner. NULL when within capacity or when
 * nothing can go. */
void *cpol_evict(struct cpol *p, cpol_can_evict_fn *can_evict, void *ctx);
/* Forgets a resident block (invalidated), leaving no ghost. */
void cpol_remove(struct cpol *p, struct cpol_node *n);

/* Whether the tier holds more than its capacity. */
bool cpol_over(const struct cpol *p);
void cpol_stats(const struct cpol *p, struct cpol_stats *out);

#endif
