#!/usr/bin/python3
"""dataset_reader.py: a training-style reader of a Sluice dataset topic over
confluent-kafka, shaped like a PyTorch IterableDataset (runs without torch).

A dataset topic serves an S3 prefix: one record per object (format object), per chunk,
per line (lines) or per tar member (tar, e.g. WebDataset shards). Offsets are stable
across restarts and epochs, with gaps between objects; each partition ends at its high
watermark, which the consumer reports as a partition EOF. An epoch is therefore "read
every assigned partition from offset 0 until EOF"; the next epoch seeks back to 0 and
the broker prefetches from the start again. Records with a null value carry a
"sluice.error" or "sluice.skip" header (a corrupt member, an over-long line, an empty
object) and are skipped here.

Workers split the partitions between them (worker w of W reads partitions p with
p % W == w), the way torch.utils.data.get_worker_info() splits an IterableDataset.

    python3 examples/dataset_reader.py --bootstrap 127.0.0.1:9092 --topic images \
        --epochs 3 --workers 4

With torch installed, wrap it: class DS(torch.utils.data.IterableDataset) whose
__iter__ returns iter(SluiceDataset(..., worker=info.id, workers=info.num_workers)).
"""

import argparse
import json
import sys
import threading
import time
import uuid

from confluent_kafka import Consumer, KafkaError, TopicPartition


def decode(key, value, headers, fmt):
    """Turns one record into a sample: JSON for lines, raw bytes otherwise."""
    name = key.decode("utf-8", "replace") if key else None
    if fmt == "lines":
        try:
            return {"key": name, "line": int(headers.get("line", b"0")), "data": json.loads(value)}
        except ValueError:
            return {"key": name, "line": int(headers.get("line", b"0")), "data": value}
    if fmt == "tar":
        return {"key": name, "shard": headers.get("shard", b"").decode(), "data": value}
    return {"key": name, "data": value}


class SluiceDataset:
    """An iterable over one worker's share of a dataset topic, for a number of epochs."""

    def __init__(self, bootstrap, topic, epochs=1, worker=0, workers=1, fmt="object",
                 group=None, poll_s=0.2, epoch_timeout_s=600):
        self.bootstrap, self.topic, self.epochs = bootstrap, topic, epochs
        self.worker, self.workers, self.fmt = worker, workers, fmt
        self.group = group or "reader-%s" % uuid.uuid4().hex[:8]
        self.poll_s, self.epoch_timeout_s = poll_s, epoch_timeout_s
        self.skipped = 0

    def _consumer(self):
        return Consumer({
            "bootstrap.servers": self.bootstrap,
            "group.id": self.group,
            "client.id": "%s-w%d" % (self.group, self.worker),
            "enable.partition.eof": True,   # the end of an epoch
            "enable.auto.commit": False,    # epochs restart from 0; nothing to resume
            "fetch.wait.max.ms": 100,
        })

    def _partitions(self, c):
        md = c.list_topics(self.topic, timeout=10).topics[self.topic]
        if md.error is not None:
            raise RuntimeError("topic %s: %s" % (self.topic, md.error))
        return [p for p in sorted(md.partitions) if p % self.workers == self.worker]

    def __iter__(self):
        c = self._consumer()
        try:
            parts = self._partitions(c)
            for epoch in range(self.epochs):
                yield from self._epoch(c, parts, epoch)
        finally:
            c.close()

    def _epoch(self, c, parts, epoch):
        if not parts:
            return
        c.assign([TopicPartition(self.topic, p, 0) for p in parts])
        done, deadline = set(), time.time() + self.epoch_timeout_s
        while len(done) < len(parts):
            if time.time() > deadline:
                raise TimeoutError("epoch %d: partitions %s did not finish" % (
                    epoch, sorted(set(parts) - done)))
            m = c.poll(self.poll_s)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    done.add(m.partition())
                    continue
                raise RuntimeError(str(m.error()))
            headers = dict(m.headers() or [])
            if m.value() is None:
                self.skipped += 1
                continue
            sample = decode(m.key(), m.value(), headers, self.fmt)
            sample["epoch"] = epoch
            yield sample
        c.unassign()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--format", default="object", choices=["object", "chunk", "lines", "tar"])
    a = ap.parse_args(argv)
    counts = [[0, 0] for _ in range(a.workers)]
    start = time.time()

    def run(w):
        for s in SluiceDataset(a.bootstrap, a.topic, a.epochs, w, a.workers, a.format):
            counts[w][0] += 1
            counts[w][1] += len(s["data"]) if isinstance(s["data"], (bytes, bytearray)) else 1

    threads = [threading.Thread(target=run, args=(w,)) for w in range(a.workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    n, b = sum(c[0] for c in counts), sum(c[1] for c in counts)
    dt = time.time() - start
    print(json.dumps({"samples": n, "bytes": b, "seconds": round(dt, 3),
                      "MBps": round(b / dt / 1e6, 2) if dt else 0}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
