"""test_http_admin.py: the admin HTTP API (topics, health, metrics) end to end.

Each result is cross-checked through Kafka with a real client (confluent_kafka):
partition counts in Metadata, configs in DescribeConfigs, offsets from produced data.
Errors must be JSON {"error":{"code","message"}} with the documented codes.
"""

import json
import re
import socket
import time
import urllib.error
import urllib.request

import pytest

import kwire as k
from harness import unique

HEX_ID = re.compile(r"^[0-9a-f]{32}$|^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


def raw_http(broker, method, path, body=None, headers=None, timeout=10.0):
    """Like broker.http but also returns the response headers: (status, headers, text)."""
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(broker.admin_url + path, data=data, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode("utf-8", "replace")


def assert_error(status, resp, want_status, want_code=None, what=""):
    assert status == want_status, "%s: HTTP %d %r, want %d" % (what, status, resp, want_status)
    assert isinstance(resp, dict) and isinstance(resp.get("error"), dict), "%s: not an error object: %r" % (
        what, resp)
    err = resp["error"]
    assert isinstance(err.get("code"), str) and err["code"], "%s: error without code: %r" % (what, resp)
    assert isinstance(err.get("message"), str) and err["message"], "%s: error without message: %r" % (what, resp)
    if want_code is not None:
        assert err["code"] == want_code, "%s: error code %r, want %r" % (what, err["code"], want_code)


def partition_count(topic_json):
    p = topic_json.get("partitions")
    if isinstance(p, int) and not isinstance(p, bool):
        return p
    if isinstance(p, list):
        return len(p)
    raise AssertionError("topic JSON has no partition count: %r" % topic_json)


def partition_stats(topic_json):
    """The per-partition stats list: objects carrying high_watermark, wherever the JSON
    puts them (partitions: [...], stats: {partitions: [...]}, ...). Keyed by index."""
    found = []

    def walk(node):
        if isinstance(node, list) and node and all(isinstance(x, dict) and "high_watermark" in x for x in node):
            found.append(node)
            return
        if isinstance(node, dict) and node and all(
                isinstance(v, dict) and "high_watermark" in v and str(key).isdigit() for key, v in node.items()):
            found.append([dict(v, partition=int(key)) for key, v in sorted(node.items(), key=lambda kv: int(kv[0]))])
            return
        if isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(topic_json)
    assert found, "no per-partition stats with high_watermark in %r" % topic_json
    stats = found[0]
    out = {}
    for i, s in enumerate(stats):
        idx = s.get("partition", s.get("id", s.get("index", i)))
        out[idx] = s
    return out


def admin_client(broker):
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": broker.bootstrap})


def kafka_partitions(broker, topic):
    admin = admin_client(broker)
    md = admin.list_topics(topic=topic, timeout=10)
    t = md.topics[topic]
    assert t.error is None, "Kafka metadata for %s: %s" % (topic, t.error)
    return len(t.partitions)


def produce(broker, topic, counts):
    """Produce counts[p] records to partition p with confluent_kafka; return bytes sent."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": broker.bootstrap, "message.timeout.ms": 20000})
    errs = []
    total = 0
    for part, n in counts.items():
        for i in range(n):
            v = ("value-%d-%d" % (part, i)).encode() * 4
            total += len(v)
            p.produce(topic, value=v, partition=part, on_delivery=lambda e, m: e and errs.append(e))
    assert p.flush(20) == 0 and not errs, errs
    return total


# ---- health ----------------------------------------------------------------------------------


def test_healthz_and_readyz(broker):
    for path in ("/healthz", "/readyz"):
        status, _ = broker.http("GET", path)
        assert status == 200, "%s -> %d" % (path, status)


# ---- create ------------------------------------------------------------------------------------


def test_create_topic_returns_201_with_topic_json(broker):
    name = unique("http")
    body = {"name": name, "partitions": 3,
            "storage": {"mode": "persistent", "retention_ms": 3600000, "retention_bytes": 1 << 30},
            "config": {"cleanup.policy": "delete"}}
    status, resp = broker.http("POST", "/v1/topics", body)
    assert status == 201, (status, resp)
    assert resp["name"] == name
    assert HEX_ID.match(str(resp.get("id", ""))), "topic id %r is not a uuid" % resp.get("id")
    assert partition_count(resp) == 3
    got = broker.get_topic(name)
    assert got["name"] == name and partition_count(got) == 3
    assert str(got.get("id")) == str(resp["id"]), "id changed between POST and GET"
    storage = got.get("storage")
    assert isinstance(storage, dict), "GET shows no storage spec: %r" % got
    assert storage.get("mode") == "persistent", storage
    assert storage.get("retention_ms") == 3600000 and storage.get("retention_bytes") == 1 << 30, storage
    assert got.get("config", {}).get("cleanup.policy") == "delete", got.get("config")
    assert kafka_partitions(broker, name) == 3
    k.client_roundtrip(broker.bootstrap, name, n=3, partition=2)


def test_create_duplicate_is_409_topic_exists(broker):
    name = unique("dup")
    broker.create_topic(name, partitions=1)
    status, resp = broker.http("POST", "/v1/topics", {"name": name, "partitions": 2})
    assert_error(status, resp, 409, "topic_exists", "second POST")
    assert partition_count(broker.get_topic(name)) == 1, "the failed POST changed the topic"


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "has space", "x" * 250, "bad*char", "../../etc"])
def test_create_invalid_name_is_400_invalid_topic_name(broker, name):
    status, resp = broker.http("POST", "/v1/topics", {"name": name, "partitions": 1})
    assert_error(status, resp, 400, "invalid_topic_name", "name %r" % name[:20])
    with k.Conn.to(broker) as c:
        md = c.metadata(1, None)
    assert name not in md["topics"]


def test_create_longest_valid_name(broker):
    name = ("m" + unique("l")).ljust(249, "y")
    status, resp = broker.http("POST", "/v1/topics", {"name": name, "partitions": 1})
    assert status == 201, (status, resp)
    assert kafka_partitions(broker, name) == 1


@pytest.mark.parametrize("raw", ['{"name": "x", "partitions": 1', "not json", "", "[1, 2", '{"name": }',
                                 '{"name":"a","partitions":1}garbage'])
def test_create_malformed_json_is_400_invalid_json(broker, raw):
    status, resp = broker.http("POST", "/v1/topics", raw, headers={"Content-Type": "application/json"})
    assert_error(status, resp, 400, "invalid_json", "body %r" % raw)


@pytest.mark.parametrize("body", [
    {"name": "wt-a", "partitions": "three"},
    {"name": 5, "partitions": 1},
    {"name": "wt-b", "partitions": 1.5},
    {"name": "wt-c", "partitions": True},
    {"name": None, "partitions": 1},
    {"name": "wt-e", "partitions": 1, "storage": "persistent"},
    {"name": "wt-f", "partitions": 1, "config": ["retention.ms", "1000"]},
    ["wt-g", 1],
], ids=["partitions-str", "name-int", "partitions-float", "partitions-bool", "name-null", "storage-str",
        "config-array", "array-body"])
def test_create_wrong_types_is_400_invalid_argument(broker, body):
    status, resp = broker.http("POST", "/v1/topics", body)
    assert_error(status, resp, 400, "invalid_argument", "body %r" % (body,))
    listed = broker.http("GET", "/v1/topics?prefix=wt-")[1]["topics"]
    assert listed == [], "a rejected POST created %r" % listed


@pytest.mark.parametrize("n", [0, -1, -5])
def test_create_bad_partition_count_is_400(broker, n):
    name = unique("np")
    status, resp = broker.http("POST", "/v1/topics", {"name": name, "partitions": n})
    assert_error(status, resp, 400, None, "partitions %d" % n)
    status, _ = broker.http("GET", "/v1/topics/" + name)
    assert status == 404


def test_create_unknown_storage_mode_is_400_invalid_config(broker):
    name = unique("sm")
    status, resp = broker.http("POST", "/v1/topics", {"name": name, "partitions": 1, "storage": {"mode": "quantum"}})
    assert_error(status, resp, 400, "invalid_config", "storage mode quantum")
    status, _ = broker.http("GET", "/v1/topics/" + name)
    assert status == 404


# ---- list and paging ---------------------------------------------------------------------------


def test_list_topics_prefix_and_paging(broker):
    prefix = unique("pg") + "-"
    names = ["%s%02d" % (prefix, i) for i in range(25)]
    for n in reversed(names):  # created out of order; listed sorted
        broker.create_topic(n)
    others = [unique("other"), prefix[:-1]]  # the bare prefix without '-' sorts before, no match
    for n in others:
        broker.create_topic(n)

    seen = []
    after = None
    pages = []
    for _ in range(10):
        q = "/v1/topics?prefix=%s&limit=10" % prefix + ("&after=%s" % after if after else "")
        status, resp = broker.http("GET", q)
        assert status == 200, (status, resp)
        page = [t["name"] for t in resp["topics"]]
        pages.append(len(page))
        assert len(page) <= 10, "limit 10 returned %d" % len(page)
        seen.extend(page)
        after = resp.get("next", "missing")
        assert after != "missing", "list response lacks 'next': %r" % resp
        if after is None:
            break
        assert len(page) == 10, "a short page (%d) must be the last one, but next=%r" % (len(page), after)
    assert after is None, "paging did not end after 10 pages: %r" % pages
    assert seen == names, "paged listing %r != created %r" % (seen, names)
    assert pages[:3] == [10, 10, 5], pages

    status, resp = broker.http("GET", "/v1/topics")
    assert status == 200
    all_names = [t["name"] for t in resp["topics"]]
    assert all_names == sorted(all_names), "unpaged list is not sorted"
    status, resp = broker.http("GET", "/v1/topics?prefix=%s&limit=5&after=%s" % (prefix, names[22]))
    assert [t["name"] for t in resp["topics"]] == names[23:] and resp["next"] is None, resp
    status, resp = broker.http("GET", "/v1/topics?prefix=%s&limit=3&after=%s" % (prefix, names[12] + "a"))
    assert [t["name"] for t in resp["topics"]] == names[13:16], "after a name that does not exist: %r" % resp
    status, resp = broker.http("GET", "/v1/topics?prefix=%s" % unique("none"))
    assert status == 200 and resp["topics"] == [] and resp["next"] is None, resp


# ---- get with stats ---------------------------------------------------------------------------


def test_get_topic_stats_match_produced_offsets(broker):
    name = unique("stats")
    broker.create_topic(name, partitions=3)
    produce(broker, name, {0: 7, 1: 3})
    resp = broker.get_topic(name)
    assert resp["name"] == name and partition_count(resp) == 3
    stats = partition_stats(resp)
    assert sorted(stats) == [0, 1, 2], stats
    assert [stats[p]["high_watermark"] for p in (0, 1, 2)] == [7, 3, 0], stats
    assert [stats[p]["log_start_offset"] for p in (0, 1, 2)] == [0, 0, 0], stats
    for p, want in ((0, 7), (1, 3), (2, 0)):
        assert k.high_watermark(broker, name, p) == want


def test_get_unknown_topic_is_404_not_found(broker):
    status, resp = broker.http("GET", "/v1/topics/" + unique("missing"))
    assert_error(status, resp, 404, "not_found", "GET unknown topic")


# ---- patch ------------------------------------------------------------------------------------


def test_patch_grows_partitions_and_refuses_shrink(broker):
    name = unique("grow")
    broker.create_topic(name, partitions=2)
    status, resp = broker.http("PATCH", "/v1/topics/" + name, {"partitions": 4})
    assert status == 200, (status, resp)
    assert partition_count(broker.get_topic(name)) == 4
    deadline = time.monotonic() + 10
    while kafka_partitions(broker, name) != 4 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert kafka_partitions(broker, name) == 4
    with k.Conn.to(broker) as c:
        assert sorted(c.metadata(12, [name])["topics"][name]["partitions"]) == [0, 1, 2, 3]
    k.client_roundtrip(broker.bootstrap, name, n=2, partition=3)
    status, resp = broker.http("PATCH", "/v1/topics/" + name, {"partitions": 2})
    assert_error(status, resp, 400, None, "shrink 4 -> 2")
    assert partition_count(broker.get_topic(name)) == 4
    status, resp = broker.http("PATCH", "/v1/topics/" + name, {"partitions": "five"})
    assert_error(status, resp, 400, "invalid_argument", "partitions as a string")
    status, resp = broker.http("PATCH", "/v1/topics/" + unique("nope"), {"partitions": 4})
    assert_error(status, resp, 404, "not_found", "PATCH unknown topic")


def test_patch_config_shows_in_get_and_describe_configs(broker):
    from confluent_kafka.admin import ConfigResource

    name = unique("cfg")
    broker.create_topic(name, partitions=1)
    status, resp = broker.http("PATCH", "/v1/topics/" + name, {"config": {"retention.ms": "1000"}})
    assert status == 200, (status, resp)
    got = broker.get_topic(name)
    assert got.get("config", {}).get("retention.ms") == "1000", "GET config: %r" % got.get("config")
    res = ConfigResource(ConfigResource.Type.TOPIC, name)
    admin = admin_client(broker)  # keep the client alive until the future resolves
    configs = admin.describe_configs([res], request_timeout=10)[res].result(timeout=15)
    assert "retention.ms" in configs, sorted(configs)
    assert configs["retention.ms"].value == "1000", configs["retention.ms"]
    status, resp = broker.http("PATCH", "/v1/topics/" + name, "{bad json")
    assert_error(status, resp, 400, "invalid_json", "PATCH with broken JSON")


# ---- delete ------------------------------------------------------------------------------------


def test_delete_topic_then_404(broker):
    name = unique("del")
    broker.create_topic(name, partitions=2)
    produce(broker, name, {0: 3})
    status, resp = broker.http("DELETE", "/v1/topics/" + name)
    assert status == 204, (status, resp)
    assert resp is None, "204 with a body: %r" % resp
    status, resp = broker.http("GET", "/v1/topics/" + name)
    assert_error(status, resp, 404, "not_found", "GET after DELETE")
    status, resp = broker.http("DELETE", "/v1/topics/" + name)
    assert_error(status, resp, 404, "not_found", "second DELETE")
    with k.Conn.to(broker) as c:
        md = c.metadata(1, [name])
    assert md["topics"][name]["error_code"] == k.UNKNOWN_TOPIC_OR_PARTITION
    # The name can be used again, and the new topic starts empty.
    broker.create_topic(name, partitions=1)
    assert k.high_watermark(broker, name, 0) == 0, "a re-created topic kept the old records"


# ---- metrics -----------------------------------------------------------------------------------


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)(\s+-?\d+)?$')


def parse_metrics(text):
    samples = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, "not a Prometheus sample line: %r" % line
        float(m.group(3).replace("+Inf", "inf").replace("-Inf", "-inf"))
        samples.append((m.group(1), m.group(2) or "", float(m.group(3).replace("+Inf", "inf")), line))
    return samples


def test_metrics_prometheus_text(broker):
    name = unique("met")
    broker.create_topic(name, partitions=1)
    sent = produce(broker, name, {0: 5})
    held = k.Conn.to(broker)  # one connection held open while scraping
    try:
        held.api_versions(0)
        status, headers, text = raw_http(broker, "GET", "/metrics")
    finally:
        held.close()
    assert status == 200, (status, text[:200])
    assert headers.get("Content-Type", "").startswith("text/plain"), headers.get("Content-Type")
    samples = parse_metrics(text)
    lines = text.splitlines()

    def value(prefix):
        vals = [s[2] for s in samples if s[3].startswith(prefix)]
        assert vals, "no line starting with %r in /metrics" % prefix
        return vals[0]

    assert value('sluice_requests_total{api="Produce"}') >= 1
    assert any(line.startswith("sluice_request_duration_seconds_bucket") for line in lines)
    assert any(line.startswith("sluice_request_duration_seconds_bucket") and 'le="+Inf"' in line for line in lines)
    assert value('sluice_topic_bytes_in_total{topic="%s"}' % name) >= sent
    assert value("sluice_connections") >= 1
    assert value("sluice_storage_bytes") >= 0
    assert any(line.startswith("# TYPE sluice_requests_total counter") for line in lines), \
        "no TYPE line for sluice_requests_total"


# ---- routing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/nope", "/v1/nope", "/v2/topics", "/v1/topics/a/b/c/d"])
def test_unknown_path_is_404_json(broker, path):
    status, headers, text = raw_http(broker, "GET", path)
    assert status == 404, (path, status, text[:200])
    assert headers.get("Content-Type", "").startswith("application/json"), headers.get("Content-Type")
    assert_error(status, json.loads(text), 404, None, path)


@pytest.mark.parametrize("method,path", [("PUT", "/v1/topics"), ("DELETE", "/v1/topics"), ("POST", "/healthz"),
                                         ("DELETE", "/metrics"), ("POST", "/v1/topics/x-405")])
def test_wrong_method_is_405_json(broker, method, path):
    status, headers, text = raw_http(broker, method, path, body=b"{}" if method in ("PUT", "POST") else None,
                                     headers={"Content-Type": "application/json"})
    assert status == 405, (method, path, status, text[:200])
    assert_error(status, json.loads(text), 405, None, "%s %s" % (method, path))


def test_admin_api_survives_garbage_http(broker):
    for raw in (b"GARBAGE\r\n\r\n", b"GET /v1/topics HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
                b"POST /v1/topics HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n{",
                b"\x00\xff" * 100):
        s = socket.create_connection(("127.0.0.1", broker.admin_port), timeout=5)
        try:
            s.sendall(raw)
            s.shutdown(socket.SHUT_WR)
            try:
                s.recv(4096)
            except (socket.timeout, ConnectionResetError):
                pass
        finally:
            s.close()
    assert broker.alive()
    status, _ = broker.http("GET", "/healthz")
    assert status == 200
    broker.create_topic(unique("after-garbage"))


# ---- the two doors agree -------------------------------------------------------------------------


def test_retention_set_either_way_agrees_everywhere(broker):
    from confluent_kafka.admin import ConfigResource

    name = unique("ret")
    broker.create_topic(name, partitions=1)
    admin = admin_client(broker)
    res = ConfigResource(ConfigResource.Type.TOPIC, name)

    status, resp = broker.http("PATCH", "/v1/topics/" + name, {"storage": {"retention_ms": 5000}})
    assert status == 200, (status, resp)
    got = broker.get_topic(name)
    assert got["storage"]["retention_ms"] == 5000, got["storage"]
    configs = admin.describe_configs([res], request_timeout=10)[res].result(timeout=15)
    assert configs["retention.ms"].value == "5000", "DescribeConfigs after PATCH storage: %r" % (
        configs["retention.ms"].value)

    status, resp = broker.http("PATCH", "/v1/topics/" + name, {"config": {"retention.ms": "7000"}})
    assert status == 200, (status, resp)
    got = broker.get_topic(name)
    assert got["config"].get("retention.ms") == "7000" and got["storage"]["retention_ms"] == 7000, got


def test_kafka_admin_changes_show_in_http(broker):
    from confluent_kafka.admin import NewPartitions, NewTopic

    admin = admin_client(broker)
    name = unique("kadm")
    fs = admin.create_topics([NewTopic(name, 2, 1, config={"retention.ms": "12345"})], request_timeout=10)
    assert fs[name].result(timeout=15) is None
    got = broker.get_topic(name)
    assert partition_count(got) == 2 and got["config"].get("retention.ms") == "12345", got
    assert HEX_ID.match(str(got.get("id", ""))), got.get("id")

    fs = admin.create_partitions([NewPartitions(name, 5)], request_timeout=10)
    assert fs[name].result(timeout=15) is None
    assert partition_count(broker.get_topic(name)) == 5
    assert sorted(partition_stats(broker.get_topic(name))) == [0, 1, 2, 3, 4]

    fs = admin.delete_topics([name], request_timeout=10)
    assert fs[name].result(timeout=15) is None
    status, resp = broker.http("GET", "/v1/topics/" + name)
    assert_error(status, resp, 404, "not_found", "GET after Kafka DeleteTopics")


def test_topic_spec_and_data_survive_restart(broker):
    name = unique("keep")
    created = broker.create_topic(name, partitions=2, config={"retention.ms": "86400000"})
    produce(broker, name, {0: 4, 1: 2})
    with k.Conn.to(broker) as c:
        tid = c.metadata(12, [name])["topics"][name]["topic_id"]
    broker.restart()
    got = broker.get_topic(name)
    assert got["id"] == created["id"] and partition_count(got) == 2, got
    assert got["config"].get("retention.ms") == "86400000", got["config"]
    stats = partition_stats(got)
    assert [stats[0]["high_watermark"], stats[1]["high_watermark"]] == [4, 2], stats
    with k.Conn.to(broker) as c:
        assert c.metadata(12, [name])["topics"][name]["topic_id"] == tid, "topic id changed across restart"
    k.client_roundtrip(broker.bootstrap, name, n=2, partition=1)
    assert k.high_watermark(broker, name, 1) == 4
