"""Applying, deleting and reading the mesh's resources, and building the YAML variants lessons apply."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import yaml

from .common import APPMESH_KINDS, NotebookError, ROOT
from .display import _rel, show_text, table
from .staging import _takes


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


def delete_text(t, text: str) -> list:
    """`kubectl delete -f -` with the manifest text (shown as a heredoc)."""
    import textwrap
    results = t.delete_text(textwrap.dedent(text).strip("\n") + "\n")
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


