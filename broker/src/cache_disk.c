/* cache_disk.c: the disk tier. Why a file per block rather than slabs: blocks vary in
 * size (an object smaller than a block is one short block, and datasets of small images
 * are common), so fixed slab slots would waste most of the budget, while a log-structured
 * slab would force FIFO eviction and defeat the policy. The filesystem already allocates
 * variable-sized extents; 256 fan-out directories keep each one small.
 *
 * Ordering. One worker runs jobs in submission order, so a write, a later read and a
 * later unlink of one key reach the disk in that order; the loop can therefore treat a
 * block as readable as soon as its write is queued. Done callbacks may come back in any
 * order, so each entry has a generation and a job's result applies only to the entry it
 * was issued for. The index record is put after the file is complete and deleted before
 * the file is unlinked; a crash in between leaves an orphan file, removed by the sweep
 * at the next start, or (after a power cut) a record whose file is torn, which the
 * checksum rejects. */
#include "cache_disk.h"

#include "cache_policy.h"
#include "crc32c.h"
#include "ev.h"
#include "hash.h"
#include "log.h"
#include "store.h"
#include "work.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
    CDISK_VALUE_LEN = 24, /* version(1) pad(3) block_bytes(4) len(4) crc(4) stored_ms(8) */
    CDISK_VERSION = 1,
    CDISK_ALIGN = 4096, /* budget unit: a file takes whole filesystem blocks */
    CDISK_EIO = -1,
    CDISK_ECORRUPT = -2,
};

struct dentry {
    struct hnode hn;
    struct cache_key key;
    struct cpol_node *pol;
    uint64_t gen;
    uint32_t len;
    uint32_t crc;
    bool stored; /* its index record is written (crc is known) */
};

enum jkind { J_WRITE, J_READ, J_UNLINK, J_SWEEP };

struct djob {
    struct clist link; /* d->jobs */
    struct cdisk *d;
    enum jkind kind;
    struct cache_key key;
    uint64_t gen;
    const uint8_t *src; /* J_WRITE */
    size_t len;
    uint32_t crc; /* J_WRITE: computed; J_READ: expected when crc_known */
    bool crc_known;
    uint8_t *buf; /* J_READ: the bytes */
    int rc;
    char msg[128];
    cdisk_read_fn *read_fn;
    cdisk_release_fn *release;
    void *arg;
    uint8_t (*keys)[CACHE_KEY_LEN]; /* J_UNLINK: to remove; J_SWEEP: to keep, sorted */
    size_t nkeys;
};

struct cdisk {
    struct ev_loop *loop;
    struct store *store;
    struct work *work;
    char dir[1024];
    uint32_t block_bytes;
    struct htab map;
    struct cpol *pol;
    uint64_t next_gen;
    struct clist jobs;
    size_t njobs;
    cdisk_stat_fn *stat;
    void *ctx;
};

#define DSTAT(d, ns, field, delta)                                                                 \
    (d)->stat((d)->ctx, ns, offsetof(struct cache_stats, field), (int64_t)(delta))

static uint64_t asize(uint32_t len)
{
    uint64_t a = ((uint64_t)len + CDISK_ALIGN - 1) / CDISK_ALIGN * CDISK_ALIGN;
    return a ? a : CDISK_ALIGN;
}

/* ---- paths and file I/O (worker side; nothing here touches loop state) ---- */

