/* share_consumer.c: a KIP-932 share consumer for the end-to-end tests, built on the
 * preview share consumer of librdkafka 2.15.1 (tests/share/build_rdk215.sh).
 *
 *   share_consumer -b HOST:PORT -g GROUP -t TOPIC [options]
 *     -n COUNT      stop after COUNT records were processed (accepted or rejected)
 *     -T MS         stop after MS milliseconds in all (default 30000)
 *     -I MS         stop after MS milliseconds without a record, once one was seen
 *     -r VALUE      reject records whose value is VALUE
 *     -R VALUE      release records whose value is VALUE, every time (a poison record)
 *     -f            release every record on its first delivery, accept it later
 *     -H COUNT      after COUNT records, hold the batch unacknowledged and sleep (kill -9)
 *     -s MS         sleep MS per record (slow consumer)
 *     -c            commit with rd_kafka_share_commit_sync after each batch
 *     -d DEBUG      librdkafka debug contexts
 *
 * Prints one line per record, flushed: "REC <partition> <offset> <deliveries> <action>
 * <value>", "COMMIT <partition> <err>" for failed commits, and "DONE <processed>". */
#include <librdkafka/rdkafka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct opts {
    const char *brokers, *group, *topic, *reject, *release, *debug;
    long count, total_ms, idle_ms, hold_after, sleep_ms;
    int release_first, commit;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig) { stop = 1; }

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int parse(int argc, char **argv, struct opts *o)
{
    int c;
    *o = (struct opts){.total_ms = 30000, .count = -1, .hold_after = -1};
    while ((c = getopt(argc, argv, "b:g:t:n:T:I:r:R:fH:s:cd:")) != -1) {
        switch (c) {
        case 'b': o->brokers = optarg; break;
        case 'g': o->group = optarg; break;
        case 't': o->topic = optarg; break;
        case 'n': o->count = atol(optarg); break;
        case 'T': o->total_ms = atol(optarg); break;
        case 'I': o->idle_ms = atol(optarg); break;
        case 'r': o->reject = optarg; break;
        case 'R': o->release = optarg; break;
        case 'f': o->release_first = 1; break;
        case 'H': o->hold_after = atol(optarg); break;
        case 's': o->sleep_ms = atol(optarg); break;
        case 'c': o->commit = 1; break;
        case 'd': o->debug = optarg; break;
        default: return -1;
        }
    }
    return o->brokers && o->group && o->topic ? 0 : -1;
}

static rd_kafka_share_t *make_consumer(const struct opts *o)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", o->brokers, err, sizeof err) ||
        rd_kafka_conf_set(conf, "group.id", o->group, err, sizeof err) ||
        rd_kafka_conf_set(conf, "share.acknowledgement.mode", "explicit", err, sizeof err) ||
        (o->debug && rd_kafka_conf_set(conf, "debug", o->debug, err, sizeof err))) {
        fprintf(stderr, "config: %s\n", err);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_share_t *rk = rd_kafka_share_consumer_new(conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "share_consumer_new: %s\n", err);
        return NULL;
    }
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, o->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_share_subscribe(rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e) {
        fprintf(stderr, "subscribe: %s\n", rd_kafka_err2str(e));
        rd_kafka_share_destroy(rk);
        return NULL;
    }
    return rk;
}

static int value_is(const rd_kafka_message_t *m, const char *v)
{
    return v && m->len == strlen(v) && memcmp(m->payload, v, m->len) == 0;
}

/* The acknowledgement this consumer gives m. */
static rd_kafka_share_AcknowledgeType_t decide(const struct opts *o, const rd_kafka_message_t *m,
                                               const char **name)
{
    int dc = rd_kafka_message_delivery_count(m);
    if (value_is(m, o->reject) || m->err) {
        *name = "reject";
        return RD_KAFKA_SHARE_ACKNOWLEDGE_TYPE_REJECT;
    }
    if (value_is(m, o->release) || (o->release_first && dc <= 1)) {
        *name = "release";
        return RD_KAFKA_SHARE_ACKNOWLEDGE_TYPE_RELEASE;
    }
    *name = "accept";
    return RD_KAFKA_SHARE_ACKNOWLEDGE_TYPE_ACCEPT;
}

