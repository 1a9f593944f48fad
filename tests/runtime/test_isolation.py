"""The search for the resource a proxy rejects (lab/runtime/isolation.py), against a stand-in
proxy that NACKs any configuration holding one of the bad resources."""
from dataclasses import dataclass, field

from lab.runtime.isolation import Isolation, nack_reason

NODE = "mesh/m/virtualGateway/gw_ns"
OWN = ("VirtualGateway", "ns", "gw")


@dataclass(eq=False)
class Res:
    key: tuple
    raw: dict = field(default_factory=dict)


def routes(n):
    return [Res(("GatewayRoute", "ns", f"route-{i:03d}"), {"v": 1}) for i in range(n)]


def config(used):
    return {"keys": sorted(r.key for r in used)}


def run(iso, resources, bad, version="v1"):
    """Push everything, then answer every probe like the stand-in proxy; returns the probe pushes."""
    fixed = lambda nid: {OWN}  # noqa: E731
    used = iso.effective(resources)
    ok = not bad & {r.key for r in used}
    iso.answer(NODE, {"version": version, "resources": {r.key: r for r in used}, "config": config(used)}, ok,
               "HeaderMatcherValidationError.Name: value does not match", fixed)
    pushes = 0
    while NODE in iso.probes:
        used = iso.probe_resources(NODE, iso.effective(resources))
        pushes += 1
        ok = not bad & {r.key for r in used}
        iso.answer(NODE, {"resources": {r.key: r for r in used}, "config": config(used), "probe": True}, ok,
                   "rejected", fixed)
        assert pushes < 50
    return pushes


def test_one_bad_route_among_a_hundred_is_found_in_a_few_pushes_and_only_it_is_left_out():
    iso = Isolation()
    rs = [Res(OWN)] + routes(100)
    iso.forget_changed(type("W", (), {"by_key": {r.key: r for r in rs}})())
    bad = {("GatewayRoute", "ns", "route-042")}
    pushes = run(iso, rs, bad)
    assert set(iso.rejected) == bad
    assert pushes <= 9  # log2(100) + the check that routes are the culprits
    assert {r.key for r in iso.effective(rs)} == {r.key for r in rs} - bad
    message, previous = iso.conditions()[("GatewayRoute", "ns", "route-042")]
    assert not previous and message


def test_two_bad_routes_are_both_found_one_search_after_the_other():
    iso = Isolation()
    rs = [Res(OWN)] + routes(30)
    iso.forget_changed(type("W", (), {"by_key": {r.key: r for r in rs}})())
    bad = {("GatewayRoute", "ns", "route-003"), ("GatewayRoute", "ns", "route-027")}
    for attempt in range(3):
        run(iso, rs, bad, version=f"v{attempt}")
    assert set(iso.rejected) == bad


def test_a_changed_route_that_is_bad_falls_back_to_the_version_the_proxy_accepted():
    iso = Isolation()
    rs = [Res(OWN)] + routes(5)
    world = type("W", (), {"by_key": {r.key: r for r in rs}})()
    iso.forget_changed(world)
    run(iso, rs, set())  # all accepted
    changed = Res(("GatewayRoute", "ns", "route-002"), {"v": 2})
    rs2 = [changed if r.key == changed.key else r for r in rs]
    iso.forget_changed(type("W", (), {"by_key": {r.key: r for r in rs2}})())
    # the stand-in rejects version 2 of route-002 only
    fixed = lambda nid: {OWN}  # noqa: E731
    iso.answer(NODE, {"version": "v2", "resources": {r.key: r for r in rs2}, "config": config(rs2) | {"v": 2}},
               False, "bad", fixed)
    while NODE in iso.probes:
        used = iso.probe_resources(NODE, iso.effective(rs2))
        ok = changed not in used
        iso.answer(NODE, {"resources": {r.key: r for r in used}, "config": {"u": [id(r) for r in used]},
                          "probe": True}, ok, "bad", fixed)
    assert set(iso.rejected) == {changed.key}
    assert [r.raw for r in iso.effective(rs2) if r.key == changed.key] == [{"v": 1}]
    assert iso.conditions()[changed.key][1] is True  # the earlier version is in force
    fixed_again = Res(changed.key, {"v": 3})
    iso.forget_changed(type("W", (), {"by_key": {**world.by_key, changed.key: fixed_again}})())
    assert not iso.rejected  # a new version gets another chance


