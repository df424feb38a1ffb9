/* conn.h: Kafka client connections. Each connection reads length-prefixed frames,
 * hands each complete frame to the protocol layer, and keeps responses in request order
 * in a queue of slots. A slot may complete later (a parked Fetch, an acks=all Produce
 * waiting for fsync); later responses wait behind it, as Kafka requires. */
#ifndef SLUICE_CONN_H
#define SLUICE_CONN_H

#include "kcodec.h"

#include <stdbool.h>
#include <stdint.h>

struct broker;
struct conn;
struct kslot;

/* Called when the connection closes with the slot still pending, so its owner can
 * unhook it (remove waiters, leave the sync queue) before the slot is freed. */
typedef void kslot_cancel_fn(struct kslot *s);

struct kslot {
    struct kslot *next;
    struct conn *conn;
    kc_writer w;        /* the whole response, size prefix included */
    size_t sent;
    bool ready;
    bool noresp;        /* acks=0: nothing is sent */
    int16_t api_key;
    int64_t start_us;
    kslot_cancel_fn *cancel;
    void *owner;        /* the pending operation, for cancel */
    struct kslot *qprev, *qnext; /* links in its owner's wait queue */
};

struct conn {
    int fd;
    struct broker *b;
    char peer[64];
    uint64_t id;
    /* input */
    uint8_t *in;
    size_t in_len, in_cap, in_pos;
    bool paused;        /* not reading: too many requests in flight or too much output */
    bool closing;
    /* output */
    struct kslot *head, *tail;
    int nslots;
    size_t out_bytes;
    bool want_write;
    struct conn *prev, *next; /* all connections */
    struct conn *fprev, *fnext; /* connections with output to flush */
    bool in_flush_list;
};

struct server;

/* Starts listening on cfg.kafka_listen. Returns NULL (logged) on failure. */
struct server *server_new(struct broker *b);
void server_free(struct server *srv);
/* Stops accepting; existing connections carry on. */
void server_stop_accepting(struct server *srv);
int server_connection_count(const struct server *srv);
/* Whether connection id is still open; O(connections), for rare events only. */
bool server_conn_alive(const struct server *srv, uint64_t id);
/* Responses still waiting (parked fetches, acks=all produces), for draining. */
int server_pending_slots(const struct server *srv);

/* Closes c before the loop next sleeps (from outside its own event callback). */
void conn_abort(struct conn *c);

/* Marks a pending slot complete; its connection flushes before the loop sleeps. */
void kslot_complete(struct kslot *s);

#endif
