"""The App Mesh kinds' admission webhooks (lab.controller.admission) on AdmissionReviews in the
shape the API server sends them (built from the recorded walkthrough objects): the mutating one
designates meshRef / virtualGatewayRef and defaults awsName as upstream's webhooks do; the
validating one refuses what the local lab's apply refuses, with the local lab's findings."""
from __future__ import annotations

import base64
import copy
import json
import ssl
import urllib.request

import pytest
import yaml

from lab.controller import admission
from lab.controller.inject import InjectConfig
from lab.controller.webhook import WebhookServer, dns_names, make_certificate
from lab.files import read_texts
from lab.model import validate_texts
from lab.model.problems import from_denial
from tests.conftest import ROOT
from tests.controller.apiserver import _json_patch

SIX = ("Mesh", "VirtualNode", "VirtualService", "VirtualRouter", "VirtualGateway", "GatewayRoute")


def review(obj: dict, operation: str = "CREATE", old: dict | None = None, version: str = "v1") -> dict:
    """An AdmissionReview as the API server sends it for `kubectl apply` of obj."""
    obj = copy.deepcopy(obj)
    meta = obj["metadata"]
    for k in ("resourceVersion", "generation") if operation == "CREATE" else ():
        meta.pop(k, None)
    meta.setdefault("annotations", {})["kubectl.kubernetes.io/last-applied-configuration"] = json.dumps(
        {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": {"name": meta["name"]}, "spec": obj["spec"]})
    meta["managedFields"] = [{"apiVersion": obj["apiVersion"], "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}},
                              "manager": "kubectl-client-side-apply", "operation": "Update"}]
    plural = {"Mesh": "meshes"}.get(obj["kind"], obj["kind"].lower() + "s")
    gvk = {"group": "appmesh.k8s.aws", "version": "v1beta2", "kind": obj["kind"]}
    gvr = {"group": "appmesh.k8s.aws", "version": "v1beta2", "resource": plural}
    return {"apiVersion": f"admission.k8s.io/{version}", "kind": "AdmissionReview", "request": {
        "uid": "0a1b2c3d-0000-4000-8000-00000000abcd", "kind": gvk, "resource": gvr, "requestKind": gvk,
        "requestResource": gvr, "name": meta["name"], **({"namespace": meta["namespace"]} if meta.get("namespace") else {}),
        "operation": operation, "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters"]},
        "object": obj, "oldObject": old, "dryRun": False,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions" if operation == "CREATE" else "UpdateOptions",
                    "fieldManager": "kubectl-client-side-apply"}}}


def answer(body: dict, action: str, kind: str, objects: dict) -> dict:
    out = admission.review(body, (admission.mutate_path if action == "mutate" else admission.validate_path)(kind),
                           lambda: objects)
    assert out["kind"] == "AdmissionReview" and out["apiVersion"] == body["apiVersion"]
    assert out["response"]["uid"] == body["request"]["uid"]
    return out["response"]


def patched(body: dict, resp: dict) -> dict:
    obj = body["request"]["object"]
    if not resp.get("patch"):
        return obj
    assert resp["patchType"] == "JSONPatch"
    return _json_patch(obj, json.loads(base64.b64decode(resp["patch"])))


def without(objects: dict, kind: str, name: str) -> dict:
    """The cluster before `name` was created."""
    out = copy.deepcopy(objects)
    out[kind] = [o for o in out.get(kind, []) if o["metadata"]["name"] != name]
    return out


def uid(objects, kind, name):
    return next(o["metadata"]["uid"] for o in objects[kind] if o["metadata"]["name"] == name)


def test_a_gateway_route_gets_its_mesh_its_gateway_and_its_aws_name(walkthrough):
    gr = walkthrough["GatewayRoute"][0]
    cluster = without(walkthrough, "GatewayRoute", gr["metadata"]["name"])
    body = review(gr)
    resp = answer(body, "mutate", "GatewayRoute", cluster)
    assert resp["allowed"], resp
    spec = patched(body, resp)["spec"]
    assert spec["meshRef"] == {"name": "my-app-mesh", "uid": uid(walkthrough, "Mesh", "my-app-mesh")}
    assert spec["virtualGatewayRef"] == {"name": "appmesh-gateway", "namespace": "appmesh-demo",
                                         "uid": uid(walkthrough, "VirtualGateway", "appmesh-gateway")}
    assert spec["awsName"] == "product-gateway-route_appmesh-demo"
    # the object as stored (refs filled in) passes the validating webhook
    assert answer(review(patched(body, resp)), "validate", "GatewayRoute", cluster) == {
        "uid": body["request"]["uid"], "allowed": True}


