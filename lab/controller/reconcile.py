"""One reconcile pass, and the controller that runs passes.

`compute(objects, now)` is pure: the cached API objects in, decisions out (statuses to write,
finalizers to set, events to emit, Envoy resources per proxy). `Controller` feeds it from the
cache, publishes the Envoy resources to the xDS server (every replica does, so proxies can talk
to any of them) and, on the leader only, writes statuses, finalizers and events.

Status follows the AWS controller (APPMESH-FACTS §9.1): one `<Kind>Active` condition,
`observedGeneration`, the ARN field (`routeARNs` too for a VirtualRouter). Unlike AWS, reason and
message are filled (the translator's conditions, as in the local lab). Objects the model
rejects get `<Kind>Active: False` with reason `Invalid` and the validator's findings.

Finalizers (APPMESH-FACTS §9.2) make deletion wait while something still uses the object:
  Mesh            mesh-members + aws-appmesh-resources: until no App Mesh resource is in the mesh
  VirtualGateway  virtualgateway-members + aws-appmesh-resources: until no GatewayRoute attaches
  VirtualService  aws-appmesh-resources: until no GatewayRoute targets it (App Mesh's
                  ResourceInUse rule for DeleteVirtualService, APPMESH-FACTS §10.3)
  VirtualNode     aws-appmesh-resources: until no VirtualService names it as provider
  others          aws-appmesh-resources: released at once, after the proxies' configuration
                  without them has been published
While held, the object keeps serving and a Warning event says what it waits for.
"""
from __future__ import annotations

import copy
import json
import logging
import threading
import time
from dataclasses import dataclass, field

from ..model.resources import Resource
from ..model.arns import ARN_FIELD, arn  # the local lab's ARNs, so both targets report the same
from ..runtime.generations import generations
from ..translate import translate
from ..translate.status import conditions
from ..xds.snapshot import Snapshot
from .kube import APPMESH_KINDS, CLUSTER_SCOPED, Conflict, Kube, KubeError, NotFound, key_of
from .pod_traffic import pod_envoy
from .world import build_world, ip_preference, placement

log = logging.getLogger("appmesh-lab.controller")

RESOURCES_FINALIZER = "finalizers.appmesh.k8s.aws/aws-appmesh-resources"
MESH_MEMBERS_FINALIZER = "finalizers.appmesh.k8s.aws/mesh-members"
VG_MEMBERS_FINALIZER = "finalizers.appmesh.k8s.aws/virtualgateway-members"
OURS = (RESOURCES_FINALIZER, MESH_MEMBERS_FINALIZER, VG_MEMBERS_FINALIZER)
COMPONENT = "appmesh-lab-controller"


def wanted_finalizers(kind: str) -> list[str]:
    extra = {"Mesh": [MESH_MEMBERS_FINALIZER], "VirtualGateway": [VG_MEMBERS_FINALIZER]}.get(kind, [])
    return extra + [RESOURCES_FINALIZER]


@dataclass
class Event:
    key: tuple
    obj: dict
    type: str
    reason: str
    message: str


@dataclass
class Decisions:
    statuses: dict = field(default_factory=dict)  # key -> status (the full App Mesh status)
    finalizers: dict = field(default_factory=dict)  # key -> (new finalizer list, resourceVersion)
    events: list = field(default_factory=list)
    envoy: dict = field(default_factory=dict)  # node id -> Envoy resources (proto3 JSON dicts)
    ir: dict = field(default_factory=dict)  # node id -> IR
    held: dict = field(default_factory=dict)  # key -> what the deletion waits for


def _provider(vs: Resource, world, kind: str, key: str):
    p = (vs.spec.get("provider") or {}).get(key)
    return world.resolve(kind, p.get(f"{key}Ref"), p.get(f"{key}ARN"), vs) if isinstance(p, dict) else None


def _gr_target(gr: Resource, world):
    body = next((gr.spec[k] for k in ("httpRoute", "http2Route", "grpcRoute") if isinstance(gr.spec.get(k), dict)), {})
    vs = ((body.get("action") or {}).get("target") or {}).get("virtualService") or {}
    return world.resolve("VirtualService", vs.get("virtualServiceRef"), vs.get("virtualServiceARN"), gr)


