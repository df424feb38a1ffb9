#!/usr/bin/python3
"""topics_bench.py: the many-topics figures of `make bench` (issue 6).

    topics_bench.py sluice --bin DIR [--topics N] [--small 1000] [--per-request 1000]
                           [--window 4] [--samples 1000] [--budget-s 150]
        Starts its own sluice-broker (temporary data dir, free loopback ports) and, for
        the small count and then for N topics (each on a fresh broker):
          - creates the topics with raw CreateTopics v4, --per-request names per
            request, --window requests in flight on one connection (tenant-style
            names, tenant.agent-NNNNNNN.<kind>);
          - reads the broker's RSS (/proc/PID/status VmRSS) before and after, the CPU
            time the broker spent creating (the rest of the wall time is this client
            encoding requests), and the data dir's size;
          - times Metadata v12 for one named topic (--samples requests, each a new
            random topic, then one topic over and over), a page of
            GET /v1/topics?prefix=&limit=100, and the all-topics Metadata once;
          - restarts the broker (SIGTERM, then start until /readyz answers 200) and
            times it, reads RSS again, then times produce (acks=all) + fetch of one
            record to random topics nobody touched since the restart (the first
            touch loads the topic), raw and with confluent-kafka (librdkafka), and
            the same on a topic already loaded; then restarts once more (with
            RocksDB's own WAL, the first restart replayed the creations; with ours,
            a clean stop leaves nothing to replay and both take the same time).
        If creating N topics would not fit --budget-s (judged from the rate so far),
        it stops where it is and reports the count it reached.
        One "RESULT mode=sluice-<n> key=value ..." line per count on stdout.

    topics_bench.py kafka09 -b HOST:PORT --logdir DIR [--topics 1000]
        Kafka 0.9 for contrast: auto-creates --topics topics through Metadata v0
        requests (0.9 has no CreateTopics), times until every one has a leader, and
        counts the files Kafka made for them under its log dir.
        "RESULT mode=kafka09 ..." on stdout.

Progress goes to stderr; the exit status is non-zero when a run could not complete.
Needs /usr/bin/python3 (Debian's python3-confluent-kafka).
"""

import argparse
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))

import kwire  # noqa: E402

KINDS = ("input", "output", "state")
# CreateTopics v4, as librdkafka 2.0.2 sends it: v5+ answers with every config of every
# new topic, and decoding 12 configs x 1,000 topics per answer in Python would make this
# client, not the broker, the limit.
CT_VERSION = 4


def log(msg):
    sys.stderr.write("[topics_bench] %s\n" % msg)
    sys.stderr.flush()


def name_of(i):
    """The i-th topic: three per agent, like an agent platform's input/output/state."""
    return "tenant.agent-%07d.%s" % (i // len(KINDS), KINDS[i % len(KINDS)])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def cpu_s(pid):
    """User+system CPU seconds the process has used."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))


def du_bytes(path):
    total = 0
    for root, _dirs, files in os.walk(path):
        for fn in files:
            try:
                total += os.path.getsize(os.path.join(root, fn))
            except OSError:
                pass
    return total


# ---- a broker of our own -------------------------------------------------------------------------


class Sluice:
    def __init__(self, bin_dir, base):
        self.exe = os.path.join(bin_dir, "sluice-broker")
        self.data = os.path.join(base, "data")
        self.logf = os.path.join(base, "broker.log")
        self.kport, self.aport = free_port(), free_port()
        self.proc = None

    def start(self, timeout=600):
        """Starts the broker; returns seconds until /readyz answered 200."""
        os.makedirs(self.data, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
        t0 = time.monotonic()
        with open(self.logf, "ab") as lf:
            self.proc = subprocess.Popen(
                [self.exe, "--data-dir", self.data, "--kafka-listen", "127.0.0.1:%d" % self.kport,
                 "--admin-listen", "127.0.0.1:%d" % self.aport, "--log-level", "info"],
                stdin=subprocess.DEVNULL, stdout=lf, stderr=subprocess.STDOUT, env=env)
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError("broker exited with %d (see %s)" % (self.proc.returncode, self.logf))
            try:
                if self.http("/readyz", timeout=1)[0] == 200:
                    return time.monotonic() - t0
            except OSError:
                pass
            time.sleep(0.005)
        raise RuntimeError("broker not ready in %d s" % timeout)

    def stop(self):
        """SIGTERM; returns seconds until it exited."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("broker did not stop within 120 s of SIGTERM")
        if rc != 0:
            raise RuntimeError("broker exited %d on SIGTERM (see %s)" % (rc, self.logf))
        return time.monotonic() - t0

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def http(self, path, timeout=30):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.aport, path), timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def conn(self, timeout=120):
        return kwire.Conn("127.0.0.1", self.kport, timeout=timeout)

    @property
    def bootstrap(self):
        return "127.0.0.1:%d" % self.kport


