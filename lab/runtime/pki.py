"""X.509 certificates as RFC 5280 wants them: the one place the kit builds a CA or a leaf.

Strict verifiers (Python 3.13's default TLS context sets `VERIFY_X509_STRICT`; `openssl verify
-x509_strict`; many corporate TLS stacks) refuse certificates that Envoy and lenient clients
take: every certificate here carries

- a Subject Key Identifier, and an Authority Key Identifier naming its issuer's key (a CA's
  names its own key);
- basicConstraints, marked critical (CA:TRUE for a CA, CA:FALSE for a leaf);
- keyUsage, critical, fitting the role: a CA signs certificates and CRLs; a leaf signs
  handshakes (digitalSignature, plus keyEncipherment for an RSA key);
- for a leaf, extendedKeyUsage naming what it is for: serverAuth, clientAuth, or both for a
  mesh proxy, which serves TLS and presents the same certificate as a client (mTLS).

Building only; writing files is the caller's (lab/runtime/certs.py, lab/controller/webhook.py).
"""
from __future__ import annotations

import datetime as dt
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# what a leaf is for -> its extendedKeyUsage
ROLES = {
    "server": (ExtendedKeyUsageOID.SERVER_AUTH,),
    "client": (ExtendedKeyUsageOID.CLIENT_AUTH,),
    "mesh": (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH),
}
BACKDATE = dt.timedelta(minutes=5)  # clocks a little behind still accept a certificate made just now


def new_key():
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(ca: bool, rsa_key: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=not ca, key_encipherment=rsa_key and not ca, key_cert_sign=ca,
                         crl_sign=ca, content_commitment=False, data_encipherment=False, key_agreement=False,
                         encipher_only=False, decipher_only=False)


def make_ca(common_name: str, days: int, key=None, path_length: int | None = 0,
            now: dt.datetime | None = None) -> tuple:
    """(certificate, key) of a self-signed CA. path_length=0: it signs leaves only."""
    key = key or new_key()
    now = now or dt.datetime.now(dt.timezone.utc)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(_name(common_name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .add_extension(_key_usage(True, isinstance(key, rsa.RSAPrivateKey)), critical=True)
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def make_leaf(ca: tuple, common_name: str, days: int, dns_names=(), ip_addresses=(), role: str = "server",
              key=None, now: dt.datetime | None = None) -> tuple:
    """(certificate, key) of a leaf signed by ca = (certificate, key), for `role` (see ROLES)."""
    if role not in ROLES:
        raise ValueError(f"unknown certificate role {role!r}; one of {', '.join(ROLES)}")
    ca_cert, ca_key = ca
    key = key or new_key()
    now = now or dt.datetime.now(dt.timezone.utc)
    sans = [x509.DNSName(n) for n in dict.fromkeys(dns_names)] + \
        [x509.IPAddress(ipaddress.ip_address(a)) for a in dict.fromkeys(ip_addresses)]
    builder = (x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(ca_cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - BACKDATE)
               .not_valid_after(min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(_key_usage(False, isinstance(key, rsa.RSAPrivateKey)), critical=True)
               .add_extension(x509.ExtendedKeyUsage(list(ROLES[role])), critical=False)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                              critical=False))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def problems(cert: x509.Certificate, issuer: x509.Certificate | None = None,
             now: dt.datetime | None = None, renew_before: dt.timedelta = dt.timedelta(0)) -> list[str]:
    """Why a certificate made earlier (perhaps by an older kit) should be made again; [] when
    it is fine: the extensions above are missing, its issuer is not `issuer`, or it expires
    within `renew_before`."""
    out = []
    ext = {type(e.value) for e in cert.extensions}
    for cls, what in ((x509.SubjectKeyIdentifier, "Subject Key Identifier"),
                      (x509.AuthorityKeyIdentifier, "Authority Key Identifier"),
                      (x509.BasicConstraints, "basic constraints"), (x509.KeyUsage, "key usage")):
        if cls not in ext:
            out.append(f"no {what}")
    if x509.BasicConstraints in ext:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        if not bc.critical:
            out.append("basic constraints not critical")
        if not bc.value.ca and x509.ExtendedKeyUsage not in ext:
            out.append("no extended key usage")
    if issuer is not None and x509.AuthorityKeyIdentifier in ext:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
        try:
            ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        except x509.ExtensionNotFound:
            ski = None
        if aki != ski or cert.issuer != issuer.subject:
            out.append("issued by another CA")
    now = now or dt.datetime.now(dt.timezone.utc)
    if cert.not_valid_after_utc - now <= renew_before:
        out.append(f"expires {cert.not_valid_after_utc:%Y-%m-%d}")
    return out


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
