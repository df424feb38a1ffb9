"""test_s3_client.py: the broker's S3 client (broker/src/s3.c) against real S3 servers.

tests/s3/s3probe.c runs the client on the broker's own event loop and prints JSON. It is
built here, linked against the broker's objects (the sanitizer build's under
build/san). The servers are the SigV4-checking s3rver fork and moto; a latency proxy of
our own (tests/s3/latency_proxy.py) injects 500s, SlowDown, cut and dropped
connections and stalls.
"""

import concurrent.futures
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import pytest

from harness import REPO_ROOT, bin_dir

sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "s3"))

from latency_proxy import LatencyProxy  # noqa: E402
from s3server import Moto, S3Client, S3rver, find_moto_server, s3rver_available  # noqa: E402

ODD_KEYS = [
    "odd/with space.txt",
    "odd/unicode-\u00fc\u00e9\u4e2d\u6587.bin",
    "odd/plus+sign",
    "odd/percent%41%2F",
    "odd/equals=and?question#hash",
    "odd/tilde~and.dots..",
    "odd/semi;colon:comma,bang!star*paren()",
]
AMP_KEY = "odd/amp&ersand"  # s3rver double-escapes '&' in listings; moto gets it right
DOT_KEY = "odd/dot/../segments/./x"  # s3rver's filesystem folds these; moto keeps them

needs_s3rver = pytest.mark.skipif(not s3rver_available(), reason="s3rver not installed (scripts/deps.sh test)")
needs_moto = pytest.mark.skipif(find_moto_server() is None, reason="moto_server not found")


def _obj_dir():
    return os.path.join(os.path.dirname(bin_dir()), "obj")


