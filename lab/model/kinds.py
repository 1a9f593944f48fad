"""The App Mesh v1beta2 kinds and the Kubernetes subset the lab reads, as schema nodes.

Every field of the upstream appmesh.k8s.aws/v1beta2 CRDs is here (a conformance test
checks it). Names mirror the controller's Go types (GatewayRouteSpec, HTTPGatewayRouteMatch,
…) so a learner can match them to the CRD reference; we spell gRPC types `GRPC…` throughout.

Constraints come from three places, each marked where it is not obvious:
  CRD      — the kubebuilder markers (types, enums, ranges, lengths, required)
  webhook  — the controller's validating webhook (one-of rules, prefix rules, rewrites)
  API      — the App Mesh API model (e.g. ports 1–65535 where the CRD allowed 0)
"""
from __future__ import annotations

import difflib
import posixpath
import re

from . import envoy_rules as E
from . import limits
from .gatewayapi import K8S_KINDS as GATEWAY_API_KINDS
from .schema import (AnnotationMap, Arr, Bool, Finding, Int, LabelMap, Obj, ReadOnly, Str, StrMap,
                     valid_re2ish)

GROUP = "appmesh.k8s.aws"
VERSION = "v1beta2"
API_VERSION = f"{GROUP}/{VERSION}"

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
_AWS_NAME = E.on("awsName", E.no_control, "awsName", "use letters, digits, '-', '_' and '.'")

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


def status(arn_field: str, extra: dict | None = None) -> Obj:
    props = {
        "conditions": Arr(items=Obj(props={
            "type": Str(), "status": Str(), "reason": Str(), "message": Str(),
            "lastTransitionTime": Str(fmt="date-time"),
        }, required=("status", "type"))),
        "observedGeneration": Int(),
        arn_field: Str(),
    }
    props.update(extra or {})
    return Obj(props=props)


# Where certificate files live on a proxy: the lab makes them there on the local target, and the
# kit's manifests mount Secrets there on a cluster (appmesh.k8s.aws/secretMounts).
CERTS_DIR = "/etc/appmesh-lab/certs/"
_CERT_EXAMPLE = f"{CERTS_DIR}<name>/tls.crt, {CERTS_DIR}<name>/tls.key or {CERTS_DIR}ca/ca.crt"


def cert_path_problem(path: str) -> tuple[str, str] | None:
    """A certificate file path must name a file inside CERTS_DIR, written plainly: absolute, no '.'
    or '..' steps, no empty steps, no control characters (None when it does)."""
    if any(ord(ch) < 0x20 or ord(ch) == 0x7f for ch in path):
        return f"certificate file {path[:80]!r} holds a control character", f"write {_CERT_EXAMPLE}"
    steps = path.split("/")
    if ".." in steps:
        return f"certificate file {path[:80]!r} climbs out of its folder with '..'", \
            f"name a file inside {CERTS_DIR}: {_CERT_EXAMPLE}"
    if path.startswith(CERTS_DIR) and posixpath.normpath(path) == path:
        return None
    if path.startswith(CERTS_DIR):
        return f"certificate file {path[:80]!r} is not written plainly (an empty or '.' step, or a trailing '/')", \
            f"write {posixpath.normpath(path)!r}" if posixpath.normpath(path).startswith(CERTS_DIR) \
            else f"write {_CERT_EXAMPLE}"
    rest = path.lstrip("/").split("/")
    # /etc/appmesh-lab/cert/gateway/tls.crt: one letter off the folder
    if len(rest) > 3 and rest[:2] == ["etc", "appmesh-lab"] and difflib.get_close_matches(rest[2], ["certs"], 1, 0.6):
        hint = f"did you mean {CERTS_DIR + '/'.join(rest[3:])!r}?"
    else:
        hint = f"put the file in {CERTS_DIR}: {_CERT_EXAMPLE}"
    return f"certificate file {path[:80]!r} is outside {CERTS_DIR}, the folder the lab keeps certificates in", hint


def _cert_files(*keys):
    def check(v: dict) -> list:
        out = []
        for k in keys:
            bad = cert_path_problem(v[k]) if isinstance(v.get(k), str) and v[k] else None
            if bad:
                out.append(Finding(k, bad[0], bad[1], "cert-path"))
        return out
    return check


