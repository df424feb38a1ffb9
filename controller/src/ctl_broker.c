/* ctl_broker.c: the broker admin API client. */
#include "ctl_broker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_http.h"
#include "ctl_metrics.h"
#include "ctl_util.h"

int ctl_bclient_init(struct ctl_bclient *b, const char *base, const char *token, long timeout_ms)
{
    memset(b, 0, sizeof *b);
    b->base = base;
    b->token = token && *token ? token : NULL;
    b->timeout_ms = timeout_ms;
    b->h = curl_easy_init();
    if (!b->h)
        return -1;
    curl_easy_setopt(b->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(b->h, CURLOPT_USERAGENT, "sluice-controller/0.1");
    return 0;
}

void ctl_bclient_free(struct ctl_bclient *b)
{
    if (b->h)
        curl_easy_cleanup(b->h);
    b->h = NULL;
}

void ctl_bresp_free(struct ctl_bresp *r)
{
    cJSON_Delete(r->json);
    r->json = NULL;
}

int ctl_path_escape(const char *s, char *buf, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        bool plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                     (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.' || ch == '~';
        if (o + (plain ? 1 : 3) >= cap)
            return -1;
        if (plain)
            buf[o++] = (char)ch;
        else {
            buf[o++] = '%';
            buf[o++] = hex[ch >> 4];
            buf[o++] = hex[ch & 15];
        }
    }
    buf[o] = 0;
    return 0;
}

int ctl_broker_topic_path(const char *name, const char *suffix, char *buf, size_t cap)
{
    char esc[800];
    if (ctl_path_escape(name, esc, sizeof esc) < 0)
        return -1;
    int n = snprintf(buf, cap, "/v1/topics/%s%s", esc, suffix ? suffix : "");
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

void ctl_broker_call(struct ctl_bclient *b, const char *method, const char *path,
                     const cJSON *body, struct ctl_bresp *r)
{
    struct ctl_http_resp hr;
    struct curl_slist *hd = curl_slist_append(NULL, "Accept: application/json");
    char *url = ctl_sprintf("%s%s", b->base, path), *bs = NULL;
    memset(r, 0, sizeof *r);
    r->status = -1;
    if (body && hd)
        hd = curl_slist_append(hd, "Content-Type: application/json");
    if (b->token && hd) {
        char *a = ctl_sprintf("Authorization: Bearer %s", b->token);
        hd = a ? curl_slist_append(hd, a) : NULL;
        free(a);
    }
    if (body)
        bs = cJSON_PrintUnformatted(body);
    if (!hd || !url || (body && !bs)) {
        snprintf(r->message, sizeof r->message, "out of memory");
        goto out;
    }
    if (ctl_http_do(b->h, method, url, hd, bs, bs ? strlen(bs) : 0, b->timeout_ms, &hr) < 0) {
        snprintf(r->message, sizeof r->message, "%s", hr.err);
        ctl_metric_request(CTL_TGT_BROKER, method, 0);
        goto out;
    }
    ctl_metric_request(CTL_TGT_BROKER, method, hr.status);
    r->status = hr.status;
    if (hr.body)
        r->json = cJSON_ParseWithLength(hr.body, hr.len);
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(r->json, "error");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(err, "code");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(err, "message");
    if (cJSON_IsString(code))
        snprintf(r->code, sizeof r->code, "%s", code->valuestring);
    if (cJSON_IsString(msg))
        snprintf(r->message, sizeof r->message, "%s", msg->valuestring);
    else if (r->status >= 400)
        snprintf(r->message, sizeof r->message, "HTTP %ld", r->status);
    ctl_http_resp_free(&hr);
out:
    free(url);
    free(bs);
    curl_slist_free_all(hd);
}
