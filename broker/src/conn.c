/* conn.c: the Kafka listener and its connections. Frames are length-prefixed; a frame's
 * size is checked against max.request.bytes before any buffer grows for it. Responses
 * leave in request order through a queue of slots, and a connection stops reading
 * while too many requests are in flight or too much output waits, so a slow reader
 * holds a bounded amount of memory. */
#include "conn.h"

#include "broker.h"
#include "ev.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "hash.h"
#include "kapi_sasl.h"
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

enum { IN_MIN = 64 * 1024, IOV_BATCH = 64, MAX_LISTENERS = 8, IP_BUCKETS = 1024,
       SWEEP_US = 1000000, FAIL_WINDOW_US = 60000000 };

struct listener {
    struct server *srv;
    char name[32];
    int proto;                /* PROTO_* */
    int fd;
    char bind[256];
    char adv_host[256];
    int32_t adv_port;
    struct tls_ctx *tls;      /* TLS listeners */
};

/* Per source address: open connections and recent failed authentications. */
struct ipent {
    struct ipent *next;
    int conns;
    int fails;
    int64_t fail_window_us;   /* start of the current one-minute window */
    char ip[48];
};

struct server {
    struct broker *b;
    struct listener lst[MAX_LISTENERS];
    int nlst;
    struct conn *conns;
    struct conn *flushq;
    int nconns;
    uint64_t next_id;
    struct ipent *ips[IP_BUCKETS];
    struct ev_timer sweep;
};

static void conn_on_event(struct ev_loop *l, int fd, void *arg, int mask);
static void conn_process(struct conn *c);
static void conn_flush(struct conn *c);

static void flushq_add(struct server *srv, struct conn *c)
{
    if (c->in_flush_list)
        return;
    c->in_flush_list = true;
    c->fprev = NULL;
    c->fnext = srv->flushq;
    if (srv->flushq)
        srv->flushq->fprev = c;
    srv->flushq = c;
}

static void flushq_del(struct server *srv, struct conn *c)
{
    if (!c->in_flush_list)
        return;
    if (c->fprev)
        c->fprev->fnext = c->fnext;
    else
        srv->flushq = c->fnext;
    if (c->fnext)
        c->fnext->fprev = c->fprev;
    c->in_flush_list = false;
}

/* The entry for ip, created when create is set. NULL if absent or out of memory. */
static struct ipent *ip_get(struct server *srv, const char *ip, bool create)
{
    size_t len = strlen(ip);
    struct ipent **pp = &srv->ips[hash_bytes(ip, len) % IP_BUCKETS];
    for (struct ipent *e = *pp; e; e = e->next)
        if (!strcmp(e->ip, ip))
            return e;
    if (!create)
        return NULL;
    struct ipent *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    snprintf(e->ip, sizeof e->ip, "%s", ip);
    e->next = *pp;
    *pp = e;
    return e;
}

/* Frees entries with no connection and no failure in the current window. */
static void ip_sweep(struct server *srv, int64_t now)
{
    for (int i = 0; i < IP_BUCKETS; i++)
        for (struct ipent **pp = &srv->ips[i], *e; (e = *pp);) {
            if (e->conns == 0 && (e->fails == 0 || now - e->fail_window_us > FAIL_WINDOW_US)) {
                *pp = e->next;
                free(e);
            } else {
                pp = &e->next;
            }
        }
}

bool conn_auth_failed(struct conn *c)
{
    struct server *srv = c->b->server;
    struct ipent *e = srv ? ip_get(srv, c->peer_ip, true) : NULL;
    if (!e)
        return false;
    int64_t now = ev_now_us();
    if (now - e->fail_window_us > FAIL_WINDOW_US) {
        e->fail_window_us = now;
        e->fails = 0;
    }
    e->fails++;
    return e->fails > c->b->cfg.failed_auth_per_ip;
}

bool conn_auth_blocked(const struct conn *c)
{
    struct server *srv = c->b->server;
    struct ipent *e = srv ? ip_get(srv, c->peer_ip, false) : NULL;
    return e && ev_now_us() - e->fail_window_us <= FAIL_WINDOW_US &&
           e->fails > c->b->cfg.failed_auth_per_ip;
}

void conn_advertised(const struct conn *c, const char **host, int32_t *port)
{
    if (c->lst) {
        *host = c->lst->adv_host;
        *port = c->lst->adv_port;
    } else {
        *host = c->b->adv_host;
        *port = c->b->adv_port;
    }
}

