/* test_scram.c: the SCRAM server against the RFC 7677 vector and against a client
 * written here from the RFC with OpenSSL's primitives (its own base64, PBKDF2, HMAC),
 * so the two implementations check each other; SASL/PLAIN parsing and checking; the
 * credential codec; and malformed input at every step: truncated, mutated, garbage. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "scram.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t secret[32] = "0123456789abcdef0123456789abcde";

/* ---- a user table for the lookup callback ---- */

struct users {
    int n, calls;
    char last[300]; /* the name the last lookup asked for */
    struct {
        const char *name;
        bool has[SCRAM_MECH_COUNT];
        struct scram_cred cred[SCRAM_MECH_COUNT];
    } u[4];
};

static const struct scram_cred *lookup(void *arg, const char *user, int mech)
{
    struct users *us = arg;
    us->calls++;
    snprintf(us->last, sizeof us->last, "%s", user);
    for (int i = 0; i < us->n; i++)
        if (strcmp(us->u[i].name, user) == 0 && us->u[i].has[mech])
            return &us->u[i].cred[mech];
    return NULL;
}

static void add_user(struct users *us, const char *name, int mech, const char *pw,
                     int32_t iterations)
{
    int i = 0;
    while (i < us->n && strcmp(us->u[i].name, name) != 0)
        i++;
    assert_true(i < 4);
    us->n = i == us->n ? i + 1 : us->n;
    us->u[i].name = name;
    us->u[i].has[mech] = true;
    assert_int_equal(scram_cred_new(mech, pw, strlen(pw), iterations, &us->u[i].cred[mech]), 0);
}

/* One server step; the reply (NUL-terminated) goes to out when out is not NULL. */
static int step(struct scram_server *s, const void *msg, size_t len, struct users *us, char *out,
                size_t cap, const char **err)
{
    uint8_t *o = (uint8_t *)"x";
    size_t ol = 99;
    const char *e = "unset";
    int rc = scram_server_step(s, msg, len, lookup, us, &o, &ol, &e);
    if (rc == SCRAM_FAIL) {
        assert_null(o);
        assert_int_equal(ol, 0);
        assert_non_null(e);
        assert_true(strlen(e) > 0);
    } else {
        assert_true(rc == SCRAM_CONTINUE || rc == SCRAM_DONE);
        assert_non_null(o);
        assert_null(e);
    }
    if (out) {
        assert_true(ol < cap);
        memcpy(out, o ? (char *)o : "", ol);
        out[ol] = 0;
    }
    if (err)
        *err = e;
    free(o);
    return rc;
}

static int step_str(struct scram_server *s, const char *msg, struct users *us, char *out,
                    size_t cap, const char **err)
{
    return step(s, msg, strlen(msg), us, out, cap, err);
}

static struct scram_server *server(int mech)
{
    struct scram_server *s = scram_server_new(mech, secret, sizeof secret);
    assert_non_null(s);
    return s;
}

/* ---- an independent client (RFC 5802 section 3), on OpenSSL's primitives ---- */

struct client {
    const EVP_MD *md;
    size_t kl;
    char gs2[128];
    char bare[1024];
    char cnonce[128];
    uint8_t server_sig[64];
};

