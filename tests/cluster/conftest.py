"""Fixtures of the cluster-target tests: a stub API server with recorded objects, a fake `sh`
runner that records command lines, and moto for AWS."""
from __future__ import annotations

import copy
import json
import shlex
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests import background
from tests.controller.apiserver import StubApiServer

TESTDATA = Path(__file__).parent / "testdata"


def cluster_objects() -> dict:
    return json.loads((TESTDATA / "cluster.json").read_text())


class Runner:
    """Stands in for lab.targets.cluster._sh_runner: records argv and stdin, answers from a table."""

    def __init__(self, answers: dict | None = None):
        self.calls: list[dict] = []
        self.answers = answers or {}

    def __call__(self, argv, input=None, env=None, timeout=None, stream=False):
        self.calls.append({"argv": list(argv), "input": input, "env": env, "stream": stream})
        for prefix, answer in self.answers.items():
            if " ".join(argv).startswith(prefix):
                if isinstance(answer, Exception):
                    raise answer
                return answer
        return ""

    @property
    def lines(self) -> list[str]:
        return [" ".join(c["argv"]) for c in self.calls]


@pytest.fixture
def api():
    server = StubApiServer(copy.deepcopy(cluster_objects()))
    yield server
    server.close()


@pytest.fixture
def runner():
    return Runner()


@pytest.fixture
def aws(monkeypatch):
    moto = pytest.importorskip("moto", reason="moto is not installed (pip install 'moto[ec2,ecr,eks,elb,elbv2,iam,sts]>=5.0')")
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    import boto3
    with moto.mock_aws():
        yield boto3.Session(region_name="us-east-1")


# -- the lessons on kind against the stand-ins, in the background (tests/cluster/kind_lessons.py) --

KIND_SCRIPT = """
{turn}{python} -m tests.cluster.kind_lessons {folder} {lessons} > {folder}/kind.log 2>&1
echo $? > {folder}/kind.rc
"""


@pytest.hookimpl(trylast=True)   # after -k/-m deselection: start the run only when a test reads it
def pytest_collection_modifyitems(session, config, items):
    users = background.readers_last(items, "kind_lessons")
    if not users:
        return
    from tests.cluster.kind_lessons import LESSONS
    folder = background.folder_of(config, "kind-lessons")
    script = KIND_SCRIPT.format(turn=background.course_turn(config), python=shlex.quote(sys.executable),
                                folder=shlex.quote(str(folder)), lessons=shlex.quote(LESSONS))
    root = Path(__file__).resolve().parents[2]
    background.want(config, background.Spec("kind-lessons", script, env=background.environ(), cwd=str(root),
                                            readers=[item.nodeid for item in users]))


@pytest.fixture
def kind_lessons(request):
    """What the background run of the lessons on kind wrote: lines (its progress), directory (its
    report folder), failed (one text per failed lesson) and calls (every tool call the stand-ins
    checked)."""
    folder = background.folder_of(request.config, "kind-lessons")
    reason = background.wait_started(folder)
    if reason:
        pytest.skip(reason)
    code = background.wait_for(folder, "kind", timeout=1800)
    log = (folder / "kind.log").read_text(errors="replace")[-6000:] if (folder / "kind.log").is_file() else ""
    assert code == 0, f"the lessons on kind did not run to their end (exit {code}); kept in {folder}:\n{log}"
    result = json.loads((folder / "result.json").read_text())
    return SimpleNamespace(lines=result["lines"], directory=Path(result["directory"]), failed=result["failed"],
                           calls=result["calls"])
