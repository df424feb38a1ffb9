/* s3.c: the S3 client behind s3.h. curl's multi interface is driven from the broker's
 * event loop: curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION) and when to
 * wake it (CURLMOPT_TIMERFUNCTION), and completions are collected with
 * curl_multi_info_read after each curl_multi_socket_action. No threads. URLs and XML
 * are s3_parse.c's. The only file in the broker that includes curl. */
#include "s3.h"

#include "ev.h"
#include "s3_parse.h"
#include "kcodec.h"
#include "log.h"

#include <curl/curl.h>
#include <openssl/sha.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* SHA-256 of the empty body: GET, LIST and DELETE send none (a PUT signs its own). */
#define S3_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

#define S3_MAX_ERROR_BODY (64u << 10) /* kept of a failure's body; the rest is dropped */
#define S3_MAX_TOKEN 4096             /* a continuation token we send */
#define S3_MAX_QUEUED 100000          /* requests waiting for a slot */
#define S3_LAT_RING 1024              /* recent latencies kept for the p99 */
#define S3_BACKOFF_CAP_MS 20000
#define S3_RECV_BUFFER (256 << 10) /* curl's receive buffer per transfer */
#define S3_STALL_S 15

/* --- the client ---------------------------------------------------------------------- */

enum req_kind { REQ_GET, REQ_LIST, REQ_PUT, REQ_DELETE };

/* One caller request, across its attempts. It holds a slot from the moment it starts
 * until its callback has run, backoff included, so max_inflight bounds the load we put
 * on S3 while it is struggling. */
struct s3_req {
    struct s3_client *c;
    struct s3_req *prev, *next; /* c->all */
    struct s3_req *qnext;       /* c->qhead FIFO, while waiting for a slot */
    enum req_kind kind;
    char *url;
    struct curl_slist *hdrs;
    int64_t offset, len; /* GET: len > 0 for a ranged GET */
    char *expect_etag;   /* unquoted, or NULL */
    const uint8_t *put_body; /* PUT: borrowed from the caller until its callback */
    size_t put_len, put_pos;
    s3_get_fn *get_fn;
    s3_list_fn *list_fn;
    void *arg;
    CURL *easy;            /* while an attempt runs */
    struct ev_timer retry; /* while backing off */
    int attempts;
    int64_t start_us;
    /* The current attempt's response. */
    int status;
    int64_t content_length;              /* -1: absent */
    int64_t cr_first, cr_last, cr_total; /* Content-Range; cr_first -1: absent, cr_total -1: '*' */
    char etag[128];
    kc_writer body;
    int64_t recv;           /* body bytes received */
    int64_t win_lo, win_hi; /* GET: the body bytes we keep */
    bool sized;             /* the window has been set up for this response */
    int abort_err;          /* set by a callback that stopped the transfer */
    bool abort_retry;
    double latency_ms;
    char errbuf[CURL_ERROR_SIZE];
    char msg[640]; /* the last failure's reason */
};

struct s3_client {
    struct ev_loop *loop;
    struct s3_config cfg;
    char endpoint[256]; /* no trailing '/' */
    char sigv4[96];
    CURLM *multi;
    struct ev_timer timer; /* curl's */
    struct s3_req *all;
    struct s3_req *qhead, *qtail;
    size_t nqueued;
    int active;
    CURL **pool; /* idle easy handles */
    int npool;
    int *fds; /* sockets registered with the loop */
    size_t nfds, capfds;
    uint64_t rng;
    int depth;  /* > 0 while one of our entry points runs */
    bool dying; /* s3_free was called from a callback */
    struct s3_stats st;
    double lat[S3_LAT_RING];
    size_t nlat, latpos;
};

static void client_destroy(struct s3_client *c);

/* xorshift64*: jitter needs no more than this. */
static uint64_t rng_next(struct s3_client *c)
{
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    return c->rng * 2685821657736338717ULL;
}

/* --- loop glue: sockets and curl's timer --- */

static int fds_add(struct s3_client *c, int fd)
{
    if (c->nfds == c->capfds) {
        size_t n = c->capfds ? c->capfds * 2 : 16;
        int *f = realloc(c->fds, n * sizeof *f);
        if (!f)
            return -1;
        c->fds = f;
        c->capfds = n;
    }
    c->fds[c->nfds++] = fd;
    return 0;
}

static void fds_remove(struct s3_client *c, int fd)
{
    for (size_t i = 0; i < c->nfds; i++)
        if (c->fds[i] == fd) {
            c->fds[i] = c->fds[--c->nfds];
            return;
        }
}

static void reap(struct s3_client *c);
static void pump(struct s3_client *c);

/* Every entry from the loop goes through enter/leave, so that s3_free called from a
 * caller's callback only marks the client and the last leave frees it. */
static void enter(struct s3_client *c)
{
    c->depth++;
}

static void leave(struct s3_client *c)
{
    if (!c->dying) {
        reap(c);
        pump(c);
    }
    if (--c->depth == 0 && c->dying)
        client_destroy(c);
}

