"""The local lab's store: SQLite, one file, WAL journal.

Every apply and delete is one transaction, so a crash or a rejected apply leaves either all
of it or none of it. Resources keep the document as applied (JSON), a uid, a generation that
grows when the spec changes, and their status and events beside them.
"""
from __future__ import annotations

import bisect
import json
import os
import sqlite3
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
  kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
  uid TEXT NOT NULL, generation INTEGER NOT NULL, doc TEXT NOT NULL,
  created REAL NOT NULL, updated REAL NOT NULL, version INTEGER NOT NULL,
  PRIMARY KEY (kind, namespace, name));
CREATE TABLE IF NOT EXISTS status (
  kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL, doc TEXT NOT NULL,
  PRIMARY KEY (kind, namespace, name));
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL,
  kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
  type TEXT NOT NULL, reason TEXT NOT NULL, message TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_object ON events (kind, namespace, name);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
MAX_EVENTS = 5000



class _Tx:
    """One write transaction of a Store (the store's lock held throughout). A class of its own, not
    one made per call: a class is a reference cycle, freed only by a garbage collection."""

    def __init__(self, store):
        self.store = store

    def __enter__(self):
        store = self.store
        store._lock.acquire()
        store._db.execute("BEGIN IMMEDIATE")
        return store._db

    def __exit__(self, exc_type, exc, tb):
        store = self.store
        try:
            store._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
            store._writes += 1
        finally:
            store._lock.release()
        return False

def _shared_names(row, doc) -> tuple:
    """(kind, namespace, name) of a record, with the strings many records repeat (apiVersion, kind,
    namespace; in the row and in the document) one object each, and the name the document's: kept
    for every stored resource by the lab's daemon, they are not one copy per record and place.
    The document is changed only to equal strings."""
    intern = sys.intern
    kind, namespace, name = intern(row[0]), intern(row[1]), row[2]
    if type(doc) is dict:
        for field_name in ("apiVersion", "kind"):
            if type(doc.get(field_name)) is str:
                doc[field_name] = intern(doc[field_name])
        meta = doc.get("metadata")
        if type(meta) is dict:
            if type(meta.get("namespace")) is str:
                meta["namespace"] = intern(meta["namespace"])
            if meta.get("name") == name:
                name = meta["name"]
    return kind, namespace, name


class StoreError(Exception):
    """The store could not be read or written (a system failure, not a user mistake)."""


@dataclass(slots=True)  # one per stored resource, kept by the daemon: no __dict__ each
class Record:
    kind: str
    namespace: str  # "" for cluster-scoped kinds
    name: str
    uid: str
    generation: int
    doc: dict
    created: float
    updated: float
    version: int  # store-wide counter at the last write (like resourceVersion)
    status: dict = field(default_factory=dict)

    @property
    def key(self) -> tuple:
        return (self.kind, self.namespace, self.name)


def _spec_of(doc: dict):
    return {k: v for k, v in doc.items() if k not in ("status", "metadata")}, \
        {k: v for k, v in (doc.get("metadata") or {}).items() if k in ("labels", "annotations")}


GET_MANY_BATCH = 300  # keys per query of get_many (3 bound parameters each; SQLite allows 32,766)
HISTORY = 64  # writes whose changes a Store remembers (changes_since)
CHECKPOINT_EVERY = 100  # write transactions between the checkpoints checkpoint_if_due() makes


