/* test_topic.c: the topic registry on a scratch broker: name rules, create/alter/delete
 * with their Kafka error codes, config descriptions, paged listing, and what a restart
 * restores from the store. */
#include "unit_broker.h"

static char msg[512];

static struct topic_cfg_change kv(const char *k, const char *v)
{
    return (struct topic_cfg_change){k, strlen(k), v, v ? strlen(v) : 0};
}

/* topic_create with configs; returns the Kafka error and the topic in *out. */
static int create(struct ub *u, const char *name, int32_t np, const struct topic_cfg_change *cfg,
                  int ncfg, bool validate_only, struct topic **out)
{
    return topic_create(u->b.topics, name, strlen(name), np, cfg, ncfg, validate_only, out, msg,
                        sizeof msg);
}

static struct topic *find(struct ub *u, const char *name)
{
    return topic_find(u->b.topics, name, strlen(name));
}

/* ---- names */

static int name_check(const char *s)
{
    return topic_name_check(s, strlen(s));
}

static void test_name_check(void **state)
{
    (void)state;
    char name[251];
    assert_int_equal(name_check("a"), KERR_NONE);
    assert_int_equal(name_check("a.b-c_D9"), KERR_NONE);
    assert_int_equal(name_check("..."), KERR_NONE);
    memset(name, 'x', 249);
    assert_int_equal(topic_name_check(name, 249), KERR_NONE);
    memset(name, 'x', 250);
    assert_int_equal(topic_name_check(name, 250), KERR_INVALID_TOPIC);
    assert_int_equal(name_check(""), KERR_INVALID_TOPIC);
    assert_int_equal(name_check("."), KERR_INVALID_TOPIC);
    assert_int_equal(name_check(".."), KERR_INVALID_TOPIC);
    assert_int_equal(name_check("a/b"), KERR_INVALID_TOPIC);
    assert_int_equal(name_check("a b"), KERR_INVALID_TOPIC);
    assert_int_equal(name_check("\xc3\xa4"), KERR_INVALID_TOPIC); /* "ä" */
    assert_int_equal(topic_name_check("ab\0c", 4), KERR_INVALID_TOPIC);
    /* only len bytes count: "ok" taken from a longer buffer */
    assert_int_equal(topic_name_check("ok/rest", 2), KERR_NONE);
}

/* ---- create */

static void test_create(void **state)
{
    struct ub *u = *state;
    struct topic *t = NULL;
    assert_int_equal(create(u, "orders", 3, NULL, 0, false, &t), KERR_NONE);
    assert_non_null(t);
    assert_ptr_equal(find(u, "orders"), t);
    assert_ptr_equal(topic_find_id(u->b.topics, t->id), t);
    assert_string_equal(t->name, "orders");
    assert_int_equal(t->partitions, 3);
    assert_int_equal(t->id[6] >> 4, 4); /* UUID v4 */
    assert_int_equal(t->id[8] >> 6, 2);
    assert_int_equal(t->cfg.retention_ms, u->b.cfg.default_retention_ms);
    assert_int_equal(t->cfg.retention_bytes, -1);
    assert_int_equal(t->cfg.max_message_bytes, u->b.cfg.default_max_message_bytes);
    assert_int_equal(t->cfg.mode, MODE_PERSISTENT);
    assert_int_equal(topics_count(u->b.topics), 1);
    assert_null(find(u, "order"));
    assert_null(topic_partition(u->b.topics, t, 3));
    assert_null(topic_partition(u->b.topics, t, -1));
    struct partition *p = topic_partition(u->b.topics, t, 2);
    assert_non_null(p);
    assert_int_equal(p->id, 2);
    assert_int_equal(p->hwm, 0);
    assert_int_equal(p->log_start, 0);
}

