"""test_wire_apis.py: Kafka APIs on the wire, version by version (kwire).

ApiVersions (v0-v3), Produce (old versions refused, bad batches refused without
appending, acks=0, idempotence), Fetch (old versions refused), Metadata (v1, v9, v12
with topic ids, unknown topics), InitProducerId (v0, v4) and CreateTopics errors.
Error codes are checked exactly, and the log is checked not to have moved.
"""

import time

import pytest

import kwire as k
from harness import unique

REQUIRED_APIS = {
    0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 18: "ApiVersions", 19: "CreateTopics",
    20: "DeleteTopics", 21: "DeleteRecords", 22: "InitProducerId", 32: "DescribeConfigs",
    33: "AlterConfigs", 37: "CreatePartitions", 44: "IncrementalAlterConfigs", 60: "DescribeCluster",
}

# Versions this suite sends, so the broker must advertise at least these maxima.
MIN_MAX_VERSION = {0: 9, 1: 4, 2: 2, 3: 12, 18: 3, 19: 7, 22: 4}


def create(broker, partitions=1, prefix="w"):
    name = unique(prefix)
    broker.create_topic(name, partitions=partitions)
    return name


def fetch_values(broker, topic, partition=0, offset=0):
    """All (offset, key, value) in the partition from offset, through Fetch v4."""
    with k.Conn.to(broker) as c:
        r = c.fetch(4, topic, partition, offset, max_wait_ms=0)[(topic, partition)]
    assert r["error_code"] == k.NONE, "Fetch v4: %s" % k.ename(r["error_code"])
    out = []
    for b in k.parse_record_batches(r["records"] or b""):
        assert b["crc_ok"], "broker served a batch with a bad CRC"
        out.extend((off, key, val) for off, key, val, _h, _ts in b["records"])
    return out


# ---- ApiVersions ----------------------------------------------------------------------------


def test_api_versions_v3_flexible_lists_required_apis(broker):
    with k.Conn.to(broker) as c:
        body = k.api_versions_request(3, "sluice-e2e", "0.1.0-test")
        cid = c.send(k.API_VERSIONS, 3, body)
        payload = c.recv_frame()
    # ApiVersions responses always use response header v0: correlation id only.
    assert k.Reader(payload).int32() == cid
    av = k.decode_api_versions(3, payload[4:])
    assert av["error_code"] == k.NONE, k.ename(av["error_code"])
    assert av["trailing"] == 0, "%d trailing bytes after the v3 body" % av["trailing"]
    assert av["throttle_time_ms"] == 0
    apis = av["apis"]
    missing = {key: name for key, name in REQUIRED_APIS.items() if key not in apis}
    assert not missing, "ApiVersions v3 lacks %r" % missing
    keys = [key for key, _lo, _hi in av["api_list"]]
    assert len(keys) == len(set(keys)), "duplicate API keys: %r" % keys
    for key, (lo, hi) in apis.items():
        assert lo == 0, "API %d advertises min version %d (must be 0)" % (key, lo)
        assert hi >= lo, "API %d has max %d < min %d" % (key, hi, lo)
    for key, want in MIN_MAX_VERSION.items():
        assert apis[key][1] >= want, "%s max version %d < %d" % (REQUIRED_APIS[key], apis[key][1], want)
    k.assert_serving(broker, "after ApiVersions v3")


def test_api_versions_all_versions_agree(broker):
    lists = {}
    with k.Conn.to(broker) as c:
        for v in (0, 1, 2, 3):
            av = c.api_versions(v)
            assert av["error_code"] == k.NONE, "v%d: %s" % (v, k.ename(av["error_code"]))
            assert av["trailing"] == 0, "v%d: %d trailing bytes" % (v, av["trailing"])
            if v >= 1:
                assert av["throttle_time_ms"] == 0, "v%d throttle %r" % (v, av["throttle_time_ms"])
            lists[v] = av["apis"]
    for v in (1, 2, 3):
        assert lists[v] == lists[0], "ApiVersions v%d lists differ from v0" % v


# ---- Produce: old versions, bad batches --------------------------------------------------


