"""groups_util.py: helpers for the consumer-group end-to-end tests (issue 3) and the group
figures of `make bench`.

- `group_broker`: a pytest fixture like conftest's `broker`, but started with a short
  `group.initial.rebalance.delay.ms` (100 ms) so that groups form quickly. Test modules
  import it (`from groups_util import group_broker`); the existing fixtures are untouched.
- Wire encoders and decoders for the group APIs (FindCoordinator, JoinGroup, SyncGroup,
  Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, ListGroups, DescribeGroups,
  DeleteGroups, OffsetDelete), written from the official message schemas on top of
  kwire.py. Like kwire, nothing here trusts the broker: every read is bounds-checked.
- The consumer protocol's subscription and assignment blobs.
- Pipelined simple commits (generation -1, empty member id) over a few connections.
- MemberProc: a group_member.py consumer process whose events arrive as JSON lines.
- Small client helpers: committed offsets through confluent_kafka, the HTTP group view,
  /metrics samples, waiting for a condition.

Only the Python standard library at import time; the Kafka clients are imported where
they are used, so the bench script can import this file too.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import kwire as k  # noqa: E402
from kwire import (  # noqa: E402
    Conn,
    Reader,
    array,
    boolean,
    bytes_,
    int16,
    int32,
    int64,
    string,
    w_arr,
    w_bytes,
    w_str,
    w_tags,
)

HERE = os.path.dirname(os.path.abspath(__file__))
MEMBER_SCRIPT = os.path.join(HERE, "group_member.py")
PYTHON = "/usr/bin/python3"  # the interpreter with the Debian Kafka clients

# ---- API keys, flexible versions, error codes ------------------------------------------

OFFSET_COMMIT = 8
OFFSET_FETCH = 9
FIND_COORDINATOR = 10
JOIN_GROUP = 11
HEARTBEAT = 12
LEAVE_GROUP = 13
SYNC_GROUP = 14
DESCRIBE_GROUPS = 15
LIST_GROUPS = 16
DELETE_GROUPS = 42
OFFSET_DELETE = 47

GROUP_FIRST_FLEXIBLE = {
    OFFSET_COMMIT: 8,
    OFFSET_FETCH: 6,
    FIND_COORDINATOR: 3,
    JOIN_GROUP: 6,
    HEARTBEAT: 4,
    LEAVE_GROUP: 4,
    SYNC_GROUP: 4,
    DESCRIBE_GROUPS: 5,
    LIST_GROUPS: 3,
    DELETE_GROUPS: 2,
}
# kwire picks the request header (v1 or v2) from this table; add the group APIs to it
# (new keys only: nothing kwire already knows changes).
for _key, _v in GROUP_FIRST_FLEXIBLE.items():
    k.FIRST_FLEXIBLE.setdefault(_key, _v)


def flexible(api_key, version):
    first = GROUP_FIRST_FLEXIBLE.get(api_key)
    return first is not None and version >= first


NONE = 0
COORDINATOR_LOAD_IN_PROGRESS = 14
COORDINATOR_NOT_AVAILABLE = 15
NOT_COORDINATOR = 16
ILLEGAL_GENERATION = 22
INCONSISTENT_GROUP_PROTOCOL = 23
INVALID_GROUP_ID = 24
UNKNOWN_MEMBER_ID = 25
INVALID_SESSION_TIMEOUT = 26
REBALANCE_IN_PROGRESS = 27
INVALID_COMMIT_OFFSET_SIZE = 28
INVALID_REQUEST = 42
NON_EMPTY_GROUP = 68
GROUP_ID_NOT_FOUND = 69
MEMBER_ID_REQUIRED = 79
FENCED_INSTANCE_ID = 82
GROUP_SUBSCRIBED_TO_TOPIC = 86
GROUP_MAX_SIZE_REACHED = 81

GROUP_ERROR_NAMES = {
    14: "COORDINATOR_LOAD_IN_PROGRESS", 15: "COORDINATOR_NOT_AVAILABLE", 16: "NOT_COORDINATOR",
    22: "ILLEGAL_GENERATION", 23: "INCONSISTENT_GROUP_PROTOCOL", 24: "INVALID_GROUP_ID",
    25: "UNKNOWN_MEMBER_ID", 26: "INVALID_SESSION_TIMEOUT", 27: "REBALANCE_IN_PROGRESS",
    28: "INVALID_COMMIT_OFFSET_SIZE", 42: "INVALID_REQUEST", 68: "NON_EMPTY_GROUP",
    69: "GROUP_ID_NOT_FOUND", 79: "MEMBER_ID_REQUIRED", 81: "GROUP_MAX_SIZE_REACHED",
    82: "FENCED_INSTANCE_ID", 86: "GROUP_SUBSCRIBED_TO_TOPIC", 10: "MESSAGE_TOO_LARGE",
    3: "UNKNOWN_TOPIC_OR_PARTITION", 35: "UNSUPPORTED_VERSION",
}


def ename(code):
    return "%s(%d)" % (GROUP_ERROR_NAMES.get(code) or k.ERROR_NAMES.get(code, "?"), code)


def _check_done(r, what):
    if r.remaining():
        raise k.DecodeError("%d trailing bytes in %s response" % (r.remaining(), what))


# ---- consumer protocol blobs ------------------------------------------------------------


def subscription(topics, user_data=b"", version=0):
    """ConsumerProtocolSubscription v0: version, topics, user_data."""
    return int16(version) + array([string(t) for t in topics]) + bytes_(user_data)


def assignment(parts, user_data=b"", version=0):
    """ConsumerProtocolAssignment: parts {topic: [partitions]}."""
    return int16(version) + array([string(t) + array([int32(p) for p in ps]) for t, ps in parts.items()]) \
        + bytes_(user_data)


def decode_assignment(blob):
    """Assignment blob -> {topic: [partitions]} ({} for an empty or null blob)."""
    if not blob:
        return {}
    r = Reader(blob)
    r.int16()

    def topic(rr):
        return rr.string(), rr.array(lambda r2: r2.int32()) or []

    return dict(r.array(topic) or [])


# ---- request bodies -----------------------------------------------------------------------


def find_coordinator_request(version, key, key_type=0):
    flex = flexible(FIND_COORDINATOR, version)
    if version >= 4:
        keys = [key] if isinstance(key, str) else list(key)
        return int8(key_type) + w_arr(flex, [w_str(flex, x) for x in keys]) + w_tags(flex)
    body = w_str(flex, key)
    if version >= 1:
        body += int8(key_type)
    return body + w_tags(flex)


def int8(v):
    return k.int8(v)


def join_group_request(version, group, member_id="", protocols=(("range", b""),), protocol_type="consumer",
                       session_timeout_ms=10000, rebalance_timeout_ms=10000, instance_id=None, reason=None):
    flex = flexible(JOIN_GROUP, version)
    body = w_str(flex, group) + int32(session_timeout_ms)
    if version >= 1:
        body += int32(rebalance_timeout_ms)
    body += w_str(flex, member_id)
    if version >= 5:
        body += w_str(flex, instance_id)
    body += w_str(flex, protocol_type)
    body += w_arr(flex, [w_str(flex, n) + w_bytes(flex, m) + w_tags(flex) for n, m in protocols])
    if version >= 8:
        body += w_str(flex, reason)
    return body + w_tags(flex)


def sync_group_request(version, group, generation, member_id, assignments=(), instance_id=None,
                       protocol_type="consumer", protocol_name="range"):
    """assignments: [(member_id, blob)] (only the leader sends them)."""
    flex = flexible(SYNC_GROUP, version)
    body = w_str(flex, group) + int32(generation) + w_str(flex, member_id)
    if version >= 3:
        body += w_str(flex, instance_id)
    if version >= 5:
        body += w_str(flex, protocol_type) + w_str(flex, protocol_name)
    body += w_arr(flex, [w_str(flex, m) + w_bytes(flex, a) + w_tags(flex) for m, a in assignments])
    return body + w_tags(flex)


def heartbeat_request(version, group, generation, member_id, instance_id=None):
    flex = flexible(HEARTBEAT, version)
    body = w_str(flex, group) + int32(generation) + w_str(flex, member_id)
    if version >= 3:
        body += w_str(flex, instance_id)
    return body + w_tags(flex)


def leave_group_request(version, group, members):
    """members: [(member_id, instance_id)]; v0-2 carry exactly one member id."""
    flex = flexible(LEAVE_GROUP, version)
    body = w_str(flex, group)
    if version <= 2:
        assert len(members) == 1
        return body + w_str(flex, members[0][0])
    items = []
    for m, inst in members:
        e = w_str(flex, m) + w_str(flex, inst)
        if version >= 5:
            e += w_str(flex, None)  # reason
        items.append(e + w_tags(flex))
    return body + w_arr(flex, items) + w_tags(flex)


def offset_commit_request(version, group, offsets, generation=-1, member_id="", instance_id=None,
                          retention_ms=-1, timestamp=-1):
    """offsets: {topic: {partition: offset or (offset, metadata)}}. Versions 0-8."""
    flex = flexible(OFFSET_COMMIT, version)
    body = w_str(flex, group)
    if version >= 1:
        body += int32(generation) + w_str(flex, member_id)
    if version >= 7:
        body += w_str(flex, instance_id)
    if 2 <= version <= 4:
        body += int64(retention_ms)
    topics = []
    for t, parts in offsets.items():
        pl = []
        for p, v in parts.items():
            off, meta = (v if isinstance(v, tuple) else (v, ""))
            e = int32(p) + int64(off)
            if version >= 6:
                e += int32(-1)  # committed_leader_epoch
            if version == 1:
                e += int64(timestamp)
            e += w_str(flex, meta) + w_tags(flex)
            pl.append(e)
        topics.append(w_str(flex, t) + w_arr(flex, pl) + w_tags(flex))
    return body + w_arr(flex, topics) + w_tags(flex)


def offset_fetch_request(version, group, topics=None, require_stable=False):
    """topics: {topic: [partitions]} or None for all (v2+). Versions 0-7 (one group)."""
    assert version <= 7
    flex = flexible(OFFSET_FETCH, version)
    body = w_str(flex, group)
    if topics is None:
        assert version >= 2, "null topics needs OffsetFetch v2+"
        body += w_arr(flex, None)
    else:
        body += w_arr(flex, [w_str(flex, t) + w_arr(flex, [int32(p) for p in ps]) + w_tags(flex)
                             for t, ps in topics.items()])
    if version >= 7:
        body += boolean(require_stable)
    return body + w_tags(flex)


def offset_fetch_groups_request(version, groups, require_stable=False):
    """OffsetFetch v8/v9 (batched groups): groups {group: {topic: [partitions]} or None}."""
    assert version in (8, 9)
    items = []
    for grp, topics in groups.items():
        e = k.compact_string(grp)
        if version >= 9:
            e += k.compact_string(None) + int32(-1)  # member_id, member_epoch (classic: none)
        if topics is None:
            e += k.compact_array(None)
        else:
            e += k.compact_array([k.compact_string(t) + k.compact_array([int32(p) for p in ps]) + k.tagged_fields()
                                  for t, ps in topics.items()])
        items.append(e + k.tagged_fields())
    return k.compact_array(items) + boolean(require_stable) + k.tagged_fields()


def decode_offset_fetch_groups(body):
    """OffsetFetch v8/v9 response: {group: {"error_code", "offsets": {(topic, partition):
    (offset, metadata, error_code)}}}."""
    r = Reader(body)
    r.int32()
    out = {}

    def group(rr):
        gid = rr.compact_string()
        offsets = {}

        def topic(r2):
            name = r2.compact_string()

            def part(r3):
                idx, off = r3.int32(), r3.int64()
                r3.int32()
                meta = r3.compact_string()
                err = r3.int16()
                r3.tagged_fields()
                offsets[(name, idx)] = (off, meta, err)

            r2.compact_array(part)
            r2.tagged_fields()

        rr.compact_array(topic)
        err = rr.int16()
        rr.tagged_fields()
        out[gid] = {"error_code": err, "offsets": offsets}

    r.compact_array(group)
    r.tagged_fields()
    _check_done(r, "OffsetFetch v8")
    return out


def list_groups_request(version, states=None):
    flex = flexible(LIST_GROUPS, version)
    body = b""
    if version >= 4:
        body += w_arr(flex, [w_str(flex, s) for s in (states or [])])
    return body + w_tags(flex)


def describe_groups_request(version, groups):
    flex = flexible(DESCRIBE_GROUPS, version)
    body = w_arr(flex, [w_str(flex, g) for g in groups])
    if version >= 3:
        body += boolean(False)
    return body + w_tags(flex)


def delete_groups_request(version, groups):
    flex = flexible(DELETE_GROUPS, version)
    return w_arr(flex, [w_str(flex, g) for g in groups]) + w_tags(flex)


def offset_delete_request(group, topics):
    """OffsetDelete v0: topics {topic: [partitions]}."""
    return string(group) + array([string(t) + array([int32(p) for p in ps]) for t, ps in topics.items()])


# ---- response decoders ------------------------------------------------------------------


def decode_find_coordinator(version, body):
    flex = flexible(FIND_COORDINATOR, version)
    r = Reader(body)
    out = {}
    if version >= 1:
        out["throttle_time_ms"] = r.int32()
    if version >= 4:
        def coord(rr):
            c = {"key": rr.str_v(flex), "node_id": rr.int32(), "host": rr.str_v(flex), "port": rr.int32(),
                 "error_code": rr.int16(), "error_message": rr.str_v(flex)}
            rr.tags_v(flex)
            return c
        out["coordinators"] = r.arr_v(flex, coord) or []
        c0 = out["coordinators"][0] if out["coordinators"] else {}
        out.update({kk: c0.get(kk) for kk in ("error_code", "node_id", "host", "port")})
    else:
        out["error_code"] = r.int16()
        if version >= 1:
            out["error_message"] = r.str_v(flex)
        out["node_id"] = r.int32()
        out["host"] = r.str_v(flex)
        out["port"] = r.int32()
    r.tags_v(flex)
    _check_done(r, "FindCoordinator")
    return out


def decode_join_group(version, body):
    flex = flexible(JOIN_GROUP, version)
    r = Reader(body)
    out = {}
    if version >= 2:
        out["throttle_time_ms"] = r.int32()
    out["error_code"] = r.int16()
    out["generation"] = r.int32()
    if version >= 7:
        out["protocol_type"] = r.str_v(flex)
    out["protocol_name"] = r.str_v(flex)
    out["leader"] = r.str_v(flex)
    if version >= 9:
        out["skip_assignment"] = r.boolean()
    out["member_id"] = r.str_v(flex)

    def member(rr):
        m = {"member_id": rr.str_v(flex)}
        if version >= 5:
            m["instance_id"] = rr.str_v(flex)
        m["metadata"] = rr.compact_bytes() if flex else rr.bytes_()
        rr.tags_v(flex)
        return m

    out["members"] = r.arr_v(flex, member) or []
    r.tags_v(flex)
    _check_done(r, "JoinGroup")
    return out


def decode_sync_group(version, body):
    flex = flexible(SYNC_GROUP, version)
    r = Reader(body)
    out = {}
    if version >= 1:
        out["throttle_time_ms"] = r.int32()
    out["error_code"] = r.int16()
    if version >= 5:
        out["protocol_type"] = r.str_v(flex)
        out["protocol_name"] = r.str_v(flex)
    out["assignment"] = r.compact_bytes() if flex else r.bytes_()
    r.tags_v(flex)
    _check_done(r, "SyncGroup")
    return out


def decode_heartbeat(version, body):
    flex = flexible(HEARTBEAT, version)
    r = Reader(body)
    out = {}
    if version >= 1:
        out["throttle_time_ms"] = r.int32()
    out["error_code"] = r.int16()
    r.tags_v(flex)
    _check_done(r, "Heartbeat")
    return out


def decode_leave_group(version, body):
    flex = flexible(LEAVE_GROUP, version)
    r = Reader(body)
    out = {}
    if version >= 1:
        out["throttle_time_ms"] = r.int32()
    out["error_code"] = r.int16()
    if version >= 3:
        def member(rr):
            m = {"member_id": rr.str_v(flex), "instance_id": rr.str_v(flex), "error_code": rr.int16()}
            rr.tags_v(flex)
            return m
        out["members"] = r.arr_v(flex, member) or []
    r.tags_v(flex)
    _check_done(r, "LeaveGroup")
    return out


def decode_offset_commit(version, body):
    """{(topic, partition): error_code}."""
    flex = flexible(OFFSET_COMMIT, version)
    r = Reader(body)
    out = {}
    if version >= 3:
        r.int32()

    def topic(rr):
        name = rr.str_v(flex)

        def part(r2):
            idx, err = r2.int32(), r2.int16()
            r2.tags_v(flex)
            out[(name, idx)] = err

        rr.arr_v(flex, part)
        rr.tags_v(flex)

    r.arr_v(flex, topic)
    r.tags_v(flex)
    _check_done(r, "OffsetCommit")
    return out


def decode_offset_fetch(version, body):
    """Returns {"error_code": top-level (v2+, else None), "offsets": {(topic, partition):
    (offset, metadata, error_code)}}."""
    assert version <= 7
    flex = flexible(OFFSET_FETCH, version)
    r = Reader(body)
    offsets = {}
    if version >= 3:
        r.int32()

    def topic(rr):
        name = rr.str_v(flex)

        def part(r2):
            idx, off = r2.int32(), r2.int64()
            if version >= 5:
                r2.int32()  # committed_leader_epoch
            meta = r2.str_v(flex)
            err = r2.int16()
            r2.tags_v(flex)
            offsets[(name, idx)] = (off, meta, err)

        rr.arr_v(flex, part)
        rr.tags_v(flex)

    r.arr_v(flex, topic)
    top = r.int16() if version >= 2 else None
    r.tags_v(flex)
    _check_done(r, "OffsetFetch")
    return {"error_code": top, "offsets": offsets}


def decode_list_groups(version, body):
    flex = flexible(LIST_GROUPS, version)
    r = Reader(body)
    out = {}
    if version >= 1:
        out["throttle_time_ms"] = r.int32()
    out["error_code"] = r.int16()

    def group(rr):
        g = {"group_id": rr.str_v(flex), "protocol_type": rr.str_v(flex)}
        if version >= 4:
            g["state"] = rr.str_v(flex)
        rr.tags_v(flex)
        return g

    out["groups"] = r.arr_v(flex, group) or []
    r.tags_v(flex)
    _check_done(r, "ListGroups")
    return out


def decode_describe_groups(version, body):
    flex = flexible(DESCRIBE_GROUPS, version)
    r = Reader(body)
    if version >= 1:
        r.int32()

    def member(rr):
        m = {"member_id": rr.str_v(flex)}
        if version >= 4:
            m["instance_id"] = rr.str_v(flex)
        m["client_id"] = rr.str_v(flex)
        m["client_host"] = rr.str_v(flex)
        m["metadata"] = rr.compact_bytes() if flex else rr.bytes_()
        m["assignment"] = rr.compact_bytes() if flex else rr.bytes_()
        rr.tags_v(flex)
        return m

    def group(rr):
        g = {"error_code": rr.int16(), "group_id": rr.str_v(flex), "state": rr.str_v(flex),
             "protocol_type": rr.str_v(flex), "protocol": rr.str_v(flex)}
        g["members"] = rr.arr_v(flex, member) or []
        if version >= 3:
            rr.int32()
        rr.tags_v(flex)
        return g

    groups = r.arr_v(flex, group) or []
    r.tags_v(flex)
    _check_done(r, "DescribeGroups")
    return {g["group_id"]: g for g in groups}


def decode_delete_groups(version, body):
    flex = flexible(DELETE_GROUPS, version)
    r = Reader(body)
    r.int32()

    def res(rr):
        g, e = rr.str_v(flex), rr.int16()
        rr.tags_v(flex)
        return g, e

    out = dict(r.arr_v(flex, res) or [])
    r.tags_v(flex)
    _check_done(r, "DeleteGroups")
    return out


def decode_offset_delete(body):
    r = Reader(body)
    out = {"error_code": r.int16()}
    r.int32()
    parts = {}

    def topic(rr):
        name = rr.string()

        def part(r2):
            idx, err = r2.int32(), r2.int16()
            parts[(name, idx)] = err

        rr.array(part)

    r.array(topic)
    _check_done(r, "OffsetDelete")
    out["partitions"] = parts
    return out


# ---- request + decode on a kwire.Conn ---------------------------------------------------


class GroupConn(Conn):
    """A kwire connection with the group APIs as methods (each returns the decoded body)."""

    def find_coordinator(self, key, version=1, key_type=0):
        return decode_find_coordinator(version, self.request(FIND_COORDINATOR, version,
                                                             find_coordinator_request(version, key, key_type)))

    def join_group(self, version, group, **kw):
        return decode_join_group(version, self.request(JOIN_GROUP, version, join_group_request(version, group, **kw)))

    def sync_group(self, version, group, generation, member_id, **kw):
        return decode_sync_group(version, self.request(
            SYNC_GROUP, version, sync_group_request(version, group, generation, member_id, **kw)))

    def heartbeat(self, version, group, generation, member_id, instance_id=None):
        return decode_heartbeat(version, self.request(
            HEARTBEAT, version, heartbeat_request(version, group, generation, member_id, instance_id)))

    def leave_group(self, version, group, members):
        return decode_leave_group(version, self.request(LEAVE_GROUP, version,
                                                        leave_group_request(version, group, members)))

    def offset_commit(self, version, group, offsets, **kw):
        return decode_offset_commit(version, self.request(
            OFFSET_COMMIT, version, offset_commit_request(version, group, offsets, **kw)))

    def offset_fetch(self, version, group, topics=None):
        return decode_offset_fetch(version, self.request(OFFSET_FETCH, version,
                                                         offset_fetch_request(version, group, topics)))

    def list_groups(self, version=0):
        return decode_list_groups(version, self.request(LIST_GROUPS, version, list_groups_request(version)))

    def describe_groups(self, groups, version=0):
        return decode_describe_groups(version, self.request(DESCRIBE_GROUPS, version,
                                                            describe_groups_request(version, groups)))

    def delete_groups(self, groups, version=0):
        return decode_delete_groups(version, self.request(DELETE_GROUPS, version,
                                                          delete_groups_request(version, groups)))

    def offset_delete(self, group, topics):
        return decode_offset_delete(self.request(OFFSET_DELETE, 0, offset_delete_request(group, topics)))


def join_member(conn, group, topics, version=5, member_id="", timeout=30.0, **kw):
    """JoinGroup with the KIP-394 dance for v4+: an empty member id gets MEMBER_ID_REQUIRED
    and a member id, and the join is repeated with it. Returns the decoded answer."""
    proto = kw.pop("protocols", None) or (("range", subscription(topics)),)
    resp = decode_join_group(version, conn.request(
        JOIN_GROUP, version, join_group_request(version, group, member_id=member_id, protocols=proto, **kw),
        timeout=timeout))
    if resp["error_code"] == MEMBER_ID_REQUIRED and version >= 4:
        assert resp["member_id"], "MEMBER_ID_REQUIRED without a member id: %r" % resp
        resp = decode_join_group(version, conn.request(
            JOIN_GROUP, version, join_group_request(version, group, member_id=resp["member_id"],
                                                    protocols=proto, **kw), timeout=timeout))
    return resp


# ---- pipelined simple commits ------------------------------------------------------------


def pipelined(broker_port, requests, conns=4, window=128, timeout=120.0, host="127.0.0.1"):
    """Send requests [(api_key, version, body)] spread round-robin over `conns` connections,
    keeping up to `window` in flight on each, and return the response bodies in request
    order. One thread per connection."""
    results = [None] * len(requests)
    errors = []
    shards = [list(range(i, len(requests), conns)) for i in range(conns)]

    def worker(idxs):
        try:
            c = GroupConn(host, broker_port, timeout=timeout)
        except OSError as e:
            errors.append(e)
            return
        try:
            deadline = time.monotonic() + timeout
            cid_to_idx = {}
            nxt = 0
            inflight = 0
            while nxt < len(idxs) or inflight:
                out = []
                while nxt < len(idxs) and inflight < window:
                    i = idxs[nxt]
                    api, ver, body = requests[i]
                    data, cid = c.encode(api, ver, body)
                    cid_to_idx[cid] = i
                    out.append(data)
                    nxt += 1
                    inflight += 1
                if out:
                    c.send_raw(b"".join(out))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise socket.timeout("pipelined: %d requests unanswered" % inflight)
                cid, resp = c.recv(timeout=left)
                results[cid_to_idx.pop(cid)] = resp
                c.sent.pop(cid, None)
                inflight -= 1
        except Exception as e:  # noqa: BLE001 - reported to the caller
            errors.append(e)
        finally:
            c.close()

    threads = [threading.Thread(target=worker, args=(s,), daemon=True) for s in shards if s]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 5)
    if errors:
        raise errors[0]
    return results


# ---- client-side helpers -------------------------------------------------------------------


def wait_until(pred, timeout, what, interval=0.05):
    """Poll pred() until it returns a truthy value; return it, or fail naming `what`."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = pred()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def committed(bootstrap, group, topic, partitions, timeout=20):
    """Committed offsets of a group through confluent_kafka's Consumer.committed()
    (OffsetFetch): {partition: offset} with None where nothing is committed."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                  "socket.timeout.ms": 10000})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in partitions], timeout=timeout)
    finally:
        c.close()
    out = {}
    for tp in tps:
        assert tp.error is None, "committed(%s, %s/%d): %s" % (group, topic, tp.partition, tp.error)
        out[tp.partition] = tp.offset if tp.offset >= 0 else None
    return out


def end_offsets(bootstrap, topic, partitions):
    """High watermarks via ListOffsets (kwire), {partition: offset}."""
    host, port = bootstrap.rsplit(":", 1)
    out = {}
    with Conn(host, int(port), timeout=10) as c:
        for p in partitions:
            r = c.list_offset(topic, p, -1, version=1)
            assert r["error_code"] == 0, "ListOffsets %s/%d: %s" % (topic, p, ename(r["error_code"]))
            out[p] = r["offset"]
    return out


def produce_values(bootstrap, topic, per_partition, tag):
    """Produce per_partition records to every partition (dict {p: n}); values are
    '<tag>-<p>-<i>'. Returns the list of values (bytes)."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                  "message.timeout.ms": 30000, "socket.timeout.ms": 10000})
    errs = []
    vals = []
    for part, n in per_partition.items():
        for i in range(n):
            v = ("%s-%d-%d" % (tag, part, i)).encode()
            vals.append(v)
            p.produce(topic, value=v, partition=part, on_delivery=lambda e, m: e and errs.append(e))
            p.poll(0)
    left = p.flush(30)
    assert left == 0 and not errs, "produce: %d undelivered, errors %r" % (left, errs[:3])
    return vals


