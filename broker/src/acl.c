/* acl.c: the ACL table and Kafka's authorization decision. Rules are grouped by key
 * (resource type, pattern type, resource name, principal) into one hash table entry
 * that holds op bitmasks for ALLOW and DENY, for host "*" inline and for other hosts
 * in a small array. A decision probes only the keys that can apply to the resource
 * (literal name, literal "*", and the prefixes of the name whose lengths some prefixed
 * rule uses), for the principal and for User:*, so it costs O(length of the name)
 * whatever the number of rules. Each rule is also one key in the store's META column
 * family ("acl/..."), loaded at startup.
 *
 * A filter that names a principal without naming a resource (the admin API's
 * /v1/principals/{name}: read, replace, delete one principal's rules) walks that
 * principal's ring, a circular doubly-linked list through its entries, found from the
 * principal index (open addressing, one entry of each ring per slot). So it costs
 * O(that principal's entries), not O(all rules). A filter principal is an exact
 * string: "User:*" in a filter means the rules whose principal is literally "User:*".
 * The ring's links sit after the key, so the bytes a decision reads are laid out as
 * they would be without them.
 *
 * Memory (x86-64 glibc): an entry is a 32-byte header plus the name and principal
 * with their NULs, padded to 8 bytes, plus 16 bytes of ring links, rounded by malloc
 * to 16 bytes plus 8 of its own; with a bucket pointer (load factor 0.5..1) and a
 * principal index slot (load factor 3/8..3/4, one per principal) an entry for a
 * 20-byte name and a 24-byte principal takes about 130 bytes
 * (tests/bench/aclbench.c measures 132 per rule with 630,000 rules of 300,000
 * principals; 109 without the principal index), and holds every op and permission
 * for host "*" of its key. A host other than "*" costs one more small allocation (16
 * bytes and the host) and a pointer. The probe index is a fixed 4 KiB per resource
 * type and kind of principal, 50 KiB in all. */
#include "acl.h"

#include "hash.h"
#include "log.h"
#include "store.h"

#include <malloc.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    NTYPES = ACL_RES_TXN + 1,           /* ix[] is indexed by resource type */
    PROBE_BATCH = 16,                   /* probes whose buckets are prefetched together */
    PLEN_WORDS = ACL_NAME_MAX / 64 + 1, /* bit l: some prefixed pattern has length l */
    HOSTS_PER_KEY_MAX = 1024,           /* distinct hosts for one resource and principal */
    KEY_PREFIX_LEN = 4,                 /* "acl/" */
    KEY_MAX = KEY_PREFIX_LEN + 4 + 2 + ACL_NAME_MAX + 2 + ACL_PRINCIPAL_MAX + ACL_HOST_MAX,
    TABLE_MIN = 1024,
    PTAB_MIN = 64, /* principal index slots at first */
};

static const char key_prefix[] = "acl/";
static const char key_end[] = "acl0"; /* '/' + 1: the end of the "acl/" range */
static const char wild_principal[] = "User:*";
enum { WILD_PRINCIPAL_LEN = sizeof wild_principal - 1 };

#define OPBIT(op) ((uint16_t)(1u << (op)))

/* ALLOW and DENY op bitmasks (bit ACL_OP_x) for one host. */
struct acl_masks {
    uint16_t allow, deny;
};

struct acl_host {
    struct acl_masks m;
    char name[]; /* NUL-terminated */
};

struct acl_entry {
    struct acl_entry *next;  /* bucket chain */
    struct acl_host **hosts; /* hosts other than "*", nhosts of them */
    uint32_t tag;            /* high half of the key hash; the low half picks the bucket */
    struct acl_masks any;    /* host "*" */
    uint16_t name_len, principal_len, nhosts;
    int8_t res_type, pattern;
    char key[]; /* name NUL principal NUL, then struct acl_plink at an 8-byte offset */
};

/* An entry's place in its principal's ring. */
struct acl_plink {
    struct acl_entry *next, *prev;
};

/* What a decision needs to know to skip probes that cannot hit, kept per resource type
 * and per kind of principal (User:* or any other): whether there are entries at all,
 * literal ones, literal "*" ones, and which prefix lengths prefixed ones use. */
struct type_ix {
    uint32_t nentries, nliteral, nstar;
    uint32_t maxplen; /* longest prefixed pattern, 0 when none */
    uint64_t plen_bits[PLEN_WORDS];
    uint32_t plen_count[ACL_NAME_MAX + 1];
};

struct acls {
    struct store *st;
    struct acl_entry **tab;
    size_t cap; /* buckets, a power of two */
    size_t nentries, nrules;
    char **supers;
    size_t nsupers;
    uint64_t wild_seed;           /* seed_of(User:*) */
    struct acl_entry **ptab;      /* by principal: one entry of its ring; linear probing */
    size_t pcap, nprincipals;     /* slots (a power of two), principals */
    size_t visits;                /* entries filters examined: acls_visits */
    bool scan_only;               /* acls_set_scan_only */
    struct type_ix ix[NTYPES][2]; /* [type][principal is User:*] */
};

/* ---------------------------------------------------------------- hashing */

/* A key hashes principal first, so a decision hashes the principal once and then
 * extends that state byte by byte over the name, probing at each prefix length. */
static uint64_t seed_of(const char *principal, size_t plen)
{
    return hash_mix(hash_bytes(principal, plen), plen);
}

static uint64_t key_hash(uint64_t h_name, size_t nlen, int8_t type, int8_t pattern)
{
    return hash_mix(h_name, (uint64_t)nlen << 16 | (uint64_t)(uint8_t)type << 8 | (uint8_t)pattern);
}

static const char *entry_principal(const struct acl_entry *e)
{
    return e->key + e->name_len + 1;
}

static uint64_t entry_hash(const struct acl_entry *e)
{
    uint64_t h = seed_of(entry_principal(e), e->principal_len);
    return key_hash(hash_more(h, e->key, e->name_len), e->name_len, e->res_type, e->pattern);
}

