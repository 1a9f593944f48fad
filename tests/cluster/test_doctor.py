"""`appmesh-lab doctor --target kind|eks`: every check against a recorded cluster
(doctor_cluster.RecordedCluster), once holding and once broken the way it breaks on a first run;
the bundle and --record; and the command itself on this machine, which has no docker daemon."""
from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from lab import doctor
from lab.doctor import checks
from lab.targets.base import TargetError
from tests.cluster.doctor_cluster import RecordedCluster
from tests.conftest import ROOT
from tests.controller.helmbin import WHY, find_helm

CLI = Path(sys.executable).with_name("appmesh-lab")


@pytest.fixture
def cluster():
    helm = find_helm()
    if helm is None:
        pytest.skip(WHY)
    return RecordedCluster(str(helm))


def run(cluster, tmp_path, target="kind", record=None):
    lines = []
    rc = doctor.run(target, out_dir=tmp_path / "runs", record=record, runner=cluster, which=cluster.which,
                    http=cluster.http, say=lines.append)
    return rc, lines


def test_a_healthy_cluster_passes_every_check_in_order(cluster, tmp_path):
    rc, lines = run(cluster, tmp_path)
    assert rc == 0, "\n".join(lines)
    assert [line.split(":")[0] for line in lines[:len(checks.CHECKS)]] == [f"ok      {n}" for n, _ in checks.CHECKS]
    text = "\n".join(lines)
    assert "docker 27.3.1, kind v0.27.0 go1.23.6" in text and "kubectl v1.32.4" in text and "helm v3.17.3" in text
    assert "the webhook added container envoy, init container proxyinit" in text
    assert cluster.requests == [("127.0.0.1", 18080, "GET", "/products")]  # NodePort 30080, where docker publishes it


def test_rbac_is_derived_from_the_chart_and_checked_as_the_service_account(cluster, tmp_path):
    from lab.controller.kube import PERMISSIONS
    rc, _ = run(cluster, tmp_path)
    asked = {(c[3], c[4], next((x.split("=", 1)[1] for x in c if x.startswith("--subresource=")), ""))
             for c in cluster.calls if c[:3] == ["kubectl", "auth", "can-i"]}
    # every (verb, resource) of the controller's PERMISSIONS is asked, with the group kubectl needs
    for group, resources, verbs, _scope in PERMISSIONS:
        for res in resources:
            base, _, sub = res.partition("/")
            for verb in verbs:
                assert any(v == verb and r.split("/")[0] == base + (f".{group}" if group else "") and s == sub
                           for v, r, s in asked), (verb, res, group)
    assert ("get", "mutatingwebhookconfigurations.admissionregistration.k8s.io/appmesh-lab-controller", "") in asked
    cluster.denied.add(("patch", "gatewayroutes.appmesh.k8s.aws", "status"))
    rc, lines = run(cluster, tmp_path)
    assert rc == 1 and lines[3].startswith("FAIL    RBAC: the controller's ServiceAccount may not: patch "
                                           "gatewayroutes.appmesh.k8s.aws/status")
    assert lines[4].startswith("        hint: reinstall the chart")


def test_a_machine_without_docker_or_kind_is_told_what_to_install(cluster, tmp_path):
    cluster.missing |= {"kind", "helm"}
    cluster.down.add("docker")
    rc, lines = run(cluster, tmp_path)
    assert rc == 1
    assert lines[0].startswith("FAIL    tools: docker is installed but its daemon does not answer")
    assert "kind is not installed (https://kind.sigs.k8s.io" in lines[0] and "helm is not installed" in lines[0]
    assert "start Docker" in lines[1]
    assert lines[2].startswith("stopped at tools; not checked: API server, controller, RBAC")
    assert not any(c[0] == "kubectl" and c[1] != "version" for c in cluster.calls)  # it stopped there


def test_eks_needs_credentials_and_uses_the_load_balancer_name(cluster, tmp_path):
    cluster.target = "eks"
    rc, lines = run(cluster, tmp_path, target="eks")
    assert rc == 0, "\n".join(lines)
    assert cluster.requests == [("a1b2c3-0123456789.elb.us-east-1.amazonaws.com", 80, "GET", "/products")]
    assert ["aws", "sts", "get-caller-identity", "--output", "json"] in cluster.calls


