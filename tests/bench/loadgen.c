/*
 * loadgen: the load generator behind `make bench`, on the librdkafka C API.
 *
 *   loadgen produce -b BROKERS -t TOPIC -n COUNT -s SIZE [-a ACKS] [-X k=v]...
 *       COUNT records of SIZE bytes to partition 0, as fast as the client can
 *       queue them; timed from the first send to the last delivery report.
 *   loadgen consume -b BROKERS -t TOPIC [-n COUNT] [-X k=v]...
 *       reads partition 0 from the beginning until COUNT records or the end
 *       of the partition; timed from the first record to the last.
 *   loadgen latency -b BROKERS -t TOPIC -r MB_PER_S -s SIZE -d SECS
 *                   [-w WARMUP_SECS] [-a ACKS] [-X k=v]...
 *       sends at a fixed rate and records, per record, the time from the
 *       rd_kafka_produce() call to its delivery report (served at once by a
 *       dedicated poller thread); records sent during the warm-up are not
 *       counted. linger.ms=0 and max.in.flight=5 (the Java producer's
 *       defaults) unless -X sets them.
 *   loadgen memcpy [-m MIB] [-d SECS]
 *       memory-copy bandwidth of this machine (a ceiling, not a broker figure).
 *   loadgen fsync -t DIR [-s SIZE] [-d SECS]
 *       appends SIZE bytes and fdatasyncs, again and again, in a file in DIR:
 *       what one durable append costs on this disk (p50/p99/max).
 *
 * -b mock uses librdkafka's in-process mock cluster (test.mock.num.brokers=1).
 * MB is 10^6 bytes throughout; sizes count record values only.
 * The last line on stdout is "RESULT mode=... key=value ...". Progress and
 * errors go to stderr. Exit status is non-zero when a run could not be
 * completed (errors, timeouts, nothing delivered).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#define MAX_X 64

static const char *brokers = "127.0.0.1:9092";
static const char *topic_name = "bench";
static long count = 1000000;
static int size = 1024;
static const char *acks = "1";
static double rate_mbps = 50.0;
static double secs = 10.0;
static double warmup = 1.0;
static long mib = 256;
static const char *xprops[MAX_X];
static int nx;

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
    stop = sig;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_until_ns(uint64_t t) {
    struct timespec ts = {.tv_sec = (time_t)(t / 1000000000ull),
                          .tv_nsec = (long)(t % 1000000000ull)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR && !stop)
        ;
}

static void die(const char *fmt, const char *arg) {
    fprintf(stderr, "loadgen: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(2);
}

static void set(rd_kafka_conf_t *conf, const char *k, const char *v) {
    char err[512];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof err) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "loadgen: config %s=%s: %s\n", k, v, err);
        exit(2);
    }
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    (void)rk;
    if (level <= 4)
        fprintf(stderr, "loadgen: librdkafka %s: %s\n", fac, buf);
}

/* Common configuration; `extra` (NULL-terminated k, v pairs) comes before
 * -X so that the command line wins. */
static rd_kafka_conf_t *make_conf(const char **extra) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, log_cb);
    if (strcmp(brokers, "mock") == 0)
        set(conf, "test.mock.num.brokers", "1");
    else
        set(conf, "bootstrap.servers", brokers);
    for (; extra && extra[0]; extra += 2)
        set(conf, extra[0], extra[1]);
    for (int i = 0; i < nx; i++) {
        char kv[1024];
        snprintf(kv, sizeof kv, "%s", xprops[i]);
        char *eq = strchr(kv, '=');
        if (!eq)
            die("-X %s: expected key=value", xprops[i]);
        *eq = '\0';
        set(conf, kv, eq + 1);
    }
    return conf;
}

static rd_kafka_t *make_client(rd_kafka_type_t type, rd_kafka_conf_t *conf) {
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof err);
    if (!rk)
        die("rd_kafka_new: %s", err);
    return rk;
}

static char *make_payload(void) {
    char *p = malloc((size_t)size);
    if (!p)
        die("out of memory%s", "");
    for (int i = 0; i < size; i++)
        p[i] = (char)('a' + (i * 7 + i / 13) % 26); /* no compression anyway */
    return p;
}

