/* test_wal.c: the write-ahead log on a scratch directory. wal has no user-space buffer,
 * so a close and reopen is what a crash looks like to replay; torn, corrupt and missing
 * pieces are edited into the segment files. Covers chains, segment reuse, oversized
 * records, stray files, and wal_sync racing appends. */
#include "unit_broker.h"
#include "wal.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

enum { MAXSEQ = 6000, SEG = 4096 };

/* The fixture is also the callbacks' argument: the model of what each sequence number
 * holds (length, and the generation that wrote it), what replay delivered, and the
 * persisted mark the test moves. */
struct wfx {
    char dir[64];
    uint64_t seg;
    size_t len[MAXSEQ + 1];
    uint8_t gen[MAXSEQ + 1];
    uint64_t seen[MAXSEQ + 1];
    size_t nseen;
    uint64_t bad;       /* first replayed seq whose payload was wrong; 0 if none */
    uint64_t persisted; /* what the persisted callback returns */
    uint64_t appended;  /* record bytes given to wal_append, headers included */
    uint64_t next;      /* wal_open's *next_seq */
};

static uint8_t pbyte(uint64_t seq, unsigned gen, size_t i)
{
    return (uint8_t)(seq * 131 + gen * 71 + i * 7 + (i >> 8) * 3 + 1);
}

/* 100..900 bytes, varying with seq only, so a renumbered record has its old size. */
static size_t plen(uint64_t seq)
{
    return 100 + (size_t)(seq * 7919 % 801);
}

static int on_record(void *arg, uint64_t seq, const uint8_t *p, size_t len)
{
    struct wfx *f = arg;
    if (seq > MAXSEQ || f->nseen > MAXSEQ)
        return -1;
    f->seen[f->nseen++] = seq;
    bool ok = len == f->len[seq];
    for (size_t i = 0; ok && i < len; i++)
        ok = p[i] == pbyte(seq, f->gen[seq], i);
    if (!ok && !f->bad)
        f->bad = seq;
    return 0;
}

static uint64_t on_persisted(void *arg)
{
    return ((struct wfx *)arg)->persisted;
}

static struct wal *wopen(struct wfx *f, uint64_t after)
{
    char *err = NULL;
    f->nseen = 0;
    f->bad = 0;
    f->next = 0;
    struct wal *w = wal_open(f->dir, f->seg, after, on_record, on_persisted, f, &f->next, &err);
    if (!w)
        fail_msg("wal_open(%s, after %" PRIu64 "): %s", f->dir, after, err ? err : "?");
    return w;
}

/* Appends record seq of generation gen and len bytes, and notes it in the model. */
static void put(struct wfx *f, struct wal *w, uint64_t seq, uint8_t gen, size_t len)
{
    assert_true(seq >= 1 && seq <= MAXSEQ);
    uint8_t *buf = malloc(len + 1);
    assert_non_null(buf);
    for (size_t i = 0; i < len; i++)
        buf[i] = pbyte(seq, gen, i);
    f->len[seq] = len;
    f->gen[seq] = gen;
    assert_int_equal(wal_append(w, seq, buf, len), 0);
    f->appended += WAL_RECORD_HDR + len;
    free(buf);
}

static void put_run(struct wfx *f, struct wal *w, uint64_t from, uint64_t to, uint8_t gen)
{
    for (uint64_t s = from; s <= to; s++)
        put(f, w, s, gen, plen(s));
}

/* Opens the log and asserts replay gave exactly from..to (nothing when to < from), each
 * with the model's payload, and readied the log for to + 1. On failure the log is
 * closed first, so that a failing test leaks nothing. */
