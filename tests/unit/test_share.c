/* test_share.c: the share-state engine: acquire/acknowledge, per-offset states inside a
 * batch, lock expiry, the delivery limit archiving a poison record, the in-flight cap,
 * member release, state that survives a broker restart, and logs with gaps (offsets that
 * hold no record) that must never be in flight. */
#include "unit_broker.h"

#include "conn.h"

static char msg[256];

static struct partition *part(struct ub *u)
{
    return ub_part(u, "t", 0);
}

/* Appends `batches` batches of `per` records each to t/0. */
static void produce(struct ub *u, int batches, int per)
{
    for (int i = 0; i < batches; i++) {
        kc_writer w;
        kc_writer_init(&w, 0);
        struct ub_batch spec = ub_plain(per);
        ub_batch_put(&w, &spec);
        int64_t base;
        assert_int_equal(plog_append(u->b.topics, part(u), w.p, w.len, &base, msg, sizeof msg),
                         KERR_NONE);
        kc_writer_free(&w);
    }
}

static int setup(void **state)
{
    ub_setup(state);
    struct ub *u = *state;
    ub_topic(u, "t", 1);
    return 0;
}

static struct share_group *group(struct ub *u, int32_t lock_ms, int32_t max_deliveries,
                                 int32_t max_inflight)
{
    struct share_group *g = share_group_get(u->b.shares, "g", 1, true);
    assert_non_null(g);
    struct share_config c = *share_group_config(g);
    c.lock_ms = lock_ms;
    c.max_deliveries = max_deliveries;
    c.max_inflight = max_inflight;
    c.auto_reset = SHARE_RESET_EARLIEST;
    assert_int_equal(share_group_configure(g, &c, msg, sizeof msg), 0);
    return g;
}

static struct share_part *spart(struct ub *u, struct share_group *g)
{
    struct topic *t = topic_find(u->b.topics, "t", 1);
    assert_non_null(t);
    struct share_part *sp = share_part_get(g, t->id, 0);
    assert_non_null(sp);
    return sp;
}

static struct share_member *mem(struct share_group *g, const char *id)
{
    struct share_member *m = share_member_get(g, id, strlen(id), true);
    assert_non_null(m);
    return m;
}

/* Acquires up to max_records for m; returns how many records, filling *a. */
static int64_t acquire(struct share_part *sp, struct share_member *m, int32_t max_records,
                       struct share_acquired *a)
{
    kc_writer w;
    kc_writer_init(&w, 0);
    *a = (struct share_acquired){0};
    assert_int_equal(share_acquire(sp, m, max_records, 1 << 20, &w, a), KERR_NONE);
    /* every written batch is a whole stored batch with its real base offset */
    for (int i = 0; i < a->nb; i++) {
        struct batch_hdr h;
        assert_int_equal(batch_parse_hdr(w.p + a->b[i].at, a->b[i].len, &h), 0);
        assert_int_equal(h.base_offset, a->b[i].base);
        assert_int_equal(h.base_offset + h.last_offset_delta, a->b[i].last);
    }
    kc_writer_free(&w);
    return a->records;
}

static void test_acquire_ack(void **state)
{
    struct ub *u = *state;
    produce(u, 3, 5);
    struct share_group *g = group(u, 30000, 5, 2000);
    struct share_part *sp = spart(u, g);
    struct share_member *m1 = mem(g, "m1"), *m2 = mem(g, "m2");
    struct share_acquired a;
    assert_int_equal(share_part_start(sp), 0);
    /* batch granularity: asking for 1 record gets the whole first batch */
    assert_int_equal(acquire(sp, m1, 1, &a), 5);
    assert_int_equal(a.nr, 1);
    assert_int_equal(a.r[0].first, 0);
    assert_int_equal(a.r[0].last, 4);
    assert_int_equal(a.r[0].deliveries, 1);
    share_acquired_free(&a);
    assert_int_equal(acquire(sp, m2, 1, &a), 5);
    assert_int_equal(a.r[0].first, 5);
    share_acquired_free(&a);
    /* m2 does not hold 0..4 */
    assert_int_equal(share_acknowledge(sp, m2, 0, 4, SHARE_ACK_ACCEPT), SERR_INVALID_RECORD_STATE);
    assert_int_equal(share_acknowledge(sp, m1, 0, 5, SHARE_ACK_ACCEPT), SERR_INVALID_RECORD_STATE);
    assert_int_equal(share_acknowledge(sp, m1, 0, 4, SHARE_ACK_ACCEPT), KERR_NONE);
    assert_int_equal(share_part_start(sp), 5);
    /* an acknowledged record cannot be acknowledged again */
    assert_int_equal(share_acknowledge(sp, m1, 0, 0, SHARE_ACK_ACCEPT), SERR_INVALID_RECORD_STATE);
    assert_true(share_flush(u->b.shares) > 0);
    assert_int_equal(share_flush(u->b.shares), 0);
    assert_int_equal(share_acknowledge(sp, m2, 5, 9, SHARE_ACK_ACCEPT), KERR_NONE);
    assert_int_equal(acquire(sp, m1, 100, &a), 5);
    share_acquired_free(&a);
    assert_int_equal(acquire(sp, m1, 100, &a), 0); /* nothing left */
    share_acquired_free(&a);
    assert_false(share_part_has_available(sp));
    struct share_stats st;
    share_group_stats(g, &st);
    assert_int_equal(st.inflight, 5);
    assert_int_equal(st.acquired, 5);
    assert_int_equal(st.acked_total, 10);
    assert_int_equal(st.members, 2);
}

