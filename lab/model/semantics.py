"""Validation, pass two: what the documents mean together.

References resolve; namespaces belong to exactly one mesh; each GatewayRoute attaches to
exactly one VirtualGateway; target and match ports exist; pods are injected by the
controller's rules. `complete=True` means the set is the whole world (the lab's store plus
an apply): then a missing referent is an error. Otherwise (validating a folder) what is
missing may exist elsewhere, and only what is present is checked.

Some of these are rejections at create time in the real controller (mesh membership,
gateway attachment, injection), others only make the resource inactive (a virtual service
whose provider does not exist yet). `Problem.code` says which: codes in ADMISSION are
rejected by an apply; the rest become status conditions at run time.
"""
from __future__ import annotations

import bisect
import difflib
import itertools
from collections import defaultdict

from . import gatewayapi_refs as gwrefs
from .problems import Problem
from .resources import Resource, selector_matches

INJECT_LABEL = "appmesh.k8s.aws/sidecarInjectorWebhook"
SKIP_IMAGE_ANNOTATION = "appmesh.k8s.aws/virtualGatewaySkipImageOverride"
DEFAULT_ENVOY_IMAGE = "envoyproxy/envoy:v1.40.0"
GATEWAY_API_CHECKED = ("Gateway", "HTTPRoute", "GRPCRoute")
ADMISSION = {"duplicate", "mesh-membership", "gateway-attachment", "injection", "protocol", "port"}


_SERIALS = itertools.count()


class World:
    """An index of resources by kind, namespace and name. Nothing changes a World once made.

    `serial` tells Worlds apart; `delta` is None, or (the serial of the World this one was derived
    from, the keys that differ) for one made by with_changes(): what a consumer that saw that World
    last needs to look at (lab/translate/incremental.py)."""

    delta = None

    def __init__(self, resources):
        self.serial = next(_SERIALS)
        self.by_key: dict = {}
        self.by_kind: dict = defaultdict(list)
        by_key, by_kind = self.by_key, self.by_kind
        for r in resources:
            kind = r.kind
            by_key[(kind, r.namespace or "", r.name)] = r  # r.key, without a call per resource
            by_kind[kind].append(r)

    def with_changes(self, changes: dict) -> "World":
        """A new World: this one with `changes` (key -> the new Resource, or None: removed) put in.
        For a World whose lists are in key order (made from a list in key order, as the store lists
        its records) it equals World() of the whole new list in key order, at a cost proportional to
        the change (a list of a kind the change touches is copied, not rebuilt)."""
        new = World.__new__(World)
        new.serial = next(_SERIALS)
        new.delta = (self.serial, frozenset(changes))
        new.by_key = by_key = dict(self.by_key)
        new.by_kind = by_kind = defaultdict(list, self.by_kind)
        copied: set = set()
        for key in sorted(changes):
            kind, r = key[0], changes[key]
            if key not in by_key and r is None:
                continue
            if kind not in copied:
                by_kind[kind] = list(by_kind.get(kind, ()))
                copied.add(kind)
            lst = by_kind[kind]
            i = bisect.bisect_left(lst, key, key=_key_of)
            here = i < len(lst) and _key_of(lst[i]) == key
            if r is None:
                del by_key[key]
                if here:
                    del lst[i]
            else:
                by_key[key] = r
                if here:
                    lst[i] = r
                else:
                    lst.insert(i, r)
        for kind in copied:
            if not by_kind[kind]:
                del by_kind[kind]
        return new

    def get(self, kind, namespace, name):
        return self.by_key.get((kind, namespace or "", name))

    def namespace_labels(self, ns):
        r = self.get("Namespace", "", ns)
        return r.labels if r else None

    def meshes_for(self, ns):
        labels = self.namespace_labels(ns)
        if labels is None:
            return None
        return [m for m in self.by_kind["Mesh"] if selector_matches(m.spec.get("namespaceSelector"), labels)]

    def mesh_of(self, r: Resource):
        meshes = self.meshes_for(r.namespace) if r.namespace else None
        return meshes[0] if meshes and len(meshes) == 1 else None

    def gateways_for(self, gr: Resource):
        labels = self.namespace_labels(gr.namespace)
        if labels is None:
            return None
        return [vg for vg in self.by_kind["VirtualGateway"]
                if selector_matches(vg.spec.get("namespaceSelector"), labels)
                and selector_matches(vg.spec.get("gatewayRouteSelector"), gr.labels, absent_matches=True)]

    def resolve(self, kind, ref: dict | None, arn: str | None, owner: Resource):
        """A *Ref (name, namespace defaulting to the owner's) or an ARN (…/mesh/m/kind/awsName)."""
        if isinstance(ref, dict) and ref.get("name"):
            return self.get(kind, ref.get("namespace") or owner.namespace, ref["name"])
        if isinstance(arn, str):
            parts = arn.split(":")[-1].split("/")
            if len(parts) >= 4 and parts[0] == "mesh":
                for r in self.by_kind[kind]:
                    if r.aws_name() == parts[3]:
                        return r
        return None

    def pod_owners(self, namespace: str, labels: dict):
        vns = [v for v in self.by_kind["VirtualNode"] if v.namespace == namespace
               and selector_matches(v.spec.get("podSelector"), labels)]
        vgs = [g for g in self.by_kind["VirtualGateway"] if g.namespace == namespace
               and selector_matches(g.spec.get("podSelector"), labels)]
        return vns, vgs


