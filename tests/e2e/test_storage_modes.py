"""Storage modes (issue 6): memory, hybrid and persistent topics with real clients.

- Each mode, created over HTTP (storage.mode) and over Kafka CreateTopics (config
  storage.mode): a round trip with keys and headers, DescribeConfigs shows the mode, and
  every way of changing the mode afterwards (IncrementalAlterConfigs SET and DELETE,
  AlterConfigs, PATCH) is refused with INVALID_CONFIG / 400 and leaves the topic as it
  was. An unknown mode is INVALID_CONFIG; tiered is refused with a clear message.
- memory: retention.bytes bounds the ring; a consumer from offset 0 gets
  OFFSET_OUT_OF_RANGE and resets to the surviving records; a produce wakes a parked
  fetch at once; after a clean restart and after kill -9 the topic exists, is empty and
  works.
- hybrid: a clean restart keeps everything; kill -9 leaves a consistent log (what is
  left is a prefix of what was written: contiguous offsets, exactly hwm - log start
  records, the same bytes) and produce goes on at the high watermark.
- persistent: kill -9 keeps every acknowledged record of an explicit persistent topic,
  beside a hybrid topic written at the same time.
- an idempotent producer that stays connected across a restart (memory) or kill -9
  (memory, hybrid) that lost its sequence state goes on (UNKNOWN_PRODUCER_ID, not a
  fatal OUT_OF_ORDER_SEQUENCE_NUMBER).
- retention.ms, retention.bytes (also lowered after the data is there) and
  DeleteRecords in every mode, and retention of a topic nobody touched since a restart.

Raw requests (kwire) are used only where the Debian clients have no API:
IncrementalAlterConfigs and DeleteRecords.
"""

import threading
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

import kwire
from harness import Broker, unique

MODES = ["memory", "hybrid", "persistent"]
OTHER = {"memory": "hybrid", "hybrid": "persistent", "persistent": "memory"}

INVALID_CONFIG = 40
POLICY_VIOLATION = 44

RETENTION_CHECK_MS = 500

# kwire's table of first flexible versions lacks these two (their request headers differ).
kwire.FIRST_FLEXIBLE.setdefault(kwire.DELETE_RECORDS, 2)
kwire.FIRST_FLEXIBLE.setdefault(kwire.INCREMENTAL_ALTER_CONFIGS, 1)


# ---- helpers -------------------------------------------------------------------------


def admin(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap, "socket.timeout.ms": 10000})


def create_kafka(broker, name, partitions=1, config=None):
    """CreateTopics through confluent-kafka's AdminClient; returns None or raises."""
    a = admin(broker)  # the client must outlive the future
    fs = a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1,
                                   config=dict(config or {}))], request_timeout=10)
    return fs[name].result(timeout=15)


def create(broker, name, mode, via="http", partitions=1, **config):
    """Create a topic in `mode` over HTTP (storage object) or Kafka (config)."""
    cfg = {k.replace("_", "."): str(v) for k, v in config.items()}
    if via == "http":
        storage = {"mode": mode}
        for k in ("retention.ms", "retention.bytes"):
            if k in cfg:
                storage[k.replace(".", "_")] = int(cfg.pop(k))
        broker.create_topic(name, partitions=partitions, storage=storage, config=cfg or None)
    else:
        cfg["storage.mode"] = mode
        create_kafka(broker, name, partitions, cfg)


def describe(broker, topic):
    res = ConfigResource("topic", topic)
    a = admin(broker)
    got = a.describe_configs([res], request_timeout=10)[res].result(timeout=15)
    return {k: v.value for k, v in got.items()}


def watermarks(broker, topic, partition=0):
    """(log start, high watermark) through ListOffsets earliest/latest (librdkafka)."""
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": unique("wm"), "socket.timeout.ms": 10000})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    finally:
        c.close()


def producer(broker, **extra):
    conf = {"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 0,
            "message.timeout.ms": 20000, "socket.timeout.ms": 10000}
    conf.update(extra)
    return Producer(conf)


def produce(broker, topic, msgs, p=None, each_batch=False, **conf):
    """Produce msgs (Producer.produce kwargs) and return [(partition, offset)] in order;
    each_batch flushes after every record so that each becomes its own batch."""
    own = p is None
    p = p or producer(broker, **conf)
    out = [None] * len(msgs)
    errs = []

    def cb_for(i):
        def cb(err, msg):
            if err is not None:
                errs.append((i, err))
            else:
                out[i] = (msg.partition(), msg.offset())
        return cb

    for i, m in enumerate(msgs):
        m = dict(m)
        m.setdefault("partition", 0)
        p.produce(topic, on_delivery=cb_for(i), **m)
        if each_batch:
            assert p.flush(20) == 0, "record %d not delivered" % i
    assert p.flush(30) == 0, "records not delivered in 30 s"
    assert not errs, "delivery errors: %r" % errs[:5]
    if own:
        del p
    return out


