"""Runs that the suite starts once, in the background, for tests to read later: the whole course
(tests/notebooks/conftest.py) and the version matrix (tests/matrix/conftest.py).

Each run is a shell script started in a session of its own; it writes its logs and, as each
phase ends, `<phase>.rc` (the phase's exit code) into its folder. Tests read only those files, so
they can read a run from any process: under pytest-xdist (`-n`) every worker collects every test,
yet a run must start once, and its readers may land on any worker.

Who does what:
  * the process that collects (each worker, or pytest itself without xdist) decides at collection
    which runs its selected tests need (`want`): after -k/-m deselection, so a run no selected test
    reads is never started;
  * the session's main process (the xdist controller, or pytest itself) starts each wanted run
    once: without xdist right at collection, with it as soon as the first worker has collected
    (before any test is handed out). It alone holds the processes: at its end it stops a run
    still going (and the lab it left), and removes the folder unless a test that read it failed
    (its path is then in that test's failure message);
  * a reading test waits for the rc file of the phase it checks (`wait_for`).
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

BASE_KEY = "appmesh_background"   # workerinput key: the session's folder of runs


def is_worker(config) -> bool:
    return hasattr(config, "workerinput")


def _base(config) -> Path:
    """The session's folder of runs (one per session, made by the main process)."""
    if is_worker(config):
        return Path(config.workerinput[BASE_KEY])
    folder = getattr(config, "_appmesh_background", None)
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="appmesh-suite-"))
        config._appmesh_background = folder
    return folder


