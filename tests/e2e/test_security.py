"""End-to-end security: TLS, SASL (PLAIN, SCRAM-SHA-256/512), mTLS, ACLs on Metadata,
Produce and Fetch, the admin API's bearer token and TLS, certificate reload under load,
and the limits a hostile client meets (pre-authentication, slowloris, failed logins,
connections per IP). Real clients: kcat, confluent-kafka and kafka-python."""

import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time
import urllib.request

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError as KPError

from harness import Broker, run, tls_config, unique

TOKEN = "t0ken-for-tests"
ALICE_PW = "alice-secret"
TENANT_A = [
    {"resource": "topic", "name": "tenant-a.", "pattern": "prefixed",
     "operations": ["Read", "Write", "Describe", "Create"]},
    {"resource": "group", "name": "tenant-a.", "pattern": "prefixed", "operations": ["Read", "Describe"]},
]


def secure_broker(certs, **cfg):
    """PLAINTEXT (anonymous, a super user: the test's back door), SASL_SSL, SASL_PLAINTEXT
    and SSL with client certificates required, all on loopback, ACLs enforced."""
    config = tls_config(certs, **{"authorizer": "acl", "super.users": "User:ANONYMOUS;User:admin",
                                  "connection.failed.authentication.delay.ms": 10})
    config.update(cfg)
    b = Broker(config=config, admin_token=TOKEN,
               listeners={"SASL_SSL": "SASL_SSL", "SASL_PLAINTEXT": "SASL_PLAINTEXT", "MTLS": "SSL"})
    b.config["ssl.client.auth"] = "requested"
    return b


@pytest.fixture
def sbroker(certs):
    b = secure_broker(certs)
    b.start()
    st, body = b.http("PUT", "/v1/principals/alice", {"password": ALICE_PW, "acls": TENANT_A})
    assert st == 201, body
    # bob (the client certificate's CN) may use tenant-b only
    st, body = b.http("PUT", "/v1/principals/bob", {"acls": [
        {"resource": "topic", "name": "tenant-b.", "pattern": "prefixed", "operations": ["All"]},
        {"resource": "group", "name": "tenant-b.", "pattern": "prefixed", "operations": ["All"]}]})
    assert st == 201, body
    try:
        yield b
        assert b.stop() == 0
        b.assert_clean()
    finally:
        b.close()


def sasl_conf(b, certs, mech="SCRAM-SHA-512", user="alice", pw=ALICE_PW, listener="SASL_SSL"):
    c = {"bootstrap.servers": b.addr(listener), "security.protocol": listener,
         "sasl.mechanisms": mech, "sasl.username": user, "sasl.password": pw,
         "socket.timeout.ms": 10000}
    if listener.endswith("SSL"):
        c["ssl.ca.location"] = certs["ca.pem"]
    return c


def mtls_conf(b, certs, who="alice"):
    return {"bootstrap.servers": b.addr("MTLS"), "security.protocol": "SSL",
            "ssl.ca.location": certs["ca.pem"], "ssl.certificate.location": certs[who + ".pem"],
            "ssl.key.location": certs[who + ".key"], "socket.timeout.ms": 10000}


def produce_ck(conf, topic, values):
    p = Producer(dict(conf, **{"message.timeout.ms": 15000}))
    errs = []
    for v in values:
        p.produce(topic, v, on_delivery=lambda e, m: errs.append(e) if e else None)
    assert p.flush(20) == 0
    return errs


def consume_ck(conf, topic, n, group=None, timeout=20):
    c = Consumer(dict(conf, **{"group.id": group or unique("tenant-a.g"), "auto.offset.reset": "earliest",
                               "enable.auto.commit": False}))
    got = []
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + timeout
        while len(got) < n and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                raise KafkaException(m.error())
            got.append(m.value())
    finally:
        c.close()
    return got


def kcat(args, input=None, timeout=60):
    return run(["kcat", "-q", "-m", "10", "-X", "socket.timeout.ms=10000"] + args, input=input, timeout=timeout)


# ---- TLS + SASL with real clients --------------------------------------------------