static int path_of(const char *dir, const uint8_t key[CACHE_KEY_LEN], char *buf, size_t len,
                   bool sub_only)
{
    static const char hex[] = "0123456789abcdef";
    char name[2 * CACHE_KEY_LEN + 1];
    for (int i = 0; i < CACHE_KEY_LEN; i++) {
        name[2 * i] = hex[key[i] >> 4];
        name[2 * i + 1] = hex[key[i] & 15];
    }
    name[2 * CACHE_KEY_LEN] = 0;
    /* The fan-out directory is the last byte of the key's CRC, so blocks of one object
     * spread out. */
    uint8_t sub = (uint8_t)crc32c(0, key, CACHE_KEY_LEN);
    int n = sub_only ? snprintf(buf, len, "%s/%02x", dir, sub)
                     : snprintf(buf, len, "%s/%02x/%s", dir, sub, name);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

static void job_fail(struct djob *j, int rc, const char *what, int err)
{
    j->rc = rc;
    snprintf(j->msg, sizeof j->msg, "%s: %s", what, err ? strerror(err) : "checksum mismatch");
}

static uint32_t block_crc(const uint8_t key[CACHE_KEY_LEN], const uint8_t *p, size_t n)
{
    return crc32c(crc32c(0, key, CACHE_KEY_LEN), p, n);
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void run_write(struct djob *j)
{
    uint8_t k[CACHE_KEY_LEN];
    char path[1200];
    cache_key_pack(k, &j->key);
    j->crc = block_crc(k, j->src, j->len);
    if (path_of(j->d->dir, k, path, sizeof path, false) < 0) {
        job_fail(j, CDISK_EIO, "path too long", ENAMETOOLONG);
        return;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 && errno == ENOENT) {
        char sub[1200];
        path_of(j->d->dir, k, sub, sizeof sub, true);
        if (mkdir(sub, 0700) < 0 && errno != EEXIST) {
            job_fail(j, CDISK_EIO, "mkdir", errno);
            return;
        }
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    }
    if (fd < 0) {
        job_fail(j, CDISK_EIO, "open for write", errno);
        return;
    }
    int rc = write_all(fd, j->src, j->len);
    int err = errno;
    if (close(fd) < 0 && rc == 0) {
        rc = -1;
        err = errno;
    }
    if (rc < 0) {
        job_fail(j, CDISK_EIO, "write", err);
        unlink(path);
    }
}

static int read_all(int fd, uint8_t *p, size_t n)
{
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0) {
            errno = 0;
            return -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Reads the whole file into j->buf. Returns 0, or -1 with j->rc and j->msg set. */
static int read_file(struct djob *j, const char *path)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        job_fail(j, CDISK_EIO, "open", errno);
        return -1;
    }
    int rc = -1;
    if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != j->len) {
        j->rc = CDISK_ECORRUPT;
        snprintf(j->msg, sizeof j->msg, "file is %lld bytes, index says %zu", (long long)st.st_size,
                 j->len);
    } else if (!(j->buf = malloc(j->len ? j->len : 1))) {
        job_fail(j, CDISK_EIO, "read buffer", ENOMEM);
    } else if (read_all(fd, j->buf, j->len) < 0) {
        job_fail(j, CDISK_EIO, "read", errno ? errno : EIO);
    } else {
        rc = 0;
    }
    close(fd);
    return rc;
}

static void run_read(struct djob *j)
{
    uint8_t k[CACHE_KEY_LEN];
    char path[1200];
    cache_key_pack(k, &j->key);
    if (path_of(j->d->dir, k, path, sizeof path, false) < 0) {
        job_fail(j, CDISK_EIO, "path too long", ENAMETOOLONG);
        return;
    }
    if (read_file(j, path) < 0)
        return;
    uint32_t crc = block_crc(k, j->buf, j->len);
    if (j->crc_known && crc != j->crc)
        job_fail(j, CDISK_ECORRUPT, "verify", 0);
    j->crc = crc;
}

static void run_unlink(struct djob *j)
{
    char path[1200];
    for (size_t i = 0; i < j->nkeys; i++)
        if (path_of(j->d->dir, j->keys[i], path, sizeof path, false) == 0)
            unlink(path);
}

static int key_cmp(const void *a, const void *b)
{
    return memcmp(a, b, CACHE_KEY_LEN);
}

/* "0a1b..." (56 hex digits) back to key bytes. Returns 0 or -1. */
static int parse_name(const char *s, uint8_t key[CACHE_KEY_LEN])
{
    for (int i = 0; i < 2 * CACHE_KEY_LEN; i++) {
        char c = s[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0)
            return -1;
        key[i / 2] = (uint8_t)(i % 2 ? (key[i / 2] << 4) | v : v);
    }
    return s[2 * CACHE_KEY_LEN] ? -1 : 0;
}

