"""Incremental translation, validation and status equal the same from scratch, after every step of
random changes."""
import json

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lab.bench import manifests as m
from lab.model import World, validate_texts
from lab.model.semantics import SemanticIndex, check_semantics, same_resource
from lab.translate import Placement, translate
from lab.translate.incremental import Incremental
from lab.translate.status import Conditions, conditions

NS = "inc"
NODES = ("a", "b", "c")


def _docs(state: dict) -> list:
    docs = m.base(NS) if state["gateway"] else [m.namespace(NS), m.mesh(NS, state["egress"])]
    if state["gateway"]:
        docs[1] = m.mesh(NS, state["egress"])
    for n in NODES:
        if n in state["nodes"]:
            docs.append(m.virtual_node(n, NS, port=state.get("listen", {}).get(n, 8080),
                                       backends=sorted(state["backends"].get(n, ()))))
    for s, target in sorted(state["services"].items()):
        if target == "router":
            docs.append(m.virtual_router(s, NS, [m.router_route("r", dict(state["weights"]))]))
            docs.append(m.virtual_service(s, NS, router=s))
        else:
            docs.append(m.virtual_service(s, NS, node=target))
    for g, s in sorted(state["routes"].items()):
        docs.append(m.gateway_route(g, NS, {"prefix": f"/{g}/"}, s, priority=state.get("priority", {}).get(g),
                                    target_port=state.get("port", {}).get(g)))
    if state.get("mesh2"):  # a second mesh selecting the namespace: every member gets an error
        docs.append({**m.mesh("other"), "spec": {"namespaceSelector": {"matchLabels": {"mesh": NS}}}})
    for n in sorted(state.get("apps", ())):  # pods of a node that may not exist: an injection error
        docs.append(m.deployment(n, NS))
    for d in docs:  # the gateway takes only the labelled routes: a route's label attaches or detaches it
        if d["kind"] == "VirtualGateway" and state.get("selector"):
            d["spec"]["gatewayRouteSelector"] = {"matchLabels": {"gw": "yes"}}
        if d["kind"] == "GatewayRoute" and d["metadata"]["name"] in state.get("labelled", ()):
            d["metadata"]["labels"] = {"gw": "yes"}
    return docs


def _resources(state: dict) -> list:
    return validate_texts([("<inc>", m.text(_docs(state)))]).resources


def _full(resources, placement):
    return json.dumps(translate(World(resources), placement), sort_keys=True)


OPS = st.one_of(
    st.tuples(st.just("node"), st.sampled_from(NODES)),
    st.tuples(st.just("service"), st.sampled_from(("s1", "s2", "s3")), st.sampled_from(NODES + ("router", None))),
    st.tuples(st.just("route"), st.sampled_from(("g1", "g2", "g3", "g4")), st.sampled_from(("s1", "s2", "s3", None))),
    st.tuples(st.just("weights"), st.integers(0, 100)),
    st.tuples(st.just("backend"), st.sampled_from(NODES), st.sampled_from(("s1", "s2", "s3"))),
    st.tuples(st.just("egress"), st.sampled_from(("DROP_ALL", "ALLOW_ALL"))),
    st.tuples(st.just("gateway"), st.booleans()),
    st.tuples(st.just("endpoint"), st.sampled_from(NODES), st.integers(20000, 20003)),
    st.tuples(st.just("priority"), st.sampled_from(("g1", "g2", "g3", "g4")), st.sampled_from((None, 1, 2))),
    st.tuples(st.just("port"), st.sampled_from(("g1", "g2", "g3", "g4")), st.sampled_from((None, 8080, 9090))),
    st.tuples(st.just("listen"), st.sampled_from(NODES), st.sampled_from((8080, 9090))),
    st.tuples(st.just("mesh2"), st.booleans()),
    st.tuples(st.just("app"), st.sampled_from(NODES + ("d",))),
    st.tuples(st.just("selector"), st.booleans()),
    st.tuples(st.just("label"), st.sampled_from(("g1", "g2", "g3", "g4"))),
    st.tuples(st.just("reject"), st.sampled_from([("VirtualNode", NS, "a"), ("VirtualService", NS, "s1"),
                                                 ("VirtualGateway", NS, "gateway"), ("Mesh", "", NS)]),
              st.sampled_from((None, True, False))),
)


