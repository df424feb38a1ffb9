/* admin_tls.c: the OpenSSL front of the admin listener (admin_tls.h). Each accepted
 * connection does its TLS handshake here; then a socket pair joins it to MHD and the
 * loop pumps bytes both ways through two bounded buffers. */
#include "admin_tls.h"

#include "broker.h"
#include "conn.h"
#include "ev.h"
#include "log.h"
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { FRONT_BUF = 16384, FRONT_MAX = 64, HANDSHAKE_US = 10000000, SWEEP_US = 1000000 };

struct front {
    struct front *prev, *next;
    struct admin_tls *at;
    int fd;          /* the client's TCP socket */
    int sp;          /* our end of the pair; -1 until the handshake is done */
    int mhd_fd;      /* MHD's end (MHD owns and closes it) */
    struct tls *tls;
    bool handshaking, verified, tls_rw, mhd_eof;
    int64_t started_us;
    struct sockaddr_in sa;
    size_t up_len;               /* decrypted from the client, not yet given to MHD */
    size_t down_len, down_off;   /* from MHD, not yet sent to the client */
    uint8_t up[FRONT_BUF], down[FRONT_BUF];
};

struct admin_tls {
    struct broker *b;
    int fd;
    struct tls_ctx *ctx;
    struct front *fronts;
    int nfronts;
    admin_tls_add_fn *add;
    void *arg;
    struct ev_timer sweep;
};

static void front_free(struct front *f)
{
    struct admin_tls *at = f->at;
    ev_del(at->b->loop, f->fd);
    close(f->fd);
    if (f->sp >= 0) {
        ev_del(at->b->loop, f->sp);
        close(f->sp);
    }
    tls_free(f->tls);
    if (f->prev)
        f->prev->next = f->next;
    else
        at->fronts = f->next;
    if (f->next)
        f->next->prev = f->prev;
    at->nfronts--;
    free(f);
}

/* Sets the events both sockets wait for from the buffers' state. */
static void front_arm(struct front *f)
{
    struct ev_loop *l = f->at->b->loop;
    if (f->handshaking)
        return;
    int cm = (f->up_len < FRONT_BUF ? EV_READ : 0) |
             (f->down_len > f->down_off || f->tls_rw ? EV_WRITE : 0);
    ev_mod(l, f->fd, cm);
    int sm = (!f->mhd_eof && f->down_len < FRONT_BUF ? EV_READ : 0) | (f->up_len ? EV_WRITE : 0);
    ev_mod(l, f->sp, sm);
}

/* Moves bytes until nothing moves. Returns -1 when the connection is over. */
static int front_pump(struct front *f)
{
    for (bool moved = true; moved;) {
        moved = false;
        if (f->up_len < FRONT_BUF) {
            ssize_t n = tls_read(f->tls, f->up + f->up_len, FRONT_BUF - f->up_len);
            f->tls_rw = n == TLS_WANT_WRITE;
            if (n == TLS_EOF || n == TLS_ERR)
                return -1;
            if (n > 0)
                f->up_len += (size_t)n, moved = true;
        }
        if (f->up_len) {
            ssize_t n = write(f->sp, f->up, f->up_len);
            if (n < 0 && errno != EAGAIN && errno != EINTR)
                return -1;
            if (n > 0) {
                memmove(f->up, f->up + n, f->up_len - (size_t)n);
                f->up_len -= (size_t)n;
                moved = true;
            }
        }
        if (f->down_off == f->down_len)
            f->down_off = f->down_len = 0;
        if (!f->mhd_eof && f->down_len < FRONT_BUF) {
            ssize_t n = read(f->sp, f->down + f->down_len, FRONT_BUF - f->down_len);
            if (n == 0)
                f->mhd_eof = true;
            else if (n < 0 && errno != EAGAIN && errno != EINTR)
                return -1;
            else if (n > 0)
                f->down_len += (size_t)n, moved = true;
        }
        if (f->down_len > f->down_off) {
            struct iovec iov = {f->down + f->down_off, f->down_len - f->down_off};
            ssize_t n = tls_writev(f->tls, &iov, 1);
            if (n == TLS_ERR || n == TLS_EOF)
                return -1;
            f->tls_rw = n == TLS_WANT_WRITE;
            if (n > 0)
                f->down_off += (size_t)n, moved = true;
        }
    }
    return f->mhd_eof && f->down_off == f->down_len ? -1 : 0;
}

static void front_on_event(struct ev_loop *l, int fd, void *arg, int mask);

/* After the handshake: the socket pair, and MHD takes its end. Returns 0 or -1. */
static int front_join(struct front *f)
{
    struct admin_tls *at = f->at;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    f->sp = sv[0];
    f->mhd_fd = sv[1];
    char name[256];
    f->verified = tls_peer_name(f->tls, false, name, sizeof name) == 0;
    if (ev_add(at->b->loop, f->sp, EV_READ, front_on_event, f) < 0) {
        close(sv[1]);
        return -1;
    }
    if (at->add(at->arg, sv[1], &f->sa, sizeof f->sa) < 0)
        return -1; /* MHD closed sv[1] */
    log_debug("admin: TLS connection from %s%s%s", inet_ntoa(f->sa.sin_addr),
              f->verified ? ", client certificate " : "", f->verified ? name : "");
    return 0;
}

