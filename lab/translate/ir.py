"""Stage one: validated resources + placement -> a plain intermediate representation (IR) per proxy.

The IR is YAML-serialisable data: what each proxy must do, in App Mesh's terms, before any
Envoy detail. Stage two (envoy.py) turns it into Envoy resources. Goldens exist for both.

Placement says where things are: the ports each proxy binds, where each local app listens,
and the endpoints of every virtual node (its sidecars' ingress addresses). The local lab and
the in-cluster controller each supply their own.

How a virtual gateway routes (APPMESH-FACTS §2.4): its listener matches gateway routes,
applies the gateway route's rewrites, and sends the request to its own egress listener (the
"self redirect"), where the target virtual service's routing — a virtual router's routes —
is applied again to the request *as rewritten*. Here that egress listener is an Envoy internal
listener, reached in memory through the self-redirect cluster: the request crosses one proxy
process and no loopback TCP connection at the gateway. So `/paths/red` matched by prefix `/paths`
arrives at the router as `/red` and can match a router route `prefix: /red`.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field

from ..model import World
from ..model.resources import Resource
from . import naming
from .precedence import sort_key

DEFAULT_PER_REQUEST_MS = 15_000  # App Mesh's default request timeout (APPMESH-FACTS §6.6)
# App Mesh's invisible default retry policy (APPMESH-FACTS §6.7)
DEFAULT_RETRY = {"max_retries": 2, "http_events": ["gateway-error-503"], "tcp_events": ["connection-error"],
                 "reset": True, "per_try_timeout_ms": None, "default": True}


@dataclass
class Placement:
    bind_address: str = "0.0.0.0"
    listeners: dict = field(default_factory=dict)  # node id -> {resource port: bind port}
    egress: dict = field(default_factory=dict)  # node id -> egress bind port
    apps: dict = field(default_factory=dict)  # virtual node id -> {listener port: [address, port]}
    endpoints: dict = field(default_factory=dict)  # virtual node id -> {listener port: [[address, port], ...]}
    default_egress_port: int = 15001

    def bind_port(self, nid: str, port: int) -> int:
        return self.listeners.get(nid, {}).get(port, port)

    def egress_port(self, nid: str) -> int:
        return self.egress.get(nid, self.default_egress_port)


def duration_ms(d) -> int | None:
    if not isinstance(d, dict) or d.get("value") is None:
        return None
    return int(d["value"]) * (1000 if d.get("unit") == "s" else 1)


def mesh_name(world: World, r: Resource) -> str | None:
    m = world.mesh_of(r)
    return m.aws_name() if m else None


def proxy_id(world: World, r: Resource) -> str | None:
    mesh = mesh_name(world, r)
    kind = {"VirtualGateway": "virtualGateway", "VirtualNode": "virtualNode"}[r.kind]
    return naming.node_id(mesh, kind, r.aws_name()) if mesh else None


def _listeners(r: Resource) -> list[dict]:
    return [lst for lst in r.spec.get("listeners") or [] if isinstance(lst, dict)]


def _pm(lst: dict) -> tuple[int, str]:
    pm = lst.get("portMapping") or {}
    return pm.get("port"), pm.get("protocol")


# ---- matches and rewrites ------------------------------------------------------------

def _header_ir(h: dict) -> dict:
    m = h.get("match")
    out = {"name": h["name"], "invert": bool(h.get("invert", False))}
    if not m:
        out["present"] = True  # Decision: a header without a match block means "is present"
    else:
        for k in ("exact", "prefix", "suffix", "regex"):
            if m.get(k) is not None:
                out[k] = m[k]
        if m.get("range"):
            out["range"] = {"start": m["range"]["start"], "end": m["range"]["end"]}
    return out


def match_ir(match: dict, grpc: bool = False) -> dict:
    out: dict = {}
    if grpc:
        if match.get("serviceName"):
            out["prefix"] = f"/{match['serviceName']}/"
        else:
            out["prefix"] = "/"
        if match.get("methodName"):
            out.pop("prefix")
            out["path"] = {"exact": f"/{match['serviceName']}/{match['methodName']}"}
        headers = [_header_ir(h) for h in match.get("metadata") or []]
    else:
        if match.get("prefix") is not None:
            out["prefix"] = match["prefix"]
        path = match.get("path") or {}
        if path.get("exact") is not None:
            out["path"] = {"exact": path["exact"]}
        elif path.get("regex") is not None:
            out["path"] = {"regex": path["regex"]}
        if not out:
            out["prefix"] = "/"  # hostname-only (or header-only) matches see every path
        headers = [_header_ir(h) for h in match.get("headers") or []]
        if match.get("method"):
            headers.append({"name": ":method", "exact": match["method"], "invert": False})
        qps = []
        for q in match.get("queryParameters") or []:
            qm = q.get("match") or {}
            qps.append({"name": q["name"], "exact": qm["exact"]} if "exact" in qm else {"name": q["name"], "present": True})
        if qps:
            out["query"] = qps
        if match.get("scheme"):
            headers.append({"name": ":scheme", "exact": match["scheme"], "invert": False})
    host = match.get("hostname") or {}
    if host.get("exact") or host.get("suffix"):
        # Decision: a port in the Host header is ignored when matching hostnames (App Mesh
        # failed to match "example.com:80" — reported as a bug, RM#365; the lab does not copy it).
        # Host names are case-insensitive (RFC 9110 §4.2.3; so are Envoy's virtual-host domains,
        # which RM#384 suggests App Mesh matched hostnames with): (?i).
        if host.get("exact"):
            regex = "(?i)" + re.escape(host["exact"]) + r"(:\d+)?"
        else:
            regex = "(?i).*" + re.escape(host["suffix"]) + r"(:\d+)?"
        headers.append({"name": ":authority", "regex": regex, "invert": False})
    if headers:
        out["headers"] = headers
    return out


def gateway_rewrite_ir(match: dict, action: dict, vs_name: str, grpc: bool) -> dict:
    """App Mesh's rewrite rules (APPMESH-FACTS §2.1–2.3)."""
    rw = action.get("rewrite") or {}
    out: dict = {}
    host_rw = (rw.get("hostname") or {}).get("defaultTargetHostname", "ENABLED")
    if host_rw != "DISABLED":
        out["host"] = vs_name
    if grpc:
        return out
    if match.get("prefix") is not None:
        prefix_rw = rw.get("prefix") or {}
        if prefix_rw.get("value") is not None:
            out["prefix"] = prefix_rw["value"]  # match "/test/" + value "/red/": "/test/x" -> "/red/x"
        elif prefix_rw.get("defaultPrefix", "ENABLED") != "DISABLED" and match["prefix"] != "/":
            # the matched prefix becomes "/": /chapter/1 -> /1, /chapter1 -> /1, /chapter -> /
            out["path_regex"] = {"pattern": "^" + re.escape(match["prefix"]) + "/*", "substitution": "/"}
    elif rw.get("path", {}).get("exact") is not None:
        # the substitution is RE2 rewrite syntax, where "\" starts a group reference: escape it
        # so the path is taken literally ("/a\b" must not become "/a", nor "/a\1" a reference)
        out["path_regex"] = {"pattern": "^.*$", "substitution": rw["path"]["exact"].replace("\\", "\\\\")}
    # exact/regex path matches and hostname-only matches keep the path (no default rewrite)
    return out