def consume_all(broker, topic, partition=0, start=OFFSET_BEGINNING, expect=None, idle_s=1.5, timeout=15,
                **extra):
    """Read the partition from `start` until `expect` records arrived (then a short wait for
    extras) or, with expect=None, until nothing came for idle_s. Consumer errors fail."""
    conf = {"bootstrap.servers": broker.bootstrap, "group.id": unique("c"), "enable.auto.commit": False,
            "enable.partition.eof": False, "auto.offset.reset": "earliest", "fetch.wait.max.ms": 100,
            "socket.timeout.ms": 10000}
    conf.update(extra)
    c = Consumer(conf)
    out = []
    try:
        c.assign([TopicPartition(topic, partition, start)])
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        while time.monotonic() < deadline:
            if expect is not None and len(out) >= expect:
                break
            if expect is None and time.monotonic() - last > idle_s:
                break
            for m in c.consume(num_messages=1000, timeout=0.3):
                if m.error():
                    raise AssertionError("consumer error: %s" % m.error())
                out.append(m)
                last = time.monotonic()
        if expect is not None:
            assert len(out) >= expect, "got %d of %d records from %s" % (len(out), expect, topic)
            out += [m for m in c.consume(num_messages=100, timeout=0.5) if not m.error()]
    finally:
        c.close()
    return out


