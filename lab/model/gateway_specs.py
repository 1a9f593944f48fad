"""The edge of the mesh: the GatewayRoute and VirtualGateway specs and their webhook rules.
"""
from __future__ import annotations

from . import envoy_rules as E
from .fields import (AWS_NAME, ENABLED_DISABLED, GATEWAY_PROTOCOLS, HTTP_METHODS, acm_not_served, connection_pool,
                     gateway_ref, health_check, label_selector, listener_consistency, logging, mesh_ref, port_mapping,
                     ref, target_port)
from .route_matches import (grpc_metadata, grpc_names, hostname_match, http_headers, path_match, prefix_rule,
                            query_parameters)
from .schema import Arr, Finding, Int, Obj, Str
from .tls_fields import client_policy, listener_tls

# ---- GatewayRoute --------------------------------------------------------------------

def _gr_http_match_rule(v: dict) -> list:
    """webhook: prefix, path or hostname; prefix and path exclusive."""
    present = [k for k in ("prefix", "path", "hostname") if v.get(k) is not None]
    out = []
    if not present:
        out.append(Finding("", "a gateway route match needs prefix, path or hostname",
                           "add prefix: /your-path (or path.exact / hostname.exact)", "one-of",
                           ("prefix", "path", "hostname")))
    if v.get("prefix") is not None and v.get("path") is not None:
        out.append(Finding("path", "prefix and path cannot be used together", "keep one of prefix or path", "one-of"))
    return out + prefix_rule(v)


def http_gateway_route() -> Obj:
    return Obj(description="An HTTP (or HTTP/2) gateway route: match and action.", props={
        "match": Obj(description="HTTPGatewayRouteMatch: what the request must look like.", props={
            "prefix": Str(description="Path prefix; starts with '/'. Plain string prefix: /chapter matches /chapter1."),
            "path": path_match(),
            "queryParameters": query_parameters(),
            "method": Str(enum=HTTP_METHODS),
            "hostname": hostname_match(),
            "headers": http_headers(),
            "port": target_port(),
        }, rules=(_gr_http_match_rule,)),
        "action": Obj(description="HTTPGatewayRouteAction: where the request goes.", props={
            "target": gateway_route_target(),
            "rewrite": Obj(description="HTTPGatewayRouteRewrite.", props={
                "prefix": Obj(props={"defaultPrefix": Str(enum=ENABLED_DISABLED), "value": Str(min_len=1, max_len=255)},
                              at_most_one=(("defaultPrefix", "value"),), rules=(_rewrite_prefix_value,)),
                "path": Obj(props={"exact": Str(min_len=1, max_len=255)}, required=("exact",),
                            rules=(E.on("exact", E.no_control, "path rewrite", "remove the control characters"),)),
                "hostname": hostname_rewrite(),
            }, at_most_one=(("prefix", "path"),), rules=(_rewrite_nonempty,)),
        }, required=("target",)),
    }, required=("action", "match"), rules=(_gr_rewrite_vs_match,))


def _rewrite_nonempty(v: dict) -> list:
    if not any(v.get(k) is not None for k in ("prefix", "path", "hostname")):
        return [Finding("", "a rewrite needs prefix, path or hostname", "add one, or remove rewrite", "one-of",
                        ("prefix", "path", "hostname"))]
    return []


def _rewrite_prefix_value(v: dict) -> list:
    val = v.get("value")
    if isinstance(val, str) and not (val.startswith("/") and val.endswith("/")):
        return [Finding("value", f"prefix rewrite value {val!r} must start and end with '/'",
                        f"write /{val.strip('/')}/" if val.strip("/") else "write /")]
    return E.on("value", E.no_control, "prefix rewrite", "remove the control characters")(v)


def _gr_rewrite_vs_match(v: dict) -> list:
    """Decision (APPMESH-FACTS §2.3 leaves the API's behaviour unclear): a prefix rewrite needs a
    prefix match, and a path rewrite needs a path match; the lab rejects the other pairings
    because the rewrite could never apply. A prefix rewrite value needs a match prefix that
    ends with '/' (CDK's validation, and the App Mesh examples' explanation)."""
    match = v.get("match") if isinstance(v.get("match"), dict) else {}
    action = v.get("action") if isinstance(v.get("action"), dict) else {}
    rw = action.get("rewrite") if isinstance(action.get("rewrite"), dict) else {}
    out = []
    if isinstance(rw.get("prefix"), dict):
        if match.get("prefix") is None:
            out.append(Finding("action.rewrite.prefix", "a prefix rewrite only applies to a prefix match",
                               "match with prefix:, or rewrite the path with rewrite.path.exact"))
        elif isinstance(rw["prefix"].get("value"), str) and isinstance(match.get("prefix"), str) \
                and not match["prefix"].endswith("/"):
            out.append(Finding("match.prefix", "with a prefix rewrite value, the match prefix must end with '/' "
                               "(it marks where the prefix ends)", f"write prefix: {match['prefix']}/"))
    if isinstance(rw.get("path"), dict) and match.get("path") is None:
        out.append(Finding("action.rewrite.path", "a path rewrite only applies to a path match (path.exact or path.regex)",
                           "match with path:, or rewrite a prefix match with rewrite.prefix.value"))
    return out


