"""The second line of "one bad resource never takes traffic down": when a proxy NACKs a
configuration, find the resource responsible and leave only that one out.

Per proxy (node id) the daemon remembers the resources behind the configuration the proxy last
ACKed. When it NACKs a push (or the lab cannot even encode it), the suspects are the App Mesh
resources that differ from that ACKed set, minus the proxy's own resource and its mesh. They are
searched one kind at a time, dependents first, by leaving out: the proxy is sent the
configuration with some suspects as it last ACKed them (or without them, when new); an ACK means
a culprit is among those left out, a NACK that one is among the others (those left out stay
out until this search ends: they may hold a second one, which the next search finds), and the
search halves them until one is left. That one is rejected: until it changes, every proxy is configured with
it as the rejecting proxy last ACKed it (or without it), and its status is `<Kind>Active=False`,
reason ConfigRejected, with Envoy's message; what depends on it is not active either. Everything
else keeps flowing.

Dependents first: leaving out a virtual service also silences the routes that target it, so a
bad route would be blamed on its service; a gateway route is therefore suspected before the
service it targets. The price: a bad virtual service that only new routes reach is blamed on
those routes (they are left out and marked; traffic is the same).

A proxy that NACKs with no suspect left gets its own resource as it last ACKed it, and that
resource is rejected the same way, if it changed since; if nothing changed (a listener port in
use, say), no resource is at fault and none is marked: the proxy keeps its last good
configuration, and its NACK is what `status` and `doctor` show.

A NACK because a listener cannot bind its address (Envoy: "cannot bind '127.0.0.1:40080': Address
already in use") is never searched: the address is the host's, held by some other process, and
leaving resources out only produces configurations that fail the same way until the port happens
to be freed mid-search, when whatever was left out last would be blamed. Envoy rejects the whole
listener update, so the proxy keeps the listeners it last accepted (all of them: its other
listeners are not changed either); the daemon tells the user which port and proxy, and pushes
again when the port is free (lab/runtime/daemon.py, PortConflicts).
"""
from __future__ import annotations

import hashlib
import json
import re
import threading

SUSPECT_KINDS = ("GatewayRoute", "VirtualService", "VirtualRouter", "VirtualNode", "VirtualGateway", "Mesh")  # dependents first


def nack_reason(message: str, limit: int = 400) -> str:
    """Envoy's NACK detail, without the dump of the rejected resource it often starts with."""
    m = re.search(r"Proto constraint validation failed \((.*)\)\s*$", message, re.S)
    text = m.group(1) if m else message
    if not m and "goo.gle/debug" in text:  # "<reason>: <proto dump>": keep the reason
        text = text.split("goo.gle/debug", 1)[0].rstrip(": \n")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


_CANNOT_BIND = re.compile(r"(?:(?P<listener>[^\s:]+): )?cannot bind '(?P<address>[^']+)': (?P<why>[^\n]*)")


def bind_conflict(message: str) -> dict | None:
    """{"listener", "address", "port", "why"} when Envoy's NACK says a listener cannot bind its
    address because something else holds it; None for any other NACK."""
    m = _CANNOT_BIND.search(message or "")
    if m is None or "in use" not in m.group("why").lower():
        return None
    address = m.group("address")
    port = address.rsplit(":", 1)[-1]
    return {"listener": m.group("listener") or "", "address": address,
            "port": int(port) if port.isdigit() else None, "why": m.group("why").strip()}


def refers_to(world, r) -> dict:
    """key -> Resource of what `r` names directly: a route's target service, a service's provider,
    a router's target nodes."""
    spec = r.spec if isinstance(getattr(r, "spec", None), dict) else {}
    if world is None or not spec:
        return {}
    found = []
    if r.key[0] == "GatewayRoute":
        for kind in ("httpRoute", "http2Route", "grpcRoute"):
            vs = (((spec.get(kind) or {}).get("action") or {}).get("target") or {}).get("virtualService") or {}
            found.append(world.resolve("VirtualService", vs.get("virtualServiceRef"), vs.get("virtualServiceARN"), r))
    elif r.key[0] == "VirtualService":
        provider = spec.get("provider") or {}
        for kind, key in (("VirtualNode", "virtualNode"), ("VirtualRouter", "virtualRouter")):
            p = provider.get(key) or {}
            found.append(world.resolve(kind, p.get(f"{key}Ref"), p.get(f"{key}ARN"), r))
    elif r.key[0] == "VirtualRouter":
        for route in spec.get("routes") or []:
            body = next((route[k] for k in ("httpRoute", "http2Route", "grpcRoute", "tcpRoute") if k in route), {})
            for t in (body.get("action") or {}).get("weightedTargets") or []:
                found.append(world.resolve("VirtualNode", t.get("virtualNodeRef"), t.get("virtualNodeARN"), r))
    return {x.key: x for x in found if x is not None}


