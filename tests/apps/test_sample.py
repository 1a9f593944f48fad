"""The sample application, run as a real process (`python -m lab.apps.sample`) on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lab.apps import ENVOY_IMAGE, SAMPLE_IMAGE, websocket
from lab.apps.sample import ConfigError, Settings, should_fail

_LISTENING = re.compile(r" listening on 127\.0\.0\.1:(\d+)")
REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 15.0


class SampleApp:
    """One running sample app: its port, its stdout lines, and a way to stop it."""

    def __init__(self, env: dict[str, str]):
        full_env = {k: v for k, v in os.environ.items() if k not in _APP_VARS}
        full_env.update({"HOST": "127.0.0.1", "PORT": "0", "PYTHONUNBUFFERED": "1"})
        full_env.update(env)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lab.apps.sample"],
            cwd=REPO,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._ready = threading.Event()
        self.port = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(START_TIMEOUT_S) or not self.port:
            self.stop()
            raise AssertionError(
                f"sample app did not start within {START_TIMEOUT_S}s; output:\n" + "".join(self.lines)
            )

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            found = _LISTENING.search(line)
            if found and not self.port:
                self.port = int(found.group(1))
                self._ready.set()
        self._ready.set()  # process ended: unblock the waiter

    def request(self, method: str = "GET", path: str = "/", headers=None, body=None, timeout=10):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp, data
        finally:
            conn.close()

    def get_json(self, path: str = "/", headers=None):
        resp, data = self.request("GET", path, headers=headers)
        return resp.status, json.loads(data)

    def output(self) -> str:
        return "".join(self.lines)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        finally:
            if self.proc.stdout:
                self.proc.stdout.close()


_APP_VARS = {
    "PORT", "HOST", "SERVICE_NAME", "VERSION", "POD_NAME", "MESSAGE", "LATENCY_MS",
    "ERROR_RATE", "ERROR_CODE", "EGRESS_PROXY", "CALL_TIMEOUT_MS",
}


@pytest.fixture
def start_app():
    """Start sample apps with the given env; every one is killed at teardown."""
    apps: list[SampleApp] = []

    def start(**env: str) -> SampleApp:
        app = SampleApp({k: str(v) for k, v in env.items()})
        apps.append(app)
        return app

    yield start
    for app in apps:
        app.stop()


class RecordingForwardProxy:
    """Stands in for the sidecar's outbound listener: records the Host header of each request
    and forwards it, Host unchanged, to one fixed upstream (as Envoy would after routing)."""

    def __init__(self, upstream_port: int):
        self.hosts: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                proxy.hosts.append(self.headers.get("Host", ""))
                conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=10)
                try:
                    conn.request("GET", self.path, headers={"Host": self.headers["Host"]})
                    resp = conn.getresponse()
                    body = resp.read()
                finally:
                    conn.close()
                self.send_response(resp.status)
                self.send_header("Content-Type", resp.getheader("Content-Type", "text/plain"))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def forward_proxy():
    proxies: list[RecordingForwardProxy] = []

    def make(upstream_port: int) -> RecordingForwardProxy:
        p = RecordingForwardProxy(upstream_port)
        proxies.append(p)
        return p

    yield make
    for p in proxies:
        p.close()


# -- constants ------------------------------------------------------------------------------


def test_image_names_are_the_kits():
    assert SAMPLE_IMAGE == "appmesh-lab/sample-app:0.1.0"
    assert ENVOY_IMAGE == "envoyproxy/envoy:v1.40.0"


# -- the echo -------------------------------------------------------------------------------


def test_echo_reports_who_answered_and_the_request_it_saw(start_app):
    app = start_app(SERVICE_NAME="product-service", VERSION="v2", POD_NAME="product-7d9f-abc12",
                    MESSAGE="Hello from Product Service!")
    resp, data = app.request(
        "GET",
        "/red/tell?color=red&color=blue&empty=",
        headers={"Host": "product-service.appmesh-demo.svc.cluster.local", "X-Canary": "true"},
    )
    assert resp.status == 200
    assert resp.getheader("Content-Type") == "application/json"
    assert int(resp.getheader("Content-Length")) == len(data)
    doc = json.loads(data)
    assert doc["service"] == "product-service"
    assert doc["version"] == "v2"
    assert doc["pod"] == "product-7d9f-abc12"
    assert doc["message"] == "Hello from Product Service!"
    req = doc["request"]
    assert req["method"] == "GET"
    assert req["path"] == "/red/tell?color=red&color=blue&empty="
    assert req["query"] == {"color": ["red", "blue"], "empty": [""]}
    assert req["host"] == "product-service.appmesh-demo.svc.cluster.local"
    assert req["headers"]["x-canary"] == "true"
    assert req["headers"]["host"] == "product-service.appmesh-demo.svc.cluster.local"


def test_echo_answers_any_method_and_reads_the_body_so_keep_alive_works(start_app):
    app = start_app(SERVICE_NAME="orders")
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=10)
    try:
        for method, body in [("POST", b'{"item": 1}'), ("DELETE", None), ("PURGE", b"x" * 1000)]:
            conn.request(method, "/orders/7", body=body)
            resp = conn.getresponse()
            doc = json.loads(resp.read())
            assert resp.status == 200
            assert doc["request"]["method"] == method
            assert doc["request"]["body_bytes"] == len(body or b"")
            assert not resp.will_close
        # a chunked body on the same connection
        conn.putrequest("PUT", "/chunked")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        conn.send(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        resp = conn.getresponse()
        assert json.loads(resp.read())["request"]["body_bytes"] == 11
        conn.request("HEAD", "/anything")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == b""
        assert int(resp.getheader("Content-Length")) > 0
    finally:
        conn.close()


def test_text_plain_gives_one_human_line(start_app):
    app = start_app(SERVICE_NAME="product-service", VERSION="v1", POD_NAME="product-service-7d9f-abc12")
    resp, data = app.request("GET", "/red", headers={"Accept": "text/plain"})
    assert resp.status == 200
    assert resp.getheader("Content-Type").startswith("text/plain")
    assert data.decode() == "product-service v1 (pod product-service-7d9f-abc12) got GET /red\n"


def test_message_is_null_when_not_set_and_pod_defaults_to_the_host_name(start_app):
    app = start_app()
    status, doc = app.get_json("/")
    assert status == 200
    assert doc["service"] == "sample" and doc["version"] == "v1"
    assert doc["message"] is None
    assert doc["pod"]  # the machine's host name


def test_ping_is_never_delayed_or_failed(start_app):
    app = start_app(LATENCY_MS="1200", ERROR_RATE="1")
    for _ in range(3):
        started = time.monotonic()
        resp, data = app.request("GET", "/ping")
        assert resp.status == 200 and data == b"pong"
        assert time.monotonic() - started < 0.9
    resp, _ = app.request("GET", "/other", timeout=10)
    assert resp.status == 503


def test_latency_ms_delays_every_other_path(start_app):
    app = start_app(LATENCY_MS="300")
    started = time.monotonic()
    resp, _ = app.request("GET", "/slow")
    assert resp.status == 200
    assert time.monotonic() - started >= 0.3


def test_a_client_that_gives_up_is_logged_not_a_crash(start_app):
    app = start_app(LATENCY_MS="600")
    with pytest.raises(OSError):  # socket.timeout is an OSError
        app.request("GET", "/slow", timeout=0.1)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any('"GET /slow ' in l for l in app.lines):
        time.sleep(0.05)
    time.sleep(0.2)
    line = next(l for l in app.lines if '"GET /slow ' in l)
    assert " 499 " in line or " 200 " in line  # 200 if the reset arrived after the write
    assert "Traceback" not in app.output()
    assert app.request("GET", "/ping")[0].status == 200


def test_error_rate_half_fails_exactly_every_second_request(start_app):
    app = start_app(ERROR_RATE="0.5", SERVICE_NAME="payments")
    statuses = [app.request("GET", f"/charge/{i}")[0].status for i in range(20)]
    assert statuses.count(503) == 10
    assert statuses == [200, 503] * 10
    resp, data = app.request("GET", "/charge/x")  # request #21 succeeds, #22 fails
    resp, data = app.request("GET", "/charge/y")
    doc = json.loads(data)
    assert resp.status == 503
    assert doc["service"] == "payments" and "injected failure" in doc["error"]


def test_error_code_sets_the_injected_status(start_app):
    app = start_app(ERROR_RATE="1", ERROR_CODE="500")
    assert [app.request("GET", "/")[0].status for _ in range(3)] == [500, 500, 500]


@pytest.mark.parametrize("rate", ["0", "0.1", "0.25", "0.29", "0.5", "0.75", "1"])
def test_should_fail_gives_exactly_floor_n_times_rate_failures(rate):
    r = Fraction(rate)
    for n in (1, 7, 20, 100):
        assert sum(should_fail(i, r) for i in range(1, n + 1)) == int(n * r)


def test_bad_configuration_is_a_clear_error():
    with pytest.raises(ConfigError, match="ERROR_RATE"):
        Settings.from_env({"ERROR_RATE": "1.5"})
    with pytest.raises(ConfigError, match="EGRESS_PROXY"):
        Settings.from_env({"EGRESS_PROXY": "localhost"})
    with pytest.raises(ConfigError, match="PORT"):
        Settings.from_env({"PORT": "http"})


def test_bad_configuration_exits_2_with_a_message():
    env = {**os.environ, "ERROR_RATE": "lots"}
    done = subprocess.run([sys.executable, "-m", "lab.apps.sample"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "ERROR_RATE" in done.stderr


# -- /call ----------------------------------------------------------------------------------


def test_call_reaches_another_instance_directly(start_app):
    review = start_app(SERVICE_NAME="review-service", VERSION="v2")
    product = start_app(SERVICE_NAME="product-service")
    status, doc = product.get_json(
        f"/call/127.0.0.1:{review.port}/reviews/1?sort=new", headers={"x-request-id": "abc-123"}
    )
    assert status == 200
    assert doc["service"] == "product-service"
    called = doc["called"]
    assert called["host"] == f"127.0.0.1:{review.port}"
    assert called["path"] == "/reviews/1?sort=new"
    assert called["status"] == 200
    assert called["body"]["service"] == "review-service"
    assert called["body"]["version"] == "v2"
    assert called["body"]["request"]["path"] == "/reviews/1?sort=new"
    assert called["body"]["request"]["host"] == f"127.0.0.1:{review.port}"
    assert called["body"]["request"]["headers"]["x-request-id"] == "abc-123"


def test_call_goes_through_the_egress_proxy_with_the_service_as_host(start_app, forward_proxy):
    review = start_app(SERVICE_NAME="review-service", VERSION="v1")
    sidecar = forward_proxy(review.port)
    product = start_app(SERVICE_NAME="product-service", EGRESS_PROXY=f"127.0.0.1:{sidecar.port}")
    vs = "review-service.appmesh-demo.svc.cluster.local"

    status, doc = product.get_json(f"/call/{vs}:8080/reviews")
    assert status == 200
    assert doc["service"] == "product-service"
    assert doc["called"]["via"] == f"egress proxy 127.0.0.1:{sidecar.port}"
    assert sidecar.hosts == [f"{vs}:8080"]
    assert doc["called"]["body"]["service"] == "review-service"
    assert doc["called"]["body"]["request"]["host"] == f"{vs}:8080"
    assert doc["called"]["body"]["request"]["path"] == "/reviews"

    status, doc = product.get_json("/call/review-service")  # no port, no path
    assert status == 200
    assert sidecar.hosts[-1] == "review-service"
    assert doc["called"]["path"] == "/"
    assert doc["called"]["body"]["request"]["host"] == "review-service"


def test_call_relays_the_callees_status_and_text(start_app):
    flaky = start_app(ERROR_RATE="1", ERROR_CODE="500")
    caller = start_app()
    status, doc = caller.get_json(f"/call/127.0.0.1:{flaky.port}/x")
    assert status == 200
    assert doc["called"]["status"] == 500
    assert "injected failure" in doc["called"]["body"]["error"]


def test_call_to_an_unreachable_service_is_502_with_json(start_app):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    caller = start_app(CALL_TIMEOUT_MS="3000")
    resp, data = caller.request("GET", f"/call/127.0.0.1:{dead_port}/x")
    assert resp.status == 502
    doc = json.loads(data)
    assert doc["called"]["host"] == f"127.0.0.1:{dead_port}"
    assert "failed" in doc["error"]


# -- logs and shutdown ----------------------------------------------------------------------


def test_one_log_line_per_request(start_app):
    app = start_app()
    for path in ("/a", "/b", "/ping"):
        app.request("GET", path)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        request_lines = [l for l in app.lines if '"GET /' in l]
        if len(request_lines) >= 3:
            break
        time.sleep(0.05)
    assert ['"GET /a ' in l for l in request_lines].count(True) == 1
    assert ['"GET /b ' in l for l in request_lines].count(True) == 1
    assert len(request_lines) == 3


def test_sigterm_exits_cleanly_even_with_an_idle_keep_alive_connection(start_app):
    app = start_app()
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=10)
    conn.request("GET", "/hold")
    conn.getresponse().read()  # the connection stays open, idle
    try:
        app.proc.send_signal(signal.SIGTERM)
        assert app.proc.wait(timeout=10) == 0
    finally:
        conn.close()
    assert "stopped" in app.output()


def _upgrade(port: int, method: str = "GET", key: str | None = None) -> tuple[socket.socket, object, list]:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    key_line = f"Sec-WebSocket-Key: {key}\r\n" if key else ""
    s.sendall(f"{method} /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{key_line}"
              "Content-Length: 0\r\n\r\n".encode())
    rfile = s.makefile("rb")
    head = []
    while (line := rfile.readline()) not in (b"\r\n", b""):
        head.append(line.decode().strip())
    return s, rfile, head


def test_websocket_answers_text_with_who_got_it_binary_with_itself_and_ping_with_pong(start_app):
    app = start_app(SERVICE_NAME="chat", VERSION="v2", POD_NAME="chat-1")
    key = websocket.new_key()
    s, rfile, head = _upgrade(app.port, key=key)
    with s:
        assert head[0] == "HTTP/1.1 101 Switching Protocols", head
        assert f"Sec-WebSocket-Accept: {websocket.accept_for(key)}" in head, head
        s.sendall(websocket.encode(b"hi", mask=True))
        assert websocket.read(rfile) == (websocket.TEXT, b"chat v2 (pod chat-1) got hi")
        big = bytes(range(256)) * 300  # past the 16-bit length form
        s.sendall(websocket.encode(big, websocket.BINARY, mask=True))
        assert websocket.read(rfile) == (websocket.BINARY, big)
        s.sendall(websocket.encode(b"p", websocket.PING, mask=True))
        assert websocket.read(rfile) == (websocket.PONG, b"p")
        s.sendall(websocket.encode(b"\x03\xe8", websocket.CLOSE, mask=True))
        assert websocket.read(rfile) == (websocket.CLOSE, b"\x03\xe8")
        assert rfile.read() == b""  # the server closed the connection after the close frame
    # the RFC's own example (RFC 6455 section 1.3)
    assert websocket.accept_for("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_an_upgrade_that_is_not_a_get_with_a_key_is_a_400(start_app):
    app = start_app()
    for method, key in (("POST", websocket.new_key()), ("GET", None)):
        s, rfile, head = _upgrade(app.port, method=method, key=key)
        with s:
            assert head[0].startswith("HTTP/1.1 400"), (method, key, head)
