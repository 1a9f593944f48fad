"""Verbs on the lab's resources, shaped like kubectl's: apply, delete, get, describe, logs, wait."""
from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from urllib.parse import quote

import yaml

from ..runtime.client import Client, LabError
from ..runtime.status import wait_converged
from ..terminal import escape, out
from .kinds import APPMESH, CLUSTER_SCOPED, kind_of
from .printing import age, condition, dump, header, print_daemon_problems, print_pods, row, table


def read_manifests(paths, recursive=False):
    from ..files import read_texts
    texts, problems = read_texts(paths, recursive)
    if problems:
        for p in problems:
            out(p, file=sys.stderr)
        raise LabError("cannot read the manifests above")
    return texts


def cmd_apply(args) -> int:
    from ..files import folder_groups
    c = Client()
    texts = read_manifests(args.filename, args.recursive)
    # like kubectl apply -R: folder by folder, parents first
    batches = [own for _, own, _ in folder_groups(texts)] if args.recursive else [texts]
    results, versions = [], {}
    for batch in batches:
        answer = c.call("POST", "/v1/apply", {"texts": batch, "dry_run": args.dry_run}, ok=(200, 422))
        versions.update(answer.get("versions") or {})
        print_daemon_problems(answer.get("problems", []))
        if answer.get("rejected"):
            out("apply rejected: nothing was changed" + (" by this folder" if len(batches) > 1 else ""),
                file=sys.stderr)
            return 1
        if "results" not in answer:
            raise LabError(f"the lab daemon failed to apply: {answer.get('error', answer)}")
        results += answer["results"]
    if not results:   # a dry run, or nothing to apply: like kubectl, no objects at all is an error,
        from ..model import validate_texts   # and kinds the lab passes over are said
        checked = validate_texts(texts)
    if not results and not checked.resources:
        skipped = checked.skipped
        if not skipped:
            raise LabError(f"no objects passed to apply: {', '.join(args.filename)} holds no manifest "
                           "(.yaml/.yml files with documents" + ("" if args.recursive else "; -R reads subfolders") + ")")
        out("nothing applied: the local lab passes over "
            + ", ".join(f"{n} {k}" for k, n in sorted(skipped.items())) + " (kubectl applies them to a cluster)")
    for r in results:
        ref = f"{r['kind'].lower()}/{escape(r['name'])}"
        out(f"{ref} {r['action']}" + (f" (namespace {escape(r['namespace'])})" if r["namespace"] else ""))
    if args.dry_run:
        out("(dry run: nothing was changed)")
    elif args.wait:  # until every proxy has ACKed the version this apply made, or a newer one
        st = wait_converged(c, args.timeout, versions if versions else None)
        for p in st["proxies"]:  # not waited for: said
            if p.get("port_conflict"):
                out(f"warning: {p['port_conflict']['message']}", file=sys.stderr)
        return _report_config_rejected(c, results)
    return 0


def _report_config_rejected(c: Client, results: list) -> int:
    """1, naming each, when a proxy rejected a resource of this apply (it is left out)."""
    applied = {(r["kind"], r["namespace"], r["name"]) for r in results}
    code = 0
    for kind in sorted({k for k, _, _ in applied if k in APPMESH}):
        for i in c.call("GET", f"/v1/resources?kind={kind}")["items"]:
            cond = condition(i)
            if (kind, i["namespace"], i["name"]) in applied and cond and cond.get("reason") == "ConfigRejected":
                out(f"{kind.lower()}/{escape(i['name'])}: {escape(cond.get('message', ''))}", file=sys.stderr)
                code = 1
    return code


def cmd_delete(args) -> int:
    c = Client()
    keys = []
    if args.filename:
        from ..model import validate_texts
        result = validate_texts(read_manifests(args.filename))
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
        if r["action"] == "not found" and not args.filename:
            code = 1
            hint = elsewhere(c, [r["kind"]], r["name"], args.namespace)
            if hint:
                out(f"  not in namespace {escape(args.namespace)}{hint}", file=sys.stderr)
    if args.wait and any(r["action"] != "not found" for r in answer["results"]):
        # until the proxies that remain have ACKed a configuration without what was deleted
        wait_converged(c, args.timeout, answer.get("versions"), pods=False)
    return code


def items_of(c: Client, kind: str, namespace, name=None):
    q = f"/v1/resources?kind={kind}" + (f"&namespace={quote(namespace, safe='')}"
                                         if namespace is not None and kind not in CLUSTER_SCOPED else "")
    items = c.call("GET", q)["items"]
    return [i for i in items if name is None or i["name"] == name]