def records(n, tag, size=None):
    """n records with keys, multi-valued and empty headers, and recognisable values. (No
    null header values: confluent-kafka 1.7 drops a reference to None for each one it
    reads, and the interpreter aborts at exit after a few hundred.)"""
    out = []
    for i in range(n):
        v = b"%s-%d-" % (tag.encode(), i)
        if size:
            v = (v * (size // len(v) + 1))[:size]
        out.append({"key": b"key-%d" % i, "value": v,
                    "headers": [("h", b"one-%d" % i), ("h", b"two"), ("empty", b"")]})
    return out


def triples(msgs):
    return [(m.key(), m.value(), [(k, v) for k, v in (m.headers() or [])]) for m in msgs]


def expect_triples(recs):
    return [(r["key"], r["value"], list(r["headers"])) for r in recs]


def delete_records(broker, topic, partition, offset, version=1):
    """Raw DeleteRecords (no Debian client has it): returns (error_code, low_watermark)."""
    flex = version >= 2
    body = kwire.w_arr(flex, [kwire.w_str(flex, topic)
                              + kwire.w_arr(flex, [kwire.int32(partition) + kwire.int64(offset) + kwire.w_tags(flex)])
                              + kwire.w_tags(flex)])
    body += kwire.int32(10000) + kwire.w_tags(flex)
    with kwire.Conn.to(broker) as c:
        resp = c.request(kwire.DELETE_RECORDS, version, body)
    r = kwire.Reader(resp)
    r.int32()  # throttle
    out = {}

    def part(rr, name):
        idx = rr.int32()
        low = rr.int64()
        err = rr.int16()
        rr.tags_v(flex)
        out[(name, idx)] = (err, low)

    def top(rr):
        name = rr.str_v(flex)
        rr.arr_v(flex, lambda r2: part(r2, name))
        rr.tags_v(flex)

    r.arr_v(flex, top)
    r.tags_v(flex)
    assert not r.remaining(), "trailing bytes in DeleteRecords response"
    return out[(topic, partition)]


SET, DELETE = 0, 1


def incremental_alter(broker, topic, ops, version=0):
    """Raw IncrementalAlterConfigs (confluent-kafka 1.7 and kafka-python 2.0.2 lack it).
    ops: [(name, op, value)]. Returns (error_code, error_message)."""
    flex = version >= 1
    cfgs = [kwire.w_str(flex, k) + kwire.int8(op) + kwire.w_str(flex, v) + kwire.w_tags(flex)
            for k, op, v in ops]
    res = kwire.int8(2) + kwire.w_str(flex, topic) + kwire.w_arr(flex, cfgs) + kwire.w_tags(flex)
    body = kwire.w_arr(flex, [res]) + kwire.boolean(False) + kwire.w_tags(flex)
    with kwire.Conn.to(broker) as c:
        resp = c.request(kwire.INCREMENTAL_ALTER_CONFIGS, version, body)
    r = kwire.Reader(resp)
    r.int32()
    got = []

    def one(rr):
        err, msg = rr.int16(), rr.str_v(flex)
        rr.int8()
        name = rr.str_v(flex)
        rr.tags_v(flex)
        got.append((name, err, msg))

    r.arr_v(flex, one)
    r.tags_v(flex)
    assert [g[0] for g in got] == [topic], got
    return got[0][1], got[0][2]


def wait_for(pred, timeout, what, step=0.2):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(step)
    raise AssertionError("timed out after %.0f s waiting for %s (last: %r)" % (timeout, what, last))


def mode_broker(request, **config):
    """A started broker with config; stopped (exit 0) and checked for sanitizer reports at the end."""
    b = Broker(config=config)
    b.start()

    def fin():
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            print("--- broker log tail (%s) ---\n%s" % (b.log_path, b.log_tail(80)))
        try:
            if b.proc is not None:
                rc = b.stop()
                assert rc == 0, "broker exit code on SIGTERM was %r\n%s" % (rc, b.log_tail())
            b.assert_clean()
        finally:
            b.close()

    request.addfinalizer(fin)
    return b


# ---- every mode: create, round trip, describe, mode is fixed --------------------------------


@pytest.mark.parametrize("via", ["http", "kafka"])
@pytest.mark.parametrize("mode", MODES)
def test_mode_create_roundtrip_describe_and_fixed(broker, mode, via):
    topic = unique("mode-%s-%s" % (mode, via))
    create(broker, topic, mode, via=via, partitions=2, retention_ms=3600000)
    assert describe(broker, topic)["storage.mode"] == mode
    assert broker.get_topic(topic)["storage"]["mode"] == mode

    recs = records(50, topic)
    got = produce(broker, topic, recs, **{"linger.ms": 5})
    assert got == [(0, i) for i in range(50)]
    msgs = consume_all(broker, topic, expect=50)
    assert [m.offset() for m in msgs] == list(range(50))
    assert triples(msgs) == expect_triples(recs)
    produce(broker, topic, [{"value": b"p1", "key": b"k", "partition": 1}])
    assert watermarks(broker, topic, 1) == (0, 1)

    other = OTHER[mode]
    # IncrementalAlterConfigs SET to another mode, alone and beside a legal change.
    err, msg = incremental_alter(broker, topic, [("storage.mode", SET, other)])
    assert err == INVALID_CONFIG, "IncrementalAlterConfigs storage.mode=%s: %d %r" % (other, err, msg)
    assert msg and "storage.mode" in msg, msg
    err, msg = incremental_alter(broker, topic, [("retention.ms", SET, "1234567"), ("storage.mode", SET, other)])
    assert err == INVALID_CONFIG, (err, msg)
    # DELETE would fall back to the default (persistent): a change as well.
    err, msg = incremental_alter(broker, topic, [("storage.mode", DELETE, None)])
    if mode == "persistent":
        assert err in (0, INVALID_CONFIG), (err, msg)
    else:
        assert err == INVALID_CONFIG, "IncrementalAlterConfigs DELETE storage.mode: %d %r" % (err, msg)
    # Setting the same mode is not a change.
    err, msg = incremental_alter(broker, topic, [("storage.mode", SET, mode)])
    assert err == 0, (err, msg)

    # AlterConfigs (confluent-kafka) with another mode and a legal change: all refused.
    a = admin(broker)
    res = ConfigResource("topic", topic, set_config={"storage.mode": other, "retention.ms": "7654321"})
    with pytest.raises(KafkaException) as ei:
        a.alter_configs([res], request_timeout=10)[res].result(timeout=15)
    assert ei.value.args[0].code() == KafkaError.INVALID_CONFIG, ei.value

    # PATCH, both spellings.
    status, resp = broker.http("PATCH", "/v1/topics/" + topic, {"storage": {"mode": other}})
    assert status == 400, (status, resp)
    assert resp["error"]["code"] in ("invalid_config", "invalid_argument"), resp
    status, resp = broker.http("PATCH", "/v1/topics/" + topic,
                               {"config": {"storage.mode": other, "retention.ms": "999"}})
    assert status == 400 and resp["error"]["code"] == "invalid_config", (status, resp)

    # Nothing changed: mode, retention, data.
    d = describe(broker, topic)
    assert d["storage.mode"] == mode and d["retention.ms"] == "3600000", d
    t = broker.get_topic(topic)
    assert t["storage"]["mode"] == mode and t["storage"]["retention_ms"] == 3600000, t["storage"]
    assert watermarks(broker, topic, 0) == (0, 50)
    again = consume_all(broker, topic, expect=50)
    assert triples(again) == expect_triples(recs)
    # ...and it still takes writes in its own mode.
    assert produce(broker, topic, [{"value": b"after"}]) == [(0, 50)]
    # AlterConfigs that keeps the mode works (it replaces the whole set, mode stays).
    res = ConfigResource("topic", topic, set_config={"retention.ms": "7200000"})
    assert a.alter_configs([res], request_timeout=10)[res].result(timeout=15) is None
    d = describe(broker, topic)
    assert d["storage.mode"] == mode and d["retention.ms"] == "7200000", d


def test_unknown_and_tiered_modes_are_refused(broker):
    for bad in ("quantum", "", "Memory", "tiered"):
        name = unique("badmode")
        status, resp = broker.http("POST", "/v1/topics", {"name": name, "partitions": 1, "storage": {"mode": bad}})
        assert status == 400 and resp["error"]["code"] == "invalid_config", (bad, status, resp)
        if bad == "tiered":
            assert "tiered" in resp["error"]["message"], resp
        with kwire.Conn.to(broker) as c:
            r = c.create_topics(5, [(name, 1, 1, {"storage.mode": bad})])[name]
        assert r["error_code"] == INVALID_CONFIG, (bad, r)
        if bad == "tiered":
            assert "tiered" in (r["error_message"] or ""), r
        with pytest.raises(KafkaException) as ei:
            create_kafka(broker, name, 1, {"storage.mode": bad})
        assert ei.value.args[0].code() == KafkaError.INVALID_CONFIG, (bad, ei.value)
        status, _ = broker.http("GET", "/v1/topics/" + name)
        assert status == 404, "topic with storage.mode=%r was created anyway" % bad
    # Nothing half-created: the count stays 0.
    status, text = broker.http("GET", "/metrics")
    assert "\nsluice_topics 0\n" in text


# ---- memory -------------------------------------------------------------------------------------


def test_memory_retention_bytes_bounds_the_ring(broker):
    topic = unique("mem-rb")
    limit = 20000
    create(broker, topic, "memory", retention_bytes=limit)
    recs = records(100, topic, size=1000)
    assert produce(broker, topic, recs, each_batch=True) == [(0, i) for i in range(100)]
    low, high = watermarks(broker, topic)
    assert high == 100
    kept = high - low
    # Each batch holds one 1000-byte value plus its overhead (< 200 bytes).
    assert 1 <= kept <= limit // 1000, "memory ring keeps %d records of ~1 KB under retention.bytes=%d" % (kept, limit)
    assert kept >= limit // 1200 - 1, "memory ring dropped too much: %d records kept" % kept
    stats = broker.get_topic(topic)["stats"]["partitions"][0]
    assert stats["log_start_offset"] == low and stats["high_watermark"] == 100, stats
    assert 0 < stats["bytes"] <= limit, stats

    # Offset 0 is gone: a raw fetch says so, and a consumer resets to the earliest survivor.
    with kwire.Conn.to(broker) as c:
        f = c.fetch(11, topic, 0, 0)[(topic, 0)]
    assert f["error_code"] == kwire.OFFSET_OUT_OF_RANGE, kwire.ename(f["error_code"])
    msgs = consume_all(broker, topic, start=0, expect=kept)
    assert [m.offset() for m in msgs] == list(range(low, 100))
    assert triples(msgs) == expect_triples(recs[low:])


def test_memory_partition_max_bytes_bounds_a_topic_without_retention_bytes(request):
    b = mode_broker(request, **{"memory.partition.max.bytes": 30000})
    topic = unique("mem-cap")
    create(b, topic, "memory")
    recs = records(80, topic, size=1000)
    produce(b, topic, recs, each_batch=True)
    low, high = watermarks(b, topic)
    assert high == 80 and 1 <= high - low <= 30, (low, high)
    msgs = consume_all(b, topic, expect=high - low)
    assert triples(msgs) == expect_triples(recs[low:])


def test_memory_long_poll_is_woken_by_produce(broker):
    topic = unique("mem-wake")
    create(broker, topic, "memory")
    produce(broker, topic, [{"value": b"first"}])
    got = {}
    ready = threading.Event()

    def consume():
        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": unique("w"), "enable.auto.commit": False,
                      "fetch.wait.max.ms": 10000, "socket.timeout.ms": 20000})
        try:
            c.assign([TopicPartition(topic, 0, 1)])
            deadline = time.monotonic() + 25
            while time.monotonic() < deadline:
                ready.set()
                m = c.poll(0.05)
                if m is not None and not m.error():
                    got["t"] = time.monotonic()
                    got["v"] = m.value()
                    return
        finally:
            c.close()

    th = threading.Thread(target=consume, daemon=True)
    th.start()
    ready.wait(10)
    time.sleep(1.5)  # the consumer's fetch is parked for up to 10 s by now
    p = producer(broker)
    t0 = time.monotonic()
    p.produce(topic, value=b"wake", partition=0)
    assert p.flush(10) == 0
    th.join(20)
    assert got.get("v") == b"wake", "the consumer never got the record: %r" % got
    took = got["t"] - t0
    assert took < 2.0, "a parked fetch on a memory topic took %.2f s to see a produce (fetch.wait.max.ms=10000)" % took


