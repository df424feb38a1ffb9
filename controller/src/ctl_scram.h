/* ctl_scram.h: SCRAM credentials (RFC 5802: salt, iterations, StoredKey, ServerKey)
 * derived from a password in the controller, so that the broker never sees an agent's
 * password and spends no PBKDF2 on its event loop (PUT /v1/principals "credentials"). */
#ifndef CTL_SCRAM_H
#define CTL_SCRAM_H

#include <stddef.h>
#include <cjson/cJSON.h>

#define CTL_SCRAM_ITERATIONS 4096
#define CTL_SCRAM_SALT_LEN 32
#define CTL_SCRAM_MAX_KEY 64

/* Derives StoredKey and ServerKey (key_len bytes each: 32 for SCRAM-SHA-256, 64 for
 * SCRAM-SHA-512) of password with salt. Returns the key length, or -1 for an unknown
 * mechanism or a crypto failure. */
int ctl_scram_derive(const char *mech, const char *password, const unsigned char *salt,
                     size_t salt_len, int iterations, unsigned char *stored_key,
                     unsigned char *server_key);
/* The "credentials" array for password: one {mechanism, salt, iterations, stored_key,
 * server_key} (base64) per mechanism, SCRAM-SHA-256 and SCRAM-SHA-512, each with a
 * fresh random salt. NULL on failure. */
cJSON *ctl_scram_credentials(const char *password);

#endif