static size_t b64e(const uint8_t *in, size_t n, char *out)
{
    return (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

/* EVP_DecodeBlock counts padding as zero bytes; this gives the real length. */
static int b64d(const char *in, size_t n, uint8_t *out)
{
    int l = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
    if (l < 0)
        return -1;
    if (n >= 1 && in[n - 1] == '=')
        l--;
    if (n >= 2 && in[n - 2] == '=')
        l--;
    return l;
}

static void c_hmac(struct client *c, const uint8_t *key, const void *d, size_t n, uint8_t *out)
{
    unsigned int l = 0;
    assert_non_null(HMAC(c->md, key, (int)c->kl, d, n, out, &l));
    assert_int_equal(l, c->kl);
}

/* client-first-message: gs2 header, then "n=<user_attr>,r=<cnonce>[<ext>]". */
static void client_first(struct client *c, int mech, const char *gs2, const char *user_attr,
                         const char *cnonce, const char *ext, char *out, size_t cap)
{
    c->md = mech == SCRAM_SHA_256 ? EVP_sha256() : EVP_sha512();
    c->kl = (size_t)EVP_MD_get_size(c->md);
    snprintf(c->gs2, sizeof c->gs2, "%s", gs2);
    snprintf(c->cnonce, sizeof c->cnonce, "%s", cnonce);
    snprintf(c->bare, sizeof c->bare, "n=%s,r=%s%s", user_attr, cnonce, ext ? ext : "");
    snprintf(out, cap, "%s%s", gs2, c->bare);
}

/* client-final-message answering server-first sf with password pw. */
static void client_final(struct client *c, const char *sf, const char *pw, char *out, size_t cap)
{
    uint8_t salt[128], sp[64], ck[64], sk[64], svk[64], csig[64], proof[64];
    char cb[256], wo[1024], auth[4096], pb[128];
    const char *s = strstr(sf, ",s="), *i = strstr(sf, ",i=");

    assert_true(strncmp(sf, "r=", 2) == 0 && s && i && i > s);
    assert_true(strncmp(sf + 2, c->cnonce, strlen(c->cnonce)) == 0);
    assert_true((size_t)(s - sf - 2) > strlen(c->cnonce)); /* a server part was added */
    int sl = b64d(s + 3, (size_t)(i - s - 3), salt);
    int iter = atoi(i + 3);
    assert_true(sl > 0 && iter >= 4096);
    assert_int_equal(PKCS5_PBKDF2_HMAC(pw, (int)strlen(pw), salt, sl, iter, c->md, (int)c->kl, sp),
                     1);
    c_hmac(c, sp, "Client Key", 10, ck);
    assert_int_equal(EVP_Digest(ck, c->kl, sk, NULL, c->md, NULL), 1);
    c_hmac(c, sp, "Server Key", 10, svk);
    b64e((const uint8_t *)c->gs2, strlen(c->gs2), cb);
    snprintf(wo, sizeof wo, "c=%s,r=%.*s", cb, (int)(s - sf - 2), sf + 2);
    snprintf(auth, sizeof auth, "%s,%s,%s", c->bare, sf, wo);
    c_hmac(c, sk, auth, strlen(auth), csig);
    for (size_t k = 0; k < c->kl; k++)
        proof[k] = ck[k] ^ csig[k];
    c_hmac(c, svk, auth, strlen(auth), c->server_sig);
    b64e(proof, c->kl, pb);
    snprintf(out, cap, "%s,p=%s", wo, pb);
}

/* Checks server-final "v=<ServerSignature>" as a client must. */
static void client_check(struct client *c, const char *sfin)
{
    char want[128] = "v=";
    b64e(c->server_sig, c->kl, want + 2);
    assert_string_equal(sfin, want);
}

/* A complete exchange; returns the final step's result (out: server-final). */
static int exchange(int mech, struct users *us, const char *gs2, const char *user_attr,
                    const char *pw, char *out, size_t cap, const char **err)
{
    struct client c;
    char m[2048], sf[2048];
    struct scram_server *s = server(mech);

    client_first(&c, mech, gs2, user_attr, "fyko+d2lbbFgONRv9qkxdawL", NULL, m, sizeof m);
    assert_int_equal(step_str(s, m, us, sf, sizeof sf, NULL), SCRAM_CONTINUE);
    client_final(&c, sf, pw, m, sizeof m);
    int rc = step_str(s, m, us, out, cap, err);
    if (rc == SCRAM_DONE)
        client_check(&c, out);
    scram_server_free(s);
    return rc;
}

/* ---- RFC 7677 ---- */

static const char v_first[] = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
static const char v_snonce[] = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
static const char v_sfirst[] =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
static const char v_final[] = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                              "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
static const char v_sfinal[] = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

static void vector_user(struct users *us)
{
    static const uint8_t salt[16] = {0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e,
                                     0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81};
    memset(us, 0, sizeof *us);
    us->n = 1;
    us->u[0].name = "user";
    us->u[0].has[SCRAM_SHA_256] = true;
    assert_int_equal(scram_cred_derive(SCRAM_SHA_256, "pencil", 6, salt, sizeof salt, 4096,
                                       &us->u[0].cred[SCRAM_SHA_256]),
                     0);
}

/* A server set up for the vector, past client-first. */
static struct scram_server *vector_server(struct users *us)
{
    char out[256];
    struct scram_server *s = server(SCRAM_SHA_256);
    assert_int_equal(scram_server_set_nonce_for_test(s, v_snonce, strlen(v_snonce)), 0);
    assert_int_equal(step_str(s, v_first, us, out, sizeof out, NULL), SCRAM_CONTINUE);
    assert_string_equal(out, v_sfirst);
    return s;
}

static void test_rfc7677_vector(void **state)
{
    (void)state;
    struct users us;
    char out[256];

    vector_user(&us);
    struct scram_server *s = vector_server(&us);
    assert_string_equal(scram_server_user(s), "user");
    assert_int_equal(step_str(s, v_final, &us, out, sizeof out, NULL), SCRAM_DONE);
    assert_string_equal(out, v_sfinal);
    assert_string_equal(scram_server_user(s), "user");
    /* the exchange is over: anything more fails */
    assert_int_equal(step_str(s, v_final, &us, NULL, 0, NULL), SCRAM_FAIL);
    scram_server_free(s);
}

/* The test client reproduces the vector's client-final on its own. */
static void test_rfc7677_client(void **state)
{
    (void)state;
    struct client c;
    char m[512];

    client_first(&c, SCRAM_SHA_256, "n,,", "user", "rOprNGfwEbeRWgbNEkqO", NULL, m, sizeof m);
    assert_string_equal(m, v_first);
    client_final(&c, v_sfirst, "pencil", m, sizeof m);
    assert_string_equal(m, v_final);
    client_check(&c, v_sfinal);
}

/* Every strict prefix of the vector's client-final, and every one-byte change to it,
 * fails; so do the messages of other shapes below. */
static void test_final_truncated_and_mutated(void **state)
{
    (void)state;
    struct users us;
    const char *err;
    size_t n = strlen(v_final);
    char m[256];

    vector_user(&us);
    for (size_t len = 0; len < n; len++) {
        struct scram_server *s = vector_server(&us);
        assert_int_equal(step(s, v_final, len, &us, NULL, 0, &err), SCRAM_FAIL);
        scram_server_free(s);
    }
    static const uint8_t subst[] = {0, ',', '=', 'A', 'b', '+', '/', 0xff, 'p'};
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < sizeof subst; k++) {
            if ((uint8_t)v_final[i] == subst[k])
                continue;
            memcpy(m, v_final, n);
            m[i] = (char)subst[k];
            struct scram_server *s = vector_server(&us);
            if (step(s, m, n, &us, NULL, 0, &err) != SCRAM_FAIL)
                fail_msg("byte %zu -> 0x%02x was accepted", i, subst[k]);
            scram_server_free(s);
        }
    }
    static const char *const bad[] = {
        "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        "c=biws,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        "c=biws,r=rOprNGfwEbeRWgbNEkqO,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,",
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=",
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+"
        "Ute9ytag9zjfMHgsqmmiz7AndVQ=,x=1",
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+"
        "Ute9ytag9zjfMHgsqmmiz7AndVQ",
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+"
        "Ute9ytag9zjfMHgsqmmiz7AndVQ==",
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+"
        "Ute9ytag9zjfMHgsqmmiz7AndVR=",
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0x,p=dHzbZapWIk4jUhN+"
        "Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        "c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+"
        "Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,c=biws,p=dHzbZapWIk4jUhN+"
        "Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        ",,,,",
        ",",
        "=",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct scram_server *s = vector_server(&us);
        if (step_str(s, bad[i], &us, NULL, 0, &err) != SCRAM_FAIL)
            fail_msg("accepted: %s", bad[i]);
        scram_server_free(s);
    }
}

