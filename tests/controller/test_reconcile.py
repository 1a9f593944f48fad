"""One reconcile pass (lab.controller.reconcile.compute) on recorded API objects."""
from __future__ import annotations

import copy

import pytest

from lab.controller.reconcile import (
    MESH_MEMBERS_FINALIZER,
    RESOURCES_FINALIZER,
    VG_MEMBERS_FINALIZER,
    compute,
)
from lab.xds.snapshot import Snapshot

NOW = "2026-10-05T09:01:00Z"
PRODUCT = "mesh/my-app-mesh/virtualNode/product-service-vn_appmesh-demo"
REVIEW = "mesh/my-app-mesh/virtualNode/review-service-vn_appmesh-demo"
GATEWAY = "mesh/my-app-mesh/virtualGateway/appmesh-gateway_appmesh-demo"


def settled(objects):
    """The objects as the API holds them after a pass was written (status, finalizers)."""
    objects = copy.deepcopy(objects)
    d = compute(objects, NOW)
    for kind, items in objects.items():
        for o in items:
            key = (kind, o["metadata"].get("namespace", "") if kind not in ("Mesh", "Namespace") else "",
                   o["metadata"]["name"])
            if key in d.statuses:
                o["status"] = {k: v for k, v in d.statuses[key].items() if v is not None}
            if key in d.finalizers:
                o["metadata"]["finalizers"] = d.finalizers[key][0]
    return objects


def find(objects, kind, name):
    return next(o for o in objects[kind] if o["metadata"]["name"] == name)


def endpoints(envoy, cluster):
    cla = next(c for c in envoy["endpoints"] if c["cluster_name"] == cluster)
    return [e["endpoint"]["address"]["socket_address"]["address"] + ":" +
            str(e["endpoint"]["address"]["socket_address"]["port_value"]) for e in cla["endpoints"][0]["lb_endpoints"]]


def test_every_walkthrough_resource_becomes_active_with_its_arn_and_generation(walkthrough):
    d = compute(walkthrough, NOW)
    assert len(d.statuses) == 8
    for (kind, ns, name), status in d.statuses.items():
        cond = status["conditions"][0]
        assert cond["type"] == f"{kind}Active" and cond["status"] == "True", (kind, name, cond)
        assert cond["lastTransitionTime"] == NOW
        assert status["observedGeneration"] == 1
    vs = d.statuses[("VirtualService", "appmesh-demo", "product-service")]
    assert vs["virtualServiceARN"] == ("arn:aws:appmesh:us-west-2:111122223333:mesh/my-app-mesh/virtualService/"
                                       "product-service.appmesh-demo.svc.cluster.local")
    gr = d.statuses[("GatewayRoute", "appmesh-demo", "product-gateway-route")]
    assert gr["gatewayRouteARN"].endswith("/virtualGateway/appmesh-gateway_appmesh-demo/gatewayRoute/"
                                          "product-gateway-route_appmesh-demo")
    assert {e.reason for e in d.events} == {"Active"}


def test_a_settled_world_writes_nothing_and_keeps_transition_times(walkthrough):
    objects = settled(walkthrough)
    d = compute(objects, "2026-10-05T10:00:00Z")
    assert d.statuses == {} and d.finalizers == {} and d.events == []


def test_finalizers_are_added_per_kind(walkthrough):
    d = compute(walkthrough, NOW)
    assert d.finalizers[("Mesh", "", "my-app-mesh")][0] == [MESH_MEMBERS_FINALIZER, RESOURCES_FINALIZER]
    assert d.finalizers[("VirtualGateway", "appmesh-demo", "appmesh-gateway")][0] == [VG_MEMBERS_FINALIZER,
                                                                                       RESOURCES_FINALIZER]
    assert d.finalizers[("GatewayRoute", "appmesh-demo", "product-gateway-route")][0] == [RESOURCES_FINALIZER]
    # written against the resourceVersion that was read
    assert d.finalizers[("VirtualNode", "appmesh-demo", "product-service-vn")][1] == \
        find(walkthrough, "VirtualNode", "product-service-vn")["metadata"]["resourceVersion"]


