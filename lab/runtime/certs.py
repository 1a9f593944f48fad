"""Certificates for the lab's TLS lessons, made on the spot (never committed).

Manifests name certificate files under /etc/appmesh-lab/certs/, as a cluster would mount them
from Secrets: `ca/ca.crt` (the lab CA) and `<name>/tls.crt`, `<name>/tls.key` (a certificate
signed by it). The local lab keeps them in `<lab home>/certs/` and makes each one the first
time a manifest mentions it. A leaf for `<name>` carries the DNS names that manifests list in
subjectAlternativeNames and that start with `<name>.`, plus `<name>` and `localhost`; when a later
manifest lists another such name (two examples both using `gateway/`), the leaf is issued again
with every name.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

PREFIX = "/etc/appmesh-lab/certs/"


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o600 if private else 0o644)
    os.replace(tmp, path)


def make_ca(directory: Path, common_name: str = "appmesh-lab CA") -> tuple:
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    _write(directory / "ca.crt", cert.public_bytes(serialization.Encoding.PEM))
    _write(directory / "ca.key", key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()), private=True)
    return cert, key


def load_ca(directory: Path) -> tuple:
    cert = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
    key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), password=None)
    return cert, key


def make_leaf(directory: Path, ca: tuple, common_name: str, dns_names: list[str]) -> None:
    ca_cert, ca_key = ca
    key = _key()
    now = dt.datetime.now(dt.timezone.utc)
    sans = [x509.DNSName(n) for n in dict.fromkeys(dns_names)] + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    _write(directory / "tls.crt", cert.public_bytes(serialization.Encoding.PEM))
    _write(directory / "tls.key", key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()), private=True)


def _leaf_names(crt: Path) -> list[str] | None:
    """The DNS names of an existing leaf certificate, None when there is none (or it cannot be read)."""
    try:
        cert = x509.load_pem_x509_certificate(crt.read_bytes())
        return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName)
    except (OSError, ValueError, x509.ExtensionNotFound):
        return None


def ensure(certs_dir: Path, paths: set[str], sans: set[str]) -> dict:
    """Make every certificate file `paths` names (under PREFIX) that does not exist yet.
    Returns the mapping manifest path -> local file for every file under certs_dir."""
    ca_dir = certs_dir / "ca"
    wanted = {p[len(PREFIX):] for p in paths if p.startswith(PREFIX)}
    if wanted and not (ca_dir / "ca.crt").exists():
        make_ca(ca_dir)
    ca = load_ca(ca_dir) if (ca_dir / "ca.crt").exists() else None
    for rel in sorted(wanted):
        parts = Path(rel).parts
        if len(parts) == 2 and parts[0] != "ca" and parts[1] in ("tls.crt", "tls.key") and ca is not None:
            leaf_dir = certs_dir / parts[0]
            name = parts[0]
            want = [s for s in sans if s.startswith(name + ".")] + [name, "localhost"]
            have = _leaf_names(leaf_dir / "tls.crt")
            if have is None:
                make_leaf(leaf_dir, ca, name, want)
            elif not set(want) <= set(have):  # a later manifest asks for another name: issue it again, with both
                make_leaf(leaf_dir, ca, name, have + want)
    return {PREFIX + str(f.relative_to(certs_dir)): str(f) for f in certs_dir.rglob("*") if f.is_file()} \
        if certs_dir.is_dir() else {}


def tls_paths(world) -> tuple[set[str], set[str]]:
    """Every file path and SAN the App Mesh resources mention."""
    paths, sans = set(), set()

    def walk(v):
        if isinstance(v, dict):
            for k, x in v.items():
                if k in ("certificateChain", "privateKey") and isinstance(x, str):
                    paths.add(x)
                elif k == "subjectAlternativeNames" and isinstance(x, dict):
                    sans.update(((x.get("match") or {}).get("exact")) or [])
                else:
                    walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
    for kind in ("VirtualNode", "VirtualGateway"):
        for r in world.by_kind[kind]:
            walk(r.spec)
    return paths, sans