/* Produce one record and wait for its delivery: the topic's metadata and the
 * connection are then ready before anything is timed. */
static atomic_long warm_ok, warm_err;

static int warm_up(rd_kafka_t *rk, rd_kafka_topic_t *rkt, char *payload) {
    uint64_t deadline = now_ns() + 30ull * 1000000000ull;
    while (!stop && now_ns() < deadline) {
        long before_ok = atomic_load(&warm_ok);
        if (rd_kafka_produce(rkt, 0, RD_KAFKA_MSG_F_COPY, payload, (size_t)size, NULL, 0,
                             (void *)(uintptr_t)1) == -1) {
            fprintf(stderr, "loadgen: warm-up produce: %s\n",
                    rd_kafka_err2str(rd_kafka_last_error()));
            rd_kafka_poll(rk, 500);
            continue;
        }
        rd_kafka_flush(rk, 10000);
        if (atomic_load(&warm_ok) > before_ok)
            return 0;
        sleep(1); /* the topic may still be being created */
    }
    return -1;
}

/* ---- produce ---------------------------------------------------------- */

static atomic_long p_ok, p_err;
static atomic_llong p_bytes;
static char first_err[256];

static void record_err(rd_kafka_resp_err_t err) {
    if (!first_err[0])
        snprintf(first_err, sizeof first_err, "%s", rd_kafka_err2name(err));
}

static void produce_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    if (m->_private == (void *)(uintptr_t)1) { /* warm-up record */
        if (m->err)
            atomic_fetch_add(&warm_err, 1);
        else
            atomic_fetch_add(&warm_ok, 1);
        return;
    }
    if (m->err) {
        atomic_fetch_add(&p_err, 1);
        record_err(m->err);
    } else {
        atomic_fetch_add(&p_ok, 1);
        atomic_fetch_add(&p_bytes, (long long)m->len);
    }
}

static int run_produce(void) {
    const char *extra[] = {"acks", acks, NULL};
    rd_kafka_conf_t *conf = make_conf(extra);
    rd_kafka_conf_set_dr_msg_cb(conf, produce_dr);
    rd_kafka_t *rk = make_client(RD_KAFKA_PRODUCER, conf);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic_name, NULL);
    char *payload = make_payload();

    if (warm_up(rk, rkt, payload) != 0) {
        fprintf(stderr, "loadgen: could not deliver a warm-up record to %s/%s\n", brokers,
                topic_name);
        return 1;
    }

    long full = 0;
    uint64_t t0 = now_ns();
    for (long i = 0; i < count && !stop;) {
        if (rd_kafka_produce(rkt, 0, 0, payload, (size_t)size, NULL, 0, NULL) == -1) {
            rd_kafka_resp_err_t e = rd_kafka_last_error();
            if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                fprintf(stderr, "loadgen: produce: %s\n", rd_kafka_err2str(e));
                return 1;
            }
            full++;
            rd_kafka_poll(rk, 1);
            continue;
        }
        i++;
        if ((i & 1023) == 0)
            rd_kafka_poll(rk, 0);
    }
    uint64_t t_queued = now_ns();
    rd_kafka_resp_err_t ferr = rd_kafka_flush(rk, 60000);
    uint64_t t1 = now_ns();
    double dt = (double)(t1 - t0) / 1e9;
    long ok = atomic_load(&p_ok), bad = atomic_load(&p_err);
    long long bytes = atomic_load(&p_bytes);

    printf("RESULT mode=produce msgs=%ld bytes=%lld secs=%.3f MBps=%.1f msgps=%.0f errors=%ld "
           "queue_full=%ld queued_secs=%.3f acks=%s size=%d first_error=%s\n",
           ok, bytes, dt, (double)bytes / dt / 1e6, (double)ok / dt, bad, full,
           (double)(t_queued - t0) / 1e9, acks, size, first_err[0] ? first_err : "-");
    fflush(stdout);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    free(payload);
    if (ferr != RD_KAFKA_RESP_ERR_NO_ERROR)
        fprintf(stderr, "loadgen: flush timed out with records outstanding\n");
    return (bad || ok < count || ferr) ? 1 : 0;
}

/* ---- consume ---------------------------------------------------------- */

