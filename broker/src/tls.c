/* tls.c: OpenSSL behind the small non-blocking interface of tls.h. A struct tls_ctx is
 * an SSL_CTX; each SSL holds a reference to the context it was made from, which is
 * what lets a reload swap contexts under live connections. */
#include "tls.h"

#include "log.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tls {
    SSL *ssl;
};

/* The last OpenSSL error as text, and the queue cleared. */
static const char *ssl_errstr(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();
    if (!e) {
        snprintf(buf, len, "unknown error");
        return buf;
    }
    ERR_error_string_n(e, buf, len);
    ERR_clear_error();
    return buf;
}

static int min_proto(const char *v)
{
    if (!v || !*v || !strcmp(v, "TLSv1.2"))
        return TLS1_2_VERSION;
    if (!strcmp(v, "TLSv1.3"))
        return TLS1_3_VERSION;
    return -1;
}

struct tls_ctx *tls_ctx_new(const struct tls_conf *conf, char *err, size_t errlen)
{
    char e[256];
    int minv = min_proto(conf->min_version);
    if (minv < 0) {
        snprintf(err, errlen, "ssl.protocol.min %s: want TLSv1.2 or TLSv1.3", conf->min_version);
        return NULL;
    }
    if (!conf->cert_file || !*conf->cert_file || !conf->key_file || !*conf->key_file) {
        snprintf(err, errlen, "a TLS listener needs ssl.cert.file and ssl.key.file");
        return NULL;
    }
    if (conf->client_auth != TLS_CLIENT_NONE && (!conf->ca_file || !*conf->ca_file)) {
        snprintf(err, errlen, "ssl.client.auth needs ssl.ca.file");
        return NULL;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(err, errlen, "SSL_CTX_new: %s", ssl_errstr(e, sizeof e));
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, minv);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_num_tickets(ctx, 0); /* clients reconnect rarely; no resumption state */
    /* read whole socket buffers, not one record header at a time: fewer syscalls (the
     * connection loop reads until TLS has nothing pending) */
    SSL_CTX_set_read_ahead(ctx, 1);
    /* AES-128-GCM first: as safe for this use and faster than AES-256 */
    SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:"
                                  "TLS_AES_256_GCM_SHA384");
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (SSL_CTX_use_certificate_chain_file(ctx, conf->cert_file) != 1) {
        snprintf(err, errlen, "certificate %s: %s", conf->cert_file, ssl_errstr(e, sizeof e));
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, conf->key_file, SSL_FILETYPE_PEM) != 1) {
        snprintf(err, errlen, "private key %s: %s", conf->key_file, ssl_errstr(e, sizeof e));
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "private key %s does not match certificate %s", conf->key_file,
                 conf->cert_file);
        goto fail;
    }
    if (conf->client_auth != TLS_CLIENT_NONE) {
        if (SSL_CTX_load_verify_locations(ctx, conf->ca_file, NULL) != 1) {
            snprintf(err, errlen, "CA file %s: %s", conf->ca_file, ssl_errstr(e, sizeof e));
            goto fail;
        }
        int mode = SSL_VERIFY_PEER;
        if (conf->client_auth == TLS_CLIENT_REQUIRED)
            mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        SSL_CTX_set_verify(ctx, mode, NULL);
        SSL_CTX_set_verify_depth(ctx, 8);
    }
    return (struct tls_ctx *)ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

void tls_ctx_free(struct tls_ctx *ctx) { SSL_CTX_free((SSL_CTX *)ctx); }

struct tls *tls_new(struct tls_ctx *ctx, int fd)
{
    struct tls *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    if (!(t->ssl = SSL_new((SSL_CTX *)ctx)) || SSL_set_fd(t->ssl, fd) != 1) {
        SSL_free(t->ssl);
        free(t);
        ERR_clear_error();
        return NULL;
    }
    SSL_set_accept_state(t->ssl);
    return t;
}

void tls_free(struct tls *t)
{
    if (!t)
        return;
    SSL_free(t->ssl);
    free(t);
}

/* Maps an SSL call's result to TLS_WANT_*, TLS_EOF or TLS_ERR. */
static int tls_status(struct tls *t, int rc)
{
    int e = SSL_get_error(t->ssl, rc);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        return TLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return TLS_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        return TLS_EOF;
    default:
        ERR_clear_error();
        return TLS_ERR;
    }
}

int tls_handshake(struct tls *t, const char *peer)
{
    int rc = SSL_do_handshake(t->ssl);
    if (rc == 1)
        return 1;
    int e = SSL_get_error(t->ssl, rc);
    if (e == SSL_ERROR_WANT_READ)
        return TLS_WANT_READ;
    if (e == SSL_ERROR_WANT_WRITE)
        return TLS_WANT_WRITE;
    char buf[256];
    long v = SSL_get_verify_result(t->ssl);
    log_info("%s: TLS handshake failed: %s%s%s", peer, ssl_errstr(buf, sizeof buf),
             v != X509_V_OK ? "; certificate: " : "",
             v != X509_V_OK ? X509_verify_cert_error_string(v) : "");
    return TLS_ERR;
}

ssize_t tls_read(struct tls *t, void *buf, size_t len)
{
    size_t got = 0;
    int rc = SSL_read_ex(t->ssl, buf, len, &got);
    if (rc == 1)
        return (ssize_t)got;
    return tls_status(t, rc);
}

ssize_t tls_writev(struct tls *t, const struct iovec *iov, int n)
{
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        size_t done = 0;
        int rc = SSL_write_ex(t->ssl, iov[i].iov_base, iov[i].iov_len, &done);
        if (rc != 1) {
            int st = tls_status(t, rc);
            return total ? (ssize_t)total : st == TLS_EOF ? TLS_ERR : st;
        }
        total += done;
        if (done < iov[i].iov_len)
            break;
    }
    return (ssize_t)total;
}

bool tls_has_pending(const struct tls *t) { return SSL_has_pending(t->ssl); }

int tls_peer_name(const struct tls *t, bool dn, char *buf, size_t len)
{
    X509 *cert = SSL_get0_peer_certificate(t->ssl);
    if (!cert || SSL_get_verify_result(t->ssl) != X509_V_OK || len == 0)
        return -1;
    X509_NAME *name = X509_get_subject_name(cert);
    if (dn) {
        BIO *bio = BIO_new(BIO_s_mem());
        if (!bio)
            return -1;
        X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253);
        int n = BIO_read(bio, buf, (int)len - 1);
        BIO_free(bio);
        if (n <= 0)
            return -1;
        buf[n] = 0;
        return 0;
    }
    int n = X509_NAME_get_text_by_NID(name, NID_commonName, buf, (int)len);
    /* a CN with an embedded NUL would name somebody else */
    return n > 0 && (size_t)n < len && strlen(buf) == (size_t)n ? 0 : -1;
}

const char *tls_version(const struct tls *t) { return SSL_get_version(t->ssl); }
