"""Status of Gateway API objects, as Gateway API defines it (kubernetes-sigs/gateway-api apis/v1):

  GatewayClass  conditions: Accepted (Accepted | Unsupported)
  Gateway       conditions: Accepted (Accepted | ListenersNotValid | Pending), Programmed (Programmed |
                Pending | Invalid); listeners[]: supportedKinds, attachedRoutes, conditions Accepted,
                ResolvedRefs, Programmed (and Conflicted when two listeners share a port)
  HTTPRoute,    parents[]: parentRef, controllerName, conditions Accepted and ResolvedRefs
  GRPCRoute

Programmed is True only once the Gateway's Envoy has ACKed the configuration made of it: the
caller says which Gateways that is. The reasons come from lab/model/gatewayapi_refs.py. No
timestamps here: the daemon keeps lastTransitionTime while a condition's status stays the same.
"""
from __future__ import annotations

from ..model import World
from ..model import gatewayapi_refs as gwrefs
from ..model.gatewayapi import CONTROLLER_NAME, GROUP
from ..model.resources import Resource

KINDS = ("GatewayClass", "Gateway", "HTTPRoute", "GRPCRoute")


def _c(type_: str, c: gwrefs.Cond, generation: int) -> dict:
    return {"type": type_, "status": c.status, "reason": c.reason, "message": c.message,
            "observedGeneration": generation}


def gateway_status(world: World, gw: Resource, generation: int, programmed: tuple | None,
                   exposed: dict | None = None) -> dict:
    """programmed: (ok, reason, message) from the daemon, None when the lab does not serve it."""
    accepted = gwrefs.gateway_cond(world, gw)
    if programmed is None or not accepted.ok:
        prog = gwrefs.Cond(False, "Pending", "waiting for the Gateway to be accepted" if not accepted.ok
                           else "no configuration made yet")
    else:
        prog = gwrefs.Cond(*programmed)
    listeners = []
    for lst in gw.spec.get("listeners") or []:
        acc, res = gwrefs.listener_accepted(gw, lst), gwrefs.listener_resolved(lst, world, gw)
        lprog = prog if acc.ok and res.ok else gwrefs.Cond(False, "Invalid", "the listener is not accepted: "
                                                          + (acc.message if not acc.ok else res.message))
        conds = [_c("Accepted", acc, generation), _c("ResolvedRefs", res, generation), _c("Programmed", lprog, generation)]
        conflict = gwrefs.listener_conflict(gw, lst)
        conds.append(_c("Conflicted", conflict or gwrefs.Cond(False, "NoConflicts", "no conflicts"), generation))
        kinds = [{"group": GROUP, "kind": k} for k in gwrefs._kinds_allowed(lst)]
        listeners.append({"name": lst.get("name"), "supportedKinds": kinds,
                          "attachedRoutes": len(gwrefs.attached_routes(world, gw, lst)) if accepted.ok else 0,
                          "conditions": conds})
    out = {"conditions": [_c("Accepted", accepted, generation), _c("Programmed", prog, generation)],
           "listeners": listeners}
    if accepted.ok:
        out["addresses"] = [{"type": "IPAddress", "value": "127.0.0.1"}]
    if exposed:  # the lab's own field, as for Services: where each listener is on this machine
        out["exposedPorts"] = [{"listener": lst.get("name"), "port": lst.get("port"), "exposed": exposed[lst.get("port")]}
                               for lst in gw.spec.get("listeners") or [] if lst.get("port") in exposed]
    return out


def route_status(world: World, route: Resource, generation: int) -> dict:
    parents = []
    for p in gwrefs.parents(world, route):
        if p.gateway is not None and not gwrefs.served_by_lab(world, p.gateway):
            continue  # another controller's Gateway: its status is not the lab's to write
        ref = {k: p.ref[k] for k in ("group", "kind", "namespace", "name", "sectionName", "port") if k in p.ref}
        parents.append({"parentRef": ref, "controllerName": CONTROLLER_NAME,
                        "conditions": [_c("Accepted", p.accepted, generation), _c("ResolvedRefs", p.resolved, generation)]})
    return {"parents": parents}


def class_status(gc: Resource, generation: int) -> dict:
    return {"conditions": [_c("Accepted", gwrefs.class_cond(gc), generation)]}


def status_of(world: World, r: Resource, generation: int, programmed=None, exposed=None) -> dict | None:
    if r.kind == "Gateway":
        return gateway_status(world, r, generation, programmed, exposed)
    if r.kind in ("HTTPRoute", "GRPCRoute"):
        return route_status(world, r, generation)
    if r.kind == "GatewayClass":
        return class_status(r, generation)
    return None


def with_times(new: dict, old: dict, now: str) -> dict:
    """lastTransitionTime on every condition of `new`: the old one's while the status is unchanged."""
    def merge(conds: list, old_conds: list) -> list:
        by_type = {c.get("type"): c for c in old_conds or []}
        out = []
        for c in conds:
            o = by_type.get(c["type"])
            out.append({**c, "lastTransitionTime": o["lastTransitionTime"] if o and o.get("status") == c["status"]
                        and o.get("lastTransitionTime") else now})
        return out
    out = dict(new)
    if "conditions" in new:
        out["conditions"] = merge(new["conditions"], (old or {}).get("conditions"))
    if "listeners" in new:
        olds = {x.get("name"): x for x in (old or {}).get("listeners") or []}
        out["listeners"] = [{**x, "conditions": merge(x["conditions"], (olds.get(x["name"]) or {}).get("conditions"))}
                            for x in new["listeners"]]
    if "parents" in new:
        def pkey(x):
            return tuple(sorted(x["parentRef"].items()))
        olds = {pkey(x): x for x in (old or {}).get("parents") or []}
        out["parents"] = [{**x, "conditions": merge(x["conditions"], (olds.get(pkey(x)) or {}).get("conditions"))}
                          for x in new["parents"]]
    return out