# ---- retry, timeout ------------------------------------------------------------------

def retry_ir(policy: dict | None) -> dict:
    if not policy:
        # a fresh copy (lists included) without copy.deepcopy: one per route and virtual service
        return {k: list(v) if isinstance(v, list) else v for k, v in DEFAULT_RETRY.items()}
    return {
        "max_retries": policy.get("maxRetries", 0),
        "per_try_timeout_ms": duration_ms(policy.get("perRetryTimeout")),
        "http_events": list(policy.get("httpRetryEvents") or []),
        "tcp_events": list(policy.get("tcpRetryEvents") or []),
        "grpc_events": list(policy.get("grpcRetryEvents") or []),
        "reset": False,
        "default": False,
    }


def timeout_ir(timeout: dict | None, fallback_ms: int = DEFAULT_PER_REQUEST_MS) -> dict:
    timeout = timeout or {}
    per = duration_ms(timeout.get("perRequest"))
    return {"per_request_ms": fallback_ms if per is None else per, "idle_ms": duration_ms(timeout.get("idle"))}


# ---- TLS -----------------------------------------------------------------------------

def listener_tls_ir(tls: dict | None) -> dict | None:
    if not tls or tls.get("mode", "DISABLED") == "DISABLED":
        return None
    cert = (tls.get("certificate") or {})
    out = {"mode": tls["mode"]}
    if cert.get("file"):
        out["certificate_chain"] = cert["file"]["certificateChain"]
        out["private_key"] = cert["file"]["privateKey"]
    elif cert.get("sds"):
        out["sds_secret"] = cert["sds"]["secretName"]
    val = tls.get("validation")
    if val:
        out["validation"] = _validation_ir(val)
    return out


