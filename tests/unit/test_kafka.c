/* test_kafka.c: whole request frames through kafka_handle() on a scratch broker, as a
 * connection would hand them over. Requests are built with the codec writer, and every
 * response is decoded field by field to its last byte, so a field written at the wrong
 * version shows up as a wrong value or as leftover bytes. Truncated frames are fed in
 * buffers of their exact size, so the sanitizer build sees any read past the end. */
#include "unit_broker.h"

#include "conn.h"

enum { K_PRODUCE = 0, K_FETCH = 1, K_LIST_OFFSETS = 2, K_METADATA = 3, K_API_VERSIONS = 18 };

struct kf {
    struct ub u;
    struct conn c;
    struct kslot s;
};

static int setup(void **state)
{
    struct kf *f = calloc(1, sizeof *f);
    assert_non_null(f);
    ub_init(&f->u);
    f->c.fd = -1;
    f->c.b = &f->u.b;
    snprintf(f->c.peer, sizeof f->c.peer, "unit-test:1");
    f->s.conn = &f->c;
    kc_writer_init(&f->s.w, 0);
    ub_topic(&f->u, "t", 2);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct kf *f = *state;
    if (f->s.cancel)
        f->s.cancel(&f->s);
    kc_writer_free(&f->s.w);
    ub_fini(&f->u);
    free(f);
    return 0;
}

/* ---- framing */

static int32_t next_corr = 1000;

/* Starts a request: header v1, or v2 (with tags) when flex. */
static void req_begin(kc_writer *w, int16_t key, int16_t ver, bool flex)
{
    kc_writer_init(w, 0);
    kc_w_i16(w, key);
    kc_w_i16(w, ver);
    kc_w_i32(w, next_corr++);
    kc_w_cstr(w, false, "unit");
    kc_w_tags(w, flex);
}

/* Handles the first len bytes of req as one frame, in a buffer of exactly that size.
 * When answered, leaves body after the response header (tags when flex_hdr). */
static int call_n(struct kf *f, const kc_writer *req, size_t len, bool flex_hdr, kc_reader *body)
{
    uint8_t *frame = malloc(len ? len : 1);
    assert_non_null(frame);
    assert_int_equal(req->err, KC_OK);
    memcpy(frame, req->p, len);
    kc_writer_reset(&f->s.w);
    f->s.cancel = NULL;
    f->s.owner = NULL;
    int rc = kafka_handle(&f->u.b, &f->c, &f->s, frame, len);
    free(frame);
    if (rc != KAPI_DONE)
        return rc;
    kc_reader_init(body, f->s.w.p, f->s.w.len);
    assert_int_equal(kc_i32(body), 0); /* the size slot, filled when the slot completes */
    assert_int_equal(kc_i32(body), (int32_t)kc_get_be32(req->p + 4));
    kc_skip_tags(body, flex_hdr);
    assert_true(kc_ok(body));
    return rc;
}

/* Handles the whole of req (consumed). */
static int call(struct kf *f, kc_writer *req, bool flex_hdr, kc_reader *body)
{
    int rc = call_n(f, req, req->len, flex_hdr, body);
    kc_writer_free(req);
    return rc;
}

/* Log levels around frames that are refused on purpose: one warning each. */
static int saved_level;
static void quiet(void)
{
    saved_level = log_min_level;
    log_min_level = LOG_ERROR;
}
static void loud(void)
{
    log_min_level = saved_level;
}

/* Feeds every strict prefix of req (consumed) as a frame: each must be refused as
 * malformed, except the last tail_ok ones, which only lack fields the handler does not
 * read and may be answered. */
static void assert_prefixes(struct kf *f, kc_writer *req, size_t tail_ok)
{
    quiet();
    for (size_t n = 0; n < req->len; n++) {
        kc_reader body;
        int rc = call_n(f, req, n, false, &body);
        if (rc == KAPI_DONE && n + tail_ok >= req->len)
            continue;
        if (rc != KAPI_EPARSE)
            fail_msg("prefix of %zu of %zu bytes: rc %d", n, req->len, rc);
    }
    loud();
    kc_writer_free(req);
}

/* ---- ApiVersions */

static const struct {
    int16_t key, max;
} served[] = {{0, 9},  {1, 13}, {2, 6},  {3, 12}, {18, 3}, {19, 7}, {20, 6},
              {21, 2}, {22, 4}, {32, 4}, {33, 2}, {37, 3}, {44, 1}, {60, 1}};
