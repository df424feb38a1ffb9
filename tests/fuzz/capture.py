#!/usr/bin/python3
"""capture.py: seed corpora for fuzz_frame and fuzz_admin_json from real client traffic.

A broker (tests/e2e/harness.py, from $SLUICE_BIN or build/bin) runs with a PLAINTEXT and
a SASL_PLAINTEXT listener and authorizer=acl; each listener and the admin API sit behind
a recording TCP proxy, and the broker advertises the proxies, so every client connection
goes through them. Real clients then do what applications do: kcat, confluent-kafka,
kafka-python, kafkajs and librdkafka 2.15.1's share consumer produce, consume in groups,
read a shared view, manage topics and configs; over SASL (PLAIN, SCRAM-SHA-256,
SCRAM-SHA-512, and kafka-python's SaslHandshake v0 framing) alice, bob and admin log in
and admin manages ACLs with kafka-python's KafkaAdminClient; a wrong password fails.

What is written, into OUT/frame and OUT/admin_json (file name: SHA-1 of the content):
  - every request frame without its size prefix, as fuzz_frame.c takes it. Frames sent
    after a SASL login carry fuzz_frame's mode byte (byte 4, the top byte of the
    correlation id) for "SASL listener, ACLs enforced, principal <who>"; the others
    are unchanged (real clients' correlation ids leave that byte 0);
  - every connection's first frames joined by fuzz_frame's separator (one input that
    replays the session: a login, a group's join/sync/commit sequence), a SASL
    connection's with the mode byte "SASL listener, not yet authenticated";
  - every admin request as "<METHOD> <url>\\n<body>", as fuzz_admin_json.c takes it,
    and each run of 16 in a row joined by its separator.
The users, rules and topics match tests/fuzz/fuzz_broker.h, so captured requests meet
the same state in the fuzzer. Then minimise into the committed corpora with
  build/fuzz/bin/fuzz_frame -merge=1 NEW_DIR tests/fuzz/corpus/frame OUT/frame
(see tests/fuzz/README.md).

  capture.py OUT              run the client scenarios
  capture.py --e2e OUT FILE.. run e2e test files with every admin request recorded
                              (pytest plugin tests/fuzz/capture_admin.py)
"""

import argparse
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
E2E = os.path.join(HERE, "..", "e2e")
sys.path.insert(0, E2E)

import harness  # noqa: E402
from harness import REPO_ROOT, Broker, run  # noqa: E402

SEP = b"#FRAME#\n"  # fuzz_frame.c's FZ_SEP
MODE_AUTHORIZE, MODE_SASL = 1 << 0, 1 << 1  # fuzz_frame.c's mode bits
PRINCIPAL_BITS = {"alice": 1 << 2, "bob": 2 << 2, "admin": 3 << 2}
SESSION_FRAMES, SESSION_BYTES = 64, 64 << 10
PASSWORDS = {"alice": "alice-secret", "bob": "bob-secret", "admin": "admin-secret"}
ACLS = {  # fuzz_broker.h's rules, in the admin API's form
    "alice": [
        {"resource": "topic", "name": "t", "pattern": "prefixed", "operations": ["All"]},
        {"resource": "topic", "name": "v", "pattern": "prefixed", "operations": ["Read"]},
        {"resource": "topic", "name": "t-deny", "pattern": "literal", "operations": ["Write"],
         "permission": "deny"},
        {"resource": "group", "name": "g", "pattern": "prefixed", "operations": ["All"]},
        {"resource": "cluster", "name": "kafka-cluster", "pattern": "literal",
         "operations": ["Describe"]},
    ],
    "bob": [{"resource": "topic", "name": "*", "pattern": "literal", "operations": ["Describe"]},
            {"resource": "group", "name": "*", "pattern": "literal", "operations": ["Read"]}],
}


def save(out, kind, data):
    d = os.path.join(out, kind)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def free_port():
    return harness.free_port()


# ---- recording proxies ------------------------------------------------------------------


class Proxy:
    """Listens on a free loopback port and relays every connection to target_port. Bytes
    from the client go through on_client(conn_state, data) before being forwarded."""

    def __init__(self, target_port):
        self.target = target_port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.conns = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                s = socket.create_connection(("127.0.0.1", self.target), timeout=5)
                s.settimeout(None)
            except OSError:
                c.close()
                continue
            st = self.new_state()
            with self.lock:
                self.conns.append(st)
            threading.Thread(target=self._pump, args=(c, s, st), daemon=True).start()
            threading.Thread(target=self._pump, args=(s, c, None), daemon=True).start()

    def _pump(self, src, dst, st):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if st is not None:
                    self.on_client(st, data)
                dst.sendall(data)
        except OSError:
            pass
        for x in (src, dst):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.closed = True
        self.sock.close()