def elsewhere(c: Client, kinds: list, name, namespace) -> str:
    """For a name not found in `namespace`: where it is instead, as a hint ("" when nowhere)."""
    if not name or namespace is None:
        return ""
    found = sorted({i["namespace"] for k in kinds if k not in CLUSTER_SCOPED and k != "Pod"
                    for i in items_of(c, k, None, name)} - {namespace})
    if not found:
        return ""
    return f"; {escape(name)} is in namespace {escape(', '.join(found))}: add -n {escape(found[0])}"


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
                dump(pods, args.output)
            elif pods:
                print_pods(pods, wide=args.output == "wide")
            continue
        items = items_of(c, kind, ns, args.name)
        found_any |= bool(items)
        if args.output in ("json", "yaml"):
            dump([dict(i["doc"], status=i["status"]) for i in items], args.output)
            continue
        if not items:
            continue
        if len(kind_of(args.kind)) > 1:
            out(f"# {kind}")
        rows = [header(kind, args.output == "wide", ns is None)]
        rows += [row(kind, i, args.output == "wide", ns is None) for i in items]
        table(rows)
    if not found_any:
        where = "" if ns is None else f" in namespace {ns}"
        out(f"No resources found{where}{elsewhere(c, kind_of(args.kind), args.name, ns)}.", file=sys.stderr)
        return 1 if args.name else 0
    return 0


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
        for i in items_of(c, kind, args.namespace, args.name):
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
                if k in ("listeners", "parents") and isinstance(v, list):  # Gateway API
                    _describe_nested(k, v)
                elif k != "conditions":
                    out(f"  {k}: {v}")
            _events(c, kind, i["namespace"], i["name"])
            out()
    if code:
        out(f"no {args.kind} named {args.name!r}" + (f" in namespace {args.namespace}" if args.namespace else "")
            + elsewhere(c, kind_of(args.kind), args.name, args.namespace), file=sys.stderr)
    return code


def _describe_nested(key: str, items: list) -> None:
    """A Gateway's listeners or a route's parents, each with its conditions."""
    out(f"  {key[0].upper() + key[1:]}:")
    for x in items:
        if key == "listeners":
            out(f"    Listener {escape(str(x.get('name')))}: attachedRoutes={x.get('attachedRoutes')}")
        else:
            ref = x.get("parentRef", {})
            out(f"    Parent {ref.get('kind', 'Gateway')}/{escape(str(ref.get('name')))}"
                + (f" sectionName={escape(str(ref['sectionName']))}" if ref.get("sectionName") else ""))
        for cond in x.get("conditions", []):
            out(f"      Condition {cond['type']}={cond['status']} reason={cond.get('reason')}: "
                f"{escape(cond.get('message', ''))}")


def _events(c, kind, ns, name) -> None:
    events = c.call("GET", f"/v1/events?kind={kind}&namespace={quote(ns, safe='')}&name={quote(name, safe='')}")["events"]
    out("Events:" + ("  <none>" if not events else ""))
    rows = [["TYPE", "REASON", "AGE", "MESSAGE"]] + [[e["type"], e["reason"], age(e["time"]), e["message"]]
                                                     for e in events]
    if events:
        table(rows)


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
            items = items_of(c, kind, args.namespace, name or None)
            if not items:
                where = "" if kind in CLUSTER_SCOPED else (f" in namespace {escape(args.namespace)}"
                                                           + elsewhere(c, [kind], name, args.namespace))
                pending.append(f"{kind_s}/{name or '*'} (not found{where})")
            for i in items:
                cond = next((x for x in i["status"].get("conditions", []) if x["type"] == cond_type), None)
                if not cond or cond["status"] != want:
                    pending.append(f"{kind.lower()}/{i['name']} ({cond['reason'] + ': ' + cond['message'] if cond else 'no condition yet'})")
        if not pending:
            out(f"condition met: {cond_type}={want} for {args.target}")
            return 0
        if time.time() > deadline:
            out(f"timed out after {timeout:g}s waiting for {cond_type}={want} on: " + "; ".join(pending), file=sys.stderr)
            return 1
        time.sleep(0.2)


def _seconds(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)?", text)
    if not m:
        raise LabError(f"cannot read the duration {text!r}; write e.g. 30s or 2m")
    n = float(m.group(1))
    return n / 1000 if m.group(2) == "ms" else n * 60 if m.group(2) == "m" else n
