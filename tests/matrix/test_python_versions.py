"""The kit on the oldest and the newest CPython the README promises that this machine has (see
conftest.py): every lesson passes end to end, and so do the tests that touch TLS, subprocesses
and asyncio. Plus the choice of interpreters itself."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from .conftest import ROOT, UNIT_TESTS
from .pythons import Python, available, matrix, probe, venv_dir

pytestmark = [pytest.mark.envoy, pytest.mark.slow]


def _failure(run, phase: str) -> str:
    return f"Python {run.python.name} ({run.python.path}), {phase}:\n{run.log(phase)}\n(run folder kept: {run.folder})"


def test_the_whole_course_passes_on_python(matrix_run):
    run = matrix_run
    assert run.rc("bootstrap") == 0, _failure(run, "bootstrap")
    assert run.rc("e2e") == 0, _failure(run, "e2e")
    suite = ET.parse(run.folder / "runs" / "latest" / "junit.xml").getroot().find("testsuite")
    cases = suite.findall("testcase")
    lessons = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.py"))  # one testcase per lesson source
    assert len(cases) == len(lessons) >= 13 and suite.get("failures") == "0", _failure(run, "e2e")
    run.passed += 1


def test_the_tls_subprocess_and_asyncio_tests_pass_on_python(matrix_run):
    run = matrix_run
    assert run.rc("bootstrap") == 0, _failure(run, "bootstrap")
    assert run.rc("unit") == 0, _failure(run, "unit")
    last = run.log("unit").strip().splitlines()[-1]
    assert " passed" in last and "failed" not in last and "error" not in last, last
    run.passed += 1
    print(f"\nPython {run.python.name}: {last}; the run took {run.ended - run.started:.0f}s in the background, "
          f"and the suite waited {run.waited:.0f}s for it at its end")


def test_the_run_installed_the_kit_into_its_own_environment(matrix_run):
    run = matrix_run
    venv = venv_dir(ROOT, run.python)
    assert (venv / "bin" / "python").exists() and (venv / ".appmesh-lab-installed").is_file()
    out = (venv / "pyvenv.cfg").read_text()
    assert f"version = {run.python.name}" in out or f"version_info = {run.python.name}" in out, out
    run.passed += 1


# ---- choosing the interpreters --------------------------------------------------------------------

def _fake(versions: dict):
    return lambda path: versions.get(path)


def test_the_oldest_and_newest_promised_cpython_are_chosen():
    found = available(["a", "b", "c", "d", "e"], _fake({
        "a": Python("a", (3, 12, 1)), "b": Python("b", (3, 10, 13)), "c": None,   # c: a shim that fails
        "d": Python("d", (3, 13, 0)), "e": Python("e", (3, 12, 1))}))               # e: the same version again
    assert [p.path for p in found] == ["b", "a", "d"]
    assert [p.name for p in matrix(found)] == ["3.10.13", "3.13.0"]
    assert matrix(found[:1]) == found[:1] and matrix([]) == []


def test_an_interpreter_the_readme_does_not_promise_is_passed_over(tmp_path):
    old = tmp_path / "python3.9"
    old.write_text("#!/bin/sh\necho CPython 3 9 18\n")
    other = tmp_path / "pypy3.11"
    other.write_text("#!/bin/sh\necho PyPy 3 11 0\n")
    broken = tmp_path / "python3.14"
    broken.write_text("#!/bin/sh\necho 'pyenv: python3.14: command not found' >&2; exit 127\n")
    good = tmp_path / "python3.12"
    good.write_text("#!/bin/sh\necho CPython 3 12 4\n")
    for f in (old, other, broken, good):
        f.chmod(0o755)
    assert [probe(str(f)) for f in (old, other, broken)] == [None, None, None]
    assert probe(str(good)) == Python(str(good), (3, 12, 4))


def test_the_unit_tests_of_the_matrix_exist():
    assert all((ROOT / t).is_file() for t in UNIT_TESTS), [t for t in UNIT_TESTS if not (ROOT / t).is_file()]


def test_with_one_version_the_matrix_skips_saying_where_it_looked():
    from .conftest import Matrix
    only = [Python("/usr/bin/python3.11", (3, 11, 7))]
    reason = Matrix(only, matrix(only), {}, None).skip
    assert "~/.pyenv/versions/3.*/bin/python3" in reason and "python3.10" in reason, reason
    assert "found: 3.11.7 (/usr/bin/python3.11)" in reason, reason
    assert Matrix([], [], {}, None).skip.endswith("found: none")
    two = [only[0], Python("/x/python3.13", (3, 13, 0))]
    assert Matrix(two, matrix(two), {}, None).skip == ""