int conn_protocol(const struct conn *c) { return c->lst ? c->lst->proto : PROTO_PLAINTEXT; }

static void slot_free(struct kslot *s)
{
    kc_writer_free(&s->w);
    free(s);
}

/* Frees the connection and every slot; pending ones are cancelled first so their
 * owners drop their references. */
static void conn_free(struct conn *c)
{
    struct server *srv = c->b->server;
    for (struct kslot *s = c->head, *n; s; s = n) {
        n = s->next;
        if (!s->ready && s->cancel)
            s->cancel(s);
        slot_free(s);
    }
    flushq_del(srv, c);
    ev_timer_stop(c->b->loop, &c->throttle);
    ev_del(c->b->loop, c->fd);
    tls_free(c->tls);
    sasl_conn_free(c);
    close(c->fd);
    struct ipent *ie = ip_get(srv, c->peer_ip, false);
    if (ie)
        ie->conns--;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->nconns--;
    metrics_conn_close(c->b->metrics);
    log_debug("connection %llu from %s closed", (unsigned long long)c->id, c->peer);
    free(c->in);
    free(c);
}

static void conn_close(struct conn *c) { c->closing = true; }

void conn_close_after_send(struct conn *c) { c->close_after_send = true; }

static void on_throttle_end(struct ev_loop *l, void *arg)
{
    struct conn *c = arg;
    flushq_add(c->b->server, c); /* its flush takes requests again */
}

void conn_throttle(struct conn *c, int32_t ms)
{
    if (!c->b->server) /* unit tests: no loop to wake it */
        return;
    int64_t until = ev_now_us() + (int64_t)ms * 1000;
    if (ev_timer_active(&c->throttle) && until <= c->throttle_until_us)
        return;
    c->throttle_until_us = until;
    ev_timer_start(c->b->loop, &c->throttle, (int64_t)ms * 1000);
}

void conn_abort(struct conn *c)
{
    c->closing = true;
    flushq_add(c->b->server, c);
}

void kslot_complete(struct kslot *s)
{
    struct conn *c = s->conn;
    s->ready = true;
    s->cancel = NULL;
    kc_w_patch_i32(&s->w, 0, (int32_t)(s->w.len - 4));
    if (!s->noresp)
        c->out_bytes += s->w.len;
    metrics_request(c->b->metrics, s->api_key, ev_now_us() - s->start_us);
    flushq_add(c->b->server, c);
}

/* Whether the connection may take another request now. */
static bool conn_can_take(const struct conn *c)
{
    const struct config *cfg = &c->b->cfg;
    return c->nslots < cfg->max_inflight_requests &&
           c->out_bytes < (size_t)cfg->conn_output_limit && !c->closing &&
           !c->close_after_send && !c->sasl_busy && !ev_timer_active(&c->throttle);
}

static void conn_set_events(struct conn *c)
{
    int mask = (c->paused ? 0 : EV_READ) | (c->want_write ? EV_WRITE : 0);
    ev_mod(c->b->loop, c->fd, mask);
}

static struct kslot *slot_push(struct conn *c)
{
    struct kslot *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->conn = c;
    s->start_us = ev_now_us();
    kc_writer_init(&s->w, (size_t)c->b->cfg.max_response_bytes + 1024);
    if (c->tail)
        c->tail->next = s;
    else
        c->head = s;
    c->tail = s;
    c->nslots++;
    return s;
}

/* Hands one complete frame to the protocol layer. */
static void conn_dispatch(struct conn *c, uint8_t *frame, size_t len)
{
    struct kslot *s = slot_push(c);
    if (!s) {
        conn_close(c);
        return;
    }
    if (c->sasl_raw && c->sasl_started) { /* a bare SASL token (SaslHandshake v0) */
        s->api_key = 36;
        int rc = kapi_sasl_raw_token(c, s, frame, len);
        if (rc < 0)
            conn_close(c);
        else if (rc == 0)
            kslot_complete(s);
        return;
    }
    int rc = kafka_handle(c->b, c, s, frame, len);
    if (rc == KAPI_EPARSE) {
        metrics_bad_frame(c->b->metrics);
        conn_close(c);
        return;
    }
    if (rc == KAPI_NORESP) {
        s->noresp = true;
        kslot_complete(s);
    } else if (rc == KAPI_DONE) {
        kslot_complete(s);
    }
}

