"""End-to-end ACLs on the consumer-group and share-group APIs (issue 8), as Apache Kafka
enforces them: READ on the group to join, sync, heartbeat, leave and commit; DESCRIBE to
fetch offsets, describe and list; DELETE to delete groups and offsets; READ on each topic
committed, DESCRIBE on each topic whose offsets are fetched. Share groups: READ on the
group and on each topic fetched or acknowledged, DESCRIBE on subscribed and described
topics. A shared view needs READ on its source topic too.

The PLAINTEXT listener is anonymous and a super user (the test's back door for setup);
the tenants log in with SASL PLAIN on SASL_PLAINTEXT. alice owns tenant-a.* (topics:
Read, Write, Describe, Create; groups: Read, Describe) and may only Describe groups ro.*;
bob owns tenant-b.* (All). Real clients where a client takes the path (confluent-kafka
1.7, kafka-python 2.0.2), raw frames (kwire) for the exact error codes and the share APIs.
"""

import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer

import kwire
import test_share_groups as sg
from groups_util import (
    OFFSET_FETCH,
    GroupConn,
    decode_offset_fetch_groups,
    join_member,
    offset_fetch_groups_request,
)
from harness import Broker, unique

TOKEN = "acl-groups-token"
TOPIC_AUTH, GROUP_AUTH = 29, 30
SASL_HANDSHAKE, SASL_AUTHENTICATE, INCREMENTAL_ALTER_CONFIGS = 17, 36, 44
ALICE_PW, BOB_PW = "alice-pw", "bob-pw"
ALICE_ACLS = [
    {"resource": "topic", "name": "tenant-a.", "pattern": "prefixed",
     "operations": ["Read", "Write", "Describe", "Create"]},
    {"resource": "group", "name": "tenant-a.", "pattern": "prefixed", "operations": ["Read", "Describe"]},
    {"resource": "group", "name": "ro.", "pattern": "prefixed", "operations": ["Describe"]},
]
BOB_ACLS = [
    {"resource": "topic", "name": "tenant-b.", "pattern": "prefixed", "operations": ["All"]},
    {"resource": "group", "name": "tenant-b.", "pattern": "prefixed", "operations": ["All"]},
]

kwire.FIRST_FLEXIBLE.setdefault(SASL_AUTHENTICATE, 2)
kwire.FIRST_FLEXIBLE.setdefault(INCREMENTAL_ALTER_CONFIGS, 1)


@pytest.fixture(scope="module")
def ab():
    """One broker for the module: every test uses its own topic and group names."""
    b = Broker(config={"authorizer": "acl", "super.users": "User:ANONYMOUS",
                       "group.initial.rebalance.delay.ms": 100},
               listeners={"SASL_PLAINTEXT": "SASL_PLAINTEXT"}, admin_token=TOKEN)
    b.start()
    try:
        for name, pw, acls in (("alice", ALICE_PW, ALICE_ACLS), ("bob", BOB_PW, BOB_ACLS)):
            st, body = b.http("PUT", "/v1/principals/" + name, {"password": pw, "acls": acls})
            assert st == 201, body
        yield b
        assert b.stop() == 0, b.log_tail()
        b.assert_clean()
    finally:
        b.close()


# ---- connections ----------------------------------------------------------------------


def sasl_login(conn, user, pw):
    """SaslHandshake v1 (PLAIN), then SaslAuthenticate v2 with the PLAIN token."""
    r = kwire.Reader(conn.request(SASL_HANDSHAKE, 1, kwire.string("PLAIN")))
    assert r.int16() == 0, "SaslHandshake refused PLAIN"
    token = b"\0" + user.encode() + b"\0" + pw.encode()
    r = kwire.Reader(conn.request(SASL_AUTHENTICATE, 2, kwire.compact_bytes(token) + kwire.tagged_fields()))
    err, msg = r.int16(), r.compact_string()
    assert err == 0, "SaslAuthenticate as %s: %d %s" % (user, err, msg)
    return conn


