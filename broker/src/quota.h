/* quota.h: per-principal byte-rate quotas on Produce and Fetch (KIP-13, KIP-219). A
 * principal over its rate is answered at once with throttle_time_ms set, and its
 * connection is not read again until that time has passed, so a client that ignores
 * the hint is slowed all the same. The rates are broker defaults
 * (quota.produce.bytes.per.second, quota.fetch.bytes.per.second) that a principal can
 * override (PUT /v1/principals/{name} {"quotas": {...}}); overrides persist in the
 * store (META, keys "quota/<principal>"). */
#ifndef SLUICE_QUOTA_H
#define SLUICE_QUOTA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;
struct quotas;
struct kreq;

enum quota_kind { QUOTA_PRODUCE = 0, QUOTA_FETCH = 1, QUOTA_KINDS };

/* Loads the stored overrides. NULL on a store error (logged). */
struct quotas *quotas_open(struct store *st, int64_t produce_default, int64_t fetch_default);
void quotas_free(struct quotas *q);

/* Sets principal's rates in bytes/s: > 0 a limit, 0 unlimited, -1 the broker default.
 * Persists them. Returns 0 or -1. */
int quotas_set(struct quotas *q, const char *principal, const int64_t rate[QUOTA_KINDS]);
/* The rates in force for principal (0: unlimited), and whether it has overrides. */
bool quotas_get(const struct quotas *q, const char *principal, int64_t rate[QUOTA_KINDS]);
/* Removes principal's overrides. */
int quotas_delete(struct quotas *q, const char *principal);

/* Counts bytes of kind for principal at now_us. Returns the throttle time in ms: how
 * long the principal must wait for its rate to come back under the quota (0 when it
 * is). */
int32_t quotas_charge(struct quotas *q, const char *principal, int kind, int64_t bytes,
                      int64_t now_us);

/* For handlers: charges req's principal and, when throttled, mutes req's connection
 * for that long. Returns the throttle_time_ms to put in the response. */
int32_t quota_request(const struct kreq *req, int kind, int64_t bytes);

#endif