@pytest.mark.parametrize("how", ["restart", "kill9"])
def test_memory_restart_comes_back_empty_and_works(broker, how):
    topic = unique("mem-" + how)
    create(broker, topic, "memory", partitions=2, retention_ms=3600000)
    produce(broker, topic, records(30, topic))
    assert watermarks(broker, topic) == (0, 30)
    if how == "restart":
        broker.restart()
    else:
        broker.kill9()
        broker.start()
    t = broker.get_topic(topic)
    assert t["partitions"] == 2 and t["storage"]["mode"] == "memory", t
    assert describe(broker, topic)["retention.ms"] == "3600000"
    for part in (0, 1):
        assert watermarks(broker, topic, part) == (0, 0), "memory partition %d after %s" % (part, how)
    assert consume_all(broker, topic, idle_s=1.0) == []
    # It works again, from offset 0, with an idempotent producer too.
    recs = records(10, topic + "-again")
    assert produce(broker, topic, recs, **{"enable.idempotence": True}) == [(0, i) for i in range(10)]
    msgs = consume_all(broker, topic, expect=10)
    assert triples(msgs) == expect_triples(recs)


UNKNOWN_PRODUCER_ID = 59


@pytest.mark.parametrize("how", ["restart", "kill9"])
def test_idempotent_producer_outlives_lost_producer_state(broker, how):
    """A producer that stays connected while the broker restarts. Where the broker lost
    its sequence state together with the records (memory on any restart, hybrid on
    kill -9) it must answer UNKNOWN_PRODUCER_ID, as Kafka does for a producer it has no
    state for; librdkafka then bumps its epoch and goes on. OUT_OF_ORDER_SEQUENCE_NUMBER
    is fatal to an idempotent producer. Checked raw (deterministic) and with librdkafka."""
    topics = {m: unique("idem-%s-%s" % (m, how)) for m in MODES}
    for m, t in topics.items():
        create(broker, t, m)
    with kwire.Conn.to(broker) as c:
        ip = c.init_producer_id(0)
        assert ip["error_code"] == 0, ip
        pid = ip["producer_id"]
        for t in topics.values():
            r = c.produce(9, t, 0, kwire.record_batch([(b"k", b"raw-%d" % i) for i in range(5)], producer_id=pid,
                                                      producer_epoch=0, base_sequence=0))
            assert r["error_code"] == 0, r
    p = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True, "linger.ms": 1,
                  "message.timeout.ms": 15000})
    for t in topics.values():
        for i in range(5):
            p.produce(t, value=b"before-%d" % i, partition=0)
    assert p.flush(20) == 0
    if how == "restart":
        broker.restart()
    else:
        broker.kill9()
        broker.start()
    lost = {"memory"} if how == "restart" else {"memory", "hybrid"}

    # librdkafka, right away, as a busy producer would.
    res = {t: [] for t in topics.values()}
    errs = []

    def cb(err, msg):
        if err is not None:
            errs.append((msg.topic(), err))
        else:
            res[msg.topic()].append(msg.offset())

    try:
        for t in topics.values():
            for i in range(5):
                p.produce(t, value=b"after-%d" % i, partition=0, on_delivery=cb)
        left = p.flush(20)
    except KafkaException as e:
        left, errs = -1, errs + [("fatal", e)]
    client_ok = left == 0 and not errs

    # Raw: the next sequence from the same producer id.
    raw = {}
    with kwire.Conn.to(broker) as c:
        for m, t in topics.items():
            r = c.produce(9, t, 0, kwire.record_batch([(b"k", b"raw-next")], producer_id=pid, producer_epoch=0,
                                                      base_sequence=5))
            raw[m] = r["error_code"]
    for m in MODES:
        if m in lost:
            assert raw[m] in (0, UNKNOWN_PRODUCER_ID), (
                "%s topic after a broker %s: a producer the broker has no state for got %s, want "
                "UNKNOWN_PRODUCER_ID(59)" % (m, how, kwire.ename(raw[m])))
        else:
            assert raw[m] == 0, (m, how, kwire.ename(raw[m]))
    assert client_ok, "after a broker %s the idempotent producer failed: %r\n%s" % (
        how, errs[:3], "\n".join(ln for ln in broker.log_tail(60).splitlines() if "rejected" in ln))
    for m, t in topics.items():
        low, high = watermarks(broker, t)
        assert low == 0 and res[t] and res[t] == list(range(res[t][0], res[t][0] + 5)), (m, res[t])
        if m not in lost:
            assert res[t][0] == 10, (m, res[t])
        msgs = consume_all(broker, t, expect=high)
        assert b"after-4" in [x.value() for x in msgs]


