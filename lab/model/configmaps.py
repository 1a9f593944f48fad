"""Kubernetes ConfigMaps (core/v1) as the lab reads them: the fields a ConfigMap has instead of a
spec. The lab reads one use of them: the CA bundle (key ca.crt, PEM) a Gateway's
spec.tls.frontend names to validate client certificates (Gateway API GEP-91); whether ca.crt holds
a certificate is the Gateway's check (lab/model/gatewayapi_refs.py), as the Gateway controller makes
it, not the API server's.

Pure: reads no file. `kubectl create configmap NAME --from-file=ca.crt=FILE` makes such a ConfigMap.
"""
from __future__ import annotations

import base64
import binascii
import re

TOP_LEVEL = ("apiVersion", "kind", "metadata", "data", "binaryData", "immutable")
_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")  # the API server's rule for a ConfigMap key
_MAKE = "kubectl create configmap NAME --from-file=ca.crt=FILE --dry-run=client -o yaml"


def problems(data: dict) -> list[tuple[str, str, str]]:
    """(field path, message, hint) for what is wrong with a ConfigMap document."""
    out = []
    if "immutable" in data and not isinstance(data["immutable"], bool):
        out.append(("immutable", "immutable must be true or false", "write immutable: true"))
    keys: set = set()
    for field, text in (("data", True), ("binaryData", False)):
        values = data.get(field)
        if values is None:
            continue
        if not isinstance(values, dict):
            out.append((field, f"{field} must be a mapping of key to value", _MAKE))
            continue
        for key, value in values.items():
            path = f"{field}.{key}"
            if not isinstance(key, str) or len(key) > 253 or not _KEY.match(key):
                out.append((path, f"{key!r} is not a valid ConfigMap key (letters, digits, '-', '_', '.')",
                            "name the key e.g. ca.crt"))
            elif key in keys:
                out.append((path, f"key {key!r} is in both data and binaryData", "keep it in one of them"))
            keys.add(key)
            if text and not isinstance(value, str):
                out.append((path, "a ConfigMap's data value must be a string", "quote it, or use a block scalar (|)"))
            elif not text:
                try:
                    base64.b64decode(value if isinstance(value, str) else b"!", validate=True)
                except (binascii.Error, ValueError):
                    out.append((path, "is not valid base64", "put text under data, or encode with `base64 -w0 FILE`"))
    return out


def value(raw: dict, key: str) -> bytes | None:
    """One key's value as bytes (data as UTF-8, binaryData decoded); None when absent or unreadable."""
    raw = raw if isinstance(raw, dict) else {}
    data, binary = raw.get("data"), raw.get("binaryData")
    if isinstance(data, dict) and isinstance(data.get(key), str):
        return data[key].encode()
    if isinstance(binary, dict) and isinstance(binary.get(key), str):
        try:
            return base64.b64decode(binary[key], validate=True)
        except (binascii.Error, ValueError):
            return None
    return None
