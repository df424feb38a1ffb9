/* config.c: one table of settings drives the file, environment and flag parsers, so a
 * key is declared once and can be set any of the three ways. */
#include "config.h"

#include "log.h"
#include "store.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum kind { K_STR, K_I32, K_I64, K_BOOL, K_LEVEL };

struct setting {
    const char *key;   /* dotted; the flag is --key with '.' as '-' */
    enum kind kind;
    size_t off;
    size_t size;       /* for strings */
    int64_t min, max;
};

#define S(k, f) {k, K_STR, offsetof(struct config, f), sizeof(((struct config *)0)->f), 0, 0}
#define I32(k, f, lo, hi) {k, K_I32, offsetof(struct config, f), 0, lo, hi}
#define I64(k, f, lo, hi) {k, K_I64, offsetof(struct config, f), 0, lo, hi}
#define B(k, f) {k, K_BOOL, offsetof(struct config, f), 0, 0, 1}

static const struct setting settings[] = {
    S("data.dir", data_dir),
    S("kafka.listen", kafka_listen),
    S("admin.listen", admin_listen),
    S("advertised.listener", advertised),
    S("config", config_file),
    {"log.level", K_LEVEL, offsetof(struct config, log_level), 0, 0, 3},
    I32("node.id", node_id, 0, 1 << 30),
    S("cluster.id", cluster_id),
    I64("max.request.bytes", max_request_bytes, 1024, 1LL << 30),
    I64("max.response.bytes", max_response_bytes, 1024, 1LL << 30),
    I64("connection.output.limit.bytes", conn_output_limit, 1 << 16, 1LL << 32),
    I32("max.inflight.requests", max_inflight_requests, 1, 100000),
    I32("max.connections", max_connections, 1, 1 << 20),
    B("auto.create.topics.enable", auto_create_topics),
    I32("num.partitions", default_partitions, 1, 100000),
    I64("log.retention.ms", default_retention_ms, -1, INT64_MAX),
    I64("log.retention.bytes", default_retention_bytes, -1, INT64_MAX),
    I32("message.max.bytes", default_max_message_bytes, 0, 1 << 30),
    I64("log.retention.check.interval.ms", retention_check_ms, 10, 86400000),
    I64("group.commit.max.wait.us", group_commit_max_wait_us, 0, 1000000),
    I64("wal.segment.bytes", wal_segment_bytes, 1 << 16, 1LL << 32),
    I64("memory.partition.max.bytes", memory_partition_max_bytes, 0, 1LL << 40),
    I64("hybrid.hot.window.bytes", hybrid_hot_bytes, 0, 1LL << 40),
    I64("max.topics", max_topics, 0, 1LL << 40),
    I64("topic.idle.ms", topic_idle_ms, 1, 1LL << 40),
    I32("group.initial.rebalance.delay.ms", group_initial_rebalance_delay_ms, 0, 300000),
    I32("group.min.session.timeout.ms", group_min_session_timeout_ms, 1, 3600000),
    I32("group.max.session.timeout.ms", group_max_session_timeout_ms, 1, 3600000),
    I32("group.max.size", group_max_size, 1, 1000000),
    I64("offsets.retention.minutes", offsets_retention_minutes, 1, 525600000),
    I64("offsets.retention.check.interval.ms", offsets_retention_check_ms, 10, 86400000),
    I32("offset.metadata.max.bytes", offset_metadata_max_bytes, 0, 1 << 20),
    I64("cache.memory.bytes", cache_memory_bytes, 1 << 20, 1LL << 44),
    I64("cache.disk.bytes", cache_disk_bytes, 0, 1LL << 50),
    S("cache.disk.dir", cache_disk_dir),
    I64("cache.block.bytes", cache_block_bytes, 4096, 1 << 30),
    S("tiered.s3.uri", tiered_s3_uri),
    S("tiered.s3.endpoint", tiered_s3_endpoint),
    S("tiered.s3.region", tiered_s3_region),
    S("tiered.s3.access.key.id", tiered_s3_access_key),
    S("tiered.s3.secret.access.key", tiered_s3_secret_key),
    I64("tiered.local.retention.ms", tiered_local_retention_ms, -1, INT64_MAX),
    I64("tiered.local.retention.bytes", tiered_local_retention_bytes, -1, INT64_MAX),
    I64("tiered.segment.bytes", tiered_segment_bytes, 4096, 1LL << 30),
    I64("tiered.read.bytes", tiered_read_bytes, 4096, 1LL << 30),
    I64("tiered.check.interval.ms", tiered_check_ms, 10, 86400000),
    I64("tiered.cache.bytes", tiered_cache_bytes, 1 << 20, 1LL << 40),
    S("listeners", listeners),
    S("advertised.listeners", advertised_listeners),
    S("listener.security.protocol.map", listener_protocol_map),
    S("ssl.cert.file", ssl_cert_file),
    S("ssl.key.file", ssl_key_file),
    S("ssl.ca.file", ssl_ca_file),
    S("ssl.client.auth", ssl_client_auth),
    S("ssl.protocol.min", ssl_protocol_min),
    S("ssl.principal", ssl_principal),
    S("sasl.enabled.mechanisms", sasl_mechanisms),
    I32("sasl.scram.iterations", sasl_scram_iterations, 4096, 1 << 20),
    I64("sasl.max.receive.bytes", sasl_max_receive_bytes, 1024, 1 << 24),
    I64("sasl.auth.timeout.ms", sasl_auth_timeout_ms, 100, 3600000),
    I64("sasl.session.lifetime.ms", sasl_session_lifetime_ms, 0, 1LL << 40),
    I32("connection.failed.authentication.delay.ms", failed_auth_delay_ms, 0, 60000),
    I32("failed.authentications.per.ip.per.minute", failed_auth_per_ip, 1, 1 << 20),
    S("authorizer", authorizer),
    S("super.users", super_users),
    S("admin.token", admin_token),
    B("admin.ssl.enable", admin_ssl),
    S("admin.ssl.client.auth", admin_ssl_client_auth),
    I32("max.connections.per.ip", max_connections_per_ip, 0, 1 << 20),
    I64("connections.max.idle.ms", connections_max_idle_ms, 100, 1LL << 40),
    I64("request.read.timeout.ms", request_read_timeout_ms, 100, 1LL << 40),
    I64("quota.produce.bytes.per.second", quota_produce_bps, 0, 1LL << 40),
    I64("quota.fetch.bytes.per.second", quota_fetch_bps, 0, 1LL << 40),
};

