"""A stub Kubernetes API server on 127.0.0.1 for the tests of the code that talks to one.

It serves recorded objects at the real REST paths (list, get, watch, create, replace, patch of
status/metadata), records every request, and answers conflicts the way the API server does
(409 AlreadyExists, 409 on a stale resourceVersion, 422 when a JSONPatch "test" fails, 410 on a
watch whose resourceVersion is "expired"). It is not a Kubernetes: no admission, no defaults,
no validation; it exists so the real `kubernetes` client is exercised end to end.
"""
from __future__ import annotations

import copy
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

KINDS = {
    "Namespace": ("v1", "namespaces"), "Pod": ("v1", "pods"), "Service": ("v1", "services"),
    "Event": ("v1", "events"), "Secret": ("v1", "secrets"),
    "EndpointSlice": ("discovery.k8s.io/v1", "endpointslices"),
    "Deployment": ("apps/v1", "deployments"),
    "Lease": ("coordination.k8s.io/v1", "leases"),
    "MutatingWebhookConfiguration": ("admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations"),
    "ValidatingWebhookConfiguration": ("admissionregistration.k8s.io/v1", "validatingwebhookconfigurations"),
    "Mesh": ("appmesh.k8s.aws/v1beta2", "meshes"), "VirtualNode": ("appmesh.k8s.aws/v1beta2", "virtualnodes"),
    "VirtualService": ("appmesh.k8s.aws/v1beta2", "virtualservices"),
    "VirtualRouter": ("appmesh.k8s.aws/v1beta2", "virtualrouters"),
    "VirtualGateway": ("appmesh.k8s.aws/v1beta2", "virtualgateways"),
    "GatewayRoute": ("appmesh.k8s.aws/v1beta2", "gatewayroutes"),
}
CLUSTER_SCOPED = {"namespaces", "meshes", "mutatingwebhookconfigurations", "validatingwebhookconfigurations"}


def _json_patch(obj: dict, patch: list) -> dict:
    obj = copy.deepcopy(obj)
    for op in patch:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent = obj
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent.setdefault(p, {})
        last = parts[-1]
        if op["op"] == "test":
            cur = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if cur != op["value"]:
                raise ValueError(f"test failed at {op['path']}: {cur!r} != {op['value']!r}")
        elif op["op"] in ("add", "replace"):
            if isinstance(parent, list):
                if last == "-":
                    parent.append(op["value"])
                elif op["op"] == "add":
                    parent.insert(int(last), op["value"])
                else:
                    parent[int(last)] = op["value"]
            else:
                parent[last] = op["value"]
        elif op["op"] == "remove":
            del parent[int(last) if isinstance(parent, list) else last]
    return obj


def _merge(a, b):
    if not isinstance(b, dict):
        return b
    out = dict(a) if isinstance(a, dict) else {}
    for k, v in b.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _merge(out.get(k), v)
    return out


