"""A meshed pod's network, for real: network namespaces, the proxy-init script, iptables,
Envoy as UID 1337 with the injected bootstrap and the controller's cluster-mode configuration,
and the sample app as UID 10001.

Layout (addresses from the recorded walkthrough objects, tests/controller/testdata; the /24 of
the product pod's IP, 10.244.1.0/24, exists only inside these namespaces):

    namespace "pod"  (the product-service pod)        namespace "cli" (node, other pods, outside)
      eth0 10.244.1.5  <------------ veth ----------->  eth0 10.244.1.1    kubelet/client, xDS server :15010
      proxy-init (root, the injector's env)                  10.244.1.6    review-service pod (sample app)
      envoy (UID 1337), admin 127.0.0.1:9901                 10.244.1.200  a host outside the mesh:
      sample app (UID 10001) on 0.0.0.0:8080                               HTTP :8080, TCP echo :7000, TLS echo :8443
      /etc/hosts: review-service.appmesh-demo.svc.cluster.local -> 10.96.0.50 (a ClusterIP nobody owns)

The controller's pieces run unmodified: `lab.controller.inject.decide` makes the pod's
`envoy` and `proxyinit` containers from the recorded Pod, and they are run here the way the
kubelet would (env as given, `$(VAR)` expanded in args); `lab.controller.reconcile.compute`
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
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lab.controller.inject import InjectConfig, decide
from lab.controller.reconcile import compute
from lab.controller.world import build_world
from lab.runtime.envoy import EnvoyNotFound, find_envoy
from lab.xds import Snapshot, XdsServer
from tests.netns.netns import Netns, ip, run_id, sweep_stale, veth

ROOT = Path(__file__).resolve().parents[2]
PROXY_INIT = ROOT / "lab" / "controller" / "proxy_init" / "proxy-init.sh"
WALKTHROUGH = json.loads((ROOT / "tests" / "controller" / "testdata" / "walkthrough.json").read_text())
NAMESPACE = "appmesh-demo"
PRODUCT = "mesh/my-app-mesh/virtualNode/product-service-vn_appmesh-demo"
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


PRODUCT_POD, REVIEW_POD = _pod("product-service"), _pod("review-service")
POD_IP, REVIEW_IP = PRODUCT_POD["status"]["podIP"], REVIEW_POD["status"]["podIP"]
SUBNET = ipaddress.ip_network(f"{POD_IP}/24", strict=False)
NODE_IP, EXTERNAL_IP = str(SUBNET[1]), str(SUBNET[200])
APP_PORT = PRODUCT_POD["spec"]["containers"][0]["ports"][0]["containerPort"]  # 8080


def objects(egress: str, vn_port: int) -> dict:
    """The walkthrough with the mesh's egressFilter and product-service-vn's listener port set."""
    objs = copy.deepcopy(WALKTHROUGH)
    objs["Mesh"][0]["spec"]["egressFilter"] = {"type": egress}
    (vn,) = [v for v in objs["VirtualNode"] if v["metadata"]["name"] == "product-service-vn"]
    vn["spec"]["listeners"][0]["portMapping"]["port"] = vn_port
    return objs


def injected(objs: dict) -> dict:
    """The containers the injector adds to the product pod: {"envoy": ..., "proxyinit": ...}."""
    world, invalid = build_world(objs)
    assert not invalid, invalid
    cfg = InjectConfig(xds_host=NODE_IP, xds_port=XDS_PORT)
    d = decide(copy.deepcopy(PRODUCT_POD), NAMESPACE, world, cfg)
    assert d.allowed and d.proxy == PRODUCT, d.message
    out = {}
    for op in d.patch:
        for c in op["value"] if isinstance(op["value"], list) else [op["value"]]:
            out[c["name"]] = c
    assert set(out) == {"envoy", "proxyinit"}, out
    return out


def env_of(container: dict) -> dict:
    return {e["name"]: e["value"] for e in container["env"]}


def expand(arg: str, env: dict) -> str:
    """The kubelet's $(VAR) expansion in command and args ($$ escapes; unknown names stay)."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), arg)


# ---- small network clients and servers --------------------------------------------------

def http_get(host: str, port: int, path: str, timeout: float = 10.0) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Accept": "application/json"})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def outcome(fn, *args):
    """fn(*args), or the exception it raised, as a value (for asserting on failures)."""
    try:
        return fn(*args)
    except OSError as exc:
        return exc


