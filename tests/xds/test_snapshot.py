"""Snapshot: parsing translator dicts, immutability and consistency rules."""

from __future__ import annotations

import copy

import pytest
from envoy.config.cluster.v3 import cluster_pb2

from lab.xds import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    SECRET_TYPE,
    InconsistentSnapshot,
    Snapshot,
    SnapshotError,
    XdsError,
)


def full_dicts(res):
    """A small but complete mesh: EDS + static clusters, RDS listener, routes."""
    return dict(
        clusters=[res.eds_cluster("a"), res.static_cluster("b", 9001)],
        endpoints=[res.cla("a", [9000])],
        listeners=[res.listener("ingress", 10000, "rc")],
        routes=[res.route_config("rc", [res.route("/a", "a", "/"), res.weighted_route("/w", {"a": 1, "b": 3})])],
    )


# -- from_dicts -----------------------------------------------------------------
def test_from_dicts_round_trips(res):
    dicts = full_dicts(res)
    snap = Snapshot.from_dicts("v1", **dicts)
    out = snap.to_dicts()
    # The dicts we produced are already in canonical proto3 JSON (snake_case)
    # form, so they come back identical.
    assert out["clusters"] == dicts["clusters"]
    assert out["endpoints"] == dicts["endpoints"]
    assert out["listeners"] == dicts["listeners"]
    assert out["routes"] == dicts["routes"]
    assert out["secrets"] == []
    again = Snapshot.from_dicts("v1", **out)
    assert again == snap
    assert again.digest == snap.digest


def test_from_dicts_resources_by_type_and_name(res):
    snap = Snapshot.from_dicts("v1", **full_dicts(res))
    assert snap.version == "v1"
    assert set(snap.resources(CLUSTER_TYPE)) == {"a", "b"}
    assert set(snap.resources(ENDPOINT_TYPE)) == {"a"}
    assert set(snap.resources(LISTENER_TYPE)) == {"ingress"}
    assert set(snap.resources(ROUTE_TYPE)) == {"rc"}
    assert dict(snap.resources(SECRET_TYPE)) == {}
    assert snap.clusters["a"].type == cluster_pb2.Cluster.EDS
    # typed_config was resolved to the real HCM type
    any_cfg = snap.listeners["ingress"].filter_chains[0].filters[0].typed_config
    assert any_cfg.type_url.endswith("HttpConnectionManager")
    assert snap.type_urls() == (CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE)


def test_from_dicts_accepts_camel_case(res):
    snap = Snapshot.from_dicts(
        "v1", clusters=[{"name": "c", "type": "STATIC", "connectTimeout": "2s"}],
        endpoints=[{"clusterName": "c"}],
    )
    assert snap.clusters["c"].connect_timeout.seconds == 2
    assert set(snap.endpoints) == {"c"}


def test_digest_ignores_version_and_tracks_content(res):
    a = Snapshot.from_dicts("v1", **full_dicts(res))
    b = Snapshot.from_dicts("v2", **full_dicts(res))
    assert a.same_content(b) and a != b
    changed = full_dicts(res)
    changed["routes"][0]["virtual_hosts"][0]["routes"][0]["route"]["prefix_rewrite"] = "/x/"
    assert not a.same_content(Snapshot.from_dicts("v1", **changed))


def test_snapshot_is_immutable(res):
    msg = cluster_pb2.Cluster(name="c", type=cluster_pb2.Cluster.STATIC)
    snap = Snapshot("v1", clusters=[msg])
    msg.name = "changed"  # the caller's message is copied on the way in
    assert set(snap.clusters) == {"c"}
    with pytest.raises(TypeError):
        snap.clusters["d"] = msg  # read-only mapping
    with pytest.raises(AttributeError):
        snap.version = "v2"  # no setter


# -- SnapshotError ----------------------------------------------------------------
def test_snapshot_error_names_the_bad_resource_and_field(res):
    bad = res.listener("ingress", 10000, "rc")
    bad["filter_chains"][0]["filters"][0]["typed_config"]["no_such_field"] = 1
    with pytest.raises(SnapshotError) as info:
        Snapshot.from_dicts("v1", listeners=[res.listener("ok", 10001, "rc"), bad])
    err = info.value
    assert isinstance(err, XdsError)
    assert (err.kind, err.index, err.name) == ("listeners", 1, "ingress")
    assert "listeners[1] 'ingress'" in str(err)
    assert "no_such_field" in str(err)


def test_snapshot_error_for_bad_value(res):
    bad = res.static_cluster("c", 9000)
    bad["connect_timeout"] = "soon"
    with pytest.raises(SnapshotError, match=r"clusters\[0\] 'c'.*(connect_timeout|connectTimeout|Duration)"):
        Snapshot.from_dicts("v1", clusters=[bad])


