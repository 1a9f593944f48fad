"""The lab's Gateway API translation of HTTPS listeners and listener hostnames (pure: IR and
Envoy resources; served on real Envoy in test_gatewayapi_envoy.py)."""
import pytest

from lab.model import World
from lab.model.resources import Resource
from lab.translate import Placement, gatewayapi, to_envoy

PEM = (b"-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n",
       b"-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n")


def res(kind, name, ns, spec, api="gateway.networking.k8s.io/v1"):
    body = {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": ns}, "spec": spec}
    return Resource(api, kind, name, ns, {}, {}, spec, None, body)


def gateway(*listeners):
    return res("Gateway", "gw", "ns", {"gatewayClassName": "x", "listeners": list(listeners)})


def https(name="https", port=443, hostname=None, refs=({"name": "tls"},), mode="Terminate"):
    out = {"name": name, "port": port, "protocol": "HTTPS", "tls": {"mode": mode, "certificateRefs": list(refs)}}
    if hostname:
        out["hostname"] = hostname
    return out


def problems(*objs):
    world = World(list(objs))
    return [(p, m) for p, m, _ in gatewayapi.listener_problems(world, world.by_kind["Gateway"][0])]


def test_a_usable_tls_secret_gives_an_https_listener_whose_files_name_the_secret():
    gw = gateway(https(hostname="shop.example.com"))
    world = World([gw, gatewayapi.tls_secret("ns", "tls", *PEM)])
    ir = gatewayapi.gateway_ir(world, gw, Placement())
    (lst,) = ir["listeners"]
    assert lst["tls"] == {"mode": "STRICT", "certificate_chain": "secret:ns/tls/tls.crt",
                          "private_key": "secret:ns/tls/tls.key"}
    assert lst["server_names"] == ["shop.example.com"]
    envoy = to_envoy(ir, {"secret:ns/tls/tls.key": "/private/tls.key", "secret:ns/tls/tls.crt": "/private/tls.crt"})
    (chain,) = envoy["listeners"][0]["filter_chains"]
    assert chain["filter_chain_match"] == {"server_names": ["shop.example.com"]}
    certs = chain["transport_socket"]["typed_config"]["common_tls_context"]["tls_certificates"]
    assert certs == [{"certificate_chain": {"filename": "/private/tls.crt"},
                      "private_key": {"filename": "/private/tls.key"}}]
    assert "PRIVATE KEY" not in str(envoy)


@pytest.mark.parametrize("objs,path,words", [
    ([gateway(https())], "spec.listeners[0].tls.certificateRefs[0]", "does not exist"),
    ([gateway(https()), res("Secret", "tls", "ns", {}, "v1")], "spec.listeners[0].tls.certificateRefs[0]",
     "not a TLS Secret"),
    ([gateway(https(refs=({"name": "tls", "namespace": "certs"},))), gatewayapi.tls_secret("certs", "tls", *PEM)],
     "spec.listeners[0].tls.certificateRefs[0]", "no ReferenceGrant"),
    ([gateway(https(mode="Passthrough"))], "spec.listeners[0].tls.mode", "TLSRoute"),
    ([gateway(https(refs=()))], "spec.listeners[0].tls.certificateRefs", "without a certificate"),
    ([gateway({"name": "tcp", "port": 9, "protocol": "TCP"})], "spec.listeners[0].protocol", "TCP listeners"),
])
def test_what_keeps_a_listener_from_being_served_is_said(objs, path, words):
    (found,) = problems(*objs)
    assert found[0] == path and words in found[1], found
    world = World(objs)
    assert gatewayapi.gateway_ir(world, world.by_kind["Gateway"][0], Placement())["listeners"] == []


def test_a_reference_grant_lets_a_gateway_use_a_secret_of_another_namespace():
    grant = res("ReferenceGrant", "gw-certs", "certs", {
        "from": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "ns"}],
        "to": [{"group": "", "kind": "Secret"}]}, "gateway.networking.k8s.io/v1beta1")
    objs = [gateway(https(refs=({"name": "tls", "namespace": "certs"},))), gatewayapi.tls_secret("certs", "tls", *PEM),
            grant]
    assert problems(*objs) == []


@pytest.mark.parametrize("listener,route,want", [
    (None, [], []), (None, ["a.example.com"], ["a.example.com"]),
    ("a.example.com", [], ["a.example.com"]),
    ("*.example.com", ["a.example.com", "other.org"], ["a.example.com"]),
    ("a.example.com", ["*.example.com"], ["a.example.com"]),
    ("*.example.com", ["*.example.com"], ["*.example.com"]),
    ("a.example.com", ["b.example.com"], None),
    ("*.example.com", ["example.com"], None),  # a wildcard needs one label at least
])
def test_listener_and_route_hostnames_intersect(listener, route, want):
    lst = {"name": "l", "port": 80, "protocol": "HTTP", **({"hostname": listener} if listener else {})}
    r = res("HTTPRoute", "r", "ns", {"hostnames": route})
    assert gatewayapi.effective_hostnames(lst, r) == want


