"""One supervisor for every process the lab runs: apps and Envoys.

Processes run in their own session (so a daemon killed with SIGKILL leaves them serving);
their identity (pid, start time and command line: procs.py) and a fingerprint of their spec are
kept in the store, so a restarted daemon adopts them instead of starting them twice, and never
mistakes an unrelated process that got a recycled pid for one of them. A process that exits is restarted with backoff, and the
restart is counted (shown in `get pods`) and reported through `on_event`.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from . import procs
from .procs import Identity

BACKOFF = (0.2, 0.5, 1, 2, 5, 10)


@dataclass
class ProcSpec:
    name: str  # "<namespace>/<pod>/<container>"
    argv: list
    env: dict
    log: Path
    cwd: str | None = None

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps([self.argv, sorted(self.env.items())]).encode()).hexdigest()[:16]


@dataclass
class _Proc:
    spec: ProcSpec
    pid: int | None = None
    popen: subprocess.Popen | None = None  # set when this daemon started it (an adopted process has none)
    ident: Identity | None = None
    restarts: int = 0
    started: float = 0.0
    next_start: float = 0.0
    last_exit: int | None = None
    state: str = "Pending"  # Pending | Running | CrashLoopBackOff | Error
    error: str = ""


def pid_alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][:1] not in ("Z", "X")
    except OSError:
        try:
            os.kill(pid, 0)
            return True
        except OSError:
            return False


class Supervisor:
    def __init__(self, store, on_event=None, on_change=None):
        self.store = store
        self.on_event = on_event or (lambda name, type_, reason, message: None)
        self.on_change = on_change or (lambda: None)
        self.procs: dict[str, _Proc] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._adopt()

    # -- persistence --------------------------------------------------------------------

    def _save(self, p: _Proc) -> None:
        self.store.kv_set(f"proc:{p.spec.name}", {"pid": p.pid, "fp": p.spec.fingerprint(), "restarts": p.restarts,
                                                  "started": p.started, "argv0": p.spec.argv[0],
                                                  "ident": p.ident.to_dict() if p.ident else None})

    def _adopt(self) -> None:
        """Remember processes a previous daemon started; `ensure` adopts those that still run."""
        self._orphans = self.store.kv_items("proc:")

    # -- public -------------------------------------------------------------------------

    def ensure(self, specs: dict[str, ProcSpec]) -> None:
        """Make the running set equal `specs`: start what is missing, stop what is not wanted,
        restart what changed."""
        with self._lock:
            for name in [n for n in self.procs if n not in specs]:
                self._stop_proc(self.procs.pop(name))
                self.store.kv_delete(f"proc:{name}")
            for name, spec in specs.items():
                p = self.procs.get(name)
                if p and p.spec.fingerprint() != spec.fingerprint():
                    self._stop_proc(p)
                    p = None
                if p is None:
                    p = _Proc(spec)
                    old = self._orphans.pop(f"proc:{name}", None)
                    old = old if isinstance(old, dict) else {}
                    ident = Identity.from_dict(old.get("ident"))
                    if ident and old.get("fp") == spec.fingerprint() and procs.is_running(ident):
                        p.pid, p.ident, p.state = ident.pid, ident, "Running"
                        p.restarts, p.started = old.get("restarts", 0), old.get("started", 0)
                    elif ident:  # a previous daemon's process for an older spec: replaced, not left running
                        procs.stop(ident, 5.0)
                    self.procs[name] = p
                    if p.pid is None:
                        self._start(p)
            # processes of a previous daemon that nothing wants any more
            # (only those still proven to be what it started: a recycled pid is somebody else's)
            for key, old in list(self._orphans.items()):
                if key[len("proc:"):] not in specs and isinstance(old, dict):
                    procs.stop(Identity.from_dict(old.get("ident")), 3.0)
                self.store.kv_delete(key)
                self._orphans.pop(key, None)

    def start_monitor(self) -> None:
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)
        self._thread.start()

    def stop_all(self, grace: float = 5.0) -> None:
        self._stop.set()
        with self._lock:
            running = list(self.procs.values())
            for p in running:
                if p.pid:
                    _signal(p, signal.SIGTERM)
            deadline = time.time() + grace
            for p in running:
                while p.pid and _alive_or_reap(p) and time.time() < deadline:
                    time.sleep(0.05)
                if p.pid and _alive_or_reap(p):
                    _signal(p, signal.SIGKILL)
                    _wait_gone(p, 2.0)
                self.store.kv_delete(f"proc:{p.spec.name}")
            self.procs.clear()

    def kill(self, name: str, sig=signal.SIGKILL) -> bool:
        """For fault drills: send a signal to one process."""
        with self._lock:
            p = self.procs.get(name)
            if p and p.pid:
                return _signal(p, sig, group=False)
        return False

    def status(self) -> dict:
        with self._lock:
            return {n: {"pid": p.pid, "state": p.state, "restarts": p.restarts, "started": p.started,
                        "last_exit": p.last_exit, "error": p.error, "log": str(p.spec.log)}
                    for n, p in self.procs.items()}

    # -- internals ----------------------------------------------------------------------

    def _start(self, p: _Proc) -> None:
        p.spec.log.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(p.spec.log, "ab") as log:
                log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(p.spec.argv)}\n".encode())
                log.flush()
                p.popen = subprocess.Popen(p.spec.argv, env=p.spec.env, cwd=p.spec.cwd, stdin=subprocess.DEVNULL,
                                           stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            p.state, p.error, p.pid = "Error", f"cannot start {p.spec.argv[0]}: {exc.strerror}", None
            p.next_start = time.time() + BACKOFF[min(p.restarts, len(BACKOFF) - 1)]
            self.on_event(p.spec.name, "Warning", "FailedStart", p.error)
            return
        p.pid, p.started, p.state, p.error = p.popen.pid, time.time(), "Running", ""
        p.ident = _identify_started(p.popen)
        self._save(p)

    def _stop_proc(self, p: _Proc) -> None:
        if p.pid and p.popen is not None:
            _kill_group(p.pid, 5.0, p.popen)
        elif p.pid:
            procs.stop(p.ident, 5.0)
        p.pid, p.ident = None, None

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            changed = False
            with self._lock:
                now = time.time()
                for p in self.procs.values():
                    if p.pid and not _alive_or_reap(p):
                        code = p.popen.returncode if p.popen else None
                        p.last_exit, p.pid, p.popen, p.ident = code, None, None, None
                        p.restarts += 1
                        delay = BACKOFF[min(p.restarts - 1, len(BACKOFF) - 1)] if now - p.started < 10 else BACKOFF[0]
                        p.next_start = now + delay
                        p.state = "CrashLoopBackOff" if p.restarts > 2 and now - p.started < 10 else "Restarting"
                        self.on_event(p.spec.name, "Warning", "BackOff",
                                      f"{p.spec.name} exited (code {code}); restarting in {delay}s (restart {p.restarts})")
                        changed = True
                    elif p.pid is None and now >= p.next_start and not self._stop.is_set():
                        self._start(p)
                        if p.pid:
                            self._save(p)
                            self.on_event(p.spec.name, "Normal", "Restarted", f"{p.spec.name} started again (pid {p.pid})")
                            changed = True
            if changed:
                self.on_change()


def _identify_started(popen: subprocess.Popen, timeout: float = 1.0) -> Identity | None:
    """The identity of a process just started. Popen (with vfork) returns while the kernel is still
    setting up the new program, when /proc shows no command line yet: it is read again until it
    does. None when the process has exited already (the monitor sees that): a later daemon then
    never adopts or signals its pid."""
    deadline = time.monotonic() + timeout
    while True:
        ident = procs.identify(popen.pid)
        if ident is not None or popen.poll() is not None or time.monotonic() > deadline:
            return ident
        time.sleep(0.001)


def _alive_or_reap(p: _Proc) -> bool:
    if p.popen is not None:
        return p.popen.poll() is None
    return p.pid is not None and procs.is_running(p.ident)


def _signal(p: _Proc, sig, group: bool = True) -> bool:
    """Signal a supervised process: a child of this daemon by its pid (not reaped yet, so the pid
    is still its own), an adopted one only while its identity still matches."""
    if p.popen is not None:
        if p.popen.poll() is not None:
            return False
        if group:
            _signal_group(p.pid, sig)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, sig)
        return True
    return procs.signal_process(p.ident, sig, group)


def _signal_group(pid: int, sig) -> None:
    try:
        os.killpg(pid, sig)
    except OSError:
        with contextlib.suppress(ProcessLookupError):  # already gone: nothing to signal
            os.kill(pid, sig)


def _wait_gone(p: _Proc, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and _alive_or_reap(p):
        time.sleep(0.02)


def _kill_group(pid: int, grace: float, popen: subprocess.Popen) -> None:
    """Stop a child of this daemon and its group (its pid stays its own until it is reaped)."""
    _signal_group(pid, signal.SIGTERM)
    deadline = time.time() + grace
    while time.time() < deadline:
        if popen.poll() is not None:
            return
        time.sleep(0.02)
    _signal_group(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):  # SIGKILLed: reaped when the kernel can
        popen.wait(2)
