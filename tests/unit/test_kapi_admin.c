/* test_kapi_admin.c: the admin API handlers against a real topic registry in a scratch
 * RocksDB directory. Requests are built with the codec writer, responses decoded field
 * by field for classic and flexible versions, so a misplaced version-dependent field
 * shows up as a wrong value or as leftover bytes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "kafka.h"
#include "log.h"
#include "store.h"
#include "topic.h"

struct fx {
    struct broker b;
    char dir[64];
    kc_writer resp;
};

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    char *err = NULL;

    log_min_level = LOG_WARN;
    snprintf(f->dir, sizeof f->dir, "/tmp/sluice-kadm-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    config_defaults(&f->b.cfg);
    f->b.cfg.default_partitions = 2;
    f->b.store = store_open(f->dir, &err);
    assert_non_null(f->b.store);
    f->b.topics = topics_new(&f->b);
    assert_non_null(f->b.topics);
    kc_writer_init(&f->resp, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    kc_writer_free(&f->resp);
    topics_free(f->b.topics);
    store_close(f->b.store);
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* Runs handler fn on body (consumed) and leaves a reader over the response body. */
static int call(struct fx *f, kapi_fn *fn, int16_t key, int16_t ver, int16_t flex_min,
                kc_writer *body, kc_reader *out)
{
    struct kreq req = {0};
    int rc;

    assert_int_equal(body->err, KC_OK);
    req.b = &f->b;
    req.api_key = key;
    req.api_version = ver;
    req.flexible = ver >= flex_min;
    kc_reader_init(&req.r, body->p, body->len);
    kc_writer_reset(&f->resp);
    rc = fn(&req, &f->resp);
    assert_int_equal(f->resp.err, KC_OK);
    kc_reader_init(out, f->resp.p, f->resp.len);
    kc_writer_free(body);
    return rc;
}

static void assert_str(kc_str s, const char *want)
{
    if (!want) {
        assert_int_equal(s.len, -1);
        return;
    }
    assert_int_equal(s.len, (int32_t)strlen(want));
    assert_memory_equal(s.p, want, strlen(want));
}

static void assert_done(kc_reader *r, bool flex)
{
    kc_skip_tags(r, flex);
    assert_true(kc_ok(r));
    assert_int_equal(kc_remaining(r), 0);
}

/* ---- CreateTopics */

/* One CreatableTopic with an optional single config. */
static void w_ct_topic(kc_writer *w, bool flex, const char *name, int32_t np, int16_t rf,
                       const char *ck, const char *cv)
{
    kc_w_cstr(w, flex, name);
    kc_w_i32(w, np);
    kc_w_i16(w, rf);
    kc_w_array(w, flex, 0); /* Assignments */
    kc_w_array(w, flex, ck ? 1 : 0);
    if (ck) {
        kc_w_cstr(w, flex, ck);
        kc_w_cstr(w, flex, cv);
        kc_w_tags(w, flex);
    }
    kc_w_tags(w, flex);
}

static void w_ct_tail(kc_writer *w, int16_t ver, bool flex, bool validate_only)
{
    kc_w_i32(w, 5000);
    if (ver >= 1)
        kc_w_bool(w, validate_only);
    kc_w_tags(w, flex);
}

struct ct_res {
    kc_str name;
    uint8_t id[16];
    int16_t err;
    int32_t np;
    int32_t nconfigs;
};