static void on_fd(struct ev_loop *l, int fd, void *arg, int mask)
{
    struct s3_client *c = arg;
    int running,
        ev = ((mask & EV_READ) ? CURL_CSELECT_IN : 0) | ((mask & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    enter(c);
    curl_multi_socket_action(c->multi, fd, ev, &running);
    leave(c);
}

static void on_timer(struct ev_loop *l, void *arg)
{
    struct s3_client *c = arg;
    int running;
    enter(c);
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    leave(c);
}

static int curl_socket_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct s3_client *c = userp;
    if (what == CURL_POLL_REMOVE) {
        if (socketp) {
            ev_del(c->loop, s);
            fds_remove(c, s);
        }
        return 0;
    }
    int mask = ((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
    if (socketp)
        return ev_mod(c->loop, s, mask) < 0 ? -1 : 0;
    if (fds_add(c, s) < 0)
        return -1;
    if (ev_add(c->loop, s, mask, on_fd, c) < 0) {
        log_error("s3: cannot watch socket %d: %s", s, strerror(errno));
        fds_remove(c, s);
        return -1;
    }
    curl_multi_assign(c->multi, s, c);
    return 0;
}

static int curl_timer_cb(CURLM *m, long ms, void *userp)
{
    struct s3_client *c = userp;
    if (ms < 0)
        ev_timer_stop(c->loop, &c->timer);
    else
        ev_timer_start(c->loop, &c->timer, (int64_t)ms * 1000);
    return 0;
}

/* --- response callbacks --- */

/* Stops the transfer from a curl callback with the given outcome. */
static size_t req_abort(struct s3_req *r, int err, bool retry, const char *msg)
{
    r->abort_err = err;
    r->abort_retry = retry;
    snprintf(r->msg, sizeof r->msg, "%s", msg);
    return 0;
}

/* Parses "bytes a-b/total" (total may be '*'). Returns 0 or -1. */
static int parse_content_range(const char *v, size_t n, struct s3_req *r)
{
    if (n < 6 || strncasecmp(v, "bytes ", 6) != 0)
        return -1;
    const char *p = v + 6, *end = v + n, *dash = memchr(p, '-', (size_t)(end - p));
    const char *sl = dash ? memchr(dash, '/', (size_t)(end - dash)) : NULL;
    if (!sl)
        return -1;
    r->cr_first = s3_parse_i64(p, (size_t)(dash - p));
    r->cr_last = s3_parse_i64(dash + 1, (size_t)(sl - dash - 1));
    r->cr_total =
        (end - sl == 2 && sl[1] == '*') ? -1 : s3_parse_i64(sl + 1, (size_t)(end - sl - 1));
    if (r->cr_first < 0 || r->cr_last < r->cr_first || (r->cr_total < 0 && sl[1] != '*') ||
        (r->cr_total >= 0 && r->cr_last >= r->cr_total))
        return -1;
    return 0;
}

static size_t on_header(char *p, size_t sz, size_t nm, void *ud)
{
    struct s3_req *r = ud;
    size_t k = sz * nm, n = k;
    while (n && (p[n - 1] == '\r' || p[n - 1] == '\n'))
        n--;
    if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        const char *sp = memchr(p, ' ', n);
        r->status = sp && (size_t)(sp - p) + 4 <= n ? (int)s3_parse_i64(sp + 1, 3) : -1;
        r->content_length = r->cr_first = r->cr_last = r->cr_total = -1;
        r->etag[0] = 0;
        return k;
    }
    const char *colon = memchr(p, ':', n);
    if (!colon)
        return k;
    size_t nl = (size_t)(colon - p);
    const char *v = colon + 1, *end = p + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t vn = (size_t)(end - v);
    if (nl == 14 && strncasecmp(p, "content-length", 14) == 0) {
        r->content_length = s3_parse_i64(v, vn);
    } else if (nl == 13 && strncasecmp(p, "content-range", 13) == 0) {
        if (parse_content_range(v, vn, r) < 0) {
            r->cr_first = -1;
            if (r->status == 206)
                return req_abort(r, S3_EINVAL, false, "malformed Content-Range");
        }
    } else if (nl == 4 && strncasecmp(p, "etag", 4) == 0) {
        if (s3_etag_copy(r->etag, sizeof r->etag, v, vn) < 0)
            r->etag[0] = 0;
    }
    return k;
}

/* Sets up which body bytes a GET keeps, once the response headers are known: all of a
 * 206 (checked against the range asked for), or our window of a 200 (a server that
 * ignores Range sends the whole object). Returns 0, or -1 after req_abort. */
static int get_size_window(struct s3_req *r)
{
    bool ranged = r->len > 0;
    int64_t cl = r->content_length;
    r->sized = true;
    if (r->status == 206) {
        if (!ranged || r->cr_first < 0) {
            req_abort(r, S3_EINVAL, false, "unexpected 206 response");
            return -1;
        }
        if (r->cr_first != r->offset || r->cr_last - r->cr_first + 1 > r->len) {
            req_abort(r, S3_EINVAL, false, "Content-Range does not match the range asked for");
            return -1;
        }
        r->win_lo = 0;
        r->win_hi = r->cr_last - r->cr_first + 1;
    } else if (ranged) {
        r->win_lo = r->offset;
        r->win_hi = r->offset + r->len;
    } else {
        if (cl > (int64_t)S3_MAX_GET_BODY) {
            req_abort(r, S3_EINVAL, false, "object too large for one GET; read it in ranges");
            return -1;
        }
        r->win_lo = 0;
        r->win_hi = cl >= 0 ? cl : (int64_t)S3_MAX_GET_BODY;
    }
    r->body.max = (size_t)(r->win_hi - r->win_lo);
    /* Allocate what the response will fill, once, when its length is known. */
    int64_t fill = r->win_hi - r->win_lo;
    if (r->status != 206 && cl >= 0)
        fill = cl <= r->win_lo ? 0 : (cl < r->win_hi ? cl : r->win_hi) - r->win_lo;
    else if (r->status != 206)
        fill = 0;
    if (fill > 0 && !kc_w_room(&r->body, (size_t)fill)) {
        req_abort(r, S3_ENOMEM, false, "out of memory for the body");
        return -1;
    }
    return 0;
}

static size_t on_body(char *p, size_t sz, size_t nm, void *ud)
{
    struct s3_req *r = ud;
    size_t k = sz * nm;
    int64_t at = r->recv;
    r->recv += (int64_t)k;
    if (r->status < 200 || r->status > 299) {
        size_t keep =
            S3_MAX_ERROR_BODY - (r->body.len < S3_MAX_ERROR_BODY ? r->body.len : S3_MAX_ERROR_BODY);
        kc_w_raw(&r->body, p, k < keep ? k : keep);
        return k;
    }
    if (r->kind == REQ_PUT || r->kind == REQ_DELETE)
        return k; /* a success body says nothing we need */
    if (r->kind == REQ_LIST) {
        kc_w_raw(&r->body, p, k);
        return r->body.err ? req_abort(r, S3_EINVAL, false, "ListObjectsV2 response too large") : k;
    }
    if (!r->sized && get_size_window(r) < 0)
        return 0;
    int64_t lo = at > r->win_lo ? at : r->win_lo, hi = at + (int64_t)k;
    if (hi > r->win_hi)
        hi = r->win_hi;
    if (hi > lo)
        kc_w_raw(&r->body, p + (lo - at), (size_t)(hi - lo));
    if (r->body.err)
        return req_abort(r, S3_ENOMEM, false, "out of memory for the body");
    if (r->status == 206 && r->recv > r->win_hi)
        return req_abort(r, S3_EUNAVAIL, true, "body longer than its Content-Range");
    return k;
}

/* PUT: hands curl the next piece of the caller's body. */
static size_t on_read(char *p, size_t sz, size_t nm, void *ud)
{
    struct s3_req *r = ud;
    size_t n = sz * nm, left = r->put_len - r->put_pos;
    if (n > left)
        n = left;
    memcpy(p, r->put_body + r->put_pos, n);
    r->put_pos += n;
    return n;
}

/* PUT: curl rewinds the body when it has to send it again on one connection. */
static int on_seek(void *ud, curl_off_t off, int origin)
{
    struct s3_req *r = ud;
    if (origin != SEEK_SET || off < 0 || (uint64_t)off > r->put_len)
        return CURL_SEEKFUNC_CANTSEEK;
    r->put_pos = (size_t)off;
    return CURL_SEEKFUNC_OK;
}

/* --- attempts --- */

static CURL *easy_get(struct s3_client *c)
{
    if (c->npool > 0)
        return c->pool[--c->npool];
    return curl_easy_init();
}

static void easy_put(struct s3_client *c, CURL *e)
{
    if (c->npool < c->cfg.max_inflight) {
        curl_easy_reset(e);
        c->pool[c->npool++] = e;
    } else {
        curl_easy_cleanup(e);
    }
}

/* Sets every option of one attempt on e. Returns 0 or -1. */
static int easy_setup(struct s3_req *r, CURL *e)
{
    const struct s3_config *cfg = &r->c->cfg;
    CURLcode rc = CURLE_OK;
#define SETOPT(o, v) (rc = rc != CURLE_OK ? rc : curl_easy_setopt(e, o, v))
    SETOPT(CURLOPT_URL, r->url);
    SETOPT(CURLOPT_PATH_AS_IS, 1L); /* keys may hold "." and ".." segments */
    if (r->kind == REQ_PUT) {
        SETOPT(CURLOPT_UPLOAD, 1L);
        SETOPT(CURLOPT_READFUNCTION, on_read);
        SETOPT(CURLOPT_READDATA, r);
        SETOPT(CURLOPT_SEEKFUNCTION, on_seek);
        SETOPT(CURLOPT_SEEKDATA, r);
        SETOPT(CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->put_len);
        /* An empty "Expect:" header would be signed by curl's SigV4 but not sent, so
         * 100-continue stays; a server that never answers it costs only this wait. */
        SETOPT(CURLOPT_EXPECT_100_TIMEOUT_MS, 200L);
    } else {
        SETOPT(CURLOPT_HTTPGET, 1L);
        if (r->kind == REQ_DELETE)
            SETOPT(CURLOPT_CUSTOMREQUEST, "DELETE");
    }
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_PRIVATE, r);
    SETOPT(CURLOPT_HTTPHEADER, r->hdrs);
    SETOPT(CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(CURLOPT_WRITEDATA, r);
    SETOPT(CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(CURLOPT_HEADERDATA, r);
    SETOPT(CURLOPT_ERRORBUFFER, r->errbuf);
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->connect_timeout_ms);
    SETOPT(CURLOPT_TIMEOUT_MS, (long)cfg->timeout_ms);
    /* A connection that stalls (no byte for S3_STALL_S) is cut and retried long before
     * the whole-request timeout. */
    SETOPT(CURLOPT_LOW_SPEED_LIMIT, 1L);
    SETOPT(CURLOPT_LOW_SPEED_TIME, (long)S3_STALL_S);
    SETOPT(CURLOPT_BUFFERSIZE, (long)S3_RECV_BUFFER);
    SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    if (cfg->access_key[0]) {
        SETOPT(CURLOPT_AWS_SIGV4, r->c->sigv4);
        SETOPT(CURLOPT_USERNAME, cfg->access_key);
        SETOPT(CURLOPT_PASSWORD, cfg->secret_key);
    }
#undef SETOPT
    return rc == CURLE_OK ? 0 : -1;
}

/* Starts (or restarts) an attempt. Returns 0, or -1 with r->msg set. */
static int attempt_start(struct s3_req *r)
{
    struct s3_client *c = r->c;
    r->status = 0;
    r->content_length = r->cr_first = r->cr_last = r->cr_total = -1;
    r->etag[0] = 0;
    r->errbuf[0] = 0;
    kc_writer_reset(&r->body);
    r->body.max = r->kind == REQ_LIST ? S3_MAX_LIST_BODY : S3_MAX_ERROR_BODY;
    r->recv = 0;
    r->put_pos = 0;
    r->sized = false;
    r->abort_err = 0;
    r->abort_retry = false;
    CURL *e = easy_get(c);
    if (!e || easy_setup(r, e) < 0) {
        if (e)
            curl_easy_cleanup(e);
        snprintf(r->msg, sizeof r->msg, "cannot set up a curl handle");
        return -1;
    }
    r->easy = e;
    r->attempts++;
    r->start_us = ev_now_us();
    CURLMcode mc = curl_multi_add_handle(c->multi, e);
    if (mc != CURLM_OK) {
        r->easy = NULL;
        curl_easy_cleanup(e);
        snprintf(r->msg, sizeof r->msg, "curl_multi_add_handle: %s", curl_multi_strerror(mc));
        return -1;
    }
    return 0;
}

/* What an attempt came to. */
struct outcome {
    int err;
    bool retry;
};

static bool curl_retryable(CURLcode rc)
{
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
        return true;
    default:
        return false;
    }
}

static struct outcome judge_transport(struct s3_req *r, CURLcode rc)
{
    if (r->abort_err)
        return (struct outcome){r->abort_err, r->abort_retry};
    snprintf(r->msg, sizeof r->msg, "%s%s%s", rc == CURLE_OPERATION_TIMEDOUT ? "timeout: " : "",
             r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc),
             rc == CURLE_PARTIAL_FILE ? " (connection cut mid-body)" : "");
    if (rc == CURLE_OUT_OF_MEMORY)
        return (struct outcome){S3_ENOMEM, false};
    return (struct outcome){S3_EUNAVAIL, curl_retryable(rc)};
}

