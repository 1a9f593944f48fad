"""A meshed pod's network, for real: network namespaces, the proxy-init script, iptables,
Envoy as UID 1337 with the injected bootstrap and the controller's cluster-mode configuration,
and the sample app as UID 10001.

Layout (addresses from the recorded walkthrough objects, tests/controller/testdata; the /24 of
the product pod's IP, 10.244.1.0/24, exists only inside these namespaces):

    namespace "pod"  (the product-service pod)        namespace "cli" (node, other pods, outside)
      eth0 10.244.1.5  <------------ veth ----------->  eth0 10.244.1.1    kubelet/client, xDS server :15010
      proxy-init (root, the injector's env)                  10.244.1.6    review-service pod (sample app)
      envoy (UID 1337), admin 127.0.0.1:9901                 10.244.1.7    gateway pod: Envoy (UID 1337) :8088
      sample app (UID 10001) on 0.0.0.0:8080                 10.244.1.200  a host outside the mesh: HTTP :8080,
      /etc/hosts: review-service.appmesh-demo.svc.cluster.local    TCP echo :7000, TLS echo :8443 and :443,
                  -> 10.96.0.50 (a ClusterIP nobody owns)           a server that speaks first :2525

The controller's pieces run unmodified: `lab.controller.inject.decide` makes the pod's `envoy`
and `proxyinit` containers (and the gateway pod's `envoy`) from the recorded Pods, and they are
run here the way the kubelet would (env as given, `$(VAR)` expanded in args, stdout owned by
the container's user as runc makes it); `lab.controller.reconcile.compute`
makes the Envoy resources, served over ADS by `lab.xds.XdsServer` listening in "cli" on the
address the bootstrap names. Two deliberate differences from a pod: Envoy gets
`--disable-hot-restart` (a container has its own /dev/shm; this machine's is shared with other
Envoys), and the injector's xDS host is the address in "cli" instead of the Service's DNS name.
"""
from __future__ import annotations

import copy
import http.client
import ipaddress
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from lab.controller.inject import InjectConfig, decide
from lab.controller.reconcile import compute
from lab.controller.world import build_world
from lab.runtime.envoy import EnvoyNotFound, find_envoy
from lab.xds import Snapshot, XdsServer
from tests.netns.netns import Netns, ip, run_id, sweep_stale, veth
from tests.netns.traffic import PROBE, EchoServer, ExternalHttp, http_get, outcome, wait_until

ROOT = Path(__file__).resolve().parents[2]
PROXY_INIT = ROOT / "lab" / "controller" / "proxy_init" / "proxy-init.sh"
WALKTHROUGH = json.loads((ROOT / "tests" / "controller" / "testdata" / "walkthrough.json").read_text())
NAMESPACE = "appmesh-demo"
PRODUCT = "mesh/my-app-mesh/virtualNode/product-service-vn_appmesh-demo"
GATEWAY = "mesh/my-app-mesh/virtualGateway/appmesh-gateway_appmesh-demo"
REVIEW_HOST = "review-service.appmesh-demo.svc.cluster.local"
CLUSTER_IP = "10.96.0.50"  # what the pod's /etc/hosts says the review Service is; never dialled
ENVOY_UID, APP_UID = 1337, 10001
XDS_PORT = 15010
EXTERNAL_NAME = "external.test"
BANNER = b"220 external.test ready\n"
AWS_API_NAME = "sts.us-west-2.amazonaws.com"  # DROP_ALL still lets TLS to *.amazonaws.com out


def _prerequisites() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, iptables, setpriv)"
    for tool in ("ip", "setpriv"):
        if shutil.which(tool) is None:
            return f"needs `{tool}` on PATH (Debian: iproute2, util-linux)"
    if shutil.which("iptables-nft") is None:
        return "needs iptables-nft (Debian package iptables; scripts/install-netns-tools.sh installs it as root)"
    try:
        find_envoy()
    except EnvoyNotFound as exc:
        return str(exc)
    return None


SKIP = _prerequisites()
pytestmark = [pytest.mark.envoy, pytest.mark.slow, pytest.mark.skipif(SKIP is not None, reason=SKIP or "")]



# ---- the API objects and what the controller makes of them ------------------------------

