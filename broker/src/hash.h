/* hash.h: FNV-1a, the one hash the broker's in-memory tables use (topic, group, share
 * and offset tables, the tiered stretch cache). Not for anything adversarial: table
 * sizes stay bounded by configuration, not by what a peer chooses. */
#ifndef SLUICE_HASH_H
#define SLUICE_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HASH_FNV_OFFSET 1469598103934665603ULL
#define HASH_FNV_PRIME 1099511628211ULL

/* Folds n bytes into h. */
static inline uint64_t hash_more(uint64_t h, const void *p, size_t n)
{
    const uint8_t *c = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ c[i]) * HASH_FNV_PRIME;
    return h;
}

/* Folds one integer into h as a single step. */
static inline uint64_t hash_mix(uint64_t h, uint64_t v) { return (h ^ v) * HASH_FNV_PRIME; }

static inline uint64_t hash_bytes(const void *p, size_t n) { return hash_more(HASH_FNV_OFFSET, p, n); }

#endif
