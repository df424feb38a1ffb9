/*
 * cache_bench: the dataset cache's eviction policy (broker/src/cache_policy.c) beside
 * LRU on a cyclic epoch scan, the access pattern of training over a dataset larger than
 * the cache. LRU hits nothing there; the policy should hit about cache / dataset.
 *
 *   cc -O2 -D_GNU_SOURCE -Ibroker/src tests/bench/cache_bench.c \
 *      broker/src/cache_policy.c broker/src/hash.c -o cache_bench && ./cache_bench
 *   ./cache_bench [-c CACHE_MIB] [-d DATASET_MIB] [-b BLOCK_MIB] [-o OBJECT_MIB] [-e EPOCHS]
 *
 * Defaults: the broker's memory tier (256 MiB, 8 MiB blocks) and a dataset twice its
 * size made of 20 MiB objects, so every object ends in a short block, as real ones do.
 * The first epoch fills the cache and is not counted. The last line on stdout is
 * "RESULT mode=cache_cyclic key=value ...".
 */
#include "cache_map.h"
#include "cache_policy.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct trace {
    uint32_t *size; /* per block id */
    int nblocks;
};

/* Splits the dataset into objects of object_bytes, each into blocks of block_bytes. */
static struct trace make_trace(uint64_t dataset, uint64_t object_bytes, uint64_t block_bytes)
{
    struct trace t = {0};
    uint64_t nobj = (dataset + object_bytes - 1) / object_bytes;
    uint64_t per = (object_bytes + block_bytes - 1) / block_bytes;
    t.size = malloc(sizeof *t.size * nobj * per);
    for (uint64_t o = 0; o < nobj; o++) {
        uint64_t left = o + 1 == nobj ? dataset - o * object_bytes : object_bytes;
        while (left) {
            uint64_t n = left < block_bytes ? left : block_bytes;
            t.size[t.nblocks++] = (uint32_t)n;
            left -= n;
        }
    }
    return t;
}

struct rate {
    uint64_t hits, reads, hit_bytes, bytes;
};

static void count(struct rate *r, bool hit, uint32_t size, bool measured)
{
    if (!measured)
        return;
    r->reads++;
    r->bytes += size;
    r->hits += hit;
    r->hit_bytes += hit ? size : 0;
}

static struct rate run_policy(const struct trace *t, uint64_t cap, uint64_t block, int epochs)
{
    struct cpol *p = cpol_new(cap, cpol_probation_for(cap, block));
    struct cpol_node **node = calloc((size_t)t->nblocks, sizeof *node);
    struct rate r = {0};
    for (int e = 0; e < epochs; e++) {
        for (int i = 0; i < t->nblocks; i++) {
            bool hit = node[i] != NULL;
            count(&r, hit, t->size[i], e > 0);
            if (hit) {
                cpol_hit(p, node[i]);
                continue;
            }
            node[i] = cpol_insert(p, cache_mix64((uint64_t)i), t->size[i], &node[i]);
            struct cpol_node **v;
            while ((v = cpol_evict(p, NULL, NULL)))
                *v = NULL;
        }
    }
    cpol_free(p);
    free(node);
    return r;
}

/* LRU by bytes: a list, most recent at the front. */
static struct rate run_lru(const struct trace *t, uint64_t cap, int epochs)
{
    struct clist head, *link = calloc((size_t)t->nblocks, sizeof *link);
    uint64_t used = 0;
    struct rate r = {0};
    clist_init(&head);
    for (int e = 0; e < epochs; e++) {
        for (int i = 0; i < t->nblocks; i++) {
            bool hit = clist_linked(&link[i]);
            count(&r, hit, t->size[i], e > 0);
            if (hit) {
                clist_del(&link[i]);
            } else {
                used += t->size[i];
                struct clist *v;
                while (used > cap && (v = clist_back(&head))) {
                    clist_del(v);
                    used -= t->size[v - link];
                }
            }
            clist_push_front(&head, &link[i]);
        }
    }
    free(link);
    return r;
}

static double ratio(uint64_t a, uint64_t b)
{
    return b ? (double)a / (double)b : 0;
}

int main(int argc, char **argv)
{
    uint64_t mib = 1 << 20, cache = 256, dataset = 512, block = 8, object = 20;
    int epochs = 10, opt;
    while ((opt = getopt(argc, argv, "c:d:b:o:e:")) != -1) {
        uint64_t v = strtoull(optarg, NULL, 10);
        switch (opt) {
        case 'c':
            cache = v;
            break;
        case 'd':
            dataset = v;
            break;
        case 'b':
            block = v;
            break;
        case 'o':
            object = v;
            break;
        case 'e':
            epochs = (int)v;
            break;
        default:
            fprintf(stderr,
                    "usage: %s [-c CACHE_MIB] [-d DATASET_MIB] [-b BLOCK_MIB] "
                    "[-o OBJECT_MIB] [-e EPOCHS]\n",
                    argv[0]);
            return 2;
        }
    }
    if (!cache || !dataset || !block || !object || epochs < 2) {
        fprintf(stderr, "cache_bench: sizes must be positive and epochs at least 2\n");
        return 2;
    }
    struct trace t = make_trace(dataset * mib, object * mib, block * mib);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    struct rate pol = run_policy(&t, cache * mib, block * mib, epochs);
    clock_gettime(CLOCK_MONOTONIC, &b);
    struct rate lru = run_lru(&t, cache * mib, epochs);
    double ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) /
                (double)(t.nblocks * epochs);
    fprintf(stderr, "cyclic scan: cache %llu MiB, dataset %llu MiB (%d blocks), %d epochs\n",
            (unsigned long long)cache, (unsigned long long)dataset, t.nblocks, epochs);
    fprintf(stderr, "  policy: hit rate %.3f (bytes %.3f)   LRU: %.3f (bytes %.3f)   ideal %.3f\n",
            ratio(pol.hits, pol.reads), ratio(pol.hit_bytes, pol.bytes), ratio(lru.hits, lru.reads),
            ratio(lru.hit_bytes, lru.bytes),
            cache >= dataset ? 1.0 : (double)cache / (double)dataset);
    printf("RESULT mode=cache_cyclic cache_mib=%llu dataset_mib=%llu block_mib=%llu epochs=%d "
           "policy=lirs hit_rate=%.3f byte_hit_rate=%.3f lru_hit_rate=%.3f "
           "lru_byte_hit_rate=%.3f ns_per_access=%.0f\n",
           (unsigned long long)cache, (unsigned long long)dataset, (unsigned long long)block,
           epochs, ratio(pol.hits, pol.reads), ratio(pol.hit_bytes, pol.bytes),
           ratio(lru.hits, lru.reads), ratio(lru.hit_bytes, lru.bytes), ns);
    free(t.size);
    return 0;
}
