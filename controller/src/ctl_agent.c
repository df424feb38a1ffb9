/* ctl_agent.c: AgentChannel resources. Each creates the agent's topics
 * <tenant>.<agentId>.<name>, a principal <tenant>.<agentId> whose ACLs cover only those
 * topics and the consumer groups named with its prefix "<tenant>.<agentId>.", and a
 * Secret (owned by the AgentChannel) with username, password, bootstrap and that group
 * prefix. A broker without /v1/principals (404) gets reason PrincipalsUnsupported;
 * topics and the Secret are still made. Topics dropped from the spec are deleted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_agent.h"
#include "ctl_rec.h"
#include "ctl_scram.h"
#include "ctl_topic.h"
#include "ctl_util.h"

#define AGENT_MAX_TOPICS 32
#define PASSWORD_LEN 32

static const char *const default_topics[] = {"input", "output", "state"};

/* Fills want[] from the spec. Returns the count, or -1 with err set. */
static int agent_wants(const cJSON *spec, struct ctl_topic_want *want, char short_names[][64],
                       char *err, size_t errcap)
{
    const char *agent = ctl_jstr(spec, "agentId"), *tenant = ctl_jstr(spec, "tenant");
    const cJSON *topics = cJSON_GetObjectItemCaseSensitive(spec, "topics"), *t;
    int n = 0;
    if (!agent || !*agent || !tenant || !*tenant) {
        snprintf(err, errcap, "spec.agentId and spec.tenant are required");
        return -1;
    }
    if (topics && !cJSON_IsArray(topics)) {
        snprintf(err, errcap, "spec.topics must be a list");
        return -1;
    }
    int count = topics ? cJSON_GetArraySize(topics) : 3;
    if (count > AGENT_MAX_TOPICS || count < 1) {
        snprintf(err, errcap, "spec.topics must have 1 to %d entries", AGENT_MAX_TOPICS);
        return -1;
    }
    for (int i = 0; i < count; i++) {
        t = topics ? cJSON_GetArrayItem(topics, i) : NULL;
        const char *nm = topics ? ctl_jstr(t, "name") : default_topics[i];
        const char *mode = ctl_jstr(t, "mode");
        bool ok = true;
        struct ctl_topic_want *w = &want[n];
        memset(w, 0, sizeof *w);
        if (!nm || !*nm || strlen(nm) >= 64) {
            snprintf(err, errcap, "spec.topics[%d].name is required (at most 63 bytes)", i);
            return -1;
        }
        for (int k = 0; k < n; k++)
            if (!strcmp(short_names[k], nm)) {
                snprintf(err, errcap, "spec.topics: %s given twice", nm);
                return -1;
            }
        snprintf(short_names[n], 64, "%s", nm);
        int len = snprintf(w->name, sizeof w->name, "%s.%s.%s", tenant, agent, nm);
        if (len >= (int)sizeof w->name || !ctl_topic_name_valid(w->name)) {
            snprintf(err, errcap, "topic name %.80s... is not a valid Kafka topic name", w->name);
            return -1;
        }
        snprintf(w->mode, sizeof w->mode, "%s", mode ? mode : "persistent");
        if (strcmp(w->mode, "memory") && strcmp(w->mode, "hybrid") &&
            strcmp(w->mode, "persistent") && strcmp(w->mode, "tiered")) {
            snprintf(err, errcap, "spec.topics[%d].mode %.32s is not a storage mode", i, w->mode);
            return -1;
        }
        w->partitions = ctl_jint(t, "partitions", 1, &ok);
        w->has_rms = t && cJSON_GetObjectItemCaseSensitive(t, "retentionMs");
        w->rms = ctl_jint(t, "retentionMs", -1, &ok);
        if (!ok || w->partitions < 1 || w->partitions > 100000 || (w->has_rms && w->rms < -1)) {
            snprintf(err, errcap, "spec.topics[%d]: partitions must be 1..100000 and "
                     "retentionMs an integer >= -1", i);
            return -1;
        }
        n++;
    }
    return n;
}

/* Returns the Secret name for the channel. */
static void agent_secret_name(const struct ctl_rec *r, const cJSON *spec, char *buf, size_t cap)
{
    const char *s = ctl_jstr(spec, "credentialsSecret");
    if (s && *s)
        snprintf(buf, cap, "%s", s);
    else
        snprintf(buf, cap, "%.230s-kafka", r->name);
}

