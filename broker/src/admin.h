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

#endif
