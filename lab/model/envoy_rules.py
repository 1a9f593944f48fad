"""What Envoy refuses, checked at validation (the first line of "one bad resource never takes
traffic down").

Every value of a manifest that the translator sends to Envoy is checked here against the rule
Envoy applies to the field it lands in: the `validate.rules` annotations of Envoy's API protos
(HeaderMatcher.name: HTTP_HEADER_NAME; RouteAction.prefix_rewrite, host_rewrite_literal,
RegexMatchAndSubstitute.substitution, VirtualHost.domains: HTTP_HEADER_VALUE, no NUL/CR/LF;
HttpHealthCheck.path: strict HTTP_HEADER_VALUE; QueryParameterMatcher.name: 1–1024 bytes;
OutlierDetection.interval: > 0; uint32 counters), and what Envoy checks when it builds the
configuration (durations it can hold in nanoseconds, access-log format command operators, an
access-log file it can open). Each one was seen NACKed by a real Envoy
(tests/xds/test_envoy_rules.py pushes every refused value to one).

Findings here carry the code ENVOY_CODE. A test-only seam (lab/runtime/daemon.py,
APPMESH_LAB_TEST_SKIP_ENVOY_CHECKS) turns them off, so the daemon's second line — leaving out a
resource Envoy NACKs — can be tested with a value only Envoy refuses.
"""
from __future__ import annotations

import re

from .schema import Finding

ENVOY_CODE = "envoy"

UINT32_MAX = 4_294_967_295
# Envoy converts durations to nanoseconds in a signed 64-bit integer: 9,223,372,036 s is refused
# ("Duration out-of-range"), 9,223,372,035 s is taken.
MAX_DURATION_S = 9_223_372_035
MAX_DURATION_MS = MAX_DURATION_S * 1000

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NUL_CR_LF = re.compile(r"[\x00\r\n]")
# RFC 9110 token characters; Envoy's matchers also take HTTP/2 pseudo-headers (":authority")
HEADER_NAME = re.compile(r":?[0-9A-Za-z!#$%&'*+.^_`|~-]+")
HOSTNAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?")