static struct acl_entry *find(const struct acls *a, uint64_t h, int8_t type, int8_t pattern,
                              const char *name, size_t nlen, const char *principal, size_t plen)
{
    uint32_t tag = (uint32_t)(h >> 32);

    for (struct acl_entry *e = a->tab[h & (a->cap - 1)]; e; e = e->next)
        if (e->tag == tag && e->res_type == type && e->pattern == pattern && e->name_len == nlen &&
            e->principal_len == plen && !memcmp(e->key, name, nlen) &&
            !memcmp(entry_principal(e), principal, plen))
            return e;
    return NULL;
}

/* Called for each entry a walk finds; returning true stops the walk. */
typedef bool entry_fn(void *arg, struct acl_entry *e);

/* A key a walk will look up. */
struct probe {
    uint64_t h;
    const char *name;
    uint32_t len;
    int8_t pattern;
};

/* The buckets of a walk's keys are independent cache misses (the table is large and
 * the keys random), so a walk prefetches a batch of buckets, then their first entries,
 * then compares: the misses overlap instead of following one another. */
struct walk {
    const struct acls *a;
    int8_t type;
    const char *principal;
    size_t plen;
    entry_fn *fn;
    void *arg;
    struct probe p[PROBE_BATCH];
    int n;
};

/* Looks up the queued keys; true when fn stopped the walk. */
static bool walk_flush(struct walk *w)
{
    const struct acls *a = w->a;
    int n = w->n;

    w->n = 0;
    for (int i = 0; i < n; i++)
        __builtin_prefetch(a->tab[w->p[i].h & (a->cap - 1)]);
    for (int i = 0; i < n; i++) {
        const struct probe *p = &w->p[i];
        struct acl_entry *e =
            find(a, p->h, w->type, p->pattern, p->name, p->len, w->principal, w->plen);
        if (e && w->fn(w->arg, e))
            return true;
    }
    return false;
}

/* Queues a key (flushing a full batch first); true when fn stopped the walk. */
static bool walk_add(struct walk *w, uint64_t h, const char *name, size_t len, int8_t pattern)
{
    if (w->n == PROBE_BATCH && walk_flush(w))
        return true;
    w->p[w->n++] = (struct probe){h, name, (uint32_t)len, pattern};
    __builtin_prefetch(&w->a->tab[h & (w->a->cap - 1)]);
    return false;
}

/* Calls fn for each entry of principal (whose seed_of is seed, and whose index is ix)
 * that applies to the resource type:name: literal "*", prefixed patterns that are
 * prefixes of name (only the lengths in use), and literal name. Returns true when fn
 * stopped it. */
static bool walk(const struct acls *a, const struct type_ix *ix, int8_t type, const char *principal,
                 size_t plen, uint64_t seed, const char *name, size_t nlen, entry_fn *fn, void *arg)
{
    struct walk w = {
        .a = a, .type = type, .principal = principal, .plen = plen, .fn = fn, .arg = arg};
    size_t maxp = nlen < ix->maxplen ? nlen : ix->maxplen;
    uint64_t h = seed;

    if (!ix->nentries)
        return false;
    if (ix->nstar && (nlen != 1 || name[0] != '*') &&
        walk_add(&w, key_hash(hash_more(seed, "*", 1), 1, type, ACL_PAT_LITERAL), "*", 1,
                 ACL_PAT_LITERAL))
        return true;
    for (size_t l = 1; l <= maxp; l++) {
        h = (h ^ (uint8_t)name[l - 1]) * HASH_FNV_PRIME; /* hash_more, one byte */
        if ((ix->plen_bits[l >> 6] >> (l & 63) & 1) &&
            walk_add(&w, key_hash(h, l, type, ACL_PAT_PREFIXED), name, l, ACL_PAT_PREFIXED))
            return true;
    }
    if (ix->nliteral && nlen <= ACL_NAME_MAX) {
        h = hash_more(h, name + maxp, nlen - maxp);
        if (walk_add(&w, key_hash(h, nlen, type, ACL_PAT_LITERAL), name, nlen, ACL_PAT_LITERAL))
            return true;
    }
    return walk_flush(&w);
}

/* ---------------------------------------------------------------- principal rings */

/* Where an entry's ring links start: after the key, at an 8-byte offset. */
static size_t link_off(size_t nlen, size_t plen)
{
    return (offsetof(struct acl_entry, key) + nlen + plen + 2 + 7) & ~(size_t)7;
}

static struct acl_plink *entry_link(struct acl_entry *e)
{
    return (struct acl_plink *)((char *)e + link_off(e->name_len, e->principal_len));
}

static uint64_t principal_seed(const struct acl_entry *e)
{
    return seed_of(entry_principal(e), e->principal_len);
}

/* The principal index slot of principal (whose seed_of is seed): the one holding an
 * entry of its ring, or the empty one where it would go. */
static size_t pslot(const struct acls *a, const char *principal, size_t plen, uint64_t seed)
{
    size_t mask = a->pcap - 1, i = seed & mask;

    for (const struct acl_entry *e; (e = a->ptab[i]); i = (i + 1) & mask)
        if (e->principal_len == plen && !memcmp(entry_principal(e), principal, plen))
            return i;
    return i;
}

/* One entry of principal's ring, or NULL when it has no rules. */
static struct acl_entry *ring_of(const struct acls *a, const char *principal)
{
    size_t plen = strlen(principal);

    return a->ptab[pslot(a, principal, plen, seed_of(principal, plen))];
}

/* Doubles the principal index. Returns 0 or -1. */
static int pgrow(struct acls *a)
{
    size_t ncap = a->pcap * 2, mask = ncap - 1;
    struct acl_entry **nt = calloc(ncap, sizeof *nt);

    if (!nt)
        return -1;
    for (size_t i = 0; i < a->pcap; i++) {
        size_t j;

        if (!a->ptab[i])
            continue;
        for (j = principal_seed(a->ptab[i]) & mask; nt[j]; j = (j + 1) & mask)
            ;
        nt[j] = a->ptab[i];
    }
    free(a->ptab);
    a->ptab = nt;
    a->pcap = ncap;
    return 0;
}

/* Empties slot i, moving later entries of its probe run back so that every lookup
 * still reaches its slot without passing an empty one. */
static void pdel(struct acls *a, size_t i)
{
    size_t mask = a->pcap - 1, j = i, home;

    a->nprincipals--;
    for (;;) {
        a->ptab[i] = NULL;
        do {
            j = (j + 1) & mask;
            if (!a->ptab[j])
                return;
            home = principal_seed(a->ptab[j]) & mask;
        } while (i <= j ? i < home && home <= j : i < home || home <= j);
        a->ptab[i] = a->ptab[j];
        i = j;
    }
}

