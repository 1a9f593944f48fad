"""Validation, pass one: each document on its own (shape, kind, metadata, schema, webhook rules)."""
from __future__ import annotations

import difflib
import re
from collections import Counter
from dataclasses import dataclass, field

from . import kinds as K
from . import limits
from . import configmaps, secrets
from .hints import annotation_hint, api_version_hint, unknown_field_hint, unknown_field_stands_in
from .loader import Document
from .problems import Problem, join_path
from .resources import Resource
from .k8s_openapi import TYPES
from .k8s_specs import OBJECT_META
from .schema import Finding, Obj

TOP_LEVEL = ("apiVersion", "kind", "metadata", "spec", "status")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Finding codes dropped by check_document. Empty, except in a test that needs a value only Envoy
# refuses to reach Envoy: the lab daemon sets {"envoy"} when APPMESH_LAB_TEST_SKIP_ENVOY_CHECKS=1.
SKIP_CODES: frozenset = frozenset()


@dataclass
class DocResult:
    resource: Resource | None
    problems: list = field(default_factory=list)
    skipped: str | None = None  # "apiVersion/kind" of a document the lab passes over


def _p(doc: Document, path: str, message: str, hint: str = "", code: str = "invalid", severity: str = "error"):
    return Problem(doc.file, doc.line_of(path), path, message, hint, code, severity, doc.index)


def _findings(doc: Document, findings: list[Finding]) -> list[Problem]:
    return [_p(doc, f.path, f.message, f.hint, f.code) for f in findings]


def _check_name(doc: Document, path: str, value, what: str, label: bool) -> list[Problem]:
    if not isinstance(value, str) or not value:
        return [_p(doc, path, f"{what} must be a non-empty string", f"write {path.split('.')[-1]}: my-name", "required")]
    limit = 63 if label else 253
    pattern = K.DNS_LABEL if label else K.DNS_SUBDOMAIN
    if _CONTROL.search(value) or "/" in value or "\\" in value:
        return [_p(doc, path, f"{what} {value!r} contains a path separator or a control character",
                   "use lower-case letters, digits and '-'", "name")]
    if len(value) > limit or not pattern.match(value):
        shown = value if len(value) <= 60 else value[:57] + "..."
        fixed = re.sub(r"[^a-z0-9.-]+", "-", value.lower()).strip("-.")[:limit] or "my-name"
        return [_p(doc, path, f"{what} {shown!r} is not a valid Kubernetes name "
                   f"(lower-case letters, digits, '-'{'' if label else ' and .'}; at most {limit} characters)",
                   f"for example {fixed!r}", "name")]
    return []