def users(world, r: Resource) -> tuple[str, list[Resource]]:
    """(event reason, the resources whose presence keeps r from being deleted)."""
    if r.kind == "Mesh":
        members = [x for kind in APPMESH_KINDS[1:] for x in world.by_kind[kind] if world.mesh_of(x) is r]
        return "PendingMembersDeletion", members
    if r.kind == "VirtualGateway":
        return "PendingMembersDeletion", [g for g in world.by_kind["GatewayRoute"] if (world.gateways_for(g) or []) == [r]]
    if r.kind == "VirtualService":
        return "PendingReferencesDeletion", [g for g in world.by_kind["GatewayRoute"] if _gr_target(g, world) is r]
    if r.kind == "VirtualNode":
        return "PendingReferencesDeletion", [v for v in world.by_kind["VirtualService"]
                                             if _provider(v, world, "VirtualNode", "virtualNode") is r]
    return "", []


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _same_status(old: dict, new: dict) -> bool:
    def norm(s):
        s = copy.deepcopy(s or {})
        for c in s.get("conditions") or []:
            c.pop("lastTransitionTime", None)
        return {k: v for k, v in s.items() if v is not None}
    return norm(old) == norm(new)


def _status(kind: str, obj: dict, cond: dict, arn_value: str | None, now: str, route_arns=None) -> dict:
    old = obj.get("status") or {}
    prev = next((c for c in old.get("conditions") or [] if c.get("type") == cond["type"]), None)
    c = dict(cond)
    c["lastTransitionTime"] = prev["lastTransitionTime"] if prev and prev.get("status") == c["status"] \
        and prev.get("lastTransitionTime") else now
    out = {"conditions": [c], "observedGeneration": (obj.get("metadata") or {}).get("generation")}
    field_name = ARN_FIELD[kind]
    if arn_value or old.get(field_name):
        out[field_name] = arn_value  # None removes a stale ARN in the merge patch
    if kind == "VirtualRouter" and (route_arns or old.get("routeARNs")):
        out["routeARNs"] = route_arns or None
    return out


def compute(objects: dict[str, list[dict]], now: str | None = None) -> Decisions:
    """The whole pass, without I/O."""
    now = now or _now()
    d = Decisions()
    full, invalid = build_world(objects)
    by_key = {key_of(kind, o): o for kind in APPMESH_KINDS for o in objects.get(kind, [])}

    # deletion: which objects being deleted are still held by a user that stays
    deleting = {k for k, o in by_key.items() if (o.get("metadata") or {}).get("deletionTimestamp")}
    held: dict = {}
    changed = True
    while changed:
        changed = False
        for k in sorted(deleting - set(held)):
            r = full.by_key.get(k)
            if r is None:
                continue
            reason, who = users(full, r)
            alive = [u for u in who if u.key not in deleting or u.key in held]
            if alive:
                held[k] = (reason, alive)
                changed = True
    released = deleting - set(held)
    world, _ = build_world(objects, exclude=released)
    d.held = {k: [u.ref for u in v[1]] for k, v in held.items()}

    # Envoy resources for every proxy
    pl = placement(world, objects.get("EndpointSlice", []), objects.get("Pod", []))
    dual = {m.aws_name() for m in world.by_kind["Mesh"] if ip_preference(m)}  # meshes whose proxies bind IPv6 too
    for nid, t in translate(world, pl).items():
        d.ir[nid] = t["ir"]
        d.envoy[nid] = pod_envoy(t["envoy"], t["ir"], dual=t["ir"].get("mesh") in dual)

    # statuses and events
    conds = conditions(world)
    for k, obj in sorted(by_key.items()):
        kind = k[0]
        if k in released:
            continue
        if k in invalid:
            msg = "; ".join(f"{p.path}: {p.message}" if p.path else p.message for p in invalid[k][:3])
            cond = {"type": f"{kind}Active", "status": "False", "reason": "Invalid", "message": msg}
            new = _status(kind, obj, cond, None, now)
        else:
            r = world.by_key.get(k)
            if r is None or k not in conds:
                continue
            a = arn(world, r)
            routes = {rt["name"]: f"{a}/route/{rt['name']}" for rt in r.spec.get("routes") or []
                      if isinstance(rt, dict) and rt.get("name")} if kind == "VirtualRouter" and a else None
            new = _status(kind, obj, conds[k], a, now, routes)
        old = obj.get("status") or {}
        if not _same_status(old, new):
            d.statuses[k] = new
            c = new["conditions"][0]
            prev = next((x for x in old.get("conditions") or [] if x.get("type") == c["type"]), None)
            if not prev or prev.get("status") != c["status"] or prev.get("reason") != c.get("reason") \
                    or prev.get("message") != c.get("message"):
                if c["status"] == "True":
                    d.events.append(Event(k, obj, "Normal", "Active", c.get("message") or "active"))
                else:
                    d.events.append(Event(k, obj, "Warning", "ReconcileError", c.get("message") or "not active"))

    # finalizers
    for k, obj in sorted(by_key.items()):
        meta = obj.get("metadata") or {}
        have = list(meta.get("finalizers") or [])
        if k in released:
            want = [f for f in have if f not in OURS]
        elif k in deleting:
            want = have
            reason, who = held[k] if k in held else ("", [])
            if who:
                names = ", ".join(u.ref for u in who[:5]) + (f" and {len(who) - 5} more" if len(who) > 5 else "")
                d.events.append(Event(k, obj, "Warning", reason,
                                      f"deletion waits until these are deleted: {names}"))
        else:
            want = have + [f for f in wanted_finalizers(k[0]) if f not in have]
        if want != have:
            d.finalizers[k] = (want, meta.get("resourceVersion", ""))
    return d


