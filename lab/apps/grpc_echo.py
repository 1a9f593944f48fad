"""The lab's gRPC echo server: the gRPC counterpart of the sample app (``lab/apps/sample.py``).

It serves one gRPC service, ``lab.echo.Echo``, whose unary methods take and return **JSON
bytes** instead of protobuf messages, so that no ``.proto`` file and no generated code are
needed on either side: a client calls ``/lab.echo.Echo/Say`` with identity serializers and
reads the answer with ``json.loads``. Every answer says which service, version and pod
answered and what call the server received, including ``:authority`` and the request
metadata, so the effect of gateway routes and host rewrites is visible from outside.

Run it with ``python -m lab.apps.grpc_echo``. Needs ``grpcio`` (nothing else outside the
standard library); it is image ``appmesh-lab/grpc-echo:0.1.0`` in the manifests.

Methods
-------
``/lab.echo.Echo/Say``
    Request: a JSON object (or nothing). Answer::

        {"service", "version", "pod", "message",
         "request": {"method", "authority", "metadata", "peer", "body"}}

    ``message`` is the request's ``"message"`` when it has one, else ``MESSAGE``;
    ``request.body`` is the request JSON as received (``null`` for an empty request);
    ``request.metadata`` maps each metadata key (lower case) to its value, repeated keys
    joined with ``", "`` (binary ``-bin`` values are shown base64-encoded). The answer's
    initial metadata has ``x-served-by: <service>/<version>/<pod>``, errors included (like the
    sample app's ``X-Served-By`` header).
``/lab.echo.Echo/Info``
    Request ignored. Answer: ``{"service", "version", "pod", "message", "request":
    {"method", "authority", "metadata", "peer"}}`` - who answered and what arrived.
``/grpc.health.v1.Health/Check``
    The standard gRPC health check (for Kubernetes ``grpc`` probes and ``grpc_health_probe``):
    SERVING for the service names ``""`` and ``lab.echo.Echo``, NOT_FOUND for any other.
    Encoded by hand (two protobuf fields), so ``grpcio-health-checking`` is not needed. Never
    delayed or failed by ``LATENCY_MS`` / ``ERROR_RATE``.

A request body that is not a JSON object gets INVALID_ARGUMENT; an unknown method of
``lab.echo.Echo``, or any other service, gets UNIMPLEMENTED (details ``Method not found!``, as
grpcio says it), with the ``x-served-by``
initial metadata all the same (a client tells the app's UNIMPLEMENTED from a proxy's: Envoy
answers a gRPC call no route matches with UNIMPLEMENTED too, and no ``x-served-by``) and the
call it received in the trailers ``x-request-method`` and ``x-request-authority``. There is no server
reflection, so ``grpcurl`` needs a ``.proto`` file to call it (see the example's README).

Configuration (environment variables)
-------------------------------------
``PORT``          port to listen on (default 9000; 0 picks a free port, printed at start-up)
``HOST``          address to bind (default 0.0.0.0)
``SERVICE_NAME``  name reported in answers (default "grpc-echo")
``VERSION``       version reported in answers (default "v1")
``POD_NAME``      pod name reported in answers (default: the host name)
``MESSAGE``       optional greeting included in answers
``LATENCY_MS``    delay added before answering Say and Info (default 0)
``ERROR_RATE``    fraction of Say/Info calls that fail, 0.0-1.0 (default 0); deterministic,
                  exactly as in the sample app: call ``n`` (counting Say and Info calls from 1)
                  fails when ``floor(n * rate) > floor((n - 1) * rate)``
``ERROR_CODE``    the gRPC status of injected failures, by name or number (default
                  ``UNAVAILABLE``, 14)

Replicas of one Deployment share a port on the local lab (``SO_REUSEPORT``), as pods behind a
Service do. One log line per call on stdout; SIGTERM or SIGINT stops the server (calls in
flight get a second to finish) and the process exits 0.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import sys
import threading
import time
from concurrent import futures
from dataclasses import dataclass
from fractions import Fraction
from typing import Mapping

import grpc

from .sample import ConfigError, _Counter, _log, common_settings, should_fail

__all__ = [
    "SERVICE", "HEALTH_SERVICE", "Settings", "ConfigError", "make_server", "main",
    "encode_health_response", "decode_health_request",
]

SERVICE = "lab.echo.Echo"
HEALTH_SERVICE = "grpc.health.v1.Health"
DEFAULT_PORT = 9000

# grpc.health.v1.HealthCheckResponse.ServingStatus
SERVING = 1


@dataclass(frozen=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    service: str = "grpc-echo"
    version: str = "v1"
    pod: str = "grpc-echo"
    message: str | None = None
    latency_ms: float = 0.0
    error_rate: Fraction = Fraction(0)
    error_code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        get, port, latency, rate = common_settings(env, DEFAULT_PORT)
        message = env.get("MESSAGE")
        return cls(
            host=get("HOST", "0.0.0.0"),
            port=port,
            service=get("SERVICE_NAME", "grpc-echo"),
            version=get("VERSION", "v1"),
            pod=get("POD_NAME", socket.gethostname()),
            message=message if message else None,
            latency_ms=latency,
            error_rate=rate,
            error_code=parse_status_code(get("ERROR_CODE", "UNAVAILABLE")),
        )


def parse_status_code(raw: str) -> grpc.StatusCode:
    """A gRPC status by name (``UNAVAILABLE``, case-insensitive) or number (``14``); not OK."""
    text = raw.strip()
    for code in grpc.StatusCode:
        number, name = code.value[0], code.name
        if text.upper() == name or text == str(number):
            if code is grpc.StatusCode.OK:
                break
            return code
    names = ", ".join(c.name for c in grpc.StatusCode if c is not grpc.StatusCode.OK)
    raise ConfigError(f"ERROR_CODE={raw!r} is not a gRPC error status; use a name or number, one of {names}")


# -- the health service, protobuf by hand ------------------------------------------------------

def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def decode_health_request(data: bytes) -> str:
    """``HealthCheckRequest.service`` (field 1, string) from its wire bytes; other fields skipped."""
    i, service = 0, ""
    while i < len(data):
        key, i = _read_varint(data, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, i = _read_varint(data, i)
        elif wire == 1:
            i += 8
        elif wire == 2:
            n, i = _read_varint(data, i)
            if i + n > len(data):
                raise ValueError("truncated field")
            if field == 1:
                service = data[i:i + n].decode("utf-8")
            i += n
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
    if i > len(data):
        raise ValueError("truncated message")
    return service


def encode_health_response(status: int) -> bytes:
    """``HealthCheckResponse{status}`` (field 1, enum): tag 0x08 then the varint."""
    return bytes([0x08, status]) if 0 <= status < 0x80 else b""


# -- the server --------------------------------------------------------------------------------

def _authority(context: grpc.ServicerContext) -> str:
    # grpcio has no public accessor for :authority; the call details it keeps carry it.
    details = getattr(getattr(context, "_rpc_event", None), "call_details", None)
    host = getattr(details, "host", b"") or b""
    return host.decode("utf-8", "replace") if isinstance(host, bytes) else str(host)


def _metadata(context: grpc.ServicerContext) -> dict:
    out: dict[str, str] = {}
    for key, value in context.invocation_metadata() or ():
        key = key.lower()
        if isinstance(value, bytes):
            value = base64.b64encode(value).decode("ascii")
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


class EchoService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.counter = _Counter()

    def _who(self) -> dict:
        s = self.settings
        return {"service": s.service, "version": s.version, "pod": s.pod}

    def _call(self, method: str, request: bytes, context: grpc.ServicerContext) -> bytes:
        started = time.monotonic()
        s = self.settings
        code = "OK"
        try:
            # like the sample app's X-Served-By header: says who answered, errors included
            context.send_initial_metadata((("x-served-by", f"{s.service}/{s.version}/{s.pod}"),))
            number = self.counter.next()
            if s.latency_ms > 0:
                time.sleep(s.latency_ms / 1000.0)
            if s.error_rate and should_fail(number, s.error_rate):
                code = s.error_code.name
                context.abort(s.error_code, f"injected failure: call #{number} with ERROR_RATE="
                                            f"{float(s.error_rate):g} ({s.service} {s.version}, pod {s.pod})")
            body = None
            if request:
                try:
                    body = json.loads(request)
                except ValueError as exc:
                    code = "INVALID_ARGUMENT"
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"the request is not JSON: {exc}")
                if not isinstance(body, dict):
                    code = "INVALID_ARGUMENT"
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the request must be a JSON object")
            info = {"method": f"/{SERVICE}/{method}", "authority": _authority(context),
                    "metadata": _metadata(context), "peer": context.peer()}
            message = s.message
            if method == "Say":
                info["body"] = body
                if body and isinstance(body.get("message"), str):
                    message = body["message"]
            answer = {**self._who(), "message": message, "request": info}
            return json.dumps(answer).encode("utf-8")
        finally:
            elapsed_ms = (time.monotonic() - started) * 1000.0
            _log(f'{context.peer()} "/{SERVICE}/{method}" {code} {elapsed_ms:.0f}ms '
                 f"authority={_authority(context) or '-'}")

    def say(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        return self._call("Say", request, context)

    def info(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        return self._call("Info", request, context)

    def unknown(self, method: str, context: grpc.ServicerContext) -> bytes:
        s = self.settings
        context.send_initial_metadata((("x-served-by", f"{s.service}/{s.version}/{s.pod}"),))
        _log(f'{context.peer()} "{method}" UNIMPLEMENTED authority={_authority(context) or "-"}')
        context.set_trailing_metadata((("x-request-method", method), ("x-request-authority", _authority(context))))
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")  # grpcio's own words

    def health_check(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        try:
            name = decode_health_request(request or b"")
        except (ValueError, UnicodeDecodeError) as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad HealthCheckRequest: {exc}")
        if name not in ("", SERVICE):
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {name!r}")
        return encode_health_response(SERVING)


def _unary(fn) -> grpc.RpcMethodHandler:
    # request_deserializer / response_serializer None: the handler gets and returns raw bytes
    return grpc.unary_unary_rpc_method_handler(fn, request_deserializer=None, response_serializer=None)


class _Unknown(grpc.GenericRpcHandler):
    """Every method the handlers before it do not serve: UNIMPLEMENTED, saying who answered."""

    def __init__(self, echo: EchoService) -> None:
        self.echo = echo

    def service(self, handler_call_details):
        method = handler_call_details.method
        return _unary(lambda _request, context: self.echo.unknown(method, context))


def make_server(settings: Settings, max_workers: int = 16) -> tuple[grpc.Server, int]:
    """Build and bind the server (not started). Returns it and the port it is bound to."""
    echo = EchoService(settings)
    handlers = [
        grpc.method_handlers_generic_handler(SERVICE, {"Say": _unary(echo.say), "Info": _unary(echo.info)}),
        grpc.method_handlers_generic_handler(HEALTH_SERVICE, {"Check": _unary(echo.health_check)}),
        _Unknown(echo),
    ]
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc-echo"),
        handlers=handlers,
        options=[("grpc.so_reuseport", 1)],
    )
    host = settings.host
    address = f"[{host}]:{settings.port}" if ":" in host else f"{host}:{settings.port}"
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as exc:  # grpcio raises RuntimeError when it cannot bind
        raise OSError(str(exc)) from None
    if not port:  # older grpcio returns 0 instead of raising
        raise OSError(f"cannot bind {address}")
    return server, port


def main(argv: list[str] | None = None) -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"grpc-echo: configuration error: {exc}", file=sys.stderr, flush=True)
        return 2
    try:
        server, port = make_server(settings)
    except OSError as exc:
        print(f"grpc-echo: cannot listen on {settings.host}:{settings.port}: {exc}", file=sys.stderr, flush=True)
        return 1

    stopping = threading.Event()

    def stop(signum, _frame) -> None:
        if not stopping.is_set():
            _log(f"grpc-echo: received {signal.Signals(signum).name}, shutting down")
            stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    server.start()
    _log(f"grpc-echo: {settings.service} {settings.version} (pod {settings.pod}) "
         f"listening on {settings.host}:{port} (gRPC service {SERVICE})")
    while not stopping.wait(0.5):
        pass
    server.stop(grace=1.0).wait(5.0)
    _log("grpc-echo: stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