/* Per-offset acknowledgement inside one acquired batch. */
static void test_per_offset(void **state)
{
    struct ub *u = *state;
    produce(u, 1, 5);
    struct share_group *g = group(u, 30000, 5, 2000);
    struct share_part *sp = spart(u, g);
    struct share_member *m1 = mem(g, "m1"), *m2 = mem(g, "m2");
    struct share_acquired a;
    assert_int_equal(acquire(sp, m1, 0, &a), 5);
    share_acquired_free(&a);
    assert_int_equal(share_acknowledge(sp, m1, 0, 1, SHARE_ACK_ACCEPT), KERR_NONE);
    assert_int_equal(share_acknowledge(sp, m1, 2, 2, SHARE_ACK_RELEASE), KERR_NONE);
    assert_int_equal(share_acknowledge(sp, m1, 3, 3, SHARE_ACK_REJECT), KERR_NONE);
    assert_int_equal(share_part_start(sp), 2);
    int32_t dc;
    assert_int_equal(share_part_record_state(sp, 2, &dc), SHARE_AVAILABLE);
    assert_int_equal(dc, 1);
    assert_int_equal(share_part_record_state(sp, 3, &dc), SHARE_ARCHIVED);
    assert_int_equal(share_part_record_state(sp, 4, &dc), SHARE_ACQUIRED);
    /* m2 gets only offset 2, in the whole stored batch, as its second delivery */
    assert_int_equal(acquire(sp, m2, 0, &a), 1);
    assert_int_equal(a.nb, 1);
    assert_int_equal(a.b[0].base, 0);
    assert_int_equal(a.r[0].first, 2);
    assert_int_equal(a.r[0].last, 2);
    assert_int_equal(a.r[0].deliveries, 2);
    share_acquired_free(&a);
    int n;
    struct share_range *held = share_part_held(sp, m1, &n);
    assert_int_equal(n, 1);
    assert_int_equal(held[0].first, 4);
    free(held);
    assert_int_equal(share_acknowledge(sp, m2, 2, 2, SHARE_ACK_ACCEPT), KERR_NONE);
    assert_int_equal(share_acknowledge(sp, m1, 4, 4, SHARE_ACK_ACCEPT), KERR_NONE);
    assert_int_equal(share_part_start(sp), 5);
    struct share_stats st;
    share_group_stats(g, &st);
    assert_int_equal(st.inflight, 0);
    assert_int_equal(st.redeliveries_total, 1);
    assert_int_equal(st.archived_total, 1);
}

static void test_lock_expiry(void **state)
{
    struct ub *u = *state;
    produce(u, 2, 3);
    struct share_group *g = group(u, 1000, 5, 2000);
    struct share_part *sp = spart(u, g);
    struct share_member *m1 = mem(g, "m1"), *m2 = mem(g, "m2");
    struct share_acquired a;
    assert_int_equal(acquire(sp, m1, 1, &a), 3);
    share_acquired_free(&a);
    int64_t now = ev_now_us();
    assert_int_equal(share_part_expire(sp, now), 0); /* not yet */
    assert_int_equal(share_part_expire(sp, now + 2000000), 3);
    assert_int_equal(share_member_inflight(m1), 0);
    /* the late acknowledgement is refused; m2 gets the records again */
    assert_int_equal(share_acknowledge(sp, m1, 0, 2, SHARE_ACK_ACCEPT), SERR_INVALID_RECORD_STATE);
    assert_int_equal(acquire(sp, m2, 100, &a), 6);
    assert_int_equal(a.nr, 2);
    assert_int_equal(a.r[0].deliveries, 2);
    assert_int_equal(a.r[1].deliveries, 1);
    share_acquired_free(&a);
    struct share_stats st;
    share_group_stats(g, &st);
    assert_int_equal(st.expired_total, 3);
    assert_int_equal(st.redeliveries_total, 3);
}

