"""Gateway API -> the same gateway IR as a VirtualGateway (stage one for the second input language).

A Gateway becomes a gateway proxy whose listeners carry the HTTPRoutes attached to them, in
Gateway API's precedence; each rule sends to the proxy's own egress listener (the self redirect,
as for App Mesh), where the backend Service is routed: by its GAMMA routes (HTTPRoutes whose
parentRef is the Service) when it has any, else straight to the virtual node the Service fronts
(found by its DNS name, the way App Mesh's DNS service discovery names it, else as the one virtual
node whose pods the Service selects). The lab applies a
Service's GAMMA routes to traffic from a Gateway too (implementations differ here: Istio does
not for its gateways; the lab follows App Mesh, where a gateway route's target is routed by the
virtual service's router).

Gateway API precedence (HTTPRoute spec, v1.6.1): the longest matching non-wildcard hostname,
then the longest hostname; an Exact path, then the longest PathPrefix; a method match; more
header matches; more query matches; then the oldest route, then namespace/name; within a route,
rule order, then match order. Envoy takes the first matching route, so the IR routes are sorted
by that key. PathPrefix matches whole path segments (Envoy's path_separated_prefix).
GRPCRoute rules become HTTP/2 matches on the :path /<service>/<method> (GRPCRoute has no URLRewrite).

HTTPS listeners (tls.mode Terminate) are served: each certificateRef names a Secret of type
kubernetes.io/tls (in another namespace only with a ReferenceGrant from the Gateway); the IR names
its files secret:<namespace>/<name>/tls.crt and tls.key, which the runtime writes from the Secret,
owner-only (lab/runtime/secrets.py), and maps to real files, as it maps App Mesh's certificate
paths: no key material in the IR or in the Envoy configuration sent over xDS. Gateway.spec.tls.
frontend (GEP-91) makes a listener require a client certificate its CA signed: the perPort entry
of the listener's port, else the default, naming one ConfigMap whose ca.crt the runtime writes as
configmap:<namespace>/<name>/ca.crt (mode AllowInsecureFallback requires nothing; a CA reference
that cannot be used leaves the listener unserved, fail closed). A listener's
`hostname` becomes its filter chain's server_names (SNI; a client naming another host, or none,
is refused at the handshake); HTTPS listeners sharing a port are filter chains of one Envoy
listener, the most specific server name winning (Envoy's rule, the spec's too). Every listener's
`hostname` also narrows the hostnames of the routes attached to it (the intersection, per the
Gateway spec); a route with none in common does not attach. Passthrough (TLSRoute, experimental
channel) is not served. Not served either: TLS, TCP and UDP listeners, filters other than URLRewrite.
"""
from __future__ import annotations

import base64
import re

from ..model import World
from ..model import gatewayapi_refs as gwrefs
from ..model.resources import Resource, selector_matches
from . import naming
from .ir import Placement, _Egress, mesh_name, timeout_ir

GROUP = "gateway.networking.k8s.io"
MESH = "gateway-api"  # the name space of the lab's Gateway API proxies and their clusters
NO_RETRY = {"max_retries": 0, "http_events": [], "tcp_events": [], "reset": False, "per_try_timeout_ms": None,
            "default": False}


def node_id(gw: Resource) -> str:
    return naming.node_id(MESH, "gateway", f"{gw.name}_{gw.namespace}")


def fqdn(ns: str, name: str) -> str:
    return f"{name}.{ns}.svc.cluster.local"


# ---- matches --------------------------------------------------------------------------

def _host_regex(hostnames: list[str]) -> str:
    alts = []
    for h in hostnames:
        if h.startswith("*."):
            alts.append(r"[^:]+\." + re.escape(h[2:]))
        else:
            alts.append(re.escape(h))
    return "(?i)(" + "|".join(alts) + r")(:\d+)?"