class KafkaProxy(Proxy):
    """Splits the client's bytes into size-prefixed frames, per connection."""

    def __init__(self, target_port, sasl):
        self.sasl = sasl
        super().__init__(target_port)

    def new_state(self):
        return {"buf": b"", "frames": [], "sasl": self.sasl}

    def on_client(self, st, data):
        st["buf"] += data
        b = st["buf"]
        while len(b) >= 4:
            n = int.from_bytes(b[:4], "big", signed=True)
            if n < 0 or len(b) < 4 + n:
                break
            st["frames"].append(b[4:4 + n])
            b = b[4 + n:]
        st["buf"] = b


class HttpProxy(Proxy):
    """Reads HTTP/1.1 requests (Content-Length bodies) from the client's bytes and keeps
    each as (method, target, body). Anything that does not parse (TLS) is ignored."""

    def new_state(self):
        return {"buf": b"", "reqs": [], "dead": False}

    def on_client(self, st, data):
        if st["dead"]:
            return
        st["buf"] += data
        while True:
            b = st["buf"]
            end = b.find(b"\r\n\r\n")
            if end < 0:
                if len(b) > 65536 or (b and not re.match(rb"[A-Z]{0,7}( |$)", b[:8])):
                    st["dead"] = True
                return
            head = b[:end].decode("latin-1").split("\r\n")
            parts = head[0].split(" ")
            if len(parts) != 3 or not parts[2].startswith("HTTP/"):
                st["dead"] = True
                return
            clen = 0
            for h in head[1:]:
                k, _, v = h.partition(":")
                if k.strip().lower() == "content-length":
                    clen = int(v.strip() or 0)
            if len(b) < end + 4 + clen:
                return
            st["reqs"].append((parts[0], parts[1], b[end + 4:end + 4 + clen]))
            st["buf"] = b[end + 4 + clen:]

    def requests(self):
        with self.lock:
            return [r for st in self.conns for r in st["reqs"]]


# ---- turning connections into corpus files ---------------------------------------------


def frame_key(f):
    return int.from_bytes(f[0:2], "big", signed=True) if len(f) >= 2 else -1


def login(frames):
    """For a SASL connection: (user, index of the first frame after the login), from the
    SaslHandshake/SaslAuthenticate frames or SaslHandshake v0's bare tokens."""
    user, after, raw_left = None, 0, 0
    for i, f in enumerate(frames[:12]):
        if raw_left:
            raw_left -= 1
            after = i + 1
        elif frame_key(f) == 17:
            after = i + 1
            if int.from_bytes(f[2:4], "big") == 0:  # v0: bare tokens follow
                raw_left = 1 if b"PLAIN" in f else 2
        elif frame_key(f) == 36:
            after = i + 1
        else:
            continue
        m = re.search(rb"n=([A-Za-z]+),r=", f) or re.search(rb"\x00([A-Za-z]+)\x00", f)
        if m and not user:
            user = m.group(1).decode()
    return user, after


def with_mode(f, mode):
    return f[:4] + bytes([mode]) + f[5:] if len(f) > 4 else f


def session(frames, mode):
    out, size = [], 0
    for i, f in enumerate(frames[:SESSION_FRAMES]):
        if size + len(f) > SESSION_BYTES:
            break
        out.append(with_mode(f, mode) if i == 0 else f)
        size += len(f) + len(SEP)
    return SEP.join(out)


def write_frames(out, proxies):
    n = 0
    for px in proxies:
        with px.lock:
            conns = list(px.conns)
        for st in conns:
            frames = st["frames"]
            if not frames:
                continue
            if not st["sasl"]:
                for f in frames:
                    save(out, "frame", f)
                if len(frames) > 1:
                    save(out, "frame", session(frames, 0))
                n += len(frames)
                continue
            user, after = login(frames)
            save(out, "frame", session(frames, MODE_SASL))
            mode = MODE_SASL | MODE_AUTHORIZE | PRINCIPAL_BITS.get(user, 0)
            rest = frames[after:]
            if user in PRINCIPAL_BITS:
                for f in rest:
                    save(out, "frame", with_mode(f, mode))
                if len(rest) > 1:
                    save(out, "frame", session(rest, mode))
            n += len(frames)
    return n


