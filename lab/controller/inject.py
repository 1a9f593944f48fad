"""Sidecar injection: which pods get an Envoy, and the JSONPatch that gives it to them.

The decision follows the AWS controller's injector (APPMESH-FACTS §9.4–9.7):

  * the mode comes from the namespace label `appmesh.k8s.aws/sidecarInjectorWebhook`,
    overridden by the pod annotation of the same name: `enabled`, `disabled`, or anything
    else = unspecified. `disabled` -> nothing happens.
  * VirtualNodes and VirtualGateways of the pod's namespace whose podSelector matches the
    pod's labels are its candidates (absent selector: none; empty: all).
  * a VirtualNode and a VirtualGateway, several VirtualNodes or several VirtualGateways ->
    the pod is rejected. Nothing, with mode `enabled` -> rejected; unspecified -> left alone.
  * VirtualNode pod: an `envoy` container (unless one exists) and a `proxyinit` init container
    (unless one exists) that redirects traffic with iptables. The pod annotation
    `appmesh.k8s.aws/secretMounts: "<secret>:<directory>,..."` mounts those Secrets read-only
    into the injected `envoy` container (a volume named like the Secret, as upstream does);
    a malformed value rejects the pod with the format to write. proxy-init redirects IPv6 as
    well as IPv4 (APPMESH_ENABLE_IPV6=1, upstream's default) unless the pod is annotated
    `appmesh.k8s.aws/ipv6: disabled` (any other value rejects the pod).
  * VirtualGateway pod: its own container named `envoy` becomes the gateway (image replaced
    unless `appmesh.k8s.aws/virtualGatewaySkipImageOverride: enabled`); without such a
    container nothing happens. No init container: the gateway listens itself.

How the stock Envoy image gets its configuration: the bootstrap (node id
`mesh/<mesh>/virtualNode/<vn>` or `.../virtualGateway/<vg>`, ADS to the controller's xDS
Service) is put in the env var APPMESH_LAB_BOOTSTRAP as JSON, and the container runs
`envoy --config-yaml $(APPMESH_LAB_BOOTSTRAP)`; Kubernetes expands the variable. No volume, no
file, no shell; `kubectl get pod -o yaml` shows it. The bootstrap also has a listener on
0.0.0.0:15021 that answers `/ready` from Envoy's admin (which binds 127.0.0.1:9901 only), so
the readiness probe is an httpGet and the image needs no curl.
"""
from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field

from ..model import World, selector_matches
from ..model.semantics import INJECT_LABEL
from ..translate import naming
from ..xds.bootstrap import ENVOY_RUNTIME, make_bootstrap
from .pod_traffic import dual_stack
from .world import ip_preference

ANN_PORTS = "appmesh.k8s.aws/ports"
ANN_EGRESS_PORTS = "appmesh.k8s.aws/egressIgnoredPorts"
ANN_EGRESS_IPS = "appmesh.k8s.aws/egressIgnoredIPs"
ANN_SKIP_IMAGE = "appmesh.k8s.aws/virtualGatewaySkipImageOverride"
ANN_SECRET_MOUNTS = "appmesh.k8s.aws/secretMounts"
ANN_IPV6 = "appmesh.k8s.aws/ipv6"  # "disabled": proxy-init leaves IPv6 alone (the only value upstream takes)
ENVOY_UID = 1337
ADMIN_PORT = 9901
READY_PORT = 15021
BOOTSTRAP_ENV = "APPMESH_LAB_BOOTSTRAP"


@dataclass
class InjectConfig:
    envoy_image: str = "envoyproxy/envoy:v1.40.0"
    proxy_init_image: str = "appmesh-lab/proxy-init:0.1.0"
    xds_host: str = "appmesh-lab-controller-xds.appmesh-system.svc.cluster.local"
    xds_port: int = 15010
    log_level: str = "info"
    region: str = "us-west-2"
    egress_ignored_ips: str = "169.254.169.254"
    egress_ignored_ports: str = "22"
    cpu_request: str = "10m"
    memory_request: str = "32Mi"
    pre_stop_sleep_s: int = 20
    enable_ipv6: bool = True  # upstream's default: APPMESH_ENABLE_IPV6=1 unless the pod opts out
    ip_family: str = "IPv4"  # the cluster's; the Mesh webhook sets ipPreference from it (admission.py)


@dataclass
class Decision:
    allowed: bool
    message: str = ""
    patch: list = field(default_factory=list)
    proxy: str | None = None  # the node id the pod's Envoy uses


