"""(d) Every notebook runs on its own: each one, through papermill, on a lab nothing has used
yet. Its setup cell catches up (lab up, the walkthrough up to the notebook's stage) and the
lesson passes. These run after the background end-to-end run (conftest.py) has ended: two
local labs at once could be given the same stable port for a Service."""
import re

import papermill as pm
import pytest

from .conftest import NOTEBOOKS, quiet_ipython_dir

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

NAMES = sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))


@pytest.mark.parametrize("name", NAMES)
def test_each_notebook_runs_standalone_on_a_fresh_lab(name, envoy, after_background_e2e, fresh_lab, tmp_path,
                                                     monkeypatch):
    from lab.e2e import ensure_kernel
    from lab.notebook import walkthrough_files
    ensure_kernel(log=lambda *_: None)
    monkeypatch.setenv("IPYTHONDIR", str(quiet_ipython_dir(tmp_path)))
    assert not fresh_lab.exists()
    nb = pm.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(tmp_path / f"{name}.ipynb"),
                             parameters={"LAB_HOME": str(fresh_lab)}, kernel_name="python3", language="python",
                             cwd=str(NOTEBOOKS), progress_bar=False, request_save_on_cell_execute=False)
    assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))
    setup = next(c for c in nb.cells if c.cell_type == "code" and "nb.setup(" in c.source)
    printed = "".join(o.get("text", "") for o in setup.outputs)
    stage = re.search(r'stage="(\d\d)"', setup.source).group(1)   # the state the lessons before it leave
    if stage >= "01":
        assert "$ appmesh-lab up" in printed and "Ready." in printed, printed
    for path in walkthrough_files(stage):   # caught up with everything the lessons before it apply
        assert f"$ kubectl apply -f {path}" in printed, f"{path} not applied:\n{printed}"
    from lab.targets.local import LocalTarget
    # cleanup (the last lesson) stops the lab itself; the others leave it running (the fixture stops it)
    assert LocalTarget(home=str(fresh_lab), echo=False).running() == (name[:2] != "00" and not name.endswith("-cleanup"))