def http_group(broker, group):
    status, body = broker.http("GET", "/v1/groups/" + group)
    assert status == 200, "GET /v1/groups/%s: HTTP %d %r" % (group, status, body)
    assert isinstance(body, dict), "GET /v1/groups/%s: not a JSON object: %r" % (group, body)
    return body


def http_group_ids(broker):
    """Group ids from GET /v1/groups (a JSON list, or an object with a list under 'groups')."""
    status, body = broker.http("GET", "/v1/groups")
    assert status == 200, "GET /v1/groups: HTTP %d %r" % (status, body)
    items = body.get("groups") if isinstance(body, dict) else body
    assert isinstance(items, list), "GET /v1/groups: no list of groups in %r" % (body,)
    ids = []
    for g in items:
        ids.append(g if isinstance(g, str) else g.get("group_id"))
    return ids


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)(\s+-?\d+)?$')


def metrics(broker):
    """[(name, {label: value}, float)] from GET /metrics."""
    status, text = broker.http("GET", "/metrics")
    assert status == 200, "GET /metrics: HTTP %d" % status
    out = []
    for line in str(text).splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, "not a Prometheus sample line: %r" % line
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out.append((m.group(1), labels, float(m.group(3).replace("+Inf", "inf"))))
    return out


def metric(samples, name, **labels):
    """The value of the sample named `name` whose labels include `labels`, or None."""
    for n, lab, v in samples:
        if n == name and all(lab.get(kk) == vv for kk, vv in labels.items()):
            return v
    return None


