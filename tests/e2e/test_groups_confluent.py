"""Consumer groups with confluent-kafka 1.7 (librdkafka 2.0.2), end to end (issue 3).

Every member is its own process (group_member.py) that commits synchronously after each
message and reports its rebalance callbacks and messages as JSON lines, so that a member
can be killed with SIGKILL or restarted like a real one.

- range: three members on six partitions get two each, cover all six, and consume every
  record exactly once; the committed offsets end at the end offsets.
- cooperative-sticky: the same, then a fourth member joins, and the partitions that do
  not move are never revoked (the callbacks get incremental lists).
- kill -9 of a member: its partitions move to the survivors within session.timeout.ms
  plus slack, and nothing is lost or read twice.
- static membership (group.instance.id): a member that restarts within the session
  timeout gets its partitions back, and the other members see no rebalance.
"""

import collections
import time

import pytest

from groups_util import (  # noqa: F401 - group_broker is a fixture
    MemberProc,
    committed,
    group_broker,
    http_group,
    partitioned,
    produce_values,
    stop_all,
    wait_until,
)
from harness import unique

P = 6
SETTLE_S = 45


def settle(members, partitions=range(P), timeout=SETTLE_S, what="the group to settle", stable_s=1.0):
    """Wait until the members' assignments split the partitions exactly, and stay the
    same for stable_s seconds (a cooperative rebalance takes more than one round)."""
    state = {"views": None, "since": 0.0}

    def check():
        v = partitioned(members, list(partitions))
        now = time.monotonic()
        if not v:
            state["views"] = None
            return False
        if v != state["views"]:
            state["views"], state["since"] = v, now
        return v if now - state["since"] >= stable_s else False

    try:
        return wait_until(check, timeout, what)
    except AssertionError as e:
        raise AssertionError("%s\n%s" % (e, "\n".join(m.describe() for m in members)))


def wait_consumed(members, values, timeout=40):
    want = set(v.decode() for v in values)

    def done():
        got = set()
        for m in members:
            got.update(e["v"] for e in m.messages())
        return want <= got

    try:
        wait_until(done, timeout, "%d records to be consumed" % len(want), interval=0.1)
    except AssertionError as e:
        got = collections.Counter(e2["v"] for m in members for e2 in m.messages())
        missing = sorted(want - set(got))
        raise AssertionError("%s; %d missing, e.g. %r\n%s" % (e, len(missing), missing[:5],
                                                             "\n".join(m.describe() for m in members)))


def assert_exactly_once(members, values, owners=None):
    """Every value read once over all members; with owners {member: partitions}, each
    record came to the member that owned its partition."""
    count = collections.Counter()
    for m in members:
        for e in m.messages():
            count[e["v"]] += 1
            if owners is not None and m in owners:
                assert e["p"] in owners[m], "member %s read partition %d it does not own %s" % (
                    m.name, e["p"], sorted(owners[m]))
    want = set(v.decode() for v in values)
    dups = {v: n for v, n in count.items() if n > 1}
    assert not dups, "records read more than once: %d, e.g. %r" % (len(dups), list(dups.items())[:5])
    assert set(count) == want, "read %d records, produced %d; missing %r extra %r" % (
        len(count), len(want), sorted(want - set(count))[:5], sorted(set(count) - want)[:5])


def no_errors(members):
    for m in members:
        errs = m.errors()
        assert not errs, "member %s reported errors: %r" % (m.name, errs[:5])


def assert_committed_at_end(broker, group, topic, per_partition):
    got = committed(broker.bootstrap, group, topic, range(P))
    assert got == {p: per_partition for p in range(P)}, "committed offsets %r, want %d everywhere" % (
        got, per_partition)


def members_of(broker, topic, group, n, conf, start=0):
    return [MemberProc(broker.bootstrap, topic, group, "m%d" % (start + i), conf=conf) for i in range(n)]


@pytest.mark.timeout(120)
def test_range_three_members_exactly_once(group_broker):
    b = group_broker
    topic, group = unique("gr"), unique("g-range")
    b.create_topic(topic, partitions=P)
    members = members_of(b, topic, group, 3, {"partition.assignment.strategy": "range"})
    try:
        views = settle(members)
        assert sorted(len(v) for v in views) == [2, 2, 2], "range over 3 members: %r" % views
        marks = [len(m.rebalance_events()) for m in members]
        values = produce_values(b.bootstrap, topic, {p: 50 for p in range(P)}, "r")
        wait_consumed(members, values)
        time.sleep(1.0)  # room for a duplicate to show up
        assert_exactly_once(members, values, owners=dict(zip(members, views)))
        no_errors(members)
        # A stable group of three with nothing changing does not rebalance again.
        for m, mark in zip(members, marks):
            assert m.rebalance_events()[mark:] == [], "member %s rebalanced while stable: %r" % (
                m.name, m.rebalance_events()[mark:])
    finally:
        stop_all(members)
    for m in members:
        assert m.proc.returncode == 0, m.describe()
    assert_committed_at_end(b, group, topic, 50)


