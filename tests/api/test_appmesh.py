"""The App Mesh API on a real lab daemon, through the real boto3 client (and the aws CLI).

One daemon for the module; each test works in its own mesh and removes it, so the AWS quota of
15 meshes per account is never reached. The walkthrough tests share the manifests' mesh."""
import json
import os
import shutil
import subprocess
import time

import pytest
from botocore.exceptions import ClientError

from tests.api.conftest import eventually, lab_profile, make_client
from tests.api.support import build, gr_spec, purge, route_spec, unique, vg_spec, vn_spec
from tests.runtime.walkthrough import EXTRA_ROUTE

pytestmark = pytest.mark.envoy

ACCOUNT = "111122223333"
WALKTHROUGH_MESH = "my-app-mesh"
WALKTHROUGH_VG = "appmesh-gateway_appmesh-demo"
PRODUCT_VS = "product-service.appmesh-demo.svc.cluster.local"


def error_code(exc_info) -> str:
    return exc_info.value.response["Error"]["Code"]


@pytest.fixture
def mesh(client):
    """A fresh mesh name; whatever the test made in it is deleted afterwards."""
    name = unique("mesh")
    yield name
    try:
        purge(client, name)
    except client.exceptions.NotFoundException:
        pass  # the test deleted it


# ---- round trips ---------------------------------------------------------------------------

def test_a_mesh_round_trips_with_metadata_in_the_region_the_client_signed_for(lab):
    eu = make_client(lab, region="eu-west-1")
    name = unique("mesh")
    t0 = time.time()
    created = eu.create_mesh(meshName=name, spec={"egressFilter": {"type": "ALLOW_ALL"}})["mesh"]
    meta = created["metadata"]
    assert meta["arn"] == f"arn:aws:appmesh:eu-west-1:{ACCOUNT}:mesh/{name}"
    assert meta["version"] == 1 and meta["meshOwner"] == meta["resourceOwner"] == ACCOUNT and meta["uid"]
    assert abs(meta["createdAt"].timestamp() - t0) < 30 and meta["lastUpdatedAt"] == meta["createdAt"]
    assert created["status"] == {"status": "ACTIVE"} and created["spec"] == {"egressFilter": {"type": "ALLOW_ALL"}}
    assert eu.describe_mesh(meshName=name)["mesh"] == created
    listed = [m for m in eu.list_meshes()["meshes"] if m["meshName"] == name]
    assert listed == [{"meshName": name, "arn": meta["arn"], "createdAt": meta["createdAt"],
                       "lastUpdatedAt": meta["lastUpdatedAt"], "meshOwner": ACCOUNT, "resourceOwner": ACCOUNT,
                       "version": 1}]
    updated = eu.update_mesh(meshName=name, spec={"egressFilter": {"type": "DROP_ALL"}})["mesh"]
    assert updated["metadata"]["version"] == 2 and updated["metadata"]["uid"] == meta["uid"]
    assert updated["metadata"]["lastUpdatedAt"] >= meta["lastUpdatedAt"]
    assert eu.describe_mesh(meshName=name)["mesh"]["spec"] == {"egressFilter": {"type": "DROP_ALL"}}
    deleted = eu.delete_mesh(meshName=name)["mesh"]
    assert deleted["status"] == {"status": "DELETED"} and deleted["metadata"]["version"] == 2
    with pytest.raises(eu.exceptions.NotFoundException):
        eu.describe_mesh(meshName=name)
    assert not lab.get("Mesh", name)


FAMILIES = [  # (member, describe/update/list calls' name arguments, spec for the update)
    ("virtualNode", {"virtualNodeName": "colors-v1"}, vn_spec("colors-v1.local", port=9090, backends=["colors.local"])),
    ("virtualRouter", {"virtualRouterName": "colors-router"},
     {"listeners": [{"portMapping": {"port": 8080, "protocol": "http"}}]}),
    ("route", {"virtualRouterName": "colors-router", "routeName": "all"}, {**route_spec("/", ("colors-v1", 1)),
                                                                          "priority": 5}),
    ("virtualService", {"virtualServiceName": "colors.local"},
     {"provider": {"virtualNode": {"virtualNodeName": "colors-v1"}}}),
    ("virtualGateway", {"virtualGatewayName": "ingress"}, {**vg_spec(), "logging": {
        "accessLog": {"file": {"path": "/dev/stdout"}}}}),
    ("gatewayRoute", {"virtualGatewayName": "ingress", "gatewayRouteName": "colors"},
     {**gr_spec("/paint", "colors.local"), "priority": 10}),
]


