"""The client of the lab daemon: a daemon that dies in the middle of an answer is a clear
NotRunning error, never an http.client traceback (found by the reliability bench's crash trials)."""
import json
import socket
import threading

import pytest

from lab.runtime.client import Client, NotRunning


def _half_answer(path, status: str):
    """A one-shot server on the daemon's Unix socket that announces a 100-byte body, sends 10 bytes
    and closes."""
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(path))
    srv.listen(1)

    def serve():
        conn, _ = srv.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
                         '{"items": '.encode())
        srv.close()
    th = threading.Thread(target=serve, daemon=True)
    th.start()
    return th


@pytest.mark.parametrize("status", ["200 OK", "422 Unprocessable Entity"])
def test_an_answer_cut_short_is_not_running_not_a_traceback(tmp_path, status):
    client = Client(tmp_path)
    client.paths.home.mkdir(parents=True, exist_ok=True)
    client.sockets.ensure()
    th = _half_answer(client.sockets.api, status)
    client.paths.daemon_info.write_text(json.dumps({"socket": str(client.sockets.api), "pid": 1}))
    with pytest.raises(NotRunning, match="does not answer"):
        client.call("POST", "/v1/apply", {"texts": []}, timeout=10, ok=(200, 422))
    th.join(5)
