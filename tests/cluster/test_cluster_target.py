"""ClusterTarget with the CLIs faked at the `sh` boundary (the exact command lines are asserted),
the Kubernetes API served by a stub with recorded objects, and AWS by moto."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from lab.targets import get_target
from lab.targets.base import TargetError
from lab.targets.cluster import (
    NLB_ANNOTATION,
    ClusterTarget,
    cluster_load_balancers,
    ecr_delete,
    ecr_ensure,
    main,
    parse_results,
    pod_view,
    wait_load_balancers_gone,
)
from tests.cluster.conftest import Runner, cluster_objects


def kind_target(api, runner, **kw):
    return ClusterTarget("kind", runner=runner, kube=api.client(), **kw)


def test_get_target_builds_cluster_targets_with_their_defaults():
    t = get_target("kind", echo=False)
    assert (t.name, t.cluster_name, t.region, t.context) == (
        "kind", "appmesh-gateway-demo", None, "kind-appmesh-gateway-demo")
    e = get_target("eks", echo=False)
    assert (e.name, e.cluster_name, e.region) == ("eks", "appmesh-gateway-demo", "us-west-2")
    # a region means nothing to kind (the notebooks pass theirs to every target)
    assert get_target("kind", echo=False, region="us-west-2").region is None
    with pytest.raises(TargetError):
        ClusterTarget("minikube")


def test_up_runs_the_up_script_prints_it_and_waits_for_the_controller(api, runner, capsys):
    t = kind_target(api, runner)
    st = t.up()
    assert runner.lines == ["kind get clusters", "scripts/kind-up.sh"]  # no cluster yet: the script runs
    assert runner.calls[1]["env"] == {"CLUSTER_NAME": "appmesh-gateway-demo"}
    assert "$ CLUSTER_NAME=appmesh-gateway-demo scripts/kind-up.sh" in capsys.readouterr().out
    assert st["controller"] == {"ready": 1, "replicas": 1}
    t.down()
    assert runner.lines[-1] == "scripts/kind-down.sh"


def test_up_on_a_running_cluster_with_a_ready_controller_changes_nothing(api, capsys, monkeypatch):
    """Every notebook calls up(): the second time it only checks, and makes the cluster's kube
    context the current one if it is not (force=True runs the script)."""
    from kubernetes import config
    active = {"name": "kind-appmesh-gateway-demo"}
    monkeypatch.setattr(config, "list_kube_config_contexts", lambda *a, **kw: ([active], active))
    runner = Runner({"kind get clusters": "appmesh-gateway-demo\n"})
    t = kind_target(api, runner)
    st = t.up()
    assert runner.lines == ["kind get clusters"]
    assert "is up and the controller is ready" in capsys.readouterr().out
    assert st["controller"] == {"ready": 1, "replicas": 1}
    active["name"] = "some-other-cluster"
    t.up()
    assert runner.lines[-1] == "kubectl config use-context kind-appmesh-gateway-demo"
    assert "$ kubectl config use-context kind-appmesh-gateway-demo" in capsys.readouterr().out
    t.up(force=True)
    assert runner.lines[-1] == "scripts/kind-up.sh"


def test_up_runs_the_script_when_the_controller_is_not_ready(api):
    runner = Runner({"kind get clusters": "appmesh-gateway-demo\n"})
    api.get("Deployment", "appmesh-system", "appmesh-lab-controller")["status"]["readyReplicas"] = 0
    assert not kind_target(api, runner)._controller_ready()

    class UpMakesItReady(Runner):
        def __call__(self, argv, **kw):
            if argv == ["scripts/kind-up.sh"]:  # what the script's helm upgrade + rollout achieve
                api.get("Deployment", "appmesh-system", "appmesh-lab-controller")["status"]["readyReplicas"] = 1
            return super().__call__(argv, **kw)
    runner = UpMakesItReady({"kind get clusters": "appmesh-gateway-demo\n"})
    kind_target(api, runner).up()
    assert runner.lines == ["kind get clusters", "scripts/kind-up.sh"]


def test_eks_running_asks_the_eks_api_and_explains_other_failures(aws):
    iam = aws.client("iam")
    role = iam.create_role(RoleName="eks", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    aws.client("eks", region_name="us-west-2").create_cluster(
        name="appmesh-gateway-demo", roleArn=role, resourcesVpcConfig={"subnetIds": []})
    assert ClusterTarget("eks", aws=aws).running()
    assert not ClusterTarget("eks", aws=aws, region="eu-west-1").running()

    from botocore.exceptions import NoCredentialsError

    class NoCredentials:
        def client(self, *a, **kw):
            class Client:
                def describe_cluster(self, **kw):
                    raise NoCredentialsError()

                def get_caller_identity(self):
                    raise NoCredentialsError()
            return Client()
    t = ClusterTarget("eks", aws=NoCredentials())
    with pytest.raises(TargetError, match="configure AWS credentials"):
        t.running()
    with pytest.raises(TargetError, match="configure AWS credentials"):
        t.kube  # noqa: B018 (the kube context needs the account id)


def test_eks_up_and_down_pass_the_cluster_and_region(api, runner, aws):
    t = ClusterTarget("eks", runner=runner, kube=api.client(), aws=aws, cluster_name="demo", region="eu-west-1")
    t.down()
    assert runner.calls[-1]["argv"] == ["scripts/eks-down.sh"]
    assert runner.calls[-1]["env"] == {"CLUSTER_NAME": "demo", "REGION": "eu-west-1"}


def test_kind_apply_is_kubectl_apply_and_waits_for_convergence(api, runner, capsys):
    runner.answers["kubectl apply"] = ('namespace/appmesh-demo unchanged\nmesh.appmesh.k8s.aws/my-app-mesh created\n'
                                      'virtualnode.appmesh.k8s.aws/product-service-vn configured\n')
    t = kind_target(api, runner)
    results = t.apply("manifests/walkthrough/")
    assert runner.lines == ["kubectl apply -f manifests/walkthrough/"]
    assert runner.calls[0]["input"] is None
    assert results == [{"kind": "namespace", "namespace": "", "name": "appmesh-demo", "action": "unchanged"},
                       {"kind": "mesh", "namespace": "", "name": "my-app-mesh", "action": "created"},
                       {"kind": "virtualnode", "namespace": "", "name": "product-service-vn", "action": "configured"}]
    assert "$ kubectl apply -f manifests/walkthrough/" in capsys.readouterr().out


def test_convergence_waits_for_a_stale_app_mesh_object(api, runner):
    vn = api.get("VirtualNode", "appmesh-demo", "product-service-vn")
    vn["metadata"]["generation"] = 2  # changed; the controller has not reconciled it yet
    t = kind_target(api, runner)
    with pytest.raises(AssertionError, match="VirtualNode appmesh-demo/product-service-vn not reconciled"):
        t.converge(timeout=0.1)


def test_eks_apply_pulls_the_sample_app_from_ecr_and_asks_for_an_nlb(api, runner, aws, capsys):
    t = ClusterTarget("eks", runner=runner, kube=api.client(), aws=aws)
    t.apply("manifests/walkthrough/", wait=False)
    (call,) = runner.calls
    assert call["argv"] == ["kubectl", "apply", "-f", "-"]
    docs = [d for d in yaml.safe_load_all(call["input"]) if d]
    deploys = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    assert deploys["product-service"]["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "123456789012.dkr.ecr.us-west-2.amazonaws.com/appmesh-lab/sample-app:0.1.0"
    assert deploys["appmesh-gateway"]["spec"]["template"]["spec"]["containers"][0]["image"] == "envoyproxy/envoy:v1.40.0"
    gw = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "appmesh-gateway")
    assert gw["metadata"]["annotations"] == {NLB_ANNOTATION: "nlb"}
    plain = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "product-service")
    assert "annotations" not in plain["metadata"]
    from tests.conftest import ROOT
    expected = [d["metadata"]["name"] for f in sorted((ROOT / "manifests" / "walkthrough").glob("*.yaml"))
                for d in yaml.safe_load_all(f.read_text()) if d]
    assert [d["metadata"]["name"] for d in docs] == expected  # every document of the walkthrough, in order
    out = capsys.readouterr().out
    assert "$ kubectl apply -f manifests/walkthrough/   # with the kit's images (appmesh-lab/*) from " in out


def test_a_rejected_apply_raises_with_kubectls_message(api):
    from lab.targets.base import TargetError as TE
    runner = Runner({"kubectl apply": TE('`kubectl apply -f x` failed (exit 1):\nThe GatewayRoute "bad" is invalid: '
                                         'spec.httpRoute.action.target: Required value')})
    t = kind_target(api, runner)
    with pytest.raises(TargetError, match="Required value"):
        t.apply("manifests/walkthrough/10-product-gateway-route.yaml")
    out = t.try_apply("manifests/walkthrough/10-product-gateway-route.yaml")
    assert out["rejected"] is True and any("Required value" in p["message"] for p in out["problems"])


def test_try_apply_reports_the_models_findings_too(api, runner):
    t = kind_target(api, runner, echo=False)
    text = ("apiVersion: appmesh.k8s.aws/v1beta2\nkind: GatewayRoute\nmetadata: {name: bad, namespace: appmesh-demo}\n"
            "spec:\n  httpRoute:\n    match: {prefix: /x}\n    action:\n      gatewayRouteTarget: {}\n")
    out = t.try_apply(text, is_text=True)
    assert out["rejected"] is False  # the fake kubectl accepted it ...
    assert any("gatewayRouteTarget" in p["message"] or "target" in p["path"] for p in out["problems"])  # ... the model did not
    assert runner.calls[0]["input"] == text


def test_delete_commands(api, runner):
    runner.answers["kubectl delete"] = 'gatewayroute.appmesh.k8s.aws "product-gateway-route" deleted\n'
    t = kind_target(api, runner)
    assert t.delete("manifests/walkthrough/10-product-gateway-route.yaml") == [
        {"kind": "gatewayroute", "namespace": "", "name": "product-gateway-route", "action": "deleted"}]
    t.delete_resource("VirtualService", "review-service")
    t.delete_resource("Mesh", "my-app-mesh")
    assert runner.lines == [
        "kubectl delete -f manifests/walkthrough/10-product-gateway-route.yaml --ignore-not-found --wait=false",
        "kubectl delete virtualservice review-service --ignore-not-found --wait=false -n appmesh-demo",
        "kubectl delete mesh my-app-mesh --ignore-not-found --wait=false"]


def test_get_returns_api_objects_with_their_status(api, runner):
    t = kind_target(api, runner, echo=False)
    (vs,) = t.get("VirtualService", "review-service", "appmesh-demo")
    assert vs["status"]["conditions"][0]["status"] == "True"
    assert t.condition("VirtualService", "review-service", "appmesh-demo")["type"] == "VirtualServiceActive"
    assert t.wait_active("GatewayRoute", "product-gateway-route", "appmesh-demo", timeout=1)["status"] == "True"
    assert [m["metadata"]["name"] for m in t.get("Mesh")] == ["my-app-mesh"]
    assert len(t.get("Deployment", namespace="appmesh-demo")) == 3
    assert t.get("VirtualService", "nope", "appmesh-demo") == []


def test_pods_are_described_like_the_local_targets(api, runner):
    t = kind_target(api, runner)
    pods = {p["owner"]: p for p in t.pods("appmesh-demo") if p["ready"] == "2/2" or p["role"] == "gateway"}
    assert pods["product-service"]["role"] == "meshed"
    assert pods["product-service"]["proxy"] == "mesh/my-app-mesh/virtualNode/product-service-vn_appmesh-demo"
    assert pods["review-service"]["restarts"] == 1
    assert pods["appmesh-gateway"]["role"] == "gateway" and pods["appmesh-gateway"]["ready"] == "1/1"
    not_ready = [p for p in t.pods() if p["status"] == "NotReady"]
    assert len(not_ready) == 1 and not_ready[0]["ready"] == "1/2"


def test_events_of_a_resource_oldest_first(api, runner):
    t = kind_target(api, runner)
    evs = t.events("VirtualService", "review-service", "appmesh-demo")
    assert [e["reason"] for e in evs] == ["Active", "PendingReferencesDeletion"]
    assert evs[1]["type"] == "Warning"


def test_kind_gateway_url_moves_the_service_to_a_published_node_port(api, runner):
    t = kind_target(api, runner)
    assert t.gateway_url() == "http://127.0.0.1:8080"
    assert runner.lines == ['kubectl patch service appmesh-gateway -n appmesh-demo --type json -p '
                            '[{"op": "replace", "path": "/spec/ports/0/nodePort", "value": 30080}]',
                            "docker port appmesh-gateway-demo-control-plane"]  # where the node publishes it
    svc = api.get("Service", "appmesh-demo", "appmesh-gateway")
    svc["spec"]["ports"][0]["nodePort"] = 30081
    assert t.gateway_url() == "http://127.0.0.1:8081"
    assert len(runner.calls) == 2  # already published: nothing to patch (and docker asked once)


def test_kind_gateway_url_reaches_a_second_listener_through_its_own_service_port(api, runner):
    """A gateway with two listeners: `listener` picks the Service port whose targetPort it is, and
    only that port is moved to a published NodePort (one the first port does not hold)."""
    svc = api.get("Service", "appmesh-demo", "appmesh-gateway")
    first = svc["spec"]["ports"][0]
    first["nodePort"] = 30080
    svc["spec"]["ports"].append({"name": "admin", "port": 81, "targetPort": 8090, "nodePort": 31555})
    t = kind_target(api, runner)
    assert t.gateway_url(listener=first["targetPort"]) == "http://127.0.0.1:8080"
    assert runner.lines == ["docker port appmesh-gateway-demo-control-plane"]   # published already: no patch
    assert t.gateway_url(listener=8090) == "http://127.0.0.1:8081"
    assert runner.lines[-1] == ('kubectl patch service appmesh-gateway -n appmesh-demo --type json -p '
                                '[{"op": "replace", "path": "/spec/ports/1/nodePort", "value": 30081}]')
    with pytest.raises(TargetError, match="no port in front of listener 9999"):
        t.gateway_url(listener=9999)


def test_eks_gateway_url_is_the_load_balancers_name(api, runner, aws):
    t = ClusterTarget("eks", runner=runner, kube=api.client(), aws=aws)
    assert t.gateway_url() == "http://a1b2c3-0123456789.elb.us-east-1.amazonaws.com:80"
    from lab.notebook import gateway_address
    assert gateway_address(t) == ("a1b2c3-0123456789.elb.us-east-1.amazonaws.com", 80)
    api.get("Service", "appmesh-demo", "appmesh-gateway")["status"] = {"loadBalancer": {}}
    with pytest.raises(TargetError, match="no address yet"):
        t.gateway_url()


def test_no_gateway_service_says_what_to_apply(api, runner):
    api.store = {k: v for k, v in api.store.items() if k[1] != "services"}
    with pytest.raises(TargetError, match="apply one"):
        kind_target(api, runner).gateway_url()


def test_curl_sends_the_request_to_the_gateway(api, runner, monkeypatch, capsys):
    seen = {}

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            return

        def do_GET(self):  # noqa: N802
            seen["path"], seen["x"] = self.path, self.headers.get("x-demo")
            body = json.dumps({"service": "product-service"}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        t = kind_target(api, runner)
        monkeypatch.setattr(t, "gateway_url", lambda gateway=None: f"http://127.0.0.1:{httpd.server_address[1]}")
        r = t.curl("/products/1", headers={"x-demo": "1"})
        assert r.status == 200 and r.json() == {"service": "product-service"}
        assert seen == {"path": "/products/1", "x": "1"}
        assert f"$ curl -H 'x-demo: 1' http://127.0.0.1:{httpd.server_address[1]}/products/1" in capsys.readouterr().out
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_logs_and_kill_run_kubectl_on_the_pod(api, runner):
    runner.answers["kubectl logs"] = "GET /products 200\n"
    t = kind_target(api, runner)
    assert t.logs("product-service", tail=5) == "GET /products 200\n"
    pod = runner.calls[0]["argv"][2]
    assert pod.startswith("product-service-6d8f9c7b5d-")
    assert runner.lines[0] == f"kubectl logs {pod} -n appmesh-demo -c app --tail 5"
    t.logs("appmesh-gateway", container="envoy")
    assert runner.calls[1]["argv"][-2:] == ["-c", "envoy"]
    assert t.kill("review-service", "envoy")
    assert runner.calls[2]["argv"][:2] == ["kubectl", "exec"] and runner.calls[2]["argv"][-4:] == [
        "--", "/bin/sh", "-c", "kill -TERM 1"]
    with pytest.raises(TargetError, match="no pod"):
        t.logs("nothing")


def test_config_dump_and_stats_read_the_envoy_admin_of_the_proxys_pod(api, runner):
    asked = []

    def admin(ns, pod, path):
        asked.append((ns, pod, path))
        return b'{"configs": []}' if path == "/config_dump" else b"cluster.x.upstream_rq_200: 7\nserver.state: 0\nname: x\n"
    t = ClusterTarget("kind", runner=runner, kube=api.client(), admin=admin)
    assert t.config_dump("appmesh-gateway") == {"configs": []}
    assert t.stats("product-service-vn_appmesh-demo", filter="upstream") == {"cluster.x.upstream_rq_200": 7}
    assert asked[0][0] == "appmesh-demo" and asked[0][1].startswith("appmesh-gateway-")
    assert asked[1][1].startswith("product-service-") and asked[1][2] == "/stats"  # filtered here, as Envoy would
    with pytest.raises(TargetError, match="no pod with an Envoy"):
        t.config_dump("unknown")


def test_parse_results_and_pod_view_are_robust():
    assert parse_results("error: something\n\n") == []
    p = cluster_objects()["Pod"][0]
    p["status"].pop("containerStatuses")
    p["status"]["phase"] = "Pending"
    v = pod_view(p)
    assert v["status"] == "Pending" and v["ready"].startswith("0/")


# ---- AWS (moto) ------------------------------------------------------------------------------

def test_ecr_repositories_are_created_once_and_deleted_with_their_images(aws):
    registry = ecr_ensure(aws, "us-east-1")
    assert registry == "123456789012.dkr.ecr.us-east-1.amazonaws.com"
    assert ecr_ensure(aws, "us-east-1") == registry  # idempotent
    ecr = aws.client("ecr", region_name="us-east-1")
    names = sorted(r["repositoryName"] for r in ecr.describe_repositories()["repositories"])
    assert names == ["appmesh-lab/controller", "appmesh-lab/grpc-echo", "appmesh-lab/proxy-init",
                     "appmesh-lab/sample-app"]
    assert ecr.describe_repositories(repositoryNames=["appmesh-lab/controller"])["repositories"][0][
        "imageScanningConfiguration"] == {"scanOnPush": True}
    ecr.put_image(repositoryName="appmesh-lab/controller", imageManifest='{"schemaVersion": 2}', imageTag="0.1.0",
                  imageManifestMediaType="application/vnd.docker.distribution.manifest.v2+json")
    assert sorted(ecr_delete(aws, "us-east-1")) == names
    assert ecr.describe_repositories()["repositories"] == []
    assert ecr_delete(aws, "us-east-1") == []


def _nlb(aws, name, cluster):
    ec2 = aws.client("ec2", region_name="us-east-1")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    elb = aws.client("elbv2", region_name="us-east-1")
    tags = [{"Key": f"kubernetes.io/cluster/{cluster}", "Value": "owned"}] if cluster else []
    return elb.create_load_balancer(Name=name, Subnets=[subnet], Type="network", Tags=tags or
                                    [{"Key": "other", "Value": "x"}])["LoadBalancers"][0]["LoadBalancerArn"]


def test_the_clusters_load_balancers_are_found_by_their_tag(aws):
    mine = _nlb(aws, "gw-nlb", "appmesh-gateway-demo")
    _nlb(aws, "someone-else", None)
    assert cluster_load_balancers(aws, "us-east-1", "appmesh-gateway-demo") == [mine]
    with pytest.raises(TargetError, match="still exist"):
        wait_load_balancers_gone(aws, "us-east-1", "appmesh-gateway-demo", timeout=0, sleep=lambda s: None)
    aws.client("elbv2", region_name="us-east-1").delete_load_balancer(LoadBalancerArn=mine)
    wait_load_balancers_gone(aws, "us-east-1", "appmesh-gateway-demo", timeout=0)


def test_the_scripts_aws_steps_from_the_command_line(aws, capsys):
    assert main(["ecr-ensure", "--region", "us-east-1", "appmesh-lab/controller"]) == 0
    assert capsys.readouterr().out.strip() == "123456789012.dkr.ecr.us-east-1.amazonaws.com"
    assert main(["elb-wait-gone", "--region", "us-east-1", "--cluster", "c", "--timeout", "0"]) == 0
    assert main(["ecr-delete", "--region", "us-east-1", "appmesh-lab/controller"]) == 0
    assert "deleted ECR repositories: appmesh-lab/controller" in capsys.readouterr().out


def test_a_notebook_cluster_step_runs_and_shows_its_output(api, capsys):
    runner = Runner({"kubectl get nodes": "NAME STATUS\nappmesh-lab-control-plane Ready\n"})
    t = kind_target(api, runner)
    from lab import notebook as nb
    nb.cluster_step(t, "kubectl get nodes -o wide")
    out = capsys.readouterr().out
    assert "appmesh-lab-control-plane Ready" in out and runner.lines == ["kubectl get nodes -o wide"]


def api_server_service(family: str) -> dict:
    """default/kubernetes as a single-stack cluster of that IP family has it."""
    ip = "10.100.0.1" if family == "IPv4" else "fd00:10:96::1"
    return {"metadata": {"name": "kubernetes", "namespace": "default"},
            "spec": {"type": "ClusterIP", "clusterIP": ip, "ipFamilies": [family], "ipFamilyPolicy": "SingleStack",
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443}]}}


def test_install_controller_is_helm_upgrade_install_with_ecr_images_on_eks(api, runner, aws):
    api.put("Service", api_server_service("IPv4"))
    t = ClusterTarget("eks", runner=runner, kube=api.client(), aws=aws)
    t.install_controller()
    reg = "123456789012.dkr.ecr.us-west-2.amazonaws.com"
    assert runner.lines == [
        "helm get values appmesh-lab-controller --namespace appmesh-system --output json",   # no release yet
        "helm upgrade --install appmesh-lab-controller manifests/charts/appmesh-lab-controller --namespace "
        "appmesh-system --create-namespace --wait --timeout 5m --set ipFamily=IPv4 "
        f"--set images.controller.repository={reg}/appmesh-lab/controller "
        f"--set images.proxyInit.repository={reg}/appmesh-lab/proxy-init --set region=us-west-2"]


def test_install_controller_keeps_the_clusters_ip_family(api, runner):
    """A helm upgrade without a value returns it to the chart's default (ipFamily: IPv4): on an
    IPv6 cluster the notebook step gives IPv6 again, read from the API server's own Service, so the
    Mesh webhook keeps setting ipPreference IPv6_ONLY."""
    api.put("Service", api_server_service("IPv6"))
    kind_target(api, runner).install_controller()
    assert runner.lines[-1].startswith("helm upgrade --install ") and "--set ipFamily=IPv6" in runner.lines[-1]


def _standin_helm(monkeypatch):
    """The stand-in `helm` (tests/cluster/standins/tools.py) over an in-memory state, as a runner:
    a refusal is the runner's TargetError, as _sh_runner makes of a non-zero exit."""
    from tests.cluster.standins import tools
    state = {"releases": {}, "objects": {}}

    def call(method, path, body=None):
        if (method, path) == ("GET", "/standin"):
            return json.loads(json.dumps(state))
        if (method, path) == ("POST", "/standin/state"):
            state.update(body)
        elif (method, path) == ("POST", "/standin/extra"):
            state["objects"].update({f'{o["kind"]}/{o["metadata"]["name"]}': o for o in body["objects"]})
        return {}
    monkeypatch.setattr(tools, "call", call)

    def run(argv, input=None, env=None, timeout=None, stream=False):
        assert argv[0] == "helm", argv
        try:
            return tools.helm(list(argv[1:]), input)
        except tools.Fail as exc:
            raise TargetError(str(exc)) from exc
    return run, state