/* Makes room for one more principal. Returns 0 or -1. */
static int preserve(struct acls *a)
{
    return (a->nprincipals + 1) * 4 > a->pcap * 3 ? pgrow(a) : 0;
}

/* Links e (new) into its principal's ring; i is the principal's slot (pslot). */
static void ring_link(struct acls *a, struct acl_entry *e, size_t i)
{
    struct acl_plink *l = entry_link(e), *rl;
    struct acl_entry *r = a->ptab[i];

    if (!r) {
        l->next = l->prev = e;
        a->ptab[i] = e;
        a->nprincipals++;
        return;
    }
    rl = entry_link(r);
    l->prev = r;
    l->next = rl->next;
    entry_link(rl->next)->prev = e;
    rl->next = e;
}

/* Unlinks e from its principal's ring, and the principal from the index when e was its
 * last entry. */
static void ring_unlink(struct acls *a, struct acl_entry *e)
{
    struct acl_plink *l = entry_link(e);
    size_t i = pslot(a, entry_principal(e), e->principal_len, principal_seed(e));

    if (l->next == e) {
        pdel(a, i);
        return;
    }
    entry_link(l->prev)->next = l->next;
    entry_link(l->next)->prev = l->prev;
    if (a->ptab[i] == e)
        a->ptab[i] = l->next;
}

/* ---------------------------------------------------------------- the table */

/* Doubles the bucket array. Returns 0 or -1. */
static int grow(struct acls *a)
{
    size_t ncap = a->cap * 2;
    struct acl_entry **nt = calloc(ncap, sizeof *nt);

    if (!nt)
        return -1;
    for (size_t i = 0; i < a->cap; i++)
        for (struct acl_entry *e = a->tab[i], *next; e; e = next) {
            size_t b = entry_hash(e) & (ncap - 1);
            next = e->next;
            e->next = nt[b];
            nt[b] = e;
        }
    free(a->tab);
    a->tab = nt;
    a->cap = ncap;
    return 0;
}

static bool is_wild(const char *principal, size_t plen)
{
    return plen == WILD_PRINCIPAL_LEN && !memcmp(principal, wild_principal, plen);
}

static void ix_set_max(struct type_ix *ix)
{
    ix->maxplen = 0;
    for (int w = PLEN_WORDS - 1; w >= 0; w--)
        if (ix->plen_bits[w]) {
            ix->maxplen = (uint32_t)(w * 64 + 63 - __builtin_clzll(ix->plen_bits[w]));
            return;
        }
}

/* The index for entries of type and principal. */
static const struct type_ix *ix_of(const struct acls *a, int8_t type, const char *principal,
                                   size_t plen)
{
    return &a->ix[type][is_wild(principal, plen)];
}

/* Accounts for e entering (d = 1) or leaving (d = -1) the table. */
static void ix_update(struct acls *a, const struct acl_entry *e, int d)
{
    struct type_ix *ix = &a->ix[e->res_type][is_wild(entry_principal(e), e->principal_len)];
    size_t l = e->name_len;

    ix->nentries += (uint32_t)d;
    if (e->pattern == ACL_PAT_LITERAL) {
        ix->nliteral += (uint32_t)d;
        ix->nstar += (uint32_t)(l == 1 && e->key[0] == '*' ? d : 0);
        return;
    }
    ix->plen_count[l] += (uint32_t)d;
    if (ix->plen_count[l])
        ix->plen_bits[l >> 6] |= 1ull << (l & 63);
    else
        ix->plen_bits[l >> 6] &= ~(1ull << (l & 63));
    ix_set_max(ix);
}

/* Creates and links an empty entry for the key. NULL when memory runs out. */
static struct acl_entry *entry_add(struct acls *a, uint64_t h, int8_t type, int8_t pattern,
                                   const char *name, size_t nlen, const char *principal,
                                   size_t plen, uint64_t seed)
{
    struct acl_entry *e;
    size_t b, slot;

    if (a->nentries >= a->cap && grow(a) < 0)
        return NULL;
    slot = pslot(a, principal, plen, seed);
    if (!a->ptab[slot]) {
        if (preserve(a) < 0)
            return NULL;
        slot = pslot(a, principal, plen, seed);
    }
    e = calloc(1, link_off(nlen, plen) + sizeof(struct acl_plink));
    if (!e)
        return NULL;
    e->tag = (uint32_t)(h >> 32);
    e->res_type = type;
    e->pattern = pattern;
    e->name_len = (uint16_t)nlen;
    e->principal_len = (uint16_t)plen;
    memcpy(e->key, name, nlen);
    memcpy(e->key + nlen + 1, principal, plen);
    b = h & (a->cap - 1);
    e->next = a->tab[b];
    a->tab[b] = e;
    a->nentries++;
    ix_update(a, e, 1);
    ring_link(a, e, slot);
    return e;
}

static void entry_free(struct acl_entry *e)
{
    for (uint16_t i = 0; i < e->nhosts; i++)
        free(e->hosts[i]);
    free(e->hosts);
    free(e);
}

/* Drops host slots without rules, then e itself if it has none left. */
static void entry_prune(struct acls *a, struct acl_entry *e)
{
    uint16_t i, n = 0;

    for (i = 0; i < e->nhosts; i++) {
        if (e->hosts[i]->m.allow || e->hosts[i]->m.deny)
            e->hosts[n++] = e->hosts[i];
        else
            free(e->hosts[i]);
    }
    if (!n) {
        free(e->hosts);
        e->hosts = NULL;
    } else if (n < e->nhosts) { /* give back the slots a delete or a failure emptied */
        struct acl_host **nh = realloc(e->hosts, n * sizeof *nh);

        if (nh)
            e->hosts = nh;
    }
    e->nhosts = n;
    if (e->any.allow || e->any.deny || e->nhosts)
        return;
    struct acl_entry **pp = &a->tab[entry_hash(e) & (a->cap - 1)];
    while (*pp && *pp != e)
        pp = &(*pp)->next;
    if (*pp)
        *pp = e->next;
    a->nentries--;
    ix_update(a, e, -1);
    ring_unlink(a, e);
    entry_free(e);
}