def _key_of(r: Resource) -> tuple:
    return (r.kind, r.namespace or "", r.name)


_NO_KEYS: frozenset = frozenset()
_KIND_SETS: dict = {}  # frozenset of kinds -> itself (a few distinct ones: one object each)


class ReadingWorld(World):
    """The same index as `world`, noting what is read from it, per step: `begin()` opens a step,
    `end()` closes it and returns (keys looked up, found or not; kinds listed whole). Steps nest
    (a step's reads are its own); `note(key)` adds a key to the open step by hand."""

    def __init__(self, world: World):  # no super().__init__: the index is shared, not rebuilt
        self.by_key = world.by_key
        self._inner = world  # its get() is called too: a recording world inside another records in both
        self._stack: list = []
        # by_kind notes into the stack, not into this object: no reference cycle, so a ReadingWorld
        # and the World it reads are freed as soon as the last reference goes, not by a collection
        self.by_kind = _ReadKinds(world.by_kind, self._stack)

    def begin(self) -> None:
        self._stack.append((set(), set()))

    def end(self) -> tuple:
        keys, kinds = self._stack.pop()
        # kept by the validation index, the conditions and a gateway's memo for every resource: no
        # keys is one object, and each of the few sets of kinds read is one object
        keys = frozenset(keys) if keys else _NO_KEYS
        kinds = frozenset(kinds)
        return keys, _KIND_SETS.setdefault(kinds, kinds) if len(_KIND_SETS) < 4096 else kinds

    def note(self, key) -> None:
        if self._stack:
            self._stack[-1][0].add(key)

    def note_kind(self, kind) -> None:
        if self._stack:
            self._stack[-1][1].add(kind)

    def get(self, kind, namespace, name):
        r = self._inner.get(kind, namespace, name)
        # a resource found notes its own key (one tuple per resource, kept by every reader)
        self.note(r.key if r is not None else (kind, namespace or "", name))
        return r


class _ReadKinds(dict):
    """by_kind that notes every kind listed (into the open step of a ReadingWorld's stack)."""

    def __init__(self, source, stack: list):
        super().__init__()
        self._source, self._stack = source, stack

    def __getitem__(self, kind):
        if self._stack:
            self._stack[-1][1].add(kind)
        return self._source[kind]

    def get(self, kind, default=None):
        if self._stack:
            self._stack[-1][1].add(kind)
        return self._source.get(kind, default)


