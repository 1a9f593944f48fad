"""The Helm chart manifests/charts/appmesh-lab-controller: `helm lint`, `helm template`, and the
rendered objects checked against the code that uses them, against the Kubernetes API types (the
`kubernetes` client's models, tests/controller/k8s_schema.py) and, for the CRDs, against the
kit's model (lab.model.crds)."""
from __future__ import annotations

import filecmp
import subprocess

import pytest
import yaml

from lab.controller.kube import PERMISSIONS
from lab.controller.main import OPTIONS
from tests.conftest import ROOT
from tests.controller import k8s_schema
from tests.controller.helmbin import WHY, find_helm

CHART = ROOT / "manifests" / "charts" / "appmesh-lab-controller"
HELM = find_helm()
needs_helm = pytest.mark.skipif(HELM is None, reason=WHY)


def helm(*args) -> str:
    out = subprocess.run([str(HELM), *args], capture_output=True, text=True, timeout=120,
                         env={"HOME": str(ROOT / ".venv" / ".cache"), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def render(*sets, crds: bool = False) -> list[dict]:
    args = ["template", "appmesh-lab-controller", str(CHART), "--namespace", "appmesh-system"]
    if crds:
        args.append("--include-crds")
    for s in sets:
        args += ["--set", s]
    return [d for d in yaml.safe_load_all(helm(*args)) if d]


def by_kind(docs) -> dict:
    out: dict = {}
    for d in docs:
        out.setdefault(d["kind"], []).append(d)
    return out


def test_the_chart_carries_exactly_the_generated_crds():
    ours = sorted(p.name for p in (CHART / "crds").glob("*.yaml"))
    generated = sorted(p.name for p in (ROOT / "manifests" / "crds").glob("*.yaml"))
    assert ours == generated and len(ours) == 6
    for name in ours:
        assert filecmp.cmp(CHART / "crds" / name, ROOT / "manifests" / "crds" / name, shallow=False), \
            f"{name} differs from manifests/crds/: copy it again (cp manifests/crds/*.yaml {CHART}/crds/)"


@needs_helm
def test_helm_lint_is_clean():
    out = helm("lint", str(CHART), "--strict")
    assert "1 chart(s) linted, 0 chart(s) failed" in out
    assert "[WARNING]" not in out and "[ERROR]" not in out


@needs_helm
def test_the_rendered_release_has_every_object_the_controller_needs():
    kinds = by_kind(render())
    assert {k: len(v) for k, v in kinds.items()} == {
        "ServiceAccount": 1, "ClusterRole": 1, "ClusterRoleBinding": 1, "Role": 1, "RoleBinding": 1,
        "Service": 2, "Deployment": 1, "MutatingWebhookConfiguration": 1, "ValidatingWebhookConfiguration": 1}


@needs_helm
def test_selectors_ports_and_names_are_consistent():
    k = by_kind(render())
    (deploy,) = k["Deployment"]
    pod_labels = deploy["spec"]["template"]["metadata"]["labels"]
    assert all(pod_labels.get(a) == b for a, b in deploy["spec"]["selector"]["matchLabels"].items())
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    port_names = {p["name"] for p in container["ports"]}
    services = {s["metadata"]["name"]: s for s in k["Service"]}
    assert set(services) == {"appmesh-lab-controller-xds", "appmesh-lab-controller-webhook"}
    for s in services.values():
        assert all(pod_labels.get(a) == b for a, b in s["spec"]["selector"].items())
        assert all(p["targetPort"] in port_names for p in s["spec"]["ports"])
    env = {e["name"]: e.get("value") for e in container["env"]}
    # what the controller reads is what the chart names
    assert env["APPMESH_LAB_XDS_SERVICE"] in services and env["APPMESH_LAB_WEBHOOK_SERVICE"] in services
    (hook_cfg,) = k["MutatingWebhookConfiguration"]
    assert env["APPMESH_LAB_WEBHOOK_CONFIG"] == hook_cfg["metadata"]["name"]
    assert env["APPMESH_LAB_WEBHOOK_CONFIG"] == k["ValidatingWebhookConfiguration"][0]["metadata"]["name"]
    hook = next(h for h in hook_cfg["webhooks"] if h["name"] == "sidecar-injector.appmesh-lab.k8s.aws")
    svc = hook["clientConfig"]["service"]
    assert svc["name"] == env["APPMESH_LAB_WEBHOOK_SERVICE"] and svc["namespace"] == "appmesh-system"
    assert svc["path"] == "/mutate-v1-pod"
    assert svc["port"] in [p["port"] for p in services[svc["name"]]["spec"]["ports"]]
    assert hook["rules"] == [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                              "resources": ["pods"], "scope": "Namespaced"}]
    assert hook["namespaceSelector"]["matchExpressions"] == [
        {"key": "appmesh.k8s.aws/sidecarInjectorWebhook", "operator": "In", "values": ["enabled", "disabled"]}]
    assert hook["failurePolicy"] == "Fail" and hook["sideEffects"] == "None"
    known = {env_name for _, env_name, _, _ in OPTIONS}
    assert set(env) - {"POD_NAME", "POD_NAMESPACE"} <= known
    assert "POD_NAMESPACE" in known and "POD_NAME" in known
    assert container["args"] == ["controller"]
    sc = deploy["spec"]["template"]["spec"]["securityContext"]
    assert sc["runAsNonRoot"] is True and container["securityContext"]["readOnlyRootFilesystem"] is True
    # the Role's resourceNames are the objects the controller uses
    role = k["Role"][0]
    named = {r["resources"][0]: r.get("resourceNames") for r in role["rules"] if r.get("resourceNames")}
    assert named == {"leases": [env["APPMESH_LAB_LEASE"]], "secrets": [env["APPMESH_LAB_WEBHOOK_SECRET"]]}


@needs_helm
def test_rbac_grants_exactly_what_the_controller_uses():
    k = by_kind(render())
    granted = set()
    for kind in ("ClusterRole", "Role"):
        scope = "cluster" if kind == "ClusterRole" else "namespace"
        for rule in k[kind][0]["rules"]:
            for g in rule["apiGroups"]:
                for r in rule["resources"]:
                    for v in rule["verbs"]:
                        granted.add((g, r, v, scope))
    used = {(g, r, v, scope) for g, resources, verbs, scope in PERMISSIONS for r in resources for v in verbs}
    assert granted == used
    assert not any(v in ("*", "delete", "deletecollection", "escalate", "bind", "impersonate") for _, _, v, _ in granted)
    hook_rule = next(r for r in k["ClusterRole"][0]["rules"] if "mutatingwebhookconfigurations" in r["resources"])
    assert hook_rule["resourceNames"] == ["appmesh-lab-controller"]
    assert "validatingwebhookconfigurations" in hook_rule["resources"]


@needs_helm
def test_values_set_images_replicas_failure_policy_and_resources():
    k = by_kind(render("images.controller.repository=123456789012.dkr.ecr.us-east-1.amazonaws.com/appmesh-lab/controller",
                       "images.proxyInit.repository=reg/proxy-init", "images.envoy.tag=v1.40.1", "replicas=2",
                       "webhook.failurePolicy=Ignore", "logLevel=debug", "resources.limits.memory=1Gi"))
    deploy = k["Deployment"][0]
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert container["image"] == "123456789012.dkr.ecr.us-east-1.amazonaws.com/appmesh-lab/controller:0.1.0"
    assert env["APPMESH_LAB_PROXY_INIT_IMAGE"] == "reg/proxy-init:0.1.0"
    assert env["APPMESH_LAB_ENVOY_IMAGE"] == "envoyproxy/envoy:v1.40.1"
    assert env["APPMESH_LAB_LOG_LEVEL"] == "debug"
    assert deploy["spec"]["replicas"] == 2
    assert container["resources"]["limits"]["memory"] == "1Gi"
    hooks = k["MutatingWebhookConfiguration"][0]["webhooks"] + k["ValidatingWebhookConfiguration"][0]["webhooks"]
    assert len(hooks) == 13 and {h["failurePolicy"] for h in hooks} == {"Ignore"}


def test_the_default_values_match_the_controllers_defaults():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    defaults = {env: default for _, env, default, _ in OPTIONS}
    assert values["ipFamily"] == defaults["APPMESH_LAB_IP_FAMILY"]
    assert f"{values['images']['envoy']['repository']}:{values['images']['envoy']['tag']}" == \
        defaults["APPMESH_LAB_ENVOY_IMAGE"]
    assert f"{values['images']['proxyInit']['repository']}:{values['images']['proxyInit']['tag']}" == \
        defaults["APPMESH_LAB_PROXY_INIT_IMAGE"]
    assert str(values["xds"]["port"]) == defaults["APPMESH_LAB_XDS_PORT"]
    assert str(values["webhook"]["port"]) == defaults["APPMESH_LAB_WEBHOOK_PORT"]
    assert values["webhook"]["failurePolicy"] in ("Fail", "Ignore")


VALUE_SETS = [
    (),
    ("replicas=3", "webhook.failurePolicy=Ignore", "images.controller.repository=123456789012.dkr.ecr.us-west-2"
     ".amazonaws.com/appmesh-lab/controller", "nodeSelector.kubernetes\\.io/os=linux",
     "tolerations[0].key=dedicated", "tolerations[0].operator=Exists", "tolerations[0].effect=NoSchedule"),
]


@needs_helm
@pytest.mark.parametrize("sets", VALUE_SETS, ids=["defaults", "eks-values"])
def test_every_rendered_object_is_a_valid_kubernetes_object(sets):
    docs = render(*sets, crds=True)
    assert len(docs) == 10 + 6  # the release (see the test above) and the six CRDs
    for d in docs:
        assert k8s_schema.problems(d) == [], f"{d['kind']} {d['metadata']['name']}"


def test_the_schema_check_catches_what_the_api_server_would_not_take():
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
              "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"spec": {"containers": [
                  {"name": "c", "image": "i", "ports": [{"containerPort": "80"}], "imagePullPolicy": "Sometimes",
                   "env": [{"name": "N", "value": 15010}], "resource": {}}]}}}}
    found = [p.replace("[", ".").replace("]", "") for p in k8s_schema.problems(deploy)]  # both checkers' paths
    c = "Deployment.spec.template.spec.containers.0"
    assert len(found) == 3, found  # imagePullPolicy is not an enum in the models
    assert any(p.startswith(f"{c}.ports.0.containerPort: ") for p in found)
    assert any(p.startswith(f"{c}.env.0.value: ") for p in found)
    assert any(p.startswith(f"{c}") and "resource" in p for p in found)
    deploy["spec"]["template"]["spec"]["containers"][0] = {"name": "c", "image": "i"}
    assert k8s_schema.problems(deploy) == []
    deploy["spec"].pop("selector")
    (missing,) = k8s_schema.problems(deploy)
    assert missing.startswith("Deployment.spec") and "selector" in missing
    assert k8s_schema.problems({"apiVersion": "v9", "kind": "Thing"}) == ["no model for apiVersion 'v9' kind 'Thing'"]


