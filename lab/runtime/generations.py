"""The App Mesh objects a configuration was made from, by generation, and what a reader of it
still waits for.

Every controller replica serves xDS from its own informers' cache, and a replica's informers can
lag the API server (and the leader, which writes `observedGeneration`) by a watch event or more.
So each replica reports, in its /status `last_pass.generations`, the generation of every App Mesh
object its published configuration was computed from; a proxy connected to that replica runs the
current objects once the replica's generations equal the API server's and the proxy ACKed the
replica's current version. `metadata.generation` moves with every spec change and when deletion
starts, not with status or finalizer writes, so the leader's own writes do not count as changes.
"""
from __future__ import annotations

from collections.abc import Iterable

CLUSTER_SCOPED = ("Mesh",)


def key(kind: str, obj: dict) -> str:
    """"VirtualNode/<namespace>/<name>", "Mesh/<name>"."""
    meta = obj.get("metadata") or {}
    return f"{kind}/{meta.get('name')}" if kind in CLUSTER_SCOPED else f"{kind}/{meta.get('namespace')}/{meta.get('name')}"


def generations(objects: Iterable[tuple[str, dict]]) -> dict[str, int]:
    """{key: metadata.generation} of (kind, object) pairs."""
    return {key(kind, o): (o.get("metadata") or {}).get("generation") for kind, o in objects}


def behind(seen: dict | None, current: dict[str, int], most: int = 3) -> list[str]:
    """What a replica that computed from `seen` has not seen of `current` (the API server's
    generations), one phrase each, at most `most` and a count of the rest; [] when it is current."""
    if seen is None:
        return ["it has published no configuration yet"]
    out = []
    for k, g in sorted(current.items()):
        have = seen.get(k)
        if have is None:
            out.append(f"{k} (generation {g}; it has not seen the object)")
        elif have != g:
            out.append(f"{k} generation {g} (it has {have})")
    out += [f"{k} deleted (it still has generation {seen[k]})" for k in sorted(set(seen) - set(current))]
    return out[:most] + ([f"{len(out) - most} more"] if len(out) > most else [])
