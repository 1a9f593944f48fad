"""The guide's walkthrough on the local lab, with real Envoy and real processes."""
import pytest

from tests.runtime.walkthrough import BAD_HEADER_ROUTE, WALKTHROUGH


pytestmark = pytest.mark.envoy


@pytest.fixture(scope="module")
def walkthrough(lab):
    lab.apply(WALKTHROUGH)
    return lab


def test_products_is_answered_by_product_service_with_the_default_rewrites(walkthrough):
    r = walkthrough.curl("/products")
    assert r.status == 200, r.text
    body = r.json()
    assert body["service"] == "product-service"
    assert body["request"]["path"] == "/"  # the matched prefix is rewritten to /
    assert body["request"]["host"] == "product-service.appmesh-demo.svc.cluster.local"  # Host -> virtual service


def test_reviews_is_answered_by_review_service_and_keeps_the_rest_of_the_path(walkthrough):
    r = walkthrough.curl("/reviews/42?sort=new")
    assert r.status == 200, r.text
    assert r.json()["service"] == "review-service"
    assert r.json()["request"]["path"] == "/42?sort=new"


def test_an_unmatched_path_gets_404_from_the_gateway(walkthrough):
    r = walkthrough.curl("/nothing-here")
    assert r.status == 404


def test_product_service_reaches_review_service_through_the_sidecars(walkthrough):
    r = walkthrough.curl("/products/call/review-service.appmesh-demo.svc.cluster.local:8080/top")
    assert r.status == 200, r.text
    called = r.json()["called"]
    assert called["status"] == 200
    assert called["body"]["service"] == "review-service"
    assert called["body"]["request"]["path"] == "/top"


def test_every_resource_is_active_with_an_arn_and_observed_generation(walkthrough):
    for kind in ("Mesh", "VirtualNode", "VirtualService", "VirtualGateway", "GatewayRoute"):
        items = walkthrough.get(kind, namespace=None if kind == "Mesh" else "appmesh-demo")
        assert items, kind
        for item in items:
            cond = item["status"]["conditions"][0]
            assert cond["type"] == f"{kind}Active" and cond["status"] == "True", (kind, cond)
            assert item["status"]["observedGeneration"] == item["metadata"]["generation"]
            assert any(k.endswith("ARN") and v.startswith("arn:aws:appmesh:") for k, v in item["status"].items())


def test_meshed_pods_have_their_sidecar_and_the_gateway_pod_runs_envoy(walkthrough):
    pods = {p["owner"]: p for p in walkthrough.pods("appmesh-demo")}
    assert pods["product-service"]["ready"] == "2/2"
    assert pods["review-service"]["ready"] == "2/2"
    assert [c["name"] for c in pods["appmesh-gateway"]["containers"]] == ["envoy"]
    assert pods["appmesh-gateway"]["role"] == "gateway"


def test_a_rejected_apply_changes_nothing(walkthrough):
    before = {(i["kind"], i["metadata"]["name"]) for k in ("VirtualService", "GatewayRoute")
              for i in walkthrough.get(k, namespace="appmesh-demo")}
    text = """
apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualService
metadata: {name: brand-new, namespace: appmesh-demo}
spec:
  provider: {virtualNode: {virtualNodeRef: {name: product-service-vn}}}
---
apiVersion: appmesh.k8s.aws/v1beta2
kind: GatewayRoute
metadata: {name: broken, namespace: appmesh-demo}
spec:
  httpRoute:
    match: {prefix: /broken}
    action: {gatewayRouteTarget: {virtualService: {virtualServiceRef: {name: brand-new}}}}
"""
    out = walkthrough.try_apply(text, is_text=True)
    assert out["rejected"]
    assert any("gatewayRouteTarget" in p["path"] for p in out["problems"])
    after = {(i["kind"], i["metadata"]["name"]) for k in ("VirtualService", "GatewayRoute")
             for i in walkthrough.get(k, namespace="appmesh-demo")}
    assert after == before  # the valid VirtualService of the same apply was not stored either


