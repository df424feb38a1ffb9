"""test_dataset_clients.py: a dataset topic read by the two clients that have their own
protocol code, kafka-python 2.0.2 (pure Python) and kafkajs 2.2.4 (Node), each as a
consumer group over two epochs (the second one seeks back to the start). Every record
must match its uploaded object byte for byte, with its key and headers, in both epochs,
and S3 (the SigV4-checking s3rver, behind our proxy, which counts the requests) must see
exactly one GET per object: the second epoch comes from the cache.

Offsets in a dataset have gaps (object j of a partition is at j << 24) and batches claim
them; both clients must step over them on their own. A client that asks for the offset
after a partition's last record (kafkajs does) gets one end-of-partition record with a
"sluice.skip" header, which the readers leave out, as a training reader would.
"""

import base64
import json
import os
import shutil
import sys
import tempfile
import time

import pytest

from harness import REPO_ROOT, Broker, run, unique

sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "s3"))

from latency_proxy import LatencyProxy  # noqa: E402
from s3server import S3rver, s3rver_available  # noqa: E402

pytestmark = pytest.mark.skipif(not s3rver_available(), reason="s3rver not installed (scripts/deps.sh test)")

NODE_PATH = os.path.join(REPO_ROOT, "tests", ".deps", "node_modules")
BUCKET = "dsets"
PARTS = 3
# One cache block per object (all are smaller than a block), so GETs == objects.
CACHE_CFG = {"cache.block.bytes": 1 << 20, "cache.memory.bytes": 64 << 20,
             "cache.disk.bytes": 256 << 20}
SIZES = [1, 17, 999, 4096, 65536, 70001, 131072, 300000, 512 << 10, 900000, 33, 250000, 8191]


@pytest.fixture
def dataset():
    """s3rver with SIZES uploaded, a 5 ms proxy in front, a broker and a dataset topic on
    it. Yields (broker, proxy, topic, {key: bytes}); the proxy's counts start at 0."""
    srv = S3rver(buckets=[BUCKET]).start()
    proxy = LatencyProxy("127.0.0.1:%d" % srv.port, latency_ms=5).start()
    b = Broker(config=CACHE_CFG)
    try:
        cli = srv.client()
        objs = {}
        for i, size in enumerate(SIZES):
            key = "cl/sample-%03d.bin" % i
            objs[key] = os.urandom(size)
            cli.put_object(BUCKET, key, objs[key])
        b.start()
        topic = unique("dsc")
        b.create_topic(topic, partitions=PARTS, source={
            "uri": "s3://%s/cl/" % BUCKET, "endpoint": proxy.endpoint, "format": "object",
            "credentials": {"access_key_id": "S3RVER", "secret_access_key": "S3RVER"}})
        deadline = time.time() + 30
        while b.get_topic(topic)["source"]["state"] != "ready":
            assert time.time() < deadline, b.get_topic(topic)
            time.sleep(0.05)
        proxy.reset()
        yield b, proxy, topic, objs
        rc = b.stop()
        assert rc == 0, "broker exit code on SIGTERM was %r\n%s" % (rc, b.log_tail())
        b.assert_clean()
    finally:
        b.close()
        proxy.stop()
        srv.stop()


def object_gets(proxy):
    return sum(1 for m, p in proxy.snapshot()["log"] if m == "GET" and "list-type" not in p)


