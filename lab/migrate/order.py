"""Where Gateway API's fixed precedence picks a different route than App Mesh's order.

App Mesh tries routes by priority (lab/translate/precedence.py). Gateway API has no priority:
among the rules that match a request it prefers (HTTPRoute, v1.6.1 spec)
  1. the route with the longest matching non-wildcard hostname, then the longest hostname;
  2. an Exact path, then the longest PathPrefix;
  3. a method match; 4. more header matches; 5. more query parameter matches;
  6. the oldest route, then {namespace}/{name} alphabetically; within one route, the first rule.
GRPCRoute: hostnames, then the longest matching service, the longest method, more headers.

For each pair of rules on one parent that can match the same request, this module builds
that request and compares the two winners.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass
class Entry:
    """One App Mesh route as exported: its App Mesh match (lab semantics) and its GW API match."""
    ref: str  # e.g. GatewayRoute ex/api
    route: str  # the exported object's namespace/name
    rule: int  # index of the rule inside the exported object
    appmesh_key: tuple
    match: dict  # the App Mesh match
    gw: dict  # the Gateway API match
    hostnames: list = field(default_factory=list)
    grpc: bool = False
    where: tuple = ()  # (resource, field path) for the finding


def _gw_key(e: Entry, host: str) -> tuple:
    exact_host = max((len(h) for h in e.hostnames if not h.startswith("*") and h == host), default=0)
    any_host = max((len(h) for h in e.hostnames), default=0)
    if e.grpc:
        m = e.gw.get("method") or {}
        return (exact_host, any_host, len(m.get("service") or ""), len(m.get("method") or ""),
                len(e.gw.get("headers") or []))
    p = e.gw.get("path") or {}
    rank = {"Exact": 2, "PathPrefix": 1}.get(p.get("type"), 0)
    return (exact_host, any_host, rank, len(p.get("value") or "") if rank == 1 else 0,
            1 if e.gw.get("method") else 0, len(e.gw.get("headers") or []), len(e.gw.get("queryParams") or []))


# ---- a request both rules match --------------------------------------------------------------

def _path_for(a: dict, b: dict, grpc: bool) -> str | None:
    def cands(m):
        if grpc:
            if m.get("serviceName"):
                return [f"/{m['serviceName']}/{m.get('methodName') or 'Call'}"]
            return []
        p = m.get("path") or {}
        if p.get("exact") is not None:
            return [p["exact"]]
        if m.get("prefix") is not None:
            pre = m["prefix"]
            return [pre + ("x" if pre.endswith("/") else "/x"), pre]
        return []
    for path in cands(a) + cands(b) + ["/x"]:
        if _path_ok(a, path, grpc) and _path_ok(b, path, grpc):
            return path
    return None


def _path_ok(m: dict, path: str, grpc: bool) -> bool:
    if grpc:
        if m.get("serviceName"):
            want = f"/{m['serviceName']}/" + (m.get("methodName") or "")
            return path == want if m.get("methodName") else path.startswith(want)
        return True
    p = m.get("path") or {}
    if p.get("exact") is not None:
        return path == p["exact"]
    if p.get("regex") is not None:
        try:
            return re.fullmatch(p["regex"], path) is not None
        except re.error:
            return False
    if m.get("prefix") is not None:
        return path.startswith(m["prefix"])
    return True


def _value_for(h: dict) -> str | None:
    m = h.get("match") or {}
    if h.get("invert"):
        return "other-than-" + str(m.get("exact") or m.get("prefix") or m.get("suffix") or "x")
    if not m:
        return "1"
    if m.get("exact") is not None:
        return m["exact"]
    if m.get("prefix") is not None:
        return m["prefix"] + "1"
    if m.get("suffix") is not None:
        return "a" + m["suffix"]
    if m.get("range"):
        return str(m["range"]["start"])
    return None  # a regular expression: no value is made up for it


def _header_ok(h: dict, value: str | None) -> bool:
    m = h.get("match") or {}
    if value is None:
        return bool(h.get("invert"))
    if not m:
        ok = True
    elif m.get("exact") is not None:
        ok = value == m["exact"]
    elif m.get("prefix") is not None:
        ok = value.startswith(m["prefix"])
    elif m.get("suffix") is not None:
        ok = value.endswith(m["suffix"])
    elif m.get("regex") is not None:
        try:
            ok = re.search(m["regex"], value) is not None
        except re.error:
            ok = False
    elif m.get("range"):
        ok = value.lstrip("-").isdigit() and int(m["range"]["start"]) <= int(value) < int(m["range"]["end"])
    else:
        ok = True
    return ok != bool(h.get("invert"))


def _host_for(a: dict, b: dict) -> tuple[str | None, bool]:
    hosts = []
    for m in (a, b):
        h = m.get("hostname") or {}
        if h.get("exact"):
            hosts.append(h["exact"].lower())
        elif h.get("suffix"):
            s = h["suffix"].lower()
            hosts.append(("www" if s.startswith(".") else "www.") + s)
    hosts.append("example.test")
    for host in hosts:
        if _host_ok(a, host) and _host_ok(b, host):
            return host, True
    return None, False


def _host_ok(m: dict, host: str) -> bool:
    h = m.get("hostname") or {}
    if h.get("exact"):
        return host == h["exact"].lower()
    if h.get("suffix"):
        return host.endswith(h["suffix"].lower())
    return True


def common_request(a: dict, b: dict, grpc: bool = False) -> dict | None:
    """A request matched by both App Mesh matches, or None when none can be built."""
    if a.get("port") is not None and b.get("port") is not None and a["port"] != b["port"]:
        return None
    path = _path_for(a, b, grpc)
    if path is None:
        return None
    if not grpc and a.get("method") and b.get("method") and a["method"] != b["method"]:
        return None
    host, ok = _host_for(a, b)
    if not ok:
        return None
    key = "metadata" if grpc else "headers"
    headers: dict = {}
    for h in (a.get(key) or []) + (b.get(key) or []):
        name = h["name"].lower()
        if name not in headers:
            v = _value_for(h)
            if v is None:
                return None
            headers[name] = v
    for h in (a.get(key) or []) + (b.get(key) or []):
        if not _header_ok(h, headers.get(h["name"].lower())):
            return None
    query: dict = {}
    for q in (a.get("queryParameters") or []) + (b.get("queryParameters") or []):
        want = (q.get("match") or {}).get("exact", "1")
        if query.setdefault(q["name"], want) != want:
            return None
    method = a.get("method") or b.get("method") or ("POST" if grpc else "GET")
    return {"method": method, "host": host, "path": path, "headers": headers, "query": query}


def describe(req: dict) -> str:
    q = "&".join(f"{k}={v}" for k, v in req["query"].items())
    text = f"{req['method']} {req['path']}{'?' + q if q else ''} Host: {req['host']}"
    for k, v in req["headers"].items():
        text += f", {k}: {v}"
    return text


# ---- the comparison ------------------------------------------------------------------------

def matches(m: dict, req: dict, grpc: bool = False) -> bool:
    """Does the App Mesh match `m` take the request `req` (as common_request builds them)?"""
    if not _path_ok(m, req["path"], grpc) or not _host_ok(m, req["host"]):
        return False
    if not grpc and m.get("method") and m["method"] != req["method"]:
        return False
    for h in m.get("metadata" if grpc else "headers") or []:
        if not _header_ok(h, req["headers"].get(h["name"].lower())):
            return False
    for q in m.get("queryParameters") or []:
        want = (q.get("match") or {}).get("exact")
        if q["name"] not in req["query"] or (want is not None and req["query"][q["name"]] != want):
            return False
    return True


def _gw_winner(cands: list, host: str) -> Entry:
    best = max(_gw_key(e, host) for e in cands)
    return min((e for e in cands if _gw_key(e, host) == best), key=lambda e: (e.route, e.rule))


def conflicts(entries: list[Entry]) -> list[tuple[Entry, Entry, dict, str]]:
    """(App Mesh winner, Gateway API winner, example request, why) for each pair of routes where a
    request both match goes to a different route in Gateway API than in App Mesh; the winners are
    taken over all routes on the parent, so a route added to keep the order silences the finding."""
    out, seen = [], set()
    for i, a in enumerate(entries):
        for b in entries[i + 1:]:
            req = common_request(a.match, b.match, a.grpc)
            if req is None:
                continue
            cands = [e for e in entries if matches(e.match, req, e.grpc)]
            if a not in cands or b not in cands:
                continue
            am = min(cands, key=lambda e: e.appmesh_key)
            gw = _gw_winner(cands, req["host"])
            if am is gw or (am.ref, gw.ref) in seen:
                continue
            seen.add((am.ref, gw.ref))
            ka, kb = _gw_key(am, req["host"]), _gw_key(gw, req["host"])
            if ka == kb:
                why = ("the two are equally specific in Gateway API, which then takes the older route, "
                       f"then the name ({gw.route} sorts first)")
            else:
                why = "Gateway API prefers the more specific match " + _what_is_more(kb, ka, am.grpc)
            out.append((am, gw, req, why))
    return out


def _what_is_more(win: tuple, lose: tuple, grpc: bool) -> str:
    labels = (["hostname", "hostname", "service", "method", "header matches"] if grpc else
              ["exact hostname", "hostname", "path match type", "path prefix length", "method", "header matches",
               "query matches"])
    for label, w, l in zip(labels, win, lose):
        if w != l:
            return f"(it has more: {label})"
    return ""
