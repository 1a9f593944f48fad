"""Admission for the six App Mesh kinds, as the AWS controller's webhooks do it, with the kit's
own validator: what the local lab rejects, a cluster rejects, with the same findings.

Paths (upstream's names, registered in the chart's webhook configurations):

    /mutate-appmesh-k8s-aws-v1beta2-<kind>     CREATE: designate and default
    /validate-appmesh-k8s-aws-v1beta2-<kind>   CREATE, UPDATE: schema + semantics

Mutating (CREATE only; an UPDATE is left as it is, like upstream):
  * `spec.meshRef` (every kind but Mesh): the mesh whose namespaceSelector selects the object's
    namespace, as {name, uid}. A create that sets it itself is refused (it is read-only).
  * `spec.virtualGatewayRef` (GatewayRoute): the one VirtualGateway whose namespaceSelector
    selects the route's namespace and whose gatewayRouteSelector selects its labels, as
    {name, namespace, uid}. Read-only as well.
  * `spec.awsName` when absent: the name in the App Mesh API, defaulted as upstream does
    (`<name>` for a Mesh, `<name>.<namespace>` for a VirtualService, else `<name>_<namespace>`).
  Where nothing (or more than one thing) can be designated, the reference is left out and the
  validating webhook decides, with the local lab's message.
  * `spec.meshServiceDiscovery` of a Mesh (CREATE and UPDATE), from the cluster's IP family
    (controller option --ip-family, chart value ipFamily), as upstream's Mesh webhook does: on an
    IPv6 cluster always {ipPreference: IPv6_ONLY}; on an IPv4 cluster {ipPreference: IPv4_ONLY}
    when the Mesh has one (whatever it says), nothing otherwise. With a preference, proxies bind
    IPv6 as well (lab/controller/pod_traffic.py).

Validating (CREATE, UPDATE): the object as a manifest (lab.controller.world.document_of: what a
user wrote, without server fields and without the references the mutating webhook filled) goes
through lab.model's schema and semantic checks against the objects the controller sees in the
cluster, and is refused on the errors the local lab's apply refuses on. An UPDATE may not change
spec.awsName, spec.meshRef or spec.virtualGatewayRef (upstream's immutable fields); one that
changes neither spec nor labels (the controller setting or removing finalizers), or of an object
being deleted, is not checked again.

Both answer in the AdmissionReview version they were called with (v1 or v1beta1).
"""
from __future__ import annotations

import base64
import json
import logging

from ..model import validate_documents
from ..model.fields import gateway_ref, mesh_ref
from ..model.loader import Document
from ..model.problems import denial_line
from .kube import APPMESH_KINDS, CLUSTER_SCOPED
from .world import build_world, document_of, ref, resource_of

log = logging.getLogger("appmesh-lab.controller")

MUTATE_PREFIX = "/mutate-appmesh-k8s-aws-v1beta2-"
VALIDATE_PREFIX = "/validate-appmesh-k8s-aws-v1beta2-"
IMMUTABLE = ("awsName", "meshRef", "virtualGatewayRef")
_BY_LOWER = {k.lower(): k for k in APPMESH_KINDS}


def mutate_path(kind: str) -> str:
    return MUTATE_PREFIX + kind.lower()


def validate_path(kind: str) -> str:
    return VALIDATE_PREFIX + kind.lower()


def route(path: str) -> tuple[str, str] | None:
    """("mutate" | "validate", kind) for an App Mesh admission path; None for any other path."""
    for action, prefix in (("mutate", MUTATE_PREFIX), ("validate", VALIDATE_PREFIX)):
        if path.startswith(prefix) and path[len(prefix):] in _BY_LOWER:
            return action, _BY_LOWER[path[len(prefix):]]
    return None


def _denied(uid: str, message: str, code: int = 403) -> dict:
    return {"uid": uid, "allowed": False,
            "status": {"code": code, "reason": "Forbidden" if code == 403 else "InternalError", "message": message}}


def _object(req: dict, key: str = "object") -> dict:
    obj = json.loads(json.dumps(req.get(key) or {}))
    meta = obj.setdefault("metadata", {})
    if req.get("namespace") and not meta.get("namespace"):
        meta["namespace"] = req["namespace"]
    if req.get("name") and not meta.get("name"):
        meta["name"] = req["name"]
    return obj


def _uid_of(objects: dict, kind: str, namespace: str, name: str) -> str | None:
    for o in objects.get(kind, []):
        meta = o.get("metadata") or {}
        if meta.get("name") == name and (kind in CLUSTER_SCOPED or meta.get("namespace") == namespace):
            return meta.get("uid")
    return None


def _read_only(kind: str, field: str) -> str:
    spec = mesh_ref() if field == "meshRef" else gateway_ref()
    return f"{kind} create may not specify read-only field: spec.{field}. {spec.message}; {spec.hint}"


def ip_preference_patch(spec: dict, ip_family: str) -> list:
    """Upstream's Mesh defaulting of meshServiceDiscovery from the cluster's IP family."""
    have = spec.get("meshServiceDiscovery")
    if ip_family == "IPv6":
        want = {"ipPreference": "IPv6_ONLY"}
    elif have is not None:
        want = {"ipPreference": "IPv4_ONLY"}
    else:
        return []
    return [] if have == want else [{"op": "add", "path": "/spec/meshServiceDiscovery", "value": want}]


