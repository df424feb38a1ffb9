/* test_ctl_parse.c: the controller's parsers: the kubeconfig YAML subset, kubeconfig
 * resolution, watch-stream line splitting and label selectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ctl_kube.h"
#include "ctl_labels.h"
#include "ctl_lines.h"
#include "ctl_yaml.h"

static const char kubectl_cfg[] =
    "apiVersion: v1\n"
    "clusters:\n"
    "- cluster:\n"
    "    certificate-authority-data: aGVsbG8=\n"
    "    server: https://10.0.0.1:6443\n"
    "  name: prod\n"
    "- cluster:\n"
    "    insecure-skip-tls-verify: true\n"
    "    server: \"http://127.0.0.1:8001/\"   # trailing slash dropped\n"
    "  name: dev\n"
    "contexts:\n"
    "- context:\n"
    "    cluster: prod\n"
    "    user: admin\n"
    "  name: prod-admin\n"
    "- context:\n"
    "    cluster: dev\n"
    "    namespace: 'team''s'\n"
    "    user: dev-user\n"
    "  name: dev\n"
    "current-context: dev\n"
    "kind: Config\n"
    "preferences: {}\n"
    "users:\n"
    "- name: admin\n"
    "  user:\n"
    "    client-certificate-data: Y2VydA==\n"
    "    client-key-data: a2V5\n"
    "- name: dev-user\n"
    "  user:\n"
    "    token: abc.def\n";

static void test_yaml_kubectl(void **state)
{
    char err[128];
    cJSON *j = ctl_yaml_parse(kubectl_cfg, sizeof kubectl_cfg - 1, err, sizeof err);
    assert_non_null(j);
    const cJSON *cl = cJSON_GetObjectItem(j, "clusters");
    assert_int_equal(cJSON_GetArraySize(cl), 2);
    const cJSON *c0 = cJSON_GetObjectItem(cJSON_GetArrayItem(cl, 0), "cluster");
    assert_string_equal(cJSON_GetObjectItem(c0, "server")->valuestring, "https://10.0.0.1:6443");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(cl, 1), "name")->valuestring, "dev");
    assert_true(cJSON_IsObject(cJSON_GetObjectItem(j, "preferences")));
    assert_string_equal(cJSON_GetObjectItem(j, "current-context")->valuestring, "dev");
    cJSON_Delete(j);
}

static void test_yaml_errors(void **state)
{
    char err[128];
    static const char *const bad[] = {
        "a: b\n  c: d\n",          /* unexpected indentation */
        "a:\n\t- x\n",             /* tab */
        "a: &anchor x\n",          /* anchors */
        "a: |\n  text\n",          /* block scalar */
        "a: \"unterminated\n",     /* quote */
        "- x\nb: y\n",             /* mixed root */
        "a: [1, 2]\n",             /* flow collection */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cJSON *j = ctl_yaml_parse(bad[i], strlen(bad[i]), err, sizeof err);
        if (j)
            fail_msg("accepted: %s", bad[i]);
        assert_true(strncmp(err, "line ", 5) == 0 || strstr(err, "line") != NULL);
    }
}

static void test_yaml_depth_and_scalars(void **state)
{
    char err[128], buf[8192];
    size_t o = 0;
    for (int d = 0; d < 40; d++)
        o += (size_t)snprintf(buf + o, sizeof buf - o, "%*sk%d:\n", d * 2, "", d);
    assert_null(ctl_yaml_parse(buf, o, err, sizeof err));
    assert_non_null(strstr(err, "deep"));
    const char *s = "a: \"x\\ty\\u00e9\"\nb: 'it''s'\nc:\nd: plain # comment\nseq:\n  - 1\n  -   two\n";
    cJSON *j = ctl_yaml_parse(s, strlen(s), err, sizeof err);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "a")->valuestring, "x\ty\xc3\xa9");
    assert_string_equal(cJSON_GetObjectItem(j, "b")->valuestring, "it's");
    assert_string_equal(cJSON_GetObjectItem(j, "c")->valuestring, "");
    assert_string_equal(cJSON_GetObjectItem(j, "d")->valuestring, "plain");
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "seq"), 1)->valuestring, "two");
    cJSON_Delete(j);
}

static void test_kubeconfig_resolve(void **state)
{
    struct ctl_kauth a;
    char err[128];
    assert_int_equal(ctl_kauth_from_kubeconfig(&a, kubectl_cfg, sizeof kubectl_cfg - 1, "/x", err,
                                               sizeof err), 0);
    assert_string_equal(a.server, "http://127.0.0.1:8001");
    assert_true(a.insecure);
    assert_string_equal(a.token, "abc.def");
    assert_string_equal(a.namespace, "team's");
    ctl_kauth_free(&a);
    /* the other context: CA and client certificate data, decoded */
    char *alt = strdup(kubectl_cfg);
    memcpy(strstr(alt, "current-context: dev"), "current-context: xyz", 20);
    assert_int_equal(ctl_kauth_from_kubeconfig(&a, alt, strlen(alt), "/x", err, sizeof err), -1);
    ctl_kauth_free(&a);
    char *p = strstr(alt, "current-context: xyz");
    memcpy(p, "current-context: dev", 20);
    free(alt);
    const char *prod = "clusters:\n- name: p\n  cluster:\n    server: https://h:1\n"
                       "    certificate-authority: ca.pem\n"
                       "users:\n- name: u\n  user:\n    client-certificate-data: Y2VydA==\n"
                       "    client-key: keys/k.pem\n"
                       "contexts:\n- name: c\n  context: {cluster: p}\n";
    assert_int_equal(ctl_kauth_from_kubeconfig(&a, prod, strlen(prod), "/etc/kube", err, sizeof err), -1);
    ctl_kauth_free(&a);
    prod = "clusters:\n- name: p\n  cluster:\n    server: https://h:1\n"
           "    certificate-authority: ca.pem\n"
           "users:\n- name: u\n  user:\n    client-certificate-data: Y2VydA==\n"
           "    client-key: keys/k.pem\n"
           "contexts:\n- name: c\n  context:\n    cluster: p\n    user: u\n";
    assert_int_equal(ctl_kauth_from_kubeconfig(&a, prod, strlen(prod), "/etc/kube", err, sizeof err), 0);
    assert_string_equal(a.ca_file, "/etc/kube/ca.pem");
    assert_string_equal(a.key_file, "/etc/kube/keys/k.pem");
    assert_int_equal(a.cert_len, 4);
    assert_memory_equal(a.cert_pem, "cert", 4);
    ctl_kauth_free(&a);
}

