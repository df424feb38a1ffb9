"""s3server.py: real S3 servers on loopback for tests and benchmarks, and a small S3
client in the standard library.

- S3rver: the @20minutes/s3rver fork (checks SigV4; keys S3RVER/S3RVER), started from
  tests/s3/s3rver.js. scripts/deps.sh test installs it into tests/.deps.
- Moto: moto_server from the image's pyenv Python (no auth checks).
- S3Client: SigV4-signed requests (PUT, DELETE, GET, LIST) written from the AWS
  specification with hmac/hashlib only. It uploads test data, and it doubles as an
  independent check of the broker's signing: both have to satisfy s3rver.

Nothing here uses a network address other than 127.0.0.1.
"""

import datetime
import glob
import hashlib
import hmac
import http.client
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
DEPS = os.path.join(REPO_ROOT, "tests", ".deps")
S3RVER_KEY = "S3RVER"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc=None, timeout=20.0):
    """Wait until 127.0.0.1:port accepts connections; raise if proc dies first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("server exited with %s before listening" % proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on port %d after %.0f s" % (port, timeout))


def quote(s, safe="~"):
    """RFC 3986 percent-encoding (unreserved kept), as SigV4 wants it."""
    if isinstance(s, str):
        s = s.encode()
    return urllib.parse.quote(s, safe=safe)


class S3Error(Exception):
    def __init__(self, status, body):
        super().__init__("HTTP %d: %s" % (status, body[:300]))
        self.status = status
        self.body = body


class S3Client:
    """A SigV4 client for path-style S3 on http://127.0.0.1:PORT."""

    def __init__(self, endpoint, access=S3RVER_KEY, secret=S3RVER_KEY, region="us-east-1"):
        u = urllib.parse.urlsplit(endpoint)
        assert u.scheme == "http" and u.hostname == "127.0.0.1", endpoint
        self.host, self.port = u.hostname, u.port
        self.access, self.secret, self.region = access, secret, region

    def _sign(self, method, path, query, headers, payload_hash):
        now = datetime.datetime.now(datetime.timezone.utc)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        date = amz_date[:8]
        headers = dict(headers)
        headers["host"] = "%s:%d" % (self.host, self.port)
        headers["x-amz-date"] = amz_date
        headers["x-amz-content-sha256"] = payload_hash
        canon_q = "&".join("%s=%s" % (quote(k), quote(v)) for k, v in sorted(query))
        names = sorted(h.lower() for h in headers)
        lower = {k.lower(): str(v).strip() for k, v in headers.items()}
        canon_h = "".join("%s:%s\n" % (n, lower[n]) for n in names)
        signed = ";".join(names)
        creq = "\n".join([method, path, canon_q, canon_h, signed, payload_hash])
        scope = "%s/%s/s3/aws4_request" % (date, self.region)
        sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()])
        k = ("AWS4" + self.secret).encode()
        for part in (date, self.region, "s3", "aws4_request"):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
        headers["Authorization"] = "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
            self.access, scope, signed, sig)
        return headers, canon_q

    def request(self, method, bucket, key=None, query=(), body=b"", headers=None, timeout=60):
        """Send one signed request; return (status, headers dict (lower-case), body)."""
        path = "/" + quote(bucket)
        if key is not None:
            path += "/" + quote(key, safe="~/")
        hdrs, canon_q = self._sign(method, path, list(query), headers or {},
                                   hashlib.sha256(body).hexdigest())
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path + ("?" + canon_q if canon_q else ""), body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def _ok(self, res, *want):
        status, _, body = res
        if status not in want:
            raise S3Error(status, body)
        return res

    def create_bucket(self, bucket):
        status, _, body = self.request("PUT", bucket)
        if status not in (200, 409):  # 409: it already exists
            raise S3Error(status, body)

    def put_object(self, bucket, key, data):
        """Upload data; return the ETag without quotes."""
        _, h, _ = self._ok(self.request("PUT", bucket, key, body=data), 200)
        return h.get("etag", "").strip('"')

    def delete_object(self, bucket, key):
        self._ok(self.request("DELETE", bucket, key), 200, 204)

    def get_object(self, bucket, key):
        return self._ok(self.request("GET", bucket, key), 200)[2]


class _Server:
    """A server process with a free port; stop() ends it (only that process)."""

    proc = None
    port = None

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.port

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def s3rver_available():
    return shutil.which("node") is not None and os.path.isdir(
        os.path.join(DEPS, "node_modules", "@20minutes", "s3rver"))


class S3rver(_Server):
    """The s3rver fork on a free port with its data in directory (a temp dir by default).
    Buckets are created at start. Access and secret key: S3RVER."""

    access = secret = S3RVER_KEY

    def __init__(self, buckets=(), directory=None, port=None):
        self.own_dir = directory is None
        self.directory = directory or tempfile.mkdtemp(prefix="s3rver-")
        self.port = port or free_port()
        self.buckets = list(buckets)

    def start(self):
        env = dict(os.environ, NODE_OPTIONS="--openssl-legacy-provider")
        self.log = open(os.path.join(self.directory, ".s3rver.log"), "ab")
        self.proc = subprocess.Popen(
            ["node", os.path.join(HERE, "s3rver.js"), self.directory, str(self.port)] + self.buckets,
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        wait_port(self.port, self.proc)
        return self

    def client(self):
        return S3Client(self.endpoint, self.access, self.secret)

    def stop(self):
        super().stop()
        if getattr(self, "log", None):
            self.log.close()
            self.log = None
        if self.own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)


def find_moto_server():
    """The moto_server executable: on PATH, else in the pyenv versions (the image's
    default python3 has moto), else None."""
    for cand in ([shutil.which("moto_server")] +
                 sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/*/bin/moto_server")), reverse=True)):
        if cand and os.access(cand, os.X_OK):
            if "/shims/" in cand:
                continue  # a pyenv shim needs pyenv; prefer the real script
            return cand
    shim = shutil.which("moto_server")
    return shim


class Moto(_Server):
    """moto_server on a free port (in-memory; signatures are not checked)."""

    access = secret = "moto"

    def __init__(self, port=None):
        self.port = port or free_port()

    def start(self):
        exe = find_moto_server()
        if not exe:
            raise RuntimeError("moto_server not found")
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        wait_port(self.port, self.proc, timeout=60)
        return self

    def client(self):
        return S3Client(self.endpoint, self.access, self.secret)

    def stop(self):
        super().stop()
        if getattr(self, "log", None):
            self.log.close()
            self.log = None
