"""`appmesh-lab bench converge`: from `apply` of a change to traffic following it.

On a real local lab (its own state directory; daemon, gateway Envoy, two sidecars and two
sample apps) holding N existing gateway routes (N = 10, 100, 1,000; each to its own virtual
service and virtual node, vn0 and vn1 with running pods), two kinds of change, one at a time:

  route    apply a NEW gateway route (prefix /new/<N>/<i>, to the live virtual service) and
           poll the gateway until a request is routed by it (200 from the app instead of
           Envoy's 404); then delete it and wait for the 404 again ("removed").
  weights  flip the weights of a VirtualRouter (route /split/ -> virtual service "split" ->
           router with vn0 and vn1) from 100/0 to 0/100 and back, and poll until the answer
           comes from the other app.

Per change, from the sending of the apply:
  apply     the POST /v1/apply round trip (validate, store, reconcile: translate, push)
  routed    apply sent -> the first request routed by the change was *sent* (polled on a
            keep-alive connection every PROBE_INTERVAL_S, 0.2 ms, after the apply answered;
            send time, so the app's response time is not counted). Each request through the
            gateway takes about 0.3 ms itself, so a change is seen within ~0.5 ms of Envoy
            applying it. Until this benchmark polled every 2 ms, which added up to 2 ms of
            measurement error to every sample (a third of the time at 10 routes); every fifth
            change is still polled every 2 ms, interleaved with the others in the same run
            (routed_coarse: the same measure with the old probe, reported beside it, not in the
            target).
  push      apply sent -> the daemon handed the new snapshot to its xDS server (the control
            plane's own part: validation, store, translation, snapshot)
  push_ack  that push -> the proxy ACKed every type of it: the floor, what xDS and Envoy need
            for the same change whatever the control plane (recorded by the daemon, read from
            /v1/status: proxies[].push)
  reconcile the daemon's own time for the apply's reconcile pass (from /v1/status): up to
            the push; the status pass (Conditions, status records, events) follows the
            apply's answer (lab/runtime/daemon.py flush_status)
So push_ack is the floor and routed - push_ack is the control plane's share.
Targets: routed p99 <= 2 x the push -> ACK p99 (the floor) at every size; and routed p99
< 50 ms at 100 routes, < 200 ms at 1,000.
Also the floor of a one-route change with the xDS server pushing only the types that changed
(now) and every type of every snapshot (before), alternating in one run (`push_floor`).
Also, in-process and without processes, where the daemon's apply time goes (stage by stage).
(`Floor` below runs an xDS server and a gateway Envoy without the daemon; tests use it.)
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
from .common import machine, scratch_lab, summary_ms, table

NS = "bench"
SIZES = (10, 100, 1000)
QUICK_SIZES = (10, 100)
CHANGES, QUICK_CHANGES = 200, 20
# from this many existing routes on, a change takes seconds on a 2-core machine: fewer changes
# there (200 of each kind at 1,000 routes would take half an hour)
LARGE, LARGE_CHANGES = 1000, 50
TARGETS_P99_MS = {100: 50.0, 1000: 200.0}
TARGET_P99_MS = 50.0  # at 100 routes (and below)
TARGET_FLOOR_RATIO = 2.0  # apply -> routed p99 <= this x the push -> ACK p99 (the floor), same size, same run
FLOOR_CHANGES, QUICK_FLOOR_CHANGES = 30, 6
PROBE_INTERVAL_S = 0.0002  # the routed probe's pause between requests (each takes ~0.3 ms itself)
COARSE_PROBE_INTERVAL_S = 0.002  # the probe this benchmark used before, kept for comparison
COARSE_EVERY = 5  # every fifth change is polled with the old 2 ms probe (routed_coarse), in addition
FIELDS = ("bench", "quick", "changes", "weight_changes", "sizes", "results", "daemon_apply_breakdown_ms",
          "push_floor_ms", "target", "met", "machine")
MEASURES = ("apply", "routed", "push", "push_ack", "removed", "reconcile",
            "weights_apply", "weights_routed", "weights_push", "weights_push_ack", "routed_coarse",
            "weights_routed_coarse")
SIZE_FIELDS = ("routes", "changes", "weight_changes", *(f"{m}_ms" for m in MEASURES), "control_plane_share_p50",
               "weights_control_plane_share_p50", "samples_ms")
STAT_FIELDS = ("n", "min", "p50", "p90", "p99", "max", "mean")


def new_route(n: int, i: int) -> dict:
    return manifests.gateway_route(f"new-{n}-{i}", NS, {"prefix": f"/new/{n}/{i}"}, "vs0")


def split(weights: tuple) -> list:
    """Virtual service "split" provided by router "split" (vn0: weights[0], vn1: weights[1]) and
    the gateway route /split/ to it."""
    return [manifests.virtual_router("split", NS, [manifests.router_route("split", {"vn0": weights[0],
                                                                                   "vn1": weights[1]})]),
            manifests.virtual_service("split", NS, router="split"),
            manifests.gateway_route("split", NS, {"prefix": "/split/"}, "split")]


def lab_manifests(n: int) -> str:
    return manifests.text(manifests.scale(n, NS, live=2), split((100, 0)))


class Poller:
    """GET one path through the gateway on a keep-alive connection until the answer is wanted."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.conn: http.client.HTTPConnection | None = None

    def get(self, path: str, headers: dict | None = None) -> tuple:
        """(status, body text) of one GET."""
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
            try:
                self.conn.request("GET", path, headers=headers or {})
                r = self.conn.getresponse()
                body = r.read()
                if (r.getheader("connection") or "").lower() == "close":
                    self.close()
                return r.status, body.decode("utf-8", "replace")
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def status(self, path: str) -> int:
        return self.get(path)[0]

    def until(self, path: str, want, timeout: float = 10.0, interval: float = 0.002,
              starting: bool = False, headers: dict | None = None) -> float:
        """perf_counter() at which the first request answered `want` was sent. `want`: a status,
        or a function (status, body) -> bool. `starting`: the gateway may not listen yet
        (refused connections are retried until the timeout)."""
        ok = want if callable(want) else (lambda status, body: status == want)
        deadline = time.perf_counter() + timeout
        while True:
            sent = time.perf_counter()
            try:
                if ok(*self.get(path, headers)):
                    return sent
            except OSError:
                if not starting or sent > deadline:
                    raise
            if sent > deadline:
                raise TimeoutError(f"{path} did not answer as wanted ({want}) within {timeout:.0f}s")
            time.sleep(interval)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# ---- on the local lab ----------------------------------------------------------------