static void test_create_errors(void **state)
{
    struct ub *u = *state;
    struct topic_cfg_change c;
    ub_topic(u, "dup", 1);
    assert_int_equal(create(u, "dup", 1, NULL, 0, false, NULL), KERR_TOPIC_ALREADY_EXISTS);
    assert_int_equal(create(u, "a b", 1, NULL, 0, false, NULL), KERR_INVALID_TOPIC);
    assert_int_equal(create(u, "p0", 0, NULL, 0, false, NULL), KERR_INVALID_PARTITIONS);
    assert_int_equal(create(u, "p0", -1, NULL, 0, false, NULL), KERR_INVALID_PARTITIONS);
    assert_int_equal(create(u, "p0", 100001, NULL, 0, false, NULL), KERR_INVALID_PARTITIONS);
    c = kv("no.such.key", "1");
    assert_int_equal(create(u, "p0", 1, &c, 1, false, NULL), KERR_INVALID_CONFIG);
    assert_non_null(strstr(msg, "no.such.key"));
    c = kv("retention.ms", "abc");
    assert_int_equal(create(u, "p0", 1, &c, 1, false, NULL), KERR_INVALID_CONFIG);
    c = kv("retention.ms", "-2"); /* below the minimum of -1 */
    assert_int_equal(create(u, "p0", 1, &c, 1, false, NULL), KERR_INVALID_CONFIG);
    c = kv("max.message.bytes", "2147483648"); /* an int config past INT32_MAX */
    assert_int_equal(create(u, "p0", 1, &c, 1, false, NULL), KERR_INVALID_CONFIG);
    c = kv("cleanup.policy", "compact");
    assert_int_equal(create(u, "p0", 1, &c, 1, false, NULL), KERR_INVALID_CONFIG);
    c = kv("storage.mode", "bogus");
    assert_int_equal(create(u, "p0", 1, &c, 1, false, NULL), KERR_INVALID_CONFIG);
    /* tiered needs tiered.s3.uri, which this broker does not have */
    c = kv("storage.mode", "tiered");
    assert_int_equal(create(u, "p0", 1, &c, 1, false, NULL), KERR_INVALID_CONFIG);
    assert_string_equal(msg, "storage.mode tiered is not available: the broker has no tiered.s3.uri");
    assert_null(find(u, "p0"));
    assert_int_equal(topics_count(u->b.topics), 1);
}

/* Config values arrive as views into a request frame with more bytes after them; the
 * refusal message must use only the value's own bytes. */
static void test_create_refusal_message_uses_value_length(void **state)
{
    struct ub *u = *state;
    static const char frame[] = "tieredXYZ";
    struct topic_cfg_change c = {"storage.mode", 12, frame, 6};
    assert_int_equal(create(u, "p0", 1, &c, 1, false, NULL), KERR_INVALID_CONFIG);
    assert_string_equal(msg, "storage.mode tiered is not available: the broker has no tiered.s3.uri");
}

static void test_create_validate_only(void **state)
{
    struct ub *u = *state;
    struct topic *t = NULL;
    struct topic_cfg_change c = kv("retention.ms", "1000");
    assert_int_equal(create(u, "vo", 4, &c, 1, true, &t), KERR_NONE);
    assert_null(t);
    assert_null(find(u, "vo"));
    assert_int_equal(topics_count(u->b.topics), 0);
    c = kv("retention.ms", "x");
    assert_int_equal(create(u, "vo", 4, &c, 1, true, NULL), KERR_INVALID_CONFIG);
    /* and nothing reached the store */
    ub_restart(u);
    assert_int_equal(topics_count(u->b.topics), 0);
}

/* ---- configs */

struct desc {
    int n;
    struct {
        char key[64], value[64];
        bool is_default, read_only;
    } e[32];
};

static void desc_one(void *arg, const char *key, const char *value, bool is_default, bool read_only)
{
    struct desc *d = arg;
    assert_true(d->n < 32);
    snprintf(d->e[d->n].key, sizeof d->e[d->n].key, "%s", key);
    snprintf(d->e[d->n].value, sizeof d->e[d->n].value, "%s", value);
    d->e[d->n].is_default = is_default;
    d->e[d->n].read_only = read_only;
    d->n++;
}

/* Asserts that t describes key with value and default flag. */
static void assert_desc(struct ub *u, struct topic *t, const char *key, const char *value,
                        bool is_default)
{
    struct desc d = {0};
    topic_config_describe(u->b.topics, t, desc_one, &d);
    assert_int_equal(d.n, 14);
    for (int i = 0; i < d.n; i++) {
        if (strcmp(d.e[i].key, key) != 0)
            continue;
        assert_string_equal(d.e[i].value, value);
        assert_int_equal(d.e[i].is_default, is_default);
        assert_int_equal(d.e[i].read_only, strcmp(key, "storage.mode") == 0);
        return;
    }
    fail_msg("config %s not described", key);
}

