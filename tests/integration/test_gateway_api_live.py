"""Gateway API as live objects on the local lab: App Mesh sets and their exports applied side by
side to ONE lab (the daemon runs a gateway Envoy per Gateway, each on its own loopback port),
every request of the side-by-side cases (tests/migrate/test_gatewayapi_envoy.py) sent to both
gateways; status conditions on good and broken objects; rejected applies change nothing; the
CLI verbs on Gateway API kinds.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import yaml

from lab.migrate import export
from lab.model.gatewayapi import CONTROLLER_NAME
from lab.targets.base import TargetError
from tests.conftest import ROOT
from tests.migrate.test_gatewayapi_envoy import CASES, _resources

from .conftest import Http, start_lab

pytestmark = pytest.mark.envoy

SETS = ("walkthrough", "examples/header-query-matching", "examples/method-hostname-matching", "examples/rewrites",
        "examples/priority", "examples/path-matching")
GATEWAY_CLASS = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
                 "metadata": {"name": "my-gateway-class"}, "spec": {"controllerName": CONTROLLER_NAME}}


def _sets() -> dict:
    """set -> (App Mesh documents, exported Gateway API documents)."""
    out = {}
    for s in SETS:
        am = _resources(s)
        out[s] = ([r.raw for r in am], [o.body for o in export(am).objects])
    return out


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    sets = _sets()
    app_mesh = {}
    for docs, _ in sets.values():  # the example sets share their base documents
        app_mesh.update({(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d for d in docs})
    text = yaml.safe_dump_all(list(app_mesh.values()), sort_keys=False)
    with start_lab(tmp_path_factory, "appmesh-demo", text) as lab:
        gw_text = yaml.safe_dump_all([GATEWAY_CLASS] + [d for _, ex in sets.values() for d in ex], sort_keys=False)
        lab.target.apply_text(gw_text, name="<exports>")
        lab.sets = sets
        yield lab


def _gateways(lab) -> dict:
    """(kind, namespace) -> (host, port) of each gateway's first listener."""
    out = {}
    for g in lab.target.status()["gateways"]:
        kind, name = g["node_id"].split("/")[-2:]
        url = next(iter(g["listeners"].values()))
        host, port = url.split("//")[1].split(":")
        out[(kind, name.rsplit("_", 1)[1])] = (host, int(port))
    return out


def _answer(h: Http, method: str, path: str, headers: dict) -> tuple:
    r = h.request(method, path, {"Host": "client.example", **headers})
    try:
        data = r.json()
        return (r.status, data.get("service"), data["request"]["path"], data["request"]["host"])
    except (ValueError, KeyError):
        return (r.status, None, None, None)


def _namespace(lab, set_name: str) -> str:
    return next(d["metadata"]["namespace"] for d in lab.sets[set_name][1] if d["kind"] == "Gateway")


@pytest.mark.parametrize("set_name", SETS)
def test_the_live_export_routes_like_app_mesh_on_one_lab(lab, set_name):
    ns = _namespace(lab, set_name)
    gws = _gateways(lab)
    vg, gw = Http(*gws[("virtualGateway", ns)]), Http(*gws[("gateway", ns)])
    assert gws[("virtualGateway", ns)] != gws[("gateway", ns)]
    first = CASES[set_name][0]
    deadline = time.time() + 20  # both gateways serve the set's first request (ACKed means served, soon)
    while _answer(gw, *first[:3])[0] != 200 or _answer(vg, *first[:3])[0] != 200:
        assert time.time() < deadline, (set_name, _answer(vg, *first[:3]), _answer(gw, *first[:3]))
        time.sleep(0.1)
    same, differ = [], []
    for method, path, headers, announced in CASES[set_name]:
        a, g = _answer(vg, method, path, headers), _answer(gw, method, path, headers)
        (differ if a != g else same).append((method, path, headers, announced, a, g))
    assert not [c for c in differ if not c[3]], f"routed differently without a finding: {differ}"
    assert not [c for c in same if c[3]], f"announced differences that did not show: {same}"
    assert any(c[4][0] == 200 for c in same), same


def _item(lab, kind: str, ns: str, name: str) -> dict:
    items = lab.target.client.call("GET", f"/v1/resources?kind={kind}&namespace={ns}")["items"]
    return next(i for i in items if i["name"] == name)


def _cond(conds: list, type_: str) -> dict:
    return next(c for c in conds if c["type"] == type_)