def match_ir(m: dict, hostnames: list[str]) -> dict:
    out: dict = {}
    path = m.get("path") or {"type": "PathPrefix", "value": "/"}
    value = path.get("value", "/")
    if path.get("type", "PathPrefix") == "PathPrefix":
        stripped = value.rstrip("/")
        if stripped:
            out["path_separated_prefix"] = stripped  # /products and /products/..., not /productsXYZ
        else:
            out["prefix"] = "/"
    elif path["type"] == "Exact":
        out["path"] = {"exact": value}
    else:
        out["path"] = {"regex": value}
    headers = []
    for h in m.get("headers") or []:
        kind = "regex" if h.get("type") == "RegularExpression" else "exact"
        headers.append({"name": h["name"].lower(), kind: h["value"], "invert": False})
    if m.get("method"):
        headers.append({"name": ":method", "exact": m["method"], "invert": False})
    if hostnames:
        headers.append({"name": ":authority", "regex": _host_regex(hostnames), "invert": False})
    if headers:
        out["headers"] = headers
    query = []
    for q in m.get("queryParams") or []:
        kind = "regex" if q.get("type") == "RegularExpression" else "exact"
        query.append({"name": q["name"], kind: q["value"]})
    if query:
        out["query"] = query
    return out


def grpc_match_ir(m: dict, hostnames: list[str]) -> dict:
    """A GRPCRoute match as an HTTP/2 match on the :path /<service>/<method>."""
    out: dict = {}
    method = m.get("method") or {}
    svc, meth = method.get("service"), method.get("method")
    if method.get("type") == "RegularExpression":
        out["path"] = {"regex": f"/{svc or '[^/]+'}/{meth or '[^/]+'}"}
    elif svc and meth:
        out["path"] = {"exact": f"/{svc}/{meth}"}
    elif svc:
        out["prefix"] = f"/{svc}/"
    elif meth:
        out["path"] = {"regex": "/[^/]+/" + re.escape(meth)}
    else:
        out["prefix"] = "/"
    headers = [{"name": h["name"].lower(), ("regex" if h.get("type") == "RegularExpression" else "exact"): h["value"],
                "invert": False} for h in m.get("headers") or []]
    if hostnames:
        headers.append({"name": ":authority", "regex": _host_regex(hostnames), "invert": False})
    if headers:
        out["headers"] = headers
    return out


def grpc_precedence(m: dict, hostnames: list[str]) -> tuple:
    """GRPCRoute: hostnames, then the longest service, the longest method, more headers; shaped like
    precedence() (a service and method is an exact path, a service a path prefix) so HTTP and gRPC
    rules on one listener sort together."""
    exact_host = max((len(h) for h in hostnames if not h.startswith("*")), default=0)
    any_host = max((len(h) for h in hostnames), default=0)
    method = m.get("method") or {}
    svc, meth = method.get("service") or "", method.get("method") or ""
    rank = 2 if svc and meth else 1
    return (exact_host, any_host, rank, len(svc) + 2 if rank == 1 and svc else (1 if rank == 1 else 0), 0,
            len(m.get("headers") or []), 0)


def _match(route: Resource, m: dict, hostnames: list[str]) -> tuple[dict, tuple]:
    if route.kind == "GRPCRoute":
        return grpc_match_ir(m, hostnames), grpc_precedence(m, hostnames)
    return match_ir(m, hostnames), precedence(m, hostnames)


def precedence(m: dict, hostnames: list[str]) -> tuple:
    """Larger is preferred (see the module docstring)."""
    exact_host = max((len(h) for h in hostnames if not h.startswith("*")), default=0)
    any_host = max((len(h) for h in hostnames), default=0)
    path = m.get("path") or {"type": "PathPrefix", "value": "/"}
    rank = {"Exact": 2, "PathPrefix": 1}.get(path.get("type", "PathPrefix"), 0)
    plen = len(path.get("value", "/").rstrip("/") or "/") if rank == 1 else 0
    return (exact_host, any_host, rank, plen, 1 if m.get("method") else 0, len(m.get("headers") or []),
            len(m.get("queryParams") or []))


def rewrite_ir(m: dict, filters: list) -> dict:
    out: dict = {}
    for f in filters or []:
        if f.get("type") != "URLRewrite":
            continue
        rw = f.get("urlRewrite") or {}
        if rw.get("hostname"):
            out["host"] = rw["hostname"]
        p = rw.get("path") or {}
        if p.get("type") == "ReplaceFullPath":
            out["path_regex"] = {"pattern": "^.*$", "substitution": p["replaceFullPath"].replace("\\", "\\\\")}
        elif p.get("type") == "ReplacePrefixMatch":
            prefix = ((m.get("path") or {}).get("value") or "/").rstrip("/")
            repl = p["replacePrefixMatch"]
            # the matched segments go, the rest stays, joined by one "/": /products/1 -> /1 for "/"
            out["path_regex"] = {"pattern": "^" + re.escape(prefix) + "/*",
                                 "substitution": (repl.rstrip("/") + "/").replace("\\", "\\\\")}
    return out


