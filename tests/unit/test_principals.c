/* test_principals.c: the SASL user table on a real store in a scratch directory:
 * passwords and single credentials set, replaced and deleted; everything found again
 * after a reopen; listing in name order with prefix/after/limit paging; the names it
 * refuses; malformed records skipped at load. */
#include "unit_broker.h"

#include "principals.h"
#include "scram.h"

#include <openssl/evp.h>

struct pfx {
    struct store *st;
    struct principals *p;
    char dir[64];
};

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
    struct pfx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    log_min_level = LOG_ERROR; /* the skipped-record warnings are expected */
    ub_mkdtemp(f->dir);
    f->st = open_store(f->dir);
    f->p = principals_open(f->st, 4096);
    assert_non_null(f->p);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct pfx *f = *state;
    principals_free(f->p);
    store_close(f->st);
    ub_rmdir(f->dir);
    free(f);
    return 0;
}

/* Closes and reopens the store and the table, as a broker restart does. */
static void reopen(struct pfx *f)
{
    principals_free(f->p);
    store_close(f->st);
    f->st = open_store(f->dir);
    f->p = principals_open(f->st, 4096);
    assert_non_null(f->p);
}

static bool pw_ok(struct pfx *f, const char *name, int mech, const char *pw)
{
    const struct scram_cred *c = principals_cred(f->p, name, mech);
    return c && scram_cred_check(mech, c, pw, strlen(pw));
}

/* A credential made once, so tests that need many principals stay fast. */
static const struct scram_cred *some_cred(int mech)
{
    static struct scram_cred c[SCRAM_MECH_COUNT];
    static bool made[SCRAM_MECH_COUNT];
    if (!made[mech]) {
        assert_int_equal(scram_cred_new(mech, "pw", 2, 4096, &c[mech]), 0);
        made[mech] = true;
    }
    return &c[mech];
}

