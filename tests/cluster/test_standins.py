"""The stand-in tools refuse what the real ones refuse: unknown verbs and flags, objects the
Kubernetes models or the CRDs do not allow, charts values that do not exist (so the lessons'
kind run proves something about the commands and manifests they send)."""
from __future__ import annotations

import pytest

from tests.cluster.standins import tools
from tests.cluster.standins.tools import Fail, check_object, parse


def test_unknown_flags_and_missing_values_are_the_real_tools_errors():
    with pytest.raises(Fail, match="unknown flag: --namespce"):
        parse(["--namespce", "x"], tools.GLOBAL, (0, 0), "kubectl get")
    with pytest.raises(Fail, match="flag needs an argument: -n"):
        parse(["-n"], tools.GLOBAL, (0, 0), "kubectl get")
    pos, opts = parse(["pods", "-n", "a", "--context=kind-x"], tools.GLOBAL, (1, 1), "kubectl get")
    assert pos == ["pods"] and opts == {"--namespace": ["a"], "--context": ["kind-x"]}
    with pytest.raises(Fail, match='unknown command "scale"'):
        tools.kubectl(["scale", "deploy/x"], None)
    with pytest.raises(Fail, match="does not exist"):
        tools.kubectl(["apply", "-f", "manifests/no-such-file.yaml"], None)


def test_kubernetes_objects_are_checked_against_the_client_models():
    good = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c"}]}}}}
    assert check_object(good, "d.yaml") == []
    bad = {**good, "spec": {**good["spec"], "replica": 2}}  # misspelt
    assert any("replica" in p for p in check_object(bad, "d.yaml")), check_object(bad, "d.yaml")
    assert "no matches for kind" in check_object({"apiVersion": "v9", "kind": "Widget", "metadata": {"name": "w"}},
                                                 "w.yaml")[0]


def test_app_mesh_objects_are_checked_against_the_crds_strictly():
    vn = {"apiVersion": "appmesh.k8s.aws/v1beta2", "kind": "VirtualNode", "metadata": {"name": "v", "namespace": "n"},
          "spec": {"podSelector": {"matchLabels": {"app": "v"}},
                   "listeners": [{"portMapping": {"port": 8080, "protocol": "http"}}],
                   "serviceDiscovery": {"dns": {"hostname": "v.n.svc.cluster.local"}}}}
    assert check_object(vn, "vn.yaml") == []
    v1beta1 = {**vn, "spec": {**vn["spec"], "meshName": "my-app-mesh"}}  # a v1beta1 field: strict validation refuses it
    problems = check_object(v1beta1, "vn.yaml")
    assert problems and 'The VirtualNode "v" is invalid' in problems[0] and "meshName" in problems[0], problems
    wrong_type = {**vn, "spec": {**vn["spec"], "listeners": [{"portMapping": {"port": "eighty", "protocol": "http"}}]}}
    assert any("listeners.0.portMapping.port" in p for p in check_object(wrong_type, "vn.yaml"))


def test_helm_refuses_a_chart_or_a_value_that_does_not_exist(monkeypatch):
    monkeypatch.setattr(tools, "call", lambda *a, **k: pytest.fail("nothing may be installed"))
    with pytest.raises(Fail, match='path "manifests/charts/nope" not found'):
        tools.helm(["upgrade", "--install", "r", "manifests/charts/nope", "-n", "x"], None)
    with pytest.raises(Fail, match="the chart has no value images.controlr.tag"):
        tools.helm(["upgrade", "--install", "r", "manifests/charts/appmesh-lab-controller",
                    "--set", "images.controlr.tag=1"], None)
    with pytest.raises(Fail, match="unknown flag: --atomic-ish"):
        tools.helm(["upgrade", "--install", "r", "manifests/charts/appmesh-lab-controller", "--atomic-ish"], None)


def test_kubectl_jsonpath_reads_the_api_servers_service_as_scripts_kind_up_does(monkeypatch):
    """scripts/kind-up.sh reads the cluster's IP family from default/kubernetes; the stand-in API
    answers as a single-stack IPv4 kind cluster, and a field that is not there prints nothing."""
    from tests.cluster.standins.apiserver import API_SERVER_SERVICE
    asked = []
    monkeypatch.setattr(tools, "call", lambda method, path, body=None: asked.append(path) or {
        "items": [API_SERVER_SERVICE]})
    get = ["get", "service", "kubernetes", "--namespace", "default", "-o"]
    assert tools.kubectl(get + ["jsonpath={.spec.ipFamilies[0]}"], None) == "IPv4"
    assert tools.kubectl(get + ["jsonpath={.metadata.labels.component}"], None) == "apiserver"
    assert tools.kubectl(get + ["jsonpath={.spec.ipFamilies[1]}"], None) == ""
    with pytest.raises(Fail, match="the stand-in takes -o jsonpath="):
        tools.kubectl(get + ["jsonpath={range .items[*]}{.metadata.name}{end}"], None)
    assert set(asked) == {"/api/v1/namespaces/default/services"}, asked


