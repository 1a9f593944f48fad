"""What Envoy reports about a request: the headers it adds, its access-log lines and response flags."""
from __future__ import annotations

import os
import re

from ..runtime.envoy import ACCESS_LOG_FLUSH_MS
from ..targets.base import TargetError
from .common import NotebookError
from .resources import quiet
from .traffic import Hit, curl_line, hit


# ---- what Envoy reports: the headers it adds, its access log ------------------------------

# Envoy's response flags (the RESPONSE_FLAGS field of an access log line), the ones a lesson meets
RESPONSE_FLAGS = {
    "-": "none: Envoy had nothing to report",
    "NR": "no route configured for the request (no route matched)",
    "NC": "no cluster found (the route names a cluster Envoy does not have)",
    "UH": "no healthy upstream host in the cluster",
    "UF": "upstream connection failure",
    "UC": "upstream connection termination",
    "UT": "upstream request timeout",
    "URX": "upstream retry limit exceeded",
    "UO": "upstream overflow (circuit breaking)",
    "UR": "upstream remote reset",
    "DC": "downstream connection termination",
    "LR": "connection local reset",
    "RL": "rate limited",
    "DI": "delayed by fault injection",
    "FI": "aborted by fault injection",
}
ENVOY_HEADERS = ("server", "x-envoy-upstream-service-time", "content-type", "content-length")
_ACCESS_LOG = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) (?P<protocol>[^"\s]+)" (?P<status>\d{3}|0) '
                         r'(?P<flags>\S+) (?P<received>\d+) (?P<sent>\d+) (?P<duration>\d+|-) (?P<upstream_ms>\d+|-)'
                         r'(?: "(?P<forwarded_for>[^"]*)" "(?P<user_agent>[^"]*)" "(?P<request_id>[^"]*)" '
                         r'"(?P<authority>[^"]*)" "(?P<upstream_host>[^"]*)")?')


def access_log_entry(line: str) -> dict | None:
    """The fields of one line in Envoy's default access log format, or None when the line is not
    one: method, path, protocol, status, flags, received, sent, duration, upstream_ms,
    forwarded_for, user_agent, request_id, authority, upstream_host."""
    m = _ACCESS_LOG.search(line)
    return {k: v for k, v in m.groupdict().items()} if m else None


def response_flag(line: str) -> str:
    """The response flag(s) of an access log line (`-` when Envoy had none, `NR`, `UF,URX`, ...)."""
    entry = access_log_entry(line)
    if entry is None:
        raise NotebookError(f"not an Envoy access log line in the default format: {line[:200]!r}")
    return entry["flags"]


def explain_flag(flags: str) -> str:
    if flags == "-":
        return RESPONSE_FLAGS["-"]
    return "; ".join(f"{f}: {RESPONSE_FLAGS.get(f, 'see Envoy: access log, response flags')}" for f in flags.split(","))


def status_line(h: Hit) -> str:
    from http import HTTPStatus
    try:
        reason = HTTPStatus(h.status).phrase
    except ValueError:
        reason = ""
    return f"HTTP/1.1 {h.status} {reason}".rstrip()


_MARKS = iter(range(1, 1 << 30))
# the local lab's Envoys write their access logs every ACCESS_LOG_FLUSH_MS (lab/runtime/envoy.py):
# one flush and a margin, and how often to look while waiting for a line
_FLUSH_S = ACCESS_LOG_FLUSH_MS / 1000 + 0.05
_LOG_POLL_S = 0.05


def show_request(t, path: str, headers: dict | None = None, gateway: str | None = None, method: str = "GET",
                 log: tuple | None = ("appmesh-gateway", "envoy"), show: tuple = ENVOY_HEADERS,
                 timeout: float = 10) -> Hit:
    """One request through the gateway, shown as `curl -i` would (the status line and the
    headers Envoy adds), then the line the gateway wrote to its access log for it (found by a
    user agent marked for this request) and its response flag. `log` is (pod or Deployment,
    container) whose log to read, or None. Returns the Hit, with `.log_line` and `.flag`."""
    mark = f"appmesh-lab-lesson/{os.getpid()}-{next(_MARKS)}"
    print("$ " + curl_line(path, headers, gateway, method).replace("curl", "curl -i", 1))
    h = hit(t, path, headers=dict(headers or {}, **{"User-Agent": mark}), gateway=gateway, method=method)[0]
    print(status_line(h))
    for name in show:
        if name in h.headers:
            print(f"{name}: {h.headers[name]}")
    h.log_line, h.flag = None, None
    if log:
        def logged():
            with quiet(t):
                lines = [x for x in t.logs(*log).splitlines() if mark in x]
            assert lines, f"the request is not in {log[0]}'s access log yet"
            return lines[-1]
        t.eventually(logged, timeout, interval=_LOG_POLL_S, what="the access log line")
        # a gateway logs a request twice, its egress stage first: wait one flush more, so the line
        # shown is always the last one, the listener's
        import time as _time
        _time.sleep(_FLUSH_S)
        h.log_line = logged()
        h.flag = response_flag(h.log_line)
        print(f"access log of {log[0]} ({log[1]}): {h.log_line.strip()}")
        print(f"response flag {h.flag}: {explain_flag(h.flag)}")
    return h


# ---- access logs, per proxy and request (lesson 11) ------------------------------------------

def access_log(t, owner: str, path: str, container: str = "envoy") -> list[dict]:
    """The access-log lines the Envoys of `owner`'s pods wrote for requests to `path` (query
    included), oldest first per pod: {"method", "path", "status", "flags", "line"}. Every pod
    of that owner is read (any namespace, every replica): the examples all name their gateway's
    Deployment `gateway`, and a request goes to one replica of several. The proxy's
    logging.accessLog.file.path must be /dev/stdout (it is then in `kubectl logs -c envoy`)."""
    pods = [p["name"] for p in t.pods() if owner in (p.get("owner"), p["name"])] or [owner]
    out = []
    for pod in pods:
        try:
            text = t.logs(pod, container)
        except TargetError:   # gone since it was listed (a pod replaced, an example removed)
            continue
        for line in text.splitlines():
            e = access_log_entry(line)
            if e and e["path"] == path:
                out.append({"method": e["method"], "path": path, "status": int(e["status"]), "flags": e["flags"],
                            "line": line.strip()})
    return out


def flags(t, owner: str, path: str, n: int = 1, timeout: float = 10, show: bool = True) -> list[str]:
    """Wait until `owner`'s Envoy has logged at least `n` requests for `path`, print the last `n`
    lines, and return their response flags in order ("-" for none). Give every check its own path
    (a query string will do) so that lines of other checks do not count."""
    def enough():
        lines = access_log(t, owner, path)
        assert len(lines) >= n, f"{len(lines)} access-log lines for {path} from {owner}'s Envoy, expected {n}"
        return lines[-n:]
    with quiet(t):
        lines = t.eventually(enough, timeout, interval=_LOG_POLL_S, what=f"{owner}'s access-log lines for {path}")
    for l in lines if show else []:   # the stable part of each line: request, status and flags
        print(f'{owner}\'s Envoy: "{l["method"]} {l["path"]} ..." {l["status"]} {l["flags"]}')
    return [l["flags"] for l in lines]
