"""`appmesh-lab bench scale`: how the control plane and the proxies grow with the mesh.

For N = 10, 100, 1,000, 5,000 gateway routes with N virtual services and N virtual nodes
(lab/bench/manifests.scale; one gateway, so N + 1 proxies get a configuration), it measures
in this process, from the validated model:
  translate       translate.build + to_envoy for every proxy (median of the repeats)
  snapshot        Snapshot.from_dicts for every proxy (protobuf, what xDS serves)
  snapshot bytes  the serialized size of every resource of every proxy's snapshot, and of the
                  gateway's alone (it holds every route and cluster)
(with the garbage collector tuned as the daemon tunes it), and on one real local lab (own state directory), applying the N-route manifests on top of the
previous size's (vn0 has a running pod: its sidecar and the gateway are real Envoys; the other
virtual nodes have no pods, so the lab fits a small machine; the daemon translates and snapshots
only the proxies an Envoy runs, so its work and memory per proxy follow the running ones):
  apply           the POST /v1/apply round trip (validate, store, reconcile, push)
  all acked       apply sent -> every running proxy ACKed its latest snapshot
  daemon RSS      the daemon's resident memory after the apply
  Envoy RSS       the gateway's Envoy and vn0's sidecar Envoy
and, in the same run, the gateway Envoy's own part of *all acked* (converge.Floor: an xDS server
and a gateway Envoy, no daemon, the gateway's snapshots grown through the same sizes):
  gateway floor   set_snapshot -> the gateway Envoy ACKed every type of the grown snapshot
"Linear or better" compares the per-route cost at each size with the one at 100 routes (at 10,
fixed costs dominate). Targets: linear or better; all proxies ACKed at x/route <= 1.2 from 100
routes up; 1,000 routes translated < 1 s; daemon RSS < 200 MB at 1,000 routes and < 300 MB at 5,000.
"""
from __future__ import annotations

import gc
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from . import manifests
from ..runtime.daemon import GC_THRESHOLD
from .common import machine, rss_mb, scratch_lab, table

NS = "bench"
SIZES = (10, 100, 1000, 5000)
QUICK_SIZES = (10, 100, 1000)
TARGET_TRANSLATE_1000_S = 1.0
TARGET_DAEMON_MB_1000 = 200.0
TARGET_DAEMON_MB_5000 = 300.0
LINEAR_TOLERANCE = 1.5  # per-route cost may be this much above the reference's before "not linear"
TARGET_ACK_RATIO = 1.2  # all proxies ACKed: per-route cost at most this much above the reference's
FIELDS = ("bench", "quick", "sizes", "results", "target", "met", "machine")
SIZE_FIELDS = ("routes", "virtual_services", "virtual_nodes", "proxies", "repeats", "translate_ms", "snapshot_ms",
               "snapshot_bytes", "gateway_snapshot_bytes", "apply_ms", "all_acked_ms", "running_proxies",
               "daemon_rss_mb", "gateway_envoy_rss_mb", "sidecar_envoy_rss_mb", "gateway_floor_ms",
               "translate_per_route_ratio", "all_acked_per_route_ratio", "gateway_floor_per_route_ratio")


def _repeats(n: int, quick: bool) -> int:
    return 1 if n >= 5000 or (quick and n >= 1000) else 3


def snapshot_bytes(snap) -> int:
    from ..xds.snapshot import PUSH_ORDER
    return sum(m.ByteSize() for t in PUSH_ORDER for m in snap.resources(t).values())


def in_process(n: int, repeats: int) -> dict:
    from ..model import World, validate_documents
    from ..model.loader import Document
    from .translate import placement_of
    # from the manifests as dicts: YAML parsing is the model step's cost, not the translator's
    result = validate_documents([Document(d, f"<scale {n}>", 0, i) for i, d in enumerate(manifests.scale(n, NS))])
    if not result.ok:
        raise RuntimeError("the generated manifests do not validate:\n" + "\n".join(map(str, result.errors[:5])))
    world = World(result.resources)
    placement = placement_of(world)
    thresholds = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLD)  # as the daemon runs it (the default collector rescans the growing heap)
    try:
        return _measured(world, placement, repeats, n)
    finally:
        gc.set_threshold(*thresholds)


def _measured(world, placement, repeats: int, n: int) -> dict:
    from ..translate import build, to_envoy
    from ..xds.snapshot import Snapshot
    tr, sn = [], []
    total = gw = proxies = 0
    for r in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        irs = build(world, placement)
        out = {nid: to_envoy(ir) for nid, ir in irs.items()}
        t1 = time.perf_counter()
        snaps = {nid: Snapshot.from_dicts(f"scale-{r}", **e) for nid, e in out.items()}
        t2 = time.perf_counter()
        proxies = len(irs)
        tr.append(t1 - t0)
        sn.append(t2 - t1)
        total = sum(snapshot_bytes(s) for s in snaps.values())
        gw = next(snapshot_bytes(s) for nid, s in snaps.items() if "/virtualGateway/" in nid)
        del snaps, out, irs
    return {"virtual_services": len(world.by_kind["VirtualService"]), "virtual_nodes": len(world.by_kind["VirtualNode"]),
            "proxies": proxies, "repeats": repeats,
            "translate_ms": round(statistics.median(tr) * 1000, 2), "snapshot_ms": round(statistics.median(sn) * 1000, 2),
            "snapshot_bytes": total, "gateway_snapshot_bytes": gw}


