/* admin.h: the admin HTTP API (topics as JSON, Prometheus metrics, health probes). It
 * runs libmicrohttpd without threads of its own, driven by the broker's event loop, so
 * handlers may call the topic registry directly. */
#ifndef SLUICE_ADMIN_H
#define SLUICE_ADMIN_H

struct broker;
struct admin;

/* Listens on b->cfg.admin_listen ("host:port") and registers with b->loop. Returns NULL
 * (logged) when the address is bad or cannot be bound. */
struct admin *admin_new(struct broker *b);
/* Closes the listener and every open admin connection. NULL is a no-op. */
void admin_free(struct admin *a);
/* Re-reads the admin listener's TLS certificate and key (SIGHUP). Returns 0 or -1. */
int admin_reload_tls(struct admin *a);

#include <stddef.h>

/* FUZZING AND TESTS ONLY (tests/fuzz/fuzz_admin_json.c): answers one request through
 * the admin API's router and handlers without HTTP or a listener, as if it came on a
 * connection without TLS. url is the escaped path with an optional "?query";
 * authorization is the Authorization header (NULL: none); body is len bytes. Sets
 * *status and *out (malloc'd, NUL-terminated, *out_len bytes; the caller frees it).
 * Returns 0, or -1 when no response was produced. */
int admin_handle_for_test(struct broker *b, const char *method, const char *url,
                          const char *authorization, const char *body, size_t len, int *status,
                          char **out, size_t *out_len);

#endif