# ---- creation ----------------------------------------------------------------------------------


def create_topics(b, start, end, per_request, window, deadline=None):
    """Creates topics start..end-1; returns the count created (stops early at deadline)."""
    c = b.conn()
    inflight = []  # (cid, names)
    i = start
    done = start

    def collect():
        nonlocal done
        cid, names = inflight.pop(0)
        got, body = c.recv()
        if got != cid:
            raise RuntimeError("CreateTopics: answer %d for request %d" % (got, cid))
        resp = kwire.decode_create_topics(CT_VERSION, body)
        bad = [(n, r["error_code"], r.get("error_message")) for n, r in resp.items() if r["error_code"] != 0]
        if bad or len(resp) != len(names):
            raise RuntimeError("CreateTopics: %d errors, e.g. %r" % (len(bad), bad[:3]))
        done += len(names)

    try:
        while i < end or inflight:
            if i < end and len(inflight) < window and (deadline is None or time.monotonic() < deadline):
                names = [name_of(j) for j in range(i, min(end, i + per_request))]
                body = kwire.create_topics_request(CT_VERSION, [(n, 1, 1) for n in names], timeout_ms=60000)
                inflight.append((c.send(kwire.CREATE_TOPICS, CT_VERSION, body), names))
                i += len(names)
            else:
                if not inflight:
                    break
                collect()
    finally:
        c.close()
    return done


# ---- measurements --------------------------------------------------------------------------------


def metadata_times(b, names, samples):
    """Per-request seconds of Metadata v12 for one named topic: random topics (each
    probably cold), then the first one over and over (warm)."""
    c = b.conn()
    cold, warm = [], []
    try:
        for n in names[:samples]:
            t0 = time.perf_counter()
            md = c.metadata(12, [n])
            cold.append(time.perf_counter() - t0)
            if md["topics"][n]["error_code"] != 0:
                raise RuntimeError("Metadata %s: error %d" % (n, md["topics"][n]["error_code"]))
        for _ in range(samples):
            t0 = time.perf_counter()
            c.metadata(12, [names[0]])
            warm.append(time.perf_counter() - t0)
    finally:
        c.close()
    return cold, warm


def page_times(b, n_topics, samples=50):
    rnd = random.Random(7)
    out = []
    for _ in range(samples):
        after = name_of(rnd.randrange(max(1, n_topics - 200)))
        t0 = time.perf_counter()
        status, body = b.http("/v1/topics?prefix=tenant.agent-&limit=100&after=" + after)
        out.append(time.perf_counter() - t0)
        if status != 200 or body.count(b'"name"') != 100:
            raise RuntimeError("GET /v1/topics page: %d, %d names" % (status, body.count(b'"name"')))
    return out


def all_metadata(b):
    """Seconds and bytes for the all-topics Metadata v12, and the topic count it holds."""
    c = b.conn(timeout=300)
    try:
        t0 = time.perf_counter()
        cid = c.send(kwire.METADATA, 12, kwire.metadata_request(12, None))
        payload = c.recv_frame(timeout=300)
        secs = time.perf_counter() - t0
    finally:
        c.close()
    if struct.unpack(">i", payload[:4])[0] != cid:
        raise RuntimeError("all-topics Metadata: wrong correlation id")
    # header v1 (tags) | throttle | brokers... : count topics by decoding only the head
    r = kwire.Reader(payload, 4)
    r.tagged_fields()
    r.int32()
    def broker(rr):
        rr.int32(); rr.compact_string(); rr.int32(); rr.compact_string(); rr.tagged_fields()
    r.compact_array(broker)
    r.compact_string()
    r.int32()
    n = r.uvarint() - 1
    return secs, len(payload), n


def first_touch_raw(b, names):
    """Produce (acks=all) + Fetch one record per topic on one connection: seconds each."""
    c = b.conn()
    out = []
    try:
        for n in names:
            t0 = time.perf_counter()
            r = c.produce(9, n, 0, kwire.record_batch([(b"k", b"first-touch")]), acks=-1)
            if r["error_code"] != 0:
                raise RuntimeError("produce %s: %s" % (n, kwire.ename(r["error_code"])))
            off = r["base_offset"]
            f = c.fetch(11, n, 0, off)[(n, 0)]
            out.append(time.perf_counter() - t0)
            if f["error_code"] != 0 or not f["records"]:
                raise RuntimeError("fetch %s@%d: %s" % (n, off, kwire.ename(f["error_code"])))
    finally:
        c.close()
    return out