@pytest.mark.parametrize("version,records", [
    (0, "magic0"), (1, "magic0"), (2, "magic1"), (2, "magic2"),
])
def test_produce_v0_to_v2_rejected_with_unsupported_version(broker, version, records):
    topic = create(broker)
    if records == "magic0":
        data = k.legacy_message_set(b"k", b"old", magic=0)
    elif records == "magic1":
        data = k.legacy_message_set(b"k", b"old", magic=1)
    else:
        data = k.record_batch([(b"k", b"new")])
    with k.Conn.to(broker) as c:
        r = c.produce(version, topic, 0, data, acks=1)
    assert r["error_code"] == k.UNSUPPORTED_VERSION, "Produce v%d (%s): %s" % (
        version, records, k.ename(r["error_code"]))
    assert k.high_watermark(broker, topic) == 0, "Produce v%d appended records" % version
    k.assert_serving(broker, "after Produce v%d" % version)


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_fetch_v0_to_v3_rejected_with_unsupported_version(broker, version):
    topic = create(broker)
    k.client_roundtrip(broker.bootstrap, topic, n=2)
    with k.Conn.to(broker) as c:
        resp = c.fetch(version, topic, 0, 0)
    part = resp[(topic, 0)]
    assert part["error_code"] == k.UNSUPPORTED_VERSION, "Fetch v%d: %s" % (version, k.ename(part["error_code"]))
    assert not part["records"], "Fetch v%d returned %d bytes of records" % (version, len(part["records"]))
    # v4 on the same data works and returns the two records with a correct CRC.
    vals = fetch_values(broker, topic)
    assert [off for off, _k, _v in vals] == [0, 1], vals
    k.assert_serving(broker, "after Fetch v%d" % version)


@pytest.mark.parametrize("version", [3, 7, 9])
def test_produce_valid_batch_appends_and_fetches_back(broker, version):
    topic = create(broker)
    batch = k.record_batch([(b"k0", b"v0", [("h", b"1")]), (None, b"v1"), (b"k2", None)])
    with k.Conn.to(broker) as c:
        r = c.produce(version, topic, 0, batch)
        assert r["error_code"] == k.NONE, k.ename(r["error_code"])
        assert r["base_offset"] == 0
        r = c.produce(version, topic, 0, k.record_batch([(b"k3", b"v3")]))
        assert r["error_code"] == k.NONE and r["base_offset"] == 3, r
        if version >= 5:
            assert r["log_start_offset"] == 0, r
    assert k.high_watermark(broker, topic) == 4
    vals = fetch_values(broker, topic)
    assert vals == [(0, b"k0", b"v0"), (1, None, b"v1"), (2, b"k2", None), (3, b"k3", b"v3")], vals


def _assert_rejected(broker, topic, version, batch, allowed, what):
    with k.Conn.to(broker) as c:
        r = c.produce(version, topic, 0, batch)
    assert r["error_code"] in allowed, "%s (Produce v%d): got %s, want one of %s" % (
        what, version, k.ename(r["error_code"]), [k.ename(e) for e in allowed])
    assert k.high_watermark(broker, topic) == 0, "%s was appended (high watermark moved)" % what
    # The log is still usable and its next offset is still 0.
    with k.Conn.to(broker) as c:
        ok = c.produce(version, topic, 0, k.record_batch([(b"k", b"good")]))
    assert ok["error_code"] == k.NONE and ok["base_offset"] == 0, "after %s: %r" % (what, ok)
    k.assert_serving(broker, "after " + what)


@pytest.mark.parametrize("version", [7, 9])
def test_produce_bad_crc_is_corrupt_message(broker, version):
    topic = create(broker)
    good = k.record_batch([(b"k", b"v"), (b"k2", b"v2")])
    bad = bytearray(good)
    bad[-1] ^= 0xFF  # flip the last value byte; the stored CRC no longer matches
    _assert_rejected(broker, topic, version, bytes(bad), (k.CORRUPT_MESSAGE,), "a batch with a bad CRC")


@pytest.mark.parametrize("version", [7, 9])
def test_produce_wrong_crc_field_is_corrupt_message(broker, version):
    topic = create(broker)
    bad = k.record_batch([(b"k", b"v")], crc=0xDEADBEEF)
    _assert_rejected(broker, topic, version, bad, (k.CORRUPT_MESSAGE,), "a batch whose CRC field is wrong")


@pytest.mark.parametrize("version", [7, 9])
def test_produce_magic1_is_rejected(broker, version):
    topic = create(broker)
    _assert_rejected(broker, topic, version, k.legacy_message_set_v1(b"k", b"v"),
                     (k.UNSUPPORTED_FOR_MESSAGE_FORMAT, k.CORRUPT_MESSAGE), "a magic 1 message set")