def _pod(app: str) -> dict:
    pods = [p for p in WALKTHROUGH["Pod"] if p["metadata"]["labels"].get("app") == app
            and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"]["conditions"])]
    assert pods, f"the recorded walkthrough has no ready {app} pod"
    return pods[0]


PRODUCT_POD, REVIEW_POD, GATEWAY_POD = _pod("product-service"), _pod("review-service"), _pod("appmesh-gateway")
POD_IP, REVIEW_IP, GATEWAY_IP = (p["status"]["podIP"] for p in (PRODUCT_POD, REVIEW_POD, GATEWAY_POD))
GATEWAY_PORT = GATEWAY_POD["spec"]["containers"][0]["ports"][0]["containerPort"]  # 8088
SUBNET = ipaddress.ip_network(f"{POD_IP}/24", strict=False)
NODE_IP, EXTERNAL_IP = str(SUBNET[1]), str(SUBNET[200])
APP_PORT = PRODUCT_POD["spec"]["containers"][0]["ports"][0]["containerPort"]  # 8080
# dual stack: the same hosts on a unique-local IPv6 /64 (the recorded cluster is IPv4; a
# dual-stack pod has both), and an IPv6 ClusterIP for the review Service that nobody owns
SUBNET6 = ipaddress.ip_network("fd00:10:244:1::/64")
NODE_IP6, POD_IP6, REVIEW_IP6, GATEWAY_IP6, EXTERNAL_IP6 = (str(SUBNET6[n]) for n in (1, 5, 6, 7, 0x200))
CLUSTER_IP6 = "fd00:10:96::50"
IP_PREFERENCE = "IPv4_ONLY"  # what upstream's Mesh webhook writes on an IPv4-family cluster once discovery is set


def objects(egress: str, vn_port: int) -> dict:
    """The walkthrough with the mesh's egressFilter and product-service-vn's listener port set,
    and an IP preference on the mesh (so its proxies bind IPv6 as well, as App Mesh's do)."""
    objs = copy.deepcopy(WALKTHROUGH)
    objs["Mesh"][0]["spec"]["egressFilter"] = {"type": egress}
    objs["Mesh"][0]["spec"]["meshServiceDiscovery"] = {"ipPreference": IP_PREFERENCE}
    (vn,) = [v for v in objs["VirtualNode"] if v["metadata"]["name"] == "product-service-vn"]
    vn["spec"]["listeners"][0]["portMapping"]["port"] = vn_port
    return objs


def injected(objs: dict, pod: dict = PRODUCT_POD, proxy: str = PRODUCT) -> dict:
    """The containers the injector adds or replaces in a pod: the product pod gets
    {"envoy": ..., "proxyinit": ...}, the gateway pod {"envoy": ...}."""
    world, invalid = build_world(objs)
    assert not invalid, invalid
    cfg = InjectConfig(xds_host=NODE_IP, xds_port=XDS_PORT)
    d = decide(copy.deepcopy(pod), NAMESPACE, world, cfg)
    assert d.allowed and d.proxy == proxy, d.message
    out = {}
    for op in d.patch:
        for c in op["value"] if isinstance(op["value"], list) else [op["value"]]:
            out[c["name"]] = c
    assert set(out) == ({"envoy", "proxyinit"} if proxy == PRODUCT else {"envoy"}), out
    return out


def env_of(container: dict) -> dict:
    return {e["name"]: e["value"] for e in container["env"]}


def expand(arg: str, env: dict) -> str:
    """The kubelet's $(VAR) expansion in command and args ($$ escapes; unknown names stay)."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), arg)


def runnable_as(uid: int, argv: list[str]) -> bool:
    out = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--", *argv],
                         capture_output=True, timeout=60, cwd="/")
    return out.returncode == 0


def python_for(uid: int) -> str:
    """A Python interpreter `uid` can run (this one, unless it lives where `uid` cannot go)."""
    for candidate in (sys.executable, shutil.which("python3"), "/usr/bin/python3"):
        if candidate and runnable_as(uid, [candidate, "-c", "import http.server, ssl"]):
            return candidate
    pytest.fail(f"no Python interpreter that UID {uid} may run: {sys.executable} is not (its directory is "
                "private?) and there is no /usr/bin/python3")


def envoy_for(uid: int, workdir: Path) -> str:
    """The Envoy binary, copied into workdir if `uid` cannot run it where it is."""
    envoy = str(find_envoy())
    if runnable_as(uid, [envoy, "--version"]):
        return envoy
    copy_ = workdir / "envoy"
    shutil.copy(envoy, copy_)
    os.chmod(copy_, 0o755)
    return str(copy_)


def app_image(workdir: Path) -> Path:
    """The sample app's image contents: /app/lab/__init__.py and the lab/apps files that
    lab/apps/Dockerfile copies (read from its COPY line, so the two cannot drift apart)."""
    app = workdir / "app"
    (app / "lab" / "apps").mkdir(parents=True)
    (app / "lab" / "__init__.py").write_text("")
    copied = next(line for line in (ROOT / "lab" / "apps" / "Dockerfile").read_text().splitlines()
                if line.startswith("COPY lab/apps/"))
    for src in copied.split()[1:-1]:
        shutil.copy(ROOT / src, app / "lab" / "apps" / Path(src).name)
    for path in [app, *app.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    return app


# ---- the pod ------------------------------------------------------------------------------

class MeshedPod:
    def __init__(self, workdir: Path, pod, cli, xds: XdsServer, iptables: str, python: str):
        self.dir, self.pod, self.cli, self.xds, self.iptables, self.python = workdir, pod, cli, xds, iptables, python
        self.ip6tables = iptables.replace("iptables", "ip6tables")
        self.version = 0
        self.served = None  # (egress, vn_port) of the configuration Envoy has
        self.app_ports = None  # APPMESH_APP_PORTS the iptables rules were made with

    # -- what a user would look at
    def log(self, name: str, lines: int = 40) -> str:
        path = self.dir / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else "(no log)"
        return f"\n--- {name}.log (last {lines} lines) ---\n" + "\n".join(text.splitlines()[-lines:])

    def admin(self, path: str, proxy: str = PRODUCT, method: str = "GET") -> bytes:
        """Envoy's admin interface (127.0.0.1:9901 in the proxy's own namespace)."""
        ns = self.pod if proxy == PRODUCT else self.cli
        status, _, body = ns.call(http_get, "127.0.0.1", 9901, path, 10.0, method)
        assert status == 200, (path, status, body[:300])
        return body

    def stats(self, proxy: str = PRODUCT) -> dict[str, int]:
        out = {}
        for line in self.admin("/stats", proxy).decode().splitlines():
            name, _, value = line.partition(": ")
            if value.isdigit():
                out[name] = int(value)
        return out

    def stat(self, stats: dict, pattern: str) -> int:
        """The sum of the counters whose name matches `pattern` (0 when none does)."""
        return sum(v for k, v in stats.items() if re.search(pattern, k))

    def from_client(self, port: int, path: str, host: str = POD_IP):
        """GET http://<pod IP>:port/path from the "cli" namespace (the node, another pod)."""
        return self.cli.call(outcome, http_get, host, port, path)

    def via_gateway(self, path: str):
        """GET path through the gateway pod's Envoy (its listener on the gateway's pod IP)."""
        return self.from_client(GATEWAY_PORT, path, GATEWAY_IP)

    def gateway_access_log(self, path: str) -> list[str]:
        """The gateway's two access-log lines for `path`, in the order written: its egress hop to
        the virtual service (which retries, and carries the response flag), then its listener
        (the walkthrough's gateway logs to /dev/stdout; Envoy writes access logs out every 10 s,
        or when asked to reopen them)."""
        self.admin("/reopen_logs", GATEWAY, "POST")

        def lines():
            text = (self.dir / "gateway.log").read_text(errors="replace")
            found = [ln for ln in text.splitlines() if f'"GET {path} HTTP/1.1"' in ln]
            return found if len(found) >= 2 else None
        return wait_until(f"the gateway's access log lines for {path}", lines, 10)

    def from_app(self, kind: str, host: str, port: int, *extra: str) -> dict:
        """A TCP or TLS line exchange made inside the pod by a process with the app's UID."""
        out = self.pod.sh("setpriv", f"--reuid={APP_UID}", f"--regid={APP_UID}", "--clear-groups", "--",
                          self.python, str(self.dir / "probe.py"), kind, host, str(port), *extra, timeout=30)
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout)
        assert result["uid"] == APP_UID
        return result

    def call_via_app(self, target: str) -> dict:
        """client -> pod:8080/call/<target> (in through Envoy) -> the app -> <target> (out through
        iptables and Envoy); the app's report of what the target answered."""
        r = self.from_client(APP_PORT, f"/call/{target}")
        assert not isinstance(r, Exception), f"{r!r}{self.log('envoy')}"
        status, _, body = r
        assert status == 200, (status, body[:500])
        return json.loads(body)["called"]

    # -- what the controller and the kubelet do
    def configure(self, egress: str = "ALLOW_ALL", vn_port: int = APP_PORT, recreate_pod: bool = True) -> None:
        """Serve the controller's configuration for these objects and wait until Envoy applied
        it; with `recreate_pod`, also make the iptables rules a pod created now would get
        (proxy-init with the injector's env for these objects)."""
        objs = objects(egress, vn_port)
        if self.served != (egress, vn_port):
            self.version += 1
            version = f"netns-{self.version}"
            envoy = compute(objs).envoy
            for proxy in (PRODUCT, GATEWAY):
                self.xds.set_snapshot(proxy, Snapshot.from_dicts(version, **envoy[proxy]))
            if self.served is not None:
                self.wait_applied(version)
            self.served = (egress, vn_port)
        if recreate_pod:
            init = injected(objs)["proxyinit"]
            if env_of(init)["APPMESH_APP_PORTS"] != self.app_ports:
                self.proxy_init(init)

    def proxy_init(self, init: dict) -> None:
        if self.app_ports is not None:  # a pod created now has a fresh network namespace: empty nat tables
            for tool in (self.iptables, self.ip6tables):
                for args in (("-t", "nat", "-F"), ("-t", "nat", "-X")):
                    out = self.pod.sh(tool, *args)
                    assert out.returncode == 0, out.stderr
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), **env_of(init),
               "IPTABLES": self.iptables, "IP6TABLES": self.ip6tables}
        out = self.pod.sh("sh", str(PROXY_INIT), env=env)
        assert out.returncode == 0, f"proxy-init failed ({out.returncode}): {out.stdout}{out.stderr}"
        self.app_ports = env_of(init)["APPMESH_APP_PORTS"]

    def wait_applied(self, version: str, timeout: float = 20) -> None:
        for proxy, log in ((PRODUCT, "envoy"), (GATEWAY, "gateway")):
            assert self.xds.wait_for_ack(proxy, version, timeout=timeout), \
                f"{proxy} did not ACK {version}: {self.xds.status(proxy)}{self.log(log)}"

            def settled():  # an unchanged listener or cluster keeps its older version_info; none may be warming
                listeners = json.loads(self.admin("/config_dump?resource=dynamic_listeners", proxy)).get("configs", [])
                warming = json.loads(self.admin("/config_dump?resource=dynamic_warming_clusters", proxy)).get("configs")
                return bool(listeners) and not warming and all("warming_state" not in c for c in listeners)
            wait_until(f"{proxy} to finish warming the listeners and clusters of {version}", settled, timeout)

    def start_envoy(self, ns, envoy: dict, envoy_bin: str, log: str) -> None:
        """Run an injected `envoy` container as the kubelet would: its command and args with
        $(VAR) expanded from its env, as its runAsUser."""
        env = env_of(envoy)
        assert envoy["command"] == ["envoy"]
        argv = [envoy_bin] + [expand(a, env) for a in envoy["args"]] + ["--disable-hot-restart"]
        sc = envoy["securityContext"]
        assert sc["runAsUser"] == sc["runAsGroup"] == ENVOY_UID
        ns.popen(argv, uid=sc["runAsUser"], env=env, log=self.dir / f"{log}.log", cwd=str(self.dir))


