/* principals.c: the SASL user table. In memory, a chained hash table by name (FNV-1a,
 * doubled at one entry per bucket), so the lookup an authentication makes is O(1). In
 * the store, one META record per principal under "principal/<name>" holding every
 * mechanism's credential, so any change is one write. Listing walks the store's keys,
 * which RocksDB keeps sorted, rather than keeping a second, sorted index in memory.
 *
 * Memory: an entry is a chain pointer, a mask, both credentials as struct scram_cred
 * (2 x 200 bytes) and the name: 412 bytes + the name, plus malloc's rounding and 8-16
 * bytes of bucket array. Measured by tests/bench/scrambench.c: 478 bytes a principal
 * with 24-byte names, 143 MB for 300,000, loaded by principals_open in about 0.4 s.
 *
 * Record: version(1) = 1, count(1) = 1..SCRAM_MECH_COUNT, then per credential len(1)
 * and scram_cred_encode()'s bytes; the mechanism is the one inside. */
#include "principals.h"
#include "hash.h"

#include "log.h"
#include "store.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <stdlib.h>
#include <string.h>

enum {
    PREFIX_LEN = 10, /* "principal/" */
    KEY_MAX = PREFIX_LEN + PRINCIPAL_NAME_MAX,
    RECORD_VERSION = 1,
    RECORD_MAX = 2 + SCRAM_MECH_COUNT * (1 + SCRAM_CRED_ENCODED_MAX),
    SECRET_LEN = 32,
    INITIAL_BUCKETS = 1024,
    ALL_MECHS = (1 << SCRAM_MECH_COUNT) - 1,
};

_Static_assert(SCRAM_CRED_ENCODED_MAX <= 255, "a record gives a credential one length byte");
_Static_assert(PRINCIPAL_NAME_MAX <= 255 && (int)PRINCIPAL_NAME_MAX <= (int)SCRAM_USER_MAX,
               "a name's length fits a byte, and SCRAM can carry every name");

static const char key_prefix[] = "principal/";
static const char key_end[] = "principal0"; /* '/' + 1: just past every principal key */
static const char secret_key[] = "principal_secret";

struct principal {
    struct principal *next; /* hash chain */
    uint8_t mechs;          /* bit m set: cred[m] is mechanism m's credential */
    uint8_t name_len;
    struct scram_cred cred[SCRAM_MECH_COUNT];
    char name[]; /* NUL-terminated */
};

struct principals {
    struct store *st;
    int32_t iterations;
    struct principal **buckets;
    size_t nbuckets, count;
    uint8_t secret[SECRET_LEN];
    struct scram_cred dummy; /* no password matches it: PLAIN checks of unknown users */
    bool have_dummy;
};

/* ---- names ---- */

/* Length of the character at s (n > 0 bytes left) if a name may contain it: printable
 * ASCII but ',' and '=', or a well-formed UTF-8 sequence (no overlong form, surrogate
 * or C1 control); 0 if not. */
static size_t name_char(const uint8_t *s, size_t n)
{
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    uint32_t cp;
    size_t len;

    if (s[0] < 0x80)
        return s[0] >= 0x20 && s[0] < 0x7f && s[0] != ',' && s[0] != '=';
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        len = 2, cp = s[0] & 0x1f;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        len = 3, cp = s[0] & 0x0f;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        len = 4, cp = s[0] & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || cp <= 0x9f)
        return 0;
    return len;
}

bool principals_name_valid(const char *name, size_t len)
{
    const uint8_t *s = (const uint8_t *)name;

    if (!name || len == 0 || len > PRINCIPAL_NAME_MAX)
        return false;
    for (size_t i = 0, n; i < len; i += n)
        if (!(n = name_char(s + i, len - i)))
            return false;
    return true;
}

/* The length of a valid name given as a C string, or 0. */
static size_t valid_len(const char *name)
{
    size_t len = name ? strnlen(name, PRINCIPAL_NAME_MAX + 1) : 0;
    return principals_name_valid(name, len) ? len : 0;
}

/* "principal/<name>" into k; returns its length. */
static size_t make_key(uint8_t k[KEY_MAX], const char *name, size_t len)
{
    memcpy(k, key_prefix, PREFIX_LEN);
    memcpy(k + PREFIX_LEN, name, len);
    return PREFIX_LEN + len;
}