# ---- attachment -------------------------------------------------------------------------

def _parent_is(ref: dict, route: Resource, kind: str, ns: str, name: str) -> bool:
    return (ref.get("group", GROUP) == (GROUP if kind == "Gateway" else "") and ref.get("kind", "Gateway") == kind
            and ref.get("name") == name and (ref.get("namespace") or route.namespace) == ns)


def _allowed(world: World, listener: dict, gw: Resource, route: Resource) -> bool:
    ns = ((listener.get("allowedRoutes") or {}).get("namespaces") or {})
    frm = ns.get("from", "Same")
    if frm == "All":
        return True
    if frm == "Same":
        return route.namespace == gw.namespace
    return selector_matches(ns.get("selector"), world.namespace_labels(route.namespace) or {})


def _host_in(host: str, pattern: str) -> bool:
    """Whether `host` (a name or a *.wildcard) lies within `pattern` (Gateway API hostname rules:
    a wildcard stands for one or more labels)."""
    if pattern.startswith("*."):
        base = pattern[1:]  # ".example.com"
        return host.endswith(base) and len(host) > len(base)
    return host == pattern


def effective_hostnames(listener: dict, route: Resource) -> list[str] | None:
    """The hostnames a route serves on a listener: the listener's and the route's, intersected
    (Gateway spec, listeners[].hostname); [] for any host, None when they have none in common."""
    mine = [h.lower() for h in route.spec.get("hostnames") or []]
    theirs = (listener.get("hostname") or "").lower()
    if not theirs:
        return mine
    if not mine:
        return [theirs]
    out = []
    for h in mine:
        if _host_in(h, theirs):
            out.append(h)
        elif _host_in(theirs, h):
            out.append(theirs)
    return sorted(set(out), key=out.index) or None


def attached(world: World, gw: Resource, listener: dict) -> list[Resource]:
    """The routes attached to a listener: their parentRef names it (or the Gateway), its
    allowedRoutes admit them, and a hostname matches (lab/model/gatewayapi_refs.py, which the
    routes' status conditions read too)."""
    return gwrefs.attached_routes(world, gw, listener)


def granted(world: World, route: Resource, ns: str, kind: str = "Service", name: str | None = None) -> bool:
    """A reference into another namespace (a route's backend Service, a Gateway's certificate
    Secret) needs a ReferenceGrant there (lab/model/gatewayapi_refs.py)."""
    return gwrefs.granted(world, route, ns, kind, name)


# ---- TLS ----------------------------------------------------------------------------------

TLS_SECRET = gwrefs.TLS_SECRET
tls_secret_pems = gwrefs.tls_secret_pems
certificate_secrets = gwrefs.certificate_secrets


def secret_file(ns: str, name: str, key: str) -> str:
    """The IR's name for one file of a Secret (`key` tls.crt or tls.key); the runtime maps it."""
    return f"secret:{ns}/{name}/{key}"


def tls_secret(ns: str, name: str, crt: bytes, key: bytes) -> Resource:
    """A Secret as `kubectl create secret tls NAME -n NS --cert=FILE --key=FILE` makes it."""
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns},
            "type": gwrefs.TLS_SECRET, "data": {"tls.crt": base64.b64encode(crt).decode(),
                                         "tls.key": base64.b64encode(key).decode()}}
    return Resource("v1", "Secret", name, ns, {}, {}, {}, None, body)


def ca_configmap(ns: str, name: str, ca: bytes) -> Resource:
    """A ConfigMap as `kubectl create configmap NAME -n NS --from-file=ca.crt=FILE` makes it."""
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns},
            "data": {gwrefs.CA_KEY: ca.decode()}}
    return Resource("v1", "ConfigMap", name, ns, {}, {}, {}, None, body)


