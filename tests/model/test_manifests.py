"""The manifest library people copy into their clusters validates clean."""
import json
import subprocess
import sys

from lab.files import read_texts
from lab.model import validate_texts
from tests.conftest import ROOT


def test_every_manifest_validates_clean_and_the_cli_counts_each_kind():
    run = subprocess.run([sys.executable, "-m", "lab.cli", "validate", "manifests/", "-o", "json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr
    report = json.loads(run.stdout)
    assert report["errors"] == 0 and report["warnings"] == 0, report["problems"][:5]
    for kind in ("Mesh", "VirtualNode", "VirtualService", "VirtualRouter", "VirtualGateway", "GatewayRoute",
                 "Namespace", "Deployment", "Service"):
        assert report["kinds"].get(kind, 0) > 0, kind


def test_the_walkthrough_is_complete_on_its_own():
    texts, problems = read_texts([ROOT / "manifests" / "walkthrough"])
    assert not problems
    result = validate_texts(texts, complete=True)
    assert result.ok and not result.problems, "\n".join(map(str, result.problems))
    kinds = result.kinds()
    assert kinds["GatewayRoute"] == 2 and kinds["VirtualGateway"] == 1 and kinds["VirtualNode"] == 2


def test_every_example_set_is_complete_on_its_own():
    for d in sorted((ROOT / "manifests" / "examples").iterdir()):
        if not d.is_dir():
            continue
        texts, problems = read_texts([d], recursive=False)
        result = validate_texts(texts, complete=True)
        assert result.ok, f"{d.name}:\n" + "\n".join(map(str, result.errors))
        assert result.kinds()["GatewayRoute"] >= 1, d.name