#define NSERVED (sizeof served / sizeof served[0])

/* Reads the api_keys array and checks it against served[] and the handler table. */
static void check_api_list(kc_reader *r, bool fx, bool tags)
{
    int32_t n = kc_array(r, fx, 6), found = 0, table = 0, prev = -1;
    for (int k = 0; k < KAPI_MAX_KEY; k++)
        table += kapi_table[k].fn != NULL;
    assert_int_equal(n, table);
    for (int32_t i = 0; i < n; i++) {
        int16_t key = kc_i16(r), min = kc_i16(r), max = kc_i16(r);
        kc_skip_tags(r, tags);
        assert_true(key > prev); /* ascending */
        prev = key;
        assert_int_equal(min, 0);
        for (size_t j = 0; j < NSERVED; j++) {
            if (served[j].key == key) {
                assert_int_equal(max, served[j].max);
                found++;
            }
        }
    }
    assert_int_equal(found, NSERVED);
}

static void api_versions_req(kc_writer *w, int16_t v)
{
    req_begin(w, K_API_VERSIONS, v, v >= 3);
    if (v >= 3) {
        kc_w_cstr(w, true, "sluice-unit");
        kc_w_cstr(w, true, "1.0");
        kc_w_tags(w, true);
    }
}

static void test_api_versions(void **state)
{
    struct kf *f = *state;
    for (int16_t v = 0; v <= 3; v++) {
        kc_writer w;
        kc_reader r;
        bool fx = v >= 3;
        api_versions_req(&w, v);
        assert_int_equal(call(f, &w, false, &r), KAPI_DONE); /* header v0 even at v3 */
        assert_int_equal(kc_i16(&r), KERR_NONE);
        check_api_list(&r, fx, fx);
        if (v >= 1)
            assert_int_equal(kc_i32(&r), 0); /* throttle_time_ms */
        ub_assert_done(&r, fx);
        assert_int_equal(f->s.api_key, K_API_VERSIONS);
    }
}

/* KIP-511: a version the broker does not know gets UNSUPPORTED_VERSION and a v0 body. */
static void test_api_versions_unknown_version(void **state)
{
    struct kf *f = *state;
    kc_writer w;
    kc_reader r;
    req_begin(&w, K_API_VERSIONS, 99, true);
    kc_w_cstr(&w, true, "future-client");
    kc_w_tags(&w, true);
    assert_int_equal(call(f, &w, false, &r), KAPI_DONE);
    assert_int_equal(kc_i16(&r), KERR_UNSUPPORTED_VERSION);
    check_api_list(&r, false, false);
    ub_assert_done(&r, false);
}

static void test_unknown_api_and_version(void **state)
{
    struct kf *f = *state;
    kc_writer w;
    kc_reader r;
    quiet();
    req_begin(&w, 9999, 0, false);
    assert_int_equal(call(f, &w, false, &r), KAPI_EPARSE);
    req_begin(&w, 9, 0, false); /* OffsetFetch: a real key with no handler */
    assert_int_equal(call(f, &w, false, &r), KAPI_EPARSE);
    req_begin(&w, -1, 0, false);
    assert_int_equal(call(f, &w, false, &r), KAPI_EPARSE);
    req_begin(&w, K_METADATA, 13, true); /* past Metadata's max */
    assert_int_equal(call(f, &w, true, &r), KAPI_EPARSE);
    req_begin(&w, K_METADATA, -1, false);
    assert_int_equal(call(f, &w, false, &r), KAPI_EPARSE);
    loud();
}

/* ---- Metadata */

static void metadata_req(kc_writer *w, int16_t v, const char *const *names, int n, bool create)
{
    static const uint8_t zero[16];
    bool fx = v >= 9;
    req_begin(w, K_METADATA, v, fx);
    kc_w_array(w, fx, names ? n : -1);
    for (int i = 0; i < n; i++) {
        if (v >= 10)
            kc_w_uuid(w, zero);
        kc_w_cstr(w, fx, names[i]);
        kc_w_tags(w, fx);
    }
    if (v >= 4)
        kc_w_bool(w, create);
    if (v >= 8 && v <= 10)
        kc_w_bool(w, false);
    if (v >= 8)
        kc_w_bool(w, false);
    kc_w_tags(w, fx);
}

