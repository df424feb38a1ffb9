/* test_plog.c: persistent partition logs on a scratch broker. Batches are built here
 * with real CRCs; appends, reads, idempotent producers, time lookups and truncation are
 * checked by exact offsets, and every piece of state is checked again after a restart. */
#include "unit_broker.h"

static char msg[256];

/* A fixture with one topic "t" of two partitions. */
static int setup(void **state)
{
    ub_setup(state);
    ub_topic(*state, "t", 2);
    return 0;
}

static struct partition *part(struct ub *u)
{
    return ub_part(u, "t", 0);
}

/* Appends the batches in w (consumed) and returns the Kafka error; *base gets the offset. */
static int append_w(struct ub *u, kc_writer *w, int64_t *base)
{
    int64_t b = -99;
    int rc = plog_append(u->b.topics, part(u), w->p, w->len, &b, msg, sizeof msg);
    if (base)
        *base = b;
    kc_writer_free(w);
    return rc;
}

/* Appends one batch built from spec; returns the Kafka error. */
static int append(struct ub *u, struct ub_batch spec, int64_t *base)
{
    kc_writer w;
    kc_writer_init(&w, 0);
    ub_batch_put(&w, &spec);
    return append_w(u, &w, base);
}

/* Appends one batch built from spec and asserts it landed at want_base. */
static void append_ok(struct ub *u, struct ub_batch spec, int64_t want_base)
{
    int64_t base;
    int rc = append(u, spec, &base);
    if (rc != KERR_NONE)
        fail_msg("append: %d %s", rc, msg);
    assert_int_equal(base, want_base);
}

/* Asserts the partition's hwm, log start and byte count. */
static void assert_state(struct ub *u, int64_t hwm, int64_t log_start, int64_t bytes)
{
    struct partition *p = part(u);
    assert_int_equal(p->hwm, hwm);
    assert_int_equal(p->log_start, log_start);
    assert_int_equal(p->bytes, bytes);
}

/* The batches one read returns: count, and each one's base offset and record count. */
struct got {
    int n;
    int64_t bytes;
    int64_t base[16];
    int32_t count[16];
};

static int read_log(struct ub *u, int64_t offset, int64_t max, bool one, struct got *g)
{
    kc_writer w;
    kc_writer_init(&w, 0);
    memset(g, 0, sizeof *g);
    int rc = plog_read(u->b.topics, part(u), offset, max, one, &w, &g->bytes);
    assert_int_equal(g->bytes, (int64_t)w.len);
    for (size_t off = 0; off < w.len; g->n++) {
        int64_t sz = batch_size(w.p + off, w.len - off);
        struct batch_hdr h;
        assert_true(sz > 0 && g->n < 16);
        assert_int_equal(batch_validate(w.p + off, (size_t)sz, &h), BATCH_OK);
        g->base[g->n] = h.base_offset;
        g->count[g->n] = h.count;
        assert_int_equal(h.leader_epoch, 0);
        off += (size_t)sz;
    }
    kc_writer_free(&w);
    return rc;
}

/* Asserts a full read from offset returns batches starting at the given bases. */
static void assert_read(struct ub *u, int64_t offset, int64_t max, bool one, int n,
                        const int64_t *bases)
{
    struct got g;
    assert_int_equal(read_log(u, offset, max, one, &g), KERR_NONE);
    assert_int_equal(g.n, n);
    for (int i = 0; i < n; i++)
        assert_int_equal(g.base[i], bases[i]);
}

static size_t spec_bytes(struct ub_batch spec)
{
    kc_writer w;
    kc_writer_init(&w, 0);
    size_t n = ub_batch_put(&w, &spec);
    kc_writer_free(&w);
    return n;
}

/* ---- append and read */