def test_a_cabundle_that_did_not_sign_the_serving_certificate_fails(cluster, tmp_path):
    from lab.controller.webhook import make_certificate
    run(cluster, tmp_path)  # renders the chart, so the configurations exist
    other = make_certificate(["elsewhere"])["ca.crt"]
    cfg = cluster.webhook_configs[("mutatingwebhookconfigurations", "appmesh-lab-controller")]
    import base64
    cfg["webhooks"][0]["clientConfig"]["caBundle"] = base64.b64encode(other.encode()).decode()
    rc, lines = run(cluster, tmp_path)
    fail = next(line for line in lines if line.startswith("FAIL"))
    assert rc == 1 and fail.startswith("FAIL    webhooks: MutatingWebhookConfiguration appmesh-lab-controller")
    assert "did not sign the serving certificate" in fail
    cfg["webhooks"][0]["clientConfig"].pop("caBundle")
    rc, lines = run(cluster, tmp_path)
    assert "caBundle is empty" in next(line for line in lines if line.startswith("FAIL"))


def test_a_pod_the_webhook_did_not_touch_fails_injection(cluster, tmp_path):
    cluster.inject = False
    rc, lines = run(cluster, tmp_path)
    fail = next(line for line in lines if line.startswith("FAIL"))
    assert rc == 1 and fail.startswith("FAIL    injection: the canary pod in appmesh-demo (labels of VirtualNode "
                                       "product-service-vn) came back without an envoy container")
    dry = next(c for c in cluster.calls if c[:3] == ["kubectl", "apply", "--dry-run=server"] and "-" in c)
    assert dry == ["kubectl", "apply", "--dry-run=server", "-o", "json", "-f", "-"]


def test_manifest_dry_run_failures_are_named_and_missing_namespaces_are_not(cluster, tmp_path):
    cluster.dry_run_errors["manifests/examples/canary"] = [
        'Error from server (NotFound): error when creating "x.yaml": namespaces "ex-canary" not found']
    rc, lines = run(cluster, tmp_path)
    assert rc == 0 and "1 wait for their namespace to exist" in next(x for x in lines if "manifests:" in x)
    cluster.dry_run_errors["manifests/walkthrough"] = [
        'The GatewayRoute "product-gateway-route" is invalid: spec.httpRoute.match: Required value']
    rc, lines = run(cluster, tmp_path)
    fail = next(line for line in lines if line.startswith("FAIL"))
    assert fail.startswith("FAIL    manifests: the API server rejects manifests the kit ships: manifests/walkthrough: "
                           'The GatewayRoute "product-gateway-route" is invalid')


def test_4xx_answers_in_the_controller_log_fail(cluster, tmp_path):
    cluster.controller_log += ("2026-10-05 09:01:00 WARNING patch status VirtualNode appmesh-demo/product-service-vn: "
                               "403 Forbidden\n")
    rc, lines = run(cluster, tmp_path)
    fail = next(line for line in lines if line.startswith("FAIL"))
    assert rc == 1 and fail.startswith("FAIL    controller log: the API server answered the controller with 4xx 1 "
                                       "time(s); first: 2026-10-05 09:01:00 WARNING patch status")
    bundle = next((tmp_path / "runs").glob("doctor-*.tar.gz"))
    with tarfile.open(bundle) as tar:
        log = next(m for m in tar.getmembers() if m.name.endswith("logs/controller.log"))
        assert b"403 Forbidden" in tar.extractfile(log).read()