@pytest.mark.parametrize("version", [7, 9])
def test_produce_impossible_record_count_is_rejected(broker, version):
    topic = create(broker)
    # Honest CRC over a header that claims 1000 records while one follows.
    bad = k.record_batch([(b"k", b"v")], record_count=1000)
    _assert_rejected(broker, topic, version, bad, (k.INVALID_RECORD, k.CORRUPT_MESSAGE),
                     "a batch claiming 1000 records with 1")


@pytest.mark.parametrize("version", [7, 9])
def test_produce_truncated_batch_is_rejected(broker, version):
    topic = create(broker)
    good = k.record_batch([(b"k", b"v" * 100)])
    _assert_rejected(broker, topic, version, good[:-30], (k.CORRUPT_MESSAGE, k.INVALID_RECORD),
                     "a batch cut short")


@pytest.mark.parametrize("version", [7, 9])
def test_produce_unknown_topic_is_unknown_topic_or_partition(broker, version):
    topic = unique("nosuch")
    with k.Conn.to(broker) as c:
        r = c.produce(version, topic, 0, k.record_batch([(b"k", b"v")]))
        assert r["error_code"] == k.UNKNOWN_TOPIC_OR_PARTITION, k.ename(r["error_code"])
        md = c.metadata(1, [topic])
    assert md["topics"][topic]["error_code"] == k.UNKNOWN_TOPIC_OR_PARTITION, "produce auto-created the topic"
    k.assert_serving(broker, "after produce to an unknown topic")


def test_produce_unknown_partition_is_unknown_topic_or_partition(broker):
    topic = create(broker, partitions=2)
    with k.Conn.to(broker) as c:
        r = c.produce(7, topic, 2, k.record_batch([(b"k", b"v")]))
        assert r["error_code"] == k.UNKNOWN_TOPIC_OR_PARTITION, k.ename(r["error_code"])
        r = c.produce(7, topic, -1, k.record_batch([(b"k", b"v")]))
        assert r["error_code"] == k.UNKNOWN_TOPIC_OR_PARTITION, k.ename(r["error_code"])
    assert k.high_watermark(broker, topic, 0) == 0 and k.high_watermark(broker, topic, 1) == 0


def test_produce_acks0_gets_no_response_but_is_appended(broker):
    topic = create(broker)
    with k.Conn.to(broker) as c:
        body = k.produce_request(7, {topic: {0: k.record_batch([(b"k", b"a0"), (b"k", b"a1")])}}, acks=0)
        c.send(k.PRODUCE, 7, body)
        cid = c.send(k.API_VERSIONS, 0, b"")
        got, _ = c.recv(5)
        assert got == cid, "got a response to an acks=0 produce (correlation id %d)" % got
    deadline = time.monotonic() + 5
    while k.high_watermark(broker, topic) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert k.high_watermark(broker, topic) == 2
    assert [v for _o, _k, v in fetch_values(broker, topic)] == [b"a0", b"a1"]


# ---- InitProducerId and idempotence ------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 4])
def test_init_producer_id(broker, version):
    with k.Conn.to(broker) as c:
        a = c.init_producer_id(version)
        b = c.init_producer_id(version)
    for r in (a, b):
        assert r["error_code"] == k.NONE, k.ename(r["error_code"])
        assert r["producer_id"] >= 0 and r["producer_epoch"] == 0, r
    assert a["producer_id"] != b["producer_id"], "two InitProducerId calls got the same producer id"


@pytest.mark.parametrize("version", [7, 9])
def test_idempotent_produce_dedups_and_orders(broker, version):
    topic = create(broker)
    with k.Conn.to(broker) as c:
        pid = c.init_producer_id(4 if version >= 9 else 0)
        assert pid["error_code"] == k.NONE
        p, e = pid["producer_id"], pid["producer_epoch"]

        def batch(seq, val):
            return k.record_batch([(b"k", val)], producer_id=p, producer_epoch=e, base_sequence=seq)

        first = batch(0, b"s0")
        r = c.produce(version, topic, 0, first)
        assert r["error_code"] == k.NONE and r["base_offset"] == 0, r
        r = c.produce(version, topic, 0, first)  # the same batch again: a retry
        assert r["error_code"] == k.NONE, "duplicate seq 0: %s" % k.ename(r["error_code"])
        assert r["base_offset"] == 0, "duplicate seq 0 acknowledged at offset %d" % r["base_offset"]
        assert k.high_watermark(broker, topic) == 1, "the duplicate was appended twice"
        r = c.produce(version, topic, 0, batch(1, b"s1"))
        assert r["error_code"] == k.NONE and r["base_offset"] == 1, r
        r = c.produce(version, topic, 0, batch(5, b"s5"))  # 2 is expected
        assert r["error_code"] == k.OUT_OF_ORDER_SEQUENCE_NUMBER, "seq 5 when 2 expected: %s" % k.ename(
            r["error_code"])
        r = c.produce(version, topic, 0, batch(2, b"s2"))
        assert r["error_code"] == k.NONE and r["base_offset"] == 2, r
    assert k.high_watermark(broker, topic) == 3
    vals = fetch_values(broker, topic)
    assert vals == [(0, b"k", b"s0"), (1, b"k", b"s1"), (2, b"k", b"s2")], vals


