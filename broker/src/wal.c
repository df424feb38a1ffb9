/* wal.c: the store's write-ahead log (see wal.h for the format). Appends come from
 * the store's writer (the event loop, or a worker holding the store's write lock);
 * wal_sync comes from the group-commit thread. They share the segment table under a
 * mutex; the file descriptors of segments a sync is working on are never closed
 * under it. */
#include "wal.h"

#include "crc32c.h"
#include "kcodec.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

static const char wal_magic[8] = {'S', 'L', 'U', 'I', 'C', 'E', 'W', 'L'};
/* Free segments kept for reuse: enough to cover the swing between RocksDB flushes,
 * so that in steady state no segment file is created or deleted. */
enum { WAL_VERSION = 1, WAL_SPARE_MAX = 4 };

struct seg {
    int fd;
    uint64_t id;        /* file name: %016llx.wal */
    uint64_t first_seq; /* of its first record (from the header) */
    uint64_t salt;      /* random per use of the file; in every record's crc */
    uint64_t last_seq;  /* of its last record; first_seq - 1 while it has none */
    uint64_t size;      /* bytes in the file */
    uint64_t wgen;      /* writes to the file so far (under mu) */
    uint64_t sgen;      /* writes covered by a finished fdatasync (under mu) */
    bool live;          /* may hold records RocksDB has not persisted */
};

struct wal {
    char *dir;
    uint64_t seg_bytes;
    wal_persisted_fn *persisted;
    void *arg;
    pthread_mutex_t mu; /* segs, n, every seg's wgen/sgen, syncers, stats.syncs */
    struct seg **segs;
    size_t n, cap;
    int syncers;     /* wal_sync calls between their snapshot and their update */
    bool dir_dirty;  /* a segment was created since the directory was last synced */
    struct seg *cur; /* where appends go; NULL until the first append */
    uint64_t pos;    /* next append offset in cur */
    uint64_t next_id;
    struct wal_stats st;
};

static void seg_path(const struct wal *w, uint64_t id, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%016" PRIx64 ".wal", w->dir, id);
}

/* The salt makes a record left from a file's earlier use fail the check even where
 * its seq and position line up with the current use's. */
static uint32_t record_crc(uint64_t salt, uint64_t seq, const void *payload, size_t len)
{
    uint8_t s[16];
    kc_put_be64(s, salt);
    kc_put_be64(s + 8, seq);
    return crc32c(crc32c(0, s, 16), payload, len);
}

static uint64_t new_salt(const struct seg *s)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof v, GRND_NONBLOCK) != (ssize_t)sizeof v) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        v = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    }
    return v ^ (s->first_seq * 0x9e3779b97f4a7c15u);
}

static void header_encode(uint8_t h[WAL_HEADER_LEN], uint64_t first_seq, uint64_t salt)
{
    memset(h, 0, WAL_HEADER_LEN);
    memcpy(h, wal_magic, 8);
    kc_put_be32(h + 8, WAL_VERSION);
    kc_put_be64(h + 16, first_seq);
    kc_put_be64(h + 24, salt);
    kc_put_be32(h + 12, crc32c(0, h + 16, 16));
}

/* Returns 0 with the first sequence number and salt of a valid header, or -1. */
static int header_decode(const uint8_t *h, uint64_t *first_seq, uint64_t *salt)
{
    if (memcmp(h, wal_magic, 8) != 0 || kc_get_be32(h + 8) != WAL_VERSION ||
        kc_get_be32(h + 12) != crc32c(0, h + 16, 16))
        return -1;
    *first_seq = kc_get_be64(h + 16);
    *salt = kc_get_be64(h + 24);
    return *first_seq > 0 ? 0 : -1;
}