/* Reads the part of a Metadata response before the topics array. */
static void parse_metadata_head(kc_reader *r, int16_t v, bool fx)
{
    if (v >= 3)
        assert_int_equal(kc_i32(r), 0);
    assert_int_equal(kc_array(r, fx, 10), 1); /* brokers */
    assert_int_equal(kc_i32(r), 1);
    ub_assert_str(kc_string(r, fx), "127.0.0.1");
    assert_int_equal(kc_i32(r), 9092);
    if (v >= 1)
        ub_assert_str(kc_string(r, fx), NULL); /* rack */
    kc_skip_tags(r, fx);
    if (v >= 2)
        ub_assert_str(kc_string(r, fx), "unit-cluster");
    if (v >= 1)
        assert_int_equal(kc_i32(r), 1); /* controller_id */
}

/* Reads one topics[] entry and checks it: err, name, id (v10+) and np partitions all
 * led by node 1. */
static void parse_metadata_topic(kc_reader *r, int16_t v, bool fx, int16_t err, const char *name,
                                 const uint8_t *id, int32_t np)
{
    static const uint8_t zero[16];
    uint8_t got[16];
    assert_int_equal(kc_i16(r), err);
    ub_assert_str(kc_string(r, fx), name);
    if (v >= 10) {
        kc_uuid(r, got);
        assert_memory_equal(got, id ? id : zero, 16);
    }
    if (v >= 1)
        assert_false(kc_bool(r));
    assert_int_equal(kc_array(r, fx, 4), np);
    for (int32_t i = 0; i < np; i++) {
        assert_int_equal(kc_i16(r), KERR_NONE);
        assert_int_equal(kc_i32(r), i);
        assert_int_equal(kc_i32(r), 1); /* leader */
        if (v >= 7)
            assert_int_equal(kc_i32(r), 0);
        for (int k = 0; k < 2; k++) { /* replicas, isr */
            assert_int_equal(kc_array(r, fx, 4), 1);
            assert_int_equal(kc_i32(r), 1);
        }
        if (v >= 5)
            assert_int_equal(kc_array(r, fx, 4), 0);
        kc_skip_tags(r, fx);
    }
    if (v >= 8)
        assert_int_equal(kc_i32(r), INT32_MIN);
    kc_skip_tags(r, fx);
}

/* Sends a Metadata request and reads the response up to its topics array; returns
 * the array's count. */
static int32_t metadata(struct kf *f, int16_t v, const char *const *names, int n, bool create,
                        kc_reader *r)
{
    bool fx = v >= 9;
    kc_writer w;
    metadata_req(&w, v, names, n, create);
    assert_int_equal(call(f, &w, fx, r), KAPI_DONE);
    parse_metadata_head(r, v, fx);
    return kc_array(r, fx, 1);
}

static void check_metadata_existing_and_missing(struct kf *f, int16_t v)
{
    static const char *const names[] = {"t", "missing"};
    bool fx = v >= 9;
    kc_reader r;
    struct topic *t = topic_find(f->u.b.topics, "t", 1);
    assert_int_equal(metadata(f, v, names, 2, true, &r), 2);
    parse_metadata_topic(&r, v, fx, KERR_NONE, "t", t->id, 2);
    parse_metadata_topic(&r, v, fx, KERR_UNKNOWN_TOPIC_OR_PARTITION, "missing", NULL, 0);
    if (v >= 8 && v <= 10)
        assert_int_equal(kc_i32(&r), INT32_MIN);
    ub_assert_done(&r, fx);
    assert_null(topic_find(f->u.b.topics, "missing", 7)); /* auto-create is off */
}

static void test_metadata_v1(void **state)
{
    check_metadata_existing_and_missing(*state, 1);
}
static void test_metadata_v12(void **state)
{
    check_metadata_existing_and_missing(*state, 12);
}

/* A null topics array lists every topic. */
static void test_metadata_all_topics(void **state)
{
    struct kf *f = *state;
    kc_reader r;
    assert_int_equal(metadata(f, 1, NULL, 0, false, &r), 1);
    parse_metadata_topic(&r, 1, false, KERR_NONE, "t", NULL, 2);
    ub_assert_done(&r, false);
}

static void test_metadata_auto_create(void **state)
{
    struct kf *f = *state;
    static const char *const names[] = {"auto", "bad/name"};
    kc_reader r;
    f->u.b.cfg.auto_create_topics = true;
    assert_int_equal(metadata(f, 12, names, 2, true, &r), 2);
    struct topic *t = topic_find(f->u.b.topics, "auto", 4);
    assert_non_null(t);
    parse_metadata_topic(&r, 12, true, KERR_NONE, "auto", t->id, 1);
    parse_metadata_topic(&r, 12, true, KERR_INVALID_TOPIC, "bad/name", NULL, 0);
    ub_assert_done(&r, true);
}