/* Removes every file under the fan-out directories whose key the index did not hold. */
static void run_sweep(struct djob *j)
{
    char sub[1200], path[sizeof sub + 258];
    size_t removed = 0;
    for (int h = 0; h < 256; h++) {
        snprintf(sub, sizeof sub, "%s/%02x", j->d->dir, h);
        DIR *dh = opendir(sub);
        if (!dh)
            continue;
        struct dirent *de;
        while ((de = readdir(dh))) {
            uint8_t k[CACHE_KEY_LEN];
            if (de->d_name[0] == '.')
                continue;
            if (parse_name(de->d_name, k) == 0 &&
                bsearch(k, j->keys, j->nkeys, CACHE_KEY_LEN, key_cmp))
                continue;
            snprintf(path, sizeof path, "%s/%s", sub, de->d_name);
            removed += unlink(path) == 0;
        }
        closedir(dh);
    }
    j->rc = (int)(removed > 0x7fffffff ? 0x7fffffff : removed);
}

static void job_run(void *arg)
{
    struct djob *j = arg;
    switch (j->kind) {
    case J_WRITE:
        run_write(j);
        break;
    case J_READ:
        run_read(j);
        break;
    case J_UNLINK:
        run_unlink(j);
        break;
    case J_SWEEP:
        run_sweep(j);
        break;
    }
}

/* ---- the tier's state (loop side) ---- */

static struct dentry *find(const struct cdisk *d, const struct cache_key *k)
{
    for (struct hnode *n = htab_first(&d->map, cache_key_hash(k)); n; n = htab_next(n)) {
        struct dentry *e = cache_container_of(n, struct dentry, hn);
        if (cache_key_eq(&e->key, k))
            return e;
    }
    return NULL;
}

static struct dentry *find_gen(const struct cdisk *d, const struct cache_key *k, uint64_t gen)
{
    struct dentry *e = find(d, k);
    return e && e->gen == gen ? e : NULL;
}

static void job_free(struct djob *j)
{
    free(j->buf);
    free(j->keys);
    free(j);
}

static void job_done(void *arg);

static struct djob *job_new(struct cdisk *d, enum jkind kind)
{
    struct djob *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->d = d;
    j->kind = kind;
    return j;
}

/* Queues j. Returns 0, or -1 (j is freed). */
static int job_submit(struct djob *j)
{
    struct cdisk *d = j->d;
    clist_push_back(&d->jobs, &j->link);
    d->njobs++;
    if (work_submit(d->work, job_run, job_done, j) == 0)
        return 0;
    clist_del(&j->link);
    d->njobs--;
    job_free(j);
    return -1;
}

static void index_put(struct cdisk *d, const struct dentry *e)
{
    uint8_t k[CACHE_KEY_LEN], v[CDISK_VALUE_LEN] = {CDISK_VERSION};
    cache_key_pack(k, &e->key);
    kc_put_be32(v + 4, d->block_bytes);
    kc_put_be32(v + 8, e->len);
    kc_put_be32(v + 12, e->crc);
    kc_put_be64(v + 16, (uint64_t)ev_wall_ms());
    store_put(d->store, STORE_CF_CACHE, k, sizeof k, v, sizeof v);
}

static void unlink_keys(struct cdisk *d, uint8_t (*keys)[CACHE_KEY_LEN], size_t n)
{
    struct djob *j = job_new(d, J_UNLINK);
    if (!j) {
        free(keys);
        return;
    }
    j->keys = keys;
    j->nkeys = n;
    job_submit(j);
}

/* Forgets e: its index record (when written) and its place in the map, the policy
 * (unless evicted, which took it out already) and the figures. Its file stays. */
static void forget(struct cdisk *d, struct dentry *e, bool evicted)
{
    uint8_t k[CACHE_KEY_LEN];
    htab_remove(&d->map, &e->hn);
    if (!evicted)
        cpol_remove(d->pol, e->pol);
    if (e->stored) {
        cache_key_pack(k, &e->key);
        store_del(d->store, STORE_CF_CACHE, k, CACHE_KEY_LEN);
    }
    DSTAT(d, e->key.ns, disk.bytes, -(int64_t)asize(e->len));
    DSTAT(d, e->key.ns, disk.blocks, -1);
    if (evicted)
        DSTAT(d, e->key.ns, disk.evictions, 1);
}

