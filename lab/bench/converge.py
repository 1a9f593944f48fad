"""`appmesh-lab bench converge`: from `apply` of a new gateway route to traffic following it.

On a real local lab (its own state directory; daemon, gateway Envoy, one sidecar and one
sample app) holding N existing gateway routes (N = 10, then 100; each to its own virtual
service and virtual node, one of them with a running pod), it applies a NEW gateway route
(prefix /new/<N>/<i>, to the live virtual service) and polls the gateway until a request is
routed by it (200 from the app instead of Envoy's 404), then deletes it and waits for the
404 again. Per change:
  apply     the POST /v1/apply round trip (validate, store, reconcile: translate, push)
  routed    apply sent -> the first request the gateway routed by the new route was *sent*
            (polled on a keep-alive connection every ~1 ms; send time, so the app's own
            response time is not counted)
  removed   delete sent -> the gateway answers 404 again
  reconcile the daemon's own time for the apply's reconcile pass (from /v1/status)
The floor, for the same change, measured without the daemon: this process runs an xDS
server (lab.xds.XdsServer) and one gateway Envoy with the same N-route world and pushes
the snapshot with the new route (translated and built beforehand):
  ack       set_snapshot -> the gateway ACKed every type of that version (wait_for_ack)
  routed    set_snapshot -> the first request routed by the new route was sent
So routed(lab) - ack(floor) is the control plane's share (validation, store, reconcile,
translation) on top of what xDS and Envoy need anyway. Target: routed p99 < 200 ms.
Also, in-process and without processes, where the daemon's apply time goes (stage by stage).
"""
from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import manifests
from .common import machine, summary_ms, table

NS = "bench"
SIZES = (10, 100)
TARGET_P99_MS = 200.0
FIELDS = ("bench", "quick", "changes", "sizes", "results", "daemon_apply_breakdown_ms", "target", "met", "machine")
SIZE_FIELDS = ("routes", "changes", "apply_ms", "routed_ms", "removed_ms", "reconcile_ms", "floor_ack_ms",
               "floor_routed_ms", "floor_translate_ms", "floor_snapshot_ms", "control_plane_share_p50")
STAT_FIELDS = ("n", "min", "p50", "p90", "p99", "max", "mean")


def new_route(n: int, i: int) -> dict:
    return manifests.gateway_route(f"new-{n}-{i}", NS, {"prefix": f"/new/{n}/{i}"}, "vs0")


