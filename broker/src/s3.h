/* s3.h: an S3 client on libcurl's multi interface, driven by the broker's event loop
 * (curl's sockets and timer are registered with ev), so requests never block the loop
 * and completions run on it like everything else. Path-style addressing, SigV4 via
 * CURLOPT_AWS_SIGV4, connection reuse, retries with jittered backoff on 5xx, SlowDown,
 * timeouts and cut connections. A body is handed over only when complete and of the
 * expected length (and ETag, when one is known), never partially. Only s3.c includes
 * curl in the broker. */
#ifndef SLUICE_S3_H
#define SLUICE_S3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ev_loop;
struct s3_client;

struct s3_config {
    char endpoint[256];      /* "http://127.0.0.1:4568"; empty: https://s3.<region>.amazonaws.com */
    char region[64];         /* "us-east-1" */
    char access_key[128];    /* empty: anonymous (unsigned) requests */
    char secret_key[256];
    int max_inflight;        /* concurrent requests per client (default 16) */
    int connect_timeout_ms;  /* default 5000 */
    int timeout_ms;          /* whole request, default 60000 */
    int max_retries;         /* default 5 (0 means the default; negative: no retries) */
    int backoff_base_ms;     /* first retry delay before jitter, default 100 */
};

/* Error classes reported to callers. */
enum s3_err {
    S3_OK = 0,
    S3_ENOTFOUND = -1,   /* 404 NoSuchKey / NoSuchBucket */
    S3_EAUTH = -2,       /* 403: wrong credentials, signature mismatch, access denied */
    S3_EINVAL = -3,      /* 400 or a response we cannot parse */
    S3_EUNAVAIL = -4,    /* 5xx, SlowDown, timeouts, cut connections after every retry */
    S3_ECHANGED = -5,    /* the object changed (ETag or size differs from what was asked) */
    S3_ENOMEM = -6,
};

struct s3_result {
    int err;                 /* enum s3_err */
    int http_status;         /* last HTTP status, 0 for a transport failure */
    const uint8_t *body;     /* GET: the bytes (valid only during the callback) */
    size_t len;
    const char *etag;        /* GET: the ETag header without quotes, or NULL */
    int64_t object_size;     /* GET: total object size from Content-Range/Length, or -1 */
    int attempts;
    double latency_ms;       /* of the successful attempt */
    const char *message;     /* a human-readable reason: S3 <Code>/<Message>, or curl's */
};

typedef void s3_get_fn(void *arg, const struct s3_result *r);

struct s3_object {
    char *key;
    int64_t size;
    char etag[72];
};

struct s3_list_page {
    int err;
    int http_status;
    const char *message;
    struct s3_object *objects; /* valid only during the callback */
    size_t n;
    bool truncated;
    const char *next_token;    /* NextContinuationToken, or NULL */
};

typedef void s3_list_fn(void *arg, const struct s3_list_page *page);

struct s3_stats {
    /* requests: HTTP attempts made; bytes: body bytes received (error bodies too);
     * errors: requests whose callback got an error; retries: attempts that were retried. */
    uint64_t requests, bytes, errors, retries;
    double latency_p99_ms; /* over the last 1024 successful attempts */
    /* Added beside the original four: */
    uint64_t gets, lists;  /* HTTP attempts by kind (requests = gets + lists + puts + deletes) */
    uint64_t puts, deletes;
    uint64_t connects;     /* new TCP connections opened (reuse keeps this low) */
    uint64_t etag_mismatches;
    int inflight;          /* requests holding a slot: running or backing off */
    int queued;            /* waiting in the FIFO for a slot */
};

/* Creates a client on loop. Returns NULL on bad configuration or curl failure. */
struct s3_client *s3_new(struct ev_loop *loop, const struct s3_config *cfg);
/* Cancels every request (their callbacks are not called) and frees the client. */
void s3_free(struct s3_client *c);

/* GET bucket/key, bytes [offset, offset+len) when len > 0 (a ranged GET), else the
 * whole object (then offset must be 0; a whole GET is capped at S3_MAX_GET_BODY). A range
 * that runs past the end of the object comes back shorter, with object_size telling the
 * real size; a range that starts past the end is S3_ECHANGED. expect_etag (quoted or
 * not), when non-NULL, must match the response's ETag or the result is S3_ECHANGED.
 * fn is called exactly once, on the loop (never from inside s3_get), after retries; it
 * may call s3_get, s3_list or s3_free. Returns 0, or -1 if the arguments are invalid or
 * the request could not be queued (then fn is not called). */
int s3_get(struct s3_client *c, const char *bucket, const char *key, int64_t offset, int64_t len,
           const char *expect_etag, s3_get_fn *fn, void *arg);

/* One page of ListObjectsV2 (list-type=2) under prefix, from continuation (NULL for the
 * first page), at most max_keys (<= 1000; 0 means 1000). fn is called exactly once, as
 * for s3_get. A truncated page always carries next_token. */
int s3_list(struct s3_client *c, const char *bucket, const char *prefix, const char *continuation,
            int max_keys, s3_list_fn *fn, void *arg);

/* PUT bucket/key with body[0..len) (at most S3_MAX_PUT_BODY), signed with the body's
 * SHA-256 and retried like a GET. body is borrowed: it must stay valid until fn runs (or
 * until s3_free). fn gets the result with the new object's etag and no body. Returns 0,
 * or -1 (then fn is not called). */
int s3_put(struct s3_client *c, const char *bucket, const char *key, const void *body, size_t len,
           s3_get_fn *fn, void *arg);
/* DELETE bucket/key; S3 answers success for a key that is already gone (some servers
 * say S3_ENOTFOUND, which callers treat the same). Returns 0 or -1 as for s3_put. */
int s3_delete(struct s3_client *c, const char *bucket, const char *key, s3_get_fn *fn, void *arg);

void s3_stats(const struct s3_client *c, struct s3_stats *out);

/* Parses a ListObjectsV2 XML body into page (objects heap-allocated; free with
 * s3_list_page_free). Exposed for unit tests and fuzzing. Returns 0 or -1. */
int s3_parse_list(const char *xml, size_t len, struct s3_list_page *page);
void s3_list_page_free(struct s3_list_page *page);

/* Splits "s3://bucket/prefix/..." into bucket and prefix. Returns 0 or -1. */
int s3_parse_uri(const char *uri, char *bucket, size_t blen, char *prefix, size_t plen);

/* Limits on what a server may send us. */
#define S3_MAX_KEY_LEN 1024               /* S3's own limit on a key, in bytes */
#define S3_MAX_LIST_BODY (16u << 20)      /* a ListObjectsV2 response body */
#define S3_MAX_LIST_OBJECTS 10000         /* entries in one page (S3 sends <= 1000) */
#define S3_MAX_GET_BODY ((size_t)1 << 30) /* a whole-object GET; bigger objects need ranges */
#define S3_MAX_PUT_BODY ((size_t)5 << 30) /* S3's limit on one PUT */

#endif