struct cstate {
    long msgs;
    long long bytes;
    uint64_t t_first, t_last;
    int eof;
    long errors;
};

static void consume_cb(rd_kafka_message_t *m, void *opaque) {
    struct cstate *s = opaque;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        s->eof = 1;
        return;
    }
    if (m->err) {
        s->errors++;
        record_err(m->err);
        fprintf(stderr, "loadgen: consume: %s\n", rd_kafka_message_errstr(m));
        return;
    }
    if (count > 0 && s->msgs >= count)
        return; /* the rest of the last batch */
    uint64_t t = now_ns();
    if (!s->msgs)
        s->t_first = t;
    s->t_last = t;
    s->msgs++;
    s->bytes += (long long)m->len;
}

static int run_consume(void) {
    const char *extra[] = {"enable.partition.eof", "true", NULL};
    rd_kafka_conf_t *conf = make_conf(extra);
    rd_kafka_t *rk = make_client(RD_KAFKA_CONSUMER, conf);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic_name, NULL);
    struct cstate s = {0};
    uint64_t t_start = now_ns();
    if (rd_kafka_consume_start(rkt, 0, RD_KAFKA_OFFSET_BEGINNING) == -1) {
        fprintf(stderr, "loadgen: consume_start: %s\n", rd_kafka_err2str(rd_kafka_last_error()));
        return 1;
    }
    /* The end of the partition ends the run once records have come (an early
     * EOF may be an empty partition's); so do 5 s without a record after the
     * first one, and 30 s without any. */
    const uint64_t sec = 1000000000ull;
    while (!stop && (count <= 0 || s.msgs < count)) {
        rd_kafka_consume_callback(rkt, 0, 100, consume_cb, &s);
        uint64_t t = now_ns();
        if (s.eof && s.msgs > 0)
            break;
        s.eof = 0;
        if (s.errors > 100 || (s.msgs == 0 && t - t_start > 30 * sec) ||
            (s.msgs > 0 && t - s.t_last > 5 * sec))
            break;
    }
    rd_kafka_consume_stop(rkt, 0);
    double dt = s.msgs > 1 ? (double)(s.t_last - s.t_first) / 1e9 : 0.0;
    double dt_all = (double)(s.t_last - t_start) / 1e9;
    printf("RESULT mode=consume msgs=%ld bytes=%lld secs=%.3f MBps=%.1f msgps=%.0f "
           "secs_with_start=%.3f errors=%ld first_error=%s\n",
           s.msgs, s.bytes, dt, dt > 0 ? (double)s.bytes / dt / 1e6 : 0.0,
           dt > 0 ? (double)s.msgs / dt : 0.0, dt_all, s.errors, first_err[0] ? first_err : "-");
    fflush(stdout);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return (s.msgs == 0 || (count > 0 && s.msgs < count)) ? 1 : 0;
}

/* ---- latency ---------------------------------------------------------- */

static uint64_t *lat;      /* written by the poller thread only */
static long lat_n, lat_cap;
static uint64_t warm_end_ns;
static atomic_int poller_done;

static void latency_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    uint64_t t = now_ns();
    if (m->_private == (void *)(uintptr_t)1) {
        if (m->err)
            atomic_fetch_add(&warm_err, 1);
        else
            atomic_fetch_add(&warm_ok, 1);
        return;
    }
    if (m->err) {
        atomic_fetch_add(&p_err, 1);
        record_err(m->err);
        return;
    }
    atomic_fetch_add(&p_ok, 1);
    uint64_t sent = (uint64_t)(uintptr_t)m->_private;
    if (sent < warm_end_ns || lat_n >= lat_cap)
        return;
    lat[lat_n++] = t - sent;
}