def test_idempotent_multi_record_batches_count_sequences_by_record(broker):
    topic = create(broker)
    with k.Conn.to(broker) as c:
        pid = c.init_producer_id(0)
        p, e = pid["producer_id"], pid["producer_epoch"]
        b0 = k.record_batch([(None, b"a"), (None, b"b"), (None, b"c")], producer_id=p, producer_epoch=e,
                            base_sequence=0)
        assert c.produce(7, topic, 0, b0)["base_offset"] == 0
        r = c.produce(7, topic, 0, b0)
        assert r["error_code"] == k.NONE and r["base_offset"] == 0, r
        b3 = k.record_batch([(None, b"d")], producer_id=p, producer_epoch=e, base_sequence=3)
        r = c.produce(7, topic, 0, b3)
        assert r["error_code"] == k.NONE and r["base_offset"] == 3, r
    assert k.high_watermark(broker, topic) == 4


# ---- Metadata --------------------------------------------------------------------------------


def _broker_node(md, broker):
    nodes = [b for b in md["brokers"] if b["port"] == broker.kafka_port]
    assert nodes, "metadata brokers %r do not include port %d" % (md["brokers"], broker.kafka_port)
    assert nodes[0]["host"] in ("127.0.0.1", "localhost"), nodes[0]
    return nodes[0]["node_id"]


@pytest.mark.parametrize("version", [1, 4, 9, 10, 12])
def test_metadata_lists_created_topic(broker, version):
    topic = create(broker, partitions=3)
    with k.Conn.to(broker) as c:
        md = c.metadata(version, [topic])
        everything = c.metadata(version, None)
    node = _broker_node(md, broker)
    t = md["topics"][topic]
    assert t["error_code"] == k.NONE, k.ename(t["error_code"])
    assert sorted(t["partitions"]) == [0, 1, 2], sorted(t["partitions"])
    for p in t["partitions"].values():
        assert p["error_code"] == k.NONE and p["leader_id"] == node, p
        assert node in p["replicas"] and node in p["isr"], p
    assert not t["is_internal"]
    if version >= 1:
        assert md["controller_id"] == node, "controller id %d, the only broker is %d" % (md["controller_id"], node)
    assert topic in everything["topics"], "Metadata v%d for all topics lacks %s" % (version, topic)
    if version >= 10:
        assert t["topic_id"] != k.ZERO_UUID, "Metadata v%d gives a zero topic id" % version
        assert everything["topics"][topic]["topic_id"] == t["topic_id"]


def test_metadata_v12_topic_ids_are_distinct_stable_and_match_admin_api(broker):
    a, b = create(broker), create(broker)
    with k.Conn.to(broker) as c:
        md1 = c.metadata(12, [a, b])
        md2 = c.metadata(12, [a, b])
    ida, idb = md1["topics"][a]["topic_id"], md1["topics"][b]["topic_id"]
    assert len(ida) == 16 and ida != k.ZERO_UUID and idb != k.ZERO_UUID
    assert ida != idb, "two topics share a topic id"
    assert md2["topics"][a]["topic_id"] == ida, "topic id changed between two Metadata calls"
    admin_id = str(broker.get_topic(a).get("id", "")).replace("-", "").lower()
    assert admin_id == ida.hex(), "admin API id %r != Metadata topic id %s" % (admin_id, ida.hex())


