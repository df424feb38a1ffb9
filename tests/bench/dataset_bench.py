#!/usr/bin/python3
"""dataset_bench.py: figures for dataset topics (issue 4), with S3 (the s3rver fork)
behind our latency proxy (100 ms per request by default, in a process of its own), on a
broker of its own. Each figure comes with a ceiling measured in the same run.

  1. gets: S3 GETs per object over R readers x E epochs (each reader its own consumer
     group, all at once): the proxy's own count of object GETs / objects. Target 1.00.
  2. epoch1: epoch-1 throughput of one reader (confluent-kafka) on a cold dataset,
     beside two ceilings: what G GETs in flight allow in theory (G x object / latency),
     and what the S3 path itself delivers here (our S3 client, tests/s3/s3probe.c, GETs
     every object with the same G in flight through the same proxy). The CPU seconds of
     each process (broker, s3rver, proxy, client) over the epoch show which one bounds
     it. Median of --epoch1-runs runs, alternating with the S3-path runs.
  3. latency: Fetch round trips served entirely from the memory tier (warmed; the
     tier's misses and the disk's hits are checked to be 0), from a raw Fetch v4 client
     of our own with a consumer's defaults (fetch.max.bytes 50 MiB, 1 MiB per
     partition), for 100 KiB and 1 MiB records: p50/p99 per Fetch and per record.
     Beside them, interleaved fetch by fetch so that all see the same machine: the same
     Fetch on a persistent topic holding the same records, and the same bytes over a
     plain loopback socket. Also the broker's CPU per Fetch (each topic alone) and the
     broker's own Fetch histogram.
  4. memory: memory-tier throughput (one reader, warm cache) against iperf3's loopback
     figure when run.sh passes it (--loopback-mbps).
The cyclic-scan figure (cache = 1/2 dataset, our policy beside LRU) is
tests/bench/cache_bench.c; run.sh runs it beside this.

The last line is "RESULT mode=dataset key=value ...".
"""

import argparse
import gc
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
sys.path.insert(0, os.path.join(ROOT, "tests", "s3"))

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition  # noqa: E402
from harness import Broker  # noqa: E402
from latency_proxy import ProxyProcess  # noqa: E402
from s3server import S3rver  # noqa: E402

FETCH_MAX_BYTES = 52428800      # fetch.max.bytes, librdkafka's and Java's default
PARTITION_MAX_BYTES = 1048576   # max.partition.fetch.bytes, the same
GETS_IN_FLIGHT = 16             # the broker's cap on a dataset's origin requests
CREDS = {"access_key_id": "S3RVER", "secret_access_key": "S3RVER"}


def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * q))] if v else 0


def median(v):
    return pct(v, 0.5)