def listener_problems(world: World, gw: Resource) -> list[tuple[str, str, str]]:
    """Why a Gateway's listeners are not served as written: (field path, message, hint); empty
    when every one is (the ResolvedRefs/Programmed story of each listener)."""
    out = []
    for i, lst in enumerate(gw.spec.get("listeners") or []):
        base = f"spec.listeners[{i}]"
        proto = lst.get("protocol")
        if proto == "HTTPS":
            if (lst.get("tls") or {}).get("mode", "Terminate") != "Terminate":
                out.append((f"{base}.tls.mode", "TLS Passthrough is for TLSRoute (experimental channel); the lab "
                            "serves HTTPS with mode Terminate only", "use mode: Terminate with a certificate"))
                continue
            out += [(f"{base}.{p}", m, h) for p, m, h in certificate_secrets(world, gw, lst)[1]]
            out += gwrefs.client_ca(world, gw, lst)[1]
        elif proto != "HTTP":
            out.append((f"{base}.protocol", f"{proto} listeners are not served by the lab", "use HTTP or HTTPS"))
    return out


def listener_tls_ir(world: World, gw: Resource, listener: dict) -> dict | None:
    """The IR's TLS of an HTTPS listener (None when it cannot be served: listener_problems says why)."""
    if (listener.get("tls") or {}).get("mode", "Terminate") != "Terminate":
        return None
    secrets, _ = certificate_secrets(world, gw, listener)
    if not secrets:
        return None
    files = [{"certificate_chain": secret_file(ns, n, "tls.crt"), "private_key": secret_file(ns, n, "tls.key")}
             for ns, n in secrets]
    out = {"mode": "STRICT", **files[0]}
    if len(files) > 1:  # e.g. an RSA and an ECDSA certificate: Envoy serves the one the client can use
        out["more_certificates"] = files[1:]
    ca, problems, mode = gwrefs.client_ca(world, gw, listener)
    if problems:  # fail closed: a listener asked to check clients is not served without its CA
        return None
    if ca and mode == "AllowValidOnly":  # AllowInsecureFallback lets every client in: nothing to require
        out["validation"] = {"trusted_ca": configmap_file(*ca, gwrefs.CA_KEY)}
    return out


def configmap_file(ns: str, name: str, key: str) -> str:
    """The IR's name for one key of a ConfigMap as a file; the runtime maps it (lab/runtime/secrets.py)."""
    return f"configmap:{ns}/{name}/{key}"


# ---- backends -----------------------------------------------------------------------------

