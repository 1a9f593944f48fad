"""Every name the translator gives an Envoy resource, built in one place.

The names follow App Mesh's own Envoy naming, so metrics and config dumps read the same as
they did on App Mesh (APPMESH-FACTS §2.4, §7.5):
  listeners  lds_ingress_<address>_<port>, lds_egress_<address>_<port>
             lds_egress_internal_<port>     (a gateway's egress: an Envoy internal listener)
  clusters   cds_egress_<mesh>_<virtualNode>_<protocol>_<port>
             cds_ingress_<mesh>_<virtualNode>_<protocol>_<port>      (the local app)
             cds_ingress_<mesh>_<virtualGateway>_self_redirect_<protocol>_<port>
"""
from __future__ import annotations

# Internal headers the gateway sets to carry its routing decision to its own egress
# listener (App Mesh's "self redirect", here an Envoy internal listener); removed before a
# request leaves the gateway.
TARGET_HEADER = "x-appmesh-lab-virtual-service"
TARGET_PORT_HEADER = "x-appmesh-lab-target-port"


def node_id(mesh: str, kind: str, name: str) -> str:
    """The Envoy node id App Mesh's controller injected: mesh/<mesh>/virtualNode/<vn> (short ARN form)."""
    return f"mesh/{mesh}/{kind}/{name}"


def parse_node_id(nid: str) -> tuple[str, str, str] | None:
    parts = nid.split(":")[-1].split("/")
    if len(parts) >= 4 and parts[0] == "mesh":
        return parts[1], parts[2], parts[3]
    return None


def ingress_listener(address: str, port: int) -> str:
    return f"lds_ingress_{address}_{port}"


def egress_listener(address: str, port: int) -> str:
    return f"lds_egress_{address}_{port}"


def internal_egress_listener(port: int) -> str:
    """The gateway's egress as an Envoy internal listener (no socket; reached in memory)."""
    return f"lds_egress_internal_{port}"


def ingress_routes(port: int) -> str:
    return f"rds_ingress_{port}"


def egress_routes(port: int) -> str:
    return f"rds_egress_http_{port}"


def egress_cluster(mesh: str, vn: str, protocol: str, port: int) -> str:
    return f"cds_egress_{mesh}_{vn}_{protocol}_{port}"


def local_app_cluster(mesh: str, vn: str, protocol: str, port: int) -> str:
    return f"cds_ingress_{mesh}_{vn}_{protocol}_{port}"


def self_redirect_cluster(mesh: str, vg: str, protocol: str, port: int, listener_port: int | None = None) -> str:
    middle = f"{listener_port}_" if listener_port is not None else ""
    return f"cds_ingress_{mesh}_{vg}_self_redirect_{middle}{protocol}_{port}"


def allow_all_cluster(mesh: str) -> str:
    return f"cds_egress_{mesh}_allow_all"


def amazonaws_cluster(mesh: str) -> str:
    """The cluster App Mesh lets AWS API traffic out through even with DROP_ALL (APPMESH-FACTS §7.4)."""
    return f"cds_egress_{mesh}_amazonaws"
