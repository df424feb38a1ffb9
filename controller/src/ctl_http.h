/* ctl_http.h: a blocking HTTP client on one reusable curl easy handle (so connections
 * are kept alive), used by reconcile workers and the leader elector. Bodies are capped. */
#ifndef CTL_HTTP_H
#define CTL_HTTP_H

#include <stddef.h>
#include <curl/curl.h>

#define CTL_HTTP_MAX_BODY (256u << 20) /* a larger response is an error */

struct ctl_http_resp {
    long status; /* 0 when no HTTP answer came (connect error, timeout) */
    char *body;  /* NUL-terminated, may be NULL */
    size_t len;
    char err[CURL_ERROR_SIZE];
};

void ctl_http_resp_free(struct ctl_http_resp *r);
/* Performs one request on h, which the caller has set up with URL-independent options
 * (TLS, auth). headers may be NULL; body may be NULL. Returns 0 when an HTTP status came
 * back (whatever it is), -1 otherwise (r->err says why). */
int ctl_http_do(CURL *h, const char *method, const char *url, struct curl_slist *headers,
                const char *body, size_t body_len, long timeout_ms, struct ctl_http_resp *r);
/* The curl write callback that appends into a struct ctl_http_resp (capped). */
size_t ctl_http_sink(char *p, size_t sz, size_t n, void *arg);

#endif
