/* share_config.c: sets share-group configs the way librdkafka's own share tests do, with
 * IncrementalAlterConfigs on a GROUP resource (librdkafka 2.15.1 admin API).
 *
 *   share_config -b HOST:PORT -g GROUP KEY=VALUE...
 *
 * Prints "OK" or "ERR <code name> <message>" and exits 0 or 1. */
#include <librdkafka/rdkafka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static rd_kafka_t *make_client(const char *brokers)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof err)) {
        fprintf(stderr, "config: %s\n", err);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk)
        fprintf(stderr, "rd_kafka_new: %s\n", err);
    return rk;
}

/* Sends one IncrementalAlterConfigs and prints its result. Returns 0 on success. */
static int alter(rd_kafka_t *rk, const char *group, char **kv, int n)
{
    rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_GROUP, group);
    for (int i = 0; i < n; i++) {
        char *eq = strchr(kv[i], '=');
        if (!eq)
            return -1;
        *eq = 0;
        rd_kafka_error_t *e = rd_kafka_ConfigResource_add_incremental_config(
            res, kv[i], RD_KAFKA_ALTER_CONFIG_OP_TYPE_SET, eq + 1);
        if (e) {
            fprintf(stderr, "add config: %s\n", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
            return -1;
        }
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_IncrementalAlterConfigs(rk, &res, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 15000);
    int rc = 1;
    if (!ev) {
        printf("ERR timeout\n");
    } else if (rd_kafka_event_error(ev)) {
        printf("ERR %s %s\n", rd_kafka_err2name(rd_kafka_event_error(ev)),
               rd_kafka_event_error_string(ev));
    } else {
        const rd_kafka_IncrementalAlterConfigs_result_t *r =
            rd_kafka_event_IncrementalAlterConfigs_result(ev);
        size_t cnt;
        const rd_kafka_ConfigResource_t **rs =
            rd_kafka_IncrementalAlterConfigs_result_resources(r, &cnt);
        rd_kafka_resp_err_t e = cnt == 1 ? rd_kafka_ConfigResource_error(rs[0])
                                         : RD_KAFKA_RESP_ERR__FAIL;
        if (e) {
            printf("ERR %s %s\n", rd_kafka_err2name(e),
                   cnt == 1 ? rd_kafka_ConfigResource_error_string(rs[0]) : "");
        } else {
            printf("OK\n");
            rc = 0;
        }
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_ConfigResource_destroy(res);
    return rc;
}

int main(int argc, char **argv)
{
    const char *brokers = NULL, *group = NULL;
    int c;
    while ((c = getopt(argc, argv, "b:g:")) != -1) {
        if (c == 'b')
            brokers = optarg;
        else if (c == 'g')
            group = optarg;
        else
            return 2;
    }
    if (!brokers || !group || optind >= argc) {
        fprintf(stderr, "usage: share_config -b BROKERS -g GROUP KEY=VALUE...\n");
        return 2;
    }
    rd_kafka_t *rk = make_client(brokers);
    if (!rk)
        return 1;
    int rc = alter(rk, group, argv + optind, argc - optind);
    rd_kafka_destroy(rk);
    return rc == 0 ? 0 : 1;
}