def test_install_controller_keeps_the_image_tags_the_up_script_gave(api, monkeypatch):
    """scripts/kind-up.sh and eks-up.sh install the chart with the images' content tags; lesson 02's
    `helm upgrade --install` gives them again (read from the release), so the controller's
    Deployment keeps its image and does not roll to the chart's default tag (stand-in helm)."""
    api.put("Service", api_server_service("IPv4"))
    run, state = _standin_helm(monkeypatch)
    controller, proxy_init = "0.1.0-0123456789ab", "0.1.0-ba9876543210"
    run(["helm", "upgrade", "--install", "appmesh-lab-controller", "manifests/charts/appmesh-lab-controller",
         "--namespace", "appmesh-system", "--create-namespace", "--set", f"images.controller.tag={controller}",
         "--set", f"images.proxyInit.tag={proxy_init}", "--set", "ipFamily=IPv4", "--wait"])   # as kind-up.sh
    deployment = state["objects"]["Deployment/appmesh-lab-controller"]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == f"appmesh-lab/controller:{controller}"
    calls = []
    ClusterTarget("kind", runner=lambda argv, **kw: calls.append(argv) or run(argv, **kw), kube=api.client(),
                  echo=False).install_controller()
    upgrade = " ".join(calls[-1])
    assert f"--set images.controller.tag={controller}" in upgrade and f"--set images.proxyInit.tag={proxy_init}" in upgrade
    after = state["objects"]["Deployment/appmesh-lab-controller"]
    assert state["releases"]["appmesh-lab-controller"]["revision"] == 2
    assert after["spec"]["template"] == deployment["spec"]["template"], "the controller's pods would roll"


