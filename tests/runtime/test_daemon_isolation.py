"""The daemon in process (no processes start), answering for the gateway's Envoy: a stand-in
that NACKs any configuration holding a route it cannot take. The daemon finds that route, leaves
it out, keeps every other change, and marks only it; a resource the lab cannot translate is
isolated the same way."""
import pytest

from lab.bench import manifests as m
from tests.daemon_in_process import gateway_node, in_process_daemon

NS = "iso"


@pytest.fixture
def daemon(tmp_path):
    with in_process_daemon(tmp_path / "lab") as d:
        yield d


def _routes(d, nid) -> set:
    snap = d.xds.get_snapshot(nid)
    return {r["name"] for rc in snap.to_dicts()["routes"] for vh in rc["virtual_hosts"] for r in vh.get("routes", [])}


def answer_like_envoy(d, refuse: str, rounds: int = 60) -> int:
    """Answer every push to the gateway until it stops changing: a NACK when a route named `refuse`
    is in it. Returns the number of pushes answered."""
    gw, answered = gateway_node(d), 0
    for _ in range(rounds):
        snap = d.xds.get_snapshot(gw)
        version = snap.version
        if d.pushes[gw]["acked"] is not None or d.isolation.sent[gw].get("answered"):
            break
        if any(name.startswith(refuse) for name in _routes(d, gw)):
            d.on_nack(gw, "type.googleapis.com/envoy.config.route.v3.RouteConfiguration", version,
                      "HeaderMatcherValidationError.Name: value does not match regex pattern")
        else:
            for t in snap.expected_types():
                d.on_ack(gw, t, version)
        answered += 1
        d.reconcile()
    return answered


def has_cr(value) -> bool:
    if isinstance(value, str):
        return "\r" in value
    if isinstance(value, dict):
        return any(has_cr(k) or has_cr(v) for k, v in value.items())
    return isinstance(value, list) and any(has_cr(v) for v in value)


def _condition(d, name):
    d.flush_status()  # as the daemon's readers do (an apply answers before its status pass)
    rec = d.store.get("GatewayRoute", NS, name)
    return rec.status["conditions"][0]


def test_a_route_the_proxy_rejects_among_forty_is_left_out_and_marked(daemon):
    d = daemon
    d.apply([("<base>", m.text(m.scale(40, NS)))])
    answer_like_envoy(d, refuse="bad")
    bad = m.gateway_route("bad", NS, {"prefix": "/bad/"}, "vs3")
    new = m.gateway_route("new", NS, {"prefix": "/new/"}, "vs4")
    d.apply([("<change>", m.text(bad, new))])
    pushes = answer_like_envoy(d, refuse="bad")
    gw = gateway_node(d)
    names = _routes(d, gw)
    assert not any(n.startswith("bad") for n in names)
    assert any(n.startswith("new") for n in names) and len([n for n in names if n.startswith("r")]) == 40
    assert pushes <= 10, pushes  # a bisection, not one push per route
    cond = _condition(d, "bad")
    assert (cond["status"], cond["reason"]) == ("False", "ConfigRejected") and "HeaderMatcher" in cond["message"]
    assert _condition(d, "new")["status"] == "True" and _condition(d, "r7")["status"] == "True"
    assert d.pushes[gw]["acked"] is not None  # the proxy runs the latest push
    assert {p["node_id"]: p for p in d.status()["proxies"]}[gw]["searching"] is False


def test_a_route_the_lab_cannot_translate_is_left_out_and_marked(daemon, monkeypatch):
    from lab.runtime import daemon as dmod
    real = dmod.translate

    def broken(world, placement, files=None):
        if world.get("GatewayRoute", NS, "crash"):
            raise KeyError("certificate_chain")
        return real(world, placement, files=files)
    monkeypatch.setattr(dmod, "translate", broken)
    real_update = dmod.Incremental.update  # the daemon's own path: only what a change touches

    def broken_update(self, resources, placement, files=None, only=None):
        if any(r.key == ("GatewayRoute", NS, "crash") for r in resources):
            raise KeyError("certificate_chain")
        return real_update(self, resources, placement, files, only)
    monkeypatch.setattr(dmod.Incremental, "update", broken_update)
    d = daemon
    d.apply([("<base>", m.text(m.scale(5, NS)))])
    d.apply([("<change>", m.text(m.gateway_route("crash", NS, {"prefix": "/crash/"}, "vs1"),
                                 m.gateway_route("fine", NS, {"prefix": "/fine/"}, "vs2")))])
    names = _routes(d, gateway_node(d))
    assert any(n.startswith("fine") for n in names) and not any(n.startswith("crash") for n in names)
    cond = _condition(d, "crash")
    assert cond["reason"] == "ConfigRejected" and "could not translate" in cond["message"], cond
    fine = _condition(d, "fine")  # sent to the gateway, not ACKed yet
    assert (fine["status"], fine["reason"]) == ("Unknown", "Pending") and gateway_node(d).split("/")[-1] in fine["message"], fine
    answer_like_envoy(d, refuse="crash")
    assert _condition(d, "fine")["status"] == "True"


