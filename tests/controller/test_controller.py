"""The controller's loop pieces: informers feeding the cache, passes writing through Kube."""
from __future__ import annotations

import threading

from lab.controller.cache import Cache, Informer
from lab.controller.kube import Gone, KubeError
from lab.controller.reconcile import RESOURCES_FINALIZER, Controller


class FakeXds:
    def __init__(self):
        self.snapshots, self.cleared = {}, []

    def set_snapshot(self, nid, snap):
        self.snapshots[nid] = snap

    def clear_snapshot(self, nid):
        self.cleared.append(nid)
        self.snapshots.pop(nid, None)


def controller(fake_kube, objects, leader=True):
    kube = fake_kube(objects)
    cache = Cache.from_objects(objects)
    xds = FakeXds()
    return Controller(kube, cache, xds, namespace="appmesh-system", is_leader=lambda: leader), kube, cache, xds


def test_a_pass_publishes_every_proxy_and_writes_status_finalizers_and_events(fake_kube, walkthrough):
    c, kube, cache, xds = controller(fake_kube, walkthrough)
    c.run_pass()
    assert sorted(xds.snapshots) == sorted([
        "mesh/my-app-mesh/virtualGateway/appmesh-gateway_appmesh-demo",
        "mesh/my-app-mesh/virtualNode/product-service-vn_appmesh-demo",
        "mesh/my-app-mesh/virtualNode/review-service-vn_appmesh-demo"])
    writes = [call[0] for call in kube.calls]
    assert writes.count("patch_status") == 8 and writes.count("set_finalizers") == 8
    vn = kube.objects["VirtualNode"][("VirtualNode", "appmesh-demo", "product-service-vn")]
    assert vn["status"]["conditions"][0]["status"] == "True"
    assert RESOURCES_FINALIZER in vn["metadata"]["finalizers"]
    # the Mesh's events go to `default` (the only namespace the API server takes them in; the
    # fake rejects them elsewhere, as it does); the others to their own
    mesh_ev = next(e for e in kube.events if e["involvedObject"]["kind"] == "Mesh")
    assert mesh_ev["metadata"]["namespace"] == "default" and "namespace" not in mesh_ev["involvedObject"]
    assert ("create_event", "default", "Active") in kube.calls
    vn_ev = next(e for e in kube.events if e["involvedObject"]["name"] == "product-service-vn")
    assert vn_ev["metadata"]["namespace"] == "appmesh-demo"
    assert vn_ev["involvedObject"]["uid"] == vn["metadata"]["uid"]
    assert vn_ev["source"] == {"component": "appmesh-lab-controller"} and vn_ev["type"] == "Normal"


def test_a_pass_reports_the_generations_its_published_configuration_was_made_from(fake_kube, walkthrough):
    """/status `last_pass.generations`: what readers compare with the API server's generations
    (a replica whose informers lag serves an older configuration); a pass whose publishing
    failed keeps reporting what the proxies are still served."""
    import copy
    c, kube, cache, xds = controller(fake_kube, walkthrough)
    c.run_pass()
    gens = c.last["generations"]
    assert gens["Mesh/my-app-mesh"] == 1 and gens["VirtualNode/appmesh-demo/product-service-vn"] == 1
    assert len(gens) == sum(len(walkthrough.get(k, [])) for k in ("Mesh", "VirtualNode", "VirtualService",
                                                                  "VirtualRouter", "VirtualGateway", "GatewayRoute"))
    vn = copy.deepcopy(cache.get("VirtualNode", "appmesh-demo", "review-service-vn"))
    vn["metadata"]["generation"], vn["metadata"]["resourceVersion"] = 2, "r2"
    vn["spec"]["listeners"][0]["portMapping"]["port"] = 9090
    cache.event("VirtualNode", "MODIFIED", vn)
    c.run_pass()
    assert c.last["generations"]["VirtualNode/appmesh-demo/review-service-vn"] == 2
    vn = copy.deepcopy(vn)
    vn["metadata"]["generation"], vn["metadata"]["resourceVersion"] = 3, "r3"
    vn["spec"]["listeners"][0]["portMapping"]["port"] = 9191
    cache.event("VirtualNode", "MODIFIED", vn)

    def broken(nid, snap):
        raise RuntimeError("inconsistent snapshot")
    xds.set_snapshot = broken
    c.run_pass()
    assert c.last["generations"]["VirtualNode/appmesh-demo/review-service-vn"] == 2


def test_the_second_pass_writes_nothing(fake_kube, walkthrough):
    c, kube, cache, xds = controller(fake_kube, walkthrough)
    c.run_pass()
    versions = {n: s.version for n, s in xds.snapshots.items()}
    kube.calls.clear()
    c.run_pass()
    assert [call for call in kube.calls if call[0] != "list"] == []
    assert {n: s.version for n, s in xds.snapshots.items()} == versions  # unchanged config is not re-sent


def test_a_follower_serves_xds_but_writes_nothing(fake_kube, walkthrough):
    c, kube, cache, xds = controller(fake_kube, walkthrough, leader=False)
    c.run_pass()
    assert len(xds.snapshots) == 3
    assert kube.calls == [] and kube.events == []


