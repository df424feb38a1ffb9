/* kapi_acl.c: the Kafka ACL APIs: DescribeAcls (29), CreateAcls (30) and DeleteAcls
 * (31), versions 0-3, flexible from v2. Version 0 has no pattern type: its rules and
 * filters are LITERAL, as Kafka reads them. Listing ACLs needs DESCRIBE on the cluster
 * and changing them ALTER; a broker without an ACL table answers SECURITY_DISABLED.
 *
 * CreateAcls and DeleteAcls read their request twice, as the admin APIs do: the first
 * pass checks the whole frame, so a malformed request changes nothing, and the second
 * acts on each entry and writes its result. */

#include "acl.h"
#include "auth.h"
#include "broker.h"
#include "kafka.h"
#include "topic.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    ACLK_MAX_CREATIONS = 10000, /* CreateAcls entries served in one request */
    ACLK_MAX_FILTERS = 1000,    /* DeleteAcls filters: each may scan every rule */
    ACLK_MIN_ENTRY = 8,         /* the smallest encoding of one binding or filter */
    ACLK_RES_MAX = 7,           /* ResourceType USER, the highest code Kafka defines */
};

#define ACLK_MSG 160

/* The seven fields every ACL API carries for a rule or a filter, as views into the
 * frame (ResourceType, ResourceName, PatternType, Principal, Host, Operation,
 * PermissionType). */
struct wire_acl {
    int8_t res_type, pattern, op, perm;
    kc_str name, principal, host;
};

/* A wire_acl as the C strings acl.h takes. */
struct acl_req {
    struct acl_binding b;
    char name[ACL_NAME_MAX + 1];
    char principal[ACL_PRINCIPAL_MAX + 1];
    char host[ACL_HOST_MAX + 1];
};

/* ---------------------------------------------------------------- helpers */

/* Writes a formatted message into msg and returns the Kafka error code err. */
static int16_t aclk_fail(int16_t err, char *msg, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int16_t aclk_fail(int16_t err, char *msg, size_t len, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, len, fmt, ap);
    va_end(ap);
    return err;
}

/* Writes an ErrorMessage: null when there is no error. */
static void aclk_w_msg(kc_writer *w, bool flex, int16_t err, const char *msg)
{
    kc_w_cstr(w, flex, err != KERR_NONE && msg[0] ? msg : NULL);
}

/* Reads a non-nullable ARRAY header; null is malformed. Returns the count (0 on error). */
static int32_t aclk_array(kc_reader *r, bool flex)
{
    int32_t n = kc_array(r, flex, ACLK_MIN_ENTRY);

    if (n < 0) {
        if (kc_ok(r))
            r->err = KC_EINVAL;
        return 0;
    }
    return n;
}

/* Reads the seven binding fields; v0 has no PatternType and means LITERAL. With
 * strict, the strings are non-nullable (CreateAcls) and null is malformed. */
static void read_acl(kc_reader *r, int16_t v, bool flex, bool strict, struct wire_acl *a)
{
    a->res_type = kc_i8(r);
    a->name = kc_string(r, flex);
    a->pattern = v >= 1 ? kc_i8(r) : (int8_t)ACL_PAT_LITERAL;
    a->principal = kc_string(r, flex);
    a->host = kc_string(r, flex);
    a->op = kc_i8(r);
    a->perm = kc_i8(r);
    kc_skip_tags(r, flex);
    if (strict && kc_ok(r) && (a->name.len < 0 || a->principal.len < 0 || a->host.len < 0))
        r->err = KC_EINVAL;
}

/* Copies s into buf (cap bytes with the NUL) and points *out at it; null stays NULL.
 * Returns -1 when it does not fit or holds a NUL byte. */
static int copy_str(kc_str s, char *buf, size_t cap, const char **out)
{
    *out = NULL;
    if (s.len < 0)
        return 0;
    if ((size_t)s.len >= cap || (s.len && memchr(s.p, 0, (size_t)s.len)))
        return -1;
    if (s.len)
        memcpy(buf, s.p, (size_t)s.len);
    buf[s.len] = 0;
    *out = buf;
    return 0;
}

