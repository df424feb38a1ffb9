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

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

enum { IN_MIN = 64 * 1024, IOV_BATCH = 64 };

struct server {
    struct broker *b;
    int fd;
    struct conn *conns;
    struct conn *flushq;
    int nconns;
    uint64_t next_id;
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
    ev_del(c->b->loop, c->fd);
    close(c->fd);
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
           c->out_bytes < (size_t)cfg->conn_output_limit && !c->closing;
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
        if (len < 8 || len > c->b->cfg.max_request_bytes) {
            log_warn("%s: frame size %d outside [8, %lld]; closing", c->peer, len,
                     (long long)c->b->cfg.max_request_bytes);
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
        conn_dispatch(c, frame, (size_t)len);
    }
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

static void conn_read(struct conn *c)
{
    for (int rounds = 0; rounds < 16 && !c->paused && !c->closing; rounds++) {
        if (c->in_len == c->in_cap && conn_reserve(c, c->in_cap) < 0)
            break;
        if (c->in_len == c->in_cap) { /* full and compacted: a frame is being read */
            conn_process(c);
            break;
        }
        ssize_t n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            conn_close(c);
            return;
        }
        if (n < 0)
            return;
        c->in_len += (size_t)n;
        conn_process(c);
        if (c->in_len < c->in_cap)
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
        ssize_t w = n ? writev(c->fd, iov, n) : 0;
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
    c->want_write = pending_out;
    if (c->paused && conn_can_take(c)) {
        c->paused = false;
        conn_process(c);
    }
    conn_set_events(c);
}

static void conn_on_event(struct ev_loop *l, int fd, void *arg, int mask)
{
    struct conn *c = arg;
    if (mask & EV_READ)
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

static void conn_accept_one(struct server *srv, int fd, struct sockaddr_in *sa)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c || !(c->in = malloc(IN_MIN))) {
        free(c);
        close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    c->b = srv->b;
    c->in_cap = IN_MIN;
    c->id = ++srv->next_id;
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &sa->sin_addr, ip, sizeof ip);
    snprintf(c->peer, sizeof c->peer, "%s:%d", ip, ntohs(sa->sin_port));
    if (ev_add(srv->b->loop, fd, EV_READ, conn_on_event, c) < 0) {
        free(c->in);
        free(c);
        close(fd);
        return;
    }
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    metrics_conn_open(srv->b->metrics);
    log_debug("connection %llu from %s", (unsigned long long)c->id, c->peer);
}

static void server_on_accept(struct ev_loop *l, int fd, void *arg, int mask)
{
    struct server *srv = arg;
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
            close(cfd);
            continue;
        }
        conn_accept_one(srv, cfd, &sa);
    }
}

static int listen_on(const char *hostport)
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

struct server *server_new(struct broker *b)
{
    struct server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return NULL;
    srv->b = b;
    srv->fd = listen_on(b->cfg.kafka_listen);
    if (srv->fd < 0) {
        log_error("cannot listen on %s: %s", b->cfg.kafka_listen, strerror(errno));
        free(srv);
        return NULL;
    }
    b->server = srv;
    if (ev_add(b->loop, srv->fd, EV_READ, server_on_accept, srv) < 0 ||
        ev_hook_add(b->loop, server_flush_hook, srv) < 0) {
        close(srv->fd);
        free(srv);
        b->server = NULL;
        return NULL;
    }
    log_info("kafka listener on %s", b->cfg.kafka_listen);
    return srv;
}

void server_stop_accepting(struct server *srv)
{
    if (srv->fd < 0)
        return;
    ev_del(srv->b->loop, srv->fd);
    close(srv->fd);
    srv->fd = -1;
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
    srv->b->server = NULL;
    free(srv);
}
