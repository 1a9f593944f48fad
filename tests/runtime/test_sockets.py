"""The owner-only folders of the lab's sockets and claims, and the socket paths (lab/runtime/sockets.py)."""
import os
import socket
import stat
import tempfile
from pathlib import Path

import pytest

from lab.runtime.sockets import MAX_SOCKET_PATH, Sockets, UnixHTTPServer, UnsafeFolder, private_dir, unix_request

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (to make a folder owned by another user)")


def test_a_new_folder_is_made_0700_and_a_loose_own_one_is_tightened(tmp_path):
    d = private_dir(tmp_path / "new")
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    os.chmod(loose, 0o755)
    private_dir(loose)
    assert stat.S_IMODE(os.stat(loose).st_mode) == 0o700


def test_a_symlink_is_refused_and_its_target_untouched(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    os.chmod(target, 0o755)
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(UnsafeFolder, match="symbolic link"):
        private_dir(tmp_path / "link")
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o755


def test_a_folder_others_can_write_is_refused(tmp_path):
    d = tmp_path / "shared"
    d.mkdir()
    os.chmod(d, 0o1777)
    with pytest.raises(UnsafeFolder, match=r"written by its group or by others \(mode 0o1777\).*chmod 700"):
        private_dir(d)


@needs_root
def test_a_folder_of_another_user_is_refused(tmp_path):
    d = tmp_path / "theirs"
    d.mkdir(mode=0o700)
    os.chown(d, 65534, 65534)
    with pytest.raises(UnsafeFolder, match=r"belongs to .*uid 65534.*not to you"):
        private_dir(d)


def test_a_short_home_keeps_its_sockets_inside(tmp_path):
    home = Path(tempfile.mkdtemp(prefix="h", dir="/tmp"))
    try:
        s = Sockets(home)
        assert s.dir == home / "run"
        s.ensure()
        assert stat.S_IMODE(os.stat(s.dir).st_mode) == 0o700
        assert s.admin("appmesh-demo", "gw-1").name == "admin.appmesh-demo.gw-1.sock"
    finally:
        import shutil
        shutil.rmtree(home)


def test_a_deep_home_gets_a_checked_folder_in_the_runtime_dir(tmp_path, monkeypatch):
    runtime = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    home = tmp_path / ("deep" * 30) / ".lab"
    home.mkdir(parents=True)
    s = Sockets(home)
    try:
        assert s.dir.parent == runtime / f"appmesh-lab-{os.getuid()}"
        assert Sockets(home).dir == s.dir != Sockets(tmp_path).dir  # one folder per home, the same every time
        s.ensure()
        for path in (s.api, s.xds, s.admin("n" * 63, "p" * 63)):
            assert len(os.fsencode(str(path))) <= MAX_SOCKET_PATH, path
        # the user's folder above it is checked too
        os.chmod(s.dir.parent, 0o777)
        with pytest.raises(UnsafeFolder, match="written by its group or by others"):
            s.ensure()
    finally:
        import shutil
        shutil.rmtree(runtime)


def test_the_http_socket_is_0600_and_replaces_a_stale_one(tmp_path):
    from http.server import BaseHTTPRequestHandler

    class Hello(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"hi")

        def log_message(self, *a):
            return
    d = private_dir(Path(tempfile.mkdtemp(prefix="s", dir="/tmp")))
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(d / "api.sock"))  # a socket file left by a killed daemon
    stale.close()
    srv = UnixHTTPServer(d / "api.sock", Hello)
    import threading
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        assert stat.S_IMODE(os.stat(d / "api.sock").st_mode) == 0o600
        assert unix_request(d / "api.sock", "GET", "/")[::2] == (200, b"hi")
    finally:
        srv.shutdown()
        srv.server_close()
        import shutil
        shutil.rmtree(d)