def hostname_rewrite() -> Obj:
    return Obj(description="GatewayRouteHostnameRewrite: ENABLED (default) sets Host to the target virtual service's name.",
               props={"defaultTargetHostname": Str(enum=ENABLED_DISABLED)})


def gateway_route_target() -> Obj:
    return Obj(description="GatewayRouteTarget: the one virtual service this route sends to.", props={
        "virtualService": Obj(props={
            "virtualServiceRef": ref("VirtualService"),
            "virtualServiceARN": Str(),
        }, exactly_one=(("virtualServiceARN", "virtualServiceRef"),)),
        "port": target_port(),
    }, required=("virtualService",))



def _grpc_gr_match_rule(v: dict) -> list:
    out = []
    if v.get("serviceName") is None and v.get("hostname") is None:
        out.append(Finding("", "a gRPC gateway route match needs serviceName or hostname",
                           "add serviceName: your.package.Service", "one-of", ("serviceName", "hostname")))
    sn = v.get("serviceName")
    if isinstance(sn, str) and sn.lower().startswith(("aws.app-mesh", "aws.appmesh")):
        out.append(Finding("serviceName", f"service name {sn!r} is reserved by App Mesh", "choose another name"))
    return out + grpc_names(v)


def grpc_gateway_route() -> Obj:
    return Obj(description="GRPCGatewayRoute: match on the gRPC service, hostname and metadata.", props={
        "match": Obj(props={
            "serviceName": Str(description="The gRPC service name, e.g. helloworld.Greeter."),
            "hostname": hostname_match(),
            "metadata": grpc_metadata(),
            "port": target_port(),
        }, rules=(_grpc_gr_match_rule,)),
        "action": Obj(props={
            "target": gateway_route_target(),
            "rewrite": Obj(description="GRPCGatewayRouteRewrite: only the hostname can be rewritten.",
                           props={"hostname": hostname_rewrite()}, required=("hostname",)),
        }, required=("target",)),
    }, required=("action", "match"))


GATEWAY_ROUTE_SPEC = Obj(description="GatewayRouteSpec: how a virtual gateway routes one kind of request.", props={
    "awsName": Str(description="Name in the App Mesh API; defaults to <name>_<namespace>."),
    "priority": Int(minimum=0, maximum=1000, description="0–1000; lower is evaluated first (0 is the highest)."),
    "httpRoute": http_gateway_route(),
    "http2Route": http_gateway_route(),
    "grpcRoute": grpc_gateway_route(),
    "meshRef": mesh_ref(),
    "virtualGatewayRef": gateway_ref(),
}, exactly_one=(("grpcRoute", "http2Route", "httpRoute"),), rules=(AWS_NAME,))

# ---- VirtualGateway ------------------------------------------------------------------


def _vg_selectors(v: dict) -> list:
    out = []
    if v.get("namespaceSelector") is None:
        out.append(Finding("namespaceSelector", "no namespaceSelector: an absent selector selects no namespace, so no "
                           "GatewayRoute can ever attach to this gateway",
                           "add namespaceSelector: {matchLabels: {gateway: <name>}} (or {} for every namespace)",
                           "selector"))
    if v.get("podSelector") is None:
        out.append(Finding("podSelector", "no podSelector: an absent selector selects no pod, so no pod becomes this "
                           "gateway's Envoy", "add podSelector: {matchLabels: {app: <gateway deployment label>}}",
                           "selector"))
    return out


def _vg_listener_rules(v: dict) -> list:
    return listener_consistency(v) + acm_not_served(v)


VIRTUAL_GATEWAY_SPEC = Obj(description="VirtualGatewaySpec: an Envoy at the edge of the mesh.", props={
    "awsName": Str(),
    "namespaceSelector": label_selector("Namespaces whose GatewayRoutes may attach. Absent: none; {}: all."),
    "podSelector": label_selector("Pods (in this namespace) that run as this gateway. Absent: none; {}: all."),
    "gatewayRouteSelector": label_selector("GatewayRoutes (by label) that may attach. Absent or {}: all."),
    "listeners": Arr(min_items=0, items=Obj(props={
        "portMapping": port_mapping(GATEWAY_PROTOCOLS),
        "healthCheck": health_check(GATEWAY_PROTOCOLS),
        "connectionPool": connection_pool(("http", "http2", "grpc")),
        # the upstream controller's CRD takes an acm trust here, though App Mesh's API had none
        # (VirtualGatewayListenerTlsValidationContextTrust: file | sds): refused by the rule on it
        "tls": listener_tls(with_acm_trust=True),
    }, required=("portMapping",), rules=(_vg_listener_rules,))),
    "logging": logging(),
    "backendDefaults": Obj(props={"clientPolicy": client_policy()}),
    "meshRef": mesh_ref(),
}, rules=(_vg_selectors, E.unique_listener_ports, AWS_NAME))
