"""The export's decisions one at a time: precedence conflicts, ranges, hostnames, GAMMA routes."""
import re

from hypothesis import given, strategies as st

from lab.migrate import export
from lab.migrate.matches import range_regex
from tests.translate.helpers import world_from_yaml

BASE = """
apiVersion: v1
kind: Namespace
metadata: {name: ns, labels: {mesh: m, gw: g}}
---
apiVersion: appmesh.k8s.aws/v1beta2
kind: Mesh
metadata: {name: m}
spec: {namespaceSelector: {matchLabels: {mesh: m}}}
---
apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualGateway
metadata: {name: gw, namespace: ns}
spec:
  namespaceSelector: {matchLabels: {gw: g}}
  podSelector: {matchLabels: {app: gw}}
  listeners: [{portMapping: {port: 8088, protocol: http}}]
---
apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualNode
metadata: {name: a, namespace: ns}
spec:
  podSelector: {matchLabels: {app: a}}
  listeners: [{portMapping: {port: 8080, protocol: http}}]
  serviceDiscovery: {dns: {hostname: a.ns.svc.cluster.local}}
---
apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualService
metadata: {name: a, namespace: ns}
spec: {awsName: a.ns.svc.cluster.local, provider: {virtualNode: {virtualNodeRef: {name: a}}}}
"""


def route(name, priority, match, rewrite=""):
    rw = f", rewrite: {rewrite}" if rewrite else ""
    return f"""---
apiVersion: appmesh.k8s.aws/v1beta2
kind: GatewayRoute
metadata: {{name: {name}, namespace: ns}}
spec:
  priority: {priority}
  httpRoute:
    match: {match}
    action: {{target: {{virtualService: {{virtualServiceRef: {{name: a}}}}}}{rw}}}
"""


def findings(text, code=None, profile="standard"):
    world = world_from_yaml(text)
    ex = export(list(world.by_key.values()), profile)
    return [f for f in ex.findings if code is None or f.code == code], ex


def test_a_kept_order_is_not_reported():
    got, _ = findings(BASE + route("long", 1, "{prefix: /api/v2}") + route("short", 2, "{prefix: /api}"),
                      "precedence")
    assert got == []


def test_a_shorter_prefix_with_a_higher_priority_is_reported_with_a_request_both_match():
    got, _ = findings(BASE + route("short", 1, "{prefix: /api}") + route("long", 2, "{prefix: /api/v2}"),
                      "precedence")
    assert len(got) == 1
    f = got[0]
    assert "GatewayRoute ns/short" in f.message and "GatewayRoute ns/long" in f.message
    assert "GET /api/v2/x" in f.message and "path prefix length" in f.message
    assert f.path == "spec.httpRoute.match" and f.line > 0


def test_a_route_added_to_keep_the_order_silences_the_finding():
    gold = "{prefix: /, headers: [{name: x-tier, match: {exact: gold}}]}"
    before, _ = findings(BASE + route("gold", 10, gold) + route("api", 20, "{prefix: /api}"), "precedence")
    assert len(before) == 1 and "x-tier: gold" in before[0].message and "GET /api/x" in before[0].message
    keep = route("gold-api", 5, "{prefix: /api, headers: [{name: x-tier, match: {exact: gold}}]}",
                 "{prefix: {defaultPrefix: DISABLED}}")
    after, ex = findings(BASE + route("gold", 10, gold) + route("api", 20, "{prefix: /api}") + keep, "precedence")
    assert after == []
    added = next(o for o in ex.objects if o.name == "gold-api").body["spec"]["rules"][0]
    assert added["filters"][0]["urlRewrite"] == {"hostname": "a.ns.svc.cluster.local"}  # the path is kept


def test_disjoint_routes_are_not_compared():
    got, _ = findings(BASE + route("get", 1, "{prefix: /, method: GET}") + route("post", 2,
                      "{prefix: /orders, method: POST}") + route("h1", 3, "{prefix: /, method: PUT, headers: [{name: x, "
                      "match: {exact: '1'}}]}") + route("h2", 4, "{prefix: /o, method: PUT, headers: [{name: x, "
                      "match: {exact: '2'}}]}"),
                      "precedence")
    assert got == []


def test_hostname_suffix_without_a_dot_is_a_finding_and_becomes_a_wildcard():
    got, ex = findings(BASE + route("h", 1, "{hostname: {suffix: example.com}}"), "semantics")
    assert any("badexample.com" in f.message for f in got)
    r = next(o for o in ex.objects if o.kind == "HTTPRoute")
    assert r.body["spec"]["hostnames"] == ["*.example.com"]


def test_invert_is_not_exported_and_says_why():
    got, ex = findings(BASE + route("i", 1, "{prefix: /, headers: [{name: x, invert: true, match: {exact: p}}]}"))
    assert not [o for o in ex.objects if o.kind == "HTTPRoute"]
    assert {f.code for f in got} >= {"no-equivalent", "not-exported"}


def test_lattice_has_no_query_matches_and_no_rewrite():
    got, ex = findings(BASE + route("q", 1, "{prefix: /p, queryParameters: [{name: a, match: {exact: b}}]}")
                       + route("r", 2, "{prefix: /r}"), profile="vpc-lattice")
    names = [o.name for o in ex.objects if o.kind == "HTTPRoute"]
    assert names == ["r"]
    r = next(o for o in ex.objects if o.name == "r")
    assert "filters" not in r.body["spec"]["rules"][0]
    assert any(f.code == "unsupported" and "URLRewrite" in f.message for f in got)


@given(st.integers(0, 5000), st.integers(1, 5000), st.integers(0, 12000))
def test_range_regex_matches_exactly_the_range(start, length, n):
    rx = re.compile(range_regex(start, start + length))
    assert bool(rx.fullmatch(str(n))) == (start <= n < start + length)


def test_grpc_probes_cover_the_service_the_method_and_the_metadata():
    from lab.migrate.probes import grpc_route_probes
    ps = grpc_route_probes("GatewayRoute ns/r", {"serviceName": "shop.Cart", "methodName": "Add",
                                                 "metadata": [{"name": "X-Tenant", "match": {"prefix": "be"}}]})
    got = {(p.path, p.headers, p.tag) for p in ps}
    md = (("x-tenant", "be1"),)
    assert ("/shop.Cart/Add", md, "match") in got
    assert {("/shop.Cart/Addx", md, "method-miss"), ("/shop.Cart/add", md, "method-case"),
            ("/shop.Cartx/Add", md, "service-miss"), ("/shop/Add", md, "service-miss"),
            ("/SHOP.CART/Add", md, "service-case"), ("/shop.Cart/Add", (("x-tenant", "xbe1"),), "header-miss"),
            ("/shop.Cart/Add", (), "header-absent")} <= got
    assert all(p.grpc and p.describe().startswith("gRPC /") for p in ps)
