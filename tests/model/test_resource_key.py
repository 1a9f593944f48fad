"""A resource's key is made once (one tuple per resource, shared by every index that keeps it), and
a world read through ReadingWorld notes that same tuple for a resource it finds."""
import dataclasses

from lab.bench import manifests as m
from lab.model import World, validate_texts
from lab.model.semantics import ReadingWorld


def _resources():
    result = validate_texts([("<key>", m.text(m.scale(2, "keys")))])
    assert result.ok
    return result.resources


def test_the_key_is_the_resources_kind_namespace_and_name_and_one_object():
    for r in _resources():
        assert r.key == (r.kind, r.namespace or "", r.name)
        assert r.key is r.key
    mesh = next(r for r in _resources() if r.kind == "Mesh")
    assert mesh.key == ("Mesh", "", mesh.name)
    route = next(r for r in _resources() if r.kind == "GatewayRoute")
    moved = dataclasses.replace(route, name="other", namespace="elsewhere")
    assert moved.key == ("GatewayRoute", "elsewhere", "other") and route.key == ("GatewayRoute", "keys", route.name)


def test_a_reading_world_notes_the_found_resources_own_key_and_shares_sets_of_kinds():
    resources = _resources()
    route = next(r for r in resources if r.kind == "GatewayRoute")
    reads = []
    for _ in range(2):
        reading = ReadingWorld(World(resources))
        reading.begin()
        assert reading.get("GatewayRoute", "keys", route.name) is route
        assert reading.get("GatewayRoute", "keys", "absent") is None
        reading.by_kind["VirtualGateway"]
        reads.append(reading.end())
    (keys, kinds), (_, kinds_again) = reads
    assert keys == {route.key, ("GatewayRoute", "keys", "absent")}
    assert any(k is route.key for k in keys)
    assert kinds == {"VirtualGateway"} and kinds is kinds_again
    reading.begin()
    assert reading.end() == (frozenset(), frozenset())
