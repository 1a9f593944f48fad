"""The processes the local lab runs for its planned pods: each container's ProcSpec (its ports,
environment and log), each Envoy's bootstrap file, the certificate and Secret files the
configuration names, the ports a Service or a gateway listener is exposed on, and the Envoys'
admin sockets. The daemon (lab/runtime/daemon.py) asks this once per reconcile pass; every step
remembers its last inputs, so a pass that changes no pod does no file or process work.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..model import World
from ..model.discovery import reaches
from ..model.envoy_rules import STREAMS
from ..translate import naming
from ..translate.ir import Placement
from ..xds.bootstrap import ENVOY_RUNTIME, make_bootstrap
from . import gatewayapi as gwapi
from . import pods as podplan
from .envoy import ACCESS_LOG_FLUSH_MS, EnvoyProcess
from .home import Paths
from .ports import Ports
from .sockets import Sockets
from .supervisor import ProcSpec


ACCESS_LOG_DIR = "access-logs"


def access_log_files(world: World) -> dict:
    """An access-log path of a manifest -> where the local lab's Envoy writes it: relative to the
    Envoy's working directory (its pod's folder), under access-logs/, so a manifest can never make
    Envoy create or append to a file outside the lab's home. /dev/stdout and /dev/stderr stay (they
    are the Envoy's log, `logs POD -c envoy`)."""
    out = {}
    for kind in ("VirtualGateway", "VirtualNode"):
        for r in world.by_kind[kind]:
            f = ((r.spec.get("logging") or {}).get("accessLog") or {}).get("file") or {}
            p = f.get("path")
            if isinstance(p, str) and p.startswith("/") and p not in STREAMS:
                out[p] = ACCESS_LOG_DIR + "/" + "/".join(x for x in p.split("/") if x not in ("", ".", ".."))
    return out


_NO_PATHS: frozenset = frozenset()  # a resource's TLS paths or SANs when it names none


