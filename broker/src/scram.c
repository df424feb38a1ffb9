/* scram.c: SASL credentials and the server side of SCRAM-SHA-256/512 (RFC 5802,
 * RFC 7677), plus SASL/PLAIN checked against the same credential. Passwords are
 * taken as the bytes the client sends, without SASLprep, as Kafka does. Every
 * client message is parsed with explicit lengths, never as a C string, and
 * bounded by SCRAM_MSG_MAX. */
#include "scram.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum {
    CRED_VERSION = 1,
    CRED_HDR = 8,     /* version, mech, key_len, iterations(4), salt_len */
    NONCE_MAX = 1024, /* client nonce; the whole nonce must fit a client-final */
    SNONCE_RAW = 24,  /* random bytes behind a server nonce: 32 base64 characters */
    SNONCE_MAX = 64,  /* a server nonce set by a test */
    EXT_KEY_MAX = 64, /* an extension's name */
    GS2_MAX = 2 + 2 + 3 * SCRAM_USER_MAX + 1, /* "y,a=<user, every byte escaped>," */
};

enum { ST_FIRST, ST_FINAL, ST_DONE, ST_FAILED };

struct scram_server {
    int mech;
    int state;
    bool known;         /* cred is a real user's, not the fake one */
    int32_t iterations; /* shown to unknown users */
    size_t secret_len, gs2_len, snonce_len, auth_len, nonce_off, nonce_len;
    uint8_t secret[SCRAM_SECRET_MAX];
    struct scram_cred cred;
    char user[SCRAM_USER_MAX + 1];
    char snonce[SNONCE_MAX]; /* set by a test; random otherwise */
    uint8_t gs2[GS2_MAX];    /* the client's gs2 header, which c= must repeat */
    uint8_t *auth;           /* client-first-bare "," server-first "," (AuthMessage head) */
};

/* ---- mechanisms ---- */

static const char *const mech_names[SCRAM_MECH_COUNT] = {"SCRAM-SHA-256", "SCRAM-SHA-512"};

int scram_mech_parse(const char *name, size_t len)
{
    for (int m = 0; m < SCRAM_MECH_COUNT; m++)
        if (name && len == strlen(mech_names[m]) && memcmp(name, mech_names[m], len) == 0)
            return m;
    return -1;
}

const char *scram_mech_name(int mech)
{
    return mech >= 0 && mech < SCRAM_MECH_COUNT ? mech_names[mech] : NULL;
}

static const EVP_MD *mech_md(int mech)
{
    if (mech == SCRAM_SHA_256)
        return EVP_sha256();
    if (mech == SCRAM_SHA_512)
        return EVP_sha512();
    return NULL;
}

/* Digest size of mech: the length of every key; 0 for no mechanism. */
static size_t mech_key_len(int mech)
{
    return mech == SCRAM_SHA_256 ? 32 : mech == SCRAM_SHA_512 ? 64 : 0;
}

/* ---- base64 (RFC 4648, padded; decoding is strict: canonical input only) ----
 */

static const char b64_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t b64_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

/* Writes b64_len(n) characters (no NUL) to out; returns how many. */
static size_t b64_encode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (n - i > 1)
            v |= (uint32_t)in[i + 1] << 8;
        if (n - i > 2)
            v |= in[i + 2];
        out[o++] = b64_alpha[v >> 18];
        out[o++] = b64_alpha[(v >> 12) & 63];
        out[o++] = n - i > 1 ? b64_alpha[(v >> 6) & 63] : '=';
        out[o++] = n - i > 2 ? b64_alpha[v & 63] : '=';
    }
    return o;
}

static int b64_val(uint8_t c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

static int b64_decode(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    size_t o = 0;
    if (n % 4 || n > INT_MAX)
        return -1;
    for (size_t i = 0; i < n; i += 4) {
        int pad = 0, d[4];
        bool last = n - i == 4;
        for (int j = 0; j < 4; j++) {
            d[j] = b64_val(in[i + j]);
            if (d[j] < 0 && last && j >= 2 && in[i + j] == '=' && (j == 3 || in[i + 3] == '=')) {
                d[j] = 0;
                pad++;
            } else if (d[j] < 0) {
                return -1;
            }
        }
        uint32_t v = (uint32_t)d[0] << 18 | (uint32_t)d[1] << 12 | (uint32_t)d[2] << 6 | d[3];
        size_t take = 3 - (size_t)pad;
        if ((pad == 1 && (v & 0xff)) || (pad == 2 && (v & 0xffff)) || take > cap - o)
            return -1;
        for (size_t j = 0; j < take; j++)
            out[o++] = (uint8_t)(v >> (16 - 8 * j));
    }
    return (int)o;
}

int scram_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
    return b64_decode((const uint8_t *)in, n, out, cap);
}