def _all_acked(c, since: float, timeout: float) -> tuple:
    """Seconds from `since` (time.time()) until every connected proxy ACKed its latest push,
    and the status then."""
    deadline = time.time() + timeout
    while True:
        st = c.call("GET", "/v1/status")
        running = [p for p in st["proxies"] if p.get("connected")]
        pushes = [p.get("push") for p in running]
        if running and all(p and p["acked"] is not None for p in pushes):
            last = max([p["acked"] for p in pushes if p["pushed"] >= since] or [None], key=lambda x: x or 0)
            return (last - since if last is not None else 0.0), st
        if time.time() > deadline:
            raise TimeoutError(f"not every proxy ACKed within {timeout:.0f}s: "
                               + ", ".join(f"{p['node_id']}: {p.get('push')}" for p in running))
        time.sleep(0.1)  # the ACK times come from the daemon, not from this polling


def _running(c, count: int, timeout: float) -> None:
    deadline = time.time() + timeout
    while True:
        st = c.call("GET", "/v1/status")
        if sum(1 for p in st["proxies"] if p.get("connected")) >= count:
            _all_acked(c, 0.0, timeout)
            return
        if time.time() > deadline:
            raise TimeoutError(f"fewer than {count} proxies connected within {timeout:.0f}s: {st['pods']}")
        time.sleep(0.05)


def on_lab(target, n: int) -> dict:
    c = target.client
    w0 = time.time()
    t0 = time.perf_counter()
    res = c.call("POST", "/v1/apply", {"texts": [[f"<scale {n}>", manifests.text(manifests.scale(n, NS, live=1))]]},
                 ok=(200, 422), timeout=600)
    apply_s = time.perf_counter() - t0
    if res.get("rejected"):
        raise RuntimeError(f"the {n}-route manifests were rejected: {res['problems'][:3]}")
    acked_s, st = _all_acked(c, w0, timeout=300)
    envoys = {p["role"]: next((x["pid"] for x in p["containers"] if x["name"] == "envoy"), None) for p in st["pods"]}
    return {"apply_ms": round(apply_s * 1000, 1), "all_acked_ms": round(acked_s * 1000, 1),
            "running_proxies": sum(1 for p in st["proxies"] if p.get("connected")),
            "daemon_rss_mb": rss_mb(st["daemon"]["pid"]), "gateway_envoy_rss_mb": rss_mb(envoys.get("gateway")),
            "sidecar_envoy_rss_mb": rss_mb(envoys.get("meshed"))}


def gateway_floor(sizes, workdir) -> dict:
    """Milliseconds from set_snapshot to the gateway Envoy's ACK of its snapshot at each size, grown
    one on top of the other from one route as on the lab: the part of *all acked* that is Envoy
    loading N routes and clusters, with no daemon."""
    from ..model import validate_texts
    from .converge import NS as FLOOR_NS, Floor

    def resources(n):
        return validate_texts([(f"<scale {n}>", manifests.text(manifests.scale(n, FLOOR_NS)))]).resources
    out = {}
    with Floor(Path(workdir)) as f:
        f.push(f.snapshot_for(resources(1))[0], timeout=60)
        for n in sizes:
            out[str(n)] = round(f.push(f.snapshot_for(resources(n))[0], timeout=300) * 1000, 1)
    return out