/* A prefix of client-first is malformed until it reaches the first nonce byte; longer
 * ones are valid messages with a shorter client nonce, whose exchange then fails. */
static void test_first_truncated(void **state)
{
    (void)state;
    struct users us;
    char out[256];
    size_t n = strlen(v_first), min = strlen("n,,n=user,r=") + 1;

    vector_user(&us);
    for (size_t len = 0; len <= n; len++) {
        struct scram_server *s = server(SCRAM_SHA_256);
        assert_int_equal(scram_server_set_nonce_for_test(s, v_snonce, strlen(v_snonce)), 0);
        int rc = step(s, v_first, len, &us, out, sizeof out, NULL);
        if (len < min) {
            assert_int_equal(rc, SCRAM_FAIL);
        } else {
            assert_int_equal(rc, SCRAM_CONTINUE);
            assert_int_equal(step_str(s, v_final, &us, NULL, 0, NULL),
                             len == n ? SCRAM_DONE : SCRAM_FAIL);
        }
        scram_server_free(s);
    }
}

/* ---- full exchanges with the test client ---- */

static void test_sha512_exchange(void **state)
{
    (void)state;
    struct users us = {0};
    char out[256];
    const char *err;

    add_user(&us, "alice", SCRAM_SHA_512, "correct horse, battery=staple", 4096);
    add_user(&us, "alice", SCRAM_SHA_256, "another one", 4096);
    assert_int_equal(exchange(SCRAM_SHA_512, &us, "n,,", "alice", "correct horse, battery=staple",
                              out, sizeof out, &err),
                     SCRAM_DONE);
    assert_int_equal(strlen(out), 2 + 88);
    assert_string_equal(us.last, "alice");
    assert_int_equal(
        exchange(SCRAM_SHA_256, &us, "n,,", "alice", "another one", out, sizeof out, &err),
        SCRAM_DONE);
    /* each mechanism has its own credential */
    assert_int_equal(
        exchange(SCRAM_SHA_512, &us, "n,,", "alice", "another one", out, sizeof out, &err),
        SCRAM_FAIL);
    assert_string_equal(err, "invalid credentials");
}

/* More iterations than the minimum, and a client that claims channel-binding support
 * ("y"), and an authzid equal to the user. */
static void test_exchange_variants(void **state)
{
    (void)state;
    struct users us = {0};
    char out[256];
    const char *err;

    add_user(&us, "bob", SCRAM_SHA_256, "pw", 10000);
    assert_int_equal(exchange(SCRAM_SHA_256, &us, "y,,", "bob", "pw", out, sizeof out, &err),
                     SCRAM_DONE);
    assert_int_equal(exchange(SCRAM_SHA_256, &us, "n,a=bob,", "bob", "pw", out, sizeof out, &err),
                     SCRAM_DONE);
    assert_int_equal(exchange(SCRAM_SHA_256, &us, "n,,", "bob", "pW", out, sizeof out, &err),
                     SCRAM_FAIL);
    assert_string_equal(err, "invalid credentials");
}

/* "=2C" and "=3D" in a name are ',' and '='; anything else after '=' is malformed. */
static void test_username_escapes(void **state)
{
    (void)state;
    struct users us = {0};
    char out[256], m[600];
    const char *err;

    add_user(&us, "a,b=c", SCRAM_SHA_256, "pw", 4096);
    assert_int_equal(
        exchange(SCRAM_SHA_256, &us, "n,a=a=2Cb=3Dc,", "a=2Cb=3Dc", "pw", out, sizeof out, &err),
        SCRAM_DONE);
    assert_string_equal(us.last, "a,b=c");

    static const char *const bad[] = {
        "n,,n=a=2cb,r=x", "n,,n=a=,r=x",    "n,,n=a=2,r=x",  "n,,n=a=4A,r=x",
        "n,,n=,r=x",      "n,,n=a\x01,r=x", "n,,n=\x7f,r=x", "n,,n=a=3D=,r=x",
        "n,,n=a=00b,r=x", "n,,r=x,n=a",     "n,,n=a",        "n,,n=a,r=",
        "n,,n=a,r=x y",   "n,,n=a,r=x\x80", "n,,n=a,r=,",    "n,,n=a,,r=x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct scram_server *s = server(SCRAM_SHA_256);
        if (step_str(s, bad[i], &us, NULL, 0, &err) != SCRAM_FAIL)
            fail_msg("accepted: %s", bad[i]);
        scram_server_free(s);
    }
    /* a name is at most 255 bytes once decoded */
    memset(m, 0, sizeof m);
    strcpy(m, "n,,n=");
    memset(m + 5, 'u', 255);
    strcat(m, ",r=x");
    struct scram_server *s = server(SCRAM_SHA_256);
    assert_int_equal(step_str(s, m, &us, out, sizeof out, NULL), SCRAM_CONTINUE);
    assert_int_equal(strlen(scram_server_user(s)), 255);
    scram_server_free(s);
    memset(m + 5, 'u', 256);
    strcpy(m + 5 + 256, ",r=x");
    s = server(SCRAM_SHA_256);
    assert_int_equal(step_str(s, m, &us, NULL, 0, NULL), SCRAM_FAIL);
    scram_server_free(s);
    /* 85 escapes decode to 85 bytes: fine */
    strcpy(m, "n,,n=");
    for (int i = 0; i < 85; i++)
        strcat(m, "=2C");
    strcat(m, ",r=x");
    s = server(SCRAM_SHA_256);
    assert_int_equal(step_str(s, m, &us, NULL, 0, NULL), SCRAM_CONTINUE);
    assert_int_equal(strlen(scram_server_user(s)), 85);
    scram_server_free(s);
}

