"""The CLI's (and the notebooks') way to talk to the lab daemon: JSON over loopback HTTP."""
from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from .home import Paths, lab_home
from .supervisor import pid_alive


class LabError(Exception):
    """Something the user can act on; the message says what and how."""


class NotRunning(LabError):
    pass


class Client:
    def __init__(self, home: Path | None = None):
        self.paths = Paths(home or lab_home())

    def info(self) -> dict | None:
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
        req = urllib.request.Request(f"http://127.0.0.1:{info['api_port']}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            try:
                with urllib.request.urlopen(req, timeout=timeout) as resp:
                    return json.loads(resp.read() or b"{}")
            except urllib.error.HTTPError as exc:
                payload, code = json.loads(exc.read() or b"{}"), exc.code
            if code in ok:
                return payload
            payload["_status"] = code
            return payload
        except (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException) as exc:
            # HTTPException: the daemon went away in the middle of its answer (IncompleteRead)
            raise NotRunning(f"the lab daemon does not answer on 127.0.0.1:{info['api_port']} ({exc}); "
                             f"see {self.paths.daemon_log}, or restart with: appmesh-lab down && appmesh-lab up") from exc

    # -- lifecycle ----------------------------------------------------------------------

    def up(self, timeout: float = 30, progress=None) -> dict:
        if self.running():
            return {"already": True, **self.info()}
        self.paths.ensure()
        log = open(os.open(self.paths.daemon_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        proc = subprocess.Popen([sys.executable, "-m", "lab.runtime.daemon", "--home", str(self.paths.home)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if proc.poll() is not None:
                raise LabError("the lab daemon exited at start:\n" + self.log_tail())
            if self.info() and self.running():
                return {"already": False, **self.info()}
            if progress:
                progress()
            time.sleep(0.1)
        raise LabError(f"the lab daemon did not answer within {timeout:.0f}s; its log:\n" + self.log_tail())

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.paths.daemon_log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no daemon log)"

    def down(self, timeout: float = 20) -> bool:
        """Stop the daemon and everything it runs. Returns whether anything was running."""
        from ..store import Store
        info = self.info()
        was = False
        if info:
            try:
                self.call("POST", "/v1/shutdown", {}, timeout=5)
                was = True
            except LabError:
                was = False  # it does not answer: it is stopped with a signal below
            pid = info.get("pid")
            deadline = time.time() + timeout
            while pid and pid_alive(pid) and time.time() < deadline:
                time.sleep(0.05)
            if pid and pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
                was = True
            self.paths.daemon_info.unlink(missing_ok=True)
        # processes a killed daemon left behind
        if self.paths.db.exists():
            store = Store(self.paths.db)
            for key, proc in store.kv_items("proc:").items():
                pid = proc.get("pid")
                if pid and pid_alive(pid):
                    _stop_group(pid)
                    was = True
                store.kv_delete(key)
            store.close()
        return was


def _stop_group(pid: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except OSError:
            return
        deadline = time.time() + 3
        while pid_alive(pid) and time.time() < deadline:
            time.sleep(0.05)
        if not pid_alive(pid):
            return
