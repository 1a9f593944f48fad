"""HTTPS Gateway listeners on the running lab, on real Envoy: a kubernetes.io/tls Secret applied
with a Gateway whose HTTPS listener names it and an HTTPRoute; requests over TLS with SNI get 200
and the Secret's certificate; a changed Secret rotates it; a deleted one flips the listener's
ResolvedRefs to False (InvalidCertificateRef) and its files are removed. The key never shows in
the xDS configuration, the daemon's log or a status; another local user cannot read its files.
"""
from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import sys
import time
from pathlib import Path

import pytest
import yaml

from lab.model.gatewayapi import CONTROLLER_NAME
from lab.runtime import pki
from tests.conftest import ROOT

from .conftest import start_lab

pytestmark = pytest.mark.envoy

NS = "appmesh-demo"
HOST = "shop.example"


def _secret(cert_pem: bytes, key_pem: bytes) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "shop-tls", "namespace": NS},
            "type": "kubernetes.io/tls", "data": {"tls.crt": base64.b64encode(cert_pem).decode(),
                                                 "tls.key": base64.b64encode(key_pem).decode()}}


GATEWAY_API = [
    {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": "lab"},
     "spec": {"controllerName": CONTROLLER_NAME}},
    {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "secure", "namespace": NS},
     "spec": {"gatewayClassName": "lab", "listeners": [
         {"name": "https", "protocol": "HTTPS", "port": 8443, "hostname": HOST,
          "tls": {"mode": "Terminate", "certificateRefs": [{"name": "shop-tls"}]}}]}},
    {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "shop", "namespace": NS},
     "spec": {"parentRefs": [{"name": "secure"}],
              "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/products"}}],
                         "backendRefs": [{"name": "product-service", "port": 8080}]}]}},
]


def _pair(ca, serial_name: str) -> tuple[bytes, bytes]:
    cert, key = pki.make_leaf(ca, serial_name, 2, dns_names=[HOST])
    return pki.pem(cert), pki.key_pem(key)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    walkthrough = "\n---\n".join(p.read_text() for p in sorted((ROOT / "manifests" / "walkthrough").glob("*.yaml")))
    with start_lab(tmp_path_factory, NS, walkthrough, ready=("/products",)) as lab:
        ca = pki.make_ca("https-live test CA", 2)
        lab.ca = ca
        lab.test_ca_file = Path(tmp_path_factory.mktemp("ca")) / "ca.crt"
        lab.test_ca_file.write_bytes(pki.pem(ca[0]))
        lab.first = _pair(ca, "first")
        lab.target.apply_text(yaml.safe_dump_all([_secret(*lab.first)] + GATEWAY_API), name="<https>")
        yield lab


def _address(lab) -> tuple[str, int]:
    for g in lab.target.status()["gateways"]:
        if g["node_id"].split("/")[-1].startswith("secure"):
            url = g["listeners"][next(iter(g["listeners"]))]
            host, port = url.split("//")[1].split(":")
            return host, int(port)
    raise AssertionError(f"no gateway 'secure' in {lab.target.status()['gateways']}")


def _get(lab, path: str) -> tuple[int, dict]:
    """GET over TLS, SNI and Host shop.example, the certificate verified against the test's CA."""
    ctx = ssl.create_default_context(cafile=str(lab.test_ca_file))
    with socket.create_connection(_address(lab), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=HOST) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
            resp = http.client.HTTPResponse(s)
            resp.begin()
            body = resp.read()
    try:
        return resp.status, json.loads(body)
    except ValueError:
        return resp.status, {"body": body[:200].decode(errors="replace")}