/* gs2 headers: "p=" (channel binding) is refused, an authzid must be the user, and c=
 * must repeat the header exactly, in canonical base64. */
static void test_gs2_and_channel_binding(void **state)
{
    (void)state;
    struct users us;
    char out[256], m[512];
    const char *err;

    vector_user(&us);
    static const char *const bad[] = {
        "p=tls-unique,,n=user,r=x",
        "n,a=other,n=user,r=x",
        "n,a=,n=user,r=x",
        "x,,n=user,r=x",
        "n,n=user,r=x",
        "n,a=user,r=x",
        "nn,,n=user,r=x",
        "n",
        "n,",
        ",,n=user,r=x",
        "y,a=user",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct scram_server *s = server(SCRAM_SHA_256);
        if (step_str(s, bad[i], &us, NULL, 0, &err) != SCRAM_FAIL)
            fail_msg("accepted: %s", bad[i]);
        scram_server_free(s);
    }
    struct scram_server *s = server(SCRAM_SHA_256);
    assert_int_equal(step_str(s, "p=tls-unique,,n=user,r=x", &us, NULL, 0, &err), SCRAM_FAIL);
    assert_string_equal(err, "channel binding is not supported");
    scram_server_free(s);

    /* "n,a=ab," is "bixhPWFiLA==" (two padding characters); the same bytes with nonzero
     * trailing bits ("bixhPWFiLB==") are not canonical and do not match. */
    struct users ab = {0};
    add_user(&ab, "ab", SCRAM_SHA_256, "pw", 4096);
    struct client c;
    char sf[256];
    for (int variant = 0; variant < 3; variant++) {
        s = server(SCRAM_SHA_256);
        client_first(&c, SCRAM_SHA_256, "n,a=ab,", "ab", "nonce", NULL, m, sizeof m);
        assert_int_equal(step_str(s, m, &ab, sf, sizeof sf, NULL), SCRAM_CONTINUE);
        client_final(&c, sf, "pw", m, sizeof m);
        assert_memory_equal(m, "c=bixhPWFiLA==,", 15);
        if (variant == 1)
            m[11] = 'B';
        if (variant == 2)
            memcpy(m, "c=biws", 6), memmove(m + 6, m + 14, strlen(m + 14) + 1);
        assert_int_equal(step_str(s, m, &ab, out, sizeof out, NULL),
                         variant == 0 ? SCRAM_DONE : SCRAM_FAIL);
        scram_server_free(s);
    }
}

/* m= is a mandatory extension: refused. Kafka's tokenauth=true (delegation tokens) is
 * refused; other well-formed extensions are ignored. */
