"""What the lab daemon's status says, read for its callers (the CLI, the local target, the
benchmarks): whether everything has converged, and where a virtual gateway listens."""
from __future__ import annotations

import time

from .client import Client, LabError


def wait_converged(c: Client, timeout: float) -> dict:
    """Wait until every pod runs and every proxy has ACKed its latest configuration."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        st = c.call("GET", "/v1/status")
        pods_ok = all(p["status"] == "Running" and all(k.get("ready", True) for k in p["containers"])
                      for p in st["pods"])
        # only proxies some pod runs can connect (a virtual node without pods has nobody to ACK)
        running = {p.get("node_id") for p in st["pods"]}
        proxies_ok = all(p["connected"] and all(t["acked_version"] == t["last_sent_version"]
                                                for t in p["types"].values() if t["last_sent_version"])
                         for p in st["proxies"] if p.get("snapshot_version") and p["node_id"] in running)
        if pods_ok and proxies_ok:
            return st
        last = st
        time.sleep(0.1)
    waiting = [f"pod {p['namespace']}/{p['name']} is {p['status']}" for p in last["pods"] if p["status"] != "Running"]
    waiting += [f"container {p['namespace']}/{p['name']}/{k['name']} runs but does not accept connections yet"
                for p in last["pods"] if p["status"] == "Running" for k in p["containers"] if not k.get("ready", True)]
    running = {p.get("node_id") for p in last["pods"]}
    waiting += [f"proxy {p['node_id']} has not ACKed version {p.get('snapshot_version')}" for p in last["proxies"]
                if p.get("snapshot_version") and p["node_id"] in running and not all(
                    t["acked_version"] == t["last_sent_version"] for t in p["types"].values() if t["last_sent_version"])]
    raise LabError(f"the lab did not converge within {timeout:.0f}s: " + "; ".join(waiting[:5])
                   + "\nsee `appmesh-lab doctor` and `appmesh-lab logs POD -c envoy`")


def gateway_address(c: Client, gateway: str | None = None) -> tuple[str, int]:
    """(host, port) of the first listener of the virtual gateway whose name starts with `gateway`
    (any gateway when None)."""
    st = c.call("GET", "/v1/status")
    gws = [g for g in st["gateways"] if gateway is None or g["node_id"].split("/")[-1].startswith(gateway)]
    if not gws:
        raise LabError("no virtual gateway is running; apply one (e.g. manifests/walkthrough/) first")
    url = next(iter(gws[0]["listeners"].values()))
    host, port = url.split("//")[1].split(":")
    return host, int(port)