static struct wal *wopen_expect(struct wfx *f, uint64_t after, uint64_t from, uint64_t to)
{
    struct wal *w = wopen(f, after);
    size_t want = to >= from ? (size_t)(to - from + 1) : 0, i = 0;
    while (i < want && i < f->nseen && f->seen[i] == from + i)
        i++;
    if (i == want && f->nseen == want && !f->bad && f->next == to + 1)
        return w;
    wal_close(w);
    fail_msg("replay gave %zu records (%" PRIu64 "..%" PRIu64 "; first wrong at index %zu; "
             "wrong payload in %" PRIu64 "; next_seq %" PRIu64 "), want %zu (%" PRIu64 "..%" PRIu64
             ")",
             f->nseen, f->nseen ? f->seen[0] : 0, f->nseen ? f->seen[f->nseen - 1] : 0, i, f->bad,
             f->next, want, from, to);
    return NULL;
}

static void reopen_expect(struct wfx *f, uint64_t after, uint64_t from, uint64_t to)
{
    wal_close(wopen_expect(f, after, from, to));
}

/* ---- the files ---- */

static const char *seg_name(uint64_t id, char name[32])
{
    snprintf(name, 32, "%016" PRIx64 ".wal", id);
    return name;
}

/* The ids of the segment files in the directory, ascending; returns how many. With
 * bytes, also the bytes they take and (bytes[1]) the largest one's size. */
static size_t seg_ids(const struct wfx *f, uint64_t *ids, size_t cap, uint64_t *bytes)
{
    DIR *d = opendir(f->dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        unsigned long long id;
        int end = 0;
        if (sscanf(e->d_name, "%16llx.wal%n", &id, &end) != 1 || end != 20 || e->d_name[20])
            continue;
        assert_true(n < cap);
        size_t i = n++;
        for (; i > 0 && ids[i - 1] > id; i--)
            ids[i] = ids[i - 1];
        ids[i] = id;
        struct stat sb;
        if (bytes && fstatat(dirfd(d), e->d_name, &sb, 0) == 0) {
            bytes[0] += (uint64_t)sb.st_size;
            bytes[1] = (uint64_t)sb.st_size > bytes[1] ? (uint64_t)sb.st_size : bytes[1];
        }
    }
    closedir(d);
    return n;
}

/* Reads file name of the directory into *out (freed by the caller); returns its size. */
static size_t slurp(const struct wfx *f, const char *name, uint8_t **out)
{
    char path[128];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s", f->dir, name);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0 && fstat(fd, &sb) == 0);
    assert_non_null(*out = malloc((size_t)sb.st_size + 1));
    assert_int_equal(pread(fd, *out, (size_t)sb.st_size, 0), sb.st_size);
    close(fd);
    return (size_t)sb.st_size;
}

/* Replaces file name of the directory with n bytes at p. */
static void spit(const struct wfx *f, const char *name, const void *p, size_t n)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", f->dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    close(fd);
}

/* A big-endian field of n bytes, as the log writes them. */
static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* The first_seq a segment's header names, or 0 when its header is not valid. */
static uint64_t seg_first(const struct wfx *f, uint64_t id)
{
    char name[32];
    uint8_t *m;
    size_t n = slurp(f, seg_name(id, name), &m);
    uint64_t first = 0;
    if (n >= WAL_HEADER_LEN && memcmp(m, "SLUICEWL", 8) == 0 && be(m + 8, 4) == 1 &&
        be(m + 12, 4) == crc32c(0, m + 16, 16))
        first = be(m + 16, 8);
    free(m);
    return first;
}

/* The segment whose valid header names the highest first_seq. */
static uint64_t last_seg(const struct wfx *f)
{
    uint64_t ids[64], best = 0, top = 0;
    size_t n = seg_ids(f, ids, 64, NULL);
    for (size_t i = 0; i < n; i++) {
        uint64_t first = seg_first(f, ids[i]);
        if (first > top) {
            top = first;
            best = ids[i];
        }
    }
    assert_true(top > 0);
    return best;
}