/* Only names this module makes: 16 hex digits and ".wal". */
static bool seg_name(const char *name, uint64_t *id)
{
    if (strlen(name) != 20 || strcmp(name + 16, ".wal") != 0)
        return false;
    *id = 0;
    for (int i = 0; i < 16; i++) {
        char c = name[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return false;
        *id = *id << 4 | (uint64_t)d;
    }
    return true;
}

static int pwrite_all(int fd, const struct iovec *iov, int cnt, uint64_t off)
{
    struct iovec v[4];
    memcpy(v, iov, (size_t)cnt * sizeof *v);
    struct iovec *p = v;
    while (cnt > 0) {
        ssize_t r = pwritev(fd, p, cnt, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        off += (uint64_t)r;
        while (cnt > 0 && (size_t)r >= p->iov_len) {
            r -= (ssize_t)p->iov_len;
            p++;
            cnt--;
        }
        if (cnt > 0) {
            p->iov_base = (uint8_t *)p->iov_base + r;
            p->iov_len -= (size_t)r;
        }
    }
    return 0;
}

static int table_add(struct wal *w, struct seg *s)
{
    int rc = 0;
    pthread_mutex_lock(&w->mu); /* a sync may be reading the table */
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 8;
        struct seg **n = realloc(w->segs, cap * sizeof *n);
        if (n) {
            w->segs = n;
            w->cap = cap;
        }
    }
    if (w->n < w->cap)
        w->segs[w->n++] = s;
    else
        rc = -1;
    pthread_mutex_unlock(&w->mu);
    return rc;
}

static void seg_free(struct seg *s)
{
    if (s->fd >= 0)
        close(s->fd);
    free(s);
}

/* Overwrites a segment's header with zeros, so no reader takes its old records for
 * new ones, and makes that durable. */
static int seg_invalidate(struct wal *w, struct seg *s)
{
    uint8_t z[WAL_HEADER_LEN] = {0};
    struct iovec v = {z, sizeof z};
    if (s->size < WAL_HEADER_LEN)
        return 0;
    if (pwrite_all(s->fd, &v, 1, 0) < 0 || fdatasync(s->fd) < 0) {
        log_error("wal: cannot invalidate segment %016" PRIx64 ": %s", s->id, strerror(errno));
        return -1;
    }
    s->first_seq = s->last_seq = 0;
    s->live = false;
    return 0;
}

static int sync_dir(const struct wal *w)
{
    int dfd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -1;
    int rc = fsync(dfd);
    close(dfd);
    return rc;
}

/* ---- open and replay ---- */

static int by_first_seq(const void *a, const void *b)
{
    const struct seg *x = *(struct seg *const *)a, *y = *(struct seg *const *)b;
    if (x->first_seq != y->first_seq)
        return x->first_seq < y->first_seq ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Opens every segment file in the directory into the table, reading its header. */
static int load_segments(struct wal *w, char **err)
{
    DIR *d = opendir(w->dir);
    if (!d) {
        if (asprintf(err, "cannot open %s: %s", w->dir, strerror(errno)) < 0)
            *err = NULL;
        return -1;
    }
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        uint64_t id;
        if (!seg_name(e->d_name, &id))
            continue;
        char path[4096];
        seg_path(w, id, path, sizeof path);
        struct seg *s = calloc(1, sizeof *s);
        struct stat sb;
        uint8_t h[WAL_HEADER_LEN];
        if (!s || (s->fd = open(path, O_RDWR | O_CLOEXEC)) < 0 || fstat(s->fd, &sb) < 0) {
            if (asprintf(err, "cannot open %s: %s", path, strerror(errno)) < 0)
                *err = NULL;
            if (s && s->fd >= 0)
                close(s->fd);
            free(s);
            rc = -1;
            break;
        }
        s->id = id;
        s->size = (uint64_t)sb.st_size;
        if (s->size < WAL_HEADER_LEN || pread(s->fd, h, sizeof h, 0) != (ssize_t)sizeof h ||
            header_decode(h, &s->first_seq, &s->salt) < 0)
            s->first_seq = 0; /* never finished, or invalidated: a free segment */
        s->last_seq = s->first_seq ? s->first_seq - 1 : 0;
        if (id >= w->next_id)
            w->next_id = id + 1;
        if (table_add(w, s) < 0) {
            seg_free(s);
            *err = strdup("out of memory");
            rc = -1;
        }
    }
    closedir(d);
    return rc;
}

struct replay {
    uint64_t after;    /* records at or below are already in RocksDB */
    uint64_t expected; /* the next record of the chain; 0 before the chain starts */
    bool ended;        /* the chain ended (torn or missing record) */
    wal_replay_fn *fn;
    void *arg;
};

/* Reads one segment's records, continuing the chain. Returns 0, or -1 when fn failed. */
static int replay_segment(struct wal *w, struct seg *s, struct replay *r)
{
    if (r->expected && s->first_seq != r->expected) {
        if (s->first_seq > r->expected && s->first_seq - 1 > r->after) {
            /* records r->expected .. first_seq-1 are nowhere: they were never synced
             * (a sync covers every segment), so none was acknowledged */
            log_warn("wal: records %" PRIu64 "..%" PRIu64 " are missing; replay stops there",
                     r->expected, s->first_seq - 1);
            r->ended = true;
            return 0;
        }
        r->expected = 0; /* a chain wholly at or below `after`: start again here */
    }
    if (s->size <= WAL_HEADER_LEN)
        return 0;
    const uint8_t *m = mmap(NULL, s->size, PROT_READ, MAP_PRIVATE, s->fd, 0);
    if (m == MAP_FAILED) {
        log_error("wal: cannot map segment %016" PRIx64 ": %s", s->id, strerror(errno));
        r->ended = true;
        return 0;
    }
    uint64_t pos = WAL_HEADER_LEN;
    int rc = 0;
    while (s->size - pos >= WAL_RECORD_HDR) {
        uint64_t len = kc_get_be32(m + pos), seq = kc_get_be64(m + pos + 8);
        /* records RocksDB already has are only stepped over, not checked */
        if (len > s->size - pos - WAL_RECORD_HDR || seq < s->first_seq ||
            (r->expected && seq != r->expected) || (!r->expected && seq != s->first_seq) ||
            (seq > r->after &&
             kc_get_be32(m + pos + 4) != record_crc(s->salt, seq, m + pos + WAL_RECORD_HDR, len)))
            break;
        if (!r->expected && seq > r->after + 1) {
            log_warn("wal: records %" PRIu64 "..%" PRIu64 " are missing; replay stops there",
                     r->after + 1, seq - 1);
            r->ended = true;
            break;
        }
        if (seq > r->after && (rc = r->fn(r->arg, seq, m + pos + WAL_RECORD_HDR, len)) != 0)
            break;
        s->last_seq = seq;
        r->expected = seq + 1;
        pos += WAL_RECORD_HDR + len;
    }
    munmap((void *)m, s->size);
    /* Whatever follows the last good record (a torn record, or one left from the
     * segment's earlier use) is ignored: after a restart the log goes on in another
     * segment, and the chain continues only into a segment starting where it ended. */
    return rc ? -1 : 0;
}

static int replay(struct wal *w, uint64_t after, wal_replay_fn *fn, void *arg, uint64_t *next,
                  char **err)
{
    struct replay r = {.after = after, .fn = fn, .arg = arg};
    if (w->n > 1)
        qsort(w->segs, w->n, sizeof *w->segs, by_first_seq);
    for (size_t i = 0; i < w->n && !r.ended; i++) {
        struct seg *s = w->segs[i];
        if (!s->first_seq)
            continue;
        /* a segment followed by one that starts at or below after+1 holds nothing newer */
        bool old =
            i + 1 < w->n && w->segs[i + 1]->first_seq && w->segs[i + 1]->first_seq <= after + 1;
        if (old) {
            s->last_seq = w->segs[i + 1]->first_seq - 1;
            continue;
        }
        if (replay_segment(w, s, &r) < 0) {
            *err = strdup("applying a logged write failed");
            return -1;
        }
    }
    uint64_t end = r.expected ? r.expected - 1 : 0; /* the chain's last record */
    if (end < after)
        end = after;
    /* A segment starting past the chain's end holds nothing that was acknowledged (a
     * sync covers every segment); its header goes, so that records numbered anew are
     * never confused with its old ones. */
    for (size_t j = 0; j < w->n; j++) {
        struct seg *s = w->segs[j];
        if (s->first_seq > end && seg_invalidate(w, s) < 0) {
            *err = strdup("cannot invalidate a write-ahead log segment");
            return -1;
        }
        s->live = s->first_seq && s->last_seq >= s->first_seq && s->last_seq > after;
    }
    *next = end + 1;
    return 0;
}

struct wal *wal_open(const char *dir, uint64_t segment_bytes, uint64_t after, wal_replay_fn *fn,
                     wal_persisted_fn *persisted, void *arg, uint64_t *next_seq, char **err)
{
    *err = NULL;
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        if (asprintf(err, "cannot create %s: %s", dir, strerror(errno)) < 0)
            *err = NULL;
        return NULL;
    }
    struct wal *w = calloc(1, sizeof *w);
    if (!w || !(w->dir = strdup(dir))) {
        free(w);
        *err = strdup("out of memory");
        return NULL;
    }
    pthread_mutex_init(&w->mu, NULL);
    w->seg_bytes = segment_bytes < 4096 ? 4096 : segment_bytes;
    w->persisted = persisted;
    w->arg = arg;
    w->next_id = 1;
    uint64_t replayed_from = after;
    if (load_segments(w, err) < 0 || replay(w, after, fn, arg, next_seq, err) < 0) {
        if (!*err)
            *err = strdup("out of memory");
        wal_close(w);
        return NULL;
    }
    if (*next_seq > replayed_from + 1)
        log_info("wal: replayed records %" PRIu64 "..%" PRIu64, replayed_from + 1, *next_seq - 1);
    if (sync_dir(w) < 0) /* the directory itself, if mkdir just made it */
        log_warn("wal: fsync of %s failed: %s", dir, strerror(errno));
    return w;
}

