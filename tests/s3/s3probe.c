/* s3probe.c: drives the broker's S3 client (broker/src/s3.c) on a real event loop from
 * the command line, for tests/e2e/test_s3_client.py and benchmarks. It prints one JSON
 * object on stdout. Built by the test, linked against the broker's objects.
 *
 *   s3probe [options] list BUCKET PREFIX        every page, following continuation tokens
 *   s3probe [options] get BUCKET KEY...         the keys concurrently (whole objects)
 *   s3probe [options] range BUCKET KEY OFF LEN  one ranged GET
 *   s3probe [options] pget BUCKET KEY SIZE CHUNK  parallel ranged GETs of one object
 *   s3probe [options] cancel BUCKET KEY N       start N GETs, free the client mid-flight
 * options: --endpoint URL --region R --access A --secret S --max-inflight N
 *          --retries N --backoff-ms N --timeout-ms N --connect-timeout-ms N
 *          --max-keys N --etag E --out FILE --repeat N --sequential 0|1 --hash 0|1
 */
#include "ev.h"
#include "log.h"
#include "s3.h"

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct probe {
    struct ev_loop *loop;
    struct s3_client *c;
    const char *bucket, *prefix, *etag, *out;
    int max_keys, pending, repeat, failed;
    bool sequential;
    bool hash; /* sha256 of each body in the output (--hash 0: not, for timing runs) */
    cJSON *root, *items;
    /* list */
    int pages;
    /* pget */
    uint8_t *whole;
    int64_t size, chunk;
    char **keys;
    int nkeys, next_key;
};

static void hex_sha256(const uint8_t *p, size_t n, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        sprintf(out + 2 * i, "%02x", md[i]);
}

static const char *err_name(int err)
{
    switch (err) {
    case S3_OK:
        return "OK";
    case S3_ENOTFOUND:
        return "ENOTFOUND";
    case S3_EAUTH:
        return "EAUTH";
    case S3_EINVAL:
        return "EINVAL";
    case S3_EUNAVAIL:
        return "EUNAVAIL";
    case S3_ECHANGED:
        return "ECHANGED";
    case S3_ENOMEM:
        return "ENOMEM";
    default:
        return "?";
    }
}

static cJSON *result_json(const struct probe *p, const struct s3_result *r, const char *key)
{
    cJSON *o = cJSON_CreateObject();
    char sha[65] = "";
    if (!r->err && p->hash)
        hex_sha256(r->body, r->len, sha);
    cJSON_AddStringToObject(o, "key", key);
    cJSON_AddStringToObject(o, "err", err_name(r->err));
    cJSON_AddNumberToObject(o, "http_status", r->http_status);
    cJSON_AddNumberToObject(o, "len", (double)r->len);
    cJSON_AddStringToObject(o, "sha256", sha);
    cJSON_AddStringToObject(o, "etag", r->etag ? r->etag : "");
    cJSON_AddNumberToObject(o, "object_size", (double)r->object_size);
    cJSON_AddNumberToObject(o, "attempts", r->attempts);
    cJSON_AddNumberToObject(o, "latency_ms", r->latency_ms);
    cJSON_AddStringToObject(o, "message", r->message ? r->message : "");
    return o;
}

static void done_one(struct probe *p)
{
    if (--p->pending == 0)
        ev_stop(p->loop);
}

static void on_list(void *arg, const struct s3_list_page *pg)
{
    struct probe *p = arg;
    p->pages++;
    cJSON_AddStringToObject(p->root, "err", err_name(pg->err));
    cJSON_AddNumberToObject(p->root, "http_status", pg->http_status);
    if (pg->err) {
        cJSON_AddStringToObject(p->root, "message", pg->message ? pg->message : "");
        ev_stop(p->loop);
        return;
    }
    for (size_t i = 0; i < pg->n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "key", pg->objects[i].key);
        cJSON_AddNumberToObject(o, "size", (double)pg->objects[i].size);
        cJSON_AddStringToObject(o, "etag", pg->objects[i].etag);
        cJSON_AddItemToArray(p->items, o);
    }
    if (pg->truncated) {
        cJSON_DeleteItemFromObject(p->root, "err");
        cJSON_DeleteItemFromObject(p->root, "http_status");
        if (s3_list(p->c, p->bucket, p->prefix, pg->next_token, p->max_keys, on_list, p) < 0) {
            cJSON_AddStringToObject(p->root, "err", "SUBMIT");
            ev_stop(p->loop);
        }
        return;
    }
    ev_stop(p->loop);
}

struct part {
    struct probe *p;
    int64_t off; /* pget: the range's offset; get: the key's index */
};

static int start_get(struct probe *p, int i);