/* Forgets e and unlinks its file on the worker. */
static void drop(struct cdisk *d, struct dentry *e, bool evicted)
{
    uint8_t(*k)[CACHE_KEY_LEN] = malloc(CACHE_KEY_LEN);
    forget(d, e, evicted);
    if (k) {
        cache_key_pack(k[0], &e->key);
        unlink_keys(d, k, 1);
    }
    free(e);
}

static bool can_evict(void *ctx, void *owner)
{
    return owner != ctx;
}

static void evict_over(struct cdisk *d, struct dentry *keep)
{
    struct dentry *v;
    while ((v = cpol_evict(d->pol, can_evict, keep)))
        drop(d, v, true);
}

/* Links a new entry into the map and the policy. Returns it, or NULL. */
static struct dentry *admit(struct cdisk *d, const struct cache_key *k, uint32_t len)
{
    struct dentry *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->key = *k;
    e->len = len;
    e->gen = ++d->next_gen;
    uint64_t h = cache_key_hash(k);
    if (!(e->pol = cpol_insert(d->pol, h, (uint32_t)asize(len), e))) {
        free(e);
        return NULL;
    }
    htab_insert(&d->map, &e->hn, h);
    DSTAT(d, k->ns, disk.bytes, asize(len));
    DSTAT(d, k->ns, disk.blocks, 1);
    return e;
}

static void write_done(struct cdisk *d, struct djob *j)
{
    struct dentry *e = find_gen(d, &j->key, j->gen);
    if (j->release)
        j->release(j->arg);
    if (!e)
        return; /* evicted or invalidated meanwhile; its unlink follows the write */
    if (j->rc < 0) {
        log_warn("cache: writing a disk block failed (%s); dropping it", j->msg);
        DSTAT(d, e->key.ns, disk.errors, 1);
        drop(d, e, false);
        return;
    }
    e->crc = j->crc;
    e->stored = true;
    index_put(d, e);
    DSTAT(d, e->key.ns, disk.fills, 1);
}

static void read_done(struct cdisk *d, struct djob *j)
{
    struct dentry *e = find_gen(d, &j->key, j->gen);
    if (j->rc == 0 && e && e->stored && !j->crc_known && j->crc != e->crc) {
        j->rc = CDISK_ECORRUPT;
        snprintf(j->msg, sizeof j->msg, "verify: checksum mismatch");
    }
    if (j->rc < 0) {
        char hexkey[64];
        snprintf(hexkey, sizeof hexkey, "object %llu block %u", (unsigned long long)j->key.object,
                 j->key.block);
        log_warn("cache: disk %s unusable (%s); dropping it", hexkey, j->msg);
        DSTAT(d, j->key.ns, disk.errors, 1);
        if (e)
            drop(d, e, false);
        free(j->buf);
        j->buf = NULL;
        j->read_fn(j->arg, NULL, 0, j->rc, j->msg);
        return;
    }
    DSTAT(d, j->key.ns, disk.hits, 1);
    uint8_t *buf = j->buf;
    j->buf = NULL;
    j->read_fn(j->arg, buf, j->len, 0, NULL);
}

static void job_done(void *arg)
{
    struct djob *j = arg;
    struct cdisk *d = j->d;
    clist_del(&j->link);
    d->njobs--;
    if (j->kind == J_WRITE)
        write_done(d, j);
    else if (j->kind == J_READ)
        read_done(d, j);
    else if (j->kind == J_SWEEP && j->rc > 0)
        log_info("cache: removed %d disk files the index did not know", j->rc);
    job_free(j);
}

/* ---- start-up ---- */