@pytest.fixture(scope="module")
def meshed_pod():
    sweep_stale()
    workdir = Path(tempfile.mkdtemp(prefix="appmesh-netns-"))
    os.chmod(workdir, 0o755)  # UIDs 1337 and 10001 read the probe script and the CA from here
    (workdir / "probe.py").write_text(PROBE)
    rid = run_id()
    pod, cli = Netns(f"{rid}-pod"), Netns(f"{rid}-cli")
    servers = []
    xds = XdsServer(NODE_IP, XDS_PORT)
    started = False
    try:
        pod.create(etc={"hosts": f"127.0.0.1 localhost\n::1 localhost\n{CLUSTER_IP} {REVIEW_HOST}\n",
                        "resolv.conf": "nameserver 127.0.0.1\n"})
        cli.create()
        veth(pod, cli)
        ip("-n", pod.name, "addr", "add", f"{POD_IP}/{SUBNET.prefixlen}", "dev", "eth0")
        ip("-n", pod.name, "route", "add", "default", "via", NODE_IP)
        for addr in (NODE_IP, REVIEW_IP, GATEWAY_IP, EXTERNAL_IP):
            ip("-n", cli.name, "addr", "add", f"{addr}/{SUBNET.prefixlen}", "dev", "eth0")
        # IPv6 (nodad: usable at once, no duplicate address detection to wait for)
        ip("-n", pod.name, "addr", "add", f"{POD_IP6}/{SUBNET6.prefixlen}", "dev", "eth0", "nodad")
        ip("-n", pod.name, "-6", "route", "add", "default", "via", NODE_IP6)
        for addr in (NODE_IP6, REVIEW_IP6, GATEWAY_IP6, EXTERNAL_IP6):
            ip("-n", cli.name, "addr", "add", f"{addr}/{SUBNET6.prefixlen}", "dev", "eth0", "nodad")

        # the controller's xDS server, listening in "cli" on the address the bootstrap names
        cli.call(xds.start)
        started = True
        python = python_for(APP_UID)
        mp = MeshedPod(workdir, pod, cli, xds, shutil.which("iptables-nft"), python)
        containers = injected(objects("ALLOW_ALL", APP_PORT))
        mp.configure("ALLOW_ALL", APP_PORT)  # the snapshot waits for Envoy; proxy-init runs first, as init containers do

        # outside the pod: the review-service pod (the sample app) and a host outside the mesh
        from lab.runtime.certs import make_ca, make_leaf
        ca = make_ca(workdir / "ca")
        make_leaf(workdir / "external", ca, EXTERNAL_NAME, [EXTERNAL_NAME])
        make_leaf(workdir / "aws", ca, AWS_API_NAME, [AWS_API_NAME])
        shutil.copy(workdir / "ca" / "ca.crt", workdir / "ca.crt")
        os.chmod(workdir / "ca.crt", 0o644)
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(workdir / "external" / "tls.crt", workdir / "external" / "tls.key")
        mp.http_external = ExternalHttp(cli, EXTERNAL_IP, 8080)
        mp.tcp_external = EchoServer(cli, EXTERNAL_IP, 7000)
        mp.tls_external = EchoServer(cli, EXTERNAL_IP, 8443, tls)
        mp.banner_external = EchoServer(cli, EXTERNAL_IP, 2525, banner=BANNER)
        aws_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        aws_tls.load_cert_chain(workdir / "aws" / "tls.crt", workdir / "aws" / "tls.key")
        mp.aws_external = EchoServer(cli, EXTERNAL_IP, 443, aws_tls)
        servers += [mp.http_external, mp.tcp_external, mp.tls_external, mp.banner_external, mp.aws_external]
        mp.http_external6 = ExternalHttp(cli, EXTERNAL_IP6, 8080)
        mp.tcp_external6 = EchoServer(cli, EXTERNAL_IP6, 7000)
        mp.tls_external6 = EchoServer(cli, EXTERNAL_IP6, 8443, tls)
        servers += [mp.http_external6, mp.tcp_external6, mp.tls_external6]
        app = app_image(workdir)
        app_env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(app), "PYTHONDONTWRITEBYTECODE": "1",
                   "PYTHONUNBUFFERED": "1"}
        cli.popen([python, "-m", "lab.apps.sample"], uid=APP_UID, log=workdir / "review.log", cwd=str(app),
                  env={**app_env, "HOST": REVIEW_IP, "PORT": str(APP_PORT), "SERVICE_NAME": "review-service",
                       "POD_NAME": REVIEW_POD["metadata"]["name"]})

        # the pod's containers: the app (UID 10001) and the injected Envoy (UID 1337)
        pod.popen([python, "-m", "lab.apps.sample"], uid=APP_UID, log=workdir / "app.log", cwd=str(app),
                  env={**app_env, "PORT": str(APP_PORT), "SERVICE_NAME": "product-service",
                       "POD_NAME": PRODUCT_POD["metadata"]["name"]})
        envoy_bin = envoy_for(ENVOY_UID, workdir)
        mp.start_envoy(pod, containers["envoy"], envoy_bin, "envoy")
        # the gateway pod (no iptables: App Mesh gateways listen themselves), in "cli" beside the node
        mp.start_envoy(cli, injected(objects("ALLOW_ALL", APP_PORT), GATEWAY_POD, GATEWAY)["envoy"], envoy_bin,
                       "gateway")

        wait_until("the product app to answer /ping on 127.0.0.1:8080 inside the pod",
                   lambda: pod.call(http_get, "127.0.0.1", APP_PORT, "/ping", 2)[0] == 200, 20,
                   detail=lambda: mp.log("app"))
        wait_until(f"the review-service app to answer /ping on {REVIEW_IP}:8080",
                   lambda: cli.call(http_get, REVIEW_IP, APP_PORT, "/ping", 2)[0] == 200, 20,
                   detail=lambda: mp.log("review"))
        wait_until("Envoy (UID 1337) to connect to the xDS server through the veth (its own traffic is not "
                   "redirected)", lambda: xds.status(PRODUCT)["connected"], 20, detail=lambda: mp.log("envoy"))
        wait_until("the gateway's Envoy to connect to the xDS server", lambda: xds.status(GATEWAY)["connected"], 20,
                   detail=lambda: mp.log("gateway"))
        mp.wait_applied(f"netns-{mp.version}")
        for proxy, log in ((PRODUCT, "envoy"), (GATEWAY, "gateway")):
            wait_until(f"{proxy}'s /ready to answer LIVE", lambda: mp.admin("/ready", proxy).strip() == b"LIVE", 20,
                       detail=lambda: mp.log(log))
        yield mp
    finally:
        for s in servers:
            s.close()
        pod.stop()
        cli.stop()
        if started:
            xds.stop(0)
        pod.delete()
        cli.delete()
        shutil.rmtree(workdir, ignore_errors=True)


