"""The daemon in process (no processes start): it reads only changed records from the store,
reuses parsed Envoy resources between pushes, and records each proxy's push and ACK times."""
import pytest

from lab.bench import manifests as m
from tests.daemon_in_process import gateway_node, in_process_daemon

NS = "pushes"


@pytest.fixture
def daemon(tmp_path):
    with in_process_daemon(tmp_path / "lab") as d:
        yield d


def test_pushes_are_recorded_and_acked_when_every_type_is(daemon):
    d = daemon
    d.apply([("<base>", m.text(m.scale(2, NS)))])
    gw = gateway_node(d)
    push = d.pushes[gw]
    assert push["acked"] is None and push["pushed"] > 0
    snap = d.xds.get_snapshot(gw)
    assert push["version"] == snap.version
    types = snap.expected_types()
    for t in types[:-1]:
        d.on_ack(gw, t, snap.version)
    assert d.pushes[gw]["acked"] is None
    d.on_ack(gw, types[-1], "some-older-version")
    assert d.pushes[gw]["acked"] is None
    d.on_ack(gw, types[-1], snap.version)
    assert d.pushes[gw]["acked"] >= push["pushed"]
    status = {p["node_id"]: p for p in d.status()["proxies"]}
    assert status[gw]["push"] == d.pushes[gw]


def test_an_apply_reads_and_parses_only_what_changed(daemon, monkeypatch):
    from google.protobuf import json_format

    from lab.runtime import daemon as dmod
    d = daemon
    d.apply([("<base>", m.text(m.scale(3, NS)))])
    gw = gateway_node(d)
    before = d.pushes[gw]["version"]
    decoded, parsed = [], []
    real_resource_of, real_parse = dmod.resource_of, json_format.ParseDict
    monkeypatch.setattr(dmod, "resource_of", lambda rec: decoded.append(rec.key) or real_resource_of(rec))
    monkeypatch.setattr(json_format, "ParseDict",
                        lambda item, msg, *a, **kw: parsed.append(type(msg).__name__) or real_parse(item, msg, *a, **kw))
    d.apply([("<new>", m.text(m.gateway_route("new", NS, {"prefix": "/new/"}, "vs0")))])
    assert decoded == [("GatewayRoute", NS, "new")]
    assert d.pushes[gw]["version"] != before
    # the gateway's new route config is parsed; its clusters and listeners are reused
    assert "RouteConfiguration" in parsed and "Cluster" not in parsed and "Listener" not in parsed
    assert [r.name for r in d.resources() if r.kind == "GatewayRoute"] == ["new", "r0", "r1", "r2"]
    d.delete([["GatewayRoute", NS, "new"]])
    assert "new" not in [r.name for r in d.resources() if r.kind == "GatewayRoute"]


def test_what_each_proxy_was_sent_is_one_shared_map_per_pass(daemon):
    """Isolation remembers, per proxy, the resources behind its last push and ACK. The proxies
    pushed in one pass share one map, so the daemon holds about one entry per resource and pass,
    not one per resource and proxy (which took gigabytes at 5,000 routes)."""
    d = daemon
    d.apply([("<base>", m.text(m.scale(6, NS, live=6)))])  # a pod for every node: every proxy is pushed
    sent = d.isolation.sent
    assert len(sent) == 7  # the gateway and six sidecars
    assert len({id(s["resources"]) for s in sent.values()}) == 1
    assert len(next(iter(sent.values()))["resources"]) == len(d.resources())
    d.apply([("<one>", m.text(m.gateway_route("extra", NS, {"prefix": "/extra/"}, "vs0")))])
    assert len({id(s["resources"]) for s in sent.values()}) == 2  # the gateway's push is the pass's own
    gw = gateway_node(d)
    snap = d.xds.get_snapshot(gw)
    for t in snap.expected_types():
        d.on_ack(gw, t, snap.version)
    d.reconcile(force=True)
    assert d.isolation.acked[gw] is sent[gw]["resources"]  # an ACK keeps the map, not a copy


def test_a_virtual_gateway_claims_no_port_for_its_egress_stage(tmp_path):
    """The gateway's second stage is an internal listener: no socket, so no port claimed for it (a
    lab that claimed one before gives it back when its daemon starts); the names it carries are
    the ones a cluster's gateway has (15001)."""
    from lab.runtime.daemon import Daemon
    with in_process_daemon(tmp_path / "lab") as d:
        d.ports.get("egress:mesh/old/virtualGateway/gw_old")  # as an older daemon claimed it
        d.apply([("<base>", m.text(m.scale(1, NS, live=1)))])
        gw = gateway_node(d)
        assert f"egress:{gw}" not in d.ports.all()
        assert [k for k in d.ports.all() if k.startswith("egress:") and "/virtualNode/" in k]  # sidecars bind theirs
        envoy = d._pushed[gw]
        (internal,) = [lst for lst in envoy["listeners"] if "internal_listener" in lst]
        assert internal["name"] == "lds_egress_internal_15001" and "address" not in internal
        assert any(c["name"].endswith("_self_redirect_http_15001") for c in envoy["clusters"])
    d._lock_file.close()  # as the daemon's exit would
    d = Daemon(tmp_path / "lab")  # the next daemon on the same home releases the old claim
    try:
        assert not [k for k in d.ports.all() if k.startswith("egress:") and "/virtualGateway/" in k]
    finally:
        d.store.close()
        d._lock_file.close()