static void stop_loop(struct ev_loop *l, void *arg)
{
    ev_stop(arg);
}

/* The lock timer itself runs expiry (the real loop runs until it has). */
static void test_lock_timer(void **state)
{
    struct ub *u = *state;
    produce(u, 1, 2);
    struct share_group *g = group(u, 1000, 5, 2000);
    struct share_part *sp = spart(u, g);
    struct share_member *m1 = mem(g, "m1");
    struct share_acquired a;
    assert_int_equal(acquire(sp, m1, 1, &a), 2);
    share_acquired_free(&a);
    share_flush(u->b.shares);
    struct ev_timer stop;
    ev_timer_init(&stop, stop_loop, u->b.loop);
    ev_timer_start(u->b.loop, &stop, 1300 * 1000);
    ev_run(u->b.loop); /* the lock timer fires at 1 s, our stop at 1.3 s */
    assert_int_equal(share_member_inflight(m1), 0);
}

/* A record that keeps failing is archived at the delivery limit; the partition goes on. */
static void test_poison(void **state)
{
    struct ub *u = *state;
    produce(u, 1, 1); /* offset 0: the poison record */
    produce(u, 1, 4); /* offsets 1..4 */
    struct share_group *g = group(u, 30000, 3, 2000);
    struct share_part *sp = spart(u, g);
    struct share_member *m = mem(g, "m");
    struct share_acquired a;
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(acquire(sp, m, 1, &a), 1);
        assert_int_equal(a.r[0].first, 0);
        assert_int_equal(a.r[0].deliveries, i);
        share_acquired_free(&a);
        assert_int_equal(share_acknowledge(sp, m, 0, 0, SHARE_ACK_RELEASE), KERR_NONE);
    }
    int32_t dc;
    assert_int_equal(share_part_record_state(sp, 0, &dc), SHARE_ACKED); /* below spso */
    assert_int_equal(share_part_start(sp), 1);
    assert_int_equal(acquire(sp, m, 1, &a), 4);
    assert_int_equal(a.r[0].first, 1);
    share_acquired_free(&a);
    struct share_stats st;
    share_group_stats(g, &st);
    assert_int_equal(st.archived_total, 1);
}

/* Expiry at the limit archives as well (a consumer that crashes on the record). */
static void test_poison_expiry(void **state)
{
    struct ub *u = *state;
    produce(u, 2, 1);
    struct share_group *g = group(u, 1000, 2, 2000);
    struct share_part *sp = spart(u, g);
    struct share_member *m = mem(g, "m");
    struct share_acquired a;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(acquire(sp, m, 1, &a), 1);
        assert_int_equal(a.r[0].first, 0);
        share_acquired_free(&a);
        assert_int_equal(share_part_expire(sp, ev_now_us() + 5000000), 1);
    }
    assert_int_equal(share_part_start(sp), 1);
    assert_int_equal(acquire(sp, m, 1, &a), 1);
    assert_int_equal(a.r[0].first, 1);
    share_acquired_free(&a);
}

static void test_inflight_cap(void **state)
{
    struct ub *u = *state;
    produce(u, 5, 5);
    struct share_group *g = group(u, 30000, 5, 10);
    struct share_part *sp = spart(u, g);
    struct share_member *m1 = mem(g, "m1"), *m2 = mem(g, "m2");
    struct share_acquired a;
    assert_int_equal(acquire(sp, m1, 0, &a), 10);
    share_acquired_free(&a);
    assert_int_equal(acquire(sp, m2, 0, &a), 0);
    share_acquired_free(&a);
    assert_false(share_part_has_available(sp));
    /* acknowledging the front makes room */
    assert_int_equal(share_acknowledge(sp, m1, 0, 4, SHARE_ACK_ACCEPT), KERR_NONE);
    assert_true(share_part_has_available(sp));
    assert_int_equal(acquire(sp, m2, 0, &a), 5);
    assert_int_equal(a.r[0].first, 10);
    share_acquired_free(&a);
    /* a stuck front record keeps the window full even when later ones are acknowledged */
    assert_int_equal(share_acknowledge(sp, m2, 10, 14, SHARE_ACK_ACCEPT), KERR_NONE);
    assert_int_equal(acquire(sp, m2, 0, &a), 0);
    share_acquired_free(&a);
}

