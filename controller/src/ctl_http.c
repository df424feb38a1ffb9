/* ctl_http.c: blocking requests on a reused easy handle. */
#include "ctl_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ctl_http_resp_free(struct ctl_http_resp *r)
{
    free(r->body);
    r->body = NULL;
    r->len = 0;
}

size_t ctl_http_sink(char *p, size_t sz, size_t n, void *arg)
{
    struct ctl_http_resp *r = arg;
    size_t add = sz * n;
    if (add > CTL_HTTP_MAX_BODY - r->len)
        return 0; /* aborts the transfer */
    char *nb = realloc(r->body, r->len + add + 1);
    if (!nb)
        return 0;
    memcpy(nb + r->len, p, add);
    r->body = nb;
    r->len += add;
    nb[r->len] = 0;
    return add;
}

int ctl_http_do(CURL *h, const char *method, const char *url, struct curl_slist *headers,
                const char *body, size_t body_len, long timeout_ms, struct ctl_http_resp *r)
{
    memset(r, 0, sizeof *r);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, ctl_http_sink);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->err);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 5000 ? timeout_ms : 5000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (!body && (!strcmp(method, "GET") || !strcmp(method, "DELETE"))) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, strcmp(method, "GET") ? method : NULL);
    } else {
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)(body ? body_len : 0));
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    }
    CURLcode rc = curl_easy_perform(h);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    if (rc != CURLE_OK) {
        if (!r->err[0])
            snprintf(r->err, sizeof r->err, "%s", curl_easy_strerror(rc));
        ctl_http_resp_free(r);
        return -1;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    return 0;
}