static void test_append_assigns_offsets(void **state)
{
    struct ub *u = *state;
    kc_writer w;
    size_t sz3 = spec_bytes(ub_plain(3)), sz1 = spec_bytes(ub_plain(1));
    size_t sz2 = spec_bytes(ub_plain(2));
    struct ub_batch b2 = ub_plain(2), b1 = ub_plain(1);

    append_ok(u, ub_plain(3), 0);
    kc_writer_init(&w, 0); /* two batches in one request */
    ub_batch_put(&w, &b1);
    ub_batch_put(&w, &b2);
    int64_t base;
    assert_int_equal(append_w(u, &w, &base), KERR_NONE);
    assert_int_equal(base, 3);
    append_ok(u, ub_plain(2), 6);
    assert_state(u, 8, 0, (int64_t)(sz3 + sz1 + 2 * sz2));
    assert_int_equal(part(u)->appends, 3);
    assert_int_equal(ub_part(u, "t", 1)->hwm, 0); /* the other partition is untouched */

    struct got g;
    assert_int_equal(read_log(u, 0, 1 << 20, true, &g), KERR_NONE);
    assert_int_equal(g.n, 4);
    static const int64_t bases[] = {0, 3, 4, 6};
    static const int32_t counts[] = {3, 1, 2, 2};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(g.base[i], bases[i]); /* baseOffset rewritten in the stored batch */
        assert_int_equal(g.count[i], counts[i]);
    }
}

static void test_read_positions(void **state)
{
    struct ub *u = *state;
    for (int i = 0; i < 3; i++)
        append_ok(u, ub_plain(3), 3 * i);
    static const int64_t all[] = {0, 3, 6};
    int64_t one = (int64_t)spec_bytes(ub_plain(3));

    assert_read(u, 0, 1 << 20, true, 3, all);
    assert_read(u, 4, 1 << 20, true, 2, all + 1); /* mid-batch: the whole containing one */
    assert_read(u, 5, 1 << 20, true, 2, all + 1);
    assert_read(u, 8, 1 << 20, true, 1, all + 2);
    assert_read(u, 3, one, false, 1, all + 1);         /* exactly one fits */
    assert_read(u, 3, 2 * one - 1, false, 1, all + 1); /* the second does not */
    assert_read(u, 3, 2 * one, false, 2, all + 1);
    assert_read(u, 3, 1, true, 1, all + 1); /* KIP-74: at least one batch */
    assert_read(u, 3, 0, true, 1, all + 1);
    assert_read(u, 3, 1, false, 0, NULL); /* without it: nothing */

    struct got g;
    assert_int_equal(read_log(u, 9, 1 << 20, true, &g), KERR_NONE); /* at hwm: empty */
    assert_int_equal(g.bytes, 0);
    assert_int_equal(read_log(u, 10, 1 << 20, true, &g), KERR_OFFSET_OUT_OF_RANGE);
    assert_int_equal(read_log(u, -1, 1 << 20, true, &g), KERR_OFFSET_OUT_OF_RANGE);
    assert_int_equal(g.bytes, 0);
}

/* ---- rejected appends */

/* Appends spec after damage() changed it; asserts the error and that nothing landed. */
static void assert_rejected(struct ub *u, struct ub_batch spec, void (*damage)(uint8_t *, size_t),
                            int want)
{
    struct partition *p = part(u);
    int64_t hwm = p->hwm, bytes = p->bytes;
    kc_writer w;
    kc_writer_init(&w, 0);
    size_t sz = ub_batch_put(&w, &spec);
    damage(w.p, sz);
    assert_int_equal(append_w(u, &w, NULL), want);
    assert_int_equal(p->hwm, hwm);
    assert_int_equal(p->bytes, bytes);
    ub_restart(u); /* and nothing reached the store */
    assert_state(u, hwm, 0, bytes);
}

static void no_damage(uint8_t *p, size_t len)
{
    (void)p, (void)len;
}
static void bad_crc(uint8_t *p, size_t len)
{
    p[len - 2] ^= 0x55;
}
static void magic_1(uint8_t *p, size_t len)
{
    (void)len, p[BATCH_OFF_MAGIC] = 1;
}
static void truncated(uint8_t *p, size_t len)
{
    kc_put_be32(p + BATCH_OFF_LENGTH, (uint32_t)len); /* 12 bytes past the end */
}
static void count_plus_one(uint8_t *p, size_t len)
{
    kc_put_be32(p + BATCH_OFF_COUNT, kc_get_be32(p + BATCH_OFF_COUNT) + 1);
    ub_batch_fix_crc(p, len);
}
static void transactional(uint8_t *p, size_t len)
{
    p[BATCH_OFF_ATTRIBUTES + 1] |= BATCH_ATTR_TRANSACTIONAL;
    ub_batch_fix_crc(p, len);
}

