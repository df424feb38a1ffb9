"""test_k8s_server.py: the test Kubernetes API server (tests/k8s/apiserver.py) keeps the
semantics the controller and kubectl rely on: discovery, kubectl apply/get/delete of our
CRDs and examples, list/watch with resourceVersion, bookmarks and 410, 409 on stale
writes, the /status split, finalizers, selectors, garbage collection, faults and auth.
"""

import os
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "k8s"))

from kube_harness import ApiError, ApiServer  # noqa: E402

G = "/apis/sluice.dev/v1alpha1"
TOPICS = G + "/namespaces/default/topics"
PODS = "/api/v1/namespaces/default/pods"
SECRETS = "/api/v1/namespaces/default/secrets"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/default/leases"


def topic(name, partitions=1, labels=None, **spec):
    spec = dict(spec, partitions=partitions)
    meta = {"name": name}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "sluice.dev/v1alpha1", "kind": "Topic", "metadata": meta, "spec": spec}


def pod(name, labels=None):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels or {}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


@pytest.fixture
def api():
    with ApiServer() as a:
        a.kubectl("apply", "-f", "crds/")
        yield a


def names(lst):
    return sorted(o["metadata"]["name"] for o in lst["items"])


# -- discovery and kubectl --------------------------------------------------------------


def test_discovery_lists_builtin_and_crd_groups(api):
    assert api.get("/version")["major"] == "1"
    assert api.get("/api")["versions"] == ["v1"]
    groups = {g["name"] for g in api.get("/apis")["groups"]}
    assert {"coordination.k8s.io", "apiextensions.k8s.io", "sluice.dev"} <= groups
    res = {r["name"]: r for r in api.get(G)["resources"]}
    assert res["topics"]["shortNames"] == ["stopic"]
    assert res["agentchannels"]["shortNames"] == ["agc"]
    assert res["trainingdatasets"]["shortNames"] == ["tds"]
    assert res["topics/status"]["verbs"] == ["get", "patch", "update"]
    assert res["topics"]["namespaced"] is True
    leases = {r["name"] for r in api.get("/apis/coordination.k8s.io/v1")["resources"]}
    assert "leases" in leases
    core = {r["name"] for r in api.get("/api/v1")["resources"]}
    assert {"pods", "secrets", "events", "configmaps", "namespaces"} <= core


def test_kubectl_apply_get_examples_with_printer_columns(api):
    out = api.kubectl("apply", "-f", "crds/examples/").stdout
    assert "topic.sluice.dev/events created" in out
    assert "trainingdataset.sluice.dev/imagenet-shards created" in out
    got = api.kubectl("get", "topics").stdout.splitlines()
    assert got[0].split() == ["NAME", "TOPIC", "PARTITIONS", "MODE", "READY", "AGE"]
    rows = {line.split()[0]: line.split() for line in got[1:]}
    assert rows["events"][1:3] == ["3", "persistent"]
    assert rows["gradients"][1:3] == ["8", "memory"]
    wide = api.kubectl("get", "stopic", "-o", "wide").stdout.splitlines()[0].split()
    assert "REASON" in wide and "TOPIC-ID" in wide
    tds = api.kubectl("get", "tds").stdout.splitlines()
    assert tds[0].split()[:3] == ["NAME", "SOURCE", "PARTITIONS"]
    assert "s3://datasets/imagenet/train/" in tds[1]
    assert "planner-1" in api.kubectl("get", "agc").stdout
    everything = api.kubectl("get", "sluice").stdout
    assert "topic.sluice.dev/events" in everything and "agentchannel.sluice.dev/planner-1" in everything
    # a status the controller wrote shows in the Ready column
    t = api.get(TOPICS + "/events")
    t["status"] = {"conditions": [{"type": "Ready", "status": "True", "reason": "Created",
                                   "message": "ok", "lastTransitionTime": "2025-01-01T00:00:00Z"}],
                   "topicName": "events"}
    api.replace(TOPICS + "/events/status", t)
    row = api.kubectl("get", "topic", "events").stdout.splitlines()[1].split()
    assert row[:5] == ["events", "events", "3", "persistent", "True"]


