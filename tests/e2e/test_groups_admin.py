"""Group admin, offsets across restarts, and bad input for the group coordinator (issue 3).

- kafka-python KafkaAdminClient: list_consumer_groups, describe_consumer_groups and
  list_consumer_group_offsets (OffsetFetch with topics=null, the form KEDA uses);
  delete_consumer_groups of an empty and of a non-empty group.
- confluent-kafka AdminClient.list_groups (ListGroups + DescribeGroups).
- HTTP GET /v1/groups and /v1/groups/{id}: members, assignment, and lag = end offset -
  committed offset per partition; the group metrics.
- A restart (SIGTERM) and a crash (SIGKILL) keep every acknowledged commit and its metadata.
- Raw wire (kwire + groups_util): FindCoordinator in all versions, OffsetDelete, commits
  with a stale generation / an unknown member / a fenced static instance, heartbeats for
  unknown groups, a 2 MiB JoinGroup, and 10,000 groups committing once.
"""

import time

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from kafka import KafkaAdminClient
from kafka.structs import OffsetAndMetadata, TopicPartition as KTP

import groups_util as g
from groups_util import GroupConn, committed, end_offsets, group_broker, wait_until  # noqa: F401
from harness import unique
from kwire import assert_serving


# ---- helpers ------------------------------------------------------------------------------


def conn(b, timeout=15.0):
    return GroupConn.to(b, timeout=timeout)


def simple_commit(b, group, offsets, version=2):
    """Commit as a group-less client (generation -1, empty member id); all must succeed."""
    with conn(b) as c:
        res = c.offset_commit(version, group, offsets)
    want = {(t, p) for t, ps in offsets.items() for p in ps}
    assert set(res) == want, "OffsetCommit answered for %r, sent %r" % (sorted(res), sorted(want))
    bad = {tp: g.ename(e) for tp, e in res.items() if e}
    assert not bad, "simple commit to %s failed: %r" % (group, bad)


def fetch_all(b, group, version=3):
    """OffsetFetch with topics=null: {(topic, partition): (offset, metadata)}."""
    with conn(b) as c:
        r = c.offset_fetch(version, group, None)
    assert r["error_code"] in (None, 0), "OffsetFetch %s: %s" % (group, g.ename(r["error_code"]))
    bad = {tp: g.ename(v[2]) for tp, v in r["offsets"].items() if v[2]}
    assert not bad, bad
    return {tp: (v[0], v[1]) for tp, v in r["offsets"].items()}


def kp_admin(b):
    return KafkaAdminClient(bootstrap_servers=b.bootstrap, request_timeout_ms=15000)


class Active:
    """A subscribed confluent-kafka consumer that stays in the group (librdkafka heartbeats
    in the background; poll() serves the rebalance callbacks)."""

    def __init__(self, b, topic, group, client_id="adm-member", **extra):
        conf = {"bootstrap.servers": b.bootstrap, "group.id": group, "client.id": client_id,
                "enable.auto.commit": False, "auto.offset.reset": "earliest", "enable.partition.eof": False,
                "session.timeout.ms": 10000, "heartbeat.interval.ms": 500, "fetch.wait.max.ms": 100,
                "partition.assignment.strategy": "range", "socket.timeout.ms": 10000}
        conf.update(extra)
        self.c = Consumer(conf)
        self.c.subscribe([topic])
        self.msgs = []

    def wait_assigned(self, n, timeout=30):
        def ok():
            m = self.c.poll(0.1)
            if m is not None and not m.error():
                self.msgs.append(m)
            return len(self.c.assignment()) == n
        wait_until(ok, timeout, "the consumer to be assigned %d partitions" % n, interval=0)

    def consume(self, count, timeout=30):
        def ok():
            m = self.c.poll(0.1)
            if m is not None and not m.error():
                self.msgs.append(m)
            return len(self.msgs) >= count
        wait_until(ok, timeout, "%d messages" % count, interval=0)

    def close(self):
        self.c.close()


def produce(b, topic, counts):
    return g.produce_values(b.bootstrap, topic, counts, unique("v"))


# ---- kafka-python and confluent admin ---------------------------------------------------------


