"""test_hostile.py: a hostile client cannot make the broker allocate past its caps.

Raw frames on sockets (kwire) and raw HTTP bodies: array counts of 2^31-1 in frames that
hold a few entries, tagged-field sections of a million tags, a record with 340,000
headers, a million tiny requests pipelined on one connection, 500 connections that each
announce a 100 MB frame and send one byte of it, and JSON nested 100,000 deep. The broker
must answer or close, keep serving, and its resident memory (VmRSS in /proc) must stay
within the caps the configuration sets (max.inflight.requests, the connection output
limit, the size of what was actually sent), never near what was declared.

Each test runs twice when it can:
  - "sanitizer": the suite's broker ($SLUICE_BIN; ASan/UBSan in `make test`), for
    correctness: it survives and its log has no sanitizer report;
  - "plain": a broker built without sanitizers (SLUICE_PLAIN_BIN, else build/bin, which
    `make test` builds first), where RSS is measured. ASan's quarantine and shadow
    memory make RSS meaningless as a bound, so RSS is asserted only on this one.
"""

import os
import socket
import struct
import threading
import time

import pytest

import kwire as k
from harness import REPO_ROOT, Broker, bin_dir

MiB = 1 << 20
INT32_MAX = (1 << 31) - 1


# ---- brokers --------------------------------------------------------------------------------


def _is_asan(exe):
    with open(exe, "rb") as f:
        return b"__asan_init" in f.read()


def _plain_exe():
    d = os.environ.get("SLUICE_PLAIN_BIN", os.path.join(REPO_ROOT, "build", "bin"))
    exe = os.path.join(d if os.path.isabs(d) else os.path.join(REPO_ROOT, d), "sluice-broker")
    return exe if os.access(exe, os.X_OK) and not _is_asan(exe) else None


class HostileBroker(Broker):
    """A Broker from a given executable; with ASan, a small quarantine keeps it lean."""

    def __init__(self, exe, config=None, **kw):
        env = {}
        self.asan = _is_asan(exe)
        if self.asan:
            env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0:quarantine_size_mb=16"
        super().__init__(config=config, env=env, **kw)
        self.exe = exe

    def command(self):
        return [self.exe] + super().command()[1:]

    def rss(self):
        return k.rss_bytes(self.proc.pid)


@pytest.fixture(params=["sanitizer", "plain"])
def flavour(request):
    """Which executable: the suite's one, or a plain build for RSS."""
    suite = os.path.join(bin_dir(), "sluice-broker")
    if request.param == "plain":
        exe = suite if not _is_asan(suite) else _plain_exe()
        if not exe:
            pytest.skip("no broker without sanitizers (build/bin or SLUICE_PLAIN_BIN) for RSS")
        return exe, True
    if not _is_asan(suite):
        pytest.skip("$SLUICE_BIN is not a sanitizer build; the plain run covers it")
    return suite, False


def start(flavour, **config):
    exe, measure = flavour
    b = HostileBroker(exe, config=config)
    b.start()
    b.measure = measure
    return b


def finish(b, what):
    try:
        k.assert_serving(b, what)
        rc = b.stop()
        assert rc == 0, "broker exit code on SIGTERM was %r\n%s" % (rc, b.log_tail())
        b.assert_clean()
    finally:
        b.close()


class Peak:
    """Samples the broker's RSS every 50 ms in a thread; .grown is the peak over the
    baseline taken at the start."""

    def __init__(self, b):
        self.b, self.base, self.peak, self.stop = b, b.rss(), 0, False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stop:
            try:
                self.peak = max(self.peak, self.b.rss())
            except (OSError, AssertionError):
                return
            time.sleep(0.05)

    def done(self):
        self.stop = True
        self.t.join()
        self.peak = max(self.peak, self.b.rss())
        return self.peak - self.base


