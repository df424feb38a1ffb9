#!/usr/bin/env python3
"""latency_proxy.py: an HTTP/1.1 proxy to stand in for S3's latency and faults.

It sits in front of a local S3 server (s3rver, moto) and adds a first-byte latency
(S3 answers in 50-200 ms, a loopback server in under 1), an optional per-connection
bandwidth cap, and faults injected on command: a 500, a 503 SlowDown, a connection cut
mid-body, a connection dropped with no answer, a stalled answer. An answer's first byte
leaves latency-ms after its request arrived; the upstream request runs during that time
(S3's own work is part of its first-byte latency), so a loopback server that handles one
request at a time does not add its service times on top when many are in flight.

Clients keep their connections alive to the proxy; each request goes upstream on a fresh
connection with "Connection: close" (the header is not signed, so SigV4 still holds).
The Host header passes through unchanged, so signatures made for the proxy's address are
what the upstream server checks.

Use it in-process (LatencyProxy(...).start()), as a process of its own
(ProxyProcess(...).start(): same interface, for benchmarks), or as a program:
    latency_proxy.py --upstream 127.0.0.1:4568 --port 0 --latency-ms 100 [--bandwidth-mbps 50]
which prints "listening PORT". Requests to /__proxy/... control it:
    /__proxy/fault?kind=500|503|cut|drop|stall|norange&count=N[&match=SUBSTR][&method=GET][&after=BYTES][&stall_ms=MS]
(norange strips the Range header, as a server that ignores ranges would: only for
unsigned requests or servers that do not check signatures)
    /__proxy/config?latency_ms=N&bandwidth_mbps=N
    /__proxy/stats      JSON: requests, by_method, faults, max_concurrent, log of recent
                        requests, upstream_s (time spent on upstream requests, summed),
                        timeline of recent requests ([arrived, answered] wall seconds, method)
    /__proxy/reset      clears faults and statistics
"""

import argparse
import http.client
import json
import os
import socket
import socketserver
import subprocess
import sys
import threading
import time
import urllib.parse

MAX_HEAD = 64 << 10
SLOWDOWN = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
            b'<Message>Please reduce your request rate.</Message></Error>')
INTERNAL = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
            b'<Message>We encountered an internal error. Please try again.</Message></Error>')


def _read_head(f):
    """Read an HTTP head (request or response) from a file object; None at EOF."""
    lines = []
    total = 0
    while True:
        line = f.readline(MAX_HEAD + 1)
        if not line:
            return None if not lines else b"".join(lines)
        total += len(line)
        if total > MAX_HEAD:
            raise ValueError("head too large")
        if line in (b"\r\n", b"\n"):
            if not lines:
                continue  # stray CRLF between requests
            lines.append(line)
            return b"".join(lines)
        lines.append(line)


def _parse_head(head):
    lines = head.decode("latin-1").split("\r\n")
    first = lines[0]
    headers = []
    for ln in lines[1:]:
        if not ln:
            continue
        k, _, v = ln.partition(":")
        headers.append((k.strip(), v.strip()))
    return first, headers


def _get(headers, name):
    name = name.lower()
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


def _build_head(first, headers):
    out = [first] + ["%s: %s" % (k, v) for k, v in headers] + ["", ""]
    return "\r\n".join(out).encode("latin-1")


def _read_chunked(f):
    body = bytearray()
    while True:
        size_line = f.readline(1024)
        if not size_line:
            raise ValueError("EOF in chunked body")
        size = int(size_line.split(b";")[0].strip(), 16)
        if size == 0:
            while f.readline(1024) not in (b"\r\n", b"\n", b""):
                pass
            return bytes(body)
        body += f.read(size)
        f.readline(1024)


class Fault:
    def __init__(self, kind, count=1, match=None, method=None, after=None, stall_ms=2000):
        self.kind, self.count, self.match, self.method = kind, int(count), match, method
        self.after = None if after is None else int(after)
        self.stall_ms = int(stall_ms)

    def matches(self, method, path):
        return ((self.method is None or self.method == method) and
                (self.match is None or self.match in urllib.parse.unquote(path) or self.match in path))


