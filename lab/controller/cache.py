"""Informers: list each watched kind, then watch it, and keep every object in one cache.

A watch that ends (server timeout) resumes from the last resourceVersion seen; one that is
too old (410 Gone) lists again; any other error waits with a capped backoff and lists again.
Every change bumps the cache's version and calls `on_change`, which wakes the reconcile loop.
"""
from __future__ import annotations

import copy
import logging
import threading
import time

from .kube import WATCHED, Gone, Kube, KubeError, key_of

log = logging.getLogger("appmesh-lab.controller")


class Cache:
    """kind -> {(kind, namespace, name): object}; thread-safe; reads return copies of the index."""

    def __init__(self):
        self._lock = threading.Lock()
        self._objects: dict[str, dict[tuple, dict]] = {k: {} for k in WATCHED}
        self.version = 0
        self.synced: set[str] = set()

    def replace(self, kind: str, items: list[dict]) -> None:
        with self._lock:
            self._objects[kind] = {key_of(kind, o): o for o in items}
            self.synced.add(kind)
            self.version += 1

    def event(self, kind: str, type_: str, obj: dict) -> bool:
        """Apply one watch event; False when it changed nothing (a bookmark, a stale event)."""
        if type_ == "BOOKMARK":
            return False
        key = key_of(kind, obj)
        with self._lock:
            table = self._objects[kind]
            if type_ == "DELETED":
                if table.pop(key, None) is None:
                    return False
            else:
                old = table.get(key)
                if old is not None and (old.get("metadata") or {}).get("resourceVersion") == \
                        (obj.get("metadata") or {}).get("resourceVersion"):
                    return False
                table[key] = obj
            self.version += 1
            return True

    def put(self, kind: str, obj: dict) -> None:
        """Record an object the controller itself just wrote (so the next pass sees it at once)."""
        with self._lock:
            self._objects[kind][key_of(kind, obj)] = obj
            self.version += 1

    def list(self, kind: str) -> list[dict]:
        with self._lock:
            return list(self._objects[kind].values())

    def get(self, kind: str, namespace: str, name: str) -> dict | None:
        with self._lock:
            return self._objects[kind].get((kind, namespace or "", name))

    def snapshot(self) -> dict[str, list[dict]]:
        with self._lock:
            return {k: list(v.values()) for k, v in self._objects.items()}

    def all_synced(self) -> bool:
        return set(WATCHED) <= self.synced

    @classmethod
    def from_objects(cls, objects: dict[str, list[dict]]) -> "Cache":
        c = cls()
        for kind in WATCHED:
            c.replace(kind, copy.deepcopy(objects.get(kind, [])))
        return c


class Informer(threading.Thread):
    """One kind: list, then watch forever (until stop)."""

    def __init__(self, kube: Kube, kind: str, cache: Cache, on_change, stop: threading.Event,
                 watch_timeout_s: int = 300, max_backoff_s: float = 30.0):
        super().__init__(name=f"informer-{kind}", daemon=True)
        self.kube, self.kind, self.cache = kube, kind, cache
        self.on_change, self.stop_event = on_change, stop
        self.watch_timeout_s, self.max_backoff_s = watch_timeout_s, max_backoff_s

    def run_once(self, resource_version: str | None) -> str:
        """List (when resource_version is None) and watch until the stream ends; return the
        resourceVersion to resume from. Raises Gone or KubeError."""
        if resource_version is None:
            items, resource_version = self.kube.list(self.kind)
            self.cache.replace(self.kind, items)
            self.on_change()
        started, events = time.monotonic(), 0
        for type_, obj in self.kube.watch(self.kind, resource_version, self.watch_timeout_s):
            events += 1
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            if rv:
                resource_version = rv
            if self.cache.event(self.kind, type_, obj):
                self.on_change()
            if self.stop_event.is_set():
                break
        if not events and time.monotonic() - started < 1.0:
            self.stop_event.wait(1.0)  # a watch that ends at once, empty: do not hammer the API server
        return resource_version

    def run(self) -> None:
        rv, backoff = None, 1.0
        while not self.stop_event.is_set():
            try:
                rv = self.run_once(rv)
                backoff = 1.0
            except Gone:
                log.info("watch of %s expired; listing again", self.kind)
                rv = None
            except KubeError as exc:
                log.warning("%s; retrying in %.0fs", exc, backoff)
                rv = None
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
            except Exception:  # a bug must not kill the informer silently: log it and start over
                log.exception("informer %s failed; listing again", self.kind)
                rv = None
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)


def start_informers(kube: Kube, cache: Cache, on_change, stop: threading.Event) -> list[Informer]:
    out = [Informer(kube, kind, cache, on_change, stop) for kind in WATCHED]
    for inf in out:
        inf.start()
    return out


def wait_synced(cache: Cache, timeout: float, stop: threading.Event | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cache.all_synced():
            return True
        if stop is not None and stop.wait(0.1):
            return False
        if stop is None:
            time.sleep(0.1)
    return cache.all_synced()
