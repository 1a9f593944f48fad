"""Kubernetes Gateway API kinds as the lab applies them: GatewayClass, Gateway, HTTPRoute, GRPCRoute,
ReferenceGrant (standard channel, v1.6.1; ReferenceGrant is served as v1beta1 and v1).

The shapes, enums, lengths, item counts and the CEL rules (x-kubernetes-validations) follow the
upstream CRDs (kubernetes-sigs/gateway-api, config/crd/standard, apis/v1/*_types.go), written in
the kit's schema language so each finding has a field path and a hint. tests/model/
test_gatewayapi_schema.py checks the two agree: every document the lab accepts is valid against
the upstream CRDs, and documents they reject are rejected here too. Experimental-channel fields
are unknown fields here, as a standard-channel API server with strict field validation has it.
"""
from __future__ import annotations

import re

from .schema import Arr, Finding, Int, LabelMap, Obj, Str, StrMap

GROUP = "gateway.networking.k8s.io"
V1 = f"{GROUP}/v1"
V1BETA1 = f"{GROUP}/v1beta1"
KINDS = ("GatewayClass", "Gateway", "HTTPRoute", "GRPCRoute", "ReferenceGrant")
ROUTE_KINDS = ("HTTPRoute", "GRPCRoute")

# The lab's own controller: a GatewayClass with this controllerName makes the lab serve its Gateways.
CONTROLLER_NAME = "lab.appmesh.dev/gateway-controller"
LAB_CLASS = "appmesh-lab"

_HOST = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_CONTROLLER = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9\/\-._~%!$&'()*+,;=:]+$")
_GROUP = re.compile(r"^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_KIND = re.compile(r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")
_PROTOCOL = re.compile(r"^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$|[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9]+$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_\x60|~]+$")
_DURATION = re.compile(r"^([0-9]{1,5}(h|m|s|ms)){1,4}$")
_PATH_CHARS = re.compile(r"^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$")
_GRPC_SERVICE = re.compile(r"^\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$", re.I)
_GRPC_METHOD = re.compile(r"^[A-Za-z_][A-Za-z_0-9]*$")
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")


def _pattern(key: str, regex: re.Pattern, what: str, example: str):
    def rule(v: dict) -> list:
        x = v.get(key)
        if isinstance(x, str) and not regex.search(x):
            return [Finding(key, f"{x[:60]!r} is not a valid {what}", f"write e.g. {example}", "pattern")]
        return []
    return rule


def _obj(props: dict, required=(), rules=(), **kw) -> Obj:
    return Obj(props=props, required=required, rules=tuple(rules), **kw)


def _name(max_len: int = 253) -> Str:
    return Str(min_len=1, max_len=max_len)


# ---- references ---------------------------------------------------------------------------