@pytest.mark.parametrize("kind", SIX)
def test_every_kind_is_defaulted_as_upstream_does(walkthrough, kind):
    objects = copy.deepcopy(walkthrough)
    objects.setdefault("VirtualRouter", []).append({
        "apiVersion": "appmesh.k8s.aws/v1beta2", "kind": "VirtualRouter",
        "metadata": {"name": "product-router", "namespace": "appmesh-demo", "uid": "5e0c0000-0000-4000-8000-000000000001"},
        "spec": {"listeners": [{"portMapping": {"port": 8080, "protocol": "http"}}], "routes": [
            {"name": "all", "httpRoute": {"match": {"prefix": "/"}, "action": {"weightedTargets": [
                {"virtualNodeRef": {"name": "product-service-vn"}, "weight": 1}]}}}]}})
    obj = copy.deepcopy(objects[kind][0])
    obj["spec"].pop("awsName", None)  # the walkthrough names its virtual services' App Mesh names itself
    name, ns = obj["metadata"]["name"], obj["metadata"].get("namespace")
    body = review(obj)
    resp = answer(body, "mutate", kind, without(objects, kind, name))
    assert resp["allowed"], resp
    spec = patched(body, resp)["spec"]
    assert spec["awsName"] == {"Mesh": name, "VirtualService": f"{name}.{ns}"}.get(kind, f"{name}_{ns}")
    if kind == "Mesh":
        assert "meshRef" not in spec
    else:
        assert spec["meshRef"] == {"name": "my-app-mesh", "uid": uid(walkthrough, "Mesh", "my-app-mesh")}
    assert ("virtualGatewayRef" in spec) == (kind == "GatewayRoute")
    # an awsName given is kept
    given = copy.deepcopy(obj)
    given["spec"]["awsName"] = "chosen"
    body = review(given)
    assert patched(body, answer(body, "mutate", kind, without(objects, kind, name)))["spec"]["awsName"] == "chosen"


@pytest.mark.parametrize("kind, field", [("VirtualNode", "meshRef"), ("GatewayRoute", "virtualGatewayRef")])
def test_a_create_that_sets_a_read_only_reference_is_refused(walkthrough, kind, field):
    obj = copy.deepcopy(walkthrough[kind][0])
    obj["spec"][field] = {"name": "somewhere", "uid": "1"}
    resp = answer(review(obj), "mutate", kind, without(walkthrough, kind, obj["metadata"]["name"]))
    assert resp["allowed"] is False and resp["status"]["code"] == 403
    msg = resp["status"]["message"]
    assert f"{kind} create may not specify read-only field: spec.{field}" in msg and f"remove {field}" in msg


def test_an_update_is_not_mutated_and_may_not_change_the_immutable_fields(walkthrough):
    vn = copy.deepcopy(walkthrough["VirtualNode"][0])
    vn["spec"]["awsName"] = "product-service-vn_appmesh-demo"
    vn["spec"]["meshRef"] = {"name": "my-app-mesh", "uid": uid(walkthrough, "Mesh", "my-app-mesh")}
    new = copy.deepcopy(vn)
    new["spec"]["listeners"][0]["portMapping"]["port"] = 8081
    body = review(new, "UPDATE", old=vn)
    assert "patch" not in answer(body, "mutate", "VirtualNode", walkthrough)
    assert answer(body, "validate", "VirtualNode", walkthrough)["allowed"]
    renamed = copy.deepcopy(new)
    renamed["spec"]["awsName"] = "other"
    resp = answer(review(renamed, "UPDATE", old=vn), "validate", "VirtualNode", walkthrough)
    assert resp["allowed"] is False
    assert resp["status"]["message"].startswith("VirtualNode update may not change these fields: spec.awsName")


LOCAL_REJECTS = {
    # a schema finding (the blog posts' v1beta1 shape)
    "bad-prefix": ("GatewayRoute", """
apiVersion: appmesh.k8s.aws/v1beta2
kind: GatewayRoute
metadata: {name: bad-prefix, namespace: appmesh-demo}
spec:
  httpRoute:
    match: {prefix: products}
    action: {target: {virtualService: {virtualServiceRef: {name: product-service}}}}
"""),
    # a semantic one against what the cluster already has: a second mesh for the same namespace
    "second-mesh": ("Mesh", """
apiVersion: appmesh.k8s.aws/v1beta2
kind: Mesh
metadata: {name: second-mesh}
spec:
  namespaceSelector: {matchLabels: {mesh: my-app-mesh}}
"""),
}


