"""Scenario churn: configuration churn under load, and the daemon's memory over it."""
from __future__ import annotations

import random
import sys
import threading
import time
from collections import Counter

from .common import (
    APPMESH, Lab, Load, NS, STABLE, Sizes, WALKTHROUGH, _answering, _converged, _gateway, _rss_mb, _say, check,
    sizes)


def _route_text(i: int, target: str) -> str:
    return f"""apiVersion: {APPMESH}
kind: GatewayRoute
metadata: {{name: churn-{i:03d}, namespace: {NS}}}
spec:
  httpRoute:
    match: {{prefix: /churn-{i:03d}}}
    action: {{target: {{virtualService: {{virtualServiceRef: {{name: {target}}}}}}}}}
"""


def _split_text(w_product: int, w_review: int, with_service: bool = False) -> str:
    router = f"""apiVersion: {APPMESH}
kind: VirtualRouter
metadata: {{name: split-router, namespace: {NS}}}
spec:
  listeners: [{{portMapping: {{port: 8080, protocol: http}}}}]
  routes:
  - name: split
    httpRoute:
      match: {{prefix: /}}
      action:
        weightedTargets:
        - {{virtualNodeRef: {{name: product-service-vn}}, weight: {w_product}}}
        - {{virtualNodeRef: {{name: review-service-vn}}, weight: {w_review}}}
"""
    if not with_service:
        return router
    return router + f"""---
apiVersion: {APPMESH}
kind: VirtualService
metadata: {{name: split-service, namespace: {NS}}}
spec:
  awsName: split-service.{NS}.svc.cluster.local
  provider: {{virtualRouter: {{virtualRouterRef: {{name: split-router}}}}}}
---
apiVersion: {APPMESH}
kind: GatewayRoute
metadata: {{name: split-route, namespace: {NS}}}
spec:
  httpRoute:
    match: {{prefix: /split}}
    action: {{target: {{virtualService: {{virtualServiceRef: {{name: split-service}}}}}}}}
"""


class _Sampler:
    """RSS of one process every `interval` seconds, in a thread."""

    def __init__(self, pid: int, interval: float):
        self.pid, self.interval = pid, interval
        self.samples: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss")

    def _run(self) -> None:
        t0 = time.monotonic()
        while True:
            self.samples.append((round(time.monotonic() - t0, 2), round(_rss_mb(self.pid), 1)))
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> "_Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> bool:
        self._stop.set()
        self._thread.join(5)
        self.samples.append((self.samples[-1][0] if self.samples else 0, round(_rss_mb(self.pid), 1)))
        return False


def _gateway_routes(t) -> tuple[set, dict]:
    """From the gateway Envoy's config dump: the churn-route prefixes it serves, and the weights of
    the split router's route (cluster -> weight)."""
    dump = t.config_dump("appmesh-gateway")
    prefixes, weights = set(), {}
    for cfg in dump.get("configs", []):
        for rc in cfg.get("dynamic_route_configs", []):
            for vh in rc.get("route_config", {}).get("virtual_hosts", []):
                for r in vh.get("routes", []):
                    p = r.get("match", {}).get("prefix", "")
                    if p.startswith("/churn-"):
                        prefixes.add(p.rstrip("/"))
                    if r.get("name") != "split":
                        continue
                    action = r.get("route", {})
                    if action.get("weighted_clusters"):
                        weights = {c["name"]: c.get("weight", 0) for c in action["weighted_clusters"].get("clusters", [])}
                    elif action.get("cluster"):  # one target left (the other weighs 0): a plain cluster route
                        weights = {action["cluster"]: 100}
    return prefixes, weights