/* The masks for host in e; with create, adds a slot for a new host. NULL when absent
 * (or, with create, out of memory or past HOSTS_PER_KEY_MAX). */
static struct acl_masks *entry_masks(struct acl_entry *e, const char *host, bool create)
{
    struct acl_host **nh, *s;
    size_t hl;

    if (!strcmp(host, "*"))
        return &e->any;
    for (uint16_t i = 0; i < e->nhosts; i++)
        if (!strcmp(e->hosts[i]->name, host))
            return &e->hosts[i]->m;
    if (!create || e->nhosts >= HOSTS_PER_KEY_MAX)
        return NULL;
    hl = strlen(host);
    nh = realloc(e->hosts, (e->nhosts + 1u) * sizeof *nh);
    if (!nh)
        return NULL;
    e->hosts = nh;
    s = calloc(1, sizeof *s + hl + 1);
    if (!s)
        return NULL;
    memcpy(s->name, host, hl);
    nh[e->nhosts++] = s;
    return &s->m;
}

/* ---------------------------------------------------------------- store keys */

/* "acl/", type, pattern, op, perm, be16 name length, name, be16 principal length,
 * principal, then host to the end. Every field of the binding is in the key, so adding
 * a rule twice writes the same key and deleting one is a key delete. */
static size_t key_encode(uint8_t k[KEY_MAX], const struct acl_binding *b)
{
    size_t nl = strlen(b->res_name), pl = strlen(b->principal), hl = strlen(b->host), n = 0;

    memcpy(k, key_prefix, KEY_PREFIX_LEN);
    n = KEY_PREFIX_LEN;
    k[n++] = (uint8_t)b->res_type;
    k[n++] = (uint8_t)b->pattern;
    k[n++] = (uint8_t)b->op;
    k[n++] = (uint8_t)b->perm;
    k[n++] = (uint8_t)(nl >> 8);
    k[n++] = (uint8_t)nl;
    memcpy(k + n, b->res_name, nl);
    n += nl;
    k[n++] = (uint8_t)(pl >> 8);
    k[n++] = (uint8_t)pl;
    memcpy(k + n, b->principal, pl);
    n += pl;
    memcpy(k + n, b->host, hl);
    return n + hl;
}

/* Reads len bytes at k[*off] into buf (cap bytes) as a C string. Returns 0, or -1 when
 * they run past kl, do not fit, or hold a NUL. */
static int key_str(const uint8_t *k, size_t kl, size_t *off, size_t len, char *buf, size_t cap)
{
    if (len > kl - *off || len >= cap || memchr(k + *off, 0, len))
        return -1;
    memcpy(buf, k + *off, len);
    buf[len] = 0;
    *off += len;
    return 0;
}

/* Buffers a decoded binding points into. */
struct acl_strs {
    char name[ACL_NAME_MAX + 1];
    char principal[ACL_PRINCIPAL_MAX + 1];
    char host[ACL_HOST_MAX + 1];
};

/* Decodes a key written by key_encode. Returns 0 or -1 when malformed. */
static int key_decode(const uint8_t *k, size_t kl, struct acl_binding *b, struct acl_strs *s)
{
    size_t off = KEY_PREFIX_LEN + 4, len;

    if (kl < off + 2 || memcmp(k, key_prefix, KEY_PREFIX_LEN))
        return -1;
    b->res_type = (int8_t)k[4];
    b->pattern = (int8_t)k[5];
    b->op = (int8_t)k[6];
    b->perm = (int8_t)k[7];
    len = (size_t)k[off] << 8 | k[off + 1];
    off += 2;
    if (key_str(k, kl, &off, len, s->name, sizeof s->name) < 0 || kl - off < 2)
        return -1;
    len = (size_t)k[off] << 8 | k[off + 1];
    off += 2;
    if (key_str(k, kl, &off, len, s->principal, sizeof s->principal) < 0 ||
        key_str(k, kl, &off, kl - off, s->host, sizeof s->host) < 0)
        return -1;
    b->res_name = s->name;
    b->principal = s->principal;
    b->host = s->host;
    return 0;
}

/* ---------------------------------------------------------------- validation */

static bool valid_res(int8_t t)
{
    return t >= ACL_RES_TOPIC && t <= ACL_RES_TXN;
}

static bool valid_op(int8_t op)
{
    return op >= ACL_OP_ALL && op <= ACL_OP_IDEMPOTENT_WRITE;
}

/* Checks a string is present and 1..max bytes; returns its length, or 0. */
static size_t str_ok(const char *s, size_t max)
{
    size_t n = s ? strnlen(s, max + 1) : 0;
    return n <= max ? n : 0;
}