def _gateway_push(c, since: float, timeout: float = 5.0) -> tuple:
    """(pushed, acked, status): wall times of the gateway's latest push made after `since`
    (time.time()), waiting up to `timeout` for its ACK (None, None when the gateway was not
    pushed), and the daemon's /v1/status then."""
    deadline = time.time() + timeout
    while True:
        st = c.call("GET", "/v1/status")
        pushes = [p["push"] for p in st["proxies"] if "/virtualGateway/" in p["node_id"] and p.get("push")
                  and p["push"]["pushed"] >= since]
        if not pushes:
            return None, None, st
        push = pushes[0]
        if push["acked"] is not None or time.time() > deadline:
            return push["pushed"], push["acked"], st
        time.sleep(0.01)


def _measure_change(c, poll, apply_body: dict, path: str, want, headers=None, coarse: bool = False) -> dict:
    """One change's times. `coarse`: polled with the old 2 ms probe, recorded as routed_coarse
    only (its push and ACK are left out too, so every other measure has the same changes)."""
    w0 = time.time()
    t0 = time.perf_counter()
    res = c.call("POST", "/v1/apply", apply_body, ok=(200, 422))
    t1 = time.perf_counter()
    if res.get("rejected") or "results" not in res:
        raise RuntimeError(f"apply failed: {res}")
    routed = poll.until(path, want, headers=headers,
                        interval=COARSE_PROBE_INTERVAL_S if coarse else PROBE_INTERVAL_S)
    pushed, acked, st = _gateway_push(c, w0)
    if coarse:
        return {"routed_coarse": routed - t0}
    return {"apply": t1 - t0, "routed": routed - t0, "push": None if pushed is None else pushed - w0,
            "push_ack": None if acked is None or pushed is None else acked - pushed,
            "reconcile": st["reconcile"].get("seconds")}


def _schedule(changes: int, warmup: int) -> list:
    """(index, coarse) of each change: `changes` polled with the fine probe and, interleaved so
    that both see the same conditions, one more with the old 2 ms probe after the 2nd fine one
    and then after every COARSE_EVERY - 1 fine ones; indexes from -warmup (warm-up changes are
    not recorded)."""
    out = [(i, False) for i in range(-warmup, 0)]
    for fine in range(changes):
        out.append((len(out) - warmup, False))
        if fine % (COARSE_EVERY - 1) == 1:
            out.append((len(out) - warmup, True))
    return out


