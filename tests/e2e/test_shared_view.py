"""End-to-end tests of shared views (share_view.h) with real classic clients.

A one-partition topic created with shared: {virtual_partitions: V} gets a view
<topic>.shared with V partitions; ordinary consumer groups on the view share the one
real partition. Consumers run as separate processes (view_member.py) so that one can be
killed with -9. Records are produced in small batches because the view hands out whole
stored batches.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest
from confluent_kafka import Consumer, Producer

from harness import REPO_ROOT, unique

MEMBER = os.path.join(os.path.dirname(__file__), "view_member.py")
NODE_PATH = os.path.join(REPO_ROOT, "tests", ".deps", "node_modules")
JS_MEMBER = os.path.join(os.path.dirname(__file__), "js", "view_member.js")


class Member:
    """One consumer process; its JSON events are collected by a reader thread."""

    def __init__(self, broker, topic, group, name, client="confluent", work_ms=0, conf=None):
        spec = {"client": client, "bootstrap": broker.bootstrap, "topic": topic,
                "group": group, "name": name, "work_ms": work_ms, "conf": conf or {}}
        self.name = name
        self.events = []
        self.lock = threading.Lock()
        if client == "kafkajs":
            env = dict(os.environ, NODE_PATH=NODE_PATH, KAFKAJS_NO_PARTITIONER_WARNING="1")
            cmd = ["node", JS_MEMBER, json.dumps(spec)]
        else:
            env = None
            cmd = [sys.executable if sys.executable.startswith("/usr/bin") else "/usr/bin/python3",
                   MEMBER, json.dumps(spec)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, env=env)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            with self.lock:
                self.events.append(ev)

    def values(self):
        with self.lock:
            return [e["v"] for e in self.events if e["ev"] == "msg"]

    def uncommitted(self):
        with self.lock:
            return [v for e in self.events if e["ev"] == "commit_error" for v in e.get("vals", [])]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(5)

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.reader.join(5)


def produce(broker, topic, start, count, per_batch=5):
    """Produces values r<start>..r<start+count-1> in batches of per_batch records."""
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0,
                  "batch.num.messages": per_batch, "enable.idempotence": False})
    for i in range(start, start + count):
        p.produce(topic, value=b"r%d" % i)
        if (i - start) % per_batch == per_batch - 1:
            p.flush(10)
    assert p.flush(10) == 0
    return ["r%d" % i for i in range(start, start + count)]


def make_view(broker, vparts, **shared):
    topic = unique("sv")
    body = {"virtual_partitions": vparts}
    body.update(shared)
    t = broker.create_topic(topic, 1, shared=body)
    assert t["shared"]["view"] == topic + ".shared"
    return topic, topic + ".shared"


def union(members):
    out = []
    for m in members:
        out.extend(m.values())
    return out


def wait_until(pred, timeout, what, members=(), broker=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.2)
    detail = {m.name: len(m.values()) for m in members}
    raise AssertionError("timed out waiting for %s; per member: %s\n%s" % (
        what, detail, broker.log_tail(40) if broker else ""))


def plain_consume(broker, topic, n, timeout=30):
    """A plain group on the physical topic: returns every value it reads."""
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": unique("plain"),
                  "auto.offset.reset": "earliest", "enable.partition.eof": False})
    c.subscribe([topic])
    got = []
    deadline = time.time() + timeout
    try:
        while len(got) < n and time.time() < deadline:
            m = c.poll(0.2)
            if m is not None and not m.error():
                got.append((m.offset(), m.value().decode()))
    finally:
        c.close()
    return got


@pytest.mark.timeout(150)
def test_four_consumers_all_get_work(broker):
    topic, view = make_view(broker, 16)
    sent = produce(broker, topic, 0, 2000)
    group = unique("g")
    members = [Member(broker, view, group, "c%d" % i, work_ms=2) for i in range(4)]
    try:
        wait_until(lambda: set(union(members)) >= set(sent), 100, "every record", members, broker)
    finally:
        for m in members:
            m.stop()
    counts = [len(m.values()) for m in members]
    assert all(c > 100 for c in counts), counts  # every consumer got real work
    got = union(members)
    assert set(got) == set(sent)
    # commits acknowledged everything: nothing left in flight
    st, g = broker.http("GET", "/v1/groups/" + group)
    assert st == 200 and g["share"]["inflight"] == 0, g
    assert g["share"]["acknowledged"] >= len(sent)
    # a plain group on the physical topic sees every record, at its own offsets
    plain = plain_consume(broker, topic, len(sent))
    assert [v for _, v in plain] == sent
    assert [o for o, _ in plain] == list(range(len(sent)))
    # metadata of the physical topic is unchanged; the view is listed with V partitions
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "md"})
    md = c.list_topics(timeout=10)
    c.close()
    assert len(md.topics[topic].partitions) == 1
    assert len(md.topics[view].partitions) == 16


@pytest.mark.timeout(300)
def test_scale_8_32_8(broker):
    topic, view = make_view(broker, 64, max_unacked=32)
    group = unique("g")
    total = 6000
    sent = []
    done = threading.Event()

    def producer():
        for k in range(0, total, 500):  # mid-stream: records keep arriving while scaling
            sent.extend(produce(broker, topic, k, 500))
            time.sleep(0.5)
        done.set()

    members = [Member(broker, view, group, "a%d" % i, work_ms=2) for i in range(8)]
    extra = []
    th = threading.Thread(target=producer, daemon=True)
    th.start()
    try:
        wait_until(lambda: len(set(union(members))) >= 800, 60, "progress with 8", members, broker)
        extra = [Member(broker, view, group, "b%d" % i, work_ms=2) for i in range(24)]
        wait_until(lambda: sum(1 for m in extra if m.values()) >= 16, 90,
                   "work for the 24 new consumers", members + extra, broker)
        for m in extra:
            m.stop()  # back to 8: graceful leave mid-stream
        wait_until(done.is_set, 60, "the producer")
        everyone = members + extra
        wait_until(lambda: set(union(everyone)) >= set(sent), 120, "every record", everyone,
                   broker)
    finally:
        for m in members + extra:
            m.stop()
    got = union(members + extra)
    assert set(got) == set(sent)
    assert len(sent) == total
    busy32 = sum(1 for m in extra if m.values())
    assert busy32 >= 16, busy32
    # ownership churn hands prefetched records back uncounted: nothing reached the limit
    st, g = broker.http("GET", "/v1/groups/" + group)
    assert g["share"]["archived"] == 0, g["share"]


@pytest.mark.timeout(150)
def test_kill9_redelivers_only_what_it_held(broker):
    topic, view = make_view(broker, 16, lock_ms=60000)
    sent = produce(broker, topic, 0, 1500)
    group = unique("g")
    members = [Member(broker, view, group, "k%d" % i, work_ms=5) for i in range(4)]
    victim = members[0]
    try:
        wait_until(lambda: len(victim.values()) >= 50, 60, "the victim working", members, broker)
        victim.kill9()
        held = set(victim.values())
        live = members[1:]
        wait_until(lambda: set(union(members)) >= set(sent), 100, "every record", members, broker)
    finally:
        for m in members:
            m.stop()
    got = union(members)
    assert set(got) == set(sent)
    seen, dups = set(), set()
    for v in got:
        (dups if v in seen else seen).add(v)
    # duplicates only within what the killed consumer held (or a live one failed to commit
    # during the rebalance)
    allowed = held | set(v for m in live for v in m.uncommitted())
    assert dups <= allowed, sorted(dups - allowed)[:20]


@pytest.mark.timeout(120)
def test_release_call_redelivers_at_once(broker):
    """A consumer dies holding records; its session would keep them for 60 s, the
    release call gives them to the others at once."""
    topic, view = make_view(broker, 8, lock_ms=120000)
    sent = produce(broker, topic, 0, 600)
    group = unique("g")
    conf = {"session.timeout.ms": 60000}
    members = [Member(broker, view, group, "r%d" % i, work_ms=5, conf=conf) for i in range(2)]
    try:
        wait_until(lambda: len(members[0].values()) >= 20, 60, "work", members, broker)
        members[0].kill9()
        st, g = broker.http("GET", "/v1/groups/" + group)
        sg = g["share"]["group_id"]
        st, r = broker.http("POST", "/v1/share-groups/%s/members/r0/release" % sg)
        assert st == 200 and r["known"] and r["released"] > 0, r
        t0 = time.time()
        wait_until(lambda: set(union(members)) >= set(sent), 40, "every record", members, broker)
        assert time.time() - t0 < 40
    finally:
        for m in members:
            m.stop()
    st, g = broker.http("GET", "/v1/groups/" + group)
    assert g["share"]["redeliveries"] > 0


@pytest.mark.timeout(120)
def test_kafka_python_on_view(broker):
    topic, view = make_view(broker, 8)
    sent = produce(broker, topic, 0, 400)
    group = unique("g")
    members = [Member(broker, view, group, "kp%d" % i, client="kafka-python") for i in range(2)]
    try:
        wait_until(lambda: set(union(members)) >= set(sent), 90, "every record", members, broker)
    finally:
        for m in members:
            m.stop()
    assert set(union(members)) == set(sent)


@pytest.mark.timeout(120)
@pytest.mark.skipif(shutil.which("node") is None or not os.path.isdir(os.path.join(NODE_PATH, "kafkajs")),
                    reason="node or kafkajs missing: run scripts/deps.sh test")
def test_kafkajs_on_view(broker):
    topic, view = make_view(broker, 8)
    sent = produce(broker, topic, 0, 400)
    group = unique("g")
    members = [Member(broker, view, group, "js%d" % i, client="kafkajs") for i in range(2)]
    try:
        wait_until(lambda: set(union(members)) >= set(sent), 90, "every record", members, broker)
    finally:
        for m in members:
            m.stop()
    assert set(union(members)) == set(sent)


def test_view_admin_and_errors(broker):
    topic, view = make_view(broker, 4, lock_ms=5000, max_deliveries=3)
    # the view's settings are topic configs, validated like any other
    st, r = broker.http("POST", "/v1/topics", {"name": unique("bad"), "shared": {"virtual_partitions": 0}})
    assert st == 400, r
    st, r = broker.http("POST", "/v1/topics", {"name": unique("bad"), "shared": {"lock_ms": 5000}})
    assert st == 400, r
    st, r = broker.http("POST", "/v1/topics", {"name": unique("bad"), "shared": {"virtual_partitions": 2, "x": 1}})
    assert st == 400, r
    t = broker.get_topic(topic)
    assert t["config"]["shared.virtual.partitions"] == "4"
    # PUT share group: idempotent, grows the view, sets expected members
    body = {"topic": topic, "expected_members": 3, "virtual_partitions": 6, "lock_ms": 7000}
    for _ in range(2):
        st, g = broker.http("PUT", "/v1/share-groups/sg-" + topic, body)
        assert st == 200, g
    assert g["config"]["expected_members"] == 3 and g["config"]["lock_ms"] == 7000
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "md"})
    md = c.list_topics(view, timeout=10)
    c.close()
    assert len(md.topics[view].partitions) == 6
    st, r = broker.http("PUT", "/v1/share-groups/x", {"topic": "nope", "virtual_partitions": 2})
    assert st == 404, r
    st, r = broker.http("POST", "/v1/share-groups/none/members/m/release")
    assert st == 404, r
    st, r = broker.http("GET", "/v1/share-groups/sg-" + topic)
    assert st == 200 and r["type"] == "share"
    st, text = broker.http("GET", "/metrics")
    assert "sluice_share_inflight" in text and "sluice_share_archived_total" in text
