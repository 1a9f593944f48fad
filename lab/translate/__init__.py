"""Translation: App Mesh resources -> per-proxy IR -> Envoy resources. Pure functions, no I/O.

    irs = build(world, placement)            # node id -> IR (plain data)
    envoy = {nid: to_envoy(ir) for nid, ir in irs.items()}
"""
from . import gatewayapi
from .envoy import to_envoy
from .ir import Placement
from .ir import build as _app_mesh_build

__all__ = ["Placement", "build", "to_envoy", "translate"]


def build(world, placement) -> dict:
    """Every proxy's IR, keyed by node id: App Mesh's proxies, and the Gateways the lab serves."""
    out = _app_mesh_build(world, placement)
    if world.by_kind["Gateway"]:
        out.update(gatewayapi.build(world, placement))
    return dict(sorted(out.items()))


def translate(world, placement, files=None) -> dict:
    """node id -> {"ir": ..., "envoy": ...}"""
    return {nid: {"ir": ir, "envoy": to_envoy(ir, files)} for nid, ir in build(world, placement).items()}