static void test_set_replace_delete(void **state)
{
    struct pfx *f = *state;

    assert_int_equal(principals_count(f->p), 0);
    assert_false(principals_exists(f->p, "alice"));
    assert_null(principals_cred(f->p, "alice", SCRAM_SHA_256));

    assert_int_equal(principals_set_password(f->p, "alice", "pw1", 3), 0);
    assert_true(principals_exists(f->p, "alice"));
    assert_int_equal(principals_count(f->p), 1);
    for (int m = 0; m < SCRAM_MECH_COUNT; m++) {
        const struct scram_cred *c = principals_cred(f->p, "alice", m);
        assert_non_null(c);
        assert_int_equal(c->iterations, 4096);
        assert_int_equal(scram_cred_mech(c), m);
        assert_true(pw_ok(f, "alice", m, "pw1"));
        assert_false(pw_ok(f, "alice", m, "pw2"));
    }
    /* the two mechanisms have their own salts */
    assert_memory_not_equal(principals_cred(f->p, "alice", 0)->salt,
                            principals_cred(f->p, "alice", 1)->salt, SCRAM_SALT_LEN);

    /* replace */
    assert_int_equal(principals_set_password(f->p, "alice", "pw2", 3), 0);
    assert_int_equal(principals_count(f->p), 1);
    assert_true(pw_ok(f, "alice", SCRAM_SHA_256, "pw2"));
    assert_false(pw_ok(f, "alice", SCRAM_SHA_512, "pw1"));

    /* one mechanism at a time */
    struct scram_cred c;
    assert_int_equal(scram_cred_new(SCRAM_SHA_256, "bobpw", 5, 5000, &c), 0);
    assert_int_equal(principals_set_cred(f->p, "bob", SCRAM_SHA_256, &c), 0);
    assert_int_equal(principals_count(f->p), 2);
    assert_true(pw_ok(f, "bob", SCRAM_SHA_256, "bobpw"));
    assert_null(principals_cred(f->p, "bob", SCRAM_SHA_512));
    assert_int_equal(principals_cred(f->p, "bob", SCRAM_SHA_256)->iterations, 5000);
    assert_int_equal(principals_set_cred(f->p, "bob", SCRAM_SHA_512, &c), -1); /* wrong mech */
    assert_int_equal(principals_set_cred(f->p, "bob", 2, &c), -1);
    assert_int_equal(principals_set_cred(f->p, "bob", SCRAM_SHA_256, NULL), -1);
    c.iterations = 10;
    assert_int_equal(principals_set_cred(f->p, "bob", SCRAM_SHA_256, &c), -1);
    assert_true(pw_ok(f, "bob", SCRAM_SHA_256, "bobpw"));

    /* deleting credentials: the principal goes with its last one */
    assert_int_equal(principals_delete_cred(f->p, "bob", SCRAM_SHA_512), -1);
    assert_int_equal(principals_delete_cred(f->p, "alice", SCRAM_SHA_256), 0);
    assert_null(principals_cred(f->p, "alice", SCRAM_SHA_256));
    assert_true(pw_ok(f, "alice", SCRAM_SHA_512, "pw2"));
    assert_int_equal(principals_delete_cred(f->p, "alice", SCRAM_SHA_256), -1);
    assert_int_equal(principals_delete_cred(f->p, "alice", SCRAM_SHA_512), 0);
    assert_false(principals_exists(f->p, "alice"));
    assert_int_equal(principals_count(f->p), 1);
    assert_int_equal(principals_delete(f->p, "alice"), -1);
    assert_int_equal(principals_delete(f->p, "bob"), 0);
    assert_int_equal(principals_delete(f->p, "bob"), -1);
    assert_int_equal(principals_count(f->p), 0);
    assert_int_equal(principals_delete_cred(f->p, "nobody", SCRAM_SHA_256), -1);

    /* passwords are 1..PRINCIPAL_PASSWORD_MAX bytes */
    char *pw = calloc(1, PRINCIPAL_PASSWORD_MAX + 2);
    assert_non_null(pw);
    memset(pw, 'p', PRINCIPAL_PASSWORD_MAX + 1);
    assert_int_equal(principals_set_password(f->p, "carol", pw, PRINCIPAL_PASSWORD_MAX + 1), -1);
    assert_int_equal(principals_set_password(f->p, "carol", "", 0), -1);
    assert_int_equal(principals_set_password(f->p, "carol", NULL, 3), -1);
    assert_false(principals_exists(f->p, "carol"));
    assert_int_equal(principals_set_password(f->p, "carol", pw, PRINCIPAL_PASSWORD_MAX), 0);
    assert_true(scram_cred_check(SCRAM_SHA_512, principals_cred(f->p, "carol", SCRAM_SHA_512), pw,
                                 PRINCIPAL_PASSWORD_MAX));
    free(pw);
}

/* Everything comes back after a restart, byte for byte; deletions stay deleted. */
static void test_reopen(void **state)
{
    struct pfx *f = *state;
    struct scram_cred before[2];
    size_t sl;

    uint8_t secret[32];
    const uint8_t *s = principals_secret(f->p, &sl);
    assert_int_equal(sl, 32);
    memcpy(secret, s, sl);
    assert_int_equal(principals_iterations(f->p), 4096);

    assert_int_equal(principals_set_password(f->p, "alice", "pw1", 3), 0);
    assert_int_equal(principals_set_password(f->p, "gone", "pw1", 3), 0);
    assert_int_equal(principals_set_cred(f->p, "bob", SCRAM_SHA_512, some_cred(SCRAM_SHA_512)), 0);
    assert_int_equal(principals_delete(f->p, "gone"), 0);
    assert_int_equal(principals_set_password(f->p, "carol", "x", 1), 0);
    assert_int_equal(principals_delete_cred(f->p, "carol", SCRAM_SHA_512), 0);
    for (int m = 0; m < 2; m++)
        before[m] = *principals_cred(f->p, "alice", m);

    reopen(f);
    assert_int_equal(principals_count(f->p), 3);
    assert_false(principals_exists(f->p, "gone"));
    for (int m = 0; m < 2; m++) {
        const struct scram_cred *c = principals_cred(f->p, "alice", m);
        assert_non_null(c);
        assert_int_equal(c->key_len, before[m].key_len);
        assert_int_equal(c->salt_len, before[m].salt_len);
        assert_int_equal(c->iterations, before[m].iterations);
        assert_memory_equal(c->salt, before[m].salt, c->salt_len);
        assert_memory_equal(c->stored_key, before[m].stored_key, c->key_len);
        assert_memory_equal(c->server_key, before[m].server_key, c->key_len);
    }
    assert_true(pw_ok(f, "alice", SCRAM_SHA_256, "pw1"));
    assert_null(principals_cred(f->p, "bob", SCRAM_SHA_256));
    assert_true(pw_ok(f, "bob", SCRAM_SHA_512, "pw"));
    assert_true(pw_ok(f, "carol", SCRAM_SHA_256, "x"));
    assert_null(principals_cred(f->p, "carol", SCRAM_SHA_512));
    /* the secret outlives the restart */
    s = principals_secret(f->p, &sl);
    assert_memory_equal(s, secret, sizeof secret);
}