def _validation_ir(val: dict) -> dict:
    trust = val.get("trust") or {}
    out = {}
    if trust.get("file"):
        out["trusted_ca"] = trust["file"]["certificateChain"]
    elif trust.get("sds"):
        out["sds_secret"] = trust["sds"]["secretName"]
    sans = ((val.get("subjectAlternativeNames") or {}).get("match") or {}).get("exact")
    if sans:
        out["subject_alt_names"] = list(sans)
    return out


def client_tls_ir(policy: dict | None, server_listener: dict, port: int) -> dict | None:
    """How a proxy talks TLS to a backend (APPMESH-FACTS §4.6): a client policy that enforces
    TLS on this port decides; otherwise a STRICT/PERMISSIVE server makes the client originate
    TLS without validating a file-based certificate."""
    tls = (policy or {}).get("tls")
    if tls and tls.get("enforce", True) and (not tls.get("ports") or port in tls["ports"]):
        out = {"validation": _validation_ir(tls.get("validation") or {})}
        cert = tls.get("certificate") or {}
        if cert.get("file"):
            out["certificate_chain"] = cert["file"]["certificateChain"]
            out["private_key"] = cert["file"]["privateKey"]
        return out
    server_tls = server_listener.get("tls") or {}
    if server_tls.get("mode") in ("STRICT", "PERMISSIVE"):
        return {"validation": None}
    return None


# ---- egress: virtual services, routers, clusters --------------------------------------

