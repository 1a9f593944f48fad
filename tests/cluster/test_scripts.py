"""scripts/{kind,eks}-{up,down}.sh and build-images.sh, run for real with stub CLIs on PATH.

Each stub appends its command line to a log and answers like the real tool would for the few
questions the scripts ask (is there a cluster, which LoadBalancer Services exist). The tests
assert the commands and their order; nothing reaches Docker, kind, AWS or a cluster.
"""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.conftest import ROOT

UTILS = ["bash", "dirname", "grep", "sed", "tr", "mktemp", "tee", "tail", "cat", "basename", "rm"]
STUB = """#!/bin/sh
echo "{name} $*" >> "$STUB_LOG"
case "{name} $*" in
  "kind get clusters"*) [ -n "$STUB_KIND_CLUSTERS" ] && echo "$STUB_KIND_CLUSTERS"; exit 0 ;;
  "docker info"*) [ "$STUB_DOCKER_DOWN" = 1 ] && exit 1; exit 0 ;;
  "docker image inspect"*) exit 0 ;;
  "docker login"*) cat >/dev/null ;;
  "eksctl get cluster"*) exit "${{STUB_EKS_EXISTS:-1}}" ;;
  "aws ecr get-login-password"*) echo token ;;
  "kubectl get services"*) printf 'appmesh-demo appmesh-gateway\\nex-canary gateway\\n' ;;
  "helm status"*) exit 0 ;;
  "python -m lab.targets.cluster ecr-ensure"*|"python -m lab.targets.cluster ecr-registry"*)
    echo 123456789012.dkr.ecr.us-west-2.amazonaws.com ;;
  "kubectl config get-contexts"*) printf 'kind-other\narn:aws:eks:us-west-2:123456789012:cluster/appmesh-gateway-demo\n' ;;
esac
exit 0
"""


@pytest.fixture
def sandbox(tmp_path):
    utils = tmp_path / "utils"
    utils.mkdir()
    for u in UTILS:
        found = shutil.which(u)
        if found:
            (utils / u).symlink_to(found)
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name in ("docker", "kind", "kubectl", "helm", "eksctl", "aws", "python"):
        p = stubs / name
        p.write_text(STUB.format(name=name))
        p.chmod(0o755)
    log = tmp_path / "log"
    log.touch()

    def run(script, *args, with_stubs=True, **env):
        path = f"{stubs}:{utils}" if with_stubs else str(utils)
        full = {"PATH": path, "STUB_LOG": str(log), "PYTHON": str(stubs / "python"), "HOME": str(tmp_path), **env}
        out = subprocess.run([shutil.which("bash"), str(ROOT / "scripts" / script), *args], capture_output=True,
                             text=True, env=full, cwd=ROOT, timeout=60)
        lines = [line.strip() for line in log.read_text().splitlines()]
        log.write_text("")
        return out, lines
    return run


def test_kind_up_creates_the_cluster_builds_loads_and_installs(sandbox):
    out, lines = sandbox("kind-up.sh")
    assert out.returncode == 0, out.stderr
    assert lines == [
        "docker info",
        "kind get clusters",
        "kind create cluster --name appmesh-gateway-demo --config manifests/kind/cluster.yaml --wait 120s",
        "kubectl config use-context kind-appmesh-gateway-demo",
        "docker info",
        "docker build -f lab/controller/Dockerfile -t appmesh-lab/controller:0.1.0 .",
        "docker build -f lab/controller/proxy_init/Dockerfile -t appmesh-lab/proxy-init:0.1.0 lab/controller/proxy_init",
        "docker build -f lab/apps/Dockerfile -t appmesh-lab/sample-app:0.1.0 .",
        "docker build -f lab/apps/grpc-echo.Dockerfile -t appmesh-lab/grpc-echo:0.1.0 .",
        "kind load docker-image appmesh-lab/controller:0.1.0 --name appmesh-gateway-demo",
        "kind load docker-image appmesh-lab/proxy-init:0.1.0 --name appmesh-gateway-demo",
        "kind load docker-image appmesh-lab/sample-app:0.1.0 --name appmesh-gateway-demo",
        "kind load docker-image appmesh-lab/grpc-echo:0.1.0 --name appmesh-gateway-demo",
        "helm upgrade --install appmesh-lab-controller manifests/charts/appmesh-lab-controller --namespace "
        "appmesh-system --create-namespace --wait --timeout 5m",
        "kubectl -n appmesh-system rollout status deployment/appmesh-lab-controller --timeout=180s",
    ]
    assert "+ kind create cluster" in out.stdout


def test_kind_up_reuses_an_existing_cluster(sandbox):
    out, lines = sandbox("kind-up.sh", STUB_KIND_CLUSTERS="appmesh-gateway-demo")
    assert out.returncode == 0 and not any(line.startswith("kind create") for line in lines)
    assert "reusing it" in out.stdout


def test_kind_down_deletes_the_cluster_and_the_images(sandbox):
    out, lines = sandbox("kind-down.sh", STUB_KIND_CLUSTERS="appmesh-gateway-demo")
    assert out.returncode == 0, out.stderr
    assert lines[:2] == ["kind get clusters", "kind delete cluster --name appmesh-gateway-demo"]
    assert [line for line in lines if line.startswith("docker image rm")] == [
        "docker image rm appmesh-lab/controller:0.1.0", "docker image rm appmesh-lab/proxy-init:0.1.0",
        "docker image rm appmesh-lab/sample-app:0.1.0", "docker image rm appmesh-lab/grpc-echo:0.1.0"]


