"""The proxies `bench dataplane` compares the lab's Envoys with, each started for the run only,
on a loopback port, in front of a given upstream port:

  Nginx      nginx as a reverse proxy (one worker, keep-alive to its upstream): what a user
             might pick for plain ingress; unprivileged (as `nobody` when this process is root),
             its config, pid, logs and temp files in its own directory
  BareEnvoy  the cheapest possible Envoy hop: a static config of one listener, one route to one
             cluster (a static endpoint), the router filter and nothing else (no access log, no
             xDS, no admin interface), --concurrency 1 like the lab's Envoys; or the same with
             the route's request handed to a second stage on an internal listener (the lab's
             gateway Envoy's shape: App Mesh's two routing stages)

Chained (the second one's upstream is the first one's port) they give the two-hop floors the
gateway path is compared with (gateway Envoy -> sidecar Envoy -> app).

Each runs in a session of its own, as the lab's processes do (its supervisor starts every
container with one): with the kernel's scheduler autogroups (one per session, on by default on
most distributions) a process's share of a busy machine's cores goes with its session, and a
request handed from one session to another waits for that session's turn. Proxies in the
benchmark's own session (wrk's) would hand requests over faster than the lab's Envoys can on a
loaded machine, and the floors would not be floors of the same thing.
"""
from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from .upstream import NGINX_MAIN

NGINX_CONF = NGINX_MAIN + """\
    upstream app {{
        server 127.0.0.1:{app};
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }}
    }}
}}
"""

_HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
_INTERNAL_UPSTREAM = "type.googleapis.com/envoy.extensions.transport_sockets.internal_upstream.v3.InternalUpstreamTransport"
_RAW_BUFFER = "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"
_INTERNAL_LISTENER = "type.googleapis.com/envoy.extensions.bootstrap.internal_listener.v3.InternalListener"


def nginx_path() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


