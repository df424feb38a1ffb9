/* cache_map.h: the containers the block cache is built from, besides the intrusive hash
 * table (struct htab, hash.h): an intrusive circular doubly-linked list, and the 64-bit
 * mix its keys are hashed with. Nothing here allocates per element. */
#ifndef SLUICE_CACHE_MAP_H
#define SLUICE_CACHE_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define cache_container_of(p, type, member) ((type *)(void *)((char *)(p)-offsetof(type, member)))

/* ---- list ---- */

struct clist {
    struct clist *prev, *next;
};

static inline void clist_init(struct clist *h)
{
    h->prev = h->next = h;
}
static inline bool clist_empty(const struct clist *h)
{
    return h->next == h;
}
static inline bool clist_linked(const struct clist *n)
{
    return n->next != NULL && n->next != n;
}

static inline void clist_insert_between(struct clist *n, struct clist *a, struct clist *b)
{
    n->prev = a;
    n->next = b;
    a->next = n;
    b->prev = n;
}

/* Head side: the front of a FIFO, the top of a stack. */
static inline void clist_push_front(struct clist *h, struct clist *n)
{
    clist_insert_between(n, h, h->next);
}

static inline void clist_push_back(struct clist *h, struct clist *n)
{
    clist_insert_between(n, h->prev, h);
}

/* Unlinks n and leaves it self-linked, so clist_linked() reports false. */
static inline void clist_del(struct clist *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

/* The element after n, or NULL when n is the last. */
static inline struct clist *clist_next(const struct clist *h, const struct clist *n)
{
    return n->next == h ? NULL : n->next;
}

static inline struct clist *clist_prev(const struct clist *h, const struct clist *n)
{
    return n->prev == h ? NULL : n->prev;
}

static inline struct clist *clist_front(const struct clist *h)
{
    return clist_next(h, h);
}
static inline struct clist *clist_back(const struct clist *h)
{
    return clist_prev(h, h);
}

/* A 64-bit mix (the splitmix64 finaliser): every input bit moves every output bit. */
static inline uint64_t cache_mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

#endif
