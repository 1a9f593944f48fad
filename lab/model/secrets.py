"""Kubernetes Secrets (core/v1) as the lab reads them: the fields a Secret has instead of a spec,
and, for type kubernetes.io/tls (what a Gateway's HTTPS listener names in certificateRefs), the
checks the API server and the Gateway controller make together: data tls.crt and tls.key present,
base64, PEM, a certificate and a private key that belongs to it.

Pure: parses bytes, reads no file. `kubectl create secret tls NAME --cert=FILE --key=FILE` makes
such a Secret; `stringData` (plain text) is merged into `data` as the API server does.
"""
from __future__ import annotations

import base64
import binascii

TLS_SECRET = "kubernetes.io/tls"
TOP_LEVEL = ("apiVersion", "kind", "metadata", "type", "data", "stringData", "immutable")
_MAKE = "kubectl create secret tls NAME --cert=tls.crt --key=tls.key --dry-run=client -o yaml"


def merged(data: dict) -> dict:
    """The document as the API server keeps it: stringData's values base64-encoded into data."""
    sd = data.get("stringData")
    if not isinstance(sd, dict):
        return data
    out = {k: v for k, v in data.items() if k != "stringData"}
    out["data"] = {**(data.get("data") if isinstance(data.get("data"), dict) else {}),
                   **{str(k): base64.b64encode(str(v).encode()).decode() for k, v in sd.items()}}
    return out


def problems(data: dict) -> list[tuple[str, str, str]]:
    """(field path, message, hint) for what is wrong with a Secret document (after `merged`)."""
    out = []
    kind = data.get("type", "Opaque")
    if not isinstance(kind, str) or not kind:
        return [("type", "type must be a string (e.g. kubernetes.io/tls)", "write type: kubernetes.io/tls")]
    if "immutable" in data and not isinstance(data["immutable"], bool):
        out.append(("immutable", "immutable must be true or false", "write immutable: true"))
    values = data.get("data")
    if values is None:
        values = {}
    if not isinstance(values, dict):
        return out + [("data", "data must be a mapping of key to base64 value", "write data: {tls.crt: ..., tls.key: ...}")]
    decoded = {}
    for key, value in values.items():
        path = f"data.{key}"
        if not isinstance(value, str):
            out.append((path, "a Secret's data value must be a base64 string", "base64 -w0 FILE"))
            continue
        try:
            decoded[key] = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            out.append((path, "is not valid base64", "encode the file with `base64 -w0 FILE`, or put the "
                        "plain text under stringData"))
    if kind != TLS_SECRET:
        return out
    for key in ("tls.crt", "tls.key"):
        if key not in values:
            out.append(("data", f"a {TLS_SECRET} Secret needs data {key}", _MAKE))
    if out or not decoded:
        return out
    return _tls_problems(decoded["tls.crt"], decoded["tls.key"])


def _tls_problems(crt: bytes, key: bytes) -> list[tuple[str, str, str]]:
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    try:
        certs = x509.load_pem_x509_certificates(crt)
    except ValueError:
        return [("data.tls.crt", "is not a PEM certificate (-----BEGIN CERTIFICATE-----)",
                 "give the certificate chain in PEM, the server's certificate first")]
    try:
        private = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError):
        return [("data.tls.key", "is not an unencrypted PEM private key",
                 "give the key in PEM without a passphrase (`openssl pkey -in KEY -out tls.key`)")]
    except UnsupportedAlgorithm:
        return [("data.tls.key", "the private key's algorithm is not supported", "use an RSA or EC key")]
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    if private.public_key().public_bytes(enc, pub) != certs[0].public_key().public_bytes(enc, pub):
        return [("data.tls.key", "the private key does not belong to the certificate (the first one of tls.crt)",
                 "give the key the certificate was issued for, or put the server's certificate first")]
    return []
