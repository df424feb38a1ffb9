"""test_wire_framing.py: the Kafka listener against bad frames and bad clients.

Raw bytes on a socket (kwire): negative, oversize and empty frames, lengths and counts
that point past the frame, unknown APIs and versions, a slowloris client, pipelining,
and a client that never reads. After each, the broker must still serve other
connections and a real client (kwire.assert_serving).
"""

import socket
import time

import pytest

import kwire as k
from harness import unique

MAX_REQUEST_BYTES = 100 * 1024 * 1024


def header(api_key, version, cid, client_id="kwire"):
    return k.request_header(api_key, version, cid, client_id)


# ---- frame lengths ---------------------------------------------------------------------


@pytest.mark.parametrize("length", [-1, -(1 << 31), -100])
def test_negative_frame_length_closes_connection(broker, length):
    with k.Conn.to(broker) as c:
        c.send_raw(k.int32(length) + b"\x00" * 16)
        k.expect_closed(c, "after a frame length of %d" % length)
    k.assert_serving(broker, "after a negative frame length")


@pytest.mark.parametrize("length", [MAX_REQUEST_BYTES + 1, (1 << 31) - 1, 1 << 30])
def test_oversize_frame_length_closes_connection_without_allocating(broker, length):
    rss0 = k.rss_bytes(broker.proc.pid)
    conns = []
    try:
        # Several at once: a broker that allocates the declared size would need GiBs.
        for _ in range(8):
            c = k.Conn.to(broker)
            c.send_raw(k.int32(length) + header(k.API_VERSIONS, 0, 1))
            conns.append(c)
        for c in conns:
            k.expect_closed(c, "after a frame length of %d (max.request.bytes is %d)" % (length, MAX_REQUEST_BYTES))
    finally:
        for c in conns:
            c.close()
    grown = k.rss_bytes(broker.proc.pid) - rss0
    assert grown < 64 << 20, "broker RSS grew by %d MiB after oversize frame headers" % (grown >> 20)
    k.assert_serving(broker, "after oversize frame lengths")


def test_frame_of_exactly_max_request_bytes_is_not_rejected_early(broker):
    """The limit is inclusive: a 100 MiB frame is legal, so the broker waits for its body
    instead of closing at once. (It may close later for idleness; not within 1 s.)"""
    with k.Conn.to(broker) as c:
        c.send_raw(k.int32(MAX_REQUEST_BYTES) + header(k.API_VERSIONS, 0, 1))
        assert not c.wait_closed(1.0), "broker closed a connection whose frame is exactly max.request.bytes"
    k.assert_serving(broker, "after a max-size frame header")


@pytest.mark.parametrize("payload", [b"", b"\x00", b"\x00\x12\x00", b"\x00\x12\x00\x00\x00\x00\x00"],
                         ids=["empty", "1-byte", "3-byte", "7-byte"])
def test_frame_shorter_than_request_header_closes_connection(broker, payload):
    with k.Conn.to(broker) as c:
        c.send_raw(k.frame(payload))
        k.expect_closed(c, "after a %d-byte frame (shorter than a request header)" % len(payload))
    k.assert_serving(broker, "after a too-short frame")


# ---- malformed bodies ------------------------------------------------------------------------


def test_client_id_length_past_frame_closes_connection(broker):
    with k.Conn.to(broker) as c:
        payload = k.int16(k.API_VERSIONS) + k.int16(0) + k.int32(7) + k.int16(500) + b"abc"
        c.send_raw(k.frame(payload))
        k.expect_closed(c, "after a client_id longer than the frame")
    k.assert_serving(broker, "after a truncated client_id")


def test_topic_name_length_past_frame_closes_connection(broker):
    with k.Conn.to(broker) as c:
        body = k.int32(1) + k.int16(30000) + b"abc"  # Metadata v1: one topic, name too long
        c.send_raw(k.frame(header(k.METADATA, 1, 3) + body))
        k.expect_closed(c, "after a topic name longer than the frame")
    k.assert_serving(broker, "after a truncated topic name")


