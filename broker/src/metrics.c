/* metrics.c: broker counters and per-API latency histograms, rendered in the Prometheus
 * text exposition format (version 0.0.4). Everything runs on the event loop thread. */
#include "metrics.h"

#include "broker.h"
#include "dataset.h"
#include "group.h"
#include "kafka.h"
#include "share.h"
#include "store.h"
#include "topic.h"
#include "wal.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Upper bounds of the latency buckets in microseconds; a last +Inf bucket follows. */
static const int64_t met_bucket_us[] = {
    50,    100,    250,    500,    1000,    2500,    5000,    10000,    25000,
    50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};
/* The same bounds as Prometheus `le` labels, in seconds. */
static const char *const met_bucket_le[] = {
    "0.00005", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
    "0.05",    "0.1",    "0.25",    "0.5",    "1",     "2.5",    "5",     "10",   "+Inf",
};

#define MET_NFINITE (sizeof met_bucket_us / sizeof met_bucket_us[0])
#define MET_NBUCKETS (MET_NFINITE + 1)
#define MET_HTTP_MIN 100
#define MET_NMECH 4
static const char *const met_mech[MET_NMECH] = {"ssl", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"};
#define MET_HTTP_MAX 599

_Static_assert(sizeof met_bucket_le / sizeof met_bucket_le[0] == MET_NBUCKETS,
               "every bucket needs a label");

struct met_api {
    uint64_t count;
    uint64_t sum_us;
    uint64_t buckets[MET_NBUCKETS]; /* not cumulative; render sums them up */
};

struct metrics {
    struct met_api api[KAPI_MAX_KEY];
    struct met_api wal_sync; /* group-commit fdatasyncs of the write-ahead log */
    int64_t conns;        /* open now */
    uint64_t conns_total; /* ever accepted */
    uint64_t bad_frames;
    uint64_t conns_refused;  /* over max.connections or max.connections.per.ip */
    uint64_t auth[MET_NMECH][2]; /* authentications by mechanism: failed, succeeded */
    uint64_t denied;         /* requests or parts of them refused by the ACLs */
    uint64_t throttled[2], throttle_ms[2]; /* quota throttles: produce, fetch */
    uint64_t http[MET_HTTP_MAX - MET_HTTP_MIN + 1]; /* by status code */
    uint64_t http_other;                            /* status codes outside 100..599 */
};

struct metrics *metrics_new(void)
{
    return calloc(1, sizeof(struct metrics));
}

void metrics_free(struct metrics *m)
{
    free(m);
}

/* Returns the index of the first bucket whose bound holds dur_us (bounds are inclusive,
 * as Prometheus `le` says); the +Inf bucket when none does. */
static size_t met_bucket(int64_t dur_us)
{
    size_t i = 0;
    while (i < MET_NFINITE && dur_us > met_bucket_us[i])
        i++;
    return i;
}

static void met_observe(struct met_api *a, int64_t dur_us)
{
    if (dur_us < 0)
        dur_us = 0; /* a clock step must not underflow the sum */
    a->count++;
    a->sum_us += (uint64_t)dur_us;
    a->buckets[met_bucket(dur_us)]++;
}

void metrics_request(struct metrics *m, int16_t api_key, int64_t dur_us)
{
    if (m && api_key >= 0 && api_key < KAPI_MAX_KEY)
        met_observe(&m->api[api_key], dur_us);
}

void metrics_wal_sync(struct metrics *m, int64_t dur_us)
{
    if (m)
        met_observe(&m->wal_sync, dur_us);
}

void metrics_bad_frame(struct metrics *m)
{
    if (m)
        m->bad_frames++;
}

void metrics_conn_open(struct metrics *m)
{
    if (!m)
        return;
    m->conns++;
    m->conns_total++;
}

void metrics_conn_refused(struct metrics *m)
{
    if (m)
        m->conns_refused++;
}

void metrics_auth(struct metrics *m, const char *mech, bool ok)
{
    for (int i = 0; m && i < MET_NMECH; i++)
        if (!strcmp(mech, met_mech[i]))
            m->auth[i][ok]++;
}

void metrics_denied(struct metrics *m)
{
    if (m)
        m->denied++;
}

void metrics_throttled(struct metrics *m, int kind, int32_t ms)
{
    if (!m || kind < 0 || kind > 1)
        return;
    m->throttled[kind]++;
    m->throttle_ms[kind] += (uint64_t)ms;
}

void metrics_conn_close(struct metrics *m)
{
    if (m && m->conns > 0)
        m->conns--;
}

void metrics_http(struct metrics *m, int status)
{
    if (!m)
        return;
    if (status >= MET_HTTP_MIN && status <= MET_HTTP_MAX)
        m->http[status - MET_HTTP_MIN]++;
    else
        m->http_other++;
}

/* --- rendering --- */

/* printf onto the writer; a failure stays sticky in w->err. */
__attribute__((format(printf, 2, 3))) static void met_printf(kc_writer *w, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        w->err = KC_EINVAL;
        return;
    }
    if ((size_t)n < sizeof small) {
        kc_w_raw(w, small, (size_t)n);
        return;
    }
    uint8_t *p = kc_w_room(w, (size_t)n + 1);
    if (!p)
        return;
    va_start(ap, fmt);
    vsnprintf((char *)p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    kc_w_commit(w, (size_t)n);
}

/* Writes the # HELP and # TYPE lines of one family. */
static void met_family(kc_writer *w, const char *name, const char *type, const char *help)
{
    met_printf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Writes s as a label value: backslash, double quote and newline escaped. */
static void met_label_value(kc_writer *w, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            kc_w_raw(w, "\\\\", 2);
        else if (*s == '"')
            kc_w_raw(w, "\\\"", 2);
        else if (*s == '\n')
            kc_w_raw(w, "\\n", 2);
        else
            kc_w_raw(w, s, 1);
    }
}

/* Writes the api label value for key: its name from the handler table, or api_<key>. */
static void met_api_label(kc_writer *w, int key)
{
    const char *name = kapi_table[key].name;
    if (name)
        met_label_value(w, name);
    else
        met_printf(w, "api_%d", key);
}

static void met_render_requests(struct metrics *m, kc_writer *w)
{
    met_family(w, "sluice_requests_total", "counter", "Kafka requests handled, by API.");
    for (int k = 0; k < KAPI_MAX_KEY; k++) {
        if (!m->api[k].count)
            continue;
        met_printf(w, "sluice_requests_total{api=\"");
        met_api_label(w, k);
        met_printf(w, "\"} %" PRIu64 "\n", m->api[k].count);
    }
}

/* Opens the label set of one series: {api="name", for an API's histogram (key >= 0),
 * or { for an unlabelled one; `more` says whether another label follows. */
static void met_labels(kc_writer *w, int key, bool more)
{
    if (key < 0) {
        met_printf(w, more ? "{" : "");
        return;
    }
    met_printf(w, "{api=\"");
    met_api_label(w, key);
    met_printf(w, more ? "\"," : "\"}");
}

/* Writes the bucket, sum and count series of one histogram: an API's (key >= 0) or an
 * unlabelled one (key < 0). */
static void met_render_histogram(kc_writer *w, const char *name, int key, const struct met_api *a)
{
    uint64_t cum = 0;
    for (size_t i = 0; i < MET_NBUCKETS; i++) {
        cum += a->buckets[i];
        met_printf(w, "%s_bucket", name);
        met_labels(w, key, true);
        met_printf(w, "le=\"%s\"} %" PRIu64 "\n", met_bucket_le[i], cum);
    }
    met_printf(w, "%s_sum", name);
    met_labels(w, key, false);
    met_printf(w, " %" PRIu64 ".%06" PRIu64 "\n", a->sum_us / 1000000, a->sum_us % 1000000);
    met_printf(w, "%s_count", name);
    met_labels(w, key, false);
    met_printf(w, " %" PRIu64 "\n", a->count);
}

static void met_render_durations(struct metrics *m, kc_writer *w)
{
    met_family(w, "sluice_request_duration_seconds", "histogram",
               "Kafka request latency from complete frame to response ready, by API.");
    for (int k = 0; k < KAPI_MAX_KEY; k++)
        if (m->api[k].count)
            met_render_histogram(w, "sluice_request_duration_seconds", k, &m->api[k]);
}

static void met_render_http(struct metrics *m, kc_writer *w)
{
    met_family(w, "sluice_http_requests_total", "counter",
               "Admin HTTP requests answered, by status code.");
    for (int i = 0; i <= MET_HTTP_MAX - MET_HTTP_MIN; i++)
        if (m->http[i])
            met_printf(w, "sluice_http_requests_total{code=\"%d\"} %" PRIu64 "\n", i + MET_HTTP_MIN,
                       m->http[i]);
    if (m->http_other)
        met_printf(w, "sluice_http_requests_total{code=\"other\"} %" PRIu64 "\n", m->http_other);
}

/* One per-topic counter family, walked with topics_foreach. */
struct met_topic_pass {
    kc_writer *w;
    const char *name;
    int field; /* 0 bytes_in, 1 bytes_out, 2 msgs_in */
};

static void met_topic_line(void *arg, struct topic *t)
{
    struct met_topic_pass *p = arg;
    uint64_t v = p->field == 0 ? t->bytes_in : p->field == 1 ? t->bytes_out : t->msgs_in;
    if (!v)
        return;
    met_printf(p->w, "%s{topic=\"", p->name);
    met_label_value(p->w, t->name);
    met_printf(p->w, "\"} %" PRIu64 "\n", v);
}

static void met_render_topics(struct topics *ts, kc_writer *w)
{
    static const struct {
        const char *name, *help;
    } fam[] = {
        {"sluice_topic_bytes_in_total", "Record batch bytes appended, by topic."},
        {"sluice_topic_bytes_out_total", "Record batch bytes sent to consumers, by topic."},
        {"sluice_topic_messages_in_total", "Records appended, by topic."},
    };
    met_family(w, "sluice_topics", "gauge", "Topics that exist.");
    met_printf(w, "sluice_topics %zu\n", topics_count(ts));
    for (int i = 0; i < 3; i++) {
        met_family(w, fam[i].name, "counter", fam[i].help);
        struct met_topic_pass p = {w, fam[i].name, i};
        topics_foreach(ts, met_topic_line, &p);
    }
}

static void met_render_broker(struct metrics *m, kc_writer *w)
{
    met_family(w, "sluice_up", "gauge", "1 while the broker runs.");
    met_printf(w, "sluice_up 1\n");
    met_family(w, "sluice_connections", "gauge", "Open Kafka client connections.");
    met_printf(w, "sluice_connections %" PRId64 "\n", m->conns);
    met_family(w, "sluice_connections_total", "counter", "Kafka client connections accepted.");
    met_printf(w, "sluice_connections_total %" PRIu64 "\n", m->conns_total);
    met_family(w, "sluice_connections_refused_total", "counter",
               "Connections refused by max.connections or max.connections.per.ip.");
    met_printf(w, "sluice_connections_refused_total %" PRIu64 "\n", m->conns_refused);
    met_family(w, "sluice_authentications_total", "counter",
               "Client authentications by mechanism and result.");
    for (int i = 0; i < MET_NMECH; i++)
        for (int ok = 0; ok < 2; ok++)
            met_printf(w, "sluice_authentications_total{mechanism=\"%s\",result=\"%s\"} %" PRIu64 "\n",
                       met_mech[i], ok ? "success" : "failure", m->auth[i][ok]);
    met_family(w, "sluice_authorization_denied_total", "counter",
               "Requests (or topics, groups within them) refused by the ACLs.");
    met_printf(w, "sluice_authorization_denied_total %" PRIu64 "\n", m->denied);
    met_family(w, "sluice_quota_throttles_total", "counter",
               "Requests answered with a throttle time by a byte-rate quota.");
    met_family(w, "sluice_quota_throttle_seconds_total", "counter",
               "Throttle time handed out by byte-rate quotas.");
    for (int k = 0; k < 2; k++) {
        const char *kind = k ? "fetch" : "produce";
        met_printf(w, "sluice_quota_throttles_total{kind=\"%s\"} %" PRIu64 "\n", kind,
                   m->throttled[k]);
        met_printf(w, "sluice_quota_throttle_seconds_total{kind=\"%s\"} %.3f\n", kind,
                   (double)m->throttle_ms[k] / 1000.0);
    }
    met_family(w, "sluice_bad_frames_total", "counter",
               "Malformed or rejected Kafka frames (each closed its connection).");
    met_printf(w, "sluice_bad_frames_total %" PRIu64 "\n", m->bad_frames);
}

/* Lag series are capped: a broker with many groups shows the first of them. */
#define MET_LAG_GROUPS_MAX 1000

struct met_lag_pass {
    struct groups *gs;
    kc_writer *w;
    const char *group;
    int ngroups;
};

static void met_lag_line(void *arg, const char *topic, int64_t lag)
{
    struct met_lag_pass *p = arg;
    met_printf(p->w, "sluice_group_lag{group=\"");
    met_label_value(p->w, p->group);
    met_printf(p->w, "\",topic=\"");
    met_label_value(p->w, topic);
    met_printf(p->w, "\"} %" PRId64 "\n", lag);
}

static void met_lag_group(void *arg, struct group *g)
{
    struct met_lag_pass *p = arg;
    if (!g->offs.n || p->ngroups >= MET_LAG_GROUPS_MAX)
        return;
    p->ngroups++;
    p->group = g->id;
    group_topic_lag(p->gs, g, met_lag_line, p);
}

static void met_render_groups(struct groups *gs, kc_writer *w)
{
    met_family(w, "sluice_groups", "gauge", "Consumer groups known to the coordinator.");
    met_printf(w, "sluice_groups %zu\n", groups_count(gs));
    met_family(w, "sluice_group_rebalances_total", "counter", "Group rebalances started.");
    met_printf(w, "sluice_group_rebalances_total %" PRIu64 "\n", groups_rebalances(gs));
    met_family(w, "sluice_group_lag", "gauge",
               "End offset minus committed offset, summed over a topic's partitions, by group "
               "and topic (the first 1000 groups with offsets).");
    struct met_lag_pass p = {.gs = gs, .w = w};
    groups_foreach(gs, met_lag_group, &p);
}

/* Share-state series by group and topic: each (group, topic) sums its partitions. */
struct met_share_pass {
    kc_writer *w;
    struct broker *b;
    const char *group;
    int which; /* 0 inflight, 1 redeliveries, 2 archived */
};

static void met_share_part(void *arg, struct share_part *sp, const struct share_stats *st)
{
    struct met_share_pass *p = arg;
    static const char *const names[] = {"sluice_share_inflight", "sluice_share_redeliveries_total",
                                        "sluice_share_archived_total"};
    int64_t v = p->which == 0 ? st->inflight
                : p->which == 1 ? st->redeliveries_total
                                : st->archived_total;
    struct topic *t = topic_find_id(p->b->topics, share_part_topic_id(sp));
    met_printf(p->w, "%s{group=\"", names[p->which]);
    met_label_value(p->w, p->group);
    met_printf(p->w, "\",topic=\"");
    met_label_value(p->w, t ? t->name : "");
    met_printf(p->w, "\",partition=\"%d\"} %" PRId64 "\n", share_part_partition(sp), v);
}

static void met_share_group(void *arg, struct share_group *g)
{
    struct met_share_pass *p = arg;
    p->group = share_group_id(g);
    share_group_foreach_part(g, met_share_part, p);
}

static void met_render_shares(struct broker *b, kc_writer *w)
{
    static const char *const fam[][3] = {
        {"sluice_share_inflight", "gauge", "Records in a share-partition's window not yet "
                                           "acknowledged or archived."},
        {"sluice_share_redeliveries_total", "counter", "Records handed out again."},
        {"sluice_share_archived_total", "counter",
         "Records archived: rejected, or past the delivery limit."},
    };
    for (int i = 0; i < 3; i++) {
        struct met_share_pass p = {.w = w, .b = b, .which = i};
        met_family(w, fam[i][0], fam[i][1], fam[i][2]);
        shares_foreach(b->shares, met_share_group, &p);
    }
}

void metrics_render(struct metrics *m, struct broker *b, kc_writer *w)
{
    if (!m)
        return;
    met_render_broker(m, w);
    met_render_requests(m, w);
    met_render_durations(m, w);
    met_render_http(m, w);
    if (b && b->store) {
        met_family(w, "sluice_storage_bytes", "gauge", "Approximate bytes held by the store.");
        met_printf(w, "sluice_storage_bytes %" PRIu64 "\n", store_size_bytes(b->store));
        struct wal_stats ws;
        store_wal_stats(b->store, &ws);
        const struct {
            const char *name, *type, *help;
            uint64_t v;
        } wal[] = {
            {"sluice_wal_segments", "gauge", "Write-ahead log segment files.", ws.segments},
            {"sluice_wal_bytes", "gauge", "Bytes in write-ahead log segment files.", ws.bytes},
            {"sluice_wal_appended_bytes_total", "counter",
             "Bytes appended to the write-ahead log since start.", ws.appended_bytes},
            {"sluice_wal_syncs_total", "counter", "fdatasync calls on the write-ahead log.",
             ws.syncs},
            {"sluice_wal_segments_reused_total", "counter",
             "Segments overwritten in place rather than created.", ws.reused},
        };
        for (size_t i = 0; i < sizeof wal / sizeof wal[0]; i++) {
            met_family(w, wal[i].name, wal[i].type, wal[i].help);
            met_printf(w, "%s %" PRIu64 "\n", wal[i].name, wal[i].v);
        }
        met_family(w, "sluice_wal_sync_duration_seconds", "histogram",
                   "Group-commit fdatasyncs of the write-ahead log (what acks=all waits for).");
        met_render_histogram(w, "sluice_wal_sync_duration_seconds", -1, &m->wal_sync);
    }
    if (b && b->topics)
        met_render_topics(b->topics, w);
    if (b && b->groups)
        met_render_groups(b->groups, w);
    if (b && b->datasets)
        dataset_metrics(b, w);
    if (b && b->shares)
        met_render_shares(b, w);
}