/* The offset of record seq in segment id, walking its records; -1 if it is not there. */
static long rec_off(const struct wfx *f, uint64_t id, uint64_t seq)
{
    char name[32];
    uint8_t *m;
    size_t n = slurp(f, seg_name(id, name), &m), pos = WAL_HEADER_LEN;
    while (n >= pos + WAL_RECORD_HDR && be(m + pos + 8, 8) != seq)
        pos += WAL_RECORD_HDR + be(m + pos, 4);
    free(m);
    return n >= pos + WAL_RECORD_HDR ? (long)pos : -1;
}

/* Cuts segment id to its first len bytes, or (mask != 0) flips mask in byte len. */
static void damage(const struct wfx *f, uint64_t id, long len, uint8_t mask)
{
    char name[32];
    uint8_t *m;
    size_t n = slurp(f, seg_name(id, name), &m);
    assert_true(len >= 0 && (size_t)len < n);
    if (mask)
        m[len] ^= mask;
    spit(f, name, m, mask ? n : (size_t)len);
    free(m);
}

static void assert_file(const struct wfx *f, const char *name, const void *p, size_t n)
{
    uint8_t *m;
    assert_int_equal(slurp(f, name, &m), n);
    assert_memory_equal(m, p, n);
    free(m);
}

static int setup(void **state)
{
    struct wfx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    log_min_level = LOG_ERROR;
    ub_mkdtemp(f->dir);
    f->seg = SEG;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct wfx *f = *state;
    ub_rmdir(f->dir);
    free(f);
    return 0;
}

/* ---- tests ---- */

static void test_empty_then_round_trip(void **state)
{
    struct wfx *f = *state;
    f->seg = 1 << 20;
    struct wal *w = wopen_expect(f, 0, 1, 0);
    put_run(f, w, 1, 50, 0);
    wal_close(w);
    w = wopen_expect(f, 0, 1, 50);
    put_run(f, w, 51, 60, 0); /* goes on after a restart */
    wal_close(w);
    reopen_expect(f, 0, 1, 60);
    reopen_expect(f, 23, 24, 60);
    reopen_expect(f, 60, 61, 60);
}

/* Nothing persisted: every segment stays, in order, and replay crosses all of them. */
static void test_chain_across_segments(void **state)
{
    struct wfx *f = *state;
    struct wal *w = wopen(f, 0);
    put_run(f, w, 1, 200, 0);
    struct wal_stats st;
    wal_stats(w, &st);
    wal_close(w);
    uint64_t ids[64];
    size_t n = seg_ids(f, ids, 64, NULL);
    assert_true(n >= 20);
    assert_int_equal(st.segments, n);
    assert_int_equal(st.reused, 0);
    assert_int_equal(seg_first(f, ids[0]), 1);
    for (size_t i = 1; i < n; i++)
        assert_true(seg_first(f, ids[i]) > seg_first(f, ids[i - 1]));
    reopen_expect(f, 0, 1, 200);
    reopen_expect(f, 137, 137 + 1, 200);
}

/* Three runs, each ended by a restart that replays from the persisted mark: the mark 3
 * records behind (the pool stays at 6 segments), 60 behind (segments holding records
 * above it must not be reused), then held for 300 records and moved to the end (the
 * spares beyond WAL_SPARE_MAX go). */
static void test_reuse_bounded(void **state)
{
    struct wfx *f = *state;
    uint64_t seq = 1;
    struct wal_stats st;
    for (int cycle = 0; cycle < 3; cycle++) {
        struct wal *w = wopen_expect(f, f->persisted, f->persisted + 1, seq - 1);
        uint64_t held = f->persisted, max_segs = 0, lag = cycle ? 60 : 3;
        for (int i = 0; i < 400; i++, seq++) {
            if (cycle < 2)
                f->persisted = seq > lag ? seq - lag : 0;
            else
                f->persisted = i < 300 ? held : seq - 3;
            put(f, w, seq, (uint8_t)cycle, plen(seq));
            wal_stats(w, &st);
            if (st.segments > max_segs)
                max_segs = st.segments;
        }
        assert_true(st.reused > 0);
        /* at most WAL_SPARE_MAX (4) spares, the current segment and one live */
        assert_true(cycle != 0 || max_segs <= 6);
        assert_true(cycle != 2 || (max_segs >= 20 && st.segments <= 6));
        wal_close(w);
        uint64_t ids[64];
        assert_int_equal(seg_ids(f, ids, 64, NULL), st.segments);
    }
    reopen_expect(f, f->persisted, f->persisted + 1, seq - 1);
}

