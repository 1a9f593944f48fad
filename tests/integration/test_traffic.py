"""Virtual routers behind the gateway: router routes on the rewritten request, weighted
splits, retries and timeouts — real Envoy, real sample apps with injected errors and latency.
"""
import socket
import threading

import pytest

from lab.apps import websocket
from lab.bench import manifests as m

from .conftest import start_lab

pytestmark = pytest.mark.envoy

NS = "it-traffic"
RETRY = {"maxRetries": 3, "perRetryTimeout": {"unit": "s", "value": 2}, "httpRetryEvents": ["server-error"]}


def docs():
    out = m.base(NS)
    # red/blue: the colour walkthrough (EX howto-k8s-http-ingress-v2) and the 90/10 split
    # flaky: every second request answers 500; flaky503: every second request answers 503
    # slow: answers after 1 s
    for name, env in {"red": {}, "blue": {}, "flaky": {"ERROR_RATE": "0.5", "ERROR_CODE": "500"},
                      "flaky503": {"ERROR_RATE": "0.5", "ERROR_CODE": "503"}, "slow": {"LATENCY_MS": "1000"}}.items():
        out += [m.virtual_node(name, NS), m.app(name, NS, **env)]
    out += [
        m.virtual_router("colors", NS, [m.router_route("red", {"red": 1}, {"prefix": "/red"}),
                                        m.router_route("blue", {"blue": 1}, {"prefix": "/blue"})]),
        m.virtual_service("colors", NS, router="colors"),
        m.gateway_route("paths", NS, {"prefix": "/paths"}, "colors"),
        m.virtual_router("canary", NS, [m.router_route("split", {"red": 90, "blue": 10})]),
        m.virtual_service("canary", NS, router="canary"),
        m.gateway_route("canary", NS, {"prefix": "/canary"}, "canary"),
        # the same flaky node: through a route without a retry policy, and with one
        m.virtual_router("flaky-plain", NS, [m.router_route("plain", {"flaky": 1})]),
        m.virtual_service("flaky-plain", NS, router="flaky-plain"),
        m.gateway_route("flaky-plain", NS, {"prefix": "/flaky/plain"}, "flaky-plain"),
        m.virtual_router("flaky-retry", NS, [m.router_route("retry", {"flaky": 1}, retry=RETRY)]),
        m.virtual_service("flaky-retry", NS, router="flaky-retry"),
        m.gateway_route("flaky-retry", NS, {"prefix": "/flaky/retry"}, "flaky-retry"),
        # a virtual node provider: App Mesh's invisible default policy (retry 503 twice) applies
        m.virtual_service("flaky503", NS, node="flaky503"),
        m.gateway_route("flaky503", NS, {"prefix": "/flaky503"}, "flaky503"),
        m.virtual_router("slow-timeout", NS, [m.router_route("t", {"slow": 1},
                                                             timeout={"perRequest": {"unit": "ms", "value": 250}})]),
        m.virtual_service("slow-timeout", NS, router="slow-timeout"),
        m.gateway_route("slow-timeout", NS, {"prefix": "/slow/timeout"}, "slow-timeout"),
        m.virtual_service("slow", NS, node="slow"),
        m.gateway_route("slow", NS, {"prefix": "/slow/default"}, "slow"),
    ]
    return out


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with start_lab(tmp_path_factory, NS, docs(), ready=["/paths/red", "/paths/blue", "/canary"]) as lab:
        yield lab


def test_router_routes_see_the_rewritten_path(lab):
    """Gateway prefix /paths + router route prefix /red: /paths/red reaches the red node as /red."""
    r = lab.get("/paths/red")
    assert (r.status, r.service, r.path) == (200, "red", "/red")
    r = lab.get("/paths/blue/deep?x=1")
    assert (r.status, r.service, r.path) == (200, "blue", "/blue/deep?x=1")
    assert r.host == m.vs_host("colors", NS)
    assert lab.get("/paths/green").status == 404  # no router route matches: Envoy's NR