/* Decodes one CreatableTopicResult; returns the retention.ms value seen, if any. */
static void r_ct_result(kc_reader *r, int16_t ver, bool flex, struct ct_res *o, char *ret_ms)
{
    int32_t i;

    memset(o, 0, sizeof *o);
    o->name = kc_string(r, flex);
    if (ver >= 7)
        kc_uuid(r, o->id);
    o->err = kc_i16(r);
    if (ver >= 1)
        kc_string(r, flex);
    o->np = -1;
    if (ver >= 5) {
        o->np = kc_i32(r);
        kc_i16(r);
        o->nconfigs = kc_array(r, flex, 1);
        for (i = 0; i < o->nconfigs; i++) {
            kc_str k = kc_string(r, flex), v = kc_string(r, flex);

            kc_bool(r);
            kc_i8(r);
            kc_bool(r);
            kc_skip_tags(r, flex);
            if (ret_ms && kc_str_eq(k, "retention.ms"))
                snprintf(ret_ms, 32, "%.*s", (int)v.len, v.p);
        }
    }
    kc_skip_tags(r, flex);
    assert_true(kc_ok(r));
}

static void test_create_topics_versions(void **state)
{
    struct fx *f = *state;
    int16_t ver;

    for (ver = 0; ver <= 7; ver++) {
        bool flex = ver >= 5;
        char name[32], ret[32] = "";
        struct ct_res o;
        kc_writer w;
        kc_reader r;

        snprintf(name, sizeof name, "ct-v%d", ver);
        kc_writer_init(&w, 0);
        kc_w_array(&w, flex, 1);
        w_ct_topic(&w, flex, name, ver >= 4 ? -1 : 3, ver >= 4 ? -1 : 1, "retention.ms", "1234");
        w_ct_tail(&w, ver, flex, false);
        assert_int_equal(call(f, kapi_create_topics, 19, ver, 5, &w, &r), KAPI_DONE);
        if (ver >= 2)
            assert_int_equal(kc_i32(&r), 0);
        assert_int_equal(kc_array(&r, flex, 1), 1);
        r_ct_result(&r, ver, flex, &o, ret);
        assert_done(&r, flex);
        assert_str(o.name, name);
        assert_int_equal(o.err, KERR_NONE);
        if (ver >= 5) {
            assert_int_equal(o.np, 2);
            assert_true(o.nconfigs > 0);
            assert_string_equal(ret, "1234");
        }
        assert_non_null(topic_find(f->b.topics, name, strlen(name)));
    }
}

static void test_create_topics_errors(void **state)
{
    struct fx *f = *state;
    const int16_t ver = 7;
    struct ct_res o;
    kc_writer w;
    kc_reader r;
    int i;
    static const int16_t want[] = {KERR_NONE,
                                   KERR_INVALID_REQUEST,
                                   KERR_INVALID_TOPIC,
                                   KERR_INVALID_PARTITIONS,
                                   KERR_INVALID_REPLICATION_FACTOR,
                                   KERR_INVALID_CONFIG};

    kc_writer_init(&w, 0);
    kc_w_array(&w, true, 7);
    w_ct_topic(&w, true, "ok", 1, 1, NULL, NULL);
    w_ct_topic(&w, true, "dup", 1, 1, NULL, NULL);
    w_ct_topic(&w, true, "bad/name", 1, 1, NULL, NULL);
    w_ct_topic(&w, true, "zero", 0, 1, NULL, NULL);
    w_ct_topic(&w, true, "rf3", 1, 3, NULL, NULL);
    w_ct_topic(&w, true, "badcfg", 1, 1, "no.such.config", "1");
    w_ct_topic(&w, true, "dup", 1, 1, NULL, NULL);
    w_ct_tail(&w, ver, true, false);
    assert_int_equal(call(f, kapi_create_topics, 19, ver, 5, &w, &r), KAPI_DONE);
    kc_i32(&r);
    assert_int_equal(kc_array(&r, true, 1), 6); /* one result for the duplicated name */
    for (i = 0; i < 6; i++) {
        r_ct_result(&r, ver, true, &o, NULL);
        assert_int_equal(o.err, want[i]);
    }
    assert_done(&r, true);
    assert_null(topic_find(f->b.topics, "dup", 3));

    /* validate_only creates nothing; an existing name is TOPIC_ALREADY_EXISTS */
    kc_writer_init(&w, 0);
    kc_w_array(&w, true, 2);
    w_ct_topic(&w, true, "vo", 4, 1, NULL, NULL);
    w_ct_topic(&w, true, "ok", 1, 1, NULL, NULL);
    w_ct_tail(&w, ver, true, true);
    call(f, kapi_create_topics, 19, ver, 5, &w, &r);
    kc_i32(&r);
    kc_array(&r, true, 1);
    r_ct_result(&r, ver, true, &o, NULL);
    assert_int_equal(o.err, KERR_NONE);
    assert_int_equal(o.np, 4);
    r_ct_result(&r, ver, true, &o, NULL);
    assert_int_equal(o.err, KERR_TOPIC_ALREADY_EXISTS);
    assert_done(&r, true);
    assert_null(topic_find(f->b.topics, "vo", 2));
}