class _Egress:
    """Collects the virtual services a proxy can reach and the clusters they need."""

    def __init__(self, world: World, placement: Placement, mesh: str, client_policy_for, memo: dict | None = None,
                 changed=None):
        self.world, self.placement, self.mesh = world, placement, mesh
        self.client_policy_for = client_policy_for  # (vs) -> client policy dict or None
        self.clusters: dict[str, dict] = {}
        self.services: dict[str, dict] = {}
        # memo (a gateway's, kept by lab/translate/incremental.py for one placement and client policy):
        # (vs key, port) -> (its entry, the clusters it uses, the keys it read); an entry is taken
        # again when none of those keys is in memo["changed"] (the keys changed since the memo was made)
        self.memo = memo
        self.changed = changed
        self._used: list | None = None  # names of the clusters the virtual service being built uses
        self.kept: set = set()  # memo keys this translation used (the others are dropped after it)

    def cluster_for(self, vs: Resource, vn: Resource, port: int | None) -> str | None:
        listeners = _listeners(vn)
        lst = next((x for x in listeners if _pm(x)[0] == port), None) if port else (listeners[0] if len(listeners) == 1 else None)
        if lst is None:
            return None
        lport, proto = _pm(lst)
        name = naming.egress_cluster(self.mesh, vn.aws_name(), proto, lport)
        if self._used is not None:
            self._used.append(name)
        if name not in self.clusters:
            nid = naming.node_id(self.mesh, "virtualNode", vn.aws_name())
            eps = self.placement.endpoints.get(nid, {}).get(lport, [])
            hc = lst.get("healthCheck")
            od = lst.get("outlierDetection")
            self.clusters[name] = {
                "name": name, "kind": "egress", "protocol": proto, "virtual_node": vn.ref,
                "endpoints": [{"address": a, "port": p} for a, p in eps],
                "tls": client_tls_ir(self.client_policy_for(vs), lst, lport),
                "health_check": None if not hc else {
                    "protocol": hc.get("protocol"), "path": hc.get("path"), "interval_ms": hc.get("intervalMillis"),
                    "timeout_ms": hc.get("timeoutMillis"), "healthy": hc.get("healthyThreshold", 2),
                    "unhealthy": hc.get("unhealthyThreshold")},
                "outlier_detection": None if not od else {
                    "max_server_errors": od["maxServerErrors"], "interval_ms": duration_ms(od["interval"]),
                    "base_ejection_ms": duration_ms(od["baseEjectionDuration"]),
                    "max_ejection_percent": od["maxEjectionPercent"]},
            }
        return name

    def virtual_service(self, vs: Resource, port: int | None = None) -> dict:
        key = (vs.aws_name(), port)
        if key in self.services:
            return self.services[key]
        if self.memo is None:
            return self._virtual_service(vs, port, key)
        mkey = (vs.key, port)
        hit = self.memo.get(mkey)
        self.kept.add(mkey)
        if hit is not None and self.changed is not None and hit[2].isdisjoint(self.changed):
            self.reuse(key, hit)
            return hit[0]
        from ..model.semantics import ReadingWorld
        world, reading = self.world, ReadingWorld(self.world)
        self.world, self._used = reading, []
        reading.begin()
        try:
            out = self._virtual_service(vs, port, key)
        finally:
            keys, kinds = reading.end()
            self.world, used, self._used = world, self._used, None
        if not kinds:  # a lookup by ARN lists a kind: not kept (rare; computed each time)
            self.memo[mkey] = (out, {n: self.clusters[n] for n in used}, keys | {vs.key})
        return out

    def reuse(self, key: tuple, hit: tuple) -> None:
        """Take a virtual service's entry and clusters (a memo entry) as the last translation made them."""
        out, clusters, _ = hit
        self.clusters.update(clusters)
        self.services[key] = out

    def _virtual_service(self, vs: Resource, port: int | None, key: tuple) -> dict:
        provider = vs.spec.get("provider") or {}
        out = {"name": vs.aws_name(), "source": vs.ref, "port": port, "routes": []}
        if "virtualNode" in provider:
            p = provider["virtualNode"]
            vn = self.world.resolve("VirtualNode", p.get("virtualNodeRef"), p.get("virtualNodeARN"), vs)
            cluster = self.cluster_for(vs, vn, port) if vn else None
            if cluster:
                lst = next(x for x in _listeners(vn) if naming.egress_cluster(self.mesh, vn.aws_name(), _pm(x)[1], _pm(x)[0]) == cluster)
                proto = _pm(lst)[1]
                out["routes"].append({
                    "name": f"{vs.aws_name()}-default", "match": {"prefix": "/"},
                    "targets": [{"cluster": cluster, "weight": 1}],
                    "retry": retry_ir(None), "timeout": timeout_ir((lst.get("timeout") or {}).get(proto)),
                    "protocol": proto})
        elif "virtualRouter" in provider:
            p = provider["virtualRouter"]
            vr = self.world.resolve("VirtualRouter", p.get("virtualRouterRef"), p.get("virtualRouterARN"), vs)
            if vr:
                out["router"] = vr.ref
                out["routes"] = self.router_routes(vs, vr, port)
        if not out["routes"]:
            out["no_provider"] = True  # answered with 503, as App Mesh did (APPMESH-FACTS §5)
        self.services[key] = out
        return out

    def router_routes(self, vs: Resource, vr: Resource, port: int | None) -> list[dict]:
        ports = [_pm(x) for x in _listeners(vr)]
        routes = []
        for route in vr.spec.get("routes") or []:
            rtype = next((k for k in ("httpRoute", "http2Route", "grpcRoute") if k in route), None)
            if not rtype:
                continue  # tcpRoute: not reachable through an HTTP egress listener
            body = route[rtype]
            match = body.get("match") or {}
            if port is not None and match.get("port") not in (None, port):
                continue
            if port is None and len(ports) > 1 and match.get("port") is not None and match["port"] != ports[0][0]:
                continue
            targets = []
            for t in (body.get("action") or {}).get("weightedTargets") or []:
                vn = self.world.resolve("VirtualNode", t.get("virtualNodeRef"), t.get("virtualNodeARN"), vr)
                cluster = self.cluster_for(vs, vn, t.get("port")) if vn else None
                if cluster and t.get("weight", 0) > 0:
                    targets.append({"cluster": cluster, "weight": t["weight"]})
            if not targets:
                continue
            routes.append({
                "name": route["name"], "priority": route.get("priority"),
                "match": match_ir(match, grpc=(rtype == "grpcRoute")),
                "targets": targets,
                "retry": retry_ir(body.get("retryPolicy")),
                "timeout": timeout_ir(body.get("timeout")),
                "protocol": {"httpRoute": "http", "http2Route": "http2", "grpcRoute": "grpc"}[rtype],
                "_key": sort_key(route["name"], route.get("priority"), match),
            })
        routes.sort(key=lambda r: r.pop("_key"))
        return routes


