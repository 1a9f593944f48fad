"""Traffic for the pod-network test: an HTTP GET, a line-echo client run inside the pod (the
probe script), line-echo servers (TCP, TLS, server-speaks-first) and an HTTP server standing for
hosts outside the mesh, and a wait with a message saying what it waited for."""
from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def family_of(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def http_get(host: str, port: int, path: str, timeout: float = 10.0, method: str = "GET") -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, headers={"Accept": "application/json"})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def outcome(fn, *args):
    """fn(*args), or the exception it raised, as a value (for asserting on failures)."""
    try:
        return fn(*args)
    except OSError as exc:
        return exc


PROBE = r'''
import json, socket, ssl, sys
kind, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
out = {"uid": __import__("os").getuid()}
try:
    if kind == "http":  # GET argv[5] with Host: argv[4]
        import http.client
        c = http.client.HTTPConnection(host, port, timeout=5)
        c.request("GET", sys.argv[5], headers={"Host": sys.argv[4], "Accept": "application/json"})
        r = c.getresponse()
        out["status"], out["body"] = r.status, r.read().decode("utf-8", "replace")
        print(json.dumps(out))
        sys.exit(0)
    s = socket.create_connection((host, port), timeout=5)
    if kind == "tls":
        ctx = ssl.create_default_context(cafile=sys.argv[4])
        s = ctx.wrap_socket(s, server_hostname=sys.argv[5])
        out["peer"] = dict(x[0] for x in s.getpeercert()["subject"])["commonName"]
    f = s.makefile("rb")
    if kind == "banner":  # the server speaks first (SMTP, MySQL)
        out["banner"] = f.readline().decode("utf-8", "replace")
    s.sendall(b"ping\n")
    out["reply"] = f.readline().decode("utf-8", "replace")
except (OSError, ssl.SSLError) as exc:
    out["error"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
'''


class EchoServer:
    """A line echo server (TCP, or TLS when given a context) listening in a namespace; counts
    the connections it accepted. With a banner, it speaks first, as SMTP and MySQL servers do."""

    def __init__(self, ns, host: str, port: int, tls: ssl.SSLContext | None = None, banner: bytes = b""):
        self.tls, self.banner, self.accepted, self._stop = tls, banner, 0, threading.Event()
        self.sock = ns.call(lambda: socket.create_server((host, port), family=family_of(host)))
        self.sock.settimeout(0.2)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn):
        with conn:
            try:
                conn.settimeout(5)
                if self.tls is not None:
                    conn = self.tls.wrap_socket(conn, server_side=True)
                if self.banner:
                    conn.sendall(self.banner)
                line = conn.makefile("rb").readline()
                conn.sendall(b"echo: " + line)
            except (OSError, ssl.SSLError):
                return  # the client went away or was not TLS: what the test looks at is the client's side

    def close(self):
        self._stop.set()
        self.sock.close()


class ExternalHttp:
    """An HTTP server outside the mesh; records the headers of every request it gets."""

    def __init__(self, ns, host: str, port: int):
        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                seen.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}})
                body = json.dumps({"service": "external", "path": self.path}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                return

        server_class = type("Server6", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6}) \
            if family_of(host) == socket.AF_INET6 else ThreadingHTTPServer
        self.server = ns.call(server_class, (host, port), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def wait_until(what: str, check, timeout: float, interval: float = 0.1, detail=lambda: ""):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
            last = value
        except (OSError, http.client.HTTPException) as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r}) {detail()}")