static void test_metadata_malformed(void **state)
{
    struct kf *f = *state;
    static const char *const names[] = {"t", "missing"};
    kc_writer w;
    kc_reader r;
    quiet();
    req_begin(&w, K_METADATA, 1, false);
    kc_w_i32(&w, 1000000); /* a count the frame cannot hold */
    kc_w_cstr(&w, false, "t");
    assert_int_equal(call(f, &w, false, &r), KAPI_EPARSE);
    req_begin(&w, K_METADATA, 12, true);
    kc_w_uvarint(&w, 1u << 30);
    assert_int_equal(call(f, &w, true, &r), KAPI_EPARSE);
    loud();
    metadata_req(&w, 12, names, 2, false);
    assert_prefixes(f, &w, 0);
    metadata_req(&w, 1, names, 2, false);
    assert_prefixes(f, &w, 0);
}

/* ---- Produce */

static void produce_req(kc_writer *w, int16_t v, int16_t acks, const char *topic, int32_t part,
                        const kc_writer *recs)
{
    bool fx = v >= 9;
    req_begin(w, K_PRODUCE, v, fx);
    if (v >= 3)
        kc_w_string(w, fx, NULL, -1); /* transactional_id */
    kc_w_i16(w, acks);
    kc_w_i32(w, 5000);
    kc_w_array(w, fx, 1);
    kc_w_cstr(w, fx, topic);
    kc_w_array(w, fx, 1);
    kc_w_i32(w, part);
    kc_w_bytes(w, fx, recs->p, (int32_t)recs->len);
    kc_w_tags(w, fx);
    kc_w_tags(w, fx);
    kc_w_tags(w, fx);
}

struct pres {
    int16_t err;
    int64_t base, log_start;
};

static void parse_produce(kc_reader *r, int16_t v, const char *topic, int32_t part,
                          struct pres *out)
{
    bool fx = v >= 9;
    assert_int_equal(kc_array(r, fx, 1), 1);
    ub_assert_str(kc_string(r, fx), topic);
    assert_int_equal(kc_array(r, fx, 1), 1);
    assert_int_equal(kc_i32(r), part);
    out->err = kc_i16(r);
    out->base = kc_i64(r);
    if (v >= 2)
        assert_int_equal(kc_i64(r), -1); /* log_append_time_ms */
    out->log_start = v >= 5 ? kc_i64(r) : -2;
    if (v >= 8) {
        assert_int_equal(kc_array(r, fx, 1), 0);
        kc_str m = kc_string(r, fx); /* error_message: only with an error */
        if (!out->err)
            assert_int_equal(m.len, -1);
    }
    kc_skip_tags(r, fx);
    kc_skip_tags(r, fx);
    if (v >= 1)
        assert_int_equal(kc_i32(r), 0);
    ub_assert_done(r, fx);
}

/* Produces recs (not consumed) and decodes the answer; returns the handler's result. */
static int produce(struct kf *f, int16_t v, int16_t acks, const char *topic, int32_t part,
                   const kc_writer *recs, struct pres *out)
{
    kc_writer w;
    kc_reader r;
    produce_req(&w, v, acks, topic, part, recs);
    int rc = call(f, &w, v >= 9, &r);
    if (rc == KAPI_DONE)
        parse_produce(&r, v, topic, part, out);
    return rc;
}

/* One batch of count plain records, in a writer the caller frees. */
static kc_writer records(int32_t count)
{
    kc_writer w;
    struct ub_batch spec = ub_plain(count);
    kc_writer_init(&w, 0);
    ub_batch_put(&w, &spec);
    return w;
}

/* Produces count records at acks=1 and asserts they landed at want_base. */
static void produce_ok(struct kf *f, int16_t v, int32_t count, int64_t want_base)
{
    kc_writer recs = records(count);
    struct pres p;
    assert_int_equal(produce(f, v, 1, "t", 0, &recs, &p), KAPI_DONE);
    assert_int_equal(p.err, KERR_NONE);
    assert_int_equal(p.base, want_base);
    if (v >= 5)
        assert_int_equal(p.log_start, 0);
    kc_writer_free(&recs);
}