# ---- hybrid -------------------------------------------------------------------------------------


def test_hybrid_clean_restart_keeps_everything(request):
    # A small hot window: older records are read from RocksDB, the tail from memory.
    b = mode_broker(request, **{"hybrid.hot.window.bytes": 65536})
    topic = unique("hyb")
    create(b, topic, "hybrid", partitions=2)
    recs = records(600, topic, size=300)
    assert produce(b, topic, recs, **{"linger.ms": 2, "batch.size": 4096}) == [(0, i) for i in range(600)]
    before = consume_all(b, topic, expect=600)
    assert triples(before) == expect_triples(recs)
    b.restart()
    assert watermarks(b, topic) == (0, 600)
    after = consume_all(b, topic, expect=600)
    assert [m.offset() for m in after] == list(range(600))
    assert triples(after) == expect_triples(recs)
    assert [m.timestamp() for m in after] == [m.timestamp() for m in before]
    assert produce(b, topic, [{"value": b"next"}]) == [(0, 600)]
    assert describe(b, topic)["storage.mode"] == "hybrid"


def test_hybrid_kill9_is_consistent_and_persistent_keeps_acked(broker):
    hyb, per = unique("hyb-k9"), unique("per-k9")
    create(broker, hyb, "hybrid")
    create(broker, per, "persistent", via="kafka")
    # A: survives a clean restart.
    first = records(200, hyb + "-A")
    produce(broker, hyb, first, **{"linger.ms": 2})
    broker.restart()
    assert watermarks(broker, hyb) == (0, 200)

    # B: written to both topics, interleaved, until the kill.
    acked = {hyb: {}, per: {}}
    errs = []
    p = producer(broker, **{"linger.ms": 1, "retries": 0, "message.timeout.ms": 5000, "socket.timeout.ms": 3000})

    def cb(err, msg):
        if err is None:
            acked[msg.topic()][msg.offset()] = msg.value()
        else:
            errs.append(err)

    i = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.5:
        for t in (hyb, per):
            try:
                p.produce(t, value=b"%s-B-%d" % (t.encode(), i), key=b"k%d" % i, partition=0, on_delivery=cb)
            except BufferError:
                p.poll(0.01)
        i += 1
        p.poll(0)
    p.flush(5)
    p.poll(0)
    broker.kill9()
    p.flush(10)
    assert len(acked[per]) >= 50 and len(acked[hyb]) >= 50, {t: len(v) for t, v in acked.items()}
    broker.start()

    # persistent: every acknowledged record, unchanged.
    low, high = watermarks(broker, per)
    assert low == 0 and high > max(acked[per]), (low, high, max(acked[per]))
    msgs = consume_all(broker, per, expect=high)
    by_off = {m.offset(): m.value() for m in msgs}
    lost = [o for o in acked[per] if by_off.get(o) != acked[per][o]]
    assert not lost, "persistent topic lost or changed %d acknowledged records, e.g. %r" % (len(lost), lost[:5])

    # hybrid: consistent, and what is left is a prefix of what was written.
    low, high = watermarks(broker, hyb)
    assert 0 <= low <= high, (low, high)
    assert high >= 200, "hybrid lost records from before a clean restart: hwm %d" % high
    msgs = consume_all(broker, hyb, expect=high - low) if high > low else consume_all(broker, hyb, idle_s=1.0)
    assert len(msgs) == high - low, "hybrid after kill -9: %d records between %d and %d" % (len(msgs), low, high)
    assert [m.offset() for m in msgs] == list(range(low, high)), "offsets not contiguous"
    assert triples(msgs[:200]) == expect_triples(first)
    for m in msgs[200:]:
        assert acked[hyb].get(m.offset(), m.value()) == m.value(), "hybrid offset %d changed" % m.offset()
        assert m.value().startswith(hyb.encode() + b"-B-"), m.value()
    # Produce goes on right at the high watermark, with a fresh idempotent producer too.
    assert produce(broker, hyb, [{"value": b"after-crash"}], **{"enable.idempotence": True}) == [(0, high)]
    tail = consume_all(broker, hyb, start=high, expect=1)
    assert [m.value() for m in tail] == [b"after-crash"]