@pytest.mark.parametrize("count", [(1 << 31) - 1, 1 << 24, 1000])
def test_metadata_array_count_past_frame_closes_connection(broker, count):
    with k.Conn.to(broker) as c:
        body = k.int32(count) + k.string("t")
        c.send_raw(k.frame(header(k.METADATA, 1, 3) + body))
        k.expect_closed(c, "after a Metadata topic count of %d in a tiny frame" % count)
    k.assert_serving(broker, "after a huge array count")


def test_flexible_compact_array_count_past_frame_closes_connection(broker):
    with k.Conn.to(broker) as c:
        body = k.uvarint(0xFFFFFFFF) + k.compact_string("t") + k.tagged_fields()
        c.send_raw(k.frame(header(k.METADATA, 9, 3) + body))
        k.expect_closed(c, "after a compact array count of 2^32-2 in a tiny frame")
    k.assert_serving(broker, "after a huge compact array count")


def test_endless_varint_in_tagged_fields_closes_connection(broker):
    with k.Conn.to(broker) as c:
        hdr = k.int16(k.METADATA) + k.int16(9) + k.int32(4) + k.string("kwire")
        c.send_raw(k.frame(hdr + b"\xff" * 20))  # header v2 tag count: a varint that never ends
        k.expect_closed(c, "after a 20-byte unterminated varint")
    k.assert_serving(broker, "after an unterminated varint")


def test_tagged_field_size_past_frame_closes_connection(broker):
    with k.Conn.to(broker) as c:
        hdr = k.int16(k.METADATA) + k.int16(9) + k.int32(4) + k.string("kwire")
        tags = k.uvarint(1) + k.uvarint(0) + k.uvarint(1 << 20) + b"xx"  # one tag of 1 MiB, 2 bytes sent
        c.send_raw(k.frame(hdr + tags))
        k.expect_closed(c, "after a tagged field larger than the frame")
    k.assert_serving(broker, "after an oversize tagged field")


@pytest.mark.parametrize("version", [7, 9])
def test_produce_records_length_past_frame_closes_connection(broker, version):
    topic = unique("trunc")
    broker.create_topic(topic)
    flex = version >= 9
    body = k.w_str(flex, None) + k.int16(-1) + k.int32(1000)
    part = k.int32(0) + (k.uvarint(1 << 20) if flex else k.int32(1 << 20)) + b"\x00" * 20
    body += (k.uvarint(2) if flex else k.int32(1)) + k.w_str(flex, topic) + (k.uvarint(2) if flex else k.int32(1))
    body += part
    with k.Conn.to(broker) as c:
        c.send_raw(k.frame(header(k.PRODUCE, version, 5) + body))
        k.expect_closed(c, "after Produce v%d records length past the frame" % version)
    assert k.high_watermark(broker, topic) == 0, "a truncated produce appended records"
    k.assert_serving(broker, "after a truncated produce")


def test_random_garbage_frames_do_not_hurt_broker(broker):
    import random

    rnd = random.Random(1234)
    for i in range(30):
        with k.Conn.to(broker) as c:
            api = rnd.choice([k.PRODUCE, k.FETCH, k.METADATA, k.LIST_OFFSETS, k.CREATE_TOPICS, k.INIT_PRODUCER_ID])
            ver = rnd.randint(0, 3)
            junk = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 200)))
            c.send_raw(k.frame(header(api, ver, i) + b"\xff\xff\xff\x7f" + junk))
            # Either an error answer or a close is fine; the broker must not hang or die.
            try:
                c.recv_frame(3.0)
            except (k.ConnectionClosed, ConnectionResetError, socket.timeout, k.DecodeError):
                pass
        assert broker.alive(), "broker died on garbage #%d (api %d v%d)\n%s" % (i, api, ver, broker.log_tail())
    k.assert_serving(broker, "after random garbage")


# ---- unknown APIs and versions -------------------------------------------------------------


