/* ctl_httpd.c: the operations endpoint. Responses are small, so they are written with a
 * short send timeout rather than buffered across loop turns. */
#include "ctl_httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "ctl_metrics.h"
#include "ctl_util.h"

#define CLIENT_TIMEOUT_MS 5000

int ctl_httpd_open(struct ctl_httpd *h, const char *listen_addr)
{
    char host[256] = "0.0.0.0";
    const char *colon = strrchr(listen_addr, ':');
    int port = atoi(colon ? colon + 1 : listen_addr);
    h->lfd = -1;
    for (int i = 0; i < CTL_HTTPD_MAX_CLIENTS; i++)
        h->cl[i].fd = -1;
    if (colon && colon != listen_addr)
        snprintf(host, sizeof host, "%.*s", (int)(colon - listen_addr), listen_addr);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        ctl_error("metrics listen address %s: only IPv4 host:port is supported", listen_addr);
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 64) < 0) {
        ctl_error("cannot listen on %s: %s", listen_addr, strerror(errno));
        close(fd);
        return -1;
    }
    h->lfd = fd;
    return 0;
}

int ctl_httpd_port(const struct ctl_httpd *h)
{
    struct sockaddr_in sa;
    socklen_t l = sizeof sa;
    if (h->lfd < 0 || getsockname(h->lfd, (struct sockaddr *)&sa, &l) < 0)
        return -1;
    return ntohs(sa.sin_port);
}

static void cl_close(struct ctl_httpd_client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->len = 0;
}

void ctl_httpd_close(struct ctl_httpd *h)
{
    for (int i = 0; i < CTL_HTTPD_MAX_CLIENTS; i++)
        cl_close(&h->cl[i]);
    if (h->lfd >= 0)
        close(h->lfd);
    h->lfd = -1;
}

int ctl_httpd_fds(struct ctl_httpd *h, struct pollfd *fds)
{
    int n = 0;
    long long now = ctl_now_ms();
    if (h->lfd < 0)
        return 0;
    fds[n++] = (struct pollfd){.fd = h->lfd, .events = POLLIN};
    for (int i = 0; i < CTL_HTTPD_MAX_CLIENTS; i++) {
        if (h->cl[i].fd >= 0 && now - h->cl[i].since_ms > CLIENT_TIMEOUT_MS)
            cl_close(&h->cl[i]); /* a slow or idle client */
        if (h->cl[i].fd >= 0)
            fds[n++] = (struct pollfd){.fd = h->cl[i].fd, .events = POLLIN};
    }
    return n;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void respond(int fd, int code, const char *ctype, const char *body, size_t len)
{
    char hdr[256];
    const char *text = code == 200 ? "OK" : code == 404 ? "Not Found" : code == 503 ? "Service Unavailable" : "Bad Request";
    int n = snprintf(hdr, sizeof hdr,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     code, text, ctype, len);
    struct timeval tv = {1, 0};
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    send_all(fd, hdr, (size_t)n);
    send_all(fd, body, len);
}

/* Answers a complete request in c->buf. */
static void cl_serve(struct ctl_httpd *h, struct ctl_httpd_client *c)
{
    char method[8] = "", path[256] = "";
    c->buf[c->len < CTL_HTTPD_MAX_REQ ? c->len : CTL_HTTPD_MAX_REQ - 1] = 0;
    if (sscanf(c->buf, "%7s %255s", method, path) != 2) {
        respond(c->fd, 400, "text/plain", "bad request\n", 12);
        return;
    }
    char *q = strchr(path, '?');
    if (q)
        *q = 0;
    if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
        respond(c->fd, 400, "text/plain", "only GET\n", 9);
    } else if (!strcmp(path, "/healthz")) {
        respond(c->fd, 200, "text/plain", "ok\n", 3);
    } else if (!strcmp(path, "/readyz")) {
        bool r = !h->ready || h->ready(h->arg);
        respond(c->fd, r ? 200 : 503, "text/plain", r ? "ok\n" : "syncing\n", r ? 3 : 8);
    } else if (!strcmp(path, "/metrics")) {
        size_t len = 0;
        char *m = ctl_metrics_render(&len);
        if (m)
            respond(c->fd, 200, "text/plain; version=0.0.4", m, len);
        else
            respond(c->fd, 503, "text/plain", "oom\n", 4);
        free(m);
    } else
        respond(c->fd, 404, "text/plain", "not found\n", 10);
}

static void accept_all(struct ctl_httpd *h)
{
    for (;;) {
        int fd = accept4(h->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        int i = 0;
        while (i < CTL_HTTPD_MAX_CLIENTS && h->cl[i].fd >= 0)
            i++;
        if (i == CTL_HTTPD_MAX_CLIENTS) {
            close(fd); /* full: the client retries */
            continue;
        }
        h->cl[i].fd = fd;
        h->cl[i].len = 0;
        h->cl[i].since_ms = ctl_now_ms();
    }
}

static void cl_read(struct ctl_httpd *h, struct ctl_httpd_client *c)
{
    ssize_t r = recv(c->fd, c->buf + c->len, CTL_HTTPD_MAX_REQ - 1 - c->len, 0);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (r <= 0) {
        cl_close(c);
        return;
    }
    c->len += (size_t)r;
    c->buf[c->len] = 0;
    if (strstr(c->buf, "\r\n\r\n") || strstr(c->buf, "\n\n")) {
        cl_serve(h, c);
        cl_close(c);
    } else if (c->len >= CTL_HTTPD_MAX_REQ - 1) {
        respond(c->fd, 400, "text/plain", "request too large\n", 18);
        cl_close(c);
    }
}

void ctl_httpd_handle(struct ctl_httpd *h, const struct pollfd *fds, int n)
{
    for (int k = 0; k < n; k++) {
        if (!fds[k].revents)
            continue;
        if (fds[k].fd == h->lfd) {
            accept_all(h);
            continue;
        }
        for (int i = 0; i < CTL_HTTPD_MAX_CLIENTS; i++)
            if (h->cl[i].fd == fds[k].fd) {
                cl_read(h, &h->cl[i]);
                break;
            }
    }
}