/* ---- credentials ---- */

/* Whether c is a usable credential for mech. */
static bool cred_valid(int mech, const struct scram_cred *c)
{
    return c && mech_key_len(mech) && c->key_len == mech_key_len(mech) && c->salt_len > 0 &&
           c->salt_len <= SCRAM_SALT_MAX && c->iterations >= SCRAM_MIN_ITERATIONS &&
           c->iterations <= SCRAM_MAX_ITERATIONS;
}

int scram_cred_mech(const struct scram_cred *c)
{
    for (int m = 0; m < SCRAM_MECH_COUNT; m++)
        if (cred_valid(m, c))
            return m;
    return -1;
}

static int hmac(int mech, const uint8_t *key, size_t key_len, const void *data, size_t n,
                uint8_t out[SCRAM_KEY_MAX])
{
    unsigned int len = 0;
    if (key_len > INT_MAX || !HMAC(mech_md(mech), key, (int)key_len, data, n, out, &len))
        return -1;
    return len == mech_key_len(mech) ? 0 : -1;
}

static int digest(int mech, const uint8_t *data, size_t n, uint8_t out[SCRAM_KEY_MAX])
{
    unsigned int len = 0;
    if (!EVP_Digest(data, n, out, &len, mech_md(mech), NULL))
        return -1;
    return len == mech_key_len(mech) ? 0 : -1;
}

/* SaltedPassword = Hi(pw, salt, i), key_len bytes. */
static int salt_password(int mech, const char *pw, size_t pw_len, const uint8_t *salt,
                         size_t salt_len, int32_t iterations, uint8_t out[SCRAM_KEY_MAX])
{
    if (!mech_md(mech) || (!pw && pw_len) || pw_len > INT_MAX || salt_len == 0 ||
        salt_len > SCRAM_SALT_MAX || iterations < SCRAM_MIN_ITERATIONS ||
        iterations > SCRAM_MAX_ITERATIONS)
        return -1;
    if (!PKCS5_PBKDF2_HMAC(pw ? pw : "", (int)pw_len, salt, (int)salt_len, iterations,
                           mech_md(mech), (int)mech_key_len(mech), out))
        return -1;
    return 0;
}

int scram_cred_from_salted(int mech, const uint8_t *salted, size_t salted_len, const uint8_t *salt,
                           size_t salt_len, int32_t iterations, struct scram_cred *out)
{
    uint8_t client_key[SCRAM_KEY_MAX];
    struct scram_cred c = {0};
    int rc = -1;

    c.key_len = (uint8_t)mech_key_len(mech);
    c.salt_len = (uint8_t)salt_len;
    c.iterations = iterations;
    if (!salted || !salt || !out || salted_len != c.key_len || salt_len > SCRAM_SALT_MAX ||
        !cred_valid(mech, &c))
        goto out;
    memcpy(c.salt, salt, salt_len);
    if (hmac(mech, salted, salted_len, "Client Key", 10, client_key) < 0 ||
        digest(mech, client_key, c.key_len, c.stored_key) < 0 ||
        hmac(mech, salted, salted_len, "Server Key", 10, c.server_key) < 0)
        goto out;
    *out = c;
    rc = 0;
out:
    OPENSSL_cleanse(client_key, sizeof client_key);
    OPENSSL_cleanse(&c, sizeof c);
    return rc;
}