@pytest.mark.timeout(90)
def test_kafka_python_admin_list_describe_and_all_offsets(group_broker):
    b = group_broker
    ta, tb = unique("ta"), unique("tb")
    b.create_topic(ta, partitions=3)
    b.create_topic(tb, partitions=2)
    produce(b, ta, {0: 10, 1: 10, 2: 10})
    g_active, g_simple = unique("g-act"), unique("g-simple")

    act = Active(b, ta, g_active, client_id="adm-member")
    try:
        act.wait_assigned(3)
        act.c.commit(offsets=[TopicPartition(ta, 0, 4), TopicPartition(ta, 1, 7), TopicPartition(ta, 2, 1)],
                     asynchronous=False)
        simple = {ta: {0: (3, "m-a0"), 2: (0, "")}, tb: {1: (9, "m-b1")}}
        simple_commit(b, g_simple, simple)

        a = kp_admin(b)
        try:
            groups = dict(a.list_consumer_groups())
            assert groups.get(g_active) == "consumer", "list_consumer_groups: %r" % groups
            assert g_simple in groups, "a group with only committed offsets is not listed: %r" % groups
            assert groups[g_simple] == "", "protocol type of an offsets-only group: %r" % groups[g_simple]

            [d] = a.describe_consumer_groups([g_active])
            assert (d.error_code, d.group, d.state, d.protocol_type, d.protocol) == (
                0, g_active, "Stable", "consumer", "range"), d
            assert len(d.members) == 1, d.members
            m = d.members[0]
            assert m.client_id == "adm-member" and m.member_id and m.client_host, m
            assert m.member_metadata.subscription == [ta], m.member_metadata
            assert [(t, sorted(ps)) for t, ps in m.member_assignment.assignment] == [(ta, [0, 1, 2])], m

            [d2] = a.describe_consumer_groups([g_simple])
            assert (d2.error_code, d2.state, d2.members) == (0, "Empty", []), d2

            # OffsetFetch with topics=null: every committed partition, and only those.
            got = a.list_consumer_group_offsets(g_active)
            assert got == {KTP(ta, 0): OffsetAndMetadata(4, ""), KTP(ta, 1): OffsetAndMetadata(7, ""),
                           KTP(ta, 2): OffsetAndMetadata(1, "")}, got
            got = a.list_consumer_group_offsets(g_simple)
            assert got == {KTP(ta, 0): OffsetAndMetadata(3, "m-a0"), KTP(ta, 2): OffsetAndMetadata(0, ""),
                           KTP(tb, 1): OffsetAndMetadata(9, "m-b1")}, got
            # ... and with partitions named, one not committed (-1).
            got = a.list_consumer_group_offsets(g_simple, partitions=[KTP(ta, 0), KTP(ta, 1)])
            assert got[KTP(ta, 0)] == OffsetAndMetadata(3, "m-a0") and got[KTP(ta, 1)].offset == -1, got
        finally:
            a.close()

        # confluent-kafka 1.7: AdminClient.list_groups (ListGroups, then DescribeGroups).
        ca = AdminClient({"bootstrap.servers": b.bootstrap})
        lg = {x.id: x for x in ca.list_groups(timeout=15)}
        assert g_active in lg and g_simple in lg, sorted(lg)
        ga = lg[g_active]
        assert ga.error is None and (ga.state, ga.protocol_type, ga.protocol) == ("Stable", "consumer", "range"), (
            ga.state, ga.protocol_type, ga.protocol)
        assert [mm.client_id for mm in ga.members] == ["adm-member"], ga.members
        assert g.decode_assignment(ga.members[0].assignment) == {ta: [0, 1, 2]}
        [gs] = ca.list_groups(group=g_simple, timeout=15)
        assert gs.state == "Empty" and not gs.members, (gs.state, gs.members)

        # The flexible versions on the wire: ListGroups v4 with a state filter,
        # DescribeGroups v5, OffsetFetch v7 with topics=null.
        with conn(b) as c:
            lg4 = c.list_groups(4)
            assert lg4["error_code"] == 0
            states = {x["group_id"]: x["state"] for x in lg4["groups"]}
            assert states.get(g_active) == "Stable" and states.get(g_simple) == "Empty", states
            body = g.list_groups_request(4, ["Empty"])
            only_empty = g.decode_list_groups(4, c.request(g.LIST_GROUPS, 4, body))
            ids = {x["group_id"] for x in only_empty["groups"]}
            assert g_simple in ids and g_active not in ids, ids
            dg = c.describe_groups([g_active, g_simple], version=5)
            assert dg[g_active]["state"] == "Stable" and dg[g_active]["members"][0]["instance_id"] is None
            assert g.decode_assignment(dg[g_active]["members"][0]["assignment"]) == {ta: [0, 1, 2]}
            assert dg[g_simple]["state"] == "Empty" and dg[g_simple]["members"] == []
        assert fetch_all(b, g_simple, version=7) == {(ta, 0): (3, "m-a0"), (ta, 2): (0, ""), (tb, 1): (9, "m-b1")}
    finally:
        act.close()