class PodProcesses:
    """What the lab runs for the pods of a World (see the module docstring)."""

    def __init__(self, paths: Paths, ports: Ports, sockets: Sockets, envoy: str, xds_path: str):
        self.paths, self.ports, self.sockets, self.envoy, self.xds_path = paths, ports, sockets, envoy, xds_path
        self.ready_ports: dict = {}  # process key -> the port its readiness is probed on (place)
        self._pod_count = 0  # pods of the last plan: bounds the memos below
        self._pods_memo: tuple | None = None  # (the inputs, the result) of the last podplan.plan (plan)
        self._tls_memo: dict = {}  # key -> (Resource, its certificate paths, its SANs) (files)
        self._admin_sockets: set | None = None  # names of the admin sockets of the pods last planned
        self._admin_paths: dict = {}  # (namespace, pod) -> its Envoy's admin socket (admin_path)
        self._envoy_specs: dict = {}  # a pod's Envoy inputs -> (its bootstrap file, ProcSpec): _envoy_spec

    def admin_path(self, namespace: str, pod: str) -> Path:
        """Sockets.admin, remembered (each call resolves the lab's home again)."""
        path = self._admin_paths.get((namespace, pod))
        if path is None:
            if len(self._admin_paths) > 4 * self._pod_count + 64:
                self._admin_paths.clear()
            path = self._admin_paths[(namespace, pod)] = self.sockets.admin(namespace, pod)
        return path

    def tidy_admin_sockets(self, pods: list) -> None:
        """Remove the admin sockets of Envoys whose pods are gone (Envoy leaves its socket file)."""
        wanted = {self.admin_path(p.namespace, p.name).name for p in pods if p.proxy is not None}
        if wanted == self._admin_sockets:
            return
        for sock in self.sockets.dir.glob("admin.*.sock"):
            if sock.name not in wanted:
                sock.unlink(missing_ok=True)
        self._admin_sockets = wanted

    # what podplan.plan reads of a World: pods come from Deployments and Pods, their proxies from the
    # virtual nodes and gateways that select them in their namespace, Gateway API pods from Gateways
    # of a GatewayClass the lab serves
    POD_KINDS = ("Deployment", "Pod", "Namespace", "VirtualNode", "VirtualGateway", "Gateway", "GatewayClass")

    def plan(self, world: World, names: dict) -> list:
        """podplan.plan(world, names)'s pods; the last plan again when none of what it reads changed
        (the same Resource objects, in the same order, and the same pod names): a new gateway
        route or router changes no pod."""
        inputs = [r for kind in self.POD_KINDS for r in world.by_kind[kind]]
        taken = {k: list(v) for k, v in names.items()}
        memo = self._pods_memo
        if memo is not None and memo[1] == taken and len(memo[0]) == len(inputs) and all(
                a is b for a, b in zip(memo[0], inputs)):
            return memo[2]
        pods, _problems = podplan.plan(world, names)
        self._pod_count = len(pods)
        self._pods_memo = (inputs, taken, pods)  # the Resource objects themselves: no id is reused
        return pods

    def _tls_paths(self, world: World) -> tuple[set, set]:
        """certs.tls_paths(world), each resource walked once per version (the daemon keeps the same
        Resource object for an unchanged record)."""
        from . import certs
        paths, sans, memo = set(), set(), {}
        for kind in ("VirtualNode", "VirtualGateway"):
            for r in world.by_kind[kind]:
                hit = self._tls_memo.get(r.key)
                if hit is None or hit[0] is not r:
                    # kept per virtual node, read only: most have none, and no paths is one object
                    hit = (r, *(frozenset(x) if x else _NO_PATHS for x in certs.tls_paths(World([r]))))
                memo[r.key] = hit
                paths |= hit[1]
                sans |= hit[2]
        self._tls_memo = memo
        return paths, sans

    def files(self, world: World) -> dict:
        """Certificate paths in manifests (/etc/appmesh-lab/certs/…) -> files under the lab's home,
        made on first use; access-log paths -> paths inside each pod's folder (access_log_files);
        secret:<ns>/<name>/<key> -> the Secret's file, owner-only (lab/runtime/secrets.py)."""
        from . import certs, secrets
        paths, sans = self._tls_paths(world)
        return {**certs.ensure(self.paths.certs, paths, sans), **access_log_files(world),
                **secrets.write_tls_secrets(world, self.paths.secrets)}  # Gateway HTTPS listeners' Secrets

    def place(self, world: World, pods: list) -> tuple[Placement, dict]:
        pl = Placement(bind_address="127.0.0.1")
        specs: dict = {}
        # readiness, as a TCP readiness probe would have it: an app container is ready once it
        # accepts connections on its port (Running alone is not enough: it may still be starting)
        ready_ports = self.ready_ports = {}
        services = world.by_kind["Service"]
        for pod in pods:
            nid = None
            if gwapi.is_gateway_api(pod.proxy):  # a Gateway API Gateway's own Envoy
                nid = pod.node_id = gwapi.node_id(pod.proxy)
            elif pod.proxy is not None:
                mesh = world.mesh_of(pod.proxy)
                if mesh is None:
                    continue  # the proxy's resource is inactive; its pod waits
                kind = "virtualGateway" if pod.role == "gateway" else "virtualNode"
                nid = naming.node_id(mesh.aws_name(), kind, pod.proxy.aws_name())
                pod.node_id = nid
            app_ports: dict = {}
            if pod.role == "meshed":
                listeners = [(lst.get("portMapping") or {}).get("port") for lst in pod.proxy.spec.get("listeners") or []]
                for lp in listeners:
                    pl.listeners.setdefault(nid, {})[lp] = self.ports.get(f"ingress:{nid}:{lp}")
                    app_ports[lp] = self.ports.get(f"app:{nid}:{lp}")
                    pl.apps.setdefault(nid, {})[lp] = ["127.0.0.1", app_ports[lp]]
                    # the pod is an endpoint only where the node's DNS name resolves to it (a
                    # hostname naming no Service resolves to nothing: 503 for its callers)
                    eps = pl.endpoints.setdefault(nid, {}).setdefault(lp, [])
                    if not eps and reaches(world, pod.proxy, pod.namespace, pod.labels):
                        eps.append(["127.0.0.1", pl.listeners[nid][lp]])
                pl.egress[nid] = self.ports.get(f"egress:{nid}")
            elif pod.role == "gateway":
                for lp in gwapi.listener_ports(pod.proxy):
                    pl.listeners.setdefault(nid, {})[lp] = self._gateway_port(services, pod, nid, lp)
                if gwapi.is_gateway_api(pod.proxy):
                    pl.egress[nid] = self.ports.get(f"egress:{nid}")
                # a virtual gateway's egress stage is an internal listener (no socket): it claims no
                # port, and its names carry the placement's default (15001, as on a cluster)
            pod_dir = self.paths.pod_dir(pod.namespace, pod.name)
            for c in pod.containers:
                if c.name == "envoy" and pod.role == "gateway":
                    continue
                env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONUNBUFFERED": "1",
                       "HOST": "127.0.0.1", "POD_NAME": pod.name, "SERVICE_NAME": pod.owner}
                if os.environ.get("PYTHONPATH"):
                    env["PYTHONPATH"] = os.environ["PYTHONPATH"]
                env.update(c.env)
                port = None
                for cp in c.ports or []:
                    port = app_ports.get(cp) or self.ports.get(f"app:{pod.namespace}/{pod.owner}:{cp}")
                    break
                if port is None and app_ports:
                    port = next(iter(app_ports.values()))
                if port is not None:
                    env["PORT"] = str(port)
                    ready_ports[f"{pod.namespace}/{pod.name}/{c.name}"] = port
                if pod.role == "meshed":
                    env["EGRESS_PROXY"] = f"127.0.0.1:{pl.egress[nid]}"
                specs[f"{pod.namespace}/{pod.name}/{c.name}"] = ProcSpec(
                    f"{pod.namespace}/{pod.name}/{c.name}", list(c.argv), env, pod_dir / f"{c.name}.log", str(pod_dir))
            if nid is not None:
                specs[f"{pod.namespace}/{pod.name}/envoy"] = self._envoy_spec(pod, nid, pod_dir)
        return pl, specs

    def _envoy_spec(self, pod, nid: str, pod_dir: Path) -> ProcSpec:
        """The ProcSpec of a pod's Envoy, its bootstrap file written (only when it differs from the
        file's content). A pass remembers what it wrote: the next pass with the same inputs checks
        only that the file is still there (no bootstrap built, encoded or read again)."""
        logs = frozenset(access_log_files(World([pod.proxy])).values())
        key = (pod.namespace, pod.name, nid, self.envoy, logs)
        known = self._envoy_specs.get(key)
        if known is not None and known[0].exists():
            return known[1]
        for rel in logs:
            (pod_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        boot = make_bootstrap(nid, cluster=pod.name, xds_socket=self.xds_path,
                              admin_socket=str(self.admin_path(pod.namespace, pod.name)),
                              runtime=ENVOY_RUNTIME)
        # access logs reach their file within ACCESS_LOG_FLUSH_MS (Envoy's default is every 10 s)
        proc = EnvoyProcess(boot, pod_dir, name="envoy", envoy_path=self.envoy,
                            extra_args=("--file-flush-interval-msec", str(ACCESS_LOG_FLUSH_MS)))
        pod_dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps(boot, indent=2)
        if not proc.bootstrap_path.exists() or proc.bootstrap_path.read_text() != text:
            proc.bootstrap_path.write_text(text)
        argv = proc.command()
        # The lab never hot-restarts an Envoy (the supervisor starts a new one), so it turns
        # hot restart off: no shared memory, no base ids that could collide between pods.
        idx = argv.index("--use-dynamic-base-id")
        argv[idx:idx + 3] = ["--disable-hot-restart"]
        spec = ProcSpec(f"{pod.namespace}/{pod.name}/envoy", argv, {"PATH": os.environ.get("PATH", "")},
                        pod_dir / "envoy.stdout.log", str(pod_dir))
        if len(self._envoy_specs) > 4 * self._pod_count + 64:  # pods come and go: keep it bounded
            self._envoy_specs.clear()
        self._envoy_specs[key] = (proc.bootstrap_path, spec)
        return spec

    def _gateway_port(self, services, pod, nid, listener_port) -> int:
        """A LoadBalancer/NodePort Service in front of the gateway pods gives the listener its port."""
        from ..model.resources import selector_matches
        for svc in services:
            if svc.namespace != pod.namespace or svc.spec.get("type") not in ("LoadBalancer", "NodePort"):
                continue
            if not svc.spec.get("selector") or not selector_matches({"matchLabels": svc.spec["selector"]}, pod.labels):
                continue
            for sp in svc.spec.get("ports") or []:
                if sp.get("targetPort", sp.get("port")) == listener_port:
                    return self.service_port(svc, sp)
        if gwapi.is_gateway_api(pod.proxy):
            return self.ports.get(f"gw:{nid}:{listener_port}", gwapi.preferred_port(listener_port))
        return self.ports.get(f"gw:{nid}:{listener_port}")

    def service_port(self, svc, sp) -> int:
        """The stable 127.0.0.1 port a LoadBalancer/NodePort Service is exposed on."""
        preferred = sp.get("nodePort") or (30000 + sp["port"] if sp["port"] < 2768 else None)
        return self.ports.get(f"svc:{svc.namespace}/{svc.name}:{sp['port']}", preferred)