def _ref_rules():
    return (_pattern("group", _GROUP, "API group", "gateway.networking.k8s.io (or '' for core)"),
            _pattern("kind", _KIND, "kind", "Service"),
            _pattern("namespace", re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"), "namespace name", "default"))


def parent_ref() -> Obj:
    return _obj({"group": Str(max_len=253), "kind": Str(min_len=1, max_len=63), "namespace": Str(min_len=1, max_len=63),
                 "name": _name(), "sectionName": _name(), "port": Int(minimum=1, maximum=65535)},
                required=("name",), rules=_ref_rules() + (
                    _pattern("sectionName", _SUBDOMAIN, "section name", "http (a listener's name)"),))


def _same_parent(a: dict, b: dict) -> bool:
    return all((a.get(k) or "") == (b.get(k) or "") for k in ("group", "kind", "name", "namespace"))


def _parent_refs_rule(v: dict) -> list:
    """CEL on parentRefs: two refs to one parent must each name a sectionName (or each a port),
    and no two refs may name the same parent and section."""
    refs = [r for r in v.get("parentRefs") or [] if isinstance(r, dict)]
    out = []
    for i, a in enumerate(refs):
        for j, b in enumerate(refs):
            if j <= i or not _same_parent(a, b):
                continue
            if not (a.get("sectionName") and b.get("sectionName")) and not (a.get("port") and b.get("port")):
                out.append(Finding(f"parentRefs[{j}]", f"parentRefs[{i}] and [{j}] name the same parent: "
                                   "sectionName must be specified when parentRefs includes 2 or more references to "
                                   "the same parent", "give each a sectionName (the listener's name), or keep one"))
            elif (a.get("sectionName") or "") == (b.get("sectionName") or "") and a.get("port") == b.get("port"):
                out.append(Finding(f"parentRefs[{j}]", f"parentRefs[{i}] and [{j}] are the same reference: "
                                   "sectionName must be unique when parentRefs includes 2 or more references to the "
                                   "same parent", "remove the copy"))
    return out


def _service_port(v: dict) -> list:
    if (v.get("group") or "") == "" and v.get("kind", "Service") == "Service" and "port" not in v:
        return [Finding("port", "Must have port for Service reference", "add port: (the Service's port, e.g. 8080)",
                        "required", about=("port",))]
    return []


# ---- GatewayClass ---------------------------------------------------------------------------

GATEWAY_CLASS_SPEC = _obj({
    "controllerName": Str(min_len=1, max_len=253, description="The controller that serves this class's Gateways; "
                          f"the lab's is {CONTROLLER_NAME}."),
    "parametersRef": _obj({"group": Str(max_len=253), "kind": Str(min_len=1, max_len=63), "name": _name(),
                           "namespace": Str(min_len=1, max_len=63)}, required=("group", "kind", "name")),
    "description": Str(max_len=64),
}, required=("controllerName",), rules=(
    _pattern("controllerName", _CONTROLLER, "controllerName (a domain-prefixed path)", CONTROLLER_NAME),))


# ---- Gateway --------------------------------------------------------------------------------

def _listener_tls(v: dict) -> list:
    out = []
    mode = v.get("mode", "Terminate")
    if mode == "Terminate" and not v.get("certificateRefs") and not v.get("options"):
        out.append(Finding("certificateRefs", "certificateRefs or options must be specified when mode is Terminate",
                           "add certificateRefs: [{name: <Secret with tls.crt and tls.key>}]", "required"))
    return out


LISTENER = _obj({
    "name": _name(),
    "hostname": _name(),
    "port": Int(minimum=1, maximum=65535),
    "protocol": Str(min_len=1, max_len=255),
    "tls": _obj({"mode": Str(enum=("Terminate", "Passthrough")),
                 "certificateRefs": Arr(max_items=64, items=_obj({
                     "group": Str(max_len=253), "kind": Str(min_len=1, max_len=63), "name": _name(),
                     "namespace": Str(min_len=1, max_len=63)}, required=("name",), rules=_ref_rules())),
                 "options": StrMap()}, rules=(_listener_tls,)),
    "allowedRoutes": _obj({
        "namespaces": _obj({"from": Str(enum=("All", "Selector", "Same")),
                            "selector": Obj(open=True, props={"matchLabels": LabelMap()})}),
        "kinds": Arr(max_items=8, items=_obj({"group": Str(max_len=253), "kind": Str(min_len=1, max_len=63)},
                                             required=("kind",))),
    }),
}, required=("name", "port", "protocol"), rules=(
    _pattern("name", _SUBDOMAIN, "listener name", "http"),
    _pattern("hostname", _HOST, "hostname", "shop.example.com or *.example.com"),
    _pattern("protocol", _PROTOCOL, "protocol", "HTTP"),
))


def _listeners_rule(v: dict) -> list:
    lsts = [x for x in v.get("listeners") or [] if isinstance(x, dict)]
    out = []
    for i, lst in enumerate(lsts):
        proto = lst.get("protocol")
        if proto in ("HTTP", "TCP", "UDP") and "tls" in lst:
            out.append(Finding(f"listeners[{i}].tls", f"tls must not be specified for protocols ['HTTP', 'TCP', 'UDP'] "
                               f"(this listener is {proto})", "remove tls, or use protocol: HTTPS"))
        if proto == "HTTPS" and (lst.get("tls") or {}).get("mode", "Terminate") != "Terminate":
            out.append(Finding(f"listeners[{i}].tls.mode", "tls mode must be Terminate for protocol HTTPS",
                               "write mode: Terminate (Passthrough is for protocol TLS)"))
        if proto == "TLS" and not (lst.get("tls") or {}).get("mode"):
            out.append(Finding(f"listeners[{i}].tls", "tls mode must be set for protocol TLS",
                               "add tls: {mode: Passthrough}", "required"))
        if proto in ("TCP", "UDP") and lst.get("hostname"):
            out.append(Finding(f"listeners[{i}].hostname", "hostname must not be specified for protocols ['TCP', 'UDP']",
                               "remove hostname"))
        for j in range(i):
            other = lsts[j]
            if other.get("name") == lst.get("name"):
                out.append(Finding(f"listeners[{i}].name", f"Listener name must be unique within the Gateway "
                                   f"({lst.get('name')!r} is also listeners[{j}])", "give each listener its own name"))
            elif (other.get("port"), other.get("protocol"), other.get("hostname")) == (
                    lst.get("port"), lst.get("protocol"), lst.get("hostname")):
                out.append(Finding(f"listeners[{i}]", f"Combination of port, protocol and hostname must be unique for "
                                   f"each listener (listeners[{j}] has the same)",
                                   "give one of them another hostname or port, or merge them"))
    return out


def _ca_ref() -> Obj:
    return _obj({"group": Str(max_len=253), "kind": Str(min_len=1, max_len=63), "name": _name(),
                 "namespace": Str(min_len=1, max_len=63)}, required=("group", "kind", "name"), rules=_ref_rules())


def _frontend_validation() -> Obj:
    return _obj({"caCertificateRefs": Arr(min_items=1, max_items=16, items=_ca_ref()),
                 "mode": Str(enum=("AllowValidOnly", "AllowInsecureFallback"))}, required=("caCertificateRefs",))


def _per_port_rule(v: dict) -> list:
    """CEL on frontend.perPort: Port for TLS configuration must be unique within the Gateway."""
    ports = [p.get("port") for p in v.get("perPort") or [] if isinstance(p, dict)]
    dup = sorted({p for p in ports if ports.count(p) > 1}, key=str)
    return [Finding("perPort", f"Port for TLS configuration must be unique within the Gateway (port {dup[0]} "
                    "is given twice)", "keep one entry per port", "unique")] if dup else []


# spec.tls (standard channel since v1.5): frontend = client certificate validation (GEP-91); the
# backend client certificate (spec.tls.backend) is not served by the lab, so it stays an unknown field
GATEWAY_TLS = _obj({"frontend": _obj({
    "default": _obj({"validation": _frontend_validation()}),
    "perPort": Arr(max_items=64, items=_obj({"port": Int(minimum=1, maximum=65535),
                                             "tls": _obj({"validation": _frontend_validation()})},
                                            required=("port", "tls"))),
}, required=("default",), rules=(_per_port_rule,))})


GATEWAY_SPEC = _obj({
    "tls": GATEWAY_TLS,
    "gatewayClassName": _name(),
    "listeners": Arr(min_items=1, max_items=64, items=LISTENER),
    "addresses": Arr(max_items=16, items=_obj({"type": Str(min_len=1, max_len=253), "value": Str(max_len=253)})),
    "infrastructure": _obj({"labels": LabelMap(), "annotations": StrMap(),
                            "parametersRef": _obj({"group": Str(max_len=253), "kind": Str(min_len=1, max_len=63),
                                                   "name": _name()}, required=("group", "kind", "name"))}),
}, required=("gatewayClassName", "listeners"), rules=(_listeners_rule,))


# ---- routes -----------------------------------------------------------------------------------

def _path_rule(v: dict) -> list:
    t, value = v.get("type", "PathPrefix"), v.get("value", "/")
    if t not in ("Exact", "PathPrefix") or not isinstance(value, str):
        return []
    bad = None
    if not value.startswith("/"):
        bad = "value must be an absolute path and start with '/'"
    else:
        for s in ("//", "/./", "/../", "%2f", "%2F", "#"):
            if s in value:
                bad = f"must not contain {s!r}"
        if value.endswith("/..") or value.endswith("/."):
            bad = "must not end with '/..' or '/.'"
        elif not _PATH_CHARS.match(value):
            bad = "must only contain valid characters (matching ^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$)"
    return [Finding("value", f"path {value[:60]!r}: {bad}", "write a path such as /products")] if bad else []


def _header_match(types=("Exact", "RegularExpression")) -> Obj:
    return _obj({"type": Str(enum=types), "name": Str(min_len=1, max_len=256), "value": Str(min_len=1, max_len=4096)},
                required=("name", "value"), rules=(_pattern("name", _HEADER_NAME, "header name", "x-canary"),))


HTTP_MATCH = _obj({
    "path": _obj({"type": Str(enum=("Exact", "PathPrefix", "RegularExpression")), "value": Str(max_len=1024)},
                 rules=(_path_rule,)),
    "headers": Arr(max_items=16, items=_header_match(), unique_by="name"),
    "queryParams": Arr(max_items=16, items=_obj({"type": Str(enum=("Exact", "RegularExpression")),
                                                 "name": Str(min_len=1, max_len=256),
                                                 "value": Str(min_len=1, max_len=1024)}, required=("name", "value")),
                       unique_by="name"),
    "method": Str(enum=HTTP_METHODS),
})

_HEADER_MODIFIER = _obj({
    "set": Arr(max_items=16, items=_obj({"name": Str(min_len=1, max_len=256), "value": Str(min_len=1, max_len=4096)},
                                        required=("name", "value")), unique_by="name"),
    "add": Arr(max_items=16, items=_obj({"name": Str(min_len=1, max_len=256), "value": Str(min_len=1, max_len=4096)},
                                        required=("name", "value")), unique_by="name"),
    "remove": Arr(max_items=16, items=Str(min_len=1, max_len=256)),
})


def _path_modifier_rule(v: dict) -> list:
    t = v.get("type")
    out = []
    for key, typ in (("replaceFullPath", "ReplaceFullPath"), ("replacePrefixMatch", "ReplacePrefixMatch")):
        if t == typ and key not in v:
            out.append(Finding(key, f"{key} must be specified when type is set to '{typ}'", f"add {key}: /new",
                               "required"))
        if key in v and t != typ:
            out.append(Finding("type", f"type must be '{typ}' when {key} is set", f"write type: {typ}"))
    return out


_PATH_MODIFIER = _obj({"type": Str(enum=("ReplaceFullPath", "ReplacePrefixMatch")),
                       "replaceFullPath": Str(max_len=1024), "replacePrefixMatch": Str(max_len=1024)},
                      required=("type",), rules=(_path_modifier_rule,))

FILTER_TYPES = ("RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror", "RequestRedirect", "URLRewrite",
                "ExtensionRef", "CORS")
_FILTER_FIELDS = {"requestHeaderModifier": "RequestHeaderModifier", "responseHeaderModifier": "ResponseHeaderModifier",
                  "requestMirror": "RequestMirror", "requestRedirect": "RequestRedirect", "urlRewrite": "URLRewrite",
                  "extensionRef": "ExtensionRef", "cors": "CORS"}


def _filter_rule(v: dict) -> list:
    out = []
    t = v.get("type")
    for key, typ in _FILTER_FIELDS.items():
        if key in v and t != typ:
            out.append(Finding(key, f"filter.{key} must be nil if the filter.type is not {typ}",
                               f"write type: {typ}, or remove {key}"))
        if key not in v and t == typ:
            out.append(Finding(key, f"filter.{key} must be specified for {typ} filter.type", f"add {key}:", "required"))
    return out


def http_filter(types=FILTER_TYPES) -> Obj:
    return _obj({
        "type": Str(enum=types),
        "requestHeaderModifier": _HEADER_MODIFIER, "responseHeaderModifier": _HEADER_MODIFIER,
        "requestMirror": Obj(open=True, props={"backendRef": _obj({
            "group": Str(max_len=253), "kind": Str(min_len=1, max_len=63), "name": _name(),
            "namespace": Str(min_len=1, max_len=63), "port": Int(minimum=1, maximum=65535)}, required=("name",),
            rules=_ref_rules() + (_service_port,))}, required=("backendRef",)),
        "requestRedirect": _obj({"scheme": Str(enum=("http", "https")), "hostname": _name(), "path": _PATH_MODIFIER,
                                 "port": Int(minimum=1, maximum=65535), "statusCode": Int(minimum=301, maximum=308)},
                                rules=(lambda v: [Finding("statusCode", "statusCode must be 301 or 302",
                                                          "write statusCode: 302")]
                                       if v.get("statusCode") not in (None, 301, 302) else [],)),
        "urlRewrite": _obj({"hostname": _name(), "path": _PATH_MODIFIER},
                           rules=(_pattern("hostname", re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]"
                                                                  r"([-a-z0-9]*[a-z0-9])?)*$"),
                                           "hostname (a precise name, no wildcard)", "reviews.default.svc.cluster.local"),)),
        "extensionRef": _obj({"group": Str(max_len=253), "kind": Str(min_len=1, max_len=63), "name": _name()},
                             required=("group", "kind", "name")),
        "cors": Obj(open=True, props={}),
    }, required=("type",), rules=(_filter_rule,))


