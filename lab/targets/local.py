"""The `local` target: the lab daemon on this machine (no cluster)."""
from __future__ import annotations

import http.client
import time
from pathlib import Path
from urllib.parse import quote

from ..runtime.client import Client, LabError
from ..runtime.status import gateway_address, wait_converged
from .base import Response, Target, TargetError, request


def _root() -> Path:
    return Path(__file__).resolve().parents[2]


class LocalTarget(Target):
    name = "local"

    def __init__(self, home: str | None = None, echo: bool = True, namespace: str = "appmesh-demo"):
        self.client = Client(Path(home) if home else None)
        self.echo = echo
        self.namespace = namespace

    def _call(self, method, path, body=None, ok=(200,)):
        try:
            return self.client.call(method, path, body, ok=ok)
        except LabError as exc:
            raise TargetError(str(exc)) from exc

    def _path(self, path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() or p.exists() else _root() / p

    # lifecycle --------------------------------------------------------------------------
    def up(self) -> dict:
        self.say("appmesh-lab up        # on a cluster: kind create cluster / eksctl create cluster, then helm install")
        try:
            return self.client.up()
        except LabError as exc:
            raise TargetError(str(exc)) from exc

    def running(self) -> bool:
        return self.client.running()

    def down(self, purge: bool = False) -> None:
        self.say("appmesh-lab down" + (" --purge" if purge else ""))
        try:
            self.client.down()
            if purge:
                self.client.purge()  # only what the lab created
        except LabError as exc:
            raise TargetError(str(exc)) from exc

    def status(self) -> dict:
        return self._call("GET", "/v1/status")

    # resources --------------------------------------------------------------------------
    def apply(self, path: str, wait: bool = True, timeout: float = 30.0) -> list:
        from ..files import read_texts
        self.say(f"kubectl apply -f {path}")
        texts, problems = read_texts([self._path(path)], recursive=False)  # like kubectl apply -f DIR
        if problems:
            raise TargetError("; ".join(map(str, problems)))
        out = self._call("POST", "/v1/apply", {"texts": texts}, ok=(200, 422))
        if out.get("rejected"):
            from ..model.problems import Problem
            raise TargetError("apply rejected, nothing changed:\n" + "\n".join(str(Problem(**p)) for p in out["problems"]
                                                                             if p["severity"] == "error"))
        if wait:
            self.converge(timeout, out.get("versions"))
        return out["results"]

    def apply_text(self, text: str, name: str = "<notebook>", wait: bool = True, timeout: float = 30.0) -> list:
        self.say(f"kubectl apply -f - <<'EOF'\n{text.rstrip()}\nEOF")
        out = self._call("POST", "/v1/apply", {"texts": [[name, text]]}, ok=(200, 422))
        if out.get("rejected"):
            from ..model.problems import Problem
            raise TargetError("apply rejected, nothing changed:\n" + "\n".join(str(Problem(**p)) for p in out["problems"]
                                                                             if p["severity"] == "error"))
        if wait:
            self.converge(timeout, out.get("versions"))
        return out["results"]

    def try_apply(self, path_or_text: str, is_text: bool = False) -> dict:
        """Apply and return the daemon's answer, rejected or not (for lessons about mistakes)."""
        from ..files import read_texts
        texts = [["<notebook>", path_or_text]] if is_text else read_texts([self._path(path_or_text)], False)[0]
        return self._call("POST", "/v1/apply", {"texts": texts}, ok=(200, 422))

    def delete(self, path: str, wait: bool = True, timeout: float = 30.0) -> list:
        from ..files import read_texts
        from ..model import validate_texts
        self.say(f"kubectl delete -f {path}")
        texts, _ = read_texts([self._path(path)], recursive=False)
        keys = [[r.kind, r.namespace or "", r.name] for r in validate_texts(texts).resources]
        return self._deleted(self._call("POST", "/v1/delete", {"keys": keys}), wait, timeout)

    def delete_text(self, text: str, wait: bool = True, timeout: float = 30.0) -> list:
        """`kubectl delete -f -` with a manifest text: each document's kind, namespace and name are
        what is deleted (its spec is not read; no namespace is the default namespace's, as kubectl's
        current namespace)."""
        from ..model import validate_texts
        self.say(f"kubectl delete -f - <<'EOF'\n{text.rstrip()}\nEOF")
        keys = [[r.kind, r.namespace or "", r.name] for r in validate_texts([["<notebook>", text]]).resources]
        return self._deleted(self._call("POST", "/v1/delete", {"keys": keys}), wait, timeout)

    def delete_resource(self, kind: str, name: str, namespace: str | None = None, wait: bool = True,
                        timeout: float = 30.0) -> list:
        ns = "" if kind in ("Mesh", "Namespace", "GatewayClass") else (namespace or self.namespace)
        self.say(f"kubectl delete {kind.lower()} {name}" + (f" -n {ns}" if ns else ""))
        return self._deleted(self._call("POST", "/v1/delete", {"keys": [[kind, ns, name]]}), wait, timeout)

    def _deleted(self, out: dict, wait: bool, timeout: float) -> list:
        """After a delete: wait until the proxies that remain run without what was deleted (the
        pods that go away are not waited for)."""
        if wait:
            self.converge(timeout, out.get("versions"), pods=False)
        return out["results"]

    def converge(self, timeout: float = 30.0, versions: dict | None = None, pods: bool = True) -> dict:
        """Wait until the change that answered `versions` (apply, delete) is in effect at every
        proxy a pod runs: each has ACKed that configuration version or a newer one; and, unless
        pods=False, every pod runs and is ready. Without versions: what the proxies are given now."""
        try:
            return wait_converged(self.client, timeout, versions, pods)
        except LabError as exc:
            raise TargetError(str(exc)) from exc

    def get(self, kind: str, name: str | None = None, namespace: str | None = None) -> list:
        q = f"/v1/resources?kind={kind}"
        if namespace is not None and kind not in ("Mesh", "Namespace", "GatewayClass"):
            q += f"&namespace={namespace}"
        if name:
            q += f"&name={name}"
        items = self._call("GET", q)["items"]
        return [dict(i["doc"], status=i["status"], metadata=dict(i["doc"].get("metadata", {}), uid=i["uid"],
                                                                  generation=i["generation"])) for i in items]

    def pods(self, namespace: str | None = None) -> list:
        pods = self._call("GET", "/v1/pods")["pods"]
        return [p for p in pods if namespace is None or p["namespace"] == namespace]

    def events(self, kind: str, name: str, namespace: str = "") -> list:
        return self._call("GET", f"/v1/events?kind={kind}&namespace={namespace}&name={name}")["events"]

    # traffic ----------------------------------------------------------------------------
    def gateway_url(self, gateway: str | None = None, listener: int | None = None) -> str:
        """Where the gateway (the first, or the one whose App Mesh name starts with `gateway`)
        answers: 127.0.0.1 and the port its Service exposes for `listener` (default: its first)."""
        try:
            host, port = gateway_address(self.client, gateway, listener)
        except LabError as exc:
            raise TargetError(str(exc)) from exc
        return f"http://{host}:{port}"

    def curl(self, path: str, headers: dict | None = None, method: str = "GET", body: bytes | None = None,
             timeout: float = 10.0, gateway: str | None = None, quiet: bool = False) -> Response:
        url = self.gateway_url(gateway)
        if not quiet:
            hs = " ".join(f"-H '{k}: {v}'" for k, v in (headers or {}).items())
            self.say(f"curl {'-X ' + method + ' ' if method != 'GET' else ''}{hs + ' ' if hs else ''}$GATEWAY{path}")
        host, port = url.split("//")[1].split(":")
        return request(host, int(port), method, path, headers, body, timeout)

    # proxies ----------------------------------------------------------------------------
    def admin_socket(self, proxy: str) -> str:
        """The Unix socket of a running Envoy's admin interface (mode 0600, in the lab's folder)."""
        out = self._call("GET", f"/v1/proxy?proxy={quote(proxy, safe='')}", ok=(200, 404))
        if "admin_socket" not in out:
            raise TargetError(out.get("error", f"no running Envoy for {proxy}"))
        return out["admin_socket"]

    def admin(self, proxy: str, path: str, method: str = "GET") -> Response:
        from ..runtime.envoy import admin_request
        sock = self.admin_socket(proxy)
        t0 = time.perf_counter()
        try:
            status, body = admin_request(sock, method, path, 10)
        except (OSError, http.client.HTTPException) as exc:
            raise TargetError(f"Envoy admin {method} {path} at {sock} failed: {exc}") from exc
        return Response(status, {}, body, (time.perf_counter() - t0) * 1000)

    def _exec_target(self, proxy: str) -> str:
        """What `kubectl exec` needs for a proxy given by pod, Deployment or resource name:
        `-n <namespace> deploy/<deployment>` (the proxy string itself when no pod matches)."""
        if not self.echo:
            return f"deploy/{proxy}"
        for p in self.pods():
            if not p.get("proxy"):
                continue
            _, ns, name = p["proxy"].split("/", 2)
            if proxy in (p["name"], p["owner"], name, f"{name}_{ns}", f"{ns}/{p['name']}"):
                return f"-n {ns} deploy/{p['owner']}"
        return f"deploy/{proxy}"

    def config_dump(self, proxy: str) -> dict:
        self.say(f"kubectl exec {self._exec_target(proxy)} -c envoy -- curl -s localhost:9901/config_dump")
        return self.admin(proxy, "/config_dump").json()

    def stats(self, proxy: str, filter: str | None = None) -> dict:
        self.say(f"kubectl exec {self._exec_target(proxy)} -c envoy -- curl -s localhost:9901/stats"
                 + (f"?filter={filter}" if filter else ""))
        text = self.admin(proxy, "/stats" + (f"?filter={filter}" if filter else "")).text
        out = {}
        for line in text.splitlines():
            k, _, v = line.partition(": ")
            if v.strip().isdigit():
                out[k] = int(v)
        return out

    def logs(self, pod: str, container: str | None = None, tail: int = 0) -> str:
        pods = self.pods()
        p = next((x for x in pods if x["name"] == pod or x["owner"] == pod), None)
        if p is None:
            raise TargetError(f"no pod {pod!r}")
        names = [c["name"] for c in p["containers"]]
        container = container or next((n for n in names if n != "envoy"), names[0])
        self.say(f"kubectl logs {p['name']} -n {p['namespace']} -c {container}" + (f" --tail {tail}" if tail else ""))
        c = next(x for x in p["containers"] if x["name"] == container)
        files = ([Path(c["log"]).with_name("envoy.log")] if container == "envoy" else []) + [Path(c["log"])]
        lines = []
        for f in files:
            if f.exists():
                lines += f.read_text(errors="replace").splitlines()
        return "\n".join(lines[-tail:] if tail else lines)

    def kill(self, pod: str, container: str, signal: int = 9) -> bool:
        """Fault drills: kill one process of a pod."""
        p = next(x for x in self.pods() if x["name"] == pod or x["owner"] == pod)
        return self._call("POST", "/v1/kill", {"process": f"{p['namespace']}/{p['name']}/{container}",
                                               "signal": signal}, ok=(200, 404)).get("killed", False)