@pytest.mark.parametrize("api_key", [999, 32000, -1, 10000])
def test_unknown_api_key_closes_or_answers_unsupported_version(broker, api_key):
    with k.Conn.to(broker) as c:
        cid = c.send(api_key, 0, b"\x00" * 8)
        k.expect_closed_or_error(c, cid, k.UNSUPPORTED_VERSION, "unknown API key %d" % api_key)
    k.assert_serving(broker, "after an unknown API key")


def test_api_versions_unsupported_version_falls_back_to_v0_kip511(broker):
    with k.Conn.to(broker) as c:
        # A future ApiVersions version (127) with a v3-shaped body, as a newer client sends.
        cid = c.send(k.API_VERSIONS, 127, k.api_versions_request(3))
        payload = c.recv_frame(5.0)
        got = k.Reader(payload).int32()
        assert got == cid, "correlation id %d, expected %d" % (got, cid)
        # Response header v0: the body starts right after the correlation id (no tags).
        av = k.decode_api_versions(0, payload[4:])
        assert av["error_code"] == k.UNSUPPORTED_VERSION, "error %s" % k.ename(av["error_code"])
        assert av["trailing"] == 0, "v0 fallback body has %d trailing bytes (not v0 format)" % av["trailing"]
        assert k.API_VERSIONS in av["apis"], "fallback does not list ApiVersions: %r" % av["apis"]
        lo, hi = av["apis"][k.API_VERSIONS]
        assert lo == 0 and hi >= 3, "ApiVersions range %d..%d" % (lo, hi)
        # The client then retries on the same connection with a version it was told.
        av3 = c.api_versions(3)
        assert av3["error_code"] == k.NONE
    k.assert_serving(broker, "after ApiVersions v127")


@pytest.mark.parametrize("api_key,version", [(k.METADATA, 99), (k.PRODUCE, 99), (k.FETCH, 200),
                                             (k.LIST_OFFSETS, 99), (k.CREATE_TOPICS, 99)])
def test_other_api_unsupported_version_closes_or_errors(broker, api_key, version):
    with k.Conn.to(broker) as c:
        cid = c.send(api_key, version, k.tagged_fields() * 4 + b"\x00" * 16)
        k.expect_closed_or_error(c, cid, k.UNSUPPORTED_VERSION, "api %d v%d" % (api_key, version))
    k.assert_serving(broker, "after an unsupported version")


# ---- slow, greedy and lazy clients -------------------------------------------------------


def test_slowloris_does_not_block_other_connections(broker):
    stalled = []
    try:
        for i in range(5):
            s = socket.create_connection(("127.0.0.1", broker.kafka_port), timeout=5)
            if i % 3 == 0:
                s.sendall(k.int32(100))  # a length prefix, then nothing
            elif i % 3 == 1:
                s.sendall(b"\x00\x00")  # half a length prefix
            else:
                s.sendall(k.int32(64) + header(k.METADATA, 1, 1)[:5])  # part of a header
            stalled.append(s)
        time.sleep(0.2)
        for _ in range(5):
            t0 = time.monotonic()
            with k.Conn.to(broker, timeout=3) as c:
                av = c.api_versions(3)
                md = c.metadata(1, None)
            took = time.monotonic() - t0
            assert av["error_code"] == k.NONE and md["brokers"], (av, md)
            assert took < 2.0, "ApiVersions+Metadata took %.2f s while slow clients stall" % took
        k.assert_serving(broker, "while slowloris connections stall")
    finally:
        for s in stalled:
            s.close()
    k.assert_serving(broker, "after slowloris connections closed")


