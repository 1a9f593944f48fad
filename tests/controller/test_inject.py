"""Sidecar injection (lab.controller.inject, lab.controller.webhook) on recorded AdmissionReviews.

Each case applies the JSONPatch the webhook answers with to the recorded Pod and checks the pod
the API server would create.
"""
from __future__ import annotations

import base64
import copy
import json
import ssl
import urllib.request

import pytest

from lab.controller.inject import InjectConfig, decide
from lab.controller.webhook import (
    WebhookServer,
    ca_bundle_patch,
    certificate_usable,
    dns_names,
    ensure_ca_bundle,
    ensure_certificate,
    make_certificate,
    review_response,
)
from lab.controller.world import build_world
from tests.controller import k8s_schema
from tests.controller.apiserver import _json_patch
from tests.controller.conftest import load

CFG = InjectConfig(envoy_image="envoyproxy/envoy:v1.40.0", proxy_init_image="appmesh-lab/proxy-init:0.1.0",
                   xds_host="appmesh-lab-controller-xds.appmesh-system.svc.cluster.local", xds_port=15010)
REVIEWS = load("admission-reviews.json")


def world(objects):
    return build_world({k: v for k, v in objects.items() if k not in ("Pod", "EndpointSlice")})[0]


def admit(case: str, objects, cfg=CFG):
    review = copy.deepcopy(REVIEWS[case])
    out = review_response(review, lambda: world(objects), cfg)
    assert out["apiVersion"] == "admission.k8s.io/v1" and out["kind"] == "AdmissionReview"
    resp = out["response"]
    assert resp["uid"] == review["request"]["uid"]
    pod = review["request"]["object"]
    if resp.get("patch"):
        assert resp["patchType"] == "JSONPatch"
        pod = _json_patch(pod, json.loads(base64.b64decode(resp["patch"])))
    return resp, pod


def env_of(container):
    return {e["name"]: e.get("value") for e in container.get("env") or []}


