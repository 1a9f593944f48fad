"""A sidecar's listeners as a pod needs them: traffic arrives through the iptables redirect.

The translator makes listeners for the local lab, where every listener has a port of its own
and an app reaches its egress as an HTTP proxy. In a pod, proxy-init redirects inbound TCP to
15000 and every outbound TCP connection to 15001, whatever its protocol. This module reshapes a
sidecar's Envoy resources for that (`pod_envoy`, what the controller serves):

ingress (`redirect_ingress`)
    the per-port ingress listeners become ONE listener `lds_ingress_0.0.0.0_15000` with the
    `original_dst` listener filter and one filter chain per listener port
    (`destination_port: <port>`): App Mesh's own layout (APPMESH-FACTS §7.5).

egress (`redirect_egress`)
    `lds_egress_0.0.0.0_15001` gets the `original_dst` listener filter (the address the app
    dialled), the TLS inspector and the HTTP inspector, and picks a filter chain by what the
    connection carries:

      plaintext HTTP (http/1.0, http/1.1, h2c)  the HTTP connection manager: declared backends
                                                routed by Host; anything else per egressFilter
      TLS, and anything else (raw TCP, a        ALLOW_ALL: a TCP proxy to the original
      protocol whose server speaks first)       destination (an ORIGINAL_DST cluster);
                                                DROP_ALL: no chain matches, Envoy closes the
                                                connection, except TLS whose SNI is
                                                *.amazonaws.com (App Mesh lets AWS API calls
                                                out, APPMESH-FACTS §7.4)

    ALLOW_ALL HTTP goes to the original destination too (the app resolved the name; Envoy
    does not resolve it again). The inspectors wait for the client's first bytes; a protocol
    whose server speaks first (SMTP, MySQL) waits LISTENER_FILTERS_TIMEOUT before the
    connection goes on to the TCP chain.

Gateways keep their listeners: their pods have no redirect, their listeners bind their own ports.

IPv6 (`dual_stack`): as App Mesh does, a proxy whose mesh sets an IP preference
(`spec.meshServiceDiscovery.ipPreference`) binds all IPv4 and all IPv6 addresses: every listener
on 0.0.0.0 also listens on [::] (an additional address, IPv6 only, so the IPv4 socket stays as
it is); without a preference it binds IPv4 only, and IPv6 connections that proxy-init's ip6tables
rules redirect to 15000/15001 are refused (source: aws-app-mesh-examples,
walkthroughs/howto-ipv6, "Envoy Listener Configuration Binding Address").
"""
from __future__ import annotations

import copy

from ..translate import naming

INGRESS_PORT = 15000
EGRESS_PORT = 15001
LISTENER_FILTERS_TIMEOUT = "1s"
HTTP_PROTOCOLS = ["http/1.0", "http/1.1", "h2c"]
AWS_API_SNI = ["*.amazonaws.com"]

_T = "type.googleapis.com/envoy.extensions."
ORIGINAL_DST = {"name": "envoy.filters.listener.original_dst",
                "typed_config": {"@type": _T + "filters.listener.original_dst.v3.OriginalDst"}}
TLS_INSPECTOR = {"name": "envoy.filters.listener.tls_inspector",
                 "typed_config": {"@type": _T + "filters.listener.tls_inspector.v3.TlsInspector"}}
HTTP_INSPECTOR = {"name": "envoy.filters.listener.http_inspector",
                  "typed_config": {"@type": _T + "filters.listener.http_inspector.v3.HttpInspector"}}
TCP_PROXY = _T + "filters.network.tcp_proxy.v3.TcpProxy"
DFP_HTTP_FILTER = "envoy.filters.http.dynamic_forward_proxy"


IPV4_ANY, IPV6_ANY = "0.0.0.0", "::"


def pod_envoy(envoy: dict, ir: dict, dual: bool = False) -> dict:
    """A proxy's Envoy resources (translator output) as its pod needs them. Sidecars get the
    redirect listeners; with `dual` (the mesh sets an IP preference) every listener also binds
    IPv6."""
    if ir.get("kind") == "sidecar":
        envoy = redirect_egress(redirect_ingress(envoy), ir)
    return dual_stack(envoy) if dual else envoy


def dual_stack(envoy: dict) -> dict:
    """Every listener bound on 0.0.0.0:<port> also bound on [::]:<port> (IPv6 only)."""
    out = dict(envoy)
    listeners = []
    for lst in envoy.get("listeners") or []:
        sa = (lst.get("address") or {}).get("socket_address") or {}
        if sa.get("address") == IPV4_ANY and not lst.get("additional_addresses"):
            lst = {**lst, "additional_addresses": [{"address": {"socket_address": {
                "address": IPV6_ANY, "port_value": sa["port_value"]}}}]}
        listeners.append(lst)
    out["listeners"] = listeners
    return out


# ---- ingress --------------------------------------------------------------------------

