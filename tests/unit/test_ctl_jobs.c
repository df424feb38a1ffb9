/* test_ctl_jobs.c: training jobs and Kueue Workloads as the controller caches them
 * (ctl_jobs.h): the pod labels predicted for each kind, which of them ask for a dataset
 * to be warmed, the choice among several; the SLUICE_JOB_KINDS list; the principal body
 * an AgentChannel PUTs (topic ACLs plus the group-prefix ACL) and the SCRAM credentials
 * derived for it (against Python's hashlib/hmac, RFC 5802). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ctl_agent.h"
#include "ctl_ctrl.h"
#include "ctl_jobs.h"
#include "ctl_labels.h"
#include "ctl_scram.h"
#include "ctl_util.h"

/* Compacts json of kind k; the caller frees the result. */
static cJSON *compact(enum ctl_kind k, const char *json)
{
    cJSON *o = cJSON_Parse(json);
    assert_non_null(o);
    cJSON *c = ctl_job_compact(k, o);
    cJSON_Delete(o);
    return c;
}

/* True when sel (string form) picks c as a warm trigger; fills t. */
static bool triggers(const cJSON *c, const char *sel, struct ctl_warm_trigger *t)
{
    struct ctl_selector s;
    char err[128];
    assert_int_equal(ctl_selector_parse(&s, sel, strlen(sel), err, sizeof err), 0);
    bool r = ctl_job_trigger(c, &s, t);
    ctl_selector_free(&s);
    return r;
}

static void test_batch_job(void **state)
{
    struct ctl_warm_trigger t;
    cJSON *c = compact(CTL_KIND_JOB,
                       "{\"metadata\":{\"name\":\"train\",\"namespace\":\"ml\",\"uid\":\"u1\","
                       "\"creationTimestamp\":\"2025-01-01T00:00:10Z\",\"resourceVersion\":\"7\","
                       "\"managedFields\":[{}]},"
                       "\"spec\":{\"suspend\":true,\"template\":{\"metadata\":{\"labels\":"
                       "{\"app\":\"resnet\",\"job-name\":\"spoofed\"}},\"spec\":{}}}}");
    assert_non_null(c);
    assert_null(cJSON_GetObjectItem(cJSON_GetObjectItem(c, "metadata"), "managedFields"));
    assert_true(triggers(c, "batch.kubernetes.io/job-name=train", &t));
    assert_string_equal(t.reason, "JobSuspended");
    assert_string_equal(t.job, "Job/train");
    assert_string_equal(t.uid, "u1");
    assert_int_equal(t.created, 1735689610);
    assert_true(triggers(c, "app=resnet", &t));
    assert_true(triggers(c, "job-name=train", &t)); /* the controller's label wins */
    assert_false(triggers(c, "app=other", &t));
    cJSON_Delete(c);
    /* running (not suspended), finished, or being deleted: no trigger */
    static const char *const quiet[] = {
        "{\"metadata\":{\"name\":\"train\",\"uid\":\"u1\"},\"spec\":{\"suspend\":false}}",
        "{\"metadata\":{\"name\":\"train\",\"uid\":\"u1\"},\"spec\":{\"suspend\":true},"
        "\"status\":{\"conditions\":[{\"type\":\"Failed\",\"status\":\"True\"}]}}",
        "{\"metadata\":{\"name\":\"train\",\"uid\":\"u1\",\"deletionTimestamp\":\"x\"},"
        "\"spec\":{\"suspend\":true}}",
    };
    for (size_t i = 0; i < sizeof quiet / sizeof quiet[0]; i++) {
        c = compact(CTL_KIND_JOB, quiet[i]);
        assert_non_null(c);
        assert_null(cJSON_GetObjectItem(c, "warm"));
        assert_false(triggers(c, "job-name=train", &t));
        cJSON_Delete(c);
    }
    /* no uid or no name: not cached */
    assert_null(compact(CTL_KIND_JOB, "{\"metadata\":{\"name\":\"x\"}}"));
    assert_null(compact(CTL_KIND_POD, "{\"metadata\":{\"name\":\"x\",\"uid\":\"u\"}}"));
}