def _snake(member: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in member)


def test_every_family_round_trips_create_describe_list_and_update(lab, client, mesh):
    created = build(client, mesh)
    region = client.meta.region_name
    for member, names, new_spec in FAMILIES:
        snake = _snake(member)
        data = created[member]
        assert data["status"] == {"status": "ACTIVE"}, member
        assert data["metadata"]["version"] == 1
        assert data["meshName"] == mesh and all(data[k] == v for k, v in names.items())
        parent = "".join(f"/{k[:-4]}/{v}" for k, v in names.items())
        assert data["metadata"]["arn"] == f"arn:aws:appmesh:{region}:{ACCOUNT}:mesh/{mesh}{parent}", member
        described = getattr(client, f"describe_{snake}")(meshName=mesh, **names)[member]
        assert described == data, member
        plural = {"virtualNode": "virtualNodes", "virtualRouter": "virtualRouters", "route": "routes",
                  "virtualService": "virtualServices", "virtualGateway": "virtualGateways",
                  "gatewayRoute": "gatewayRoutes"}[member]
        parents = {k: v for k, v in list(names.items())[:-1]}
        listed = getattr(client, f"list_{snake}s")(meshName=mesh, **parents)[plural]
        assert [x["arn"] for x in listed] == [data["metadata"]["arn"]]
        assert "spec" not in listed[0] and listed[0]["version"] == 1
        updated = getattr(client, f"update_{snake}")(meshName=mesh, spec=new_spec, **names)[member]
        assert updated["metadata"]["version"] == 2, member
        assert updated["spec"] == new_spec, member
        assert updated["metadata"]["uid"] == data["metadata"]["uid"]
        again = getattr(client, f"describe_{snake}")(meshName=mesh, **names)[member]
        assert again["metadata"]["version"] == 2 and again["spec"] == new_spec
    # creating a route changed the router's stored spec, not the router's API version
    assert client.describe_virtual_router(meshName=mesh, virtualRouterName="colors-router")[
        "virtualRouter"]["metadata"]["version"] == 2


def test_api_resources_are_kubernetes_resources_in_the_meshs_api_namespace(lab, client, mesh):
    build(client, mesh)
    ns = f"appmesh-api-{mesh}"
    [namespace] = lab.get("Namespace", ns)
    assert namespace["metadata"]["labels"]["appmesh.lab/mesh"] == mesh
    [m] = lab.get("Mesh", mesh)
    assert m["spec"]["awsName"] == mesh
    assert m["spec"]["namespaceSelector"] == {"matchLabels": {"appmesh.lab/mesh": mesh}}
    [vr] = lab.get("VirtualRouter", "colors-router", namespace=ns)
    assert [r["name"] for r in vr["spec"]["routes"]] == ["all"]
    assert vr["spec"]["routes"][0]["httpRoute"]["action"]["weightedTargets"] == [
        {"virtualNodeRef": {"name": "colors-v1", "namespace": ns}, "weight": 1}]
    [vs] = lab.get("VirtualService", "colors.local", namespace=ns)
    assert vs["spec"]["provider"] == {"virtualRouter": {"virtualRouterRef": {"name": "colors-router", "namespace": ns}}}
    assert vs["status"]["conditions"][0]["status"] == "True"
    [gr] = lab.get("GatewayRoute", "colors", namespace=ns)
    assert gr["metadata"]["labels"]["appmesh.lab/gateway"] == "ingress"
    assert gr["status"]["conditions"][0]["message"] == "attached to virtual gateway ingress"
    # the node's backend was named before the service existed: kept as an ARN, resolved by name
    [vn] = lab.get("VirtualNode", "colors-v1", namespace=ns)
    assert vn["spec"]["backends"][0]["virtualService"]["virtualServiceARN"].endswith(f"mesh/{mesh}/virtualService/"
                                                                                     "colors.local")


def test_api_only_fields_and_names_that_are_not_kubernetes_names_round_trip(client, mesh):
    client.create_mesh(meshName=mesh)
    spec = {"listeners": [{"portMapping": {"port": 8080, "protocol": "http"}}],
            "serviceDiscovery": {"dns": {"hostname": "x.local", "ipPreference": "IPv6_PREFERRED"}}}
    vn = client.create_virtual_node(meshName=mesh, virtualNodeName="Colors_V2", spec=spec)["virtualNode"]
    assert vn["virtualNodeName"] == "Colors_V2" and vn["spec"] == spec
    assert client.list_virtual_nodes(meshName=mesh)["virtualNodes"][0]["virtualNodeName"] == "Colors_V2"