static void test_create_topics_malformed(void **state)
{
    struct fx *f = *state;
    kc_writer w;
    kc_reader r;

    /* truncated: the last topic loses its tail */
    kc_writer_init(&w, 0);
    kc_w_array(&w, false, 2);
    w_ct_topic(&w, false, "t1", 1, 1, NULL, NULL);
    kc_w_cstr(&w, false, "t2");
    assert_int_equal(call(f, kapi_create_topics, 19, 1, 5, &w, &r), KAPI_EPARSE);
    assert_null(topic_find(f->b.topics, "t1", 2)); /* nothing was created */

    /* a count far beyond the frame */
    kc_writer_init(&w, 0);
    kc_w_i32(&w, 1 << 30);
    assert_int_equal(call(f, kapi_create_topics, 19, 1, 5, &w, &r), KAPI_EPARSE);

    /* a null topic name */
    kc_writer_init(&w, 0);
    kc_w_array(&w, true, 1);
    w_ct_topic(&w, true, NULL, 1, 1, NULL, NULL);
    w_ct_tail(&w, 5, true, false);
    assert_int_equal(call(f, kapi_create_topics, 19, 5, 5, &w, &r), KAPI_EPARSE);
}

/* Creates topic name with np partitions directly in the registry. */
static struct topic *mk_topic(struct fx *f, const char *name, int32_t np)
{
    struct topic *t = NULL;
    char msg[128];

    assert_int_equal(
        topic_create(f->b.topics, name, strlen(name), np, NULL, 0, false, &t, msg, sizeof msg),
        KERR_NONE);
    return t;
}

/* ---- DeleteTopics */

static void test_delete_topics(void **state)
{
    struct fx *f = *state;
    uint8_t id[16], got[16];
    kc_writer w;
    kc_reader r;

    mk_topic(f, "d0", 1);
    memcpy(id, mk_topic(f, "d6", 1)->id, 16);

    kc_writer_init(&w, 0);
    kc_w_array(&w, false, 2);
    kc_w_cstr(&w, false, "d0");
    kc_w_cstr(&w, false, "nope");
    kc_w_i32(&w, 1000);
    call(f, kapi_delete_topics, 20, 0, 4, &w, &r);
    assert_int_equal(kc_array(&r, false, 1), 2); /* v0: no throttle */
    assert_str(kc_string(&r, false), "d0");
    assert_int_equal(kc_i16(&r), KERR_NONE);
    assert_str(kc_string(&r, false), "nope");
    assert_int_equal(kc_i16(&r), KERR_UNKNOWN_TOPIC_OR_PARTITION);
    assert_done(&r, false);
    assert_null(topic_find(f->b.topics, "d0", 2));

    /* v6 by id, and an unknown id */
    kc_writer_init(&w, 0);
    kc_w_array(&w, true, 2);
    kc_w_cstr(&w, true, NULL);
    kc_w_uuid(&w, id);
    kc_w_tags(&w, true);
    kc_w_cstr(&w, true, NULL);
    kc_w_uuid(&w, id);
    kc_w_tags(&w, true);
    kc_w_i32(&w, 1000);
    kc_w_tags(&w, true);
    call(f, kapi_delete_topics, 20, 6, 4, &w, &r);
    assert_int_equal(kc_i32(&r), 0);
    assert_int_equal(kc_array(&r, true, 1), 2);
    assert_str(kc_string(&r, true), "d6");
    kc_uuid(&r, got);
    assert_memory_equal(got, id, 16);
    assert_int_equal(kc_i16(&r), KERR_NONE);
    assert_str(kc_string(&r, true), NULL);
    kc_skip_tags(&r, true);
    assert_str(kc_string(&r, true), NULL);
    kc_uuid(&r, got);
    assert_int_equal(kc_i16(&r), KERR_UNKNOWN_TOPIC_ID);
    assert_true(kc_string(&r, true).len > 0);
    kc_skip_tags(&r, true);
    assert_done(&r, true);
}