static cJSON *b64_str(const char *s)
{
    char *e = ctl_b64_encode((const unsigned char *)s, strlen(s));
    cJSON *j = e ? cJSON_CreateString(e) : NULL;
    free(e);
    return j;
}

/* Reads the password from an existing Secret, or creates the Secret with a fresh one.
 * Returns 0 with password filled, or -1 with the outcome set. */
static int agent_secret(struct ctl_rec *r, const char *sname, const char *principal,
                        char *password, size_t cap, bool *created)
{
    *created = false;
    char path[1024];
    cJSON *sec = NULL;
    snprintf(path, sizeof path, "/api/v1/namespaces/%s/secrets/%s", r->ns, sname);
    long st = ctl_kube_json(&r->w->kc, "GET", path, NULL, NULL, &sec);
    if (st == 200) {
        const char *pw = ctl_jstr(cJSON_GetObjectItemCaseSensitive(sec, "data"), "password");
        size_t len = 0;
        unsigned char *raw = pw ? ctl_b64_decode(pw, strlen(pw), &len) : NULL;
        if (raw && len > 0 && len < cap) {
            memcpy(password, raw, len + 1);
            free(raw);
            cJSON_Delete(sec);
            return 0;
        }
        free(raw);
        cJSON_Delete(sec);
        ctl_rec_outcome(r, false, "SecretInvalid", "Secret %s has no usable password", sname);
        return -1;
    }
    cJSON_Delete(sec);
    if (st != 404) {
        ctl_rec_outcome(r, false, "KubernetesError", "reading Secret %s: HTTP %ld", sname, st);
        r->retry = true;
        return -1;
    }
    if (ctl_random_token(password, PASSWORD_LEN) < 0) {
        ctl_rec_outcome(r, false, "InternalError", "no randomness for a password");
        r->retry = true;
        return -1;
    }
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(r->obj, "metadata");
    sec = cJSON_CreateObject();
    cJSON *m = cJSON_AddObjectToObject(sec, "metadata");
    cJSON *owners = cJSON_AddArrayToObject(m, "ownerReferences"), *o = cJSON_CreateObject();
    cJSON *data = cJSON_AddObjectToObject(sec, "data");
    cJSON *labels = cJSON_AddObjectToObject(m, "labels");
    cJSON_AddItemToArray(owners, o);
    cJSON_AddStringToObject(sec, "apiVersion", "v1");
    cJSON_AddStringToObject(sec, "kind", "Secret");
    cJSON_AddStringToObject(sec, "type", "Opaque");
    cJSON_AddStringToObject(m, "name", sname);
    cJSON_AddStringToObject(m, "namespace", r->ns);
    cJSON_AddStringToObject(labels, "app.kubernetes.io/managed-by", "sluice-controller");
    cJSON_AddStringToObject(o, "apiVersion", CTL_GROUP_VERSION);
    cJSON_AddStringToObject(o, "kind", "AgentChannel");
    cJSON_AddStringToObject(o, "name", r->name);
    cJSON_AddStringToObject(o, "uid", ctl_jstr(md, "uid") ? ctl_jstr(md, "uid") : "");
    cJSON_AddBoolToObject(o, "controller", 1);
    cJSON_AddBoolToObject(o, "blockOwnerDeletion", 1);
    cJSON_AddItemToObject(data, "username", b64_str(principal));
    cJSON_AddItemToObject(data, "password", b64_str(password));
    cJSON_AddItemToObject(data, "bootstrap", b64_str(r->w->ctrl->cfg.bootstrap));
    char prefix[210];
    snprintf(prefix, sizeof prefix, "%s.", principal);
    cJSON_AddItemToObject(data, "groupPrefix", b64_str(prefix));
    cJSON *out = NULL;
    snprintf(path, sizeof path, "/api/v1/namespaces/%s/secrets", r->ns);
    st = ctl_kube_json(&r->w->kc, "POST", path, sec, NULL, &out);
    cJSON_Delete(sec);
    cJSON_Delete(out);
    if (st == 201 || st == 200) {
        ctl_rec_event(r, false, "SecretCreated", "created Secret %s for principal %s", sname,
                      principal);
        *created = true;
        return 0;
    }
    ctl_rec_outcome(r, false, "KubernetesError", "creating Secret %s: HTTP %ld", sname, st);
    r->retry = true;
    return -1;
}

