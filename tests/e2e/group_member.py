"""group_member.py: one confluent-kafka group consumer as its own process, for the
consumer-group e2e tests (kill -9, static membership, rebalances).

    /usr/bin/python3 group_member.py '{"bootstrap": ..., "topic": ..., "group": ...,
                                       "name": ..., "conf": {...}, "commit": true}'

It subscribes to the topic and prints JSON lines on stdout, flushed one by one:
  {"ev":"subscribed"}
  {"ev":"assign","parts":[...],"t":...}   on_assign (incremental lists with cooperative-sticky)
  {"ev":"revoke","parts":[...],"t":...}   on_revoke
  {"ev":"lost","parts":[...],"t":...}     on_lost
  {"ev":"msg","p":P,"o":OFFSET,"v":"..."} after the message's offset is committed
                                          (synchronously) when "commit" is true
  {"ev":"commit_error","err":"..."}       a commit failed (the message is still reported)
  {"ev":"error","err":"..."}              a consumer error event
  {"ev":"closed"}                         after consumer.close() on SIGTERM
"""

import json
import signal
import sys
import time

from confluent_kafka import Consumer, KafkaException

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


def parts(tps):
    return sorted(tp.partition for tp in tps)


c.subscribe([spec["topic"]],
            on_assign=lambda cons, tps: out(ev="assign", parts=parts(tps)),
            on_revoke=lambda cons, tps: out(ev="revoke", parts=parts(tps)),
            on_lost=lambda cons, tps: out(ev="lost", parts=parts(tps)))
out(ev="subscribed")
try:
    while not stop:
        m = c.poll(0.1)
        if m is None:
            continue
        if m.error():
            out(ev="error", err=str(m.error()))
            continue
        if spec.get("commit", True):
            try:
                c.commit(message=m, asynchronous=False)
            except KafkaException as e:
                out(ev="commit_error", err=str(e), p=m.partition(), o=m.offset())
        out(ev="msg", p=m.partition(), o=m.offset(), v=(m.value() or b"").decode())
finally:
    c.close()
    out(ev="closed")
