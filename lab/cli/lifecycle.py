"""The local lab's life: up, down (--purge), status."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ..runtime.client import Client
from ..terminal import escape, out
from .printing import print_appmesh_api, print_pods, table


def cmd_up(args) -> int:
    c = Client()
    t0 = time.time()
    dots = {"n": 0}

    def progress():
        dots["n"] += 1
        waiting = c.restoring
        if waiting and dots["n"] % 50 == 0:  # every 5 s: what it waits for, not dots alone
            out(("\n" if dots["n"] >= 10 else "") + "waiting for: " + "; ".join(waiting[:3])
                + (f" and {len(waiting) - 3} more" if len(waiting) > 3 else ""), file=sys.stderr)
        elif dots["n"] % 10 == 0:
            out(".", end="", flush=True, file=sys.stderr)
    info = c.up(timeout=args.timeout, progress=progress)
    if dots["n"] >= 10:
        out(file=sys.stderr)
    if info["already"]:
        out(f"the lab is already running (pid {info['pid']}, App Mesh API http://127.0.0.1:{info['appmesh_api_port']})")
    else:
        out(f"lab is up in {time.time() - t0:.1f}s: daemon pid {info['pid']}, App Mesh API "
            f"http://127.0.0.1:{info['appmesh_api_port']}, state in {c.paths.home}")
    for line in info.get("waiting", []):
        out(f"warning: {line}" + ("" if line.startswith("the proxy ") else "; see `appmesh-lab logs POD`"), file=sys.stderr)
    return 0


def cmd_down(args) -> int:
    c = Client()
    was = c.down()
    out("lab stopped" if was else "the lab was not running")
    if args.purge:
        removed, kept = c.purge()
        home = str(c.paths.home)
        if not removed and not kept:
            out(f"nothing to remove: {home} does not exist")
        elif home in removed or str(c.paths.home.resolve()) in removed:
            out(f"removed {home}")
        else:
            out(f"removed the lab's state from {home} ({len(removed)} {'entry' if len(removed) == 1 else 'entries'})")
        others = [k for k in kept if k not in (home, str(c.paths.home.resolve()))]
        if others:
            out(f"kept {len(others)} {'entry' if len(others) == 1 else 'entries'} the lab did not create: "
                + ", ".join(escape(Path(k).name) for k in others[:10]) + (", …" if len(others) > 10 else ""))
    return 0


def cmd_status(args) -> int:
    st = Client().call("GET", "/v1/status")
    if args.output == "json":
        out(json.dumps(st, indent=2, default=str))
        return 0
    d = st["daemon"]
    out(f"daemon     pid {d['pid']}, up {d['uptime_s']}s, state in {d['home']}")
    out(f"control    {st['endpoints']['control']}   (Unix socket, yours only: appmesh-lab talks to the daemon there)")
    print_appmesh_api(st)
    out(f"xds        {st['endpoints']['xds']}   (Unix socket: the lab's Envoys get their configuration there)")
    out(f"envoy      {st['envoy']}")
    for g in st["gateways"]:
        out(f"gateway    {g['node_id']}: " + ", ".join(f"listener {k} at {v}" for k, v in g["listeners"].items()))
    rows = [["PROXY", "CONNECTED", "VERSION", "ACKED", "NACK"]]
    for p in st["proxies"]:
        types = p.get("types", {})
        acked = all(t["acked_version"] == t["last_sent_version"] for t in types.values() if t["last_sent_version"])
        nack = next((t["nack"]["message"][:60] for t in types.values() if t.get("nack")), "")
        rows.append([p["node_id"], "yes" if p["connected"] else "no", p.get("snapshot_version") or "-",
                     "yes" if acked else "no", nack])
    out()
    table(rows)
    for p in st["proxies"]:
        if p.get("port_conflict"):
            out(f"warning: {p['port_conflict']['message']}")
    out()
    print_pods(st["pods"])
    return 0