/* An HTTP failure: the reason comes from the <Error> body when there is one. */
static struct outcome judge_http(struct s3_req *r)
{
    char code[64] = "";
    if (s3_parse_error((const char *)r->body.p, r->body.len, r->msg, sizeof r->msg) < 0)
        snprintf(r->msg, sizeof r->msg, "HTTP %d", r->status);
    const char *colon = strchr(r->msg, ':');
    if (colon && (size_t)(colon - r->msg) < sizeof code)
        snprintf(code, sizeof code, "%.*s", (int)(colon - r->msg), r->msg);
    bool throttled = !strcmp(code, "SlowDown") || !strcmp(code, "RequestTimeout") ||
                     !strcmp(code, "Throttling") || !strcmp(code, "ThrottlingException") ||
                     !strcmp(code, "RequestLimitExceeded") || !strcmp(code, "InternalError");
    int st = r->status;
    if (st >= 500 || st == 429 || throttled)
        return (struct outcome){S3_EUNAVAIL, true};
    if (st == 401 || st == 403)
        return (struct outcome){S3_EAUTH, false};
    if (st == 404)
        return (struct outcome){S3_ENOTFOUND, false};
    if (st == 412 || st == 416) /* the object no longer holds what was asked for */
        return (struct outcome){S3_ECHANGED, false};
    return (struct outcome){S3_EINVAL, false};
}

