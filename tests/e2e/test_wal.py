"""The broker's own write-ahead log (broker/src/wal.c) with real clients and real crashes.

- repeated kill -9 with small segments: every acknowledged acks=all record survives
  three crashes in a row, at the offset it was acknowledged at, with dense offsets,
  while the log spreads over many segment files;
- mixed state (topics made over Kafka and over HTTP, a config change, committed group
  offsets, records) survives kill -9;
- segments are reused: ~200 MB through 64 KiB segments leaves a log far smaller than
  the data, and a kill -9 after it loses nothing that was acknowledged;
- a clean stop leaves nothing to replay, a kill -9 after acks=all writes does;
- hybrid topics write around the log: after kill -9 beside a persistent topic, the
  persistent one has every acknowledged record and the hybrid one a dense prefix;
- a torn write at the log's end (simulated on disk) is dropped, and the records
  behind it do not come back when their segment is reused.
"""

import os
import re
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import ConfigResource

from groups_util import committed
from harness import unique
from test_confluent import consume_assigned
from test_storage_modes import (SET, admin, consume_all, create, describe, incremental_alter, mode_broker, wait_for,
                                watermarks)

SEGMENT = 65536
REPLAYED = re.compile(r"wal: replayed records (\d+)\.\.(\d+)")


# ---- helpers -------------------------------------------------------------------------


def metric(broker, name):
    """The value of an unlabelled sample from GET /metrics."""
    status, text = broker.http("GET", "/metrics")
    assert status == 200, "GET /metrics: HTTP %d" % status
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    assert m, "no %s in /metrics" % name
    return float(m.group(1))


def segment_files(broker):
    d = os.path.join(broker.data_dir, "wal")
    return sorted(f for f in os.listdir(d) if f.endswith(".wal"))


def start_sections(broker):
    """The broker log split at each harness start: [text of start #1, start #2, ...]."""
    return re.split(r"\n=== harness: start #\d+: [^\n]*\n", broker.log_text())[1:]


def send(p, topic, v, cb):
    """Produce one record to partition 0, waiting while the client's queue is full."""
    while True:
        try:
            p.produce(topic, value=v, partition=0, on_delivery=cb)
            return
        except BufferError:
            p.poll(0.01)


def produce_tracked(broker, topic, values, tail=(), **conf):
    """Produce values to partition 0 and wait for every report; then produce `tail`
    without waiting, so that the caller can crash the broker with records in flight.
    Returns (producer, acked, errors): acked maps offset -> value and fills in as
    reports arrive (see settle())."""
    c = {"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5, "enable.idempotence": False,
         "retries": 0, "message.timeout.ms": 4000, "socket.timeout.ms": 3000,
         "queue.buffering.max.kbytes": 1 << 20}
    c.update(conf)
    p = Producer(c)
    acked, errors = {}, []

    def cb(err, msg):
        if err is not None:
            errors.append((msg.value()[:40], err))
            return
        assert msg.offset() not in acked, "offset %d acknowledged twice" % msg.offset()
        acked[msg.offset()] = msg.value()

    for v in values:
        send(p, topic, v, cb)
        p.poll(0)
    assert p.flush(30) == 0, "records not delivered in 30 s"
    assert not errors, "delivery errors with the broker up: %r" % errors[:5]
    assert len(acked) == len(values)
    for v in tail:
        send(p, topic, v, cb)
    p.poll(0)
    return p, acked, errors


def settle(p):
    """After a crash: deliver the reports that arrived, and count whatever is still in
    flight as not acknowledged rather than wait for it to time out."""
    p.poll(0)
    p.purge(in_queue=True, in_flight=True)
    p.flush(5)


