"""conftest.py: the `broker` fixture and a per-test timeout for the e2e suite.

The timeout needs no plugin: SIGALRM raises in the test after SLUICE_TEST_TIMEOUT
seconds (default 180, or @pytest.mark.timeout(N)), and faulthandler kills the whole
run 60 s later if the test is stuck somewhere a signal cannot reach.
"""

import faulthandler
import os
import signal
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from harness import Broker  # noqa: E402

# confluent-kafka 1.7 (Debian's python3-confluent-kafka) releases one reference to None
# too many on some paths of its Message API: about 200 per codec round-trip test. On
# Python 3.11 None is not immortal, so a long suite can drive its count to zero and the
# interpreter aborts at exit ("Fatal Python error: none_dealloc"). Holding a few million
# extra references keeps the count positive; it changes nothing the tests check.
_NONE_REFS = [None] * 4_000_000

DEFAULT_TIMEOUT_S = int(os.environ.get("SLUICE_TEST_TIMEOUT", "180"))
HARD_EXTRA_S = 60


class TestTimeout(Exception):
    pass


def pytest_configure(config):
    config.addinivalue_line("markers", "timeout(seconds): per-test time limit (harness, not pytest-timeout)")


def _timeout_for(item):
    m = item.get_closest_marker("timeout")
    if m and m.args:
        return int(m.args[0])
    return DEFAULT_TIMEOUT_S


def _on_alarm(signum, frame):
    raise TestTimeout("test exceeded its time limit")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Arm the soft (SIGALRM) and hard (faulthandler) limits around setup, call and teardown."""
    limit = _timeout_for(item)
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(limit)
    faulthandler.dump_traceback_later(limit + HARD_EXTRA_S, exit=True)
    try:
        yield
    finally:
        signal.alarm(0)
        faulthandler.cancel_dump_traceback_later()
        signal.signal(signal.SIGALRM, old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def broker(request):
    """A started broker; at teardown it must exit 0 on SIGTERM with a clean log."""
    b = Broker()
    try:
        b.start()
        yield b
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            print("--- broker log tail (%s) ---\n%s" % (b.log_path, b.log_tail(80)))
        if b.proc is not None:
            rc = b.stop()
            assert rc == 0, "broker exit code on SIGTERM was %r\n--- log tail ---\n%s" % (rc, b.log_tail())
        b.assert_clean()
    finally:
        b.close()


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """A throwaway CA, a server certificate for 127.0.0.1 and client certificates for
    alice and bob (tests/security/mkcerts.sh): a dict of name -> path."""
    d = str(tmp_path_factory.mktemp("certs"))
    script = os.path.join(os.path.dirname(__file__), "..", "security", "mkcerts.sh")
    import subprocess

    subprocess.run([script, d, "alice", "bob"], check=True)
    out = {"dir": d}
    for n in ("ca", "server", "alice", "bob"):
        out[n + ".pem"] = os.path.join(d, n + ".pem")
        if n != "ca":
            out[n + ".key"] = os.path.join(d, n + ".key")
    return out