/* Checks a GET's body against the headers: the range, the length and the ETag. On
 * success sets *size to the object's size. */
static struct outcome judge_get(struct s3_req *r, int64_t *size)
{
    int64_t cl = r->content_length;
    if (r->status == 206) {
        int64_t want_last = r->offset + r->len - 1;
        if (r->cr_total >= 0 && want_last > r->cr_total - 1)
            want_last = r->cr_total - 1; /* the object ends inside the range */
        if (r->cr_last != want_last) {
            snprintf(r->msg, sizeof r->msg,
                     "Content-Range %lld-%lld does not match the range asked for",
                     (long long)r->cr_first, (long long)r->cr_last);
            return (struct outcome){S3_EINVAL, false};
        }
        *size = r->cr_total;
        cl = r->cr_last - r->cr_first + 1;
    } else if (r->status != 200) {
        snprintf(r->msg, sizeof r->msg, "unexpected HTTP %d", r->status);
        return (struct outcome){S3_EINVAL, false};
    } else {
        *size = cl >= 0 ? cl : r->recv;
    }
    if (cl >= 0 && r->recv != cl) {
        snprintf(r->msg, sizeof r->msg, "short body: %lld of %lld bytes", (long long)r->recv,
                 (long long)cl);
        return (struct outcome){S3_EUNAVAIL, true};
    }
    if (r->status == 200 && r->len > 0) {
        int64_t want = *size - r->offset < r->len ? *size - r->offset : r->len;
        if (want <= 0 || (int64_t)r->body.len != want) {
            snprintf(r->msg, sizeof r->msg,
                     "range %lld+%lld is past the end of the %lld-byte object",
                     (long long)r->offset, (long long)r->len, (long long)*size);
            return (struct outcome){S3_ECHANGED, false};
        }
    }
    if (r->expect_etag && strcmp(r->expect_etag, r->etag) != 0) {
        r->c->st.etag_mismatches++;
        snprintf(r->msg, sizeof r->msg, "ETag changed: expected %s, got %s", r->expect_etag,
                 r->etag[0] ? r->etag : "none");
        return (struct outcome){S3_ECHANGED, false};
    }
    return (struct outcome){S3_OK, false};
}

