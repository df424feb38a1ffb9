/* test_ctl_logic.c: the controller's decision logic: backoff, the work queue (dedup,
 * processing/dirty, delays, rate limit), the informer cache index, and the Topic spec to
 * broker JSON create body and diff. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ctl_backoff.h"
#include "ctl_cache.h"
#include "ctl_queue.h"
#include "ctl_topic.h"

static void test_backoff(void **state)
{
    struct ctl_backoff b;
    ctl_backoff_init(&b, 100, 1000);
    int64_t ceil = 100;
    for (int i = 0; i < 10; i++) {
        int64_t d = ctl_backoff_next(&b);
        assert_true(d >= ceil / 2 && d <= ceil);
        if (ceil < 1000)
            ceil = ceil * 2 > 1000 ? 1000 : ceil * 2;
    }
    ctl_backoff_reset(&b);
    assert_true(ctl_backoff_next(&b) <= 100);
    /* jitter: many draws are not all equal */
    int64_t first = ctl_backoff_delay(1000, 60000, 5), same = 0;
    for (int i = 0; i < 50; i++)
        same += ctl_backoff_delay(1000, 60000, 5) == first;
    assert_true(same < 50);
    assert_true(ctl_backoff_delay(1000, 60000, 1000) <= 60000);
}

static void test_queue_dedup(void **state)
{
    struct ctl_queue q;
    int64_t wait;
    assert_int_equal(ctl_queue_init(&q, 0, 1, 10, 1000), 0);
    for (int i = 0; i < 5; i++)
        ctl_queue_add(&q, "ns/a", 0);
    ctl_queue_add(&q, "ns/b", 0);
    assert_int_equal(ctl_queue_len(&q), 2);
    char *k = ctl_queue_get(&q, 0, &wait);
    assert_string_equal(k, "ns/a");
    /* added while processing: not handed out twice, requeued on done */
    ctl_queue_add(&q, "ns/a", 0);
    char *k2 = ctl_queue_get(&q, 0, &wait);
    assert_string_equal(k2, "ns/b");
    assert_null(ctl_queue_get(&q, 0, &wait));
    ctl_queue_done(&q, "ns/a", 0);
    ctl_queue_done(&q, "ns/b", 0);
    free(k2);
    free(k);
    k = ctl_queue_get(&q, 0, &wait);
    assert_string_equal(k, "ns/a");
    ctl_queue_done(&q, "ns/a", 0);
    free(k);
    assert_int_equal(ctl_queue_len(&q), 0);
    assert_int_equal(q.count, 0); /* items freed when idle */
    ctl_queue_free(&q);
}

static void test_queue_delays(void **state)
{
    struct ctl_queue q;
    int64_t wait;
    assert_int_equal(ctl_queue_init(&q, 0, 1, 100, 1000), 0);
    ctl_queue_add_after(&q, "x", 500, 0);
    ctl_queue_add_after(&q, "x", 200, 0); /* the earlier time wins */
    ctl_queue_add_after(&q, "y", 300, 0);
    assert_null(ctl_queue_get(&q, 100, &wait));
    assert_int_equal(wait, 100);
    char *k = ctl_queue_get(&q, 200, &wait);
    assert_string_equal(k, "x");
    free(k);
    ctl_queue_done(&q, "x", 200);
    /* failures back off per key and forget resets them */
    int64_t d1 = ctl_queue_add_rate_limited(&q, "z", 0);
    assert_true(d1 >= 50 && d1 <= 100);
    k = ctl_queue_get(&q, 1000, &wait); /* y (due 300) or z (due <=100) */
    assert_non_null(k);
    ctl_queue_done(&q, k, 1000);
    free(k);
    k = ctl_queue_get(&q, 1000, &wait);
    assert_non_null(k);
    ctl_queue_done(&q, k, 1000);
    free(k);
    assert_int_equal(ctl_queue_failures(&q, "z"), 1);
    ctl_queue_add_rate_limited(&q, "z", 1000);
    assert_int_equal(ctl_queue_failures(&q, "z"), 2);
    ctl_queue_forget(&q, "z");
    assert_int_equal(ctl_queue_failures(&q, "z"), 0);
    /* an immediate add overrides a pending delay */
    ctl_queue_add(&q, "z", 1000);
    k = ctl_queue_get(&q, 1000, &wait);
    assert_string_equal(k, "z");
    free(k);
    ctl_queue_done(&q, "z", 1000);
    ctl_queue_free(&q);
}

static void test_queue_rate_and_scale(void **state)
{
    struct ctl_queue q;
    int64_t wait;
    char key[32];
    assert_int_equal(ctl_queue_init(&q, 10, 2, 100, 1000), 0);
    for (int i = 0; i < 100000; i++) {
        snprintf(key, sizeof key, "ns/c%d", i);
        ctl_queue_add(&q, key, 0);
        ctl_queue_add(&q, key, 0);
    }
    assert_int_equal(ctl_queue_len(&q), 100000);
    assert_int_equal(q.dedups, 100000);
    int got = 0;
    char *k;
    while ((k = ctl_queue_get(&q, 1000000, &wait))) { /* burst 2 then limited */
        ctl_queue_done(&q, k, 1000000);
        free(k);
        got++;
    }
    assert_int_equal(got, 2);
    assert_true(wait > 0 && wait <= 101);
    ctl_queue_free(&q);
}

struct seen {
    int n;
};

static void count(void *arg, const struct ctl_obj *o)
{
    ((struct seen *)arg)->n++;
}

