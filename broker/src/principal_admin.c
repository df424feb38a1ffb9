/* principal_admin.c: /v1/principals (principal_admin.h). A principal "alice" is the
 * SASL user alice and the ACL principal "User:alice"; PUT replaces both at once, which
 * is what the operator's AgentChannel needs: one idempotent call per agent. */
#include "principal_admin.h"

#include "acl.h"
#include "broker.h"
#include "principals.h"
#include "quota.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { PADMIN_MAX_ACLS = 1000 };

struct code_name {
    int8_t code;
    const char *name;
};

static const struct code_name res_names[] = {
    {ACL_RES_TOPIC, "topic"}, {ACL_RES_GROUP, "group"}, {ACL_RES_CLUSTER, "cluster"}};
static const struct code_name pat_names[] = {{ACL_PAT_LITERAL, "literal"},
                                             {ACL_PAT_PREFIXED, "prefixed"}};
static const struct code_name perm_names[] = {{ACL_PERM_ALLOW, "allow"}, {ACL_PERM_DENY, "deny"}};
static const struct code_name op_names[] = {
    {ACL_OP_ALL, "All"},
    {ACL_OP_READ, "Read"},
    {ACL_OP_WRITE, "Write"},
    {ACL_OP_CREATE, "Create"},
    {ACL_OP_DELETE, "Delete"},
    {ACL_OP_ALTER, "Alter"},
    {ACL_OP_DESCRIBE, "Describe"},
    {ACL_OP_CLUSTER_ACTION, "ClusterAction"},
    {ACL_OP_DESCRIBE_CONFIGS, "DescribeConfigs"},
    {ACL_OP_ALTER_CONFIGS, "AlterConfigs"},
    {ACL_OP_IDEMPOTENT_WRITE, "IdempotentWrite"},
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* The code named s (case-insensitive), or -1. */
static int code_of(const struct code_name *t, size_t n, const char *s)
{
    for (size_t i = 0; s && i < n; i++)
        if (!strcasecmp(t[i].name, s))
            return t[i].code;
    return -1;
}

static const char *name_of(const struct code_name *t, size_t n, int code)
{
    for (size_t i = 0; i < n; i++)
        if (t[i].code == code)
            return t[i].name;
    return "unknown";
}

static cJSON *error_body(int *status, int st, const char *code, const char *msg)
{
    *status = st;
    cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", msg);
    return o;
}

static void user_principal(const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "User:%s", name);
}

/* ---- GET ---- */

struct acl_collect {
    cJSON *arr;
};

/* Adds b to the array, merged into an entry with the same resource, pattern,
 * permission and host (a principal has few rules, so the scan is short). */
static void collect_acl(void *arg, const struct acl_binding *b)
{
    struct acl_collect *ac = arg;
    const char *res = name_of(res_names, NELEM(res_names), b->res_type);
    const char *pat = name_of(pat_names, NELEM(pat_names), b->pattern);
    const char *perm = name_of(perm_names, NELEM(perm_names), b->perm);
    const char *op = name_of(op_names, NELEM(op_names), b->op);
    cJSON *e;
    cJSON_ArrayForEach(e, ac->arr)
    {
        if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(e, "resource")), res) &&
            !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(e, "name")), b->res_name) &&
            !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(e, "pattern")), pat) &&
            !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(e, "permission")), perm) &&
            !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(e, "host")), b->host)) {
            cJSON_AddItemToArray(cJSON_GetObjectItem(e, "operations"), cJSON_CreateString(op));
            return;
        }
    }
    e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "resource", res);
    cJSON_AddStringToObject(e, "name", b->res_name);
    cJSON_AddStringToObject(e, "pattern", pat);
    cJSON *ops = cJSON_AddArrayToObject(e, "operations");
    cJSON_AddItemToArray(ops, cJSON_CreateString(op));
    cJSON_AddStringToObject(e, "permission", perm);
    cJSON_AddStringToObject(e, "host", b->host);
    cJSON_AddItemToArray(ac->arr, e);
}

static struct acl_binding principal_filter(const char *principal)
{
    return (struct acl_binding){.res_type = ACL_RES_ANY, .pattern = ACL_PAT_ANY,
                                .principal = principal, .op = ACL_OP_ANY,
                                .perm = ACL_PERM_ANY};
}

