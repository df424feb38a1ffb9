"""End-to-end tests with kafkajs 2.2.4 (Node): admin create/list/offsets, keyed produce
with headers in plain and GZIP batches, read back with confluent-kafka; and a consumer
group consume, which needs the group APIs."""

import json
import os
import shutil

import pytest

from harness import REPO_ROOT, run, unique
from test_confluent import consume_assigned

NODE_PATH = os.path.join(REPO_ROOT, "tests", ".deps", "node_modules")
SCRIPT = os.path.join(REPO_ROOT, "tests", "e2e", "js", "roundtrip.js")

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not os.path.isdir(os.path.join(NODE_PATH, "kafkajs")),
    reason="node or kafkajs missing: run scripts/deps.sh test")


def node(broker, topic, mode, timeout=90):
    env = dict(os.environ, NODE_PATH=NODE_PATH, KAFKAJS_NO_PARTITIONER_WARNING="1")
    r = run(["node", SCRIPT, broker.bootstrap, topic, mode], timeout=timeout, env=env)
    assert r.returncode == 0, "roundtrip.js %s exited %d\nstderr: %s\n--- broker log tail ---\n%s" % (
        mode, r.returncode, r.stderr.decode(errors="replace")[-4000:], broker.log_tail(30))
    return json.loads(r.stdout.decode().strip().splitlines()[-1])


def test_kafkajs_admin_produce(broker):
    topic = unique("kjs")
    sent = node(broker, topic, "produce")
    assert len(sent) == 20
    # Read back with another client: offsets per partition follow send order.
    got = consume_assigned(broker, topic, [0, 1], len(sent))
    by_pos = {(m.partition(), m.offset()): m for m in got}
    next_off = {0: 0, 1: 0}
    for s in sent:
        p = s["partition"]
        m = by_pos[(p, next_off[p])]
        next_off[p] += 1
        assert m.key() == s["key"].encode()
        assert m.value() == s["value"].encode()
        assert sorted(m.headers()) == sorted((k, v.encode()) for k, v in s["headers"].items())
    assert next_off == {0: 10, 1: 10}


def test_kafkajs_group_consume(broker):
    topic = unique("kjsg")
    sent = node(broker, topic, "produce")
    got = node(broker, topic, "consume", timeout=60)
    assert len(got) == len(sent)
    norm = lambda m: (m["partition"], m["key"], m["value"], sorted(m["headers"].items()))  # noqa: E731
    assert sorted(map(norm, got)) == sorted(map(norm, sent))
    # Within a partition, kafkajs delivers in offset order.
    for p in (0, 1):
        offs = [int(m["offset"]) for m in got if m["partition"] == p]
        assert offs == list(range(10))