class BadAnnotation(ValueError):
    """A pod annotation the injector cannot use; the message says what to write instead."""


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def secret_mounts(annotations: dict) -> list[tuple[str, str]]:
    """[(secret, mount path)] from `appmesh.k8s.aws/secretMounts` ("name:/path,name2:/path2")."""
    value = (annotations or {}).get(ANN_SECRET_MOUNTS)
    if value is None:
        return []
    out: list[tuple[str, str]] = []
    fmt = f'write {ANN_SECRET_MOUNTS}: "<secret name>:<absolute directory>,...", e.g. "my-tls:/certs/my"'
    for segment in str(value).split(","):
        if not segment.strip():
            continue
        pair = segment.split(":")
        if len(pair) != 2:
            raise BadAnnotation(f"malformed annotation {ANN_SECRET_MOUNTS}: {segment.strip()!r} is not "
                                f"<secret name>:<mount path>; {fmt}")
        name, path = pair[0].strip(), pair[1].strip()
        if not _DNS_LABEL.match(name) or len(name) > 63:
            raise BadAnnotation(f"malformed annotation {ANN_SECRET_MOUNTS}: {name!r} cannot name a Secret volume "
                                "(lowercase letters, digits and '-', at most 63 characters); " + fmt)
        if not path.startswith("/"):
            raise BadAnnotation(f"malformed annotation {ANN_SECRET_MOUNTS}: the mount path of {name} must be "
                                f"absolute, not {path!r}; " + fmt)
        if name in {n for n, _ in out} or path in {p for _, p in out}:
            raise BadAnnotation(f"malformed annotation {ANN_SECRET_MOUNTS}: {name}:{path} repeats a Secret or a "
                                "mount path; name each Secret and each directory once")
        out.append((name, path))
    if not out:
        raise BadAnnotation(f"annotation {ANN_SECRET_MOUNTS} is empty; {fmt}, or remove it")
    return out


def ipv6_enabled(annotations: dict, cfg: InjectConfig) -> bool:
    """Whether proxy-init redirects IPv6 too: yes (the controller's default, as upstream's),
    unless the pod is annotated `appmesh.k8s.aws/ipv6: disabled`."""
    value = (annotations or {}).get(ANN_IPV6)
    if value is None:
        return cfg.enable_ipv6
    if str(value) != "disabled":
        raise BadAnnotation(f"annotation {ANN_IPV6}: {value!r} is not a value it takes; write "
                            f'{ANN_IPV6}: "disabled" to leave the pod\'s IPv6 traffic out of the mesh, or remove it')
    return False


def mode_of(ns_labels: dict, annotations: dict) -> str:
    value = str((annotations or {}).get(INJECT_LABEL) or (ns_labels or {}).get(INJECT_LABEL) or "").lower()
    return value if value in ("enabled", "disabled") else "unspecified"


def bootstrap(node_id: str, cluster: str, cfg: InjectConfig, dual: bool = False) -> dict:
    """The Envoy bootstrap of an injected proxy: make_bootstrap + a readiness listener (on IPv6
    too with `dual`: the mesh sets an IP preference, so the kubelet may probe the pod's IPv6)."""
    boot = make_bootstrap(node_id, cluster=cluster, xds_host=cfg.xds_host, xds_port=cfg.xds_port,
                          admin_port=ADMIN_PORT, initial_fetch_timeout_s=10.0, runtime=ENVOY_RUNTIME)
    hcm = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
    boot["static_resources"]["clusters"].append({
        "name": "appmesh_lab_admin", "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": "appmesh_lab_admin", "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": ADMIN_PORT}}}}]}]}})
    readiness = {
        "name": f"lds_readiness_0.0.0.0_{READY_PORT}",
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": READY_PORT}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
            "@type": hcm, "stat_prefix": "readiness", "codec_type": "AUTO",
            "route_config": {"name": "readiness", "virtual_hosts": [{"name": "readiness", "domains": ["*"], "routes": [
                {"match": {"path": "/ready"}, "route": {"cluster": "appmesh_lab_admin"}},
                {"match": {"prefix": "/"}, "direct_response": {"status": 404}}]}]},
            "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}]}
    listeners = {"listeners": [readiness]}
    boot["static_resources"]["listeners"] = (dual_stack(listeners) if dual else listeners)["listeners"]
    return boot


def _env(node_id: str, boot: dict, cfg: InjectConfig) -> list[dict]:
    return [
        {"name": "APPMESH_RESOURCE_ARN", "value": node_id},
        {"name": "APPMESH_VIRTUAL_NODE_NAME", "value": node_id},
        {"name": "AWS_REGION", "value": cfg.region},
        {"name": "ENVOY_LOG_LEVEL", "value": cfg.log_level},
        {"name": "ENVOY_ADMIN_ACCESS_PORT", "value": str(ADMIN_PORT)},
        {"name": BOOTSTRAP_ENV, "value": json.dumps(boot, separators=(",", ":"), sort_keys=True)},
    ]


def _merge_env(existing: list, ours: list) -> list:
    names = {e["name"] for e in ours}
    return [e for e in existing or [] if e.get("name") not in names] + ours


def _command() -> tuple[list, list]:
    return ["envoy"], ["--config-yaml", f"$({BOOTSTRAP_ENV})", "--log-level", "$(ENVOY_LOG_LEVEL)",
                       "--drain-time-s", "20"]


def _readiness() -> dict:
    return {"httpGet": {"path": "/ready", "port": READY_PORT}, "initialDelaySeconds": 1, "periodSeconds": 5,
            "timeoutSeconds": 1, "failureThreshold": 3}


def envoy_container(node_id: str, cluster: str, cfg: InjectConfig, dual: bool = False) -> dict:
    command, args = _command()
    return {
        "name": "envoy", "image": cfg.envoy_image, "imagePullPolicy": "IfNotPresent",
        "command": command, "args": args,
        "env": _env(node_id, bootstrap(node_id, cluster, cfg, dual), cfg),
        "ports": [{"name": "stats", "containerPort": ADMIN_PORT, "protocol": "TCP"}],
        "securityContext": {"runAsUser": ENVOY_UID, "runAsGroup": ENVOY_UID, "runAsNonRoot": True,
                            "allowPrivilegeEscalation": False},
        "readinessProbe": _readiness(),
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(cfg.pre_stop_sleep_s)]}}},
        "resources": {"requests": {"cpu": cfg.cpu_request, "memory": cfg.memory_request}},
    }