@pytest.mark.parametrize("script,tools", [
    ("kind-up.sh", ["docker", "kind", "kubectl", "helm"]),
    ("eks-up.sh", ["eksctl", "aws", "kubectl", "helm", "docker"]),
    ("eks-down.sh", ["eksctl", "aws", "kubectl", "helm"]),
    ("kind-down.sh", ["kind", "docker"]),
])
def test_missing_prerequisites_are_named_with_how_to_install_them(sandbox, script, tools):
    out, lines = sandbox(script, with_stubs=False)
    assert out.returncode == 1 and lines == []
    for tool in tools:
        assert f"  {tool}: " in out.stderr, out.stderr
    assert "missing prerequisites" in out.stderr


def test_a_docker_that_does_not_answer_is_reported(sandbox):
    out, _ = sandbox("kind-up.sh", STUB_DOCKER_DOWN="1")
    assert out.returncode == 1 and "daemon does not answer" in out.stderr


def test_eks_up_creates_the_cluster_pushes_to_ecr_and_installs_with_those_images(sandbox):
    out, lines = sandbox("eks-up.sh")
    assert out.returncode == 0, out.stderr
    assert lines[:4] == ["aws sts get-caller-identity", "eksctl get cluster --name appmesh-gateway-demo --region us-west-2",
                         "eksctl create cluster -f manifests/eks/cluster.yaml",
                         "aws eks update-kubeconfig --name appmesh-gateway-demo --region us-west-2"]
    reg = "123456789012.dkr.ecr.us-west-2.amazonaws.com"
    assert "python -m lab.targets.cluster ecr-ensure --region us-west-2 appmesh-lab/controller appmesh-lab/proxy-init " \
           "appmesh-lab/sample-app appmesh-lab/grpc-echo" in lines
    assert "aws ecr get-login-password --region us-west-2" in lines
    assert f"docker login --username AWS --password-stdin {reg}" in lines
    assert f"docker push {reg}/appmesh-lab/sample-app:0.1.0" in lines
    helm = next(line for line in lines if line.startswith("helm upgrade"))
    assert f"--set images.controller.repository={reg}/appmesh-lab/controller" in helm
    assert f"--set images.proxyInit.repository={reg}/appmesh-lab/proxy-init" in helm
    assert "--set region=us-west-2" in helm
    assert lines.index(f"docker push {reg}/appmesh-lab/controller:0.1.0") < lines.index(helm)


def test_eks_up_with_another_name_and_region_edits_a_copy_of_the_config(sandbox):
    out, lines = sandbox("eks-up.sh", CLUSTER_NAME="lab2", REGION="eu-west-1")
    assert out.returncode == 0, out.stderr
    create = next(line for line in lines if line.startswith("eksctl create cluster"))
    assert "manifests/eks/cluster.yaml" not in create  # a temporary copy, not the file in the repo


def test_eks_down_removes_load_balancers_before_the_cluster_and_then_the_repositories(sandbox):
    out, lines = sandbox("eks-down.sh", STUB_EKS_EXISTS="0")
    assert out.returncode == 0, out.stderr
    order = [
        "aws eks update-kubeconfig --name appmesh-gateway-demo --region us-west-2",
        "kubectl delete service appmesh-gateway --namespace appmesh-demo --wait=true",
        "kubectl delete service gateway --namespace ex-canary --wait=true",
        "python -m lab.targets.cluster elb-wait-gone --cluster appmesh-gateway-demo --region us-west-2 --timeout 600",
        "helm uninstall appmesh-lab-controller --namespace appmesh-system --wait",
        "eksctl delete cluster --name appmesh-gateway-demo --region us-west-2 --wait",
        "kubectl config delete-context arn:aws:eks:us-west-2:123456789012:cluster/appmesh-gateway-demo",
        "kubectl config delete-cluster arn:aws:eks:us-west-2:123456789012:cluster/appmesh-gateway-demo",
        "kubectl config unset users.arn:aws:eks:us-west-2:123456789012:cluster/appmesh-gateway-demo",
        "python -m lab.targets.cluster ecr-delete --region us-west-2 appmesh-lab/controller appmesh-lab/proxy-init "
        "appmesh-lab/sample-app appmesh-lab/grpc-echo",
        "docker logout 123456789012.dkr.ecr.us-west-2.amazonaws.com",
    ]
    positions = [lines.index(line) for line in order]
    assert positions == sorted(positions), lines
    mesh = lines.index("kubectl delete meshes --all --wait=true --timeout=120s")
    assert positions[3] < mesh < positions[4]  # App Mesh resources go while the controller still runs
    assert not any("kind-other" in line for line in lines)  # other clusters' contexts stay


def test_eks_down_without_a_cluster_still_deletes_the_repositories(sandbox):
    out, lines = sandbox("eks-down.sh")
    assert out.returncode == 0
    assert not any(line.startswith(("eksctl delete", "kubectl delete")) for line in lines)
    assert lines[-3].startswith("python -m lab.targets.cluster ecr-delete")
    assert lines[-1] == "docker logout 123456789012.dkr.ecr.us-west-2.amazonaws.com"


def test_every_script_is_valid_bash_and_executable():
    for name in ("kind-up.sh", "kind-down.sh", "eks-up.sh", "eks-down.sh", "build-images.sh"):
        path = ROOT / "scripts" / name
        assert os.access(path, os.X_OK), f"chmod +x scripts/{name}"
        out = subprocess.run([shutil.which("bash"), "-n", str(path)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
