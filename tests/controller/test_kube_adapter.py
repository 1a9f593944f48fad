"""ApiKube (the real `kubernetes` client) against a stub API server on 127.0.0.1: the REST
paths, verbs, content types and error translation the controller depends on."""
from __future__ import annotations

import pytest

from lab.controller.kube import ApiKube, Conflict, Gone, NotFound
from tests.controller.apiserver import StubApiServer


@pytest.fixture
def api(walkthrough):
    server = StubApiServer({k: v for k, v in walkthrough.items()})
    yield server, ApiKube(server.client())
    server.close()


def test_lists_every_watched_kind_with_its_resource_version(api):
    server, kube = api
    for kind, n in (("Namespace", 2), ("Mesh", 1), ("VirtualNode", 2), ("GatewayRoute", 2), ("Pod", 4),
                    ("EndpointSlice", 2), ("VirtualRouter", 0)):
        items, rv = kube.list(kind)
        assert len(items) == n, kind
        assert rv == str(server.rv)
    paths = [r["path"] for r in server.calls("GET")]
    assert "/apis/appmesh.k8s.aws/v1beta2/virtualnodes" in paths
    assert "/apis/discovery.k8s.io/v1/endpointslices" in paths
    assert "/api/v1/pods" in paths and "/api/v1/namespaces" in paths


def test_watch_yields_events_as_dicts_and_turns_410_into_gone(api):
    server, kube = api
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "appmesh-demo",
                                                           "resourceVersion": "7001"}}
    server.watch_events["pods"] = [("ADDED", pod), ("DELETED", pod)]
    events = list(kube.watch("Pod", "7000", 5))
    assert [t for t, _ in events] == ["ADDED", "DELETED"] and events[0][1]["metadata"]["name"] == "p"
    watch = server.calls("GET", "/api/v1/pods")[-1]
    assert watch["query"]["watch"] in ("true", "True") and watch["query"]["resourceVersion"] == "7000"
    server.expired_rvs.add("1")
    with pytest.raises(Gone):
        list(kube.watch("Pod", "1", 5))


def test_status_is_a_merge_patch_of_the_status_subresource(api):
    server, kube = api
    out = kube.patch_status("VirtualNode", "appmesh-demo", "product-service-vn",
                            {"conditions": [{"type": "VirtualNodeActive", "status": "True"}], "observedGeneration": 1})
    req = server.calls("PATCH")[-1]
    assert req["path"] == "/apis/appmesh.k8s.aws/v1beta2/namespaces/appmesh-demo/virtualnodes/product-service-vn/status"
    assert req["content_type"] == "application/merge-patch+json"
    assert out["status"]["observedGeneration"] == 1
    kube.patch_status("Mesh", "", "my-app-mesh", {"observedGeneration": 1})
    assert server.calls("PATCH")[-1]["path"] == "/apis/appmesh.k8s.aws/v1beta2/meshes/my-app-mesh/status"


def test_finalizers_are_set_with_a_json_patch_guarded_by_the_resource_version(api):
    server, kube = api
    vn = server.get("VirtualNode", "appmesh-demo", "review-service-vn")
    rv = vn["metadata"]["resourceVersion"]
    out = kube.set_finalizers("VirtualNode", "appmesh-demo", "review-service-vn", ["f/one"], rv)
    assert out["metadata"]["finalizers"] == ["f/one"]
    req = server.calls("PATCH")[-1]
    assert req["content_type"] == "application/json-patch+json"
    assert req["body"][0] == {"op": "test", "path": "/metadata/resourceVersion", "value": rv}
    with pytest.raises(Conflict):  # rv is stale now
        kube.set_finalizers("VirtualNode", "appmesh-demo", "review-service-vn", [], rv)
    with pytest.raises(NotFound):
        kube.set_finalizers("VirtualNode", "appmesh-demo", "gone", [], "1")


def test_events_leases_secrets_and_the_webhook_configuration(api):
    server, kube = api
    kube.create_event("appmesh-demo", {
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "vn.1", "namespace": "appmesh-demo"},
        "involvedObject": {"kind": "VirtualNode", "name": "vn", "namespace": "appmesh-demo"},
        "reason": "Active", "message": "ok", "type": "Normal", "source": {"component": "c"},
        "firstTimestamp": "2026-10-05T09:00:00Z", "lastTimestamp": "2026-10-05T09:00:00Z", "count": 1})
    ev = server.calls("POST", "/events")[-1]
    assert ev["path"] == "/api/v1/namespaces/appmesh-demo/events"
    assert ev["body"]["involvedObject"]["kind"] == "VirtualNode" and ev["body"]["reason"] == "Active"

    assert kube.get_lease("appmesh-system", "leader") is None
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "leader", "namespace": "appmesh-system"},
             "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15,
                      "renewTime": "2026-10-05T09:00:00.000000Z", "leaseTransitions": 0}}
    kube.create_lease("appmesh-system", lease)
    with pytest.raises(Conflict):
        kube.create_lease("appmesh-system", lease)
    got = kube.get_lease("appmesh-system", "leader")
    assert got["spec"]["holderIdentity"] == "a"
    got["spec"]["holderIdentity"] = "b"
    kube.replace_lease("appmesh-system", "leader", got)
    assert server.calls("PUT")[-1]["path"] == "/apis/coordination.k8s.io/v1/namespaces/appmesh-system/leases/leader"
    with pytest.raises(Conflict):
        kube.replace_lease("appmesh-system", "leader", got)  # got's resourceVersion is stale now

    assert kube.get_secret("appmesh-system", "tls") is None
    kube.create_secret("appmesh-system", {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                                          "metadata": {"name": "tls", "namespace": "appmesh-system"},
                                          "data": {"ca.crt": "Y2E="}})
    assert kube.get_secret("appmesh-system", "tls")["data"] == {"ca.crt": "Y2E="}

    server.put("MutatingWebhookConfiguration", {"metadata": {"name": "cfg"},
                                                "webhooks": [{"name": "w", "clientConfig": {}, "admissionReviewVersions": ["v1"],
                                                              "sideEffects": "None"}]})
    kube.patch_webhook_config("cfg", [{"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": "Q0E="}])
    assert kube.get_webhook_config("cfg")["webhooks"][0]["clientConfig"]["caBundle"] == "Q0E="
    assert server.calls("PATCH")[-1]["content_type"] == "application/json-patch+json"
    server.put("ValidatingWebhookConfiguration", {"metadata": {"name": "cfg"}, "webhooks": [
        {"name": "vmesh", "clientConfig": {}, "admissionReviewVersions": ["v1"], "sideEffects": "None"}]})
    kube.patch_webhook_config("cfg", [{"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": "Q0E="}],
                              kind="validating")
    assert kube.get_webhook_config("cfg", kind="validating")["webhooks"][0]["clientConfig"]["caBundle"] == "Q0E="
    assert server.calls("PATCH")[-1]["path"] == "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/cfg"
    assert kube.get_webhook_config("missing", kind="validating") is None