/* The iteration count for new passwords is clamped to what SCRAM allows. */
static void test_iterations(void **state)
{
    struct pfx *f = *state;

    principals_free(f->p);
    f->p = principals_open(f->st, 100);
    assert_non_null(f->p);
    assert_int_equal(principals_iterations(f->p), SCRAM_MIN_ITERATIONS);
    assert_int_equal(principals_set_password(f->p, "a", "pw", 2), 0);
    assert_int_equal(principals_cred(f->p, "a", SCRAM_SHA_256)->iterations, SCRAM_MIN_ITERATIONS);
    principals_free(f->p);
    f->p = principals_open(f->st, INT32_MAX);
    assert_non_null(f->p);
    assert_int_equal(principals_iterations(f->p), SCRAM_MAX_ITERATIONS);
    principals_free(f->p);
    f->p = principals_open(f->st, 5000);
    assert_non_null(f->p);
    assert_int_equal(principals_set_password(f->p, "a", "pw", 2), 0);
    assert_int_equal(principals_cred(f->p, "a", SCRAM_SHA_512)->iterations, 5000);
    log_min_level = LOG_ERROR + 1; /* the failure is logged */
    assert_null(principals_open(NULL, 4096));
    log_min_level = LOG_ERROR;
}

struct names {
    int n;
    char v[64][PRINCIPAL_NAME_MAX + 1];
    bool mech[64][SCRAM_MECH_COUNT];
};

static void collect(void *arg, const char *name, const struct scram_cred *creds[SCRAM_MECH_COUNT])
{
    struct names *ns = arg;
    assert_true(ns->n < 64);
    snprintf(ns->v[ns->n], sizeof ns->v[0], "%s", name);
    for (int m = 0; m < SCRAM_MECH_COUNT; m++)
        ns->mech[ns->n][m] = creds[m] != NULL;
    ns->n++;
}

/* Lists and returns the names joined by ' '. */
static const char *list(struct pfx *f, const char *prefix, const char *after, int limit)
{
    static char out[4096];
    struct names ns = {0};
    int n = principals_list(f->p, prefix, after, limit, collect, &ns);
    assert_int_equal(n, ns.n);
    out[0] = 0;
    for (int i = 0; i < ns.n; i++) {
        strcat(out, i ? " " : "");
        strcat(out, ns.v[i]);
    }
    return out;
}

