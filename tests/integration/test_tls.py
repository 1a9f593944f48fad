"""TLS at the gateway (STRICT and PERMISSIVE listeners), match.port across two listeners, and
mutual TLS from the gateway to a virtual node, with the certificates the local lab makes
(lab/runtime/certs.py) and real TLS clients.
"""
import http.client
import ssl

import pytest

from lab.bench import manifests as m
from lab.runtime import certs

from .conftest import Http, plaintext_exchange, start_lab, tls_context

pytestmark = pytest.mark.envoy

NS = "it-tls"
CERTS = "/etc/appmesh-lab/certs"
STRICT, PERMISSIVE = 8443, 8444


def _file_cert(name):
    return {"file": {"certificateChain": f"{CERTS}/{name}/tls.crt", "privateKey": f"{CERTS}/{name}/tls.key"}}


def _trust(san):
    return {"trust": {"file": {"certificateChain": f"{CERTS}/ca/ca.crt"}},
            "subjectAlternativeNames": {"match": {"exact": [san]}}}


def client_policy(with_cert=True):
    tls = {"enforce": True, "ports": [8080], "validation": _trust(m.vs_host("secure", NS))}
    if with_cert:
        tls["certificate"] = _file_cert("gateway")
    return {"tls": tls}


def gateway(with_cert=True):
    listeners = [{"portMapping": {"port": port, "protocol": "http"},
                  "tls": {"mode": mode, "certificate": _file_cert("gateway")}}
                 for port, mode in ((STRICT, "STRICT"), (PERMISSIVE, "PERMISSIVE"))]
    return m.gateway("gateway", NS, listeners, client_policy(with_cert))


def docs():
    vn_tls = {"mode": "STRICT", "certificate": _file_cert("secure"), "validation": _trust(m.vs_host("gateway", NS))}
    return [m.namespace(NS), m.mesh(NS), *gateway(),
            m.virtual_node("secure", NS, tls=vn_tls), m.app("secure", NS),
            # one virtual service per listener, so the Host the app receives tells the listeners apart
            m.virtual_service("svc-a", NS, node="secure"), m.virtual_service("svc-b", NS, node="secure"),
            m.gateway_route("on-strict", NS, {"prefix": "/", "port": STRICT}, "svc-a"),
            m.gateway_route("on-permissive", NS, {"prefix": "/", "port": PERMISSIVE}, "svc-b")]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with start_lab(tmp_path_factory, NS, docs()) as lab:
        lab.wait_for("/ready", listener=PERMISSIVE)
        yield lab


def test_strict_listener_serves_a_client_that_trusts_the_lab_ca(lab):
    h = lab.http(STRICT, tls=tls_context(lab.ca_file))
    r = h.get("/hello")
    h.close()
    assert r.status == 200, r
    assert r.host == m.vs_host("svc-a", NS)  # match.port picked the 8443 route


def test_strict_listener_refuses_a_client_with_another_ca(lab, tmp_path):
    certs.make_ca(tmp_path / "other-ca", "some other CA")
    h = lab.http(STRICT, tls=tls_context(tmp_path / "other-ca" / "ca.crt"))
    with pytest.raises(ssl.SSLCertVerificationError):
        h.get("/hello")


def test_strict_listener_refuses_plaintext(lab):
    host, port = lab.address(STRICT)
    assert plaintext_exchange(host, port) == b""  # closed without an HTTP answer
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        Http(host, port).get("/hello")


def test_permissive_listener_takes_plaintext_and_tls(lab):
    plain = lab.get("/p", listener=PERMISSIVE)
    assert (plain.status, plain.host) == (200, m.vs_host("svc-b", NS))
    h = lab.http(PERMISSIVE, tls=tls_context(lab.ca_file))
    secure = h.get("/p")
    h.close()
    assert (secure.status, secure.host) == (200, m.vs_host("svc-b", NS))


def test_gateway_to_node_is_mutual_tls(lab):
    assert lab.get("/m", listener=PERMISSIVE).status == 200
    # the gateway's cluster for the node and the node's listener both completed TLS handshakes;
    # the node's listener requires a client certificate (it has validation), so the gateway sent one
    gw = lab.target.stats("gateway", filter=r"^cluster\.cds_egress_.*_secure_it-tls_http_8080\.ssl\.handshake$")
    node = lab.target.stats("secure", filter=r"^listener\..*\.ssl\.handshake$")
    assert sum(gw.values()) >= 1, gw
    assert sum(node.values()) >= 1, node
    no_cert = lab.target.stats("secure", filter=r"^listener\..*\.ssl\.fail_verify_no_cert$")
    assert sum(no_cert.values()) == 0, no_cert


def test_without_the_client_certificate_the_node_refuses_the_gateway(lab):
    lab.apply(*gateway(with_cert=False))
    try:
        lab.wait_for("/m", status=503, listener=PERMISSIVE)
        no_cert = lab.target.stats("secure", filter=r"^listener\..*\.ssl\.fail_verify_no_cert$")
        assert sum(no_cert.values()) >= 1, no_cert  # refused by the node for want of a client certificate
    finally:
        lab.apply(*gateway(with_cert=True))
    lab.wait_for("/m", status=200, listener=PERMISSIVE)
