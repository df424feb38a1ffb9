"""capture_admin.py: a pytest plugin (capture.py --e2e loads it with -p) that records every
admin API request the end-to-end tests make, the controller's included: each Broker's
admin_url leads to a recording proxy (capture.py's HttpProxy) in front of its admin
port. When the session ends every request is written to $SLUICE_CAPTURE_DIR/admin_json
as fuzz_admin_json.c takes it. The tests themselves run unchanged."""

import os

import capture
import harness

_proxies = []


def _admin_url(self):
    px = self.__dict__.get("_capture_proxy")
    if px is None or px.target != self.admin_port:
        px = self.__dict__["_capture_proxy"] = capture.HttpProxy(self.admin_port)
        _proxies.append(px)
    return "http://127.0.0.1:%d" % px.port


def pytest_configure(config):
    harness.Broker.admin_url = property(_admin_url)


def pytest_sessionfinish(session, exitstatus):
    out = os.environ.get("SLUICE_CAPTURE_DIR")
    n = 0
    for px in _proxies:
        if out:
            n += capture.write_admin(out, px)
        px.close()
    print("\ncapture_admin: %d admin requests written to %s" % (n, out))
