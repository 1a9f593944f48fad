"""What the kind and eks targets need on this machine (the up scripts check the same), where to
get each tool, and `missing_prerequisites(name)` / `check_prerequisites(name)`, which say what this
machine lacks (`appmesh-lab e2e` and the cluster doctor call them first)."""
from __future__ import annotations

import shutil
import subprocess

from .base import TargetError

PREREQUISITES = {"kind": ("docker", "kind", "kubectl", "helm"),
                 "eks": ("docker", "eksctl", "aws", "kubectl", "helm")}
INSTALL = {"docker": "https://docs.docker.com/engine/install/",
           "kind": "https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
           "kubectl": "https://kubernetes.io/docs/tasks/tools/",
           "helm": "https://helm.sh/docs/intro/install/",
           "eksctl": "https://eksctl.io/installation/",
           "aws": "https://aws.amazon.com/cli/"}

def missing_prerequisites(name: str, which=shutil.which, run=subprocess.run, credentials=None) -> list[str]:
    """What target `name` needs and this machine lacks, one phrase each (empty: nothing)."""
    missing = []
    for tool in PREREQUISITES[name]:
        if not which(tool):
            missing.append(f"{tool} is not installed ({INSTALL[tool]})")
        elif tool == "docker":
            try:
                answered = run(["docker", "info"], capture_output=True, timeout=30).returncode == 0
            except (OSError, subprocess.TimeoutExpired):
                answered = False
            if not answered:
                missing.append("docker is installed but its daemon does not answer (start Docker, or check "
                               "DOCKER_HOST)")
    if name == "eks":
        if credentials is None:
            import boto3
            credentials = boto3.Session().get_credentials
        if credentials() is None:
            missing.append("no AWS credentials are configured (aws configure, or AWS_PROFILE)")
    return missing


def check_prerequisites(name: str, **kw) -> None:
    """TargetError with one line naming everything missing for target `name`."""
    if name not in PREREQUISITES:
        raise TargetError(f"unknown cluster target {name!r}: choose kind or eks")
    missing = missing_prerequisites(name, **kw)
    if missing:
        raise TargetError(f"the {name} target cannot run on this machine: " + "; ".join(missing)
                          + ". See docs/clusters.md#prerequisites")
