"""Where the local lab keeps its state: `.lab/` at the kit's checkout root, or $APPMESH_LAB_HOME.

The home holds everything that controls the lab (its store, its sockets, its credentials, the
configuration of every Envoy), so it must be its owner's alone. Before the lab uses a home it
checks (check_home): the folder is owned by the user running the lab and writable by nobody else,
a symbolic link to it is the user's (or root's), and no folder above it lets another user swap it
(owned by root or the user; writable by others only with the sticky bit, like /tmp). A home that
fails is refused with one line that says which path, who owns it and what to do; the lab never
changes the mode of a folder it did not create.

`down --purge` removes what the lab created and nothing else (Paths.purge): the entries this
module names (every file or folder the lab keeps directly in its home is a property of Paths),
never one that was in the folder before the lab first used it (a `lab-home.json` written then
lists them), and the folder itself only when the lab created it and nothing else is left in it.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

MARKER = "lab-home.json"  # written when the lab first uses a home: whether it made the folder, what was there
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


class UnsafeHome(Exception):
    """The lab home (or a folder above it) could be changed by another user; the message says
    which path, who owns it and what to do."""


def _checkout_root(start: Path) -> Path | None:
    for d in [start, *start.parents]:
        if (d / "pyproject.toml").is_file() and (d / "manifests").is_dir() and (d / "lab").is_dir():
            return d
    return None


def lab_home() -> Path:
    """The lab home, as an absolute path whose symbolic links are not resolved yet (check_home looks
    at the links themselves)."""
    env = os.environ.get("APPMESH_LAB_HOME")
    if env:
        return Path(os.path.abspath(os.path.expanduser(env)))
    root = _checkout_root(Path.cwd().resolve())
    return (root or Path.cwd().resolve()) / ".lab"


def _who(uid: int) -> str:
    try:
        import pwd
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


_ELSEWHERE = "set APPMESH_LAB_HOME to a folder of your own (e.g. ~/appmesh-lab)"


def _check_above(folder: Path, home: Path, me: int) -> None:
    """A folder above the home: if another user could rename or replace entries in it, they could
    swap the home (or a link to it) for one of theirs."""
    try:
        st = os.lstat(folder)
    except FileNotFoundError:
        return  # made by the lab (as the user) when it creates the home
    except OSError as exc:
        raise UnsafeHome(f"cannot check {folder}, above the lab home {home}: {exc.strerror}: {_ELSEWHERE}") from exc
    if stat.S_ISLNK(st.st_mode):
        if st.st_uid not in (0, me):
            raise UnsafeHome(f"the lab home {home} lies under {folder}, a symbolic link owned by {_who(st.st_uid)}, "
                             f"who could point it elsewhere: {_ELSEWHERE}")
        return
    if st.st_uid not in (0, me):
        raise UnsafeHome(f"the lab home {home} lies in {folder}, which is owned by {_who(st.st_uid)}, who could "
                         f"replace it: {_ELSEWHERE}")
    if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        raise UnsafeHome(f"the lab home {home} lies in {folder}, which other users may write to (mode "
                         f"{stat.S_IMODE(st.st_mode):04o}, no sticky bit), so they could replace it: "
                         f"{_ELSEWHERE}, or `chmod go-w {folder}`")


def check_home(home: Path) -> None:
    """Raise UnsafeHome unless `home` (which need not exist yet) is safe for the lab's state."""
    me = os.geteuid()
    home = Path(os.path.abspath(home))
    try:
        link = os.lstat(home)
    except FileNotFoundError:
        link = None
    except OSError as exc:  # e.g. a folder above it that only its owner may enter
        raise UnsafeHome(f"cannot check the lab home {home}: {exc.strerror}: {_ELSEWHERE}") from exc
    if link is not None and stat.S_ISLNK(link.st_mode) and link.st_uid not in (0, me):
        raise UnsafeHome(f"the lab home {home} is a symbolic link owned by {_who(link.st_uid)}, not by you "
                         f"({_who(me)}): remove it, or {_ELSEWHERE}")
    real = Path(os.path.realpath(home))
    for folder in dict.fromkeys([*home.parents, *real.parents]):
        _check_above(folder, home, me)
    try:
        st = os.stat(real)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UnsafeHome(f"cannot check the lab home {home}: {exc.strerror}: {_ELSEWHERE}") from exc
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeHome(f"the lab home {home} is not a folder: {_ELSEWHERE}")
    if st.st_uid != me:
        raise UnsafeHome(f"the lab home {home} is owned by {_who(st.st_uid)}, not by you ({_who(me)}): "
                         f"{_ELSEWHERE}")
    if st.st_mode & 0o022:
        raise UnsafeHome(f"the lab home {home} may be written by other users (mode {stat.S_IMODE(st.st_mode):04o}): "
                         f"`chmod go-w {home}`, or {_ELSEWHERE}")