def _kept(before: list, now: list) -> list:
    """`now`, with each resource that did not change the very object it was before: as the daemon
    hands them out (its record cache), which is what the gateways' memos key on."""
    old = {r.key: r for r in before}
    return [old[r.key] if r.key in old and same_resource(old[r.key], r) else r for r in now]


def _stored(state: dict) -> list:
    """The state as the daemon holds it: resources read back from its store point at no file."""
    out = _resources(state)
    for r in out:
        r.doc = None
    return out


def _findings(problems) -> list:
    return [p.to_dict() for p in problems]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPS, min_size=1, max_size=12))
@example([("port", "g1", 8080), ("listen", "a", 9090), ("mesh2", True), ("app", "d"), ("node", "a")])
@example([("reject", ("VirtualNode", NS, "a"), False), ("priority", "g1", 1), ("priority", "g2", 1)])
def test_incremental_validation_and_status_equal_full_after_every_change(ops):
    """Each step applies what the change makes different (the daemon's apply) and checks it with the
    index against the store before it; then the store holds the new state and the conditions of
    the whole world are computed incrementally."""
    state = {"nodes": {"a", "b"}, "services": {"s1": "a", "s2": "router"}, "routes": {"g1": "s1", "g2": "s2"},
             "weights": {"a": 50, "b": 50}, "backends": {}, "egress": "DROP_ALL", "gateway": True}
    placement = Placement(bind_address="127.0.0.1")
    index, conds = SemanticIndex(complete=True), Conditions()
    stored = _stored(state)
    index.sync(stored)
    assert conds.update(World(stored)) == conditions(World(stored))
    for op in ops:
        _apply(state, placement, op)
        fresh = _resources(state)
        before = {r.key: r for r in stored}
        applied = [r for r in fresh if r.key not in before or before[r.key].raw != r.raw] or fresh[-1:]
        assert _findings(index.check(applied)) == _findings(check_semantics(applied, complete=True, existing=stored)), op
        stored = _stored(state)
        index.sync(stored)
        rejected = state.get("rejected", {})
        assert conds.update(World(stored), rejected) == conditions(World(stored), rejected), op


def test_a_new_gateway_route_is_checked_alone():
    """What makes validation and status incremental: a new route is checked against the index, and
    its own condition is the only one computed again."""
    state = {"nodes": set(NODES), "services": {"s1": "a", "s2": "b", "s3": "c"}, "routes": {"g1": "s1"},
             "weights": {"a": 50, "b": 50}, "backends": {"a": {"s2"}}, "egress": "DROP_ALL", "gateway": True}
    stored = _stored(state)
    index, conds = SemanticIndex(complete=True), Conditions()
    index.sync(stored)
    conds.update(World(stored))
    assert len(index.checked) == len(stored) and len(conds.computed) > 5
    state["routes"]["g2"] = "s3"
    new = [r for r in _resources(state) if r.name == "g2"]
    assert index.check(new) == [] and index.checked == []
    stored = _stored(state)
    index.sync(stored)
    conds.update(World(stored))
    assert index.checked == [("GatewayRoute", NS, "g2")]
    assert conds.computed == [("GatewayRoute", NS, "g2")]


def _apply(state: dict, placement: Placement, op) -> None:
    kind = op[0]
    if kind == "node":
        state["nodes"] ^= {op[1]}
    elif kind == "service":
        if op[2] is None:
            state["services"].pop(op[1], None)
        else:
            state["services"][op[1]] = op[2]
    elif kind == "route":
        if op[2] is None:
            state["routes"].pop(op[1], None)
        else:
            state["routes"][op[1]] = op[2]
    elif kind == "weights":
        state["weights"] = {"a": op[1], "b": 100 - op[1]}
    elif kind == "backend":
        state["backends"].setdefault(op[1], set()).symmetric_difference_update({op[2]})
    elif kind == "egress":
        state["egress"] = op[1]
    elif kind == "gateway":
        state["gateway"] = op[1]
    elif kind == "endpoint":
        nid = f"mesh/{NS}/virtualNode/{op[1]}_{NS}"
        placement.endpoints[nid] = {8080: [["127.0.0.1", op[2]]]}
    elif kind in ("priority", "port", "listen"):
        state.setdefault(kind, {})[op[1]] = op[2]
    elif kind == "mesh2":
        state["mesh2"] = op[1]
    elif kind == "app":
        state.setdefault("apps", set()).symmetric_difference_update({op[1]})
    elif kind == "selector":
        state["selector"] = op[1]
    elif kind == "label":
        state.setdefault("labelled", set()).symmetric_difference_update({op[1]})
    elif kind == "reject":
        state.setdefault("rejected", {}).pop(op[1], None) if op[2] is None else \
            state.setdefault("rejected", {}).update({op[1]: ("Envoy rejected it", op[2])})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPS, min_size=1, max_size=12))
