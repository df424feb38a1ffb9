/* kapi_sasl.h: SASL authentication of Kafka connections (SaslHandshake,
 * SaslAuthenticate, and the bare tokens of SaslHandshake v0). */
#ifndef SLUICE_KAPI_SASL_H
#define SLUICE_KAPI_SASL_H

#include <stddef.h>
#include <stdint.h>

struct conn;
struct kslot;

enum sasl_mech_id { SASL_MECH_PLAIN = 1, SASL_MECH_SCRAM_SHA_256, SASL_MECH_SCRAM_SHA_512 };

/* Handles one bare token frame after SaslHandshake v0, writing the bare reply into
 * slot. Returns 0, 1 when the slot completes later (a PLAIN check on the worker), or
 * -1 when authentication failed and the connection must close. */
int kapi_sasl_raw_token(struct conn *c, struct kslot *slot, const uint8_t *tok, size_t len);

struct ev_loop;
struct sasl_jobs;

/* The worker thread PLAIN password checks (one PBKDF2 each) run on. */
struct sasl_jobs *sasl_jobs_new(struct ev_loop *loop);
void sasl_jobs_free(struct sasl_jobs *j);

/* Frees a connection's unfinished exchange. */
void sasl_conn_free(struct conn *c);

#endif