static void test_extensions(void **state)
{
    (void)state;
    struct users us = {0};
    char out[256], m[512], sf[512];
    const char *err;
    struct client c;

    add_user(&us, "u", SCRAM_SHA_512, "pw", 4096);
    struct scram_server *s = server(SCRAM_SHA_512);
    assert_int_equal(step_str(s, "n,,m=x,n=u,r=abc", &us, NULL, 0, &err), SCRAM_FAIL);
    assert_string_equal(err, "mandatory extensions are not supported");
    scram_server_free(s);

    static const struct {
        const char *ext;
        int rc;
    } cases[] = {
        {",tokenauth=true", SCRAM_FAIL},
        {",tokenauth=TRUE", SCRAM_FAIL},
        {",tokenauth=false", SCRAM_DONE},
        {",foo=bar", SCRAM_DONE},
        {",x=", SCRAM_DONE},
        {",a=1,b=2", SCRAM_DONE},
        {",=x", SCRAM_FAIL},
        {",", SCRAM_FAIL},
        {",foo", SCRAM_FAIL},
        {",f-o=1", SCRAM_FAIL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s = server(SCRAM_SHA_512);
        client_first(&c, SCRAM_SHA_512, "n,,", "u", "abc", cases[i].ext, m, sizeof m);
        int rc = step_str(s, m, &us, sf, sizeof sf, &err);
        if (rc == SCRAM_CONTINUE) {
            client_final(&c, sf, "pw", m, sizeof m);
            rc = step_str(s, m, &us, out, sizeof out, &err);
        }
        if (rc != cases[i].rc)
            fail_msg("extension '%s': %d, want %d", cases[i].ext, rc, cases[i].rc);
        scram_server_free(s);
    }
}

/* An unknown user gets a server-first of the same shape as a real one: a salt of the
 * usual length that is the same every time for that name, the configured iteration
 * count; the exchange fails only at the end, with the same reason as a wrong
 * password. */
static void test_unknown_user(void **state)
{
    (void)state;
    struct users us = {0};
    char sf1[256], sf2[256], sf3[256], sfk[256], out[256], m[512];
    const char *err;
    struct client c;

    add_user(&us, "known", SCRAM_SHA_256, "pw", 8192);
    struct scram_server *s = server(SCRAM_SHA_256);
    scram_server_set_iterations(s, 8192);
    client_first(&c, SCRAM_SHA_256, "n,,", "ghost", "abc", NULL, m, sizeof m);
    assert_int_equal(step_str(s, m, &us, sf1, sizeof sf1, NULL), SCRAM_CONTINUE);
    assert_string_equal(us.last, "ghost");
    client_final(&c, sf1, "pw", m, sizeof m);
    assert_int_equal(step_str(s, m, &us, out, sizeof out, &err), SCRAM_FAIL);
    assert_string_equal(err, "invalid credentials");
    scram_server_free(s);

    s = server(SCRAM_SHA_256);
    scram_server_set_iterations(s, 8192);
    client_first(&c, SCRAM_SHA_256, "n,,", "ghost", "abc", NULL, m, sizeof m);
    assert_int_equal(step_str(s, m, &us, sf2, sizeof sf2, NULL), SCRAM_CONTINUE);
    scram_server_free(s);

    s = server(SCRAM_SHA_256);
    scram_server_set_iterations(s, 8192);
    client_first(&c, SCRAM_SHA_256, "n,,", "known", "abc", NULL, m, sizeof m);
    assert_int_equal(step_str(s, m, &us, sfk, sizeof sfk, NULL), SCRAM_CONTINUE);
    scram_server_free(s);

    /* same salt for the same name; same shape as a real user's */
    const char *s1 = strstr(sf1, ",s="), *s2 = strstr(sf2, ",s="), *sk = strstr(sfk, ",s=");
    assert_string_equal(s1, s2);
    assert_string_not_equal(s1, sk);
    assert_int_equal(strlen(s1), strlen(sk));
    assert_int_equal(strlen(sf1), strlen(sfk));
    assert_string_equal(sf1 + strlen(sf1) - 7, ",i=8192");
    assert_string_equal(sfk + strlen(sfk) - 7, ",i=8192");
    assert_string_not_equal(sf1, sf2); /* the server nonce differs */

    /* another name, mechanism or secret: another salt */
    s = server(SCRAM_SHA_256);
    client_first(&c, SCRAM_SHA_256, "n,,", "ghost2", "abc", NULL, m, sizeof m);
    assert_int_equal(step_str(s, m, &us, sf3, sizeof sf3, NULL), SCRAM_CONTINUE);
    assert_string_not_equal(strstr(sf3, ",s="), s1);
    assert_string_equal(sf3 + strlen(sf3) - 7, ",i=4096"); /* the default */
    scram_server_free(s);
    s = server(SCRAM_SHA_512);
    client_first(&c, SCRAM_SHA_512, "n,,", "ghost", "abc", NULL, m, sizeof m);
    assert_int_equal(step_str(s, m, &us, sf3, sizeof sf3, NULL), SCRAM_CONTINUE);
    assert_string_not_equal(strstr(sf3, ",s="), s1);
    scram_server_free(s);
    static const uint8_t other[16] = "another secret.";
    s = scram_server_new(SCRAM_SHA_256, other, sizeof other);
    assert_non_null(s);
    scram_server_set_iterations(s, 8192);
    client_first(&c, SCRAM_SHA_256, "n,,", "ghost", "abc", NULL, m, sizeof m);
    assert_int_equal(step_str(s, m, &us, sf3, sizeof sf3, NULL), SCRAM_CONTINUE);
    assert_string_not_equal(strstr(sf3, ",s="), s1);
    scram_server_free(s);
    /* a missing lookup function is a table with nobody in it */
    s = server(SCRAM_SHA_256);
    uint8_t *o = NULL;
    size_t ol = 0;
    assert_int_equal(scram_server_step(s, (const uint8_t *)m, strlen(m), NULL, NULL, &o, &ol, &err),
                     SCRAM_CONTINUE);
    free(o);
    scram_server_free(s);
}

/* A credential the lookup hands back that does not fit the mechanism counts as none. */
static void test_lookup_bad_cred(void **state)
{
    (void)state;
    struct users us = {0};
    char out[256];
    const char *err;

    add_user(&us, "u", SCRAM_SHA_256, "pw", 4096);
    us.u[0].cred[SCRAM_SHA_256].key_len = 64;
    assert_int_equal(exchange(SCRAM_SHA_256, &us, "n,,", "u", "pw", out, sizeof out, &err),
                     SCRAM_FAIL);
    us.u[0].cred[SCRAM_SHA_256].key_len = 32;
    us.u[0].cred[SCRAM_SHA_256].iterations = 1;
    assert_int_equal(exchange(SCRAM_SHA_256, &us, "n,,", "u", "pw", out, sizeof out, &err),
                     SCRAM_FAIL);
    us.u[0].cred[SCRAM_SHA_256].iterations = 4096;
    assert_int_equal(exchange(SCRAM_SHA_256, &us, "n,,", "u", "pw", out, sizeof out, &err),
                     SCRAM_DONE);
}

/* Sizes, arguments and states. */
static void test_bounds_and_states(void **state)
{
    (void)state;
    struct users us;
    const char *err;
    char *big = malloc(SCRAM_MSG_MAX + 2);
    uint8_t *o = NULL;
    size_t ol = 0;

    vector_user(&us);
    assert_non_null(big);
    memset(big, 'x', SCRAM_MSG_MAX + 1);
    memcpy(big, "n,,n=user,r=", 12);
    struct scram_server *s = server(SCRAM_SHA_256);
    assert_int_equal(step(s, big, SCRAM_MSG_MAX + 1, &us, NULL, 0, &err), SCRAM_FAIL);
    assert_string_equal(err, "message too long");
    assert_int_equal(step(s, v_first, strlen(v_first), &us, NULL, 0, &err), SCRAM_FAIL);
    scram_server_free(s);
    /* a client nonce long enough that the client-final could not fit */
    s = server(SCRAM_SHA_256);
    assert_int_equal(step(s, big, SCRAM_MSG_MAX, &us, NULL, 0, &err), SCRAM_FAIL);
    assert_string_equal(err, "malformed nonce");
    scram_server_free(s);
    big[12 + 1024] = 0;
    s = server(SCRAM_SHA_256);
    assert_int_equal(step_str(s, big, &us, NULL, 0, &err), SCRAM_CONTINUE);
    scram_server_free(s);
    free(big);

    s = server(SCRAM_SHA_256);
    assert_int_equal(step(s, "", 0, &us, NULL, 0, &err), SCRAM_FAIL);
    scram_server_free(s);
    s = server(SCRAM_SHA_256);
    assert_int_equal(scram_server_step(s, NULL, 5, lookup, &us, &o, &ol, &err), SCRAM_FAIL);
    scram_server_free(s);
    s = server(SCRAM_SHA_256);
    assert_int_equal(
        scram_server_step(s, (const uint8_t *)"n,,n=a,r=b", 10, lookup, &us, NULL, &ol, NULL),
        SCRAM_FAIL);
    scram_server_free(s);
    assert_int_equal(scram_server_step(NULL, (const uint8_t *)"x", 1, lookup, &us, &o, &ol, &err),
                     SCRAM_FAIL);
    assert_null(o);
    /* after a failure the exchange stays failed, even with the right message */
    s = server(SCRAM_SHA_256);
    assert_int_equal(scram_server_set_nonce_for_test(s, v_snonce, strlen(v_snonce)), 0);
    assert_int_equal(step_str(s, "n,,n=user", &us, NULL, 0, NULL), SCRAM_FAIL);
    assert_int_equal(step_str(s, v_first, &us, NULL, 0, &err), SCRAM_FAIL);
    assert_string_equal(err, "the exchange is over");
    assert_int_equal(scram_server_set_nonce_for_test(s, v_snonce, strlen(v_snonce)), -1);
    scram_server_free(s);

    assert_null(scram_server_new(SCRAM_SHA_256, secret, SCRAM_SECRET_MIN - 1));
    assert_null(scram_server_new(SCRAM_SHA_256, NULL, 32));
    assert_null(scram_server_new(2, secret, sizeof secret));
    assert_null(scram_server_new(-1, secret, sizeof secret));
    scram_server_free(NULL);
    s = server(SCRAM_SHA_512);
    assert_string_equal(scram_server_user(s), "");
    assert_int_equal(scram_server_set_nonce_for_test(s, "a,b", 3), -1);
    assert_int_equal(scram_server_set_nonce_for_test(s, "a b", 3), -1);
    assert_int_equal(scram_server_set_nonce_for_test(s, "", 0), -1);
    assert_int_equal(scram_server_set_nonce_for_test(s, NULL, 3), -1);
    scram_server_free(s);
}

/* xorshift64*, so the garbage is the same on every run. */
static uint64_t rnd(uint64_t *x)
{
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 2685821657736338717ULL;
}

/* Random messages built from SCRAM's own characters and random bytes: the first step
 * never crashes and answers only well-formed messages; a garbage client-final always
 * fails. */
static void test_garbage(void **state)
{
    (void)state;
    static const char alpha[] = "nypmacris=,=2C=3Dbiws+/AZaz09tokenauth";
    struct users us;
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    uint8_t m[400];
    char out[1024];

    vector_user(&us);
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = rnd(&x) % sizeof m;
        for (size_t i = 0; i < n; i++) {
            uint64_t r = rnd(&x);
            m[i] = r % 4 ? (uint8_t)alpha[(r >> 8) % (sizeof alpha - 1)] : (uint8_t)(r >> 16);
        }
        if (iter % 3 == 0 && n > 12)
            memcpy(m, iter % 2 ? "n,,n=user,r=" : "c=biws,r=rOp", 12);
        struct scram_server *s = server(iter % 2 ? SCRAM_SHA_512 : SCRAM_SHA_256);
        int rc = step(s, m, n, &us, out, sizeof out, NULL);
        if (rc == SCRAM_CONTINUE)
            assert_memory_equal(out, "r=", 2);
        else
            assert_int_equal(rc, SCRAM_FAIL);
        scram_server_free(s);
        s = vector_server(&us);
        assert_int_equal(step(s, m, n, &us, NULL, 0, NULL), SCRAM_FAIL);
        scram_server_free(s);
    }
}