@pytest.mark.timeout(90)
def test_http_groups_lag_and_metrics(group_broker):
    b = group_broker
    t = unique("tl")
    b.create_topic(t, partitions=3)
    produce(b, t, {0: 10, 1: 10, 2: 10})
    grp, g_simple = unique("g-lag"), unique("g-lag-simple")
    act = Active(b, t, grp, client_id="lag-client")
    try:
        act.wait_assigned(3)
        act.consume(30)
        act.c.commit(asynchronous=False)
        simple_commit(b, g_simple, {t: {0: (3, "x")}})

        doc = g.http_group(b, grp)
        assert doc.get("group_id") == grp and doc.get("state") == "Stable", doc
        assert doc.get("protocol_type") == "consumer" and doc.get("protocol") == "range", doc
        assert isinstance(doc.get("generation"), int) and doc["generation"] >= 1, doc
        members = doc.get("members")
        assert isinstance(members, list) and len(members) == 1, doc
        m = members[0]
        assert m.get("client_id") == "lag-client" and m.get("member_id") == doc.get("leader"), doc
        assert m.get("client_host") and "127.0.0.1" in m["client_host"], m
        assert m.get("group_instance_id") is None, m
        assert [(a["topic"], sorted(a["partitions"])) for a in m.get("assignment") or []] == [(t, [0, 1, 2])], m

        def offsets(d):
            return {o["partition"]: o for o in d.get("offsets") or [] if o.get("topic") == t}

        offs = offsets(doc)
        assert sorted(offs) == [0, 1, 2], doc
        for p, o in offs.items():
            assert (o["committed_offset"], o["end_offset"], o["lag"]) == (10, 10, 0), o
        assert doc.get("lag") == 0, doc

        # Produce more; nothing more is committed: lag = end offset - committed offset.
        produce(b, t, {0: 5, 1: 2})
        ends = end_offsets(b.bootstrap, t, range(3))
        com = committed(b.bootstrap, grp, t, range(3))
        assert ends == {0: 15, 1: 12, 2: 10} and com == {0: 10, 1: 10, 2: 10}, (ends, com)
        doc = g.http_group(b, grp)
        offs = offsets(doc)
        for p in range(3):
            o = offs[p]
            assert (o["committed_offset"], o["end_offset"], o["lag"]) == (com[p], ends[p], ends[p] - com[p]), o
        assert doc.get("lag") == 7, doc

        ds = g.http_group(b, g_simple)
        assert ds.get("state") == "Empty" and ds.get("members") == [], ds
        o = offsets(ds)[0]
        assert (o["committed_offset"], o["end_offset"], o["lag"], o.get("metadata")) == (3, 15, 12, "x"), o
        assert ds.get("lag") == 12, ds

        ids = g.http_group_ids(b)
        assert grp in ids and g_simple in ids, ids
        status, err = b.http("GET", "/v1/groups/" + unique("no-such-group"))
        assert status == 404 and isinstance(err, dict) and "error" in err, (status, err)

        s = g.metrics(b)
        assert (g.metric(s, "sluice_groups") or 0) >= 2, [x for x in s if x[0] == "sluice_groups"]
        assert g.metric(s, "sluice_group_lag", group=grp, topic=t) == 7, [x for x in s if x[0] == "sluice_group_lag"]
        assert g.metric(s, "sluice_group_lag", group=g_simple, topic=t) == 12
        reb = sum(v for n, lab, v in s if n == "sluice_group_rebalances_total")
        assert reb >= 1, "sluice_group_rebalances_total: %r" % [x for x in s if x[0] == "sluice_group_rebalances_total"]
    finally:
        act.close()