/* Adds one ACL entry allowing ops (NULL-terminated) on resource name. */
static void acl_add(cJSON *acls, const char *resource, const char *name, const char *pattern,
                    const char *const *ops)
{
    cJSON *a = cJSON_CreateObject(), *o = cJSON_AddArrayToObject(a, "operations");
    cJSON_AddStringToObject(a, "resource", resource);
    cJSON_AddStringToObject(a, "name", name);
    cJSON_AddStringToObject(a, "pattern", pattern);
    cJSON_AddStringToObject(a, "permission", "allow");
    cJSON_AddStringToObject(a, "host", "*");
    for (int i = 0; ops[i]; i++)
        cJSON_AddItemToArray(o, cJSON_CreateString(ops[i]));
    cJSON_AddItemToArray(acls, a);
}

/* The whole ACL set goes in every PUT: the broker replaces the principal's ACLs with it.
 * The group ACL lets the agent consume its input with a group named, e.g.,
 * "<principal>.worker". */
cJSON *ctl_agent_principal_body(const char *principal, const char *password,
                                const struct ctl_topic_want *want, int n)
{
    static const char *const topic_ops[] = {"Read", "Write", "Describe", NULL};
    static const char *const group_ops[] = {"Read", "Describe", NULL};
    char prefix[210];
    cJSON *body = cJSON_CreateObject(), *acls = cJSON_AddArrayToObject(body, "acls");
    if (!acls || (password && !cJSON_AddStringToObject(body, "password", password))) {
        cJSON_Delete(body);
        return NULL;
    }
    for (int i = 0; i < n; i++)
        acl_add(acls, "topic", want[i].name, "literal", topic_ops);
    snprintf(prefix, sizeof prefix, "%s.", principal);
    acl_add(acls, "group", prefix, "prefixed", group_ops);
    return body;
}

static bool str_in(const cJSON *arr, const char *s)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        if (cJSON_IsString(it) && !strcmp(it->valuestring, s))
            return true;
    }
    return false;
}

/* True when ACL entries a and b (grouped by resource, name, pattern, permission and
 * host, as the broker shows them) are the same, operations compared as sets. */
static bool acl_equal(const cJSON *a, const cJSON *b)
{
    static const char *const keys[] = {"resource", "name", "pattern", "permission", "host", NULL};
    const cJSON *oa = cJSON_GetObjectItemCaseSensitive(a, "operations"), *op;
    const cJSON *ob = cJSON_GetObjectItemCaseSensitive(b, "operations");
    for (int i = 0; keys[i]; i++) {
        const char *x = ctl_jstr(a, keys[i]), *y = ctl_jstr(b, keys[i]);
        if (!x || !y || strcmp(x, y))
            return false;
    }
    if (cJSON_GetArraySize(oa) != cJSON_GetArraySize(ob))
        return false;
    cJSON_ArrayForEach(op, oa)
    {
        if (!cJSON_IsString(op) || !str_in(ob, op->valuestring))
            return false;
    }
    return true;
}

/* True when the broker's view of the principal (GET /v1/principals/{name}) has both
 * SCRAM credentials and exactly the ACLs of want (a PUT body). */
static bool principal_in_step(const cJSON *have, const cJSON *want)
{
    const cJSON *mechs = cJSON_GetObjectItemCaseSensitive(have, "mechanisms"), *w, *h;
    const cJSON *ha = cJSON_GetObjectItemCaseSensitive(have, "acls");
    const cJSON *wa = cJSON_GetObjectItemCaseSensitive(want, "acls");
    if (!str_in(mechs, "SCRAM-SHA-256") || !str_in(mechs, "SCRAM-SHA-512") ||
        cJSON_GetArraySize(ha) != cJSON_GetArraySize(wa))
        return false;
    cJSON_ArrayForEach(w, wa)
    {
        bool found = false;
        cJSON_ArrayForEach(h, ha) found = found || acl_equal(h, w);
        if (!found)
            return false;
    }
    return true;
}

/* PUTs body; with creds, SCRAM credentials derived here from password go with it, and a
 * broker that does not take them (no mechanisms in its answer) gets the password. */
