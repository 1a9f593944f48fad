"""Resource kinds as the verbs name them (kubectl's words and short names)."""
from __future__ import annotations

import difflib

from ..runtime.client import LabError


KINDS = {
    "mesh": "Mesh", "meshes": "Mesh",
    "virtualnode": "VirtualNode", "virtualnodes": "VirtualNode", "vn": "VirtualNode",
    "virtualservice": "VirtualService", "virtualservices": "VirtualService", "vs": "VirtualService",
    "virtualrouter": "VirtualRouter", "virtualrouters": "VirtualRouter", "vr": "VirtualRouter",
    "virtualgateway": "VirtualGateway", "virtualgateways": "VirtualGateway", "vg": "VirtualGateway",
    "gatewayroute": "GatewayRoute", "gatewayroutes": "GatewayRoute", "gr": "GatewayRoute",
    "deployment": "Deployment", "deployments": "Deployment", "deploy": "Deployment",
    "service": "Service", "services": "Service", "svc": "Service",
    "namespace": "Namespace", "namespaces": "Namespace", "ns": "Namespace",
    "pod": "Pod", "pods": "Pod", "po": "Pod",
    "secret": "Secret", "secrets": "Secret",
    "configmap": "ConfigMap", "configmaps": "ConfigMap", "cm": "ConfigMap",
    # Gateway API (kubectl's names and short names for its CRDs)
    "gatewayclass": "GatewayClass", "gatewayclasses": "GatewayClass", "gc": "GatewayClass",
    "gateway": "Gateway", "gateways": "Gateway", "gtw": "Gateway",
    "httproute": "HTTPRoute", "httproutes": "HTTPRoute",
    "grpcroute": "GRPCRoute", "grpcroutes": "GRPCRoute",
    "referencegrant": "ReferenceGrant", "referencegrants": "ReferenceGrant", "refgrant": "ReferenceGrant",
}

GATEWAY_API = ("GatewayClass", "Gateway", "HTTPRoute", "GRPCRoute", "ReferenceGrant")


APPMESH = ("Mesh", "VirtualNode", "VirtualService", "VirtualRouter", "VirtualGateway", "GatewayRoute")


CLUSTER_SCOPED = ("Mesh", "Namespace", "GatewayClass")


def kind_of(word: str) -> list[str]:
    words = word.lower().split(",")
    kinds = []
    for w in words:
        if w == "all":
            kinds += list(APPMESH) + ["Deployment", "Service", "Pod"]
        elif w in KINDS:
            kinds.append(KINDS[w])
        else:
            near = difflib.get_close_matches(w, list(KINDS) + ["all"], n=1, cutoff=0.75)
            raise LabError(f"unknown resource type {w!r}" + (f"; did you mean {near[0]!r}?" if near else "")
                           + "\nknown: mesh, vn, vs, vr, vg, gr, deploy, svc, ns, pod, secret, cm, all, "
                           "gatewayclasses, gateways, httproutes, grpcroutes, referencegrants")
    return kinds