/* Makes room for a frame of need bytes at in_pos: compacts, then grows (need is
 * already checked against max.request.bytes). */
static int conn_reserve(struct conn *c, size_t need)
{
    if (c->in_pos) {
        memmove(c->in, c->in + c->in_pos, c->in_len - c->in_pos);
        c->in_len -= c->in_pos;
        c->in_pos = 0;
    }
    if (need <= c->in_cap)
        return 0;
    uint8_t *n = realloc(c->in, need);
    if (!n)
        return -1;
    c->in = n;
    c->in_cap = need;
    return 0;
}

/* Room to ask for while a frame of need bytes arrives: it grows with the bytes that
 * actually came (doubling, at least 1 MiB ahead), so a peer that announces a large
 * frame and sends nothing holds a small buffer, not max.request.bytes. */
static size_t frame_room(const struct conn *c, size_t need)
{
    size_t have = c->in_len - c->in_pos, ahead = have + (1u << 20);
    if (ahead < 2 * c->in_cap)
        ahead = 2 * c->in_cap;
    return need < ahead ? need : ahead;
}

/* Runs every complete frame in the input buffer, as far as the limits allow. */
static void conn_process(struct conn *c)
{
    while (!c->closing && c->in_len - c->in_pos >= 4) {
        if (!conn_can_take(c)) {
            c->paused = true;
            break;
        }
        int32_t len = (int32_t)kc_get_be32(c->in + c->in_pos);
        int64_t max = c->auth_pending ? c->b->cfg.sasl_max_receive_bytes
                                      : c->b->cfg.max_request_bytes;
        if (len < (c->sasl_raw ? 0 : 8) || len > max) {
            log_warn("%s: frame size %d outside [8, %lld]%s; closing", c->peer, len,
                     (long long)max, c->auth_pending ? " before authentication" : "");
            metrics_bad_frame(c->b->metrics);
            conn_close(c);
            return;
        }
        if (c->in_len - c->in_pos - 4 < (size_t)len) {
            size_t want = frame_room(c, 4 + (size_t)len);
            if (want > c->in_cap - c->in_pos && conn_reserve(c, want) < 0)
                conn_close(c);
            break;
        }
        uint8_t *frame = c->in + c->in_pos + 4;
        c->in_pos += 4 + (size_t)len;
        c->frame_start_us = 0;
        conn_dispatch(c, frame, (size_t)len);
    }
    if (c->in_pos < c->in_len && !c->frame_start_us)
        c->frame_start_us = ev_now_us(); /* a frame has begun to arrive */
    if (c->in_pos == c->in_len) {
        c->in_pos = c->in_len = 0;
        if (c->in_cap > IN_MIN * 16) { /* give a big frame's buffer back */
            uint8_t *n = realloc(c->in, IN_MIN);
            if (n) {
                c->in = n;
                c->in_cap = IN_MIN;
            }
        }
    }
    conn_set_events(c);
}

/* One read from the socket or through TLS: > 0 bytes, 0 at EOF or on an error (the
 * connection is closed), -1 when nothing is available now. */
static ssize_t conn_io_read(struct conn *c, void *buf, size_t len)
{
    if (!c->tls) {
        ssize_t n = read(c->fd, buf, len);
        if (n > 0)
            return n;
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return -1;
        return 0;
    }
    ssize_t n = tls_read(c->tls, buf, len);
    c->tls_rw = n == TLS_WANT_WRITE;
    if (n > 0)
        return n;
    if (n == TLS_WANT_READ || n == TLS_WANT_WRITE) {
        if (c->tls_rw)
            c->want_write = true;
        return -1;
    }
    return 0;
}

/* One gathered write: the bytes taken, or -1 when the socket is full (errno EAGAIN)
 * or failed (any other errno). */
static ssize_t conn_io_writev(struct conn *c, const struct iovec *iov, int n)
{
    if (!c->tls)
        return writev(c->fd, iov, n);
    ssize_t w = tls_writev(c->tls, iov, n);
    if (w >= 0)
        return w;
    errno = w == TLS_WANT_READ || w == TLS_WANT_WRITE ? EAGAIN : EPIPE;
    return -1;
}

