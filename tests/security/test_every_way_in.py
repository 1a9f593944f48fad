"""Every way in issue 12 lists, tried at once as another local user (lab/bench/reliability/
local_user.py): HTTP to every TCP port the daemon and its processes listen on (create, change, read
and stop requests; the App Mesh API unsigned and with a guessed signature; text/plain with a foreign
Origin or a rebound Host), every Unix socket and every entry of the lab home, the socket folder and
the port-claims folder (connect, list, read, write, remove, plant a link), xDS as a stolen node id
with a forged NACK, and a server of its own bound beside each of the lab's ports. Nothing may
succeed, and nothing of the owner's may change."""
from __future__ import annotations

import pytest

from lab.bench.reliability import local_user

pytestmark = pytest.mark.envoy


def test_another_user_gets_nothing_and_changes_nothing(lab):
    reason = local_user.unavailable()
    if reason:
        pytest.skip(reason)
    res = local_user.sweep(lab)
    figures = res["surfaces"]
    assert res["succeeded"] == [], res["succeeded"][:10]
    assert res["changed"] == [], res["changed"][:10]
    # the sweep reached what it should have: every surface tried, the lab's files and ports found
    for surface in local_user.SURFACES:
        assert figures[surface]["attempted"] > 0, (surface, figures)
    assert figures["App Mesh API (TCP, SigV4)"]["refused"] == figures["App Mesh API (TCP, SigV4)"]["attempted"]
    assert res["tcp_ports"] >= 6 and res["entries"] >= 20 and res["node_ids"] == 3, res
    for surface in ("daemon control socket", "xDS", "Envoy admin sockets", "lab home",
                    "socket and port-claims folders", "ports bound beside the lab's"):
        assert figures[surface]["refused"] == figures[surface]["attempted"], (surface, figures[surface])


def test_the_sweep_sees_a_door_left_open(lab):
    """The sweep is not blind: a file of the home opened to others (and its folders made passable)
    is read and written by the other user, and reported."""
    reason = local_user.unavailable()
    if reason:
        pytest.skip(reason)
    import os
    home = lab.client.paths.home
    target = home / "lab-home.json"
    modes = {p: os.stat(p).st_mode & 0o777 for p in (home, target)}
    try:
        os.chmod(home, 0o711)
        os.chmod(target, 0o666)
        res = local_user.sweep(lab)
    finally:
        for p, mode in modes.items():
            os.chmod(p, mode)
    found = {(a[1], a[2]) for a in res["succeeded"]}
    assert (str(target), "read") in found and (str(target), "change: open for writing") in found, found