def same_resource(a, b) -> bool:
    """The same resource content (the lab's daemon hands out the same object for an unchanged record)."""
    return a is b or (a is not None and b is not None and a.kind == b.kind and a.api_version == b.api_version
                      and a.labels == b.labels and a.annotations == b.annotations and a.spec == b.spec
                      and a.raw == b.raw)


def _ref_name(ref, arn) -> str:
    if isinstance(ref, dict):
        ns = f"{ref.get('namespace')}/" if ref.get("namespace") else ""
        return f"{ns}{ref.get('name')}"
    return str(arn)


class _Checker:
    def __init__(self, resources, complete):
        self.world = World(resources)
        self.complete = complete
        self.problems: list[Problem] = []

    def add(self, r: Resource, path, message, hint="", code="reference", severity="error"):
        self.problems.append(Problem(r.file, r.line_of(path), path, message, hint, code, severity,
                                     r.doc.index if r.doc else 0))

    def missing(self, r, path, message, hint, code="reference"):
        """A referent not among the documents: an error for a complete world, otherwise a warning."""
        self.add(r, path, message, hint, code, "error" if self.complete else "warning")

    # -- rules -------------------------------------------------------------------------

    def gateway_api(self, r: Resource):
        """Gateway API references (lab/model/gatewayapi_refs.py): a cluster accepts such objects and
        reports these in their status, so they never reject an apply (code "reference")."""
        for path, message, hint, severity in gwrefs.findings(self.world, r):
            if severity == "error":
                self.missing(r, path, message, hint)
            else:
                self.add(r, path, message, hint, "reference", "warning")

    def duplicates(self, resources):
        seen = {}
        for r in resources:
            if r.key in seen and seen[r.key] is not r:
                first = seen[r.key]
                self.add(r, "metadata.name", f"{r.ref} is defined twice (first at {first.file}:{first.doc.line if first.doc else 0})",
                         "rename one of them or remove the copy", "duplicate")
            seen.setdefault(r.key, r)

    def mesh_membership(self, r: Resource):
        meshes = self.world.meshes_for(r.namespace)
        if meshes is None:
            near = difflib.get_close_matches(str(r.namespace), [n.name for n in self.world.by_kind["Namespace"]], 1, 0.8)
            self.missing(r, "metadata.namespace", f"namespace {r.namespace!r} is not among the documents, so its mesh "
                         "cannot be determined", f"did you mean {near[0]!r}? (or add a Namespace {r.namespace!r} whose "
                         "labels match a Mesh's namespaceSelector)" if near else f"add a Namespace {r.namespace!r} "
                         "whose labels match a Mesh's namespaceSelector", "mesh-membership")
            return
        if not meshes:
            if not self.world.by_kind["Mesh"] and not self.complete:
                return
            labels = self.world.namespace_labels(r.namespace)
            self.add(r, "metadata.namespace", f"namespace {r.namespace!r} (labels {labels or '{}'}) is not selected by "
                     "any Mesh's namespaceSelector, so this resource belongs to no mesh",
                     "label the namespace to match a Mesh, e.g. mesh: <mesh name>", "mesh-membership")
        elif len(meshes) > 1:
            self.add(r, "metadata.namespace", f"namespace {r.namespace!r} is selected by several meshes "
                     f"({', '.join(m.name for m in meshes)})", "make the Meshes' namespaceSelectors disjoint",
                     "mesh-membership")

    def gateway_route(self, gr: Resource):
        vgs = self.world.gateways_for(gr)
        route_type = next((k for k in ("httpRoute", "http2Route", "grpcRoute") if k in gr.spec), None)
        body = gr.spec.get(route_type) or {}
        vg = None
        if vgs is None:
            pass  # namespace missing: reported by mesh_membership
        elif not vgs:
            if self.world.by_kind["VirtualGateway"] or self.complete:
                self.add(gr, "metadata", f"no VirtualGateway selects this gateway route: none has a namespaceSelector "
                         f"matching namespace {gr.namespace!r} and a gatewayRouteSelector matching its labels",
                         "label the namespace (and the route) to match the VirtualGateway's selectors",
                         "gateway-attachment")
        elif len(vgs) > 1:
            self.add(gr, "metadata", "several VirtualGateways select this gateway route ("
                     + ", ".join(f"{v.namespace}/{v.name}" for v in vgs) + ")",
                     "narrow the gateways' namespaceSelector or gatewayRouteSelector so exactly one matches",
                     "gateway-attachment")
        else:
            vg = vgs[0]
            mg, mv = self.world.mesh_of(gr), self.world.mesh_of(vg)
            if mg and mv and mg is not mv:
                self.add(gr, "metadata", f"the VirtualGateway {vg.namespace}/{vg.name} that selects this route is in "
                         f"mesh {mv.name}, the route in mesh {mg.name}", "keep both in one mesh", "gateway-attachment")
        target = ((body.get("action") or {}).get("target") or {})
        vsref = (target.get("virtualService") or {})
        base = f"spec.{route_type}.action.target"
        vs = self.world.resolve("VirtualService", vsref.get("virtualServiceRef"), vsref.get("virtualServiceARN"), gr)
        if vs is None:
            self.missing(gr, f"{base}.virtualService", f"virtual service "
                         f"{_ref_name(vsref.get('virtualServiceRef'), vsref.get('virtualServiceARN'))!r} not found",
                         "create the VirtualService, or fix the name (and namespace) of virtualServiceRef")
        else:
            mg, mv = self.world.mesh_of(gr), self.world.mesh_of(vs)
            if mg and mv and mg is not mv:
                self.add(gr, f"{base}.virtualService", f"the target virtual service is in mesh {mv.name}, "
                         f"this route in mesh {mg.name}", "target a virtual service of the same mesh")
            self.target_port(gr, f"{base}.port", target.get("port"), vs)
        if vg is not None:
            listeners = [lst.get("portMapping") or {} for lst in vg.spec.get("listeners") or []]
            want = {"httpRoute": "http", "http2Route": "http2", "grpcRoute": "grpc"}[route_type]
            mport = (body.get("match") or {}).get("port")
            if len(listeners) > 1 and mport is None:
                self.add(gr, f"spec.{route_type}.match.port", f"VirtualGateway {vg.name} has {len(listeners)} listeners, "
                         "so the route must say which one it matches", "add match.port: <one of "
                         + ", ".join(str(p.get("port")) for p in listeners) + ">", "port")
            elif mport is not None and mport not in [p.get("port") for p in listeners]:
                self.add(gr, f"spec.{route_type}.match.port", f"VirtualGateway {vg.name} has no listener on port {mport}",
                         "use one of " + ", ".join(str(p.get("port")) for p in listeners), "port")
            # Decision (APPMESH-FACTS §3, INFERENCE): the route type must match a listener's protocol.
            protos = {p.get("protocol") for p in listeners
                      if mport is None or p.get("port") == mport}
            if protos and want not in protos:  # empty: match.port names no listener, reported above
                fix = {"http": "httpRoute", "http2": "http2Route", "grpc": "grpcRoute"}
                self.add(gr, f"spec.{route_type}", f"a {route_type} needs a {want} listener; VirtualGateway {vg.name} "
                         f"listens with {', '.join(sorted(p for p in protos if p))}",
                         "use " + " or ".join(fix[p] for p in sorted(protos) if p in fix), "protocol")

    def target_port(self, r, path, port, vs: Resource):
        provider = vs.spec.get("provider") or {}
        prov = None
        if "virtualNode" in provider:
            p = provider["virtualNode"]
            prov = self.world.resolve("VirtualNode", p.get("virtualNodeRef"), p.get("virtualNodeARN"), vs)
        elif "virtualRouter" in provider:
            p = provider["virtualRouter"]
            prov = self.world.resolve("VirtualRouter", p.get("virtualRouterRef"), p.get("virtualRouterARN"), vs)
        if prov is None:
            return
        self.listener_port(r, path, port, prov)

    def listener_port(self, r, path, port, prov: Resource):
        ports = [(lst.get("portMapping") or {}).get("port") for lst in prov.spec.get("listeners") or []]
        if len(ports) > 1 and port is None:
            self.add(r, path, f"{prov.kind} {prov.name} has {len(ports)} listeners, so the port must be given",
                     f"add port: <one of {', '.join(map(str, ports))}>", "port")
        elif port is not None and ports and port not in ports:
            self.add(r, path, f"{prov.kind} {prov.name} has no listener on port {port}",
                     f"use one of {', '.join(map(str, ports))}", "port")

    def virtual_service(self, vs: Resource):
        provider = vs.spec.get("provider") or {}
        for kind, key in (("VirtualNode", "virtualNode"), ("VirtualRouter", "virtualRouter")):
            if key in provider:
                p = provider[key]
                ref, arn = p.get(f"{key}Ref"), p.get(f"{key}ARN")
                if self.world.resolve(kind, ref, arn, vs) is None:
                    self.missing(vs, f"spec.provider.{key}", f"{kind} {_ref_name(ref, arn)!r} not found",
                                 f"create the {kind}, or fix the name of {key}Ref")

    def virtual_router(self, vr: Resource):
        ports = [(lst.get("portMapping") or {}).get("port") for lst in vr.spec.get("listeners") or []]
        for i, route in enumerate(vr.spec.get("routes") or []):
            rtype = next((k for k in ("httpRoute", "http2Route", "grpcRoute", "tcpRoute") if k in route), None)
            if not rtype:
                continue
            body = route[rtype]
            base = f"spec.routes[{i}].{rtype}"
            mport = (body.get("match") or {}).get("port")
            if len(ports) > 1 and mport is None:
                self.add(vr, f"{base}.match.port", f"the router has {len(ports)} listeners, so each route needs match.port",
                         f"add match.port: <one of {', '.join(map(str, ports))}>", "port")
            for j, t in enumerate((body.get("action") or {}).get("weightedTargets") or []):
                vn = self.world.resolve("VirtualNode", t.get("virtualNodeRef"), t.get("virtualNodeARN"), vr)
                path = f"{base}.action.weightedTargets[{j}]"
                if vn is None:
                    self.missing(vr, path, f"virtual node {_ref_name(t.get('virtualNodeRef'), t.get('virtualNodeARN'))!r} "
                                 "not found", "create the VirtualNode, or fix virtualNodeRef")
                else:
                    self.listener_port(vr, f"{path}.port", t.get("port"), vn)

    def virtual_node(self, vn: Resource):
        for i, b in enumerate(vn.spec.get("backends") or []):
            v = b.get("virtualService") or {}
            if self.world.resolve("VirtualService", v.get("virtualServiceRef"), v.get("virtualServiceARN"), vn) is None:
                self.missing(vn, f"spec.backends[{i}].virtualService", "backend virtual service "
                             f"{_ref_name(v.get('virtualServiceRef'), v.get('virtualServiceARN'))!r} not found",
                             "create the VirtualService, or fix virtualServiceRef", "reference")

    def gateway_priorities(self):
        """Equal explicit priorities on one gateway are legal; the tie is broken by the lab's
        specificity rule (see translate/precedence.py). Say so, because it surprises people."""
        by_vg = defaultdict(list)
        for gr in self.world.by_kind["GatewayRoute"]:
            vgs = self.world.gateways_for(gr) or []
            if len(vgs) == 1 and gr.spec.get("priority") is not None:
                by_vg[vgs[0].key].append(gr)
        for routes in by_vg.values():
            seen = {}
            for gr in sorted(routes, key=lambda r: r.key):
                p = gr.spec["priority"]
                if p in seen:
                    self.add(gr, "spec.priority", f"priority {p} is also used by gateway route {seen[p].name} on the same "
                             "gateway; the more specific match is tried first", "give each route its own priority",
                             "priority", "warning")
                seen.setdefault(p, gr)

    def pods(self, r: Resource):
        """The injector's rules (APPMESH-FACTS §9.4) applied to a Deployment's pod template or a Pod."""
        if r.kind == "Deployment":
            tmpl = r.spec.get("template") or {}
            labels = (tmpl.get("metadata") or {}).get("labels") or {}
            annotations = (tmpl.get("metadata") or {}).get("annotations") or {}
            pod_spec, base = tmpl.get("spec") or {}, "spec.template"
        else:
            labels, annotations, pod_spec, base = r.labels, r.annotations, r.spec, ""
        ns_labels = self.world.namespace_labels(r.namespace)
        mode = str(annotations.get(INJECT_LABEL) or (ns_labels or {}).get(INJECT_LABEL) or "").lower()
        if ns_labels is None or INJECT_LABEL not in ns_labels:
            mode = "off"  # the webhook never sees pods of unlabeled namespaces
        vns, vgs = self.world.pod_owners(r.namespace, labels)
        self.images(r, pod_spec, base, annotations, gateway=mode not in ("off", "disabled") and len(vgs) == 1
                    and not vns, namespace_known=ns_labels is not None)
        if ns_labels is None:
            return
        where = f"{base}.metadata.labels" if base else "metadata.labels"
        if mode in ("off", "disabled"):
            if vgs and mode == "off":
                self.add(r, where, f"VirtualGateway {vgs[0].name} selects these pods, but namespace {r.namespace!r} is not "
                         f"labeled {INJECT_LABEL}: enabled, so they never become the gateway",
                         f"label the namespace {INJECT_LABEL}: enabled", "injection")
            return
        if vns and vgs:
            self.add(r, where, f"these pods match both VirtualNode {vns[0].name} and VirtualGateway {vgs[0].name}; "
                     "the injector rejects such a pod", "change the labels or selectors so only one matches", "injection")
        elif len(vns) > 1:
            self.add(r, where, "these pods match several VirtualNodes (" + ", ".join(v.name for v in vns) + "); "
                     "the injector rejects such a pod", "make the VirtualNodes' podSelectors disjoint", "injection")
        elif len(vgs) > 1:
            self.add(r, where, "these pods match several VirtualGateways (" + ", ".join(v.name for v in vgs) + ")",
                     "make the VirtualGateways' podSelectors disjoint", "injection")
        elif not vns and not vgs and mode == "enabled" and (self.world.by_kind["VirtualNode"]
                                                            or self.world.by_kind["VirtualGateway"] or self.complete):
            self.add(r, where, f"sidecar injection is enabled in namespace {r.namespace!r}, but no VirtualNode or "
                     "VirtualGateway podSelector matches these pods' labels, so the injector rejects them",
                     "add a VirtualNode whose podSelector matches these labels, or annotate the pod template "
                     f"{INJECT_LABEL}: disabled", "injection")
        elif vgs:
            names = [c.get("name") for c in pod_spec.get("containers") or []]
            if "envoy" not in names:
                self.add(r, f"{base}.spec.containers" if base else "spec.containers",
                         f"VirtualGateway {vgs[0].name} selects these pods, but no container is named envoy, so nothing "
                         f"becomes the gateway (containers: {', '.join(map(str, names))})",
                         "name the gateway container envoy", "injection")

    def images(self, r: Resource, pod_spec: dict, base: str, annotations: dict, gateway: bool, namespace_known: bool):
        """Kubernetes lets a pod template's container leave out `image` (the pod that is made from
        it must have one): App Mesh's injector sets the image of a gateway pod's `envoy`
        container, unless the pod opts out with virtualGatewaySkipImageOverride. Any other
        container without an image can never run."""
        skip = str(annotations.get(SKIP_IMAGE_ANNOTATION, "")).lower() == "enabled"
        for group in ("initContainers", "containers"):
            for i, c in enumerate(pod_spec.get(group) or []):
                if not isinstance(c, dict) or c.get("image") is not None:
                    continue
                if group == "containers" and c.get("name") == "envoy" and (gateway and not skip or not namespace_known):
                    continue  # the injector fills it in (or the namespace is not known yet to tell)
                path = f"{base}.spec.{group}[{i}].image" if base else f"spec.{group}[{i}].image"
                why = (f"pod annotation {SKIP_IMAGE_ANNOTATION}: enabled tells the injector to keep the gateway's image"
                       if gateway and skip and c.get("name") == "envoy" else
                       "only App Mesh's injector fills in an image, for the envoy container of a VirtualGateway's pods")
                self.add(r, path, f"container {c.get('name')!r} has no image, so its pods cannot be created ({why})",
                         f"add image: <the image to run>, e.g. image: {DEFAULT_ENVOY_IMAGE}" if c.get("name") == "envoy"
                         else "add image: <the image to run>", "required")

    def one(self, r: Resource):
        """The rules about one resource (its references, membership, ports, pods)."""
        if r.kind in ("VirtualNode", "VirtualService", "VirtualRouter", "VirtualGateway", "GatewayRoute"):
            self.mesh_membership(r)
        handler = {"GatewayRoute": self.gateway_route, "VirtualService": self.virtual_service,
                   "VirtualRouter": self.virtual_router, "VirtualNode": self.virtual_node,
                   "Deployment": self.pods, "Pod": self.pods}.get(r.kind)
        if handler:
            handler(r)
        elif r.kind in GATEWAY_API_CHECKED:
            self.gateway_api(r)

    def run(self, resources, subjects, priorities: bool = True):
        self.duplicates(resources)
        for r in subjects:
            self.one(r)
        if priorities:
            self.gateway_priorities()
        return self.problems