static void conn_read(struct conn *c)
{
    c->last_io_us = ev_now_us();
    /* TLS may hold decrypted bytes the socket no longer signals: read until it says
     * it wants more from the socket */
    for (int rounds = 0; (rounds < 16 || c->tls) && !c->paused && !c->closing; rounds++) {
        if (c->in_len == c->in_cap && conn_reserve(c, c->in_cap) < 0)
            break;
        if (c->in_len == c->in_cap) { /* full and compacted: a frame is being read */
            conn_process(c);
            break;
        }
        ssize_t n = conn_io_read(c, c->in + c->in_len, c->in_cap - c->in_len);
        if (n == 0) {
            conn_close(c);
            return;
        }
        if (n < 0)
            return;
        c->in_len += (size_t)n;
        conn_process(c);
        if (c->in_len < c->in_cap && !c->tls)
            return; /* drained the socket */
    }
}

/* Writes ready responses in order with writev and frees the sent ones. */
static void conn_flush(struct conn *c)
{
    while (c->head && c->head->ready && !c->closing) {
        struct iovec iov[IOV_BATCH];
        int n = 0;
        for (struct kslot *s = c->head; s && s->ready && n < IOV_BATCH; s = s->next) {
            if (s->noresp || s->sent == s->w.len)
                continue;
            iov[n].iov_base = s->w.p + s->sent;
            iov[n++].iov_len = s->w.len - s->sent;
        }
        ssize_t w = n ? conn_io_writev(c, iov, n) : 0;
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            conn_close(c);
            return;
        }
        size_t left = (size_t)w;
        while (c->head && c->head->ready) {
            struct kslot *s = c->head;
            size_t rest = s->noresp ? 0 : s->w.len - s->sent;
            size_t take = left < rest ? left : rest;
            s->sent += take;
            left -= take;
            c->out_bytes -= take;
            if (s->sent < s->w.len && !s->noresp)
                break;
            c->head = s->next;
            if (!c->head)
                c->tail = NULL;
            c->nslots--;
            slot_free(s);
        }
        if (n == 0 || (size_t)w < iov[0].iov_len)
            break;
    }
    bool pending_out = c->head && c->head->ready;
    if (c->close_after_send && !c->head) {
        conn_close(c);
        return;
    }
    c->want_write = pending_out || c->tls_rw;
    c->last_io_us = ev_now_us();
    if (c->paused && conn_can_take(c)) {
        c->paused = false;
        conn_process(c);
        if (c->tls && !c->paused && tls_has_pending(c->tls))
            conn_read(c); /* bytes already decrypted: the socket will not signal them */
    }
    conn_set_events(c);
}

/* Drives the TLS handshake; once done, a verified client certificate names the
 * connection's principal. Returns true when the connection can carry requests. */
static bool conn_handshake(struct conn *c)
{
    int rc = tls_handshake(c->tls, c->peer);
    if (rc == TLS_WANT_READ || rc == TLS_WANT_WRITE) {
        ev_mod(c->b->loop, c->fd, rc == TLS_WANT_READ ? EV_READ : EV_WRITE);
        return false;
    }
    if (rc != 1) {
        metrics_auth(c->b->metrics, "ssl", false);
        conn_close(c);
        return false;
    }
    c->handshaking = false;
    char name[256];
    if (tls_peer_name(c->tls, !strcmp(c->b->cfg.ssl_principal, "dn"), name, sizeof name) ==
            0 &&
        !c->auth_pending) {
        snprintf(c->principal, sizeof c->principal, "User:%s", name);
        metrics_auth(c->b->metrics, "ssl", true);
    }
    log_debug("%s: %s established, principal %s", c->peer, tls_version(c->tls), c->principal);
    return true;
}

static void conn_on_event(struct ev_loop *l, int fd, void *arg, int mask)
{
    struct conn *c = arg;
    if (c->handshaking) {
        c->last_io_us = ev_now_us();
        if (conn_handshake(c)) {
            conn_set_events(c);
            conn_read(c); /* a client may have sent its first request with the Finished */
        }
        if (c->closing)
            conn_free(c);
        return;
    }
    if (mask & EV_READ || (c->tls_rw && mask & EV_WRITE))
        conn_read(c);
    if (!c->closing && (mask & EV_WRITE || c->head))
        conn_flush(c);
    if (c->closing)
        conn_free(c);
}

/* Before the loop sleeps: flush connections whose deferred responses completed. */
static void server_flush_hook(struct ev_loop *l, void *arg)
{
    struct server *srv = arg;
    while (srv->flushq) {
        struct conn *c = srv->flushq;
        flushq_del(srv, c);
        conn_flush(c);
        if (c->closing)
            conn_free(c);
    }
}