ADMIN_SEP, ADMIN_SESSION = b"\n#REQUEST#\n", 16  # fuzz_admin_json.c's FZ_SEP, FZ_MAX_REQS


def write_admin(out, proxy):
    """Every request alone, and each run of 16 in a row as one input (state one request
    builds, the next meets)."""
    reqs = [("%s %s\n" % (m, t)).encode() + body for m, t, body in proxy.requests()]
    for r in reqs:
        save(out, "admin_json", r)
    for i in range(0, len(reqs) - 1, ADMIN_SESSION):
        save(out, "admin_json", ADMIN_SEP.join(reqs[i:i + ADMIN_SESSION]))
    return len(reqs)


# ---- the broker -------------------------------------------------------------------------


class CaptureBroker(Broker):
    """A Broker whose Kafka listeners and admin API are reached through recording proxies."""

    def __init__(self):
        super().__init__(config={"authorizer": "acl", "super.users": "User:ANONYMOUS;User:admin",
                                 "connection.failed.authentication.delay.ms": 10,
                                 "auto.create.topics.enable": "true"},
                         listeners={"SASL_PLAINTEXT": "SASL_PLAINTEXT"})
        self.kproxy = KafkaProxy(self.kafka_port, sasl=False)
        self.sproxy = KafkaProxy(self.ports["SASL_PLAINTEXT"], sasl=True)
        self.hproxy = HttpProxy(self.admin_port)
        self.config["advertised.listeners"] = "PLAINTEXT://127.0.0.1:%d,SASL_PLAINTEXT://127.0.0.1:%d" % (
            self.kproxy.port, self.sproxy.port)

    @property
    def admin_url(self):
        return "http://127.0.0.1:%d" % self.hproxy.port

    @property
    def plain(self):
        return "127.0.0.1:%d" % self.kproxy.port

    @property
    def sasl(self):
        return "127.0.0.1:%d" % self.sproxy.port

    def setup(self):
        """The users, rules and topics of fuzz_broker.h."""
        for who, pw in PASSWORDS.items():
            body = {"password": pw}
            if who in ACLS:
                body["acls"] = ACLS[who]
            st, resp = self.http("PUT", "/v1/principals/" + who, body)
            assert st in (200, 201), resp
        self.create_topic("t", 2)
        self.create_topic("t-deny", 1)
        self.create_topic("v", 1, shared={"virtual_partitions": 4})


# ---- client scenarios -------------------------------------------------------------------


def ck_conf(b, user=None, mech="SCRAM-SHA-512", pw=None):
    if not user:
        return {"bootstrap.servers": b.plain, "socket.timeout.ms": 10000}
    return {"bootstrap.servers": b.sasl, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanisms": mech, "sasl.username": user,
            "sasl.password": pw or PASSWORDS.get(user, "x"), "socket.timeout.ms": 10000}


def ck_produce(conf, topic, n=10, **extra):
    from confluent_kafka import Producer
    p = Producer(dict(conf, **{"message.timeout.ms": 10000}, **extra))
    for i in range(n):
        p.produce(topic, b"value-%d" % i, key=b"k%d" % (i % 3), headers=[("h", b"v")])
    p.flush(15)


def ck_consume(conf, topics, group, n=10, timeout=15):
    from confluent_kafka import Consumer
    c = Consumer(dict(conf, **{"group.id": group, "auto.offset.reset": "earliest",
                               "enable.auto.commit": False, "session.timeout.ms": 6000}))
    got, deadline = 0, time.monotonic() + timeout
    try:
        c.subscribe(topics)
        while got < n and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got += 1
        if got:
            c.commit(asynchronous=False)
    except Exception:
        pass
    finally:
        c.close()
    return got


