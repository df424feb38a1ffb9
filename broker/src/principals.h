/* principals.h: SASL users. Each name maps to one SCRAM credential per mechanism; the
 * table lives in memory and in the store (META column family, keys
 * "principal/<name>"), and is loaded whole at startup. */
#ifndef SLUICE_PRINCIPALS_H
#define SLUICE_PRINCIPALS_H

#include "scram.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;
struct principals;

enum { PRINCIPAL_NAME_MAX = 255, PRINCIPAL_PASSWORD_MAX = 1024 };

/* Loads every stored principal with one scan (a malformed record is logged and
 * skipped); iterations (clamped to SCRAM_MIN_ITERATIONS..SCRAM_MAX_ITERATIONS) is used
 * for passwords set later. NULL on a store error or out of memory (logged). */
struct principals *principals_open(struct store *st, int32_t iterations);
void principals_free(struct principals *p);

/* The iteration count new passwords get; give it to scram_server_set_iterations() so
 * unknown users are shown the same count as real ones. */
int32_t principals_iterations(const struct principals *p);
/* A random secret kept in the store (META "principal_secret"), made on first open: the
 * secret for scram_server_new(), stable across restarts. *len gets its length. */
const uint8_t *principals_secret(const struct principals *p, size_t *len);
/* A SCRAM-SHA-256 credential that no password matches, derived on first use, so that
 * checking an unknown user's PLAIN password costs what checking a known one does. */
const struct scram_cred *principals_dummy(struct principals *p);

/* Creates or replaces name's password (1..PRINCIPAL_PASSWORD_MAX bytes): derives a
 * fresh credential for every SCRAM mechanism (one PBKDF2 each: milliseconds, so not a
 * thing to do per request on the event loop) and persists them in one synced write.
 * Returns 0, or -1 (bad name or password, store error). */
int principals_set_password(struct principals *p, const char *name, const char *pw, size_t pw_len);
/* Creates or replaces one mechanism's credential (AlterUserScramCredentials; see
 * scram_cred_from_salted()). -1 if c is not a valid credential for mech. */
int principals_set_cred(struct principals *p, const char *name, int mech,
                        const struct scram_cred *c);
/* Removes one mechanism's credential; the principal goes when it has none left.
 * Returns 0, or -1 if there was none. */
int principals_delete_cred(struct principals *p, const char *name, int mech);
/* Removes the principal. Returns 0, or -1 if it did not exist. */
int principals_delete(struct principals *p, const char *name);

/* name's credential for mech, or NULL. Has the shape of scram_lookup_fn. The pointer
 * stays valid until name is next changed or deleted. O(1): one hash lookup. */
const struct scram_cred *principals_cred(void *p, const char *name, int mech);
bool principals_exists(const struct principals *p, const char *name);
size_t principals_count(const struct principals *p);

/* Calls fn for principals whose name starts with prefix (NULL or "": all) and sorts
 * after `after` (NULL: from the start), in byte order of the names, at most limit of
 * them (limit < 0: no limit). Walks the store's sorted keys, so a page costs
 * O(log n + limit). fn must not change the table. Returns how many were visited, or -1
 * (a prefix or `after` longer than PRINCIPAL_NAME_MAX, a store error). */
typedef void principals_visit_fn(void *arg, const char *name,
                                 const struct scram_cred *creds[SCRAM_MECH_COUNT]);
int principals_list(const struct principals *p, const char *prefix, const char *after, int limit,
                    principals_visit_fn *fn, void *arg);

/* Checks a principal name: 1..PRINCIPAL_NAME_MAX bytes of printable ASCII (space
 * included) or well-formed UTF-8, no ',' '=' or control characters (C0, DEL, C1): ','
 * and '=' would break SCRAM's attribute syntax. */
bool principals_name_valid(const char *name, size_t len);

#endif