def as_user(b, user):
    """A GroupConn on SASL_PLAINTEXT logged in as alice or bob."""
    host, port = b.addr("SASL_PLAINTEXT").split(":")
    c = GroupConn(host, int(port))
    return sasl_login(c, user, {"alice": ALICE_PW, "bob": BOB_PW}[user])


def as_super(b):
    return GroupConn.to(b)


def ck_conf(b, user="alice", **extra):
    conf = {"bootstrap.servers": b.addr("SASL_PLAINTEXT"), "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanisms": "PLAIN", "sasl.username": user,
            "sasl.password": {"alice": ALICE_PW, "bob": BOB_PW}[user], "socket.timeout.ms": 10000}
    conf.update(extra)
    return conf


def produce(b, topic, n, tag="v", per_batch=1):
    """Produces n values through the super-user listener, per_batch to a stored batch."""
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 0, "enable.idempotence": False,
                  "batch.num.messages": per_batch})
    for i in range(n):
        p.produce(topic, value=b"%s%d" % (tag.encode(), i), partition=0)
        if (i + 1) % per_batch == 0:
            p.flush(10)
    assert p.flush(10) == 0
    return [b"%s%d" % (tag.encode(), i) for i in range(n)]


def consume_group(conf, topics, n, timeout=30, commit=True):
    """Subscribes with conf, reads up to n values, commits them synchronously. Returns
    (values, [consumer error codes], committed offsets {(topic, partition): offset})."""
    c = Consumer(dict(conf, **{"auto.offset.reset": "earliest", "enable.auto.commit": False,
                               "enable.partition.eof": False}))
    got, errs, done = [], [], {}
    try:
        c.subscribe(topics)
        deadline = time.monotonic() + timeout
        while len(got) < n and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                errs.append(m.error().code())
                if m.error().code() in (KafkaError.GROUP_AUTHORIZATION_FAILED,
                                        KafkaError.TOPIC_AUTHORIZATION_FAILED):
                    break
                continue
            got.append(m.value())
            if commit:
                try:
                    c.commit(message=m, asynchronous=False)
                except KafkaException as e:
                    errs.append(e.args[0].code())
                    break
        if commit and got:
            parts = c.assignment()
            done = {(tp.topic, tp.partition): tp.offset for tp in c.committed(parts, timeout=10)}
    finally:
        c.close()
    return got, errs, done


# ---- classic groups with real clients ----------------------------------------------------


@pytest.mark.timeout(120)
def test_confluent_own_group_and_topic(ab):
    topic, group = unique("tenant-a.t"), unique("tenant-a.g1")
    ab.create_topic(topic, partitions=1)
    want = produce(ab, topic, 20)
    got, errs, done = consume_group(ck_conf(ab, **{"group.id": group}), [topic], 20)
    assert got == want and not errs, (got, errs)
    assert done == {(topic, 0): 20}
    # the offsets are the group's, readable by alice (DESCRIBE on group and topic)
    with as_user(ab, "alice") as c:
        r = c.offset_fetch(5, group, {topic: [0]})
    assert r["error_code"] == 0 and r["offsets"][(topic, 0)][0] == 20 and r["offsets"][(topic, 0)][2] == 0


@pytest.mark.timeout(120)
def test_confluent_refused_group_and_topic(ab):
    own = unique("tenant-a.t")
    ab.create_topic(own, partitions=1)
    foreign = unique("tenant-b.x")
    ab.create_topic(foreign, partitions=1)
    produce(ab, own, 3)
    # no DESCRIBE on the group: FindCoordinator already refuses it
    got, errs, _ = consume_group(ck_conf(ab, **{"group.id": unique("tenant-b.g")}), [own], 3, timeout=20)
    assert not got and KafkaError.GROUP_AUTHORIZATION_FAILED in errs, (got, errs)
    # DESCRIBE but no READ: the coordinator is found and JoinGroup refuses
    got, errs, _ = consume_group(ck_conf(ab, **{"group.id": unique("ro.g")}), [own], 3, timeout=20)
    assert not got and KafkaError.GROUP_AUTHORIZATION_FAILED in errs, (got, errs)
    # her own group on another tenant's topic
    got, errs, _ = consume_group(ck_conf(ab, **{"group.id": unique("tenant-a.g2")}), [foreign], 3, timeout=20)
    assert not got and KafkaError.TOPIC_AUTHORIZATION_FAILED in errs, (got, errs)