@pytest.mark.parametrize("case", sorted(LOCAL_REJECTS))
def test_the_cluster_refuses_what_the_local_lab_refuses_with_the_same_findings(walkthrough, case):
    kind, text = LOCAL_REJECTS[case]
    # the local lab: `appmesh-lab apply -f` of this manifest on top of the walkthrough
    existing = validate_texts(read_texts([ROOT / "manifests" / "walkthrough"])[0]).resources
    local = validate_texts([("x.yaml", text)], complete=True, existing=existing)
    local_errors = [p for p in local.errors if p.code != "reference"]
    assert local_errors, "the local lab accepts this manifest: the case tests nothing"
    # the cluster: the same object, as the API server hands it to the validating webhook
    obj = yaml.safe_load(text)
    obj["metadata"]["uid"] = "9f000000-0000-4000-8000-000000000009"
    resp = answer(review(obj), "validate", kind, walkthrough)
    assert resp["allowed"] is False and resp["status"]["code"] == 403
    msg = resp["status"]["message"]
    for p in local_errors:
        assert f"{p.path}: {p.message}" in msg and (not p.hint or f"hint: {p.hint}" in msg), (str(p), msg)
    # what kubectl prints reads back into the local lab's findings: code, field path, message, hint
    printed = f'Error from server (Forbidden): error when creating "STDIN": admission webhook ' \
              f'"v{kind.lower()}.appmesh-lab.k8s.aws" denied the request: {msg}'
    read = [(p.code, p.path, p.message, p.hint) for p in from_denial(printed)]
    assert read == list(dict.fromkeys((p.code, p.path, p.message, p.hint) for p in local_errors)), (read, msg)


def test_the_walkthrough_as_kubectl_sends_it_is_admitted_in_order(walkthrough):
    """Every object of the recorded cluster, created in the walkthrough's order into a cluster
    holding the ones before it: mutated, then validated, and admitted."""
    cluster: dict = {"Namespace": copy.deepcopy(walkthrough["Namespace"])}
    for kind in ("Mesh", "VirtualNode", "VirtualService", "VirtualGateway", "GatewayRoute"):
        for obj in walkthrough[kind]:
            body = review(obj)
            resp = answer(body, "mutate", kind, cluster)
            assert resp["allowed"], (kind, resp)
            stored = patched(body, resp)
            check = answer(review(stored), "validate", kind, cluster)
            assert check["allowed"], (kind, obj["metadata"]["name"], check)
            cluster.setdefault(kind, []).append(stored)