/* Parses a LIST body into page. */
static struct outcome judge_list(struct s3_req *r, struct s3_list_page *page)
{
    if (r->status != 200) {
        snprintf(r->msg, sizeof r->msg, "unexpected HTTP %d", r->status);
        return (struct outcome){S3_EINVAL, false};
    }
    if (s3_parse_list((const char *)r->body.p, r->body.len, page) < 0) {
        snprintf(r->msg, sizeof r->msg, "malformed ListObjectsV2 response (%zu bytes)",
                 r->body.len);
        return (struct outcome){S3_EINVAL, false};
    }
    if (page->truncated && !page->next_token) {
        s3_list_page_free(page);
        snprintf(r->msg, sizeof r->msg, "truncated listing without NextContinuationToken");
        return (struct outcome){S3_EINVAL, false};
    }
    return (struct outcome){S3_OK, false};
}

static void req_free(struct s3_req *r)
{
    ev_timer_stop(r->c->loop, &r->retry);
    curl_slist_free_all(r->hdrs);
    kc_writer_free(&r->body);
    free(r->url);
    free(r->expect_etag);
    free(r);
}

static void lat_record(struct s3_client *c, double ms)
{
    c->lat[c->latpos] = ms;
    c->latpos = (c->latpos + 1) % S3_LAT_RING;
    if (c->nlat < S3_LAT_RING)
        c->nlat++;
}

/* Unlinks r, runs its callback with err and frees it. The slot it held is free again;
 * pump() hands it on. */
static void req_finish(struct s3_req *r, int err, struct s3_list_page *page, int64_t size)
{
    struct s3_client *c = r->c;
    if (r->prev)
        r->prev->next = r->next;
    else
        c->all = r->next;
    if (r->next)
        r->next->prev = r->prev;
    c->active--;
    if (err)
        c->st.errors++;
    if (err && err != S3_ENOTFOUND)
        log_debug("s3: %s failed after %d attempt(s): %s", r->url, r->attempts, r->msg);
    if (r->kind != REQ_LIST) {
        struct s3_result res = {.err = err,
                                .http_status = r->status,
                                .attempts = r->attempts,
                                .body = err         ? NULL
                                        : r->body.p ? r->body.p
                                                    : (const uint8_t *)"",
                                .len = err || r->kind != REQ_GET ? 0 : r->body.len,
                                .etag = r->etag[0] ? r->etag : NULL,
                                .object_size = err ? -1 : size,
                                .latency_ms = r->latency_ms,
                                .message = err ? r->msg : NULL};
        r->get_fn(r->arg, &res);
    } else {
        struct s3_list_page empty = {0};
        struct s3_list_page *pg = err ? &empty : page;
        pg->err = err;
        pg->http_status = r->status;
        pg->message = err ? r->msg : NULL;
        r->list_fn(r->arg, pg);
        if (!err)
            s3_list_page_free(page);
    }
    req_free(r);
}

