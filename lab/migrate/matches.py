"""App Mesh matches and rewrites as Gateway API matches and filters (one match at a time).

Each function returns what it could write plus the findings for what it could not, so the
caller decides whether a rule is kept. A finding is (field path, message, hint, code).
"""
from __future__ import annotations

import re

# RE2 and Python agree on these escapes; re.escape leaves letters, digits and "_" alone
_esc = re.escape


def range_regex(start: int, end: int) -> str | None:
    """A regular expression for the decimal integers start <= n < end (App Mesh's header
    range: start included, end excluded), or None for ranges with negative numbers."""
    if start < 0 or end <= start:
        return None
    parts = [_digits(a, b) for a, b in _split(start, end - 1)]
    return "^(" + "|".join(parts) + ")$"


def _split(lo: int, hi: int) -> list[tuple[int, int]]:
    """[lo, hi] as ranges each written as a fixed prefix followed by free digits."""
    out = []
    while lo <= hi:
        step = 1
        while lo % (step * 10) == 0 and lo + step * 10 - 1 <= hi:
            step *= 10
        out.append((lo, lo + step - 1))
        lo += step
    return out


def _digits(a: int, b: int) -> str:
    sa, sb = str(a), str(b)
    if len(sa) != len(sb):  # only from 0: 0..9, 0..99, ... are "up to n digits"
        return f"[0-9]{{1,{len(sb)}}}"
    out = ""
    for x, y in zip(sa, sb):
        out += x if x == y else (f"[{x}-{y}]" if (x, y) != ("0", "9") else "[0-9]")
    return out


def header_match(h: dict, path: str, profile: dict, what: str = "header") -> tuple[dict | None, list]:
    """One App Mesh header (or gRPC metadata) match -> a Gateway API header match."""
    name, m = h.get("name"), h.get("match")
    findings = []
    if h.get("invert"):
        return None, [(f"{path}.invert", f"{what} {name!r}: invert has no Gateway API equivalent",
                       "Gateway API matches only what is present; route the excluded value first in a rule of its "
                       "own, or keep this rule in a policy of the implementation", "no-equivalent")]
    regex = None
    if not m:
        regex, why = ".*", "a header without a match block means 'present'"
    elif m.get("exact") is not None:
        return {"type": "Exact", "name": name, "value": m["exact"]}, []
    elif m.get("prefix") is not None:
        regex, why = "^" + _esc(m["prefix"]) + ".*$", "prefix"
    elif m.get("suffix") is not None:
        regex, why = "^.*" + _esc(m["suffix"]) + "$", "suffix"
    elif m.get("regex") is not None:
        regex, why = m["regex"], "regex"
    elif m.get("range"):
        regex = range_regex(int(m["range"]["start"]), int(m["range"]["end"]))
        why = "range"
        if regex is None:
            return None, [(f"{path}.match.range", f"{what} {name!r}: a range with negative numbers has no "
                           "Gateway API equivalent", "split the traffic with exact values", "no-equivalent")]
        findings.append((f"{path}.match.range", f"{what} {name!r}: the range {m['range']['start']}..<"
                         f"{m['range']['end']} is written as a regular expression over decimal digits",
                         "values with a sign or leading zeros (+150, 0150) matched the App Mesh range but not "
                         "the expression", "approximated"))
    if not profile["regex_header"]:
        return None, [(f"{path}.match", f"{what} {name!r}: a {why} match needs a RegularExpression header "
                       "match, which this implementation does not support",
                       "match exact values instead (one rule per value)", "unsupported")]
    return {"type": "RegularExpression", "name": name, "value": regex}, findings


def hostnames(host: dict, path: str) -> tuple[list[str], list]:
    if host.get("exact"):
        return [host["exact"].lower()], []
    suffix = host.get("suffix") or ""
    if suffix.startswith("."):
        return ["*" + suffix.lower()], []
    return ["*." + suffix.lower()], [(f"{path}.suffix", f"hostname suffix {suffix!r} becomes '*.{suffix}': App Mesh "
                                      f"also matched {suffix!r} itself and names that merely end in it "
                                      f"(e.g. 'bad{suffix}'), Gateway API only subdomains",
                                      f"write the suffix with its dot (.{suffix}), and add {suffix!r} as an "
                                      "exact hostname if the bare name should match too", "semantics")]


