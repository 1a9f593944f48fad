"""What the lab daemon's status says, read for its callers (the CLI, the local target, the
benchmarks): whether everything has converged, and where a virtual gateway listens."""
from __future__ import annotations

import time

from .client import Client, LabError


def _order(version: str | None):
    """The daemon's versions are "<daemon start>-<push counter>": comparable as a pair."""
    try:
        started, n = str(version).rsplit("-", 1)
        return int(started), int(n)
    except ValueError:
        return None


def _at_least(version: str | None, wanted: str) -> bool:
    have, want = _order(version), _order(wanted)
    return version == wanted if have is None or want is None else have >= want


def proxy_waiting(p: dict, wanted: str | None) -> str | None:
    """Why proxy status `p` (an item of /v1/status proxies) does not run configuration version
    `wanted` or a newer one yet; None when it does. A proxy runs a version once it has ACKed every
    resource type of that push on its current connection (a restarted Envoy ACKs anew), and the
    daemon has written the resources' status that follows from that ACK."""
    push = p.get("push") or {}
    version = push.get("version") or p.get("snapshot_version")
    if not version:
        return None   # nothing to run
    if p.get("searching"):
        return f"the control plane is finding the resource proxy {p['node_id']} rejected"
    if not p.get("connected"):
        return f"proxy {p['node_id']} is not connected to the control plane"
    if wanted and not _at_least(version, wanted):
        return f"proxy {p['node_id']} has not been sent version {wanted} yet"
    types = p.get("types") or {}
    names = push.get("types") or [t for t, s in types.items() if s.get("last_sent_version")]
    late = [t for t in names if (types.get(t) or {}).get("acked_version") != version]
    if late:
        return f"proxy {p['node_id']} has not ACKed version {version} ({', '.join(late)})"
    if push.get("settled") is False and push.get("version") == version:
        # the daemon's resources still show this push as Pending: a `get` now would not say Active
        return f"the status of what proxy {p['node_id']} ACKed (version {version}) is not written yet"
    return None


def proxy_rejected(p: dict) -> str | None:
    """The proxy's NACK of its current version, as a sentence; None when it has none, or while
    the control plane is finding the resource at fault (it then pushes a version without it)."""
    if p.get("searching"):
        return None
    version = (p.get("push") or {}).get("version") or p.get("snapshot_version")
    for t, s in (p.get("types") or {}).items():
        nack = s.get("nack")
        if nack and nack.get("version") == version:
            return f"proxy {p['node_id']} rejected version {version} ({t}): {nack.get('message', '')[:300]}"
    return None


def wait_converged(c: Client, timeout: float, versions: dict | None = None, pods: bool = True) -> dict:
    """Wait until every pod runs (unless pods=False) and every proxy a pod runs has ACKed the
    configuration version in `versions` (node id -> version, what apply and delete answer) or a
    newer one, so that a request sent next is served with the change; without `versions`, the
    version each proxy is given now. Fails at once when a proxy rejects (NACKs) that version. A
    proxy whose listener port another process holds (its `port_conflict`) is not waited for: it
    keeps its last good listeners until the port is free (lab/runtime/port_conflicts.py)."""
    deadline = time.time() + timeout
    st = c.call("GET", "/v1/status")
    wanted = dict(versions) if versions is not None else {
        p["node_id"]: (p.get("push") or {}).get("version") or p.get("snapshot_version") for p in st["proxies"]}
    while True:
        waiting = []
        if pods:
            waiting += [f"pod {p['namespace']}/{p['name']} is {p['status']}" for p in st["pods"]
                        if p["status"] != "Running"]
            waiting += [f"container {p['namespace']}/{p['name']}/{k['name']} runs but does not accept connections yet"
                        for p in st["pods"] if p["status"] == "Running" for k in p["containers"]
                        if not k.get("ready", True)]
        # only proxies some pod runs can connect (a virtual node without pods has nobody to ACK)
        running = {p.get("node_id") for p in st["pods"]}
        for p in st["proxies"]:
            if p["node_id"] not in running or p.get("port_conflict"):
                continue  # a port another process holds: no waiting frees it (said by `status`, `doctor`, `up`)
            why = proxy_waiting(p, wanted.get(p["node_id"]))
            if why:
                rejected = proxy_rejected(p)
                if rejected:
                    raise LabError(rejected + "\nsee `appmesh-lab describe` of its resource and "
                                   "`appmesh-lab logs POD -c envoy`")
                waiting.append(why)
        if not waiting:
            return st
        if time.time() >= deadline:
            raise LabError(f"the lab did not converge within {timeout:.0f}s: " + "; ".join(waiting[:5])
                           + "\nsee `appmesh-lab doctor` and `appmesh-lab logs POD -c envoy`")
        time.sleep(0.05)
        st = c.call("GET", "/v1/status")


def _names_gateway(node_id: str, word: str) -> bool:
    """`word` names the gateway: a prefix of its name, or with its kind in front (vg/NAME for a
    virtual gateway, gateway/NAME for a Gateway API Gateway, when both have one name)."""
    kind, _, prefix = word.rpartition("/")
    name, node_kind = node_id.split("/")[-1], node_id.split("/")[-2] if node_id.count("/") >= 3 else ""
    if kind and {"vg": "virtualGateway", "virtualgateway": "virtualGateway", "gateway": "gateway",
                 "gtw": "gateway"}.get(kind.lower()) != node_kind:
        return False
    return name.startswith(prefix)


def gateway_address(c: Client, gateway: str | None = None, listener: int | None = None) -> tuple[str, int]:
    """(host, port) of the listener on port `listener` (default: the first listener) of the
    virtual gateway whose name starts with `gateway` (any gateway when None)."""
    st = c.call("GET", "/v1/status")
    gws = [g for g in st["gateways"] if gateway is None or _names_gateway(g["node_id"], gateway)]
    if not gws:
        raise LabError("no virtual gateway is running; apply one (e.g. manifests/walkthrough/) first")
    if listener is None:
        url = next(iter(gws[0]["listeners"].values()))
    elif str(listener) in gws[0]["listeners"]:
        url = gws[0]["listeners"][str(listener)]
    else:
        raise LabError(f"virtual gateway {gws[0]['node_id'].split('/')[-1]} has no listener on port {listener} "
                       f"(its listeners: {', '.join(gws[0]['listeners'])})")
    host, port = url.split("//")[1].split(":")
    return host, int(port)