static void conn_accept_one(struct listener *ls, int fd, struct sockaddr_in *sa)
{
    struct server *srv = ls->srv;
    struct conn *c = calloc(1, sizeof *c);
    if (!c || !(c->in = malloc(IN_MIN)))
        goto fail;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    c->b = srv->b;
    c->lst = ls;
    c->in_cap = IN_MIN;
    c->id = ++srv->next_id;
    c->accepted_us = c->last_io_us = ev_now_us();
    ev_timer_init(&c->throttle, on_throttle_end, c);
    inet_ntop(AF_INET, &sa->sin_addr, c->peer_ip, sizeof c->peer_ip);
    snprintf(c->peer, sizeof c->peer, "%s:%d", c->peer_ip, ntohs(sa->sin_port));
    snprintf(c->principal, sizeof c->principal, "User:ANONYMOUS");
    c->auth_pending = ls->proto & PROTO_SASL_PLAINTEXT;
    if (c->auth_pending)
        c->auth_deadline_us = c->accepted_us + srv->b->cfg.sasl_auth_timeout_ms * 1000;
    struct ipent *ie = ip_get(srv, c->peer_ip, true);
    if (!ie)
        goto fail;
    if (srv->b->cfg.max_connections_per_ip > 0 &&
        ie->conns >= srv->b->cfg.max_connections_per_ip) {
        log_warn("%s: max.connections.per.ip %d reached; refusing", c->peer,
                 srv->b->cfg.max_connections_per_ip);
        metrics_conn_refused(srv->b->metrics);
        goto fail;
    }
    if (ls->proto & PROTO_SSL) {
        if (!(c->tls = tls_new(ls->tls, fd)))
            goto fail;
        c->handshaking = true;
    }
    if (ev_add(srv->b->loop, fd, EV_READ, conn_on_event, c) < 0)
        goto fail;
    ie->conns++;
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    metrics_conn_open(srv->b->metrics);
    log_debug("connection %llu from %s on %s", (unsigned long long)c->id, c->peer, ls->name);
    return;
fail:
    if (c) {
        tls_free(c->tls);
        free(c->in);
    }
    free(c);
    close(fd);
}

static void server_on_accept(struct ev_loop *l, int fd, void *arg, int mask)
{
    struct listener *ls = arg;
    struct server *srv = ls->srv;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_in sa;
        socklen_t sl = sizeof sa;
        int cfd = accept4(fd, (struct sockaddr *)&sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno != EAGAIN && errno != EINTR)
                log_warn("accept: %s", strerror(errno));
            return;
        }
        if (srv->nconns >= srv->b->cfg.max_connections) {
            log_warn("connection limit %d reached; refusing %d", srv->b->cfg.max_connections,
                     cfd);
            metrics_conn_refused(srv->b->metrics);
            close(cfd);
            continue;
        }
        conn_accept_one(ls, cfd, &sa);
    }
}

int server_listen_socket(const char *hostport)
{
    char host[256];
    int port;
    if (config_split_hostport(hostport, host, sizeof host, &port) < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (!*host || !strcmp(host, "0.0.0.0") || !strcmp(host, "*"))
        sa.sin_addr.s_addr = htonl(INADDR_ANY);
    else if (!strcmp(host, "localhost"))
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 511) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Closes connections that sat idle, that took too long to send one frame (slowloris),
 * or that did not authenticate (again) in time. */
static void on_sweep(struct ev_loop *l, void *arg)
{
    struct server *srv = arg;
    const struct config *cfg = &srv->b->cfg;
    int64_t now = ev_now_us();
    for (struct conn *c = srv->conns; c; c = c->next) {
        const char *why = NULL;
        if (c->closing)
            continue;
        if (c->auth_deadline_us && now > c->auth_deadline_us && !c->auth_pending) {
            /* answer what was already taken, read nothing more: a request still
             * unread is retried on the next connection, none is done twice */
            if (!c->close_after_send)
                log_info("%s: session lifetime ended without re-authentication; closing",
                         c->peer);
            conn_close_after_send(c);
            flushq_add(srv, c);
            continue;
        }
        if (c->auth_deadline_us && now > c->auth_deadline_us)
            why = "did not authenticate in time";
        else if (c->frame_start_us && !c->paused &&
                 now - c->frame_start_us > cfg->request_read_timeout_ms * 1000)
            why = "a request took longer than request.read.timeout.ms to arrive";
        else if (!c->head && now - c->last_io_us > cfg->connections_max_idle_ms * 1000)
            why = "idle for connections.max.idle.ms";
        if (why) {
            log_info("%s: %s; closing", c->peer, why);
            conn_abort(c);
        }
    }
    ip_sweep(srv, now);
    ev_timer_start(l, &srv->sweep, SWEEP_US);
}

/* Kafka's protocol names, and what a listener name maps to. */
static int proto_parse(const char *s, size_t n)
{
    static const char *names[] = {"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"};
    for (int i = 0; i < 4; i++)
        if (strlen(names[i]) == n && !strncasecmp(names[i], s, n))
            return i;
    return -1;
}

/* Finds NAME in a "NAME<sep>value,..." list; copies value. Returns 0 or -1. */
static int list_find(const char *list, const char *name, const char *sep, char *out,
                     size_t cap)
{
    size_t nl = strlen(name), sl = strlen(sep);
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && *p == ' ')
            p++, len--;
        if (len > nl + sl && !strncasecmp(p, name, nl) && !strncmp(p + nl, sep, sl)) {
            size_t vl = len - nl - sl;
            if (vl >= cap)
                return -1;
            memcpy(out, p + nl + sl, vl);
            out[vl] = 0;
            return 0;
        }
        p = end ? end + 1 : NULL;
    }
    return -1;
}

