/* ctl_cache.c: the informer cache (hash table by key, chained index by value). */
#include "ctl_cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_util.h"

int ctl_cache_init(struct ctl_cache *c)
{
    memset(c, 0, sizeof *c);
    c->size = c->isize = 1024;
    c->tab = calloc(c->size, sizeof *c->tab);
    c->itab = calloc(c->isize, sizeof *c->itab);
    if (!c->tab || !c->itab) {
        ctl_cache_free(c);
        return -1;
    }
    return 0;
}

static void obj_free(struct ctl_obj *o)
{
    free(o->json);
    free(o->idx);
    free(o);
}

void ctl_cache_free(struct ctl_cache *c)
{
    for (size_t i = 0; c->tab && i < c->size; i++) {
        struct ctl_obj *o = c->tab[i];
        while (o) {
            struct ctl_obj *n = o->hnext;
            obj_free(o);
            o = n;
        }
    }
    free(c->tab);
    free(c->itab);
    memset(c, 0, sizeof *c);
}

static struct ctl_obj **c_slot(const struct ctl_cache *c, const char *key, uint64_t h)
{
    struct ctl_obj **pp = &c->tab[h & (c->size - 1)];
    while (*pp && !((*pp)->hash == h && !strcmp((*pp)->key, key)))
        pp = &(*pp)->hnext;
    return pp;
}

static void idx_unlink(struct ctl_cache *c, struct ctl_obj *o)
{
    if (!o->idx)
        return;
    struct ctl_obj **pp = &c->itab[o->ihash & (c->isize - 1)];
    while (*pp && *pp != o)
        pp = &(*pp)->inext;
    if (*pp)
        *pp = o->inext;
    o->inext = NULL;
}

static void idx_link(struct ctl_cache *c, struct ctl_obj *o)
{
    if (!o->idx)
        return;
    o->ihash = ctl_hash(o->idx, strlen(o->idx));
    struct ctl_obj **head = &c->itab[o->ihash & (c->isize - 1)];
    o->inext = *head;
    *head = o;
}

/* Doubles both tables when the load passes 1. */
static void c_grow(struct ctl_cache *c)
{
    size_t ns = c->size * 2;
    struct ctl_obj **nt = calloc(ns, sizeof *nt), **ni = calloc(ns, sizeof *ni);
    if (!nt || !ni) {
        free(nt);
        free(ni);
        return;
    }
    for (size_t i = 0; i < c->size; i++) {
        for (struct ctl_obj *o = c->tab[i], *n; o; o = n) {
            n = o->hnext;
            o->hnext = nt[o->hash & (ns - 1)];
            nt[o->hash & (ns - 1)] = o;
            if (o->idx) {
                o->inext = ni[o->ihash & (ns - 1)];
                ni[o->ihash & (ns - 1)] = o;
            }
        }
    }
    free(c->tab);
    free(c->itab);
    c->tab = nt;
    c->itab = ni;
    c->size = c->isize = ns;
}

int ctl_cache_put(struct ctl_cache *c, const char *key, char *json, const char *idx,
                  char **old_idx)
{
    uint64_t h = ctl_hash(key, strlen(key));
    struct ctl_obj **pp = c_slot(c, key, h), *o = *pp;
    char *nidx = idx ? strdup(idx) : NULL;
    if (old_idx)
        *old_idx = NULL;
    if (idx && !nidx) {
        free(json);
        return -1;
    }
    if (!o) {
        size_t kl = strlen(key);
        o = calloc(1, sizeof *o + kl + 1);
        if (!o) {
            free(json);
            free(nidx);
            return -1;
        }
        memcpy(o->key, key, kl + 1);
        o->hash = h;
        o->hnext = c->tab[h & (c->size - 1)];
        c->tab[h & (c->size - 1)] = o;
        c->count++;
        c->bytes += kl + sizeof *o;
    } else {
        c->bytes -= strlen(o->json);
        free(o->json);
        idx_unlink(c, o);
        if (old_idx)
            *old_idx = o->idx;
        else
            free(o->idx);
    }
    o->json = json;
    o->idx = nidx;
    o->gen = c->gen;
    c->bytes += strlen(json);
    idx_link(c, o);
    if (c->count > c->size)
        c_grow(c);
    return 0;
}

bool ctl_cache_del(struct ctl_cache *c, const char *key, char **old_idx)
{
    struct ctl_obj **pp = c_slot(c, key, ctl_hash(key, strlen(key))), *o = *pp;
    if (old_idx)
        *old_idx = NULL;
    if (!o)
        return false;
    *pp = o->hnext;
    idx_unlink(c, o);
    c->count--;
    c->bytes -= strlen(o->json) + strlen(o->key) + sizeof *o;
    if (old_idx) {
        *old_idx = o->idx;
        o->idx = NULL;
    }
    obj_free(o);
    return true;
}

const struct ctl_obj *ctl_cache_find(const struct ctl_cache *c, const char *key)
{
    return *c_slot(c, key, ctl_hash(key, strlen(key)));
}

char *ctl_cache_get(const struct ctl_cache *c, const char *key)
{
    const struct ctl_obj *o = ctl_cache_find(c, key);
    return o ? strdup(o->json) : NULL;
}

void ctl_cache_foreach(const struct ctl_cache *c, ctl_cache_fn *fn, void *arg)
{
    for (size_t i = 0; i < c->size; i++)
        for (const struct ctl_obj *o = c->tab[i]; o; o = o->hnext)
            fn(arg, o);
}

void ctl_cache_foreach_idx(const struct ctl_cache *c, const char *idx, ctl_cache_fn *fn,
                           void *arg)
{
    uint64_t h = ctl_hash(idx, strlen(idx));
    for (const struct ctl_obj *o = c->itab[h & (c->isize - 1)]; o; o = o->inext)
        if (o->ihash == h && !strcmp(o->idx, idx))
            fn(arg, o);
}

void ctl_cache_begin_relist(struct ctl_cache *c)
{
    c->gen++;
}

size_t ctl_cache_sweep(struct ctl_cache *c, ctl_cache_fn *fn, void *arg)
{
    size_t n = 0;
    for (size_t i = 0; i < c->size; i++) {
        struct ctl_obj **pp = &c->tab[i];
        while (*pp) {
            struct ctl_obj *o = *pp;
            if (o->gen == c->gen) {
                pp = &o->hnext;
                continue;
            }
            if (fn)
                fn(arg, o);
            *pp = o->hnext;
            idx_unlink(c, o);
            c->count--;
            c->bytes -= strlen(o->json) + strlen(o->key) + sizeof *o;
            obj_free(o);
            n++;
        }
    }
    return n;
}

void ctl_obj_strip(cJSON *obj)
{
    cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    cJSON_DeleteItemFromObjectCaseSensitive(md, "managedFields");
    cJSON *ann = cJSON_GetObjectItemCaseSensitive(md, "annotations");
    cJSON_DeleteItemFromObjectCaseSensitive(ann, "kubectl.kubernetes.io/last-applied-configuration");
    if (ann && !ann->child)
        cJSON_DeleteItemFromObjectCaseSensitive(md, "annotations");
}

int ctl_obj_key(const cJSON *obj, char *buf, size_t cap)
{
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    const cJSON *ns = cJSON_GetObjectItemCaseSensitive(md, "namespace");
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(md, "name");
    if (!cJSON_IsString(nm))
        return -1;
    int n = snprintf(buf, cap, "%s/%s", cJSON_IsString(ns) ? ns->valuestring : "",
                     nm->valuestring);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}