int scram_cred_derive(int mech, const char *pw, size_t pw_len, const uint8_t *salt, size_t salt_len,
                      int32_t iterations, struct scram_cred *out)
{
    uint8_t sp[SCRAM_KEY_MAX];
    int rc = -1;

    if (!salt || salt_password(mech, pw, pw_len, salt, salt_len, iterations, sp) < 0)
        goto out;
    rc = scram_cred_from_salted(mech, sp, mech_key_len(mech), salt, salt_len, iterations, out);
out:
    OPENSSL_cleanse(sp, sizeof sp);
    return rc;
}

int scram_cred_new(int mech, const char *pw, size_t pw_len, int32_t iterations,
                   struct scram_cred *out)
{
    uint8_t salt[SCRAM_SALT_LEN];

    if (RAND_bytes(salt, sizeof salt) != 1)
        return -1;
    return scram_cred_derive(mech, pw, pw_len, salt, sizeof salt, iterations, out);
}

bool scram_cred_check(int mech, const struct scram_cred *c, const char *pw, size_t pw_len)
{
    uint8_t sp[SCRAM_KEY_MAX], client_key[SCRAM_KEY_MAX], stored[SCRAM_KEY_MAX];
    bool ok = false;

    if (!cred_valid(mech, c) ||
        salt_password(mech, pw, pw_len, c->salt, c->salt_len, c->iterations, sp) < 0 ||
        hmac(mech, sp, c->key_len, "Client Key", 10, client_key) < 0 ||
        digest(mech, client_key, c->key_len, stored) < 0)
        goto out;
    ok = CRYPTO_memcmp(stored, c->stored_key, c->key_len) == 0;
out:
    OPENSSL_cleanse(sp, sizeof sp);
    OPENSSL_cleanse(client_key, sizeof client_key);
    return ok;
}

int scram_cred_encode(const struct scram_cred *c, uint8_t *out, size_t cap)
{
    int mech = scram_cred_mech(c);
    if (mech < 0 || !out)
        return -1;
    size_t n = CRED_HDR + c->salt_len + 2 * (size_t)c->key_len;
    if (n > cap)
        return -1;
    uint32_t it = (uint32_t)c->iterations;
    out[0] = CRED_VERSION;
    out[1] = (uint8_t)mech;
    out[2] = c->key_len;
    out[3] = (uint8_t)(it >> 24);
    out[4] = (uint8_t)(it >> 16);
    out[5] = (uint8_t)(it >> 8);
    out[6] = (uint8_t)it;
    out[7] = c->salt_len;
    memcpy(out + CRED_HDR, c->salt, c->salt_len);
    memcpy(out + CRED_HDR + c->salt_len, c->stored_key, c->key_len);
    memcpy(out + CRED_HDR + c->salt_len + c->key_len, c->server_key, c->key_len);
    return (int)n;
}

int scram_cred_decode(const uint8_t *in, size_t len, struct scram_cred *out)
{
    struct scram_cred c = {0};

    if (!in || !out || len < CRED_HDR || in[0] != CRED_VERSION || in[1] >= SCRAM_MECH_COUNT)
        return -1;
    c.key_len = in[2];
    c.iterations =
        (int32_t)((uint32_t)in[3] << 24 | (uint32_t)in[4] << 16 | (uint32_t)in[5] << 8 | in[6]);
    c.salt_len = in[7];
    /* cred_valid bounds key_len and salt_len before they are used as lengths */
    if (!cred_valid(in[1], &c) || len - CRED_HDR != c.salt_len + 2 * (size_t)c.key_len)
        return -1;
    memcpy(c.salt, in + CRED_HDR, c.salt_len);
    memcpy(c.stored_key, in + CRED_HDR + c.salt_len, c.key_len);
    memcpy(c.server_key, in + CRED_HDR + c.salt_len + c.key_len, c.key_len);
    *out = c;
    OPENSSL_cleanse(&c, sizeof c);
    return 0;
}

/* ---- SASL/PLAIN (RFC 4616) ---- */