def check_document(doc: Document) -> DocResult:
    data = doc.data
    if not isinstance(data, dict):
        return DocResult(None, [_p(doc, "", f"a manifest document must be a mapping, got {type(data).__name__}",
                                   "start the document with apiVersion:, kind: and metadata:", "not-mapping")])
    problems: list[Problem] = []
    api, kind = data.get("apiVersion"), data.get("kind")
    if not isinstance(kind, str) or not kind:
        return DocResult(None, [_p(doc, "kind", "kind is missing", "add kind: (e.g. GatewayRoute)", "required")])
    if not isinstance(api, str) or not api:
        return DocResult(None, [_p(doc, "apiVersion", "apiVersion is missing",
                                   f"add apiVersion: {K.API_VERSION if kind in K.APPMESH_KINDS else 'v1'}", "required")])
    if (api, kind) in K.PASSED_OVER:
        return DocResult(None, [], skipped=f"{api}/{kind}")

    if api.startswith(K.GROUP + "/") or kind in K.APPMESH_KINDS:
        if kind not in K.APPMESH_KINDS:
            return DocResult(None, [_p(doc, "kind", f"unknown App Mesh kind {kind!r}",
                                       _kind_hint(kind, list(K.APPMESH_KINDS)), "unknown-kind")])
        if api != K.API_VERSION:
            return DocResult(None, [_p(doc, "apiVersion", f"apiVersion {api!r} is not served for {kind}",
                                       api_version_hint(api, kind), "api-version")] + _v1beta1_extras(doc, data))
        info = K.APPMESH_KINDS[kind]
        spec_node, status_node, namespaced = info["spec"], K.appmesh_status(kind), info["namespaced"]
    else:
        match = [(a, k) for (a, k) in K.K8S_KINDS if k == kind]
        if (api, kind) not in K.K8S_KINDS:
            if match:
                return DocResult(None, [_p(doc, "apiVersion", f"apiVersion {api!r} does not serve {kind}",
                                           f"write apiVersion: {match[0][0]}", "api-version")])
            if api.startswith("gateway.networking.k8s.io/"):
                return DocResult(None, [_p(doc, "kind", f"{api}/{kind} is not a Gateway API kind the lab serves",
                                           "the lab serves GatewayClass, Gateway, HTTPRoute, GRPCRoute and "
                                           "ReferenceGrant (standard channel)", "gateway-api")])
            known = sorted({k for (_, k) in K.K8S_KINDS} | set(K.APPMESH_KINDS))
            return DocResult(None, [_p(doc, "kind", f"the lab does not handle {api}/{kind}",
                                       _kind_hint(kind, known), "unknown-kind")])
        info = K.K8S_KINDS[(api, kind)]
        spec_node, status_node, namespaced = info["spec"], None, info["namespaced"]

    top = {"Secret": secrets.TOP_LEVEL, "ConfigMap": configmaps.TOP_LEVEL}.get(kind, TOP_LEVEL)
    misspelt = set()  # top-level fields an unknown key is a misspelling of: not reported missing as well
    for key in data:
        if key not in top:
            near = difflib.get_close_matches(str(key), top, 1, 0.6)
            misspelt.update(near)
            hint = unknown_field_hint(kind, key) or (
                f"did you mean {near[0]!r}?" if near else "fields allowed at the top: " + ", ".join(top))
            problems.append(_p(doc, str(key), f"unknown field {key!r}", hint, "unknown-field"))

    meta = data.get("metadata")
    if meta is None and "metadata" in misspelt:
        return DocResult(None, problems)
    if not isinstance(meta, dict):
        problems.append(_p(doc, "metadata", "metadata is missing or not a mapping",
                           "add metadata: {name: ..., namespace: ...}", "required"))
        return DocResult(None, problems)
    # metadata is an ObjectMeta on every kind (App Mesh and Gateway API ones too): its fields are
    # checked by name as the API server does (k8s_strict.py); a misspelt name is reported once, as unknown
    out: list[Finding] = []
    OBJECT_META.check(meta, "metadata", out, lambda path, key: unknown_field_stands_in(kind, path))
    meta_fields = sorted(TYPES["V1ObjectMeta"])
    name_misspelt = "name" not in meta and any(
        k not in meta_fields and difflib.get_close_matches(str(k), meta_fields, 1, 0.6) == ["name"] for k in meta)
    named = [] if name_misspelt else \
        _check_name(doc, "metadata.name", meta.get("name"), "name", label=(kind == "Namespace"))
    problems += named
    if kind == "Service" and not named:
        bad = limits.dns1035_label(meta["name"], "Service name")
        if bad:  # it becomes a DNS name: <service>.<namespace>.svc.cluster.local
            problems.append(_p(doc, "metadata.name", bad[0], bad[1], "name"))
    ns = meta.get("namespace")
    if namespaced:
        if ns is None:
            ns = "default"
        else:
            problems += _check_name(doc, "metadata.namespace", ns, "namespace", label=True)
    elif ns is not None:
        problems.append(_p(doc, "metadata.namespace", f"{kind} is cluster-scoped; metadata.namespace is ignored",
                           "remove metadata.namespace", "ignored", "warning"))
        ns = None
    problems += _findings(doc, out)

    spec = data.get("spec")
    if spec is None and "spec" in misspelt:  # reported as unknown; checking an empty spec would only repeat it
        spec_node = None
    if spec is None:
        if info.get("spec_required") and spec_node is not None:
            problems.append(_p(doc, "spec", "spec is missing", "add spec:", "required"))
        spec = {}
    hint_for = lambda path, key: unknown_field_stands_in(kind, path)  # noqa: E731
    out = []
    if isinstance(spec_node, Obj):
        spec_node.check(spec, "spec", out, hint_for)
    if status_node is not None and data.get("status") is not None:
        status_node.check(data["status"], "status", out, hint_for)
    problems += _findings(doc, out)
    problems += _annotation_problems(doc, kind, data)
    if kind == "Secret":
        data = secrets.merged(data)
        problems += [_p(doc, path, msg, hint, "secret") for path, msg, hint in secrets.problems(data)]
    if kind == "ConfigMap":
        problems += [_p(doc, path, msg, hint, "configmap") for path, msg, hint in configmaps.problems(data)]

    if SKIP_CODES:
        problems = [p for p in problems if p.code not in SKIP_CODES]
    labels = meta.get("labels") if isinstance(meta.get("labels"), dict) else {}
    annotations = meta.get("annotations") if isinstance(meta.get("annotations"), dict) else {}
    resource = Resource(api, kind, str(meta.get("name")), ns, dict(labels), dict(annotations),
                        spec if isinstance(spec, dict) else {}, doc, data)
    if kind in K.APPMESH_KINDS and not problems:
        problems += _aws_name_problems(doc, resource)
    return DocResult(resource if not any(p.severity == "error" for p in problems) else None, problems) \
        if problems else DocResult(resource, [])


