"""Specific explanations for mistakes people really make (many of them in the guide the kit
walks). The schema walk asks `unknown_field_hint` before falling back to "did you mean …".
"""
from __future__ import annotations

import re
from typing import Optional

_ROUTES = ("httpRoute", "http2Route", "grpcRoute")

# (kind or "*", regex on the full field path) -> hint[, the fields the wrong one stands in for, relative to
# its object: their "is missing" findings are not repeated]
_UNKNOWN_FIELD_HINTS: list[tuple] = [
    ("GatewayRoute", r"^spec(\.(httpRoute|http2Route|grpcRoute)(\.action)?)?\.gatewayRouteTarget$",
     "GatewayRouteTarget is the name of a type in the API reference, not a field. Write "
     "spec.httpRoute.action.target.virtualService.virtualServiceRef: {name: <virtual service>}",
     ("target", "action", *_ROUTES, *(f"{r}.action" for r in _ROUTES))),
    ("GatewayRoute", r"^spec\.(httpRoute|http2Route)\.match\.(http|http2)$",
     "there is no http level inside match: write spec.httpRoute.match.prefix: /products "
     "(the route type is chosen by httpRoute / http2Route / grpcRoute one level up)", ("prefix", "path", "hostname")),
    ("GatewayRoute", r"^spec\.match$",
     "match belongs inside the route type: spec.httpRoute.match.prefix: /products "
     "(with spec.httpRoute.action.target.virtualService.virtualServiceRef beside it)",
     (*_ROUTES, *(f"{r}.match" for r in _ROUTES))),
    ("GatewayRoute", r"^spec\.action$",
     "action belongs inside the route type: spec.httpRoute.action.target.virtualService.virtualServiceRef",
     (*_ROUTES, *(f"{r}.action" for r in _ROUTES))),
    ("GatewayRoute", r"^spec\.(http|http2|grpc)$",
     "the route types are spec.httpRoute, spec.http2Route and spec.grpcRoute", _ROUTES),
    ("GatewayRoute", r"^spec\.(httpRoute|http2Route|grpcRoute)\.action\.weightedTargets$",
     "a gateway route sends to exactly one virtual service (action.target.virtualService). To split traffic, "
     "point it at a virtual service whose provider is a VirtualRouter, and put weightedTargets on that router's route",
     ("target",)),
    ("GatewayRoute", r"^spec\.(gatewayName|virtualGatewayName|gateway)$",
     "v1beta2 attaches a gateway route to the VirtualGateway whose namespaceSelector matches this namespace's labels "
     "and whose gatewayRouteSelector matches this route's labels; remove this field"),
    ("*", r"^spec\.meshName$",
     "meshName is a v1beta1 field. In v1beta2 a resource belongs to the Mesh whose spec.namespaceSelector matches its "
     "namespace's labels: label the namespace (e.g. mesh: my-app-mesh) and remove meshName"),
    ("VirtualService", r"^spec\.virtualRouter$",
     "v1beta1 put the router inside the VirtualService. In v1beta2 the router is its own VirtualRouter resource, "
     "referenced with spec.provider.virtualRouter.virtualRouterRef: {name: <router>}"),
    ("VirtualService", r"^spec\.routes$",
     "routes belong to a VirtualRouter resource (spec.routes there), referenced by spec.provider.virtualRouter"),
    ("VirtualNode", r"^spec\.serviceDiscovery\.cloudMap$",
     "v1beta2 spells it serviceDiscovery.awsCloudMap: {namespaceName, serviceName}", ("awsCloudMap", "dns")),
    ("VirtualNode", r"^spec\.serviceDiscovery\.dns\.hostName$", "v1beta2 spells it dns.hostname (lower-case n)", ("hostname",)),
    ("*", r"\.virtualServiceName$",
     "v1beta2 references a virtual service with virtualServiceRef: {name: <name>, namespace: <optional>}",
     ("virtualServiceRef", "virtualServiceARN")),
    ("*", r"\.virtualNodeName$",
     "v1beta2 references a virtual node with virtualNodeRef: {name: <name>, namespace: <optional>}",
     ("virtualNodeRef", "virtualNodeARN")),
    ("*", r"\.perRetryTimeoutMillis$", "v1beta2 writes perRetryTimeout: {unit: ms, value: <n>}", ("perRetryTimeout",)),
    ("*", r"\.targetRef$", "weighted targets name their node directly: virtualNodeRef: {name: <virtual node>}",
     ("virtualNodeRef", "virtualNodeARN")),
    ("*", r"\.tls\.mutualTls$",
     "mutual TLS on a listener is tls.validation: {trust: {file: {certificateChain: <ca.pem>}}} "
     "(the client must present a certificate signed by that trust)"),
    ("*", r"\.certificate\.acm\.certificateArns$", "the field is certificateARN (one ARN)", ("certificateARN",)),
    ("*", r"\.listeners\[\d+\]\.(port|protocol)$",
     "the port and protocol go under portMapping: {port: 8080, protocol: http}", ("portMapping",)),
]

_REMOVED_ANNOTATIONS = {
    "appmesh.k8s.aws/mesh": "the v1beta2 injector does not read it: a pod's mesh follows from its namespace's labels "
                            "(Mesh namespaceSelector). Remove it",
    "appmesh.k8s.aws/virtualNode": "the v1beta2 injector does not read it: the VirtualNode whose spec.podSelector matches "
                                   "the pod's labels is chosen, in a namespace labeled "
                                   "appmesh.k8s.aws/sidecarInjectorWebhook: enabled. Remove it",
    "appmesh.k8s.aws/virtualGateway": "the v1beta2 injector does not read it: the VirtualGateway whose spec.podSelector "
                                      "matches the pod's labels is chosen (its container must be named envoy). Remove it",
    "appmesh.k8s.aws/appPorts": "there is no such annotation. The inbound ports redirected to Envoy are the VirtualNode's "
                                "listener ports; to override them write appmesh.k8s.aws/ports: \"8080\"",
}


def _known_mistake(kind: str, path: str) -> Optional[tuple]:
    for k, pattern, hint, *stands_for in _UNKNOWN_FIELD_HINTS:
        if (k == "*" or k == kind) and re.search(pattern, path):
            return hint, tuple(stands_for[0]) if stands_for else ()
    return None


def unknown_field_hint(kind: str, path: str) -> Optional[str]:
    known = _known_mistake(kind, path)
    return known[0] if known else None


def unknown_field_stands_in(kind: str, path: str) -> tuple:
    """(hint or None, the fields the unknown one at `path` stands in for, relative to its object)."""
    return _known_mistake(kind, path) or (None, ())


def annotation_hint(name: str) -> Optional[str]:
    return _REMOVED_ANNOTATIONS.get(name)


def api_version_hint(api_version: str, kind: str) -> str:
    if api_version.startswith("appmesh.k8s.aws/") and api_version != "appmesh.k8s.aws/v1beta2":
        return (f"write apiVersion: appmesh.k8s.aws/v1beta2. {api_version} is the old API: v1beta2 makes namespaces "
                "members of a mesh through the Mesh's namespaceSelector (no spec.meshName), and moves routes into "
                "VirtualRouter resources")
    return f"write the apiVersion that serves {kind}"
