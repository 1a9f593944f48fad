"""Inside the mesh: the VirtualNode, VirtualService, VirtualRouter (and its Route) and Mesh specs
and their webhook rules.
"""
from __future__ import annotations

from . import envoy_rules as E
from .fields import (AWS_NAME, HTTP_METHODS, PROTOCOLS, acm_not_served, connection_pool, duration, health_check,
                     label_selector, listener_consistency, logging, mesh_ref, port_mapping, ref, target_port, uint32)
from .route_matches import grpc_metadata, grpc_names, http_headers, path_match, prefix_rule, query_parameters
from .schema import Arr, Finding, Int, Obj, Str
from .tls_fields import client_policy, listener_tls

# ---- VirtualNode ---------------------------------------------------------------------


def _vn_rules(v: dict) -> list:
    out = []
    if v.get("listeners") and v.get("serviceDiscovery") is None:
        out.append(Finding("serviceDiscovery", "a virtual node with listeners needs serviceDiscovery",
                           "add serviceDiscovery: {dns: {hostname: <service>.<namespace>.svc.cluster.local}}", "required",
                           ("serviceDiscovery",)))
    backends = v.get("backends")
    if isinstance(backends, list):
        seen = {}
        for i, b in enumerate(backends):
            vs = b.get("virtualService") if isinstance(b, dict) else None
            r = vs.get("virtualServiceRef") if isinstance(vs, dict) else None
            if isinstance(r, dict) and isinstance(r.get("name"), str):
                key = (r["name"], r.get("namespace") if isinstance(r.get("namespace"), str) else None)
            elif isinstance(vs, dict) and isinstance(vs.get("virtualServiceARN"), str):
                key = vs["virtualServiceARN"]
            else:
                continue  # malformed: reported by the schema
            if key in seen:
                out.append(Finding(f"backends[{i}]", f"duplicate backend (same as backends[{seen[key]}])",
                                   "list each virtual service once"))
            seen.setdefault(key, i)
    return out


def _vn_listener_rules(v: dict) -> list:
    return listener_consistency(v) + acm_not_served(v)


def listener_timeouts() -> Obj:
    http_like = lambda: Obj(props={"perRequest": duration(), "idle": duration()})  # noqa: E731
    return Obj(description="Listener timeouts, under the listener's protocol.", props={
        "tcp": Obj(props={"idle": duration()}), "http": http_like(), "http2": http_like(), "grpc": http_like()})


VIRTUAL_NODE_SPEC = Obj(description="VirtualNodeSpec: one service's pods, with their sidecar's listeners and backends.", props={
    "awsName": Str(),
    "podSelector": label_selector("Pods (in this namespace) that belong to this node. Absent: none; {}: all."),
    "listeners": Arr(min_items=0, items=Obj(props={
        "portMapping": port_mapping(PROTOCOLS),
        "healthCheck": health_check(PROTOCOLS),
        "outlierDetection": Obj(props={
            "maxServerErrors": uint32(1), "interval": duration(positive=True),
            "baseEjectionDuration": duration(positive=True),
            "maxEjectionPercent": Int(minimum=0, maximum=100),
        }, required=("baseEjectionDuration", "interval", "maxEjectionPercent", "maxServerErrors")),
        "timeout": listener_timeouts(),
        "connectionPool": connection_pool(("tcp", "http", "http2", "grpc")),
        "tls": listener_tls(with_acm_trust=False),
    }, required=("portMapping",), rules=(_vn_listener_rules,))),
    "serviceDiscovery": Obj(props={
        "dns": Obj(props={"hostname": Str(), "responseType": Str(enum=("ENDPOINTS", "LOADBALANCER"))},
                   required=("hostname",)),
        "awsCloudMap": Obj(props={
            "namespaceName": Str(min_len=1, max_len=1024), "serviceName": Str(min_len=1, max_len=1024),
            "attributes": Arr(items=Obj(props={"key": Str(min_len=1, max_len=255), "value": Str(min_len=1, max_len=1024)},
                                        required=("key", "value"))),
        }, required=("namespaceName", "serviceName")),
    }, exactly_one=(("awsCloudMap", "dns"),)),
    "backends": Arr(items=Obj(props={"virtualService": Obj(props={
        "virtualServiceRef": ref("VirtualService"),
        "virtualServiceARN": Str(),
        "clientPolicy": client_policy(),
    }, exactly_one=(("virtualServiceARN", "virtualServiceRef"),))}, required=("virtualService",))),
    "backendGroups": Arr(items=Obj(props={"name": Str(), "namespace": Str()}, required=("name",))),
    "backendDefaults": Obj(props={"clientPolicy": client_policy()}),
    "logging": logging(),
    "meshRef": mesh_ref(),
}, rules=(_vn_rules, E.unique_listener_ports, AWS_NAME))

