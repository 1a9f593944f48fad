"""The benchmarks run in quick mode through the CLI and end with a complete JSON record.
No time is asserted: these are measurements, and this machine may be busy."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.bench import converge, translate

from .conftest import envoy_or_skip

ROOT = Path(__file__).resolve().parents[2]


def bench(*args, timeout=300) -> dict:
    p = subprocess.run([sys.executable, "-m", "lab.cli", "bench", *args], cwd=ROOT, capture_output=True, text=True,
                       timeout=timeout, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert p.returncode == 0, p.stderr[-3000:]
    lines = p.stdout.strip().splitlines()
    assert len(lines) > 2, p.stdout  # a table before the record
    return json.loads(lines[-1])


def _machine_ok(rec):
    assert set(rec["machine"]) >= {"cores", "python", "envoy"}
    assert rec["machine"]["cores"] >= 1 and rec["machine"]["python"]


def test_translate_quick_prints_every_field():
    rec = bench("translate", "--quick")
    assert set(rec) >= set(translate.FIELDS)
    assert rec["bench"] == "translate" and rec["quick"] is True
    assert [int(k) for k in rec["results"]] == rec["sizes"] == list(translate.QUICK_SIZES)
    for size, r in rec["results"].items():
        assert set(r) >= set(translate.SIZE_FIELDS), size
        assert r["routes"] == r["virtual_services"] == r["virtual_nodes"] == int(size)
        assert r["proxies"] == int(size) + 1
        for step in translate.STEPS:
            assert set(r[f"{step}_ms"]) == {"median", "p90"}
            assert r[f"{step}_ms"]["median"] > 0
    assert rec["results"]["10"]["translate_per_route_ratio"] == 1.0
    _machine_ok(rec)


def _processes_with(marker: str) -> list:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found


@pytest.mark.envoy
def test_converge_quick_prints_every_field():
    """Quick mode (20 changes), on the 10-route lab only to keep this suite short; the 100-route
    size runs the same code with more routes (`appmesh-lab bench converge --quick`)."""
    envoy_or_skip()
    rec = bench("converge", "--quick", "--sizes", "10")
    assert set(rec) >= set(converge.FIELDS)
    assert rec["bench"] == "converge" and rec["quick"] is True and rec["changes"] == 20
    assert list(rec["results"]) == ["10"]
    r = rec["results"]["10"]
    assert set(r) >= set(converge.SIZE_FIELDS)
    for key in converge.SIZE_FIELDS:
        if key.endswith("_ms"):
            assert set(r[key]) >= set(converge.STAT_FIELDS), key
            assert r[key]["n"] == 20, key
    b = rec["daemon_apply_breakdown_ms"]
    assert b["routes"] == 10 and b["total Daemon.apply"] > 0
    assert set(rec["met"]) == {"routed_p99_10"}
    _machine_ok(rec)
    assert not _processes_with("appmesh-bench-converge-"), "the bench left processes behind"
