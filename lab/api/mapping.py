"""Where API resources live in the lab's store, and how they are found there.

The mapping itself is written down in appmesh.py's docstring; this module implements it:
families (the seven API resource types), `Item` (one API resource as found in the store),
`Index` (one request's snapshot of the store: the model World plus the records), namespace
placement for resources created through the API, the documents applied for them, and the API
metadata kept in the store's kv table.
"""
from __future__ import annotations

import copy
import hashlib
import json
import time
import uuid
from dataclasses import dataclass

from ..model.arns import arn_of as arn
from ..model.kinds import API_VERSION
from ..model.resources import Resource, selector_matches
from .convert import API_FIELDS, REF_KINDS, Refs, k8s_name, label_value, short_hash
from .errors import BadRequest, NotFound

MESH_LABEL = "appmesh.lab/mesh"  # on namespaces (and in selectors) of meshes the API works in
GATEWAY_LABEL = "appmesh.lab/gateway"  # on gateway routes (and in selectors) of API-created gateways
API_NAMESPACE_LABEL = "appmesh.lab/api-namespace"  # "true" on namespaces the API created
MANAGED_BY = {"app.kubernetes.io/managed-by": "appmesh-lab-api"}  # on every resource the API created
CHILD_KINDS = ("VirtualNode", "VirtualService", "VirtualRouter", "VirtualGateway", "GatewayRoute")


@dataclass(frozen=True)
class Family:
    """One API resource type. `kind` is its name in the model's shapes and operations
    (GatewayRouteData, CreateGatewayRoute); `crd` the Kubernetes kind that holds it."""

    kind: str  # GatewayRoute
    plural: str  # GatewayRoutes (ListGatewayRoutes)
    parent: str | None  # VirtualGateway / VirtualRouter for gateway routes / routes; None: the mesh
    crd: str  # GatewayRoute; VirtualRouter for Route (routes are entries of VirtualRouter.spec.routes)

    @property
    def member(self) -> str:  # gatewayRoute: output member, ARN segment
        return self.kind[0].lower() + self.kind[1:]

    @property
    def name_key(self) -> str:  # gatewayRouteName
        return self.member + "Name"

    @property
    def list_key(self) -> str:  # gatewayRoutes
        return self.plural[0].lower() + self.plural[1:]

    @property
    def title(self) -> str:  # "gateway route", for messages
        return "".join(" " + c.lower() if c.isupper() else c for c in self.kind).strip()


FAMILIES = {f.kind: f for f in (
    Family("Mesh", "Meshes", None, "Mesh"),
    Family("VirtualNode", "VirtualNodes", None, "VirtualNode"),
    Family("VirtualService", "VirtualServices", None, "VirtualService"),
    Family("VirtualRouter", "VirtualRouters", None, "VirtualRouter"),
    Family("Route", "Routes", "VirtualRouter", "VirtualRouter"),
    Family("VirtualGateway", "VirtualGateways", None, "VirtualGateway"),
    Family("GatewayRoute", "GatewayRoutes", "VirtualGateway", "GatewayRoute"),
)}
BY_MEMBER = {f.member: f for f in FAMILIES.values()}


@dataclass
class Item:
    """One API resource, as found in the store."""

    family: Family
    name: str  # the API name
    mesh: Resource  # its Mesh (for a mesh: itself)
    parent: Resource | None  # the VirtualGateway / VirtualRouter of a gateway route / route
    resource: Resource  # the resource that holds it (for a route: its VirtualRouter)
    route: dict | None = None  # a route's entry in VirtualRouter.spec.routes

    def names(self) -> dict:
        out = {"meshName": self.mesh.aws_name()}
        if self.parent is not None:
            out[FAMILIES[self.family.parent].name_key] = self.parent.aws_name()
        if self.family.kind != "Mesh":
            out[self.family.name_key] = self.name
        return out

    @property
    def path(self) -> str:
        """The ARN's resource part: mesh/m[/virtualGateway/vg]/gatewayRoute/gr."""
        out = f"mesh/{self.mesh.aws_name()}"
        if self.parent is not None:
            out += f"/{FAMILIES[self.family.parent].member}/{self.parent.aws_name()}"
        if self.family.kind != "Mesh":
            out += f"/{self.family.member}/{self.name}"
        return out

    @property
    def sort_key(self) -> list:
        return [self.name, "/".join(self.resource.key)]