def _served_cert(lab, sni: str | None = HOST) -> bytes:
    """The DER certificate the listener presents for `sni` (not verified)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(_address(lab), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni) as s:
            return s.getpeercert(binary_form=True)


def _der(pem: bytes) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.decode())


def _eventually(check, timeout: float = 20.0, what: str = ""):
    deadline = time.time() + timeout
    while True:
        try:
            return check()
        except (AssertionError, OSError, ssl.SSLError) as exc:
            if time.time() >= deadline:
                raise AssertionError(f"{what}: {exc}") from exc
            time.sleep(0.1)


def _listener(lab) -> dict:
    items = lab.target.client.call("GET", f"/v1/resources?kind=Gateway&namespace={NS}")["items"]
    gw = next(i for i in items if i["name"] == "secure")
    return gw["status"]["listeners"][0]


def _conds(listener: dict) -> dict:
    return {c["type"]: (c["status"], c["reason"]) for c in listener["conditions"]}


def _secret_files(lab) -> list[Path]:
    return sorted(p for p in (Path(lab.home) / "secrets").rglob("*") if p.is_file())


def test_https_listener_serves_rotates_and_forgets_the_secret(lab):
    # served: 200 over TLS, the Secret's certificate for the listener's name (SNI), no other name
    assert _conds(_listener(lab))["ResolvedRefs"] == ("True", "ResolvedRefs")
    status, answer = _get(lab, "/products")
    assert status == 200 and answer.get("service") == "product-service", answer
    assert _served_cert(lab) == _der(lab.first[0])
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        _served_cert(lab, "other.example")  # the filter chain takes shop.example only

    # owner-only files, no key anywhere but its file
    files = _secret_files(lab)
    assert [p.name for p in files] == ["tls.crt", "tls.key"], files
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in files)
    assert all(d.stat().st_mode & 0o777 == 0o700 for d in [Path(lab.home) / "secrets", *{p.parent for p in files}])
    key_line = lab.first[1].decode().splitlines()[1]  # a line of the key's base64 body (the first key)
    key_b64 = _secret(*lab.first)["data"]["tls.key"]
    log = (Path(lab.home) / "daemon.log").read_text(errors="replace")
    assert key_line not in log and key_b64[:40] not in log
    gw = yaml.safe_dump(lab.target.client.call("GET", f"/v1/resources?kind=Gateway&namespace={NS}")["items"])
    assert key_line not in gw and key_b64[:40] not in gw
    if os.geteuid() == 0 and shutil.which("runuser"):
        key = next(p for p in files if p.name == "tls.key")
        other = subprocess.run(["runuser", "-u", "nobody", "--", "cat", str(key)], capture_output=True, text=True)
        assert other.returncode != 0 and "Permission denied" in other.stderr, other

    # the verbs: the Secret is listed; the Gateway's YAML (its status) carries no key
    env = dict(os.environ, APPMESH_LAB_HOME=str(lab.home))
    cli = [sys.executable, "-m", "lab.cli"]
    r = subprocess.run(cli + ["get", "secrets", "-n", NS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "shop-tls" in r.stdout, r.stdout + r.stderr
    r = subprocess.run(cli + ["get", "gateway", "secure", "-n", NS, "-o", "yaml"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "ResolvedRefs" in r.stdout and key_line not in r.stdout, r.stdout + r.stderr

    # rotation: a changed Secret is served on new connections, the old files are gone
    second = _pair(lab.ca, "second")
    lab.target.apply_text(yaml.safe_dump(_secret(*second)), name="<rotate>")

    def rotated():
        assert _served_cert(lab) == _der(second[0])
    _eventually(rotated, what="the rotated certificate served")
    assert _get(lab, "/products")[0] == 200
    files = _secret_files(lab)
    assert len(files) == 2 and next(p for p in files if p.name == "tls.crt").read_bytes() == second[0]

    # what the gateway's Envoy is sent (its listeners, over the owner's xDS socket) names the files.
    # Asked last, with nothing waiting for an ACK after it: the probe speaks as the gateway's node
    lds = _listeners_sent(lab)
    assert str(next(p for p in files if p.name == "tls.key")).encode() in lds
    assert b"PRIVATE KEY" not in lds and second[1] not in lds and _secret(*second)["data"]["tls.key"][:40].encode() not in lds

    # deleted: ResolvedRefs False (InvalidCertificateRef), files removed, the listener not served
    lab.target.client.call("POST", "/v1/delete", {"keys": [["Secret", NS, "shop-tls"]]})
    lst = _eventually(lambda: _check_invalid(lab), what="the listener's ResolvedRefs after the delete")
    assert "shop-tls" in next(c["message"] for c in lst["conditions"] if c["type"] == "ResolvedRefs")
    assert _conds(lst)["Programmed"][0] == "False"
    assert _secret_files(lab) == []


def _listeners_sent(lab) -> bytes:
    """The serialized LDS answer the xDS server gives the 'secure' gateway's node."""
    import grpc
    from envoy.config.core.v3 import base_pb2
    from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
    node = next(g["node_id"] for g in lab.target.status()["gateways"] if g["node_id"].split("/")[-1].startswith("secure"))
    req = discovery_pb2.DiscoveryRequest(node=base_pb2.Node(id=node, cluster="probe"),
                                         type_url="type.googleapis.com/envoy.config.listener.v3.Listener")
    answered = threading.Event()

    def requests():   # the stream stays open until the answer is in: a client that half-closes
        yield req     # at once may see the server end the stream before it answers
        answered.wait(15)

    with grpc.insecure_channel(f"unix:{lab.target.client.sockets.xds}") as ch:
        call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(ch).StreamAggregatedResources(requests(), timeout=10)
        try:
            answer = next(iter(call))
        finally:
            answered.set()
            call.cancel()
    assert answer.resources, answer
    return answer.SerializeToString()


def _check_invalid(lab) -> dict:
    lst = _listener(lab)
    assert _conds(lst)["ResolvedRefs"] == ("False", "InvalidCertificateRef"), lst
    return lst
