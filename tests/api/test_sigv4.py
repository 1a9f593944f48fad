"""SigV4 verification (lab/api/sigv4.py) and the lab's credentials files (lab/api/credentials.py),
without a daemon: requests are signed by real boto3 clients and captured before they are sent."""
import os
import shutil
import stat
import subprocess
import time
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config

from lab.api import credentials, sigv4
from lab.api.errors import InvalidSignature, UnrecognizedClient

KEY, SECRET = credentials.new_keys()
KEYS = {KEY: SECRET}
ENDPOINT = "http://127.0.0.1:4567"


class _Raw:
    def stream(self, **_):
        yield b"{}"


def captured(call, key=KEY, secret=SECRET, region="us-west-2", **kwargs) -> dict:
    """What a real boto3 client sends for `call` (a method name) — captured, never sent."""
    client = boto3.client("appmesh", endpoint_url=ENDPOINT, region_name=region, aws_access_key_id=key,
                          aws_secret_access_key=secret, config=Config(retries={"max_attempts": 1}))
    seen = {}

    def grab(request, **_):
        seen["request"] = request
        return AWSResponse(request.url, 200, {"Content-Type": "application/json"}, _Raw())
    client.meta.events.register("before-send", grab)
    try:
        getattr(client, call)(**kwargs)
    except Exception:  # noqa: BLE001 - the fake answer may not parse; only the request matters
        pass
    r = seen["request"]
    url = urlsplit(r.url)
    headers = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in r.headers.items()}
    headers["Host"] = url.netloc  # what the HTTP client adds on the wire
    body = r.body if isinstance(r.body, bytes) else (r.body or "").encode()
    return {"method": r.method, "path": url.path, "query": url.query, "body": body, "headers": headers}


def check(req, keys=KEYS, now=None, **change):
    r = {**req, **change}
    return sigv4.verify(r["method"], r["path"], r["query"], r["body"], r["headers"], keys, now=now)


CALLS = [  # (operation, arguments): paths with odd names, query strings, bodies
    ("list_meshes", {"limit": 5, "nextToken": "a b+c/=%"}),
    ("create_mesh", {"meshName": "m", "spec": {"egressFilter": {"type": "ALLOW_ALL"}}, "clientToken": "t-1"}),
    ("describe_virtual_node", {"meshName": "my mesh ü", "virtualNodeName": "a.b_c~d"}),
    ("create_gateway_route", {"meshName": "m", "virtualGatewayName": "g", "gatewayRouteName": "r", "spec": {
        "httpRoute": {"match": {"prefix": "/"}, "action": {"target": {"virtualService": {"virtualServiceName": "s"}}}}}}),
    ("list_tags_for_resource", {"resourceArn": "arn:aws:appmesh:us-west-2:111122223333:mesh/m/virtualNode/n"}),
    ("delete_mesh", {"meshName": "m"}),
]


@pytest.mark.parametrize("call,kwargs", CALLS, ids=[c[0] for c in CALLS])
def test_what_boto3_signs_with_the_labs_key_verifies_and_gives_its_region(call, kwargs):
    req = captured(call, region="eu-central-1", **kwargs)
    assert check(req) == "eu-central-1"  # the raw query string, as the daemon passes it
    assert check(req, query=parse_qs(req["query"])) == "eu-central-1"  # or the parsed one


def test_no_authorization_or_an_unknown_key_is_unrecognized():
    req = captured("list_meshes")
    headers = {k: v for k, v in req["headers"].items() if k.lower() != "authorization"}
    with pytest.raises(UnrecognizedClient, match="no Authorization header"):
        check(req, headers=headers)
    other_key, other_secret = credentials.new_keys()
    with pytest.raises(UnrecognizedClient, match="is not the lab's"):
        check(captured("list_meshes", key=other_key, secret=other_secret))
    with pytest.raises(UnrecognizedClient):
        check(req, keys={})  # a lab without a credentials file accepts nothing
    with pytest.raises(UnrecognizedClient, match="no session token"):
        check(req, headers={**req["headers"], "X-Amz-Security-Token": "t"})