class _Backends:
    """Egress entries (one per backend Service, or per weighted rule) and their clusters."""

    def __init__(self, world: World, placement: Placement):
        self.world, self.placement = world, placement
        self.egress: dict = {}  # mesh -> _Egress
        self.services: dict = {}  # entry name -> egress virtual service IR

    def _node_for(self, ns: str, name: str, port):
        """The virtual node a Service fronts (by DNS name) and its listener port for `port`."""
        svc = self.world.get("Service", ns, name)
        target = port
        for p in (svc.spec.get("ports") or []) if svc else []:
            if p.get("port") == port and isinstance(p.get("targetPort"), int):
                target = p["targetPort"]
        for vn in self.world.by_kind["VirtualNode"]:
            host = (((vn.spec.get("serviceDiscovery") or {}).get("dns") or {}).get("hostname") or "").lower()
            if host in (fqdn(ns, name), f"{name}.{ns}.svc", f"{name}.{ns}"):
                return vn, target
        # else the one virtual node whose pods the Service selects
        sel = (svc.spec.get("selector") or {}) if svc else {}
        nodes = [vn for vn in self.world.by_kind["VirtualNode"] if vn.namespace == ns and sel
                 and selector_matches(vn.spec.get("podSelector"), sel)]
        return (nodes[0], target) if len(nodes) == 1 else (None, None)

    def cluster(self, ns: str, name: str, port) -> str | None:
        vn, target = self._node_for(ns, name, port)
        mesh = mesh_name(self.world, vn) if vn else None
        if vn is None or mesh is None:
            return None
        eg = self.egress.setdefault(mesh, _Egress(self.world, self.placement, mesh, lambda vs: None))
        return eg.cluster_for(None, vn, target)

    def targets(self, route: Resource, refs: list) -> list[dict]:
        out = []
        for b in refs or []:
            if b.get("kind", "Service") != "Service" or b.get("group", "") != "":
                continue
            ns = b.get("namespace") or route.namespace
            if not granted(self.world, route, ns):
                continue
            c = self.cluster(ns, b["name"], b.get("port"))
            if c and b.get("weight", 1) > 0:
                out.append({"cluster": c, "weight": b.get("weight", 1)})
        return out

    def gamma(self, ns: str, name: str) -> list[Resource]:
        return [r for r in self.world.by_kind["HTTPRoute"] + self.world.by_kind["GRPCRoute"]
                if any(_parent_is(ref, r, "Service", ns, name) for ref in r.spec.get("parentRefs") or [])]

    def service(self, route: Resource, rule: dict, rule_name: str) -> str:
        """The egress entry a gateway rule sends to; its name goes in the target header."""
        refs = rule.get("backendRefs") or []
        if len(refs) == 1 and refs[0].get("kind", "Service") == "Service":
            ns = refs[0].get("namespace") or route.namespace
            gamma = self.gamma(ns, refs[0]["name"]) if granted(self.world, route, ns) else []
            if gamma:
                name = fqdn(ns, refs[0]["name"])
                if name not in self.services:
                    self.services[name] = {"name": name, "source": f"Service/{ns}/{refs[0]['name']}", "port": None,
                                           "routes": self.rules(gamma)}
                return name
        targets = self.targets(route, refs)
        entry = {"name": rule_name, "source": route.ref, "port": None, "routes": [{
            "name": rule_name, "match": {"prefix": "/"}, "targets": targets, "retry": dict(NO_RETRY),
            "timeout": _timeout(rule), "protocol": _protocol(route)}] if targets else []}
        if not targets:
            entry["no_provider"] = True
        self.services[rule_name] = entry
        return rule_name

    def rules(self, routes: list[Resource]) -> list[dict]:
        """GAMMA routes on one Service as egress routes, in Gateway API precedence."""
        out = []
        for route in routes:
            for i, rule in enumerate(route.spec.get("rules") or []):
                targets = self.targets(route, rule.get("backendRefs"))
                for j, m in enumerate(rule.get("matches") or [{}]):
                    match, key = _match(route, m, [])
                    out.append(((_neg(key), _age(route), route.namespace, route.name, i, j), {
                        "name": f"{route.name}_{route.namespace}-{i}-{j}", "match": match,
                        "targets": targets, "retry": dict(NO_RETRY), "timeout": _timeout(rule),
                        "protocol": _protocol(route)}))
        return [r for _, r in sorted(out, key=lambda x: x[0]) if r["targets"]]

    def clusters(self) -> list[dict]:
        out = {}
        for eg in self.egress.values():
            out.update(eg.clusters)
        return list(out.values())


def _protocol(route: Resource) -> str:
    return "grpc" if route.kind == "GRPCRoute" else "http"


def _neg(t: tuple) -> tuple:
    return tuple(-x for x in t)


def _age(r: Resource) -> str:
    return str((r.raw.get("metadata") or {}).get("creationTimestamp") or "")


