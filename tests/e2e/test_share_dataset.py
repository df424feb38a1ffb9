"""test_share_dataset.py: both shared-subscription doors over dataset topics. A dataset's
offsets are sparse (object << 24 | record, each object's last batch claiming the rest of
its range), so the share engine must track records, not offsets: the gaps are never in
flight, never handed out and never count against a cap. Read through a <topic>.shared
view by two confluent-kafka consumers in one group, and by two KIP-932 share consumers
(librdkafka 2.15, tests/share): every record exactly once, promptly, and nothing left in
flight once everything is acknowledged.
"""

import os
import sys
import time

import pytest

from harness import REPO_ROOT, unique

sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "e2e"))

from test_datasets import BUCKET, clean_broker, start_s3, wait_state  # noqa: E402
from test_share_groups import ShareConsumer, share_group, tools  # noqa: E402,F401

from confluent_kafka import Consumer, TopicPartition  # noqa: E402


@pytest.fixture
def s3():
    """One S3 server: s3rver when installed, else moto (the engine is what is tested)."""
    try:
        srv = start_s3("s3rver")
    except pytest.skip.Exception:
        srv = start_s3("moto")
    yield srv
    srv.stop()


def upload(cli, prefix, bodies):
    """Puts bodies as prefix + obj-NNN; returns {key: body}."""
    objs = {}
    for i, body in enumerate(bodies):
        key = "%sobj-%03d" % (prefix, i)
        cli.put_object(BUCKET, key, body)
        objs[key] = body
    return objs


def create(b, srv, name, prefix, fmt, partitions, shared=None):
    src = {"uri": "s3://%s/%s" % (BUCKET, prefix), "endpoint": "http://127.0.0.1:%d" % srv.port,
           "region": "us-east-1", "format": fmt,
           "credentials": {"access_key_id": "S3RVER", "secret_access_key": "S3RVER"}}
    extra = {"shared": shared} if shared else {}
    b.create_topic(name, partitions=partitions, source=src, **extra)


def rescan(b, name, objects):
    st, _ = b.http("POST", "/v1/topics/%s/rescan" % name)
    assert st == 202
    deadline = time.time() + 30
    while b.get_topic(name)["source"]["objects"] != objects:
        assert time.time() < deadline, b.get_topic(name)["source"]
        time.sleep(0.05)


def share_state(b, group):
    st, g = b.http("GET", "/v1/share-groups/" + group)
    assert st == 200, g
    return g


def wait_inflight_zero(b, group, timeout=15):
    deadline = time.time() + timeout
    g = share_state(b, group)
    while g["inflight"] != 0 and time.time() < deadline:
        time.sleep(0.1)
        g = share_state(b, group)
    assert g["inflight"] == 0 and g["acquired"] == 0, g
    return g


def view_consume(b, view, n, start, timeout=60):
    """Two consumers of one group on the view, each committing every record it gets. Once
    both own virtual partitions, start() adds the objects. Polls until n records came, and
    a little longer to catch duplicates. Returns [(consumer, virtual partition, key, value)]."""
    conf = {"bootstrap.servers": b.bootstrap, "group.id": unique("vg"), "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "fetch.wait.max.ms": 100,
            "session.timeout.ms": 6000, "heartbeat.interval.ms": 500}
    cs = [Consumer(dict(conf, **{"client.id": "pod-%d" % i})) for i in range(2)]
    got = []

    def poll_all(wait):
        for i, c in enumerate(cs):
            m = c.poll(wait)
            if m is None or m.error():
                continue
            got.append((i, m.partition(), m.key(), m.value()))
            c.commit(offsets=[TopicPartition(view, m.partition(), m.offset() + 1)], asynchronous=False)

    try:
        for c in cs:
            c.subscribe([view])
        deadline = time.time() + 30
        while not all(c.assignment() for c in cs):
            assert time.time() < deadline, "the group never settled"
            poll_all(0.05)
        t0 = time.time()
        start()
        while len(got) < n:
            assert time.time() - t0 < timeout, "%d of %d records after %ds" % (len(got), n, timeout)
            poll_all(0.05)
        elapsed = time.time() - t0
        end = time.time() + 1.0  # anything more would be a duplicate
        while time.time() < end:
            poll_all(0.05)
    finally:
        for c in cs:
            c.close()
    return got, elapsed


