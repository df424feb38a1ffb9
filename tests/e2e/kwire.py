"""kwire.py: a small Kafka wire-protocol encoder/decoder for end-to-end tests.

It speaks the protocol byte by byte, from the official message schemas
(clients/src/main/resources/common/message/*.json in apache/kafka), so that tests can
send exactly what they mean: valid requests, old and flexible versions, and garbage.
Only the decoders the tests need are here. Nothing in it trusts the broker: every read
checks the bytes that remain and raises DecodeError.
"""

import socket
import struct
import time
import zlib

# ---- API keys and error codes ---------------------------------------------------------

PRODUCE = 0
FETCH = 1
LIST_OFFSETS = 2
METADATA = 3
API_VERSIONS = 18
CREATE_TOPICS = 19
DELETE_TOPICS = 20
DELETE_RECORDS = 21
INIT_PRODUCER_ID = 22
DESCRIBE_CONFIGS = 32
ALTER_CONFIGS = 33
CREATE_PARTITIONS = 37
INCREMENTAL_ALTER_CONFIGS = 44
DESCRIBE_CLUSTER = 60

NONE = 0
OFFSET_OUT_OF_RANGE = 1
CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_TOPIC_EXCEPTION = 17
UNSUPPORTED_VERSION = 35
TOPIC_ALREADY_EXISTS = 36
INVALID_PARTITIONS = 37
UNSUPPORTED_FOR_MESSAGE_FORMAT = 43
MESSAGE_TOO_LARGE = 10
RECORD_LIST_TOO_LARGE = 18
UNKNOWN_TOPIC_ID = 100
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_RECORD = 87

# First flexible (KIP-482) version of each request the tests send.
FIRST_FLEXIBLE = {
    PRODUCE: 9,
    FETCH: 12,
    LIST_OFFSETS: 6,
    METADATA: 9,
    API_VERSIONS: 3,
    CREATE_TOPICS: 5,
    DELETE_TOPICS: 4,
    INIT_PRODUCER_ID: 2,
    DESCRIBE_CONFIGS: 4,
    CREATE_PARTITIONS: 2,
    DESCRIBE_CLUSTER: 0,
}


def is_flexible(api_key, version):
    first = FIRST_FLEXIBLE.get(api_key)
    return first is not None and version >= first


class DecodeError(Exception):
    pass


# ---- CRC32C (Castagnoli), table driven --------------------------------------------------


def _crc32c_table():
    poly = 0x82F63B78  # reflected 0x1EDC6F41
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data, crc=0):
    """Return the CRC32C of data (bytes), continuing from crc."""
    crc ^= 0xFFFFFFFF
    t = _CRC32C_TABLE
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# ---- primitive writers ----------------------------------------------------------------


def int8(v):
    return struct.pack(">b", v)


def int16(v):
    return struct.pack(">h", v)


def int32(v):
    return struct.pack(">i", v)


def int64(v):
    return struct.pack(">q", v)


def uint32(v):
    return struct.pack(">I", v)


def boolean(v):
    return b"\x01" if v else b"\x00"


def uvarint(v):
    assert v >= 0
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def varint(v):
    """Zigzag-encoded signed 32-bit varint."""
    assert -(1 << 31) <= v < (1 << 31)
    return uvarint(((v << 1) ^ (v >> 31)) & 0xFFFFFFFF)


def varlong(v):
    """Zigzag-encoded signed 64-bit varint."""
    assert -(1 << 63) <= v < (1 << 63)
    return uvarint(((v << 1) ^ (v >> 63)) & 0xFFFFFFFFFFFFFFFF)


def _b(s):
    return s.encode() if isinstance(s, str) else bytes(s)


def string(s):
    """Classic (int16 length) string; None -> null (-1)."""
    if s is None:
        return int16(-1)
    s = _b(s)
    return int16(len(s)) + s


def compact_string(s):
    """Compact (uvarint length+1) string; None -> null (0)."""
    if s is None:
        return uvarint(0)
    s = _b(s)
    return uvarint(len(s) + 1) + s


def bytes_(b):
    """Classic (int32 length) bytes; None -> null (-1)."""
    if b is None:
        return int32(-1)
    return int32(len(b)) + bytes(b)


def compact_bytes(b):
    if b is None:
        return uvarint(0)
    return uvarint(len(b) + 1) + bytes(b)


def array(items, enc=None):
    """Classic array (int32 count); items are bytes already encoded, or values passed
    through enc. None -> null array (-1)."""
    if items is None:
        return int32(-1)
    items = list(items)
    return int32(len(items)) + b"".join(enc(i) if enc else i for i in items)


def compact_array(items, enc=None):
    if items is None:
        return uvarint(0)
    items = list(items)
    return uvarint(len(items) + 1) + b"".join(enc(i) if enc else i for i in items)


def tagged_fields(fields=None):
    """Tagged-field section: fields is a dict {tag: bytes}."""
    fields = fields or {}
    out = uvarint(len(fields))
    for tag in sorted(fields):
        out += uvarint(tag) + uvarint(len(fields[tag])) + fields[tag]
    return out


def uuid16(u):
    """A UUID as 16 raw bytes; accepts bytes or a uuid.UUID."""
    if hasattr(u, "bytes"):
        return u.bytes
    assert len(u) == 16
    return bytes(u)


ZERO_UUID = b"\x00" * 16


# ---- reader ------------------------------------------------------------------------------


