"""Another local user cannot drive, read, stop or impersonate the owner's lab.

Each test acts as `nobody` (runuser) against a lab root runs, from a folder nobody may enter, so
what stops it is the lab's own modes: the home (0700), the socket folder (0700), the sockets
(0600). Browser-shaped requests go to every TCP port the daemon and its Envoys listen on.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest

from lab.bench import manifests as m
from lab.runtime.supervisor import pid_alive

from .conftest import reachable_parent, start_lab, stop_lab

pytestmark = pytest.mark.envoy

CONNECT = """
import socket
out = {}
for path in args:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    try:
        s.connect(path)
        s.sendall(b"GET /v1/status HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n")
        out[path] = "connected: " + s.recv(200).decode(errors="replace")
    except OSError as exc:
        out[path] = type(exc).__name__
    finally:
        s.close()
print(json.dumps(out))
"""


def _sockets(t) -> list[str]:
    s = t.client.sockets
    admins = [str(s.admin(p["namespace"], p["name"])) for p in t.pods() if p["proxy"]]
    assert len(admins) == 3
    return [str(s.api), str(s.xds)] + admins


def test_another_user_cannot_connect_to_the_daemon_xds_or_any_envoy_admin_socket(lab, as_other):
    paths = _sockets(lab)
    for p in paths:  # the owner can (so the refusals below are the modes at work, not missing sockets)
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(p)
    assert as_other(CONNECT, *paths) == {p: "PermissionError" for p in paths}
    # even where it may pass through the folders, each socket's own mode (0600) stops it
    home, run = lab.client.paths.home, lab.client.sockets.dir
    try:
        os.chmod(home, 0o711)
        os.chmod(run, 0o711)
        assert as_other(CONNECT, *paths) == {p: "PermissionError" for p in paths}
    finally:
        os.chmod(run, 0o700)
        os.chmod(home, 0o700)
    assert lab.running() and len(lab.status()["proxies"]) == 3


def test_another_user_cannot_read_or_list_anything_in_the_lab_home(lab, as_other):
    home = lab.client.paths.home
    files = [str(f) for f in home.rglob("*") if f.is_file()]
    assert any(f.endswith("state.db") for f in files) and any(f.endswith("daemon.json") for f in files)
    assert any("/aws/" in f for f in files)  # the App Mesh API credentials
    out = as_other("""
import os
res = {"list": None, "open": {}}
try:
    os.listdir(args[0])
    res["list"] = "listed"
except OSError as exc:
    res["list"] = type(exc).__name__
for f in args[1:]:
    try:
        open(f, "rb").read(1)
        res["open"][f] = "read"
    except OSError as exc:
        res["open"][f] = type(exc).__name__
print(json.dumps(res))
""", str(home), *files)
    assert out["list"] == "PermissionError"
    assert out["open"] == {f: "PermissionError" for f in files}


def _tcp_ports_of(pids: list[int]) -> dict[int, int]:
    """port -> pid, for every listening TCP socket of these processes (from /proc/net/tcp{,6})."""
    listening = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            if parts[3] == "0A":
                listening[parts[9]] = int(parts[1].rsplit(":", 1)[1], 16)
    out = {}
    for pid in pids:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:[") and link[8:-1] in listening:
                out[listening[link[8:-1]]] = pid
    return out


def _post(port: int, path: str, headers: dict, body: bytes) -> int | None:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        s.sendall(f"POST {path} HTTP/1.1\r\n{head}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                  + body)
        answer = b""
        try:
            while chunk := s.recv(65536):
                answer += chunk
        except OSError:  # reset, or no answer within the timeout: what came so far is the answer
            answer = answer or b"no answer"
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else None


def test_browser_shaped_posts_to_every_tcp_port_are_refused_or_reach_only_the_data_plane(lab, tmp_path):
    """What a web page can send without a CORS preflight (text/plain POST), with its own Origin or
    with a rebound Host, to every port the daemon and the Envoys listen on: the daemon refuses it
    (403) before reading it; an Envoy port is the data plane, where no admin path exists."""
    st = lab.status()
    daemon = st["daemon"]["pid"]
    envoys = [c["pid"] for p in lab.pods() if p["proxy"] for c in p["containers"] if c["name"] == "envoy"]
    ports = _tcp_ports_of([daemon] + envoys)
    api = int(st["endpoints"]["appmesh_api"].rsplit(":", 1)[1])
    assert {p for p, pid in ports.items() if pid == daemon} == {api}, ports  # the App Mesh API only
    assert len([p for p, pid in ports.items() if pid != daemon]) >= 5  # gateway and sidecar listeners
    marker = tmp_path / "pwned"
    deploy = m.text({"apiVersion": "apps/v1", "kind": "Deployment",
                     "metadata": {"name": "pwn", "namespace": "appmesh-demo"},
                     "spec": {"selector": {"matchLabels": {"app": "pwn"}}, "template": {
                         "metadata": {"labels": {"app": "pwn"},
                                      "annotations": {"lab.appmesh.dev/local-command": f"touch {marker}"}},
                         "spec": {"containers": [{"name": "app", "image": "busybox"}]}}}})
    bodies = {"/v1/apply": json.dumps({"texts": [["x.yaml", deploy]]}).encode(),
              "/v20190125/meshes": b'{"meshName": "pwned"}', "/quitquitquit": b"", "/healthcheck/fail": b"",
              "/runtime_modify?re2.max_program_size.error_level=1": b""}
    before = lab.client.call("GET", "/v1/resources")["items"]
    answers = {}
    for port in sorted(ports):
        for variant, headers in (
                ("origin", {"Host": f"127.0.0.1:{port}", "Origin": "http://evil.example"}),
                ("rebound host", {"Host": f"evil.example:{port}"})):
            for path, body in bodies.items():
                answers[(port, variant, path)] = _post(port, path, {**headers, "Content-Type": "text/plain"}, body)
    for (port, variant, path), status in answers.items():
        if ports[port] == daemon:
            assert status == 403, (port, variant, path, status)
    time.sleep(0.5)
    assert not marker.exists()
    assert lab.client.call("GET", "/v1/resources")["items"] == before
    assert all(pid_alive(p) for p in envoys)
    now = [c["pid"] for p in lab.pods() if p["proxy"] for c in p["containers"] if c["name"] == "envoy"]
    assert sorted(now) == sorted(envoys)
    for p in lab.pods():  # no admin path was reached through a listener: each Envoy as it was
        if p["proxy"]:
            assert lab.admin(p["name"], "/server_info").json()["state"] == "LIVE"
            runtime = lab.admin(p["name"], "/runtime").json()
            assert float(runtime["entries"]["re2.max_program_size.error_level"]["final_value"]) == 1e6, runtime
            admin_layer = {k: v["layer_values"][-1] for k, v in runtime["entries"].items() if v["layer_values"][-1]}
            assert admin_layer == {}, admin_layer  # nothing set through /runtime_modify
    assert lab.curl("/products", quiet=True).status == 200


SQUAT = """
import os, socket, threading, time
port, xds, control = args[0], args[1], args[2]
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
res = {"bound": False, "unix": {}, "received": []}
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(16)
res["bound"] = True
for path in (xds, control):
    u = socket.socket(socket.AF_UNIX)
    try:
        u.bind(path)
        res["unix"][path] = "bound"
    except OSError as exc:
        res["unix"][path] = type(exc).__name__
