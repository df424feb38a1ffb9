/* ctl_kube.h: how to reach the Kubernetes API: in-cluster service-account credentials or
 * a kubeconfig (current context: server, CA, client certificate or token), the curl
 * options that follow from them, and a blocking client for one thread. */
#ifndef CTL_KUBE_H
#define CTL_KUBE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <curl/curl.h>
#include <cjson/cJSON.h>

#include "ctl_http.h"

#define CTL_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

struct ctl_kauth {
    pthread_mutex_t mu; /* guards the token fields */
    char *server;       /* https://host:port, no trailing slash */
    char *ca_file;
    char *ca_pem; /* certificate-authority-data, decoded */
    size_t ca_len;
    bool insecure;
    char *token;      /* current bearer token, or NULL */
    char *token_file; /* re-read when its mtime changes, or on a 401 */
    struct timespec token_mtime;
    int64_t token_checked_ms;
    char *cert_file, *key_file;
    char *cert_pem, *key_pem; /* client-certificate-data / client-key-data, decoded */
    size_t cert_len, key_len;
    char *namespace; /* the context's or the pod's namespace, or NULL */
    char *sa_dir;    /* in-cluster: where the token, CA and namespace live */
};

/* Loads credentials: from kubeconfig_path if given; else in-cluster when
 * KUBERNETES_SERVICE_HOST is set; else $KUBECONFIG or ~/.kube/config. Returns 0, or -1
 * with a message in err. */
int ctl_kauth_load(struct ctl_kauth *a, const char *kubeconfig_path, char *err, size_t errcap);
/* Loads the kubeconfig text; dir resolves relative file paths. */
int ctl_kauth_from_kubeconfig(struct ctl_kauth *a, const char *text, size_t len,
                              const char *dir, char *err, size_t errcap);
/* In-cluster credentials from sa_dir (normally CTL_SA_DIR) and host/port. */
int ctl_kauth_in_cluster(struct ctl_kauth *a, const char *sa_dir, const char *host,
                         const char *port, char *err, size_t errcap);
void ctl_kauth_free(struct ctl_kauth *a);
/* Sets the TLS and client-certificate options of h. */
void ctl_kauth_setup(struct ctl_kauth *a, CURL *h);
/* Returns a header list with Accept, the bearer token (re-read from its file when that
 * changed) and content_type when not NULL. The caller frees it. */
struct curl_slist *ctl_kauth_headers(struct ctl_kauth *a, const char *content_type);
/* Forces the token to be re-read before the next request (after a 401). */
void ctl_kauth_invalidate(struct ctl_kauth *a);

/* A blocking client for one thread. */
struct ctl_kclient {
    struct ctl_kauth *auth;
    CURL *h;
    long timeout_ms;
};

int ctl_kclient_init(struct ctl_kclient *c, struct ctl_kauth *a, long timeout_ms);
void ctl_kclient_free(struct ctl_kclient *c);
/* Sends method path (e.g. "/api/v1/namespaces/x/events") with body (may be NULL) and
 * content type (default application/json). Retries once after a 401 with a re-read
 * token. Returns 0 when an HTTP status came back, -1 otherwise. */
int ctl_kube_request(struct ctl_kclient *c, const char *method, const char *path,
                     const char *body, const char *content_type, struct ctl_http_resp *r);
/* The same with a JSON body (NULL for none) and a parsed JSON answer in *out (NULL when
 * the body is not JSON). Returns the HTTP status, or -1 when none came. */
long ctl_kube_json(struct ctl_kclient *c, const char *method, const char *path,
                   const cJSON *body, const char *content_type, cJSON **out);
/* The message of a Kubernetes Status body, or a fallback, copied into buf. */
void ctl_kube_status_message(const cJSON *status, char *buf, size_t cap);

#endif
