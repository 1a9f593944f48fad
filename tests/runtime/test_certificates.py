"""Every kind of certificate the kit makes passes strict verification (RFC 5280 as Python 3.13's
default TLS context and `openssl verify -x509_strict` check it), in a real TLS handshake against
a local ssl server that uses it; certificates an older kit made are made again.

Kinds: the local lab's CA and its proxies' leaves (lab/runtime/certs.py; a leaf serves TLS and is
presented as a client certificate for mTLS), the controller's webhook CA and serving certificate
(lab/controller/webhook.py; tests/controller/test_webhook_certificate.py), and the fixtures' CA and client certificate (lab/runtime/pki.py via
lab/bench/reliability/exposure.py and tests/examples).
"""
from __future__ import annotations

import datetime as dt
import ssl

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from lab.bench.reliability import _wrong_ca_pem
from lab.runtime import certs, pki

from ..tls_strict import handshake, old_style, openssl_verify, strict_client

PREFIX = certs.PREFIX


@pytest.fixture
def lab_certs(tmp_path):
    d = tmp_path / "certs"
    certs.ensure(d, {PREFIX + "gateway/tls.crt", PREFIX + "gateway/tls.key", PREFIX + "accounts/tls.crt",
                     PREFIX + "ca/ca.crt"}, {"gateway.ns.svc.cluster.local"})
    return d


def _ext(cert: x509.Certificate, cls):
    return cert.extensions.get_extension_for_class(cls)


# ---- the local lab -----------------------------------------------------------------------------