def _shown(value: str, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def header_name(value, what: str = "header name") -> list:
    if not isinstance(value, str) or not value:
        return []
    if HEADER_NAME.fullmatch(value):
        return []
    fixed = re.sub(r"[^0-9A-Za-z!#$%&'*+.^_`|~-]+", "-", value).strip("-") or "x-my-header"
    why = ("contains a CR, LF or NUL character, and Envoy rejects the whole route configuration for it"
           if _NUL_CR_LF.search(value) else
           "is not an HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only), so no request can carry it")
    return [Finding("", f"{what} {_shown(value)} {why}", f"write a header name such as {fixed!r}", ENVOY_CODE)]


def no_control(value, what: str, hint: str, code: str = ENVOY_CODE) -> list:
    """A value Envoy puts in a header, a path or a rewrite: no control characters."""
    if isinstance(value, str) and _CONTROL.search(value):
        return [Finding("", f"{what} {_shown(value)} contains a control character (CR, LF, NUL, tab, …); "
                            "Envoy refuses it or no request can carry it", hint, code)]
    return []


def hostname(value, what: str, suffix: bool = False) -> list:
    if not isinstance(value, str) or not value:
        return []
    name = value[1:] if suffix and value.startswith(".") else value
    if HOSTNAME.fullmatch(name) and ".." not in name:
        return []
    if ":" in value and HOSTNAME.fullmatch(value.rsplit(":", 1)[0]):
        hint = f"write {value.rsplit(':', 1)[0]!r}: the port is not part of the host name (it is ignored when matching)"
    else:
        hint = "write a DNS name: letters, digits, '-', '_' and '.', e.g. products.example.com"
    return [Finding("", f"{what} {_shown(value)} is not a host name", hint,
                    ENVOY_CODE if _NUL_CR_LF.search(value) else "invalid")]


def duration_rule(positive: bool = False):
    """An App Mesh duration ({unit, value}) Envoy can hold; `positive` where Envoy wants > 0."""
    def check(v: dict) -> list:
        value, unit = v.get("value"), v.get("unit")
        if not isinstance(value, int) or isinstance(value, bool) or unit not in ("s", "ms"):
            return []
        ms = value * (1000 if unit == "s" else 1)
        if ms > MAX_DURATION_MS:
            return [Finding("value", f"{value} {unit} is longer than Envoy can hold (at most {MAX_DURATION_S} s)",
                            "use a shorter duration", ENVOY_CODE)]
        if positive and value <= 0:
            return [Finding("value", "must be above 0: Envoy refuses a zero duration here",
                            "write e.g. unit: s, value: 10", ENVOY_CODE)]
        return []
    return check


def query_name(v: dict) -> list:
    name = v.get("name")
    if isinstance(name, str) and len(name.encode()) > 1024:
        return [Finding("name", f"a query parameter name of {len(name.encode())} bytes is longer than Envoy's "
                                "limit of 1024", "shorten it", ENVOY_CODE)]
    return []


# ---- access logs ----------------------------------------------------------------------

# Envoy's access-log command operators (docs/root/configuration/observability/access_log/usage.rst)
FORMAT_COMMANDS = frozenset("""
START_TIME REQUEST_HEADERS_BYTES BYTES_RECEIVED PROTOCOL UPSTREAM_PROTOCOL RESPONSE_CODE RESPONSE_CODE_DETAILS
CONNECTION_TERMINATION_DETAILS RESPONSE_HEADERS_BYTES RESPONSE_TRAILERS_BYTES BYTES_SENT
UPSTREAM_REQUEST_ATTEMPT_COUNT UPSTREAM_WIRE_BYTES_SENT UPSTREAM_WIRE_BYTES_RECEIVED UPSTREAM_HEADER_BYTES_SENT
UPSTREAM_HEADER_BYTES_RECEIVED DOWNSTREAM_WIRE_BYTES_SENT DOWNSTREAM_WIRE_BYTES_RECEIVED
DOWNSTREAM_HEADER_BYTES_SENT DOWNSTREAM_HEADER_BYTES_RECEIVED DURATION REQUEST_DURATION REQUEST_TX_DURATION
RESPONSE_DURATION RESPONSE_TX_DURATION RESPONSE_FLAGS ROUTE_NAME VIRTUAL_CLUSTER_NAME UPSTREAM_HOST
UPSTREAM_CLUSTER UPSTREAM_LOCAL_ADDRESS UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT UPSTREAM_LOCAL_PORT
UPSTREAM_REMOTE_ADDRESS UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT UPSTREAM_REMOTE_PORT
UPSTREAM_TRANSPORT_FAILURE_REASON DOWNSTREAM_REMOTE_ADDRESS DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT
DOWNSTREAM_REMOTE_PORT DOWNSTREAM_DIRECT_REMOTE_ADDRESS DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT
DOWNSTREAM_DIRECT_REMOTE_PORT DOWNSTREAM_LOCAL_ADDRESS DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT
DOWNSTREAM_LOCAL_PORT CONNECTION_ID GRPC_STATUS GRPC_STATUS_NUMBER REQ RESP TRAILER DYNAMIC_METADATA
CLUSTER_METADATA UPSTREAM_METADATA FILTER_STATE UPSTREAM_FILTER_STATE REQUESTED_SERVER_NAME
DOWNSTREAM_LOCAL_URI_SAN DOWNSTREAM_PEER_URI_SAN DOWNSTREAM_LOCAL_SUBJECT DOWNSTREAM_PEER_SUBJECT
DOWNSTREAM_PEER_ISSUER DOWNSTREAM_TLS_SESSION_ID DOWNSTREAM_TLS_CIPHER DOWNSTREAM_TLS_VERSION
DOWNSTREAM_PEER_FINGERPRINT_256 DOWNSTREAM_PEER_FINGERPRINT_1 DOWNSTREAM_PEER_SERIAL DOWNSTREAM_PEER_CERT
DOWNSTREAM_PEER_CERT_V_START DOWNSTREAM_PEER_CERT_V_END UPSTREAM_PEER_SUBJECT UPSTREAM_PEER_ISSUER
UPSTREAM_TLS_SESSION_ID UPSTREAM_TLS_CIPHER UPSTREAM_TLS_VERSION UPSTREAM_PEER_CERT UPSTREAM_PEER_CERT_V_START
UPSTREAM_PEER_CERT_V_END HOSTNAME LOCAL_REPLY_BODY FILTER_CHAIN_NAME ENVIRONMENT
""".split())
# %NAME%, %NAME(arguments)%, %NAME(arguments):length%; %% is a literal percent sign
_COMMAND = re.compile(r"%%|%([A-Z0-9_]+)(\([^)]*\))?(:\d+)?%")


_OPERATOR_HINT = "use Envoy's command operators, e.g. %START_TIME% %REQ(:PATH)% %RESPONSE_CODE%"


def format_problem(text: str) -> tuple[str, str] | None:
    """Why Envoy would refuse an access-log format string, and what to write; or None."""
    i = 0
    while True:
        j = text.find("%", i)
        if j < 0:
            return None
        m = _COMMAND.match(text, j)
        if m is None:
            return (f"has a '%' at position {j} that starts no command operator (Envoy: \"Couldn't find valid "
                    "command\")", "write %% for a literal percent sign")
        if m.group(1) and m.group(1) not in FORMAT_COMMANDS:
            return f"uses %{m.group(1)}%, which is not an Envoy command operator", _OPERATOR_HINT
        i = m.end()


def access_log_format(v: dict) -> list:
    out = []
    if isinstance(v.get("text"), str):
        err = format_problem(v["text"])
        if err:
            out.append(Finding("text", f"the format {err[0]}", err[1], ENVOY_CODE))
    for i, kv in enumerate(v.get("json") if isinstance(v.get("json"), list) else []):
        if isinstance(kv, dict) and isinstance(kv.get("value"), str):
            err = format_problem(kv["value"])
            if err:
                out.append(Finding(f"json[{i}].value", f"the value {err[0]}", err[1], ENVOY_CODE))
    return out


STREAMS = ("/dev/stdout", "/dev/stderr")


def access_log_path(v: dict) -> list:
    """A file path Envoy can open. Paths are absolute; the local lab writes every path but the
    standard streams inside the pod's folder (lab/runtime/daemon.py), where it creates the
    directories; a cluster's Envoy container must have the directory."""
    p = v.get("path")
    if not isinstance(p, str) or not p:
        return []
    hint = "write /dev/stdout (read it with `logs POD -c envoy`), or an absolute file path such as /var/log/envoy/access.log"
    if _CONTROL.search(p):
        return [Finding("path", f"access log path {_shown(p)} contains a control character", hint, ENVOY_CODE)]
    if not p.startswith("/"):
        return [Finding("path", f"access log path {_shown(p)} is not absolute", hint, ENVOY_CODE)]
    parts = p.split("/")
    if ".." in parts or "." in parts or p.endswith("/"):
        return [Finding("path", f"access log path {_shown(p)} is not a plain file path ('.', '..' or a trailing '/')",
                        hint, ENVOY_CODE)]
    if p.startswith("/dev/") and p not in STREAMS:
        return [Finding("path", f"access log path {_shown(p)} is a device other than /dev/stdout or /dev/stderr",
                        hint, ENVOY_CODE)]
    return []


def on(key: str, check, *args):
    """An object rule that runs `check(value, *args)` on one field and reports at that field."""
    def rule(v: dict) -> list:
        return [Finding(f"{key}.{f.path}" if f.path else key, f.message, f.hint, f.code)
                for f in check(v.get(key), *args)]
    return rule


def unique_listener_ports(v: dict) -> list:
    """Two listeners on one port become two Envoy listeners on one address."""
    seen, out = {}, []
    for i, lst in enumerate(v.get("listeners") if isinstance(v.get("listeners"), list) else []):
        pm = lst.get("portMapping") if isinstance(lst, dict) else None
        port = pm.get("port") if isinstance(pm, dict) else None
        if isinstance(port, int) and not isinstance(port, bool):
            if port in seen:
                out.append(Finding(f"listeners[{i}].portMapping.port",
                                   f"port {port} is used by listeners[{seen[port]}] already; Envoy cannot bind one "
                                   "address twice", "give each listener its own port", ENVOY_CODE))
            seen.setdefault(port, i)
    return out
