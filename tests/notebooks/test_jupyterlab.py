"""(e) The lessons in JupyterLab: a headless JupyterLab on notebooks/, notebook 06 opened in
headless Chromium (driven by Playwright), its first heading and a code cell rendered, and a
screenshot saved under runs/ (or $APPMESH_LAB_RUNS_DIR). Skipped, with the reason, where the
browser or Playwright is missing (scripts/install-browser.sh installs Chromium)."""
import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .conftest import NOTEBOOKS, ROOT

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyter_lab(tmp_path):
    port = _free_port()
    labconfig = tmp_path / "config" / "labconfig"   # no "get notified about news?" toast over the screenshot
    labconfig.mkdir(parents=True)
    (labconfig / "page_config.json").write_text('{"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": true}}')
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTER_DATA_DIR=str(tmp_path / "data"), IPYTHONDIR=str(tmp_path / "ipython"))
    env.pop("JUPYTER_PATH", None)
    log = open(tmp_path / "jupyter.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
                             "--ServerApp.token=", "--ServerApp.password=", f"--ServerApp.root_dir={NOTEBOOKS}",
                             "--ServerApp.open_browser=False", "--LabApp.news_url=None",
                             # the checkpoint JupyterLab makes on opening a notebook goes here, not into notebooks/
                             f"--FileCheckpoints.checkpoint_dir={tmp_path / 'checkpoints'}",
                             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
                            + (["--allow-root"] if os.geteuid() == 0 else []),
                            cwd=NOTEBOOKS, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/status", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail("JupyterLab did not start:\n" + (tmp_path / "jupyter.log").read_text()[-3000:])
        time.sleep(0.2)
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def test_notebook_06_renders_in_jupyterlab(jupyter_lab, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: run scripts/install-browser.sh (apt-get install chromium)")
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("the Python package playwright is not installed (pip install playwright; no browser download "
                    "needed, the test uses /usr/bin/chromium)")
    from playwright.sync_api import sync_playwright
    runs = Path(os.environ.get("APPMESH_LAB_RUNS_DIR", ROOT / "runs"))
    shot = runs / "jupyterlab" / "06-gateway-routes.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    before = (NOTEBOOKS / "06-gateway-routes.ipynb").read_bytes()
    checkpoints = NOTEBOOKS / ".ipynb_checkpoints"
    had_checkpoints = checkpoints.exists()   # a learner's own JupyterLab may have made them
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=str(CHROMIUM),
                                                       headless=True, args=FLAGS, viewport={"width": 1280, "height": 900})
        try:
            page = browser.new_page()
            page.goto(f"{jupyter_lab}/lab/tree/06-gateway-routes.ipynb", wait_until="domcontentloaded", timeout=60000)
            heading = page.locator(".jp-Notebook .jp-MarkdownOutput h1").first
            heading.wait_for(timeout=60000)
            assert heading.inner_text().startswith("06 · Gateway routes")
            code = page.locator(".jp-Notebook .jp-CodeCell .jp-InputArea-editor").nth(1)
            code.wait_for(timeout=30000)
            page.wait_for_function("() => [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-editor')]"
                                   ".some(e => e.innerText.includes('nb.setup(TARGET'))", timeout=30000)
            assert "nb.setup(TARGET" in page.locator(".jp-Notebook").inner_text()
            page.screenshot(path=str(shot))
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    assert had_checkpoints or not checkpoints.exists(), "opening a lesson wrote checkpoints into notebooks/"
    assert (NOTEBOOKS / "06-gateway-routes.ipynb").read_bytes() == before, "opening a lesson changed the file"
    print(f"\nscreenshot: {shot}")


def test_appmesh_lab_jupyter_starts_where_home_cannot_be_written(tmp_path):
    """A CI runner or service account with HOME=/nonexistent: JupyterLab stopped with a traceback
    (it keeps its runtime files under HOME); `appmesh-lab jupyter` now gives it a private folder."""
    home = tmp_path / "home"
    home.write_text("not a folder")   # unwritable even for root, as /nonexistent is for nobody
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR",
                                                             "JUPYTER_CONFIG_DIR", "IPYTHONDIR", "JUPYTER_PATH")}
    env["HOME"] = str(home)
    log = open(tmp_path / "jupyter.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "lab.cli", "jupyter", "--", "--no-browser", f"--port={port}",
                             "--ip=127.0.0.1", "--ServerApp.token=", "--LabApp.news_url=None",
                             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                pass
            assert proc.poll() is None and time.time() < deadline, \
                "JupyterLab did not start:\n" + (tmp_path / "jupyter.log").read_text()[-3000:]
            time.sleep(0.3)
        said = (tmp_path / "jupyter.log").read_text()
        assert f"HOME ({home}) is not a folder you may write" in said, said[-2000:]
        assert "Traceback" not in said, said[-3000:]
        folder = Path(said.split(" go to ", 1)[1].split()[0])
        assert folder.is_dir() and (folder.stat().st_mode & 0o077) == 0, folder   # private
        proc.terminate()   # SIGTERM to appmesh-lab alone (a CI job's timeout): JupyterLab stops, the folder goes
        proc.wait(30)
        deadline = time.time() + 30
        while time.time() < deadline and subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True).stdout:
            time.sleep(0.2)
        assert not subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True).stdout, "JupyterLab left running"
        assert not folder.exists(), folder
    finally:
        if subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True).stdout:
            os.killpg(proc.pid, 9)
        log.close()