def proc_cpu_s(pid):
    """utime + stime of a process (all its threads), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def make_dataset(b, name, uri, endpoint, parts):
    st, r = b.http("POST", "/v1/topics", {"name": name, "partitions": parts, "source": {
        "uri": uri, "endpoint": endpoint, "format": "object", "credentials": CREDS}})
    assert st == 201, r
    while b.get_topic(name)["source"]["state"] != "ready":
        time.sleep(0.05)


def read_epochs(bootstrap, topic, parts, epochs, group, stats):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.partition.eof": True,
                  "enable.auto.commit": False, "fetch.wait.max.ms": 50,
                  "fetch.message.max.bytes": 16 << 20, "max.partition.fetch.bytes": 16 << 20})
    for e in range(epochs):
        t0, n, nbytes = time.time(), 0, 0
        c.assign([TopicPartition(topic, p, 0) for p in range(parts)])
        eof = set()
        while len(eof) < parts:
            m = c.poll(1.0)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                    continue
                raise RuntimeError(str(m.error()))
            n += 1
            nbytes += len(m.value() or b"")
        c.unassign()
        stats.append((e, n, nbytes, time.time() - t0))
    c.close()


# ---- 2. epoch 1 ----------------------------------------------------------------------

def build_s3probe(bin_dir, out_dir):
    """tests/s3/s3probe.c linked against the broker objects next to bin_dir (as
    tests/e2e/test_s3_client.py builds it). Returns its path, or None."""
    objs_dir = os.path.join(os.path.dirname(os.path.abspath(bin_dir)), "obj", "broker", "src")
    if not os.path.isdir(objs_dir):
        return None
    objs = sorted(os.path.join(objs_dir, f) for f in os.listdir(objs_dir)
                  if f.endswith(".o") and f != "main.o")
    lib, exe = os.path.join(out_dir, "libbroker.a"), os.path.join(out_dir, "s3probe")
    if subprocess.run(["ar", "rcs", lib] + objs, capture_output=True).returncode:
        return None
    r = subprocess.run(["cc", "-O2", "-D_GNU_SOURCE", "-I", os.path.join(ROOT, "broker", "src"),
                        "-o", exe, os.path.join(ROOT, "tests", "s3", "s3probe.c"), lib,
                        "-lrocksdb", "-lmicrohttpd", "-lcjson", "-lcurl", "-lssl", "-lcrypto",
                        "-lpthread", "-lm"], capture_output=True, text=True)
    if r.returncode:
        sys.stderr.write("s3probe did not build:\n%s\n" % r.stderr[-2000:])
        return None
    return exe


class CpuWatch:
    """CPU seconds of named processes between start() and stop()."""

    def __init__(self, pids):
        self.pids = pids

    def start(self):
        self.t0 = {k: proc_cpu_s(p) for k, p in self.pids.items()}
        self.w0 = time.time()
        return self

    def stop(self):
        self.wall = time.time() - self.w0
        self.cpu = {k: proc_cpu_s(p) - self.t0[k] for k, p in self.pids.items()}
        return self


def epoch1(b, srv, proxy, probe, keys, a, total, res):
    pids = {"broker": b.proc.pid, "s3rver": srv.proc.pid, "proxy": proxy.pid,
            "client": os.getpid()}
    runs, paths, cpus, upstream, path_upstream = [], [], [], [], []
    for run in range(a.epoch1_runs):
        if probe:  # the S3 path alone: our S3 client, the same GETs in flight
            proxy.reset()
            t0 = time.time()
            r = subprocess.run([probe, "--endpoint", proxy.endpoint, "--access", "S3RVER",
                                "--secret", "S3RVER", "--max-inflight", str(GETS_IN_FLIGHT),
                                "--hash", "0", "get", "bench"] + keys,
                               capture_output=True, text=True, timeout=300)
            if r.returncode == 0 and '"failed":0' in r.stdout:
                paths.append(total / (time.time() - t0) / 1e6)
                path_upstream.append(proxy.snapshot()["upstream_s"])
        name = "ds1-%d" % run
        make_dataset(b, name, "s3://bench/d/", proxy.endpoint, a.partitions)
        proxy.reset()
        stats = []
        w = CpuWatch(pids).start()
        read_epochs(b.bootstrap, name, a.partitions, 1, "solo-%d" % run, stats)
        w.stop()
        assert stats[0][2] == total, stats
        runs.append(stats[0][2] / stats[0][3] / 1e6)
        cpus.append(w)
        upstream.append(proxy.snapshot()["upstream_s"])
        b.http("DELETE", "/v1/topics/" + name)
    res["epoch1_MBps"] = round(median(runs), 1)
    res["epoch1_runs_MBps"] = "/".join("%.0f" % x for x in runs)
    allowed = GETS_IN_FLIGHT * min(a.block_bytes, a.object_bytes) / (a.latency_ms / 1000.0) / 1e6
    res["epoch1_allowed_MBps"] = round(allowed, 1)
    res["epoch1_fraction"] = round(res["epoch1_MBps"] / allowed, 3)
    if paths:
        res["epoch1_s3path_MBps"] = round(median(paths), 1)
        res["epoch1_vs_s3path"] = round(res["epoch1_MBps"] / median(paths), 3)
    mid = sorted(cpus, key=lambda w: w.wall)[len(cpus) // 2]  # the median run
    res["epoch1_wall_s"] = round(mid.wall, 3)
    for k, v in mid.cpu.items():
        res["epoch1_cpu_%s_s" % k] = round(v, 2)
    res["epoch1_upstream_ms_per_get"] = round(median(upstream) / a.objects * 1e3, 1)
    if path_upstream:  # s3rver's time per GET (inside the proxy's latency when shorter)
        res["epoch1_s3path_upstream_ms_per_get"] = round(median(path_upstream) / a.objects * 1e3, 1)


# ---- 3. Fetch latency from the memory tier --------------------------------------------

class RawClient:
    """A Kafka client of our own for one thing: timing Fetch v4 round trips, from the
    first byte sent to the last byte received, into a buffer it reuses (no allocation
    per response), so that what is timed is the broker and the socket."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray(64 << 20)
        self.mv = memoryview(self.buf)
        self.corr = 0

    def close(self):
        self.s.close()

    def _recv(self, n):
        got = 0
        while got < n:
            k = self.s.recv_into(self.mv[got:n])
            if not k:
                raise EOFError("connection closed")
            got += k

    def roundtrip(self, msg):
        """Sends msg and reads one size-prefixed answer; returns (seconds, size)."""
        t0 = time.perf_counter()
        self.s.sendall(msg)
        self._recv(4)
        n = struct.unpack_from(">i", self.buf)[0]
        self._recv(n)
        return time.perf_counter() - t0, n

    def fetch(self, topic, part, offset, max_bytes, part_max_bytes):
        """One Fetch v4 (max_wait 0, min_bytes 1). Returns (seconds, response bytes, next
        offset, records); the next offset is the last batch's base + lastOffsetDelta + 1."""
        self.corr += 1
        t = topic.encode()
        body = struct.pack(">iiiib", -1, 0, 1, max_bytes, 0) + struct.pack(">ih", 1, len(t)) + t
        body += struct.pack(">iiqi", 1, part, offset, part_max_bytes)
        msg = struct.pack(">hhih", 1, 4, self.corr, 5) + b"bench" + body
        dt, n = self.roundtrip(struct.pack(">i", len(msg)) + msg)
        b = self.buf
        p = 14 + struct.unpack_from(">h", b, 12)[0] + 8  # corr throttle [name [partition
        err = struct.unpack_from(">h", b, p)[0]
        if err:
            raise RuntimeError("Fetch %s/%d@%d: error %d" % (topic, part, offset, err))
        p += 2 + 16
        p += 4 + max(0, struct.unpack_from(">i", b, p)[0]) * 16  # aborted transactions
        end = p + 4 + struct.unpack_from(">i", b, p)[0]
        p += 4
        nxt, count = offset, 0
        while p + 61 <= end:
            base, blen = struct.unpack_from(">qi", b, p)
            if p + 12 + blen > end:
                break  # a partial batch at the end of the budget
            nxt = base + struct.unpack_from(">i", b, p + 23)[0] + 1
            count += struct.unpack_from(">i", b, p + 57)[0]
            p += 12 + blen
        return dt, n, nxt, count


