"""App Mesh service quotas, as the lab's API enforces them (LimitExceededException, HTTP 400).

Defaults are AWS's (APPMESH-FACTS §12). They count every resource in scope, whether it came
through the API or as a manifest, and are checked by the API's Create (and, for backends, Update)
only: a manifest apply is never refused for a quota, as on Kubernetes, where the controller
would have failed to create the App Mesh resource instead.

The lab is also for benchmarks, so the limits can be raised in the daemon's environment:

    APPMESH_LAB_API_QUOTAS=off                                    no quota at all
    APPMESH_LAB_API_QUOTAS=gatewayRoutesPerVirtualGateway=500,meshes=50
    APPMESH_LAB_API_QUOTAS=virtualGatewaysPerMesh=off             lift one

(set before `appmesh-lab up`; read on every request). "Weighted targets per route" (10, not
adjustable) is no quota here: the API model itself caps the list at 10 (BadRequestException).
"""
from __future__ import annotations

import os

from .errors import ApiError, LimitExceeded

ENV = "APPMESH_LAB_API_QUOTAS"

# name: (default, what is counted, AWS Service Quotas code)
QUOTAS = {
    "meshes": (15, "meshes per account", "L-AC861A39"),
    "virtualServicesPerMesh": (200, "virtual services per mesh", "L-DA7495A7"),
    "virtualNodesPerMesh": (200, "virtual nodes per mesh", "L-E043DFB4"),
    "virtualRoutersPerMesh": (200, "virtual routers per mesh", "L-50F6C35A"),
    "virtualGatewaysPerMesh": (3, "virtual gateways per mesh", "L-87E74146"),
    "routesPerVirtualRouter": (50, "routes per virtual router", "L-BB90B7FF"),
    "gatewayRoutesPerVirtualGateway": (10, "gateway routes per virtual gateway", "L-F6F26D09"),
    "backendsPerVirtualNode": (50, "backends per virtual node", "L-8775AB18"),
}


def limits(environ=None) -> dict:
    """Quota name → limit (None: unlimited), after the environment's overrides."""
    text = (environ if environ is not None else os.environ).get(ENV, "").strip()
    out = {name: q[0] for name, q in QUOTAS.items()}
    if not text:
        return out
    if text.lower() in ("off", "none", "0", "false", "no"):
        return {name: None for name in out}
    for item in text.split(","):
        name, _, value = item.strip().partition("=")
        if name not in QUOTAS:
            raise ApiError(f"{ENV}: unknown quota {name!r} (known: {', '.join(QUOTAS)}; or set it to off)")
        if value.strip().lower() == "off":
            out[name] = None
        elif value.strip().isdigit():
            out[name] = int(value)
        else:
            raise ApiError(f"{ENV}: {name}={value!r} is neither a number nor off")
    return out


def check(name: str, count: int, scope: str) -> None:
    """Raise LimitExceeded when `count` (what there would be after the request) exceeds the quota."""
    limit = limits().get(name)
    if limit is not None and count > limit:
        default, what, code = QUOTAS[name]
        raise LimitExceeded(f"{scope} would have {count} {what.split(' per ')[0]}; the quota of {what} is {limit} "
                            f"(AWS default {default}, quota code {code}). The lab can raise it: start the daemon with "
                            f"{ENV}={name}=<n> or {ENV}=off")
