/* dataset_int.h: what dataset.c (registry, scan, index, origin, admin) and
 * dataset_read.c (records, batches, prefetch, warm) share. Not for other modules. */
#ifndef SLUICE_DATASET_INT_H
#define SLUICE_DATASET_INT_H

#include "cache.h"
#include "dataset.h"
#include "dataset_format.h"
#include "ev.h"

#include <stdbool.h>
#include <stdint.h>

struct s3_client;

enum ds_state { DS_SCANNING = 0, DS_READY, DS_ERROR };

/* One object of the index, in index order (object i). */
struct ds_obj {
    char *key;
    int64_t size;
    char etag[72];
};

/* A demand load: one cache_get waiting on a block. */
struct ds_load {
    struct cache_waiter w; /* first: the waiter is the load */
    struct dataset *ds;
    struct cache_key key;
    struct ds_load *next;
    bool warm; /* started by warm: counts toward its progress */
};

/* A remembered failure to load an object. */
struct ds_oerr {
    struct ds_oerr *next;
    uint64_t obj;
    int err;
    bool permanent; /* NoSuchKey, changed: served as an error record */
    int64_t at_us;
    char msg[160];
};

/* One record's place in an object (lines and tar). */
struct ds_rec {
    uint64_t off;
    uint64_t len;
    uint32_t name_off; /* into ds_ridx.names; name_len 0: no name */
    uint16_t name_len;
    uint8_t error;     /* the record is an error: name holds the message */
};

/* The records of one lines or tar object, found by reading it in order. All of them,
 * whatever their dataset, are on one LRU list (struct datasets) under one byte cap. */
struct ds_ridx {
    struct ds_ridx *prev, *next; /* LRU, most recent first */
    struct dataset *ds;
    uint64_t bytes;              /* what it holds, as counted in ridx_bytes */
    uint64_t obj;
    struct ds_rec *r;
    uint32_t n, cap;
    char *names;
    uint32_t names_len, names_cap;
    bool done;
    uint64_t pos;                    /* lines: next block; tar: next header */
    struct dsf_lines lines;
    char longname[DSF_TAR_NAME_MAX]; /* tar: the next member's name from 'L' or 'x' */
    uint16_t longname_len;
};

/* A sequential reader of one partition, matched by the objects it reads. */
struct ds_stream {
    bool used;
    int64_t cur_j;      /* last object served */
    int64_t pf_j;       /* next object to prefetch */
    uint32_t pf_blk;    /* next block of pf_j */
    int64_t last_us;
    int64_t win_us;     /* start of the rate window */
    int64_t win_bytes;
    double rate;        /* bytes per second, smoothed */
};

enum { DS_STREAMS = 8 };

struct ds_part {
    struct ds_stream s[DS_STREAMS];
};

struct ds_warm {
    bool active;
    bool waiting;        /* asked for while the first listing ran: starts after it */
    double want_percent; /* what was asked for: a percent (>= 0), or else want_bytes */
    int64_t want_bytes;
    int64_t target;      /* bytes to have cached */
    uint64_t cursor_obj; /* next block to look at, in index order */
    uint32_t cursor_blk;
    int64_t scheduled;   /* bytes looked at (cached or requested) */
    int64_t loaded;      /* bytes loaded by this warm */
    int64_t already;     /* bytes found cached */
    int inflight;
    uint64_t errors;
    char last_error[160];
    int64_t started_ms, finished_ms;
};

struct dataset {
    struct dataset *next;
    struct datasets *owner;
    uint8_t id[16];
    char name[250];
    int32_t parts;
    int64_t ts_ms; /* every record's timestamp: the topic's creation */
    int format;
    int64_t chunk_bytes, max_record;
    char uri[1100], bucket[64], prefix[1024], endpoint[256], region[64];
    struct s3_client *s3;
    struct cache_origin origin;
    /* the index */
    struct ds_obj *objs;
    uint64_t n, cap;
    int64_t total_bytes;
    int64_t **cum; /* [parts][objects in partition + 1]: prefix sums of sizes; lazy */
    /* scanning */
    int state;
    bool listing, rescan_wanted;
    struct ds_obj *pend;
    size_t npend, cappend;
    uint64_t list_pages;
    char error[320];
    int64_t scanned_ms;
    /* reads */
    struct ds_load *loads;
    struct ds_oerr *oerrs;
    uint64_t ridx_bytes; /* its record indexes' share of the owner's ridx_bytes */
    struct ds_part **pst; /* [parts], lazy */
    uint32_t pf_next;     /* the partition whose readers are topped up first next time */
    int64_t fills;        /* origin requests in flight (the cache is owed their completion) */
    bool dead;            /* topic deleted: freed once fills and listing are done */
    struct ds_warm warm;
    uint64_t error_records;
};

struct datasets {
    struct broker *b;
    struct cache *cache;
    struct dataset *all;
    struct ev_timer tick; /* drives warms */
    uint64_t block_bytes;
    /* record indexes of lines and tar objects, every dataset's: a cache, rebuilt from
     * the blocks when needed again */
    struct ds_ridx *ridx_head, *ridx_tail;
    uint64_t ridx_bytes, ridx_cap, ridx_evictions;
};

/* dataset.c */
struct config;
/* The cap on every dataset's record indexes together: an eighth of cache.memory.bytes
 * (1 MiB at least). They are a cache over the memory tier, so they share its setting. */
uint64_t ds_index_cap(const struct config *cfg);
struct dataset *ds_get(struct datasets *d, struct topic *t);
struct dataset *ds_find_id(struct datasets *d, const uint8_t id[16]);
void ds_key(const struct dataset *ds, uint64_t obj, uint32_t blk, struct cache_key *k);
/* Objects in partition p, and the global index of its object j. */
uint64_t ds_part_objects(const struct dataset *ds, int32_t p);
const int64_t *ds_cum(struct dataset *ds, int32_t p);
/* Wakes the parked fetches of the partition holding object obj, if it is resident. */
void ds_wake_obj(struct dataset *ds, uint64_t obj);
/* Frees ds if it was deleted and nothing is owed to it any more. Returns true if so. */
bool ds_maybe_free(struct dataset *ds);

/* dataset_read.c */
void ds_read_free(struct dataset *ds);     /* record indexes, streams, error memory */
void ds_cancel_loads(struct dataset *ds);  /* withdraws every pending waiter */
/* Warms percent (>= 0) of the dataset, or else bytes of it; asked for while the first
 * listing runs, it starts once the listing is done and the size is known. */
void ds_warm_start(struct dataset *ds, double percent, int64_t bytes);
void ds_warm_tick(struct dataset *ds);
uint32_t ds_blocks(const struct dataset *ds, uint64_t obj);
/* An origin request of ds completed: tops up every reader's prefetch window, so that
 * requests stay in flight between fetches (partitions take turns going first). */
void ds_fill_landed(struct dataset *ds);

#endif