static void *poller(void *arg) {
    rd_kafka_t *rk = arg;
    while (!atomic_load(&poller_done))
        rd_kafka_poll(rk, 20);
    rd_kafka_poll(rk, 0);
    return NULL;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_ms(double p) {
    if (!lat_n)
        return 0.0;
    long i = (long)(p / 100.0 * (double)(lat_n - 1) + 0.5);
    return (double)lat[i] / 1e6;
}

static int run_latency(void) {
    /* The Java producer's defaults: send at once, at most 5 requests in
     * flight, so that records queue into batches while the broker works.
     * (librdkafka's default of 1000000 in flight floods a broker with one
     * tiny request per record at this rate.) */
    const char *extra[] = {"acks", acks, "linger.ms", "0",
                           "max.in.flight.requests.per.connection", "5", NULL};
    rd_kafka_conf_t *conf = make_conf(extra);
    rd_kafka_conf_set_dr_msg_cb(conf, latency_dr);
    rd_kafka_t *rk = make_client(RD_KAFKA_PRODUCER, conf);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic_name, NULL);
    char *payload = make_payload();

    pthread_t th;
    pthread_create(&th, NULL, poller, rk);
    if (warm_up(rk, rkt, payload) != 0) {
        fprintf(stderr, "loadgen: could not deliver a warm-up record to %s/%s\n", brokers,
                topic_name);
        atomic_store(&poller_done, 1);
        pthread_join(th, NULL);
        return 1;
    }

    double msgps = rate_mbps * 1e6 / (double)size;
    double interval_ns = 1e9 / msgps;
    long total = (long)(msgps * (secs + warmup));
    lat_cap = total + 1;
    lat = malloc(sizeof *lat * (size_t)lat_cap);
    if (!lat)
        die("out of memory%s", "");

    long full = 0, behind_max_us = 0;
    uint64_t t0 = now_ns() + 1000000;
    warm_end_ns = t0 + (uint64_t)(warmup * 1e9);
    long i = 0;
    while (i < total && !stop) {
        uint64_t due = t0 + (uint64_t)((double)i * interval_ns);
        uint64_t t = now_ns();
        if (t < due) {
            sleep_until_ns(due);
            continue;
        }
        long behind = (long)((t - due) / 1000);
        if (behind > behind_max_us)
            behind_max_us = behind;
        if (rd_kafka_produce(rkt, 0, 0, payload, (size_t)size, NULL, 0,
                             (void *)(uintptr_t)now_ns()) == -1) {
            rd_kafka_resp_err_t e = rd_kafka_last_error();
            if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                fprintf(stderr, "loadgen: produce: %s\n", rd_kafka_err2str(e));
                break;
            }
            full++;
            usleep(100);
            continue;
        }
        i++;
    }
    uint64_t t_sent = now_ns();
    rd_kafka_resp_err_t ferr = rd_kafka_flush(rk, 60000);
    atomic_store(&poller_done, 1);
    pthread_join(th, NULL);

    qsort(lat, (size_t)lat_n, sizeof *lat, cmp_u64);
    double sent_secs = (double)(t_sent - t0) / 1e9;
    long bad = atomic_load(&p_err);
    printf("RESULT mode=latency acks=%s size=%d target_MBps=%.1f achieved_MBps=%.1f sent=%ld "
           "measured=%ld p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f "
           "errors=%ld queue_full=%ld sender_behind_max_ms=%.3f first_error=%s\n",
           acks, size, rate_mbps, (double)i * size / sent_secs / 1e6, i, lat_n, pct_ms(50),
           pct_ms(90), pct_ms(99), pct_ms(99.9), lat_n ? (double)lat[lat_n - 1] / 1e6 : 0.0, bad,
           full, (double)behind_max_us / 1e3, first_err[0] ? first_err : "-");
    fflush(stdout);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    free(payload);
    free(lat);
    return (bad || ferr || lat_n == 0 || i < total) ? 1 : 0;
}

/* ---- end to end: produce -> consume ---------------------------------------
 * Sends at a fixed rate with the send time in each record's first 8 bytes, and a
 * consumer on the same partition (started at the end, long-polling) records, per
 * record, consume time minus send time. That is the latency an application sees. */

static atomic_int e2e_done;
static atomic_long e2e_seen;

static void noop_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    if (m->err) {
        atomic_fetch_add(&p_err, 1);
        record_err(m->err);
    }
}

static void *e2e_consumer(void *arg) {
    rd_kafka_topic_t *rkt = arg;
    while (!atomic_load(&e2e_done)) {
        rd_kafka_message_t *m = rd_kafka_consume(rkt, 0, 100);
        if (!m)
            continue;
        uint64_t t = now_ns();
        if (!m->err && m->len >= 8) {
            uint64_t sent;
            memcpy(&sent, m->payload, 8);
            atomic_fetch_add(&e2e_seen, 1);
            if (sent >= warm_end_ns && lat_n < lat_cap)
                lat[lat_n++] = t - sent;
        }
        rd_kafka_message_destroy(m);
    }
    return NULL;
}

