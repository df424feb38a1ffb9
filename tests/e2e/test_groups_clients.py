"""Consumer groups with kafka-python 2.0.2 and kafkajs 2.2.4, end to end (issue 3): two
members in one group split the partitions, read every record once and commit; the
committed offsets (read back through OffsetFetch with confluent-kafka) are the end offsets.
"""

import collections
import json
import os
import shutil
import threading
import time

import pytest
from kafka import KafkaConsumer

from groups_util import committed, end_offsets, group_broker, produce_values, wait_until  # noqa: F401
from harness import REPO_ROOT, run, unique

NODE_PATH = os.path.join(REPO_ROOT, "tests", ".deps", "node_modules")
PAIR_JS = os.path.join(REPO_ROOT, "tests", "e2e", "js", "group_pair.js")


def check_exactly_once(records, values, owners):
    """records: [(member, partition, offset, value)]."""
    count = collections.Counter(r[3] for r in records)
    dups = {v: n for v, n in count.items() if n > 1}
    assert not dups, "records read more than once: %d, e.g. %r" % (len(dups), list(dups.items())[:5])
    want = set(values)
    assert set(count) == want, "read %d distinct records, produced %d; missing %r" % (
        len(count), len(want), sorted(want - set(count))[:5])
    for m, p, o, v in records:
        assert p in owners[m], "member %d read partition %d, but owns %s" % (m, p, sorted(owners[m]))
    # Within a partition, offsets arrive in order with no gap.
    per = collections.defaultdict(list)
    for m, p, o, v in records:
        per[p].append(int(o))
    for p, offs in per.items():
        assert offs == list(range(len(offs))), "partition %d offsets %r" % (p, offs[:20])


@pytest.mark.timeout(120)
def test_kafka_python_two_members_commit(group_broker):
    b = group_broker
    P, PER = 4, 50
    topic, group = unique("kpg"), unique("g-kp")
    b.create_topic(topic, partitions=P)
    lock = threading.Lock()
    stop = threading.Event()
    views = [None, None]
    records = []
    errors = []
    commits = [0, 0]

    def member(i):
        try:
            c = KafkaConsumer(topic, bootstrap_servers=b.bootstrap, group_id=group, client_id="kp-%d" % i,
                              enable_auto_commit=False, auto_offset_reset="earliest",
                              session_timeout_ms=10000, heartbeat_interval_ms=500, request_timeout_ms=30000,
                              fetch_max_wait_ms=100, max_poll_records=20)
        except Exception as e:  # noqa: BLE001 - reported by the test
            errors.append((i, repr(e)))
            return
        try:
            while not stop.is_set():
                recs = c.poll(timeout_ms=200)
                got = [(i, r.partition, r.offset, r.value.decode()) for rs in recs.values() for r in rs]
                if got:
                    c.commit()  # synchronous: the positions after what poll returned
                    commits[i] += 1
                with lock:
                    records.extend(got)
                    views[i] = frozenset(tp.partition for tp in c.assignment())
        except Exception as e:  # noqa: BLE001
            errors.append((i, repr(e)))
        finally:
            c.close(autocommit=False)

    threads = [threading.Thread(target=member, args=(i,), daemon=True) for i in range(2)]
    for t in threads:
        t.start()
    try:
        state = {"v": None, "since": 0.0}

        def settled():
            assert not errors, errors
            with lock:
                v = tuple(views)
            ok = all(v) and not (v[0] & v[1]) and sorted(v[0] | v[1]) == list(range(P))
            if not ok:
                state["v"] = None
                return False
            if v != state["v"]:
                state["v"], state["since"] = v, time.monotonic()
            return v if time.monotonic() - state["since"] >= 1.0 else False

        owners = wait_until(settled, 45, "two kafka-python members to split %d partitions (views %r)" % (P, views))
        values = produce_values(b.bootstrap, topic, {p: PER for p in range(P)}, "kp")
        wait_until(lambda: len(set(r[3] for r in records)) >= P * PER or errors, 40,
                   "%d records (have %d)" % (P * PER, len(records)))
        time.sleep(1.0)
        assert not errors, errors
        with lock:
            assert tuple(views) == owners, "the group rebalanced while consuming: %r -> %r" % (owners, views)
            recs = list(records)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not errors, errors
    check_exactly_once(recs, [v.decode() for v in values], dict(enumerate(owners)))
    assert all(commits), "a member never committed: %r" % commits
    got = committed(b.bootstrap, group, topic, range(P))
    assert got == end_offsets(b.bootstrap, topic, range(P)) == {p: PER for p in range(P)}, got


@pytest.mark.skipif(shutil.which("node") is None or not os.path.isdir(os.path.join(NODE_PATH, "kafkajs")),
                    reason="node or kafkajs missing: run scripts/deps.sh test")
@pytest.mark.timeout(120)
def test_kafkajs_two_members_commit(group_broker):
    b = group_broker
    P, PER = 4, 25
    topic, group = unique("kjsg"), unique("g-kjs")
    b.create_topic(topic, partitions=P)
    env = dict(os.environ, NODE_PATH=NODE_PATH, KAFKAJS_NO_PARTITIONER_WARNING="1")
    r = run(["node", PAIR_JS, b.bootstrap, topic, group, str(P), str(PER)], timeout=110, env=env)
    assert r.returncode == 0, "group_pair.js exited %d\nstderr: %s" % (
        r.returncode, r.stderr.decode(errors="replace")[-4000:])
    out = json.loads(r.stdout.decode().strip().splitlines()[-1])
    owners = {i: set(a) for i, a in enumerate(out["assignments"])}
    assert all(owners.values()) and not (owners[0] & owners[1]) and sorted(owners[0] | owners[1]) == list(range(P))
    recs = [(m["m"], m["p"], m["o"], m["v"]) for m in out["received"]]
    values = ["js-%d-%d" % (p, j) for p in range(P) for j in range(PER)]
    check_exactly_once(recs, values, owners)
    # Member 0 committed through autoCommit, member 1 with commitOffsets() per message.
    got = committed(b.bootstrap, group, topic, range(P))
    assert got == end_offsets(b.bootstrap, topic, range(P)) == {p: PER for p in range(P)}, got
