"""End-to-end tests with confluent-kafka (Python binding of librdkafka 2.0.2): produce and
consume in every codec, batching, admin APIs, offsets by time, watermarks, the
idempotent producer and long-poll fetch."""

import random
import threading
import time

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_CREATE_TIME,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic

from harness import unique

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


# ---- helpers shared with test_durability.py -----------------------------------------


def producer_conf(broker, **extra):
    conf = {
        "bootstrap.servers": broker.bootstrap,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": 30000,
        "socket.timeout.ms": 10000,
    }
    conf.update(extra)
    return conf


def produce_all(broker, topic, msgs, flush_timeout=60, **conf):
    """Produce msgs (dicts of Producer.produce kwargs) and return the delivery reports
    in produce order as (partition, offset); fails on any delivery error."""
    p = Producer(producer_conf(broker, **conf))
    reports = [None] * len(msgs)
    errors = []

    def on_delivery(idx):
        def cb(err, msg):
            if err is not None:
                errors.append((idx, err))
            else:
                reports[idx] = (msg.partition(), msg.offset())
        return cb

    for i, m in enumerate(msgs):
        while True:
            try:
                p.produce(topic, on_delivery=on_delivery(i), **m)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    left = p.flush(flush_timeout)
    assert left == 0, "%d messages still undelivered after %ss" % (left, flush_timeout)
    assert not errors, "delivery errors (first 5): %r" % errors[:5]
    assert all(r is not None for r in reports)
    return reports


def consumer_conf(broker, **extra):
    conf = {
        "bootstrap.servers": broker.bootstrap,
        "group.id": unique("g"),
        "enable.auto.commit": False,
        "enable.partition.eof": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 100,
        "socket.timeout.ms": 10000,
    }
    conf.update(extra)
    return conf


def consume_assigned(broker, topic, partitions, count, timeout=60, start=OFFSET_BEGINNING, **extra):
    """Assign the partitions from start (no group protocol) and return exactly `count`
    messages in arrival order; fails on a consumer error or if fewer arrive in time.
    Waits a little after the last one to catch extras."""
    c = Consumer(consumer_conf(broker, **extra))
    try:
        c.assign([TopicPartition(topic, p, start) for p in partitions])
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            for m in c.consume(num_messages=1000, timeout=0.5):
                if m.error():
                    raise AssertionError("consumer error: %s" % m.error())
                out.append(m)
        assert len(out) == count, "got %d of %d messages" % (len(out), count)
        extra_msgs = [m for m in c.consume(num_messages=100, timeout=0.5) if not m.error()]
        assert not extra_msgs, "got %d messages beyond the %d expected, first offset %d" % (
            len(extra_msgs), count, extra_msgs[0].offset())
        return out
    finally:
        c.close()


def norm_headers(h):
    return [(k, v) for k, v in (h or [])]


# ---- produce / consume round trips ---------------------------------------------------


def make_messages(n, seed):
    rnd = random.Random(seed)
    now = int(time.time() * 1000)
    msgs = []
    for i in range(n):
        if i == 0:
            value = b""
        elif i == 1:
            value = None
        elif i % 3 == 0:
            value = (b"compressible-%d-" % i) * rnd.randint(1, 200)
        else:
            value = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 1500)))
        key = None if i == 2 else b"key-%d-\x00\xff" % i
        headers = [
            ("dup", b"first-%d" % i),
            ("dup", b"second-%d" % i),
            ("nullh", None),
            ("bin", bytes([i % 256, 0, 255])),
        ]
        if i == 3:
            headers.append(("empty", b""))
        msgs.append({"key": key, "value": value, "headers": headers,
                     "timestamp": now - 100000 + i * 7, "partition": 0})
    return msgs


@pytest.mark.parametrize("codec", CODECS)
def test_roundtrip_codec(broker, codec):
    topic = unique("codec-" + codec)
    broker.create_topic(topic, partitions=1)
    msgs = make_messages(200, seed=CODECS.index(codec))
    reports = produce_all(broker, topic, msgs, **{"compression.type": codec, "batch.num.messages": 50})
    assert [r for r in reports] == [(0, i) for i in range(200)]

    got = consume_assigned(broker, topic, [0], 200)
    for i, (m, want) in enumerate(zip(got, msgs)):
        assert m.offset() == i
        assert m.partition() == 0
        assert m.key() == want["key"], "key at offset %d" % i
        assert m.value() == want["value"], "value at offset %d" % i
        assert norm_headers(m.headers()) == want["headers"], "headers at offset %d" % i
        assert m.timestamp() == (TIMESTAMP_CREATE_TIME, want["timestamp"]), "timestamp at offset %d" % i


