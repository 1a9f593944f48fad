"""(d) Every notebook runs on its own: each one, through papermill, on a lab nothing has used
yet. Its setup cell catches up (lab up, the walkthrough up to the notebook's stage) and the
lesson passes. The lessons run one by one in the background from the start of the session
(tests/notebooks/standalone_run.py, started by conftest.py in its turn with the course runs),
and each test reads what its lesson's run wrote."""
import re

import pytest

from .conftest import NOTEBOOKS

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

NAMES = sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))


@pytest.mark.parametrize("name", NAMES)
def test_each_notebook_runs_standalone_on_a_fresh_lab(name, envoy, standalone_run):
    r = standalone_run
    assert r["fresh"], f"{r['folder'] / 'lab'} was used before the lesson ran"
    assert r["error"] is None, f"{name} (kept in {r['folder']}):\n{r['error']}"
    nb = r["nb"]
    assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))
    setup = next(c for c in nb.cells if c.cell_type == "code" and "nb.setup(" in c.source)
    printed = "".join(o.get("text", "") for o in setup.outputs)
    stage = re.search(r'stage="(\d\d)"', setup.source).group(1)   # the state the lessons before it leave
    if stage >= "01":
        assert "$ appmesh-lab up" in printed and "Ready." in printed, printed
    from lab.notebook import walkthrough_files
    for path in walkthrough_files(stage):   # caught up with everything the lessons before it apply
        assert f"$ kubectl apply -f {path}" in printed, f"{path} not applied:\n{printed}"
    # cleanup (the last lesson) stops the lab itself; the others leave it running (the run stops it after)
    assert r["running"] == (name[:2] != "00" and not name.endswith("-cleanup"))