def test_install_controller_without_a_release_gives_no_tag(api, monkeypatch):
    """No release yet (the chart installed by the lesson first): the chart's default tag, which
    scripts/build-images.sh gives every image too."""
    api.put("Service", api_server_service("IPv4"))
    run, state = _standin_helm(monkeypatch)
    with pytest.raises(TargetError, match="release: not found"):
        run(["helm", "get", "values", "appmesh-lab-controller", "--namespace", "appmesh-system", "--output", "json"])
    ClusterTarget("kind", runner=run, kube=api.client(), echo=False).install_controller()
    image = state["objects"]["Deployment/appmesh-lab-controller"]["spec"]["template"]["spec"]["containers"][0]
    assert image["image"] == "appmesh-lab/controller:0.1.0"
    assert state["releases"]["appmesh-lab-controller"]["set"] == ["ipFamily=IPv4"]


def test_install_controller_stops_when_the_ip_family_is_unknown(api, runner):
    with pytest.raises(TargetError, match=r"the cluster's IP family is unknown: .*ipFamilies none"):
        kind_target(api, runner).install_controller()   # no default/kubernetes Service to read
    assert runner.lines == []


def test_running_asks_kind_or_eks(api, aws):
    assert ClusterTarget("kind", runner=Runner({"kind get clusters": "appmesh-gateway-demo\nother\n"})).running()
    assert not ClusterTarget("kind", runner=Runner({"kind get clusters": "other\n"})).running()
    assert not ClusterTarget("eks", aws=aws).running()


