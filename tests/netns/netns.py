"""Network namespaces for the pod-network test: create, run processes in, call code in, delete.

Everything here needs root. Names are unique per run (`amlnet-<pid>-<random>-<role>`), and
`sweep_stale()` removes the namespaces of earlier runs whose process is gone (a run killed with
SIGKILL cannot clean up after itself).

`Netns.call(fn)` runs `fn` in a new thread that has entered the namespace (setns(2) changes
the network namespace of the calling thread only), so sockets `fn` creates live there: the test
process can listen and connect inside a namespace without a helper process. Sockets keep their
namespace when used from other threads afterwards.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import re
import secrets
import shutil
import subprocess
import threading
import time
from pathlib import Path

PREFIX = "amlnet-"
CLONE_NEWNET = 0x40000000
ETC_NETNS = Path("/etc/netns")  # `ip netns exec` bind-mounts /etc/netns/<name>/* over /etc/*


def _setns(fd: int) -> None:
    if hasattr(os, "setns"):  # Python 3.12+
        os.setns(fd, CLONE_NEWNET)
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and out.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed ({out.returncode}): {out.stderr.strip()}")
    return out


def run_id() -> str:
    return f"{PREFIX}{os.getpid()}-{secrets.token_hex(2)}"


def sweep_stale() -> list[str]:
    """Delete namespaces (and their /etc/netns files) left by runs whose process has exited."""
    removed = []
    for line in ip("netns", "list").stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.match(rf"^{re.escape(PREFIX)}(\d+)-", name)
        if not m or Path(f"/proc/{m.group(1)}").exists():
            continue
        ip("netns", "delete", name, check=False)
        shutil.rmtree(ETC_NETNS / name, ignore_errors=True)
        removed.append(name)
    return removed


class Netns:
    def __init__(self, name: str):
        self.name = name
        self.procs: list[subprocess.Popen] = []
        self.made_etc_netns = False

    def create(self, etc: dict[str, str] | None = None) -> Netns:
        ip("netns", "add", self.name)
        ip("-n", self.name, "link", "set", "lo", "up")
        if etc:
            self.made_etc_netns = not ETC_NETNS.exists()
            d = ETC_NETNS / self.name
            d.mkdir(parents=True, exist_ok=True)
            for fname, text in etc.items():
                (d / fname).write_text(text)
                os.chmod(d / fname, 0o644)
        return self

    def sh(self, *argv: str, env: dict | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.name, *argv], capture_output=True, text=True,
                              env=env, timeout=timeout)

    def popen(self, argv: list[str], *, uid: int | None = None, env: dict | None = None, log: Path,
              cwd: str | None = None) -> subprocess.Popen:
        """Start argv in the namespace (as `uid`, its group the same number, no supplementary
        groups, when given). `ip netns exec` and `setpriv` exec in place, so the Popen's pid is
        the program's."""
        prefix = ["ip", "netns", "exec", self.name]
        if uid is not None:
            prefix += ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]
        with open(log, "ab") as out:
            if uid is not None:
                # as runc does for a container's stdio (fixStdioPermissions): owned by the
                # container's user, so it can reopen /dev/stdout (an access log's path)
                os.fchown(out.fileno(), uid, uid)
            proc = subprocess.Popen(prefix + argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                    start_new_session=True)
        self.procs.append(proc)
        return proc

    def call(self, fn, *args, timeout: float = 30):
        """fn(*args) in a thread that has entered this namespace; its result or its exception."""
        box: dict = {}

        def body():
            try:
                fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
                try:
                    _setns(fd)
                finally:
                    os.close(fd)
                box["value"] = fn(*args)
            except BaseException as exc:  # handed to the caller below
                box["error"] = exc

        t = threading.Thread(target=body, name=f"in-{self.name}", daemon=True)
        t.start()
        t.join(timeout)
        if t.is_alive():
            raise TimeoutError(f"{getattr(fn, '__name__', fn)} in namespace {self.name} still running after {timeout}s")
        if "error" in box:
            raise box["error"]
        return box.get("value")

    def stop(self) -> None:
        """Stop what popen() started: SIGTERM, then SIGKILL after 5 s."""
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + 5
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)

    def delete(self) -> None:
        self.stop()
        ip("netns", "delete", self.name, check=False)
        shutil.rmtree(ETC_NETNS / self.name, ignore_errors=True)
        if self.made_etc_netns:
            try:
                ETC_NETNS.rmdir()
            except OSError as exc:  # another run put its files there meanwhile: it removes the directory
                if exc.errno not in (errno.ENOTEMPTY, errno.ENOENT):
                    raise


def veth(a: Netns, b: Netns, name: str = "eth0") -> None:
    """A veth pair with one end (`name`) in each namespace; created from inside `a`, so the
    host's own namespace never holds either end, even briefly."""
    ip("-n", a.name, "link", "add", name, "type", "veth", "peer", "name", name, "netns", b.name)
    ip("-n", a.name, "link", "set", name, "up")
    ip("-n", b.name, "link", "set", name, "up")
