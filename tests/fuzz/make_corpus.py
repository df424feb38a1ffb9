#!/usr/bin/env python3
"""make_corpus.py: hand-built seeds for the fuzzers, written into OUT/<target>/ (default
build/fuzz/seeds; `make fuzz-merge` takes them into tests/fuzz/corpus/). Frames are
built with tests/e2e/kwire.py's request builders and written without their 4-byte size
prefix, as kafka_handle() receives them: what captured traffic (capture.py) lacks, such
as logins fuzz_frame can complete against its fixed SCRAM nonce. The output is the same
on every run.

  make_corpus.py [--out OUT] [target...]   targets: frame batch s3_list tar scram"""
import base64
import gzip
import hashlib
import hmac
import io
import os
import struct
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "..", "build", "fuzz", "seeds")
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import kwire as kw  # noqa: E402

TS = 1_700_000_000_000  # fixed, so reruns give identical files
_gzip_compress = gzip.compress
gzip.compress = lambda data, compresslevel=9, mtime=0: _gzip_compress(data, compresslevel, mtime=mtime)


def put(target, name, data):
    d = os.path.join(OUT, target)
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


# fuzz_frame.c's mode byte (the top byte of the first frame's correlation id) and
# frame separator; fuzz_broker.h's users.
SEP = b"#FRAME#\n"
M_AUTHORIZE, M_SASL, M_ALICE, M_ADMIN = 1, 2, 1 << 2, 3 << 2
M_PLAIN, M_SCRAM256, M_SCRAM512 = 1 << 4, 2 << 4, 3 << 4
kw.FIRST_FLEXIBLE.setdefault(36, 2)  # SaslAuthenticate


def sasl_auth(ver, token, mode=0, corr=1):
    fx = ver >= 2
    body = kw.w_bytes(fx, token) + kw.w_tags(fx)
    return req(36, ver, body, corr=mode << 24 | corr)


def sasl_frames():
    """Logins fuzz_frame can complete: SCRAM against its fixed server nonce, PLAIN, and
    requests that need a principal; plus what no captured client sends: DescribeCluster,
    DescribeConfigs on a share group."""
    salt64 = base64.b64encode(SCRAM_SALT).decode()
    for mech, hname, ver, bit in ((256, "sha256", 1, M_SCRAM256), (512, "sha512", 2, M_SCRAM512)):
        bare, gs2 = "n=alice,r=cnonce%d" % mech, "n,,"
        nonce = "cnonce%d" % mech + SCRAM_SNONCE
        sf = "r=%s,s=%s,i=%d" % (nonce, salt64, SCRAM_ITER)
        fin = scram_final(hname, bare, sf, gs2, nonce, pw=b"alice-secret")
        mode = M_SASL | bit
        put("frame", "scram%d_alice" % mech,
            sasl_auth(ver, (gs2 + bare).encode(), mode) + SEP + sasl_auth(ver, fin, 0, 2) + SEP +
            req(3, 12, kw.metadata_request(12, ["t", "t-deny", "v.shared"]), corr=3))
    put("frame", "plain_alice", sasl_auth(1, b"\0alice\0alice-secret", M_SASL | M_PLAIN) + SEP +
        req(3, 4, kw.metadata_request(4, None), corr=2))
    put("frame", "plain_wrong", sasl_auth(2, b"alice\0alice\0nope", M_SASL | M_PLAIN))
    for ver in (0, 1):
        body = kw.boolean(True) + (kw.int8(1) if ver >= 1 else b"") + kw.tagged_fields()
        put("frame", "describe_cluster_v%d" % ver, req(60, ver, body))
        put("frame", "describe_cluster_v%d_acl" % ver,
            req(60, ver, body, corr=(M_AUTHORIZE | M_ALICE) << 24 | 1))
    for ver in (1, 4):  # a share group's configs (resource type GROUP, 32)
        fx = ver >= 4
        res = kw.int8(32) + kw.w_str(fx, "sg-1") + kw.w_arr(fx, None) + kw.w_tags(fx)
        body = kw.w_arr(fx, [res]) + kw.boolean(True) + (kw.boolean(True) if ver >= 3 else b"")
        put("frame", "describe_configs_group_v%d" % ver, req(32, ver, body + kw.w_tags(fx)))
    batch = kw.record_batch([(b"k", b"v")], base_timestamp=TS)
    put("frame", "produce_alice_acl_deny",
        req(0, 9, kw.produce_request(9, {"t-deny": {0: batch}, "t": {1: batch}}, acks=1),
            corr=(M_AUTHORIZE | M_ALICE) << 24 | 1))
    put("frame", "metadata_admin_acl",
        req(3, 12, kw.metadata_request(12, None), corr=(M_AUTHORIZE | M_ADMIN) << 24 | 1))


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


