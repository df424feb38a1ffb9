/* test_kapi_acl.c: DescribeAcls, CreateAcls and DeleteAcls as whole frames through
 * kafka_handle() on a scratch broker with an ACL table and the authorizer on. Every
 * version (0-3, flexible from 2) is encoded and its response decoded field by field to
 * the last byte; truncated frames must be refused; access needs the cluster's
 * DESCRIBE or ALTER; a broker without ACLs answers SECURITY_DISABLED. */
#include "unit_broker.h"

#include "acl.h"
#include "conn.h"

enum { K_DESCRIBE_ACLS = 29, K_CREATE_ACLS = 30, K_DELETE_ACLS = 31 };

struct kf {
    struct ub u;
    struct conn c;
    struct kslot s;
};

static int setup(void **state)
{
    struct kf *f = calloc(1, sizeof *f);
    assert_non_null(f);
    ub_init(&f->u);
    f->u.b.acls = acls_open(f->u.b.store, "User:admin");
    assert_non_null(f->u.b.acls);
    f->u.b.authorize = true;
    f->c.fd = -1;
    f->c.b = &f->u.b;
    snprintf(f->c.peer, sizeof f->c.peer, "127.0.0.1:5555");
    snprintf(f->c.peer_ip, sizeof f->c.peer_ip, "127.0.0.1");
    snprintf(f->c.principal, sizeof f->c.principal, "User:admin");
    f->s.conn = &f->c;
    kc_writer_init(&f->s.w, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct kf *f = *state;
    kc_writer_free(&f->s.w);
    acls_free(f->u.b.acls);
    f->u.b.acls = NULL;
    ub_fini(&f->u);
    free(f);
    return 0;
}

static void as(struct kf *f, const char *principal)
{
    snprintf(f->c.principal, sizeof f->c.principal, "%s", principal);
}

/* ---- framing */

static int32_t next_corr = 5000;

/* Starts a request: header v1, or v2 (with tags) from v2 on. */
static void req_begin(kc_writer *w, int16_t key, int16_t ver)
{
    kc_writer_init(w, 0);
    kc_w_i16(w, key);
    kc_w_i16(w, ver);
    kc_w_i32(w, next_corr++);
    kc_w_cstr(w, false, "unit");
    kc_w_tags(w, ver >= 2);
}

/* Handles the first len bytes of req as one frame, in a buffer of exactly that size.
 * When answered, leaves body after the response header. */
static int call_n(struct kf *f, const kc_writer *req, size_t len, kc_reader *body)
{
    uint8_t *frame = malloc(len ? len : 1);
    int16_t ver = (int16_t)kc_get_be16(req->p + 2);
    int rc;

    assert_non_null(frame);
    assert_int_equal(req->err, KC_OK);
    memcpy(frame, req->p, len);
    kc_writer_reset(&f->s.w);
    rc = kafka_handle(&f->u.b, &f->c, &f->s, frame, len);
    free(frame);
    if (rc != KAPI_DONE)
        return rc;
    kc_reader_init(body, f->s.w.p, f->s.w.len);
    assert_int_equal(kc_i32(body), 0); /* the size slot */
    assert_int_equal(kc_i32(body), (int32_t)kc_get_be32(req->p + 4));
    kc_skip_tags(body, ver >= 2); /* response header v1 */
    assert_true(kc_ok(body));
    return rc;
}

static void call(struct kf *f, kc_writer *req, kc_reader *body)
{
    assert_int_equal(call_n(f, req, req->len, body), KAPI_DONE);
}

/* Every strict prefix of req (consumed) must be refused as malformed. */
static void assert_prefixes_refused(struct kf *f, kc_writer *req)
{
    int saved = log_min_level;
    log_min_level = LOG_ERROR;
    for (size_t n = 0; n < req->len; n++) {
        kc_reader body;
        int rc = call_n(f, req, n, &body);
        if (rc != KAPI_EPARSE)
            fail_msg("prefix of %zu of %zu bytes: rc %d", n, req->len, rc);
    }
    log_min_level = saved;
    kc_writer_free(req);
}

/* ---- encoding */

struct acl {
    int8_t type;
    const char *name;
    int8_t pattern;
    const char *principal, *host;
    int8_t op, perm;
};

/* The seven binding fields (PatternType from v1) and, when flexible, tags. */
static void w_acl(kc_writer *w, int16_t ver, const struct acl *a)
{
    bool fx = ver >= 2;
    kc_w_i8(w, a->type);
    kc_w_cstr(w, fx, a->name);
    if (ver >= 1)
        kc_w_i8(w, a->pattern);
    kc_w_cstr(w, fx, a->principal);
    kc_w_cstr(w, fx, a->host);
    kc_w_i8(w, a->op);
    kc_w_i8(w, a->perm);
    kc_w_tags(w, fx);
}

static void create_req(kc_writer *w, int16_t ver, const struct acl *acls, int n)
{
    req_begin(w, K_CREATE_ACLS, ver);
    kc_w_array(w, ver >= 2, n);
    for (int i = 0; i < n; i++)
        w_acl(w, ver, &acls[i]);
    kc_w_tags(w, ver >= 2);
}

static void describe_req(kc_writer *w, int16_t ver, const struct acl *filter)
{
    req_begin(w, K_DESCRIBE_ACLS, ver);
    w_acl(w, ver, filter); /* its tags are the request's */
}

static void delete_req(kc_writer *w, int16_t ver, const struct acl *filters, int n)
{
    req_begin(w, K_DELETE_ACLS, ver);
    kc_w_array(w, ver >= 2, n);
    for (int i = 0; i < n; i++)
        w_acl(w, ver, &filters[i]);
    kc_w_tags(w, ver >= 2);
}

/* ---- decoding */

/* Creates acls (n of them) and checks each result's error code against errs (NULL: all
 * succeed); an error must come with a message. */
static void create(struct kf *f, int16_t ver, const struct acl *acls, int n, const int16_t *errs)
{
    bool fx = ver >= 2;
    kc_writer w;
    kc_reader r;

    create_req(&w, ver, acls, n);
    call(f, &w, &r);
    kc_writer_free(&w);
    assert_int_equal(kc_i32(&r), 0); /* ThrottleTimeMs */
    assert_int_equal(kc_array(&r, fx, 3), n);
    for (int i = 0; i < n; i++) {
        int16_t err = kc_i16(&r);
        kc_str msg = kc_string(&r, fx);
        kc_skip_tags(&r, fx);
        assert_int_equal(err, errs ? errs[i] : KERR_NONE);
        if (err == KERR_NONE)
            assert_int_equal(msg.len, -1);
        else
            assert_true(msg.len > 0);
    }
    ub_assert_done(&r, fx);
}

/* Appends "type/pattern/name/principal/host/op/perm" to out (cap bytes), space-separated. */
static void row(char *out, size_t cap, int8_t type, int8_t pattern, kc_str name, kc_str principal,
                kc_str host, int8_t op, int8_t perm)
{
    size_t n = strlen(out);
    snprintf(out + n, cap - n, "%s%d/%d/%.*s/%.*s/%.*s/%d/%d", n ? " " : "", type, pattern,
             (int)name.len, name.p, (int)principal.len, principal.p, (int)host.len, host.p, op,
             perm);
}

/* Describes with filter; returns the error code and fills out with the rules. */
static int16_t describe(struct kf *f, int16_t ver, const struct acl *filter, char *out, size_t cap)
{
    bool fx = ver >= 2;
    kc_writer w;
    kc_reader r;
    int16_t err;
    kc_str msg;
    int32_t nres;

    describe_req(&w, ver, filter);
    call(f, &w, &r);
    kc_writer_free(&w);
    out[0] = 0;
    assert_int_equal(kc_i32(&r), 0); /* ThrottleTimeMs */
    err = kc_i16(&r);
    msg = kc_string(&r, fx);
    assert_true(err == KERR_NONE ? msg.len == -1 : msg.len > 0);
    nres = kc_array(&r, fx, 2);
    for (int32_t i = 0; i < nres; i++) {
        int8_t type = kc_i8(&r);
        kc_str name = kc_string(&r, fx);
        int8_t pattern = ver >= 1 ? kc_i8(&r) : ACL_PAT_LITERAL;
        int32_t nacl = kc_array(&r, fx, 4);
        assert_true(nacl > 0);
        for (int32_t j = 0; j < nacl; j++) {
            kc_str principal = kc_string(&r, fx), host = kc_string(&r, fx);
            int8_t op = kc_i8(&r), perm = kc_i8(&r);
            kc_skip_tags(&r, fx);
            assert_true(kc_ok(&r));
            row(out, cap, type, pattern, name, principal, host, op, perm);
        }
        kc_skip_tags(&r, fx);
    }
    ub_assert_done(&r, fx);
    return err;
}

/* Deletes with filters; checks each filter's error against errs (NULL: none) and writes
 * the matching rules, filter results separated by " | ", into out. */
static void delete (struct kf *f, int16_t ver, const struct acl *filters, int n,
                    const int16_t *errs, char *out, size_t cap)
{
    bool fx = ver >= 2;
    kc_writer w;
    kc_reader r;

    delete_req(&w, ver, filters, n);
    call(f, &w, &r);
    kc_writer_free(&w);
    out[0] = 0;
    assert_int_equal(kc_i32(&r), 0); /* ThrottleTimeMs */
    assert_int_equal(kc_array(&r, fx, 4), n);
    for (int i = 0; i < n; i++) {
        int16_t err = kc_i16(&r);
        kc_str msg = kc_string(&r, fx);
        int32_t nm = kc_array(&r, fx, 4);
        assert_int_equal(err, errs ? errs[i] : KERR_NONE);
        assert_true(err == KERR_NONE ? msg.len == -1 : msg.len > 0);
        if (i) {
            size_t l = strlen(out);
            snprintf(out + l, cap - l, " |");
        }
        for (int32_t j = 0; j < nm; j++) {
            assert_int_equal(kc_i16(&r), KERR_NONE);
            assert_int_equal(kc_string(&r, fx).len, -1);
            int8_t type = kc_i8(&r);
            kc_str name = kc_string(&r, fx);
            int8_t pattern = ver >= 1 ? kc_i8(&r) : ACL_PAT_LITERAL;
            kc_str principal = kc_string(&r, fx), host = kc_string(&r, fx);
            int8_t op = kc_i8(&r), perm = kc_i8(&r);
            kc_skip_tags(&r, fx);
            assert_true(kc_ok(&r));
            row(out, cap, type, pattern, name, principal, host, op, perm);
        }
        kc_skip_tags(&r, fx);
    }
    ub_assert_done(&r, fx);
}

/* A filter for everything of one principal (v0 reads as LITERAL whatever is sent). */
static struct acl by_principal(const char *principal)
{
    return (struct acl){ACL_RES_ANY, NULL, ACL_PAT_ANY, principal, NULL, ACL_OP_ANY, ACL_PERM_ANY};
}

/* ---- tests */

/* Each version: create (including refused entries), describe, delete, describe. */
static void test_round_trip_versions(void **state)
{
    struct kf *f = *state;

    for (int16_t ver = 0; ver <= 3; ver++) {
        char p[32], lit[32], pre[32], out[1024], want[1024];
        snprintf(p, sizeof p, "User:v%d", ver);
        snprintf(lit, sizeof lit, "v%d-topic", ver);
        snprintf(pre, sizeof pre, "v%d-", ver);
        const struct acl acls[] = {
            {ACL_RES_TOPIC, lit, ACL_PAT_LITERAL, p, "*", ACL_OP_READ, ACL_PERM_ALLOW},
            {ACL_RES_GROUP, pre, ACL_PAT_PREFIXED, p, "10.0.0.1", ACL_OP_WRITE, ACL_PERM_DENY},
            {ACL_RES_CLUSTER, "other", ACL_PAT_LITERAL, p, "*", ACL_OP_ALTER, ACL_PERM_ALLOW},
            {ACL_RES_TOPIC, lit, ACL_PAT_LITERAL, p, "*", 99, ACL_PERM_ALLOW},
            {ACL_RES_TOPIC, lit, ACL_PAT_LITERAL, "nocolon", "*", ACL_OP_READ, ACL_PERM_ALLOW},
            {ACL_RES_ANY, lit, ACL_PAT_LITERAL, p, "*", ACL_OP_READ, ACL_PERM_ALLOW},
            {ACL_RES_TOPIC, lit, ACL_PAT_LITERAL, p, "*", ACL_OP_READ, ACL_PERM_ALLOW}, /* again */
        };
        const int16_t errs[] = {KERR_NONE,
                                KERR_NONE, /* v0: stored as LITERAL */
                                KERR_INVALID_REQUEST,
                                KERR_INVALID_REQUEST,
                                KERR_INVALID_REQUEST,
                                KERR_INVALID_REQUEST,
                                KERR_NONE};
        size_t before = acls_count(f->u.b.acls);
        create(f, ver, acls, 7, errs);
        assert_int_equal(acls_count(f->u.b.acls), before + 2);

        /* v0 carries no pattern type: the group rule went in as LITERAL */
        struct acl q = by_principal(p);
        assert_int_equal(describe(f, ver, &q, out, sizeof out), KERR_NONE);
        snprintf(want, sizeof want, "2/3/%s/%s/*/3/3 3/%d/%s/%s/10.0.0.1/4/2", lit, p,
                 ver >= 1 ? ACL_PAT_PREFIXED : ACL_PAT_LITERAL, pre, p);
        assert_string_equal(out, want);
        assert_true(acl_allowed(f->u.b.acls, p, "1.1.1.1", ACL_RES_TOPIC, lit, strlen(lit),
                                ACL_OP_DESCRIBE));

        /* delete the group rule by its host; then the rest */
        struct acl byhost = by_principal(p);
        byhost.host = "10.0.0.1";
        struct acl none = by_principal("User:nobody");
        struct acl del[] = {byhost, none};
        delete (f, ver, del, 2, NULL, out, sizeof out);
        snprintf(want, sizeof want, "3/%d/%s/%s/10.0.0.1/4/2 |",
                 ver >= 1 ? ACL_PAT_PREFIXED : ACL_PAT_LITERAL, pre, p);
        assert_string_equal(out, want);
        assert_int_equal(describe(f, ver, &q, out, sizeof out), KERR_NONE);
        snprintf(want, sizeof want, "2/3/%s/%s/*/3/3", lit, p);
        assert_string_equal(out, want);
        delete (f, ver, &q, 1, NULL, out, sizeof out);
        assert_string_equal(out, want);
        assert_int_equal(describe(f, ver, &q, out, sizeof out), KERR_NONE);
        assert_string_equal(out, "");
        assert_int_equal(acls_count(f->u.b.acls), before);
    }
}

/* v0 filters are LITERAL: a prefixed rule is neither listed nor deleted by them. */
static void test_v0_filters_literal(void **state)
{
    struct kf *f = *state;
    const struct acl acls[] = {
        {ACL_RES_TOPIC, "a.", ACL_PAT_PREFIXED, "User:a", "*", ACL_OP_READ, ACL_PERM_ALLOW},
        {ACL_RES_TOPIC, "a.", ACL_PAT_LITERAL, "User:a", "*", ACL_OP_READ, ACL_PERM_ALLOW},
    };
    struct acl q = by_principal("User:a");
    char out[512];

    create(f, 1, acls, 2, NULL);
    assert_int_equal(describe(f, 0, &q, out, sizeof out), KERR_NONE);
    assert_string_equal(out, "2/3/a./User:a/*/3/3");
    assert_int_equal(describe(f, 1, &q, out, sizeof out), KERR_NONE);
    assert_string_equal(out, "2/3/a./User:a/*/3/3 2/4/a./User:a/*/3/3");
    delete (f, 0, &q, 1, NULL, out, sizeof out);
    assert_string_equal(out, "2/3/a./User:a/*/3/3");
    assert_int_equal(acls_count(f->u.b.acls), 1);
}

/* MATCH: the rules that apply to one resource, from any principal; grouped by
 * resource in the response. */
static void test_describe_match(void **state)
{
    struct kf *f = *state;
    const struct acl acls[] = {
        {ACL_RES_TOPIC, "orders", ACL_PAT_LITERAL, "User:b", "*", ACL_OP_WRITE, ACL_PERM_ALLOW},
        {ACL_RES_TOPIC, "orders", ACL_PAT_LITERAL, "User:a", "*", ACL_OP_READ, ACL_PERM_ALLOW},
        {ACL_RES_TOPIC, "ord", ACL_PAT_PREFIXED, "User:a", "*", ACL_OP_ALL, ACL_PERM_DENY},
        {ACL_RES_TOPIC, "*", ACL_PAT_LITERAL, "User:*", "*", ACL_OP_DESCRIBE, ACL_PERM_ALLOW},
        {ACL_RES_TOPIC, "other", ACL_PAT_LITERAL, "User:a", "*", ACL_OP_READ, ACL_PERM_ALLOW},
        {ACL_RES_GROUP, "orders", ACL_PAT_LITERAL, "User:a", "*", ACL_OP_READ, ACL_PERM_ALLOW},
    };
    struct acl q = {ACL_RES_TOPIC, "orders", ACL_PAT_MATCH, NULL, NULL, ACL_OP_ANY, ACL_PERM_ANY};
    char out[1024];

    create(f, 3, acls, 6, NULL);
    for (int16_t ver = 1; ver <= 3; ver++) {
        assert_int_equal(describe(f, ver, &q, out, sizeof out), KERR_NONE);
        assert_string_equal(out, "2/3/*/User:*/*/8/3 2/3/orders/User:a/*/3/3 "
                                 "2/3/orders/User:b/*/4/3 2/4/ord/User:a/*/2/2");
    }
    /* unknown filter codes: a request-level INVALID_REQUEST */
    q.type = 0;
    assert_int_equal(describe(f, 2, &q, out, sizeof out), KERR_INVALID_REQUEST);
    assert_string_equal(out, "");
    q.type = ACL_RES_TOPIC;
    q.pattern = 5;
    assert_int_equal(describe(f, 2, &q, out, sizeof out), KERR_INVALID_REQUEST);
    q.pattern = ACL_PAT_ANY;
    q.perm = 0;
    assert_int_equal(describe(f, 2, &q, out, sizeof out), KERR_INVALID_REQUEST);
    /* known types without rules here (USER, 7) list nothing */
    q = by_principal(NULL);
    q.type = 7;
    assert_int_equal(describe(f, 3, &q, out, sizeof out), KERR_NONE);
    assert_string_equal(out, "");
}

/* Names that are too long or hold a NUL byte are refused entry by entry. */
static void test_bad_strings(void **state)
{
    struct kf *f = *state;
    char longname[ACL_NAME_MAX + 2];
    const char nul_name[] = "ab\0cd";
    kc_writer w;
    kc_reader r;

    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    const struct acl acls[] = {
        {ACL_RES_TOPIC, longname, ACL_PAT_LITERAL, "User:a", "*", ACL_OP_READ, ACL_PERM_ALLOW},
        {ACL_RES_TOPIC, "", ACL_PAT_LITERAL, "User:a", "*", ACL_OP_READ, ACL_PERM_ALLOW},
        {ACL_RES_TOPIC, "t", ACL_PAT_LITERAL, "User:a", "", ACL_OP_READ, ACL_PERM_ALLOW},
    };
    const int16_t errs[] = {KERR_INVALID_REQUEST, KERR_INVALID_REQUEST, KERR_INVALID_REQUEST};
    create(f, 2, acls, 3, errs);

    /* a NUL inside the resource name */
    req_begin(&w, K_CREATE_ACLS, 2);
    kc_w_array(&w, true, 1);
    kc_w_i8(&w, ACL_RES_TOPIC);
    kc_w_string(&w, true, nul_name, sizeof nul_name - 1);
    kc_w_i8(&w, ACL_PAT_LITERAL);
    kc_w_cstr(&w, true, "User:a");
    kc_w_cstr(&w, true, "*");
    kc_w_i8(&w, ACL_OP_READ);
    kc_w_i8(&w, ACL_PERM_ALLOW);
    kc_w_tags(&w, true);
    kc_w_tags(&w, true);
    call(f, &w, &r);
    kc_writer_free(&w);
    assert_int_equal(kc_i32(&r), 0);
    assert_int_equal(kc_array(&r, true, 3), 1);
    assert_int_equal(kc_i16(&r), KERR_INVALID_REQUEST);
    assert_true(kc_string(&r, true).len > 0);
    kc_skip_tags(&r, true);
    ub_assert_done(&r, true);
    assert_int_equal(acls_count(f->u.b.acls), 0);

    /* a delete filter with a name past the cap fails that filter only */
    struct acl q = by_principal(NULL);
    struct acl bad = q;
    char out[256];
    bad.name = longname;
    struct acl both[] = {bad, q};
    const int16_t derrs[] = {KERR_INVALID_REQUEST, KERR_NONE};
    delete (f, 3, both, 2, derrs, out, sizeof out);
    assert_string_equal(out, " |");
}

/* Listing needs DESCRIBE on the cluster (ALTER implies it), changing needs ALTER. */
static void test_authorization(void **state)
{
    struct kf *f = *state;
    const struct acl mine = {ACL_RES_TOPIC, "t",         ACL_PAT_LITERAL, "User:bob",
                             "*",           ACL_OP_READ, ACL_PERM_ALLOW};
    const struct acl cl_describe = {
        ACL_RES_CLUSTER, ACL_CLUSTER_NAME, ACL_PAT_LITERAL, "User:bob", "*",
        ACL_OP_DESCRIBE, ACL_PERM_ALLOW};
    const struct acl cl_alter = {
        ACL_RES_CLUSTER, ACL_CLUSTER_NAME, ACL_PAT_LITERAL, "User:bob", "*",
        ACL_OP_ALTER,    ACL_PERM_ALLOW};
    const int16_t denied[] = {KERR_CLUSTER_AUTHORIZATION_FAILED, KERR_CLUSTER_AUTHORIZATION_FAILED};
    struct acl any = by_principal(NULL);
    struct acl two[] = {any, any};
    char out[512];

    as(f, "User:bob");
    assert_int_equal(describe(f, 3, &any, out, sizeof out), KERR_CLUSTER_AUTHORIZATION_FAILED);
    const struct acl pair[] = {mine, cl_alter};
    create(f, 3, pair, 2, denied);
    delete (f, 2, two, 2, denied, out, sizeof out);
    assert_string_equal(out, " |");
    assert_int_equal(acls_count(f->u.b.acls), 0);

    as(f, "User:admin"); /* a super user */
    create(f, 3, &cl_describe, 1, NULL);
    as(f, "User:bob");
    assert_int_equal(describe(f, 3, &any, out, sizeof out), KERR_NONE);
    assert_string_equal(out, "4/3/kafka-cluster/User:bob/*/8/3");
    create(f, 3, &mine, 1, denied);

    as(f, "User:admin");
    create(f, 1, &cl_alter, 1, NULL);
    as(f, "User:bob");
    create(f, 3, &mine, 1, NULL);
    struct acl q = by_principal("User:bob");
    q.type = ACL_RES_TOPIC;
    delete (f, 3, &q, 1, NULL, out, sizeof out);
    assert_string_equal(out, "2/3/t/User:bob/*/3/3");

    /* from another host, a rule for 127.0.0.1 only does not apply */
    as(f, "User:admin");
    struct acl q2 = by_principal("User:bob");
    delete (f, 3, &q2, 1, NULL, out, sizeof out);
    struct acl local = cl_alter;
    local.host = "127.0.0.1";
    create(f, 3, &local, 1, NULL);
    as(f, "User:bob");
    create(f, 3, &mine, 1, NULL);
    snprintf(f->c.peer_ip, sizeof f->c.peer_ip, "127.0.0.2");
    create(f, 3, &mine, 1, denied);
}

/* A broker without an ACL table answers SECURITY_DISABLED. */
static void test_security_disabled(void **state)
{
    struct kf *f = *state;
    struct acls *saved = f->u.b.acls;
    const struct acl a = {ACL_RES_TOPIC, "t",         ACL_PAT_LITERAL, "User:a",
                          "*",           ACL_OP_READ, ACL_PERM_ALLOW};
    const int16_t dis[] = {KERR_SECURITY_DISABLED};
    struct acl q = by_principal(NULL);
    char out[64];

    f->u.b.acls = NULL;
    for (int16_t ver = 0; ver <= 3; ver++) {
        assert_int_equal(describe(f, ver, &q, out, sizeof out), KERR_SECURITY_DISABLED);
        create(f, ver, &a, 1, dis);
        delete (f, ver, &q, 1, dis, out, sizeof out);
    }
    f->u.b.acls = saved;
}

/* Too many entries in one request: every entry fails, nothing is stored. */
static void test_request_caps(void **state)
{
    struct kf *f = *state;
    enum { NF = 1001, NC = 10001 };
    struct acl *many = calloc(NC, sizeof *many);
    int16_t *errs = calloc(NC, sizeof *errs);
    char *out = malloc(1 << 16);

    assert_non_null(many);
    assert_non_null(errs);
    assert_non_null(out);
    for (int i = 0; i < NC; i++) {
        many[i] = (struct acl){ACL_RES_TOPIC, "t",         ACL_PAT_LITERAL, "User:a",
                               "*",           ACL_OP_READ, ACL_PERM_ALLOW};
        errs[i] = KERR_INVALID_REQUEST;
    }
    create(f, 2, many, NC, errs);
    assert_int_equal(acls_count(f->u.b.acls), 0);
    create(f, 2, many, NC - 1, NULL); /* the same rule 10,000 times: one rule */
    assert_int_equal(acls_count(f->u.b.acls), 1);
    for (int i = 0; i < NF; i++)
        many[i] = by_principal(NULL);
    delete (f, 2, many, NF, errs, out, 1 << 16);
    assert_int_equal(acls_count(f->u.b.acls), 1);
    free(many);
    free(errs);
    free(out);
}

/* Truncated frames are malformed; so are nulls where the schema forbids them. */
static void test_malformed(void **state)
{
    struct kf *f = *state;
    const struct acl a = {ACL_RES_TOPIC, "t",         ACL_PAT_PREFIXED, "User:a",
                          "*",           ACL_OP_READ, ACL_PERM_ALLOW};
    const struct acl q = {ACL_RES_ANY, "t", ACL_PAT_MATCH, "User:a", "*", ACL_OP_ANY, ACL_PERM_ANY};
    int saved = log_min_level;
    kc_writer w;
    kc_reader r;

    for (int16_t ver = 0; ver <= 3; ver++) {
        create_req(&w, ver, &a, 1);
        assert_prefixes_refused(f, &w);
        describe_req(&w, ver, &q);
        assert_prefixes_refused(f, &w);
        delete_req(&w, ver, &q, 1);
        assert_prefixes_refused(f, &w);
    }
    assert_int_equal(acls_count(f->u.b.acls), 0);

    log_min_level = LOG_ERROR;
    for (int16_t ver = 0; ver <= 3; ver++) {
        struct acl nul = a;
        nul.principal = NULL; /* CreateAcls strings are not nullable */
        create_req(&w, ver, &nul, 1);
        assert_int_equal(call_n(f, &w, w.len, &r), KAPI_EPARSE);
        kc_writer_free(&w);
        req_begin(&w, K_DELETE_ACLS, ver); /* a null Filters array */
        kc_w_array(&w, ver >= 2, -1);
        kc_w_tags(&w, ver >= 2);
        assert_int_equal(call_n(f, &w, w.len, &r), KAPI_EPARSE);
        kc_writer_free(&w);
        req_begin(&w, K_CREATE_ACLS, ver); /* more entries declared than bytes */
        kc_w_array(&w, ver >= 2, 1000);
        w_acl(&w, ver, &a);
        kc_w_tags(&w, ver >= 2);
        assert_int_equal(call_n(f, &w, w.len, &r), KAPI_EPARSE);
        kc_writer_free(&w);
    }
    log_min_level = saved;
    assert_int_equal(acls_count(f->u.b.acls), 0);
}

/* Rules made over the wire survive a restart. */
static void test_persisted(void **state)
{
    struct kf *f = *state;
    const struct acl acls[] = {
        {ACL_RES_TXN, "tx-", ACL_PAT_PREFIXED, "User:a", "*", ACL_OP_WRITE, ACL_PERM_ALLOW},
        {ACL_RES_TOPIC, "t", ACL_PAT_LITERAL, "User:a", "::1", ACL_OP_ALL, ACL_PERM_DENY},
    };
    struct acl q = by_principal(NULL);
    char before[512], after[512];

    create(f, 3, acls, 2, NULL);
    assert_int_equal(describe(f, 3, &q, before, sizeof before), KERR_NONE);
    acls_free(f->u.b.acls);
    f->u.b.acls = NULL;
    ub_restart(&f->u);
    f->u.b.acls = acls_open(f->u.b.store, "User:admin");
    assert_non_null(f->u.b.acls);
    assert_int_equal(describe(f, 3, &q, after, sizeof after), KERR_NONE);
    assert_string_equal(before, after);
    assert_string_equal(after, "2/3/t/User:a/::1/2/2 5/4/tx-/User:a/*/4/3");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v0_filters_literal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_describe_match, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_strings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_authorization, setup, teardown),
        cmocka_unit_test_setup_teardown(test_security_disabled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_caps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persisted, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