# ---- a consumer process ---------------------------------------------------------------------


class MemberProc:
    """tests/e2e/group_member.py as a child process. Its stdout is JSON lines, read by a
    thread into self.events (each with a local arrival time 'at'). The member's view of
    its own assignment is rebuilt from assign/revoke/lost events."""

    def __init__(self, bootstrap, topic, group, name, conf=None, commit=True):
        self.name = name
        spec = {"bootstrap": bootstrap, "topic": topic, "group": group, "name": name,
                "conf": conf or {}, "commit": commit}
        self.proc = subprocess.Popen([PYTHON, MEMBER_SCRIPT, json.dumps(spec)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.events = []
        self.lock = threading.Lock()
        self.stderr = []
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()
        self._e = threading.Thread(target=self._read_err, daemon=True)
        self._e.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                ev = {"ev": "garbage", "line": line.decode(errors="replace")}
            ev["at"] = time.monotonic()
            with self.lock:
                self.events.append(ev)

    def _read_err(self):
        for line in self.proc.stderr:
            with self.lock:
                self.stderr.append(line.decode(errors="replace"))
                del self.stderr[:-200]

    def snapshot(self):
        with self.lock:
            return list(self.events)

    def assignment(self, events=None):
        """The member's current partitions (a frozenset), from its callbacks."""
        cur = set()
        for ev in events if events is not None else self.snapshot():
            if ev["ev"] == "assign":
                cur |= set(ev["parts"])
            elif ev["ev"] in ("revoke", "lost"):
                cur -= set(ev["parts"])
        return frozenset(cur)

    def rebalance_events(self, since=0):
        return [e for e in self.snapshot()[since:] if e["ev"] in ("assign", "revoke", "lost")]

    def messages(self):
        return [e for e in self.snapshot() if e["ev"] == "msg"]

    def errors(self):
        return [e for e in self.snapshot() if e["ev"] in ("error", "commit_error", "garbage")]

    def alive(self):
        return self.proc.poll() is None

    def kill9(self):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout=20):
        """SIGTERM: the member closes its consumer (LeaveGroup for a dynamic member) and
        exits. Returns the exit code."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._t.join(5)
        return self.proc.returncode

    def describe(self):
        with self.lock:
            evs = [e for e in self.events if e["ev"] != "msg"][-15:]
            err = "".join(self.stderr[-20:])
        return "member %s (rc=%r): last events %s\nstderr tail:\n%s" % (
            self.name, self.proc.poll(), json.dumps(evs), err)


def partitioned(members, partitions):
    """True when the members' assignments are non-empty where there are enough partitions,
    pairwise disjoint, and together exactly `partitions`."""
    views = [m.assignment() for m in members]
    seen = []
    for v in views:
        seen.extend(v)
    if sorted(seen) != sorted(partitions):
        return False
    if len(partitions) >= len(members) and any(not v for v in views):
        return False
    return views


def stop_all(members):
    for m in members:
        try:
            m.stop(10)
        except Exception:  # noqa: BLE001 - best effort at teardown
            pass


# ---- the fixture ------------------------------------------------------------------------------

GROUP_CONFIG = {"group.initial.rebalance.delay.ms": "100"}


def broker_fixture(request, config):
    """Generator body shared by group fixtures: start, yield, then the same teardown checks
    as conftest's `broker` (exit 0 on SIGTERM, no sanitizer report)."""
    from harness import Broker

    b = Broker(config=config)
    try:
        b.start()
        yield b
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            print("--- broker log tail (%s) ---\n%s" % (b.log_path, b.log_tail(80)))
        if b.proc is not None:
            rc = b.stop()
            assert rc == 0, "broker exit code on SIGTERM was %r\n--- log tail ---\n%s" % (rc, b.log_tail())
        b.assert_clean()
    finally:
        b.close()


try:
    import pytest

    @pytest.fixture
    def group_broker(request):
        """A started broker with group.initial.rebalance.delay.ms=100."""
        yield from broker_fixture(request, GROUP_CONFIG)
except ImportError:  # the bench imports this file without pytest
    pass


def self_test():
    """Round trips of the encoders through the decoders' schemas; run: python3 groups_util.py"""
    a = assignment({"t": [0, 2]}, b"u")
    assert decode_assignment(a) == {"t": [0, 2]}
    assert decode_assignment(b"") == {}
    # JoinGroup v5 response
    resp = int32(0) + int16(0) + int32(3) + string("range") + string("m1") + string("m1") + \
        array([string("m1") + string(None) + bytes_(b"x")])
    d = decode_join_group(5, resp)
    assert d["generation"] == 3 and d["members"][0]["metadata"] == b"x" and d["leader"] == "m1"
    # JoinGroup v6 (flexible) response
    resp = int32(0) + int16(79) + int32(-1) + k.compact_string("") + k.compact_string("") + \
        k.compact_string("m9") + k.compact_array([]) + k.tagged_fields()
    assert decode_join_group(6, resp)["member_id"] == "m9"
    # OffsetCommit v8 request round trip through Reader
    body = offset_commit_request(8, "g", {"t": {1: (5, "meta")}}, generation=2, member_id="m")
    r = Reader(body)
    assert r.compact_string() == "g" and r.int32() == 2 and r.compact_string() == "m"
    assert r.compact_string() is None and r.uvarint() == 2 and r.compact_string() == "t"
    assert r.uvarint() == 2 and r.int32() == 1 and r.int64() == 5 and r.int32() == -1
    assert r.compact_string() == "meta"
    # OffsetFetch v3 response
    resp = int32(0) + array([string("t") + array([int32(0) + int64(7) + string("m") + int16(0)])]) + int16(0)
    assert decode_offset_fetch(3, resp)["offsets"] == {("t", 0): (7, "m", 0)}
    assert k.is_flexible(JOIN_GROUP, 6) and not k.is_flexible(JOIN_GROUP, 5)
    return True


if __name__ == "__main__":
    self_test()
    print("groups_util self-test ok")
