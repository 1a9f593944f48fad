"""The daemon's Gateway API hooks: where a Gateway's pod listens, and the status it writes.

Each Gateway the lab serves gets its own gateway Envoy (lab/runtime/pods.py gateway_api_pods).
A listener's port maps to a loopback port chosen once and kept in the lab's store: 40000 + the
listener port when that is free (port 80 -> 127.0.0.1:40080), else any free port. It is shown by
`appmesh-lab status`, `appmesh-lab get gateways` (EXPOSED) and the Gateway's status.exposedPorts.
"""
from __future__ import annotations

from ..translate import gatewayapi as translate_gwapi
from ..translate.gatewayapi_status import KINDS, status_of, with_times

PORT_BASE = 40000


def is_gateway_api(proxy) -> bool:
    return proxy is not None and proxy.kind == "Gateway"


def node_id(proxy) -> str:
    return translate_gwapi.node_id(proxy)


def listener_ports(proxy) -> list:
    """The ports a gateway pod's Envoy listens on, for a VirtualGateway or a Gateway."""
    if is_gateway_api(proxy):
        return [lst.get("port") for lst in proxy.spec.get("listeners") or []]
    return [(lst.get("portMapping") or {}).get("port") for lst in proxy.spec.get("listeners") or []]


def preferred_port(listener_port: int) -> int | None:
    return PORT_BASE + listener_port if PORT_BASE + listener_port < 65536 else None


def _programmed(daemon, nid: str) -> tuple:
    push = daemon.pushes.get(nid)
    if push is None:
        return (False, "Pending", "no configuration pushed to the gateway's Envoy yet")
    conflict = daemon.port_conflicts.view(nid) if push["acked"] is None else None
    if conflict is not None:
        return (False, "Pending", conflict["message"])
    if push["acked"] is None:
        return (False, "Pending", f"configuration {push['version']} sent to the gateway's Envoy, not ACKed yet")
    return (True, "Programmed", f"the gateway's Envoy ACKed configuration {push['version']}")


def statuses(daemon, world, now: str) -> list:
    """(key, status) for each Gateway API object whose status changes."""
    out = []
    for kind in KINDS:
        for rec in daemon.store.list(kind):
            r = world.by_key.get(rec.key)
            if r is None:
                continue
            programmed = exposed = None
            if kind == "Gateway":
                nid = node_id(r)
                programmed = _programmed(daemon, nid) if nid in daemon.placement.listeners else None
                exposed = daemon.placement.listeners.get(nid)
            new = status_of(world, r, rec.generation, programmed, exposed)
            if new is None:
                continue
            new = with_times(new, rec.status, now)
            if new != rec.status:
                out.append((rec.key, new))
    return out


def gateway_views(placement) -> list:
    """The Gateway API gateways for /v1/status, like the virtual gateways there."""
    return [{"node_id": nid, "listeners": {str(k): f"http://127.0.0.1:{v}" for k, v in listeners.items()}}
            for nid, listeners in placement.listeners.items() if f"/{translate_gwapi.MESH}/gateway/" in nid]
