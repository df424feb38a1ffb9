"""view_member.py: one classic consumer of a shared view as its own process, for the
shared-view e2e tests and share_bench.py (kill -9, scaling).

    /usr/bin/python3 view_member.py '{"client": "confluent"|"kafka-python",
        "bootstrap": ..., "topic": ..., "group": ..., "name": ...,
        "work_ms": 0, "commit_every": 1, "conf": {...}}'

It subscribes to the view and prints JSON lines on stdout, flushed one by one:
  {"ev":"subscribed"}
  {"ev":"assign","parts":[...]}           (confluent only)
  {"ev":"msg","p":P,"o":OFFSET,"v":"..."} when a record has been processed (work_ms spent),
                                          before its offset is committed
  {"ev":"commit_error","err":"...","vals":[...]}  records whose commit failed
  {"ev":"closed"}                         after close() on SIGTERM
A record reported but not committed when the process dies is delivered again.
"""

import json
import signal
import sys
import time

spec = json.loads(sys.argv[1])
stop = False


def out(**ev):
    ev["t"] = time.time()
    sys.stdout.write(json.dumps(ev) + "\n")
    sys.stdout.flush()


def on_term(signum, frame):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_term)
work_s = spec.get("work_ms", 0) / 1000.0
commit_every = max(1, spec.get("commit_every", 1))


def run_confluent():
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    conf = {
        "bootstrap.servers": spec["bootstrap"],
        "group.id": spec["group"],
        "client.id": spec.get("name", "member"),
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
        "fetch.wait.max.ms": 100,
        "socket.timeout.ms": 10000,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
    }
    conf.update(spec.get("conf") or {})
    c = Consumer(conf)
    c.subscribe([spec["topic"]],
                on_assign=lambda cons, tps: out(ev="assign", parts=sorted(t.partition for t in tps)),
                on_revoke=lambda cons, tps: out(ev="revoke", parts=sorted(t.partition for t in tps)))
    out(ev="subscribed")
    pending = {}
    vals = []
    n = 0
    try:
        while not stop:
            m = c.poll(0.1)
            if m is None:
                continue
            if m.error():
                out(ev="error", err=str(m.error()))
                continue
            if work_s:
                time.sleep(work_s)
            out(ev="msg", p=m.partition(), o=m.offset(), v=(m.value() or b"").decode())
            pending[m.partition()] = m.offset() + 1
            vals.append((m.value() or b"").decode())
            n += 1
            if n % commit_every == 0:
                try:
                    c.commit(offsets=[TopicPartition(spec["topic"], p, o) for p, o in pending.items()],
                             asynchronous=False)
                except KafkaException as e:
                    out(ev="commit_error", err=str(e), vals=vals)
                pending.clear()
                vals = []
    finally:
        c.close()
        out(ev="closed")


def run_kafka_python():
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    c = KafkaConsumer(bootstrap_servers=spec["bootstrap"], group_id=spec["group"],
                      client_id=spec.get("name", "member"), enable_auto_commit=False,
                      auto_offset_reset="earliest", fetch_max_wait_ms=100,
                      session_timeout_ms=6000, heartbeat_interval_ms=500,
                      api_version=(2, 0, 0))
    c.subscribe([spec["topic"]])
    out(ev="subscribed")
    n = 0
    try:
        while not stop:
            batch = c.poll(timeout_ms=100)
            for tp, msgs in batch.items():
                for m in msgs:
                    if work_s:
                        time.sleep(work_s)
                    out(ev="msg", p=m.partition, o=m.offset, v=(m.value or b"").decode())
                    n += 1
                    try:
                        c.commit({TopicPartition(tp.topic, tp.partition):
                                  OffsetAndMetadata(m.offset + 1, None)})
                    except Exception as e:  # a rebalance in between: delivered again
                        out(ev="commit_error", err=str(e), vals=[(m.value or b"").decode()])
    finally:
        c.close()
        out(ev="closed")


if spec.get("client", "confluent") == "kafka-python":
    run_kafka_python()
else:
    run_confluent()