static int run_e2e(void) {
    const char *pextra[] = {"acks", acks, "linger.ms", "0",
                            "max.in.flight.requests.per.connection", "5", NULL};
    rd_kafka_conf_t *pconf = make_conf(pextra);
    rd_kafka_conf_set_dr_msg_cb(pconf, noop_dr);
    rd_kafka_t *prk = make_client(RD_KAFKA_PRODUCER, pconf);
    rd_kafka_topic_t *prkt = rd_kafka_topic_new(prk, topic_name, NULL);
    const char *cextra[] = {"fetch.wait.max.ms", "500", "fetch.min.bytes", "1", NULL};
    rd_kafka_t *crk = make_client(RD_KAFKA_CONSUMER, make_conf(cextra));
    rd_kafka_topic_t *crkt = rd_kafka_topic_new(crk, topic_name, NULL);
    char *payload = make_payload();
    if (size < 8)
        die("e2e needs -s 8 or more%s", "");
    double msgps = rate_mbps * 1e6 / (double)size;
    double interval_ns = 1e9 / msgps;
    long total = (long)(msgps * (secs + warmup));
    lat_cap = total + 1;
    lat = malloc(sizeof *lat * (size_t)lat_cap);
    if (!lat)
        die("out of memory%s", "");
    if (rd_kafka_consume_start(crkt, 0, RD_KAFKA_OFFSET_END) == -1)
        die("consume_start: %s", rd_kafka_err2str(rd_kafka_last_error()));
    pthread_t cth, pth;
    pthread_create(&cth, NULL, e2e_consumer, crkt);
    pthread_create(&pth, NULL, poller, prk);
    usleep(500000); /* the consumer finds the end before anything is sent */
    uint64_t t0 = now_ns() + 1000000;
    warm_end_ns = t0 + (uint64_t)(warmup * 1e9);
    long i = 0;
    while (i < total && !stop) {
        uint64_t due = t0 + (uint64_t)((double)i * interval_ns);
        if (now_ns() < due) {
            sleep_until_ns(due);
            continue;
        }
        uint64_t t = now_ns();
        memcpy(payload, &t, 8);
        if (rd_kafka_produce(prkt, 0, RD_KAFKA_MSG_F_COPY, payload, (size_t)size, NULL, 0,
                             NULL) == -1) {
            usleep(100);
            continue;
        }
        i++;
    }
    rd_kafka_flush(prk, 60000);
    for (int w = 0; w < 100 && atomic_load(&e2e_seen) < i; w++)
        usleep(50000); /* let the consumer catch up with the last records */
    atomic_store(&e2e_done, 1);
    atomic_store(&poller_done, 1);
    pthread_join(cth, NULL);
    pthread_join(pth, NULL);
    rd_kafka_consume_stop(crkt, 0);
    qsort(lat, (size_t)lat_n, sizeof *lat, cmp_u64);
    printf("RESULT mode=e2e acks=%s size=%d target_MBps=%.1f sent=%ld consumed=%ld measured=%ld "
           "p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f errors=%ld first_error=%s\n",
           acks, size, rate_mbps, i, atomic_load(&e2e_seen), lat_n, pct_ms(50), pct_ms(90),
           pct_ms(99), lat_n ? (double)lat[lat_n - 1] / 1e6 : 0.0, atomic_load(&p_err),
           first_err[0] ? first_err : "-");
    fflush(stdout);
    rd_kafka_topic_destroy(prkt);
    rd_kafka_topic_destroy(crkt);
    rd_kafka_destroy(prk);
    rd_kafka_destroy(crk);
    free(payload);
    free(lat);
    return (atomic_load(&p_err) || lat_n == 0 || atomic_load(&e2e_seen) < i) ? 1 : 0;
}

/* ---- memcpy ----------------------------------------------------------- */