def test_the_lab_ca_is_a_critical_ca_that_signs_certificates_and_crls_only(lab_certs):
    ca = x509.load_pem_x509_certificate((lab_certs / "ca" / "ca.crt").read_bytes())
    bc, ku = _ext(ca, x509.BasicConstraints), _ext(ca, x509.KeyUsage)
    assert bc.critical and bc.value.ca
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign and not ku.value.digital_signature
    ski = _ext(ca, x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(ca.public_key())
    assert _ext(ca, x509.AuthorityKeyIdentifier).value.key_identifier == ski.digest
    assert ca.not_valid_after_utc - ca.not_valid_before_utc >= dt.timedelta(days=365)
    assert openssl_verify(lab_certs / "ca" / "ca.crt", lab_certs / "ca" / "ca.crt", "any").returncode == 0


def test_a_lab_leaf_is_for_serving_and_for_client_authentication(lab_certs):
    leaf = x509.load_pem_x509_certificate((lab_certs / "gateway" / "tls.crt").read_bytes())
    ca = x509.load_pem_x509_certificate((lab_certs / "ca" / "ca.crt").read_bytes())
    bc, ku = _ext(leaf, x509.BasicConstraints), _ext(leaf, x509.KeyUsage)
    assert bc.critical and not bc.value.ca
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    assert set(_ext(leaf, x509.ExtendedKeyUsage).value) == {ExtendedKeyUsageOID.SERVER_AUTH,
                                                           ExtendedKeyUsageOID.CLIENT_AUTH}
    assert _ext(leaf, x509.AuthorityKeyIdentifier).value.key_identifier == \
        _ext(ca, x509.SubjectKeyIdentifier).value.digest
    assert leaf.not_valid_after_utc <= ca.not_valid_after_utc
    for purpose in ("sslserver", "sslclient"):
        r = openssl_verify(lab_certs / "ca" / "ca.crt", lab_certs / "gateway" / "tls.crt", purpose)
        assert r.returncode == 0, r.stdout + r.stderr


def test_a_strict_client_completes_a_handshake_with_a_lab_leaf(lab_certs):
    d = lab_certs
    handshake(d / "gateway" / "tls.crt", d / "gateway" / "tls.key", strict_client(d / "ca" / "ca.crt"),
              "gateway.ns.svc.cluster.local")
    handshake(d / "gateway" / "tls.crt", d / "gateway" / "tls.key", strict_client(d / "ca" / "ca.crt"), "localhost")


def test_mutual_tls_between_two_lab_leaves_verifies_strictly_on_both_sides(lab_certs):
    d = lab_certs
    client = strict_client(d / "ca" / "ca.crt", (d / "gateway" / "tls.crt", d / "gateway" / "tls.key"))
    seen = handshake(d / "accounts" / "tls.crt", d / "accounts" / "tls.key", client, "accounts",
                     client_ca=d / "ca" / "ca.crt")
    assert dict(x[0] for x in seen["subject"])["commonName"] == "gateway"


def test_certificates_an_older_kit_made_fail_strict_verification(tmp_path):
    """Why the certificates are made again: a strict client refuses the old ones."""
    d = tmp_path / "certs"
    old_style(d)
    with pytest.raises(ssl.SSLCertVerificationError, match="Authority Key Identifier|Subject Key Identifier"):
        handshake(d / "gateway" / "tls.crt", d / "gateway" / "tls.key", strict_client(d / "ca" / "ca.crt"),
                  "localhost")


def test_a_lab_home_with_certificates_from_an_older_kit_gets_them_made_again(tmp_path):
    d = tmp_path / "certs"
    old_style(d)
    old_ca = (d / "ca" / "ca.crt").read_bytes()
    remade: list = []
    certs.ensure(d, {PREFIX + "gateway/tls.crt", PREFIX + "ca/ca.crt"}, set(), remade)
    assert remade == [d / "ca", d / "gateway"]
    assert (d / "ca" / "ca.crt").read_bytes() != old_ca
    handshake(d / "gateway" / "tls.crt", d / "gateway" / "tls.key", strict_client(d / "ca" / "ca.crt"), "localhost")
    # once fit, nothing is made again
    before = {p: p.read_bytes() for p in d.rglob("*.crt")}
    again: list = []
    certs.ensure(d, {PREFIX + "gateway/tls.crt", PREFIX + "ca/ca.crt"}, set(), again)
    assert again == [] and {p: p.read_bytes() for p in d.rglob("*.crt")} == before


def test_a_leaf_signed_by_a_replaced_ca_is_issued_again_by_the_new_one(lab_certs):
    d = lab_certs
    certs.make_ca(d / "ca")   # the CA changes (e.g. it was made again): the old leaves no longer chain to it
    remade: list = []
    certs.ensure(d, {PREFIX + "gateway/tls.crt"}, {"gateway.ns.svc.cluster.local"}, remade)
    assert remade == [d / "gateway"]
    leaf = x509.load_pem_x509_certificate((d / "gateway" / "tls.crt").read_bytes())
    assert "gateway.ns.svc.cluster.local" in _ext(leaf, x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName)
    handshake(d / "gateway" / "tls.crt", d / "gateway" / "tls.key", strict_client(d / "ca" / "ca.crt"), "localhost")


def test_a_leaf_near_its_end_is_issued_again(lab_certs):
    d = lab_certs
    ca = certs.load_ca(d / "ca")
    cert, key = pki.make_leaf(ca, "gateway", 10, ["gateway", "localhost"], ["127.0.0.1"], role="mesh")
    (d / "gateway" / "tls.crt").write_bytes(pki.pem(cert))
    remade: list = []
    certs.ensure(d, {PREFIX + "gateway/tls.crt"}, set(), remade)
    assert remade == [d / "gateway"]
    leaf = x509.load_pem_x509_certificate((d / "gateway" / "tls.crt").read_bytes())
    assert leaf.not_valid_after_utc - dt.datetime.now(dt.timezone.utc) > certs.RENEW_BEFORE


# ---- fixtures ----------------------------------------------------------------------------------

def test_the_fixtures_client_certificate_is_for_client_authentication(tmp_path):
    ca_pem, client_pem = _wrong_ca_pem()
    (tmp_path / "ca.crt").write_bytes(ca_pem)
    (tmp_path / "client.pem").write_bytes(client_pem)
    assert openssl_verify(tmp_path / "ca.crt", tmp_path / "client.pem", "sslclient").returncode == 0
    assert openssl_verify(tmp_path / "ca.crt", tmp_path / "client.pem", "sslserver").returncode != 0
    # accepted by a server that verifies client certificates strictly
    lab = tmp_path / "lab"
    certs.ensure(lab, {PREFIX + "accounts/tls.crt"}, set())
    client = strict_client(lab / "ca" / "ca.crt", (tmp_path / "client.pem",))
    seen = handshake(lab / "accounts" / "tls.crt", lab / "accounts" / "tls.key", client, "accounts",
                     client_ca=tmp_path / "ca.crt")
    assert dict(x[0] for x in seen["subject"])["commonName"] == "gateway"


def test_a_leaf_role_must_be_one_the_kit_knows():
    with pytest.raises(ValueError, match="server, client, mesh"):
        pki.make_leaf(pki.make_ca("x", 1), "y", 1, role="peer")