@pytest.mark.parametrize("version", [1, 4, 9, 12])
def test_metadata_unknown_topic_is_error_3_and_not_auto_created(broker, version):
    topic = unique("ghost")
    with k.Conn.to(broker) as c:
        kw = {"allow_auto_topic_creation": True} if version >= 4 else {}
        md = c.metadata(version, [topic], **kw)
        assert md["topics"][topic]["error_code"] == k.UNKNOWN_TOPIC_OR_PARTITION, k.ename(
            md["topics"][topic]["error_code"])
        again = c.metadata(version, [topic])
    assert again["topics"][topic]["error_code"] == k.UNKNOWN_TOPIC_OR_PARTITION, "topic was auto-created"
    status, _ = broker.http("GET", "/v1/topics/" + topic)
    assert status == 404, "auto-create is off by default, but the admin API finds %s" % topic


# ---- CreateTopics ------------------------------------------------------------------------------


BAD_NAMES = ["", ".", "..", "a" * 250, "a/b", "a b", "tab\tname", "x" * 300, "bad*name", "q?"]


@pytest.mark.parametrize("version", [4, 7])
def test_create_topics_invalid_names(broker, version):
    with k.Conn.to(broker) as c:
        for name in BAD_NAMES:
            r = c.create_topics(version, [(name, 1, 1)])
            assert name in r, "no result for %r: %r" % (name, r)
            assert r[name]["error_code"] == k.INVALID_TOPIC_EXCEPTION, "name %r: %s" % (
                name[:20], k.ename(r[name]["error_code"]))
        md = c.metadata(1, None)
    for name in BAD_NAMES:
        assert name not in md["topics"], "invalid name %r was created" % name[:20]
    k.assert_serving(broker, "after invalid topic names")


@pytest.mark.parametrize("version", [4, 7])
def test_create_topics_valid_existing_and_bad_partitions(broker, version):
    longest = ("L" + unique("n")).ljust(249, "z")
    name = unique("ct")
    with k.Conn.to(broker) as c:
        r = c.create_topics(version, [(name, 3, 1), (longest, 1, 1)])
        assert r[name]["error_code"] == k.NONE, k.ename(r[name]["error_code"])
        assert r[longest]["error_code"] == k.NONE, "249-char name: %s" % k.ename(r[longest]["error_code"])
        if version >= 5:
            assert r[name]["num_partitions"] == 3, r[name]
        if version >= 7:
            assert r[name]["topic_id"] != k.ZERO_UUID
        r = c.create_topics(version, [(name, 3, 1)])
        assert r[name]["error_code"] == k.TOPIC_ALREADY_EXISTS, k.ename(r[name]["error_code"])
        for n in (0, -5):
            bad = unique("np")
            r = c.create_topics(version, [(bad, n, 1)])
            assert r[bad]["error_code"] == k.INVALID_PARTITIONS, "num_partitions %d: %s" % (
                n, k.ename(r[bad]["error_code"]))
            md = c.metadata(1, [bad])
            assert md["topics"][bad]["error_code"] == k.UNKNOWN_TOPIC_OR_PARTITION
        md = c.metadata(12, [name])
    assert sorted(md["topics"][name]["partitions"]) == [0, 1, 2]
    k.client_roundtrip(broker.bootstrap, name, n=3, partition=2)


def test_produce_mixed_good_and_bad_partitions_in_one_request(broker):
    a = create(broker, partitions=3)
    missing = unique("absent")
    good = k.record_batch([(b"k", b"good")])
    bad = k.record_batch([(b"k", b"bad")], crc=1)
    body = k.produce_request(7, {a: {0: good, 1: bad, 2: good}, missing: {0: good}})
    with k.Conn.to(broker) as c:
        resp = k.decode_produce(7, c.request(k.PRODUCE, 7, body))
    want = {(a, 0): k.NONE, (a, 1): k.CORRUPT_MESSAGE, (a, 2): k.NONE, (missing, 0): k.UNKNOWN_TOPIC_OR_PARTITION}
    got = {tp: resp[tp]["error_code"] for tp in want}
    assert got == want, {tp: k.ename(e) for tp, e in got.items()}
    assert [k.high_watermark(broker, a, p) for p in (0, 1, 2)] == [1, 0, 1]