static void test_release_member(void **state)
{
    struct ub *u = *state;
    produce(u, 4, 2);
    struct share_group *g = group(u, 30000, 5, 2000);
    struct share_part *sp = spart(u, g);
    struct share_member *m1 = mem(g, "m1"), *m2 = mem(g, "m2");
    struct share_acquired a;
    assert_int_equal(acquire(sp, m1, 4, &a), 4);
    share_acquired_free(&a);
    assert_int_equal(acquire(sp, m2, 2, &a), 2);
    share_acquired_free(&a);
    assert_int_equal(share_member_release(m1), 4);
    assert_int_equal(share_member_inflight(m1), 0);
    assert_int_equal(share_member_inflight(m2), 2);
    assert_int_equal(acquire(sp, m2, 100, &a), 6); /* 0..3 again and 6..7 new */
    assert_int_equal(a.nr, 2);
    assert_int_equal(a.r[0].first, 0);
    assert_int_equal(a.r[0].last, 3);
    assert_int_equal(a.r[0].deliveries, 2);
    assert_int_equal(a.r[1].first, 6);
    share_acquired_free(&a);
    assert_int_equal(share_member_leave(m2), 8);
    assert_null(share_member_get(g, "m2", 2, false));
    /* settle: only what the member holds changes */
    struct share_member *m3 = mem(g, "m3");
    assert_int_equal(acquire(sp, m3, 2, &a), 2);
    share_acquired_free(&a);
    assert_int_equal(share_settle(sp, m3, 0, 100, SHARE_ACK_ACCEPT), 2);
}

/* What is acknowledged stays so across a restart; acquired records come back available
 * with their delivery counts; group configs survive. */
static void test_restart(void **state)
{
    struct ub *u = *state;
    produce(u, 3, 4);
    struct share_group *g = group(u, 20000, 4, 1000);
    struct share_part *sp = spart(u, g);
    struct share_member *m = mem(g, "m");
    struct share_acquired a;
    assert_int_equal(acquire(sp, m, 8, &a), 8);
    share_acquired_free(&a);
    assert_int_equal(share_acknowledge(sp, m, 0, 2, SHARE_ACK_ACCEPT), KERR_NONE);
    assert_int_equal(share_acknowledge(sp, m, 3, 3, SHARE_ACK_RELEASE), KERR_NONE);
    assert_int_equal(share_acknowledge(sp, m, 5, 5, SHARE_ACK_REJECT), KERR_NONE);
    assert_true(share_flush(u->b.shares) > 0);
    ub_restart(u);
    g = share_group_get(u->b.shares, "g", 1, false);
    assert_non_null(g);
    assert_int_equal(share_group_config(g)->lock_ms, 20000);
    assert_int_equal(share_group_config(g)->max_deliveries, 4);
    assert_int_equal(share_group_config(g)->max_inflight, 1000);
    sp = spart(u, g);
    assert_int_equal(share_part_start(sp), 3);
    assert_int_equal(share_part_next(sp), 8);
    int32_t dc;
    assert_int_equal(share_part_record_state(sp, 3, &dc), SHARE_AVAILABLE);
    assert_int_equal(dc, 1);
    assert_int_equal(share_part_record_state(sp, 4, &dc), SHARE_AVAILABLE); /* was acquired */
    assert_int_equal(dc, 1);
    assert_int_equal(share_part_record_state(sp, 5, &dc), SHARE_ARCHIVED);
    m = mem(g, "m");
    assert_int_equal(acquire(sp, m, 100, &a), 8); /* 3,4,6,7 again, 8..11 new */
    assert_int_equal(a.nr, 3);
    assert_int_equal(a.r[0].first, 3);
    assert_int_equal(a.r[0].last, 4);
    assert_int_equal(a.r[0].deliveries, 2);
    assert_int_equal(a.r[1].first, 6);
    assert_int_equal(a.r[1].last, 7);
    assert_int_equal(a.r[2].first, 8);
    assert_int_equal(a.r[2].last, 11);
    assert_int_equal(a.r[2].deliveries, 1);
    assert_int_equal(a.nb, 3); /* stored batches 0..3, 4..7 (once for two ranges), 8..11 */
    share_acquired_free(&a);
    /* a second restart with everything acknowledged */
    assert_int_equal(share_acknowledge(sp, m, 3, 4, SHARE_ACK_ACCEPT), KERR_NONE);
    assert_int_equal(share_acknowledge(sp, m, 6, 11, SHARE_ACK_ACCEPT), KERR_NONE);
    share_flush(u->b.shares);
    ub_restart(u);
    g = share_group_get(u->b.shares, "g", 1, false);
    sp = spart(u, g);
    assert_int_equal(share_part_start(sp), 12);
    m = mem(g, "m");
    assert_int_equal(acquire(sp, m, 100, &a), 0);
    share_acquired_free(&a);
}