def _access_log(r: Resource) -> dict | None:
    f = ((r.spec.get("logging") or {}).get("accessLog") or {}).get("file")
    if not f:
        return None
    fmt = f.get("format") or {}
    out = {"path": f["path"]}
    if fmt.get("json"):
        out["json"] = {kv["key"]: kv["value"] for kv in fmt["json"]}
    elif fmt.get("text") is not None:
        out["text"] = fmt["text"]
    return out


def _pool_ir(pool: dict | None) -> dict | None:
    if not pool:
        return None
    kind, body = next(iter(pool.items()))
    return {"kind": kind, **{re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower(): v for k, v in body.items()}}


# ---- gateways ------------------------------------------------------------------------

def attached_routes(world: World, vg: Resource) -> list[Resource]:
    return [gr for gr in world.by_kind["GatewayRoute"] if (world.gateways_for(gr) or []) == [vg]]


def _attached(world: World, vg: Resource, memo: dict | None) -> list:
    """attached_routes, with each route's answer kept in `memo` while the route is unchanged (not in
    memo["changed"]; the gateways and namespaces it depends on invalidate the whole memo, see
    gateway_ir)."""
    if memo is None:
        return [(gr, gr.key) for gr in attached_routes(world, vg)]
    changed = memo.get("changed")
    old = memo.get("attached", {}) if changed is not None else {}
    new, out = {}, []
    world.by_kind["VirtualGateway"]  # noqa: B018 - what gateways_for reads, for whoever records it
    for gr in world.by_kind["GatewayRoute"]:
        key = gr.key
        hit = old.get(key)
        if hit is not None and key not in changed:
            yes = hit
        else:
            yes = (world.gateways_for(gr) or []) == [vg]
        new[key] = yes
        if yes:
            out.append((gr, key))
    memo["attached"] = new
    return out


# a change to any of these kinds can change what every part of a gateway's translation means
# (which routes attach to it, which mesh a resource is in): a gateway's memo starts over
# (lab/translate/incremental.py), so the parts it keeps may list them
WIDE = frozenset({"Mesh", "Namespace", "VirtualGateway"})