# ---- restarts -----------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_restart_and_crash_keep_every_committed_offset(group_broker):
    b = group_broker
    t = unique("tr")
    b.create_topic(t, partitions=4)
    produce(b, t, {p: 5 for p in range(4)})
    want = {}
    for i in range(30):
        grp = "rs-%s-%02d" % (t, i)
        offs = {p: (i * 10 + p, "meta-%d-%d" % (i, p)) for p in range(4) if (i + p) % 3}
        simple_commit(b, grp, {t: offs}, version=i % 9)  # OffsetCommit v0 to v8
        want[grp] = {(t, p): v for p, v in offs.items()}
    # Overwrite: the last commit wins.
    simple_commit(b, "rs-%s-00" % t, {t: {1: (77, "again")}})
    want["rs-%s-00" % t][(t, 1)] = (77, "again")
    # A real consumer's commit.
    g_real = unique("g-real")
    act = Active(b, t, g_real)
    try:
        act.wait_assigned(4)
        act.consume(20)
        act.c.commit(asynchronous=False)
    finally:
        act.close()
    want[g_real] = {(t, p): (5, "") for p in range(4)}

    def check(when):
        for grp, exp in want.items():
            got = fetch_all(b, grp)
            assert got == exp, "%s: offsets of %s are %r, committed %r" % (when, grp, got, exp)
        # OffsetFetch v8 (and v9 where advertised): every group in one request, all
        # topics (null) or named.
        with conn(b) as c:
            top = c.api_versions(3)["apis"][g.OFFSET_FETCH][1]
        assert top >= 8, "OffsetFetch only up to v%d" % top
        for v in range(8, min(top, 9) + 1):
            req = {grp: None for grp in want}
            req[g_real] = {t: [0, 1, 2, 3]}
            with conn(b) as c:
                res = g.decode_offset_fetch_groups(c.request(g.OFFSET_FETCH, v, g.offset_fetch_groups_request(v, req)))
            assert sorted(res) == sorted(want), "%s: OffsetFetch v%d answered for %r" % (when, v, sorted(res))
            for grp, exp in want.items():
                got = {tp: (o, m) for tp, (o, m, e) in res[grp]["offsets"].items() if not e}
                assert res[grp]["error_code"] == 0 and got == exp, "%s: v%d %s: %r, want %r" % (
                    when, v, grp, res[grp], exp)
        assert committed(b.bootstrap, g_real, t, range(4)) == {p: 5 for p in range(4)}

    check("before restart")
    b.restart()
    check("after a restart")
    a = kp_admin(b)
    try:
        got = a.list_consumer_group_offsets("rs-%s-00" % t)
        assert {(tp.topic, tp.partition): (v.offset, v.metadata) for tp, v in got.items()} == want["rs-%s-00" % t]
        assert g_real in dict(a.list_consumer_groups())
    finally:
        a.close()
    # Acknowledged commits survive SIGKILL too.
    simple_commit(b, "rs-%s-05" % t, {t: {0: (1234, "after-restart")}})
    want["rs-%s-05" % t][(t, 0)] = (1234, "after-restart")
    b.kill9()
    b.start()
    check("after kill -9")


# ---- DeleteGroups and OffsetDelete --------------------------------------------------------------


@pytest.mark.timeout(90)
def test_delete_groups_empty_ok_non_empty_refused(group_broker):
    b = group_broker
    t = unique("td")
    b.create_topic(t, partitions=2)
    g_empty, g_active = unique("g-empty"), unique("g-busy")
    simple_commit(b, g_empty, {t: {0: (4, "e"), 1: (2, "")}})
    act = Active(b, t, g_active)
    closed = False
    try:
        act.wait_assigned(2)
        act.c.commit(offsets=[TopicPartition(t, 0, 1)], asynchronous=False)
        a = kp_admin(b)
        try:
            res = dict(a.delete_consumer_groups([g_empty, g_active]))
            assert res[g_empty].errno == 0, res
            assert res[g_active].errno == g.NON_EMPTY_GROUP, "deleting a group with a member: %r" % res
            assert fetch_all(b, g_empty) == {}, "offsets of a deleted group are still there"
            assert committed(b.bootstrap, g_empty, t, [0, 1]) == {0: None, 1: None}
            groups = dict(a.list_consumer_groups())
            assert g_empty not in groups and g_active in groups, groups
            assert fetch_all(b, g_active) == {(t, 0): (1, "")}, "the refused delete changed offsets"
            with conn(b) as c:
                r = c.delete_groups([unique("g-never")], version=1)
                assert list(r.values()) == [g.GROUP_ID_NOT_FOUND], r
            # Once its last member leaves, the group is empty and can go.
            act.close()
            closed = True
            wait_until(lambda: dict(a.list_consumer_groups()).get(g_active) is not None and
                       a.describe_consumer_groups([g_active])[0].state == "Empty", 15, "the group to be empty")
            res = dict(a.delete_consumer_groups([g_active]))
            assert res[g_active].errno == 0, res
            assert fetch_all(b, g_active) == {}
        finally:
            a.close()
    finally:
        if not closed:
            act.close()
    # A deleted group's name can be used again from scratch.
    simple_commit(b, g_empty, {t: {1: (8, "")}})
    assert fetch_all(b, g_empty) == {(t, 1): (8, "")}


