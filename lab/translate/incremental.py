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


# the kinds proxies are made from, in the order their outputs are taken (a later one of the same
# node id wins, as in translate())
_MAKERS = (("VirtualGateway", gateway_ir), ("VirtualNode", sidecar_ir), ("Gateway", lab_gateway_ir))
_RANK = {kind: i for i, (kind, _) in enumerate(_MAKERS)}
_MAKE = dict(_MAKERS)


class Incremental:
    def __init__(self):
        self._resources: dict = {}  # key -> the last call's resource (compared by identity, then content)
        self._proxies: dict = {}  # proxy resource key -> (node id or None, output, keys read, kinds listed)
        # the reverse of the reads: resource key -> the proxy (its key) or the set of proxies that
        # looked it up; kind -> the proxies that listed it. A change reaches the proxies found here,
        # without a look at the others
        self._readers: dict = {}
        self._listers: dict = {}
        self._by_nid: dict = {}  # node id -> the keys of the proxies giving it (two: the later one counts)
        self._out: dict = {}  # node id -> its output
        self._order: list = []  # the node ids of _out, sorted
        self._only = None  # the last call's `only` (a frozenset, or None)
        self._placement = None
        self._files = None
        self._started = False
        self._serial = None  # the serial of the World of the last call (lab/model/semantics.py)
        self.translated: list = []  # proxy resource keys translated by the last call (for tests, benches)
        # virtual gateway key -> its memo (gateway_ir's and to_envoy's): a gateway translated again
        # reuses the parts of its last translation whose inputs are the same objects
        self._memos: dict = {}

    def update(self, resources, placement, files=None, only=None, changes=None) -> dict:
        """node id -> {"ir": ..., "envoy": ...}, as lab.translate.translate. `resources`: a list, or
        the World indexing them (taken as it is). `only`: the keys of the proxy resources to translate
        (None: all); the others are neither translated nor kept. `changes`: the keys of the resources
        that may differ from the last call's (added, changed or removed), when the caller knows them:
        every other key must then be the very same object as in the last call (None: every resource
        is compared; for a World made by World.with_changes from the World of the last call, its
        delta)."""
        try:
            return self._update(resources, placement, files, only, changes)
        except BaseException:  # half updated: the next call starts from scratch
            self.__init__()
            raise

    def _update(self, resources, placement, files, only, changes) -> dict:
        world = resources if isinstance(resources, World) else World(list(resources))
        if changes is None and world.delta is not None and world.delta[0] == self._serial:
            changes = world.delta[1]
        self._serial = None  # set again once this call is through
        now = world.by_key
        old = self._resources
        everything = (not self._started or placement != self._placement
                      or (files or {}) != (self._files or {}))
        if changes is None or everything:
            maybe = {k for k, r in now.items() if old.get(k) is not r}.union(old.keys() - now.keys())
            changed = {k for k in maybe if not same_resource(now.get(k), old.get(k))}
            self._resources = dict(now)
        else:
            changed = {k for k in changes if not same_resource(now.get(k), old.get(k))}
            for k in changes:
                r = now.get(k)
                if r is None:
                    old.pop(k, None)
                else:
                    old[k] = r
        kinds = {k[0] for k in changed}
        if everything or kinds & WIDE:
            self._memos = {}
        only = None if only is None else frozenset(only)
        proxies = self._proxies
        if everything or only != self._only:  # which proxies there are: a look at each
            wanted = {r.key for kind, _ in _MAKERS for r in world.by_kind[kind] if only is None or r.key in only}
            dirty = wanted if everything else (wanted - proxies.keys()) | (self._reached(changed, kinds) & wanted)
            gone = proxies.keys() - wanted
            self._only = only
        else:  # the proxies the change reaches: their own resource changed, or one they read
            reached = self._reached(changed, kinds)
            dirty = {k for k in reached if k in now and (only is None or k in only)}
            gone = {k for k in reached if k not in dirty and k in proxies}
        dirty -= gone
        touched: set = set()  # node ids whose output may have changed
        for key in gone:
            got = proxies.pop(key)
            self._unindex(key, got[2], got[3])
            self._memos.pop(key, None)
            touched.add(got[0])
            self._by_nid.get(got[0], set()).discard(key)
        self.translated = sorted(dirty, key=_proxy_order)
        for key in self.translated:
            r = now[key]
            last = proxies.get(key)
            rec = _Recording(world)
            if key[0] == "VirtualGateway":
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
                ir = _MAKE[key[0]](rec, r, placement)
                value = {"ir": ir, "envoy": to_envoy(ir, files)} if ir else None
                keys = frozenset(rec.keys)
            got = (ir["node_id"] if ir else None, value, keys, frozenset(rec.kinds))
            if last is None:
                self._index(key, keys, got[3])
            else:
                if last[2] is keys:  # the gateway's memo went on: its reads only grew, by this call's
                    self._index(key, rec.keys, ())
                else:
                    self._unindex(key, last[2] - keys, ())
                    self._index(key, keys - last[2], ())
                self._unindex(key, (), last[3] - got[3])
                self._index(key, (), got[3] - last[3])
                if last[0] != got[0]:
                    self._by_nid.get(last[0], set()).discard(key)
                    touched.add(last[0])
            proxies[key] = got
            self._by_nid.setdefault(got[0], set()).add(key)
            touched.add(got[0])
        out, new_names = self._out, False
        for nid in touched:
            if nid is None:
                continue
            holders = self._by_nid.get(nid)
            if not holders:
                self._by_nid.pop(nid, None)
                new_names |= out.pop(nid, None) is not None
                continue
            if len(holders) == 1:
                (key,) = holders
            else:  # more than one proxy gives this node id: the last in translate()'s order, as there
                places = {r.key: i for kind, _ in _MAKERS for i, r in enumerate(world.by_kind[kind])}
                key = max(holders, key=lambda k: (_RANK[k[0]], places[k]))
            new_names |= nid not in out
            out[nid] = proxies[key][1]
        if new_names:
            self._order = sorted(out)
        if everything:  # a copy only when it changed (comparing costs less than copying)
            self._placement, self._files = _copy(placement), dict(files or {})
        self._started = True
        self._serial = getattr(world, "serial", None)
        return {nid: out[nid] for nid in self._order}

    def _reached(self, changed: set, kinds: set) -> set:
        """The proxies a change reaches: made from a changed resource, or having read one."""
        out = {k for k in changed if k[0] in _RANK}
        readers, listers = self._readers, self._listers
        for k in changed:
            got = readers.get(k)
            if got is not None:
                if type(got) is set:
                    out.update(got)
                else:
                    out.add(got)
        for kind in kinds:
            out.update(listers.get(kind, ()))
        return out

    def _index(self, proxy, keys, kinds) -> None:
        # a key most proxies' reads share with no other proxy holds that proxy's key, not a set
        # of one (a set takes 216 bytes: 3 MB for the gateway's reads at 5,000 routes)
        readers, listers = self._readers, self._listers
        for k in keys:
            got = readers.get(k)
            if got is None:
                readers[k] = proxy
            elif type(got) is set:
                got.add(proxy)
            elif got != proxy:
                readers[k] = {got, proxy}
        for kind in kinds:
            listers.setdefault(kind, set()).add(proxy)

    def _unindex(self, proxy, keys, kinds) -> None:
        readers, listers = self._readers, self._listers
        for k in keys:
            got = readers.get(k)
            if got is None:
                continue
            if type(got) is set:
                got.discard(proxy)
                if len(got) == 1:
                    readers[k] = next(iter(got))
            elif got == proxy:
                del readers[k]
        for kind in kinds:
            got = listers.get(kind)
            if got is not None:
                got.discard(proxy)
                if not got:
                    del listers[kind]


def _proxy_order(key: tuple) -> tuple:
    return (_RANK[key[0]], key)


def _copy(placement):
    return copy.deepcopy(placement)


__all__ = ["Incremental"]
