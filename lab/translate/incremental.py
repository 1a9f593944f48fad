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
        self._proxies: dict = {}  # proxy resource key -> (node id or None, output, keys read, kinds listed)
        self._placement = None
        self._files = None
        self.translated: list = []  # proxy resource keys translated by the last call (for tests, benches)
        # virtual gateway key -> its memo (gateway_ir's and to_envoy's): a gateway translated again
        # reuses the parts of its last translation whose inputs are the same objects
        self._memos: dict = {}

    def update(self, resources, placement, files=None, only=None) -> dict:
        """node id -> {"ir": ..., "envoy": ...}, as lab.translate.translate. `resources`: a list, or
        the World indexing them (taken as it is). `only`: the keys of the proxy resources to translate
        (None: all); the others are neither translated nor kept."""
        world = resources if isinstance(resources, World) else World(list(resources))
        now = world.by_key
        old = self._resources
        changed = {k for k, r in now.items() if old.get(k) is not r}  # then compared by content
        changed = {k for k in changed.union(old.keys() - now.keys()) if not same_resource(now.get(k), old.get(k))}
        kinds = {k[0] for k in changed}
        everything = placement != self._placement or (files or {}) != (self._files or {})
        proxies, self.translated = {}, []
        out: dict = {}
        if everything or kinds & WIDE:
            self._memos = {}
        last = self._proxies
        for kind, make in (("VirtualGateway", gateway_ir), ("VirtualNode", sidecar_ir), ("Gateway", lab_gateway_ir)):
            for r in world.by_kind[kind]:
                key = r.key
                if only is not None and key not in only:
                    continue
                got = last.get(key)
                if (got is None or everything or key in changed or not got[2].isdisjoint(changed)
                        or not got[3].isdisjoint(kinds)):
                    rec = _Recording(world)
                    if kind == "VirtualGateway":
                        memo = self._memos.pop(key, None) if key not in changed else None
                        if memo:  # made by this gateway's last translation: changes since are in `changed`
                            memo["changed"] = changed
                        memo = memo or {}
                        ir = gateway_ir(rec, r, placement, memo)
                        value = {"ir": ir, "envoy": to_envoy(ir, files, memo)} if ir else None
                        self._memos[key] = memo  # only once translated whole without an error
                        # what every part in the memo read when it was made (parts taken again read
                        # nothing): the keys of parts no longer used stay (a change to them translates
                        # the gateway again, needlessly but correctly) until the memo starts over
                        keys = memo.setdefault("all_reads", set())
                        keys |= rec.keys
                    else:
                        ir = make(rec, r, placement)
                        value = {"ir": ir, "envoy": to_envoy(ir, files)} if ir else None
                        keys = frozenset(rec.keys)
                    got = (ir["node_id"] if ir else None, value, keys, frozenset(rec.kinds))
                    self.translated.append(key)
                proxies[key] = got
                if got[0] is not None:
                    out[got[0]] = got[1]
        self._proxies, self._resources = proxies, dict(now)
        self._memos = {k: m for k, m in self._memos.items() if k in proxies}
        if everything:  # a copy only when it changed (comparing costs less than copying)
            self._placement, self._files = _copy(placement), dict(files or {})
        return dict(sorted(out.items()))


def _copy(placement):
    return copy.deepcopy(placement)


__all__ = ["Incremental"]