/* Parses one index record into e. Returns 0, or -1 for a record to delete. */
static int parse_record(const struct cdisk *d, const uint8_t *k, size_t kl, const uint8_t *v,
                        size_t vl, struct dentry *e)
{
    if (kl != CACHE_KEY_LEN || vl != CDISK_VALUE_LEN || v[0] != CDISK_VERSION ||
        kc_get_be32(v + 4) != d->block_bytes || kc_get_be32(v + 8) > d->block_bytes)
        return -1;
    cache_key_unpack(&e->key, k);
    e->len = kc_get_be32(v + 8);
    e->crc = kc_get_be32(v + 12);
    e->stored = true;
    return 0;
}

/* Loads the index; returns the sorted keys it holds (for the sweep) in *keys. */
static int load_index(struct cdisk *d, uint8_t (**keys)[CACHE_KEY_LEN], size_t *nkeys)
{
    struct store_it *it = store_it_new(d->store, STORE_CF_CACHE, NULL, 0, NULL, 0);
    struct store_wb *bad = store_wb_new(d->store);
    size_t n = 0, cap = 0;
    int rc = it && bad ? 0 : -1;
    for (store_it_first(it); rc == 0 && store_it_valid(it); store_it_next(it)) {
        size_t kl, vl;
        const uint8_t *k = store_it_key(it, &kl), *v = store_it_value(it, &vl);
        struct dentry tmp = {0};
        if (parse_record(d, k, kl, v, vl, &tmp) < 0) {
            store_wb_del(bad, STORE_CF_CACHE, k, kl);
            continue;
        }
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 256;
            void *a = realloc(*keys, nc * CACHE_KEY_LEN);
            if (!a) {
                rc = -1;
                break;
            }
            *keys = a;
            cap = nc;
        }
        struct dentry *e = admit(d, &tmp.key, tmp.len);
        if (!e) {
            rc = -1;
            break;
        }
        e->crc = tmp.crc;
        e->stored = true;
        memcpy((*keys)[n++], k, CACHE_KEY_LEN);
    }
    if (bad && store_wb_count(bad) > 0) {
        log_info("cache: dropping %zu disk index records of another block size or format",
                 store_wb_count(bad));
        store_write(d->store, bad, 0);
    }
    store_wb_free(bad);
    store_it_free(it);
    *nkeys = n;
    return rc;
}

static int mkdir_p(const char *dir)
{
    char p[1024];
    snprintf(p, sizeof p, "%s", dir);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = 0;
        if (mkdir(p, 0700) < 0 && errno != EEXIST)
            return -1;
        *s = '/';
    }
    return mkdir(p, 0700) < 0 && errno != EEXIST ? -1 : 0;
}

struct cdisk *cdisk_new(struct ev_loop *loop, struct store *store, const char *dir,
                        uint64_t capacity, uint32_t block_bytes, cdisk_stat_fn *stat, void *ctx)
{
    struct cdisk *d = calloc(1, sizeof *d);
    uint8_t(*keys)[CACHE_KEY_LEN] = NULL;
    size_t nkeys = 0;
    if (!d)
        return NULL;
    *d = (struct cdisk){
        .loop = loop, .store = store, .block_bytes = block_bytes, .stat = stat, .ctx = ctx};
    clist_init(&d->jobs);
    if (snprintf(d->dir, sizeof d->dir, "%s", dir) >= (int)sizeof d->dir - 64 ||
        mkdir_p(d->dir) < 0) {
        log_error("cache: cannot use disk directory %s: %s", dir, strerror(errno));
        goto fail;
    }
    d->pol = cpol_new(capacity, cpol_probation_for(capacity, asize(block_bytes)));
    d->work = work_new(loop);
    if (!d->pol || !d->work || load_index(d, &keys, &nkeys) < 0) {
        log_error("cache: cannot start the disk tier in %s", dir);
        goto fail;
    }
    evict_over(d, NULL);
    struct djob *j = job_new(d, J_SWEEP);
    if (j) {
        j->keys = keys;
        j->nkeys = nkeys;
        keys = NULL;
        job_submit(j);
    }
    free(keys);
    return d;
fail:
    free(keys);
    cdisk_free(d);
    return NULL;
}