def test_persistent_kill9_keeps_every_acknowledged_record(broker):
    topic = unique("per")
    create(broker, topic, "persistent", partitions=2)
    acked = {}
    p = producer(broker, **{"linger.ms": 2, "retries": 0, "message.timeout.ms": 2000, "socket.timeout.ms": 2000})

    def cb(err, msg):
        if err is None:
            acked[(msg.partition(), msg.offset())] = msg.value()

    i = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.5:
        try:
            p.produce(topic, value=b"p-%d" % i, partition=i % 2, on_delivery=cb)
            i += 1
        except BufferError:
            p.poll(0.01)
        p.poll(0)
    broker.kill9()
    p.flush(10)
    assert len(acked) >= 50, "only %d acknowledged" % len(acked)
    broker.start()
    assert describe(broker, topic)["storage.mode"] == "persistent"
    for part in (0, 1):
        low, high = watermarks(broker, topic, part)
        offs = [o for (pp, o) in acked if pp == part]
        assert low == 0 and high > max(offs, default=-1), (part, low, high)
        msgs = consume_all(broker, topic, partition=part, expect=high)
        by_off = {m.offset(): m.value() for m in msgs}
        lost = [o for o in offs if by_off.get(o) != acked[(part, o)]]
        assert not lost, "partition %d lost %d acknowledged records, e.g. %r" % (part, len(lost), lost[:5])