/* Latest (the KIP-932 default) starts at the end; the retention-moved log start is
 * followed; bad configs are refused. */
static void test_reset_and_config(void **state)
{
    struct ub *u = *state;
    produce(u, 2, 2);
    struct share_group *g = share_group_get(u->b.shares, "late", 4, true);
    struct topic *t = topic_find(u->b.topics, "t", 1);
    struct share_part *sp = share_part_get(g, t->id, 0);
    assert_non_null(sp);
    assert_int_equal(share_part_start(sp), 4);
    assert_null(share_part_get(g, t->id, 1)); /* no such partition */
    assert_int_equal(
        share_group_set(g, "share.delivery.count.limit", 26, "1", 1, false, msg, sizeof msg), -1);
    assert_int_equal(
        share_group_set(g, "share.delivery.count.limit", 26, "x", 1, false, msg, sizeof msg), -1);
    assert_int_equal(share_group_set(g, "nope", 4, "1", 1, false, msg, sizeof msg), -1);
    assert_int_equal(
        share_group_set(g, "share.auto.offset.reset", 23, "earliest", 8, false, msg, sizeof msg),
        0);
    assert_int_equal(share_group_config(g)->auto_reset, SHARE_RESET_EARLIEST);
    assert_int_equal(
        share_group_set(g, "share.record.lock.duration.ms", 29, "15000", 5, false, msg, sizeof msg),
        0);
    assert_int_equal(share_group_config(g)->lock_ms, 15000);
    /* retention moved the log start past the window: the engine follows */
    struct share_group *g2 = group(u, 30000, 5, 2000);
    struct share_part *sp2 = spart(u, g2);
    assert_int_equal(share_part_start(sp2), 0);
    assert_int_equal(plog_truncate_before(u->b.topics, part(u), 2), KERR_NONE);
    struct share_member *m = mem(g2, "m");
    struct share_acquired a;
    assert_int_equal(acquire(sp2, m, 100, &a), 2);
    assert_int_equal(a.r[0].first, 2);
    share_acquired_free(&a);
    assert_int_equal(share_group_delete(g), 0);
    assert_null(share_group_get(u->b.shares, "late", 4, false));
    ub_restart(u);
    assert_null(share_group_get(u->b.shares, "late", 4, false));
    assert_non_null(share_group_get(u->b.shares, "g", 1, false));
}

/* share_return hands prefetched records back with their acquisition's count undone. */
static void test_return(void **state)
{
    struct ub *u = *state;
    produce(u, 2, 3);
    struct share_group *g = group(u, 30000, 2, 2000);
    struct share_part *sp = spart(u, g);
    struct share_member *m = mem(g, "m");
    struct share_acquired a;
    for (int i = 0; i < 5; i++) { /* far past the limit of 2: nothing is archived */
        assert_int_equal(acquire(sp, m, 0, &a), 6);
        assert_int_equal(a.r[0].deliveries, 1);
        share_acquired_free(&a);
        assert_int_equal(share_return(sp, m, 0, 5), 6);
    }
    struct share_stats st;
    share_group_stats(g, &st);
    assert_int_equal(st.archived_total, 0);
    assert_int_equal(st.redeliveries_total, 24); /* handed out again, though uncounted */
}

/* ---- gaps ---- */

enum { OBJ = 1 << 24 }; /* a dataset object's offset range */

/* Stores a batch at base with records at the given offset deltas, claiming offsets up to
 * base + last_delta (as a compacted batch or a dataset object's last batch does), and moves
 * the high watermark past it. Such batches come from the broker itself, not from produce. */
static void put_sparse(struct ub *u, const char *topic, int64_t base, const int32_t *deltas,
                       int n, int32_t last_delta)
{
    struct partition *p = ub_part(u, topic, 0);
    kc_writer w;
    kc_writer_init(&w, 0);
    struct batch_enc e;
    batch_enc_begin(&e, &w, base, 1000);
    for (int i = 0; i < n; i++) {
        struct batch_piece v = {"rec", 3};
        struct batch_record r = {.value = &v, .nvalue = 1, .timestamp = 1000};
        assert_int_equal(batch_enc_add(&e, &r, deltas[i]), 0);
    }
    assert_true(batch_enc_end(&e, last_delta) > 0);
    uint8_t k[STORE_LOG_KEY_LEN];
    store_log_key(k, p->topic->id, p->id, base);
    assert_int_equal(store_put(u->b.store, STORE_CF_LOG, k, sizeof k, w.p, w.len), 0);
    p->hwm = base + last_delta + 1;
    p->bytes += (int64_t)w.len;
    kc_writer_free(&w);
}