static void test_produce(void **state)
{
    struct kf *f = *state;
    produce_ok(f, 7, 3, 0);
    produce_ok(f, 3, 2, 3);
    produce_ok(f, 9, 1, 5);
    produce_ok(f, 8, 4, 6);
    assert_int_equal(ub_part(&f->u, "t", 0)->hwm, 10);
    assert_int_equal(f->s.api_key, K_PRODUCE);
}

/* Asserts a produce of one good batch answers err at the partition and appends nothing. */
static void assert_produce_refused(struct kf *f, int16_t v, int16_t acks, const char *topic,
                                   int32_t part, int16_t err)
{
    kc_writer recs = records(2);
    struct pres p;
    int64_t hwm = ub_part(&f->u, "t", 0)->hwm;
    assert_int_equal(produce(f, v, acks, topic, part, &recs, &p), KAPI_DONE);
    assert_int_equal(p.err, err);
    assert_int_equal(p.base, -1);
    assert_int_equal(ub_part(&f->u, "t", 0)->hwm, hwm);
    kc_writer_free(&recs);
}

static void test_produce_refused(void **state)
{
    struct kf *f = *state;
    assert_produce_refused(f, 2, 1, "t", 0, KERR_UNSUPPORTED_VERSION);
    assert_produce_refused(f, 0, 1, "t", 0, KERR_UNSUPPORTED_VERSION);
    assert_produce_refused(f, 7, 1, "nope", 0, KERR_UNKNOWN_TOPIC_OR_PARTITION);
    assert_produce_refused(f, 7, 1, "t", 2, KERR_UNKNOWN_TOPIC_OR_PARTITION);
    assert_produce_refused(f, 9, 1, "t", -1, KERR_UNKNOWN_TOPIC_OR_PARTITION);
    assert_produce_refused(f, 7, 2, "t", 0, KERR_INVALID_REQUIRED_ACKS);

    kc_writer bad = records(2);
    bad.p[bad.len - 1] ^= 1; /* CRC mismatch */
    struct pres p;
    assert_int_equal(produce(f, 8, 1, "t", 0, &bad, &p), KAPI_DONE);
    assert_int_equal(p.err, KERR_CORRUPT_MESSAGE);
    kc_writer_free(&bad);
    assert_int_equal(ub_part(&f->u, "t", 0)->hwm, 0);
}

static void test_produce_acks(void **state)
{
    struct kf *f = *state;
    kc_writer recs = records(2), w;
    kc_reader r;
    struct pres p;
    produce_req(&w, 7, 0, "t", 0, &recs);
    assert_int_equal(call(f, &w, false, &r), KAPI_NORESP);
    assert_int_equal(ub_part(&f->u, "t", 0)->hwm, 2);

    /* acks=all waits for the group-commit fsync: the slot is queued until then */
    produce_req(&w, 7, -1, "t", 0, &recs);
    assert_int_equal(call(f, &w, false, &r), KAPI_DEFER);
    assert_non_null(f->s.cancel);
    assert_non_null(f->s.owner);
    assert_int_equal(ub_part(&f->u, "t", 0)->hwm, 4);
    f->s.cancel(&f->s); /* the connection closed before the fsync */
    f->s.cancel = NULL;

    /* acks=all with nothing appended answers at once */
    assert_int_equal(produce(f, 7, -1, "nope", 0, &recs, &p), KAPI_DONE);
    assert_int_equal(p.err, KERR_UNKNOWN_TOPIC_OR_PARTITION);
    kc_writer_free(&recs);
}

static void test_produce_truncated(void **state)
{
    struct kf *f = *state;
    kc_writer recs = records(3), w;
    produce_req(&w, 7, 1, "t", 0, &recs);
    assert_prefixes(f, &w, 0);
    assert_int_equal(ub_part(&f->u, "t", 0)->hwm, 0);
    produce_req(&w, 9, 1, "t", 0, &recs);
    assert_prefixes(f, &w, 0);
    kc_writer_free(&recs);
}

/* A frame refused as malformed gets no answer and closes the connection, so the client
 * sends it again: it must not have appended anything. */