static cJSON *mechanisms_json(struct broker *b, const char *name)
{
    cJSON *m = cJSON_CreateArray();
    for (int i = 0; i < SCRAM_MECH_COUNT; i++)
        if (principals_cred(b->principals, name, i))
            cJSON_AddItemToArray(m, cJSON_CreateString(scram_mech_name(i)));
    return m;
}

cJSON *principal_admin_get(struct broker *b, const char *name)
{
    char principal[ACL_PRINCIPAL_MAX + 8];
    user_principal(name, principal, sizeof principal);
    struct acl_collect ac = {cJSON_CreateArray()};
    struct acl_binding f = principal_filter(principal);
    acls_foreach(b->acls, &f, collect_acl, &ac);
    int64_t unused[QUOTA_KINDS];
    if (!principals_exists(b->principals, name) && cJSON_GetArraySize(ac.arr) == 0 &&
        !quotas_get(b->quotas, principal, unused)) {
        cJSON_Delete(ac.arr);
        return NULL;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddStringToObject(o, "principal", principal);
    cJSON_AddItemToObject(o, "mechanisms", mechanisms_json(b, name));
    cJSON_AddItemToObject(o, "acls", ac.arr);
    int64_t rate[QUOTA_KINDS];
    bool own = quotas_get(b->quotas, principal, rate);
    cJSON *q = cJSON_AddObjectToObject(o, "quotas");
    cJSON_AddNumberToObject(q, "produce_bytes_per_second", (double)rate[QUOTA_PRODUCE]);
    cJSON_AddNumberToObject(q, "fetch_bytes_per_second", (double)rate[QUOTA_FETCH]);
    cJSON_AddBoolToObject(q, "override", own);
    return o;
}

/* ---- PUT ---- */

/* Decodes the base64 string s into out (at most cap bytes). Returns the length or -1. */
static int b64_field(const char *s, uint8_t *out, size_t cap)
{
    return s ? scram_b64_decode(s, strlen(s), out, cap) : -1;
}

/* Reads one pre-derived credential {mechanism, salt, iterations, stored_key,
 * server_key} (base64), as a client that derived it itself sends it, so the broker
 * never sees the password nor spends a PBKDF2 on its event loop. Returns the
 * mechanism, or -1 with msg set. */
static int parse_cred(const cJSON *e, struct scram_cred *c, char *msg, size_t cap)
{
    const char *mname = cJSON_GetStringValue(cJSON_GetObjectItem(e, "mechanism"));
    int mech = mname ? scram_mech_parse(mname, strlen(mname)) : -1;
    const cJSON *it = cJSON_GetObjectItem(e, "iterations");
    memset(c, 0, sizeof *c);
    c->key_len = mech == SCRAM_SHA_256 ? 32 : 64;
    int sl = b64_field(cJSON_GetStringValue(cJSON_GetObjectItem(e, "salt")), c->salt,
                       sizeof c->salt);
    int kl = b64_field(cJSON_GetStringValue(cJSON_GetObjectItem(e, "stored_key")), c->stored_key,
                       sizeof c->stored_key);
    int vl = b64_field(cJSON_GetStringValue(cJSON_GetObjectItem(e, "server_key")), c->server_key,
                       sizeof c->server_key);
    if (mech < 0 || !cJSON_IsNumber(it) || it->valuedouble < SCRAM_MIN_ITERATIONS ||
        it->valuedouble > SCRAM_MAX_ITERATIONS || sl < 8 || kl != c->key_len ||
        vl != c->key_len) {
        snprintf(msg, cap, "a credential is {mechanism: SCRAM-SHA-256|SCRAM-SHA-512, salt, "
                           "iterations (4096..1048576), stored_key, server_key} with base64 "
                           "keys of the mechanism's hash length");
        return -1;
    }
    c->salt_len = (uint8_t)sl;
    c->iterations = (int32_t)it->valuedouble;
    return mech;
}

struct acl_plan {
    struct acl_binding *rules;
    int n, cap;
};

static int plan_push(struct acl_plan *p, const struct acl_binding *b)
{
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 16;
        struct acl_binding *r = realloc(p->rules, (size_t)cap * sizeof *r);
        if (!r)
            return -1;
        p->rules = r;
        p->cap = cap;
    }
    p->rules[p->n++] = *b;
    return 0;
}

/* Reads one ACL entry into rules (one per operation). The strings borrow from the JSON.
 * Returns 0, or -1 with msg set. */