static void on_get(void *arg, const struct s3_result *r)
{
    struct part *pt = arg;
    struct probe *p = pt->p;
    cJSON_AddItemToArray(p->items, result_json(p, r, p->keys[pt->off]));
    p->failed += r->err != 0;
    if (p->out && !r->err) {
        FILE *f = fopen(p->out, "wb");
        if (f) {
            fwrite(r->body, 1, r->len, f);
            fclose(f);
        }
    }
    free(pt);
    if (p->sequential && p->next_key < p->nkeys && start_get(p, p->next_key++) < 0)
        p->pending = 1;
    done_one(p);
}

static int start_get(struct probe *p, int i)
{
    struct part *pt = malloc(sizeof *pt);
    *pt = (struct part){p, i};
    if (s3_get(p->c, p->bucket, p->keys[i], 0, 0, p->etag, on_get, pt) == 0)
        return 0;
    free(pt);
    return -1;
}

static void on_part(void *arg, const struct s3_result *r)
{
    struct part *pt = arg;
    struct probe *p = pt->p;
    cJSON *o = result_json(p, r, "");
    cJSON_AddNumberToObject(o, "offset", (double)pt->off);
    cJSON_AddItemToArray(p->items, o);
    if (r->err)
        p->failed++;
    else if (pt->off + (int64_t)r->len <= p->size)
        memcpy(p->whole + pt->off, r->body, r->len);
    free(pt);
    done_one(p);
}

static void on_range(void *arg, const struct s3_result *r)
{
    struct probe *p = arg;
    cJSON_AddItemToArray(p->items, result_json(p, r, ""));
    p->failed += r->err != 0;
    done_one(p);
}

static void on_cancelled(void *arg, const struct s3_result *r)
{
    struct probe *p = arg;
    p->failed++; /* must never run */
}

static void cancel_timer(struct ev_loop *l, void *arg)
{
    struct probe *p = arg;
    s3_free(p->c);
    p->c = NULL;
    ev_stop(l);
}

static cJSON *stats_json(const struct s3_client *c)
{
    struct s3_stats st;
    s3_stats(c, &st);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "requests", (double)st.requests);
    cJSON_AddNumberToObject(o, "gets", (double)st.gets);
    cJSON_AddNumberToObject(o, "lists", (double)st.lists);
    cJSON_AddNumberToObject(o, "bytes", (double)st.bytes);
    cJSON_AddNumberToObject(o, "errors", (double)st.errors);
    cJSON_AddNumberToObject(o, "retries", (double)st.retries);
    cJSON_AddNumberToObject(o, "connects", (double)st.connects);
    cJSON_AddNumberToObject(o, "etag_mismatches", (double)st.etag_mismatches);
    cJSON_AddNumberToObject(o, "inflight", st.inflight);
    cJSON_AddNumberToObject(o, "queued", st.queued);
    cJSON_AddNumberToObject(o, "latency_p99_ms", st.latency_p99_ms);
    return o;
}

static int usage(void)
{
    fprintf(stderr, "usage: s3probe [options] list|get|range|pget|cancel ...\n");
    return 2;
}

static int run_pget(struct probe *p, char **argv)
{
    p->size = atoll(argv[0]);
    p->chunk = atoll(argv[1]);
    if (p->size <= 0 || p->chunk <= 0 || !(p->whole = calloc(1, (size_t)p->size)))
        return -1;
    for (int64_t off = 0; off < p->size; off += p->chunk) {
        struct part *pt = malloc(sizeof *pt);
        *pt = (struct part){p, off};
        int64_t n = p->size - off < p->chunk ? p->size - off : p->chunk;
        if (s3_get(p->c, p->bucket, p->keys[0], off, n, p->etag, on_part, pt) < 0) {
            free(pt);
            return -1;
        }
        p->pending++;
    }
    return 0;
}

static int run_cmd(struct probe *p, const char *cmd, int argc, char **argv)
{
    if (!strcmp(cmd, "list") && argc >= 1) {
        p->prefix = argc >= 2 ? argv[1] : "";
        return s3_list(p->c, p->bucket, p->prefix, NULL, p->max_keys, on_list, p);
    }
    if (!strcmp(cmd, "get") && argc >= 2) {
        /* keys[] is the argument keys, repeated --repeat times */
        int n = argc - 1;
        p->nkeys = n * p->repeat;
        p->keys = calloc((size_t)p->nkeys, sizeof *p->keys);
        for (int k = 0; k < p->nkeys; k++)
            p->keys[k] = argv[1 + k % n];
        p->pending = p->nkeys;
        p->next_key = p->sequential ? 1 : p->nkeys;
        for (int k = 0; k < p->next_key; k++)
            if (start_get(p, k) < 0)
                return -1;
        return 0;
    }
    if (!strcmp(cmd, "range") && argc == 4) {
        p->pending = 1;
        return s3_get(p->c, p->bucket, argv[1], atoll(argv[2]), atoll(argv[3]), p->etag, on_range,
                      p);
    }
    if (!strcmp(cmd, "pget") && argc == 4) {
        p->keys = calloc(1, sizeof *p->keys);
        p->keys[0] = argv[1];
        return run_pget(p, argv + 2);
    }
    if (!strcmp(cmd, "cancel") && argc == 3) {
        for (int i = 0; i < atoi(argv[2]); i++)
            if (s3_get(p->c, p->bucket, argv[1], 0, 0, NULL, on_cancelled, p) < 0)
                return -1;
        return 0;
    }
    return -2;
}

