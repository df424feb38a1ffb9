#!/usr/bin/env python3
"""make_corpus.py: writes the fuzzers' seed corpora into tests/fuzz/corpus/<target>/.
Frames are built with tests/e2e/kwire.py's request builders and written without their
4-byte size prefix, as kafka_handle() receives them. Rerun after changing a builder;
the outputs are checked in."""
import io
import os
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import kwire as kw  # noqa: E402

TS = 1_700_000_000_000  # fixed, so reruns give identical files


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def req(key, ver, body, corr=1):
    return kw.request_header(key, ver, corr) + body


def frames():
    batch = kw.record_batch([(b"k", b"hello"), (None, b"world", [("h", b"v")], 3)],
                            base_timestamp=TS)
    put("frame", "api_versions_v3", req(18, 3, kw.api_versions_request(3)))
    put("frame", "api_versions_v0", req(18, 0, kw.api_versions_request(0)))
    put("frame", "metadata_v12", req(3, 12, kw.metadata_request(12, ["t"])))
    put("frame", "metadata_v1_all", req(3, 1, kw.metadata_request(1, None)))
    put("frame", "produce_v9", req(0, 9, kw.produce_request(9, {"t": {0: batch}}, acks=1)))
    put("frame", "produce_v3_acks0",
        req(0, 3, kw.produce_request(3, {"t": {1: batch}}, acks=0)))
    put("frame", "fetch_v12", req(1, 12, kw.fetch_request(12, {"t": {0: 0, 1: 0}})))
    put("frame", "fetch_v4", req(1, 4, kw.fetch_request(4, {"t": {0: 0}})))
    put("frame", "list_offsets_v5", req(2, 5, kw.list_offsets_request(5, {"t": {0: -1}})))
    put("frame", "init_pid_v4", req(22, 4, kw.init_producer_id_request(4)))
    put("frame", "create_topics_v5",
        req(19, 5, kw.create_topics_request(5, [("fz", 1, 1, {"cleanup.policy": "compact"})])))
    return batch


def batches(batch):
    put("batch", "plain_2", batch)
    put("batch", "idempotent", kw.record_batch([(b"a", b"1"), (b"b", b"2"), (b"c", b"3")],
                                               producer_id=7, producer_epoch=0,
                                               base_sequence=0, base_timestamp=TS))
    put("batch", "gzip", kw.record_batch([(b"k", b"v" * 64)], base_timestamp=TS, gzip=True))
    put("batch", "empty_value", kw.record_batch([(None, b"")], base_timestamp=TS))


def s3_lists():
    put("s3_list", "page", b"""<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
<Name>bucket</Name><Prefix>data/</Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys>
<IsTruncated>true</IsTruncated><NextContinuationToken>tok&amp;1</NextContinuationToken>
<Contents><Key>data/a.txt</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified>
<ETag>&quot;9a0364b9e99bb480dd25e1f0284c8555&quot;</ETag><Size>12</Size>
<StorageClass>STANDARD</StorageClass></Contents>
<Contents><Key>data/b&lt;2&gt;.bin</Key><ETag>"abc-2"</ETag><Size>1048576</Size></Contents>
</ListBucketResult>""")
    put("s3_list", "empty", b"""<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult><Name>b</Name><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated>
</ListBucketResult>""")
    put("s3_list", "error", b"""<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message>
</Error>""")


def tars():
    def add(tf, name, data, fmt=None):
        ti = tarfile.TarInfo(name)
        ti.size = len(data)
        ti.mtime = 0
        tf.addfile(ti, io.BytesIO(data))

    for fmt, tag in ((tarfile.USTAR_FORMAT, "ustar"), (tarfile.GNU_FORMAT, "gnu"),
                     (tarfile.PAX_FORMAT, "pax")):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
            add(tf, "a.txt", b"line one\nline two\r\nlast")
            d = tarfile.TarInfo("dir")
            d.type = tarfile.DIRTYPE
            d.mtime = 0
            tf.addfile(d)
            if fmt != tarfile.USTAR_FORMAT:
                add(tf, "dir/" + "n" * 150 + ".txt", b"long name\n")
            else:
                add(tf, "dir/b.bin", bytes(range(256)))
        put("tar", tag, buf.getvalue())
    put("tar", "lines", b"one\ntwo\n\nfour\r\nno newline at end")


if __name__ == "__main__":
    b = frames()
    batches(b)
    s3_lists()
    tars()
