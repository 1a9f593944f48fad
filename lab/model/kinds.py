"""The App Mesh v1beta2 kinds and the Kubernetes subset the lab reads, as schema nodes: the
registry of kinds (APPMESH_KINDS, K8S_KINDS, PASSED_OVER) and each kind's status.

Every field of the upstream appmesh.k8s.aws/v1beta2 CRDs is in these specs (a conformance
test checks it). Names mirror the controller's Go types (GatewayRouteSpec, HTTPGatewayRouteMatch,
…) so a learner can match them to the CRD reference; we spell gRPC types `GRPC…` throughout.

The specs are built in the modules beside this one:
  fields.py         ports, durations, selectors, references, a listener's parts
  tls_fields.py     certificate files (CERTS_DIR) and TLS
  route_matches.py  what HTTP and gRPC routes match on
  gateway_specs.py  GatewayRoute, VirtualGateway
  mesh_specs.py     VirtualNode, VirtualService, VirtualRouter (Route), Mesh
  k8s_specs.py      Namespace, Service, Deployment, Pod

Constraints come from three places, each marked where it is not obvious:
  CRD      — the kubebuilder markers (types, enums, ranges, lengths, required)
  webhook  — the controller's validating webhook (one-of rules, prefix rules, rewrites)
  API      — the App Mesh API model (e.g. ports 1–65535 where the CRD allowed 0)
"""
from __future__ import annotations

from .gateway_specs import GATEWAY_ROUTE_SPEC, VIRTUAL_GATEWAY_SPEC
from .gatewayapi import K8S_KINDS as GATEWAY_API_KINDS
from .k8s_specs import DEPLOYMENT_SPEC, DNS_LABEL, DNS_SUBDOMAIN, NAMESPACE_SPEC, POD_SPEC, SERVICE_SPEC
from .mesh_specs import MESH_SPEC, ROUTE, VIRTUAL_NODE_SPEC, VIRTUAL_ROUTER_SPEC, VIRTUAL_SERVICE_SPEC
from .schema import Arr, Int, Obj, Str, StrMap

# the specs and patterns other modules read through this one (K.ROUTE, K.DNS_LABEL, ...)
__all__ = ["API_VERSION", "APPMESH_KINDS", "DEPLOYMENT_SPEC", "DNS_LABEL", "DNS_SUBDOMAIN", "GATEWAY_ROUTE_SPEC",
           "GROUP", "K8S_KINDS", "MESH_SPEC", "NAMESPACE_SPEC", "PASSED_OVER", "POD_SPEC", "ROUTE", "SERVICE_SPEC",
           "VERSION", "VIRTUAL_GATEWAY_SPEC", "VIRTUAL_NODE_SPEC", "VIRTUAL_ROUTER_SPEC", "VIRTUAL_SERVICE_SPEC",
           "appmesh_status"]

GROUP = "appmesh.k8s.aws"
VERSION = "v1beta2"
API_VERSION = f"{GROUP}/{VERSION}"


def status(arn_field: str, extra: dict | None = None) -> Obj:
    props = {
        "conditions": Arr(items=Obj(props={
            "type": Str(), "status": Str(), "reason": Str(), "message": Str(),
            "lastTransitionTime": Str(fmt="date-time"),
        }, required=("status", "type"))),
        "observedGeneration": Int(),
        arn_field: Str(),
    }
    props.update(extra or {})
    return Obj(props=props)


# kind -> (apiVersion, spec schema, namespaced, short names, plural, ARN status field)
APPMESH_KINDS = {
    "Mesh": dict(spec=MESH_SPEC, namespaced=False, plural="meshes", short=["mesh"], arn="meshARN"),
    "VirtualNode": dict(spec=VIRTUAL_NODE_SPEC, namespaced=True, plural="virtualnodes", short=["vn"], arn="virtualNodeARN"),
    "VirtualService": dict(spec=VIRTUAL_SERVICE_SPEC, namespaced=True, plural="virtualservices", short=["vs"],
                           arn="virtualServiceARN"),
    "VirtualRouter": dict(spec=VIRTUAL_ROUTER_SPEC, namespaced=True, plural="virtualrouters", short=["vr"],
                          arn="virtualRouterARN", status_extra={"routeARNs": StrMap()}),
    "VirtualGateway": dict(spec=VIRTUAL_GATEWAY_SPEC, namespaced=True, plural="virtualgateways", short=["vg"],
                           arn="virtualGatewayARN"),
    "GatewayRoute": dict(spec=GATEWAY_ROUTE_SPEC, namespaced=True, plural="gatewayroutes", short=["gr"],
                         arn="gatewayRouteARN"),
}

K8S_KINDS = {
    ("v1", "Namespace"): dict(spec=NAMESPACE_SPEC, namespaced=False, spec_required=False),
    ("v1", "Service"): dict(spec=SERVICE_SPEC, namespaced=True, spec_required=True),
    ("v1", "Secret"): dict(spec=None, namespaced=True, spec_required=False),  # checks: lab/model/secrets.py
    ("v1", "ConfigMap"): dict(spec=None, namespaced=True, spec_required=False),  # checks: lab/model/configmaps.py
    ("apps/v1", "Deployment"): dict(spec=DEPLOYMENT_SPEC, namespaced=True, spec_required=True),
    ("v1", "Pod"): dict(spec=POD_SPEC, namespaced=True, spec_required=True),
    **GATEWAY_API_KINDS,  # Gateway API, served by the local lab (lab/model/gatewayapi.py)
}

# Kinds a manifest folder may hold that the lab passes over (counted, not checked).
PASSED_OVER = {
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    ("v1", "ServiceAccount"), ("kind.x-k8s.io/v1alpha4", "Cluster"), ("eksctl.io/v1alpha5", "ClusterConfig"),
}


def appmesh_status(kind: str) -> Obj:
    info = APPMESH_KINDS[kind]
    return status(info["arn"], info.get("status_extra"))
