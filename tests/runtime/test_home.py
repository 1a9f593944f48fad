"""The lab home is its owner's alone: a home another user owns or may write to (or a link to it,
or a folder above it, that another user controls) is refused with one clear line by `up` and by
the daemon; `down --purge` removes what the lab created and nothing else, and never changes the
mode of a folder it did not create."""
import os
import pwd
import shutil
import stat
import subprocess
import sys

import pytest

from lab.runtime.home import Paths, UnsafeHome, check_home
from tests.conftest import ROOT

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (to give a folder to another user)")


def _nobody() -> int:
    return pwd.getpwnam("nobody").pw_uid


def _cli(home, *args, timeout=90):
    env = dict(os.environ, APPMESH_LAB_HOME=str(home))
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=timeout)


def _mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _lab_files(home):
    """What a lab leaves in its home (as a daemon writes it)."""
    (home / "state.db").write_text("x")
    (home / "state.db-wal").write_text("x")
    (home / "daemon.log").write_text("x")
    (home / "pods" / "ns" / "pod").mkdir(parents=True, exist_ok=True)
    (home / "pods" / "ns" / "pod" / "app.log").write_text("x")
    (home / "certs" / "ca").mkdir(parents=True)
    (home / "certs" / "ca" / "ca.key").write_text("x")


def test_a_home_other_users_may_write_is_refused_and_its_mode_is_kept(tmp_path):
    home = tmp_path / "shared"
    home.mkdir()
    os.chmod(home, 0o777)
    with pytest.raises(UnsafeHome) as err:
        Paths(home).ensure()
    msg = str(err.value)
    assert str(home) in msg and "0777" in msg and "chmod go-w" in msg and "\n" not in msg
    assert _mode(home) == 0o777 and os.listdir(home) == [], "the lab changed a folder it refused"


def test_up_and_the_daemon_refuse_a_group_writable_home_in_one_line(tmp_path):
    home = tmp_path / "team"
    home.mkdir()
    os.chmod(home, 0o770)
    proc = _cli(home, "up", "--timeout", "10")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(home) in lines[0] and "Traceback" not in proc.stderr, proc.stderr
    daemon = subprocess.run([sys.executable, "-m", "lab.runtime.daemon", "--home", str(home)], capture_output=True,
                            text=True, cwd=ROOT, timeout=60)
    assert daemon.returncode == 1 and str(home) in daemon.stderr and "Traceback" not in daemon.stderr, daemon.stderr
    assert os.listdir(home) == [] and _mode(home) == 0o770


def test_a_folder_above_the_home_that_others_may_write_is_refused(tmp_path):
    above = tmp_path / "open"
    above.mkdir()
    os.chmod(above, 0o777)  # no sticky bit: anyone could rename the home away and put theirs in its place
    with pytest.raises(UnsafeHome, match="no sticky bit"):
        check_home(above / "lab")
    os.chmod(above, 0o1777)  # like /tmp
    check_home(above / "lab")


@needs_root
def test_a_home_owned_by_another_user_is_refused(tmp_path):
    home = tmp_path / "theirs"
    home.mkdir(mode=0o700)
    os.chown(home, _nobody(), -1)
    with pytest.raises(UnsafeHome) as err:
        Paths(home).ensure()
    assert "nobody" in str(err.value) and str(home) in str(err.value) and "APPMESH_LAB_HOME" in str(err.value)
    proc = _cli(home, "status")  # any verb: the daemon.json in there is not to be trusted
    assert proc.returncode == 1 and "owned by nobody" in proc.stderr, proc.stderr