@pytest.mark.parametrize("mech", ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"])
def test_confluent_sasl_ssl(sbroker, certs, mech):
    topic = unique("tenant-a.ck")
    sbroker.create_topic(topic)
    conf = sasl_conf(sbroker, certs, mech)
    vals = [b"v%d" % i for i in range(50)]
    assert produce_ck(conf, topic, vals) == []
    assert consume_ck(conf, topic, 50) == vals


def test_kcat_sasl_ssl_scram512(sbroker, certs):
    topic = unique("tenant-a.kcat")
    sbroker.create_topic(topic)
    x = ["-b", sbroker.addr("SASL_SSL"), "-X", "security.protocol=SASL_SSL", "-X", "sasl.mechanisms=SCRAM-SHA-512",
         "-X", "sasl.username=alice", "-X", "sasl.password=" + ALICE_PW, "-X", "ssl.ca.location=" + certs["ca.pem"]]
    r = kcat(x + ["-P", "-t", topic], input=b"one\ntwo\nthree\n")
    assert r.returncode == 0, r.stderr
    r = kcat(x + ["-C", "-t", topic, "-o", "beginning", "-e"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [b"one", b"two", b"three"]


def test_kafka_python_sasl_ssl_scram512(sbroker, certs):
    topic = unique("tenant-a.kp")
    sbroker.create_topic(topic)
    common = dict(bootstrap_servers=sbroker.addr("SASL_SSL"), security_protocol="SASL_SSL",
                  sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="alice", sasl_plain_password=ALICE_PW,
                  ssl_cafile=certs["ca.pem"], api_version=(2, 5, 0))
    p = KafkaProducer(**common)
    for i in range(20):
        p.send(topic, b"kp%d" % i).get(timeout=20)
    p.close()
    c = KafkaConsumer(topic, auto_offset_reset="earliest", consumer_timeout_ms=5000, **common)
    got = [m.value for m in c]
    c.close()
    assert got == [b"kp%d" % i for i in range(20)]


def test_mtls_clients(sbroker, certs):
    """A client certificate's CN is the principal: alice reaches tenant-a, bob tenant-b."""
    ta, tb = unique("tenant-a.m"), unique("tenant-b.m")
    sbroker.create_topic(ta)
    sbroker.create_topic(tb)
    assert produce_ck(mtls_conf(sbroker, certs, "alice"), ta, [b"a1", b"a2"]) == []
    assert consume_ck(mtls_conf(sbroker, certs, "alice"), ta, 2) == [b"a1", b"a2"]
    errs = produce_ck(mtls_conf(sbroker, certs, "alice"), tb, [b"x"])
    assert errs and errs[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert produce_ck(mtls_conf(sbroker, certs, "bob"), tb, [b"b1"]) == []
    # kcat and kafka-python with the same certificates
    r = kcat(["-b", sbroker.addr("MTLS"), "-X", "security.protocol=SSL", "-X", "ssl.ca.location=" + certs["ca.pem"],
              "-X", "ssl.certificate.location=" + certs["bob.pem"], "-X", "ssl.key.location=" + certs["bob.key"],
              "-C", "-t", tb, "-o", "beginning", "-e"])
    assert r.returncode == 0 and r.stdout.split() == [b"b1"], r.stderr
    c = KafkaConsumer(ta, bootstrap_servers=sbroker.addr("MTLS"), security_protocol="SSL",
                      ssl_cafile=certs["ca.pem"], ssl_certfile=certs["alice.pem"], ssl_keyfile=certs["alice.key"],
                      auto_offset_reset="earliest", consumer_timeout_ms=5000, api_version=(2, 5, 0))
    assert [m.value for m in c] == [b"a1", b"a2"]
    c.close()


def test_mtls_required_refuses_no_certificate(certs):
    b = secure_broker(certs)
    b.config["ssl.client.auth"] = "required"
    with b:
        conf = {"bootstrap.servers": b.addr("MTLS"), "security.protocol": "SSL",
                "ssl.ca.location": certs["ca.pem"], "socket.timeout.ms": 5000}
        errs = produce_ck(dict(conf, **{"message.timeout.ms": 3000}), "tenant-a.x", [b"x"])
        assert errs, "delivered without a client certificate"
        assert "TLS handshake failed" in b.log_text()
        assert b.alive()


def test_wrong_password_fails_cleanly(sbroker, certs):
    topic = unique("tenant-a.wp")
    sbroker.create_topic(topic)
    errs = []
    conf = dict(sasl_conf(sbroker, certs, "SCRAM-SHA-512", pw="wrong"),
                **{"error_cb": lambda e: errs.append(e), "message.timeout.ms": 3000})
    p = Producer(conf)
    p.produce(topic, b"x")
    p.flush(6)
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errs), errs
    # a PLAIN attempt and an unknown user fail the same way
    for mech, user in (("PLAIN", "alice"), ("SCRAM-SHA-256", "nobody")):
        errs.clear()
        p = Producer(dict(sasl_conf(sbroker, certs, mech, user=user, pw="wrong"),
                          **{"error_cb": lambda e: errs.append(e), "message.timeout.ms": 2000}))
        p.produce(topic, b"x")
        p.flush(4)
        assert any(e.code() == KafkaError._AUTHENTICATION for e in errs), (mech, errs)
    # the right password still works, and nothing was written
    assert consume_ck(sasl_conf(sbroker, certs), topic, 1, timeout=3) == []
    st, m = sbroker.http("GET", "/metrics")
    assert 'sluice_authentications_total{mechanism="SCRAM-SHA-512",result="failure"}' in m


# ---- ACLs ---------------------------------------------------------------------------


def test_tenant_isolation_metadata_produce_fetch(sbroker, certs):
    ta, tb = unique("tenant-a.iso"), unique("tenant-b.iso")
    sbroker.create_topic(ta)
    sbroker.create_topic(tb)
    conf = sasl_conf(sbroker, certs)
    # Metadata: all-topics lists only tenant-a topics
    p = Producer(conf)
    md = p.list_topics(timeout=10)
    assert ta in md.topics and tb not in md.topics
    # asking for tenant-b by name: TOPIC_AUTHORIZATION_FAILED, as for one that does not exist
    md = p.list_topics(tb, timeout=10)
    assert md.topics[tb].error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    md = p.list_topics("tenant-b.nonexistent", timeout=10)
    assert md.topics["tenant-b.nonexistent"].error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # Produce to tenant-b: refused, nothing written
    errs = produce_ck(conf, tb, [b"nope"])
    assert errs and errs[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # Fetch from tenant-b: refused (the one record in it came through the back door)
    produce_ck({"bootstrap.servers": sbroker.bootstrap}, tb, [b"secret"])
    assert consume_ck({"bootstrap.servers": sbroker.bootstrap}, tb, 2, timeout=3) == [b"secret"]
    c = Consumer(dict(conf, **{"group.id": "tenant-a.g-iso", "auto.offset.reset": "earliest"}))
    c.subscribe([tb])
    err = None
    deadline = time.monotonic() + 15
    while err is None and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None:
            assert m.error(), "read %r from another tenant's topic" % m.value()
            err = m.error()
    c.close()
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    st, m = sbroker.http("GET", "/metrics")
    assert "sluice_authorization_denied_total " in m and "sluice_authorization_denied_total 0\n" not in m


def test_wire_level_codes_for_an_anonymous_principal():
    """Each API's own error code, exactly, for User:ANONYMOUS on the plaintext listener
    with ACLs on anon.* only (kwire speaks the protocol directly)."""
    import kwire as k

    cfg = {"authorizer": "acl", "super.users": "User:admin"}
    with Broker(config=cfg) as b:
        st, _ = b.http("PUT", "/v1/principals/ANONYMOUS", {"acls": [
            {"resource": "topic", "name": "anon.", "pattern": "prefixed", "operations": ["Read", "Write", "Describe"]}]})
        assert st == 201
        mine, other = unique("anon.w"), unique("other.w")
        b.create_topic(mine)
        b.create_topic(other)
        batch = k.record_batch([(b"k", b"v")])
        with k.Conn.to(b) as c:
            assert c.produce(9, mine, 0, batch)["error_code"] == k.NONE
            assert c.produce(9, other, 0, batch)["error_code"] == 29
            assert c.produce(3, other, 0, batch)["error_code"] == 29
            r = c.fetch(12, other, 0, 0)[(other, 0)]
            assert r["error_code"] == 29 and not r["records"]
            assert c.fetch(12, mine, 0, 0)[(mine, 0)]["error_code"] == k.NONE
            assert c.list_offset(other, 0, -1)["error_code"] == 29
            md = c.metadata(12)
            assert mine in md["topics"] and other not in md["topics"]
            md = c.metadata(9, [other, "other.missing"])
            assert [t["error_code"] for t in md["topic_list"]] == [29, 29]
            r = c.create_topics(7, [("anon.new", 1, 1)])
            assert r["anon.new"]["error_code"] == 29
        st, t = b.http("GET", "/v1/topics/" + other)
        assert st == 200 and t["stats"]["messages"] == 0, t
        assert b.stop() == 0
        b.assert_clean()


def test_deny_rule_beats_allow(sbroker, certs):
    topic = unique("tenant-a.deny")
    sbroker.create_topic(topic)
    acls = TENANT_A + [{"resource": "topic", "name": topic, "operations": ["Write"], "permission": "deny"}]
    st, _ = sbroker.http("PUT", "/v1/principals/alice", {"acls": acls})
    assert st == 200
    conf = sasl_conf(sbroker, certs)
    errs = produce_ck(conf, topic, [b"x"])
    assert errs and errs[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    produce_ck({"bootstrap.servers": sbroker.bootstrap}, topic, [b"ok"])
    assert consume_ck(conf, topic, 1) == [b"ok"]  # Read is still allowed


def test_acls_survive_restart(sbroker, certs):
    topic = unique("tenant-a.rs")
    sbroker.create_topic(topic)
    sbroker.restart()
    conf = sasl_conf(sbroker, certs)
    assert produce_ck(conf, topic, [b"after"]) == []
    errs = produce_ck(conf, unique("tenant-b.rs"), [b"x"])
    assert errs and errs[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_kafka_acl_apis_with_kafka_python(sbroker, certs):
    """CreateAcls / DescribeAcls / DeleteAcls through kafka-python's admin client."""
    from kafka import KafkaAdminClient
    from kafka.admin import ACL, ACLFilter, ACLOperation, ACLPermissionType, ResourcePattern, ResourceType
    from kafka.admin.acl_resource import ACLResourcePatternType, ResourcePatternFilter

    adm = KafkaAdminClient(bootstrap_servers=sbroker.bootstrap, api_version=(2, 5, 0))
    acl = ACL(principal="User:carol", host="*", operation=ACLOperation.READ,
              permission_type=ACLPermissionType.ALLOW,
              resource_pattern=ResourcePattern(ResourceType.TOPIC, "tenant-c.", ACLResourcePatternType.PREFIXED))
    res = adm.create_acls([acl])
    assert not res["failed"], res
    flt = ACLFilter(principal="User:carol", host="*", operation=ACLOperation.ANY,
                    permission_type=ACLPermissionType.ANY,
                    resource_pattern=ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY))
    found, err = adm.describe_acls(flt)
    assert [a.resource_pattern.resource_name for a in found] == ["tenant-c."]
    st, body = sbroker.http("GET", "/v1/principals/carol")
    assert st == 200 and body["acls"][0]["name"] == "tenant-c."
    deleted = adm.delete_acls([flt])
    assert len(deleted[0][1]) == 1
    found, err = adm.describe_acls(flt)
    assert found == []
    adm.close()


# ---- admin API ------------------------------------------------------------------------


def test_admin_token(sbroker):
    url = sbroker.admin_url
    for path in ("/healthz", "/readyz"):
        assert urllib.request.urlopen(url + path, timeout=5).status == 200
    for path in ("/v1/topics", "/metrics", "/v1/principals/alice"):
        try:
            urllib.request.urlopen(url + path, timeout=5)
            raise AssertionError("no 401 for " + path)
        except urllib.error.HTTPError as e:
            assert e.code == 401
            assert json.loads(e.read())["error"]["code"] == "unauthorized"
    st, _ = sbroker.http("GET", "/v1/topics", headers={"Authorization": "Bearer wrong"})
    assert st == 401
    st, body = sbroker.http("GET", "/v1/principals/alice")
    assert st == 200 and body["mechanisms"] == ["SCRAM-SHA-256", "SCRAM-SHA-512"]
    assert "password" not in json.dumps(body) and ALICE_PW not in json.dumps(body)


def test_principals_api_errors(sbroker):
    assert sbroker.http("PUT", "/v1/principals/bad%2Cname", {"password": "x"})[0] == 400
    st, body = sbroker.http("PUT", "/v1/principals/eve", {"acls": [{"resource": "planet", "name": "x",
                                                                    "operations": ["Read"]}]})
    assert st == 400 and body["error"]["code"] == "invalid_acl"
    st, body = sbroker.http("PUT", "/v1/principals/eve", {"acls": [{"resource": "topic", "name": "x",
                                                                    "operations": ["Fly"]}]})
    assert st == 400 and "unknown operation" in body["error"]["message"]
    assert sbroker.http("GET", "/v1/principals/eve")[0] == 404  # nothing half-applied
    assert sbroker.http("DELETE", "/v1/principals/eve")[0] == 404
    st, body = sbroker.http("GET", "/v1/principals?limit=10")
    assert st == 200 and [p["name"] for p in body["principals"]] == ["alice"]
    assert sbroker.http("DELETE", "/v1/principals/alice")[0] == 204
    assert sbroker.http("GET", "/v1/principals/alice")[0] == 404


def test_admin_over_tls_with_client_certificate(certs):
    b = Broker(config=tls_config(certs), admin_token=TOKEN)
    b.config["admin.ssl.enable"] = "true"
    b.config["admin.ssl.client.auth"] = "requested"
    url = "https://127.0.0.1:%d" % b.admin_port

    ctx = ssl.create_default_context(cafile=certs["ca.pem"])
    mctx = ssl.create_default_context(cafile=certs["ca.pem"])
    mctx.load_cert_chain(certs["alice.pem"], certs["alice.key"])

    def get(path, context, token=None):
        req = urllib.request.Request(url + path, headers={"Authorization": "Bearer " + token} if token else {})
        try:
            with urllib.request.urlopen(req, timeout=5, context=context) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    try:
        _start_with_https(b, ctx)
        assert get("/healthz", ctx)[0] == 200
        assert get("/v1/topics", ctx)[0] == 401            # TLS alone is not enough
        assert get("/v1/topics", ctx, TOKEN)[0] == 200     # the token is
        assert get("/v1/topics", mctx)[0] == 200           # so is a verified client certificate
        # a large body goes through the TLS front intact
        st, body = get("/v1/topics?limit=1000", mctx)
        assert st == 200 and json.loads(body)["topics"] == []
        assert b.stop() == 0
        b.assert_clean()
    finally:
        b.close()


def _start_with_https(b, ctx):
    """Broker.start() polls /readyz over http; with TLS on the admin port, poll https."""
    import subprocess as sp
    log = open(b.log_path, "ab")
    b.proc = sp.Popen(b.command(), stdin=sp.DEVNULL, stdout=log, stderr=sp.STDOUT, env=b._env(), cwd=b.base_dir)
    log.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert b.proc.poll() is None, b.log_tail()
        try:
            with urllib.request.urlopen("https://127.0.0.1:%d/readyz" % b.admin_port, timeout=1, context=ctx) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("not ready\n" + b.log_tail())


# ---- certificate reload ------------------------------------------------------------


def _serial(addr, ca):
    ctx = ssl.create_default_context(cafile=ca)
    with socket.create_connection(addr.split(":"), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
            return t.getpeercert()["serialNumber"]


def test_certificate_reload_under_load(certs, tmp_path):
    d = str(tmp_path / "live")
    shutil.copytree(certs["dir"], d)
    live = {"server.pem": os.path.join(d, "server.pem"), "server.key": os.path.join(d, "server.key"),
            "ca.pem": os.path.join(d, "ca.pem")}
    b = secure_broker(live)
    with b:
        b.http("PUT", "/v1/principals/alice", {"password": ALICE_PW, "acls": TENANT_A})
        topic = unique("tenant-a.reload")
        b.create_topic(topic)
        host, port = b.addr("SASL_SSL").split(":")
        before = _serial(b.addr("SASL_SSL"), live["ca.pem"])
        conf = sasl_conf(b, {"ca.pem": live["ca.pem"]})
        p = Producer(dict(conf, **{"linger.ms": 1}))
        sent, stop = [0], threading.Event()
        failures = []

        def load():
            while not stop.is_set():
                p.produce(topic, b"x" * 100, on_delivery=lambda e, m: failures.append(e) if e else None)
                sent[0] += 1
                p.poll(0)
                time.sleep(0.0005)

        t = threading.Thread(target=load)
        t.start()
        time.sleep(1)
        # a new server certificate from the same CA, then SIGHUP
        subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-subj", "/CN=localhost", "-keyout", d + "/n.key", "-out", d + "/n.csr"],
                       check=True, capture_output=True)
        with open(d + "/n.ext", "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        subprocess.run(["openssl", "x509", "-req", "-in", d + "/n.csr", "-CA", d + "/ca.pem", "-CAkey", d + "/ca.key",
                        "-CAcreateserial", "-days", "30", "-extfile", d + "/n.ext", "-out", d + "/n.pem"],
                       check=True, capture_output=True)
        os.replace(d + "/n.pem", live["server.pem"])
        os.replace(d + "/n.key", live["server.key"])
        b.proc.send_signal(signal.SIGHUP)
        time.sleep(1)
        stop.set()
        t.join()
        assert p.flush(20) == 0
        assert failures == []
        after = _serial(b.addr("SASL_SSL"), live["ca.pem"])
        assert after != before, "new connections still get the old certificate"
        assert "certificate reloaded" in b.log_text()
        got = consume_ck(conf, topic, sent[0], timeout=30)
        assert len(got) == sent[0]
        # the producer's connection carried the whole run: the reload dropped nothing
        st, m = b.http("GET", "/metrics")
        assert "sluice_connections_total 3\n" in m or b.log_text().count("authenticated as User:alice") <= 3
        assert b.alive()


# ---- limits against hostile clients -------------------------------------------------


def _raw(addr):
    h, p = addr.split(":")
    s = socket.create_connection((h, int(p)), timeout=5)
    return s


def _closed(s, timeout=5):
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def _metadata_request():
    hdr = struct.pack(">hhi", 3, 1, 7) + struct.pack(">h", 4) + b"test"
    req = hdr + struct.pack(">i", -1)  # Metadata v1: all topics
    return struct.pack(">i", len(req)) + req


def test_requests_before_sasl_are_refused(sbroker):
    s = _raw(sbroker.addr("SASL_PLAINTEXT"))
    s.sendall(_metadata_request())
    assert _closed(s), "Metadata served before authentication"
    # an oversized frame before authentication closes at once (sasl.max.receive.bytes)
    s = _raw(sbroker.addr("SASL_PLAINTEXT"))
    s.sendall(struct.pack(">i", 10 << 20) + b"\0" * 64)
    assert _closed(s)
    # the plaintext back door still answers
    s = _raw(sbroker.addr("PLAINTEXT"))
    s.sendall(_metadata_request())
    s.settimeout(5)
    assert len(s.recv(4)) == 4
    s.close()


def test_slowloris_and_idle_timeouts(certs):
    b = Broker(config={"request.read.timeout.ms": 500, "connections.max.idle.ms": 800,
                       "sasl.auth.timeout.ms": 600},
               listeners={"SASL_PLAINTEXT": "SASL_PLAINTEXT"})
    with b:
        slow = _raw(b.bootstrap)
        slow.sendall(struct.pack(">i", 100) + b"\0\x03")  # a frame that never finishes
        idle = _raw(b.bootstrap)
        noauth = _raw(b.addr("SASL_PLAINTEXT"))
        t0 = time.monotonic()
        assert _closed(slow, 5) and _closed(idle, 5) and _closed(noauth, 5)
        assert time.monotonic() - t0 < 4
        text = b.log_text()
        assert "request.read.timeout.ms" in text and "connections.max.idle.ms" in text
        assert "did not authenticate in time" in text


def test_failed_logins_are_rate_limited(certs):
    b = secure_broker(certs, **{"failed.authentications.per.ip.per.minute": 3})
    with b:
        b.http("PUT", "/v1/principals/alice", {"password": ALICE_PW, "acls": TENANT_A})
        for _ in range(4):
            p = Producer(dict(sasl_conf(b, certs, "PLAIN", pw="guess", listener="SASL_PLAINTEXT"),
                              **{"message.timeout.ms": 1500}))
            p.produce("tenant-a.x", b"x")
            p.flush(3)
        # now even the right password is refused from this address, without a check
        errs = []
        p = Producer(dict(sasl_conf(b, certs, "PLAIN", listener="SASL_PLAINTEXT"),
                          **{"error_cb": lambda e: errs.append(e), "message.timeout.ms": 1500}))
        p.produce("tenant-a.x", b"x")
        p.flush(3)
        assert any("too many failed authentications" in e.str() for e in errs), errs


def test_connections_per_ip_limit():
    with Broker(config={"max.connections.per.ip": 3}) as b:
        socks = [_raw(b.bootstrap) for _ in range(3)]
        extra = _raw(b.bootstrap)
        assert _closed(extra)
        for s in socks:
            s.sendall(_metadata_request())
            s.settimeout(5)
            assert len(s.recv(4)) == 4
        socks[0].close()
        time.sleep(0.2)
        again = _raw(b.bootstrap)
        again.sendall(_metadata_request())
        again.settimeout(5)
        assert len(again.recv(4)) == 4


def test_session_lifetime_forces_reauthentication(certs):
    """KIP-368: with sasl.session.lifetime.ms the broker tells the client how long its
    session lasts and closes a connection that outlives it; librdkafka 2.0 does not
    re-authenticate in place, so it reconnects and authenticates again, and nothing is
    lost on the way."""
    b = secure_broker(certs, **{"sasl.session.lifetime.ms": 1500})
    with b:
        b.http("PUT", "/v1/principals/alice", {"password": ALICE_PW, "acls": TENANT_A})
        topic = unique("tenant-a.life")
        b.create_topic(topic)
        conf = sasl_conf(b, certs, "SCRAM-SHA-256", listener="SASL_PLAINTEXT")
        p = Producer(conf)
        errs = []
        n = 0
        t_end = time.monotonic() + 4.5
        while time.monotonic() < t_end:
            p.produce(topic, b"r%d" % n, on_delivery=lambda e, m: errs.append(e) if e else None)
            n += 1
            p.poll(0.01)
        assert p.flush(20) == 0 and errs == []
        assert consume_ck(conf, topic, n) == [b"r%d" % i for i in range(n)]
        text = b.log_text()
        assert "session lifetime ended without re-authentication" in text
        assert text.count("authenticated as User:alice") >= 3
        assert b.stop() == 0
        b.assert_clean()


def _scram_cred(mech, password, iterations=4096):
    """A SCRAM credential derived here, as the operator does, so the broker never sees
    the password (RFC 5802: SaltedPassword, ClientKey, StoredKey, ServerKey)."""
    import base64
    import hashlib
    import hmac

    h = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}[mech]
    salt = os.urandom(32)
    salted = hashlib.pbkdf2_hmac(h, password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", h).digest()
    b64 = lambda b: base64.b64encode(b).decode()
    return {"mechanism": mech, "salt": b64(salt), "iterations": iterations,
            "stored_key": b64(hashlib.new(h, client_key).digest()),
            "server_key": b64(hmac.new(salted, b"Server Key", h).digest())}


def test_principal_with_pre_derived_credentials(sbroker, certs):
    pw = "derived-elsewhere"
    body = {"credentials": [_scram_cred("SCRAM-SHA-512", pw), _scram_cred("SCRAM-SHA-256", pw, 8192)],
            "acls": TENANT_A}
    st, out = sbroker.http("PUT", "/v1/principals/dora", body)
    assert st == 201 and out["mechanisms"] == ["SCRAM-SHA-256", "SCRAM-SHA-512"], out
    topic = unique("tenant-a.dora")
    sbroker.create_topic(topic)
    for mech in ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"):
        conf = sasl_conf(sbroker, certs, mech, user="dora", pw=pw)
        assert produce_ck(conf, topic, [mech.encode()]) == []
    errs = []
    p = Producer(dict(sasl_conf(sbroker, certs, "SCRAM-SHA-512", user="dora", pw="not-it"),
                      **{"error_cb": lambda e: errs.append(e), "message.timeout.ms": 2000}))
    p.produce(topic, b"x")
    p.flush(4)
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errs)
    bad = _scram_cred("SCRAM-SHA-512", pw)
    bad["stored_key"] = bad["stored_key"][:-8] + "AAAAAAA="
    for b in ({"credentials": [dict(bad, iterations=10)]}, {"credentials": [bad, bad]},
              {"credentials": [{"mechanism": "MD5"}]}, {"password": "x", "credentials": []}):
        st, out = sbroker.http("PUT", "/v1/principals/erin", b)
        assert st == 400 and out["error"]["code"] == "invalid_credentials", (b, out)
    assert sbroker.http("GET", "/v1/principals/erin")[0] == 404


def _throttles(b, kind):
    st, m = b.http("GET", "/metrics")
    for line in m.splitlines():
        if line.startswith('sluice_quota_throttles_total{kind="%s"}' % kind):
            return int(line.split()[-1])
    raise AssertionError("no throttle metric")


def test_byte_rate_quotas(certs):
    """A principal over its produce or fetch rate is answered with throttle_time_ms and
    not read again until then; every record still arrives. Another principal without a
    quota is never throttled."""
    b = secure_broker(certs)
    with b:
        b.http("PUT", "/v1/principals/alice", {"password": ALICE_PW, "acls": TENANT_A,
                                               "quotas": {"produce_bytes_per_second": 200000,
                                                          "fetch_bytes_per_second": 200000}})
        st, body = b.http("GET", "/v1/principals/alice")
        assert body["quotas"] == {"produce_bytes_per_second": 200000, "fetch_bytes_per_second": 200000,
                                  "override": True}
        assert b.http("PUT", "/v1/principals/alice", {"quotas": {"produce_bytes_per_second": "fast"}})[0] == 400
        topic = unique("tenant-a.q")
        b.create_topic(topic)
        stats = []
        conf = dict(sasl_conf(b, certs, "PLAIN", listener="SASL_PLAINTEXT"),
                    **{"statistics.interval.ms": 100, "stats_cb": stats.append, "linger.ms": 5})
        vals = [os.urandom(1000) for _ in range(800)]  # 800 KB: four times the rate
        p = Producer(conf)
        errs = []
        for i, v in enumerate(vals):
            p.produce(topic, v, on_delivery=lambda e, m: errs.append(e) if e else None)
            if i == 600:
                p.flush(30)  # the first requests run into the quota; the rest wait it out
        assert p.flush(30) == 0 and errs == []
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            p.poll(0.1)
        assert _throttles(b, "produce") > 0
        thr = [max([(br.get("throttle") or {}).get("max", 0) for br in json.loads(s)["brokers"].values()],
                   default=0) for s in stats]
        assert max(thr, default=0) > 0, "librdkafka saw no throttle_time_ms"
        got = consume_ck(sasl_conf(b, certs, "PLAIN", listener="SASL_PLAINTEXT"), topic, len(vals), timeout=60)
        assert got == vals
        assert _throttles(b, "fetch") > 0
        # the anonymous super user has no quota: never throttled
        before = (_throttles(b, "produce"), _throttles(b, "fetch"))
        assert consume_ck({"bootstrap.servers": b.bootstrap}, topic, len(vals), timeout=60) == vals
        assert (_throttles(b, "produce"), _throttles(b, "fetch")) == before
        # overrides persist, and DELETE removes them with the rest
        b.restart()
        assert b.http("GET", "/v1/principals/alice")[1]["quotas"]["override"] is True
        assert b.http("DELETE", "/v1/principals/alice")[0] == 204
        assert b.http("GET", "/v1/principals/alice")[0] == 404
        assert b.stop() == 0
        b.assert_clean()