# ---- the tests ----------------------------------------------------------------------------

INGRESS_RQ = r"^cluster\.cds_ingress_[^.]*_{port}\.upstream_rq_completed$"


def test_inbound_traffic_to_the_app_port_is_redirected_to_the_sidecar(meshed_pod):
    p = meshed_pod
    p.configure()
    before = p.stats()
    status, headers, body = p.from_client(APP_PORT, "/products")
    after = p.stats()
    answer = json.loads(body)
    assert status == 200 and answer["service"] == "product-service", body
    # Envoy handled it: its ingress listener took the connection and its local-app cluster sent it on
    assert p.stat(after, r"^listener\.0\.0\.0\.0_15000\.downstream_cx_total$") > \
        p.stat(before, r"^listener\.0\.0\.0\.0_15000\.downstream_cx_total$")
    ingress = INGRESS_RQ.format(port=APP_PORT)
    assert p.stat(after, ingress) == p.stat(before, ingress) + 1
    # and the request the app got carries what Envoy adds
    assert "x-request-id" in answer["request"]["headers"] and "x-envoy-expected-rq-timeout-ms" in answer["request"]["headers"]
    assert headers.get("server") == "envoy"


def test_the_gateway_reaches_the_meshed_pod_through_its_sidecar(meshed_pod):
    """The walkthrough's path: client -> gateway Envoy -> <pod IP>:8080 (the endpoint from the
    EndpointSlice) -> iptables -> the pod's sidecar -> the app; /reviews to the review pod."""
    p = meshed_pod
    p.configure()
    ingress = INGRESS_RQ.format(port=APP_PORT)
    to_product = r"^cluster\.cds_egress_[^.]*product-service-vn[^.]*_8080\.upstream_rq_completed$"
    before, gw_before = p.stat(p.stats(), ingress), p.stat(p.stats(GATEWAY), to_product)
    r = p.via_gateway("/products")
    assert not isinstance(r, Exception), f"{r!r}{p.log('gateway')}"
    status, _, body = r
    answer = json.loads(body)
    assert status == 200 and answer["service"] == "product-service", body
    assert (answer["request"]["path"], answer["request"]["host"]) == ("/", "product-service.appmesh-demo.svc.cluster.local")
    assert p.stat(p.stats(), ingress) == before + 1, "the pod's sidecar took the gateway's connection"
    assert p.stat(p.stats(GATEWAY), to_product) == gw_before + 1
    status, _, body = p.via_gateway("/reviews")
    assert status == 200 and json.loads(body)["service"] == "review-service", body