def _walk(obj) -> list[str]:
    out: list[str] = []
    k8s_schema._check(obj, k8s_schema.MODELS[(obj["apiVersion"], obj["kind"])], obj["kind"], out)
    return out


@needs_helm
def test_the_checker_for_older_clients_agrees():
    """kubernetes < 37 has plain model classes: k8s_schema walks the object with their
    attribute_map and openapi_types instead. Same verdicts on the chart and on a broken object."""
    for d in render(crds=True):
        assert _walk(d) == [], f"{d['kind']} {d['metadata']['name']}"
    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
           "spec": {"ports": [{"port": "80"}], "selectr": {"a": "b"}}}
    found = "\n".join(_walk(bad))
    assert "Service.spec.ports[0].port: expected int, got str '80'" in found
    assert "Service.spec: unknown field 'selectr'" in found


@needs_helm
def test_the_rendered_crds_are_the_kit_models():
    """The CRDs the chart installs are the ones lab.model generates (so the API server admits
    exactly what the validator accepts, and the controller reads)."""
    from lab.model.crds import all_crds
    rendered = {d["metadata"]["name"]: d for d in render(crds=True) if d["kind"] == "CustomResourceDefinition"}
    generated = {d["metadata"]["name"]: d for d in all_crds().values()}
    assert rendered.keys() == generated.keys() and len(rendered) == 6
    for name, doc in rendered.items():
        assert doc == generated[name], name
        (version,) = doc["spec"]["versions"]
        assert version["name"] == "v1beta2" and version["subresources"] == {"status": {}}