@pytest.mark.timeout(120)
def test_kafka_python_group_commit_and_list(ab):
    from kafka import KafkaAdminClient, KafkaConsumer
    from kafka.errors import GroupAuthorizationFailedError

    topic, group = unique("tenant-a.kp"), unique("tenant-a.kpg")
    ab.create_topic(topic, partitions=1)
    want = produce(ab, topic, 10, "kp")
    common = dict(bootstrap_servers=ab.addr("SASL_PLAINTEXT"), security_protocol="SASL_PLAINTEXT",
                  sasl_mechanism="PLAIN", sasl_plain_username="alice", sasl_plain_password=ALICE_PW,
                  api_version=(2, 5, 0), request_timeout_ms=15000)
    c = KafkaConsumer(topic, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False,
                      consumer_timeout_ms=8000, **common)
    got = []
    for m in c:
        got.append(m.value)
        if len(got) == len(want):
            break
    c.commit()
    c.close()
    assert got == want
    # a bob group whose coordinator alice may not even look up
    bad = KafkaConsumer(topic, group_id=unique("tenant-b.kp"), auto_offset_reset="earliest",
                        consumer_timeout_ms=5000, **common)
    with pytest.raises(GroupAuthorizationFailedError):
        for _ in bad:
            break
    bad.close()
    # bob's group exists; ListGroups as alice shows only what she may describe
    with as_super(ab) as s:
        assert s.offset_commit(2, unique("tenant-b.kpb"), {topic: {0: 1}})[(topic, 0)] == 0
    a = KafkaAdminClient(**common)
    try:
        names = [g[0] for g in a.list_consumer_groups()]
    finally:
        a.close()
    assert group in names, names
    assert all(n.startswith(("tenant-a.", "ro.")) for n in names), names


# ---- classic groups on the wire: every API ---------------------------------------------------


@pytest.mark.timeout(120)
def test_membership_apis_need_group_read(ab):
    topic = unique("tenant-a.m")
    ab.create_topic(topic, partitions=2)
    with as_user(ab, "alice") as c:
        for group in (unique("ro.m"), unique("tenant-b.m")):
            for v in (0, 5, 9):
                j = join_member(c, group, [topic], version=v)
                assert j["error_code"] == GROUP_AUTH and j["member_id"] == "" and j["generation"] == -1, (v, j)
            for v in (0, 5):
                s = c.sync_group(v, group, 1, "m")
                assert s["error_code"] == GROUP_AUTH and s["assignment"] == b"", (v, s)
            for v in (0, 4):
                assert c.heartbeat(v, group, 1, "m")["error_code"] == GROUP_AUTH, v
            assert c.leave_group(0, group, [("m", None)])["error_code"] == GROUP_AUTH
            lv = c.leave_group(5, group, [("m", None), ("n", "i")])
            assert lv["error_code"] == GROUP_AUTH and lv["members"] == [], lv
        # her own group works end to end
        group = unique("tenant-a.m")
        j = join_member(c, group, [topic], version=5)
        assert j["error_code"] == 0, j
        s = c.sync_group(3, group, j["generation"], j["member_id"], assignments=[(j["member_id"], b"")])
        assert s["error_code"] == 0, s
        assert c.heartbeat(3, group, j["generation"], j["member_id"])["error_code"] == 0
        lv = c.leave_group(3, group, [(j["member_id"], None)])
        assert lv["error_code"] == 0 and lv["members"][0]["error_code"] == 0, lv


