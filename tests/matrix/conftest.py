"""The version matrix: the whole course (`appmesh-lab e2e`) and the tests that touch TLS,
subprocesses and asyncio, on the oldest and the newest CPython the machine has among those the
README promises (tests/matrix/pythons.py says where it looks).

Each interpreter gets its own virtual environment, `.venv-<version>/` at the repository root, made
by scripts/bootstrap.sh (PYTHON=… VENV=…) and reused while pyproject.toml is unchanged. As with the
main course run (tests/notebooks/conftest.py), the runs start in the background as soon as a test
that reads them is collected, both interpreters at once, and those tests go last: the rest of the
suite runs meanwhile. Each run has its own lab home and output folder under a temporary folder,
removed when its tests passed and kept (its path is in the failure message) when one did not.
Each starts once per session, also under pytest-xdist (tests/background.py).
"""
from __future__ import annotations

import shlex
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import background

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
{turn}env APPMESH_LAB_HOME={d}/lab {venv}/bin/python -m lab.cli e2e --output-dir {d}/runs > {d}/e2e.log 2>&1
echo $? > {d}/e2e.rc
{venv}/bin/python -m pytest -q -p no:cacheprovider {tests} > {d}/unit.log 2>&1
echo $? > {d}/unit.rc
"""


@dataclass
class Run:
    """One interpreter's background run, as a reading test sees it (files only: tests/background.py)."""
    python: Python
    folder: Path
    users: int = 0
    passed: int = 0
    ended: float | None = None
    waited: float | None = None   # how long the suite waited for it at its end: the wall time it added

    @property
    def started(self) -> float:
        return background.started_at(self.folder) or time.time()

    def wait(self, timeout: float = 1200) -> None:
        t0 = time.time()
        if background.wait_for(self.folder, "unit", timeout) is False:
            pytest.fail(f"the Python {self.python.name} run did not finish within {timeout:.0f}s; see {self.folder}")
        if self.ended is None:
            self.waited = time.time() - t0
            ended = self.folder / "ended"
            self.ended = ended.stat().st_mtime if ended.exists() else time.time()

    def rc(self, phase: str) -> int | None:
        return background.rc(self.folder, phase)

    def log(self, phase: str, tail: int = 6000) -> str:
        f = self.folder / f"{phase}.log"
        return f.read_text(errors="replace")[-tail:] if f.is_file() else f"(no {phase}.log)"


@dataclass
class Matrix:
    found: list
    chosen: list
    runs: dict          # version name -> Run
    folder: Path | None = None   # (unused: each run's folder is the session's, tests/background.py)

    @property
    def skip(self) -> str:
        if len(self.chosen) >= 2:
            return ""
        have = ", ".join(f"{p.name} ({p.path})" for p in self.found) or "none"
        return f"the version matrix needs two CPython versions; looked for {looked_for()}; found: {have}"


MATRIX_KEY = pytest.StashKey[Matrix]()


def _matrix(config) -> Matrix:
    m = config.stash.get(MATRIX_KEY, None)
    if m is None:
        found = available()
        m = Matrix(found, matrix(found), {})
        config.stash[MATRIX_KEY] = m
    return m


def pytest_generate_tests(metafunc):
    if "matrix_python" in metafunc.fixturenames:
        m = _matrix(metafunc.config)
        names = [p.name for p in m.chosen] if not m.skip else ["none"]
        metafunc.parametrize("matrix_python", names, ids=[f"python{n}" for n in names])


@pytest.hookimpl(trylast=True)   # after -k/-m deselection: start only what a selected test reads
def pytest_collection_modifyitems(session, config, items):
    users = background.readers_last(items, "matrix_run")
    if not users:
        return
    m = _matrix(config)
    if m.skip:
        return
    wanted = {item.callspec.params.get("matrix_python") for item in users if hasattr(item, "callspec")}
    # one bootstrap at a time: each installs the kit in editable mode from the same checkout
    lock_file = background.folder_of(config, "matrix-bootstrap.lock")
    lock = f"flock {shlex.quote(str(lock_file))} " if shutil.which("flock") else ""
    env = {k: v for k, v in background.environ().items() if k not in ("VIRTUAL_ENV", "PYTHONHOME", "APPMESH_LAB_HOME")}
    for p in m.chosen:
        if p.name not in wanted:
            continue
        name = f"matrix-{p.name}"
        d = background.folder_of(config, name)
        script = SCRIPT.format(root=shlex.quote(str(ROOT)), lock=lock, turn=background.course_turn(config),
                               python=shlex.quote(p.path), venv=shlex.quote(str(venv_dir(ROOT, p))),
                               d=shlex.quote(str(d)), tests=" ".join(UNIT_TESTS))
        readers = [i for i in users if getattr(i, "callspec", None) and i.callspec.params.get("matrix_python") == p.name]
        background.want(config, background.Spec(name, script, env=env, cwd=str(ROOT),
                                                readers=[i.nodeid for i in readers]))
        m.runs[p.name] = Run(p, d, users=len(readers))


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
    reason = background.wait_started(run.folder)
    if reason:
        pytest.skip(reason)
    run.wait()
    return run
