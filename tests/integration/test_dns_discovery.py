"""A virtual node's DNS hostname that names no Service resolves to nothing: its pods run, but
no caller reaches them, and the gateway answers 503 "no healthy upstream" (Envoy's UH), the
guide's most common 503. Creating the Service fixes it. Real Envoy, real sample apps, the
local lab (the cluster controller follows the same rule: tests/controller/test_reconcile.py).
"""
import pytest

from lab.bench import manifests as m

from .conftest import start_lab

pytestmark = pytest.mark.envoy

NS = "it-dns"


def docs():
    return m.base(NS) + [
        # "ghost": the Deployment runs, the virtual node selects its pods, but the Service its
        # hostname (ghost.it-dns.svc.cluster.local) names was never created
        m.virtual_node("ghost", NS), m.deployment("ghost", NS), m.virtual_service("ghost", NS, node="ghost"),
        m.gateway_route("ghost", NS, {"prefix": "/ghost"}, "ghost"),
        m.virtual_node("real", NS), m.app("real", NS), m.virtual_service("real", NS, node="real"),
        m.gateway_route("real", NS, {"prefix": "/real"}, "real"),
    ]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with start_lab(tmp_path_factory, NS, docs(), ready=["/real"]) as lab:
        yield lab


def test_a_hostname_that_names_no_service_gives_503_no_healthy_upstream_until_the_service_exists(lab):
    assert lab.get("/real").service == "real"
    ghost_pods = [p for p in lab.target.pods(NS) if p["owner"] == "ghost"]
    assert ghost_pods and all(p["status"] == "Running" for p in ghost_pods), ghost_pods  # the app runs
    r = lab.wait_for("/ghost", status=503)
    assert r.body.strip() == b"no healthy upstream", r.body
    stats = lab.target.stats("gateway", filter="ghost")
    cluster = f"cluster.cds_egress_{NS}_ghost_{NS}_http_8080"
    assert stats.get(f"{cluster}.upstream_cx_none_healthy", 0) >= 1, stats  # UH: no endpoint at all
    assert stats.get(f"{cluster}.membership_total") == 0
    # the fix the guide gives: create the Service
    lab.apply(m.service("ghost", NS))
    assert lab.wait_for("/ghost", status=200).service == "ghost"
