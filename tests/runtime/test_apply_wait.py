"""`apply` (and `delete`) return once the change is in effect at the proxies: each proxy a pod runs
has ACKed the configuration version the apply made, or a newer one. Checked on the daemon's status
as it is during a push (a fake client replaying it, since the window is a few milliseconds), and
on a real lab: a request sent right after apply returns is served with the change, every time."""
from __future__ import annotations

import pytest

from lab.runtime.client import LabError
from lab.runtime.status import proxy_waiting, wait_converged

GW = "mesh/m/virtualGateway/gw_ns"


def proxy(version, acked, sent=None, connected=True, nack=None, push_acked=True):
    """A /v1/status proxy entry: the daemon pushed `version`; the proxy ACKed `acked` (per type)."""
    types = {t: {"acked_version": acked, "last_sent_version": sent or acked,
                 "nack": {"version": nack, "message": "bad regex"} if nack and t == "rds" else None}
             for t in ("cds", "eds", "lds", "rds")}
    return {"node_id": GW, "connected": connected, "snapshot_version": version, "types": types,
            "push": {"version": version, "pushed": 1.0, "acked": 2.0 if push_acked else None,
                     "types": ["cds", "eds", "lds", "rds"]}}


class Replay:
    """A client whose /v1/status answers are given in order (the last one repeats)."""

    def __init__(self, *proxies):
        self.answers = list(proxies)
        self.calls = 0

    def call(self, method, path, body=None, ok=(200,)):
        assert (method, path) == ("GET", "/v1/status")
        p = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        return {"pods": [{"namespace": "ns", "name": "gw-1", "status": "Running", "node_id": GW,
                          "containers": [{"name": "envoy", "ready": True}]}], "proxies": [p]}


def test_a_push_not_sent_yet_is_waited_for():
    """The race lessons lost: right after apply, the daemon has made version 5 but its stream has not
    sent it; every type still shows version 4 sent and ACKed. That is not converged."""
    c = Replay(proxy("100-5", acked="100-4", sent="100-4", push_acked=False),
               proxy("100-5", acked="100-4", sent="100-5", push_acked=False),
               proxy("100-5", acked="100-5"))
    wait_converged(c, 5, versions={GW: "100-5"})
    assert c.calls == 3


def test_without_versions_the_version_given_now_is_waited_for():
    c = Replay(proxy("100-5", acked="100-4", sent="100-4", push_acked=False), proxy("100-5", acked="100-5"))
    wait_converged(c, 5)
    assert c.calls == 2


def test_a_newer_version_than_the_apply_made_also_counts():
    assert proxy_waiting(proxy("100-9", acked="100-9"), "100-5") is None
    assert proxy_waiting(proxy("100-9", acked="100-9"), "99-12") is None   # a daemon started later
    assert "has not been sent version 100-5" in proxy_waiting(proxy("100-4", acked="100-4"), "100-5")


def test_a_restarted_envoy_has_not_acked_what_the_push_record_says():
    """The push was ACKed by the Envoy before it restarted; the new one has ACKed nothing yet."""
    assert "has not ACKed version 100-5" in proxy_waiting(proxy("100-5", acked=None, sent="100-5"), "100-5")
    assert "not connected" in proxy_waiting(proxy("100-5", acked="100-5", connected=False), "100-5")


def test_a_rejected_version_fails_at_once_with_the_proxys_message():
    c = Replay(proxy("100-5", acked="100-4", sent="100-5", nack="100-5", push_acked=False))
    with pytest.raises(LabError, match=r"proxy .*gw_ns rejected version 100-5 \(rds\): bad regex"):
        wait_converged(c, 30, versions={GW: "100-5"})
    assert c.calls == 1


def test_the_wait_gives_up_saying_which_proxy_is_late():
    c = Replay(proxy("100-5", acked="100-4", sent="100-5", push_acked=False))
    with pytest.raises(LabError, match=r"did not converge within 0s: proxy .*gw_ns has not ACKed version 100-5"):
        wait_converged(c, 0.2, versions={GW: "100-5"})


# ---- on a real lab -------------------------------------------------------------------------------

ROUTE = """apiVersion: appmesh.k8s.aws/v1beta2
kind: GatewayRoute
metadata:
  name: toggled
  namespace: appmesh-demo
spec:
  httpRoute:
    match:
      prefix: /toggled
    action:
      target:
        virtualService:
          virtualServiceRef:
            name: {service}
      rewrite:
        prefix:
          defaultPrefix: DISABLED
"""


def test_a_request_right_after_apply_is_served_with_the_change(lab):
    lab.apply("manifests/walkthrough/")
    lab.eventually(lambda: _status(lab, "/products", 200), 30, what="/products through the gateway")
    seen = []
    for i in range(8):   # each apply changes the target; the very next request must follow it
        service = ("product-service", "review-service")[i % 2]
        lab.apply_text(ROUTE.format(service=service))
        r = lab.curl("/toggled", quiet=True)
        seen.append((service, r.status, r.json().get("service") if r.status == 200 else r.text[:80]))
    lab.delete_resource("GatewayRoute", "toggled", "appmesh-demo")
    gone = lab.curl("/toggled", quiet=True).status   # deleting waits too: the route is gone at once
    assert all(status == 200 and got == want for want, status, got in seen), seen
    assert gone == 404, gone


def _status(lab, path, want):
    assert lab.curl(path, quiet=True).status == want
