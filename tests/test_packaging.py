"""The pip path (pyproject.toml) and the conda path (environment.yml) install the same set."""
import re
import tomllib

import yaml

from tests.conftest import ROOT


def _norm(spec: str) -> str:
    return re.sub(r"\s+", "", spec).lower().replace("_", "-")


def test_environment_yml_lists_exactly_the_pyproject_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_norm(s) for s in project["dependencies"] + project["optional-dependencies"]["test"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    listed = {_norm(s) for s in pip_section if not s.startswith("-")}
    assert listed == wanted, f"only in environment.yml: {listed - wanted}; only in pyproject: {wanted - listed}"
    assert any(s.endswith("-e .") for s in pip_section), "environment.yml must install the kit itself"


def test_kubernetes_is_pinned_below_the_dateutil_conflict():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    kube = next(s for s in project["dependencies"] if s.startswith("kubernetes"))
    assert "<=37.0.0" in kube
