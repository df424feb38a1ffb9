/* scram.h: SASL credentials. SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677)
 * server exchanges, and PLAIN checked against the same salted SCRAM credential, so no
 * password is ever stored, only salt, iteration count, StoredKey and ServerKey. */
#ifndef SLUICE_SCRAM_H
#define SLUICE_SCRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum scram_mech { SCRAM_SHA_256 = 0, SCRAM_SHA_512 = 1, SCRAM_MECH_COUNT };

enum {
    SCRAM_SALT_MAX = 64,
    SCRAM_KEY_MAX = 64,
    SCRAM_MIN_ITERATIONS = 4096,
    SCRAM_MAX_ITERATIONS = 1 << 20
};

/* SCRAM_MSG_MAX bounds every client message, SCRAM_USER_MAX a decoded user name.
 * New credentials get SCRAM_SALT_LEN bytes of salt, and so do the fake ones shown for
 * unknown users. An encoded credential takes at most SCRAM_CRED_ENCODED_MAX bytes. */
enum {
    SCRAM_MSG_MAX = 4096,
    SCRAM_USER_MAX = 255,
    SCRAM_SALT_LEN = 32,
    SCRAM_CRED_ENCODED_MAX = 8 + SCRAM_SALT_MAX + 2 * SCRAM_KEY_MAX,
    SCRAM_SECRET_MIN = 16,
    SCRAM_SECRET_MAX = 256
};

struct scram_cred {
    uint8_t salt[SCRAM_SALT_MAX];
    uint8_t salt_len;
    uint8_t key_len; /* 32 or 64 */
    int32_t iterations;
    uint8_t stored_key[SCRAM_KEY_MAX];
    uint8_t server_key[SCRAM_KEY_MAX];
};

/* Decodes n characters of canonical padded base64 into out (cap bytes). Returns the
 * decoded length, or -1 if the input is not that or does not fit. */
int scram_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap);

/* "SCRAM-SHA-256" -> SCRAM_SHA_256 etc.; -1 if not a SCRAM mechanism. */
int scram_mech_parse(const char *name, size_t len);
const char *scram_mech_name(int mech);

/* Derives a credential from a password with a fresh random salt. Returns 0 or -1. */
int scram_cred_new(int mech, const char *pw, size_t pw_len, int32_t iterations,
                   struct scram_cred *out);
/* The same with a given salt (tests, vectors). */
int scram_cred_derive(int mech, const char *pw, size_t pw_len, const uint8_t *salt, size_t salt_len,
                      int32_t iterations, struct scram_cred *out);
/* Whether pw is the password behind c (for SASL/PLAIN); constant-time compare. Costs a
 * PBKDF2 of c->iterations (about 1 ms at 4096 with SHA-256, 2 ms with SHA-512). */
bool scram_cred_check(int mech, const struct scram_cred *c, const char *pw, size_t pw_len);

/* The same from a SaltedPassword (Hi(password, salt, i)), as AlterUserScramCredentials
 * sends it: salted_len must be the mechanism's digest size. Returns 0 or -1. */
int scram_cred_from_salted(int mech, const uint8_t *salted, size_t salted_len, const uint8_t *salt,
                           size_t salt_len, int32_t iterations, struct scram_cred *out);
/* The mechanism a well-formed credential belongs to (by its key length), or -1. */
int scram_cred_mech(const struct scram_cred *c);

/* A credential as bytes for the store, and back. encode returns the length written,
 * or -1 if cap is too small; decode returns 0 or -1 on malformed input. */
int scram_cred_encode(const struct scram_cred *c, uint8_t *out, size_t cap);
int scram_cred_decode(const uint8_t *in, size_t len, struct scram_cred *out);

/* Finds the credential of user for mech, or NULL if there is none. */
typedef const struct scram_cred *scram_lookup_fn(void *arg, const char *user, int mech);

struct scram_server;

/* One server-side exchange. secret (SCRAM_SECRET_MIN..SCRAM_SECRET_MAX bytes, copied)
 * makes the fake salt given for an unknown user stable, so the exchange does not reveal
 * which users exist; it should outlive restarts (principals_secret()). NULL on a bad
 * mechanism or secret, or out of memory. */
struct scram_server *scram_server_new(int mech, const uint8_t *secret, size_t secret_len);
void scram_server_free(struct scram_server *s);
/* The iteration count shown to unknown users (default SCRAM_MIN_ITERATIONS, clamped to
 * the allowed range); set it to the one real users get, or the count gives them away. */
void scram_server_set_iterations(struct scram_server *s, int32_t iterations);
/* TEST ONLY: makes the next exchange use snonce (1..64 printable bytes, no ',') as the
 * server nonce instead of a random one, to reproduce published test vectors. A server
 * must never call it. Returns 0 or -1. */
int scram_server_set_nonce_for_test(struct scram_server *s, const char *snonce, size_t len);

enum { SCRAM_CONTINUE = 1, SCRAM_DONE = 0, SCRAM_FAIL = -1 };

/* Takes the client's next message and writes the server's reply (malloc'd, *out,
 * *out_len; the caller frees it). Returns SCRAM_CONTINUE after client-first,
 * SCRAM_DONE after a correct client-final (reply = server-final "v=..."), or SCRAM_FAIL
 * with a short reason in *err (static string) and *out NULL. A wrong password and an
 * unknown user both fail at client-final with "invalid credentials". Every field is
 * bounded (SCRAM_MSG_MAX); malformed input fails, never crashes. After DONE or FAIL
 * every further step fails. */
int scram_server_step(struct scram_server *s, const uint8_t *in, size_t in_len,
                      scram_lookup_fn *lookup, void *arg, uint8_t **out, size_t *out_len,
                      const char **err);
/* The authenticated user name (after SCRAM_DONE), or the one being tried ("" before
 * client-first). */
const char *scram_server_user(const struct scram_server *s);

/* Splits a SASL/PLAIN message "authzid\0authcid\0passwd" into user and password
 * (NUL-terminated copies). An authzid, if present, must equal authcid. Returns 0 or -1. */
int scram_plain_parse(const uint8_t *in, size_t len, char *user, size_t user_cap, char *pw,
                      size_t pw_cap);

#endif
