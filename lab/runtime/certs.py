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
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ..model.tls_fields import CERTS_DIR, cert_path_problem
from . import pki

PREFIX = CERTS_DIR
CA_DAYS = 3650     # the lab CA: as long as a lab home may live
LEAF_DAYS = 365    # a proxy's certificate; issued again when it nears its end
RENEW_BEFORE = dt.timedelta(days=30)


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o600 if private else 0o644)
    os.replace(tmp, path)


def make_ca(directory: Path, common_name: str = "appmesh-lab CA") -> tuple:
    cert, key = pki.make_ca(common_name, CA_DAYS)
    _write(directory / "ca.key", pki.key_pem(key), private=True)
    _write(directory / "ca.crt", pki.pem(cert))
    return cert, key


def load_ca(directory: Path) -> tuple:
    cert = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
    key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), password=None)
    return cert, key


def make_leaf(directory: Path, ca: tuple, common_name: str, dns_names: list[str]) -> None:
    """A proxy's certificate: it serves TLS and is also presented as a client certificate
    (mTLS), so it is good for both (pki.ROLES["mesh"])."""
    cert, key = pki.make_leaf(ca, common_name, LEAF_DAYS, dns_names, ["127.0.0.1"], role="mesh")
    _write(directory / "tls.key", pki.key_pem(key), private=True)
    _write(directory / "tls.crt", pki.pem(cert))


def _load(crt: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(crt.read_bytes())
    except (OSError, ValueError):
        return None


def _leaf_names(cert: x509.Certificate) -> list[str]:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName)
    except x509.ExtensionNotFound:
        return []


def _usable_ca(ca_dir: Path) -> tuple | None:
    """The lab CA, unless it is missing, unreadable, made by an older kit without the extensions
    strict verifiers need (pki.problems), or near its end: then None (it is made again)."""
    cert = _load(ca_dir / "ca.crt")
    if cert is None or pki.problems(cert, cert, renew_before=RENEW_BEFORE):
        return None
    try:
        return load_ca(ca_dir)
    except (OSError, ValueError):
        return None


def ensure(certs_dir: Path, paths: set[str], sans: set[str], remade: list | None = None) -> dict:
    """Make every certificate file `paths` names (under PREFIX) that does not exist yet, and
    make again those that are not fit: issued by an older CA, lacking what RFC 5280 wants
    (a lab home from an older kit), near their end, or missing a name a manifest asks for.
    Certificates made again where one existed are appended to `remade` (their directories).
    Returns the mapping manifest path -> local file for every file under certs_dir."""
    ca_dir = certs_dir / "ca"
    # validation refuses any other path; this keeps a path that slipped through (a stored object from
    # an older lab, a bug) from making the lab write a key anywhere but inside certs_dir
    wanted = {p[len(PREFIX):] for p in paths if p.startswith(PREFIX) and cert_path_problem(p) is None}
    ca = None
    if wanted:
        ca = _usable_ca(ca_dir)
        if ca is None:
            if (ca_dir / "ca.crt").exists() and remade is not None:
                remade.append(ca_dir)
            ca = make_ca(ca_dir)
    for rel in sorted(wanted):
        parts = Path(rel).parts
        if len(parts) == 2 and parts[0] != "ca" and parts[1] in ("tls.crt", "tls.key") and ca is not None:
            leaf_dir = certs_dir / parts[0]
            name = parts[0]
            if not inside(certs_dir, leaf_dir):
                continue
            want = [s for s in sans if s.startswith(name + ".")] + [name, "localhost"]
            cert = _load(leaf_dir / "tls.crt")
            have = _leaf_names(cert) if cert is not None else []
            if cert is None or not (leaf_dir / "tls.key").exists():
                make_leaf(leaf_dir, ca, name, want)
            elif not set(want) <= set(have) or pki.problems(cert, ca[0], renew_before=RENEW_BEFORE):
                # a later manifest asks for another name (issue it again, with both), or it is unfit
                make_leaf(leaf_dir, ca, name, have + [w for w in want if w not in have])
                if remade is not None:
                    remade.append(leaf_dir)
    return {PREFIX + str(f.relative_to(certs_dir)): str(f) for f in certs_dir.rglob("*") if f.is_file()} \
        if certs_dir.is_dir() else {}


def inside(root: Path, path: Path) -> bool:
    """Whether `path`, with every link resolved, lies strictly inside the folder `root`."""
    base, target = os.path.realpath(root), os.path.realpath(path)
    return target != base and os.path.commonpath([base, target]) == base


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