/* Turns a wire binding into q. Returns KERR_NONE or INVALID_REQUEST (message in msg). */
static int16_t from_wire(const struct wire_acl *a, struct acl_req *q, char *msg, size_t len)
{
    q->b = (struct acl_binding){a->res_type, NULL, a->pattern, NULL, NULL, a->op, a->perm};
    if (copy_str(a->name, q->name, sizeof q->name, &q->b.res_name) < 0)
        return aclk_fail(KERR_INVALID_REQUEST, msg, len,
                         "resource name must be at most %d bytes, without NUL", ACL_NAME_MAX);
    if (copy_str(a->principal, q->principal, sizeof q->principal, &q->b.principal) < 0)
        return aclk_fail(KERR_INVALID_REQUEST, msg, len,
                         "principal must be at most %d bytes, without NUL", ACL_PRINCIPAL_MAX);
    if (copy_str(a->host, q->host, sizeof q->host, &q->b.host) < 0)
        return aclk_fail(KERR_INVALID_REQUEST, msg, len,
                         "host must be at most %d bytes, without NUL", ACL_HOST_MAX);
    return KERR_NONE;
}

/* Checks a filter's codes are ones Kafka defines (ANY and MATCH allowed). */
static int16_t filter_check(const struct acl_binding *f, char *msg, size_t len)
{
    if (f->res_type < ACL_RES_ANY || f->res_type > ACLK_RES_MAX)
        return aclk_fail(KERR_INVALID_REQUEST, msg, len, "unknown resource type %d", f->res_type);
    if (f->pattern < ACL_PAT_ANY || f->pattern > ACL_PAT_PREFIXED)
        return aclk_fail(KERR_INVALID_REQUEST, msg, len, "unknown pattern type %d", f->pattern);
    if (f->op < ACL_OP_ANY || f->op > ACL_OP_IDEMPOTENT_WRITE)
        return aclk_fail(KERR_INVALID_REQUEST, msg, len, "unknown operation %d", f->op);
    if (f->perm < ACL_PERM_ANY || f->perm > ACL_PERM_ALLOW)
        return aclk_fail(KERR_INVALID_REQUEST, msg, len, "unknown permission type %d", f->perm);
    return KERR_NONE;
}

/* Whether req may use the ACL APIs for op (DESCRIBE or ALTER on the cluster), and
 * whether the broker has ACLs at all. */
static int16_t access_check(struct kreq *req, int8_t op, char *msg, size_t len)
{
    if (!auth_allowed(req, ACL_RES_CLUSTER, ACL_CLUSTER_NAME, strlen(ACL_CLUSTER_NAME), op))
        return aclk_fail(KERR_CLUSTER_AUTHORIZATION_FAILED, msg, len, "not authorized to %s ACLs",
                         op == ACL_OP_DESCRIBE ? "describe" : "alter");
    if (!req->b->acls || !req->b->authorize) /* Kafka's answer without an authorizer */
        return aclk_fail(KERR_SECURITY_DISABLED, msg, len,
                         "No Authorizer is configured on the broker (set authorizer=acl)");
    return KERR_NONE;
}

/* ---------------------------------------------------------------- DescribeAcls (29) */

struct bind_vec {
    struct acl_binding *p; /* borrowed strings: valid until the table changes */
    size_t n, cap;
    bool oom;
};

static void da_collect(void *arg, const struct acl_binding *b)
{
    struct bind_vec *v = arg;

    if (v->n == v->cap) {
        size_t ncap = v->cap ? v->cap * 2 : 64;
        struct acl_binding *np = v->oom ? NULL : realloc(v->p, ncap * sizeof *np);

        if (!np) {
            v->oom = true;
            return;
        }
        v->p = np;
        v->cap = ncap;
    }
    v->p[v->n++] = *b;
}

/* Orders rules by resource (type, pattern, name), then the rest, so each resource's
 * rules sit together. */
static int da_cmp(const void *pa, const void *pb)
{
    const struct acl_binding *a = pa, *b = pb;
    int c;

    if (a->res_type != b->res_type)
        return a->res_type - b->res_type;
    if (a->pattern != b->pattern)
        return a->pattern - b->pattern;
    if ((c = strcmp(a->res_name, b->res_name)) || (c = strcmp(a->principal, b->principal)) ||
        (c = strcmp(a->host, b->host)))
        return c;
    if (a->perm != b->perm)
        return a->perm - b->perm;
    return a->op - b->op;
}

static bool same_resource(const struct acl_binding *a, const struct acl_binding *b)
{
    return a->res_type == b->res_type && a->pattern == b->pattern &&
           !strcmp(a->res_name, b->res_name);
}