@pytest.mark.timeout(120)
def test_offset_commit_group_and_topic_checks(ab):
    own, foreign = unique("tenant-a.c"), unique("tenant-b.c")
    ab.create_topic(own, partitions=2)
    ab.create_topic(foreign, partitions=1)
    group, refused = unique("tenant-a.gc"), [unique("tenant-b.gc"), unique("ro.gc")]
    with as_user(ab, "alice") as c:
        for v in (2, 8):
            r = c.offset_commit(v, group, {own: {0: 5, 1: 6}, foreign: {0: 7}})
            assert r == {(own, 0): 0, (own, 1): 0, (foreign, 0): TOPIC_AUTH}, (v, r)
        for g in refused:
            r = c.offset_commit(8, g, {own: {0: 1}, foreign: {0: 1}})
            assert set(r.values()) == {GROUP_AUTH}, (g, r)
        # nothing committed, nothing changed, for a simple (v0) commit too
        assert c.offset_commit(0, group, {foreign: {0: 9}}) == {(foreign, 0): TOPIC_AUTH}
    with as_super(ab) as s:
        r = s.offset_fetch(5, group, {own: [0, 1], foreign: [0]})
        assert r["offsets"] == {(own, 0): (5, "", 0), (own, 1): (6, "", 0), (foreign, 0): (-1, "", 0)}, r
        # a refused commit does not make the group
        ids = {g["group_id"] for g in s.list_groups(0)["groups"]}
        assert group in ids and not ids & set(refused), ids


@pytest.mark.timeout(120)
def test_offset_fetch_every_form(ab):
    own, foreign = unique("tenant-a.f"), unique("tenant-b.f")
    ab.create_topic(own, partitions=1)
    ab.create_topic(foreign, partitions=1)
    mine, bobs, ro = unique("tenant-a.gf"), unique("tenant-b.gf"), unique("ro.gf")
    with as_super(ab) as s:
        for g in (mine, bobs, ro):
            assert set(s.offset_commit(2, g, {own: {0: 3}, foreign: {0: 4}}).values()) == {0}
    with as_user(ab, "alice") as c:
        # named topics: the undescribable one answers TOPIC_AUTHORIZATION_FAILED, offset -1
        for v in (1, 5, 7):
            r = c.offset_fetch(v, mine, {own: [0], foreign: [0]})
            assert r["offsets"] == {(own, 0): (3, "", 0), (foreign, 0): (-1, "", TOPIC_AUTH)}, (v, r)
            assert r["error_code"] in (None, 0)
        # all topics (null, as KEDA asks): the undescribable one is left out
        for v in (2, 7):
            r = c.offset_fetch(v, mine, None)
            assert r["error_code"] == 0 and r["offsets"] == {(own, 0): (3, "", 0)}, (v, r)
        # a group alice may not describe: v0-1 per partition, v2+ the group-level error only
        r = c.offset_fetch(1, bobs, {own: [0]})
        assert r["offsets"] == {(own, 0): (-1, "", GROUP_AUTH)}, r
        for v in (2, 6):
            for topics in ({own: [0]}, None):
                r = c.offset_fetch(v, bobs, topics)
                assert r["error_code"] == GROUP_AUTH and r["offsets"] == {}, (v, topics, r)
        # v8: several groups, one answer each
        body = offset_fetch_groups_request(8, {mine: None, bobs: None, ro: {own: [0], foreign: [0]}})
        r = decode_offset_fetch_groups(c.request(OFFSET_FETCH, 8, body))
        assert r[mine] == {"error_code": 0, "offsets": {(own, 0): (3, "", 0)}}, r
        assert r[bobs] == {"error_code": GROUP_AUTH, "offsets": {}}, r
        assert r[ro]["error_code"] == 0 and r[ro]["offsets"] == {
            (own, 0): (3, "", 0), (foreign, 0): (-1, "", TOPIC_AUTH)}, r
    # bob sees his topic's offsets in his group, not alice's topic's
    with as_user(ab, "bob") as c:
        r = c.offset_fetch(7, bobs, None)
        assert r["offsets"] == {(foreign, 0): (4, "", 0)}, r


