/* ctl_cache.h: an informer cache: the objects of one kind keyed by "namespace/name" in a
 * hash table, each kept as compact JSON text (managed fields and kubectl's
 * last-applied annotation stripped) so that 100,000 objects stay small. A secondary
 * index groups objects by one string (the broker topic name for Topics, the namespace
 * for Pods). Not thread-safe: the controller's lock is held around every call. */
#ifndef CTL_CACHE_H
#define CTL_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

struct ctl_obj {
    struct ctl_obj *hnext, *inext;
    uint64_t hash, ihash;
    uint32_t gen; /* the list generation that last saw it */
    char *json;   /* compact JSON of the object */
    char *idx;    /* secondary index value, or NULL */
    char key[];   /* "namespace/name" */
};

struct ctl_cache {
    struct ctl_obj **tab, **itab;
    size_t size, isize, count;
    size_t bytes; /* JSON and keys held */
    uint32_t gen;
};

int ctl_cache_init(struct ctl_cache *c);
void ctl_cache_free(struct ctl_cache *c);
/* Stores json (taken over) and idx (copied, may be NULL) under key. *old_idx (if not NULL)
 * gets a copy of the replaced entry's index value or NULL. Returns 0, -1 on OOM (json is
 * freed). */
int ctl_cache_put(struct ctl_cache *c, const char *key, char *json, const char *idx,
                  char **old_idx);
/* Removes key. Returns true if it was there; *old_idx as for put. */
bool ctl_cache_del(struct ctl_cache *c, const char *key, char **old_idx);
const struct ctl_obj *ctl_cache_find(const struct ctl_cache *c, const char *key);
/* A fresh copy of key's JSON, or NULL. */
char *ctl_cache_get(const struct ctl_cache *c, const char *key);
typedef void ctl_cache_fn(void *arg, const struct ctl_obj *o);
void ctl_cache_foreach(const struct ctl_cache *c, ctl_cache_fn *fn, void *arg);
/* Calls fn for each object whose index value is idx. */
void ctl_cache_foreach_idx(const struct ctl_cache *c, const char *idx, ctl_cache_fn *fn,
                           void *arg);
/* Starts a relist: objects put from now on carry the new generation. */
void ctl_cache_begin_relist(struct ctl_cache *c);
/* Ends a relist: removes objects the relist did not see, calling fn before each goes.
 * Returns how many were removed. */
size_t ctl_cache_sweep(struct ctl_cache *c, ctl_cache_fn *fn, void *arg);

/* Drops metadata.managedFields and the last-applied-configuration annotation in place. */
void ctl_obj_strip(cJSON *obj);
/* Builds "namespace/name" of obj into buf. Returns 0, or -1 if it has no name. */
int ctl_obj_key(const cJSON *obj, char *buf, size_t cap);

#endif
