"""The whole notebook suite on a real kind cluster: `pytest -m kind`.

It runs `appmesh-lab e2e --target kind` (lab/e2e.py), which checks the prerequisites, brings the
kind target up once (ClusterTarget.up: scripts/kind-up.sh), runs every notebook against it with
papermill and tears it down (scripts/kind-down.sh). Skipped, naming what is missing, where
docker (with a running daemon), kind, kubectl or helm are absent, as on the development machines.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lab.targets.cluster import missing_prerequisites
from tests.conftest import ROOT

MISSING = missing_prerequisites("kind")


@pytest.mark.kind
@pytest.mark.slow
@pytest.mark.skipif(bool(MISSING), reason="needs a kind cluster: " + "; ".join(MISSING))
def test_the_notebook_suite_passes_on_kind():
    cli = Path(sys.executable).with_name("appmesh-lab")
    out = subprocess.run([str(cli), "e2e", "--target", "kind"], cwd=ROOT, capture_output=True, text=True,
                         timeout=3 * 3600)
    assert out.returncode == 0, (out.stdout[-5000:] + "\n" + out.stderr[-5000:] +
                                 f"\n(report: {ROOT / 'runs' / 'latest' / 'report.html'})")