def test_deletes_return_the_deleted_object_and_it_disappears(client, mesh):
    build(client, mesh)
    answers = purge(client, mesh)
    kinds = [next(k for k in ("gatewayRouteName", "routeName", "virtualServiceName", "virtualRouterName",
                              "virtualGatewayName", "virtualNodeName", "meshName") if k in a) for a in answers]
    assert kinds == ["gatewayRouteName", "virtualServiceName", "routeName", "virtualRouterName",
                     "virtualGatewayName", "virtualNodeName", "meshName"]
    assert {a["status"]["status"] for a in answers} == {"DELETED"}
    with pytest.raises(client.exceptions.NotFoundException):
        client.describe_mesh(meshName=mesh)


# ---- ResourceInUse -------------------------------------------------------------------------

def test_deleting_a_resource_others_depend_on_is_resource_in_use(client, mesh):
    build(client, mesh)
    in_use = client.exceptions.ResourceInUseException
    cases = [
        (client.delete_mesh, {}, "in use by"),
        (client.delete_virtual_gateway, {"virtualGatewayName": "ingress"}, "gateway route colors"),
        (client.delete_virtual_service, {"virtualServiceName": "colors.local"}, "GatewayRoute colors"),
        (client.delete_virtual_router, {"virtualRouterName": "colors-router"}, "route all"),
        (client.delete_virtual_node, {"virtualNodeName": "colors-v1"}, "VirtualRouter colors-router"),
    ]
    for call, names, message in cases:
        with pytest.raises(in_use, match=message):
            call(meshName=mesh, **names)
    # a service that is only a node's backend is still in use
    client.delete_gateway_route(meshName=mesh, virtualGatewayName="ingress", gatewayRouteName="colors")
    with pytest.raises(in_use, match="VirtualNode colors-v1"):
        client.delete_virtual_service(meshName=mesh, virtualServiceName="colors.local")
    # a router that a service names as provider, once its routes are gone
    client.delete_route(meshName=mesh, virtualRouterName="colors-router", routeName="all")
    with pytest.raises(in_use, match="VirtualService colors.local"):
        client.delete_virtual_router(meshName=mesh, virtualRouterName="colors-router")
    # a node that a service names as provider
    client.update_virtual_service(meshName=mesh, virtualServiceName="colors.local",
                                  spec={"provider": {"virtualNode": {"virtualNodeName": "colors-v1"}}})
    with pytest.raises(in_use, match="VirtualService colors.local"):
        client.delete_virtual_node(meshName=mesh, virtualNodeName="colors-v1")
    # nothing was deleted by the refused calls
    assert client.describe_virtual_node(meshName=mesh, virtualNodeName="colors-v1")["virtualNode"]


# ---- modelled errors -----------------------------------------------------------------------

def test_bad_requests_name_the_member(lab, client, mesh):
    raw = make_client(lab, parameter_validation=False)  # let the server see what botocore would refuse
    with pytest.raises(raw.exceptions.BadRequestException, match="Value null at 'meshName'"):
        raw.create_mesh()
    with pytest.raises(client.exceptions.BadRequestException,
                       match=r"'spec.egressFilter.type' failed to satisfy constraint: Member must satisfy enum"):
        client.create_mesh(meshName=mesh, spec={"egressFilter": {"type": "SOMETIMES"}})
    with pytest.raises(client.exceptions.BadRequestException, match="'meshName'.*less than or equal to 255"):
        client.create_mesh(meshName="m" * 256)
    with pytest.raises(client.exceptions.BadRequestException, match="'limit'.*less than or equal to 100"):
        client.list_meshes(limit=101)
    with pytest.raises(client.exceptions.BadRequestException, match="invalid nextToken"):
        client.list_meshes(nextToken="not-a-token")
    client.create_mesh(meshName=mesh)
    client.create_virtual_service(meshName=mesh, virtualServiceName="svc.local", spec={})
    client.create_virtual_gateway(meshName=mesh, virtualGatewayName="gw", spec=vg_spec())
    # the lab's own validation, as for a manifest: message, field and hint
    with pytest.raises(client.exceptions.BadRequestException,
                       match=r"spec.httpRoute.match.prefix: prefix 'api' must start with '/' \(hint: write /api\)"):
        client.create_gateway_route(meshName=mesh, virtualGatewayName="gw", gatewayRouteName="r",
                                    spec=gr_spec("api", "svc.local"))
    assert client.list_gateway_routes(meshName=mesh, virtualGatewayName="gw")["gatewayRoutes"] == []