static int parse_acl(const cJSON *e, const char *principal, struct acl_plan *p, char *msg,
                     size_t cap)
{
    if (!cJSON_IsObject(e)) {
        snprintf(msg, cap, "each acl must be an object");
        return -1;
    }
    const cJSON *ops = cJSON_GetObjectItem(e, "operations");
    const char *host = cJSON_GetStringValue(cJSON_GetObjectItem(e, "host"));
    const char *pat = cJSON_GetStringValue(cJSON_GetObjectItem(e, "pattern"));
    const char *perm = cJSON_GetStringValue(cJSON_GetObjectItem(e, "permission"));
    struct acl_binding b = {
        .res_type = (int8_t)code_of(res_names, NELEM(res_names),
                                    cJSON_GetStringValue(cJSON_GetObjectItem(e, "resource"))),
        .res_name = cJSON_GetStringValue(cJSON_GetObjectItem(e, "name")),
        .pattern = (int8_t)(pat ? code_of(pat_names, NELEM(pat_names), pat) : ACL_PAT_LITERAL),
        .principal = principal,
        .host = host ? host : "*",
        .perm = (int8_t)(perm ? code_of(perm_names, NELEM(perm_names), perm) : ACL_PERM_ALLOW),
    };
    if (b.res_type < 0 || b.pattern < 0 || b.perm < 0) {
        snprintf(msg, cap, "resource must be topic, group or cluster; pattern literal or "
                           "prefixed; permission allow or deny");
        return -1;
    }
    if (b.res_type == ACL_RES_CLUSTER && !b.res_name)
        b.res_name = ACL_CLUSTER_NAME;
    if (!cJSON_IsArray(ops) || cJSON_GetArraySize(ops) == 0) {
        snprintf(msg, cap, "operations must be a non-empty array");
        return -1;
    }
    const cJSON *op;
    cJSON_ArrayForEach(op, ops)
    {
        int code = code_of(op_names, NELEM(op_names), cJSON_GetStringValue(op));
        if (code < 0) {
            snprintf(msg, cap, "unknown operation %.40s (want Read, Write, Create, Delete, "
                               "Alter, Describe, DescribeConfigs, AlterConfigs or All)",
                     cJSON_IsString(op) ? op->valuestring : "(not a string)");
            return -1;
        }
        b.op = (int8_t)code;
        char err[200];
        if (acl_binding_valid(&b, err, sizeof err) < 0) {
            snprintf(msg, cap, "%s", err);
            return -1;
        }
        if (plan_push(p, &b) < 0) {
            snprintf(msg, cap, "out of memory");
            return -1;
        }
    }
    return 0;
}

/* Replaces principal's ACLs with the plan's, in one atomic store write. Returns 0 or -1
 * (store error or out of memory; nothing changed). */
static int apply_acls(struct broker *b, const char *principal, const struct acl_plan *p)
{
    return acls_replace_principal(b->acls, principal, p->rules, p->n);
}

