/* hash.h: FNV-1a, the one hash the broker's in-memory tables use (topic, group, share
 * and offset tables, the tiered stretch cache), and struct htab, the intrusive chained
 * table of the group, share-group and quota registries, each group's committed offsets
 * and the block cache (hash.c).
 * Not for anything adversarial: table sizes stay bounded by configuration, not by what a
 * peer chooses. */
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

/* An intrusive chained hash table. The element embeds a struct hnode and the caller
 * hashes its key; the node keeps that hash, so growing never rehashes keys and a lookup
 * compares keys only when the hashes match. The table owns only its bucket array; a
 * zeroed struct htab is an empty table. */
struct hnode {
    struct hnode *next;
    uint64_t hash;
};

struct htab {
    struct hnode **b;
    size_t cap; /* buckets: 0 (nothing allocated yet) or a power of two */
    size_t n;   /* nodes */
};

/* The element of type that holds node as its member. */
#define HTAB_ENTRY(node, type, member) ((type *)((char *)(node) - offsetof(type, member)))

/* The first node whose hash is h, then the next one after n with n's hash; NULL at the
 * end. Callers compare keys to tell colliding hashes apart. */
struct hnode *htab_first(const struct htab *t, uint64_t h);
struct hnode *htab_next(const struct hnode *n);
/* Adds n with hash h. Doubles the buckets at load 1 (8 at first); when that allocation
 * fails the old buckets stay and n goes into them. Returns 0, or -1 (n not added) only
 * when there are no buckets at all. */
int htab_insert(struct htab *t, struct hnode *n, uint64_t h);
/* Unlinks n; a node not in t is left alone. */
void htab_remove(struct htab *t, struct hnode *n);
/* Frees the buckets (not the nodes) and empties t. */
void htab_free(struct htab *t);

/* Walks every node of t as n, bucket index i; n (only n) may be removed and freed in the
 * body, as nx already holds the next one. Inserting in the body may visit nodes twice or
 * not at all. Two loops deep: continue moves on, break only leaves the bucket. */
#define HTAB_FOREACH(t, i, n, nx)                                                                  \
    for (size_t i = 0; i < (t)->cap; i++)                                                          \
        for (struct hnode *n = (t)->b[i], *nx; n && ((nx = n->next), 1); n = nx)

#endif