static int listener_tls(struct listener *ls, const struct config *cfg)
{
    char err[512];
    int ca = !strcmp(cfg->ssl_client_auth, "required")    ? TLS_CLIENT_REQUIRED
             : !strcmp(cfg->ssl_client_auth, "requested") ? TLS_CLIENT_REQUESTED
             : !strcmp(cfg->ssl_client_auth, "none")      ? TLS_CLIENT_NONE
                                                           : -1;
    if (ca < 0) {
        log_error("ssl.client.auth %s: want none, requested or required", cfg->ssl_client_auth);
        return -1;
    }
    struct tls_conf tc = {cfg->ssl_cert_file, cfg->ssl_key_file, cfg->ssl_ca_file, ca,
                          cfg->ssl_protocol_min};
    struct tls_ctx *ctx = tls_ctx_new(&tc, err, sizeof err);
    if (!ctx) {
        log_error("listener %s: %s", ls->name, err);
        return -1;
    }
    tls_ctx_free(ls->tls);
    ls->tls = ctx;
    return 0;
}

/* Sets up listener i from one "NAME://host:port" entry. Returns 0 or -1 (logged). */
static int listener_init(struct server *srv, struct listener *ls, const char *spec, size_t n,
                         bool first)
{
    const struct config *cfg = &srv->b->cfg;
    const char *sep = memmem(spec, n, "://", 3);
    if (!sep || sep == spec || (size_t)(sep - spec) >= sizeof ls->name ||
        (size_t)(spec + n - sep - 3) >= sizeof ls->bind) {
        log_error("listener '%.*s': want NAME://HOST:PORT", (int)n, spec);
        return -1;
    }
    ls->srv = srv;
    ls->fd = -1;
    memcpy(ls->name, spec, (size_t)(sep - spec));
    memcpy(ls->bind, sep + 3, (size_t)(spec + n - sep - 3));
    char proto[32];
    ls->proto = list_find(cfg->listener_protocol_map, ls->name, ":", proto, sizeof proto) == 0
                    ? proto_parse(proto, strlen(proto))
                    : proto_parse(ls->name, strlen(ls->name));
    if (ls->proto < 0) {
        log_error("listener %s: unknown security protocol (map it in "
                  "listener.security.protocol.map)", ls->name);
        return -1;
    }
    char adv[256];
    const char *a = ls->bind;
    if (list_find(cfg->advertised_listeners, ls->name, "://", adv, sizeof adv) == 0)
        a = adv;
    else if (first && cfg->advertised[0])
        a = cfg->advertised;
    int port;
    if (config_split_hostport(a, ls->adv_host, sizeof ls->adv_host, &port) < 0) {
        log_error("listener %s: bad advertised address '%s'", ls->name, a);
        return -1;
    }
    ls->adv_port = port;
    if (!ls->adv_host[0] || !strcmp(ls->adv_host, "0.0.0.0"))
        gethostname(ls->adv_host, sizeof ls->adv_host);
    if ((ls->proto & PROTO_SSL) && listener_tls(ls, cfg) < 0)
        return -1;
    if ((ls->fd = server_listen_socket(ls->bind)) < 0) {
        log_error("listener %s: cannot listen on %s: %s", ls->name, ls->bind, strerror(errno));
        return -1;
    }
    if (ev_add(srv->b->loop, ls->fd, EV_READ, server_on_accept, ls) < 0)
        return -1;
    log_info("kafka listener %s (%s) on %s, advertised %s:%d", ls->name,
             ls->proto == PROTO_SSL ? "SSL" : ls->proto == PROTO_SASL_SSL ? "SASL_SSL"
             : ls->proto == PROTO_SASL_PLAINTEXT ? "SASL_PLAINTEXT" : "PLAINTEXT",
             ls->bind, ls->adv_host, ls->adv_port);
    return 0;
}