static int alter(struct ub *u, struct topic *t, const struct topic_cfg_change *ch, int n,
                 bool incremental)
{
    return topic_alter_config(u->b.topics, t, ch, n, incremental, false, msg, sizeof msg);
}

static void test_describe_defaults(void **state)
{
    struct ub *u = *state;
    struct topic *t = ub_topic(u, "d", 1);
    assert_desc(u, t, "retention.ms", "604800000", true);
    assert_desc(u, t, "retention.bytes", "-1", true);
    assert_desc(u, t, "max.message.bytes", "1048588", true);
    assert_desc(u, t, "storage.mode", "persistent", true);
    assert_desc(u, t, "cleanup.policy", "delete", true);
    assert_desc(u, t, "flush.policy", "batch", true);
    assert_desc(u, t, "segment.bytes", "1073741824", true);
    assert_desc(u, t, "compression.type", "producer", true);
}

static void test_alter_incremental(void **state)
{
    struct ub *u = *state;
    struct topic *t = NULL;
    struct topic_cfg_change c[2] = {kv("retention.ms", "1000"), kv("retention.bytes", "5000")};
    assert_int_equal(create(u, "inc", 1, c, 2, false, &t), KERR_NONE);
    assert_int_equal(t->cfg.retention_ms, 1000);
    assert_int_equal(t->cfg.retention_bytes, 5000);
    assert_desc(u, t, "retention.ms", "1000", false);

    c[0] = kv("retention.ms", "2000");
    assert_int_equal(alter(u, t, c, 1, true), KERR_NONE);
    assert_int_equal(t->cfg.retention_ms, 2000);
    assert_int_equal(t->cfg.retention_bytes, 5000); /* untouched */
    assert_desc(u, t, "retention.ms", "2000", false);
    assert_desc(u, t, "retention.bytes", "5000", false);

    c[0] = kv("retention.bytes", NULL); /* reset to default */
    assert_int_equal(alter(u, t, c, 1, true), KERR_NONE);
    assert_int_equal(t->cfg.retention_bytes, -1);
    assert_desc(u, t, "retention.bytes", "-1", true);
    assert_desc(u, t, "retention.ms", "2000", false);

    c[0] = kv("retention.ms", "nope"); /* a bad value changes nothing */
    assert_int_equal(alter(u, t, c, 1, true), KERR_INVALID_CONFIG);
    assert_int_equal(t->cfg.retention_ms, 2000);

    c[0] = kv("retention.ms", "7"); /* validate_only changes nothing */
    assert_int_equal(topic_alter_config(u->b.topics, t, c, 1, true, true, msg, sizeof msg),
                     KERR_NONE);
    assert_int_equal(t->cfg.retention_ms, 2000);
}

static void test_alter_full_replace(void **state)
{
    struct ub *u = *state;
    struct topic *t = NULL;
    struct topic_cfg_change c[2] = {kv("retention.ms", "1000"), kv("flush.policy", "interval")};
    assert_int_equal(create(u, "full", 1, c, 2, false, &t), KERR_NONE);
    assert_true(t->cfg.flush_interval);

    c[0] = kv("max.message.bytes", "2000");
    assert_int_equal(alter(u, t, c, 1, false), KERR_NONE);
    assert_int_equal(t->cfg.max_message_bytes, 2000);
    assert_int_equal(t->cfg.retention_ms, 604800000); /* back to the broker default */
    assert_false(t->cfg.flush_interval);
    assert_desc(u, t, "retention.ms", "604800000", true);
    assert_desc(u, t, "flush.policy", "batch", true);
    assert_desc(u, t, "max.message.bytes", "2000", false);
    assert_int_equal(t->nkv, 1);
}

static void test_storage_mode_is_fixed(void **state)
{
    struct ub *u = *state;
    struct topic *t = NULL;
    struct topic_cfg_change c = kv("storage.mode", "persistent");
    assert_int_equal(create(u, "fixed", 1, &c, 1, false, &t), KERR_NONE);
    assert_desc(u, t, "storage.mode", "persistent", false);

    c = kv("storage.mode", NULL); /* removing it would change it */
    assert_int_equal(alter(u, t, &c, 1, true), KERR_INVALID_CONFIG);
    assert_non_null(strstr(msg, "cannot change"));
    c = kv("storage.mode", "tiered");
    assert_int_equal(alter(u, t, &c, 1, true), KERR_INVALID_CONFIG);
    c = kv("storage.mode", "persistent"); /* naming the current value is fine */
    assert_int_equal(alter(u, t, &c, 1, true), KERR_NONE);

    /* a full replace that does not name it keeps it */
    c = kv("retention.ms", "5");
    assert_int_equal(alter(u, t, &c, 1, false), KERR_NONE);
    assert_desc(u, t, "storage.mode", "persistent", false);
    assert_int_equal(t->cfg.mode, MODE_PERSISTENT);
    assert_int_equal(t->cfg.retention_ms, 5);
}