# ---- VirtualService ------------------------------------------------------------------

VIRTUAL_SERVICE_SPEC = Obj(description="VirtualServiceSpec: the name clients call, and who answers it.", props={
    "awsName": Str(description="The hostname clients call; defaults to <name>.<namespace>."),
    "provider": Obj(description="A virtual node or a virtual router; absent means requests get 503.", props={
        "virtualNode": Obj(props={"virtualNodeRef": ref("VirtualNode"), "virtualNodeARN": Str()},
                           exactly_one=(("virtualNodeARN", "virtualNodeRef"),)),
        "virtualRouter": Obj(props={"virtualRouterRef": ref("VirtualRouter"), "virtualRouterARN": Str()},
                             exactly_one=(("virtualRouterARN", "virtualRouterRef"),)),
    }, exactly_one=(("virtualNode", "virtualRouter"),)),
    "meshRef": mesh_ref(),
}, rules=(E.on("awsName", E.hostname, "awsName (the host name clients call)"),))

# ---- VirtualRouter -------------------------------------------------------------------


def weighted_targets() -> Obj:
    return Obj(props={"weightedTargets": Arr(min_items=1, max_items=10, items=Obj(props={
        "virtualNodeRef": ref("VirtualNode"),
        "virtualNodeARN": Str(),
        "weight": Int(minimum=0, maximum=100),
        "port": target_port(),
    }, required=("weight",), exactly_one=(("virtualNodeARN", "virtualNodeRef"),)), )},
        required=("weightedTargets",), rules=(_weights_rule,))


def _weights_rule(v: dict) -> list:
    """Weights are relative. Decision (APPMESH-FACTS §6.4 UNCLEAR): a total of 0 is an error
    (no target could ever be chosen); a total above 100 is an error as in the API model."""
    ts = v.get("weightedTargets")
    if not isinstance(ts, list):
        return []
    ws = [t.get("weight") for t in ts if isinstance(t, dict)]
    if not all(isinstance(w, int) and not isinstance(w, bool) for w in ws) or not ws:
        return []
    total = sum(ws)
    if total == 0:
        return [Finding("weightedTargets", "the weights add up to 0, so no target can receive traffic",
                        "give at least one target a weight above 0")]
    if total > 100:
        return [Finding("weightedTargets", f"the weights add up to {total}; App Mesh allows at most 100",
                        "scale them down, e.g. 90 and 10")]
    return []


def retry_policy(grpc: bool) -> Obj:
    props = {
        "maxRetries": uint32(),
        "perRetryTimeout": duration(),
        "httpRetryEvents": Arr(min_items=1, max_items=25,
                               items=Str(enum=("server-error", "gateway-error", "client-error", "stream-error"))),
        "tcpRetryEvents": Arr(min_items=1, max_items=1, items=Str(enum=("connection-error",))),
    }
    if grpc:
        props["grpcRetryEvents"] = Arr(min_items=1, max_items=5, items=Str(
            enum=("cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable")))
    events = tuple(k for k in props if k.endswith("RetryEvents"))

    def need_event(v: dict) -> list:
        if not any(v.get(k) for k in events):
            return [Finding("", "a retry policy needs at least one kind of retry event",
                            f"add one of {', '.join(events)}, e.g. httpRetryEvents: [server-error]", "required", events)]
        return []
    return Obj(props=props, required=("maxRetries", "perRetryTimeout"), rules=(need_event,))


