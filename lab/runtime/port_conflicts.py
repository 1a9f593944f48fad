"""A proxy whose listener cannot bind its address: another process holds the port.

That is the host's problem, not a resource's (lab/runtime/isolation.py never searches for a
culprit then). Envoy rejects the whole listener update, so the proxy keeps the listeners it last
accepted, all of them (none, when it has just started): the lab does not split the update to
bring up the listeners that could bind, since the proxy would then serve a configuration the
user never asked for and the one listener would stay silently missing.

What the lab does instead: one Warning event (reason PortInUse) on the proxy's resource per
conflict (not one per NACK), naming the port, the proxy, and what to do; the conflict in
`/v1/status` (`appmesh-lab status`, `doctor`, `up`); and a new push of the same configuration
once the port looks free (checked with a bind like Envoy's, SO_REUSEADDR, at most once a second)
and no sooner than a back-off after the last NACK (1, 2, 4 ... up to 15 s), or after 30 s even if
the check says it is still held (the check may be wrong: another network namespace, say). A
rejected version is never sent again on its stream (lab/xds/server.py), so a re-push is a new
version; with the port held that is at most one NACK every 30 s, not a loop.
"""
from __future__ import annotations

import threading
import time

from .ports import holder_of, port_is_free

BACKOFF_MAX = 15.0  # seconds between a NACK and the next push, once the port looks free
FORCE_AFTER = 30.0  # a push even though the port looks held
CHECK_EVERY = 1.0


def looks_free(address: str) -> bool:
    """Whether Envoy could bind `address` ("host:port") now: a bind with SO_REUSEADDR, as Envoy's
    listeners do, released at once."""
    host, _, port = address.rpartition(":")
    try:
        return port_is_free(int(port), host.strip("[]"))
    except (OSError, ValueError):   # an address this host cannot bind at all: not free
        return False


def advice(nid: str, c: dict) -> str:
    port = c.get("port") or c["address"].rsplit(":", 1)[-1]
    return (f"the proxy {nid} cannot listen on {c['address']} (listener {c['listener'] or '?'}): another process "
            f"holds port {port}{' (' + c['holder'] + ')' if c.get('holder') else ''}: {c['why']}. Envoy rejected the whole listener update, so the proxy keeps the "
            f"listeners it last accepted (none, if it has just started); no resource is at fault. Stop what holds "
            f"the port (find it with: ss -ltnp 'sport = :{port}'), or give the listener another port; the lab "
            f"pushes the configuration again once the port is free")


class PortConflicts:
    def __init__(self, clock=time.monotonic, free=looks_free):
        self._lock = threading.Lock()
        self._clock, self._free = clock, free
        self.by_node: dict = {}  # node id -> {"address", "port", "listener", "why", "since", "nacks", ...}

    def nacked(self, nid: str, conflict: dict) -> bool:
        """A NACK for `conflict` (isolation.bind_conflict). True when it is news for the user (a new
        conflict, or another address)."""
        now = self._clock()
        with self._lock:
            c = self.by_node.get(nid)
            new = c is None or c["address"] != conflict["address"]
            if new:
                c = self.by_node[nid] = {**conflict, "since": time.time(), "nacks": 0,
                                         "holder": " ".join((holder_of(conflict["port"]) or "").split()) if conflict["port"] else ""}
            c["nacks"] += 1
            c["nacked_at"], c["checked_at"], c["repushed"] = now, now, False
            return new

    def acked(self, nid: str) -> dict | None:
        """The proxy took a configuration: the conflict is over (returned, when there was one)."""
        with self._lock:
            return self.by_node.pop(nid, None)

    def forget(self, nid: str) -> None:
        with self._lock:
            self.by_node.pop(nid, None)

    def due(self) -> list:
        """The proxies to push again now (each is marked, so it is pushed once per NACK)."""
        now, out = self._clock(), []
        with self._lock:
            items = [(nid, c) for nid, c in self.by_node.items() if not c["repushed"]]
        for nid, c in items:
            waited = now - c["nacked_at"]
            if waited < min(2.0 ** (c["nacks"] - 1), BACKOFF_MAX) or (
                    waited < FORCE_AFTER and now - c["checked_at"] < CHECK_EVERY):
                continue
            c["checked_at"] = now
            if waited >= FORCE_AFTER or self._free(c["address"]):
                c["repushed"] = True
                out.append(nid)
        return out

    def view(self, nid: str) -> dict | None:
        with self._lock:
            c = self.by_node.get(nid)
        if c is None:
            return None
        return {"address": c["address"], "port": c["port"], "listener": c["listener"], "since": c["since"],
                "nacks": c["nacks"], "message": advice(nid, c)}
