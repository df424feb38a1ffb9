#!/usr/bin/env python3
"""operator_bench.py: sluice-controller figures for `make bench` (the "operator" section
of tests/bench/run.sh), against the test API server (apiserver.py), real kubectl and a
real sluice-broker, each figure beside a baseline measured in the same run:

  topic1     kubectl apply -> Ready for one Topic (median of --reps), beside kubectl
             apply alone and create -> Ready (the controller's own part)
  topics     --topics Topics applied with one `kubectl apply -f` of a multi-document
             file -> all Ready, beside that kubectl run alone, the API server's raw
             create rate (keep-alive POSTs) and the controller's rate-limit floor
             (topics / SLUICE_QPS reconciles per second)
  agents     --agents-reconciled AgentChannels created at once (the API server's /_bulk)
             -> all Ready (topics, Secret and principal each), with the controller's RSS
  steady     with everything in step, --idle-s seconds of periodic resync (every
             --resync-s): API requests per reconcile by verb, per object per resync,
             writes (none expected: no hot loop), Lease and watch traffic apart
  agents100k a standby replica (the Lease held elsewhere, so it lists and watches but
             does not act) with --agents AgentChannels in its cache: RSS, and RSS per
             object against the same replica before the bulk create

Prints "RESULT fig=NAME key=value ..." lines on stdout, progress on stderr.

  /usr/bin/python3 tests/k8s/operator_bench.py --bin build/bin [--topics 10000]
      [--agents 100000] [--agents-reconciled 2000] [--idle-s 60] [--resync-s 30]
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

from kube_harness import ApiServer, free_port  # noqa: E402

NS = "default"
GV = "/apis/sluice.dev/v1alpha1"
T0 = time.time()


def log(msg):
    sys.stderr.write("[operator %4.0fs] %s\n" % (time.time() - T0, msg))
    sys.stderr.flush()


def result(fig, **kv):
    print("RESULT fig=%s %s" % (fig, " ".join("%s=%s" % (k, v) for k, v in kv.items())), flush=True)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Proc:
    """A child process with its log in dir; stopped with SIGTERM."""

    def __init__(self, name, cmd, env, logdir):
        self.name = name
        self.logpath = os.path.join(logdir, name + ".log")
        self.log = open(self.logpath, "w")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def wait_until(fn, timeout, what, interval=0.2):
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(interval)
    raise RuntimeError("timed out after %.0f s waiting for %s" % (timeout, what))


def start_broker(bindir, tmp):
    kport, aport = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    data = os.path.join(tmp, "broker-data")
    os.makedirs(data)
    b = Proc("broker", [os.path.join(bindir, "sluice-broker"), "--data-dir", data,
                        "--kafka-listen", "127.0.0.1:%d" % kport,
                        "--admin-listen", "127.0.0.1:%d" % aport, "--log-level", "warn"], env, tmp)
    b.admin = "http://127.0.0.1:%d" % aport
    b.bootstrap = "127.0.0.1:%d" % kport

    def ready():
        try:
            return urllib.request.urlopen(b.admin + "/readyz", timeout=1).status == 200
        except OSError:
            return False
    wait_until(ready, 30, "the broker's /readyz")
    return b


class Controller(Proc):
    def __init__(self, bindir, api, broker, tmp, name, resync_s):
        self.metrics_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
        env.update(SLUICE_POD_NAME=name, SLUICE_METRICS_LISTEN="127.0.0.1:%d" % self.metrics_port,
                   SLUICE_RESYNC_SECONDS=str(resync_s), SLUICE_LOG_LEVEL="warn",
                   SLUICE_BOOTSTRAP=broker.bootstrap)
        super().__init__(name, [os.path.join(bindir, "sluice-controller"), "--kubeconfig",
                                api.kubeconfig, "--namespace", NS, "--broker-admin", broker.admin],
                         env, tmp)
        self.qps = float(env.get("SLUICE_QPS", "200"))
        wait_until(self.metrics, 20, "the controller's /metrics")

    def metrics(self):
        try:
            text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.metrics_port,
                                          timeout=5).read().decode()
        except OSError:
            return None
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                out[k] = float(v)
        return out

    def metric(self, name, **labels):
        m = self.metrics() or {}
        want = "%s{%s}" % (name, ",".join('%s="%s"' % kv for kv in labels.items())) if labels else name
        return m.get(want, 0.0)

    def sum_metric(self, prefix):
        return sum(v for k, v in (self.metrics() or {}).items() if k.startswith(prefix))

    def rss_kib(self):
        return rss_kib(self.proc.pid)


class ReadyWatch:
    """Watches one kind in NS from a resourceVersion and notes, per name, when it was
    first ADDED and when its Ready condition first turned True."""

    def __init__(self, api, plural, rv):
        self.added, self.ready = {}, {}
        self.lock = threading.Lock()
        self.stop = False
        self.path = "%s/namespaces/%s/%s" % (GV, NS, plural)
        self.api, self.rv = api, rv
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            conn = http.client.HTTPConnection("127.0.0.1", self.api.port, timeout=30)
            conn.request("GET", "%s?watch=1&allowWatchBookmarks=true&resourceVersion=%s"
                                "&timeoutSeconds=600" % (self.path, self.rv))
            resp = conn.getresponse()
            while not self.stop:
                line = resp.readline()
                if not line:
                    break
                ev = json.loads(line)
                obj = ev.get("object") or {}
                md = obj.get("metadata") or {}
                if md.get("resourceVersion"):
                    self.rv = md["resourceVersion"]
                if ev["type"] not in ("ADDED", "MODIFIED"):
                    continue
                now = time.time()
                name = md.get("name")
                conds = (obj.get("status") or {}).get("conditions") or []
                with self.lock:
                    self.added.setdefault(name, now)
                    if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds):
                        self.ready.setdefault(name, now)
            conn.close()

    def ready_count(self, names=None):
        with self.lock:
            return len(self.ready) if names is None else sum(1 for n in names if n in self.ready)

    def close(self):
        self.stop = True


def current_rv(api):
    return api.get("/api/v1/namespaces/%s/configmaps" % NS, limit="1")["metadata"]["resourceVersion"]


def topic(name):
    return {"apiVersion": "sluice.dev/v1alpha1", "kind": "Topic",
            "metadata": {"name": name, "namespace": NS}, "spec": {"partitions": 1}}


def agent(i, prefix):
    return {"apiVersion": "sluice.dev/v1alpha1", "kind": "AgentChannel",
            "metadata": {"name": "%s%06d" % (prefix, i), "namespace": NS},
            "spec": {"tenant": "bench", "agentId": "%s%06d" % (prefix, i)}}


def bulk(api, plural, items, chunk=5000):
    for i in range(0, len(items), chunk):
        out = api.request("POST", "/_bulk", {"path": "%s/namespaces/%s/%s" % (GV, NS, plural),
                                             "items": items[i:i + chunk]}, timeout=600)
        if out["errors"]:
            raise RuntimeError("bulk create: %s" % out["errors"][:2])


def fig_topic1(api, ctl, reps, tmp):
    rv = current_rv(api)
    w = ReadyWatch(api, "topics", rv)
    k_s, ar_s, cr_s = [], [], []
    for i in range(reps):
        name = "one-%d" % i
        path = os.path.join(tmp, name + ".json")
        with open(path, "w") as f:
            json.dump(topic(name), f)
        t0 = time.time()
        api.kubectl("apply", "-f", path)
        k_s.append(time.time() - t0)
        wait_until(lambda: w.ready_count([name]), 30, "Topic %s Ready" % name, interval=0.005)
        ar_s.append(w.ready[name] - t0)
        cr_s.append(w.ready[name] - w.added[name])
    w.close()
    result("topic1", apply_ready_s="%.3f" % statistics.median(ar_s),
           kubectl_s="%.3f" % statistics.median(k_s), create_ready_s="%.3f" % statistics.median(cr_s),
           reps=reps)
    log("1 Topic: apply->Ready %.3f s (kubectl alone %.3f s)" % (statistics.median(ar_s), statistics.median(k_s)))


def fig_raw_rate(api, n=3000):
    """The API server's own create rate: keep-alive POSTs of ConfigMaps from one client."""
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=30)
    t0 = time.time()
    for i in range(n):
        body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "raw-%05d" % i},
                           "data": {"k": "v"}})
        conn.request("POST", "/api/v1/namespaces/%s/configmaps" % NS, body,
                     {"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        if r.status != 201:
            raise RuntimeError("raw create: HTTP %d" % r.status)
    dt = time.time() - t0
    conn.close()
    return n / dt


def fig_topics(api, ctl, n, tmp, raw_rate):
    path = os.path.join(tmp, "topics.json")
    names = ["big-%05d" % i for i in range(n)]
    with open(path, "w") as f:
        f.write("\n".join(json.dumps(topic(nm)) for nm in names))
    w = ReadyWatch(api, "topics", current_rv(api))
    log("%d Topics: kubectl apply -f (one multi-document file)" % n)
    t0 = time.time()
    api.kubectl("apply", "-f", path, timeout=900)
    k = time.time() - t0
    log("%d Topics: kubectl returned after %.1f s; waiting for Ready" % (n, k))
    wait_until(lambda: w.ready_count(names) == n, 600, "%d Topics Ready" % n, interval=0.1)
    last = max(w.ready[nm] for nm in names)
    w.close()
    total = last - t0
    result("topics", n=n, apply_ready_s="%.1f" % total, kubectl_s="%.1f" % k,
           after_kubectl_s="%.1f" % (last - t0 - k), raw_create_per_s="%.0f" % raw_rate,
           raw_floor_s="%.1f" % (n / raw_rate), qps_floor_s="%.1f" % (n / ctl.qps),
           ready_per_s="%.0f" % (n / total))
    log("%d Topics: apply->all Ready %.1f s (kubectl %.1f s, rate-limit floor %.0f s)" % (
        n, total, k, n / ctl.qps))


def fig_agents(api, ctl, n):
    items = [agent(i, "agent-") for i in range(n)]
    w = ReadyWatch(api, "agentchannels", current_rv(api))
    rss0 = ctl.rss_kib()
    t0 = time.time()
    bulk(api, "agentchannels", items)
    created = time.time() - t0
    names = [a["metadata"]["name"] for a in items]
    wait_until(lambda: w.ready_count(names) == n, 600, "%d AgentChannels Ready" % n, interval=0.2)
    total = max(w.ready[nm] for nm in names) - t0
    w.close()
    rss1 = ctl.rss_kib()
    result("agents", n=n, create_s="%.2f" % created, ready_s="%.1f" % total,
           per_s="%.0f" % (n / total), rss_mib="%.1f" % (rss1 / 1024.0),
           rss_before_mib="%.1f" % (rss0 / 1024.0))
    log("%d AgentChannels: all Ready in %.1f s (%.0f/s); controller RSS %.1f MiB" % (
        n, total, n / total, rss1 / 1024.0))


def writes_in(api, seconds):
    api.stats(reset=True)
    time.sleep(seconds)
    st = api.stats(reset=True)["requests"]
    return sum(v for k, v in st.items() if k.split()[0] in ("create", "update", "patch", "delete")
               and not k.endswith(" leases"))


def fig_steady(api, ctl, idle_s, resync_s, objects):
    """Requests over idle_s seconds once everything is in step (no writes for 5 s; the
    resync may keep the queues busy: a pass over every object is rate-limited to
    SLUICE_QPS reconciles per second per kind)."""
    wait_until(lambda: writes_in(api, 5) == 0, 300, "5 s without writes", interval=0)
    rec0 = ctl.sum_metric("sluice_controller_reconciles_total")
    agent0 = ctl.sum_metric('sluice_controller_reconciles_total{kind="AgentChannel"')
    brk0 = ctl.sum_metric('sluice_controller_api_requests_total{target="broker"')
    log("steady state: counting API requests for %d s (resync every %d s)" % (idle_s, resync_s))
    time.sleep(idle_s)
    st = api.stats(reset=True)["requests"]
    rec = ctl.sum_metric("sluice_controller_reconciles_total") - rec0
    agent_rec = ctl.sum_metric('sluice_controller_reconciles_total{kind="AgentChannel"') - agent0
    brk = ctl.sum_metric('sluice_controller_api_requests_total{target="broker"') - brk0
    lease = sum(v for k, v in st.items() if k.endswith(" leases"))
    watch = sum(v for k, v in st.items() if k.startswith("watch "))
    lists = sum(v for k, v in st.items() if k.startswith("list "))
    writes = sum(v for k, v in st.items() if k.split()[0] in ("create", "update", "patch", "delete")
                 and not k.endswith(" leases") and not k.endswith(" events"))
    events = sum(v for k, v in st.items() if k.endswith(" events"))
    reads = sum(v for k, v in st.items() if k.startswith("get ") and not k.endswith(" leases"))
    other = sum(st.values()) - lease - watch - lists - writes - events - reads
    passes = rec / objects if objects else 0
    secrets = st.get("get secrets", 0)  # an AgentChannel reads its Secret; a Topic reads nothing
    agent_per = secrets / agent_rec if agent_rec else 0
    topic_per = (reads + writes + events + lists - secrets) / (rec - agent_rec) if rec > agent_rec else 0
    per = (reads + writes + events + lists) / rec if rec else 0
    result("steady", window_s=idle_s, resync_s=resync_s, objects=objects, reconciles=int(rec),
           resync_passes="%.2f" % passes, kube_per_reconcile="%.3f" % per,
           reads=int(reads), writes=int(writes), events=int(events), lists=int(lists),
           lease=int(lease), watch=int(watch), other=int(other),
           per_object_per_resync="%.3f" % (per if passes else 0),
           topic_kube_per_reconcile="%.3f" % topic_per, agent_kube_per_reconcile="%.3f" % agent_per,
           agent_reconciles=int(agent_rec),
           broker_per_reconcile="%.2f" % (brk / rec if rec else 0),
           breakdown="'%s'" % ",".join("%s:%d" % (k.replace(" ", "_"), v) for k, v in sorted(st.items())))
    log("steady: %d reconciles (%.2f passes over %d objects): %d gets, %d writes, %d events, %d lists,"
        " %d lease, %d watch requests; %.3f Kubernetes requests per reconcile" % (
            rec, passes, objects, reads, writes, events, lists, lease, watch, per))


def hold_lease(api, holder):
    path = "/apis/coordination.k8s.io/v1/namespaces/%s/leases/sluice-controller" % NS
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    try:
        lease = api.get(path)
    except Exception:  # noqa: BLE001 -- none yet
        lease = None
    spec = {"holderIdentity": holder, "leaseDurationSeconds": 3600, "acquireTime": now,
            "renewTime": now, "leaseTransitions": 0}
    if lease:
        lease["spec"] = spec
        api.replace(path, lease)
    else:
        api.create("/apis/coordination.k8s.io/v1/namespaces/%s/leases" % NS,
                   {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": "sluice-controller"}, "spec": spec})


def fig_agents100k(api, broker, args, tmp, have_agents):
    """A standby replica's memory as the AgentChannels grow to args.agents."""
    hold_lease(api, "bench-elsewhere")
    ctl = Controller(args.bin, api, broker, tmp, "ctl-standby", args.resync_s)
    try:
        def synced(n):
            return ctl.metric("sluice_controller_cache_objects", kind="AgentChannel") >= n
        wait_until(lambda: synced(have_agents), 120, "the standby's first list", interval=0.5)
        time.sleep(2)
        rss0 = ctl.rss_kib()
        add = args.agents - have_agents
        items = [agent(i, "more-") for i in range(add)]
        t0 = time.time()
        bulk(api, "agentchannels", items, chunk=10000)
        created = time.time() - t0
        wait_until(lambda: synced(args.agents), 600, "%d AgentChannels in the cache" % args.agents,
                   interval=0.5)
        cached = time.time() - t0
        time.sleep(2)
        rss1 = ctl.rss_kib()
        cache_b = ctl.metric("sluice_controller_cache_bytes", kind="AgentChannel")
        acted = ctl.sum_metric("sluice_controller_reconciles_total")
        gone0 = ctl.sum_metric('sluice_controller_watch_restarts_total{kind="AgentChannel",reason="gone"')
        # and after a full relist of everything (a restart, or a 410)
        api.fault("410", path_prefix="%s/namespaces/%s/agentchannels" % (GV, NS), watch=True)
        api.fault("drop_watches")
        wait_until(lambda: ctl.sum_metric('sluice_controller_watch_restarts_total{kind="AgentChannel",'
                                          'reason="gone"') > gone0, 60, "a 410 and relist", interval=0.5)
        wait_until(lambda: synced(args.agents), 300, "the relist", interval=0.5)
        time.sleep(2)
        rss2 = ctl.rss_kib()
        result("agents100k", n=args.agents, added=add, create_s="%.1f" % created,
               cached_s="%.1f" % cached, rss_mib="%.1f" % (rss1 / 1024.0),
               rss_before_mib="%.1f" % (rss0 / 1024.0),
               per_object_b="%.0f" % ((rss1 - rss0) * 1024.0 / add),
               cache_per_object_b="%.0f" % (cache_b / args.agents),
               rss_after_relist_mib="%.1f" % (rss2 / 1024.0), reconciles=int(acted))
        log("%d AgentChannels listed and watched by a standby: RSS %.1f MiB (%.0f B per object;"
            " %.1f MiB after a relist)" % (args.agents, rss1 / 1024.0, (rss1 - rss0) * 1024.0 / add,
                                           rss2 / 1024.0))
    finally:
        rc = ctl.stop()
        if rc != 0:
            log("standby controller exited %s" % rc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--topics", type=int, default=10000)
    ap.add_argument("--agents", type=int, default=100000)
    ap.add_argument("--agents-reconciled", type=int, default=2000)
    ap.add_argument("--idle-s", type=int, default=60)
    ap.add_argument("--resync-s", type=int, default=30)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    args.bin = os.path.abspath(args.bin)
    tmp = tempfile.mkdtemp(prefix="sluice-opbench-")
    api = ApiServer(extra_args=["--history", str(max(100000, args.agents + 20000))])
    broker = ctl = None
    rc = 0
    try:
        api.start()
        api.bindir = args.bin
        api.kubectl("apply", "-f", os.path.join(ROOT, "crds"))
        broker = start_broker(args.bin, tmp)
        ctl = Controller(args.bin, api, broker, tmp, "ctl-bench", args.resync_s)
        wait_until(lambda: ctl.metric("sluice_controller_leader") == 1, 30, "leadership")
        fig_topic1(api, ctl, args.reps, tmp)
        raw = fig_raw_rate(api)
        fig_topics(api, ctl, args.topics, tmp, raw)
        fig_agents(api, ctl, args.agents_reconciled)
        fig_steady(api, ctl, args.idle_s, args.resync_s,
                   args.topics + args.reps + args.agents_reconciled)
        ctl.stop()
        ctl = None
        fig_agents100k(api, broker, args, tmp, args.agents_reconciled)
    except Exception as e:  # noqa: BLE001 -- report and exit non-zero
        log("FAILED: %s" % e)
        for p in (ctl, broker):
            if p is not None:
                try:
                    with open(p.logpath) as f:
                        sys.stderr.write("--- %s log tail ---\n%s\n" % (p.name, f.read()[-3000:]))
                except OSError:
                    pass
        rc = 1
    finally:
        if ctl is not None:
            ctl.stop()
        if broker is not None:
            broker.stop()
        api.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