/* ---- partitions, delete */

static void test_add_partitions(void **state)
{
    struct ub *u = *state;
    struct topic *t = ub_topic(u, "grow", 2);
    assert_int_equal(topic_add_partitions(u->b.topics, t, 2, false, msg, sizeof msg),
                     KERR_INVALID_PARTITIONS);
    assert_int_equal(topic_add_partitions(u->b.topics, t, 1, false, msg, sizeof msg),
                     KERR_INVALID_PARTITIONS);
    assert_int_equal(topic_add_partitions(u->b.topics, t, 100001, false, msg, sizeof msg),
                     KERR_INVALID_PARTITIONS);
    assert_int_equal(topic_add_partitions(u->b.topics, t, 9, true, msg, sizeof msg), KERR_NONE);
    assert_int_equal(t->partitions, 2);
    assert_null(topic_partition(u->b.topics, t, 2));
    assert_int_equal(topic_add_partitions(u->b.topics, t, 5, false, msg, sizeof msg), KERR_NONE);
    assert_int_equal(t->partitions, 5);
    assert_non_null(topic_partition(u->b.topics, t, 4));
    assert_null(topic_partition(u->b.topics, t, 5));
    ub_restart(u);
    assert_int_equal(find(u, "grow")->partitions, 5);
}

static void append_plain(struct ub *u, struct partition *p, int32_t count)
{
    kc_writer w;
    int64_t base;
    kc_writer_init(&w, 0);
    struct ub_batch spec = ub_plain(count);
    ub_batch_put(&w, &spec);
    assert_int_equal(plog_append(u->b.topics, p, w.p, w.len, &base, msg, sizeof msg), KERR_NONE);
    kc_writer_free(&w);
}

static void test_delete_erases_data(void **state)
{
    struct ub *u = *state;
    struct topic *t = ub_topic(u, "del", 2);
    uint8_t old_id[16];
    memcpy(old_id, t->id, 16);
    append_plain(u, ub_part(u, "del", 0), 3);
    append_plain(u, ub_part(u, "del", 1), 2);
    ub_topic(u, "keep", 1);
    append_plain(u, ub_part(u, "keep", 0), 4);

    assert_int_equal(topic_delete(u->b.topics, t), KERR_NONE);
    assert_null(find(u, "del"));
    assert_null(topic_find_id(u->b.topics, old_id));
    assert_int_equal(topics_count(u->b.topics), 1);

    t = ub_topic(u, "del", 2);
    assert_memory_not_equal(t->id, old_id, 16);
    for (int32_t i = 0; i < 2; i++) {
        struct partition *p = ub_part(u, "del", i);
        assert_int_equal(p->hwm, 0);
        assert_int_equal(p->bytes, 0);
    }
    /* no batch is left under the old id */
    uint8_t lo[16], hi[17];
    memcpy(lo, old_id, 16);
    memcpy(hi, old_id, 16);
    hi[16] = 0xff;
    struct store_it *it = store_it_new(u->b.store, STORE_CF_LOG, lo, 16, hi, 17);
    store_it_first(it);
    assert_false(store_it_valid(it));
    store_it_free(it);
    assert_int_equal(ub_part(u, "keep", 0)->hwm, 4); /* other topics keep theirs */

    ub_restart(u);
    assert_int_equal(ub_part(u, "del", 0)->hwm, 0);
    assert_int_equal(ub_part(u, "keep", 0)->hwm, 4);
}

/* ---- restart, listing */