def value(tag, i, size):
    v = b"%s-%06d-" % (tag.encode(), i)
    return (v * (size // len(v) + 1))[:size]


def assert_log_holds(broker, topic, acked, what):
    """The partition's offsets are dense from 0, and every acknowledged record is at the
    offset it was acknowledged at, exactly once. Returns the records read."""
    low, high = watermarks(broker, topic)
    top = max(acked, default=-1)
    assert low == 0 and high > top, "%s: watermarks (%d, %d), offset %d was acknowledged" % (what, low, high, top)
    msgs = consume_all(broker, topic, expect=high, timeout=60)
    offs = [m.offset() for m in msgs]
    assert offs == list(range(high)), "%s: offsets not dense: %d records, first gap near %r" % (
        what, len(offs), next((i for i, o in enumerate(offs) if o != i), None))
    lost = [o for o, v in acked.items() if msgs[o].value() != v]
    assert not lost, "%s: %d acknowledged records lost or changed, e.g. offsets %r" % (what, len(lost), lost[:5])
    seen = {}
    for m in msgs:
        seen[m.value()] = seen.get(m.value(), 0) + 1
    dups = [v[:40] for v in acked.values() if seen[v] != 1]
    assert not dups, "%s: acknowledged values stored more than once: %r" % (what, dups[:5])
    return msgs


def log_errors(text):
    return [ln for ln in text.splitlines() if re.match(r"\S+Z (error|warn) ", ln)]


# ---- tests ---------------------------------------------------------------------------


def test_repeated_kill9_keeps_every_acknowledged_record(request):
    b = mode_broker(request, **{"wal.segment.bytes": SEGMENT})
    topic = unique("wal-k9")
    create(b, topic, "persistent")
    acked = {}
    for cycle in range(3):
        tag = "c%d" % cycle
        p, got, errs = produce_tracked(b, topic, [value(tag, i, 200) for i in range(3000)],
                                       tail=[value("t%d" % cycle, i, 200) for i in range(300)])
        b.kill9()
        settle(p)  # the tail: whatever was acknowledged before the kill counts as well
        assert not set(got) & set(acked), "offsets acknowledged again after a crash: %r" % sorted(
            set(got) & set(acked))[:5]
        acked.update(got)
        b.start()
        # Each crash left acknowledged writes that RocksDB had not flushed: replayed.
        assert REPLAYED.search(start_sections(b)[-1]), "start #%d after kill -9 replayed nothing" % b.starts

    assert len(acked) >= 9000
    msgs = assert_log_holds(b, topic, acked, "after three kill -9")
    # Cycle by cycle, in order: everything acknowledged in one cycle precedes the next.
    prev = -1
    for cycle in range(3):
        offs = sorted(o for o, v in acked.items() if v.startswith(b"c%d-" % cycle))
        assert [msgs[o].value() for o in offs] == [value("c%d" % cycle, i, 200) for i in range(3000)]
        assert offs[0] > prev, "cycle %d written before cycle %d" % (cycle, cycle - 1)
        prev = max(o for o, v in acked.items() if v[:2] in (b"c%d" % cycle, b"t%d" % cycle))
    files = segment_files(b)
    assert len(files) > 2, "the log of ~2 MB in %d-byte segments is in %r" % (SEGMENT, files)
    assert metric(b, "sluice_wal_segments") == len(files)
    # The log goes on after the crashes, and acks=all waited for a timed group commit.
    p, got, _ = produce_tracked(b, topic, [b"after-crashes"])
    assert list(got) == [len(msgs)]
    syncs = metric(b, "sluice_wal_sync_duration_seconds_count")
    assert syncs >= 1 and metric(b, 'sluice_wal_sync_duration_seconds_bucket{le="+Inf"}') == syncs


def test_mixed_state_survives_kill9(request):
    broker = mode_broker(request, **{"group.initial.rebalance.delay.ms": 0})
    t_kafka, t_http, group = unique("wal-kafka"), unique("wal-http"), unique("wal-g")
    create(broker, t_kafka, "persistent", via="kafka", partitions=2)
    broker.create_topic(t_http, partitions=3)
    parts = {t_kafka: 2, t_http: 3}
    recs = {(t, part): [b"%s-%d-%d" % (t.encode(), part, i) for i in range(50)]
            for t in parts for part in range(parts[t])}
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 2})
    for (t, part), vals in recs.items():
        for v in vals:
            p.produce(t, value=v, partition=part)
    assert p.flush(20) == 0

    # Committed offsets of a real group (JoinGroup/SyncGroup, then OffsetCommit).
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "socket.timeout.ms": 10000})
    try:
        c.subscribe([t_kafka, t_http])
        n, deadline = 0, time.monotonic() + 30
        while n < 250 and time.monotonic() < deadline:
            n += len([m for m in c.consume(num_messages=500, timeout=0.5) if not m.error()])
        assert n == 250, "the group read %d of 250 records" % n
        want = {(t_kafka, 0): 17, (t_kafka, 1): 50, (t_http, 0): 3, (t_http, 2): 41}
        c.commit(offsets=[TopicPartition(t, part, o) for (t, part), o in want.items()], asynchronous=False)
    finally:
        c.close()

    # Config changes: AlterConfigs (whole set) and IncrementalAlterConfigs.
    a = admin(broker)
    res = ConfigResource("topic", t_kafka, set_config={"retention.ms": "7654321"})
    assert a.alter_configs([res], request_timeout=10)[res].result(timeout=15) is None
    err, msg = incremental_alter(broker, t_http, [("retention.bytes", SET, "987654321")])
    assert err == 0, (err, msg)
    assert describe(broker, t_kafka)["retention.ms"] == "7654321"

    broker.kill9()
    broker.start()
    assert REPLAYED.search(start_sections(broker)[-1]), "nothing replayed: the test did not use the log"

    assert broker.get_topic(t_kafka)["partitions"] == 2
    assert broker.get_topic(t_http)["partitions"] == 3
    d = describe(broker, t_kafka)
    assert d["retention.ms"] == "7654321" and d["storage.mode"] == "persistent", d
    assert describe(broker, t_http)["retention.bytes"] == "987654321"
    assert committed(broker.bootstrap, group, t_kafka, range(2)) == {0: 17, 1: 50}
    assert committed(broker.bootstrap, group, t_http, range(3)) == {0: 3, 1: None, 2: 41}
    for t, n in parts.items():
        for part in range(n):
            assert watermarks(broker, t, part) == (0, 50), (t, part)
        msgs = consume_assigned(broker, t, range(n), 50 * n)
        for part in range(n):
            assert [m.value() for m in msgs if m.partition() == part] == recs[(t, part)], (t, part)


