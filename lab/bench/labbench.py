"""`appmesh-lab bench lab`: how fast the local lab comes up and how much memory it takes.

Measures, each over several rounds on a fresh state directory:
  up        `up` until the daemon answers;
  apply     walkthrough applied until every gateway route answers 200 through the gateway;
  rss       resident memory of the daemon, every Envoy and every app process, summed;
and, as the baseline in the same run, the time to start one bare Envoy until it is LIVE and
one sample app until it answers (the irreducible parts of a pod).
Targets: up < 3 s, apply to answering < 5 s, total RSS < 400 MB.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import machine

ROUTES = ("/products", "/reviews")


def _rss_kb(pid: int) -> int:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def _round(home: Path) -> dict:
    from ..targets.local import LocalTarget
    t = LocalTarget(home=str(home), echo=False)
    t0 = time.perf_counter()
    t.up()
    up_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    t.apply("manifests/walkthrough/", wait=False)

    def answering():
        for path in ROUTES:
            assert t.curl(path, quiet=True, timeout=2).status == 200
    t.eventually(answering, timeout=30, interval=0.02, what="every walkthrough route answering")
    apply_s = time.perf_counter() - t1
    st = t.status()
    pids = [st["daemon"]["pid"]] + [c["pid"] for p in st["pods"] for c in p["containers"] if c.get("pid")]
    envoy_pids = [c["pid"] for p in st["pods"] for c in p["containers"] if c["name"] == "envoy" and c.get("pid")]
    rss = {"daemon_mb": _rss_kb(pids[0]) / 1024,
           "envoys_mb": sum(_rss_kb(p) for p in envoy_pids) / 1024,
           "apps_mb": sum(_rss_kb(p) for p in pids[1:] if p not in envoy_pids) / 1024}
    rss["total_mb"] = sum(rss.values())
    t.down()
    return {"up_s": up_s, "apply_to_answering_s": apply_s, **rss, "processes": len(pids)}


def _baseline(home: Path) -> dict:
    """One bare Envoy to LIVE, one sample app to its first answer."""
    from ..runtime.envoy import EnvoyProcess, free_port
    from ..xds.bootstrap import make_bootstrap
    t0 = time.perf_counter()
    sockets = Path(tempfile.mkdtemp(prefix="lab-bare-"))  # short and 0700, as the lab's socket folder
    with EnvoyProcess(make_bootstrap("bench", xds_socket=str(sockets / "xds.sock"),
                                     admin_socket=str(sockets / "admin.sock"), initial_fetch_timeout_s=0.1),
                      home / "envoy", name="bare") as e:
        e.wait_ready(15)
        envoy_s = time.perf_counter() - t0
        envoy_mb = _rss_kb(e.pid) / 1024
    shutil.rmtree(sockets, ignore_errors=True)
    port = free_port()
    env = dict(os.environ, PORT=str(port), HOST="127.0.0.1")
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "lab.apps.sample"], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        from ..targets.base import request
        deadline = time.time() + 10
        while True:
            try:
                request("127.0.0.1", port, "GET", "/ping", None, None, 1)
                break
            except Exception:  # not listening yet: poll until the deadline
                if time.time() > deadline:
                    raise
                time.sleep(0.01)
        app_s = time.perf_counter() - t0
        app_mb = _rss_kb(p.pid) / 1024
    finally:
        p.terminate()
        p.wait(5)
    return {"envoy_start_s": envoy_s, "envoy_mb": envoy_mb, "app_start_s": app_s, "app_mb": app_mb}


def run(quick: bool = False, rounds: int | None = None, out=sys.stdout) -> dict:
    rounds = rounds or (2 if quick else 5)
    results = []
    base = None
    for i in range(rounds):
        home = Path(tempfile.mkdtemp(prefix="appmesh-bench-lab-"))
        try:
            if base is None:
                base = _baseline(home)
            results.append(_round(home / "lab"))
        finally:
            shutil.rmtree(home, ignore_errors=True)

    def med(k):
        return statistics.median(r[k] for r in results)
    summary = {k: round(med(k), 4) for k in results[0]}
    print(f"bench lab: {rounds} rounds on a fresh state directory each ({os.cpu_count()} cores)", file=out)
    rows = [("up -> daemon answers", f"{summary['up_s']:.2f} s", "< 3 s"),
            ("walkthrough -> every route answers", f"{summary['apply_to_answering_s']:.2f} s", "< 5 s"),
            ("RSS daemon", f"{summary['daemon_mb']:.0f} MB", ""),
            ("RSS Envoys (3)", f"{summary['envoys_mb']:.0f} MB", ""),
            ("RSS apps (2)", f"{summary['apps_mb']:.0f} MB", ""),
            ("RSS total", f"{summary['total_mb']:.0f} MB", "< 400 MB"),
            ("baseline: one bare Envoy to LIVE", f"{base['envoy_start_s']:.2f} s, {base['envoy_mb']:.0f} MB", ""),
            ("baseline: one sample app to answering", f"{base['app_start_s']:.2f} s, {base['app_mb']:.0f} MB", "")]
    w = max(len(r[0]) for r in rows)
    for name, value, target in rows:
        print(f"  {name.ljust(w)}  {value:>16}  {target}", file=out)
    ratio = summary["apply_to_answering_s"] / base["envoy_start_s"] if base["envoy_start_s"] else None
    print(f"  walkthrough time / one Envoy start = {ratio:.1f}x" if ratio else "", file=out)
    record = {"bench": "lab", "quick": quick, "rounds": rounds, "median": summary, "baseline": {k: round(v, 4) for k, v in base.items()},
              "targets": {"up_s": 3, "apply_to_answering_s": 5, "total_mb": 400},
              "met": {"up_s": summary["up_s"] < 3, "apply_to_answering_s": summary["apply_to_answering_s"] < 5,
                      "total_mb": summary["total_mb"] < 400},
              "machine": machine()}
    print(json.dumps(record), file=out)
    return record
