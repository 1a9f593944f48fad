"""The images' build files, checked without a container engine: paths exist, stages and users are
as documented, the controller image's packages suffice, the proxy-init script makes the rules."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib

import pytest

from tests.conftest import ROOT

CONTROLLER = ROOT / "lab" / "controller" / "Dockerfile"
PROXY_INIT = ROOT / "lab" / "controller" / "proxy_init"
SAMPLE = ROOT / "lab" / "apps" / "Dockerfile"
GRPC_ECHO = ROOT / "lab" / "apps" / "grpc-echo.Dockerfile"


def instructions(path):
    lines, cur = [], ""
    for raw in path.read_text().splitlines():
        if raw.strip().startswith("#") or not raw.strip():
            continue
        cur += raw.rstrip("\\").strip() + " "
        if not raw.rstrip().endswith("\\"):
            lines.append(cur.strip())
            cur = ""
    return lines


def copies(path, context):
    """Source paths of COPY lines (not --from), relative to the build context."""
    out = []
    for line in instructions(path):
        if line.startswith("COPY ") and "--from" not in line:
            parts = line.split()[1:]
            out += [context / p for p in parts[:-1]]
    return out


@pytest.mark.parametrize("dockerfile,context", [(CONTROLLER, ROOT), (PROXY_INIT / "Dockerfile", PROXY_INIT),
                                                (SAMPLE, ROOT), (GRPC_ECHO, ROOT)])
def test_every_copied_path_exists_in_the_build_context(dockerfile, context):
    paths = copies(dockerfile, context)
    assert paths
    for p in paths:
        assert p.exists(), f"{dockerfile.relative_to(ROOT)}: COPY {p.relative_to(context)} is not in the context"


def test_the_controller_image_is_multi_stage_non_root_and_runs_the_controller():
    ins = instructions(CONTROLLER)
    froms = [i for i in ins if i.startswith("FROM ")]
    assert len(froms) == 2 and froms[0].endswith(" AS build")
    assert any(i.startswith("COPY --from=build") for i in ins)
    user = [i for i in ins if i.startswith("USER ")][-1]
    assert user.split()[1].split(":")[0] not in ("0", "root")
    assert 'ENTRYPOINT ["appmesh-lab"]' in ins and 'CMD ["controller"]' in ins
    assert any("--no-deps" in i for i in ins)  # only the controller's packages, not the notebook stack


@pytest.mark.parametrize("dockerfile", [CONTROLLER, SAMPLE, GRPC_ECHO], ids=["controller", "sample-app", "grpc-echo"])
def test_the_kits_images_are_multi_stage_slim_and_non_root(dockerfile):
    ins = instructions(dockerfile)
    froms = [i for i in ins if i.startswith("FROM ")]
    assert len(froms) == 2 and froms[0].endswith(" AS build"), froms
    assert froms[-1] == "FROM python:3.11-slim"  # the final stage: a slim base, with what the build stage made
    final = ins[ins.index(froms[-1]):]
    assert any(i.startswith("COPY --from=build") for i in final)
    assert not any(i.startswith("RUN") and "pip install" in i for i in final)  # no pip, no caches in the image
    users = [i for i in final if i.startswith("USER ")]
    uid = users[-1].split()[1].split(":")[0]
    assert uid.isdigit() and uid not in ("0", "1337"), users  # numeric (runAsNonRoot can check it); not Envoy's


@pytest.mark.parametrize("dockerfile", [SAMPLE, GRPC_ECHO], ids=["sample-app", "grpc-echo"])
def test_an_app_image_copies_every_module_its_app_imports(dockerfile):
    copied = {p.name for p in copies(dockerfile, ROOT)}
    for name in [n for n in copied if n.endswith(".py")]:
        text = (ROOT / "lab" / "apps" / name).read_text()
        for module in re.findall(r"^\s*from \.(\w+) import", text, flags=re.M):
            assert f"{module}.py" in copied, f"{dockerfile.name}: {name} imports .{module}, which is not copied"


def test_proxy_init_is_the_one_image_that_runs_as_root_and_says_why():
    """iptables needs root with NET_ADMIN: Kubernetes gives added capabilities to root processes
    only. It is a one-shot init container of a few MB (Alpine + iptables), so one stage suffices."""
    ins = instructions(PROXY_INIT / "Dockerfile")
    assert [i for i in ins if i.startswith("FROM ")] == ["FROM alpine:3.20"]
    assert not any(i.startswith("USER ") for i in ins)
    from lab.controller.inject import InjectConfig, proxy_init_container
    sc = proxy_init_container("8080", "", "", InjectConfig())["securityContext"]
    assert sc["capabilities"]["add"] == ["NET_ADMIN", "NET_RAW"] and sc["runAsUser"] == 0


def test_the_build_scripts_and_the_chart_name_the_same_images():
    build = (ROOT / "scripts" / "lib" / "images.sh").read_text()  # the list build-images.sh and kind-up.sh use
    for spec in ("appmesh-lab/controller:lab/controller/Dockerfile:.",
                 "appmesh-lab/proxy-init:lab/controller/proxy_init/Dockerfile:lab/controller/proxy_init",
                 "appmesh-lab/sample-app:lab/apps/Dockerfile:.",
                 "appmesh-lab/grpc-echo:lab/apps/grpc-echo.Dockerfile:."):
        assert spec in build
    from lab.apps import SAMPLE_IMAGE
    assert SAMPLE_IMAGE == "appmesh-lab/sample-app:0.1.0"
    values = (ROOT / "manifests" / "charts" / "appmesh-lab-controller" / "values.yaml").read_text()
    assert "repository: appmesh-lab/controller" in values and "repository: appmesh-lab/proxy-init" in values


def _norm(spec):
    return re.sub(r"\s+", "", spec).lower()


def test_the_controller_requirements_are_pyproject_dependencies():
    deps = {_norm(d) for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    reqs = [_norm(line) for line in (ROOT / "lab" / "controller" / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    assert reqs and set(reqs) <= deps, set(reqs) - deps


def test_the_controller_runs_with_only_its_requirements():
    """Import every module of the controller image with the notebook-side packages blocked."""
    blocked = ["boto3", "botocore", "sh", "papermill", "jupyterlab", "matplotlib", "moto"]
    code = ("import sys\n"
            f"for m in {blocked!r}: sys.modules[m] = None\n"
            "import lab.cli, lab.controller.main, lab.controller.reconcile, lab.controller.webhook, "
            "lab.controller.leader, lab.controller.cache, lab.controller.kube\n"
            "p = lab.cli.build_parser(); a = p.parse_args(['controller', '--namespace', 'x'])\n"
            "assert a.func.__name__ == 'cmd_controller' and a.namespace == 'x'\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr


def proxy_init(**env):
    full = {"PATH": os.environ["PATH"], "DRY_RUN": "1", **env}
    out = subprocess.run(["sh", str(PROXY_INIT / "proxy-init.sh")], capture_output=True, text=True, env=full,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    return [line for line in out.stdout.splitlines() if not line.startswith("proxy-init:")]


def test_proxy_init_redirects_app_ports_in_and_everything_else_out():
    rules = proxy_init(APPMESH_APP_PORTS="8080,9090", APPMESH_EGRESS_IGNORED_IP="169.254.169.254",
                       APPMESH_EGRESS_IGNORED_PORTS="22", APPMESH_IGNORE_UID="1337",
                       APPMESH_ENVOY_INGRESS_PORT="15000", APPMESH_ENVOY_EGRESS_PORT="15001")
    assert rules == [
        "iptables -t nat -N APPMESH_INGRESS",
        "iptables -t nat -N APPMESH_EGRESS",
        "iptables -t nat -A APPMESH_INGRESS -p tcp --dport 8080 -j REDIRECT --to-port 15000",
        "iptables -t nat -A APPMESH_INGRESS -p tcp --dport 9090 -j REDIRECT --to-port 15000",
        "iptables -t nat -A PREROUTING -p tcp -m addrtype ! --src-type LOCAL -j APPMESH_INGRESS",
        "iptables -t nat -A APPMESH_EGRESS -m owner --uid-owner 1337 -j RETURN",
        "iptables -t nat -A APPMESH_EGRESS -p tcp -m multiport --dports 22 -j RETURN",
        "iptables -t nat -A APPMESH_EGRESS -p tcp -d 169.254.169.254 -j RETURN",
        "iptables -t nat -A APPMESH_EGRESS -p tcp -j REDIRECT --to-port 15001",
        "iptables -t nat -A OUTPUT -p tcp -m addrtype ! --dst-type LOCAL -j APPMESH_EGRESS",
    ]


def test_proxy_init_with_ipv6_and_no_app_ports():
    rules = proxy_init(APPMESH_APP_PORTS="", APPMESH_EGRESS_IGNORED_IP="169.254.169.254,fd00:ec2::254",
                       APPMESH_EGRESS_IGNORED_PORTS="", APPMESH_ENABLE_IPV6="1")
    assert not any("--dport " in r for r in rules)  # a client-only node: nothing inbound is redirected
    assert "iptables -t nat -A APPMESH_EGRESS -p tcp -d 169.254.169.254 -j RETURN" in rules
    assert "ip6tables -t nat -A APPMESH_EGRESS -p tcp -d fd00:ec2::254 -j RETURN" in rules
    assert not any(r.startswith("ip6tables") and "169.254" in r for r in rules)
    assert not any("multiport" in r for r in rules)


def test_proxy_init_writes_the_ipv6_rules_unless_the_kernel_has_no_ipv6(tmp_path):
    common = dict(APPMESH_APP_PORTS="8080", APPMESH_EGRESS_IGNORED_IP="", APPMESH_EGRESS_IGNORED_PORTS="22",
                  APPMESH_ENABLE_IPV6="1")
    present = tmp_path / "if_inet6"
    present.write_text("")
    rules = proxy_init(IPV6_PROC=str(present), **common)
    v4 = [r for r in rules if r.startswith("iptables ")]
    assert [r.replace("ip6tables ", "iptables ", 1) for r in rules if r.startswith("ip6tables ")] == v4
    assert "ip6tables -t nat -A PREROUTING -p tcp -m addrtype ! --src-type LOCAL -j APPMESH_INGRESS" in rules
    out = subprocess.run(["sh", str(PROXY_INIT / "proxy-init.sh")], capture_output=True, text=True, timeout=30,
                         env={"PATH": os.environ["PATH"], "DRY_RUN": "1", "IPV6_PROC": str(tmp_path / "absent"),
                              **common})
    assert out.returncode == 0, out.stderr
    assert not any(r.startswith("ip6tables") for r in out.stdout.splitlines())
    assert "this kernel has no IPv6" in out.stdout


def test_proxy_init_does_nothing_when_not_enabled():
    out = subprocess.run(["sh", str(PROXY_INIT / "proxy-init.sh")], capture_output=True, text=True,
                         env={"PATH": os.environ["PATH"], "APPMESH_START_ENABLED": "0"}, timeout=30)
    assert out.returncode == 0 and "leaving the pod's traffic alone" in out.stdout