def test_not_found_conflict_and_owner(client, mesh):
    nf = client.exceptions.NotFoundException
    with pytest.raises(nf, match="mesh 'nowhere' not found"):
        client.describe_mesh(meshName="nowhere")
    client.create_mesh(meshName=mesh)
    with pytest.raises(nf, match="virtual gateway 'gw' not found"):
        client.list_gateway_routes(meshName=mesh, virtualGatewayName="gw")
    with pytest.raises(nf, match="virtual node 'vn' not found"):
        client.describe_virtual_node(meshName=mesh, virtualNodeName="vn")
    with pytest.raises(nf):
        client.list_virtual_nodes(meshName=mesh, meshOwner="999999999999")
    with pytest.raises(client.exceptions.ConflictException, match="already exists"):
        client.create_mesh(meshName=mesh)
    client.create_virtual_gateway(meshName=mesh, virtualGatewayName="gw", spec=vg_spec())
    with pytest.raises(client.exceptions.ConflictException, match="virtual gateway 'gw' already exists"):
        client.create_virtual_gateway(meshName=mesh, virtualGatewayName="gw", spec=vg_spec())


def test_a_client_token_replays_the_same_request_and_refuses_a_different_one(client, mesh):
    client.create_mesh(meshName=mesh)
    first = client.create_virtual_gateway(meshName=mesh, virtualGatewayName="gw", spec=vg_spec(),
                                          clientToken="token-1")["virtualGateway"]
    again = client.create_virtual_gateway(meshName=mesh, virtualGatewayName="gw", spec=vg_spec(),
                                          clientToken="token-1")["virtualGateway"]
    assert again == first
    with pytest.raises(client.exceptions.ConflictException, match="clientToken 'token-1'"):
        client.create_virtual_gateway(meshName=mesh, virtualGatewayName="gw", spec=vg_spec(9090),
                                      clientToken="token-1")
    u1 = client.update_virtual_gateway(meshName=mesh, virtualGatewayName="gw", spec=vg_spec(9090),
                                       clientToken="token-2")["virtualGateway"]
    u2 = client.update_virtual_gateway(meshName=mesh, virtualGatewayName="gw", spec=vg_spec(9090),
                                       clientToken="token-2")["virtualGateway"]
    assert u1["metadata"]["version"] == u2["metadata"]["version"] == 2
    assert client.update_virtual_gateway(meshName=mesh, virtualGatewayName="gw", spec=vg_spec(9090))[
        "virtualGateway"]["metadata"]["version"] == 3  # botocore's own fresh token: a new update
    # a retried create answers as it did the first time
    assert client.create_virtual_gateway(meshName=mesh, virtualGatewayName="gw", spec=vg_spec(),
                                         clientToken="token-1")["virtualGateway"] == first


def test_quotas_are_limit_exceeded(client, mesh):
    client.create_mesh(meshName=mesh)
    for i in range(3):
        client.create_virtual_gateway(meshName=mesh, virtualGatewayName=f"gw{i}", spec=vg_spec())
    with pytest.raises(client.exceptions.LimitExceededException, match="quota of virtual gateways per mesh is 3"):
        client.create_virtual_gateway(meshName=mesh, virtualGatewayName="gw3", spec=vg_spec())
    client.create_virtual_service(meshName=mesh, virtualServiceName="svc.local", spec={})
    for i in range(10):
        client.create_gateway_route(meshName=mesh, virtualGatewayName="gw0", gatewayRouteName=f"r{i}",
                                    spec=gr_spec(f"/r{i}", "svc.local"))
    with pytest.raises(client.exceptions.LimitExceededException, match="gateway routes per virtual gateway is 10"):
        client.create_gateway_route(meshName=mesh, virtualGatewayName="gw0", gatewayRouteName="r10",
                                    spec=gr_spec("/r10", "svc.local"))


