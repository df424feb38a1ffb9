"""harness.py: start and stop a real sluice-broker process for end-to-end tests.

Each Broker gets its own temporary directory (data dir and log file), free loopback
ports for the Kafka and admin listeners, and a clean environment with sanitizer options
set. Tests talk to it with real clients; the harness only offers the admin HTTP API
and the log.
"""

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0

SANITIZER_MARKERS = ("AddressSanitizer", "runtime error:", "LeakSanitizer")


def bin_dir():
    """Return the absolute directory that holds sluice-broker ($SLUICE_BIN or build/bin)."""
    d = os.environ.get("SLUICE_BIN", "build/bin")
    if not os.path.isabs(d):
        d = os.path.join(REPO_ROOT, d)
    return d


def broker_path():
    return os.path.join(bin_dir(), "sluice-broker")


def free_port():
    """Return a TCP port on 127.0.0.1 that was free a moment ago (bound to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unique(prefix="t"):
    """Return a topic name that no other test uses."""
    return "%s-%s" % (prefix, uuid.uuid4().hex[:12])


def run(cmd, input=None, timeout=60, env=None, cwd=None):
    """Run cmd (a list, or a string for the shell) and return the CompletedProcess with
    stdout/stderr as bytes. Never raises on a non-zero exit; raises TimeoutExpired."""
    if isinstance(input, str):
        input = input.encode()
    return subprocess.run(
        cmd,
        input=input,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=timeout,
        check=False,
        shell=isinstance(cmd, str),
        env=env,
        cwd=cwd,
    )


def _die_with_parent():
    """preexec_fn: have the kernel SIGKILL the broker if the test process dies, so a
    crashed or hard-timed-out pytest leaves no broker behind."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass


def config_env(config):
    """Map broker config keys to environment variables: 'a.b.c' -> SLUICE_A_B_C."""
    out = {}
    for k, v in (config or {}).items():
        name = "SLUICE_" + k.upper().replace(".", "_").replace("-", "_")
        if isinstance(v, bool):
            v = "true" if v else "false"
        out[name] = str(v)
    return out


