/*
 * scrambench: what SASL authentication costs the broker on one core (broker/src/scram.c,
 * broker/src/principals.c).
 *
 *   make BUILD=build/hs    # the broker's objects
 *   cc -O2 -g -D_GNU_SOURCE -Ibroker/src -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
 *      -Wstrict-prototypes \
 *      tests/bench/scrambench.c build/hs/obj/broker/src/{scram,principals,store,crc32c,log}.o \
 *      -lrocksdb -lssl -lcrypto -lpthread -lm -o build/hs/bin/scrambench
 *   build/hs/bin/scrambench [-i ITERATIONS] [-t SECONDS] [-n PRINCIPALS]
 *
 * Per mechanism:
 *   handshakes/s   complete server-side exchanges (client-first to server-final, with the
 *                  lookup), timing only the server's calls; an in-process client makes the
 *                  messages with its SaltedPassword cached
 *   pbkdf2/s       PBKDF2 derivations at the same iteration count: a client pays one per
 *                  handshake (the server pays none, only HMACs), so this is the rate one
 *                  core of clients can sustain, the ceiling beside the server's figure
 *   plain checks/s SASL/PLAIN verifications, which cost the server one PBKDF2 each
 * Then the user table: -n principals written, loaded by principals_open (one scan),
 * its heap and lookups/s. -n 0 skips it.
 */
#include "principals.h"
#include "scram.h"
#include "store.h"
#include "log.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <ftw.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "scrambench: %s\n", what);
    exit(1);
}

/* ---- an in-process client (RFC 5802), caching its SaltedPassword-derived keys ---- */

struct client {
    const EVP_MD *md;
    int kl;
    uint8_t ck[64], sk[64], svk[64]; /* ClientKey, StoredKey, ServerKey */
    char bare[128];
    char wo[256];
    uint8_t ssig[64];
};

static void client_init(struct client *c, int mech, const char *pw, const struct scram_cred *cr)
{
    uint8_t sp[64];
    unsigned int l;

    c->md = mech == SCRAM_SHA_256 ? EVP_sha256() : EVP_sha512();
    c->kl = EVP_MD_get_size(c->md);
    if (!PKCS5_PBKDF2_HMAC(pw, (int)strlen(pw), cr->salt, cr->salt_len, cr->iterations, c->md,
                           c->kl, sp))
        die("PBKDF2");
    HMAC(c->md, sp, c->kl, (const uint8_t *)"Client Key", 10, c->ck, &l);
    EVP_Digest(c->ck, (size_t)c->kl, c->sk, NULL, c->md, NULL);
    HMAC(c->md, sp, c->kl, (const uint8_t *)"Server Key", 10, c->svk, &l);
}

static size_t client_first(struct client *c, char *out, size_t cap)
{
    snprintf(c->bare, sizeof c->bare, "n=bench,r=%08lx%08lx", random(), random());
    return (size_t)snprintf(out, cap, "n,,%s", c->bare);
}

static size_t client_final(struct client *c, const uint8_t *sf, size_t sfl, char *out, size_t cap)
{
    char auth[1024], pb[128];
    uint8_t csig[64], proof[64];
    unsigned int l;
    const char *s = memmem(sf, sfl, ",s=", 3);

    if (!s)
        die("server-first");
    snprintf(c->wo, sizeof c->wo, "c=biws,r=%.*s", (int)(s - (const char *)sf - 2),
             (const char *)sf + 2);
    int al = snprintf(auth, sizeof auth, "%s,%.*s,%s", c->bare, (int)sfl, sf, c->wo);
    HMAC(c->md, c->sk, c->kl, (uint8_t *)auth, (size_t)al, csig, &l);
    for (int i = 0; i < c->kl; i++)
        proof[i] = c->ck[i] ^ csig[i];
    HMAC(c->md, c->svk, c->kl, (uint8_t *)auth, (size_t)al, c->ssig, &l);
    EVP_EncodeBlock((unsigned char *)pb, proof, c->kl);
    return (size_t)snprintf(out, cap, "%s,p=%s", c->wo, pb);
}

static const struct scram_cred *one_user(void *arg, const char *user, int mech)
{
    const struct scram_cred *c = arg;
    return strcmp(user, "bench") == 0 ? c : NULL;
}

/* ---- measurements ---- */

static const uint8_t secret[32] = "scrambench secret, 32 bytes lon";

/* Server-side handshakes per second; client time is excluded. */
static double handshakes(int mech, const struct scram_cred *cr, double secs)
{
    struct client c;
    char m[512];
    double server = 0, t0 = now();
    long n = 0;

    client_init(&c, mech, "bench-password", cr);
    while (now() - t0 < secs) {
        uint8_t *out = NULL, *fin = NULL;
        size_t ol, fl;
        const char *err;
        size_t ml = client_first(&c, m, sizeof m);
        double a = now();
        struct scram_server *s = scram_server_new(mech, secret, sizeof secret);
        int rc = scram_server_step(s, (uint8_t *)m, ml, one_user, (void *)cr, &out, &ol, &err);
        server += now() - a;
        if (rc != SCRAM_CONTINUE)
            die(err);
        ml = client_final(&c, out, ol, m, sizeof m);
        a = now();
        rc = scram_server_step(s, (uint8_t *)m, ml, one_user, (void *)cr, &fin, &fl, &err);
        scram_server_free(s);
        server += now() - a;
        if (rc != SCRAM_DONE)
            die(err);
        free(out);
        free(fin);
        n++;
    }
    return (double)n / server;
}