def test_segments_are_reused_and_kill9_after_200mb(request):
    b = mode_broker(request, **{"wal.segment.bytes": SEGMENT})
    topic = unique("wal-reuse")
    create(b, topic, "persistent")
    size, count = 16384, 12800  # 200 MiB
    filler = os.urandom(size)
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": 1, "linger.ms": 5, "batch.size": 1 << 20,
                  "queue.buffering.max.kbytes": 1 << 18, "message.timeout.ms": 60000,
                  "enable.idempotence": False})
    acked, errs = {}, []

    def cb(err, msg):
        if err is not None:
            errs.append(err)
        else:
            acked[msg.offset()] = msg.value()[:16]

    for i in range(count):
        send(p, topic, b"%015d-" % i + filler[16:], cb)
        p.poll(0)
    assert p.flush(120) == 0 and not errs, "undelivered after 120 s, errors %r" % errs[:3]
    assert sorted(acked) == list(range(count))
    produced = size * count

    appended = metric(b, "sluice_wal_appended_bytes_total")
    reused = metric(b, "sluice_wal_segments_reused_total")
    wal_bytes = metric(b, "sluice_wal_bytes")
    files = segment_files(b)
    on_disk = sum(os.path.getsize(os.path.join(b.data_dir, "wal", f)) for f in files)
    report = "produced %d, appended %d, wal bytes %d (%d on disk in %d files), reused %d" % (
        produced, appended, wal_bytes, on_disk, len(files), reused)
    assert appended >= produced, "the records did not go through the log: " + report
    assert reused > 0, "no segment was reused: " + report
    assert wal_bytes < 0.6 * produced, "the log grows with the data: " + report
    assert on_disk == wal_bytes and metric(b, "sluice_wal_segments") == len(files), report

    b.kill9()
    b.start()
    assert watermarks(b, topic) == (0, count)
    last = consume_all(b, topic, start=count - 1, expect=1)
    assert [m.offset() for m in last] == [count - 1]
    assert last[0].value() == b"%015d-" % (count - 1) + filler[16:]
    first = consume_all(b, topic, start=0, expect=1)
    assert first[0].value()[:16] == acked[0]


def test_clean_stop_leaves_nothing_to_replay(broker):
    topic = unique("wal-clean")
    create(broker, topic, "persistent")
    p, acked, _ = produce_tracked(broker, topic, [value("clean", i, 100) for i in range(500)])
    broker.restart()
    second = start_sections(broker)[-1]
    assert "wal: replayed" not in second, "a clean stop left records to replay:\n%s" % "\n".join(
        ln for ln in second.splitlines() if "wal:" in ln)
    assert watermarks(broker, topic) == (0, 500)

    p, more, _ = produce_tracked(broker, topic, [value("crash", i, 100) for i in range(500)])
    assert sorted(more) == list(range(500, 1000))
    broker.kill9()
    broker.start()
    third = start_sections(broker)[-1]
    m = REPLAYED.search(third)
    assert m, "nothing replayed after kill -9 that followed acks=all writes"
    acked.update(more)
    assert_log_holds(broker, topic, acked, "after a clean stop and kill -9")