class StubApiServer:
    def __init__(self, objects: dict[str, list[dict]] | None = None):
        self.store: dict[tuple, dict] = {}  # (group/version, plural, namespace, name) -> object
        self.requests: list[dict] = []
        self.watch_events: dict[str, list] = {}  # plural -> [(type, obj)] streamed once, then the watch ends
        self.expired_rvs: set = set()
        self.rv = 5000
        self.lock = threading.Lock()
        for kind, items in (objects or {}).items():
            for o in items:
                self.put(kind, o)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def put(self, kind: str, obj: dict) -> dict:
        gv, plural = KINDS[kind]
        obj = copy.deepcopy(obj)
        obj.setdefault("apiVersion", gv)
        obj.setdefault("kind", kind)
        meta = obj.setdefault("metadata", {})
        ns = "" if plural in CLUSTER_SCOPED else meta.get("namespace", "default")
        self.rv += 1
        meta["resourceVersion"] = str(self.rv)
        self.store[(gv, plural, ns, meta["name"])] = obj
        return obj

    def get(self, kind: str, namespace: str, name: str) -> dict | None:
        gv, plural = KINDS[kind]
        return self.store.get((gv, plural, "" if plural in CLUSTER_SCOPED else namespace, name))

    def client(self):
        from kubernetes import client
        cfg = client.Configuration()
        cfg.host = self.url
        return client.ApiClient(cfg)

    def calls(self, method: str | None = None, contains: str = "") -> list[dict]:
        return [r for r in self.requests if (method is None or r["method"] == method) and contains in r["path"]]

    # -- HTTP ------------------------------------------------------------------------------

    @staticmethod
    def parse(path: str):
        segs = [s for s in path.split("/") if s]
        if segs[:2] == ["api", "v1"]:
            gv, rest = "v1", segs[2:]
        else:
            gv, rest = f"{segs[1]}/{segs[2]}", segs[3:]
        ns = ""
        if len(rest) >= 3 and rest[0] == "namespaces":
            ns, rest = rest[1], rest[2:]
        plural = rest[0]
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if plural == "namespaces" and name and not ns:
            ns = ""
        return gv, plural, ns, name, sub

    def _handler(self):
        stub = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                return

            def _send(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _status(self, code, reason, message):
                self._send(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
                                  "reason": reason, "message": message})

            def _body(self):
                n = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(n) or b"null")

            def _dispatch(self, method):
                url = urlparse(self.path)
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                body = self._body() if method in ("POST", "PUT", "PATCH") else None
                with stub.lock:
                    stub.requests.append({"method": method, "path": url.path, "query": q, "body": body,
                                          "content_type": self.headers.get("Content-Type")})
                gv, plural, ns, name, sub = stub.parse(url.path)
                if method == "GET" and name is None:
                    if q.get("watch") in ("true", "1", "True"):
                        return self._watch(plural, q)
                    items = [copy.deepcopy(o) for (g, p, n, _), o in sorted(stub.store.items())
                             if g == gv and p == plural and (not ns or n == ns)]
                    sel = q.get("fieldSelector")
                    if sel:
                        for cond in sel.split(","):
                            k, _, v = cond.partition("=")
                            items = [i for i in items if _field(i, k) == v]
                    return self._send(200, {"kind": "List", "apiVersion": gv, "metadata": {
                        "resourceVersion": str(stub.rv)}, "items": items})
                key = (gv, plural, ns, name)
                if method == "GET":
                    if key not in stub.store:
                        return self._status(404, "NotFound", f'{plural} "{name}" not found')
                    return self._send(200, stub.store[key])
                if method == "POST":
                    obj_name = (body.get("metadata") or {}).get("name")
                    key = (gv, plural, ns, obj_name)
                    if key in stub.store:
                        return self._status(409, "AlreadyExists", f'{plural} "{obj_name}" already exists')
                    with stub.lock:
                        stub.rv += 1
                        body.setdefault("metadata", {})["resourceVersion"] = str(stub.rv)
                        stub.store[key] = body
                    return self._send(201, body)
                if key not in stub.store:
                    return self._status(404, "NotFound", f'{plural} "{name}" not found')
                cur = stub.store[key]
                if method == "PUT":
                    want = (body.get("metadata") or {}).get("resourceVersion")
                    if want and want != cur["metadata"].get("resourceVersion"):
                        return self._status(409, "Conflict", "the object has been modified")
                    new = body
                elif method == "PATCH":
                    ctype = self.headers.get("Content-Type", "")
                    try:
                        if "json-patch" in ctype:
                            new = _json_patch(cur, body)
                        elif sub == "status":
                            new = dict(cur, status=_merge(cur.get("status") or {}, body.get("status") or {}))
                        else:
                            new = _merge(cur, body)
                    except ValueError as exc:
                        return self._status(422, "Invalid", str(exc))
                else:
                    return self._status(405, "MethodNotAllowed", method)
                with stub.lock:
                    stub.rv += 1
                    new.setdefault("metadata", {})["resourceVersion"] = str(stub.rv)
                    stub.store[key] = new
                return self._send(200, new)

            def _watch(self, plural, q):
                if q.get("resourceVersion") in stub.expired_rvs:
                    events = [("ERROR", {"kind": "Status", "code": 410, "reason": "Expired",
                                         "message": "too old resource version"})]
                else:
                    events = stub.watch_events.pop(plural, [])
                data = b"".join(json.dumps({"type": t, "object": o}).encode() + b"\n" for t, o in events)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802
                self._dispatch("GET")

            def do_POST(self):  # noqa: N802
                self._dispatch("POST")

            def do_PUT(self):  # noqa: N802
                self._dispatch("PUT")

            def do_PATCH(self):  # noqa: N802
                self._dispatch("PATCH")

            def do_DELETE(self):  # noqa: N802
                self._dispatch("DELETE")
        return H


def _field(obj: dict, path: str):
    cur = obj
    for p in path.split("."):
        cur = (cur or {}).get(p) if isinstance(cur, dict) else None
    return cur