/* Three "objects": one record; three records; records at 0, 3 and 7 (holes inside). */
static void put_objects(struct ub *u, const char *topic)
{
    static const int32_t one[] = {0}, three[] = {0, 1, 2}, holes[] = {0, 3, 7};
    put_sparse(u, topic, 0, one, 1, OBJ - 1);
    put_sparse(u, topic, OBJ, three, 3, OBJ - 1);
    put_sparse(u, topic, 2 * OBJ, holes, 3, OBJ - 1);
}

static int64_t inflight(struct share_group *g)
{
    struct share_stats st;
    share_group_stats(g, &st);
    return st.inflight;
}

/* Gaps are not records: not acquired, not in flight, not counted against the cap, not in
 * the acquired ranges; acknowledging over them is fine; all of that across a restart. */
static void test_gaps(void **state)
{
    struct ub *u = *state;
    put_objects(u, "t");
    struct share_group *g = group(u, 30000, 5, 4);
    struct share_part *sp = spart(u, g);
    struct share_member *m1 = mem(g, "m1"), *m2 = mem(g, "m2");
    struct share_acquired a;
    /* the cap of 4 records takes the first two objects, whatever offsets they span */
    assert_int_equal(acquire(sp, m1, 0, &a), 4);
    assert_int_equal(a.nr, 2);
    assert_int_equal(a.r[0].first, 0);
    assert_int_equal(a.r[0].last, 0);
    assert_int_equal(a.r[1].first, OBJ);
    assert_int_equal(a.r[1].last, OBJ + 2);
    share_acquired_free(&a);
    assert_int_equal(inflight(g), 4);
    assert_int_equal(share_member_inflight(m1), 4);
    assert_int_equal(share_part_next(sp), 2 * OBJ);
    assert_int_equal(acquire(sp, m2, 0, &a), 0); /* at the cap */
    share_acquired_free(&a);
    assert_false(share_part_has_available(sp));
    int32_t dc;
    assert_int_equal(share_part_record_state(sp, 1, &dc), SHARE_ARCHIVED); /* a gap */
    assert_int_equal(share_part_record_state(sp, OBJ + 1, &dc), SHARE_ACQUIRED);
    /* one acknowledgement over records and gaps alike */
    assert_int_equal(share_acknowledge(sp, m1, 0, OBJ + 2, SHARE_ACK_ACCEPT), KERR_NONE);
    assert_int_equal(inflight(g), 0);
    assert_int_equal(share_part_start(sp), 2 * OBJ);
    assert_true(share_part_has_available(sp));
    /* the third object: a gap splits the ranges */
    assert_int_equal(acquire(sp, m2, 0, &a), 3);
    assert_int_equal(a.nr, 3);
    assert_int_equal(a.r[1].first, 2 * OBJ + 3);
    assert_int_equal(a.r[2].last, 2 * OBJ + 7);
    share_acquired_free(&a);
    assert_int_equal(share_part_next(sp), 3 * OBJ);
    assert_int_equal(share_part_record_state(sp, 2 * OBJ + 1, &dc), SHARE_ARCHIVED);
    /* a GAP acknowledgement of offsets without records changes nothing */
    assert_int_equal(share_acknowledge(sp, m2, 2 * OBJ + 1, 2 * OBJ + 2, SHARE_ACK_GAP),
                     KERR_NONE);
    assert_int_equal(inflight(g), 3);
    /* released records come back alone, with their delivery counts */
    assert_int_equal(share_member_release(m2), 3);
    assert_int_equal(acquire(sp, m1, 0, &a), 3);
    assert_int_equal(a.nr, 3);
    assert_int_equal(a.r[0].deliveries, 2);
    share_acquired_free(&a);
    assert_int_equal(share_acknowledge(sp, m1, 2 * OBJ, 2 * OBJ + 3, SHARE_ACK_ACCEPT), KERR_NONE);
    assert_true(share_flush(u->b.shares) > 0);
    /* after a restart only the one record left is in flight */
    ub_restart(u);
    g = share_group_get(u->b.shares, "g", 1, false);
    assert_non_null(g);
    sp = spart(u, g);
    assert_int_equal(inflight(g), 1);
    assert_int_equal(share_part_start(sp), 2 * OBJ + 7);
    m1 = mem(g, "m1");
    assert_int_equal(acquire(sp, m1, 0, &a), 1);
    assert_int_equal(a.r[0].first, 2 * OBJ + 7);
    share_acquired_free(&a);
    assert_int_equal(share_acknowledge(sp, m1, 2 * OBJ + 7, 2 * OBJ + 7, SHARE_ACK_ACCEPT),
                     KERR_NONE);
    assert_int_equal(inflight(g), 0);
    assert_int_equal(share_part_start(sp), 3 * OBJ);
    assert_false(share_part_has_available(sp));
}