@pytest.mark.timeout(60)
def test_offset_delete(group_broker):
    b = group_broker
    t, t2 = unique("to"), unique("to2")
    b.create_topic(t, partitions=2)
    b.create_topic(t2, partitions=1)
    grp = unique("g-od")
    simple_commit(b, grp, {t: {0: (5, ""), 1: (6, "")}, t2: {0: (7, "")}})
    with conn(b) as c:
        r = c.offset_delete(grp, {t: [0]})
        assert r["error_code"] == 0 and r["partitions"] == {(t, 0): 0}, r
    assert fetch_all(b, grp) == {(t, 1): (6, ""), (t2, 0): (7, "")}
    with conn(b) as c:
        r = c.offset_delete(unique("g-none"), {t: [0]})
        assert r["error_code"] == g.GROUP_ID_NOT_FOUND, r
    # A group whose members subscribe to the topic keeps its offsets for it.
    busy = unique("g-od-busy")
    act = Active(b, t, busy)
    try:
        act.wait_assigned(2)
        act.c.commit(offsets=[TopicPartition(t, 0, 1)], asynchronous=False)
        with conn(b) as c:
            r = c.offset_delete(busy, {t: [0]})
        assert r["error_code"] == 0 and r["partitions"] == {(t, 0): g.GROUP_SUBSCRIBED_TO_TOPIC}, r
        assert fetch_all(b, busy) == {(t, 0): (1, "")}
    finally:
        act.close()


# ---- FindCoordinator ------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_find_coordinator_all_versions(group_broker):
    b = group_broker
    with conn(b) as c:
        for v in range(0, 5):
            keys = ["fc-a", "fc-b"] if v >= 4 else "fc-a"
            r = c.find_coordinator(keys, version=v)
            assert r["error_code"] == 0, (v, r)
            assert (r["host"], r["port"]) == ("127.0.0.1", b.kafka_port), (v, r)
            if v >= 4:
                assert [x["key"] for x in r["coordinators"]] == keys, r
                assert all(x["error_code"] == 0 and x["port"] == b.kafka_port for x in r["coordinators"]), r
        md = c.metadata(1)
        assert r["node_id"] in [x["node_id"] for x in md["brokers"]], (r, md["brokers"])


# ---- bad input --------------------------------------------------------------------------------------


def sync_all(conns_members, group, generation, leader, topic, partitions, version=3):
    """Send SyncGroup for every (conn, member_id); the leader carries a round-robin
    assignment. Returns {member_id: {topic: [partitions]}}."""
    members = [m for _, m in conns_members]
    assign = {m: [] for m in members}
    for i, p in enumerate(partitions):
        assign[members[i % len(members)]].append(p)
    cids = []
    for c, m in sorted(conns_members, key=lambda x: x[1] != leader):  # the leader first
        blobs = [(mm, g.assignment({topic: ps})) for mm, ps in assign.items()] if m == leader else []
        cid = c.send(g.SYNC_GROUP, version, g.sync_group_request(version, group, generation, m, assignments=blobs))
        cids.append((c, m, cid))
    out = {}
    for c, m, cid in cids:
        got, body = c.recv(15)
        assert got == cid
        r = g.decode_sync_group(version, body)
        assert r["error_code"] == 0, "SyncGroup %s: %s" % (m, g.ename(r["error_code"]))
        out[m] = g.decode_assignment(r["assignment"])
    return out