def assert_rss(b, grown, limit, what):
    print("RSS grew by %.1f MiB %s (limit %d MiB)" % (grown / MiB, what, limit // MiB))
    if b.measure:
        assert grown < limit, "broker RSS grew by %.1f MiB %s (limit %d MiB)" % (
            grown / MiB, what, limit // MiB)


def send_all(socks_frames):
    """Sends each frame on its socket (in threads: a broker that stops reading must not
    stall the test) and returns the threads."""
    ts = []
    for s, f in socks_frames:
        t = threading.Thread(target=_send_quiet, args=(s, f), daemon=True)
        t.start()
        ts.append(t)
    return ts


def _send_quiet(s, data):
    try:
        s.sendall(data)
    except OSError:
        pass  # the broker closed it: a fine answer to garbage


def drain(s, timeout):
    """Reads until EOF, until the answer stops coming (0.3 s of silence after some bytes),
    or until timeout; returns the number of bytes the broker sent."""
    n, deadline = 0, time.monotonic() + timeout
    while time.monotonic() < deadline:
        s.settimeout(0.3 if n else max(0.01, deadline - time.monotonic()))
        try:
            chunk = s.recv(1 << 20)
        except (socket.timeout, OSError):
            break
        if not chunk:
            break
        n += len(chunk)
    return n


def hdr(api, ver, cid=1):
    return k.request_header(api, ver, cid, "hostile")


# ---- huge declared array counts ------------------------------------------------------------


def _batch_claiming(count, n_real=3):
    """A v2 record batch with n_real records whose header claims count, CRC correct."""
    return k.record_batch([(b"k", b"v")] * n_real, base_timestamp=1_700_000_000_000, record_count=count)


def _batch_with_headers(n):
    """A v2 record batch of one record with n empty headers (kwire's builder is
    quadratic in the number of headers)."""
    body = k.int8(0) + k.varlong(0) + k.varint(0) + k.varint(1) + b"k" + k.varint(1) + b"v"
    body += k.varint(n) + (k.varint(1) + b"h" + k.varint(0)) * n
    rec = k.varint(len(body)) + body
    ts = 1_700_000_000_000
    after_crc = (k.int16(0) + k.int32(0) + k.int64(ts) + k.int64(ts) + k.int64(-1) + k.int16(-1) +
                 k.int32(-1) + k.int32(1) + rec)
    after_len = k.int32(-1) + k.int8(2) + k.uint32(k.crc32c(after_crc)) + after_crc
    return k.int64(0) + k.int32(len(after_len)) + after_len


def huge_count_frames(pad):
    """(name, payload) pairs: requests whose array counts say 2^31-1 while the frame holds
    about pad bytes of real entries."""
    names = k.string("t") * (pad // 3)
    cnames = k.compact_string("t") * (pad // 2)
    out = [
        ("metadata_v1", hdr(k.METADATA, 1) + k.int32(INT32_MAX) + names),
        ("metadata_v12", hdr(k.METADATA, 12) + k.uvarint(INT32_MAX) + cnames),
        ("produce_v7_topics", hdr(k.PRODUCE, 7) + k.string(None) + k.int16(1) + k.int32(1000) +
         k.int32(INT32_MAX) + (k.string("t") + k.int32(0)) * (pad // 7)),
        ("produce_v7_partitions", hdr(k.PRODUCE, 7) + k.string(None) + k.int16(1) + k.int32(1000) +
         k.int32(1) + k.string("t") + k.int32(INT32_MAX) + (k.int32(0) + k.bytes_(None)) * (pad // 8)),
        ("produce_v9_records", hdr(k.PRODUCE, 9) +
         k.produce_request(9, {"t": {0: _batch_claiming(INT32_MAX, pad // 16)}}, acks=1)),
        ("create_topics_v5", hdr(k.CREATE_TOPICS, 5) +
         k.create_topics_request(5, [("huge-%d" % i, INT32_MAX, 1) for i in range(pad // 64)])),
        ("create_topics_v4_assignments", hdr(k.CREATE_TOPICS, 4) + k.int32(1) + k.string("huge") +
         k.int32(-1) + k.int16(-1) + k.int32(INT32_MAX) + k.int32(0) * (pad // 4)),
        ("create_partitions_v1", hdr(k.CREATE_PARTITIONS, 1) + k.int32(1) + k.string("t") +
         k.int32(INT32_MAX) + k.int32(-1) + k.int32(10000) + k.boolean(False)),
        ("join_group_v5_protocols", hdr(11, 5) + k.string("g") + k.int32(10000) + k.int32(10000) +
         k.string("") + k.string(None) + k.string("consumer") + k.int32(INT32_MAX) +
         (k.string("range") + k.bytes_(b"")) * (pad // 11)),
        ("offset_commit_v7_topics", hdr(8, 7) + k.string("g") + k.int32(-1) + k.string("") +
         k.string(None) + k.int32(INT32_MAX) + (k.string("t") + k.int32(0)) * (pad // 7)),
        ("describe_configs_v1", hdr(k.DESCRIBE_CONFIGS, 1) + k.int32(INT32_MAX) +
         (k.int8(2) + k.string("t") + k.int32(INT32_MAX)) * (pad // 10)),
        ("create_acls_v1", hdr(30, 1) + k.int32(INT32_MAX) +
         (k.int8(2) + k.string("x") + k.int8(3) + k.string("User:x") + k.string("*") + k.int8(3) +
          k.int8(3)) * (pad // 30)),
    ]
    return out


def test_huge_declared_array_counts(flavour):
    """16 connections at once per request kind, each frame about 1 MiB of real entries
    under a count of 2^31-1: memory follows the bytes sent, not the counts."""
    b = start(flavour)
    try:
        b.create_topic("t", 1)
        frames = huge_count_frames(1 << 20)
        peak = Peak(b)
        for name, payload in frames:
            socks = [socket.create_connection(("127.0.0.1", b.kafka_port)) for _ in range(16)]
            ts = send_all([(s, k.frame(payload)) for s in socks])
            for s in socks:
                drain(s, 5)
                s.close()
            for t in ts:
                t.join(5)
            assert b.alive(), "broker died on %s\n%s" % (name, b.log_tail())
        grown = peak.done()
        assert_rss(b, grown, 64 * MiB, "after 16 x %d frames of 1 MiB claiming 2^31-1 entries" % len(frames))
    finally:
        finish(b, "after huge array counts")


def test_huge_partition_counts_over_http(flavour):
    b = start(flavour)
    try:
        b.create_topic("t", 1)
        st, _ = b.http("POST", "/v1/topics", {"name": "huge", "partitions": INT32_MAX})
        assert 400 <= st < 500, st
        st, _ = b.http("PATCH", "/v1/topics/t", {"partitions": INT32_MAX})
        assert 400 <= st < 500, st
    finally:
        finish(b, "after huge partition counts over HTTP")


# ---- tagged fields and nesting -------------------------------------------------------------


def _tags(n, size=0):
    return k.uvarint(n) + b"".join(k.uvarint(i) + k.uvarint(size) + b"x" * size for i in range(n))


def test_huge_tagged_field_sections(flavour):
    """A flexible request header with a million empty tagged fields, a Metadata v12 whose
    100,000 topics each carry 20 tags, a record with 340,000 headers, and tag sections
    that claim more tags or bytes than the frame holds: each is skipped or refused in
    bounded memory and time."""
    b = start(flavour)
    try:
        b.create_topic("t", 1)
        many_tags = k.int16(k.METADATA) + k.int16(12) + k.int32(1) + k.string("hostile") + _tags(1_000_000)
        many_tags += k.compact_array([]) + k.boolean(False) + k.boolean(False) + k.tagged_fields()
        topic = k.ZERO_UUID + k.compact_string("t") + _tags(20)
        nested = hdr(k.METADATA, 12) + k.uvarint(100_001) + topic * 100_000
        nested += k.boolean(False) + k.boolean(False) + k.tagged_fields()
        batch = _batch_with_headers(340_000)  # just under message.max.bytes: it is parsed
        produce = hdr(k.PRODUCE, 9) + k.produce_request(9, {"t": {0: batch}}, acks=1)
        claims = [
            hdr(k.METADATA, 12) + k.uvarint(INT32_MAX) + k.uvarint(0) + k.uvarint(0),
            hdr(k.METADATA, 12) + k.uvarint(1) + k.uvarint(0) + k.uvarint(INT32_MAX) + b"x" * 1000,
            k.int16(k.METADATA) + k.int16(12) + k.int32(1) + k.string("h") + b"\xff" * 1000,
        ]
        peak = Peak(b)
        for payload in [many_tags, nested, produce] + claims:
            assert len(payload) < 100 * MiB
            with socket.create_connection(("127.0.0.1", b.kafka_port)) as s:
                t0 = time.monotonic()
                ts = send_all([(s, k.frame(payload))])
                drain(s, 30)
                for t in ts:
                    t.join(5)
                assert time.monotonic() - t0 < 30
        grown = peak.done()
        sent = max(len(many_tags), len(nested), len(produce))
        assert_rss(b, grown, 2 * sent + 32 * MiB,
                   "for tag sections and headers in frames of at most %.1f MiB" % (sent / MiB))
    finally:
        finish(b, "after huge tagged-field sections")


def test_deeply_nested_json(flavour):
    """Admin bodies nested 100,000 deep (cJSON stops at its nesting limit) and a 1 MiB
    body of brackets: 400, and the broker carries on."""
    b = start(flavour)
    try:
        for body in ("[" * 100_000 + "]" * 100_000, '{"a":' * 100_000 + "1" + "}" * 100_000,
                     '{"name":"n","config":' + "[" * 300_000 + "]" * 300_000 + "}"):
            for method, path in (("POST", "/v1/topics"), ("PUT", "/v1/principals/deep"),
                                 ("PUT", "/v1/share-groups/deep")):
                st, _ = b.http(method, path, body)
                assert st in (400, 413), (method, path, st)
    finally:
        finish(b, "after deeply nested JSON")


def test_share_view_of_65536_partitions_renders_fast(flavour):
    """A shared view may have 65,536 virtual partitions; describing its share group walks
    the group's members once, not once per virtual partition (that was 65,536 list walks
    that each created a member: minutes with the event loop stalled)."""
    b = start(flavour)
    try:
        st, _ = b.http("POST", "/v1/topics", {"name": "wide", "partitions": 1,
                                              "shared": {"virtual_partitions": 65536, "group": "wide-g"}})
        assert st == 201, st
        for method, body in (("GET", None), ("PUT", {"topic": "wide", "virtual_partitions": 65536})):
            t0 = time.monotonic()
            st, out = b.http(method, "/v1/share-groups/wide-g", body, timeout=30)
            took = time.monotonic() - t0
            assert st == 200 and out["view"]["partitions"] == 65536, (st, str(out)[:300])
            assert took < 1, "%s /v1/share-groups of a 65,536-partition view took %.1f s" % (method, took)
            assert out["members"] == [], "describing the group created members"
    finally:
        finish(b, "after a wide shared view")


# ---- a million tiny requests ------------------------------------------------------------


def _tiny(n):
    """n ApiVersions v0 requests with a null client id: 14 bytes each on the wire."""
    return b"".join(struct.pack(">ihhih", 10, k.API_VERSIONS, 0, cid, -1) for cid in range(n))


def _read_responses(s, n, timeout):
    """Reads n response frames; returns the correlation ids seen, in order, as a count
    and whether they came in request order."""
    buf, got, ordered, deadline = bytearray(), 0, True, time.monotonic() + timeout
    s.settimeout(5)
    while got < n and time.monotonic() < deadline:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        buf += chunk
        off = 0
        while len(buf) - off >= 8:
            ln, cid = struct.unpack_from(">ii", buf, off)
            if len(buf) - off < 4 + ln:
                break
            ordered &= cid == got
            got += 1
            off += 4 + ln
        del buf[:off]
    return got, ordered


@pytest.mark.timeout(300)
@pytest.mark.parametrize("output_limit", [None, 1 << 16])
def test_a_million_tiny_requests_on_one_connection(flavour, output_limit):
    """1,000,000 ApiVersions v0 requests (14 MB) pipelined, read only once all are sent:
    the broker holds at most max.inflight.requests responses and the output limit, then
    stops reading; every request is answered, in order."""
    n = 1_000_000
    cfg = {"max.inflight.requests": 1024}
    if output_limit:
        cfg["connection.output.limit.bytes"] = output_limit
    b = start(flavour, **cfg)
    try:
        s = socket.create_connection(("127.0.0.1", b.kafka_port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        peak = Peak(b)
        sender = threading.Thread(target=_send_quiet, args=(s, _tiny(n)), daemon=True)
        sender.start()
        time.sleep(2.0)  # the broker fills its limits and stops reading
        got, ordered = _read_responses(s, n, 240)
        sender.join(10)
        grown = peak.done()
        s.close()
        assert got == n and ordered, "%d of %d answered (in order: %s)" % (got, n, ordered)
        # 1024 ApiVersions v0 answers are about 300 KB; allow for slots and buffers
        assert_rss(b, grown, 16 * MiB, "for a million pipelined requests")
    finally:
        finish(b, "after a million tiny requests")


# ---- slowloris -------------------------------------------------------------------------------


@pytest.mark.timeout(240)
def test_slowloris_partial_frames_hold_little_memory(flavour):
    """500 connections each announce a frame of max.request.bytes (100 MB) and send one
    byte of it: the broker grows a frame's buffer with what arrives, so this costs far
    less than 50 GB; request.read.timeout.ms then closes them all and the memory goes."""
    conns, n = [], 500
    b = start(flavour, **{"request.read.timeout.ms": 3000, "max.connections.per.ip": 0})
    try:
        peak = Peak(b)
        for _ in range(n):
            c = socket.create_connection(("127.0.0.1", b.kafka_port))
            c.sendall(struct.pack(">i", 100 * MiB) + b"\x00")
            conns.append(c)
        time.sleep(1.0)
        with k.Conn.to(b, timeout=5) as other:  # the others are still served meanwhile
            assert other.api_versions(0)["error_code"] == k.NONE
        grown = peak.done()
        assert_rss(b, grown, 64 * MiB, "for %d connections holding a partial 100 MB frame" % n)
        deadline = time.monotonic() + 15
        for c in conns:
            c.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                assert c.recv(1) == b"", "the broker answered a partial frame"
            except socket.timeout:
                raise AssertionError("a partial frame outlived request.read.timeout.ms")
            except ConnectionResetError:
                pass
        time.sleep(1.5)  # the sweep frees them
        assert_rss(b, b.rss() - peak.base, 16 * MiB, "once the partial frames timed out")
    finally:
        for c in conns:
            c.close()
        finish(b, "after a slowloris")