def _filters_rule(v: dict) -> list:
    filters = [f for f in v.get("filters") or [] if isinstance(f, dict)]
    out = []
    for typ in ("RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect", "URLRewrite", "CORS"):
        if sum(1 for f in filters if f.get("type") == typ) > 1:
            out.append(Finding("filters", f"{typ} filter cannot be repeated", f"merge the {typ} filters into one"))
    if any(f.get("type") == "RequestRedirect" for f in filters) and any(f.get("type") == "URLRewrite" for f in filters):
        out.append(Finding("filters", "May specify either httpRouteFilterRequestRedirect or "
                           "httpRouteFilterRequestRewrite, but not both", "keep one of the two filters"))
    return out


def backend_ref(filters: bool = True) -> Obj:
    props = {"group": Str(max_len=253), "kind": Str(min_len=1, max_len=63), "name": _name(),
             "namespace": Str(min_len=1, max_len=63), "port": Int(minimum=1, maximum=65535),
             "weight": Int(minimum=0, maximum=1_000_000)}
    if filters:
        props["filters"] = Arr(max_items=16, items=http_filter())
    return _obj(props, required=("name",), rules=_ref_rules() + (_service_port,) + ((_filters_rule,) if filters else ()))


def _dur_s(s: str) -> float:
    return sum(int(n) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[u] for n, u in re.findall(r"([0-9]+)(h|ms|m|s)", s))