int main(int argc, char **argv)
{
    struct s3_config cfg = {0};
    struct probe p = {.max_keys = 1000, .repeat = 1, .hash = true};
    int i = 1;
    for (; i + 1 < argc && !strncmp(argv[i], "--", 2); i += 2) {
        const char *o = argv[i] + 2, *v = argv[i + 1];
        if (!strcmp(o, "endpoint"))
            snprintf(cfg.endpoint, sizeof cfg.endpoint, "%s", v);
        else if (!strcmp(o, "region"))
            snprintf(cfg.region, sizeof cfg.region, "%s", v);
        else if (!strcmp(o, "access"))
            snprintf(cfg.access_key, sizeof cfg.access_key, "%s", v);
        else if (!strcmp(o, "secret"))
            snprintf(cfg.secret_key, sizeof cfg.secret_key, "%s", v);
        else if (!strcmp(o, "max-inflight"))
            cfg.max_inflight = atoi(v);
        else if (!strcmp(o, "retries"))
            cfg.max_retries = atoi(v);
        else if (!strcmp(o, "backoff-ms"))
            cfg.backoff_base_ms = atoi(v);
        else if (!strcmp(o, "timeout-ms"))
            cfg.timeout_ms = atoi(v);
        else if (!strcmp(o, "connect-timeout-ms"))
            cfg.connect_timeout_ms = atoi(v);
        else if (!strcmp(o, "max-keys"))
            p.max_keys = atoi(v);
        else if (!strcmp(o, "etag"))
            p.etag = v;
        else if (!strcmp(o, "out"))
            p.out = v;
        else if (!strcmp(o, "repeat"))
            p.repeat = atoi(v);
        else if (!strcmp(o, "sequential"))
            p.sequential = atoi(v) != 0;
        else if (!strcmp(o, "hash"))
            p.hash = atoi(v) != 0;
        else if (!strcmp(o, "log-level"))
            log_min_level = log_parse_level(v);
        else
            return usage();
    }
    if (argc - i < 2)
        return usage();
    const char *cmd = argv[i];
    p.bucket = argv[i + 1];
    p.loop = ev_new();
    p.c = p.loop ? s3_new(p.loop, &cfg) : NULL;
    if (!p.c) {
        printf("{\"err\":\"NEW\"}\n");
        return 1;
    }
    p.root = cJSON_CreateObject();
    p.items = cJSON_AddArrayToObject(p.root, strcmp(cmd, "list") ? "results" : "objects");
    struct ev_timer cancel;
    ev_timer_init(&cancel, cancel_timer, &p);
    int64_t t0 = ev_now_us();
    int rc = run_cmd(&p, cmd, argc - i - 1, argv + i + 1);
    if (rc == -2)
        return usage();
    if (rc < 0) {
        cJSON_AddStringToObject(p.root, "err", "SUBMIT");
    } else {
        if (!strcmp(cmd, "cancel"))
            ev_timer_start(p.loop, &cancel, 30000);
        ev_run(p.loop);
    }
    cJSON_AddNumberToObject(p.root, "elapsed_ms", (double)(ev_now_us() - t0) / 1000.0);
    cJSON_AddNumberToObject(p.root, "failed", p.failed);
    if (!strcmp(cmd, "list"))
        cJSON_AddNumberToObject(p.root, "pages", p.pages);
    if (p.whole && !p.failed) {
        char sha[65];
        hex_sha256(p.whole, (size_t)p.size, sha);
        cJSON_AddStringToObject(p.root, "sha256", sha);
    }
    if (p.c)
        cJSON_AddItemToObject(p.root, "stats", stats_json(p.c));
    char *s = cJSON_PrintUnformatted(p.root);
    printf("%s\n", s);
    free(s);
    cJSON_Delete(p.root);
    free(p.whole);
    free(p.keys);
    s3_free(p.c);
    ev_free(p.loop);
    return 0;
}