def sc_kcat(b):
    base = ["kcat", "-q", "-b", b.plain, "-m", "10"]
    run(base + ["-L"], timeout=30)
    run(base + ["-P", "-t", "t", "-K", ":"], input="k1:one\nk2:two\nthree\n", timeout=30)
    run(base + ["-C", "-t", "t", "-o", "beginning", "-e"], timeout=30)
    run(base + ["-C", "-t", "t", "-p", "1", "-o", "-2", "-e"], timeout=30)
    run(base + ["-Q", "-t", "t:0:1700000000000"], timeout=30)
    run(base + ["-G", "g-kcat", "-o", "beginning", "-e", "t"], timeout=40)
    sasl = ["kcat", "-q", "-b", b.sasl, "-m", "10", "-X", "security.protocol=SASL_PLAINTEXT",
            "-X", "sasl.mechanisms=PLAIN", "-X", "sasl.username=alice",
            "-X", "sasl.password=" + PASSWORDS["alice"]]
    run(sasl + ["-L"], timeout=30)
    run(sasl + ["-P", "-t", "t"], input="from alice\n", timeout=30)
    run(sasl + ["-C", "-t", "t", "-o", "beginning", "-e"], timeout=30)
    bad = ["kcat", "-q", "-b", b.sasl, "-m", "5", "-X", "security.protocol=SASL_PLAINTEXT",
           "-X", "sasl.mechanisms=SCRAM-SHA-256", "-X", "sasl.username=mallory",
           "-X", "sasl.password=guess", "-L"]
    run(bad, timeout=20)


def sc_confluent(b):
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic
    conf = ck_conf(b)
    ck_produce(conf, "t", 20, **{"enable.idempotence": True, "acks": "all",
                                 "compression.type": "gzip"})
    ck_produce(conf, "t-lz4", 5, **{"compression.type": "lz4", "linger.ms": 5})  # kafka-python lacks lz4
    ck_consume(conf, ["t"], "g-ck", 20)
    c = Consumer(dict(conf, **{"group.id": "g-ck2"}))
    try:
        c.get_watermark_offsets(TopicPartition("t", 0), timeout=5)
        c.offsets_for_times([TopicPartition("t", 0, 1700000000000)], timeout=5)
        c.assign([TopicPartition("t", 1, 0)])
        c.poll(1.0)
        c.commit(offsets=[TopicPartition("t", 1, 1)], asynchronous=False)
        c.committed([TopicPartition("t", 1)], timeout=5)
    except Exception:
        pass
    finally:
        c.close()
    a = AdminClient(conf)
    waitall(a.create_topics([NewTopic("t-ck-admin", 2, 1, config={"retention.ms": "60000",
                                                                   "cleanup.policy": "delete"})]))
    waitall(a.describe_configs([ConfigResource("topic", "t"), ConfigResource("broker", "0")]))
    waitall(a.alter_configs([ConfigResource("topic", "t-ck-admin",
                                            set_config={"retention.ms": "120000"})]))
    waitall(a.create_partitions([NewPartitions("t-ck-admin", 3)]))
    try:
        a.list_groups(timeout=5)
        a.list_topics(timeout=5)
    except Exception:
        pass
    waitall(a.delete_topics(["t-ck-admin"]))


def waitall(futs):
    for f in (futs or {}).values():
        try:
            f.result(timeout=15)
        except Exception:
            pass


def sc_kafka_python(b):
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewPartitions, NewTopic
    for api in (None, (0, 10, 1)):  # 0.10.1: old request versions (Fetch is refused)
        kw = {"api_version": api} if api else {}
        try:
            p = KafkaProducer(bootstrap_servers=b.plain, acks=1, compression_type="gzip", **kw)
            for i in range(5):
                p.send("t", key=b"kp", value=b"kafka-python %d" % i)
            p.flush(15)
            p.close()
            c = KafkaConsumer("t", bootstrap_servers=b.plain, group_id="g-kp%s" % ("-old" if api else ""),
                              auto_offset_reset="earliest", consumer_timeout_ms=4000, **kw)
            for _ in c:
                pass
            c.commit()
            c.close()
        except Exception as e:
            print("capture: kafka-python %s: %r" % (api, e), file=sys.stderr)
    a = KafkaAdminClient(bootstrap_servers=b.plain)
    for call in (
        lambda: a.create_topics([NewTopic("t-kp-admin", 1, 1, topic_configs={"retention.bytes": "1048576"})]),
        lambda: a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "t")]),
        lambda: a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "t-kp-admin",
                                                configs={"retention.ms": "99999"})]),
        lambda: a.create_partitions({"t-kp-admin": NewPartitions(2)}),
        lambda: a.list_consumer_groups(),
        lambda: a.describe_consumer_groups(["g-kp", "g-ck"]),
        lambda: a.list_consumer_group_offsets("g-kp"),
        lambda: a.delete_consumer_groups(["g-kp-old"]),
        lambda: a.delete_topics(["t-kp-admin"]),
    ):
        try:
            call()
        except Exception:
            pass
    a.close()