/* Writes Resources[] from rules sorted by da_cmp. */
static void da_w_resources(kc_writer *w, int16_t v, bool flex, const struct bind_vec *r)
{
    size_t i, j, nres = 0;

    for (i = 0; i < r->n; i++)
        nres += i == 0 || !same_resource(&r->p[i - 1], &r->p[i]);
    kc_w_array(w, flex, (int32_t)nres);
    for (i = 0; i < r->n; i = j) {
        for (j = i + 1; j < r->n && same_resource(&r->p[i], &r->p[j]); j++)
            ;
        kc_w_i8(w, r->p[i].res_type);         /* ResourceType */
        kc_w_cstr(w, flex, r->p[i].res_name); /* ResourceName */
        if (v >= 1)
            kc_w_i8(w, r->p[i].pattern); /* PatternType */
        kc_w_array(w, flex, (int32_t)(j - i));
        for (size_t k = i; k < j; k++) {
            kc_w_cstr(w, flex, r->p[k].principal); /* Principal */
            kc_w_cstr(w, flex, r->p[k].host);      /* Host */
            kc_w_i8(w, r->p[k].op);                /* Operation */
            kc_w_i8(w, r->p[k].perm);              /* PermissionType */
            kc_w_tags(w, flex);
        }
        kc_w_tags(w, flex);
    }
}

int kapi_describe_acls(struct kreq *req, kc_writer *w)
{
    struct bind_vec r = {0};
    struct wire_acl a;
    struct acl_req q;
    char msg[ACLK_MSG] = "";
    int16_t err;

    read_acl(&req->r, req->api_version, req->flexible, false, &a);
    if (!kc_ok(&req->r))
        return KAPI_EPARSE;
    err = access_check(req, ACL_OP_DESCRIBE, msg, sizeof msg);
    if (err == KERR_NONE)
        err = from_wire(&a, &q, msg, sizeof msg);
    if (err == KERR_NONE)
        err = filter_check(&q.b, msg, sizeof msg);
    if (err == KERR_NONE) {
        acls_foreach(req->b->acls, &q.b, da_collect, &r);
        if (r.oom)
            err = aclk_fail(KERR_UNKNOWN_SERVER, msg, sizeof msg, "out of memory");
    }
    kc_w_i32(w, 0);   /* ThrottleTimeMs */
    kc_w_i16(w, err); /* ErrorCode */
    aclk_w_msg(w, req->flexible, err, msg);
    if (err != KERR_NONE)
        r.n = 0;
    if (r.n > 1)
        qsort(r.p, r.n, sizeof *r.p, da_cmp);
    da_w_resources(w, req->api_version, req->flexible, &r);
    kc_w_tags(w, req->flexible);
    free(r.p);
    return KAPI_DONE;
}

/* ---------------------------------------------------------------- CreateAcls (30) */

/* Pass 1. Returns the number of creations, or -1 for a malformed request. */
static int32_t ca_scan(struct kreq *req)
{
    struct wire_acl a;
    int32_t i, n = aclk_array(&req->r, req->flexible);

    for (i = 0; i < n && kc_ok(&req->r); i++)
        read_acl(&req->r, req->api_version, req->flexible, true, &a);
    kc_skip_tags(&req->r, req->flexible);
    return kc_ok(&req->r) ? n : -1;
}

static int16_t ca_create(struct kreq *req, const struct wire_acl *a, char *msg, size_t len)
{
    struct acl_req q;
    int16_t err = from_wire(a, &q, msg, len);

    if (err != KERR_NONE)
        return err;
    if (acl_binding_valid(&q.b, msg, len) < 0)
        return KERR_INVALID_REQUEST;
    if (acls_add(req->b->acls, &q.b) < 0)
        return aclk_fail(KERR_UNKNOWN_SERVER, msg, len, "could not store the ACL");
    return KERR_NONE;
}

int kapi_create_acls(struct kreq *req, kc_writer *w)
{
    kc_reader body = req->r, end;
    char all_msg[ACLK_MSG] = "";
    struct wire_acl a;
    int32_t i, n = ca_scan(req);
    int16_t all;

    if (n < 0)
        return KAPI_EPARSE;
    end = req->r;
    req->r = body;
    all = access_check(req, ACL_OP_ALTER, all_msg, sizeof all_msg);
    if (all == KERR_NONE && n > ACLK_MAX_CREATIONS)
        all = aclk_fail(KERR_INVALID_REQUEST, all_msg, sizeof all_msg,
                        "at most %d ACLs per request", ACLK_MAX_CREATIONS);
    kc_w_i32(w, 0); /* ThrottleTimeMs */
    aclk_array(&req->r, req->flexible);
    kc_w_array(w, req->flexible, n);
    for (i = 0; i < n; i++) {
        char msg[ACLK_MSG] = "";
        int16_t err = all;

        read_acl(&req->r, req->api_version, req->flexible, true, &a);
        if (err == KERR_NONE)
            err = ca_create(req, &a, msg, sizeof msg);
        kc_w_i16(w, err); /* ErrorCode */
        aclk_w_msg(w, req->flexible, err, all != KERR_NONE ? all_msg : msg);
        kc_w_tags(w, req->flexible);
    }
    kc_w_tags(w, req->flexible);
    req->r = end;
    return KAPI_DONE;
}

