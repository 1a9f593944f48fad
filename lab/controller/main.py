"""`appmesh-lab controller`: the entry point of the controller image.

    informers ──> cache ──> Controller.run_pass ──> XdsServer (every replica)
                                   └──> statuses, finalizers, events (the Lease holder)
    WebhookServer (every replica) ──> inject.decide(pod, world from the cache)

Every option has an environment variable (the Helm chart sets them); see `add_arguments`.
SIGTERM stops the loops, releases the Lease and stops the servers.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ..runtime.httpjson import send_json

log = logging.getLogger("appmesh-lab.controller")

OPTIONS = [
    # (flag, env, default, help)
    ("--namespace", "POD_NAMESPACE", "appmesh-system", "the controller's own namespace (Lease, Secret, Services)"),
    ("--identity", "POD_NAME", socket.gethostname(), "this replica's name in the Lease"),
    ("--xds-port", "APPMESH_LAB_XDS_PORT", "15010", "gRPC ADS port"),
    ("--webhook-port", "APPMESH_LAB_WEBHOOK_PORT", "9443", "HTTPS admission webhook port"),
    ("--health-port", "APPMESH_LAB_HEALTH_PORT", "8081", "HTTP /healthz, /readyz, /status"),
    ("--bind-address", "APPMESH_LAB_BIND_ADDRESS", "0.0.0.0", "address the xDS, webhook and health servers bind"),
    ("--xds-service", "APPMESH_LAB_XDS_SERVICE", "appmesh-lab-controller-xds", "Service the proxies dial"),
    ("--webhook-service", "APPMESH_LAB_WEBHOOK_SERVICE", "appmesh-lab-controller-webhook", "Service the API server calls"),
    ("--webhook-config", "APPMESH_LAB_WEBHOOK_CONFIG", "appmesh-lab-controller",
     "name of the Mutating and the Validating WebhookConfiguration"),
    ("--webhook-secret", "APPMESH_LAB_WEBHOOK_SECRET", "appmesh-lab-controller-webhook-tls", "Secret for the certificate"),
    ("--lease-name", "APPMESH_LAB_LEASE", "appmesh-lab-controller-leader", "Lease for leader election"),
    ("--cluster-domain", "APPMESH_LAB_CLUSTER_DOMAIN", "cluster.local", "the cluster's DNS domain"),
    ("--envoy-image", "APPMESH_LAB_ENVOY_IMAGE", "envoyproxy/envoy:v1.40.0", "image of injected Envoys"),
    ("--proxy-init-image", "APPMESH_LAB_PROXY_INIT_IMAGE", "appmesh-lab/proxy-init:0.1.0", "iptables init image"),
    ("--envoy-log-level", "APPMESH_LAB_ENVOY_LOG_LEVEL", "info", "Envoy's log level in injected proxies"),
    ("--log-level", "APPMESH_LAB_LOG_LEVEL", "info", "the controller's log level"),
    ("--region", "APPMESH_LAB_REGION", "us-west-2", "region in ARNs and AWS_REGION of proxies"),
    ("--egress-ignored-ips", "APPMESH_LAB_EGRESS_IGNORED_IPS", "169.254.169.254", "default egress-ignored IPs"),
    ("--egress-ignored-ports", "APPMESH_LAB_EGRESS_IGNORED_PORTS", "22", "default egress-ignored ports"),
    ("--sidecar-cpu-request", "APPMESH_LAB_SIDECAR_CPU", "10m", "injected Envoy CPU request"),
    ("--sidecar-memory-request", "APPMESH_LAB_SIDECAR_MEMORY", "32Mi", "injected Envoy memory request"),
    ("--pre-stop-sleep", "APPMESH_LAB_PRE_STOP_SLEEP", "20", "seconds an injected Envoy drains before stopping"),
    ("--ip-family", "APPMESH_LAB_IP_FAMILY", "IPv4",
     "the cluster's IP family, IPv4 or IPv6: a Mesh's ipPreference is set from it, as upstream's Mesh webhook does"),
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    for flag, env, default, help_ in OPTIONS:
        p.add_argument(flag, default=os.environ.get(env, default), help=f"{help_} (env {env}; default {default})")


def inject_config(args):
    from .inject import InjectConfig
    return InjectConfig(
        envoy_image=args.envoy_image, proxy_init_image=args.proxy_init_image,
        xds_host=f"{args.xds_service}.{args.namespace}.svc.{args.cluster_domain}", xds_port=int(args.xds_port),
        log_level=args.envoy_log_level, region=args.region, egress_ignored_ips=args.egress_ignored_ips,
        egress_ignored_ports=args.egress_ignored_ports, cpu_request=args.sidecar_cpu_request,
        memory_request=args.sidecar_memory_request, pre_stop_sleep_s=int(args.pre_stop_sleep),
        ip_family=args.ip_family)


class _Health:
    def __init__(self, host: str, port: int, state):
        state_ref = state

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt, *a):
                return

            def do_GET(self):  # noqa: N802
                if self.path == "/healthz":
                    code, body = 200, {"ok": True}
                elif self.path == "/readyz":
                    ready = state_ref()["ready"]
                    code, body = (200 if ready else 503), {"ready": ready}
                elif self.path == "/status":
                    code, body = 200, state_ref()
                else:
                    code, body = 404, {"error": "not found"}
                send_json(self, code, body)
        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, name="health", daemon=True).start()


def run(args, kube=None, stop: threading.Event | None = None) -> int:
    from ..xds.server import XdsServer
    from .cache import Cache, start_informers, wait_synced
    from .kube import APPMESH_KINDS, ApiKube
    from .leader import LeaderElector
    from .reconcile import Controller
    from .webhook import WebhookServer, ensure_ca_bundle, ensure_certificate
    from .world import build_world

    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(message)s")
    stop = stop or threading.Event()
    kube = kube or ApiKube.from_environment()
    cache = Cache()
    xds = XdsServer(args.bind_address, int(args.xds_port))
    controller = Controller(kube, cache, xds, namespace=args.namespace)
    xds.add_callbacks(controller)
    elector = LeaderElector(kube, args.namespace, args.lease_name, args.identity,
                            on_change=lambda leading: controller.wake.set())
    controller.is_leader = lambda: elector.leading

    def world():
        objects = cache.snapshot()
        return build_world({k: objects[k] for k in ("Namespace",) + APPMESH_KINDS})[0]

    pems = ensure_certificate(kube, args.namespace, args.webhook_secret, args.webhook_service)
    webhook = WebhookServer(int(args.webhook_port), pems, world, inject_config(args), host=args.bind_address,
                            objects_fn=cache.snapshot).start()
    try:
        ensure_ca_bundle(kube, args.webhook_config, pems["ca.crt"])
    except Exception as exc:  # retried every minute below
        log.warning("caBundle: %s", exc)
    xds.start()
    state = {"ready": False}

    def status():
        return {"ready": state["ready"], "identity": args.identity, "leader": elector.leading,
                "last_pass": controller.last, "proxies": {n: xds.status(n) for n in xds.nodes()}}
    health = _Health(args.bind_address, int(args.health_port), status)
    start_informers(kube, cache, controller.wake.set, stop)
    threading.Thread(target=elector.run, args=(stop,), name="leader", daemon=True).start()
    loop = threading.Thread(target=controller.loop, args=(stop,), name="reconcile", daemon=True)
    loop.start()

    def on_signal(*_):
        stop.set()
        controller.wake.set()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    if wait_synced(cache, 60, stop):
        controller.wake.set()
        state["ready"] = True
        log.info("caches synced; xds on :%s, webhook on :%s", args.xds_port, args.webhook_port)
    while not stop.wait(60):
        try:
            ensure_ca_bundle(kube, args.webhook_config, pems["ca.crt"])
        except Exception as exc:  # logged and retried in a minute
            log.warning("caBundle check: %s", exc)
        state["ready"] = cache.all_synced()
    loop.join(5)
    health.httpd.shutdown()
    webhook.stop()
    xds.stop(1.0)
    return 0


def cmd_controller(args) -> int:
    """`appmesh-lab controller`; a start-up failure is one line on stderr and exit 1."""
    from .kube import KubeError
    if args.ip_family not in ("IPv4", "IPv6"):
        print(f"appmesh-lab controller: --ip-family (APPMESH_LAB_IP_FAMILY, chart value ipFamily) is "
              f"{args.ip_family!r}; write IPv4 or IPv6", file=sys.stderr)
        return 1
    try:
        return run(args)
    except KubeError as exc:  # no API server, no permission (RBAC), no certificate Secret
        print(f"appmesh-lab controller: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a port in use, an address that cannot be bound
        print(f"appmesh-lab controller: cannot listen: {exc}", file=sys.stderr)
        return 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="appmesh-lab controller")
    add_arguments(p)
    return cmd_controller(p.parse_args(argv))