def test_rollout_restart_takes_kubectls_arguments_and_asks_the_api_to_restart(monkeypatch):
    asked = []
    monkeypatch.setattr(tools, "call", lambda method, path, body=None: asked.append((method, path, body)) or {})
    assert tools.kubectl(["-n", "appmesh-demo", "rollout", "restart", "deploy/product-service"], None) == \
        "deployment.apps/product-service restarted\n"
    assert tools.kubectl(["rollout", "restart", "deployment", "a", "b", "-n", "x"], None).count("restarted") == 2
    assert [b for _, _, b in asked] == [{"namespace": "appmesh-demo", "name": "product-service"},
                                        {"namespace": "x", "name": "a"}, {"namespace": "x", "name": "b"}]
    asked.clear()
    with pytest.raises(Fail, match="no need to specify a resource type"):
        tools.kubectl(["rollout", "restart", "deployment", "deploy/a"], None)
    with pytest.raises(Fail, match='restarting is not supported'):
        tools.kubectl(["rollout", "restart", "pod/a"], None)
    with pytest.raises(Fail, match="unknown flag: --force"):
        tools.kubectl(["rollout", "restart", "deploy/a", "--force"], None)
    with pytest.raises(Fail, match="expected 1-99 arguments"):
        tools.kubectl(["rollout", "restart"], None)
    assert not asked, "a refused restart restarts nothing"


DEPLOYMENT = """apiVersion: v1
kind: Namespace
metadata: {name: restart-me}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: restart-me}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: app
          image: appmesh-lab/sample-app:0.1.0
          ports: [{containerPort: 8080}]
"""


@pytest.mark.envoy
def test_a_rollout_restart_replaces_the_pods_of_the_deployment(tmp_path):
    """On a cluster a restart makes new pods (which read what the injector gives them again);
    the stand-in API asks the lab for the same: the template's restartedAt annotation changes,
    and the lab replaces the pods."""
    from tests.cluster.standins.apiserver import LabApi
    from tests.runtime.walkthrough import running_lab
    with running_lab(tmp_path / "lab") as t:
        t.apply_text(DEPLOYMENT)
        before = [p["name"] for p in t.pods("restart-me")]
        api = LabApi(tmp_path / "lab", "c")
        assert api.restart("restart-me", "web") == {"ref": "deployment.apps/web", "action": "restarted"}
        assert "not found" in api.restart("restart-me", "nope")["error"]

        def replaced():
            now = [p for p in t.pods("restart-me")]
            assert len(now) == 1 and now[0]["name"] not in before and now[0]["status"] == "Running", now
        t.eventually(replaced, 30, what="the restarted pod")
        template = t.get("Deployment", "web", "restart-me")[0]["spec"]["template"]
        assert "kubectl.kubernetes.io/restartedAt" in template["metadata"]["annotations"], template


def test_every_kubectl_verb_runs_in_one_function_without_shadowed_modules(monkeypatch):
    """kubectl's verbs share one function: a verb importing a module locally (`import re` in one
    branch) makes that name unbound in every other branch (the NodePort patch broke that way)."""
    asked = []
    monkeypatch.setattr(tools, "call", lambda method, path, body=None: asked.append(body) or {})
    out = tools.kubectl(["patch", "service", "appmesh-gateway", "-n", "appmesh-demo", "--type", "json", "-p",
                         '[{"op": "replace", "path": "/spec/ports/0/nodePort", "value": 30080}]'], None)
    assert out == "service/appmesh-gateway patched\n" and asked, (out, asked)
    monkeypatch.setattr(tools, "call", lambda *a, **k: {"spec": {"replicas": 1},
                                                         "status": {"readyReplicas": 1, "replicas": 1}})
    assert "successfully rolled out" in tools.kubectl(["rollout", "status", "deploy/x", "--timeout=5s"], None)
