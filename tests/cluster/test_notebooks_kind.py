"""The real lesson notebooks on TARGET=kind, end to end — against stand-ins: **a recording, not a cluster.**

`appmesh-lab e2e --target kind` (lab.e2e.run) runs with tests/cluster/standins first on PATH:
stand-in kubectl, helm, kind, eksctl and docker that check every argument and every manifest
they receive, and a stand-in Kubernetes API whose nodes and controller are a local lab (see
tests/cluster/standins/__init__.py for what stands in for what). The lessons' kind branches run
as written: scripts/kind-up.sh brings the "cluster" up, the target applies with kubectl, reads
through the `kubernetes` client, reaches the gateway where docker publishes kind's NodePort and
Envoy's admin through the API server's pod proxy. The run's report says it is a recording.
"""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.notebooks_kind

# Which lessons run (the README's test command: five; APPMESH_LAB_KIND_LESSONS=all every one) is
# said in tests/cluster/kind_lessons.py. They run in the background from the start of the session
# (tests/cluster/conftest.py: kind_lessons), and this test reads what that run wrote.


def test_the_lessons_hold_on_kind_against_the_stand_ins(kind_lessons):
    r = kind_lessons
    report = (r.directory / "report.html").read_text()
    assert "a recording, not a cluster" in report and "a recording, not a cluster" in (
        r.directory / "junit.xml").read_text()
    failed = r.failed
    assert not failed, "\n".join(r.lines) + "\n\n" + "\n\n".join(failed)
    calls = r.calls
    # every tool call was checked by a stand-in, none failed unexpectedly: the failures are the
    # ones the lessons provoke on purpose (rejected applies), each a kubectl apply
    unexpected = [c["line"] for c in calls if c["rc"] != 0 and c["argv"][:1] != ["apply"]]
    assert not unexpected, unexpected
    tools = {c["tool"] for c in calls}
    assert {"kubectl", "helm", "kind", "docker"} <= tools, tools
    # scripts/kind-up.sh ran: cluster, images built and loaded, the chart installed, the rollout waited for
    lines_run = [c["line"] for c in calls]
    assert any(x.startswith("kind create cluster --name appmesh-gateway-demo --config manifests/kind/cluster.yaml")
               for x in lines_run), lines_run[:20]
    assert any(x.startswith("docker build -f lab/controller/Dockerfile") for x in lines_run)
    assert any(x.startswith("helm upgrade --install appmesh-lab-controller manifests/charts/appmesh-lab-controller")
               for x in lines_run)
    # with the cluster's IP family, read from the API server's Service (IPv4: the stand-in's)
    assert ["get", "service", "kubernetes", "--namespace", "default", "-o", "jsonpath={.spec.ipFamilies[0]}"] in [
        c["argv"] for c in calls if c["tool"] == "kubectl"]
    assert any(x.startswith("helm upgrade --install") and "--set ipFamily=IPv4 " in x for x in lines_run)
    # lesson 02's upgrade gives the images' content tags kind-up.sh gave (read back from the release):
    # the controller keeps its image and does not roll to the chart's default tag
    upgrades = [c["argv"] for c in calls if c["tool"] == "helm" and c["argv"][:1] == ["upgrade"]]
    tags = [sorted(a for a in argv if a.startswith("images.") and ".tag=" in a) for argv in upgrades]
    assert len(upgrades) >= 2 and all(t == tags[0] for t in tags) and len(tags[0]) == 2, tags
