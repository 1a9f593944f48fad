"""The lab daemon's two HTTP listeners.

  control    the lab's own API (/v1/...: apply, delete, status, ...) on a Unix socket of mode 0600
             in an owner-only folder (lab/runtime/sockets.py): the CLI, the targets and the
             notebooks use it; no other user can connect.
  App Mesh   the App Mesh REST API (/v20190125/..., lab/api) on 127.0.0.1 TCP, for boto3 and the
             aws CLI; it serves nothing else.

Both read requests through lab/runtime/httpjson.py: no request a web page could send (Origin,
a Host that is not loopback), bodies capped, a body shorter than its Content-Length refused with
nothing done.
"""
from __future__ import annotations

import json
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from .httpjson import MAX_BODY, READ_TIMEOUT_S, BadRequest, check_local, read_body, read_json, send_json
from .sockets import UnixHTTPServer

API_PREFIX = "/v20190125/"


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = READ_TIMEOUT_S

    def log_message(self, fmt, *args):  # quiet: the daemon log is for events
        return

    def address_string(self) -> str:
        return str(self.client_address[0]) if self.client_address else "local"

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        raise NotImplementedError


def control_server(path: Path, route, limit: int, answered=None) -> UnixHTTPServer:
    """The control API: `route(method, path, query, body) -> (code, body)` answers each request;
    `answered(method, path)`, if given, is called once the answer is written (or failed to be)."""
    class Control(_Quiet):
        def _dispatch(self, method):
            url = urlparse(self.path)
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            try:
                check_local(self, check_host=False)
                if method in ("POST", "PUT"):
                    body = read_json(self, limit)
                else:
                    read_body(self, limit)
                    body = {}
                code, out = route(method, url.path, q, body)
            except BadRequest as exc:
                code, out = exc.code, {"error": str(exc)}
            except Exception as exc:  # the API reports a daemon bug as 500 instead of dropping the connection
                traceback.print_exc()
                code, out = 500, {"error": f"{type(exc).__name__}: {exc}"}
            try:
                send_json(self, code, out)
            finally:
                if answered is not None:
                    answered(method, url.path)
    return UnixHTTPServer(path, Control)


_ERROR_TYPE = {400: "BadRequestException", 403: "ForbiddenException", 411: "BadRequestException",
               413: "BadRequestException", 404: "NotFoundException"}


def appmesh_api_server(port: int, handle, limit: int = MAX_BODY) -> ThreadingHTTPServer:
    """The App Mesh REST API on 127.0.0.1:`port`: `handle(method, path, raw query string, raw_body,
    headers) -> (code, body, headers)` answers each request under /v20190125/ (lab/api verifies
    its SigV4 signature)."""
    class AppMeshAPI(_Quiet):
        def _dispatch(self, method):
            url = urlparse(self.path)
            try:
                check_local(self)
                raw = read_body(self, limit)
                if not url.path.startswith(API_PREFIX):
                    raise BadRequest(f"no such operation: {method} {url.path} (this endpoint serves the App Mesh "
                                     f"API, {API_PREFIX}...)", 404)
                code, body, headers = handle(method, url.path, url.query, raw, dict(self.headers))
            except BadRequest as exc:
                code, body, headers = exc.code, {"message": str(exc)}, {
                    "x-amzn-ErrorType": _ERROR_TYPE.get(exc.code, "BadRequestException")}
            except Exception as exc:  # reported as the API's InternalServerErrorException
                traceback.print_exc()
                code, body, headers = 500, {"message": f"internal error: {exc}"}, {
                    "x-amzn-ErrorType": "InternalServerErrorException"}
            data = json.dumps(body, default=str).encode()
            self.send_response(code)
            for k, v in {"Content-Type": "application/json", **headers}.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", port), AppMeshAPI)
    server.daemon_threads = True
    return server