class Reader:
    """Bounds-checked reader over a bytes object."""

    def __init__(self, data, off=0):
        self.data = bytes(data)
        self.off = off

    def remaining(self):
        return len(self.data) - self.off

    def take(self, n):
        if n < 0 or n > len(self.data) - self.off:
            raise DecodeError("need %d bytes at offset %d, have %d" % (n, self.off, self.remaining()))
        b = self.data[self.off:self.off + n]
        self.off += n
        return b

    def _unpack(self, fmt, n):
        return struct.unpack(fmt, self.take(n))[0]

    def int8(self):
        return self._unpack(">b", 1)

    def int16(self):
        return self._unpack(">h", 2)

    def int32(self):
        return self._unpack(">i", 4)

    def int64(self):
        return self._unpack(">q", 8)

    def uint32(self):
        return self._unpack(">I", 4)

    def boolean(self):
        v = self.int8()
        return v != 0

    def uvarint(self):
        shift = 0
        v = 0
        while True:
            if shift > 63:
                raise DecodeError("varint too long")
            b = self.take(1)[0]
            v |= (b & 0x7F) << shift
            if not b & 0x80:
                return v
            shift += 7

    def varint(self):
        u = self.uvarint()
        return (u >> 1) ^ -(u & 1)

    varlong = varint

    def string(self):
        n = self.int16()
        if n < 0:
            return None
        return self.take(n).decode("utf-8", "replace")

    def compact_string(self):
        n = self.uvarint()
        if n == 0:
            return None
        return self.take(n - 1).decode("utf-8", "replace")

    def bytes_(self):
        n = self.int32()
        if n < 0:
            return None
        return self.take(n)

    def compact_bytes(self):
        n = self.uvarint()
        if n == 0:
            return None
        return self.take(n - 1)

    def array(self, dec):
        n = self.int32()
        if n < 0:
            return None
        if n > self.remaining():
            raise DecodeError("array count %d exceeds %d remaining bytes" % (n, self.remaining()))
        return [dec(self) for _ in range(n)]

    def compact_array(self, dec):
        n = self.uvarint()
        if n == 0:
            return None
        n -= 1
        if n > self.remaining():
            raise DecodeError("array count %d exceeds %d remaining bytes" % (n, self.remaining()))
        return [dec(self) for _ in range(n)]

    def tagged_fields(self):
        n = self.uvarint()
        out = {}
        for _ in range(n):
            tag = self.uvarint()
            size = self.uvarint()
            out[tag] = self.take(size)
        return out

    def uuid(self):
        return self.take(16)

    # version-aware helpers: flexible (compact) or classic encodings
    def str_v(self, flex):
        return self.compact_string() if flex else self.string()

    def arr_v(self, flex, dec):
        return self.compact_array(dec) if flex else self.array(dec)

    def tags_v(self, flex):
        return self.tagged_fields() if flex else {}


def w_str(flex, s):
    return compact_string(s) if flex else string(s)


def w_bytes(flex, b):
    return compact_bytes(b) if flex else bytes_(b)


def w_arr(flex, items, enc=None):
    return compact_array(items, enc) if flex else array(items, enc)


def w_tags(flex):
    return tagged_fields() if flex else b""


# ---- request / response headers ----------------------------------------------------------


def request_header(api_key, version, correlation_id, client_id="kwire"):
    """Request header v1, or v2 (with tagged fields) for flexible versions. ApiVersions
    v3+ uses header v2 like any other flexible request."""
    h = int16(api_key) + int16(version) + int32(correlation_id) + string(client_id)
    if is_flexible(api_key, version):
        h += tagged_fields()
    return h


def frame(payload):
    return int32(len(payload)) + payload


def response_header_flexible(api_key, version):
    """Response header v1 (tagged fields) for flexible versions; ApiVersions always v0."""
    return api_key != API_VERSIONS and is_flexible(api_key, version)


def parse_request(data):
    """Decode a framed request header (for self-tests): returns (api_key, version,
    correlation_id, client_id, body_bytes)."""
    r = Reader(data)
    n = r.int32()
    if n != r.remaining():
        raise DecodeError("frame length %d, payload %d" % (n, r.remaining()))
    api_key, version, cid = r.int16(), r.int16(), r.int32()
    client_id = r.string()
    if is_flexible(api_key, version):
        r.tagged_fields()
    return api_key, version, cid, client_id, r.data[r.off:]


# ---- record batches ----------------------------------------------------------------------


def encode_record(offset_delta, key, value, headers=(), timestamp_delta=0):
    def vbytes(b):
        if b is None:
            return varint(-1)
        b = _b(b)
        return varint(len(b)) + b

    body = int8(0) + varlong(timestamp_delta) + varint(offset_delta) + vbytes(key) + vbytes(value)
    body += varint(len(headers))
    for hk, hv in headers:
        hk = _b(hk)
        body += varint(len(hk)) + hk + vbytes(hv)
    return varint(len(body)) + body


