/* fuzz_scram.c: libFuzzer target for the SASL message parsers in scram.c: both steps
 * of a SCRAM-SHA-256/512 server exchange, SASL/PLAIN, and a stored credential record.
 * One user exists ("user", password "pencil"); the server nonce is fixed, so a seed can
 * carry a client-final with a valid proof and the fuzzer starts from a successful
 * exchange. Input layout:
 *   byte 0    what to run: 0 SCRAM-SHA-256, 1 SCRAM-SHA-512, 2 PLAIN, 3 a stored
 *             credential (scram_cred_decode, then encode and decode again)
 *   SCRAM:    bytes 1-2 the client-first's length L (big-endian), then client-first
 *             (L bytes, or what is left), then client-final (the rest, if any)
 *   others:   bytes 1.. are the message
 * Each message is copied into a heap buffer of its exact size. The properties checked
 * beyond "no crash": only the known user with the right proof reaches SCRAM_DONE; a
 * finished exchange refuses further steps; PLAIN accepts exactly the right password. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scram.h"

enum { FZ_ITER = SCRAM_MIN_ITERATIONS };

static const char fz_user[] = "user", fz_pw[] = "pencil";
static const char fz_snonce[] = "fuzzServerNonce0123456789";
static const uint8_t fz_secret[32] = "sluice fuzz secret, 32 bytes...";
static const uint8_t fz_salt[16] = "fuzz-salt-16-byt";
static struct scram_cred fz_creds[SCRAM_MECH_COUNT];

/* The lookup the broker passes: one known user. */
static const struct scram_cred *fz_lookup(void *arg, const char *user, int mech)
{
    (void)arg;
    if (strcmp(user, fz_user) || mech < 0 || mech >= SCRAM_MECH_COUNT)
        return NULL;
    return &fz_creds[mech];
}

static void fz_init(void)
{
    for (int m = 0; m < SCRAM_MECH_COUNT; m++)
        if (scram_cred_derive(m, fz_pw, strlen(fz_pw), fz_salt, sizeof fz_salt, FZ_ITER,
                              &fz_creds[m]) < 0)
            abort();
}

/* A heap copy of exactly len bytes, so ASan sees a read past the end. */
static uint8_t *fz_dup(const uint8_t *p, size_t len)
{
    uint8_t *d = malloc(len ? len : 1);
    if (!d)
        abort();
    memcpy(d, p, len);
    return d;
}

/* Runs one step and checks the contract of its result. */
static int fz_step(struct scram_server *s, const uint8_t *msg, size_t len)
{
    uint8_t *in = fz_dup(msg, len), *out = NULL;
    size_t out_len = 0;
    const char *err = NULL;
    int rc = scram_server_step(s, in, len, fz_lookup, NULL, &out, &out_len, &err);
    if (rc == SCRAM_FAIL && (out || !err))
        __builtin_trap();
    if (rc != SCRAM_FAIL && (!out || !out_len))
        __builtin_trap();
    if (rc == SCRAM_DONE && strcmp(scram_server_user(s), fz_user))
        __builtin_trap(); /* only the one known user can succeed */
    free(out);
    free(in);
    return rc;
}

static void fz_scram(int mech, const uint8_t *p, size_t len)
{
    struct scram_server *s = scram_server_new(mech, fz_secret, sizeof fz_secret);
    if (!s || scram_server_set_nonce_for_test(s, fz_snonce, strlen(fz_snonce)) < 0)
        abort();
    scram_server_set_iterations(s, FZ_ITER);
    size_t first = len >= 2 ? (size_t)p[0] << 8 | p[1] : 0;
    p += len >= 2 ? 2 : len;
    len -= len >= 2 ? 2 : len;
    if (first > len)
        first = len;
    int rc = fz_step(s, p, first);
    if (rc == SCRAM_CONTINUE && len > first)
        rc = fz_step(s, p + first, len - first);
    if (rc != SCRAM_CONTINUE && fz_step(s, p, first) != SCRAM_FAIL)
        __builtin_trap(); /* a finished exchange takes nothing more */
    scram_server_free(s);
}

static void fz_plain(const uint8_t *p, size_t len)
{
    char user[SCRAM_USER_MAX + 1], pw[1025];
    uint8_t *in = fz_dup(p, len);
    if (scram_plain_parse(in, len, user, sizeof user, pw, sizeof pw) == 0 &&
        !strcmp(user, fz_user)) {
        /* one PBKDF2 of FZ_ITER rounds: only for the known user, to keep runs fast */
        bool ok = scram_cred_check(SCRAM_SHA_256, &fz_creds[SCRAM_SHA_256], pw, strlen(pw));
        if (ok != !strcmp(pw, fz_pw))
            __builtin_trap();
    }
    free(in);
}

static bool fz_cred_equal(const struct scram_cred *a, const struct scram_cred *b)
{
    return a->salt_len == b->salt_len && a->key_len == b->key_len &&
           a->iterations == b->iterations && !memcmp(a->salt, b->salt, a->salt_len) &&
           !memcmp(a->stored_key, b->stored_key, a->key_len) &&
           !memcmp(a->server_key, b->server_key, a->key_len);
}

static void fz_cred(const uint8_t *p, size_t len)
{
    struct scram_cred c, again;
    uint8_t buf[SCRAM_CRED_ENCODED_MAX];
    uint8_t *in = fz_dup(p, len);
    if (scram_cred_decode(in, len, &c) == 0) {
        int n = scram_cred_encode(&c, buf, sizeof buf);
        if (n < 0 || scram_cred_decode(buf, (size_t)n, &again) < 0 || !fz_cred_equal(&c, &again) ||
            scram_cred_mech(&c) < 0)
            __builtin_trap(); /* a record that decodes must round-trip */
    }
    free(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        fz_init();
        ready = true;
    }
    if (size < 1)
        return 0;
    switch (data[0] & 3) {
    case 0:
    case 1:
        fz_scram(data[0] & 1 ? SCRAM_SHA_512 : SCRAM_SHA_256, data + 1, size - 1);
        break;
    case 2:
        fz_plain(data + 1, size - 1);
        break;
    default:
        fz_cred(data + 1, size - 1);
    }
    return 0;
}