void wal_close(struct wal *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n; i++)
        seg_free(w->segs[i]);
    free(w->segs);
    pthread_mutex_destroy(&w->mu);
    free(w->dir);
    free(w);
}

/* ---- append ---- */

/* Creates a segment file. Its directory entry is made durable by the next wal_sync,
 * off the event loop, before any record in it is acknowledged. */
static struct seg *seg_create(struct wal *w)
{
    char path[4096];
    struct seg *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->id = w->next_id++;
    seg_path(w, s->id, path, sizeof path);
    s->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (s->fd < 0 || table_add(w, s) < 0) {
        log_error("wal: cannot create %s: %s", path, strerror(errno));
        if (s->fd >= 0)
            unlink(path);
        seg_free(s);
        return NULL;
    }
    pthread_mutex_lock(&w->mu);
    w->dir_dirty = true;
    pthread_mutex_unlock(&w->mu);
    return s;
}

/* Deletes free segments beyond a few spares, unless a sync is looking at the table. */
static void trim_spares(struct wal *w)
{
    pthread_mutex_lock(&w->mu);
    size_t spare = 0;
    for (size_t i = 0; i < w->n && w->syncers == 0;) {
        struct seg *s = w->segs[i];
        if (s != w->cur && !s->live && ++spare > WAL_SPARE_MAX) {
            char path[4096];
            seg_path(w, s->id, path, sizeof path);
            unlink(path);
            seg_free(s);
            w->segs[i] = w->segs[--w->n];
            continue;
        }
        i++;
    }
    pthread_mutex_unlock(&w->mu);
}

