"""The TLS Secrets a Gateway's HTTPS listeners name, as files Envoy reads (owner-only).

The Gateway API translation (lab/translate/gatewayapi.py) names a Secret's certificate and key
secret:<namespace>/<name>/tls.crt and tls.key; this writes them under a folder of the lab's own
(0700, each file 0600, written to a temporary name and renamed, so Envoy never reads half a
file) and returns the mapping to give `to_envoy`, as certs.ensure does for App Mesh's paths. The
key never travels in the xDS configuration: Envoy reads it from the file.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from ..model import World
from ..translate import gatewayapi


_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")  # a Kubernetes object name (DNS subdomain)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def write_tls_secrets(world: World, directory: Path) -> dict:
    """Write the certificate and key of every usable Secret an HTTPS listener of a Gateway in
    `world` names; returns {secret:<ns>/<name>/<key>: file}."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    out = {}
    for gw in world.by_kind["Gateway"]:
        for lst in gw.spec.get("listeners") or []:
            if lst.get("protocol") != "HTTPS":
                continue
            for ns, name in gatewayapi.certificate_secrets(world, gw, lst)[0]:
                if not (_NAME.fullmatch(ns or "") and _NAME.fullmatch(name or "") and ".." not in ns + name):
                    continue  # not a name Kubernetes allows: never a path outside `directory`
                pems = gatewayapi.tls_secret_pems(world.get("Secret", ns, name))
                for key, data in zip(("tls.crt", "tls.key"), pems):
                    path = directory / ns / name / key
                    _write(path, data)
                    out[gatewayapi.secret_file(ns, name, key)] = str(path)
    return out