def http_match(match: dict, path: str, profile: dict) -> tuple[dict | None, list[str], list]:
    """-> (Gateway API HTTPRouteMatch or None when it cannot be written, hostnames, findings)"""
    out: dict = {}
    findings: list = []
    prefix = match.get("prefix")
    if prefix is not None:
        out["path"] = {"type": "PathPrefix", "value": prefix}
        if prefix != "/":
            findings.append((f"{path}.prefix", f"prefix {prefix!r}: App Mesh matches a string prefix (also "
                             f"{prefix.rstrip('/')}XYZ), Gateway API's PathPrefix whole path segments",
                             f"if requests like {prefix.rstrip('/')}XYZ must keep routing here, add a "
                             "RegularExpression path match", "semantics"))
        if prefix.endswith("/") and prefix != "/":
            findings.append((f"{path}.prefix", f"prefix {prefix!r}: PathPrefix ignores the trailing slash, so "
                             f"{prefix.rstrip('/')} matches too (App Mesh did not match it)",
                             f"add an Exact {prefix.rstrip('/')} rule in front if it must go elsewhere",
                             "semantics"))
    p = match.get("path") or {}
    if p.get("exact") is not None:
        out["path"] = {"type": "Exact", "value": p["exact"]}
    elif p.get("regex") is not None:
        if not profile["regex_path"]:
            return None, [], [(f"{path}.path.regex", "a regular-expression path is not supported by this "
                              "implementation", "list the paths as Exact or PathPrefix matches", "unsupported")]
        out["path"] = {"type": "RegularExpression", "value": p["regex"]}
    if "path" not in out:
        out["path"] = {"type": "PathPrefix", "value": "/"}
    headers = []
    for i, h in enumerate(match.get("headers") or []):
        hm, f = header_match(h, f"{path}.headers[{i}]", profile)
        findings += f
        if hm is None:
            return None, [], findings
        headers.append(hm)
    if len(headers) > profile["max_headers"]:
        return None, [], findings + [(f"{path}.headers", f"{len(headers)} header matches; this implementation "
                                      f"allows {profile['max_headers']} per rule", "split the rule", "unsupported")]
    if headers:
        out["headers"] = headers
    queries = []
    for i, q in enumerate(match.get("queryParameters") or []):
        qp = f"{path}.queryParameters[{i}]"
        if not profile["query"]:
            return None, [], findings + [(qp, "query parameter matches are not supported by this implementation",
                                          "route on a header or path instead", "unsupported")]
        qm = q.get("match") or {}
        if "exact" in qm:
            queries.append({"type": "Exact", "name": q["name"], "value": qm["exact"]})
        elif profile["regex_query"]:
            queries.append({"type": "RegularExpression", "name": q["name"], "value": ".*"})
        else:
            return None, [], findings + [(qp, "a 'present' query match needs a RegularExpression", "match a value",
                                          "unsupported")]
    if queries:
        out["queryParams"] = queries
    if match.get("method"):
        out["method"] = match["method"]
    if match.get("scheme"):
        findings.append((f"{path}.scheme", "a scheme match has no Gateway API equivalent; the rule matches every "
                         "scheme", "use separate HTTP and HTTPS listeners and attach the route to one", "dropped"))
    hosts: list[str] = []
    if match.get("hostname"):
        hosts, f = hostnames(match["hostname"], f"{path}.hostname")
        findings += f
    return out, hosts, findings


def grpc_match(match: dict, path: str, profile: dict) -> tuple[dict | None, list[str], list]:
    out: dict = {}
    findings: list = []
    if match.get("serviceName"):
        out["method"] = {"type": "Exact", "service": match["serviceName"]}
        if match.get("methodName"):
            out["method"]["method"] = match["methodName"]
    headers = []
    for i, h in enumerate(match.get("metadata") or []):
        hm, f = header_match(h, f"{path}.metadata[{i}]", profile, "metadata")
        findings += f
        if hm is None:
            return None, [], findings
        headers.append(hm)
    if headers:
        out["headers"] = headers
    hosts: list[str] = []
    if match.get("hostname"):
        hosts, f = hostnames(match["hostname"], f"{path}.hostname")
        findings += f
    return out, hosts, findings


def http_rewrite(match: dict, action: dict, host: str, path: str, profile: dict) -> tuple[dict | None, list]:
    """App Mesh's gateway-route rewrites, defaults written out, as one URLRewrite filter."""
    rw = action.get("rewrite") or {}
    url: dict = {}
    if (rw.get("hostname") or {}).get("defaultTargetHostname", "ENABLED") != "DISABLED":
        url["hostname"] = host  # App Mesh's default: the Host becomes the virtual service's name
    if match.get("prefix") is not None:
        prw = rw.get("prefix") or {}
        if prw.get("value") is not None:
            url["path"] = {"type": "ReplacePrefixMatch", "replacePrefixMatch": prw["value"]}
        elif prw.get("defaultPrefix", "ENABLED") != "DISABLED" and match["prefix"] != "/":
            url["path"] = {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}  # App Mesh's default
    elif (rw.get("path") or {}).get("exact") is not None:
        url["path"] = {"type": "ReplaceFullPath", "replaceFullPath": rw["path"]["exact"]}
    if not url:
        return None, []
    if not profile["url_rewrite"]:
        what = " and ".join(k for k in ("hostname", "path") if k in url)
        return None, [(f"{path}.action.rewrite", f"the {what} rewrite (App Mesh's default included) needs a "
                       "URLRewrite filter, which this implementation does not document",
                       "make the app accept the original path and Host", "unsupported")]
    return {"type": "URLRewrite", "urlRewrite": url}, []