/* ---- CreatePartitions */

static void w_cp_topic(kc_writer *w, bool flex, const char *name, int32_t count)
{
    kc_w_cstr(w, flex, name);
    kc_w_i32(w, count);
    kc_w_array(w, flex, -1); /* Assignments: null */
    kc_w_tags(w, flex);
}

static void test_create_partitions(void **state)
{
    struct fx *f = *state;
    static const int16_t want[] = {KERR_NONE, KERR_INVALID_PARTITIONS,
                                   KERR_UNKNOWN_TOPIC_OR_PARTITION};
    static const char *names[] = {"cp", "cp2", "nope"};
    kc_writer w;
    kc_reader r;
    int16_t ver;
    int i;

    mk_topic(f, "cp", 1);
    mk_topic(f, "cp2", 3);
    for (ver = 0; ver <= 3; ver++) {
        bool flex = ver >= 2;

        kc_writer_init(&w, 0);
        kc_w_array(&w, flex, 3);
        w_cp_topic(&w, flex, "cp", 2 + ver);
        w_cp_topic(&w, flex, "cp2", 2);
        w_cp_topic(&w, flex, "nope", 2);
        kc_w_i32(&w, 1000);
        kc_w_bool(&w, false);
        kc_w_tags(&w, flex);
        call(f, kapi_create_partitions, 37, ver, 2, &w, &r);
        assert_int_equal(kc_i32(&r), 0);
        assert_int_equal(kc_array(&r, flex, 1), 3);
        for (i = 0; i < 3; i++) {
            assert_str(kc_string(&r, flex), names[i]);
            assert_int_equal(kc_i16(&r), want[i]);
            assert_true((kc_string(&r, flex).len >= 0) == (want[i] != KERR_NONE));
            kc_skip_tags(&r, flex);
        }
        assert_done(&r, flex);
        assert_int_equal(topic_find(f->b.topics, "cp", 2)->partitions, 2 + ver);
    }
}

/* ---- DeleteRecords */

static void test_delete_records(void **state)
{
    struct fx *f = *state;
    static const int32_t parts[] = {0, 1, 7};
    static const int64_t offs[] = {-1, 5, 0};
    static const int16_t want[] = {KERR_NONE, KERR_OFFSET_OUT_OF_RANGE,
                                   KERR_UNKNOWN_TOPIC_OR_PARTITION};
    int16_t ver;
    int i;

    mk_topic(f, "dr", 2);
    for (ver = 0; ver <= 2; ver++) {
        bool flex = ver >= 2;
        kc_writer w;
        kc_reader r;

        kc_writer_init(&w, 0);
        kc_w_array(&w, flex, 1);
        kc_w_cstr(&w, flex, "dr");
        kc_w_array(&w, flex, 3);
        for (i = 0; i < 3; i++) {
            kc_w_i32(&w, parts[i]);
            kc_w_i64(&w, offs[i]);
            kc_w_tags(&w, flex);
        }
        kc_w_tags(&w, flex);
        kc_w_i32(&w, 1000);
        kc_w_tags(&w, flex);
        call(f, kapi_delete_records, 21, ver, 2, &w, &r);
        assert_int_equal(kc_i32(&r), 0);
        assert_int_equal(kc_array(&r, flex, 1), 1);
        assert_str(kc_string(&r, flex), "dr");
        assert_int_equal(kc_array(&r, flex, 1), 3);
        for (i = 0; i < 3; i++) {
            assert_int_equal(kc_i32(&r), parts[i]);
            assert_int_equal(kc_i64(&r), want[i] == KERR_UNKNOWN_TOPIC_OR_PARTITION ? -1 : 0);
            assert_int_equal(kc_i16(&r), want[i]);
            kc_skip_tags(&r, flex);
        }
        kc_skip_tags(&r, flex);
        assert_done(&r, flex);
    }
}