def test_a_conflict_on_finalizers_wakes_the_loop_for_another_try(fake_kube, walkthrough):
    from lab.controller.kube import Conflict
    c, kube, cache, xds = controller(fake_kube, walkthrough)
    kube.fail_next["set_finalizers"] = Conflict("the object has been modified")
    c.run_pass()
    assert c.wake.is_set()
    without = [o for o in kube.objects["VirtualNode"].values() if not o["metadata"].get("finalizers")] + \
        [o for k in ("Mesh", "VirtualService", "VirtualGateway", "GatewayRoute") for o in kube.objects[k].values()
         if not o["metadata"].get("finalizers")]
    assert len(without) == 1
    c.wake.clear()
    c.run_pass()  # the next pass sets it
    assert all(o["metadata"].get("finalizers") for k in ("Mesh", "VirtualNode", "VirtualService", "VirtualGateway",
                                                          "GatewayRoute") for o in kube.objects[k].values())


def test_an_api_error_on_one_object_does_not_stop_the_others(fake_kube, walkthrough):
    c, kube, cache, xds = controller(fake_kube, walkthrough)
    kube.fail_next["patch_status"] = KubeError("patch status of GatewayRoute: 500 etcd timeout")
    c.run_pass()
    with_status = [o for k in ("Mesh", "VirtualNode", "VirtualService", "VirtualGateway", "GatewayRoute")
                   for o in kube.objects[k].values() if o.get("status")]
    assert len(with_status) == 7
    c.run_pass()  # retried on the next pass
    assert sum(1 for k in ("Mesh", "VirtualNode", "VirtualService", "VirtualGateway", "GatewayRoute")
               for o in kube.objects[k].values() if o.get("status")) == 8


def test_a_nack_becomes_a_warning_event_on_the_proxy_resource(fake_kube, walkthrough):
    c, kube, cache, xds = controller(fake_kube, walkthrough)
    c.run_pass()
    c.on_nack("mesh/my-app-mesh/virtualGateway/appmesh-gateway_appmesh-demo",
              "type.googleapis.com/envoy.config.listener.v3.Listener", "17-4", "invalid listener")
    c.run_pass()
    ev = [e for e in kube.events if e["reason"] == "ConfigRejected"]
    assert len(ev) == 1 and ev[0]["involvedObject"]["name"] == "appmesh-gateway"
    assert "17-4" in ev[0]["message"] and "invalid listener" in ev[0]["message"] and ev[0]["type"] == "Warning"


def test_a_deleted_proxy_resource_clears_its_snapshot(fake_kube, walkthrough):
    c, kube, cache, xds = controller(fake_kube, walkthrough)
    c.run_pass()
    review_vs = [v for v in walkthrough["VirtualService"] if v["metadata"]["name"] == "review-service"]
    vn = next(v for v in walkthrough["VirtualNode"] if v["metadata"]["name"] == "review-service-vn")
    cache.event("VirtualService", "DELETED", review_vs[0])
    cache.event("VirtualNode", "DELETED", vn)
    c.run_pass()
    assert xds.cleared == ["mesh/my-app-mesh/virtualNode/review-service-vn_appmesh-demo"]


# ---- informers ------------------------------------------------------------------------------

def test_an_informer_lists_then_applies_watch_events(fake_kube, walkthrough):
    kube = fake_kube({"Namespace": walkthrough["Namespace"]})
    new_ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "resourceVersion": "9100",
                                                                      "labels": {"mesh": "my-app-mesh"}}}
    kube.watch_script["Namespace"] = [("ADDED", new_ns), ("BOOKMARK", {"metadata": {"resourceVersion": "9200"}})]
    cache, changes = Cache(), []
    inf = Informer(kube, "Namespace", cache, lambda: changes.append(1), threading.Event())
    rv = inf.run_once(None)
    assert rv == "9200"  # resumes after the bookmark
    assert {o["metadata"]["name"] for o in cache.list("Namespace")} == {"appmesh-demo", "kube-system", "shop"}
    assert len(changes) == 2  # the list, the ADDED; not the bookmark
    assert "Namespace" in cache.synced


def test_an_expired_watch_lists_again(fake_kube, walkthrough):
    kube = fake_kube({"Pod": walkthrough["Pod"]})
    kube.watch_script["Pod"] = Gone("watch Pod: too old resource version")
    stop = threading.Event()
    inf = Informer(kube, "Pod", Cache(), lambda: None, stop)
    try:
        inf.run_once("1")
        raise AssertionError("Gone expected")
    except Gone:
        pass
    assert inf.run_once(None)  # a fresh list
    assert [c[0] for c in kube.calls] == ["watch", "list", "watch"]


def test_the_cache_ignores_stale_and_unknown_deletes(walkthrough):
    cache = Cache.from_objects(walkthrough)
    pod = walkthrough["Pod"][0]
    v = cache.version
    assert cache.event("Pod", "MODIFIED", pod) is False  # same resourceVersion
    assert cache.event("Pod", "DELETED", {"metadata": {"name": "nope", "namespace": "x"}}) is False
    assert cache.version == v
    assert cache.event("Pod", "DELETED", pod) is True
    assert cache.get("Pod", pod["metadata"]["namespace"], pod["metadata"]["name"]) is None