class Poller:
    """GET one path through the gateway on a keep-alive connection until the answer is wanted."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.conn: http.client.HTTPConnection | None = None

    def status(self, path: str) -> int:
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
            try:
                self.conn.request("GET", path)
                r = self.conn.getresponse()
                r.read()
                if (r.getheader("connection") or "").lower() == "close":
                    self.close()
                return r.status
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def until(self, path: str, want: int, timeout: float = 10.0, interval: float = 0.001,
              starting: bool = False) -> float:
        """perf_counter() at which the first request answered `want` was sent. `starting`: the
        gateway may not listen yet (refused connections are retried until the timeout)."""
        deadline = time.perf_counter() + timeout
        while True:
            sent = time.perf_counter()
            try:
                if self.status(path) == want:
                    return sent
            except OSError:
                if not starting or sent > deadline:
                    raise
            if sent > deadline:
                raise TimeoutError(f"{path} did not answer {want} within {timeout:.0f}s")
            time.sleep(interval)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# ---- on the local lab ----------------------------------------------------------------

def _lab_changes(target, n: int, changes: int, warmup: int = 2) -> dict:
    from ..labcli import gateway_address
    c = target.client
    host, port = gateway_address(c)
    poll = Poller(host, port)
    out = {"apply": [], "routed": [], "removed": [], "reconcile": []}
    try:
        poll.until("/r0/", 200, timeout=30, interval=0.02, starting=True)
        for i in range(-warmup, changes):
            name = f"new-{n}-{i}"
            text = manifests.text(new_route(n, i))
            path = f"/new/{n}/{i}"
            t0 = time.perf_counter()
            res = c.call("POST", "/v1/apply", {"texts": [[name, text]]}, ok=(200, 422))
            t1 = time.perf_counter()
            if res.get("rejected") or "results" not in res:
                raise RuntimeError(f"apply of {name} failed: {res}")
            routed = poll.until(path, 200)
            reconcile = c.call("GET", "/v1/status")["reconcile"].get("seconds")
            t2 = time.perf_counter()
            c.call("POST", "/v1/delete", {"keys": [["GatewayRoute", NS, name]]})
            removed = poll.until(path, 404)
            if i < 0:
                continue  # warm-up
            out["apply"].append(t1 - t0)
            out["routed"].append(routed - t0)
            out["removed"].append(removed - t2)
            if reconcile is not None:
                out["reconcile"].append(reconcile)
    finally:
        poll.close()
    return out


# ---- the floor: xDS server + gateway Envoy in this process --------------------------

class Floor:
    """An XdsServer, one gateway Envoy and one sample app, without the daemon."""

    def __init__(self, workdir: Path):
        from ..runtime.envoy import free_port
        from ..translate import Placement, naming
        from ..xds.server import XdsServer
        self.workdir = workdir
        self.gw = naming.node_id(NS, "virtualGateway", f"gateway_{NS}")
        vn0 = naming.node_id(NS, "virtualNode", f"vn0_{NS}")
        self.app_port, self.gw_port = free_port(), free_port()
        self.placement = Placement(bind_address="127.0.0.1", listeners={self.gw: {8088: self.gw_port}},
                                   egress={self.gw: free_port()}, endpoints={vn0: {8080: [["127.0.0.1", self.app_port]]}})
        self.xds = XdsServer("127.0.0.1", 0)
        self.envoy = None
        self.app = None
        self.version = 0

    def __enter__(self):
        from ..runtime.envoy import EnvoyProcess
        from ..xds.bootstrap import make_bootstrap
        self.xds.start()
        env = dict(os.environ, PORT=str(self.app_port), HOST="127.0.0.1", SERVICE_NAME="vs0")
        self.app = subprocess.Popen([sys.executable, "-m", "lab.apps.sample"], env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        boot = make_bootstrap(self.gw, cluster="gateway", xds_host="127.0.0.1", xds_port=self.xds.port, admin_port=0)
        self.envoy = EnvoyProcess(boot, self.workdir, name="gateway")
        self.envoy.start()  # it goes LIVE once the first snapshot arrives (_floor_changes pushes it)
        return self

    def __exit__(self, *exc):
        with contextlib.suppress(Exception):
            if self.envoy is not None:
                self.envoy.stop(3)
        if self.app is not None:
            self.app.terminate()
            try:
                self.app.wait(5)
            except subprocess.TimeoutExpired:
                self.app.kill()
                self.app.wait()
        self.xds.stop(0)

    def snapshot_for(self, resources) -> tuple:
        """(snapshot, translate seconds, snapshot seconds) of the gateway for a list of resources."""
        from ..model import World
        from ..translate import ir as irmod
        from ..translate import to_envoy
        from ..xds.snapshot import Snapshot
        world = World(resources)
        vg = world.by_kind["VirtualGateway"][0]
        t0 = time.perf_counter()
        ir = irmod.gateway_ir(world, vg, self.placement)
        envoy = to_envoy(ir)
        t1 = time.perf_counter()
        self.version += 1
        snap = Snapshot.from_dicts(f"floor-{self.version}", **envoy)
        t2 = time.perf_counter()
        return snap, t1 - t0, t2 - t1

    def again(self, snap):
        """The same resources under a new version (cheap: no JSON parsing)."""
        from ..xds.snapshot import Snapshot
        self.version += 1
        return Snapshot(f"floor-{self.version}", clusters=snap.clusters.values(), endpoints=snap.endpoints.values(),
                        listeners=snap.listeners.values(), routes=snap.routes.values(),
                        secrets=snap.secrets.values())

    def push(self, snap, timeout: float = 10.0) -> float:
        """Seconds from set_snapshot to the gateway's ACK of every type of it."""
        t0 = time.perf_counter()
        self.xds.set_snapshot(self.gw, snap)
        if not self.xds.wait_for_ack(self.gw, snap.version, timeout):
            raise RuntimeError(f"the gateway did not ACK {snap.version}: {self.xds.status(self.gw)}")
        return time.perf_counter() - t0


