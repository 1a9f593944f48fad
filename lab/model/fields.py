"""Field shapes every App Mesh kind is built from: ports, durations, selectors, references to
other resources, and a listener's parts (health check, port mapping, connection pool, logging)
with the webhook rules that tie them to the listener's protocol.

Constraints are marked as in kinds.py: CRD (kubebuilder markers), webhook (the controller's
validating webhook), API (the App Mesh API model).
"""
from __future__ import annotations

from . import envoy_rules as E
from . import limits
from .schema import Arr, Finding, Int, LabelMap, Obj, ReadOnly, Str

PROTOCOLS = ("grpc", "http", "http2", "tcp")
GATEWAY_PROTOCOLS = ("grpc", "http", "http2")
HTTP_METHODS = ("CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE")
ENABLED_DISABLED = ("ENABLED", "DISABLED")


def port(desc="A port, 1–65535.") -> Int:
    return Int(description=desc, minimum=1, maximum=65535)


def target_port() -> Int:
    # CRD: minimum 0; API: 1–65535. We take the API range: port 0 can never be served.
    return Int(description="Port on the target's provider; required when it has several listeners (1–65535).",
               minimum=1, maximum=65535)


# ---- shared pieces -------------------------------------------------------------------

# names reach Envoy's resource names, stat prefixes and headers
AWS_NAME = E.on("awsName", E.no_control, "awsName", "use letters, digits, '-', '_' and '.'")

_LONG_UNITS = "the units are s and ms only: write a minute as unit: s, value: 60"


def duration(positive: bool = False) -> Obj:
    return Obj(description="A duration: a unit (s or ms) and a value.",
               props={"unit": Str(enum=("s", "ms"), wrong={u: _LONG_UNITS for u in ("m", "min", "h")}),
                      "value": Int(minimum=0)},
               required=("unit", "value"), rules=(E.duration_rule(positive),))


def uint32(minimum: int = 0) -> Int:
    # Envoy holds these counters in 32 bits; a larger value fails to parse (API: a long)
    return Int(minimum=minimum, maximum=E.UINT32_MAX)


def label_selector(desc: str) -> Obj:
    return Obj(description=desc, props={
        "matchLabels": LabelMap(),
        "matchExpressions": Arr(items=Obj(props={
            "key": Str(),
            "operator": Str(enum=("In", "NotIn", "Exists", "DoesNotExist")),
            "values": Arr(items=Str()),
        }, required=("key", "operator"), rules=(_selector_expression,))),
    })


def _selector_expression(v: dict) -> list:
    op, values = v.get("operator"), v.get("values") or []
    bad = limits.qualified_name(v["key"]) if isinstance(v.get("key"), str) else None
    if bad:
        return [Finding("key", bad[0], bad[1], "label")]
    for i, x in enumerate(values if isinstance(values, list) else []):
        bad = limits.label_value(x)
        if bad:
            return [Finding(f"values[{i}]", bad[0], bad[1], "label")]
    if op in ("In", "NotIn") and not values:
        return [Finding("values", f"operator {op} needs at least one value", "add values: [...]")]
    if op in ("Exists", "DoesNotExist") and values:
        return [Finding("values", f"operator {op} takes no values", "remove values")]
    return []


def ref(kind_desc: str, with_namespace: bool = True) -> Obj:
    props = {"name": Str(description=f"Name of the {kind_desc}."),}
    if with_namespace:
        props["namespace"] = Str(description=f"Namespace of the {kind_desc}; defaults to this resource's namespace.")
    return Obj(description=f"Reference to a {kind_desc} by Kubernetes name.", props=props, required=("name",))


def mesh_ref() -> ReadOnly:
    return ReadOnly(
        inner=Obj(description="Read-only: the mesh this resource belongs to, filled in by the controller.",
                  props={"name": Str(), "uid": Str()}, required=("name", "uid")),
        message="spec.meshRef is read-only in v1beta2: the controller fills it in, and a create that sets it is rejected",
        hint="remove meshRef; the mesh is the one whose namespaceSelector matches this namespace's labels")


def gateway_ref() -> ReadOnly:
    return ReadOnly(
        inner=Obj(description="Read-only: the gateway this route attached to, filled in by the controller.",
                  props={"name": Str(), "namespace": Str(), "uid": Str()}, required=("name", "uid")),
        message="spec.virtualGatewayRef is read-only in v1beta2: the controller fills it in, and a create that sets it "
                "is rejected",
        hint="remove virtualGatewayRef; the gateway is the VirtualGateway whose namespaceSelector matches this "
             "namespace and whose gatewayRouteSelector matches this route's labels")