static void front_on_event(struct ev_loop *l, int fd, void *arg, int mask)
{
    struct front *f = arg;
    if (f->handshaking) {
        int rc = tls_handshake(f->tls, "admin");
        if (rc == TLS_WANT_READ || rc == TLS_WANT_WRITE) {
            ev_mod(l, f->fd, rc == TLS_WANT_READ ? EV_READ : EV_WRITE);
            return;
        }
        f->handshaking = false;
        if (rc != 1 || front_join(f) < 0) {
            front_free(f);
            return;
        }
    }
    if (front_pump(f) < 0) {
        front_free(f);
        return;
    }
    front_arm(f);
}

static void at_on_accept(struct ev_loop *l, int fd, void *arg, int mask)
{
    struct admin_tls *at = arg;
    for (int i = 0; i < 16; i++) {
        struct sockaddr_in sa;
        socklen_t sl = sizeof sa;
        int cfd = accept4(fd, (struct sockaddr *)&sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0)
            return;
        struct front *f = at->nfronts < FRONT_MAX ? calloc(1, sizeof *f) : NULL;
        if (!f || !(f->tls = tls_new(at->ctx, cfd))) {
            free(f);
            close(cfd);
            continue;
        }
        int one = 1;
        setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        f->at = at;
        f->fd = cfd;
        f->sp = f->mhd_fd = -1;
        f->sa = sa;
        f->handshaking = true;
        f->started_us = ev_now_us();
        if (ev_add(l, cfd, EV_READ, front_on_event, f) < 0) {
            tls_free(f->tls);
            free(f);
            close(cfd);
            continue;
        }
        f->next = at->fronts;
        if (at->fronts)
            at->fronts->prev = f;
        at->fronts = f;
        at->nfronts++;
    }
}

/* Drops handshakes that do not finish; MHD times out the connections it has. */
static void at_on_sweep(struct ev_loop *l, void *arg)
{
    struct admin_tls *at = arg;
    int64_t now = ev_now_us();
    for (struct front *f = at->fronts, *n; f; f = n) {
        n = f->next;
        if (f->handshaking && now - f->started_us > HANDSHAKE_US)
            front_free(f);
    }
    ev_timer_start(l, &at->sweep, SWEEP_US);
}

static struct tls_ctx *at_ctx(const struct config *cfg)
{
    char err[512];
    const char *ca = cfg->admin_ssl_client_auth;
    int mode = !strcmp(ca, "required")    ? TLS_CLIENT_REQUIRED
               : !strcmp(ca, "requested") ? TLS_CLIENT_REQUESTED
               : !strcmp(ca, "none")      ? TLS_CLIENT_NONE
                                          : -1;
    if (mode < 0) {
        log_error("admin.ssl.client.auth %s: want none, requested or required", ca);
        return NULL;
    }
    struct tls_conf tc = {cfg->ssl_cert_file, cfg->ssl_key_file, cfg->ssl_ca_file, mode,
                          cfg->ssl_protocol_min};
    struct tls_ctx *ctx = tls_ctx_new(&tc, err, sizeof err);
    if (!ctx)
        log_error("admin TLS: %s", err);
    return ctx;
}

struct admin_tls *admin_tls_new(struct broker *b, admin_tls_add_fn *add, void *arg)
{
    struct admin_tls *at = calloc(1, sizeof *at);
    if (!at)
        return NULL;
    at->b = b;
    at->add = add;
    at->arg = arg;
    at->fd = -1;
    ev_timer_init(&at->sweep, at_on_sweep, at);
    if (!(at->ctx = at_ctx(&b->cfg)))
        goto fail;
    if ((at->fd = server_listen_socket(b->cfg.admin_listen)) < 0) {
        log_error("admin: cannot listen on %s: %s", b->cfg.admin_listen, strerror(errno));
        goto fail;
    }
    if (ev_add(b->loop, at->fd, EV_READ, at_on_accept, at) < 0 ||
        ev_timer_start(b->loop, &at->sweep, SWEEP_US) < 0)
        goto fail;
    return at;
fail:
    admin_tls_free(at);
    return NULL;
}

void admin_tls_free(struct admin_tls *at)
{
    if (!at)
        return;
    while (at->fronts)
        front_free(at->fronts);
    ev_timer_stop(at->b->loop, &at->sweep);
    if (at->fd >= 0) {
        ev_del(at->b->loop, at->fd);
        close(at->fd);
    }
    tls_ctx_free(at->ctx);
    free(at);
}

int admin_tls_reload(struct admin_tls *at)
{
    struct tls_ctx *ctx = at ? at_ctx(&at->b->cfg) : NULL;
    if (!ctx)
        return -1;
    tls_ctx_free(at->ctx);
    at->ctx = ctx;
    log_info("admin: certificate reloaded");
    return 0;
}

bool admin_tls_verified(const struct admin_tls *at, int mhd_fd)
{
    for (const struct front *f = at ? at->fronts : NULL; f; f = f->next)
        if (f->mhd_fd == mhd_fd && !f->mhd_eof)
            return f->verified;
    return false;
}