def tls_file_cert() -> Obj:
    return Obj(description="Certificate chain and private key from files on the proxy.",
               props={"certificateChain": Str(min_len=1, max_len=255), "privateKey": Str(min_len=1, max_len=255)},
               required=("certificateChain", "privateKey"), rules=(_cert_files("certificateChain", "privateKey"),))


def sds() -> Obj:
    return Obj(description="A secret served by the SDS agent.", props={"secretName": Str()}, required=("secretName",),
               rules=(_sds_not_served,))


def _sds_not_served(v: dict) -> list:
    """App Mesh fetched SDS secrets from an agent on the node (SPIRE); the lab's control plane
    serves no secrets, so a proxy told to use one would never get its certificate."""
    return [Finding("", "SDS secrets came from an SDS agent (SPIRE) beside App Mesh's Envoy; the lab's control "
                        "plane serves none, so this proxy would never get the certificate",
                    "use file: certificates under /etc/appmesh-lab/certs/ (certificateChain: "
                    "/etc/appmesh-lab/certs/<name>/tls.crt, privateKey: .../tls.key; a trust: ca/ca.crt)",
                    "unsupported")]


def _acm_trust_not_served(v: dict) -> list:
    """A trust in ACM Private CA certificates: App Mesh fetched them from ACM, which the lab cannot;
    without them the proxy would hold no CA and verify nothing, so the trust is refused."""
    return [Finding("", "ACM Private CA trust came from AWS App Mesh, which was shut down; the lab's control plane "
                        "cannot fetch these CA certificates, so the peer's certificate would go unverified",
                    "use trust.file with the CA certificate's path, e.g. /etc/appmesh-lab/certs/ca/ca.crt",
                    "unsupported")]


def tls_validation(with_acm: bool) -> Obj:
    """A validation context. `with_acm`: the CRD's trust has an acm member (refused by
    _acm_trust_not_served: the lab cannot fetch ACM Private CA certificates)."""
    trust = {"file": Obj(props={"certificateChain": Str(min_len=1, max_len=255)}, required=("certificateChain",),
                         rules=(_cert_files("certificateChain"),)),
             "sds": sds()}
    if with_acm:
        trust["acm"] = Obj(props={"certificateAuthorityARNs": Arr(items=Str(), min_items=1, max_items=3)},
                           required=("certificateAuthorityARNs",), rules=(_acm_trust_not_served,))
    return Obj(description="How to validate the peer's certificate.", props={
        "trust": Obj(props=trust, exactly_one=(tuple(sorted(trust)),)),
        "subjectAlternativeNames": Obj(props={
            "match": Obj(props={"exact": Arr(items=Str())}, required=("exact",))}, required=("match",)),
    }, required=("trust",))


def listener_tls(with_acm_trust: bool) -> Obj:
    return Obj(description="TLS on this listener.", props={
        "mode": Str(enum=("DISABLED", "PERMISSIVE", "STRICT")),
        "certificate": Obj(props={
            "acm": Obj(props={"certificateARN": Str()}, required=("certificateARN",)),
            "file": tls_file_cert(),
            "sds": sds(),
        }, exactly_one=(("acm", "file", "sds"),)),
        "validation": tls_validation(with_acm=with_acm_trust),
    }, required=("certificate", "mode"))


def client_policy() -> Obj:
    return Obj(description="How this proxy talks to its backends.", props={
        "tls": Obj(props={
            "enforce": Bool(description="Whether TLS is required; defaults to true."),
            "ports": Arr(items=port()),
            "certificate": Obj(props={"file": tls_file_cert(), "sds": sds()}, exactly_one=(("file", "sds"),)),
            "validation": tls_validation(with_acm=True),
        }, required=("validation",)),
    })


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


def _listener_consistency(v: dict) -> list:
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


def _acm_not_served(listener: dict) -> list:
    tls = listener.get("tls") if isinstance(listener.get("tls"), dict) else {}
    cert = tls.get("certificate") if isinstance(tls.get("certificate"), dict) else {}
    if "acm" in cert:
        return [Finding("tls.certificate.acm", "ACM certificates were provisioned by AWS App Mesh, which was shut down; "
                        "the lab's control plane cannot fetch them",
                        "use certificate.file with the paths of a certificate chain and private key", "unsupported")]
    return []


# ---- HTTP matching (shared by gateway routes and router routes) ----------------------