/* ---- PLAIN ---- */

static void test_plain_parse(void **state)
{
    (void)state;
    char user[16], pw[16];

    assert_int_equal(
        scram_plain_parse((const uint8_t *)"\0alice\0secret", 13, user, sizeof user, pw, sizeof pw),
        0);
    assert_string_equal(user, "alice");
    assert_string_equal(pw, "secret");
    assert_int_equal(scram_plain_parse((const uint8_t *)"alice\0alice\0secret", 18, user,
                                       sizeof user, pw, sizeof pw),
                     0);
    assert_string_equal(user, "alice");
    assert_string_equal(pw, "secret");

    static const struct {
        const char *m;
        size_t len;
    } bad[] = {
        {"bob\0alice\0secret", 16}, /* authzid is someone else */
        {"alicex\0alice\0secret", 19},
        {"alic\0alice\0secret", 17},
        {"alice\0secret", 12},     /* one NUL */
        {"alicesecret", 11},       /* none */
        {"\0\0secret", 8},         /* no user */
        {"\0alice\0", 7},          /* no password */
        {"\0alice\0sec\0ret", 14}, /* a third NUL */
        {"\0alice\0\0", 8},
        {"", 0},
        {"\0", 1},
        {"\0\0", 2},
        {"\0aaaaaaaaaaaaaaaa\0pw", 20}, /* 16 bytes: no room for the NUL */
        {"\0alice\0pppppppppppppppp", 23},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        strcpy(user, "junk");
        strcpy(pw, "junk");
        if (scram_plain_parse((const uint8_t *)bad[i].m, bad[i].len, user, sizeof user, pw,
                              sizeof pw) == 0)
            fail_msg("case %zu was accepted", i);
        assert_string_equal(user, "");
        assert_string_equal(pw, "");
    }
    /* the largest that fit */
    assert_int_equal(scram_plain_parse((const uint8_t *)"\0aaaaaaaaaaaaaaa\0ppppppppppppppp", 32,
                                       user, sizeof user, pw, sizeof pw),
                     0);
    assert_int_equal(strlen(user), 15);
    assert_int_equal(strlen(pw), 15);
    assert_int_equal(scram_plain_parse(NULL, 0, user, sizeof user, pw, sizeof pw), -1);
    assert_int_equal(scram_plain_parse((const uint8_t *)"\0a\0b", 4, user, 0, pw, sizeof pw), -1);
}