def record_batch(records, base_offset=0, producer_id=-1, producer_epoch=-1, base_sequence=-1,
                 base_timestamp=None, attributes=0, partition_leader_epoch=-1, magic=2,
                 record_count=None, crc=None, gzip=False):
    """Build a v2 record batch, uncompressed or (gzip=True) gzip-compressed. records:
    list of dicts or tuples (key, value[, headers[, timestamp_delta]]). record_count and
    crc override the honest values, to build corrupt batches on purpose."""
    if base_timestamp is None:
        base_timestamp = int(time.time() * 1000)
    recs = []
    max_ts_delta = 0
    for i, r in enumerate(records):
        if isinstance(r, dict):
            key, value = r.get("key"), r.get("value")
            headers, tsd = r.get("headers", ()), r.get("timestamp_delta", 0)
        else:
            key, value = r[0], r[1]
            headers = r[2] if len(r) > 2 else ()
            tsd = r[3] if len(r) > 3 else 0
        max_ts_delta = max(max_ts_delta, tsd)
        recs.append(encode_record(i, key, value, headers, tsd))
    n = len(recs) if record_count is None else record_count
    payload = b"".join(recs)
    if gzip:
        import gzip as _gzip

        payload = _gzip.compress(payload)
        attributes = (attributes & ~0x07) | 1
    after_crc = (
        int16(attributes)
        + int32(max(len(recs) - 1, 0))  # lastOffsetDelta
        + int64(base_timestamp)
        + int64(base_timestamp + max_ts_delta)
        + int64(producer_id)
        + int16(producer_epoch)
        + int32(base_sequence)
        + int32(n)
        + payload
    )
    c = crc32c(after_crc) if crc is None else crc
    after_len = int32(partition_leader_epoch) + int8(magic) + uint32(c) + after_crc
    return int64(base_offset) + int32(len(after_len)) + after_len


def legacy_message_set(key, value, magic=1, timestamp=None, offset=0):
    """One old-format message (magic 0 or 1) in a message set, with its honest CRC32."""
    if timestamp is None:
        timestamp = int(time.time() * 1000)
    after_crc = int8(magic) + int8(0)
    if magic >= 1:
        after_crc += int64(timestamp)
    after_crc += bytes_(_b(key) if key is not None else None) + bytes_(_b(value) if value is not None else None)
    msg = uint32(zlib.crc32(after_crc) & 0xFFFFFFFF) + after_crc
    return int64(offset) + int32(len(msg)) + msg


def legacy_message_set_v1(key, value, timestamp=None, offset=0):
    return legacy_message_set(key, value, 1, timestamp, offset)


def parse_record_batches(data):
    """Split a records blob into v2 batches: list of dicts with base_offset, count,
    producer_id, base_sequence, crc_ok, records [(offset, key, value, headers)].
    A trailing partial batch (allowed in Fetch) is ignored."""
    out = []
    r = Reader(data)
    while r.remaining() >= 12:
        start = r.off
        base_offset = r.int64()
        blen = r.int32()
        if blen < 0 or blen > r.remaining():
            break
        b = Reader(r.take(blen))
        b.int32()  # partition leader epoch
        magic = b.int8()
        if magic != 2:
            raise DecodeError("magic %d at %d" % (magic, start))
        crc = b.uint32()
        crc_ok = crc32c(b.data[b.off:]) == crc
        attributes = b.int16()
        last_delta = b.int32()
        base_ts = b.int64()
        b.int64()
        pid = b.int64()
        epoch = b.int16()
        seq = b.int32()
        count = b.int32()
        recs = []
        codec = attributes & 0x07
        if codec == 1:
            import gzip as _gzip

            b = Reader(_gzip.decompress(b.data[b.off:]))
        if codec in (0, 1):
            for _ in range(count):
                rlen = b.varint()
                rr = Reader(b.take(rlen))
                rr.int8()
                tsd = rr.varlong()
                od = rr.varint()
                kl = rr.varint()
                k = rr.take(kl) if kl >= 0 else None
                vl = rr.varint()
                v = rr.take(vl) if vl >= 0 else None
                hs = []
                for _h in range(rr.varint()):
                    hkl = rr.varint()
                    hk = rr.take(hkl)
                    hvl = rr.varint()
                    hv = rr.take(hvl) if hvl >= 0 else None
                    hs.append((hk, hv))
                recs.append((base_offset + od, k, v, hs, base_ts + tsd))
        out.append(dict(base_offset=base_offset, last_offset_delta=last_delta, count=count,
                        producer_id=pid, producer_epoch=epoch, base_sequence=seq,
                        attributes=attributes, crc_ok=crc_ok, records=recs))
    return out


# ---- request bodies ----------------------------------------------------------------------


def api_versions_request(version, client_software_name="kwire", client_software_version="1.0"):
    if version >= 3:
        return compact_string(client_software_name) + compact_string(client_software_version) + tagged_fields()
    return b""


def metadata_request(version, topics=None, allow_auto_topic_creation=False, topic_ids=None):
    """topics: list of names, or None for all topics (v1+). topic_ids: parallel list of
    16-byte ids for v10+ (default zero uuid)."""
    flex = version >= 9
    if topics is None:
        if version == 0:
            t = array([])
        else:
            t = w_arr(flex, None)
    else:
        items = []
        for i, name in enumerate(topics):
            e = b""
            if version >= 10:
                e += uuid16(topic_ids[i] if topic_ids else ZERO_UUID)
            e += w_str(flex, name) + w_tags(flex)
            items.append(e)
        t = w_arr(flex, items)
    body = t
    if version >= 4:
        body += boolean(allow_auto_topic_creation)
    if 8 <= version <= 10:
        body += boolean(False)  # include_cluster_authorized_operations
    if version >= 8:
        body += boolean(False)  # include_topic_authorized_operations
    body += w_tags(flex)
    return body


def produce_request(version, topic_partitions, acks=-1, timeout_ms=10000, transactional_id=None):
    """topic_partitions: {topic: {partition: records_bytes}} (records may be None)."""
    flex = version >= 9
    body = b""
    if version >= 3:
        body += w_str(flex, transactional_id)
    body += int16(acks) + int32(timeout_ms)
    topics = []
    for name, parts in topic_partitions.items():
        pl = [int32(p) + w_bytes(flex, rec) + w_tags(flex) for p, rec in parts.items()]
        topics.append(w_str(flex, name) + w_arr(flex, pl) + w_tags(flex))
    body += w_arr(flex, topics) + w_tags(flex)
    return body


