"""API spec ↔ CRD spec, and API names ↔ Kubernetes names.

The App Mesh API and the appmesh.k8s.aws/v1beta2 CRDs describe the same specs with the same field
names, except (tests/api/test_convert.py walks both schemas to keep this list complete):

  API                                              CRD
  virtualServiceName / virtualNodeName /           virtualServiceRef {name, namespace} or virtualServiceARN
    virtualRouterName (VS provider, VN backend,    (…Ref / …ARN likewise)
    gateway route target)
  weightedTargets[].virtualNode  (a name)          weightedTargets[].virtualNodeRef / virtualNodeARN
  certificateAuthorityArns, certificateArn         certificateAuthorityARNs, certificateARN
  MeshSpec.serviceDiscovery                        MeshSpec.meshServiceDiscovery
  serviceDiscovery.dns|awsCloudMap.ipPreference    (no CRD field)

A name in an API spec resolves to the resource with that App Mesh name (aws_name()) in the same
mesh and becomes a *Ref; a name that resolves to nothing yet becomes an *ARN, which the lab
resolves by App Mesh name once the referent exists (until then the referrer is INACTIVE, as a
Kubernetes resource whose referent is missing). API fields the CRD has no place for are kept in
the annotation `appmesh.lab/api-fields` (JSON) and merged back when the API reads the resource, so
an API client gets back what it wrote. CRD-only fields (podSelector, awsName, …) are dropped on
the way out by the output shapes (service.serialize).
"""
from __future__ import annotations

import copy
import hashlib
import re

from ..model import kinds as K
from ..model.schema import Arr, Obj, ReadOnly

# the CRD schema node of each API resource's spec (Route: one entry of VirtualRouter.spec.routes)
SPEC_NODES = {"Mesh": K.MESH_SPEC, "VirtualNode": K.VIRTUAL_NODE_SPEC, "VirtualService": K.VIRTUAL_SERVICE_SPEC,
              "VirtualRouter": K.VIRTUAL_ROUTER_SPEC, "Route": K.ROUTE, "VirtualGateway": K.VIRTUAL_GATEWAY_SPEC,
              "GatewayRoute": K.GATEWAY_ROUTE_SPEC}

RENAMES = {"certificateAuthorityArns": "certificateAuthorityARNs", "certificateArn": "certificateARN"}  # API → CRD
BACK = {v: k for k, v in RENAMES.items()}
TOP_RENAMES = {"Mesh": {"serviceDiscovery": "meshServiceDiscovery"}}  # top level of a spec only
REF_KINDS = {"virtualService": "VirtualService", "virtualNode": "VirtualNode", "virtualRouter": "VirtualRouter"}
API_FIELDS = "appmesh.lab/api-fields"  # annotation: API-only fields, JSON [[path, value], …]


class Refs:
    """How names in specs become references and back; appmesh.py gives one bound to a mesh."""

    def to_crd(self, kind: str, name: str) -> tuple[str, object]:  # pragma: no cover - interface
        """("Ref", {name, namespace}) for an existing resource, else ("ARN", arn)."""
        raise NotImplementedError

    def to_api(self, kind: str, ref: dict | None, arn: str | None) -> str:  # pragma: no cover - interface
        raise NotImplementedError


# ---- API → CRD ----------------------------------------------------------------------------

def to_crd(kind: str, api_spec: dict, refs: Refs) -> tuple[dict, list]:
    """(CRD spec, API-only fields as [[path, value], …]) for an API spec of resource `kind`."""
    spec = _in(copy.deepcopy(api_spec or {}), refs)
    for api_key, crd_key in TOP_RENAMES.get(kind, {}).items():
        if api_key in spec:
            spec[crd_key] = spec.pop(api_key)
    extras: list = []
    _split_unknown(spec, SPEC_NODES[kind], [], extras)
    return spec, extras


def _ref(refs: Refs, base: str, name: str) -> dict:
    form, value = refs.to_crd(REF_KINDS[base], name)
    return {f"{base}{form}": value}


def _in(value, refs: Refs, key: str | None = None):
    if isinstance(value, list):
        if key == "weightedTargets":  # WeightedTarget.virtualNode is a bare name
            return [_target_in(t, refs) for t in value]
        return [_in(x, refs) for x in value]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            base = k[:-len("Name")] if k.endswith("Name") else None
            if base in REF_KINDS and isinstance(v, str):
                out.update(_ref(refs, base, v))
            else:
                out[RENAMES.get(k, k)] = _in(v, refs, k)
        return out
    return value


