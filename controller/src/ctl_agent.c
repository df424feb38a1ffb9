/* ctl_agent.c: AgentChannel resources. Each creates the agent's topics
 * <tenant>.<agentId>.<name>, a principal whose ACLs cover only those topics, and a
 * Secret (owned by the AgentChannel) with username, password and bootstrap. A broker
 * without /v1/principals (404) gets reason PrincipalsUnsupported; topics and the Secret
 * are still made. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_rec.h"
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
                        char *password, size_t cap)
{
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
    cJSON *out = NULL;
    snprintf(path, sizeof path, "/api/v1/namespaces/%s/secrets", r->ns);
    st = ctl_kube_json(&r->w->kc, "POST", path, sec, NULL, &out);
    cJSON_Delete(sec);
    cJSON_Delete(out);
    if (st == 201 || st == 200) {
        ctl_rec_event(r, false, "SecretCreated", "created Secret %s for principal %s", sname,
                      principal);
        return 0;
    }
    ctl_rec_outcome(r, false, "KubernetesError", "creating Secret %s: HTTP %ld", sname, st);
    r->retry = true;
    return -1;
}

/* PUTs the principal. Returns 1 when the broker serves principals, 0 when it does not
 * (404), -1 on error (outcome set). */
static int agent_principal(struct ctl_rec *r, const char *principal, const char *password,
                           const struct ctl_topic_want *want, int n)
{
    char path[512], esc[300];
    struct ctl_bresp b;
    if (ctl_path_escape(principal, esc, sizeof esc) < 0)
        return -1;
    snprintf(path, sizeof path, "/v1/principals/%s", esc);
    cJSON *body = cJSON_CreateObject(), *acls = cJSON_AddArrayToObject(body, "acls");
    cJSON_AddStringToObject(body, "password", password);
    for (int i = 0; i < n; i++) {
        cJSON *a = cJSON_CreateObject(), *ops = cJSON_AddArrayToObject(a, "operations");
        cJSON_AddStringToObject(a, "resource", "topic");
        cJSON_AddStringToObject(a, "name", want[i].name);
        cJSON_AddStringToObject(a, "pattern", "literal");
        cJSON_AddItemToArray(ops, cJSON_CreateString("Read"));
        cJSON_AddItemToArray(ops, cJSON_CreateString("Write"));
        cJSON_AddItemToArray(ops, cJSON_CreateString("Describe"));
        cJSON_AddItemToArray(acls, a);
    }
    ctl_broker_call(&r->w->bc, "PUT", path, body, &b);
    cJSON_Delete(body);
    int rc = 1;
    if (b.status == 404)
        rc = 0;
    else if (b.status != 200 && b.status != 201 && b.status != 204) {
        ctl_rec_broker_error(r, "setting the principal", &b);
        rc = -1;
    }
    ctl_bresp_free(&b);
    return rc;
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
    cJSON *list = cJSON_AddArrayToObject(r->status, "topics");
    for (int i = 0; i < n; i++) {
        cJSON *tj = NULL;
        bool created = false;
        if (ctl_topic_ensure(r, &want[i], &tj, &created) < 0)
            return;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", names[i]);
        cJSON_AddStringToObject(e, "topicName", want[i].name);
        cJSON_AddStringToObject(e, "mode", want[i].mode);
        if (ctl_jstr(tj, "id"))
            cJSON_AddStringToObject(e, "topicId", ctl_jstr(tj, "id"));
        cJSON_AddItemToArray(list, e);
        cJSON_Delete(tj);
    }
    cJSON_AddNumberToObject(r->status, "topicCount", n);
    agent_secret_name(r, spec, sname, sizeof sname);
    if (agent_secret(r, sname, principal, password, sizeof password) < 0)
        return;
    cJSON_AddStringToObject(r->status, "secretName", sname);
    cJSON_AddStringToObject(r->status, "principal", principal);
    int pr = agent_principal(r, principal, password, want, n);
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
