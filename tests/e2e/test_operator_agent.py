"""test_operator_agent.py: AgentChannel end to end: sluice-controller against the test
Kubernetes API server (tests/k8s/apiserver.py), real kubectl and a real sluice-broker.

An AgentChannel is applied with kubectl: the broker gets the agent's topics with their
storage modes, a Secret holds the credentials, the status lists the topics and turns
Ready. Adding, growing and dropping topics converges; deleting the channel removes its
topics (and principal) before the object goes. Injected API faults and a broker outage
still converge, and a spec that got past the schema gets InvalidSpec, not a crash loop.

The principal's ACLs are checked through GET /v1/principals/{name}; a broker without
that endpoint (404) skips only that test, which then checks the controller reported
PrincipalsUnsupported.
"""

import base64
import json
import os
import shutil
import tempfile
import time

import pytest

from harness import Broker
from test_operator_topic import APISERVER, CRDS, KUBECTL, ApiServer, Controller, ready, wait_for

pytestmark = pytest.mark.skipif(
    not (os.path.exists(KUBECTL) and os.path.exists(APISERVER)),
    reason="needs /usr/bin/kubectl and tests/k8s/apiserver.py")

NS = "default"


# the broker of test_agent_principal_acls: ACLs enforced on a SASL_PLAINTEXT listener;
# PLAINTEXT stays open (anonymous, a super user) as the test's back door
SASL_BROKER = {"config": {"authorizer": "acl", "super.users": "User:ANONYMOUS"},
               "listeners": {"SASL_PLAINTEXT": "SASL_PLAINTEXT"}}


def make_env(request, **broker_kw):
    tmp = tempfile.mkdtemp(prefix="sluice-op-agent-")
    api = ApiServer(tmp)
    api.kubectl("apply", "-f", CRDS)
    broker = Broker(**broker_kw)
    broker.start()
    ctls = []
    try:
        yield api, broker, tmp, ctls
    finally:
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            for c in ctls:
                print("--- controller log tail (%s) ---\n%s" % (c.logpath, c.text()[-6000:]))
            print("--- broker log tail ---\n%s" % broker.log_tail(40))
        for c in ctls:
            c.stop()
        rc = broker.stop()
        api.close()
        assert rc == 0, "broker exit %r\n%s" % (rc, broker.log_tail())
        broker.assert_clean()
        broker.close()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def env(request):
    yield from make_env(request)


@pytest.fixture
def sasl_env(request):
    yield from make_env(request, **SASL_BROKER)


def agent_doc(name, tenant="acme", agent=None, topics=None, **spec):
    spec = dict(spec, tenant=tenant, agentId=agent or name)
    if topics is not None:
        spec["topics"] = topics
    return {"apiVersion": "sluice.dev/v1alpha1", "kind": "AgentChannel",
            "metadata": {"name": name, "namespace": NS}, "spec": spec}


def broker_topic(broker, name):
    st, body = broker.http("GET", "/v1/topics/" + name)
    return body if st == 200 else None


def ready_status(api, name, status="True", reason=None, timeout=40):
    """Waits until the AgentChannel's Ready condition has status (and reason) for its
    current generation; returns the object."""
    def check():
        o = api.get("agentchannel", name)
        c = ready(o)
        if not c or c["status"] != status or (reason and c["reason"] != reason):
            return None
        if o["status"].get("observedGeneration") != o["metadata"]["generation"]:
            return None
        return o
    return wait_for(check, timeout=timeout, what="AgentChannel %s Ready=%s %s" % (name, status, reason or ""))


def secret(api, name):
    s = api.get("secret", name)
    if s is None:
        return None
    return {k: base64.b64decode(v).decode() for k, v in s.get("data", {}).items()}, s


def modes(broker, names):
    return {n: (broker_topic(broker, n) or {}).get("storage", {}).get("mode") for n in names}


TOPICS = [{"name": "input", "mode": "memory"}, {"name": "output", "mode": "hybrid"},
          {"name": "state", "mode": "persistent", "retentionMs": -1}]