# ---- retention and DeleteRecords in every mode ---------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_retention_ms_and_bytes(request, mode):
    b = mode_broker(request, **{"log.retention.check.interval.ms": RETENTION_CHECK_MS})
    now = int(time.time() * 1000)

    # retention.ms: ten records ten minutes old (own batches), then ten new ones.
    t_ms = unique("ret-ms-" + mode)
    create(b, t_ms, mode, retention_ms=60000)
    old = [dict(r, timestamp=now - 600000 + i) for i, r in enumerate(records(10, t_ms + "-old"))]
    new = records(10, t_ms + "-new")
    produce(b, t_ms, old, each_batch=True)
    produce(b, t_ms, new, **{"linger.ms": 5})
    wait_for(lambda: watermarks(b, t_ms)[0] == 10, 10, "retention.ms to drop the 10 old records (%s)" % mode)
    assert watermarks(b, t_ms) == (10, 20)
    msgs = consume_all(b, t_ms, expect=10)
    assert [m.offset() for m in msgs] == list(range(10, 20))
    assert triples(msgs) == expect_triples(new)
    time.sleep(3 * RETENTION_CHECK_MS / 1000.0)
    assert watermarks(b, t_ms) == (10, 20), "retention.ms removed records that are not expired"

    # retention.bytes: 60 one-KB records in their own batches, 12 KB allowed.
    t_b = unique("ret-b-" + mode)
    limit = 12000
    create(b, t_b, mode, retention_bytes=limit)
    recs = records(60, t_b, size=1000)
    produce(b, t_b, recs, each_batch=True)
    low = wait_for(lambda: watermarks(b, t_b)[0] or None, 10, "retention.bytes to move the log start (%s)" % mode)
    time.sleep(2 * RETENTION_CHECK_MS / 1000.0)
    low, high = watermarks(b, t_b)
    assert high == 60
    assert 1 <= high - low <= limit // 1000, "%s keeps %d records of ~1 KB under retention.bytes=%d" % (
        mode, high - low, limit)
    assert high - low >= limit // 1200 - 1, "%s dropped too much: %d records kept" % (mode, high - low)
    msgs = consume_all(b, t_b, start=0, expect=high - low)
    assert [m.offset() for m in msgs] == list(range(low, 60))
    assert triples(msgs) == expect_triples(recs[low:])
    st = b.get_topic(t_b)["stats"]["partitions"][0]
    assert st["log_start_offset"] == low and 0 < st["bytes"] <= limit, st


