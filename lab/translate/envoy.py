"""Stage two: the per-proxy IR -> Envoy v3 resources, as proto3-JSON dicts.

Pure data: the xds layer parses these into protobuf messages. Output per proxy:
{"clusters": [...], "endpoints": [...], "listeners": [...], "routes": [...]}
"""
from __future__ import annotations

import operator

from . import naming

T = "type.googleapis.com/"
HCM = T + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = T + "envoy.extensions.filters.http.router.v3.Router"
TCP_PROXY = T + "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
FILE_LOG = T + "envoy.extensions.access_loggers.file.v3.FileAccessLog"
DOWNSTREAM_TLS = T + "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
UPSTREAM_TLS = T + "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
HTTP_OPTIONS = T + "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
HEALTH_FILTER = T + "envoy.extensions.filters.http.health_check.v3.HealthCheck"
TLS_INSPECTOR = T + "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"
DFP_FILTER = T + "envoy.extensions.filters.http.dynamic_forward_proxy.v3.FilterConfig"
DFP_CLUSTER = T + "envoy.extensions.clusters.dynamic_forward_proxy.v3.ClusterConfig"
INTERNAL_UPSTREAM = T + "envoy.extensions.transport_sockets.internal_upstream.v3.InternalUpstreamTransport"
RAW_BUFFER = T + "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"

ADS = {"ads": {}, "resource_api_version": "V3"}
UNLIMITED = 2147483647  # App Mesh's circuit-breaker defaults (APPMESH-FACTS §6.7)
CONNECT_TIMEOUT = "1s"


def _dur(ms: int | None) -> str | None:
    if ms is None:
        return None
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms / 1000:.3f}s"


def _addr(address: str, port: int) -> dict:
    return {"socket_address": {"address": address, "port_value": int(port)}}


def _endpoint_addr(e: dict) -> dict:
    """An endpoint: a socket address, or an internal listener of the same Envoy (in memory)."""
    if "internal_listener" in e:
        return {"envoy_internal_address": {"server_listener_name": e["internal_listener"]}}
    return _addr(e["address"], e["port"])


def _internal_upstream() -> dict:
    return {"name": "envoy.transport_sockets.internal_upstream", "typed_config": {
        "@type": INTERNAL_UPSTREAM,
        "transport_socket": {"name": "envoy.transport_sockets.raw_buffer", "typed_config": {"@type": RAW_BUFFER}}}}


# ---- matching --------------------------------------------------------------------------

def _header(h: dict) -> dict:
    out = {"name": h["name"]}
    if h.get("present"):
        out["present_match"] = True
    elif "range" in h:
        out["range_match"] = {"start": str(h["range"]["start"]), "end": str(h["range"]["end"])}
    elif "regex" in h:
        out["string_match"] = {"safe_regex": {"regex": h["regex"]}}
    else:
        kind = next(k for k in ("exact", "prefix", "suffix") if k in h)
        out["string_match"] = {kind: h[kind]}
    if h.get("invert"):
        out["invert_match"] = True
    return out


def route_match(m: dict, extra_headers=()) -> dict:
    out: dict = {}
    path = m.get("path") or {}
    if "exact" in path:
        out["path"] = path["exact"]
    elif "regex" in path:
        out["safe_regex"] = {"regex": path["regex"]}  # RE2, matched against the whole path
    elif "path_separated_prefix" in m:  # Gateway API's PathPrefix: whole path segments
        out["path_separated_prefix"] = m["path_separated_prefix"]
    else:
        out["prefix"] = m.get("prefix", "/")
    headers = [_header(h) for h in m.get("headers") or []] + list(extra_headers)
    if headers:
        out["headers"] = headers
    if m.get("query"):
        out["query_parameters"] = [
            {"name": q["name"], "present_match": True} if q.get("present")
            else {"name": q["name"], "string_match": {"safe_regex": {"regex": q["regex"]}}} if "regex" in q
            else {"name": q["name"], "string_match": {"exact": q["exact"]}} for q in m["query"]]
    return out


# ---- retries and timeouts ------------------------------------------------------------

_HTTP_EVENTS = {"server-error": ["5xx"], "gateway-error": ["gateway-error"], "client-error": ["retriable-status-codes"],
                "stream-error": ["refused-stream"]}


