"""Stable port allocation on 127.0.0.1: a port, once given to a key, is kept across restarts."""
from __future__ import annotations

import errno
import socket


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
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
        import os
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


class Ports:
    """Ports kept in the store under `port:<key>`."""

    def __init__(self, store):
        self.store = store
        self._taken = set(self.store.kv_items("port:").values())

    def get(self, key: str, preferred: int | None = None) -> int:
        stored = self.store.kv_get(f"port:{key}")
        if stored is not None:
            return stored
        port = None
        if preferred and preferred not in self._taken and port_is_free(preferred):
            port = preferred
        while port is None or port in self._taken:
            port = free_port()
        self._taken.add(port)
        self.store.kv_set(f"port:{key}", port)
        return port

    def release(self, key: str) -> None:
        p = self.store.kv_get(f"port:{key}")
        if p is not None:
            self._taken.discard(p)
            self.store.kv_delete(f"port:{key}")

    def all(self) -> dict:
        return {k[len("port:"):]: v for k, v in self.store.kv_items("port:").items()}