@pytest.fixture(scope="module")
def probe():
    """Build s3probe against the broker objects next to $SLUICE_BIN. They go through a
    static archive, so only the modules the client needs are linked in."""
    src_objs = os.path.join(_obj_dir(), "broker", "src")
    objs = sorted(os.path.join(src_objs, f) for f in os.listdir(src_objs)
                  if f.endswith(".o") and f != "main.o")
    tmp = tempfile.mkdtemp(prefix="s3probe-")
    lib, out = os.path.join(tmp, "libbroker.a"), os.path.join(tmp, "s3probe")
    r = subprocess.run(["ar", "rcs", lib] + objs, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    flags = ["-O1", "-g", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter"]
    if os.path.basename(os.path.dirname(bin_dir())) == "san":
        flags += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
    cmd = (["cc"] + flags + ["-I", os.path.join(REPO_ROOT, "broker", "src"), "-o", out,
                             os.path.join(REPO_ROOT, "tests", "s3", "s3probe.c"), lib] +
           ["-lrocksdb", "-lmicrohttpd", "-lcjson", "-lcurl", "-lssl", "-lcrypto", "-lpthread", "-lm"])
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    return out


def run_probe(probe, endpoint, *args, access="S3RVER", secret="S3RVER", opts=(), timeout=120):
    cmd = [probe, "--endpoint", endpoint]
    if access:
        cmd += ["--access", access, "--secret", secret]
    cmd += list(opts) + list(args)
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1", UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    assert r.returncode == 0, "s3probe failed (%d): %s\n%s" % (r.returncode, r.stdout, r.stderr)
    for marker in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
        assert marker not in r.stderr, r.stderr
    return json.loads(r.stdout)


def sha(data):
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def s3rver():
    if not s3rver_available():
        pytest.skip("s3rver not installed (scripts/deps.sh test)")
    srv = S3rver(buckets=["data"]).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def moto():
    if find_moto_server() is None:
        pytest.skip("moto_server not found")
    srv = Moto().start()
    yield srv
    srv.stop()


@pytest.fixture
def proxy(s3rver):
    p = LatencyProxy("127.0.0.1:%d" % s3rver.port).start()
    yield p
    p.stop()


def put_many(client, bucket, items, workers=8):
    """Upload {key: data} in parallel; return {key: etag}."""
    with concurrent.futures.ThreadPoolExecutor(workers) as ex:
        futs = {k: ex.submit(client.put_object, bucket, k, v) for k, v in items.items()}
        return {k: f.result() for k, f in futs.items()}


# --- s3rver: SigV4 checked -----------------------------------------------------------------

def test_list_and_get_odd_keys_signed(probe, s3rver):
    c = s3rver.client()
    items = {k: os.urandom(1000 + i * 777) for i, k in enumerate(ODD_KEYS)}
    etags = put_many(c, "data", items)
    res = run_probe(probe, s3rver.endpoint, "list", "data", "odd/")
    assert res["err"] == "OK", res
    got = {o["key"]: o for o in res["objects"]}
    assert sorted(got) == sorted(items)
    for k, v in items.items():
        assert got[k]["size"] == len(v)
        assert got[k]["etag"] == etags[k]
    res = run_probe(probe, s3rver.endpoint, "get", "data", *items)
    assert res["failed"] == 0, res
    for r in res["results"]:
        assert r["err"] == "OK" and r["http_status"] == 200
        assert r["sha256"] == sha(items[r["key"]]), r["key"]
        assert r["etag"] == etags[r["key"]]
        assert r["object_size"] == len(items[r["key"]])
    # '&' in a key: the GET is signed right (s3rver's listing of it is its own bug)
    c.put_object("data", AMP_KEY, b"amp")
    res = run_probe(probe, s3rver.endpoint, "get", "data", AMP_KEY)
    assert res["results"][0]["sha256"] == sha(b"amp")


def test_list_prefix_with_odd_bytes_signed(probe, s3rver):
    c = s3rver.client()
    prefix = "pre fix/\u00fc+=%/"
    c.put_object("data", prefix + "a", b"1")
    c.put_object("data", prefix + "b", b"22")
    c.put_object("data", "pre fix/other", b"3")
    res = run_probe(probe, s3rver.endpoint, "list", "data", prefix)
    assert res["err"] == "OK", res
    assert [(o["key"], o["size"]) for o in res["objects"]] == [(prefix + "a", 1), (prefix + "b", 2)]


def test_wrong_secret_is_eauth_with_reason(probe, s3rver):
    s3rver.client().put_object("data", "auth/x", b"x")
    res = run_probe(probe, s3rver.endpoint, "get", "data", "auth/x", secret="wrong")
    r = res["results"][0]
    assert r["err"] == "EAUTH" and r["http_status"] == 403
    assert r["message"].startswith("SignatureDoesNotMatch: "), r
    assert r["attempts"] == 1  # a 4xx is not retried
    res = run_probe(probe, s3rver.endpoint, "list", "data", "auth/", secret="wrong")
    assert res["err"] == "EAUTH" and res["message"].startswith("SignatureDoesNotMatch")
    res = run_probe(probe, s3rver.endpoint, "get", "data", "auth/x", access="NOBODY", secret="x")
    assert res["results"][0]["err"] == "EAUTH"


def test_missing_bucket_and_key(probe, s3rver):
    res = run_probe(probe, s3rver.endpoint, "list", "no-such-bucket", "")
    assert res["err"] == "ENOTFOUND" and res["http_status"] == 404
    assert res["message"].startswith("NoSuchBucket")
    res = run_probe(probe, s3rver.endpoint, "get", "no-such-bucket", "k")
    assert res["results"][0]["err"] == "ENOTFOUND"
    res = run_probe(probe, s3rver.endpoint, "get", "data", "no/such/key")
    r = res["results"][0]
    assert r["err"] == "ENOTFOUND" and r["message"].startswith("NoSuchKey") and r["attempts"] == 1
    # a prefix with nothing under it is an empty listing, not an error
    res = run_probe(probe, s3rver.endpoint, "list", "data", "nothing-here/")
    assert res["err"] == "OK" and res["objects"] == []


def test_anonymous_requests(probe, s3rver):
    s3rver.client().put_object("data", "anon/x", b"anonymous")
    res = run_probe(probe, s3rver.endpoint, "get", "data", "anon/x", access=None)
    assert res["results"][0]["sha256"] == sha(b"anonymous")


def test_list_2500_paged_by_1000(probe, s3rver):
    c = s3rver.client()
    items = {"page/%05d" % i: b"" for i in range(2500)}
    put_many(c, "data", items, workers=16)
    res = run_probe(probe, s3rver.endpoint, "list", "data", "page/", opts=["--max-keys", "1000"])
    assert res["err"] == "OK", res
    assert res["pages"] == 3
    assert [o["key"] for o in res["objects"]] == sorted(items)
    assert res["stats"]["lists"] == 3


def test_ranged_gets_of_20mib_in_parallel(probe, s3rver):
    data = os.urandom(20 << 20)
    etag = s3rver.client().put_object("data", "big/20mib.bin", data)
    res = run_probe(probe, s3rver.endpoint, "pget", "data", "big/20mib.bin", str(len(data)), str(8 << 20),
                    opts=["--etag", etag])
    assert res["failed"] == 0, res
    assert res["sha256"] == sha(data)
    parts = sorted(res["results"], key=lambda r: r["offset"])
    assert [p["len"] for p in parts] == [8 << 20, 8 << 20, 4 << 20]
    assert all(p["http_status"] == 206 and p["object_size"] == len(data) for p in parts)
    # a range that runs past the end comes back clipped, with the object's size
    res = run_probe(probe, s3rver.endpoint, "range", "data", "big/20mib.bin", str((20 << 20) - 100), str(1 << 20))
    r = res["results"][0]
    assert r["err"] == "OK" and r["len"] == 100 and r["sha256"] == sha(data[-100:])
    # the whole object in one GET
    res = run_probe(probe, s3rver.endpoint, "get", "data", "big/20mib.bin", opts=["--etag", '"%s"' % etag])
    assert res["results"][0]["sha256"] == sha(data)


def test_etag_mismatch_is_echanged(probe, s3rver):
    s3rver.client().put_object("data", "etag/x", b"version 1")
    res = run_probe(probe, s3rver.endpoint, "get", "data", "etag/x", opts=["--etag", "0" * 32])
    r = res["results"][0]
    assert r["err"] == "ECHANGED" and r["len"] == 0 and "ETag" in r["message"]
    assert res["stats"]["etag_mismatches"] == 1
    res = run_probe(probe, s3rver.endpoint, "range", "data", "etag/x", "100", "10")
    assert res["results"][0]["err"] == "ECHANGED"  # 416: past the end of the object


def test_connections_are_reused(probe, s3rver):
    s3rver.client().put_object("data", "reuse/x", b"r" * 4096)
    res = run_probe(probe, s3rver.endpoint, "get", "data", "reuse/x", opts=["--repeat", "20", "--sequential", "1"])
    assert res["failed"] == 0
    assert res["stats"]["gets"] == 20
    assert res["stats"]["connects"] == 1, res["stats"]


def test_cancel_in_flight_frees_cleanly(probe, s3rver, proxy):
    s3rver.client().put_object("data", "cancel/x", b"c" * 100000)
    proxy.latency_ms = 300
    res = run_probe(probe, proxy.endpoint, "cancel", "data", "cancel/x", "40", opts=["--max-inflight", "4"])
    assert res["failed"] == 0  # no callback ran after s3_free


# --- faults through the proxy -----------------------------------------------------------

def test_retries_500_and_slowdown(probe, s3rver, proxy):
    data = os.urandom(200000)
    s3rver.client().put_object("data", "flaky/a", data)
    proxy.inject("500", count=2, match="flaky/a", method="GET")
    res = run_probe(probe, proxy.endpoint, "get", "data", "flaky/a", opts=["--backoff-ms", "10"])
    r = res["results"][0]
    assert r["err"] == "OK" and r["sha256"] == sha(data) and r["attempts"] == 3
    assert proxy.count("GET", "flaky/a") == 3
    assert res["stats"]["retries"] == 2

    proxy.reset()
    proxy.inject("503", count=3, match="flaky/a")
    res = run_probe(probe, proxy.endpoint, "get", "data", "flaky/a", opts=["--backoff-ms", "10"])
    r = res["results"][0]
    assert r["err"] == "OK" and r["attempts"] == 4 and r["sha256"] == sha(data)
    assert proxy.snapshot()["faults"] == {"503": 3}

    proxy.reset()
    proxy.inject("503", count=3, match="data?")  # the listing
    res = run_probe(probe, proxy.endpoint, "list", "data", "flaky/", opts=["--backoff-ms", "10"])
    assert res["err"] == "OK" and [o["key"] for o in res["objects"]] == ["flaky/a"]
    assert res["stats"]["retries"] == 3


def test_retries_run_out(probe, s3rver, proxy):
    s3rver.client().put_object("data", "down/a", b"x")
    proxy.inject("503", count=100, match="down/a")
    res = run_probe(probe, proxy.endpoint, "get", "data", "down/a", opts=["--backoff-ms", "5", "--retries", "3"])
    r = res["results"][0]
    assert r["err"] == "EUNAVAIL" and r["attempts"] == 4 and r["http_status"] == 503
    assert "SlowDown" in r["message"] and "4 attempts" in r["message"], r["message"]
    assert proxy.count("GET", "down/a") == 4
    assert res["stats"]["errors"] == 1
    # a 4xx is final at once, whatever the retry budget
    proxy.reset()
    res = run_probe(probe, proxy.endpoint, "get", "data", "down/missing", opts=["--retries", "5"])
    assert res["results"][0]["err"] == "ENOTFOUND" and proxy.count("GET", "down/missing") == 1


def test_cut_connection_mid_body_is_retried_never_partial(probe, s3rver, proxy):
    data = os.urandom(3 << 20)
    etag = s3rver.client().put_object("data", "cut/a", data)
    proxy.inject("cut", count=2, match="cut/a")
    res = run_probe(probe, proxy.endpoint, "get", "data", "cut/a", opts=["--backoff-ms", "10", "--etag", etag])
    r = res["results"][0]
    assert r["err"] == "OK" and r["attempts"] == 3 and r["sha256"] == sha(data)
    # ranged GETs too, and with no retries left the caller gets an error, not bytes
    proxy.reset()
    proxy.inject("cut", count=1, match="cut/a", after=1000)
    res = run_probe(probe, proxy.endpoint, "range", "data", "cut/a", "1000", str(1 << 20), opts=["--retries", "-1"])
    r = res["results"][0]
    assert r["err"] == "EUNAVAIL" and r["len"] == 0 and r["attempts"] == 1
    assert "mid-body" in r["message"] or "closed" in r["message"], r["message"]


def test_dropped_connection_and_timeout_are_retried(probe, s3rver, proxy):
    s3rver.client().put_object("data", "drop/a", b"d" * 5000)
    proxy.inject("drop", count=1, match="drop/a")
    res = run_probe(probe, proxy.endpoint, "get", "data", "drop/a", opts=["--backoff-ms", "10"])
    r = res["results"][0]
    assert r["err"] == "OK" and r["sha256"] == sha(b"d" * 5000)
    proxy.reset()
    proxy.inject("stall", count=1, match="drop/a", stall_ms=3000)
    res = run_probe(probe, proxy.endpoint, "get", "data", "drop/a", opts=["--backoff-ms", "10", "--timeout-ms", "500"])
    r = res["results"][0]
    assert r["err"] == "OK" and r["attempts"] == 2
    assert proxy.count("GET", "drop/a") == 2


def test_server_ignoring_range_gets_sliced(probe, s3rver, proxy):
    """A 200 with the whole object for a ranged GET: only the range is kept and checked."""
    data = os.urandom(1 << 20)
    s3rver.client().put_object("data", "norange/a", data)
    proxy.inject("norange", count=3, match="norange/a")
    res = run_probe(probe, proxy.endpoint, "range", "data", "norange/a", "1000", "5000", access=None)
    r = res["results"][0]
    assert r["err"] == "OK" and r["http_status"] == 200 and r["len"] == 5000
    assert r["sha256"] == sha(data[1000:6000]) and r["object_size"] == len(data)
    res = run_probe(probe, proxy.endpoint, "range", "data", "norange/a", str(len(data) - 10), "100", access=None)
    r = res["results"][0]
    assert r["err"] == "OK" and r["len"] == 10 and r["sha256"] == sha(data[-10:])
    res = run_probe(probe, proxy.endpoint, "range", "data", "norange/a", str(len(data) + 10), "100", access=None)
    assert res["results"][0]["err"] == "ECHANGED"


def test_latency_and_inflight_cap(probe, s3rver, proxy):
    c = s3rver.client()
    keys = ["lat/%d" % i for i in range(8)]
    for k in keys:
        c.put_object("data", k, k.encode())
    proxy.latency_ms = 100
    res = run_probe(probe, proxy.endpoint, "get", "data", *keys, opts=["--max-inflight", "2"])
    assert res["failed"] == 0
    assert proxy.snapshot()["max_concurrent"] <= 2
    assert res["elapsed_ms"] >= 4 * 100 * 0.9  # 8 requests, 2 at a time, 100 ms each
    assert res["stats"]["latency_p99_ms"] >= 100
    assert res["stats"]["connects"] <= 2
    proxy.reset()
    res = run_probe(probe, proxy.endpoint, "get", "data", *keys, opts=["--max-inflight", "8"])
    assert proxy.snapshot()["max_concurrent"] == 8
    assert res["elapsed_ms"] < 4 * 100


# --- moto: a second implementation --------------------------------------------------------

@needs_moto
def test_moto_list_get_range(probe, moto):
    c = moto.client()
    c.create_bucket("motob")
    items = {k: os.urandom(500 + i) for i, k in enumerate(ODD_KEYS + [AMP_KEY, DOT_KEY])}
    etags = put_many(c, "motob", items)
    res = run_probe(probe, moto.endpoint, "list", "motob", "odd/", access="moto", secret="moto")
    assert res["err"] == "OK", res
    assert sorted(o["key"] for o in res["objects"]) == sorted(items)
    assert all(o["etag"] == etags[o["key"]] for o in res["objects"])
    res = run_probe(probe, moto.endpoint, "get", "motob", *items, access="moto", secret="moto")
    assert res["failed"] == 0
    assert all(r["sha256"] == sha(items[r["key"]]) for r in res["results"])
    data = os.urandom(9 << 20)
    c.put_object("motob", "big", data)
    res = run_probe(probe, moto.endpoint, "pget", "motob", "big", str(len(data)), str(4 << 20),
                    access="moto", secret="moto")
    assert res["failed"] == 0 and res["sha256"] == sha(data)
    res = run_probe(probe, moto.endpoint, "list", "no-such-bucket", "", access="moto", secret="moto")
    assert res["err"] == "ENOTFOUND"


@needs_moto
def test_moto_list_paging(probe, moto):
    c = moto.client()
    c.create_bucket("motopage")
    items = {"p/%04d" % i: b"x" for i in range(2500)}
    put_many(c, "motopage", items, workers=16)
    res = run_probe(probe, moto.endpoint, "list", "motopage", "p/", access="moto", secret="moto",
                    opts=["--max-keys", "1000"])
    assert res["err"] == "OK" and res["pages"] == 3
    assert [o["key"] for o in res["objects"]] == sorted(items)
