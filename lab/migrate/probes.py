"""Requests to compare the App Mesh set and its export with (pure).

For each gateway route: requests it must match, and near misses around each condition (path
boundaries, a trailing slash, case, header and query variants, other methods, other hosts);
for each gRPC gateway route, calls around its service and method names, metadata and authority.
Each probe carries its route and a tag naming what it tests, so a difference can be matched
with the finding that announced it (Export.announced).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..model import World
from .order import _value_for

DEFAULT_HOST = "client.example"


@dataclass(frozen=True)
class Probe:
    method: str
    path: str  # with the query string
    host: str
    headers: tuple = ()  # ((name, value), ...) sorted
    route: str = ""  # "GatewayRoute ns/name", "" for a user's probe
    tag: str = "user"  # match, prefix-boundary, prefix-no-slash, case, header-miss, ...
    grpc: bool = False  # a gRPC call: path is /<service>/<method>, headers are its metadata

    def describe(self) -> str:
        text = f"gRPC {self.path} authority: {self.host}" if self.grpc else f"{self.method} {self.path} Host: {self.host}"
        return text + "".join(f", {k}: {v}" for k, v in self.headers)

    def to_dict(self) -> dict:
        return {"method": "gRPC" if self.grpc else self.method, "path": self.path, "host": self.host,
                "headers": dict(self.headers), "route": self.route, "tag": self.tag}


def regex_sample(rx: str) -> str | None:
    """A string the regular expression matches, for the simple expressions manifests use."""
    s = rx.strip("^$")
    s = re.sub(r"\(([^|()]*)\|[^()]*\)", r"\1", s)  # (a|b) -> a
    s = re.sub(r"\[\^?([^\]])[^\]]*\]", r"\1", s)  # [0-9] -> 0
    s = re.sub(r"\\d", "1", s)
    s = re.sub(r"\{\d+(,\d*)?\}|[+*?]", "", s)
    s = s.replace("\\", "").replace(".", "x")
    try:
        return s if re.fullmatch(rx.strip("^$"), s) or re.search(rx, s) else None
    except re.error:
        return None


def _paths(match: dict) -> list[tuple[str, str]]:
    out = []
    p = match.get("path") or {}
    if match.get("prefix") is not None:
        pre = match["prefix"]
        out.append((pre, "match"))
        out.append((pre + ("x" if pre.endswith("/") else "/x"), "match"))
        if pre != "/" and not pre.endswith("/"):
            out.append((pre + "XYZ", "prefix-boundary"))
        if pre != "/" and pre.endswith("/"):
            out.append((pre.rstrip("/"), "prefix-no-slash"))
        if pre.upper() != pre:
            out.append((pre.upper(), "case"))
    elif p.get("exact") is not None:
        e = p["exact"]
        out += [(e, "match"), (e + "/", "path-miss"), (e + "x", "path-miss")]
        if e.upper() != e:
            out.append((e.upper(), "case"))
    elif p.get("regex") is not None:
        sample = regex_sample(p["regex"])
        if sample and sample.startswith("/"):
            out += [(sample, "match"), (sample + "x", "path-miss")]
    else:
        out.append(("/", "match"))
    return out


def _hosts(match: dict) -> list[tuple[str, str]]:
    h = match.get("hostname") or {}
    if h.get("exact"):
        return [(h["exact"], "match"), (h["exact"].upper(), "host-case"), ("x." + h["exact"], "host-miss")]
    if h.get("suffix"):
        s = h["suffix"]
        bare = s.lstrip(".")
        return [(("a" if s.startswith(".") else "a.") + s, "match"), (bare, "host-bare"), ("bad" + bare, "host-bad")]
    return [(DEFAULT_HOST, "match")]


def route_probes(ref: str, match: dict) -> list[Probe]:
    paths, hosts = _paths(match), _hosts(match)
    if not paths:
        return []
    headers: dict = {}
    for h in match.get("headers") or []:
        v = _value_for(h)
        if v is None and (h.get("match") or {}).get("regex"):
            v = regex_sample(h["match"]["regex"])
        if v is None:
            return []
        headers[h["name"].lower()] = v
    query = {q["name"]: (q.get("match") or {}).get("exact", "1") for q in match.get("queryParameters") or []}
    method = match.get("method") or "GET"

    def probe(path=None, host=None, hdrs=None, q=None, m=None, tag="match"):
        qs = "&".join(f"{k}={v}" for k, v in (query if q is None else q).items())
        p = (paths[0][0] if path is None else path) + ("?" + qs if qs else "")
        return Probe(m or method, p, host or hosts[0][0], tuple(sorted((headers if hdrs is None else hdrs).items())),
                     ref, tag)
    out = [probe(path=p, tag=t) for p, t in paths]
    out += [probe(host=h, tag=t) for h, t in hosts[1:]]
    for name, v in headers.items():
        out.append(probe(hdrs={**headers, name: v + "x"}, tag="header-miss"))
        if v.upper() != v:
            out.append(probe(hdrs={**headers, name: v.upper()}, tag="header-case"))
        out.append(probe(hdrs={k: x for k, x in headers.items() if k != name}, tag="header-absent"))
    for name, v in query.items():
        out.append(probe(q={**query, name: v + "x"}, tag="query-miss"))
        out.append(probe(q={k: x for k, x in query.items() if k != name}, tag="query-absent"))
    if match.get("method"):
        out.append(probe(m="PUT" if method != "PUT" else "GET", tag="method-miss"))
    return out


GRPC_METHOD = "Probe"  # the method called when a route matches a whole service


def _grpc_paths(match: dict) -> list[tuple[str, str]]:
    """/<service>/<method> calls around an App Mesh grpcRoute match (serviceName, methodName)."""
    svc, meth = match.get("serviceName"), match.get("methodName")
    if not svc:
        return [(f"/lab.probe.Any/{GRPC_METHOD}", "match")]
    out = [(f"/{svc}/{meth or GRPC_METHOD}", "match")]
    if meth:
        out += [(f"/{svc}/{meth}x", "method-miss"), (f"/{svc}/{GRPC_METHOD if meth != GRPC_METHOD else 'Other'}",
                                                   "method-miss")]
        if meth.lower() != meth:
            out.append((f"/{svc}/{meth.lower()}", "method-case"))
    out.append((f"/{svc}x/{meth or GRPC_METHOD}", "service-miss"))
    if "." in svc:
        out.append((f"/{svc.rsplit('.', 1)[0]}/{meth or GRPC_METHOD}", "service-miss"))
    if svc.upper() != svc:
        out.append((f"/{svc.upper()}/{meth or GRPC_METHOD}", "service-case"))
    return out


def grpc_route_probes(ref: str, match: dict) -> list[Probe]:
    """gRPC calls for a grpcRoute match: ones it must match, near misses of the service, the
    method, the metadata and the authority."""
    paths, hosts = _grpc_paths(match), _hosts(match)
    md: dict = {}
    misses: dict = {}
    for h in match.get("metadata") or []:
        v = _value_for(h)
        if v is None and (h.get("match") or {}).get("regex"):
            v = regex_sample(h["match"]["regex"])
        if v is None:
            return []
        md[h["name"].lower()] = v
        # a value the condition does not take: a prefix is missed at the front, the others at the end
        misses[h["name"].lower()] = "x" + v if (h.get("match") or {}).get("prefix") is not None else v + "x"

    def probe(path=None, host=None, meta=None, tag="match"):
        return Probe("POST", paths[0][0] if path is None else path, host or hosts[0][0],
                     tuple(sorted((md if meta is None else meta).items())), ref, tag, grpc=True)
    out = [probe(path=p, tag=t) for p, t in paths]
    out += [probe(host=h, tag=t) for h, t in hosts[1:]]
    for name, v in md.items():
        out.append(probe(meta={**md, name: misses[name]}, tag="header-miss"))
        out.append(probe(meta={k: x for k, x in md.items() if k != name}, tag="header-absent"))
    return out


def generate(resources, announced: dict | None = None) -> list[Probe]:
    """Probes for every gateway route in `resources` (HTTP requests, gRPC calls), plus the requests of the precedence
    findings; stable order, no duplicates (the first tag of a request wins)."""
    world = World(resources)
    out: dict = {}
    for gr in sorted(world.by_kind["GatewayRoute"], key=lambda r: r.key):
        for key in ("httpRoute", "http2Route"):
            body = gr.spec.get(key)
            if isinstance(body, dict):
                for p in route_probes(f"GatewayRoute {gr.namespace}/{gr.name}", body.get("match") or {}):
                    out.setdefault((p.method, p.path, p.host, p.headers), p)
        body = gr.spec.get("grpcRoute")
        if isinstance(body, dict):
            for p in grpc_route_probes(f"GatewayRoute {gr.namespace}/{gr.name}", body.get("match") or {}):
                out.setdefault(("gRPC", p.path, p.host, p.headers), p)
    for req in (announced or {}).get("precedence", []):
        qs = "&".join(f"{k}={v}" for k, v in req["query"].items())
        p = Probe(req["method"], req["path"] + ("?" + qs if qs else ""), req["host"],
                  tuple(sorted(req["headers"].items())), "", "precedence", grpc=bool(req.get("grpc")))
        out[("gRPC" if p.grpc else p.method, p.path, p.host, p.headers)] = p
    return list(out.values())


def is_announced(probe: Probe, announced: dict, only_authority: bool = False) -> bool:
    """Did the export announce this probe's difference? `only_authority`: the two answers differ
    in the authority the app received and nothing else (GRPCRoute cannot rewrite it)."""
    if probe.tag == "precedence":
        return True
    if only_authority and any("authority" in tags for k, tags in announced.items() if k.startswith("GatewayRoute ")):
        return True
    tags = announced.get(probe.route) or set()
    return "*" in tags or probe.tag in tags
