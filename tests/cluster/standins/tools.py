"""The stand-in `kubectl`, `helm`, `kind`, `eksctl` and `docker` (python -m tests.cluster.standins.tools TOOL ARGS).

Each verb takes exactly the flags the real tool takes for it (the subset the kit uses); anything
else is the real tool's kind of error and exit 1, so a typo in a lesson or a target fails here as
it would on a cluster. Every object `kubectl apply` receives is checked before it reaches the
stand-in API: Kubernetes kinds against the `kubernetes` client's models, App Mesh kinds against
the CRDs' openAPIV3Schema (then the kit's validator, the chart's validating webhook, judges them
in the API). Every call is appended to $STANDIN_LOG (one JSON line: the tool, argv, exit code).
"""
from __future__ import annotations

import base64
import json
import os
import re
import shlex
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
API = os.environ.get("STANDIN_API", "")


class Fail(Exception):
    def __init__(self, message: str, code: int = 1, out: str = ""):
        super().__init__(message)
        self.code, self.out = code, out


def call(method: str, path: str, body=None):
    req = urllib.request.Request(API + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            data = r.read()
            return json.loads(data) if r.headers.get("Content-Type") == "application/json" else data.decode()
    except urllib.error.HTTPError as exc:
        data = exc.read()
        try:
            msg = json.loads(data).get("message")
        except ValueError:
            msg = data.decode(errors="replace")
        raise Fail(f"Error from server ({exc.reason}): {msg}") from exc
    except OSError as exc:
        raise Fail(f"The connection to the server {API} was refused - did you specify the right host or port? "
                   f"({exc})") from exc


def parse(args: list[str], flags: dict, positional: tuple = (0, 99), what: str = "") -> tuple[list, dict]:
    """Strict flag parsing: flags maps each accepted flag (and its aliases, "-n|--namespace") to
    True (takes a value) or False (a switch). --flag=value works for flags with values."""
    names = {}
    for spec, takes in flags.items():
        for n in spec.split("|"):
            names[n] = (spec.split("|")[-1], takes)
    pos, opts = [], {}
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            opts["--"] = args[i + 1:]
            break
        if a.startswith("-") and a != "-":
            key, eq, val = a.partition("=")
            if key not in names:
                raise Fail(f"error: unknown flag: {key}\nSee '{what} --help' for usage.")
            canon, takes = names[key]
            if takes:
                if not eq:
                    i += 1
                    if i >= len(args):
                        raise Fail(f"error: flag needs an argument: {key}")
                    val = args[i]
                opts.setdefault(canon, []).append(val)
            else:
                if eq and val not in ("true", "false"):
                    raise Fail(f"error: invalid argument {val!r} for {key}")
                opts[canon] = val != "false"
            i += 1
            continue
        pos.append(a)
        i += 1
    lo, hi = positional
    if not lo <= len(pos) <= hi:
        raise Fail(f"error: {what}: expected {lo}-{hi} arguments, got {len(pos)}: {pos}")
    return pos, opts


def one(opts: dict, key: str, default=None):
    v = opts.get(key)
    if v is None:
        return default
    if len(v) > 1:
        raise Fail(f"error: {key} given {len(v)} times")
    return v[0]


GLOBAL = {"-n|--namespace": True, "--context": True, "--kubeconfig": True}


# ---- checking objects ------------------------------------------------------------------------

def _crd_schemas() -> dict:
    out = {}
    for f in sorted((ROOT / "manifests" / "crds").glob("*.yaml")):
        crd = yaml.safe_load(f.read_text())
        v = next(v for v in crd["spec"]["versions"] if v["name"] == "v1beta2")
        out[crd["spec"]["names"]["kind"]] = v["schema"]["openAPIV3Schema"]
    return out


def _strip_k8s(schema):
    """openAPIV3Schema -> JSON Schema (drop x-kubernetes-* keys; int-or-string as either)."""
    if isinstance(schema, list):
        return [_strip_k8s(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for k, v in schema.items():
        if k.startswith("x-kubernetes-"):
            continue
        out[k] = _strip_k8s(v)
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False  # fieldValidation=Strict (kubectl's default): unknown fields are errors
    return out


def check_object(obj, source: str) -> list[str]:
    if not isinstance(obj, dict):
        return [f"error validating \"{source}\": the document is not an object"]
    av, kind = obj.get("apiVersion"), obj.get("kind")
    meta = obj.get("metadata") or {}
    if not av or not kind:
        return [f'error validating data: [apiVersion not set, kind not set] in "{source}"']
    if not meta.get("name"):
        return [f'error when retrieving current configuration of "{source}": resource name may not be empty']
    if av == "appmesh.k8s.aws/v1beta2":
        import jsonschema
        schemas = _crd_schemas()
        if kind not in schemas:
            return [f'error: resource mapping not found for name: "{meta["name"]}" namespace: "" from "{source}": '
                    f'no matches for kind "{kind}" in version "{av}"']
        schema = _strip_k8s(schemas[kind])
        body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata", "status")}
        schema = {**schema, "properties": {k: v for k, v in schema.get("properties", {}).items()
                                           if k not in ("apiVersion", "kind", "metadata", "status")}}
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(body), key=lambda e: list(e.path))
        return [f'The {kind} "{meta["name"]}" is invalid: {".".join(map(str, e.path)) or "(root)"}: {e.message}'
                for e in errors]
    from tests.controller.k8s_schema import MODELS, problems
    if (av, kind) not in MODELS:
        return [f'error: resource mapping not found for name: "{meta["name"]}" from "{source}": no matches for kind '
                f'"{kind}" in version "{av}" (the stand-in knows {", ".join(sorted(k for _, k in MODELS))})']
    return [f"error validating \"{source}\": {p}" for p in problems(obj)]


def read_manifests(paths: list[str], stdin: str | None, recursive: bool) -> list[tuple[str, object]]:
    docs = []
    for path in paths:
        if path == "-":
            texts = [("STDIN", stdin or "")]
        else:
            p = Path(path)
            if not p.exists():
                raise Fail(f'error: the path "{path}" does not exist')
            if p.is_dir():
                files = sorted(f for f in (p.rglob("*") if recursive else p.iterdir())
                               if f.suffix in (".yaml", ".yml", ".json"))
            else:
                files = [p]
            texts = [(str(f), f.read_text()) for f in files]
        for name, text in texts:
            try:
                for d in yaml.safe_load_all(text):
                    if d is not None:
                        docs.append((name, d))
            except yaml.YAMLError as exc:
                raise Fail(f'error: error parsing {name}: {exc}') from exc
    return docs


# ---- kubectl ---------------------------------------------------------------------------------

SHORT = {"deploy": "deployment", "deployments": "deployment", "svc": "service", "services": "service",
         "po": "pod", "pods": "pod", "ns": "namespace", "namespaces": "namespace", "no": "node", "nodes": "node",
         "crd": "crd", "crds": "crd", "customresourcedefinitions": "crd", "secrets": "secret",
         "vn": "virtualnode", "vs": "virtualservice", "vr": "virtualrouter", "vg": "virtualgateway",
         "gr": "gatewayroute", "meshes": "mesh"}
KINDS = {"deployment": "Deployment", "service": "Service", "pod": "Pod", "namespace": "Namespace", "node": "Node",
         "secret": "Secret", "mesh": "Mesh", "virtualnode": "VirtualNode", "virtualservice": "VirtualService",
         "virtualrouter": "VirtualRouter", "virtualgateway": "VirtualGateway", "gatewayroute": "GatewayRoute"}
PATHS = {"Deployment": "/apis/apps/v1/{ns}deployments", "Service": "/api/v1/{ns}services", "Pod": "/api/v1/{ns}pods",
         "Namespace": "/api/v1/namespaces", "Node": "/api/v1/nodes", "Secret": "/api/v1/{ns}secrets",
         **{k: f"/apis/appmesh.k8s.aws/v1beta2/{{ns}}{k.lower()}s" for k in
            ("VirtualNode", "VirtualService", "VirtualRouter", "VirtualGateway", "GatewayRoute")},
         "Mesh": "/apis/appmesh.k8s.aws/v1beta2/meshes"}


def kind_of(word: str) -> str:
    w = word.lower().split(".")[0]
    w = SHORT.get(w, w[:-1] if w.endswith("s") and w[:-1] in KINDS else w)
    if w == "crd":
        return "CRD"
    if w not in KINDS:
        raise Fail(f'error: the server doesn\'t have a resource type "{word}"')
    return KINDS[w]


def list_objects(kind: str, ns: str | None) -> list[dict]:
    path = PATHS[kind].format(ns=f"namespaces/{ns}/" if ns and "{ns}" in PATHS[kind] else "")
    return call("GET", path)["items"]


def kubectl(args: list[str], stdin: str | None) -> str:
    if not args:
        raise Fail("kubectl controls the Kubernetes cluster manager.\nUse \"kubectl <command> --help\"")
    verb, rest = args[0], args[1:]
    # global flags may come before the verb (kubectl -n NS get pods)
    pre = []
    while verb.startswith("-"):
        pre.append(verb)
        if "=" not in verb and verb in ("-n", "--namespace", "--context", "--kubeconfig"):
            pre.append(rest[0])
            rest = rest[1:]
        verb, rest = rest[0], rest[1:]
    rest = pre + rest
    if verb == "config":
        pos, _ = parse(rest, {}, (1, 2), "kubectl config")
        if pos[0] == "use-context" and len(pos) == 2:
            return use_context(pos[1])
        if pos == ["current-context"]:
            return current_context() + "\n"
        raise Fail(f"error: unknown command \"{' '.join(pos)}\" for \"kubectl config\"")
    if verb == "version":
        _, opts = parse(rest, {"--client": False, "-o|--output": True}, (0, 0), "kubectl version")
        v = {"clientVersion": {"gitVersion": "v1.32.4-standin"}}
        if not opts.get("--client"):
            v["serverVersion"] = call("GET", "/version")
        return json.dumps(v) + "\n" if one(opts, "--output") == "json" else \
            "".join(f"{k}: {x['gitVersion']}\n" for k, x in v.items())
    if verb == "apply":
        return apply(rest, stdin)
    if verb == "delete":
        return delete(rest, stdin)
    if verb == "get":
        return get(rest)
    if verb == "logs":
        pos, opts = parse(rest, {**GLOBAL, "-c|--container": True, "--tail": True}, (1, 1), "kubectl logs")
        ns = one(opts, "--namespace", "default")
        name = pos[0]
        if name.startswith(("deploy/", "deployment/")):
            dep = name.split("/", 1)[1]
            if ns == "appmesh-system" and dep == "appmesh-lab-controller":  # the lab daemon is the controller here
                log = Path(os.environ["APPMESH_LAB_HOME"]) / "daemon.log"
                lines = log.read_text(errors="replace").splitlines() if log.exists() else []
                tail = int(one(opts, "--tail", "0"))
                return "\n".join(lines[-tail:] if tail else lines) + "\n"
            pods = [p for p in list_objects("Pod", ns) if p["metadata"]["name"].startswith(dep + "-")]
            if not pods:
                raise Fail(f'error: no pods of deployment "{dep}" in namespace "{ns}"')
            name = pods[0]["metadata"]["name"]
        q = []
        if one(opts, "--container"):
            q.append(f"container={one(opts, '--container')}")
        if one(opts, "--tail"):
            q.append(f"tailLines={int(one(opts, '--tail'))}")
        return call("GET", f"/api/v1/namespaces/{ns}/pods/{name}/log" + ("?" + "&".join(q) if q else ""))
    if verb == "patch":
        pos, opts = parse(rest, {**GLOBAL, "--type": True, "-p|--patch": True}, (2, 2), "kubectl patch")
        if kind_of(pos[0]) != "Service" or one(opts, "--type") != "json":
            raise Fail("the stand-in patches only a Service's nodePort with --type json")
        patch = json.loads(one(opts, "--patch"))
        ns = one(opts, "--namespace", "default")
        for op in patch:
            m = re.fullmatch(r"/spec/ports/(\d+)/nodePort", str(op.get("path")))
            if op.get("op") != "replace" or not m or not 30000 <= int(op.get("value", 0)) <= 32767:
                raise Fail(f'The Service "{pos[1]}" is invalid: {op}: the stand-in takes replace '
                           "/spec/ports/<index>/nodePort with a value in 30000-32767")
            call("POST", "/standin/nodeport", {"namespace": ns, "name": pos[1], "nodePort": int(op["value"]),
                                                "index": int(m[1])})
        return f"service/{pos[1]} patched\n"
    if verb == "exec":
        pos, opts = parse(rest, {**GLOBAL, "-c|--container": True, "-i|--stdin": False, "-t|--tty": False},
                          (1, 1), "kubectl exec")
        cmd = opts.get("--")
        if cmd != ["/bin/sh", "-c", "kill -TERM 1"]:
            raise Fail(f"the stand-in runs no command in a container but `/bin/sh -c 'kill -TERM 1'` (got {cmd})")
        out = call("POST", "/standin/kill", {"namespace": one(opts, "--namespace", "default"), "pod": pos[0],
                                              "container": one(opts, "--container")})
        if not out.get("killed"):
            raise Fail(f"error: unable to upgrade connection: container not found ({out.get('error')})")
        return ""
    if verb == "create":
        return create(rest)
    if verb == "rollout":
        if rest[len(pre):len(pre) + 1] == ["restart"]:
            return rollout_restart(pre + rest[len(pre) + 1:])
        pos, opts = parse(rest, {**GLOBAL, "--timeout": True}, (2, 2), "kubectl rollout")
        if pos[0] != "status":
            raise Fail(f"the stand-in knows rollout status and restart only (got {pos[0]})")
        name = pos[1].split("/", 1)[-1]
        # as kubectl: watch until every replica is updated and ready and no old one is left, or --timeout
        m = re.fullmatch(r"(\d+)(s|m|h)?", one(opts, "--timeout", "0s"))
        if not m:
            raise Fail(f'error: invalid argument "{one(opts, "--timeout")}" for "--timeout" flag: time: invalid duration')
        deadline = time.monotonic() + int(m[1]) * {"s": 1, "m": 60, "h": 3600, None: 1}[m[2]]
        while True:
            d = call("GET", f"/apis/apps/v1/namespaces/{one(opts, '--namespace', 'default')}/deployments/{name}")
            st, want = d.get("status") or {}, (d.get("spec") or {}).get("replicas", 1)
            if st.get("readyReplicas", 0) >= want and st.get("replicas", 0) <= want:
                return f'deployment "{name}" successfully rolled out\n'
            if time.monotonic() > deadline:
                raise Fail(f"error: timed out waiting for the condition on deployments/{name}")
            time.sleep(0.5)
    raise Fail(f'error: unknown command "{verb}" for "kubectl" (the stand-in knows config, version, apply, delete, '
               "get, logs, patch, exec, create, rollout status|restart)")


RESTARTABLE = {"deployment": "deployments", "deploy": "deployments", "deployments": "deployments",
               "daemonset": "daemonsets", "ds": "daemonsets", "daemonsets": "daemonsets",
               "statefulset": "statefulsets", "sts": "statefulsets", "statefulsets": "statefulsets"}


def rollout_restart(rest: list[str]) -> str:
    """`kubectl rollout restart (TYPE NAME | TYPE/NAME)...`: as kubectl does, a patch of each pod
    template's annotation kubectl.kubernetes.io/restartedAt, so the Deployment rolls out new
    pods (which re-read what the injector gave them: APPMESH_APP_PORTS and the rest)."""
    pos, opts = parse(rest, {**GLOBAL, "-l|--selector": True}, (1, 99), "kubectl rollout restart")
    if opts.get("--selector"):
        raise Fail("the stand-in restarts named resources only, not --selector")
    if all("/" in p for p in pos):
        targets = [tuple(p.split("/", 1)) for p in pos]
    elif any("/" in p for p in pos):
        raise Fail("error: there is no need to specify a resource type as a separate argument when passing "
                   "arguments in resource/name form (e.g. 'kubectl get resource/<resource_name>' instead of "
                   "'kubectl get resource resource/<resource_name>'")
    elif len(pos) == 1:
        raise Fail(f"the stand-in restarts named resources only (kubectl rollout restart {pos[0]}/NAME), "
                   "not every one of a type")
    else:
        targets = [(pos[0], name) for name in pos[1:]]
    ns = one(opts, "--namespace", "default")
    out = []
    for kind, name in targets:
        plural = RESTARTABLE.get(kind.lower().split(".")[0])
        if plural is None:
            raise Fail(f'error: {kind.lower()} "{name}" restarting is not supported' if kind.lower().rstrip("s") in
                       ("pod", "service", "replicaset") else f'error: the server doesn\'t have a resource type "{kind}"')
        if plural != "deployments":
            raise Fail(f"the stand-in runs Deployments only; {plural} {name!r} cannot be restarted here")
        answer = call("POST", "/standin/restart", {"namespace": ns, "name": name})
        if "error" in answer:
            raise Fail(answer["error"], out="".join(out))
        out.append(f"deployment.apps/{name} restarted\n")
    return "".join(out)


def current_context() -> str:
    cfg = yaml.safe_load(Path(os.environ["KUBECONFIG"]).read_text())
    return cfg.get("current-context") or ""


def use_context(name: str) -> str:
    path = Path(os.environ["KUBECONFIG"])
    cfg = yaml.safe_load(path.read_text())
    if name not in [c["name"] for c in cfg.get("contexts") or []]:
        raise Fail(f'error: no context exists with the name: "{name}"')
    cfg["current-context"] = name
    path.write_text(yaml.safe_dump(cfg))
    return f'Switched to context "{name}".\n'


def apply(rest: list[str], stdin: str | None) -> str:
    _, opts = parse(rest, {**GLOBAL, "-f|--filename": True, "-R|--recursive": False, "--dry-run": True,
                           "-o|--output": True, "--server-side": False}, (0, 0), "kubectl apply")
    if not opts.get("--filename"):
        raise Fail("error: must specify one of -f and -k")
    docs = read_manifests(opts["--filename"], stdin, bool(opts.get("--recursive")))
    if not docs:
        raise Fail("error: no objects passed to apply")
    out, errors = [], []
    for source, obj in docs:  # one request per object, in order, as kubectl does: not all-or-nothing
        problems = check_object(obj, source)
        if problems:
            errors += problems
            continue
        if one(opts, "--namespace") and obj["kind"] not in ("Namespace", "Mesh"):
            obj.setdefault("metadata", {}).setdefault("namespace", one(opts, "--namespace"))
        if one(opts, "--dry-run"):
            out.append(f"{obj['kind'].lower()}/{obj['metadata']['name']} created (server dry run)")
            continue
        answer = call("POST", "/standin/apply", {"object": obj, "source": source})
        if "error" in answer:
            errors.append(answer["error"])
        else:
            out.append(f"{answer['ref']} {answer['action']}")
    text = "".join(line + "\n" for line in out)
    if errors:  # what went through is printed, what did not is the error: kubectl's exit 1
        raise Fail("\n".join(errors), out=text)
    return text


def delete(rest: list[str], stdin: str | None = None) -> str:
    pos, opts = parse(rest, {**GLOBAL, "-f|--filename": True, "--ignore-not-found": False, "--wait": False,
                             "-R|--recursive": False}, (0, 2), "kubectl delete")
    targets = []
    if opts.get("--filename"):
        if pos:
            raise Fail("error: there is no need to specify a resource type as a separate argument when passing "
                       "arguments in resource/name form")
        for source, obj in read_manifests(opts["--filename"], stdin, bool(opts.get("--recursive"))):
            m = obj.get("metadata") or {}
            targets.append((obj["kind"], m.get("namespace") or one(opts, "--namespace", "default"), m["name"]))
        targets.reverse()  # kubectl deletes in the order given; the lab takes each on its own either way
    elif len(pos) == 2:
        targets.append((kind_of(pos[0]), one(opts, "--namespace", "default"), pos[1]))
    else:
        raise Fail("error: resource(s) were provided, but no name was specified")
    out, errors = [], []
    for kind, ns, name in targets:
        action = call("POST", "/standin/delete", {"kind": kind, "namespace": ns, "name": name})["action"]
        group = {"Deployment": ".apps"}.get(kind, ".appmesh.k8s.aws" if kind in (
            "Mesh", "VirtualNode", "VirtualService", "VirtualRouter", "VirtualGateway", "GatewayRoute") else "")
        if action == "deleted":
            out.append(f'{kind.lower()}{group} "{name}" deleted')
        elif not opts.get("--ignore-not-found"):
            errors.append(f'Error from server (NotFound): {kind.lower()}s{group} "{name}" not found')
    text = "".join(line + "\n" for line in out)
    if errors:  # what went through is printed, what did not is the error: kubectl's exit 1
        raise Fail("\n".join(errors), out=text)
    return text


def jsonpath(obj, template: str) -> str:
    """kubectl's -o jsonpath for one field path, {.a.b[0].c} ('\\.' is a dot inside a key); a
    field that is not there prints nothing, as kubectl does by default."""
    m = re.fullmatch(r"\{((?:\.(?:[^.\[\]\\]|\\\.)+(?:\[\d+\])?)+)\}", template)
    if not m:
        raise Fail(f"the stand-in takes -o jsonpath={{.field.path[index]}} only (got {template})")
    for step in re.findall(r"\.((?:[^.\[\]\\]|\\\.)+)(?:\[(\d+)\])?", m[1]):
        key, index = step[0].replace("\\.", "."), step[1]
        obj = obj.get(key) if isinstance(obj, dict) else None
        if index:
            obj = obj[int(index)] if isinstance(obj, list) and int(index) < len(obj) else None
        if obj is None:
            return ""
    return obj if isinstance(obj, str) else json.dumps(obj)


def get(rest: list[str]) -> str:
    pos, opts = parse(rest, {**GLOBAL, "-o|--output": True, "-A|--all-namespaces": False, "-l|--selector": True},
                      (1, 2), "kubectl get")
    kind = kind_of(pos[0])
    output = one(opts, "--output", "")
    if kind == "CRD":
        names = sorted(f"{p.stem.split('_', 1)[1]}.{p.stem.split('_', 1)[0]}"
                       for p in (ROOT / "manifests" / "crds").glob("*.yaml"))
        state = call("GET", "/standin")
        if "appmesh-lab-controller" not in state.get("releases", {}):
            return "No resources found\n"
        return "NAME                                 CREATED AT\n" + "".join(f"{n:<36} 2026-01-01T00:00:00Z\n" for n in names)
    ns = None if opts.get("--all-namespaces") or kind in ("Namespace", "Node", "Mesh") else one(opts, "--namespace",
                                                                                                 "default")
    items = list_objects(kind, ns)
    if len(pos) == 2:
        items = [i for i in items if i["metadata"]["name"] == pos[1]]
        if not items:
            raise Fail(f'Error from server (NotFound): {pos[0]} "{pos[1]}" not found')
    if output.startswith("jsonpath="):
        return jsonpath(items[0] if len(pos) == 2 else {"items": items}, output[len("jsonpath="):])
    if output == "json":
        return json.dumps(items[0] if len(pos) == 2 else {"apiVersion": "v1", "kind": "List", "items": items}) + "\n"
    if output == "name":
        return "".join(f"{kind.lower()}/{i['metadata']['name']}\n" for i in items)
    if output not in ("", "wide"):
        raise Fail(f"error: the stand-in prints -o json, name, wide or a table (got {output})")
    if not items:
        return f"No resources found{' in ' + ns + ' namespace' if ns else ''}.\n"
    rows = []
    for i in items:
        m, st = i["metadata"], i.get("status") or {}
        if kind == "Pod":
            cs = st.get("containerStatuses") or []
            rows.append([m["name"], f"{sum(c['ready'] for c in cs)}/{len(cs)}", st.get("phase"),
                         str(sum(c["restartCount"] for c in cs))])
        elif kind == "Node":
            rows.append([m["name"], "Ready", "control-plane", st["nodeInfo"]["kubeletVersion"]])
        elif kind == "Deployment":
            rows.append([m["name"], f"{st.get('readyReplicas', 0)}/{i['spec'].get('replicas', 1)}"])
        else:
            c = next(iter(st.get("conditions") or []), {})
            rows.append([m["name"], c.get("status", st.get("phase", ""))])
    head = {"Pod": ["NAME", "READY", "STATUS", "RESTARTS"], "Node": ["NAME", "STATUS", "ROLES", "VERSION"],
            "Deployment": ["NAME", "READY"]}.get(kind, ["NAME", "STATUS"])
    widths = [max(len(str(r[k])) for r in rows + [head]) + 3 for k in range(len(head))]
    return "".join("".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() + "\n" for r in [head] + rows)


def create(rest: list[str]) -> str:
    pos, opts = parse(rest, {**GLOBAL, "--cert": True, "--key": True, "--from-file": True}, (3, 3), "kubectl create")
    if pos[0] != "secret" or pos[1] not in ("tls", "generic"):
        raise Fail(f"the stand-in creates secrets only (tls, generic), got {pos[:2]}")
    data = {}
    if pos[1] == "tls":
        for key, flag in (("tls.crt", "--cert"), ("tls.key", "--key")):
            f = Path(one(opts, flag) or "")
            if not one(opts, flag) or not f.is_file():
                raise Fail(f"error: {flag} must name a file: {one(opts, flag)!r}")
            text = f.read_text()
            want = "CERTIFICATE" if key == "tls.crt" else "PRIVATE KEY"
            if f"-----BEGIN " not in text or want not in text:
                raise Fail(f"error: failed to load key pair tls: failed to find any PEM data in {flag} input")
            data[key] = base64.b64encode(text.encode()).decode()
    else:
        for spec in opts.get("--from-file") or []:
            key, _, path = spec.partition("=")
            f = Path(path or key)
            if not f.is_file():
                raise Fail(f"error: error reading {f}: no such file or directory")
            data[key if path else f.name] = base64.b64encode(f.read_bytes()).decode()
    obj = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls" if pos[1] == "tls" else "Opaque",
           "metadata": {"name": pos[2], "namespace": one(opts, "--namespace", "default")}, "data": data}
    problems = check_object(obj, "secret")
    if problems:
        raise Fail("\n".join(problems))
    request = {"object": obj, "source": "secret"}
    # The stand-in's pods are the lab's processes, and the lab issues certificates with its CA's key.
    # A CA certificate given from a file next to its key (what `make_ca` writes) becomes the lab's
    # CA, key and all, so what the lab issues later verifies against the CA in this Secret.
    for spec in opts.get("--from-file") or []:
        key, _, path = spec.partition("=")
        if key == "ca.crt" and path and (Path(path).parent / "ca.key").is_file():
            request["ca_key"] = (Path(path).parent / "ca.key").read_text()
    answer = call("POST", "/standin/apply", request)
    if answer.get("action") != "created":
        raise Fail(f'error: failed to create secret secrets "{pos[2]}" already exists')
    return f"secret/{pos[2]} created\n"


# ---- helm, kind, eksctl, docker --------------------------------------------------------------

def _set_values(sets: list[str]) -> dict:
    """The values `--set a.b=c` arguments give, nested as helm keeps them (strings)."""
    out: dict = {}
    for s in sets:
        key, _, value = s.partition("=")
        node = out
        for part in key.split(".")[:-1]:
            node = node.setdefault(part, {})
        node[key.split(".")[-1]] = value
    return out


def helm(args: list[str], stdin: str | None) -> str:
    if args[:1] == ["version"]:
        return "v3.17.3+standin\n"
    if args[:1] == ["uninstall"]:
        pos, opts = parse(args[1:], {"-n|--namespace": True, "--wait": False}, (1, 1), "helm uninstall")
        state = call("GET", "/standin")
        if pos[0] not in state["releases"]:
            raise Fail(f"Error: uninstall: Release not loaded: {pos[0]}: release: not found")
        state["releases"].pop(pos[0])
        call("POST", "/standin/state", {"releases": state["releases"]})
        call("POST", "/standin/extra", {"objects": [], "remove": [["Deployment", "appmesh-system", pos[0]],
                                                                 ["Pod", "appmesh-system", pos[0] + "-0"]]})
        return f'release "{pos[0]}" uninstalled\n'
    if args[:2] == ["get", "values"]:   # the values the release was given (--set), as helm keeps them
        pos, opts = parse(args[2:], {"-n|--namespace": True, "-o|--output": True}, (1, 1), "helm get values")
        if one(opts, "--output", "table") != "json":
            raise Fail("Error: the stand-in answers `helm get values` with --output json only")
        release = call("GET", "/standin")["releases"].get(pos[0])
        if release is None or release["namespace"] != one(opts, "--namespace", "default"):
            raise Fail("Error: release: not found")
        return json.dumps(_set_values(release["set"]) or None) + "\n"
    if args[:1] != ["upgrade"]:
        raise Fail(f"Error: unknown command {args[:1]} for \"helm\" (the stand-in knows version, get values, upgrade, "
                   "uninstall)")
    pos, opts = parse(args[1:], {"-i|--install": False, "-n|--namespace": True, "--create-namespace": False,
                                 "--wait": False, "--timeout": True, "--set": True, "-f|--values": True},
                      (2, 2), "helm upgrade")
    release, chart = pos
    chart_dir = ROOT / chart
    if not (chart_dir / "Chart.yaml").is_file():
        raise Fail(f"Error: path \"{chart}\" not found")
    for f in opts.get("--values") or []:
        if not Path(f).is_file():
            raise Fail(f"Error: open {f}: no such file or directory")
    values = yaml.safe_load((chart_dir / "values.yaml").read_text())
    for s in opts.get("--set") or []:
        key, eq, _ = s.partition("=")
        node = values
        for part in key.split(".")[:-1]:
            if not isinstance(node, dict) or part not in node:
                raise Fail(f"Error: --set {s}: the chart has no value {key} (values.yaml)")
            node = node[part]
        if not eq or not isinstance(node, dict) or key.split(".")[-1] not in node:
            raise Fail(f"Error: --set {s}: the chart has no value {key} (values.yaml)")
    real = os.environ.get("STANDIN_REAL_HELM")
    if real:  # the chart must render with these values, as helm checks before installing
        import subprocess
        argv = [real, "template", release, str(chart_dir), "--namespace", one(opts, "--namespace", "default")]
        for s in opts.get("--set") or []:
            argv += ["--set", s]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise Fail(p.stderr.strip())
    ns = one(opts, "--namespace", "default")
    state = call("GET", "/standin")
    revision = state["releases"].get(release, {}).get("revision", 0) + 1
    state["releases"][release] = {"chart": chart, "namespace": ns, "revision": revision, "set": opts.get("--set") or []}
    call("POST", "/standin/state", {"releases": state["releases"]})
    labels = {"app.kubernetes.io/name": release}
    given = _set_values(opts.get("--set") or []).get("images", {}).get("controller", {})
    image = (f"{given.get('repository', values['images']['controller']['repository'])}:"
             f"{given.get('tag', values['images']['controller']['tag'])}")   # as the chart's Deployment has it
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": release, "namespace": ns, "generation": revision, "labels": labels},
                  "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                           "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                               {"name": "controller", "image": image}]}}},
                  "status": {"observedGeneration": revision, "replicas": 1, "readyReplicas": 1,
                             "updatedReplicas": 1, "availableReplicas": 1}}
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": release + "-0", "namespace": ns, "labels": labels},
           "spec": {"containers": [{"name": "controller", "image": image}]},
           "status": {"phase": "Running", "containerStatuses": [{"name": "controller", "ready": True, "restartCount": 0,
                                                                  "state": {"running": {}}, "image": "x", "imageID": ""}]}}
    call("POST", "/standin/extra", {"objects": [deployment, pod]})
    return (f'Release "{release}" has been upgraded. Happy Helming!\n' if revision > 1 else
            f'Release "{release}" does not exist. Installing it now.\n') + \
        f"NAME: {release}\nNAMESPACE: {ns}\nSTATUS: deployed\nREVISION: {revision}\n"