def header_match() -> Obj:
    return Obj(description="How to match the header's value; exactly one method.", props={
        "exact": Str(min_len=1, max_len=255),
        "prefix": Str(min_len=1, max_len=255),
        "suffix": Str(min_len=1, max_len=255),
        "regex": Str(min_len=1, max_len=255),
        "range": Obj(props={"start": Int(), "end": Int()}, required=("end", "start"), rules=(_range_rule,)),
    }, exactly_one=(("exact", "prefix", "range", "regex", "suffix"),),
        rules=(_regex_rule("regex"), *_value_rules("header value")))


def _value_rules(what: str) -> tuple:
    """A header (or metadata) value to match: no request carries control characters."""
    return tuple(E.on(k, E.no_control, f"{what} to match", "remove the control characters", "invalid")
                 for k in ("exact", "prefix", "suffix"))


def _range_rule(v: dict) -> list:
    s, e = v.get("start"), v.get("end")
    if isinstance(s, int) and isinstance(e, int) and not isinstance(s, bool) and s >= e:
        return [Finding("", f"range start ({s}) must be below end ({e}); the start is inclusive and the end exclusive",
                        f"for example start: {s}, end: {s + 1}")]
    return []


def _regex_rule(key: str):
    def check(v: dict) -> list:
        pat = v.get(key)
        if isinstance(pat, str):
            err = valid_re2ish(pat)
            if err:
                return [Finding(key, f"the regular expression {err}", "write an RE2 regular expression")]
        return []
    return check


def http_headers() -> Arr:
    return Arr(items=Obj(props={
        "name": Str(min_len=1, max_len=50),
        "match": header_match(),
        "invert": Bool(description="Match anything but the criteria."),
    }, required=("name",), rules=(E.on("name", E.header_name),)), min_items=1, max_items=10)


def query_parameters() -> Arr:
    return Arr(items=Obj(props={
        "name": Str(min_len=1),
        "match": Obj(props={"exact": Str()}, required=("exact",)),
    }, required=("name",), rules=(E.query_name,)), min_items=1, max_items=10)


def path_match() -> Obj:
    return Obj(props={"exact": Str(min_len=1, max_len=255), "regex": Str(min_len=1, max_len=255)},
               exactly_one=(("exact", "regex"),), rules=(_regex_rule("regex"), _path_exact_rule))


def _path_exact_rule(v: dict) -> list:
    e = v.get("exact")
    if isinstance(e, str) and not e.startswith("/"):
        return [Finding("exact", f"path {e!r} must start with '/'", f"write /{e}")]
    return E.on("exact", E.no_control, "path", "percent-encode it (%0A for LF) or remove it", "invalid")(v)


def hostname_match() -> Obj:
    return Obj(props={"exact": Str(min_len=1, max_len=253), "suffix": Str(min_len=1, max_len=253)},
               exactly_one=(("exact", "suffix"),),
               rules=(E.on("exact", E.hostname, "hostname"), E.on("suffix", E.hostname, "hostname suffix", True)))


RESERVED_PREFIXES = ("/aws-appmesh", "/aws-app-mesh")


def _prefix_rule(v: dict) -> list:
    p = v.get("prefix")
    if not isinstance(p, str):
        return []
    if not p.startswith("/"):
        return [Finding("prefix", f"prefix {p!r} must start with '/'", f"write /{p}")]
    if p.lower().startswith(RESERVED_PREFIXES):
        return [Finding("prefix", f"prefix {p!r} is reserved by App Mesh", "choose another prefix")]
    return E.on("prefix", E.no_control, "prefix", "percent-encode it (%0A for LF) or remove it", "invalid")(v)


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
    return out + _prefix_rule(v)


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


def grpc_metadata() -> Arr:
    return Arr(items=Obj(props={
        "name": Str(min_len=1, max_len=50),
        "match": Obj(props={
            "exact": Str(min_len=1, max_len=255), "prefix": Str(min_len=1, max_len=255),
            "suffix": Str(min_len=1, max_len=255), "regex": Str(min_len=1, max_len=255),
            "range": Obj(props={"start": Int(), "end": Int()}, required=("end", "start"), rules=(_range_rule,)),
        }, at_most_one=(("exact", "prefix", "range", "regex", "suffix"),),
            rules=(_regex_rule("regex"), *_value_rules("metadata value"))),
        "invert": Bool(),
    }, required=("name",), rules=(E.on("name", E.header_name, "metadata name"),)), min_items=1, max_items=10)


