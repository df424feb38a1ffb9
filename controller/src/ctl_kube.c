/* ctl_kube.c: Kubernetes credentials (in-cluster and kubeconfig) and the blocking client. */
#include "ctl_kube.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ctl_metrics.h"
#include "ctl_util.h"
#include "ctl_yaml.h"

#define TOKEN_MAX (64u << 10)
#define TOKEN_RECHECK_MS 1000

void ctl_kauth_free(struct ctl_kauth *a)
{
    free(a->server);
    free(a->ca_file);
    free(a->ca_pem);
    free(a->token);
    free(a->token_file);
    free(a->cert_file);
    free(a->key_file);
    free(a->cert_pem);
    free(a->key_pem);
    free(a->namespace);
    free(a->sa_dir);
    pthread_mutex_destroy(&a->mu);
    memset(a, 0, sizeof *a);
}

static void ka_init(struct ctl_kauth *a)
{
    memset(a, 0, sizeof *a);
    pthread_mutex_init(&a->mu, NULL);
}

/* Strips trailing whitespace (token files end with a newline). */
static void rtrim(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = 0;
}

/* Re-reads the token file if its mtime changed or force. Caller holds a->mu. */
static void ka_reload_token(struct ctl_kauth *a, bool force)
{
    struct stat st;
    if (!a->token_file || stat(a->token_file, &st) < 0)
        return;
    if (!force && a->token && st.st_mtim.tv_sec == a->token_mtime.tv_sec &&
        st.st_mtim.tv_nsec == a->token_mtime.tv_nsec)
        return;
    char *t = ctl_read_file(a->token_file, TOKEN_MAX, NULL);
    if (!t) {
        ctl_warn("cannot read token file %s: %s", a->token_file, strerror(errno));
        return;
    }
    rtrim(t);
    if (a->token && strcmp(a->token, t))
        ctl_info("service-account token rotated (re-read %s)", a->token_file);
    free(a->token);
    a->token = t;
    a->token_mtime = st.st_mtim;
}

int ctl_kauth_in_cluster(struct ctl_kauth *a, const char *sa_dir, const char *host,
                         const char *port, char *err, size_t errcap)
{
    ka_init(a);
    bool v6 = strchr(host, ':') != NULL;
    a->server = ctl_sprintf(v6 ? "https://[%s]:%s" : "https://%s:%s", host, port ? port : "443");
    a->sa_dir = strdup(sa_dir);
    a->token_file = ctl_sprintf("%s/token", sa_dir);
    a->ca_file = ctl_sprintf("%s/ca.crt", sa_dir);
    char *nsf = ctl_sprintf("%s/namespace", sa_dir);
    if (!a->server || !a->sa_dir || !a->token_file || !a->ca_file || !nsf) {
        free(nsf);
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    a->namespace = ctl_read_file(nsf, 1024, NULL);
    free(nsf);
    if (a->namespace)
        rtrim(a->namespace);
    ka_reload_token(a, true);
    if (!a->token) {
        snprintf(err, errcap, "in-cluster: cannot read %s", a->token_file);
        return -1;
    }
    return 0;
}

/* Finds the entry named name in the kubeconfig list (clusters, users, contexts) and
 * returns its member sub ("cluster", "user", "context"). */
static const cJSON *kc_named(const cJSON *root, const char *list, const char *name,
                             const char *sub)
{
    const cJSON *it, *arr = cJSON_GetObjectItemCaseSensitive(root, list);
    cJSON_ArrayForEach(it, arr)
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(it, "name");
        if (cJSON_IsString(n) && name && !strcmp(n->valuestring, name))
            return cJSON_GetObjectItemCaseSensitive(it, sub);
    }
    return NULL;
}

static const char *kc_str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

/* Makes a file path absolute against dir. */
static char *kc_path(const char *p, const char *dir)
{
    if (!p)
        return NULL;
    if (p[0] == '/' || !dir)
        return strdup(p);
    return ctl_sprintf("%s/%s", dir, p);
}

/* Decodes base64 data field k into *out. Returns 0 (also when absent), -1 when invalid. */
static int kc_data(const cJSON *o, const char *k, char **out, size_t *len, char *err,
                   size_t errcap)
{
    const char *v = kc_str(o, k);
    if (!v)
        return 0;
    *out = (char *)ctl_b64_decode(v, strlen(v), len);
    if (!*out) {
        snprintf(err, errcap, "kubeconfig: %s is not valid base64", k);
        return -1;
    }
    return 0;
}

