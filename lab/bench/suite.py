"""`appmesh-lab bench suite`: the lesson notebooks end to end on the local target, timed.

Each round runs `appmesh-lab e2e` (lab/e2e.py, in this process) from a stopped lab: a fresh
state directory, all fifteen notebooks in order with papermill, then the teardown. It reports
each notebook's time and the round's wall time (from the call until the lab is down).

The irreducible part, measured separately in the same run: papermill starts a fresh kernel for
every notebook and shuts it down afterwards, so the suite can never be faster than one kernel
start and stop per notebook. That is measured by starting the same kernel (python3, the same
quiet IPython profile) until it answers, and shutting it down, `kernel_rounds` times. The
record shows the floor (that time × the number of notebooks) and how much of the suite is
above it (the lessons' own work: lab start, Envoys, requests, and the waits some lessons
teach, such as a 3 s timeout).

Target: the whole suite ≤ 60 s on a 2-core machine. --quick runs one round and 3 kernel
starts; the full run three rounds (the median is reported) and one kernel start per notebook.
`only` (e.g. "00,03") runs some notebooks, for tests; the target applies to the full suite only.
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
FIELDS = ("bench", "quick", "rounds", "only", "notebooks", "total_s", "total_s_rounds", "notebook_s_sum", "kernel",
          "kernel_floor_s", "above_floor_s", "all_passed", "failures", "kept", "target", "met", "machine")


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


def _round(only: str | None, folder: Path, log) -> dict:
    """One run of the suite on a fresh, stopped lab; wall time up to the teardown."""
    from .. import e2e
    home = folder / "lab"
    saved = os.environ.pop("APPMESH_LAB_HOME", None)   # this round's lab only
    try:
        t0 = time.perf_counter()
        r = e2e.run("local", {"LAB_HOME": str(home)}, only=only, output_dir=folder / "runs", log=log)
        wall = time.perf_counter() - t0
    finally:
        if saved is not None:
            os.environ["APPMESH_LAB_HOME"] = saved
    return {"wall_s": wall, "directory": str(r.directory), "teardown": r.teardown,
            "notebooks": [{"notebook": o.notebook, "seconds": o.seconds, "passed": o.passed,
                           "error": o.message} for o in r.outcomes]}


def build_record(rounds: list[dict], kernel: dict, quick: bool, only: str | None, kept: list[str]) -> dict:
    """The JSON record from the rounds' results and the kernel measurement (pure)."""
    names = [n["notebook"] for n in rounds[0]["notebooks"]]
    notebooks = []
    for i, name in enumerate(names):
        times = [r["notebooks"][i]["seconds"] for r in rounds]
        notebooks.append({"notebook": name, "seconds": round(statistics.median(times), 2),
                          "passed": all(r["notebooks"][i]["passed"] for r in rounds)})
    totals = [r["wall_s"] for r in rounds]
    total = statistics.median(totals)
    floor = kernel["start_stop_s"] * len(names)
    failures = [f"{n['notebook']}: {n['error']}" for r in rounds for n in r["notebooks"] if not n["passed"]]
    full = only is None
    return {
        "bench": "suite", "quick": quick, "rounds": len(rounds), "only": only, "notebooks": notebooks,
        "total_s": round(total, 2), "total_s_rounds": [round(t, 2) for t in totals],
        # median over rounds of each round's sum (never above the median wall time)
        "notebook_s_sum": round(statistics.median(sum(n["seconds"] for n in r["notebooks"]) for r in rounds), 2),
        "kernel": kernel, "kernel_floor_s": round(floor, 2), "above_floor_s": round(total - floor, 2),
        "all_passed": not failures, "failures": failures, "kept": kept,
        "target": {"total_s": TARGET_S},
        # the target is for the whole suite; a partial run (only=...) neither meets nor misses it
        "met": {"total_s": (total <= TARGET_S) if full else None, "all_passed": not failures},
        "machine": machine(),
    }


def format_table(record: dict, out=sys.stdout) -> None:
    """The readable part: one row per notebook, then the totals and the target."""
    rows = [["notebook", "seconds", "outcome"]]
    rows += [[n["notebook"], f"{n['seconds']:.1f}", "ok" if n["passed"] else "FAILED"] for n in record["notebooks"]]
    table(rows, out)
    k = record["kernel"]
    n = len(record["notebooks"])
    met = record["met"]["total_s"]
    verdict = "met" if met else ("missed" if met is False else "not judged (a partial run)")
    spread = ", ".join(f"{t:.1f}" for t in record["total_s_rounds"])
    lines = [
        ("suite wall time, stopped lab to teardown", f"{record['total_s']:.1f} s",
         f"target <= {record['target']['total_s']:.0f} s: {verdict}"),
        ("  of which in the notebooks", f"{record['notebook_s_sum']:.1f} s", f"rounds: {spread} s"),
        (f"kernel start + stop (median of {k['rounds']})", f"{k['start_stop_s']:.2f} s",
         f"start {k['start_s']:.2f} s, stop {k['stop_s']:.2f} s"),
        (f"irreducible: {n} kernel(s)", f"{record['kernel_floor_s']:.1f} s", "one fresh kernel per notebook"),
        ("above the irreducible part", f"{record['above_floor_s']:.1f} s", "the lessons' own work and waits"),
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
        only: str | None = None) -> dict:
    from ..e2e import E2EError, ensure_kernel, notebooks
    try:
        chosen = notebooks(only)
        ensure_kernel(log=lambda line: print(f"  {line}", file=out, flush=True))
    except E2EError as exc:   # e.g. --only 42: a usage error, said in one line
        print(f"appmesh-lab bench suite: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    rounds = rounds or (1 if quick else 3)
    kernel_rounds = kernel_rounds or (3 if quick else len(chosen))
    print(f"bench suite: {len(chosen)} notebook(s) on the local target from a stopped lab, {rounds} round(s) "
          f"({os.cpu_count()} cores)", file=out, flush=True)
    results, kept = [], []
    for i in range(rounds):
        folder = Path(tempfile.mkdtemp(prefix="appmesh-bench-suite-"))
        r = _round(only, folder, lambda line: print(f"  [{i + 1}/{rounds}] {line}", file=out, flush=True))
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
    record = build_record(results, kernel, quick, only, kept)
    format_table(record, out)
    print(json.dumps(record), file=out, flush=True)
    return record