static void test_produce_malformed_appends_nothing(void **state)
{
    struct kf *f = *state;
    kc_writer recs = records(3), w;
    kc_reader r;
    quiet();
    /* a flexible request cut in its trailing tagged fields */
    produce_req(&w, 9, 1, "t", 0, &recs);
    assert_int_equal(call_n(f, &w, w.len - 1, true, &r), KAPI_EPARSE);
    kc_writer_free(&w);
    /* two topics, the second one's partitions count impossible */
    req_begin(&w, K_PRODUCE, 7, false);
    kc_w_string(&w, false, NULL, -1);
    kc_w_i16(&w, 1);
    kc_w_i32(&w, 5000);
    kc_w_array(&w, false, 2);
    kc_w_cstr(&w, false, "t");
    kc_w_array(&w, false, 1);
    kc_w_i32(&w, 0);
    kc_w_bytes(&w, false, recs.p, (int32_t)recs.len);
    kc_w_cstr(&w, false, "t");
    kc_w_i32(&w, 1000000);
    assert_int_equal(call(f, &w, false, &r), KAPI_EPARSE);
    loud();
    kc_writer_free(&recs);
    assert_int_equal(ub_part(&f->u, "t", 0)->hwm, 0);
}

/* ---- Fetch */

static void fetch_req(kc_writer *w, int16_t v, const char *topic, int32_t part, int64_t offset,
                      int32_t max_wait)
{
    bool fx = v >= 12;
    req_begin(w, K_FETCH, v, fx);
    kc_w_i32(w, -1); /* replica_id */
    kc_w_i32(w, max_wait);
    kc_w_i32(w, 1); /* min_bytes */
    if (v >= 3)
        kc_w_i32(w, 1 << 20);
    if (v >= 4)
        kc_w_i8(w, 0);
    if (v >= 7) {
        kc_w_i32(w, 0);  /* session_id */
        kc_w_i32(w, -1); /* session_epoch */
    }
    kc_w_array(w, fx, 1);
    kc_w_cstr(w, fx, topic);
    kc_w_array(w, fx, 1);
    kc_w_i32(w, part);
    if (v >= 9)
        kc_w_i32(w, -1); /* current_leader_epoch */
    kc_w_i64(w, offset);
    if (v >= 12)
        kc_w_i32(w, -1); /* last_fetched_epoch */
    if (v >= 5)
        kc_w_i64(w, -1); /* log_start_offset */
    kc_w_i32(w, 1 << 20);
    kc_w_tags(w, fx);
    kc_w_tags(w, fx);
    if (v >= 7)
        kc_w_array(w, fx, 0); /* forgotten_topics_data */
    if (v >= 11)
        kc_w_cstr(w, fx, ""); /* rack_id */
    kc_w_tags(w, fx);
}

struct fres {
    int16_t err;
    int64_t hwm, log_start;
    kc_bytes recs;
};

static void parse_fetch(kc_reader *r, int16_t v, const char *topic, int32_t part, struct fres *out)
{
    bool fx = v >= 12;
    if (v >= 1)
        assert_int_equal(kc_i32(r), 0);
    if (v >= 7) {
        assert_int_equal(kc_i16(r), KERR_NONE);
        assert_int_equal(kc_i32(r), 0);
    }
    assert_int_equal(kc_array(r, fx, 1), 1);
    ub_assert_str(kc_string(r, fx), topic);
    assert_int_equal(kc_array(r, fx, 1), 1);
    assert_int_equal(kc_i32(r), part);
    out->err = kc_i16(r);
    out->hwm = kc_i64(r);
    if (v >= 4)
        assert_int_equal(kc_i64(r), out->hwm); /* last_stable_offset */
    out->log_start = v >= 5 ? kc_i64(r) : -2;
    if (v >= 4)
        assert_int_equal(kc_array(r, fx, 1), -1); /* aborted_transactions */
    if (v >= 11)
        assert_int_equal(kc_i32(r), -1);
    out->recs = kc_bytes_field(r, fx);
    kc_skip_tags(r, fx);
    kc_skip_tags(r, fx);
    ub_assert_done(r, fx);
}

static int fetch(struct kf *f, int16_t v, int32_t part, int64_t offset, int32_t max_wait,
                 struct fres *out)
{
    kc_writer w;
    kc_reader r;
    fetch_req(&w, v, "t", part, offset, max_wait);
    int rc = call(f, &w, v >= 12, &r);
    if (rc == KAPI_DONE)
        parse_fetch(&r, v, "t", part, out);
    return rc;
}

/* Asserts recs is exactly batch as stored at base: the client's bytes from the magic
 * byte on, with baseOffset and partitionLeaderEpoch set by the broker. */
