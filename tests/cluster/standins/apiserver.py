"""The stand-in cluster's Kubernetes API, with a local lab as its nodes and controller.

GET at the REST paths the `kubernetes` client uses (lists, reads, events with fieldSelector, pod
logs, the pod proxy to Envoy's admin port) answers from the lab daemon's resources, pods and
events, converted to the shape the API server returns. The stand-in tools change things through
/standin/* (apply, delete, patch, secret, kill, state). Everything the lab does not keep
(Secrets, the controller's Deployment that `helm install` makes, NodePorts, kind clusters,
docker images) is kept here, in memory.
"""
from __future__ import annotations

import copy
import hashlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import yaml

from lab.runtime.client import Client, LabError

APPMESH = {"meshes": "Mesh", "virtualnodes": "VirtualNode", "virtualservices": "VirtualService",
           "virtualrouters": "VirtualRouter", "virtualgateways": "VirtualGateway", "gatewayroutes": "GatewayRoute"}
CORE = {"namespaces": "Namespace", "pods": "Pod", "services": "Service", "events": "Event", "secrets": "Secret",
        "nodes": "Node"}
APPS = {"deployments": "Deployment"}
LAB_KINDS = set(APPMESH.values()) | {"Namespace", "Deployment", "Service"}
# default/kubernetes, as a single-stack IPv4 cluster (kind's default networking.ipFamily) has it:
# the stand-in's pods are local processes on 127.0.0.1 (scripts/kind-up.sh reads its ipFamilies)
API_SERVER_SERVICE = {"apiVersion": "v1", "kind": "Service",
                      "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver"}},
                      "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"],
                               "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                               "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]}}
CLUSTER_SCOPED = {"Mesh", "Namespace", "Node"}
KIND_NODE_PORTS = (30080, 30081, 30082, 30083)
GROUP_OF = {**{k: "appmesh.k8s.aws" for k in APPMESH.values()}, "Deployment": "apps"}


def _ts(t: float | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t or time.time()))


