"""Input limits and idempotency records of the App Mesh API, on a daemon in this process (no
processes start): every request goes through `appmesh.handle`, signed with the lab's credentials.

Each bad input answers App Mesh's BadRequestException naming the field, and stores nothing."""
import json
import os
from urllib.parse import quote, urlsplit

import pytest

from lab.api import appmesh, credentials, idempotency, sigv4
from lab.store import Store
from tests.daemon_in_process import in_process_daemon

ENDPOINT = "http://127.0.0.1:1"


@pytest.fixture
def daemon(tmp_path):
    with in_process_daemon(tmp_path / "lab") as d:
        d.profile = credentials.ensure_profile(d.paths.home, ENDPOINT, "us-west-2")
        yield d


def call(d, method: str, path: str, body=None, when=None):
    """(status, answer, error type) of one signed request."""
    raw = json.dumps(body).encode() if body is not None else b""
    headers = sigv4.sign(d.profile.access_key_id, d.profile.secret_access_key, "us-west-2", method, ENDPOINT + path,
                         raw, {"Content-Type": "application/json"} if raw else {}, when=when)
    url = urlsplit(path)
    status, answer, extra = appmesh.handle(d, method, url.path, url.query, raw, headers)
    return status, answer, extra.get("x-amzn-ErrorType")


def stored(d) -> tuple:
    """Everything the API could have written: records and the kv table's API entries."""
    return (sorted(r.key for r in d.store.list()), sorted(d.store.kv_items("api")))


def db_bytes(d) -> int:
    return sum(os.path.getsize(p) for p in (d.paths.db, f"{d.paths.db}-wal") if os.path.exists(p))


def refused(d, method, path, body, field: str) -> str:
    before = stored(d)
    status, answer, error = call(d, method, path, body)
    assert (status, error) == (400, "BadRequestException"), answer
    assert f"'{field}'" in answer["message"], answer["message"]
    assert stored(d) == before, "a refused request stored something"
    return answer["message"]


def test_a_10_mb_client_token_four_times_is_refused_and_the_store_does_not_grow(daemon):
    d = daemon
    assert call(d, "PUT", "/v20190125/meshes", {"meshName": "m"})[0] == 200
    size = db_bytes(d)
    huge = "t" * 10_000_000
    for i in range(4):  # the finding: 4 such requests grew the store to 126 MB
        refused(d, "PUT", "/v20190125/meshes", {"meshName": f"m{i}", "clientToken": huge}, "clientToken")
        refused(d, "PUT", "/v20190125/meshes/m/virtualGateways",
                {"virtualGatewayName": "g", "spec": {"listeners": [{"portMapping": {"port": 8080, "protocol": "http"}}]},
                 "clientToken": huge}, "clientToken")
    assert db_bytes(d) - size < 1_000_000
    assert not d.store.kv_items("api-token:")


@pytest.mark.parametrize("token", ["x" * 37, "a b", "tok.en", "ü", "", "a/b"])
def test_a_client_token_must_be_up_to_36_letters_digits_hyphens_and_underscores(daemon, token):
    refused(daemon, "PUT", "/v20190125/meshes", {"meshName": "m", "clientToken": token}, "clientToken")


def test_a_36_character_client_token_is_accepted(daemon):
    token = "A1-_" * 9
    assert call(daemon, "PUT", "/v20190125/meshes", {"meshName": "m", "clientToken": token})[0] == 200
    assert daemon.store.kv_get(f"api-token:{token}")["operation"] == "CreateMesh"


def test_names_are_1_to_255_characters_without_slashes_or_control_characters(daemon):
    d = daemon
    vs = "/v20190125/meshes/m/virtualServices"
    assert call(d, "PUT", "/v20190125/meshes", {"meshName": "m"})[0] == 200
    refused(d, "PUT", "/v20190125/meshes", {"meshName": "m" * 256}, "meshName")
    refused(d, "PUT", vs, {"virtualServiceName": "s" * 256, "spec": {}}, "virtualServiceName")  # the model's
    # ServiceName has no limit of its own
    refused(d, "PUT", "/v20190125/meshes", {"meshName": "red\x1b[31m"}, "meshName")
    refused(d, "PUT", "/v20190125/meshes", {"meshName": "a\nb"}, "meshName")
    refused(d, "PUT", "/v20190125/meshes/m/virtualNodes", {"virtualNodeName": "a/b", "spec": {}}, "virtualNodeName")
    refused(d, "GET", f"/v20190125/meshes/{quote('m/virtualNode/x', safe='')}", None, "meshName")
    refused(d, "PUT", "/v20190125/meshes/m/virtualNodes", {"virtualNodeName": "n", "spec": {
        "backends": [{"virtualService": {"virtualServiceName": "x/y"}}]}},
        "spec.backends[0].virtualService.virtualServiceName")
    assert call(d, "PUT", vs, {"virtualServiceName": "s" * 255, "spec": {}})[0] == 200


