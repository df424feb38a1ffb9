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
 * slot. Returns 0, or -1 when authentication failed and the connection must close. */
int kapi_sasl_raw_token(struct conn *c, struct kslot *slot, const uint8_t *tok, size_t len);

/* Frees a connection's unfinished exchange. */
void sasl_conn_free(struct conn *c);

#endif