/* ---- the hash table ---- */

static size_t bucket_of(const struct principals *p, const char *name, size_t len)
{
    return hash_bytes(name, len) & (p->nbuckets - 1);
}

static struct principal *find(const struct principals *p, const char *name, size_t len)
{
    for (struct principal *e = p->buckets[bucket_of(p, name, len)]; e; e = e->next)
        if (e->name_len == len && memcmp(e->name, name, len) == 0)
            return e;
    return NULL;
}

static void link_entry(struct principals *p, struct principal *e)
{
    size_t b = bucket_of(p, e->name, e->name_len);
    e->next = p->buckets[b];
    p->buckets[b] = e;
}

static void unlink_entry(struct principals *p, struct principal *e)
{
    struct principal **pp = &p->buckets[bucket_of(p, e->name, e->name_len)];
    while (*pp && *pp != e)
        pp = &(*pp)->next;
    if (*pp)
        *pp = e->next;
}

/* Doubles the bucket array once the load reaches one entry per bucket. */
static int reserve(struct principals *p)
{
    if (p->count < p->nbuckets)
        return 0;
    struct principal **old = p->buckets;
    size_t oldn = p->nbuckets;
    struct principal **nb = calloc(oldn * 2, sizeof *nb);
    if (!nb)
        return -1;
    p->buckets = nb;
    p->nbuckets = oldn * 2;
    for (size_t i = 0; i < oldn; i++) {
        for (struct principal *e = old[i], *next; e; e = next) {
            next = e->next;
            link_entry(p, e);
        }
    }
    free(old);
    return 0;
}

static struct principal *entry_new(const char *name, size_t len)
{
    struct principal *e = calloc(1, sizeof *e + len + 1);
    if (!e)
        return NULL;
    memcpy(e->name, name, len);
    e->name_len = (uint8_t)len;
    return e;
}

static void entry_free(struct principal *e)
{
    if (!e)
        return;
    OPENSSL_cleanse(e->cred, sizeof e->cred);
    free(e);
}

/* Sets e's credentials to those of cred[] named by mechs. */
static void entry_set(struct principal *e, const struct scram_cred cred[SCRAM_MECH_COUNT],
                      uint8_t mechs)
{
    for (int m = 0; m < SCRAM_MECH_COUNT; m++) {
        if (mechs & (1u << m))
            e->cred[m] = cred[m];
        else
            OPENSSL_cleanse(&e->cred[m], sizeof e->cred[m]);
    }
    e->mechs = mechs;
}

/* ---- records ---- */

static int record_encode(const struct scram_cred cred[SCRAM_MECH_COUNT], uint8_t mechs,
                         uint8_t out[RECORD_MAX])
{
    size_t n = 2;
    out[0] = RECORD_VERSION;
    out[1] = 0;
    for (int m = 0; m < SCRAM_MECH_COUNT; m++) {
        if (!(mechs & (1u << m)))
            continue;
        int l = scram_cred_encode(&cred[m], out + n + 1, RECORD_MAX - n - 1);
        if (l < 0 || scram_cred_mech(&cred[m]) != m)
            return -1;
        out[n] = (uint8_t)l;
        n += 1 + (size_t)l;
        out[1]++;
    }
    return out[1] ? (int)n : -1;
}

/* Decodes a record into cred[] and the mask of what it holds. Returns 0 or -1. */
static int record_decode(const uint8_t *v, size_t vl, struct scram_cred cred[SCRAM_MECH_COUNT],
                         uint8_t *mechs)
{
    struct scram_cred c;
    size_t off = 2;

    *mechs = 0;
    if (vl < 2 || v[0] != RECORD_VERSION || v[1] == 0 || v[1] > SCRAM_MECH_COUNT)
        return -1;
    for (int i = 0; i < v[1]; i++) {
        if (vl - off < 1 || v[off] > vl - off - 1 || scram_cred_decode(v + off + 1, v[off], &c) < 0)
            return -1;
        int m = scram_cred_mech(&c);
        if (m < 0 || (*mechs & (1u << m)))
            return -1;
        cred[m] = c;
        *mechs |= (uint8_t)(1u << m);
        off += 1 + (size_t)v[off];
    }
    OPENSSL_cleanse(&c, sizeof c);
    return off == vl ? 0 : -1;
}