@pytest.mark.timeout(60)
def test_commit_stale_generation_and_unknown_member_change_nothing(group_broker):
    b = group_broker
    t = unique("tf")
    b.create_topic(t, partitions=2)
    grp, other = unique("g-fence"), unique("g-other")
    simple_commit(b, other, {t: {0: (11, "other-0"), 1: (12, "other-1")}})
    ca, cb = conn(b, 30), conn(b, 30)
    try:
        ja = g.join_member(ca, grp, [t], version=5)
        assert ja["error_code"] == 0, g.ename(ja["error_code"])
        a_id, gen1 = ja["member_id"], ja["generation"]
        assert ja["leader"] == a_id and gen1 >= 1, ja
        got = sync_all([(ca, a_id)], grp, gen1, a_id, t, [0, 1])
        assert got[a_id] == {t: [0, 1]}
        r = ca.offset_commit(5, grp, {t: {0: (5, "good")}}, generation=gen1, member_id=a_id)
        assert r == {(t, 0): 0}, r

        # A second member joins: the first learns of the rebalance from its heartbeat and
        # rejoins; the generation moves on.
        jb0 = g.decode_join_group(5, cb.request(g.JOIN_GROUP, 5, g.join_group_request(
            5, grp, protocols=(("range", g.subscription([t])),))))
        assert jb0["error_code"] == g.MEMBER_ID_REQUIRED and jb0["member_id"], jb0
        b_id = jb0["member_id"]
        cid_b = cb.send(g.JOIN_GROUP, 5, g.join_group_request(5, grp, member_id=b_id,
                                                              protocols=(("range", g.subscription([t])),)))
        hb = wait_until(lambda: ca.heartbeat(3, grp, gen1, a_id)["error_code"] or None, 10,
                        "the heartbeat to report the rebalance", interval=0.1)
        assert hb == g.REBALANCE_IN_PROGRESS, g.ename(hb)
        ja2 = g.join_member(ca, grp, [t], version=5, member_id=a_id)
        got_b, body = cb.recv(15)
        assert got_b == cid_b
        jb = g.decode_join_group(5, body)
        assert ja2["error_code"] == 0 and jb["error_code"] == 0, (ja2, jb)
        gen2 = ja2["generation"]
        assert gen2 > gen1 and jb["generation"] == gen2, (gen1, ja2, jb)
        assert ja2["leader"] == jb["leader"] and ja2["leader"] in (a_id, b_id)
        leader = ja2["leader"]
        leader_join = ja2 if leader == a_id else jb
        assert sorted(m["member_id"] for m in leader_join["members"]) == sorted([a_id, b_id]), leader_join
        got = sync_all([(ca, a_id), (cb, b_id)], grp, gen2, leader, t, [0, 1])
        assert sorted(p for a in got.values() for p in a.get(t, [])) == [0, 1], got

        # Fenced: the old generation, an unknown member, a group-less commit to a live group.
        for v in (2, 5, 8):
            r = ca.offset_commit(v, grp, {t: {0: (999, "stale")}}, generation=gen1, member_id=a_id)
            assert r == {(t, 0): g.ILLEGAL_GENERATION}, "v%d stale generation: %r" % (v, r)
            r = ca.offset_commit(v, grp, {t: {1: (998, "who")}}, generation=gen2, member_id="not-a-member")
            assert r == {(t, 1): g.UNKNOWN_MEMBER_ID}, "v%d unknown member: %r" % (v, r)
        r = ca.offset_commit(2, grp, {t: {0: (997, "simple")}})
        assert r == {(t, 0): g.UNKNOWN_MEMBER_ID}, "a group-less commit to a group with members: %r" % r
        assert ca.heartbeat(3, grp, gen1, a_id)["error_code"] == g.ILLEGAL_GENERATION
        assert ca.heartbeat(3, grp, gen2, "not-a-member")["error_code"] == g.UNKNOWN_MEMBER_ID
        assert ca.heartbeat(3, grp, gen2, a_id)["error_code"] == 0

        assert fetch_all(b, grp) == {(t, 0): (5, "good")}, "a fenced commit changed the group's offsets"
        assert fetch_all(b, other) == {(t, 0): (11, "other-0"), (t, 1): (12, "other-1")}, \
            "a fenced commit changed another group's offsets"
        # The current generation still commits.
        r = cb.offset_commit(8, grp, {t: {1: (8, "b")}}, generation=gen2, member_id=b_id)
        assert r == {(t, 1): 0}, r
        assert fetch_all(b, grp) == {(t, 0): (5, "good"), (t, 1): (8, "b")}
        # Both leave in one batched LeaveGroup (v3+); the group is then empty.
        lv = ca.leave_group(3, grp, [(a_id, None), (b_id, None)])
        assert lv["error_code"] == 0 and [m["error_code"] for m in lv["members"]] == [0, 0], lv
        wait_until(lambda: ca.describe_groups([grp])[grp]["state"] == "Empty", 5, "the group to be empty")
    finally:
        ca.close()
        cb.close()
    assert_serving(b, "after fenced commits")