static void test_torn_tail(void **state)
{
    struct wfx *f = *state;
    struct wal *w = wopen(f, 0);
    put_run(f, w, 1, 60, 0);
    wal_close(w);
    uint64_t id = last_seg(f);
    long off = rec_off(f, id, 60);
    assert_true(off > WAL_HEADER_LEN); /* 59 is in the same segment */
    damage(f, id, off + WAL_RECORD_HDR + (long)plen(60) / 2, 0);
    w = wopen_expect(f, 0, 1, 59);
    put_run(f, w, 60, 70, 1);
    wal_close(w);
    reopen_expect(f, 0, 1, 70);

    /* torn inside the record header this time */
    id = last_seg(f);
    off = rec_off(f, id, 70);
    assert_true(off > WAL_HEADER_LEN);
    damage(f, id, off + 7, 0);
    reopen_expect(f, 0, 1, 69);
}

/* Records 1..60 of 100 bytes (116 with the header): 35 to a segment, so 36..60 share
 * the last one, whose id it returns. */
static uint64_t small_chain(struct wfx *f)
{
    struct wal *w = wopen(f, 0);
    for (uint64_t s = 1; s <= 60; s++)
        put(f, w, s, 0, 100);
    wal_close(w);
    uint64_t id = last_seg(f);
    assert_int_equal(seg_first(f, id), 36);
    return id;
}

static void test_corrupt_middle_record(void **state)
{
    struct wfx *f = *state;
    uint64_t id = small_chain(f);
    long off = rec_off(f, id, 50);
    assert_true(off > 0);
    damage(f, id, off + WAL_RECORD_HDR + 40, 0x10);
    struct wal *w = wopen_expect(f, 0, 1, 49);
    for (uint64_t s = 50; s <= 55; s++)
        put(f, w, s, 1, 100);
    wal_close(w);
    reopen_expect(f, 0, 1, 55); /* never the old 51..60 */

    /* a well-formed record out of sequence (45 renumbered 46, its CRC redone) ends it too */
    char name[32];
    uint8_t *m;
    size_t n = slurp(f, seg_name(id, name), &m);
    off = rec_off(f, id, 45);
    uint8_t salt_seq[16]; /* the crc covers the header's salt, then the seq */
    memcpy(salt_seq, m + 24, 8);
    memcpy(salt_seq + 8, m + off + 8, 8);
    /* the crc as stored checks out, so the one made below is well formed */
    assert_int_equal(be(m + off + 4, 4),
                     crc32c(crc32c(0, salt_seq, 16), m + off + WAL_RECORD_HDR, 100));
    m[off + 15] = 46; /* the low byte of the big-endian seq */
    salt_seq[15] = 46;
    uint32_t crc = crc32c(crc32c(0, salt_seq, 16), m + off + WAL_RECORD_HDR, 100);
    for (int i = 0; i < 4; i++)
        m[off + 4 + i] = (uint8_t)(crc >> 8 * (3 - i));
    spit(f, name, m, n);
    free(m);
    reopen_expect(f, 0, 1, 44);
}

