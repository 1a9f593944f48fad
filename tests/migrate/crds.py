"""Checking documents against the upstream Gateway API CRDs, as an API server would.

1. Defaults from the schema are applied first (the API server does so before validating).
2. The openAPIV3Schema of the served version, with jsonschema: types, enums, patterns, lengths,
   item counts, required fields. Unknown fields are errors here (`kubectl apply` with strict
   field validation rejects them; without it the server would drop them silently).
3. The CEL rules (x-kubernetes-validations), each by a Python equivalent keyed by its message.
   Rules without an equivalent are collected in NOT_CHECKED so a test can list them.
The CRDs are read from ../shared/reference/gateway-api/ beside the repository ($APPMESH_LAB_SHARED overrides).
The experimental channel's are not in ../shared: experimental_crds() reads them, at tag v1.6.1,
from a git clone of kubernetes-sigs/gateway-api when there is one ($APPMESH_LAB_GATEWAY_API_GIT),
never from a copy in this repository; CI has no such clone, so that check is an extra one.
"""
from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import jsonschema
import yaml

from tests.conftest import ROOT, SHARED

CRD_DIR = SHARED / "reference" / "gateway-api"

_HOST = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_KEY = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$"
_PATH_CHARS = r"^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$"


def _same_parent(p1, p2) -> bool:
    ns1, ns2 = p1.get("namespace") or "", p2.get("namespace") or ""
    return (p1.get("group") == p2.get("group") and p1.get("kind") == p2.get("kind")
            and p1.get("name") == p2.get("name") and ns1 == ns2)


def _section_specified(refs) -> bool:
    for p1 in refs:
        for p2 in refs:
            if p1 is not p2 and _same_parent(p1, p2):
                if not (p1.get("sectionName") and p2.get("sectionName")) and not (p1.get("port") and p2.get("port")):
                    return False
    return True


def _section_unique(refs) -> bool:
    for p1 in refs:
        same = [p2 for p2 in refs if _same_parent(p1, p2) and p1.get("sectionName", "") == p2.get("sectionName", "")
                and p1.get("port") == p2.get("port")]
        if len(same) != 1:
            return False
    return True


def _one(lst, pred) -> bool:
    return sum(1 for x in lst if pred(x)) <= 1


def _rule_prefix(key: str, in_backends: bool):
    def check(rule) -> bool:
        def uses(filters):
            return sum(1 for f in filters or [] if ((f.get(key) or {}).get("path") or {}).get("type")
                       == "ReplacePrefixMatch" and "replacePrefixMatch" in (f[key]["path"])) == 1
        used = (sum(1 for b in rule.get("backendRefs") or [] if uses(b.get("filters"))) == 1 if in_backends
                else uses(rule.get("filters")))
        if not used:
            return True
        m = rule.get("matches") or []
        return len(m) == 1 and (m[0].get("path") or {}).get("type") == "PathPrefix"
    return check


def _dur(s: str) -> float:
    total = 0.0
    for n, u in re.findall(r"([0-9]+)(h|ms|m|s)", s):
        total += int(n) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[u]
    return total


_EP = ("Exact", "PathPrefix")