# ---- the controller ----------------------------------------------------------------------

# A core/v1 Event of a cluster-scoped object (a Mesh) without eventTime is accepted by the API
# server in namespace "default" only (or none): its legacy validation wants the event's namespace
# to agree with involvedObject.namespace, which is empty. Readers list them there.
CLUSTER_SCOPED_EVENTS_NAMESPACE = "default"


def event_object(ev: Event, count: int = 1) -> tuple[str, dict]:
    """(namespace, core/v1 Event) for one decision: the object's own namespace, or `default`
    for a cluster-scoped object. firstTimestamp/lastTimestamp/count, as `kubectl describe`
    reads them (no eventTime: that would switch the API server to the events.k8s.io rules)."""
    kind, ns, name = ev.key
    meta = ev.obj.get("metadata") or {}
    namespace = ns or CLUSTER_SCOPED_EVENTS_NAMESPACE
    involved = {"apiVersion": ev.obj.get("apiVersion", "appmesh.k8s.aws/v1beta2"), "kind": kind, "name": name,
                "uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion")}
    if kind not in CLUSTER_SCOPED:
        involved["namespace"] = ns
    now = _now()
    return namespace, {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{name}.{time.time_ns():x}", "namespace": namespace},
        "involvedObject": involved, "reason": ev.reason, "message": ev.message[:1024], "type": ev.type,
        "source": {"component": COMPONENT}, "firstTimestamp": now, "lastTimestamp": now, "count": count,
        "reportingComponent": COMPONENT,
    }


