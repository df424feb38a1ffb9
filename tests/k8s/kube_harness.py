"""kube_harness.py: start the test API server (apiserver.py) and talk to it from tests.

    from kube_harness import ApiServer
    with ApiServer() as api:              # free port on 127.0.0.1, --bookmark-s 1
        api.kubectl("apply", "-f", "crds/")
        api.create("/apis/sluice.dev/v1alpha1/namespaces/default/topics", {...})
        for ev in api.watch("/api/v1/namespaces/default/pods", resourceVersion="5"):
            ...
        api.fault("410", path_prefix="/apis/sluice.dev", count=1)

Standard library only. kubectl runs with its own kubeconfig and discovery cache dir, so
tests never touch ~/.kube.
"""

import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"


class ApiError(Exception):
    def __init__(self, code, body):
        super().__init__("HTTP %d: %s" % (code, body))
        self.code = code
        self.body = body

    @property
    def reason(self):
        return self.body.get("reason") if isinstance(self.body, dict) else None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class ApiServer:
    """One apiserver.py process on 127.0.0.1 with a kubeconfig that points at it."""

    def __init__(self, token=None, history=None, bookmark_s=1.0, extra_args=(), tls=None):
        """tls defaults to on when a token is set: kubectl sends no token over plain HTTP."""
        self.token = token
        self.tls = bool(token) if tls is None else tls
        self.dir = tempfile.mkdtemp(prefix="sluice-kube-")
        self.ca = None
        self.port = None
        self.proc = None
        self.args = ["--bookmark-s", str(bookmark_s)] + list(extra_args)
        if history:
            self.args += ["--history", str(history)]
        if token:
            self.args += ["--token", token]

    # -- lifecycle ---------------------------------------------------------------------

    def make_cert(self):
        """The test certificate in tests/k8s/tls/: self-signed for 127.0.0.1 (and
        localhost), its own CA, valid for a century; test-only, checked in so that no
        openssl binary is needed."""
        tls = os.path.join(HERE, "tls")
        return os.path.join(tls, "server.crt"), os.path.join(tls, "server.key")

    def start(self):
        self.log_path = os.path.join(self.dir, "apiserver.log")
        if self.tls:
            cert, key = self.make_cert()
            self.ca = cert
            self.args += ["--tls-cert", cert, "--tls-key", key]
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(HERE, "apiserver.py"), "--port", "0"] + self.args,
            stdout=subprocess.PIPE, stderr=log, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError("apiserver did not start: %r\n%s" % (line, self.log_tail()))
        self.port = int(line.rsplit(":", 1)[1])
        self.url = "%s://127.0.0.1:%d" % ("https" if self.tls else "http", self.port)
        self.kubeconfig = os.path.join(self.dir, "kubeconfig")
        self.write_kubeconfig(self.kubeconfig)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def log_tail(self, n=40):
        try:
            with open(self.log_path) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def write_kubeconfig(self, path, namespace="default", token=None):
        """A kubeconfig for this server (same format as tests/k8s/kubeconfig.sh)."""
        token = token if token is not None else self.token
        user = "    token: %s\n" % token if token else ""
        with open(path, "w") as f:
            f.write("apiVersion: v1\nkind: Config\n"
                    "clusters:\n- name: sluice-test\n  cluster:\n    server: %s\n%s"
                    "users:\n- name: sluice-test\n  user:%s\n%s"
                    "contexts:\n- name: sluice-test\n  context:\n    cluster: sluice-test\n"
                    "    user: sluice-test\n    namespace: %s\n"
                    "current-context: sluice-test\n" % (
                        self.url, "    certificate-authority: %s\n" % self.ca if self.ca else "",
                        "" if token else " {}", user, namespace))
        return path

    # -- kubectl -----------------------------------------------------------------------

    def kubectl(self, *args, check=True, input=None, timeout=60):
        """Run kubectl against this server from the repository root; returns the process."""
        cmd = [KUBECTL, "--kubeconfig", self.kubeconfig,
               "--cache-dir", os.path.join(self.dir, "kubectl-cache")] + list(args)
        p = subprocess.run(cmd, cwd=ROOT, input=input, capture_output=True, text=True,
                           timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError("%s failed (%d)\nstdout: %s\nstderr: %s" % (
                " ".join(args), p.returncode, p.stdout, p.stderr))
        return p

    # -- REST --------------------------------------------------------------------------

    def request(self, method, path, body=None, ctype="application/json", params=None,
                headers=None, timeout=30):
        """One request; returns the decoded JSON body or raises ApiError (status >= 400)."""
        if params:
            path += ("&" if "?" in path else "?") + urllib.parse.urlencode(params)
        conn = self.connect(timeout)
        try:
            h = {"Accept": "application/json"}
            if self.token:
                h["Authorization"] = "Bearer " + self.token
            h.update(headers or {})
            data = None
            if body is not None:
                data = body if isinstance(body, (bytes, str)) else json.dumps(body)
                h["Content-Type"] = ctype
            conn.request(method, path, body=data, headers=h)
            resp = conn.getresponse()
            raw = resp.read()
            try:
                out = json.loads(raw) if raw else None
            except ValueError:
                out = raw.decode(errors="replace")
            if resp.status >= 400:
                raise ApiError(resp.status, out)
            return out
        finally:
            conn.close()

    def connect(self, timeout):
        if self.tls:
            ctx = ssl.create_default_context(cafile=self.ca)
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                               context=ctx)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def get(self, path, **params):
        return self.request("GET", path, params=params or None)

    def create(self, path, obj, **params):
        return self.request("POST", path, obj, params=params or None)

    def replace(self, path, obj):
        return self.request("PUT", path, obj)

    def patch(self, path, patch, kind="merge"):
        ctype = {"merge": "application/merge-patch+json",
                 "strategic": "application/strategic-merge-patch+json",
                 "json": "application/json-patch+json",
                 "apply": "application/apply-patch+yaml"}[kind]
        return self.request("PATCH", path, patch, ctype=ctype)

    def delete(self, path, body=None):
        return self.request("DELETE", path, body)

    def watch(self, path, timeout=10, **params):
        """Yield watch events ({"type", "object"}) until the server ends the stream or
        `timeout` seconds pass without a line."""
        params = dict(params, watch="true")
        q = path + ("&" if "?" in path else "?") + urllib.parse.urlencode(params)
        conn = self.connect(timeout)
        h = {"Accept": "application/json"}
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        conn.request("GET", q, headers=h)
        resp = conn.getresponse()
        try:
            if resp.status != 200:
                raise ApiError(resp.status, json.loads(resp.read() or b"null"))
            while True:
                try:
                    line = resp.readline()
                except socket.timeout:
                    return
                if not line:
                    return
                yield json.loads(line)
        finally:
            conn.close()

    # -- test control ------------------------------------------------------------------

    def fault(self, action, **kw):
        """Inject a fault: 410|409|429|500|503|401|slow|reset (next `count` requests under
        `path_prefix`), drop_watches, compact, set_token, validate, bookmarks, clear."""
        return self.request("POST", "/_fault", dict(kw, action=action))

    def stats(self, reset=False):
        """Request counters by verb and resource, e.g. {"list topics": 2, "watch pods": 1}."""
        return self.request("DELETE" if reset else "GET", "/_stats")

    def wait_for(self, fn, timeout=20, interval=0.1, what="condition"):
        """Poll fn() until it returns something truthy; return that."""
        end = time.monotonic() + timeout
        last = None
        while time.monotonic() < end:
            try:
                last = fn()
            except ApiError as e:
                last = e
            if last and not isinstance(last, ApiError):
                return last
            time.sleep(interval)
        raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


if __name__ == "__main__":
    # Handy by hand: python3 tests/k8s/kube_harness.py -> a server until Ctrl-C.
    with ApiServer() as api:
        print("server %s\nkubeconfig %s" % (api.url, api.kubeconfig), flush=True)
        try:
            api.proc.wait()
        except KeyboardInterrupt:
            sys.exit(0)
