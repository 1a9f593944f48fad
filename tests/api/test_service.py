"""The wire protocol, driven by botocore's service model: routing, validation, responses, errors,
pagination tokens, regions and quotas. No daemon needed."""
import json
import re

import pytest

from lab.api import appmesh, quotas, service
from lab.api.errors import ApiError, BadRequest, Conflict, LimitExceeded, NotFound, ResourceInUse, TooManyTags, \
    error_response


def _render(uri: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: f"my-{m[1].lower()}", uri.split("?")[0])


@pytest.mark.parametrize("name", sorted(service.OPERATIONS))
def test_every_operation_of_the_model_is_routed_by_its_method_and_uri(name):
    op = service.OPERATIONS[name]
    found, params = service.match(op.method, _render(op.uri))
    assert found.name == name
    assert all(v == f"my-{k.lower()}" for k, v in params.items())


def test_every_operation_of_the_model_has_a_handler():
    assert set(service.OPERATIONS) == set(appmesh.VERBS) | set(appmesh.TAG_OPERATIONS)
    assert len(service.OPERATIONS) == 38


def test_uri_parameters_are_percent_decoded():
    _, params = service.match("GET", "/v20190125/meshes/my%20mesh/virtualServices/svc.ns.svc.cluster.local")
    assert params == {"meshName": "my mesh", "virtualServiceName": "svc.ns.svc.cluster.local"}


def test_an_unknown_path_or_a_wrong_method_is_a_bad_request():
    with pytest.raises(BadRequest, match="no App Mesh"):
        service.match("GET", "/v20190125/nothing")
    with pytest.raises(BadRequest, match="this path takes"):
        service.match("POST", "/v20190125/meshes")


def _parse(op_name, uri=None, query=None, body=None):
    op = service.OPERATIONS[op_name]
    _, params = service.match(op.method, uri or _render(op.uri))
    return service.parse_input(op, params, query or {}, json.dumps(body).encode() if body is not None else b"", {})


def test_members_come_from_uri_querystring_and_body_by_their_location():
    p = _parse("ListGatewayRoutes", "/v20190125/meshes/m/virtualGateway/g/gatewayRoutes",
               {"limit": ["5"], "nextToken": ["abc"], "meshOwner": ["111122223333"]})
    assert p == {"meshName": "m", "virtualGatewayName": "g", "limit": 5, "nextToken": "abc",
                 "meshOwner": "111122223333"}
    p = _parse("CreateMesh", body={"meshName": "m", "spec": {"egressFilter": {"type": "ALLOW_ALL"}}})
    assert p["spec"]["egressFilter"]["type"] == "ALLOW_ALL"


@pytest.mark.parametrize("op, body, message", [
    ("CreateMesh", {}, "Value null at 'meshName' failed to satisfy constraint: Member must not be null"),
    ("CreateMesh", {"meshName": "x" * 256}, "at 'meshName' failed to satisfy constraint: Member must have length "
                                             "less than or equal to 255"),
    ("CreateMesh", {"meshName": "m", "spec": {"egressFilter": {"type": "SOMETIMES"}}},
     re.escape("Value 'SOMETIMES' at 'spec.egressFilter.type' failed to satisfy constraint: Member must satisfy "
               "enum value set: [ALLOW_ALL, DROP_ALL]")),
    ("CreateMesh", {"meshName": "m", "spec": {"egressFilter": {"type": 3}}}, "'spec.egressFilter.type'.*be a string"),
    ("CreateMesh", {"meshName": "m", "spec": {"egresFilter": {}}}, "Unknown member 'spec.egresFilter'"),
    ("CreateGatewayRoute", {"gatewayRouteName": "r", "spec": {"priority": 1001, "httpRoute": {
        "match": {"prefix": "/"}, "action": {"target": {"virtualService": {"virtualServiceName": "s"}}}}}},
     "at 'spec.priority' failed to satisfy constraint: Member must have value less than or equal to 1000"),
    ("CreateGatewayRoute", {"gatewayRouteName": "r", "spec": {"httpRoute": {
        "match": {"prefix": "/", "method": "FETCH"}, "action": {"target": {"virtualService": {}}}}}},
     "2 validation errors detected: .*'spec.httpRoute.match.method'.*enum.*"
     "'spec.httpRoute.action.target.virtualService.virtualServiceName'.*not be null"),
    ("CreateVirtualService", {"virtualServiceName": "s", "spec": {"provider": {
        "virtualNode": {"virtualNodeName": "a"}, "virtualRouter": {"virtualRouterName": "b"}}}},
     "at 'spec.provider'.*exactly one of virtualNode, virtualRouter"),
    ("CreateRoute", {"routeName": "r", "spec": {"httpRoute": {"match": {"prefix": "/"}, "action": {
        "weightedTargets": [{"virtualNode": f"n{i}", "weight": 1} for i in range(11)]}}}},
     "at 'spec.httpRoute.action.weightedTargets'.*length less than or equal to 10"),
])
def test_validation_errors_are_bad_requests_that_name_the_member(op, body, message):
    with pytest.raises(BadRequest, match=message):
        _parse(op, body=body)