def _uid(*parts: str) -> str:
    h = hashlib.sha1("/".join(parts).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


class LabApi:
    """The state behind the API: the lab (through its client) and what the lab does not keep."""

    def __init__(self, lab_home: Path, cluster_name: str):
        self.lab = Client(lab_home)
        self.home = lab_home
        self.cluster_name = cluster_name
        self.lock = threading.RLock()
        self.node_ports: dict[tuple, int] = {}  # (namespace, service) -> the nodePort of its first port
        self.patched_ports: dict[tuple, int] = {}  # (namespace, service, port index) -> nodePort patched in
        self.secrets: dict[tuple, dict] = {}
        self.extra: dict[str, dict[tuple, dict]] = {}  # kind -> (ns, name) -> object (the controller, ...)
        self.state = {"clusters": [], "images": [], "releases": {}}
        self.forwarders: dict[int, int] = {}  # node port -> host port

    # ---- reading the lab ---------------------------------------------------------------------

    def _resources(self, kind: str, namespace: str | None = None) -> list[dict]:
        q = f"/v1/resources?kind={kind}" + (f"&namespace={namespace}" if namespace and kind not in CLUSTER_SCOPED else "")
        return self.lab.call("GET", q)["items"]

    def pods(self) -> list[dict]:
        return self.lab.call("GET", "/v1/pods")["pods"]

    def objects(self, kind: str, namespace: str | None = None) -> list[dict]:
        with self.lock:
            out = [copy.deepcopy(o) for (ns, _), o in sorted(self.extra.get(kind, {}).items())
                   if namespace is None or ns == namespace]
            if kind == "Secret":
                out += [copy.deepcopy(o) for (ns, _), o in sorted(self.secrets.items())
                        if namespace is None or ns == namespace]
        if kind in LAB_KINDS:
            pods = self.pods() if kind == "Deployment" else []
            out += [self._convert(kind, i, pods) for i in self._resources(kind, namespace)]
        elif kind == "Pod":
            out += [self._pod(p) for p in self.pods() if namespace is None or p["namespace"] == namespace]
        if kind == "Service" and namespace in (None, "default"):  # every cluster has the API server's own
            out.insert(0, copy.deepcopy(API_SERVER_SERVICE))
        elif kind == "Node":
            out.append({"apiVersion": "v1", "kind": "Node",
                        "metadata": {"name": f"{self.cluster_name}-control-plane",
                                     "labels": {"node-role.kubernetes.io/control-plane": ""}},
                        "status": {"conditions": [{"type": "Ready", "status": "True"}],
                                   "nodeInfo": {"kubeletVersion": "v1.32.2 (stand-in: the local lab)"},
                                   "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]}})
        return out

    def _convert(self, kind: str, item: dict, pods: list) -> dict:
        doc = copy.deepcopy(item["doc"])
        meta = doc.setdefault("metadata", {})
        meta.update(uid=item["uid"], generation=item["generation"], resourceVersion=str(item["generation"]),
                    creationTimestamp=_ts(item.get("created")))
        if kind not in CLUSTER_SCOPED:
            meta.setdefault("namespace", item["namespace"])
        status = copy.deepcopy(item.get("status") or {})
        if kind == "Namespace":
            status = {"phase": "Active"}
        elif kind == "Deployment":
            mine = [p for p in pods if p["namespace"] == item["namespace"] and p["owner"] == item["name"]]
            ready = sum(1 for p in mine if p["status"] == "Running" and
                        p["ready"].split("/")[0] == p["ready"].split("/")[1])
            status = {"observedGeneration": item["generation"], "replicas": len(mine), "updatedReplicas": len(mine),
                      "readyReplicas": ready, "availableReplicas": ready}
        elif kind == "Service":
            spec = doc.setdefault("spec", {})
            spec.setdefault("clusterIP", "10.96.%d.%d" % (int(item["uid"][:2], 16) % 250, int(item["uid"][2:4], 16) % 250))
            if spec.get("type") in ("NodePort", "LoadBalancer"):
                with self.lock:
                    key = (item["namespace"], item["name"])
                    if key not in self.node_ports:  # as the API server: a free port from the range, not 30080-30083
                        used = set(self.node_ports.values())
                        self.node_ports[key] = next(p for p in range(31000, 32767, 10) if p not in used)  # 10 ports each
                    for i, port in enumerate(spec.get("ports") or []):
                        port["nodePort"] = self.patched_ports.get((*key, i), self.node_ports[key] + i)
            status = {"loadBalancer": {}}  # kind has no load balancer: EXTERNAL-IP stays <pending>
        doc["status"] = status
        return doc

    def _pod(self, p: dict) -> dict:
        owner_rs = p["name"].rsplit("-", 1)[0]
        containers, statuses = [], []
        for c in p["containers"]:
            spec = {"name": c["name"], "image": "envoyproxy/envoy:v1.40.0" if c["name"] == "envoy"
                    else "appmesh-lab/sample-app:0.1.0"}
            if c["name"] == "envoy" and p.get("node_id"):  # what the injector writes: the Envoy's node id
                spec["env"] = [{"name": "APPMESH_RESOURCE_ARN", "value": p["node_id"]}]
            containers.append(spec)
            state = {"Running": {"running": {"startedAt": _ts(c.get("started"))}}}.get(
                c["state"], {"waiting": {"reason": c["state"]}})
            statuses.append({"name": c["name"], "ready": bool(c.get("ready")), "restartCount": c.get("restarts", 0),
                             "started": c["state"] == "Running", "state": state, "image": spec["image"],
                             "imageID": ""})
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": p["name"], "namespace": p["namespace"], "labels": p.get("labels") or {},
                            "uid": _uid(p["namespace"], p["name"]),
                            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner_rs,
                                                 "uid": _uid(p["namespace"], owner_rs), "controller": True}]},
               "spec": {"containers": containers, "nodeName": f"{self.cluster_name}-control-plane"},
               "status": {"phase": "Running" if p["status"] == "Running" else "Pending", "podIP": "127.0.0.1",
                          "containerStatuses": statuses}}
        if p.get("role") == "meshed":
            pod["spec"]["initContainers"] = [{"name": "proxyinit", "image": "appmesh-lab/proxy-init:0.1.0"}]
            pod["status"]["initContainerStatuses"] = [{"name": "proxyinit", "ready": False, "restartCount": 0,
                                                       "state": {"terminated": {"exitCode": 0,
                                                                                "reason": "Completed"}}}]
        return pod

    def events(self, namespace: str, selector: dict) -> list[dict]:
        kind, name = selector.get("involvedObject.kind"), selector.get("involvedObject.name")
        if not kind or not name:
            return []
        lab_ns = "" if kind in CLUSTER_SCOPED else namespace
        out = []
        for i, e in enumerate(self.lab.call("GET", f"/v1/events?kind={kind}&namespace={lab_ns}&name={name}")["events"]):
            out.append({"apiVersion": "v1", "kind": "Event",
                        "metadata": {"name": f"{name}.{i:x}", "namespace": namespace},
                        "involvedObject": {"kind": kind, "name": name, "namespace": lab_ns or None},
                        "reason": e.get("reason"), "message": e.get("message"), "type": e.get("type"),
                        "count": 1, "lastTimestamp": e.get("time"), "eventTime": None})
        return out

    def pod_view(self, namespace: str, name: str) -> dict | None:
        return next((p for p in self.pods() if p["namespace"] == namespace and p["name"] == name), None)

    def log(self, namespace: str, name: str, container: str | None, tail: int) -> str | None:
        p = self.pod_view(namespace, name)
        if p is None:
            return None
        names = [c["name"] for c in p["containers"]]
        container = container or names[0]
        c = next((x for x in p["containers"] if x["name"] == container), None)
        if c is None or not c.get("log"):
            return None
        files = ([Path(c["log"]).with_name("envoy.log")] if container == "envoy" else []) + [Path(c["log"])]
        lines = []
        for f in files:
            if f.exists():
                lines += [ln for ln in f.read_text(errors="replace").splitlines() if not ln.startswith("--- ")]
        return "\n".join(lines[-tail:] if tail else lines) + "\n"

    def admin(self, namespace: str, name: str, port: int, path: str) -> tuple[int, bytes]:
        """The pod proxy: Envoy's admin (9901) of a lab pod, or a controller replica's /status
        (8081), which here is the lab's: the proxies, their versions and ACKs, by node id, and the
        generations its configuration comes from (the lab serves what it stores: the API's own)."""
        from lab.runtime.envoy import admin_request
        from lab.runtime.generations import generations
        from lab.targets.cluster import CONTROLLER_NAMESPACE, HEALTH_PORT
        if namespace == CONTROLLER_NAMESPACE and port == HEALTH_PORT and path == "/status":
            proxies = self.lab.call("GET", "/v1/status")["proxies"]
            gens = generations((k, o) for k in APPMESH.values() for o in self.objects(k))
            return 200, json.dumps({"proxies": {p["node_id"]: p for p in proxies},
                                    "last_pass": {"generations": gens}}).encode()
        if port != 9901:
            return 404, f'the stand-in proxies to Envoy\'s admin port 9901 only, not {name}:{port}'.encode()
        out = self.lab.call("GET", f"/v1/proxy?proxy={namespace}/{name}", ok=(200, 404))
        if "admin_socket" not in out:
            return 503, f'pod "{name}" has no running Envoy: {out.get("error")}'.encode()
        return admin_request(out["admin_socket"], "GET", path, 10)

    # ---- changing things ------------------------------------------------------------------------

    def apply(self, obj: dict, source: str) -> dict:
        """One object, as the API server takes one request of `kubectl apply`."""
        kind, meta = obj["kind"], obj.get("metadata") or {}
        ns = "" if kind in CLUSTER_SCOPED else (meta.get("namespace") or "default")
        ref = f"{kind.lower()}{'.' + GROUP_OF[kind] if kind in GROUP_OF else ''}/{meta.get('name')}"
        if kind == "Secret":
            return self.put_secret(obj)
        if kind not in LAB_KINDS:
            with self.lock:
                bucket = self.extra.setdefault(kind, {})
                action = "configured" if (ns, meta["name"]) in bucket else "created"
                bucket[(ns, meta["name"])] = obj
            return {"ref": ref, "action": action}
        if kind != "Namespace" and ns and ns != "default" and \
                not any(i["name"] == ns for i in self._resources("Namespace")):
            return {"ref": ref, "error": f'Error from server (NotFound): error when creating "{source}": '
                                         f'namespaces "{ns}" not found'}
        doc = copy.deepcopy(obj)
        doc.setdefault("metadata", {})
        if kind not in CLUSTER_SCOPED:
            doc["metadata"]["namespace"] = ns
        try:
            out = self.lab.call("POST", "/v1/apply", {"texts": [[source, yaml.safe_dump(doc, sort_keys=False)]]},
                                ok=(200, 422))
        except LabError as exc:
            return {"ref": ref, "error": f"Error from server (InternalError): {exc}"}
        if out.get("rejected"):  # the chart's validating webhook, with its message (lab.controller.admission)
            from lab.controller.admission import denial_message
            from lab.model.problems import Problem
            found = [Problem(**p) for p in out["problems"] if p["severity"] == "error"]
            msg = denial_message(kind, f"{ns}/{meta.get('name')}" if ns else meta.get("name"), found)
            return {"ref": ref, "error": f'Error from server (Forbidden): error when applying "{source}": admission '
                                         f'webhook "v{kind.lower()}.appmesh-lab.k8s.aws" denied the request: {msg}'}
        action = next((r["action"] for r in out["results"]), "unchanged")
        return {"ref": ref, "action": action}

    def restart(self, namespace: str, name: str) -> dict:
        """`kubectl rollout restart deployment/NAME`: the pod template's annotation
        kubectl.kubernetes.io/restartedAt set to now, as kubectl patches it; the changed template
        makes the lab replace the Deployment's pods, as a rollout does."""
        item = next((i for i in self._resources("Deployment", namespace) if i["name"] == name), None)
        if item is None:
            return {"error": f'Error from server (NotFound): deployments.apps "{name}" not found'}
        doc = copy.deepcopy(item["doc"])
        template = doc.setdefault("spec", {}).setdefault("template", {})
        annotations = template.setdefault("metadata", {}).setdefault("annotations", {}) or {}
        annotations["kubectl.kubernetes.io/restartedAt"] = _ts(None)   # RFC 3339, as kubectl writes it
        template["metadata"]["annotations"] = annotations
        doc.setdefault("metadata", {})["namespace"] = namespace
        out = self.lab.call("POST", "/v1/apply", {"texts": [["kubectl rollout restart",
                                                            yaml.safe_dump(doc, sort_keys=False)]]}, ok=(200, 422))
        if out.get("rejected"):
            return {"error": "Error from server: " + "; ".join(p["message"] for p in out["problems"])}
        return {"ref": f"deployment.apps/{name}", "action": "restarted"}

    def put_secret(self, obj: dict) -> dict:
        """A Secret; and, as the kubelet would mount it where the pods' secretMounts ask, the
        certificate files written where the lab's Envoys read /etc/appmesh-lab/certs/<dir>/ (the
        examples mount <dir>-tls and mesh-ca at <dir> and ca)."""
        import base64
        meta = obj["metadata"]
        ns, name = meta.get("namespace") or "default", meta["name"]
        with self.lock:
            action = "configured" if (ns, name) in self.secrets else "created"
            self.secrets[(ns, name)] = obj
        directory = "ca" if name == "mesh-ca" else name[:-4] if name.endswith("-tls") else None
        if directory:
            target = self.home / "certs" / directory
            target.mkdir(parents=True, exist_ok=True)
            for key, value in (obj.get("data") or {}).items():
                (target / key).write_bytes(base64.b64decode(value))
                (target / key).chmod(0o600)
        return {"ref": f"secret/{name}", "action": action}

    def delete(self, kind: str, namespace: str, name: str) -> str:
        ns = "" if kind in CLUSTER_SCOPED else namespace
        if kind == "Secret":
            with self.lock:
                return "deleted" if self.secrets.pop((ns, name), None) else "not found"
        if kind not in LAB_KINDS:
            with self.lock:
                return "deleted" if self.extra.get(kind, {}).pop((ns, name), None) else "not found"
        out = self.lab.call("POST", "/v1/delete", {"keys": [[kind, ns, name]]})
        action = next((r["action"] for r in out["results"]), "not found")
        if action == "deleted" and kind == "Service":
            with self.lock:
                self.node_ports.pop((ns, name), None)
                for key in [k for k in self.patched_ports if k[:2] == (ns, name)]:
                    del self.patched_ports[key]
        return action

    def patch_node_port(self, namespace: str, name: str, value: int, index: int = 0) -> None:
        """One port's nodePort, as `kubectl patch` sets it; the Service's other ports keep theirs."""
        with self.lock:
            self.patched_ports[(namespace, name, index)] = value

    def service_address(self, node_port: int) -> tuple[str, int] | None:
        """Where the lab exposes the Service port that holds `node_port` (for the kind port forwarders)."""
        with self.lock:
            found = next((k for k, v in self.patched_ports.items() if v == node_port), None)
            if found is None:   # a port as allocated: the first port's, plus its index
                found = next(((*k, node_port - v) for k, v in self.node_ports.items() if 0 <= node_port - v < 10
                              and (*k, node_port - v) not in self.patched_ports), None)
        if found is None:
            return None
        namespace, name, index = found
        items = self._resources("Service", namespace)
        svc = next((i for i in items if i["name"] == name), None)
        exposed = ((svc or {}).get("status") or {}).get("exposedPorts") or []
        return ("127.0.0.1", exposed[index]["exposed"]) if len(exposed) > index else None