def test_produce_broker_assigns_base_offset_and_keeps_batch_intact(broker):
    topic = create(broker)
    ts = 1700000000000
    batch = k.record_batch([(b"k0", b"v0", [("h1", b"x"), ("h2", None)], 0), (b"k1", b"v1", [], 7)],
                           base_offset=777777, base_timestamp=ts)
    with k.Conn.to(broker) as c:
        c.produce(9, topic, 0, k.record_batch([(None, b"first")]))
        r = c.produce(9, topic, 0, batch)
        assert r["error_code"] == k.NONE and r["base_offset"] == 1, r
        part = c.fetch(4, topic, 0, 1)[(topic, 0)]
    batches = k.parse_record_batches(part["records"])
    assert batches and batches[0]["crc_ok"], "fetched batch CRC is wrong after the base offset rewrite"
    b = [x for x in batches if x["base_offset"] == 1]
    assert b, "no batch at base offset 1: %r" % [x["base_offset"] for x in batches]
    recs = b[0]["records"]
    assert [(o, key, val, h, t) for o, key, val, h, t in recs] == [
        (1, b"k0", b"v0", [(b"h1", b"x"), (b"h2", None)], ts),
        (2, b"k1", b"v1", [], ts + 7)], recs


@pytest.mark.parametrize("version", [4, 7, 11])
def test_fetch_partition_errors_are_answered_not_dropped(broker, version):
    """Per-partition Fetch errors come back as error codes with null records; the
    connection stays open for the next request."""
    topic = create(broker, partitions=1)
    k.client_roundtrip(broker.bootstrap, topic, n=2)
    ghost = unique("ghost")
    with k.Conn.to(broker) as c:
        cases = [(ghost, 0, 0, k.UNKNOWN_TOPIC_OR_PARTITION), (topic, 5, 0, k.UNKNOWN_TOPIC_OR_PARTITION),
                 (topic, 0, 1000, k.OFFSET_OUT_OF_RANGE)]
        for t, p, off, want in cases:
            resp = c.fetch(version, t, p, off)
            part = resp[(t, p)]
            assert part["error_code"] == want, "Fetch v%d %s/%d@%d: %s, want %s" % (
                version, t, p, off, k.ename(part["error_code"]), k.ename(want))
            assert not part["records"], part
        ok = c.fetch(version, topic, 0, 0)[(topic, 0)]
        assert ok["error_code"] == k.NONE and ok["high_watermark"] == 2, ok
    k.assert_serving(broker, "after Fetch errors")


@pytest.mark.parametrize("version", [12, 13])
def test_fetch_flexible_versions_by_name_and_topic_id(broker, version):
    topic = create(broker, partitions=2)
    with k.Conn.to(broker) as c:
        tid = c.metadata(12, [topic])["topics"][topic]["topic_id"]
        assert c.produce(9, topic, 1, k.record_batch([(b"a", b"1"), (b"b", b"2")]))["error_code"] == k.NONE
        key = tid if version >= 13 else topic
        resp = k.decode_fetch(version, c.request(k.FETCH, version, k.fetch_request(version, {key: {1: 0}})))
        part = resp[(key, 1)]
        assert resp["__error_code__"] == k.NONE
        assert part["error_code"] == k.NONE and part["high_watermark"] == 2 and part["log_start_offset"] == 0, part
        recs = [(o, kk, v) for b in k.parse_record_batches(part["records"]) for o, kk, v, _h, _t in b["records"]]
        assert recs == [(0, b"a", b"1"), (1, b"b", b"2")], recs
        if version >= 13:
            ghost = bytes(range(1, 17))
            resp = k.decode_fetch(version, c.request(k.FETCH, version, k.fetch_request(version, {ghost: {0: 0}})))
            assert resp[(ghost, 0)]["error_code"] == k.UNKNOWN_TOPIC_ID, k.ename(resp[(ghost, 0)]["error_code"])


@pytest.mark.parametrize("version", [7, 9])
def test_produce_batch_over_max_message_bytes_is_rejected(broker, version):
    topic = create(broker)
    big = k.record_batch([(b"k", b"z" * (2 * 1024 * 1024))])  # 2 MiB; max.message.bytes is about 1 MiB
    _assert_rejected(broker, topic, version, big, (k.MESSAGE_TOO_LARGE, k.RECORD_LIST_TOO_LARGE),
                     "a 2 MiB batch")


