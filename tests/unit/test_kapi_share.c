/* test_kapi_share.c: the KIP-932 share-group APIs on the wire (kapi_share.c, sgroup.c):
 * request parsing (truncated frames, v0, malformed acknowledgement batches), heartbeat
 * epochs and assignments, share-session epochs, acquired ranges and acknowledgement
 * results, against a real registry and share engine on a scratch RocksDB directory. */
#include "unit_broker.h"

#include "conn.h"
#include "kapi_share.h"
#include "sgroup.h"

static char msg[256];

enum { HB = 76, DESCRIBE = 77, FETCH = 78, ACK = 79 };

struct fx {
    struct ub u;
    struct kslot slot;
    uint8_t tid[16];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    ub_init(&f->u);
    struct broker *b = &f->u.b;
    b->sgroups = sgroups_new(b);
    b->sfetcher = share_fetcher_new(b);
    assert_non_null(b->sgroups);
    assert_non_null(b->sfetcher);
    struct topic *t = ub_topic(&f->u, "t", 1);
    memcpy(f->tid, t->id, 16);
    for (int i = 0; i < 2; i++) { /* offsets 0-4 and 5-9 */
        kc_writer w;
        kc_writer_init(&w, 0);
        struct ub_batch spec = ub_plain(5);
        ub_batch_put(&w, &spec);
        int64_t base;
        assert_int_equal(plog_append(b->topics, ub_part(&f->u, "t", 0), w.p, w.len, &base, msg,
                                     sizeof msg),
                         KERR_NONE);
        kc_writer_free(&w);
    }
    struct share_group *g = share_group_get(b->shares, "g", 1, true);
    assert_non_null(g);
    assert_int_equal(share_group_set(g, "share.auto.offset.reset", 23, "earliest", 8, false, msg,
                                     sizeof msg),
                     0);
    kc_writer_init(&f->slot.w, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    kc_writer_free(&f->slot.w);
    share_fetcher_free(f->u.b.sfetcher);
    sgroups_free(f->u.b.sgroups);
    ub_fini(&f->u);
    free(f);
    return 0;
}

/* Runs handler fn on body at version ver and leaves a reader over the response body. The
 * response is complete even when the handler waits for the fsync (KAPI_DEFER). */
static int call(struct fx *f, kapi_fn *fn, int16_t key, int16_t ver, kc_writer *body,
                kc_reader *out)
{
    struct kreq req = {.b = &f->u.b, .slot = &f->slot, .api_key = key, .api_version = ver,
                       .flexible = true, .frame = body->p, .frame_len = body->len};
    assert_int_equal(body->err, KC_OK);
    kc_reader_init(&req.r, body->p, body->len);
    kc_writer_reset(&f->slot.w);
    int rc = fn(&req, &f->slot.w);
    if (rc == KAPI_DEFER) {
        assert_non_null(f->slot.cancel); /* waiting for the syncer: unhook it */
        f->slot.cancel(&f->slot);
        f->slot.cancel = NULL;
    }
    assert_int_equal(f->slot.w.err, KC_OK);
    kc_reader_init(out, f->slot.w.p, f->slot.w.len);
    return rc;
}

/* ---- ShareGroupHeartbeat ---- */

static void w_hb(kc_writer *w, const char *group, const char *member, int32_t epoch,
                 const char *topic)
{
    kc_writer_init(w, 0);
    kc_w_cstr(w, true, group);
    kc_w_cstr(w, true, member);
    kc_w_i32(w, epoch);
    kc_w_cstr(w, true, NULL); /* RackId */
    if (topic) {
        kc_w_array(w, true, 1);
        kc_w_cstr(w, true, topic);
    } else {
        kc_w_array(w, true, -1);
    }
    kc_w_tags(w, true);
}

struct hb_resp {
    int16_t err;
    kc_str member;
    int32_t epoch;
    int nassign;
    uint8_t tid[16];
    int32_t nparts;
};

static struct hb_resp hb(struct fx *f, int16_t ver, const char *member, int32_t epoch,
                         const char *topic)
{
    kc_writer w;
    kc_reader r;
    struct hb_resp h = {.nassign = -1};
    w_hb(&w, "g", member, epoch, topic);
    assert_int_equal(call(f, kapi_share_group_heartbeat, HB, ver, &w, &r), KAPI_DONE);
    kc_writer_free(&w);
    kc_i32(&r); /* ThrottleTimeMs */
    h.err = kc_i16(&r);
    kc_string(&r, true);
    h.member = kc_string(&r, true);
    h.epoch = kc_i32(&r);
    assert_int_equal(kc_i32(&r), SGROUP_HEARTBEAT_MS);
    if (kc_i8(&r) == 1) {
        h.nassign = kc_array(&r, true, 17);
        for (int i = 0; i < h.nassign; i++) {
            kc_uuid(&r, h.tid);
            h.nparts = kc_array(&r, true, 4);
            for (int32_t p = 0; p < h.nparts; p++)
                assert_int_equal(kc_i32(&r), p);
            kc_skip_tags(&r, true);
        }
        kc_skip_tags(&r, true);
    }
    ub_assert_done(&r, true);
    return h;
}

static void test_heartbeat_epochs(void **state)
{
    struct fx *f = *state;
    struct hb_resp h = hb(f, 1, "m1", 0, "t");
    assert_int_equal(h.err, 0);
    ub_assert_str(h.member, "m1");
    assert_true(h.epoch > 0);
    assert_int_equal(h.nassign, 1);
    assert_memory_equal(h.tid, f->tid, 16);
    assert_int_equal(h.nparts, 1);
    int32_t e = h.epoch;

    h = hb(f, 1, "m1", e, NULL); /* steady: no assignment */
    assert_int_equal(h.err, 0);
    assert_int_equal(h.epoch, e);
    assert_int_equal(h.nassign, -1);
    assert_int_equal(hb(f, 1, "m1", e + 3, NULL).err, SGERR_FENCED_MEMBER_EPOCH);
    assert_int_equal(hb(f, 1, "nobody", 4, NULL).err, 25 /* UNKNOWN_MEMBER_ID */);
    assert_int_equal(hb(f, 1, "m2", 0, NULL).err, KERR_INVALID_REQUEST); /* join w/o topics */

    struct hb_resp h2 = hb(f, 1, "", 0, "t"); /* no member id: the broker makes one */
    assert_int_equal(h2.err, 0);
    assert_true(h2.member.len > 0);

    h = hb(f, 1, "m1", -1, NULL);
    assert_int_equal(h.err, 0);
    assert_int_equal(h.epoch, -1);
    assert_int_equal(hb(f, 1, "m1", e, NULL).err, 25);
    assert_int_equal(hb(f, 0, "m1", 0, "t").err, KERR_UNSUPPORTED_VERSION);
}

static void test_heartbeat_malformed(void **state)
{
    struct fx *f = *state;
    kc_writer w;
    kc_reader r;
    w_hb(&w, "g", "m", 0, "t");
    w.len -= 3; /* truncated */
    assert_int_equal(call(f, kapi_share_group_heartbeat, HB, 1, &w, &r), KAPI_EPARSE);
    kc_writer_free(&w);

    kc_writer_init(&w, 0); /* null GroupId */
    kc_w_cstr(&w, true, NULL);
    kc_w_cstr(&w, true, "m");
    kc_w_i32(&w, 0);
    kc_w_cstr(&w, true, NULL);
    kc_w_array(&w, true, 0);
    kc_w_tags(&w, true);
    assert_int_equal(call(f, kapi_share_group_heartbeat, HB, 1, &w, &r), KAPI_EPARSE);
    kc_writer_free(&w);

    kc_writer_init(&w, 0); /* a topic count far beyond the frame */
    kc_w_cstr(&w, true, "g");
    kc_w_cstr(&w, true, "m");
    kc_w_i32(&w, 0);
    kc_w_cstr(&w, true, NULL);
    kc_w_uvarint(&w, 1000000);
    kc_w_tags(&w, true);
    assert_int_equal(call(f, kapi_share_group_heartbeat, HB, 1, &w, &r), KAPI_EPARSE);
    kc_writer_free(&w);
}

/* ---- ShareFetch / ShareAcknowledge ---- */

struct ack { int64_t first, last; int ntypes; int8_t types[8]; };

static void w_acks(kc_writer *w, const struct ack *a, int n)
{
    kc_w_array(w, true, n);
    for (int i = 0; i < n; i++) {
        kc_w_i64(w, a[i].first);
        kc_w_i64(w, a[i].last);
        kc_w_array(w, true, a[i].ntypes);
        for (int t = 0; t < a[i].ntypes; t++)
            kc_w_i8(w, a[i].types[t]);
        kc_w_tags(w, true);
    }
}

/* Topics[] with one partition (0) of topic id tid, or none when tid is NULL. */
static void w_topic(kc_writer *w, const uint8_t *tid, const struct ack *a, int n)
{
    kc_w_array(w, true, tid ? 1 : 0);
    if (!tid)
        return;
    kc_w_uuid(w, tid);
    kc_w_array(w, true, 1);
    kc_w_i32(w, 0);
    w_acks(w, a, n);
    kc_w_tags(w, true);
    kc_w_tags(w, true);
}

static void w_fetch(kc_writer *w, const char *member, int32_t epoch, const uint8_t *tid,
                    const struct ack *a, int n, int32_t max_records)
{
    kc_writer_init(w, 0);
    kc_w_cstr(w, true, "g");
    kc_w_cstr(w, true, member);
    kc_w_i32(w, epoch);
    kc_w_i32(w, 0);          /* MaxWaitMs: answer at once */
    kc_w_i32(w, 1);          /* MinBytes */
    kc_w_i32(w, 1 << 20);    /* MaxBytes */
    kc_w_i32(w, max_records);
    kc_w_i32(w, max_records); /* BatchSize */
    w_topic(w, tid, a, n);
    kc_w_array(w, true, 0); /* ForgottenTopicsData */
    kc_w_tags(w, true);
}

struct fetch_resp {
    int16_t err;
    int32_t lock_ms;
    int nparts;
    int16_t perr, ack_err;
    int32_t bytes;
    int nacq;
    int64_t first[4], last[4];
    int16_t dc[4];
};

static struct fetch_resp fetch(struct fx *f, const char *member, int32_t epoch,
                               const uint8_t *tid, const struct ack *a, int n, int32_t max_rec)
{
    kc_writer w;
    kc_reader r;
    struct fetch_resp x = {0};
    w_fetch(&w, member, epoch, tid, a, n, max_rec);
    int rc = call(f, kapi_share_fetch, FETCH, 1, &w, &r);
    assert_true(rc == KAPI_DONE || rc == KAPI_DEFER);
    kc_writer_free(&w);
    kc_i32(&r);
    x.err = kc_i16(&r);
    kc_string(&r, true);
    x.lock_ms = kc_i32(&r);
    int32_t nt = kc_array(&r, true, 17);
    for (int32_t i = 0; i < nt; i++) {
        uint8_t id[16];
        kc_uuid(&r, id);
        x.nparts = kc_array(&r, true, 10);
        for (int p = 0; p < x.nparts; p++) {
            assert_int_equal(kc_i32(&r), 0);
            x.perr = kc_i16(&r);
            kc_string(&r, true);
            x.ack_err = kc_i16(&r);
            kc_string(&r, true);
            assert_int_equal(kc_i32(&r), -1);
            assert_int_equal(kc_i32(&r), -1);
            kc_skip_tags(&r, true);
            kc_bytes recs = kc_bytes_field(&r, true);
            assert_true(recs.len >= 0); /* never null: librdkafka refuses null records */
            x.bytes = recs.len;
            x.nacq = kc_array(&r, true, 19);
            for (int k = 0; k < x.nacq; k++) {
                int64_t fo = kc_i64(&r), lo = kc_i64(&r);
                int16_t dc = kc_i16(&r);
                if (k < 4) {
                    x.first[k] = fo;
                    x.last[k] = lo;
                    x.dc[k] = dc;
                }
                kc_skip_tags(&r, true);
            }
            kc_skip_tags(&r, true);
        }
        kc_skip_tags(&r, true);
    }
    assert_int_equal(kc_array(&r, true, 1), 0); /* NodeEndpoints */
    ub_assert_done(&r, true);
    return x;
}

/* ShareAcknowledge; returns the top-level error, *perr the partition's. */
static int16_t ack(struct fx *f, const char *member, int32_t epoch, const struct ack *a, int n,
                   int16_t *perr)
{
    kc_writer w;
    kc_reader r;
    kc_writer_init(&w, 0);
    kc_w_cstr(&w, true, "g");
    kc_w_cstr(&w, true, member);
    kc_w_i32(&w, epoch);
    w_topic(&w, f->tid, a, n);
    kc_w_tags(&w, true);
    call(f, kapi_share_acknowledge, ACK, 1, &w, &r);
    kc_writer_free(&w);
    kc_i32(&r);
    int16_t err = kc_i16(&r);
    kc_string(&r, true);
    int32_t nt = kc_array(&r, true, 17);
    *perr = -100;
    for (int32_t i = 0; i < nt; i++) {
        uint8_t id[16];
        kc_uuid(&r, id);
        assert_int_equal(kc_array(&r, true, 10), 1);
        assert_int_equal(kc_i32(&r), 0);
        *perr = kc_i16(&r);
        kc_string(&r, true);
        kc_i32(&r);
        kc_i32(&r);
        kc_skip_tags(&r, true);
        kc_skip_tags(&r, true);
        kc_skip_tags(&r, true);
    }
    assert_int_equal(kc_array(&r, true, 1), 0);
    ub_assert_done(&r, true);
    return err;
}

static void test_fetch_sessions_and_acks(void **state)
{
    struct fx *f = *state;
    int16_t perr;
    struct ack accept01 = {0, 1, 1, {SHARE_ACK_ACCEPT}};

    assert_int_equal(fetch(f, "m1", 4, f->tid, NULL, 0, 5).err, SERR_SHARE_SESSION_NOT_FOUND);
    assert_int_equal(fetch(f, "m1", 0, f->tid, &accept01, 1, 5).err, KERR_INVALID_REQUEST);
    assert_int_equal(fetch(f, "", 0, f->tid, NULL, 0, 5).err, KERR_INVALID_REQUEST);

    struct fetch_resp x = fetch(f, "m1", 0, f->tid, NULL, 0, 5); /* one batch: 0-4 */
    assert_int_equal(x.err, 0);
    assert_int_equal(x.lock_ms, SHARE_DEFAULT_LOCK_MS);
    assert_int_equal(x.perr, 0);
    assert_int_equal(x.nacq, 1);
    assert_int_equal(x.first[0], 0);
    assert_int_equal(x.last[0], 4);
    assert_int_equal(x.dc[0], 1);
    assert_true(x.bytes > 61);

    assert_int_equal(fetch(f, "m1", 3, NULL, NULL, 0, 5).err, SERR_INVALID_SHARE_SESSION_EPOCH);
    assert_int_equal(ack(f, "m1", 0, &accept01, 1, &perr), SERR_INVALID_SHARE_SESSION_EPOCH);

    /* malformed batches: a type per offset that does not match the range; Renew at v1;
     * ranges out of order */
    struct ack bad_count = {0, 4, 2, {1, 1}};
    assert_int_equal(ack(f, "m1", 1, &bad_count, 1, &perr), 0);
    assert_int_equal(perr, KERR_INVALID_REQUEST);
    struct ack renew = {0, 0, 1, {4}};
    assert_int_equal(ack(f, "m1", 2, &renew, 1, &perr), 0);
    assert_int_equal(perr, KERR_INVALID_REQUEST);
    struct ack order[2] = {{3, 4, 1, {1}}, {0, 1, 1, {1}}};
    assert_int_equal(ack(f, "m1", 3, order, 2, &perr), 0);
    assert_int_equal(perr, KERR_INVALID_REQUEST);

    /* not held: beyond what m1 acquired */
    struct ack far = {7, 8, 1, {SHARE_ACK_ACCEPT}};
    assert_int_equal(ack(f, "m1", 4, &far, 1, &perr), 0);
    assert_int_equal(perr, SERR_INVALID_RECORD_STATE);

    /* accept 0-1, release 2, reject 3-4 in one batch with per-offset types */
    struct ack mix = {0, 4, 5, {1, 1, 2, 3, 3}};
    assert_int_equal(ack(f, "m1", 5, &mix, 1, &perr), 0);
    assert_int_equal(perr, 0);

    /* m2 gets offset 2 again (delivery 2), then the second batch */
    x = fetch(f, "m2", 0, f->tid, NULL, 0, 100);
    assert_int_equal(x.err, 0);
    assert_int_equal(x.nacq, 2);
    assert_int_equal(x.first[0], 2);
    assert_int_equal(x.last[0], 2);
    assert_int_equal(x.dc[0], 2);
    assert_int_equal(x.first[1], 5);
    assert_int_equal(x.last[1], 9);
    assert_int_equal(x.dc[1], 1);

    /* m1 acknowledging m2's records */
    struct ack theirs = {5, 9, 1, {SHARE_ACK_ACCEPT}};
    assert_int_equal(ack(f, "m1", 6, &theirs, 1, &perr), 0);
    assert_int_equal(perr, SERR_INVALID_RECORD_STATE);

    /* m2 closes its session with a final acknowledgement: offset 2 goes back */
    assert_int_equal(ack(f, "m2", -1, &theirs, 1, &perr), 0);
    assert_int_equal(perr, 0);
    assert_int_equal(ack(f, "m2", 1, &theirs, 1, &perr), SERR_SHARE_SESSION_NOT_FOUND);
    x = fetch(f, "m1", 7, NULL, NULL, 0, 100);
    assert_int_equal(x.nacq, 1);
    assert_int_equal(x.first[0], 2);
    assert_int_equal(x.dc[0], 3);
}

static void test_fetch_unknown_topic_and_v0(void **state)
{
    struct fx *f = *state;
    uint8_t nope[16] = {1, 2, 3};
    struct fetch_resp x = fetch(f, "m9", 0, nope, NULL, 0, 5);
    assert_int_equal(x.err, 0);
    assert_int_equal(x.perr, KERR_UNKNOWN_TOPIC_ID);
    assert_int_equal(x.nacq, 0);

    kc_writer w;
    kc_reader r;
    w_fetch(&w, "m9", 0, f->tid, NULL, 0, 5);
    assert_int_equal(call(f, kapi_share_fetch, FETCH, 0, &w, &r), KAPI_DONE);
    kc_i32(&r);
    assert_int_equal(kc_i16(&r), KERR_UNSUPPORTED_VERSION);
    w.len -= 2; /* truncated */
    assert_int_equal(call(f, kapi_share_fetch, FETCH, 1, &w, &r), KAPI_EPARSE);
    kc_writer_free(&w);
}

static void test_describe(void **state)
{
    struct fx *f = *state;
    assert_int_equal(hb(f, 1, "m1", 0, "t").err, 0);
    kc_writer w;
    kc_reader r;
    kc_writer_init(&w, 0);
    kc_w_array(&w, true, 2);
    kc_w_cstr(&w, true, "g");
    kc_w_cstr(&w, true, "missing");
    kc_w_bool(&w, false);
    kc_w_tags(&w, true);
    assert_int_equal(call(f, kapi_share_group_describe, DESCRIBE, 1, &w, &r), KAPI_DONE);
    kc_writer_free(&w);
    kc_i32(&r);
    assert_int_equal(kc_array(&r, true, 1), 2);
    assert_int_equal(kc_i16(&r), 0);
    kc_string(&r, true);
    ub_assert_str(kc_string(&r, true), "g");
    ub_assert_str(kc_string(&r, true), "Stable");
    kc_i32(&r);
    kc_i32(&r);
    ub_assert_str(kc_string(&r, true), "simple");
    assert_int_equal(kc_array(&r, true, 1), 1);
    ub_assert_str(kc_string(&r, true), "m1");
    kc_string(&r, true); /* RackId */
    assert_true(kc_i32(&r) > 0);
    kc_string(&r, true); /* ClientId */
    kc_string(&r, true); /* ClientHost */
    assert_int_equal(kc_array(&r, true, 1), 1);
    ub_assert_str(kc_string(&r, true), "t");
    assert_int_equal(kc_array(&r, true, 1), 1); /* Assignment.TopicPartitions */
    uint8_t id[16];
    kc_uuid(&r, id);
    assert_memory_equal(id, f->tid, 16);
    ub_assert_str(kc_string(&r, true), "t");
    assert_int_equal(kc_array(&r, true, 4), 1);
    assert_int_equal(kc_i32(&r), 0);
    kc_skip_tags(&r, true);
    kc_skip_tags(&r, true);
    kc_skip_tags(&r, true);
    assert_int_equal(kc_i32(&r), INT32_MIN);
    kc_skip_tags(&r, true);
    assert_int_equal(kc_i16(&r), GERR_GROUP_ID_NOT_FOUND);
    kc_string(&r, true);
    ub_assert_str(kc_string(&r, true), "missing");
    ub_assert_str(kc_string(&r, true), "Dead");
    kc_i32(&r);
    kc_i32(&r);
    kc_string(&r, true);
    assert_int_equal(kc_array(&r, true, 1), 0);
    kc_i32(&r);
    kc_skip_tags(&r, true);
    ub_assert_done(&r, true);
}

static void test_group_config(void **state)
{
    struct fx *f = *state;
    struct topic_cfg_change ok[2] = {{"share.record.lock.duration.ms", 29, "2000", 4},
                                     {"share.delivery.count.limit", 26, "3", 1}};
    struct topic_cfg_change bad[2] = {{"share.record.lock.duration.ms", 29, "5000", 4},
                                      {"share.delivery.count.limit", 26, "x", 1}};
    kc_str g = {"g", 1};
    assert_int_equal(kapi_share_group_cfg_alter(&f->u.b, g, ok, 2, false, msg, sizeof msg), 0);
    assert_int_equal(kapi_share_group_cfg_alter(&f->u.b, g, bad, 2, false, msg, sizeof msg),
                     KERR_INVALID_CONFIG);
    const struct share_config *c = share_group_config(share_group_get(f->u.b.shares, "g", 1,
                                                                      false));
    assert_int_equal(c->lock_ms, 2000); /* nothing of the bad request applied */
    assert_int_equal(c->max_deliveries, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_heartbeat_epochs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heartbeat_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_sessions_and_acks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_unknown_topic_and_v0, setup, teardown),
        cmocka_unit_test_setup_teardown(test_describe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_config, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
