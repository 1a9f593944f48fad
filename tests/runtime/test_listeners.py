"""The daemon's listeners refuse what a web page could send and bodies they cannot read whole
(lab/runtime/listeners.py, lab/runtime/httpjson.py), before anything reaches the API behind them."""
import json
import socket
import tempfile
import threading
from pathlib import Path

import pytest

from lab.runtime.httpjson import MAX_BODY, loopback_host
from lab.runtime.listeners import appmesh_api_server, control_server
from lab.runtime.sockets import private_dir, unix_request


@pytest.fixture
def api():
    calls = []

    def handle(method, path, query, raw, headers):
        calls.append((method, path, raw))
        return 200, {"ok": True}, {}
    srv = appmesh_api_server(0, handle)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1], calls
    srv.shutdown()
    srv.server_close()


def _raw(port: int, data: bytes, half_close: bool = True) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


@pytest.mark.parametrize("host, ok", [
    ("127.0.0.1:8080", True), ("localhost", True), ("LOCALHOST:1", True), ("[::1]:80", True), ("[::1]", True),
    ("evil.example", False), ("127.0.0.1.evil.example", False), ("localhost:80@evil", False), ("127.0.0.2", False),
    ("", False), ("localhost:", False), ("[::1]x", False), ("0.0.0.0:80", False)])
def test_loopback_host_names(host, ok):
    assert loopback_host(host) is ok


def test_the_api_answers_a_plain_loopback_request(api):
    port, calls = api
    answer = _raw(port, f"GET /v20190125/meshes HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
    assert _status(answer) == 200 and calls == [("GET", "/v20190125/meshes", b"")]


@pytest.mark.parametrize("headers, what", [
    ("Host: evil.example:{port}\r\nContent-Type: text/plain\r\n", "Host header"),
    ("Host: 127.0.0.1:{port}\r\nOrigin: http://evil.example\r\nContent-Type: text/plain\r\n", "Origin"),
    ("Host: 127.0.0.1:{port}\r\nOrigin: null\r\n", "Origin"),
    ("Host: 127.0.0.1:{port}\r\nSec-Fetch-Site: cross-site\r\n", "Sec-Fetch-Site"),
    ("", "Host header"),
    ("Host: 127.0.0.1:{port}\r\nHost: evil.example\r\n", "Host header"),
])
def test_requests_a_web_page_could_send_are_refused_and_never_handled(api, headers, what):
    port, calls = api
    body = b'{"meshName": "x"}'
    req = (f"PUT /v20190125/meshes HTTP/1.1\r\n{headers.format(port=port)}Content-Length: {len(body)}\r\n"
           "Connection: close\r\n\r\n").encode() + body
    answer = _raw(port, req)
    assert _status(answer) == 403, answer[:300]
    assert what.encode() in answer and b"ForbiddenException" in answer
    assert calls == []


def test_a_body_over_3_mib_is_refused(api):
    port, calls = api
    answer = _raw(port, (f"PUT /v20190125/meshes HTTP/1.1\r\nHost: localhost:{port}\r\nContent-Length: {MAX_BODY + 1}"
                         "\r\n\r\n").encode() + b"x" * (MAX_BODY + 1))
    assert _status(answer) == 413 and b"at most 3145728 bytes" in answer and calls == []
    # one far larger is refused at once, before its body comes
    answer = _raw(port, (f"PUT /v20190125/meshes HTTP/1.1\r\nHost: localhost:{port}\r\nContent-Length: {1 << 40}"
                         "\r\n\r\n").encode(), half_close=False)
    assert _status(answer) == 413 and calls == []


def test_a_body_shorter_than_its_content_length_does_nothing(api):
    port, calls = api
    answer = _raw(port, (f"PUT /v20190125/meshes HTTP/1.1\r\nHost: localhost:{port}\r\nContent-Length: 100"
                         "\r\n\r\n").encode() + b'{"meshName": "x"}')
    assert _status(answer) == 400 and b"ended after 17 of the 100 bytes" in answer and calls == []


@pytest.mark.parametrize("extra, code", [("Transfer-Encoding: chunked\r\n", 411), ("Content-Length: 12x\r\n", 400),
                                         ("Content-Length: 5\r\nContent-Length: 6\r\n", 400)])
def test_unreadable_lengths_are_refused(api, extra, code):
    port, calls = api
    answer = _raw(port, f"PUT /v20190125/meshes HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n".encode())
    assert _status(answer) == code and calls == []


def test_the_api_listener_serves_the_app_mesh_api_only(api):
    port, calls = api
    for path in ("/v1/status", "/v1/apply", "/"):
        answer = _raw(port, f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        assert _status(answer) == 404 and b"App Mesh API" in answer
    assert calls == []


def test_the_control_socket_refuses_origin_and_short_bodies_too():
    seen = []

    def route(method, path, q, body):
        seen.append((method, path, body))
        return 200, {"ok": True}
    d = private_dir(Path(tempfile.mkdtemp(prefix="c", dir="/tmp")))
    srv = control_server(d / "api.sock", route, 1024)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        assert unix_request(d / "api.sock", "GET", "/v1/status")[0] == 200
        assert unix_request(d / "api.sock", "GET", "/v1/status", headers={"Host": "lab"})[0] == 200  # curl's
        code, _, body = unix_request(d / "api.sock", "POST", "/v1/apply", b"{}", {"Origin": "http://evil.example"})
        assert code == 403 and "web pages" in json.loads(body)["error"]
        code, _, body = unix_request(d / "api.sock", "POST", "/v1/apply", b"x" * 2000)
        assert code == 413
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(d / "api.sock"))
            s.sendall(b"POST /v1/apply HTTP/1.1\r\nContent-Length: 50\r\n\r\n{}")
            s.shutdown(socket.SHUT_WR)
            answer = s.recv(65536)
        assert _status(answer) == 400
        assert seen == [("GET", "/v1/status", {})] * 2
    finally:
        srv.shutdown()
        srv.server_close()
        import shutil
        shutil.rmtree(d)


def test_the_control_socket_says_when_an_answer_is_written():
    """`answered(method, path)` follows the writing of each answer (the daemon runs an apply's
    status pass after it), refused requests included."""
    events = []
    written = threading.Event()

    def route(method, path, q, body):
        events.append(("route", path))
        return 200, {"ok": True}

    def answered(method, path):
        events.append(("answered", path))
        written.set()
    d = private_dir(Path(tempfile.mkdtemp(prefix="c", dir="/tmp")))
    srv = control_server(d / "api.sock", route, 1024, answered=answered)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        code, _, body = unix_request(d / "api.sock", "POST", "/v1/apply", b"{}")
        assert code == 200 and json.loads(body) == {"ok": True}
        assert written.wait(5)
        assert events == [("route", "/v1/apply"), ("answered", "/v1/apply")]
        written.clear()
        assert unix_request(d / "api.sock", "POST", "/v1/apply", b"{}", {"Origin": "http://evil.example"})[0] == 403
        assert written.wait(5) and events[-1] == ("answered", "/v1/apply")
    finally:
        srv.shutdown()
        srv.server_close()
        import shutil
        shutil.rmtree(d)