def test_the_webhook_server_answers_app_mesh_paths_over_https(tmp_path, walkthrough):
    pems = make_certificate(dns_names("appmesh-lab-controller-webhook", "appmesh-system"))
    server = WebhookServer(0, pems, lambda: None, InjectConfig(), host="127.0.0.1",
                           objects_fn=lambda: without(walkthrough, "GatewayRoute", "product-gateway-route")).start()
    try:
        (tmp_path / "ca.crt").write_text(pems["ca.crt"])
        ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
        ctx.check_hostname = False
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))

        def post(path, body):
            req = urllib.request.Request(f"https://127.0.0.1:{server.port}{path}", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
            try:
                with opener.open(req, timeout=10) as resp:
                    return resp.status, json.loads(resp.read())
            except urllib.error.HTTPError as exc:
                return exc.code, json.loads(exc.read())

        body = review(walkthrough["GatewayRoute"][0])
        code, out = post("/mutate-appmesh-k8s-aws-v1beta2-gatewayroute", body)
        assert code == 200 and out["response"]["allowed"] and out["response"]["patchType"] == "JSONPatch"
        code, out = post("/validate-appmesh-k8s-aws-v1beta2-gatewayroute", body)
        assert code == 200 and out["response"]["allowed"]
        code, out = post("/validate-appmesh-k8s-aws-v1beta2-virtualthing", body)
        assert code == 404
    finally:
        server.stop()


def test_a_v1beta1_review_is_answered_in_v1beta1(walkthrough):
    body = review(walkthrough["Mesh"][0], version="v1beta1")
    out = admission.review(body, admission.mutate_path("Mesh"), lambda: without(walkthrough, "Mesh", "my-app-mesh"))
    assert out["apiVersion"] == "admission.k8s.io/v1beta1" and out["response"]["allowed"]


def test_a_bug_in_a_handler_is_an_error_answer_not_a_crash(walkthrough):
    def broken():
        raise RuntimeError("cache exploded")
    out = admission.review(review(walkthrough["Mesh"][0]), admission.validate_path("Mesh"), broken)
    assert out["response"]["allowed"] is False and out["response"]["status"]["code"] == 500
    assert "cache exploded" in out["response"]["status"]["message"]


def test_the_ca_bundle_goes_into_the_validating_configuration_too(fake_kube):
    from lab.controller.webhook import ensure_ca_bundle
    kube = fake_kube()
    kube.webhooks["cfg"] = {"webhooks": [{"name": "mpod", "clientConfig": {}}]}
    kube.webhooks[("validating", "cfg")] = {"webhooks": [{"name": f"v{k.lower()}", "clientConfig": {}} for k in SIX]}
    pems = make_certificate(["svc"])
    assert ensure_ca_bundle(kube, "cfg", pems["ca.crt"]) is True
    want = base64.b64encode(pems["ca.crt"].encode()).decode()
    assert {w["clientConfig"]["caBundle"] for w in kube.webhooks[("validating", "cfg")]["webhooks"]} == {want}
    assert kube.webhooks["cfg"]["webhooks"][0]["clientConfig"]["caBundle"] == want
    assert ensure_ca_bundle(kube, "cfg", pems["ca.crt"]) is False


def test_the_controllers_finalizer_writes_pass_even_on_an_object_the_validator_refuses(walkthrough):
    """An object stored while the webhook was absent (or failurePolicy Ignore) may be invalid;
    the controller must still set and remove its finalizers, or its deletion never ends."""
    bad = copy.deepcopy(walkthrough["GatewayRoute"][0])
    bad["spec"]["httpRoute"]["match"] = {"prefix": "products"}
    assert answer(review(bad), "validate", "GatewayRoute", walkthrough)["allowed"] is False
    with_finalizer = copy.deepcopy(bad)
    with_finalizer["metadata"]["finalizers"] = ["finalizers.appmesh.k8s.aws/aws-appmesh-resources"]
    assert answer(review(with_finalizer, "UPDATE", old=bad), "validate", "GatewayRoute", walkthrough)["allowed"]
    deleting = copy.deepcopy(with_finalizer)
    deleting["metadata"]["deletionTimestamp"] = "2026-10-05T10:00:00Z"
    released = copy.deepcopy(deleting)
    released["metadata"]["finalizers"] = []
    assert answer(review(released, "UPDATE", old=deleting), "validate", "GatewayRoute", walkthrough)["allowed"]
    # a change of the spec is checked again
    still_bad = copy.deepcopy(with_finalizer)
    still_bad["spec"]["httpRoute"]["match"] = {"prefix": "items"}
    assert answer(review(still_bad, "UPDATE", old=with_finalizer), "validate", "GatewayRoute",
                  walkthrough)["allowed"] is False


@pytest.mark.parametrize("family, written, operation, wanted", [
    ("IPv4", None, "CREATE", None),                                   # no preference: IPv4 listeners only
    ("IPv4", {"ipPreference": "IPv6_ONLY"}, "CREATE", {"ipPreference": "IPv4_ONLY"}),
    ("IPv4", {"ipPreference": "IPv4_ONLY"}, "UPDATE", {"ipPreference": "IPv4_ONLY"}),
    ("IPv6", None, "CREATE", {"ipPreference": "IPv6_ONLY"}),
    ("IPv6", {"ipPreference": "IPv4_ONLY"}, "UPDATE", {"ipPreference": "IPv6_ONLY"}),
])
def test_a_meshs_ip_preference_is_set_from_the_clusters_ip_family(walkthrough, family, written, operation, wanted):
    """Upstream's Mesh webhook (webhooks/appmesh/mesh_mutator.go), on CREATE and UPDATE alike."""
    mesh = copy.deepcopy(walkthrough["Mesh"][0])
    mesh["spec"].pop("meshServiceDiscovery", None)
    if written is not None:
        mesh["spec"]["meshServiceDiscovery"] = written
    body = review(mesh, operation, old=copy.deepcopy(mesh) if operation == "UPDATE" else None)
    out = admission.review(body, admission.mutate_path("Mesh"), lambda: without(walkthrough, "Mesh", "my-app-mesh"),
                           family)["response"]
    assert out["allowed"], out
    assert patched(body, out)["spec"].get("meshServiceDiscovery") == wanted
    assert answer(review(patched(body, out), operation, old=body["request"]["oldObject"]), "validate", "Mesh",
                  without(walkthrough, "Mesh", "my-app-mesh"))["allowed"]


def test_a_cluster_ip_family_the_controller_does_not_know_stops_it_with_one_line(capsys):
    import argparse

    from lab.controller.main import add_arguments, cmd_controller
    p = argparse.ArgumentParser()
    add_arguments(p)
    assert cmd_controller(p.parse_args(["--ip-family", "ipv6"])) == 1
    assert capsys.readouterr().err.strip() == ("appmesh-lab controller: --ip-family (APPMESH_LAB_IP_FAMILY, chart value "
                                               "ipFamily) is 'ipv6'; write IPv4 or IPv6")