/* ---------------------------------------------------------------- DeleteAcls (31) */

/* Pass 1. Returns the number of filters, or -1 for a malformed request. */
static int32_t dla_scan(struct kreq *req)
{
    struct wire_acl a;
    int32_t i, n = aclk_array(&req->r, req->flexible);

    for (i = 0; i < n && kc_ok(&req->r); i++)
        read_acl(&req->r, req->api_version, req->flexible, false, &a);
    kc_skip_tags(&req->r, req->flexible);
    return kc_ok(&req->r) ? n : -1;
}

/* Where deleted rules are written as DeleteAclsMatchingAcl entries. */
struct dla_out {
    kc_writer *w;
    int16_t v;
    bool flex;
    int32_t n;
};

static void dla_w_match(void *arg, const struct acl_binding *b)
{
    struct dla_out *o = arg;

    kc_w_i16(o->w, KERR_NONE);             /* ErrorCode */
    kc_w_string(o->w, o->flex, NULL, -1);  /* ErrorMessage */
    kc_w_i8(o->w, b->res_type);            /* ResourceType */
    kc_w_cstr(o->w, o->flex, b->res_name); /* ResourceName */
    if (o->v >= 1)
        kc_w_i8(o->w, b->pattern);          /* PatternType */
    kc_w_cstr(o->w, o->flex, b->principal); /* Principal */
    kc_w_cstr(o->w, o->flex, b->host);      /* Host */
    kc_w_i8(o->w, b->op);                   /* Operation */
    kc_w_i8(o->w, b->perm);                 /* PermissionType */
    kc_w_tags(o->w, o->flex);
    o->n++;
}

/* Deletes what one filter matches, writing the rules into o. */
static int16_t dla_delete(struct kreq *req, const struct wire_acl *a, struct dla_out *o, char *msg,
                          size_t len)
{
    struct acl_req q;
    int16_t err = from_wire(a, &q, msg, len);

    if (err == KERR_NONE)
        err = filter_check(&q.b, msg, len);
    if (err == KERR_NONE && acls_delete(req->b->acls, &q.b, dla_w_match, o) < 0)
        err = aclk_fail(KERR_UNKNOWN_SERVER, msg, len, "could not delete the ACLs");
    return err;
}

int kapi_delete_acls(struct kreq *req, kc_writer *w)
{
    kc_reader body = req->r, end;
    char all_msg[ACLK_MSG] = "";
    struct wire_acl a;
    kc_writer matches;
    int32_t i, n = dla_scan(req);
    int16_t all;

    if (n < 0)
        return KAPI_EPARSE;
    end = req->r;
    req->r = body;
    all = access_check(req, ACL_OP_ALTER, all_msg, sizeof all_msg);
    if (all == KERR_NONE && n > ACLK_MAX_FILTERS)
        all = aclk_fail(KERR_INVALID_REQUEST, all_msg, sizeof all_msg,
                        "at most %d filters per request", ACLK_MAX_FILTERS);
    kc_writer_init(&matches, w->max);
    kc_w_i32(w, 0); /* ThrottleTimeMs */
    aclk_array(&req->r, req->flexible);
    kc_w_array(w, req->flexible, n);
    for (i = 0; i < n; i++) {
        struct dla_out o = {&matches, req->api_version, req->flexible, 0};
        char msg[ACLK_MSG] = "";
        int16_t err = all;

        read_acl(&req->r, req->api_version, req->flexible, false, &a);
        kc_writer_reset(&matches);
        if (err == KERR_NONE)
            err = dla_delete(req, &a, &o, msg, sizeof msg);
        kc_w_i16(w, err); /* ErrorCode */
        aclk_w_msg(w, req->flexible, err, all != KERR_NONE ? all_msg : msg);
        kc_w_array(w, req->flexible, o.n); /* MatchingAcls */
        kc_w_raw(w, matches.p, matches.len);
        kc_w_tags(w, req->flexible);
        if (matches.err)
            w->err = matches.err; /* past the response ceiling: the connection closes */
    }
    kc_w_tags(w, req->flexible);
    kc_writer_free(&matches);
    req->r = end;
    return KAPI_DONE;
}
