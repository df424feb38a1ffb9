/* ctl_scram.c: SCRAM credential derivation with OpenSSL (see ctl_scram.h). */
#include "ctl_scram.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "ctl_util.h"

static const EVP_MD *scram_md(const char *mech)
{
    if (!strcmp(mech, "SCRAM-SHA-256"))
        return EVP_sha256();
    if (!strcmp(mech, "SCRAM-SHA-512"))
        return EVP_sha512();
    return NULL;
}

int ctl_scram_derive(const char *mech, const char *password, const unsigned char *salt,
                     size_t salt_len, int iterations, unsigned char *stored_key,
                     unsigned char *server_key)
{
    const EVP_MD *md = scram_md(mech);
    unsigned char salted[CTL_SCRAM_MAX_KEY], client_key[CTL_SCRAM_MAX_KEY];
    unsigned int len = 0;
    int n = md ? EVP_MD_get_size(md) : -1;
    int rc = -1;
    if (n <= 0 || n > CTL_SCRAM_MAX_KEY || salt_len > 1024 || iterations < 1)
        return -1;
    /* SaltedPassword = Hi(password, salt, i); ClientKey = HMAC(SaltedPassword, "Client
     * Key"); StoredKey = H(ClientKey); ServerKey = HMAC(SaltedPassword, "Server Key") */
    if (PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)salt_len, iterations, md,
                          n, salted) == 1 &&
        HMAC(md, salted, n, (const unsigned char *)"Client Key", 10, client_key, &len) &&
        EVP_Digest(client_key, (size_t)n, stored_key, &len, md, NULL) == 1 &&
        HMAC(md, salted, n, (const unsigned char *)"Server Key", 10, server_key, &len))
        rc = n;
    OPENSSL_cleanse(salted, sizeof salted);
    OPENSSL_cleanse(client_key, sizeof client_key);
    return rc;
}

static bool add_b64(cJSON *o, const char *k, const unsigned char *p, size_t n)
{
    char *e = ctl_b64_encode(p, n);
    bool ok = e && cJSON_AddStringToObject(o, k, e);
    free(e);
    return ok;
}

/* One credential object for mech, or NULL. */
static cJSON *scram_credential(const char *mech, const char *password)
{
    unsigned char salt[CTL_SCRAM_SALT_LEN], stored[CTL_SCRAM_MAX_KEY], server[CTL_SCRAM_MAX_KEY];
    if (RAND_bytes(salt, sizeof salt) != 1)
        return NULL;
    int n = ctl_scram_derive(mech, password, salt, sizeof salt, CTL_SCRAM_ITERATIONS, stored,
                             server);
    cJSON *c = n > 0 ? cJSON_CreateObject() : NULL;
    if (c && !(cJSON_AddStringToObject(c, "mechanism", mech) &&
               add_b64(c, "salt", salt, sizeof salt) &&
               cJSON_AddNumberToObject(c, "iterations", CTL_SCRAM_ITERATIONS) &&
               add_b64(c, "stored_key", stored, (size_t)n) &&
               add_b64(c, "server_key", server, (size_t)n))) {
        cJSON_Delete(c);
        c = NULL;
    }
    return c;
}

cJSON *ctl_scram_credentials(const char *password)
{
    static const char *const mechs[] = {"SCRAM-SHA-256", "SCRAM-SHA-512"};
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < sizeof mechs / sizeof mechs[0]; i++) {
        cJSON *c = scram_credential(mechs[i], password);
        if (!c || !cJSON_AddItemToArray(arr, c)) {
            cJSON_Delete(c);
            cJSON_Delete(arr);
            return NULL;
        }
    }
    return arr;
}