def _timeout(rule: dict) -> dict:
    req = (rule.get("timeouts") or {}).get("request")
    if req is None:
        return timeout_ir(None)
    ms = 0
    for n, u in re.findall(r"([0-9]+)(h|ms|m|s)", req):
        ms += int(n) * {"h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}[u]
    return {"per_request_ms": ms, "idle_ms": None}


# ---- the proxy ----------------------------------------------------------------------------

def gateway_ir(world: World, gw: Resource, placement: Placement, protocols=("HTTP", "HTTPS")) -> dict:
    """The gateway IR of a Gateway; only its listeners of `protocols` are served."""
    nid = node_id(gw)
    egress_port = placement.egress_port(nid)
    backends = _Backends(world, placement)
    # gRPC needs HTTP/2 on the hop to the egress stage; HTTP/1.1 requests travel over it as well
    grpc = any(r.kind == "GRPCRoute" for lst in gw.spec.get("listeners") or [] for r in attached(world, gw, lst))
    proto = "http2" if grpc else "http"
    redirect = naming.self_redirect_cluster(MESH, f"{gw.name}_{gw.namespace}", proto, egress_port)
    listeners: list = []
    chains: dict = {}  # port -> {"protocol": "HTTP"|"HTTPS", server names...: the IR listener}
    for lst in gw.spec.get("listeners") or []:
        kind = lst.get("protocol")
        if kind not in ("HTTP", "HTTPS") or kind not in protocols:
            continue  # TLS, TCP, UDP listeners are not served by the lab (listener_problems says so)
        tls = listener_tls_ir(world, gw, lst) if kind == "HTTPS" else None
        if kind == "HTTPS" and tls is None:
            continue  # no usable certificate: not served (listener_problems says why)
        on_port = chains.setdefault(lst["port"], {"protocol": kind, "chains": {}})
        if on_port["protocol"] != kind:
            continue  # HTTP and HTTPS on one port conflict; the first listener's protocol wins
        # HTTP listeners of one port share a chain (no SNI to tell them apart); HTTPS ones have one
        # each, told apart by server name
        sni = (lst.get("hostname") or "").lower() if kind == "HTTPS" else ""
        ir_lst = on_port["chains"].get(sni)
        if ir_lst is None:
            ir_lst = {"port": lst["port"], "bind_port": placement.bind_port(nid, lst["port"]), "protocol": "http",
                      "tls": tls, "health_check_path": None, "routes": [], "_entries": []}
            if kind == "HTTPS":
                ir_lst["server_names"] = [sni] if sni else []
                ir_lst["section"] = lst.get("name")
            on_port["chains"][sni] = ir_lst
            listeners.append(ir_lst)
        elif kind == "HTTPS":
            continue  # two HTTPS listeners on one port and host name conflict; the first wins
        entries = ir_lst["_entries"]
        for route in attached(world, gw, lst):
            hostnames = effective_hostnames(lst, route) or []
            for i, rule in enumerate(route.spec.get("rules") or []):
                rule_name = f"{route.name}_{route.namespace}-{i}"
                target = backends.service(route, rule, rule_name)
                for j, m in enumerate(rule.get("matches") or [{}]):
                    match, prec = _match(route, m, hostnames)
                    key = (_neg(prec), _age(route), route.namespace, route.name, i, j)
                    entries.append((key, {
                        "name": f"{rule_name}-{j}", "source": route.ref, "priority": None,
                        "match": match, "rewrite": rewrite_ir(m, rule.get("filters")),
                        "target": {"virtual_service": target, "port": None}, "cluster": redirect}))
    for ir_lst in listeners:
        ir_lst["routes"] = [e for _, e in sorted(ir_lst.pop("_entries"), key=lambda x: x[0])]
    self_cluster = {"name": redirect, "kind": "self_redirect", "protocol": proto,
                    "endpoints": [{"address": "127.0.0.1" if placement.bind_address != "0.0.0.0" else "127.0.0.1",
                                   "port": egress_port}],
                    "tls": None, "health_check": None, "outlier_detection": None, "connection_pool": None}
    return {
        "kind": "gateway", "node_id": nid, "source": gw.ref, "mesh": MESH,
        "bind_address": placement.bind_address, "access_log": None, "listeners": listeners,
        "egress": {"bind_port": egress_port, "bind_address": "127.0.0.1", "mode": "internal",
                   "virtual_services": sorted(backends.services.values(), key=lambda v: v["name"])},
        "clusters": sorted(backends.clusters() + [self_cluster], key=lambda c: c["name"]),
    }


def lab_gateway_ir(world: World, gw: Resource, placement: Placement) -> dict | None:
    """The IR of a Gateway the lab serves (its GatewayClass names the lab's controller), else None."""
    if not gwrefs.served_by_lab(world, gw):
        return None
    # the running lab serves the listener protocols its status says it serves: HTTPS once its daemon
    # writes the Secrets' files (lab/runtime/secrets.py) into the file map it translates with
    return gateway_ir(world, gw, placement, protocols=gwrefs.SERVED_PROTOCOLS)


def build(world: World, placement: Placement) -> dict[str, dict]:
    """node id -> IR, for every Gateway the lab serves."""
    out = {}
    for gw in sorted(world.by_kind["Gateway"], key=lambda r: r.key):
        ir = lab_gateway_ir(world, gw, placement)
        if ir:
            out[ir["node_id"]] = ir
    return out
