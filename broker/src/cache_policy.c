/* cache_policy.c: LIRS (Jiang and Zhang, SIGMETRICS 2002) weighted by bytes, for one
 * cache tier. S is the recency stack: protected (LIR) blocks, and probationary (HIR)
 * blocks, resident or not, that were seen more recently than the oldest LIR block. Q is
 * the FIFO of resident HIR blocks, G the FIFO of remembered non-resident ones. A HIR
 * block read again while it is still in S has a reuse distance shorter than the oldest
 * LIR block's recency, so it takes that block's place. Under a cyclic scan nothing
 * qualifies, which is what keeps the protected set stable. */
#include "cache_policy.h"

#include "cache_map.h"
#include "hash.h"

#include <assert.h>
#include <stdlib.h>

enum { CPOL_STALE_FACTOR = 16, CPOL_GHOST_SLACK = 16 };

struct cpol_node {
    struct hnode hn; /* in ghosts while non-resident */
    struct clist s;      /* in S; self-linked when not */
    struct clist q;      /* in Q (resident HIR) or G (ghost); self-linked when neither */
    void *owner;         /* NULL for a ghost */
    uint64_t h;
    uint64_t last; /* clock at the last access */
    uint32_t size;
    bool lir;
    bool resident;
};

struct cpol {
    struct clist S, Q, G;
    struct htab ghosts;
    uint64_t cap, probation, lir_cap;
    uint64_t lir_bytes, hir_bytes; /* resident bytes on each side */
    uint64_t clock;                /* bytes accessed so far: the policy's time */
    size_t nres, nghost;
    uint64_t promotions, demotions, stale_demotions;
};

static struct cpol_node *s_node(struct clist *l)
{
    return l ? cache_container_of(l, struct cpol_node, s) : NULL;
}

static struct cpol_node *q_node(struct clist *l)
{
    return l ? cache_container_of(l, struct cpol_node, q) : NULL;
}

static struct cpol_node *s_bottom(const struct cpol *p)
{
    return s_node(clist_back(&p->S));
}

static bool in_s(const struct cpol_node *n)
{
    return clist_linked(&n->s);
}

/* Moves n to the top of S. */
static void s_top(struct cpol *p, struct cpol_node *n)
{
    if (in_s(n))
        clist_del(&n->s);
    clist_push_front(&p->S, &n->s);
}

static void ghost_drop(struct cpol *p, struct cpol_node *n)
{
    assert(!n->resident);
    if (in_s(n))
        clist_del(&n->s);
    clist_del(&n->q);
    htab_remove(&p->ghosts, &n->hn);
    p->nghost--;
    free(n);
}

/* Keeps ghosts at most 2 x resident + slack, forgetting the oldest first. */
static void ghosts_trim(struct cpol *p)
{
    while (p->nghost > 2 * p->nres + CPOL_GHOST_SLACK)
        ghost_drop(p, q_node(clist_front(&p->G)));
}

/* Restores the invariant that the bottom of S is a LIR block: HIR entries below the
 * oldest LIR block can never be promoted, so they leave S (ghosts are forgotten). */
static void prune(struct cpol *p)
{
    struct cpol_node *b;
    while ((b = s_bottom(p)) && !b->lir) {
        clist_del(&b->s);
        if (!b->resident)
            ghost_drop(p, b);
    }
}

/* The oldest LIR block becomes a resident HIR block at the tail of Q. */
static void demote_bottom(struct cpol *p)
{
    struct cpol_node *b = s_bottom(p);
    assert(b && b->lir && b->resident);
    b->lir = false;
    p->lir_bytes -= b->size;
    p->hir_bytes += b->size;
    clist_del(&b->s);
    clist_push_back(&p->Q, &b->q);
    p->demotions++;
    prune(p);
}

/* Demotes the oldest LIR blocks until LIR fits its share; keep is never demoted. */
static void fit_lir(struct cpol *p, const struct cpol_node *keep)
{
    struct cpol_node *b;
    while (p->lir_bytes > p->lir_cap && (b = s_bottom(p)) && b != keep)
        demote_bottom(p);
}

/* Demotes LIR blocks nobody has read for stale_factor x capacity bytes of traffic. */
static void age(struct cpol *p)
{
    struct cpol_node *b;
    uint64_t limit = CPOL_STALE_FACTOR * p->cap;
    while ((b = s_bottom(p)) && p->clock - b->last > limit) {
        demote_bottom(p);
        p->stale_demotions++;
    }
}

/* A resident HIR block (in Q) or a returning ghost (no longer in G) joins LIR. */
static void promote(struct cpol *p, struct cpol_node *n)
{
    if (clist_linked(&n->q)) {
        clist_del(&n->q);
        p->hir_bytes -= n->size;
    }
    n->lir = true;
    p->lir_bytes += n->size;
    s_top(p, n);
    p->promotions++;
    fit_lir(p, n);
}

static void tick(struct cpol *p, struct cpol_node *n)
{
    p->clock += n->size;
    n->last = p->clock;
}