def proxy_init_container(app_ports: str, ignored_ips: str, ignored_ports: str, cfg: InjectConfig,
                         ipv6: bool | None = None) -> dict:
    return {
        "name": "proxyinit", "image": cfg.proxy_init_image, "imagePullPolicy": "IfNotPresent",
        "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}, "runAsUser": 0,
                            "runAsNonRoot": False},
        "env": [
            {"name": "APPMESH_START_ENABLED", "value": "1"},
            {"name": "APPMESH_IGNORE_UID", "value": str(ENVOY_UID)},
            {"name": "APPMESH_ENVOY_INGRESS_PORT", "value": "15000"},
            {"name": "APPMESH_ENVOY_EGRESS_PORT", "value": "15001"},
            {"name": "APPMESH_APP_PORTS", "value": app_ports},
            {"name": "APPMESH_EGRESS_IGNORED_IP", "value": ignored_ips},
            {"name": "APPMESH_EGRESS_IGNORED_PORTS", "value": ignored_ports},
            {"name": "APPMESH_ENABLE_IPV6", "value": "1" if (cfg.enable_ipv6 if ipv6 is None else ipv6) else "0"},
        ],
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
    }


def decide(pod: dict, namespace: str, world: World, cfg: InjectConfig) -> Decision:
    """The injector's answer for a Pod CREATE in `namespace` (the pod may not know its own)."""
    meta = pod.get("metadata") or {}
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    ns_labels = world.namespace_labels(namespace)
    if ns_labels is None:
        # the API server only calls the webhook for labelled namespaces; the cache lags behind
        return Decision(False, f"the controller has not seen namespace {namespace} yet; the pod's owner retries")
    mode = mode_of(ns_labels, annotations)
    if INJECT_LABEL not in ns_labels:
        return Decision(True, "namespace not labelled for injection")
    if mode == "disabled":
        return Decision(True, "injection disabled")
    vns = [v for v in world.by_kind["VirtualNode"] if v.namespace == namespace
           and selector_matches(v.spec.get("podSelector"), labels)]
    vgs = [g for g in world.by_kind["VirtualGateway"] if g.namespace == namespace
           and selector_matches(g.spec.get("podSelector"), labels)]
    if vns and vgs:
        return Decision(False, f"pod matches both VirtualNode {vns[0].name} and VirtualGateway {vgs[0].name}; "
                        "change the labels or the podSelectors so only one matches")
    if len(vns) > 1:
        return Decision(False, "found multiple matching VirtualNodes for pod: "
                        + ", ".join(sorted(v.name for v in vns)) + "; make their podSelectors disjoint")
    if len(vgs) > 1:
        return Decision(False, "found multiple matching VirtualGateways for pod: "
                        + ", ".join(sorted(g.name for g in vgs)) + "; make their podSelectors disjoint")
    if not vns and not vgs:
        if mode == "enabled":
            return Decision(False, "sidecarInject enabled but no matching VirtualNode or VirtualGateway found "
                            f"for pod labels {labels}; add a VirtualNode whose podSelector matches them, or "
                            f"annotate the pod {INJECT_LABEL}: disabled")
        return Decision(True, "no VirtualNode or VirtualGateway selects the pod")
    owner = (vns or vgs)[0]
    mesh = world.mesh_of(owner)
    if mesh is None:
        return Decision(False, f"{owner.kind} {owner.name} belongs to no mesh: no Mesh's namespaceSelector "
                        f"selects namespace {namespace}; create the Mesh (and label the namespace) first")
    kind = "virtualNode" if vns else "virtualGateway"
    nid = naming.node_id(mesh.aws_name(), kind, owner.aws_name())
    try:
        dual = ip_preference(mesh) is not None  # App Mesh: with an IP preference, Envoy binds IPv6 too
        patch = virtual_node_patch(pod, owner, nid, cfg, dual) if vns else \
            virtual_gateway_patch(pod, nid, owner, cfg, dual)
    except BadAnnotation as exc:
        return Decision(False, str(exc))
    if vgs and not patch:
        return Decision(True, f"VirtualGateway {owner.name} selects the pod, but no container is named envoy: "
                        "nothing injected", [], nid)
    return Decision(True, f"injected {nid}", patch, nid)