def test_foreign_finalizers_are_kept(walkthrough):
    find(walkthrough, "VirtualNode", "review-service-vn")["metadata"]["finalizers"] = ["example.com/keep"]
    d = compute(walkthrough, NOW)
    assert d.finalizers[("VirtualNode", "appmesh-demo", "review-service-vn")][0] == ["example.com/keep",
                                                                                     RESOURCES_FINALIZER]


def test_endpoints_are_the_ready_pods_of_the_service_with_the_listener_port(walkthrough):
    d = compute(walkthrough, NOW)
    gw = d.envoy[GATEWAY]
    # 10.244.1.9 is in the EndpointSlice but not ready
    assert endpoints(gw, "cds_egress_my-app-mesh_product-service-vn_appmesh-demo_http_8080") == ["10.244.1.5:8080"]
    assert endpoints(gw, "cds_egress_my-app-mesh_review-service-vn_appmesh-demo_http_8080") == ["10.244.1.6:8080"]


def test_a_pod_becoming_ready_joins_the_endpoints(walkthrough):
    sl = find(walkthrough, "EndpointSlice", "product-service-x7k2p")
    sl["endpoints"][1]["conditions"]["ready"] = True
    d = compute(walkthrough, NOW)
    assert endpoints(d.envoy[GATEWAY], "cds_egress_my-app-mesh_product-service-vn_appmesh-demo_http_8080") == \
        ["10.244.1.5:8080", "10.244.1.9:8080"]


def test_a_dns_hostname_that_names_no_service_gives_no_endpoints(walkthrough):
    """review-service.appmesh-demo.svc.cluster.local resolves to nothing without the Service (no
    EndpointSlice names it): no endpoints, so callers get 503, as on a pod; the podSelector's
    ready pod is not used instead."""
    walkthrough["EndpointSlice"] = [s for s in walkthrough["EndpointSlice"]
                                    if s["metadata"]["labels"]["kubernetes.io/service-name"] != "review-service"]
    d = compute(walkthrough, NOW)
    assert endpoints(d.envoy[PRODUCT], "cds_egress_my-app-mesh_review-service-vn_appmesh-demo_http_8080") == []
    assert endpoints(d.envoy[GATEWAY], "cds_egress_my-app-mesh_product-service-vn_appmesh-demo_http_8080") == \
        ["10.244.1.5:8080"]


@pytest.mark.parametrize("hostname", [None, "review.example.com", "review-service.nowhere"])
def test_without_dns_discovery_or_with_an_outside_name_the_ready_pods_of_the_pod_selector_are_used(
        walkthrough, hostname):
    vn = find(walkthrough, "VirtualNode", "review-service-vn")
    if hostname is None:
        vn["spec"]["serviceDiscovery"] = {"awsCloudMap": {"namespaceName": "lab", "serviceName": "review"}}
    else:
        vn["spec"]["serviceDiscovery"]["dns"]["hostname"] = hostname  # "nowhere" is no namespace: outside
    walkthrough["EndpointSlice"] = [s for s in walkthrough["EndpointSlice"]
                                    if s["metadata"]["labels"]["kubernetes.io/service-name"] != "review-service"]
    d = compute(walkthrough, NOW)
    assert endpoints(d.envoy[PRODUCT], "cds_egress_my-app-mesh_review-service-vn_appmesh-demo_http_8080") == \
        ["10.244.1.6:8080"]


def test_a_sidecar_has_one_ingress_listener_on_15000_with_a_chain_per_port(walkthrough):
    env = compute(walkthrough, NOW).envoy[PRODUCT]
    names = [lst["name"] for lst in env["listeners"]]
    assert names == ["lds_ingress_0.0.0.0_15000", "lds_egress_0.0.0.0_15001"]
    ingress = env["listeners"][0]
    assert ingress["address"]["socket_address"] == {"address": "0.0.0.0", "port_value": 15000}
    assert ingress["listener_filters"][0]["name"] == "envoy.filters.listener.original_dst"
    assert [c["filter_chain_match"] for c in ingress["filter_chains"]] == [{"destination_port": 8080}]
    egress = env["listeners"][1]
    assert egress["address"]["socket_address"] == {"address": "0.0.0.0", "port_value": 15001}
    # the local app is on loopback, same port
    assert endpoints(env, "cds_ingress_my-app-mesh_product-service-vn_appmesh-demo_http_8080") == ["127.0.0.1:8080"]
    Snapshot.from_dicts("1", **env).consistent()