#define NSETTINGS (sizeof settings / sizeof settings[0])

void config_defaults(struct config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->data_dir, sizeof c->data_dir, "data");
    snprintf(c->kafka_listen, sizeof c->kafka_listen, "127.0.0.1:9092");
    snprintf(c->admin_listen, sizeof c->admin_listen, "127.0.0.1:8080");
    c->log_level = LOG_INFO;
    c->node_id = 1;
    c->max_request_bytes = 100 << 20;
    c->max_response_bytes = 128 << 20;
    c->conn_output_limit = 64 << 20;
    c->max_inflight_requests = 1024;
    c->max_connections = 10000;
    c->default_partitions = 1;
    c->default_retention_ms = 7LL * 24 * 3600 * 1000;
    c->default_retention_bytes = -1;
    c->default_max_message_bytes = 1048588;
    c->retention_check_ms = 300000; /* Kafka's default: a sweep reads every topic */
    c->group_commit_max_wait_us = 0;
    c->wal_segment_bytes = STORE_WAL_SEGMENT_BYTES;
    c->memory_partition_max_bytes = 64LL << 20;
    c->hybrid_hot_bytes = 16LL << 20;
    c->max_topics = 0;
    c->topic_idle_ms = 600000;
    c->group_initial_rebalance_delay_ms = 3000;
    c->group_min_session_timeout_ms = 1000; /* Kafka: 6000; tests and small setups go lower */
    c->group_max_session_timeout_ms = 1800000;
    c->group_max_size = 10000;
    c->offsets_retention_minutes = 10080;
    c->offsets_retention_check_ms = 600000;
    c->offset_metadata_max_bytes = 4096;
    c->cache_memory_bytes = 256LL << 20;
    c->cache_disk_bytes = 4LL << 30;
    c->cache_block_bytes = 8LL << 20;
    c->tiered_local_retention_ms = 600000;
    c->tiered_local_retention_bytes = 1LL << 30;
    c->tiered_segment_bytes = 16LL << 20;
    c->tiered_read_bytes = 1LL << 20;
    c->tiered_check_ms = 10000;
    c->tiered_cache_bytes = 64LL << 20;
    snprintf(c->ssl_client_auth, sizeof c->ssl_client_auth, "none");
    snprintf(c->ssl_protocol_min, sizeof c->ssl_protocol_min, "TLSv1.2");
    snprintf(c->ssl_principal, sizeof c->ssl_principal, "cn");
    snprintf(c->sasl_mechanisms, sizeof c->sasl_mechanisms, "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512");
    c->sasl_scram_iterations = 4096;
    c->sasl_max_receive_bytes = 65536;
    c->sasl_auth_timeout_ms = 30000;
    c->failed_auth_delay_ms = 100;
    c->failed_auth_per_ip = 30;
    snprintf(c->admin_ssl_client_auth, sizeof c->admin_ssl_client_auth, "none");
    c->connections_max_idle_ms = 600000; /* Kafka's default */
    c->request_read_timeout_ms = 60000;
}

static const struct setting *find(const char *key)
{
    for (size_t i = 0; i < NSETTINGS; i++)
        if (strcmp(settings[i].key, key) == 0)
            return &settings[i];
    return NULL;
}