uint64_t cpol_probation_for(uint64_t capacity, uint64_t max_block)
{
    uint64_t pr = capacity / 32;
    return pr < max_block ? max_block : pr;
}

struct cpol *cpol_new(uint64_t capacity, uint64_t probation)
{
    struct cpol *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    clist_init(&p->S);
    clist_init(&p->Q);
    clist_init(&p->G);
    p->probation = probation;
    cpol_set_capacity(p, capacity);
    return p;
}

static void free_list(struct clist *h, bool via_s)
{
    struct clist *l;
    while ((l = clist_front(h))) {
        struct cpol_node *n = via_s ? s_node(l) : q_node(l);
        clist_del(&n->s);
        clist_del(&n->q);
        free(n);
    }
}

void cpol_free(struct cpol *p)
{
    if (!p)
        return;
    free_list(&p->S, true);
    free_list(&p->Q, false);
    free_list(&p->G, false);
    htab_free(&p->ghosts);
    free(p);
}

void cpol_set_capacity(struct cpol *p, uint64_t capacity)
{
    p->cap = capacity;
    p->lir_cap = capacity > p->probation ? capacity - p->probation : 0;
    fit_lir(p, NULL);
}

void cpol_hit(struct cpol *p, struct cpol_node *n)
{
    assert(n->resident);
    tick(p, n);
    if (n->lir) {
        bool was_bottom = s_bottom(p) == n;
        s_top(p, n);
        if (was_bottom)
            prune(p);
    } else if (in_s(n)) {
        promote(p, n);
    } else {
        s_top(p, n);
        clist_del(&n->q);
        clist_push_back(&p->Q, &n->q);
    }
    age(p);
}

/* The remembered ghost with hash h, if any. */
static struct cpol_node *ghost_find(struct cpol *p, uint64_t h)
{
    struct hnode *hn = htab_first(&p->ghosts, h);
    return hn ? cache_container_of(hn, struct cpol_node, hn) : NULL;
}

struct cpol_node *cpol_insert(struct cpol *p, uint64_t h, uint32_t size, void *owner)
{
    struct cpol_node *n = ghost_find(p, h);
    if (n) {
        clist_del(&n->q);
        htab_remove(&p->ghosts, &n->hn);
        p->nghost--;
    } else if (!(n = calloc(1, sizeof *n))) {
        return NULL;
    } else {
        clist_init(&n->s);
        clist_init(&n->q);
    }
    bool reuse = in_s(n);
    n->h = h;
    n->size = size;
    n->owner = owner;
    n->resident = true;
    n->lir = false;
    p->nres++;
    tick(p, n);
    if (reuse) {
        promote(p, n);
    } else if (p->lir_bytes + size <= p->lir_cap) {
        n->lir = true;
        p->lir_bytes += size;
        s_top(p, n);
    } else {
        p->hir_bytes += size;
        s_top(p, n);
        clist_push_back(&p->Q, &n->q);
    }
    age(p);
    ghosts_trim(p);
    return n;
}

static void *evict_hir(struct cpol *p, struct cpol_node *n)
{
    void *owner = n->owner;
    clist_del(&n->q);
    p->hir_bytes -= n->size;
    p->nres--;
    n->resident = false;
    n->owner = NULL;
    if (in_s(n)) {
        clist_push_back(&p->G, &n->q);
        htab_insert(&p->ghosts, &n->hn, n->h);
        p->nghost++;
    } else {
        free(n);
    }
    ghosts_trim(p);
    return owner;
}

void *cpol_evict(struct cpol *p, cpol_can_evict_fn *can_evict, void *ctx)
{
    if (!cpol_over(p))
        return NULL;
    for (struct clist *l = clist_front(&p->Q); l; l = clist_next(&p->Q, l)) {
        struct cpol_node *n = q_node(l);
        if (!can_evict || can_evict(ctx, n->owner))
            return evict_hir(p, n);
    }
    return NULL;
}

void cpol_remove(struct cpol *p, struct cpol_node *n)
{
    assert(n->resident);
    if (n->lir)
        p->lir_bytes -= n->size;
    else
        p->hir_bytes -= n->size;
    if (in_s(n))
        clist_del(&n->s);
    clist_del(&n->q);
    p->nres--;
    free(n);
    prune(p);
    ghosts_trim(p);
}

bool cpol_over(const struct cpol *p)
{
    return p->lir_bytes + p->hir_bytes > p->cap;
}

void cpol_stats(const struct cpol *p, struct cpol_stats *out)
{
    *out = (struct cpol_stats){
        .capacity = p->cap,
        .used = p->lir_bytes + p->hir_bytes,
        .lir_bytes = p->lir_bytes,
        .hir_bytes = p->hir_bytes,
        .resident = p->nres,
        .ghosts = p->nghost,
        .promotions = p->promotions,
        .demotions = p->demotions,
        .stale_demotions = p->stale_demotions,
    };
}
