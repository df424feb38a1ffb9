/* fuzz_frame.c: libFuzzer target for the request decoder and every API's handler. The
 * input is one request frame as kafka_handle() receives it (without its 4-byte size
 * prefix), or several joined by FZ_SEP, handed one after the other to one connection
 * the way conn.c's conn_dispatch() would: a bare SASL token goes to
 * kapi_sasl_raw_token() while a SaslHandshake v0 exchange is under way, and the
 * sequence stops where the connection would close. Each frame sits in a heap buffer of
 * its exact size, so ASan sees any read past its end.
 *
 * The broker is fuzz_broker.h's: it persists across inputs and is rebuilt every
 * FZB_RESET of them, so what inputs create stays bounded. The connection is rebuilt for
 * every input from the first frame's byte 4 (the top byte of its correlation id, which
 * the broker only echoes; real clients leave it 0), so the authorization and SASL paths
 * run:
 *   bit 0     authorizer=acl (b->authorize)
 *   bit 1     the connection came through a SASL_PLAINTEXT listener
 *   bits 2-3  its principal: ANONYMOUS (on a SASL listener: not yet authenticated),
 *             alice, bob (both authenticated), admin (a super user)
 *   bits 4-5  a SASL exchange already started: none, PLAIN, SCRAM-SHA-256 or
 *             SCRAM-SHA-512 (with FZ_SNONCE as the server nonce, so a seed can carry a
 *             client-final with a valid proof)
 *   bit 6     that exchange came from SaslHandshake v0: frames are bare tokens
 * Deferred responses (a parked Fetch, a JoinGroup waiting for members, acks=all, a
 * delayed authentication failure) are cancelled right after their handler returns, as
 * a connection closing at that point would, unless they completed meanwhile. */
#include "fuzz_broker.h"

#include "conn.h"
#include "kapi_sasl.h"

enum { FZ_MAX_FRAMES = 64 };

static const char FZ_SEP[] = "#FRAME#\n"; /* between frames of one input */
static const char FZ_SNONCE[] = "fuzzServerNonce0123456789";

/* Mode bits, from byte 4 of the first frame. */
enum {
    FZ_AUTHORIZE = 1 << 0,
    FZ_SASL_LISTENER = 1 << 1,
    FZ_PRINCIPAL_SHIFT = 2,
    FZ_SASL_SHIFT = 4,
    FZ_SASL_RAW = 1 << 6,
};

static const char *const fz_principals[] = {"User:ANONYMOUS", "User:alice", "User:bob",
                                            "User:admin"};

static struct conn fz_conn;
static int fz_proto; /* what conn_protocol() says for fz_conn */

/* Linked with -Wl,--wrap=conn_protocol,--wrap=kslot_complete,--wrap=conn_abort
 * (Makefile): the scratch connection has no listener, so its protocol comes from the
 * input's mode byte; and no server, so a response that completes (a parked Fetch that
 * is answered while it hooks itself) or a close is recorded on the connection as
 * conn.c would, without queueing it for a flush that never comes. */
int __real_conn_protocol(const struct conn *c);
int __wrap_conn_protocol(const struct conn *c);
int __wrap_conn_protocol(const struct conn *c)
{
    return c == &fz_conn ? fz_proto : __real_conn_protocol(c);
}

void __real_kslot_complete(struct kslot *s);
void __wrap_kslot_complete(struct kslot *s);
void __wrap_kslot_complete(struct kslot *s)
{
    if (s->conn != &fz_conn) {
        __real_kslot_complete(s);
        return;
    }
    s->ready = true;
    s->cancel = NULL;
    kc_w_patch_i32(&s->w, 0, (int32_t)(s->w.len - 4));
}

void __real_conn_abort(struct conn *c);
void __wrap_conn_abort(struct conn *c);
void __wrap_conn_abort(struct conn *c)
{
    if (c == &fz_conn)
        c->closing = true;
    else
        __real_conn_abort(c);
}