@needs_helm
def test_mutating_and_validating_webhooks_for_the_six_app_mesh_kinds_reach_the_controllers_handlers():
    """Upstream's paths, one webhook per kind in each configuration, CREATE and UPDATE of the
    kind's resource; every path is one the controller's webhook server answers."""
    from lab.controller.admission import mutate_path, route, validate_path
    from lab.controller.kube import APPMESH_KINDS, PLURALS
    k = by_kind(render())
    mutating = {h["name"]: h for h in k["MutatingWebhookConfiguration"][0]["webhooks"]}
    validating = {h["name"]: h for h in k["ValidatingWebhookConfiguration"][0]["webhooks"]}
    assert len(mutating) == 7 and len(validating) == 6
    for kind in APPMESH_KINDS:
        for hooks, prefix, path, action in ((mutating, "m", mutate_path(kind), "mutate"),
                                            (validating, "v", validate_path(kind), "validate")):
            hook = hooks[f"{prefix}{kind.lower()}.appmesh-lab.k8s.aws"]
            assert hook["clientConfig"]["service"] == {"name": "appmesh-lab-controller-webhook",
                                                       "namespace": "appmesh-system", "path": path, "port": 443}
            assert route(path) == (action, kind)
            assert hook["rules"] == [{"apiGroups": ["appmesh.k8s.aws"], "apiVersions": ["v1beta2"],
                                      "operations": ["CREATE", "UPDATE"], "resources": [PLURALS[kind]]}]
            assert hook["sideEffects"] == "None" and hook["admissionReviewVersions"] == ["v1"]
            assert hook["failurePolicy"] == "Fail" and "namespaceSelector" not in hook


@needs_helm
def test_a_new_content_tag_changes_the_pod_template_so_helm_upgrade_rolls_the_pods():
    """scripts/kind-up.sh and eks-up.sh install with the images' content tags
    (lab/targets/images.py): after a code change the Deployment's pod template differs, which
    is what makes Kubernetes replace the controller's pods (the same tag with
    imagePullPolicy IfNotPresent would keep the old image)."""
    def template(tag):
        (deploy,) = by_kind(render(f"images.controller.tag={tag}", f"images.proxyInit.tag={tag}"))["Deployment"]
        return deploy["spec"]["template"]
    old, new = template("0.1.0-aaaaaaaaaaaa"), template("0.1.0-bbbbbbbbbbbb")
    assert old != new
    container = new["spec"]["containers"][0]
    assert container["image"] == "appmesh-lab/controller:0.1.0-bbbbbbbbbbbb"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["APPMESH_LAB_PROXY_INIT_IMAGE"] == "appmesh-lab/proxy-init:0.1.0-bbbbbbbbbbbb"