static int parse_int(const char *v, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        return -1;
    *out = x;
    return 0;
}

static int parse_bool(const char *v, bool *out)
{
    if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes")) {
        *out = true;
        return 0;
    }
    if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no")) {
        *out = false;
        return 0;
    }
    return -1;
}

int config_set(struct config *c, const char *key, const char *val, char *err, int errlen)
{
    const struct setting *s = find(key);
    if (!s) {
        snprintf(err, (size_t)errlen, "unknown setting '%s'", key);
        return -1;
    }
    char *field = (char *)c + s->off;
    int64_t x = 0;
    int rc = 0;
    switch (s->kind) {
    case K_STR:
        if (strlen(val) >= s->size)
            rc = -1;
        else
            memcpy(field, val, strlen(val) + 1);
        break;
    case K_I32:
        if ((rc = parse_int(val, s->min, s->max, &x)) == 0)
            *(int32_t *)field = (int32_t)x;
        break;
    case K_I64:
        if ((rc = parse_int(val, s->min, s->max, &x)) == 0)
            *(int64_t *)field = x;
        break;
    case K_BOOL:
        rc = parse_bool(val, (bool *)field);
        break;
    case K_LEVEL:
        if ((*(int *)field = log_parse_level(val)) < 0)
            rc = -1;
        break;
    }
    if (rc)
        snprintf(err, (size_t)errlen, "bad value '%s' for %s", val, key);
    return rc;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = 0;
    return s;
}

int config_load_file(struct config *c, const char *path, char *err, int errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, (size_t)errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    char line[2048];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        char *l = trim(line);
        if (!*l || *l == '#')
            continue;
        char *eq = strchr(l, '=');
        if (!eq) {
            snprintf(err, (size_t)errlen, "%s:%d: expected key=value", path, lineno);
            rc = -1;
            break;
        }
        *eq = 0;
        rc = config_set(c, trim(l), trim(eq + 1), err, errlen);
    }
    fclose(f);
    return rc;
}

/* "auto.create.topics.enable" -> "SLUICE_AUTO_CREATE_TOPICS_ENABLE" */
static void env_name(const char *key, char *out, size_t n)
{
    size_t j = (size_t)snprintf(out, n, "SLUICE_");
    for (size_t i = 0; key[i] && j + 1 < n; i++)
        out[j++] = (key[i] == '.' || key[i] == '-') ? '_' : (char)toupper((unsigned char)key[i]);
    out[j] = 0;
}

int config_load_env(struct config *c, char *err, int errlen)
{
    for (size_t i = 0; i < NSETTINGS; i++) {
        char name[128];
        env_name(settings[i].key, name, sizeof name);
        const char *v = getenv(name);
        if (v && config_set(c, settings[i].key, v, err, errlen) < 0)
            return -1;
    }
    return 0;
}

static void usage(void)
{
    printf("usage: sluice-broker [--data-dir DIR] [--kafka-listen HOST:PORT]\n"
           "                     [--admin-listen HOST:PORT] [--advertised-listener HOST:PORT]\n"
           "                     [--config FILE] [--log-level debug|info|warn|error]\n"
           "                     [--set KEY=VALUE]...\n"
           "Every setting can also come from SLUICE_<KEY>, e.g. SLUICE_DATA_DIR.\n"
           "Settings:\n");
    for (size_t i = 0; i < NSETTINGS; i++)
        printf("  %s\n", settings[i].key);
}

/* "--data-dir" -> "data.dir" */
static void flag_key(const char *flag, char *out, size_t n)
{
    size_t j = 0;
    for (size_t i = 2; flag[i] && j + 1 < n; i++)
        out[j++] = flag[i] == '-' ? '.' : flag[i];
    out[j] = 0;
}

static int set_pair(struct config *c, const char *kv, char *err, int errlen)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", kv);
    char *eq = strchr(buf, '=');
    if (!eq) {
        snprintf(err, (size_t)errlen, "--set needs KEY=VALUE, got '%s'", kv);
        return -1;
    }
    *eq = 0;
    return config_set(c, buf, eq + 1, err, errlen);
}

int config_load_args(struct config *c, int argc, char **argv, char *err, int errlen)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage();
            return 1;
        }
        if (strncmp(a, "--", 2) != 0 || i + 1 >= argc) {
            snprintf(err, (size_t)errlen, "bad argument '%s' (try --help)", a);
            return -1;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--set")) {
            if (set_pair(c, v, err, errlen) < 0)
                return -1;
            continue;
        }
        char key[128];
        flag_key(a, key, sizeof key);
        if (config_set(c, key, v, err, errlen) < 0)
            return -1;
    }
    return 0;
}

int config_split_hostport(const char *s, char *host, int hostlen, int *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon - s >= hostlen)
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = 0;
    int64_t p;
    if (parse_int(colon + 1, 0, 65535, &p) < 0)
        return -1;
    *port = (int)p;
    return 0;
}
