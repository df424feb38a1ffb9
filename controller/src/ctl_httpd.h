/* ctl_httpd.h: a tiny HTTP/1.0-style responder for /healthz, /readyz and /metrics on the
 * event loop. One request per connection; requests are capped at 8 KiB. */
#ifndef CTL_HTTPD_H
#define CTL_HTTPD_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>

#define CTL_HTTPD_MAX_CLIENTS 32
#define CTL_HTTPD_MAX_REQ 8192

struct ctl_httpd_client {
    int fd;
    size_t len;
    long long since_ms;
    char buf[CTL_HTTPD_MAX_REQ];
};

struct ctl_httpd {
    int lfd;
    struct ctl_httpd_client cl[CTL_HTTPD_MAX_CLIENTS];
    bool (*ready)(void *arg); /* for /readyz */
    void *arg;
};

/* Listens on "host:port" (":port" means all interfaces). Returns 0 or -1. */
int ctl_httpd_open(struct ctl_httpd *h, const char *listen);
void ctl_httpd_close(struct ctl_httpd *h);
/* Fills fds (room for 1 + CTL_HTTPD_MAX_CLIENTS) and returns how many. */
int ctl_httpd_fds(struct ctl_httpd *h, struct pollfd *fds);
/* Handles the revents that came back for the fds that ctl_httpd_fds filled. */
void ctl_httpd_handle(struct ctl_httpd *h, const struct pollfd *fds, int n);
/* The port actually bound (for ":0"). */
int ctl_httpd_port(const struct ctl_httpd *h);

#endif
