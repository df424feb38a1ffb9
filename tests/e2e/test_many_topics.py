"""Many cheap topics (issue 6): CreateTopics with 1,000 topics in one request, per-tenant
prefix paging, Metadata for named topics, max.topics, a restart with 5,000 topics, the
all-topics Metadata (kcat -L) and its response ceiling, and topics that go idle, are
unloaded and come back with their data and idempotent producer state.

The idle sweep runs once a minute, so the broker for that test starts with the module
(an autouse fixture) and is checked by the last test, after the others have run.
"""

import json
import random
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from kafka import KafkaAdminClient
from kafka.admin import NewTopic as KNewTopic
from kafka.errors import PolicyViolationError

import kwire
from harness import Broker, run, unique

POLICY_VIOLATION = 44
KINDS = ("input", "output", "state", "events")
IDLE_SWEEP_S = 60  # topic.c: IDLE_SWEEP_US


def tenant_names(n, tenant="tenant", start=0):
    """n names tenant.agent-NNNNN.<kind>, four kinds per agent."""
    return ["%s.agent-%05d.%s" % (tenant, (start + i) // len(KINDS), KINDS[(start + i) % len(KINDS)])
            for i in range(n)]


def kp_admin(broker):
    return KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=60000,
                            client_id=unique("kpadmin"))


def create_many(broker, names, per_request=1000, config=None):
    """CreateTopics through kafka-python, per_request topics in each request."""
    a = kp_admin(broker)
    try:
        for i in range(0, len(names), per_request):
            chunk = names[i:i + per_request]
            resp = a.create_topics([KNewTopic(n, 1, 1, topic_configs=dict(config or {})) for n in chunk],
                                   timeout_ms=60000)
            errs = [(t, e) for t, e, *_ in resp.topic_errors if e != 0]
            assert not errs, "CreateTopics errors: %r" % errs[:5]
            assert sorted(t for t, *_ in resp.topic_errors) == sorted(chunk)
    finally:
        a.close()


def metric(broker, name):
    status, text = broker.http("GET", "/metrics")
    assert status == 200
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError("no %s in /metrics" % name)


def list_prefix(broker, prefix, limit):
    """Walk GET /v1/topics?prefix=&limit=&after= to the end; returns (names, pages)."""
    names, pages, after = [], 0, None
    while True:
        q = "/v1/topics?prefix=%s&limit=%d" % (prefix, limit)
        if after:
            q += "&after=" + after
        status, resp = broker.http("GET", q)
        assert status == 200, (status, resp)
        page = [t["name"] for t in resp["topics"]]
        assert len(page) <= limit, "page of %d with limit %d" % (len(page), limit)
        names += page
        pages += 1
        after = resp.get("next")
        if not after:
            return names, pages
        assert after == page[-1], "next %r is not the last name of the page %r" % (after, page[-1])
        assert pages < 10000, "paging does not end"


def produce_to(broker, topic_values, **conf):
    """{topic: [values]} -> {topic: [offsets]} with one producer (acks=all)."""
    c = {"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5, "message.timeout.ms": 30000}
    c.update(conf)
    p = Producer(c)
    out = {t: [None] * len(vs) for t, vs in topic_values.items()}
    errs = []

    def cb_for(t, i):
        def cb(err, msg):
            if err is not None:
                errs.append((t, i, err))
            else:
                out[t][i] = msg.offset()
        return cb

    for t, vs in topic_values.items():
        for i, v in enumerate(vs):
            p.produce(t, value=v, key=b"k", partition=0, on_delivery=cb_for(t, i))
        p.poll(0)
    assert p.flush(60) == 0
    assert not errs, errs[:5]
    return out


def read_partition(broker, topic, expect, timeout=20):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": unique("r"), "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "fetch.wait.max.ms": 100, "enable.partition.eof": False})
    out = []
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + timeout
        while len(out) < expect and time.monotonic() < deadline:
            for m in c.consume(num_messages=100, timeout=0.3):
                assert not m.error(), m.error()
                out.append((m.offset(), m.value()))
        out += [(m.offset(), m.value()) for m in c.consume(num_messages=10, timeout=0.3) if not m.error()]
    finally:
        c.close()
    return out


def watermarks_many(broker, topics):
    """{topic: (low, high)} for partition 0 of each, through one consumer."""
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": unique("wm")})
    try:
        return {t: c.get_watermark_offsets(TopicPartition(t, 0), timeout=10) for t in topics}
    finally:
        c.close()