static void test_plain_check(void **state)
{
    (void)state;
    struct scram_cred c;

    for (int m = 0; m < SCRAM_MECH_COUNT; m++) {
        assert_int_equal(scram_cred_new(m, "hunter2", 7, 4096, &c), 0);
        assert_true(scram_cred_check(m, &c, "hunter2", 7));
        assert_false(scram_cred_check(m, &c, "hunter3", 7));
        assert_false(scram_cred_check(m, &c, "hunter2", 6));
        assert_false(scram_cred_check(m, &c, "", 0));
        assert_false(scram_cred_check(1 - m, &c, "hunter2", 7)); /* wrong key length */
        assert_false(scram_cred_check(m, NULL, "hunter2", 7));
    }
    /* an empty password is still a password */
    assert_int_equal(scram_cred_new(SCRAM_SHA_256, "", 0, 4096, &c), 0);
    assert_true(scram_cred_check(SCRAM_SHA_256, &c, "", 0));
    assert_false(scram_cred_check(SCRAM_SHA_256, &c, "x", 1));
    /* the vector's user: PLAIN agrees with SCRAM */
    struct users us;
    vector_user(&us);
    assert_true(scram_cred_check(SCRAM_SHA_256, &us.u[0].cred[0], "pencil", 6));
    c = us.u[0].cred[0];
    c.stored_key[31] ^= 1;
    assert_false(scram_cred_check(SCRAM_SHA_256, &c, "pencil", 6));
}

/* ---- credentials ---- */

static void test_cred_derive(void **state)
{
    (void)state;
    struct scram_cred a, b;
    uint8_t salt[SCRAM_SALT_MAX + 1] = {1, 2, 3};

    assert_int_equal(scram_mech_parse("SCRAM-SHA-256", 13), SCRAM_SHA_256);
    assert_int_equal(scram_mech_parse("SCRAM-SHA-512", 13), SCRAM_SHA_512);
    assert_int_equal(scram_mech_parse("SCRAM-SHA-512x", 13), SCRAM_SHA_512);
    assert_int_equal(scram_mech_parse("SCRAM-SHA-1", 11), -1);
    assert_int_equal(scram_mech_parse("scram-sha-256", 13), -1);
    assert_int_equal(scram_mech_parse("PLAIN", 5), -1);
    assert_int_equal(scram_mech_parse(NULL, 0), -1);
    assert_string_equal(scram_mech_name(SCRAM_SHA_256), "SCRAM-SHA-256");
    assert_string_equal(scram_mech_name(SCRAM_SHA_512), "SCRAM-SHA-512");
    assert_null(scram_mech_name(2));
    assert_null(scram_mech_name(-1));

    assert_int_equal(scram_cred_derive(SCRAM_SHA_512, "pw", 2, salt, 16, 4096, &a), 0);
    assert_int_equal(a.key_len, 64);
    assert_int_equal(a.salt_len, 16);
    assert_int_equal(a.iterations, 4096);
    assert_int_equal(scram_cred_mech(&a), SCRAM_SHA_512);
    /* from SaltedPassword, as AlterUserScramCredentials sends it */
    uint8_t sp[64];
    assert_int_equal(PKCS5_PBKDF2_HMAC("pw", 2, salt, 16, 4096, EVP_sha512(), 64, sp), 1);
    assert_int_equal(scram_cred_from_salted(SCRAM_SHA_512, sp, 64, salt, 16, 4096, &b), 0);
    assert_int_equal(b.key_len, a.key_len);
    assert_int_equal(b.salt_len, a.salt_len);
    assert_int_equal(b.iterations, a.iterations);
    assert_memory_equal(b.salt, a.salt, a.salt_len);
    assert_memory_equal(b.stored_key, a.stored_key, a.key_len);
    assert_memory_equal(b.server_key, a.server_key, a.key_len);
    assert_int_equal(scram_cred_from_salted(SCRAM_SHA_512, sp, 32, salt, 16, 4096, &b), -1);
    assert_int_equal(scram_cred_from_salted(SCRAM_SHA_256, sp, 64, salt, 16, 4096, &b), -1);

    assert_int_equal(scram_cred_derive(SCRAM_SHA_256, "pw", 2, salt, 0, 4096, &a), -1);
    assert_int_equal(scram_cred_derive(SCRAM_SHA_256, "pw", 2, salt, SCRAM_SALT_MAX + 1, 4096, &a),
                     -1);
    assert_int_equal(scram_cred_derive(SCRAM_SHA_256, "pw", 2, salt, SCRAM_SALT_MAX, 4096, &a), 0);
    assert_int_equal(scram_cred_derive(SCRAM_SHA_256, "pw", 2, salt, 1, 4095, &a), -1);
    assert_int_equal(
        scram_cred_derive(SCRAM_SHA_256, "pw", 2, salt, 1, SCRAM_MAX_ITERATIONS + 1, &a), -1);
    assert_int_equal(scram_cred_derive(2, "pw", 2, salt, 1, 4096, &a), -1);
    assert_int_equal(scram_cred_derive(SCRAM_SHA_256, NULL, 2, salt, 1, 4096, &a), -1);
    assert_int_equal(scram_cred_derive(SCRAM_SHA_256, "pw", 2, NULL, 1, 4096, &a), -1);
    assert_int_equal(scram_cred_new(SCRAM_SHA_256, "pw", 2, 100, &a), -1);
    /* fresh salts differ */
    assert_int_equal(scram_cred_new(SCRAM_SHA_256, "pw", 2, 4096, &a), 0);
    assert_int_equal(scram_cred_new(SCRAM_SHA_256, "pw", 2, 4096, &b), 0);
    assert_int_equal(a.salt_len, SCRAM_SALT_LEN);
    assert_memory_not_equal(a.salt, b.salt, a.salt_len);
    assert_memory_not_equal(a.stored_key, b.stored_key, 32);
}

