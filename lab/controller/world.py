"""API objects -> the model's World; EndpointSlices -> endpoints; the cluster's Placement.

Where things are in a cluster (what `lab.translate.Placement` says for cluster mode):

  * a virtual node's sidecar has ONE ingress listener, `lds_ingress_0.0.0.0_15000`, bound on
    0.0.0.0:15000. The proxy-init container redirects every inbound TCP connection to the
    node's listener ports (APPMESH_APP_PORTS) to 15000; the listener's `original_dst` filter
    recovers the port the client dialled, and one filter chain per virtual-node listener port
    (`destination_port: <port>`) applies that listener's configuration. This is App Mesh's own
    layout (APPMESH-FACTS §7.5) and keeps one listener however many ports a node has.
  * the sidecar's egress listener binds 0.0.0.0:15001; proxy-init redirects outbound TCP there.
  * the local app is at 127.0.0.1:<listener port> (same network namespace).
  * a gateway's listeners bind 0.0.0.0:<listener port>; gateway pods have no redirect; the
    gateway's own egress ("self redirect") is an Envoy internal listener (no socket); 15001
    only names it.
  * a virtual node's endpoints are its pods' IPs with the listener port (the port the client
    dials; iptables on the far side hands it to that pod's Envoy).
  * IP families follow the Mesh's `meshServiceDiscovery.ipPreference` (App Mesh's rules, for the
    two values the CRD allows): IPv6_ONLY -> IPv6 endpoints and the local app at [::1];
    IPv4_ONLY or none -> IPv4 endpoints and 127.0.0.1. With a preference, every listener binds
    IPv6 as well as IPv4 (lab/controller/pod_traffic.py: dual_stack).

Endpoints come from the EndpointSlices of the Service named by `serviceDiscovery.dns.hostname`
(`<svc>.<ns>.svc.cluster.local`, `<svc>.<ns>.svc`, `<svc>.<ns>` or `<svc>`, lab.model.discovery),
keeping ready endpoints whose pod the node's podSelector selects. A Service that does not exist
(no EndpointSlice names it; the API server makes one, empty if need be, for every Service with a
selector) resolves to nothing: the node has no endpoints and its callers get 503, as the DNS
lookup would fail on a pod. A node without DNS discovery, or whose hostname is not a cluster
name, gets the ready pods its podSelector selects.
"""
from __future__ import annotations

import copy

from ..model import World, selector_matches
from ..model.discovery import service_of
from ..model.loader import Document
from ..model.validate import check_document
from ..translate import naming
from ..translate.ir import Placement
from .kube import APPMESH_KINDS, CLUSTER_SCOPED, GROUP, VERSION

from .pod_traffic import EGRESS_PORT, INGRESS_PORT  # noqa: F401 (the ports proxy-init redirects to)


def ref(kind: str, obj: dict) -> str:
    meta = obj.get("metadata") or {}
    return f"{kind}/{meta.get('namespace')}/{meta.get('name')}" if kind not in CLUSTER_SCOPED \
        else f"{kind}/{meta.get('name')}"


def document_of(kind: str, obj: dict) -> dict:
    """The part of an API object the model reads: what a user wrote, without server fields."""
    meta = obj.get("metadata") or {}
    keep = {"name": meta.get("name")}
    if kind not in CLUSTER_SCOPED:
        keep["namespace"] = meta.get("namespace")
    for k in ("labels", "annotations"):
        if meta.get(k):
            keep[k] = dict(meta[k])
    if kind == "Namespace":
        return {"apiVersion": "v1", "kind": "Namespace", "metadata": keep}
    doc = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": keep}
    spec = copy.deepcopy(obj.get("spec") or {})
    # read-only references the mutating webhook fills in on create (lab/controller/admission.py,
    # as the AWS controller's did); the model refuses them in a manifest, and the controller
    # decides membership from the selectors every time, as the local lab does
    spec.pop("meshRef", None)
    spec.pop("virtualGatewayRef", None)
    doc["spec"] = spec
    return doc


def resource_of(kind: str, obj: dict):
    """(model Resource or None, problems). An object the model rejects has no Resource."""
    doc = Document(document_of(kind, obj), ref(kind, obj), 0, 0)
    result = check_document(doc)
    r = result.resource
    if r is not None:
        r.doc = None
    return r, [p for p in result.problems if p.severity == "error"]