static void test_list(void **state)
{
    struct pfx *f = *state;
    static const char *const names[] = {"b",  "abc", "a", "zz", "ab", "\xc3\xa9t\xc3\xa9",
                                        "ba", "c",   "A", "a b"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        assert_int_equal(principals_set_cred(f->p, names[i], (int)(i % 2), some_cred((int)(i % 2))),
                         0);
    assert_int_equal(principals_set_cred(f->p, "a", SCRAM_SHA_512, some_cred(SCRAM_SHA_512)), 0);

    assert_string_equal(list(f, NULL, NULL, -1), "A a a b ab abc b ba c zz \xc3\xa9t\xc3\xa9");
    assert_string_equal(list(f, "", NULL, 100), "A a a b ab abc b ba c zz \xc3\xa9t\xc3\xa9");
    assert_string_equal(list(f, "a", NULL, -1), "a a b ab abc");
    assert_string_equal(list(f, "a", "a", -1), "a b ab abc");
    assert_string_equal(list(f, "a", "ab", -1), "abc");
    assert_string_equal(list(f, "a", "abc", -1), "");
    assert_string_equal(list(f, "a", "aa", -1), "ab abc"); /* after need not exist */
    assert_string_equal(list(f, "a", "A", 2), "a a b");
    assert_string_equal(list(f, "b", "a", -1), "b ba");
    assert_string_equal(list(f, "b", "z", -1), "");
    assert_string_equal(list(f, "ab", NULL, -1), "ab abc");
    assert_string_equal(list(f, "abc", NULL, -1), "abc");
    assert_string_equal(list(f, "abcd", NULL, -1), "");
    assert_string_equal(list(f, "x", NULL, -1), "");
    assert_string_equal(list(f, NULL, "c", -1), "zz \xc3\xa9t\xc3\xa9");
    assert_string_equal(list(f, NULL, NULL, 3), "A a a b");
    assert_string_equal(list(f, NULL, NULL, 0), "");
    assert_string_equal(list(f, NULL, "\xff", -1), "");

    /* what each visit says about the mechanisms */
    struct names ns = {0};
    assert_int_equal(principals_list(f->p, "a", NULL, 1, collect, &ns), 1);
    assert_string_equal(ns.v[0], "a");
    assert_true(ns.mech[0][SCRAM_SHA_256] && ns.mech[0][SCRAM_SHA_512]);
    ns.n = 0;
    assert_int_equal(principals_list(f->p, "b", NULL, 1, collect, &ns), 1);
    assert_true(ns.mech[0][SCRAM_SHA_256] && !ns.mech[0][SCRAM_SHA_512]);

    /* arguments */
    char longname[PRINCIPAL_NAME_MAX + 2];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    assert_int_equal(principals_list(f->p, longname, NULL, -1, collect, &ns), -1);
    assert_int_equal(principals_list(f->p, NULL, longname, -1, collect, &ns), -1);
    assert_int_equal(principals_list(f->p, NULL, NULL, -1, NULL, &ns), -1);
    longname[PRINCIPAL_NAME_MAX] = 0;
    assert_string_equal(list(f, longname, NULL, -1), "");

    /* deletions leave the listing */
    assert_int_equal(principals_delete(f->p, "ab"), 0);
    assert_string_equal(list(f, "a", NULL, -1), "a a b abc");
}

/* Paging through many principals inserted in a scrambled order visits each once, in
 * order, whatever the page size. */
static void test_list_paging(void **state)
{
    struct pfx *f = *state;
    enum { N = 1000 };
    char name[32];

    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "user-%04d", (i * 7919) % N);
        assert_int_equal(principals_set_cred(f->p, name, SCRAM_SHA_256, some_cred(SCRAM_SHA_256)),
                         0);
    }
    assert_int_equal(principals_count(f->p), N);
    static const int pages[] = {1, 7, 64, 999, 1000, 5000};
    for (size_t k = 0; k < sizeof pages / sizeof pages[0]; k++) {
        char after[PRINCIPAL_NAME_MAX + 1] = "";
        int seen = 0;
        for (;;) {
            struct names ns = {0};
            int lim = pages[k] < 64 ? pages[k] : 64;
            int n = principals_list(f->p, "user-", seen ? after : NULL, lim, collect, &ns);
            assert_true(n >= 0 && n <= lim);
            for (int i = 0; i < n; i++) {
                snprintf(name, sizeof name, "user-%04d", seen + i);
                assert_string_equal(ns.v[i], name);
            }
            seen += n;
            if (n < lim)
                break;
            snprintf(after, sizeof after, "%s", ns.v[n - 1]);
        }
        assert_int_equal(seen, N);
    }
    reopen(f);
    assert_int_equal(principals_count(f->p), N);
    assert_string_equal(list(f, "user-099", NULL, -1),
                        "user-0990 user-0991 user-0992 user-0993 user-0994 user-0995 user-0996 "
                        "user-0997 user-0998 user-0999");
}

