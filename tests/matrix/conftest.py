"""The version matrix: the whole course (`appmesh-lab e2e`) and the tests that touch TLS,
subprocesses and asyncio, on the oldest and the newest CPython the machine has among those the
README promises (tests/matrix/pythons.py says where it looks).

Each interpreter gets its own virtual environment, `.venv-<version>/` at the repository root, made
by scripts/bootstrap.sh (PYTHON=… VENV=…) and reused while pyproject.toml is unchanged. As with the
main course run (tests/notebooks/conftest.py), the runs start in the background as soon as a test
that reads them is collected, both interpreters at once, and those tests go last: the rest of the
suite runs meanwhile. Each run has its own lab home and output folder under a temporary folder,
removed when its tests passed and kept (its path is in the failure message) when one did not.
"""
from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from .pythons import Python, available, looked_for, matrix, venv_dir

ROOT = Path(__file__).resolve().parents[2]

# what else runs on every interpreter of the matrix: the tests that touch TLS (ssl's defaults
# changed in 3.13), subprocesses and signals, and asyncio
UNIT_TESTS = [
    "tests/runtime/test_certificates.py", "tests/controller/test_webhook_certificate.py",
    "tests/integration/test_tls.py", "tests/controller/test_inject.py",          # TLS
    "tests/runtime/test_cli_pipes.py", "tests/runtime/test_faults.py",
    "tests/runtime/test_readiness.py", "tests/runtime/test_apply_wait.py",        # subprocesses
    "tests/bench/test_bench_cli.py",                                               # asyncio
]

SCRIPT = """
cd {root}
{lock}env PYTHON={python} VENV={venv} scripts/bootstrap.sh > {d}/bootstrap.log 2>&1
echo $? > {d}/bootstrap.rc
[ "$(cat {d}/bootstrap.rc)" = 0 ] || exit 0
env APPMESH_LAB_HOME={d}/lab {venv}/bin/python -m lab.cli e2e --output-dir {d}/runs > {d}/e2e.log 2>&1
echo $? > {d}/e2e.rc
{venv}/bin/python -m pytest -q -p no:cacheprovider {tests} > {d}/unit.log 2>&1
echo $? > {d}/unit.rc
"""


@dataclass
class Run:
    python: Python
    folder: Path
    proc: subprocess.Popen | None
    started: float
    ended: float | None = None
    users: int = 0
    passed: int = 0
    waited: float | None = None   # how long the suite waited for it at its end: the wall time it added

    def wait(self, timeout: float = 1200) -> None:
        t0 = time.time()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the Python {self.python.name} run did not finish within {timeout:.0f}s; see {self.folder}")
        if self.ended is None:
            self.ended, self.waited = time.time(), time.time() - t0

    def rc(self, phase: str) -> int | None:
        f = self.folder / f"{phase}.rc"
        return int(f.read_text()) if f.is_file() else None

    def log(self, phase: str, tail: int = 6000) -> str:
        f = self.folder / f"{phase}.log"
        return f.read_text(errors="replace")[-tail:] if f.is_file() else f"(no {phase}.log)"


@dataclass
class Matrix:
    found: list
    chosen: list
    runs: dict          # version name -> Run
    folder: Path | None

    @property
    def skip(self) -> str:
        if len(self.chosen) >= 2:
            return ""
        have = ", ".join(f"{p.name} ({p.path})" for p in self.found) or "none"
        return f"the version matrix needs two CPython versions; looked for {looked_for()}; found: {have}"


MATRIX_KEY = pytest.StashKey[Matrix]()


def _reads_the_matrix(item) -> bool:
    return "matrix_run" in getattr(item, "fixturenames", ())


def _matrix(config) -> Matrix:
    m = config.stash.get(MATRIX_KEY, None)
    if m is None:
        found = available()
        m = Matrix(found, matrix(found), {}, None)
        config.stash[MATRIX_KEY] = m
    return m


def pytest_generate_tests(metafunc):
    if "matrix_python" in metafunc.fixturenames:
        m = _matrix(metafunc.config)
        names = [p.name for p in m.chosen] if not m.skip else ["none"]
        metafunc.parametrize("matrix_python", names, ids=[f"python{n}" for n in names])


@pytest.hookimpl(trylast=True)   # after -k/-m deselection: start only what a selected test reads
def pytest_collection_modifyitems(session, config, items):
    users = [item for item in items if _reads_the_matrix(item)]
    if not users:
        return
    items[:] = [item for item in items if item not in users] + users
    m = _matrix(config)
    if m.skip:
        return
    wanted = {item.callspec.params.get("matrix_python") for item in users if hasattr(item, "callspec")}
    m.folder = Path(tempfile.mkdtemp(prefix="appmesh-matrix-"))
    for p in m.chosen:
        if p.name not in wanted:
            continue
        d = m.folder / p.name
        d.mkdir()
        # one bootstrap at a time: each installs the kit in editable mode from the same checkout
        lock = f"flock {shlex.quote(str(m.folder / 'bootstrap.lock'))} " if shutil.which("flock") else ""
        script = SCRIPT.format(root=shlex.quote(str(ROOT)), lock=lock,
                               python=shlex.quote(p.path), venv=shlex.quote(str(venv_dir(ROOT, p))),
                               d=shlex.quote(str(d)), tests=" ".join(UNIT_TESTS))
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME", "APPMESH_LAB_HOME")}
        with open(d / "run.log", "w") as log:
            proc = subprocess.Popen(["bash", "-c", script], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        m.runs[p.name] = Run(p, d, proc, time.time(),
                             users=sum(1 for i in users if getattr(i, "callspec", None)
                                       and i.callspec.params.get("matrix_python") == p.name))


def pytest_unconfigure(config):
    m = config.stash.get(MATRIX_KEY, None)
    if m is None or m.folder is None:
        return
    keep = False
    for run in m.runs.values():
        if run.proc.poll() is None:   # the session ended early: stop the run and its lab
            os.killpg(run.proc.pid, signal.SIGTERM)
            try:
                run.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(run.proc.pid, signal.SIGKILL)
            from lab.targets.local import LocalTarget
            LocalTarget(home=str(run.folder / "lab"), echo=False).down()
        elif run.passed < run.users:
            keep = True
    if not keep:
        shutil.rmtree(m.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def matrix_state(request) -> Matrix:
    return _matrix(request.config)


@pytest.fixture
def matrix_run(request, matrix_state, matrix_python) -> Run:
    if matrix_state.skip:
        pytest.skip(matrix_state.skip)
    run = matrix_state.runs.get(matrix_python)
    if run is None:
        pytest.skip(f"the Python {matrix_python} run was not started")
    run.wait()
    return run