def run(quick: bool = False, sizes=None, out=sys.stdout) -> dict:
    from ..runtime.client import LabError
    from ..runtime.envoy import EnvoyNotFound, find_envoy
    try:
        find_envoy()
    except EnvoyNotFound as exc:
        raise LabError(f"bench scale needs Envoy: {exc}") from exc
    sizes = sorted(sizes or (QUICK_SIZES if quick else SIZES))
    results: dict = {}
    for n in sizes:
        results[str(n)] = {"routes": n, **in_process(n, _repeats(n, quick))}
    with scratch_lab("appmesh-bench-scale-", NS) as (target, scratch):
        # one route first, so the gateway's Envoy and vn0's sidecar run before the first size is timed
        target.apply_text(manifests.text(manifests.scale(1, NS, live=1)), name="<scale 1>", wait=False)
        _running(target.client, 2, timeout=60)
        for n in sizes:
            results[str(n)].update(on_lab(target, n))
    with tempfile.TemporaryDirectory(prefix="appmesh-bench-floor-") as d:
        for n, ms in gateway_floor(sizes, d).items():
            results[n]["gateway_floor_ms"] = ms
    ref = results.get("100") or results[str(sizes[0])]
    for rec in results.values():
        for key in ("translate", "all_acked", "gateway_floor"):
            per, ref_per = rec[f"{key}_ms"] / rec["routes"], ref[f"{key}_ms"] / ref["routes"]
            rec[f"{key}_per_route_ratio"] = round(per / ref_per, 3) if ref_per else None
    m = machine()
    print(f"bench scale: N gateway routes, N virtual services, N virtual nodes (N + 1 proxies configured; "
          f"2 running Envoys); {m['cores']} cores, python {m['python']}, envoy {m['envoy']}", file=out)
    rows = [["N", "translate ms", "x/route", "snapshots ms", "snapshot KB", "gateway KB", "apply ms",
             "all ACKed ms", "x/route", "gw floor ms", "x/route", "daemon MB", "gw Envoy MB", "sidecar MB"]]
    for rec in results.values():
        rows.append([rec["routes"], f"{rec['translate_ms']:.1f}", f"{rec['translate_per_route_ratio']:.2f}",
                     f"{rec['snapshot_ms']:.1f}", f"{rec['snapshot_bytes'] / 1024:.0f}",
                     f"{rec['gateway_snapshot_bytes'] / 1024:.0f}", f"{rec['apply_ms']:.0f}",
                     f"{rec['all_acked_ms']:.0f}",
                     f"{rec['all_acked_per_route_ratio']:.2f}" if rec["all_acked_per_route_ratio"] is not None else "-",
                     f"{rec['gateway_floor_ms']:.0f}",
                     f"{rec['gateway_floor_per_route_ratio']:.2f}" if rec["gateway_floor_per_route_ratio"] is not None else "-",
                     rec["daemon_rss_mb"], rec["gateway_envoy_rss_mb"], rec["sidecar_envoy_rss_mb"]])
    table(rows, out)
    print(f"  x/route: per-route cost relative to N = {ref['routes']} (1.00 = linear, below = better than linear); "
          "gw floor: push -> ACK of the gateway's grown snapshot on a bare Envoy, no daemon (Envoy's own part)",
          file=out)
    big = [r for r in results.values() if r["routes"] >= ref["routes"]]
    met = {"translate_linear": all(r["translate_per_route_ratio"] <= LINEAR_TOLERANCE for r in big),
           "all_acked_linear": all((r["all_acked_per_route_ratio"] or 0) <= LINEAR_TOLERANCE for r in big),
           "all_acked_within_ratio": all((r["all_acked_per_route_ratio"] or 0) <= TARGET_ACK_RATIO for r in big)}
    if "5000" in results:
        r = results["5000"]
        met["daemon_rss_5000_under_300mb"] = (r["daemon_rss_mb"] or 0) < TARGET_DAEMON_MB_5000
        print(f"  target at 5,000 routes: daemon RSS {r['daemon_rss_mb']} MB (< 300 MB: "
              f"{'met' if met['daemon_rss_5000_under_300mb'] else 'MISSED'})", file=out)
    if "1000" in results:
        r = results["1000"]
        met["translate_1000_under_1s"] = r["translate_ms"] / 1000 < TARGET_TRANSLATE_1000_S
        met["daemon_rss_1000_under_200mb"] = (r["daemon_rss_mb"] or 0) < TARGET_DAEMON_MB_1000
        print(f"  targets at 1,000 routes: translated in {r['translate_ms'] / 1000:.3f} s (< 1 s: "
              f"{'met' if met['translate_1000_under_1s'] else 'NOT met'}); daemon RSS {r['daemon_rss_mb']} MB "
              f"(< 200 MB: {'met' if met['daemon_rss_1000_under_200mb'] else 'NOT met'})", file=out)
    print(f"  linear or better (x/route <= {LINEAR_TOLERANCE} from N = {ref['routes']} up): translation "
          f"{'met' if met['translate_linear'] else 'NOT met'}, all ACKed {'met' if met['all_acked_linear'] else 'NOT met'}; "
          f"all ACKed x/route <= {TARGET_ACK_RATIO}: {'met' if met['all_acked_within_ratio'] else 'MISSED'}", file=out)
    record = {"bench": "scale", "quick": quick, "sizes": sizes, "results": results,
              "target": {"translate_1000_s": TARGET_TRANSLATE_1000_S, "daemon_rss_1000_mb": TARGET_DAEMON_MB_1000,
                         "per_route_ratio_max": LINEAR_TOLERANCE, "all_acked_per_route_ratio_max": TARGET_ACK_RATIO,
                         "daemon_rss_5000_mb": TARGET_DAEMON_MB_5000},
              "met": met, "machine": m}
    print(json.dumps(record), file=out, flush=True)
    return record
