"""test_datasets.py: dataset topics (an S3 prefix served as a read-only topic), read with
confluent-kafka (librdkafka). Every test runs against both S3 servers of
../shared/TESTING.md where they are installed: the SigV4-checking s3rver fork, and moto
(which checks no signatures, so the wrong-credentials case is s3rver's alone).

S3 sits behind our latency/fault proxy, whose request log counts the object GETs the
broker makes: each cache block must be downloaded once, whatever the readers and
epochs. Blocks are 64 KiB here so that small objects still span several blocks.
"""

import contextlib
import hashlib
import io
import os
import sys
import tarfile
import time

import pytest

from harness import REPO_ROOT, Broker, unique

sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "s3"))

from latency_proxy import LatencyProxy  # noqa: E402
from s3server import Moto, S3rver, find_moto_server, s3rver_available  # noqa: E402

ck = pytest.importorskip("confluent_kafka")
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

BLOCK = 64 << 10
CACHE_CFG = {"cache.block.bytes": BLOCK, "cache.memory.bytes": 32 << 20, "cache.disk.bytes": 256 << 20}
BUCKET = "dsets"  # moto wants bucket names of 3 characters or more


def start_s3(kind):
    """A fresh S3 server of that kind with BUCKET in it (skips when not installed)."""
    if kind == "s3rver":
        if not s3rver_available():
            pytest.skip("s3rver not installed (scripts/deps.sh test)")
        return S3rver(buckets=[BUCKET]).start()
    if find_moto_server() is None:
        pytest.skip("moto_server not found")
    srv = Moto().start()
    try:
        srv.client().create_bucket(BUCKET)
    except Exception:
        srv.stop()
        raise
    return srv


@pytest.fixture(params=["s3rver", "moto"])
def s3(request):
    srv = start_s3(request.param)
    proxy = LatencyProxy("127.0.0.1:%d" % srv.port, latency_ms=5).start()
    yield srv, proxy
    proxy.stop()
    srv.stop()


@contextlib.contextmanager
def clean_broker(config=CACHE_CFG):
    """A started broker that must exit 0 on SIGTERM with a clean log (no sanitizer
    report, leaks included) when the block ends without an error."""
    b = Broker(config=config)
    try:
        b.start()
        yield b
        if b.proc is not None:
            rc = b.stop()
            assert rc == 0, "broker exit code on SIGTERM was %r\n%s" % (rc, b.log_tail())
        b.assert_clean()
    finally:
        b.close()


def blocks(size):
    return (size + BLOCK - 1) // BLOCK


def object_gets(proxy):
    return sum(1 for m, p in proxy.snapshot()["log"] if m == "GET" and "list-type" not in p)


def create_dataset(b, name, proxy_or_endpoint, prefix, fmt="object", partitions=3, creds=True, **extra):
    endpoint = proxy_or_endpoint if isinstance(proxy_or_endpoint, str) else proxy_or_endpoint.endpoint
    src = {"uri": "s3://%s/%s" % (BUCKET, prefix), "endpoint": endpoint, "region": "us-east-1", "format": fmt}
    if creds:
        src["credentials"] = {"access_key_id": "S3RVER", "secret_access_key": "S3RVER"}
    src.update(extra)
    return b.create_topic(name, partitions=partitions, source=src)


def wait_state(b, name, want=("ready",), timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        src = b.get_topic(name)["source"]
        if src["state"] in want:
            return src
        time.sleep(0.05)
    raise AssertionError("dataset %s never reached %s: %r" % (name, want, src))


class Reader:
    """One training-style reader: assigns every partition from offset 0 each epoch and
    reads until every partition reports EOF (the high watermark)."""

    def __init__(self, bootstrap, topic, partitions, group=None):
        self.topic, self.partitions = topic, partitions
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": group or unique("g"),
                           "enable.partition.eof": True, "enable.auto.commit": False,
                           "fetch.wait.max.ms": 100, "auto.offset.reset": "earliest"})

    def epoch(self, timeout=60):
        self.c.assign([TopicPartition(self.topic, p, 0) for p in range(self.partitions)])
        eof, recs = set(), []
        deadline = time.time() + timeout
        while len(eof) < self.partitions:
            assert time.time() < deadline, "epoch timed out: eof=%r, %d records" % (eof, len(recs))
            m = self.c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                    continue
                raise AssertionError("consumer error: %s" % m.error())
            recs.append((m.partition(), m.offset(), m.key(), m.value(), dict(m.headers() or [])))
        self.c.unassign()
        return recs

    def close(self):
        self.c.close()