@dataclass(frozen=True)
class Paths:
    """The lab home and every entry the lab keeps directly in it (purge removes exactly these)."""
    home: Path

    @property
    def db(self) -> Path:
        return self.home / "state.db"

    @property
    def lock(self) -> Path:
        return self.home / "daemon.lock"

    @property
    def daemon_info(self) -> Path:
        return self.home / "daemon.json"

    @property
    def daemon_info_tmp(self) -> Path:
        return self.home / "daemon.tmp"

    @property
    def daemon_log(self) -> Path:
        return self.home / "daemon.log"

    @property
    def pods(self) -> Path:
        return self.home / "pods"

    @property
    def certs(self) -> Path:
        return self.home / "certs"

    @property
    def secrets(self) -> Path:
        return self.home / "secrets"  # the TLS Secrets' files Gateway listeners serve (lab/runtime/secrets.py)

    @property
    def aws(self) -> Path:
        return self.home / "aws"  # the App Mesh API's credentials and profile (lab/api/credentials.py)

    @property
    def run(self) -> Path:
        """The daemon's, xDS and Envoy admin sockets, when their paths fit (lab/runtime/sockets.py)."""
        return self.home / "run"

    @property
    def marker(self) -> Path:
        return self.home / MARKER

    def pod_dir(self, namespace: str, pod: str) -> Path:
        return self.pods / namespace / pod

    def owned_names(self) -> set[str]:
        """Names of the entries the lab creates directly in its home."""
        names = set()
        for attr, value in vars(type(self)).items():
            if isinstance(value, property):
                path = getattr(self, attr)
                if isinstance(path, Path) and path.parent == self.home:
                    names.add(path.name)
        names |= {self.db.name + suffix for suffix in SQLITE_SIDE_FILES}
        return names

    def check(self) -> "Paths":
        """Refuse (UnsafeHome) a home another user could change."""
        check_home(self.home)
        return self

    def ensure(self) -> "Paths":
        """Check the home and make it (0700) if it does not exist; then the folders the lab uses."""
        check_home(self.home)
        created = False
        if not self.home.exists():
            self.home.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.mkdir(self.home, 0o700)
                os.chmod(self.home, 0o700)  # the lab made it: it is the owner's only, whatever the umask
                created = True
            except FileExistsError:
                pass  # made by someone else in between: checked again below
            check_home(self.home)
        self._write_marker(created)
        self.pods.mkdir(exist_ok=True, mode=0o700)  # like everything under the home: the owner's only
        return self

    def _write_marker(self, created: bool) -> None:
        if self.marker.exists() or self.marker.is_symlink():
            return
        names = os.listdir(self.home)
        if self.db.name in names or self.lock.name in names:  # a home an older lab used: its entries are the lab's
            names = [n for n in names if n not in self.owned_names()]
        record = {"created": created, "preexisting": [] if created else sorted(names)}
        try:
            fd = os.open(self.marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            return
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)

    def _read_marker(self) -> dict:
        try:
            fd = os.open(self.marker, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd) as f:
                record = json.load(f)
            return record if isinstance(record, dict) else {}
        except (OSError, ValueError):
            return {}  # a home an older lab made: it cannot tell whether it made the folder

    def purge(self) -> tuple[list[str], list[str]]:
        """Remove what the lab created in its home (the lab must be stopped). Returns (removed,
        kept): kept are the entries it did not create, left as they are, and the home itself when
        it stays."""
        real = Path(os.path.realpath(self.home))
        if not real.is_dir():
            return [], []
        check_home(self.home)  # never delete in a folder another user could have put things in
        record = self._read_marker()
        before = set(record.get("preexisting") or [])
        owned = self.owned_names()
        removed, kept = [], []
        for entry in sorted(os.scandir(real), key=lambda e: e.name):
            path = Path(entry.path)
            if entry.name == MARKER or entry.name not in owned or entry.name in before or entry.is_symlink():
                if entry.name != MARKER:
                    kept.append(str(path))  # the lab makes no links: one in its place is not its own
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)  # does not follow links inside
            else:
                path.unlink()
            removed.append(str(path))
        if record.get("created") and not kept:
            self.marker.unlink(missing_ok=True)
            os.rmdir(real)
            removed.append(str(real))
        else:
            self.marker.unlink(missing_ok=True)
            kept.append(str(real))
        return removed, kept
