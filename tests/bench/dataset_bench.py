#!/usr/bin/python3
"""dataset_bench.py: figures for dataset topics (issue 4), with S3 (the s3rver fork)
behind our latency proxy (100 ms per request by default), on a broker of its own.

  1. S3 GETs per object over R readers x E epochs (each reader its own consumer group,
     all running at once): the proxy's own count of object GETs / objects. Target 1.00.
  2. Epoch-1 throughput of one reader against what the proxy allows: with L ms per
     request and G GETs in flight, at most G x block / L bytes per second.
  3. Epoch >= 2: memory-tier hit rate, and the p99 of raw Fetch round trips served
     from the cache (one Fetch per object, v4, from a socket of our own).
  4. Memory-tier throughput (one reader, warm cache) against iperf3's loopback figure
     when run.sh passes it (--loopback-mbps).
The cyclic-scan figure (cache = 1/2 dataset, our policy beside LRU) is
tests/bench/cache_bench.c; run.sh runs it beside this.

The last line is "RESULT mode=dataset key=value ...".
"""

import argparse
import os
import socket
import struct
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
sys.path.insert(0, os.path.join(ROOT, "tests", "s3"))

from confluent_kafka import Consumer, KafkaError, TopicPartition  # noqa: E402
from harness import Broker  # noqa: E402
from latency_proxy import LatencyProxy  # noqa: E402
from s3server import S3rver  # noqa: E402


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


def fetch_v4(sock, corr, topic, part, offset, max_bytes):
    """One raw Fetch v4 round trip; returns the response size."""
    t = topic.encode()
    body = struct.pack(">iiiib", -1, 0, 1, max_bytes, 0)
    body += struct.pack(">i", 1) + struct.pack(">h", len(t)) + t
    body += struct.pack(">i", 1) + struct.pack(">iqi", part, offset, max_bytes)
    hdr = struct.pack(">hhi", 1, 4, corr) + struct.pack(">h", 5) + b"bench"
    msg = hdr + body
    sock.sendall(struct.pack(">i", len(msg)) + msg)
    size = struct.unpack(">i", recv_exact(sock, 4))[0]
    recv_exact(sock, size)
    return size


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise EOFError("broker closed the connection")
        buf += chunk
    return bytes(buf)


def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * q))] if v else 0


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
    a = ap.parse_args(argv)
    os.environ["SLUICE_BIN"] = a.bin

    srv = S3rver(buckets=["bench"]).start()
    proxy = LatencyProxy("127.0.0.1:%d" % srv.port, latency_ms=a.latency_ms).start()
    cli = srv.client()
    blob = os.urandom(a.object_bytes)
    for i in range(a.objects):
        cli.put_object("bench", "d/%05d.bin" % i, blob[i:] + blob[:i])
    total = a.objects * a.object_bytes
    blocks_per_obj = (a.object_bytes + a.block_bytes - 1) // a.block_bytes
    cfg = {"cache.block.bytes": a.block_bytes, "cache.memory.bytes": max(4 * total, 256 << 20),
           "cache.disk.bytes": 4 * total}
    res = {}
    with Broker(config=cfg) as b:
        def make(name):
            st, r = b.http("POST", "/v1/topics", {"name": name, "partitions": a.partitions, "source": {
                "uri": "s3://bench/d/", "endpoint": proxy.endpoint, "format": "object",
                "credentials": {"access_key_id": "S3RVER", "secret_access_key": "S3RVER"}}})
            assert st == 201, r
            while b.get_topic(name)["source"]["state"] != "ready":
                time.sleep(0.05)

        # 2. epoch 1 of one reader, cold, through the proxy
        make("ds1")
        proxy.reset()
        stats = []
        read_epochs(b.bootstrap, "ds1", a.partitions, 1, "solo", stats)
        e1 = stats[0]
        res["epoch1_MBps"] = round(e1[2] / e1[3] / 1e6, 1)
        st, cache = b.http("GET", "/v1/topics/ds1/cache")
        gets_cap = 16
        allowed = gets_cap * min(a.block_bytes, a.object_bytes) / (a.latency_ms / 1000.0) / 1e6
        res["epoch1_allowed_MBps"] = round(allowed, 1)
        res["epoch1_fraction"] = round(res["epoch1_MBps"] / allowed, 3)
        res["s3_max_concurrent"] = proxy.snapshot()["max_concurrent"]

        # 1. R readers x E epochs on a fresh dataset topic (its own cache namespace)
        make("ds")
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
        st, before = b.http("GET", "/v1/topics/ds/cache")

        # 3. epoch >= 2: hit rate and raw fetch latency from cache
        sock = socket.create_connection(("127.0.0.1", b.kafka_port))
        lat = []
        st, c0 = b.http("GET", "/v1/topics/ds/cache")
        for rep in range(3):
            for p in range(a.partitions):
                for j in range((a.objects - p + a.partitions - 1) // a.partitions):
                    t = time.perf_counter()
                    fetch_v4(sock, rep * 100000 + p * 1000 + j, "ds", p, j << 24, 16 << 20)
                    lat.append((time.perf_counter() - t) * 1000)
        sock.close()
        st, c1 = b.http("GET", "/v1/topics/ds/cache")
        m0, m1 = c0["tiers"]["memory"], c1["tiers"]["memory"]
        hits, misses = m1["hits"] - m0["hits"], m1["misses"] - m0["misses"]
        res["hit_rate_epoch2plus"] = round(hits / max(1, hits + misses), 4)
        res["fetch_p50_ms"] = round(pct(lat, 0.5), 3)
        res["fetch_p99_ms"] = round(pct(lat, 0.99), 3)

        # 4. memory-tier throughput, one reader, warm cache
        stats = []
        read_epochs(b.bootstrap, "ds", a.partitions, 3, "mem", stats)
        best = max(x[2] / x[3] for x in stats[1:]) / 1e6
        res["memory_tier_MBps"] = round(best, 1)
        if a.loopback_mbps:
            res["memory_vs_loopback"] = round(best / a.loopback_mbps, 3)
    proxy.stop()
    srv.stop()
    print("RESULT mode=dataset " + " ".join("%s=%s" % kv for kv in res.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