def gateway_ir(world: World, vg: Resource, placement: Placement, memo: dict | None = None) -> dict | None:
    """`memo`: a dict the caller keeps for this gateway from one call to the next, as long as the
    placement, the gateway itself and every mesh and namespace stay the same (lab/translate/
    incremental.py), and before each call sets memo["changed"] to the keys of the resources that
    changed since the call that made it (missing: nothing is reused). The parts of the last
    translation that read none of those keys are taken as they were (each gateway route's entry,
    each virtual service's egress entry and clusters), without reading anything from `world` (what
    they read was read when they were made)."""
    mesh = mesh_name(world, vg)
    if mesh is None:
        return None
    from ..model.semantics import ReadingWorld
    nid = naming.node_id(mesh, "virtualGateway", vg.aws_name())
    client_policy = (vg.spec.get("backendDefaults") or {}).get("clientPolicy")
    reading = ReadingWorld(world) if memo is not None else None  # what each route's translation reads
    egress = _Egress(reading or world, placement, mesh, lambda vs: client_policy,
                     memo.setdefault("services", {}) if memo is not None else None,
                     memo.get("changed") if memo is not None else None)
    changed = egress.changed
    old_routes = memo.get("routes", {}) if changed is not None else {}
    new_routes: dict = {}
    attached = _attached(world, vg, memo)
    egress_port = placement.egress_port(nid)
    egress_listener = naming.internal_egress_listener(egress_port)
    listeners, self_clusters = [], {}
    vg_listeners = _listeners(vg)
    for lst in vg_listeners:
        port, proto = _pm(lst)
        want = {"http": "httpRoute", "http2": "http2Route", "grpc": "grpcRoute"}[proto]
        redirect = naming.self_redirect_cluster(mesh, vg.aws_name(), proto, egress_port,
                                                port if len(vg_listeners) > 1 else None)
        self_clusters[redirect] = {"name": redirect, "kind": "self_redirect", "protocol": proto,
                                   "endpoints": [{"internal_listener": egress_listener}],
                                   "tls": None, "health_check": None, "outlier_detection": None,
                                   "connection_pool": _pool_ir(lst.get("connectionPool"))}
        routes = []
        # this listener's part of the memo: route key -> (entry, keys it read, its service's memo entry)
        old_entries = old_routes.get((want, port, redirect), {})
        new_entries = new_routes.setdefault((want, port, redirect), {})
        for gr, key in attached:
            hit = old_entries.get(key)
            if hit is not None and hit[1].isdisjoint(changed):  # (entry, reads, its service's memo entry)
                new_entries[key] = hit
                if hit[0] is not None:
                    egress.kept.add(hit[2][0])
                    egress.reuse(hit[2][1], hit[2][2])
                    routes.append(hit[0])
                continue
            if reading is not None:
                reading.begin()
            entry, service = _gateway_route(reading or world, egress, gr, want, port, mesh, redirect)
            if reading is not None:
                keys, kinds = reading.end()
                if kinds <= WIDE and (service is None or service[0] in egress.memo):
                    new_entries[key] = (entry, keys | {key} | (egress.memo[service[0]][2] if service else set()),
                                        service and (service[0], service[1], egress.memo[service[0]]))
            if entry is not None:
                routes.append(entry)
        routes = [r for _, r in sorted(routes, key=_first)]
        hc = lst.get("healthCheck")
        listeners.append({
            "port": port, "bind_port": placement.bind_port(nid, port), "protocol": proto,
            "tls": listener_tls_ir(lst.get("tls")),
            "health_check_path": hc.get("path") if hc and hc.get("protocol") in ("http", "http2") else None,
            "routes": routes,
        })
    if memo is not None:
        memo.pop("changed", None)
        memo["routes"] = new_routes
        if memo["services"].keys() - egress.kept:
            memo["services"] = {k: v for k, v in memo["services"].items() if k in egress.kept}
    return {
        "kind": "gateway", "node_id": nid, "source": vg.ref, "mesh": mesh,
        "bind_address": placement.bind_address, "access_log": _access_log(vg),
        "listeners": listeners,
        "egress": {"bind_port": egress_port, "internal_listener": egress_listener, "mode": "internal",
                   "virtual_services": _sorted_services(egress, memo)},
        "clusters": [self_clusters.get(n) or egress.clusters[n] for n in sorted(self_clusters.keys() | egress.clusters.keys())],
    }


def _first(entry: tuple):
    return entry[0]


def _gateway_route(world: World, egress: _Egress, gr: Resource, want: str, port: int, mesh: str,
                   redirect: str) -> tuple:
    """One gateway route on one listener: ((its precedence, its entry) or None when it does not
    apply there, (the memo key, services key) of the virtual service it reaches or None)."""
    body = gr.spec.get(want)
    if not isinstance(body, dict):
        return None, None
    match = body.get("match") or {}
    if match.get("port") not in (None, port):
        return None, None
    action = body.get("action") or {}
    target = action.get("target") or {}
    vsref = target.get("virtualService") or {}
    vs = world.resolve("VirtualService", vsref.get("virtualServiceRef"), vsref.get("virtualServiceARN"), gr)
    if vs is None or mesh_name(world, vs) != mesh:  # inactive (see status.py): falls through
        return None, None
    egress.virtual_service(vs, target.get("port"))
    entry = (sort_key(gr.aws_name(), gr.spec.get("priority"), match), {
        "name": gr.aws_name(), "source": gr.ref, "priority": gr.spec.get("priority"),
        "match": match_ir(match, grpc=(want == "grpcRoute")),
        "rewrite": gateway_rewrite_ir(match, action, vs.aws_name(), grpc=(want == "grpcRoute")),
        "target": {"virtual_service": vs.aws_name(), "port": target.get("port")},
        "cluster": redirect,
    })
    return entry, ((vs.key, target.get("port")), (vs.aws_name(), target.get("port")))


