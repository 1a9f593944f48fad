"""Only the lab's credentials drive the App Mesh API: real boto3 against a real lab daemon.

The lab writes its profile at `up`; boto3 with that profile works without endpoint or keys in
code; without credentials, with a wrong secret, with a key the lab did not issue, or with a
request signed 20 minutes ago, every call fails with AWS's own error codes and nothing changes."""
import http.client
import json
import time
from urllib.parse import urlsplit

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from lab.api import credentials, sigv4
from tests.api.conftest import lab_profile
from tests.api.support import unique, vg_spec

pytestmark = pytest.mark.envoy


def _state(client) -> list:
    return sorted(m["meshName"] for m in client.list_meshes()["meshes"])


def test_boto3_with_the_labs_profile_needs_no_endpoint_or_keys_in_code(lab, monkeypatch):
    profile = lab_profile(lab)
    for k, v in profile.env().items():
        monkeypatch.setenv(k, v)
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
              "AWS_ENDPOINT_URL_APP_MESH", "AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(k, raising=False)
    client = boto3.Session(profile_name="appmesh-lab").client("appmesh")  # what `appmesh-lab status` tells users
    assert client.meta.endpoint_url == profile.endpoint and client.meta.region_name == profile.region
    name = unique("profile-mesh")
    created = client.create_mesh(meshName=name)["mesh"]
    assert created["metadata"]["arn"].startswith(f"arn:aws:appmesh:{profile.region}:")
    client.create_virtual_gateway(meshName=name, virtualGatewayName="gw", spec=vg_spec())
    assert client.describe_virtual_gateway(meshName=name, virtualGatewayName="gw")["virtualGateway"]["spec"] == vg_spec()
    assert name in _state(client)
    client.delete_virtual_gateway(meshName=name, virtualGatewayName="gw")
    client.delete_mesh(meshName=name)


def _outsiders(lab) -> dict:
    profile = lab_profile(lab)
    common = dict(endpoint_url=profile.endpoint, region_name="us-west-2", config=Config(retries={"max_attempts": 1}))
    unknown_key, unknown_secret = credentials.new_keys()
    return {
        "no credentials": (boto3.client("appmesh", **{**common, "config": Config(signature_version=UNSIGNED,
                                                                                   retries={"max_attempts": 1})}),
                           "UnrecognizedClientException"),
        "wrong secret": (boto3.client("appmesh", aws_access_key_id=profile.access_key_id,
                                      aws_secret_access_key=unknown_secret, **common), "InvalidSignatureException"),
        "unknown key": (boto3.client("appmesh", aws_access_key_id=unknown_key, aws_secret_access_key=unknown_secret,
                                     **common), "UnrecognizedClientException"),
    }


@pytest.mark.parametrize("who", ["no credentials", "wrong secret", "unknown key"])
def test_calls_without_the_labs_credentials_fail_with_awss_codes_and_change_nothing(lab, client, who):
    mesh = unique("owned")
    client.create_mesh(meshName=mesh, tags=[{"key": "team", "value": "lab"}])
    arn = client.describe_mesh(meshName=mesh)["mesh"]["metadata"]["arn"]
    before = (_state(client), client.describe_mesh(meshName=mesh)["mesh"],
              client.list_tags_for_resource(resourceArn=arn)["tags"])
    outsider, code = _outsiders(lab)[who]
    calls = [lambda: outsider.list_meshes(), lambda: outsider.describe_mesh(meshName=mesh),
             lambda: outsider.create_mesh(meshName=unique("intruder")),
             lambda: outsider.update_mesh(meshName=mesh, spec={"egressFilter": {"type": "ALLOW_ALL"}}),
             lambda: outsider.tag_resource(resourceArn=arn, tags=[{"key": "x", "value": "y"}]),
             lambda: outsider.delete_mesh(meshName=mesh),
             lambda: outsider.describe_mesh(meshName="no-such-mesh")]  # not even NotFound leaks
    for call in calls:
        with pytest.raises(ClientError) as info:
            call()
        assert info.value.response["Error"]["Code"] == code, info.value.response["Error"]
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert "appmesh-lab" in info.value.response["Error"]["Message"]  # says how to sign
    after = (_state(client), client.describe_mesh(meshName=mesh)["mesh"],
             client.list_tags_for_resource(resourceArn=arn)["tags"])
    assert after == before
    client.delete_mesh(meshName=mesh)


def _send(endpoint: str, method: str, path: str, body: bytes, headers: dict):
    url = urlsplit(endpoint)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.getheader("x-amzn-ErrorType"), json.loads(resp.read() or b"{}")
    finally:
        conn.close()


def test_a_request_signed_twenty_minutes_ago_is_refused_and_a_fresh_one_is_not(lab, client):
    profile = lab_profile(lab)
    name = unique("replayed")
    body = json.dumps({"meshName": name}).encode()
    for when, expected in [(time.time() - 20 * 60, 403), (None, 200)]:
        headers = sigv4.sign(profile.access_key_id, profile.secret_access_key, "us-west-2", "PUT",
                             profile.endpoint + "/v20190125/meshes", body, {"Content-Type": "application/json"},
                             when=when)
        status, error_type, answer = _send(profile.endpoint, "PUT", "/v20190125/meshes", body, headers)
        assert status == expected, answer
        if expected == 403:
            assert error_type == "InvalidSignatureException" and "Signature expired" in answer["message"]
            assert name not in _state(client)  # nothing was created
    assert name in _state(client)
    client.delete_mesh(meshName=name)


def test_a_signed_request_whose_body_was_swapped_is_refused(lab, client):
    profile = lab_profile(lab)
    signed_body = json.dumps({"meshName": unique("signed")}).encode()
    swapped = json.dumps({"meshName": unique("swapped")}).encode()
    headers = sigv4.sign(profile.access_key_id, profile.secret_access_key, "us-west-2", "PUT",
                         profile.endpoint + "/v20190125/meshes", signed_body, {"Content-Type": "application/json"})
    before = _state(client)
    status, error_type, _ = _send(profile.endpoint, "PUT", "/v20190125/meshes", swapped, headers)
    assert (status, error_type) == (403, "InvalidSignatureException")
    assert _state(client) == before