def stop_checked(b, request=None):
    rep = getattr(request.node, "rep_call", None) if request is not None else None
    if rep is not None and rep.failed:
        print("--- broker log tail (%s) ---\n%s" % (b.log_path, b.log_tail(80)))
    try:
        if b.proc is not None:
            rc = b.stop()
            assert rc == 0, "broker exit code on SIGTERM was %r\n%s" % (rc, b.log_tail())
        b.assert_clean()
    finally:
        b.close()


# ---- idle topics: started with the module, checked at the end --------------------------------


IDLE_TOPICS = {"persistent": 100, "hybrid": 60, "memory": 40}


@pytest.fixture(scope="module", autouse=True)
def idle_setup():
    """A broker with topic.idle.ms=1000 and 200 topics in three modes, written by one
    idempotent producer that stays open; the idle sweep (once a minute) unloads the
    stored ones while the other tests run."""
    b = Broker(config={"topic.idle.ms": 1000})
    b.start()
    started = time.monotonic()
    topics = {}
    for mode, n in IDLE_TOPICS.items():
        for i in range(n):
            name = "idle.%s-%03d" % (mode, i)
            topics[name] = mode
    with kwire.Conn.to(b) as c:
        r = c.create_topics(5, [(t, 1, 1, {"storage.mode": m}) for t, m in topics.items()])
    assert {v["error_code"] for v in r.values()} == {0}, r
    p = Producer({"bootstrap.servers": b.bootstrap, "enable.idempotence": True, "linger.ms": 5,
                  "message.timeout.ms": 60000})
    state = {"broker": b, "started": started, "topics": topics, "producer": p, "errors": [], "offsets": {}}

    def cb(err, msg):
        if err is not None:
            state["errors"].append((msg.topic(), err))
        else:
            state["offsets"].setdefault(msg.topic(), []).append(msg.offset())

    state["cb"] = cb
    for t in topics:
        for i in range(3):
            p.produce(t, value=b"%s-%d" % (t.encode(), i), partition=0, on_delivery=cb)
    assert p.flush(60) == 0 and not state["errors"], state["errors"][:5]
    try:
        yield state
    finally:
        p.flush(10)
        stop_checked(b)


# ---- 1,000 topics in one request, prefix paging, named Metadata ------------------------------------


def test_create_1000_topics_in_one_request_and_page_by_prefix(broker):
    names = tenant_names(1000)
    create_many(broker, names, per_request=1000)
    # Neighbours of the prefix that must not be listed with it.
    for other in ("tenant.agent", "tenant.agent_0", "tenant.agens-9", "tenant.agenu-0", "other.agent-00001.input",
                  "tenant2.agent-00000.input"):
        broker.create_topic(other)
    assert metric(broker, "sluice_topics") == 1006

    got, pages = list_prefix(broker, "tenant.agent-", 100)
    assert len(got) == len(set(got)), "paging returned %d names twice" % (len(got) - len(set(got)))
    assert sorted(got) == sorted(names), "paging: %d names, %d expected; extra %r missing %r" % (
        len(got), len(names), sorted(set(got) - set(names))[:5], sorted(set(names) - set(got))[:5])
    assert got == sorted(got), "pages are not in name order"
    assert pages == 10, "1,000 topics in pages of 100 took %d pages" % pages
    # One agent's three topics by a narrower prefix; a prefix nothing has.
    one, _ = list_prefix(broker, "tenant.agent-00123.", 100)
    assert one == ["tenant.agent-00123.%s" % k for k in sorted(KINDS)]
    assert list_prefix(broker, "tenant.nobody-", 100) == ([], 1)
    # An odd page size still covers everything once.
    odd, pages = list_prefix(broker, "tenant.agent-", 333)
    assert odd == got and pages == 4

    # Metadata for named topics: 100 random ones and an unknown one in one request.
    pick = random.Random(6).sample(names, 100)
    ghost = "tenant.agent-99999.input"
    with kwire.Conn.to(broker) as c:
        md = c.metadata(12, pick + [ghost])
    assert [t["name"] for t in md["topic_list"]] == pick + [ghost]
    for n in pick:
        t = md["topics"][n]
        assert t["error_code"] == 0 and list(t["partitions"]) == [0], (n, t)
    assert md["topics"][ghost]["error_code"] == kwire.UNKNOWN_TOPIC_OR_PARTITION
    ids = {md["topics"][n]["topic_id"] for n in pick}
    assert len(ids) == 100 and kwire.ZERO_UUID not in ids
    # Real clients on a few of them.
    for n in pick[:3]:
        kwire.client_roundtrip(broker.bootstrap, n, n=3)


