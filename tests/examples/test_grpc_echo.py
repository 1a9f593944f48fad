"""The gRPC echo server (lab/apps/grpc_echo.py) with a real grpc channel, in-process and as
`python -m lab.apps.grpc_echo` (port sharing, SIGTERM)."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import grpc
import pytest

from lab.apps import GRPC_ECHO_IMAGE
from lab.apps.grpc_echo import (ConfigError, Settings, decode_health_request, encode_health_response,
                                make_server, parse_status_code)
from lab.runtime.pods import local_command

REPO = Path(__file__).resolve().parents[2]
_LISTENING = re.compile(r" listening on 127\.0\.0\.1:(\d+)")


def _call(channel, method: str, body: dict | None = None, metadata=(), timeout: float = 5.0):
    stub = channel.unary_unary(f"/lab.echo.Echo/{method}", request_serializer=None, response_deserializer=None)
    raw = stub(b"" if body is None else json.dumps(body).encode(), metadata=list(metadata), timeout=timeout)
    return json.loads(raw)


@pytest.fixture
def echo():
    """Start an in-process server; yield a function making a channel to it (closed after)."""
    servers, channels = [], []

    def start(**kw):
        settings = Settings(**{"host": "127.0.0.1", "port": 0, "service": "echo", "version": "v7",
                               "pod": "echo-abc", **kw})
        server, port = make_server(settings, max_workers=4)
        server.start()
        servers.append(server)

        def channel(**opts):
            ch = grpc.insecure_channel(f"127.0.0.1:{port}", options=list(opts.items()))
            channels.append(ch)
            return ch
        return channel

    yield start
    for ch in channels:
        ch.close()
    for s in servers:
        s.stop(0).wait(5)


def test_say_reports_who_answered_and_what_arrived(echo):
    ch = echo(message="hi")()
    out = _call(ch, "Say", {"message": "hello", "n": 1}, metadata=[("x-tenant", "beta"), ("x-trace", "t1")])
    assert (out["service"], out["version"], out["pod"]) == ("echo", "v7", "echo-abc")
    assert out["message"] == "hello"  # the request's message wins over MESSAGE
    req = out["request"]
    assert req["method"] == "/lab.echo.Echo/Say"
    assert req["body"] == {"message": "hello", "n": 1}
    assert req["metadata"]["x-tenant"] == "beta"
    assert req["metadata"]["x-trace"] == "t1"
    assert req["authority"].startswith("127.0.0.1:")
    assert req["peer"].startswith("ipv4:127.0.0.1:")


def test_info_and_the_authority_the_client_chose(echo):
    ch = echo(message="hi")(**{"grpc.default_authority": "echo.example.svc.cluster.local:9000"})
    out = _call(ch, "Info")
    assert out["message"] == "hi"
    assert "body" not in out["request"]
    assert out["request"]["method"] == "/lab.echo.Echo/Info"
    assert out["request"]["authority"] == "echo.example.svc.cluster.local:9000"


def test_empty_request_and_bad_json(echo):
    ch = echo()()
    assert _call(ch, "Say")["request"]["body"] is None
    stub = ch.unary_unary("/lab.echo.Echo/Say", request_serializer=None, response_deserializer=None)
    for bad in (b"{not json", b"[1, 2]"):
        with pytest.raises(grpc.RpcError) as err:
            stub(bad, timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_unknown_method_and_service_are_unimplemented(echo):
    ch = echo()()
    for path in ("/lab.echo.Echo/Nope", "/other.Service/Say"):
        with pytest.raises(grpc.RpcError) as err:
            ch.unary_unary(path, request_serializer=None, response_deserializer=None)(b"{}", timeout=5)
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED, path
        # who answered, as for every call: the app, not a proxy that found no route
        assert dict(err.value.initial_metadata())["x-served-by"] == "echo/v7/echo-abc", path
        assert dict(err.value.trailing_metadata())["x-request-method"] == path


def test_error_rate_is_deterministic_and_unavailable_by_default(echo):
    ch = echo(error_rate=Fraction(1, 2))()
    codes = []
    for _ in range(6):
        try:
            _call(ch, "Say", {})
            codes.append("OK")
        except grpc.RpcError as exc:
            codes.append(exc.code().name)
            assert "injected failure" in exc.details()
    assert codes == ["OK", "UNAVAILABLE"] * 3


def test_error_code_by_name_or_number(echo):
    ch = echo(error_rate=Fraction(1), error_code=parse_status_code("13"))()
    with pytest.raises(grpc.RpcError) as err:
        _call(ch, "Info")
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert parse_status_code("resource_exhausted") == grpc.StatusCode.RESOURCE_EXHAUSTED
    for bad in ("OK", "0", "nope", "99"):
        with pytest.raises(ConfigError):
            parse_status_code(bad)


def test_health_check_by_hand_encoded_protobuf(echo):
    ch = echo(error_rate=Fraction(1))()  # health is never failed by ERROR_RATE
    check = ch.unary_unary("/grpc.health.v1.Health/Check", request_serializer=None, response_deserializer=None)
    assert check(b"", timeout=5) == b"\x08\x01"  # status: SERVING
    assert check(b"\x0a\x0dlab.echo.Echo", timeout=5) == b"\x08\x01"
    with pytest.raises(grpc.RpcError) as err:
        check(b"\x0a\x05other", timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_health_codec():
    assert decode_health_request(b"") == ""
    assert decode_health_request(b"\x0a\x03abc") == "abc"
    assert decode_health_request(b"\x10\x05\x0a\x01x\x1d\x00\x00\x00\x00") == "x"  # unknown fields skipped
    with pytest.raises(ValueError):
        decode_health_request(b"\x0a\x09abc")
    assert encode_health_response(1) == b"\x08\x01"
    assert encode_health_response(0) == b"\x08\x00"


def test_settings_from_env():
    s = Settings.from_env({"PORT": "9100", "SERVICE_NAME": "echo", "VERSION": "v2", "POD_NAME": "p",
                           "ERROR_RATE": "0.25", "ERROR_CODE": "unavailable", "LATENCY_MS": "5"})
    assert (s.port, s.service, s.version, s.pod, s.error_rate, s.latency_ms) == (9100, "echo", "v2", "p",
                                                                                 Fraction(1, 4), 5.0)
    assert Settings.from_env({}).port == 9000
    assert Settings.from_env({}).error_code == grpc.StatusCode.UNAVAILABLE
    for env in ({"PORT": "x"}, {"ERROR_RATE": "2"}, {"ERROR_RATE": "abc"}, {"ERROR_CODE": "OK"}):
        with pytest.raises(ConfigError):
            Settings.from_env(env)


def test_the_local_lab_runs_it_for_its_image():
    argv = local_command({"image": GRPC_ECHO_IMAGE}, {})
    assert argv == [sys.executable, "-m", "lab.apps.grpc_echo"]
    assert local_command({"image": "appmesh-lab/grpc-echo:0.2.0"}, {}) == argv
    assert local_command({"image": "appmesh-lab/grpc-echo-other:0.1.0"}, {}) is None


# -- as a process ------------------------------------------------------------------------------

class EchoProcess:
    def __init__(self, env: dict):
        full = {k: v for k, v in os.environ.items()
                if k not in ("PORT", "HOST", "SERVICE_NAME", "VERSION", "POD_NAME", "MESSAGE", "LATENCY_MS",
                             "ERROR_RATE", "ERROR_CODE")}
        full.update({"HOST": "127.0.0.1", "PYTHONUNBUFFERED": "1", **env})
        self.proc = subprocess.Popen([sys.executable, "-m", "lab.apps.grpc_echo"], cwd=REPO, env=full,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self.port = 0
        ready = threading.Event()

        def read():
            for line in self.proc.stdout:
                self.lines.append(line)
                m = _LISTENING.search(line)
                if m and not self.port:
                    self.port = int(m.group(1))
                    ready.set()
            ready.set()
        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(15) or not self.port:
            self.kill()
            raise AssertionError("grpc_echo did not start:\n" + "".join(self.lines))

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)


def test_process_replicas_share_a_port_and_stop_cleanly_on_sigterm():
    first = EchoProcess({"PORT": "0", "POD_NAME": "echo-a"})
    procs = [first]
    try:
        procs.append(EchoProcess({"PORT": str(first.port), "POD_NAME": "echo-b"}))  # SO_REUSEPORT
        pods = set()
        deadline = time.time() + 10
        while pods != {"echo-a", "echo-b"} and time.time() < deadline:
            with grpc.insecure_channel(f"127.0.0.1:{first.port}") as ch:  # new connection each time
                pods.add(_call(ch, "Info")["pod"])
        assert pods == {"echo-a", "echo-b"}
        for p in procs:
            p.proc.send_signal(signal.SIGTERM)
        for p in procs:
            assert p.proc.wait(10) == 0
            assert any("received SIGTERM" in line for line in p.lines)
    finally:
        for p in procs:
            p.kill()


def test_process_reports_bad_configuration():
    run = subprocess.run([sys.executable, "-m", "lab.apps.grpc_echo"], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "ERROR_RATE": "1.5"}, timeout=30)
    assert run.returncode == 2
    assert "ERROR_RATE" in run.stderr
