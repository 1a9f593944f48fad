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
CT = "0.1.0-0123456789ab"  # the content tag the stub python answers
STUB = """#!/bin/sh
echo "{name} $*" >> "$STUB_LOG"
case "{name} $*" in
  "kind get clusters"*) [ -n "$STUB_KIND_CLUSTERS" ] && echo "$STUB_KIND_CLUSTERS"; exit 0 ;;
  "docker info"*) [ "$STUB_DOCKER_DOWN" = 1 ] && exit 1; exit 0 ;;
  "docker image inspect"*) exit 0 ;;
  "docker image ls"*) for r in "$@"; do :; done; printf '%s:0.1.0\n%s:0.1.0-0123456789ab\nother/%s:0.1.0\n' "$r" "$r" "$r" ;;
  "kind load docker-image"*) [ "$STUB_KIND_LOAD_FAILS" = 1 ] && {{ echo "ctr: content digest sha256:1: not found" >&2; exit 1; }}; exit 0 ;;
  "python -m lab.targets.images tag"*) echo "0.1.0-0123456789ab" ;;
  "python -m lab.targets.images platform"*) echo "linux/amd64" ;;
  "docker login"*) cat >/dev/null ;;
  "eksctl get cluster"*) exit "${{STUB_EKS_EXISTS:-1}}" ;;
  "aws eks describe-cluster"*) echo "${{STUB_EKS_IP_FAMILY:-ipv4}}" ;;
  "kubectl get service kubernetes"*) printf "%s" "${{STUB_KIND_IP_FAMILY-IPv4}}" ;;
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


DOCKERFILES = [("lab/controller/Dockerfile", "."), ("lab/controller/proxy_init/Dockerfile", "lab/controller/proxy_init"),
               ("lab/apps/Dockerfile", "."), ("lab/apps/grpc-echo.Dockerfile", ".")]


def test_kind_up_creates_the_cluster_builds_loads_and_installs(sandbox):
    out, lines = sandbox("kind-up.sh")
    assert out.returncode == 0, out.stderr
    assert lines == [
        "docker info",
        "kind get clusters",
        "kind create cluster --name appmesh-gateway-demo --config manifests/kind/cluster.yaml --wait 120s",
        "kubectl config use-context kind-appmesh-gateway-demo",
        "kubectl get service kubernetes --namespace default -o jsonpath={.spec.ipFamilies[0]}",
        "docker info",
        *[line for (d, c), name in zip(DOCKERFILES, ("controller", "proxy-init", "sample-app", "grpc-echo"))
          for line in (f"python -m lab.targets.images tag --dockerfile {d} --context {c} --version 0.1.0 --platform",
                       f"docker build -f {d} -t appmesh-lab/{name}:0.1.0 -t appmesh-lab/{name}:{CT} {c}")],
        f"kind load docker-image appmesh-lab/controller:0.1.0 appmesh-lab/controller:{CT} --name appmesh-gateway-demo",
        f"kind load docker-image appmesh-lab/proxy-init:0.1.0 appmesh-lab/proxy-init:{CT} --name appmesh-gateway-demo",
        f"kind load docker-image appmesh-lab/sample-app:0.1.0 appmesh-lab/sample-app:{CT} --name appmesh-gateway-demo",
        f"kind load docker-image appmesh-lab/grpc-echo:0.1.0 appmesh-lab/grpc-echo:{CT} --name appmesh-gateway-demo",
        "python -m lab.targets.images tag --dockerfile lab/controller/Dockerfile --context . --version 0.1.0 --platform",
        "python -m lab.targets.images tag --dockerfile lab/controller/proxy_init/Dockerfile --context "
        "lab/controller/proxy_init --version 0.1.0 --platform",
        "helm upgrade --install appmesh-lab-controller manifests/charts/appmesh-lab-controller --namespace "
        f"appmesh-system --create-namespace --set images.controller.tag={CT} --set images.proxyInit.tag={CT} "
        "--set ipFamily=IPv4 --wait --timeout 5m",
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
    # the version tag and the content tags build-images.sh gave, and nothing of another repository
    assert [line for line in lines if line.startswith("docker image rm")] == [
        f"docker image rm appmesh-lab/{n}:{t}" for n in ("controller", "proxy-init", "sample-app", "grpc-echo")
        for t in ("0.1.0", CT)]


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
    assert f"docker push {reg}/appmesh-lab/controller:{CT}" in lines
    # built for the nodes (m5.large: linux/amd64), whatever this machine is
    assert "python -m lab.targets.images platform --eks-config manifests/eks/cluster.yaml" in lines
    assert f"docker buildx build --platform linux/amd64 --load -f lab/controller/Dockerfile -t " \
           f"appmesh-lab/controller:0.1.0 -t appmesh-lab/controller:{CT} ." in lines
    assert not any(line.startswith("docker build ") for line in lines)
    assert "python -m lab.targets.images tag --dockerfile lab/controller/Dockerfile --context . --version 0.1.0 " \
           "--platform linux/amd64" in lines
    helm = next(line for line in lines if line.startswith("helm upgrade"))
    assert f"--set images.controller.repository={reg}/appmesh-lab/controller --set images.controller.tag={CT}" in helm
    assert f"--set images.proxyInit.repository={reg}/appmesh-lab/proxy-init --set images.proxyInit.tag={CT}" in helm
    assert "--set region=us-west-2 --set ipFamily=IPv4" in helm
    assert lines.index(f"docker push {reg}/appmesh-lab/controller:0.1.0") < lines.index(helm)


@pytest.mark.parametrize("script,env,asked", [
    ("eks-up.sh", {"STUB_EKS_IP_FAMILY": "ipv6"}, "aws eks describe-cluster --name appmesh-gateway-demo --region "
     "us-west-2 --query cluster.kubernetesNetworkConfig.ipFamily --output text"),
    ("kind-up.sh", {"STUB_KIND_IP_FAMILY": "IPv6"},
     "kubectl get service kubernetes --namespace default -o jsonpath={.spec.ipFamilies[0]}"),
])
def test_an_ipv6_cluster_installs_the_chart_with_ipfamily_ipv6(sandbox, script, env, asked):
    """The chart's ipFamily is the cluster's, read back from it (a reused cluster too): the Mesh
    webhook sets meshServiceDiscovery.ipPreference IPv6_ONLY from it on an IPv6 cluster."""
    out, lines = sandbox(script, **env)
    assert out.returncode == 0, out.stderr
    helm = next(line for line in lines if line.startswith("helm upgrade"))
    assert "--set ipFamily=IPv6 " in helm and "ipFamily=IPv4" not in helm, helm
    assert lines.index(asked) < lines.index(helm)


@pytest.mark.parametrize("script,env", [("eks-up.sh", {"STUB_EKS_IP_FAMILY": "None"}),
                                        ("kind-up.sh", {"STUB_KIND_IP_FAMILY": ""})])
def test_an_ip_family_the_chart_does_not_know_stops_before_the_install(sandbox, script, env):
    out, lines = sandbox(script, **env)
    assert out.returncode == 1 and not any(line.startswith(("helm", "docker build", "docker buildx")) for line in lines)
    assert "answered IP family " in out.stderr and "expected ipv4 or ipv6" in out.stderr, out.stderr


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


def test_eks_images_follow_a_platform_override(sandbox):
    out, lines = sandbox("build-images.sh", "--ecr", "us-west-2", PLATFORM="linux/arm64")
    assert out.returncode == 0, out.stderr
    assert not any("lab.targets.images platform" in line for line in lines)
    builds = [line for line in lines if line.startswith("docker buildx build")]
    assert len(builds) == 4 and all("--platform linux/arm64 --load" in b for b in builds)


def test_kind_load_falls_back_to_an_archive_under_dockers_containerd_image_store(sandbox):
    """kind issue #3795: with Docker's containerd image store `kind load docker-image` fails;
    `docker save` + `kind load image-archive` works either way."""
    out, lines = sandbox("build-images.sh", "--kind", "appmesh-gateway-demo", STUB_KIND_LOAD_FAILS="1")
    assert out.returncode == 0, out.stderr
    saves = [line for line in lines if line.startswith("docker save -o ")]
    archives = [line for line in lines if line.startswith("kind load image-archive ")]
    assert len(saves) == len(archives) == 4
    assert saves[0].endswith(f"appmesh-lab/controller:0.1.0 appmesh-lab/controller:{CT}")
    archive = saves[0].split()[3]
    assert archives[0] == f"kind load image-archive {archive} --name appmesh-gateway-demo"
    assert lines.index(saves[0]) < lines.index(archives[0])


def test_the_content_tags_are_the_real_hashes_of_what_the_images_copy(sandbox):
    """With the real Python: build-images.sh and kind-up.sh tag and install what
    lab.targets.images computes for the checked-out files."""
    import sys
    from pathlib import Path

    from lab.targets.images import content_tag
    want = {name: content_tag(ROOT / d, ROOT / c, "0.1.0") for name, (d, c) in zip(
        ("controller", "proxy-init", "sample-app", "grpc-echo"), DOCKERFILES)}
    out, lines = sandbox("kind-up.sh", PYTHON=sys.executable)
    assert out.returncode == 0, out.stderr
    for name, tag in want.items():
        assert any(f"-t appmesh-lab/{name}:{tag} " in line for line in lines if line.startswith("docker build")), name
    helm = next(line for line in lines if line.startswith("helm upgrade"))
    assert f"--set images.controller.tag={want['controller']} --set images.proxyInit.tag={want['proxy-init']}" in helm
    assert Path(sys.executable).exists()