@needs_root
def test_a_symlink_to_the_home_owned_by_another_user_is_refused(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    link = tmp_path / "lab"
    link.symlink_to(mine)
    check_home(link)  # my own link to my own folder is fine
    os.lchown(link, _nobody(), -1)
    with pytest.raises(UnsafeHome, match="symbolic link owned by nobody"):
        Paths(link).ensure()
    proc = _cli(link, "up")
    assert proc.returncode == 1 and "symbolic link owned by nobody" in proc.stderr, proc.stderr


def test_purge_in_a_folder_the_lab_did_not_create_removes_only_its_own_entries(tmp_path):
    home = tmp_path / "course"
    home.mkdir()
    os.chmod(home, 0o755)
    (home / "notes.txt").write_text("mine")
    (home / "certs").mkdir()  # the user's own folder that happens to share a name with the lab's
    (home / "certs" / "mine.pem").write_text("mine")
    paths = Paths(home).ensure()
    _lab_files(home)
    (home / "later.txt").write_text("written after the lab started")  # not the lab's either
    removed, kept = paths.purge()
    assert sorted(os.listdir(home)) == ["certs", "later.txt", "notes.txt"]
    assert (home / "certs" / "mine.pem").read_text() == "mine"
    assert _mode(home) == 0o755, "purge changed the mode of a folder it did not create"
    assert str(home / "state.db") in removed and str(home) in kept


def test_purge_removes_a_home_the_lab_created_unless_something_else_is_in_it(tmp_path):
    home = tmp_path / "a" / "lab"
    paths = Paths(home).ensure()
    assert _mode(home) == 0o700
    _lab_files(home)
    paths.purge()
    assert not home.exists()

    paths = Paths(home).ensure()
    _lab_files(home)
    (home / "report.csv").write_text("the user's")
    paths.purge()
    assert os.listdir(home) == ["report.csv"]


def test_purge_refuses_a_folder_others_may_write_and_removes_nothing(tmp_path):
    home = tmp_path / "shared"
    home.mkdir()
    (home / "state.db").write_text("somebody's")
    (home / "theirs.txt").write_text("somebody's")
    os.chmod(home, 0o777)
    proc = _cli(home, "down", "--purge")
    assert proc.returncode == 1 and "may be written by other users" in proc.stderr, proc.stdout + proc.stderr
    assert sorted(os.listdir(home)) == ["state.db", "theirs.txt"] and _mode(home) == 0o777


@pytest.mark.envoy
def test_up_then_down_purge_in_a_folder_with_a_users_file_keeps_the_file_and_the_mode(tmp_path):
    home = tmp_path / "workshop"
    home.mkdir()
    os.chmod(home, 0o755)
    (home / "homework.ipynb").write_text("{}")
    up = _cli(home, "up")
    assert up.returncode == 0, up.stderr
    assert (home / "state.db").exists()
    down = _cli(home, "down", "--purge")
    assert down.returncode == 0, down.stderr
    assert os.listdir(home) == ["homework.ipynb"], os.listdir(home)
    assert _mode(home) == 0o755
    assert "kept 1 entry the lab did not create: homework.ipynb" in down.stdout, down.stdout


def _python_for_nobody() -> list:
    """An interpreter `nobody` may run, with this checkout and its environment's packages (the
    environment's own python may live in a folder only root can enter)."""
    import sysconfig
    site = sysconfig.get_paths()["purelib"]
    for exe in (sys.executable, shutil.which("python3") or "", "/usr/bin/python3"):
        if not exe:
            continue
        probe = subprocess.run(["runuser", "-u", "nobody", "--", exe, "-c",
                                f"import sys; sys.path[:0] = [{str(ROOT)!r}, {site!r}]; import lab.cli; "
                                f"assert sys.version_info[:2] == {tuple(sys.version_info[:2])!r}"],
                               capture_output=True, text=True, cwd="/", timeout=60)
        if probe.returncode == 0:
            return [exe, "-c", f"import sys; sys.path[:0] = [{str(ROOT)!r}, {site!r}]; sys.argv[0] = 'appmesh-lab'; "
                               "from lab.cli import main; sys.exit(main())"]
    pytest.skip(f"no Python {sys.version_info[0]}.{sys.version_info[1]} that the user nobody may run")


@needs_root
@pytest.mark.skipif(not shutil.which("runuser"), reason="needs runuser (util-linux)")
def test_another_user_pointing_at_the_owners_home_gets_a_clear_refusal(tmp_path):
    """`runuser -u nobody`: a learner who sets APPMESH_LAB_HOME to someone else's lab home is told
    it is not theirs (or that they cannot even look), never handed its daemon.json."""
    python = _python_for_nobody()
    home = tmp_path / "owners-lab"
    Paths(home).ensure()
    (home / "daemon.json").write_text('{"pid": 1, "api_port": 9}')
    above = tmp_path.parent
    os.chmod(tmp_path, 0o755)  # let nobody reach the home itself, so the ownership check speaks
    try:
        for args in (["status"], ["down"], ["up"], ["down", "--purge"]):
            proc = subprocess.run(["runuser", "-u", "nobody", "--", *python, *args], capture_output=True, text=True,
                                  cwd="/", timeout=60, env=dict(os.environ, APPMESH_LAB_HOME=str(home)))
            assert proc.returncode == 1 and "Traceback" not in proc.stderr, (args, proc.stderr)
            assert str(home) in proc.stderr and ("owned by root" in proc.stderr or "cannot check" in proc.stderr), \
                (args, proc.stderr)
    finally:
        os.chmod(tmp_path, 0o700)
    assert sorted(os.listdir(home)) == ["daemon.json", "lab-home.json", "pods"], "another user changed the home"
    assert above.exists()


@pytest.mark.envoy
def test_down_purge_removes_a_home_the_lab_made_with_everything_the_lab_put_in_it(tmp_path):
    """Every file the lab keeps directly in its home is named by lab.runtime.home.Paths (purge removes
    exactly those): a lab that made its home leaves nothing behind after `down --purge`."""
    home = tmp_path / "fresh" / "lab"
    assert _cli(home, "up").returncode == 0
    (tmp_path / "app.yaml").write_text(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: plain}\n---\n"
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: plain}\nspec:\n"
        "  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n"
        "      containers: [{name: app, image: appmesh-lab/sample-app:latest, ports: [{containerPort: 8080}]}]\n")
    applied = _cli(home, "apply", "-f", str(tmp_path / "app.yaml"))
    assert applied.returncode == 0, applied.stderr
    down = _cli(home, "down", "--purge")
    assert down.returncode == 0 and f"removed {home}" in down.stdout, down.stdout + down.stderr
    assert not home.exists(), f"left in the home: {os.listdir(home)}"
