"""The layering of DESIGN.md, enforced (contracts in .importlinter): model and translate do no I/O and know
nothing below them; the in-cluster controller uses only the layers above it, and none of those uses it; the
CLI, the suites, the notebook helpers, the targets and the runtime depend one way; the local and the cluster
targets do not import each other."""
import shutil
import subprocess

from tests.conftest import ROOT


def test_import_contracts_hold():
    exe = shutil.which("lint-imports", path=str(ROOT / ".venv" / "bin")) or shutil.which("lint-imports")
    assert exe, "import-linter is a test dependency (pip install -e .[test])"
    run = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    contracts = (ROOT / ".importlinter").read_text().count("[importlinter:contract:")
    assert contracts >= 6, "the contracts of .importlinter went missing"
    assert f"Contracts: {contracts} kept, 0 broken" in run.stdout, run.stdout
