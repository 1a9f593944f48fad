"""The target interface and what its calls return."""
from __future__ import annotations

import http.client
import json
import time
from dataclasses import dataclass, field


class TargetError(Exception):
    """A step on a target failed; the message says which step, and what to look at."""


@dataclass
class Response:
    status: int
    headers: dict = field(default_factory=dict)
    body: bytes = b""
    elapsed_ms: float = 0.0

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise TargetError(f"the response is not JSON (status {self.status}): {self.text[:200]!r}") from exc

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.text[:80]!r}>"


class Target:
    """What every target offers. Methods print the equivalent cluster command when `echo` is on."""

    name = "base"
    echo = True

    def say(self, command: str) -> None:
        if self.echo:
            print(f"$ {command}", flush=True)

    def eventually(self, check, timeout: float = 15.0, interval: float = 0.2, what: str = "the check"):
        """Retry `check()` until it returns without raising AssertionError (mesh config converges
        eventually; a single check is flaky). Re-raises the last failure with what was awaited."""
        deadline = time.time() + timeout
        while True:
            try:
                return check()
            except (AssertionError, TargetError) as exc:
                if time.time() >= deadline:
                    raise AssertionError(f"{what} did not hold within {timeout:.0f}s: {exc}") from exc
                time.sleep(interval)

    # lifecycle
    def up(self) -> None: ...
    def down(self, purge: bool = False) -> None: ...
    # resources
    def apply(self, path: str) -> list: ...
    def delete(self, path: str) -> list: ...
    def delete_text(self, text: str) -> list: ...
    def get(self, kind: str, name: str | None = None, namespace: str | None = None) -> list: ...
    def pods(self, namespace: str | None = None) -> list: ...
    def events(self, kind: str, name: str, namespace: str = "") -> list: ...
    # traffic
    def gateway_url(self) -> str: ...
    def curl(self, path: str, headers: dict | None = None, method: str = "GET", body: bytes | None = None,
             timeout: float = 10.0) -> Response: ...
    # proxies
    def logs(self, pod: str, container: str | None = None, tail: int = 0) -> str: ...
    def config_dump(self, proxy: str) -> dict: ...
    def stats(self, proxy: str, filter: str | None = None) -> dict: ...

    def condition(self, kind: str, name: str, namespace: str | None = None) -> dict:
        items = self.get(kind, name, namespace)
        if not items:
            raise TargetError(f"{kind} {name} not found")
        return next(iter(items[0].get("status", {}).get("conditions", [])), {})

    def wait_active(self, kind: str, name: str, namespace: str | None = None, timeout: float = 30.0) -> dict:
        def check():
            c = self.condition(kind, name, namespace)
            assert c.get("status") == "True", f"{kind} {name}: {c.get('reason')}: {c.get('message')}"
            return c
        return self.eventually(check, timeout, what=f"{kind} {name} active")


def request(host: str, port: int, method: str, path: str, headers, body, timeout: float) -> Response:
    """One plain HTTP request, its answer as a Response (TargetError when it gets none)."""
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data,
                        (time.perf_counter() - t0) * 1000)
    except (OSError, http.client.HTTPException) as exc:
        raise TargetError(f"request {method} {path} to {host}:{port} failed: {exc}") from exc
    finally:
        conn.close()
