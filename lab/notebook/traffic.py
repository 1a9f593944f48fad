"""Sending requests through the gateway, as curl would, and checking their answers."""
from __future__ import annotations

import http.client
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .common import NotebookError


# ---- traffic ----------------------------------------------------------------------------

@dataclass
class Hit:
    """One request through the gateway and what answered it."""
    status: int
    elapsed_ms: float
    body: bytes
    headers: dict
    at: float = 0.0   # when it was sent, in seconds from the start of a load run (see load_during)

    def __repr__(self) -> str:
        who = f" {self.service} {self.version}" if self.service else ""
        seen = f" saw {self.path!r}" if self.path is not None else ""
        return f"<{self.status}{who}{seen}>"

    @property
    def data(self) -> dict:
        try:
            d = json.loads(self.body)
            return d if isinstance(d, dict) else {}
        except ValueError:
            return {}

    @property
    def service(self):
        return self.data.get("service")

    @property
    def version(self):
        return self.data.get("version")

    @property
    def path(self):
        return (self.data.get("request") or {}).get("path")

    @property
    def host(self):
        return (self.data.get("request") or {}).get("host")


def gateway_address(t, gateway: str | None = None, listener: int | None = None) -> tuple[str, int]:
    """(host, port) where a client reaches the gateway (by its App Mesh name, `<name>_<namespace>`;
    the first one when None), on its listener `listener` (the VirtualGateway's port; default: its first)."""
    if listener is not None:
        url = t.gateway_url(gateway, listener=listener)
    else:
        url = t.gateway_url(gateway) if gateway else t.gateway_url()
    hostport = url.split("//", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    return host, int(port)


def hit(t, path: str, n: int = 1, headers: dict | None = None, gateway: str | None = None, method: str = "GET",
        concurrency: int = 1, timeout: float = 10.0, address: tuple | None = None,
        listener: int | None = None) -> list[Hit]:
    """Send `n` requests for `path` through the gateway (its listener `listener`, or to `address`,
    a (host, port)), `concurrency` at a time over keep-alive connections (like a load generator),
    and return every answer in order."""
    host, port = address or gateway_address(t, gateway, listener)
    local = threading.local()

    def one(_i: int) -> Hit:
        import time as _time
        for attempt in (1, 2):
            conn = getattr(local, "conn", None)
            if conn is None:
                conn = local.conn = http.client.HTTPConnection(host, port, timeout=timeout)
            t0 = _time.perf_counter()
            try:
                conn.request(method, path, headers=headers or {})
                resp = conn.getresponse()
                body = resp.read()
                return Hit(resp.status, (_time.perf_counter() - t0) * 1000, body,
                           {k.lower(): v for k, v in resp.getheaders()})
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                local.conn = None
                if attempt == 2:
                    raise NotebookError(f"{method} {path} to {host}:{port} failed: {exc}") from exc
        raise AssertionError("unreachable")

    if concurrency <= 1:
        return [one(i) for i in range(n)]
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(one, range(n)))


def load_during(t, path: str, action, *, gateway: str | None = None, concurrency: int = 4,
                before_s: float = 0.5, after_s: float = 0.5, before_n: int = 0, after_n: int = 0,
                headers: dict | None = None, timeout: float = 10.0) -> tuple[list[Hit], tuple[float, float]]:
    """A load generator: `concurrency` clients send `path` back to back through the gateway,
    each over its own keep-alive connection, for `before_s` seconds and until `before_n` answers
    came, then while `action()` runs (an apply, say), then `after_s` seconds more and until
    `after_n` requests sent after the action's end were answered. The counts make each phase
    long enough on a busy machine, where half a second may hold a few dozen requests; a phase
    waits at most `timeout` seconds for its count. Returns every answer in the order sent, each
    with `.at` (seconds from the start), and the (start, end) of the action on the same clock.
    A request that got no HTTP answer at all is a Hit with status 0 and the error as its body."""
    import time as _time
    host, port = gateway_address(t, gateway)
    t0 = _time.perf_counter()
    stop = threading.Event()
    results: list[list[Hit]] = [[] for _ in range(concurrency)]

    def client(mine: list) -> None:
        conn = None
        while not stop.is_set():
            sent = _time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, port, timeout=timeout)
                conn.request("GET", path, headers=headers or {})
                resp = conn.getresponse()
                body = resp.read()
                mine.append(Hit(resp.status, (_time.perf_counter() - sent) * 1000, body,
                                {k.lower(): v for k, v in resp.getheaders()}, sent - t0))
            except (OSError, http.client.HTTPException) as exc:
                if conn is not None:
                    conn.close()
                conn = None
                mine.append(Hit(0, (_time.perf_counter() - sent) * 1000, str(exc).encode(), {}, sent - t0))
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=client, args=(r,), daemon=True) for r in results]
    for th in threads:
        th.start()
    def answered(since: float) -> int:
        return sum(1 for r in results for h in list(r) if h.at >= since)

    def phase(seconds: float, count: int, since: float) -> None:
        _time.sleep(seconds)
        deadline = _time.perf_counter() + timeout
        while answered(since) < count and _time.perf_counter() < deadline:
            _time.sleep(0.02)

    try:
        phase(before_s, before_n, 0.0)
        start = _time.perf_counter() - t0
        action()
        end = _time.perf_counter() - t0
        phase(after_s, after_n, end)
    finally:
        stop.set()
        for th in threads:
            th.join(timeout + 1)
    return sorted((h for r in results for h in r), key=lambda h: h.at), (start, end)


def curl_line(path: str, headers: dict | None = None, gateway: str | None = None, method: str = "GET") -> str:
    hs = "".join(f" -H '{k}: {v}'" for k, v in (headers or {}).items())
    x = f" -X {method}" if method != "GET" else ""
    q = f'"$GW{path}"' if any(c in path for c in "?&") else f"$GW{path}"
    return f"curl{x}{hs} {q}" + (f"      # GW: gateway {gateway}" if gateway else "")


def expect(t, path: str, status: int = 200, *, headers: dict | None = None, gateway: str | None = None,
           service: str | None = None, version: str | None = None, seen_path: str | None = None,
           seen_host: str | None = None, method: str = "GET", timeout: float = 30, echo: bool = True,
           listener: int | None = None) -> Hit:
    """Request `path` through the gateway (on its listener `listener`) until the answer is the
    expected one (config converges), then return it; fails with the last answer after `timeout` seconds."""
    if echo:
        print("$ " + curl_line(path, headers, gateway, method))

    def check() -> Hit:
        try:
            h = hit(t, path, headers=headers, gateway=gateway, method=method, listener=listener)[0]
        except NotebookError as exc:
            raise AssertionError(str(exc)) from exc
        assert h.status == status, f"{path}: status {h.status}, expected {status}: {h.body[:160]!r}"
        for field, want in (("service", service), ("version", version), ("path", seen_path), ("host", seen_host)):
            if want is not None:
                assert getattr(h, field) == want, f"{path}: {field} is {getattr(h, field)!r}, expected {want!r}"
        return h
    return t.eventually(check, timeout, what=f"{method} {path} answered {status}")