class LatencyProxy:
    def __init__(self, upstream, port=0, latency_ms=0, bandwidth_mbps=0.0, host="127.0.0.1"):
        uh, _, up = upstream.rpartition(":")
        self.upstream = (uh or "127.0.0.1", int(up))
        self.latency_ms = latency_ms
        self.bandwidth_mbps = bandwidth_mbps
        self.lock = threading.Lock()
        self.faults = []
        self._reset_stats()
        proxy = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                proxy._serve(self.connection, self.rfile)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 128

        self.server = Server((host, port), Handler)
        self.port = self.server.server_address[1]
        self.thread = None

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.port

    def _reset_stats(self):
        self.stats = {"requests": 0, "by_method": {}, "faults": {}, "concurrent": 0,
                      "max_concurrent": 0, "connections": 0, "bytes_out": 0, "log": [],
                      "upstream_s": 0.0, "upstream_max_ms": 0.0, "timeline": []}

    # --- control -------------------------------------------------------------------
    def start(self):
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def inject(self, kind, count=1, match=None, method=None, after=None, stall_ms=2000):
        """Queue a fault for the next count requests that match."""
        assert kind in ("500", "503", "cut", "drop", "stall", "norange"), kind
        with self.lock:
            self.faults.append(Fault(kind, count, match, method, after, stall_ms))

    def reset(self):
        with self.lock:
            self.faults = []
            self._reset_stats()

    def snapshot(self):
        with self.lock:
            return json.loads(json.dumps(self.stats))

    def count(self, method=None, match=None):
        """Requests seen (faulted ones included) with this method and path substring."""
        with self.lock:
            return sum(1 for m, p in self.stats["log"]
                       if (method is None or m == method) and (match is None or match in p))

    def _take_fault(self, method, path):
        with self.lock:
            for f in self.faults:
                if f.count > 0 and f.matches(method, path):
                    f.count -= 1
                    self.stats["faults"][f.kind] = self.stats["faults"].get(f.kind, 0) + 1
                    return f
            self.faults = [f for f in self.faults if f.count > 0]
        return None

    def _control(self, conn, path):
        u = urllib.parse.urlsplit(path)
        q = dict(urllib.parse.parse_qsl(u.query))
        what = u.path[len("/__proxy/"):]
        if what == "fault":
            self.inject(q.pop("kind"), **q)
            out = {"ok": True}
        elif what == "config":
            if "latency_ms" in q:
                self.latency_ms = float(q["latency_ms"])
            if "bandwidth_mbps" in q:
                self.bandwidth_mbps = float(q["bandwidth_mbps"])
            out = {"latency_ms": self.latency_ms, "bandwidth_mbps": self.bandwidth_mbps}
        elif what == "reset":
            self.reset()
            out = {"ok": True}
        else:
            out = self.snapshot()
        body = json.dumps(out).encode()
        conn.sendall(_build_head("HTTP/1.1 200 OK", [("Content-Type", "application/json"),
                                                    ("Content-Length", str(len(body)))]) + body)

    # --- serving ---------------------------------------------------------------------
    def _serve(self, conn, rfile):
        with self.lock:
            self.stats["connections"] += 1
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                head = _read_head(rfile)
                if head is None:
                    return
                first, headers = _parse_head(head)
                method, path, _ = first.split(" ", 2)
                n = int(_get(headers, "content-length") or 0)
                body = rfile.read(n) if n else b""
                if path.startswith("/__proxy/"):
                    self._control(conn, path)
                    continue
                if not self._one(conn, method, path, headers, body):
                    return
        except (OSError, ValueError):
            return

    def _one(self, conn, method, path, headers, body):
        """Handle one request; False when the client connection must close."""
        with self.lock:
            st = self.stats
            st["requests"] += 1
            st["by_method"][method] = st["by_method"].get(method, 0) + 1
            st["log"].append([method, path])
            del st["log"][:-10000]
            st["concurrent"] += 1
            st["max_concurrent"] = max(st["max_concurrent"], st["concurrent"])
        t0 = time.monotonic()
        try:
            fault = self._take_fault(method, path)
            if fault and fault.kind in ("500", "503", "drop", "stall"):
                self._wait_until(t0)
            if fault and fault.kind in ("500", "503"):
                status = "500 Internal Server Error" if fault.kind == "500" else "503 Slow Down"
                err = INTERNAL if fault.kind == "500" else SLOWDOWN
                conn.sendall(_build_head("HTTP/1.1 " + status, [
                    ("Content-Type", "application/xml"), ("Content-Length", str(len(err)))]) + err)
                return True
            if fault and fault.kind == "drop":
                return False
            if fault and fault.kind == "stall":
                time.sleep(fault.stall_ms / 1000.0)
                return False
            if fault and fault.kind == "norange":
                headers = [(k, v) for k, v in headers if k.lower() != "range"]
            t_up = time.monotonic()
            try:
                status_line, rheaders, rbody = self._upstream(method, path, headers, body)
            finally:
                up_s = time.monotonic() - t_up
                with self.lock:
                    self.stats["upstream_s"] += up_s
                    self.stats["upstream_max_ms"] = max(self.stats["upstream_max_ms"], up_s * 1e3)
                self._wait_until(t0)
            out_head = _build_head(status_line, rheaders)
            if fault and fault.kind == "cut":
                cut = fault.after if fault.after is not None else len(rbody) // 2
                self._send(conn, out_head + rbody[:cut])
                conn.shutdown(socket.SHUT_RDWR)
                return False
            self._send(conn, out_head + (b"" if method == "HEAD" else rbody))
            return True
        finally:
            with self.lock:
                self.stats["concurrent"] -= 1
                self.stats["timeline"].append([round(time.time() - (time.monotonic() - t0), 4),
                                               round(time.time(), 4), method])
                del self.stats["timeline"][:-10000]

    def _wait_until(self, t0):
        """Sleeps until the added latency has passed since t0, when the request arrived.
        The upstream request runs inside that time, as S3's own work is inside its
        first-byte latency: a loopback server's few milliseconds per request, one request
        at a time, would otherwise add up on top of it under many requests in flight."""
        left = self.latency_ms / 1000.0 - (time.monotonic() - t0)
        if left > 0:
            time.sleep(left)

    def _upstream(self, method, path, headers, body):
        hdrs = [(k, v) for k, v in headers if k.lower() not in ("connection", "keep-alive")]
        hdrs.append(("Connection", "close"))
        with socket.create_connection(self.upstream, timeout=120) as up:
            up.sendall(_build_head("%s %s HTTP/1.1" % (method, path), hdrs) + body)
            f = up.makefile("rb")
            head = _read_head(f)
            if head is None:
                raise OSError("upstream closed without answering")
            status_line, rh = _parse_head(head)
            if method == "HEAD" or status_line.split(" ")[1] in ("204", "304"):
                rbody = b""
            elif (_get(rh, "transfer-encoding") or "").lower() == "chunked":
                rbody = _read_chunked(f)
            elif _get(rh, "content-length") is not None:
                rbody = f.read(int(_get(rh, "content-length")))
            else:
                rbody = f.read()
        keep = [(k, v) for k, v in rh if k.lower() not in (
            "connection", "keep-alive", "transfer-encoding", "content-length")]
        if method == "HEAD":
            keep.append(("Content-Length", _get(rh, "content-length") or "0"))
        else:
            keep.append(("Content-Length", str(len(rbody))))
        keep.append(("Connection", "keep-alive"))
        return status_line, keep, rbody

    def _send(self, conn, data):
        """Send data, paced to the bandwidth cap when there is one."""
        rate = self.bandwidth_mbps * 1e6 / 8  # bytes per second
        view = memoryview(data)
        step = 64 << 10
        t0 = time.monotonic()
        for off in range(0, len(view), step):
            conn.sendall(view[off:off + step])
            if rate > 0:
                ahead = (off + step) / rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
        with self.lock:
            self.stats["bytes_out"] += len(data)