def _floor_changes(floor: Floor, n: int, changes: int, warmup: int = 2) -> dict:
    from ..model import validate_texts
    base = validate_texts([("<floor>", manifests.text(manifests.scale(n, NS)))]).resources
    base_snap, _, _ = floor.snapshot_for(base)
    floor.push(base_snap, timeout=30)
    poll = Poller("127.0.0.1", floor.gw_port)
    out = {"ack": [], "routed": [], "translate": [], "snapshot": []}
    try:
        poll.until("/r0/", 200, timeout=20, interval=0.02, starting=True)
        for i in range(-warmup, changes):
            extra = validate_texts([("<floor>", manifests.text(new_route(n, i)))]).resources
            snap, t_tr, t_sn = floor.snapshot_for(base + extra)
            path = f"/new/{n}/{i}"
            t0 = time.perf_counter()
            floor.xds.set_snapshot(floor.gw, snap)
            ack_ok = floor.xds.wait_for_ack(floor.gw, snap.version, 10)
            t_ack = time.perf_counter()
            routed = poll.until(path, 200)
            if not ack_ok:
                raise RuntimeError(f"the gateway did not ACK {snap.version}: {floor.xds.status(floor.gw)}")
            floor.push(floor.again(base_snap))
            poll.until(path, 404)
            if i < 0:
                continue
            out["ack"].append(t_ack - t0)
            out["routed"].append(routed - t0)
            out["translate"].append(t_tr)
            out["snapshot"].append(t_sn)
    finally:
        poll.close()
    return out


# ---- the daemon's apply path, stage by stage (in this process, no processes) --------

def daemon_breakdown(n: int = 100, changes: int = 10) -> dict:
    """Median milliseconds per stage of one Daemon.apply (a new gateway route on N routes).
    The daemon runs in this process on a scratch home; its supervisor is stubbed (no
    processes start) and no Envoy connects to its xDS server (snapshots are set, nobody
    reads them). Stages are timed by wrapping the functions the daemon calls; indented
    stages are parts of the one above them."""
    import json as _json
    import statistics
    import types

    from ..runtime import daemon as dmod
    from ..store.sqlite import Store
    from ..xds.server import XdsServer
    from ..xds.snapshot import Snapshot
    current: dict = {}

    def timed(owner, attr, label):
        raw = owner.__dict__[attr] if isinstance(owner, type) else getattr(owner, attr)
        orig = getattr(owner, attr)

        def wrapper(*a, **kw):
            t0 = time.perf_counter()
            try:
                return orig(*a, **kw)
            finally:
                current[label] = current.get(label, 0.0) + time.perf_counter() - t0
        setattr(owner, attr, wrapper)
        return owner, attr, raw

    stages = (
        (dmod, "validate_texts", "validate the new text against the store"),
        (dmod.podplan, "plan", "pod plan (apply check + reconcile)"),
        (Store, "apply", "store write"),
        (Store, "list", "Store.list (every call: all records, JSON-decoded)"),
        (dmod.Daemon, "world", "reconcile: stored resources -> World"),
        (dmod.Daemon, "_place", "reconcile: placement + pod specs"),
        (dmod.Daemon, "_files", "reconcile: certificates"),
        (dmod, "translate", "reconcile: translate (every proxy)"),
        (dmod.Daemon, "_publish", "reconcile: publish"),
        (dmod.json, "dumps", "  json.dumps of every proxy's output (change check)"),
        (Snapshot, "from_dicts", "  Snapshot.from_dicts (changed proxies)"),
        (XdsServer, "set_snapshot", "  XdsServer.set_snapshot (consistency check)"),
        (dmod.Daemon, "_write_status", "reconcile: status"),
        (dmod, "conditions", "  conditions()"),
        (Store, "set_status", "  Store.set_status (one transaction per resource)"),
        (dmod.Daemon, "apply", "total Daemon.apply"),
    )
    home = Path(tempfile.mkdtemp(prefix="appmesh-bench-daemon-"))
    patches, d, per_apply = [], None, []
    saved_json = dmod.json
    try:
        d = dmod.Daemon(home)
        d.supervisor.ensure = lambda specs: None
        d.xds.start()  # bound, so bootstraps can name its port; no Envoy connects to it
        d.apply([("<base>", manifests.text(manifests.scale(n, NS, live=1)))])
        dmod.json = types.SimpleNamespace(**{k: getattr(_json, k) for k in ("dumps", "loads")})
        for owner, attr, label in stages:
            patches.append(timed(owner, attr, label))
        for i in range(changes):
            current.clear()
            d.apply([(f"new-{i}", manifests.text(new_route(n, i)))])
            per_apply.append(dict(current))
    finally:
        for owner, attr, raw in reversed(patches):
            setattr(owner, attr, raw)
        dmod.json = saved_json
        if d is not None:
            d.xds.stop(0)
            d.store.close()
        shutil.rmtree(home, ignore_errors=True)
    out = {label: round(statistics.median(p.get(label, 0.0) for p in per_apply) * 1000, 2)
           for _, _, label in stages}
    out["routes"] = n
    out["applies"] = changes
    return out


