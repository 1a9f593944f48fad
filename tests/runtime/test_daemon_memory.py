"""What the daemon shares or keeps in a smaller form to save memory (one key tuple per resource,
shared conditions and sets of kinds, records whose repeated strings are one object, snapshots that
keep bytes and parse on demand) gives what a fresh decode of the store and a translation from
scratch give, after applies and deletes; and the heap is trimmed after a large apply."""
from lab.bench import manifests as m
from tests.daemon_in_process import gateway_node, in_process_daemon

NS = "memory"


def _ack_everything(d) -> None:
    for nid in list(d.pushes):
        snap = d.xds.get_snapshot(nid)
        for t in snap.expected_types():
            d.on_ack(nid, t, snap.version)
    d.reconcile()  # the loop's pass that takes the ACKs in


def test_what_the_daemon_keeps_equals_a_fresh_decode_after_applies_and_deletes(tmp_path):
    from lab.model import World
    from lab.runtime.daemon import resource_of
    from lab.translate import translate
    from lab.translate import status as status_mod
    from lab.xds.snapshot import PUSH_ORDER, Snapshot
    steps = [
        ("apply", m.text(m.scale(4, NS, live=1))),
        ("apply", m.text(m.gateway_route("extra", NS, {"prefix": "/extra/"}, "vs1"))),
        ("apply", m.text(m.gateway_route("broken", NS, {"prefix": "/broken/"}, "missing"))),  # a False condition
        ("delete", [["GatewayRoute", NS, "r2"]]),
        ("apply", m.text(m.gateway_route("extra", NS, {"prefix": "/extra2/"}, "vs3"))),
        ("delete", [["GatewayRoute", NS, "broken"], ["VirtualService", NS, "vs0"]]),
    ]
    with in_process_daemon(tmp_path / "lab") as d:
        for op, arg in steps:
            d.apply([("<step>", arg)]) if op == "apply" else d.delete(arg)
            d.flush_status()
            _ack_everything(d)
            records = d.store.list()
            fresh = [r for r in map(resource_of, records) if r is not None]
            kept = d.resources()
            assert [(r.key, r.api_version, r.spec, r.labels, r.annotations, r.raw) for r in kept] == [
                ((r.kind, r.namespace or "", r.name), r.api_version, r.spec, r.labels, r.annotations, r.raw)
                for r in fresh], op
            assert all(r.key == (r.kind, r.namespace or "", r.name) for r in d.world().by_key.values())
            by_key = {rec.key: rec for rec in records}  # the records the daemon keeps (strings shared) equal
            assert d._resource_cache.keys() == by_key.keys(), op
            for key, (_, _, rec) in d._resource_cache.items():
                fresh_rec = by_key[key]
                assert (rec.kind, rec.namespace, rec.name, rec.uid, rec.generation, rec.doc, rec.status) == (
                    fresh_rec.kind, fresh_rec.namespace, fresh_rec.name, fresh_rec.uid, fresh_rec.generation,
                    fresh_rec.doc, fresh_rec.status), (op, key)
            world = World(fresh)
            want = status_mod.conditions(world, d.isolation.conditions())
            got = {rec.key: rec.status["conditions"][0] for rec in records if rec.status.get("conditions")}
            assert got.keys() == want.keys(), op
            for key, c in got.items():
                assert {k: v for k, v in c.items() if k != "lastTransitionTime"} == want[key], (op, key)
            assert "False" in {c["status"] for c in got.values()} or op != "apply" or "broken" not in arg
            # the conditions shared between resources were never written into
            assert all("lastTransitionTime" not in c for c in status_mod._SHARED.values())
            gw = gateway_node(d)
            scratch = translate(world, d.placement, files=d.procs.files(world))[gw]["envoy"]
            plain, served = Snapshot.from_dicts("scratch", **scratch), d.xds.get_snapshot(gw)
            assert served.digest == plain.digest, op
            for t in PUSH_ORDER:
                assert dict(served.resources(t)) == dict(plain.resources(t)), (op, t)
                assert dict(served.packed(t)) == dict(plain.packed(t)), (op, t)


def test_the_status_pass_of_a_large_apply_gives_the_freed_heap_back(tmp_path, monkeypatch):
    """malloc_trim after an apply or delete that changed LARGE_APPLY records or more, not after a small one."""
    import platform

    import pytest

    from lab.runtime import heap
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("malloc_trim is glibc's: this C library has none")
    assert heap.trim() is True
    calls = []
    monkeypatch.setattr(heap, "trim", lambda: calls.append(1) or True)
    with in_process_daemon(tmp_path / "lab") as d:
        d.apply([("<small>", m.text(m.scale(3, NS, live=1)))])
        d.flush_status()
        assert calls == []
        n = heap.LARGE_APPLY // 3 + 5  # a new route, virtual service and virtual node each (3 were there)
        d.apply([("<large>", m.text(m.scale(n, NS, live=1)))])
        d.flush_status()
        assert calls == [1]
        d.delete([["GatewayRoute", NS, f"r{i}"] for i in range(n)])  # fewer than LARGE_APPLY
        d.flush_status()
        assert calls == [1]
