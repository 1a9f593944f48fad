"""The lab's sample application: a small HTTP/1.1 echo service that says who answered.

Every service in the manifests (product-service, review-service, the example apps) is this one
program with different environment variables, so a response always tells you which service,
which version and which pod handled the request, and what request it actually received after
the gateway and the sidecars had their say (path rewrites, Host rewrites, added headers).

Run it with ``python -m lab.apps.sample``. Standard library only.

Configuration (environment variables)
-------------------------------------
``PORT``          port to listen on (default 8080; 0 picks a free port, printed at start-up)
``HOST``          address to bind (default 0.0.0.0)
``SERVICE_NAME``  name reported in responses (default "sample")
``VERSION``       version reported in responses (default "v1")
``POD_NAME``      pod name reported in responses (default: the host name, which is the pod
                  name on Kubernetes)
``MESSAGE``       optional greeting included in responses
``LATENCY_MS``    delay added before answering (default 0)
``ERROR_RATE``    fraction of requests answered with ``ERROR_CODE``, 0.0-1.0 (default 0)
``ERROR_CODE``    status used for injected failures (default 503)
``EGRESS_PROXY``  ``host:port`` of the local sidecar's outbound listener (see ``/call``)
``CALL_TIMEOUT_MS`` timeout for ``/call`` requests (default 10000)

Endpoints
---------
``/ping``
    200 ``pong``. Never delayed and never failed, so health checks stay green while you
    inject latency and errors.
``/call/<host>[:port]/<path...>``
    GET ``<path...>`` (the rest of the URL, query included) from another service and report
    what it answered: ``{"service", "version", "pod", "called": {"host", "path", "status",
    "body"}}``. ``body`` is the callee's JSON when it sent JSON, otherwise its text. If the
    callee could not be reached the answer is 502 with an ``error``. A callee that answers
    at all (even with a 5xx) gives 200 here; look at ``called.status``.

    With ``EGRESS_PROXY`` set, the request goes to that address with ``Host: <host>[:port]``:
    this is how the local lab sends an app's outbound traffic through its sidecar, the job
    iptables does inside a cluster. Without it, the app connects to ``host:port`` directly
    (port 8080 when none is given) and, on a cluster, iptables hands the connection to Envoy.
    Tracing headers (``x-request-id``, B3, W3C ``traceparent``, ``x-amzn-trace-id``) are
    passed on to the callee.
a WebSocket upgrade (``Upgrade: websocket`` on a GET with ``Sec-WebSocket-Key``, any path)
    101, then each text message is answered with one line saying who got it (``chat v1 (pod
    chat-1) got hello``), each binary message with its own bytes, a ping with a pong, and a
    close with a close, which ends the connection. An upgrade that is not a GET with a key is
    a 400. Frames are read as ``lab/apps/websocket.py`` reads them (no fragments).
anything else (any method, any path)
    200 with ``{"service", "version", "pod", "message", "request": {"method", "path",
    "query", "host", "headers", "body_bytes"}}``. ``path`` is the raw request target,
    query string included; ``query`` maps each parameter to the list of its values;
    ``headers`` has lower-case names (repeated headers are joined with ", "). Send
    ``Accept: text/plain`` to get one human-readable line instead, for example
    ``product-service v1 (pod product-service-7d9f-abc12) got GET /red``.

Injected latency and errors apply to every request except ``/ping`` (``/call`` included).

How ERROR_RATE picks the failing requests
-----------------------------------------
It is deterministic, not random, so a lesson can predict exactly what a client sees. The
requests the app receives (``/ping`` excluded) are numbered 1, 2, 3, ...; request ``n`` fails
when ``floor(n * rate)`` is larger than ``floor((n - 1) * rate)``. After any ``N`` requests
exactly ``floor(N * rate)`` have failed, spread evenly: 0.5 fails every second request
(#2, #4, ...), 0.25 every fourth, 0.1 every tenth, 1.0 all of them. The rate is read as an
exact decimal, so ``0.29`` means 29 failures per 100 requests, not 28.

Other behaviour: HTTP/1.1 with keep-alive; ``Content-Length`` on every response; request
bodies are read (``Content-Length`` or chunked) so a connection can be reused; one log line
per request on stdout; SIGTERM or SIGINT stops the server and the process exits 0.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import signal
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Mapping
from urllib.parse import parse_qs, urlsplit

from lab.apps import websocket

__all__ = ["ConfigError", "Settings", "should_fail", "make_server", "main"]

MAX_BODY_BYTES = 10 * 1024 * 1024
CALL_PREFIX = "/call/"
DEFAULT_CALL_PORT = 8080
PROPAGATED_HEADERS = (
    "x-request-id",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "b3",
    "traceparent",
    "tracestate",
    "x-amzn-trace-id",
)


class ConfigError(ValueError):
    """An environment variable has a value the app cannot use."""


def should_fail(n: int, rate: Fraction | float) -> bool:
    """Whether request number ``n`` (counting from 1) gets an injected error at ``rate``.

    See the module docstring: the first ``N`` requests contain exactly ``floor(N * rate)``
    failures, evenly spaced.
    """
    if n < 1:
        raise ValueError("requests are numbered from 1")
    rate = Fraction(rate)
    return math.floor(n * rate) > math.floor((n - 1) * rate)


@dataclass(frozen=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = 8080
    service: str = "sample"
    version: str = "v1"
    pod: str = "sample"
    message: str | None = None
    latency_ms: float = 0.0
    error_rate: Fraction = Fraction(0)
    error_code: int = 503
    egress_proxy: tuple[str, int] | None = None
    call_timeout_s: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        get, port, latency, rate = common_settings(env, 8080)
        code = _parse_int("ERROR_CODE", get("ERROR_CODE", "503"), 200, 599)
        timeout_ms = _parse_float("CALL_TIMEOUT_MS", get("CALL_TIMEOUT_MS", "10000"))
        if timeout_ms <= 0:
            raise ConfigError("CALL_TIMEOUT_MS must be greater than 0")
        proxy = None
        if env.get("EGRESS_PROXY", "").strip():
            raw = env["EGRESS_PROXY"].strip()
            proxy_host, proxy_port = _split_host_port(raw, default_port=None)
            if proxy_port is None:
                raise ConfigError(f"EGRESS_PROXY={raw!r} must be host:port, e.g. 127.0.0.1:15001")
            proxy = (proxy_host, proxy_port)
        message = env.get("MESSAGE")
        return cls(
            host=get("HOST", "0.0.0.0"),
            port=port,
            service=get("SERVICE_NAME", "sample"),
            version=get("VERSION", "v1"),
            pod=get("POD_NAME", socket.gethostname()),
            message=message if message else None,
            latency_ms=latency,
            error_rate=rate,
            error_code=code,
            egress_proxy=proxy,
            call_timeout_s=timeout_ms / 1000.0,
        )


def common_settings(env: Mapping[str, str], default_port: int):
    """What both of the kit's apps read from their environment: a getter that treats blank values
    as unset, PORT, LATENCY_MS and ERROR_RATE (a fraction from 0 to 1), each checked."""
    def get(name: str, default: str) -> str:
        value = env.get(name, "")
        return value if value.strip() else default

    port = _parse_int("PORT", get("PORT", str(default_port)), 0, 65535)
    latency = _parse_float("LATENCY_MS", get("LATENCY_MS", "0"))
    try:
        rate = Fraction(get("ERROR_RATE", "0").strip())
    except (ValueError, ZeroDivisionError):
        raise ConfigError(
            f"ERROR_RATE={env.get('ERROR_RATE')!r} is not a number; "
            "use a fraction between 0 and 1, e.g. 0.5"
        ) from None
    if not 0 <= rate <= 1:
        raise ConfigError(f"ERROR_RATE={env.get('ERROR_RATE')!r} must be between 0 and 1")
    return get, port, latency, rate


def _parse_int(name: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={raw!r} must be between {low} and {high}")
    return value


def _parse_float(name: str, raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if value < 0 or math.isnan(value) or math.isinf(value):
        raise ConfigError(f"{name}={raw!r} must be 0 or more")
    return value


def _split_host_port(hostport: str, default_port: int | None) -> tuple[str, int | None]:
    """Split ``host[:port]`` (``[v6addr][:port]`` for IPv6 literals)."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ValueError(f"unclosed '[' in {hostport!r}")
        host, rest = hostport[1:end], hostport[end + 1 :]
        if not rest:
            return host, default_port
        if not rest.startswith(":") or not rest[1:].isdigit():
            raise ValueError(f"bad port in {hostport!r}")
        return host, int(rest[1:])
    host, sep, port = hostport.rpartition(":")
    if sep and port.isdigit() and host:
        return host, int(port)
    if sep and not host:
        raise ValueError(f"missing host in {hostport!r}")
    if sep:
        raise ValueError(f"bad port in {hostport!r}")
    return hostport, default_port