def test_a_route_blamed_for_its_bad_service_gets_another_chance_once_the_service_is_fixed(daemon, monkeypatch):
    """A virtual service whose name Envoy refuses (CR/LF) arrives with a new route to it: leaving
    out the route (suspected first) is enough for the gateway, so the route is blamed. Fixing the
    service gives the route another chance."""
    from lab.model import validate
    monkeypatch.setattr(validate, "SKIP_CODES", frozenset({"envoy"}))  # let the bad name through
    d = daemon
    d.apply([("<base>", m.text(m.scale(3, NS)))])
    gw = gateway_node(d)

    def answer(rounds=40):
        for _ in range(rounds):
            snap = d.xds.get_snapshot(gw)
            if d.pushes[gw]["acked"] is not None or d.isolation.sent[gw].get("answered"):
                return
            if has_cr(snap.to_dicts()):
                d.on_nack(gw, "type.googleapis.com/envoy.config.route.v3.RouteConfiguration", snap.version,
                          "HeaderValueValidationError.Value: value does not match regex pattern")
            else:
                for t in snap.expected_types():
                    d.on_ack(gw, t, snap.version)
            d.reconcile()
    answer()
    bad_vs = m.virtual_service("vsbad", NS, node="vn0")
    bad_vs["spec"]["awsName"] = "bad\r\nname"
    d.apply([("<change>", m.text(bad_vs, m.gateway_route("gbad", NS, {"prefix": "/gbad/"}, "vsbad")))])
    answer()
    assert not has_cr(d.xds.get_snapshot(gw).to_dicts())
    names = _routes(d, gw)
    assert not any(n.startswith("gbad") for n in names) and len([n for n in names if n.startswith("r")]) == 3
    assert _condition(d, "gbad")["status"] == "False"
    assert set(d.isolation.rejected) == {("GatewayRoute", NS, "gbad")}  # suspected before its service
    bad_vs["spec"]["awsName"] = "vsbad.iso.svc.cluster.local"
    d.apply([("<fix>", m.text(bad_vs))])
    answer()
    assert any(n.startswith("gbad") for n in _routes(d, gw))
    assert _condition(d, "gbad")["status"] == "True"


def test_a_forged_nack_marks_nothing_and_records_no_event(daemon):
    """Issue 12: a NACK another client sent as the gateway's node id was stored as a ConfigRejected
    event. A NACK for a version the daemon never pushed, or for one the proxy already ACKed, is not
    the proxy's answer to anything: no resource is marked, no event recorded, nothing left out.
    (Another user cannot reach the xDS socket at all: tests/security.)"""
    d = daemon
    d.apply([("<base>", m.text(m.scale(3, NS)))])
    answer_like_envoy(d, refuse="nothing-is-refused")
    gw = gateway_node(d)
    acked = d.xds.get_snapshot(gw).version
    d.flush_status()  # the apply's events are written after its answer: all of them in before counting
    seen = lambda: {(e['time'], e['reason'], e['message']) for e in d.store.events(limit=1000)}  # noqa: E731
    routes, events = _routes(d, gw), seen()
    for version in ("forged-version", acked):
        d.on_nack(gw, "type.googleapis.com/envoy.config.route.v3.RouteConfiguration", version,
                  "intruder: forged NACK")
        d.reconcile()
    assert _routes(d, gw) == routes
    assert all(_condition(d, f"r{i}")["status"] == "True" for i in range(3))
    assert seen() - events == set(), seen() - events