def _target_in(t, refs: Refs):
    if not isinstance(t, dict):
        return t
    out = {k: _in(v, refs, k) for k, v in t.items() if k != "virtualNode"}
    if isinstance(t.get("virtualNode"), str):
        out.update(_ref(refs, "virtualNode", t["virtualNode"]))
    return out


def _split_unknown(value, node, path: list, extras: list) -> None:
    """Move keys the CRD schema has no place for out of `value`, into `extras` with their path."""
    if isinstance(node, ReadOnly):
        node = node.inner
    if isinstance(node, Obj) and isinstance(value, dict) and not node.open:
        for k in list(value):
            if k not in node.props:
                extras.append([path + [k], value.pop(k)])
            else:
                _split_unknown(value[k], node.props[k], path + [k], extras)
    elif isinstance(node, Arr) and isinstance(value, list):
        for i, item in enumerate(value):
            _split_unknown(item, node.items, path + [i], extras)


def kept_on_update(kind: str, api_members) -> set:
    """CRD spec fields an API update leaves alone: those no API member maps to (podSelector, awsName,
    namespaceSelector, …; routes of a VirtualRouter, which have their own operations)."""
    mapped = {TOP_RENAMES.get(kind, {}).get(m, RENAMES.get(m, m)) for m in api_members}
    return set(SPEC_NODES[kind].props) - mapped


# ---- CRD → API ----------------------------------------------------------------------------

def to_api(kind: str, crd_spec: dict, extras: list, refs: Refs) -> dict:
    """The API spec of a stored resource (before the output shape drops CRD-only fields)."""
    spec = _out(copy.deepcopy(crd_spec or {}), refs)
    for api_key, crd_key in TOP_RENAMES.get(kind, {}).items():
        if crd_key in spec:
            spec[api_key] = spec.pop(crd_key)
    for path, value in extras or ():
        _put(spec, path, value)
    return spec


def _out(value, refs: Refs, in_targets: bool = False):
    if isinstance(value, list):
        return [_out(x, refs, in_targets) for x in value]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            base = next((b for b in REF_KINDS if k in (b + "Ref", b + "ARN")), None)
            if base:
                name = refs.to_api(REF_KINDS[base], v if k.endswith("Ref") else None, v if k.endswith("ARN") else None)
                out["virtualNode" if (in_targets and base == "virtualNode") else base + "Name"] = name
            else:
                out[BACK.get(k, k)] = _out(v, refs, k == "weightedTargets")
        return out
    return value


def _put(spec: dict, path: list, value) -> None:
    cur = spec
    for i, key in enumerate(path[:-1]):
        nxt = path[i + 1]
        if isinstance(cur, list):
            if not isinstance(key, int) or key >= len(cur):
                return  # the structure changed under the extra (a manifest edit): drop it
            cur = cur[key]
        else:
            cur = cur.setdefault(key, [] if isinstance(nxt, int) else {})
    if isinstance(cur, dict):
        cur[path[-1]] = value


# ---- names --------------------------------------------------------------------------------

def short_hash(text: str, n: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def k8s_name(api_name: str, salt: str = "", label: bool = False) -> str:
    """A Kubernetes name for an API name: DNS subdomain (≤253; DNS label ≤63 with `label`). A name
    that had to change gets a hash suffix, so two API names never map to the same Kubernetes name."""
    limit = 63 if label else 253
    parts = [re.sub(r"[^a-z0-9-]+", "-", p).strip("-") for p in api_name.lower().split(".")]
    name = "-".join(p for p in parts if p) if label else ".".join(p for p in parts if p)
    if name == api_name and len(name) <= limit:
        return name
    suffix = short_hash(salt + api_name)
    return (name[:limit - len(suffix) - 1].rstrip("-.") + "-" + suffix).lstrip("-.")


def label_value(text: str) -> str:
    """A valid Kubernetes label value (≤63, alphanumerics with -_. inside) standing for `text`."""
    if len(text) <= 63 and re.fullmatch(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?", text):
        return text
    clean = re.sub(r"[^-A-Za-z0-9_.]+", "-", text).strip("-_.")
    return (clean[:54].rstrip("-_.") + "-" + short_hash(text)).lstrip("-_.")
