"""Which pods a virtual node's DNS service discovery reaches (pure; both targets use it).

A virtual node with `serviceDiscovery.dns.hostname` is reached at the addresses that name
resolves to. In Kubernetes a name of the cluster's own form (`<svc>.<ns>.svc.cluster.local`,
`<svc>.<ns>.svc`, `<svc>.<ns>`, or `<svc>` in the node's namespace) resolves to the ready pods
the Service `<svc>` selects; a Service that does not exist resolves to nothing, and callers get
503 (no healthy upstream: the guide's most common 503). Any other name (an external host) is
outside the cluster; the kit then takes the node's podSelector, as before.
"""
from __future__ import annotations

from .resources import Resource


def dns_hostname(vn: Resource) -> str | None:
    h = ((vn.spec.get("serviceDiscovery") or {}).get("dns") or {}).get("hostname")
    return h if isinstance(h, str) and h else None


def cluster_service(hostname: str, default_ns: str) -> tuple[str, str] | None:
    """(Service name, namespace) when `hostname` is a cluster Service name; None otherwise."""
    parts = hostname.rstrip(".").split(".")
    if not parts or not parts[0]:
        return None
    if len(parts) == 1:
        return parts[0], default_ns
    if len(parts) == 2 or (len(parts) >= 3 and parts[2] == "svc"):
        return parts[0], parts[1]
    return None  # not a cluster Service name (an external host)


def service_of(world, vn: Resource) -> tuple[str, str] | None:
    """(Service, namespace) `vn`'s DNS hostname names in the cluster; None when it has none or
    the name is not a cluster name. `<a>.<b>` is `<service>.<namespace>` only when namespace
    <b> exists (a pod's resolver tries it as such first, then as an outside name, like x.local)."""
    hostname = dns_hostname(vn)
    svc = cluster_service(hostname, vn.namespace) if hostname else None
    if svc is not None and len(hostname.rstrip(".").split(".")) == 2 and world.namespace_labels(svc[1]) is None:
        return None
    return svc


def reaches(world, vn: Resource, pod_namespace: str, pod_labels: dict) -> bool:
    """Whether a pod of `vn` (its podSelector already matched) is one of the addresses its DNS
    hostname resolves to: the hostname's Service exists and selects the pod."""
    svc = service_of(world, vn)
    if svc is None:
        return True
    service = world.get("Service", svc[1], svc[0])
    if service is None or svc[1] != pod_namespace:
        return False
    selector = service.spec.get("selector")
    return isinstance(selector, dict) and bool(selector) and all(
        (pod_labels or {}).get(k) == v for k, v in selector.items())
