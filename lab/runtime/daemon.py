"""The local lab daemon: store -> model -> translate -> xDS, and the processes that make the mesh.

Run in the background by `appmesh-lab up` (python -m lab.runtime.daemon). It holds an exclusive
lock on its state directory, keeps everything in SQLite, serves xDS to the Envoys it runs on a Unix
socket, answers the CLI on another (HTTP, JSON; lab/runtime/listeners.py) and serves the App Mesh
API on a loopback port. Stopping it with SIGTERM stops every process it
started; killing it with SIGKILL leaves the Envoys serving their last configuration, and a new
daemon adopts them.
"""
from __future__ import annotations

import argparse
import bisect
import contextlib
import fcntl
import gc
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from pathlib import Path

from ..model import World, validate_texts
from ..model.arns import ARN_FIELD, REGION, arn
from ..model.semantics import SemanticIndex
from ..model.loader import Document
from ..model.problems import Problem
from ..model.validate import check_document
from ..store import Store
from ..translate import naming, translate
from ..translate.ir import Placement
from ..translate.incremental import Incremental
from ..translate.status import APPMESH as APPMESH_KINDS, Conditions, with_pending
from ..xds.errors import SnapshotError
from ..xds.snapshot import Snapshot
from ..xds.server import SHORT_NAMES, XdsServer
from . import gatewayapi as gwapi
from . import heap
from . import pods as podplan
from .envoy import find_envoy
from .home import Paths, UnsafeHome, lab_home
from .httpjson import BadRequest
from .isolation import Isolation, bind_conflict, digest, same
from .listeners import appmesh_api_server, control_server
from .port_conflicts import PortConflicts
from .ports import Claims, Ports, holder_of, port_is_free
from .procs import identify
from .sockets import Sockets, UnsafeFolder
from .pod_processes import PodProcesses
from .supervisor import Supervisor


class DaemonError(Exception):
    """The daemon cannot start or run (a system problem, explained in one sentence)."""


# how long the loop leaves the status pass of an apply to after the apply's answer is written (the
# control API says when it is: Daemon.answered); past this, it runs whatever the answer does
ANSWER_WAIT_S = 0.5
MAX_BODY = 64 * 1024 * 1024  # larger control requests are refused (a manifest file is at most 4 MiB)
# Most of the daemon's objects live as long as the daemon; collect young objects less often
# (translation of 1,000 routes spent most of its time in the collector).
GC_THRESHOLD = (50_000, 20, 20)


def _key_of(r) -> tuple:
    return (r.kind, r.namespace or "", r.name)


def resource_of(record) -> object | None:
    doc = Document(record.doc, f"{record.kind}/{record.namespace}/{record.name}" if record.namespace
                   else f"{record.kind}/{record.name}", 0, 0)
    r = check_document(doc).resource
    if r is not None:
        r.doc = None  # findings about stored objects point at the object, not a file
    return r