def test_a_wrong_secret_or_any_change_to_a_signed_request_is_an_invalid_signature():
    with pytest.raises(InvalidSignature, match="does not match"):
        check(captured("list_meshes", secret="x" * 40))
    req = captured("create_mesh", meshName="m", clientToken="t-1")
    assert check(req) == "us-west-2"
    tampered = [dict(body=req["body"].replace(b'"m"', b'"n"')), dict(path="/v20190125/meshes/x"),
                dict(method="POST"), dict(query="limit=1"), dict(query={"limit": ["1"]}),
                dict(headers={**req["headers"], "Host": "evil.example:80"})]
    for change in tampered:
        with pytest.raises(InvalidSignature):
            check(req, **change)


def test_a_signature_older_or_newer_than_fifteen_minutes_is_refused():
    req = captured("list_meshes")
    t = sigv4._epoch(req["headers"]["X-Amz-Date"])
    assert check(req, now=t + 14 * 60) == "us-west-2"
    with pytest.raises(InvalidSignature, match="Signature expired"):
        check(req, now=t + 20 * 60)  # replayed 20 minutes later
    with pytest.raises(InvalidSignature, match="Signature expired"):
        check(req, now=t - 20 * 60)  # from a clock 20 minutes ahead


def test_scope_and_header_rules():
    req = captured("list_meshes")
    auth = req["headers"]["Authorization"]
    for bad, message in [
        (auth.replace("/appmesh/", "/s3/"), "correct service: 'appmesh'"),
        (auth.replace("/aws4_request", "/aws5_request"), "requires Credential"),
        (auth.replace("SignedHeaders=", "Signed="), "requires Credential"),
        (auth.replace("host;", ""), "must include host"),
    ]:
        with pytest.raises(InvalidSignature, match=message):
            check(req, headers={**req["headers"], "Authorization": bad})
    with pytest.raises(UnrecognizedClient, match="not AWS4-HMAC-SHA256"):
        check(req, headers={**req["headers"], "Authorization": "AWS " + KEY + ":abc"})
    date = req["headers"]["X-Amz-Date"]
    wrong_day = auth.replace(f"/{date[:8]}/", "/20000101/")
    with pytest.raises(InvalidSignature, match="valid date"):
        check(req, headers={**req["headers"], "Authorization": wrong_day})
    with pytest.raises(InvalidSignature, match="X-Amz-Date"):
        check(req, headers={k: v for k, v in req["headers"].items() if k != "X-Amz-Date"})
    put = sigv4.sign(KEY, SECRET, "us-west-2", "PUT", ENDPOINT + "/v20190125/meshes", b'{"meshName": "m"}',
                     {"X-Amz-Content-SHA256": "0" * 64})
    with pytest.raises(InvalidSignature, match="X-Amz-Content-SHA256"):
        sigv4.verify("PUT", "/v20190125/meshes", {}, b'{"meshName": "m"}', put, KEYS)


def test_a_hand_made_query_verifies_as_it_was_sent():
    for query in ["nextToken=%FF%FE%00garbage", "limit=1+2", "b=2&a=1&a=0", "flag"]:
        headers = sigv4.sign(KEY, SECRET, "us-west-2", "GET", f"{ENDPOINT}/v20190125/meshes?{query}")
        assert sigv4.verify("GET", "/v20190125/meshes", query, b"", headers, KEYS) == "us-west-2", query


def test_sign_at_a_chosen_time_is_what_verify_expects():
    t = time.time() - 20 * 60
    headers = sigv4.sign(KEY, SECRET, "ap-south-1", "GET", ENDPOINT + "/v20190125/meshes?limit=3", when=t)
    assert headers["Host"] == "127.0.0.1:4567"
    assert sigv4.verify("GET", "/v20190125/meshes", {"limit": ["3"]}, b"", headers, KEYS, now=t + 1) == "ap-south-1"
    assert sigv4.verify("GET", "/v20190125/meshes", "limit=3", b"", headers, KEYS, now=t + 1) == "ap-south-1"
    with pytest.raises(InvalidSignature, match="Signature expired"):
        sigv4.verify("GET", "/v20190125/meshes", {"limit": ["3"]}, b"", headers, KEYS)


# ---- the credentials files ----------------------------------------------------------------------