CHECKS = {
    "IPAddress values must be unique": lambda s: all(
        sum(1 for b in s if b.get("type") == "IPAddress" and b.get("value") == a.get("value")) == 1
        for a in s if a.get("type") == "IPAddress" and "value" in a),
    "Hostname values must be unique": lambda s: all(
        sum(1 for b in s if b.get("type") == "Hostname" and b.get("value") == a.get("value")) == 1
        for a in s if a.get("type") == "Hostname" and "value" in a),
    "Hostname value must be empty or contain only valid characters": lambda s: s.get("type") != "Hostname" or (
        "value" not in s or re.match(_HOST, s["value"]) is not None),
    "Hostname value must only contain valid characters": lambda s: s.get("type") != "Hostname" or (
        re.match(_HOST, s.get("value", "")) is not None),
    "Annotation keys must be in the form": lambda s: all(re.match(_KEY, k) for k in s),
    "If specified, the annotation key's prefix": lambda s: all(len(k.split("/")[0]) < 253 for k in s),
    "Label keys must be in the form": lambda s: all(re.match(_KEY, k) for k in s),
    "If specified, the label key's prefix": lambda s: all(len(k.split("/")[0]) < 253 for k in s),
    "tls must not be specified for protocols": lambda s: all(
        "tls" not in lst for lst in s if lst.get("protocol") in ("HTTP", "TCP", "UDP")),
    "tls mode must be Terminate for protocol HTTPS": lambda s: all(
        lst["tls"].get("mode", "") in ("", "Terminate") for lst in s if lst.get("protocol") == "HTTPS" and "tls" in lst),
    "tls mode must be set for protocol TLS": lambda s: all(
        (lst.get("tls") or {}).get("mode") for lst in s if lst.get("protocol") == "TLS"),
    "hostname must not be specified for protocols ['TCP', 'UDP']": lambda s: all(
        not lst.get("hostname") for lst in s if lst.get("protocol") in ("TCP", "UDP")),
    "Listener name must be unique within the Gateway": lambda s: all(
        sum(1 for b in s if b.get("name") == a.get("name")) == 1 for a in s),
    "Combination of port, protocol and hostname must be unique": lambda s: all(
        sum(1 for b in s if (b.get("port"), b.get("protocol"), b.get("hostname")) ==
            (a.get("port"), a.get("protocol"), a.get("hostname"))) == 1 for a in s),
    "certificateRefs or options must be specified when mode is Terminate": lambda s: s.get("mode") != "Terminate" or (
        bool(s.get("certificateRefs")) or bool(s.get("options"))),
    "Port for TLS configuration must be unique within the Gateway": lambda s: all(
        sum(1 for b in s if b.get("port") == a.get("port")) == 1 for a in s),
    "sectionName must be specified when parentRefs includes 2 or more": _section_specified,
    "sectionName must be unique when parentRefs includes 2 or more": _section_unique,
    # the experimental channel's wording (its parentRefs may also be told apart by port)
    "sectionName or port must be specified when parentRefs includes 2 or more": _section_specified,
    "sectionName or port must be unique when parentRefs includes 2 or more": _section_unique,
    "Rule name must be unique within the route": lambda s: all(
        sum(1 for b in s if b.get("name") == a["name"]) == 1 for a in s if "name" in a),
    "While 16 rules and 64 matches per rule are allowed": lambda s: sum(len(r.get("matches") or []) for r in s) <= 128,
    "Must have port for Service reference": lambda s: not (s.get("group", "") == "" and s.get("kind") == "Service") or (
        "port" in s),
    "RequestHeaderModifier filter cannot be repeated": lambda s: _one(s, lambda f: f.get("type") == "RequestHeaderModifier"),
    "ResponseHeaderModifier filter cannot be repeated": lambda s: _one(s, lambda f: f.get("type") == "ResponseHeaderModifier"),
    "RequestRedirect filter cannot be repeated": lambda s: _one(s, lambda f: f.get("type") == "RequestRedirect"),
    "URLRewrite filter cannot be repeated": lambda s: _one(s, lambda f: f.get("type") == "URLRewrite"),
    "CORS filter cannot be repeated": lambda s: _one(s, lambda f: f.get("type") == "CORS"),
    "May specify either httpRouteFilterRequestRedirect or httpRouteFilterRequestRewrite": lambda s: not (
        any(f.get("type") == "RequestRedirect" for f in s) and any(f.get("type") == "URLRewrite" for f in s)),
    "Only one of percent or fraction may be specified": lambda s: not ("percent" in s and "fraction" in s),
    "numerator must be less than or equal to denominator": lambda s: s.get("numerator", 0) <= s.get("denominator", 100),
    "One or both of 'service' or 'method' must be specified": lambda s: "type" not in s or (
        "service" in s or "method" in s),
    "service must only contain valid characters": lambda s: not (s.get("type", "Exact") == "Exact" and "service" in s) or (
        re.match(r"^\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$", s["service"], re.I) is not None),
    "method must only contain valid characters": lambda s: not (s.get("type", "Exact") == "Exact" and "method" in s) or (
        re.match(r"^[A-Za-z_][A-Za-z_0-9]*$", s["method"]) is not None),
    "RequestRedirect filter must not be used together with backendRefs": lambda s: not s.get("backendRefs") or all(
        "requestRedirect" not in f for f in s.get("filters") or []),
    "When using RequestRedirect filter with path.replacePrefixMatch": _rule_prefix("requestRedirect", False),
    "When using URLRewrite filter with path.replacePrefixMatch": _rule_prefix("urlRewrite", False),
    "Within backendRefs, when using RequestRedirect filter with path.replacePrefixMatch": _rule_prefix("requestRedirect", True),
    "Within backendRefs, When using URLRewrite filter with path.replacePrefixMatch": _rule_prefix("urlRewrite", True),
    "AllowHeaders cannot contain '*' alongside other methods": lambda s: not ("*" in s and len(s) > 1),
    "AllowMethods cannot contain '*' alongside other methods": lambda s: not ("*" in s and len(s) > 1),
    "AllowOrigins cannot contain '*' alongside other origins": lambda s: not ("*" in s and len(s) > 1),
    "replaceFullPath must be specified when type is set to 'ReplaceFullPath'": lambda s: s.get("type") != "ReplaceFullPath" or (
        "replaceFullPath" in s),
    "type must be 'ReplaceFullPath' when replaceFullPath is set": lambda s: "replaceFullPath" not in s or (
        s.get("type") == "ReplaceFullPath"),
    "replacePrefixMatch must be specified when type is set to 'ReplacePrefixMatch'": lambda s: (
        s.get("type") != "ReplacePrefixMatch" or "replacePrefixMatch" in s),
    "type must be 'ReplacePrefixMatch' when replacePrefixMatch is set": lambda s: "replacePrefixMatch" not in s or (
        s.get("type") == "ReplacePrefixMatch"),
    "value must be an absolute path and start with '/'": lambda s: s.get("type") not in _EP or s["value"].startswith("/"),
    "must not contain '//'": lambda s: s.get("type") not in _EP or "//" not in s["value"],
    "must not contain '/./'": lambda s: s.get("type") not in _EP or "/./" not in s["value"],
    "must not contain '/../'": lambda s: s.get("type") not in _EP or "/../" not in s["value"],
    "must not contain '%2f'": lambda s: s.get("type") not in _EP or "%2f" not in s["value"],
    "must not contain '%2F'": lambda s: s.get("type") not in _EP or "%2F" not in s["value"],
    "must not contain '#'": lambda s: s.get("type") not in _EP or "#" not in s["value"],
    "must not end with '/..'": lambda s: s.get("type") not in _EP or not s["value"].endswith("/.."),
    "must not end with '/.'": lambda s: s.get("type") not in _EP or not s["value"].endswith("/."),
    "type must be one of ['Exact', 'PathPrefix', 'RegularExpression']": lambda s: s.get("type") in (
        "Exact", "PathPrefix", "RegularExpression"),
    "must only contain valid characters (matching ^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]": lambda s: (
        s.get("type") not in _EP or re.match(_PATH_CHARS, s["value"]) is not None),
    "backendRequest timeout cannot be longer than request timeout": lambda s: not (
        "request" in s and "backendRequest" in s and _dur(s["request"]) != 0
        and _dur(s["backendRequest"]) > _dur(s["request"])),
    "filter.": None,  # the filter.<x> must be nil / specified family: see _filter_field below
}
NOT_CHECKED = {"Value is immutable": "a transition rule (self == oldSelf) needs the old object; exports are creates"}