/* A segment to write next: a free one, one freed by what RocksDB has persisted since,
 * or a new file. */
static struct seg *next_segment(struct wal *w)
{
    struct seg *pick = NULL;
    for (int round = 0; round < 2 && !pick; round++) {
        uint64_t persisted = round ? w->persisted(w->arg) : 0;
        for (size_t i = 0; i < w->n; i++) {
            struct seg *s = w->segs[i];
            if (s == w->cur)
                continue;
            if (s->live && round && s->last_seq <= persisted)
                s->live = false;
            if (!s->live && (!pick || s->id < pick->id))
                pick = s;
        }
    }
    if (pick) {
        w->st.reused++;
        pick->live = true; /* not a spare for trim_spares */
        trim_spares(w);
        return pick;
    }
    return seg_create(w);
}

static int rotate(struct wal *w, uint64_t seq)
{
    struct seg *s = next_segment(w);
    if (!s)
        return -1;
    uint8_t h[WAL_HEADER_LEN];
    s->first_seq = seq;
    s->salt = new_salt(s);
    header_encode(h, seq, s->salt);
    struct iovec v = {h, sizeof h};
    if ((s->size > w->seg_bytes && ftruncate(s->fd, (off_t)w->seg_bytes) < 0) ||
        pwrite_all(s->fd, &v, 1, 0) < 0) {
        log_error("wal: cannot start segment %016" PRIx64 ": %s", s->id, strerror(errno));
        return -1;
    }
    if (s->size > w->seg_bytes)
        s->size = w->seg_bytes;
    if (s->size < WAL_HEADER_LEN)
        s->size = WAL_HEADER_LEN;
    s->last_seq = seq - 1;
    s->live = true;
    pthread_mutex_lock(&w->mu);
    s->wgen++;
    pthread_mutex_unlock(&w->mu);
    w->cur = s;
    w->pos = WAL_HEADER_LEN;
    return 0;
}