class Daemon:
    def __init__(self, home: Path):
        try:
            self.paths = Paths(home).ensure()
        except UnsafeHome as exc:
            raise DaemonError(str(exc)) from exc
        self._lock_file = open(self.paths.lock, "a+")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise DaemonError(f"another lab daemon already runs on {self.paths.home} "
                              f"(lock {self.paths.lock}); use `appmesh-lab status` or `appmesh-lab down`") from exc
        self.sockets = Sockets(self.paths.home)
        try:
            self.sockets.ensure()
            claims = Claims(str(self.paths.home))
        except UnsafeFolder as exc:
            raise DaemonError(str(exc)) from exc
        # the WAL is checkpointed after an apply's answer (the status pass), not in the commit of an apply
        self.store = Store(self.paths.db, autocheckpoint=False)
        self.ports = Ports(self.store, claims)
        for key in self.ports.all():  # admin and xDS were TCP ports before they were Unix sockets,
            # and a virtual gateway's egress stage was a TCP listener before it was an internal one
            if key == "xds" or key.startswith("admin:") or key.startswith("egress:") and "/virtualGateway/" in key:
                self.ports.release(key)
        self.envoy = str(find_envoy())
        self.version = 0
        self._pushed: dict = {}
        self._incremental = Incremental()  # the last translation, per proxy, and what each read
        # node id -> the latest push: {"version", "pushed" (time.time() of set_snapshot), "acked" (when the
        # proxy had ACKed every type of it, or None)}; in /v1/status, so push -> ACK can be measured
        self.pushes: dict = {}
        self._unacked: dict = {}  # node id -> type URLs of the latest push not ACKed yet
        self._parsed: dict = {}  # node id -> its last snapshot's parsed resources (Snapshot.from_dicts cache)
        # A proxy is translated and given a snapshot only while an Envoy needs it: a pod for it is
        # placed, or an Envoy is connected as it. The others (a virtual node without pods) cost
        # nothing per proxy: statuses and validation read the model, never a translation or a
        # snapshot. An Envoy connecting as one wakes a pass that translates it.
        self._attach: set = set()  # node ids an Envoy connected as while they had no snapshot
        self.wanted: set = set()  # node ids of the proxies translated and pushed by the last pass
        self.isolation = Isolation()  # what each proxy ACKed, and the resources left out because one NACKed them
        self.port_conflicts = PortConflicts()  # proxies whose listener cannot bind: pushed again once the port is free
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.started = time.time()
        self.last_reconcile: dict = {}
        self._resource_cache: dict = {}  # key -> (store version, Resource or None, Record): read once per change
        self._resources: list = []  # resources() at store version _resources_at
        self._resources_at = -1
        self._delta: tuple = (None, None, {})  # (store version before, after, key -> Resource or None) of resources()
        self._world: tuple = (None, None)  # (the store's version, the World of its resources)
        self._semantic = SemanticIndex(complete=True)  # validation of an apply against the store's index
        self._semantic_at = -1  # the store's version whose resources _semantic took in last
        self._conditions = Conditions()  # the status conditions, computed again only where a change reaches
        self._last_conds: dict | None = None  # key -> the condition the last status pass gave it (Pending included)
        self._status_seen: dict = {}  # key -> the record version the last status pass saw
        self._was_active: set = set()  # keys that were Active before their change went Pending
        self._pass = 0  # reconcile passes; each push and each resource version notes its pass
        self._seen: dict = {}  # key -> the resource version the status passes last saw
        self._changed_at: dict = {}  # key -> the pass in which that version appeared
        self._acked_pass: dict = {}  # node id -> the pass of the push it last ACKed
        self._rejected_seen: set = set()  # the keys left out (isolation.rejected) at the last status pass
        self._reconciled_version = -1
        # An apply or delete answers once its push is made: the status pass of that reconcile, and
        # the events, come after the answer (the World they are for, and the events, wait here).
        # Every reader of status or events (route(), lab/api) calls flush_status() first, and the
        # loop runs the pass once a proxy ACKs (or within a second), so nobody reads older state.
        self._status_due: World | None = None
        self._due_events: list = []  # (key, type, reason, message) of changes not written yet
        self._gc_held = False  # the collector waits for the status pass (_collect_after_answer)
        self._answering = 0.0  # time.monotonic() an apply's answer began to be due (0: none is due)
        self.pods: list = []
        self.placement = Placement()
        self.supervisor = Supervisor(self.store, on_event=self._process_event, on_change=self._wake.set)
        # only the lab's own Envoys reach the xDS server: a Unix socket in the owner-only folder
        self._xds_path = str(self.sockets.xds)  # the sockets' folder is resolved once (Sockets.dir)
        self.procs = PodProcesses(self.paths, self.ports, self.sockets, self.envoy, self._xds_path)
        self.xds = XdsServer(unix_socket=self._xds_path, callbacks=[self])
        self.api_port = self._api_port()  # the App Mesh API, for boto3 and the aws CLI

    def _api_port(self) -> int:
        """The App Mesh API's port: the one it had, unless another process took it while the lab was
        stopped (another user may bind it on purpose); then a new one. The lab's profile (lab/api/
        credentials.py) names whichever it is, and nothing the lab sends goes to the old one."""
        port = self.ports.get("api")
        if port_is_free(port):
            return port
        who = holder_of(port)
        self.ports.release("api")
        new = self.ports.get("api")
        print(f"appmesh-lab daemon: port {port} of the App Mesh API is taken" + (f" by {who}" if who else "")
              + f"; the API moves to port {new} (the lab's profile and `appmesh-lab status` name it)", flush=True)
        return new

    # -- xDS callbacks (events on the proxy's resource) -----------------------------------

    def _proxy_resource_key(self, node_id: str):
        parsed = naming.parse_node_id(node_id)
        if not parsed:
            return None
        _, kind, aws_name = parsed
        kind = {"virtualGateway": "VirtualGateway", "virtualNode": "VirtualNode", "gateway": "Gateway"}.get(kind)
        if kind is None:
            return None
        for rec in self.store.list(kind):
            r = resource_of(rec)
            if r is not None and r.aws_name() == aws_name:
                return rec.key
        return None

    def on_stream_open(self, node_id):
        if node_id not in self._pushed:  # the next pass builds its snapshot (reconcile, _publish)
            self._attach.add(node_id)
            self._wake.set()

    def on_ack(self, node_id, type_url, version):
        push = self.pushes.get(node_id)
        if push is not None and push["version"] == version and push["acked"] is None:
            waiting = self._unacked.get(node_id, set())
            waiting.discard(type_url)
            if not waiting:
                push["acked"] = time.time()
                self._acked_pass[node_id] = push["pass"]
                self.isolation.record(node_id, version, True)
                ended = self.port_conflicts.acked(node_id)
                key = ended and self._proxy_resource_key(node_id)
                if key:
                    self.store.add_event(key, "Normal", "PortFree",
                                         f"the proxy {node_id} now listens on {ended['address']}")
                self._wake.set()

    def on_nack(self, node_id, type_url, version, message):
        push = self.pushes.get(node_id)
        # only the answer to the push the proxy has not yet accepted counts: a NACK of a version never
        # pushed, or of one already ACKed, is forged or stale, and is neither acted on nor an event
        if push is None or push["version"] != version or push["acked"] is not None:
            return
        self.isolation.record(node_id, version, False, message)
        self._wake.set()
        conflict = bind_conflict(message)
        if conflict is not None:  # the host's port, not the configuration (port_conflicts.py): one event per conflict
            key = self.port_conflicts.nacked(node_id, conflict) and self._proxy_resource_key(node_id)
            if key:
                self.store.add_event(key, "Warning", "PortInUse", self.port_conflicts.view(node_id)["message"])
            return
        sent = self.isolation.sent.get(node_id) or {}
        if sent.get("version") == version and sent.get("probe"):
            return  # a step of the search for the resource at fault: not news for the user
        key = self._proxy_resource_key(node_id)
        if key:
            self.store.add_event(key, "Warning", "ConfigRejected",
                                 f"Envoy rejected config version {version} ({type_url.rsplit('.', 1)[-1]}): {message}")

    def _process_event(self, name, type_, reason, message):
        ns, pod, _ = name.split("/", 2)
        self.store.add_event(("Pod", ns, pod), type_, reason, message)

    # -- reconcile ----------------------------------------------------------------------

    def resources(self) -> list:
        """Every stored resource as a model Resource; each record is read and validated once per
        change (the store lists versions; only changed records are fetched and decoded). With
        nothing written since the last call (the store's version), that call's list again."""
        at = self.store.version()  # read before the listing: a write in between only makes the next call list again
        if at == self._resources_at:
            return list(self._resources)
        since = self.store.changes_since(self._resources_at)
        if since is not None:  # the store knows what its writes since changed: no listing
            return self._resources_changed(*since)
        out, cache, old, delta = [], {}, self._resource_cache, {}
        listing = self.store.versions()
        # the changed records are fetched together (one decode per batch: lab/store/sqlite.py get_many)
        fetched = self.store.get_many([(kind, namespace, name) for kind, namespace, name, version in listing
                                       if (old.get((kind, namespace, name)) or (None,))[0] != version])
        for kind, namespace, name, version in listing:
            key = (kind, namespace, name)
            hit = old.get(key)
            if hit and hit[0] == version:
                r, rec = hit[1], hit[2]
            else:
                rec = fetched.pop(key, None)
                if rec is None:  # deleted since the listing
                    continue
                version, r = rec.version, resource_of(rec)
            cache[key] = (version, r, rec)
            if r is not None:
                out.append(r)
            if hit is None or hit[1] is not r:
                delta[key] = r
        for key in old.keys() - cache.keys():  # deleted
            if old[key][1] is not None:
                delta[key] = None
        self._resource_cache = cache
        self._delta = (self._resources_at, at, delta)
        self._resources, self._resources_at = out, at
        return list(out)

    def _resources_changed(self, at: int, changes: dict) -> list:
        """resources() from the last call's, with the records `changes` names (Store.changes_since)
        read again: the list stays in the store's key order, each kept record's Resource the same."""
        cache, out, delta = dict(self._resource_cache), self._resources, {}
        fetched = self.store.get_many([k for k, v in changes.items() if v is not None])
        for key in sorted(changes):
            hit = cache.pop(key, None)
            rec = fetched.get(key)
            r = None
            if rec is not None:
                r = resource_of(rec)
                cache[key] = (rec.version, r, rec)
            if hit is None and r is None:
                continue
            delta[key] = r
            i = bisect.bisect_left(out, key, key=_key_of)
            here = i < len(out) and _key_of(out[i]) == key
            if r is None:
                if here:
                    del out[i]
            elif here:
                out[i] = r
            else:
                out.insert(i, r)
        self._resource_cache = cache
        self._delta = (self._resources_at, at, delta)
        self._resources_at = at
        return list(out)

    def world(self) -> World:
        """The stored resources indexed; the same World while nothing was written since the last
        call (the store's version; nothing changes a World once made). The World of the last call
        with what the store's records changed put in (World.with_changes: the resources are in the
        store's key order), when it is the one that resources() last compared against."""
        resources = self.resources()
        if self._world[0] != self._resources_at:
            at, last = self._world
            since, upto, delta = self._delta
            if last is not None and since == at and upto == self._resources_at:
                self._world = (self._resources_at, last.with_changes(delta))
            else:
                self._world = (self._resources_at, World(resources))
        return self._world[1]

    def reconcile(self, force: bool = False, defer_status: bool = False) -> dict:
        """One pass: store -> pods and processes -> translate -> xDS -> status. A pass with
        nothing new in the store since the last one is skipped unless forced. `defer_status`
        (apply and delete): the status pass waits for flush_status() or the loop, so that the
        caller's answer does not wait for it."""
        with self._lock:
            version = self.store.version()
            force = force or bool(self._attach)  # an Envoy connected as a proxy that has no snapshot
            for nid in self.port_conflicts.due():  # its port looks free again: the same configuration, a new version
                if self._pushed.pop(nid, None) is not None:
                    force = True
            if not force and version == self._reconciled_version:
                # nothing new in the store: a pass only if a proxy NACKed or is being searched for the
                # resource it rejects; its ACKs alone are remembered without translating anything
                if not self.isolation.pending():
                    return self._ack_pass()
                if self.isolation.quiet():
                    world = self.world()
                    self.isolation.settle(lambda nid: self._fixed_keys(world, nid))
                    if not self.isolation.probes:
                        return self._ack_pass(world)
            t0 = time.perf_counter()
            if self._status_due is not None:  # the waiting pass's versions are that pass's (_pending)
                self._changes(self._status_due)
            self._pass += 1
            world = self.world()
            names = {k[len("pods:"):]: v for k, v in self.store.kv_items("pods:").items()}
            pods = self.procs.plan(world, names)
            for key in set(names) | {f"{p.namespace}/{p.owner}" for p in pods}:
                wanted = [p.name for p in pods if f"{p.namespace}/{p.owner}" == key]
                if names.get(key) != wanted:
                    self.store.kv_set(f"pods:{key}", wanted) if wanted else self.store.kv_delete(f"pods:{key}")
            placement, specs = self.procs.place(world, pods)
            self.supervisor.ensure(specs)
            self.procs.tidy_admin_sockets(pods)
            self.pods, self.placement = pods, placement
            self.wanted = self._wanted()
            out, sources = self._translate(world, placement, self.procs.files(world), self._proxy_keys(world, self.wanted))
            pushed = self.version
            self._publish(out, sources)
            if defer_status:
                # its resource versions are noted (_changes) by the status pass, or before the next pass
                self._status_due = world
                if self.version == pushed:  # nothing pushed, so no ACK to wake the loop: wake it now
                    self._wake.set()
            else:
                self._status_pass(world)
            self._reconciled_version = version
            self.last_reconcile = {"time": time.time(), "seconds": round(time.perf_counter() - t0, 4),
                                   "proxies": len(out), "pods": len(pods), "version": self.version}
            return self.last_reconcile

    def _ack_pass(self, world: World | None = None) -> dict:
        """A pass with nothing new in the store (the lock held): the status pass an apply left, or
        one for proxies' ACKs (what a proxy now serves turns Active), unless an apply's answer is
        still being written (the GIL is the answer's first). `world`: the store's World, when the
        caller has it (the store's version did not move: the same World the waiting pass has)."""
        due = self._status_due
        if due is not None and self._answer_due():
            return self.last_reconcile
        if due is not None or self._unsettled():
            self._status_pass(due if due is not None else world if world is not None else self.world(), ack_only=True)
        return self.last_reconcile

    def _fixed_keys(self, world: World, nid: str) -> set:
        """The resources a proxy cannot be configured without (its own, its mesh): never suspects."""
        parsed = naming.parse_node_id(nid)
        if not parsed:
            return set()
        mesh, kind, aws_name = parsed
        kind = {"virtualGateway": "VirtualGateway", "virtualNode": "VirtualNode", "gateway": "Gateway"}.get(kind)
        return {r.key for r in world.by_kind[kind] if r.aws_name() == aws_name} | {
            r.key for r in world.by_kind["Mesh"] if r.aws_name() == mesh}

    def _translate(self, world: World, placement: Placement, files: dict, only: set | None = None) -> tuple[dict, dict]:
        """The configuration of every proxy in `only` (keys of their resources; None: all), leaving
        out the resources a proxy rejected; a proxy that is
        being searched for the resource it rejects gets the next bisection step instead
        (lab/runtime/isolation.py). Returns (node id -> translation, node id -> resources used)."""
        iso = self.isolation
        fixed = lambda nid: self._fixed_keys(world, nid)  # noqa: E731
        iso.forget_changed(world)
        iso.settle(fixed)
        resources = list(world.by_key.values())
        effective, out = self._translate_effective(resources, placement, files, only, world)
        rejected_before = set(iso.rejected)
        probing: dict = {}
        for nid in list(iso.probes):
            for _ in range(64):  # each step either needs the proxy's answer or is known already
                if nid not in iso.probes:
                    break
                used = iso.probe_resources(nid, effective)
                try:
                    t = translate(World(used), placement, files=files).get(nid)
                except Exception:  # noqa: BLE001 - a lab bug on a subset: this search ends, the next NACK starts another
                    traceback.print_exc()
                    t = None
                if t is None:
                    iso.probes.pop(nid, None)
                    break
                d = digest(t["envoy"])
                probe = iso.probes[nid]
                known = probe["answers"].get(d) or ((True, "") if d == probe["acked"] else None)
                if known is None:
                    probing[nid] = (t, used)
                    break
                iso.answer(nid, {"resources": {r.key: r for r in used}, "config": t["envoy"], "digest": d,
                                 "probe": True}, *known, fixed)
        if set(iso.rejected) != rejected_before:  # a search ended in a rejection: without it
            effective, out = self._translate_effective(resources, placement, files, only, world)
        sources = {nid: effective for nid in out}
        for nid, (t, used) in probing.items():
            if nid in iso.probes and nid in out:
                out[nid], sources[nid] = t, used
        return out, sources

    def _translate_effective(self, resources: list, placement: Placement, files: dict,
                             only: set | None = None, world: World | None = None) -> tuple[list, dict]:
        """translate() of the resources proxies are given. Should translation fail (a bug of the lab's),
        the resource it fails on is found and left out like one a proxy rejects, so the others are
        still configured; the traceback goes to the daemon's log. `world`: the World of `resources`,
        handed to the translation as it is when no proxy rejected anything (not indexed again)."""
        iso = self.isolation
        for _ in range(8):
            effective = iso.effective(resources)
            try:
                # only the proxies the change touches are translated again (lab/translate/incremental.py)
                given = world if world is not None and not iso.rejected else effective
                return effective, self._incremental.update(given, placement, files, only)
            except Exception as exc:  # noqa: BLE001 - isolated below, or raised when it cannot be
                traceback.print_exc()

                def fails(left_out: set) -> bool:
                    try:
                        Incremental().update([r for r in effective if r.key not in left_out], placement, files, only)
                        return False
                    except Exception:  # noqa: BLE001
                        return True
                key = iso.find_offline([r.key for r in effective], fails)
                if key is None:
                    raise
                iso.reject_offline(key, f"{type(exc).__name__}: {exc} (a bug of the lab: please report it)")
        effective = iso.effective(resources)
        return effective, Incremental().update(effective, placement, files, only)

    def _wanted(self) -> set:
        """The proxies an Envoy needs a configuration for: a pod for it is placed, or one is connected as it."""
        self._attach.clear()  # before asking the xDS server: a stream opening after this wakes a new pass
        return {p.node_id for p in self.pods if p.node_id} | set(self.xds.connected())

    def _proxy_keys(self, world: World, nids: set) -> set:
        """The keys of the resources (VirtualGateway, VirtualNode, Gateway) the proxies `nids` are made from."""
        keys = {p.proxy.key for p in self.pods if p.node_id in nids}
        others = nids - {p.node_id for p in self.pods}  # an Envoy connected without a pod of the lab's
        if others:
            for kind in ("VirtualGateway", "VirtualNode", "Gateway"):
                for r in world.by_kind[kind]:
                    if kind == "Gateway":
                        nid = gwapi.node_id(r)
                    else:
                        mesh = world.mesh_of(r)
                        nid = mesh and naming.node_id(mesh.aws_name(), kind[0].lower() + kind[1:], r.aws_name())
                    if nid in others:
                        keys.add(r.key)
        return keys

    def _publish(self, out: dict, sources: dict | None = None) -> None:
        # the proxies given the same resources (all of them but a probed one) share one read-only
        # key -> Resource map: one per proxy would hold proxies x resources entries (gigabytes at
        # 5,000 routes); isolation keeps these maps as they are, never changing them
        shared: dict = {}
        wanted = self.wanted
        for nid, t in out.items():
            if nid not in wanted:  # no Envoy runs it: no snapshot (built once one connects or a pod is placed)
                continue
            if self._pushed.get(nid) == t["envoy"]:  # the same Envoy config as pushed last: nothing to do
                continue
            self.version += 1
            version = f"{int(self.started)}-{self.version}"
            given = (sources or {}).get(nid, ())
            used = shared.get(id(given))
            if used is None:
                used = shared[id(given)] = {r.key: r for r in given}
            sent = {"version": version, "resources": used, "config": t["envoy"], "probe": nid in self.isolation.probes}
            self.isolation.sent[nid] = sent
            try:
                snap = Snapshot.from_dicts(version, **t["envoy"], cache=self._parsed.setdefault(nid, {}))
            except SnapshotError as exc:  # the lab cannot even encode it: treated as the proxy's NACK
                self.isolation.record(nid, version, False, str(exc))
                self._wake.set()
                continue
            self._unacked[nid] = set(snap.expected_types())
            self.pushes[nid] = {"version": snap.version, "pushed": time.time(), "acked": None, "settled": False,
                                "pass": self._pass,
                                "types": [SHORT_NAMES[t] for t in snap.expected_types()]}
            self.xds.set_snapshot(nid, snap)
            self._pushed[nid] = t["envoy"]
        for nid in [n for n in self._pushed if n not in out or n not in wanted]:
            self.xds.clear_snapshot(nid)
            del self._pushed[nid]
            self.pushes.pop(nid, None)
            self._unacked.pop(nid, None)
            self._parsed.pop(nid, None)
            self._acked_pass.pop(nid, None)
            if nid not in out:  # its resource is gone (a proxy without an Envoy keeps what it rejected)
                self.isolation.forget_node(nid)
                self.port_conflicts.forget(nid)

    def _unsettled(self) -> bool:
        """Whether a proxy ACKed a push that no status pass has taken in yet."""
        return any(p["acked"] is not None and not p["settled"] for p in list(self.pushes.values()))

    def _changes(self, world: World) -> None:
        """Note the pass in which each resource's current version first appeared (the store hands
        out the same object for an unchanged record, so this is an identity check per resource)."""
        seen, changed = self._seen, self._changed_at
        for key, r in world.by_key.items():
            if seen.get(key) is not r:
                if not same(seen.get(key), r):
                    changed[key] = self._pass
                seen[key] = r
        if len(seen) > len(world.by_key):
            for key in [k for k in seen if k not in world.by_key]:
                del seen[key]
                changed.pop(key, None)
        rejected = set(self.isolation.rejected)
        for key in self._rejected_seen - rejected:  # no longer left out: sent anew
            if key in seen:
                changed[key] = self._pass
        self._rejected_seen = rejected

    def _pending(self, world: World) -> tuple[dict, list]:
        """The resources some proxy has been sent and has not ACKed yet (key -> the condition's
        message), and the pushes whose ACK this status pass takes in.

        A proxy waits while its latest push is not ACKed: for the resources of its mesh (a gateway
        route: of its gateway only) that changed after the pass that made the configuration it last
        ACKed, up to the pass of its latest push. While the resource it rejected is searched for
        (lab/runtime/isolation.py), the suspects wait too. Only proxies a pod runs count (one an Envoy
        connected as without a pod, a probe say, is pushed to but waited for by nobody). Proxies with the same span are taken
        together, so a pass costs one look per resource and span, not per resource and proxy. A
        resource no proxy is sent stays as it was."""
        iso = self.isolation
        self._changes(world)
        spans: dict = {}  # (mesh, gateway name or None) -> {(after, upto): [proxy names]}
        suspects: dict = {}  # key -> [proxy names]
        settled = []
        running = {p.node_id for p in self.pods if p.node_id}  # a proxy no pod runs has nobody to ACK
        for nid, push in list(self.pushes.items()):
            if nid not in running:
                if push["acked"] is None or not push["settled"]:
                    settled.append(push)
                continue
            parsed = naming.parse_node_id(nid)
            probe = iso.probes.get(nid)
            if probe is not None:
                for k in [*probe["suspects"], *probe["held"], *(k for g in probe["groups"] for k in g)]:
                    suspects.setdefault(k, []).append(nid.split("/")[-1])
            if push["acked"] is None or iso.searching(nid):
                if parsed:
                    span = (self._acked_pass.get(nid, -1), push["pass"])
                    gw = parsed[2] if parsed[1] == "virtualGateway" else None
                    spans.setdefault((parsed[0], None), {}).setdefault(span, []).append(nid.split("/")[-1])
                    if gw:
                        spans.setdefault((parsed[0], gw), {}).setdefault(span, []).append(nid.split("/")[-1])
            elif not push["settled"]:
                settled.append(push)
        if not spans and not suspects:
            return {}, settled
        late, messages = {}, {}
        changed_at = self._changed_at
        # only a resource that changed after the oldest ACKed pass of a waiting proxy, or a suspect, can wait
        oldest = min((after for group in spans.values() for after, _ in group), default=None)
        keys = {k for k, when in changed_at.items() if oldest is not None and when > oldest} | suspects.keys()
        for key in keys:
            r = world.by_key.get(key)
            if r is None or r.kind not in APPMESH_KINDS:
                continue
            parts = [suspects[r.key]] if r.key in suspects else []
            when = changed_at.get(r.key, -1)
            mesh = r if r.kind == "Mesh" else world.mesh_of(r)
            if mesh is not None and spans:
                if r.kind == "GatewayRoute":
                    groups = [spans.get((mesh.aws_name(), g.aws_name())) for g in world.gateways_for(r) or []]
                elif r.kind == "VirtualGateway":
                    groups = [spans.get((mesh.aws_name(), r.aws_name()))]
                else:
                    groups = [spans.get((mesh.aws_name(), None))]
                for group in groups:
                    for (after, upto), proxies in (group or {}).items():
                        if after < when <= upto:
                            parts.append(proxies)
            if parts:
                memo = tuple(map(id, parts))  # many resources wait for the same proxies: one message
                if memo not in messages:
                    shown = sorted({n for p in parts for n in p})
                    messages[memo] = "sent to the proxies but not ACKed yet by " + ", ".join(shown[:3]) + (
                        f" and {len(shown) - 3} more" if len(shown) > 3 else "") + self._port_note(shown)
                late[r.key] = messages[memo]
        return late, settled

    def _port_note(self, names: list) -> str:
        """Why some of the proxies `names` (short names) cannot ACK: a port another process holds."""
        held = {nid.split("/")[-1]: c["address"] for nid, c in list(self.port_conflicts.by_node.items())}
        notes = [f"{n} cannot listen on {held[n]}, which another process holds" for n in names if n in held]
        return f" ({'; '.join(notes[:3])}: see the events of its resource)" if notes else ""

    def _answer_due(self) -> bool:
        """Whether an apply's answer is still being written (for at most ANSWER_WAIT_S)."""
        return bool(self._answering) and time.monotonic() - self._answering < ANSWER_WAIT_S

    def answered(self) -> None:
        """The control API wrote an apply's or a delete's answer: the loop may run its status pass
        (a proxy's ACK can arrive first: the pass then would hold the GIL while the answer waits)."""
        self._answering = 0.0
        self._wake.set()

    def flush_status(self) -> None:
        """Write the status and events an apply or delete left for after its answer (a no-op when
        none wait). Called before anything reads them, so a reader never sees a state older than
        the last apply it waited for. The lock first: a pass the loop has begun (it clears
        _status_due as it starts) is waited for, not read around while it is half written."""
        with self._lock:
            if self._status_due is not None:
                self._status_pass(self._status_due)
            elif self._due_events:
                events, self._due_events = self._due_events, []
                self.store.add_events(events)

    def _status_pass(self, world: World, ack_only: bool = False) -> None:
        """The events of the changes applied, then the status pass (which may add its own)."""
        self._status_due = None
        events, self._due_events = self._due_events, []
        try:
            self.store.add_events(events)
            self._write_status(world, ack_only)
            # the validation index takes in what the store holds now, so that the next apply's sync
            # finds nothing new (the check of what a change reaches is done here, after the answer)
            self._sync_semantic(self.resources())
            self.store.checkpoint_if_due()
            if len(events) >= heap.LARGE_APPLY:  # what the apply freed goes back to the system
                heap.trim()
        finally:
            if self._gc_held:  # the answer is out: the collector may run again
                self._gc_held = False
                gc.enable()

    def _sync_semantic(self, resources: list) -> None:
        """The validation index takes in `resources` (resources()): not again at the store's version
        it took in last (SemanticIndex.sync would compare every resource to find nothing new)."""
        if self._semantic_at != self._resources_at:
            self._semantic.sync(resources)
            self._semantic_at = self._resources_at

    @contextlib.contextmanager
    def _collect_after_answer(self):
        """No garbage collection from the start of an apply or delete to its status pass: a
        collection of the young objects takes milliseconds (tens at 1,000 routes), and one that
        fell between an apply and its push would delay the push. The collector is enabled again
        by the status pass (flush_status(), or the loop within a second), or at once when no
        status pass is left waiting."""
        held = gc.isenabled()
        gc.disable()
        try:
            yield
        finally:
            if held:
                if self._status_due is None:
                    gc.enable()
                else:
                    self._gc_held = True

    def _write_status(self, world: World, ack_only: bool = False) -> None:
        """Every resource's status, written where it changes. The conditions are computed again only
        where the change reaches (translate/status.py Conditions); the records come from the
        daemon's cache (resources()), and only those whose condition, Pending state or version
        changed since the last pass are looked at, so a pass stays cheap at 1,000 routes.
        `ack_only`: a pass for proxies' ACKs with nothing else new (kept for the callers: the
        same work, as little is new)."""
        pending, settled = self._pending(world)
        rejected = self.isolation.conditions()
        base = self._conditions.update(world, rejected)
        conds = with_pending(base, pending)
        cache = self._resource_cache
        last, seen = self._last_conds, self._status_seen
        # a change to a mesh, a namespace or a gateway can change ARNs without changing a condition
        wide = last is None or any(k[0] in ("Mesh", "Namespace", "VirtualGateway") for k in self._conditions.changed)
        if wide:
            keys = list(cache)
        else:
            keys = {k for k in conds.keys() | last.keys() if conds.get(k) != last.get(k)}
            keys |= {k for k, hit in cache.items() if seen.get(k) != hit[0]}
            keys |= {r.key for r in world.by_kind["Service"]}
            keys = sorted(k for k in keys if k in cache)
        records = [cache[k][2] for k in keys]
        self._last_conds = conds
        self._status_seen = {k: hit[0] for k, hit in cache.items()}
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        by_key = world.by_key
        statuses, events = [], []
        for rec in records:
            r = by_key.get(rec.key)
            if r is None:
                continue
            status = {}
            if rec.key in conds:
                c = dict(conds[rec.key])
                old = next((x for x in rec.status.get("conditions", []) if x["type"] == c["type"]), None)
                c["lastTransitionTime"] = old["lastTransitionTime"] if old and old["status"] == c["status"] else now
                status = {"conditions": [c], "observedGeneration": rec.generation}
                a = arn(world, r)
                if a:
                    status[ARN_FIELD[rec.kind]] = a
                if c["status"] == "Unknown":  # sent, not ACKed yet: an event once it is served
                    if old and old["status"] == "True":
                        self._was_active.add(rec.key)
                elif old and old["status"] == "Unknown" and c["status"] == "True" and rec.key in self._was_active:
                    self._was_active.discard(rec.key)  # active before, and again: nothing to tell
                elif not old or old["status"] != c["status"] or old.get("reason") != c["reason"]:
                    self._was_active.discard(rec.key)
                    events.append((rec.key, "Normal", "Active", c["message"]) if c["status"] == "True"
                                  else (rec.key, "Warning", "ReconcileError", c["message"]))
            elif rec.kind == "Service" and r.spec.get("type") in ("LoadBalancer", "NodePort"):
                ports = [{"port": sp["port"], "exposed": self.procs.service_port(r, sp)} for sp in r.spec.get("ports") or []]
                status = {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}, "exposedPorts": ports}
            if status and status != rec.status:
                statuses.append((rec.key, status))
        statuses += gwapi.statuses(self, world, now)  # Gateway API objects (lab/runtime/gatewayapi.py)
        self.store.set_statuses(statuses)  # one transaction for the whole pass
        for key, status in statuses:  # the cached records hold what the store now holds
            if key in cache:
                cache[key][2].status = status
        for push in settled:  # `apply --wait` returns once this pass has taken the proxy's ACK in
            push["settled"] = True
        self.store.add_events(events)

    # -- apply / delete -----------------------------------------------------------------

    def apply(self, texts: list, dry_run: bool = False, answering: bool = False) -> dict:
        """Validate, store and push `texts`; the answer (problems, rejected, results, versions) is
        ready once the push is made. `answering`: the control API writes it and calls answered()."""
        with self._lock, self._collect_after_answer():
            if answering:
                self._answering = time.monotonic()
            existing = self.resources()
            self._sync_semantic(existing)  # checks again only the stored resources a change since reaches
            result = validate_texts(texts, complete=True, index=self._semantic)
            rejected = [p for p in result.errors if p.code != "reference"]
            problems = list(result.problems)
            new = {x.key for x in result.resources}
            # a pod's problems (an image the lab has no command for) are a Deployment's or a Pod's
            if not rejected and any(x.kind in ("Deployment", "Pod") for x in result.resources):
                world = World([r for r in existing if r.key not in new] + result.resources)
                _, pod_problems = podplan.plan(world, {})
                for r, path, msg, hint in pod_problems:
                    if r.key in new:
                        p = Problem(r.file, r.line_of(path), path, msg, hint, "local-command")
                        rejected.append(p)
                        problems.append(p)
            out = {"problems": [p.to_dict() for p in problems], "rejected": bool(rejected), "results": []}
            if rejected or dry_run or not result.resources:
                return out
            docs = [((r.kind, r.namespace or "", r.name), r.raw) for r in result.resources]
            results = self.store.apply(docs)
            # the validated copy (the resources, their parsed documents, the pods planned from them)
            # goes before the pass decodes the stored documents: one copy of the model at a time
            docs = result = world = pod_problems = _ = r = None
            now = time.time()
            self._due_events += [(key, "Normal", action.capitalize(), f"{key[0]} {key[2]} {action}", now)
                                 for key, action in results if action != "unchanged"]
            out["results"] = [{"kind": k[0], "namespace": k[1], "name": k[2], "action": a} for k, a in results]
            self.reconcile(defer_status=True)  # the answer does not wait for the status pass
            out["versions"] = self.pushed_versions()
            return out

    def delete(self, keys: list, answering: bool = False) -> dict:
        with self._lock, self._collect_after_answer():
            if answering:
                self._answering = time.monotonic()
            results = self.store.delete([tuple(k) for k in keys])
            for (kind, ns, name), action in results:
                if kind == "Deployment" and action == "deleted":
                    self.store.kv_delete(f"pods:{ns}/{name}")
            self.reconcile(defer_status=True)
            return {"results": [{"kind": k[0], "namespace": k[1], "name": k[2], "action": a} for k, a in results],
                    "versions": self.pushed_versions()}

    def pushed_versions(self) -> dict:
        """node id -> the configuration version pushed to it last. Returned by apply and delete:
        the change is in effect at a proxy once it has ACKed this version or a newer one
        (lab/runtime/status.py waits for that)."""
        return {nid: p["version"] for nid, p in self.pushes.items()}

    # -- views --------------------------------------------------------------------------

    def pod_views(self) -> list:
        procs = self.supervisor.status()
        out = []
        for p in self.pods:
            containers = []
            names = [c.name for c in p.containers if not (c.name == "envoy" and p.role == "gateway")]
            if p.proxy is not None:
                names.append("envoy")
            for c in names:
                key = f"{p.namespace}/{p.name}/{c}"
                st = procs.get(key, {"state": "Pending", "restarts": 0, "pid": None})
                port = self.procs.ready_ports.get(key)
                containers.append({"name": c, **st, "ready": st["state"] == "Running" and (
                    port is None or _accepts("127.0.0.1", port))})
            ready = sum(1 for c in containers if c["ready"])
            out.append({"namespace": p.namespace, "name": p.name, "owner": p.owner, "role": p.role,
                        "proxy": p.proxy.ref if p.proxy is not None else None, "node_id": p.node_id,
                        "labels": p.labels,
                        "ready": f"{ready}/{len(containers)}",
                        "status": "Running" if all(c["state"] == "Running" for c in containers) else next(
                            (c["state"] for c in containers if c["state"] != "Running"), "Pending"),
                        "restarts": sum(c["restarts"] for c in containers), "containers": containers})
        return out

    def status(self) -> dict:
        proxies = []
        for nid in self.xds.nodes():
            st = self.xds.status(nid)
            push = self.pushes.get(nid)
            proxies.append({"node_id": nid, **st, "push": dict(push) if push else None,
                            # the daemon is finding the resource this proxy rejected (isolation.py)
                            "searching": self.isolation.searching(nid),
                            # a listener cannot bind: another process holds its port (port_conflicts.py)
                            "port_conflict": self.port_conflicts.view(nid)})
        gateways = []
        for nid, listeners in self.placement.listeners.items():
            if "/virtualGateway/" in nid:
                gateways.append({"node_id": nid, "listeners": {str(k): f"http://127.0.0.1:{v}" for k, v in listeners.items()}})
        gateways += gwapi.gateway_views(self.placement)
        return {"daemon": {"pid": os.getpid(), "home": str(self.paths.home), "started": self.started,
                           "uptime_s": round(time.time() - self.started, 1)},
                "endpoints": {"control": str(self.sockets.api), "xds": f"unix:{self.sockets.xds}",
                              "appmesh_api": f"http://127.0.0.1:{self.api_port}"},
                "envoy": self.envoy, "gateways": gateways, "proxies": proxies, "pods": self.pod_views(),
                "reconcile": self.last_reconcile}

    def admin_socket_for(self, node_or_pod: str) -> Path | None:
        """A running Envoy's admin socket, by pod name or by proxy (node id, or resource name)."""
        procs = self.supervisor.status()
        for p in self.pods:
            if p.proxy is None:
                continue
            nid = p.node_id or ""   # its Envoy's node id (a sidecar's and a Gateway API gateway's too)
            match = node_or_pod in (p.name, p.proxy.name, p.proxy.aws_name(), f"{p.namespace}/{p.name}") or (
                nid and node_or_pod in (nid, nid.rsplit("/", 1)[-1]))
            if match and procs.get(f"{p.namespace}/{p.name}/envoy", {}).get("state") == "Running":
                return self.sockets.admin(p.namespace, p.name)
        return None

    # -- lifecycle ----------------------------------------------------------------------

    def run(self) -> None:
        gc.set_threshold(*GC_THRESHOLD)
        self._write_aws_profile()
        from ..api.appmesh import handle
        self.xds.start()
        control = control_server(self.sockets.api, lambda *a: route(self, *a), MAX_BODY,
                                 answered=lambda method, path: self.answered() if path in ANSWERED else None)
        api = appmesh_api_server(self.api_port, lambda *a: handle(self, *a))
        for name, server in (("control", control), ("api", api)):
            threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
        self.supervisor.start_monitor()
        self.reconcile()
        me = identify(os.getpid())
        info = {"pid": os.getpid(), "socket": str(self.sockets.api), "appmesh_api_port": self.api_port,
                "xds": str(self.sockets.xds), "started": self.started,
                "ident": me.to_dict() if me else None}  # so `down` can prove a pid is still this daemon
        tmp = self.paths.daemon_info_tmp
        tmp.write_text(json.dumps(info))
        os.replace(tmp, self.paths.daemon_info)
        signal.signal(signal.SIGTERM, lambda *_: self._stop.set())
        signal.signal(signal.SIGINT, lambda *_: self._stop.set())
        print(f"appmesh-lab daemon ready: control {self.sockets.api}, App Mesh API 127.0.0.1:{self.api_port}, "
              f"xds {self.sockets.xds}", flush=True)
        while not self._stop.is_set():
            if self._wake.wait(1.0):
                self._wake.clear()
            try:
                self.reconcile()
            except Exception:  # a bug in one pass must not take the lab down; it is logged and retried
                traceback.print_exc()
        for server in (control, api):
            server.shutdown()
            server.server_close()
        self.sockets.api.unlink(missing_ok=True)
        self.supervisor.stop_all()
        self.xds.stop(0.5)
        for sock in self.sockets.dir.glob("admin.*.sock"):  # Envoy leaves its admin socket behind
            sock.unlink(missing_ok=True)
        if self.sockets.dir.parent != self.paths.home:  # a folder in the user's runtime folder: remove it
            with contextlib.suppress(OSError):
                self.sockets.dir.rmdir()
        self.ports.unclaim_all()  # the ports stay this lab's in its store; others may use them meanwhile
        self.paths.daemon_info.unlink(missing_ok=True)
        print("appmesh-lab daemon stopped", flush=True)

    def shutdown(self) -> None:
        self._stop.set()

    def _write_aws_profile(self) -> None:
        """The App Mesh API's credentials and profile in the lab's home (lab/api/credentials.py):
        made once, the endpoint rewritten at each start."""
        from ..api.credentials import CredentialsError, ensure_profile
        try:
            ensure_profile(self.paths.home, f"http://127.0.0.1:{self.api_port}", REGION)
        except (CredentialsError, OSError) as exc:
            raise DaemonError(f"cannot write the App Mesh API's credentials: {exc}") from exc