def check_semantics(resources, *, complete: bool = False, existing=()) -> list[Problem]:
    """Check `resources` against each other and against `existing` ones (the lab's store).
    `resources` are reported on, and stored ones where `resources` give them a new error (a second
    mesh selecting their namespace, a virtual node or gateway selecting their pods): accepting such
    an apply would take running pods out of the mesh."""
    world = list(existing)
    keys = {r.key for r in resources}
    others = [r for r in world if r.key not in keys]
    world = others + list(resources)
    problems = _Checker(world, complete).run(list(resources), list(resources))
    if others and resources:
        def errors(checker):
            return [p for p in checker.run([], others) if p.severity == "error" and p.code != "reference"]
        before = {(p.file, p.path, p.message) for p in errors(_Checker(list(existing), complete))}
        problems += [p for p in errors(_Checker(world, complete)) if (p.file, p.path, p.message) not in before]
    return [p for p in problems if not (p.code == "priority" and p.file == "<lab>")]


def _errors(problems) -> list:
    return [p for p in problems if p.severity == "error" and p.code != "reference"]


class SemanticIndex:
    """`check_semantics(resources, complete=..., existing=stored)` for a store that changes a little
    at a time (the lab's daemon), without checking every stored resource again.

    `sync(stored)` takes the store's resources (in its order); it keeps, per stored resource, the
    errors the store's world gives it and what those checks read (keys looked up, found or not;
    kinds listed whole; ReadingWorld), and checks again only the resources whose reads a change
    touches. `check(resources)` then checks an apply: the resources themselves in the world with
    them, and, of the stored ones, only those whose reads the apply touches (the others' errors
    cannot change). The findings equal check_semantics' (tests/translate/test_incremental.py checks
    it on random sequences of changes)."""

    def __init__(self, complete: bool = True):
        self.complete = complete
        self._stored: dict = {}  # key -> resource
        self._order: dict = {}  # key -> position in the store's order
        self._world = World([])
        self._errors: dict = {}  # key -> its errors in the store's world
        self._reads: dict = {}  # key -> (keys, kinds) its checks read
        self._readers: dict = {}  # key -> keys of the resources whose checks read it
        self._kind_readers: dict = {}  # kind -> keys of the resources whose checks list it
        self._before: dict = {}  # (file, path, message) -> how many stored resources have that error
        self.checked: list = []  # stored keys checked again by the last sync or check (for tests, benches)
        self._kind_sets: dict = {}  # the distinct sets of kinds in _reads (subsets of the few kinds there are)

    def _affected(self, keys: set) -> set:
        out = set()
        for k in keys:
            out |= self._readers.get(k, set())
        for kind in {k[0] for k in keys}:
            out |= self._kind_readers.get(kind, set())
        return out

    def _check(self, world: World, r: Resource) -> tuple:
        reading = ReadingWorld(world)
        checker = _Checker.__new__(_Checker)
        checker.world, checker.complete, checker.problems = reading, self.complete, []
        reading.begin()
        checker.one(r)
        return _errors(checker.problems), reading.end()

    def _forget(self, key) -> None:
        for p in self._errors.pop(key, ()):
            t = (p.file, p.path, p.message)
            self._before[t] -= 1
            if not self._before[t]:
                del self._before[t]
        keys, kinds = self._reads.pop(key, ((), ()))
        for k in keys:
            self._readers[k].discard(key)
        for kind in kinds:
            self._kind_readers[kind].discard(key)

    def sync(self, stored) -> None:
        stored = list(stored)
        now = {r.key: r for r in stored}
        changed = {k for k in now.keys() | self._stored.keys() if not same_resource(now.get(k), self._stored.get(k))}
        order = [r.key for r in stored]
        if not changed and len(order) == len(self._order) and all(self._order.get(k) == i for i, k in enumerate(order)):
            self.checked = []
            return
        self._world = World(stored)
        self._order = {k: i for i, k in enumerate(order)}
        again = (changed | self._affected(changed)) & now.keys()
        for key in changed | again:
            self._forget(key)
        self._stored = now
        self.checked = sorted(again, key=self._order.get)
        for key in self.checked:
            errors, (keys, kinds) = self._check(self._world, now[key])
            # most resources have no errors and list one of a few sets of kinds: one object each
            errors, kinds = errors or (), self._kind_sets.setdefault(kinds, kinds)
            # the keys are iterated only: a tuple of them is a third of a frozenset's size
            self._errors[key], self._reads[key] = errors, (tuple(keys), kinds)
            for k in keys:
                self._readers.setdefault(k, set()).add(key)
            for kind in kinds:
                self._kind_readers.setdefault(kind, set()).add(key)
            for p in errors:
                t = (p.file, p.path, p.message)
                self._before[t] = self._before.get(t, 0) + 1

    def check(self, resources) -> list[Problem]:
        """The same findings as check_semantics(resources, complete=..., existing=<the synced store>)."""
        resources = list(resources)
        keys = {r.key for r in resources}
        stored = self._stored
        others = [r for r in stored.values() if r.key not in keys] if keys & stored.keys() else list(stored.values())
        world = World(others + resources)
        priorities = any(r.kind == "GatewayRoute" and r.spec.get("priority") is not None for r in resources)
        problems = _Checker.__new__(_Checker)
        problems.world, problems.complete, problems.problems = world, self.complete, []
        problems = problems.run(resources, resources, priorities=priorities)
        self.checked = []
        if others and resources:
            before = dict(self._before)
            for k in keys & stored.keys():  # what the replaced versions contributed is not "before"
                for p in self._errors.get(k, ()):
                    before[(p.file, p.path, p.message)] -= 1
            self.checked = sorted(self._affected(keys) - keys, key=self._order.get)
            for key in self.checked:
                errors, _ = self._check(world, stored[key])
                problems += [p for p in errors if before.get((p.file, p.path, p.message), 0) <= 0]
        return [p for p in problems if not (p.code == "priority" and p.file == "<lab>")]