def sc_kafkajs(b):
    js = os.path.join(E2E, "js", "roundtrip.js")
    env = dict(os.environ, NODE_PATH=os.path.join(REPO_ROOT, "tests", ".deps", "node_modules"),
               KAFKAJS_NO_PARTITIONER_WARNING="1")
    for mode in ("produce", "consume"):
        run(["node", js, b.plain, "t-js", mode], timeout=60, env=env)


def sc_shared_view(b):
    conf = ck_conf(b)
    ck_produce(conf, "v", 10, **{"batch.num.messages": 1, "linger.ms": 0})
    ck_consume(conf, ["v.shared"], "g-view", 10)


def sc_share_group(b):
    """librdkafka 2.15.1's share consumer (tests/share), when it is built."""
    rdk = os.path.join(REPO_ROOT, "tests", ".deps", "rdk215")
    if not os.path.isdir(os.path.join(rdk, "lib")):
        print("capture: no tests/.deps/rdk215; skipping the share group", file=sys.stderr)
        return
    d = tempfile.mkdtemp(prefix="sluice-capture-")
    exe = {}
    for name in ("share_consumer", "share_config"):
        exe[name] = os.path.join(d, name)
        r = run(["cc", "-O1", "-w", "-I", os.path.join(rdk, "include"), "-o", exe[name],
                 os.path.join(REPO_ROOT, "tests", "share", name + ".c"), "-L", os.path.join(rdk, "lib"),
                 "-Wl,-rpath," + os.path.join(rdk, "lib"), "-lrdkafka"], timeout=120)
        if r.returncode != 0:
            print("capture: cannot build %s; skipping" % name, file=sys.stderr)
            return
    run([exe["share_config"], "-b", b.plain, "-g", "sg-1", "share.auto.offset.reset=earliest",
         "share.record.lock.duration.ms=15000"], timeout=30)
    r = run([exe["share_consumer"], "-b", b.plain, "-g", "sg-1", "-t", "t", "-n", "8", "-T", "15000",
             "-r", "value-3", "-R", "value-4"], timeout=40)
    if r.returncode:
        print("capture: share_consumer: %s" % r.stderr.decode(errors="replace")[-500:], file=sys.stderr)


def sc_sasl(b):
    from confluent_kafka.admin import AdminClient
    alice = ck_conf(b, "alice", "SCRAM-SHA-512")
    ck_produce(alice, "t", 5)
    ck_produce(alice, "t-deny", 1)
    ck_consume(alice, ["t"], "g-alice", 5)
    ck_consume(alice, ["t-deny", "v.shared"], "g-alice2", 1, timeout=6)
    try:
        AdminClient(alice).list_topics(timeout=5)
        AdminClient(ck_conf(b, "bob", "SCRAM-SHA-256")).list_topics(timeout=5)
    except Exception:
        pass
    ck_consume(ck_conf(b, "bob", "SCRAM-SHA-256"), ["t"], "h-bob", 1, timeout=6)
    ck_produce(ck_conf(b, "alice", "PLAIN"), "t", 2)
    ck_produce(ck_conf(b, "alice", "PLAIN", pw="wrong"), "t", 1)