/* Sets up the connection for one input from its mode byte. */
static void fz_conn_reset(struct broker *b, uint8_t mode)
{
    struct conn *c = &fz_conn;
    memset(c, 0, sizeof *c);
    c->fd = -1;
    c->b = b;
    ev_timer_init(&c->throttle, NULL, c); /* a quota throttle needs a server: never armed */
    snprintf(c->peer, sizeof c->peer, "127.0.0.1:1");
    snprintf(c->peer_ip, sizeof c->peer_ip, "127.0.0.1");
    int who = mode >> FZ_PRINCIPAL_SHIFT & 3;
    snprintf(c->principal, sizeof c->principal, "%s", fz_principals[who]);
    b->authorize = mode & FZ_AUTHORIZE;
    fz_proto = mode & FZ_SASL_LISTENER ? PROTO_SASL_PLAINTEXT : PROTO_PLAINTEXT;
    c->auth_pending = fz_proto == PROTO_SASL_PLAINTEXT && who == 0;
    int sasl = mode >> FZ_SASL_SHIFT & 3;
    if (!sasl || fz_proto != PROTO_SASL_PLAINTEXT)
        return;
    c->sasl_started = true;
    c->sasl_raw = mode & FZ_SASL_RAW;
    c->sasl_mech = (int8_t)(SASL_MECH_PLAIN + sasl - 1);
    if (c->sasl_mech == SASL_MECH_PLAIN)
        return;
    size_t slen;
    const uint8_t *secret = principals_secret(b->principals, &slen);
    c->scram = scram_server_new(sasl == 2 ? SCRAM_SHA_256 : SCRAM_SHA_512, secret, slen);
    if (!c->scram || scram_server_set_nonce_for_test(c->scram, FZ_SNONCE, strlen(FZ_SNONCE)) < 0)
        abort();
    scram_server_set_iterations(c->scram, SCRAM_MIN_ITERATIONS);
}

/* Runs one frame (len bytes, copied to the heap) on the connection as conn_dispatch()
 * does. Returns false when the connection would now close or stop reading. */
static bool fz_frame(const uint8_t *data, size_t len)
{
    struct conn *c = &fz_conn;
    struct kslot s;
    bool go = true;
    uint8_t *frame = malloc(len ? len : 1);
    if (!frame)
        abort();
    memcpy(frame, data, len);
    memset(&s, 0, sizeof s);
    s.conn = c;
    kc_writer_init(&s.w, (size_t)c->b->cfg.max_response_bytes + 1024);
    if (c->sasl_raw && c->sasl_started) {
        go = kapi_sasl_raw_token(c, &s, frame, len) == 0;
    } else {
        int rc = kafka_handle(c->b, c, &s, frame, len);
        if (rc == KAPI_DEFER && !s.ready && !s.cancel)
            __builtin_trap(); /* a closing connection could not unhook it: use after free */
        if (rc == KAPI_DEFER && !s.ready)
            s.cancel(&s);
        bool answered = rc == KAPI_DONE || (rc == KAPI_DEFER && s.ready);
        if (answered && (s.w.len < 8 || kc_get_be32(s.w.p + 4) != kc_get_be32(frame + 4)))
            __builtin_trap(); /* every response starts with the request's correlation id */
        go = rc != KAPI_EPARSE;
    }
    kc_writer_free(&s.w);
    free(frame);
    return go && !c->closing && !c->close_after_send;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_conn_reset(fzb_get(), size > 4 ? data[4] : 0);
    const uint8_t *p = data, *end = data + size;
    for (int n = 0; n < FZ_MAX_FRAMES; n++) {
        const uint8_t *sep = memmem(p, (size_t)(end - p), FZ_SEP, sizeof FZ_SEP - 1);
        const uint8_t *fe = sep ? sep : end;
        if (!fz_frame(p, (size_t)(fe - p)) || !sep)
            break;
        p = sep + sizeof FZ_SEP - 1;
    }
    sasl_conn_free(&fz_conn);
    return 0;
}
