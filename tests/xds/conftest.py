"""Shared helpers for the xDS tests: builders of proto3-JSON resources.

The builders are exposed through the ``res`` fixture (a namespace of
functions) rather than an importable module, so they work whatever import
mode pytest runs in.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

HCM_TYPE = (
    "type.googleapis.com/"
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)
ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"


def socket_address(port: int, host: str = "127.0.0.1") -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def cla(name: str, ports: list[int] = (), host: str = "127.0.0.1") -> dict[str, Any]:
    """ClusterLoadAssignment with one locality holding ``ports`` on ``host``."""
    return {
        "cluster_name": name,
        "endpoints": [
            {"lb_endpoints": [{"endpoint": {"address": socket_address(p, host)}} for p in ports]}
        ],
    }


def static_cluster(name: str, port: int, host: str = "127.0.0.1") -> dict[str, Any]:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": cla(name, [port], host),
    }


def eds_cluster(name: str, service_name: str | None = None) -> dict[str, Any]:
    eds: dict[str, Any] = {"eds_config": {"ads": {}, "resource_api_version": "V3"}}
    if service_name:
        eds["service_name"] = service_name
    return {"name": name, "type": "EDS", "connect_timeout": "1s", "eds_cluster_config": eds}


def route(prefix: str, cluster: str, rewrite: str | None = None) -> dict[str, Any]:
    action: dict[str, Any] = {"cluster": cluster}
    if rewrite is not None:
        action["prefix_rewrite"] = rewrite
    return {"match": {"prefix": prefix}, "route": action}


def weighted_route(prefix: str, weights: dict[str, int]) -> dict[str, Any]:
    return {
        "match": {"prefix": prefix},
        "route": {
            "weighted_clusters": {
                "clusters": [{"name": name, "weight": w} for name, w in weights.items()]
            }
        },
    }


def route_config(name: str, routes: list[dict[str, Any]], domains: tuple[str, ...] = ("*",)) -> dict[str, Any]:
    return {
        "name": name,
        "virtual_hosts": [{"name": f"{name}-vh", "domains": list(domains), "routes": routes}],
    }


def hcm(route_config_name: str | None = None, *, inline: dict[str, Any] | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "@type": HCM_TYPE,
        "stat_prefix": "ingress",
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}}],
    }
    if inline is not None:
        config["route_config"] = inline
    else:
        config["rds"] = {
            "route_config_name": route_config_name,
            "config_source": {"ads": {}, "resource_api_version": "V3"},
        }
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": config}


def listener(name: str, port: int, route_config_name: str | None = None, *, inline=None) -> dict[str, Any]:
    return {
        "name": name,
        "address": socket_address(port),
        "filter_chains": [{"filters": [hcm(route_config_name, inline=inline)]}],
    }


def tcp_listener(name: str, port: int, cluster: str) -> dict[str, Any]:
    return {
        "name": name,
        "address": socket_address(port),
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.tcp_proxy",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                            "stat_prefix": "tcp",
                            "cluster": cluster,
                        },
                    }
                ]
            }
        ],
    }


def tls_cluster_with_sds(name: str, port: int, secret: str) -> dict[str, Any]:
    cluster = static_cluster(name, port)
    cluster["transport_socket"] = {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "common_tls_context": {
                "validation_context_sds_secret_config": {
                    "name": secret,
                    "sds_config": {"ads": {}, "resource_api_version": "V3"},
                }
            },
        },
    }
    return cluster


def secret(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "validation_context": {"trusted_ca": {"inline_string": "-----BEGIN CERTIFICATE-----\n"}},
    }


@pytest.fixture
def res() -> SimpleNamespace:
    """Builders of proto3-JSON xDS resources."""
    return SimpleNamespace(
        socket_address=socket_address,
        cla=cla,
        static_cluster=static_cluster,
        eds_cluster=eds_cluster,
        route=route,
        weighted_route=weighted_route,
        route_config=route_config,
        hcm=hcm,
        listener=listener,
        tcp_listener=tcp_listener,
        tls_cluster_with_sds=tls_cluster_with_sds,
        secret=secret,
    )