static void assert_batch_at(kc_bytes recs, const kc_writer *batch, int64_t base)
{
    assert_int_equal(recs.len, (int32_t)batch->len);
    assert_int_equal((int64_t)kc_get_be64(recs.p), base);
    assert_memory_equal(recs.p + 8, batch->p + 8, 4); /* batchLength */
    assert_int_equal(kc_get_be32(recs.p + BATCH_OFF_LEADER_EPOCH), 0);
    assert_memory_equal(recs.p + BATCH_OFF_MAGIC, batch->p + BATCH_OFF_MAGIC,
                        batch->len - BATCH_OFF_MAGIC);
}

static void check_fetch_returns_batch(struct kf *f, int16_t v)
{
    kc_writer first = records(2), second = records(3);
    struct pres p;
    struct fres r;
    assert_int_equal(produce(f, 7, 1, "t", 1, &first, &p), KAPI_DONE);
    assert_int_equal(produce(f, 7, 1, "t", 1, &second, &p), KAPI_DONE);
    assert_int_equal(p.base, 2);

    assert_int_equal(fetch(f, v, 1, 3, 0, &r), KAPI_DONE);
    assert_int_equal(r.err, KERR_NONE);
    assert_int_equal(r.hwm, 5);
    assert_int_equal(r.log_start, v >= 5 ? 0 : -2);
    assert_batch_at(r.recs, &second, 2);

    assert_int_equal(fetch(f, v, 1, 0, 0, &r), KAPI_DONE); /* from the start: both */
    assert_int_equal(r.recs.len, (int32_t)(first.len + second.len));
    assert_int_equal(fetch(f, v, 1, 5, 0, &r), KAPI_DONE); /* at the end: empty */
    assert_int_equal(r.err, KERR_NONE);
    assert_int_equal(r.recs.len, 0);
    kc_writer_free(&first);
    kc_writer_free(&second);
}

static void test_fetch_v4(void **state)
{
    check_fetch_returns_batch(*state, 4);
}
static void test_fetch_v12(void **state)
{
    check_fetch_returns_batch(*state, 12);
}

/* A partition error is answered in the partition (records null), not by closing. */
static void check_fetch_error(struct kf *f, int16_t v, int32_t part, int64_t offset, int16_t err)
{
    struct fres r;
    assert_int_equal(fetch(f, v, part, offset, 0, &r), KAPI_DONE);
    assert_int_equal(r.err, err);
    assert_int_equal(r.hwm, -1);
    assert_int_equal(r.recs.len, 0); /* empty records, as Kafka sends with an error */
}

static void test_fetch_errors(void **state)
{
    struct kf *f = *state;
    produce_ok(f, 7, 1, 0);
    check_fetch_error(f, 4, 0, 2, KERR_OFFSET_OUT_OF_RANGE);
    check_fetch_error(f, 12, 0, 2, KERR_OFFSET_OUT_OF_RANGE);
    check_fetch_error(f, 12, 0, -1, KERR_OFFSET_OUT_OF_RANGE);
    check_fetch_error(f, 4, 7, 0, KERR_UNKNOWN_TOPIC_OR_PARTITION);
    check_fetch_error(f, 12, 7, 0, KERR_UNKNOWN_TOPIC_OR_PARTITION);
}

static void test_fetch_old_version(void **state)
{
    struct kf *f = *state;
    produce_ok(f, 7, 1, 0);
    check_fetch_error(f, 3, 0, 0, KERR_UNSUPPORTED_VERSION);
}

/* A fetch with nothing to return parks; an append wakes it; a closing connection
 * cancels it. */
static void test_fetch_parks(void **state)
{
    struct kf *f = *state;
    struct fres r;
    struct partition *p = ub_part(&f->u, "t", 0);
    assert_int_equal(fetch(f, 12, 0, 0, 500, &r), KAPI_DEFER);
    assert_non_null(f->s.cancel);
    assert_non_null(p->waiters);
    f->s.cancel(&f->s); /* connection gone */
    f->s.cancel = NULL;
    assert_null(p->waiters);

    assert_int_equal(fetch(f, 4, 0, 0, 500, &r), KAPI_DEFER);
    assert_non_null(p->waiters);
    kc_writer recs = records(1); /* appended directly: the slot is still the fetch's */
    int64_t base;
    char msg[128];
    assert_int_equal(plog_append(f->u.b.topics, p, recs.p, recs.len, &base, msg, sizeof msg),
                     KERR_NONE);
    kc_writer_free(&recs);
    assert_null(p->waiters); /* queued to run again */
    f->s.cancel(&f->s);      /* before the loop gets to it */
    f->s.cancel = NULL;
}

