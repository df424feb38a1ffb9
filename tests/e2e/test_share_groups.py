"""End-to-end tests of KIP-932 share groups (door 1 of the shared subscription) with the
real preview share consumer of librdkafka 2.15.1 (tests/share/share_consumer.c, built
against tests/.deps/rdk215 by tests/share/build_rdk215.sh), plus raw frames through
kwire for the error paths a well-behaved client never takes."""

import os
import shutil
import signal
import struct
import subprocess
import tempfile
import time
import uuid

import pytest

import kwire
from harness import REPO_ROOT, run, unique

RDK = os.path.join(REPO_ROOT, "tests", ".deps", "rdk215")
SHARE_DIR = os.path.join(REPO_ROOT, "tests", "share")

SHARE_GROUP_HEARTBEAT, SHARE_GROUP_DESCRIBE, SHARE_FETCH, SHARE_ACKNOWLEDGE = 76, 77, 78, 79
INVALID_REQUEST = 42
GROUP_ID_NOT_FOUND = 69
INVALID_RECORD_STATE = 121
SHARE_SESSION_NOT_FOUND = 122
INVALID_SHARE_SESSION_EPOCH = 123
ACCEPT, RELEASE, REJECT = 1, 2, 3

# The share APIs are flexible from v0 (header v2); kwire learns it here.
for _k in (SHARE_GROUP_HEARTBEAT, SHARE_GROUP_DESCRIBE, SHARE_FETCH, SHARE_ACKNOWLEDGE):
    kwire.FIRST_FLEXIBLE.setdefault(_k, 0)


# ---- the librdkafka 2.15.1 programs --------------------------------------------------------


@pytest.fixture(scope="module")
def tools():
    """Builds librdkafka 2.15.1 if needed, then share_consumer and share_config."""
    r = run([os.path.join(SHARE_DIR, "build_rdk215.sh")], timeout=900)
    if r.returncode != 0:
        pytest.fail("building librdkafka 2.15.1 failed:\n%s" % (r.stdout + r.stderr).decode(errors="replace")[-3000:])
    d = tempfile.mkdtemp(prefix="sluice-share-")
    out = {}
    for name in ("share_consumer", "share_config"):
        exe = os.path.join(d, name)
        cmd = ["cc", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter",
               "-Wno-ignored-qualifiers", "-I", os.path.join(RDK, "include"), "-o", exe,
               os.path.join(SHARE_DIR, name + ".c"), "-L", os.path.join(RDK, "lib"),
               "-Wl,-rpath," + os.path.join(RDK, "lib"), "-lrdkafka"]
        r = run(cmd, timeout=120)
        assert r.returncode == 0, "compiling %s failed:\n%s" % (name, r.stderr.decode(errors="replace"))
        out[name] = exe
    yield out
    shutil.rmtree(d, ignore_errors=True)


def set_group(broker, tools, group, **cfg):
    """IncrementalAlterConfigs on the GROUP resource, as librdkafka's share tests do."""
    kv = ["%s=%s" % (k.replace("_", "."), v) for k, v in cfg.items()]
    r = run([tools["share_config"], "-b", broker.bootstrap, "-g", group] + kv, timeout=30)
    assert r.returncode == 0 and b"OK" in r.stdout, (r.stdout + r.stderr).decode(errors="replace")


def share_group(broker, tools, lock_ms=30000, limit=5, locks=None):
    group = unique("sg")
    cfg = {"share_auto_offset_reset": "earliest", "share_record_lock_duration_ms": lock_ms,
           "share_delivery_count_limit": limit}
    if locks:
        cfg["share_partition_max_record_locks"] = locks
    set_group(broker, tools, group, **cfg)
    return group


