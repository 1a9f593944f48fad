"""Fixtures of the cluster-target tests: a stub API server with recorded objects, a fake `sh`
runner that records command lines, and moto for AWS."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

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
