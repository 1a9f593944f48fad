"""The Kubernetes kinds the lab reads (Namespace, Service, Deployment, Pod, their containers): the
fields it acts on, with their rules. Every other field is checked by name against its Kubernetes
type (K8sObj, k8s_strict.py), as the API server's strict field validation does: a typo such as
targetPrt is an unknown field, with the nearest real name as the hint.
"""
from __future__ import annotations

import re

from . import limits
from .fields import label_selector, port
from .k8s_strict import K8sObj
from .schema import AnnotationMap, Arr, Finding, Int, LabelMap, Str

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

def _named(key: str, check, what: str):
    """A rule: the string at `key` (when there is one) passes `check` (a limits.* function)."""
    def rule(v: dict) -> list:
        bad = check(v[key], what) if isinstance(v.get(key), str) else None
        return [Finding(key, bad[0], bad[1], "name")] if bad else []
    return rule


CONTAINER = K8sObj(k8s="V1Container", props={
    "name": Str(), "image": Str(min_len=1),
    "command": Arr(items=Str()), "args": Arr(items=Str()),
    "env": Arr(items=K8sObj(k8s="V1EnvVar", props={"name": Str(min_len=1), "value": Str()}, required=("name",))),
    "ports": Arr(items=K8sObj(k8s="V1ContainerPort", props={"containerPort": port(), "name": Str(),
                                              "protocol": Str(enum=("TCP", "UDP", "SCTP"))},
                           required=("containerPort",),
                           rules=(_named("name", limits.iana_svc_name, "container port name"),))),
}, required=("name",), rules=(lambda v: _container_name(v),))
# `image` may be left out of a pod template (Kubernetes allows it; App Mesh's injector sets the
# image of a gateway pod's envoy container): lab.model.semantics checks which containers need one.


def _container_name(v: dict) -> list:
    """A container name is a DNS label (Kubernetes); the local lab also makes file names of it."""
    n = v.get("name")
    if isinstance(n, str) and (len(n) > 63 or not DNS_LABEL.fullmatch(n)):
        fixed = re.sub(r"[^a-z0-9-]+", "-", n.lower()).strip("-")[:63] or "app"
        return [Finding("name", f"container name {n[:60]!r} is not a DNS label (lower-case letters, digits and '-'; "
                                "at most 63 characters)", f"for example {fixed!r}")]
    return []

POD_SPEC = K8sObj(k8s="V1PodSpec", props={
    "containers": Arr(min_items=1, items=CONTAINER, unique_by="name"),
    "initContainers": Arr(items=CONTAINER),
}, required=("containers",))

OBJECT_META = K8sObj(k8s="V1ObjectMeta", props={"labels": LabelMap(), "annotations": AnnotationMap()})

DEPLOYMENT_SPEC = K8sObj(k8s="V1DeploymentSpec", props={
    "replicas": Int(minimum=0, maximum=50),
    "selector": label_selector("Pods this Deployment manages."),
    "template": K8sObj(k8s="V1PodTemplateSpec", props={"metadata": OBJECT_META, "spec": POD_SPEC}, required=("spec",)),
}, required=("selector", "template"), rules=(lambda v: _selector_matches_template(v),))


def _selector_matches_template(v: dict) -> list:
    sel = (v.get("selector") or {}).get("matchLabels") if isinstance(v.get("selector"), dict) else None
    tmpl = v.get("template") if isinstance(v.get("template"), dict) else {}
    labels = ((tmpl.get("metadata") or {}).get("labels") or {}) if isinstance(tmpl.get("metadata"), dict) else {}
    if isinstance(sel, dict) and isinstance(labels, dict):
        missing = {k: s for k, s in sel.items() if labels.get(k) != s}
        if missing:
            return [Finding("selector.matchLabels", f"the selector {missing} does not match the pod template's labels",
                            "make template.metadata.labels carry the same labels as selector.matchLabels")]
    return []


SERVICE_SPEC = K8sObj(k8s="V1ServiceSpec", props={
    "type": Str(enum=("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")),
    "selector": LabelMap(),
    "ports": Arr(items=K8sObj(k8s="V1ServicePort", props={
        # the API server's default node port range (--service-node-port-range)
        "name": Str(), "port": port(), "nodePort": Int(minimum=30000, maximum=32767),
        "protocol": Str(enum=("TCP", "UDP", "SCTP")),
        # targetPort is int-or-string in Kubernetes; checked by a rule below
    }, required=("port",), rules=(lambda v: _target_port(v), _named("name", limits.dns_label, "port name")))),
})


def _target_port(v: dict) -> list:
    tp = v.get("targetPort")
    if isinstance(tp, str):
        bad = limits.iana_svc_name(tp, "targetPort") if not tp.isdigit() else (
            f"targetPort {tp!r} is a number in quotes", f"write targetPort: {tp} without quotes")
        return [Finding("targetPort", bad[0], bad[1], "name")] if bad else []
    if tp is None or (isinstance(tp, int) and not isinstance(tp, bool) and 1 <= tp <= 65535):
        return []
    return [Finding("targetPort", f"targetPort {tp!r} must be a port number 1–65535 or a named container port",
                    "write e.g. targetPort: 8080")]


NAMESPACE_SPEC = K8sObj(k8s="V1NamespaceSpec", props={})
