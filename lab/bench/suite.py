"""`appmesh-lab bench suite [--profile]`: the lesson notebooks end to end on the local target, timed.

Each round runs `appmesh-lab e2e` (lab/e2e.py, in this process) from stopped labs: fresh state
directories, every notebook with papermill, on as many labs at once as e2e uses by default (one
more than the cores, at most four; --jobs N to choose), then the teardown. It reports each notebook's
time and lab, the round's wall time (from the call until every lab is down), the machine's cores
and load average (before and after: the suite shares the machine), and whether the target is met.

--profile adds, per notebook: how long it waited for its kernel (kernels start while the
notebook before runs, so mostly nothing), its set-up cell (nb.setup: the lab brought to the
lesson's starting state), its slowest cell, and the CPU its lab's processes used while it ran
(the daemon itself; its Envoys; the apps), read from /proc; then the slowest cells of the whole
suite. The details are those of the first round.

Measured apart, after the rounds: one kernel's start (until it answers) and stop, which a run
that started each kernel when its notebook begins would pay once per notebook.

Target: the whole suite <= 60 s on a 2-core machine. --quick runs one round and 3 kernel
starts; the full run three rounds (the median is reported). `only` (e.g. "00,03") runs some
notebooks, for tests; the target applies to the full suite only.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from .common import machine, table

TARGET_S = 60.0
FIELDS = ("bench", "quick", "rounds", "only", "jobs", "profile", "notebooks", "total_s", "total_s_rounds",
          "notebook_s_sum", "kernel_wait_s", "kernel", "kernel_serial_s", "load", "slowest_cells", "all_passed",
          "failures", "kept", "target", "met", "machine")


def _quiet_profile(folder: Path) -> Path:
    d = folder / ".ipython"
    (d / "profile_default").mkdir(parents=True, exist_ok=True)
    (d / "profile_default" / "ipython_kernel_config.json").write_text(
        json.dumps({"IPKernelApp": {"log_level": "CRITICAL"}}))
    return d


def kernel_start_stop(rounds: int, folder: Path) -> dict:
    """Start the python3 kernel until it answers, then shut it down, `rounds` times.
    Returns median start, stop and start+stop seconds."""
    from jupyter_client.manager import KernelManager
    from ..e2e import KERNEL
    saved = os.environ.get("IPYTHONDIR")
    os.environ["IPYTHONDIR"] = str(_quiet_profile(folder))
    starts, stops = [], []
    try:
        for _ in range(rounds):
            km = KernelManager(kernel_name=KERNEL)
            t0 = time.perf_counter()
            km.start_kernel(cwd=str(folder))
            kc = km.client()
            kc.start_channels()
            try:
                kc.wait_for_ready(timeout=60)
                starts.append(time.perf_counter() - t0)
            finally:
                kc.stop_channels()
                t1 = time.perf_counter()
                km.shutdown_kernel()
                stops.append(time.perf_counter() - t1)
    finally:
        if saved is None:
            os.environ.pop("IPYTHONDIR", None)
        else:
            os.environ["IPYTHONDIR"] = saved
    start, stop = statistics.median(starts), statistics.median(stops)
    return {"rounds": rounds, "start_s": round(start, 3), "stop_s": round(stop, 3),
            "start_stop_s": round(start + stop, 3)}


# ---- what a lab's processes used (--profile) --------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> tuple[int, float, str] | None:
    """(parent pid, CPU seconds used, command name) of a live process, from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    comm = text[text.index("(") + 1:text.rindex(")")]
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK, comm