@pytest.mark.timeout(120)
def test_describe_list_delete_and_offset_delete(ab):
    own, foreign = unique("tenant-a.d"), unique("tenant-b.d")
    ab.create_topic(own, partitions=1)
    ab.create_topic(foreign, partitions=1)
    mine, bobs, ro = unique("tenant-a.gd"), unique("tenant-b.gd"), unique("ro.gd")
    with as_super(ab) as s:
        for g in (mine, bobs, ro):
            assert set(s.offset_commit(2, g, {own: {0: 1}, foreign: {0: 1}}).values()) == {0}
        all_ids = {g["group_id"] for g in s.list_groups(0)["groups"]}
    assert {mine, bobs, ro} <= all_ids
    with as_user(ab, "alice") as c:
        for v in (0, 3, 5):
            d = c.describe_groups([mine, bobs, ro], version=v)
            assert d[mine]["error_code"] == 0 and d[mine]["state"] == "Empty", (v, d)
            assert d[ro]["error_code"] == 0, (v, d)
            assert d[bobs] == dict(d[bobs], error_code=GROUP_AUTH, state="", protocol_type="", members=[]), (v, d)
        for v in (0, 3, 4):
            ids = {g["group_id"] for g in c.list_groups(v)["groups"]}
            assert {mine, ro} <= ids and bobs not in ids, (v, ids)
            assert all(i.startswith(("tenant-a.", "ro.")) for i in ids), ids
        # DELETE is not alice's on any group
        assert c.delete_groups([mine, bobs], version=2) == {mine: GROUP_AUTH, bobs: GROUP_AUTH}
        od = c.offset_delete(mine, {own: [0]})
        assert od == {"error_code": GROUP_AUTH, "partitions": {}}, od
    with as_user(ab, "bob") as c:
        ids = {g["group_id"] for g in c.list_groups(3)["groups"]}
        assert bobs in ids and mine not in ids and ro not in ids, ids
        # OffsetDelete: DELETE on his group, READ on each topic
        od = c.offset_delete(bobs, {foreign: [0], own: [0]})
        assert od == {"error_code": 0, "partitions": {(foreign, 0): 0, (own, 0): TOPIC_AUTH}}, od
        assert c.delete_groups([bobs, mine], version=1) == {bobs: 0, mine: GROUP_AUTH}
    with as_super(ab) as s:
        assert s.offset_fetch(5, mine, {own: [0]})["offsets"][(own, 0)][0] == 1  # still there
        ids = {g["group_id"] for g in s.list_groups(0)["groups"]}
        assert bobs not in ids and mine in ids


# ---- shared views ------------------------------------------------------------------------


@pytest.mark.timeout(150)
def test_shared_view_needs_read_on_its_source(ab):
    # a view alice's ACLs cover by name, over bob's data
    src = unique("tenant-b.data")
    sneak = unique("tenant-a.sneak")
    t = ab.create_topic(src, 1, shared={"virtual_partitions": 2, "name": sneak})
    assert t["shared"]["view"] == sneak
    produce(ab, src, 10, "secret")
    group = unique("tenant-a.vs")
    got, errs, _ = consume_group(ck_conf(ab, **{"group.id": group}), [sneak], 10, timeout=20)
    assert not got, "alice read %d records of bob's topic through a view" % len(got)
    assert KafkaError.TOPIC_AUTHORIZATION_FAILED in errs, errs
    with as_user(ab, "alice") as c:
        # committing on the view would acknowledge bob's records: refused too
        r = c.offset_commit(8, group, {sneak: {0: 1, 1: 1}})
        assert set(r.values()) == {TOPIC_AUTH}, r
    # the view is a topic for ACLs too: bob, who may read the source, needs READ on it
    got, errs, _ = consume_group(ck_conf(ab, "bob", **{"group.id": unique("tenant-b.vs")}), [sneak], 10,
                                 timeout=20)
    assert not got and KafkaError.TOPIC_AUTHORIZATION_FAILED in errs, (got, errs)
    # carol may read both names: she gets every record
    st, body = ab.http("PUT", "/v1/principals/carol", {"password": "carol-pw", "acls": [
        {"resource": "topic", "name": sneak, "pattern": "literal", "operations": ["Read"]},
        {"resource": "topic", "name": src, "pattern": "literal", "operations": ["Read"]},
        {"resource": "group", "name": "carol.", "pattern": "prefixed", "operations": ["Read"]}]})
    assert st == 201, body
    conf = dict(ck_conf(ab), **{"sasl.username": "carol", "sasl.password": "carol-pw",
                                "group.id": unique("carol.vs")})
    got, errs, done = consume_group(conf, [sneak], 10, timeout=30)
    assert sorted(got) == sorted(b"secret%d" % i for i in range(10)), (got, errs)
    assert sum(o for o in done.values() if o > 0) == 10, done  # -1001: a v that got nothing

    # a view over alice's own topic works, commits included
    own = unique("tenant-a.own")
    t = ab.create_topic(own, 1, shared={"virtual_partitions": 2})
    view = t["shared"]["view"]
    want = produce(ab, own, 12, "mine")
    got, errs, done = consume_group(ck_conf(ab, **{"group.id": unique("tenant-a.vg")}), [view], 12)
    assert sorted(got) == sorted(want), (got, errs)
    assert sum(o for o in done.values() if o > 0) == 12, done