static void test_rejections_append_nothing(void **state)
{
    struct ub *u = *state;
    append_ok(u, ub_plain(2), 0);
    assert_rejected(u, ub_plain(3), bad_crc, KERR_CORRUPT_MESSAGE);
    assert_rejected(u, ub_plain(3), magic_1, KERR_UNSUPPORTED_FOR_MESSAGE_FORMAT);
    assert_rejected(u, ub_plain(3), truncated, KERR_CORRUPT_MESSAGE);
    assert_rejected(u, ub_plain(3), count_plus_one, KERR_INVALID_RECORD);
    assert_rejected(u, ub_plain(3), transactional, KERR_UNSUPPORTED_FOR_MESSAGE_FORMAT);
    assert_int_equal(append_w(u, &(kc_writer){0}, NULL), KERR_CORRUPT_MESSAGE); /* empty */
}

static void test_message_too_large(void **state)
{
    struct ub *u = *state;
    struct topic *t = topic_find(u->b.topics, "t", 1);
    struct ub_batch big = ub_plain(1);
    big.value_len = 200;
    size_t sz = spec_bytes(big);
    char v[16];
    snprintf(v, sizeof v, "%zu", sz - 1);
    struct topic_cfg_change c = {"max.message.bytes", 17, v, strlen(v)};
    assert_int_equal(topic_alter_config(u->b.topics, t, &c, 1, true, false, msg, sizeof msg),
                     KERR_NONE);
    assert_rejected(u, big, no_damage, KERR_MESSAGE_TOO_LARGE);
    snprintf(v, sizeof v, "%zu", sz); /* exactly the limit is fine */
    c.value_len = strlen(v);
    t = topic_find(u->b.topics, "t", 1);
    assert_int_equal(topic_alter_config(u->b.topics, t, &c, 1, true, false, msg, sizeof msg),
                     KERR_NONE);
    append_ok(u, big, 0);
}

/* One good and one bad batch in a request: neither lands. */
static void test_mixed_request_is_atomic(void **state)
{
    struct ub *u = *state;
    struct ub_batch good = ub_plain(2);
    kc_writer w;
    kc_writer_init(&w, 0);
    ub_batch_put(&w, &good);
    size_t at = w.len, sz = ub_batch_put(&w, &good);
    bad_crc(w.p + at, sz);
    assert_int_equal(append_w(u, &w, NULL), KERR_CORRUPT_MESSAGE);
    assert_state(u, 0, 0, 0);
    struct got g;
    assert_int_equal(read_log(u, 0, 1 << 20, true, &g), KERR_NONE);
    assert_int_equal(g.n, 0);
}

/* ---- idempotent producers */