def _lab_changes(target, n: int, changes: int, weight_changes: int, warmup: int = 2) -> dict:
    from ..runtime.status import gateway_address
    c = target.client
    host, port = gateway_address(c)
    poll = Poller(host, port)
    out: dict = {k: [] for k in MEASURES}

    def keep(prefix, rec):
        for k, v in rec.items():
            if v is not None:
                out[prefix + k].append(v)
    try:
        poll.until("/r0/", 200, timeout=60, interval=0.02, starting=True)
        for i, coarse in _schedule(changes, warmup):
            name = f"new-{n}-{i}"
            path = f"/new/{n}/{i}"
            rec = _measure_change(c, poll, {"texts": [[name, manifests.text(new_route(n, i))]]}, path, 200,
                                  coarse=coarse)
            t2 = time.perf_counter()
            c.call("POST", "/v1/delete", {"keys": [["GatewayRoute", NS, name]]})
            removed = poll.until(path, 404, interval=PROBE_INTERVAL_S)
            if i >= 0:
                keep("", rec)
                if not coarse:
                    out["removed"].append(removed - t2)
        plain = {"Accept": "text/plain"}
        poll.until("/split/", lambda s, body: s == 200 and body.startswith("vn0 "), timeout=30, headers=plain)
        flips = 0
        for i, coarse in _schedule(weight_changes, warmup):
            to_vn1 = flips % 2 == 0
            flips += 1
            weights, want = ((0, 100), "vn1 ") if to_vn1 else ((100, 0), "vn0 ")
            body = {"texts": [[f"split-{i}", manifests.text(split(weights)[0])]]}
            rec = _measure_change(c, poll, body, "/split/", lambda s, b, w=want: s == 200 and b.startswith(w),
                                  headers=plain, coarse=coarse)
            rec.pop("reconcile", None)
            if i >= 0:
                keep("weights_", rec)
        if flips % 2:  # leave the router at 100/0, as the next size's manifests have it
            c.call("POST", "/v1/apply", {"texts": [["split", manifests.text(split((100, 0))[0])]]})
    finally:
        poll.close()
    return out


# ---- the floor: xDS server + gateway Envoy in this process --------------------------

class Floor:
    """An XdsServer, one gateway Envoy and one sample app, without the daemon."""

    def __init__(self, workdir: Path, push_unchanged: bool = False):
        from ..runtime.envoy import free_port
        from ..translate import Placement, naming
        from ..xds.server import XdsServer
        self.workdir = workdir
        self.gw = naming.node_id(NS, "virtualGateway", f"gateway_{NS}")
        vn0 = naming.node_id(NS, "virtualNode", f"vn0_{NS}")
        self.app_port, self.gw_port = free_port(), free_port()
        self.placement = Placement(bind_address="127.0.0.1", listeners={self.gw: {8088: self.gw_port}},
                                   egress={self.gw: free_port()}, endpoints={vn0: {8080: [["127.0.0.1", self.app_port]]}})
        # xDS and Envoy admin on Unix sockets in a 0700 folder of a short path, as in the lab
        self.sockets = Path(tempfile.mkdtemp(prefix="lab-floor-"))
        self.xds = XdsServer(unix_socket=str(self.sockets / "xds.sock"), push_unchanged=push_unchanged)
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
        boot = make_bootstrap(self.gw, cluster="gateway", xds_socket=self.xds.unix_socket,
                              admin_socket=str(self.sockets / "admin.sock"))
        self.envoy = EnvoyProcess(boot, self.workdir, name="gateway")
        self.envoy.start()  # it goes LIVE once the first snapshot is pushed
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
        shutil.rmtree(self.sockets, ignore_errors=True)

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