@pytest.mark.parametrize("version", [7, 9])
def test_pipelined_produce_requests_answered_in_order(broker, version):
    topic = unique("pipe")
    broker.create_topic(topic)
    n = 100
    with k.Conn.to(broker, timeout=20) as c:
        frames = []
        cids = []
        for i in range(n):
            body = k.produce_request(version, {topic: {0: k.record_batch([(b"k", b"v%d" % i)])}}, acks=1)
            f, cid = c.encode(k.PRODUCE, version, body)
            frames.append(f)
            cids.append(cid)
        c.send_raw(b"".join(frames))
        got = []
        for i in range(n):
            cid, body = c.recv(20)
            got.append(cid)
            r = k.decode_produce(version, body)[(topic, 0)]
            assert r["error_code"] == k.NONE, "pipelined produce #%d: %s" % (i, k.ename(r["error_code"]))
            assert r["base_offset"] == i, "pipelined produce #%d got base offset %d" % (i, r["base_offset"])
        assert got == cids, "responses out of order: first mismatch at %d" % next(
            i for i in range(n) if got[i] != cids[i])
    assert k.high_watermark(broker, topic) == n
    k.assert_serving(broker, "after pipelining")


@pytest.mark.timeout(240)
def test_client_that_never_reads_does_not_grow_broker_memory(broker):
    from confluent_kafka import Producer

    topic = unique("lazy")
    broker.create_topic(topic)
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5, "message.timeout.ms": 30000})
    chunk = b"x" * (64 * 1024)
    for _ in range(64):  # 4 MiB
        p.produce(topic, value=chunk, partition=0)
    assert p.flush(30) == 0
    assert k.high_watermark(broker, topic) == 64

    rss0 = k.rss_bytes(broker.proc.pid)
    lazy = k.Conn.to(broker, timeout=5)
    try:
        lazy.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        body = k.fetch_request(4, {topic: {0: 0}}, max_wait_ms=0, max_bytes=8 << 20, partition_max_bytes=8 << 20)
        sent = 0
        lazy.sock.settimeout(2.0)
        # 300 fetches of 4 MiB each: 1.2 GiB if the broker answered them all into memory.
        for _ in range(300):
            f, _cid = lazy.encode(k.FETCH, 4, body)
            try:
                lazy.sock.sendall(f)
            except socket.timeout:
                break  # the broker stopped reading from us: that is backpressure, fine
            sent += 1
        peak = rss0
        for _ in range(10):
            time.sleep(0.3)
            peak = max(peak, k.rss_bytes(broker.proc.pid))
            t0 = time.monotonic()
            with k.Conn.to(broker, timeout=5) as other:
                av = other.api_versions(0)
            assert av["error_code"] == k.NONE
            assert time.monotonic() - t0 < 2.0, "another connection waited %.1f s" % (time.monotonic() - t0)
        k.assert_serving(broker, "while a client does not read %d fetch responses" % sent)
        peak = max(peak, k.rss_bytes(broker.proc.pid))
        grown = peak - rss0
        assert grown < 512 << 20, "broker RSS grew by %d MiB for %d unread 4 MiB fetch responses" % (
            grown >> 20, sent)
    finally:
        lazy.close()
    k.assert_serving(broker, "after the lazy client left")


def test_mixed_pipelined_requests_answered_in_order(broker):
    """Produce (which may wait for an fsync) interleaved with Metadata and ApiVersions
    (which need nothing): the answers still come back in request order."""
    topic = unique("mix")
    broker.create_topic(topic)
    with k.Conn.to(broker, timeout=20) as c:
        frames, cids, kinds = [], [], []
        for i in range(60):
            kind = ("produce", "metadata", "apiversions")[i % 3]
            if kind == "produce":
                batch = k.record_batch([(None, b"m%d" % i)])
                f, cid = c.encode(k.PRODUCE, 9, k.produce_request(9, {topic: {0: batch}}))
            elif kind == "metadata":
                f, cid = c.encode(k.METADATA, 12, k.metadata_request(12, [topic]))
            else:
                f, cid = c.encode(k.API_VERSIONS, 3, k.api_versions_request(3))
            frames.append(f)
            cids.append(cid)
            kinds.append(kind)
        c.send_raw(b"".join(frames))
        offsets = []
        for i in range(60):
            cid, body = c.recv(20)
            assert cid == cids[i], "answer #%d has correlation id %d, expected %d (%s)" % (i, cid, cids[i], kinds[i])
            if kinds[i] == "produce":
                r = k.decode_produce(9, body)[(topic, 0)]
                assert r["error_code"] == k.NONE, k.ename(r["error_code"])
                offsets.append(r["base_offset"])
            elif kinds[i] == "metadata":
                assert k.decode_metadata(12, body)["topics"][topic]["error_code"] == k.NONE
            else:
                assert k.decode_api_versions(3, body)["error_code"] == k.NONE
        assert offsets == list(range(20)), offsets