static int server_listeners(struct server *srv)
{
    struct broker *b = srv->b;
    char dflt[300];
    const char *list = b->cfg.listeners;
    if (!*list) {
        snprintf(dflt, sizeof dflt, "PLAINTEXT://%s", b->cfg.kafka_listen);
        list = dflt;
    }
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        while (n && *p == ' ')
            p++, n--;
        if (n) {
            if (srv->nlst == MAX_LISTENERS) {
                log_error("at most %d listeners", MAX_LISTENERS);
                return -1;
            }
            for (int i = 0; i < srv->nlst; i++)
                if (!strncasecmp(srv->lst[i].name, p, strlen(srv->lst[i].name)) &&
                    !strncmp(p + strlen(srv->lst[i].name), "://", 3)) {
                    log_error("listener %s named twice", srv->lst[i].name);
                    return -1;
                }
            if (listener_init(srv, &srv->lst[srv->nlst], p, n, srv->nlst == 0) < 0) {
                srv->nlst++; /* so that server_free closes what it opened */
                return -1;
            }
            srv->nlst++;
        }
        p = end ? end + 1 : p + n;
    }
    if (!srv->nlst) {
        log_error("no listener configured");
        return -1;
    }
    /* the first listener's address is the broker's, for logs and the admin API */
    snprintf(b->adv_host, sizeof b->adv_host, "%s", srv->lst[0].adv_host);
    b->adv_port = srv->lst[0].adv_port;
    return 0;
}

struct server *server_new(struct broker *b)
{
    struct server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return NULL;
    srv->b = b;
    b->server = srv;
    ev_timer_init(&srv->sweep, on_sweep, srv);
    if (server_listeners(srv) < 0 || ev_hook_add(b->loop, server_flush_hook, srv) < 0 ||
        ev_timer_start(b->loop, &srv->sweep, SWEEP_US) < 0) {
        server_free(srv);
        return NULL;
    }
    return srv;
}

int server_reload_tls(struct server *srv)
{
    int rc = 0;
    for (int i = 0; i < srv->nlst; i++) {
        struct listener *ls = &srv->lst[i];
        if (!(ls->proto & PROTO_SSL))
            continue;
        if (listener_tls(ls, &srv->b->cfg) < 0)
            rc = -1;
        else
            log_info("listener %s: certificate reloaded", ls->name);
    }
    return rc;
}

void server_stop_accepting(struct server *srv)
{
    for (int i = 0; i < srv->nlst; i++) {
        struct listener *ls = &srv->lst[i];
        if (ls->fd < 0)
            continue;
        ev_del(srv->b->loop, ls->fd);
        close(ls->fd);
        ls->fd = -1;
    }
}

int server_connection_count(const struct server *srv) { return srv->nconns; }

bool server_conn_alive(const struct server *srv, uint64_t id)
{
    for (const struct conn *c = srv ? srv->conns : NULL; c; c = c->next)
        if (c->id == id && !c->closing)
            return true;
    return false;
}

int server_pending_slots(const struct server *srv)
{
    int n = 0;
    for (const struct conn *c = srv->conns; c; c = c->next)
        for (const struct kslot *s = c->head; s; s = s->next)
            n += !s->ready;
    return n;
}

void server_free(struct server *srv)
{
    if (!srv)
        return;
    while (srv->conns)
        conn_free(srv->conns);
    server_stop_accepting(srv);
    ev_timer_stop(srv->b->loop, &srv->sweep);
    for (int i = 0; i < srv->nlst; i++)
        tls_ctx_free(srv->lst[i].tls);
    ip_sweep(srv, INT64_MAX);
    srv->b->server = NULL;
    free(srv);
}