def retry_policy(r: dict) -> dict | None:
    on, codes = [], []
    for e in r.get("http_events") or []:
        if e == "gateway-error-503":  # the invisible default: retry a 503
            on.append("retriable-status-codes")
            codes.append(503)
            continue
        on += _HTTP_EVENTS[e]
        if e == "client-error":
            codes.append(409)
        if e in ("server-error", "gateway-error"):
            on.append("reset")  # App Mesh: these include Envoy's reset policy
    if "connection-error" in (r.get("tcp_events") or []):
        on.append("connect-failure")
        if r.get("default"):
            on.append("refused-stream")
    on += list(r.get("grpc_events") or [])
    if r.get("reset"):
        on.append("reset")
    if r.get("default"):
        on.append("unavailable")
    if not on:
        return None
    out = {"retry_on": ",".join(dict.fromkeys(on)), "num_retries": r.get("max_retries", 0)}
    if codes:
        out["retriable_status_codes"] = sorted(set(codes))
    if r.get("per_try_timeout_ms") is not None:
        out["per_try_timeout"] = _dur(r["per_try_timeout_ms"])
    return out


def _route_action(targets, timeout: dict | None, retry: dict | None) -> dict:
    if len(targets) == 1:
        action = {"cluster": targets[0]["cluster"]}
    else:
        action = {"weighted_clusters": {"clusters": [{"name": t["cluster"], "weight": t["weight"]} for t in targets]}}
    if timeout is not None:
        action["timeout"] = _dur(timeout["per_request_ms"]) if timeout.get("per_request_ms") is not None else "0s"
        if timeout.get("idle_ms") is not None:
            action["idle_timeout"] = _dur(timeout["idle_ms"])
    if retry:
        rp = retry_policy(retry)
        if rp:
            action["retry_policy"] = rp
    return action


# ---- TLS -----------------------------------------------------------------------------

def _file(path: str, files: dict) -> dict:
    return {"filename": files.get(path, path)}


def _validation(v: dict | None, files: dict) -> dict | None:
    if not v:
        return None
    out = {}
    if v.get("trusted_ca"):
        out["trusted_ca"] = _file(v["trusted_ca"], files)
    if v.get("subject_alt_names"):
        out["match_typed_subject_alt_names"] = [{"san_type": t, "matcher": {"exact": s}}
                                                for s in v["subject_alt_names"] for t in ("DNS", "URI")]
    return out or None


def downstream_tls(tls: dict, files: dict) -> dict:
    common = {"tls_certificates": [{"certificate_chain": _file(c["certificate_chain"], files),
                                    "private_key": _file(c["private_key"], files)}
                                   for c in [tls] + list(tls.get("more_certificates") or [])]}
    ctx = {"@type": DOWNSTREAM_TLS, "common_tls_context": common}
    val = _validation(tls.get("validation"), files)
    if val:
        common["validation_context"] = val
        ctx["require_client_certificate"] = True
    return {"name": "envoy.transport_sockets.tls", "typed_config": ctx}


def upstream_tls(tls: dict, sni: str | None, files: dict) -> dict:
    common: dict = {}
    if tls.get("certificate_chain"):
        common["tls_certificates"] = [{"certificate_chain": _file(tls["certificate_chain"], files),
                                       "private_key": _file(tls["private_key"], files)}]
    val = _validation(tls.get("validation"), files)
    if val:
        common["validation_context"] = val
    ctx = {"@type": UPSTREAM_TLS, "common_tls_context": common}
    if sni:
        ctx["sni"] = sni
    return {"name": "envoy.transport_sockets.tls", "typed_config": ctx}


# ---- listeners -----------------------------------------------------------------------

def _access_logs(log: dict | None) -> list:
    if not log:
        return []
    cfg = {"@type": FILE_LOG, "path": log["path"]}
    if log.get("json"):
        cfg["log_format"] = {"json_format": log["json"]}
    elif log.get("text") is not None:
        text = log["text"] if log["text"].endswith("\n") else log["text"] + "\n"
        cfg["log_format"] = {"text_format_source": {"inline_string": text}}
    return [{"name": "envoy.access_loggers.file", "typed_config": cfg}]


