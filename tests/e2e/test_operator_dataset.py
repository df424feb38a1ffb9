"""test_operator_dataset.py: TrainingDataset end to end: sluice-controller against the test
Kubernetes API server (tests/k8s/apiserver.py), real kubectl, a real sluice-broker and
the SigV4-checking s3rver.

A TrainingDataset applied with kubectl becomes a dataset topic over the S3 prefix with a
shared view and a share group; the cache is warmed; the status shows objects, bytes,
cached percent, S3 requests and consumers. Pods of the training job (Pod objects in the
test API server, with nvidia.com/gpu requests) appearing and disappearing change the
share group's expected members, and a deleted pod's in-flight records go to another
consumer at once (a real classic consumer with client.id = the pod's name, on the
shared view). A suspended PyTorchJob or JobSet, or an admitted Kueue Workload, matching
the consumer selector warms the dataset before any pod starts.

Known broker limitation: a shared view over a dataset topic hands out records one at a
time, seconds apart, to one virtual partition only: the share state acquires the offset
gap after each object (object i starts at offset (i // P) << 24) as in-flight records
(GET /v1/share-groups/{id} shows inflight 16777215), so the view's unacknowledged budget
is gone and each acquire walks millions of offsets. The release test therefore has its
trainers read an ordinary topic's view served by the dataset's share group.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from harness import REPO_ROOT, Broker
from test_operator_topic import APISERVER, CRDS, KUBECTL, ApiServer, Controller, ready, wait_for

sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "s3"))
from s3server import S3rver, s3rver_available  # noqa: E402

pytestmark = [
    pytest.mark.skipif(not (os.path.exists(KUBECTL) and os.path.exists(APISERVER)),
                       reason="needs /usr/bin/kubectl and tests/k8s/apiserver.py"),
    pytest.mark.skipif(not s3rver_available(), reason="s3rver not installed (scripts/deps.sh test)"),
]

NS = "default"
THIRDPARTY = os.path.join(REPO_ROOT, "tests", "k8s", "thirdparty")
CACHE_CFG = {"cache.block.bytes": 64 << 10, "cache.memory.bytes": 32 << 20,
             "cache.disk.bytes": 64 << 20}
JOB_LABEL = "training.kubeflow.org/job-name"
MEMBER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "view_member.py")


@pytest.fixture
def env(request):
    """API server with our CRDs and the Kueue/Kubeflow/JobSet stand-ins, s3rver with
    bucket ds, the S3 credentials Secret, and a broker with a small cache."""
    tmp = tempfile.mkdtemp(prefix="sluice-op-ds-")
    s3 = S3rver(buckets=["ds"]).start()
    api = ApiServer(tmp)
    api.kubectl("apply", "-f", CRDS)
    api.kubectl("apply", "-f", THIRDPARTY)
    api.kubectl("create", "secret", "generic", "s3-creds", "--from-literal=AWS_ACCESS_KEY_ID=S3RVER",
                "--from-literal=AWS_SECRET_ACCESS_KEY=S3RVER")
    broker = Broker(config=CACHE_CFG)
    broker.start()
    ctls = []
    try:
        yield api, broker, s3, tmp, ctls
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
        s3.stop()
        assert rc == 0, "broker exit %r\n%s" % (rc, broker.log_tail())
        broker.assert_clean()
        broker.close()
        shutil.rmtree(tmp, ignore_errors=True)


def upload(s3, prefix, n, size):
    """n objects prefix/obj-NNN.bin of size bytes; each starts with its own name."""
    cli = s3.client()
    sent = []
    for i in range(n):
        head = ("%sobj-%03d" % (prefix, i)).encode()
        cli.put_object("ds", "%sobj-%03d.bin" % (prefix, i), head + b"." * (size - len(head)))
        sent.append(head.decode())
    return sent


def dataset_doc(name, s3, prefix, selector=None, warm=0, **spec):
    d = {"apiVersion": "sluice.dev/v1alpha1", "kind": "TrainingDataset",
         "metadata": {"name": name, "namespace": NS},
         "spec": dict({"source": {"uri": "s3://ds/%s" % prefix, "endpoint": s3.endpoint,
                                  "credentialsSecret": "s3-creds"},
                       "partitions": 2, "cache": {"warmPercent": warm}}, **spec)}
    if selector:
        d["spec"]["consumers"] = {"selector": selector, "gpusPerConsumer": 1}
    return d


def tds(api, name):
    return api.get("trainingdataset", name)


def wait_ready(api, name, timeout=60):
    def check():
        o = tds(api, name)
        c = ready(o)
        if c and c["status"] == "True" and o["status"].get("observedGeneration") == o["metadata"]["generation"]:
            return o
        return None
    return wait_for(check, timeout=timeout, what="TrainingDataset %s Ready" % name)


def share_group(broker, gid):
    st, body = broker.http("GET", "/v1/share-groups/" + gid)
    return body if st == 200 else None


def expected_members(broker, gid):
    return ((share_group(broker, gid) or {}).get("config") or {}).get("expected_members")


def pod_doc(name, job, gpus=1, labels=None):
    lab = {JOB_LABEL: job} if job else {}
    lab.update(labels or {})
    res = {"requests": {"nvidia.com/gpu": str(gpus)}, "limits": {"nvidia.com/gpu": str(gpus)}} if gpus else {}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS, "labels": lab},
            "spec": {"containers": [{"name": "trainer", "image": "trainer:1", "resources": res}]}}


def start_pod(api, name, job, gpus=1, phase="Running", **kw):
    """Creates the Pod, then sets its phase through /status as the kubelet would."""
    api.apply(pod_doc(name, job, gpus, **kw))
    api.kubectl("patch", "pod", name, "--subresource=status", "--type=merge",
                "-p", json.dumps({"status": {"phase": phase}}))


def events(api, reason):
    items = json.loads(api.kubectl("get", "events", "-o", "json").stdout)["items"]
    return [e for e in items if e["reason"] == reason]


@pytest.mark.timeout(240)
def test_dataset_lifecycle_pods_and_status(env):
    api, broker, s3, tmp, ctls = env
    upload(s3, "train/", 40, 48 << 10)
    ctl = Controller(api, broker, tmp)
    ctls.append(ctl)
    api.apply(dataset_doc("imagenet", s3, "train/", selector="%s=resnet" % JOB_LABEL, warm=50,
                          sharedView={"virtualPartitions": 8, "lockMs": 60000}))
    obj = wait_ready(api, "imagenet")
    st = obj["status"]
    assert st["topicName"] == "imagenet" and st["sharedView"] == "imagenet.shared"
    assert st["shareGroup"] == "imagenet" and st["consumers"] == 0 and st["pods"] == []
    t = broker.http("GET", "/v1/topics/imagenet")[1]
    assert t["source"]["uri"] == "s3://ds/train/" and t["shared"]["view"] == "imagenet.shared"
    assert t["partitions"] == 2
    g = share_group(broker, "imagenet")
    assert g["config"]["expected_members"] == 0 and g["view"]["partitions"] == 8
    assert g["config"]["lock_ms"] == 60000
    # the dataset is listed, then warmed to half; the status follows
    obj = wait_for(lambda: (lambda o: o if o["status"].get("objects") == 40 and
                            o["status"].get("cachedPercent", 0) >= 45 and
                            o["status"].get("warm", {}).get("state") == "done" else None)(tds(api, "imagenet")),
                   timeout=60, what="objects listed and half the dataset cached")
    st = obj["status"]
    assert st["bytes"] == 40 * (48 << 10)
    assert st["s3Requests"] > 0
    w = st["warm"]
    assert (w["trigger"], w["key"], w["targetPercent"]) == ("Created", "created", 50)
    assert w["requestedAt"] and w["progressPercent"] == 100
    warm = broker.http("GET", "/v1/topics/imagenet/warm")[1]
    assert warm["target_bytes"] == 20 * (48 << 10), warm
    assert len(events(api, "Warming")) == 1
    out = api.kubectl("get", "tds", "imagenet", "-o", "wide").stdout.decode()
    assert "s3://ds/train/" in out and "True" in out and "done" in out, out

    # the job's pods: running ones count, by their GPUs
    start_pod(api, "resnet-worker-0", "resnet", gpus=2)
    wait_for(lambda: expected_members(broker, "imagenet") == 2, what="2 members")
    start_pod(api, "resnet-worker-1", "resnet", gpus=1)
    start_pod(api, "resnet-worker-2", "resnet", gpus=1, phase="Pending")   # not yet running
    start_pod(api, "other-0", "other-job", gpus=8)                          # another job
    start_pod(api, "resnet-cpu", "resnet", gpus=0)                          # counts as one
    wait_for(lambda: expected_members(broker, "imagenet") == 4, what="4 members")
    obj = wait_for(lambda: (lambda o: o if o["status"].get("consumers") == 4 else None)(tds(api, "imagenet")))
    assert sorted(obj["status"]["pods"]) == ["resnet-cpu", "resnet-worker-0", "resnet-worker-1"]
    api.kubectl("patch", "pod", "resnet-worker-2", "--subresource=status", "--type=merge",
                "-p", '{"status":{"phase":"Running"}}')
    wait_for(lambda: expected_members(broker, "imagenet") == 5, what="5 members")
    # pods go away (spot reclaim): the group shrinks and their records are released
    api.kubectl("delete", "pod", "resnet-worker-0", "resnet-cpu", "--wait=false")
    wait_for(lambda: expected_members(broker, "imagenet") == 2, what="2 members after deletes")
    wait_for(lambda: "pod resnet-worker-0 is gone; released" in ctl.text(), what="release call")
    assert len(events(api, "Released")) >= 2
    # drift on the broker is reverted
    st_, _ = broker.http("PUT", "/v1/share-groups/imagenet", {"expected_members": 40})
    assert st_ == 200
    wait_for(lambda: expected_members(broker, "imagenet") == 2, what="drift reverted")

    # delete: the topic goes, then the object
    api.kubectl("delete", "tds", "imagenet", "--wait=false")
    wait_for(lambda: broker.http("GET", "/v1/topics/imagenet")[0] == 404, what="topic deleted")
    wait_for(lambda: tds(api, "imagenet") is None, what="object gone")


def test_dataset_invalid_specs(env):
    api, broker, s3, tmp, ctls = env
    ctls.append(Controller(api, broker, tmp))
    api.fault({"action": "validate", "enabled": False})
    bad_uri = dataset_doc("bad-uri", s3, "x/")
    bad_uri["spec"]["source"]["uri"] = "http://ds/x/"
    bad_sel = dataset_doc("bad-sel", s3, "x/", selector="a in (b")
    bad_warm = dataset_doc("bad-warm", s3, "x/", warm=250)
    for d in (bad_uri, bad_sel, bad_warm):
        api.kubectl("apply", "--validate=false", "-f", "-", input=json.dumps(d))
    api.fault({"action": "validate", "enabled": True})
    for name, words in (("bad-uri", "s3://"), ("bad-sel", "selector"), ("bad-warm", "warmPercent")):
        c = wait_for(lambda: (lambda c: c if c and c["reason"] == "InvalidSpec" else None)(
            ready(tds(api, name))), timeout=90, what="%s InvalidSpec" % name)
        assert c["status"] == "False" and words in c["message"], c
    # a prefix with nothing in it: the broker cannot serve it, and the status says why
    api.apply(dataset_doc("empty", s3, "nothing-here/"))
    c = wait_for(lambda: (lambda c: c if c and c["reason"] == "SourceError" else None)(
        ready(tds(api, "empty"))), timeout=90, what="SourceError")
    assert c["status"] == "False" and "no objects" in c["message"], c
    # credentials that are not there: a reason, and Ready once they appear
    upload(s3, "y/", 3, 100)
    missing = dataset_doc("nocreds", s3, "y/")
    missing["spec"]["source"]["credentialsSecret"] = "nope"
    api.apply(missing)
    wait_for(lambda: (ready(tds(api, "nocreds")) or {}).get("reason") == "CredentialsUnavailable",
             timeout=90)
    api.kubectl("create", "secret", "generic", "nope", "--from-literal=AWS_ACCESS_KEY_ID=S3RVER",
                "--from-literal=AWS_SECRET_ACCESS_KEY=S3RVER")
    assert wait_ready(api, "nocreds", timeout=90)["status"]["objects"] == 3
    st, _ = broker.http("GET", "/v1/topics/bad-uri")
    assert st == 404
    # a broker topic of that name that is not a dataset: Conflict, and deleting the
    # TrainingDataset leaves that topic alone
    broker.create_topic("plain-data", 1)
    clash = dataset_doc("clash", s3, "y/", topicName="plain-data")
    api.apply(clash)
    c = wait_for(lambda: (lambda c: c if c and c["reason"] == "Conflict" else None)(
        ready(tds(api, "clash"))), timeout=90, what="Conflict")
    assert "not a dataset" in c["message"], c
    api.kubectl("delete", "tds", "clash", "--wait=false")
    wait_for(lambda: tds(api, "clash") is None, what="clash gone")
    assert broker.http("GET", "/v1/topics/plain-data")[0] == 200


class Trainer:
    """One classic consumer of a shared view as its own process (tests/e2e/view_member.py),
    with client.id = its pod name; commit_every large means it commits nothing, so every
    record it reports stays in flight (held) on the broker."""

    def __init__(self, broker, view, group, pod, work_ms, commit_every):
        spec = {"client": "confluent", "bootstrap": broker.bootstrap, "topic": view, "group": group,
                "name": pod, "work_ms": work_ms, "commit_every": commit_every,
                "conf": {"session.timeout.ms": 60000}}
        self.proc = subprocess.Popen(["/usr/bin/python3", MEMBER, json.dumps(spec)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.vals, self.lock = [], threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("ev") == "msg":
                with self.lock:
                    self.vals.append(ev["v"])

    def values(self):
        with self.lock:
            return set(self.vals)

    def stop(self, kill=False):
        if self.proc.poll() is None:
            self.proc.kill() if kill else self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(5)


@pytest.mark.timeout(240)
def test_deleted_pod_releases_records(env):
    """Two trainers with client.id = their pod names read a shared view served by the
    dataset's share group. One is killed holding records it never committed (a spot
    reclaim); deleting its pod has the controller release them, and the other trainer
    gets them at once, long before the 60 s session timeout or the 120 s lock would.

    The view is over an ordinary topic whose view the dataset's share group serves (the
    share group id is the dataset topic's name): see the module docstring for why not
    over the dataset topic itself."""
    from test_shared_view import produce

    api, broker, s3, tmp, ctls = env
    upload(s3, "r/", 4, 1024)
    ctl = Controller(api, broker, tmp)
    ctls.append(ctl)
    api.apply(dataset_doc("shards", s3, "r/", selector="%s=gpt" % JOB_LABEL, partitions=1,
                          sharedView={"virtualPartitions": 8, "lockMs": 120000}))
    wait_ready(api, "shards")
    broker.create_topic("shards-replay", 1, shared={"virtual_partitions": 8, "lock_ms": 120000,
                                                    "group": "shards"})
    produce(broker, "shards-replay", 0, 400)
    start_pod(api, "gpt-0", "gpt")
    start_pod(api, "gpt-1", "gpt")
    wait_for(lambda: expected_members(broker, "shards") == 2, what="2 members")
    a = Trainer(broker, "shards-replay.shared", "trainers", "gpt-0", work_ms=5, commit_every=10 ** 6)
    b = Trainer(broker, "shards-replay.shared", "trainers", "gpt-1", work_ms=5, commit_every=1)
    try:
        wait_for(lambda: len(a.values()) >= 10 and b.values(), timeout=60, what="both at work")
        a.stop(kill=True)
        held = a.values()
        time.sleep(3)
        assert not held <= b.values(), "the killed trainer's records reached the other without a release"
        t0 = time.time()
        api.kubectl("delete", "pod", "gpt-0", "--wait=false")
        wait_for(lambda: held <= b.values(), timeout=30, what="the held records at gpt-1")
        assert time.time() - t0 < 30
        assert "pod gpt-0 is gone; released" in ctl.text()
        ev = [e["message"] for e in events(api, "Released")]
        assert len(ev) == 1 and "gpt-0" in ev[0], ev
        released = int(ev[0].split("released ")[1].split()[0])
        assert released >= len(held), (released, len(held))
    finally:
        a.stop(kill=True)
        b.stop()
    assert share_group(broker, "shards")["redeliveries"] > 0
    assert expected_members(broker, "shards") == 1


@pytest.mark.timeout(240)
def test_warm_before_pods_start(env):
    """A suspended PyTorchJob, an admitted Kueue Workload (same job: no second warm), a
    suspended JobSet and a batch Job's admitted Workload each warm the dataset once,
    while no pod of theirs runs."""
    api, broker, s3, tmp, ctls = env
    upload(s3, "w/", 16, 32 << 10)
    ctls.append(Controller(api, broker, tmp))
    api.apply(dataset_doc("warmup", s3, "w/", selector="app=imagenet-train", warm=100))
    wait_for(lambda: (tds(api, "warmup") or {}).get("status", {}).get("warm", {}).get("state") == "done",
             timeout=60, what="first warm")

    def warm_status():
        return tds(api, "warmup")["status"]["warm"]

    def started():
        return broker.http("GET", "/v1/topics/warmup/warm")[1]["started_ms"]

    def wait_warm(key=None, trigger=None, job=None, after=0):
        return wait_for(lambda: (lambda w: w if (key is None or w["key"] == key) and
                                 (trigger is None or w["trigger"] == trigger) and
                                 (job is None or w.get("job") == job) and
                                 w.get("state") == "done" and started() > after else None)(warm_status()),
                        timeout=60, what="warm %s %s" % (trigger, job))

    first = started()
    tmpl = {"metadata": {"labels": {"app": "imagenet-train"}}, "spec": {"containers": [{"name": "t", "image": "t"}]}}
    # 1. a PyTorchJob created suspended (as Kueue does)
    api.apply({"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
               "metadata": {"name": "resnet", "namespace": NS},
               "spec": {"runPolicy": {"suspend": True},
                        "pytorchReplicaSpecs": {"Master": {"replicas": 1, "template": tmpl},
                                                "Worker": {"replicas": 3, "template": tmpl}}}})
    pj = api.get("pytorchjob", "resnet")
    w = wait_warm(key=pj["metadata"]["uid"], trigger="JobSuspended", job="PyTorchJob/resnet", after=first)
    assert tds(api, "warmup")["status"]["consumers"] == 0
    second = started()
    # 2. Kueue admits its Workload: the same job, so no second warm
    api.apply({"apiVersion": "kueue.x-k8s.io/v1beta1", "kind": "Workload",
               "metadata": {"name": "pytorchjob-resnet-7c1f0", "namespace": NS,
                            "ownerReferences": [{"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
                                                 "name": "resnet", "uid": pj["metadata"]["uid"],
                                                 "controller": True, "blockOwnerDeletion": True}]},
               "spec": {"queueName": "gpu", "podSets": [{"name": "master", "count": 1, "template": tmpl},
                                                        {"name": "worker", "count": 3, "template": tmpl}]}})
    admitted = {"status": {"admission": {"clusterQueue": "cq", "podSetAssignments": []},
                           "conditions": [{"type": "QuotaReserved", "status": "True", "reason": "QuotaReserved",
                                           "message": "", "lastTransitionTime": "2025-01-01T00:00:00Z"},
                                          {"type": "Admitted", "status": "True", "reason": "Admitted",
                                           "message": "", "lastTransitionTime": "2025-01-01T00:00:00Z"}]}}
    api.kubectl("patch", "workload", "pytorchjob-resnet-7c1f0", "--subresource=status", "--type=merge",
                "-p", json.dumps(admitted))
    time.sleep(4)  # more than a resync (3 s): nothing new happens
    assert warm_status()["key"] == w["key"] and started() == second
    # the job runs to its end
    api.kubectl("patch", "pytorchjob", "resnet", "--type=merge", "-p", '{"spec":{"runPolicy":{"suspend":false}}}')
    done = {"status": {"conditions": [{"type": "Finished", "status": "True", "reason": "Succeeded",
                                       "message": "", "lastTransitionTime": "2025-01-01T00:00:00Z"}]}}
    api.kubectl("patch", "workload", "pytorchjob-resnet-7c1f0", "--subresource=status", "--type=merge",
                "-p", json.dumps(done))
    # 3. a JobSet created suspended
    api.apply({"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet",
               "metadata": {"name": "llm", "namespace": NS},
               "spec": {"suspend": True, "replicatedJobs": [
                   {"name": "workers", "replicas": 2, "template": {"spec": {"template": tmpl}}}]}})
    js = api.get("jobset", "llm")
    wait_warm(key=js["metadata"]["uid"], trigger="JobSuspended", job="JobSet/llm", after=second)
    third = started()
    api.kubectl("patch", "jobset", "llm", "--type=merge", "-p", '{"spec":{"suspend":false}}')
    # 4. a batch Job's Workload admitted (its Job not suspended: the Workload alone counts)
    api.apply({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "finetune", "namespace": NS},
               "spec": {"template": dict(tmpl, spec={"containers": [{"name": "t", "image": "t"}],
                                                     "restartPolicy": "Never"})}})
    job = api.get("job", "finetune")
    api.apply({"apiVersion": "kueue.x-k8s.io/v1beta1", "kind": "Workload",
               "metadata": {"name": "job-finetune-1b2c3", "namespace": NS,
                            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "finetune",
                                                 "uid": job["metadata"]["uid"], "controller": True}]},
               "spec": {"queueName": "gpu", "podSets": [{"name": "main", "count": 1, "template": tmpl}]}})
    time.sleep(4)
    assert started() == third  # not admitted yet
    api.kubectl("patch", "workload", "job-finetune-1b2c3", "--subresource=status", "--type=merge",
                "-p", json.dumps(admitted))
    wait_warm(key=job["metadata"]["uid"], trigger="WorkloadAdmitted", job="Job/finetune", after=third)
    # a job whose pods the selector does not pick warms nothing
    fourth = started()
    other = dict(tmpl, metadata={"labels": {"app": "other"}})
    api.apply({"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet",
               "metadata": {"name": "unrelated", "namespace": NS},
               "spec": {"suspend": True, "replicatedJobs": [
                   {"name": "w", "template": {"spec": {"template": other}}}]}})
    time.sleep(4)
    assert started() == fourth and warm_status()["job"] == "Job/finetune"
    msgs = [e["message"] for e in events(api, "Warming")]
    assert len(msgs) == 4, msgs
    assert any("PyTorchJob/resnet" in m for m in msgs) and any("JobSet/llm" in m for m in msgs)
    assert tds(api, "warmup")["status"]["consumers"] == 0