def test_a_gateway_listens_on_its_listener_port_and_self_redirects_inside_envoy(walkthrough):
    env = compute(walkthrough, NOW).envoy[GATEWAY]
    by_name = {lst["name"]: lst for lst in env["listeners"]}
    assert by_name["lds_ingress_0.0.0.0_8088"]["address"]["socket_address"] == {"address": "0.0.0.0",
                                                                                 "port_value": 8088}
    assert "listener_filters" not in by_name["lds_ingress_0.0.0.0_8088"]
    # the egress stage is an internal listener: no socket, no loopback TCP hop
    assert "address" not in by_name["lds_egress_internal_15001"]
    assert not [c for c in env["clusters"] if "self_redirect" in c["name"] and "transport_socket" not in c]
    assert all(lb["endpoint"]["address"].keys() == {"envoy_internal_address"} for e in env["endpoints"]
               if "self_redirect" in e["cluster_name"] for g in e["endpoints"] for lb in g["lb_endpoints"])
    Snapshot.from_dicts("1", **env).consistent()


def _multi_port(walkthrough):
    vn = find(walkthrough, "VirtualNode", "review-service-vn")
    vn["spec"]["listeners"] = [
        {"portMapping": {"port": 8080, "protocol": "http"}},
        {"portMapping": {"port": 9090, "protocol": "http2"},
         "tls": {"mode": "PERMISSIVE", "certificate": {"file": {"certificateChain": "/etc/appmesh-lab/certs/x/tls.crt",
                                                                "privateKey": "/etc/appmesh-lab/certs/x/tls.key"}}}},
        {"portMapping": {"port": 5432, "protocol": "tcp"}},
    ]
    return walkthrough


def test_several_listener_ports_become_filter_chains_of_one_listener(walkthrough):
    env = compute(_multi_port(walkthrough), NOW).envoy[REVIEW]
    ingress = [lst for lst in env["listeners"] if lst["name"].startswith("lds_ingress_")]
    assert len(ingress) == 1
    chains = {c["name"]: c["filter_chain_match"] for c in ingress[0]["filter_chains"]}
    assert chains == {"ingress_8080": {"destination_port": 8080},
                      "ingress_9090_tls": {"destination_port": 9090, "transport_protocol": "tls"},
                      "ingress_9090_raw_buffer": {"destination_port": 9090, "transport_protocol": "raw_buffer"},
                      "ingress_5432": {"destination_port": 5432}}
    assert [f["name"] for f in ingress[0]["listener_filters"]] == ["envoy.filters.listener.original_dst",
                                                                   "envoy.filters.listener.tls_inspector"]
    Snapshot.from_dicts("1", **env).consistent()


def test_an_object_the_model_rejects_is_inactive_with_reason_invalid(walkthrough):
    gr = find(walkthrough, "GatewayRoute", "review-gateway-route")
    gr["spec"]["httpRoute"]["match"] = {"prefix": "/reviews", "path": {"exact": "/reviews"}}
    d = compute(walkthrough, NOW)
    cond = d.statuses[("GatewayRoute", "appmesh-demo", "review-gateway-route")]["conditions"][0]
    assert cond["status"] == "False" and cond["reason"] == "Invalid"
    assert "prefix" in cond["message"] and "path" in cond["message"]
    assert any(e.reason == "ReconcileError" and e.key[2] == "review-gateway-route" for e in d.events)
    # its route is not programmed; the other one still is
    routes = [r["name"] for rc in d.envoy[GATEWAY]["routes"] for vh in rc["virtual_hosts"] for r in vh["routes"]]
    assert "product-gateway-route_appmesh-demo" in routes and "review-gateway-route_appmesh-demo" not in routes


