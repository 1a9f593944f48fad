"""Readiness, as a TCP readiness probe would have it: a container that runs but does not yet
accept connections on its port is not ready, `get pods` says 0/1, and `apply --wait` keeps waiting
(and, on timeout, says which container it waited for) instead of letting traffic hit a closed port."""
import sys
import time

import pytest

from lab.runtime.client import LabError

NS = "readiness"


def _deployment(name: str, command: str) -> str:
    return f"""
apiVersion: v1
kind: Namespace
metadata:
  name: {NS}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {NS}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
      annotations:
        lab.appmesh.dev/local-command: "{command}"
    spec:
      containers:
      - name: app
        image: example.com/not-a-kit-image:1
        ports:
        - containerPort: 8080
"""


def _pod(lab, owner: str) -> dict:
    return next(p for p in lab.client.call("GET", "/v1/status")["pods"] if p["owner"] == owner)


def test_a_running_container_that_does_not_listen_is_not_ready(lab):
    lab.apply_text(_deployment("deaf", f"{sys.executable} -c 'import time; time.sleep(600)'"), wait=False)
    deadline = time.time() + 15
    while _pod(lab, "deaf")["status"] != "Running" and time.time() < deadline:
        time.sleep(0.1)
    pod = _pod(lab, "deaf")
    assert pod["status"] == "Running"
    assert pod["ready"] == "0/1" and pod["containers"][0]["ready"] is False
    from lab.runtime.status import wait_converged
    with pytest.raises(LabError, match=r"readiness/deaf-.*/app runs but does not accept connections yet"):
        wait_converged(lab.client, 2)
    lab.client.call("POST", "/v1/delete", {"keys": [["Deployment", NS, "deaf"]]})


def test_wait_returns_once_a_slow_starting_app_listens(lab):
    slow = (f"{sys.executable} -c 'import time, os, socket; time.sleep(1.5); s = socket.socket(); "
            "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
            "s.bind((os.environ[\\\"HOST\\\"], int(os.environ[\\\"PORT\\\"]))); s.listen(); time.sleep(600)'")
    started = time.time()
    lab.apply_text(_deployment("slow", slow))
    assert time.time() - started >= 1.0  # the wait covered the app's start-up
    pod = _pod(lab, "slow")
    assert pod["ready"] == "1/1" and pod["containers"][0]["ready"] is True
    lab.client.call("POST", "/v1/delete", {"keys": [["Deployment", NS, "slow"]]})