@pytest.mark.timeout(60)
def test_static_member_replaced_old_id_is_fenced(group_broker):
    b = group_broker
    t = unique("tsf")
    b.create_topic(t, partitions=2)
    grp = unique("g-sfence")
    with conn(b, 30) as c1, conn(b, 30) as c2:
        j1 = g.join_member(c1, grp, [t], version=5, instance_id="inst-1")
        assert j1["error_code"] == 0, g.ename(j1["error_code"])
        old, gen = j1["member_id"], j1["generation"]
        sync_all([(c1, old)], grp, gen, old, t, [0, 1])
        r = c1.offset_commit(7, grp, {t: {0: (3, "")}}, generation=gen, member_id=old, instance_id="inst-1")
        assert r == {(t, 0): 0}, r
        # The same instance comes back with a new member id (a restart): it takes over
        # at the same generation, and the old member id is fenced.
        j2 = g.join_member(c2, grp, [t], version=5, instance_id="inst-1")
        assert j2["error_code"] == 0 and j2["member_id"] != old, j2
        assert j2["generation"] == gen, "a static member's restart moved the generation: %r" % j2
        s2 = g.decode_sync_group(3, c2.request(g.SYNC_GROUP, 3, g.sync_group_request(
            3, grp, gen, j2["member_id"], instance_id="inst-1")))
        assert s2["error_code"] == 0 and g.decode_assignment(s2["assignment"]) == {t: [0, 1]}, s2
        hb = c1.heartbeat(3, grp, gen, old, instance_id="inst-1")
        assert hb["error_code"] == g.FENCED_INSTANCE_ID, g.ename(hb["error_code"])
        r = c1.offset_commit(7, grp, {t: {0: (99, "")}}, generation=gen, member_id=old, instance_id="inst-1")
        assert r == {(t, 0): g.FENCED_INSTANCE_ID}, r
        assert c2.heartbeat(3, grp, gen, j2["member_id"], instance_id="inst-1")["error_code"] == 0
        assert fetch_all(b, grp) == {(t, 0): (3, "")}


@pytest.mark.timeout(60)
def test_heartbeat_and_sync_for_unknown_group(group_broker):
    b = group_broker
    with conn(b) as c:
        for v in range(0, 5):
            r = c.heartbeat(v, unique("g-ghost"), 1, "ghost-member", instance_id="x" if v >= 3 else None)
            assert r["error_code"] in (g.UNKNOWN_MEMBER_ID, g.GROUP_ID_NOT_FOUND), "Heartbeat v%d: %s" % (
                v, g.ename(r["error_code"]))
        r = c.sync_group(3, unique("g-ghost"), 1, "ghost-member")
        assert r["error_code"] in (g.UNKNOWN_MEMBER_ID, g.GROUP_ID_NOT_FOUND), g.ename(r["error_code"])
        r = c.leave_group(1, unique("g-ghost"), [("ghost-member", None)])
        assert r["error_code"] in (g.UNKNOWN_MEMBER_ID, g.GROUP_ID_NOT_FOUND), g.ename(r["error_code"])
        r = c.offset_fetch(3, unique("g-ghost"), None)
        assert r["error_code"] == 0 and r["offsets"] == {}, r
    assert_serving(b, "after heartbeats for unknown groups")