def test_parked_fetch_holds_back_later_responses_on_its_connection(broker):
    """A long-poll Fetch parked at the high watermark answers before the ApiVersions sent
    after it on the same connection, and other connections are not blocked meanwhile."""
    topic = unique("park")
    broker.create_topic(topic)
    with k.Conn.to(broker, timeout=10) as c:
        t0 = time.monotonic()
        fcid = c.send(k.FETCH, 4, k.fetch_request(4, {topic: {0: 0}}, max_wait_ms=800, min_bytes=1))
        acid = c.send(k.API_VERSIONS, 0, b"")
        with k.Conn.to(broker, timeout=3) as other:
            t1 = time.monotonic()
            assert other.api_versions(0)["error_code"] == k.NONE
            assert time.monotonic() - t1 < 0.5, "a parked fetch on another connection delayed this one"
        cid, body = c.recv(10)
        waited = time.monotonic() - t0
        assert cid == fcid, "got correlation id %d before the parked fetch %d" % (cid, fcid)
        part = k.decode_fetch(4, body)[(topic, 0)]
        assert part["error_code"] == k.NONE and not part["records"], part
        assert 0.6 <= waited < 5.0, "fetch with max_wait_ms=800 on an empty partition answered after %.2f s" % waited
        cid, _ = c.recv(5)
        assert cid == acid


def test_parked_fetch_wakes_on_produce(broker):
    topic = unique("wake")
    broker.create_topic(topic)
    with k.Conn.to(broker, timeout=10) as c:
        t0 = time.monotonic()
        c.send(k.FETCH, 4, k.fetch_request(4, {topic: {0: 0}}, max_wait_ms=5000, min_bytes=1))
        time.sleep(0.3)
        with k.Conn.to(broker) as p:
            assert p.produce(7, topic, 0, k.record_batch([(b"k", b"wake")]))["error_code"] == k.NONE
        _cid, body = c.recv(10)
        waited = time.monotonic() - t0
    part = k.decode_fetch(4, body)[(topic, 0)]
    assert part["error_code"] == k.NONE and part["high_watermark"] == 1, part
    recs = [r for b in k.parse_record_batches(part["records"]) for r in b["records"]]
    assert [(o, v) for o, _k, v, _h, _t in recs] == [(0, b"wake")], recs
    assert waited < 3.0, "parked fetch answered %.2f s after start, not on the produce" % waited


def test_request_split_into_single_bytes_is_reassembled(broker):
    with k.Conn.to(broker, timeout=10) as c:
        f, cid = c.encode(k.API_VERSIONS, 3, k.api_versions_request(3, "slow-client", "1"))
        f2, cid2 = c.encode(k.METADATA, 1, k.metadata_request(1, None))
        for i in range(len(f)):
            c.send_raw(f[i:i + 1])
            time.sleep(0.005)
        got, body = c.recv(5)
        assert got == cid and k.decode_api_versions(3, body)["error_code"] == k.NONE
        # The next frame's first half arrives with nothing else; then the rest.
        c.send_raw(f2[:3])
        time.sleep(0.2)
        c.send_raw(f2[3:])
        got, body = c.recv(5)
        assert got == cid2 and k.decode_metadata(1, body)["brokers"]


def test_many_concurrent_connections(broker):
    conns = []
    try:
        for _ in range(500):
            conns.append(k.Conn.to(broker, timeout=10))
        cids = [c.send(k.API_VERSIONS, 0, b"") for c in conns]
        for c, cid in zip(conns, cids):
            got, body = c.recv(10)
            assert got == cid and k.decode_api_versions(0, body)["error_code"] == k.NONE
    finally:
        for c in conns:
            c.close()
    k.assert_serving(broker, "after 500 connections")