static void principal_put(struct ctl_rec *r, const char *path, cJSON *body, bool creds,
                          const char *password, struct ctl_bresp *b)
{
    if (creds) {
        cJSON *c = ctl_scram_credentials(password);
        if (c)
            cJSON_AddItemToObject(body, "credentials", c);
        else
            cJSON_AddStringToObject(body, "password", password);
    }
    ctl_broker_call(&r->w->bc, "PUT", path, body, b);
    if (!creds || (b->status != 200 && b->status != 201) ||
        str_in(cJSON_GetObjectItemCaseSensitive(b->json, "mechanisms"), "SCRAM-SHA-512"))
        return;
    ctl_bresp_free(b);
    cJSON_DeleteItemFromObjectCaseSensitive(body, "credentials");
    cJSON_DeleteItemFromObjectCaseSensitive(body, "password");
    cJSON_AddStringToObject(body, "password", password);
    ctl_broker_call(&r->w->bc, "PUT", path, body, b);
}

/* Brings the principal in step: nothing when the broker already has its credentials and
 * exactly its ACLs; else a PUT of the ACLs, with credentials when the principal is new,
 * has none, or the Secret has just been made (the password is the controller's own: it
 * is never read back from the broker). Returns 1 when the broker serves principals, 0
 * when it does not (404), -1 on error (outcome set). */
static int agent_principal(struct ctl_rec *r, const char *principal, const char *password,
                           bool new_password, const struct ctl_topic_want *want, int n)
{
    char path[512], esc[300];
    struct ctl_bresp b;
    if (ctl_path_escape(principal, esc, sizeof esc) < 0)
        return -1;
    snprintf(path, sizeof path, "/v1/principals/%s", esc);
    cJSON *body = ctl_agent_principal_body(principal, NULL, want, n);
    if (!body) {
        ctl_rec_outcome(r, false, "InternalError", "out of memory");
        r->retry = true;
        return -1;
    }
    ctl_broker_call(&r->w->bc, "GET", path, NULL, &b);
    bool exists = b.status == 200;
    bool creds = new_password || !exists ||
                 !str_in(cJSON_GetObjectItemCaseSensitive(b.json, "mechanisms"), "SCRAM-SHA-512");
    bool in_step = exists && !new_password && principal_in_step(b.json, body);
    ctl_bresp_free(&b);
    int rc = 1;
    if (!in_step) {
        principal_put(r, path, body, creds, password, &b);
        if (b.status == 404)
            rc = 0;
        else if (b.status != 200 && b.status != 201 && b.status != 204) {
            ctl_rec_broker_error(r, "setting the principal", &b);
            rc = -1;
        } else
            ctl_info("AgentChannel %s/%s: principal %s set%s", r->ns, r->name, principal,
                     creds ? " with new credentials" : " (ACLs)");
        ctl_bresp_free(&b);
    }
    cJSON_Delete(body);
    return rc;
}

/* Deletes the broker topics the status lists that the spec no longer has. Returns 0,
 * or -1 with the outcome set. */
static int agent_prune(struct ctl_rec *r, const struct ctl_topic_want *want, int n)
{
    const cJSON *old = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(r->obj, "status"), "topics"), *t;
    char path[1024];
    struct ctl_bresp b;
    cJSON_ArrayForEach(t, old)
    {
        const char *tn = ctl_jstr(t, "topicName");
        int i = 0;
        while (tn && i < n && strcmp(want[i].name, tn))
            i++;
        if (!tn || i < n || ctl_broker_topic_path(tn, NULL, path, sizeof path) < 0)
            continue;
        ctl_broker_call(&r->w->bc, "DELETE", path, NULL, &b);
        if (b.status != 204 && b.status != 200 && b.status != 404) {
            ctl_rec_broker_error(r, "deleting a topic dropped from the spec", &b);
            ctl_bresp_free(&b);
            return -1;
        }
        ctl_bresp_free(&b);
        ctl_info("AgentChannel %s/%s: deleted broker topic %s (no longer in the spec)", r->ns,
                 r->name, tn);
        ctl_rec_event(r, false, "TopicDeleted", "deleted broker topic %s (no longer in the spec)",
                      tn);
    }
    return 0;
}