class Store:
    def __init__(self, path: str | Path, autocheckpoint: bool = True):
        """`autocheckpoint=False`: SQLite does not checkpoint the WAL into the database file in
        whichever commit crosses 1,000 pages (a commit of an apply could pay for copying them);
        the owner calls checkpoint_if_due() at a time of its choosing instead."""
        self.path = str(path)
        self._writes = 0  # write transactions since the last checkpoint (autocheckpoint=False)
        self._lock = threading.RLock()
        try:
            if self.path != ":memory:":
                # the state is the owner's only, whatever the umask (SQLite gives -wal and -shm the same mode)
                os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
                for f in (self.path, self.path + "-wal", self.path + "-shm"):
                    if os.path.exists(f) and os.stat(f).st_mode & 0o077:
                        os.chmod(f, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot open the lab's store at {self.path}: {exc}") from exc
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL with WAL: a commit is durable once the WAL is synced at a checkpoint; a power cut can
            # lose the last commits but never corrupts the store (a lab's state, re-applied from its files)
            self._db.execute("PRAGMA synchronous=NORMAL")
            if not autocheckpoint:
                self._db.execute("PRAGMA wal_autocheckpoint=0")
            self._db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the lab's store at {self.path}: {exc}") from exc
        self._watchers: list = []
        # versions(), kept in memory: the listing and the store version it is of. This connection's own
        # applies and deletes update it in their transaction; anything else (another connection's
        # write bumps the store version too) makes the next versions() read it again.
        self._listing: list | None = None
        self._listing_at = -1
        # version -> what this connection's write of it changed (key -> its version, or None when
        # deleted), for the last HISTORY writes made while the listing was kept (changes_since)
        self._history: dict = {}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- transactions -------------------------------------------------------------------

    def _tx(self):
        return _Tx(self)

    def _next_version(self, db) -> int:
        row = db.execute("SELECT value FROM meta WHERE key='version'").fetchone()
        v = int(row[0]) + 1 if row else 1
        if self._listing_at != v - 1:  # the listing is not of the version this write starts from
            self._listing, self._listing_at = None, -1
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('version', ?)", (str(v),))
        return v

    def _relist(self, version: int, changed: dict) -> None:
        """After this connection's write of `version` (committed): the listing with `changed`
        (key -> its version, or None when deleted), if the listing was of the version before."""
        listing = self._listing
        if listing is None or self._listing_at != version - 1:
            self._listing, self._listing_at = None, -1
            return
        for key, v in changed.items():
            i = bisect.bisect_left(listing, key)  # (kind, namespace, name) < (kind, namespace, name, version)
            here = i < len(listing) and listing[i][:3] == key
            if v is None:
                if here:
                    del listing[i]
            elif here:
                listing[i] = (*key, v)
            else:
                listing.insert(i, (*key, v))
        self._listing_at = version
        self._history[version] = dict(changed)
        self._history.pop(version - HISTORY, None)

    def changes_since(self, version: int) -> tuple | None:
        """(the store's version, key -> its version or None when deleted) of what changed after
        `version`, when every write since was this connection's and is still remembered; None
        otherwise (then list everything: versions())."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key='version'").fetchone()
            now = int(row[0]) if row else 0
            if version < 0 or now < version or now - version > HISTORY:
                return None
            out: dict = {}
            for v in range(version + 1, now + 1):
                got = self._history.get(v)
                if got is None:
                    return None
                out.update(got)
            return now, out

    def checkpoint_if_due(self, every: int = CHECKPOINT_EVERY) -> bool:
        """Copy the WAL into the database file (a PASSIVE checkpoint: it waits for no reader) once
        `every` write transactions have been made since the last one. Returns whether it ran."""
        with self._lock:
            if self._writes < every:
                return False
            self._writes = 0
            try:
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            except sqlite3.Error as exc:
                raise StoreError(f"checkpoint of the lab's store failed: {exc}") from exc
            return True

    def version(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key='version'").fetchone()
        return int(row[0]) if row else 0

    # -- resources ----------------------------------------------------------------------

    def apply(self, docs: list[tuple[tuple, dict]]) -> list[tuple[tuple, str]]:
        """docs: [((kind, namespace, name), document)]. All or nothing. Returns (key, action)
        with action created | configured | unchanged."""
        now = time.time()
        results = []
        changed: dict = {}
        try:
            with self._tx() as db:
                version = self._next_version(db)
                for key, doc in docs:
                    doc = {k: v for k, v in doc.items() if k != "status"}
                    row = db.execute("SELECT uid, generation, doc FROM resources WHERE kind=? AND namespace=? AND name=?",
                                     key).fetchone()
                    text = json.dumps(doc, sort_keys=True)
                    if row is None:
                        db.execute("INSERT INTO resources VALUES (?,?,?,?,?,?,?,?,?)",
                                   (*key, str(uuid.uuid4()), 1, text, now, now, version))
                        results.append((key, "created"))
                        changed[tuple(key)] = version
                    elif row[2] == text:
                        results.append((key, "unchanged"))
                    else:
                        old = json.loads(row[2])
                        gen = row[1] + (1 if _spec_of(old)[0] != _spec_of(doc)[0] else 0)
                        db.execute("UPDATE resources SET doc=?, generation=?, updated=?, version=? "
                                   "WHERE kind=? AND namespace=? AND name=?", (text, gen, now, version, *key))
                        results.append((key, "configured"))
                        changed[tuple(key)] = version
                self._relist(version, changed)  # (a failed COMMIT raises below: the listing is dropped)
        except sqlite3.Error as exc:
            self._listing, self._listing_at = None, -1
            raise StoreError(f"apply failed in the store: {exc}") from exc
        self._notify()
        return results

    def delete(self, keys: list[tuple]) -> list[tuple[tuple, str]]:
        results = []
        try:
            with self._tx() as db:
                version = self._next_version(db)
                for key in keys:
                    cur = db.execute("DELETE FROM resources WHERE kind=? AND namespace=? AND name=?", key)
                    db.execute("DELETE FROM status WHERE kind=? AND namespace=? AND name=?", key)
                    results.append((key, "deleted" if cur.rowcount else "not found"))
                self._relist(version, {tuple(k): None for k in keys})
        except sqlite3.Error as exc:
            self._listing, self._listing_at = None, -1
            raise StoreError(f"delete failed in the store: {exc}") from exc
        self._notify()
        return results

    def _record(self, row, status=None) -> Record:
        return Record(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]), row[6], row[7], row[8],
                      json.loads(status) if status else {})

    def get(self, kind: str, namespace: str, name: str) -> Record | None:
        with self._lock:
            row = self._db.execute("SELECT r.*, s.doc FROM resources r LEFT JOIN status s USING (kind, namespace, name) "
                                   "WHERE kind=? AND namespace=? AND name=?", (kind, namespace, name)).fetchone()
        return self._record(row[:9], row[9]) if row else None

    def get_many(self, keys: list[tuple]) -> dict:
        """key -> Record of those of `keys` that are stored (get() of each). The documents of a
        batch are decoded by one json.loads, so that the key strings they share ("metadata",
        "spec", ...) are one object each, not one per document."""
        out: dict = {}
        keys = list(keys)
        for i in range(0, len(keys), GET_MANY_BATCH):
            batch = keys[i:i + GET_MANY_BATCH]
            q = ("SELECT r.*, s.doc FROM resources r LEFT JOIN status s USING (kind, namespace, name) "
                 "WHERE (r.kind, r.namespace, r.name) IN (VALUES " + ",".join(["(?,?,?)"] * len(batch)) + ")")
            with self._lock:
                rows = self._db.execute(q, [x for key in batch for x in key]).fetchall()
            if not rows:
                continue
            docs = json.loads("[" + ",".join(row[5] for row in rows) + "]")
            for row, doc in zip(rows, docs):
                kind, namespace, name = _shared_names(row, doc)
                rec = Record(kind, namespace, name, row[3], row[4], doc, row[6], row[7], row[8],
                             json.loads(row[9]) if row[9] else {})
                out[rec.key] = rec
        return out

    def list(self, kind: str | None = None, namespace: str | None = None) -> list[Record]:
        q = "SELECT r.*, s.doc FROM resources r LEFT JOIN status s USING (kind, namespace, name)"
        cond, args = [], []
        if kind:
            cond.append("kind=?")
            args.append(kind)
        if namespace is not None:
            cond.append("namespace=?")
            args.append(namespace)
        if cond:
            q += " WHERE " + " AND ".join(cond)
        q += " ORDER BY kind, namespace, name"
        with self._lock:
            rows = self._db.execute(q, args).fetchall()
        return [self._record(r[:9], r[9]) for r in rows]

    def versions(self) -> list[tuple[str, str, str, int]]:
        """(kind, namespace, name, version) of every resource, in list() order: what changed since
        a caller last read, without decoding any document. Read from the database only when the
        store's version is not the one of the listing kept in memory (a new list each call)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key='version'").fetchone()
            now = int(row[0]) if row else 0
            if self._listing is None or self._listing_at != now:
                # ORDER BY compares the UTF-8 bytes (BINARY): the order of Python's str tuples
                self._listing = self._db.execute("SELECT kind, namespace, name, version FROM resources "
                                                 "ORDER BY kind, namespace, name").fetchall()
                self._listing_at = now
            return list(self._listing)

    # -- status and events --------------------------------------------------------------

    def set_status(self, key: tuple, status: dict) -> bool:
        """Store a resource's status; returns whether it changed."""
        text = json.dumps(status, sort_keys=True)
        with self._tx() as db:
            row = db.execute("SELECT doc FROM status WHERE kind=? AND namespace=? AND name=?", key).fetchone()
            if row and row[0] == text:
                return False
            if db.execute("SELECT 1 FROM resources WHERE kind=? AND namespace=? AND name=?", key).fetchone() is None:
                return False
            db.execute("INSERT OR REPLACE INTO status VALUES (?,?,?,?)", (*key, text))
        return True

    def set_statuses(self, items: list[tuple[tuple, dict]]) -> None:
        """Store many statuses in one transaction (resources that no longer exist are skipped)."""
        if not items:
            return
        with self._tx() as db:
            for key, status in items:
                if db.execute("SELECT 1 FROM resources WHERE kind=? AND namespace=? AND name=?", key).fetchone():
                    db.execute("INSERT OR REPLACE INTO status VALUES (?,?,?,?)", (*key, json.dumps(status, sort_keys=True)))

    def add_event(self, key: tuple, type_: str, reason: str, message: str) -> None:
        self.add_events([(key, type_, reason, message)])

    def add_events(self, events: list) -> None:
        """Several events, [(key, type, reason, message[, time.time() of the event])], in one
        transaction (in list order; without a time, now)."""
        if not events:
            return
        now = time.time()
        with self._tx() as db:
            db.executemany("INSERT INTO events (time, kind, namespace, name, type, reason, message) VALUES (?,?,?,?,?,?,?)",
                           [(e[4] if len(e) > 4 else now, *e[0], *e[1:4]) for e in events])
            db.execute("DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?", (MAX_EVENTS,))

    def events(self, key: tuple | None = None, limit: int = 50) -> list[dict]:
        q = "SELECT time, kind, namespace, name, type, reason, message FROM events"
        args: tuple = ()
        if key:
            q += " WHERE kind=? AND namespace=? AND name=?"
            args = key
        q += " ORDER BY id DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(q, (*args, limit)).fetchall()
        return [dict(zip(("time", "kind", "namespace", "name", "type", "reason", "message"), r)) for r in reversed(rows)]

    # -- small persistent values (ports, pod names) -------------------------------------

    def kv_get(self, key: str, default=None):
        with self._lock:
            row = self._db.execute("SELECT value FROM kv WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def kv_set(self, key: str, value) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, json.dumps(value)))

    def kv_items(self, prefix: str) -> dict:
        with self._lock:
            # a range of the primary key (LIKE would scan the table, and read _ and % in `prefix` as patterns)
            rows = self._db.execute("SELECT key, value FROM kv WHERE key >= ? AND key < ?",
                                    (prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1))).fetchall() if prefix else \
                self._db.execute("SELECT key, value FROM kv").fetchall()
        return {k: json.loads(v) for k, v in rows}

    def kv_delete(self, key: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM kv WHERE key=?", (key,))

    def integrity_check(self) -> str:
        with self._lock:
            return self._db.execute("PRAGMA integrity_check").fetchone()[0]

    # -- watch --------------------------------------------------------------------------

    def watch(self, callback) -> None:
        """Call `callback()` after every apply or delete (in the writer's thread)."""
        self._watchers.append(callback)

    def _notify(self) -> None:
        for cb in list(self._watchers):
            cb()