def _timeouts_rule(v: dict) -> list:
    out = []
    for k in ("request", "backendRequest"):
        if isinstance(v.get(k), str) and not _DURATION.match(v[k]):
            out.append(Finding(k, f"{v[k]!r} is not a Gateway API duration", "write e.g. 10s, 500ms or 1m30s", "pattern"))
    if not out and isinstance(v.get("request"), str) and isinstance(v.get("backendRequest"), str) and \
            _dur_s(v["request"]) != 0 and _dur_s(v["backendRequest"]) > _dur_s(v["request"]):
        out.append(Finding("backendRequest", "backendRequest timeout cannot be longer than request timeout",
                           "make backendRequest at most the request timeout"))
    return out


def _prefix_rewrite_rule(v: dict) -> list:
    """ReplacePrefixMatch needs exactly one match, a PathPrefix one (CEL on the rule)."""
    uses = any(((f.get(k) or {}).get("path") or {}).get("type") == "ReplacePrefixMatch"
               for f in v.get("filters") or [] if isinstance(f, dict) for k in ("urlRewrite", "requestRedirect"))
    if not uses:
        return []
    m = [x for x in v.get("matches") or [] if isinstance(x, dict)]
    if len(m) == 1 and ((m[0].get("path") or {}).get("type") or "PathPrefix") == "PathPrefix":
        return []
    return [Finding("matches", "When using URLRewrite filter with path.replacePrefixMatch, exactly one PathPrefix match "
                    "must be specified", "split the rule: one rule per PathPrefix match")]


