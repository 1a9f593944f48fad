"""A gateway's kept listener port held by another process when the lab comes up again (real
Envoy, a real socket holding the port): no resource is blamed, the lab does not push in a loop,
`up` says what happened instead of waiting for it, and the gateway is served once the port is free.
"""
from __future__ import annotations

import socket
import time
from urllib.parse import quote

import pytest
import yaml

from lab.migrate import export
from lab.model.gatewayapi import CONTROLLER_NAME
from tests.integration.conftest import Http
from tests.migrate.test_gatewayapi_envoy import _resources

from .walkthrough import WALKTHROUGH, envoy_or_skip

pytestmark = pytest.mark.envoy

GATEWAY_CLASS = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
                 "metadata": {"name": "my-gateway-class"}, "spec": {"controllerName": CONTROLLER_NAME}}


def _gateway_port(t, kind: str) -> tuple:
    """(node id, loopback port) of the first listener of the lab's gateway of `kind` (virtualGateway, gateway)."""
    g = next(g for g in t.status()["gateways"] if f"/{kind}/" in g["node_id"])
    return g["node_id"], int(next(iter(g["listeners"].values())).rsplit(":", 1)[1])


def _proxy(t, nid: str) -> dict:
    return next(p for p in t.status()["proxies"] if p["node_id"] == nid)


def _pushes(t, nid: str) -> int:
    """The lab's push counter at the proxy's latest push (versions are <start>-<n>)."""
    push = _proxy(t, nid)["push"]
    return int(push["version"].rsplit("-", 1)[1]) if push else 0


def _wait(predicate, timeout: float, what: str):
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.time() < deadline, what
        time.sleep(0.1)


def test_a_gateway_port_held_by_another_process_blames_no_resource_and_is_retried_once_free(tmp_path):
    envoy_or_skip()
    from lab.targets.local import LocalTarget
    gateway_docs = [o.body for o in export(_resources("walkthrough")).objects]
    gw_doc = next(d for d in gateway_docs if d["kind"] == "Gateway")
    gw_ns, gw_name = gw_doc["metadata"]["namespace"], gw_doc["metadata"]["name"]
    t = LocalTarget(home=str(tmp_path / "lab"), echo=False)
    holder = None
    try:
        t.up()
        t.apply(WALKTHROUGH)
        t.apply_text(yaml.safe_dump_all([GATEWAY_CLASS] + gateway_docs, sort_keys=False), name="<export>")
        gw_node, port = _gateway_port(t, "gateway")
        _wait(lambda: Http("127.0.0.1", port).get("/products").status == 200, 30, "the Gateway serves /products")
        t.down()

        holder = socket.socket()
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", port))
        holder.listen(1)

        info = t.client.up()
        # `up` does not wait for a port no waiting frees: it says which port and proxy
        said = [w for w in info["waiting"] if f"127.0.0.1:{port}" in w]
        assert said and gw_node in said[0] and "ss -ltnp" in said[0], info["waiting"]
        assert _gateway_port(t, "gateway") == (gw_node, port)  # the kept port, as stored

        # no tight re-push loop: over four seconds with the port held, a handful of pushes at most
        before = _pushes(t, gw_node)
        time.sleep(4)
        assert _pushes(t, gw_node) - before <= 3, (before, _pushes(t, gw_node))
        conflict = _proxy(t, gw_node)["port_conflict"]
        assert conflict["port"] == port and conflict["address"] == f"127.0.0.1:{port}"

        # applying the walkthrough again blames nothing, and the virtual gateway serves
        t.apply(WALKTHROUGH)
        for kind in ("VirtualNode", "VirtualService", "VirtualRouter", "GatewayRoute", "VirtualGateway"):
            for item in t.client.call("GET", f"/v1/resources?kind={kind}")["items"]:
                for cond in (item.get("status") or {}).get("conditions") or []:
                    assert cond.get("reason") != "ConfigRejected", (kind, item["name"], cond)
        _, vg_port = _gateway_port(t, "virtualGateway")
        _wait(lambda: Http("127.0.0.1", vg_port).get("/products").status == 200, 30,
              "the virtual gateway serves /products")

        # where the user looks: one PortInUse event on the Gateway (not one per NACK), its status
        q = f"kind=Gateway&namespace={quote(gw_ns)}&name={quote(gw_name)}"
        events = t.client.call("GET", f"/v1/events?{q}")["events"]
        in_use = [e for e in events if e["reason"] == "PortInUse"]
        assert len(in_use) == 1 and str(port) in in_use[0]["message"], events
        assert not [e for e in events if e["reason"] == "ConfigRejected"], events
        gw = next(i for i in t.client.call("GET", f"/v1/resources?kind=Gateway&namespace={quote(gw_ns)}")["items"]
                  if i["name"] == gw_name)
        programmed = next(c for c in gw["status"]["conditions"] if c["type"] == "Programmed")
        assert programmed["status"] == "False" and f"127.0.0.1:{port}" in programmed["message"], programmed

        # the port freed: the same configuration is pushed again and the Gateway serves
        holder.close()
        holder = None
        _wait(lambda: Http("127.0.0.1", port).get("/products").status == 200 if _proxy(t, gw_node)["push"]["acked"]
              else False, 40, "the Gateway serves /products once its port is free")
        assert _proxy(t, gw_node)["port_conflict"] is None
    finally:
        if holder is not None:
            holder.close()
        t.down()