@pytest.mark.parametrize("mode", MODES)
def test_retention_bytes_lowered_later_is_enforced(request, mode):
    """A limit set after the data is there applies without waiting for the next write."""
    b = mode_broker(request, **{"log.retention.check.interval.ms": RETENTION_CHECK_MS})
    topic = unique("ret-later-" + mode)
    create(b, topic, mode)
    recs = records(30, topic, size=1000)
    produce(b, topic, recs, each_batch=True)
    assert watermarks(b, topic) == (0, 30)
    status, resp = b.http("PATCH", "/v1/topics/" + topic, {"storage": {"retention_bytes": 10000}})
    assert status == 200, (status, resp)

    def trimmed():
        st = b.get_topic(topic)["stats"]["partitions"][0]
        return st if st["log_start_offset"] > 0 and st["bytes"] <= 10000 else None

    wait_for(trimmed, 8, "%s: retention.bytes=10000 set after 30 KB were written" % mode)
    low, high = watermarks(b, topic)
    assert high == 30 and 1 <= high - low <= 10, (low, high)
    msgs = consume_all(b, topic, expect=high - low)
    assert triples(msgs) == expect_triples(recs[low:])


@pytest.mark.parametrize("mode", MODES)
def test_delete_records(broker, mode):
    topic = unique("dr-" + mode)
    create(broker, topic, mode, partitions=2)
    recs = records(20, topic)
    produce(broker, topic, recs, **{"linger.ms": 0})
    err, low = delete_records(broker, topic, 0, 7)
    assert (err, low) == (0, 7), (err, low)
    assert watermarks(broker, topic) == (7, 20)
    msgs = consume_all(broker, topic, expect=13)
    assert [m.offset() for m in msgs] == list(range(7, 20))
    assert triples(msgs) == expect_triples(recs[7:])
    # Going backwards is a no-op that reports the current start; beyond the end is refused.
    assert delete_records(broker, topic, 0, 3) == (0, 7)
    err, _ = delete_records(broker, topic, 0, 21)
    assert err == kwire.OFFSET_OUT_OF_RANGE, err
    assert delete_records(broker, topic, 1, 0, version=2) == (0, 0)
    err, _ = delete_records(broker, topic, 2, 0)
    assert err == kwire.UNKNOWN_TOPIC_OR_PARTITION, err
    # -1: up to the high watermark (flexible v2).
    assert delete_records(broker, topic, 0, -1, version=2) == (0, 20)
    assert watermarks(broker, topic) == (20, 20)
    assert consume_all(broker, topic, idle_s=1.0) == []
    assert produce(broker, topic, [{"value": b"after"}]) == [(0, 20)]

    broker.restart()
    if mode == "memory":
        assert watermarks(broker, topic) == (0, 0)
    else:
        assert watermarks(broker, topic) == (20, 21), "%s: log start after DeleteRecords and a restart" % mode
        assert [m.value() for m in consume_all(broker, topic, expect=1)] == [b"after"]


@pytest.mark.parametrize("mode", ["hybrid", "persistent"])
def test_retention_of_a_topic_untouched_since_restart(request, mode):
    """Retention reads the store, not only the topics in memory: after a restart nobody
    touches the topic, and its expired records still go."""
    b = mode_broker(request, **{"log.retention.check.interval.ms": 3600000})
    topic = unique("cold-" + mode)
    create(b, topic, mode, retention_ms=60000)
    now = int(time.time() * 1000)
    old = [dict(r, timestamp=now - 600000 + i) for i, r in enumerate(records(15, topic + "-old"))]
    produce(b, topic, old, each_batch=True)
    produce(b, topic, records(5, topic + "-new"))
    b.stop()
    b.config["log.retention.check.interval.ms"] = RETENTION_CHECK_MS
    b.start()
    # Hands off the topic for a few sweeps, then look once.
    time.sleep(6 * RETENTION_CHECK_MS / 1000.0 + 1)
    line = "retention: %s-0 now starts at 15" % topic
    assert line in b.log_text(), "no '%s' in the log before the topic was touched" % line
    with kwire.Conn.to(b) as c:
        r = c.list_offset(topic, 0, -2)
    assert r["error_code"] == 0 and r["offset"] == 15, r
    assert watermarks(b, topic) == (15, 20)
    msgs = consume_all(b, topic, expect=5)
    assert [m.offset() for m in msgs] == list(range(15, 20))