def test_a_gateway_route_to_a_missing_service_is_inactive_and_drops_its_arn_when_it_had_one(walkthrough):
    objects = settled(walkthrough)
    objects["VirtualService"] = [v for v in objects["VirtualService"] if v["metadata"]["name"] != "review-service"]
    d = compute(objects, "2026-10-05T10:00:00Z")
    st = d.statuses[("GatewayRoute", "appmesh-demo", "review-gateway-route")]
    assert st["conditions"][0] == {"type": "GatewayRouteActive", "status": "False", "reason": "VirtualServiceNotFound",
                                   "message": st["conditions"][0]["message"],
                                   "lastTransitionTime": "2026-10-05T10:00:00Z"}
    assert "gatewayRouteARN" in st  # still attached to its gateway: the ARN stays


def deleting(objects, kind, name):
    find(objects, kind, name)["metadata"]["deletionTimestamp"] = "2026-10-05T09:30:00Z"


def test_a_virtual_service_targeted_by_a_gateway_route_waits_and_keeps_serving(walkthrough):
    objects = settled(walkthrough)
    deleting(objects, "VirtualService", "review-service")
    d = compute(objects, NOW)
    key = ("VirtualService", "appmesh-demo", "review-service")
    assert key not in d.finalizers  # finalizer kept
    assert d.held[key] == ["GatewayRoute/appmesh-demo/review-gateway-route"]
    warn = [e for e in d.events if e.key == key]
    assert warn and warn[0].type == "Warning" and warn[0].reason == "PendingReferencesDeletion"
    assert "GatewayRoute/appmesh-demo/review-gateway-route" in warn[0].message
    routes = [r["name"] for rc in d.envoy[GATEWAY]["routes"] for vh in rc["virtual_hosts"] for r in vh["routes"]]
    assert "review-gateway-route_appmesh-demo" in routes


def test_deleting_the_route_as_well_releases_both(walkthrough):
    objects = settled(walkthrough)
    deleting(objects, "VirtualService", "review-service")
    deleting(objects, "GatewayRoute", "review-gateway-route")
    d = compute(objects, NOW)
    assert d.finalizers[("VirtualService", "appmesh-demo", "review-service")][0] == []
    assert d.finalizers[("GatewayRoute", "appmesh-demo", "review-gateway-route")][0] == []
    routes = [r["name"] for rc in d.envoy[GATEWAY]["routes"] for vh in rc["virtual_hosts"] for r in vh["routes"]]
    assert "review-gateway-route_appmesh-demo" not in routes


@pytest.mark.parametrize("kind,name,reason,user", [
    ("Mesh", "my-app-mesh", "PendingMembersDeletion", "VirtualNode/appmesh-demo/product-service-vn"),
    ("VirtualGateway", "appmesh-gateway", "PendingMembersDeletion", "GatewayRoute/appmesh-demo/product-gateway-route"),
    ("VirtualNode", "product-service-vn", "PendingReferencesDeletion", "VirtualService/appmesh-demo/product-service"),
])
def test_what_is_still_used_waits_for_its_users(walkthrough, kind, name, reason, user):
    objects = settled(walkthrough)
    deleting(objects, kind, name)
    d = compute(objects, NOW)
    key = (kind, "" if kind == "Mesh" else "appmesh-demo", name)
    assert key not in d.finalizers and user in d.held[key]
    assert any(e.key == key and e.reason == reason for e in d.events)


def test_deleting_the_whole_namespace_releases_everything_in_one_pass(walkthrough):
    objects = settled(walkthrough)
    for kind in ("VirtualNode", "VirtualService", "VirtualGateway", "GatewayRoute"):
        for o in objects[kind]:
            o["metadata"]["deletionTimestamp"] = "2026-10-05T09:30:00Z"
    d = compute(objects, NOW)
    assert d.held == {}
    released = {k for k, (f, _) in d.finalizers.items() if f == []}
    assert len(released) == 7
    assert ("Mesh", "", "my-app-mesh") not in released  # not being deleted
    assert d.envoy == {}


