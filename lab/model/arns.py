"""App Mesh ARNs of the lab: one account, a region, and the resource path built from App Mesh names.

    arn:aws:appmesh:<region>:111122223333:mesh/<mesh>[/virtualGateway/<vg>/gatewayRoute/<gr>]

Shared by everything that shows an ARN: the local daemon (resource status), the in-cluster
controller (the same status on kind and EKS) and the App Mesh REST API (which uses the region
the client signed for). It lives in the model because it only reads resources and the World;
the daemon and the API both import it, so neither imports the other for it.
"""
from __future__ import annotations

import os

REGION = os.environ.get("APPMESH_LAB_REGION", "us-west-2")  # the lab's default region
ACCOUNT = "111122223333"  # the lab's fixed local account id
# the status field each kind reports its ARN in (as the App Mesh controller does)
ARN_FIELD = {"Mesh": "meshARN", "VirtualNode": "virtualNodeARN", "VirtualService": "virtualServiceARN",
             "VirtualRouter": "virtualRouterARN", "VirtualGateway": "virtualGatewayARN",
             "GatewayRoute": "gatewayRouteARN"}


def arn_of(region: str, account: str, path: str) -> str:
    """The ARN of a resource path (`mesh/m/virtualNode/vn`)."""
    return f"arn:aws:appmesh:{region}:{account}:{path}"


def arn(world, r) -> str | None:
    """The ARN of a stored resource, in the lab's region; None when it belongs to no mesh (or, a
    gateway route, to no single gateway)."""
    if r.kind == "Mesh":
        return arn_of(REGION, ACCOUNT, f"mesh/{r.aws_name()}")
    mesh = world.mesh_of(r)
    if not mesh:
        return None
    base = f"mesh/{mesh.aws_name()}"
    if r.kind == "GatewayRoute":
        vgs = world.gateways_for(r) or []
        return arn_of(REGION, ACCOUNT, f"{base}/virtualGateway/{vgs[0].aws_name()}/gatewayRoute/{r.aws_name()}") \
            if len(vgs) == 1 else None
    kind = r.kind[0].lower() + r.kind[1:]
    return arn_of(REGION, ACCOUNT, f"{base}/{kind}/{r.aws_name()}")