/* Splits 1..200 over segments and deletes ids[2]; returns its first_seq. */
static uint64_t chain_with_gap(struct wfx *f, uint64_t *ids, size_t *n)
{
    struct wal *w = wopen(f, 0);
    put_run(f, w, 1, 200, 0);
    wal_close(w);
    *n = seg_ids(f, ids, 64, NULL);
    assert_true(*n >= 6);
    uint64_t gap = seg_first(f, ids[2]);
    char path[128];
    snprintf(path, sizeof path, "%s/%016" PRIx64 ".wal", f->dir, ids[2]);
    assert_int_equal(unlink(path), 0);
    return gap;
}

static void test_missing_segment(void **state)
{
    struct wfx *f = *state;
    uint64_t ids[64];
    size_t n;
    uint64_t gap = chain_with_gap(f, ids, &n);
    struct wal *w = wopen_expect(f, 0, 1, gap - 1);
    for (size_t i = 3; i < n; i++)
        assert_int_equal(seg_first(f, ids[i]), 0);
    put_run(f, w, gap, gap + 40, 1);
    wal_close(w);
    reopen_expect(f, 0, 1, gap + 40);
}

/* A segment invalidated at open holds old records numbered like the ones the log will
 * write next. Reused, it must not give them back: here the first record of the last
 * segment is corrupt, the records after it intact, and the new records have the old
 * ones' sizes. */
static void test_reuse_after_corrupt_first_record(void **state)
{
    struct wfx *f = *state;
    uint64_t id = small_chain(f);
    damage(f, id, WAL_HEADER_LEN + WAL_RECORD_HDR + 5, 0x01);
    struct wal *w = wopen_expect(f, 0, 1, 35);
    assert_int_equal(seg_first(f, id), 0);
    for (uint64_t s = 36; s <= 38; s++)
        put(f, w, s, 1, 100);
    wal_close(w);
    reopen_expect(f, 0, 1, 38); /* not the old 39..60 */
}

/* The same with a missing segment: after = the first segment's last record, so that
 * segment is free at once, takes the records the missing one held (same sizes, same
 * rotation point), and the next invalidated segment is reused from its old first_seq. */
static void test_reuse_after_gap(void **state)
{
    struct wfx *f = *state;
    uint64_t ids[64];
    size_t n;
    uint64_t gap = chain_with_gap(f, ids, &n);
    uint64_t after = seg_first(f, ids[1]) - 1, f3 = seg_first(f, ids[3]);
    assert_true(seg_first(f, ids[4]) - f3 >= 3);
    struct wal *w = wopen_expect(f, after, after + 1, gap - 1);
    put_run(f, w, gap, f3 + 1, 1);
    wal_close(w);
    reopen_expect(f, after, after + 1, f3 + 1); /* not the old f3+2.. */
}

static void test_oversized_record(void **state)
{
    struct wfx *f = *state;
    struct wal *w = wopen(f, 0);
    put_run(f, w, 1, 5, 0);
    put(f, w, 6, 0, 20000);
    put_run(f, w, 7, 20, 0);
    wal_close(w);
    uint64_t ids[64];
    size_t n = seg_ids(f, ids, 64, NULL);
    bool own = false, after_big = false;
    for (size_t i = 0; i < n; i++) {
        own |= seg_first(f, ids[i]) == 6 && rec_off(f, ids[i], 7) < 0;
        after_big |= seg_first(f, ids[i]) == 7;
    }
    assert_true(own && after_big);
    w = wopen_expect(f, 0, 1, 20);
    /* once persisted, its segment is reused at the normal size */
    for (uint64_t s = 21; s <= 150; s++) {
        f->persisted = s - 10;
        put(f, w, s, 0, plen(s));
    }
    uint64_t bytes[2] = {0};
    struct wal_stats st;
    wal_stats(w, &st);
    assert_int_equal(seg_ids(f, ids, 64, bytes), st.segments);
    assert_int_equal(bytes[0], st.bytes);
    assert_true(bytes[1] <= SEG);
    wal_close(w);
    reopen_expect(f, f->persisted, 141, 150);
}

