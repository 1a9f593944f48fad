"""Bringing a target to the state a lesson starts from, and the cluster steps (Helm, commands) a lesson shows."""
from __future__ import annotations

import inspect
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from .common import CONTROLLER_HELM, GATEWAY, MESH, NotebookError, ROOT, STAGE_FILES, tidy


# ---- setup ------------------------------------------------------------------------------

def _stage(stage) -> str:
    s = str(stage).zfill(2)
    if not re.fullmatch(r"\d\d", s) or not 0 <= int(s) <= 14:
        raise NotebookError(f"stage {stage!r} is not a notebook number: use 00 to 14")
    return min(s, "06")  # notebooks 07-13 start from the state notebook 06 leaves


def walkthrough_files(upto: str = "06") -> list[str]:
    """The walkthrough manifests applied by the end of stage `upto`, relative to the checkout."""
    return [f"manifests/walkthrough/{f}" for s, files in STAGE_FILES.items() if s <= upto for f in files]


def make_target(target: str = "local", *, lab_home=None, echo: bool = True, **options):
    """The target object, with only the options its constructor takes."""
    from ..targets import get_target
    if target == "local":
        return get_target("local", home=str(lab_home) if lab_home else None, echo=echo)
    if target not in ("kind", "eks"):
        raise NotebookError(f"unknown TARGET {target!r}: choose local, kind or eks")
    try:
        from ..targets.cluster import ClusterTarget
    except ImportError as exc:
        raise NotebookError(f"the {target} driver is not available in this checkout (lab/targets/cluster.py): {exc}. "
                            "Run the notebooks with TARGET='local'") from exc
    accepted = inspect.signature(ClusterTarget.__init__).parameters
    opts = {k: v for k, v in dict(options, echo=echo).items()
            if k in accepted or any(p.kind == p.VAR_KEYWORD for p in accepted.values())}
    return ClusterTarget(target, **opts)


def setup(target: str = "local", stage="05", *, namespace: str = "appmesh-demo",
          cluster_name: str = "appmesh-gateway-demo", region: str = "us-west-2", lab_home=None,
          timeout_s: float = 30, echo: bool = True, **params):
    """Bring `target` to the state the notebooks up to `stage` leave, and return it.

    Idempotent: it re-applies what the earlier notebooks apply (an unchanged manifest is a
    no-op), so it also repairs what a lesson changed on purpose. It does not remove what later
    notebooks add. `lab_home` (local target) also becomes $APPMESH_LAB_HOME for this kernel, so
    `appmesh-lab` commands run from the notebook talk to the same lab."""
    s = _stage(stage)
    if lab_home:
        os.environ["APPMESH_LAB_HOME"] = str(Path(lab_home).expanduser().resolve())
    t = make_target(target, lab_home=lab_home, echo=echo, cluster_name=cluster_name, region=region,
                    namespace=namespace, **params)
    if s == "00":
        print(f"Using the {t.name} target.")
        return t
    print(f"Bringing the {t.name} target to the state notebook {s} leaves (safe to repeat):")
    t.up()
    if s >= "02" and t.name != "local":
        install_controller(t)
    if s >= "03":
        for path in walkthrough_files(s):
            t.apply(path, wait=False) if _takes(t.apply, "wait") else t.apply(path)
        if hasattr(t, "converge"):
            t.converge(timeout_s)
        t.wait_active("Mesh", MESH, timeout=timeout_s)
        for kind, name in (("VirtualNode", "product-service-vn"), ("VirtualNode", "review-service-vn"),
                           ("VirtualService", "product-service"), ("VirtualService", "review-service")):
            t.wait_active(kind, name, namespace, timeout=timeout_s)
    if s >= "04":
        wait_pods(t, namespace, ["product-service", "review-service"], timeout_s)
    if s >= "05":
        t.wait_active("VirtualGateway", GATEWAY, namespace, timeout=timeout_s)
        wait_pods(t, namespace, [GATEWAY], timeout_s)
    if s >= "06":
        for name in ("product-gateway-route", "review-gateway-route"):
            t.wait_active("GatewayRoute", name, namespace, timeout=timeout_s)

        def routed():
            for path in ("/products", "/reviews"):
                r = t.curl(path, quiet=True) if _takes(t.curl, "quiet") else t.curl(path)
                assert r.status == 200, f"{path}: {r.status}"
        t.eventually(routed, timeout_s, what="/products and /reviews answering through the gateway")
    print("Ready.")
    return t


def _takes(fn, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def wait_pods(t, namespace: str, owners: list[str], timeout_s: float = 30) -> list:
    """Wait until every pod of the named Deployments is Running with all its containers ready."""
    def check():
        pods = [p for p in t.pods(namespace) if p.get("owner") in owners or
                any(p["name"].startswith(o + "-") for o in owners)]
        missing = [o for o in owners if not any(p.get("owner") == o or p["name"].startswith(o + "-") for p in pods)]
        assert not missing, f"no pods yet for {', '.join(missing)}"
        bad = [f"{p['name']} {p['ready']} {p['status']}" for p in pods
               if p["status"] != "Running" or p["ready"].split("/")[0] != p["ready"].split("/")[1]]
        assert not bad, "not ready: " + ", ".join(bad)
        return pods
    return t.eventually(check, timeout_s, what=f"pods of {', '.join(owners)} running")


def install_controller(t) -> None:
    """Clusters: install the kit's control plane with Helm (in place of the discontinued
    AWS controller). Uses the target's own installer when it has one."""
    if hasattr(t, "install_controller"):
        t.install_controller()
    else:
        cluster_step(t, CONTROLLER_HELM)


CHART = "manifests/charts/appmesh-lab-controller"


def helm(*args: str, show: bool = True) -> subprocess.CompletedProcess | None:
    """Run `helm ARGS` in the checkout (the helm lab.helmbin finds) and print the command and
    its output (with show=False only how long it is: a rendered chart is thousands of lines).
    None, with the reason printed, when there is no helm here."""
    from ..helmbin import WHY, find_helm
    binary = find_helm()
    command("helm " + " ".join(shlex.quote(a) for a in args))
    if binary is None:
        print(f"(not run: {WHY})")
        return None
    proc = subprocess.run([str(binary), *args], cwd=ROOT, text=True, capture_output=True)
    out = (proc.stdout + proc.stderr).rstrip("\n").splitlines()
    if not show:
        print(f"  (exit code {proc.returncode}; what it printed is read below)")
    elif out:
        print(tidy("\n".join(out)))
    return proc


def command(text: str) -> None:
    """Show a command a user would type (not run here)."""
    print("$ " + tidy(text.strip()).replace("\n", "\n  "))


def cluster_step(t, cmd, note: str = ""):
    """Show a cluster-only command and, on kind/eks, run it (through the target's `run` when
    it has one). On the local target it is only shown: the lab does that step itself."""
    text = cmd if isinstance(cmd, str) else shlex.join(cmd)
    argv = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
    if t.name != "local" and hasattr(t, "run"):
        return t.run(argv)   # the target prints the command and its output
    command(text)
    if t.name == "local":
        if note:
            print(f"  (local target: {note})")
        return None
    proc = subprocess.run(argv, cwd=ROOT, text=True, capture_output=True)
    sys.stdout.write(proc.stdout)
    if proc.returncode != 0:
        raise NotebookError(f"`{text}` failed with exit code {proc.returncode}:\n{proc.stderr.strip()[-2000:]}")
    return proc