def _grpc_gr_match_rule(v: dict) -> list:
    out = []
    if v.get("serviceName") is None and v.get("hostname") is None:
        out.append(Finding("", "a gRPC gateway route match needs serviceName or hostname",
                           "add serviceName: your.package.Service", "one-of", ("serviceName", "hostname")))
    sn = v.get("serviceName")
    if isinstance(sn, str) and sn.lower().startswith(("aws.app-mesh", "aws.appmesh")):
        out.append(Finding("serviceName", f"service name {sn!r} is reserved by App Mesh", "choose another name"))
    return out + _grpc_names(v)


_GRPC_NAME = re.compile(r"[A-Za-z0-9_.$-]+")


def _grpc_names(v: dict) -> list:
    """serviceName and methodName become the path /<service>/<method> Envoy matches."""
    out = []
    for key in ("serviceName", "methodName"):
        n = v.get(key)
        if isinstance(n, str) and n and not _GRPC_NAME.fullmatch(n):
            out.append(Finding(key, f"{key} {n[:40]!r} is not a gRPC name (letters, digits, '_' and '.'; no '/', "
                                    "spaces or control characters)", "write e.g. helloworld.Greeter",
                               E.ENVOY_CODE if E._NUL_CR_LF.search(n) else "invalid"))
    return out


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
}, exactly_one=(("grpcRoute", "http2Route", "httpRoute"),), rules=(_AWS_NAME,))

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
    return _listener_consistency(v) + _acm_not_served(v)


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
}, rules=(_vg_selectors, E.unique_listener_ports, _AWS_NAME))

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
    return _listener_consistency(v) + _acm_not_served(v)


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
}, rules=(_vn_rules, E.unique_listener_ports, _AWS_NAME))

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
    return out + _prefix_rule(v)


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
    return _grpc_names(v)


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
}, required=("listeners",), rules=(_AWS_NAME,))

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
    _AWS_NAME))

# ---- Kubernetes kinds the lab reads ----------------------------------------------------

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

def _named(key: str, check, what: str):
    """A rule: the string at `key` (when there is one) passes `check` (a limits.* function)."""
    def rule(v: dict) -> list:
        bad = check(v[key], what) if isinstance(v.get(key), str) else None
        return [Finding(key, bad[0], bad[1], "name")] if bad else []
    return rule


CONTAINER = Obj(open=True, props={
    "name": Str(), "image": Str(min_len=1),
    "command": Arr(items=Str()), "args": Arr(items=Str()),
    "env": Arr(items=Obj(open=True, props={"name": Str(min_len=1), "value": Str()}, required=("name",))),
    "ports": Arr(items=Obj(open=True, props={"containerPort": port(), "name": Str(),
                                              "protocol": Str(enum=("TCP", "UDP", "SCTP"))},
                           required=("containerPort",),
                           rules=(_named("name", limits.iana_svc_name, "container port name"),))),
}, required=("name",), rules=(lambda v: _container_name(v),))
# `image` may be left out of a pod template (Kubernetes allows it; App Mesh's injector sets the
# image of a gateway pod's envoy container): lab.model.semantics checks which containers need one.


def _container_name(v: dict) -> list:
    """A container name is a DNS label (Kubernetes); the local lab also makes file names of it."""
    n = v.get("name")
    if isinstance(n, str) and (len(n) > 63 or not DNS_LABEL.fullmatch(n)):
        fixed = re.sub(r"[^a-z0-9-]+", "-", n.lower()).strip("-")[:63] or "app"
        return [Finding("name", f"container name {n[:60]!r} is not a DNS label (lower-case letters, digits and '-'; "
                                "at most 63 characters)", f"for example {fixed!r}")]
    return []

POD_SPEC = Obj(open=True, props={
    "containers": Arr(min_items=1, items=CONTAINER, unique_by="name"),
    "initContainers": Arr(items=CONTAINER),
}, required=("containers",))

OBJECT_META = Obj(open=True, props={"labels": LabelMap(), "annotations": AnnotationMap()})

DEPLOYMENT_SPEC = Obj(open=True, props={
    "replicas": Int(minimum=0, maximum=50),
    "selector": label_selector("Pods this Deployment manages."),
    "template": Obj(open=True, props={"metadata": OBJECT_META, "spec": POD_SPEC}, required=("spec",)),
}, required=("selector", "template"), rules=(lambda v: _selector_matches_template(v),))