def fetch_request(version, topic_partitions, max_wait_ms=0, min_bytes=1, max_bytes=50 << 20,
                  partition_max_bytes=10 << 20, isolation_level=0):
    """topic_partitions: {topic: {partition: fetch_offset}}; topic is a name, or a
    16-byte topic id for v13+. Versions 0-13."""
    assert version <= 13
    flex = version >= 12
    body = int32(-1) + int32(max_wait_ms) + int32(min_bytes)
    if version >= 3:
        body += int32(max_bytes)
    if version >= 4:
        body += int8(isolation_level)
    if version >= 7:
        body += int32(0) + int32(-1)  # session_id, session_epoch (no session)
    topics = []
    for name, parts in topic_partitions.items():
        pl = []
        for p, off in parts.items():
            e = int32(p)
            if version >= 9:
                e += int32(-1)  # current_leader_epoch
            e += int64(off)
            if version >= 12:
                e += int32(-1)  # last_fetched_epoch
            if version >= 5:
                e += int64(-1)  # log_start_offset
            e += int32(partition_max_bytes) + w_tags(flex)
            pl.append(e)
        t = uuid16(name) if version >= 13 else w_str(flex, name)
        topics.append(t + w_arr(flex, pl) + w_tags(flex))
    body += w_arr(flex, topics)
    if version >= 7:
        body += w_arr(flex, [])  # forgotten_topics_data
    if version >= 11:
        body += w_str(flex, "")  # rack_id
    return body + w_tags(flex)


def list_offsets_request(version, topic_partitions, isolation_level=0):
    """topic_partitions: {topic: {partition: timestamp}} with -1 latest, -2 earliest.
    Versions 1-5 (classic)."""
    assert 1 <= version <= 5
    body = int32(-1)
    if version >= 2:
        body += int8(isolation_level)
    topics = []
    for name, parts in topic_partitions.items():
        pl = []
        for p, ts in parts.items():
            e = int32(p)
            if version >= 4:
                e += int32(-1)
            e += int64(ts)
            pl.append(e)
        topics.append(string(name) + array(pl))
    return body + array(topics)


def init_producer_id_request(version, transactional_id=None, transaction_timeout_ms=60000,
                             producer_id=-1, producer_epoch=-1):
    flex = version >= 2
    body = w_str(flex, transactional_id) + int32(transaction_timeout_ms)
    if version >= 3:
        body += int64(producer_id) + int16(producer_epoch)
    return body + w_tags(flex)


def create_topics_request(version, topics, timeout_ms=10000, validate_only=False):
    """topics: list of (name, num_partitions, replication_factor[, configs dict])."""
    flex = version >= 5
    items = []
    for t in topics:
        name, np_, rf = t[0], t[1], t[2]
        cfg = t[3] if len(t) > 3 else {}
        e = w_str(flex, name) + int32(np_) + int16(rf)
        e += w_arr(flex, [])  # assignments
        e += w_arr(flex, [w_str(flex, k) + w_str(flex, v) + w_tags(flex) for k, v in cfg.items()])
        e += w_tags(flex)
        items.append(e)
    body = w_arr(flex, items) + int32(timeout_ms)
    if version >= 1:
        body += boolean(validate_only)
    return body + w_tags(flex)


# ---- response decoders -------------------------------------------------------------------


def decode_response_header(api_key, version, payload):
    """Split a response payload into (correlation_id, body_reader)."""
    r = Reader(payload)
    cid = r.int32()
    if response_header_flexible(api_key, version):
        r.tagged_fields()
    return cid, r


def decode_api_versions(version, body):
    """ApiVersions response body (after the v0 header). Returns dict with error_code,
    apis {key: (min, max)}, throttle_time_ms."""
    r = Reader(body)
    flex = version >= 3
    err = r.int16()
    if err == UNSUPPORTED_VERSION:
        flex = False  # KIP-511: the answer to an unsupported version is in v0 format
        version = 0

    def api(rr):
        k, lo, hi = rr.int16(), rr.int16(), rr.int16()
        rr.tags_v(flex)
        return k, lo, hi

    apis = r.arr_v(flex, api) or []
    out = {"error_code": err, "apis": {k: (lo, hi) for k, lo, hi in apis}, "api_list": apis,
           "throttle_time_ms": None}
    if version >= 1 and r.remaining() >= 4:
        out["throttle_time_ms"] = r.int32()
    if flex:
        r.tagged_fields()
    out["trailing"] = r.remaining()
    return out


def decode_produce(version, body):
    """Produce response: {(topic, partition): {error_code, base_offset, log_start_offset}}."""
    r = Reader(body)
    flex = version >= 9
    out = {}

    def part(rr, topic):
        idx = rr.int32()
        d = {"error_code": rr.int16(), "base_offset": rr.int64()}
        if version >= 2:
            d["log_append_time_ms"] = rr.int64()
        if version >= 5:
            d["log_start_offset"] = rr.int64()
        if version >= 8:
            def rec_err(r3):
                bi = r3.int32()
                msg = r3.str_v(flex)
                r3.tags_v(flex)
                return bi, msg
            d["record_errors"] = rr.arr_v(flex, rec_err)
            d["error_message"] = rr.str_v(flex)
        rr.tags_v(flex)
        out[(topic, idx)] = d

    def topic(rr):
        name = rr.str_v(flex)
        rr.arr_v(flex, lambda r2: part(r2, name))
        rr.tags_v(flex)

    r.arr_v(flex, topic)
    if version >= 1:
        out_throttle = r.int32()
        out[("__throttle__", -1)] = out_throttle
    r.tags_v(flex)
    if r.remaining():
        raise DecodeError("%d trailing bytes in produce response" % r.remaining())
    return out