int scram_plain_parse(const uint8_t *in, size_t len, char *user, size_t user_cap, char *pw,
                      size_t pw_cap)
{
    if (!in || !user || !pw || user_cap == 0 || pw_cap == 0)
        return -1;
    user[0] = 0;
    pw[0] = 0;
    const uint8_t *z1 = memchr(in, 0, len);
    if (!z1)
        return -1;
    size_t zlen = (size_t)(z1 - in), off = zlen + 1;
    const uint8_t *z2 = memchr(in + off, 0, len - off);
    if (!z2)
        return -1;
    size_t ulen = (size_t)(z2 - (in + off)), poff = off + ulen + 1, plen = len - poff;
    if (ulen == 0 || plen == 0 || ulen >= user_cap || plen >= pw_cap ||
        memchr(in + poff, 0, plen) || (zlen && (zlen != ulen || memcmp(in, in + off, ulen))))
        return -1;
    memcpy(user, in + off, ulen);
    user[ulen] = 0;
    memcpy(pw, in + poff, plen);
    pw[plen] = 0;
    return 0;
}

/* ---- SCRAM message parsing ---- */

/* A client message being read: bytes [off, len) remain. */
struct cur {
    const uint8_t *p;
    size_t len, off;
};

static bool cur_end(const struct cur *c)
{
    return c->off == c->len;
}

/* Consumes ch if it comes next. */
static bool cur_take(struct cur *c, uint8_t ch)
{
    if (c->off == c->len || c->p[c->off] != ch)
        return false;
    c->off++;
    return true;
}

/* Consumes attribute "<name>=<value>" up to the next ',' or the end; *v, *vl:
 * value. */
static bool cur_attr(struct cur *c, uint8_t name, const uint8_t **v, size_t *vl)
{
    if (c->len - c->off < 2 || c->p[c->off] != name || c->p[c->off + 1] != '=')
        return false;
    c->off += 2;
    const uint8_t *s = c->p + c->off, *e = memchr(s, ',', c->len - c->off);
    *v = s;
    *vl = e ? (size_t)(e - s) : c->len - c->off;
    c->off += *vl;
    return true;
}

/* Decodes a saslname (",", "=" escaped as "=2C", "=3D") into out
 * (NUL-terminated, at most SCRAM_USER_MAX bytes). Control characters are
 * refused: no principal has them and they would end up in logs. Returns 0 or
 * -1. */
static int saslname_decode(const uint8_t *v, size_t n, char out[SCRAM_USER_MAX + 1])
{
    size_t o = 0;
    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        uint8_t ch = v[i];
        if (ch == '=') {
            if (n - i < 3)
                return -1;
            if (v[i + 1] == '2' && v[i + 2] == 'C')
                ch = ',';
            else if (v[i + 1] == '3' && v[i + 2] == 'D')
                ch = '=';
            else
                return -1;
            i += 2;
        }
        if (ch < 0x20 || ch == 0x7f || o == SCRAM_USER_MAX)
            return -1;
        out[o++] = (char)ch;
    }
    out[o] = 0;
    return 0;
}