int acl_binding_valid(const struct acl_binding *b, char *err, size_t errlen)
{
    const char *colon;
    size_t n;

    if (!valid_res(b->res_type)) {
        snprintf(err, errlen, "invalid resource type %d", b->res_type);
        return -1;
    }
    if (b->pattern != ACL_PAT_LITERAL && b->pattern != ACL_PAT_PREFIXED) {
        snprintf(err, errlen, "invalid pattern type %d", b->pattern);
        return -1;
    }
    if (!valid_op(b->op)) {
        snprintf(err, errlen, "invalid operation %d", b->op);
        return -1;
    }
    if (b->perm != ACL_PERM_ALLOW && b->perm != ACL_PERM_DENY) {
        snprintf(err, errlen, "invalid permission type %d", b->perm);
        return -1;
    }
    if (!str_ok(b->res_name, ACL_NAME_MAX)) {
        snprintf(err, errlen, "resource name must be 1 to %d bytes", ACL_NAME_MAX);
        return -1;
    }
    if (b->res_type == ACL_RES_CLUSTER && strcmp(b->res_name, ACL_CLUSTER_NAME)) {
        snprintf(err, errlen, "the only valid name for the CLUSTER resource is %s",
                 ACL_CLUSTER_NAME);
        return -1;
    }
    n = str_ok(b->principal, ACL_PRINCIPAL_MAX);
    colon = n ? memchr(b->principal, ':', n) : NULL;
    if (!colon || colon == b->principal || colon == b->principal + n - 1) {
        snprintf(err, errlen, "principal must be <type>:<name>, at most %d bytes",
                 ACL_PRINCIPAL_MAX);
        return -1;
    }
    if (!str_ok(b->host, ACL_HOST_MAX)) {
        snprintf(err, errlen, "host must be 1 to %d bytes", ACL_HOST_MAX);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- adding */

/* The entry for b's key (b valid), made (empty) when there is none, *made telling.
 * NULL when memory runs out. */
static struct acl_entry *entry_get(struct acls *a, const struct acl_binding *b, bool *made)
{
    size_t nl = strlen(b->res_name), pl = strlen(b->principal);
    uint64_t seed = seed_of(b->principal, pl);
    uint64_t h = key_hash(hash_more(seed, b->res_name, nl), nl, b->res_type, b->pattern);
    struct acl_entry *e = find(a, h, b->res_type, b->pattern, b->res_name, nl, b->principal, pl);

    *made = !e;
    return e ? e
             : entry_add(a, h, b->res_type, b->pattern, b->res_name, nl, b->principal, pl, seed);
}

/* Adds b (valid) to memory, writing it to the store first when persist is set.
 * Returns 0 or -1. */
static int insert(struct acls *a, const struct acl_binding *b, bool persist)
{
    bool made;
    struct acl_entry *e = entry_get(a, b, &made);
    struct acl_masks *m;
    uint8_t key[KEY_MAX];
    uint16_t *mask;
    size_t kl;
    int rc = -1;

    if (!e)
        return -1;
    m = entry_masks(e, b->host, true);
    if (!m)
        goto out;
    mask = b->perm == ACL_PERM_ALLOW ? &m->allow : &m->deny;
    rc = 0;
    if (*mask & OPBIT(b->op))
        goto out;
    kl = key_encode(key, b);
    if (persist && store_put(a->st, STORE_CF_META, key, kl, "", 0) < 0) {
        rc = -1;
        goto out;
    }
    *mask |= OPBIT(b->op);
    a->nrules++;
out:
    entry_prune(a, e); /* a new entry or host slot left empty by a failure */
    return rc;
}

int acls_add(struct acls *a, const struct acl_binding *b)
{
    char err[128];

    if (acl_binding_valid(b, err, sizeof err) < 0)
        return -1;
    return insert(a, b, true);
}

/* ---------------------------------------------------------------- open and free */

/* Parses a ';' or ',' separated list of principals, blanks around each trimmed. */
static int supers_parse(struct acls *a, const char *s)
{
    while (s && *s) {
        size_t n = strcspn(s, ";,"), b = 0, e = n;
        char **ns;

        while (b < e && (s[b] == ' ' || s[b] == '\t'))
            b++;
        while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t'))
            e--;
        if (e > b) {
            ns = realloc(a->supers, (a->nsupers + 1) * sizeof *ns);
            if (!ns)
                return -1;
            a->supers = ns;
            if (!(ns[a->nsupers] = strndup(s + b, e - b)))
                return -1;
            a->nsupers++;
        }
        s += n + (s[n] != 0);
    }
    return 0;
}

/* Loads every "acl/" key. Malformed keys are skipped (and counted in one warning). */
static int load(struct acls *a)
{
    struct store_it *it =
        store_it_new(a->st, STORE_CF_META, key_prefix, KEY_PREFIX_LEN, key_end, KEY_PREFIX_LEN);
    struct acl_strs *s = malloc(sizeof *s);
    size_t bad = 0;
    int rc = -1;

    if (!it || !s)
        goto out;
    for (store_it_first(it); store_it_valid(it); store_it_next(it)) {
        struct acl_binding b;
        char err[128];
        size_t kl;
        const uint8_t *k = store_it_key(it, &kl);

        if (key_decode(k, kl, &b, s) < 0 || acl_binding_valid(&b, err, sizeof err) < 0) {
            bad++;
            continue;
        }
        if (insert(a, &b, false) < 0)
            goto out;
    }
    if (bad)
        log_warn("acl: skipped %zu malformed stored rules", bad);
    rc = 0;
out:
    store_it_free(it);
    free(s);
    return rc;
}

struct acls *acls_open(struct store *st, const char *super_users)
{
    struct acls *a = calloc(1, sizeof *a);

    if (!a)
        goto fail;
    a->st = st;
    a->cap = TABLE_MIN;
    a->wild_seed = seed_of(wild_principal, WILD_PRINCIPAL_LEN);
    a->tab = calloc(a->cap, sizeof *a->tab);
    a->pcap = PTAB_MIN;
    a->ptab = calloc(a->pcap, sizeof *a->ptab);
    if (!a->tab || !a->ptab || supers_parse(a, super_users) < 0 || load(a) < 0)
        goto fail;
    return a;
fail:
    log_error("acl: cannot load the ACLs");
    acls_free(a);
    return NULL;
}

void acls_free(struct acls *a)
{
    if (!a)
        return;
    for (size_t i = 0; a->tab && i < a->cap; i++)
        for (struct acl_entry *e = a->tab[i], *next; e; e = next) {
            next = e->next;
            entry_free(e);
        }
    for (size_t i = 0; i < a->nsupers; i++)
        free(a->supers[i]);
    free(a->supers);
    free(a->tab);
    free(a->ptab);
    free(a);
}

/* ---------------------------------------------------------------- decisions */

bool acls_is_super(const struct acls *a, const char *principal)
{
    for (size_t i = 0; a && principal && i < a->nsupers; i++)
        if (!strcmp(a->supers[i], principal))
            return true;
    return false;
}

/* The ALLOW bits that grant op: op itself, ALL, and the ops that imply it. */
static uint16_t allow_set(int8_t op)
{
    uint16_t s = OPBIT(op) | OPBIT(ACL_OP_ALL);

    if (op == ACL_OP_DESCRIBE)
        s |= OPBIT(ACL_OP_READ) | OPBIT(ACL_OP_WRITE) | OPBIT(ACL_OP_DELETE) | OPBIT(ACL_OP_ALTER);
    else if (op == ACL_OP_DESCRIBE_CONFIGS)
        s |= OPBIT(ACL_OP_ALTER_CONFIGS);
    return s;
}

struct decision {
    const char *host;
    struct acl_masks m; /* everything that matched */
    uint16_t deny_set;  /* DENY bits that refuse the op: it and ALL */
};

static bool decide_entry(void *arg, struct acl_entry *e)
{
    struct decision *d = arg;

    d->m.allow |= e->any.allow;
    d->m.deny |= e->any.deny;
    for (uint16_t i = 0; d->host && i < e->nhosts; i++)
        if (!strcmp(e->hosts[i]->name, d->host)) {
            d->m.allow |= e->hosts[i]->m.allow;
            d->m.deny |= e->hosts[i]->m.deny;
        }
    return (d->m.deny & d->deny_set) != 0;
}

bool acl_allowed(const struct acls *a, const char *principal, const char *host, int8_t res_type,
                 const char *name, size_t name_len, int8_t op)
{
    struct decision d = {.host = host, .deny_set = OPBIT(op) | OPBIT(ACL_OP_ALL)};
    size_t pl;

    if (!a || !principal)
        return false;
    if (acls_is_super(a, principal))
        return true;
    if (!valid_res(res_type) || !valid_op(op) || !name)
        return false;
    pl = strlen(principal);
    if (walk(a, ix_of(a, res_type, principal, pl), res_type, principal, pl, seed_of(principal, pl),
             name, name_len, decide_entry, &d))
        return false;
    if (!is_wild(principal, pl) &&
        walk(a, &a->ix[res_type][1], res_type, wild_principal, WILD_PRINCIPAL_LEN, a->wild_seed,
             name, name_len, decide_entry, &d))
        return false;
    return (d.m.allow & allow_set(op)) != 0;
}

/* ---------------------------------------------------------------- filters */

/* Whether the filter's resource and principal parts admit e (AclBindingFilter). */
static bool filter_entry(const struct acl_binding *f, const struct acl_entry *e)
{
    size_t fl;

    if (f->res_type != ACL_RES_ANY && f->res_type != e->res_type)
        return false;
    if (f->pattern != ACL_PAT_ANY && f->pattern != ACL_PAT_MATCH && f->pattern != e->pattern)
        return false;
    if (f->principal && (strlen(f->principal) != e->principal_len ||
                         memcmp(f->principal, entry_principal(e), e->principal_len)))
        return false;
    if (!f->res_name)
        return true;
    fl = strlen(f->res_name);
    if (f->pattern != ACL_PAT_MATCH || e->pattern == ACL_PAT_LITERAL) {
        if (fl == e->name_len && !memcmp(f->res_name, e->key, fl))
            return true;
        return f->pattern == ACL_PAT_MATCH && e->name_len == 1 && e->key[0] == '*';
    }
    return e->name_len <= fl && !memcmp(f->res_name, e->key, e->name_len); /* PREFIXED */
}

/* The bits of mask the filter's op admits. */
static uint16_t filter_ops(const struct acl_binding *f, uint16_t mask)
{
    if (f->op == ACL_OP_ANY)
        return mask;
    return valid_op(f->op) ? mask & OPBIT(f->op) : 0;
}

/* The rules of one host's masks that f admits: allow and deny bits. */
static struct acl_masks filter_masks(const struct acl_binding *f, const char *host,
                                     const struct acl_masks *m)
{
    struct acl_masks r = {0, 0};

    if (f->host && strcmp(f->host, host))
        return r;
    if (f->perm == ACL_PERM_ANY || f->perm == ACL_PERM_ALLOW)
        r.allow = filter_ops(f, m->allow);
    if (f->perm == ACL_PERM_ANY || f->perm == ACL_PERM_DENY)
        r.deny = filter_ops(f, m->deny);
    return r;
}

/* Calls fn with each rule of e's host masks m that f admits. */
static void visit_masks(const struct acl_entry *e, const char *host, const struct acl_masks *m,
                        const struct acl_binding *f, acl_visit_fn *fn, void *arg)
{
    struct acl_masks r = filter_masks(f, host, m);
    struct acl_binding b = {e->res_type, e->key, e->pattern, entry_principal(e), host, 0, 0};

    for (int8_t op = ACL_OP_ALL; op <= ACL_OP_IDEMPOTENT_WRITE; op++) {
        b.op = op;
        if (r.deny & OPBIT(op)) {
            b.perm = ACL_PERM_DENY;
            fn(arg, &b);
        }
        if (r.allow & OPBIT(op)) {
            b.perm = ACL_PERM_ALLOW;
            fn(arg, &b);
        }
    }
}

/* Calls fn with each rule of e that f admits (e itself must pass filter_entry). */
static void visit_entry(const struct acl_entry *e, const struct acl_binding *f, acl_visit_fn *fn,
                        void *arg)
{
    visit_masks(e, "*", &e->any, f, fn, arg);
    for (uint16_t i = 0; i < e->nhosts; i++)
        visit_masks(e, e->hosts[i]->name, &e->hosts[i]->m, f, fn, arg);
}

/* Candidates for a filter: the entries passing filter_entry, found by probing when the
 * filter names a resource type, a resource and a principal, by walking the principal's
 * ring when it names a principal, by a scan otherwise. */
struct cand {
    const struct acl_binding *f;
    void (*fn)(void *arg, struct acl_entry *e);
    void *arg;
    size_t visits;
};

static bool cand_entry(void *arg, struct acl_entry *e)
{
    struct cand *c = arg;

    c->visits++;
    if (filter_entry(c->f, e))
        c->fn(c->arg, e);
    return false;
}

/* Calls fn for each entry of f->principal that passes the filter. fn may not change
 * the table. */
static void ring_candidates(const struct acls *a, struct cand *c)
{
    struct acl_entry *r = ring_of(a, c->f->principal), *e = r, *next;

    if (!r)
        return;
    do {
        next = entry_link(e)->next;
        cand_entry(c, e);
        e = next;
    } while (e != r);
}

/* Calls fn for each entry that passes a filter naming a resource type, a resource and
 * a principal, by probing the keys that can pass. */
static void probe_candidates(const struct acls *a, struct cand *c)
{
    const struct acl_binding *f = c->f;
    const char *n = f->res_name, *p = f->principal;
    size_t nl = strlen(n), pl = strlen(p);
    uint64_t seed = seed_of(p, pl), h = hash_more(seed, n, nl);

    if (f->pattern == ACL_PAT_MATCH) {
        walk(a, ix_of(a, f->res_type, p, pl), f->res_type, p, pl, seed, n, nl, cand_entry, c);
        return;
    }
    for (int8_t pat = ACL_PAT_LITERAL; pat <= ACL_PAT_PREFIXED; pat++) {
        struct acl_entry *e;

        if (f->pattern != ACL_PAT_ANY && f->pattern != pat)
            continue;
        e = find(a, key_hash(h, nl, f->res_type, pat), f->res_type, pat, n, nl, p, pl);
        if (e)
            cand_entry(c, e);
    }
}

static void candidates(const struct acls *a, const struct acl_binding *f,
                       void (*fn)(void *arg, struct acl_entry *e), void *arg)
{
    struct cand c = {f, fn, arg, 0};

    if (!a->scan_only && valid_res(f->res_type) && f->res_name && f->principal)
        probe_candidates(a, &c);
    else if (!a->scan_only && f->principal)
        ring_candidates(a, &c);
    else
        for (size_t i = 0; i < a->cap; i++)
            for (struct acl_entry *e = a->tab[i]; e; e = e->next)
                cand_entry(&c, e);
    /* a statistic, not state (a filter changes nothing else); tables are heap objects */
    ((struct acls *)a)->visits += c.visits;
}

struct foreach_ctx {
    const struct acl_binding *f;
    acl_visit_fn *fn;
    void *arg;
};

static void foreach_entry(void *arg, struct acl_entry *e)
{
    struct foreach_ctx *c = arg;

    visit_entry(e, c->f, c->fn, c->arg);
}

void acls_foreach(const struct acls *a, const struct acl_binding *filter, acl_visit_fn *fn,
                  void *arg)
{
    struct foreach_ctx c = {filter, fn, arg};

    candidates(a, filter, foreach_entry, &c);
}

/* ---------------------------------------------------------------- deleting */

struct entry_vec {
    struct acl_entry **p;
    size_t n, cap;
    bool oom;
};

static void vec_push(void *arg, struct acl_entry *e)
{
    struct entry_vec *v = arg;

    if (v->n == v->cap) {
        size_t ncap = v->cap ? v->cap * 2 : 16;
        struct acl_entry **np = v->oom ? NULL : realloc(v->p, ncap * sizeof *np);

        if (!np) {
            v->oom = true;
            return;
        }
        v->p = np;
        v->cap = ncap;
    }
    v->p[v->n++] = e;
}

struct del_ctx {
    struct store_wb *wb;
    int n;
};

static void del_key(void *arg, const struct acl_binding *b)
{
    struct del_ctx *d = arg;
    uint8_t key[KEY_MAX];

    store_wb_del(d->wb, STORE_CF_META, key, key_encode(key, b));
    d->n++;
}

/* Clears the rules of one host's masks that f admits. */
static void masks_clear(struct acls *a, const struct acl_binding *f, const char *host,
                        struct acl_masks *m)
{
    struct acl_masks r = filter_masks(f, host, m);

    a->nrules -= (size_t)__builtin_popcount(r.allow) + (size_t)__builtin_popcount(r.deny);
    m->allow &= (uint16_t)~r.allow;
    m->deny &= (uint16_t)~r.deny;
}

/* Clears the rules of e that f admits; e may be freed. */
static void entry_clear(struct acls *a, struct acl_entry *e, const struct acl_binding *f)
{
    masks_clear(a, f, "*", &e->any);
    for (uint16_t i = 0; i < e->nhosts; i++)
        masks_clear(a, f, e->hosts[i]->name, &e->hosts[i]->m);
    entry_prune(a, e);
}

int acls_delete(struct acls *a, const struct acl_binding *filter, acl_visit_fn *fn, void *arg)
{
    struct entry_vec v = {0};
    struct del_ctx d = {0};
    int rc = -1;

    candidates(a, filter, vec_push, &v);
    if (v.oom || !(d.wb = store_wb_new(a->st)))
        goto out;
    for (size_t i = 0; i < v.n; i++)
        visit_entry(v.p[i], filter, del_key, &d);
    if (d.n && store_write(a->st, d.wb, 0) < 0)
        goto out;
    for (size_t i = 0; i < v.n; i++) {
        if (fn)
            visit_entry(v.p[i], filter, fn, arg);
        entry_clear(a, v.p[i], filter);
    }
    rc = d.n;
out:
    store_wb_free(d.wb);
    free(v.p);
    return rc;
}

/* ---------------------------------------------------------------- replacing */

/* The rules a replacement wants one host's masks of the principal to hold. */
struct want {
    struct acl_masks *m;
    struct acl_masks w;
};

static int want_cmp(const void *x, const void *y)
{
    uintptr_t p = (uintptr_t)((const struct want *)x)->m;
    uintptr_t q = (uintptr_t)((const struct want *)y)->m;

    return (p > q) - (p < q);
}

/* Sorts w by masks and merges the wants for the same masks; returns how many remain. */
static size_t want_merge(struct want *w, size_t n)
{
    size_t k = 0;

    qsort(w, n, sizeof *w, want_cmp);
    for (size_t i = 0; i < n; i++) {
        if (k && w[k - 1].m == w[i].m) {
            w[k - 1].w.allow |= w[i].w.allow;
            w[k - 1].w.deny |= w[i].w.deny;
        } else {
            w[k++] = w[i];
        }
    }
    return k;
}

/* What the merged wants ask m to hold: nothing when m is not among them. */
static struct acl_masks want_of(const struct want *w, size_t n, struct acl_masks *m)
{
    struct want key = {.m = m};
    const struct want *hit = bsearch(&key, w, n, sizeof *w, want_cmp);

    return hit ? hit->w : (struct acl_masks){0, 0};
}

/* Room for extra more entries in v, so that pushing them cannot fail. */
static int vec_reserve(struct entry_vec *v, size_t extra)
{
    struct acl_entry **np;

    if (v->oom)
        return -1;
    if (v->cap - v->n >= extra)
        return 0;
    np = realloc(v->p, (v->n + extra) * sizeof *np);
    if (!np)
        return -1;
    v->p = np;
    v->cap = v->n + extra;
    return 0;
}

/* Checks that every rule is valid and belongs to principal. Returns 0 or -1. */
static int replace_check(const char *principal, const struct acl_binding *rules, int n)
{
    char err[128];

    for (int i = 0; i < n; i++)
        if (acl_binding_valid(&rules[i], err, sizeof err) < 0 ||
            strcmp(rules[i].principal, principal))
            return -1;
    return 0;
}

/* Queues the writes that turn the rules of e's host masks m into want's. */
static void queue_diff(struct store_wb *wb, struct acl_entry *e, const char *host,
                       const struct acl_masks *m, const struct acl_masks *want)
{
    struct acl_binding b = {e->res_type, e->key, e->pattern, entry_principal(e), host, 0, 0};
    uint8_t key[KEY_MAX];

    for (int8_t op = ACL_OP_ALL; op <= ACL_OP_IDEMPOTENT_WRITE; op++)
        for (int8_t perm = ACL_PERM_DENY; perm <= ACL_PERM_ALLOW; perm++) {
            uint16_t now = perm == ACL_PERM_ALLOW ? m->allow : m->deny;
            uint16_t then = perm == ACL_PERM_ALLOW ? want->allow : want->deny;
            size_t kl;

            if (!((now ^ then) & OPBIT(op)))
                continue;
            b.op = op;
            b.perm = perm;
            kl = key_encode(key, &b);
            if (then & OPBIT(op))
                store_wb_put(wb, STORE_CF_META, key, kl, "", 0);
            else
                store_wb_del(wb, STORE_CF_META, key, kl);
        }
}

/* Queues in wb the writes that give one host's masks m of e what the wants ask, or with
 * wb NULL gives it to them. */
static void masks_replace(struct acls *a, struct acl_entry *e, const char *host,
                          struct acl_masks *m, const struct want *w, size_t nw, struct store_wb *wb)
{
    struct acl_masks then = want_of(w, nw, m);

    if (wb) {
        queue_diff(wb, e, host, m, &then);
        return;
    }
    a->nrules += (size_t)__builtin_popcount(then.allow) + (size_t)__builtin_popcount(then.deny);
    a->nrules -= (size_t)__builtin_popcount(m->allow) + (size_t)__builtin_popcount(m->deny);
    *m = then;
}

/* masks_replace for every host of e. */
static void entry_replace(struct acls *a, struct acl_entry *e, const struct want *w, size_t nw,
                          struct store_wb *wb)
{
    masks_replace(a, e, "*", &e->any, w, nw, wb);
    for (uint16_t i = 0; i < e->nhosts; i++)
        masks_replace(a, e, e->hosts[i]->name, &e->hosts[i]->m, w, nw, wb);
}

/* Makes the entry and host masks of every rule, appending new entries to v (which has
 * room for them), and records what each rule wants of its masks in w. Returns 0 or -1
 * when memory runs out. */
static int want_rules(struct acls *a, const struct acl_binding *rules, int n, struct entry_vec *v,
                      struct want *w)
{
    for (int i = 0; i < n; i++) {
        const struct acl_binding *b = &rules[i];
        bool made;
        struct acl_entry *e = entry_get(a, b, &made);

        if (!e)
            return -1;
        if (made)
            v->p[v->n++] = e;
        w[i].m = entry_masks(e, b->host, true);
        if (!w[i].m)
            return -1;
        w[i].w.allow = b->perm == ACL_PERM_ALLOW ? OPBIT(b->op) : 0;
        w[i].w.deny = b->perm == ACL_PERM_DENY ? OPBIT(b->op) : 0;
    }
    return 0;
}

/* First everything the new rules need in memory is made (entries, host slots), then the
 * store is written in one batch, and only then do the masks change: a failure at any
 * step leaves the old rules in both. */
int acls_replace_principal(struct acls *a, const char *principal, const struct acl_binding *rules,
                           int n)
{
    struct acl_binding f = {.res_type = ACL_RES_ANY,
                            .pattern = ACL_PAT_ANY,
                            .principal = principal,
                            .op = ACL_OP_ANY,
                            .perm = ACL_PERM_ANY};
    struct entry_vec v = {0};
    struct want *w = NULL;
    struct store_wb *wb = NULL;
    size_t nw = 0;
    int rc = -1;

    if (!a || !principal || n < 0 || (n && !rules) || replace_check(principal, rules, n) < 0)
        return -1;
    candidates(a, &f, vec_push, &v); /* the principal's entries now */
    w = malloc(((size_t)n + 1) * sizeof *w);
    if (!w || vec_reserve(&v, (size_t)n) < 0 || want_rules(a, rules, n, &v, w) < 0)
        goto out;
    nw = want_merge(w, (size_t)n);
    if (!(wb = store_wb_new(a->st)))
        goto out;
    for (size_t i = 0; i < v.n; i++)
        entry_replace(a, v.p[i], w, nw, wb);
    if (store_wb_count(wb) && store_write(a->st, wb, 0) < 0)
        goto out;
    for (size_t i = 0; i < v.n; i++)
        entry_replace(a, v.p[i], w, nw, NULL);
    rc = 0;
out:
    for (size_t i = 0; i < v.n; i++) /* emptied entries and hosts, or ones a failure left */
        entry_prune(a, v.p[i]);
    store_wb_free(wb);
    free(w);
    free(v.p);
    return rc;
}

/* ---------------------------------------------------------------- accounting */

size_t acls_count(const struct acls *a)
{
    return a ? a->nrules : 0;
}

size_t acls_visits(const struct acls *a)
{
    return a ? a->visits : 0;
}

void acls_set_scan_only(struct acls *a, bool on)
{
    if (a)
        a->scan_only = on;
}

/* Bytes of one heap block: what malloc hands out plus its 8-byte chunk header. */
static size_t block(const void *p)
{
    return p ? malloc_usable_size((void *)p) + sizeof(size_t) : 0;
}

size_t acls_memory(const struct acls *a)
{
    size_t n;

    if (!a)
        return 0;
    n = block(a) + block(a->tab) + block(a->ptab) + block(a->supers);
    for (size_t i = 0; i < a->nsupers; i++)
        n += block(a->supers[i]);
    for (size_t i = 0; i < a->cap; i++)
        for (const struct acl_entry *e = a->tab[i]; e; e = e->next) {
            n += block(e) + block(e->hosts);
            for (uint16_t j = 0; j < e->nhosts; j++)
                n += block(e->hosts[j]);
        }
    return n;
}
