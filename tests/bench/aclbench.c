/*
 * aclbench: the cost of an ACL decision (broker/src/acl.c) with 300,000 principals,
 * beside its ceiling, one probe of a hash table of the same size; and the cost of the
 * admin API's per-principal calls among them, beside a full scan. An agent platform:
 * principal User:tenant-N.agent-M may write topics under the prefix tenant-N.agent-M.
 * and read its literal topic tenant-N.agent-M.input; every tenth agent may also read
 * the groups under the prefix tenant-N.agent-M; and everyone may read the topic
 * "announcements" (a User:* rule, so every decision probes for User:* as well).
 *
 *   make BUILD=build/hp build/hp/obj/broker/src/{acl,store,log,crc32c}.o
 *   cc -O2 -g -D_GNU_SOURCE -Ibroker/src tests/bench/aclbench.c \
 *      build/hp/obj/broker/src/{acl,store,log,crc32c}.o -lrocksdb -lpthread -lm \
 *      -o build/hp/aclbench
 *   build/hp/aclbench [-n PRINCIPALS] [-q QUERIES] [-d DIR]
 *
 * Reports: the time to add the rules (each one a store write) and to load them again
 * (acls_open, the broker's startup cost); bytes per rule; ns per decision for allowed
 * and denied cases, with queries in random principal order; and the ceiling: ns for one
 * FNV-1a hash plus bucket walk and memcmp in a plain chained table holding the same
 * number of keys, and for the hash alone. Then what /v1/principals/{name} does for
 * one agent at a time, in calls per second, each beside the same call with every filter
 * answered by a full scan (acls_set_scan_only, what the table did before its principal
 * index): a PUT of 3 rules done as a delete by principal filter and 3 adds, the same
 * PUT as acls_replace_principal (one store batch) with one rule changed and with none,
 * and a GET (describe by principal filter). The last line on stdout is
 * "RESULT mode=acl key=value ...".
 */
