"""Stable ports, claimed machine-wide: two labs never keep the same port (Envoy's SO_REUSEPORT
would let both gateways bind it and split the connections between them)."""
import subprocess
import sys

from lab.runtime.ports import Claims, Ports, free_port
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