def test_kubectl_apply_defaults_reapply_and_change(api):
    api.kubectl("apply", "-f", "crds/examples/topic.yaml")
    t = api.get(TOPICS + "/events")
    assert t["metadata"]["generation"] == 1
    assert t["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    ds = api.kubectl("apply", "-f", "crds/examples/trainingdataset.yaml")
    assert ds.returncode == 0
    d = api.get(G + "/namespaces/default/trainingdatasets/imagenet-shards")["spec"]
    assert d["source"]["region"] == "us-east-1"           # defaulted
    assert d["sharedView"]["maxDeliveries"] == 5           # defaulted inside a given object
    assert "unchanged" in api.kubectl("apply", "-f", "crds/examples/topic.yaml").stdout
    assert api.get(TOPICS + "/events")["metadata"]["generation"] == 1
    with open(os.path.join(api.dir, "t.yaml"), "w") as f:
        f.write(open("crds/examples/topic.yaml").read().replace("partitions: 3", "partitions: 5"))
    assert "configured" in api.kubectl("apply", "-f", f.name).stdout
    t = api.get(TOPICS + "/events")
    assert t["spec"]["partitions"] == 5 and t["metadata"]["generation"] == 2


def test_kubectl_rejects_unknown_fields_and_schema_violations(api):
    bad = ("apiVersion: sluice.dev/v1alpha1\nkind: Topic\nmetadata: {name: bad}\n"
           "spec: {partitions: 1, partitons: 2}\n")
    p = api.kubectl("apply", "-f", "-", input=bad, check=False)
    assert p.returncode != 0 and 'unknown field "spec.partitons"' in p.stderr
    bad = ("apiVersion: sluice.dev/v1alpha1\nkind: Topic\nmetadata: {name: bad}\n"
           "spec: {partitions: 0, storage: {mode: disk}}\n")
    p = api.kubectl("apply", "-f", "-", input=bad, check=False)
    assert p.returncode != 0
    assert "spec.partitions" in p.stderr and "spec.storage.mode" in p.stderr
    bad = ("apiVersion: sluice.dev/v1alpha1\nkind: AgentChannel\nmetadata: {name: bad}\n"
           "spec: {tenant: acme}\n")
    p = api.kubectl("apply", "-f", "-", input=bad, check=False)
    assert p.returncode != 0 and "spec.agentId: Required value" in p.stderr


def test_kubectl_delete_waits_for_finalizers(api):
    api.kubectl("apply", "-f", "crds/examples/topic.yaml")
    api.patch(TOPICS + "/events", {"metadata": {"finalizers": ["sluice.dev/topic"]}})
    api.kubectl("delete", "topic", "events", "--wait=false")
    t = api.get(TOPICS + "/events")
    assert t["metadata"]["deletionTimestamp"]
    assert t["metadata"]["generation"] == 2  # deletion bumps generation, as the apiserver does
    done = []
    th = threading.Thread(target=lambda: done.append(
        api.kubectl("delete", "topic", "events", "--timeout=20s", check=False)))
    th.start()
    time.sleep(1.0)
    assert not done, "kubectl delete returned while a finalizer was pending"
    api.patch(TOPICS + "/events", [{"op": "remove", "path": "/metadata/finalizers/0"}], "json")
    th.join(30)
    assert done and done[0].returncode == 0, done and done[0].stderr
    with pytest.raises(ApiError) as e:
        api.get(TOPICS + "/events")
    assert e.value.code == 404


def test_kubectl_create_secret_and_namespace(api):
    # kubectl create sends protobuf bodies for these
    api.kubectl("create", "namespace", "ml")
    api.kubectl("create", "secret", "generic", "creds", "-n", "ml", "--from-literal=k=v")
    s = api.get("/api/v1/namespaces/ml/secrets/creds")
    assert s["data"] == {"k": "dg=="}


# -- writes: 409, 422, status split, generation -----------------------------------------


def test_create_existing_name_is_409(api):
    api.create(TOPICS, topic("a"))
    with pytest.raises(ApiError) as e:
        api.create(TOPICS, topic("a"))
    assert e.value.code == 409 and e.value.reason == "AlreadyExists"


def test_stale_update_is_409_and_missing_rv_is_422(api):
    t = api.create(TOPICS, topic("a"))
    t2 = dict(t, spec={"partitions": 2})
    newer = api.replace(TOPICS + "/a", t2)
    assert int(newer["metadata"]["resourceVersion"]) > int(t["metadata"]["resourceVersion"])
    t3 = dict(t, spec={"partitions": 3})  # still carries the old resourceVersion
    with pytest.raises(ApiError) as e:
        api.replace(TOPICS + "/a", t3)
    assert e.value.code == 409 and e.value.reason == "Conflict"
    t4 = dict(newer, metadata=dict(newer["metadata"]))
    del t4["metadata"]["resourceVersion"]
    with pytest.raises(ApiError) as e:
        api.replace(TOPICS + "/a", t4)
    assert e.value.code == 422
    # a merge patch naming a stale resourceVersion is a precondition too
    with pytest.raises(ApiError) as e:
        api.patch(TOPICS + "/a", {"metadata": {"resourceVersion": t["metadata"]["resourceVersion"]},
                                  "spec": {"partitions": 9}})
    assert e.value.code == 409
    with pytest.raises(ApiError) as e:
        api.patch(TOPICS + "/a", [{"op": "test", "path": "/spec/partitions", "value": 7}], "json")
    assert e.value.code == 422


def test_status_split_and_generation(api):
    t = api.create(TOPICS, dict(topic("a"), status={"topicId": "sneaky"}))
    assert "status" not in t  # create ignores status
    assert t["metadata"]["generation"] == 1
    # status writes ignore spec and metadata, and keep generation
    t["status"] = {"observedGeneration": 1, "topicId": "abc"}
    t["spec"]["partitions"] = 7
    t["metadata"]["labels"] = {"x": "y"}
    s = api.replace(TOPICS + "/a/status", t)
    assert s["status"]["topicId"] == "abc"
    assert s["spec"]["partitions"] == 1 and "labels" not in s["metadata"]
    assert s["metadata"]["generation"] == 1
    # main-resource writes ignore status; spec changes bump generation, metadata ones don't
    s["status"] = {"topicId": "overwritten"}
    s["metadata"]["labels"] = {"x": "y"}
    m = api.replace(TOPICS + "/a", s)
    assert m["status"]["topicId"] == "abc" and m["metadata"]["generation"] == 1
    m["spec"]["partitions"] = 4
    m = api.replace(TOPICS + "/a", m)
    assert m["metadata"]["generation"] == 2
    # a status patch, and a no-op status write that changes nothing at all
    p = api.patch(TOPICS + "/a/status", {"status": {"observedGeneration": 2}})
    assert p["status"] == {"observedGeneration": 2, "topicId": "abc"}
    again = api.patch(TOPICS + "/a/status", {"status": {"observedGeneration": 2}})
    assert again["metadata"]["resourceVersion"] == p["metadata"]["resourceVersion"]


def test_defaulting_and_pruning(api):
    t = api.create(TOPICS, {"apiVersion": "sluice.dev/v1alpha1", "kind": "Topic",
                            "metadata": {"name": "d"}, "spec": {"extra": 1}})
    assert t["spec"] == {"partitions": 1, "storage": {"mode": "persistent"}}
    with pytest.raises(ApiError) as e:
        api.create(TOPICS + "?fieldValidation=Strict", dict(topic("e"), spec={"extra": 1}))
    assert e.value.code == 400 and "spec.extra" in e.value.body["message"]
    # status fields the schema lacks are dropped, as a real apiserver prunes them
    api.patch(TOPICS + "/d/status", {"status": {"topicId": "x", "bogus": 1}})
    assert api.get(TOPICS + "/d")["status"] == {"topicId": "x"}


def test_validation_can_be_switched_off(api):
    api.fault("validate", enabled=False)
    t = api.create(TOPICS, topic("bad", partitions=0))
    assert t["spec"]["partitions"] == 0
    api.fault("validate", enabled=True)
    with pytest.raises(ApiError) as e:
        api.create(TOPICS, topic("bad2", partitions=0))
    assert e.value.code == 422


# -- finalizers, deletion, garbage collection, namespaces -------------------------------


def test_finalizers_and_deletion_timestamp(api):
    t = api.create(TOPICS, dict(topic("f"), metadata={"name": "f", "finalizers": ["a/b"]}))
    d = api.delete(TOPICS + "/f")
    assert d["metadata"]["deletionTimestamp"] and d["kind"] == "Topic"
    # deleting again changes nothing; adding a finalizer now is refused
    assert api.delete(TOPICS + "/f")["metadata"]["resourceVersion"] == d["metadata"]["resourceVersion"]
    with pytest.raises(ApiError) as e:
        api.patch(TOPICS + "/f", {"metadata": {"finalizers": ["a/b", "c/d"]}})
    assert e.value.code == 422
    events = []
    rv = d["metadata"]["resourceVersion"]
    cur = api.get(TOPICS + "/f")
    cur["metadata"]["finalizers"] = []
    api.replace(TOPICS + "/f", cur)
    with pytest.raises(ApiError):
        api.get(TOPICS + "/f")
    for ev in api.watch(TOPICS, resourceVersion=rv, timeoutSeconds=1):
        events.append(ev["type"])
    assert events == ["DELETED"]
    assert t["metadata"]["uid"]


def test_delete_preconditions(api):
    t = api.create(TOPICS, topic("p"))
    with pytest.raises(ApiError) as e:
        api.delete(TOPICS + "/p", {"preconditions": {"uid": "not-it"}})
    assert e.value.code == 409
    st = api.delete(TOPICS + "/p", {"preconditions": {"uid": t["metadata"]["uid"]}})
    assert st["status"] == "Success"


def test_owned_secret_is_garbage_collected(api):
    t = api.create(TOPICS, topic("owner"))
    ref = {"apiVersion": "sluice.dev/v1alpha1", "kind": "Topic", "name": "owner",
           "uid": t["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}
    api.create(SECRETS, {"apiVersion": "v1", "kind": "Secret",
                         "metadata": {"name": "owned", "ownerReferences": [ref]},
                         "stringData": {"a": "b"}})
    api.create(SECRETS, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "free"}})
    api.delete(TOPICS + "/owner")
    with pytest.raises(ApiError):
        api.get(SECRETS + "/owned")
    assert api.get(SECRETS + "/free")


def test_namespaces_must_exist_and_deletion_empties_them(api):
    with pytest.raises(ApiError) as e:
        api.create(G + "/namespaces/nope/topics", topic("a"))
    assert e.value.code == 404
    api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                      "metadata": {"name": "ml"}})
    api.create(G + "/namespaces/ml/topics", topic("a"))
    assert names(api.get(G + "/topics")) == ["a"]  # all namespaces
    api.delete("/api/v1/namespaces/ml")
    assert names(api.get(G + "/topics")) == []


