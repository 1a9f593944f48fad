"""A sidecar's outbound listener in a mesh whose egressFilter is ALLOW_ALL: declared backends are
matched by host name whatever port the Host header carries, and a destination outside the mesh is
reached at the host *and port* the app dialled (not port 80) — real Envoy, real sample apps, and a
plain HTTP server on 127.0.0.1 standing for "outside the mesh".
"""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lab.bench import manifests as m

from .conftest import start_lab

pytestmark = pytest.mark.envoy

NS = "it-egress"


class _Outside(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"outside": True, "host": self.headers.get("Host"), "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        return


@pytest.fixture(scope="module")
def outside():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Outside)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    docs = [m.namespace(NS), m.mesh(NS, egress="ALLOW_ALL"), *m.gateway("gateway", NS),
            m.virtual_node("caller", NS, backends=["callee"]), m.app("caller", NS),
            m.virtual_node("callee", NS), m.app("callee", NS),
            m.virtual_service("caller", NS, node="caller"), m.virtual_service("callee", NS, node="callee"),
            m.gateway_route("caller", NS, {"prefix": "/"}, "caller")]
    with start_lab(tmp_path_factory, NS, docs, ready=["/"]) as lab:
        yield lab


def test_a_declared_backend_matches_with_the_port_in_the_host_header(lab):
    r = lab.wait_for(f"/call/{m.vs_host('callee', NS)}:8080/hello")
    called = r.json()["called"]
    assert called["status"] == 200, called
    assert called["body"]["service"] == "callee"
    assert called["body"]["request"]["path"] == "/hello"


def test_an_undeclared_destination_is_reached_at_the_port_the_app_dialled(lab, outside):
    r = lab.wait_for(f"/call/127.0.0.1:{outside}/out/there")
    called = r.json()["called"]
    assert called["status"] == 200, called
    assert called["body"] == {"outside": True, "host": f"127.0.0.1:{outside}", "path": "/out/there"}