def build_world(objects: dict[str, list[dict]], exclude: set | None = None):
    """(World, {key: problems} for objects the model rejects). `exclude`: keys left out (objects
    being deleted and no longer held by a finalizer)."""
    resources, invalid = [], {}
    exclude = exclude or set()
    for kind in ("Namespace",) + APPMESH_KINDS:
        for obj in objects.get(kind, []):
            r, problems = resource_of(kind, obj)
            if r is None:
                invalid[(kind, r_ns(kind, obj), obj["metadata"]["name"])] = problems
                continue
            if r.key in exclude:
                continue
            resources.append(r)
    return World(resources), invalid


def r_ns(kind: str, obj: dict) -> str:
    return "" if kind in CLUSTER_SCOPED else (obj.get("metadata") or {}).get("namespace", "")


# ---- endpoints --------------------------------------------------------------------------

def _pod_ready(pod: dict) -> bool:
    st = pod.get("status") or {}
    if st.get("phase") != "Running" or not st.get("podIP") or (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or [])


def ip_preference(mesh) -> str | None:
    """The mesh's `spec.meshServiceDiscovery.ipPreference` (IPv4_ONLY, IPv6_ONLY) or None."""
    if mesh is None:
        return None
    sd = mesh.spec.get("meshServiceDiscovery")
    return sd.get("ipPreference") if isinstance(sd, dict) else None


def _family(address: str) -> str:
    return "IPv6" if ":" in str(address) else "IPv4"


def node_ips(vn, slices: list[dict], pods: list[dict], world: World, family: str = "IPv4") -> list[str]:
    """The ready pod IPs of a virtual node, of one address family (see the module docstring for
    the rule): IPv6 when its mesh's ipPreference is IPv6_ONLY, IPv4 otherwise."""
    selector = vn.spec.get("podSelector")
    by_name = {(p["metadata"].get("namespace"), p["metadata"]["name"]): p for p in pods}
    svc = service_of(world, vn)
    if svc is not None:
        mine = [s for s in slices if (s.get("metadata") or {}).get("namespace") == svc[1]
                and ((s.get("metadata") or {}).get("labels") or {}).get("kubernetes.io/service-name") == svc[0]]
        if mine:
            ips = set()
            for s in mine:
                if s.get("addressType", "IPv4") != family:
                    continue
                for ep in s.get("endpoints") or []:
                    cond = ep.get("conditions") or {}
                    if cond.get("ready") is False or cond.get("terminating") is True:
                        continue
                    target = ep.get("targetRef") or {}
                    if target.get("kind") == "Pod":
                        pod = by_name.get((target.get("namespace") or svc[1], target.get("name")))
                        if pod is None or (pod["metadata"].get("namespace") != vn.namespace) or not selector_matches(
                                selector, (pod.get("metadata") or {}).get("labels") or {}):
                            continue
                    ips.update(ep.get("addresses") or [])
            return sorted(ips)
        return []  # the hostname names no Service: it resolves to nothing
    return sorted(ip for p in pods
                  if (p.get("metadata") or {}).get("namespace") == vn.namespace and _pod_ready(p)
                  and selector_matches(selector, (p.get("metadata") or {}).get("labels") or {})
                  for ip in _pod_ips(p) if _family(ip) == family)


def _pod_ips(pod: dict) -> list[str]:
    st = pod.get("status") or {}
    return [x.get("ip") for x in st.get("podIPs") or [] if x.get("ip")] or [st["podIP"]]


def _ports(r) -> list[int]:
    return [(lst.get("portMapping") or {}).get("port") for lst in r.spec.get("listeners") or []
            if isinstance(lst, dict)]


def placement(world: World, slices: list[dict], pods: list[dict]) -> Placement:
    pl = Placement(bind_address="0.0.0.0", default_egress_port=EGRESS_PORT)
    for vn in world.by_kind["VirtualNode"]:
        mesh = world.mesh_of(vn)
        if mesh is None:
            continue
        nid = naming.node_id(mesh.aws_name(), "virtualNode", vn.aws_name())
        v6 = ip_preference(mesh) == "IPv6_ONLY"
        ips = node_ips(vn, slices, pods, world, "IPv6" if v6 else "IPv4")
        for port in _ports(vn):
            pl.listeners.setdefault(nid, {})[port] = port
            pl.apps.setdefault(nid, {})[port] = ["::1" if v6 else "127.0.0.1", port]
            pl.endpoints.setdefault(nid, {})[port] = [[ip, port] for ip in ips]
        pl.egress[nid] = EGRESS_PORT
    for vg in world.by_kind["VirtualGateway"]:
        mesh = world.mesh_of(vg)
        if mesh is None:
            continue
        nid = naming.node_id(mesh.aws_name(), "virtualGateway", vg.aws_name())
        for port in _ports(vg):
            pl.listeners.setdefault(nid, {})[port] = port
        pl.egress[nid] = EGRESS_PORT
    return pl