def test_a_proxy_no_envoy_runs_is_not_translated_until_one_connects_as_it(daemon):
    """The daemon translates and keeps a snapshot only for proxies an Envoy needs (a pod for it is
    placed, or an Envoy is connected as it): a virtual node without pods costs no translation and
    holds no protobufs. An Envoy that connects as it wakes a pass that serves it; statuses do not
    wait for it."""
    import queue

    import grpc
    from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

    from lab.xds.snapshot import CLUSTER_TYPE
    d = daemon
    d.apply([("<base>", m.text(m.scale(3, NS, live=1)))])
    gw = gateway_node(d)
    (vn0,) = {p.node_id for p in d.pods} - {gw}
    mesh = gw.split("/")[1]
    podless = [f"mesh/{mesh}/virtualNode/{r.aws_name()}" for r in d.world().by_kind["VirtualNode"]]
    podless = sorted(set(podless) - {vn0})
    assert len(podless) == 2 and d.last_reconcile["proxies"] == 2  # the gateway and vn0 only are translated
    assert {n for n in d.xds.nodes() if d.xds.get_snapshot(n) is not None} == {gw, vn0}
    assert set(d.pushes) == set(d._parsed) == set(d.isolation.sent) == {gw, vn0}
    # what waits for an ACK waits for the running proxies only (none of these has answered here)
    d.flush_status()  # as the daemon's readers do (an apply answers before its status pass)
    messages = [r.status["conditions"][0]["message"] for r in d.store.list("VirtualNode")]
    assert len(messages) == 3 and all("not ACKed yet" in x for x in messages), messages
    assert not [x for x in messages for n in podless if n.rsplit("/", 1)[1] in x], messages

    requests: queue.Queue = queue.Queue()
    requests.put(discovery_pb2.DiscoveryRequest(type_url=CLUSTER_TYPE, node={"id": podless[0]}))
    channel = grpc.insecure_channel(f"unix:{d.sockets.xds}")
    call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources(iter(requests.get, None))
    try:
        assert d.xds.wait_for(lambda s: podless[0] in s.connected(), 5)
        assert podless[0] in d._attach
        d.reconcile()  # what the daemon's loop runs when the connection wakes it
        response = next(call)
        assert response.type_url == CLUSTER_TYPE and response.version_info == d.pushes[podless[0]]["version"]
        assert response.resources
        assert d.xds.get_snapshot(podless[1]) is None
    finally:
        requests.put(None)
        call.cancel()
        channel.close()


def test_the_decoded_records_the_daemon_keeps_are_what_a_fresh_read_gives(daemon):
    """resources() decodes changed records in batches and keeps them with their Resources between
    passes: after applies, changes, deletes and status passes, each kept (version, Resource, Record)
    equals a fresh store.get() and its decode."""
    from lab.runtime.daemon import resource_of
    d = daemon
    d.apply([("<base>", m.text(m.scale(3, NS)))])
    d.apply([("<new>", m.text(m.gateway_route("new", NS, {"prefix": "/new/"}, "vs0")))])
    d.flush_status()
    d.apply([("<changed>", m.text(m.gateway_route("new", NS, {"prefix": "/other/"}, "vs1")))])
    d.delete([["GatewayRoute", NS, "r1"]])
    d.flush_status()
    d.resources()
    assert ("GatewayRoute", NS, "r1") not in d._resource_cache
    assert d._resource_cache[("GatewayRoute", NS, "new")][1].spec["httpRoute"]["match"] == {"prefix": "/other/"}
    assert len(d._resource_cache) == len(d.store.versions())
    for key, (version, r, rec) in d._resource_cache.items():
        fresh = d.store.get(*key)
        assert (version, rec) == (fresh.version, fresh), key
        assert r == resource_of(fresh), key