@example([("selector", True), ("label", "g1"), ("service", "s1", "b"), ("label", "g1")])
@example([("route", "g3", "s3"), ("service", "s3", "b")])  # the gateway's reads grow, then one of them changes
def test_incremental_equals_full_after_every_change(ops):
    state = {"nodes": {"a", "b"}, "services": {"s1": "a", "s2": "router"}, "routes": {"g1": "s1", "g2": "s2"},
             "weights": {"a": 50, "b": 50}, "backends": {}, "egress": "DROP_ALL", "gateway": True}
    placement = Placement(bind_address="127.0.0.1")
    inc = Incremental()
    resources = _resources(state)
    assert json.dumps(inc.update(resources, placement), sort_keys=True) == _full(resources, placement)
    for op in ops:
        _apply(state, placement, op)
        resources = _kept(resources, _resources(state))
        assert json.dumps(inc.update(resources, placement), sort_keys=True) == _full(resources, placement), op


def test_a_new_gateway_route_translates_the_gateway_only():
    """What makes it incremental: a change that no sidecar reads leaves every sidecar as it was."""
    state = {"nodes": set(NODES), "services": {"s1": "a", "s2": "b", "s3": "c"}, "routes": {"g1": "s1"},
             "weights": {"a": 50, "b": 50}, "backends": {"a": {"s2"}}, "egress": "DROP_ALL", "gateway": True}
    placement = Placement(bind_address="127.0.0.1")
    inc = Incremental()
    inc.update(_resources(state), placement)
    assert len(inc.translated) == 4  # the gateway and three sidecars
    state["routes"]["g2"] = "s3"
    inc.update(_resources(state), placement)
    assert [k[0] for k in inc.translated] == ["VirtualGateway"]
    state["services"]["s2"] = "c"  # a's backend changes provider: a (and the gateway? no route to s2) only
    inc.update(_resources(state), placement)
    assert ("VirtualNode", NS, "a") in inc.translated and ("VirtualNode", NS, "b") not in inc.translated


PROXY_KEYS = [("VirtualGateway", NS, "gateway")] + [("VirtualNode", NS, n) for n in NODES]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(OPS, st.none() | st.sets(st.sampled_from(PROXY_KEYS)), st.booleans()), min_size=1,
                max_size=12))
@example([(("weights", 30), None, False), (("node", "b"), {("VirtualNode", NS, "a")}, False),
          (("weights", 70), {("VirtualNode", NS, "a")}, False)])
@example([(("route", "g3", "s3"), None, False), (("service", "s3", "b"), None, False)])
def test_a_change_set_from_the_caller_and_only_give_the_same_as_from_scratch(steps):
    """The caller hands in the keys that changed (the daemon knows what an apply wrote), and the
    proxies it wants (`only`): the proxies the change reaches are found by the reverse index of
    what each read, and the result equals a translation from scratch of the same proxies."""
    state = {"nodes": {"a", "b"}, "services": {"s1": "a", "s2": "router"}, "routes": {"g1": "s1", "g2": "s2"},
             "weights": {"a": 50, "b": 50}, "backends": {}, "egress": "DROP_ALL", "gateway": True}
    placement = Placement(bind_address="127.0.0.1")
    inc = Incremental()
    resources = _resources(state)
    inc.update(World(resources), placement)
    for op, only, extra in steps:
        _apply(state, placement, op)
        before = {r.key: r for r in resources}
        resources = _kept(resources, _resources(state))
        now = {r.key: r for r in resources}
        changes = {k for k in before.keys() | now.keys() if before.get(k) is not now.get(k)}
        if extra:  # a key handed in that did not change costs time, never correctness
            changes |= set(PROXY_KEYS[:2])
        got = inc.update(World(resources), placement, only=only, changes=changes)
        want = Incremental().update(resources, placement, only=only)
        assert json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True), (op, only)
        if only is None:
            assert json.dumps(got, sort_keys=True) == _full(resources, placement), op