def satisfy(selector) -> dict | None:
    """Labels a selector matches (None: it cannot be satisfied, or is absent and selects nothing)."""
    if selector is None:
        return None
    labels = dict(selector.get("matchLabels") or {})
    for expr in selector.get("matchExpressions") or []:
        if expr.get("operator") == "In" and expr.get("values"):
            labels.setdefault(expr["key"], expr["values"][0])
        elif expr.get("operator") == "Exists":
            labels.setdefault(expr["key"], "true")
    return labels if selector_matches(selector, labels) else None


def crd_doc(kind: str, name: str, namespace: str | None, spec: dict, labels=None, annotations=None) -> dict:
    meta: dict = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    return {"apiVersion": "v1" if kind == "Namespace" else API_VERSION, "kind": kind, "metadata": meta, "spec": spec}


class Index:
    """One request's view of the store: the model World, and records (uid, times, status) as needed."""

    def __init__(self, daemon):
        self.daemon = daemon
        daemon.flush_status()  # the status an apply left for after its answer: written before it is read
        self.world = daemon.world()
        self._records: dict = {}
        self._named: dict = {}

    def record(self, key: tuple):
        """The store's record of a resource (None if there is none)."""
        if key not in self._records:
            self._records[key] = self.daemon.store.get(*key)
        return self._records[key]

    # -- lookups ----------------------------------------------------------------------------

    def meshes(self) -> list:
        return sorted(self.world.by_kind["Mesh"], key=lambda m: (m.aws_name(), m.name))

    def mesh(self, name: str) -> Resource:
        for m in self.meshes():
            if m.aws_name() == name:
                return m
        raise NotFound(f"mesh {name!r} not found")

    def in_mesh(self, r: Resource, mesh: Resource) -> bool:
        m = self.world.mesh_of(r)
        return m is not None and m.key == mesh.key

    def attached_to(self, gr: Resource) -> Resource | None:
        vgs = self.world.gateways_for(gr) or []
        return vgs[0] if len(vgs) == 1 else None

    def items(self, family: Family, mesh: Resource, parent: Resource | None = None) -> list:
        """The API resources of a family in a mesh (under `parent` for routes and gateway routes)."""
        if family.kind == "Mesh":
            return [Item(family, m.aws_name(), m, None, m) for m in self.meshes()]
        if family.kind == "Route":
            return [Item(family, r["name"], mesh, parent, parent, r) for r in parent.spec.get("routes") or []
                    if isinstance(r, dict) and isinstance(r.get("name"), str)]
        out = []
        for r in self.world.by_kind[family.crd]:
            if not self.in_mesh(r, mesh):
                continue
            if family.kind == "GatewayRoute":
                vg = self.attached_to(r)
                if vg is None or vg.key != parent.key:
                    continue
            out.append(Item(family, r.aws_name(), mesh, parent, r))
        return sorted(out, key=lambda i: i.sort_key)

    def named(self, kind: str, mesh: Resource, name: str) -> Resource | None:
        """The VirtualNode / VirtualService / VirtualRouter / VirtualGateway called `name` in a mesh."""
        cache = self._named.get((kind, mesh.key))
        if cache is None:
            cache = {}
            for i in self.items(FAMILIES[kind], mesh):
                cache.setdefault(i.name, i.resource)
            self._named[(kind, mesh.key)] = cache
        return cache.get(name)

    def parent(self, family: Family, mesh: Resource, params: dict) -> Resource | None:
        if family.parent is None:
            return None
        pf = FAMILIES[family.parent]
        r = self.named(pf.kind, mesh, params[pf.name_key])
        if r is None:
            raise NotFound(f"{pf.title} {params[pf.name_key]!r} not found in mesh {mesh.aws_name()!r}")
        return r

    def find(self, family: Family, params: dict) -> Item:
        """The API resource a request names (meshName, parent name, own name), or NotFound."""
        mesh = self.mesh(params["meshName"])
        if family.kind == "Mesh":
            return Item(family, mesh.aws_name(), mesh, None, mesh)
        parent = self.parent(family, mesh, params)
        name = params[family.name_key]
        for i in self.items(family, mesh, parent):
            if i.name == name:
                return i
        where = f"{FAMILIES[family.parent].title} {parent.aws_name()!r} of " if parent is not None else ""
        raise NotFound(f"{family.title} {name!r} not found in {where}mesh {mesh.aws_name()!r}")

    def references(self, r: Resource) -> list:
        """The resources `r`'s spec refers to (virtualServiceRef/ARN, virtualNodeRef/ARN, …), resolved."""
        out: list = []

        def walk(v):
            if isinstance(v, dict):
                for base, kind in REF_KINDS.items():
                    if base + "Ref" in v or base + "ARN" in v:
                        target = self.world.resolve(kind, v.get(base + "Ref"), v.get(base + "ARN"), r)
                        if target is not None:
                            out.append(target)
                for x in v.values():
                    walk(x)
            elif isinstance(v, list):
                for x in v:
                    walk(x)
        walk(r.spec)
        return out

    def referrers(self, target: Resource) -> list:
        return [r for kind in CHILD_KINDS for r in self.world.by_kind[kind]
                if any(t.key == target.key for t in self.references(r))]

    # -- placement of resources created through the API ----------------------------------------

    def api_namespace(self, mesh: Resource) -> tuple[str, dict, dict | None]:
        """(name, labels, document to apply if it does not exist yet) of the mesh's API namespace."""
        name = k8s_name(f"appmesh-api-{mesh.aws_name()}", label=True)
        ns = self.world.get("Namespace", "", name)
        if ns is not None:
            if self._meshes_selecting(ns.labels) != [mesh.key]:
                raise BadRequest(f"namespace {name}, where the API keeps mesh {mesh.aws_name()!r}'s resources, is not "
                                 f"selected by that mesh alone (labels {ns.labels}); fix its labels or the meshes' "
                                 "namespaceSelectors")
            return name, ns.labels, None
        labels = satisfy(mesh.spec.get("namespaceSelector"))
        if labels is None:
            raise BadRequest(f"mesh {mesh.aws_name()!r} has a namespaceSelector no namespace labels can satisfy, "
                             "so the API has nowhere to put its resources")
        labels = {**labels, MESH_LABEL: label_value(mesh.aws_name()), API_NAMESPACE_LABEL: "true"}
        if self._meshes_selecting(labels) != [mesh.key]:
            raise BadRequest(f"a namespace for mesh {mesh.aws_name()!r} (labels {labels}) would also be selected by "
                             "another mesh; make the meshes' namespaceSelectors disjoint")
        return name, labels, crd_doc("Namespace", name, None, {}, labels=labels)

    def gateway_route_home(self, mesh: Resource, vg: Resource) -> tuple[str, list, dict]:
        """(namespace, documents to apply first, route labels) for a gateway route that must attach
        to `vg` alone: the mesh's API namespace, the gateway's own namespace, the mesh's other
        namespaces, or a namespace made for the gateway, whichever comes first."""
        gr_labels = satisfy(vg.spec.get("gatewayRouteSelector") or {})
        if gr_labels is None:
            raise BadRequest(f"virtual gateway {vg.aws_name()!r} has a gatewayRouteSelector no labels can satisfy")
        candidates = []  # (namespace, its labels, documents to apply first)
        try:
            api_ns, api_labels, api_doc = self.api_namespace(mesh)
            candidates.append((api_ns, api_labels, [api_doc] if api_doc else []))
        except BadRequest:
            api_ns = None  # the mesh's API namespace is unusable; another may do
        if self.world.get("Namespace", "", vg.namespace) is not None:
            candidates.append((vg.namespace, self.world.namespace_labels(vg.namespace), []))
        for ns in sorted(self.world.by_kind["Namespace"], key=lambda n: n.name):
            if ns.name not in (api_ns, vg.namespace):
                candidates.append((ns.name, ns.labels, []))
        own = k8s_name(f"appmesh-api-{mesh.aws_name()}-{vg.aws_name()}", label=True)
        mesh_labels, vg_labels = satisfy(mesh.spec.get("namespaceSelector")), satisfy(vg.spec.get("namespaceSelector"))
        if self.world.get("Namespace", "", own) is None and mesh_labels is not None and vg_labels is not None:
            labels = {**vg_labels, **mesh_labels, MESH_LABEL: label_value(mesh.aws_name()), API_NAMESPACE_LABEL: "true"}
            candidates.append((own, labels, [crd_doc("Namespace", own, None, {}, labels=labels)]))
        for ns, labels, docs in candidates:
            if self._meshes_selecting(labels) != [mesh.key]:
                continue
            vgs = [v.key for v in self.world.by_kind["VirtualGateway"]
                   if selector_matches(v.spec.get("namespaceSelector"), labels)
                   and selector_matches(v.spec.get("gatewayRouteSelector"), gr_labels, absent_matches=True)]
            if vgs == [vg.key]:
                return ns, docs, gr_labels
        raise BadRequest(f"no namespace of mesh {mesh.aws_name()!r} can hold a gateway route that attaches to virtual "
                         f"gateway {vg.aws_name()!r} alone (its namespaceSelector is "
                         f"{vg.spec.get('namespaceSelector')}, and other gateways select the same namespaces); narrow "
                         "the gateways' namespaceSelector or gatewayRouteSelector")

    def _meshes_selecting(self, labels: dict) -> list:
        return [m.key for m in self.world.by_kind["Mesh"] if selector_matches(m.spec.get("namespaceSelector"), labels)]

    def free_name(self, kind: str, namespace: str, api_name: str, salt: str) -> str:
        """A Kubernetes name for a new resource that no stored resource of its kind has yet."""
        name = k8s_name(api_name, salt)
        if self.record((kind, namespace, name)) is None:
            return name
        suffix = short_hash(salt + "\0" + api_name)
        name = name[:240].rstrip("-.") + "-" + suffix
        if self.record((kind, namespace, name)) is not None:
            raise BadRequest(f"the Kubernetes name {name} for {api_name!r} is taken in namespace {namespace!r}")
        return name

    def api_namespaces(self, mesh: Resource) -> list:
        """Namespaces the API created for a mesh that hold nothing any more."""
        return [("Namespace", "", ns.name) for ns in self.world.by_kind["Namespace"]
                if ns.labels.get(API_NAMESPACE_LABEL) == "true"
                and ns.labels.get(MESH_LABEL) == label_value(mesh.aws_name())
                and not self.daemon.store.list(namespace=ns.name)]

    # -- API metadata (kv table: api:<ARN resource part>) -------------------------------------

    def metadata(self, item: Item) -> dict:
        """uid, createdAt, lastUpdatedAt, version, tags and clientTokens of an API resource.

        A resource the API created or updated has an entry in the kv table, tied to its record's
        uid (a resource deleted and re-created as a manifest does not inherit it). Its version
        grows by one on each API update, and by one more if the resource changed outside the API
        since (a manifest edit). A resource that only ever came as manifests gets its uid and
        times from its record and its version from the record's generation (routes: 1)."""
        rec = self.record(item.resource.key)
        fp = fingerprint(item)
        entry = self.daemon.store.kv_get(meta_key(item))
        if entry and rec is not None and entry.get("record") == rec.uid:
            changed = entry.get("fingerprint") != fp
            return {**entry, "version": entry["version"] + (1 if changed else 0), "fingerprint": fp,
                    "lastUpdatedAt": rec.updated if changed else entry["lastUpdatedAt"]}
        uid = rec.uid if rec is not None else ""
        if item.route is not None:
            uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{uid}/route/{item.name}"))
        return {"uid": uid, "createdAt": rec.created if rec else time.time(),
                "lastUpdatedAt": rec.updated if rec else time.time(),
                "version": 1 if item.route is not None or rec is None else rec.generation,
                "record": rec.uid if rec else "", "fingerprint": fp, "tags": [], "tokens": []}

    def save_metadata(self, item: Item, entry: dict) -> None:
        rec = self.record(item.resource.key)
        self.daemon.store.kv_set(meta_key(item), {**entry, "record": rec.uid if rec else "",
                                                  "fingerprint": fingerprint(item)})

    def status(self, item: Item) -> str:
        rec = self.record(item.resource.key)
        conds = (rec.status.get("conditions") if rec else None) or []
        # App Mesh's own status is the resource's, not the data plane's: it is ACTIVE from creation,
        # also while the proxies have not ACKed it yet (the condition's Unknown/Pending)
        ok = any(c.get("type") == f"{item.resource.kind}Active" and (c.get("status") == "True" or c.get("reason") == "Pending"
                                                                     and c.get("status") == "Unknown") for c in conds)
        return "ACTIVE" if ok else "INACTIVE"