def kind(args: list[str], stdin: str | None) -> str:
    state = call("GET", "/standin")
    if args[:2] == ["get", "clusters"]:
        parse(args[2:], {}, (0, 0), "kind get clusters")
        return "".join(c + "\n" for c in state["clusters"]) or "No kind clusters found.\n"
    if args[:1] == ["version"]:
        return "kind v0.27.0-standin go1.23 linux/amd64\n"
    if args[:2] == ["create", "cluster"]:
        _, opts = parse(args[2:], {"--name": True, "--config": True, "--wait": True, "--image": True}, (0, 0),
                        "kind create cluster")
        cfg_path = one(opts, "--config")
        if cfg_path:
            cfg = yaml.safe_load((ROOT / cfg_path if not Path(cfg_path).is_absolute() else Path(cfg_path)).read_text())
            if cfg.get("kind") != "Cluster" or cfg.get("apiVersion") != "kind.x-k8s.io/v1alpha4":
                raise Fail(f"ERROR: failed to create cluster: {cfg_path} is not a kind Cluster config (v1alpha4)")
            ports = [m["containerPort"] for n in cfg.get("nodes") or [] for m in n.get("extraPortMappings") or []]
            if sorted(ports) != [30080, 30081, 30082, 30083]:
                raise Fail(f"ERROR: the stand-in publishes NodePorts 30080-30083; the config asks for {ports}")
        name = one(opts, "--name", "kind")
        if name in state["clusters"]:
            raise Fail(f'ERROR: failed to create cluster: node(s) already exist for a cluster with the name "{name}"')
        call("POST", "/standin/state", {"clusters": state["clusters"] + [name]})
        return f'Creating cluster "{name}" ...\nSet kubectl context to "kind-{name}"\n'
    if args[:2] == ["delete", "cluster"]:
        _, opts = parse(args[2:], {"--name": True}, (0, 0), "kind delete cluster")
        name = one(opts, "--name", "kind")
        call("POST", "/standin/state", {"clusters": [c for c in state["clusters"] if c != name], "releases": {}})
        return f'Deleting cluster "{name}" ...\n'
    if args[:2] == ["load", "docker-image"]:
        pos, opts = parse(args[2:], {"--name": True}, (1, 9), "kind load docker-image")
        for image in pos:
            if image not in state["images"]:
                raise Fail(f'ERROR: image: "{image}" not present locally')
        if one(opts, "--name", "kind") not in state["clusters"]:
            raise Fail(f"ERROR: no nodes found for cluster \"{one(opts, '--name', 'kind')}\"")
        return "".join(f'Image: "{i}" with ID "sha256:standin" not yet present on node, loading...\n' for i in pos)
    if args[:2] == ["load", "image-archive"]:
        pos, opts = parse(args[2:], {"--name": True}, (1, 1), "kind load image-archive")
        if not Path(pos[0]).is_file():
            raise Fail(f"ERROR: failed to load image: open {pos[0]}: no such file or directory")
        return ""
    raise Fail(f"ERROR: unknown command {args[:2]} for \"kind\" (the stand-in knows get clusters, version, create "
               "cluster, delete cluster, load docker-image, load image-archive)")