def test_conditions_of_a_served_gateway_and_its_routes(lab):
    gw = _item(lab, "Gateway", "appmesh-demo", "appmesh-gateway")["status"]
    assert _cond(gw["conditions"], "Accepted")["status"] == "True"
    prog = _cond(gw["conditions"], "Programmed")
    assert (prog["status"], prog["reason"]) == ("True", "Programmed"), prog
    [lst] = gw["listeners"]
    assert lst["attachedRoutes"] == 2
    assert {c["type"]: c["status"] for c in lst["conditions"]} == {
        "Accepted": "True", "ResolvedRefs": "True", "Programmed": "True", "Conflicted": "False"}
    route = _item(lab, "HTTPRoute", "appmesh-demo", "product-gateway-route")["status"]
    [parent] = route["parents"]
    assert parent["controllerName"] == CONTROLLER_NAME
    assert {c["type"]: c["reason"] for c in parent["conditions"]} == {"Accepted": "Accepted",
                                                                       "ResolvedRefs": "ResolvedRefs"}


BROKEN = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: broken, namespace: appmesh-demo}
spec:
  parentRefs: [{name: appmesh-gateway, sectionName: no-such-listener}, {name: no-such-gateway}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /broken}}]
    backendRefs: [{name: no-such-service, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: elsewhere, namespace: appmesh-demo}
spec:
  parentRefs: [{name: appmesh-gateway}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /elsewhere}}]
    backendRefs: [{name: shop, namespace: ex-rewrites, port: 8080}, {kind: ConfigMap, name: x}]