class ShareConsumer:
    """A share_consumer process; its REC lines parsed once it has exited."""

    def __init__(self, tools, broker, group, topic, *args):
        self.proc = subprocess.Popen(
            [tools["share_consumer"], "-b", broker.bootstrap, "-g", group, "-t", topic] + list(args),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out = ""
        self.err = ""

    def wait(self, timeout=90):
        o, e = self.proc.communicate(timeout=timeout)
        self.out, self.err = o.decode(errors="replace"), e.decode(errors="replace")
        return self

    def wait_line(self, prefix, timeout=30):
        """Reads stdout until a line starting with prefix (for the -H hold)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline().decode(errors="replace")
            if not line:
                break
            self.out += line
            if line.startswith(prefix):
                return line
        raise AssertionError("no %r line; got:\n%s" % (prefix, self.out[-2000:]))

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def recs(self):
        """[(offset, deliveries, action, value)] in the order processed."""
        out = []
        for line in self.out.splitlines():
            f = line.split()
            if f and f[0] == "REC":
                out.append((int(f[2]), int(f[3]), f[4], f[5] if len(f) > 5 else ""))
        return out

    def accepted(self):
        return [v for _, _, a, v in self.recs() if a == "accept"]

    def describe(self):
        return "rc=%s\n--- stdout ---\n%s\n--- stderr ---\n%s" % (
            self.proc.returncode, self.out[-3000:], self.err[-3000:])


def produce(broker, topic, values, per_batch=1):
    """Produces values in order, exactly per_batch records to a stored batch (raw Produce:
    a client with linger.ms=0 may send the first record of a batch on its own)."""
    with kwire.Conn.to(broker) as c:
        for i in range(0, len(values), per_batch):
            batch = kwire.record_batch([(None, v.encode()) for v in values[i:i + per_batch]])
            r = c.produce(9, topic, 0, batch)
            assert r["error_code"] == 0, r


def values(n, tag="v"):
    return ["%s%d" % (tag, i) for i in range(n)]


# ---- with the real share consumer ----------------------------------------------------------


@pytest.mark.timeout(240)
def test_share_consumers_split_one_partition(broker, tools):
    topic = unique("share-split")
    broker.create_topic(topic, partitions=1)
    group = share_group(broker, tools, locks=20)
    want = values(300)
    cs = [ShareConsumer(tools, broker, group, topic, "-s", "5", "-I", "4000", "-T", "60000")
          for _ in range(3)]
    time.sleep(1.5)
    produce(broker, topic, want)
    for c in cs:
        c.wait()
    got = [c.accepted() for c in cs]
    for c, g in zip(cs, got):
        assert g, "a share consumer got no records:\n" + c.describe()
    union = [v for g in got for v in g]
    assert sorted(set(union)) == sorted(want), "missing: %s" % sorted(set(want) - set(union))[:20]
    assert len(union) == len(want), "records accepted twice"


@pytest.mark.timeout(180)
def test_release_redelivers_and_reject_archives(broker, tools):
    topic = unique("share-rel")
    broker.create_topic(topic, partitions=1)
    group = share_group(broker, tools)
    want = values(40)
    produce(broker, topic, want, per_batch=5)
    c = ShareConsumer(tools, broker, group, topic, "-f", "-r", "v7", "-c", "-I", "3000", "-T", "60000").wait()
    recs = c.recs()
    assert recs, c.describe()
    rejected = [r for r in recs if r[3] == "v7"]
    assert [(d, a) for _, d, a, _ in rejected] == [(1, "reject")], "v7 must be rejected once, never redelivered: %s" % rejected
    for v in want:
        if v == "v7":
            continue
        seen = [(d, a) for _, d, a, val in recs if val == v]
        assert seen[0] == (1, "release"), (v, seen)
        assert seen[-1][1] == "accept" and seen[-1][0] >= 2, (v, seen)
        assert [a for _, a in seen].count("accept") == 1, (v, seen)


@pytest.mark.timeout(180)
def test_poison_record_is_archived_at_the_delivery_limit(broker, tools):
    topic = unique("share-poison")
    broker.create_topic(topic, partitions=1)
    group = share_group(broker, tools, limit=3)
    want = values(30)
    produce(broker, topic, want)
    c = ShareConsumer(tools, broker, group, topic, "-R", "v3", "-c", "-I", "3000", "-T", "60000").wait()
    recs = c.recs()
    poison = [(d, a) for _, d, a, v in recs if v == "v3"]
    assert poison == [(1, "release"), (2, "release"), (3, "release")], poison
    assert sorted(c.accepted()) == sorted(v for v in want if v != "v3"), c.describe()


@pytest.mark.timeout(180)
def test_killed_consumer_records_come_back_after_the_lock(broker, tools):
    topic = unique("share-kill")
    broker.create_topic(topic, partitions=1)
    group = share_group(broker, tools, lock_ms=2000)
    want = values(50)
    produce(broker, topic, want, per_batch=10)
    a = ShareConsumer(tools, broker, group, topic, "-H", "0", "-T", "60000")
    held = a.wait_line("HOLDING")
    t0 = time.monotonic()
    a.kill9()
    b = ShareConsumer(tools, broker, group, topic, "-c", "-I", "4000", "-T", "60000").wait()
    assert sorted(b.accepted()) == sorted(want), "missing after kill -9: %s\n%s" % (
        sorted(set(want) - set(b.accepted())), b.describe())
    assert any(d >= 2 for _, d, _, _ in b.recs()), "records held by the killed consumer were redelivered"
    assert time.monotonic() - t0 >= 1.5, held


@pytest.mark.timeout(240)
def test_restart_keeps_acknowledged_state(broker, tools):
    topic = unique("share-restart")
    broker.create_topic(topic, partitions=1)
    group = share_group(broker, tools, locks=10)  # one stored batch in flight at a time
    want = values(60)
    produce(broker, topic, want, per_batch=10)
    first = ShareConsumer(tools, broker, group, topic, "-n", "20", "-c", "-T", "60000").wait()
    done = set(first.accepted())
    assert 20 <= len(done) < 60, first.describe()
    broker.restart()
    second = ShareConsumer(tools, broker, group, topic, "-c", "-I", "4000", "-T", "60000").wait()
    again = set(second.accepted())
    assert again, second.describe()
    assert not (done & again), "acknowledged records came back after the restart: %s" % sorted(done & again)[:10]
    assert done | again == set(want), "lost: %s" % sorted(set(want) - done - again)[:10]


@pytest.mark.timeout(180)
def test_plain_group_sees_every_record_beside_a_share_group(broker, tools):
    from confluent_kafka import Consumer
    topic = unique("share-plain")
    broker.create_topic(topic, partitions=1)
    group = share_group(broker, tools)
    want = values(100)
    produce(broker, topic, want, per_batch=10)
    sc = ShareConsumer(tools, broker, group, topic, "-c", "-I", "3000", "-T", "60000")
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": unique("plain"),
                  "auto.offset.reset": "earliest", "enable.partition.eof": False})
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + 60
    while len(got) < len(want) and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append(m.value().decode())
    c.close()
    sc.wait()
    assert got == want
    assert sorted(sc.accepted()) == sorted(want), sc.describe()


# ---- raw frames: error paths ---------------------------------------------------------------


def str_c(s):
    return kwire.compact_string(s)


def tags():
    return kwire.tagged_fields()


def heartbeat_body(group, member, epoch, topics=None):
    body = str_c(group) + str_c(member) + kwire.int32(epoch) + str_c(None)
    if topics is None:
        body += kwire.uvarint(0)
    else:
        body += kwire.uvarint(len(topics) + 1) + b"".join(str_c(t) for t in topics)
    return body + tags()


def decode_heartbeat(body):
    r = kwire.Reader(body)
    out = {"throttle": r.int32(), "error_code": r.int16(), "error_message": r.compact_string(),
           "member_id": r.compact_string(), "member_epoch": r.int32(), "interval": r.int32()}
    present = r.int8()
    out["assignment"] = None
    if present == 1:
        def tp(rr):
            tid = rr.uuid()
            parts = rr.compact_array(lambda r3: r3.int32())
            rr.tagged_fields()
            return tid, parts
        out["assignment"] = r.compact_array(tp)
        r.tagged_fields()
    r.tagged_fields()
    assert r.remaining() == 0
    return out


def ack_batches(batches):
    """[(first, last, [types])] -> AcknowledgementBatches."""
    out = kwire.uvarint(len(batches) + 1)
    for first, last, types in batches:
        out += kwire.int64(first) + kwire.int64(last) + kwire.uvarint(len(types) + 1)
        out += b"".join(kwire.int8(t) for t in types) + tags()
    return out


def topics_body(topic_id, partitions):
    """{partition: batches} for one topic id."""
    body = kwire.uvarint(2) + kwire.uuid16(topic_id) + kwire.uvarint(len(partitions) + 1)
    for p, batches in partitions.items():
        body += kwire.int32(p) + ack_batches(batches) + tags()
    return body + tags()


def share_fetch_body(group, member, epoch, topic_id, partitions, max_wait=0, max_records=500):
    body = str_c(group) + str_c(member) + kwire.int32(epoch) + kwire.int32(max_wait)
    body += kwire.int32(1) + kwire.int32(1 << 20) + kwire.int32(max_records) + kwire.int32(max_records)
    body += topics_body(topic_id, partitions) if topic_id else kwire.uvarint(1)
    return body + kwire.uvarint(1) + tags()


def decode_share_fetch(body):
    r = kwire.Reader(body)
    out = {"throttle": r.int32(), "error_code": r.int16(), "error_message": r.compact_string(),
           "lock_ms": r.int32(), "parts": {}}

    def part(rr):
        p = {"index": rr.int32(), "error_code": rr.int16(), "error_message": rr.compact_string(),
             "ack_error": rr.int16(), "ack_message": rr.compact_string()}
        rr.int32(), rr.int32(), rr.tagged_fields()
        n = rr.uvarint() - 1
        p["records"] = rr.take(n) if n > 0 else b""

        def acq(r3):
            a = (r3.int64(), r3.int64(), r3.int16())
            r3.tagged_fields()
            return a
        p["acquired"] = rr.compact_array(acq)
        rr.tagged_fields()
        out["parts"][p["index"]] = p

    def topic(rr):
        rr.uuid()
        rr.compact_array(part)
        rr.tagged_fields()

    r.compact_array(topic)
    r.compact_array(lambda rr: None)
    r.tagged_fields()
    assert r.remaining() == 0
    return out


def share_ack_body(group, member, epoch, topic_id, partitions):
    return str_c(group) + str_c(member) + kwire.int32(epoch) + topics_body(topic_id, partitions) + tags()


def decode_share_ack(body):
    r = kwire.Reader(body)
    out = {"throttle": r.int32(), "error_code": r.int16(), "error_message": r.compact_string(),
           "parts": {}}

    def part(rr):
        idx, err = rr.int32(), rr.int16()
        rr.compact_string()
        rr.int32(), rr.int32(), rr.tagged_fields()
        rr.tagged_fields()
        out["parts"][idx] = err

    def topic(rr):
        rr.uuid()
        rr.compact_array(part)
        rr.tagged_fields()

    r.compact_array(topic)
    r.compact_array(lambda rr: None)
    r.tagged_fields()
    assert r.remaining() == 0
    return out


def topic_id_of(conn, topic):
    md = conn.metadata(12, [topic])
    return md["topics"][topic]["topic_id"]


def test_share_apis_advertised_and_v0_refused(broker):
    with kwire.Conn.to(broker) as c:
        apis = c.api_versions(3)["apis"]
        for k in (SHARE_GROUP_HEARTBEAT, SHARE_GROUP_DESCRIBE, SHARE_FETCH, SHARE_ACKNOWLEDGE):
            assert apis.get(k) == (0, 1), (k, apis.get(k))
        hb = decode_heartbeat(c.request(SHARE_GROUP_HEARTBEAT, 0, heartbeat_body("g", "m", 0, ["t"])))
        assert hb["error_code"] == kwire.UNSUPPORTED_VERSION
        f = decode_share_fetch(c.request(SHARE_FETCH, 0, share_fetch_body("g", "m", 0, None, {})))
        assert f["error_code"] == kwire.UNSUPPORTED_VERSION


@pytest.mark.timeout(120)
def test_raw_share_fetch_ack_and_errors(broker, tools):
    topic = unique("share-raw")
    broker.create_topic(topic, partitions=1)
    group = share_group(broker, tools)
    produce(broker, topic, values(10), per_batch=5)
    m1, m2 = uuid.uuid4().hex, uuid.uuid4().hex
    with kwire.Conn.to(broker) as c:
        tid = topic_id_of(c, topic)
        hb = decode_heartbeat(c.request(SHARE_GROUP_HEARTBEAT, 1, heartbeat_body(group, m1, 0, [topic])))
        assert hb["error_code"] == 0 and hb["member_id"] == m1 and hb["member_epoch"] > 0
        assert hb["assignment"] == [(tid, [0])]
        # a stale member epoch is fenced
        bad = decode_heartbeat(c.request(SHARE_GROUP_HEARTBEAT, 1, heartbeat_body(group, m1, hb["member_epoch"] + 5)))
        assert bad["error_code"] == 110  # FENCED_MEMBER_EPOCH

        # m1 opens a session and acquires 5 records (one stored batch)
        f = decode_share_fetch(c.request(SHARE_FETCH, 1, share_fetch_body(group, m1, 0, tid, {0: []}, max_records=5)))
        assert f["error_code"] == 0, f
        p = f["parts"][0]
        assert p["acquired"] == [(0, 4, 1)], p
        assert len(kwire.parse_record_batches(p["records"])) == 1

        # m2 opens its own session; acknowledging m1's records is INVALID_RECORD_STATE
        f2 = decode_share_fetch(c.request(SHARE_FETCH, 1, share_fetch_body(group, m2, 0, tid, {0: []}, max_records=5)))
        assert f2["parts"][0]["acquired"] == [(5, 9, 1)], f2
        a = decode_share_ack(c.request(SHARE_ACKNOWLEDGE, 1, share_ack_body(group, m2, 1, tid, {0: [(0, 1, [ACCEPT])]})))
        assert a["error_code"] == 0 and a["parts"][0] == INVALID_RECORD_STATE, a
        # ... and so is acknowledging records nobody holds
        a = decode_share_ack(c.request(SHARE_ACKNOWLEDGE, 1, share_ack_body(group, m1, 1, tid, {0: [(20, 30, [ACCEPT])]})))
        assert a["parts"][0] == INVALID_RECORD_STATE, a

        # a stale share session epoch, and a session that does not exist
        a = decode_share_ack(c.request(SHARE_ACKNOWLEDGE, 1, share_ack_body(group, m1, 7, tid, {0: [(0, 4, [ACCEPT])]})))
        assert a["error_code"] == INVALID_SHARE_SESSION_EPOCH, a
        a = decode_share_ack(c.request(SHARE_ACKNOWLEDGE, 1, share_ack_body(group, "nobody", 3, tid, {0: [(0, 4, [ACCEPT])]})))
        assert a["error_code"] == SHARE_SESSION_NOT_FOUND, a
        f = decode_share_fetch(c.request(SHARE_FETCH, 1, share_fetch_body(group, m1, 9, tid, {0: []})))
        assert f["error_code"] == INVALID_SHARE_SESSION_EPOCH, f
        # a new session may not carry acknowledgements; a malformed batch is refused
        f = decode_share_fetch(c.request(SHARE_FETCH, 1, share_fetch_body(group, "m3", 0, tid, {0: [(0, 0, [ACCEPT])]})))
        assert f["error_code"] == INVALID_REQUEST, f

        # m1 settles what it holds with per-offset types at its session epoch (2 after
        # the ack above moved it): accept 0-1, release 2, reject 3-4
        a = decode_share_ack(c.request(SHARE_ACKNOWLEDGE, 1, share_ack_body(
            group, m1, 2, tid, {0: [(0, 4, [ACCEPT, ACCEPT, RELEASE, REJECT, REJECT])]})))
        assert a["error_code"] == 0 and a["parts"][0] == 0, a
        # offset 2 comes back to m1 with delivery count 2; 3 and 4 never do
        f = decode_share_fetch(c.request(SHARE_FETCH, 1, share_fetch_body(group, m1, 3, tid, {})))
        assert f["error_code"] == 0 and f["parts"][0]["acquired"] == [(2, 2, 2)], f

        d = c.request(SHARE_GROUP_DESCRIBE, 1, kwire.uvarint(2) + str_c(group) + kwire.boolean(False) + tags())
        r = kwire.Reader(d)
        r.int32()
        assert r.uvarint() == 2
        assert r.int16() == 0
        r.compact_string()
        assert r.compact_string() == group
        assert r.compact_string() == "Stable"

        # leaving with epoch -1 closes membership; a closed session releases what it held
        f = decode_share_fetch(c.request(SHARE_FETCH, 1, share_fetch_body(group, m1, -1, tid, {})))
        assert f["error_code"] == 0, f
        hb = decode_heartbeat(c.request(SHARE_GROUP_HEARTBEAT, 1, heartbeat_body(group, m1, -1)))
        assert hb["error_code"] == 0 and hb["member_epoch"] == -1
        f2 = decode_share_fetch(c.request(SHARE_FETCH, 1, share_fetch_body(group, m2, 2, tid, {0: [(5, 9, [ACCEPT])]})))
        assert f2["parts"][0]["ack_error"] == 0 and f2["parts"][0]["acquired"] == [(2, 2, 3)], f2


def test_group_config_describe_and_bad_values(broker, tools):
    group = unique("sg-cfg")
    set_group(broker, tools, group, share_record_lock_duration_ms=15000)
    r = run([tools["share_config"], "-b", broker.bootstrap, "-g", group, "share.delivery.count.limit=abc"], timeout=30)
    assert r.returncode == 1 and b"INVALID_CONFIG" in r.stdout, r.stdout
    r = run([tools["share_config"], "-b", broker.bootstrap, "-g", group, "no.such.config=1"], timeout=30)
    assert r.returncode == 1, r.stdout
    # DescribeConfigs v4 (flexible) on the GROUP resource (type 32)
    with kwire.Conn.to(broker) as c:
        body = kwire.uvarint(2) + kwire.int8(32) + str_c(group) + kwire.uvarint(0) + tags()
        body += kwire.boolean(False) + kwire.boolean(False) + tags()
        d = kwire.Reader(c.request(32, 4, body))
    d.int32()
    assert d.uvarint() == 2
    assert d.int16() == 0
    d.compact_string()
    assert d.int8() == 32 and d.compact_string() == group
    cfg = {}
    for _ in range(d.uvarint() - 1):
        k, v = d.compact_string(), d.compact_string()
        d.boolean(), d.int8(), d.boolean()
        for _ in range(d.uvarint() - 1):
            d.compact_string(), d.compact_string(), d.int8(), d.tagged_fields()
        d.int8(), d.compact_string(), d.tagged_fields()
        cfg[k] = v
    assert cfg["share.record.lock.duration.ms"] == "15000"
    assert cfg["share.auto.offset.reset"] == "latest"
    assert cfg["share.delivery.count.limit"] == "5"


@pytest.mark.timeout(120)
def test_release_call_finds_share_members_by_client_id(broker, tools):
    """POST /v1/share-groups/{id}/members/{member}/release with a pod name: every share
    member whose client.id is that name gives its records back at once (the operator's
    spot-reclaim path); member ids keep working."""
    topic = unique("share-relcid")
    broker.create_topic(topic, partitions=1)
    group = share_group(broker, tools)
    produce(broker, topic, values(30), per_batch=5)
    pod, other = unique("trainer-a"), unique("trainer-b")
    members = [(uuid.uuid4().hex, pod), (uuid.uuid4().hex, pod), (uuid.uuid4().hex, other)]
    conns = [kwire.Conn.to(broker, client_id=cid) for _, cid in members]
    try:
        tid = topic_id_of(conns[0], topic)
        for (mid, _), c in zip(members, conns):
            hb = decode_heartbeat(c.request(SHARE_GROUP_HEARTBEAT, 1, heartbeat_body(group, mid, 0, [topic])))
            assert hb["error_code"] == 0, hb
            f = decode_share_fetch(c.request(SHARE_FETCH, 1, share_fetch_body(group, mid, 0, tid, {0: []}, max_records=5)))
            assert f["error_code"] == 0 and len(f["parts"][0]["acquired"]) == 1, f

        def held():
            st, g = broker.http("GET", "/v1/share-groups/" + group)
            assert st == 200, g
            return {m["member_id"]: m["inflight"] for m in g["members"]}, g["acquired"]

        assert held() == ({members[0][0]: 5, members[1][0]: 5, members[2][0]: 5}, 15)
        # the pod name matches both of its members, and nobody else's records
        st, r = broker.http("POST", "/v1/share-groups/%s/members/%s/release" % (group, pod))
        assert st == 200 and r["known"] and r["released"] == 10, r
        assert held() == ({members[0][0]: 0, members[1][0]: 0, members[2][0]: 5}, 5)
        # released records go to the next fetch at once, not after the lock
        f = decode_share_fetch(conns[2].request(SHARE_FETCH, 1, share_fetch_body(group, members[2][0], 1, tid, {}, max_records=500)))
        got = sum(last - first + 1 for first, last, _ in f["parts"][0]["acquired"])
        assert got >= 10, f
        # a member id still works; an unknown name is not known
        st, r = broker.http("POST", "/v1/share-groups/%s/members/%s/release" % (group, members[2][0]))
        assert st == 200 and r["known"] and r["released"] == 5 + got, r
        st, r = broker.http("POST", "/v1/share-groups/%s/members/nobody/release" % group)
        assert st == 200 and not r["known"] and r["released"] == 0, r
    finally:
        for c in conns:
            c.close()


@pytest.mark.timeout(120)
def test_release_call_by_client_id_with_the_share_consumer(broker, tools):
    """The librdkafka share consumer's client.id (its default, "rdkafka", here) names it
    for the release call: what it holds goes to another consumer before its lock ends."""
    topic = unique("share-relrdk")
    broker.create_topic(topic, partitions=1)
    group = share_group(broker, tools, lock_ms=60000)
    want = values(20)
    produce(broker, topic, want, per_batch=10)
    a = ShareConsumer(tools, broker, group, topic, "-H", "0", "-T", "60000")
    try:
        a.wait_line("HOLDING")
        st, r = broker.http("POST", "/v1/share-groups/%s/members/rdkafka/release" % group)
        assert st == 200 and r["known"] and r["released"] > 0, r
        t0 = time.monotonic()
        b = ShareConsumer(tools, broker, group, topic, "-n", str(len(want)), "-I", "4000", "-T", "40000").wait()
        # the first consumer holds nothing more: the release happened, not its 60 s lock
        assert sorted(b.accepted()) == sorted(want), b.describe()
        assert time.monotonic() - t0 < 40
    finally:
        a.kill9()