def hcm(stat_prefix: str, route_name: str, *, access_log=None, health_path=None, forward_proxy=False,
        idle_ms=None, websocket=False) -> dict:
    filters = []
    if health_path:
        filters.append({"name": "envoy.filters.http.health_check", "typed_config": {
            "@type": HEALTH_FILTER, "pass_through_mode": False,
            "headers": [{"name": ":path", "string_match": {"exact": health_path}}]}})
    if forward_proxy:
        filters.append({"name": "envoy.filters.http.dynamic_forward_proxy", "typed_config": {
            "@type": DFP_FILTER, "dns_cache_config": _dns_cache()}})
    filters.append({"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}})
    cfg = {
        "@type": HCM, "stat_prefix": stat_prefix, "codec_type": "AUTO",
        "rds": {"route_config_name": route_name, "config_source": ADS},
        "http_filters": filters,
        # App Mesh turns on path normalisation for path and prefix matching (APPMESH-FACTS §1.3)
        "normalize_path": True, "merge_slashes": True,
        # virtual hosts are matched on the host name alone; the egress listener of a mesh that
        # lets traffic out (ALLOW_ALL) keeps the port instead, because its forward proxy dials the
        # host and port in the Host header (a stripped port would send the request to port 80),
        # and its route configuration ignores the port when matching (ignore_port_in_host_matching)
        "strip_any_host_port": not forward_proxy,
        "access_log": _access_logs(access_log),
    }
    if websocket:
        cfg["upgrade_configs"] = [{"upgrade_type": "websocket"}]
    if idle_ms is not None:
        cfg["common_http_protocol_options"] = {"idle_timeout": _dur(idle_ms)}
    if not cfg["access_log"]:
        del cfg["access_log"]
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": cfg}


def _dns_cache() -> dict:
    return {"name": "appmesh_lab_allow_all", "dns_lookup_family": "V4_ONLY"}


def listener(name: str, address: str, port: int, network_filter: dict, tls: dict | None, files: dict) -> dict:
    out = {"name": name, "address": _addr(address, port), "filter_chains": []}
    if tls is None:
        out["filter_chains"] = [{"filters": [network_filter]}]
        return out
    secure = {"filters": [network_filter], "transport_socket": downstream_tls(tls, files)}
    if tls["mode"] == "PERMISSIVE":  # TLS and plaintext on one port, told apart by the TLS inspector
        out["listener_filters"] = [{"name": "envoy.filters.listener.tls_inspector", "typed_config": {"@type": TLS_INSPECTOR}}]
        secure["filter_chain_match"] = {"transport_protocol": "tls"}
        out["filter_chains"] = [secure, {"filter_chain_match": {"transport_protocol": "raw_buffer"}, "filters": [network_filter]}]
    else:
        out["filter_chains"] = [secure]
    return out


# ---- clusters ------------------------------------------------------------------------

def cluster(c: dict, files: dict) -> tuple[dict, dict]:
    out = {
        "name": c["name"], "type": "EDS", "connect_timeout": CONNECT_TIMEOUT, "lb_policy": "ROUND_ROBIN",
        "eds_cluster_config": {"eds_config": ADS, "service_name": c["name"]},
    }
    pool = c.get("connection_pool") or {}
    out["circuit_breakers"] = {"thresholds": [{
        "max_connections": pool.get("max_connections", UNLIMITED),
        "max_pending_requests": pool.get("max_pending_requests", UNLIMITED),
        "max_requests": pool.get("max_requests", UNLIMITED),
        "max_retries": UNLIMITED,
    }]}
    if c["protocol"] in ("http2", "grpc"):
        out["typed_extension_protocol_options"] = {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": HTTP_OPTIONS, "explicit_http_config": {"http2_protocol_options": {}}}}
    if c.get("tls") is not None:
        out["transport_socket"] = upstream_tls(c["tls"], None, files)
    elif any("internal_listener" in e for e in c["endpoints"]):
        out["transport_socket"] = _internal_upstream()
    od = c.get("outlier_detection")
    if od:
        out["outlier_detection"] = {"consecutive_5xx": od["max_server_errors"], "interval": _dur(od["interval_ms"]),
                                    "base_ejection_time": _dur(od["base_ejection_ms"]),
                                    "max_ejection_percent": od["max_ejection_percent"]}
    hc = c.get("health_check")
    if hc:
        check = {"timeout": _dur(hc["timeout_ms"]), "interval": _dur(hc["interval_ms"]),
                 "healthy_threshold": hc["healthy"], "unhealthy_threshold": hc["unhealthy"]}
        if hc["protocol"] in ("http", "http2"):
            check["http_health_check"] = {"path": hc.get("path") or "/"}
        elif hc["protocol"] == "grpc":
            check["grpc_health_check"] = {}
        else:
            check["tcp_health_check"] = {}
        out["health_checks"] = [check]
    cla = {"cluster_name": c["name"], "endpoints": [{"lb_endpoints": [
        {"endpoint": {"address": _endpoint_addr(e)}} for e in c["endpoints"]]}]}
    return out, cla


# ---- egress routes -------------------------------------------------------------------

def _service_routes(vs: dict, extra_headers=()) -> list[dict]:
    if vs.get("no_provider"):
        return [{"name": f"{vs['name']}-no-provider", "match": {"prefix": "/", "headers": list(extra_headers)}
                 if extra_headers else {"prefix": "/"},
                 "direct_response": {"status": 503, "body": {"inline_string":
                                     f"virtual service {vs['name']} has no provider (or no route of its router matches)\n"}}}]
    out = []
    for r in vs["routes"]:
        out.append({"name": r["name"], "match": route_match(r["match"], extra_headers),
                    "route": _route_action(r["targets"], r["timeout"], r["retry"])})
    return out


class _Same:
    """Results kept from one call to the next for the same input objects (a gateway's memo, see
    to_envoy): `get(item, make)` is make(item), or the last call's result when `item` is the very
    object it was made from. Only this call's items are kept for the next."""

    def __init__(self, memo: dict | None, name: str):
        self.old = memo.get(name, {}) if memo is not None else None
        self.new: dict = {}
        if memo is not None:
            memo[name] = self.new

    def get(self, item, make):
        if self.old is None:
            return make(item)
        hit = self.old.get(id(item))
        out = hit[1] if hit is not None and hit[0] is item else make(item)
        self.new[id(item)] = (item, out)
        return out

    def map(self, items, make) -> list:
        """[get(item, make) for item in items], in one loop."""
        if self.old is None:
            return [make(item) for item in items]
        old, new, out = self.old, self.new, []
        for item in items:
            hit = old.get(id(item))
            if hit is None or hit[0] is not item:
                hit = (item, make(item))
            new[id(item)] = hit
            out.append(hit[1])
        return out


def _internal_service_routes(vs: dict) -> list[dict]:
    headers = [{"name": naming.TARGET_HEADER, "string_match": {"exact": vs["name"]}}]
    if vs.get("port") is not None:
        headers.append({"name": naming.TARGET_PORT_HEADER, "string_match": {"exact": str(vs["port"])}})
    return _service_routes(vs, headers)


def egress_route_config(ir: dict, memo: dict | None = None) -> dict:
    eg = ir["egress"]
    name = naming.egress_routes(eg["bind_port"])
    if eg["mode"] == "internal":
        # the gateway's own egress: the gateway route's choice arrives in internal headers
        same = _Same(memo, "egress_routes")
        routes = [r for routes in same.map(eg["virtual_services"], _internal_service_routes) for r in routes]
        vhosts = [{"name": "egress", "domains": ["*"], "routes": routes,
                   "request_headers_to_remove": [naming.TARGET_HEADER, naming.TARGET_PORT_HEADER]}]
        return {"name": name, "virtual_hosts": vhosts}
    vhosts = []
    for vs in eg["virtual_services"]:
        vhosts.append({"name": vs["name"], "domains": [vs["name"]], "routes": _service_routes(vs)})
    if eg["egress_filter"] == "ALLOW_ALL":
        vhosts.append({"name": "allow_all", "domains": ["*"], "routes": [{
            "name": "allow_all", "match": {"prefix": "/"},
            "route": {"cluster": naming.allow_all_cluster(ir["mesh"]), "timeout": "15s"}}]})
    else:
        vhosts.append({"name": "drop_all", "domains": ["*"], "routes": [{
            "name": "drop_all", "match": {"prefix": "/"},
            "direct_response": {"status": 404, "body": {"inline_string":
                                "not a backend of this virtual node, and the mesh's egressFilter is DROP_ALL\n"}}}]})
    out = {"name": name, "virtual_hosts": vhosts}
    if eg["egress_filter"] == "ALLOW_ALL":
        out["ignore_port_in_host_matching"] = True  # see hcm(): the Host header keeps its port here
    return out


def _allow_all_cluster(mesh: str) -> dict:
    return {"name": naming.allow_all_cluster(mesh), "connect_timeout": "2s", "lb_policy": "CLUSTER_PROVIDED",
            "cluster_type": {"name": "envoy.clusters.dynamic_forward_proxy",
                             "typed_config": {"@type": DFP_CLUSTER, "dns_cache_config": _dns_cache()}}}


# ---- per proxy -----------------------------------------------------------------------

def _log_file(ir: dict, files: dict) -> dict | None:
    """The proxy's access log, its path as the target maps it (the local lab: inside the pod's folder)."""
    log = ir.get("access_log")
    return {**log, "path": files.get(log["path"], log["path"])} if log else None


def _gateway_route(r: dict) -> dict:
    """One gateway route of the first stage: rewrite, then on to the egress stage with the target in headers."""
    rw = r["rewrite"]
    action = {"cluster": r["cluster"], "timeout": "0s"}  # the egress route's timeout governs
    if "prefix" in rw:
        action["prefix_rewrite"] = rw["prefix"]
    if "path_regex" in rw:
        action["regex_rewrite"] = {"pattern": {"regex": rw["path_regex"]["pattern"]},
                                   "substitution": rw["path_regex"]["substitution"]}
    if "host" in rw:
        action["host_rewrite_literal"] = rw["host"]
    add = [{"header": {"key": naming.TARGET_HEADER, "value": r["target"]["virtual_service"]},
            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}]
    if r["target"].get("port") is not None:
        add.append({"header": {"key": naming.TARGET_PORT_HEADER, "value": str(r["target"]["port"])},
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"})
    return {"name": r["name"], "match": route_match(r["match"]), "route": action,
            "request_headers_to_add": add}


def gateway(ir: dict, files: dict, memo: dict | None = None) -> dict:
    listeners, routes = [], []
    by_port: dict = {}  # bind port -> the Envoy listener (HTTPS listeners of one port: one filter chain each)
    same = _Same(memo, "gateway_routes")
    for lst in ir["listeners"]:
        rname = naming.ingress_routes(lst["port"]) + (f"_{lst['section']}" if lst.get("section") else "")
        vroutes = same.map(lst["routes"], _gateway_route)
        # A client cannot pick a target by sending the internal headers itself: every route
        # overwrites them, and a request that matches no route never reaches the egress listener.
        routes.append({"name": rname, "virtual_hosts": [{"name": "gateway", "domains": ["*"], "routes": vroutes}]})
        f = hcm(f"ingress_{lst['port']}", rname, access_log=_log_file(ir, files),
                health_path=lst.get("health_check_path"), websocket=lst["protocol"] == "http")
        out = listener(naming.ingress_listener(ir["bind_address"], lst["port"]), ir["bind_address"],
                       lst["bind_port"], f, lst.get("tls"), files)
        if lst.get("server_names"):  # SNI, which the TLS inspector reads: a Gateway API listener's hostname
            for chain in out["filter_chains"]:
                chain.setdefault("filter_chain_match", {})["server_names"] = list(lst["server_names"])
            out["listener_filters"] = [{"name": "envoy.filters.listener.tls_inspector",
                                        "typed_config": {"@type": TLS_INSPECTOR}}]
        if lst["bind_port"] in by_port:
            by_port[lst["bind_port"]]["filter_chains"] += out["filter_chains"]
            if out.get("listener_filters"):
                by_port[lst["bind_port"]]["listener_filters"] = out["listener_filters"]
        else:
            by_port[lst["bind_port"]] = out
            listeners.append(out)
    return _finish(ir, listeners, routes, files, memo)


def sidecar(ir: dict, files: dict) -> dict:
    listeners, routes = [], []
    for lst in ir["ingress"]:
        name = naming.ingress_listener(ir["bind_address"], lst["port"])
        if lst["protocol"] == "tcp":
            f = {"name": "envoy.filters.network.tcp_proxy", "typed_config": {
                "@type": TCP_PROXY, "stat_prefix": f"ingress_{lst['port']}", "cluster": lst["cluster"]}}
            if lst["timeout"].get("idle_ms") is not None:
                f["typed_config"]["idle_timeout"] = _dur(lst["timeout"]["idle_ms"])
        else:
            rname = naming.ingress_routes(lst["port"])
            routes.append({"name": rname, "virtual_hosts": [{"name": "local_app", "domains": ["*"], "routes": [{
                "name": "local_app", "match": {"prefix": "/"},
                "route": _route_action([{"cluster": lst["cluster"]}], lst["timeout"], None)}]}]})
            # App Mesh documents that a virtual gateway's http listener lets a connection switch to
            # WebSocket (APPMESH-FACTS §4.1); it says nothing of a virtual node's. The kit's decision:
            # an http listener of a virtual node accepts the upgrade too, or a gateway's WebSocket
            # would end in a 403 here. http2 and grpc listeners do not (no HTTP/1.1 upgrade there).
            f = hcm(f"ingress_{lst['port']}", rname, access_log=_log_file(ir, files),
                    health_path=lst.get("health_check_path"), idle_ms=lst["timeout"].get("idle_ms"),
                    websocket=lst["protocol"] == "http")
        listeners.append(listener(name, ir["bind_address"], lst["bind_port"], f, lst.get("tls"), files))
    return _finish(ir, listeners, routes, files)


def _finish(ir: dict, listeners: list, routes: list, files: dict, memo: dict | None = None) -> dict:
    eg = ir["egress"]
    egress_rc = egress_route_config(ir, memo)
    allow_all = eg["mode"] == "hosts" and eg.get("egress_filter") == "ALLOW_ALL"
    # the access log is on the egress stage too (App Mesh's proxies log outbound requests as well):
    # a gateway reaches every virtual service through it, so the stage that times out, retries or
    # finds no endpoint, and sets the response flag (UT, URX, UH, UF), is this one
    # it also lets a WebSocket through: the gateway's first stage accepts the upgrade, and the
    # request crosses this stage on its way to the virtual service (without it Envoy answers 403)
    egress_filter = hcm(f"egress_{eg['bind_port']}", egress_rc["name"], forward_proxy=allow_all,
                        access_log=_log_file(ir, files), websocket=True)
    if eg.get("internal_listener"):  # the gateway's egress: no socket, reached only from inside the Envoy
        listeners.append({"name": eg["internal_listener"], "internal_listener": {},
                          "filter_chains": [{"filters": [egress_filter]}]})
    else:
        listeners.append(listener(naming.egress_listener(eg["bind_address"], eg["bind_port"]), eg["bind_address"],
                                  eg["bind_port"], egress_filter, None, files))
    routes.append(egress_rc)
    clusters, endpoints = [], []
    same = _Same(memo, "clusters")
    for cl, cla in same.map(ir["clusters"], lambda c: cluster(c, files)):
        clusters.append(cl)
        endpoints.append(cla)
    if allow_all:
        clusters.append(_allow_all_cluster(ir["mesh"]))
    return {"clusters": sorted(clusters, key=_NAME),
            "endpoints": sorted(endpoints, key=_CLUSTER_NAME),
            "listeners": listeners, "routes": routes}


_NAME = operator.itemgetter("name")
_CLUSTER_NAME = operator.itemgetter("cluster_name")


def to_envoy(ir: dict, files: dict | None = None, memo: dict | None = None) -> dict:
    """`memo`: a dict the caller keeps for one gateway from one call to the next, as long as `files`
    stay the same (lab/translate/incremental.py): an IR part that is the very object of the last
    call (gateway_ir's memo hands those out) keeps its Envoy dicts."""
    files = files or {}
    return gateway(ir, files, memo) if ir["kind"] == "gateway" else sidecar(ir, files)
