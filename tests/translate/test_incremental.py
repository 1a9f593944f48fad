"""Incremental translation equals a translation from scratch, after every step of random changes."""
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lab.bench import manifests as m
from lab.model import World, validate_texts
from lab.translate import Placement, translate
from lab.translate.incremental import Incremental

NS = "inc"
NODES = ("a", "b", "c")


def _docs(state: dict) -> list:
    docs = m.base(NS) if state["gateway"] else [m.namespace(NS), m.mesh(NS, state["egress"])]
    if state["gateway"]:
        docs[1] = m.mesh(NS, state["egress"])
    for n in NODES:
        if n in state["nodes"]:
            docs.append(m.virtual_node(n, NS, backends=sorted(state["backends"].get(n, ()))))
    for s, target in sorted(state["services"].items()):
        if target == "router":
            docs.append(m.virtual_router(s, NS, [m.router_route("r", dict(state["weights"]))]))
            docs.append(m.virtual_service(s, NS, router=s))
        else:
            docs.append(m.virtual_service(s, NS, node=target))
    for g, s in sorted(state["routes"].items()):
        docs.append(m.gateway_route(g, NS, {"prefix": f"/{g}/"}, s))
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
)


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


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPS, min_size=1, max_size=12))
def test_incremental_equals_full_after_every_change(ops):
    state = {"nodes": {"a", "b"}, "services": {"s1": "a", "s2": "router"}, "routes": {"g1": "s1", "g2": "s2"},
             "weights": {"a": 50, "b": 50}, "backends": {}, "egress": "DROP_ALL", "gateway": True}
    placement = Placement(bind_address="127.0.0.1")
    inc = Incremental()
    resources = _resources(state)
    assert json.dumps(inc.update(resources, placement), sort_keys=True) == _full(resources, placement)
    for op in ops:
        _apply(state, placement, op)
        resources = _resources(state)
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
