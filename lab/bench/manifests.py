"""Builders of App Mesh manifests as plain dicts (and YAML text), for benchmarks and tests.

Every builder returns one Kubernetes-shaped document. `text(*docs)` joins them into one
multi-document YAML string, the form `validate_texts` and the local lab's apply take.

The conventions are the kit's own (manifests/walkthrough): one namespace labelled for its
mesh, its gateway and sidecar injection; a virtual node selects the pods labelled
`app: <name>`; a virtual service's awsName is `<name>.<namespace>.svc.cluster.local`.
"""
from __future__ import annotations

import yaml

from ..apps import SAMPLE_IMAGE

APPMESH = "appmesh.k8s.aws/v1beta2"
INJECT = "appmesh.k8s.aws/sidecarInjectorWebhook"


def text(*docs) -> str:
    flat: list = []

    def add(d):
        if isinstance(d, list):
            for x in d:
                add(x)
        else:
            flat.append(d)
    add(list(docs))
    return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in flat)


def vs_host(name: str, ns: str) -> str:
    return f"{name}.{ns}.svc.cluster.local"


def namespace(ns: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "labels": {"mesh": ns, "gateway": ns, INJECT: "enabled"}}}


def mesh(ns: str, egress: str = "DROP_ALL") -> dict:
    return {"apiVersion": APPMESH, "kind": "Mesh", "metadata": {"name": ns},
            "spec": {"namespaceSelector": {"matchLabels": {"mesh": ns}}, "egressFilter": {"type": egress}}}


def virtual_node(name: str, ns: str, port: int = 8080, tls: dict | None = None, backends=()) -> dict:
    listener: dict = {"portMapping": {"port": port, "protocol": "http"}}
    if tls:
        listener["tls"] = tls
    spec: dict = {"podSelector": {"matchLabels": {"app": name}}, "listeners": [listener],
                  "serviceDiscovery": {"dns": {"hostname": vs_host(name, ns)}}}
    if backends:
        spec["backends"] = [{"virtualService": {"virtualServiceRef": {"name": b}}} for b in backends]
    return {"apiVersion": APPMESH, "kind": "VirtualNode", "metadata": {"name": name, "namespace": ns}, "spec": spec}


def app(name: str, ns: str, port: int = 8080, replicas: int = 1, **env) -> list:
    """A Deployment of the kit's sample app (lab/apps/sample.py) with pods labelled app=<name>, and
    the Service <name> the virtual node's DNS name (vs_host) names: [Deployment, Service].
    env: SERVICE_NAME, VERSION, LATENCY_MS, ERROR_RATE, ERROR_CODE, ..."""
    return [deployment(name, ns, port, replicas, **env), service(name, ns, port)]


def service(name: str, ns: str, port: int = 8080) -> dict:
    """The Service in front of the pods labelled app=<name>: what the DNS name <name>.<ns>.svc.cluster.local
    resolves to (without it, a virtual node with that hostname has no endpoints)."""
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": {"app": name}, "ports": [{"port": port, "targetPort": port}]}}


def deployment(name: str, ns: str, port: int = 8080, replicas: int = 1, **env) -> dict:
    env = {"SERVICE_NAME": name, "VERSION": "v1", **{k: str(v) for k, v in env.items()}}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{
                                      "name": "app", "image": SAMPLE_IMAGE, "ports": [{"containerPort": port}],
                                      "env": [{"name": k, "value": v} for k, v in env.items()]}]}}}}


def virtual_service(name: str, ns: str, node: str | None = None, router: str | None = None) -> dict:
    spec: dict = {"awsName": vs_host(name, ns)}
    if node:
        spec["provider"] = {"virtualNode": {"virtualNodeRef": {"name": node}}}
    elif router:
        spec["provider"] = {"virtualRouter": {"virtualRouterRef": {"name": router}}}
    return {"apiVersion": APPMESH, "kind": "VirtualService", "metadata": {"name": name, "namespace": ns},
            "spec": spec}


def router_route(name: str, targets: dict, match: dict | None = None, priority: int | None = None,
                 retry: dict | None = None, timeout: dict | None = None) -> dict:
    """targets: virtual node name -> weight."""
    body: dict = {"match": match or {"prefix": "/"},
                  "action": {"weightedTargets": [{"virtualNodeRef": {"name": n}, "weight": w}
                                                 for n, w in targets.items()]}}
    if retry:
        body["retryPolicy"] = retry
    if timeout:
        body["timeout"] = timeout
    out: dict = {"name": name, "httpRoute": body}
    if priority is not None:
        out["priority"] = priority
    return out


def virtual_router(name: str, ns: str, routes: list, port: int = 8080) -> dict:
    return {"apiVersion": APPMESH, "kind": "VirtualRouter", "metadata": {"name": name, "namespace": ns},
            "spec": {"listeners": [{"portMapping": {"port": port, "protocol": "http"}}], "routes": routes}}


def gateway(name: str, ns: str, listeners=(8088,), client_policy: dict | None = None) -> list:
    """A VirtualGateway and the Deployment whose `envoy` container becomes it.
    listeners: ports, or dicts (full listener specs)."""
    specs = [lst if isinstance(lst, dict) else {"portMapping": {"port": lst, "protocol": "http"}} for lst in listeners]
    spec: dict = {"namespaceSelector": {"matchLabels": {"gateway": ns}},
                  "podSelector": {"matchLabels": {"app": name}}, "listeners": specs}
    if client_policy:
        spec["backendDefaults"] = {"clientPolicy": client_policy}
    vg = {"apiVersion": APPMESH, "kind": "VirtualGateway", "metadata": {"name": name, "namespace": ns}, "spec": spec}
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
              "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                       "template": {"metadata": {"labels": {"app": name}},
                                    "spec": {"containers": [{
                                        "name": "envoy", "image": "envoyproxy/envoy:v1.40.0",
                                        "ports": [{"containerPort": s["portMapping"]["port"]} for s in specs]}]}}}}
    return [vg, deploy]


def gateway_route(name: str, ns: str, match: dict, service: str, *, rewrite: dict | None = None,
                  priority: int | None = None, target_port: int | None = None, kind: str = "httpRoute") -> dict:
    target: dict = {"virtualService": {"virtualServiceRef": {"name": service}}}
    if target_port is not None:
        target["port"] = target_port
    action: dict = {"target": target}
    if rewrite:
        action["rewrite"] = rewrite
    spec: dict = {kind: {"match": match, "action": action}}
    if priority is not None:
        spec["priority"] = priority
    return {"apiVersion": APPMESH, "kind": "GatewayRoute", "metadata": {"name": name, "namespace": ns}, "spec": spec}


def base(ns: str, gateway_listeners=(8088,), client_policy: dict | None = None) -> list:
    """Namespace, mesh and gateway: what every lab scenario starts with."""
    return [namespace(ns), mesh(ns), *gateway("gateway", ns, gateway_listeners, client_policy)]


def scale(n: int, ns: str = "bench", live: int = 0) -> list:
    """n gateway routes (prefix /r<i>) to n virtual services, each provided by its own virtual node.
    The first `live` virtual nodes get a Deployment of the sample app (real processes in a lab);
    the others have no pods (their clusters have no endpoints), which keeps a lab on a small
    machine while the translation still covers n + 1 proxies."""
    docs = base(ns)
    for i in range(n):
        docs += [virtual_node(f"vn{i}", ns), virtual_service(f"vs{i}", ns, node=f"vn{i}"),
                 gateway_route(f"r{i}", ns, {"prefix": f"/r{i}/"}, f"vs{i}")]
        if i < live:
            docs += app(f"vn{i}", ns)
    return docs