def test_the_profile_is_made_once_owner_only_and_its_endpoint_follows_the_port(tmp_path):
    home = tmp_path / "lab"
    home.mkdir(mode=0o700)
    first = credentials.ensure_profile(home, "http://127.0.0.1:1111", "us-west-2")
    assert credentials.KEY_ID.fullmatch(first.access_key_id) and credentials.SECRET.fullmatch(first.secret_access_key)
    assert stat.S_IMODE(os.stat(first.folder).st_mode) == 0o700
    for f in (first.config_file, first.credentials_file):
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600
    again = credentials.ensure_profile(home, "http://127.0.0.1:2222", "eu-west-1")
    assert (again.access_key_id, again.secret_access_key) == (first.access_key_id, first.secret_access_key)
    loaded = credentials.load_profile(home)
    assert loaded == again and loaded.endpoint == "http://127.0.0.1:2222" and loaded.region == "eu-west-1"
    assert credentials.known_keys(home) == {first.access_key_id: first.secret_access_key}
    # botocore reads the files as written: profile, region, credentials and the App Mesh endpoint
    client = loaded.session().client("appmesh")
    assert client.meta.endpoint_url == "http://127.0.0.1:2222" and client.meta.region_name == "eu-west-1"
    creds = loaded.session().get_credentials()
    assert (creds.access_key, creds.secret_key) == (first.access_key_id, first.secret_access_key)
    assert loaded.session().client("s3").meta.endpoint_url.startswith("https://")  # the endpoint is App Mesh's only
    (tmp_path / "other").mkdir()
    other = credentials.ensure_profile(tmp_path / "other", "http://127.0.0.1:1", "us-west-2")
    assert other.access_key_id != first.access_key_id  # per lab home


def test_a_planted_symlink_is_replaced_not_followed(tmp_path):
    home = tmp_path / "lab"
    (home / "aws").mkdir(parents=True, mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (home / "aws" / "credentials").symlink_to(victim)
    (home / "aws" / "config").symlink_to(victim)
    profile = credentials.ensure_profile(home, "http://127.0.0.1:1", "us-west-2")
    assert victim.read_text() == "precious"
    assert not profile.credentials_file.is_symlink() and profile.access_key_id
    shutil.rmtree(home / "aws")
    (home / "aws").symlink_to(tmp_path)
    with pytest.raises(credentials.CredentialsError, match="not a folder"):
        credentials.ensure_profile(home, "http://127.0.0.1:1", "us-west-2")


def test_another_local_user_cannot_read_the_credentials(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root, to run a command as another user (runuser -u nobody)")
    if not shutil.which("runuser"):
        pytest.skip("needs runuser (util-linux), to run a command as another user")
    home = tmp_path / "lab"
    home.mkdir(mode=0o755)  # even inside a folder others may enter
    profile = credentials.ensure_profile(home, "http://127.0.0.1:1", "us-west-2")
    tmp_path.chmod(0o755)
    for f in (profile.credentials_file, profile.config_file):
        out = subprocess.run(["runuser", "-u", "nobody", "--", "cat", str(f)], capture_output=True, text=True)
        assert out.returncode != 0 and profile.secret_access_key not in out.stdout, out.stdout


def test_down_purge_removes_the_credentials_with_the_rest_of_the_lab(tmp_path):
    from lab.runtime.home import Paths
    paths = Paths(tmp_path / "lab").ensure()  # a home the lab made
    profile = credentials.ensure_profile(paths.home, "http://127.0.0.1:1", "us-west-2")
    removed, kept = paths.purge()
    assert str(profile.folder) in removed and not kept and not paths.home.exists()


def test_whatever_arrives_the_verdict_is_an_api_error_never_a_crash():
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from lab.api.errors import ApiError
    good = captured("create_mesh", meshName="m")
    text = st.text(max_size=40)

    @settings(max_examples=300, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(host=text, path=text.map(lambda p: "/" + p), query=text, body=st.binary(max_size=40),
           signed=st.sampled_from(["host;x-amz-date", "host;x-amz-date;content-type", "host;x-amz-date;user-agent",
                                   "host;;x-amz-date", "", ";"]),
           amz_date=st.sampled_from([good["headers"]["X-Amz-Date"], "20261399T999999Z", "x"]))
    def run(host, path, query, body, signed, amz_date):
        auth = good["headers"]["Authorization"]
        auth = auth.split("SignedHeaders=")[0] + f"SignedHeaders={signed}, Signature=" + auth.split("Signature=")[1]
        headers = {**good["headers"], "Host": host, "X-Amz-Date": amz_date, "Authorization": auth}
        with pytest.raises(ApiError):
            sigv4.verify("PUT", path, query, body, headers, KEYS)
    run()