def push_floor(sizes, changes: int, workdir: Path) -> dict:
    """The push -> ACK floor of a one-route change at each size, with the server pushing only
    the types that changed (now) and every type of every snapshot (before), in this run: a
    gateway Envoy and an xDS server, no daemon. Milliseconds, {size: {"changed_only": summary,
    "every_type": summary}}; the two modes alternate change by change."""
    from ..model import validate_texts
    out: dict = {}
    for n in sizes:
        base_docs = manifests.scale(n, NS)
        snaps = []
        for i in range(changes + 1):  # route i added to the N routes: consecutive snapshots differ by routes
            docs = base_docs + [new_route(n, i)] if i % 2 else base_docs
            snaps.append(validate_texts([("<floor>", manifests.text(docs))]).resources)
        times: dict = {"changed_only": [], "every_type": []}
        floors = {mode: Floor(workdir / f"floor-{n}-{mode}", push_unchanged=(mode == "every_type"))
                  for mode in times}
        with contextlib.ExitStack() as stack:
            for f in floors.values():
                stack.enter_context(f)
            built = {mode: [f.snapshot_for(r)[0] for r in snaps] for mode, f in floors.items()}
            for mode, f in floors.items():
                f.push(built[mode][0], timeout=30)  # the Envoy LIVE with N routes
            for i in range(1, changes + 1):
                for mode in (("changed_only", "every_type") if i % 2 else ("every_type", "changed_only")):
                    times[mode].append(floors[mode].push(built[mode][i], timeout=30))
        out[str(n)] = {mode: summary_ms(v) for mode, v in times.items()}
    return out


# ---- the daemon's apply path, stage by stage (in this process, no processes) --------

def daemon_breakdown(n: int = 100, changes: int = 10) -> dict:
    """Median milliseconds per stage of one Daemon.apply (a new gateway route on N routes).
    The daemon runs in this process on a scratch home; its supervisor is stubbed (no
    processes start) and no Envoy connects to its xDS server (snapshots are set, nobody
    reads them). Stages are timed by wrapping the functions the daemon calls; indented
    stages are parts of the one above them. The status pass follows the apply's answer (in the
    daemon: when a reader asks, or when the proxy ACKs); here it is flushed after each apply.
    The garbage collector is tuned as in the daemon."""
    import gc
    import statistics

    from ..runtime import daemon as dmod
    from ..store.sqlite import Store
    from ..xds.server import XdsServer
    from ..xds.snapshot import Snapshot
    current: dict = {}

    phase = ["apply"]  # which part runs now: the apply up to its answer, or the status pass after it

    def timed(owner, attr, label, counted):
        raw = owner.__dict__[attr] if isinstance(owner, type) else getattr(owner, attr)
        orig = getattr(owner, attr)

        def wrapper(*a, **kw):
            t0 = time.perf_counter()
            try:
                return orig(*a, **kw)
            finally:
                if phase[0] == counted:
                    current[label] = current.get(label, 0.0) + time.perf_counter() - t0
        setattr(owner, attr, wrapper)
        return owner, attr, raw

    stages = (
        (dmod, "validate_texts", "validate the new text against the store's index"),
        (dmod.SemanticIndex, "sync", "SemanticIndex.sync (the stored resources a change since reached)"),
        (dmod.SemanticIndex, "check", "  SemanticIndex.check (the apply, and the stored ones it reaches)"),
        (dmod.podplan, "plan", "pod plan (apply check + reconcile)"),
        (Store, "apply", "store write"),
        (Store, "versions", "Store.versions (what changed since the last read)"),
        (Store, "list", "Store.list (all records, JSON-decoded)"),
        (dmod.Daemon, "world", "reconcile: stored resources -> World"),
        (dmod.PodProcesses, "place", "reconcile: placement + pod specs"),
        (dmod.PodProcesses, "files", "reconcile: certificates"),
        (dmod.Incremental, "update", "reconcile: translate (only the proxies the change touches)"),
        (dmod.Daemon, "_publish", "reconcile: publish"),
        (Snapshot, "from_dicts", "  Snapshot.from_dicts (changed proxies; unchanged resources reused)"),
        (Snapshot, "expected_types", "  Snapshot.expected_types (reference scan)"),
        (XdsServer, "set_snapshot", "  XdsServer.set_snapshot (consistency check)"),
        (dmod.Daemon, "apply", "total Daemon.apply (up to its answer)"),
        (dmod.Daemon, "flush_status", "status pass, after the answer (Daemon.flush_status)"),
        (dmod.Conditions, "update", "  Conditions.update (the conditions a change reaches)"),
        (Store, "set_statuses", "  Store.set_statuses (one transaction)"),
        (dmod.SemanticIndex, "sync", "  SemanticIndex.sync (the validation index takes in the change)"),
    )
    first_status = next(i for i, (_, attr, _) in enumerate(stages) if attr == "flush_status")
    home = Path(tempfile.mkdtemp(prefix="appmesh-bench-daemon-"))
    patches, d, per_apply = [], None, []
    thresholds = gc.get_threshold()
    gc.set_threshold(*dmod.GC_THRESHOLD)
    try:
        d = dmod.Daemon(home)
        d.supervisor.ensure = lambda specs: None
        d.xds.start()  # bound, so bootstraps can name its port; no Envoy connects to it
        d.apply([("<base>", manifests.text(manifests.scale(n, NS, live=1)))])
        for i, (owner, attr, label) in enumerate(stages):
            patches.append(timed(owner, attr, label, "status" if i >= first_status else "apply"))
        for i in range(changes):
            text = manifests.text(new_route(n, i))
            current.clear()
            phase[0] = "apply"
            d.apply([(f"new-{i}", text)])
            phase[0] = "status"
            d.flush_status()
            per_apply.append(dict(current))
    finally:
        gc.set_threshold(*thresholds)
        for owner, attr, raw in reversed(patches):
            setattr(owner, attr, raw)
        if d is not None:
            d.flush_status()
            d.xds.stop(0)
            d.store.close()
        shutil.rmtree(home, ignore_errors=True)
    out = {label: round(statistics.median(p.get(label, 0.0) for p in per_apply) * 1000, 2)
           for _, _, label in stages}
    out["routes"] = n
    out["applies"] = changes
    return out


