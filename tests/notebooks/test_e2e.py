"""(b) The whole course on the local target, through the e2e runner (`appmesh-lab e2e`).

The run itself started in the background at collection time (see conftest.py); this test waits
for it and checks its exit code and the files it wrote. test_regression.py compares the
notebooks it executed with the committed ones."""
import os
import re
import time
import xml.etree.ElementTree as ET

import pytest

from .conftest import NOTEBOOKS

pytestmark = [pytest.mark.envoy, pytest.mark.slow]


def test_the_whole_course_passes_end_to_end_on_the_local_target(background_e2e):
    bg = background_e2e
    bg.wait()
    seconds = time.time() - bg.started
    out = bg.log.read_text()
    where = f"\n(run folder kept: {bg.folder})"
    assert bg.returncode == 0, f"appmesh-lab e2e exited {bg.returncode}:\n{out[-6000:]}{where}"

    latest = bg.folder / "runs" / "latest"
    assert latest.is_symlink() and latest.resolve().parent == (bg.folder / "runs").resolve(), where
    suite = ET.parse(latest / "junit.xml").getroot().find("testsuite")
    cases = suite.findall("testcase")
    expected = sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))
    assert expected == sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]-*.py")) and len(expected) >= 13   # one per source
    assert [c.get("name") for c in cases] == expected, where
    assert suite.get("failures") == "0" and not any(c.find("failure") is not None for c in cases), where
    assert all((latest / f"{name}.ipynb").is_file() for name in expected), where
    assert (latest / "report.html").is_file() and f"{len(expected)} passed, 0 failed" in (latest / "report.html").read_text()

    # one progress line per notebook, the teardown, and where the report is
    lines = out.splitlines()
    for name in expected:
        assert any(name in line and " ok " in line for line in lines), f"no progress line for {name}:\n{out}"
    assert f"{len(expected)} passed, 0 failed" in out and re.search(r"\blocal labs? stopped", out)
    assert lines[-1].startswith("report: ") and os.path.samefile(lines[-1][len("report: "):], latest / "report.html")

    from lab.targets.local import LocalTarget
    labs = [bg.folder / "lab"] + sorted(latest.resolve().glob("lab-[0-9]*"))   # one per lane (lab/e2e.py)
    assert not [h for h in labs if LocalTarget(home=str(h), echo=False).running()], "the e2e run left a lab running"
    bg.passed += 1
    print(f"\nthe whole course ran end to end in {seconds:.1f}s (in the background of the other notebook tests)")
