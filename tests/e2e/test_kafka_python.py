"""End-to-end tests with kafka-python 2.0.2 (pure Python, its own protocol code). The
clients detect the broker version themselves from ApiVersions: no api_version is passed."""

import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewPartitions, NewTopic
from kafka.errors import TopicAlreadyExistsError

from harness import unique


def consume(broker, topic, partitions, count, timeout=30):
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest", request_timeout_ms=15000, fetch_max_wait_ms=100)
    try:
        c.assign([TopicPartition(topic, p) for p in partitions])
        c.seek_to_beginning()
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=500).values():
                out.extend(recs)
        assert len(out) == count, "got %d of %d records" % (len(out), count)
        more = c.poll(timeout_ms=500)
        assert not any(more.values()), "records beyond the %d expected: %r" % (count, more)
        return out
    finally:
        c.close()


@pytest.mark.parametrize("codec", [None, "gzip"])
def test_produce_consume_keys_headers(broker, codec):
    topic = unique("kp")
    broker.create_topic(topic, partitions=2)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", compression_type=codec,
                      linger_ms=5, request_timeout_ms=15000)
    assert p.config["api_version"] >= (0, 11), "auto-detected api_version %r has no headers" % (
        p.config["api_version"],)
    sent = []
    futs = []
    now = int(time.time() * 1000)
    for i in range(300):
        part = i % 2
        key = None if i == 5 else b"key-%d" % i
        value = None if i == 7 else (b"value-%d-" % i) * (i % 13)
        headers = [("h", b"%d" % i), ("h", b"again"), ("e", b"")]
        futs.append(p.send(topic, key=key, value=value, headers=headers, partition=part,
                           timestamp_ms=now + i))
        sent.append((part, key, value, headers, now + i))
    metas = [f.get(timeout=30) for f in futs]
    p.close()
    per_part = {0: 0, 1: 0}
    for (part, *_), md in zip(sent, metas):
        assert (md.topic, md.partition, md.offset) == (topic, part, per_part[part])
        per_part[part] += 1

    got = consume(broker, topic, [0, 1], len(sent))
    by_pos = {(r.partition, r.offset): r for r in got}
    assert len(by_pos) == len(sent)
    for (part, key, value, headers, ts), md in zip(sent, metas):
        r = by_pos[(md.partition, md.offset)]
        assert (r.key, r.value, list(r.headers), r.timestamp, r.timestamp_type) == (key, value, headers, ts, 0)


def test_admin_create_delete(broker):
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=15000)
    try:
        topic = unique("kpa")
        a.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1,
                                  topic_configs={"retention.ms": "600000"})])
        assert topic in a.list_topics()
        desc = [t for t in a.describe_topics([topic]) if t["topic"] == topic]
        assert len(desc) == 1 and desc[0]["error_code"] == 0
        assert sorted(p["partition"] for p in desc[0]["partitions"]) == [0, 1]

        with pytest.raises(TopicAlreadyExistsError):
            a.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])

        a.create_partitions({topic: NewPartitions(total_count=4)})
        desc = [t for t in a.describe_topics([topic]) if t["topic"] == topic]
        assert sorted(p["partition"] for p in desc[0]["partitions"]) == [0, 1, 2, 3]

        a.delete_topics([topic])
        assert topic not in a.list_topics()
        status, _ = broker.http("GET", "/v1/topics/" + topic)
        assert status == 404
    finally:
        a.close()


def test_end_offsets(broker):
    topic = unique("kpo")
    broker.create_topic(topic, partitions=1)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, acks=1)
    for i in range(7):
        p.send(topic, value=b"%d" % i, partition=0)
    p.flush(30)
    p.close()
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tp = TopicPartition(topic, 0)
        assert c.beginning_offsets([tp]) == {tp: 0}
        assert c.end_offsets([tp]) == {tp: 7}
        assert c.partitions_for_topic(topic) == {0}
    finally:
        c.close()