class Controller:
    """Runs passes when the cache changes (and every `resync_s`)."""

    def __init__(self, kube: Kube, cache, xds=None, namespace: str = "appmesh-system",
                 is_leader=lambda: True, resync_s: float = 30.0):
        self.kube, self.cache, self.xds = kube, cache, xds
        self.namespace = namespace
        self.is_leader = is_leader
        self.resync_s = resync_s
        self.wake = threading.Event()
        self.version = 0
        self.started = int(time.time())
        self._pushed: dict[str, str] = {}
        self._emitted: set = set()
        self._lock = threading.Lock()
        self.last: dict = {}
        self.published: dict | None = None  # generations of the objects the published configuration comes from
        self.nacks: dict = {}

    # xDS callbacks: a NACK becomes a Warning event on the proxy's resource
    def on_nack(self, node_id, type_url, version, message):
        self.nacks[node_id] = {"type": type_url, "version": version, "message": message}
        self.wake.set()

    def publish(self, envoy: dict) -> None:
        if self.xds is None:
            return
        for nid, resources in sorted(envoy.items()):
            text = json.dumps(resources, sort_keys=True)
            if self._pushed.get(nid) == text:
                continue
            self.version += 1
            snap = Snapshot.from_dicts(f"{self.started}-{self.version}", **resources)
            self.xds.set_snapshot(nid, snap)
            self._pushed[nid] = text
        for nid in [n for n in self._pushed if n not in envoy]:
            self.xds.clear_snapshot(nid)
            del self._pushed[nid]

    def run_pass(self) -> Decisions:
        with self._lock:
            t0 = time.perf_counter()
            objects = self.cache.snapshot()
            d = compute(objects)
            try:
                self.publish(d.envoy)
                self.published = generations((k, o) for k in APPMESH_KINDS for o in objects.get(k, []))
            except Exception:  # an inconsistent snapshot is a bug: keep serving the last good one
                log.exception("publishing xDS snapshots failed; proxies keep their last configuration")
            if self.is_leader():
                self._write(d)
            # `generations`: what the configuration this replica serves was made from (readers
            # compare it with the API server's, lab/runtime/generations.py)
            self.last = {"time": time.time(), "seconds": round(time.perf_counter() - t0, 4), "proxies": len(d.envoy),
                         "statuses": len(d.statuses), "finalizers": len(d.finalizers), "held": d.held,
                         "generations": self.published}
            return d

    def _write(self, d: Decisions) -> None:
        objects = {key_of(k, o): o for k in APPMESH_KINDS for o in self.cache.list(k)}
        for k, status in d.statuses.items():
            try:
                out = self.kube.patch_status(k[0], k[1], k[2], status)
                if isinstance(out, dict) and out.get("metadata"):
                    self.cache.put(k[0], out)
            except NotFound:
                pass  # deleted meanwhile
            except KubeError as exc:
                log.warning("%s", exc)
        for k, (finalizers, rv) in d.finalizers.items():
            cur = self.cache.get(k[0], k[1], k[2])  # our own status write above moved the resourceVersion
            rv = ((cur or {}).get("metadata") or {}).get("resourceVersion", rv)
            try:
                out = self.kube.set_finalizers(k[0], k[1], k[2], finalizers, rv)
                if isinstance(out, dict) and out.get("metadata"):
                    self.cache.put(k[0], out)
            except (NotFound, Conflict):
                self.wake.set()  # changed or gone meanwhile: the next pass decides again
            except KubeError as exc:
                log.warning("%s", exc)
        events = list(d.events)
        for nid, nack in list(self.nacks.items()):
            parts = nid.split("/")
            kind = {"virtualNode": "VirtualNode", "virtualGateway": "VirtualGateway"}.get(parts[2] if len(parts) > 3 else "")
            for k, o in objects.items():
                if k[0] == kind:
                    from .world import resource_of
                    r, _ = resource_of(kind, o)
                    if r is not None and r.aws_name() == parts[3]:
                        events.append(Event(k, o, "Warning", "ConfigRejected",
                                            f"Envoy rejected config version {nack['version']} "
                                            f"({nack['type'].rsplit('.', 1)[-1]}): {nack['message']}"))
            del self.nacks[nid]
        for ev in events:
            uid = (ev.obj.get("metadata") or {}).get("uid")
            mark = (uid, ev.reason, ev.message)
            if mark in self._emitted:
                continue
            ns, body = event_object(ev)
            try:
                self.kube.create_event(ns, body)
                self._emitted.add(mark)
            except KubeError as exc:
                log.warning("%s", exc)

    def loop(self, stop: threading.Event) -> None:
        seen = -1
        while not stop.is_set():
            self.wake.wait(self.resync_s)
            self.wake.clear()
            if stop.is_set():
                break
            time.sleep(0.05)  # let a burst of watch events land in one pass
            if self.cache.version == seen and not self.nacks and not self._due():
                continue
            seen = self.cache.version
            try:
                self.run_pass()
            except Exception:  # a bug in one pass must not stop the controller; logged, retried
                log.exception("reconcile pass failed")

    def _due(self) -> bool:
        return time.time() - (self.last.get("time") or 0) >= self.resync_s