class Forwarder:
    """A kind node's published NodePort: accepts on 127.0.0.1:<free port> and pipes each
    connection to the lab's address of the Service holding the NodePort (refused when none does)."""

    def __init__(self, api: LabApi, node_port: int):
        self.api, self.node_port = api, node_port
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            where = self.api.service_address(self.node_port)
            if where is None:
                conn.close()
                return
            up = socket.create_connection(where, timeout=10)
        except OSError:
            conn.close()
            return

        def pipe(a, b):
            try:
                while True:
                    data = a.recv(65536)
                    if not data:
                        break
                    b.sendall(data)
            except OSError:
                pass
            finally:
                for s in (a, b):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
        threading.Thread(target=pipe, args=(up, conn), daemon=True).start()
        pipe(conn, up)
        conn.close()
        up.close()

    def close(self):
        self.closed = True
        self.sock.close()


def _send(h, code: int, body, ctype="application/json"):
    data = body if isinstance(body, bytes) else (json.dumps(body).encode() if ctype == "application/json"
                                                 else str(body).encode())
    h.send_response(code)
    h.send_header("Content-Type", ctype)
    h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    h.wfile.write(data)


def _status(h, code: int, reason: str, message: str):
    _send(h, code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason,
                    "message": message})


def make_server(api: LabApi) -> ThreadingHTTPServer:
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            return

        def _body(self):
            n = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(n) or b"null")

        def do_GET(self):  # noqa: N802
            url = urlparse(self.path)
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            segs = [unquote(s) for s in url.path.split("/") if s]
            try:
                return self._get(segs, q)
            except LabError as exc:
                return _status(self, 503, "ServiceUnavailable", f"the lab behind the stand-in API: {exc}")

        def _get(self, segs, q):
            if segs == ["version"]:
                return _send(self, 200, {"major": "1", "minor": "32", "gitVersion": "v1.32.2-standin",
                                         "platform": "stand-in: a recording, not a cluster"})
            if segs and segs[0] == "standin":
                return _send(self, 200, api.state)
            if segs[:2] == ["api", "v1"]:
                group, rest, kinds = "v1", segs[2:], CORE
            elif segs[:1] == ["apis"] and len(segs) >= 3:
                group, rest = f"{segs[1]}/{segs[2]}", segs[3:]
                kinds = APPMESH if segs[1] == "appmesh.k8s.aws" else APPS if segs[1] == "apps" else {}
            else:
                return _status(self, 404, "NotFound", f"the stand-in API does not serve {self.path}")
            ns = None
            if rest[:1] == ["namespaces"] and len(rest) >= 3:
                ns, rest = rest[1], rest[2:]
            if not rest or rest[0] not in kinds:
                return _status(self, 404, "NotFound", f"the stand-in API does not serve {self.path}")
            kind = kinds[rest[0]]
            if kind == "Pod" and len(rest) >= 3 and rest[2] == "proxy":  # pods/NAME:PORT/proxy/PATH
                name, _, port = rest[1].partition(":")
                path = "/" + "/".join(rest[3:]) + (f"?{urlparse(self.path).query}" if urlparse(self.path).query else "")
                code, body = api.admin(ns, name, int(port or 80), path)
                return _send(self, code, body, "text/plain")
            if kind == "Pod" and len(rest) == 3 and rest[2] == "log":
                text = api.log(ns, rest[1], q.get("container"), int(q.get("tailLines") or 0))
                if text is None:
                    return _status(self, 404, "NotFound", f'pods "{rest[1]}" not found')
                return _send(self, 200, text, "text/plain")
            if kind == "Event":
                sel = dict(c.split("=", 1) for c in q.get("fieldSelector", "").split(",") if "=" in c)
                return _send(self, 200, {"kind": "EventList", "apiVersion": "v1", "metadata": {},
                                         "items": api.events(ns or "default", sel)})
            items = api.objects(kind, ns)
            if len(rest) >= 2:
                obj = next((o for o in items if o["metadata"]["name"] == rest[1]), None)
                if obj is None:
                    return _status(self, 404, "NotFound", f'{rest[0]} "{rest[1]}" not found')
                return _send(self, 200, obj)
            sel = q.get("labelSelector")
            if sel:
                for cond in sel.split(","):
                    k, _, v = cond.partition("=")
                    items = [o for o in items if (o["metadata"].get("labels") or {}).get(k) == v]
            return _send(self, 200, {"kind": f"{kind}List", "apiVersion": group, "metadata": {"resourceVersion": "1"},
                                     "items": items})

        def do_POST(self):  # noqa: N802
            segs = [s for s in urlparse(self.path).path.split("/") if s]
            body = self._body()
            try:
                if segs == ["standin", "apply"]:
                    if body.get("ca_key"):
                        key = api.home / "certs" / "ca" / "ca.key"
                        key.parent.mkdir(parents=True, exist_ok=True)
                        key.write_text(body["ca_key"])
                        key.chmod(0o600)
                    return _send(self, 200, api.apply(body["object"], body.get("source", "-")))
                if segs == ["standin", "delete"]:
                    return _send(self, 200, {"action": api.delete(body["kind"], body.get("namespace", ""),
                                                                  body["name"])})
                if segs == ["standin", "restart"]:
                    return _send(self, 200, api.restart(body["namespace"], body["name"]))
                if segs == ["standin", "nodeport"]:
                    api.patch_node_port(body["namespace"], body["name"], int(body["nodePort"]), int(body.get("index", 0)))
                    return _send(self, 200, {"ok": True})
                if segs == ["standin", "kill"]:
                    out = api.lab.call("POST", "/v1/kill", {"process": f"{body['namespace']}/{body['pod']}/"
                                                                      f"{body['container']}", "signal": 15},
                                       ok=(200, 404))
                    return _send(self, 200, out)
                if segs == ["standin", "state"]:
                    with api.lock:
                        api.state.update(body)
                    return _send(self, 200, api.state)
                if segs == ["standin", "extra"]:  # what helm installs besides the CRDs
                    with api.lock:
                        for o in body["objects"]:
                            m = o["metadata"]
                            api.extra.setdefault(o["kind"], {})[(m.get("namespace", ""), m["name"])] = o
                        for kind, ns, name in body.get("remove", []):
                            api.extra.get(kind, {}).pop((ns, name), None)
                    return _send(self, 200, {"ok": True})
            except LabError as exc:
                return _status(self, 503, "ServiceUnavailable", f"the lab behind the stand-in API: {exc}")
            return _status(self, 404, "NotFound", self.path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), H)
    server.daemon_threads = True
    return server