/* ---- shared views ---- */

static struct topic *view_topic(struct ub *u, const char *name)
{
    struct topic_cfg_change c[] = {
        {"shared.virtual.partitions", 25, "4", 1},
        {"shared.max.unacked", 18, "10", 2},
        {"shared.max.deliveries", 21, "3", 1},
    };
    struct topic *t = NULL;
    assert_int_equal(
        topic_create(u->b.topics, name, strlen(name), 1, c, 3, false, &t, msg, sizeof msg),
        KERR_NONE);
    assert_int_equal(share_view_setup(&u->b, t, msg, sizeof msg), 0);
    return t;
}

static void produce_to(struct ub *u, const char *topic, int batches, int per)
{
    for (int i = 0; i < batches; i++) {
        kc_writer w;
        kc_writer_init(&w, 0);
        struct ub_batch spec = ub_plain(per);
        ub_batch_put(&w, &spec);
        int64_t base;
        assert_int_equal(
            plog_append(u->b.topics, ub_part(u, topic, 0), w.p, w.len, &base, msg, sizeof msg),
            KERR_NONE);
        kc_writer_free(&w);
    }
}

/* Reads vp at offset for connection conn; returns the base offsets of the batches. */
static int vread(struct ub *u, struct sview *v, uint64_t conn, int32_t vp, int64_t offset,
                 int64_t *bases, int64_t *hwm)
{
    struct conn c = {.b = &u->b, .id = conn};
    kc_writer w;
    kc_writer_init(&w, 0);
    int64_t copied, start;
    kc_str cid = {"client", 6};
    assert_int_equal(share_view_read(v, &c, cid, vp, offset, 1 << 20, &w, &copied, hwm, &start),
                     KERR_NONE);
    int n = 0;
    for (size_t at = 0; at < w.len;) {
        struct batch_hdr h;
        assert_int_equal(batch_parse_hdr(w.p + at, w.len - at, &h), 0);
        bases[n++] = h.base_offset;
        at += (size_t)batch_size(w.p + at, w.len - at);
    }
    kc_writer_free(&w);
    return n;
}

static void test_view(void **state)
{
    struct ub *u = *state;
    struct topic *t = view_topic(u, "vt");
    produce_to(u, "vt", 6, 5); /* real offsets 0..29 in batches of 5 */
    struct sview *v = share_view_find(&u->b, "vt.shared", 9);
    assert_non_null(v);
    assert_int_equal(share_view_partitions(v), 4);
    assert_null(share_view_find(&u->b, "t.shared", 8)); /* no shared config */
    uint8_t vid[16];
    memcpy(vid, t->id, 16);
    vid[0] ^= 0x80;
    assert_ptr_equal(share_view_find_id(&u->b, vid), v);
    int64_t bases[16], hwm;
    /* v0 takes two batches (its cap is 10 records), renumbered 0 and 5 */
    assert_int_equal(vread(u, v, 1, 0, 0, bases, &hwm), 2);
    assert_int_equal(bases[0], 0);
    assert_int_equal(bases[1], 5);
    assert_int_equal(hwm, 10);
    assert_int_equal(vread(u, v, 1, 0, 10, bases, &hwm), 0); /* at its cap: nothing */
    /* v1 gets the next batches, in its own offset space */
    assert_int_equal(vread(u, v, 2, 1, 0, bases, &hwm), 2);
    assert_int_equal(bases[0], 0);
    /* committing 7 on v0 acknowledges real 0..6; 7..9 stay with v0 */
    share_view_committed(&u->b, "g", "vt.shared", 9, 0, 7);
    struct share_group *g = share_group_get(u->b.shares, "vt.shared", 9, false);
    assert_non_null(g);
    struct share_part *sp = share_part_find(g, t->id, 0);
    assert_non_null(sp);
    assert_int_equal(share_part_start(sp), 7);
    int64_t lo;
    assert_int_equal(share_view_list_offset(v, 0, -1, &lo), KERR_NONE);
    assert_int_equal(lo, 10);
    /* v0 changes owner (the old connection is gone: no server here): the new one starts at
     * 7; 7 counts as a delivery, 8 and 9 do not */
    /* (the cap is per batch: 3 records, then 5, then 5 more while under 10) */
    assert_int_equal(vread(u, v, 3, 0, 7, bases, &hwm), 3);
    assert_int_equal(bases[0], 7 - 2); /* the batch 5..9 again: 5 and 6 fall below 7 */
    int32_t dc;
    assert_int_equal(share_part_record_state(sp, 7, &dc), SHARE_ACQUIRED);
    assert_int_equal(dc, 2);
    assert_int_equal(share_part_record_state(sp, 8, &dc), SHARE_ACQUIRED);
    assert_int_equal(dc, 1);
    /* the next batches v0 got this time go on from where the first ended */
    assert_int_equal(bases[1], 10);
    assert_int_equal(bases[2], 15);
    /* releasing by client id gives everything v0 and v1 hold back */
    assert_true(share_view_release_member(&u->b, g, "client") > 0);
    struct share_stats st;
    share_group_stats(g, &st);
    assert_int_equal(st.acquired, 0);
    /* commits for the view check partitions against V */
    assert_int_equal(share_view_end_offset(&u->b, "vt.shared", 0), 20);
    assert_int_equal(share_view_end_offset(&u->b, "vt.shared", 9), -1);
    /* without the shared config the view is gone */
    struct topic_cfg_change off = {"shared.virtual.partitions", 25, NULL, 0};
    assert_int_equal(topic_alter_config(u->b.topics, t, &off, 1, true, false, msg, sizeof msg),
                     KERR_NONE);
    assert_null(share_view_find(&u->b, "vt.shared", 9));
}

