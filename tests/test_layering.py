"""The layering of DESIGN.md, enforced (contracts in .importlinter): model and translate do no I/O and know
nothing below them; the in-cluster controller uses only the layers above it, and none of those uses it."""
import shutil
import subprocess

from tests.conftest import ROOT


def test_import_contracts_hold():
    exe = shutil.which("lint-imports", path=str(ROOT / ".venv" / "bin")) or shutil.which("lint-imports")
    assert exe, "import-linter is a test dependency (pip install -e .[test])"
    run = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Contracts: 4 kept, 0 broken" in run.stdout, run.stdout