def test_agent_lifecycle(env):
    api, broker, tmp, ctls = env
    ctls.append(Controller(api, broker, tmp))
    api.apply(agent_doc("planner-1", topics=TOPICS))
    obj = ready_status(api, "planner-1")
    names = ["acme.planner-1.input", "acme.planner-1.output", "acme.planner-1.state"]
    assert modes(broker, names) == dict(zip(names, ["memory", "hybrid", "persistent"]))
    st = obj["status"]
    assert [(t["name"], t["topicName"], t["mode"]) for t in st["topics"]] == [
        ("input", names[0], "memory"), ("output", names[1], "hybrid"), ("state", names[2], "persistent")]
    assert all(t["topicId"] == broker_topic(broker, t["topicName"])["id"] for t in st["topics"])
    assert st["topicCount"] == 3 and st["principal"] == "acme.planner-1"
    assert st["groupPrefix"] == "acme.planner-1." and st["secretName"] == "planner-1-kafka"
    assert "sluice.dev/finalizer" in obj["metadata"]["finalizers"]
    # the Secret: credentials for the principal, owned by the channel
    data, sobj = secret(api, "planner-1-kafka")
    assert data["username"] == "acme.planner-1" and len(data["password"]) >= 24
    assert data["groupPrefix"] == "acme.planner-1." and data["bootstrap"]
    owner = sobj["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("AgentChannel", "planner-1", obj["metadata"]["uid"])
    # kubectl shows it with its printer columns
    out = api.kubectl("get", "agc", "planner-1").stdout.decode()
    assert "planner-1-kafka" in out and "True" in out, out

    # change: add a topic and grow another; the password stays
    topics = TOPICS + [{"name": "events", "mode": "memory", "partitions": 2}]
    topics[1] = dict(topics[1], partitions=3)
    api.apply(agent_doc("planner-1", topics=topics))
    obj = ready_status(api, "planner-1")
    assert obj["status"]["topicCount"] == 4
    ev = broker_topic(broker, "acme.planner-1.events")
    assert ev["storage"]["mode"] == "memory" and ev["partitions"] == 2
    assert broker_topic(broker, names[1])["partitions"] == 3
    assert secret(api, "planner-1-kafka")[0]["password"] == data["password"]

    # a storage mode cannot change (CEL refuses it; past it, the controller says why)
    bad = [dict(t) for t in topics]
    bad[2]["mode"] = "memory"
    api.apply(agent_doc("planner-1", topics=bad))
    c = ready(ready_status(api, "planner-1", "False", "InvalidSpec"))
    assert "storage.mode" in c["message"] and names[2] in c["message"], c
    assert broker_topic(broker, names[2])["storage"]["mode"] == "persistent"

    # drop a topic (and undo the mode change): it is deleted from the broker
    api.apply(agent_doc("planner-1", topics=topics[:3]))
    obj = ready_status(api, "planner-1")
    wait_for(lambda: broker_topic(broker, "acme.planner-1.events") is None, what="dropped topic deleted")
    assert obj["status"]["topicCount"] == 3
    assert [t["name"] for t in obj["status"]["topics"]] == ["input", "output", "state"]

    # delete: the finalizer removes the topics, then the object (and its Secret) go
    api.kubectl("delete", "agentchannel", "planner-1", "--wait=false")
    wait_for(lambda: all(broker_topic(broker, n) is None for n in names), what="topics deleted")
    wait_for(lambda: api.get("agentchannel", "planner-1") is None, what="object gone")
    wait_for(lambda: api.get("secret", "planner-1-kafka") is None, what="Secret collected")
    reasons = {e["reason"] for e in json.loads(api.kubectl("get", "events", "-o", "json").stdout)["items"]}
    assert {"SecretCreated", "TopicDeleted"} <= reasons, reasons
    m = ctls[0].metrics()
    assert 'sluice_controller_reconciles_total{kind="AgentChannel",result="success"}' in m


def test_agent_default_topics_and_invalid_specs(env):
    api, broker, tmp, ctls = env
    ctls.append(Controller(api, broker, tmp))
    # no topics given: the schema's default (input, output, state; persistent)
    api.apply(agent_doc("bot-7", tenant="t1"))
    ready_status(api, "bot-7")
    assert set(modes(broker, ["t1.bot-7.input", "t1.bot-7.output", "t1.bot-7.state"]).values()) == {"persistent"}
    # specs the schema would refuse, stored with validation off (as if from an older CRD)
    api.fault({"action": "validate", "enabled": False})
    api.kubectl("apply", "--validate=false", "-f", "-", input=json.dumps(
        {"apiVersion": "sluice.dev/v1alpha1", "kind": "AgentChannel",
         "metadata": {"name": "no-tenant", "namespace": NS}, "spec": {"agentId": "x"}}))
    api.kubectl("apply", "--validate=false", "-f", "-", input=json.dumps(
        agent_doc("twice", topics=[{"name": "in"}, {"name": "in", "mode": "memory"}])))
    api.kubectl("apply", "--validate=false", "-f", "-", input=json.dumps(
        agent_doc("badmode", topics=[{"name": "in", "mode": "ssd"}])))
    api.fault({"action": "validate", "enabled": True})
    for name, words in (("no-tenant", "tenant"), ("twice", "given twice"), ("badmode", "storage mode")):
        c = ready(ready_status(api, name, "False", "InvalidSpec"))
        assert words in c["message"], c
    # nothing was made for them, and they delete at once (no finalizer was added)
    st, body = broker.http("GET", "/v1/topics?prefix=acme.")
    assert st == 200 and not body["topics"], body
    assert api.get("secret", "twice-kafka") is None
    for name in ("no-tenant", "twice", "badmode"):
        api.kubectl("delete", "agentchannel", name, "--wait=false")
        wait_for(lambda: api.get("agentchannel", name) is None, what="%s gone" % name)
    # the controller kept serving the good one
    assert ready(api.get("agentchannel", "bot-7"))["status"] == "True"


@pytest.mark.timeout(240)
def test_agent_faults_and_broker_outage_converge(env):
    api, broker, tmp, ctls = env
    ctl = Controller(api, broker, tmp)
    ctls.append(ctl)
    wait_for(lambda: "became leader" in ctl.text(), what="leader")
    api.fault({"action": "drop_watches"})
    api.fault({"action": "compact"})
    api.fault({"action": "410", "count": 2, "watch": True})
    api.fault({"action": "409", "count": 4, "methods": ["PUT"]})
    api.fault({"action": "500", "count": 3, "methods": ["POST"], "path_prefix": "/api/v1/namespaces/default/secrets"})
    api.fault({"action": "500", "count": 3, "methods": ["PUT"]})
    for i in range(5):
        api.apply(agent_doc("a%d" % i, topics=[{"name": "in", "mode": "memory"}, {"name": "out"}]))
    api.fault({"action": "drop_watches"})
    for i in range(5):
        ready_status(api, "a%d" % i, timeout=90)
        assert broker_topic(broker, "acme.a%d.in" % i)["storage"]["mode"] == "memory"
        assert secret(api, "a%d-kafka" % i)[0]["username"] == "acme.a%d" % i
    # one Secret per channel, whatever the retries
    secrets = json.loads(api.kubectl("get", "secrets", "-o", "json").stdout)["items"]
    assert sorted(s["metadata"]["name"] for s in secrets) == ["a%d-kafka" % i for i in range(5)]
    # the broker goes away: a new channel reports it, then converges once it is back
    broker.stop()
    api.apply(agent_doc("late", topics=[{"name": "in"}]))
    c = ready(ready_status(api, "late", "False", "BrokerUnavailable", timeout=60))
    assert c["message"], c
    broker.start()
    ready_status(api, "late", timeout=90)
    assert broker_topic(broker, "acme.late.in") is not None
    assert "sluice_controller_watch_restarts_total" in ctl.metrics()


def test_agent_principal_acls(sasl_env):
    """The principal and its ACLs on the broker: its topics, and consumer groups named with
    its prefix; then the agent logs in with the Secret's credentials (SCRAM, derived by the
    controller) and meets exactly those ACLs. Skipped while the broker answers 404 on
    /v1/principals."""
    api, broker, tmp, ctls = sasl_env
    ctls.append(Controller(api, broker, tmp))
    api.apply(agent_doc("acl-bot", topics=[{"name": "input"}, {"name": "output", "mode": "memory"}]))
    obj = ready_status(api, "acl-bot")
    pr = {c["type"]: c for c in obj["status"]["conditions"]}["PrincipalReady"]
    st, body = broker.http("GET", "/v1/principals/acme.acl-bot")
    if st == 404:
        assert (pr["status"], pr["reason"]) == ("False", "PrincipalsUnsupported"), pr
        assert ready(obj)["reason"] == "PrincipalsUnsupported"
        pytest.skip("the broker does not serve /v1/principals yet (404): the controller reports "
                    "PrincipalsUnsupported; the ACL assertions wait for the broker side")
    assert st == 200, (st, body)
    assert (pr["status"], pr["reason"]) == ("True", "Ready"), pr
    assert ready(obj)["reason"] == "Ready"
    assert "password" not in body or body["password"] != secret(api, "acl-bot-kafka")[0]["password"]

    def norm(a):
        return (a["resource"], a["name"], a.get("pattern", "literal"), a.get("permission", "allow"),
                a.get("host", "*"), tuple(sorted(a["operations"])))
    got = sorted(norm(a) for a in body["acls"])
    want = sorted([
        ("topic", "acme.acl-bot.input", "literal", "allow", "*", ("Describe", "Read", "Write")),
        ("topic", "acme.acl-bot.output", "literal", "allow", "*", ("Describe", "Read", "Write")),
        ("group", "acme.acl-bot.", "prefixed", "allow", "*", ("Describe", "Read")),
    ])
    assert got == want, got
    assert body["mechanisms"] == ["SCRAM-SHA-256", "SCRAM-SHA-512"], body
    check_agent_login(broker, secret(api, "acl-bot-kafka")[0])
    # a topic added to the spec is added to the ACLs (the PUT replaces all of them)
    api.apply(agent_doc("acl-bot", topics=[{"name": "input"}, {"name": "output", "mode": "memory"},
                                           {"name": "state"}]))
    wait_for(lambda: any(a["name"] == "acme.acl-bot.state"
                         for a in broker.http("GET", "/v1/principals/acme.acl-bot")[1]["acls"]),
             what="ACL for the new topic")
    # deleting the channel deletes the principal
    api.kubectl("delete", "agentchannel", "acl-bot", "--wait=false")
    wait_for(lambda: api.get("agentchannel", "acl-bot") is None, what="object gone")
    assert broker.http("GET", "/v1/principals/acme.acl-bot")[0] == 404


def check_agent_login(broker, creds):
    """As the agent: produce to its input and consume it with a group named with its
    prefix (allowed), then a group outside the prefix and another agent's topic (denied)."""
    from confluent_kafka import Consumer, KafkaError, Producer

    broker.create_topic("acme.other-bot.input")
    for mech in ("SCRAM-SHA-512", "SCRAM-SHA-256"):
        conf = {"bootstrap.servers": broker.addr("SASL_PLAINTEXT"), "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanisms": mech, "sasl.username": creds["username"],
                "sasl.password": creds["password"], "socket.timeout.ms": 10000}
        errs = []
        p = Producer(dict(conf, **{"message.timeout.ms": 10000}))
        for topic in ("acme.acl-bot.input", "acme.other-bot.input"):
            p.produce(topic, mech.encode(), on_delivery=lambda e, m: errs.append((m.topic(), e and e.code())))
        p.flush(15)
        assert sorted(errs) == [("acme.acl-bot.input", None),
                                ("acme.other-bot.input", KafkaError.TOPIC_AUTHORIZATION_FAILED)], errs
    c = Consumer(dict(conf, **{"group.id": creds["groupPrefix"] + "worker", "auto.offset.reset": "earliest"}))
    c.subscribe(["acme.acl-bot.input"])
    seen, end = set(), time.time() + 30
    while len(seen) < 2 and time.time() < end:
        m = c.poll(0.5)
        if m is not None and not m.error():
            seen.add(m.value())
    c.close()
    assert seen == {b"SCRAM-SHA-512", b"SCRAM-SHA-256"}, seen
    c = Consumer(dict(conf, **{"group.id": "not-my-prefix", "auto.offset.reset": "earliest"}))
    c.subscribe(["acme.acl-bot.input"])
    err, end = None, time.time() + 30
    while err is None and time.time() < end:
        m = c.poll(0.5)
        if m is not None and m.error():
            err = m.error().code()
    c.close()
    assert err == KafkaError.GROUP_AUTHORIZATION_FAILED, err