class LoopbackServer:
    """A process that answers each 4-byte size n with n bytes (size-prefixed, one send):
    the same client receiving the same bytes, with no broker behind them."""

    CODE = r"""
import socket, struct
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(1)
print(ls.getsockname()[1], flush=True)
c, _ = ls.accept()
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
buf = bytearray(4 + (64 << 20))
mv = memoryview(buf)
while True:
    h = c.recv(4, socket.MSG_WAITALL)
    if len(h) < 4:
        break
    n = struct.unpack(">i", h)[0]
    struct.pack_into(">i", buf, 0, n)
    c.sendall(mv[:4 + n])
"""

    def __enter__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", self.CODE], stdout=subprocess.PIPE)
        self.client = RawClient(int(self.proc.stdout.readline()))
        return self

    def roundtrip(self, n):
        return self.client.roundtrip(struct.pack(">i", n))[0]

    def __exit__(self, *exc):
        self.client.close()
        self.proc.wait(timeout=10)
        self.proc.stdout.close()


def fetch_hist(b):
    """The broker's own Fetch duration histogram: {le seconds: cumulative count}."""
    st, text = b.http("GET", "/metrics")
    out = {}
    for line in text.splitlines():
        if line.startswith('sluice_request_duration_seconds_bucket{api="Fetch"'):
            le = line.split('le="')[1].split('"')[0]
            out[float("inf") if le == "+Inf" else float(le)] = int(line.rsplit(" ", 1)[1])
    return out


def hist_quantile(h0, h1, q):
    """The upper bound of the bucket that holds quantile q of what h1 - h0 counted."""
    d = sorted((le, h1.get(le, 0) - h0.get(le, 0)) for le in h1)
    total = d[-1][1] if d else 0
    for le, c in d:
        if total and c >= q * total:
            return le
    return float("nan")


class Walker:
    """Reads a topic with one RawClient, partition after partition, over and over."""

    def __init__(self, cli, topic, parts):
        self.cli, self.topic, self.parts = cli, topic, parts
        self.p, self.off = 0, 0

    def step(self):
        for _ in range(self.parts + 1):
            dt, n, nxt, cnt = self.cli.fetch(self.topic, self.p, self.off, FETCH_MAX_BYTES,
                                             PARTITION_MAX_BYTES)
            if cnt:
                self.off = nxt
                return dt, n, cnt
            self.p, self.off = (self.p + 1) % self.parts, 0  # the end: the next partition
        raise RuntimeError("%s: no records anywhere" % self.topic)


