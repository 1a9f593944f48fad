"""Status conditions each App Mesh resource earns from a snapshot of the world.

The AWS controller set `<Kind>Active` True/False and left reason and message empty
(APPMESH-FACTS §9.1). The lab fills them, because a learner needs them. Dependency gating
follows the controller: everything waits for its mesh; a virtual service for its provider;
a virtual router for its target nodes; a gateway route for its gateway and target service;
a virtual node does not wait for its backends.
"""
from __future__ import annotations

from ..model import World
from ..model.resources import Resource

APPMESH = ("Mesh", "VirtualNode", "VirtualService", "VirtualRouter", "VirtualGateway", "GatewayRoute")


def _cond(kind: str, ok: bool, reason: str, message: str) -> dict:
    return {"type": f"{kind}Active", "status": "True" if ok else "False", "reason": reason, "message": message}


class _Status:
    def __init__(self, world: World, rejected: dict | None = None):
        self.world = world
        self.rejected = rejected or {}
        self.memo: dict = {}

    def of(self, r: Resource) -> dict:
        if r.key not in self.memo:
            self.memo[r.key] = _cond(r.kind, False, "Pending", "dependency cycle")  # guards recursion
            if r.key in self.rejected:
                self.memo[r.key] = _cond(r.kind, False, "ConfigRejected", self.rejected[r.key][0])
            else:
                self.memo[r.key] = getattr(self, r.kind)(r)
        return self.memo[r.key]

    def active(self, r: Resource | None) -> bool:
        if r is not None and r.key in self.rejected and self.rejected[r.key][1]:
            return True  # its previous version is in force: what depends on it is served
        return r is not None and self.of(r)["status"] == "True"

    def _mesh_gate(self, r: Resource):
        meshes = self.world.meshes_for(r.namespace)
        if meshes is None:
            return _cond(r.kind, False, "NamespaceNotFound", f"namespace {r.namespace} does not exist")
        if not meshes:
            return _cond(r.kind, False, "MeshNotFound", f"no Mesh selects namespace {r.namespace}")
        if len(meshes) > 1:
            return _cond(r.kind, False, "MultipleMeshes", "several meshes select namespace " + r.namespace)
        if not self.active(meshes[0]):
            return _cond(r.kind, False, "MeshNotActive", f"mesh {meshes[0].name} is not active yet")
        return None

    def Mesh(self, r):
        return _cond("Mesh", True, "Active", "mesh is active")

    def VirtualNode(self, r):
        return self._mesh_gate(r) or _cond("VirtualNode", True, "Active", "virtual node is active")

    def VirtualGateway(self, r):
        return self._mesh_gate(r) or _cond("VirtualGateway", True, "Active", "virtual gateway is active")

    def VirtualService(self, r):
        gate = self._mesh_gate(r)
        if gate:
            return gate
        provider = r.spec.get("provider") or {}
        for kind, key in (("VirtualNode", "virtualNode"), ("VirtualRouter", "virtualRouter")):
            if key in provider:
                p = provider[key]
                target = self.world.resolve(kind, p.get(f"{key}Ref"), p.get(f"{key}ARN"), r)
                if target is None:
                    return _cond("VirtualService", False, f"{kind}NotFound",
                                 f"{kind} {(p.get(key + 'Ref') or {}).get('name') or p.get(key + 'ARN')} does not exist")
                if not self.active(target):
                    return _cond("VirtualService", False, f"{kind}NotActive", f"{kind} {target.name} is not active yet")
        if not provider:
            return _cond("VirtualService", True, "NoProvider", "virtual service is active but has no provider: "
                         "requests to it get 503")
        return _cond("VirtualService", True, "Active", "virtual service is active")

    def VirtualRouter(self, r):
        gate = self._mesh_gate(r)
        if gate:
            return gate
        for route in r.spec.get("routes") or []:
            body = next((route[k] for k in ("httpRoute", "http2Route", "grpcRoute", "tcpRoute") if k in route), {})
            for t in (body.get("action") or {}).get("weightedTargets") or []:
                vn = self.world.resolve("VirtualNode", t.get("virtualNodeRef"), t.get("virtualNodeARN"), r)
                if vn is None:
                    name = (t.get("virtualNodeRef") or {}).get("name") or t.get("virtualNodeARN")
                    return _cond("VirtualRouter", False, "VirtualNodeNotFound",
                                 f"route {route['name']}: virtual node {name} does not exist")
                if not self.active(vn):
                    return _cond("VirtualRouter", False, "VirtualNodeNotActive", f"virtual node {vn.name} is not active yet")
        return _cond("VirtualRouter", True, "Active", "virtual router is active")

    def GatewayRoute(self, r):
        gate = self._mesh_gate(r)
        if gate:
            return gate
        vgs = self.world.gateways_for(r) or []
        if len(vgs) != 1:
            return _cond("GatewayRoute", False, "VirtualGatewayNotFound" if not vgs else "MultipleVirtualGateways",
                         "no VirtualGateway selects this route" if not vgs else
                         "several VirtualGateways select this route: " + ", ".join(v.name for v in vgs))
        if not self.active(vgs[0]):
            return _cond("GatewayRoute", False, "VirtualGatewayNotActive", f"virtual gateway {vgs[0].name} is not active yet")
        rtype = next((k for k in ("httpRoute", "http2Route", "grpcRoute") if k in r.spec), None)
        target = (((r.spec.get(rtype) or {}).get("action") or {}).get("target") or {}).get("virtualService") or {}
        vs = self.world.resolve("VirtualService", target.get("virtualServiceRef"), target.get("virtualServiceARN"), r)
        if vs is None:
            name = (target.get("virtualServiceRef") or {}).get("name") or target.get("virtualServiceARN")
            return _cond("GatewayRoute", False, "VirtualServiceNotFound",
                         f"target virtual service {name} does not exist; requests this route would match fall through")
        if self.world.mesh_of(vs) is not self.world.mesh_of(r):
            return _cond("GatewayRoute", False, "VirtualServiceNotInMesh", f"virtual service {vs.name} is in another mesh")
        if not self.active(vs):
            return _cond("GatewayRoute", False, "VirtualServiceNotActive", f"virtual service {vs.name} is not active yet")
        return _cond("GatewayRoute", True, "Active", f"attached to virtual gateway {vgs[0].name}")


def conditions(world: World, rejected: dict | None = None, pending: dict | None = None) -> dict:
    """resource key -> its Active condition (type, status, reason, message). `rejected`: the
    resources a proxy refused (key -> (the condition's message, whether an earlier version stays
    in force)), False with reason ConfigRejected; what depends on one is not active either, unless
    its earlier version is in force. `pending`: the resources some proxy has been sent but has not
    ACKed yet (key -> message): one that would be True is Unknown, reason Pending, until it is
    served (what depends on it is gated as before: dependency gating is about the manifests)."""
    s = _Status(world, rejected)
    return with_pending({r.key: s.of(r) for kind in APPMESH for r in world.by_kind[kind]}, pending)


def with_pending(conds: dict, pending: dict | None) -> dict:
    """`conds` with each True condition of a `pending` key turned Unknown, reason Pending."""
    out = dict(conds)
    for key, message in (pending or {}).items():
        c = out.get(key)
        if c is not None and c["status"] == "True":
            out[key] = {"type": c["type"], "status": "Unknown", "reason": "Pending", "message": message}
    return out