def test_max_topics_is_a_policy_violation(request):
    b = Broker(config={"max.topics": 50})
    b.start()
    request.addfinalizer(lambda: stop_checked(b, request))
    names = ["capped-%02d" % i for i in range(50)]
    create_many(b, names, per_request=50)
    assert metric(b, "sluice_topics") == 50

    a = kp_admin(b)
    try:
        with pytest.raises(PolicyViolationError):
            a.create_topics([KNewTopic("capped-50", 1, 1)], timeout_ms=10000)
    finally:
        a.close()
    with kwire.Conn.to(b) as c:
        r = c.create_topics(5, [("capped-50", 1, 1), ("capped-51", 1, 1), ("capped-00", 1, 1)])
    assert r["capped-50"]["error_code"] == POLICY_VIOLATION, r
    assert "max.topics" in (r["capped-50"]["error_message"] or ""), r["capped-50"]
    assert r["capped-51"]["error_code"] == POLICY_VIOLATION, r
    assert r["capped-00"]["error_code"] in (kwire.TOPIC_ALREADY_EXISTS, POLICY_VIOLATION), r
    status, resp = b.http("POST", "/v1/topics", {"name": "capped-50", "partitions": 1})
    assert status == 403 and resp["error"]["code"] == "policy_violation", (status, resp)
    assert "max.topics" in resp["error"]["message"], resp
    assert b.http("GET", "/v1/topics/capped-50")[0] == 404
    assert metric(b, "sluice_topics") == 50

    # The count is kept across a restart; deleting a topic makes room for one more.
    b.restart()
    assert metric(b, "sluice_topics") == 50
    status, resp = b.http("POST", "/v1/topics", {"name": "capped-50", "partitions": 1})
    assert status == 403, (status, resp)
    assert b.http("DELETE", "/v1/topics/capped-07")[0] == 204
    assert metric(b, "sluice_topics") == 49
    b.create_topic("capped-50")
    status, resp = b.http("POST", "/v1/topics", {"name": "capped-51", "partitions": 1})
    assert status == 403, (status, resp)
    kwire.client_roundtrip(b.bootstrap, "capped-50", n=2)


# ---- 5,000 topics across restarts; the all-topics Metadata ----------------------------------------------


@pytest.mark.timeout(240)
def test_5000_topics_restart_list_all_and_response_ceiling(broker):
    names = tenant_names(5000, tenant="t5k")
    create_many(broker, names, per_request=1000)
    assert metric(broker, "sluice_topics") == 5000
    rnd = random.Random(5000)
    used = rnd.sample(names, 20)
    produce_to(broker, {t: [b"%s-%d" % (t.encode(), i) for i in range(3)] for t in used})

    broker.restart()
    assert metric(broker, "sluice_topics") == 5000
    # Untouched since the restart: creating one again is TOPIC_ALREADY_EXISTS; deleting
    # one and creating it anew gives an empty topic with a new id.
    gone = used.pop()
    with kwire.Conn.to(broker) as c:
        r = c.create_topics(5, [(used[0], 1, 1), (gone, 1, 1)])
    assert r[used[0]]["error_code"] == kwire.TOPIC_ALREADY_EXISTS and r[gone]["error_code"] == kwire.TOPIC_ALREADY_EXISTS, r
    old_id = broker.get_topic(gone)["id"]
    assert broker.http("DELETE", "/v1/topics/" + gone)[0] == 204
    assert metric(broker, "sluice_topics") == 4999
    assert broker.create_topic(gone)["id"] != old_id
    assert metric(broker, "sluice_topics") == 5000
    assert watermarks_many(broker, [gone])[gone] == (0, 0)
    wm = watermarks_many(broker, used)
    assert all(v == (0, 3) for v in wm.values()), wm
    for t in used[:5]:
        assert read_partition(broker, t, 3) == [(i, b"%s-%d" % (t.encode(), i)) for i in range(3)]
    untouched = rnd.choice(sorted(set(names) - set(used)))
    kwire.client_roundtrip(broker.bootstrap, untouched, n=3)

    # kcat -L: every topic, each with its one partition.
    r = run(["kcat", "-b", broker.bootstrap, "-L", "-J", "-m", "30"], timeout=90)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    md = json.loads(r.stdout)
    listed = [t["topic"] for t in md["topics"]]
    assert len(listed) == 5000 and set(listed) == set(names), "kcat -L lists %d topics" % len(listed)
    bad = [t["topic"] for t in md["topics"] if t.get("error") or len(t["partitions"]) != 1]
    assert not bad, bad[:5]

    # kill -9: the count and the topics are still there.
    broker.kill9()
    broker.start()
    assert metric(broker, "sluice_topics") == 5000
    assert read_partition(broker, used[0], 3)[0] == (0, b"%s-0" % used[0].encode())

    # All-topics Metadata past max.response.bytes: refused without harm, named ones still work.
    broker.stop()
    broker.config["max.response.bytes"] = 65536
    broker.start()
    with kwire.Conn.to(broker) as c:
        with pytest.raises((kwire.ConnectionClosed, ConnectionResetError)):
            c.metadata(12)
    assert "response too large" in broker.log_tail(20)
    assert broker.alive()
    with kwire.Conn.to(broker) as c:
        md = c.metadata(12, used[:10])
    assert all(md["topics"][t]["error_code"] == 0 for t in used[:10])