def environ() -> dict:
    """This process's environment less what pytest-xdist sets in its workers."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST_") and k != "PYTEST_CURRENT_TEST"}


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


class Spec:
    """One background run: its name (a folder under the session's), its bash script, environment
    and working folder, the node ids of the tests that read it, and, when it cannot run here, why
    (a skip reason). Plain data: a worker writes it down for the main process to start."""

    def __init__(self, name: str, script: str = "", env: dict | None = None, cwd: str | None = None,
                 readers: list | None = None, skip: str = ""):
        self.name, self.script, self.env, self.cwd = name, script, env, cwd
        self.readers, self.skip = list(readers or []), skip

    def to_json(self) -> dict:
        return dict(self.__dict__)


def course_turn(config) -> str:
    """A command prefix that makes the runs of the whole course (`appmesh-lab e2e`: the main one
    and one per interpreter of the version matrix) take turns: each runs three labs at once, and
    nine labs beside the test workers leave a lesson's timing checks too little CPU. Each takes
    about a minute, well within the suite's time."""
    if not shutil.which("flock"):
        return ""
    return f"flock {shlex.quote(str(_base(config) / 'course.lock'))} "


# the runs this process wants started (collection), and, in the main process, the ones it started
_WANTED: dict = {}
_STARTED: dict = {}     # name -> (Popen | None, folder)
_FAILED: set = set()    # names of runs a reader of which failed


def reads(item, fixture: str) -> bool:
    return fixture in getattr(item, "fixturenames", ())


def readers_last(items: list, fixture: str) -> list:
    """The collected tests that use `fixture` (they read a background run), moved to the end of
    `items` so the rest of the suite runs while the run goes on. Returns them."""
    readers = [item for item in items if reads(item, fixture)]
    if readers:
        items[:] = [item for item in items if item not in readers] + readers
    return readers


def folder_of(config, name: str) -> Path:
    return _base(config) / name


def want(config, spec: Spec) -> Path:
    """At collection: this session needs `spec`. Returns the run's folder (it may not exist yet)."""
    _WANTED[spec.name] = spec
    if is_worker(config):
        publish_wanted(config)
    else:
        start(config, spec)
    return folder_of(config, spec.name)


def start(config, spec: Spec) -> None:
    """In the main process: start `spec` unless it already was. The file `ended` appears in the
    run's folder when its script exits, however it exits."""
    if spec.name in _STARTED or getattr(getattr(config, "option", None), "collectonly", False):   # --collect-only runs nothing
        return
    folder = folder_of(config, spec.name)
    folder.mkdir(parents=True, exist_ok=True)
    _write(folder / "readers.json", json.dumps(spec.readers))
    if spec.skip:
        _write(folder / "skip", spec.skip)
        _STARTED[spec.name] = (None, folder)
        return
    script = f"trap 'touch {shlex.quote(str(folder / 'ended'))}' EXIT\n{spec.script}"
    _write(folder / "started", f"{time.time()}\n")
    with open(folder / "run.log", "w") as log:
        proc = subprocess.Popen(["bash", "-c", script], cwd=spec.cwd, env=spec.env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    _STARTED[spec.name] = (proc, folder)


# -- under xdist: what a worker collected is written down for the main process -----------------

def publish_wanted(config) -> None:
    """In a worker, at collection: write down the runs it wants (the same in every worker)."""
    specs = [s.to_json() for _, s in sorted(_WANTED.items())]
    _write(_base(config) / f"wanted-{config.workerinput['workerid']}.json", json.dumps(specs))


def start_published(config) -> None:
    """In the xdist controller, when a worker has collected: start the runs it wants."""
    if getattr(getattr(config, "option", None), "collectonly", False):
        return
    for f in sorted(_base(config).glob("wanted-*.json")):
        for spec in json.loads(f.read_text()):
            start(config, Spec(**spec))


# -- the reading side --------------------------------------------------------------------------

def skip_reason(folder: Path) -> str:
    f = folder / "skip"
    return f.read_text() if f.is_file() else ""


def wait_started(folder: Path, timeout: float = 120) -> str:
    """The reason the run in `folder` cannot run here ("" when it started). The main process
    starts it before any test runs; a run not there within `timeout` fails the test."""
    deadline = time.time() + timeout
    while not (folder / "started").is_file():
        if (folder / "skip").is_file():
            return (folder / "skip").read_text()
        if time.time() > deadline:
            import pytest
            pytest.fail(f"the background run {folder} was never started")
        time.sleep(0.1)
    return ""


def started_at(folder: Path) -> float | None:
    f = folder / "started"
    return float(f.read_text()) if f.is_file() else None


def rc(folder: Path, phase: str) -> int | None:
    f = folder / f"{phase}.rc"
    try:
        text = f.read_text().strip()
    except OSError:
        return None
    return int(text) if text else None


def wait_for(folder: Path, phase: str, timeout: float) -> int | None:
    """Wait until the run in `folder` has finished `phase` (its rc file) or ended without reaching
    it (the file `ended`); the phase's exit code, None when it never ran. False on a timeout."""
    deadline = time.time() + timeout
    while True:
        code = rc(folder, phase)
        if code is not None:
            return code
        if (folder / "ended").is_file():
            return rc(folder, phase)
        if time.time() > deadline:
            return False
        time.sleep(0.2)


# -- the main process: reports and the end of the session -------------------------------------

def _bare(nodeid: str) -> str:
    """A node id without xdist's `@group` suffix."""
    at, bracket = nodeid.rfind("@"), nodeid.rfind("]")
    return nodeid[:at] if at > bracket and at > nodeid.rfind("::") else nodeid


def record(report) -> None:
    """In the main process: note a failed reader (its run's folder is then kept). A worker
    starts nothing, so it has nothing to note."""
    if not report.failed:
        return
    nodeid = _bare(report.nodeid)
    for name, (_, folder) in _STARTED.items():
        try:
            readers = json.loads((folder / "readers.json").read_text())
        except (OSError, ValueError):
            continue
        if nodeid in {_bare(r) for r in readers}:
            _FAILED.add(name)


def finish(config, stop_lab) -> None:
    """In the main process, at the session's end: stop what still runs (and each lab home it
    names, through `stop_lab(folder)`), then remove the folders no failed test points at."""
    if is_worker(config):
        return
    keep = False
    for name, (proc, folder) in _STARTED.items():
        if proc is not None:
            try:   # a run whose last phase a test has just read may still be exiting: let it
                proc.wait(5)
            except subprocess.TimeoutExpired:   # the session ended early: stop the run and its lab
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(30)   # its `finally`s stop the labs it started
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                stop_lab(folder)
        if name in _FAILED:
            keep = True
    base = getattr(config, "_appmesh_background", None)
    if base is not None and not keep:
        shutil.rmtree(base, ignore_errors=True)
    elif base is not None:   # keep only the runs a failed test read
        for name, (_, folder) in _STARTED.items():
            if name not in _FAILED:
                shutil.rmtree(folder, ignore_errors=True)