def _wants_text(accept: str | None) -> bool:
    accept = (accept or "").lower()
    return "text/plain" in accept and "application/json" not in accept


class _Counter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._n = 0

    def next(self) -> int:
        with self._lock:
            self._n += 1
            return self._n


class SampleHandler(BaseHTTPRequestHandler):
    """Answers every method on every path; see the module docstring."""

    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes; without TCP_NODELAY the body waits for the peer's
    # delayed ACK on a reused keep-alive connection (about 40 ms a request behind a sidecar)
    disable_nagle_algorithm = True
    server_version = "appmesh-lab-sample/0.1.0"
    sys_version = ""
    server: "SampleServer"

    _in_app = False

    def version_string(self) -> str:
        return self.server_version

    def __getattr__(self, name: str):
        # BaseHTTPRequestHandler dispatches to do_<METHOD>; answer every method the same way.
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    # -- logging ---------------------------------------------------------------------------

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        _log(f"{self.address_string()} {format % args}")

    def log_request(self, code="-", size="-") -> None:
        # Our own handler logs after the body is written (with size and duration); responses
        # the stdlib produces on its own (malformed requests) are logged here.
        if not self._in_app:
            super().log_request(code, size)

    # -- request handling ------------------------------------------------------------------

    def _handle(self) -> None:
        self._in_app = True
        started = time.monotonic()
        status, sent = 500, 0
        try:
            status, sent = self._dispatch()
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up first (e.g. a proxy's timeout expired while LATENCY_MS ran).
            self.close_connection = True
            status, sent = 499, 0
        finally:
            self._in_app = False
            elapsed_ms = (time.monotonic() - started) * 1000.0
            _log(
                f'{self.client_address[0]} "{self.command} {self.path} {self.request_version}" '
                f"{status} {sent}B {elapsed_ms:.0f}ms host={self.headers.get('Host', '-')}"
            )

    def _dispatch(self) -> tuple[int, int]:
        settings = self.server.settings
        try:
            body = self._read_body()
        except ValueError as exc:
            self.close_connection = True
            return self._send_json(400, {**self._who(), "error": f"unreadable request body: {exc}"})
        except _BodyTooLarge:
            self.close_connection = True
            return self._send_json(
                413, {**self._who(), "error": f"request body larger than {MAX_BODY_BYTES} bytes"}
            )

        if urlsplit(self.path).path == "/ping":
            return self._send(200, b"pong", "text/plain; charset=utf-8")

        number = self.server.counter.next()
        if settings.latency_ms > 0:
            time.sleep(settings.latency_ms / 1000.0)
        if settings.error_rate and should_fail(number, settings.error_rate):
            return self._send_injected_error(number)
        if self.headers.get("Upgrade", "").strip().lower() == "websocket":
            return self._websocket()
        if self.path.startswith(CALL_PREFIX):
            return self._call()
        return self._echo(body)

    def _who(self) -> dict:
        s = self.server.settings
        return {"service": s.service, "version": s.version, "pod": s.pod}

    def _line(self, verb: str) -> str:
        s = self.server.settings
        return f"{s.service} {s.version} (pod {s.pod}) {verb}"

    def _request_info(self, body: bytes | None = None) -> dict:
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        info = {
            "method": self.command,
            "path": self.path,
            "query": parse_qs(urlsplit(self.path).query, keep_blank_values=True),
            "host": self.headers.get("Host", ""),
            "headers": headers,
        }
        if body is not None:
            info["body_bytes"] = len(body)
        return info

    def _echo(self, body: bytes) -> tuple[int, int]:
        if _wants_text(self.headers.get("Accept")):
            text = self._line(f"got {self.command} {self.path}")
            message = self.server.settings.message
            return self._send_text(200, f"{text}\n{message}\n" if message else f"{text}\n")
        payload = {
            **self._who(),
            "message": self.server.settings.message,
            "request": self._request_info(body),
        }
        return self._send_json(200, payload)

    def _websocket(self) -> tuple[int, int]:
        """Switch the connection to WebSocket and answer each text message with who got it,
        each binary message with its own bytes, until the client closes."""
        key = self.headers.get("Sec-WebSocket-Key")
        if self.command != "GET" or not key:
            self.close_connection = True
            return self._send_json(400, {**self._who(), "error": "a WebSocket upgrade is a GET with "
                                         "Upgrade: websocket and a Sec-WebSocket-Key header"})
        s = self.server.settings
        self.send_response(101)  # Switching Protocols
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", websocket.accept_for(key))
        self.send_header("X-Served-By", f"{s.service}/{s.version}/{s.pod}")
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True  # after the WebSocket ends, so does the TCP connection
        sent = 0
        while True:
            try:
                opcode, payload = websocket.read(self.rfile)
            except websocket.FrameError:
                reply = websocket.encode(struct.pack("!H", 1003), websocket.CLOSE)  # 1003: cannot accept
                opcode = websocket.CLOSE
            else:
                if opcode == websocket.CLOSE:
                    reply = websocket.encode(payload[:2], websocket.CLOSE)
                elif opcode == websocket.PING:
                    reply = websocket.encode(payload, websocket.PONG)
                elif opcode == websocket.TEXT:
                    reply = websocket.encode(f"{self._line('got')} {payload.decode('utf-8', 'replace')}".encode())
                elif opcode == websocket.BINARY:
                    reply = websocket.encode(payload, websocket.BINARY)
                else:  # a pong, or an opcode RFC 6455 reserves: nothing to answer
                    continue
            self.wfile.write(reply)
            self.wfile.flush()
            sent += len(reply)
            if opcode == websocket.CLOSE:
                return 101, sent

    def _send_injected_error(self, number: int) -> tuple[int, int]:
        s = self.server.settings
        reason = f"injected failure: request #{number} with ERROR_RATE={float(s.error_rate):g}"
        if _wants_text(self.headers.get("Accept")):
            return self._send_text(
                s.error_code, self._line(f"failed {self.command} {self.path} ({reason})") + "\n"
            )
        return self._send_json(
            s.error_code, {**self._who(), "error": reason, "request": self._request_info()}
        )

    def _call(self) -> tuple[int, int]:
        s = self.server.settings
        target = self.path[len(CALL_PREFIX) :]
        hostport, sep, rest = target.partition("/")
        path = "/" + rest if sep else "/"
        if "?" in hostport:  # /call/host?x=1 -> GET /?x=1
            hostport, _, query = hostport.partition("?")
            path = "/?" + query
        try:
            if not hostport:
                raise ValueError("no host given")
            host, port = _split_host_port(hostport, DEFAULT_CALL_PORT)
        except ValueError as exc:
            return self._send_json(
                400,
                {**self._who(), "error": f"bad /call target ({exc}); use /call/<host>[:port]/<path>"},
            )
        if s.egress_proxy:
            connect_host, connect_port = s.egress_proxy
            via = f"egress proxy {connect_host}:{connect_port}"
        else:
            connect_host, connect_port = host, port
            via = "direct"
        headers = {
            "Host": hostport,
            "Accept": "application/json",
            "User-Agent": f"{s.service}/{s.version}",
        }
        for name in PROPAGATED_HEADERS:
            value = self.headers.get(name)
            if value is not None:
                headers[name] = value
        called = {"host": hostport, "path": path, "via": via}
        conn = http.client.HTTPConnection(connect_host, connect_port, timeout=s.call_timeout_s)
        try:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            raw = response.read()
            status = response.status
        except (OSError, http.client.HTTPException) as exc:
            error = f"calling {hostport}{path} ({via}) failed: {type(exc).__name__}: {exc}"
            return self._send_json(502, {**self._who(), "error": error, "called": called})
        finally:
            conn.close()
        text = raw.decode("utf-8", errors="replace")
        try:
            parsed = json.loads(text) if text.strip() else text
        except ValueError:
            parsed = text
        called.update(status=status, body=parsed)
        if _wants_text(self.headers.get("Accept")):
            return self._send_text(200, self._line(f"called {hostport}{path} -> {status}") + "\n")
        return self._send_json(200, {**self._who(), "called": called})

    # -- wire helpers ----------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            size = int(length)
        except ValueError:
            raise ValueError(f"Content-Length {length!r} is not a number") from None
        if size < 0:
            raise ValueError("negative Content-Length")
        if size > MAX_BODY_BYTES:
            raise _BodyTooLarge()
        return self.rfile.read(size)

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(65537)
            if not line:
                raise ValueError("connection closed inside a chunked body")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise ValueError(f"bad chunk size line {line[:40]!r}") from None
            if size == 0:
                while True:  # trailers end with an empty line
                    trailer = self.rfile.readline(65537)
                    if trailer in (b"\r\n", b"\n", b""):
                        return b"".join(parts)
            total += size
            if total > MAX_BODY_BYTES:
                raise _BodyTooLarge()
            parts.append(self.rfile.read(size))
            self.rfile.readline(3)  # CRLF after the chunk data

    def _send_json(self, status: int, payload: dict) -> tuple[int, int]:
        body = (json.dumps(payload, indent=2, sort_keys=False) + "\n").encode("utf-8")
        return self._send(status, body, "application/json")

    def _send_text(self, status: int, text: str) -> tuple[int, int]:
        return self._send(status, text.encode("utf-8"), "text/plain; charset=utf-8")

    def _send(self, status: int, body: bytes, content_type: str) -> tuple[int, int]:
        s = self.server.settings
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Served-By", f"{s.service}/{s.version}/{s.pod}")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()
        return status, len(body)


class _BodyTooLarge(Exception):
    pass


class SampleServer(ThreadingHTTPServer):
    daemon_threads = True  # idle keep-alive connections must not hold up shutdown
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.counter = _Counter()
        if ":" in settings.host:
            self.address_family = socket.AF_INET6
        super().__init__((settings.host, settings.port), SampleHandler)

    def server_bind(self) -> None:
        # Replicas of one Deployment share a port on the local lab, as pods behind a Service do;
        # SO_REUSEPORT lets the kernel spread connections across them.
        if hasattr(socket, "SO_REUSEPORT"):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


def make_server(settings: Settings) -> SampleServer:
    """Bind the server (not yet serving). ``server.server_address`` has the real port."""
    return SampleServer(settings)


def _log(line: str) -> None:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    sys.stdout.write(f"{stamp} {line}\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"sample: configuration error: {exc}", file=sys.stderr, flush=True)
        return 2
    try:
        server = make_server(settings)
    except OSError as exc:
        print(
            f"sample: cannot listen on {settings.host}:{settings.port}: {exc}",
            file=sys.stderr,
            flush=True,
        )
        return 1

    stopping = threading.Event()

    def stop(signum, _frame) -> None:
        if not stopping.is_set():
            stopping.set()
            _log(f"sample: received {signal.Signals(signum).name}, shutting down")
            # shutdown() waits for serve_forever() to return, so it must not run on the
            # thread that is inside serve_forever() (this signal handler's thread).
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    host, port = server.server_address[:2]
    extra = f", egress proxy {settings.egress_proxy[0]}:{settings.egress_proxy[1]}" if settings.egress_proxy else ""
    _log(
        f"sample: {settings.service} {settings.version} (pod {settings.pod}) "
        f"listening on {host}:{port}{extra}"
    )
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    _log("sample: stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
