"""Snapshot.from_dicts with a cache: unchanged resources are not parsed again, and the result
is the same snapshot as without the cache."""

from __future__ import annotations

import copy

import pytest
from google.protobuf import json_format

from lab.xds import Snapshot, SnapshotError
from lab.xds.snapshot import ROUTE_TYPE as ROUTE

from .test_snapshot import full_dicts


@pytest.fixture
def parses(monkeypatch):
    """Names of the resources ParseDict parsed."""
    seen: list = []
    real = json_format.ParseDict

    def counting(item, message, *a, **kw):
        seen.append(f"{type(message).__name__}:{item.get('name') or item.get('cluster_name') or ''}")
        return real(item, message, *a, **kw)
    monkeypatch.setattr(json_format, "ParseDict", counting)
    return seen


def test_only_changed_resources_are_parsed_again(res, parses):
    cache: dict = {}
    first = Snapshot.from_dicts("v1", **full_dicts(res), cache=cache)
    assert sorted(parses) == ["Cluster:a", "Cluster:b", "ClusterLoadAssignment:a", "Listener:ingress",
                              "Route:", "Route:", "RouteConfiguration:rc"]
    assert len(cache) == 7  # five resources and the two routes of "rc"
    parses.clear()
    dicts = full_dicts(res)  # equal, but new objects (as a new translation makes them)
    routes = dicts["routes"][0]["virtual_hosts"][0]["routes"]
    routes.append(res.route("/b", "b", "/"))  # one route more: only it is parsed, the others are reused
    second = Snapshot.from_dicts("v2", **dicts, cache=cache)
    assert parses == ["RouteConfiguration:rc", "Route:"]
    plain = Snapshot.from_dicts("v2", **copy.deepcopy(dicts))
    assert second.digest == plain.digest and second.to_dicts() == plain.to_dicts()
    assert first.digest != second.digest
    assert len(cache) == 8


def test_the_cache_holds_exactly_the_last_snapshot(res, parses):
    cache: dict = {}
    Snapshot.from_dicts("v1", **full_dicts(res), cache=cache)
    dicts = full_dicts(res)
    dicts["clusters"] = dicts["clusters"][:1]
    dicts["routes"] = [res.route_config("rc", [res.route("/a", "a", "/")])]
    Snapshot.from_dicts("v2", **dicts, cache=cache)
    assert sorted(key[1] for key in cache if key[0] != "route") == ["a", "a", "ingress", "rc"]
    assert len([key for key in cache if key[0] == "route"]) == 1


def test_a_rejected_snapshot_leaves_the_cache_as_it_was(res):
    cache: dict = {}
    Snapshot.from_dicts("v1", **full_dicts(res), cache=cache)
    before = dict(cache)
    dicts = full_dicts(res)
    dicts["clusters"].append(dict(dicts["clusters"][0], bogus_field=1))
    with pytest.raises(SnapshotError):
        Snapshot.from_dicts("v2", **dicts, cache=cache)
    assert cache == before


def test_an_unchanged_resource_is_taken_as_it_was_and_a_changed_one_is_not(res):
    """Snapshots are read-only: the next snapshot takes an unchanged resource's Any and its
    serialization from the previous one instead of parsing, packing and serializing it again;
    the digest is the one a snapshot without the cache has."""
    cache: dict = {}
    snap = Snapshot.from_dicts("v1", **full_dicts(res), cache=cache)
    dicts = full_dicts(res)
    dicts["clusters"][0] = dict(dicts["clusters"][0], connect_timeout="7s")
    again = Snapshot.from_dicts("v2", **dicts, cache=cache)
    plain = Snapshot.from_dicts("v2", **copy.deepcopy(dicts))
    assert again.digest == plain.digest != snap.digest and again.to_dicts() == plain.to_dicts()
    changed = dicts["clusters"][0]["name"]
    cluster = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
    assert again.serialized(cluster)[changed] != snap.serialized(cluster)[changed]
    assert again.clusters[changed] != snap.clusters[changed]
    assert all(again.serialized(cluster)[n] is snap.serialized(cluster)[n] for n in snap.clusters if n != changed)
    listener = "type.googleapis.com/envoy.config.listener.v3.Listener"
    assert snap.listeners and all(again.serialized(listener)[n] is snap.serialized(listener)[n]
                                  for n in snap.listeners)