int wal_append(struct wal *w, uint64_t seq, const void *payload, size_t len)
{
    if (len > UINT32_MAX) {
        log_error("wal: a record of %zu bytes is too large", len);
        return -1;
    }
    uint64_t need = WAL_RECORD_HDR + len;
    if (!w->cur || (w->pos + need > w->seg_bytes && w->pos > WAL_HEADER_LEN)) {
        if (rotate(w, seq) < 0)
            return -1;
    }
    uint8_t h[WAL_RECORD_HDR];
    kc_put_be32(h, (uint32_t)len);
    kc_put_be32(h + 4, record_crc(w->cur->salt, seq, payload, len));
    kc_put_be64(h + 8, seq);
    struct iovec v[2] = {{h, sizeof h}, {(void *)payload, len}};
    if (pwrite_all(w->cur->fd, v, 2, w->pos) < 0) {
        log_error("wal: append failed: %s", strerror(errno));
        return -1;
    }
    w->pos += need;
    if (w->pos > w->cur->size)
        w->cur->size = w->pos;
    w->cur->last_seq = seq;
    w->st.appended_bytes += need;
    pthread_mutex_lock(&w->mu);
    w->cur->wgen++;
    pthread_mutex_unlock(&w->mu);
    return 0;
}

/* ---- sync ---- */

int wal_sync(struct wal *w)
{
    struct pending {
        struct seg *s;
        uint64_t gen;
    } stack[16], *p = stack;
    size_t n = 0, cap = 16;
    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < w->n; i++) {
        struct seg *s = w->segs[i];
        if (s->wgen == s->sgen)
            continue;
        if (n == cap) {
            struct pending *q = malloc(2 * cap * sizeof *q);
            if (!q) {
                pthread_mutex_unlock(&w->mu);
                if (p != stack)
                    free(p);
                log_error("wal: out of memory in sync");
                return -1;
            }
            memcpy(q, p, n * sizeof *q);
            if (p != stack)
                free(p);
            p = q;
            cap *= 2;
        }
        p[n++] = (struct pending){s, s->wgen};
    }
    w->syncers++;
    bool dir = w->dir_dirty;
    w->dir_dirty = false;
    pthread_mutex_unlock(&w->mu);
    int rc = 0;
    if (dir && sync_dir(w) < 0) {
        log_error("wal: fsync of %s failed: %s", w->dir, strerror(errno));
        pthread_mutex_lock(&w->mu);
        w->dir_dirty = true;
        pthread_mutex_unlock(&w->mu);
        rc = -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (fdatasync(p[i].s->fd) < 0) {
            log_error("wal: fdatasync of segment %016" PRIx64 " failed: %s", p[i].s->id,
                      strerror(errno));
            rc = -1;
            p[i].gen = 0;
        }
    }
    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < n; i++)
        if (p[i].gen > p[i].s->sgen)
            p[i].s->sgen = p[i].gen;
    w->st.syncs += n;
    w->syncers--;
    pthread_mutex_unlock(&w->mu);
    if (p != stack)
        free(p);
    return rc;
}

void wal_stats(struct wal *w, struct wal_stats *st)
{
    pthread_mutex_lock(&w->mu);
    *st = w->st;
    st->segments = w->n;
    st->bytes = 0;
    for (size_t i = 0; i < w->n; i++)
        st->bytes += w->segs[i]->size;
    pthread_mutex_unlock(&w->mu);
}
