/* ctl_broker.h: a blocking client for the broker's admin HTTP API (one per worker). It
 * returns the HTTP status, the parsed JSON answer and, for errors, the broker's error
 * code and message ({"error":{"code","message"}}). */
#ifndef CTL_BROKER_H
#define CTL_BROKER_H

#include <curl/curl.h>
#include <cjson/cJSON.h>

struct ctl_bclient {
    CURL *h;
    const char *base;  /* http://host:port */
    const char *token; /* bearer token or NULL */
    long timeout_ms;
};

struct ctl_bresp {
    long status;  /* -1: the broker could not be reached */
    cJSON *json;  /* parsed body or NULL */
    char code[64];
    char message[512];
};

int ctl_bclient_init(struct ctl_bclient *b, const char *base, const char *token, long timeout_ms);
void ctl_bclient_free(struct ctl_bclient *b);
/* Calls method path with body (may be NULL). Always fills r; free with ctl_bresp_free. */
void ctl_broker_call(struct ctl_bclient *b, const char *method, const char *path,
                     const cJSON *body, struct ctl_bresp *r);
void ctl_bresp_free(struct ctl_bresp *r);
/* Writes "/v1/topics/<name escaped><suffix>" into buf. */
int ctl_broker_topic_path(const char *name, const char *suffix, char *buf, size_t cap);
/* Escapes one path segment into buf. */
int ctl_path_escape(const char *s, char *buf, size_t cap);

#endif
