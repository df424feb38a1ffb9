"""End-to-end tests with kcat 1.7.1 (librdkafka 2.0.2): metadata listing, produce with
keys and headers, and consume from the beginning or from a given partition/offset."""

import json

from harness import run, unique


def kcat(broker, *args, input=None, timeout=60):
    """Run kcat against the broker; fails on a non-zero exit. Returns stdout bytes."""
    cmd = ["kcat", "-b", broker.bootstrap, "-q", "-m", "10", "-X", "socket.timeout.ms=10000"] + list(args)
    r = run(cmd, input=input, timeout=timeout)
    assert r.returncode == 0, "kcat %s exited %d\nstderr: %s\n--- broker log tail ---\n%s" % (
        " ".join(args), r.returncode, r.stderr.decode(errors="replace"), broker.log_tail(30))
    return r.stdout


def produce_lines(broker, topic, lines, *extra):
    data = "".join(l + "\n" for l in lines).encode()
    kcat(broker, "-P", "-t", topic, "-K:", *extra, input=data)


def test_metadata_lists_topic(broker):
    topic = unique("kcat-md")
    broker.create_topic(topic, partitions=3)
    out = json.loads(kcat(broker, "-L", "-J"))
    names = {t["topic"]: t for t in out["topics"]}
    assert topic in names, "topic missing from %r" % sorted(names)
    t = names[topic]
    assert sorted(p["partition"] for p in t["partitions"]) == [0, 1, 2]
    broker_ids = {b["id"] for b in out["brokers"]}
    assert len(out["brokers"]) == 1
    assert out["brokers"][0]["name"] == broker.bootstrap
    for p in t["partitions"]:
        assert p["leader"] in broker_ids
        assert "error" not in p or not p["error"]

    # Plain text listing of just this topic.
    text = kcat(broker, "-L", "-t", topic).decode()
    assert 'topic "%s" with 3 partitions:' % topic in text


def test_produce_keys_headers_then_consume(broker):
    topic = unique("kcat-kh")
    broker.create_topic(topic, partitions=1)
    lines = ["k%d:value %d with spaces" % (i, i) for i in range(20)] + ["kx:", "ky:ünïcødé"]
    produce_lines(broker, topic, lines, "-H", "h1=v1", "-H", "h2=second")

    out = kcat(broker, "-C", "-t", topic, "-o", "beginning", "-e",
               "-X", "fetch.wait.max.ms=100", "-f", "%k|%s|%h|%o\n").decode()
    got = out.splitlines()
    want = []
    for off, l in enumerate(lines):
        k, v = l.split(":", 1)
        want.append("%s|%s|h1=v1,h2=second|%d" % (k, v, off))
    assert got == want


def test_consume_partition_from_offset(broker):
    topic = unique("kcat-po")
    broker.create_topic(topic, partitions=2)
    produce_lines(broker, topic, ["a%d:p0-%d" % (i, i) for i in range(6)], "-p", "0")
    produce_lines(broker, topic, ["b%d:p1-%d" % (i, i) for i in range(4)], "-p", "1")

    out = kcat(broker, "-C", "-t", topic, "-p", "0", "-o", "2", "-e",
               "-X", "fetch.wait.max.ms=50", "-f", "%p %o %k %s\n").decode()
    assert out.splitlines() == ["0 %d a%d p0-%d" % (i, i, i) for i in range(2, 6)]

    out = kcat(broker, "-C", "-t", topic, "-p", "1", "-o", "beginning", "-e",
               "-f", "%p %o %k %s\n").decode()
    assert out.splitlines() == ["1 %d b%d p1-%d" % (i, i, i) for i in range(4)]

    # All partitions, with -e waiting for the end of both; -c bounds the count.
    out = kcat(broker, "-C", "-t", topic, "-o", "beginning", "-e", "-f", "%p %o\n").decode()
    assert sorted(out.splitlines()) == sorted(["0 %d" % i for i in range(6)] + ["1 %d" % i for i in range(4)])
    out = kcat(broker, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-c", "3", "-f", "%o\n").decode()
    assert out.splitlines() == ["0", "1", "2"]


def test_consume_negative_relative_offset(broker):
    topic = unique("kcat-rel")
    broker.create_topic(topic, partitions=1)
    produce_lines(broker, topic, ["k%d:v%d" % (i, i) for i in range(10)])
    # -o -3: the last three messages (a ListOffsets latest lookup on the client side).
    out = kcat(broker, "-C", "-t", topic, "-p", "0", "-o", "-3", "-e", "-f", "%o %s\n").decode()
    assert out.splitlines() == ["7 v7", "8 v8", "9 v9"]