/* ---- changes ---- */

/* Makes name's stored record and table entry hold exactly the credentials of cred[]
 * named by mechs (none: the principal goes), in one synced write. Whatever can fail in
 * memory is done before the write, so the table never disagrees with the store. */
static int commit(struct principals *p, const char *name, size_t len,
                  const struct scram_cred cred[SCRAM_MECH_COUNT], uint8_t mechs)
{
    uint8_t key[KEY_MAX], rec[RECORD_MAX];
    struct principal *e = find(p, name, len), *fresh = NULL;
    struct store_wb *wb = NULL;
    int rl = 0, rc = -1;

    if (mechs && (rl = record_encode(cred, mechs, rec)) < 0)
        goto out;
    if (mechs && !e && (reserve(p) < 0 || !(fresh = entry_new(name, len))))
        goto out;
    if (!(wb = store_wb_new(p->st)))
        goto out;
    size_t kl = make_key(key, name, len);
    if (mechs)
        store_wb_put(wb, STORE_CF_META, key, kl, rec, (size_t)rl);
    else
        store_wb_del(wb, STORE_CF_META, key, kl);
    if (store_write(p->st, wb, STORE_SYNC) < 0)
        goto out;
    if (!mechs && e) {
        unlink_entry(p, e);
        entry_free(e);
        p->count--;
    } else if (mechs) {
        if (fresh) {
            link_entry(p, fresh);
            p->count++;
            e = fresh;
            fresh = NULL;
        }
        entry_set(e, cred, mechs);
    }
    rc = 0;
out:
    store_wb_free(wb);
    entry_free(fresh);
    OPENSSL_cleanse(rec, sizeof rec);
    return rc;
}

/* name's current credentials into cred[]; returns their mask (0: no such principal). */
static uint8_t current(const struct principal *e, struct scram_cred cred[SCRAM_MECH_COUNT])
{
    if (!e)
        return 0;
    for (int m = 0; m < SCRAM_MECH_COUNT; m++)
        if (e->mechs & (1u << m))
            cred[m] = e->cred[m];
    return e->mechs;
}

int principals_set_password(struct principals *p, const char *name, const char *pw, size_t pw_len)
{
    struct scram_cred cred[SCRAM_MECH_COUNT];
    size_t len = valid_len(name);
    int rc = -1;

    if (!p || !len || !pw || pw_len == 0 || pw_len > PRINCIPAL_PASSWORD_MAX)
        return -1;
    for (int m = 0; m < SCRAM_MECH_COUNT; m++)
        if (scram_cred_new(m, pw, pw_len, p->iterations, &cred[m]) < 0)
            goto out;
    rc = commit(p, name, len, cred, ALL_MECHS);
out:
    OPENSSL_cleanse(cred, sizeof cred);
    return rc;
}

int principals_set_cred(struct principals *p, const char *name, int mech,
                        const struct scram_cred *c)
{
    struct scram_cred cred[SCRAM_MECH_COUNT];
    size_t len = valid_len(name);
    int rc = -1;

    if (!p || !len || !c || mech < 0 || mech >= SCRAM_MECH_COUNT || scram_cred_mech(c) != mech)
        return -1;
    uint8_t mechs = current(find(p, name, len), cred);
    cred[mech] = *c;
    rc = commit(p, name, len, cred, (uint8_t)(mechs | (1u << mech)));
    OPENSSL_cleanse(cred, sizeof cred);
    return rc;
}

int principals_delete_cred(struct principals *p, const char *name, int mech)
{
    struct scram_cred cred[SCRAM_MECH_COUNT];
    size_t len = valid_len(name);
    int rc = -1;

    if (!p || !len || mech < 0 || mech >= SCRAM_MECH_COUNT)
        return -1;
    uint8_t mechs = current(find(p, name, len), cred);
    if (mechs & (1u << mech))
        rc = commit(p, name, len, cred, (uint8_t)(mechs & ~(1u << mech)));
    OPENSSL_cleanse(cred, sizeof cred);
    return rc;
}

