"""The TLS Secrets a Gateway's HTTPS listeners name, and the CA ConfigMaps its client certificate
validation names (spec.tls.frontend), as files Envoy reads (owner-only).

The Gateway API translation (lab/translate/gatewayapi.py) names a Secret's certificate and key
secret:<namespace>/<name>/tls.crt and tls.key; this writes them under a folder of the lab's own
(0700, each file 0600, written to a temporary name and renamed, so Envoy never reads half a
file) and returns the mapping to give `to_envoy`, as certs.ensure does for App Mesh's paths. The
key never travels in the xDS configuration: Envoy reads it from the file.

Rotation: Envoy reads a listener's certificate files when the listener (or its filter chain)
changes, and does not watch them. So each Secret's files live in a folder named after a digest of
the certificate (public; it changes whenever the key does, as the key must match it): a changed
Secret is a new path, hence a changed listener, which Envoy loads with the new files while the old
listener drains. A CA's ca.crt lives likewise, in a folder ca-<digest of the CA>. Files of Secrets
(and CAs) no longer named (a deleted Secret, an older version) are removed.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

from ..model import World
from ..model import gatewayapi_refs as gwrefs
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
                version = hashlib.sha256(pems[0]).hexdigest()[:16]
                for key, data in zip(("tls.crt", "tls.key"), pems):
                    path = directory / ns / name / version / key
                    if not (path.is_file() and path.read_bytes() == data):
                        _write(path, data)
                    out[gatewayapi.secret_file(ns, name, key)] = str(path)
            ca, _, _ = gwrefs.client_ca(world, gw, lst)
            if ca and _NAME.fullmatch(ca[0]) and _NAME.fullmatch(ca[1]) and ".." not in ca[0] + ca[1]:
                pem = gwrefs.ca_pem(world.get("ConfigMap", *ca))
                path = directory / ca[0] / ca[1] / ("ca-" + hashlib.sha256(pem).hexdigest()[:16]) / gwrefs.CA_KEY
                if not (path.is_file() and path.read_bytes() == pem):
                    _write(path, pem)
                out[gatewayapi.configmap_file(*ca, gwrefs.CA_KEY)] = str(path)
    _remove_unused(directory, {Path(p).parent for p in out.values()})
    return out


def _remove_unused(directory: Path, wanted: set) -> None:
    """Remove every <ns>/<name>/<version> folder not in `wanted`, then empty parents."""
    for ns in list(directory.iterdir()):
        if ns.is_symlink() or not ns.is_dir():
            continue
        for name in list(ns.iterdir()):
            if name.is_symlink() or not name.is_dir():
                continue
            for version in list(name.iterdir()):
                if version not in wanted:
                    shutil.rmtree(version) if version.is_dir() and not version.is_symlink() else version.unlink()
            if not any(name.iterdir()):
                name.rmdir()
        if not any(ns.iterdir()):
            ns.rmdir()