def fill_latency_topics(b, s3cli, endpoint, tag, size, count, parts):
    """A dataset of count objects of size bytes, warmed into memory, and a persistent
    topic holding the same records (value, key, two headers), partition for partition."""
    prefix = "lat%s/" % tag
    seed = os.urandom(size + count)
    recs = [("%s%06d.bin" % (prefix, i), seed[i:i + size]) for i in range(count)]
    for k, v in recs:
        s3cli.put_object("bench", k, v)
    ds, plain = "lat-" + tag, "plain-" + tag
    make_dataset(b, ds, "s3://bench/" + prefix, endpoint, parts)
    b.http("POST", "/v1/topics/%s/warm" % ds, {"percent": 100})
    while b.http("GET", "/v1/topics/%s/warm" % ds)[1]["state"] != "done":
        time.sleep(0.05)
    st, r = b.http("POST", "/v1/topics", {"name": plain, "partitions": parts,
                                          "config": {"max.message.bytes": str(32 << 20)}})
    assert st == 201, r
    pr = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 20, "batch.size": 1 << 20,
                   "message.max.bytes": 32 << 20})
    for i, (k, v) in enumerate(recs):  # object i of the index is in partition i mod P
        pr.produce(plain, v, key=k, partition=i % parts,
                   headers=[("size", str(size)), ("etag", "e" * 34)])
        pr.poll(0)
    assert pr.flush(60) == 0
    return ds, plain


