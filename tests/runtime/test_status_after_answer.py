"""An apply answers once its push is made; its status pass (Conditions, status records, events)
follows the answer. Whoever reads status or events afterwards (the control API's /v1/status,
/v1/resources and /v1/events, the App Mesh API) sees the state of the apply it waited for."""
import gc

import pytest

from lab.api.mapping import Index
from lab.bench import manifests as m
from lab.runtime.daemon import route
from tests.daemon_in_process import gateway_node, in_process_daemon

NS = "answer"


@pytest.fixture
def daemon(tmp_path):
    with in_process_daemon(tmp_path / "lab") as d:
        d.apply([("<base>", m.text(m.scale(2, NS)))])
        d.flush_status()
        yield d


def _recording(d, monkeypatch) -> list:
    """What the daemon does, in order: push (set_snapshot), status (set_statuses), events."""
    calls: list = []
    for owner, attr, what in ((d.xds, "set_snapshot", "push"), (d.store, "set_statuses", "status"),
                              (d.store, "add_events", "events")):
        real = getattr(owner, attr)

        def wrapper(*a, _real=real, _what=what, **kw):
            if _what != "events" or a[0]:  # an empty batch of events writes nothing
                calls.append(_what)
            return _real(*a, **kw)
        monkeypatch.setattr(owner, attr, wrapper)
    return calls


def _ack(d, nid: str) -> None:
    snap = d.xds.get_snapshot(nid)
    for t in snap.expected_types():
        d.on_ack(nid, t, snap.version)


def test_an_apply_answers_once_pushed_and_writes_status_and_events_after(daemon, monkeypatch):
    d = daemon
    calls = _recording(d, monkeypatch)
    out = d.apply([("<new>", m.text(m.gateway_route("new", NS, {"prefix": "/new/"}, "vs0")))])
    # the answer is what it was: the results and the versions pushed
    assert out["rejected"] is False and out["problems"] == []
    assert out["results"] == [{"kind": "GatewayRoute", "namespace": NS, "name": "new", "action": "created"}]
    gw = gateway_node(d)
    assert out["versions"][gw] == d.pushes[gw]["version"] == d.xds.get_snapshot(gw).version
    assert calls == ["push"]  # no status record and no event written before the answer
    assert not gc.isenabled()  # and no collection between the apply's start and its status pass
    # the first reader writes them: the new route's record says Pending for this change, and its event is there
    code, body = route(d, "GET", "/v1/resources", {"kind": "GatewayRoute", "name": "new"}, {})
    assert code == 200 and calls == ["push", "events", "status"] and gc.isenabled()
    [item] = body["items"]
    cond = item["status"]["conditions"][0]
    assert item["status"]["observedGeneration"] == 1 and (cond["status"], cond["reason"]) == ("Unknown", "Pending")
    code, body = route(d, "GET", "/v1/events", {"kind": "GatewayRoute", "namespace": NS, "name": "new"}, {})
    assert [e["reason"] for e in body["events"]] == ["Created"]


def test_a_reader_never_sees_the_status_of_an_older_generation(daemon):
    d = daemon
    _ack(d, gateway_node(d))
    d.reconcile()  # the loop's pass on the ACK: r0 is Active at generation 1
    before = d.store.get("GatewayRoute", NS, "r0")
    assert before.status["observedGeneration"] == 1 and before.status["conditions"][0]["status"] == "True"
    d.apply([("<r0>", m.text(m.gateway_route("r0", NS, {"prefix": "/changed/"}, "vs0")))])
    for read in (lambda: route(d, "GET", "/v1/resources", {"kind": "GatewayRoute", "name": "r0"}, {})[1]["items"][0],
                 lambda: {"status": Index(d).record(("GatewayRoute", NS, "r0")).status}):  # the App Mesh API's view
        status = read()["status"]
        assert status["observedGeneration"] == 2
        assert (status["conditions"][0]["status"], status["conditions"][0]["reason"]) == ("Unknown", "Pending")


def test_the_ack_wait_sees_the_status_of_what_the_proxy_acked(daemon):
    """`apply --wait` (proxy_waiting) returns once the status that follows the proxy's ACK is
    written; with the apply's status pass left for after its answer, the first /v1/status after
    the ACK writes it (the ACK itself needs no status pass in between)."""
    d = daemon
    out = d.apply([("<new>", m.text(m.gateway_route("new", NS, {"prefix": "/new/"}, "vs0")))])
    gw = gateway_node(d)
    _ack(d, gw)
    code, st = route(d, "GET", "/v1/status", {}, {})
    [p] = [p for p in st["proxies"] if p["node_id"] == gw]
    assert p["push"]["version"] == out["versions"][gw] and p["push"]["settled"] is True
    cond = d.store.get("GatewayRoute", NS, "new").status["conditions"][0]
    assert cond["status"] == "True"