def check_epoch(recs, objs, what):
    """recs: {(partition, offset): (key, value, {header: bytes})} of one epoch."""
    assert len(recs) == len(objs), "%s: %d records for %d objects" % (what, len(recs), len(objs))
    for i, k in enumerate(sorted(objs)):  # object i: partition i mod P, offset (i // P) << 24
        pos = (i % PARTS, (i // PARTS) << 24)
        assert pos in recs, "%s: no record at %r for %s" % (what, pos, k)
        key, value, hdrs = recs[pos]
        assert key == k.encode(), "%s: key %r at %r, want %s" % (what, key, pos, k)
        assert value == objs[k], "%s: bytes differ for %s (%d vs %d bytes)" % (
            what, k, len(value or b""), len(objs[k]))
        assert hdrs.get("size") == str(len(objs[k])).encode(), (what, k, hdrs)
        assert hdrs.get("etag"), (what, k, hdrs)


def test_kafka_python_group_two_epochs(dataset):
    from kafka import KafkaConsumer

    b, proxy, topic, objs = dataset
    c = KafkaConsumer(topic, bootstrap_servers=b.bootstrap, group_id=unique("kpg"),
                      enable_auto_commit=False, auto_offset_reset="earliest",
                      fetch_max_wait_ms=100, request_timeout_ms=15000,
                      max_partition_fetch_bytes=1 << 20)
    try:
        for epoch in (1, 2):
            if epoch == 2:
                c.seek_to_beginning()
            recs = {}
            deadline = time.monotonic() + 60
            while len(recs) < len(objs):
                assert time.monotonic() < deadline, "epoch %d: %d of %d records" % (
                    epoch, len(recs), len(objs))
                for batch in c.poll(timeout_ms=500).values():
                    for r in batch:
                        if "sluice.skip" not in dict(r.headers):
                            recs[(r.partition, r.offset)] = (r.key, r.value, dict(r.headers))
            check_epoch(recs, objs, "kafka-python epoch %d" % epoch)
            if epoch == 1:
                c.commit()
                assert sorted(c.assignment()) and all(
                    c.committed(tp) is not None for tp in c.assignment()), "no committed offsets"
        assert not any(c.poll(timeout_ms=300).values()), "records beyond the dataset"
    finally:
        c.close()
    assert object_gets(proxy) == len(objs), "%d GETs for %d objects" % (object_gets(proxy), len(objs))


KAFKAJS_READER = r"""
// A consumer group reads TOPIC for two epochs: until every expected record has come,
// then it seeks each partition back to 0 and reads them all again. Prints one JSON line
// per epoch: {"epoch": n, "records": [[partition, offset, key, base64 value, headers]]}.
'use strict';
const { Kafka, logLevel } = require('kafkajs');
const [bootstrap, topic, group, parts, want] = process.argv.slice(2);
const kafka = new Kafka({ clientId: 'sluice-ds', brokers: [bootstrap], logLevel: logLevel.ERROR,
                          connectionTimeout: 5000, requestTimeout: 15000, retry: { retries: 3 } });
const consumer = kafka.consumer({ groupId: group, maxWaitTimeInMs: 100,
                                  maxBytesPerPartition: 1 << 20 });
const epochs = [new Map(), new Map()];
let epoch = 0;
const timer = setTimeout(() => { console.error('timed out in epoch ' + (epoch + 1)); process.exit(1); }, 90000);

function dump(n) {
  const records = [...epochs[n].values()];
  console.log(JSON.stringify({ epoch: n + 1, records }));
}

async function main() {
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let done;
  const finished = new Promise((resolve) => { done = resolve; });
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      const headers = {};
      for (const [k, v] of Object.entries(message.headers || {})) headers[k] = v.toString();
      if ('sluice.skip' in headers) return; // a partition's end marker: not a sample
      epochs[epoch].set(partition + ':' + message.offset, [partition, message.offset,
        message.key ? message.key.toString() : null,
        message.value ? message.value.toString('base64') : null, headers]);
      if (epochs[epoch].size < Number(want)) return;
      if (epoch === 0) {
        epoch = 1;
        for (let p = 0; p < Number(parts); p++) consumer.seek({ topic, partition: p, offset: '0' });
      } else {
        done();
      }
    },
  });
  await finished;
  await consumer.disconnect();
  clearTimeout(timer);
  dump(0);
  dump(1);
}
main().catch((e) => { console.error(e && e.stack || String(e)); process.exit(1); });
"""


@pytest.mark.skipif(shutil.which("node") is None or not os.path.isdir(os.path.join(NODE_PATH, "kafkajs")),
                    reason="node or kafkajs missing: run scripts/deps.sh test")
def test_kafkajs_group_two_epochs(dataset):
    b, proxy, topic, objs = dataset
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "ds_reader.js")
        with open(script, "w") as f:
            f.write(KAFKAJS_READER)
        env = dict(os.environ, NODE_PATH=NODE_PATH)
        r = run(["node", script, b.bootstrap, topic, unique("kjg"), str(PARTS), str(len(objs))],
                timeout=120, env=env)
    assert r.returncode == 0, "kafkajs reader exited %d\nstderr: %s\n--- broker log ---\n%s" % (
        r.returncode, r.stderr.decode(errors="replace")[-4000:], b.log_tail(30))
    lines = [json.loads(x) for x in r.stdout.decode().splitlines() if x.startswith("{")]
    assert [x["epoch"] for x in lines] == [1, 2], r.stdout[-2000:]
    for x in lines:
        recs = {}
        for part, off, key, val, hdrs in x["records"]:
            recs[(part, int(off))] = (key.encode() if key is not None else None,
                                     base64.b64decode(val) if val is not None else None,
                                     {k: v.encode() for k, v in hdrs.items()})
        check_epoch(recs, objs, "kafkajs epoch %d" % x["epoch"])
    assert object_gets(proxy) == len(objs), "%d GETs for %d objects" % (object_gets(proxy), len(objs))
