"""The local lab's Unix sockets, the owner-only folders that hold them, and HTTP over them.

The daemon's control API, the xDS server and every Envoy's admin interface listen on Unix
sockets (mode 0600) in a folder only the lab's owner can enter (0700), as Docker's and
containerd's do: another local user can neither connect to them nor put a socket of their own in
their place. The folder is `<lab home>/run` when its paths fit in a socket address (108 bytes on
Linux, the NUL included); a deeper home (a pytest tmp dir) gets a folder of its own in the
user's runtime folder, `$XDG_RUNTIME_DIR` or the temp dir: `appmesh-lab-<uid>/<hash of home>/`.

A folder the lab keeps its files in outside the home (that runtime folder, the port claims) is
created 0700 and refused, with what to do, when it is a symbolic link, belongs to another user or
can be written by others: whoever controls it could read or redirect what the lab puts there.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import pwd
import socket
import stat
import struct
import sys
import tempfile
import time
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path

from .home import Paths

# bytes of sun_path, less the terminating NUL (108 on Linux, 104 on macOS and the BSDs)
MAX_SOCKET_PATH = 107 if sys.platform.startswith("linux") else 103
_LONGEST_NAME = len("admin.0123456789abcdef.sock")


class UnsafeFolder(Exception):
    """A folder the lab would keep its files in is not safely the user's own."""


def _user(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def private_dir(path: Path | str) -> Path:
    """Create `path` with mode 0700 (its parent must exist), or check the one that is there: a real
    folder (not a symbolic link), owned by this user, not writable by group or others. Raises
    UnsafeFolder, naming the folder and what to do, otherwise."""
    path = Path(path)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    fix = ("remove it (as its owner, or root) and run the command again, or set XDG_RUNTIME_DIR to a folder of "
           "your own (mode 0700)")
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeFolder(f"{path} is a symbolic link (to {os.readlink(path)}); the lab keeps its files only in a "
                           f"folder of its own: {fix}")
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeFolder(f"{path} is not a folder: {fix}")
    if st.st_uid != os.getuid():
        raise UnsafeFolder(f"{path} belongs to {_user(st.st_uid)}, not to you ({_user(os.getuid())}): another user "
                           f"could read or replace what the lab keeps there; {fix}")
    if st.st_mode & 0o022:
        raise UnsafeFolder(f"{path} can be written by its group or by others (mode {oct(st.st_mode & 0o7777)}); "
                           f"make it yours only: chmod 700 {path}")
    if st.st_mode & 0o777 != 0o700:
        os.chmod(path, 0o700)  # ours and not writable by others: only tighten it
    return path


def user_runtime_dir() -> Path:
    """This user's folder for the lab's runtime files outside lab homes (checked, see private_dir)."""
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())
    return private_dir(base / f"appmesh-lab-{os.getuid()}")


def _fits(path: Path) -> bool:
    return len(os.fsencode(str(path))) <= MAX_SOCKET_PATH


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Sockets:
    """Where a lab home's sockets are; the same paths for the daemon and its clients."""

    home: Path

    @property
    def dir(self) -> Path:
        home = Path(self.home).resolve()
        local = Paths(home).run
        if _fits(local / ("x" * _LONGEST_NAME)):
            return local
        base = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()) / f"appmesh-lab-{os.getuid()}"
        return base / _hash(str(home))

    def ensure(self) -> Path:
        """Create (or check) the folder, owner-only; raises UnsafeFolder."""
        d = self.dir
        if d.parent != Path(self.home).resolve():
            user_runtime_dir()
        return private_dir(d)

    @property
    def api(self) -> Path:
        """The daemon's control API (HTTP)."""
        return self.dir / "api.sock"

    @property
    def xds(self) -> Path:
        """The xDS (ADS over gRPC) server the lab's Envoys connect to."""
        return self.dir / "xds.sock"

    def admin(self, namespace: str, pod: str) -> Path:
        """The admin interface of the Envoy of a pod."""
        named = self.dir / f"admin.{namespace}.{pod}.sock"
        return named if _fits(named) else self.dir / f"admin.{_hash(namespace + '/' + pod)}.sock"


def remove_stale(path: Path) -> None:
    """Remove a socket file left by a process that is gone (the caller holds the lab's lock)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        raise UnsafeFolder(f"{path} is a folder where the lab puts a socket; remove it")
    os.unlink(path)


def peer_uid(sock: socket.socket) -> int:
    """The user id of the process at the other end of a Unix socket (SO_PEERCRED)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


class UnixHTTPServer(ThreadingHTTPServer):
    """An HTTP server on a Unix socket of mode 0600 that serves only its owner's processes."""

    address_family = socket.AF_UNIX
    daemon_threads = True
    # a full backlog makes connect() on a Unix socket fail at once (EAGAIN), where TCP would retry:
    # leave room for many clients at a time (the kernel caps it at net.core.somaxconn)
    request_queue_size = 1024

    def __init__(self, path: Path | str, handler):
        remove_stale(Path(path))
        super().__init__(str(path), handler)

    def server_bind(self) -> None:
        # bound in an owner-only folder, so no other user reaches it before it is made 0600
        self.socket.bind(self.server_address)
        os.chmod(self.server_address, 0o600)
        self.server_name, self.server_port = "localhost", 0

    def verify_request(self, request, client_address) -> bool:
        if not hasattr(socket, "SO_PEERCRED"):  # not Linux: the folder's and the socket's modes guard it
            return True
        try:
            return peer_uid(request) == os.getuid()
        except OSError:
            return False


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a Unix socket (the Host header says `localhost`)."""

    def __init__(self, path: Path | str, timeout: float = 60):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = str(path)

    def connect(self) -> None:
        for attempt in range(50):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(self.timeout)
            try:
                s.connect(self.socket_path)
            except BlockingIOError:  # the server's backlog is full for a moment: try again shortly
                s.close()
                if attempt == 49:
                    raise
                time.sleep(0.02)
                continue
            except OSError:
                s.close()
                raise
            self.sock = s
            return


def unix_request(path: Path | str, method: str, url: str, body: bytes | None = None, headers: dict | None = None,
                 timeout: float = 60) -> tuple[int, dict, bytes]:
    """One HTTP request over a Unix socket: (status, headers with lower-case names, body)."""
    conn = UnixHTTPConnection(path, timeout=timeout)
    try:
        try:
            conn.request(method, url, body=body, headers=headers or {})
        except (BrokenPipeError, ConnectionResetError):
            if conn.sock is None:
                raise
            # the server answered (a refusal) and closed before taking the whole body: read its answer
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()