# fuzz_scram.c's fixture: the one user, its salt and iterations, and the fixed nonce.
SCRAM_USER, SCRAM_PW, SCRAM_SALT = "user", b"pencil", b"fuzz-salt-16-byt"
SCRAM_ITER, SCRAM_SNONCE = 4096, "fuzzServerNonce0123456789"


def scram_final(hname, first_bare, server_first, gs2, nonce, pw=SCRAM_PW, ext=""):
    """RFC 5802 client-final for an exchange (without the proof's AuthMessage caveats)."""
    salted = hashlib.pbkdf2_hmac(hname, pw, SCRAM_SALT, SCRAM_ITER)
    ckey = hmac.new(salted, b"Client Key", hname).digest()
    stored = hashlib.new(hname, ckey).digest()
    wp = "c=%s,r=%s%s" % (base64.b64encode(gs2.encode()).decode(), nonce, ext)
    auth = ("%s,%s,%s" % (first_bare, server_first, wp)).encode()
    sig = hmac.new(stored, auth, hname).digest()
    proof = bytes(a ^ b for a, b in zip(ckey, sig))
    return (wp + ",p=" + base64.b64encode(proof).decode()).encode()


def scram_seed(mech, first, final):
    return bytes([mech]) + struct.pack(">H", len(first)) + first + final


def scrams():
    salt64 = base64.b64encode(SCRAM_SALT).decode()
    for mech, hname, tag in ((0, "sha256", "256"), (1, "sha512", "512")):
        for gs2, cnonce, ext, name in (("n,,", "rOprNGfwEbeRWgbNEkqO", "", "ok"),
                                       ("n,a=user,", "abc", "", "authzid"),
                                       ("y,,", "kafkaNonce", ",ext=1", "ext")):
            bare = "n=%s,r=%s" % (SCRAM_USER, cnonce)
            nonce = cnonce + SCRAM_SNONCE
            sf = "r=%s,s=%s,i=%d" % (nonce, salt64, SCRAM_ITER)
            fin = scram_final(hname, bare, sf, gs2, nonce, ext=ext)
            put("scram", "%s_%s" % (name, tag), scram_seed(mech, (gs2 + bare).encode(), fin))
        bare = "n=nobody,r=xyz"
        put("scram", "unknown_user_" + tag,
            scram_seed(mech, ("n,," + bare).encode(), b"c=biws,r=xyz" + SCRAM_SNONCE.encode() +
                       b",p=" + base64.b64encode(bytes(32 if mech == 0 else 64))))
        put("scram", "escaped_name_" + tag, scram_seed(mech, b"n,,n=a=2Cb=3Dc,r=n0nce", b""))
        put("scram", "tokenauth_" + tag,
            scram_seed(mech, b"n,,n=user,r=n0nce,tokenauth=true", b""))
    put("scram", "plain_ok", b"\x02\x00user\x00pencil")
    put("scram", "plain_authzid", b"\x02user\x00user\x00wrong")
    salted = hashlib.pbkdf2_hmac("sha256", SCRAM_PW, SCRAM_SALT, SCRAM_ITER)
    ckey = hmac.new(salted, b"Client Key", "sha256").digest()
    skey = hmac.new(salted, b"Server Key", "sha256").digest()
    rec = bytes([1, 0, 32]) + struct.pack(">i", SCRAM_ITER) + bytes([len(SCRAM_SALT)])
    put("scram", "cred_record",
        b"\x03" + rec + SCRAM_SALT + hashlib.sha256(ckey).digest() + skey)


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--out"]:
        OUT, args = args[1], args[2:]
    want = set(args) or {"frame", "batch", "s3_list", "tar", "scram"}
    b = frames() if "frame" in want else None
    if "frame" in want:
        sasl_frames()
    if "batch" in want:
        batches(b or kw.record_batch([(b"k", b"hello"), (None, b"world", [("h", b"v")], 3)],
                                     base_timestamp=TS))
    if "s3_list" in want:
        s3_lists()
    if "tar" in want:
        tars()
    if "scram" in want:
        scrams()