def test_batching_10k_three_partitions(broker):
    topic = unique("batch")
    broker.create_topic(topic, partitions=3)
    n = 10000
    msgs = [{"key": b"k%d" % (i % 97), "value": b"v%06d" % i} for i in range(n)]
    reports = produce_all(broker, topic, msgs, acks="1", **{"linger.ms": 20, "partitioner": "murmur2_random"})

    by_pos = {}
    for m, (p, o) in zip(msgs, reports):
        assert (p, o) not in by_pos, "two messages acknowledged at %r" % ((p, o),)
        by_pos[(p, o)] = m
    per_part = {p: sorted(o for (pp, o) in by_pos if pp == p) for p in range(3)}
    for p, offs in per_part.items():
        assert offs == list(range(len(offs))), "partition %d offsets are not 0..n-1" % p
        assert len(offs) > 0, "partitioner left partition %d empty" % p
    # A key always maps to one partition with murmur2.
    key_part = {}
    for m, (p, _) in zip(msgs, reports):
        assert key_part.setdefault(m["key"], p) == p

    got = consume_assigned(broker, topic, [0, 1, 2], n)
    seen = set()
    for m in got:
        pos = (m.partition(), m.offset())
        assert pos not in seen, "duplicate %r" % (pos,)
        seen.add(pos)
        want = by_pos[pos]
        assert (m.key(), m.value()) == (want["key"], want["value"]), "at %r" % (pos,)
    assert seen == set(by_pos)


def test_produce_unknown_topic_fails(broker):
    topic = unique("nosuch")
    p = Producer(producer_conf(broker, **{"message.timeout.ms": 10000,
                                          "topic.metadata.propagation.max.ms": 1000}))
    errs = []
    p.produce(topic, value=b"x", on_delivery=lambda err, msg: errs.append(err))
    assert p.flush(20) == 0
    assert len(errs) == 1 and errs[0] is not None, "produce to an unknown topic was acknowledged"
    assert errs[0].code() in (KafkaError._UNKNOWN_TOPIC, KafkaError.UNKNOWN_TOPIC_OR_PART), errs[0]
    # Auto-creation is off: the topic must still not exist.
    status, _ = broker.http("GET", "/v1/topics/" + topic)
    assert status == 404


# ---- admin -----------------------------------------------------------------------------


def admin(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap, "socket.timeout.ms": 10000})


def partition_count(broker, topic):
    md = admin(broker).list_topics(topic=topic, timeout=10)
    t = md.topics[topic]
    assert t.error is None, t.error
    return len(t.partitions)


def describe(a, topic):
    res = ConfigResource("topic", topic)
    fs = a.describe_configs([res], request_timeout=10)
    return {k: v.value for k, v in fs[res].result(timeout=15).items()}


def test_admin_create_partitions_delete(broker):
    a = admin(broker)
    topic = unique("adm")
    fs = a.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1,
                                   config={"retention.ms": "3600000"})], request_timeout=10)
    assert fs[topic].result(timeout=15) is None
    assert partition_count(broker, topic) == 3

    fs = a.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)], request_timeout=10)
    with pytest.raises(KafkaException) as ei:
        fs[topic].result(timeout=15)
    assert ei.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS

    fs = a.create_partitions([NewPartitions(topic, 5)], request_timeout=10)
    assert fs[topic].result(timeout=15) is None
    assert partition_count(broker, topic) == 5
    # The new partitions take writes.
    reports = produce_all(broker, topic, [{"value": b"p4", "partition": 4}])
    assert reports == [(4, 0)]

    fs = a.delete_topics([topic], request_timeout=10)
    assert fs[topic].result(timeout=15) is None
    md = admin(broker).list_topics(timeout=10)
    assert topic not in md.topics
    status, _ = broker.http("GET", "/v1/topics/" + topic)
    assert status == 404


