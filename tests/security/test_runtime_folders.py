"""The lab's folders outside its home (port claims, sockets of a deep home) in a shared temp dir:
one another user made first is refused with a clear error, and a link planted in them is never
written through. Each test has a temp dir of its own as XDG_RUNTIME_DIR (sticky and world-writable,
as /tmp is), so that no other lab on the machine is touched."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from lab.store import Store

from .conftest import ROOT, track

pytestmark = pytest.mark.envoy


@pytest.fixture
def shared_tmp():
    d = track(Path(tempfile.mkdtemp(prefix="lab-shared-", dir="/tmp")))
    os.chmod(d, 0o1777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _cli(home: Path, runtime: Path, *args) -> subprocess.CompletedProcess:
    track(home)  # the session's check: no daemon of this home outlives the run
    env = dict(os.environ, APPMESH_LAB_HOME=str(home), XDG_RUNTIME_DIR=str(runtime))
    env.pop("APPMESH_LAB_PORT_CLAIMS", None)
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=120)


@pytest.mark.parametrize("made", ["the user folder", "the claims folder"])
def test_a_claims_folder_another_user_made_first_is_refused(as_other, shared_tmp, tmp_path, made):
    mine = shared_tmp / f"appmesh-lab-{os.getuid()}"
    if made == "the user folder":  # made by the other user, wide open, with a claims folder inside
        as_other("import os\nos.mkdir(args[0], 0o777)\nos.chmod(args[0], 0o777)\nos.mkdir(args[0] + '/ports', 0o777)\n"
                 "os.chmod(args[0] + '/ports', 0o777)\nprint(json.dumps(True))", str(mine))
        theirs = mine
    else:  # the user folder is the owner's; the claims folder in it was handed to the other user
        mine.mkdir(mode=0o700)
        (mine / "ports").mkdir(mode=0o700)
        os.chown(mine / "ports", 65534, 65534)
        theirs = mine / "ports"
    home = tmp_path / "lab"
    proc = _cli(home, shared_tmp, "up")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"{theirs} belongs to nobody (uid 65534), not to you" in proc.stderr, proc.stderr
    assert "remove it" in proc.stderr and "XDG_RUNTIME_DIR" in proc.stderr
    assert not (home / "daemon.json").exists()  # no daemon was started
    assert os.listdir(mine / "ports") == []  # and nothing written into the other user's folder


def test_a_link_planted_in_the_claims_folder_is_not_followed(shared_tmp, tmp_path):
    """The lab's claims are files named after ports; a link put in place of one (by whoever could)
    is replaced, never written through; a link in place of the folder's lock file stops the lab with
    a clear error, and nothing is made where it points."""
    home = tmp_path / "lab"
    up = _cli(home, shared_tmp, "up")
    assert up.returncode == 0, up.stderr
    assert _cli(home, shared_tmp, "down").returncode == 0
    store = Store(home / "state.db")
    ports = sorted(set(store.kv_items("port:").values()))
    store.close()
    assert ports, "the lab stored no port"
    claims = shared_tmp / f"appmesh-lab-{os.getuid()}" / "ports"
    victim = tmp_path / "owners-file"
    victim.write_text("the owner's own file")
    os.chmod(victim, 0o600)
    for port in ports:
        (claims / str(port)).unlink(missing_ok=True)
        (claims / str(port)).symlink_to(victim)
    # the lock file, linked to a path that does not exist: following it would create a file there
    (claims / ".lock").unlink(missing_ok=True)
    (claims / ".lock").symlink_to(tmp_path / "made-through-the-link")
    try:
        up = _cli(home, shared_tmp, "up")
        assert up.returncode == 1 and f"{claims / '.lock'} is a symbolic link" in up.stderr, up.stderr
        assert not (tmp_path / "made-through-the-link").exists() and victim.read_text() == "the owner's own file"
        (claims / ".lock").unlink()
        up = _cli(home, shared_tmp, "up")
        assert up.returncode == 0, up.stderr
        assert victim.read_text() == "the owner's own file"
        for port in ports:
            claim = claims / str(port)
            assert not claim.is_symlink() and claim.read_text().split(" ", 1)[1] == str(home.resolve())
        info = json.loads((home / "daemon.json").read_text())
        assert int(claims.joinpath(str(info["appmesh_api_port"])).read_text().split()[0]) == info["pid"]
    finally:
        _cli(home, shared_tmp, "down")
    assert victim.read_text() == "the owner's own file"
