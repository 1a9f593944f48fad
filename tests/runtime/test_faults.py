"""Process faults on the local lab: a dead process comes back, a dead daemon loses nothing."""
import json
import os
import signal
import threading
import time

import pytest

from lab.runtime.client import restore_pending

pytestmark = pytest.mark.envoy


@pytest.fixture(scope="module")
def mesh(lab):
    lab.apply("manifests/walkthrough/")
    return lab


class Load:
    """Steady requests on a stable route, counting failures (a bounded loop on loopback)."""

    def __init__(self, target, path="/products", max_seconds=60):
        self.target, self.path, self.max_seconds = target, path, max_seconds
        self.ok = self.failed = 0
        self.errors = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        from lab.targets.base import request
        host, port = self.target.gateway_url().split("//")[1].split(":")
        end = time.time() + self.max_seconds
        while not self._stop.is_set() and time.time() < end:
            try:
                r = request(host, int(port), "GET", self.path, None, None, 5)
                if r.status == 200:
                    self.ok += 1
                else:
                    self.failed += 1
                    self.errors.append(r.status)
            except Exception as exc:  # any failure to get an answer counts as a failed request
                self.failed += 1
                self.errors.append(repr(exc))
            time.sleep(0.01)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)


def _recovery(target, pod_owner, container, path):
    """Kill one process; return (seconds until requests succeed again, restarts after)."""
    before = next(p for p in target.pods("appmesh-demo") if p["owner"] == pod_owner)["restarts"]
    assert target.kill(pod_owner, container)
    t0 = time.time()

    def check():
        pods = target.pods("appmesh-demo")
        p = next(x for x in pods if x["owner"] == pod_owner)
        assert p["restarts"] > before and p["status"] == "Running", p
        assert target.curl(path, quiet=True).status == 200
    target.eventually(check, timeout=10, interval=0.05, what=f"{pod_owner}/{container} back")
    return time.time() - t0, before


def test_a_killed_gateway_envoy_is_restarted_and_serves_again_within_2s(mesh):
    seconds, before = _recovery(mesh, "appmesh-gateway", "envoy", "/products")
    assert seconds < 2.0, f"recovery took {seconds:.2f}s"
    events = mesh.events("Pod", next(p["name"] for p in mesh.pods("appmesh-demo") if p["owner"] == "appmesh-gateway"),
                         "appmesh-demo")
    assert any(e["reason"] == "BackOff" for e in events) and any(e["reason"] == "Restarted" for e in events)


def test_a_killed_sidecar_envoy_is_restarted_and_its_service_answers_again(mesh):
    seconds, _ = _recovery(mesh, "review-service", "envoy", "/reviews")
    assert seconds < 2.0, f"recovery took {seconds:.2f}s"


def test_a_killed_app_process_is_restarted(mesh):
    seconds, _ = _recovery(mesh, "product-service", "app", "/products")
    assert seconds < 5.0


def test_the_daemon_killed_with_sigkill_loses_nothing_and_traffic_keeps_flowing(mesh):
    before = {(i["kind"], i["metadata"]["name"]) for k in ("VirtualNode", "VirtualService", "GatewayRoute")
              for i in mesh.get(k, namespace="appmesh-demo")}
    info = json.loads(mesh.client.paths.daemon_info.read_text())
    with Load(mesh) as load:
        time.sleep(0.5)
        os.kill(info["pid"], signal.SIGKILL)
        time.sleep(2.0)  # the Envoys serve their last configuration meanwhile
        served_while_down = load.ok
        # daemon.json still names the killed daemon: `up` must report the new one, and return only
        # once everything stored is back (pods running, every proxy connected and ACKed)
        up = mesh.up()
        st = mesh.status()
        assert up["pid"] != info["pid"] and up["pid"] == st["daemon"]["pid"], (up, info)
        assert restore_pending(st) == ([], []), restore_pending(st)
        _all_connected(mesh)
        time.sleep(0.5)
    assert load.failed == 0, f"{load.failed} failed requests: {load.errors[:5]}"
    assert served_while_down > 20
    after = {(i["kind"], i["metadata"]["name"]) for k in ("VirtualNode", "VirtualService", "GatewayRoute")
             for i in mesh.get(k, namespace="appmesh-demo")}
    assert after == before
    # the new daemon adopted the running pods instead of starting them twice
    assert all(p["status"] == "Running" for p in mesh.pods("appmesh-demo"))
    assert mesh.curl("/reviews", quiet=True).status == 200


def _all_connected(target):
    st = target.status()
    proxies = [p for p in st["proxies"] if p.get("snapshot_version")]
    assert proxies and all(p["connected"] for p in proxies), proxies
