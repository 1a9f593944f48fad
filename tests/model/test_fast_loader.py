"""The manifest loader reads with libyaml when PyYAML has it and falls back to the pure-Python
parser for malformed text: both must give the same documents, the same line of every field, and
(for malformed YAML) the pure parser's problem."""
from pathlib import Path

import pytest
import yaml

from lab.model import loader

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(loader._FAST_LOADER is None, reason="PyYAML was built without libyaml")


def _files():
    return sorted(p for p in (ROOT / "manifests").rglob("*.yaml")) + sorted((ROOT / "tests" / "model" / "corpus").glob("*.yaml"))


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_libyaml_and_pure_python_read_every_file_alike(path):
    text = path.read_text()
    pure_docs, pure_problems = loader._parse(text, str(path), yaml.SafeLoader)
    docs, problems = loader.load_text(text, str(path))
    assert [(d.data, d.lines, d.line, d.index) for d in docs] == \
        [(d.data, d.lines, d.line, d.index) for d in pure_docs]
    assert [str(p) for p in problems] == [str(p) for p in pure_problems]


def test_malformed_yaml_gets_the_pure_parsers_problem():
    text = "kind: Mesh\nmetadata:\n  name: [unclosed\n"
    docs, problems = loader.load_text(text, "bad.yaml")
    assert docs == []
    assert problems and problems[0].code == "yaml" and problems[0].line >= 3
    assert [str(p) for p in problems] == [str(p) for p in loader._parse(text, "bad.yaml", yaml.SafeLoader)[1]]


def test_a_lone_surrogate_is_a_problem_not_an_exception():
    docs, problems = loader.load_text("kind: GatewayRoute\nx: \udc80", "a.yaml")
    assert docs == [] and problems and problems[0].code == "yaml"
    assert "U+DC80" in problems[0].message
