"""scripts/test.sh under pytest-xdist (APPMESH_TEST_WORKERS=N): a test module's tests run on one
worker, since many share a lab started once per module (scope="module"). --dist loadgroup did
not keep them together with pytest 9 (xdist 3.8 marks a group by rewriting item._nodeid, which
pytest 9 no longer reads), so test_bad_resource's module ran on three workers, each with a lab
of its own, and its down/up test read a lab that never had the route it checks."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

MODULE = '''
import os, pytest
pytestmark = pytest.mark.xdist_group("one-module")   # as tests/conftest.py marked every module

@pytest.mark.parametrize("i", range(8))
def test_where(i):
    with open(os.environ["WHERE"], "a") as f:
        f.write(os.environ.get("PYTEST_XDIST_WORKER", "main") + "\\n")
'''


def test_a_modules_tests_run_on_one_worker_with_the_suites_dist_mode(tmp_path):
    pytest.importorskip("xdist", reason="pytest-xdist is not installed (scripts/bootstrap.sh installs it)")
    dist = re.search(r"--dist (\w+)", (ROOT / "scripts" / "test.sh").read_text()).group(1)
    (tmp_path / "test_mod.py").write_text(MODULE)
    (tmp_path / "test_other.py").write_text("def test_a():\n    pass\n\ndef test_b():\n    pass\n")
    where = tmp_path / "where.txt"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", "--dist", dist,
                           str(tmp_path)], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "WHERE": str(where)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    workers = where.read_text().split()
    assert len(workers) == 8 and len(set(workers)) == 1, (dist, workers)
