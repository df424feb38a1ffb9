/* kapi_sasl.c: SaslHandshake (17) and SaslAuthenticate (36), and the bare-token
 * exchange that follows SaslHandshake v0 (kafka-python). A connection on a SASL
 * listener is served nothing but ApiVersions and these until it authenticates; a
 * failure is answered after connection.failed.authentication.delay.ms and closes the
 * connection, and an address with too many recent failures is refused without a
 * password check. KIP-368: an authenticated connection may authenticate again, as the
 * same principal, before its session lifetime ends. */
#include "kapi_sasl.h"

#include "broker.h"
#include "conn.h"
#include "ev.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "principals.h"
#include "scram.h"
#include "topic.h"
#include "work.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>


static const char *const mech_names[] = {
    [SASL_MECH_PLAIN] = "PLAIN",
    [SASL_MECH_SCRAM_SHA_256] = "SCRAM-SHA-256",
    [SASL_MECH_SCRAM_SHA_512] = "SCRAM-SHA-512",
};

/* Whether mechanism m is in sasl.enabled.mechanisms. */
static bool mech_enabled(const struct config *cfg, int m)
{
    const char *want = mech_names[m];
    size_t wl = strlen(want);
    for (const char *p = cfg->sasl_mechanisms; *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        while (n && *p == ' ')
            p++, n--;
        while (n && p[n - 1] == ' ')
            n--;
        if (n == wl && !strncasecmp(p, want, n))
            return true;
        p = end ? end + 1 : p + n;
    }
    return false;
}

/* The mechanism named by s, or -1. */
static int mech_parse(kc_str s)
{
    for (int m = SASL_MECH_PLAIN; m <= SASL_MECH_SCRAM_SHA_512; m++)
        if (s.len > 0 && (size_t)s.len == strlen(mech_names[m]) &&
            !memcmp(s.p, mech_names[m], (size_t)s.len))
            return m;
    return -1;
}

static int scram_of(int mech)
{
    return mech == SASL_MECH_SCRAM_SHA_256 ? SCRAM_SHA_256 : SCRAM_SHA_512;
}

void sasl_conn_free(struct conn *c)
{
    scram_server_free(c->scram);
    c->scram = NULL;
}

/* ---- one authentication step, whatever the framing ---- */

enum { SASL_PENDING = 2 }; /* a PLAIN check is on the worker */

struct sasl_step {
    int rc;               /* SCRAM_CONTINUE, SCRAM_DONE, SCRAM_FAIL or SASL_PENDING */
    uint8_t *out;         /* token to send back (malloc'd) */
    size_t out_len;
    const char *why;      /* on failure */
    char user[PRINCIPAL_NAME_MAX + 1];
};

/* A PLAIN password check: one PBKDF2 (about 1 ms), done on the worker thread so the
 * loop does not stall for it. The connection takes no request until it is done. */
struct plain_job {
    struct plain_job *prev, *next; /* jobs not yet finished */
    struct sasl_jobs *owner;
    struct kslot *slot;            /* NULL once the connection went */
    bool raw;                      /* SaslHandshake v0 bare-token exchange */
    int16_t version;
    bool flexible;
    int mech;
    bool known, ok;
    struct scram_cred cred;
    char user[PRINCIPAL_NAME_MAX + 1];
    char pw[PRINCIPAL_PASSWORD_MAX + 1];
};

struct sasl_jobs {
    struct work *work;
    struct plain_job *jobs;
};

struct sasl_jobs *sasl_jobs_new(struct ev_loop *loop)
{
    struct sasl_jobs *j = calloc(1, sizeof *j);
    if (j && !(j->work = work_new(loop))) {
        free(j);
        j = NULL;
    }
    return j;
}

void sasl_jobs_free(struct sasl_jobs *j)
{
    if (!j)
        return;
    work_free(j->work); /* joins; queued jobs are dropped without done() */
    while (j->jobs) {
        struct plain_job *pj = j->jobs;
        j->jobs = pj->next;
        memset(pj->pw, 0, sizeof pj->pw);
        free(pj);
    }
    free(j);
}

static void plain_run(void *arg)
{
    struct plain_job *pj = arg;
    pj->ok = scram_cred_check(pj->mech, &pj->cred, pj->pw, strlen(pj->pw)) && pj->known;
    memset(pj->pw, 0, sizeof pj->pw);
}

static void plain_cancel(struct kslot *s)
{
    struct plain_job *pj = s->owner;
    if (pj)
        pj->slot = NULL; /* the worker may be running it: plain_done frees it */
}