def test_a_rejected_apply_changes_nothing_and_leaves_nothing_waiting(daemon):
    d = daemon
    before = [(r.key, r.version, r.status) for r in d.store.list()]
    events = d.store.events(limit=1000)
    out = d.apply([("<bad>", m.text(m.gateway_route("bad", NS, {"prefix": "no-slash"}, "vs0")))])
    assert out["rejected"] is True and out["results"] == []
    assert d._status_due is None and gc.isenabled()
    assert [(r.key, r.version, r.status) for r in d.store.list()] == before
    assert d.store.events(limit=1000) == events


def test_what_a_proxy_acked_before_the_next_apply_is_active_though_no_status_pass_ran_between(daemon):
    """Each resource version belongs to the pass that pushed it, even when that pass's status was
    never written: route x, pushed and ACKed, is Active while route z, pushed after it, waits."""
    d = daemon
    d.apply([("<x>", m.text(m.gateway_route("x", NS, {"prefix": "/x/"}, "vs0")))])
    gw = gateway_node(d)
    _ack(d, gw)  # no status pass between (nobody read, the loop did not run)
    d.apply([("<z>", m.text(m.gateway_route("z", NS, {"prefix": "/z/"}, "vs0")))])
    d.flush_status()
    conds = {name: d.store.get("GatewayRoute", NS, name).status["conditions"][0] for name in ("x", "z")}
    assert (conds["x"]["status"], conds["z"]["status"]) == ("True", "Unknown"), conds


def test_an_apply_that_pushes_nothing_wakes_the_loop_for_its_status_pass(daemon):
    """No proxy will ACK anything, so the loop is woken at once to write the status (an apply
    that pushes leaves that to the ACK, which wakes the loop itself)."""
    d = daemon
    d._wake.clear()
    d.apply([("<new>", m.text(m.gateway_route("new", NS, {"prefix": "/new/"}, "vs0")))])
    assert not d._wake.is_set()
    d.flush_status()
    labelled = m.gateway_route("new", NS, {"prefix": "/new/"}, "vs0")
    labelled["metadata"]["labels"] = {"team": "a"}  # changes no proxy's configuration
    before = dict(d.pushes)
    out = d.apply([("<label>", m.text(labelled))])
    assert out["results"][0]["action"] == "configured" and d.pushes == before
    assert d._wake.is_set() and d._status_due is not None


def test_the_loop_leaves_an_applys_status_pass_to_after_its_answer(daemon, monkeypatch):
    """A proxy can ACK before the control API has written the apply's answer: the loop, woken by
    the ACK, leaves the status pass (which would hold the GIL) until the answer is out."""
    d = daemon
    calls = _recording(d, monkeypatch)
    code, out = route(d, "POST", "/v1/apply", {}, {"texts": [["<new>", m.text(
        m.gateway_route("new", NS, {"prefix": "/new/"}, "vs0"))]]})
    assert code == 200 and out["results"][0]["action"] == "created"
    _ack(d, gateway_node(d))
    d.reconcile()  # the loop's pass on the ACK, the answer not written yet
    assert calls == ["push"]
    d.answered()  # what the control API calls once it has written the answer
    assert d._wake.is_set()
    d.reconcile()
    assert calls[:3] == ["push", "events", "status"]  # the Created event, the status (Active), its event
    assert d.store.get("GatewayRoute", NS, "new").status["conditions"][0]["status"] == "True"


def test_a_reader_waits_for_a_status_pass_the_loop_has_begun(daemon, monkeypatch):
    """The loop's status pass clears the waiting World as it starts, then writes. A reader that
    came in between used to find nothing waiting and read the records before the pass wrote
    them: the condition of the change before (a route fixed still read VirtualServiceNotFound)."""
    import threading
    d = daemon
    d.apply([("<new>", m.text(m.gateway_route("new", NS, {"prefix": "/new/"}, "vs0")))])
    begun, release = threading.Event(), threading.Event()
    real = d._write_status

    def slow_write(*a, **kw):
        begun.set()
        assert release.wait(10)
        return real(*a, **kw)
    monkeypatch.setattr(d, "_write_status", slow_write)
    loop = threading.Thread(target=d.flush_status)  # stands in for the loop's pass
    loop.start()
    assert begun.wait(10) and d._status_due is None  # the pass has begun and taken the World
    read: list = []
    reader = threading.Thread(target=lambda: read.append(
        route(d, "GET", "/v1/resources", {"kind": "GatewayRoute", "name": "new"}, {})))
    reader.start()
    reader.join(0.3)
    assert reader.is_alive() and not read  # the reader waits for the pass...
    release.set()
    loop.join(10)
    reader.join(10)
    [item] = read[0][1]["items"]
    assert item["status"]["conditions"], item  # ...and reads what it wrote