def lab_cpu(home: str | None) -> dict:
    """CPU seconds used so far by the lab's daemon, its Envoys and its other processes (the
    apps), alive now; {} when the lab is not running. e2e calls it before and after each
    notebook and keeps the differences. A process that ended in between is not counted."""
    if not home:
        return {}
    try:
        pid = int(json.loads((Path(home) / "daemon.json").read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    me = _stat(pid)
    if me is None:
        return {}
    cpu = {"daemon_cpu_s": me[1], "envoy_cpu_s": 0.0, "apps_cpu_s": 0.0}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st and st[0] == pid:
                cpu["envoy_cpu_s" if st[2] == "envoy" else "apps_cpu_s"] += st[1]
    return cpu


# ---- rounds and the record ----------------------------------------------------------------------

def _load() -> list | None:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def _round(only: str | None, folder: Path, log, jobs: int | None, profile: bool) -> dict:
    """One run of the suite on fresh, stopped labs; wall time up to the teardown."""
    from .. import e2e
    saved = os.environ.get("APPMESH_LAB_HOME")
    os.environ["APPMESH_LAB_HOME"] = str(folder / "lab")   # the first lab; e2e puts the others in the run
    load_before = _load()
    try:
        t0 = time.perf_counter()
        r = e2e.run("local", {}, only=only, output_dir=folder / "runs", log=log, jobs=jobs,
                    probe=lab_cpu if profile else None)
        wall = time.perf_counter() - t0
    finally:
        if saved is None:
            os.environ.pop("APPMESH_LAB_HOME", None)
        else:
            os.environ["APPMESH_LAB_HOME"] = saved
    return {"wall_s": wall, "directory": str(r.directory), "teardown": r.teardown, "labs": len(r.labs),
            "load": {"before": load_before, "after": _load()},
            "notebooks": [{"notebook": o.notebook, "seconds": o.seconds, "passed": o.passed, "error": o.message,
                           "lab": o.lab, "kernel_wait_s": round(o.kernel_wait_s, 3), "setup_s": o.setup_s,
                           "cells": o.cells, "cpu": o.probe} for o in r.outcomes]}


def build_record(rounds: list[dict], kernel: dict, quick: bool, only: str | None, kept: list[str],
                 profile: bool = False) -> dict:
    """The JSON record from the rounds' results and the kernel measurement (pure)."""
    names = [n["notebook"] for n in rounds[0]["notebooks"]]
    notebooks = []
    for i, name in enumerate(names):
        first = rounds[0]["notebooks"][i]
        times = [r["notebooks"][i]["seconds"] for r in rounds]
        cells = first.get("cells") or []
        slowest = max(cells, key=lambda c: c[1]) if cells else None
        notebooks.append({"notebook": name, "seconds": round(statistics.median(times), 2),
                          "passed": all(r["notebooks"][i]["passed"] for r in rounds), "lab": first.get("lab", 1),
                          "kernel_wait_s": first.get("kernel_wait_s"), "setup_s": first.get("setup_s"),
                          "slowest_cell": slowest, "cpu": first.get("cpu") or {}})
    totals = [r["wall_s"] for r in rounds]
    total = statistics.median(totals)
    failures = [f"{n['notebook']}: {n['error']}" for r in rounds for n in r["notebooks"] if not n["passed"]]
    every_cell = [[n["notebook"], *c] for n in rounds[0]["notebooks"] for c in n.get("cells") or []]
    full = only is None
    return {
        "bench": "suite", "quick": quick, "rounds": len(rounds), "only": only,
        "jobs": rounds[0].get("labs", 1), "profile": profile, "notebooks": notebooks,
        "total_s": round(total, 2), "total_s_rounds": [round(t, 2) for t in totals],
        # median over rounds of each round's sum: above the wall time when labs run side by side
        "notebook_s_sum": round(statistics.median(sum(n["seconds"] for n in r["notebooks"]) for r in rounds), 2),
        "kernel_wait_s": round(sum(n["kernel_wait_s"] or 0 for n in notebooks), 2),
        "kernel": kernel, "kernel_serial_s": round(kernel["start_stop_s"] * len(names), 2),
        "load": [r.get("load") for r in rounds],
        "slowest_cells": sorted(every_cell, key=lambda c: -c[2])[:8],
        "all_passed": not failures, "failures": failures, "kept": kept,
        "target": {"total_s": TARGET_S},
        # the target is for the whole suite; a partial run (only=...) neither meets nor misses it
        "met": {"total_s": (total <= TARGET_S) if full else None, "all_passed": not failures},
        "machine": machine(),
    }


def _s(x) -> str:
    return "-" if x is None else f"{x:.1f}"


def format_table(record: dict, out=sys.stdout) -> None:
    """The readable part: one row per notebook, then the totals, the machine and the target."""
    profile = record.get("profile")
    head = ["notebook", "lab", "seconds", "outcome"]
    if profile:
        head += ["kernel wait", "setup", "slowest cell", "cpu daemon/envoy/apps"]
    rows = [head]
    for n in record["notebooks"]:
        row = [n["notebook"], str(n.get("lab", 1)), f"{n['seconds']:.1f}", "ok" if n["passed"] else "FAILED"]
        if profile:
            c, cpu = n.get("slowest_cell"), n.get("cpu") or {}
            row += [f"{n['kernel_wait_s']:.2f}" if n.get("kernel_wait_s") is not None else "-", _s(n.get("setup_s")),
                    f"{c[1]:.1f} (cell {c[0]})" if c else "-",
                    "/".join(_s(cpu.get(k)) for k in ("daemon_cpu_s", "envoy_cpu_s", "apps_cpu_s")) if cpu else "-"]
        rows.append(row)
    table(rows, out)
    if profile and record.get("slowest_cells"):
        print("\n  slowest cells (first round):", file=out)
        for name, index, seconds, line in record["slowest_cells"]:
            print(f"  {seconds:6.1f} s  {name} cell {index}: {line[:70]}", file=out)
    k = record["kernel"]
    met = record["met"]["total_s"]
    verdict = "met" if met else ("missed" if met is False else "not judged (a partial run)")
    spread = ", ".join(f"{t:.1f}" for t in record["total_s_rounds"])
    m = record["machine"]
    load = record["load"][0] or {}
    loads = ", ".join(f"{w}: {'/'.join(str(x) for x in load.get(w) or [])}" for w in ("before", "after"))
    lines = [
        ("suite wall time, stopped labs to teardown", f"{record['total_s']:.1f} s",
         f"target <= {record['target']['total_s']:.0f} s: {verdict}"),
        (f"  the notebooks' own times, summed ({record['jobs']} lab(s) at once)", f"{record['notebook_s_sum']:.1f} s",
         f"rounds: {spread} s"),
        ("  of which waiting for kernels", f"{record['kernel_wait_s']:.1f} s",
         "each started while the notebook before it ran"),
        (f"kernel start + stop (median of {k['rounds']}, measured apart)", f"{k['start_stop_s']:.2f} s",
         f"start {k['start_s']:.2f} s, stop {k['stop_s']:.2f} s; x {len(record['notebooks'])} notebooks "
         f"= {record['kernel_serial_s']:.1f} s if each waited for its own"),
        ("machine", f"{m.get('cores')} cores", f"load average (1/5/15 min) {loads}"),
    ]
    w = max(len(a) for a, _, _ in lines)
    print("", file=out)
    for a, b, c in lines:
        print(f"  {a.ljust(w)}  {b:>9}  {c}", file=out)
    if record["failures"]:
        print("  FAILED: " + "; ".join(record["failures"][:5]), file=out)
        for d in record["kept"]:
            print(f"  run kept for inspection: {d}", file=out)


def run(quick: bool = False, out=sys.stdout, rounds: int | None = None, kernel_rounds: int | None = None,
        only: str | None = None, profile: bool = False, jobs: int | None = None) -> dict:
    from ..e2e import E2EError, default_jobs, ensure_kernel, notebooks
    try:
        chosen = notebooks(only)
        ensure_kernel(log=lambda line: print(f"  {line}", file=out, flush=True))
        if jobs is not None and jobs < 1:
            raise E2EError(f"--jobs {jobs}: give 1 or more")
    except E2EError as exc:   # e.g. --only 42: a usage error, said in one line
        print(f"appmesh-lab bench suite: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    rounds = rounds or (1 if quick else 3)
    kernel_rounds = kernel_rounds or 3
    labs = min(jobs or default_jobs(), len(chosen))
    print(f"bench suite: {len(chosen)} notebook(s) on the local target from stopped labs, {labs} at once, "
          f"{rounds} round(s) ({os.cpu_count()} cores, load average {'/'.join(map(str, _load() or []))})",
          file=out, flush=True)
    results, kept = [], []
    for i in range(rounds):
        folder = Path(tempfile.mkdtemp(prefix="appmesh-bench-suite-"))
        r = _round(only, folder, lambda line: print(f"  [{i + 1}/{rounds}] {line}", file=out, flush=True), labs,
                   profile)
        results.append(r)
        if all(n["passed"] for n in r["notebooks"]):
            shutil.rmtree(folder, ignore_errors=True)
        else:
            kept.append(r["directory"])   # the executed notebooks and report.html say what broke
    folder = Path(tempfile.mkdtemp(prefix="appmesh-bench-kernel-"))
    try:
        kernel = kernel_start_stop(kernel_rounds, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    record = build_record(results, kernel, quick, only, kept, profile)
    format_table(record, out)
    print(json.dumps(record), file=out, flush=True)
    return record