def test_probe_paths_as_proxy_init_leaves_them(meshed_pod):
    """The kubelet probes from the node: the app port goes through Envoy (App Mesh redirects
    every non-local source), Envoy's readiness port 15021 is not redirected, and a connection
    from the pod's own IP to itself reaches the app directly (nat PREROUTING never sees it)."""
    p = meshed_pod
    p.configure()
    ingress = INGRESS_RQ.format(port=APP_PORT)
    n0 = p.stat(p.stats(), ingress)
    status, _, body = p.from_client(15021, "/ready")  # the injected readinessProbe: httpGet :15021/ready
    assert (status, body.strip()) == (200, b"LIVE")
    status, _, body = p.from_client(APP_PORT, "/ping")  # an httpGet probe on the app's port
    assert (status, body.strip()) == (200, b"pong")
    n1 = p.stat(p.stats(), ingress)
    assert n1 == n0 + 1, "the node's probe of the app port went through Envoy"
    status, _, body = p.pod.call(http_get, POD_IP, APP_PORT, "/self")  # from the pod's own IP
    assert status == 200 and "x-request-id" not in json.loads(body)["request"]["headers"], body
    assert p.stat(p.stats(), ingress) == n1, "traffic from inside the pod to its own IP bypassed Envoy"
    # Envoy's admin is on 127.0.0.1 only: the node cannot reach it through the pod IP
    assert isinstance(p.from_client(9901, "/stats"), ConnectionRefusedError)