static void test_names(void **state)
{
    struct pfx *f = *state;
    char name[PRINCIPAL_NAME_MAX + 2];

    static const char *const good[] = {
        "alice",
        "a b",
        "User:x",
        "*",
        "\xc3\xa9t\xc3\xa9",
        "\xe6\x97\xa5\xe6\x9c\xac",
        "\xf0\x9f\x94\x91",
        "\xc2\xa0",
        "~!@#$%^&*()_+-[]{};:'\"<>./?|\\`",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (!principals_name_valid(good[i], strlen(good[i])))
            fail_msg("refused: %s", good[i]);

    static const char *const bad[] = {
        "a,b",
        "a=b",
        "a\tb",
        "a\nb",
        "\x7f",
        "\x01",
        "\xc3",
        "\xc3(",
        "\xc0\xaf",
        "\xe0\x80\xaf",
        "\xed\xa0\x80",
        "\xc2\x85",
        "\xc2\x9f",
        "\xf4\x90\x80\x80",
        "\xf8\x88\x80\x80\x80",
        "\xff",
        "\x80",
        "\xe6\x97",
        "a\x1b[31m",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (principals_name_valid(bad[i], strlen(bad[i])))
            fail_msg("accepted bad name %zu", i);
        assert_int_equal(principals_set_cred(f->p, bad[i], SCRAM_SHA_256, some_cred(SCRAM_SHA_256)),
                         -1);
        assert_int_equal(principals_set_password(f->p, bad[i], "pw", 2), -1);
    }
    assert_false(principals_name_valid("", 0));
    assert_false(principals_name_valid(NULL, 3));
    assert_false(principals_name_valid("a\0b", 3));
    assert_true(principals_name_valid("a\0b", 1));
    assert_int_equal(principals_set_password(f->p, "", "pw", 2), -1);
    assert_int_equal(principals_set_password(f->p, NULL, "pw", 2), -1);

    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = 0; /* 256 bytes */
    assert_false(principals_name_valid(name, strlen(name)));
    assert_int_equal(principals_set_cred(f->p, name, SCRAM_SHA_256, some_cred(SCRAM_SHA_256)), -1);
    assert_false(principals_exists(f->p, name));
    name[PRINCIPAL_NAME_MAX] = 0; /* 255 */
    assert_true(principals_name_valid(name, strlen(name)));
    assert_int_equal(principals_set_cred(f->p, name, SCRAM_SHA_256, some_cred(SCRAM_SHA_256)), 0);
    assert_true(principals_exists(f->p, name));
    assert_int_equal(principals_count(f->p), 1);
    reopen(f);
    assert_true(principals_exists(f->p, name));
    assert_string_equal(list(f, NULL, NULL, -1), name);
}

/* Records that do not decode, or whose key is not a valid name, are skipped at load
 * (and so by listing) without taking the rest down; other META keys are not ours. */
static void test_malformed_records(void **state)
{
    struct pfx *f = *state;
    uint8_t rec[2 + 2 * (1 + SCRAM_CRED_ENCODED_MAX)];

    assert_int_equal(principals_set_password(f->p, "good", "pw", 2), 0);
    assert_int_equal(principals_set_cred(f->p, "good2", SCRAM_SHA_512, some_cred(SCRAM_SHA_512)),
                     0);
    size_t vl;
    int err;
    uint8_t *v = store_get(f->st, STORE_CF_META, "principal/good", 14, &vl, &err);
    assert_non_null(v);
    assert_true(vl <= sizeof rec);
    memcpy(rec, v, vl);
    free(v);
    assert_int_equal(rec[0], 1);
    assert_int_equal(rec[1], 2);

#define PUT(k, p, n) assert_int_equal(store_put(f->st, STORE_CF_META, k, strlen(k), p, n), 0)
    PUT("principal/a,b", rec, vl); /* a name principals refuses */
    PUT("principal/", rec, vl);    /* no name */
    PUT("principal/trunc", rec, vl - 1);
    PUT("principal/empty", rec, 0);
    PUT("principal/junk", "junk", 4);
    uint8_t bad[sizeof rec];
    memcpy(bad, rec, vl);
    bad[0] = 2; /* version */
    PUT("principal/v2", bad, vl);
    memcpy(bad, rec, vl);
    bad[1] = 3; /* count */
    PUT("principal/n3", bad, vl);
    memcpy(bad, rec, vl);
    bad[1] = 0;
    PUT("principal/n0", bad, vl);
    memcpy(bad, rec, vl);
    bad[2] = 250; /* first credential's length */
    PUT("principal/len", bad, vl);
    /* the same mechanism twice */
    size_t l0 = rec[2];
    memcpy(bad, rec, 3 + l0);
    memcpy(bad + 3 + l0, rec + 2, 1 + l0);
    PUT("principal/dup", bad, 3 + 2 * l0 + 1);
    memcpy(bad, rec, vl);
    bad[vl] = 0; /* trailing byte */
    PUT("principal/tail", bad, vl + 1);
    PUT("principal/ok", rec, vl); /* a valid record under a new name loads */
    PUT("principalx", "junk", 4);
    PUT("principal_other", "junk", 4);
#undef PUT

    reopen(f);
    assert_int_equal(principals_count(f->p), 3);
    assert_string_equal(list(f, NULL, NULL, -1), "good good2 ok");
    assert_true(pw_ok(f, "ok", SCRAM_SHA_512, "pw"));
    assert_false(principals_exists(f->p, "junk"));
    /* a bad record is replaced by a good one like any other */
    assert_int_equal(principals_set_cred(f->p, "junk", SCRAM_SHA_256, some_cred(SCRAM_SHA_256)), 0);
    assert_string_equal(list(f, "j", NULL, -1), "junk");
}

/* principals_cred is a scram_lookup_fn: a whole exchange can run against the table,
 * and the table's secret and iteration count set up the server. */
static void test_scram_lookup(void **state)
{
    struct pfx *f = *state;
    size_t sl;
    const uint8_t *sec = principals_secret(f->p, &sl);
    scram_lookup_fn *fn = principals_cred;
    uint8_t *out = NULL;
    size_t ol = 0;
    const char *err = NULL;

    assert_int_equal(principals_set_password(f->p, "alice", "pw", 2), 0);
    assert_non_null(fn(f->p, "alice", SCRAM_SHA_256));
    assert_null(fn(f->p, "alice", 2));
    assert_null(fn(f->p, "alice", -1));
    assert_null(fn(f->p, NULL, 0));
    assert_null(fn(NULL, "alice", 0));
    assert_false(principals_exists(NULL, "alice"));
    assert_int_equal(principals_count(NULL), 0);

    struct scram_server *s = scram_server_new(SCRAM_SHA_256, sec, sl);
    assert_non_null(s);
    scram_server_set_iterations(s, principals_iterations(f->p));
    static const char first[] = "n,,n=alice,r=abcdef";
    assert_int_equal(scram_server_step(s, (const uint8_t *)first, strlen(first), principals_cred,
                                       f->p, &out, &ol, &err),
                     SCRAM_CONTINUE);
    /* the salt shown is alice's */
    char want[128] = "";
    const struct scram_cred *c = principals_cred(f->p, "alice", SCRAM_SHA_256);
    int n = EVP_EncodeBlock((unsigned char *)want, c->salt, c->salt_len);
    assert_true(n > 0);
    char *sf = strndup((const char *)out, ol);
    assert_non_null(strstr(sf, want));
    free(sf);
    free(out);
    scram_server_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_set_replace_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iterations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scram_lookup, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