#include "acl.h"
#include "hash.h"
#include "log.h"
#include "store.h"

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { NAME_CAP = 48, AGENTS_PER_TENANT = 100, REPS = 3 };

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t xorshift(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void agent_id(int i, char *out, size_t cap)
{
    snprintf(out, cap, "tenant-%d.agent-%d", i / AGENTS_PER_TENANT, i % AGENTS_PER_TENANT);
}

static void add(struct acls *a, int8_t type, const char *name, int8_t pattern,
                const char *principal, int8_t op)
{
    struct acl_binding b = {type, name, pattern, principal, "*", op, ACL_PERM_ALLOW};
    if (acls_add(a, &b) < 0) {
        fprintf(stderr, "acls_add(%s, %s) failed\n", principal, name);
        exit(1);
    }
}

/* Adds every rule; returns the number of (resource, principal) keys. */
static size_t fill(struct acls *a, int n)
{
    char id[NAME_CAP], principal[NAME_CAP + 8], name[NAME_CAP + 8];
    size_t keys = 1;

    add(a, ACL_RES_TOPIC, "announcements", ACL_PAT_LITERAL, "User:*", ACL_OP_READ);
    for (int i = 0; i < n; i++) {
        agent_id(i, id, sizeof id);
        snprintf(principal, sizeof principal, "User:%s", id);
        snprintf(name, sizeof name, "%s.", id);
        add(a, ACL_RES_TOPIC, name, ACL_PAT_PREFIXED, principal, ACL_OP_WRITE);
        snprintf(name, sizeof name, "%s.input", id);
        add(a, ACL_RES_TOPIC, name, ACL_PAT_LITERAL, principal, ACL_OP_READ);
        keys += 2;
        if (i % 10 == 0) {
            add(a, ACL_RES_GROUP, id, ACL_PAT_PREFIXED, principal, ACL_OP_READ);
            keys++;
        }
    }
    return keys;
}

/* A batch of decisions to time: principal, resource and what the answer must be. */
struct query {
    char principal[NAME_CAP + 8];
    char name[NAME_CAP + 16];
    size_t name_len;
    int8_t type, op;
    bool want;
};

enum qkind { Q_PREFIX_ALLOWED, Q_LITERAL_ALLOWED, Q_GROUP_ALLOWED, Q_DENIED, Q_KINDS };

static const char *const qkind_name[Q_KINDS] = {
    "allowed: write tenant-N.agent-M.output (prefixed rule)",
    "allowed: read tenant-N.agent-M.input (literal rule)",
    "allowed: read group tenant-N.agent-M-workers (prefixed rule)",
    "denied: read another agent's tenant-N.agent-M'.input",
};

static void make_queries(struct query *q, int nq, int n, enum qkind k)
{
    char id[NAME_CAP];

    for (int j = 0; j < nq; j++) {
        int i = (int)(xorshift() % (uint64_t)n);
        if (k == Q_GROUP_ALLOWED)
            i -= i % 10;
        agent_id(i, id, sizeof id);
        snprintf(q[j].principal, sizeof q[j].principal, "User:%s", id);
        q[j].type = ACL_RES_TOPIC;
        q[j].want = true;
        switch (k) {
        case Q_PREFIX_ALLOWED:
            snprintf(q[j].name, sizeof q[j].name, "%s.output", id);
            q[j].op = ACL_OP_WRITE;
            break;
        case Q_LITERAL_ALLOWED:
            snprintf(q[j].name, sizeof q[j].name, "%s.input", id);
            q[j].op = ACL_OP_READ;
            break;
        case Q_GROUP_ALLOWED:
            snprintf(q[j].name, sizeof q[j].name, "%s-workers", id);
            q[j].type = ACL_RES_GROUP;
            q[j].op = ACL_OP_READ;
            break;
        default:
            agent_id((i + 1) % n, id, sizeof id);
            snprintf(q[j].name, sizeof q[j].name, "%s.input", id);
            q[j].op = ACL_OP_READ;
            q[j].want = false;
        }
        q[j].name_len = strlen(q[j].name);
    }
}

/* Best-of-REPS ns per decision over the batch; exits if any answer is wrong. */
static double time_checks(const struct acls *a, const struct query *q, int nq)
{
    double best = 1e30;

    for (int r = 0; r < REPS; r++) {
        double t0 = now_s();
        int wrong = 0;
        for (int j = 0; j < nq; j++)
            wrong += acl_allowed(a, q[j].principal, "10.0.0.1", q[j].type, q[j].name, q[j].name_len,
                                 q[j].op) != q[j].want;
        double dt = now_s() - t0;
        if (wrong) {
            fprintf(stderr, "%d wrong decisions\n", wrong);
            exit(1);
        }
        if (dt < best)
            best = dt;
    }
    return best * 1e9 / nq;
}

/* ---- the ceiling: a plain chained table of the same number of keys */

struct pnode {
    struct pnode *next;
    uint32_t len;
    char key[]; /* principal NUL name */
};

struct ptable {
    struct pnode **tab;
    size_t mask;
};

static void pt_add(struct ptable *t, const char *key, uint32_t len)
{
    struct pnode *n = malloc(sizeof *n + len);
    size_t b = hash_bytes(key, len) & t->mask;
    memcpy(n->key, key, len);
    n->len = len;
    n->next = t->tab[b];
    t->tab[b] = n;
}

static const struct pnode *pt_find(const struct ptable *t, const char *key, uint32_t len)
{
    for (const struct pnode *n = t->tab[hash_bytes(key, len) & t->mask]; n; n = n->next)
        if (n->len == len && !memcmp(n->key, key, len))
            return n;
    return NULL;
}

static uint32_t probe_key(char *out, size_t cap, const char *principal, const char *name)
{
    int n = snprintf(out, cap, "%s%c%s", principal, 0, name);
    return (uint32_t)n;
}

/* ns per probe (hash, bucket walk, memcmp) for random existing keys, and per hash. */
static void time_ceiling(size_t keys, int n, int nq, double *ns_probe, double *ns_hash)
{
    struct ptable t;
    char id[NAME_CAP], p[NAME_CAP + 8], nm[NAME_CAP + 8], k[2 * NAME_CAP + 32];
    size_t cap = 1;
    uint32_t *ql = malloc((size_t)nq * sizeof *ql);
    char(*qk)[2 * NAME_CAP + 32] = malloc((size_t)nq * sizeof *qk);

    while (cap < keys)
        cap *= 2;
    t.tab = calloc(cap, sizeof *t.tab);
    t.mask = cap - 1;
    for (size_t i = 0; i < keys; i++) { /* the same key shapes as the ACL table holds */
        agent_id((int)(i / 2) % n, id, sizeof id);
        snprintf(p, sizeof p, "User:%s", id);
        snprintf(nm, sizeof nm, i % 2 ? "%s.input" : "%s.", id);
        if (i / 2 >= (size_t)n)
            snprintf(nm, sizeof nm, "%s#%zu", id, i);
        pt_add(&t, k, probe_key(k, sizeof k, p, nm));
    }
    for (int j = 0; j < nq; j++) {
        agent_id((int)(xorshift() % (uint64_t)n), id, sizeof id);
        snprintf(p, sizeof p, "User:%s", id);
        snprintf(nm, sizeof nm, "%s.input", id);
        ql[j] = probe_key(qk[j], sizeof qk[j], p, nm);
    }
    *ns_probe = *ns_hash = 1e30;
    for (int r = 0; r < REPS; r++) {
        size_t found = 0;
        uint64_t sink = 0;
        double t0 = now_s();
        for (int j = 0; j < nq; j++)
            found += pt_find(&t, qk[j], ql[j]) != NULL;
        double t1 = now_s();
        for (int j = 0; j < nq; j++)
            sink += hash_bytes(qk[j], ql[j]);
        double t2 = now_s();
        if (found != (size_t)nq || sink == 42) {
            fprintf(stderr, "ceiling table: found %zu of %d\n", found, nq);
            exit(1);
        }
        if ((t1 - t0) * 1e9 / nq < *ns_probe)
            *ns_probe = (t1 - t0) * 1e9 / nq;
        if ((t2 - t1) * 1e9 / nq < *ns_hash)
            *ns_hash = (t2 - t1) * 1e9 / nq;
    }
    for (size_t i = 0; i < cap; i++)
        for (struct pnode *x = t.tab[i], *nx; x; x = nx) {
            nx = x->next;
            free(x);
        }
    free(t.tab);
    free(ql);
    free(qk);
}

/* What acl.c's index holds for one resource type and one kind of principal (User:*,
 * or the others) in this rule set: the prefix lengths in use, and whether literal and
 * literal "*" rules exist. */
struct shape {
    bool plen[NAME_CAP + 1];
    bool literal, star;
};

/* Probes one walk makes: literal "*" if there are such rules, each prefix length in
 * use up to the name's length, and the literal name if there are literal rules. */
static int walk_probes(const struct shape *s, size_t name_len)
{
    int n = s->star + s->literal;
    for (size_t l = 1; l <= name_len && l <= NAME_CAP; l++)
        n += s->plen[l];
    return n;
}

/* Mean probes per decision over a batch: the principal's walk and the User:* walk. */
static double mean_probes(const struct query *q, int nq, const struct shape sh[2][2])
{
    double sum = 0;
    for (int j = 0; j < nq; j++) {
        int g = q[j].type == ACL_RES_GROUP;
        sum += walk_probes(&sh[g][0], q[j].name_len) + walk_probes(&sh[g][1], q[j].name_len);
    }
    return sum / nq;
}

/* ---- the admin API's per-principal calls */

/* The rules a PUT gives agent i: write under its prefix, read its input topic, and read
 * (variant 0) or describe (variant 1) its groups, so that alternate PUTs change one. */
struct put {
    char principal[NAME_CAP + 8];
    char names[3][NAME_CAP + 8];
    struct acl_binding r[3];
};

static void put_make(struct put *p, int i, int variant)
{
    static const struct {
        int8_t type, pattern, op;
        const char *suffix;
    } shape[3] = {
        {ACL_RES_TOPIC, ACL_PAT_PREFIXED, ACL_OP_WRITE, "."},
        {ACL_RES_TOPIC, ACL_PAT_LITERAL, ACL_OP_READ, ".input"},
        {ACL_RES_GROUP, ACL_PAT_PREFIXED, ACL_OP_READ, ""},
    };
    char id[NAME_CAP];

    agent_id(i, id, sizeof id);
    snprintf(p->principal, sizeof p->principal, "User:%s", id);
    for (int k = 0; k < 3; k++) {
        struct acl_binding *b = &p->r[k];

        snprintf(p->names[k], sizeof p->names[k], "%s%s", id, shape[k].suffix);
        b->res_type = shape[k].type;
        b->res_name = p->names[k];
        b->pattern = shape[k].pattern;
        b->principal = p->principal;
        b->host = "*";
        b->op = shape[k].op;
        b->perm = ACL_PERM_ALLOW;
    }
    if (variant)
        p->r[2].op = ACL_OP_DESCRIBE;
}

static struct acl_binding principal_filter(const char *principal)
{
    return (struct acl_binding){.res_type = ACL_RES_ANY,
                                .pattern = ACL_PAT_ANY,
                                .principal = principal,
                                .op = ACL_OP_ANY,
                                .perm = ACL_PERM_ANY};
}

enum call { C_DELETE_ADD, C_REPLACE_CHANGED, C_REPLACE_SAME, C_DESCRIBE, C_CALLS };

static const char *const call_name[C_CALLS] = {
    "PUT: delete by principal filter + 3 adds",
    "PUT: acls_replace_principal, 1 of 3 rules changed",
    "PUT: acls_replace_principal, unchanged (repeated PUT)",
    "GET: describe by principal filter",
};

static void count_rule(void *arg, const struct acl_binding *b)
{
    (void)b;
    ++*(int *)arg;
}

/* One call for agent i; seq alternates the PUTs' variant. Exits on a failure. */
static void call_once(struct acls *a, enum call c, int i, unsigned seq)
{
    struct put p;
    struct acl_binding f;
    int n = 0;

    put_make(&p, i, c == C_REPLACE_SAME ? 0 : (int)(seq & 1));
    f = principal_filter(p.principal);
    switch (c) {
    case C_DELETE_ADD:
        n = acls_delete(a, &f, NULL, NULL) < 0;
        for (int k = 0; k < 3; k++)
            n |= acls_add(a, &p.r[k]) < 0;
        break;
    case C_REPLACE_CHANGED:
    case C_REPLACE_SAME:
        n = acls_replace_principal(a, p.principal, p.r, 3) < 0;
        break;
    default:
        acls_foreach(a, &f, count_rule, &n);
        n = n < 2; /* every agent has 2 or 3 rules */
    }
    if (n) {
        fprintf(stderr, "%s for %s failed\n", call_name[c], p.principal);
        exit(1);
    }
}

/* Calls per second for random agents, timed for about budget_s seconds in batches; a
 * repeated PUT first makes (untimed, with the index) the PUT it repeats. *visits gets
 * the entries a call examined, on average. */
static double time_calls(struct acls *a, enum call c, int n, bool scan, double budget_s,
                         double *visits)
{
    enum { BATCH = 64 };
    int ids[BATCH], k = 0, m = scan ? 4 : BATCH;
    double spent = 0;
    size_t visited = 0;

    while (spent < budget_s) {
        for (int j = 0; j < m; j++) {
            ids[j] = (int)(xorshift() % (uint64_t)n);
            if (c == C_REPLACE_SAME) {
                acls_set_scan_only(a, false);
                call_once(a, C_REPLACE_SAME, ids[j], 0);
            }
        }
        acls_set_scan_only(a, scan);
        size_t v0 = acls_visits(a);
        double t0 = now_s();
        for (int j = 0; j < m; j++)
            call_once(a, c, ids[j], (unsigned)(k + j));
        spent += now_s() - t0;
        visited += acls_visits(a) - v0;
        k += m;
    }
    acls_set_scan_only(a, false);
    *visits = (double)visited / k;
    return k / spent;
}

/* Prints each call's rate with the index and with full scans; fills rate[call][scan]. */
static void time_admin(struct acls *a, int n, double rate[C_CALLS][2])
{
    printf("  admin API, one random agent per call (calls/s; visits = entries examined):\n");
    for (int c = 0; c < C_CALLS; c++) {
        double v[2];
        for (int scan = 0; scan < 2; scan++)
            rate[c][scan] = time_calls(a, (enum call)c, n, scan, scan ? 2.0 : 1.0, &v[scan]);
        printf("    %-54s %9.0f/s %5.1f visits   full scan %7.1f/s %8.0f visits  x%.0f\n",
               call_name[c], rate[c][0], v[0], rate[c][1], v[1], rate[c][0] / rate[c][1]);
    }
    /* with scans, a PUT scans half the final table on average */
    double scan_s = n / (2 * rate[C_DELETE_ADD][1]);
    printf("    %d agents set up by one PUT each: %.1f s; with full scans about %.0f s (%.1f h)\n",
           n, n / rate[C_REPLACE_CHANGED][0], scan_s, scan_s / 3600);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int main(int argc, char **argv)
{
    int n = 300000, nq = 1000000, opt;
    char dir[256] = "", *err = NULL;
    bool own_dir = false;

    while ((opt = getopt(argc, argv, "n:q:d:")) != -1) {
        if (opt == 'n')
            n = atoi(optarg);
        else if (opt == 'q')
            nq = atoi(optarg);
        else if (opt == 'd')
            snprintf(dir, sizeof dir, "%s", optarg);
        else {
            fprintf(stderr, "usage: %s [-n PRINCIPALS] [-q QUERIES] [-d DIR]\n", argv[0]);
            return 2;
        }
    }
    if (n < 2 || nq < 1)
        return 2;
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/aclbench-XXXXXX");
        if (!mkdtemp(dir))
            return 1;
        own_dir = true;
    }
    log_min_level = LOG_WARN;

    struct store *st = store_open(dir, &err);
    if (!st) {
        fprintf(stderr, "store_open(%s): %s\n", dir, err);
        return 1;
    }
    struct acls *a = acls_open(st, "User:admin");
    if (!a)
        return 1;
    double t0 = now_s();
    size_t keys = fill(a, n);
    double fill_s = now_s() - t0;
    size_t rules = acls_count(a), mem = acls_memory(a);

    acls_free(a);
    store_close(st);
    double t1 = now_s();
    st = store_open(dir, &err);
    double t2 = now_s();
    a = st ? acls_open(st, "User:admin") : NULL;
    double open_s = now_s() - t2, store_open_s = t2 - t1;
    if (!a || acls_count(a) != rules) {
        fprintf(stderr, "reload failed\n");
        return 1;
    }

    printf("aclbench: %d principals, %zu rules in %zu keys\n", n, rules, keys);
    printf("  add all rules (one store write each)  %8.2f s   %6.2f us/rule\n", fill_s,
           fill_s * 1e6 / (double)rules);
    printf("  startup: acls_open (load %zu rules)  %8.3f s   %6.2f us/rule  (store_open "
           "%.3f s)\n",
           rules, open_s, open_s * 1e6 / (double)rules, store_open_s);
    printf("  rule table memory                     %8.1f MiB  %6.1f B/rule  %6.1f B/key\n",
           (double)mem / (1 << 20), (double)mem / (double)rules, (double)mem / (double)keys);

    static struct shape shapes[2][2]; /* [group][User:*], as fill() made them */
    shapes[0][0].literal = shapes[0][1].literal = true;
    for (int i = 0; i < n; i++) {
        char id[NAME_CAP];
        agent_id(i, id, sizeof id);
        shapes[0][0].plen[strlen(id) + 1] = true;
        if (i % 10 == 0)
            shapes[1][0].plen[strlen(id)] = true;
    }

    double ns_probe, ns_hash;
    time_ceiling(keys, n, nq, &ns_probe, &ns_hash);
    struct query *q = malloc((size_t)nq * sizeof *q);
    double ns[Q_KINDS];
    printf("  decisions (random principals, best of %d x %d):\n", REPS, nq);
    for (int k = 0; k < Q_KINDS; k++) {
        make_queries(q, nq, n, (enum qkind)k);
        ns[k] = time_checks(a, q, nq);
        printf("    %-60s %7.1f ns  %4.1f probes %4.1f probe-times\n", qkind_name[k], ns[k],
               mean_probes(q, nq, (const struct shape(*)[2])shapes), ns[k] / ns_probe);
    }
    for (int j = 1; j < nq; j++) /* one connection's stream: the same check, cache-warm */
        q[j] = q[0];
    double ns_hot = time_checks(a, q, nq);
    printf("    %-60s %7.1f ns\n", "denied, the same check repeated (warm caches)", ns_hot);
    printf("  ceiling: one probe of a %zu-key chained table (FNV-1a + bucket + memcmp) "
           "%5.1f ns; the hash alone %5.1f ns\n",
           keys, ns_probe, ns_hash);
    double rate[C_CALLS][2];
    time_admin(a, n, rate);
    printf("RESULT mode=acl principals=%d rules=%zu bytes_per_rule=%.1f open_s=%.3f "
           "ns_allowed_prefix=%.1f ns_allowed_literal=%.1f ns_allowed_group=%.1f "
           "ns_denied=%.1f ns_hot=%.1f ns_probe=%.1f ns_hash=%.1f put_delete_add_per_s=%.0f "
           "put_delete_add_scan_per_s=%.1f put_replace_per_s=%.0f put_replace_scan_per_s=%.1f "
           "put_same_per_s=%.0f put_same_scan_per_s=%.1f describe_per_s=%.0f "
           "describe_scan_per_s=%.1f\n",
           n, rules, (double)mem / (double)rules, open_s, ns[Q_PREFIX_ALLOWED],
           ns[Q_LITERAL_ALLOWED], ns[Q_GROUP_ALLOWED], ns[Q_DENIED], ns_hot, ns_probe, ns_hash,
           rate[C_DELETE_ADD][0], rate[C_DELETE_ADD][1], rate[C_REPLACE_CHANGED][0],
           rate[C_REPLACE_CHANGED][1], rate[C_REPLACE_SAME][0], rate[C_REPLACE_SAME][1],
           rate[C_DESCRIBE][0], rate[C_DESCRIBE][1]);

    free(q);
    acls_free(a);
    store_close(st);
    if (own_dir)
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