def _accepts(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on host:port (a readiness probe)."""
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


# what these answer includes status, Conditions or events: the pass an apply left for after
# its answer is written first
READS_STATUS = ("/v1/status", "/v1/resources", "/v1/events")
ANSWERED = ("/v1/apply", "/v1/delete")  # their status pass waits for the answer (Daemon.answered)


def route(d: Daemon, method: str, path: str, q: dict, body: dict):
    if path in READS_STATUS:
        d.flush_status()
    if path == "/v1/status":
        return 200, d.status()
    if path == "/v1/apply" and method == "POST":
        texts = body.get("texts", [])
        if not isinstance(texts, list) or not all(
                isinstance(t, list) and len(t) == 2 and all(isinstance(x, str) for x in t) for t in texts):
            raise BadRequest("texts must be a list of [file name, text] pairs of strings")
        out = d.apply([tuple(t) for t in texts], dry_run=bool(body.get("dry_run")), answering=True)
        return (422 if out["rejected"] else 200), out
    if path == "/v1/delete" and method == "POST":
        keys = body.get("keys", [])
        if not isinstance(keys, list) or not all(
                isinstance(k, list) and len(k) == 3 and all(isinstance(x, str) for x in k) for k in keys):
            raise BadRequest("keys must be a list of [kind, namespace, name] triples of strings")
        return 200, d.delete(keys, answering=True)
    if path == "/v1/resources":
        recs = d.store.list(q.get("kind") or None, q.get("namespace"))
        if q.get("name"):
            recs = [r for r in recs if r.name == q["name"]]
        return 200, {"items": [{"kind": r.kind, "namespace": r.namespace, "name": r.name, "uid": r.uid,
                                "generation": r.generation, "created": r.created, "updated": r.updated,
                                "doc": r.doc, "status": r.status} for r in recs]}
    if path == "/v1/events":
        key = (q["kind"], q.get("namespace", ""), q["name"]) if q.get("kind") and q.get("name") else None
        if not str(q.get("limit", 50)).isdecimal():
            raise BadRequest("limit must be a whole number")
        return 200, {"events": d.store.events(key, min(int(q.get("limit", 50)), 1_000_000))}
    if path == "/v1/pods":
        return 200, {"pods": d.pod_views()}
    if path == "/v1/proxy":
        sock = d.admin_socket_for(q.get("proxy", ""))
        if sock is None:
            return 404, {"error": f"no running Envoy for {q.get('proxy')!r}"}
        return 200, {"admin_socket": str(sock)}
    if path == "/v1/kill" and method == "POST":
        sig = body.get("signal", 9)
        if not isinstance(body.get("process"), str) or type(sig) is not int or sig not in set(signal.valid_signals()):
            raise BadRequest("kill needs process: \"<namespace>/<pod>/<container>\" and a valid signal number")
        ok = d.supervisor.kill(body["process"], sig)
        return (200, {"killed": ok}) if ok else (404, {"killed": ok, "error": f"no running process {body['process']!r}"})
    if path == "/v1/reconcile" and method == "POST":
        return 200, d.reconcile(force=True)
    if path == "/v1/shutdown" and method == "POST":
        threading.Timer(0.05, d.shutdown).start()
        return 200, {"stopping": True}
    return 404, {"error": f"no such endpoint: {method} {path}"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.runtime.daemon")
    ap.add_argument("--home", default=None)
    args = ap.parse_args(argv)
    os.umask(0o077)  # everything the daemon writes under the lab's home is the owner's only
    if os.environ.get("APPMESH_LAB_TEST_SKIP_ENVOY_CHECKS") == "1":
        # Test-only seam: values only Envoy refuses pass validation, so a test can watch the daemon
        # leave out a resource Envoy NACKs (the second line). Never set it for real use.
        from ..model import validate as _validate
        _validate.SKIP_CODES = frozenset({"envoy"})
    try:
        d = Daemon(Path(args.home) if args.home else lab_home())
        d.run()
    except (DaemonError, UnsafeFolder) as exc:
        print(f"appmesh-lab daemon: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