def data_records(recs):
    return [r for r in recs if b"sluice.skip" not in r[4] and b"sluice.error" not in r[4]
            and "sluice.skip" not in r[4] and "sluice.error" not in r[4]]


def upload_objects(cli, prefix, sizes, seed=1):
    objs = {}
    for i, size in enumerate(sizes):
        key = "%sobj-%03d.bin" % (prefix, i)
        data = hashlib.sha256(b"%d-%d" % (seed, i)).digest() * (size // 32 + 1)
        data = data[:size]
        cli.put_object(BUCKET, key, data)
        objs[key] = data
    return objs


def check_object_epoch(recs, objs, partitions):
    got = {}
    for p, off, key, val, hdrs in recs:
        k = key.decode()
        assert k not in got, "object %s served twice in one epoch" % k
        got[k] = val if val is not None else b""
        assert int(hdrs["size"]) == len(objs[k])
        assert off & 0xFFFFFF == 0
    assert set(got) == set(objs)
    for k, v in got.items():
        assert v == objs[k], "bytes differ for %s" % k
    # object i (sorted key order) is in partition i mod P at offset (i // P) << 24
    for i, k in enumerate(sorted(objs)):
        (p, off) = next((r[0], r[1]) for r in recs if r[2].decode() == k)
        assert p == i % partitions and off == (i // partitions) << 24


@pytest.mark.timeout(240)
def test_object_format_epochs_cache_and_restart(s3):
    srv, proxy = s3
    cli = srv.client()
    sizes = [1, 100, 4096, 70000, 200000, 65536, 0, 131073, 5000, 300000, 17, 999]
    objs = upload_objects(cli, "obj/", sizes)
    proxy.reset()
    with clean_broker() as b:
        create_dataset(b, "images", proxy, "obj/", partitions=3)
        src = wait_state(b, "images")
        assert src["objects"] == len(objs) and src["bytes"] == sum(sizes)
        md = b.get_topic("images")
        assert md["partitions"] == 3
        # several consumer groups, several epochs: every byte matches
        readers = [Reader(b.bootstrap, "images", 3, group=unique("grp")) for _ in range(3)]
        for epoch in range(3):
            for r in readers:
                check_object_epoch(r.epoch(), objs, 3)
        want = sum(blocks(s) for s in sizes)
        assert object_gets(proxy) == want, "each block is downloaded once: %d GETs for %d blocks" % (
            object_gets(proxy), want)
        status, cache = b.http("GET", "/v1/topics/images/cache")
        assert status == 200 and cache["tiers"]["memory"]["hits"] > 0
        assert cache["s3"]["gets"] == want
        status, text = b.http("GET", "/metrics")
        assert 'sluice_dataset_objects{topic="images"} 12' in text

        # produce is refused with a clear error
        p = Producer({"bootstrap.servers": b.bootstrap, "message.send.max.retries": 0})
        errs = []
        p.produce("images", b"x", partition=0, on_delivery=lambda e, m: errs.append(e))
        p.flush(10)
        assert errs and errs[0] is not None and errs[0].code() == KafkaError.POLICY_VIOLATION, errs

        # S3 gone: another epoch from the cache
        proxy.stop()
        check_object_epoch(readers[0].epoch(), objs, 3)
        for r in readers:
            r.close()

        # restart: the index is not listed again and the disk tier serves
        b.stop()
        b.start()
        src = wait_state(b, "images")
        assert src["objects"] == len(objs)
        r = Reader(b.bootstrap, "images", 3)
        check_object_epoch(r.epoch(), objs, 3)
        r.close()
        status, cache = b.http("GET", "/v1/topics/images/cache")
        assert cache["tiers"]["disk"]["hits"] > 0


def test_chunk_format(s3):
    srv, proxy = s3
    cli = srv.client()
    objs = upload_objects(cli, "big/", [250000, 10, 100000], seed=2)
    with clean_broker() as b:
        create_dataset(b, "chunks", proxy, "big/", fmt="chunk", partitions=2, chunk_bytes=30000)
        wait_state(b, "chunks")
        for _ in range(2):
            r = Reader(b.bootstrap, "chunks", 2)
            recs = r.epoch()
            r.close()
            parts = {}
            for p, off, key, val, h in recs:
                k = h["key"].decode()
                assert key.decode() == k
                idx, total = int(h["index"]), int(h["total"])
                assert off & 0xFFFFFF == idx
                parts.setdefault(k, {})[idx] = val or b""
                assert total == max(1, (len(objs[k]) + 29999) // 30000)
            for k, data in objs.items():
                got = b"".join(parts[k][i] for i in sorted(parts[k]))
                assert got == data


def test_lines_format_via_create_topics(s3):
    srv, proxy = s3
    cli = srv.client()
    lines_a = [("{\"i\": %d, \"text\": \"%s\"}" % (i, "x" * (i % 50))).encode() for i in range(3000)]
    long_line = b"L" * 5000
    body_a = b"\n".join(lines_a) + b"\n"
    body_b = b"first\n" + long_line + b"\nlast-without-newline"
    cli.put_object(BUCKET, "jl/a.jsonl", body_a)
    cli.put_object(BUCKET, "jl/b.jsonl", body_b)
    cli.put_object(BUCKET, "jl/c.jsonl", b"")
    with clean_broker() as b:
        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        fs = admin.create_topics([NewTopic("lines", 2, 1, config={
            "source.uri": "s3://%s/jl/" % BUCKET, "source.endpoint": proxy.endpoint, "source.format": "lines",
            "source.access.key.id": "S3RVER", "source.secret.access.key": "S3RVER",
            "source.max.record.bytes": "1000"})])
        fs["lines"].result(10)
        wait_state(b, "lines")
        r = Reader(b.bootstrap, "lines", 2)
        for _ in range(2):
            recs = r.epoch()
            by = {}
            for p, off, key, val, h in recs:
                by.setdefault(key.decode(), []).append((off, val, h))
            assert [v for _, v, _ in by["jl/a.jsonl"]] == lines_a
            b_recs = by["jl/b.jsonl"]
            assert b_recs[0][1] == b"first" and b_recs[2][1] == b"last-without-newline"
            assert b_recs[1][1] is None and b"over source.max.record.bytes" in b_recs[1][2]["sluice.error"]
            assert [o & 0xFFFFFF for o, _, _ in b_recs] == [0, 1, 2]
            assert len(by["jl/c.jsonl"]) == 1 and "sluice.skip" in by["jl/c.jsonl"][0][2]
        r.close()


def make_tar(members, long_name=None):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
        d = tarfile.TarInfo("somedir")
        d.type = tarfile.DIRTYPE
        tf.addfile(d)
    return buf.getvalue()


def test_tar_format_webdataset(s3):
    srv, proxy = s3
    cli = srv.client()
    shards = {}
    for s in range(3):
        members = []
        for i in range(20):
            base = "sample%04d" % (s * 100 + i)
            members.append((base + ".jpg", os.urandom(1000 + 3000 * (i % 7))))
            members.append((base + ".cls", b"%d" % (i % 10)))
        if s == 0:
            members.append(("deep/" + "n" * 150 + ".txt", b"long name member"))
        shards["wds/shard-%02d.tar" % s] = members
        cli.put_object(BUCKET, "wds/shard-%02d.tar" % s, make_tar(members))
    cli.put_object(BUCKET, "wds/zz-corrupt.tar", b"this is not a tar archive" * 40)
    with clean_broker() as b:
        create_dataset(b, "wds", proxy, "wds/", fmt="tar", partitions=2)
        wait_state(b, "wds")
        r = Reader(b.bootstrap, "wds", 2)
        for _ in range(2):
            recs = r.epoch()
            got = {}
            errors = []
            for p, off, key, val, h in recs:
                if "sluice.error" in h:
                    errors.append(h["sluice.error"])
                    continue
                got.setdefault(h["shard"].decode(), []).append((key.decode(), val))
            for shard, members in shards.items():
                assert got[shard] == list(members)
            assert len(errors) == 1 and b"corrupt tar header" in errors[0]
        r.close()


def test_produce_refused_and_bad_sources(s3):
    srv, proxy = s3
    with clean_broker() as b:
        # a bucket that does not exist
        b.create_topic("nobucket", partitions=1, source={
            "uri": "s3://missing-bucket/x/", "endpoint": proxy.endpoint, "format": "object",
            "credentials": {"access_key_id": "S3RVER", "secret_access_key": "S3RVER"}})
        src = wait_state(b, "nobucket", want=("error",))
        assert "404" in src["error"] or "NoSuchBucket" in src["error"], src
        # wrong credentials: 403 with its reason
        b.create_topic("badcreds", partitions=1, source={
            "uri": "s3://%s/obj/" % BUCKET, "endpoint": proxy.endpoint, "format": "object",
            "credentials": {"access_key_id": "WRONG", "secret_access_key": "WRONG"}})
        src = wait_state(b, "badcreds", want=("error",))
        if isinstance(srv, S3rver):
            assert "403" in src["error"], src
        else:  # moto checks no signatures: the listing works and finds nothing there
            assert "no objects" in src["error"], src
        # an empty prefix
        create_dataset(b, "empty", proxy, "nothing-here/")
        src = wait_state(b, "empty", want=("error",))
        assert "no objects" in src["error"]
        # bad source specs are refused at create time
        st, resp = b.http("POST", "/v1/topics", {"name": "bad1", "source": {"uri": "http://x/"}})
        assert st == 400, resp
        st, resp = b.http("POST", "/v1/topics", {"name": "bad2", "source": {
            "uri": "s3://%s/obj/" % BUCKET, "format": "parquet"}})
        assert st == 400, resp
        # produce to a dataset (still scanning or in error) is refused, never a crash
        p = Producer({"bootstrap.servers": b.bootstrap, "message.send.max.retries": 0})
        errs = []
        p.produce("badcreds", b"x", partition=0, on_delivery=lambda e, m: errs.append(e))
        p.flush(10)
        assert errs[0] is not None and errs[0].code() == KafkaError.POLICY_VIOLATION
        assert b.alive()


@pytest.mark.timeout(240)
def test_s3_faults_retried_and_deleted_object(s3):
    srv, proxy = s3
    cli = srv.client()
    objs = upload_objects(cli, "flt/", [150000, 90000, 2000, 70000, 40000], seed=3)
    with clean_broker() as b:
        create_dataset(b, "faulty", proxy, "flt/", partitions=2)
        wait_state(b, "faulty")
        proxy.inject("500", count=2, method="GET")
        proxy.inject("503", count=2, method="GET")
        proxy.inject("cut", count=2, method="GET")
        r = Reader(b.bootstrap, "faulty", 2)
        check_object_epoch(r.epoch(timeout=120), objs, 2)
        assert sum(proxy.snapshot()["faults"].values()) >= 6
        r.close()
        # an object deleted after the scan: a clear error record, the rest still served
        cli.put_object(BUCKET, "flt2/a.bin", b"a" * 1000)
        cli.put_object(BUCKET, "flt2/b.bin", b"b" * 1000)
        create_dataset(b, "gone", proxy, "flt2/", partitions=1)
        wait_state(b, "gone")
        cli.delete_object(BUCKET, "flt2/a.bin")
        r = Reader(b.bootstrap, "gone", 1)
        recs = r.epoch()
        r.close()
        assert recs[0][3] is None and "sluice.error" in recs[0][4]
        assert recs[1][3] == b"b" * 1000
        assert b.alive()


def test_rescan_warm_and_delete(s3):
    srv, proxy = s3
    cli = srv.client()
    objs = upload_objects(cli, "rs/", [3000, 80000, 5000, 100000], seed=4)
    with clean_broker() as b:
        create_dataset(b, "grow", proxy, "rs/", partitions=2)
        wait_state(b, "grow")
        r = Reader(b.bootstrap, "grow", 2)
        first = {rec[2]: (rec[0], rec[1]) for rec in r.epoch()}
        more = upload_objects(cli, "rs/", [7000, 9000], seed=5)
        more = {k.replace("obj-", "new-"): v for k, v in more.items()}
        for k, v in more.items():
            cli.put_object(BUCKET, k, v)
        st, _ = b.http("POST", "/v1/topics/grow/rescan")
        assert st == 202
        deadline = time.time() + 20
        while b.get_topic("grow")["source"]["objects"] != 6 and time.time() < deadline:
            time.sleep(0.05)
        assert b.get_topic("grow")["source"]["objects"] == 6
        second = {rec[2]: (rec[0], rec[1]) for rec in r.epoch()}
        r.close()
        for k, where in first.items():
            assert second[k] == where, "rescan renumbered %s" % k
        assert {k.decode() for k in second} == set(objs) | set(more)
        # warm a fresh dataset to 100 %
        create_dataset(b, "warmme", proxy, "rs/", partitions=1)
        wait_state(b, "warmme")
        st, w = b.http("POST", "/v1/topics/warmme/warm", {"percent": 100})
        assert st == 202, w
        deadline = time.time() + 20
        while time.time() < deadline:
            st, w = b.http("GET", "/v1/topics/warmme/warm")
            if w["state"] == "done":
                break
            time.sleep(0.05)
        assert w["state"] == "done" and w["percent"] == 100, w
        st, resp = b.http("POST", "/v1/topics/warmme/warm", {"percent": 200})
        assert st == 400
        # a warm asked for while the first listing still runs (as the operator does at
        # creation) waits for it, then warms the share of the whole dataset
        create_dataset(b, "warmearly", proxy, "rs/", partitions=1)
        st, w = b.http("POST", "/v1/topics/warmearly/warm", {"percent": 100})
        assert st == 202, w
        deadline = time.time() + 20
        while time.time() < deadline:
            st, w = b.http("GET", "/v1/topics/warmearly/warm")
            if w["state"] == "done":
                break
            assert w["state"] in ("waiting for the listing", "warming"), w
            time.sleep(0.05)
        total = b.get_topic("warmearly")["source"]["bytes"]
        assert total > 0 and b.get_topic("warmearly")["source"]["objects"] == 6
        assert w["state"] == "done" and w["target_bytes"] == total and w["percent"] == 100, w
        st, resp = b.http("GET", "/v1/topics/notadataset/cache")
        assert st == 404
        st, _ = b.http("DELETE", "/v1/topics/warmme")
        assert st in (200, 204)
        assert b.alive()


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError("no %s in /metrics" % name)


def test_record_indexes_bounded_across_datasets(s3):
    """The record indexes of lines (and tar) objects are a cache under one broker-wide
    cap (cache.memory.bytes / 8, 1 MiB at least): two datasets whose indexes together
    are larger than it are both served right, while the indexes stay under the cap."""
    srv, proxy = s3
    cli = srv.client()
    lines = {}
    for ds in ("ia", "ib"):
        for i in range(3):  # about 200 KiB of index each: 1.2 MiB in all
            body = [b"%s-%d-%05d" % (ds.encode(), i, n) for n in range(8000)]
            cli.put_object(BUCKET, "%s/%d.txt" % (ds, i), b"\n".join(body) + b"\n")
            lines["%s/%d.txt" % (ds, i)] = body
    cfg = dict(CACHE_CFG, **{"cache.memory.bytes": 8 << 20})
    with clean_broker(cfg) as b:
        for ds in ("ia", "ib"):
            create_dataset(b, ds, proxy, ds + "/", fmt="lines", partitions=1)
            wait_state(b, ds)
        readers = {ds: Reader(b.bootstrap, ds, 1) for ds in ("ia", "ib")}
        for _ in range(2):
            for ds, r in readers.items():
                got = {}
                for p, off, key, val, h in r.epoch():
                    got.setdefault(key.decode(), []).append(val)
                assert got == {k: v for k, v in lines.items() if k.startswith(ds)}
                st, text = b.http("GET", "/metrics")
                cap = metric(text, "sluice_dataset_index_cap_bytes")
                assert cap == 1 << 20
                assert 0 < metric(text, "sluice_dataset_index_bytes") <= cap
        assert metric(text, "sluice_dataset_index_evictions_total") > 0
        st, c = b.http("GET", "/v1/topics/ia/cache")
        assert 0 <= c["index_bytes"] <= cap
        for r in readers.values():
            r.close()
