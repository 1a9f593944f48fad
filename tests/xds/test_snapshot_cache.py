"""Snapshot.from_dicts with a cache: unchanged resources are not parsed again, and the result
is the same snapshot as without the cache."""

from __future__ import annotations

import copy

import pytest
from google.protobuf import json_format

from lab.xds import Snapshot, SnapshotError

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
    """Snapshots are read-only: the next snapshot takes an unchanged resource's message, its Any and
    its serialization from the previous one instead of copying, packing and serializing it again;
    the digest is the one a snapshot without the cache has."""
    cache: dict = {}
    snap = Snapshot.from_dicts("v1", **full_dicts(res), cache=cache)
    dicts = full_dicts(res)
    dicts["clusters"][0] = dict(dicts["clusters"][0], connect_timeout="7s")
    again = Snapshot.from_dicts("v2", **dicts, cache=cache)
    plain = Snapshot.from_dicts("v2", **copy.deepcopy(dicts))
    assert again.digest == plain.digest != snap.digest and again.to_dicts() == plain.to_dicts()
    changed = dicts["clusters"][0]["name"]
    assert again.clusters[changed] is not snap.clusters[changed]
    assert all(again.clusters[n] is snap.clusters[n] for n in snap.clusters if n != changed)
    listener = "type.googleapis.com/envoy.config.listener.v3.Listener"
    assert snap.listeners and all(again.packed(listener)[n] is snap.packed(listener)[n] for n in snap.listeners)


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