static void commit(rd_kafka_share_t *rk)
{
    rd_kafka_topic_partition_list_t *res = NULL;
    rd_kafka_error_t *err = rd_kafka_share_commit_sync(rk, 10000, &res);
    if (err) {
        printf("COMMIT -1 %s\n", rd_kafka_error_string(err));
        rd_kafka_error_destroy(err);
    }
    for (int i = 0; res && i < res->cnt; i++)
        if (res->elems[i].err)
            printf("COMMIT %d %s\n", res->elems[i].partition, rd_kafka_err2name(res->elems[i].err));
    if (res)
        rd_kafka_topic_partition_list_destroy(res);
    fflush(stdout);
}

/* Handles one polled batch; returns how many records it processed. */
static long handle_batch(const struct opts *o, rd_kafka_share_t *rk, rd_kafka_messages_t *batch,
                         long done)
{
    size_t n = rd_kafka_messages_count(batch);
    long processed = 0;
    for (size_t i = 0; i < n; i++) {
        rd_kafka_message_t *m = rd_kafka_messages_get(batch, i);
        if (o->hold_after >= 0 && done + processed >= o->hold_after) {
            printf("HOLDING %d %lld\n", m->partition, (long long)m->offset);
            fflush(stdout);
            while (!stop)
                pause();
            return processed;
        }
        const char *name;
        rd_kafka_share_AcknowledgeType_t t = decide(o, m, &name);
        if (o->sleep_ms)
            usleep((useconds_t)o->sleep_ms * 1000);
        rd_kafka_resp_err_t e = rd_kafka_share_acknowledge_type(rk, m, t);
        printf("REC %d %lld %d %s %.*s%s\n", m->partition, (long long)m->offset,
               rd_kafka_message_delivery_count(m), name, m->err ? 0 : (int)m->len,
               m->err ? "" : (const char *)m->payload, e ? " ACKFAIL" : "");
        if (t != RD_KAFKA_SHARE_ACKNOWLEDGE_TYPE_RELEASE)
            processed++;
    }
    fflush(stdout);
    return processed;
}

int main(int argc, char **argv)
{
    struct opts o;
    if (parse(argc, argv, &o) < 0) {
        fprintf(stderr, "usage: share_consumer -b BROKERS -g GROUP -t TOPIC [options]\n");
        return 2;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    setvbuf(stdout, NULL, _IOLBF, 0);
    rd_kafka_share_t *rk = make_consumer(&o);
    if (!rk)
        return 1;
    long start = now_ms(), last = 0, done = 0;
    while (!stop && now_ms() - start < o.total_ms && (o.count < 0 || done < o.count)) {
        rd_kafka_messages_t *batch = NULL;
        rd_kafka_error_t *err = rd_kafka_share_poll(rk, 200, &batch);
        if (err) {
            fprintf(stderr, "poll: %s\n", rd_kafka_error_string(err));
            rd_kafka_error_destroy(err);
        }
        size_t n = rd_kafka_messages_count(batch);
        if (n) {
            done += handle_batch(&o, rk, batch, done);
            last = now_ms();
            if (o.commit)
                commit(rk);
        } else if (o.idle_ms && last && now_ms() - last > o.idle_ms) {
            break;
        }
        rd_kafka_messages_destroy(batch);
    }
    if (o.commit)
        commit(rk);
    printf("DONE %ld\n", done);
    fflush(stdout);
    rd_kafka_error_t *e = rd_kafka_share_consumer_close(rk);
    if (e) {
        fprintf(stderr, "close: %s\n", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
    rd_kafka_share_destroy(rk);
    return 0;
}