def test_real_idempotent_producer(broker):
    from confluent_kafka import Producer

    topic = create(broker, partitions=2)
    errs = []
    p = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True, "linger.ms": 2,
                  "message.timeout.ms": 20000})
    for i in range(200):
        p.produce(topic, value=b"%d" % i, partition=i % 2, on_delivery=lambda e, m: e and errs.append(e))
    assert p.flush(20) == 0 and not errs, errs
    assert [k.high_watermark(broker, topic, part) for part in (0, 1)] == [100, 100]
    vals = [int(v) for _o, _k, v in fetch_values(broker, topic, 1)]
    assert vals == list(range(1, 200, 2)), vals[:10]


def test_create_topics_validate_only_and_replication_factor(broker):
    vo, rf3, dflt = unique("vo"), unique("rf"), unique("df")
    with k.Conn.to(broker) as c:
        r = c.create_topics(4, [(vo, 2, 1)], validate_only=True)
        assert r[vo]["error_code"] == k.NONE, k.ename(r[vo]["error_code"])
        assert c.metadata(1, [vo])["topics"][vo]["error_code"] == k.UNKNOWN_TOPIC_OR_PARTITION, \
            "validate_only created the topic"
        r = c.create_topics(7, [(rf3, 1, 3), (dflt, -1, -1)])
        assert r[rf3]["error_code"] == 38, "replication factor 3 on one broker: %s" % k.ename(r[rf3]["error_code"])
        assert r[dflt]["error_code"] == k.NONE, "default partitions/replication (-1): %s" % k.ename(
            r[dflt]["error_code"])
        assert r[dflt]["num_partitions"] >= 1 and r[dflt]["replication_factor"] == 1, r[dflt]
        md = c.metadata(1, [rf3, dflt])
    assert md["topics"][rf3]["error_code"] == k.UNKNOWN_TOPIC_OR_PARTITION
    assert len(md["topics"][dflt]["partitions"]) == r[dflt]["num_partitions"]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_produce_consume_roundtrip(broker, codec):
    """Whatever librdkafka decides to send for this codec (it falls back to no
    compression when a broker lacks features it needs), it reads back intact."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    topic = create(broker)
    values = [(b"payload-%04d-" % i) * 20 for i in range(50)]
    errs = []
    p = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": codec, "linger.ms": 50,
                  "message.timeout.ms": 20000})
    for v in values:
        p.produce(topic, value=v, partition=0, on_delivery=lambda e, m: e and errs.append(e))
    assert p.flush(20) == 0 and not errs, errs
    with k.Conn.to(broker) as c:
        part = c.fetch(4, topic, 0, 0)[(topic, 0)]
    assert part["error_code"] == k.NONE and part["high_watermark"] == 50
    batches = k.parse_record_batches(part["records"])
    assert batches and all(b["crc_ok"] for b in batches), "stored %s batches with a bad CRC" % codec
    assert sum(b["last_offset_delta"] + 1 for b in batches) == 50
    cons = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": unique("g"), "enable.auto.commit": False})
    got = []
    try:
        cons.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + 20
        while len(got) < 50 and time.monotonic() < deadline:
            m = cons.poll(0.5)
            if m is not None and not m.error():
                got.append((m.offset(), m.value()))
    finally:
        cons.close()
    assert got == list(enumerate(values)), "consumer read %d of 50 (first %r)" % (len(got), got[:1])


@pytest.mark.parametrize("version", [7, 9])
def test_gzip_batch_is_stored_byte_for_byte(broker, version):
    topic = create(broker)
    recs = [(b"k%d" % i, b"gz-value-%d-" % i * 30, [("h", b"%d" % i)]) for i in range(20)]
    batch = k.record_batch(recs, gzip=True, base_timestamp=1700000000000)
    with k.Conn.to(broker) as c:
        r = c.produce(version, topic, 0, k.record_batch([(None, b"plain")]))
        assert r["error_code"] == k.NONE and r["base_offset"] == 0
        r = c.produce(version, topic, 0, batch)
        assert r["error_code"] == k.NONE and r["base_offset"] == 1, r
        part = c.fetch(4, topic, 0, 1)[(topic, 0)]
    assert part["high_watermark"] == 21
    data = part["records"]
    start = data.find(batch[21:])  # everything the CRC covers: attributes onwards
    assert start >= 0, "the stored gzip batch differs from what was sent (recompressed or rewritten)"
    [b] = [x for x in k.parse_record_batches(data) if x["base_offset"] == 1]
    assert b["attributes"] & 7 == 1 and b["crc_ok"]
    assert [(o, key, v) for o, key, v, _h, _t in b["records"]] == [(1 + i, r_[0], r_[1]) for i, r_ in enumerate(recs)]