void cdisk_free(struct cdisk *d)
{
    if (!d)
        return;
    work_free(d->work); /* waits for the running job; queued ones never run */
    struct clist *l;
    while ((l = clist_front(&d->jobs))) {
        clist_del(l);
        job_free(cache_container_of(l, struct djob, link));
    }
    HTAB_FOREACH(&d->map, i, n, nx)
        free(cache_container_of(n, struct dentry, hn));
    htab_free(&d->map);
    cpol_free(d->pol);
    free(d);
}

/* ---- operations ---- */

bool cdisk_has(const struct cdisk *d, const struct cache_key *k)
{
    return find(d, k) != NULL;
}

int cdisk_read(struct cdisk *d, const struct cache_key *k, cdisk_read_fn *fn, void *arg)
{
    struct dentry *e = find(d, k);
    if (!e) {
        DSTAT(d, k->ns, disk.misses, 1);
        return 1;
    }
    struct djob *j = job_new(d, J_READ);
    if (!j)
        return -1;
    j->key = *k;
    j->gen = e->gen;
    j->len = e->len;
    j->crc = e->crc;
    j->crc_known = e->stored; /* else its write is ahead of this read in the queue */
    j->read_fn = fn;
    j->arg = arg;
    if (job_submit(j) < 0)
        return -1;
    cpol_hit(d->pol, e->pol);
    return 0;
}

int cdisk_write(struct cdisk *d, const struct cache_key *k, const uint8_t *data, size_t len,
                cdisk_release_fn *release, void *arg)
{
    if (len > d->block_bytes || find(d, k))
        return -1;
    struct dentry *e = admit(d, k, (uint32_t)len);
    struct djob *j = e ? job_new(d, J_WRITE) : NULL;
    if (!j) {
        if (e)
            drop(d, e, false);
        return -1;
    }
    j->key = *k;
    j->gen = e->gen;
    j->src = data;
    j->len = len;
    j->release = release;
    j->arg = arg;
    if (job_submit(j) < 0) {
        drop(d, e, false);
        return -1;
    }
    evict_over(d, e);
    return 0;
}

void cdisk_invalidate(struct cdisk *d, const uint8_t ns[16], const uint64_t *object)
{
    uint8_t lo[CACHE_KEY_LEN + 1], hi[CACHE_KEY_LEN + 1];
    size_t ll = object ? 24 : 16;
    memcpy(lo, ns, 16);
    if (object)
        kc_put_be64(lo + 16, *object);
    memcpy(hi, lo, ll);
    memset(hi + ll, 0xff, sizeof hi - ll); /* above every 28-byte key with that prefix */
    struct store_wb *wb = store_wb_new(d->store);
    if (wb) {
        store_wb_del_range(wb, STORE_CF_CACHE, lo, ll, hi, sizeof hi);
        store_write(d->store, wb, 0);
        store_wb_free(wb);
    }
    uint8_t(*keys)[CACHE_KEY_LEN] = NULL;
    size_t nkeys = 0, cap = 0;
    HTAB_FOREACH(&d->map, i, n, nx) {
        struct dentry *e = cache_container_of(n, struct dentry, hn);
        if (memcmp(e->key.ns, ns, 16) != 0 || (object && e->key.object != *object))
            continue;
        if (nkeys == cap) {
            size_t nc = cap ? cap * 2 : 64;
            void *a = realloc(keys, nc * CACHE_KEY_LEN);
            if (a) {
                keys = a;
                cap = nc;
            }
        }
        if (nkeys < cap)
            cache_key_pack(keys[nkeys++], &e->key);
        e->stored = false; /* the range delete took its record */
        forget(d, e, false);
        free(e);
    }
    if (nkeys)
        unlink_keys(d, keys, nkeys); /* a file left out for want of memory: the next sweep */
    else
        free(keys);
}

uint64_t cdisk_capacity(const struct cdisk *d)
{
    struct cpol_stats st;
    cpol_stats(d->pol, &st);
    return st.capacity;
}

size_t cdisk_queue(const struct cdisk *d)
{
    return d->njobs;
}

int cdisk_path(const struct cdisk *d, const struct cache_key *k, char *buf, size_t len)
{
    uint8_t kb[CACHE_KEY_LEN];
    cache_key_pack(kb, k);
    return path_of(d->dir, kb, buf, len, false);
}