int principals_delete(struct principals *p, const char *name)
{
    size_t len = valid_len(name);

    if (!p || !len || !find(p, name, len))
        return -1;
    return commit(p, name, len, NULL, 0);
}

/* ---- lookups ---- */

const struct scram_cred *principals_cred(void *arg, const char *name, int mech)
{
    const struct principals *p = arg;
    size_t len = name ? strnlen(name, PRINCIPAL_NAME_MAX + 1) : 0;

    if (!p || len == 0 || len > PRINCIPAL_NAME_MAX || mech < 0 || mech >= SCRAM_MECH_COUNT)
        return NULL;
    const struct principal *e = find(p, name, len);
    return e && (e->mechs & (1u << mech)) ? &e->cred[mech] : NULL;
}

bool principals_exists(const struct principals *p, const char *name)
{
    size_t len = name ? strnlen(name, PRINCIPAL_NAME_MAX + 1) : 0;
    return p && len && len <= PRINCIPAL_NAME_MAX && find(p, name, len);
}

size_t principals_count(const struct principals *p)
{
    return p ? p->count : 0;
}

int32_t principals_iterations(const struct principals *p)
{
    return p->iterations;
}

const uint8_t *principals_secret(const struct principals *p, size_t *len)
{
    *len = sizeof p->secret;
    return p->secret;
}

const struct scram_cred *principals_dummy(struct principals *p)
{
    if (!p->have_dummy) {
        uint8_t pw[SECRET_LEN];
        for (size_t i = 0; i < sizeof pw; i++)
            pw[i] = p->secret[i] ^ 0x5c;
        p->have_dummy = scram_cred_new(SCRAM_SHA_256, (const char *)pw, sizeof pw,
                                       p->iterations, &p->dummy) == 0;
    }
    return &p->dummy;
}

static int keycmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    return c ? c : (al > bl) - (al < bl);
}

/* Positions it at the first key at or after "principal/<prefix>" that sorts after
 * "principal/<after>". */
static void list_seek(struct store_it *it, const uint8_t *lo, size_t lol, const char *after,
                      size_t al)
{
    uint8_t k[KEY_MAX + 1];

    if (!after) {
        store_it_seek(it, lo, lol);
        return;
    }
    size_t kl = make_key(k, after, al);
    k[kl++] = 0; /* the smallest key above "principal/<after>": names hold no NUL */
    if (keycmp(k, kl, lo, lol) > 0)
        store_it_seek(it, k, kl);
    else
        store_it_seek(it, lo, lol);
}

int principals_list(const struct principals *p, const char *prefix, const char *after, int limit,
                    principals_visit_fn *fn, void *arg)
{
    uint8_t lo[KEY_MAX];
    size_t pl = prefix ? strnlen(prefix, PRINCIPAL_NAME_MAX + 1) : 0;
    size_t al = after ? strnlen(after, PRINCIPAL_NAME_MAX + 1) : 0;
    int n = 0;

    if (!p || !fn || pl > PRINCIPAL_NAME_MAX || al > PRINCIPAL_NAME_MAX)
        return -1;
    if (limit == 0)
        return 0;
    if (!prefix)
        prefix = "";
    size_t lol = make_key(lo, prefix, pl);
    struct store_it *it = store_it_new(p->st, STORE_CF_META, lo, lol, key_end, PREFIX_LEN);
    if (!it)
        return -1;
    for (list_seek(it, lo, lol, after, al); store_it_valid(it) && (limit < 0 || n < limit);
         store_it_next(it)) {
        size_t kl;
        const uint8_t *k = store_it_key(it, &kl);
        if (kl < lol || memcmp(k, lo, lol) != 0)
            break;
        if (kl - PREFIX_LEN > PRINCIPAL_NAME_MAX)
            continue;
        const struct principal *e = find(p, (const char *)k + PREFIX_LEN, kl - PREFIX_LEN);
        if (!e)
            continue; /* a record principals_open refused */
        const struct scram_cred *creds[SCRAM_MECH_COUNT];
        for (int m = 0; m < SCRAM_MECH_COUNT; m++)
            creds[m] = e->mechs & (1u << m) ? &e->cred[m] : NULL;
        fn(arg, e->name, creds);
        n++;
    }
    store_it_free(it);
    return n;
}

