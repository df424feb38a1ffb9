/* test_acl.c: the ACL table on a real store in a scratch directory: literal, prefixed
 * and wildcard matches, DENY over ALLOW, implied operations, hosts, super users and
 * User:*, Kafka's binding filters for listing and deleting, persistence across a
 * reopen, and a decision that stays right among 300,000 other principals' rules. */
#include "unit_broker.h"

#include "acl.h"

struct afx {
    struct store *st;
    struct acls *a;
    char dir[64];
};

static const char supers[] = "User:admin; User:root ,";

static struct store *open_store(const char *dir)
{
    char *err = NULL;
    struct store *st = store_open(dir, &err);
    if (!st)
        fail_msg("store_open(%s): %s", dir, err);
    return st;
}

static int setup(void **state)
{
    struct afx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    log_min_level = LOG_ERROR;
    ub_mkdtemp(f->dir);
    f->st = open_store(f->dir);
    f->a = acls_open(f->st, supers);
    assert_non_null(f->a);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct afx *f = *state;
    acls_free(f->a);
    store_close(f->st);
    ub_rmdir(f->dir);
    free(f);
    return 0;
}

/* Closes and reopens the table and the store on the same directory. */
static void reopen(struct afx *f)
{
    acls_free(f->a);
    store_close(f->st);
    f->st = open_store(f->dir);
    f->a = acls_open(f->st, supers);
    assert_non_null(f->a);
}

static struct acl_binding bind(int8_t type, const char *name, int8_t pattern, const char *principal,
                               const char *host, int8_t op, int8_t perm)
{
    return (struct acl_binding){type, name, pattern, principal, host, op, perm};
}

static void add(struct afx *f, int8_t type, const char *name, int8_t pattern, const char *principal,
                const char *host, int8_t op, int8_t perm)
{
    struct acl_binding b = bind(type, name, pattern, principal, host, op, perm);
    assert_int_equal(acls_add(f->a, &b), 0);
}

static void allow(struct afx *f, int8_t type, const char *name, int8_t pattern,
                  const char *principal, int8_t op)
{
    add(f, type, name, pattern, principal, "*", op, ACL_PERM_ALLOW);
}

static void deny(struct afx *f, int8_t type, const char *name, int8_t pattern,
                 const char *principal, int8_t op)
{
    add(f, type, name, pattern, principal, "*", op, ACL_PERM_DENY);
}

static bool ok_from(struct afx *f, const char *principal, const char *host, int8_t type,
                    const char *name, int8_t op)
{
    return acl_allowed(f->a, principal, host, type, name, strlen(name), op);
}

static bool ok(struct afx *f, const char *principal, int8_t type, const char *name, int8_t op)
{
    return ok_from(f, principal, "10.1.2.3", type, name, op);
}

/* ---- collecting filter results as sorted text */

struct coll {
    char **rows;
    int n, cap;
};

static void collect_one(void *arg, const struct acl_binding *b)
{
    struct coll *c = arg;
    char row[ACL_NAME_MAX + ACL_PRINCIPAL_MAX + ACL_HOST_MAX + 32];
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 64;
        c->rows = realloc(c->rows, (size_t)c->cap * sizeof *c->rows);
        assert_non_null(c->rows);
    }
    snprintf(row, sizeof row, "%d/%d/%s/%s/%s/%d/%d", b->res_type, b->pattern, b->res_name,
             b->principal, b->host, b->op, b->perm);
    c->rows[c->n] = strdup(row);
    assert_non_null(c->rows[c->n]);
    c->n++;
}

static void coll_free(struct coll *c)
{
    for (int i = 0; i < c->n; i++)
        free(c->rows[i]);
    free(c->rows);
    *c = (struct coll){.n = 0};
}