def test_up_and_down_stream_the_scripts_output(api, runner):
    t = kind_target(api, runner)
    t.up()
    t.down()
    assert [(c["argv"][0], c["stream"]) for c in runner.calls] == [
        ("kind", False), ("scripts/kind-up.sh", True), ("scripts/kind-down.sh", True)]


def test_the_sh_runner_runs_real_commands_and_reports_failures(capsys):
    from lab.targets.cluster import _sh_runner
    assert _sh_runner(["printf", "a\\nb\\n"]) == "a\nb\n"
    assert _sh_runner(["cat"], input="from stdin") == "from stdin"
    assert _sh_runner(["printf", "x\\ny\\n"], stream=True) == "x\ny\n"
    assert capsys.readouterr().out == "x\ny\n"
    with pytest.raises(TargetError, match=r"`sh -c 'echo bad >&2; exit 3'` failed \(exit 3\):\nbad"):
        _sh_runner(["sh", "-c", "echo bad >&2; exit 3"])
    with pytest.raises(TargetError, match="is not installed"):
        _sh_runner(["no-such-tool-appmesh-lab"])


def test_the_notebooks_make_the_cluster_target_with_their_parameters():
    from lab.notebook import make_target
    t = make_target("eks", echo=False, cluster_name="demo", region="us-west-2", namespace="appmesh-demo",
                    lab_home=None)
    assert isinstance(t, ClusterTarget) and (t.cluster_name, t.region, t.echo) == ("demo", "us-west-2", False)