def test_crd_deletion_removes_its_resources(api):
    api.create(TOPICS, topic("a"))
    api.delete("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/topics.sluice.dev")
    with pytest.raises(ApiError) as e:
        api.get(TOPICS)
    assert e.value.code == 404
    assert "topics" not in {r["name"] for r in api.get(G)["resources"]}
    api.kubectl("apply", "-f", "crds/topics.yaml")
    assert names(api.get(TOPICS)) == []


# -- list, selectors, paging ------------------------------------------------------------


def test_label_and_field_selectors(api):
    for name, labels in [("a", {"job": "x", "tier": "1"}), ("b", {"job": "y"}), ("c", {})]:
        api.create(PODS, pod(name, labels))

    def sel(s):
        return names(api.get(PODS, labelSelector=s))
    assert sel("job=x") == ["a"]
    assert sel("job==x") == ["a"]
    assert sel("job!=x") == ["b", "c"]
    assert sel("job in (x,y)") == ["a", "b"]
    assert sel("job notin (x)") == ["b", "c"]
    assert sel("job") == ["a", "b"]
    assert sel("!job") == ["c"]
    assert sel("job,tier=1") == ["a"]
    assert sel("job in (x, y),!tier") == ["b"]
    assert names(api.get(PODS, fieldSelector="metadata.name=b")) == ["b"]
    assert names(api.get(PODS, fieldSelector="metadata.name!=b")) == ["a", "c"]
    with pytest.raises(ApiError) as e:
        api.get(PODS, labelSelector="job in x")
    assert e.value.code == 400


