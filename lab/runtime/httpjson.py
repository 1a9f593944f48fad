"""One JSON answer from a BaseHTTPRequestHandler (the lab daemon's API, the controller's health
and webhook servers)."""
from __future__ import annotations

import json


def send_json(handler, code: int, body) -> None:
    data = json.dumps(body, default=str).encode()
    handler.send_response(code)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