/* A nonce: printable ASCII except ','. */
static bool nonce_valid(const uint8_t *v, size_t n)
{
    if (n == 0 || n > NONCE_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (v[i] < 0x21 || v[i] > 0x7e || v[i] == ',')
            return false;
    return true;
}

/* Reads the optional ",key=value" extensions up to the end. Unknown ones are
 * ignored (RFC 5802 5.1); Kafka's tokenauth=true asks for delegation-token
 * auth, which this broker does not have. Returns NULL, or why the extensions
 * are refused. */
static const char *read_extensions(struct cur *c)
{
    while (!cur_end(c)) {
        if (!cur_take(c, ','))
            return "malformed extension";
        const uint8_t *k = c->p + c->off, *eq = memchr(k, '=', c->len - c->off);
        size_t kl = eq ? (size_t)(eq - k) : 0;
        if (kl == 0 || kl > EXT_KEY_MAX || memchr(k, ',', kl))
            return "malformed extension";
        for (size_t i = 0; i < kl; i++)
            if (!((k[i] | 0x20) >= 'a' && (k[i] | 0x20) <= 'z') && !(k[i] >= '0' && k[i] <= '9'))
                return "malformed extension";
        c->off += kl + 1;
        const uint8_t *v = c->p + c->off, *e = memchr(v, ',', c->len - c->off);
        size_t vl = e ? (size_t)(e - v) : c->len - c->off;
        if (memchr(v, 0, vl))
            return "malformed extension";
        c->off += vl;
        if (kl == 9 && memcmp(k, "tokenauth", 9) == 0 && vl == 4 &&
            strncasecmp((const char *)v, "true", 4) == 0)
            return "delegation tokens are not supported";
    }
    return NULL;
}

/* Reads the gs2 header: "n" or "y" (no channel binding), an optional "a="
 * authzid, which must name the user being authenticated (checked later; decoded
 * into authz, "" when absent). Returns NULL or why the header is refused. */
static const char *read_gs2(struct cur *c, char authz[SCRAM_USER_MAX + 1])
{
    const uint8_t *v;
    size_t vl;

    authz[0] = 0;
    if (c->len > 0 && c->p[0] == 'p')
        return "channel binding is not supported";
    if (!(cur_take(c, 'n') || cur_take(c, 'y')) || !cur_take(c, ','))
        return "malformed gs2 header";
    if (cur_take(c, ','))
        return NULL;
    if (!cur_attr(c, 'a', &v, &vl) || saslname_decode(v, vl, authz) < 0 || !cur_take(c, ','))
        return "malformed authzid";
    return NULL;
}

/* ---- the exchange ---- */

static int fail(struct scram_server *s, const char **err, const char *why)
{
    s->state = ST_FAILED;
    if (err)
        *err = why;
    return SCRAM_FAIL;
}

/* Takes the user's credential or, for an unknown user, a fake one whose salt is
 * an HMAC of the mechanism and name under the server's secret, so a name always
 * gets the same salt. The HMAC is computed for known users too, so both paths
 * cost the same. */
static int pick_cred(struct scram_server *s, scram_lookup_fn *lookup, void *arg)
{
    uint8_t buf[1 + SCRAM_USER_MAX], mac[SCRAM_KEY_MAX];
    size_t ulen = strlen(s->user);
    struct scram_cred fake = {0};

    _Static_assert(SCRAM_SALT_LEN <= 32, "the fake salt comes from one HMAC-SHA-256");
    buf[0] = (uint8_t)s->mech;
    memcpy(buf + 1, s->user, ulen);
    if (hmac(SCRAM_SHA_256, s->secret, s->secret_len, buf, 1 + ulen, mac) < 0)
        return -1;
    memcpy(fake.salt, mac, SCRAM_SALT_LEN);
    fake.salt_len = SCRAM_SALT_LEN;
    fake.key_len = (uint8_t)mech_key_len(s->mech);
    fake.iterations = s->iterations;
    const struct scram_cred *c = lookup ? lookup(arg, s->user, s->mech) : NULL;
    s->known = cred_valid(s->mech, c);
    s->cred = s->known ? *c : fake;
    return 0;
}

/* The server nonce: 24 random bytes in base64 (printable, never ','), unless a
 * test set one. */
static int make_snonce(struct scram_server *s)
{
    uint8_t raw[SNONCE_RAW];

    _Static_assert(4 * SNONCE_RAW / 3 <= SNONCE_MAX, "server nonce size");
    if (s->snonce_len)
        return 0;
    if (RAND_bytes(raw, sizeof raw) != 1)
        return -1;
    s->snonce_len = b64_encode(raw, sizeof raw, s->snonce);
    return 0;
}

/* Writes server-first "r=<cnonce><snonce>,s=<salt>,i=<iterations>" and keeps
 * "<client-first-bare>,<server-first>," as the head of the AuthMessage. */
static int server_first(struct scram_server *s, const uint8_t *bare, size_t bare_len,
                        const uint8_t *cnonce, size_t cn_len, uint8_t **out, size_t *out_len,
                        const char **err)
{
    char iter[16];
    int il = snprintf(iter, sizeof iter, "%d", (int)s->cred.iterations);
    size_t sf_len = 2 + cn_len + s->snonce_len + 3 + b64_len(s->cred.salt_len) + 3 + (size_t)il;
    uint8_t *a = malloc(bare_len + 1 + sf_len + 1), *sf, *o = malloc(sf_len);

    if (!a || !o) {
        free(a);
        free(o);
        return fail(s, err, "out of memory");
    }
    memcpy(a, bare, bare_len);
    a[bare_len] = ',';
    sf = a + bare_len + 1;
    memcpy(sf, "r=", 2);
    memcpy(sf + 2, cnonce, cn_len);
    memcpy(sf + 2 + cn_len, s->snonce, s->snonce_len);
    size_t k = 2 + cn_len + s->snonce_len;
    memcpy(sf + k, ",s=", 3);
    k += 3 + b64_encode(s->cred.salt, s->cred.salt_len, (char *)sf + k + 3);
    memcpy(sf + k, ",i=", 3);
    memcpy(sf + k + 3, iter, (size_t)il);
    sf[sf_len] = ',';
    memcpy(o, sf, sf_len);
    s->auth = a;
    s->auth_len = bare_len + 1 + sf_len + 1;
    s->nonce_off = bare_len + 1 + 2;
    s->nonce_len = cn_len + s->snonce_len;
    s->state = ST_FINAL;
    *out = o;
    *out_len = sf_len;
    return SCRAM_CONTINUE;
}

static int step_first(struct scram_server *s, const uint8_t *in, size_t n, scram_lookup_fn *lookup,
                      void *arg, uint8_t **out, size_t *out_len, const char **err)
{
    struct cur c = {in, n, 0};
    char authz[SCRAM_USER_MAX + 1];
    const uint8_t *v, *nonce;
    size_t vl, nl;
    const char *why = read_gs2(&c, authz);

    if (why)
        return fail(s, err, why);
    if (c.off > sizeof s->gs2)
        return fail(s, err, "malformed gs2 header");
    memcpy(s->gs2, in, c.off);
    s->gs2_len = c.off;
    size_t bare = c.off;
    if (n - c.off >= 2 && in[c.off] == 'm' && in[c.off + 1] == '=')
        return fail(s, err, "mandatory extensions are not supported");
    if (!cur_attr(&c, 'n', &v, &vl) || saslname_decode(v, vl, s->user) < 0)
        return fail(s, err, "malformed user name");
    if (!cur_take(&c, ',') || !cur_attr(&c, 'r', &nonce, &nl) || !nonce_valid(nonce, nl))
        return fail(s, err, "malformed nonce");
    if ((why = read_extensions(&c)))
        return fail(s, err, why);
    if (authz[0] && strcmp(authz, s->user) != 0)
        return fail(s, err, "authzid must be the user being authenticated");
    if (pick_cred(s, lookup, arg) < 0 || make_snonce(s) < 0)
        return fail(s, err, "internal error");
    return server_first(s, in + bare, n - bare, nonce, nl, out, out_len, err);
}

/* Checks the proof against AuthMessage = head + client-final-without-proof, and
 * answers server-final "v=<ServerSignature>". The work is the same whether or
 * not the user exists. */
static int verify(struct scram_server *s, const uint8_t *wp, size_t wp_len,
                  const uint8_t proof[SCRAM_KEY_MAX], uint8_t **out, size_t *out_len,
                  const char **err)
{
    uint8_t sig[SCRAM_KEY_MAX], key[SCRAM_KEY_MAX], stored[SCRAM_KEY_MAX];
    uint8_t ssig[SCRAM_KEY_MAX], *msg, *o;
    size_t kl = s->cred.key_len, total = s->auth_len + wp_len;
    const char *why = "out of memory";
    bool ok = false;

    if (!(msg = realloc(s->auth, total)))
        goto out;
    s->auth = msg;
    memcpy(msg + s->auth_len, wp, wp_len);
    why = "internal error";
    if (hmac(s->mech, s->cred.stored_key, kl, msg, total, sig) < 0 ||
        hmac(s->mech, s->cred.server_key, kl, msg, total, ssig) < 0)
        goto out;
    for (size_t i = 0; i < kl; i++)
        key[i] = proof[i] ^ sig[i];
    if (digest(s->mech, key, kl, stored) < 0)
        goto out;
    why = "invalid credentials";
    ok = (CRYPTO_memcmp(stored, s->cred.stored_key, kl) == 0) & s->known;
    if (!ok)
        goto out;
    ok = false;
    why = "out of memory";
    if (!(o = malloc(2 + b64_len(kl))))
        goto out;
    memcpy(o, "v=", 2);
    *out_len = 2 + b64_encode(ssig, kl, (char *)o + 2);
    *out = o;
    s->state = ST_DONE;
    ok = true;
out:
    OPENSSL_cleanse(key, sizeof key);
    return ok ? SCRAM_DONE : fail(s, err, why);
}

static int step_final(struct scram_server *s, const uint8_t *in, size_t n, uint8_t **out,
                      size_t *out_len, const char **err)
{
    uint8_t cb[GS2_MAX], proof[SCRAM_KEY_MAX];
    const uint8_t *v, *last = memrchr(in, ',', n);
    size_t vl;
    const char *why;

    if (!last)
        return fail(s, err, "malformed client-final");
    size_t wp = (size_t)(last - in);
    struct cur c = {in, wp, 0}, pc = {in, n, wp + 1};
    if (!cur_attr(&pc, 'p', &v, &vl) ||
        b64_decode(v, vl, proof, sizeof proof) != (int)s->cred.key_len)
        return fail(s, err, "malformed proof");
    int cbl = -1;
    if (!cur_attr(&c, 'c', &v, &vl) || (cbl = b64_decode(v, vl, cb, sizeof cb)) < 0 ||
        (size_t)cbl != s->gs2_len || memcmp(cb, s->gs2, s->gs2_len) != 0)
        return fail(s, err, "channel binding does not match the gs2 header");
    /* Kafka accepts a nonce that ends with the server's (librdkafka up to 2.x sends
     * the client nonce again in front of it), so we do too; the proof covers the
     * message as sent either way */
    if (!cur_take(&c, ',') || !cur_attr(&c, 'r', &v, &vl) || vl < s->nonce_len ||
        memcmp(v + vl - s->nonce_len, s->auth + s->nonce_off, s->nonce_len) != 0)
        return fail(s, err, "nonce does not match");
    if ((why = read_extensions(&c)))
        return fail(s, err, why);
    return verify(s, in, wp, proof, out, out_len, err);
}

int scram_server_step(struct scram_server *s, const uint8_t *in, size_t in_len,
                      scram_lookup_fn *lookup, void *arg, uint8_t **out, size_t *out_len,
                      const char **err)
{
    if (out)
        *out = NULL;
    if (out_len)
        *out_len = 0;
    if (err)
        *err = NULL;
    if (!s) {
        if (err)
            *err = "no exchange";
        return SCRAM_FAIL;
    }
    if (!out || !out_len || (!in && in_len))
        return fail(s, err, "bad arguments");
    if (in_len == 0 || in_len > SCRAM_MSG_MAX)
        return fail(s, err, in_len ? "message too long" : "empty message");
    if (s->state == ST_FIRST)
        return step_first(s, in, in_len, lookup, arg, out, out_len, err);
    if (s->state == ST_FINAL)
        return step_final(s, in, in_len, out, out_len, err);
    return fail(s, err, "the exchange is over");
}

const char *scram_server_user(const struct scram_server *s)
{
    return s ? s->user : "";
}

struct scram_server *scram_server_new(int mech, const uint8_t *secret, size_t secret_len)
{
    if (!mech_md(mech) || !secret || secret_len < SCRAM_SECRET_MIN || secret_len > SCRAM_SECRET_MAX)
        return NULL;
    struct scram_server *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->mech = mech;
    s->state = ST_FIRST;
    s->iterations = SCRAM_MIN_ITERATIONS;
    memcpy(s->secret, secret, secret_len);
    s->secret_len = secret_len;
    return s;
}

void scram_server_free(struct scram_server *s)
{
    if (!s)
        return;
    free(s->auth);
    OPENSSL_cleanse(s, sizeof *s);
    free(s);
}

void scram_server_set_iterations(struct scram_server *s, int32_t iterations)
{
    if (iterations < SCRAM_MIN_ITERATIONS)
        iterations = SCRAM_MIN_ITERATIONS;
    if (iterations > SCRAM_MAX_ITERATIONS)
        iterations = SCRAM_MAX_ITERATIONS;
    s->iterations = iterations;
}

int scram_server_set_nonce_for_test(struct scram_server *s, const char *snonce, size_t len)
{
    if (!s || !snonce || s->state != ST_FIRST || len > SNONCE_MAX ||
        !nonce_valid((const uint8_t *)snonce, len))
        return -1;
    memcpy(s->snonce, snonce, len);
    s->snonce_len = len;
    return 0;
}