def test_distinct_resources_never_share_an_arn(daemon):
    """Regression: a mesh named `a/virtualNode/b` had the ARN of virtual node `b` of mesh `a`."""
    d = daemon
    assert call(d, "PUT", "/v20190125/meshes", {"meshName": "a"})[0] == 200
    status, node, _ = call(d, "PUT", "/v20190125/meshes/a/virtualNodes", {"virtualNodeName": "b", "spec": {}})
    assert status == 200, node
    refused(d, "PUT", "/v20190125/meshes", {"meshName": "a/virtualNode/b"}, "meshName")
    refused(d, "PUT", "/v20190125/meshes/a/virtualRouters", {"virtualRouterName": "r/route/x", "spec": {}},
            "virtualRouterName")
    arns = [m["arn"] for m in call(d, "GET", "/v20190125/meshes")[1]["meshes"]]
    arns += [n["arn"] for n in call(d, "GET", "/v20190125/meshes/a/virtualNodes")[1]["virtualNodes"]]
    assert len(arns) == len(set(arns)) == 2
    tags = call(d, "GET", "/v20190125/tags?resourceArn=" + quote(node["metadata"]["arn"], safe=""))
    assert tags[0] == 200  # the ARN names the node, and only it


def test_tag_keys_and_values_beyond_awss_limits_are_refused(daemon):
    d = daemon
    refused(d, "PUT", "/v20190125/meshes", {"meshName": "m", "tags": [{"key": "k" * 129, "value": "v"}]},
            "tags[0].key")
    refused(d, "PUT", "/v20190125/meshes", {"meshName": "m", "tags": [{"key": "k", "value": "v" * 257}]},
            "tags[0].value")
    status, mesh, _ = call(d, "PUT", "/v20190125/meshes", {"meshName": "m", "tags": [{"key": "k" * 128,
                                                                                      "value": "v" * 256}]})
    assert status == 200
    arn = quote(mesh["metadata"]["arn"], safe="")
    refused(d, "PUT", f"/v20190125/tag?resourceArn={arn}", {"tags": [{"key": "x", "value": "v" * 10_000}]},
            "tags[0].value")
    refused(d, "PUT", f"/v20190125/untag?resourceArn={arn}", {"tagKeys": ["k" * 129]}, "tagKeys[0]")
    assert call(d, "GET", f"/v20190125/tags?resourceArn={arn}")[1]["tags"] == [{"key": "k" * 128, "value": "v" * 256}]


# ---- idempotency records expire -----------------------------------------------------------------

def test_token_records_expire_after_a_day_and_are_swept(tmp_path):
    store = Store(tmp_path / "state.db")
    clock = [1_000_000.0]
    tokens = idempotency.Tokens(store, clock=lambda: clock[0])
    tokens.put("old", {"operation": "CreateMesh"})
    clock[0] += idempotency.TTL_S - 60
    tokens.put("young", {"operation": "CreateMesh"})
    assert tokens.get("old") and tokens.get("young")
    clock[0] += 120  # "old" is now a day and a minute old
    assert tokens.get("old") is None and store.kv_get("api-token:old") is None  # dropped when read
    assert tokens.get("young")
    store.kv_set("api-token:unread", {"operation": "CreateMesh", "at": clock[0] - idempotency.TTL_S - 1})
    store.kv_set("api-token:legacy", {"operation": "CreateMesh"})  # written before records had a time
    assert tokens.sweep(force=True) == 2
    assert sorted(store.kv_items("api-token:")) == ["api-token:young"]
    store.close()


def test_a_token_reused_after_its_record_expired_starts_a_new_request(daemon, monkeypatch):
    d = daemon
    clock = [2_000_000_000.0]
    monkeypatch.setattr(idempotency, "now", lambda: clock[0])
    listener = {"listeners": [{"portMapping": {"port": 8080, "protocol": "http"}}]}
    assert call(d, "PUT", "/v20190125/meshes", {"meshName": "m"})[0] == 200
    path = "/v20190125/meshes/m/virtualGateways/g"
    assert call(d, "PUT", "/v20190125/meshes/m/virtualGateways",
                {"virtualGatewayName": "g", "spec": listener})[0] == 200
    first = call(d, "PUT", path, {"spec": listener, "clientToken": "tok"})[1]
    clock[0] += 3600  # within the day: the same request is answered as before, nothing changes
    assert call(d, "PUT", path, {"spec": listener, "clientToken": "tok"})[1] == first
    other = {"listeners": [{"portMapping": {"port": 9090, "protocol": "http"}}]}
    assert call(d, "PUT", path, {"spec": other, "clientToken": "tok"})[2] == "ConflictException"
    clock[0] += idempotency.TTL_S  # a day later the token is free again
    status, again, _ = call(d, "PUT", path, {"spec": other, "clientToken": "tok"})
    assert status == 200 and again["metadata"]["version"] == first["metadata"]["version"] + 1
    assert again["spec"]["listeners"][0]["portMapping"]["port"] == 9090
