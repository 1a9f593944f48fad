"""Quiet time for a measurement while `appmesh-lab e2e` runs notebooks on several labs at once.

A lesson that measures latency (lab.notebook.measure.latency_by_hop) compares a few
milliseconds; a notebook running on another lab at that moment takes CPU from the Envoys being
timed. So the suite's labs coordinate through one lock file per lab, in a folder the runner
names in the kernels' environment ($APPMESH_LAB_QUIET_DIR, and $APPMESH_LAB_QUIET_LANE: which
lab this kernel's is):

  * the runner holds its lab's lock while a cell of that lab's notebook runs (CellGate), and
    before taking it passes a gate shared by all labs;
  * a measurement (`with quiet():`) closes the gate (no lab starts another cell), then takes
    every other lab's lock: it waits for the cells running there to end. Its own lab's lock it
    leaves alone (its own cell holds it). Closing the gate first is what lets it in: a lab
    takes its lock again within a millisecond of a cell's end.

Without the variables (a notebook run on its own, or one lab) quiet() does nothing. Two labs
measuring at once would each wait for the other's cell: so quiet() waits at most `timeout`
seconds, then measures anyway, as it would on a busy machine. Locks are flock(2) locks: they go
when the process holding them exits, so a killed kernel or runner leaves nothing held.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

ENV_DIR = "APPMESH_LAB_QUIET_DIR"
ENV_LANE = "APPMESH_LAB_QUIET_LANE"


def _path(folder, lane: int) -> Path:
    return Path(folder) / f"lab-{lane}.lock"


def _gate(folder) -> Path:
    return Path(folder) / "gate.lock"


def _open(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


class CellGate:
    """The runner's side, one per lab: held while one of that lab's cells runs."""

    def __init__(self, folder, lane: int):
        Path(folder).mkdir(mode=0o700, exist_ok=True)
        self.fd = _open(_path(folder, lane))
        self.gate = _open(_gate(folder))
        self.held = False

    def enter(self, **_) -> None:
        """Before a cell: waits while a measurement on another lab holds this lab quiet."""
        if not self.held:
            fcntl.flock(self.gate, fcntl.LOCK_SH)   # waits while a measurement has the gate closed
            fcntl.flock(self.gate, fcntl.LOCK_UN)
            fcntl.flock(self.fd, fcntl.LOCK_EX)     # ... or, if it closed it just now, for its end
            self.held = True

    def leave(self, **_) -> None:
        """After a cell (or a notebook that ended in the middle of one)."""
        if self.held:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            self.held = False

    def close(self) -> None:
        self.leave()
        os.close(self.fd)
        os.close(self.gate)


@contextlib.contextmanager
def quiet(timeout: float = 30.0, poll: float = 0.02):
    """Hold the suite's other labs still while the block runs (see the module doc)."""
    folder, lane = os.environ.get(ENV_DIR), os.environ.get(ENV_LANE, "")
    if not folder or not lane.isdigit() or not Path(folder).is_dir():
        yield
        return
    fds = []
    try:
        deadline = time.monotonic() + timeout
        others = [p for p in sorted(Path(folder).glob("lab-*.lock")) if p.name != f"lab-{lane}.lock"]
        for path in [_gate(folder)] + others:   # the gate first
            fd = _open(path)
            fds.append(fd)
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        break   # measured anyway, as on a busy machine
                    time.sleep(poll)
        yield
    finally:
        for fd in fds:
            os.close(fd)   # closing the last descriptor releases its lock