static void test_jobset_child_counts_as_jobset(void **state)
{
    struct ctl_warm_trigger t;
    cJSON *js = compact(CTL_KIND_JOBSET,
                        "{\"metadata\":{\"name\":\"llm\",\"uid\":\"js1\"},\"spec\":{\"suspend\":true,"
                        "\"replicatedJobs\":[{\"name\":\"driver\",\"template\":{\"spec\":{\"template\":"
                        "{\"metadata\":{\"labels\":{\"role\":\"d\"}}}}}},{\"name\":\"workers\"}]}}");
    assert_true(triggers(js, "jobset.sigs.k8s.io/jobset-name=llm,"
                             "jobset.sigs.k8s.io/replicatedjob-name=workers", &t));
    assert_string_equal(t.job, "JobSet/llm");
    assert_true(triggers(js, "role=d", &t));
    assert_false(triggers(js, "role=d,jobset.sigs.k8s.io/replicatedjob-name=workers", &t));
    /* the JobSet's child Job (suspended with it) warms for the same uid: once per JobSet */
    cJSON *child = compact(CTL_KIND_JOB,
                           "{\"metadata\":{\"name\":\"llm-workers-0\",\"uid\":\"c1\","
                           "\"ownerReferences\":[{\"kind\":\"JobSet\",\"name\":\"llm\",\"uid\":\"js1\","
                           "\"controller\":true}]},\"spec\":{\"suspend\":true,\"template\":{\"metadata\":"
                           "{\"labels\":{\"jobset.sigs.k8s.io/jobset-name\":\"llm\"}}}}}");
    assert_true(triggers(child, "jobset.sigs.k8s.io/jobset-name=llm", &t));
    assert_string_equal(t.uid, "js1");
    assert_string_equal(t.job, "JobSet/llm");
    cJSON_Delete(js);
    cJSON_Delete(child);
}

static void test_pytorchjob_and_workload(void **state)
{
    struct ctl_warm_trigger t;
    cJSON *pj = compact(CTL_KIND_PYTORCHJOB,
                        "{\"metadata\":{\"name\":\"resnet\",\"uid\":\"p1\"},\"spec\":{\"runPolicy\":"
                        "{\"suspend\":true},\"pytorchReplicaSpecs\":{\"Master\":{\"replicas\":1,"
                        "\"template\":{}},\"Worker\":{\"replicas\":3,\"template\":{\"metadata\":"
                        "{\"labels\":{\"pool\":\"a100\"}}}}}}}");
    assert_true(triggers(pj, "training.kubeflow.org/job-name=resnet", &t));
    assert_string_equal(t.job, "PyTorchJob/resnet");
    assert_true(triggers(pj, "training.kubeflow.org/replica-type=worker,pool=a100", &t));
    assert_true(triggers(pj, "training.kubeflow.org/job-role=master", &t));
    assert_false(triggers(pj, "training.kubeflow.org/job-name=other", &t));
    cJSON_Delete(pj);
    /* its Workload: pending, then admitted, then finished */
    const char *wl =
        "{\"metadata\":{\"name\":\"pytorchjob-resnet-1a2b\",\"uid\":\"w1\",\"ownerReferences\":"
        "[{\"apiVersion\":\"kubeflow.org/v1\",\"kind\":\"PyTorchJob\",\"name\":\"resnet\","
        "\"uid\":\"p1\",\"controller\":true}]},\"spec\":{\"podSets\":[{\"name\":\"master\"},"
        "{\"name\":\"worker\",\"template\":{\"metadata\":{\"labels\":{\"pool\":\"a100\"}}}}]}%s}";
    char buf[2048];
    snprintf(buf, sizeof buf, wl, "");
    cJSON *w = compact(CTL_KIND_WORKLOAD, buf);
    assert_false(triggers(w, "training.kubeflow.org/job-name=resnet", &t));
    cJSON_Delete(w);
    snprintf(buf, sizeof buf, wl, ",\"status\":{\"admission\":{\"clusterQueue\":\"cq\"}}");
    w = compact(CTL_KIND_WORKLOAD, buf);
    assert_true(triggers(w, "training.kubeflow.org/job-name=resnet,pool=a100", &t));
    assert_string_equal(t.reason, "WorkloadAdmitted");
    assert_string_equal(t.uid, "p1"); /* the job's uid: its suspension and admission warm once */
    assert_string_equal(t.job, "PyTorchJob/resnet");
    assert_true(triggers(w, "training.kubeflow.org/replica-type=worker", &t));
    cJSON_Delete(w);
    snprintf(buf, sizeof buf, wl, ",\"status\":{\"admission\":{},\"conditions\":[{\"type\":"
                                  "\"Admitted\",\"status\":\"True\"},{\"type\":\"Finished\","
                                  "\"status\":\"True\"}]}");
    w = compact(CTL_KIND_WORKLOAD, buf);
    assert_false(triggers(w, "training.kubeflow.org/job-name=resnet", &t));
    cJSON_Delete(w);
    /* a batch Job's Workload, admitted by condition only */
    w = compact(CTL_KIND_WORKLOAD,
                "{\"metadata\":{\"name\":\"job-train-x\",\"uid\":\"w2\",\"ownerReferences\":"
                "[{\"apiVersion\":\"batch/v1\",\"kind\":\"Job\",\"name\":\"train\",\"uid\":\"j9\","
                "\"controller\":true}]},\"spec\":{\"podSets\":[{\"name\":\"main\"}]},"
                "\"status\":{\"conditions\":[{\"type\":\"Admitted\",\"status\":\"True\"}]}}");
    assert_true(triggers(w, "batch.kubernetes.io/job-name=train", &t));
    assert_string_equal(t.uid, "j9");
    cJSON_Delete(w);
    /* a Workload with no owner warms nothing */
    w = compact(CTL_KIND_WORKLOAD, "{\"metadata\":{\"name\":\"lone\",\"uid\":\"w3\"},\"status\":"
                                   "{\"admission\":{}},\"spec\":{\"podSets\":[{\"name\":\"main\"}]}}");
    assert_non_null(w);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(w, "pods")), 0);
    assert_false(triggers(w, "a!=b", &t));
    cJSON_Delete(w);
}

