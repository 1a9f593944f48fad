"""`appmesh-lab e2e --target kind|eks`: the prerequisites are checked first (a missing tool is one
line and exit 2, nothing started), then the cluster comes up once (ClusterTarget.up), the
notebooks run with the same CLUSTER_NAME/REGION, and the teardown (ClusterTarget.down) always runs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab import e2e
from lab.targets.base import TargetError
from lab.targets.cluster import DEFAULTS, check_prerequisites, missing_prerequisites
from tests.conftest import ROOT

CLI = Path(sys.executable).with_name("appmesh-lab")


class Done:
    def __init__(self, rc):
        self.returncode = rc


def test_every_missing_tool_is_named_with_where_to_get_it():
    missing = missing_prerequisites("kind", which=lambda tool: None)
    assert [m.split()[0] for m in missing] == ["docker", "kind", "kubectl", "helm"]
    assert all("is not installed (https://" in m for m in missing)


def test_a_docker_whose_daemon_does_not_answer_is_missing_too():
    calls = []

    def run(argv, **kw):
        calls.append(argv)
        return Done(1)
    missing = missing_prerequisites("kind", which=lambda tool: f"/bin/{tool}", run=run)
    assert calls == [["docker", "info"]]
    assert missing == ["docker is installed but its daemon does not answer (start Docker, or check DOCKER_HOST)"]
    assert missing_prerequisites("kind", which=lambda tool: f"/bin/{tool}", run=lambda argv, **kw: Done(0)) == []


def test_eks_needs_eksctl_aws_and_credentials():
    missing = missing_prerequisites("eks", which=lambda tool: None if tool in ("eksctl", "aws") else f"/bin/{tool}",
                                    run=lambda argv, **kw: Done(0), credentials=lambda: None)
    assert missing == ["eksctl is not installed (https://eksctl.io/installation/)",
                       "aws is not installed (https://aws.amazon.com/cli/)",
                       "no AWS credentials are configured (aws configure, or AWS_PROFILE)"]
    assert missing_prerequisites("eks", which=lambda tool: f"/bin/{tool}", run=lambda argv, **kw: Done(0),
                                 credentials=lambda: object()) == []


def test_check_prerequisites_says_everything_in_one_line():
    with pytest.raises(TargetError) as err:
        check_prerequisites("kind", which=lambda tool: None)
    text = str(err.value)
    assert "\n" not in text and text.startswith("the kind target cannot run on this machine: docker is not installed")
    assert "docs/clusters.md#prerequisites" in text
    with pytest.raises(TargetError, match="choose kind or eks"):
        check_prerequisites("minikube")


def _cli(tmp_path, bindir, *args):
    env = {"PATH": str(bindir), "HOME": str(tmp_path), "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_EC2_METADATA_DISABLED": "true"}
    return subprocess.run([str(CLI), "e2e", *args, "--output-dir", str(tmp_path / "runs")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("target,tools", [("kind", ["docker", "kind", "kubectl", "helm"]),
                                          ("eks", ["docker", "eksctl", "aws", "kubectl", "helm"])])
def test_e2e_on_a_machine_without_the_tools_exits_2_with_one_line(tmp_path, target, tools):
    bindir = tmp_path / "bin"  # a PATH with none of the cluster tools (as on the development machines)
    bindir.mkdir()
    out = _cli(tmp_path, bindir, "--target", target)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"appmesh-lab e2e: the {target} target cannot run on this machine")
    for tool in tools:
        assert f"{tool} is not installed" in lines[0]
    if target == "eks":
        assert "no AWS credentials are configured" in lines[0]
    assert not (tmp_path / "runs").exists()  # nothing was started


def test_e2e_says_when_docker_is_there_but_not_running(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool, body in (("docker", "exit 1"), ("kind", "exit 0"), ("kubectl", "exit 0"), ("helm", "exit 0")):
        (bindir / tool).write_text(f"#!/bin/sh\n{body}\n")
        (bindir / tool).chmod(0o755)
    out = _cli(tmp_path, bindir, "--target", "kind")
    assert out.returncode == 2 and out.stderr.strip() == (
        "appmesh-lab e2e: the kind target cannot run on this machine: docker is installed but its daemon does not "
        "answer (start Docker, or check DOCKER_HOST). See docs/clusters.md#prerequisites")


class FakeCluster:
    """Stands in for ClusterTarget in lab.e2e (make_target): records up/down."""

    log: list = []

    def __init__(self, target, fail_up=False, **options):
        self.name, self.options, self.fail_up = target, options, fail_up

    def up(self):
        FakeCluster.log.append(("up", self.name, self.options.get("cluster_name"), self.options.get("region")))
        if self.fail_up:
            raise TargetError("`scripts/kind-up.sh` failed (exit 1): kind create cluster: port 8080 is in use")

    def down(self, purge=False):
        FakeCluster.log.append(("down", self.name, self.options.get("cluster_name"), self.options.get("region")))


def _notebook(directory: Path) -> None:
    """One notebook that checks the parameters a cluster run gives it."""
    cells = [
        {"id": "parameters", "cell_type": "code", "metadata": {"tags": ["parameters"]}, "execution_count": None,
         "outputs": [],
         "source": 'TARGET = "local"\nCLUSTER_NAME = "x"\nREGION = "x"\nTIMEOUT_S = 30\n'},
        {"id": "check", "cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
         "source": 'assert TARGET == "eks" and CLUSTER_NAME == "appmesh-gateway-demo" and REGION == "us-west-2" '
                   'and TIMEOUT_S == 600, (TARGET, CLUSTER_NAME, REGION, TIMEOUT_S)\n'},
    ]
    nb = {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                      "language": "python"}, "language_info": {"name": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    (directory / "01-check.ipynb").write_text(json.dumps(nb))


@pytest.fixture
def fake_cluster(monkeypatch):
    import lab.notebook.staging
    FakeCluster.log = []
    state = {"fail_up": False}
    monkeypatch.setattr("lab.targets.cluster.check_prerequisites", lambda target: None)
    monkeypatch.setattr(lab.notebook.staging, "make_target",
                        lambda target, **kw: FakeCluster(target, fail_up=state["fail_up"],
                                                         **{k: v for k, v in kw.items() if k != "echo"}))
    return state


def test_a_cluster_run_brings_the_cluster_up_once_runs_the_notebooks_and_tears_down(tmp_path, fake_cluster):
    nbdir = tmp_path / "nb"
    nbdir.mkdir()
    _notebook(nbdir)
    lines = []
    r = e2e.run("eks", output_dir=tmp_path / "runs", directory=nbdir, log=lines.append)
    assert [o.notebook for o in r.outcomes] == ["01-check"] and not r.failed, r.outcomes
    default = DEFAULTS["eks"]
    assert FakeCluster.log == [("up", "eks", default["cluster_name"], default["region"]),
                               ("down", "eks", default["cluster_name"], default["region"])]
    assert any(line.startswith("[up] eks cluster appmesh-gateway-demo  ok") for line in lines)
    assert r.teardown == "eks target torn down"


def test_a_failed_up_skips_the_notebooks_fails_the_run_and_still_tears_down(tmp_path, fake_cluster):
    fake_cluster["fail_up"] = True
    nbdir = tmp_path / "nb"
    nbdir.mkdir()
    _notebook(nbdir)
    lines = []
    r = e2e.run("kind", output_dir=tmp_path / "runs", directory=nbdir, log=lines.append)
    assert [(o.notebook, o.passed) for o in r.outcomes] == [("up", False)]
    assert "port 8080 is in use" in r.outcomes[0].message
    assert [entry[0] for entry in FakeCluster.log] == ["up", "down"]
    assert FakeCluster.log[0][2] == "appmesh-gateway-demo" and FakeCluster.log[0][3] is None
    junit = (r.directory / "junit.xml").read_text()
    assert 'name="up"' in junit and "port 8080 is in use" in junit
    assert os.path.exists(r.directory / "report.html")