def health_check(protocols) -> Obj:
    return Obj(description="Active health checking of the listener.", props={
        "healthyThreshold": Int(minimum=2, maximum=10),
        "intervalMillis": Int(minimum=5000, maximum=300000),
        "path": Str(min_len=1),
        "port": port(),
        "protocol": Str(enum=tuple(protocols)),
        "timeoutMillis": Int(minimum=2000, maximum=60000),
        "unhealthyThreshold": Int(minimum=2, maximum=10),
    }, required=("intervalMillis", "protocol", "timeoutMillis", "unhealthyThreshold")
       + (("healthyThreshold",) if "tcp" in protocols else ()), rules=(_health_path,))


def _health_path(v: dict) -> list:
    p = v.get("path")
    if isinstance(p, str) and p and not p.startswith("/"):
        return [Finding("path", f"health check path {p!r} must start with '/'", f"write /{p}")]
    return E.on("path", E.no_control, "health check path", "write a plain path such as /ping")(v)


def port_mapping(protocols) -> Obj:
    wrong = {"https": "there is no https protocol: keep protocol: http; TLS is turned on by a virtual node's or "
                      "gateway's listener tls: {mode: STRICT, certificate: ...}"}
    if "tcp" not in protocols:
        wrong["tcp"] = ("a virtual gateway listens with http, http2 or grpc; it cannot take plain tcp "
                        "(put tcp services behind a VirtualNode listener instead)")
    return Obj(props={"port": port(), "protocol": Str(enum=tuple(protocols), wrong=wrong)},
               required=("port", "protocol"))


def connection_pool(kinds) -> Obj:
    pools = {
        "tcp": Obj(props={"maxConnections": uint32(1)}, required=("maxConnections",)),
        "http": Obj(props={"maxConnections": uint32(1), "maxPendingRequests": uint32(1)},
                    required=("maxConnections",)),
        "http2": Obj(props={"maxRequests": uint32(1)}, required=("maxRequests",)),
        "grpc": Obj(props={"maxRequests": uint32(1)}, required=("maxRequests",)),
    }
    return Obj(description="Connection pool limits; exactly one, matching the listener protocol.",
               props={k: pools[k] for k in kinds}, exactly_one=(tuple(kinds),))


def logging() -> Obj:
    return Obj(description="Access logging.", props={"accessLog": Obj(props={"file": Obj(props={
        "path": Str(min_len=1, max_len=255, description="File path, e.g. /dev/stdout."),
        "format": Obj(props={
            "json": Arr(items=Obj(props={"key": Str(min_len=1), "value": Str(min_len=1)}, required=("key", "value"))),
            "text": Str(),
        }, exactly_one=(("json", "text"),), rules=(E.access_log_format,)),
    }, required=("path",), rules=(E.access_log_path,))})})


def listener_consistency(v: dict) -> list:
    """webhook: the pool and timeout kinds must match the listener protocol."""
    out = []
    mapping = v.get("portMapping") if isinstance(v.get("portMapping"), dict) else {}
    proto = mapping.get("protocol")
    if not isinstance(proto, str):
        return out
    for field_name in ("connectionPool", "timeout"):
        block = v.get(field_name)
        if isinstance(block, dict):
            for k in block:
                if k in PROTOCOLS and k != proto:
                    out.append(Finding(f"{field_name}.{k}",
                                       f"{field_name}.{k} does not match the listener protocol {proto!r}",
                                       f"use {field_name}.{proto}"))
    hc = v.get("healthCheck")
    if isinstance(hc, dict):
        p = hc.get("port")
        lp = mapping.get("port")
        if isinstance(p, int) and isinstance(lp, int) and p != lp:
            out.append(Finding("healthCheck.port", f"health check port {p} differs from the listener port {lp}",
                               f"use port {lp} or remove the field"))
        if hc.get("protocol") in ("http", "http2") and not hc.get("path"):
            out.append(Finding("healthCheck.path", "an http health check needs a path", "add path: /ping"))
    return out


def acm_not_served(listener: dict) -> list:
    tls = listener.get("tls") if isinstance(listener.get("tls"), dict) else {}
    cert = tls.get("certificate") if isinstance(tls.get("certificate"), dict) else {}
    if "acm" in cert:
        return [Finding("tls.certificate.acm", "ACM certificates were provisioned by AWS App Mesh, which was shut down; "
                        "the lab's control plane cannot fetch them",
                        "use certificate.file with the paths of a certificate chain and private key", "unsupported")]
    return []