/* Delay before retry number n (1-based): exponential, capped, with half of it jittered
 * so that clients that failed together do not come back together. */
static int64_t backoff_us(struct s3_client *c, int n)
{
    int64_t d = c->cfg.backoff_base_ms;
    for (int i = 1; i < n && d < S3_BACKOFF_CAP_MS; i++)
        d *= 2;
    if (d > S3_BACKOFF_CAP_MS)
        d = S3_BACKOFF_CAP_MS;
    d *= 1000;
    return d / 2 + (int64_t)(rng_next(c) % (uint64_t)(d / 2 + 1));
}

static void on_retry(struct ev_loop *l, void *arg)
{
    struct s3_req *r = arg;
    struct s3_client *c = r->c;
    enter(c);
    if (attempt_start(r) < 0)
        req_finish(r, S3_ENOMEM, NULL, -1);
    leave(c);
}

/* Handles a finished attempt: hands the result over, or schedules a retry. */
static void attempt_done(struct s3_req *r, CURLcode rc)
{
    struct s3_client *c = r->c;
    long connects = 0;
    curl_easy_getinfo(r->easy, CURLINFO_NUM_CONNECTS, &connects);
    curl_multi_remove_handle(c->multi, r->easy);
    easy_put(c, r->easy);
    r->easy = NULL;
    r->latency_ms = (double)(ev_now_us() - r->start_us) / 1000.0;
    c->st.requests++;
    c->st.bytes += (uint64_t)r->recv;
    c->st.connects += (uint64_t)connects;
    *(r->kind == REQ_GET    ? &c->st.gets
      : r->kind == REQ_LIST ? &c->st.lists
      : r->kind == REQ_PUT  ? &c->st.puts
                            : &c->st.deletes) += 1;

    struct s3_list_page page = {0};
    int64_t size = -1;
    struct outcome o = rc != CURLE_OK || r->abort_err       ? judge_transport(r, rc)
                       : r->status < 200 || r->status > 299 ? judge_http(r)
                       : r->kind == REQ_GET                 ? judge_get(r, &size)
                       : r->kind == REQ_LIST                ? judge_list(r, &page)
                                                            : (struct outcome){S3_OK, false};
    if (o.retry && r->attempts <= c->cfg.max_retries) {
        c->st.retries++;
        int64_t d = backoff_us(c, r->attempts);
        log_debug("s3: %s attempt %d: %s; retrying in %lld ms", r->url, r->attempts, r->msg,
                  (long long)(d / 1000));
        ev_timer_start(c->loop, &r->retry, d);
        return;
    }
    if (o.retry) {
        char last[sizeof r->msg];
        memcpy(last, r->msg, sizeof last);
        snprintf(r->msg, sizeof r->msg, "gave up after %d attempts: %.560s", r->attempts, last);
    }
    if (o.err == S3_OK)
        lat_record(c, r->latency_ms);
    req_finish(r, o.err, &page, size);
}

