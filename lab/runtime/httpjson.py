"""JSON answers and request reading for the lab's HTTP servers (BaseHTTPRequestHandler): the lab
daemon's control API and App Mesh API, the controller's health and webhook servers.

Every listener of the local lab reads its requests through here, so each one refuses the same
things the same way:
  - a request a web page could have sent (`check_local`): one carrying an `Origin` header, or a
    `Host` that is not a loopback name (DNS rebinding: a page of evil.example resolving to
    127.0.0.1 still says `Host: evil.example`);
  - a body larger than the listener takes (413), one with an unreadable or doubled
    `Content-Length` (400), one sent chunked (411), and one that ends before its
    `Content-Length` (400): nothing of it is carried out.
"""
from __future__ import annotations

import json

MAX_BODY = 3 * 1024 * 1024  # the Kubernetes API server's limit for a request body
READ_TIMEOUT_S = 30  # a request whose bytes stop coming is dropped after this long
# a body over the limit is read and thrown away up to this size, so that its sender gets the 413
# (a client still sending when the connection closes sees a broken pipe, not the answer)
DISCARD_MAX = 64 * 1024 * 1024
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


class BadRequest(Exception):
    """A request is malformed or refused; answered with `code` (400 unless said) and the message."""

    def __init__(self, message: str, code: int = 400):
        super().__init__(message)
        self.code = code


def send_json(handler, code: int, body, headers: dict | None = None) -> None:
    data = json.dumps(body, default=str).encode()
    handler.send_response(code)
    handler.send_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        handler.send_header(k, v)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def loopback_host(value: str) -> bool:
    """Whether a Host header names this machine's loopback: 127.0.0.1, localhost or [::1], with or
    without a port."""
    host = value.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        name, rest = host[:end + 1], host[end + 1:]
    else:
        name, sep, port = host.partition(":")
        rest = sep + port
    if rest and not (rest.startswith(":") and rest[1:].isdecimal() and len(rest) <= 6):
        return False
    return name in LOOPBACK_NAMES


def check_local(handler, check_host: bool = True) -> None:
    """Refuse (403) what a browser could send on a web page's behalf. On a Unix socket no browser
    connects and the Host header names nothing (`curl --unix-socket S http://lab/...`):
    `check_host=False` checks Origin and Sec-Fetch-Site only."""
    headers = handler.headers
    if headers.get("Origin") is not None:
        handler.close_connection = True
        raise BadRequest(f"requests from web pages are refused (this one carries Origin: {headers['Origin'][:100]}); "
                         "use the aws CLI, boto3 or appmesh-lab", 403)
    if headers.get("Sec-Fetch-Site", "none").lower() != "none":
        handler.close_connection = True
        raise BadRequest("requests a browser sends for a web page are refused (Sec-Fetch-Site: "
                         f"{headers['Sec-Fetch-Site'][:40]}); use the aws CLI, boto3 or appmesh-lab", 403)
    hosts = headers.get_all("Host") or []
    if not check_host:
        return
    if len(hosts) != 1 or not loopback_host(hosts[0]):
        handler.close_connection = True
        shown = ", ".join(h[:100] for h in hosts) or "none"
        raise BadRequest(f"the Host header must name this machine's loopback (127.0.0.1, localhost or [::1], with the "
                         f"port); this request has: {shown}", 403)


def read_body(handler, limit: int = MAX_BODY) -> bytes:
    """The request's body, read whole by its Content-Length; BadRequest when it cannot be."""
    headers = handler.headers
    if headers.get("Transfer-Encoding") is not None:
        handler.close_connection = True  # the body cannot be skipped: the connection ends here
        raise BadRequest("send the body with a Content-Length (Transfer-Encoding is not accepted)", 411)
    lengths = set(headers.get_all("Content-Length") or [])
    if len(lengths) > 1:
        handler.close_connection = True
        raise BadRequest("the request has several different Content-Length headers")
    raw = next(iter(lengths), "0").strip()
    if not raw.isdecimal() or len(raw) > 18:
        handler.close_connection = True
        raise BadRequest(f"Content-Length must be a whole number of bytes, not {raw[:40]!r}")
    n = int(raw)
    if n > limit:
        handler.close_connection = True
        if n <= DISCARD_MAX:
            _discard(handler.rfile, n)
        raise BadRequest(f"the request body is {n} bytes; this endpoint takes at most {limit} bytes "
                         f"({limit / 1048576:g} MiB)", 413)
    try:
        data = handler.rfile.read(n) if n else b""
    except OSError as exc:  # the read timed out (READ_TIMEOUT_S) or the connection broke
        handler.close_connection = True
        raise BadRequest(f"the request body did not arrive ({type(exc).__name__}); nothing was done") from exc
    if len(data) < n:
        handler.close_connection = True
        raise BadRequest(f"the request body ended after {len(data)} of the {n} bytes its Content-Length announces; "
                         "nothing was done")
    return data


def _discard(rfile, n: int) -> None:
    try:
        while n > 0:
            chunk = rfile.read(min(n, 1 << 20))
            if not chunk:
                return
            n -= len(chunk)
    except OSError:
        return  # the sender stopped or went away: the answer goes out anyway


def read_json(handler, limit: int = MAX_BODY) -> dict:
    """The body as a JSON object ({} when empty)."""
    try:
        body = json.loads(read_body(handler, limit) or b"{}")
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"the request body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body