def test_egress_to_a_declared_backend_is_routed_by_envoy(meshed_pod):
    p = meshed_pod
    p.configure()
    backend = r"^cluster\.cds_egress_[^.]*review-service-vn[^.]*\.upstream_rq_completed$"
    before = p.stat(p.stats(), backend)
    called = p.call_via_app(f"{REVIEW_HOST}:{APP_PORT}/reviews")
    assert called["status"] == 200 and called["body"]["service"] == "review-service", called
    # the app dialled the ClusterIP nobody owns; Envoy took the connection and chose the endpoint
    assert "x-envoy-expected-rq-timeout-ms" in called["body"]["request"]["headers"], called
    assert p.stat(p.stats(), backend) == before + 1


def test_allow_all_passes_undeclared_http(meshed_pod):
    p = meshed_pod
    p.configure("ALLOW_ALL")
    seen = len(p.http_external.seen)
    called = p.call_via_app(f"{EXTERNAL_IP}:8080/outside")
    assert called["status"] == 200 and called["body"] == {"service": "external", "path": "/outside"}, called
    (req,) = p.http_external.seen[seen:]
    assert "x-envoy-expected-rq-timeout-ms" in req["headers"], "the request went through Envoy"


# issue 13 defect 8: before its fix the outbound listener 15001 had only an HTTP connection
# manager, which answered every non-HTTP connection with HTTP 400 (or, for a server that speaks
# first, nothing), whatever the egressFilter. The next three tests failed then.
def test_allow_all_passes_undeclared_raw_tcp(meshed_pod):
    p = meshed_pod
    p.configure("ALLOW_ALL")
    accepted = p.tcp_external.accepted
    result = p.from_app("tcp", EXTERNAL_IP, "7000")
    assert result.get("reply") == "echo: ping\n", result
    assert p.tcp_external.accepted == accepted + 1


def test_allow_all_passes_a_protocol_whose_server_speaks_first(meshed_pod):
    """SMTP, MySQL: the client waits for the server's greeting before it sends anything, so
    nothing can be learned from its first bytes; the greeting must still arrive (here within
    the probe's 5 s socket timeout)."""
    p = meshed_pod
    p.configure("ALLOW_ALL")
    result = p.from_app("banner", EXTERNAL_IP, "2525")
    assert result.get("banner") == BANNER.decode() and result.get("reply") == "echo: ping\n", result


def test_allow_all_passes_undeclared_tls(meshed_pod):
    p = meshed_pod
    p.configure("ALLOW_ALL")
    result = p.from_app("tls", EXTERNAL_IP, "8443", str(p.dir / "ca.crt"), EXTERNAL_NAME)
    # the app's TLS session ends at the outside server (its certificate), not at Envoy
    assert result.get("peer") == EXTERNAL_NAME and result.get("reply") == "echo: ping\n", result


def test_drop_all_blocks_undeclared_destinations(meshed_pod):
    p = meshed_pod
    p.configure("DROP_ALL")
    def counts():
        return (len(p.http_external.seen), p.tcp_external.accepted, p.tls_external.accepted,
                p.banner_external.accepted)
    before = counts()
    called = p.call_via_app(f"{EXTERNAL_IP}:8080/outside")
    assert called["status"] == 404 and "DROP_ALL" in str(called["body"]), called
    tcp = p.from_app("tcp", EXTERNAL_IP, "7000")
    assert tcp.get("reply") != "echo: ping\n", tcp
    tls = p.from_app("tls", EXTERNAL_IP, "8443", str(p.dir / "ca.crt"), EXTERNAL_NAME)
    assert "error" in tls and "peer" not in tls, tls
    banner = p.from_app("banner", EXTERNAL_IP, "2525")
    assert not banner.get("banner"), banner
    assert counts() == before, "nothing reached the outside host"
    # except TLS to an AWS API name (App Mesh's DROP_ALL lets *.amazonaws.com out)
    aws = p.from_app("tls", EXTERNAL_IP, "443", str(p.dir / "ca.crt"), AWS_API_NAME)
    assert aws.get("peer") == AWS_API_NAME and aws.get("reply") == "echo: ping\n", aws
    # the declared backend still works
    called = p.call_via_app(f"{REVIEW_HOST}:{APP_PORT}/reviews")
    assert called["status"] == 200 and called["body"]["service"] == "review-service", called