class ProxyProcess:
    """The same proxy as a process of its own (its own interpreter, so it shares no lock
    and no CPU accounting with the client under test), driven through /__proxy/. It has
    LatencyProxy's interface: endpoint, pid, start, stop, inject, reset, snapshot, count."""

    def __init__(self, upstream, latency_ms=0, bandwidth_mbps=0.0):
        self.upstream, self.latency_ms, self.bandwidth_mbps = upstream, latency_ms, bandwidth_mbps
        self.proc = None
        self.port = None

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def pid(self):
        return self.proc.pid

    def start(self):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--upstream", self.upstream, "--port", "0",
             "--latency-ms", str(self.latency_ms), "--bandwidth-mbps", str(self.bandwidth_mbps)],
            stdout=subprocess.PIPE)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("listening "):
            self.stop()
            raise RuntimeError("latency_proxy.py did not start: %r" % line)
        self.port = int(line.split()[1])
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self.proc.stdout.close()
        self.proc = None

    def _ctl(self, what, **q):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            path = "/__proxy/" + what + ("?" + urllib.parse.urlencode(q) if q else "")
            conn.request("GET", path)
            resp = conn.getresponse()
            return json.loads(resp.read())
        finally:
            conn.close()

    def inject(self, kind, count=1, **kw):
        self._ctl("fault", kind=kind, count=count, **{k: v for k, v in kw.items() if v is not None})

    def reset(self):
        self._ctl("reset")

    def snapshot(self):
        return self._ctl("stats")

    def count(self, method=None, match=None):
        return sum(1 for m, p in self.snapshot()["log"]
                   if (method is None or m == method) and (match is None or match in p))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--upstream", required=True, help="HOST:PORT of the S3 server")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency-ms", type=float, default=100)
    ap.add_argument("--bandwidth-mbps", type=float, default=0, help="per connection; 0: no cap")
    a = ap.parse_args(argv)
    p = LatencyProxy(a.upstream, a.port, a.latency_ms, a.bandwidth_mbps)
    print("listening %d" % p.port, flush=True)
    try:
        p.server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
