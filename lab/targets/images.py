"""What scripts/build-images.sh asks Python: an image's content tag, and the nodes' platform.

    python -m lab.targets.images tag --dockerfile F --context DIR [--version 0.1.0] [--platform P]
        -> 0.1.0-<12 hex>: a hash of the Dockerfile, the platform and every file its COPY/ADD
           lines take from the context. A code change gives a new tag, so `helm upgrade` with
           it changes the pod template and the controller's pods roll (a reused tag with
           imagePullPolicy IfNotPresent would keep the old image on nodes that have it).
    python -m lab.targets.images platform [--eks-config manifests/eks/cluster.yaml]
        -> linux/amd64, or linux/arm64 when the node groups' instance types are Graviton
           (m6g.large, c7g.xlarge, t4g.medium, ...). EKS nodes run what they run, whatever the
           laptop that builds the images is.
"""
from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path

import yaml

_SKIP_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache"}
# Graviton families: a digit generation followed by "g" (m6g, m7gd, c6gn, r8g, t4g, x2gd, im4gn, ...)
_GRAVITON = re.compile(r"^[a-z]+\d+g[a-z]*\.")


def copy_sources(dockerfile: str) -> list[str]:
    """The context paths a Dockerfile's COPY and ADD lines take (not `--from=` stage copies)."""
    out: list[str] = []
    text = re.sub(r"\\\n", " ", dockerfile)
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].upper() not in ("COPY", "ADD"):
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        if any(w.startswith("--from") for w in words[1:]) or len(args) < 2:
            continue
        out += args[:-1]
    return out


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    found = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and not _SKIP_DIRS & set(p.relative_to(root).parts) and p.suffix != ".pyc":
            found.append(p)
    return found


def content_tag(dockerfile: Path, context: Path, version: str, platform: str = "") -> str:
    """`<version>-<12 hex>` over the Dockerfile, the platform and the files its COPY/ADD take."""
    h = hashlib.sha256()
    text = dockerfile.read_text()
    h.update(b"dockerfile\0" + text.encode() + b"\0platform\0" + platform.encode() + b"\0")
    for src in copy_sources(text):
        base = (context / src).resolve()
        if not base.exists():
            raise FileNotFoundError(f"{dockerfile}: COPY source {src} does not exist in the build context {context}")
        for f in _files(base):
            rel = f.resolve().relative_to(context.resolve()).as_posix()
            h.update(rel.encode() + b"\0" + f.read_bytes() + b"\0")
    return f"{version}-{h.hexdigest()[:12]}"


def eks_platform(config_text: str) -> str:
    """linux/arm64 when every node group of the eksctl ClusterConfig uses Graviton instances,
    linux/amd64 otherwise (and for a mix, which needs a multi-arch build: said on stderr)."""
    cfg = yaml.safe_load(config_text) or {}
    types = []
    for group in (cfg.get("managedNodeGroups") or []) + (cfg.get("nodeGroups") or []):
        types += [group["instanceType"]] if group.get("instanceType") else list(group.get("instanceTypes") or [])
    arches = {"arm64" if _GRAVITON.match(str(t)) else "amd64" for t in types} or {"amd64"}
    if len(arches) > 1:
        print("the node groups mix Graviton (arm64) and x86 (amd64) instances; building for linux/amd64 "
              "(set PLATFORM=linux/amd64,linux/arm64 for both)", file=sys.stderr)
        return "linux/amd64"
    return f"linux/{arches.pop()}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m lab.targets.images")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tag", help="an image's content tag")
    t.add_argument("--dockerfile", required=True)
    t.add_argument("--context", required=True)
    t.add_argument("--version", default="0.1.0")
    t.add_argument("--platform", default="")
    pl = sub.add_parser("platform", help="the platform the EKS nodes run")
    pl.add_argument("--eks-config", default="manifests/eks/cluster.yaml")
    args = p.parse_args(argv)
    try:
        if args.cmd == "tag":
            print(content_tag(Path(args.dockerfile), Path(args.context), args.version, args.platform))
        else:
            print(eks_platform(Path(args.eks_config).read_text()))
    except (OSError, yaml.YAMLError) as exc:
        print(f"lab.targets.images: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