def test_routes_moved_or_broken_give_the_same_result_as_without_the_cache(res):
    cache: dict = {}
    Snapshot.from_dicts("v1", **full_dicts(res), cache=cache)
    dicts = full_dicts(res)
    routes = dicts["routes"][0]["virtual_hosts"][0]["routes"]
    routes.insert(0, res.route("/first", "b", "/"))  # every unnamed route moves to another index
    with_cache = Snapshot.from_dicts("v2", **dicts, cache=cache)
    plain = Snapshot.from_dicts("v2", **copy.deepcopy(dicts))
    assert with_cache.digest == plain.digest
    dicts = copy.deepcopy(dicts)  # new dicts, as a new translation makes them (the cache keeps the old ones)
    routes = dicts["routes"][0]["virtual_hosts"][0]["routes"]
    routes[1] = dict(routes[1], bogus_field=1)
    with pytest.raises(SnapshotError, match="rc"):
        Snapshot.from_dicts("v3", **dicts, cache=cache)


def test_the_reference_scan_reuses_unchanged_routes_and_sees_changed_ones(res):
    """The names a snapshot references are gathered route by route, kept with each unchanged route
    from one snapshot to the next; a changed route is scanned again (its missing cluster is found)."""
    cache: dict = {}
    first = Snapshot.from_dicts("v1", **full_dicts(res), cache=cache)
    assert first.consistency_problems() == ([], {}) and first.expected_types()
    dicts = full_dicts(res)
    routes = dicts["routes"][0]["virtual_hosts"][0]["routes"]
    routes.append(res.route("/c", "c", "/"))  # a route to a cluster the snapshot lacks
    second = Snapshot.from_dicts("v2", **dicts, cache=cache)
    plain = Snapshot.from_dicts("v2", **copy.deepcopy(dicts))
    assert second.consistency_problems() == plain.consistency_problems()
    assert "route configuration 'rc' references cluster 'c', which is missing" in second.consistency_problems()[0]
    held = [entry[2] for key, entry in cache.items() if key[0] == "route"]
    assert len(held) == 3 and sum("names" in h for h in held) == 3  # each route's names, kept for the next one
    third = Snapshot.from_dicts("v3", **full_dicts(res), cache=cache)  # without it again
    assert third.consistency_problems() == ([], {}) and third.expected_types() == first.expected_types()


def _served(snap: Snapshot) -> dict:
    """What the xDS server sends: each resource's Any, serialized."""
    return {(t, name): any_.SerializeToString() for t in snap.type_urls() for name, any_ in snap.packed(t).items()}


def test_a_route_configuration_assembled_from_its_routes_serves_the_bytes_of_a_full_build(res):
    """A changed route configuration's bytes are put together from its unchanged routes' kept
    encodings and the changed ones: what is served is exactly what a snapshot without the cache
    serves (the deterministic serialization of the whole configuration), virtual host and
    configuration fields around the routes included, through additions, changes, moves and removals."""
    def config(routes, more=False):
        rc = res.route_config("rc", routes)
        rc["virtual_hosts"].append({"name": "second", "domains": ["b.example", "c.example"], "routes": routes[:2],
                                    "request_headers_to_remove": ["x-target"], "include_request_attempt_count": True})
        if more:  # fields after the virtual hosts (higher field numbers) and before its routes' (lower)
            rc["virtual_hosts"][0]["request_headers_to_add"] = [{"header": {"key": "k", "value": "v"}}]
            rc["ignore_port_in_host_matching"] = True
            rc["validate_clusters"] = False
        return rc

    def named(i, cluster="a"):
        return dict(res.route(f"/r{i}", cluster, "/"), name=f"r{i}")

    steps = [
        [named(i) for i in range(6)],
        [named(i) for i in range(7)],  # one more
        [named(0, "b")] + [named(i) for i in range(1, 7)],  # one changed
        [named(i) for i in (6, 0, 3, 2, 1)],  # moved, two removed
        [res.route("/unnamed", "b")] + [named(i) for i in (6, 0)],  # an unnamed one first
    ]
    cache: dict = {}
    for more in (False, True):
        for routes in steps:
            dicts = full_dicts(res)
            dicts["routes"] = [config(copy.deepcopy(routes), more)]
            with_cache = Snapshot.from_dicts("v", **dicts, cache=cache)
            plain = Snapshot.from_dicts("v", **copy.deepcopy(dicts))
            assert _served(with_cache) == _served(plain)
            assert with_cache.digest == plain.digest and with_cache.to_dicts() == plain.to_dicts()
            rc = plain.routes["rc"]
            assert with_cache.packed(ROUTE)["rc"].value == rc.SerializeToString(deterministic=True)
            assert with_cache.routes["rc"] == rc


