/* hash.c: struct htab (hash.h), the intrusive chained hash table of the broker's
 * registries. Nodes keep their hash, so a grow relinks them without touching keys. */
#include "hash.h"

#include <stdlib.h>

/* small: a table per group (committed offsets) must stay cheap with many groups */
enum { HTAB_MIN_BUCKETS = 8 };

struct hnode *htab_first(const struct htab *t, uint64_t h)
{
    if (!t->cap)
        return NULL;
    struct hnode *n = t->b[h & (t->cap - 1)];
    while (n && n->hash != h)
        n = n->next;
    return n;
}

struct hnode *htab_next(const struct hnode *n)
{
    struct hnode *x = n->next;
    while (x && x->hash != n->hash)
        x = x->next;
    return x;
}

/* Doubles the buckets (or makes the first ones). Returns 0, or -1 with t unchanged. */
static int grow(struct htab *t)
{
    size_t cap = t->cap ? t->cap * 2 : HTAB_MIN_BUCKETS;
    if (cap < t->cap)
        return -1;
    struct hnode **b = calloc(cap, sizeof *b);
    if (!b)
        return -1;
    for (size_t i = 0; i < t->cap; i++)
        for (struct hnode *n = t->b[i], *nx; n; n = nx) {
            nx = n->next;
            n->next = b[n->hash & (cap - 1)];
            b[n->hash & (cap - 1)] = n;
        }
    free(t->b);
    t->b = b;
    t->cap = cap;
    return 0;
}

int htab_insert(struct htab *t, struct hnode *n, uint64_t h)
{
    if (t->n >= t->cap)
        grow(t); /* a failed grow only makes chains longer */
    n->hash = h;
    n->next = NULL;
    if (!t->cap)
        return -1; /* n stays unlinked: htab_remove leaves it alone */
    struct hnode **s = &t->b[h & (t->cap - 1)];
    n->next = *s;
    *s = n;
    t->n++;
    return 0;
}

void htab_remove(struct htab *t, struct hnode *n)
{
    if (!t->cap)
        return;
    struct hnode **pp = &t->b[n->hash & (t->cap - 1)];
    while (*pp && *pp != n)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = n->next;
        t->n--;
    }
}

void htab_free(struct htab *t)
{
    free(t->b);
    *t = (struct htab){0};
}
