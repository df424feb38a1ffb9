/* tls.h: server-side TLS (OpenSSL) for the Kafka and admin listeners. A context is
 * built from PEM files and can be rebuilt (SIGHUP) while connections made under the
 * old one carry on; a connection's TLS state is driven by the event loop, never
 * blocking: every call reports whether it wants the socket readable or writable. */
#ifndef SLUICE_TLS_H
#define SLUICE_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

enum tls_client_auth { TLS_CLIENT_NONE = 0, TLS_CLIENT_REQUESTED, TLS_CLIENT_REQUIRED };

struct tls_conf {
    const char *cert_file;  /* PEM certificate chain */
    const char *key_file;   /* PEM private key */
    const char *ca_file;    /* PEM CAs that client certificates must chain to */
    int client_auth;        /* enum tls_client_auth */
    const char *min_version; /* "TLSv1.2" (default) or "TLSv1.3" */
};

struct tls_ctx;
struct tls;

/* Builds a context; NULL with a message in err (missing file, key not matching). */
struct tls_ctx *tls_ctx_new(const struct tls_conf *conf, char *err, size_t errlen);
/* Drops a reference; connections made under it keep it alive until they close. */
void tls_ctx_free(struct tls_ctx *ctx);

/* Wraps an accepted socket. NULL on allocation failure. */
struct tls *tls_new(struct tls_ctx *ctx, int fd);
void tls_free(struct tls *t);

/* Results of the I/O calls below besides byte counts. */
enum { TLS_WANT_READ = -2, TLS_WANT_WRITE = -3, TLS_ERR = -1, TLS_EOF = 0 };

/* Advances the handshake: 1 when complete, TLS_WANT_* while it goes on, TLS_ERR when
 * it failed (a reason is logged at debug level). */
int tls_handshake(struct tls *t, const char *peer);
/* Reads decrypted bytes: > 0, TLS_EOF, TLS_WANT_*, or TLS_ERR. */
ssize_t tls_read(struct tls *t, void *buf, size_t len);
/* Writes the iovecs in order: the bytes taken (> 0), TLS_WANT_*, or TLS_ERR. */
ssize_t tls_writev(struct tls *t, const struct iovec *iov, int n);
/* Whether decrypted or undecrypted input is buffered inside TLS, so that the socket
 * may not signal readable although there is something to read. */
bool tls_has_pending(const struct tls *t);
/* The verified client certificate's subject common name (or the whole subject DN when
 * dn is true) into buf. Returns 0, or -1 when the peer sent no verified certificate. */
int tls_peer_name(const struct tls *t, bool dn, char *buf, size_t len);
/* "TLSv1.3" etc., for logs. */
const char *tls_version(const struct tls *t);

#endif