static int row_cmp(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* The collected rows, sorted and joined by ' ', into out; frees them. */
static void coll_join(struct coll *c, char *out, size_t cap)
{
    size_t n = 0;
    if (c->n)
        qsort(c->rows, (size_t)c->n, sizeof *c->rows, row_cmp);
    out[0] = 0;
    for (int i = 0; i < c->n; i++) {
        n += (size_t)snprintf(out + n, cap - n, "%s%s", i ? " " : "", c->rows[i]);
        assert_true(n < cap);
    }
    coll_free(c);
}

static void list(struct afx *f, const struct acl_binding *filter, char *out, size_t cap)
{
    struct coll c = {.n = 0};
    acls_foreach(f->a, filter, collect_one, &c);
    coll_join(&c, out, cap);
}

static int count(struct afx *f, const struct acl_binding *filter)
{
    struct coll c = {.n = 0};
    int n;
    acls_foreach(f->a, filter, collect_one, &c);
    n = c.n;
    coll_free(&c);
    return n;
}

/* What a scan answers for q (which names a principal): the rows of a listing without
 * q's principal, a full scan, that have it. */
static void list_by_scan(struct afx *f, const struct acl_binding *q, char *out, size_t cap)
{
    struct acl_binding s = *q;
    size_t len = strlen(q->principal), k = 0;
    char *all = malloc(cap), *save = NULL;

    assert_non_null(all);
    s.principal = NULL;
    list(f, &s, all, cap);
    out[0] = 0;
    for (char *r = strtok_r(all, " ", &save); r; r = strtok_r(NULL, " ", &save)) {
        const char *pr = strchr(strchr(strchr(r, '/') + 1, '/') + 1, '/') + 1;
        if (!strncmp(pr, q->principal, len) && pr[len] == '/') {
            k += (size_t)snprintf(out + k, cap - k, "%s%s", k ? " " : "", r);
            assert_true(k < cap);
        }
    }
    free(all);
}

static struct acl_binding any_filter(void)
{
    return bind(ACL_RES_ANY, NULL, ACL_PAT_ANY, NULL, NULL, ACL_OP_ANY, ACL_PERM_ANY);
}

/* ---- decisions */

static void test_no_rule_denies(void **state)
{
    struct afx *f = *state;
    assert_int_equal(acls_count(f->a), 0);
    assert_false(ok(f, "User:alice", ACL_RES_TOPIC, "orders", ACL_OP_READ));
    assert_false(ok(f, "User:alice", ACL_RES_CLUSTER, ACL_CLUSTER_NAME, ACL_OP_DESCRIBE));
    allow(f, ACL_RES_TOPIC, "orders", ACL_PAT_LITERAL, "User:alice", ACL_OP_ALL);
    /* codes a decision cannot be about */
    assert_false(ok(f, "User:alice", ACL_RES_ANY, "orders", ACL_OP_READ));
    assert_false(ok(f, "User:alice", ACL_RES_TOPIC, "orders", ACL_OP_ANY));
    assert_false(ok(f, "User:alice", 9, "orders", ACL_OP_READ));
    assert_false(ok(f, "User:alice", ACL_RES_TOPIC, "orders", 13));
    assert_false(acl_allowed(f->a, NULL, "h", ACL_RES_TOPIC, "orders", 6, ACL_OP_READ));
    assert_false(acl_allowed(NULL, "User:alice", "h", ACL_RES_TOPIC, "orders", 6, ACL_OP_READ));
}

static void test_literal(void **state)
{
    struct afx *f = *state;
    allow(f, ACL_RES_TOPIC, "orders", ACL_PAT_LITERAL, "User:alice", ACL_OP_READ);
    assert_true(ok(f, "User:alice", ACL_RES_TOPIC, "orders", ACL_OP_READ));
    assert_true(ok(f, "User:alice", ACL_RES_TOPIC, "orders", ACL_OP_DESCRIBE));
    assert_false(ok(f, "User:alice", ACL_RES_TOPIC, "orders", ACL_OP_WRITE));
    assert_false(ok(f, "User:alice", ACL_RES_TOPIC, "orders2", ACL_OP_READ));
    assert_false(ok(f, "User:alice", ACL_RES_TOPIC, "order", ACL_OP_READ));
    assert_false(ok(f, "User:alice", ACL_RES_GROUP, "orders", ACL_OP_READ));
    assert_false(ok(f, "User:alicia", ACL_RES_TOPIC, "orders", ACL_OP_READ));
    assert_false(ok(f, "User:alic", ACL_RES_TOPIC, "orders", ACL_OP_READ));
    /* name_len, not the NUL, bounds the name */
    assert_true(acl_allowed(f->a, "User:alice", "h", ACL_RES_TOPIC, "orders-x", 6, ACL_OP_READ));
    assert_int_equal(acls_count(f->a), 1);
}

static void test_prefixed(void **state)
{
    struct afx *f = *state;
    allow(f, ACL_RES_TOPIC, "tenant-1.", ACL_PAT_PREFIXED, "User:bob", ACL_OP_WRITE);
    assert_true(ok(f, "User:bob", ACL_RES_TOPIC, "tenant-1.orders", ACL_OP_WRITE));
    assert_true(ok(f, "User:bob", ACL_RES_TOPIC, "tenant-1.", ACL_OP_WRITE));
    assert_false(ok(f, "User:bob", ACL_RES_TOPIC, "tenant-1", ACL_OP_WRITE));
    assert_false(ok(f, "User:bob", ACL_RES_TOPIC, "tenant-10.orders", ACL_OP_WRITE));
    assert_false(ok(f, "User:bob", ACL_RES_TOPIC, "x-tenant-1.orders", ACL_OP_WRITE));
    assert_false(ok(f, "User:bob", ACL_RES_TOPIC, "tenant-1.orders", ACL_OP_READ));
    assert_true(ok(f, "User:bob", ACL_RES_TOPIC, "tenant-1.orders", ACL_OP_DESCRIBE));
    /* a literal rule does not match as a prefix */
    allow(f, ACL_RES_GROUP, "g", ACL_PAT_LITERAL, "User:bob", ACL_OP_READ);
    assert_false(ok(f, "User:bob", ACL_RES_GROUP, "g1", ACL_OP_READ));
    assert_true(ok(f, "User:bob", ACL_RES_GROUP, "g", ACL_OP_READ));
    /* nested prefixes of other lengths */
    allow(f, ACL_RES_TOPIC, "t", ACL_PAT_PREFIXED, "User:bob", ACL_OP_READ);
    assert_true(ok(f, "User:bob", ACL_RES_TOPIC, "tenant-1.orders", ACL_OP_READ));
    assert_true(ok(f, "User:bob", ACL_RES_TOPIC, "t", ACL_OP_READ));
    assert_false(ok(f, "User:bob", ACL_RES_TOPIC, "u", ACL_OP_READ));
}

/* More prefix lengths in use than one batch of probes: each length matches, and a DENY
 * found in an early batch still wins. */
static void test_many_prefix_lengths(void **state)
{
    struct afx *f = *state;
    const char name[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    char pre[sizeof name];

    for (size_t l = 1; l < sizeof name - 1; l++) {
        snprintf(pre, sizeof pre, "%.*s", (int)l, name);
        allow(f, ACL_RES_TOPIC, pre, ACL_PAT_PREFIXED, "User:other", ACL_OP_READ);
        if (l % 7 == 3)
            allow(f, ACL_RES_TOPIC, pre, ACL_PAT_PREFIXED, "User:m", ACL_OP_WRITE);
    }
    for (size_t l = 1; l < sizeof name - 1; l++)
        assert_int_equal(acl_allowed(f->a, "User:m", "h", ACL_RES_TOPIC, name, l, ACL_OP_WRITE),
                         l >= 3);
    assert_false(ok(f, "User:m", ACL_RES_TOPIC, name, ACL_OP_READ));
    deny(f, ACL_RES_TOPIC, "ab", ACL_PAT_PREFIXED, "User:m", ACL_OP_WRITE);
    assert_false(ok(f, "User:m", ACL_RES_TOPIC, name, ACL_OP_WRITE));
    assert_true(ok(f, "User:other", ACL_RES_TOPIC, name, ACL_OP_READ));
}

/* Prefixes longer than one bitmap word and names past ACL_NAME_MAX. */
static void test_long_names(void **state)
{
    struct afx *f = *state;
    char name[3000], pre[ACL_NAME_MAX + 1], lit[ACL_NAME_MAX + 2];

    memset(name, 'g', sizeof name);
    name[sizeof name - 1] = 0;
    snprintf(pre, sizeof pre, "%.700s", name);
    allow(f, ACL_RES_GROUP, pre, ACL_PAT_PREFIXED, "User:long", ACL_OP_READ);
    assert_true(ok(f, "User:long", ACL_RES_GROUP, name, ACL_OP_READ));
    assert_true(ok(f, "User:long", ACL_RES_GROUP, pre, ACL_OP_READ));
    assert_false(acl_allowed(f->a, "User:long", "h", ACL_RES_GROUP, name, 699, ACL_OP_READ));
    snprintf(pre, sizeof pre, "%.*s", ACL_NAME_MAX, name);
    allow(f, ACL_RES_GROUP, pre, ACL_PAT_LITERAL, "User:long", ACL_OP_WRITE);
    assert_true(ok(f, "User:long", ACL_RES_GROUP, pre, ACL_OP_WRITE));
    assert_false(ok(f, "User:long", ACL_RES_GROUP, name, ACL_OP_WRITE));
    snprintf(lit, sizeof lit, "%.*s", ACL_NAME_MAX + 1, name);
    struct acl_binding b =
        bind(ACL_RES_GROUP, lit, ACL_PAT_LITERAL, "User:long", "*", ACL_OP_READ, ACL_PERM_ALLOW);
    assert_int_equal(acls_add(f->a, &b), -1);
}

static void test_wildcard_resource(void **state)
{
    struct afx *f = *state;
    allow(f, ACL_RES_TOPIC, "*", ACL_PAT_LITERAL, "User:carol", ACL_OP_READ);
    assert_true(ok(f, "User:carol", ACL_RES_TOPIC, "anything", ACL_OP_READ));
    assert_true(ok(f, "User:carol", ACL_RES_TOPIC, "*", ACL_OP_READ));
    assert_false(ok(f, "User:carol", ACL_RES_GROUP, "anything", ACL_OP_READ));
    /* a prefixed "*" is a prefix, not a wildcard */
    allow(f, ACL_RES_GROUP, "*", ACL_PAT_PREFIXED, "User:carol", ACL_OP_READ);
    assert_false(ok(f, "User:carol", ACL_RES_GROUP, "anything", ACL_OP_READ));
    assert_true(ok(f, "User:carol", ACL_RES_GROUP, "*anything", ACL_OP_READ));
}

static void test_deny_wins(void **state)
{
    struct afx *f = *state;
    allow(f, ACL_RES_TOPIC, "a.", ACL_PAT_PREFIXED, "User:dan", ACL_OP_ALL);
    deny(f, ACL_RES_TOPIC, "a.secret", ACL_PAT_LITERAL, "User:dan", ACL_OP_WRITE);
    assert_true(ok(f, "User:dan", ACL_RES_TOPIC, "a.public", ACL_OP_WRITE));
    assert_false(ok(f, "User:dan", ACL_RES_TOPIC, "a.secret", ACL_OP_WRITE));
    assert_true(ok(f, "User:dan", ACL_RES_TOPIC, "a.secret", ACL_OP_READ));
    /* DENY of READ does not deny DESCRIBE, which READ (or ALL) still grants */
    deny(f, ACL_RES_TOPIC, "a.secret", ACL_PAT_LITERAL, "User:dan", ACL_OP_READ);
    assert_false(ok(f, "User:dan", ACL_RES_TOPIC, "a.secret", ACL_OP_READ));
    assert_true(ok(f, "User:dan", ACL_RES_TOPIC, "a.secret", ACL_OP_DESCRIBE));
    /* DENY ALL denies everything */
    deny(f, ACL_RES_TOPIC, "a.secret", ACL_PAT_LITERAL, "User:dan", ACL_OP_ALL);
    assert_false(ok(f, "User:dan", ACL_RES_TOPIC, "a.secret", ACL_OP_DESCRIBE));
    /* a DENY for everyone beats the principal's own ALLOW */
    deny(f, ACL_RES_TOPIC, "a.p", ACL_PAT_PREFIXED, "User:*", ACL_OP_WRITE);
    assert_false(ok(f, "User:dan", ACL_RES_TOPIC, "a.public", ACL_OP_WRITE));
    assert_true(ok(f, "User:dan", ACL_RES_TOPIC, "a.public", ACL_OP_READ));
    /* a DENY from the "*" literal resource */
    deny(f, ACL_RES_TOPIC, "*", ACL_PAT_LITERAL, "User:dan", ACL_OP_CREATE);
    assert_false(ok(f, "User:dan", ACL_RES_TOPIC, "a.x", ACL_OP_CREATE));
    assert_true(ok(f, "User:dan", ACL_RES_TOPIC, "a.x", ACL_OP_DELETE));
}

static void test_implied_ops(void **state)
{
    struct afx *f = *state;
    const int8_t implies_describe[] = {ACL_OP_READ, ACL_OP_WRITE, ACL_OP_DELETE, ACL_OP_ALTER};
    char name[32];

    for (size_t i = 0; i < sizeof implies_describe; i++) {
        snprintf(name, sizeof name, "t%zu", i);
        allow(f, ACL_RES_TOPIC, name, ACL_PAT_LITERAL, "User:eve", implies_describe[i]);
        assert_true(ok(f, "User:eve", ACL_RES_TOPIC, name, ACL_OP_DESCRIBE));
        assert_false(ok(f, "User:eve", ACL_RES_TOPIC, name, ACL_OP_DESCRIBE_CONFIGS));
        assert_false(ok(f, "User:eve", ACL_RES_TOPIC, name, ACL_OP_CREATE));
    }
    allow(f, ACL_RES_TOPIC, "c", ACL_PAT_LITERAL, "User:eve", ACL_OP_CREATE);
    assert_false(ok(f, "User:eve", ACL_RES_TOPIC, "c", ACL_OP_DESCRIBE));
    allow(f, ACL_RES_TOPIC, "d", ACL_PAT_LITERAL, "User:eve", ACL_OP_DESCRIBE);
    assert_false(ok(f, "User:eve", ACL_RES_TOPIC, "d", ACL_OP_READ));
    allow(f, ACL_RES_TOPIC, "cfg", ACL_PAT_LITERAL, "User:eve", ACL_OP_ALTER_CONFIGS);
    assert_true(ok(f, "User:eve", ACL_RES_TOPIC, "cfg", ACL_OP_DESCRIBE_CONFIGS));
    assert_false(ok(f, "User:eve", ACL_RES_TOPIC, "cfg", ACL_OP_DESCRIBE));
    allow(f, ACL_RES_CLUSTER, ACL_CLUSTER_NAME, ACL_PAT_LITERAL, "User:eve", ACL_OP_ALL);
    for (int8_t op = ACL_OP_ALL; op <= ACL_OP_IDEMPOTENT_WRITE; op++)
        assert_true(ok(f, "User:eve", ACL_RES_CLUSTER, ACL_CLUSTER_NAME, op));
    allow(f, ACL_RES_TXN, "tx", ACL_PAT_PREFIXED, "User:eve", ACL_OP_WRITE);
    assert_true(ok(f, "User:eve", ACL_RES_TXN, "tx-1", ACL_OP_DESCRIBE));
}

static void test_hosts(void **state)
{
    struct afx *f = *state;
    add(f, ACL_RES_TOPIC, "h", ACL_PAT_LITERAL, "User:hal", "10.0.0.1", ACL_OP_READ,
        ACL_PERM_ALLOW);
    assert_true(ok_from(f, "User:hal", "10.0.0.1", ACL_RES_TOPIC, "h", ACL_OP_READ));
    assert_false(ok_from(f, "User:hal", "10.0.0.2", ACL_RES_TOPIC, "h", ACL_OP_READ));
    assert_false(ok_from(f, "User:hal", NULL, ACL_RES_TOPIC, "h", ACL_OP_READ));
    /* "*" allows, one host is denied */
    allow(f, ACL_RES_TOPIC, "g.", ACL_PAT_PREFIXED, "User:hal", ACL_OP_WRITE);
    add(f, ACL_RES_TOPIC, "g.", ACL_PAT_PREFIXED, "User:hal", "10.0.0.2", ACL_OP_WRITE,
        ACL_PERM_DENY);
    add(f, ACL_RES_TOPIC, "g.", ACL_PAT_PREFIXED, "User:hal", "10.0.0.3", ACL_OP_READ,
        ACL_PERM_ALLOW);
    assert_true(ok_from(f, "User:hal", "10.0.0.1", ACL_RES_TOPIC, "g.x", ACL_OP_WRITE));
    assert_false(ok_from(f, "User:hal", "10.0.0.2", ACL_RES_TOPIC, "g.x", ACL_OP_WRITE));
    assert_true(ok_from(f, "User:hal", "10.0.0.3", ACL_RES_TOPIC, "g.x", ACL_OP_READ));
    assert_false(ok_from(f, "User:hal", "10.0.0.1", ACL_RES_TOPIC, "g.x", ACL_OP_READ));
    assert_int_equal(acls_count(f->a), 4);
}

static void test_super_users(void **state)
{
    struct afx *f = *state;
    assert_true(acls_is_super(f->a, "User:admin"));
    assert_true(acls_is_super(f->a, "User:root"));
    assert_false(acls_is_super(f->a, "User:rootx"));
    assert_false(acls_is_super(f->a, "User:"));
    assert_false(acls_is_super(f->a, "User:*"));
    assert_true(ok(f, "User:admin", ACL_RES_TOPIC, "x", ACL_OP_WRITE));
    assert_true(ok(f, "User:root", ACL_RES_CLUSTER, ACL_CLUSTER_NAME, ACL_OP_ALTER));
    deny(f, ACL_RES_TOPIC, "x", ACL_PAT_LITERAL, "User:admin", ACL_OP_ALL);
    assert_true(ok(f, "User:admin", ACL_RES_TOPIC, "x", ACL_OP_WRITE));
    assert_false(ok(f, "User:rootx", ACL_RES_TOPIC, "x", ACL_OP_WRITE));

    struct acls *none = acls_open(f->st, NULL);
    assert_non_null(none);
    assert_false(acls_is_super(none, "User:admin"));
    assert_false(acl_allowed(none, "User:admin", "h", ACL_RES_TOPIC, "x", 1, ACL_OP_WRITE));
    acls_free(none);
}

static void test_wildcard_principal(void **state)
{
    struct afx *f = *state;
    allow(f, ACL_RES_TOPIC, "public", ACL_PAT_LITERAL, "User:*", ACL_OP_READ);
    allow(f, ACL_RES_GROUP, "shared-", ACL_PAT_PREFIXED, "User:*", ACL_OP_READ);
    assert_true(ok(f, "User:anyone", ACL_RES_TOPIC, "public", ACL_OP_READ));
    assert_true(ok(f, "User:ANONYMOUS", ACL_RES_TOPIC, "public", ACL_OP_DESCRIBE));
    assert_false(ok(f, "User:anyone", ACL_RES_TOPIC, "public", ACL_OP_WRITE));
    assert_true(ok(f, "User:x", ACL_RES_GROUP, "shared-1", ACL_OP_READ));
    assert_false(ok(f, "User:x", ACL_RES_GROUP, "private-1", ACL_OP_READ));
    /* the principal's own rules and User:*'s combine */
    allow(f, ACL_RES_TOPIC, "public", ACL_PAT_LITERAL, "User:w", ACL_OP_WRITE);
    assert_true(ok(f, "User:w", ACL_RES_TOPIC, "public", ACL_OP_WRITE));
    assert_true(ok(f, "User:w", ACL_RES_TOPIC, "public", ACL_OP_READ));
}

/* ---- validation */

static void test_invalid_bindings(void **state)
{
    struct afx *f = *state;
    char longname[ACL_NAME_MAX + 2], longp[ACL_PRINCIPAL_MAX + 2], longh[ACL_HOST_MAX + 2];
    char err[128];

    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    memset(longp, 'p', sizeof longp - 1);
    memcpy(longp, "User:", 5);
    longp[sizeof longp - 1] = 0;
    memset(longh, 'h', sizeof longh - 1);
    longh[sizeof longh - 1] = 0;

    const struct acl_binding bad[] = {
        bind(ACL_RES_ANY, "t", ACL_PAT_LITERAL, "User:a", "*", ACL_OP_READ, ACL_PERM_ALLOW),
        bind(0, "t", ACL_PAT_LITERAL, "User:a", "*", ACL_OP_READ, ACL_PERM_ALLOW),
        bind(6, "t", ACL_PAT_LITERAL, "User:a", "*", ACL_OP_READ, ACL_PERM_ALLOW),
        bind(ACL_RES_TOPIC, "t", ACL_PAT_ANY, "User:a", "*", ACL_OP_READ, ACL_PERM_ALLOW),
        bind(ACL_RES_TOPIC, "t", ACL_PAT_MATCH, "User:a", "*", ACL_OP_READ, ACL_PERM_ALLOW),
        bind(ACL_RES_TOPIC, "t", 0, "User:a", "*", ACL_OP_READ, ACL_PERM_ALLOW),
        bind(ACL_RES_TOPIC, "t", ACL_PAT_LITERAL, "User:a", "*", ACL_OP_ANY, ACL_PERM_ALLOW),
        bind(ACL_RES_TOPIC, "t", ACL_PAT_LITERAL, "User:a", "*", 13, ACL_PERM_ALLOW),
        bind(ACL_RES_TOPIC, "t", ACL_PAT_LITERAL, "User:a", "*", 0, ACL_PERM_ALLOW),
        bind(ACL_RES_TOPIC, "t", ACL_PAT_LITERAL, "User:a", "*", ACL_OP_READ, ACL_PERM_ANY),
        bind(ACL_RES_TOPIC, "t", ACL_PAT_LITERAL, "User:a", "*", ACL_OP_READ, 4),
        bind(ACL_RES_TOPIC, NULL, ACL_PAT_LITERAL, "User:a", "*", ACL_OP_READ, ACL_PERM_ALLOW),
        bind(ACL_RES_TOPIC, "", ACL_PAT_LITERAL, "User:a", "*", ACL_OP_READ, ACL_PERM_ALLOW),
        bind(ACL_RES_TOPIC, longname, ACL_PAT_LITERAL, "User:a", "*", ACL_OP_READ, ACL_PERM_ALLOW),
        bind(ACL_RES_CLUSTER, "other", ACL_PAT_LITERAL, "User:a", "*", ACL_OP_READ, ACL_PERM_ALLOW),
        bind(ACL_RES_TOPIC, "t", ACL_PAT_LITERAL, NULL, "*", ACL_OP_READ, ACL_PERM_ALLOW),
        bind(ACL_RES_TOPIC, "t", ACL_PAT_LITERAL, "alice", "*", ACL_OP_READ, ACL_PERM_ALLOW),
        bind(ACL_RES_TOPIC, "t", ACL_PAT_LITERAL, ":alice", "*", ACL_OP_READ, ACL_PERM_ALLOW),
        bind(ACL_RES_TOPIC, "t", ACL_PAT_LITERAL, "User:", "*", ACL_OP_READ, ACL_PERM_ALLOW),
        bind(ACL_RES_TOPIC, "t", ACL_PAT_LITERAL, longp, "*", ACL_OP_READ, ACL_PERM_ALLOW),
        bind(ACL_RES_TOPIC, "t", ACL_PAT_LITERAL, "User:a", NULL, ACL_OP_READ, ACL_PERM_ALLOW),
        bind(ACL_RES_TOPIC, "t", ACL_PAT_LITERAL, "User:a", "", ACL_OP_READ, ACL_PERM_ALLOW),
        bind(ACL_RES_TOPIC, "t", ACL_PAT_LITERAL, "User:a", longh, ACL_OP_READ, ACL_PERM_ALLOW),
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = 0;
        assert_int_equal(acl_binding_valid(&bad[i], err, sizeof err), -1);
        assert_true(err[0] != 0);
        assert_int_equal(acls_add(f->a, &bad[i]), -1);
    }
    assert_int_equal(acls_count(f->a), 0);

    /* the caps themselves are fine */
    longname[ACL_NAME_MAX] = 0;
    longp[ACL_PRINCIPAL_MAX] = 0;
    longh[ACL_HOST_MAX] = 0;
    struct acl_binding good =
        bind(ACL_RES_GROUP, longname, ACL_PAT_PREFIXED, longp, longh, ACL_OP_READ, ACL_PERM_ALLOW);
    assert_int_equal(acl_binding_valid(&good, err, sizeof err), 0);
    assert_int_equal(acls_add(f->a, &good), 0);
    good =
        bind(ACL_RES_TXN, "tx", ACL_PAT_LITERAL, "Group:ops", "::1", ACL_OP_WRITE, ACL_PERM_DENY);
    assert_int_equal(acls_add(f->a, &good), 0);
    reopen(f);
    assert_int_equal(acls_count(f->a), 2);
    assert_true(ok_from(f, longp, longh, ACL_RES_GROUP, longname, ACL_OP_READ));
}

/* ---- filters */

/* A rule set the filter tests share. */
static void add_filter_rules(struct afx *f)
{
    allow(f, ACL_RES_TOPIC, "tenant-1.orders", ACL_PAT_LITERAL, "User:a", ACL_OP_READ);  /* 1 */
    deny(f, ACL_RES_TOPIC, "tenant-1.orders", ACL_PAT_LITERAL, "User:b", ACL_OP_WRITE);  /* 2 */
    allow(f, ACL_RES_TOPIC, "tenant-1.", ACL_PAT_PREFIXED, "User:a", ACL_OP_WRITE);      /* 3 */
    allow(f, ACL_RES_TOPIC, "tenant-1.orders", ACL_PAT_PREFIXED, "User:a", ACL_OP_READ); /* 4 */
    allow(f, ACL_RES_TOPIC, "tenant-2.", ACL_PAT_PREFIXED, "User:a", ACL_OP_WRITE);      /* 5 */
    allow(f, ACL_RES_TOPIC, "*", ACL_PAT_LITERAL, "User:*", ACL_OP_DESCRIBE);            /* 6 */
    allow(f, ACL_RES_GROUP, "tenant-1.orders", ACL_PAT_LITERAL, "User:a", ACL_OP_READ);  /* 7 */
    add(f, ACL_RES_TOPIC, "tenant-1.orders", ACL_PAT_LITERAL, "User:a", "10.0.0.9", ACL_OP_ALTER,
        ACL_PERM_ALLOW); /* 8 */
}

static void test_filter_foreach(void **state)
{
    struct afx *f = *state;
    struct acl_binding q = any_filter();
    char out[4096];

    add_filter_rules(f);
    assert_int_equal(acls_count(f->a), 8);
    assert_int_equal(count(f, &q), 8);

    q = any_filter();
    q.res_type = ACL_RES_GROUP;
    list(f, &q, out, sizeof out);
    assert_string_equal(out, "3/3/tenant-1.orders/User:a/*/3/3");

    /* LITERAL: names compared exactly, no "*" */
    q = any_filter();
    q.res_type = ACL_RES_TOPIC;
    q.pattern = ACL_PAT_LITERAL;
    q.res_name = "tenant-1.orders";
    list(f, &q, out, sizeof out);
    assert_string_equal(out, "2/3/tenant-1.orders/User:a/*/3/3 "
                             "2/3/tenant-1.orders/User:a/10.0.0.9/7/3 "
                             "2/3/tenant-1.orders/User:b/*/4/2");

    /* ANY pattern: both kinds, names exact */
    q.pattern = ACL_PAT_ANY;
    assert_int_equal(count(f, &q), 4);
    q.res_type = ACL_RES_ANY;
    assert_int_equal(count(f, &q), 5);

    /* PREFIXED with a name: that exact prefix only */
    q = any_filter();
    q.pattern = ACL_PAT_PREFIXED;
    q.res_name = "tenant-1.";
    list(f, &q, out, sizeof out);
    assert_string_equal(out, "2/4/tenant-1./User:a/*/4/3");
    q.res_name = NULL;
    assert_int_equal(count(f, &q), 3);

    /* MATCH: what applies to the topic tenant-1.orders */
    q = any_filter();
    q.res_type = ACL_RES_TOPIC;
    q.pattern = ACL_PAT_MATCH;
    q.res_name = "tenant-1.orders";
    list(f, &q, out, sizeof out);
    assert_string_equal(out, "2/3/*/User:*/*/8/3 "
                             "2/3/tenant-1.orders/User:a/*/3/3 "
                             "2/3/tenant-1.orders/User:a/10.0.0.9/7/3 "
                             "2/3/tenant-1.orders/User:b/*/4/2 "
                             "2/4/tenant-1./User:a/*/4/3 "
                             "2/4/tenant-1.orders/User:a/*/3/3");
    q.res_name = "tenant-1.x";
    assert_int_equal(count(f, &q), 2); /* "*", tenant-1. */
    q.res_name = NULL;                 /* MATCH without a name: every pattern */
    assert_int_equal(count(f, &q), 7);

    /* principal, host, op and permission */
    q = any_filter();
    q.principal = "User:b";
    assert_int_equal(count(f, &q), 1);
    q.principal = "User:*";
    assert_int_equal(count(f, &q), 1);
    q = any_filter();
    q.host = "10.0.0.9";
    assert_int_equal(count(f, &q), 1);
    q.host = "*";
    assert_int_equal(count(f, &q), 7);
    q = any_filter();
    q.op = ACL_OP_WRITE;
    assert_int_equal(count(f, &q), 3);
    q.perm = ACL_PERM_DENY;
    assert_int_equal(count(f, &q), 1);
    q = any_filter();
    q.perm = ACL_PERM_ALLOW;
    assert_int_equal(count(f, &q), 7);
    /* unknown codes match nothing */
    q = any_filter();
    q.res_type = 7;
    assert_int_equal(count(f, &q), 0);
    q = any_filter();
    q.op = 99;
    assert_int_equal(count(f, &q), 0);
}

/* A filter naming type, resource and principal is answered by probing; it must find
 * exactly what the scan finds. */
static void test_filter_probe_equals_scan(void **state)
{
    struct afx *f = *state;
    const char *names[] = {"tenant-1.orders", "tenant-1.", "tenant-1.x", "*", "tenant-2.y", "t"};
    const char *principals[] = {"User:a", "User:b", "User:*", "User:none"};
    const int8_t pats[] = {ACL_PAT_ANY, ACL_PAT_MATCH, ACL_PAT_LITERAL, ACL_PAT_PREFIXED};

    add_filter_rules(f);
    for (size_t n = 0; n < sizeof names / sizeof *names; n++)
        for (size_t p = 0; p < sizeof principals / sizeof *principals; p++)
            for (size_t t = 0; t < sizeof pats; t++) {
                char probed[4096], want[4096];
                struct acl_binding q = any_filter();

                q.res_type = ACL_RES_TOPIC;
                q.pattern = pats[t];
                q.res_name = names[n];
                q.principal = principals[p];
                list(f, &q, probed, sizeof probed);
                list_by_scan(f, &q, want, sizeof want);
                assert_string_equal(probed, want);
            }
}

struct del_seen {
    struct coll c;
    struct acls *a;
};

/* A delete callback runs before the rule goes: it must still be in the table. */
static void del_visit(void *arg, const struct acl_binding *b)
{
    struct del_seen *d = arg;
    struct acl_binding q = *b;
    struct coll c = {.n = 0};
    char out[512];

    acls_foreach(d->a, &q, collect_one, &c);
    coll_join(&c, out, sizeof out);
    assert_true(out[0] != 0);
    collect_one(&d->c, b);
}

static void test_filter_delete(void **state)
{
    struct afx *f = *state;
    struct acl_binding q = any_filter();
    struct del_seen d = {.c = {.n = 0}, .a = f->a};
    char out[4096];

    add_filter_rules(f);
    /* nothing matches: nothing changes */
    q.principal = "User:nobody";
    assert_int_equal(acls_delete(f->a, &q, del_visit, &d), 0);
    assert_int_equal(acls_count(f->a), 8);

    /* MATCH deletes every rule that applies to the resource, "*" included */
    q = any_filter();
    q.res_type = ACL_RES_TOPIC;
    q.pattern = ACL_PAT_MATCH;
    q.res_name = "tenant-1.orders";
    q.principal = "User:a";
    assert_int_equal(acls_delete(f->a, &q, del_visit, &d), 4);
    coll_join(&d.c, out, sizeof out);
    assert_string_equal(out, "2/3/tenant-1.orders/User:a/*/3/3 "
                             "2/3/tenant-1.orders/User:a/10.0.0.9/7/3 "
                             "2/4/tenant-1./User:a/*/4/3 "
                             "2/4/tenant-1.orders/User:a/*/3/3");
    assert_int_equal(acls_count(f->a), 4);
    assert_false(ok(f, "User:a", ACL_RES_TOPIC, "tenant-1.orders", ACL_OP_READ));
    assert_false(ok(f, "User:a", ACL_RES_TOPIC, "tenant-1.x", ACL_OP_WRITE));
    assert_true(ok(f, "User:a", ACL_RES_TOPIC, "tenant-2.x", ACL_OP_WRITE));
    assert_true(ok(f, "User:a", ACL_RES_GROUP, "tenant-1.orders", ACL_OP_READ));

    /* one op of a key with several: the others stay */
    allow(f, ACL_RES_TOPIC, "tenant-2.", ACL_PAT_PREFIXED, "User:a", ACL_OP_READ);
    q = any_filter();
    q.op = ACL_OP_WRITE;
    q.pattern = ACL_PAT_PREFIXED;
    assert_int_equal(acls_delete(f->a, &q, NULL, NULL), 1);
    assert_false(ok(f, "User:a", ACL_RES_TOPIC, "tenant-2.x", ACL_OP_WRITE));
    assert_true(ok(f, "User:a", ACL_RES_TOPIC, "tenant-2.x", ACL_OP_READ));

    /* deletes persist */
    reopen(f);
    assert_int_equal(acls_count(f->a), 4);
    q = any_filter();
    list(f, &q, out, sizeof out);
    assert_string_equal(out, "2/3/*/User:*/*/8/3 "
                             "2/3/tenant-1.orders/User:b/*/4/2 "
                             "2/4/tenant-2./User:a/*/3/3 "
                             "3/3/tenant-1.orders/User:a/*/3/3");

    /* ANY deletes everything */
    assert_int_equal(acls_delete(f->a, &q, NULL, NULL), 4);
    assert_int_equal(acls_count(f->a), 0);
    assert_false(ok(f, "User:x", ACL_RES_TOPIC, "any", ACL_OP_DESCRIBE));
    reopen(f);
    assert_int_equal(acls_count(f->a), 0);
    assert_int_equal(acls_memory(f->a) < 64 * 1024, true);
}

/* Removing the last prefixed rule of a length stops probes at it; others still work. */
static void test_prefix_lengths_follow_deletes(void **state)
{
    struct afx *f = *state;
    struct acl_binding q = any_filter();

    allow(f, ACL_RES_TOPIC, "abc", ACL_PAT_PREFIXED, "User:p", ACL_OP_READ);
    allow(f, ACL_RES_TOPIC, "abcde", ACL_PAT_PREFIXED, "User:p", ACL_OP_WRITE);
    allow(f, ACL_RES_TOPIC, "xyzde", ACL_PAT_PREFIXED, "User:q", ACL_OP_WRITE);
    q.res_name = "abcde";
    assert_int_equal(acls_delete(f->a, &q, NULL, NULL), 1);
    assert_false(ok(f, "User:p", ACL_RES_TOPIC, "abcdef", ACL_OP_WRITE));
    assert_true(ok(f, "User:p", ACL_RES_TOPIC, "abcdef", ACL_OP_READ));
    assert_true(ok(f, "User:q", ACL_RES_TOPIC, "xyzdef", ACL_OP_WRITE));
    q.res_name = "xyzde";
    assert_int_equal(acls_delete(f->a, &q, NULL, NULL), 1);
    assert_false(ok(f, "User:q", ACL_RES_TOPIC, "xyzdef", ACL_OP_WRITE));
    allow(f, ACL_RES_TOPIC, "xyzde", ACL_PAT_PREFIXED, "User:q", ACL_OP_WRITE);
    assert_true(ok(f, "User:q", ACL_RES_TOPIC, "xyzdef", ACL_OP_WRITE));
}

/* ---- the principal index */

static struct acl_binding principal_filter(const char *principal)
{
    return bind(ACL_RES_ANY, NULL, ACL_PAT_ANY, principal, NULL, ACL_OP_ANY, ACL_PERM_ANY);
}

/* The number of keys (type, pattern, name) among the rules of principal, counted from a
 * full scan: what a walk of the principal's entries visits. */
static size_t keys_of(struct afx *f, const char *principal)
{
    struct acl_binding q = principal_filter(principal);
    struct coll c = {.n = 0};
    size_t n = 0;

    acls_set_scan_only(f->a, true);
    acls_foreach(f->a, &q, collect_one, &c);
    acls_set_scan_only(f->a, false);
    if (c.n)
        qsort(c.rows, (size_t)c.n, sizeof *c.rows, row_cmp);
    for (int i = 0; i < c.n; i++) {
        const char *end = strchr(strchr(strchr(c.rows[i], '/') + 1, '/') + 1, '/');
        size_t kl = (size_t)(end - c.rows[i]) + 1; /* with the '/' after the name */
        n += !i || strncmp(c.rows[i - 1], c.rows[i], kl);
    }
    coll_free(&c);
    return n;
}

static uint64_t rnd_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static unsigned rnd(uint64_t *s, unsigned n)
{
    return (unsigned)(rnd_next(s) % n);
}

#define PICK(s, arr) ((arr)[rnd(s, sizeof(arr) / sizeof *(arr))])

static const char *const r_principals[] = {"User:a", "User:b",  "User:ab",
                                           "User:*", "Group:a", "User:c"};
static const char *const r_names[] = {
    "t", "t1", "t1.x", "t1.xy", "*", "tenant-1.", "tenant-1.orders", "g"};
static const char *const r_hosts[] = {"*", "*", "10.0.0.1", "10.0.0.2"};
static const int8_t r_types[] = {ACL_RES_TOPIC, ACL_RES_GROUP, ACL_RES_TXN, ACL_RES_CLUSTER};

static struct acl_binding random_rule(uint64_t *s, const char *principal)
{
    int8_t type = PICK(s, r_types);
    return bind(type, type == ACL_RES_CLUSTER ? ACL_CLUSTER_NAME : PICK(s, r_names),
                (int8_t)(ACL_PAT_LITERAL + rnd(s, 2)), principal, PICK(s, r_hosts),
                (int8_t)(ACL_OP_ALL + rnd(s, 11)), (int8_t)(ACL_PERM_DENY + rnd(s, 2)));
}

/* A filter with a principal (one of the rules', or one without rules) and random other
 * parts: resource type, pattern (MATCH included), name, host, op and permission. */
static struct acl_binding random_filter(uint64_t *s)
{
    static const int8_t types[] = {ACL_RES_ANY,   ACL_RES_ANY, ACL_RES_TOPIC,
                                   ACL_RES_GROUP, ACL_RES_TXN, ACL_RES_CLUSTER};
    static const int8_t pats[] = {ACL_PAT_ANY, ACL_PAT_MATCH, ACL_PAT_LITERAL, ACL_PAT_PREFIXED};
    static const char *const names[] = {"t1.x", "tenant-1.orders", "*", ACL_CLUSTER_NAME, "t"};
    struct acl_binding q = principal_filter(rnd(s, 8) ? PICK(s, r_principals) : "User:none");

    q.res_type = PICK(s, types);
    q.pattern = PICK(s, pats);
    q.res_name = rnd(s, 2) ? NULL : rnd(s, 2) ? PICK(s, r_names) : PICK(s, names);
    q.host = rnd(s, 3) ? NULL : PICK(s, r_hosts);
    q.op = rnd(s, 3) ? ACL_OP_ANY : (int8_t)(ACL_OP_ALL + rnd(s, 11));
    q.perm = rnd(s, 3) ? ACL_PERM_ANY : (int8_t)(ACL_PERM_DENY + rnd(s, 2));
    return q;
}

enum { BIG = 1 << 16 };

/* q (with a principal) answers what the same filter answers by a full scan and, with
 * unnamed set, what a scan without the principal answers for it; a filter that does not
 * name a resource and its type visits only the principal's entries. got and want hold
 * BIG bytes. */
static void check_filter_as(struct afx *f, const struct acl_binding *q, char *got, char *want,
                            bool unnamed)
{
    size_t v0 = acls_visits(f->a), visited;
    bool probed = q->res_type != ACL_RES_ANY && q->res_name;

    list(f, q, got, BIG);
    visited = acls_visits(f->a) - v0;
    if (!probed)
        assert_int_equal(visited, keys_of(f, q->principal));
    if (unnamed) {
        list_by_scan(f, q, want, BIG);
        assert_string_equal(got, want);
    }
    acls_set_scan_only(f->a, true);
    list(f, q, want, BIG);
    acls_set_scan_only(f->a, false);
    assert_string_equal(got, want);
}

static void check_filter(struct afx *f, const struct acl_binding *q, char *got, char *want)
{
    check_filter_as(f, q, got, want, true);
}

/* The rules as sorted text without duplicates, as a listing shows them. */
static void rules_text(const struct acl_binding *r, int n, char *out, size_t cap)
{
    struct coll c = {.n = 0};
    int k = 0;

    for (int i = 0; i < n; i++)
        collect_one(&c, &r[i]);
    if (c.n)
        qsort(c.rows, (size_t)c.n, sizeof *c.rows, row_cmp);
    for (int i = 0; i < c.n; i++)
        if (!k || strcmp(c.rows[k - 1], c.rows[i])) {
            char *t = c.rows[k];
            c.rows[k++] = c.rows[i];
            c.rows[i] = t;
        }
    for (int i = k; i < c.n; i++)
        free(c.rows[i]);
    c.n = k;
    coll_join(&c, out, cap);
}

/* Replaces principal's rules with k random ones and checks the listing is exactly them. */
static void random_replace(struct afx *f, uint64_t *s, char *got, char *want)
{
    const char *p = PICK(s, r_principals);
    struct acl_binding r[8], q = principal_filter(p);
    int k = (int)rnd(s, 8);
    size_t keys = keys_of(f, p), v0;

    for (int i = 0; i < k; i++)
        r[i] = random_rule(s, p);
    if (k && !rnd(s, 4))
        r[0] = r[k - 1]; /* a duplicate */
    v0 = acls_visits(f->a);
    assert_int_equal(acls_replace_principal(f->a, p, r, k), 0);
    assert_int_equal(acls_visits(f->a) - v0, keys);
    list(f, &q, got, BIG);
    rules_text(r, k, want, BIG);
    assert_string_equal(got, want);
}

/* Random adds, deletes by filter and replacements of a principal's rules; after each,
 * random filters with a principal answer what a full scan answers, and the count stays
 * right; at the end a reopen reads back the same rules. */
static void test_principal_filters_random(void **state)
{
    struct afx *f = *state;
    struct acl_binding all = any_filter();
    char *got = malloc(BIG), *want = malloc(BIG);
    uint64_t s = 0x9e3779b97f4a7c15ull;

    assert_non_null(got);
    assert_non_null(want);
    for (int step = 0; step < 1500; step++) {
        unsigned what = rnd(&s, 20);
        if (what < 13) {
            struct acl_binding b = random_rule(&s, PICK(&s, r_principals));
            assert_int_equal(acls_add(f->a, &b), 0);
        } else if (what < 16) {
            struct acl_binding q = random_filter(&s);
            list_by_scan(f, &q, want, BIG);
            int n = want[0] ? 1 : 0;
            for (const char *c = want; *c; c++)
                n += *c == ' ';
            assert_int_equal(acls_delete(f->a, &q, NULL, NULL), n);
        } else {
            random_replace(f, &s, got, want);
        }
        for (int i = 0; i < 4; i++) {
            struct acl_binding q = random_filter(&s);
            check_filter(f, &q, got, want);
        }
        if (step % 50 == 0)
            assert_int_equal(acls_count(f->a), (size_t)count(f, &all));
    }
    list(f, &all, want, BIG);
    reopen(f);
    list(f, &all, got, BIG);
    assert_string_equal(got, want);
    for (size_t p = 0; p < sizeof r_principals / sizeof *r_principals; p++) {
        struct acl_binding q = principal_filter(r_principals[p]);
        check_filter(f, &q, got, want);
    }
    free(got);
    free(want);
}

/* A replacement makes the principal's rules exactly the new ones, in memory and in the
 * store, leaves other principals' alone, and visits only the principal's entries. */
static void test_replace_principal(void **state)
{
    struct afx *f = *state;
    const struct acl_binding next[] = {
        bind(ACL_RES_TOPIC, "tenant-1.orders", ACL_PAT_LITERAL, "User:a", "*", ACL_OP_READ,
             ACL_PERM_ALLOW), /* kept */
        bind(ACL_RES_TOPIC, "tenant-1.", ACL_PAT_PREFIXED, "User:a", "*", ACL_OP_READ,
             ACL_PERM_ALLOW), /* op changed */
        bind(ACL_RES_TOPIC, "tenant-1.", ACL_PAT_PREFIXED, "User:a", "10.0.0.7", ACL_OP_WRITE,
             ACL_PERM_DENY), /* a new host */
        bind(ACL_RES_GROUP, "g", ACL_PAT_LITERAL, "User:a", "*", ACL_OP_READ, ACL_PERM_ALLOW),
        bind(ACL_RES_GROUP, "g", ACL_PAT_LITERAL, "User:a", "*", ACL_OP_READ, ACL_PERM_ALLOW),
    };
    struct acl_binding q = principal_filter("User:a");
    char got[4096], want[4096], others[4096], after[4096];
    size_t v0;

    add_filter_rules(f); /* User:a has 6 rules in 5 keys; User:b and User:* one each */
    q.principal = "User:b";
    list(f, &q, others, sizeof others);
    q.principal = "User:a";
    v0 = acls_visits(f->a);
    assert_int_equal(acls_replace_principal(f->a, "User:a", next, 5), 0);
    assert_int_equal(acls_visits(f->a) - v0, 5);
    list(f, &q, got, sizeof got);
    rules_text(next, 5, want, sizeof want);
    assert_string_equal(got, want);
    assert_int_equal(acls_count(f->a), 4 + 2);
    assert_true(ok(f, "User:a", ACL_RES_TOPIC, "tenant-1.x", ACL_OP_READ));
    assert_false(ok(f, "User:a", ACL_RES_TOPIC, "tenant-1.x", ACL_OP_WRITE));
    assert_false(ok(f, "User:a", ACL_RES_TOPIC, "tenant-2.x", ACL_OP_WRITE));
    assert_true(ok(f, "User:a", ACL_RES_GROUP, "g", ACL_OP_READ));
    assert_false(ok(f, "User:a", ACL_RES_GROUP, "tenant-1.orders", ACL_OP_READ));
    q.principal = "User:b";
    list(f, &q, after, sizeof after);
    assert_string_equal(after, others);
    q.principal = "User:*";
    assert_int_equal(count(f, &q), 1);

    /* the same set again changes nothing; persisted */
    assert_int_equal(acls_replace_principal(f->a, "User:a", next, 5), 0);
    assert_int_equal(acls_count(f->a), 6);
    reopen(f);
    assert_int_equal(acls_count(f->a), 6);
    q.principal = "User:a";
    list(f, &q, got, sizeof got);
    assert_string_equal(got, want);

    /* a principal without rules gets some; no rules removes them all */
    assert_int_equal(acls_replace_principal(f->a, "User:new", NULL, 0), 0);
    struct acl_binding n1 = next[3];
    n1.principal = "User:new";
    assert_int_equal(acls_replace_principal(f->a, "User:new", &n1, 1), 0);
    assert_true(ok(f, "User:new", ACL_RES_GROUP, "g", ACL_OP_READ));
    assert_int_equal(acls_replace_principal(f->a, "User:a", NULL, 0), 0);
    assert_int_equal(count(f, &q), 0);
    assert_int_equal(acls_count(f->a), 3);
    reopen(f);
    assert_int_equal(acls_count(f->a), 3);
    assert_int_equal(count(f, &q), 0);
    assert_false(ok(f, "User:a", ACL_RES_GROUP, "g", ACL_OP_READ));
    assert_true(ok(f, "User:new", ACL_RES_GROUP, "g", ACL_OP_READ));
}

/* A replacement that cannot be done changes nothing: not the rules, not the memory. */
static void test_replace_principal_fails_whole(void **state)
{
    struct afx *f = *state;
    enum { NH = 1100 }; /* more hosts than one key may have */
    static char hosts[NH][16];
    struct acl_binding *r = calloc(NH + 1, sizeof *r), all = any_filter();
    char before[4096], after[4096];
    size_t mem;

    assert_non_null(r);
    add_filter_rules(f);
    list(f, &all, before, sizeof before);
    mem = acls_memory(f->a);
    r[0] = bind(ACL_RES_TOPIC, "new", ACL_PAT_LITERAL, "User:a", "*", ACL_OP_READ, ACL_PERM_ALLOW);
    for (int i = 0; i < NH; i++) {
        snprintf(hosts[i], sizeof hosts[i], "10.1.%d.%d", i / 256, i % 256);
        r[i + 1] = bind(ACL_RES_TOPIC, i < 10 ? "fresh" : "tenant-1.orders", ACL_PAT_LITERAL,
                        "User:a", hosts[i], ACL_OP_READ, ACL_PERM_ALLOW);
    }
    assert_int_equal(acls_replace_principal(f->a, "User:a", r, NH + 1), -1);
    /* another principal's rule, an invalid rule, bad arguments */
    r[1] = bind(ACL_RES_TOPIC, "x", ACL_PAT_LITERAL, "User:b", "*", ACL_OP_READ, ACL_PERM_ALLOW);
    assert_int_equal(acls_replace_principal(f->a, "User:a", r, 2), -1);
    r[1] = bind(ACL_RES_TOPIC, "x", ACL_PAT_MATCH, "User:a", "*", ACL_OP_READ, ACL_PERM_ALLOW);
    assert_int_equal(acls_replace_principal(f->a, "User:a", r, 2), -1);
    assert_int_equal(acls_replace_principal(f->a, "User:a", r, -1), -1);
    assert_int_equal(acls_replace_principal(f->a, "User:a", NULL, 1), -1);
    assert_int_equal(acls_replace_principal(f->a, NULL, NULL, 0), -1);
    assert_int_equal(acls_replace_principal(NULL, "User:a", NULL, 0), -1);

    list(f, &all, after, sizeof after);
    assert_string_equal(after, before);
    assert_int_equal(acls_count(f->a), 8);
    assert_int_equal(acls_memory(f->a), mem);
    reopen(f);
    list(f, &all, after, sizeof after);
    assert_string_equal(after, before);
    free(r);
}

/* Principals come and go in numbers that grow the principal index and make long probe
 * runs in it; each one's filter still finds exactly its rules, visiting only them. */
static void test_principal_index_churn(void **state)
{
    struct afx *f = *state;
    enum { NP = 5000 };
    static bool present[NP];
    char principal[32], name[32], got[256], want[256];
    uint64_t s = 12345;

    memset(present, 0, sizeof present);
    for (int round = 0; round < 4; round++) {
        for (int k = 0; k < NP; k++) { /* add or delete about half of them, at random */
            int i = (int)rnd(&s, NP);
            snprintf(principal, sizeof principal, "User:p%d", i);
            snprintf(name, sizeof name, "t%d", i);
            struct acl_binding b = bind(ACL_RES_TOPIC, name, ACL_PAT_LITERAL, principal, "*",
                                        ACL_OP_READ, ACL_PERM_ALLOW);
            struct acl_binding q = principal_filter(principal);
            if (!present[i] && rnd(&s, 2))
                assert_int_equal(acls_add(f->a, &b), 0);
            else if (!present[i])
                assert_int_equal(acls_replace_principal(f->a, principal, &b, 1), 0);
            else if (rnd(&s, 2))
                assert_int_equal(acls_delete(f->a, &q, NULL, NULL), 1);
            else
                assert_int_equal(acls_replace_principal(f->a, principal, NULL, 0), 0);
            present[i] = !present[i];
        }
        size_t n = 0;
        for (int i = 0; i < NP; i++) {
            snprintf(principal, sizeof principal, "User:p%d", i);
            snprintf(want, sizeof want, "2/3/t%d/%s/*/3/3", i, principal);
            struct acl_binding q = principal_filter(principal);
            size_t v0 = acls_visits(f->a);
            list(f, &q, got, sizeof got);
            assert_int_equal(acls_visits(f->a) - v0, present[i]);
            assert_string_equal(got, present[i] ? want : "");
            n += present[i];
        }
        assert_int_equal(acls_count(f->a), n);
    }
}

/* ---- persistence */

static void test_persistence(void **state)
{
    struct afx *f = *state;
    struct acl_binding q = any_filter();
    char before[4096], after[4096];

    add_filter_rules(f);
    deny(f, ACL_RES_CLUSTER, ACL_CLUSTER_NAME, ACL_PAT_LITERAL, "User:a", ACL_OP_ALTER);
    list(f, &q, before, sizeof before);
    reopen(f);
    assert_int_equal(acls_count(f->a), 9);
    list(f, &q, after, sizeof after);
    assert_string_equal(before, after);
    assert_true(ok(f, "User:a", ACL_RES_TOPIC, "tenant-1.orders", ACL_OP_READ));
    assert_true(ok_from(f, "User:a", "10.0.0.9", ACL_RES_TOPIC, "tenant-1.orders", ACL_OP_ALTER));
    assert_false(ok(f, "User:a", ACL_RES_TOPIC, "tenant-1.orders", ACL_OP_ALTER));
    assert_false(ok(f, "User:b", ACL_RES_TOPIC, "tenant-1.orders", ACL_OP_WRITE));
    assert_true(ok(f, "User:b", ACL_RES_TOPIC, "tenant-1.orders", ACL_OP_DESCRIBE));
    assert_false(ok(f, "User:a", ACL_RES_CLUSTER, ACL_CLUSTER_NAME, ACL_OP_ALTER));
}

static void test_idempotent_add(void **state)
{
    struct afx *f = *state;
    for (int i = 0; i < 3; i++) {
        allow(f, ACL_RES_TOPIC, "t", ACL_PAT_LITERAL, "User:a", ACL_OP_READ);
        add(f, ACL_RES_TOPIC, "t", ACL_PAT_LITERAL, "User:a", "1.2.3.4", ACL_OP_READ,
            ACL_PERM_ALLOW);
    }
    assert_int_equal(acls_count(f->a), 2);
    reopen(f);
    assert_int_equal(acls_count(f->a), 2);
    allow(f, ACL_RES_TOPIC, "t", ACL_PAT_LITERAL, "User:a", ACL_OP_READ);
    assert_int_equal(acls_count(f->a), 2);
    /* the same key with another perm or op is another rule */
    deny(f, ACL_RES_TOPIC, "t", ACL_PAT_LITERAL, "User:a", ACL_OP_READ);
    allow(f, ACL_RES_TOPIC, "t", ACL_PAT_LITERAL, "User:a", ACL_OP_WRITE);
    assert_int_equal(acls_count(f->a), 4);
}

/* Stored keys that do not decode are skipped, the rest load. */
static void test_corrupt_keys_skipped(void **state)
{
    struct afx *f = *state;
    static const char bad1[] = "acl/x";
    static const uint8_t bad2[] = {'a', 'c', 'l', '/', 2, 3, 3, 3, 0, 50, 't'};
    static const uint8_t bad3[] = {'a', 'c', 'l', '/', 9,   3,   3,   3,   0,   1,
                                   't', 0,   6,   'U', 's', 'e', 'r', ':', 'a', '*'};

    allow(f, ACL_RES_TOPIC, "t", ACL_PAT_LITERAL, "User:a", ACL_OP_READ);
    assert_int_equal(store_put(f->st, STORE_CF_META, bad1, sizeof bad1 - 1, "", 0), 0);
    assert_int_equal(store_put(f->st, STORE_CF_META, bad2, sizeof bad2, "", 0), 0);
    assert_int_equal(store_put(f->st, STORE_CF_META, bad3, sizeof bad3, "", 0), 0);
    assert_int_equal(store_put(f->st, STORE_CF_META, "acm", 3, "", 0), 0);
    reopen(f); /* logs one warning, below the tests' level */
    assert_int_equal(acls_count(f->a), 1);
    assert_true(ok(f, "User:a", ACL_RES_TOPIC, "t", ACL_OP_READ));
}

/* ---- scale */

enum { MANY = 300000 };

/* MANY principals, User:tenant-N.agent-M, each allowed to read topics under the prefix
 * tenant-N.agent-M. */
static void add_many(struct afx *f)
{
    char pre[64], principal[64];
    struct acl_binding b;

    for (int i = 0; i < MANY; i++) {
        snprintf(principal, sizeof principal, "User:tenant-%d.agent-%d", i / 100, i % 100);
        snprintf(pre, sizeof pre, "tenant-%d.agent-%d.", i / 100, i % 100);
        b = bind(ACL_RES_TOPIC, pre, ACL_PAT_PREFIXED, principal, "*", ACL_OP_READ, ACL_PERM_ALLOW);
        assert_int_equal(acls_add(f->a, &b), 0);
    }
}

static void test_many_principals(void **state)
{
    struct afx *f = *state;
    char name[64], principal[64];

    add_many(f);
    allow(f, ACL_RES_TOPIC, "target.", ACL_PAT_PREFIXED, "User:target", ACL_OP_WRITE);
    allow(f, ACL_RES_TOPIC, "target.in", ACL_PAT_LITERAL, "User:target", ACL_OP_READ);
    assert_int_equal(acls_count(f->a), MANY + 2);
    assert_true(acls_memory(f->a) / acls_count(f->a) < 256);

    assert_true(ok(f, "User:target", ACL_RES_TOPIC, "target.x", ACL_OP_WRITE));
    assert_true(ok(f, "User:target", ACL_RES_TOPIC, "target.in", ACL_OP_READ));
    assert_false(ok(f, "User:target", ACL_RES_TOPIC, "target.x", ACL_OP_READ));
    assert_false(ok(f, "User:target", ACL_RES_TOPIC, "tenant-5.agent-5.x", ACL_OP_READ));
    for (int i = 0; i < MANY; i += 997) {
        snprintf(principal, sizeof principal, "User:tenant-%d.agent-%d", i / 100, i % 100);
        snprintf(name, sizeof name, "tenant-%d.agent-%d.input", i / 100, i % 100);
        assert_true(ok(f, principal, ACL_RES_TOPIC, name, ACL_OP_READ));
        assert_false(ok(f, principal, ACL_RES_TOPIC, name, ACL_OP_WRITE));
        assert_false(ok(f, principal, ACL_RES_TOPIC, "target.x", ACL_OP_WRITE));
        snprintf(name, sizeof name, "tenant-%d.agent-%d.input", i / 100, (i + 1) % 100);
        assert_false(ok(f, principal, ACL_RES_TOPIC, name, ACL_OP_READ));
    }
    /* a listing for one principal and resource probes rather than scans */
    struct acl_binding q = any_filter();
    q.res_type = ACL_RES_TOPIC;
    q.pattern = ACL_PAT_MATCH;
    q.res_name = "tenant-7.agent-3.input";
    q.principal = "User:tenant-7.agent-3";
    assert_int_equal(count(f, &q), 1);
    q.principal = NULL;
    assert_int_equal(count(f, &q), 1);
}

/* Among MANY other principals' rules, a filter naming a principal visits only that
 * principal's entries (a scan would visit them all) and answers what a scan answers;
 * deleting by principal removes exactly its rules, for good. */
static void test_principal_filter_among_many(void **state)
{
    struct afx *f = *state;
    const struct acl_binding t[] = {
        bind(ACL_RES_TOPIC, "target.", ACL_PAT_PREFIXED, "User:target", "*", ACL_OP_WRITE,
             ACL_PERM_ALLOW),
        bind(ACL_RES_TOPIC, "target.in", ACL_PAT_LITERAL, "User:target", "*", ACL_OP_READ,
             ACL_PERM_ALLOW),
        bind(ACL_RES_TOPIC, "target.in", ACL_PAT_LITERAL, "User:target", "10.0.0.1", ACL_OP_DELETE,
             ACL_PERM_DENY),
        bind(ACL_RES_GROUP, "target", ACL_PAT_PREFIXED, "User:target", "*", ACL_OP_READ,
             ACL_PERM_ALLOW),
    };
    struct acl_binding q = principal_filter("User:target");
    char *got = malloc(BIG), *want = malloc(BIG), principal[64], pre[160];
    size_t v0;

    assert_non_null(got);
    assert_non_null(want);
    add_many(f);
    for (size_t i = 0; i < sizeof t / sizeof *t; i++)
        assert_int_equal(acls_add(f->a, &t[i]), 0);
    allow(f, ACL_RES_TOPIC, "*", ACL_PAT_LITERAL, "User:*", ACL_OP_DESCRIBE);

    v0 = acls_visits(f->a);
    list(f, &q, got, BIG);
    assert_int_equal(acls_visits(f->a) - v0, 3); /* its 3 keys */
    rules_text(t, 4, want, BIG);
    assert_string_equal(got, want);

    /* with a resource type; with MATCH on a name (and any type); the same as a scan */
    q.res_type = ACL_RES_TOPIC;
    check_filter_as(f, &q, got, want, false); /* without the principal: 300,000 rows */
    assert_int_equal(count(f, &q), 3);
    q.res_type = ACL_RES_ANY;
    q.pattern = ACL_PAT_MATCH;
    q.res_name = "target.in";
    check_filter(f, &q, got, want);
    assert_string_equal(got, "2/3/target.in/User:target/*/3/3 "
                             "2/3/target.in/User:target/10.0.0.1/6/2 "
                             "2/4/target./User:target/*/4/3 "
                             "3/4/target/User:target/*/3/3");
    q.res_name = "target.out";
    q.op = ACL_OP_WRITE;
    check_filter(f, &q, got, want);
    assert_string_equal(got, "2/4/target./User:target/*/4/3");

    /* the counter sees a scan: the same filter without the index visits everything */
    acls_set_scan_only(f->a, true);
    v0 = acls_visits(f->a);
    assert_int_equal(count(f, &q), 1);
    assert_true(acls_visits(f->a) - v0 >= MANY);
    acls_set_scan_only(f->a, false);

    /* User:* in a filter is the literal principal User:*; one without rules is empty */
    q = principal_filter("User:*");
    v0 = acls_visits(f->a);
    list(f, &q, got, BIG);
    assert_string_equal(got, "2/3/*/User:*/*/8/3");
    q.principal = "User:nobody";
    assert_int_equal(count(f, &q), 0);
    assert_int_equal(acls_visits(f->a) - v0, 1);

    /* delete by principal */
    q = principal_filter("User:target");
    v0 = acls_visits(f->a);
    assert_int_equal(acls_delete(f->a, &q, NULL, NULL), 4);
    assert_int_equal(acls_visits(f->a) - v0, 3);
    assert_int_equal(acls_count(f->a), MANY + 1);
    assert_false(ok(f, "User:target", ACL_RES_TOPIC, "target.x", ACL_OP_WRITE));
    assert_true(ok(f, "User:target", ACL_RES_TOPIC, "target.x", ACL_OP_DESCRIBE));

    /* replace one agent's rules among them all */
    struct acl_binding r = bind(ACL_RES_GROUP, "tenant-7.agent-3", ACL_PAT_LITERAL,
                                "User:tenant-7.agent-3", "*", ACL_OP_READ, ACL_PERM_ALLOW);
    v0 = acls_visits(f->a);
    assert_int_equal(acls_replace_principal(f->a, r.principal, &r, 1), 0);
    assert_int_equal(acls_visits(f->a) - v0, 1);

    reopen(f);
    assert_int_equal(acls_count(f->a), MANY + 1);
    assert_int_equal(count(f, &q), 0);
    assert_false(ok(f, "User:target", ACL_RES_TOPIC, "target.x", ACL_OP_WRITE));
    q.principal = r.principal;
    list(f, &q, got, BIG);
    assert_string_equal(got, "3/3/tenant-7.agent-3/User:tenant-7.agent-3/*/3/3");
    assert_false(ok(f, r.principal, ACL_RES_TOPIC, "tenant-7.agent-3.x", ACL_OP_READ));
    for (int i = 0; i < MANY; i += 997) {
        snprintf(principal, sizeof principal, "User:tenant-%d.agent-%d", i / 100, i % 100);
        snprintf(pre, sizeof pre, "2/4/tenant-%d.agent-%d./%s/*/3/3", i / 100, i % 100, principal);
        q.principal = principal;
        v0 = acls_visits(f->a);
        list(f, &q, got, BIG);
        assert_int_equal(acls_visits(f->a) - v0, 1);
        assert_string_equal(got, pre);
    }
    free(got);
    free(want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_rule_denies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_literal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefixed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_prefix_lengths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wildcard_resource, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deny_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_implied_ops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hosts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_super_users, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wildcard_principal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_bindings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_foreach, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_probe_equals_scan, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefix_lengths_follow_deletes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persistence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idempotent_add, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_keys_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_principal_filters_random, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replace_principal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replace_principal_fails_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_principal_index_churn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_principals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_principal_filter_among_many, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
