"""`appmesh-lab bench translate`: how translation time grows with the number of gateway routes.

For N = 10, 100, 1,000 gateway routes, with N virtual services and N virtual nodes (one
gateway, so N + 1 proxies; manifests generated in memory by lab/bench/manifests.scale), it
times, over repeated runs, starting from the validated model (a World):
  ir        translate.build: World + Placement -> per-proxy IR
  envoy     translate.to_envoy for every proxy: IR -> Envoy proto3-JSON dicts
  translate ir + envoy (the translator's whole job)
  snapshot  Snapshot.from_dicts for every proxy (parsing into protobuf, what xDS serves)
  total     translate + snapshot
  gw snap   Snapshot.from_dicts of the gateway alone (what one gateway route change rebuilds
            in the daemon, which only re-snapshots proxies whose output changed)
  no gc     translate again with Python's cyclic garbage collector off (the difference to
            "translate" is the collector's share: it rescans the growing heap)
  change    one gateway route more, indexed and translated incrementally as the daemon does: the
            last World with the new route put in (World.with_changes), then only the proxies the
            change reaches (lab/translate/incremental.py: found by the reverse index of what each
            proxy read), here the gateway, and of it only the routes and virtual services whose
            inputs changed
  change snap  the gateway's snapshot after that change, reusing its previous one's parsed
            resources (Snapshot.from_dicts with its cache, as the daemon does: only the new route
            is parsed, and the route configuration's bytes are assembled from its routes' kept ones)
and, once per size, the model step before it (YAML text -> validated resources).
Medians and p90 in milliseconds; "x/route" is the per-route cost relative to N = 10.
Targets: 1,000 routes translated (ir + envoy) in < 1 s; a one-route change at 1,000 routes
re-translated in < 10 ms.
"""
from __future__ import annotations

import gc
import json
import statistics
import sys
import time

from . import manifests
from .common import machine, percentile, table

SIZES = (10, 100, 1000)
QUICK_SIZES = (10, 100)
TARGET_1000_S = 1.0
TARGET_CHANGE_MS = 10.0
STEPS = ("ir", "envoy", "translate", "snapshot", "total", "gateway_snapshot", "translate_gc_off", "change",
         "change_snapshot")
# every key of one size's record (tests/integration/test_bench_quick.py checks them)
SIZE_FIELDS = ("routes", "virtual_services", "virtual_nodes", "proxies", "repeats", "validate_ms",
               "gateway_resources", *(f"{s}_ms" for s in STEPS), "translate_per_route_ratio",
               "total_per_route_ratio")
FIELDS = ("bench", "quick", "sizes", "results", "target", "met", "machine")


def _repeats(n: int, quick: bool) -> int:
    if quick:
        return 5 if n <= 10 else 3
    return 40 if n <= 10 else 15 if n <= 100 else 5


def world_of(n: int):
    from ..model import World, validate_texts
    text = manifests.text(manifests.scale(n))
    t0 = time.perf_counter()
    result = validate_texts([(f"<bench {n} routes>", text)])
    validate_s = time.perf_counter() - t0
    if not result.ok:
        raise RuntimeError("the generated manifests do not validate:\n" + "\n".join(map(str, result.errors[:5])))
    return World(result.resources), validate_s


def placement_of(world):
    """Like the local lab's: every virtual node has one endpoint on 127.0.0.1."""
    from ..translate import Placement, naming
    pl = Placement(bind_address="127.0.0.1")
    for i, vn in enumerate(sorted(world.by_kind["VirtualNode"], key=lambda r: r.key)):
        mesh = world.mesh_of(vn)
        nid = naming.node_id(mesh.aws_name(), "virtualNode", vn.aws_name())
        pl.endpoints[nid] = {8080: [["127.0.0.1", 20000 + i]]}
    return pl


def _new_route(n: int, i: int):
    from ..model import validate_texts
    doc = manifests.gateway_route(f"change-{i}", "bench", {"prefix": f"/change/{i}/"}, "vs0")
    (r,) = validate_texts([(f"<change {n} {i}>", manifests.text(doc))]).resources
    return r