def children(pid: int) -> list[int]:
    """The pids whose parent is `pid` (from /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, ValueError, IndexError):
                continue
    return out


def bare_envoy_config(port: int, app_port: int, stages: int = 1) -> dict:
    """One listener on 127.0.0.1:<port>, one route (every path) to one cluster whose only endpoint
    is 127.0.0.1:<app_port>, HTTP/1.1 both ways; Envoy's defaults for everything else.
    stages=2: the route hands the request to an internal listener of the same Envoy (in memory,
    Envoy's internal upstream transport) whose own connection manager and route send it to the
    cluster: the shape of the lab's gateway Envoy (App Mesh's two routing stages), nothing more."""
    def hcm(name: str, cluster: str) -> dict:
        return {"name": "envoy.filters.network.http_connection_manager", "typed_config": {
            "@type": _HCM, "stat_prefix": name, "codec_type": "AUTO",
            "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [{
                "match": {"prefix": "/"}, "route": {"cluster": cluster}}]}]},
            "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": _ROUTER}}]}}

    def cluster(name: str, address: dict) -> dict:
        return {"name": name, "type": "STATIC", "connect_timeout": "1s", "load_assignment": {
            "cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}]}}
    app = cluster("app", {"socket_address": {"address": "127.0.0.1", "port_value": app_port}})
    if stages == 1:
        return {"static_resources": {
            "listeners": [{"name": "bare", "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                           "filter_chains": [{"filters": [hcm("bare", "app")]}]}],
            "clusters": [app]}}
    second = cluster("second_stage", {"envoy_internal_address": {"server_listener_name": "second_stage"}})
    second["transport_socket"] = {"name": "envoy.transport_sockets.internal_upstream", "typed_config": {
        "@type": _INTERNAL_UPSTREAM,
        "transport_socket": {"name": "envoy.transport_sockets.raw_buffer", "typed_config": {"@type": _RAW_BUFFER}}}}
    return {"static_resources": {
        "listeners": [{"name": "bare", "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                       "filter_chains": [{"filters": [hcm("bare", "second_stage")]}]},
                      {"name": "second_stage", "internal_listener": {},
                       "filter_chains": [{"filters": [hcm("second_stage", "app")]}]}],
        "clusters": [second, app]},
        "bootstrap_extensions": [{"name": "envoy.bootstrap.internal_listener",
                                  "typed_config": {"@type": _INTERNAL_LISTENER}}]}


class _Proxy:
    """A proxy process in the foreground on 127.0.0.1:<port>, in front of 127.0.0.1:<app_port>;
    a context manager that returns once the proxy answers GET <probe> through to its upstream."""
    kind = "proxy"

    def __init__(self, app_port: int, workdir: Path, probe: str = "/"):
        from ..runtime.envoy import free_port
        self.port = free_port()
        self.app_port = app_port
        self.dir = workdir
        self.probe = probe
        self.proc: subprocess.Popen | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    def pids(self) -> list[int]:
        """The process and its children (an nginx master's worker)."""
        return [] if self.proc is None else [self.proc.pid, *children(self.proc.pid)]

    def _popen(self) -> subprocess.Popen:
        raise NotImplementedError

    def _log(self) -> str:
        return (self.dir / "stderr.log").read_text()[-2000:] if (self.dir / "stderr.log").exists() else ""

    def __enter__(self):
        self.proc = self._popen()
        from ..targets.base import TargetError, request
        deadline = time.time() + 15
        while True:
            try:
                if request("127.0.0.1", self.port, "GET", self.probe, None, None, 1).status == 200:
                    return self
            except TargetError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                log = self._log()
                self.__exit__()
                raise RuntimeError(f"{self.kind} on port {self.port} did not answer: {log}")
            time.sleep(0.05)

    def __exit__(self, *exc):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: a fast shutdown (nginx: master and worker)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Nginx(_Proxy):
    """nginx as a reverse proxy, unprivileged (as `nobody` when this process is root)."""
    kind = "nginx"

    def __init__(self, app_port: int, workdir: Path, probe: str = "/"):
        super().__init__(app_port, workdir, probe)
        (workdir / "nginx.conf").write_text(NGINX_CONF.format(d=workdir, connections=1024, app=app_port, port=self.port))

    def _log(self) -> str:
        log = self.dir / "error.log"
        return (log.read_text()[-2000:] if log.exists() else "") + super()._log()

    def _popen(self) -> subprocess.Popen:
        kwargs: dict = {}
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            for p in [self.dir, *self.dir.rglob("*")]:
                os.chown(p, nobody.pw_uid, nobody.pw_gid)
            os.chmod(self.dir, 0o755)
            for parent in self.dir.parents:  # nobody must reach its directory (mkdtemp makes it 0700)
                if str(parent) == tempfile.gettempdir():
                    break
                os.chmod(parent, os.stat(parent).st_mode | 0o011)
            kwargs = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
        return subprocess.Popen([nginx_path(), "-p", str(self.dir), "-c", str(self.dir / "nginx.conf"),
                                 "-e", str(self.dir / "error.log"), "-g", "daemon off;"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=open(self.dir / "stderr.log", "w"), start_new_session=True, **kwargs)


class BareEnvoy(_Proxy):
    """Envoy with bare_envoy_config (one stage, or two joined by an internal listener): no admin
    interface, nothing but the route."""
    kind = "bare Envoy"

    def __init__(self, app_port: int, workdir: Path, probe: str = "/", stages: int = 1):
        super().__init__(app_port, workdir, probe)
        (workdir / "envoy.json").write_text(json.dumps(bare_envoy_config(self.port, app_port, stages)))

    def _popen(self) -> subprocess.Popen:
        from ..runtime.envoy import find_envoy
        return subprocess.Popen([str(find_envoy()), "-c", str(self.dir / "envoy.json"), "--concurrency", "1",
                                 "--disable-hot-restart", "-l", "warning"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=open(self.dir / "stderr.log", "w"), start_new_session=True)
