"""Envoy v3 bootstrap for a proxy managed by :class:`lab.xds.server.XdsServer`.

The bootstrap is a plain dict (proto3 JSON of ``envoy.config.bootstrap.v3.Bootstrap``)
so it can be written as JSON/YAML or inspected in tests. Everything dynamic
(clusters, listeners and, through them, endpoints, routes and secrets) comes
over one ADS stream to the static cluster :data:`XDS_CLUSTER_NAME`.

Two shapes: the local lab's proxies reach the xDS server and expose their admin interface on
Unix sockets in the lab's owner-only folder (``xds_socket``, ``admin_socket``: no other local
user can talk to either); a cluster's injected sidecars use TCP (``xds_host``/``xds_port``,
``admin_port``), the pod being their boundary.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

XDS_CLUSTER_NAME = "xds_cluster"

# The runtime every proxy of the kit gets, on every target (the local daemon's Envoys and the
# injected ones in a cluster). Envoy refuses a whole route configuration when one regex compiles
# to an RE2 program larger than 100 instructions (its default), e.g. "(abc|def|…){3}"; App Mesh
# allows any regex of up to 255 characters, so the kit raises the limit instead of letting one
# route freeze a proxy's routes.
ENVOY_RUNTIME = {"re2.max_program_size.error_level": 1_000_000}

_HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_INTERNAL_LISTENER = "envoy.extensions.bootstrap.internal_listener.v3.InternalListener"
_DOWNSTREAM_CONNECTIONS = (
    "envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig"
)


def _duration(seconds: float) -> str:
    """Seconds as a proto3 JSON Duration ("1s", "0.250s")."""
    if seconds < 0:
        raise ValueError(f"negative duration: {seconds}")
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{seconds:.3f}s"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def make_bootstrap(
    node_id: str,
    *,
    cluster: str | None = None,
    xds_host: str | None = None,
    xds_port: int | None = None,
    admin_port: int | None = None,
    admin_host: str = "127.0.0.1",
    xds_socket: str | None = None,
    admin_socket: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    locality: Mapping[str, str] | None = None,
    initial_fetch_timeout_s: float = 5.0,
    xds_connect_timeout_s: float = 1.0,
    xds_retry_base_s: float = 0.25,
    xds_retry_max_s: float = 2.0,
    xds_keepalive_interval_s: float = 15.0,
    max_downstream_connections: int = 10_000,
    runtime: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the bootstrap dict for one proxy.

    ``node_id`` is what the xDS server keys snapshots by; ``cluster`` (the
    Envoy "service cluster", defaults to ``node_id``) shows up in stats and
    logs. ``admin_port`` may be 0 when the caller reads the bound address
    back (``EnvoyProcess`` does, via ``--admin-address-path``).

    ``initial_fetch_timeout_s`` bounds how long Envoy's initialisation waits
    for the first CDS/LDS answer before it goes LIVE anyway (it then applies
    the config whenever it arrives). ``xds_retry_*`` is the reconnect backoff
    to the xDS server, kept short so a restarted server is picked up quickly.

    ``xds_socket`` (a Unix socket path) replaces ``xds_host``/``xds_port``;
    ``admin_socket`` replaces ``admin_port``: Envoy creates it with mode 0600.
    """
    if not node_id:
        raise ValueError("node_id must be non-empty")
    if (xds_socket is None) == (xds_host is None or xds_port is None):
        raise ValueError("give either xds_socket or xds_host and xds_port")
    if xds_socket is None and not 0 < int(xds_port) < 65536:
        raise ValueError(f"invalid xds_port: {xds_port}")
    if (admin_socket is None) == (admin_port is None):
        raise ValueError("give either admin_socket or admin_port")
    if admin_socket is None and not 0 <= int(admin_port) < 65536:
        raise ValueError(f"invalid admin_port: {admin_port}")
    if admin_socket is not None:
        admin_address: dict[str, Any] = {"pipe": {"path": admin_socket, "mode": 0o600}}
    else:
        admin_address = {"socket_address": {"address": admin_host, "port_value": int(admin_port)}}
    if xds_socket is not None:
        xds_address: dict[str, Any] = {"pipe": {"path": xds_socket}}
    else:
        xds_address = {"socket_address": {"address": xds_host, "port_value": int(xds_port)}}

    node: dict[str, Any] = {"id": node_id, "cluster": cluster or node_id}
    if metadata:
        node["metadata"] = dict(metadata)
    if locality:
        node["locality"] = dict(locality)

    ads_source = {
        "ads": {},
        "resource_api_version": "V3",
        "initial_fetch_timeout": _duration(initial_fetch_timeout_s),
    }

    xds_cluster: dict[str, Any] = {
        "name": XDS_CLUSTER_NAME,
        # An IP is used as is; a host name is resolved (and re-resolved).
        "type": "STATIC" if xds_socket is not None or _is_ip(xds_host) else "STRICT_DNS",
        "connect_timeout": _duration(xds_connect_timeout_s),
        "load_assignment": {
            "cluster_name": XDS_CLUSTER_NAME,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {"endpoint": {"address": xds_address}}
                    ]
                }
            ],
        },
        # gRPC needs HTTP/2 to the xDS server.
        "typed_extension_protocol_options": {
            _HTTP_PROTOCOL_OPTIONS: {
                "@type": "type.googleapis.com/" + _HTTP_PROTOCOL_OPTIONS,
                "explicit_http_config": {
                    "http2_protocol_options": {
                        "connection_keepalive": {
                            "interval": _duration(xds_keepalive_interval_s),
                            "timeout": _duration(max(1.0, xds_keepalive_interval_s / 3)),
                        }
                    }
                },
            }
        },
    }
    if xds_socket is None and not _is_ip(xds_host):
        xds_cluster["dns_lookup_family"] = "V4_PREFERRED"

    static_layer: dict[str, Any] = dict(runtime or {})

    return {
        "node": node,
        "admin": {"address": admin_address},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [
                    {
                        "envoy_grpc": {
                            "cluster_name": XDS_CLUSTER_NAME,
                            # For xDS streams only the backoff is honoured.
                            "retry_policy": {
                                "retry_back_off": {
                                    "base_interval": _duration(xds_retry_base_s),
                                    "max_interval": _duration(xds_retry_max_s),
                                }
                            },
                        }
                    }
                ],
                "set_node_on_first_message_only": True,
            },
            "cds_config": dict(ads_source),
            "lds_config": dict(ads_source),
        },
        "static_resources": {"clusters": [xds_cluster]},
        # Internal listeners (a gateway's egress stage is one): listeners without a socket that
        # a cluster of the same Envoy connects to in memory (envoy_internal_address).
        "bootstrap_extensions": [
            {
                "name": "envoy.bootstrap.internal_listener",
                "typed_config": {"@type": "type.googleapis.com/" + _INTERNAL_LISTENER},
            }
        ],
        # An explicit runtime (static layer + admin layer) instead of Envoy's
        # deprecated implicit one.
        "layered_runtime": {
            "layers": [
                {"name": "static_layer", "static_layer": static_layer},
                {"name": "admin_layer", "admin_layer": {}},
            ]
        },
        # A bound on downstream connections; without it Envoy warns at start.
        "overload_manager": {
            "resource_monitors": [
                {
                    "name": "envoy.resource_monitors.global_downstream_max_connections",
                    "typed_config": {
                        "@type": "type.googleapis.com/" + _DOWNSTREAM_CONNECTIONS,
                        "max_active_downstream_connections": int(max_downstream_connections),
                    },
                }
            ]
        },
    }