def _route_http_match_rule(v: dict) -> list:
    out = []
    if v.get("prefix") is None and v.get("path") is None:
        out.append(Finding("", "a route match needs prefix or path", "add prefix: /", "one-of", ("prefix", "path")))
    if v.get("prefix") is not None and v.get("path") is not None:
        out.append(Finding("path", "prefix and path cannot be used together", "keep one of prefix or path", "one-of"))
    return out + prefix_rule(v)


def http_route() -> Obj:
    return Obj(props={
        "match": Obj(props={
            "prefix": Str(), "path": path_match(), "headers": http_headers(), "method": Str(enum=HTTP_METHODS),
            "scheme": Str(enum=("http", "https")), "queryParameters": query_parameters(), "port": target_port(),
        }, rules=(_route_http_match_rule,)),
        "action": weighted_targets(),
        "retryPolicy": retry_policy(grpc=False),
        "timeout": Obj(props={"perRequest": duration(), "idle": duration()}),
    }, required=("action", "match"))


def _grpc_route_match_rule(v: dict) -> list:
    if v.get("methodName") is not None and v.get("serviceName") is None:
        return [Finding("methodName", "methodName needs serviceName", "add serviceName:")]
    return grpc_names(v)


ROUTE = Obj(props={
    "name": Str(),
    "priority": Int(minimum=0, maximum=1000),
    "httpRoute": http_route(),
    "http2Route": http_route(),
    "grpcRoute": Obj(props={
        "match": Obj(props={"serviceName": Str(), "methodName": Str(min_len=1, max_len=50),
                            "metadata": grpc_metadata(), "port": target_port()}, rules=(_grpc_route_match_rule,)),
        "action": weighted_targets(),
        "retryPolicy": retry_policy(grpc=True),
        "timeout": Obj(props={"perRequest": duration(), "idle": duration()}),
    }, required=("action", "match")),
    "tcpRoute": Obj(props={
        "match": Obj(props={"port": target_port()}),
        "action": weighted_targets(),
        "timeout": Obj(props={"idle": duration()}),
    }, required=("action",)),
}, required=("name",), exactly_one=(("grpcRoute", "http2Route", "httpRoute", "tcpRoute"),))

VIRTUAL_ROUTER_SPEC = Obj(description="VirtualRouterSpec: routes that split a virtual service's traffic across nodes.", props={
    "awsName": Str(),
    "listeners": Arr(min_items=1, items=Obj(props={"portMapping": port_mapping(PROTOCOLS)}, required=("portMapping",))),
    "routes": Arr(items=ROUTE, unique_by="name"),
    "meshRef": mesh_ref(),
}, required=("listeners",), rules=(AWS_NAME,))

# ---- Mesh ----------------------------------------------------------------------------

MESH_SPEC = Obj(description="MeshSpec: the boundary of a service mesh.", props={
    "awsName": Str(),
    "namespaceSelector": label_selector("Namespaces that belong to this mesh. Absent: none; {}: all."),
    "egressFilter": Obj(props={"type": Str(enum=("ALLOW_ALL", "DROP_ALL"))}, required=("type",)),
    "meshServiceDiscovery": Obj(props={"ipPreference": Str(enum=("IPv6_ONLY", "IPv4_ONLY"))}),
    "meshOwner": Str(description="Account id of the mesh owner (shared meshes)."),
}, rules=(lambda v: [] if v.get("namespaceSelector") is not None else [Finding(
    "namespaceSelector", "no namespaceSelector: an absent selector selects no namespace, so nothing can join this mesh",
    "add namespaceSelector: {matchLabels: {mesh: <mesh name>}} and label your namespaces to match", "selector")],
    AWS_NAME))
