"""`appmesh-lab migrate` end to end: files written, the JSON report, and user mistakes."""
import json
import subprocess
import sys

import yaml

from tests.conftest import ROOT


def migrate(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "lab.cli", "migrate", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def test_writes_one_file_per_kind_and_reports_findings_on_stderr(tmp_path):
    out = tmp_path / "gw"
    r = migrate("manifests/walkthrough", "--to", "gateway-api", "-o", out)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["gateways.yaml", "httproutes.yaml"]
    routes = list(yaml.safe_load_all((out / "httproutes.yaml").read_text()))
    assert [d["metadata"]["name"] for d in routes] == ["product-gateway-route", "review-gateway-route"]
    assert "# from GatewayRoute appmesh-demo/product-gateway-route (manifests/walkthrough/" in \
        (out / "httproutes.yaml").read_text()
    assert "10-product-gateway-route.yaml:" in r.stderr and "spec.httpRoute.match.prefix" in r.stderr
    assert "wrote 1 Gateway, 2 HTTPRoute" in r.stderr
    # a second export into the same folder removes the files of kinds it no longer writes
    (out / "grpcroutes.yaml").write_text("stale")
    assert migrate("manifests/walkthrough", "-o", out).returncode == 0
    assert not (out / "grpcroutes.yaml").exists()


def test_json_report_has_objects_findings_and_commands():
    r = migrate("manifests/examples/tls-gateway", "-o", "json", "--profile", "istio")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert set(report) == {"objects", "findings", "commands"}
    kinds = sorted(o["kind"] for o in report["objects"])
    assert kinds == ["Gateway", "HTTPRoute"]
    assert report["commands"] == ["kubectl create secret tls gateway-tls -n ex-tls-gateway "
                                  "--cert=/etc/appmesh-lab/certs/gateway/tls.crt "
                                  "--key=/etc/appmesh-lab/certs/gateway/tls.key"]
    logging = [f for f in report["findings"] if f["path"] == "spec.logging.accessLog"]
    assert logging and "Telemetry API" in logging[0]["hint"] and logging[0]["line"] > 0


def test_profiles_differ_where_the_implementations_do():
    lattice = json.loads(migrate("manifests/examples/path-matching", "-o", "json", "--profile", "vpc-lattice").stdout)
    istio = json.loads(migrate("manifests/examples/path-matching", "-o", "json", "--profile", "istio").stdout)
    assert len(istio["objects"]) == len(lattice["objects"]) + 1  # the regex-path route is not exported
    regex = [f for f in lattice["findings"] if f["path"] == "spec.httpRoute.match.path.regex"]
    assert regex and regex[0]["code"] == "unsupported"


def test_invalid_manifests_are_refused_with_file_and_line(tmp_path):
    (tmp_path / "bad.yaml").write_text("apiVersion: appmesh.k8s.aws/v1beta2\nkind: GatewayRoute\nmetadata:\n"
                                       "  name: x\n  namespace: n\nspec:\n  httpRoute:\n    match:\n"
                                       "      prefix: nope\n")
    r = migrate(tmp_path / "bad.yaml", "-o", tmp_path / "out")
    assert r.returncode == 1
    assert "bad.yaml:" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()
    r = migrate(tmp_path / "missing")
    assert r.returncode == 1 and "no such file or folder" in r.stderr and "Traceback" not in r.stderr


def test_validate_checks_an_export_as_gateway_api(tmp_path):
    assert migrate("manifests/walkthrough", "-o", tmp_path).returncode == 0
    r = subprocess.run([sys.executable, "-m", "lab.cli", "validate", str(tmp_path)], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 Gateway, 2 HTTPRoute" in r.stdout
    # the export names the profile's class, which no GatewayClass of the folder provides
    assert "spec.gatewayClassName: no GatewayClass 'my-gateway-class'" in r.stdout
