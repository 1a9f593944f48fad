"""The CLI's (and the notebooks') way to talk to the lab daemon: JSON over HTTP on the daemon's Unix
socket (lab/runtime/sockets.py), which only the lab's owner can connect to."""
from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import procs
from .home import Paths, UnsafeHome, lab_home
from .ports import Claims
from .procs import Identity
from .sockets import Sockets, UnsafeFolder, unix_request


class LabError(Exception):
    """Something the user can act on; the message says what and how."""


class NotRunning(LabError):
    pass


class Client:
    def __init__(self, home: Path | None = None):
        self.paths = Paths(home or lab_home())
        self.sockets = Sockets(self.paths.home)
        self.restoring: list = []  # what up() waits for now (restore_pending)

    def check_home(self) -> None:
        """Refuse a lab home another user could change (its daemon.json could send the owner's
        requests anywhere; its store could name any process)."""
        try:
            self.paths.check()
        except UnsafeHome as exc:
            raise LabError(str(exc)) from exc

    def info(self) -> dict | None:
        self.check_home()
        try:
            return json.loads(self.paths.daemon_info.read_text())
        except (OSError, ValueError):
            return None

    def running(self) -> bool:
        info = self.info()
        if not info:
            return False
        try:
            self.call("GET", "/v1/status", timeout=3)
            return True
        except LabError:
            return False

    def call(self, method: str, path: str, body: dict | None = None, timeout: float = 60, ok=(200,)):
        info = self.info()
        if not info:
            raise NotRunning(f"the lab is not running (no daemon in {self.paths.home}); start it with: appmesh-lab up")
        data = json.dumps(body).encode() if body is not None else None
        sock = self.sockets.api
        try:
            code, _, raw = unix_request(sock, method, path, data, {"Content-Type": "application/json"}, timeout)
        except (OSError, http.client.HTTPException) as exc:
            # HTTPException: the daemon went away in the middle of its answer (IncompleteRead)
            raise NotRunning(f"the lab daemon does not answer on {sock} ({exc}); "
                             f"see {self.paths.daemon_log}, or restart with: appmesh-lab down && appmesh-lab up") from exc
        try:
            payload = json.loads(raw or b"{}")
        except ValueError as exc:
            raise LabError(f"the lab daemon answered {code} with something that is not JSON: {raw[:200]!r}") from exc
        if code in ok or 200 <= code < 300:
            return payload
        payload["_status"] = code
        return payload

    # -- lifecycle ----------------------------------------------------------------------

    def up(self, timeout: float = 30, progress=None, restore_timeout: float = 60) -> dict:
        """Start the daemon (unless it runs) and return once it answers and has restored what the
        store holds: every stored pod running and every Envoy of them connected with its
        configuration ACKed (a daemon that was killed left them behind; a stopped lab starts them
        again). Returns daemon.json's content (the new daemon's pid), "already", and "waiting":
        pods that crash-loop (they are restored as far as they can be)."""
        if self.running():
            return {"already": True, **self.info(), "waiting": []}
        try:
            self.paths.ensure()
            self.sockets.ensure()  # refused here, with what to do, before a daemon is started
            Claims(str(self.paths.home))  # the port-claims folder: the same checks
        except (UnsafeHome, UnsafeFolder) as exc:
            raise LabError(str(exc)) from exc
        log = open(os.open(self.paths.daemon_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        proc = subprocess.Popen([sys.executable, "-m", "lab.runtime.daemon", "--home", str(self.paths.home)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env)
        deadline = time.time() + timeout
        while True:
            if proc.poll() is not None:
                raise LabError("the lab daemon exited at start:\n" + self.log_tail())
            info = self.info()
            # daemon.json of a daemon killed earlier stays until the new one replaces it (after its
            # first reconcile): only the new daemon's own counts
            if info and info.get("pid") == proc.pid and self.running():
                break
            if time.time() >= deadline:
                proc.terminate()  # never left running behind an error (it runs in a session of its own)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                raise LabError(f"the lab daemon did not answer within {timeout:.0f}s; its log:\n" + self.log_tail())
            if progress:
                progress()
            time.sleep(0.1)
        deadline = time.time() + restore_timeout
        while True:
            waiting, settled = restore_pending(self.call("GET", "/v1/status"))
            self.restoring = waiting  # what `up` waits for now (the CLI names it when it takes long)
            if not waiting:
                return {"already": False, **info, "waiting": settled}
            if time.time() >= deadline:
                raise LabError(f"the lab daemon runs (pid {proc.pid}), but restoring what it stores did not complete "
                               f"within {restore_timeout:.0f}s: " + "; ".join(waiting[:5])
                               + "\nsee `appmesh-lab doctor` and `appmesh-lab logs POD -c envoy`")
            if progress:
                progress()
            time.sleep(0.1)

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.paths.daemon_log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no daemon log)"

    def down(self, timeout: float = 20) -> bool:
        """Stop the daemon and everything it runs. Returns whether anything was running.

        Only processes proven to be the lab's are signalled (procs.py): the daemon as daemon.json
        describes it, and the processes the store lists, each by pid, start time and command line.
        A pid that now belongs to another process is left alone."""
        from ..store import Store
        info = self.info()
        was = False
        if info:
            daemon = Identity.from_dict(info.get("ident"))
            try:
                self.call("POST", "/v1/shutdown", {}, timeout=5)
                was = True
            except LabError:
                was = False  # it does not answer: it is stopped with a signal below, if it still runs
            deadline = time.time() + timeout
            while procs.is_running(daemon) and time.time() < deadline:
                time.sleep(0.05)
            if procs.signal_process(daemon, signal.SIGKILL, group=False):
                was = True
            self.paths.daemon_info.unlink(missing_ok=True)
        # processes a killed daemon left behind
        if self.paths.db.exists():
            store = Store(self.paths.db)
            try:
                for key, proc in store.kv_items("proc:").items():
                    if isinstance(proc, dict) and procs.stop(Identity.from_dict(proc.get("ident"))):
                        was = True
                    store.kv_delete(key)
            finally:
                store.close()
        return was


    def purge(self) -> tuple[list[str], list[str]]:
        """Remove what the lab created in its home (after `down`): (removed, kept)."""
        try:
            return self.paths.purge()
        except UnsafeHome as exc:
            raise LabError(f"{exc}; nothing was removed") from exc


def restore_pending(status: dict) -> tuple[list, list]:
    """What a lab's status says is not back yet: (waiting, settled). `waiting` names pods that are not
    running (or whose app does not accept connections yet) and proxies that have not ACKed their
    configuration; `settled` names pods that crash-loop and proxies whose listener port another
    process holds, which no waiting brings back."""
    waiting, settled = [], []
    for p in status["pods"]:
        if p["status"] in ("CrashLoopBackOff", "Error"):
            settled.append(f"pod {p['namespace']}/{p['name']} is {p['status']}")
        elif p["status"] != "Running":
            waiting.append(f"pod {p['namespace']}/{p['name']} is {p['status']}")
        else:
            waiting += [f"container {p['namespace']}/{p['name']}/{k['name']} runs but does not accept connections yet"
                        for k in p["containers"] if not k.get("ready", True)]
    # only proxies some pod runs can connect (a virtual node without pods has nobody to ACK)
    bad = {p.get("node_id") for p in status["pods"] if p["status"] in ("CrashLoopBackOff", "Error")}
    running = {p.get("node_id") for p in status["pods"]} - bad
    for x in status["proxies"]:
        if not x.get("snapshot_version") or x["node_id"] not in running:
            continue
        if x.get("port_conflict"):  # no waiting frees a port another process holds: said, not waited for
            settled.append(x["port_conflict"]["message"])
        elif not x["connected"]:
            waiting.append(f"proxy {x['node_id']} is not connected")
        elif (not all(t["acked_version"] == t["last_sent_version"] for t in x["types"].values() if t["last_sent_version"])
              or (x.get("push") or {}).get("acked", True) is None):  # connected, its push not (all) sent yet
            waiting.append(f"proxy {x['node_id']} has not ACKed version {x.get('snapshot_version')}")
    return waiting, settled
