"""How the verbs print: tables, findings, pods, resources as rows or documents. Every name a user
or a manifest chose goes through lab/terminal.py's escaping."""
from __future__ import annotations

import json
import sys
import time

import yaml

from ..terminal import escape, out
from .kinds import APPMESH, CLUSTER_SCOPED


def print_findings(result, stream) -> None:
    by_file: dict = {}
    for p in result.problems:
        by_file.setdefault(p.file, []).append(p)
    for file, problems in by_file.items():
        out(f"{file}", file=stream)
        for p in problems:
            field = f"{p.path}: " if p.path else ""
            line = f"line {p.line}" if p.line else "file"
            out(f"  {line}: {p.severity}: {field}{p.message}", file=stream)
            if p.hint:
                out(f"      hint: {p.hint}", file=stream)


def print_daemon_problems(problems) -> None:
    from ..model.problems import Problem
    for p in problems:
        out(Problem(**p), file=sys.stderr)


def age(t: float) -> str:
    s = max(0, int(time.time() - t))
    return f"{s}s" if s < 120 else f"{s // 60}m" if s < 7200 else f"{s // 3600}h"


def table(rows: list[list[str]], stream=None) -> None:
    if not rows:
        return
    rows = [[escape(c) for c in r] for r in rows]  # one cell, one line: even a newline is shown escaped
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        out("   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip(), file=stream)


def condition(item: dict) -> dict:
    return next(iter(item.get("status", {}).get("conditions", [])), {})


def print_pods(pods, wide=False) -> None:
    rows = [["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS"] + (["ROLE", "PROXY"] if wide else [])]
    for p in pods:
        rows.append([p["namespace"], p["name"], p["ready"], p["status"], p["restarts"]]
                    + ([p["role"], p["proxy"] or "-"] if wide else []))
    table(rows)


def print_appmesh_api(st: dict) -> None:
    """How to point boto3 and the aws CLI at the App Mesh API: the lab's profile (lab/api/credentials.py)."""
    from pathlib import Path

    from ..api.credentials import load_profile
    p = load_profile(Path(st["daemon"]["home"]))
    out(f"appmesh    {st['endpoints']['appmesh_api']}   (App Mesh API; SigV4 with the lab's profile {p.name})")
    out(f"           export AWS_CONFIG_FILE={p.config_file} AWS_SHARED_CREDENTIALS_FILE={p.credentials_file}")
    out(f"           then: aws appmesh list-meshes --profile {p.name}   |   "
        f"boto3.Session(profile_name=\"{p.name}\").client(\"appmesh\")")


def dump(obj, fmt) -> None:
    if fmt == "json":
        out(json.dumps(obj if len(obj) != 1 else obj[0], indent=2, default=str))
    else:
        out(yaml.safe_dump(obj if len(obj) != 1 else obj[0], sort_keys=False), end="")


def header(kind, wide, all_ns):
    base = (["NAMESPACE"] if all_ns and kind not in CLUSTER_SCOPED else []) + ["NAME"]
    if kind in APPMESH:
        return base + ["ACTIVE", "REASON"] + (["MESSAGE", "ARN"] if wide else []) + ["AGE"]
    if kind == "Service":
        return base + ["TYPE", "PORT(S)", "EXTERNAL"] + ["AGE"]
    if kind == "Deployment":
        return base + ["REPLICAS"] + ["AGE"]
    if kind == "GatewayClass":
        return base + ["CONTROLLER", "ACCEPTED", "AGE"]
    if kind == "Gateway":
        return base + ["CLASS", "EXPOSED", "ACCEPTED", "PROGRAMMED"] + (["MESSAGE"] if wide else []) + ["AGE"]
    if kind in ("HTTPRoute", "GRPCRoute"):
        return base + ["HOSTNAMES", "PARENTS", "ACCEPTED", "RESOLVEDREFS"] + (["MESSAGE"] if wide else []) + ["AGE"]
    return base + ["LABELS", "AGE"]


def _cond_of(conds: list, type_: str) -> dict:
    return next((c for c in conds or [] if c.get("type") == type_), {})


def _gateway_api_row(kind, i, wide) -> list:
    st, spec = i["status"] or {}, i["doc"].get("spec", {})
    if kind == "GatewayClass":
        return [spec.get("controllerName", ""), _cond_of(st.get("conditions"), "Accepted").get("status", "Unknown")]
    if kind == "Gateway":
        acc, prog = _cond_of(st.get("conditions"), "Accepted"), _cond_of(st.get("conditions"), "Programmed")
        exposed = ",".join(f"{p['port']}->127.0.0.1:{p['exposed']}" for p in st.get("exposedPorts") or []) or "<none>"
        cells = [spec.get("gatewayClassName", ""), exposed, acc.get("status", "Unknown"),
                 prog.get("status", "Unknown") + (f" ({prog['reason']})" if prog.get("status") == "False" else "")]
        return cells + ([prog.get("message") or acc.get("message", "")] if wide else [])
    parents = st.get("parents") or []
    names = ",".join(f"{p['parentRef'].get('kind', 'Gateway')}/{p['parentRef'].get('name')}" for p in parents) or "<none>"

    def worst(type_):
        cs = [_cond_of(p["conditions"], type_) for p in parents]
        bad = next((c for c in cs if c.get("status") != "True"), None)
        return ("False (" + bad.get("reason", "?") + ")" if bad.get("status") == "False" else "Unknown") if bad else (
            "True" if cs else "Unknown")
    cells = [",".join(spec.get("hostnames") or []) or "*", names, worst("Accepted"), worst("ResolvedRefs")]
    msgs = "; ".join(c.get("message", "") for p in parents for c in p["conditions"] if c.get("status") != "True")
    return cells + ([msgs] if wide else [])


def row(kind, i, wide, all_ns):
    base = ([i["namespace"]] if all_ns and kind not in CLUSTER_SCOPED else []) + [i["name"]]
    if kind in APPMESH:
        cond = condition(i)
        arn = next((v for k, v in i["status"].items() if k.endswith("ARN")), "-")
        return base + [cond.get("status", "Unknown"), cond.get("reason", "-")] + \
            ([cond.get("message", ""), arn] if wide else []) + [age(i["created"])]
    if kind == "Service":
        spec = i["doc"].get("spec", {})
        ports = ",".join(f"{p['port']}/{p.get('protocol', 'TCP')}" for p in spec.get("ports", []))
        exposed = ",".join(f"127.0.0.1:{p['exposed']}" for p in i["status"].get("exposedPorts", [])) or "<none>"
        return base + [spec.get("type", "ClusterIP"), ports, exposed, age(i["created"])]
    if kind == "Deployment":
        return base + [str(i["doc"].get("spec", {}).get("replicas", 1)), age(i["created"])]
    if kind in ("GatewayClass", "Gateway", "HTTPRoute", "GRPCRoute"):
        return base + _gateway_api_row(kind, i, wide) + [age(i["created"])]
    labels = ",".join(f"{k}={v}" for k, v in (i["doc"].get("metadata", {}).get("labels") or {}).items())
    return base + [labels or "<none>", age(i["created"])]


def report(ok, problems) -> None:
    for line in ok:
        out(f"ok      {line}")
    for line in problems:
        out(f"PROBLEM {line}")
    out(f"{len(problems)} problem(s) found" if problems else "no problems found")