static void test_fetch_truncated(void **state)
{
    struct kf *f = *state;
    kc_writer w;
    produce_ok(f, 7, 2, 0);
    fetch_req(&w, 12, "t", 0, 0, 0);
    assert_prefixes(f, &w, 3); /* forgotten_topics_data, rack_id and tags are not read */
    fetch_req(&w, 4, "t", 0, 0, 0);
    assert_prefixes(f, &w, 0);
}

/* ---- ListOffsets */

static void list_offsets_req(kc_writer *w, const char *topic, int32_t part, int64_t ts)
{
    req_begin(w, K_LIST_OFFSETS, 1, false);
    kc_w_i32(w, -1); /* replica_id */
    kc_w_array(w, false, 1);
    kc_w_cstr(w, false, topic);
    kc_w_array(w, false, 1);
    kc_w_i32(w, part);
    kc_w_i64(w, ts);
}

/* ListOffsets v1 for one partition; returns the error, with the offset in *offset. */
static int16_t list_offset(struct kf *f, const char *topic, int32_t part, int64_t ts,
                           int64_t *offset, int64_t *found_ts)
{
    kc_writer w;
    kc_reader r;
    list_offsets_req(&w, topic, part, ts);
    assert_int_equal(call(f, &w, false, &r), KAPI_DONE);
    assert_int_equal(kc_array(&r, false, 1), 1);
    ub_assert_str(kc_string(&r, false), topic);
    assert_int_equal(kc_array(&r, false, 1), 1);
    assert_int_equal(kc_i32(&r), part);
    int16_t err = kc_i16(&r);
    *found_ts = kc_i64(&r);
    *offset = kc_i64(&r);
    ub_assert_done(&r, false);
    return err;
}

static void test_list_offsets(void **state)
{
    struct kf *f = *state;
    int64_t off, ts;
    assert_int_equal(list_offset(f, "t", 0, -2, &off, &ts), KERR_NONE);
    assert_int_equal(off, 0);
    assert_int_equal(list_offset(f, "t", 0, -1, &off, &ts), KERR_NONE);
    assert_int_equal(off, 0);
    produce_ok(f, 7, 3, 0);
    produce_ok(f, 7, 2, 3);
    assert_int_equal(plog_truncate_before(f->u.b.topics, ub_part(&f->u, "t", 0), 1), KERR_NONE);
    assert_int_equal(list_offset(f, "t", 0, -2, &off, &ts), KERR_NONE); /* earliest */
    assert_int_equal(off, 1);
    assert_int_equal(ts, -1);
    assert_int_equal(list_offset(f, "t", 0, -1, &off, &ts), KERR_NONE); /* latest */
    assert_int_equal(off, 5);
    assert_int_equal(list_offset(f, "t", 0, 1001, &off, &ts), KERR_NONE); /* by time */
    assert_int_equal(off, 1);
    assert_int_equal(ts, 1001);
    assert_int_equal(list_offset(f, "t", 0, 99999, &off, &ts), KERR_NONE);
    assert_int_equal(off, -1);
    assert_int_equal(list_offset(f, "t", 0, -3, &off, &ts), KERR_INVALID_REQUEST);
    assert_int_equal(list_offset(f, "t", 5, -1, &off, &ts), KERR_UNKNOWN_TOPIC_OR_PARTITION);
    assert_int_equal(list_offset(f, "nope", 0, -1, &off, &ts), KERR_UNKNOWN_TOPIC_OR_PARTITION);
    assert_int_equal(off, -1);

    kc_writer w;
    list_offsets_req(&w, "t", 0, -1);
    assert_prefixes(f, &w, 0);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_api_versions),
        T(test_api_versions_unknown_version),
        T(test_unknown_api_and_version),
        T(test_metadata_v1),
        T(test_metadata_v12),
        T(test_metadata_all_topics),
        T(test_metadata_auto_create),
        T(test_metadata_malformed),
        T(test_produce),
        T(test_produce_refused),
        T(test_produce_acks),
        T(test_produce_truncated),
        T(test_produce_malformed_appends_nothing),
        T(test_fetch_v4),
        T(test_fetch_v12),
        T(test_fetch_errors),
        T(test_fetch_old_version),
        T(test_fetch_parks),
        T(test_fetch_truncated),
        T(test_list_offsets),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