def eksctl(args: list[str], stdin: str | None) -> str:
    if args[:1] == ["version"]:
        return "0.210.0-standin\n"
    raise Fail("Error: the stand-in eksctl answers `eksctl version` only: the notebooks run on kind here")


def docker(args: list[str], stdin: str | None) -> str:
    state = call("GET", "/standin")
    if args[:1] == ["info"]:
        return "Server Version: 27.3.1-standin\n"
    if args[:1] == ["version"]:
        return "27.3.1-standin\n"
    if args == ["--version"]:
        return "Docker version 27.3.1-standin, build standin\n"
    if args[:1] == ["build"]:
        pos, opts = parse(args[1:], {"-f|--file": True, "-t|--tag": True, "--platform": True}, (1, 1), "docker build")
        dockerfile = ROOT / one(opts, "--file", str(Path(pos[0]) / "Dockerfile"))
        if not dockerfile.is_file() or not (ROOT / pos[0]).is_dir():
            raise Fail(f"ERROR: failed to solve: failed to read dockerfile: open {dockerfile}: no such file or directory")
        for line in dockerfile.read_text().splitlines():
            parts = line.split()
            if parts[:1] == ["COPY"] and not any(p.startswith("--from") for p in parts):
                for src in parts[1:-1]:
                    if not src.startswith("--") and not (ROOT / pos[0] / src).exists():
                        raise Fail(f"ERROR: failed to solve: failed to compute cache key: \"{src}\": not found")
        call("POST", "/standin/state", {"images": state["images"] + opts.get("--tag", [])})
        return "".join(f"naming to docker.io/{t} done\n" for t in opts.get("--tag", []))
    if args[:2] == ["image", "inspect"]:
        if args[2] not in state["images"]:
            raise Fail(f"Error: No such image: {args[2]}")
        return "[{}]\n"
    if args[:2] == ["image", "ls"]:
        pos, opts = parse(args[2:], {"--format": True}, (1, 1), "docker image ls")
        if one(opts, "--format") != "{{.Repository}}:{{.Tag}}":
            raise Fail(f"the stand-in prints --format '{{{{.Repository}}}}:{{{{.Tag}}}}' only (got {one(opts, '--format')})")
        return "".join(i + "\n" for i in state["images"] if i.split(":")[0] == pos[0])
    if args[:1] == ["save"]:
        pos, opts = parse(args[1:], {"-o|--output": True}, (1, 20), "docker save")
        missing = [i for i in pos if i not in state["images"]]
        if missing:
            raise Fail(f"Error response from daemon: reference does not exist: {missing[0]}")
        Path(one(opts, "--output")).write_text("\n".join(pos))
        return ""
    if args[:2] == ["image", "rm"]:
        call("POST", "/standin/state", {"images": [i for i in state["images"] if i != args[2]]})
        return f"Untagged: {args[2]}\n"
    if args[:1] == ["port"]:
        pos, _ = parse(args[1:], {}, (1, 1), "docker port")
        if not any(pos[0] == f"{c}-control-plane" for c in state["clusters"]):
            raise Fail(f"Error response from daemon: No such container: {pos[0]}")
        return "".join(f"{node}/tcp -> 127.0.0.1:{host}\n" for node, host in sorted(state["ports"].items()))
    raise Fail(f"docker: '{' '.join(args[:2])}' is not a docker command the stand-in knows.")


TOOLS = {"kubectl": kubectl, "helm": helm, "kind": kind, "eksctl": eksctl, "docker": docker}


def main(argv: list[str]) -> int:
    tool, args = Path(argv[0]).name, argv[1:]
    stdin = None
    if tool == "kubectl" and "-" in args:
        stdin = sys.stdin.read()
    rc, out, err = 0, "", ""
    try:
        out = TOOLS[tool](args, stdin)
    except Fail as exc:
        rc, out, err = exc.code, exc.out, str(exc)
    log = os.environ.get("STANDIN_LOG")
    if log:
        with open(log, "a") as f:
            f.write(json.dumps({"tool": tool, "argv": args, "rc": rc, "stdin": stdin is not None,
                                "line": shlex.join([tool, *args])}) + "\n")
    if out:
        sys.stdout.write(out)
    if err:
        sys.stderr.write(err.rstrip("\n") + "\n")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