@pytest.mark.timeout(150)
def test_cooperative_sticky_fourth_member_revokes_only_what_moves(group_broker):
    b = group_broker
    topic, group = unique("gc"), unique("g-coop")
    b.create_topic(topic, partitions=P)
    conf = {"partition.assignment.strategy": "cooperative-sticky"}
    members = members_of(b, topic, group, 3, conf)
    try:
        before = settle(members)
        assert sorted(len(v) for v in before) == [2, 2, 2], "cooperative-sticky over 3: %r" % before
        phase1 = produce_values(b.bootstrap, topic, {p: 30 for p in range(P)}, "c1")
        wait_consumed(members, phase1)
        marks = [len(m.snapshot()) for m in members]

        fourth = MemberProc(b.bootstrap, topic, group, "m3", conf=conf)
        members.append(fourth)
        after = settle(members, what="the group of four to settle")
        assert fourth.assignment(), "the fourth member got nothing"
        assert max(len(v) for v in after) - min(len(v) for v in after) <= 1, "unbalanced: %r" % after

        moved = set()
        for m, mark, old, new in zip(members[:3], marks, before, after[:3]):
            evs = [e for e in m.snapshot()[mark:] if e["ev"] in ("assign", "revoke", "lost")]
            revoked = set(p for e in evs if e["ev"] == "revoke" for p in e["parts"])
            assigned = set(p for e in evs if e["ev"] == "assign" for p in e["parts"])
            lost = [e for e in evs if e["ev"] == "lost"]
            kept = old & new
            assert not lost, "member %s lost partitions: %r" % (m.name, lost)
            assert revoked == set(old - new), (
                "member %s held %s and now %s, but its revoked set was %s (with cooperative-sticky only "
                "what moves is revoked); events %r" % (m.name, sorted(old), sorted(new), sorted(revoked), evs))
            assert not (revoked & kept), "member %s: kept partitions %s were revoked" % (m.name, sorted(kept))
            assert not (assigned & kept), (
                "member %s: kept partitions %s were assigned again (callbacks must be incremental): %r" % (
                    m.name, sorted(kept), evs))
            moved |= revoked
        assert moved, "no partition moved to the fourth member"
        assert moved == set(fourth.assignment()), "moved %s but the fourth member owns %s" % (
            sorted(moved), sorted(fourth.assignment()))

        phase2 = produce_values(b.bootstrap, topic, {p: 30 for p in range(P)}, "c2")
        wait_consumed(members, phase2)
        time.sleep(1.0)
        assert_exactly_once(members, phase1 + phase2)
        # Phase-2 records came to the owners of the settled group of four.
        owners = dict(zip(members, after))
        for m in members:
            for e in m.messages():
                if e["v"].startswith("c2-"):
                    assert e["p"] in owners[m], "member %s read %s from partition %d it does not own" % (
                        m.name, e["v"], e["p"])
        no_errors(members)
    finally:
        stop_all(members)
    assert_committed_at_end(b, group, topic, 60)