static void plain_done(void *arg);

/* Starts the check of a PLAIN message. Sets st->rc to SASL_PENDING with the job in
 * *job, or to SCRAM_FAIL. */
static void step_plain(struct conn *c, const uint8_t *in, size_t len, struct sasl_step *st,
                       struct plain_job **job)
{
    struct broker *b = c->b;
    struct plain_job *pj = calloc(1, sizeof *pj);
    if (!pj) {
        st->why = "out of memory";
        return;
    }
    if (scram_plain_parse(in, len, pj->user, sizeof pj->user, pj->pw, sizeof pj->pw) < 0) {
        st->why = "malformed PLAIN message";
        free(pj);
        return;
    }
    snprintf(st->user, sizeof st->user, "%s", pj->user);
    /* checked against the stored SCRAM-SHA-256 credential (half the cost of SHA-512);
     * an unknown user costs the same derivation against a dummy, so the time taken does
     * not tell which users exist */
    pj->mech = SCRAM_SHA_256;
    const struct scram_cred *cred = principals_cred(b->principals, pj->user, pj->mech);
    if (!cred) {
        pj->mech = SCRAM_SHA_512;
        cred = principals_cred(b->principals, pj->user, pj->mech);
    }
    pj->known = cred != NULL;
    if (!cred)
        pj->mech = SCRAM_SHA_256;
    pj->cred = cred ? *cred : *principals_dummy(b->principals);
    if (!b->sasl_jobs) { /* no worker (tests, fuzzing): check here */
        plain_run(pj);
        st->rc = pj->ok ? SCRAM_DONE : SCRAM_FAIL;
        st->why = pj->ok ? NULL : "invalid credentials";
        free(pj);
        return;
    }
    if (work_submit(b->sasl_jobs->work, plain_run, plain_done, pj) < 0) {
        st->why = "out of memory";
        free(pj);
        return;
    }
    pj->owner = b->sasl_jobs;
    pj->next = pj->owner->jobs;
    if (pj->next)
        pj->next->prev = pj;
    pj->owner->jobs = pj;
    c->sasl_busy = true;
    st->rc = SASL_PENDING;
    *job = pj;
}

static void step_scram(struct conn *c, const uint8_t *in, size_t len, struct sasl_step *st)
{
    struct broker *b = c->b;
    if (!c->scram) {
        size_t slen;
        const uint8_t *secret = principals_secret(b->principals, &slen);
        c->scram = scram_server_new(scram_of(c->sasl_mech), secret, slen);
        if (!c->scram) {
            st->why = "out of memory";
            return;
        }
        scram_server_set_iterations(c->scram, b->cfg.sasl_scram_iterations);
    }
    st->rc = scram_server_step(c->scram, in, len, principals_cred, b->principals, &st->out,
                               &st->out_len, &st->why);
    const char *u = scram_server_user(c->scram);
    snprintf(st->user, sizeof st->user, "%s", u ? u : "");
    if (st->rc != SCRAM_CONTINUE)
        sasl_conn_free(c);
}

/* Runs one client token through the chosen mechanism; on success the connection takes
 * the principal. Fills st; st->rc says how it went. */
static void sasl_finish(struct conn *c, struct sasl_step *st);

static void sasl_step(struct conn *c, const uint8_t *in, size_t len, struct sasl_step *st,
                      struct plain_job **job)
{
    memset(st, 0, sizeof *st);
    st->rc = SCRAM_FAIL;
    if (!c->b->principals) {
        st->why = "no principals are configured";
    } else if (conn_auth_blocked(c)) {
        st->why = "too many failed authentications from this address";
    } else if (c->sasl_mech == SASL_MECH_PLAIN) {
        step_plain(c, in, len, st, job);
        if (st->rc == SASL_PENDING)
            return;
    } else {
        step_scram(c, in, len, st);
    }
    if (st->rc != SCRAM_CONTINUE)
        sasl_finish(c, st);
}

/* The end of an exchange: the connection takes the principal, or the failure is
 * counted against its address. */
