"""`appmesh-lab controller` wired together: informers, leader election, reconcile loop, xDS,
webhook and health servers, on 127.0.0.1 with the Kubernetes API faked."""
from __future__ import annotations

import argparse
import json
import ssl
import threading
import time
import urllib.request

from lab.controller.main import add_arguments, run
from lab.runtime.envoy import free_port
from tests.controller.conftest import FakeKube, load


class QuietWatchKube(FakeKube):
    """Watches that wait (as the API server's do) instead of ending at once."""

    def watch(self, kind, resource_version, timeout_s):
        time.sleep(0.2)
        return iter(())


def wait(check, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_the_controller_comes_up_leads_reconciles_and_injects():
    objects = load("walkthrough.json")
    kube = QuietWatchKube(objects)
    kube.webhooks["appmesh-lab-controller"] = {"webhooks": [{"name": "w", "clientConfig": {}}]}
    ports = {k: free_port() for k in ("xds", "webhook", "health")}
    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(["--bind-address", "127.0.0.1", "--xds-port", str(ports["xds"]),
                         "--webhook-port", str(ports["webhook"]), "--health-port", str(ports["health"]),
                         "--namespace", "appmesh-system", "--identity", "pod-a", "--log-level", "warning"])
    stop = threading.Event()
    t = threading.Thread(target=run, args=(args, kube, stop), daemon=True)
    t.start()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        def ready():
            try:
                with opener.open(f"http://127.0.0.1:{ports['health']}/readyz", timeout=1) as r:
                    return r.status == 200
            except OSError:
                return False
        wait(ready)
        # the leader wrote every status
        wait(lambda: sum(1 for c in kube.calls if c[0] == "patch_status") >= 8)
        assert kube.leases[("appmesh-system", "appmesh-lab-controller-leader")]["spec"]["holderIdentity"] == "pod-a"
        # the caBundle went into the webhook configuration
        assert kube.webhooks["appmesh-lab-controller"]["webhooks"][0]["clientConfig"]["caBundle"]
        with opener.open(f"http://127.0.0.1:{ports['health']}/status", timeout=2) as r:
            status = json.loads(r.read())
        assert status["leader"] is True and status["last_pass"]["proxies"] == 3
        # the webhook answers with the certificate kept in the Secret
        secret = kube.secrets[("appmesh-system", "appmesh-lab-controller-webhook-tls")]
        import base64
        ca = base64.b64decode(secret["data"]["ca.crt"]).decode()
        ctx = ssl.create_default_context(cadata=ca)
        ctx.verify_flags |= ssl.VERIFY_X509_STRICT
        ctx.check_hostname = False  # 127.0.0.1 is not among the Service names the certificate carries
        review = load("admission-reviews.json")["product-pod"]
        req = urllib.request.Request(f"https://127.0.0.1:{ports['webhook']}/mutate-v1-pod",
                                     data=json.dumps(review).encode(), method="POST")
        with urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                         urllib.request.HTTPSHandler(context=ctx)).open(req, timeout=5) as r:
            assert json.loads(r.read())["response"]["patchType"] == "JSONPatch"
    finally:
        stop.set()
        t.join(15)
    assert not t.is_alive()
    assert kube.leases[("appmesh-system", "appmesh-lab-controller-leader")]["spec"]["holderIdentity"] is None


def test_outside_a_cluster_the_controller_says_so_in_one_line(tmp_path):
    import subprocess
    import sys
    from pathlib import Path
    cli = Path(sys.executable).with_name("appmesh-lab")
    out = subprocess.run([str(cli), "controller"], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                         env={"HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "none"), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("appmesh-lab controller: no Kubernetes API to talk to")