/* Deletes the channel's topics and principal, then drops the finalizer. */
static void agent_finalize(struct ctl_rec *r, const struct ctl_topic_want *want, int n,
                           const char *principal)
{
    char path[1024], esc[300];
    struct ctl_bresp b;
    if (!ctl_rec_has_finalizer(r))
        return;
    for (int i = 0; i < n; i++) {
        if (ctl_broker_topic_path(want[i].name, NULL, path, sizeof path) < 0)
            continue;
        ctl_broker_call(&r->w->bc, "DELETE", path, NULL, &b);
        if (b.status != 204 && b.status != 200 && b.status != 404) {
            ctl_rec_broker_error(r, "deleting a topic", &b);
            ctl_bresp_free(&b);
            return;
        }
        ctl_bresp_free(&b);
    }
    if (agent_prune(r, want, n) < 0) /* topics the status lists that the spec lost */
        return;
    if (ctl_path_escape(principal, esc, sizeof esc) == 0) {
        snprintf(path, sizeof path, "/v1/principals/%s", esc);
        ctl_broker_call(&r->w->bc, "DELETE", path, NULL, &b);
        ctl_bresp_free(&b); /* 404 (none, or unsupported) is fine */
    }
    if (ctl_rec_finalizer(r, false) < 0)
        return;
    r->reason[0] = 0;
}

void ctl_agent_reconcile(struct ctl_rec *r)
{
    struct ctl_topic_want want[AGENT_MAX_TOPICS];
    char names[AGENT_MAX_TOPICS][64], err[512], sname[256], principal[200];
    char password[PASSWORD_LEN * 2 + 1];
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(r->obj, "spec");
    int n = agent_wants(spec, want, names, err, sizeof err);
    snprintf(principal, sizeof principal, "%.90s.%.90s", ctl_jstr(spec, "tenant") ? ctl_jstr(spec, "tenant") : "",
             ctl_jstr(spec, "agentId") ? ctl_jstr(spec, "agentId") : "");
    if (ctl_rec_deleting(r)) {
        agent_finalize(r, want, n < 0 ? 0 : n, principal);
        return;
    }
    if (n < 0) {
        ctl_rec_outcome(r, false, "InvalidSpec", "%s", err);
        return;
    }
    if (ctl_rec_finalizer(r, true) != 0) {
        ctl_rec_outcome(r, false, "KubernetesError", "%s", r->message);
        return;
    }
    spec = cJSON_GetObjectItemCaseSensitive(r->obj, "spec"); /* r->obj was replaced */
    ctl_rec_carry_status(r); /* a failure below keeps the last topic list (for pruning) */
    cJSON *list = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        cJSON *tj = NULL;
        bool created = false;
        if (ctl_topic_ensure(r, &want[i], &tj, &created) < 0) {
            cJSON_Delete(list);
            return;
        }
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", names[i]);
        cJSON_AddStringToObject(e, "topicName", want[i].name);
        cJSON_AddStringToObject(e, "mode", want[i].mode);
        if (ctl_jstr(tj, "id"))
            cJSON_AddStringToObject(e, "topicId", ctl_jstr(tj, "id"));
        cJSON_AddItemToArray(list, e);
        cJSON_Delete(tj);
    }
    if (agent_prune(r, want, n) < 0) {
        cJSON_Delete(list);
        return;
    }
    ctl_status_put(r->status, "topics", list);
    ctl_status_put(r->status, "topicCount", cJSON_CreateNumber(n));
    agent_secret_name(r, spec, sname, sizeof sname);
    bool new_password = false;
    if (agent_secret(r, sname, principal, password, sizeof password, &new_password) < 0)
        return;
    char prefix[210];
    snprintf(prefix, sizeof prefix, "%s.", principal);
    ctl_status_put(r->status, "secretName", cJSON_CreateString(sname));
    ctl_status_put(r->status, "principal", cJSON_CreateString(principal));
    ctl_status_put(r->status, "groupPrefix", cJSON_CreateString(prefix));
    int pr = agent_principal(r, principal, password, new_password, want, n);
    memset(password, 0, sizeof password);
    if (pr < 0)
        return;
    cJSON *conds = cJSON_AddArrayToObject(r->status, "conditions");
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "type", "PrincipalReady");
    cJSON_AddStringToObject(c, "status", pr ? "True" : "False");
    cJSON_AddStringToObject(c, "reason", pr ? "Ready" : "PrincipalsUnsupported");
    cJSON_AddStringToObject(c, "message", pr ? "principal and ACLs set on the broker"
                                             : "the broker does not serve /v1/principals; ACLs "
                                               "are not enforced");
    cJSON_AddItemToArray(conds, c);
    if (pr)
        ctl_rec_outcome(r, true, "Ready", "%d topics, principal %s and Secret %s are ready", n,
                        principal, sname);
    else
        ctl_rec_outcome(r, true, "PrincipalsUnsupported",
                        "%d topics and Secret %s are ready; the broker does not serve "
                        "/v1/principals, so no ACLs are enforced", n, sname);
}