"""


def test_broken_routes_are_stored_with_the_spec_reasons(lab):
    lab.target.apply_text(BROKEN, name="<broken>")
    try:
        broken = _item(lab, "HTTPRoute", "appmesh-demo", "broken")["status"]["parents"]
        assert [_cond(p["conditions"], "Accepted")["reason"] for p in broken] == ["NoMatchingParent", "NoMatchingParent"]
        assert _cond(broken[0]["conditions"], "ResolvedRefs")["reason"] == "BackendNotFound"
        other = _item(lab, "HTTPRoute", "appmesh-demo", "elsewhere")["status"]["parents"][0]["conditions"]
        resolved = _cond(other, "ResolvedRefs")
        assert resolved["reason"] == "InvalidKind" or resolved["reason"] == "RefNotPermitted", resolved
        assert "no ReferenceGrant" in resolved["message"] and "ConfigMap" in resolved["message"]
        host, port = _gateways(lab)[("gateway", "appmesh-demo")]
        assert Http(host, port).get("/broken").status == 404  # attached nowhere: not routed
        grant = {"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
                 "metadata": {"name": "from-demo", "namespace": "ex-rewrites"},
                 "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute",
                                    "namespace": "appmesh-demo"}], "to": [{"group": "", "kind": "Service"}]}}
        lab.target.apply_text(yaml.safe_dump(grant), name="<grant>")
        other = _item(lab, "HTTPRoute", "appmesh-demo", "elsewhere")["status"]["parents"][0]["conditions"]
        assert _cond(other, "ResolvedRefs")["reason"] == "InvalidKind"  # the grant resolves the Service
    finally:
        lab.target.client.call("POST", "/v1/delete", {"keys": [["HTTPRoute", "appmesh-demo", "broken"],
                                                               ["HTTPRoute", "appmesh-demo", "elsewhere"],
                                                               ["ReferenceGrant", "ex-rewrites", "from-demo"]]})


def test_a_rejected_apply_changes_nothing(lab):
    before = _item(lab, "HTTPRoute", "appmesh-demo", "product-gateway-route")
    doc = yaml.safe_load(yaml.safe_dump(before["doc"]))
    doc["spec"]["rules"][0]["matches"][0]["path"]["value"] = "/changed"
    bad = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
           "metadata": {"name": "bad", "namespace": "appmesh-demo"},
           "spec": {"rules": [{"matches": [{"path": {"type": "Exact", "value": "no-slash"}}]}]}}
    with pytest.raises(TargetError) as exc:
        lab.target.apply_text(yaml.safe_dump_all([doc, bad]), name="<bad>")
    assert "spec.rules[0].matches[0].path.value" in str(exc.value) and "start with '/'" in str(exc.value)
    after = _item(lab, "HTTPRoute", "appmesh-demo", "product-gateway-route")
    assert after["generation"] == before["generation"] and after["doc"] == before["doc"]
    assert not [i for i in lab.target.client.call("GET", "/v1/resources?kind=HTTPRoute")["items"] if i["name"] == "bad"]


def _cli(lab, *args) -> subprocess.CompletedProcess:
    env = dict(os.environ, APPMESH_LAB_HOME=str(lab.home))
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def test_cli_verbs_on_gateway_api_kinds(lab):
    r = _cli(lab, "get", "gateways", "-n", "appmesh-demo")
    assert r.returncode == 0, r.stderr
    assert "my-gateway-class" in r.stdout and "->127.0.0.1:" in r.stdout and "True" in r.stdout
    r = _cli(lab, "get", "httproutes", "-A", "-o", "json")
    routes = json.loads(r.stdout)
    assert {x["metadata"]["name"] for x in routes} >= {"product-gateway-route", "review-gateway-route"}
    assert all("parents" in x["status"] for x in routes)
    r = _cli(lab, "describe", "gateway", "appmesh-gateway", "-n", "appmesh-demo")
    assert "Condition Programmed=True" in r.stdout and "attachedRoutes=2" in r.stdout
    r = _cli(lab, "curl", "--gateway", "gateway/appmesh-gateway", "/products/1")
    assert r.returncode == 0 and '"service": "product-service"' in r.stdout, r.stdout + r.stderr
    r = _cli(lab, "config-dump", "appmesh-gateway-my-gateway-class")
    assert r.returncode == 0 and "product-gateway-route" in r.stdout, r.stderr[-500:]
    # by the node id its Envoy has, as `status` and the access logs show it (and a sidecar's too)
    pods = {p["name"]: p for p in lab.target.pods() if p.get("node_id")}
    gw = next(p for p in pods.values() if "/gateway/" in p["node_id"] and p["namespace"] == "appmesh-demo")
    sidecar = next(p for p in pods.values() if "/virtualNode/" in p["node_id"])
    for nid, want in ((gw["node_id"], "product-gateway-route"), (sidecar["node_id"], sidecar["node_id"])):
        r = _cli(lab, "config-dump", nid)
        assert r.returncode == 0 and want in r.stdout, (nid, r.stderr[-500:])
    r = _cli(lab, "get", "gatewayclasses")
    assert CONTROLLER_NAME in r.stdout
    r = _cli(lab, "delete", "httproute", "review-gateway-route", "-n", "appmesh-demo")
    assert r.returncode == 0 and "deleted" in r.stdout
    host, port = _gateways(lab)[("gateway", "appmesh-demo")]
    deadline = time.time() + 15
    while Http(host, port).get("/reviews/1").status != 404:
        assert time.time() < deadline, "the deleted route still routes"
        time.sleep(0.1)
    gw = _item(lab, "Gateway", "appmesh-demo", "appmesh-gateway")["status"]
    assert gw["listeners"][0]["attachedRoutes"] == 1


def test_a_live_gateway_asking_for_client_certificates_refuses_a_client_without_one(lab, tmp_path):
    """Gateway.spec.tls.frontend on the running lab: the daemon writes the ConfigMap's ca.crt for
    the Gateway's Envoy, which then serves a client with a certificate of that CA and refuses one
    without (in the handshake)."""
    import http.client
    import ssl

    from lab.runtime import pki
    from lab.translate import gatewayapi

    ca = pki.make_ca("live frontend CA", 1)
    cert, key = pki.make_leaf(ca, "mtls gateway", 1, ["localhost"], role="server")
    client, client_key = pki.make_leaf(ca, "a client", 1, ["client.example"], role="client")
    (tmp_path / "client.crt").write_bytes(pki.pem(client))
    (tmp_path / "client.key").write_bytes(pki.key_pem(client_key))
    gw = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
          "metadata": {"name": "mtls", "namespace": "appmesh-demo"},
          "spec": {"gatewayClassName": "my-gateway-class",
                   "listeners": [{"name": "https", "port": 8443, "protocol": "HTTPS",
                                  "tls": {"mode": "Terminate", "certificateRefs": [{"name": "mtls-tls"}]}}],
                   "tls": {"frontend": {"default": {"validation": {"caCertificateRefs": [
                       {"group": "", "kind": "ConfigMap", "name": "mtls-ca"}]}}}}}}
    docs = [gw, gatewayapi.tls_secret("appmesh-demo", "mtls-tls", pki.pem(cert), pki.key_pem(key)).raw,
            gatewayapi.ca_configmap("appmesh-demo", "mtls-ca", pki.pem(ca[0])).raw]
    lab.target.apply_text(yaml.safe_dump_all(docs, sort_keys=False), name="<mtls>")

    def ctx(with_cert: bool):
        c = ssl.create_default_context(cadata=pki.pem(ca[0]).decode())
        c.check_hostname = False
        if with_cert:
            c.load_cert_chain(str(tmp_path / "client.crt"), str(tmp_path / "client.key"))
        return c

    deadline, status = time.time() + 20, None
    while status is None:
        g = next((g for g in lab.target.status()["gateways"] if g["node_id"].endswith("mtls_appmesh-demo")), None)
        try:
            host, port = next(iter(g["listeners"].values())).split("//")[1].split(":")
            status = Http(host, int(port), tls=ctx(True)).get("/").status  # no route attached: 404, served
        except (TypeError, AttributeError, OSError, ssl.SSLError, http.client.HTTPException):
            assert time.time() < deadline, g
            time.sleep(0.2)
    assert status == 404
    with pytest.raises((ssl.SSLError, ConnectionResetError, http.client.HTTPException, OSError)):
        Http(host, int(port), tls=ctx(False)).get("/")