# ---- run ---------------------------------------------------------------------------

def run(quick: bool = False, sizes=None, out=sys.stdout) -> dict:
    from ..runtime.client import LabError
    from ..runtime.envoy import EnvoyNotFound, find_envoy
    from ..targets.local import LocalTarget
    try:
        find_envoy()
    except EnvoyNotFound as exc:
        raise LabError(f"bench converge needs Envoy: {exc}") from exc
    sizes = sorted(sizes or SIZES)
    changes = 20 if quick else 100
    results: dict = {}
    scratch = Path(tempfile.mkdtemp(prefix="appmesh-bench-converge-"))
    try:
        target = LocalTarget(home=str(scratch / "lab"), echo=False, namespace=NS)
        target.up()
        try:
            for n in sizes:
                # not apply_text(wait=True): the lab's convergence wait counts the virtual nodes that have
                # no pods (their Envoys never connect) as unconverged; the gateway answering is the test
                target.apply_text(manifests.text(manifests.scale(n, NS, live=1)), name=f"<bench {n}>", wait=False)
                results[str(n)] = {"routes": n, "changes": changes, **_lab_changes(target, n, changes)}
        finally:
            target.down()
        with Floor(scratch / "floor") as floor:
            for n in sizes:
                results[str(n)].update({f"floor_{k}": v for k, v in _floor_changes(floor, n, changes).items()})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    breakdown = daemon_breakdown(max(sizes), 5 if quick else 20)
    for rec in results.values():
        for k in [k for k in rec if isinstance(rec[k], list)]:
            rec[f"{k}_ms"] = summary_ms(rec.pop(k))
        lab_p50, floor_p50 = rec["routed_ms"]["p50"], rec["floor_ack_ms"]["p50"]
        rec["control_plane_share_p50"] = round((lab_p50 - floor_p50) / lab_p50, 3) if lab_p50 else None
    m = machine()
    print(f"bench converge: a new gateway route until the gateway routes by it; {changes} changes per size; "
          f"{m['cores']} cores, python {m['python']}, envoy {m['envoy']}", file=out)
    rows = [["N routes", "measure (ms)", "p50", "p90", "p99", "max"]]
    labels = (("apply", "lab: apply round trip"), ("routed", "lab: apply -> routed"),
              ("removed", "lab: delete -> 404 again"), ("reconcile", "lab: daemon reconcile pass"),
              ("floor_translate", "floor: translate gateway"), ("floor_snapshot", "floor: build snapshot"),
              ("floor_ack", "floor: push -> Envoy ACK"), ("floor_routed", "floor: push -> routed"))
    for n, rec in results.items():
        for key, label in labels:
            s = rec[f"{key}_ms"]
            rows.append([n, label, *(f"{s[q]:.1f}" if s.get(q) is not None else "-" for q in ("p50", "p90", "p99", "max"))])
    table(rows, out)
    for n, rec in results.items():
        share = rec["control_plane_share_p50"]
        print(f"  N={n}: control plane's share of apply -> routed at p50: "
              f"{share * 100:.0f}% (the rest is xDS push -> Envoy ACK)" if share is not None else "", file=out)
    print(f"  daemon apply path, in-process, N={breakdown['routes']} (median ms per apply):", file=out)
    table([["stage", "ms"]] + [[k, f"{v:.1f}"] for k, v in breakdown.items() if k not in ("routes", "applies")], out,
          indent="    ")
    met = {f"routed_p99_{n}": rec["routed_ms"]["p99"] < TARGET_P99_MS for n, rec in results.items()}
    print("  target: apply -> routed p99 < 200 ms: " + ", ".join(
        f"N={n} {results[n]['routed_ms']['p99']:.0f} ms {'met' if met[f'routed_p99_{n}'] else 'NOT met'}"
        for n in results), file=out)
    record = {"bench": "converge", "quick": quick, "changes": changes, "sizes": sizes, "results": results,
              "daemon_apply_breakdown_ms": breakdown, "target": {"routed_p99_ms": TARGET_P99_MS}, "met": met,
              "machine": m}
    print(json.dumps(record), file=out, flush=True)
    return record