def test_list_paging_with_continue(api):
    for i in range(7):
        api.create(TOPICS, topic("t%d" % i))
    seen, cont, rvs = [], None, set()
    while True:
        params = {"limit": 3}
        if cont:
            params["continue"] = cont
        page = api.get(TOPICS, **params)
        seen += [o["metadata"]["name"] for o in page["items"]]
        rvs.add(page["metadata"]["resourceVersion"])
        cont = page["metadata"].get("continue")
        if not cont:
            break
    assert seen == ["t%d" % i for i in range(7)]
    assert len(rvs) == 1  # every page reports the list's resourceVersion


# -- watch ------------------------------------------------------------------------------


def test_watch_from_resource_version_sees_every_change_in_order(api):
    rv = api.get(TOPICS)["metadata"]["resourceVersion"]
    t = api.create(TOPICS, topic("w"))
    t["spec"]["partitions"] = 2
    api.replace(TOPICS + "/w", t)
    api.delete(TOPICS + "/w")
    api.create(PODS, pod("other"))  # another resource: not in this watch
    evs = [(e["type"], e["object"]["metadata"]["name"], int(e["object"]["metadata"]["resourceVersion"]))
           for e in api.watch(TOPICS, resourceVersion=rv, timeoutSeconds=1)]
    assert [e[:2] for e in evs] == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]
    assert [e[2] for e in evs] == sorted(e[2] for e in evs)