def sc_kafka_python_sasl(b):
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import (ACL, ACLFilter, ACLOperation, ACLPermissionType, KafkaAdminClient,
                             ResourcePattern, ResourcePatternFilter, ResourceType)
    from kafka.admin.acl_resource import ACLResourcePatternType
    sasl = {"security_protocol": "SASL_PLAINTEXT"}
    a = KafkaAdminClient(bootstrap_servers=b.sasl, sasl_mechanism="SCRAM-SHA-512",
                         sasl_plain_username="admin", sasl_plain_password=PASSWORDS["admin"], **sasl)
    acl = ACL("User:carol", "*", ACLOperation.READ, ACLPermissionType.ALLOW,
              ResourcePattern(ResourceType.TOPIC, "carol.", ACLResourcePatternType.PREFIXED))
    acl2 = ACL("User:carol", "*", ACLOperation.WRITE, ACLPermissionType.DENY,
               ResourcePattern(ResourceType.GROUP, "carol-g", ACLResourcePatternType.LITERAL))
    flt = ACLFilter("User:carol", None, ACLOperation.ANY, ACLPermissionType.ANY,
                    ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY))
    for call in (lambda: a.create_acls([acl, acl2]), lambda: a.describe_acls(flt),
                 lambda: a.describe_acls(ACLFilter(None, None, ACLOperation.ANY, ACLPermissionType.ANY,
                                                   ResourcePatternFilter(ResourceType.TOPIC, "t",
                                                                         ACLResourcePatternType.MATCH))),
                 lambda: a.delete_acls([flt])):
        try:
            call()
        except Exception:
            pass
    a.close()
    # api_version 0.10.1: SaslHandshake v0, then bare PLAIN / SCRAM tokens
    for mech in ("PLAIN", "SCRAM-SHA-256"):
        p = KafkaProducer(bootstrap_servers=b.sasl, sasl_mechanism=mech, sasl_plain_username="alice",
                          sasl_plain_password=PASSWORDS["alice"], api_version=(0, 10, 1), **sasl)
        p.send("t", b"v0 framing %s" % mech.encode())
        p.flush(15)
        p.close()
    c = KafkaConsumer("t", bootstrap_servers=b.sasl, sasl_mechanism="SCRAM-SHA-512",
                      sasl_plain_username="alice", sasl_plain_password=PASSWORDS["alice"],
                      group_id="g-kp-alice", auto_offset_reset="earliest", consumer_timeout_ms=4000, **sasl)
    for _ in c:
        pass
    c.close()


SCENARIOS = [sc_kcat, sc_confluent, sc_kafka_python, sc_kafkajs, sc_shared_view, sc_share_group,
             sc_sasl, sc_kafka_python_sasl]
SCENARIO_TIMEOUT_S = 120


class Addrs:
    """What a scenario needs of the broker: the proxies' addresses."""

    def __init__(self, plain, sasl):
        self.plain, self.sasl = plain, sasl


def run_scenario(b, sc):
    """Runs one scenario in a child process, so a client that hangs is killed, not the
    capture."""
    cmd = [sys.executable, os.path.abspath(__file__), "--scenario", sc.__name__, b.plain, b.sasl]
    try:
        r = subprocess.run(cmd, timeout=SCENARIO_TIMEOUT_S, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
        if r.returncode:
            print("capture: %s exited %d: %s" % (sc.__name__, r.returncode,
                                                 r.stderr.decode(errors="replace")[-500:]),
                  file=sys.stderr)
    except subprocess.TimeoutExpired:
        print("capture: %s timed out; its traffic so far is kept" % sc.__name__, file=sys.stderr)


def capture(out):
    b = CaptureBroker()
    try:
        b.start()
        b.setup()
        for sc in SCENARIOS:
            t0 = time.monotonic()
            run_scenario(b, sc)  # a client that fails still leaves its traffic
            print("capture: %s %.1f s" % (sc.__name__, time.monotonic() - t0), file=sys.stderr)
        b.http("GET", "/v1/groups")
        b.http("GET", "/v1/topics?limit=2")
        b.http("GET", "/v1/principals/alice")
        time.sleep(0.5)
        nf = write_frames(out, [b.kproxy, b.sproxy])
        na = write_admin(out, b.hproxy)
        print("capture: %d frames, %d admin requests" % (nf, na), file=sys.stderr)
        assert b.stop() == 0, b.log_tail(40)
    finally:
        for px in (b.kproxy, b.sproxy, b.hproxy):
            px.close()
        b.close()


def capture_e2e(out, files):
    env = dict(os.environ, SLUICE_CAPTURE_DIR=os.path.abspath(out),
               PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [os.path.join(E2E, "run.sh"), "-p", "capture_admin"] + list(files)
    return subprocess.call(cmd, env=env, cwd=REPO_ROOT)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--e2e", action="store_true", help="run e2e test files (and pytest args)")
    ap.add_argument("--scenario", help=argparse.SUPPRESS)  # run_scenario()'s child
    ap.add_argument("out")
    ap.add_argument("files", nargs="*")
    a, extra = ap.parse_known_args()
    a.files += extra  # pytest options for --e2e
    if a.scenario:
        {sc.__name__: sc for sc in SCENARIOS}[a.scenario](Addrs(a.out, a.files[0]))
        return
    if a.e2e:
        sys.exit(capture_e2e(a.out, a.files))
    capture(a.out)


if __name__ == "__main__":
    main()