static int run_memcpy(void) {
    size_t n = (size_t)mib << 20;
    char *a = malloc(n), *b = malloc(n);
    if (!a || !b)
        die("out of memory%s", "");
    memset(a, 1, n);
    memset(b, 2, n);
    memcpy(b, a, n); /* fault everything in */
    long long copied = 0;
    uint64_t t0 = now_ns(), t;
    do {
        memcpy(b, a, n);
        __asm__ __volatile__("" ::"r"(b) : "memory");
        copied += (long long)n;
        t = now_ns();
    } while ((double)(t - t0) / 1e9 < secs && !stop);
    double dt = (double)(t - t0) / 1e9;
    printf("RESULT mode=memcpy bytes=%lld secs=%.3f MBps=%.1f buffer_mib=%ld check=%d\n", copied,
           dt, (double)copied / dt / 1e6, mib, b[n - 1]);
    free(a);
    free(b);
    return 0;
}

/* ---- fsync ------------------------------------------------------------ */

/* Append SIZE-byte chunks to a file in directory -t and fdatasync each one,
 * for -d seconds: what one durable append costs on this disk. */
static int run_fsync(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s/loadgen-fsync.XXXXXX", topic_name);
    int fd = mkstemp(path);
    if (fd < 0)
        die("mkstemp in %s failed", topic_name);
    unlink(path);
    char *buf = make_payload();
    lat_cap = 1 << 20;
    lat = malloc(sizeof *lat * (size_t)lat_cap);
    if (!lat)
        die("out of memory%s", "");
    uint64_t t0 = now_ns(), t = t0;
    while (!stop && (double)(t - t0) / 1e9 < secs && lat_n < lat_cap) {
        uint64_t a = now_ns();
        if (write(fd, buf, (size_t)size) != (ssize_t)size || fdatasync(fd) != 0)
            die("write/fdatasync: %s", strerror(errno));
        t = now_ns();
        lat[lat_n++] = t - a;
    }
    close(fd);
    qsort(lat, (size_t)lat_n, sizeof *lat, cmp_u64);
    printf("RESULT mode=fsync size=%d syncs=%ld p50_ms=%.3f p99_ms=%.3f max_ms=%.3f\n", size, lat_n,
           pct_ms(50), pct_ms(99), lat_n ? (double)lat[lat_n - 1] / 1e6 : 0.0);
    free(buf);
    free(lat);
    return lat_n ? 0 : 1;
}

/* ---- main ------------------------------------------------------------- */

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen produce|consume|latency|e2e|memcpy|fsync [-b brokers|mock] [-t topic|dir] "
            "[-n count] [-s size] [-a acks] [-r MB/s] [-d secs] [-w warmup_secs] [-m MiB] "
            "[-X key=value]...\n");
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 2)
        usage();
    const char *mode = argv[1];
    int opt;
    optind = 2;
    while ((opt = getopt(argc, argv, "b:t:n:s:a:r:d:w:m:X:")) != -1) {
        switch (opt) {
        case 'b': brokers = optarg; break;
        case 't': topic_name = optarg; break;
        case 'n': count = atol(optarg); break;
        case 's': size = atoi(optarg); break;
        case 'a': acks = optarg; break;
        case 'r': rate_mbps = atof(optarg); break;
        case 'd': secs = atof(optarg); break;
        case 'w': warmup = atof(optarg); break;
        case 'm': mib = atol(optarg); break;
        case 'X':
            if (nx == MAX_X)
                die("too many -X%s", "");
            xprops[nx++] = optarg;
            break;
        default: usage();
        }
    }
    if (size <= 0 || rate_mbps <= 0 || secs <= 0 || warmup < 0 || mib <= 0)
        usage();
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    int rc;
    if (strcmp(mode, "produce") == 0)
        rc = run_produce();
    else if (strcmp(mode, "consume") == 0)
        rc = run_consume();
    else if (strcmp(mode, "latency") == 0)
        rc = run_latency();
    else if (strcmp(mode, "e2e") == 0)
        rc = run_e2e();
    else if (strcmp(mode, "memcpy") == 0)
        rc = run_memcpy();
    else if (strcmp(mode, "fsync") == 0)
        rc = run_fsync();
    else
        usage();
    if (stop) { /* die of the signal, so that the shell that ran us stops too */
        signal((int)stop, SIG_DFL);
        raise((int)stop);
    }
    return rc;
}