# ---- share groups on the wire --------------------------------------------------------------


def set_share_earliest(b, group):
    """IncrementalAlterConfigs v1 on the GROUP resource (32), as the super user."""
    cfg = kwire.compact_array([kwire.compact_string("share.auto.offset.reset") + kwire.int8(0)
                               + kwire.compact_string("earliest") + kwire.tagged_fields()])
    body = kwire.compact_array([kwire.int8(32) + kwire.compact_string(group) + cfg + kwire.tagged_fields()])
    body += kwire.boolean(False) + kwire.tagged_fields()
    with as_super(b) as s:
        r = kwire.Reader(s.request(INCREMENTAL_ALTER_CONFIGS, 1, body))
    r.int32()
    assert r.uvarint() == 2 and r.int16() == 0


def share_describe(conn, groups):
    """ShareGroupDescribe v1: {group: (error_code, error_message, members)}."""
    body = kwire.uvarint(len(groups) + 1) + b"".join(kwire.compact_string(g) for g in groups)
    r = kwire.Reader(conn.request(sg.SHARE_GROUP_DESCRIBE, 1, body + kwire.boolean(False) + kwire.tagged_fields()))
    r.int32()
    out = {}

    def member(rr):
        mid = rr.compact_string()
        rr.compact_string(), rr.int32(), rr.compact_string(), rr.compact_string()
        rr.compact_array(lambda r3: r3.compact_string())

        def tp(r3):
            r3.uuid(), r3.compact_string(), r3.compact_array(lambda r4: r4.int32()), r3.tagged_fields()
        rr.compact_array(tp)
        rr.tagged_fields(), rr.tagged_fields()
        return mid

    def group(rr):
        err, msg, gid = rr.int16(), rr.compact_string(), rr.compact_string()
        rr.compact_string(), rr.int32(), rr.int32(), rr.compact_string()
        members = rr.compact_array(member)
        rr.int32(), rr.tagged_fields()
        out[gid] = (err, msg, members)

    r.compact_array(group)
    r.tagged_fields()
    assert r.remaining() == 0
    return out


