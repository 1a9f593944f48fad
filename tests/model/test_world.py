"""World.with_changes: a World with some resources put in or taken out equals the World of the
whole new list, in the store's key order."""
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.model import World
from lab.model.resources import Resource

KINDS = ("GatewayRoute", "VirtualNode", "Mesh")
KEYS = [(k, "" if k == "Mesh" else ns, n) for k in KINDS for ns in ("a", "b") for n in ("x", "y", "z")]


def _resource(key, tag):
    kind, ns, name = key
    return Resource(api_version="v1", kind=kind, name=name, namespace=ns or None, spec={"tag": tag})


def _view(world: World) -> tuple:
    """What a World indexes: every key's object, every kind's list in order (an empty list or no
    list at all alike)."""
    return ({k: id(r) for k, r in world.by_key.items()},
            {k: [id(r) for r in v] for k, v in world.by_kind.items() if v})


@settings(max_examples=80, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(KEYS), st.none() | st.integers(0, 3), max_size=6), max_size=6))
def test_a_world_with_changes_equals_the_world_of_the_new_list(steps):
    held: dict = {}
    world = World([])
    for step in steps:
        changes = {}
        for key, tag in step.items():
            changes[key] = None if tag is None else _resource(key, tag)
            if tag is None:
                held.pop(key, None)
            else:
                held[key] = changes[key]
        new = world.with_changes(changes)
        assert _view(new) == _view(World([held[k] for k in sorted(held)]))
        assert new.delta == (world.serial, frozenset(changes))
        assert new.serial != world.serial
        world = new