def decode_metadata(version, body):
    """Metadata response: dict with brokers, controller_id, cluster_id, topics {name:
    {error_code, topic_id, partitions {index: {...}}}}."""
    r = Reader(body)
    flex = version >= 9
    out = {"brokers": [], "topics": {}, "topic_list": []}
    if version >= 3:
        out["throttle_time_ms"] = r.int32()

    def broker(rr):
        b = {"node_id": rr.int32(), "host": rr.str_v(flex), "port": rr.int32()}
        if version >= 1:
            b["rack"] = rr.str_v(flex)
        rr.tags_v(flex)
        return b

    out["brokers"] = r.arr_v(flex, broker) or []
    if version >= 2:
        out["cluster_id"] = r.str_v(flex)
    if version >= 1:
        out["controller_id"] = r.int32()

    def i32(rr):
        return rr.int32()

    def partition(rr):
        p = {"error_code": rr.int16(), "index": rr.int32(), "leader_id": rr.int32()}
        if version >= 7:
            p["leader_epoch"] = rr.int32()
        p["replicas"] = rr.arr_v(flex, i32)
        p["isr"] = rr.arr_v(flex, i32)
        if version >= 5:
            p["offline"] = rr.arr_v(flex, i32)
        rr.tags_v(flex)
        return p

    def topic(rr):
        t = {"error_code": rr.int16(), "name": rr.str_v(flex)}
        if version >= 10:
            t["topic_id"] = rr.uuid()
        if version >= 1:
            t["is_internal"] = rr.boolean()
        parts = rr.arr_v(flex, partition) or []
        t["partitions"] = {p["index"]: p for p in parts}
        if version >= 8:
            t["authorized_operations"] = rr.int32()
        rr.tags_v(flex)
        return t

    for t in r.arr_v(flex, topic) or []:
        out["topics"][t["name"]] = t
        out["topic_list"].append(t)
    if 8 <= version <= 10:
        out["cluster_authorized_operations"] = r.int32()
    if version >= 13:
        out["error_code"] = r.int16()
    r.tags_v(flex)
    if r.remaining():
        raise DecodeError("%d trailing bytes in metadata response" % r.remaining())
    return out


def decode_init_producer_id(version, body):
    r = Reader(body)
    flex = version >= 2
    out = {"throttle_time_ms": r.int32(), "error_code": r.int16(), "producer_id": r.int64(),
           "producer_epoch": r.int16()}
    r.tags_v(flex)
    if r.remaining():
        raise DecodeError("%d trailing bytes in InitProducerId response" % r.remaining())
    return out


def decode_create_topics(version, body):
    """CreateTopics response: {name: {error_code, error_message, ...}}."""
    r = Reader(body)
    flex = version >= 5
    if version >= 2:
        r.int32()
    out = {}

    def cfg(rr):
        d = (rr.str_v(flex), rr.str_v(flex), rr.boolean(), rr.int8(), rr.boolean())
        rr.tags_v(flex)
        return d

    def topic(rr):
        name = rr.str_v(flex)
        t = {}
        if version >= 7:
            t["topic_id"] = rr.uuid()
        t["error_code"] = rr.int16()
        if version >= 1:
            t["error_message"] = rr.str_v(flex)
        if version >= 5:
            t["num_partitions"] = rr.int32()
            t["replication_factor"] = rr.int16()
            t["configs"] = rr.arr_v(flex, cfg)
        t["tags"] = rr.tags_v(flex)
        out[name] = t

    r.arr_v(flex, topic)
    r.tags_v(flex)
    if r.remaining():
        raise DecodeError("%d trailing bytes in CreateTopics response" % r.remaining())
    return out


def decode_list_offsets(version, body):
    """ListOffsets v1-5: {(topic, partition): {error_code, timestamp, offset}}."""
    assert 1 <= version <= 5
    r = Reader(body)
    if version >= 2:
        r.int32()
    out = {}

    def part(rr, name):
        idx = rr.int32()
        d = {"error_code": rr.int16(), "timestamp": rr.int64(), "offset": rr.int64()}
        if version >= 4:
            d["leader_epoch"] = rr.int32()
        out[(name, idx)] = d

    def topic(rr):
        name = rr.string()
        rr.array(lambda r2: part(r2, name))

    r.array(topic)
    if r.remaining():
        raise DecodeError("%d trailing bytes in ListOffsets response" % r.remaining())
    return out