/* ---- DescribeConfigs */

/* Describes one resource, keys NULL for all; returns the number of configs and copies
 * the value of `look` into val. */
static int32_t describe(struct fx *f, int16_t ver, int8_t type, const char *name, const char *key,
                        int16_t *err, const char *look, char *val)
{
    bool flex = ver >= 4;
    kc_writer w;
    kc_reader r;
    int32_t i, n;

    kc_writer_init(&w, 0);
    kc_w_array(&w, flex, 1);
    kc_w_i8(&w, type);
    kc_w_cstr(&w, flex, name);
    kc_w_array(&w, flex, key ? 1 : -1);
    if (key)
        kc_w_cstr(&w, flex, key);
    kc_w_tags(&w, flex);
    if (ver >= 1)
        kc_w_bool(&w, true);
    if (ver >= 3)
        kc_w_bool(&w, true);
    kc_w_tags(&w, flex);
    call(f, kapi_describe_configs, 32, ver, 4, &w, &r);
    assert_int_equal(kc_i32(&r), 0);
    assert_int_equal(kc_array(&r, flex, 1), 1);
    *err = kc_i16(&r);
    kc_string(&r, flex);
    assert_int_equal(kc_i8(&r), type);
    assert_str(kc_string(&r, flex), name);
    n = kc_array(&r, flex, 1);
    for (i = 0; i < n; i++) {
        kc_str k = kc_string(&r, flex), v = kc_string(&r, flex);

        kc_bool(&r); /* ReadOnly */
        if (ver == 0)
            kc_bool(&r); /* IsDefault */
        else
            assert_true(kc_i8(&r) > 0); /* ConfigSource */
        kc_bool(&r);                    /* IsSensitive */
        if (ver >= 1) {
            assert_int_equal(kc_array(&r, flex, 1), 1);
            assert_true(kc_str_eq(kc_string(&r, flex), "") == false);
            kc_string(&r, flex);
            kc_i8(&r);
            kc_skip_tags(&r, flex);
        }
        if (ver >= 3) {
            assert_true(kc_i8(&r) > 0); /* ConfigType */
            kc_string(&r, flex);        /* Documentation */
        }
        kc_skip_tags(&r, flex);
        if (look && kc_str_eq(k, look))
            snprintf(val, 64, "%.*s", (int)v.len, v.p);
    }
    kc_skip_tags(&r, flex);
    assert_done(&r, flex);
    return n;
}

static void test_describe_configs(void **state)
{
    struct fx *f = *state;
    char val[64];
    int16_t ver, err;

    mk_topic(f, "dc", 1);
    for (ver = 0; ver <= 4; ver++) {
        val[0] = '\0';
        assert_true(describe(f, ver, 2, "dc", NULL, &err, "storage.mode", val) > 3);
        assert_int_equal(err, KERR_NONE);
        assert_string_equal(val, "persistent");
        assert_int_equal(describe(f, ver, 2, "dc", "retention.ms", &err, NULL, NULL), 1);
        assert_int_equal(describe(f, ver, 2, "nope", NULL, &err, NULL, NULL), 0);
        assert_int_equal(err, KERR_UNKNOWN_TOPIC_OR_PARTITION);
        val[0] = '\0';
        assert_int_equal(describe(f, ver, 4, "1", NULL, &err, "num.partitions", val), 6);
        assert_int_equal(err, KERR_NONE);
        assert_string_equal(val, "2");
        describe(f, ver, 4, "77", NULL, &err, NULL, NULL);
        assert_int_equal(err, KERR_INVALID_REQUEST);
        describe(f, ver, 3, "g", NULL, &err, NULL, NULL);
        assert_int_equal(err, KERR_INVALID_REQUEST);
    }
}

