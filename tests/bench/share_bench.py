"""share_bench.py: figures for shared subscription through a shared view (issue 5), on a
Sluice broker of its own (fresh data dir, loopback), with real confluent-kafka consumers
as separate processes (tests/e2e/view_member.py).

    /usr/bin/python3 tests/bench/share_bench.py --bin build/bin [--consumers 1,2,4,8,16]

Prints human lines on stderr and RESULT lines on stdout:
  RESULT fig=scale n=N records=R secs=S rate=RECORDS_PER_S per_consumer_eff=E
      ONE partition, view of V=32 partitions; each consumer spends --work-ms per record and
      commits every 10 records; R = --per-consumer * N records produced beforehand in
      batches of 5; secs from the first processed record to the last; eff = rate /
      (N * rate at N=1).
  RESULT fig=redelivery mode=session|release delay_s=D
      Two consumers; one (slow) is killed with -9 while holding records. delay_s is the time
      from the kill to the first of its records processed by the survivor: with the release
      call (POST /v1/share-groups/{g}/members/{client.id}/release) or by the group's session
      timeout (--session-ms) alone.
  RESULT fig=overhead mode=plain|view rate=RECORDS_PER_S
      One consumer, no work: a plain group on the physical topic against a group on the
      view (auto-commit every 50 ms), --overhead-records records in batches of 100.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))

from confluent_kafka import Consumer, Producer  # noqa: E402

import harness  # noqa: E402

MEMBER = os.path.join(HERE, "..", "e2e", "view_member.py")


def say(*a):
    print("[share_bench]", *a, file=sys.stderr, flush=True)


class Member:
    def __init__(self, b, topic, group, name, work_ms, commit_every=10, conf=None):
        spec = {"bootstrap": b.bootstrap, "topic": topic, "group": group, "name": name,
                "work_ms": work_ms, "commit_every": commit_every, "conf": conf or {}}
        self.proc = subprocess.Popen(["/usr/bin/python3", MEMBER, json.dumps(spec)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.msgs = []  # (t, value)
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("ev") == "msg":
                with self.lock:
                    self.msgs.append((ev["t"], ev["v"]))

    def snapshot(self):
        with self.lock:
            return list(self.msgs)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill9(self):
        self.proc.kill()
        self.proc.wait()


def produce(b, topic, n, per_batch, prefix="r"):
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5,
                  "batch.num.messages": per_batch, "queue.buffering.max.messages": 1000000})
    for i in range(n):
        while True:
            try:
                p.produce(topic, value=b"%s%d" % (prefix.encode(), i))
                break
            except BufferError:
                p.poll(0.01)
    assert p.flush(60) == 0
    return set("%s%d" % (prefix, i) for i in range(n))


def make_view(b, vparts, **extra):
    name = harness.unique("sb")
    shared = {"virtual_partitions": vparts}
    shared.update(extra)
    b.create_topic(name, 1, shared=shared)
    return name, name + ".shared"


def wait_all(members, want, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = set(v for m in members for _, v in m.snapshot())
        if got >= want:
            return True
        time.sleep(0.1)
    return False


def fig_scale(b, n, per_consumer, work_ms):
    topic, view = make_view(b, 32, max_unacked=16)
    want = produce(b, topic, per_consumer * n, 5)
    group = harness.unique("g")
    members = [Member(b, view, group, "c%d" % i, work_ms) for i in range(n)]
    ok = wait_all(members, want, 60 + per_consumer * work_ms / 1000.0 * 4)
    for m in members:
        m.stop()
    if not ok:
        say("scale n=%d: not every record was processed" % n)
        return None
    ts = sorted(t for m in members for t, _ in m.snapshot())
    secs = ts[-1] - ts[0]
    return len(want) / secs if secs > 0 else None, secs, len(want)


def fig_redelivery(b, release, session_ms):
    topic, view = make_view(b, 8, max_unacked=8, lock_ms=600000)
    want = produce(b, topic, 400, 5)
    group = harness.unique("g")
    conf = {"session.timeout.ms": session_ms}
    slow = Member(b, view, group, "slow", 500, commit_every=1, conf=conf)
    fast = Member(b, view, group, "fast", 0, commit_every=1, conf=conf)
    # the fast one drains everything the slow one does not hold
    last, stable_since = -1, time.time()
    deadline = time.time() + 60
    while time.time() < deadline:
        n = len(fast.snapshot())
        if n != last:
            last, stable_since = n, time.time()
        elif n > 0 and time.time() - stable_since > 1.5:
            break
        time.sleep(0.1)
    before = set(v for _, v in fast.snapshot())
    slow.kill9()
    t0 = time.time()
    if release:
        st, r = b.http("POST", "/v1/share-groups/%s/members/slow/release" % view)
        say("release call: HTTP %d %s" % (st, r))
    delay = None
    deadline = time.time() + session_ms / 1000.0 + 30
    while time.time() < deadline:
        new = [t for t, v in fast.snapshot() if v not in before]
        if new:
            delay = min(new) - t0
            break
        time.sleep(0.02)
    wait_all([fast, slow], want, 30)
    fast.stop()
    return delay


def consume_rate(b, topic, n, view):
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": harness.unique("o"),
                  "auto.offset.reset": "earliest", "enable.auto.commit": True,
                  "auto.commit.interval.ms": 50, "fetch.wait.max.ms": 50,
                  "enable.partition.eof": False})
    c.subscribe([topic])
    got, t0 = 0, None
    deadline = time.time() + 120
    while got < n and time.time() < deadline:
        msgs = c.consume(1000, 0.2)
        for m in msgs:
            if not m.error():
                if t0 is None:
                    t0 = time.time()
                got += 1
    secs = time.time() - (t0 or time.time())
    c.close()
    return got / secs if got >= n and secs > 0 else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/bin")
    ap.add_argument("--consumers", default="1,2,4,8,16")
    ap.add_argument("--per-consumer", type=int, default=1500)
    ap.add_argument("--work-ms", type=float, default=2.0)
    ap.add_argument("--session-ms", type=int, default=10000)
    ap.add_argument("--overhead-records", type=int, default=100000)
    ap.add_argument("--only", default="scale,redelivery,overhead")
    a = ap.parse_args()
    os.environ["SLUICE_BIN"] = os.path.abspath(a.bin)
    only = set(a.only.split(","))
    b = harness.Broker()
    b.start()
    rc = 0
    try:
        if "scale" in only:
            base = None
            for n in [int(x) for x in a.consumers.split(",")]:
                r = fig_scale(b, n, a.per_consumer, a.work_ms)
                if not r or not r[0]:
                    rc = 1
                    continue
                rate, secs, records = r
                base = base or (rate if n == 1 else None)
                eff = rate / (n * base) if base else 0
                say("scale: %2d consumers: %.0f records/s (%.2f of linear)" % (n, rate, eff))
                print("RESULT fig=scale n=%d records=%d secs=%.2f rate=%.0f per_consumer_eff=%.2f"
                      % (n, records, secs, rate, eff), flush=True)
        if "redelivery" in only:
            for release in (False, True):
                d = fig_redelivery(b, release, a.session_ms)
                mode = "release" if release else "session"
                say("redelivery after kill -9 (%s): %s s" % (mode, d))
                if d is None:
                    rc = 1
                else:
                    print("RESULT fig=redelivery mode=%s delay_s=%.2f session_ms=%d"
                          % (mode, d, a.session_ms), flush=True)
        if "overhead" in only:
            topic, view = make_view(b, 16, max_unacked=20000)
            produce(b, topic, a.overhead_records, 100)
            for mode, t in (("plain", topic), ("view", view)):
                r = consume_rate(b, t, a.overhead_records, mode == "view")
                say("overhead: %s: %s records/s" % (mode, r))
                if r is None:
                    rc = 1
                else:
                    print("RESULT fig=overhead mode=%s rate=%.0f" % (mode, r), flush=True)
    finally:
        b.stop()
        b.close()
    return rc


if __name__ == "__main__":
    sys.exit(main())