def decode_fetch(version, body):
    """Fetch v0-13: {(topic, partition): {error_code, high_watermark, records}} plus
    top-level error_code (v7+). For v13+ the topic key is the 16-byte topic id."""
    assert version <= 13
    flex = version >= 12
    r = Reader(body)
    out = {}
    if version >= 1:
        out["__throttle__"] = r.int32()
    if version >= 7:
        out["__error_code__"] = r.int16()
        r.int32()  # session id

    def aborted(rr):
        a = rr.int64(), rr.int64()
        rr.tags_v(flex)
        return a

    def part(rr, name):
        idx = rr.int32()
        d = {"error_code": rr.int16(), "high_watermark": rr.int64()}
        if version >= 4:
            d["last_stable_offset"] = rr.int64()
        if version >= 5:
            d["log_start_offset"] = rr.int64()
        if version >= 4:
            d["aborted"] = rr.arr_v(flex, aborted)
        if version >= 11:
            d["preferred_read_replica"] = rr.int32()
        d["records"] = rr.compact_bytes() if flex else rr.bytes_()
        d["tags"] = rr.tags_v(flex)
        out[(name, idx)] = d

    def topic(rr):
        name = rr.uuid() if version >= 13 else rr.str_v(flex)
        rr.arr_v(flex, lambda r2: part(r2, name))
        rr.tags_v(flex)

    r.arr_v(flex, topic)
    r.tags_v(flex)
    if r.remaining():
        raise DecodeError("%d trailing bytes in Fetch response" % r.remaining())
    return out


# ---- connection ---------------------------------------------------------------------------


class ConnectionClosed(Exception):
    pass


