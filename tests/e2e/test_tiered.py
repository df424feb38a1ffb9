"""storage.mode tiered (issue 6) with real clients against a real S3 server on loopback
(the SigV4-checking s3rver when installed, else moto).

- Produce past local.retention.bytes: segment objects appear in the bucket under
  <prefix>/<topic-id>/<partition>/, the topic's local bytes drop, the log start stays 0,
  and a consumer from the beginning gets every record byte-exact (served from S3, with
  ranged GETs); offsets_for_times finds records that only live in S3.
- S3 stopped: produce goes on, nothing local is deleted, everything stays readable;
  once S3 is back the uploads complete.
- kill -9 in the middle of uploads: every acknowledged record is still readable.
- retention.bytes counts remote data and deletes remote segments (objects and log
  start), and consuming from the beginning starts at the new log start.
"""

import os
import re
import sys
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from harness import REPO_ROOT, Broker, unique

sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "s3"))

from s3server import Moto, S3rver, find_moto_server, s3rver_available  # noqa: E402

BUCKET = "tiered"
PREFIX = "segs"
LOCAL_BYTES = 1 << 20
SEGMENT_BYTES = 256 << 10
LOCAL_MAX = LOCAL_BYTES + SEGMENT_BYTES + (64 << 10)  # local bytes once uploads caught up


def start_s3(directory=None, port=None):
    if directory:
        os.makedirs(directory, exist_ok=True)
    if s3rver_available():
        return S3rver([BUCKET], directory=directory, port=port).start()
    if find_moto_server() is None:
        pytest.skip("no S3 server (scripts/deps.sh test)")
    s = Moto(port=port).start()
    s.client().create_bucket(BUCKET)
    return s


def list_objects(s3, prefix=PREFIX + "/"):
    """{key: size} of every object under prefix (ListObjectsV2, paged)."""
    c = s3.client()
    out, token = {}, None
    while True:
        q = [("list-type", "2"), ("prefix", prefix)]
        if token:
            q.append(("continuation-token", token))
        status, _, body = c.request("GET", BUCKET, query=q)
        assert status == 200, body
        text = body.decode()
        for m in re.finditer(r"<Contents>(.*?)</Contents>", text, re.S):
            key = re.search(r"<Key>(.*?)</Key>", m.group(1)).group(1)
            size = int(re.search(r"<Size>(\d+)</Size>", m.group(1)).group(1))
            out[key] = size
        t = re.search(r"<NextContinuationToken>(.*?)</NextContinuationToken>", text)
        if "<IsTruncated>true</IsTruncated>" not in text or not t:
            return out
        token = t.group(1)


def broker_config(s3, **extra):
    cfg = {
        "tiered.s3.uri": "s3://%s/%s/" % (BUCKET, PREFIX),
        "tiered.s3.endpoint": s3.endpoint,
        "tiered.s3.region": "us-east-1",
        "tiered.s3.access.key.id": s3.access,
        "tiered.s3.secret.access.key": s3.secret,
        "tiered.check.interval.ms": 200,
        "tiered.segment.bytes": SEGMENT_BYTES,
        "tiered.read.bytes": 64 << 10,
        "tiered.cache.bytes": 2 << 20,  # smaller than the data: reads go to S3 again
        "log.retention.check.interval.ms": 300,
    }
    cfg.update(extra)
    return cfg


def create_tiered(broker, name, **config):
    cfg = {"local.retention.bytes": LOCAL_BYTES}
    cfg.update(config)
    return broker.create_topic(name, 1, config=cfg, storage={"mode": "tiered"})


def value(i, size=1000):
    head = ("rec-%08d|" % i).encode()
    body = bytes((i * 31 + j) & 0xFF for j in range(size - len(head)))
    return head + body


def produce(broker, topic, start, n, ts0=None, size=1000):
    """Produces n records (acks=all); returns {offset: index} of the acknowledged ones."""
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5, "acks": "all",
                  "batch.size": 32768, "compression.type": "none"})
    acked = {}

    def cb(err, msg):
        if err is None:
            acked[msg.offset()] = int(msg.key())

    for i in range(start, start + n):
        kw = {"timestamp": ts0 + i} if ts0 is not None else {}
        while True:
            try:
                p.produce(topic, key=str(i).encode(), value=value(i, size), on_delivery=cb, **kw)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    assert p.flush(60) == 0
    return acked


def consume_all(broker, topic, until, timeout=90):
    """Reads partition 0 from the beginning up to offset until; returns {offset: msg}."""
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": unique("g"),
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "fetch.wait.max.ms": 200})
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    got, deadline = {}, time.time() + timeout
    try:
        while time.time() < deadline and (not got or max(got) < until - 1):
            m = c.poll(0.5)
            if m is None:
                continue
            assert m.error() is None, m.error()
            got[m.offset()] = (m.key(), m.value(), m.timestamp()[1])
    finally:
        c.close()
    return got


