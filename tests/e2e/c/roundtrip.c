/* roundtrip.c: a librdkafka C client round trip against Sluice, for the e2e suite.
 * Usage: roundtrip BOOTSTRAP TOPIC COUNT
 * Produces COUNT keyed messages with a header to partition 0 with acks=all, checks each
 * delivery report (offset i for message i), then consumes partition 0 from the beginning
 * with rd_kafka_assign (no group protocol) and checks key, value, header and offset.
 * Exits 0 when everything matches, 1 otherwise. BOOTSTRAP "mock" runs against librdkafka's
 * in-process mock cluster, which checks this program itself. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

static int failures;
static int delivered;

#define FAIL(...) do { fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); failures++; } while (0)

static void fmt_value(char *buf, size_t cap, int i) {
    snprintf(buf, cap, "value-%d-%0*d", i, i % 40, 0);
}

/* Delivery report: message i (its opaque) must land at offset i. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    intptr_t i = (intptr_t)m->_private;
    (void)rk;
    (void)opaque;
    if (m->err) {
        FAIL("delivery of %d failed: %s", (int)i, rd_kafka_err2str(m->err));
        return;
    }
    if (m->offset != (int64_t)i)
        FAIL("message %d delivered at offset %" PRId64, (int)i, m->offset);
    delivered++;
}

static rd_kafka_conf_t *base_conf(const char *bootstrap) {
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof err) ||
        rd_kafka_conf_set(conf, "socket.timeout.ms", "10000", err, sizeof err)) {
        fprintf(stderr, "conf: %s\n", err);
        exit(1);
    }
    return conf;
}

static void set(rd_kafka_conf_t *conf, const char *k, const char *v) {
    char err[512];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof err) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "conf %s=%s: %s\n", k, v, err);
        exit(1);
    }
}

static int produce(const char *bootstrap, const char *topic, int n) {
    char err[512], key[64], val[128];
    rd_kafka_conf_t *conf = base_conf(bootstrap);
    set(conf, "acks", "all");
    set(conf, "linger.ms", "5");
    set(conf, "message.timeout.ms", "30000");
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "producer: %s\n", err);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        fmt_value(val, sizeof val, i);
        rd_kafka_resp_err_t e;
        do {
            e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
                                  RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE(val, strlen(val)),
                                  RD_KAFKA_V_HEADER("idx", key, -1), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                  RD_KAFKA_V_OPAQUE((void *)(intptr_t)i), RD_KAFKA_V_END);
            if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(rk, 50);
        } while (e == RD_KAFKA_RESP_ERR__QUEUE_FULL);
        if (e) {
            FAIL("produce %d: %s", i, rd_kafka_err2str(e));
            break;
        }
        rd_kafka_poll(rk, 0);
    }
    if (rd_kafka_flush(rk, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        FAIL("flush timed out, %d messages left", rd_kafka_outq_len(rk));
    rd_kafka_destroy(rk);
    if (delivered != n)
        FAIL("%d of %d messages delivered", delivered, n);
    return 0;
}

/* Check message number `want` against what was produced. */
static void check_message(const rd_kafka_message_t *m, int want) {
    char key[64], val[128];
    const void *hv;
    size_t hlen;
    rd_kafka_headers_t *hdrs = NULL;
    snprintf(key, sizeof key, "key-%d", want);
    fmt_value(val, sizeof val, want);
    if (m->offset != want)
        FAIL("message %d has offset %" PRId64, want, m->offset);
    if (m->key_len != strlen(key) || memcmp(m->key, key, m->key_len) != 0)
        FAIL("message %d: wrong key", want);
    if (m->len != strlen(val) || memcmp(m->payload, val, m->len) != 0)
        FAIL("message %d: wrong value", want);
    if (rd_kafka_message_headers(m, &hdrs) || rd_kafka_header_get_last(hdrs, "idx", &hv, &hlen) ||
        hlen != strlen(key) || memcmp(hv, key, hlen) != 0)
        FAIL("message %d: wrong or missing header", want);
}

static int consume(const char *bootstrap, const char *topic, int n) {
    char err[512];
    rd_kafka_conf_t *conf = base_conf(bootstrap);
    set(conf, "group.id", "roundtrip-c");
    set(conf, "enable.auto.commit", "false");
    set(conf, "enable.partition.eof", "true");
    set(conf, "fetch.wait.max.ms", "100");
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "consumer: %s\n", err);
        return -1;
    }
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(parts, topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    if (e) {
        FAIL("assign: %s", rd_kafka_err2str(e));
        rd_kafka_destroy(rk);
        return -1;
    }
    int got = 0, eof = 0;
    for (int idle = 0; idle < 300 && !eof;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) {
            idle++;
            continue;
        }
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            eof = got >= n;
        } else if (m->err) {
            FAIL("consume error: %s", rd_kafka_message_errstr(m));
            eof = 1;
        } else {
            if (got < n)
                check_message(m, got);
            got++;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    if (got != n)
        FAIL("consumed %d of %d messages", got, n);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s BOOTSTRAP TOPIC COUNT\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[3]);
    const char *bootstrap = argv[1];
    rd_kafka_t *mock_rk = NULL;
    rd_kafka_mock_cluster_t *mock = NULL;
    if (strcmp(bootstrap, "mock") == 0) {
        char err[512];
        mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, rd_kafka_conf_new(), err, sizeof err);
        mock = mock_rk ? rd_kafka_mock_cluster_new(mock_rk, 1) : NULL;
        if (!mock || rd_kafka_mock_topic_create(mock, argv[2], 1, 1)) {
            fprintf(stderr, "mock cluster: %s\n", err);
            return 1;
        }
        bootstrap = rd_kafka_mock_cluster_bootstraps(mock);
    }
    produce(bootstrap, argv[2], n);
    if (failures == 0)
        consume(bootstrap, argv[2], n);
    if (mock) {
        rd_kafka_mock_cluster_destroy(mock);
        rd_kafka_destroy(mock_rk);
    }
    if (failures > 20)
        fprintf(stderr, "%d failures in all\n", failures);
    printf("%s: produced and consumed %d messages, %d failures\n", failures ? "FAIL" : "OK", n, failures);
    return failures ? 1 : 0;
}
