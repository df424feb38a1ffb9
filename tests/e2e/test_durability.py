"""Durability: what was acknowledged survives a clean restart and a SIGKILL, and SIGTERM
exits 0 even with clients connected and a fetch parked."""

import threading
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from harness import unique
from test_confluent import consume_assigned, consumer_conf, produce_all, producer_conf


def watermarks(broker, topic, partition):
    c = Consumer(consumer_conf(broker))
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    finally:
        c.close()


def test_restart_keeps_acknowledged(broker):
    topic = unique("dur")
    broker.create_topic(topic, partitions=1)
    msgs = [{"key": b"k%d" % i, "value": b"durable-%d" % i, "partition": 0} for i in range(1000)]
    reports = produce_all(broker, topic, msgs)
    assert reports == [(0, i) for i in range(1000)]
    before = watermarks(broker, topic, 0)
    assert before == (0, 1000)

    broker.restart()

    assert watermarks(broker, topic, 0) == before
    got = consume_assigned(broker, topic, [0], 1000)
    assert [(m.offset(), m.key(), m.value()) for m in got] == [
        (i, b"k%d" % i, b"durable-%d" % i) for i in range(1000)]
    # The topic itself (partitions, config) survived too, and it still takes writes.
    t = broker.get_topic(topic)
    assert t["partitions"] == 1
    assert produce_all(broker, topic, [{"value": b"after", "partition": 0}]) == [(0, 1000)]


def test_kill9_keeps_acknowledged(broker):
    topic = unique("crash")
    broker.create_topic(topic, partitions=2)
    acked = {}  # (partition, offset) -> value
    failed = []
    p = Producer(producer_conf(broker, **{"linger.ms": 2, "message.timeout.ms": 5000,
                                          "retries": 0, "socket.timeout.ms": 3000}))

    def cb(err, msg):
        if err is None:
            pos = (msg.partition(), msg.offset())
            assert pos not in acked, "two messages acknowledged at %r" % (pos,)
            acked[pos] = msg.value()
        else:
            failed.append(err)

    start = time.monotonic()
    i = 0
    while time.monotonic() - start < 2.0:
        try:
            p.produce(topic, value=b"crash-%d" % i, partition=i % 2, on_delivery=cb)
            i += 1
        except BufferError:
            pass
        p.poll(0.001 if i % 100 == 0 else 0)
    broker.kill9()
    p.flush(15)
    assert len(acked) >= 100, "only %d messages acknowledged in 2 s" % len(acked)

    broker.start()

    highs = {}
    for part in (0, 1):
        low, high = watermarks(broker, topic, part)
        assert low == 0
        highs[part] = high
        top = max((o for (pp, o) in acked if pp == part), default=-1)
        assert high > top, "partition %d: high watermark %d but offset %d was acknowledged" % (part, high, top)
    got = consume_assigned(broker, topic, [0, 1], highs[0] + highs[1])
    by_pos = {(m.partition(), m.offset()): m.value() for m in got}
    missing = [pos for pos in acked if pos not in by_pos]
    assert not missing, "%d acknowledged messages lost, e.g. %r" % (len(missing), sorted(missing)[:5])
    wrong = [pos for pos, v in acked.items() if by_pos[pos] != v]
    assert not wrong, "%d acknowledged messages changed, e.g. %r" % (len(wrong), sorted(wrong)[:5])


def test_sigterm_exits_zero_with_clients(broker):
    topic = unique("term")
    broker.create_topic(topic, partitions=1)
    produce_all(broker, topic, [{"value": b"x%d" % i, "partition": 0} for i in range(100)])
    # A consumer at the end of the log keeps a long-poll Fetch parked while we stop.
    c = Consumer(consumer_conf(broker, **{"fetch.wait.max.ms": 5000}))
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    n = 0
    deadline = time.monotonic() + 20
    while n < 100 and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is not None and not m.error():
            n += 1
    assert n == 100
    stop = threading.Event()
    poller = threading.Thread(target=lambda: [c.poll(0.1) for _ in iter(stop.is_set, True)], daemon=True)
    poller.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    rc = broker.stop()
    took = time.monotonic() - t0
    stop.set()
    poller.join(5)
    c.close()
    assert rc == 0, "exit code %r on SIGTERM\n%s" % (rc, broker.log_tail())
    assert took < 10, "SIGTERM took %.1f s" % took

    broker.start()
    assert watermarks(broker, topic, 0) == (0, 100)