def test_a_proxy_whose_own_resource_is_at_fault_keeps_its_accepted_version():
    iso = Isolation()
    own = Res(OWN, {"v": 1})
    rs = [own] + routes(3)
    iso.forget_changed(type("W", (), {"by_key": {r.key: r for r in rs}})())
    run(iso, rs, set())
    own2 = Res(OWN, {"v": 2})
    rs2 = [own2] + rs[1:]
    iso.forget_changed(type("W", (), {"by_key": {r.key: r for r in rs2}})())
    run(iso, rs2, {OWN}, version="v2")
    assert set(iso.rejected) == {OWN}
    assert [r.raw for r in iso.effective(rs2) if r.key == OWN] == [{"v": 1}]


def test_nack_reason_drops_the_dump_of_the_rejected_resource():
    rds = ('goo.gle/debugstr \nname: "rds_ingress_8088"\nvirtual_hosts {\n  name: "gateway"\n}\n: Proto constraint '
           'validation failed (HeaderMatcherValidationError.Name: value does not match regex pattern "^[^\\x00\\n\\r]*$")')
    assert nack_reason(rds) == 'HeaderMatcherValidationError.Name: value does not match regex pattern "^[^\\x00\\n\\r]*$"'
    lds = "Error adding/updating listener(s) lds_x: unable to open file '/nope/a.log': No such file or directory\n"
    assert nack_reason(lds) == lds.strip()
    assert len(nack_reason("x" * 1000)) == 400


def test_a_nack_with_nothing_changed_marks_no_resource():
    """A listener port in use: the proxy NACKs what it ACKed before; no resource is at fault."""
    iso = Isolation()
    rs = [Res(OWN)] + routes(3)
    iso.forget_changed(type("W", (), {"by_key": {r.key: r for r in rs}})())
    run(iso, rs, set())
    iso.answer(NODE, {"version": "v2", "resources": {r.key: r for r in rs}, "config": {"port": 2}}, False,
               "cannot bind '127.0.0.1:8088': Address already in use", lambda nid: {OWN})
    assert not iso.rejected and not iso.probes


BIND = "Error adding/updating listener(s) lds_ingress_127.0.0.1_80: cannot bind '127.0.0.1:40080': Address already in use\n"


def test_a_port_in_use_on_a_fresh_proxy_starts_no_search_and_blames_nothing():
    """A proxy that never ACKed (the lab just came up): every resource is new to it, but a listener
    that cannot bind is the host's port, not one of them."""
    iso = Isolation()
    rs = [Res(OWN)] + routes(8) + [Res(("VirtualNode", "ns", f"vn-{i}"), {"v": 1}) for i in range(3)]
    iso.forget_changed(type("W", (), {"by_key": {r.key: r for r in rs}})())
    iso.answer(NODE, {"version": "v1", "resources": {r.key: r for r in rs}, "config": config(rs)}, False, BIND,
               lambda nid: {OWN})
    assert not iso.probes and not iso.rejected


def test_a_port_in_use_in_the_middle_of_a_search_ends_it_without_blaming_what_was_left_out():
    iso = Isolation()
    rs = [Res(OWN)] + routes(8)
    iso.forget_changed(type("W", (), {"by_key": {r.key: r for r in rs}})())
    iso.answer(NODE, {"version": "v1", "resources": {r.key: r for r in rs}, "config": config(rs)}, False,
               "HeaderMatcherValidationError.Name: value does not match", lambda nid: {OWN})
    assert NODE in iso.probes
    used = iso.probe_resources(NODE, iso.effective(rs))
    iso.answer(NODE, {"resources": {r.key: r for r in used}, "config": config(used), "probe": True}, False, BIND,
               lambda nid: {OWN})
    assert not iso.probes and not iso.rejected


def test_bind_conflict_reads_envoys_message():
    from lab.runtime.isolation import bind_conflict
    assert bind_conflict(BIND) == {"listener": "lds_ingress_127.0.0.1_80", "address": "127.0.0.1:40080",
                                   "port": 40080, "why": "Address already in use"}
    assert bind_conflict("cannot bind '[::1]:8080': Address already in use")["port"] == 8080
    assert bind_conflict("cannot bind '127.0.0.1:80': Permission denied") is None
    assert bind_conflict("HeaderMatcherValidationError.Name: value does not match") is None