def test_tags_are_listed_paged_added_removed_and_limited_to_fifty(client, mesh):
    arn = client.create_mesh(meshName=mesh, tags=[{"key": "team", "value": "lab"}])["mesh"]["metadata"]["arn"]
    assert client.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "team", "value": "lab"}]
    client.tag_resource(resourceArn=arn, tags=[{"key": f"k{i:02d}", "value": str(i)} for i in range(40)])
    pages = list(client.get_paginator("list_tags_for_resource").paginate(resourceArn=arn,
                                                                        PaginationConfig={"PageSize": 15}))
    assert [len(p["tags"]) for p in pages] == [15, 15, 11]
    with pytest.raises(client.exceptions.TooManyTagsException, match="would have 51 tags"):
        client.tag_resource(resourceArn=arn, tags=[{"key": f"x{i}", "value": ""} for i in range(10)])
    with pytest.raises(client.exceptions.TooManyTagsException):
        client.tag_resource(resourceArn=arn, tags=[{"key": f"y{i}", "value": ""} for i in range(51)])
    client.untag_resource(resourceArn=arn, tagKeys=[f"k{i:02d}" for i in range(40)])
    client.tag_resource(resourceArn=arn, tags=[{"key": "team", "value": "mesh"}])
    assert client.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "team", "value": "mesh"}]
    assert client.describe_mesh(meshName=mesh)["mesh"]["metadata"]["version"] == 1  # tags are no update
    with pytest.raises(client.exceptions.NotFoundException):
        client.list_tags_for_resource(resourceArn=arn + "/virtualNode/none")
    with pytest.raises(client.exceptions.BadRequestException, match="not an App Mesh ARN"):
        client.list_tags_for_resource(resourceArn="arn:aws:s3:::bucket")


def test_lists_page_with_limit_and_the_botocore_paginator(client, mesh):
    client.create_mesh(meshName=mesh)
    names = [f"node-{i}" for i in range(7)]
    for n in names:
        client.create_virtual_node(meshName=mesh, virtualNodeName=n, spec={})
    first = client.list_virtual_nodes(meshName=mesh, limit=3)
    assert [x["virtualNodeName"] for x in first["virtualNodes"]] == names[:3] and first["nextToken"]
    second = client.list_virtual_nodes(meshName=mesh, limit=3, nextToken=first["nextToken"])
    assert [x["virtualNodeName"] for x in second["virtualNodes"]] == names[3:6]
    pages = client.get_paginator("list_virtual_nodes").paginate(meshName=mesh, PaginationConfig={"PageSize": 2})
    assert [x["virtualNodeName"] for p in pages for x in p["virtualNodes"]] == names
    assert "nextToken" not in client.list_virtual_nodes(meshName=mesh)


# ---- one store with the manifests ---------------------------------------------------------------

@pytest.fixture(scope="module")
def walkthrough(lab):
    lab.apply("manifests/walkthrough/")
    return lab


def test_the_walkthroughs_gateway_routes_are_listed_under_the_controllers_names(walkthrough, client):
    routes = client.list_gateway_routes(meshName=WALKTHROUGH_MESH, virtualGatewayName=WALKTHROUGH_VG)["gatewayRoutes"]
    names = {r["gatewayRouteName"] for r in routes}
    assert {"product-gateway-route_appmesh-demo", "review-gateway-route_appmesh-demo"} <= names
    gr = client.describe_gateway_route(meshName=WALKTHROUGH_MESH, virtualGatewayName=WALKTHROUGH_VG,
                                       gatewayRouteName="product-gateway-route_appmesh-demo")["gatewayRoute"]
    assert gr["status"] == {"status": "ACTIVE"}
    assert gr["spec"] == {"httpRoute": {"match": {"prefix": "/products"}, "action": {
        "target": {"virtualService": {"virtualServiceName": PRODUCT_VS}}}}}
    [record] = walkthrough.get("GatewayRoute", "product-gateway-route", namespace="appmesh-demo")
    assert gr["metadata"]["uid"] == record["metadata"]["uid"]
    assert gr["metadata"]["version"] == record["metadata"]["generation"]
    vn = client.describe_virtual_node(meshName=WALKTHROUGH_MESH,
                                      virtualNodeName="product-service-vn_appmesh-demo")["virtualNode"]
    assert vn["spec"]["backends"] == [{"virtualService": {
        "virtualServiceName": "review-service.appmesh-demo.svc.cluster.local"}}]
    assert "podSelector" not in vn["spec"]
    services = client.list_virtual_services(meshName=WALKTHROUGH_MESH)["virtualServices"]
    assert {s["virtualServiceName"] for s in services} == {PRODUCT_VS, "review-service.appmesh-demo.svc.cluster.local"}