print("ready", flush=True)
srv.settimeout(0.2)
deadline = time.time() + float(args[3])
while time.time() < deadline and not stop.is_set():
    try:
        c, _ = srv.accept()
    except OSError:
        continue
    c.settimeout(1)
    try:
        res["received"].append(c.recv(4096).decode(errors="replace"))
    except OSError:
        res["received"].append("")
    c.close()
print(json.dumps(res))
"""


def test_after_a_daemon_sigkill_a_squatter_on_the_old_port_gets_nothing_and_the_envoys_stay(as_other):
    """The daemon dies (SIGKILL); another user binds the App Mesh API's port at once and tries to
    put its own xDS and control sockets in place. The owner's next `up` and `apply` reach the new
    daemon only, the orphaned Envoys reconnect to it (same processes), and the squatter receives
    nothing."""
    parent = reachable_parent()
    t = start_lab(parent)
    try:
        st = t.status()
        old_api = int(st["endpoints"]["appmesh_api"].rsplit(":", 1)[1])
        envoys = sorted(c["pid"] for p in t.pods() if p["proxy"] for c in p["containers"] if c["name"] == "envoy")
        daemon = st["daemon"]["pid"]
        os.kill(daemon, signal.SIGKILL)
        deadline = time.time() + 10
        while pid_alive(daemon) and time.time() < deadline:
            time.sleep(0.05)
        socks = t.client.sockets
        squatter = as_other(SQUAT, old_api, str(socks.xds), str(socks.api), 120, background=True)
        assert squatter.stdout.readline().strip() == "ready", squatter.stderr.read()
        try:
            t.up()
            st = t.status()
            new_api = int(st["endpoints"]["appmesh_api"].rsplit(":", 1)[1])
            assert new_api != old_api and st["daemon"]["pid"] != daemon
            assert f"127.0.0.1:{new_api}" in (t.client.paths.aws / "config").read_text()
            t.apply_text(m.text(m.gateway_route("after-crash", "appmesh-demo", {"prefix": "/after"},
                                                "product-service")), wait=True)

            def connected():
                proxies = t.status()["proxies"]
                assert len(proxies) == 3 and all(p["connected"] for p in proxies), proxies
                assert t.curl("/after", quiet=True).status == 200
            t.eventually(connected, timeout=30, what="the orphaned Envoys on the new daemon")
            now = sorted(c["pid"] for p in t.pods() if p["proxy"] for c in p["containers"] if c["name"] == "envoy")
            assert now == envoys  # the same Envoy processes: they reconnected, nothing restarted them
        finally:
            out, err = squatter.communicate("stop\n", timeout=30)
        res = json.loads(out.strip().splitlines()[-1])
        assert res["bound"] and res["received"] == [], res
        assert set(res["unix"].values()) == {"PermissionError"}, res
    finally:
        stop_lab(t, parent)


def test_the_control_socket_answers_its_owner_only_even_with_its_mode_opened(as_other):
    """A third line behind the folder and the socket's mode: the daemon's control server checks the
    peer's user id (SO_PEERCRED) and closes on anyone else without a word."""
    import shutil
    import threading

    from lab.runtime.listeners import control_server
    from lab.runtime.sockets import unix_request
    d = reachable_parent()
    srv = control_server(d / "api.sock", lambda *a: (200, {"ok": True}), 1024)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        os.chmod(d / "api.sock", 0o666)
        assert unix_request(d / "api.sock", "GET", "/v1/status")[0] == 200
        # it connects (the mode lets it), and is closed on before any answer
        answer = as_other(CONNECT, str(d / "api.sock"))[str(d / "api.sock")]
        assert answer in ("connected: ", "BrokenPipeError", "ConnectionResetError"), answer
    finally:
        srv.shutdown()
        srv.server_close()
        shutil.rmtree(d)
