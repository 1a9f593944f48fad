"""nb.load_during (lesson 08's cutover under load): each phase lasts its seconds *and* until its
count of answers came, so a busy machine, where half a second holds a few dozen requests, still
gives the lesson's checks enough answers on both sides of the action."""
from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from lab.notebook import traffic


class Slow(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802
        time.sleep(0.02)   # a slow path: 4 clients get about 200 answers a second
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def test_each_phase_lasts_until_its_count_of_answers_came(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(traffic, "gateway_address", lambda t, gateway=None: server.server_address)
    try:
        hits, (start, end) = traffic.load_during(None, "/x", lambda: time.sleep(0.05), concurrency=4,
                                                 before_s=0.05, after_s=0.05, before_n=60, after_n=40)
    finally:
        server.shutdown()
        server.server_close()
    assert all(h.status == 200 for h in hits), {h.status for h in hits}
    assert sum(1 for h in hits if h.at < start) >= 60, (len(hits), start)   # 0.05 s alone gives about 10
    assert sum(1 for h in hits if h.at >= end) >= 40, (len(hits), end)