def test_a_virtual_node_pod_gets_envoy_and_proxyinit(walkthrough):
    resp, pod = admit("product-pod", walkthrough)
    assert resp["allowed"]
    names = [c["name"] for c in pod["spec"]["containers"]]
    assert names == ["app", "envoy"]
    envoy = pod["spec"]["containers"][1]
    env = env_of(envoy)
    nid = "mesh/my-app-mesh/virtualNode/product-service-vn_appmesh-demo"
    assert env["APPMESH_RESOURCE_ARN"] == nid and env["APPMESH_VIRTUAL_NODE_NAME"] == nid
    assert envoy["image"] == "envoyproxy/envoy:v1.40.0"
    assert envoy["command"] == ["envoy"] and envoy["args"][:2] == ["--config-yaml", "$(APPMESH_LAB_BOOTSTRAP)"]
    assert envoy["securityContext"]["runAsUser"] == 1337
    assert envoy["readinessProbe"]["httpGet"] == {"path": "/ready", "port": 15021}
    boot = json.loads(env["APPMESH_LAB_BOOTSTRAP"])
    assert boot["node"]["id"] == nid
    xds = boot["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    assert xds["endpoint"]["address"]["socket_address"] == {
        "address": "appmesh-lab-controller-xds.appmesh-system.svc.cluster.local", "port_value": 15010}
    assert boot["admin"]["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 9901}
    init = pod["spec"]["initContainers"]
    assert [c["name"] for c in init] == ["proxyinit"]
    assert env_of(init[0]) == {
        "APPMESH_START_ENABLED": "1", "APPMESH_IGNORE_UID": "1337", "APPMESH_ENVOY_INGRESS_PORT": "15000",
        "APPMESH_ENVOY_EGRESS_PORT": "15001", "APPMESH_APP_PORTS": "8080",
        "APPMESH_EGRESS_IGNORED_IP": "169.254.169.254", "APPMESH_EGRESS_IGNORED_PORTS": "22",
        "APPMESH_ENABLE_IPV6": "1"}  # as upstream: IPv6 redirected unless the pod opts out
    assert init[0]["securityContext"]["capabilities"]["add"] == ["NET_ADMIN", "NET_RAW"]
    # nothing else of the pod changed
    original = REVIEWS["product-pod"]["request"]["object"]
    assert pod["spec"]["containers"][0] == original["spec"]["containers"][0]
    assert pod["metadata"] == original["metadata"]


@pytest.mark.parametrize("case", ["product-pod", "product-pod-annotated", "gateway-pod", "gateway-pod-skip-image"])
def test_every_injected_pod_is_a_valid_kubernetes_pod(walkthrough, case):
    """The patched pod must be one the API server takes (the kubernetes client's V1Pod model)."""
    original = REVIEWS[case]["request"]["object"]
    assert k8s_schema.problems(original) == []  # the recorded pod itself
    resp, pod = admit(case, walkthrough)
    assert resp["allowed"] and resp.get("patch")
    assert k8s_schema.problems(pod) == []


def test_pod_annotations_set_the_redirected_and_ignored_ports_and_ips(walkthrough):
    resp, pod = admit("product-pod-annotated", walkthrough)
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["migrate", "proxyinit"]  # appended last
    env = env_of(pod["spec"]["initContainers"][1])
    assert env["APPMESH_APP_PORTS"] == "8080,8443"
    assert env["APPMESH_EGRESS_IGNORED_PORTS"] == "22,3306"  # replaces the default, as the AWS controller
    assert env["APPMESH_EGRESS_IGNORED_IP"] == "169.254.169.254,10.0.0.5"


def test_an_existing_envoy_or_proxyinit_container_is_not_added_twice(walkthrough):
    review = REVIEWS["product-pod"]["request"]["object"]
    pod = copy.deepcopy(review)
    pod["spec"]["containers"].append({"name": "envoy", "image": "mine"})
    pod["spec"]["initContainers"] = [{"name": "proxyinit", "image": "mine"}]
    d = decide(pod, "appmesh-demo", world(walkthrough), CFG)
    assert d.allowed and d.patch == []


def test_a_gateway_pod_gets_its_envoy_container_configured(walkthrough):
    resp, pod = admit("gateway-pod", walkthrough)
    assert resp["allowed"]
    (envoy,) = pod["spec"]["containers"]
    env = env_of(envoy)
    assert env["APPMESH_RESOURCE_ARN"] == "mesh/my-app-mesh/virtualGateway/appmesh-gateway_appmesh-demo"
    assert env["ENVOY_LOG_LEVEL"] == "info"  # ours overrides the pod's
    assert env["EXTRA"] == "kept"
    assert envoy["args"][:2] == ["--config-yaml", "$(APPMESH_LAB_BOOTSTRAP)"]
    assert {"name": "http", "containerPort": 8088, "protocol": "TCP"} in envoy["ports"]
    assert "initContainers" not in pod["spec"]  # a gateway listens itself: no redirect


def test_a_gateway_pod_may_keep_its_image(walkthrough):
    _, pod = admit("gateway-pod-skip-image", walkthrough)
    assert pod["spec"]["containers"][0]["image"] == "my.registry/envoy:custom"
    _, pod = admit("gateway-pod", walkthrough)
    assert pod["spec"]["containers"][0]["image"] == "envoyproxy/envoy:v1.40.0"


def test_a_gateway_pod_without_an_envoy_container_is_left_alone(walkthrough):
    resp, pod = admit("gateway-pod-no-envoy", walkthrough)
    assert resp["allowed"] and "patch" not in resp
    assert pod == REVIEWS["gateway-pod-no-envoy"]["request"]["object"]


def test_enabled_injection_rejects_a_pod_that_nothing_selects(walkthrough):
    resp, _ = admit("unmatched-pod", walkthrough)
    assert resp["allowed"] is False and resp["status"]["code"] == 403
    assert "sidecarInject enabled but no matching VirtualNode or VirtualGateway found" in resp["status"]["message"]


@pytest.mark.parametrize("case", ["unmatched-pod-disabled", "product-pod-disabled"])
def test_the_pod_annotation_disables_injection(walkthrough, case):
    resp, pod = admit(case, walkthrough)
    assert resp["allowed"] and "patch" not in resp


def test_an_unlabelled_namespace_is_left_alone(walkthrough):
    ns = walkthrough["Namespace"][0]
    del ns["metadata"]["labels"]["appmesh.k8s.aws/sidecarInjectorWebhook"]
    resp, _ = admit("product-pod", walkthrough)
    assert resp["allowed"] and "patch" not in resp


def test_an_unspecified_mode_injects_only_what_matches(walkthrough):
    for p in ("unmatched-pod", "product-pod"):
        pod = copy.deepcopy(REVIEWS[p]["request"]["object"])
        pod["metadata"]["annotations"] = {"appmesh.k8s.aws/sidecarInjectorWebhook": "auto"}
        d = decide(pod, "appmesh-demo", world(walkthrough), CFG)
        assert d.allowed and bool(d.patch) == (p == "product-pod")


def test_a_pod_of_two_virtual_nodes_is_rejected(walkthrough):
    twin = copy.deepcopy(walkthrough["VirtualNode"][0])
    twin["metadata"]["name"] = "product-service-twin"
    walkthrough["VirtualNode"].append(twin)
    resp, _ = admit("product-pod", walkthrough)
    assert not resp["allowed"] and "found multiple matching VirtualNodes" in resp["status"]["message"]


def test_a_pod_of_a_virtual_node_and_a_gateway_is_rejected(walkthrough):
    vg = walkthrough["VirtualGateway"][0]
    vg["spec"]["podSelector"] = {"matchLabels": {"app": "product-service"}}
    resp, _ = admit("product-pod", walkthrough)
    assert not resp["allowed"] and "both VirtualNode product-service-vn and VirtualGateway appmesh-gateway" in \
        resp["status"]["message"]


def test_a_pod_of_two_gateways_is_rejected(walkthrough):
    twin = copy.deepcopy(walkthrough["VirtualGateway"][0])
    twin["metadata"]["name"] = "gateway-twin"
    walkthrough["VirtualGateway"].append(twin)
    resp, _ = admit("gateway-pod", walkthrough)
    assert not resp["allowed"] and "multiple matching VirtualGateways" in resp["status"]["message"]


def test_a_virtual_node_outside_any_mesh_rejects_its_pods_with_the_reason(walkthrough):
    walkthrough["Mesh"] = []
    resp, _ = admit("product-pod", walkthrough)
    assert not resp["allowed"] and "belongs to no mesh" in resp["status"]["message"]


def test_a_namespace_the_controller_has_not_seen_yet_is_retried_not_skipped(walkthrough):
    walkthrough["Namespace"] = []
    resp, _ = admit("product-pod", walkthrough)
    assert not resp["allowed"] and "has not seen namespace" in resp["status"]["message"]


def test_other_kinds_and_operations_are_allowed_untouched(walkthrough):
    review = copy.deepcopy(REVIEWS["product-pod"])
    review["request"]["operation"] = "UPDATE"
    out = review_response(review, lambda: world(walkthrough), CFG)
    assert out["response"] == {"uid": review["request"]["uid"], "allowed": True}


def test_a_bug_answers_an_error_so_the_failure_policy_decides(walkthrough):
    def broken():
        raise RuntimeError("boom")
    out = review_response(copy.deepcopy(REVIEWS["product-pod"]), broken, CFG)
    assert out["response"]["allowed"] is False and "boom" in out["response"]["status"]["message"]


# ---- certificate, caBundle, HTTPS ------------------------------------------------------------

def test_the_certificate_is_made_once_and_shared_through_a_secret(fake_kube):
    kube = fake_kube()
    first = ensure_certificate(kube, "appmesh-system", "tls", "appmesh-lab-controller-webhook")
    assert kube.secrets[("appmesh-system", "tls")]["type"] == "kubernetes.io/tls"
    again = ensure_certificate(kube, "appmesh-system", "tls", "appmesh-lab-controller-webhook")
    assert again == first
    assert certificate_usable(first, dns_names("appmesh-lab-controller-webhook", "appmesh-system"))
    assert not certificate_usable(first, dns_names("other", "appmesh-system"))


def test_a_replica_that_loses_the_race_reads_the_winners_certificate(fake_kube):
    from lab.controller.kube import Conflict
    kube = fake_kube()
    winner = ensure_certificate(kube, "appmesh-system", "tls", "svc")
    original_get = kube.get_secret
    calls = {"n": 0}

    def racing_get(ns, name):  # the first read happens before the winner's create
        calls["n"] += 1
        return None if calls["n"] == 1 else original_get(ns, name)
    kube.get_secret = racing_get
    kube.fail_next["create_secret"] = Conflict("already exists")
    assert ensure_certificate(kube, "appmesh-system", "tls", "svc") == winner


def test_the_ca_bundle_is_patched_only_where_it_differs(fake_kube):
    pems = make_certificate(["svc.ns.svc"])
    kube = fake_kube()
    kube.webhooks["cfg"] = {"webhooks": [{"name": "a", "clientConfig": {"service": {"name": "svc"}}},
                                         {"name": "b", "clientConfig": {"caBundle": "old"}}]}
    assert ensure_ca_bundle(kube, "cfg", pems["ca.crt"])
    want = base64.b64encode(pems["ca.crt"].encode()).decode()
    assert [w["clientConfig"]["caBundle"] for w in kube.webhooks["cfg"]["webhooks"]] == [want, want]
    assert not ensure_ca_bundle(kube, "cfg", pems["ca.crt"])  # nothing to do the second time
    assert ca_bundle_patch(kube.webhooks["cfg"], pems["ca.crt"]) == []


def test_the_webhook_answers_over_https_with_the_certificate_it_made(walkthrough):
    names = ["localhost"] + dns_names("appmesh-lab-controller-webhook", "appmesh-system")
    pems = make_certificate(names)
    server = WebhookServer(0, pems, lambda: world(walkthrough), CFG, host="127.0.0.1").start()
    try:
        ctx = ssl.create_default_context(cadata=pems["ca.crt"])
        ctx.verify_flags |= ssl.VERIFY_X509_STRICT
        req = urllib.request.Request(f"https://localhost:{server.port}/mutate-v1-pod",
                                     data=json.dumps(REVIEWS["product-pod"]).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))
        with opener.open(req, timeout=5) as resp:
            body = json.loads(resp.read())
        assert body["response"]["allowed"] and body["response"]["patchType"] == "JSONPatch"
        with opener.open(f"https://localhost:{server.port}/healthz", timeout=5) as resp:
            assert resp.status == 200
    finally:
        server.stop()


