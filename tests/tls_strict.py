"""Strict TLS checks shared by the certificate tests: a real handshake against a local ssl server
with `ssl.VERIFY_X509_STRICT` (what Python 3.13's default context does), `openssl verify
-x509_strict`, and certificates as an older kit made them (no key identifiers, no extended key
usage), to show what strict verifiers refuse."""
from __future__ import annotations

import datetime as dt
import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from lab.runtime import pki


def strict_client(cafile: Path, cert: tuple | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(cafile))
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    if cert:
        ctx.load_cert_chain(*map(str, cert))
    return ctx


def handshake(server_cert: Path, server_key: Path, client: ssl.SSLContext, hostname: str,
              client_ca: Path | None = None) -> dict:
    """One TLS handshake with a local ssl server presenting server_cert; with client_ca the server
    requires a client certificate and verifies it strictly too. Returns the client certificate
    the server saw ({} without one); raises what the client's handshake raised."""
    srv = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    srv.load_cert_chain(str(server_cert), str(server_key))
    if client_ca:
        srv.verify_mode = ssl.CERT_REQUIRED
        srv.verify_flags |= ssl.VERIFY_X509_STRICT
        srv.load_verify_locations(str(client_ca))
    seen, errors = {}, []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve():
            conn, _ = listener.accept()
            try:
                with srv.wrap_socket(conn, server_side=True) as s:
                    seen.update(s.getpeercert() or {})
                    s.sendall(b"ok")
            except (ssl.SSLError, OSError) as exc:
                errors.append(exc)
        th = threading.Thread(target=serve, daemon=True)
        th.start()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                with client.wrap_socket(raw, server_hostname=hostname) as s:
                    assert s.recv(2) == b"ok"
        finally:
            th.join(5)
    assert not errors, f"the server's side of the handshake failed: {errors}"
    return seen


def openssl_verify(ca: Path, cert: Path, purpose: str) -> subprocess.CompletedProcess:
    if not shutil.which("openssl"):
        pytest.skip("needs the openssl command (apt-get install openssl)")
    return subprocess.run(["openssl", "verify", "-x509_strict", "-purpose", purpose, "-CAfile", str(ca), str(cert)],
                          capture_output=True, text=True)


def old_style(directory: Path, names=("gateway", "localhost")) -> None:
    """What the kit made before: a CA and a leaf without key identifiers or extended key usage."""
    from cryptography.hazmat.primitives.asymmetric import ec
    now = dt.datetime.now(dt.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "appmesh-lab CA")])
    ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
          .serial_number(1).not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=9))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(key, hashes.SHA256()))
    lkey = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gateway")]))
            .issuer_name(name).public_key(lkey.public_key()).serial_number(2)
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=9))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True).sign(key, hashes.SHA256()))
    for sub, c, k in (("ca", ca, key), ("gateway", leaf, lkey)):
        (directory / sub).mkdir(parents=True)
        (directory / sub / ("ca.crt" if sub == "ca" else "tls.crt")).write_bytes(pki.pem(c))
        (directory / sub / ("ca.key" if sub == "ca" else "tls.key")).write_bytes(pki.key_pem(k))