/* Fills the cluster part: server, CA, insecure-skip-tls-verify. */
static int kc_cluster(struct ctl_kauth *a, const cJSON *cl, const char *dir, char *err,
                      size_t errcap)
{
    const char *server = kc_str(cl, "server");
    if (!server) {
        snprintf(err, errcap, "kubeconfig: the current cluster has no server");
        return -1;
    }
    a->server = strdup(server);
    if (a->server) {
        size_t n = strlen(a->server);
        while (n && a->server[n - 1] == '/')
            a->server[--n] = 0;
    }
    const char *ins = kc_str(cl, "insecure-skip-tls-verify");
    a->insecure = ins && !strcmp(ins, "true");
    a->ca_file = kc_path(kc_str(cl, "certificate-authority"), dir);
    return kc_data(cl, "certificate-authority-data", &a->ca_pem, &a->ca_len, err, errcap);
}

/* Fills the user part: token, tokenFile, client certificate and key. */
static int kc_user(struct ctl_kauth *a, const cJSON *u, const char *dir, char *err,
                   size_t errcap)
{
    const char *tok = kc_str(u, "token");
    if (tok)
        a->token = strdup(tok);
    a->token_file = kc_path(kc_str(u, "tokenFile"), dir);
    a->cert_file = kc_path(kc_str(u, "client-certificate"), dir);
    a->key_file = kc_path(kc_str(u, "client-key"), dir);
    if (kc_data(u, "client-certificate-data", &a->cert_pem, &a->cert_len, err, errcap) < 0 ||
        kc_data(u, "client-key-data", &a->key_pem, &a->key_len, err, errcap) < 0)
        return -1;
    if (cJSON_GetObjectItemCaseSensitive(u, "exec") || cJSON_GetObjectItemCaseSensitive(u, "auth-provider"))
        ctl_warn("kubeconfig: exec and auth-provider credentials are not supported; ignored");
    if (a->token_file)
        ka_reload_token(a, true);
    return 0;
}

int ctl_kauth_from_kubeconfig(struct ctl_kauth *a, const char *text, size_t len,
                              const char *dir, char *err, size_t errcap)
{
    ka_init(a);
    cJSON *root = ctl_yaml_parse(text, len, err, errcap);
    int rc = -1;
    if (!root)
        return -1;
    const char *cur = kc_str(root, "current-context");
    const cJSON *ctx = kc_named(root, "contexts", cur, "context");
    if (!ctx) {
        /* no current-context: a file with a single context is still usable */
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "contexts");
        if (cJSON_GetArraySize(arr) == 1)
            ctx = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(arr, 0), "context");
    }
    if (!ctx) {
        snprintf(err, errcap, "kubeconfig: current-context %.100s not found",
                 cur ? cur : "(unset)");
        goto out;
    }
    const cJSON *cl = kc_named(root, "clusters", kc_str(ctx, "cluster"), "cluster");
    const cJSON *u = kc_named(root, "users", kc_str(ctx, "user"), "user");
    if (!cl) {
        snprintf(err, errcap, "kubeconfig: cluster %.100s not found",
                 kc_str(ctx, "cluster") ? kc_str(ctx, "cluster") : "(unset)");
        goto out;
    }
    if (kc_cluster(a, cl, dir, err, errcap) < 0 || (u && kc_user(a, u, dir, err, errcap) < 0))
        goto out;
    if (kc_str(ctx, "namespace"))
        a->namespace = strdup(kc_str(ctx, "namespace"));
    if (!a->server) {
        snprintf(err, errcap, "out of memory");
        goto out;
    }
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

/* Loads the kubeconfig file at path. */
static int ka_kubeconfig_file(struct ctl_kauth *a, const char *path, char *err, size_t errcap)
{
    size_t len;
    char *text = ctl_read_file(path, CTL_YAML_MAX_BYTES, &len);
    if (!text) {
        ka_init(a);
        snprintf(err, errcap, "cannot read kubeconfig %.200s: %s", path, strerror(errno));
        return -1;
    }
    char *dir = strdup(path), *slash = dir ? strrchr(dir, '/') : NULL;
    if (slash)
        *slash = 0;
    int rc = ctl_kauth_from_kubeconfig(a, text, len, slash ? dir : ".", err, errcap);
    free(dir);
    free(text);
    return rc;
}

int ctl_kauth_load(struct ctl_kauth *a, const char *kubeconfig_path, char *err, size_t errcap)
{
    if (kubeconfig_path && *kubeconfig_path)
        return ka_kubeconfig_file(a, kubeconfig_path, err, errcap);
    const char *host = getenv("KUBERNETES_SERVICE_HOST");
    if (host && *host)
        return ctl_kauth_in_cluster(a, CTL_SA_DIR, host, getenv("KUBERNETES_SERVICE_PORT"),
                                    err, errcap);
    const char *env = getenv("KUBECONFIG");
    if (env && *env) {
        char first[4096];
        snprintf(first, sizeof first, "%s", env);
        char *colon = strchr(first, ':');
        if (colon)
            *colon = 0; /* the first file of a list */
        return ka_kubeconfig_file(a, first, err, errcap);
    }
    const char *home = getenv("HOME");
    char path[4096];
    snprintf(path, sizeof path, "%s/.kube/config", home ? home : "");
    return ka_kubeconfig_file(a, path, err, errcap);
}