PROBE = r'''
import json, socket, ssl, sys
kind, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
out = {"uid": __import__("os").getuid()}
try:
    s = socket.create_connection((host, port), timeout=5)
    if kind == "tls":
        ctx = ssl.create_default_context(cafile=sys.argv[4])
        s = ctx.wrap_socket(s, server_hostname=sys.argv[5])
        out["peer"] = dict(x[0] for x in s.getpeercert()["subject"])["commonName"]
    f = s.makefile("rb")
    if kind == "banner":  # the server speaks first (SMTP, MySQL)
        out["banner"] = f.readline().decode("utf-8", "replace")
    s.sendall(b"ping\n")
    out["reply"] = f.readline().decode("utf-8", "replace")
except (OSError, ssl.SSLError) as exc:
    out["error"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
'''


class EchoServer:
    """A line echo server (TCP, or TLS when given a context) listening in a namespace; counts
    the connections it accepted. With a banner, it speaks first, as SMTP and MySQL servers do."""

    def __init__(self, ns, host: str, port: int, tls: ssl.SSLContext | None = None, banner: bytes = b""):
        self.tls, self.banner, self.accepted, self._stop = tls, banner, 0, threading.Event()
        self.sock = ns.call(socket.create_server, (host, port))
        self.sock.settimeout(0.2)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn):
        with conn:
            try:
                conn.settimeout(5)
                if self.tls is not None:
                    conn = self.tls.wrap_socket(conn, server_side=True)
                if self.banner:
                    conn.sendall(self.banner)
                line = conn.makefile("rb").readline()
                conn.sendall(b"echo: " + line)
            except (OSError, ssl.SSLError):
                return  # the client went away or was not TLS: what the test looks at is the client's side

    def close(self):
        self._stop.set()
        self.sock.close()


