"""End-to-end test with the librdkafka C API: tests/e2e/c/roundtrip.c is compiled here
and run against the broker (acks=all produce, assign-based consume, exact check)."""

import os
import shutil
import tempfile

import pytest

from harness import REPO_ROOT, run, unique

SRC = os.path.join(REPO_ROOT, "tests", "e2e", "c", "roundtrip.c")


@pytest.fixture(scope="module")
def roundtrip_bin():
    d = tempfile.mkdtemp(prefix="sluice-rt-")
    exe = os.path.join(d, "roundtrip")
    r = run(["cc", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-o", exe, SRC, "-lrdkafka"], timeout=120)
    assert r.returncode == 0, "compiling roundtrip.c failed:\n%s" % r.stderr.decode(errors="replace")
    yield exe
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("count", [1, 5000])
def test_c_roundtrip(broker, roundtrip_bin, count):
    topic = unique("c-rt")
    broker.create_topic(topic, partitions=1)
    r = run([roundtrip_bin, broker.bootstrap, topic, str(count)], timeout=120)
    out = (r.stdout + r.stderr).decode(errors="replace")
    assert r.returncode == 0, "roundtrip failed (%d):\n%s\n--- broker log tail ---\n%s" % (
        r.returncode, out[-4000:], broker.log_tail(30))
    assert "OK: produced and consumed %d messages, 0 failures" % count in out
    t = broker.get_topic(topic)
    assert t["name"] == topic