/* Collects finished transfers. */
static void reap(struct s3_client *c)
{
    CURLMsg *m;
    int left;
    while (!c->dying && (m = curl_multi_info_read(c->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURLcode rc = m->data.result;
        struct s3_req *r = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        attempt_done(r, rc);
    }
}

/* Starts waiting requests while slots are free, in arrival order. */
static void pump(struct s3_client *c)
{
    while (!c->dying && c->qhead && c->active < c->cfg.max_inflight) {
        struct s3_req *r = c->qhead;
        c->qhead = r->qnext;
        if (!c->qhead)
            c->qtail = NULL;
        c->nqueued--;
        c->active++;
        if (attempt_start(r) < 0)
            req_finish(r, S3_ENOMEM, NULL, -1);
    }
}

/* --- public API --- */

/* Fills defaults and checks cfg. Returns 0 or -1. */
static int config_check(struct s3_client *c, const struct s3_config *cfg)
{
    c->cfg = *cfg;
    struct s3_config *k = &c->cfg;
    k->region[sizeof k->region - 1] = 0;
    k->endpoint[sizeof k->endpoint - 1] = 0;
    k->access_key[sizeof k->access_key - 1] = 0;
    k->secret_key[sizeof k->secret_key - 1] = 0;
    if (!k->region[0])
        snprintf(k->region, sizeof k->region, "us-east-1");
    if (k->max_inflight <= 0)
        k->max_inflight = 16;
    if (k->max_inflight > 1024)
        k->max_inflight = 1024;
    if (k->connect_timeout_ms <= 0)
        k->connect_timeout_ms = 5000;
    if (k->timeout_ms <= 0)
        k->timeout_ms = 60000;
    if (k->max_retries == 0)
        k->max_retries = 5;
    if (k->max_retries < 0)
        k->max_retries = 0;
    if (k->backoff_base_ms <= 0)
        k->backoff_base_ms = 100;
    if (k->endpoint[0])
        snprintf(c->endpoint, sizeof c->endpoint, "%s", k->endpoint);
    else
        snprintf(c->endpoint, sizeof c->endpoint, "https://s3.%s.amazonaws.com", k->region);
    size_t n = strlen(c->endpoint);
    while (n && c->endpoint[n - 1] == '/')
        c->endpoint[--n] = 0;
    if (strncmp(c->endpoint, "http://", 7) != 0 && strncmp(c->endpoint, "https://", 8) != 0) {
        log_error("s3: endpoint %s is not http:// or https://", c->endpoint);
        return -1;
    }
    for (const char *p = k->region; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_')) {
            log_error("s3: bad region %s", k->region);
            return -1;
        }
    snprintf(c->sigv4, sizeof c->sigv4, "aws:amz:%s:s3", k->region);
    return 0;
}

struct s3_client *s3_new(struct ev_loop *loop, const struct s3_config *cfg)
{
    struct s3_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->loop = loop;
    ev_timer_init(&c->timer, on_timer, c);
    c->rng = (uint64_t)ev_now_us() ^ (uint64_t)(uintptr_t)c ^ 0x9E3779B97F4A7C15ULL;
    if (config_check(c, cfg) < 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        free(c);
        return NULL;
    }
    c->pool = calloc((size_t)c->cfg.max_inflight, sizeof *c->pool);
    c->multi = curl_multi_init();
    if (!c->pool || !c->multi)
        goto fail;
    CURLMcode mc = CURLM_OK;
#define MSETOPT(o, v) (mc = mc != CURLM_OK ? mc : curl_multi_setopt(c->multi, o, v))
    MSETOPT(CURLMOPT_SOCKETFUNCTION, curl_socket_cb);
    MSETOPT(CURLMOPT_SOCKETDATA, c);
    MSETOPT(CURLMOPT_TIMERFUNCTION, curl_timer_cb);
    MSETOPT(CURLMOPT_TIMERDATA, c);
    MSETOPT(CURLMOPT_MAX_HOST_CONNECTIONS, (long)c->cfg.max_inflight);
    MSETOPT(CURLMOPT_MAXCONNECTS, (long)c->cfg.max_inflight);
#undef MSETOPT
    if (mc != CURLM_OK)
        goto fail;
    return c;
fail:
    client_destroy(c);
    return NULL;
}

static void client_destroy(struct s3_client *c)
{
    while (c->all) {
        struct s3_req *r = c->all;
        c->all = r->next;
        if (r->easy) {
            curl_multi_remove_handle(c->multi, r->easy);
            curl_easy_cleanup(r->easy);
        }
        req_free(r);
    }
    for (int i = 0; i < c->npool; i++)
        curl_easy_cleanup(c->pool[i]);
    if (c->multi)
        curl_multi_cleanup(c->multi); /* closes connections; their sockets leave the loop */
    for (size_t i = 0; i < c->nfds; i++)
        ev_del(c->loop, c->fds[i]);
    ev_timer_stop(c->loop, &c->timer);
    free(c->fds);
    free(c->pool);
    free(c);
    curl_global_cleanup();
}

void s3_free(struct s3_client *c)
{
    if (!c)
        return;
    if (c->depth > 0) {
        c->dying = true; /* from a callback: the outermost leave() frees it */
        return;
    }
    client_destroy(c);
}

/* Allocates a request, or NULL. */
static struct s3_req *req_new(struct s3_client *c, enum req_kind kind, char *url, const char *range,
                              const char *sha256_hex)
{
    char sha_hdr[96];
    snprintf(sha_hdr, sizeof sha_hdr, "x-amz-content-sha256: %s",
             sha256_hex ? sha256_hex : S3_EMPTY_SHA256);
    struct s3_req *r = calloc(1, sizeof *r);
    if (!r || !url)
        goto fail;
    r->c = c;
    r->kind = kind;
    r->url = url;
    ev_timer_init(&r->retry, on_retry, r);
    kc_writer_init(&r->body, S3_MAX_ERROR_BODY);
    r->hdrs = curl_slist_append(NULL, sha_hdr);
    if (r->hdrs && range) {
        struct curl_slist *h = curl_slist_append(r->hdrs, range);
        if (!h)
            goto fail;
        r->hdrs = h;
    }
    if (!r->hdrs)
        goto fail;
    return r;
fail:
    if (r)
        curl_slist_free_all(r->hdrs);
    free(r);
    free(url);
    return NULL;
}

/* Starts r now if a slot is free and nobody waits, else queues it. Returns 0 or -1 (r
 * freed, its callback not called). */
static int req_submit(struct s3_req *r)
{
    struct s3_client *c = r->c;
    if (c->dying || c->nqueued >= S3_MAX_QUEUED)
        goto fail;
    if (c->active < c->cfg.max_inflight && !c->qhead) {
        if (attempt_start(r) < 0)
            goto fail;
        c->active++;
    } else {
        if (c->qtail)
            c->qtail->qnext = r;
        else
            c->qhead = r;
        c->qtail = r;
        c->nqueued++;
    }
    r->next = c->all;
    if (c->all)
        c->all->prev = r;
    c->all = r;
    return 0;
fail:
    req_free(r);
    return -1;
}

static bool name_ok(const char *s, size_t max)
{
    return s && *s && strnlen(s, max + 1) <= max;
}

int s3_get(struct s3_client *c, const char *bucket, const char *key, int64_t offset, int64_t len,
           const char *expect_etag, s3_get_fn *fn, void *arg)
{
    char range[80];
    if (!c || !fn || !name_ok(bucket, 255) || !name_ok(key, S3_MAX_KEY_LEN) || offset < 0 ||
        len < 0 || (len > 0 && offset > INT64_MAX - len) || (len == 0 && offset > 0) ||
        (expect_etag && strlen(expect_etag) > 200))
        return -1;
    if (len > 0)
        snprintf(range, sizeof range, "Range: bytes=%lld-%lld", (long long)offset,
                 (long long)(offset + len - 1));
    struct s3_req *r =
        req_new(c, REQ_GET, s3_object_url(c->endpoint, bucket, key), len > 0 ? range : NULL, NULL);
    if (!r)
        return -1;
    r->offset = offset;
    r->len = len;
    r->get_fn = fn;
    r->arg = arg;
    if (expect_etag) {
        char e[256];
        if (s3_etag_copy(e, sizeof e, expect_etag, strlen(expect_etag)) < 0 ||
            !(r->expect_etag = strdup(e))) {
            req_free(r);
            return -1;
        }
    }
    return req_submit(r);
}

int s3_list(struct s3_client *c, const char *bucket, const char *prefix, const char *continuation,
            int max_keys, s3_list_fn *fn, void *arg)
{
    if (!c || !fn || !name_ok(bucket, 255) ||
        (prefix && strnlen(prefix, S3_MAX_KEY_LEN + 1) > S3_MAX_KEY_LEN) ||
        (continuation && strnlen(continuation, S3_MAX_TOKEN + 1) > S3_MAX_TOKEN))
        return -1;
    if (max_keys <= 0 || max_keys > 1000)
        max_keys = 1000;
    struct s3_req *r = req_new(
        c, REQ_LIST, s3_list_url(c->endpoint, bucket, prefix, continuation, max_keys), NULL, NULL);
    if (!r)
        return -1;
    r->list_fn = fn;
    r->arg = arg;
    return req_submit(r);
}

int s3_put(struct s3_client *c, const char *bucket, const char *key, const void *body, size_t len,
           s3_get_fn *fn, void *arg)
{
    uint8_t md[SHA256_DIGEST_LENGTH];
    char hex[2 * SHA256_DIGEST_LENGTH + 1];
    if (!c || !fn || !name_ok(bucket, 255) || !name_ok(key, S3_MAX_KEY_LEN) ||
        (len > 0 && !body) || len > S3_MAX_PUT_BODY)
        return -1;
    SHA256(len ? body : (const void *)"", len, md);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    struct s3_req *r = req_new(c, REQ_PUT, s3_object_url(c->endpoint, bucket, key), NULL, hex);
    if (!r)
        return -1;
    r->put_body = body;
    r->put_len = len;
    r->get_fn = fn;
    r->arg = arg;
    return req_submit(r);
}

int s3_delete(struct s3_client *c, const char *bucket, const char *key, s3_get_fn *fn, void *arg)
{
    if (!c || !fn || !name_ok(bucket, 255) || !name_ok(key, S3_MAX_KEY_LEN))
        return -1;
    struct s3_req *r = req_new(c, REQ_DELETE, s3_object_url(c->endpoint, bucket, key), NULL, NULL);
    if (!r)
        return -1;
    r->get_fn = fn;
    r->arg = arg;
    return req_submit(r);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

void s3_stats(const struct s3_client *c, struct s3_stats *out)
{
    double v[S3_LAT_RING];
    *out = c->st;
    out->inflight = c->active;
    out->queued = (int)c->nqueued;
    out->latency_p99_ms = 0;
    if (c->nlat == 0)
        return;
    memcpy(v, c->lat, c->nlat * sizeof v[0]);
    qsort(v, c->nlat, sizeof v[0], cmp_double);
    size_t i = (c->nlat * 99 + 99) / 100; /* nearest rank */
    out->latency_p99_ms = v[(i ? i : 1) - 1];
}