cJSON *principal_admin_put(struct broker *b, const char *name, const cJSON *body, int *status)
{
    char msg[256], principal[ACL_PRINCIPAL_MAX + 8];
    if (!principals_name_valid(name, strlen(name)))
        return error_body(status, 400, "invalid_name",
                          "a principal name is 1-255 printable bytes without ',' or '='");
    if (!cJSON_IsObject(body))
        return error_body(status, 400, "invalid_body", "the body must be a JSON object");
    const cJSON *pw = cJSON_GetObjectItem(body, "password");
    const cJSON *acls = cJSON_GetObjectItem(body, "acls");
    const cJSON *creds = cJSON_GetObjectItem(body, "credentials");
    struct scram_cred cred[SCRAM_MECH_COUNT];
    bool have[SCRAM_MECH_COUNT] = {false};
    if (creds && (!cJSON_IsArray(creds) || cJSON_GetArraySize(creds) > SCRAM_MECH_COUNT || pw))
        return error_body(status, 400, "invalid_credentials",
                          "credentials is an array of at most one per mechanism, and not "
                          "given with a password");
    const cJSON *ce;
    cJSON_ArrayForEach(ce, creds)
    {
        struct scram_cred c;
        int mech = parse_cred(ce, &c, msg, sizeof msg);
        if (mech < 0 || have[mech])
            return error_body(status, 400, "invalid_credentials",
                              mech < 0 ? msg : "one credential per mechanism");
        cred[mech] = c;
        have[mech] = true;
    }
    if (pw && (!cJSON_IsString(pw) || !*pw->valuestring ||
               strlen(pw->valuestring) > PRINCIPAL_PASSWORD_MAX))
        return error_body(status, 400, "invalid_password",
                          "password must be a non-empty string of at most 1024 bytes");
    if (acls && (!cJSON_IsArray(acls) || cJSON_GetArraySize(acls) > PADMIN_MAX_ACLS))
        return error_body(status, 400, "invalid_acls", "acls must be an array of at most 1000");
    const cJSON *quotas = cJSON_GetObjectItem(body, "quotas");
    int64_t rate[QUOTA_KINDS] = {-1, -1};
    static const char *const qkeys[QUOTA_KINDS] = {"produce_bytes_per_second",
                                                   "fetch_bytes_per_second"};
    if (quotas && !cJSON_IsObject(quotas))
        return error_body(status, 400, "invalid_quotas", "quotas must be an object");
    for (int k = 0; quotas && k < QUOTA_KINDS; k++) {
        const cJSON *v = cJSON_GetObjectItem(quotas, qkeys[k]);
        if (!v || cJSON_IsNull(v))
            continue;
        if (!cJSON_IsNumber(v) || v->valuedouble < -1 || v->valuedouble > 1e12 ||
            v->valuedouble != (double)(int64_t)v->valuedouble)
            return error_body(status, 400, "invalid_quotas",
                              "a quota is an integer number of bytes per second (0: no limit, "
                              "-1 or null: the broker default)");
        rate[k] = (int64_t)v->valuedouble;
    }
    if (!pw && !acls && !creds && !quotas)
        return error_body(status, 400, "invalid_body",
                          "give a password or credentials, acls, quotas, or some of them");
    user_principal(name, principal, sizeof principal);
    struct acl_plan plan = {0};
    const cJSON *e;
    cJSON_ArrayForEach(e, acls)
    {
        if (parse_acl(e, principal, &plan, msg, sizeof msg) < 0) {
            free(plan.rules);
            return error_body(status, 400, "invalid_acl", msg);
        }
    }
    bool existed = principals_exists(b->principals, name);
    int rc = 0;
    if (pw)
        rc = principals_set_password(b->principals, name, pw->valuestring,
                                     strlen(pw->valuestring));
    for (int m = 0; m < SCRAM_MECH_COUNT && rc == 0; m++)
        if (have[m])
            rc = principals_set_cred(b->principals, name, m, &cred[m]);
    if (rc == 0 && acls)
        rc = apply_acls(b, principal, &plan);
    if (rc == 0 && quotas)
        rc = quotas_set(b->quotas, principal, rate);
    free(plan.rules);
    if (rc < 0)
        return error_body(status, 500, "storage_error", "could not store the principal");
    *status = existed ? 200 : 201;
    return principal_admin_get(b, name);
}

int principal_admin_delete(struct broker *b, const char *name)
{
    char principal[ACL_PRINCIPAL_MAX + 8];
    user_principal(name, principal, sizeof principal);
    struct acl_binding f = principal_filter(principal);
    int n = acls_delete(b->acls, &f, NULL, NULL);
    bool had = principals_delete(b->principals, name) == 0;
    had |= quotas_delete(b->quotas, principal) == 0;
    return had || n > 0 ? 204 : 404;
}

/* ---- list ---- */

struct list_ctx {
    struct broker *b;
    cJSON *arr;
    const char *last;
    char last_buf[PRINCIPAL_NAME_MAX + 1];
};

static void list_one(void *arg, const char *name, const struct scram_cred *creds[SCRAM_MECH_COUNT])
{
    struct list_ctx *lc = arg;
    cJSON *o = cJSON_CreateObject(), *m = cJSON_AddArrayToObject(o, "mechanisms");
    cJSON_AddStringToObject(o, "name", name);
    for (int i = 0; i < SCRAM_MECH_COUNT; i++)
        if (creds[i])
            cJSON_AddItemToArray(m, cJSON_CreateString(scram_mech_name(i)));
    cJSON_AddItemToArray(lc->arr, o);
    snprintf(lc->last_buf, sizeof lc->last_buf, "%s", name);
}

cJSON *principal_admin_list(struct broker *b, const char *prefix, const char *after, int limit)
{
    struct list_ctx lc = {.b = b, .arr = cJSON_CreateArray()};
    int n = principals_list(b->principals, prefix, after, limit, list_one, &lc);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "principals", lc.arr);
    if (n == limit && n > 0)
        cJSON_AddStringToObject(o, "next", lc.last_buf);
    else
        cJSON_AddNullToObject(o, "next");
    return o;
}