static void test_trigger_choice_and_kinds(void **state)
{
    struct ctl_warm_trigger a = {.created = 10, .uid = "b"}, b = {.created = 10, .uid = "a"};
    assert_true(ctl_trigger_newer(&a, &b));
    assert_false(ctl_trigger_newer(&b, &a));
    b.created = 11;
    assert_true(ctl_trigger_newer(&b, &a));
    unsigned m;
    char err[128];
    assert_int_equal(ctl_job_kinds_parse("jobs, workloads", &m, err, sizeof err), 0);
    assert_int_equal(m, (1u << CTL_KIND_JOB) | (1u << CTL_KIND_WORKLOAD));
    assert_int_equal(ctl_job_kinds_parse("", &m, err, sizeof err), 0);
    assert_int_equal(m, 0);
    assert_int_equal(ctl_job_kinds_parse("none", &m, err, sizeof err), 0);
    assert_int_equal(m, 0);
    assert_int_equal(ctl_job_kinds_parse("jobs,pytorchjobs,jobsets,workloads", &m, err, sizeof err), 0);
    assert_int_equal(m, 0xfu << CTL_KIND_JOB);
    assert_int_equal(ctl_job_kinds_parse("jobs,pods", &m, err, sizeof err), -1);
    assert_non_null(strstr(err, "pods"));
    assert_int_equal(ctl_job_kinds_parse("topics", &m, err, sizeof err), -1);
}