/* ---- AlterConfigs / IncrementalAlterConfigs */

static int16_t alter(struct fx *f, bool incremental, int16_t ver, int8_t type, const char *name,
                     const char *key, int8_t op, const char *value)
{
    bool flex = ver >= (incremental ? 1 : 2);
    kc_writer w;
    kc_reader r;
    int16_t err;

    kc_writer_init(&w, 0);
    kc_w_array(&w, flex, 1);
    kc_w_i8(&w, type);
    kc_w_cstr(&w, flex, name);
    kc_w_array(&w, flex, 1);
    kc_w_cstr(&w, flex, key);
    if (incremental)
        kc_w_i8(&w, op);
    kc_w_cstr(&w, flex, value);
    kc_w_tags(&w, flex);
    kc_w_tags(&w, flex);
    kc_w_bool(&w, false);
    kc_w_tags(&w, flex);
    if (incremental)
        call(f, kapi_incremental_alter_configs, 44, ver, 1, &w, &r);
    else
        call(f, kapi_alter_configs, 33, ver, 2, &w, &r);
    assert_int_equal(kc_i32(&r), 0);
    assert_int_equal(kc_array(&r, flex, 1), 1);
    err = kc_i16(&r);
    assert_true((kc_string(&r, flex).len >= 0) == (err != KERR_NONE));
    assert_int_equal(kc_i8(&r), type);
    assert_str(kc_string(&r, flex), name);
    kc_skip_tags(&r, flex);
    assert_done(&r, flex);
    return err;
}

static void test_alter_configs(void **state)
{
    struct fx *f = *state;
    struct topic *t = mk_topic(f, "ac", 1);
    int16_t ver;

    for (ver = 0; ver <= 2; ver++) {
        assert_int_equal(alter(f, false, ver, 2, "ac", "retention.ms", 0, "777"), KERR_NONE);
        assert_int_equal(t->cfg.retention_ms, 777);
        assert_int_equal(alter(f, false, ver, 2, "ac", "retention.ms", 0, "x"),
                         KERR_INVALID_CONFIG);
        assert_int_equal(alter(f, false, ver, 2, "nope", "retention.ms", 0, "1"),
                         KERR_UNKNOWN_TOPIC_OR_PARTITION);
        assert_int_equal(alter(f, false, ver, 4, "1", "num.partitions", 0, "1"),
                         KERR_INVALID_REQUEST);
    }
    for (ver = 0; ver <= 1; ver++) {
        assert_int_equal(alter(f, true, ver, 2, "ac", "retention.bytes", 0, "4096"), KERR_NONE);
        assert_int_equal(t->cfg.retention_bytes, 4096);
        assert_int_equal(t->cfg.retention_ms, 777); /* incremental keeps the rest */
        assert_int_equal(alter(f, true, ver, 2, "ac", "retention.bytes", 1, NULL), KERR_NONE);
        assert_int_equal(t->cfg.retention_bytes, f->b.cfg.default_retention_bytes);
        assert_int_equal(alter(f, true, ver, 2, "ac", "cleanup.policy", 2, "compact"),
                         KERR_INVALID_CONFIG);
        assert_int_equal(alter(f, true, ver, 2, "ac", "retention.ms", 0, NULL),
                         KERR_INVALID_REQUEST);
        assert_int_equal(alter(f, true, ver, 2, "ac", "retention.ms", 9, "1"),
                         KERR_INVALID_REQUEST);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_topics_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_topics_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_topics_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_topics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_partitions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_describe_configs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alter_configs, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
