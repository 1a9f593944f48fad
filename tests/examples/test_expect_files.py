"""The expectation files (manifests/**/expect.yaml.txt) follow their schema and the README tables.

No lab needed: tests/examples/test_examples.py runs the checks against a lab.
"""
import pytest

from . import expect as e

SETS = e.manifest_sets()


def test_every_set_has_an_expectation_file():
    missing = [s for s in SETS if not (e.MANIFESTS / s / e.EXPECT_FILE).is_file()]
    assert not missing, f"sets without {e.EXPECT_FILE}: {missing}"


@pytest.mark.parametrize("set_name", SETS)
def test_follows_the_schema(set_name):
    assert e.problems(set_name, e.load(set_name)) == []


@pytest.mark.parametrize("set_name", SETS)
def test_in_step_with_the_readme(set_name):
    """One check per README row, in the README's order, each plausibly the row's request."""
    rows = e.readme_rows(set_name)
    assert rows, f"{set_name}: no request rows found in the README"
    checks = e.load(set_name)["checks"]
    assert [e.normalize(c["row"]) for c in checks] == rows, (
        f"{set_name}: the checks' rows differ from the README's request column")
    for c in checks:
        assert e.loosely_same_request(e.normalize(c["row"]), c["request"]), (
            f"{set_name}: the check for {c['row']!r} sends a different request: {c['request']}")


def test_the_readme_parser():
    assert e.normalize("`curl -H 'x: a\\|b'  $GW/` ") == "curl -H 'x: a|b' $GW/"
    rows = e.readme_rows("examples/blue-green")
    assert rows.count("curl $GW/checkout") == 2  # before and after the switch