MISMATCH = 9090  # notebook 11: the VirtualNode's listener says 9090, the container listens on 8080


def test_port_mismatch_in_a_pod_created_with_it(meshed_pod):
    """What notebook 11 shows on the local lab, on a pod started after the change (a rollout):
    proxy-init redirects 9090, Envoy forwards to 127.0.0.1:9090 where nothing listens -> 503,
    reset reason "connection failure" (response flag UF), and the sidecar's inbound cluster
    for 9090 counts upstream_cx_connect_fail. The container's own port is no longer redirected:
    it reaches the app around Envoy."""
    p = meshed_pod
    p.configure("ALLOW_ALL", MISMATCH)
    fails = r"^cluster\.cds_ingress_[^.]*_9090\.upstream_cx_connect_fail$"  # notebook 11's stat
    gw_fails = r"^cluster\.cds_egress_[^.]*product-service-vn[^.]*\.upstream_cx_connect_fail$"
    before = p.stat(p.stats(), fails)
    status, headers, body = p.from_client(MISMATCH, "/products")
    assert status == 503 and headers.get("server") == "envoy", (status, body)
    assert body.startswith(b"upstream connect error or disconnect/reset before headers") and \
        b"connection failure" in body, body
    after = p.stat(p.stats(), fails)
    assert after > before
    # through the gateway: the sidecar's 503 comes back (the gateway's route retries it twice)
    gw_before = p.stat(p.stats(GATEWAY), gw_fails)
    status, _, body = p.via_gateway("/products?case=new-pod")
    assert status == 503 and body.startswith(b"upstream connect error"), (status, body)
    assert p.stat(p.stats(), fails) >= after + 1
    assert p.stat(p.stats(GATEWAY), gw_fails) == gw_before, "the gateway itself connected fine"
    # the gateway's access log: its hop to the pod (through its own 127.0.0.1:15001) used up the
    # route's retries (URX); its listener relayed the 503 with no response flag
    egress, listener = p.gateway_access_log("/products?case=new-pod")
    assert '" 503 URX ' in egress and '" 503 - ' in listener, (egress, listener)
    status, _, body = p.from_client(APP_PORT, "/products")
    assert status == 200 and "x-request-id" not in json.loads(body)["request"]["headers"], body


def test_port_mismatch_on_a_running_pod(meshed_pod):
    """The VirtualNode changed under a running pod: its iptables rules still redirect 8080 (the
    injector's APPMESH_APP_PORTS, fixed at creation) while the controller now serves a 9090
    filter chain and tells every client the endpoint is <pod IP>:9090. A client dialling 9090
    is refused by the pod's kernel (in a cluster, the gateway's 503 with flag UF), the sidecar
    counts nothing; 8080 still reaches Envoy, which has no filter chain for it and closes the
    connection (listener stat no_filter_chain_match)."""
    p = meshed_pod
    p.configure("ALLOW_ALL", APP_PORT)
    p.configure("ALLOW_ALL", MISMATCH, recreate_pod=False)
    assert p.app_ports == str(APP_PORT)
    endpoints = compute(objects("ALLOW_ALL", MISMATCH)).envoy
    assert any(f'"address": "{POD_IP}", "port_value": {MISMATCH}' in json.dumps(e) for e in endpoints.values()), \
        "the controller tells clients to dial the pod on the new port"
    fails = r"^cluster\.cds_ingress_[^.]*\.upstream_cx_connect_fail$"
    gw_fails = r"^cluster\.cds_egress_[^.]*product-service-vn[^.]*_9090\.upstream_cx_connect_fail$"
    no_chain = r"^listener\.0\.0\.0\.0_15000\.no_filter_chain_match$"
    before, gw_before = p.stats(), p.stats(GATEWAY)
    assert isinstance(p.from_client(MISMATCH, "/products"), ConnectionRefusedError)
    r = p.from_client(APP_PORT, "/products")
    assert isinstance(r, (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)), r
    # through the gateway: its own connection to <pod IP>:9090 is refused -> its 503 (flags URX,UF)
    status, headers, body = p.via_gateway("/products?case=running-pod")
    assert status == 503 and headers.get("server") == "envoy", (status, body)
    assert body == b"upstream connect error or disconnect/reset before headers. retried and the latest reset " \
        b"reason: remote connection failure", body
    egress, listener = p.gateway_access_log("/products?case=running-pod")
    assert '" 503 URX,UF ' in egress and '" 503 - ' in listener, (egress, listener)
    after, gw_after = p.stats(), p.stats(GATEWAY)
    assert p.stat(gw_after, gw_fails) > p.stat(gw_before, gw_fails)
    assert p.stat(after, fails) == p.stat(before, fails), "the pod's sidecar saw nothing"
    assert p.stat(after, no_chain) == p.stat(before, no_chain) + 1