def _selector_matches_template(v: dict) -> list:
    sel = (v.get("selector") or {}).get("matchLabels") if isinstance(v.get("selector"), dict) else None
    tmpl = v.get("template") if isinstance(v.get("template"), dict) else {}
    labels = ((tmpl.get("metadata") or {}).get("labels") or {}) if isinstance(tmpl.get("metadata"), dict) else {}
    if isinstance(sel, dict) and isinstance(labels, dict):
        missing = {k: s for k, s in sel.items() if labels.get(k) != s}
        if missing:
            return [Finding("selector.matchLabels", f"the selector {missing} does not match the pod template's labels",
                            "make template.metadata.labels carry the same labels as selector.matchLabels")]
    return []


SERVICE_SPEC = Obj(open=True, props={
    "type": Str(enum=("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")),
    "selector": LabelMap(),
    "ports": Arr(items=Obj(open=True, props={
        # the API server's default node port range (--service-node-port-range)
        "name": Str(), "port": port(), "nodePort": Int(minimum=30000, maximum=32767),
        "protocol": Str(enum=("TCP", "UDP", "SCTP")),
        # targetPort is int-or-string in Kubernetes; checked by a rule below
    }, required=("port",), rules=(lambda v: _target_port(v), _named("name", limits.dns_label, "port name")))),
})


def _target_port(v: dict) -> list:
    tp = v.get("targetPort")
    if isinstance(tp, str):
        bad = limits.iana_svc_name(tp, "targetPort") if not tp.isdigit() else (
            f"targetPort {tp!r} is a number in quotes", f"write targetPort: {tp} without quotes")
        return [Finding("targetPort", bad[0], bad[1], "name")] if bad else []
    if tp is None or (isinstance(tp, int) and not isinstance(tp, bool) and 1 <= tp <= 65535):
        return []
    return [Finding("targetPort", f"targetPort {tp!r} must be a port number 1–65535 or a named container port",
                    "write e.g. targetPort: 8080")]


NAMESPACE_SPEC = Obj(open=True, props={})

# kind -> (apiVersion, spec schema, namespaced, short names, plural, ARN status field)
APPMESH_KINDS = {
    "Mesh": dict(spec=MESH_SPEC, namespaced=False, plural="meshes", short=["mesh"], arn="meshARN"),
    "VirtualNode": dict(spec=VIRTUAL_NODE_SPEC, namespaced=True, plural="virtualnodes", short=["vn"], arn="virtualNodeARN"),
    "VirtualService": dict(spec=VIRTUAL_SERVICE_SPEC, namespaced=True, plural="virtualservices", short=["vs"],
                           arn="virtualServiceARN"),
    "VirtualRouter": dict(spec=VIRTUAL_ROUTER_SPEC, namespaced=True, plural="virtualrouters", short=["vr"],
                          arn="virtualRouterARN", status_extra={"routeARNs": StrMap()}),
    "VirtualGateway": dict(spec=VIRTUAL_GATEWAY_SPEC, namespaced=True, plural="virtualgateways", short=["vg"],
                           arn="virtualGatewayARN"),
    "GatewayRoute": dict(spec=GATEWAY_ROUTE_SPEC, namespaced=True, plural="gatewayroutes", short=["gr"],
                         arn="gatewayRouteARN"),
}

K8S_KINDS = {
    ("v1", "Namespace"): dict(spec=NAMESPACE_SPEC, namespaced=False, spec_required=False),
    ("v1", "Service"): dict(spec=SERVICE_SPEC, namespaced=True, spec_required=True),
    ("v1", "Secret"): dict(spec=None, namespaced=True, spec_required=False),  # checks: lab/model/secrets.py
    ("v1", "ConfigMap"): dict(spec=None, namespaced=True, spec_required=False),  # checks: lab/model/configmaps.py
    ("apps/v1", "Deployment"): dict(spec=DEPLOYMENT_SPEC, namespaced=True, spec_required=True),
    ("v1", "Pod"): dict(spec=POD_SPEC, namespaced=True, spec_required=True),
    **GATEWAY_API_KINDS,  # Gateway API, served by the local lab (lab/model/gatewayapi.py)
}

# Kinds a manifest folder may hold that the lab passes over (counted, not checked).
PASSED_OVER = {
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    ("v1", "ServiceAccount"), ("kind.x-k8s.io/v1alpha4", "Cluster"), ("eksctl.io/v1alpha5", "ClusterConfig"),
}


def appmesh_status(kind: str) -> Obj:
    info = APPMESH_KINDS[kind]
    return status(info["arn"], info.get("status_extra"))