def _with_annotation(case: str, name: str, value: str, volumes=None) -> dict:
    review = copy.deepcopy(REVIEWS[case])
    review["request"]["object"]["metadata"].setdefault("annotations", {})[name] = value
    if volumes is not None:
        review["request"]["object"]["spec"]["volumes"] = volumes
    return review


def test_secret_mounts_are_mounted_read_only_into_the_injected_envoy(walkthrough):
    """The mTLS example's annotation: each Secret becomes a volume of the pod, mounted into the
    sidecar only (the app container does not see the mesh's keys)."""
    value = "accounts-tls:/etc/appmesh-lab/certs/accounts, mesh-ca:/etc/appmesh-lab/certs/ca"
    review = _with_annotation("product-pod", "appmesh.k8s.aws/secretMounts", value)
    out = review_response(review, lambda: world(walkthrough), CFG)["response"]
    assert out["allowed"], out
    pod = _json_patch(review["request"]["object"], json.loads(base64.b64decode(out["patch"])))
    original = review["request"]["object"]["spec"]["volumes"]
    assert pod["spec"]["volumes"] == original + [{"name": "accounts-tls", "secret": {"secretName": "accounts-tls"}},
                                                 {"name": "mesh-ca", "secret": {"secretName": "mesh-ca"}}]
    envoy = next(c for c in pod["spec"]["containers"] if c["name"] == "envoy")
    assert envoy["volumeMounts"] == [
        {"name": "accounts-tls", "mountPath": "/etc/appmesh-lab/certs/accounts", "readOnly": True},
        {"name": "mesh-ca", "mountPath": "/etc/appmesh-lab/certs/ca", "readOnly": True}]
    app = next(c for c in pod["spec"]["containers"] if c["name"] == "app")
    assert not {"accounts-tls", "mesh-ca"} & {m["name"] for m in app.get("volumeMounts") or []}
    assert k8s_schema.problems(pod) == []
    # a pod without volumes gets the list
    review = _with_annotation("product-pod", "appmesh.k8s.aws/secretMounts", "mesh-ca:/certs")
    del review["request"]["object"]["spec"]["volumes"]
    out = review_response(review, lambda: world(walkthrough), CFG)["response"]
    pod = _json_patch(review["request"]["object"], json.loads(base64.b64decode(out["patch"])))
    assert pod["spec"]["volumes"] == [{"name": "mesh-ca", "secret": {"secretName": "mesh-ca"}}]
    assert k8s_schema.problems(pod) == []