def first_touch_client(b, names):
    """confluent-kafka: produce one record (acks=all, linger.ms=0) and read it back with
    an assigned consumer, per topic; the clients are connected before the clock runs."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 0})
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "topics-bench", "enable.auto.commit": False,
                  "fetch.wait.max.ms": 10, "enable.partition.eof": False})
    p.list_topics(timeout=10)
    c.list_topics(timeout=10)
    out = []
    try:
        for n in names:
            got = []
            t0 = time.perf_counter()
            p.produce(n, value=b"first-touch", partition=0, on_delivery=lambda e, m: got.append((e, m.offset())))
            if p.flush(30) != 0 or not got or got[0][0] is not None:
                raise RuntimeError("produce to %s failed: %r" % (n, got))
            c.assign([TopicPartition(n, 0, got[0][1])])
            m = None
            while m is None and time.perf_counter() - t0 < 30:
                m = c.poll(0.05)
                if m is not None and m.error():
                    raise RuntimeError("consume %s: %s" % (n, m.error()))
            out.append(time.perf_counter() - t0)
            if m is None or m.value() != b"first-touch":
                raise RuntimeError("consume %s: nothing in 30 s" % n)
    finally:
        c.close()
    return out


def ms(x):
    return "%.3f" % (x * 1000.0)


def run_scale(bin_dir, n, args, deadline=None):
    """All figures for n topics on a fresh broker; returns an ordered dict of key=value."""
    base = tempfile.mkdtemp(prefix="sluice-topics-bench-")
    b = Sluice(bin_dir, base)
    res = {}
    try:
        res["start_empty_s"] = "%.3f" % b.start()
        rss0 = rss_kib(b.proc.pid)
        cpu0 = cpu_s(b.proc.pid)
        t0 = time.monotonic()
        made = 0
        step = max(args.per_request, min(100000, n))
        marks = {}
        while made < n:
            made = create_topics(b, made, min(n, made + step), args.per_request, args.window, deadline)
            el = time.monotonic() - t0
            marks[made] = el
            log("%d topics created in %.1f s (%.0f/s)" % (made, el, made / el))
            if made < n and deadline is not None:
                rate = made / el
                if time.monotonic() + (n - made) / rate > deadline:
                    log("stopping at %d topics: %d more would not fit the budget" % (made, n - made))
                    break
        create_s = time.monotonic() - t0
        res["topics"] = made
        res["create_s"] = "%.2f" % create_s
        res["create_per_s"] = "%.0f" % (made / create_s)
        res["create_broker_cpu_s"] = "%.2f" % (cpu_s(b.proc.pid) - cpu0)
        for m in (1000, 100000):
            if m in marks and m < made:
                res["create_%dk_s" % (m // 1000)] = "%.2f" % marks[m]
        rss1 = rss_kib(b.proc.pid)
        res["rss_empty_mib"] = "%.1f" % (rss0 / 1024.0)
        res["rss_created_mib"] = "%.1f" % (rss1 / 1024.0)
        res["rss_per_topic_created_b"] = "%.0f" % ((rss1 - rss0) * 1024.0 / made)
        status, text = b.http("/metrics")
        line = [ln for ln in text.decode().splitlines() if ln.startswith("sluice_topics ")]
        if not line or int(float(line[0].split()[1])) != made:
            raise RuntimeError("sluice_topics says %r, created %d" % (line, made))

        rnd = random.Random(n)
        sample = [name_of(rnd.randrange(made)) for _ in range(args.samples)]
        cold, warm = metadata_times(b, sample, args.samples)
        res["md1_resident_p50_ms"] = ms(pct(cold, 50))
        res["md1_resident_p99_ms"] = ms(pct(cold, 99))
        pages = page_times(b, made)
        res["page100_p50_ms"] = ms(pct(pages, 50))
        res["page100_p99_ms"] = ms(pct(pages, 99))
        secs, nbytes, count = all_metadata(b)
        if count != made:
            raise RuntimeError("all-topics Metadata holds %d topics, %d exist" % (count, made))
        res["md_all_s"] = "%.3f" % secs
        res["md_all_mb"] = "%.1f" % (nbytes / 1e6)

        res["stop_s"] = "%.2f" % b.stop()
        res["data_mb"] = "%.1f" % (du_bytes(b.data) / 1e6)
        res["store_per_topic_b"] = "%.0f" % (du_bytes(b.data) / made)
        res["restart_ready_s"] = "%.3f" % b.start()
        rss2 = rss_kib(b.proc.pid)
        res["rss_restarted_mib"] = "%.1f" % (rss2 / 1024.0)

        # Right after the restart: topics nobody touched since, loaded on first use.
        fresh = rnd.sample(range(made), 60)
        raw = first_touch_raw(b, [name_of(i) for i in fresh[:20]])
        res["first_touch_raw_p50_ms"] = ms(pct(raw, 50))
        res["first_touch_raw_max_ms"] = ms(max(raw))
        res["first_touch_raw_first_ms"] = ms(raw[0])
        cl = first_touch_client(b, [name_of(i) for i in fresh[20:40]])
        res["first_touch_client_p50_ms"] = ms(pct(cl, 50))
        res["first_touch_client_max_ms"] = ms(max(cl))
        warm_raw = first_touch_raw(b, [name_of(fresh[0])] * 20)
        res["warm_raw_p50_ms"] = ms(pct(warm_raw, 50))
        cold, warm = metadata_times(b, [name_of(rnd.randrange(made)) for _ in range(args.samples)], args.samples)
        res["md1_cold_p50_ms"] = ms(pct(cold, 50))
        res["md1_cold_p99_ms"] = ms(pct(cold, 99))
        res["md1_warm_p50_ms"] = ms(pct(warm, 50))
        res["md1_warm_p99_ms"] = ms(pct(warm, 99))
        res["rss_after_touch_mib"] = "%.1f" % (rss_kib(b.proc.pid) / 1024.0)
        # Once more: a clean stop left nothing to replay either time.
        b.stop()
        res["restart2_ready_s"] = "%.3f" % b.start()
        b.stop()
        return res
    finally:
        b.kill()
        if os.environ.get("BENCH_KEEP_TMP"):
            log("kept %s" % base)
        else:
            shutil.rmtree(base, ignore_errors=True)


def cmd_sluice(args):
    t_start = time.monotonic()
    deadline = t_start + args.budget_s
    ok = True
    for n in ([args.small] if args.small and args.small < args.topics else []) + [args.topics]:
        log("== %d topics" % n)
        try:
            res = run_scale(args.bin, n, args, deadline if n == args.topics else None)
        except Exception as e:  # noqa: BLE001 - report and go on to the next count
            log("FAILED at %d topics: %s" % (n, e))
            ok = False
            continue
        print("RESULT mode=sluice-%d %s" % (n, " ".join("%s=%s" % kv for kv in res.items())))
        sys.stdout.flush()
    return 0 if ok else 1


# ---- Kafka 0.9, for contrast ------------------------------------------------------------------


def cmd_kafka09(args):
    host, port = args.b.rsplit(":", 1)
    names = ["k09.agent-%05d.%s" % (i // 3, KINDS[i % 3]) for i in range(args.topics)]
    before = sum(len(f) for _r, _d, f in os.walk(args.logdir))
    t0 = time.monotonic()
    pending = set(names)
    c = kwire.Conn(host, int(port), timeout=60)
    try:
        while pending and time.monotonic() - t0 < args.timeout:
            batch = sorted(pending)[:200]
            md = c.metadata(0, batch)  # v0: auto-creates unknown topics
            for n, t in md["topics"].items():
                if t["error_code"] == 0 and t["partitions"] and all(
                        p["leader_id"] >= 0 and p["error_code"] == 0 for p in t["partitions"].values()):
                    pending.discard(n)
            if pending:
                time.sleep(0.05)
    finally:
        c.close()
    secs = time.monotonic() - t0
    files = sum(len(f) for _r, _d, f in os.walk(args.logdir)) - before
    if pending:
        log("kafka 0.9: %d of %d topics still without a leader after %.0f s" % (len(pending), args.topics, secs))
        print("RESULT mode=kafka09 topics=%d created=%d create_s=%.2f files=%d" % (
            args.topics, args.topics - len(pending), secs, files))
        return 1
    print("RESULT mode=kafka09 topics=%d created=%d create_s=%.2f create_per_s=%.0f files=%d" % (
        args.topics, args.topics, secs, args.topics / secs, files))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sluice")
    s.add_argument("--bin", required=True)
    s.add_argument("--topics", type=int, default=int(os.environ.get("BENCH_TOPICS", "1000000")))
    s.add_argument("--small", type=int, default=1000)
    s.add_argument("--per-request", type=int, default=1000)
    s.add_argument("--window", type=int, default=4)
    s.add_argument("--samples", type=int, default=1000)
    s.add_argument("--budget-s", type=float, default=float(os.environ.get("BENCH_TOPICS_BUDGET_S", "150")))
    k = sub.add_parser("kafka09")
    k.add_argument("-b", required=True)
    k.add_argument("--logdir", required=True)
    k.add_argument("--topics", type=int, default=1000)
    k.add_argument("--timeout", type=float, default=120)
    args = ap.parse_args()
    return cmd_sluice(args) if args.cmd == "sluice" else cmd_kafka09(args)


if __name__ == "__main__":
    sys.exit(main())