def _redirect_backends_rule(v: dict) -> list:
    if v.get("backendRefs") and any("requestRedirect" in f for f in v.get("filters") or [] if isinstance(f, dict)):
        return [Finding("filters", "RequestRedirect filter must not be used together with backendRefs",
                        "remove backendRefs (a redirect answers without a backend) or the redirect")]
    return []


HTTP_RULE = _obj({
    "name": _name(),
    "matches": Arr(max_items=64, items=HTTP_MATCH),
    "filters": Arr(max_items=16, items=http_filter()),
    "backendRefs": Arr(max_items=16, items=backend_ref()),
    "timeouts": _obj({"request": Str(), "backendRequest": Str()}, rules=(_timeouts_rule,)),
}, rules=(_filters_rule, _prefix_rewrite_rule, _redirect_backends_rule,
          _pattern("name", _SUBDOMAIN, "rule name", "canary")))


def _route_common(rule: Obj, match_total: int) -> dict:
    def total(v: dict) -> list:
        n = sum(len(r.get("matches") or []) for r in v.get("rules") or [] if isinstance(r, dict))
        return [Finding("rules", f"the rules have {n} matches in all; While 16 rules and 64 matches per rule are "
                        f"allowed, the total number of matches across all rules in a route must be less than "
                        f"{match_total + 1}", "split the route in two")] if n > match_total else []
    hostnames = Arr(max_items=16, items=Str(min_len=1, max_len=253))
    return dict(props={"parentRefs": Arr(max_items=32, items=parent_ref()), "hostnames": hostnames,
                       "rules": Arr(max_items=16, items=rule)},
                rules=(_parent_refs_rule, total, _hostnames_rule))