def test_an_apply_lets_the_validated_resources_go_before_its_pass(daemon, monkeypatch):
    """One copy of the model at a time: by the time the apply's pass decodes the stored documents,
    the Resources validation made of the manifests (and their parsed documents) are freed."""
    import weakref

    from lab.runtime import daemon as dmod
    d = daemon
    validated = []
    real_validate, real_reconcile = dmod.validate_texts, d.reconcile

    def validate(*a, **kw):
        result = real_validate(*a, **kw)
        validated.extend(weakref.ref(r) for r in result.resources)
        return result

    alive = []
    monkeypatch.setattr(dmod, "validate_texts", validate)
    monkeypatch.setattr(d, "reconcile", lambda *a, **kw: alive.append(sum(w() is not None for w in validated))
                        or real_reconcile(*a, **kw))
    d.apply([("<base>", m.text(m.scale(3, NS)))])
    assert validated and alive == [0]
    assert [r.name for r in d.resources() if r.kind == "GatewayRoute"] == ["r0", "r1", "r2"]


def test_each_pass_takes_the_last_world_with_what_the_store_changed(daemon, monkeypatch):
    """The store says what its writes changed (Store.changes_since), so a pass reads those records
    only, without listing the store; its World is the last pass's with them put in
    (World.with_changes), and the translation takes its delta as the change set: after applies,
    changes and deletes the resources and the World equal those of a fresh read, and every pushed
    configuration equals a translation from scratch."""
    import json

    from lab.model import World
    from lab.store.sqlite import Store
    from lab.translate import translate
    d = daemon
    d.apply([("<base>", m.text(m.scale(3, NS)))])
    d.flush_status()
    listed = []
    real_versions = Store.versions
    monkeypatch.setattr(Store, "versions", lambda self: listed.append(1) or real_versions(self))
    steps = [lambda: d.apply([("<new>", m.text(m.gateway_route("new", NS, {"prefix": "/new/"}, "vs0")))]),
             lambda: d.apply([("<changed>", m.text(m.gateway_route("new", NS, {"prefix": "/other/"}, "vs1")))]),
             lambda: d.delete([["GatewayRoute", NS, "r1"]])]
    for step in steps:
        before = d.world()
        step()
        world = d.world()
        assert world.delta is not None and world.delta[0] == before.serial
        assert d._incremental.translated == [next(r.key for r in world.by_kind["VirtualGateway"])]
        d.flush_status()
        assert listed == []
        keys = [r.key for r in d.resources()]
        assert keys == [tuple(x[:3]) for x in real_versions(d.store)]
        fresh = World(d.resources())
        assert world.by_key == fresh.by_key
        assert {k: v for k, v in world.by_kind.items() if v} == {k: v for k, v in fresh.by_kind.items() if v}
        full = translate(fresh, d.placement, files=d.procs.files(fresh))
        for nid, pushed in d._pushed.items():
            assert json.dumps(pushed, sort_keys=True) == json.dumps(full[nid]["envoy"], sort_keys=True), nid


def test_an_apply_and_its_status_pass_leave_no_reference_cycles(daemon):
    """What an apply makes (the validation's World and the ReadingWorlds over it, the store's
    transactions) is freed as soon as it is no longer used, not left for the cyclic garbage
    collector: a collection at 1,000 routes freed ~3,000 objects per change and took tens of
    milliseconds, and one that fell inside an apply delayed its push."""
    import gc
    d = daemon
    d.apply([("<base>", m.text(m.scale(3, NS)))])
    d.flush_status()
    texts = [m.text(m.gateway_route("r0", NS, {"prefix": f"/changed/{i}/"}, "vs1")) for i in range(3)]
    texts.append(m.text(m.gateway_route("new", NS, {"prefix": "/new/"}, "vs0")))
    gc.collect()
    gc.disable()
    try:
        for i, text in enumerate(texts):
            d.apply([(f"<change {i}>", text)])
            d.flush_status()
        d.delete([["GatewayRoute", NS, "new"]])
        d.flush_status()
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_the_validation_index_takes_in_each_store_version_once(daemon, monkeypatch):
    """The status pass brings the validation index up to the store; an apply that finds the store
    where the index last took it in does not compare every stored resource again (at 1,000 routes
    that found nothing new in ~2 ms, before the push). After a delete the index still knows."""
    from lab.model.semantics import SemanticIndex
    d = daemon
    d.apply([("<base>", m.text(m.scale(3, NS)))])
    d.flush_status()
    synced = []
    real_sync = SemanticIndex.sync
    monkeypatch.setattr(SemanticIndex, "sync", lambda self, stored: synced.append(1) or real_sync(self, stored))
    d.apply([("<new>", m.text(m.gateway_route("new", NS, {"prefix": "/new/"}, "vs0")))])
    assert synced == []
    d.flush_status()
    assert synced == [1]
    d.delete([["VirtualService", NS, "vs2"]])
    d.flush_status()
    answer = d.apply([("<late>", m.text(m.gateway_route("late", NS, {"prefix": "/late/"}, "vs2")))])
    assert len(synced) == 2
    assert any("vs2" in p["message"] for p in answer["problems"]), answer["problems"]