def _patched(uid: str, patch: list) -> dict:
    out = {"uid": uid, "allowed": True}
    if patch:
        out["patchType"] = "JSONPatch"
        out["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
    return out


def mutate(kind: str, req: dict, objects: dict, ip_family: str = "IPv4") -> dict:
    """The mutating webhook's answer (the `response` of an AdmissionReview)."""
    uid = req.get("uid", "")
    obj = _object(req)
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return {"uid": uid, "allowed": True}  # the validating webhook says what is wrong
    family = ip_preference_patch(spec, ip_family) if kind == "Mesh" else []
    if req.get("operation", "CREATE") != "CREATE":
        return _patched(uid, family)
    for field in (("meshRef",) if kind != "Mesh" else ()) + (("virtualGatewayRef",) if kind == "GatewayRoute" else ()):
        if spec.get(field) is not None:
            return _denied(uid, _read_only(kind, field))
    r, _ = resource_of(kind, obj)
    if r is None:
        return {"uid": uid, "allowed": True}  # invalid: the validating webhook refuses it, with the findings
    world, _ = build_world({k: [o for o in objects.get(k, []) if ref(k, o) != ref(kind, obj)]
                            for k in ("Namespace",) + APPMESH_KINDS})
    patch = []
    if kind != "Mesh":
        mesh = world.mesh_of(r)
        mesh_uid = _uid_of(objects, "Mesh", "", mesh.name) if mesh is not None else None
        if mesh is not None and mesh_uid:
            patch.append({"op": "add", "path": "/spec/meshRef", "value": {"name": mesh.name, "uid": mesh_uid}})
    if kind == "GatewayRoute":
        gateways = world.gateways_for(r) or []
        if len(gateways) == 1:
            vg = gateways[0]
            vg_uid = _uid_of(objects, "VirtualGateway", vg.namespace, vg.name)
            if vg_uid:
                patch.append({"op": "add", "path": "/spec/virtualGatewayRef",
                              "value": {"name": vg.name, "namespace": vg.namespace, "uid": vg_uid}})
    if not spec.get("awsName"):
        patch.append({"op": "add", "path": "/spec/awsName", "value": r.aws_name()})
    return _patched(uid, patch + family)


def findings(kind: str, obj: dict, objects: dict) -> list:
    """The errors the local lab's apply would refuse `obj` on, given the cluster's objects."""
    doc = Document(document_of(kind, obj), ref(kind, obj), 0, 0)
    others = {k: [o for o in objects.get(k, []) if ref(k, o) != ref(kind, obj)] for k in ("Namespace",) + APPMESH_KINDS}
    world, _ = build_world(others)
    result = validate_documents([doc], complete=True, existing=list(world.by_key.values()))
    return [p for p in result.errors if p.code != "reference"]  # as lab.runtime.daemon.Daemon.apply


def validate(kind: str, req: dict, objects: dict) -> dict:
    """The validating webhook's answer (the `response` of an AdmissionReview)."""
    uid = req.get("uid", "")
    op = req.get("operation", "CREATE")
    if op not in ("CREATE", "UPDATE"):
        return {"uid": uid, "allowed": True}
    obj = _object(req)
    if op == "UPDATE":
        old = _object(req, "oldObject")
        changed = [f"spec.{f}" for f in IMMUTABLE
                   if (old.get("spec") or {}).get(f) is not None and (old.get("spec") or {}).get(f) != (obj.get("spec") or {}).get(f)]
        if changed:
            return _denied(uid, f"{kind} update may not change these fields: {', '.join(changed)}; "
                           "delete the object and create it again to change them")
        # the controller's own writes (finalizers, and their removal from an object being
        # deleted) change neither spec nor labels: they must never be refused, or a deletion
        # would wait forever on an object stored while the webhook was not there
        same = (old.get("spec") == obj.get("spec")
                and (old.get("metadata") or {}).get("labels") == (obj.get("metadata") or {}).get("labels"))
        if same or (obj.get("metadata") or {}).get("deletionTimestamp"):
            return {"uid": uid, "allowed": True}
    problems = findings(kind, obj, objects)
    if not problems:
        return {"uid": uid, "allowed": True}
    return _denied(uid, denial_message(kind, ref(kind, obj).split("/", 1)[1], problems))


def denial_message(kind: str, name: str, problems: list) -> str:
    """The validating webhook's message: one line per finding with its code and field path
    (lab.model.problems.denial_line), which a client reads back with from_denial."""
    lines = list(dict.fromkeys(denial_line(p) for p in problems))
    shown = "\n".join(lines[:10])
    more = f"\n(and {len(lines) - 10} more)" if len(lines) > 10 else ""
    return f"{kind} {name} is not valid:\n{shown}{more}"


def review(body: dict, path: str, objects_fn, ip_family: str = "IPv4") -> dict | None:
    """An AdmissionReview for an App Mesh path -> the AdmissionReview to answer; None when the
    path is not one of ours."""
    which = route(path)
    if which is None:
        return None
    action, kind = which
    req = body.get("request") or {}
    uid = req.get("uid", "")
    try:
        resp = mutate(kind, req, objects_fn(), ip_family) if action == "mutate" else validate(kind, req, objects_fn())
    except Exception as exc:  # a bug answers as an error, so failurePolicy decides what happens
        log.exception("admission review %s (%s %s) failed", uid, action, kind)
        resp = _denied(uid, f"appmesh-lab {action} webhook error: {exc}", 500)
    return {"apiVersion": body.get("apiVersion") or "admission.k8s.io/v1", "kind": "AdmissionReview",
            "response": resp}