/* ---- open and free ---- */

/* Reads the fake-salt secret, or makes and stores one. */
static int load_secret(struct principals *p)
{
    size_t vl = 0;
    int err = 0;
    uint8_t *v = store_get(p->st, STORE_CF_META, secret_key, sizeof secret_key - 1, &vl, &err);

    if (err)
        return -1;
    if (v && vl == SECRET_LEN) {
        memcpy(p->secret, v, SECRET_LEN);
        OPENSSL_cleanse(v, vl);
        free(v);
        return 0;
    }
    if (v) {
        log_warn("principals: the stored SCRAM secret has %zu bytes, not %d; making a new one", vl,
                 SECRET_LEN);
        free(v);
    }
    if (RAND_bytes(p->secret, SECRET_LEN) != 1) {
        log_error("principals: RAND_bytes failed");
        return -1;
    }
    return store_put(p->st, STORE_CF_META, secret_key, sizeof secret_key - 1, p->secret,
                     SECRET_LEN);
}

/* Adds the principal stored under key k = "principal/<name>" with record v. Returns 0,
 * 1 if the record is malformed (skipped), -1 out of memory. */
static int load_one(struct principals *p, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    struct scram_cred cred[SCRAM_MECH_COUNT];
    const char *name = (const char *)k + PREFIX_LEN;
    size_t len = kl - PREFIX_LEN;
    struct principal *e;
    uint8_t mechs;
    int rc = 1;

    if (!principals_name_valid(name, len) || record_decode(v, vl, cred, &mechs) < 0 ||
        find(p, name, len))
        goto out;
    rc = -1;
    if (reserve(p) < 0 || !(e = entry_new(name, len)))
        goto out;
    entry_set(e, cred, mechs);
    link_entry(p, e);
    p->count++;
    rc = 0;
out:
    OPENSSL_cleanse(cred, sizeof cred);
    return rc;
}

static int load_all(struct principals *p)
{
    struct store_it *it =
        store_it_new(p->st, STORE_CF_META, key_prefix, PREFIX_LEN, key_end, PREFIX_LEN);
    size_t skipped = 0;
    int rc = 0;

    if (!it)
        return -1;
    for (store_it_first(it); store_it_valid(it) && rc == 0; store_it_next(it)) {
        size_t kl, vl;
        const uint8_t *k = store_it_key(it, &kl), *v = store_it_value(it, &vl);
        if (kl < PREFIX_LEN || memcmp(k, key_prefix, PREFIX_LEN) != 0)
            continue;
        rc = load_one(p, k, kl, v, vl);
        if (rc == 1) {
            skipped++;
            rc = 0;
        }
    }
    store_it_free(it);
    if (rc < 0)
        log_error("principals: out of memory loading %zu principals", p->count);
    if (skipped)
        log_warn("principals: skipped %zu malformed records", skipped);
    return rc;
}

struct principals *principals_open(struct store *st, int32_t iterations)
{
    struct principals *p = calloc(1, sizeof *p);

    if (!p || !st)
        goto fail;
    p->st = st;
    p->iterations = iterations < SCRAM_MIN_ITERATIONS   ? SCRAM_MIN_ITERATIONS
                    : iterations > SCRAM_MAX_ITERATIONS ? SCRAM_MAX_ITERATIONS
                                                        : iterations;
    p->nbuckets = INITIAL_BUCKETS;
    p->buckets = calloc(p->nbuckets, sizeof *p->buckets);
    if (!p->buckets || load_secret(p) < 0 || load_all(p) < 0)
        goto fail;
    return p;
fail:
    log_error("principals: cannot load the SASL users");
    principals_free(p);
    return NULL;
}

void principals_free(struct principals *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->nbuckets && p->buckets; i++) {
        for (struct principal *e = p->buckets[i], *next; e; e = next) {
            next = e->next;
            entry_free(e);
        }
    }
    free(p->buckets);
    OPENSSL_cleanse(p->secret, sizeof p->secret);
    free(p);
}
