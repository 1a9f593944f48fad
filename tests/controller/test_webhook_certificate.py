"""The controller's webhook certificate passes strict verification (RFC 5280 as Python 3.13's
default TLS context and `openssl verify -x509_strict` check it), and a Secret an older
controller wrote, without those extensions, is replaced."""
from __future__ import annotations

import base64
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from lab.controller.webhook import certificate_usable, dns_names, ensure_certificate, make_certificate

from ..tls_strict import handshake, old_style, openssl_verify, strict_client


def _ext(cert: x509.Certificate, cls):
    return cert.extensions.get_extension_for_class(cls)


NAMES = ["localhost"] + dns_names("appmesh-lab-controller-webhook", "appmesh-system")


def _write_pems(pems: dict, d: Path) -> dict:
    d.mkdir(exist_ok=True)
    for k, v in pems.items():
        (d / k).write_text(v)
    return {k: d / k for k in pems}


def test_the_webhook_certificate_is_a_server_certificate_that_verifies_strictly(tmp_path):
    f = _write_pems(make_certificate(NAMES), tmp_path / "wh")
    leaf = x509.load_pem_x509_certificate(f["tls.crt"].read_bytes())
    assert list(_ext(leaf, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert _ext(leaf, x509.BasicConstraints).critical and _ext(leaf, x509.KeyUsage).value.digital_signature
    r = openssl_verify(f["ca.crt"], f["tls.crt"], "sslserver")
    assert r.returncode == 0, r.stdout + r.stderr
    assert openssl_verify(f["ca.crt"], f["tls.crt"], "sslclient").returncode != 0  # serving only
    handshake(f["tls.crt"], f["tls.key"], strict_client(f["ca.crt"]), "appmesh-lab-controller-webhook.appmesh-system.svc")


def test_a_webhook_secret_from_an_older_controller_is_replaced(tmp_path, fake_kube):
    d = tmp_path / "old"
    old_style(d, dns_names("svc", "appmesh-system"))
    old = {"ca.crt": (d / "ca" / "ca.crt").read_text(), "tls.crt": (d / "gateway" / "tls.crt").read_text(),
           "tls.key": (d / "gateway" / "tls.key").read_text()}
    names = dns_names("svc", "appmesh-system")
    assert not certificate_usable(old, names)
    assert certificate_usable(make_certificate(names), names)
    kube = fake_kube()
    kube.secrets[("appmesh-system", "tls")] = {
        "metadata": {"name": "tls", "namespace": "appmesh-system", "resourceVersion": "1"},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in old.items()}}
    pems = ensure_certificate(kube, "appmesh-system", "tls", "svc")
    assert pems["tls.crt"] != old["tls.crt"]
    f = _write_pems(pems, tmp_path / "new")
    handshake(f["tls.crt"], f["tls.key"], strict_client(f["ca.crt"]), "svc.appmesh-system.svc")