def fetch_latency(b, s3cli, endpoint, tag, size, count, parts, fetches):
    """Figures for records of size bytes, prefixed with tag (see the module comment)."""
    ds, plain = fill_latency_topics(b, s3cli, endpoint, tag, size, count, parts)
    cli = RawClient(b.kafka_port)
    wd, wp = Walker(cli, ds, parts), Walker(cli, plain, parts)
    for _ in range(max(20, fetches // 10)):  # warm-up: connection, buffers, page faults
        wd.step(), wp.step()
    out = {k: [] for k in ("ds", "ds_rec", "plain", "plain_rec", "loop")}
    c0 = b.http("GET", "/v1/topics/%s/cache" % ds)[1]["tiers"]
    gc.disable()
    with LoopbackServer() as lo:
        for _ in range(fetches):
            dt, n, cnt = wd.step()
            out["ds"].append(dt * 1e3)
            out["ds_rec"].append(dt * 1e3 / cnt)
            dt2, _, cnt2 = wp.step()
            out["plain"].append(dt2 * 1e3)
            out["plain_rec"].append(dt2 * 1e3 / cnt2)
            out["loop"].append(lo.roundtrip(n) * 1e3)
    gc.enable()
    # broker CPU per Fetch and its own histogram, each topic alone
    cpu = {}
    for name, w in (("ds", wd), ("plain", wp)):
        h0, t0 = fetch_hist(b), proc_cpu_s(b.proc.pid)
        for _ in range(fetches):
            w.step()
        cpu[name] = ((proc_cpu_s(b.proc.pid) - t0) / fetches * 1e6,
                     hist_quantile(h0, fetch_hist(b), 0.99) * 1e3)
    c1 = b.http("GET", "/v1/topics/%s/cache" % ds)[1]["tiers"]
    cli.close()
    res = {"records_per_fetch": round(sum(x / y for x, y in zip(out["ds"], out["ds_rec"]))
                                      / len(out["ds"]), 1),
           "fetches": fetches}
    for k, v in out.items():
        res[k + "_p50_ms"] = round(pct(v, 0.5), 3)
        res[k + "_p99_ms"] = round(pct(v, 0.99), 3)
    res["memory_misses"] = c1["memory"]["misses"] - c0["memory"]["misses"]
    res["disk_hits"] = c1["disk"]["hits"] - c0["disk"]["hits"]
    for k, name in (("", "ds"), ("plain_", "plain")):
        res[k + "broker_cpu_us"] = round(cpu[name][0], 1)
        res[k + "broker_hist_p99_le_ms"] = round(cpu[name][1], 3)
    return {tag + "_" + k: v for k, v in res.items()}


# ---- main ---------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--objects", type=int, default=48)
    ap.add_argument("--object-bytes", type=int, default=2 << 20)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--readers", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--latency-ms", type=float, default=100)
    ap.add_argument("--block-bytes", type=int, default=8 << 20)
    ap.add_argument("--loopback-mbps", type=float, default=0)
    ap.add_argument("--epoch1-runs", type=int, default=3)
    ap.add_argument("--fetches", type=int, default=2000, help="timed Fetches per record size")
    ap.add_argument("--sections", default="gets,epoch1,latency,memory")
    a = ap.parse_args(argv)
    os.environ["SLUICE_BIN"] = a.bin

    srv = S3rver(buckets=["bench"]).start()
    proxy = ProxyProcess("127.0.0.1:%d" % srv.port, latency_ms=a.latency_ms)
    tmp = tempfile.mkdtemp(prefix="dsbench-")
    try:
        proxy.start()
        res = run(a, srv, proxy, tmp)
    finally:
        proxy.stop()
        srv.stop()
        subprocess.run(["rm", "-rf", tmp])
    print("RESULT mode=dataset " + " ".join("%s=%s" % kv for kv in res.items()))
    return 0


def run(a, srv, proxy, tmp):
    """Every section of a.sections; returns the figures."""
    sections = set(a.sections.split(","))
    cli = srv.client()
    blob = os.urandom(a.object_bytes)
    keys = ["d/%05d.bin" % i for i in range(a.objects)]
    for i, k in enumerate(keys):
        cli.put_object("bench", k, blob[i:] + blob[:i])
    total = a.objects * a.object_bytes
    blocks_per_obj = (a.object_bytes + a.block_bytes - 1) // a.block_bytes
    cfg = {"cache.block.bytes": a.block_bytes, "cache.memory.bytes": max(4 * total, 512 << 20),
           "cache.disk.bytes": 4 * total + (1 << 30)}
    res = {}
    probe = build_s3probe(a.bin, tmp) if "epoch1" in sections else None
    with Broker(config=cfg) as b:
        if "epoch1" in sections:
            epoch1(b, srv, proxy, probe, keys, a, total, res)

        if "gets" in sections or "memory" in sections:
            make_dataset(b, "ds", "s3://bench/d/", proxy.endpoint, a.partitions)
        if "gets" in sections:  # R readers x E epochs, each its own group, all at once
            proxy.reset()
            threads, all_stats = [], []
            t0 = time.time()
            for r in range(a.readers):
                s = []
                all_stats.append(s)
                threads.append(threading.Thread(target=read_epochs, args=(
                    b.bootstrap, "ds", a.partitions, a.epochs, "reader-%d" % r, s)))
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.time() - t0
            gets = sum(1 for m, p in proxy.snapshot()["log"] if m == "GET" and "list-type" not in p)
            res["gets_per_object"] = round(gets / (a.objects * blocks_per_obj), 3)
            res["readers"], res["epochs"] = a.readers, a.epochs
            ok = all(len(s) == a.epochs and all(x[2] == total for x in s) for s in all_stats)
            res["all_bytes_served"] = int(ok)
            res["aggregate_MBps"] = round(a.readers * a.epochs * total / wall / 1e6, 1)

        if "latency" in sections:
            for tag, size, count in (("100k", 100 << 10, 320), ("1m", 1 << 20, 48)):
                res.update(fetch_latency(b, cli, srv.endpoint, tag, size, count, 4, a.fetches))

        if "memory" in sections:  # one reader, warm cache: its epochs 2 and 3
            stats = []
            read_epochs(b.bootstrap, "ds", a.partitions, 1, "mem0", stats)
            m0 = b.http("GET", "/v1/topics/ds/cache")[1]["tiers"]["memory"]
            stats = []
            read_epochs(b.bootstrap, "ds", a.partitions, 2, "mem", stats)
            m1 = b.http("GET", "/v1/topics/ds/cache")[1]["tiers"]["memory"]
            hits, misses = m1["hits"] - m0["hits"], m1["misses"] - m0["misses"]
            res["hit_rate_epoch2plus"] = round(hits / max(1, hits + misses), 4)
            best = max(x[2] / x[3] for x in stats) / 1e6
            res["memory_tier_MBps"] = round(best, 1)
            if a.loopback_mbps:
                res["memory_vs_loopback"] = round(best / a.loopback_mbps, 3)
    return res


if __name__ == "__main__":
    sys.exit(main())