def _service_order(k: tuple) -> tuple:
    return (k[0], k[1] or 0)


def _sorted_services(egress: _Egress, memo: dict | None = None) -> list[dict]:
    """The services by name and port; with a memo, the last call's order when the keys are the same."""
    keys = list(egress.services)
    last = memo.get("service_order") if memo is not None else None
    if last is not None and last[0] == keys:
        order = last[1]
    else:
        order = sorted(keys, key=_service_order)
        if memo is not None:
            memo["service_order"] = (keys, order)
    services = egress.services
    return [services[k] for k in order]


# ---- sidecars ------------------------------------------------------------------------

def sidecar_ir(world: World, vn: Resource, placement: Placement) -> dict | None:
    mesh_r = world.mesh_of(vn)
    if mesh_r is None:
        return None
    mesh = mesh_r.aws_name()
    nid = naming.node_id(mesh, "virtualNode", vn.aws_name())
    defaults = (vn.spec.get("backendDefaults") or {}).get("clientPolicy")
    per_backend = {}
    backends = []
    for b in vn.spec.get("backends") or []:
        v = b.get("virtualService") or {}
        vs = world.resolve("VirtualService", v.get("virtualServiceRef"), v.get("virtualServiceARN"), vn)
        if vs is not None:
            backends.append(vs)
            per_backend[vs.key] = v.get("clientPolicy")
    egress = _Egress(world, placement, mesh, lambda vs: per_backend.get(vs.key) or defaults)
    for vs in backends:
        egress.virtual_service(vs)
    ingress, app_clusters = [], []
    for lst in _listeners(vn):
        port, proto = _pm(lst)
        app = placement.apps.get(nid, {}).get(port, ["127.0.0.1", port])
        cluster = naming.local_app_cluster(mesh, vn.aws_name(), proto, port)
        app_clusters.append({"name": cluster, "kind": "local_app", "protocol": proto,
                             "endpoints": [{"address": app[0], "port": app[1]}], "tls": None,
                             "health_check": None, "outlier_detection": None,
                             "connection_pool": _pool_ir(lst.get("connectionPool"))})
        hc = lst.get("healthCheck")
        ingress.append({
            "port": port, "bind_port": placement.bind_port(nid, port), "protocol": proto,
            "tls": listener_tls_ir(lst.get("tls")), "cluster": cluster,
            "timeout": timeout_ir((lst.get("timeout") or {}).get(proto),
                                  fallback_ms=DEFAULT_PER_REQUEST_MS if proto != "tcp" else None),
            "health_check_path": hc.get("path") if hc and hc.get("protocol") in ("http", "http2") else None,
        })
    egress_filter = ((mesh_r.spec.get("egressFilter") or {}).get("type")) or "DROP_ALL"
    return {
        "kind": "sidecar", "node_id": nid, "source": vn.ref, "mesh": mesh,
        "bind_address": placement.bind_address, "access_log": _access_log(vn),
        "ingress": ingress,
        "egress": {"bind_port": placement.egress_port(nid), "bind_address": placement.bind_address, "mode": "hosts",
                   "egress_filter": egress_filter, "virtual_services": _sorted_services(egress)},
        "clusters": sorted(app_clusters + list(egress.clusters.values()), key=lambda c: c["name"]),
    }


def build(world: World, placement: Placement) -> dict[str, dict]:
    """Every proxy's IR, keyed by node id."""
    out = {}
    for vg in world.by_kind["VirtualGateway"]:
        ir = gateway_ir(world, vg, placement)
        if ir:
            out[ir["node_id"]] = ir
    for vn in world.by_kind["VirtualNode"]:
        ir = sidecar_ir(world, vn, placement)
        if ir:
            out[ir["node_id"]] = ir
    return dict(sorted(out.items()))