def test_a_malformed_body_or_query_value_is_a_bad_request():
    with pytest.raises(BadRequest, match="not valid JSON"):
        op = service.OPERATIONS["CreateMesh"]
        service.parse_input(op, {}, {}, b"{nope", {})
    with pytest.raises(BadRequest, match="'limit'.*integer"):
        _parse("ListMeshes", query={"limit": ["ten"]})
    with pytest.raises(BadRequest, match="'limit'.*greater than or equal to 1"):
        _parse("ListMeshes", query={"limit": ["0"]})
    with pytest.raises(BadRequest, match="'limit'.*less than or equal to 50"):
        _parse("ListTagsForResource", query={"resourceArn": ["arn"], "limit": ["51"]})


def test_more_than_fifty_tags_are_too_many_tags_where_the_operation_declares_it():
    tags = [{"key": f"k{i}", "value": "v"} for i in range(51)]
    with pytest.raises(TooManyTags):
        _parse("TagResource", query={"resourceArn": ["arn:x"]}, body={"tags": tags})
    with pytest.raises(BadRequest, match="'tags'"):  # CreateMesh declares no TooManyTagsException
        _parse("CreateMesh", body={"meshName": "m", "tags": tags})


def test_responses_keep_only_modelled_members_and_unwrap_the_payload():
    op = service.OPERATIONS["DescribeMesh"]
    body = service.output_body(op, {"mesh": {
        "meshName": "m", "metadata": {"arn": "a", "createdAt": 1, "lastUpdatedAt": 2.5, "version": 1, "uid": "u",
                                      "meshOwner": "1", "resourceOwner": "1", "extra": "x"},
        "spec": {"egressFilter": {"type": "DROP_ALL"}, "namespaceSelector": {}, "awsName": "m"},
        "status": {"status": "ACTIVE"}}})
    assert body["spec"] == {"egressFilter": {"type": "DROP_ALL"}}
    assert body["metadata"]["createdAt"] == 1.0 and "extra" not in body["metadata"]
    lst = service.output_body(service.OPERATIONS["ListMeshes"], {"meshes": [], "nextToken": None})
    assert lst == {"meshes": []}


@pytest.mark.parametrize("cls, status", [(BadRequest, 400), (NotFound, 404), (Conflict, 409), (ResourceInUse, 409),
                                         (LimitExceeded, 400), (TooManyTags, 400), (ApiError, 500)])
def test_errors_carry_the_status_of_their_shape_and_the_type_header_botocore_reads(cls, status):
    code, body, headers = error_response(cls("why"), service.SHAPES)
    assert (code, body) == (status, {"message": "why"})
    assert headers["x-amzn-ErrorType"] == cls.code
    assert service.SHAPES[cls.code]["exception"]


def test_page_tokens_round_trip_and_damaged_or_foreign_tokens_are_refused():
    op, other = service.OPERATIONS["ListGatewayRoutes"], service.OPERATIONS["ListMeshes"]
    token = appmesh.encode_token(op, ["gr-07", "GatewayRoute/ns/gr-07"])
    assert appmesh.decode_token(op, token) == ["gr-07", "GatewayRoute/ns/gr-07"]
    for bad in ("garbage", token[:-3], token[:5] + ("A" if token[5] != "A" else "B") + token[6:]):
        with pytest.raises(BadRequest, match="invalid nextToken"):
            appmesh.decode_token(op, bad)
    with pytest.raises(BadRequest, match="invalid nextToken"):
        appmesh.decode_token(other, token)


def test_paginate_walks_every_item_once_in_pages_of_limit():
    op = service.OPERATIONS["ListMeshes"]
    items = [[f"m{i:02d}"] for i in range(23)]
    seen, token = [], None
    while True:
        page, token = appmesh.paginate(op, items, lambda x: x, {"limit": 10, **({"nextToken": token} if token else {})})
        seen += page
        if not token:
            break
    assert seen == items
    assert appmesh.paginate(op, items, lambda x: x, {})[1] is None  # default page size: 100


def test_quotas_default_to_aws_and_the_environment_lifts_or_raises_them():
    assert quotas.limits({})["gatewayRoutesPerVirtualGateway"] == 10
    assert set(quotas.limits({"APPMESH_LAB_API_QUOTAS": "off"}).values()) == {None}
    raised = quotas.limits({"APPMESH_LAB_API_QUOTAS": "gatewayRoutesPerVirtualGateway=500, meshes=off"})
    assert raised["gatewayRoutesPerVirtualGateway"] == 500 and raised["meshes"] is None
    assert raised["virtualGatewaysPerMesh"] == 3
    with pytest.raises(ApiError, match="unknown quota"):
        quotas.limits({"APPMESH_LAB_API_QUOTAS": "gatewayroutes=5"})


def test_a_quota_is_exceeded_only_beyond_its_limit(monkeypatch):
    monkeypatch.delenv(quotas.ENV, raising=False)
    quotas.check("virtualGatewaysPerMesh", 3, "mesh 'm'")
    with pytest.raises(LimitExceeded, match="quota of virtual gateways per mesh is 3.*APPMESH_LAB_API_QUOTAS"):
        quotas.check("virtualGatewaysPerMesh", 4, "mesh 'm'")
    monkeypatch.setenv(quotas.ENV, "off")
    quotas.check("virtualGatewaysPerMesh", 4000, "mesh 'm'")