# ---- IPv6: the same pod, dual stack ---------------------------------------------------------
# Before IPv6 was handled, the injector set APPMESH_ENABLE_IPV6=0 (no ip6tables rules: IPv6 went
# around the sidecar both ways, DROP_ALL included) and Envoy listened on 0.0.0.0 only. Each test
# below failed then.

def test_ipv6_inbound_traffic_to_the_app_port_is_redirected_to_the_sidecar(meshed_pod):
    p = meshed_pod
    p.configure()
    ingress = INGRESS_RQ.format(port=APP_PORT)
    before = p.stat(p.stats(), ingress)
    r = p.from_client(APP_PORT, "/products", POD_IP6)
    assert not isinstance(r, Exception), f"{r!r}{p.log('envoy')}"
    status, headers, body = r
    answer = json.loads(body)
    assert status == 200 and answer["service"] == "product-service", body
    assert headers.get("server") == "envoy" and "x-request-id" in answer["request"]["headers"], (headers, answer)
    assert p.stat(p.stats(), ingress) == before + 1
    # the kubelet's readiness probe of an IPv6 pod (the bootstrap's 15021 listens on [::] too)
    status, _, body = p.from_client(15021, "/ready", POD_IP6)
    assert (status, body.strip()) == (200, b"LIVE")


def test_ipv6_egress_to_a_declared_backend_is_routed_by_envoy(meshed_pod):
    """The app dials the review Service's IPv6 ClusterIP (nobody owns it) with the Service's
    name as Host: ip6tables hands the connection to Envoy, which routes by Host to the backend."""
    p = meshed_pod
    p.configure()
    backend = r"^cluster\.cds_egress_[^.]*review-service-vn[^.]*\.upstream_rq_completed$"
    before = p.stat(p.stats(), backend)
    r = p.from_app("http", CLUSTER_IP6, str(APP_PORT), f"{REVIEW_HOST}:{APP_PORT}", "/reviews")
    assert r.get("status") == 200, f"{r}{p.log('envoy')}"
    answer = json.loads(r["body"])
    assert answer["service"] == "review-service" and "x-envoy-expected-rq-timeout-ms" in answer["request"]["headers"]
    assert p.stat(p.stats(), backend) == before + 1


PASSTHROUGH = r"^tcp\.egress_tcp_passthrough\.downstream_cx_total$"


def test_ipv6_allow_all_passes_undeclared_tcp_and_tls_through_envoy(meshed_pod):
    p = meshed_pod
    p.configure("ALLOW_ALL")
    before, accepted = p.stat(p.stats(), PASSTHROUGH), p.tcp_external6.accepted
    result = p.from_app("tcp", EXTERNAL_IP6, "7000")
    assert result.get("reply") == "echo: ping\n", f"{result}{p.log('envoy')}"
    assert p.tcp_external6.accepted == accepted + 1
    assert p.stat(p.stats(), PASSTHROUGH) == before + 1, "the connection went through Envoy"
    tls = p.from_app("tls", EXTERNAL_IP6, "8443", str(p.dir / "ca.crt"), EXTERNAL_NAME)
    assert tls.get("peer") == EXTERNAL_NAME and tls.get("reply") == "echo: ping\n", tls
    seen = len(p.http_external6.seen)
    http = p.from_app("http", EXTERNAL_IP6, "8080", f"[{EXTERNAL_IP6}]:8080", "/outside6")
    assert http.get("status") == 200, http
    (req,) = p.http_external6.seen[seen:]
    assert req["path"] == "/outside6" and "x-envoy-expected-rq-timeout-ms" in req["headers"]


def test_ipv6_drop_all_blocks_undeclared_destinations(meshed_pod):
    p = meshed_pod
    p.configure("DROP_ALL")

    def counts():
        return len(p.http_external6.seen), p.tcp_external6.accepted, p.tls_external6.accepted
    before = counts()
    tcp = p.from_app("tcp", EXTERNAL_IP6, "7000")
    assert tcp.get("reply") != "echo: ping\n", tcp
    tls = p.from_app("tls", EXTERNAL_IP6, "8443", str(p.dir / "ca.crt"), EXTERNAL_NAME)
    assert "error" in tls and "peer" not in tls, tls
    http = p.from_app("http", EXTERNAL_IP6, "8080", f"[{EXTERNAL_IP6}]:8080", "/outside6")
    assert http.get("status") == 404 and "DROP_ALL" in http.get("body", ""), http
    assert counts() == before, "nothing reached the outside host over IPv6"
    # the declared backend still works over IPv6
    r = p.from_app("http", CLUSTER_IP6, str(APP_PORT), f"{REVIEW_HOST}:{APP_PORT}", "/reviews")
    assert r.get("status") == 200 and json.loads(r["body"])["service"] == "review-service", r


def test_ipv6_clients_reach_the_gateway(meshed_pod):
    """The gateway pod's listener binds [::] as well; its route to product-service goes on to
    the pod's IPv4 endpoint (IPv4_ONLY) through the pod's sidecar."""
    p = meshed_pod
    p.configure()
    r = p.from_client(GATEWAY_PORT, "/products", GATEWAY_IP6)
    assert not isinstance(r, Exception), f"{r!r}{p.log('gateway')}"
    status, _, body = r
    assert status == 200 and json.loads(body)["service"] == "product-service", body