def measure(n: int, repeats: int) -> dict:
    from ..model import World
    from ..translate import build, to_envoy
    from ..translate.incremental import Incremental
    from ..xds.snapshot import Snapshot
    world, validate_s = world_of(n)
    placement = placement_of(world)
    samples: dict = {s: [] for s in STEPS}
    gw_resources = 0
    # the daemon's World: the resources in the store's key order, each change put in with_changes
    current = World(sorted(world.by_key.values(), key=lambda r: r.key))
    inc, cache = Incremental(), {}
    first = inc.update(current, placement)
    gw_nid = next(nid for nid in first if "/virtualGateway/" in nid)
    Snapshot.from_dicts("bench-change", **first[gw_nid]["envoy"], cache=cache)
    del first
    for r in range(repeats):
        gc.collect()  # each repeat starts from the same heap; the collector stays on, as in the daemon
        t0 = time.perf_counter()
        irs = build(world, placement)
        t1 = time.perf_counter()
        out = {nid: to_envoy(ir) for nid, ir in irs.items()}
        t2 = time.perf_counter()
        snaps = {nid: Snapshot.from_dicts(f"bench-{r}", **e) for nid, e in out.items()}
        t3 = time.perf_counter()
        gw = next(nid for nid in out if "/virtualGateway/" in nid)
        Snapshot.from_dicts(f"bench-{r}-gw", **out[gw])
        t4 = time.perf_counter()
        del snaps, out, irs
        gc.collect()
        gc.disable()  # the same translation without the cyclic collector: its share of the time
        try:
            t5 = time.perf_counter()
            irs = build(world, placement)
            out = {nid: to_envoy(ir) for nid, ir in irs.items()}
            t6 = time.perf_counter()
        finally:
            gc.enable()
        samples["translate_gc_off"].append(t6 - t5)
        del out, irs
        route = _new_route(n, r)  # one route more than the last call saw
        gc.collect()
        t7 = time.perf_counter()
        current = current.with_changes({route.key: route})
        changed = inc.update(current, placement)
        t8 = time.perf_counter()
        Snapshot.from_dicts(f"bench-change-{r}", **changed[gw_nid]["envoy"], cache=cache)
        t9 = time.perf_counter()
        if inc.translated != [next(r.key for r in world.by_kind["VirtualGateway"])]:
            raise RuntimeError(f"a one-route change translated {inc.translated}, not the gateway alone")
        samples["change"].append(t8 - t7)
        samples["change_snapshot"].append(t9 - t8)
        samples["ir"].append(t1 - t0)
        samples["envoy"].append(t2 - t1)
        samples["translate"].append(t2 - t0)
        samples["snapshot"].append(t3 - t2)
        samples["total"].append(t3 - t0)
        samples["gateway_snapshot"].append(t4 - t3)
        gw_resources = sum(len(v) for v in changed[gw_nid]["envoy"].values())
    rec = {"routes": n, "virtual_services": len(world.by_kind["VirtualService"]),
           "virtual_nodes": len(world.by_kind["VirtualNode"]), "proxies": len(changed), "repeats": repeats,
           "validate_ms": round(validate_s * 1000, 2), "gateway_resources": gw_resources}
    for s in STEPS:
        xs = [x * 1000 for x in samples[s]]
        rec[f"{s}_ms"] = {"median": round(statistics.median(xs), 3), "p90": round(percentile(xs, 90), 3)}
    return rec


def run(quick: bool = False, sizes=None, out=sys.stdout) -> dict:
    sizes = list(sizes or (QUICK_SIZES if quick else SIZES))
    results = {}
    for n in sizes:
        results[str(n)] = measure(n, _repeats(n, quick))
    base = results[str(min(sizes))]
    for rec in results.values():
        for step in ("translate", "total"):
            per_route = rec[f"{step}_ms"]["median"] / rec["routes"]
            base_per_route = base[f"{step}_ms"]["median"] / base["routes"]
            rec[f"{step}_per_route_ratio"] = round(per_route / base_per_route, 3) if base_per_route else None
    m = machine()
    print(f"bench translate: N gateway routes, N virtual services, N virtual nodes (N + 1 proxies); "
          f"{m['cores']} cores, python {m['python']}", file=out)
    print("  times in ms, median / p90 over the repeats; x/route = per-route cost relative to "
          f"N = {base['routes']}", file=out)
    rows = [["N", "proxies", "reps", "model (once)", "ir", "envoy", "translate", "x/route", "no gc", "snapshot",
             "total", "x/route", "gw snap", "change", "change snap"]]
    for rec in results.values():
        def mp(step):
            d = rec[f"{step}_ms"]
            return f"{d['median']:.1f} / {d['p90']:.1f}"
        rows.append([rec["routes"], rec["proxies"], rec["repeats"], f"{rec['validate_ms']:.0f}", mp("ir"), mp("envoy"),
                     mp("translate"), f"{rec['translate_per_route_ratio']:.2f}", mp("translate_gc_off"), mp("snapshot"),
                     mp("total"),
                     f"{rec['total_per_route_ratio']:.2f}", mp("gateway_snapshot"), mp("change"), mp("change_snapshot")])
    table(rows, out)
    big = results.get("1000")
    met = change_met = None
    if big:
        s = big["translate_ms"]["median"] / 1000
        met = s < TARGET_1000_S
        print(f"  target: 1,000 routes translated (ir + envoy) < {TARGET_1000_S:.0f} s: {s:.3f} s, "
              f"{'met' if met else 'NOT met'}; with snapshots of all {big['proxies']} proxies "
              f"{big['total_ms']['median'] / 1000:.3f} s, gateway snapshot alone "
              f"{big['gateway_snapshot_ms']['median'] / 1000:.3f} s", file=out)
        change = big["change_ms"]["median"]
        change_met = change < TARGET_CHANGE_MS
        print(f"  target: a one-route change at 1,000 routes re-translated < {TARGET_CHANGE_MS:.0f} ms: "
              f"{change:.1f} ms, {'met' if change_met else 'MISSED'} (its snapshot {big['change_snapshot_ms']['median']:.1f} ms "
              "more)", file=out)
    record = {"bench": "translate", "quick": quick, "sizes": sizes, "results": results,
              "target": {"translate_1000_routes_s": TARGET_1000_S, "one_route_change_1000_routes_ms": TARGET_CHANGE_MS},
              "met": {"translate_1000_routes": met, "one_route_change_1000_routes": change_met},
              "machine": m}
    print(json.dumps(record), file=out, flush=True)
    return record