def test_a_gateway_route_created_through_the_api_serves_traffic(walkthrough, client):
    made = client.create_gateway_route(meshName=WALKTHROUGH_MESH, virtualGatewayName=WALKTHROUGH_VG,
                                       gatewayRouteName="api-made", spec=gr_spec("/api-made", PRODUCT_VS))
    assert made["gatewayRoute"]["status"] == {"status": "ACTIVE"}
    [record] = walkthrough.get("GatewayRoute", "api-made", namespace="appmesh-demo")  # the gateway's namespace
    assert record["spec"]["awsName"] == "api-made"
    walkthrough.converge()

    def answered():
        r = walkthrough.curl("/api-made", quiet=True)
        return r.status == 200 and r.json()["service"] == "product-service"
    eventually(answered)
    # an update moves the route; the old path falls through to the gateway's 404
    up = client.update_gateway_route(meshName=WALKTHROUGH_MESH, virtualGatewayName=WALKTHROUGH_VG,
                                     gatewayRouteName="api-made", spec=gr_spec("/api-moved", PRODUCT_VS))
    assert up["gatewayRoute"]["metadata"]["version"] == 2
    eventually(lambda: walkthrough.curl("/api-moved", quiet=True).status == 200
               and walkthrough.curl("/api-made", quiet=True).status == 404)
    client.delete_gateway_route(meshName=WALKTHROUGH_MESH, virtualGatewayName=WALKTHROUGH_VG,
                                gatewayRouteName="api-made")
    assert walkthrough.get("GatewayRoute", "api-made", namespace="appmesh-demo") == []
    eventually(lambda: walkthrough.curl("/api-moved", quiet=True).status == 404)


def test_manifest_and_api_changes_are_seen_by_the_other_side(walkthrough, client):
    names = dict(meshName=WALKTHROUGH_MESH, virtualGatewayName=WALKTHROUGH_VG)
    walkthrough.apply_text(EXTRA_ROUTE, wait=False)
    gr = client.describe_gateway_route(gatewayRouteName="extra-route_appmesh-demo", **names)["gatewayRoute"]
    assert gr["metadata"]["version"] == 1
    # an API update of a manifest's resource: a new version, the manifest's own fields kept
    up = client.update_gateway_route(gatewayRouteName="extra-route_appmesh-demo",
                                     spec={**gr_spec("/extra", PRODUCT_VS), "priority": 7}, **names)["gatewayRoute"]
    assert up["metadata"]["version"] == 2
    [record] = walkthrough.get("GatewayRoute", "extra-route", namespace="appmesh-demo")
    assert record["spec"]["priority"] == 7
    assert record["spec"]["httpRoute"]["action"]["target"]["virtualService"] == {
        "virtualServiceRef": {"name": "product-service", "namespace": "appmesh-demo"}}
    # a manifest edit after it shows as one more version
    walkthrough.apply_text(EXTRA_ROUTE, wait=False)
    assert client.describe_gateway_route(gatewayRouteName="extra-route_appmesh-demo", **names)[
        "gatewayRoute"]["metadata"]["version"] == 3
    walkthrough.delete_resource("GatewayRoute", "extra-route", namespace="appmesh-demo")
    with pytest.raises(client.exceptions.NotFoundException):
        client.describe_gateway_route(gatewayRouteName="extra-route_appmesh-demo", **names)
    listed = client.list_gateway_routes(**names)["gatewayRoutes"]
    assert "extra-route_appmesh-demo" not in {r["gatewayRouteName"] for r in listed}


ROUTER = """
apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualRouter
metadata: {name: api-test-router, namespace: appmesh-demo}
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
"""