def _count(lab, path, n, threads=16):
    """n GETs over `threads` keep-alive connections; returns {service: count} and the statuses."""
    counts, statuses, lock = {}, {}, threading.Lock()

    def work(k):
        h = lab.http()
        try:
            for _ in range(k):
                r = h.get(path)
                with lock:
                    statuses[r.status] = statuses.get(r.status, 0) + 1
                    if r.status == 200:
                        counts[r.service] = counts.get(r.service, 0) + 1
        finally:
            h.close()
    ts = [threading.Thread(target=work, args=(n // threads + (1 if i < n % threads else 0),)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    return counts, statuses


def test_weighted_split_90_10(lab):
    n = 1000
    counts, statuses = _count(lab, "/canary", n)
    assert statuses == {200: n}, statuses
    blue = counts.get("blue", 0)
    # binomial(1000, 0.1): mean 100, sd 9.5; +-4.5 sd keeps a false failure below 1e-5
    assert 57 <= blue <= 143, counts
    assert counts["red"] + blue == n


def _failures(lab, path, n):
    h = lab.http()
    try:
        return sum(1 for _ in range(n) if h.get(path).status != 200)
    finally:
        h.close()


def test_without_a_retry_policy_500s_reach_the_client(lab):
    # the app fails exactly every second request (deterministic ERROR_RATE); App Mesh's
    # default policy retries 503 only, so the 500s are not retried
    assert _failures(lab, "/flaky/plain", 40) == 20


def test_a_retry_policy_on_server_errors_hides_them(lab):
    stats_before = lab.target.stats("gateway", filter="upstream_rq_retry$")
    assert _failures(lab, "/flaky/retry", 40) == 0
    stats_after = lab.target.stats("gateway", filter="upstream_rq_retry$")
    key = next(k for k in stats_after if "_flaky_" in k and k.startswith("cluster.cds_egress_"))
    assert stats_after[key] - stats_before.get(key, 0) >= 20  # every failed attempt was retried


def test_the_default_policy_retries_503(lab):
    assert _failures(lab, "/flaky503", 40) == 0


def test_per_request_timeout_gives_504(lab):
    r = lab.get("/slow/timeout")
    assert r.status == 504
    assert 0.2 <= r.elapsed < 0.95, r.elapsed  # the app answers after 1 s


def test_without_a_timeout_the_default_15s_lets_a_slow_answer_through(lab):
    r = lab.get("/slow/default")
    assert (r.status, r.service) == (200, "slow")
    assert r.elapsed >= 0.95


def test_the_gateway_hands_requests_to_its_egress_stage_in_memory(lab):
    """The gateway's two routing stages are joined inside Envoy: the self-redirect cluster's
    endpoint is the internal listener, which has no socket, and requests routed by the gateway
    reach it (its HCM counts them) with no TCP connection opened to it."""
    before = lab.target.stats("gateway", filter=r"^http\.egress_\d+\.downstream_rq_total$")
    assert lab.get("/paths/red").status == 200
    dump = lab.target.admin("gateway", "/config_dump?include_eds").json()
    listeners = [e.get("active_state", {}).get("listener", {}) for c in dump["configs"]
                 if c.get("@type", "").endswith("ListenersConfigDump") for e in c.get("dynamic_listeners", [])]
    internal = [lst for lst in listeners if "internal_listener" in lst]
    assert [lst["name"] for lst in internal] and all("address" not in lst for lst in internal)
    loopback = [lst["name"] for lst in listeners
                if (lst.get("address") or {}).get("socket_address", {}).get("address") == "127.0.0.1"]
    assert not [n for n in loopback if "egress" in n], loopback
    eps = [lb["endpoint"]["address"] for c in dump["configs"] if c.get("@type", "").endswith("EndpointsConfigDump")
           for e in c.get("dynamic_endpoint_configs", []) if "self_redirect" in e["endpoint_config"]["cluster_name"]
           for g in e["endpoint_config"]["endpoints"] for lb in g["lb_endpoints"]]
    assert eps and all(set(a) == {"envoy_internal_address"} for a in eps), eps
    after = lab.target.stats("gateway", filter=r"^http\.egress_\d+\.downstream_rq_total$")
    assert sum(after.values()) > sum(before.values()), (before, after)


def test_a_websocket_crosses_the_gateway_and_the_sidecar(lab):
    """App Mesh lets a virtual gateway's http listener switch a connection to WebSocket
    (APPMESH-FACTS §4.1). The upgrade crosses the gateway's two stages and the node's sidecar;
    the app's 101 comes back with its accept value, then messages flow both ways on the
    connection. Without upgrade_configs on the egress stage Envoy answers 403 to the upgrade."""
    key = websocket.new_key()
    with socket.create_connection(lab.address(), timeout=10) as s:
        s.sendall((f"GET /paths/red/chat HTTP/1.1\r\nHost: {NS}.example\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        rfile = s.makefile("rb")
        head = []
        while (line := rfile.readline()) not in (b"\r\n", b""):
            head.append(line.decode().strip())
        assert head and head[0].startswith("HTTP/1.1 101"), head
        fields = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
        assert fields.get("sec-websocket-accept") == websocket.accept_for(key), fields
        assert fields.get("x-served-by", "").startswith("red/"), fields
        for text in ("hello", "again"):
            s.sendall(websocket.encode(text.encode(), mask=True))
            opcode, payload = websocket.read(rfile)
            assert opcode == websocket.TEXT and payload.decode().endswith(f"got {text}"), (opcode, payload)
            assert payload.decode().startswith("red "), payload
        s.sendall(websocket.encode(b"\x03\xe8", websocket.CLOSE, mask=True))  # 1000: normal closure
        assert websocket.read(rfile) == (websocket.CLOSE, b"\x03\xe8")