def test_an_informer_over_the_real_client_fills_the_cache(api):
    import threading

    from lab.controller.cache import Cache, Informer
    server, kube = api
    new = {"apiVersion": "appmesh.k8s.aws/v1beta2", "kind": "VirtualNode",
           "metadata": {"name": "extra", "namespace": "appmesh-demo", "resourceVersion": "9999"}, "spec": {}}
    server.watch_events["virtualnodes"] = [("ADDED", new)]
    cache = Cache()
    rv = Informer(kube, "VirtualNode", cache, lambda: None, threading.Event()).run_once(None)
    assert rv == "9999"
    assert sorted(o["metadata"]["name"] for o in cache.list("VirtualNode")) == ["extra", "product-service-vn",
                                                                               "review-service-vn"]
    watch = server.calls("GET", "/apis/appmesh.k8s.aws/v1beta2/virtualnodes")[-1]
    assert watch["query"].get("allowWatchBookmarks") in ("true", "True")


def test_watched_objects_with_fields_this_client_does_not_know_still_arrive(api, walkthrough):
    """A newer API server adds fields, or sends a field in a shape the client's (strictly typed,
    pydantic) models do not take. The informers must get the objects anyway, as plain dicts,
    for every watched kind."""
    import copy
    server, kube = api
    pod = copy.deepcopy(walkthrough["Pod"][0])
    pod["metadata"]["resourceVersion"] = "7001"
    pod["spec"]["futureSchedulingHint"] = {"zone": "b"}
    pod["status"]["resizeStatusV2"] = "Proposed"
    pod["status"]["conditions"][0]["observedGeneration"] = "3"  # V1PodCondition wants an int here
    pod["spec"]["containers"][0]["restartPolicyRules"] = [{"action": "Restart"}]
    ns = copy.deepcopy(walkthrough["Namespace"][0])
    ns["metadata"]["resourceVersion"] = "7002"
    ns["status"] = {"phase": "Active", "newCondition": True}
    eps = copy.deepcopy(walkthrough["EndpointSlice"][0])
    eps["metadata"]["resourceVersion"] = "7003"
    eps["endpoints"][0]["zoneHints"] = {"forRegions": ["x"]}
    for plural, kind, obj in (("pods", "Pod", pod), ("namespaces", "Namespace", ns),
                              ("endpointslices", "EndpointSlice", eps)):
        server.watch_events[plural] = [("MODIFIED", obj)]
        events = list(kube.watch(kind, "7000", 5))
        assert events == [("MODIFIED", obj)], kind
    # a watch that errors with something other than 410 is a KubeError naming the kind
    server.watch_events["pods"] = [("ERROR", {"kind": "Status", "code": 500, "reason": "InternalError",
                                              "message": "etcd is down"})]
    from lab.controller.kube import KubeError
    with pytest.raises(KubeError, match="watch Pod: .*etcd is down"):
        list(kube.watch("Pod", "7000", 5))


def test_the_kubernetes_floor_is_the_first_release_with_the_api_the_adapter_calls():
    """ApiKube builds request bodies with the models' `from_dict` and patches with `_content_type`:
    both arrived with the pydantic-based client, 37.0.0 (36.0.0's models have neither
    `from_dict` nor pydantic; checked against its wheel). DESIGN.md caps it at 37.0.0."""
    import tomllib
    from pathlib import Path

    from kubernetes import client
    from packaging.requirements import Requirement

    root = Path(__file__).resolve().parents[2]
    deps = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    (req,) = [Requirement(d) for d in deps if Requirement(d).name == "kubernetes"]
    assert not req.specifier.contains("36.0.0") and req.specifier.contains("37.0.0")
    assert not req.specifier.contains("37.0.1")  # python-dateutil>=3 against botocore's <3
    for line in (root / "lab/controller/requirements.txt").read_text().splitlines():
        if line.startswith("kubernetes"):
            assert Requirement(line).specifier == req.specifier
    assert hasattr(client.CoreV1Event, "from_dict") and hasattr(client.V1Lease, "model_validate")