def test_events_of_the_cluster_scoped_mesh_are_read_from_default(api, runner):
    """The controller writes a Mesh's events in `default` (the API server refuses them
    elsewhere); the target reads them from there."""
    t = kind_target(api, runner)
    evs = t.events("Mesh", "my-app-mesh")
    assert [(e["reason"], e["type"]) for e in evs] == [("Active", "Normal")]


# ---- convergence waits for the proxies' ACK, as each controller replica reports it --------------

def _controller_pod(api, name="appmesh-lab-controller-7f9c-abcde"):
    api.put("Pod", {"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "namespace": "appmesh-system",
                                 "labels": {"app.kubernetes.io/name": "appmesh-lab-controller"}},
                    "spec": {"containers": [{"name": "controller"}]}, "status": {"phase": "Running"}})
    return name


def _current_generations(api=None) -> dict:
    """What a replica whose informers are current reports (lab/runtime/generations.py)."""
    from lab.runtime.generations import generations
    objects = cluster_objects()
    if api is not None:
        objects = {k: [api.get(k, (o["metadata"].get("namespace") or ""), o["metadata"]["name"]) for o in v]
                   for k, v in objects.items()}
    return generations((k, o) for k in ("Mesh", "VirtualNode", "VirtualService", "VirtualRouter", "VirtualGateway",
                                         "GatewayRoute") for o in objects.get(k, []))