@pytest.mark.timeout(120)
def test_share_group_apis(ab):
    own, foreign = unique("tenant-a.s"), unique("tenant-b.s")
    ab.create_topic(own, partitions=1)
    ab.create_topic(foreign, partitions=1)
    group, bobs, ro = unique("tenant-a.sg"), unique("tenant-b.sg"), unique("ro.sg")
    for g in (group, ro):
        set_share_earliest(ab, g)
    produce(ab, own, 5, "o", per_batch=5)
    produce(ab, foreign, 5, "f", per_batch=5)
    with as_super(ab) as s:
        own_id, foreign_id = sg.topic_id_of(s, own), sg.topic_id_of(s, foreign)
        # a member of ro.* subscribed to bob's topic: alice may describe ro.* groups but
        # not that topic
        hb = sg.decode_heartbeat(s.request(sg.SHARE_GROUP_HEARTBEAT, 1,
                                           sg.heartbeat_body(ro, uuid.uuid4().hex, 0, [foreign])))
        assert hb["error_code"] == 0, hb
    m1, m2 = uuid.uuid4().hex, uuid.uuid4().hex
    with as_user(ab, "alice") as c:
        # ShareGroupHeartbeat: READ on the group, DESCRIBE on every subscribed topic
        for g in (bobs, ro):
            hb = sg.decode_heartbeat(c.request(sg.SHARE_GROUP_HEARTBEAT, 1, sg.heartbeat_body(g, m1, 0, [own])))
            assert hb["error_code"] == GROUP_AUTH and hb["assignment"] is None, hb
        hb = sg.decode_heartbeat(c.request(sg.SHARE_GROUP_HEARTBEAT, 1,
                                           sg.heartbeat_body(group, m1, 0, [own, foreign])))
        assert hb["error_code"] == TOPIC_AUTH and hb["assignment"] is None, hb
        hb = sg.decode_heartbeat(c.request(sg.SHARE_GROUP_HEARTBEAT, 1, sg.heartbeat_body(group, m1, 0, [own])))
        assert hb["error_code"] == 0 and hb["assignment"] == [(own_id, [0])], hb

        # ShareFetch / ShareAcknowledge: READ on the group (top-level error) ...
        for g in (bobs, ro):
            f = sg.decode_share_fetch(c.request(sg.SHARE_FETCH, 1, sg.share_fetch_body(g, m1, 0, own_id, {0: []})))
            assert f["error_code"] == GROUP_AUTH and f["parts"] == {}, f
            a = sg.decode_share_ack(c.request(sg.SHARE_ACKNOWLEDGE, 1,
                                              sg.share_ack_body(g, m1, 1, own_id, {0: [(0, 0, [sg.ACCEPT])]})))
            assert a["error_code"] == GROUP_AUTH and a["parts"] == {}, a
        # ... and READ on each topic (per partition)
        f = sg.decode_share_fetch(c.request(sg.SHARE_FETCH, 1, sg.share_fetch_body(group, m1, 0, own_id, {0: []})))
        assert f["error_code"] == 0 and f["parts"][0]["acquired"] == [(0, 4, 1)], f
        a = sg.decode_share_ack(c.request(sg.SHARE_ACKNOWLEDGE, 1,
                                          sg.share_ack_body(group, m1, 1, own_id, {0: [(0, 4, [sg.ACCEPT])]})))
        assert a["error_code"] == 0 and a["parts"] == {0: 0}, a
        f = sg.decode_share_fetch(c.request(sg.SHARE_FETCH, 1, sg.share_fetch_body(group, m2, 0, foreign_id, {0: []})))
        p = f["parts"][0]
        assert f["error_code"] == 0 and p["error_code"] == TOPIC_AUTH and p["acquired"] == [] and p["records"] == b"", f
        a = sg.decode_share_ack(c.request(sg.SHARE_ACKNOWLEDGE, 1,
                                          sg.share_ack_body(group, m2, 1, foreign_id, {0: [(0, 4, [sg.ACCEPT])]})))
        assert a["error_code"] == 0 and a["parts"] == {0: TOPIC_AUTH}, a
        # the partition stays in the session and keeps answering the error, without waiting
        f = sg.decode_share_fetch(c.request(sg.SHARE_FETCH, 1, sg.share_fetch_body(
            group, m2, 2, None, {}, max_wait=5000)))
        assert f["parts"][0]["error_code"] == TOPIC_AUTH, f

        # ShareGroupDescribe: DESCRIBE on the group, and on the topics its members use
        d = share_describe(c, [group, bobs, ro])
        assert d[group][0] == 0 and d[group][2] == [m1], d
        assert d[bobs][0] == GROUP_AUTH and d[bobs][2] == [], d
        assert d[ro][0] == TOPIC_AUTH and d[ro][2] == [], d

    # bob's records were never handed to alice: the super user gets them at delivery 1
    with as_super(ab) as s:
        f = sg.decode_share_fetch(s.request(sg.SHARE_FETCH, 1, sg.share_fetch_body(
            group, uuid.uuid4().hex, 0, foreign_id, {0: []})))
        assert f["parts"][0]["acquired"] == [(0, 4, 1)], f
        assert share_describe(s, [ro])[ro][0] == 0