class Broker:
    """One sluice-broker process on loopback with its own data dir."""

    def __init__(self, data_dir=None, config=None, env=None, listeners=None, admin_token=None):
        """listeners: security protocols for extra named listeners, e.g.
        {"SASL_SSL": "SASL_SSL", "MTLS": "SSL"}; each gets a port (see addr()). The
        first listener is always PLAINTEXT on kafka_port. admin_token is sent with every
        admin call (and configured as admin.token)."""
        self.base_dir = tempfile.mkdtemp(prefix="sluice-e2e-")
        self._own_data_dir = data_dir is None
        self.data_dir = data_dir or os.path.join(self.base_dir, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self.log_path = os.path.join(self.base_dir, "broker.log")
        self.config = dict(config or {})
        self.extra_env = dict(env or {})
        self.kafka_port = free_port()
        self.admin_port = free_port()
        while self.admin_port == self.kafka_port:
            self.admin_port = free_port()
        self.proc = None
        self.starts = 0
        self.last_exit = None
        self.ports = {"PLAINTEXT": self.kafka_port}
        self.admin_token = admin_token
        if admin_token:
            self.config["admin.token"] = admin_token
        if listeners:
            used = {self.kafka_port, self.admin_port}
            specs, protos = ["PLAINTEXT://127.0.0.1:%d" % self.kafka_port], []
            for name, proto in listeners.items():
                port = free_port()
                while port in used:
                    port = free_port()
                used.add(port)
                self.ports[name] = port
                specs.append("%s://127.0.0.1:%d" % (name, port))
                if name != proto:
                    protos.append("%s:%s" % (name, proto))
            self.config["listeners"] = ",".join(specs)
            if protos:
                self.config["listener.security.protocol.map"] = ",".join(protos)

    # ---- addresses -------------------------------------------------------------

    @property
    def bootstrap(self):
        return "127.0.0.1:%d" % self.kafka_port

    def addr(self, listener):
        """host:port of a named listener."""
        return "127.0.0.1:%d" % self.ports[listener]

    @property
    def admin_url(self):
        return "http://127.0.0.1:%d" % self.admin_port

    # ---- process control ----------------------------------------------------------

    def _env(self):
        env = dict(os.environ)
        # Nothing from the caller's environment configures the broker by accident.
        for k in list(env):
            if k.startswith("SLUICE_"):
                del env[k]
        env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0"
        env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
        env.update(config_env(self.config))
        env.update(self.extra_env)
        return env

    def command(self):
        return [
            broker_path(),
            "--data-dir", self.data_dir,
            "--kafka-listen", "127.0.0.1:%d" % self.kafka_port,
            "--admin-listen", "127.0.0.1:%d" % self.admin_port,
            "--log-level", "debug",
        ]

    def start(self):
        """Spawn the broker and wait until GET /readyz answers 200."""
        assert self.proc is None or self.proc.poll() is not None, "broker already running"
        exe = broker_path()
        if not os.access(exe, os.X_OK):
            raise AssertionError("broker binary not found: %s (set SLUICE_BIN)" % exe)
        self.starts += 1
        log = open(self.log_path, "ab")
        log.write(("\n=== harness: start #%d: %s\n" % (self.starts, " ".join(self.command()))).encode())
        log.flush()
        try:
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env(),
                cwd=self.base_dir,
                preexec_fn=_die_with_parent,
            )
        finally:
            log.close()
        deadline = time.monotonic() + READY_TIMEOUT_S
        last = None
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                raise AssertionError(
                    "broker exited with %d before it was ready\n--- log tail ---\n%s" % (rc, self.log_tail())
                )
            try:
                status, _ = self.http("GET", "/readyz", timeout=1.0)
                if status == 200:
                    return self
                last = "status %d" % status
            except (OSError, urllib.error.URLError) as e:
                last = repr(e)
            time.sleep(0.02)
        self.kill9()
        raise AssertionError(
            "broker not ready within %.0f s (last: %s)\n--- log tail ---\n%s" % (READY_TIMEOUT_S, last, self.log_tail())
        )

    def stop(self):
        """SIGTERM the broker, wait up to 20 s, and return its exit code. A broker that
        does not exit in time is killed, and the result is then the negative SIGKILL."""
        if self.proc is None:
            return self.last_exit
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._note("broker did not exit within %.0f s of SIGTERM; killing it" % STOP_TIMEOUT_S)
                self.proc.kill()
                self.proc.wait()
        self.last_exit = self.proc.returncode
        self.proc = None
        return self.last_exit

    def kill9(self):
        """SIGKILL the broker (a crash) and reap it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.last_exit = self.proc.returncode
        self.proc = None
        self._note("harness: broker killed with SIGKILL")

    def restart(self):
        """Stop cleanly (asserting exit 0) and start again on the same ports and data dir."""
        rc = self.stop()
        assert rc == 0, "broker exit code on SIGTERM was %r\n--- log tail ---\n%s" % (rc, self.log_tail())
        return self.start()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def close(self):
        """Kill the broker if it still runs and remove the temporary directory."""
        if self.alive():
            self.kill9()
        if os.environ.get("SLUICE_KEEP_TMP"):
            return
        shutil.rmtree(self.base_dir, ignore_errors=True)
        if not self._own_data_dir:
            pass  # a caller-provided data dir belongs to the caller

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        try:
            if self.alive():
                self.stop()
        finally:
            self.close()

    # ---- admin HTTP -----------------------------------------------------------------

    def http(self, method, path, body=None, headers=None, timeout=10.0):
        """Call the admin API. Returns (status, parsed JSON or text). A dict or list body
        is sent as JSON; str/bytes are sent as they are."""
        data = None
        hdrs = dict(headers or {})
        if self.admin_token and "Authorization" not in hdrs:
            hdrs["Authorization"] = "Bearer " + self.admin_token
        if body is not None:
            if isinstance(body, (dict, list)):
                data = json.dumps(body).encode()
                hdrs.setdefault("Content-Type", "application/json")
            elif isinstance(body, str):
                data = body.encode()
            else:
                data = bytes(body)
        req = urllib.request.Request(self.admin_url + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        text = raw.decode("utf-8", "replace")
        if not text:
            return status, None
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def create_topic(self, name, partitions=1, config=None, storage=None, **extra):
        """Create a topic through POST /v1/topics; asserts 201 and returns the JSON."""
        body = {"name": name, "partitions": partitions}
        if config is not None:
            body["config"] = {k: str(v) for k, v in config.items()}
        if storage is not None:
            body["storage"] = storage
        body.update(extra)
        status, resp = self.http("POST", "/v1/topics", body)
        assert status == 201, "create_topic %s: HTTP %d %r\n--- log tail ---\n%s" % (
            name, status, resp, self.log_tail(30))
        return resp

    def get_topic(self, name):
        status, resp = self.http("GET", "/v1/topics/" + name)
        assert status == 200, "get_topic %s: HTTP %d %r" % (name, status, resp)
        return resp

    # ---- log ------------------------------------------------------------------------

    def _note(self, line):
        with open(self.log_path, "ab") as f:
            f.write(("\n=== %s\n" % line).encode())

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n=60):
        return "\n".join(self.log_text().splitlines()[-n:])

    def assert_clean(self):
        """Fail if the log shows a sanitizer report."""
        text = self.log_text()
        for marker in SANITIZER_MARKERS:
            i = text.find(marker)
            if i >= 0:
                start = max(0, text.rfind("\n", 0, max(0, i - 2000)))
                raise AssertionError("broker log contains %r:\n%s" % (marker, text[start:i + 4000]))


def tls_config(certs, **extra):
    """Broker config for TLS listeners from the conftest `certs` fixture; extra keys are
    given with '_' for '.' (ssl_client_auth="required")."""
    cfg = {
        "ssl.cert.file": certs["server.pem"],
        "ssl.key.file": certs["server.key"],
        "ssl.ca.file": certs["ca.pem"],
    }
    for k, v in extra.items():
        cfg[k.replace("_", ".")] = v
    return cfg