class Conn:
    """One TCP connection to the Kafka listener."""

    def __init__(self, host, port, timeout=10.0, client_id="kwire"):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.client_id = client_id
        self.next_cid = 1
        self.sent = {}  # correlation id -> (api_key, version)
        self._buf = bytearray()

    @classmethod
    def to(cls, broker, **kw):
        return cls("127.0.0.1", broker.kafka_port, **kw)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def encode(self, api_key, version, body, correlation_id=None):
        """Return (frame_bytes, correlation_id) without sending."""
        cid = self.next_cid if correlation_id is None else correlation_id
        self.next_cid = max(self.next_cid, cid) + 1
        payload = request_header(api_key, version, cid, self.client_id) + body
        self.sent[cid] = (api_key, version)
        return frame(payload), cid

    def send(self, api_key, version, body, correlation_id=None):
        data, cid = self.encode(api_key, version, body, correlation_id)
        self.sock.sendall(data)
        return cid

    def send_raw(self, data):
        self.sock.sendall(data)

    def _fill(self, n, deadline):
        while len(self._buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("timed out waiting for %d bytes (have %d)" % (n, len(self._buf)))
            self.sock.settimeout(left)
            chunk = self.sock.recv(max(65536, n - len(self._buf)))
            if not chunk:
                raise ConnectionClosed("connection closed by broker (have %d of %d bytes)" % (len(self._buf), n))
            self._buf += chunk

    def recv_frame(self, timeout=None):
        """Read one response frame and return its payload (header included)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        self._fill(4, deadline)
        n = struct.unpack(">i", bytes(self._buf[:4]))[0]
        if n < 4:
            raise DecodeError("response frame length %d" % n)
        self._fill(4 + n, deadline)
        payload = bytes(self._buf[4:4 + n])
        del self._buf[:4 + n]
        return payload

    def recv(self, timeout=None):
        """Read one response frame: returns (correlation_id, body_bytes) with the response
        header stripped (header v0 or v1 chosen by what was sent with that id)."""
        payload = self.recv_frame(timeout)
        cid = struct.unpack(">i", payload[:4])[0]
        api_key, version = self.sent.get(cid, (None, None))
        if api_key is None:
            raise DecodeError("response with unknown correlation id %d" % cid)
        _, r = decode_response_header(api_key, version, payload)
        return cid, r.data[r.off:]

    def request(self, api_key, version, body, timeout=None):
        """Send and wait for the matching response body."""
        cid = self.send(api_key, version, body)
        got, resp = self.recv(timeout)
        if got != cid:
            raise DecodeError("expected correlation id %d, got %d" % (cid, got))
        return resp

    def wait_closed(self, timeout=5.0):
        """Return True if the broker closes the connection (EOF or reset) within timeout,
        reading and discarding anything it sends first; False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except (ConnectionResetError, BrokenPipeError):
                return True
            if not chunk:
                return True
            self._buf += chunk

    # convenience wrappers
    def api_versions(self, version=3):
        return decode_api_versions(version, self.request(API_VERSIONS, version, api_versions_request(version)))

    def metadata(self, version, topics=None, **kw):
        return decode_metadata(version, self.request(METADATA, version, metadata_request(version, topics, **kw)))

    def produce(self, version, topic, partition, records, acks=-1, timeout_ms=10000):
        body = produce_request(version, {topic: {partition: records}}, acks=acks, timeout_ms=timeout_ms)
        return decode_produce(version, self.request(PRODUCE, version, body))[(topic, partition)]

    def init_producer_id(self, version=0, **kw):
        return decode_init_producer_id(version, self.request(INIT_PRODUCER_ID, version,
                                                             init_producer_id_request(version, **kw)))

    def create_topics(self, version, topics, **kw):
        return decode_create_topics(version, self.request(CREATE_TOPICS, version,
                                                          create_topics_request(version, topics, **kw)))

    def list_offset(self, topic, partition=0, ts=-1, version=1):
        resp = decode_list_offsets(version, self.request(LIST_OFFSETS, version,
                                                         list_offsets_request(version, {topic: {partition: ts}})))
        return resp[(topic, partition)]

    def fetch(self, version, topic, partition, offset, **kw):
        resp = decode_fetch(version, self.request(FETCH, version,
                                                  fetch_request(version, {topic: {partition: offset}}, **kw)))
        return resp


ERROR_NAMES = {
    0: "NONE", 1: "OFFSET_OUT_OF_RANGE", 2: "CORRUPT_MESSAGE", 3: "UNKNOWN_TOPIC_OR_PARTITION",
    17: "INVALID_TOPIC_EXCEPTION",
    35: "UNSUPPORTED_VERSION", 36: "TOPIC_ALREADY_EXISTS", 37: "INVALID_PARTITIONS",
    43: "UNSUPPORTED_FOR_MESSAGE_FORMAT", 45: "OUT_OF_ORDER_SEQUENCE_NUMBER", 46: "DUPLICATE_SEQUENCE_NUMBER",
    87: "INVALID_RECORD", 10: "MESSAGE_TOO_LARGE", 18: "RECORD_LIST_TOO_LARGE", 100: "UNKNOWN_TOPIC_ID",
}


def ename(code):
    return "%s(%d)" % (ERROR_NAMES.get(code, "?"), code)


# ---- test helpers (need a running harness.Broker) ----------------------------------------


def high_watermark(broker, topic, partition=0):
    """The partition's latest offset via ListOffsets v1 on a fresh connection."""
    with Conn.to(broker, timeout=10) as c:
        r = c.list_offset(topic, partition, -1, version=1)
    assert r["error_code"] == NONE, "ListOffsets %s/%d: %s" % (topic, partition, ename(r["error_code"]))
    return r["offset"]


def rss_bytes(pid):
    """Resident set size of a process from /proc, in bytes."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS for pid %d" % pid)


def client_roundtrip(bootstrap, topic, n=5, partition=0, timeout=20.0):
    """Produce n records with confluent_kafka, then read them back from the start of the
    partition with a Consumer (assign, no group rebalance). Returns the values read."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    tag = "%x" % int(time.time() * 1e6)
    values = [("rt-%s-%d" % (tag, i)).encode() for i in range(n)]
    errors = []
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "message.timeout.ms": int(timeout * 1000),
                  "socket.timeout.ms": 10000})

    def dr(err, msg):
        if err is not None:
            errors.append(err)

    for v in values:
        p.produce(topic, value=v, key=b"k", partition=partition, on_delivery=dr)
    left = p.flush(timeout)
    assert left == 0, "producer: %d messages not delivered within %.0f s" % (left, timeout)
    assert not errors, "producer delivery errors: %r" % errors
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "rt-" + tag, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "socket.timeout.ms": 10000})
    got = []
    try:
        c.assign([TopicPartition(topic, partition, 0)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not all(v in got for v in values):
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                continue
            got.append(m.value())
    finally:
        c.close()
    missing = [v for v in values if v not in got]
    assert not missing, "consumer did not read back %d of %d records (got %d)" % (len(missing), n, len(got))
    return got


def assert_serving(broker, what="after garbage"):
    """The broker is still alive, a NEW connection gets a correct ApiVersions answer, and
    a real client (confluent_kafka) can still produce and consume on a fresh topic."""
    from harness import unique

    assert broker.alive(), "broker died %s\n--- log tail ---\n%s" % (what, broker.log_tail())
    with Conn.to(broker, timeout=5) as c:
        av = c.api_versions(0)
        assert av["error_code"] == NONE and API_VERSIONS in av["apis"], "ApiVersions %s: %r" % (what, av)
    topic = unique("serving")
    broker.create_topic(topic, partitions=1)
    client_roundtrip(broker.bootstrap, topic, n=3)
    assert broker.alive(), "broker died %s\n--- log tail ---\n%s" % (what, broker.log_tail())


def expect_closed(conn, what, timeout=5.0):
    """Assert the broker closes this connection within timeout."""
    assert conn.wait_closed(timeout), "broker did not close the connection %s within %.0f s" % (what, timeout)


def expect_closed_or_error(conn, cid, code=UNSUPPORTED_VERSION, what="", timeout=5.0):
    """Either the broker closes the connection, or it answers correlation id cid with a
    body that carries the int16 error code among its first bytes. Returns "closed" or
    "error"."""
    try:
        payload = conn.recv_frame(timeout)
    except (ConnectionClosed, ConnectionResetError, BrokenPipeError):
        return "closed"
    except socket.timeout:
        raise AssertionError("no answer and no close %s within %.0f s" % (what, timeout))
    got = struct.unpack(">i", payload[:4])[0]
    assert got == cid, "%s: answer for correlation id %d, expected %d" % (what, got, cid)
    head = payload[4:40]
    assert int16(code) in head, "%s: answer %r does not carry error %s" % (what, head.hex(), ename(code))
    return "error"


# ---- offline self-check ------------------------------------------------------------------


def self_test():
    """Checks against known vectors and round trips; run: python3 kwire.py"""
    assert crc32c(b"123456789") == 0xE3069283, hex(crc32c(b"123456789"))
    assert crc32c(b"") == 0
    assert crc32c(b"\x00" * 32) == 0x8A9136AA  # RFC 3720 B.4
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E
    for v in (0, 1, -1, 63, -64, 64, 300, -300, (1 << 31) - 1, -(1 << 31)):
        assert Reader(varint(v)).varint() == v, v
    for v in (0, 1, -1, (1 << 63) - 1, -(1 << 63), 1 << 40):
        assert Reader(varlong(v)).varlong() == v, v
    assert varint(0) == b"\x00" and varint(-1) == b"\x01" and varint(1) == b"\x02"
    assert uvarint(300) == b"\xac\x02"
    assert Reader(compact_string("abc")).compact_string() == "abc"
    assert Reader(compact_string(None)).compact_string() is None
    assert Reader(string(None)).string() is None
    # request round trip: header v2 with tags for flexible ApiVersions
    f = frame(request_header(API_VERSIONS, 3, 77, "cid") + api_versions_request(3, "sw", "9"))
    k, v, cid, client, body = parse_request(f)
    assert (k, v, cid, client) == (18, 3, 77, "cid"), (k, v, cid, client)
    r = Reader(body)
    assert r.compact_string() == "sw" and r.compact_string() == "9" and r.tagged_fields() == {}
    assert r.remaining() == 0
    f = frame(request_header(API_VERSIONS, 0, 5) + api_versions_request(0))
    assert parse_request(f)[4] == b""
    # record batch round trip with honest CRC
    batch = record_batch([(b"k1", b"v1", [("h", b"x")]), (None, b"v2", (), 5)], producer_id=42,
                         producer_epoch=0, base_sequence=7, base_timestamp=1000)
    [pb] = parse_record_batches(batch)
    assert pb["crc_ok"] and pb["count"] == 2 and pb["producer_id"] == 42 and pb["base_sequence"] == 7
    assert pb["records"][0][1:4] == (b"k1", b"v1", [(b"h", b"x")])
    assert pb["records"][1][1:3] == (None, b"v2") and pb["records"][1][4] == 1005
    assert batch[16] == 2 and struct.unpack(">i", batch[8:12])[0] == len(batch) - 12
    assert struct.unpack(">I", batch[17:21])[0] == crc32c(batch[21:])
    bad = record_batch([(b"k", b"v")], crc=0x12345678)
    assert not parse_record_batches(bad)[0]["crc_ok"]
    gz = record_batch([(b"k1", b"v1" * 50), (None, b"v2")], base_timestamp=5, gzip=True)
    [pg] = parse_record_batches(gz)
    assert pg["crc_ok"] and pg["attributes"] & 7 == 1 and pg["records"][0][2] == b"v1" * 50
    assert pg["records"][1][:3] == (1, None, b"v2")
    legacy = legacy_message_set_v1(b"k", b"v", timestamp=1)
    assert legacy[16] == 1
    # produce request v9 (flexible) decodes back by hand
    body = produce_request(9, {"t": {0: batch}}, acks=-1, timeout_ms=1234)
    r = Reader(body)
    assert r.compact_string() is None and r.int16() == -1 and r.int32() == 1234
    assert r.uvarint() == 2 and r.compact_string() == "t" and r.uvarint() == 2 and r.int32() == 0
    assert r.compact_bytes() == batch and r.tagged_fields() == {} and r.tagged_fields() == {}
    assert r.tagged_fields() == {} and r.remaining() == 0
    # produce v7 response decodes
    resp = array([string("t") + array([int32(0) + int16(0) + int64(5) + int64(-1) + int64(0)])]) + int32(0)
    assert decode_produce(7, resp)[("t", 0)]["base_offset"] == 5
    # metadata v12 response decodes
    tid = bytes(range(1, 17))
    part = int16(0) + int32(0) + int32(1) + int32(0) + compact_array([int32(1)]) + compact_array([int32(1)]) \
        + compact_array([]) + tagged_fields()
    top = int16(0) + compact_string("t") + tid + boolean(False) + compact_array([part]) + int32(0) + tagged_fields()
    brk = int32(1) + compact_string("127.0.0.1") + int32(9092) + compact_string(None) + tagged_fields()
    resp = int32(0) + compact_array([brk]) + compact_string("c") + int32(1) + compact_array([top]) + tagged_fields()
    md = decode_metadata(12, resp)
    assert md["topics"]["t"]["topic_id"] == tid and md["brokers"][0]["port"] == 9092
    assert md["topics"]["t"]["partitions"][0]["leader_id"] == 1
    # ApiVersions v3 and v0 responses decode
    av3 = int16(0) + compact_array([int16(18) + int16(0) + int16(3) + tagged_fields()]) + int32(0) + tagged_fields()
    assert decode_api_versions(3, av3)["apis"] == {18: (0, 3)}
    av0 = int16(35) + array([int16(18) + int16(0) + int16(3)])
    d = decode_api_versions(0, av0)
    assert d["error_code"] == 35 and d["apis"] == {18: (0, 3)} and d["trailing"] == 0
    # fetch v13 request: flexible, by topic id
    tid = bytes(range(16))
    r = Reader(fetch_request(13, {tid: {0: 5}}, max_wait_ms=7))
    head = (r.int32(), r.int32(), r.int32(), r.int32(), r.int8(), r.int32(), r.int32())
    assert head == (-1, 7, 1, 50 << 20, 0, 0, -1), head
    assert r.uvarint() == 2 and r.uuid() == tid and r.uvarint() == 2
    assert (r.int32(), r.int32(), r.int64(), r.int32(), r.int64(), r.int32()) == (0, -1, 5, -1, -1, 10 << 20)
    assert r.tagged_fields() == {} and r.tagged_fields() == {} and r.uvarint() == 1
    assert r.compact_string() == "" and r.tagged_fields() == {} and r.remaining() == 0
    part = int32(0) + int16(0) + int64(3) + int64(3) + int64(0) + compact_array(None) + int32(-1) \
        + compact_bytes(batch) + tagged_fields()
    resp = int32(0) + int16(0) + int32(0) + compact_array([tid + compact_array([part]) + tagged_fields()]) \
        + tagged_fields()
    d = decode_fetch(13, resp)[(tid, 0)]
    assert d["high_watermark"] == 3 and d["records"] == batch
    return True


if __name__ == "__main__":
    self_test()
    print("kwire self-test ok")