static void test_cache_index(void **state)
{
    struct ctl_cache c;
    char *old = NULL;
    assert_int_equal(ctl_cache_init(&c), 0);
    for (int i = 0; i < 5000; i++) {
        char key[32];
        snprintf(key, sizeof key, "ns/t%d", i);
        assert_int_equal(ctl_cache_put(&c, key, strdup("{}"), i % 2 ? "odd" : "even", NULL), 0);
    }
    struct seen s = {0};
    ctl_cache_foreach_idx(&c, "odd", count, &s);
    assert_int_equal(s.n, 2500);
    assert_int_equal(ctl_cache_put(&c, "ns/t1", strdup("{\"a\":1}"), "even", &old), 0);
    assert_string_equal(old, "odd");
    free(old);
    s.n = 0;
    ctl_cache_foreach_idx(&c, "odd", count, &s);
    assert_int_equal(s.n, 2499);
    ctl_cache_begin_relist(&c);
    ctl_cache_put(&c, "ns/t1", strdup("{}"), NULL, NULL);
    assert_int_equal(ctl_cache_sweep(&c, NULL, NULL), 4999);
    assert_int_equal(c.count, 1);
    ctl_cache_free(&c);
}

static void test_topic_create_and_diff(void **state)
{
    struct ctl_topic_want w;
    char err[256];
    cJSON *spec = cJSON_Parse("{\"partitions\":4,\"storage\":{\"mode\":\"persistent\","
                              "\"retentionMs\":86400000},\"config\":{\"cleanup.policy\":\"delete\"}}");
    assert_int_equal(ctl_topic_want_from_spec(spec, "orders", &w, err, sizeof err), 0);
    assert_string_equal(w.name, "orders");
    cJSON *body = ctl_topic_create_body(&w);
    char *s = cJSON_PrintUnformatted(body);
    assert_string_equal(s, "{\"storage\":{\"mode\":\"persistent\",\"retention_ms\":86400000},"
                           "\"name\":\"orders\",\"partitions\":4,\"config\":{\"cleanup.policy\":\"delete\"}}");
    free(s);
    cJSON_Delete(body);
    /* in step: no patch */
    cJSON *b = cJSON_Parse("{\"name\":\"orders\",\"partitions\":4,\"storage\":{\"mode\":\"persistent\"},"
                           "\"config\":{\"storage.mode\":\"persistent\",\"retention.ms\":\"86400000\","
                           "\"cleanup.policy\":\"delete\"}}");
    cJSON *patch = NULL;
    assert_int_equal(ctl_topic_diff(&w, b, &patch, err, sizeof err), 0);
    assert_null(patch);
    cJSON_Delete(b);
    /* drift: fewer partitions, changed retention, an extra config */
    b = cJSON_Parse("{\"partitions\":2,\"storage\":{\"mode\":\"persistent\"},\"config\":"
                    "{\"retention.ms\":\"1000\",\"cleanup.policy\":\"delete\",\"max.message.bytes\":\"10\"}}");
    assert_int_equal(ctl_topic_diff(&w, b, &patch, err, sizeof err), 1);
    s = cJSON_PrintUnformatted(patch);
    assert_string_equal(s, "{\"partitions\":4,\"config\":{\"retention.ms\":\"86400000\","
                           "\"max.message.bytes\":null}}");
    free(s);
    cJSON_Delete(patch);
    cJSON_Delete(b);
    /* more partitions on the broker than in the spec; another mode */
    b = cJSON_Parse("{\"partitions\":8,\"storage\":{\"mode\":\"persistent\"},\"config\":{}}");
    assert_int_equal(ctl_topic_diff(&w, b, &patch, err, sizeof err), -1);
    assert_non_null(strstr(err, "only grow"));
    cJSON_Delete(b);
    b = cJSON_Parse("{\"partitions\":4,\"storage\":{\"mode\":\"memory\"},\"config\":{}}");
    assert_int_equal(ctl_topic_diff(&w, b, &patch, err, sizeof err), -1);
    cJSON_Delete(b);
    cJSON_Delete(spec);
}

static void test_topic_invalid_specs(void **state)
{
    struct ctl_topic_want w;
    char err[256];
    static const char *const bad[] = {
        "{\"partitions\":0}",
        "{\"partitions\":1.5}",
        "{\"partitions\":\"3\"}",
        "{\"storage\":{\"mode\":\"floppy\"}}",
        "{\"storage\":{\"retentionMs\":-2}}",
        "{\"config\":{\"a\":1}}",
        "{\"config\":{\"storage.mode\":\"memory\"}}",
        "{\"topicName\":\"bad name\"}",
        "{\"topicName\":\"..\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cJSON *spec = cJSON_Parse(bad[i]);
        if (ctl_topic_want_from_spec(spec, "x", &w, err, sizeof err) == 0)
            fail_msg("accepted %s", bad[i]);
        cJSON_Delete(spec);
    }
    cJSON *spec = cJSON_Parse("{}");
    assert_int_equal(ctl_topic_want_from_spec(spec, "dflt", &w, err, sizeof err), 0);
    assert_int_equal(w.partitions, 1);
    assert_string_equal(w.mode, "persistent");
    cJSON_Delete(spec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff),          cmocka_unit_test(test_queue_dedup),
        cmocka_unit_test(test_queue_delays),     cmocka_unit_test(test_queue_rate_and_scale),
        cmocka_unit_test(test_cache_index),      cmocka_unit_test(test_topic_create_and_diff),
        cmocka_unit_test(test_topic_invalid_specs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