def test_watch_without_resource_version_starts_with_current_state(api):
    api.create(TOPICS, topic("x"))
    api.create(TOPICS, topic("y"))
    evs = list(api.watch(TOPICS, timeoutSeconds=1))
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in evs] == [("ADDED", "x"), ("ADDED", "y")]


def test_watch_streams_live_events_and_bookmarks(api):
    rv = api.get(TOPICS)["metadata"]["resourceVersion"]
    got = []

    def reader():
        for e in api.watch(TOPICS, resourceVersion=rv, allowWatchBookmarks="true",
                           timeoutSeconds=4):
            got.append(e)
    th = threading.Thread(target=reader)
    th.start()
    time.sleep(0.5)
    api.create(TOPICS, topic("live"))
    th.join(10)
    types = [e["type"] for e in got]
    assert types[0] == "ADDED"
    assert "BOOKMARK" in types
    bm = [e for e in got if e["type"] == "BOOKMARK"][-1]["object"]
    assert bm["kind"] == "Topic" and int(bm["metadata"]["resourceVersion"]) >= \
        int(got[0]["object"]["metadata"]["resourceVersion"])


def test_watch_with_selector_sees_objects_move_in_and_out(api):
    rv = api.get(PODS)["metadata"]["resourceVersion"]
    api.create(PODS, pod("p", {"job": "a"}))
    api.patch(PODS + "/p", {"metadata": {"labels": {"job": "b"}}})
    api.patch(PODS + "/p", {"metadata": {"labels": {"job": "a"}}})
    api.create(PODS, pod("q", {"job": "b"}))
    evs = [(e["type"], e["object"]["metadata"]["name"])
           for e in api.watch(PODS, resourceVersion=rv, labelSelector="job=a", timeoutSeconds=1)]
    assert evs == [("ADDED", "p"), ("DELETED", "p"), ("ADDED", "p")]


def test_watch_too_old_resource_version_gets_410():
    with ApiServer(history=5) as api:
        api.kubectl("apply", "-f", "crds/")
        rv = api.get(TOPICS)["metadata"]["resourceVersion"]
        for i in range(10):
            api.create(TOPICS, topic("t%d" % i))
        evs = list(api.watch(TOPICS, resourceVersion=rv, timeoutSeconds=2))
        assert len(evs) == 1 and evs[0]["type"] == "ERROR"
        assert evs[0]["object"]["code"] == 410 and evs[0]["object"]["reason"] == "Expired"
        # a fresh list gives a resourceVersion that works again
        rv2 = api.get(TOPICS)["metadata"]["resourceVersion"]
        api.create(TOPICS, topic("later"))
        evs = list(api.watch(TOPICS, resourceVersion=rv2, timeoutSeconds=1))
        assert [e["type"] for e in evs] == ["ADDED"]


def test_compact_expires_watches_and_continue_tokens(api):
    for i in range(3):
        api.create(TOPICS, topic("t%d" % i))
    page = api.get(TOPICS, limit=1)
    rv = page["metadata"]["resourceVersion"]
    api.create(TOPICS, topic("after"))
    api.fault("compact")  # like etcd compaction at the current revision
    evs = list(api.watch(TOPICS, resourceVersion=rv, timeoutSeconds=1))
    assert evs[0]["type"] == "ERROR" and evs[0]["object"]["code"] == 410
    with pytest.raises(ApiError) as e:
        api.get(TOPICS, limit=1, **{"continue": page["metadata"]["continue"]})
    assert e.value.code == 410


