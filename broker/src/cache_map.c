/* cache_map.c: the block cache's intrusive hash map. Chains are singly linked; the
 * table doubles when it holds as many nodes as buckets. */
#include "cache_map.h"

#include <stdlib.h>

enum { CMAP_MIN_BUCKETS = 64 };

void cmap_init(struct cmap *m)
{
    *m = (struct cmap){0};
}

void cmap_fini(struct cmap *m)
{
    free(m->b);
    *m = (struct cmap){0};
}

/* Rehashes into nb buckets. Returns 0, or -1 (and leaves the table as it was). */
static int cmap_resize(struct cmap *m, size_t nb)
{
    struct cmap_node **b = calloc(nb, sizeof *b);
    if (!b)
        return -1;
    for (size_t i = 0; i < m->nb; i++) {
        struct cmap_node *n = m->b[i];
        while (n) {
            struct cmap_node *next = n->next;
            size_t j = n->h & (nb - 1);
            n->next = b[j];
            b[j] = n;
            n = next;
        }
    }
    free(m->b);
    m->b = b;
    m->nb = nb;
    return 0;
}

void cmap_insert(struct cmap *m, struct cmap_node *n, uint64_t h)
{
    if (m->n >= m->nb)
        cmap_resize(m, m->nb ? m->nb * 2 : CMAP_MIN_BUCKETS);
    n->h = h;
    if (!m->nb) { /* not even the first table could be had: nowhere to link */
        n->next = NULL;
        return;
    }
    size_t j = h & (m->nb - 1);
    n->next = m->b[j];
    m->b[j] = n;
    m->n++;
}

void cmap_remove(struct cmap *m, struct cmap_node *n)
{
    if (!m->nb)
        return;
    struct cmap_node **pp = &m->b[n->h & (m->nb - 1)];
    while (*pp && *pp != n)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = n->next;
        m->n--;
    }
    n->next = NULL;
}

struct cmap_node *cmap_first(const struct cmap *m, uint64_t h)
{
    if (!m->nb)
        return NULL;
    struct cmap_node *n = m->b[h & (m->nb - 1)];
    while (n && n->h != h)
        n = n->next;
    return n;
}

struct cmap_node *cmap_next(const struct cmap_node *n)
{
    uint64_t h = n->h;
    for (n = n->next; n && n->h != h; n = n->next)
        ;
    return (struct cmap_node *)n;
}

struct cmap_node *cmap_iter(const struct cmap *m, size_t *i, struct cmap_node **next)
{
    struct cmap_node *n = *next;
    while (!n && *i < m->nb)
        n = m->b[(*i)++];
    if (n)
        *next = n->next;
    return n;
}
