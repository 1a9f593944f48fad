"""Targets: one interface the notebooks use, whatever runs the mesh.

    t = get_target("local")          # or "kind", "eks"
    t.up(); t.apply("manifests/walkthrough/"); r = t.curl("/products"); t.down()

Every step prints the command a user would type on a cluster (kubectl / helm / curl), and
performs the same step on the target: on `local` through the lab daemon, on clusters by
running that very command.
"""
from __future__ import annotations

from .base import Response, Target, TargetError


def get_target(name: str = "local", **options) -> Target:
    if name == "local":
        from .local import LocalTarget
        return LocalTarget(**options)
    if name in ("kind", "eks"):
        from .cluster import ClusterTarget
        return ClusterTarget(name, **options)
    raise TargetError(f"unknown target {name!r}: choose local, kind or eks")


__all__ = ["Response", "Target", "TargetError", "get_target"]
