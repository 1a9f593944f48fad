"""What a route matches on: HTTP headers, query parameters, paths, hostnames and prefixes, and
gRPC metadata and names, with their rules. Shared by gateway routes and virtual router routes.
"""
from __future__ import annotations

import re

from . import envoy_rules as E
from .schema import Arr, Bool, Finding, Int, Obj, Str, valid_re2ish

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


def prefix_rule(v: dict) -> list:
    p = v.get("prefix")
    if not isinstance(p, str):
        return []
    if not p.startswith("/"):
        return [Finding("prefix", f"prefix {p!r} must start with '/'", f"write /{p}")]
    if p.lower().startswith(RESERVED_PREFIXES):
        return [Finding("prefix", f"prefix {p!r} is reserved by App Mesh", "choose another prefix")]
    return E.on("prefix", E.no_control, "prefix", "percent-encode it (%0A for LF) or remove it", "invalid")(v)


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


_GRPC_NAME = re.compile(r"[A-Za-z0-9_.$-]+")


def grpc_names(v: dict) -> list:
    """serviceName and methodName become the path /<service>/<method> Envoy matches."""
    out = []
    for key in ("serviceName", "methodName"):
        n = v.get(key)
        if isinstance(n, str) and n and not _GRPC_NAME.fullmatch(n):
            out.append(Finding(key, f"{key} {n[:40]!r} is not a gRPC name (letters, digits, '_' and '.'; no '/', "
                                    "spaces or control characters)", "write e.g. helloworld.Greeter",
                               E.ENVOY_CODE if E._NUL_CR_LF.search(n) else "invalid"))
    return out