@pytest.mark.timeout(300)
def test_100000_topics_random_traffic_and_restart(broker):
    """The issue's make-test scale: 100,000 topics, traffic to random ones, a restart."""
    names = tenant_names(100000, tenant="t100k")
    with kwire.Conn.to(broker) as c:
        for i in range(0, len(names), 1000):
            chunk = names[i:i + 1000]
            r = c.create_topics(4, [(n, 1, 1) for n in chunk], timeout_ms=60000)
            bad = {t: v["error_code"] for t, v in r.items() if v["error_code"] != 0}
            assert not bad and len(r) == len(chunk), list(bad.items())[:5]
    assert metric(broker, "sluice_topics") == 100000
    rnd = random.Random(100000)
    used = rnd.sample(names, 30)
    produce_to(broker, {t: [b"%s-%d" % (t.encode(), i) for i in range(2)] for t in used})
    for t in used[:5]:
        assert read_partition(broker, t, 2) == [(i, b"%s-%d" % (t.encode(), i)) for i in range(2)]

    broker.restart()
    assert metric(broker, "sluice_topics") == 100000
    wm = watermarks_many(broker, used)
    assert all(v == (0, 2) for v in wm.values()), wm
    for t in rnd.sample(used, 5):
        assert read_partition(broker, t, 2) == [(i, b"%s-%d" % (t.encode(), i)) for i in range(2)]
    # a topic nobody touched since it was created works on first use
    kwire.client_roundtrip(broker.bootstrap, rnd.choice(sorted(set(names) - set(used))), n=3)


# ---- idle topics, checked last --------------------------------------------------------------------------


@pytest.mark.timeout(240)
def test_idle_topics_unload_and_come_back_with_data_and_producer_state(idle_setup):
    """Runs last: by now the once-a-minute sweep has unloaded the stored topics that
    idled for over topic.idle.ms; memory topics hold their data and must stay."""
    s = idle_setup
    b, topics, p = s["broker"], s["topics"], s["producer"]
    assert all(s["offsets"][t] == [0, 1, 2] for t in topics), "first writes went wrong"
    deadline = s["started"] + IDLE_SWEEP_S * 2 + 30
    unloaded = None
    while time.monotonic() < deadline:
        lines = [ln for ln in b.log_text().splitlines() if "unloaded" in ln and "idle topics" in ln]
        if lines:
            unloaded = lines[0]
            break
        time.sleep(0.5)
    assert unloaded, "no idle topics unloaded within %d s of the broker start" % (deadline - s["started"])
    n = int(unloaded.split("unloaded ")[1].split()[0])
    stored = IDLE_TOPICS["persistent"] + IDLE_TOPICS["hybrid"]
    assert n >= stored, "the sweep unloaded %d topics; %d stored ones were idle: %s" % (n, stored, unloaded)

    # Every topic still has its three records (memory ones were kept in memory).
    wm = watermarks_many(b, topics)
    wrong = {t: v for t, v in wm.items() if v != (0, 3)}
    assert not wrong, "after the idle unload: %r" % dict(list(wrong.items())[:5])
    # The same idempotent producer goes on: its sequence state came back from the store.
    s["offsets"].clear()
    for t in topics:
        for i in range(3, 5):
            p.produce(t, value=b"%s-%d" % (t.encode(), i), partition=0, on_delivery=s["cb"])
    assert p.flush(60) == 0
    assert not s["errors"], "idempotent producer after the unload: %r" % s["errors"][:5]
    wrong = {t: o for t, o in s["offsets"].items() if o != [3, 4]}
    assert not wrong and len(s["offsets"]) == len(topics), "offsets after the unload: %r" % dict(
        list(wrong.items())[:5])
    for t in ("idle.persistent-007", "idle.hybrid-042", "idle.memory-013"):
        assert read_partition(b, t, 5) == [(i, b"%s-%d" % (t.encode(), i)) for i in range(5)], t