def meta_key(item: Item) -> str:
    return f"api:{item.path}"


def api_fields(r: Resource) -> dict:
    """The API-only fields kept on a resource: {"spec": [[path, value]…], "routes": {name: […]}}."""
    try:
        value = json.loads(r.annotations.get(API_FIELDS) or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def with_api_fields(doc: dict, spec_extras=None, route: str | None = None, route_extras=None) -> dict:
    """`doc` with its API-only-fields annotation set for the spec (or for one route)."""
    doc = copy.deepcopy(doc)
    meta = doc.setdefault("metadata", {})
    current = {}
    if isinstance(meta.get("annotations"), dict) and meta["annotations"].get(API_FIELDS):
        try:
            current = json.loads(meta["annotations"][API_FIELDS])
        except ValueError:
            current = {}
    if route is None:
        current["spec"] = spec_extras or []
    else:
        routes = current.setdefault("routes", {})
        routes[route] = route_extras or []
        current["routes"] = {k: v for k, v in routes.items() if v}
    current = {k: v for k, v in current.items() if v}
    annotations = dict(meta.get("annotations") or {})
    if current:
        annotations[API_FIELDS] = json.dumps(current, sort_keys=True)
    else:
        annotations.pop(API_FIELDS, None)
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    return doc


def fingerprint(item: Item) -> str:
    """A digest of what the API shows of a resource's spec (a router's routes not included)."""
    fields = api_fields(item.resource)
    if item.route is not None:
        content = {"route": item.route, "extras": (fields.get("routes") or {}).get(item.name)}
    else:
        routes = "routes" if item.resource.kind == "VirtualRouter" else None
        spec = {k: v for k, v in item.resource.spec.items() if k != routes}
        content = {"spec": spec, "extras": fields.get("spec")}
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class MeshRefs(Refs):
    """Names in API specs ↔ references in CRD specs, within one mesh."""

    index: Index
    mesh: Resource
    region: str
    account: str
    owner: Resource | None = None  # the resource whose spec is read (its namespace is a Ref's default)

    def to_crd(self, kind: str, name: str):
        r = self.index.named(kind, self.mesh, name)
        if r is not None:
            return "Ref", {"name": r.name, "namespace": r.namespace}
        member = kind[0].lower() + kind[1:]
        return "ARN", arn(self.region, self.account, f"mesh/{self.mesh.aws_name()}/{member}/{name}")

    def to_api(self, kind: str, ref, arn_value) -> str:
        if isinstance(arn_value, str):
            return arn_value.rsplit("/", 1)[-1]
        if not isinstance(ref, dict) or not ref.get("name"):
            return ""
        target = self.index.world.resolve(kind, ref, None, self.owner) if self.owner is not None else None
        if target is not None:
            return target.aws_name()
        # a dangling reference: the App Mesh name the referent would have by the controller's defaults
        ns = ref.get("namespace") or (self.owner.namespace if self.owner is not None else "")
        return f"{ref['name']}.{ns}" if kind == "VirtualService" else f"{ref['name']}_{ns}"
