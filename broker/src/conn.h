/* conn.h: Kafka client connections. Each connection reads length-prefixed frames,
 * hands each complete frame to the protocol layer, and keeps responses in request order
 * in a queue of slots. A slot may complete later (a parked Fetch, an acks=all Produce
 * waiting for fsync); later responses wait behind it, as Kafka requires. */
#ifndef SLUICE_CONN_H
#define SLUICE_CONN_H

#include "ev.h"
#include "kcodec.h"

#include <stdbool.h>
#include <stdint.h>

struct broker;
struct conn;
struct kslot;
struct listener;
struct tls;
struct scram_server;

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
    char peer[64];      /* ip:port, for logs */
    char peer_ip[48];   /* for ACL host matching and per-IP limits */
    char principal[264]; /* "User:<name>"; "User:ANONYMOUS" until authenticated */
    struct listener *lst; /* the listener it came through; NULL in unit tests */
    struct tls *tls;      /* NULL on plaintext listeners */
    bool handshaking;     /* TLS handshake not finished */
    bool tls_rw;          /* a TLS read wants the socket writable */
    /* SASL (kapi_sasl.c) */
    bool auth_pending;    /* only ApiVersions and the SASL APIs are served */
    bool sasl_raw;        /* SaslHandshake v0: tokens arrive as bare frames */
    bool sasl_started;    /* a mechanism was chosen; tokens may follow */
    bool sasl_busy;       /* a password check is running: take no request */
    int8_t sasl_mech;     /* enum sasl_mech_id */
    struct scram_server *scram;
    int64_t auth_deadline_us;  /* authenticate (again, KIP-368) by then; 0: no deadline */
    int64_t accepted_us, last_io_us, frame_start_us;
    int64_t throttle_until_us; /* quota: not read before then (quota.h) */
    struct ev_timer throttle;  /* ends the throttle */
    uint64_t id;
    /* input */
    uint8_t *in;
    size_t in_len, in_cap, in_pos;
    bool paused;        /* not reading: too many requests in flight or too much output */
    bool closing;
    bool close_after_send; /* takes no more requests; closes once its output is gone */
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

/* Listener security protocols, as Kafka names them. */
enum { PROTO_PLAINTEXT = 0, PROTO_SSL = 1, PROTO_SASL_PLAINTEXT = 2, PROTO_SASL_SSL = 3 };

/* Starts every listener in cfg.listeners (or PLAINTEXT on cfg.kafka_listen). Returns
 * NULL (logged) on failure. */
struct server *server_new(struct broker *b);
/* Re-reads the TLS certificate and key files of every TLS listener (SIGHUP). Live
 * connections keep the context they started with. Returns 0, or -1 if any failed
 * (logged; that listener keeps its old context). */
int server_reload_tls(struct server *srv);
void server_free(struct server *srv);
/* A non-blocking IPv4 socket listening on "host:port" ("", "*" or 0.0.0.0: any).
 * Returns the fd, or -1 with errno set. */
int server_listen_socket(const char *hostport);
/* Stops accepting; existing connections carry on. */
void server_stop_accepting(struct server *srv);
int server_connection_count(const struct server *srv);
/* Whether connection id is still open; O(connections), for rare events only. */
bool server_conn_alive(const struct server *srv, uint64_t id);
/* Responses still waiting (parked fetches, acks=all produces), for draining. */
int server_pending_slots(const struct server *srv);

/* The host and port clients are told to use for c's listener. */
void conn_advertised(const struct conn *c, const char **host, int32_t *port);
/* The listener's security protocol (PROTO_*); PLAINTEXT without a listener. */
int conn_protocol(const struct conn *c);
/* Records a failed authentication from c's address. Returns true when that address is
 * now over failed.authentications.per.ip.per.minute. */
bool conn_auth_failed(struct conn *c);
/* Whether c's address is refused further attempts for now. */
bool conn_auth_blocked(const struct conn *c);

/* Reads nothing more from c for ms milliseconds (a quota's throttle time). */
void conn_throttle(struct conn *c, int32_t ms);

/* Takes no more requests from c and closes it once every response has been sent. */
void conn_close_after_send(struct conn *c);

/* Closes c before the loop next sleeps (from outside its own event callback). */
void conn_abort(struct conn *c);

/* Marks a pending slot complete; its connection flushes before the loop sleeps. */
void kslot_complete(struct kslot *s);

#endif
