"""Translate only what a change touches, with the same output as a translation from scratch.

:class:`Incremental` keeps, per proxy (the VirtualGateway or VirtualNode it is made from), its
last output and what its translation read from the world: the resources it looked up by key
(found or not: a missing one that appears later matters too) and the kinds it listed whole.
On the next call, a proxy whose own resource, looked-up keys and listed kinds are all untouched
by the change keeps its output; the others are translated again. A change of placement or file
map translates everything. The result equals ``translate(World(resources), placement, files)``
(tests/translate/test_incremental.py checks it on random sequences of changes).
"""
from __future__ import annotations

import copy

from ..model import World
from ..model.semantics import same_resource
from .envoy import to_envoy
from .gatewayapi import lab_gateway_ir
from .ir import WIDE, gateway_ir, sidecar_ir


class _Kinds(dict):
    """by_kind that notes every kind listed."""

    def __init__(self, source, seen: set):
        super().__init__()
        self._source, self._seen = source, seen

    def __getitem__(self, kind):
        self._seen.add(kind)
        return self._source[kind]

    def get(self, kind, default=None):
        self._seen.add(kind)
        return self._source.get(kind, default)


class _Recording(World):
    """The same index as `world`, noting what a translation reads from it."""

    def __init__(self, world: World):  # no super().__init__: the index is shared, not rebuilt
        self.keys: set = set()
        self.kinds: set = set()
        self.by_key = world.by_key
        self.by_kind = _Kinds(world.by_kind, self.kinds)

    def get(self, kind, namespace, name):
        key = (kind, namespace or "", name)
        self.keys.add(key)
        return self.by_key.get(key)


class Incremental:
    def __init__(self):
        self._resources: dict = {}  # key -> the last call's resource (compared by identity, then content)
        self._proxies: dict = {}  # proxy resource key -> (node id or None, output, keys, kinds)
        self._placement = None
        self._files = None
        self.translated: list = []  # proxy resource keys translated by the last call (for tests, benches)
        # virtual gateway key -> its memo (gateway_ir's and to_envoy's): a gateway translated again
        # reuses the parts of its last translation whose inputs are the same objects
        self._memos: dict = {}

    def update(self, resources, placement, files=None, only=None) -> dict:
        """node id -> {"ir": ..., "envoy": ...}, as lab.translate.translate. `only`: the keys of the
        proxy resources to translate (None: all); the others are neither translated nor kept."""
        resources = list(resources)
        world = World(resources)
        now = world.by_key
        old = self._resources
        changed = {k for k in now.keys() | old.keys() if not same_resource(now.get(k), old.get(k))}
        kinds = {k[0] for k in changed}
        everything = placement != self._placement or (files or {}) != (self._files or {})
        proxies, self.translated = {}, []
        out: dict = {}
        if everything or kinds & WIDE:
            self._memos = {}
        for kind, make in (("VirtualGateway", gateway_ir), ("VirtualNode", sidecar_ir), ("Gateway", lab_gateway_ir)):
            for r in world.by_kind[kind]:
                if only is not None and r.key not in only:
                    continue
                old = self._proxies.get(r.key)
                if (old is None or everything or r.key in changed or old[2] & changed or old[3] & kinds):
                    rec = _Recording(world)
                    keys = rec.keys
                    if kind == "VirtualGateway":
                        memo = self._memos.pop(r.key, None) if r.key not in changed else None
                        if memo:  # made by this gateway's last translation: changes since are in `changed`
                            memo["changed"] = changed
                        memo = memo or {}
                        ir = gateway_ir(rec, r, placement, memo)
                        value = {"ir": ir, "envoy": to_envoy(ir, files, memo)} if ir else None
                        self._memos[r.key] = memo  # only once translated whole without an error
                        keys = keys.union(*memo.pop("reused", ()))  # what the parts taken as they were read
                    else:
                        ir = make(rec, r, placement)
                        value = {"ir": ir, "envoy": to_envoy(ir, files)} if ir else None
                    old = (ir["node_id"] if ir else None, value, frozenset(keys), frozenset(rec.kinds))
                    self.translated.append(r.key)
                proxies[r.key] = old
                if old[0] is not None:
                    out[old[0]] = old[1]
        self._proxies, self._resources = proxies, dict(now)
        self._memos = {k: m for k, m in self._memos.items() if k in proxies}
        if everything:  # a copy only when it changed (comparing costs less than copying)
            self._placement, self._files = _copy(placement), dict(files or {})
        return dict(sorted(out.items()))


def _copy(placement):
    return copy.deepcopy(placement)


__all__ = ["Incremental"]
