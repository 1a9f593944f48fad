"""Specs and helpers shared by the API tests."""
from __future__ import annotations

import uuid


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def vn_spec(host: str, port: int = 8080, backends=()) -> dict:
    spec = {"listeners": [{"portMapping": {"port": port, "protocol": "http"}}],
            "serviceDiscovery": {"dns": {"hostname": host}}}
    if backends:
        spec["backends"] = [{"virtualService": {"virtualServiceName": b}} for b in backends]
    return spec


def vg_spec(port: int = 8088) -> dict:
    return {"listeners": [{"portMapping": {"port": port, "protocol": "http"}}]}


def gr_spec(prefix: str, service: str) -> dict:
    return {"httpRoute": {"match": {"prefix": prefix},
                          "action": {"target": {"virtualService": {"virtualServiceName": service}}}}}


def route_spec(prefix: str, *targets: tuple) -> dict:
    return {"httpRoute": {"match": {"prefix": prefix},
                          "action": {"weightedTargets": [{"virtualNode": n, "weight": w} for n, w in targets]}}}


def build(client, mesh: str) -> dict:
    """A mesh with one resource of every family, wired together the way App Mesh examples are:
    gateway → gateway route → service (router provider) → router → route → node, and a node
    service (node provider) that is a backend of the node. Returns {family: create response}."""
    out = {"mesh": client.create_mesh(meshName=mesh, spec={"egressFilter": {"type": "ALLOW_ALL"}},
                                      tags=[{"key": "team", "value": "lab"}])["mesh"]}
    out["virtualNode"] = client.create_virtual_node(
        meshName=mesh, virtualNodeName="colors-v1", spec=vn_spec("colors-v1.local", backends=["colors.local"]),
    )["virtualNode"]
    out["virtualRouter"] = client.create_virtual_router(
        meshName=mesh, virtualRouterName="colors-router",
        spec={"listeners": [{"portMapping": {"port": 8080, "protocol": "http"}}]})["virtualRouter"]
    out["route"] = client.create_route(meshName=mesh, virtualRouterName="colors-router", routeName="all",
                                       spec=route_spec("/", ("colors-v1", 1)))["route"]
    out["virtualService"] = client.create_virtual_service(
        meshName=mesh, virtualServiceName="colors.local",
        spec={"provider": {"virtualRouter": {"virtualRouterName": "colors-router"}}})["virtualService"]
    out["virtualGateway"] = client.create_virtual_gateway(meshName=mesh, virtualGatewayName="ingress",
                                                          spec=vg_spec())["virtualGateway"]
    out["gatewayRoute"] = client.create_gateway_route(
        meshName=mesh, virtualGatewayName="ingress", gatewayRouteName="colors",
        spec=gr_spec("/colors", "colors.local"))["gatewayRoute"]
    return out


def purge(client, mesh: str) -> list:
    """Delete everything in a mesh through the API, dependents first; returns the delete answers."""
    answers = []
    for vn in client.list_virtual_nodes(meshName=mesh)["virtualNodes"]:  # backends point back at services
        d = client.describe_virtual_node(meshName=mesh, virtualNodeName=vn["virtualNodeName"])["virtualNode"]
        if d["spec"].get("backends"):
            client.update_virtual_node(meshName=mesh, virtualNodeName=vn["virtualNodeName"],
                                       spec={**d["spec"], "backends": []})
    for vg in client.list_virtual_gateways(meshName=mesh)["virtualGateways"]:
        names = {"meshName": mesh, "virtualGatewayName": vg["virtualGatewayName"]}
        for gr in client.list_gateway_routes(**names)["gatewayRoutes"]:
            answers.append(client.delete_gateway_route(gatewayRouteName=gr["gatewayRouteName"],
                                                       **names)["gatewayRoute"])
    for vs in client.list_virtual_services(meshName=mesh)["virtualServices"]:
        answers.append(client.delete_virtual_service(meshName=mesh,
                                                     virtualServiceName=vs["virtualServiceName"])["virtualService"])
    for vr in client.list_virtual_routers(meshName=mesh)["virtualRouters"]:
        for r in client.list_routes(meshName=mesh, virtualRouterName=vr["virtualRouterName"])["routes"]:
            answers.append(client.delete_route(meshName=mesh, virtualRouterName=vr["virtualRouterName"],
                                               routeName=r["routeName"])["route"])
        answers.append(client.delete_virtual_router(meshName=mesh,
                                                    virtualRouterName=vr["virtualRouterName"])["virtualRouter"])
    for vg in client.list_virtual_gateways(meshName=mesh)["virtualGateways"]:
        answers.append(client.delete_virtual_gateway(meshName=mesh,
                                                     virtualGatewayName=vg["virtualGatewayName"])["virtualGateway"])
    for vn in client.list_virtual_nodes(meshName=mesh)["virtualNodes"]:
        answers.append(client.delete_virtual_node(meshName=mesh, virtualNodeName=vn["virtualNodeName"])["virtualNode"])
    answers.append(client.delete_mesh(meshName=mesh)["mesh"])
    return answers
