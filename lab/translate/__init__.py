"""Translation: App Mesh resources -> per-proxy IR -> Envoy resources. Pure functions, no I/O.

    irs = build(world, placement)            # node id -> IR (plain data)
    envoy = {nid: to_envoy(ir) for nid, ir in irs.items()}
"""
from .envoy import to_envoy
from .ir import Placement, build

__all__ = ["Placement", "build", "to_envoy", "translate"]


def translate(world, placement, files=None) -> dict:
    """node id -> {"ir": ..., "envoy": ...}"""
    return {nid: {"ir": ir, "envoy": to_envoy(ir, files)} for nid, ir in build(world, placement).items()}