class ExternalHttp:
    """An HTTP server outside the mesh; records the headers of every request it gets."""

    def __init__(self, ns, host: str, port: int):
        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                seen.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}})
                body = json.dumps({"service": "external", "path": self.path}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                return

        self.server = ns.call(ThreadingHTTPServer, (host, port), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


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
    """The sample app's image contents (lab/apps/Dockerfile): /app/lab/{__init__,apps/__init__,apps/sample}.py."""
    app = workdir / "app"
    (app / "lab" / "apps").mkdir(parents=True)
    (app / "lab" / "__init__.py").write_text("")
    for name in ("__init__.py", "sample.py"):
        shutil.copy(ROOT / "lab" / "apps" / name, app / "lab" / "apps" / name)
    for path in [app, *app.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    return app


def wait_until(what: str, check, timeout: float, interval: float = 0.1, detail=lambda: ""):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
            last = value
        except (OSError, http.client.HTTPException) as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r}) {detail()}")


# ---- the pod ------------------------------------------------------------------------------

class MeshedPod:
    def __init__(self, workdir: Path, pod, cli, xds: XdsServer, iptables: str, python: str):
        self.dir, self.pod, self.cli, self.xds, self.iptables, self.python = workdir, pod, cli, xds, iptables, python
        self.version = 0
        self.served = None  # (egress, vn_port) of the configuration Envoy has
        self.app_ports = None  # APPMESH_APP_PORTS the iptables rules were made with

    # -- what a user would look at
    def log(self, name: str, lines: int = 40) -> str:
        path = self.dir / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else "(no log)"
        return f"\n--- {name}.log (last {lines} lines) ---\n" + "\n".join(text.splitlines()[-lines:])

    def admin(self, path: str) -> bytes:
        status, _, body = self.pod.call(http_get, "127.0.0.1", 9901, path)
        assert status == 200, (path, status, body[:300])
        return body

    def stats(self) -> dict[str, int]:
        out = {}
        for line in self.admin("/stats").decode().splitlines():
            name, _, value = line.partition(": ")
            if value.isdigit():
                out[name] = int(value)
        return out

    def stat(self, stats: dict, pattern: str) -> int:
        """The sum of the counters whose name matches `pattern` (0 when none does)."""
        return sum(v for k, v in stats.items() if re.search(pattern, k))

    def from_client(self, port: int, path: str):
        """GET http://<pod IP>:port/path from the "cli" namespace (the node, another pod)."""
        return self.cli.call(outcome, http_get, POD_IP, port, path)

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
            self.xds.set_snapshot(PRODUCT, Snapshot.from_dicts(version, **compute(objs).envoy[PRODUCT]))
            if self.served is not None:
                self.wait_applied(version)
            self.served = (egress, vn_port)
        if recreate_pod:
            init = injected(objs)["proxyinit"]
            if env_of(init)["APPMESH_APP_PORTS"] != self.app_ports:
                self.proxy_init(init)

    def proxy_init(self, init: dict) -> None:
        if self.app_ports is not None:  # a pod created now has a fresh network namespace: empty nat table
            for args in (("-t", "nat", "-F"), ("-t", "nat", "-X")):
                out = self.pod.sh(self.iptables, *args)
                assert out.returncode == 0, out.stderr
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), **env_of(init),
               "IPTABLES": self.iptables, "IP6TABLES": self.iptables.replace("iptables", "ip6tables")}
        out = self.pod.sh("sh", str(PROXY_INIT), env=env)
        assert out.returncode == 0, f"proxy-init failed ({out.returncode}): {out.stdout}{out.stderr}"
        self.app_ports = env_of(init)["APPMESH_APP_PORTS"]

    def wait_applied(self, version: str, timeout: float = 20) -> None:
        assert self.xds.wait_for_ack(PRODUCT, version, timeout=timeout), \
            f"Envoy did not ACK {version}: {self.xds.status(PRODUCT)}{self.log('envoy')}"

        def settled():  # an unchanged listener or cluster keeps its older version_info; none may be warming
            listeners = json.loads(self.admin("/config_dump?resource=dynamic_listeners")).get("configs", [])
            clusters = json.loads(self.admin("/config_dump?resource=dynamic_warming_clusters")).get("configs", [])
            return bool(listeners) and not clusters and all("warming_state" not in c for c in listeners)
        wait_until(f"Envoy to finish warming the listeners and clusters of {version}", settled, timeout)

    def start_envoy(self, envoy: dict, envoy_bin: str) -> None:
        env = env_of(envoy)
        assert envoy["command"] == ["envoy"]
        argv = [envoy_bin] + [expand(a, env) for a in envoy["args"]] + ["--disable-hot-restart"]
        sc = envoy["securityContext"]
        assert sc["runAsUser"] == sc["runAsGroup"] == ENVOY_UID
        self.pod.popen(argv, uid=sc["runAsUser"], env=env, log=self.dir / "envoy.log", cwd=str(self.dir))


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
        pod.create(etc={"hosts": f"127.0.0.1 localhost\n{CLUSTER_IP} {REVIEW_HOST}\n",
                        "resolv.conf": "nameserver 127.0.0.1\n"})
        cli.create()
        veth(pod, cli)
        ip("-n", pod.name, "addr", "add", f"{POD_IP}/{SUBNET.prefixlen}", "dev", "eth0")
        ip("-n", pod.name, "route", "add", "default", "via", NODE_IP)
        for addr in (NODE_IP, REVIEW_IP, EXTERNAL_IP):
            ip("-n", cli.name, "addr", "add", f"{addr}/{SUBNET.prefixlen}", "dev", "eth0")

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
        mp.start_envoy(containers["envoy"], envoy_for(ENVOY_UID, workdir))

        wait_until("the product app to answer /ping on 127.0.0.1:8080 inside the pod",
                   lambda: pod.call(http_get, "127.0.0.1", APP_PORT, "/ping", 2)[0] == 200, 20,
                   detail=lambda: mp.log("app"))
        wait_until(f"the review-service app to answer /ping on {REVIEW_IP}:8080",
                   lambda: cli.call(http_get, REVIEW_IP, APP_PORT, "/ping", 2)[0] == 200, 20,
                   detail=lambda: mp.log("review"))
        wait_until("Envoy (UID 1337) to connect to the xDS server through the veth (its own traffic is not "
                   "redirected)", lambda: xds.status(PRODUCT)["connected"], 20, detail=lambda: mp.log("envoy"))
        mp.wait_applied(f"netns-{mp.version}")
        wait_until("Envoy's /ready to answer LIVE", lambda: mp.admin("/ready").strip() == b"LIVE", 20,
                   detail=lambda: mp.log("envoy"))
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
    before = p.stat(p.stats(), fails)
    status, headers, body = p.from_client(MISMATCH, "/products")
    assert status == 503 and headers.get("server") == "envoy", (status, body)
    assert body.startswith(b"upstream connect error or disconnect/reset before headers") and \
        b"connection failure" in body, body
    assert p.stat(p.stats(), fails) > before
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
    fails = r"^cluster\.cds_ingress_.*\.upstream_cx_connect_fail$"
    no_chain = r"^listener\.0\.0\.0\.0_15000\.no_filter_chain_match$"
    before = p.stats()
    assert isinstance(p.from_client(MISMATCH, "/products"), ConnectionRefusedError)
    r = p.from_client(APP_PORT, "/products")
    assert isinstance(r, (ConnectionResetError, http.client.RemoteDisconnected)), r
    after = p.stats()
    assert p.stat(after, fails) == p.stat(before, fails)
    assert p.stat(after, no_chain) == p.stat(before, no_chain) + 1