def _replica_status(version, acked, connected=True, nack=None, generations=None):
    types = {t: {"acked_version": acked, "last_sent_version": version,
                 "nack": {"version": nack, "message": "invalid route"} if nack and t == "rds" else None}
             for t in ("cds", "eds", "lds", "rds")}
    nid = "mesh/my-app-mesh/virtualGateway/appmesh-gateway_appmesh-demo"
    return {"last_pass": {"generations": _current_generations() if generations is None else generations},
            "proxies": {nid: {"node_id": nid, "connected": connected, "snapshot_version": version, "types": types}}}


def test_convergence_waits_until_every_connected_proxy_acked_its_replicas_version(api, runner):
    pod = _controller_pod(api)
    answers = [_replica_status("7-3", "7-2"), _replica_status("7-3", "7-3")]
    asked = []

    def status(ns, name):
        asked.append((ns, name))
        return answers[min(len(asked) - 1, len(answers) - 1)]
    t = kind_target(api, runner, controller_status=status)
    t.converge(timeout=10)
    assert asked == [("appmesh-system", pod)] * 2


def test_convergence_waits_for_a_replica_whose_informers_lag_the_api_server(api, runner):
    """The leader has reconciled a GatewayRoute's new generation (observedGeneration 2); the other
    replica's informers have not seen it yet, so the configuration it serves, which its proxy has
    ACKed, is the old one. Convergence waits until that replica has published generation 2 (and its
    proxy ACKed it); before, each replica's ACKs alone were read and this returned at once."""
    leader, lagging = _controller_pod(api), _controller_pod(api, "appmesh-lab-controller-7f9c-fghij")
    gr = api.get("GatewayRoute", "appmesh-demo", "product-gateway-route")
    gr["spec"]["httpRoute"]["match"]["prefix"] = "/products-v2"
    gr["metadata"]["generation"] = gr["status"]["observedGeneration"] = 2
    api.put("GatewayRoute", gr)
    now = _current_generations(api)
    assert now["GatewayRoute/appmesh-demo/product-gateway-route"] == 2
    old = {**now, "GatewayRoute/appmesh-demo/product-gateway-route": 1}
    answers = {leader: [_replica_status("7-4", "7-4", generations=now)],
               lagging: [_replica_status("5-2", "5-2", generations=old), _replica_status("5-2", "5-2", generations=old),
                         _replica_status("5-3", "5-2", generations=now), _replica_status("5-3", "5-3", generations=now)]}
    asked = []

    def status(ns, name):
        asked.append(name)
        mine = answers[name]
        return mine[min(asked.count(name) - 1, len(mine) - 1)]
    t = kind_target(api, runner, controller_status=status)
    waiting = t.proxies_waiting()
    assert waiting == ["controller appmesh-lab-controller-7f9c-fghij serves 1 proxy a configuration made before its "
                       "informers saw GatewayRoute/appmesh-demo/product-gateway-route generation 2 (it has 1)"], waiting
    t.converge(timeout=10)
    assert asked.count(lagging) == 4, asked  # lagging, lagging, current but not ACKed, ACKed


