/* admin_tls.h: TLS in front of the admin HTTP API. libmicrohttpd's own TLS is GnuTLS,
 * so the admin listener terminates TLS with the same OpenSSL code as the Kafka
 * listeners (tls.h) and hands each connection's plaintext to MHD through a socket
 * pair; admin traffic is small, so the extra copy does not matter. Part of the admin
 * module: only admin*.c include libmicrohttpd. */
#ifndef SLUICE_ADMIN_TLS_H
#define SLUICE_ADMIN_TLS_H

#include <stdbool.h>

struct broker;
struct admin_tls;

/* Accepted connections are handed to MHD with add(arg, fd, peer address). */
typedef int admin_tls_add_fn(void *arg, int fd, const void *sa, unsigned salen);

/* Listens on cfg.admin_listen with TLS from the ssl.* files and
 * admin.ssl.client.auth. NULL on failure (logged). */
struct admin_tls *admin_tls_new(struct broker *b, admin_tls_add_fn *add, void *arg);
void admin_tls_free(struct admin_tls *t);
/* Re-reads the certificate and key; live connections keep the old ones. */
int admin_tls_reload(struct admin_tls *t);
/* Whether the MHD-side socket mhd_fd belongs to a connection whose client presented
 * a verified certificate. */
bool admin_tls_verified(const struct admin_tls *t, int mhd_fd);

#endif
