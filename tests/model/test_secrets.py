"""Secrets (core/v1) as lab objects: a kubernetes.io/tls Secret is checked as the API server and a
Gateway controller would check it (data keys, base64, PEM, the key belongs to the certificate),
each mistake a finding with its line and field path; stringData is merged into data."""
import base64

import pytest

from lab.model import validate_texts
from lab.model.gatewayapi_refs import findings
from lab.runtime import pki


@pytest.fixture(scope="module")
def pair():
    ca = pki.make_ca("test CA", 1)
    cert, key = pki.make_leaf(ca, "shop", 1, dns_names=["shop.example"])
    other = pki.make_leaf(ca, "other", 1, dns_names=["other.example"])[1]
    return pki.pem(cert), pki.key_pem(key), pki.key_pem(other)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def secret(crt: str, key: str, extra: str = "") -> str:
    return ("apiVersion: v1\nkind: Secret\nmetadata: {name: shop-tls, namespace: demo}\n"
            f"type: kubernetes.io/tls\n{extra}data:\n  tls.crt: {crt}\n  tls.key: {key}\n")


def check(text: str):
    return validate_texts([("s.yaml", text)])


def test_a_tls_secret_is_a_lab_object(pair):
    r = check(secret(b64(pair[0]), b64(pair[1])))
    assert not r.problems, r.problems
    [res] = r.resources
    assert res.kind == "Secret" and res.namespace == "demo" and res.raw["data"]["tls.crt"] == b64(pair[0])


def test_string_data_is_merged_into_data(pair):
    text = ("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/tls\n"
            f"data: {{tls.crt: {b64(pair[0])}}}\nstringData:\n  tls.key: |\n"
            + "".join(f"    {line}\n" for line in pair[1].decode().splitlines()))
    r = check(text)
    assert not r.problems, r.problems
    assert base64.b64decode(r.resources[0].raw["data"]["tls.key"]) == pair[1]


@pytest.mark.parametrize("case, path, words", [
    ("not base64", "data.tls.crt", "not valid base64"),
    ("no key", "data", "needs data tls.key"),
    ("not PEM", "data.tls.crt", "not a PEM certificate"),
    ("another key", "data.tls.key", "does not belong to the certificate"),
    ("a spec", "spec", "unknown field 'spec'"),
])
def test_each_mistake_in_a_tls_secret_is_a_finding_with_its_line(pair, case, path, words):
    crt, key = b64(pair[0]), b64(pair[1])
    text = {"not base64": secret("not*base64", key),
            "no key": secret(crt, key).replace(f"  tls.key: {key}\n", ""),
            "not PEM": secret(b64(b"hello"), key),
            "another key": secret(crt, b64(pair[2])),
            "a spec": secret(crt, key, extra="spec: {}\n")}[case]
    r = check(text)
    assert not r.resources
    [p] = [p for p in r.errors]
    assert p.path == path and words in p.message and p.hint and p.line > 0, p
    if path.startswith("data."):
        assert p.line == text.splitlines().index(next(l for l in text.splitlines() if path[5:] in l)) + 1


def test_an_https_listener_is_served_and_a_missing_secret_is_its_finding(pair):
    gateway = ("apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: lab}\n"
               "spec: {controllerName: lab.appmesh.dev/gateway-controller}\n---\n"
               "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: demo}\n"
               "spec:\n  gatewayClassName: lab\n  listeners:\n  - {name: https, protocol: HTTPS, port: 443, "
               "tls: {certificateRefs: [{name: shop-tls}]}}\n")
    r = check(gateway + "---\n" + secret(b64(pair[0]), b64(pair[1])))
    assert not r.problems, r.problems
    from lab.model import World
    world = World(r.resources)
    gw = world.get("Gateway", "demo", "gw")
    assert not [f for f in findings(world, gw) if "protocol" in f[0]]
    r = check(gateway)
    world = World(r.resources)
    found = findings(world, world.get("Gateway", "demo", "gw"))
    assert any("shop-tls does not exist" in f[1] and "kubectl create secret tls" in f[2] for f in found), found