def _hostnames_rule(v: dict) -> list:
    return [Finding(f"hostnames[{i}]", f"{h[:60]!r} is not a valid hostname",
                    "write e.g. shop.example.com or *.example.com (no port, no IP address)", "pattern")
            for i, h in enumerate(v.get("hostnames") or []) if isinstance(h, str) and not _HOST.match(h)]


HTTP_ROUTE_SPEC = _obj(**_route_common(HTTP_RULE, 128))


def _grpc_method_rule(v: dict) -> list:
    t = v.get("type", "Exact")
    if "service" not in v and "method" not in v:
        return [Finding("", "One or both of 'service' or 'method' must be specified",
                        "add service: (e.g. grpc.health.v1.Health) and/or method: (e.g. Check)", "required")]
    out = []
    if t == "Exact":
        if isinstance(v.get("service"), str) and not _GRPC_SERVICE.match(v["service"]):
            out.append(Finding("service", "service must only contain valid characters (matching "
                               "^(?i)\\.?[a-z_][a-z_0-9]*(\\.[a-z_][a-z_0-9]*)*$)", "write e.g. shop.v1.Catalog"))
        if isinstance(v.get("method"), str) and not _GRPC_METHOD.match(v["method"]):
            out.append(Finding("method", "method must only contain valid characters (matching "
                               "^[A-Za-z_][A-Za-z_0-9]*$)", "write e.g. GetItem"))
    return out


GRPC_MATCH = _obj({
    "method": _obj({"type": Str(enum=("Exact", "RegularExpression")), "service": Str(max_len=1024),
                    "method": Str(max_len=1024)}, rules=(_grpc_method_rule,)),
    "headers": Arr(max_items=16, items=_header_match(), unique_by="name"),
})
GRPC_FILTERS = ("ResponseHeaderModifier", "RequestHeaderModifier", "RequestMirror", "ExtensionRef")
GRPC_RULE = _obj({
    "name": _name(),
    "matches": Arr(max_items=64, items=GRPC_MATCH),
    "filters": Arr(max_items=16, items=http_filter(GRPC_FILTERS)),
    "backendRefs": Arr(max_items=16, items=backend_ref()),
}, rules=(_filters_rule, _pattern("name", _SUBDOMAIN, "rule name", "catalog")))
GRPC_ROUTE_SPEC = _obj(**_route_common(GRPC_RULE, 128))


# ---- ReferenceGrant ---------------------------------------------------------------------------

REFERENCE_GRANT_SPEC = _obj({
    "from": Arr(min_items=1, max_items=16, items=_obj({
        "group": Str(max_len=253), "kind": Str(min_len=1, max_len=63), "namespace": Str(min_len=1, max_len=63)},
        required=("group", "kind", "namespace"), rules=_ref_rules())),
    "to": Arr(min_items=1, max_items=16, items=_obj({
        "group": Str(max_len=253), "kind": Str(min_len=1, max_len=63), "name": _name()},
        required=("group", "kind"), rules=_ref_rules())),
}, required=("from", "to"))


K8S_KINDS = {
    (V1, "GatewayClass"): dict(spec=GATEWAY_CLASS_SPEC, namespaced=False, spec_required=True),
    (V1BETA1, "GatewayClass"): dict(spec=GATEWAY_CLASS_SPEC, namespaced=False, spec_required=True),
    (V1, "Gateway"): dict(spec=GATEWAY_SPEC, namespaced=True, spec_required=True),
    (V1BETA1, "Gateway"): dict(spec=GATEWAY_SPEC, namespaced=True, spec_required=True),
    (V1, "HTTPRoute"): dict(spec=HTTP_ROUTE_SPEC, namespaced=True, spec_required=True),
    (V1BETA1, "HTTPRoute"): dict(spec=HTTP_ROUTE_SPEC, namespaced=True, spec_required=True),
    (V1, "GRPCRoute"): dict(spec=GRPC_ROUTE_SPEC, namespaced=True, spec_required=True),
    (V1, "ReferenceGrant"): dict(spec=REFERENCE_GRANT_SPEC, namespaced=True, spec_required=True),
    (V1BETA1, "ReferenceGrant"): dict(spec=REFERENCE_GRANT_SPEC, namespaced=True, spec_required=True),
}
