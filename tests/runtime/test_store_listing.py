"""Store.versions() is kept in memory between writes: it must equal what the database lists after
any sequence of applies and deletes, this connection's or another's."""
import random

from lab.store import Store

QUERY = "SELECT kind, namespace, name, version FROM resources ORDER BY kind, namespace, name"


def test_the_listing_kept_in_memory_is_the_database_listing(tmp_path):
    db = tmp_path / "store.db"
    store, other = Store(db), Store(db)
    rng = random.Random(7)
    names = ["a", "b", "Z", "é", "a-b", "ab", "a.b", "ü"]  # byte order and code point order agree
    try:
        for step in range(200):
            writer = other if step % 17 == 16 else store  # another connection writes now and then
            keys = [(rng.choice(["GatewayRoute", "Mesh", "VirtualNode"]), rng.choice(["", "ns", "nś"]),
                     rng.choice(names)) for _ in range(rng.randint(1, 3))]
            if rng.random() < 0.3:
                writer.delete(keys)
            else:
                writer.apply([(k, {"kind": k[0], "spec": {"n": rng.randint(0, 2)}}) for k in keys])
            listed = store.versions()
            assert listed == store._db.execute(QUERY).fetchall(), step
            listed.clear()  # a caller's list is its own
            assert store.versions() == store._db.execute(QUERY).fetchall(), step
    finally:
        store.close()
        other.close()


def test_changes_since_is_what_the_listing_changed_or_nothing(tmp_path):
    """changes_since(v) names every key whose listed version differs from version v's listing (None:
    deleted), or answers None: after another connection's write, or further back than it keeps."""
    db = tmp_path / "store.db"
    store, other = Store(db), Store(db)
    rng = random.Random(11)
    listings = {}
    try:
        store.versions()
        for step in range(120):
            writer = other if step % 23 == 22 else store
            keys = [(rng.choice(["GatewayRoute", "Mesh"]), rng.choice(["", "ns"]), rng.choice("abcd"))
                    for _ in range(rng.randint(1, 2))]
            if rng.random() < 0.3:
                writer.delete(keys)
            else:
                writer.apply([(k, {"kind": k[0], "spec": {"n": rng.randint(0, 3)}}) for k in keys])
            now = store.version()
            listings[now] = {tuple(x[:3]): x[3] for x in store.versions()}
            for since in range(max(1, now - 80), now + 1):
                got = store.changes_since(since)
                if got is None:
                    continue
                at, changes = got
                assert at == now
                before, after = listings.get(since), listings[now]
                assert before is not None, since  # a version no listing was kept of is never answered
                differ = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
                assert differ <= changes.keys(), (since, now)
                assert all(changes[k] == after.get(k) for k in changes), (since, now)
        assert store.changes_since(store.version() - 70) is None  # further back than it keeps
    finally:
        store.close()
        other.close()


def test_kv_items_are_the_keys_with_the_prefix_and_no_others(tmp_path):
    store = Store(tmp_path / "store.db")
    try:
        for key in ("pods:a/b", "pods:", "pods;x", "pods", "PODS:c", "pods_x", "port:1", "pods:\U0010ffff"):
            store.kv_set(key, key)
        assert sorted(store.kv_items("pods:")) == ["pods:", "pods:a/b", "pods:\U0010ffff"]
        assert sorted(store.kv_items("pods_")) == ["pods_x"]  # _ is no pattern
        assert len(store.kv_items("")) == 8
    finally:
        store.close()


def test_the_daemons_store_checkpoints_when_it_chooses(tmp_path):
    """The daemon's connection never checkpoints inside a commit (an apply's); checkpoint_if_due()
    does it every `every` write transactions (the daemon calls it after an apply's answer)."""
    store = Store(tmp_path / "store.db", autocheckpoint=False)
    other = Store(tmp_path / "store.db")
    try:
        assert store._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        assert other._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000  # SQLite's default
        store.checkpoint_if_due(every=0)  # from a known start
        for i in range(3):
            store.apply([(("Mesh", "", f"m{i}"), {"kind": "Mesh", "spec": {}})])
        assert store.checkpoint_if_due(every=5) is False
        store.add_events([(("Mesh", "", "m0"), "Normal", "Test", "one"), (("Mesh", "", "m1"), "Normal", "Test", "two")])
        store.kv_set("k", 1)
        assert store.checkpoint_if_due(every=5) is True
        assert store.checkpoint_if_due(every=5) is False
        busy, frames, copied = store._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert busy == 0 and frames == copied
    finally:
        store.close()
        other.close()


def test_get_many_gives_what_get_gives_for_each_key(tmp_path, monkeypatch):
    """The batched read the daemon decodes changed records with: the same Records as get(), over
    several batches, with statuses, and nothing for a key not stored."""
    from lab.store import sqlite
    monkeypatch.setattr(sqlite, "GET_MANY_BATCH", 2)
    store = Store(tmp_path / "store.db")
    rng = random.Random(11)
    keys = [(kind, ns, name) for kind in ("Mesh", "VirtualNode") for ns in ("", "ns") for name in ("a", "b", "é")]
    try:
        for step in range(40):
            chosen = rng.sample(keys, rng.randint(1, 4))
            if rng.random() < 0.3:
                store.delete(chosen)
            else:
                store.apply([(k, {"kind": k[0], "metadata": {"name": k[2]}, "spec": {"n": rng.randint(0, 3), "l": [1, {"x": None}]}})
                             for k in chosen])
                store.set_status(chosen[0], {"conditions": [{"type": "Active", "status": str(step)}]})
            asked = rng.sample(keys, rng.randint(0, len(keys)))
            got = store.get_many(asked)
            assert got == {k: store.get(*k) for k in asked if store.get(*k) is not None}, step
    finally:
        store.close()