void ctl_kauth_setup(struct ctl_kauth *a, CURL *h)
{
    if (a->insecure) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (a->ca_pem) {
        struct curl_blob b = {.data = a->ca_pem, .len = a->ca_len, .flags = CURL_BLOB_COPY};
        curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &b);
    } else if (a->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, a->ca_file);
    if (a->cert_pem) {
        struct curl_blob b = {.data = a->cert_pem, .len = a->cert_len, .flags = CURL_BLOB_COPY};
        curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &b);
        curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
    } else if (a->cert_file)
        curl_easy_setopt(h, CURLOPT_SSLCERT, a->cert_file);
    if (a->key_pem) {
        struct curl_blob b = {.data = a->key_pem, .len = a->key_len, .flags = CURL_BLOB_COPY};
        curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &b);
        curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
    } else if (a->key_file)
        curl_easy_setopt(h, CURLOPT_SSLKEY, a->key_file);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "sluice-controller/0.1");
}

struct curl_slist *ctl_kauth_headers(struct ctl_kauth *a, const char *content_type)
{
    struct curl_slist *l = curl_slist_append(NULL, "Accept: application/json");
    pthread_mutex_lock(&a->mu);
    int64_t now = ctl_now_ms();
    if (a->token_file && now - a->token_checked_ms >= TOKEN_RECHECK_MS) {
        a->token_checked_ms = now;
        ka_reload_token(a, false);
    }
    if (a->token && l) {
        char *h = ctl_sprintf("Authorization: Bearer %s", a->token);
        struct curl_slist *nl = h ? curl_slist_append(l, h) : NULL;
        free(h);
        if (!nl) {
            curl_slist_free_all(l);
            l = NULL;
        }
    }
    pthread_mutex_unlock(&a->mu);
    if (content_type && l) {
        char ct[128];
        snprintf(ct, sizeof ct, "Content-Type: %s", content_type);
        struct curl_slist *nl = curl_slist_append(l, ct);
        if (!nl) {
            curl_slist_free_all(l);
            l = NULL;
        } else
            l = nl;
    }
    return l;
}

void ctl_kauth_invalidate(struct ctl_kauth *a)
{
    pthread_mutex_lock(&a->mu);
    ka_reload_token(a, true);
    a->token_checked_ms = ctl_now_ms();
    pthread_mutex_unlock(&a->mu);
}

int ctl_kclient_init(struct ctl_kclient *c, struct ctl_kauth *a, long timeout_ms)
{
    c->auth = a;
    c->timeout_ms = timeout_ms;
    c->h = curl_easy_init();
    if (!c->h)
        return -1;
    ctl_kauth_setup(a, c->h);
    return 0;
}

void ctl_kclient_free(struct ctl_kclient *c)
{
    if (c->h)
        curl_easy_cleanup(c->h);
    c->h = NULL;
}

int ctl_kube_request(struct ctl_kclient *c, const char *method, const char *path,
                     const char *body, const char *content_type, struct ctl_http_resp *r)
{
    char *url = ctl_sprintf("%s%s", c->auth->server, path);
    int rc = -1;
    if (!url) {
        memset(r, 0, sizeof *r);
        snprintf(r->err, sizeof r->err, "out of memory");
        return -1;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        struct curl_slist *hd =
            ctl_kauth_headers(c->auth, body ? (content_type ? content_type : "application/json")
                                            : NULL);
        rc = ctl_http_do(c->h, method, url, hd, body, body ? strlen(body) : 0, c->timeout_ms, r);
        curl_slist_free_all(hd);
        ctl_metric_request(CTL_TGT_KUBE, method, rc == 0 ? r->status : 0);
        if (rc == 0 && r->status == 401 && attempt == 0 && c->auth->token_file) {
            ctl_warn("%s %s: 401, re-reading the token", method, path);
            ctl_http_resp_free(r);
            ctl_kauth_invalidate(c->auth);
            continue;
        }
        break;
    }
    free(url);
    return rc;
}

long ctl_kube_json(struct ctl_kclient *c, const char *method, const char *path,
                   const cJSON *body, const char *content_type, cJSON **out)
{
    struct ctl_http_resp r;
    char *b = body ? cJSON_PrintUnformatted(body) : NULL;
    *out = NULL;
    if (body && !b)
        return -1;
    int rc = ctl_kube_request(c, method, path, b, content_type, &r);
    free(b);
    if (rc < 0) {
        ctl_debug("%s %s: %s", method, path, r.err);
        return -1;
    }
    if (r.body)
        *out = cJSON_ParseWithLength(r.body, r.len);
    ctl_http_resp_free(&r);
    return r.status;
}

void ctl_kube_status_message(const cJSON *status, char *buf, size_t cap)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(status, "message");
    snprintf(buf, cap, "%s", cJSON_IsString(m) ? m->valuestring : "no message");
}
