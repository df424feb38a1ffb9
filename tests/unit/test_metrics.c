/* test_metrics.c: histogram bucketing and the Prometheus text that metrics_render writes. */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker.h"
#include "kafka.h"
#include "metrics.h"

/* Renders m with a broker that has no store and no topics; returns a NUL-terminated
 * heap copy the caller frees. */
static char *render(struct metrics *m)
{
    struct broker b;
    memset(&b, 0, sizeof b);
    kc_writer w;
    kc_writer_init(&w, 0);
    metrics_render(m, &b, &w);
    assert_int_equal(w.err, KC_OK);
    char *s = malloc(w.len + 1);
    assert_non_null(s);
    memcpy(s, w.p, w.len);
    s[w.len] = 0;
    kc_writer_free(&w);
    return s;
}

/* Asserts that text holds line as a whole line. */
static void assert_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == 0))
            return;
    fail_msg("missing line: %s\n--- output ---\n%s", line, text);
}

/* The name the API label uses for key, as metrics.c derives it. */
static void api_name(int key, char *out, size_t cap)
{
    if (kapi_table[key].name)
        snprintf(out, cap, "%s", kapi_table[key].name);
    else
        snprintf(out, cap, "api_%d", key);
}

/* Asserts the cumulative count in the bucket le of api key. */
static void assert_bucket(const char *text, int key, const char *le, unsigned long n)
{
    char name[64], line[256];
    api_name(key, name, sizeof name);
    snprintf(line, sizeof line, "sluice_request_duration_seconds_bucket{api=\"%s\",le=\"%s\"} %lu",
             name, le, n);
    assert_line(text, line);
}

static void test_bucket_edges(void **state)
{
    struct metrics *m = metrics_new();
    assert_non_null(m);
    metrics_request(m, 0, 50); /* exactly on the first bound: le is inclusive */
    metrics_request(m, 0, 51); /* just above it */
    metrics_request(m, 0, 100);
    metrics_request(m, 0, 1000000);  /* 1 s */
    metrics_request(m, 0, 10000001); /* above the last finite bound */
    metrics_request(m, 0, -5);       /* a clock step counts as 0 */
    char *s = render(m);
    assert_bucket(s, 0, "0.00005", 2);
    assert_bucket(s, 0, "0.0001", 4);
    assert_bucket(s, 0, "0.00025", 4);
    assert_bucket(s, 0, "0.5", 4);
    assert_bucket(s, 0, "1", 5);
    assert_bucket(s, 0, "10", 5);
    assert_bucket(s, 0, "+Inf", 6);
    char name[64], line[256];
    api_name(0, name, sizeof name);
    snprintf(line, sizeof line, "sluice_request_duration_seconds_count{api=\"%s\"} 6", name);
    assert_line(s, line);
    /* 50 + 51 + 100 + 1000000 + 10000001 + 0 us */
    snprintf(line, sizeof line, "sluice_request_duration_seconds_sum{api=\"%s\"} 11.000202", name);
    assert_line(s, line);
    snprintf(line, sizeof line, "sluice_requests_total{api=\"%s\"} 6", name);
    assert_line(s, line);
    free(s);
    metrics_free(m);
}

static void test_only_used_apis(void **state)
{
    struct metrics *m = metrics_new();
    metrics_request(m, 3, 10);
    metrics_request(m, -1, 10);           /* out of range: ignored */
    metrics_request(m, KAPI_MAX_KEY, 10); /* out of range: ignored */
    char *s = render(m);
    char name[64], line[256];
    api_name(3, name, sizeof name);
    snprintf(line, sizeof line, "sluice_requests_total{api=\"%s\"} 1", name);
    assert_line(s, line);
    /* exactly one requests_total series */
    const char *p = s;
    int n = 0;
    while ((p = strstr(p, "\nsluice_requests_total{")) != NULL)
        n++, p++;
    assert_int_equal(n, 1);
    assert_null(strstr(s, "api=\"api_-1\""));
    free(s);
    metrics_free(m);
}

static void test_broker_families(void **state)
{
    struct metrics *m = metrics_new();
    metrics_conn_open(m);
    metrics_conn_open(m);
    metrics_conn_close(m);
    metrics_bad_frame(m);
    metrics_http(m, 200);
    metrics_http(m, 200);
    metrics_http(m, 404);
    metrics_http(m, 999);
    char *s = render(m);
    assert_line(s, "# TYPE sluice_up gauge");
    assert_line(s, "sluice_up 1");
    assert_line(s, "# TYPE sluice_connections gauge");
    assert_line(s, "sluice_connections 1");
    assert_line(s, "# TYPE sluice_connections_total counter");
    assert_line(s, "sluice_connections_total 2");
    assert_line(s, "sluice_bad_frames_total 1");
    assert_line(s, "# TYPE sluice_http_requests_total counter");
    assert_line(s, "sluice_http_requests_total{code=\"200\"} 2");
    assert_line(s, "sluice_http_requests_total{code=\"404\"} 1");
    assert_line(s, "sluice_http_requests_total{code=\"other\"} 1");
    assert_line(s, "# TYPE sluice_request_duration_seconds histogram");
    /* no store and no topics: those families are left out, not guessed */
    assert_null(strstr(s, "sluice_storage_bytes"));
    assert_null(strstr(s, "sluice_topics "));
    free(s);
    metrics_free(m);
}

/* Returns true when sample name (up to its '{' or ' ') belongs to a family announced in
 * types: exactly, or as a histogram's _bucket/_sum/_count. */
static bool announced(const char *types, const char *sample)
{
    size_t n = strcspn(sample, "{ ");
    static const char *const sfx[] = {"", "_bucket", "_sum", "_count"};
    for (int i = 0; i < 4; i++) {
        size_t sl = strlen(sfx[i]);
        if (n <= sl || memcmp(sample + n - sl, sfx[i], sl))
            continue;
        char want[160];
        snprintf(want, sizeof want, "# TYPE %.*s ", (int)(n - sl), sample);
        if (strstr(types, want))
            return true;
    }
    return false;
}

static void test_every_family_has_help(void **state)
{
    struct metrics *m = metrics_new();
    metrics_request(m, 0, 1);
    metrics_http(m, 500);
    metrics_conn_open(m);
    char *s = render(m);
    char *types = strdup(s);
    int samples = 0;
    for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#')
            continue;
        if (!announced(types, line))
            fail_msg("sample without # TYPE: %s", line);
        samples++;
    }
    assert_true(samples > 20);
    free(types);
    free(s);
    metrics_free(m);
}

static void test_null_safe(void **state)
{
    metrics_free(NULL);
    metrics_request(NULL, 0, 1);
    metrics_http(NULL, 200);
    metrics_conn_open(NULL);
    metrics_conn_close(NULL);
    metrics_bad_frame(NULL);
    struct metrics *m = metrics_new();
    metrics_conn_close(m); /* never below zero */
    char *s = render(m);
    assert_line(s, "sluice_connections 0");
    free(s);
    metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_edges),    cmocka_unit_test(test_only_used_apis),
        cmocka_unit_test(test_broker_families), cmocka_unit_test(test_every_family_has_help),
        cmocka_unit_test(test_null_safe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