def test_admin_configs(broker):
    a = admin(broker)
    topic = unique("cfg")
    fs = a.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1,
                                   config={"retention.ms": "3600000"})], request_timeout=10)
    fs[topic].result(timeout=15)
    assert describe(a, topic)["retention.ms"] == "3600000"

    res = ConfigResource("topic", topic, set_config={"retention.ms": "7200000"})
    fs = a.alter_configs([res], request_timeout=10)
    assert fs[res].result(timeout=15) is None
    assert describe(a, topic)["retention.ms"] == "7200000"
    # The HTTP admin API sees the same value.
    t = broker.get_topic(topic)
    assert str(t["config"]["retention.ms"]) == "7200000"


def test_admin_describe_unknown_topic(broker):
    a = admin(broker)
    res = ConfigResource("topic", unique("nosuch"))
    with pytest.raises(KafkaException) as ei:
        a.describe_configs([res], request_timeout=10)[res].result(timeout=15)
    assert ei.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


# ---- offsets ----------------------------------------------------------------------------


@pytest.mark.parametrize("batching", ["batch_per_record", "one_batch"])
def test_offsets_for_times_and_watermarks(broker, batching):
    """ListOffsets by timestamp returns the first record at or after it, also inside a
    batch (as Kafka does), and -1 past the end."""
    topic = unique("times")
    broker.create_topic(topic, partitions=1, config={"retention.ms": "-1"})
    msgs = [{"value": b"t%d" % ts, "timestamp": ts, "partition": 0} for ts in range(1000, 11000, 1000)]
    if batching == "one_batch":
        produce_all(broker, topic, msgs, **{"linger.ms": 200})
    else:
        for i, m in enumerate(msgs):
            assert produce_all(broker, topic, [m]) == [(0, i)]

    c = Consumer(consumer_conf(broker))
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 10)
        # One query per call: a partition may appear only once in a ListOffsets request.
        got = [c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)[0]
               for ts in (500, 1000, 2500, 3000, 10000)]
        assert [tp.error for tp in got] == [None] * len(got)
        assert [tp.offset for tp in got] == [0, 0, 2, 2, 9]
        after = c.offsets_for_times([TopicPartition(topic, 0, 10001)], timeout=10)
        assert after[0].offset == -1  # no record at or after: the end (-1)

        # Seek to the offset for 2500 and read the record with timestamp 3000.
        c.assign([TopicPartition(topic, 0, got[2].offset)])
        m = None
        deadline = time.monotonic() + 15
        while m is None and time.monotonic() < deadline:
            m = c.poll(0.5)
        assert m is not None and not m.error()
        assert (m.offset(), m.value(), m.timestamp()) == (2, b"t3000", (TIMESTAMP_CREATE_TIME, 3000))
    finally:
        c.close()


def test_consume_from_middle_offset(broker):
    topic = unique("mid")
    broker.create_topic(topic, partitions=1)
    produce_all(broker, topic, [{"value": b"m%d" % i, "partition": 0} for i in range(50)])
    got = consume_assigned(broker, topic, [0], 13, start=37)
    assert [(m.offset(), m.value()) for m in got] == [(i, b"m%d" % i) for i in range(37, 50)]


# ---- idempotence, long poll ---------------------------------------------------------------


def test_idempotent_producer(broker):
    topic = unique("idem")
    broker.create_topic(topic, partitions=1)
    n = 5000
    msgs = [{"key": b"%d" % i, "value": b"idem-%d" % i, "partition": 0} for i in range(n)]
    reports = produce_all(broker, topic, msgs, **{"enable.idempotence": True, "linger.ms": 10})
    assert reports == [(0, i) for i in range(n)]
    got = consume_assigned(broker, topic, [0], n)
    assert [(m.offset(), m.key(), m.value()) for m in got] == [
        (i, b"%d" % i, b"idem-%d" % i) for i in range(n)]


def test_long_poll_receives_late_message(broker):
    topic = unique("lp")
    broker.create_topic(topic, partitions=1)
    c = Consumer(consumer_conf(broker, **{"fetch.wait.max.ms": 500}))
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    produced = threading.Event()

    def late():
        time.sleep(1.0)
        produce_all(broker, topic, [{"value": b"late", "partition": 0}])
        produced.set()

    th = threading.Thread(target=late, daemon=True)
    th.start()
    try:
        got = None
        deadline = time.monotonic() + 10
        while got is None and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None:
                assert not m.error(), m.error()
                got = m
        assert got is not None, "no message within 10 s (produced: %s)" % produced.is_set()
        assert (got.offset(), got.value()) == (0, b"late")
    finally:
        th.join(15)
        c.close()