def test_hybrid_beside_persistent_kill9(request):
    """Phase A writes more than a LOG memtable (64 MiB) to the two topics, and goes on
    writing the persistent one until the log reuses a segment: RocksDB has then
    persisted a flush holding part of both. Phase B writes both until the kill."""
    b = mode_broker(request, **{"wal.segment.bytes": SEGMENT})
    hyb, per = unique("wal-hyb"), unique("wal-per")
    create(b, hyb, "hybrid")
    create(b, per, "persistent")
    size, n_a, n_b = 16384, 2400, 200  # phase A: ~79 MB
    filler = os.urandom(size)
    vals = {t: [t.encode() + b"-%06d-" % i + filler[:size - 40] for i in range(n_a + n_b)] for t in (hyb, per)}
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 5, "retries": 0,
                  "enable.idempotence": False, "message.timeout.ms": 4000, "socket.timeout.ms": 3000,
                  "batch.size": 1 << 20})
    acked = {hyb: {}, per: {}}
    errs = []

    def cb(err, msg):
        if err is not None:
            errs.append(err)
        else:
            acked[msg.topic()][msg.offset()] = msg.value()

    for i in range(n_a):
        for t in (hyb, per):
            send(p, t, vals[t][i], cb)
        p.poll(0)
    assert p.flush(60) == 0 and not errs, errs[:3]

    extra = []  # persistent records written while waiting for the flush

    def flushed():
        extra.append(b"%s-wait-%d-" % (per.encode(), len(extra)) + filler[:size // 2])
        send(p, per, extra[-1], cb)
        assert p.flush(10) == 0 and not errs, errs[:3]
        return metric(b, "sluice_wal_segments_reused_total") > 0

    wait_for(flushed, 60, "RocksDB to flush (a write-ahead log segment reused)", step=0.05)
    for i in range(n_a, n_a + n_b):
        for t in (hyb, per):
            send(p, t, vals[t][i], cb)
        p.poll(0)
    b.kill9()  # phase B may be partly in flight
    settle(p)
    assert len(acked[hyb]) >= n_a and len(acked[per]) >= n_a + len(extra), {t: len(v) for t, v in acked.items()}
    b.start()
    since = start_sections(b)[-1]

    # persistent: every acknowledged record, at its offset, dense.
    assert_log_holds(b, per, acked[per], "persistent beside hybrid after kill -9")

    # hybrid: what the flush persisted, as a dense prefix of what was written.
    low, high = watermarks(b, hyb)
    assert low == 0 and 0 < high <= n_a + n_b, "hybrid watermarks after kill -9: (%d, %d)" % (low, high)
    got = consume_all(b, hyb, expect=high, timeout=60)
    assert [m.offset() for m in got] == list(range(high)), "hybrid offsets not dense after kill -9"
    assert [m.value() for m in got] == vals[hyb][:high], "hybrid kept something other than a prefix"
    # Both take writes again, right at their high watermarks.
    for t in (hyb, per):
        hw = watermarks(b, t)[1]
        _, got1, _ = produce_tracked(b, t, [b"after"])
        assert list(got1) == [hw], t
    bad = log_errors(since)
    assert not bad, "broker errors or warnings after the restart:\n%s" % "\n".join(bad[:10])


def test_torn_tail_is_dropped_and_stays_dropped(request):
    """A torn write, simulated after kill -9 by corrupting the first record of the newest
    segment (format in wal.h). The broker drops that segment's records and numbers the
    log on from there; the freed segment is then reused for the next records, which
    have the same size, so the old records behind them line up with the new sequence
    numbers. After another kill -9 they must not come back."""
    b = mode_broker(request, **{"wal.segment.bytes": SEGMENT})
    topic = unique("wal-torn")
    create(b, topic, "persistent")
    old = [b"old-%04d-" % i + b"x" * 990 for i in range(200)]
    new = [b"new-%04d-" % i + b"x" * 990 for i in range(3)]

    def one_by_one(vals):
        """One acks=all produce at a time: one log record each, all of the same size."""
        p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 0,
                      "enable.idempotence": False})
        offs = []
        for v in vals:
            p.produce(topic, value=v, partition=0, on_delivery=lambda e, m: offs.append(e or m.offset()))
            assert p.flush(10) == 0
        return offs

    assert one_by_one(old) == list(range(200))
    b.kill9()
    heads = []
    for f in segment_files(b):
        with open(os.path.join(b.data_dir, "wal", f), "rb") as fh:
            h = fh.read(32)
        if h[:8] == b"SLUICEWL":
            heads.append((int.from_bytes(h[16:24], "big"), f))
    assert len(heads) >= 3, heads
    path = os.path.join(b.data_dir, "wal", max(heads)[1])
    with open(path, "r+b") as fh:  # a byte of the first record's payload
        fh.seek(32 + 16 + 100)
        c = fh.read(1)
        fh.seek(32 + 16 + 100)
        fh.write(bytes([c[0] ^ 0xFF]))

    b.start()
    low, kept = watermarks(b, topic)
    assert low == 0 and 0 < kept < 200, "after a torn newest segment: watermarks (%d, %d)" % (low, kept)
    assert [m.value() for m in consume_all(b, topic, expect=kept)] == old[:kept]
    assert one_by_one(new) == [kept, kept + 1, kept + 2]

    b.kill9()
    b.start()
    low, high = watermarks(b, topic)
    msgs = consume_all(b, topic, expect=high) if high else []
    assert (low, high) == (0, kept + 3), "records dropped with the torn segment came back: %r" % (
        [m.value()[:8] for m in msgs[kept + 3:kept + 8]],)
    assert [m.value() for m in msgs] == old[:kept] + new