@pytest.mark.timeout(60)
def test_join_with_2mib_protocol_metadata_is_refused(group_broker):
    b = group_broker
    t = unique("tbig")
    b.create_topic(t, partitions=1)
    big = g.subscription([t], user_data=b"\xab" * (2 << 20))
    grp = unique("g-big")
    with conn(b, 30) as c:
        # v1: no member-id round trip; the only correct answers are a join or an error.
        r = c.join_group(1, grp, protocols=(("range", big),))
        assert r["error_code"] != 0, "a 2 MiB JoinGroup was accepted: generation %r" % r["generation"]
        print("JoinGroup v1 with 2 MiB metadata: %s" % g.ename(r["error_code"]))
        # v5 and flexible v7: the member id first (KIP-394), then the big join with it.
        for v, name in ((5, grp), (7, unique("g-big7"))):
            r0 = c.join_group(v, name, protocols=(("range", g.subscription([t])),))
            mid = r0["member_id"] if r0["error_code"] == g.MEMBER_ID_REQUIRED else ""
            r = c.join_group(v, name, member_id=mid, protocols=(("range", big), ("roundrobin", big)))
            assert r["error_code"] not in (0, g.MEMBER_ID_REQUIRED), "v%d: %s" % (v, g.ename(r["error_code"]))
        # Nothing of it was kept as a member.
        d = c.describe_groups([grp])[grp]
        assert d["members"] == [] or all(len(m["metadata"] or b"") < (1 << 20) for m in d["members"]), \
            "an oversized member was stored"
    # The group still works with normal metadata afterwards.
    with conn(b, 30) as c:
        j = g.join_member(c, grp, [t], version=5)
        assert j["error_code"] == 0, g.ename(j["error_code"])
    assert_serving(b, "after a 2 MiB JoinGroup")


@pytest.mark.timeout(150)
def test_ten_thousand_groups_commit_once_and_read_back(group_broker):
    b = group_broker
    t = unique("t10k")
    P = 8
    b.create_topic(t, partitions=P)
    n = 10000
    prefix = unique("g10k")
    names = ["%s-%05d" % (prefix, i) for i in range(n)]
    t0 = time.monotonic()
    reqs = [(g.OFFSET_COMMIT, 2, g.offset_commit_request(2, names[i], {t: {i % P: (i * 3 + 1, "m%d" % i)}}))
            for i in range(n)]
    res = g.pipelined(b.kafka_port, reqs, conns=4, window=128, timeout=120)
    t_commit = time.monotonic() - t0
    bad = [(names[i], r) for i, r in ((i, g.decode_offset_commit(2, body)) for i, body in enumerate(res))
           if r != {(t, i % P): 0}]
    assert not bad, "%d of %d commits failed, e.g. %r" % (len(bad), n, bad[:3])
    assert b.alive()

    t1 = time.monotonic()
    reqs = [(g.OFFSET_FETCH, 1, g.offset_fetch_request(1, names[i], {t: [i % P, (i + 1) % P]})) for i in range(n)]
    res = g.pipelined(b.kafka_port, reqs, conns=4, window=128, timeout=120)
    t_fetch = time.monotonic() - t1
    wrong = []
    for i, body in enumerate(res):
        got = g.decode_offset_fetch(1, body)["offsets"]
        want = {(t, i % P): (i * 3 + 1, "m%d" % i, 0), (t, (i + 1) % P): (-1, "", 0)}
        if got.get((t, (i + 1) % P), (0, 0, 0))[1] is None:  # no metadata: "" or null
            got[(t, (i + 1) % P)] = (got[(t, (i + 1) % P)][0], "", got[(t, (i + 1) % P)][2])
        if got != want:
            wrong.append((names[i], got))
    assert not wrong, "%d of %d groups read back wrong, e.g. %r" % (len(wrong), n, wrong[:3])
    print("10,000 groups: commits %.1f s (%.0f/s), fetches %.1f s" % (t_commit, n / t_commit, t_fetch))

    # Null topics (all partitions) for a sample, and every group listed.
    with conn(b, 60) as c:
        for i in range(0, n, 997):
            assert fetch_all(b, names[i], version=2) == {(t, i % P): (i * 3 + 1, "m%d" % i)}
        lg = c.list_groups(0)
        assert lg["error_code"] == 0
        listed = {x["group_id"] for x in lg["groups"]}
        missing = [x for x in names if x not in listed]
        assert not missing, "%d groups missing from ListGroups, e.g. %r" % (len(missing), missing[:3])
    assert_serving(b, "after 10,000 groups")
