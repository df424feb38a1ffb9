/* tiered_int.h: what tiered.c (uploads, remote retention, partition state) and
 * tiered_read.c (reading segments back, the stretch cache, ListOffsets re-runs) share.
 * Not for other modules. */
#ifndef SLUICE_TIERED_INT_H
#define SLUICE_TIERED_INT_H

#include "ev.h"
#include "tiered.h"

struct s3_client;
struct work;
struct tround;
struct tcache_ent;
struct trerun;

/* Every S3 request in flight that is not part of an upload round carries one of these
 * first, so tiered_free can release what s3_free drops without a callback. */
struct tctx {
    struct tctx *prev, *next;
};

struct tiered {
    struct broker *b;
    struct s3_client *s3; /* NULL: not configured */
    char bucket[256];
    char prefix[512];     /* without a trailing '/' */
    struct work *worker;
    struct ev_timer timer;
    struct tround *round; /* the upload round under way */
    int64_t backoff_ms;   /* after a failed round */
    struct tctx *ctxs;
    /* stretch cache: a hash of entries, the ready ones on an LRU list */
    struct tcache_ent **buckets;
    size_t nbuckets;
    struct tcache_ent *lru_head, *lru_tail;
    /* ListOffsets requests waiting for stretches */
    struct trerun *reruns, *cur_rerun;
    struct ev_timer rerun_timer;
    bool missed;
    struct tiered_stats st;
};

void tiered_ctx_link(struct tiered *t, struct tctx *c);
void tiered_ctx_unlink(struct tiered *t, struct tctx *c);

/* The object key of a segment. Returns 0 or -1. */
int tiered_object_key(const struct tiered *t, const uint8_t topic_id[16], int32_t partition,
                      int64_t base, int64_t end, char *out, size_t cap);

/* tiered_read.c's setup and teardown. */
int tiered_read_init(struct tiered *t);
void tiered_read_free(struct tiered *t);

#endif