def _filter_field(message: str, s: dict) -> bool:
    """filter.<field> must be nil if the filter.type is not <Type> / must be specified for <Type> filter.type"""
    m = re.match(r"filter\.(\w+) must be (nil if the filter\.type is not|specified for) (\w+)", message)
    field, how, typ = m.group(1), m.group(2), m.group(3)
    if how.startswith("nil"):
        return not (field in s and s.get("type") != typ)
    return not (field not in s and s.get("type") == typ)


def check_for(message: str):
    if message.startswith("filter."):
        return lambda s: _filter_field(message, s)
    for key, fn in CHECKS.items():
        if fn is not None and message.startswith(key):
            return fn
    return None


# ---- loading the CRDs -------------------------------------------------------------------------

_crds: dict = {}
_strict_cache: dict = {}
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


GATEWAY_API_GIT = os.environ.get("APPMESH_LAB_GATEWAY_API_GIT", "/work/.mirror/kubernetes-sigs+gateway-api/repo")
GATEWAY_API_TAG = "v1.6.1"
EXPERIMENTAL = "config/crd/experimental"


def experimental_crds(into) -> tuple:
    """Write the experimental-channel CRDs of GATEWAY_API_TAG from the git clone GATEWAY_API_GIT
    into the folder `into` (a test's temporary folder); (folder, None), or (None, why not)."""
    git = shutil.which("git")
    if git is None:
        return None, "git is not installed"
    if not os.path.isdir(GATEWAY_API_GIT):
        return None, (f"no git clone of kubernetes-sigs/gateway-api at {GATEWAY_API_GIT} ($APPMESH_LAB_GATEWAY_API_GIT); "
                      "the experimental-channel CRDs are read from one (CI has none: an extra check)")
    ls = subprocess.run([git, "--git-dir", GATEWAY_API_GIT, "ls-tree", "--name-only", f"{GATEWAY_API_TAG}:{EXPERIMENTAL}"],
                        capture_output=True, text=True)
    names = [n for n in ls.stdout.split() if n.startswith("gateway.networking.k8s.io_") and n.endswith(".yaml")]
    if ls.returncode != 0 or not names:
        return None, f"{GATEWAY_API_GIT} has no {GATEWAY_API_TAG}:{EXPERIMENTAL}: {ls.stderr.strip()[:200]}"
    for n in names:
        text = subprocess.run([git, "--git-dir", GATEWAY_API_GIT, "show", f"{GATEWAY_API_TAG}:{EXPERIMENTAL}/{n}"],
                              capture_output=True, text=True, check=True).stdout
        (into / n).write_text(text)
    return into, None


