"""test_manifests.py: the static checks of what Sluice ships to Kubernetes, run by
tests/k8s/check_manifests.sh: the chart's CRDs are the top-level ones, `helm lint --strict`
and `helm template` (validated with kubernetes-models) with several value sets, and the
CRDs' CEL rules against good and bad resources.
"""

import os
import subprocess

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
SCRIPT = os.path.join(ROOT, "tests", "k8s", "check_manifests.sh")


def run(step):
    return subprocess.run([SCRIPT, step], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module", autouse=True)
def deps():
    p = run("deps")
    if p.returncode != 0:
        pytest.fail("installing helm and the node checkers failed:\n%s\n%s" % (p.stdout, p.stderr))


@pytest.mark.timeout(600)
@pytest.mark.parametrize("step", ["crds", "lint", "template", "cel"])
def test_manifests(step):
    p = run(step)
    assert p.returncode == 0, "check_manifests.sh %s failed:\n%s\n%s" % (step, p.stdout, p.stderr)


def test_validator_catches_a_bad_manifest(tmp_path):
    """validate_manifests.js must fail on a container that runs as root with a typo'd field."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("""apiVersion: apps/v1
kind: Deployment
metadata: {name: x}
spec:
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      containers:
        - name: c
          image: x:1
          securityContext: {readOnlyRootFileSystem: true}
""")
    env = dict(os.environ, NODE_PATH=os.path.join(ROOT, "tests", ".deps", "node_modules"))
    p = subprocess.run(["node", os.path.join(ROOT, "tests", "k8s", "validate_manifests.js"), str(bad)],
                       cwd=ROOT, capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 1
    assert "unknown field /spec/template/spec/containers/0/securityContext/readOnlyRootFileSystem" in p.stdout
    assert "runAsNonRoot must be true" in p.stdout