@pytest.mark.parametrize("value, says", [
    ("accounts-tls", "is not <secret name>:<mount path>"),
    ("accounts-tls:/a:/b", "is not <secret name>:<mount path>"),
    ("Accounts_TLS:/certs", "cannot name a Secret volume"),
    ("accounts-tls:certs", "must be absolute"),
    ("a:/x,a:/y", "repeats a Secret or a mount path"),
    (" , ", "is empty"),
])
def test_a_malformed_secret_mounts_annotation_rejects_the_pod_saying_what_to_write(walkthrough, value, says):
    review = _with_annotation("product-pod", "appmesh.k8s.aws/secretMounts", value)
    out = review_response(review, lambda: world(walkthrough), CFG)["response"]
    assert out["allowed"] is False and out["status"]["code"] == 403
    msg = out["status"]["message"]
    assert "appmesh.k8s.aws/secretMounts" in msg and says in msg, msg
    assert "<secret name>:<absolute directory>" in msg or "each Secret" in msg


def test_a_secret_volume_that_clashes_with_a_pod_volume_is_refused(walkthrough):
    review = _with_annotation("product-pod", "appmesh.k8s.aws/secretMounts", "data:/certs",
                              volumes=[{"name": "data", "emptyDir": {}}])
    out = review_response(review, lambda: world(walkthrough), CFG)["response"]
    assert out["allowed"] is False and "already has a volume named data" in out["status"]["message"]