def test_a_virtual_router_gets_route_arns(walkthrough):
    walkthrough["VirtualRouter"] = [{
        "apiVersion": "appmesh.k8s.aws/v1beta2", "kind": "VirtualRouter",
        "metadata": {"name": "review-router", "namespace": "appmesh-demo", "uid": "u-vr", "resourceVersion": "77",
                     "generation": 3},
        "spec": {"listeners": [{"portMapping": {"port": 8080, "protocol": "http"}}],
                 "routes": [{"name": "all", "httpRoute": {"match": {"prefix": "/"}, "action": {"weightedTargets": [
                     {"virtualNodeRef": {"name": "review-service-vn"}, "weight": 1}]}}}]}}]
    st = compute(walkthrough, NOW).statuses[("VirtualRouter", "appmesh-demo", "review-router")]
    assert st["observedGeneration"] == 3
    assert st["routeARNs"] == {"all": st["virtualRouterARN"] + "/route/all"}


# ---- IP families: the Mesh's meshServiceDiscovery.ipPreference, as App Mesh reads it ----------

def _ipv6_slices(walkthrough):
    """Each IPv4 EndpointSlice again as the IPv6 one a dual-stack Service gets (fd00::<last octet>)."""
    for s in list(walkthrough["EndpointSlice"]):
        six = copy.deepcopy(s)
        six["metadata"]["name"] += "-v6"
        six["addressType"] = "IPv6"
        for ep in six["endpoints"]:
            ep["addresses"] = [f"fd00::{a.rsplit('.', 1)[1]}" for a in ep["addresses"]]
        walkthrough["EndpointSlice"].append(six)


def _addresses(listener):
    return [listener["address"]["socket_address"]["address"]] + [
        a["address"]["socket_address"]["address"] for a in listener.get("additional_addresses") or []]


def test_without_an_ip_preference_proxies_listen_and_route_on_ipv4_only(walkthrough):
    _ipv6_slices(walkthrough)
    d = compute(walkthrough, NOW)
    for nid in (PRODUCT, GATEWAY):
        assert all(_addresses(lst) == ["0.0.0.0"] for lst in d.envoy[nid]["listeners"]
                   if "socket_address" in (lst.get("address") or {}))
    assert endpoints(d.envoy[GATEWAY], "cds_egress_my-app-mesh_product-service-vn_appmesh-demo_http_8080") == \
        ["10.244.1.5:8080"]


@pytest.mark.parametrize("preference, ingress_app, product", [
    ("IPv4_ONLY", "127.0.0.1:8080", "10.244.1.5:8080"),
    ("IPv6_ONLY", "::1:8080", "fd00::5:8080"),
])
def test_with_an_ip_preference_every_listener_binds_ipv6_too_and_endpoints_follow_it(
        walkthrough, preference, ingress_app, product):
    _ipv6_slices(walkthrough)
    find(walkthrough, "Mesh", "my-app-mesh")["spec"]["meshServiceDiscovery"] = {"ipPreference": preference}
    d = compute(walkthrough, NOW)
    sidecar = d.envoy[PRODUCT]
    assert [(lst["name"], _addresses(lst)) for lst in sidecar["listeners"]] == [
        ("lds_ingress_0.0.0.0_15000", ["0.0.0.0", "::"]), ("lds_egress_0.0.0.0_15001", ["0.0.0.0", "::"])]
    assert sidecar["listeners"][0]["additional_addresses"][0]["address"]["socket_address"]["port_value"] == 15000
    gateway = [lst for lst in d.envoy[GATEWAY]["listeners"] if "socket_address" in (lst.get("address") or {})]
    assert gateway and all(_addresses(lst) == ["0.0.0.0", "::"] for lst in gateway)
    assert endpoints(sidecar, "cds_ingress_my-app-mesh_product-service-vn_appmesh-demo_http_8080") == [ingress_app]
    assert endpoints(d.envoy[GATEWAY], "cds_egress_my-app-mesh_product-service-vn_appmesh-demo_http_8080") == [product]
    Snapshot.from_dicts("1", **sidecar).consistent()