def scenario_churn(quick: bool = False, out=sys.stdout, sz: Sizes | None = None) -> dict:
    sz = sz or sizes(quick)
    t_start = time.monotonic()
    rng = random.Random(20260930)
    _say(out, f"reliability churn: {sz.churn_ops} apply/delete operations ({sz.churn_routes} gateway routes, "
              f"VirtualRouter weights) under {sz.workers} x {sz.rate:g} req/s on {', '.join(STABLE)}")
    res: dict = {"scenario": "churn", "ops": sz.churn_ops}
    with Lab("churn") as lab:
        t = lab.t
        t.apply(WALKTHROUGH)
        t.apply_text(_split_text(50, 50, with_service=True), name="split.yaml")
        _answering(t)
        host, port = _gateway(t)
        routes: dict = {}
        weights = (50, 50)
        latencies, kinds = [], Counter()
        with _Sampler(lab.daemon_pid, sz.rss_interval_s) as rss, \
                Load(host, port, workers=sz.workers, rate=sz.rate) as load:
            load.wait_clean()
            t_ops = time.monotonic()
            for k in range(sz.churn_ops + 1):
                x = rng.random()
                t0 = time.monotonic()
                if k == sz.churn_ops:  # the last operation sets weights a request can check: 100/0 or 0/100
                    weights = rng.choice([(100, 0), (0, 100)])
                    body = {"texts": [["split-router.yaml", _split_text(*weights)]]}
                    kind = "weights"
                elif x < 0.4:
                    i = rng.randrange(sz.churn_routes)
                    routes[i] = rng.choice(["product-service", "review-service"])
                    body = {"texts": [[f"churn-{i:03d}.yaml", _route_text(i, routes[i])]]}
                    kind = "apply route"
                elif x < 0.7:
                    i = rng.randrange(sz.churn_routes)
                    routes.pop(i, None)
                    body, kind = None, "delete route"
                    t.client.call("POST", "/v1/delete", {"keys": [["GatewayRoute", NS, f"churn-{i:03d}"]]})
                else:
                    weights = (w := rng.randint(0, 100), 100 - w)
                    if weights == (0, 0):
                        weights = (1, 99)
                    body = {"texts": [["split-router.yaml", _split_text(*weights)]]}
                    kind = "weights"
                if body is not None:
                    r = t.client.call("POST", "/v1/apply", body, ok=(200, 422))
                    assert not r.get("rejected") and "_status" not in r, r
                latencies.append(time.monotonic() - t0)
                kinds[kind] += 1
            t_last = time.monotonic()
            converge_s = _converged(t, 60)
            # the last applied state is what the gateway serves
            want_prefixes = {f"/churn-{i:03d}" for i in routes}

            def final():
                prefixes, got = _gateway_routes(t)
                assert prefixes == want_prefixes, (sorted(prefixes ^ want_prefixes)[:5], "config dump differs")
                nonzero = {("product" if "product-service" in c else "review"): w for c, w in got.items() if w}
                want = {k: w for k, w in zip(("product", "review"), weights) if w}
                assert nonzero == want, (nonzero, want)
            t.eventually(final, timeout=30, interval=0.1, what="the gateway's config dump showing the final state")
            served_s = time.monotonic() - t_last
            wrong = []
            for i in range(sz.churn_routes):
                r = t.curl(f"/churn-{i:03d}/x", quiet=True, timeout=5)
                if i in routes:
                    if r.status != 200 or r.json().get("service") != routes[i]:
                        wrong.append((i, r.status))
                elif r.status != 404:
                    wrong.append((i, r.status))
            expect = "product-service" if weights[0] else "review-service"
            split = Counter(t.curl("/split", quiet=True, timeout=5).json().get("service") for _ in range(20))
            time.sleep(0.3)
        lab.remember()
    totals = load.totals()
    samples = rss.samples
    start_mb, end_mb = samples[0][1], samples[-1][1]
    peak_mb = max(s[1] for s in samples)
    step = max(1, len(samples) // 20)
    lat = sorted(latencies)
    res.update(load=totals, op_kinds=dict(kinds), ops_per_s=round(len(lat) / (t_last - t_ops), 1),
               op_ms={"p50": round(lat[len(lat) // 2] * 1000, 1), "p99": round(lat[int(len(lat) * 0.99)] * 1000, 1),
                      "max": round(lat[-1] * 1000, 1)},
               converge_s=round(converge_s, 3), final_state_served_s=round(served_s, 3),
               final_routes=len(routes), final_weights=list(weights), wrong_answers=wrong,
               split_answers=dict(split),
               rss_mb={"start": start_mb, "peak": peak_mb, "end": end_mb,
                       "series": [s for s in samples[::step]]},
               leftover_processes=len(lab.leftovers))
    _say(out, f"  {len(lat)} operations ({dict(kinds)}) in {t_last - t_ops:.1f} s; apply/delete p50 "
              f"{res['op_ms']['p50']} ms, p99 {res['op_ms']['p99']} ms")
    _say(out, f"  load: {totals['requests']} requests, {totals['failed']} not 200 ({totals['outcomes']}); "
              f"p50 {totals['p50_ms']} ms, p99 {totals['p99_ms']} ms")
    _say(out, f"  after the last operation: every proxy ACKed in {converge_s:.2f} s, gateway served the final state "
              f"in {served_s:.2f} s; {len(routes)} routes, weights {weights}; wrong answers {len(wrong)}; "
              f"/split answered by {dict(split)}")
    _say(out, f"  daemon RSS: start {start_mb} MB, peak {peak_mb} MB, end {end_mb} MB")
    bound = start_mb + 50
    res["checks"] = [
        check("non-2xx on stable routes during churn", totals["failed"], "0", totals["failed"] == 0),
        check("every proxy ACKed the final version (s after the last operation)", round(converge_s, 3), "< 60 s",
              converge_s < 60),
        check("gateway config dump = last applied routes and weights (s after the last operation)",
              round(served_s, 3), "< 30 s", served_s < 30),
        check("churned routes answering as last applied", len(wrong), "0 wrong", not wrong),
        check("split route follows the last weights", dict(split), f"20 x {expect}",
              split == Counter({expect: 20})),
        check("daemon RSS end <= start + 50 MB", {"start": start_mb, "peak": peak_mb, "end": end_mb},
              f"end <= {bound:.0f} MB", end_mb <= bound if not quick else None,
              "" if not quick else "judged in the full run only (the quick run is too short for a trend)"),
        check("processes left behind after teardown", len(lab.leftovers), "0", not lab.leftovers),
    ]
    res["seconds"] = round(time.monotonic() - t_start, 1)
    return res