@pytest.mark.timeout(150)
def test_kill9_member_partitions_move_within_session_timeout(group_broker):
    b = group_broker
    topic, group = unique("gk"), unique("g-kill")
    b.create_topic(topic, partitions=P)
    session_ms = 6000
    slack_s = 5.0
    conf = {"partition.assignment.strategy": "range", "session.timeout.ms": session_ms,
            "heartbeat.interval.ms": 500}
    members = members_of(b, topic, group, 3, conf)
    try:
        settle(members)
        a = produce_values(b.bootstrap, topic, {p: 20 for p in range(P)}, "k1")
        wait_consumed(members, a)

        victim = members[1]
        survivors = [members[0], members[2]]
        victim_parts = set(victim.assignment())
        assert victim_parts
        t0 = time.monotonic()
        victim.kill9()
        try:
            after = wait_until(lambda: partitioned(survivors, list(range(P))), session_ms / 1000.0 + 30,
                               "the survivors to take over all partitions")
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, "\n".join(m.describe() for m in survivors)))
        took = time.monotonic() - t0
        print("partitions moved %.2f s after kill -9 (session.timeout.ms=%d)" % (took, session_ms))
        assert took <= session_ms / 1000.0 + slack_s, (
            "the killed member's partitions moved after %.1f s; session.timeout.ms is %d ms (+%.0f s slack)" % (
                took, session_ms, slack_s))
        assert victim_parts <= (after[0] | after[1])
        assert sorted(len(v) for v in after) == [3, 3]

        bvals = produce_values(b.bootstrap, topic, {p: 20 for p in range(P)}, "k2")
        wait_consumed(survivors, bvals)
        time.sleep(1.0)
        # Every record once over all members: the victim had committed all it read.
        assert_exactly_once(members, a + bvals)
        for m, v in zip(survivors, after):
            for e in m.messages():
                if e["v"].startswith("k2-"):
                    assert e["p"] in v
        no_errors(survivors)
    finally:
        stop_all(members)
    assert_committed_at_end(b, group, topic, 40)


@pytest.mark.timeout(150)
def test_static_member_restart_gets_same_partitions_without_rebalance(group_broker):
    b = group_broker
    topic, group = unique("gs"), unique("g-static")
    b.create_topic(topic, partitions=P)
    session_ms = 10000

    def conf(i):
        return {"partition.assignment.strategy": "range", "group.instance.id": "%s-inst-%d" % (group, i),
                "session.timeout.ms": session_ms, "heartbeat.interval.ms": 500}

    members = [MemberProc(b.bootstrap, topic, group, "s%d" % i, conf=conf(i)) for i in range(3)]
    new = None
    try:
        views = settle(members)
        time.sleep(1.5)  # any late rebalance would show up now, before the marks
        views = settle(members)
        # Restart a member that is not the leader when the broker says which is (the
        # generation is checked at the end, after what the clients see).
        status, g0 = b.http("GET", "/v1/groups/" + group)
        g0 = g0 if status == 200 and isinstance(g0, dict) else {}
        target = 2
        leader = g0.get("leader")
        by_member = {m.get("member_id"): m.get("group_instance_id") for m in g0.get("members") or []}
        leader_inst = by_member.get(leader)
        for i in (2, 1, 0):
            if leader_inst != "%s-inst-%d" % (group, i):
                target = i
                break
        marks = [len(m.rebalance_events()) for m in members]
        old = members[target]
        old_parts = set(views[target])

        t0 = time.monotonic()
        rc = old.stop()
        assert rc == 0, old.describe()
        new = MemberProc(b.bootstrap, topic, group, "s%d-again" % target, conf=conf(target))
        try:
            wait_until(lambda: new.assignment(), session_ms / 1000.0 + 10, "the restarted static member's assignment")
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, new.describe()))
        took = time.monotonic() - t0
        print("static member back with its partitions %.2f s after it stopped" % took)
        assert set(new.assignment()) == old_parts, "restarted static member got %s, had %s" % (
            sorted(new.assignment()), sorted(old_parts))
        assert took < session_ms / 1000.0, "the restart took %.1f s, longer than the session timeout" % took
        time.sleep(3.0)  # six heartbeat intervals: a rebalance would reach the others by now
        others = [m for i, m in enumerate(members) if i != target]
        for i, m in enumerate(members):
            if i == target:
                continue
            evs = m.rebalance_events()[marks[i]:]
            assert evs == [], "member %s saw a rebalance when a static member restarted: %r" % (m.name, evs)
        new_evs = new.rebalance_events()
        assert [e["ev"] for e in new_evs] == ["assign"], "restarted member's callbacks: %r" % new_evs

        vals = produce_values(b.bootstrap, topic, {p: 10 for p in range(P)}, "s")
        live = others + [new]
        wait_consumed(live, vals)
        time.sleep(0.5)
        owners = {m: set(views[i]) for i, m in enumerate(members) if i != target}
        owners[new] = old_parts
        assert_exactly_once(live, vals, owners=owners)
        no_errors(live)

        g1 = http_group(b, group)
        assert g0, "GET /v1/groups/%s failed before the restart" % group
        assert g1.get("generation") == g0.get("generation"), (
            "the generation moved from %r to %r on a static member's restart" % (
                g0.get("generation"), g1.get("generation")))
        insts = sorted(m.get("group_instance_id") for m in g1.get("members") or [])
        assert insts == sorted("%s-inst-%d" % (group, i) for i in range(3)), g1
    finally:
        stop_all(members + ([new] if new else []))
