"""Which process a pid is, so the lab signals only processes it can prove are its own.

A pid alone proves nothing: once a process exits, the kernel hands its pid to the next process
that starts, possibly another user's or another program of the owner's. So whenever the lab
starts a process it records an identity: the pid, the kernel's start time of the process
(field 22 of /proc/<pid>/stat, in clock ticks since boot, which never changes during the
process's life and differs for the next process given the same pid) and its command line. Before
it signals a process it did not start in this very daemon (an adopted one, one listed in the
store or in daemon.json) it checks that all three still match. A pid whose identity does not
match is left alone: the process the lab started is gone, and the pid now belongs to somebody
else.

Where pidfds exist (Linux 5.3+), the process is pinned with a pidfd before the check, and the
signal to the process itself goes through that pidfd, so nothing can slip in between the check
and the signal. The signal to the rest of its process group (the lab starts every process in a
session of its own) follows with killpg: a pid is not given out again while a process group of
that id exists, and the leader was just proven alive.

Without /proc (macOS), `ps` gives the start time and the command line.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Identity:
    pid: int
    start: str  # the kernel's start time of the process (clock ticks since boot on Linux)
    cmdline: tuple  # its arguments, as the kernel shows them

    def to_dict(self) -> dict:
        return {"pid": self.pid, "start": self.start, "cmdline": list(self.cmdline)}

    @classmethod
    def from_dict(cls, d) -> "Identity | None":
        """An identity read back from a record; None when the record does not hold one (a record
        written by an older lab, or damaged): such a pid cannot be proven to be the lab's."""
        if not isinstance(d, dict):
            return None
        pid, start, cmd = d.get("pid"), d.get("start"), d.get("cmdline")
        if type(pid) is not int or pid <= 1 or not isinstance(start, str) or not start \
                or not isinstance(cmd, list) or not cmd or not all(isinstance(a, str) for a in cmd):
            return None
        return cls(pid, start, tuple(cmd))


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat from field 3 (state) on; the command name (field 2) may hold spaces and
    parentheses, so the split is after its last ')'."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode(errors="replace")
    except OSError:
        return None
    return text[text.rfind(")") + 2:].split()


def _proc_identity(pid: int) -> Identity | None:
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    cmd = tuple(raw.decode(errors="replace").split("\0")[:-1]) if raw else ()
    if not cmd:  # a kernel thread, or a process on its way out
        return None
    return Identity(pid, fields[19], cmd)  # fields[19] is field 22, starttime


def _ps_identity(pid: int) -> Identity | None:
    try:
        out = subprocess.run(["ps", "-o", "stat=", "-o", "lstart=", "-o", "command=", "-p", str(pid)],
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    line = out.stdout.strip()
    if out.returncode != 0 or not line:
        return None
    state, _, rest = line.partition(" ")
    rest = rest.strip()
    if state.startswith("Z") or len(rest) < 25:
        return None
    return Identity(pid, rest[:24], (rest[24:].strip(),))  # lstart is "Sun Dec  6 13:10:45 2026"


def identify(pid: int) -> Identity | None:
    """The identity of the live process `pid` now, or None when there is none (or a zombie)."""
    if type(pid) is not int or pid <= 1:
        return None
    if os.path.isdir("/proc/self"):
        return _proc_identity(pid)
    return _ps_identity(pid)


def is_running(ident: Identity | None) -> bool:
    """Whether the process `ident` describes still runs (and its pid was not given to another)."""
    return ident is not None and identify(ident.pid) == ident


def signal_process(ident: Identity | None, sig: int, group: bool = True) -> bool:
    """Send `sig` to the process `ident` describes (and to its process group), only if it is
    still that process. Returns whether a signal was sent."""
    if ident is None:
        return False
    fd = None
    if hasattr(os, "pidfd_open"):
        try:
            fd = os.pidfd_open(ident.pid)
        except OSError:
            fd = None  # gone already, or a kernel without pidfds: checked and signalled by pid below
    try:
        if not is_running(ident):
            return False
        if fd is not None:
            try:
                signal.pidfd_send_signal(fd, sig)
            except ProcessLookupError:
                return False
        if group:
            try:
                os.killpg(ident.pid, sig)
            except OSError:
                if fd is None:  # not a group leader: the process alone
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(ident.pid, sig)
        elif fd is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(ident.pid, sig)
        return True
    finally:
        if fd is not None:
            os.close(fd)


def stop(ident: Identity | None, grace: float = 3.0, group: bool = True) -> bool:
    """SIGTERM the process `ident` describes (and its group), then SIGKILL after `grace` seconds if
    it still runs. Returns whether it was running (and so was signalled)."""
    if not signal_process(ident, signal.SIGTERM, group):
        return False
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not is_running(ident):
            return True
        time.sleep(0.02)
    signal_process(ident, signal.SIGKILL, group)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and is_running(ident):
        time.sleep(0.02)
    return True
