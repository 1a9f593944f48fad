"""Stable port allocation on 127.0.0.1: a port, once given to a key, is kept across restarts.

Two labs on one machine (two state directories, e.g. a learner's lab and a test run) must never
keep the same port: Envoy binds its listeners with SO_REUSEPORT, so two gateways on one port both
bind and the kernel splits the connections between them. A port is therefore also *claimed*
machine-wide, in a folder of one file per port holding "<daemon pid> <lab home>" (see Claims);
a port claimed by another lab whose daemon is alive is never taken, and a lab whose stored port
was claimed by another lab while it was stopped moves to a new port, as it does when the last lab
to claim it was killed and left processes listening there (see Claims.other_left_listening). The folder is checked as the
user's own (lab/runtime/sockets.py: private_dir), and its files are opened without following
symbolic links: a link planted there makes the claim fail, it never writes through.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
from pathlib import Path

from .sockets import UnsafeFolder, private_dir, user_runtime_dir


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        # like the servers that will bind it: connections in TIME_WAIT do not make a port busy
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def holder_of(port: int) -> str | None:
    """Which process listens on a TCP port (from /proc; None where it cannot be told)."""
    try:
        inodes = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(table) as f:
                for line in f.readlines()[1:]:
                    parts = line.split()
                    local, state, inode = parts[1], parts[3], parts[9]
                    if state == "0A" and int(local.split(":")[1], 16) == port:
                        inodes.add(inode)
        if not inodes:
            return None
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if link.startswith("socket:[") and link[8:-1] in inodes:
                        cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
                        return f"pid {pid} ({cmd.strip()[:80]})"
            except OSError:
                continue
    except OSError:
        return None
    return None


def _pid_alive(pid: int) -> bool:
    from .supervisor import pid_alive
    return pid_alive(pid)


class Claims:
    """Which lab holds which port, machine-wide, for this user: $APPMESH_LAB_PORT_CLAIMS, else
    <runtime dir or temp dir>/appmesh-lab-<uid>/ports (owner-only; UnsafeFolder when it is not)."""

    def __init__(self, home: str, pid: int | None = None, directory: str | None = None):
        self.home = str(Path(home).resolve())
        self.pid = pid if pid is not None else os.getpid()
        base = directory or os.environ.get("APPMESH_LAB_PORT_CLAIMS")
        if base:
            Path(base).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.dir = private_dir(base)
        else:
            self.dir = private_dir(user_runtime_dir() / "ports")

    def _open(self, name: str, flags: int):
        try:
            return os.open(self.dir / name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafeFolder(f"{self.dir / name} is a symbolic link; the lab does not follow links in its "
                                   f"claims folder: remove it") from exc
            raise

    @contextlib.contextmanager
    def locked(self):
        with os.fdopen(self._open(".lock", os.O_RDWR | os.O_CREAT), "r+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def claimant(self, port: int) -> tuple[int, str] | None:
        """(pid, home) of the last lab that claimed `port`, its daemon alive or not."""
        try:
            with os.fdopen(self._open(str(port), os.O_RDONLY | os.O_NONBLOCK), "rb") as f:
                pid, home = f.read(8192).decode().split(" ", 1)
            return int(pid), home
        except (OSError, ValueError, UnsafeFolder):  # no claim, or a torn or planted one: nobody holds the port
            return None

    def holder(self, port: int) -> tuple[int, str] | None:
        """(pid, home) of the live lab that claims `port`, None when nobody alive does."""
        c = self.claimant(port)
        return c if c is not None and _pid_alive(c[0]) else None

    def other_holds(self, port: int) -> bool:
        h = self.holder(port)
        return h is not None and h[1] != self.home

    def other_left_listening(self, port: int) -> bool:
        """Another lab claimed `port` last, its daemon is gone, and something still listens on it:
        that lab's Envoys outlive their daemon (a restarted daemon adopts them), so a killed lab's
        gateway may still be bound there, and with SO_REUSEPORT a second gateway would share it."""
        c = self.claimant(port)
        return c is not None and c[1] != self.home and not _pid_alive(c[0]) and not port_is_free(port)

    def claim(self, port: int) -> None:
        name = f".{port}.{self.pid}"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.dir / name)  # a leftover of a crash (or a planted link: unlink never follows it)
        with os.fdopen(self._open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL), "w") as f:
            f.write(f"{self.pid} {self.home}")
        os.replace(self.dir / name, self.dir / str(port))  # rename replaces a link at the target, never writes through

    def release(self, port: int) -> None:
        h = self.holder(port)
        if h is None or h[1] == self.home:
            with contextlib.suppress(FileNotFoundError):  # released already
                (self.dir / str(port)).unlink()


class Ports:
    """Ports kept in the store under `port:<key>`, and claimed machine-wide (see Claims)."""

    def __init__(self, store, claims: Claims):
        self.store = store
        self.claims = claims
        self._taken = set(self.store.kv_items("port:").values())
        # key -> port claimed by this process: while it lives no other lab takes the claim, so the
        # reconcile loop's many calls for the same keys need no lock and no file
        self._mine: dict = {}

    def get(self, key: str, preferred: int | None = None) -> int:
        if key in self._mine:
            return self._mine[key]
        with self.claims.locked():
            stored = self.store.kv_get(f"port:{key}")
            if (stored is not None and not self.claims.other_holds(stored)
                    and not self.claims.other_left_listening(stored)):
                self.claims.claim(stored)
                self._mine[key] = stored
                return stored
            if stored is not None:  # another lab took it (or left its processes on it) while this one was stopped: move
                self._taken.discard(stored)
            port = None
            if (preferred and preferred not in self._taken and not self.claims.other_holds(preferred)
                    and port_is_free(preferred)):
                port = preferred
            while port is None or port in self._taken or self.claims.other_holds(port):
                port = free_port()
            self._taken.add(port)
            self.claims.claim(port)
            self.store.kv_set(f"port:{key}", port)
            self._mine[key] = port
            return port

    def release(self, key: str) -> None:
        self._mine.pop(key, None)
        p = self.store.kv_get(f"port:{key}")
        if p is not None:
            self._taken.discard(p)
            self.store.kv_delete(f"port:{key}")
            with self.claims.locked():
                self.claims.release(p)

    def unclaim_all(self) -> None:
        """Drop this lab's machine-wide claims (the daemon stops; its store keeps the ports)."""
        self._mine.clear()
        with self.claims.locked():
            for port in self.store.kv_items("port:").values():
                self.claims.release(port)

    def all(self) -> dict:
        return {k[len("port:"):]: v for k, v in self.store.kv_items("port:").items()}