def redirect_ingress(envoy: dict, port: int = INGRESS_PORT, address: str = "0.0.0.0") -> dict:
    """A sidecar's per-port ingress listeners (as the translator makes them) -> one listener
    on address:port with a filter chain per original destination port. Sidecars without
    ingress are returned unchanged."""
    listeners = envoy.get("listeners") or []
    ingress = [lst for lst in listeners if lst["name"].startswith("lds_ingress_")]
    if not ingress:
        return envoy
    chains, listener_filters = [], [copy.deepcopy(ORIGINAL_DST)]
    for lst in ingress:
        dport = lst["address"]["socket_address"]["port_value"]
        for i, chain in enumerate(lst.get("filter_chains") or []):
            c = copy.deepcopy(chain)
            match = dict(c.get("filter_chain_match") or {})
            transport = match.get("transport_protocol")
            c["filter_chain_match"] = {"destination_port": dport, **match}
            c["name"] = f"ingress_{dport}" + (f"_{transport}" if transport else ("" if i == 0 else f"_{i}"))
            chains.append(c)
        for lf in lst.get("listener_filters") or []:
            if lf["name"] not in {x["name"] for x in listener_filters}:
                listener_filters.append(copy.deepcopy(lf))
    merged = {"name": naming.ingress_listener(address, port),
              "address": {"socket_address": {"address": address, "port_value": port}},
              "listener_filters": listener_filters, "filter_chains": chains}
    out = dict(envoy)
    out["listeners"] = [merged] + [lst for lst in listeners if not lst["name"].startswith("lds_ingress_")]
    return out


# ---- egress ---------------------------------------------------------------------------

def original_dst_cluster(name: str) -> dict:
    """Connects to the address the app dialled (restored by the original_dst listener filter)."""
    return {"name": name, "type": "ORIGINAL_DST", "lb_policy": "CLUSTER_PROVIDED", "connect_timeout": "2s",
            "cleanup_interval": "60s"}


def _tcp_proxy(stat_prefix: str, cluster: str) -> dict:
    return {"name": "envoy.filters.network.tcp_proxy",
            "typed_config": {"@type": TCP_PROXY, "stat_prefix": stat_prefix, "cluster": cluster}}


def _without_forward_proxy(chain_filter: dict) -> dict:
    """The egress HTTP connection manager without the local lab's dynamic forward proxy filter:
    in a pod the allow-all cluster dials the original destination, not the Host header."""
    f = copy.deepcopy(chain_filter)
    cfg = f.get("typed_config") or {}
    cfg["http_filters"] = [h for h in cfg.get("http_filters") or [] if h.get("name") != DFP_HTTP_FILTER]
    return f


def redirect_egress(envoy: dict, ir: dict, port: int = EGRESS_PORT, address: str = "0.0.0.0") -> dict:
    """A sidecar's egress listener (HTTP only, as the translator makes it) -> the listener the
    iptables redirect feeds: HTTP to the connection manager, the rest passed through to the
    original destination (ALLOW_ALL) or refused (DROP_ALL). See the module docstring."""
    eg = ir.get("egress") or {}
    name = naming.egress_listener(address, port)
    listeners = envoy.get("listeners") or []
    old = next((lst for lst in listeners if lst["name"] == name), None)
    if old is None or eg.get("mode") != "hosts":
        return envoy
    allow_all = eg.get("egress_filter") == "ALLOW_ALL"
    mesh = ir["mesh"]
    (hcm,) = old["filter_chains"][0]["filters"]
    chains = [{"name": "egress_http",
               "filter_chain_match": {"transport_protocol": "raw_buffer", "application_protocols": HTTP_PROTOCOLS},
               "filters": [_without_forward_proxy(hcm)]}]
    clusters = [c for c in envoy.get("clusters") or [] if c["name"] != naming.allow_all_cluster(mesh)]
    new = {"name": name, "address": {"socket_address": {"address": address, "port_value": port}},
           "listener_filters": [copy.deepcopy(ORIGINAL_DST), copy.deepcopy(TLS_INSPECTOR), copy.deepcopy(HTTP_INSPECTOR)],
           "listener_filters_timeout": LISTENER_FILTERS_TIMEOUT, "continue_on_listener_filters_timeout": True,
           "filter_chains": chains}
    if allow_all:
        passthrough = naming.allow_all_cluster(mesh)
        clusters.append(original_dst_cluster(passthrough))
        chains.append({"name": "egress_tls_passthrough", "filter_chain_match": {"transport_protocol": "tls"},
                       "filters": [_tcp_proxy("egress_tls_passthrough", passthrough)]})
        new["default_filter_chain"] = {"name": "egress_tcp_passthrough",
                                       "filters": [_tcp_proxy("egress_tcp_passthrough", passthrough)]}
    else:
        aws = naming.amazonaws_cluster(mesh)
        clusters.append(original_dst_cluster(aws))
        chains.append({"name": "egress_amazonaws",
                       "filter_chain_match": {"transport_protocol": "tls", "server_names": list(AWS_API_SNI)},
                       "filters": [_tcp_proxy("egress_amazonaws", aws)]})
    out = dict(envoy)
    out["listeners"] = [new if lst is old else lst for lst in listeners]
    out["clusters"] = sorted(clusters, key=lambda c: c["name"])
    return out