/* After a restart a view continues from the offset its consumers fetch at, and what was
 * acknowledged stays acknowledged. */
static void test_view_restart(void **state)
{
    struct ub *u = *state;
    view_topic(u, "vr");
    produce_to(u, "vr", 4, 5);
    struct sview *v = share_view_find(&u->b, "vr.shared", 9);
    int64_t bases[16], hwm;
    assert_int_equal(vread(u, v, 1, 2, 0, bases, &hwm), 2);
    share_view_committed(&u->b, "g", "vr.shared", 9, 2, 10);
    ub_restart(u);
    v = share_view_find(&u->b, "vr.shared", 9);
    assert_non_null(v);
    assert_int_equal(vread(u, v, 1, 2, 10, bases, &hwm), 2);
    assert_int_equal(bases[0], 10);
    assert_int_equal(hwm, 20);
    assert_int_equal(vread(u, v, 1, 2, 20, bases, &hwm), 0); /* everything handed out */
}

/* A view over a log with gaps: the gaps take no room of a virtual partition's cap, and a
 * commit after the last record settles everything. */
static void test_view_gaps(void **state)
{
    struct ub *u = *state;
    struct topic *t = view_topic(u, "vg");
    put_objects(u, "vg");
    struct sview *v = share_view_find(&u->b, "vg.shared", 9);
    assert_non_null(v);
    int64_t bases[16], hwm;
    /* 7 records under a cap of 10: all three objects at once, numbered by their spans */
    assert_int_equal(vread(u, v, 1, 0, 0, bases, &hwm), 3);
    assert_int_equal(bases[0], 0);
    assert_int_equal(bases[1], OBJ);
    assert_int_equal(bases[2], 2 * OBJ);
    assert_int_equal(hwm, 3 * OBJ);
    struct share_group *g = share_group_get(u->b.shares, "vg.shared", 9, false);
    assert_non_null(g);
    assert_int_equal(inflight(g), 7);
    /* a consumer commits the offset after the last record it saw */
    share_view_committed(&u->b, "g", "vg.shared", 9, 0, 2 * OBJ + 8);
    assert_int_equal(inflight(g), 0);
    struct share_part *sp = share_part_find(g, t->id, 0);
    assert_non_null(sp);
    assert_int_equal(share_part_start(sp), 3 * OBJ);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, ub_teardown)
    const struct CMUnitTest tests[] = {
        T(test_acquire_ack),      T(test_per_offset),     T(test_lock_expiry),
        T(test_lock_timer),       T(test_poison),         T(test_poison_expiry),
        T(test_inflight_cap),     T(test_release_member), T(test_restart),
        T(test_reset_and_config), T(test_return),         T(test_view),
        T(test_view_restart),     T(test_gaps),           T(test_view_gaps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