static void test_principal_body(void **state)
{
    struct ctl_topic_want w[2] = {0};
    snprintf(w[0].name, sizeof w[0].name, "acme.bot.input");
    snprintf(w[1].name, sizeof w[1].name, "acme.bot.output");
    cJSON *b = ctl_agent_principal_body("acme.bot", "pw", w, 2);
    assert_non_null(b);
    assert_string_equal(cJSON_GetObjectItem(b, "password")->valuestring, "pw");
    cJSON_Delete(b);
    b = ctl_agent_principal_body("acme.bot", NULL, w, 2); /* ACLs only: no password */
    assert_non_null(b);
    assert_null(cJSON_GetObjectItem(b, "password"));
    const cJSON *acls = cJSON_GetObjectItem(b, "acls");
    assert_int_equal(cJSON_GetArraySize(acls), 3);
    const cJSON *t0 = cJSON_GetArrayItem(acls, 0), *g = cJSON_GetArrayItem(acls, 2);
    assert_string_equal(cJSON_GetObjectItem(t0, "resource")->valuestring, "topic");
    assert_string_equal(cJSON_GetObjectItem(t0, "pattern")->valuestring, "literal");
    assert_string_equal(cJSON_GetObjectItem(t0, "name")->valuestring, "acme.bot.input");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(t0, "operations")), 3);
    assert_string_equal(cJSON_GetObjectItem(g, "resource")->valuestring, "group");
    assert_string_equal(cJSON_GetObjectItem(g, "name")->valuestring, "acme.bot.");
    assert_string_equal(cJSON_GetObjectItem(g, "pattern")->valuestring, "prefixed");
    assert_string_equal(cJSON_GetObjectItem(g, "permission")->valuestring, "allow");
    const cJSON *ops = cJSON_GetObjectItem(g, "operations");
    assert_int_equal(cJSON_GetArraySize(ops), 2);
    assert_string_equal(cJSON_GetArrayItem(ops, 0)->valuestring, "Read");
    assert_string_equal(cJSON_GetArrayItem(ops, 1)->valuestring, "Describe");
    cJSON_Delete(b);
}

static void hex(const unsigned char *p, int n, char *out)
{
    for (int i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
}

static void test_scram(void **state)
{
    unsigned char stored[CTL_SCRAM_MAX_KEY], server[CTL_SCRAM_MAX_KEY];
    char h1[2 * CTL_SCRAM_MAX_KEY + 1], h2[2 * CTL_SCRAM_MAX_KEY + 1];
    const unsigned char salt[] = "saltsaltsaltsalt";
    /* hashlib.pbkdf2_hmac + hmac over b"Client Key" / b"Server Key" */
    assert_int_equal(ctl_scram_derive("SCRAM-SHA-256", "pencil", salt, 16, 4096, stored, server), 32);
    hex(stored, 32, h1);
    hex(server, 32, h2);
    assert_string_equal(h1, "63b28cb67cf32fecc3aa2d11b4135d00f25e92af8f0a0e1e09c00c283b4b20b4");
    assert_string_equal(h2, "73530c8f590b5096fde8520cec88f34145e25b6a488bc2c36d0979e6f2f5a11a");
    assert_int_equal(ctl_scram_derive("SCRAM-SHA-512", "pencil", salt, 16, 4096, stored, server), 64);
    hex(stored, 64, h1);
    assert_string_equal(h1, "4d01de1f31c06223c58f55b2bad7c2d94e28ddb5194d37c1216924689ac6db70"
                            "cba2a2df5866b9470fca621abdef5c7fa7506a0146764e47c062cba17bd9c105");
    assert_int_equal(ctl_scram_derive("MD5", "pencil", salt, 16, 4096, stored, server), -1);
    /* the credentials array: both mechanisms, fresh salts, keys of the hash's length */
    cJSON *c = ctl_scram_credentials("pencil");
    assert_non_null(c);
    assert_int_equal(cJSON_GetArraySize(c), 2);
    const char *s0 = cJSON_GetObjectItem(cJSON_GetArrayItem(c, 0), "salt")->valuestring;
    const char *s1 = cJSON_GetObjectItem(cJSON_GetArrayItem(c, 1), "salt")->valuestring;
    assert_string_not_equal(s0, s1);
    for (int i = 0; i < 2; i++) {
        const cJSON *e = cJSON_GetArrayItem(c, i);
        size_t n = 0;
        unsigned char *k = ctl_b64_decode(cJSON_GetObjectItem(e, "server_key")->valuestring,
                                          strlen(cJSON_GetObjectItem(e, "server_key")->valuestring), &n);
        assert_int_equal(n, i ? 64 : 32);
        assert_int_equal(cJSON_GetObjectItem(e, "iterations")->valueint, CTL_SCRAM_ITERATIONS);
        free(k);
    }
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(c, 1), "mechanism")->valuestring,
                        "SCRAM-SHA-512");
    cJSON_Delete(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_job),
        cmocka_unit_test(test_jobset_child_counts_as_jobset),
        cmocka_unit_test(test_pytorchjob_and_workload),
        cmocka_unit_test(test_trigger_choice_and_kinds),
        cmocka_unit_test(test_principal_body),
        cmocka_unit_test(test_scram),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