def test_an_image_without_a_local_command_is_rejected_at_apply(walkthrough):
    text = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: mystery, namespace: appmesh-demo}
spec:
  selector: {matchLabels: {app: mystery}}
  template:
    metadata:
      labels: {app: mystery}
      annotations: {appmesh.k8s.aws/sidecarInjectorWebhook: disabled}
    spec:
      containers: [{name: mystery, image: example.com/mystery:1}]
"""
    out = walkthrough.try_apply(text, is_text=True)
    assert out["rejected"]
    problem = next(p for p in out["problems"] if p["code"] == "local-command")
    assert "lab.appmesh.dev/local-command" in problem["hint"]
    assert not walkthrough.get("Deployment", "mystery", "appmesh-demo")


def test_a_gateway_route_to_a_missing_service_is_stored_but_not_active(walkthrough):
    text = """
apiVersion: appmesh.k8s.aws/v1beta2
kind: GatewayRoute
metadata: {name: dangling, namespace: appmesh-demo}
spec:
  httpRoute:
    match: {prefix: /dangling}
    action: {target: {virtualService: {virtualServiceRef: {name: does-not-exist}}}}
"""
    walkthrough.apply_text(text)
    try:
        cond = walkthrough.condition("GatewayRoute", "dangling", "appmesh-demo")
        assert cond["status"] == "False" and cond["reason"] == "VirtualServiceNotFound"
        events = walkthrough.events("GatewayRoute", "dangling", "appmesh-demo")
        assert any(e["reason"] == "ReconcileError" for e in events)
        assert walkthrough.curl("/dangling").status == 404  # not programmed: the request falls through
    finally:
        walkthrough.delete_resource("GatewayRoute", "dangling", "appmesh-demo")


def test_a_header_name_with_cr_lf_is_refused_at_apply_and_traffic_keeps_flowing(walkthrough):
    lab = walkthrough
    out = lab.try_apply(BAD_HEADER_ROUTE, is_text=True)
    assert out["rejected"] and not out["results"], out
    errors = [p for p in out["problems"] if p["severity"] == "error"]
    assert [(p["path"], p["line"]) for p in errors] == [("spec.httpRoute.match.headers[0].name", 11)], errors
    assert errors[0]["file"] == "<notebook>" and "CR, LF" in errors[0]["message"] and errors[0]["hint"]
    assert not lab.get("GatewayRoute", "bad-header-route", namespace="appmesh-demo")
    for path in ("/products", "/reviews"):
        assert lab.curl(path).status == 200, path


def test_the_cli_says_which_namespace_a_name_is_in_and_the_kind_meant(walkthrough):
    """A name asked for in the wrong namespace (no -n: default) names the namespace it is in, for
    wait, describe, get and delete (which deletes nothing); a misspelt kind gets the nearest one."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, APPMESH_LAB_HOME=str(walkthrough.client.paths.home))

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "lab.cli", *args], capture_output=True, text=True, env=env,
                              timeout=60)
    hint = "product-gateway-route is in namespace appmesh-demo: add -n appmesh-demo"
    for args in (("wait", "gr/product-gateway-route", "--for=condition=GatewayRouteActive", "--timeout=0.2s"),
                 ("describe", "gr", "product-gateway-route"), ("get", "gr", "product-gateway-route"),
                 ("delete", "gr", "product-gateway-route", "--no-wait")):
        r = cli(*args)
        assert r.returncode == 1 and hint in r.stderr, (args, r.stdout, r.stderr)
    assert walkthrough.get("GatewayRoute", "product-gateway-route", namespace="appmesh-demo")
    r = cli("get", "gatewayroutez", "-A")
    assert r.returncode == 1 and "did you mean 'gatewayroute" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_curl_to_a_tls_listener_and_names_several_gateways_share(walkthrough):
    """`appmesh-lab curl` speaks plain HTTP: to a TLS listener (manifests/examples/tls-gateway) it
    said "Remote end closed connection without response" (after its retries); now that the listener
    terminates TLS, with the curl command and the lab's CA."""
    import os
    import subprocess
    import sys
    walkthrough.apply("manifests/examples/tls-gateway/")
    try:
        env = dict(os.environ, APPMESH_LAB_HOME=str(walkthrough.client.paths.home))
        r = subprocess.run([sys.executable, "-m", "lab.cli", "curl", "--gateway", "gateway_ex-tls-gateway", "/x"],
                           capture_output=True, text=True, env=env, timeout=60)
        ca = walkthrough.client.paths.home / "certs" / "ca" / "ca.crt"
        assert r.returncode == 1 and "terminates TLS" in r.stderr and f"curl --cacert {ca} https://localhost:" in r.stderr, r.stderr
        assert walkthrough.curl("/products").status == 200   # a plain HTTP gateway is unaffected
        # --gateway names one gateway: a prefix of two is refused, naming both (it took the first);
        # a name no gateway has lists those running (it said "no virtual gateway is running")
        r = subprocess.run([sys.executable, "-m", "lab.cli", "curl", "--gateway", "vg/", "/products"],
                           capture_output=True, text=True, env=env, timeout=60)
        assert r.returncode == 1 and "'vg/' names 2 gateways: vg/appmesh-gateway_appmesh-demo, " \
                                     "vg/gateway_ex-tls-gateway" in r.stderr, r.stderr
        r = subprocess.run([sys.executable, "-m", "lab.cli", "curl", "--gateway", "vg/nosuch", "/products"],
                           capture_output=True, text=True, env=env, timeout=60)
        assert r.returncode == 1 and "no running gateway is named 'vg/nosuch'" in r.stderr \
            and "running: vg/appmesh-gateway_appmesh-demo, vg/gateway_ex-tls-gateway" in r.stderr, r.stderr
        # stats/config-dump by a name two proxies share (both examples' VirtualGateway is `gateway`):
        # refused, naming a pod of each (it read the first pod's Envoy, in either namespace)
        walkthrough.apply("manifests/examples/priority/")
        r = subprocess.run([sys.executable, "-m", "lab.cli", "stats", "gateway"], capture_output=True, text=True,
                           env=env, timeout=60)
        assert r.returncode == 1 and "'gateway' names 2 proxies; name one by its pod: ex-priority/gateway-" in r.stderr \
            and ", ex-tls-gateway/gateway-" in r.stderr, r.stderr
        r = subprocess.run([sys.executable, "-m", "lab.cli", "stats", "gateway_ex-tls-gateway", "--filter", "ssl"],
                           capture_output=True, text=True, env=env, timeout=60)
        assert r.returncode == 0 and "ssl.handshake" in r.stdout, r.stderr
    finally:
        walkthrough.delete("manifests/examples/tls-gateway/")
        walkthrough.delete("manifests/examples/priority/")


def test_apply_of_nothing_says_so(walkthrough, tmp_path):
    """An empty folder is an error, as `kubectl apply` has it ("no objects passed to apply"); a folder
    of kinds the lab passes over (manifests/crds/) says it applied nothing. Both printed nothing."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, APPMESH_LAB_HOME=str(walkthrough.client.paths.home))

    def apply(path, *more):
        return subprocess.run([sys.executable, "-m", "lab.cli", "apply", "-f", str(path), *more], capture_output=True,
                              text=True, env=env, timeout=60)
    r = apply("manifests/walkthrough/", "--dry-run")   # the daemon lists no results for a dry run
    assert r.returncode == 0 and "(dry run: nothing was changed)" in r.stdout and not r.stderr, r
    r = apply(tmp_path)
    assert r.returncode == 1 and "no objects passed to apply" in r.stderr and "-R reads subfolders" in r.stderr, r
    r = apply("manifests/crds/")
    assert r.returncode == 0 and "nothing applied: the local lab passes over 6 apiextensions.k8s.io/v1/" \
                                 "CustomResourceDefinition" in r.stdout, r