@pytest.mark.timeout(180)
def test_view_over_object_and_lines_datasets(s3):
    cli = s3.client()
    with clean_broker() as b:
        # object format: 16 objects over 2 partitions, each one record; the first is there
        # from the start, the rest come once both consumers are in (a rescan)
        bodies = [("object %d " % i).encode() * (i + 1) for i in range(16)]
        objs = upload(cli, "vo/", bodies[:1])
        lines = {"vl/obj-%03d" % i: ["o%d-l%d" % (i, j) for j in range(60)] for i in range(10)}
        for k in sorted(lines)[:1]:
            cli.put_object(BUCKET, k, ("\n".join(lines[k]) + "\n").encode())
        shared = {"virtual_partitions": 8, "max_unacked": 2}
        create(b, s3, "dso", "vo/", "object", 2, shared)
        create(b, s3, "dsl", "vl/", "lines", 2, shared)
        wait_state(b, "dso")
        wait_state(b, "dsl")

        def add_objects():
            objs.update(upload(cli, "vo/", bodies))
            rescan(b, "dso", 16)

        got, elapsed = view_consume(b, "dso.shared", 16, add_objects)
        assert elapsed < 30, "the view is slow: %.1fs" % elapsed
        keys = [k.decode() for _, _, k, _ in got]
        assert sorted(keys) == sorted(objs), "each object exactly once: %s" % sorted(keys)
        for _, _, k, v in got:
            assert v == objs[k.decode()]
        assert {i for i, _, _, _ in got} == {0, 1}, "both consumers got records"
        assert len({vp for _, vp, _, _ in got}) > 2, "records spread over virtual partitions"
        g = wait_inflight_zero(b, "dso.shared")
        assert g["acknowledged"] == len(objs), g

        # lines format: 10 objects of 60 lines

        def add_lines():
            for k, ls in lines.items():
                cli.put_object(BUCKET, k, ("\n".join(ls) + "\n").encode())
            rescan(b, "dsl", len(lines))

        n = sum(len(ls) for ls in lines.values())
        got, elapsed = view_consume(b, "dsl.shared", n, add_lines)
        assert elapsed < 30, "the view is slow: %.1fs" % elapsed
        seen = sorted((k.decode(), v.decode()) for _, _, k, v in got)
        assert seen == sorted((k, line) for k, ls in lines.items() for line in ls)
        assert {i for i, _, _, _ in got} == {0, 1}, "both consumers got records"
        g = wait_inflight_zero(b, "dsl.shared")
        assert g["acknowledged"] == n, g


@pytest.mark.timeout(240)
def test_share_consumers_over_datasets(s3, tools):  # noqa: F811
    cli = s3.client()
    with clean_broker() as b:
        objs = upload(cli, "so/", [b"sobj-%d" % i for i in range(12)])
        lines = ["s%d-l%d" % (i, j) for i in range(3) for j in range(100)]
        for i in range(3):
            cli.put_object(BUCKET, "sl/obj-%03d" % i,
                           ("\n".join(lines[i * 100:(i + 1) * 100]) + "\n").encode())
        create(b, s3, "kso", "so/", "object", 2)
        create(b, s3, "ksl", "sl/", "lines", 2)
        wait_state(b, "kso")
        wait_state(b, "ksl")
        for topic, want in (("kso", sorted(v.decode() for v in objs.values())), ("ksl", sorted(lines))):
            group = share_group(b, tools, locks=50)
            t0 = time.time()
            cs = [ShareConsumer(tools, b, group, topic, "-c", "-I", "4000", "-T", "25000")
                  for _ in range(2)]
            for c in cs:
                c.wait()
            acc = [v for c in cs for v in c.accepted()]
            assert sorted(acc) == want, "each record exactly once:\n" + "\n".join(c.describe() for c in cs)
            assert time.time() - t0 < 50
            g = wait_inflight_zero(b, group)
            assert g["acknowledged"] == len(want), g