/* Stray files stay untouched; a .wal file with a garbage header is a free segment. */
static void test_stray_files(void **state)
{
    struct wfx *f = *state;
    uint8_t junk[100];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)(i * 37 + 5);
    spit(f, "notes.txt", "hello", 5);
    spit(f, "0000000000000001.wal.tmp", junk, sizeof junk);
    spit(f, "0000000000000009.wal", junk, sizeof junk);
    spit(f, "cafe.wal", junk, sizeof junk); /* not a name the log makes */
    spit(f, "9.wal", junk, sizeof junk);    /* nor a second name for segment 9 */
    struct wal *w = wopen_expect(f, 0, 1, 0);
    put_run(f, w, 1, 3, 0);
    struct wal_stats st;
    wal_stats(w, &st);
    assert_int_equal(st.segments, 1);
    assert_int_equal(st.reused, 1);
    wal_close(w);
    assert_int_equal(seg_first(f, 9), 1);
    reopen_expect(f, 0, 1, 3);
    assert_file(f, "notes.txt", "hello", 5);
    assert_file(f, "0000000000000001.wal.tmp", junk, sizeof junk);
    assert_file(f, "cafe.wal", junk, sizeof junk);
    assert_file(f, "9.wal", junk, sizeof junk);
}

struct syncer_arg {
    struct wal *w;
    atomic_int stop;
    int fails;
    long calls;
};

static void *sync_loop(void *arg)
{
    struct syncer_arg *a = arg;
    while (!atomic_load(&a->stop)) {
        if (wal_sync(a->w) != 0)
            a->fails++;
        a->calls++;
    }
    return NULL;
}

static void test_sync_while_appending(void **state)
{
    struct wfx *f = *state;
    struct syncer_arg a = {.w = wopen(f, 0)};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, sync_loop, &a), 0);
    for (uint64_t s = 1; s <= 5000; s++) {
        f->persisted = (s - 1) / 200 * 200; /* in jumps, as RocksDB flushes */
        put(f, a.w, s, 0, plen(s));
    }
    atomic_store(&a.stop, 1);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(a.fails, 0);
    assert_true(a.calls > 0);
    struct wal_stats st;
    wal_stats(a.w, &st);
    assert_true(st.reused > 0);
    assert_true(st.syncs > 0);
    wal_close(a.w);
    reopen_expect(f, f->persisted, 4801, 5000);
}

static void test_stats(void **state)
{
    struct wfx *f = *state;
    struct wal *w = wopen(f, 0);
    struct wal_stats st;
    wal_stats(w, &st);
    assert_int_equal(st.appended_bytes, 0);
    assert_int_equal(st.syncs, 0);
    put(f, w, 1, 0, 7);
    put(f, w, 2, 0, 0);
    put_run(f, w, 3, 30, 0);
    wal_stats(w, &st);
    assert_int_equal(st.appended_bytes, f->appended);
    uint64_t syncs = st.syncs;
    assert_int_equal(wal_sync(w), 0);
    wal_stats(w, &st);
    assert_true(st.syncs > syncs);
    assert_int_equal(wal_sync(w), 0); /* nothing new to sync */
    uint64_t ids[64], bytes[2] = {0};
    assert_int_equal(st.segments, seg_ids(f, ids, 64, bytes));
    assert_int_equal(st.bytes, bytes[0]);
    wal_close(w);
    w = wopen_expect(f, 0, 1, 30);
    wal_stats(w, &st);
    assert_int_equal(st.appended_bytes, 0);
    wal_close(w);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_empty_then_round_trip),
        T(test_chain_across_segments),
        T(test_reuse_bounded),
        T(test_torn_tail),
        T(test_corrupt_middle_record),
        T(test_missing_segment),
        T(test_reuse_after_corrupt_first_record),
        T(test_reuse_after_gap),
        T(test_oversized_record),
        T(test_stray_files),
        T(test_sync_while_appending),
        T(test_stats),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
