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
from ..model.semantics import ReadingWorld, same_resource

APPMESH = ("Mesh", "VirtualNode", "VirtualService", "VirtualRouter", "VirtualGateway", "GatewayRoute")


_SHARED: dict = {}  # (kind, reason, message) -> the True condition: most resources have one of a few


def _cond(kind: str, ok: bool, reason: str, message: str) -> dict:
    """A condition. Callers treat conditions as read-only (a status is made from a copy): the True
    ones, a few distinct, are one dict each, not one per resource."""
    if ok:
        c = _SHARED.get((kind, reason, message))
        if c is None:
            c = {"type": f"{kind}Active", "status": "True", "reason": reason, "message": message}
            if len(_SHARED) < 4096:
                _SHARED[(kind, reason, message)] = c
        return c
    return {"type": f"{kind}Active", "status": "False", "reason": reason, "message": message}


class _Status:
    def __init__(self, world: World, rejected: dict | None = None, memo: dict | None = None):
        self.world = world
        self.rejected = rejected or {}
        self.memo: dict = memo if memo is not None else {}
        self.reads: dict | None = None  # key -> what of(key) read (keys, kinds), when recording (Conditions)

    def of(self, r: Resource) -> dict:
        if r.key not in self.memo:
            self.memo[r.key] = _cond(r.kind, False, "Pending", "dependency cycle")  # guards recursion
            if self.reads is not None:
                self.world.begin()
            if r.key in self.rejected:
                self.memo[r.key] = _cond(r.kind, False, "ConfigRejected", self.rejected[r.key][0])
            else:
                self.memo[r.key] = getattr(self, r.kind)(r)
            if self.reads is not None:
                keys, kinds = self.world.end()
                self.reads[r.key] = (tuple(keys), kinds)  # iterated only: a tuple is a third of a frozenset
        if self.reads is not None:
            self.world.note(r.key)  # whoever asks depends on this resource's condition
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


class Conditions:
    """`conditions()` kept from one call to the next: each condition notes what it read from the
    world (resources by key, found or not; kinds listed whole; the conditions it asked for), and a
    call computes again only the conditions whose reads a change touches, and then those that read
    one of them, and so on. The result equals `conditions(world, rejected)` (tests/translate/
    test_incremental.py checks it on random sequences of changes)."""

    def __init__(self):
        self._resources: dict = {}  # key -> the resource object of the last call
        self._rejected: dict = {}
        self._conds: dict = {}  # key -> condition
        self._reads: dict = {}  # key -> (keys, kinds) it read
        self.computed: list = []  # keys computed by the last call (for tests, benches)
        self.changed: set = set()  # keys of the resources (and rejections) the last call found changed

    def update(self, world: World, rejected: dict | None = None) -> dict:
        rejected = rejected or {}
        old = self._resources
        now = {r.key: r for kind in APPMESH for r in world.by_kind[kind]}
        others = {k: r for k, r in world.by_key.items() if r.kind not in APPMESH}  # Namespaces: read by the mesh gate
        now_all = {**now, **others}
        changed = {k for k in now_all.keys() | old.keys() if not same_resource(now_all.get(k), old.get(k))}
        changed |= {k for k in rejected.keys() | self._rejected.keys() if rejected.get(k) != self._rejected.get(k)}
        self.changed = changed
        if not changed and old:
            self.computed = []
            return dict(self._conds)
        kinds = {k[0] for k in changed}
        readers: dict = {}
        for key, (keys, ks) in self._reads.items():
            for k in keys:
                readers.setdefault(k, []).append(key)
        dirty = {k for k in changed if k in now}
        dirty |= {key for key, (_, ks) in self._reads.items() if ks & kinds}
        todo = [k for k in changed] + list(dirty)
        while todo:
            k = todo.pop()
            for reader in readers.get(k, ()):
                if reader not in dirty:
                    dirty.add(reader)
                    todo.append(reader)
        memo = {k: c for k, c in self._conds.items() if k in now and k not in dirty}
        reads = {k: v for k, v in self._reads.items() if k in memo}
        s = _Status(ReadingWorld(world), rejected, memo)
        s.reads = reads
        self.computed = [k for k in now if k not in memo]
        conds = {key: s.of(r) for key, r in now.items()}
        self._resources, self._rejected, self._conds, self._reads = now_all, dict(rejected), conds, reads
        return dict(conds)


def with_pending(conds: dict, pending: dict | None) -> dict:
    """`conds` with each True condition of a `pending` key turned Unknown, reason Pending."""
    out = dict(conds)
    shared: dict = {}  # many resources wait for the same proxies: one condition per type and message
    for key, message in (pending or {}).items():
        c = out.get(key)
        if c is not None and c["status"] == "True":
            made = shared.get((c["type"], message))
            if made is None:
                made = shared[(c["type"], message)] = {"type": c["type"], "status": "Unknown", "reason": "Pending",
                                                       "message": message}
            out[key] = made
    return out