def wait_for(fn, timeout=60, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError("timed out waiting for " + what)


def partition_info(broker, topic):
    """The first partition's live stats from GET /v1/topics/{name}."""
    t = broker.get_topic(topic)
    return t["stats"]["partitions"][0]


@pytest.fixture
def s3():
    s = start_s3()
    yield s
    s.stop()


def check_records(got, acked):
    for off, i in acked.items():
        assert off in got, "offset %d missing" % off
        k, v, _ = got[off]
        assert k == str(i).encode() and v == value(i), "offset %d differs" % off


def test_upload_and_read_back(s3):
    with Broker(config=broker_config(s3)) as b:
        topic = unique("tier")
        info = create_tiered(b, topic)
        ts0 = int(time.time() * 1000) - 3600 * 1000
        acked = produce(b, topic, 0, 4000, ts0=ts0)
        assert len(acked) == 4000
        objs = wait_for(lambda: (lambda o: o if len(o) >= 8 else None)(list_objects(s3)),
                        what="segments in S3")
        keys = sorted(objs)
        assert all(re.fullmatch(PREFIX + r"/[0-9a-f]{32}/0/\d{20}-\d+\.seg", k) for k in keys), keys
        topic_id = keys[0].split("/")[1]
        assert topic_id == info.get("id", topic_id).replace("-", "")
        wait_for(lambda: partition_info(b, topic)["bytes"] <= LOCAL_MAX,
                 what="local bytes to drop")
        pi = partition_info(b, topic)
        assert pi["log_start_offset"] == 0 and pi["high_watermark"] == 4000, pi
        got = consume_all(b, topic, 4000)
        check_records(got, acked)
        # offsets_for_times on records that only live in S3
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": unique("g")})
        try:
            for i in (0, 7, 1234, 2001, 3999):
                r = c.offsets_for_times([TopicPartition(topic, 0, ts0 + i)], timeout=20)
                assert r[0].offset == i, (i, r[0])
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
            assert (lo, hi) == (0, 4000)
        finally:
            c.close()
        # deleting the topic deletes its segment objects too
        assert b.http("DELETE", "/v1/topics/" + topic)[0] == 204
        wait_for(lambda: not list_objects(s3, PREFIX + "/" + topic_id + "/") or None,
                 what="the deleted topic's segments to go")
        b.assert_clean()


def test_s3_down_keeps_local_data_then_uploads(tmp_path):
    s = start_s3(directory=str(tmp_path / "s3"))
    port = s.port
    with Broker(config=broker_config(s)) as b:
        topic = unique("down")
        create_tiered(b, topic)
        s.stop()
        acked = produce(b, topic, 0, 3000)
        time.sleep(3)  # several upload rounds fail meanwhile
        pi = partition_info(b, topic)
        assert pi["bytes"] >= 3000 * 1000, pi  # nothing local went
        check_records(consume_all(b, topic, 3000), acked)
        s = start_s3(directory=str(tmp_path / "s3"), port=port)
        try:
            wait_for(lambda: len(list_objects(s)) >= 4, timeout=90, what="uploads after S3 returns")
            wait_for(lambda: partition_info(b, topic)["bytes"] <= LOCAL_MAX,
                     timeout=90, what="local bytes to drop")
            check_records(consume_all(b, topic, 3000), acked)
        finally:
            s.stop()
        b.assert_clean()


def test_kill9_keeps_acknowledged_records(s3):
    with Broker(config=broker_config(s3)) as b:
        topic = unique("k9")
        create_tiered(b, topic)
        acked = produce(b, topic, 0, 2500)
        wait_for(lambda: len(list_objects(s3)) >= 2, what="first uploads")
        acked.update(produce(b, topic, 2500, 1500))
        b.kill9()
        b.start()
        got = consume_all(b, topic, 4000)
        check_records(got, acked)
        # uploads carry on after the restart
        wait_for(lambda: partition_info(b, topic)["bytes"] <= LOCAL_MAX,
                 what="local bytes to drop after restart")
        check_records(consume_all(b, topic, 4000), acked)
        b.assert_clean()


def test_retention_deletes_remote_segments(s3):
    with Broker(config=broker_config(s3)) as b:
        topic = unique("ret")
        create_tiered(b, topic, **{"retention.bytes": 2 << 20, "local.retention.bytes": 512 << 10})
        produce(b, topic, 0, 6000)

        def trimmed():
            pi = partition_info(b, topic)
            remote = sum(list_objects(s3).values())
            return pi if pi["log_start_offset"] > 0 and remote + pi["bytes"] <= (2 << 20) + SEGMENT_BYTES else None

        pi = wait_for(trimmed, timeout=90, what="remote retention")
        start = pi["log_start_offset"]
        assert start >= 3000, pi
        got = consume_all(b, topic, 6000)
        assert min(got) == start and len(got) == 6000 - start
        for off, (k, v, _) in got.items():
            assert v == value(int(k))
        b.assert_clean()