def test_a_gateway_pod_whose_envoy_container_has_no_image_gets_the_envoy_image(walkthrough):
    review = copy.deepcopy(REVIEWS["gateway-pod"])
    pod = review["request"]["object"]
    envoy = next(c for c in pod["spec"]["containers"] if c["name"] == "envoy")
    del envoy["image"]
    out = review_response(review, lambda: world(walkthrough), CFG)["response"]
    assert out["allowed"] and out.get("patch")
    pod = _json_patch(pod, json.loads(base64.b64decode(out["patch"])))
    assert next(c for c in pod["spec"]["containers"] if c["name"] == "envoy")["image"] == CFG.envoy_image
    assert k8s_schema.problems(pod) == []


def test_proxyinit_redirects_ipv6_unless_the_pod_opts_out(walkthrough):
    """Upstream's injector: APPMESH_ENABLE_IPV6=1 unless `appmesh.k8s.aws/ipv6: disabled`; any
    other value is refused here, saying what to write (upstream logs and ignores it)."""
    def init_env(review):
        resp, pod = admit_review(review, walkthrough)
        assert resp["allowed"], resp
        return env_of(pod["spec"]["initContainers"][0])
    assert init_env(copy.deepcopy(REVIEWS["product-pod"]))["APPMESH_ENABLE_IPV6"] == "1"
    assert init_env(_with_annotation("product-pod", "appmesh.k8s.aws/ipv6", "disabled"))["APPMESH_ENABLE_IPV6"] == "0"
    out = review_response(_with_annotation("product-pod", "appmesh.k8s.aws/ipv6", "off"), lambda: world(walkthrough),
                          CFG)["response"]
    assert out["allowed"] is False and 'appmesh.k8s.aws/ipv6: "disabled"' in out["status"]["message"], out


@pytest.mark.parametrize("preference, addresses", [(None, ["0.0.0.0"]), ("IPv4_ONLY", ["0.0.0.0", "::"])])
def test_the_readiness_listener_binds_ipv6_when_the_mesh_sets_an_ip_preference(walkthrough, preference, addresses):
    if preference:
        walkthrough["Mesh"][0]["spec"]["meshServiceDiscovery"] = {"ipPreference": preference}
    for case in ("product-pod", "gateway-pod"):
        resp, pod = admit_review(copy.deepcopy(REVIEWS[case]), walkthrough)
        envoy = next(c for c in pod["spec"]["containers"] if c["name"] == "envoy")
        (ready,) = json.loads(env_of(envoy)["APPMESH_LAB_BOOTSTRAP"])["static_resources"]["listeners"]
        got = [ready["address"]["socket_address"]["address"]] + [
            a["address"]["socket_address"]["address"] for a in ready.get("additional_addresses") or []]
        assert got == addresses and ready["address"]["socket_address"]["port_value"] == 15021, (case, ready)


def admit_review(review, objects, cfg=CFG):
    out = review_response(review, lambda: world(objects), cfg)["response"]
    pod = review["request"]["object"]
    if out.get("patch"):
        pod = _json_patch(pod, json.loads(base64.b64decode(out["patch"])))
    return out, pod