def crds(directory=None) -> dict:
    """{(apiVersion, kind): openAPIV3Schema} for every served version of the CRDs in `directory`
    (default: the standard channel, CRD_DIR)."""
    directory = directory or CRD_DIR
    if directory not in _crds:
        found = _crds[directory] = {}
        for f in sorted(directory.glob("*.yaml")):
            for doc in yaml.safe_load_all(f.read_text()):
                if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                    continue  # a kustomization, a ValidatingAdmissionPolicy
                group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
                for v in doc["spec"]["versions"]:
                    if v.get("served"):
                        found[(f"{group}/{v['name']}", kind)] = v["schema"]["openAPIV3Schema"]
    return _crds[directory]


def _strict(schema):
    """A copy in which objects with declared properties reject unknown ones."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema and \
                not schema.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(x) for x in schema]
    return schema


def _default(schema: dict, value):
    if isinstance(value, dict):
        for k, sub in (schema.get("properties") or {}).items():
            if k not in value and "default" in sub:
                value[k] = copy.deepcopy(sub["default"])
            if k in value:
                _default(sub, value[k])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for x in value:
            _default(schema["items"], x)


def _cel(schema: dict, value, path: str, errors: list, unchecked: set):
    for rule in schema.get("x-kubernetes-validations") or []:
        msg = rule.get("message") or rule["rule"]
        fn = check_for(msg)
        if fn is None:
            unchecked.add(msg)
        elif not fn(value):
            errors.append(f"{path or '.'}: {msg}")
    if isinstance(value, dict):
        for k, sub in (schema.get("properties") or {}).items():
            if k in value:
                _cel(sub, value[k], f"{path}.{k}", errors, unchecked)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, x in enumerate(value):
            _cel(schema["items"], x, f"{path}[{i}]", errors, unchecked)


def validate(doc: dict, unchecked: set | None = None, directory=None) -> list[str]:
    """Errors an API server with the v1.6.1 CRDs in `directory` (default: the standard channel)
    would report for `doc` (empty: valid)."""
    key = (doc.get("apiVersion"), doc.get("kind"))
    schema = crds(directory).get(key)
    if schema is None:
        return [f"{key[0]}/{key[1]} is not served by the CRDs in {directory or CRD_DIR}"]
    doc = copy.deepcopy(doc)
    _default(schema, doc)
    ckey = (directory or CRD_DIR, key)
    if ckey not in _strict_cache:
        _strict_cache[ckey] = jsonschema.Draft7Validator(_strict(schema))
    errors = [f"{'.'.join(str(p) for p in e.absolute_path) or '.'}: {e.message}"
              for e in _strict_cache[ckey].iter_errors(doc)]
    meta = doc.get("metadata") or {}
    for field in ("name", "namespace"):
        v = meta.get(field)
        if not isinstance(v, str) or len(v) > 253 or not _NAME.match(v):
            errors.append(f"metadata.{field}: {v!r} is not a DNS subdomain name")
    _cel(schema, doc, "", errors, unchecked if unchecked is not None else set())
    return errors