# -- faults and auth --------------------------------------------------------------------


def test_fault_injection_counts_and_prefixes(api):
    api.fault("500", path_prefix=G, count=2)
    for _ in range(2):
        with pytest.raises(ApiError) as e:
            api.get(TOPICS)
        assert e.value.code == 500
    assert api.get(TOPICS)["items"] == []
    assert api.get(PODS)["items"] == []  # other prefixes never saw the fault
    t = api.create(TOPICS, topic("c"))
    api.fault("409", path_prefix=TOPICS + "/c", methods=["PUT"])
    with pytest.raises(ApiError) as e:
        api.replace(TOPICS + "/c", t)
    assert e.value.code == 409
    api.replace(TOPICS + "/c", t)
    api.fault("slow", path_prefix=TOPICS, delay_ms=400)
    t0 = time.monotonic()
    api.get(TOPICS)
    assert time.monotonic() - t0 >= 0.4
    api.fault("410", path_prefix=TOPICS, watch=True)
    evs = list(api.watch(TOPICS, resourceVersion="1", timeoutSeconds=1))
    assert evs[0]["type"] == "ERROR" and evs[0]["object"]["code"] == 410
    api.fault("429", path_prefix=TOPICS, retry_after=2)
    with pytest.raises(ApiError) as e:
        api.get(TOPICS)
    assert e.value.code == 429
    stats = api.stats()["requests"]
    assert stats["list topics"] >= 4 and stats["update topics"] >= 2


def test_drop_watches_ends_streams(api):
    rv = api.get(TOPICS)["metadata"]["resourceVersion"]
    done = threading.Event()

    def reader():
        for _ in api.watch(TOPICS, resourceVersion=rv, timeoutSeconds=30):
            pass
        done.set()
    th = threading.Thread(target=reader)
    th.start()
    time.sleep(0.5)
    assert not done.is_set()
    api.fault("drop_watches", path_prefix=G)
    assert done.wait(5), "the watch did not end after drop_watches"
    th.join(5)


def test_bearer_token_and_rotation():
    with ApiServer(token="s3cret") as api:
        assert api.get("/api/v1/namespaces")["items"]
        api.token = None
        with pytest.raises(ApiError) as e:
            api.get("/api/v1/namespaces")
        assert e.value.code == 401
        api.token = "s3cret"
        assert api.kubectl("get", "ns").returncode == 0
        api.fault("set_token", token="rotated")
        with pytest.raises(ApiError) as e:
            api.get("/api/v1/namespaces")
        assert e.value.code == 401
        api.token = "rotated"
        assert api.get("/api/v1/namespaces")


# -- leases and events ------------------------------------------------------------------


def test_lease_compare_and_swap(api):
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "sluice-controller"},
             "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15,
                      "renewTime": "2025-01-01T00:00:00.000000Z"}}
    a = api.create(LEASES, lease)
    b = dict(a, spec=dict(a["spec"], holderIdentity="b"))
    api.replace(LEASES + "/sluice-controller", b)
    c = dict(a, spec=dict(a["spec"], holderIdentity="c"))  # lost the race
    with pytest.raises(ApiError) as e:
        api.replace(LEASES + "/sluice-controller", c)
    assert e.value.code == 409
    assert api.get(LEASES + "/sluice-controller")["spec"]["holderIdentity"] == "b"


def test_events_are_stored_and_listed(api):
    ev = {"apiVersion": "v1", "kind": "Event", "metadata": {"generateName": "events."},
          "involvedObject": {"kind": "Topic", "name": "a", "namespace": "default"},
          "reason": "Created", "message": "topic created", "type": "Normal"}
    made = api.create("/api/v1/namespaces/default/events", ev)
    assert made["metadata"]["name"].startswith("events.")
    got = api.get("/api/v1/namespaces/default/events", fieldSelector="involvedObject.name=a")
    assert [e["reason"] for e in got["items"]] == ["Created"]
    ev2 = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e2"},
           "reason": "Ready", "note": "ok", "type": "Normal", "action": "Reconcile",
           "reportingController": "sluice.dev/controller", "reportingInstance": "x",
           "eventTime": "2025-01-01T00:00:00.000000Z",
           "regarding": {"kind": "Topic", "name": "a"}}
    assert api.create("/apis/events.k8s.io/v1/namespaces/default/events", ev2)