# ---- run ---------------------------------------------------------------------------

def run(quick: bool = False, sizes=None, changes: int | None = None, weight_changes: int | None = None,
        breakdown_applies: int | None = None, out=sys.stdout) -> dict:
    from ..runtime.client import LabError
    from ..runtime.envoy import EnvoyNotFound, find_envoy
    try:
        find_envoy()
    except EnvoyNotFound as exc:
        raise LabError(f"bench converge needs Envoy: {exc}") from exc
    sizes = sorted(sizes or (QUICK_SIZES if quick else SIZES))
    explicit = changes is not None
    changes = changes if changes is not None else (QUICK_CHANGES if quick else CHANGES)
    weight_changes = weight_changes if weight_changes is not None else changes
    results: dict = {}
    with scratch_lab("appmesh-bench-converge-", NS) as (target, scratch):
        for n in sizes:
            # not apply_text(wait=True): the lab's convergence wait counts the virtual nodes that have
            # no pods (their Envoys never connect) as unconverged; the gateway answering is the test
            target.apply_text(lab_manifests(n), name=f"<bench {n}>", wait=False)
            k, kw = changes, weight_changes
            if n >= LARGE and not explicit:
                k, kw = min(k, LARGE_CHANGES), min(kw, LARGE_CHANGES)
            results[str(n)] = {"routes": n, "changes": k, "weight_changes": kw,
                               **_lab_changes(target, n, k, kw)}
    breakdown = daemon_breakdown(max(sizes), breakdown_applies or (3 if quick else 10))
    with tempfile.TemporaryDirectory(prefix="appmesh-bench-converge-floor-") as d:
        floor = push_floor(sizes, QUICK_FLOOR_CHANGES if quick or explicit else FLOOR_CHANGES, Path(d))
    for rec in results.values():
        rec["samples_ms"] = {k: [round(x * 1000, 2) for x in rec[k]] for k in MEASURES}
        for k in MEASURES:
            rec[f"{k}_ms"] = summary_ms(rec.pop(k))
        for prefix in ("", "weights_"):
            lab_p50, floor_p50 = rec[f"{prefix}routed_ms"].get("p50"), rec[f"{prefix}push_ack_ms"].get("p50")
            rec[f"{prefix}control_plane_share_p50"] = (round((lab_p50 - floor_p50) / lab_p50, 3)
                                                       if lab_p50 and floor_p50 is not None else None)
    m = machine()
    print(f"bench converge: a change until the gateway routes by it; {changes} new gateway routes and "
          f"{weight_changes} router weight flips per size"
          + (f" ({LARGE_CHANGES} of each from {LARGE} routes on)" if any(n >= LARGE for n in sizes) and not explicit
             else "") + f"; {m['cores']} cores, python {m['python']}, envoy {m['envoy']}", file=out)
    rows = [["N routes", "measure (ms)", "p50", "p90", "p99", "max"]]
    labels = (("apply", "route: apply round trip"), ("routed", "route: apply -> routed"),
              ("routed_coarse", "route: apply -> routed, 2 ms probe (before)"),
              ("push", "route: apply -> xDS push"), ("push_ack", "route: push -> Envoy ACK (floor)"),
              ("removed", "route: delete -> 404 again"), ("reconcile", "route: daemon reconcile pass"),
              ("weights_routed", "weights: apply -> traffic follows"),
              ("weights_routed_coarse", "weights: apply -> traffic follows, 2 ms probe (before)"),
              ("weights_push", "weights: apply -> xDS push"),
              ("weights_push_ack", "weights: push -> Envoy ACK (floor)"))
    for n, rec in results.items():
        for key, label in labels:
            st = rec[f"{key}_ms"]
            rows.append([n, label, *(f"{st[q]:.1f}" if st.get(q) is not None else "-"
                                     for q in ("p50", "p90", "p99", "max"))])
    table(rows, out)
    for n, rec in results.items():
        share = rec["control_plane_share_p50"]
        if share is not None:
            print(f"  N={n}: control plane's share of apply -> routed at p50: {share * 100:.0f}% "
                  f"(the rest is xDS push -> Envoy ACK, the floor)", file=out)
    print(f"  daemon apply path, in-process, N={breakdown['routes']} (median ms per apply):", file=out)
    table([["stage", "ms"]] + [[k, f"{v:.1f}"] for k, v in breakdown.items() if k not in ("routes", "applies")], out,
          indent="    ")
    rows = [["N routes", "push -> ACK of one route (ms)", "p50", "p90", "p99", "max"]]
    for n, f in floor.items():
        for mode, label in (("changed_only", "changed types only (now)"), ("every_type", "every type (before)")):
            st = f[mode]
            rows.append([n, label, *(f"{st[q]:.1f}" if st.get(q) is not None else "-"
                                     for q in ("p50", "p90", "p99", "max"))])
    print("  the floor with and without pushing only what changed (xDS server + gateway Envoy, no daemon, "
          "alternating):", file=out)
    table(rows, out, indent="    ")
    met, target = {}, {}
    for n, rec in results.items():
        floor99, routed99 = rec["push_ack_ms"].get("p99"), rec["routed_ms"].get("p99")
        target[f"routed_p99_{n}_floor_ratio_max"] = TARGET_FLOOR_RATIO
        rec["routed_to_floor_p99_ratio"] = round(routed99 / floor99, 2) if floor99 and routed99 is not None else None
        met[f"routed_p99_{n}_within_2x_floor"] = (rec["routed_to_floor_p99_ratio"] is not None
                                                 and rec["routed_to_floor_p99_ratio"] <= TARGET_FLOOR_RATIO)
        limit = next((v for k, v in sorted(TARGETS_P99_MS.items()) if int(n) <= k), None)
        if limit is None:
            continue
        target[f"routed_p99_{n}_ms"] = limit
        met[f"routed_p99_{n}"] = rec["routed_ms"]["p99"] < limit
        met[f"weights_routed_p99_{n}"] = rec["weights_routed_ms"].get("p99", float("inf")) < limit
    for n, rec in results.items():
        ratio = rec["routed_to_floor_p99_ratio"]
        print(f"  target N={n}: apply -> routed p99 <= {TARGET_FLOOR_RATIO:g} x push -> ACK p99: "
              f"{rec['routed_ms'].get('p99', float('nan')):.0f} / {rec['push_ack_ms'].get('p99', float('nan')):.0f} ms"
              f" = {ratio if ratio is not None else float('nan'):.1f}x "
              f"{'met' if met[f'routed_p99_{n}_within_2x_floor'] else 'MISSED'}", file=out)
        if f"routed_p99_{n}" in met:
            print(f"  target N={n}: apply -> routed p99 < {target[f'routed_p99_{n}_ms']:.0f} ms: route "
                  f"{rec['routed_ms']['p99']:.0f} ms {'met' if met[f'routed_p99_{n}'] else 'MISSED'}, weights "
                  f"{rec['weights_routed_ms'].get('p99', float('nan')):.0f} ms "
                  f"{'met' if met[f'weights_routed_p99_{n}'] else 'MISSED'}", file=out)
    record = {"bench": "converge", "quick": quick, "changes": changes, "weight_changes": weight_changes,
              "sizes": sizes, "results": results, "daemon_apply_breakdown_ms": breakdown, "push_floor_ms": floor,
              "target": target,
              "met": met, "machine": m}
    print(json.dumps(record), file=out, flush=True)
    return record