def test_routes_through_the_api_are_entries_of_a_manifest_routers_spec(walkthrough, client):
    walkthrough.apply_text(ROUTER, wait=False)
    names = dict(meshName=WALKTHROUGH_MESH, virtualRouterName="api-test-router_appmesh-demo")
    before = client.describe_virtual_router(**names)["virtualRouter"]["metadata"]["version"]
    route = client.create_route(routeName="to-products", spec=route_spec("/", ("product-service-vn_appmesh-demo", 1)),
                                **names)["route"]
    assert route["status"] == {"status": "ACTIVE"} and route["metadata"]["version"] == 1
    [vr] = walkthrough.get("VirtualRouter", "api-test-router", namespace="appmesh-demo")
    assert vr["spec"]["routes"] == [{"name": "to-products", "httpRoute": {"match": {"prefix": "/"}, "action": {
        "weightedTargets": [{"virtualNodeRef": {"name": "product-service-vn", "namespace": "appmesh-demo"},
                             "weight": 1}]}}}]
    assert client.describe_virtual_router(**names)["virtualRouter"]["metadata"]["version"] == before
    assert [r["routeName"] for r in client.list_routes(**names)["routes"]] == ["to-products"]
    with pytest.raises(client.exceptions.ResourceInUseException, match="route to-products"):
        client.delete_virtual_router(**names)
    assert client.delete_route(routeName="to-products", **names)["route"]["status"] == {"status": "DELETED"}
    assert "routes" not in walkthrough.get("VirtualRouter", "api-test-router", namespace="appmesh-demo")[0]["spec"]
    client.delete_virtual_router(**names)
    assert walkthrough.get("VirtualRouter", "api-test-router", namespace="appmesh-demo") == []


def test_an_api_created_resource_in_a_manifest_mesh_lives_in_the_meshs_api_namespace(walkthrough, client):
    vn = client.create_virtual_node(meshName=WALKTHROUGH_MESH, virtualNodeName="api-node",
                                    spec=vn_spec("api-node.local"))["virtualNode"]
    assert vn["status"] == {"status": "ACTIVE"}
    [ns] = walkthrough.get("Namespace", "appmesh-api-my-app-mesh")
    assert ns["metadata"]["labels"]["mesh"] == "my-app-mesh"  # what the manifest Mesh's namespaceSelector wants
    assert walkthrough.get("VirtualNode", "api-node", namespace="appmesh-api-my-app-mesh")
    client.delete_virtual_node(meshName=WALKTHROUGH_MESH, virtualNodeName="api-node")
    assert walkthrough.get("VirtualNode", "api-node", namespace="appmesh-api-my-app-mesh") == []
    with pytest.raises(client.exceptions.ResourceInUseException, match="in use by"):
        client.delete_mesh(meshName=WALKTHROUGH_MESH)


# ---- the aws CLI ---------------------------------------------------------------------------

def test_the_aws_cli_talks_to_the_lab_with_its_profile(lab):
    if not shutil.which("aws"):
        pytest.skip("the aws CLI is not installed (pip install awscli, or https://aws.amazon.com/cli/)")
    profile = lab_profile(lab)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env = {**clean, "AWS_CONFIG_FILE": str(profile.config_file),
           "AWS_SHARED_CREDENTIALS_FILE": str(profile.credentials_file), "AWS_EC2_METADATA_DISABLED": "true"}
    name = unique("cli-mesh")

    def aws(*args, profile_args=("--profile", "appmesh-lab")):
        # no --endpoint-url, no --region: both come from the lab's profile
        out = subprocess.run(["aws", "appmesh", *args, *profile_args, "--output", "json"],
                             capture_output=True, text=True, env=env, timeout=60)
        return out.returncode, json.loads(out.stdout) if out.stdout.strip() else None, out.stderr

    code, created, err = aws("create-mesh", "--mesh-name", name)
    assert code == 0, err
    assert created["mesh"]["metadata"]["arn"] == f"arn:aws:appmesh:{profile.region}:{ACCOUNT}:mesh/{name}"
    code, _, err = aws("describe-mesh", "--mesh-name", "no-such-mesh")
    assert code != 0 and "NotFoundException" in err
    code, deleted, err = aws("delete-mesh", "--mesh-name", name)
    assert code == 0 and deleted["mesh"]["status"]["status"] == "DELETED", err
    # the same command with credentials of its own (not the lab's) is refused by the lab
    env.update(AWS_ACCESS_KEY_ID="AKIAIOSFODNN7EXAMPLE", AWS_SECRET_ACCESS_KEY="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    code, _, err = aws("create-mesh", "--mesh-name", name, profile_args=("--endpoint-url", profile.endpoint,
                                                                         "--region", "us-west-2"))
    assert code != 0 and "UnrecognizedClientException" in err, err
    assert not lab.get("Mesh", name)


def test_client_errors_are_botocore_client_errors_with_http_status(client):
    with pytest.raises(ClientError) as info:
        client.describe_mesh(meshName="absent")
    assert error_code(info) == "NotFoundException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