static void sasl_finish(struct conn *c, struct sasl_step *st)
{
    char principal[sizeof c->principal];
    snprintf(principal, sizeof principal, "User:%s", st->user);
    if (st->rc == SCRAM_DONE && !c->auth_pending && strcmp(principal, c->principal)) {
        st->rc = SCRAM_FAIL; /* KIP-368: re-authentication keeps the principal */
        st->why = "re-authentication as a different principal";
    }
    metrics_auth(c->b->metrics, mech_names[c->sasl_mech], st->rc == SCRAM_DONE);
    c->sasl_started = false;
    if (st->rc != SCRAM_DONE) {
        log_info("%s: SASL %s authentication of '%s' failed: %s", c->peer,
                 mech_names[c->sasl_mech], st->user, st->why ? st->why : "unknown");
        conn_auth_failed(c);
        return;
    }
    snprintf(c->principal, sizeof c->principal, "%s", principal);
    c->auth_pending = false;
    c->sasl_raw = false;
    int64_t life = c->b->cfg.sasl_session_lifetime_ms;
    c->auth_deadline_us = life > 0 ? ev_now_us() + life * 1000 : 0;
    log_debug("%s: authenticated as %s (%s)", c->peer, c->principal, mech_names[c->sasl_mech]);
}

/* ---- delayed failure ---- */

struct sasl_delay {
    struct ev_timer t;
    struct kslot *slot;
};

static void delay_fire(struct ev_loop *l, void *arg)
{
    struct sasl_delay *d = arg;
    struct kslot *s = d->slot;
    free(d);
    s->owner = NULL;
    kslot_complete(s);
}

static void delay_cancel(struct kslot *s)
{
    struct sasl_delay *d = s->owner;
    if (!d)
        return;
    ev_timer_stop(s->conn->b->loop, &d->t);
    free(d);
}

/* A failed authentication: the connection takes no more requests and closes once the
 * response, sent after the configured delay, has gone. */
static int fail_later(struct conn *c, struct kslot *slot)
{
    conn_close_after_send(c);
    int delay = c->b->cfg.failed_auth_delay_ms;
    struct sasl_delay *d = delay > 0 ? calloc(1, sizeof *d) : NULL;
    if (!d)
        return KAPI_DONE;
    ev_timer_init(&d->t, delay_fire, d);
    d->slot = slot;
    slot->owner = d;
    slot->cancel = delay_cancel;
    ev_timer_start(c->b->loop, &d->t, (int64_t)delay * 1000);
    return KAPI_DEFER;
}

/* ---- SaslHandshake ---- */

static void write_mechanisms(const struct config *cfg, kc_writer *w)
{
    int n = 0;
    for (int m = SASL_MECH_PLAIN; m <= SASL_MECH_SCRAM_SHA_512; m++)
        n += mech_enabled(cfg, m);
    kc_w_array(w, false, n);
    for (int m = SASL_MECH_PLAIN; m <= SASL_MECH_SCRAM_SHA_512; m++)
        if (mech_enabled(cfg, m))
            kc_w_cstr(w, false, mech_names[m]);
}

int kapi_sasl_handshake(struct kreq *req, kc_writer *w)
{
    struct conn *c = req->conn;
    kc_str mech = kc_string(&req->r, false);
    if (!kc_ok(&req->r))
        return KAPI_EPARSE;
    int m = mech_parse(mech);
    int16_t err = KERR_NONE;
    if (!(conn_protocol(c) & PROTO_SASL_PLAINTEXT) || c->sasl_started ||
        (!c->auth_pending && req->api_version == 0))
        err = KERR_ILLEGAL_SASL_STATE;
    else if (m < 0 || !mech_enabled(&req->b->cfg, m))
        err = KERR_UNSUPPORTED_SASL_MECHANISM;
    kc_w_i16(w, err);
    write_mechanisms(&req->b->cfg, w);
    if (err) {
        log_info("%s: SaslHandshake for '%.*s' refused (error %d)", c->peer,
                 mech.len > 0 ? (int)(mech.len > 64 ? 64 : mech.len) : 0, mech.p ? mech.p : "",
                 err);
        if (err == KERR_ILLEGAL_SASL_STATE)
            conn_close_after_send(c);
        return KAPI_DONE;
    }
    c->sasl_mech = (int8_t)m;
    c->sasl_started = true;
    c->sasl_raw = req->api_version == 0;
    return KAPI_DONE;
}

/* ---- SaslAuthenticate ---- */

static void write_auth(kc_writer *w, int16_t version, bool fx, int16_t err, const char *msg,
                       const uint8_t *tok, size_t tok_len, int64_t lifetime_ms)
{
    kc_w_i16(w, err);
    kc_w_cstr(w, fx, msg);
    kc_w_bytes(w, fx, tok ? tok : (const uint8_t *)"", (int32_t)tok_len);
    if (version >= 1)
        kc_w_i64(w, lifetime_ms); /* session_lifetime_ms */
    kc_w_tags(w, fx);
}