def test_snapshot_error_for_unknown_any_type(res):
    bad = res.listener("l", 10000, "rc")
    bad["filter_chains"][0]["filters"][0]["typed_config"]["@type"] = "type.googleapis.com/no.such.Type"
    with pytest.raises(SnapshotError, match=r"listeners\[0\] 'l'.*no\.such\.Type"):
        Snapshot.from_dicts("v1", listeners=[bad])


def test_snapshot_error_for_duplicate_and_unnamed(res):
    with pytest.raises(SnapshotError, match="duplicate"):
        Snapshot.from_dicts("v1", clusters=[res.static_cluster("c", 1), res.static_cluster("c", 2)])
    with pytest.raises(SnapshotError, match=r"endpoints\[0\].*cluster_name"):
        Snapshot.from_dicts("v1", endpoints=[{"endpoints": []}])
    with pytest.raises(SnapshotError, match="version"):
        Snapshot.from_dicts("", clusters=[])


# -- consistency rules (one test per rule) -----------------------------------------
def test_consistent_snapshot_passes(res):
    snap = Snapshot.from_dicts("v1", **full_dicts(res))
    assert snap.consistent() is snap


def test_every_eds_cluster_has_a_cluster_load_assignment(res):
    snap = Snapshot.from_dicts(
        "v1",
        clusters=[res.eds_cluster("a"), res.eds_cluster("b", service_name="svc-b"), res.eds_cluster("c")],
        endpoints=[res.cla("c", [1])],
    )
    with pytest.raises(InconsistentSnapshot) as info:
        snap.consistent()
    assert info.value.missing == {ENDPOINT_TYPE: ["a", "svc-b"]}
    text = str(info.value)
    assert "'a'" in text and "'svc-b'" in text and "'c'" not in text.replace("cluster 'c'", "")


def test_every_rds_route_config_name_used_by_a_listener_exists(res):
    snap = Snapshot.from_dicts(
        "v1",
        listeners=[res.listener("l1", 10000, "missing-rc"), res.listener("l2", 10001, "rc")],
        routes=[res.route_config("rc", [])],
    )
    with pytest.raises(InconsistentSnapshot) as info:
        snap.consistent()
    assert info.value.missing == {ROUTE_TYPE: ["missing-rc"]}
    assert "listener 'l1'" in str(info.value)


def test_every_cluster_referenced_by_a_route_exists(res):
    snap = Snapshot.from_dicts(
        "v1",
        clusters=[res.static_cluster("a", 1)],
        listeners=[
            res.listener("l", 10000, "rc"),
            # inline route config and tcp_proxy are checked too
            res.listener("inline", 10001, inline=res.route_config("inline-rc", [res.route("/", "gone-inline")])),
            res.tcp_listener("tcp", 10002, "gone-tcp"),
        ],
        routes=[res.route_config("rc", [res.route("/a", "a"), res.route("/x", "gone"), res.weighted_route("/w", {"a": 1, "gone-w": 1})])],
    )
    with pytest.raises(InconsistentSnapshot) as info:
        snap.consistent()
    assert info.value.missing == {CLUSTER_TYPE: ["gone", "gone-inline", "gone-tcp", "gone-w"]}


def test_every_sds_secret_referenced_over_ads_exists(res):
    snap = Snapshot.from_dicts("v1", clusters=[res.tls_cluster_with_sds("c", 443, "ca")])
    with pytest.raises(InconsistentSnapshot) as info:
        snap.consistent()
    assert info.value.missing == {SECRET_TYPE: ["ca"]}
    ok = Snapshot.from_dicts("v1", clusters=[res.tls_cluster_with_sds("c", 443, "ca")], secrets=[res.secret("ca")])
    assert ok.consistent() is ok


def test_inconsistent_lists_every_problem(res):
    snap = Snapshot.from_dicts(
        "v9",
        clusters=[res.eds_cluster("a")],
        listeners=[res.listener("l", 10000, "rc")],
    )
    with pytest.raises(InconsistentSnapshot) as info:
        snap.consistent()
    assert info.value.version == "v9"
    assert info.value.missing == {ENDPOINT_TYPE: ["a"], ROUTE_TYPE: ["rc"]}
    assert len(info.value.problems) == 2


def test_expected_types(res):
    snap = Snapshot.from_dicts("v1", **full_dicts(res))
    assert snap.expected_types() == (CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE)
    static_only = full_dicts(res)
    static_only["clusters"] = [res.static_cluster("a", 1), res.static_cluster("b", 2)]
    static_only["listeners"] = [res.listener("l", 1, inline=res.route_config("x", [res.route("/", "a")]))]
    snap = Snapshot.from_dicts("v1", **static_only)
    # no EDS cluster and no RDS user: Envoy will never ask for those types
    assert snap.expected_types() == (CLUSTER_TYPE, LISTENER_TYPE)


def test_from_dicts_does_not_modify_its_input(res):
    dicts = full_dicts(res)
    before = copy.deepcopy(dicts)
    Snapshot.from_dicts("v1", **dicts)
    assert dicts == before