static void test_cred_codec(void **state)
{
    (void)state;
    struct scram_cred a, b;
    uint8_t buf[SCRAM_CRED_ENCODED_MAX + 8], bad[SCRAM_CRED_ENCODED_MAX + 8];
    uint8_t salt[SCRAM_SALT_MAX];

    for (size_t i = 0; i < sizeof salt; i++)
        salt[i] = (uint8_t)(i * 7);
    for (int m = 0; m < SCRAM_MECH_COUNT; m++) {
        assert_int_equal(scram_cred_new(m, "pw", 2, 5000, &a), 0);
        int n = scram_cred_encode(&a, buf, sizeof buf);
        assert_int_equal(n, 8 + SCRAM_SALT_LEN + 2 * a.key_len);
        assert_int_equal(buf[0], 1);
        assert_int_equal(buf[1], m);
        memset(&b, 0xaa, sizeof b);
        assert_int_equal(scram_cred_decode(buf, (size_t)n, &b), 0);
        assert_int_equal(b.key_len, a.key_len);
        assert_int_equal(b.salt_len, a.salt_len);
        assert_int_equal(b.iterations, 5000);
        assert_memory_equal(b.salt, a.salt, a.salt_len);
        assert_memory_equal(b.stored_key, a.stored_key, a.key_len);
        assert_memory_equal(b.server_key, a.server_key, a.key_len);
        assert_true(scram_cred_check(m, &b, "pw", 2));
        /* too small a buffer; every truncation; a byte too many */
        assert_int_equal(scram_cred_encode(&a, buf, (size_t)n - 1), -1);
        for (int len = 0; len < n; len++)
            assert_int_equal(scram_cred_decode(buf, (size_t)len, &b), -1);
        assert_int_equal(scram_cred_decode(buf, (size_t)n + 1, &b), -1);
        /* header fields */
        static const struct {
            int at;
            uint8_t v;
        } corrupt[] = {{0, 0},  {0, 2},   {1, 2},    {1, 0xff}, {2, 0},
                       {2, 48}, {2, 128}, {3, 0x80}, {3, 0xff}, {4, 0x10},
                       {5, 0},  {7, 0},   {7, 31},   {7, 33},   {7, 0xff}};
        for (size_t k = 0; k < sizeof corrupt / sizeof corrupt[0]; k++) {
            memcpy(bad, buf, (size_t)n);
            if (bad[corrupt[k].at] == corrupt[k].v)
                continue;
            bad[corrupt[k].at] = corrupt[k].v;
            if (scram_cred_decode(bad, (size_t)n, &b) == 0)
                fail_msg("mech %d: byte %d = %u accepted", m, corrupt[k].at, corrupt[k].v);
        }
        /* the other mechanism's number with this key length */
        memcpy(bad, buf, (size_t)n);
        bad[1] = (uint8_t)(1 - m);
        assert_int_equal(scram_cred_decode(bad, (size_t)n, &b), -1);
        /* the largest salt */
        assert_int_equal(scram_cred_derive(m, "pw", 2, salt, sizeof salt, 4096, &a), 0);
        n = scram_cred_encode(&a, buf, sizeof buf);
        assert_int_equal(n, 8 + SCRAM_SALT_MAX + 2 * a.key_len);
        assert_int_equal(scram_cred_decode(buf, (size_t)n, &b), 0);
        assert_memory_equal(b.salt, salt, sizeof salt);
    }
    assert_true(SCRAM_CRED_ENCODED_MAX >= 8 + SCRAM_SALT_MAX + 2 * SCRAM_KEY_MAX);
    /* an invalid credential does not encode */
    a.key_len = 48;
    assert_int_equal(scram_cred_encode(&a, buf, sizeof buf), -1);
    assert_int_equal(scram_cred_mech(&a), -1);
    assert_int_equal(scram_cred_decode(NULL, 10, &b), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc7677_vector),
        cmocka_unit_test(test_rfc7677_client),
        cmocka_unit_test(test_final_truncated_and_mutated),
        cmocka_unit_test(test_first_truncated),
        cmocka_unit_test(test_sha512_exchange),
        cmocka_unit_test(test_exchange_variants),
        cmocka_unit_test(test_username_escapes),
        cmocka_unit_test(test_gs2_and_channel_binding),
        cmocka_unit_test(test_extensions),
        cmocka_unit_test(test_unknown_user),
        cmocka_unit_test(test_lookup_bad_cred),
        cmocka_unit_test(test_bounds_and_states),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_plain_parse),
        cmocka_unit_test(test_plain_check),
        cmocka_unit_test(test_cred_derive),
        cmocka_unit_test(test_cred_codec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