def test_a_replica_that_still_has_a_deleted_object_is_behind(api, runner):
    _controller_pod(api)
    extra = {**_current_generations(), "GatewayRoute/appmesh-demo/gone-route": 1}
    t = kind_target(api, runner, controller_status=lambda ns, name: _replica_status("7-3", "7-3", generations=extra))
    assert t.proxies_waiting() == ["controller appmesh-lab-controller-7f9c-abcde serves 1 proxy a configuration made "
                                   "before its informers saw GatewayRoute/appmesh-demo/gone-route deleted (it still "
                                   "has generation 1)"]


def test_convergence_names_the_proxy_that_has_not_acked(api, runner):
    _controller_pod(api)
    t = kind_target(api, runner, controller_status=lambda ns, name: _replica_status("7-3", "7-2"))
    with pytest.raises(AssertionError, match=r"appmesh-gateway_appmesh-demo has not ACKed version 7-3 .*controller "):
        t.converge(timeout=0.1)


def test_a_proxy_connected_to_another_replica_is_that_replicas_to_report(api, runner):
    _controller_pod(api)
    t = kind_target(api, runner, controller_status=lambda ns, name: _replica_status("7-3", None, connected=False))
    t.converge(timeout=5)


def test_convergence_reports_a_nack_with_envoys_message(api, runner):
    _controller_pod(api)
    t = kind_target(api, runner, controller_status=lambda ns, name: _replica_status("7-3", "7-2", nack="7-3"))
    with pytest.raises(AssertionError, match=r"rejected version 7-3 \(rds\): invalid route"):
        t.converge(timeout=0.1)