def test_a_failed_proxyinit_envoy_not_ready_and_a_foreign_answer_fail(cluster, tmp_path):
    cluster.proxyinit_exit = 1
    rc, lines = run(cluster, tmp_path)
    fail = next(line for line in lines if line.startswith("FAIL"))
    assert fail.startswith("FAIL    proxyinit: proxyinit of pod appmesh-demo/product-service-") and "exit 1" in fail
    assert "NET_ADMIN" in lines[lines.index(fail) + 1]
    cluster.proxyinit_exit = 0
    cluster.ready_answer = "PRE_INITIALIZING\n"
    rc, lines = run(cluster, tmp_path)
    fail = next(line for line in lines if line.startswith("FAIL"))
    assert fail.startswith("FAIL    Envoy /ready: Envoy of gateway pod appmesh-demo/appmesh-gateway-")
    raw = next(c for c in cluster.calls if c[:3] == ["kubectl", "get", "--raw"])
    assert raw[3].startswith("/api/v1/namespaces/appmesh-demo/pods/appmesh-gateway-") and raw[3].endswith(
        ":9901/proxy/ready")
    cluster.ready_answer = "LIVE\n"
    from lab.targets.base import Response
    cluster.http_answer = Response(200, {"server": "nginx"}, b"welcome")
    rc, lines = run(cluster, tmp_path)
    assert "without `server: envoy`" in next(line for line in lines if line.startswith("FAIL"))
    cluster.http_answer = Response(503, {"server": "envoy"}, b"no healthy upstream")
    rc, lines = run(cluster, tmp_path)
    assert "answered 503" in next(line for line in lines if line.startswith("FAIL"))

    def refused(*a):
        raise TargetError("request GET /products to 127.0.0.1:8080 failed: [Errno 111] Connection refused")
    cluster.http = refused
    rc, lines = run(cluster, tmp_path)
    assert "Connection refused" in next(line for line in lines if line.startswith("FAIL"))


def test_bundle_holds_the_transcript_and_record_writes_replayable_objects(cluster, tmp_path, api):
    rc, lines = run(cluster, tmp_path, record=tmp_path / "rec")
    assert rc == 0
    bundle = next((tmp_path / "runs").glob("doctor-*.tar.gz"))
    assert oct(bundle.stat().st_mode & 0o777) == "0o600"
    with tarfile.open(bundle) as tar:
        names = {m.name.split("/", 1)[1] for m in tar.getmembers()}
        read = {m.name.split("/", 1)[1]: tar.extractfile(m).read().decode() for m in tar.getmembers()}
    assert {"report.json", "commands.txt", "objects.json", "logs/controller.log", "injected-canary-pod.json"} <= names
    report = json.loads(read["report.json"])
    assert [c["check"] for c in report["checks"]] == [n for n, _ in checks.CHECKS] and all(c["ok"] for c in report["checks"])
    assert "kubectl auth can-i" in read["commands.txt"]
    assert "PRIVATE KEY" not in "".join(read.values())  # the webhook's key never leaves the cluster
    recorded = json.loads((tmp_path / "rec" / "cluster.json").read_text())
    assert {"Deployment", "Namespace", "Pod", "Service", "VirtualNode", "MutatingWebhookConfiguration"} <= set(recorded)
    # the form the cluster tests replay: the stub API server takes it as it is
    from tests.controller.apiserver import StubApiServer
    server = StubApiServer({k: v for k, v in recorded.items() if k in ("Deployment", "Namespace", "Pod", "Service",
                                                                       "VirtualNode")})
    try:
        from lab.targets.cluster import ClusterTarget
        t = ClusterTarget("kind", kube=server.client(), runner=lambda *a, **k: "", echo=False)
        assert {p["name"] for p in t.pods("appmesh-demo")} == {
            o["metadata"]["name"] for o in recorded["Pod"] if o["metadata"]["namespace"] == "appmesh-demo"}
    finally:
        server.close()


def test_the_command_on_this_machine_without_docker_exits_non_zero_naming_it(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    env = {"PATH": str(bindir), "HOME": str(tmp_path)}
    out = subprocess.run([str(CLI), "doctor", "--target", "kind", "--output-dir", str(tmp_path / "runs")], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    first = out.stdout.splitlines()[0]
    for tool in ("docker", "kind", "kubectl", "helm"):
        assert f"{tool} is not installed" in first, first
    assert list((tmp_path / "runs").glob("doctor-*.tar.gz")), "the bundle is written even when the tools are missing"
    # and the local target's doctor is still the lab's (no --target): it needs the daemon, not docker
    local = subprocess.run([str(CLI), "doctor"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                           env={"PATH": str(bindir), "HOME": str(tmp_path), "APPMESH_LAB_HOME": str(tmp_path / "lab")})
    assert local.returncode == 1 and "the lab daemon is not running" in local.stdout, local.stdout + local.stderr
    rec = subprocess.run([str(CLI), "doctor", "--record", str(tmp_path / "r")], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, env={"PATH": str(bindir), "HOME": str(tmp_path)})
    assert rec.returncode == 2 and "use it with --target kind or eks" in rec.stderr
