"""API spec ↔ CRD spec conversion, checked against both schemas, and API names ↔ Kubernetes names."""
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from lab.api import convert, service
from lab.model import kinds as K
from lab.model.schema import Arr, Obj, ReadOnly

SPEC_SHAPES = {"Mesh": "MeshSpec", "VirtualNode": "VirtualNodeSpec", "VirtualService": "VirtualServiceSpec",
               "VirtualRouter": "VirtualRouterSpec", "Route": "RouteSpec", "VirtualGateway": "VirtualGatewaySpec",
               "GatewayRoute": "GatewayRouteSpec"}
# API fields the CRDs have no place for (kept in the appmesh.lab/api-fields annotation)
API_ONLY = {("VirtualNode", "serviceDiscovery.awsCloudMap.ipPreference"),
            ("VirtualNode", "serviceDiscovery.dns.ipPreference")}


def _crd_key(kind, path, key):
    if not path and key in convert.TOP_RENAMES.get(kind, {}):
        return convert.TOP_RENAMES[kind][key]
    return convert.RENAMES.get(key, key)


def _walk(kind, shape_name, node, path, missing):
    """Every API member must have a CRD field under the conversion rules."""
    sh = service.SHAPES[shape_name]
    if isinstance(node, ReadOnly):
        node = node.inner
    if sh["type"] == "list":
        assert isinstance(node, Arr), (kind, path)
        return _walk(kind, sh["member"]["shape"], node.items, path, missing)
    if sh["type"] != "structure":
        return
    assert isinstance(node, Obj), (kind, path)
    for key, m in sh["members"].items():
        here = f"{path}.{key}" if path else key
        base = key[:-4] if key.endswith("Name") else key
        if base in convert.REF_KINDS and (key.endswith("Name") or path.endswith("weightedTargets")):
            assert {base + "Ref", base + "ARN"} <= set(node.props), (kind, here)
            continue
        crd = _crd_key(kind, path, key)
        if crd not in node.props:
            missing.add((kind, here))
            continue
        _walk(kind, m["shape"], node.props[crd], here, missing)


def test_every_api_spec_field_has_a_crd_field_except_the_documented_api_only_ones():
    missing = set()
    for kind, shape in SPEC_SHAPES.items():
        _walk(kind, shape, convert.SPEC_NODES[kind], "", missing)
    assert missing == API_ONLY


def _sample(shape_name, path=""):
    """A value of the shape with every member set (unions too: conversion does not care)."""
    sh = service.SHAPES[shape_name]
    t = sh["type"]
    if t == "structure":
        return {k: _sample(m["shape"], f"{path}.{k}") for k, m in sh["members"].items()}
    if t == "list":
        return [_sample(sh["member"]["shape"], path)]
    if t == "string":
        return sh["enum"][0] if sh.get("enum") else f"v{abs(hash(path)) % 1000}"
    if t in ("integer", "long"):
        return sh.get("min", 1) + 1
    if t == "boolean":
        return True
    if t in ("double", "float"):
        return 1.5
    raise AssertionError(t)


class FakeRefs(convert.Refs):
    """Names starting with 'new' do not exist yet (ARN form); others resolve to namespace 'ns'."""

    def to_crd(self, kind, name):
        if name.startswith("new"):
            return "ARN", f"arn:aws:appmesh:us-west-2:111122223333:mesh/m/{kind}/{name}"
        return "Ref", {"name": name, "namespace": "ns"}

    def to_api(self, kind, ref, arn):
        return arn.rsplit("/", 1)[-1] if arn else ref["name"]


def test_every_api_spec_round_trips_through_its_crd_form():
    for kind, shape in SPEC_SHAPES.items():
        api = _sample(shape)
        crd, extras = convert.to_crd(kind, api, FakeRefs())
        back = service.serialize(shape, convert.to_api(kind, crd, extras, FakeRefs()))
        assert back == api, kind
        assert {".".join(map(str, p)) for p, _ in extras} == {p for k, p in API_ONLY if k == kind}


def test_names_become_refs_or_arns_and_fields_are_renamed():
    api = {"backends": [{"virtualService": {"virtualServiceName": "svc.ns"}},
                        {"virtualService": {"virtualServiceName": "new.ns"}}],
           "listeners": [{"portMapping": {"port": 80, "protocol": "http"},
                          "tls": {"mode": "STRICT", "certificate": {"acm": {"certificateArn": "arn:c"}}}}]}
    crd, _ = convert.to_crd("VirtualNode", api, FakeRefs())
    assert crd["backends"][0] == {"virtualService": {"virtualServiceRef": {"name": "svc.ns", "namespace": "ns"}}}
    assert crd["backends"][1]["virtualService"]["virtualServiceARN"].endswith("/VirtualService/new.ns")
    assert crd["listeners"][0]["tls"]["certificate"]["acm"] == {"certificateARN": "arn:c"}
    route, _ = convert.to_crd("Route", {"tcpRoute": {"action": {"weightedTargets": [
        {"virtualNode": "vn", "weight": 1}]}}}, FakeRefs())
    assert route["tcpRoute"]["action"]["weightedTargets"] == [{"weight": 1, "virtualNodeRef": {"name": "vn",
                                                                                               "namespace": "ns"}}]
    mesh, _ = convert.to_crd("Mesh", {"serviceDiscovery": {"ipPreference": "IPv4_ONLY"}}, FakeRefs())
    assert mesh == {"meshServiceDiscovery": {"ipPreference": "IPv4_ONLY"}}


def test_an_update_keeps_the_crd_only_fields():
    kept = convert.kept_on_update("VirtualGateway", service.SHAPES["VirtualGatewaySpec"]["members"])
    assert kept == {"awsName", "namespaceSelector", "podSelector", "gatewayRouteSelector", "meshRef"}
    assert "routes" in convert.kept_on_update("VirtualRouter", service.SHAPES["VirtualRouterSpec"]["members"])
    assert convert.kept_on_update("Mesh", service.SHAPES["MeshSpec"]["members"]) == {
        "awsName", "namespaceSelector", "meshOwner"}


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=300))
def test_any_api_name_becomes_a_valid_kubernetes_name_and_label_value(name):
    sub = convert.k8s_name(name)
    assert len(sub) <= 253 and K.DNS_SUBDOMAIN.match(sub), sub
    lab = convert.k8s_name(name, label=True)
    assert len(lab) <= 63 and K.DNS_LABEL.match(lab), lab
    value = convert.label_value(name)
    assert len(value) <= 63 and re.fullmatch(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?", value), value


@given(st.text(min_size=1, max_size=80), st.text(min_size=1, max_size=80))
def test_two_api_names_never_share_a_kubernetes_name(a, b):
    if a != b:
        assert convert.k8s_name(a) != convert.k8s_name(b)


def test_valid_names_are_kept_as_they_are():
    assert convert.k8s_name("product-service.appmesh-demo.svc.cluster.local") == \
        "product-service.appmesh-demo.svc.cluster.local"
    assert convert.k8s_name("gr-1") == "gr-1"
    assert convert.k8s_name("My_Route").startswith("my-route-")
    assert convert.label_value("appmesh-gateway_appmesh-demo") == "appmesh-gateway_appmesh-demo"