AWS_NAME_MAX = 255  # App Mesh's limit on every resource name (meshName, virtualNodeName, …)


def _aws_name_problems(doc: Document, r: Resource) -> list[Problem]:
    """The name the resource has in App Mesh (awsName, or the controller's <name>_<namespace>)
    must fit App Mesh's 255 characters."""
    name = r.aws_name()
    if not isinstance(name, str) or len(name) <= AWS_NAME_MAX:
        return []
    if isinstance(r.spec.get("awsName"), str) and r.spec.get("awsName"):
        return [_p(doc, "spec.awsName", f"awsName is {len(name)} characters long; App Mesh allows at most "
                   f"{AWS_NAME_MAX}", "shorten it", "length")]
    return [_p(doc, "metadata.name", f"the App Mesh name made from it, {name[:40]!r}… ({len(name)} characters: name "
               f"and namespace), is longer than App Mesh's {AWS_NAME_MAX}",
               "shorten the name, or set spec.awsName to a name of at most 255 characters", "length")]


def _kind_hint(kind: str, known: list[str]) -> str:
    import difflib
    near = difflib.get_close_matches(kind, known, 1, 0.6)
    return f"did you mean {near[0]!r}?" if near else f"kinds the lab reads: {', '.join(known)}"


def _v1beta1_extras(doc: Document, data: dict) -> list[Problem]:
    """With a v1beta1 apiVersion, also point at the v1beta1-only fields, so one run shows all the fixes."""
    spec = data.get("spec") if isinstance(data.get("spec"), dict) else {}
    out = []
    for key in spec:
        hint = unknown_field_hint(str(data.get("kind")), f"spec.{key}")
        if hint and key in ("meshName", "virtualRouter", "routes", "gatewayName", "http"):
            out.append(_p(doc, f"spec.{key}", f"{key!r} is not a v1beta2 field", hint, "unknown-field"))
    return out


def _annotation_problems(doc: Document, kind: str, data: dict) -> list[Problem]:
    places = []
    if kind == "Deployment":
        tmpl = (data.get("spec") or {}).get("template") if isinstance(data.get("spec"), dict) else None
        meta = tmpl.get("metadata") if isinstance(tmpl, dict) else None
        if isinstance(meta, dict) and isinstance(meta.get("annotations"), dict):
            places.append(("spec.template.metadata.annotations", meta["annotations"]))
    if kind in ("Pod", "Deployment") and isinstance(data.get("metadata"), dict) \
            and isinstance(data["metadata"].get("annotations"), dict):
        places.append(("metadata.annotations", data["metadata"]["annotations"]))
    out = []
    for base, annotations in places:
        for name in annotations:
            hint = annotation_hint(str(name))
            if hint:
                out.append(_p(doc, join_path(base, name), f"annotation {name!r} is not used by App Mesh v1beta2",
                              hint, "annotation"))
    return out


def count_kinds(resources) -> Counter:
    return Counter(r.kind for r in resources)