def same(a, b) -> bool:
    """The same resource content (the daemon makes a new object whenever a record's status changes)."""
    return a is b or (a is not None and b is not None and a.raw == b.raw)


def digest(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


class Isolation:
    def __init__(self):
        self._lock = threading.Lock()
        self._results: list = []  # (node id, version, ok, message) from the xDS callbacks
        self.acked: dict = {}  # node id -> {key: Resource} behind its last ACKed configuration (read-only,
        # shared between the proxies pushed in one pass)
        self.acked_config: dict = {}  # node id -> that configuration (Envoy resources)
        self.sent: dict = {}  # node id -> {"version", "resources", "config", "probe"}
        self.probes: dict = {}  # node id -> {"suspects": [key], "testing": [key], "answers": {digest: (ok, msg)}}
        self.rejected: dict = {}  # key -> {"resource", "message", "node"}
        self.current: dict = {}  # key -> the stored Resource (the world of the pass)
        self.world = None

    # -- from the xDS callbacks (any thread) ------------------------------------------------

    def record(self, node_id: str, version: str, ok: bool, message: str = "") -> None:
        with self._lock:
            self._results.append((node_id, version, ok, message))

    def pending(self) -> bool:
        with self._lock:
            return bool(self._results)

    def quiet(self) -> bool:
        """Nothing to search: the answers waiting are ACKs and no proxy is being searched."""
        with self._lock:
            return not self.probes and all(ok for _, _, ok, _ in self._results)

    def forget_node(self, nid: str) -> None:
        """A proxy that is gone (its resource deleted): nothing of it is kept."""
        for table in (self.acked, self.acked_config, self.sent, self.probes):
            table.pop(nid, None)

    def searching(self, nid: str) -> bool:
        """Whether this proxy's answer is still being acted on: a search for the resource it
        rejected is under way, or its NACK has not been taken in yet."""
        with self._lock:
            return nid in self.probes or any(n == nid and not ok for n, _, ok, _ in self._results)

    def acked_digest(self, nid: str) -> str | None:
        config = self.acked_config.get(nid)
        return None if config is None else digest(config)

    # -- in the reconcile pass ------------------------------------------------------------------

    def forget_changed(self, world) -> None:
        """A rejected resource gets another chance when it, or a resource it refers to (which may
        have been the real culprit: a route is suspected before its service), changed or went."""
        self.current, self.world = world.by_key, world
        for key, v in list(self.rejected.items()):
            if not same(world.by_key.get(key), v["resource"]) or any(
                    not same(world.by_key.get(k), r) for k, r in v.get("refers", {}).items()):
                del self.rejected[key]

    def effective(self, resources: list) -> list:
        """The resources to configure proxies with: each rejected one as the proxy that rejected it
        last ACKed it, or left out."""
        out = []
        for r in resources:
            if r.key in self.rejected:  # as the proxy that rejected it last ACKed it
                r = self.acked.get(self.rejected[r.key]["node"], {}).get(r.key)
            if r is not None:
                out.append(r)
        return out

    def settle(self, fixed) -> None:
        """Take in the proxies' answers. `fixed(node_id)` names the keys never suspected for it."""
        with self._lock:
            results, self._results = self._results, []
        for nid, version, ok, message in results:
            sent = self.sent.get(nid)
            if sent is None or sent["version"] != version or sent.get("answered"):
                continue
            sent["answered"] = True
            self.answer(nid, sent, ok, message, fixed)

    def answer(self, nid: str, sent: dict, ok: bool, message: str, fixed) -> None:
        probe = self.probes.get(nid)
        if probe is not None:
            probe["answers"][sent.get("digest") or digest(sent["config"])] = (ok, message)
        if ok:
            self.acked[nid] = sent["resources"]  # shared with other proxies' pushes: read, never changed
            self.acked_config[nid] = sent["config"]
            if probe is not None:
                probe["acked"] = sent.get("digest") or digest(sent["config"])
        elif bind_conflict(message):  # the host's port, not a resource: no search, nobody blamed (above)
            self.probes.pop(nid, None)
            return
        if probe is None or not sent.get("probe"):
            if ok:
                self.probes.pop(nid, None)
                return
            acked = self.acked.get(nid, {})
            skip = fixed(nid)
            changed = [k for k, r in sent["resources"].items()
                       if k[0] in SUSPECT_KINDS and not same(acked.get(k), r)]
            own = [k for k in changed if k in skip]
            groups = [sorted(k for k in changed if k[0] == kind and k not in skip) for kind in SUSPECT_KINDS]
            groups = [g for g in groups if g]
            if not groups:  # only the proxy's own resource changed: that one is at fault; nothing
                self._reject_own(nid, message, own)  # changed: not a resource's doing (a port in use)
                return
            self.probes[nid] = {"groups": groups[1:], "suspects": groups[0], "testing": groups[0], "verified": False,
                                "held": [], "own": own,
                                "answers": {digest(sent["config"]): (False, message)}, "message": message,
                                "acked": self.acked_digest(nid)}
            return
        # A probe push: the proxy got everything but `testing` and `held` (as it last ACKed them, or
        # without them). Known: leaving out `suspects` and `held` together fixes it.
        testing, suspects = probe["testing"], probe["suspects"]
        if ok:  # leaving `testing` out fixes it: a culprit is among them, the other suspects are fine
            if len(testing) == 1:
                return self._found(nid, testing[0], sent, probe)
            probe.update(suspects=list(testing), testing=testing[: len(testing) // 2], verified=True)
        elif not probe["verified"]:  # not this kind of resource: the next kind
            if not probe["groups"]:
                self._reject_own(nid, probe["message"], probe["own"])
                return
            group = probe["groups"].pop(0)
            probe.update(suspects=group, testing=group)
        else:  # a culprit is among the others; `testing` may hold one too: it stays out for now
            rest = [k for k in suspects if k not in testing]
            probe["held"] = probe["held"] + list(testing)
            if len(rest) == 1:
                return self._found(nid, rest[0], sent, probe)
            probe.update(suspects=rest, testing=rest[: len(rest) // 2])

    def _found(self, nid: str, key, sent: dict, probe: dict) -> None:
        current = self.current.get(key)
        self._reject(key, current, probe["message"], nid)
        self.probes.pop(nid, None)

    def _reject_own(self, nid: str, message: str, own: list) -> None:
        for k in own:
            if k[0] in ("VirtualGateway", "VirtualNode"):
                self._reject(k, self.current.get(k), message, nid)
        self.probes.pop(nid, None)

    def _reject(self, key, resource, message: str, nid: str) -> None:
        if resource is not None:
            self.rejected[key] = {"resource": resource, "message": nack_reason(message), "node": nid,
                                  "refers": refers_to(self.world, resource)}

    def probe_resources(self, nid: str, resources: list) -> list:
        """The resources of a probe push: those under test as the proxy last ACKed them (or left out)."""
        probe = self.probes[nid]
        hold = set(probe["testing"]) | set(probe["held"])
        acked = self.acked.get(nid, {})
        out = []
        for r in resources:
            if r.key in hold:
                r = acked.get(r.key)
            if r is not None:
                out.append(r)
        return out

    def conditions(self) -> dict:
        """key -> (the message of its ConfigRejected condition, whether an earlier version of it is in
        force), for every rejected resource."""
        out = {}
        for k, v in self.rejected.items():
            previous = k in self.acked.get(v["node"], {})
            if not v["node"]:
                why = "the lab could not translate it, so the proxies are configured without it: "
            elif previous:
                why = "Envoy rejected this version, so the proxies keep the version they last accepted: "
            else:
                why = "Envoy rejected it, so the proxies are configured without it: "
            out[k] = (why + v["message"], previous)
        return out

    # -- a resource the lab itself cannot translate (a bug of the lab: isolated all the same) --

    def find_offline(self, keys: list, fails) -> tuple | None:
        """The resource without which `fails(left out)` turns False (translation succeeds), searched
        like a proxy's NACK but without a proxy; None when leaving out whole kinds does not help."""
        for kind in SUSPECT_KINDS:
            suspects = sorted(k for k in keys if k[0] == kind)
            if not suspects or fails(set(suspects)):
                continue
            held: list = []
            while len(suspects) > 1:
                testing = suspects[: len(suspects) // 2]
                if not fails(set(testing) | set(held)):
                    suspects = testing
                else:
                    held += testing
                    suspects = suspects[len(testing):]
            return suspects[0]
        return None

    def reject_offline(self, key, message: str) -> None:
        if self.current.get(key) is not None:
            self.rejected[key] = {"resource": self.current[key], "message": message, "node": "",
                                  "refers": refers_to(self.world, self.current[key])}
