"""Stable ports, claimed machine-wide: two labs never keep the same port (Envoy's SO_REUSEPORT
would let both gateways bind it and split the connections between them)."""
import os
import subprocess
import sys

import pytest

from lab.runtime.ports import Claims, Ports, free_port
from lab.runtime.sockets import UnsafeFolder
from lab.store.sqlite import Store


def _ports(tmp_path, name: str, claims_dir, pid: int | None = None) -> Ports:
    home = tmp_path / name
    home.mkdir(exist_ok=True)
    return Ports(Store(home / "lab.db"), Claims(str(home), pid=pid, directory=str(claims_dir)))


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_port_is_stable_for_its_lab(tmp_path):
    claims = tmp_path / "claims"
    a = _ports(tmp_path, "a", claims)
    want = free_port()
    assert a.get("svc", preferred=want) == want
    assert a.get("svc", preferred=want) == want
    again = _ports(tmp_path, "a", claims)  # the same lab, restarted
    assert again.get("svc") == want


def test_a_second_lab_does_not_take_a_port_a_live_lab_claims(tmp_path):
    claims = tmp_path / "claims"
    want = free_port()
    a = _ports(tmp_path, "a", claims)  # claims with this (live) process's pid
    assert a.get("gw", preferred=want) == want
    b = _ports(tmp_path, "b", claims)
    got = b.get("gw", preferred=want)
    assert got != want
    assert Claims(str(tmp_path / "x"), directory=str(claims)).holder(got)[1] == str((tmp_path / "b").resolve())


def test_a_dead_labs_claim_is_taken_over_and_the_dead_lab_moves_when_it_starts_again(tmp_path):
    claims = tmp_path / "claims"
    want = free_port()
    a = _ports(tmp_path, "a", claims, pid=_dead_pid())
    assert a.get("gw", preferred=want) == want
    b = _ports(tmp_path, "b", claims)  # a's daemon is gone: its claim is stale
    assert b.get("gw", preferred=want) == want
    a_restarted = _ports(tmp_path, "a", claims)
    moved = a_restarted.get("gw", preferred=want)
    assert moved != want
    assert a_restarted.get("gw") == moved


def test_a_killed_labs_port_with_its_envoy_still_listening_is_not_taken_back(tmp_path):
    """Lab b kept port P while a held it later; a was killed (its claim is stale) but its gateway
    Envoy, which outlives the daemon, still listens on P with SO_REUSEPORT. b starting again must
    move, or the kernel would split b's gateway connections with a's orphan."""
    import socket
    claims = tmp_path / "claims"
    b = _ports(tmp_path, "b", claims)
    want = b.get("gw", preferred=free_port())
    b.unclaim_all()                                   # b stops cleanly, its store keeps P
    a = _ports(tmp_path, "a", claims, pid=_dead_pid())
    assert a.get("gw", preferred=want) == want         # a takes P (free, unclaimed), then dies
    orphan = socket.socket()
    orphan.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    orphan.bind(("127.0.0.1", want))
    orphan.listen()
    try:
        moved = _ports(tmp_path, "b", claims).get("gw")
        assert moved != want
    finally:
        orphan.close()
    # nothing listening any more: a dead lab's stale claim alone does not move a lab off its port
    c = _ports(tmp_path, "c", claims)
    port = c.get("gw", preferred=free_port())
    c.unclaim_all()
    d = _ports(tmp_path, "d", claims, pid=_dead_pid())
    assert d.get("gw", preferred=port) == port
    assert _ports(tmp_path, "c", claims).get("gw") == port


def test_release_removes_only_the_labs_own_claim(tmp_path):
    claims = tmp_path / "claims"
    a = _ports(tmp_path, "a", claims)
    port = a.get("api")
    a.release("api")
    assert Claims(str(tmp_path / "a"), directory=str(claims)).holder(port) is None
    assert not (claims / str(port)).exists()


def test_a_stopped_lab_leaves_no_claim_and_keeps_its_ports_when_nobody_took_them(tmp_path):
    claims = tmp_path / "claims"
    a = _ports(tmp_path, "a", claims)
    port = a.get("api")
    a.unclaim_all()
    assert not (claims / str(port)).exists()
    assert _ports(tmp_path, "a", claims).get("api") == port


def test_links_planted_in_the_claims_folder_are_never_written_through(tmp_path):
    """Another user who could plant links in the claims folder must not make the lab overwrite a
    file of its owner's (the claims folder is checked as the user's own; this is the second line)."""
    claims_dir = tmp_path / "claims"
    claims = Claims(str(tmp_path / "a"), pid=os.getpid(), directory=str(claims_dir))
    victim = tmp_path / "precious.txt"
    victim.write_text("the owner's file")
    (claims_dir / "40000").symlink_to(victim)  # the claim file itself
    (claims_dir / f".40001.{os.getpid()}").symlink_to(victim)  # the temporary file a claim is written to
    assert claims.holder(40000) is None  # a link is no claim
    claims.claim(40000)
    claims.claim(40001)
    assert victim.read_text() == "the owner's file"
    assert not (claims_dir / "40000").is_symlink() and claims.holder(40000) == (os.getpid(), claims.home)
    assert claims.holder(40001) == (os.getpid(), claims.home)
    (claims_dir / ".lock").symlink_to(victim)
    with pytest.raises(UnsafeFolder, match="symbolic link"):
        with claims.locked():
            pass
    assert victim.read_text() == "the owner's file"


def test_a_claims_folder_others_can_write_is_refused(tmp_path):
    d = tmp_path / "claims"
    d.mkdir()
    os.chmod(d, 0o777)
    with pytest.raises(UnsafeFolder, match="written by its group or by others"):
        Claims(str(tmp_path / "a"), directory=str(d))