static double pbkdf2_rate(int mech, int32_t iterations, double secs)
{
    const EVP_MD *md = mech == SCRAM_SHA_256 ? EVP_sha256() : EVP_sha512();
    uint8_t out[64], salt[32] = {1};
    double t0 = now(), t;
    long n = 0;

    do {
        if (!PKCS5_PBKDF2_HMAC("bench-password", 14, salt, sizeof salt, iterations, md,
                               EVP_MD_get_size(md), out))
            die("PBKDF2");
        n++;
    } while ((t = now() - t0) < secs);
    return (double)n / t;
}

static double plain_rate(int mech, const struct scram_cred *cr, double secs)
{
    double t0 = now(), t;
    long n = 0;

    do {
        if (!scram_cred_check(mech, cr, "bench-password", 14))
            die("PLAIN check");
        n++;
    } while ((t = now() - t0) < secs);
    return (double)n / t;
}

/* ---- the user table at scale ---- */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static size_t heap_used(void)
{
    return mallinfo2().uordblks;
}

static void table(int n, int32_t iterations)
{
    char dir[] = "/tmp/scrambench-XXXXXX", name[64], *err = NULL;
    struct scram_cred cr[SCRAM_MECH_COUNT];

    if (!mkdtemp(dir))
        die("mkdtemp");
    struct store *st = store_open(dir, &err);
    struct principals *p = st ? principals_open(st, iterations) : NULL;
    if (!p)
        die("cannot open a store");
    for (int m = 0; m < SCRAM_MECH_COUNT; m++)
        if (scram_cred_new(m, "pw", 2, iterations, &cr[m]) < 0)
            die("credential");
    /* The first principals go through principals_set_cred (two synced writes each, as
     * AlterUserScramCredentials would do them); the rest are copies of the first record
     * under other keys, written in batches, since fsyncs are not what is measured. */
    int direct = n < 2000 ? n : 2000;
    double t0 = now();
    for (int i = 0; i < direct; i++) {
        snprintf(name, sizeof name, "user-%07d@example.com", i);
        if (principals_set_cred(p, name, SCRAM_SHA_256, &cr[0]) < 0 ||
            principals_set_cred(p, name, SCRAM_SHA_512, &cr[1]) < 0)
            die("principals_set_cred");
    }
    double t_set = now() - t0;
    principals_free(p);
    size_t vl;
    int gerr;
    uint8_t *rec =
        store_get(st, STORE_CF_META, "principal/user-0000000@example.com", 34, &vl, &gerr);
    struct store_wb *wb = store_wb_new(st);
    if (!rec || !wb)
        die("no record");
    for (int i = direct; i < n; i++) {
        char key[80];
        int kl = snprintf(key, sizeof key, "principal/user-%07d@example.com", i);
        store_wb_put(wb, STORE_CF_META, key, (size_t)kl, rec, vl);
        if (store_wb_count(wb) == 10000 || i == n - 1) {
            if (store_write(st, wb, 0) < 0)
                die("store_write");
            store_wb_clear(wb);
        }
    }
    store_wb_free(wb);
    free(rec);
    /* as a restart would find it: flushed to SST files */
    store_close(st);
    st = store_open(dir, &err);
    if (!st)
        die("reopen");

    size_t h0 = heap_used();
    t0 = now();
    p = principals_open(st, iterations);
    double t_open = now() - t0;
    if (!p || principals_count(p) != (size_t)n)
        die("reload");
    size_t h1 = heap_used();

    long found = 0;
    t0 = now();
    for (int i = 0; i < 1000000; i++) {
        snprintf(name, sizeof name, "user-%07d@example.com", (int)(((long)i * 7919) % n));
        found += principals_cred(p, name, i & 1) != NULL;
    }
    double t_look = now() - t0;
    if (found != 1000000)
        die("lookup");
    principals_free(p);
    size_t h2 = heap_used();
    store_close(st);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);

    printf("principals: %d (names of 24 bytes)\n", n);
    printf("principals_set_cred/s (synced write each): %.0f\n", 2.0 * direct / t_set);
    printf("principals_open (one scan): %.0f ms\n", t_open * 1000);
    printf("principals table heap: %.1f MB, %.0f bytes/principal (heap grown by open: %.1f MB)\n",
           (double)(h1 - h2) / 1e6, (double)(h1 - h2) / n, (double)(h1 - h0) / 1e6);
    printf("principals lookups/s (incl. snprintf): %.0f\n", 1e6 / t_look);
}

int main(int argc, char **argv)
{
    int32_t iterations = 4096;
    double secs = 2;
    int n = 300000, opt;

    while ((opt = getopt(argc, argv, "i:t:n:")) != -1) {
        if (opt == 'i')
            iterations = atoi(optarg);
        else if (opt == 't')
            secs = atof(optarg);
        else if (opt == 'n')
            n = atoi(optarg);
        else
            die("usage: scrambench [-i ITERATIONS] [-t SECONDS] [-n PRINCIPALS]");
    }
    log_min_level = LOG_WARN;
    srandom(1);
    printf("iterations: %d, %.1f s per figure, one thread\n", iterations, secs);
    for (int m = 0; m < SCRAM_MECH_COUNT; m++) {
        struct scram_cred cr;
        if (scram_cred_new(m, "bench-password", 14, iterations, &cr) < 0)
            die("bad iteration count");
        const char *name = m == SCRAM_SHA_256 ? "scram-sha-256" : "scram-sha-512";
        double hs = handshakes(m, &cr, secs), kdf = pbkdf2_rate(m, iterations, secs);
        printf("%s handshakes/s: %.0f\n", name, hs);
        printf("%s pbkdf2/s (client ceiling): %.0f  (server/client ratio %.0fx)\n", name, kdf,
               hs / kdf);
        printf("plain (%s credential) checks/s: %.0f\n", name + 6, plain_rate(m, &cr, secs));
    }
    if (n > 0)
        table(n, iterations);
    return 0;
}