static void write_authenticate(const struct kreq *req, kc_writer *w, int16_t err,
                               const char *msg, const uint8_t *tok, size_t tok_len,
                               int64_t lifetime_ms)
{
    write_auth(w, req->api_version, req->flexible, err, msg, tok, tok_len, lifetime_ms);
}

/* Writes the answer to a finished step: a failure (answered after the delay) or the
 * next token. Returns KAPI_DONE or KAPI_DEFER (the delay's timer completes it). */
static int answer_step(struct conn *c, struct kslot *slot, int16_t version, bool fx,
                       struct sasl_step *st)
{
    kc_writer *w = &slot->w;
    if (st->rc == SCRAM_FAIL) {
        char msg[160];
        snprintf(msg, sizeof msg, "Authentication failed with SASL mechanism %s: %s",
                 mech_names[c->sasl_mech], st->why ? st->why : "invalid credentials");
        write_auth(w, version, fx, KERR_SASL_AUTHENTICATION_FAILED, msg, NULL, 0, 0);
        free(st->out);
        return fail_later(c, slot);
    }
    int64_t life = st->rc == SCRAM_DONE ? c->b->cfg.sasl_session_lifetime_ms : 0;
    write_auth(w, version, fx, KERR_NONE, NULL, st->out, st->out_len, life);
    free(st->out);
    return KAPI_DONE;
}

/* A PLAIN check came back from the worker: finish the exchange and answer. */
static void plain_done(void *arg)
{
    struct plain_job *pj = arg;
    struct kslot *slot = pj->slot;
    if (slot) {
        struct conn *c = slot->conn;
        struct sasl_step st = {.rc = pj->ok ? SCRAM_DONE : SCRAM_FAIL,
                               .why = pj->ok ? NULL : "invalid credentials"};
        snprintf(st.user, sizeof st.user, "%s", pj->user);
        c->sasl_busy = false;
        slot->owner = NULL;
        slot->cancel = NULL;
        sasl_finish(c, &st);
        if (pj->raw) {
            if (st.rc == SCRAM_DONE) {
                kslot_complete(slot); /* an empty token: PLAIN is one round */
            } else {
                conn_abort(c); /* Kafka closes a v0 exchange without a reply */
            }
        } else if (answer_step(c, slot, pj->version, pj->flexible, &st) == KAPI_DONE) {
            kslot_complete(slot);
        }
    }
    if (pj->prev)
        pj->prev->next = pj->next;
    else
        pj->owner->jobs = pj->next;
    if (pj->next)
        pj->next->prev = pj->prev;
    free(pj);
}

int kapi_sasl_authenticate(struct kreq *req, kc_writer *w)
{
    struct conn *c = req->conn;
    kc_bytes tok = kc_bytes_field(&req->r, req->flexible);
    kc_skip_tags(&req->r, req->flexible);
    if (!kc_ok(&req->r) || tok.len < 0)
        return KAPI_EPARSE;
    if (!c->sasl_started || c->sasl_raw) {
        write_authenticate(req, w, KERR_ILLEGAL_SASL_STATE,
                           "SaslAuthenticate before a SaslHandshake v1", NULL, 0, 0);
        conn_close_after_send(c);
        return KAPI_DONE;
    }
    struct sasl_step st;
    struct plain_job *pj = NULL;
    sasl_step(c, tok.p, (size_t)tok.len, &st, &pj);
    if (st.rc == SASL_PENDING) {
        pj->slot = req->slot;
        pj->version = req->api_version;
        pj->flexible = req->flexible;
        req->slot->owner = pj;
        req->slot->cancel = plain_cancel;
        return KAPI_DEFER;
    }
    return answer_step(c, req->slot, req->api_version, req->flexible, &st);
}

int kapi_sasl_raw_token(struct conn *c, struct kslot *slot, const uint8_t *tok, size_t len)
{
    struct sasl_step st;
    struct plain_job *pj = NULL;
    kc_w_i32(&slot->w, 0); /* size, patched when the slot completes */
    sasl_step(c, tok, len, &st, &pj);
    if (st.rc == SASL_PENDING) {
        pj->slot = slot;
        pj->raw = true;
        slot->owner = pj;
        slot->cancel = plain_cancel;
        return 1;
    }
    if (st.rc == SCRAM_FAIL) {
        free(st.out);
        return -1; /* Kafka closes a v0 exchange without a reply */
    }
    kc_w_raw(&slot->w, st.out ? st.out : (const uint8_t *)"", st.out_len);
    free(st.out);
    return 0;
}