def test_envoy_admin_is_read_through_the_api_servers_pod_proxy():
    """One GET at /api/v1/namespaces/NS/pods/POD:9901/proxy/PATH with the client's credentials; an
    error answer is a TargetError naming the pod and the path."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from kubernetes import client

    from lab.targets.cluster import pod_proxy_get
    seen = []

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            return

        def do_GET(self):  # noqa: N802
            seen.append((self.path, self.headers.get("Authorization")))
            code, body = (200, b"LIVE\n") if self.path.endswith("/ready") else (503, b"no")
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
    server = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cfg = client.Configuration()
        cfg.host = f"http://127.0.0.1:{server.server_address[1]}"
        cfg.api_key = {"BearerToken": "Bearer t0ken"}
        api = client.ApiClient(cfg)
        assert pod_proxy_get(api, "appmesh-demo", "gw-1", 9901, "/ready") == b"LIVE\n"
        path, auth = seen[0]
        assert path.replace("%3A", ":") == "/api/v1/namespaces/appmesh-demo/pods/gw-1:9901/proxy/ready"
        assert auth == "Bearer t0ken"
        with pytest.raises(TargetError, match="Envoy admin /config_dump in appmesh-demo/gw-1"):
            pod_proxy_get(api, "appmesh-demo", "gw-1", 9901, "/config_dump")
    finally:
        server.shutdown()
        server.server_close()


def test_kind_gateway_port_is_where_docker_publishes_the_nodes_nodeport(api):
    from tests.cluster.conftest import Runner
    svc = api.get("Service", "appmesh-demo", "appmesh-gateway")
    svc["spec"]["ports"][0]["nodePort"] = 30081
    published = Runner({"docker port appmesh-gateway-demo-control-plane":
                        "30080/tcp -> 127.0.0.1:18080\n30081/tcp -> 127.0.0.1:18081\n"})
    t = ClusterTarget("kind", runner=published, kube=api.client(), echo=False)
    assert t.gateway_url() == "http://127.0.0.1:18081"
    assert published.lines == ["docker port appmesh-gateway-demo-control-plane"]
    silent = Runner()  # docker says nothing: the ports manifests/kind/cluster.yaml publishes
    assert ClusterTarget("kind", runner=silent, kube=api.client(), echo=False).gateway_url() == "http://127.0.0.1:8081"


def test_a_gateway_is_named_as_the_lessons_name_it_name_underscore_namespace(api, runner):
    t = kind_target(api, runner)
    assert t.gateway_url("appmesh-gateway_appmesh-demo") == t.gateway_url("appmesh-gateway")
    with pytest.raises(TargetError, match="no LoadBalancer or NodePort Service"):
        t.gateway_url("appmesh-gateway_ex-canary")  # same name, another namespace: not this one


def test_the_scripts_are_found_wherever_the_caller_runs(tmp_path, monkeypatch):
    """A notebook's kernel runs in notebooks/: scripts/kind-down.sh is the checkout's, not a
    missing program (notebook 12 stops the target with it)."""
    from lab.targets.cluster import _sh_runner
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TargetError) as err:
        _sh_runner(["scripts/kind-down.sh"], env={"PATH": f"{tmp_path}:/usr/bin:/bin"})  # it runs: no kind here
    assert "is not installed" not in str(err.value) and "failed (exit 1)" in str(err.value), str(err.value)
    assert "kind" in str(err.value)


def test_the_kube_context_comes_from_kubeconfig_as_it_is_when_used(tmp_path, monkeypatch):
    """The `kubernetes` client fixes its default kubeconfig when it is imported; the target reads
    $KUBECONFIG when it connects, as kubectl does (a kernel that set it later still finds the cluster)."""
    import kubernetes.config  # noqa: F401 - imported before KUBECONFIG is set, as in a long-lived kernel
    import yaml
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "",
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}],
        "contexts": [{"name": "kind-later", "context": {"cluster": "c", "user": "u"}}],
        "users": [{"name": "u", "user": {"token": "x"}}]}))
    monkeypatch.setenv("KUBECONFIG", str(cfg))
    t = ClusterTarget("kind", cluster_name="later", runner=lambda *a, **k: "", echo=False)
    assert t.kube.configuration.host == "http://127.0.0.1:9"