def test_the_running_lab_serves_the_listener_protocols_its_status_says_it_serves():
    """The daemon maps the Secrets' files only once HTTPS is among gwrefs.SERVED_PROTOCOLS; until
    then an HTTPS listener of a live Gateway is left out (status: UnsupportedProtocol), not sent to
    Envoy with file names it cannot open."""
    from lab.model import gatewayapi_refs as gwrefs
    from lab.model.gatewayapi import CONTROLLER_NAME
    gw = gateway(https(), {"name": "http", "port": 80, "protocol": "HTTP"})
    cls = res("GatewayClass", "x", None, {"controllerName": CONTROLLER_NAME})
    world = World([gw, cls, gatewayapi.tls_secret("ns", "tls", *PEM)])
    live = gatewayapi.lab_gateway_ir(world, gw, Placement())
    served = {lst["port"] for lst in live["listeners"]}
    assert served == ({80, 443} if "HTTPS" in gwrefs.SERVED_PROTOCOLS else {80})
    assert {lst["port"] for lst in gatewayapi.gateway_ir(world, gw, Placement())["listeners"]} == {80, 443}


@pytest.mark.parametrize("objs,reason", [
    ([], "InvalidCertificateRef"),
    ([res("Secret", "tls", "ns", {}, "v1")], "InvalidCertificateRef"),
    ([gatewayapi.tls_secret("ns", "tls", *PEM)], "ResolvedRefs"),
])
def test_an_https_listener_s_resolved_refs_condition_says_whether_its_certificate_can_be_used(objs, reason):
    from lab.translate.gatewayapi_status import status_of
    gw = gateway(https())
    st = status_of(World([gw] + objs), gw, 1, None, None)
    (cond,) = [c for c in st["listeners"][0]["conditions"] if c["type"] == "ResolvedRefs"]
    assert cond["reason"] == reason and cond["status"] == ("True" if reason == "ResolvedRefs" else "False"), cond


def test_a_secret_of_another_namespace_without_a_grant_is_ref_not_permitted():
    from lab.translate.gatewayapi_status import status_of
    gw = gateway(https(refs=({"name": "tls", "namespace": "certs"},)))
    st = status_of(World([gw, gatewayapi.tls_secret("certs", "tls", *PEM)]), gw, 1, None, None)
    (cond,) = [c for c in st["listeners"][0]["conditions"] if c["type"] == "ResolvedRefs"]
    assert cond["reason"] == "RefNotPermitted" and "ReferenceGrant" in cond["message"]


# ---- client certificate validation (spec.tls.frontend) -----------------------------------------

def mutual(validation=None, per_port=None):
    gw = gateway(https(), https("other", port=8443))
    gw.spec["tls"] = {"frontend": {"default": {"validation": validation} if validation else {}}}
    if per_port:
        gw.spec["tls"]["frontend"]["perPort"] = per_port
    return gw


CA = {"caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "ca"}]}


def test_frontend_validation_requires_a_client_certificate_of_the_configmap_s_ca():
    gw = mutual(per_port=[{"port": 8443, "tls": {"validation": CA}}])
    objs = [gw, gatewayapi.tls_secret("ns", "tls", *PEM), gatewayapi.ca_configmap("ns", "ca", PEM[0])]
    assert problems(*objs) == []
    world = World(objs)
    ir = gatewayapi.gateway_ir(world, gw, Placement())
    by_port = {lst["port"]: lst["tls"] for lst in ir["listeners"]}
    assert "validation" not in by_port[443]  # the default asks nothing; port 8443's entry asks
    assert by_port[8443]["validation"] == {"trusted_ca": "configmap:ns/ca/ca.crt"}
    envoy = to_envoy(ir, {"configmap:ns/ca/ca.crt": "/private/ca.crt"})
    ctxs = [c["transport_socket"]["typed_config"] for lst in envoy["listeners"] for c in lst["filter_chains"]
            if "transport_socket" in c]
    asking = [c for c in ctxs if c.get("require_client_certificate")]
    assert [c["common_tls_context"]["validation_context"] for c in asking] == \
        [{"trusted_ca": {"filename": "/private/ca.crt"}}]
    # AllowInsecureFallback lets every client in: nothing is required
    gw = mutual(dict(CA, mode="AllowInsecureFallback"))
    world = World([gw, gatewayapi.tls_secret("ns", "tls", *PEM), gatewayapi.ca_configmap("ns", "ca", PEM[0])])
    assert all("validation" not in lst["tls"] for lst in gatewayapi.gateway_ir(world, gw, Placement())["listeners"])


@pytest.mark.parametrize("ca,refs,words,reason", [
    ([], CA, "ConfigMap ns/ca does not exist", "InvalidCACertificateRef"),
    ([res("ConfigMap", "ca", "ns", {}, "v1")], CA, "no PEM certificate under the key ca.crt", "InvalidCACertificateRef"),
    ([gatewayapi.ca_configmap("ns", "ca", PEM[0])], {"caCertificateRefs": [{"group": "", "kind": "Secret", "name": "ca"}]},
     "kind 'Secret'", "InvalidCACertificateRef"),
    ([gatewayapi.ca_configmap("certs", "ca", PEM[0])],
     {"caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "ca", "namespace": "certs"}]},
     "no ReferenceGrant", "RefNotPermitted"),
])
def test_a_ca_reference_that_cannot_be_used_leaves_the_listener_unserved(ca, refs, words, reason):
    from lab.translate.gatewayapi_status import status_of
    gw = mutual(refs)
    objs = [gw, gatewayapi.tls_secret("ns", "tls", *PEM)] + ca
    found = problems(*objs)
    assert found and all(p == "spec.tls.frontend.default.validation.caCertificateRefs[0]" and words in m
                         for p, m in found), found
    world = World(objs)
    assert gatewayapi.gateway_ir(world, gw, Placement())["listeners"] == []  # fail closed
    st = status_of(world, gw, 1, None, None)
    (cond,) = [c for c in st["listeners"][0]["conditions"] if c["type"] == "ResolvedRefs"]
    assert cond["reason"] == reason and cond["status"] == "False"
