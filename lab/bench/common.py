"""What the benchmarks share: percentiles, the machine record, a plain table."""
from __future__ import annotations

import contextlib
import functools
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def percentile(values, p: float) -> float:
    """The p-th percentile (0-100), nearest-rank on the sorted values (no interpolation)."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    k = max(0, min(len(xs) - 1, math.ceil(p / 100 * len(xs)) - 1))
    return xs[k]


def summary_ms(seconds, digits: int = 3) -> dict:
    """p50/p90/p99/max (and min, mean, n) of durations in seconds, as milliseconds."""
    xs = [s * 1000 for s in seconds]
    if not xs:
        return {"n": 0}
    return {"n": len(xs), "min": round(min(xs), digits), "p50": round(percentile(xs, 50), digits),
            "p90": round(percentile(xs, 90), digits), "p99": round(percentile(xs, 99), digits),
            "max": round(max(xs), digits), "mean": round(sum(xs) / len(xs), digits)}


@functools.lru_cache(maxsize=1)
def envoy_version() -> str | None:
    try:
        from ..runtime.envoy import find_envoy
        out = subprocess.run([str(find_envoy()), "--version"], capture_output=True, text=True, timeout=20).stdout
    except Exception:  # no Envoy: the record says so instead of failing
        return None
    # "<path>  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL"
    found = re.search(r"version: [0-9a-f]+/([^/\s]+)/", out)
    return found.group(1) if found else (out.strip() or None)


def machine() -> dict:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"cores": os.cpu_count(), "python": platform.python_version(), "envoy": envoy_version(),
            "platform": platform.platform(terse=True), "loadavg_1m": round(load, 2) if load is not None else None}


def table(rows: list, out=sys.stdout, indent: str = "  ") -> None:
    """rows[0] is the header; numbers are right-aligned."""
    if not rows:
        return
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for j, r in enumerate(rows):
        cells = []
        for i, c in enumerate(r):
            s = str(c)
            cells.append(s.rjust(widths[i]) if i and j else s.ljust(widths[i]))
        print(indent + "  ".join(cells).rstrip(), file=out)
        if j == 0:
            print(indent + "  ".join("-" * w for w in widths), file=out)


def memory_mb() -> float | None:
    """The machine's total memory in MB (from /proc/meminfo)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024)
    except OSError:
        return None
    return None


def rss_mb(pid: int | None) -> float | None:
    """Resident memory of one process in MB (None when it is gone)."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


# ---- where results go: runs/bench/<timestamp>/<kind>.json and PNG plots -------------

def repo_root():
    from pathlib import Path
    return Path(__file__).resolve().parents[2]


def results_dir(directory=None):
    """Where a run's results go: `directory` when given; else $APPMESH_LAB_BENCH_DIR when set;
    else a new runs/bench/<UTC timestamp>/ in the kit's checkout. Created if missing."""
    import time
    from pathlib import Path
    if directory is None and os.environ.get("APPMESH_LAB_BENCH_DIR"):
        directory = os.environ["APPMESH_LAB_BENCH_DIR"]
    if directory is not None:
        d = Path(directory)
    else:
        root = repo_root() / "runs" / "bench"
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        d, n = root / stamp, 1
        while d.exists():
            n += 1
            d = root / f"{stamp}-{n}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def save(kind: str, record: dict, directory) -> list:
    """Write <directory>/<kind>.json and the kind's plots (PNG); returns the paths written."""
    import json
    from pathlib import Path
    from . import plots
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{kind}.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    return [path, *plots.plot(kind, record, directory)]


@contextlib.contextmanager
def scratch_lab(prefix: str, namespace: str):
    """A local lab on a fresh temporary home, running: yields (target, scratch folder); stopped and
    removed afterwards, whatever happened."""
    from ..targets.local import LocalTarget
    scratch = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        target = LocalTarget(home=str(scratch / "lab"), echo=False, namespace=namespace)
        try:
            target.up()   # (inside: a run stopped while its lab was coming up stops that lab too)
            yield target, scratch
        finally:
            target.down()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