def test_a_gateway_translated_change_by_change_serves_what_a_full_build_serves():
    """The translator's real output for a gateway (ingress routes, the internal egress stage with its
    headers to remove), one route more, then one changed, then one removed: the cached snapshot
    serves the bytes of one built from scratch."""
    from lab.bench import manifests, translate as bench
    from lab.translate.incremental import Incremental
    from lab.model import validate_texts

    world, _ = bench.world_of(20)
    placement = bench.placement_of(world)
    resources = list(world.by_key.values())
    inc, cache = Incremental(), {}

    def route(name, prefix, service):
        doc = manifests.gateway_route(name, "bench", {"prefix": prefix}, service)
        (r,) = validate_texts([("<test>", manifests.text(doc))]).resources
        return r

    changes = [lambda rs: rs + [route("extra", "/extra/", "vs3")],
               lambda rs: [route("extra", "/extra/", "vs4") if r.name == "extra" else r for r in rs],
               lambda rs: [r for r in rs if r.name != "r5"]]
    for change in [lambda rs: rs] + changes:
        resources = change(resources)
        out = inc.update(resources, placement)
        gw = next(nid for nid in out if "/virtualGateway/" in nid)
        with_cache = Snapshot.from_dicts("v", **out[gw]["envoy"], cache=cache)
        plain = Snapshot.from_dicts("v", **copy.deepcopy(out[gw]["envoy"]))
        assert _served(with_cache) == _served(plain) and with_cache.digest == plain.digest


def test_a_snapshot_keeps_bytes_and_gives_the_messages_it_was_made_from(res):
    """A snapshot keeps each resource's serialization, not its parsed message (a parsed message
    takes about ten times the memory) nor its Any; the messages and Anys it gives, made from those
    bytes, equal the ones parsed from the dicts, with the cache and without it."""
    from google.protobuf import json_format
    from lab.xds.snapshot import _KINDS
    dicts = full_dicts(res)
    cache: dict = {}
    for snap in (Snapshot.from_dicts("v1", **copy.deepcopy(dicts), cache=cache),
                 Snapshot.from_dicts("v2", **copy.deepcopy(dicts), cache=cache),
                 Snapshot.from_dicts("v3", **copy.deepcopy(dicts))):
        assert cache and all(e[1] is None and e[2].get("packed", (None, None))[:2] == (None, None)
                             for e in cache.values())
        for kind, (type_url, cls, name_field) in _KINDS.items():
            want = {getattr(m, name_field): m for m in (json_format.ParseDict(d, cls()) for d in dicts.get(kind, ()))}
            got = snap.resources(type_url)
            assert set(got) == set(want) and len(got) == len(want)
            for name, msg in want.items():
                assert name in got and got[name] == msg
                packed = snap.packed(type_url)[name]
                assert packed.type_url == type_url and packed.value == msg.SerializeToString(deterministic=True)
                assert snap.serialized(type_url)[name] == packed.value