struct lines {
    int n;
    char got[8][64];
};

static int on_line(void *arg, const char *line, size_t len)
{
    struct lines *l = arg;
    if (l->n < 8)
        snprintf(l->got[l->n], 64, "%.*s", (int)len, line);
    l->n++;
    return 0;
}

static void test_lines_chunks(void **state)
{
    struct ctl_linebuf lb;
    struct lines l = {0};
    ctl_linebuf_init(&lb, 16);
    const char *stream = "{\"a\":1}\n{\"b\":\r\n\n2}\nxxxxxxxxxxxxxxxxxxxxxxxx\nlast\n";
    /* feed one byte at a time: every split point */
    for (size_t i = 0; stream[i]; i++)
        assert_int_equal(ctl_linebuf_feed(&lb, stream + i, 1, on_line, &l), 0);
    assert_int_equal(l.n, 4);
    assert_string_equal(l.got[0], "{\"a\":1}");
    assert_string_equal(l.got[1], "{\"b\":");
    assert_string_equal(l.got[2], "2}");
    assert_string_equal(l.got[3], "last");
    assert_int_equal(lb.oversize, 1);
    /* whole stream at once gives the same */
    struct lines l2 = {0};
    ctl_linebuf_reset(&lb);
    lb.oversize = 0;
    assert_int_equal(ctl_linebuf_feed(&lb, stream, strlen(stream), on_line, &l2), 0);
    assert_int_equal(l2.n, 4);
    assert_int_equal(lb.oversize, 1);
    /* a partial line stays buffered */
    struct lines l3 = {0};
    assert_int_equal(ctl_linebuf_feed(&lb, "abc", 3, on_line, &l3), 0);
    assert_int_equal(l3.n, 0);
    assert_int_equal(ctl_linebuf_feed(&lb, "d\n", 2, on_line, &l3), 0);
    assert_string_equal(l3.got[0], "abcd");
    ctl_linebuf_free(&lb);
}

static cJSON *labels(const char *json)
{
    return cJSON_Parse(json);
}

static void test_selector(void **state)
{
    struct ctl_selector s;
    char err[128];
    cJSON *l = labels("{\"training.kubeflow.org/job-name\":\"resnet\",\"tier\":\"gpu\"}");
    assert_int_equal(ctl_selector_parse(&s, "training.kubeflow.org/job-name=resnet", 37, err, sizeof err), 0);
    assert_true(ctl_selector_matches(&s, l));
    ctl_selector_free(&s);
    const char *cases[][2] = {
        {"tier in (gpu, cpu),!spot", "1"}, {"tier notin (gpu)", "0"}, {"tier!=cpu", "1"},
        {"tier==gpu,missing", "0"},        {"!missing", "1"},         {"", "1"},
        {"tier in(gpu)", "1"},             {"x!=y", "1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(ctl_selector_parse(&s, cases[i][0], strlen(cases[i][0]), err, sizeof err), 0);
        if (ctl_selector_matches(&s, l) != (cases[i][1][0] == '1'))
            fail_msg("selector %s", cases[i][0]);
        ctl_selector_free(&s);
    }
    static const char *const bad[] = {"a in (x", "=x", "a b", "a in x", ",", "a=b,"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (ctl_selector_parse(&s, bad[i], strlen(bad[i]), err, sizeof err) == 0)
            fail_msg("accepted %s", bad[i]);
    cJSON *obj = cJSON_Parse("{\"matchLabels\":{\"tier\":\"gpu\"},\"matchExpressions\":"
                             "[{\"key\":\"spot\",\"operator\":\"DoesNotExist\"}]}");
    assert_int_equal(ctl_selector_from_json(&s, obj, err, sizeof err), 0);
    assert_true(ctl_selector_matches(&s, l));
    assert_false(ctl_selector_matches(&s, NULL));
    ctl_selector_free(&s);
    cJSON_Delete(obj);
    cJSON_Delete(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_yaml_kubectl),       cmocka_unit_test(test_yaml_errors),
        cmocka_unit_test(test_yaml_depth_and_scalars), cmocka_unit_test(test_kubeconfig_resolve),
        cmocka_unit_test(test_lines_chunks),       cmocka_unit_test(test_selector),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