static void test_topics_survive_restart(void **state)
{
    struct ub *u = *state;
    struct topic *t = NULL;
    struct topic_cfg_change c[2] = {kv("retention.ms", "12345"), kv("max.message.bytes", "777")};
    assert_int_equal(create(u, "persist", 7, c, 2, false, &t), KERR_NONE);
    uint8_t id[16];
    memcpy(id, t->id, 16);
    int64_t created = t->created_ms;
    ub_topic(u, "other", 1);

    ub_restart(u);
    assert_int_equal(topics_count(u->b.topics), 2);
    t = find(u, "persist");
    assert_non_null(t);
    assert_ptr_equal(topic_find_id(u->b.topics, id), t);
    assert_int_equal(t->partitions, 7);
    assert_int_equal(t->created_ms, created);
    assert_int_equal(t->cfg.retention_ms, 12345);
    assert_int_equal(t->cfg.max_message_bytes, 777);
    assert_desc(u, t, "retention.ms", "12345", false);
    assert_desc(u, t, "retention.bytes", "-1", true);
    assert_int_equal(t->nkv, 2);
    assert_string_equal(t->kv[0].key, "max.message.bytes"); /* sorted by key */
    assert_string_equal(t->kv[1].key, "retention.ms");
    assert_non_null(find(u, "other"));
}

struct names {
    int n;
    char s[32][16];
};

static void name_one(void *arg, struct topic *t)
{
    struct names *nm = arg;
    assert_true(nm->n < 32);
    snprintf(nm->s[nm->n++], 16, "%s", t->name);
}

/* Lists one page and checks it holds exactly the names first..first+count-1 of "t%02d". */
static void assert_page(struct ub *u, const char *prefix, const char *after, int limit, int first,
                        int count, bool want_more)
{
    struct names nm = {0};
    bool more = !want_more;
    assert_int_equal(topics_list(u->b.topics, prefix, after, limit, name_one, &nm, &more), count);
    assert_int_equal(nm.n, count);
    for (int i = 0; i < count; i++) {
        char want[16];
        snprintf(want, sizeof want, "t%02d", first + i);
        assert_string_equal(nm.s[i], want);
    }
    assert_int_equal(more, want_more);
}

static void test_list_paging(void **state)
{
    struct ub *u = *state;
    char name[16];
    for (int i = 24; i >= 0; i--) {
        snprintf(name, sizeof name, "t%02d", i);
        ub_topic(u, name, 1);
    }
    ub_topic(u, "s-before", 1);
    ub_topic(u, "u-after", 1);

    assert_page(u, "t", NULL, 10, 0, 10, true);
    assert_page(u, "t", "t09", 10, 10, 10, true);
    assert_page(u, "t", "t19", 10, 20, 5, false);
    assert_page(u, "t", "t24", 10, 0, 0, false);
    assert_page(u, "t", "s-before", 3, 0, 3, true); /* after sorts before the prefix */
    assert_page(u, "t1", NULL, 10, 10, 10, false);  /* exactly full, nothing after */
    assert_page(u, "t", "t095", 2, 10, 2, true);    /* after need not be a topic */
    assert_page(u, "t2", NULL, 0, 0, 0, true);

    struct names nm = {0};
    bool more = true;
    assert_int_equal(topics_list(u->b.topics, "", NULL, 100, name_one, &nm, &more), 27);
    assert_false(more);
    assert_string_equal(nm.s[0], "s-before");
    assert_string_equal(nm.s[26], "u-after");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_check),
        cmocka_unit_test_setup_teardown(test_create, ub_setup, ub_teardown),
        cmocka_unit_test_setup_teardown(test_create_errors, ub_setup, ub_teardown),
        cmocka_unit_test_setup_teardown(test_create_refusal_message_uses_value_length, ub_setup,
                                        ub_teardown),
        cmocka_unit_test_setup_teardown(test_create_validate_only, ub_setup, ub_teardown),
        cmocka_unit_test_setup_teardown(test_describe_defaults, ub_setup, ub_teardown),
        cmocka_unit_test_setup_teardown(test_alter_incremental, ub_setup, ub_teardown),
        cmocka_unit_test_setup_teardown(test_alter_full_replace, ub_setup, ub_teardown),
        cmocka_unit_test_setup_teardown(test_storage_mode_is_fixed, ub_setup, ub_teardown),
        cmocka_unit_test_setup_teardown(test_add_partitions, ub_setup, ub_teardown),
        cmocka_unit_test_setup_teardown(test_delete_erases_data, ub_setup, ub_teardown),
        cmocka_unit_test_setup_teardown(test_topics_survive_restart, ub_setup, ub_teardown),
        cmocka_unit_test_setup_teardown(test_list_paging, ub_setup, ub_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