static void test_idempotent_sequences(void **state)
{
    struct ub *u = *state;
    int64_t base;
    append_ok(u, ub_idem(7, 0, 0, 2), 0);
    int64_t hwm = part(u)->hwm;
    append_ok(u, ub_idem(7, 0, 0, 2), 0); /* a retry: answered with the first offset */
    assert_int_equal(part(u)->hwm, hwm);
    append_ok(u, ub_idem(7, 0, 2, 1), 2);
    assert_int_equal(append(u, ub_idem(7, 0, 5, 1), &base), KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_int_equal(append(u, ub_idem(8, 0, 3, 1), &base), KERR_UNKNOWN_PRODUCER_ID); /* no state: lost */
    append_ok(u, ub_idem(7, 1, 0, 1), 3); /* a new epoch starts over at 0 */
    assert_int_equal(append(u, ub_idem(7, 0, 3, 1), &base), KERR_INVALID_PRODUCER_EPOCH);
    assert_int_equal(append(u, ub_idem(7, 2, 1, 1), &base), KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    append_ok(u, ub_idem(7, 1, 1, 1), 4);
    append_ok(u, ub_plain(1), 5); /* non-idempotent batches are never deduplicated */
    append_ok(u, ub_plain(1), 6);
    assert_int_equal(part(u)->hwm, 7);
}

/* Kafka keeps a producer's last five batches: a retry of any of them is a duplicate,
 * a retry of an older one is out of order. */
static void test_idempotent_window_of_five(void **state)
{
    struct ub *u = *state;
    int64_t base;
    for (int32_t seq = 0; seq < 5; seq++)
        append_ok(u, ub_idem(7, 0, seq, 1), seq);
    append_ok(u, ub_idem(7, 0, 0, 1), 0); /* the oldest of five */
    append_ok(u, ub_idem(7, 0, 3, 1), 3);
    append_ok(u, ub_idem(7, 0, 5, 1), 5); /* pushes seq 0 out */
    append_ok(u, ub_idem(7, 0, 1, 1), 1);
    assert_int_equal(append(u, ub_idem(7, 0, 0, 1), &base), KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    /* same first sequence, different length: not the same batch */
    assert_int_equal(append(u, ub_idem(7, 0, 5, 2), &base), KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_int_equal(part(u)->hwm, 6);
}

/* A request of a retried batch and a new one: the new one lands, the answer is the
 * retried batch's offset. */
static void test_idempotent_retry_with_new_batch(void **state)
{
    struct ub *u = *state;
    struct ub_batch first = ub_idem(7, 0, 0, 2), second = ub_idem(7, 0, 2, 3);
    append_ok(u, first, 0);
    kc_writer w;
    kc_writer_init(&w, 0);
    ub_batch_put(&w, &first);
    ub_batch_put(&w, &second);
    int64_t base;
    assert_int_equal(append_w(u, &w, &base), KERR_NONE);
    assert_int_equal(base, 0);
    assert_int_equal(part(u)->hwm, 5);
}

static void test_producer_state_survives_restart(void **state)
{
    struct ub *u = *state;
    int64_t base;
    append_ok(u, ub_idem(7, 0, 0, 2), 0);
    append_ok(u, ub_idem(7, 0, 2, 2), 2);
    ub_restart(u);
    append_ok(u, ub_idem(7, 0, 2, 2), 2); /* still a duplicate */
    assert_int_equal(part(u)->hwm, 4);
    assert_int_equal(append(u, ub_idem(7, 0, 9, 1), &base), KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_int_equal(append(u, ub_idem(7, -1, 4, 1), &base), KERR_INVALID_PRODUCER_EPOCH);
    append_ok(u, ub_idem(7, 0, 4, 1), 4);
}

/* Another producer's rejected batch must not shrink this producer's window of recent
 * batches: a retry of its older in-flight batch is still a duplicate. */
static void test_rejection_keeps_other_producers_window(void **state)
{
    struct ub *u = *state;
    int64_t base;
    append_ok(u, ub_idem(7, 0, 0, 1), 0);
    append_ok(u, ub_idem(7, 0, 1, 1), 1);
    assert_int_equal(append(u, ub_idem(8, 0, 5, 1), &base), KERR_UNKNOWN_PRODUCER_ID);
    assert_int_equal(append(u, ub_idem(7, 0, 0, 1), &base), KERR_NONE);
    assert_int_equal(base, 0);
    assert_int_equal(part(u)->hwm, 2);
}

/* ---- time index, truncation */

static void test_offset_for_time(void **state)
{
    struct ub *u = *state;
    int64_t ts = -5;
    struct partition *p = part(u);
    struct ub_batch timed = {3, 1000, 1000, -1, -1, -1, 10}; /* 1000, 2000, 3000 */
    append_ok(u, timed, 0);
    assert_int_equal(plog_offset_for_time(u->b.topics, p, 2500, &ts), 2);
    assert_int_equal(ts, 3000);
    assert_int_equal(plog_offset_for_time(u->b.topics, p, 2000, &ts), 1);
    assert_int_equal(ts, 2000);
    assert_int_equal(plog_offset_for_time(u->b.topics, p, 0, &ts), 0);
    assert_int_equal(ts, 1000);
    assert_int_equal(plog_offset_for_time(u->b.topics, p, 4000, &ts), -1);
    timed.first_ts = 4000; /* a later batch: 4000, 5000, 6000 */
    append_ok(u, timed, 3);
    assert_int_equal(plog_offset_for_time(u->b.topics, p, 4000, &ts), 3);
    assert_int_equal(plog_offset_for_time(u->b.topics, p, 3001, &ts), 3);
    assert_int_equal(ts, 4000);
    assert_int_equal(plog_offset_for_time(u->b.topics, p, 5500, &ts), 5);
    /* an answer below the log start becomes the log start */
    assert_int_equal(plog_truncate_before(u->b.topics, p, 2), KERR_NONE);
    assert_int_equal(plog_offset_for_time(u->b.topics, p, 0, &ts), 2);
}

static void test_truncate_before(void **state)
{
    struct ub *u = *state;
    struct got g;
    int64_t sz = (int64_t)spec_bytes(ub_plain(3));
    for (int i = 0; i < 3; i++)
        append_ok(u, ub_plain(3), 3 * i);
    struct partition *p = part(u);
    assert_int_equal(plog_truncate_before(u->b.topics, p, 10), KERR_OFFSET_OUT_OF_RANGE);
    assert_int_equal(plog_truncate_before(u->b.topics, p, -2), KERR_OFFSET_OUT_OF_RANGE);
    assert_int_equal(plog_truncate_before(u->b.topics, p, 4), KERR_NONE); /* mid-batch */
    assert_state(u, 9, 4, 2 * sz);
    assert_int_equal(read_log(u, 3, 1 << 20, true, &g), KERR_OFFSET_OUT_OF_RANGE);
    static const int64_t rest[] = {3, 6};
    assert_read(u, 4, 1 << 20, true, 2, rest); /* the batch holding 4 is still there */
    assert_int_equal(plog_truncate_before(u->b.topics, p, 2), KERR_NONE); /* never backward */
    assert_state(u, 9, 4, 2 * sz);

    ub_restart(u);
    assert_state(u, 9, 4, 2 * sz);
    assert_int_equal(read_log(u, 3, 1 << 20, true, &g), KERR_OFFSET_OUT_OF_RANGE);
    assert_read(u, 4, 1 << 20, true, 2, rest);

    assert_int_equal(plog_truncate_before(u->b.topics, part(u), -1), KERR_NONE); /* to hwm */
    assert_state(u, 9, 9, 0);
    assert_read(u, 9, 1 << 20, true, 0, NULL);
    ub_restart(u);
    assert_state(u, 9, 9, 0);
    append_ok(u, ub_plain(1), 9); /* the log carries on from its end */
}

static void test_state_survives_restart(void **state)
{
    struct ub *u = *state;
    append_ok(u, ub_plain(5), 0);
    append_ok(u, ub_plain(2), 5);
    int64_t bytes = part(u)->bytes;
    ub_restart(u);
    assert_state(u, 7, 0, bytes);
    static const int64_t bases[] = {0, 5};
    assert_read(u, 0, 1 << 20, true, 2, bases);
    append_ok(u, ub_plain(1), 7);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, ub_teardown)
    const struct CMUnitTest tests[] = {
        T(test_append_assigns_offsets),
        T(test_read_positions),
        T(test_rejections_append_nothing),
        T(test_message_too_large),
        T(test_mixed_request_is_atomic),
        T(test_idempotent_sequences),
        T(test_idempotent_window_of_five),
        T(test_idempotent_retry_with_new_batch),
        T(test_producer_state_survives_restart),
        T(test_rejection_keeps_other_producers_window),
        T(test_offset_for_time),
        T(test_truncate_before),
        T(test_state_survives_restart),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
