"""Scale: 250 gateway routes on one gateway, walked with botocore's paginator, on a lab whose
quotas are lifted (APPMESH_LAB_API_QUOTAS=off), as benchmarks run it."""
import time

import pytest

from tests.api.conftest import make_client, start_lab
from tests.api.support import gr_spec, vg_spec

pytestmark = pytest.mark.envoy

N = 250
HEAD = """
apiVersion: v1
kind: Namespace
metadata: {name: bench, labels: {mesh: bench, gateway: bench-gw}}
---
apiVersion: appmesh.k8s.aws/v1beta2
kind: Mesh
metadata: {name: bench}
spec: {namespaceSelector: {matchLabels: {mesh: bench}}}
---
apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualNode
metadata: {name: backend, namespace: bench}
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
  serviceDiscovery: {dns: {hostname: backend.bench.svc.cluster.local}}
---
apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualService
metadata: {name: backend, namespace: bench}
spec:
  awsName: backend.bench.svc.cluster.local
  provider: {virtualNode: {virtualNodeRef: {name: backend}}}
---
apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualGateway
metadata: {name: gw, namespace: bench}
spec:
  namespaceSelector: {matchLabels: {gateway: bench-gw}}
  podSelector: {matchLabels: {app: gw}}
  listeners: [{portMapping: {port: 8088, protocol: http}}]
"""
ROUTE = """
apiVersion: appmesh.k8s.aws/v1beta2
kind: GatewayRoute
metadata: {{name: route-{i:03d}, namespace: bench}}
spec:
  httpRoute:
    match: {{prefix: /r{i:03d}}}
    action: {{target: {{virtualService: {{virtualServiceRef: {{name: backend}}}}}}}}
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    t = start_lab(tmp_path_factory.mktemp("api-scale"), {"APPMESH_LAB_API_QUOTAS": "off"})
    yield t
    t.down()


def test_the_paginator_walks_250_gateway_routes_once_each(lab, capsys):
    client = make_client(lab)
    t0 = time.perf_counter()
    lab.apply_text("---".join([HEAD] + [ROUTE.format(i=i) for i in range(N)]), name="bench.yaml", wait=False)
    applied = time.perf_counter() - t0

    t0 = time.perf_counter()
    pages = list(client.get_paginator("list_gateway_routes").paginate(meshName="bench", virtualGatewayName="gw_bench"))
    walked = time.perf_counter() - t0
    names = [r["gatewayRouteName"] for p in pages for r in p["gatewayRoutes"]]
    assert [len(p["gatewayRoutes"]) for p in pages] == [100, 100, 50]  # 100 a page without limit
    assert names == [f"route-{i:03d}_bench" for i in range(N)]
    assert all(r["version"] == 1 and r["arn"].endswith(f"/virtualGateway/gw_bench/gatewayRoute/{r['gatewayRouteName']}")
               for p in pages for r in p["gatewayRoutes"])

    small = list(client.get_paginator("list_gateway_routes").paginate(
        meshName="bench", virtualGatewayName="gw_bench", PaginationConfig={"PageSize": 33}))
    assert len(small) == 8 and [r["gatewayRouteName"] for p in small for r in p["gatewayRoutes"]] == names
    with capsys.disabled():
        print(f"\n[api scale] apply of {N} gateway routes as one manifest: {applied:.2f}s; "
              f"paginator over {N}: {walked:.2f}s")


def test_quotas_off_lets_the_api_create_beyond_the_aws_defaults(lab, capsys):
    client = make_client(lab)
    client.create_mesh(meshName="roomy")
    client.create_virtual_service(meshName="roomy", virtualServiceName="svc.roomy", spec={})
    for g in range(4):  # AWS allows 3 gateways per mesh
        client.create_virtual_gateway(meshName="roomy", virtualGatewayName=f"gw{g}", spec=vg_spec())
    t0 = time.perf_counter()
    for i in range(11):  # AWS allows 10 gateway routes per gateway
        client.create_gateway_route(meshName="roomy", virtualGatewayName="gw0", gatewayRouteName=f"r{i:02d}",
                                    spec=gr_spec(f"/r{i:02d}", "svc.roomy"))
    each = (time.perf_counter() - t0) / 11
    listed = client.list_gateway_routes(meshName="roomy", virtualGatewayName="gw0")["gatewayRoutes"]
    assert len(listed) == 11
    with capsys.disabled():
        print(f"\n[api scale] CreateGatewayRoute through the API: {each * 1000:.0f} ms each "
              f"(with {N} other routes in the store)")