def _ports_from(value: str) -> str:
    return ",".join(p.strip() for p in str(value).split(",") if p.strip())


def virtual_node_patch(pod: dict, vn, nid: str, cfg: InjectConfig, dual: bool = False) -> list:
    spec = pod.get("spec") or {}
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    patch = []
    containers = spec.get("containers") or []
    mounts = secret_mounts(annotations)
    if not any(c.get("name") == "envoy" for c in containers):
        envoy = envoy_container(nid, vn.aws_name(), cfg, dual)
        if mounts:
            taken = {v.get("name") for v in spec.get("volumes") or []}
            clash = sorted(taken & {n for n, _ in mounts})
            if clash:
                raise BadAnnotation(f"annotation {ANN_SECRET_MOUNTS}: the pod already has a volume named "
                                    f"{', '.join(clash)}; rename that volume (the injector names each Secret's "
                                    "volume after the Secret)")
            envoy["volumeMounts"] = [{"name": n, "mountPath": p, "readOnly": True} for n, p in mounts]
            volumes = [{"name": n, "secret": {"secretName": n}} for n, _ in mounts]
            if spec.get("volumes") is None:
                patch.append({"op": "add", "path": "/spec/volumes", "value": volumes})
            else:
                patch += [{"op": "add", "path": "/spec/volumes/-", "value": v} for v in volumes]
        patch.append({"op": "add", "path": "/spec/containers/-", "value": envoy})
    inits = spec.get("initContainers")
    if not any(c.get("name") == "proxyinit" for c in inits or []):
        ports = _ports_from(annotations[ANN_PORTS]) if ANN_PORTS in annotations else ",".join(
            str((lst.get("portMapping") or {}).get("port")) for lst in vn.spec.get("listeners") or [])
        ips = _ports_from(annotations.get(ANN_EGRESS_IPS, cfg.egress_ignored_ips))
        eports = _ports_from(annotations.get(ANN_EGRESS_PORTS, cfg.egress_ignored_ports))
        init = proxy_init_container(ports, ips, eports, cfg, ipv6_enabled(annotations, cfg))
        if inits is None:
            patch.append({"op": "add", "path": "/spec/initContainers", "value": [init]})
        else:
            patch.append({"op": "add", "path": "/spec/initContainers/-", "value": init})
    return patch


def virtual_gateway_patch(pod: dict, nid: str, vg, cfg: InjectConfig, dual: bool = False) -> list:
    spec = pod.get("spec") or {}
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    for i, c in enumerate(spec.get("containers") or []):
        if c.get("name") != "envoy":
            continue
        new = copy.deepcopy(c)
        if str(annotations.get(ANN_SKIP_IMAGE, "")).lower() != "enabled":
            new["image"] = cfg.envoy_image
        new["command"], new["args"] = _command()
        new["env"] = _merge_env(c.get("env"), _env(nid, bootstrap(nid, vg.aws_name(), cfg, dual), cfg))
        new.setdefault("readinessProbe", _readiness())
        new.setdefault("securityContext", {"runAsUser": ENVOY_UID, "runAsGroup": ENVOY_UID, "runAsNonRoot": True,
                                           "allowPrivilegeEscalation": False})
        ports = new.setdefault("ports", [])
        if not any(p.get("containerPort") == ADMIN_PORT for p in ports):
            ports.append({"name": "stats", "containerPort": ADMIN_PORT, "protocol": "TCP"})
        return [{"op": "replace", "path": f"/spec/containers/{i}", "value": new}]
    return []
