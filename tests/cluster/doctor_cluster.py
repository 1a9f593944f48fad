"""A recorded cluster for the doctor's checks: answers `docker`, `kind`, `kubectl` and `helm`
command lines the way the real tools print them, from the recorded objects of
testdata/cluster.json plus what the doctor reads besides (the webhook configuration and its
certificate Secret, the controller's log, proxyinit logs, Envoy's /ready). `helm template` runs
the real helm on the real chart. Tests break one thing at a time and check the doctor says so.
"""
from __future__ import annotations

import base64
import copy
import json
import subprocess

from lab.controller.webhook import make_certificate
from lab.doctor.checks import Answer
from lab.targets.base import Response
from tests.cluster.conftest import cluster_objects
from tests.conftest import ROOT

SA = "system:serviceaccount:appmesh-system:appmesh-lab-controller"
CONTROLLER_LOG = """2026-10-05 09:00:01 INFO caches synced; xds on :15010, webhook on :9443
2026-10-05 09:00:02 INFO caBundle of MutatingWebhookConfiguration appmesh-lab-controller updated
"""
PROXYINIT_LOG = "proxy-init: inbound ports [8080] -> 15000, outbound -> 15001 (ignoring uid 1337, ports 22, ips 169.254.169.254)\n"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class RecordedCluster:
    def __init__(self, helm: str, target: str = "kind"):
        self.helm = helm
        self.target = target
        self.objects = copy.deepcopy(cluster_objects())
        pems = make_certificate(["appmesh-lab-controller-webhook.appmesh-system.svc"])
        self.secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                       "metadata": {"name": "appmesh-lab-controller-webhook-tls", "namespace": "appmesh-system"},
                       "data": {k: b64(v) for k, v in pems.items()}}
        self.ca = pems["ca.crt"]
        self.webhook_configs = {}  # (plural, name) -> object, filled from the chart as rendered
        self.denied: set = set()  # (verb, resource, subresource) kubectl auth can-i answers "no" for
        self.down: set = set()  # tools that fail (`docker` daemon down, ...)
        self.missing: set = set()  # tools not installed
        self.controller_log = CONTROLLER_LOG
        self.proxyinit_exit = 0
        self.ready_answer = "LIVE\n"
        self.dry_run_errors: dict = {}  # manifest path -> stderr lines
        self.inject = True
        self.http_answer = Response(200, {"server": "envoy", "content-type": "application/json"},
                                    b'{"service": "product-service"}')
        self.requests: list = []
        self.calls: list = []
        for p in self.objects["Pod"]:  # meshed pods ran proxyinit
            if any(c["name"] == "envoy" for c in p["spec"]["containers"]) and p["metadata"]["name"].startswith(
                    ("product", "review")):
                p["spec"]["initContainers"] = [{"name": "proxyinit", "image": "appmesh-lab/proxy-init:0.1.0"}]
                p["status"]["initContainerStatuses"] = [{"name": "proxyinit", "ready": False, "restartCount": 0,
                                                         "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]
        gw = next(s for s in self.objects["Service"] if s["metadata"]["name"] == "appmesh-gateway")
        gw["spec"]["ports"][0]["nodePort"] = 30080

    # ---- what the doctor is given ------------------------------------------------------------

    def which(self, tool: str):
        return None if tool in self.missing else f"/usr/bin/{tool}"

    def http(self, host, port, method, path, headers, body, timeout):
        self.requests.append((host, port, method, path))
        return self.http_answer

    def __call__(self, argv, input=None, timeout=60) -> Answer:
        self.calls.append(list(argv))
        tool = argv[0]
        if tool in self.down:
            return Answer(argv, 1, "", f"{tool}: Cannot connect to the Docker daemon at unix:///var/run/docker.sock")
        if tool == "docker" and argv[1] == "port":
            assert argv[2] == "appmesh-gateway-demo-control-plane", argv
            return Answer(argv, 0, "30080/tcp -> 127.0.0.1:18080\n30081/tcp -> 127.0.0.1:18081\n")
        if tool == "docker":
            return Answer(argv, 0, "27.3.1\n")
        if tool == "kind":
            return Answer(argv, 0, "kind v0.27.0 go1.23.6 linux/amd64\n")
        if tool == "eksctl":
            return Answer(argv, 0, "0.210.0\n")
        if tool == "aws":
            return Answer(argv, 0, '{"Account": "111122223333"}' if "sts" in argv else "aws-cli/2.27.0\n")
        if tool == "helm":
            if argv[1] == "version":
                return Answer(argv, 0, "v3.17.3+ge4da497\n")
            p = subprocess.run([self.helm, *argv[1:]], cwd=ROOT, capture_output=True, text=True, timeout=60)
            if p.returncode == 0 and argv[1] == "template":
                self._webhooks_from(p.stdout)
            return Answer(argv, p.returncode, p.stdout, p.stderr)
        if tool == "kubectl":
            return self.kubectl(argv, input)
        return Answer(argv, 127, "", f"{tool}: command not found")

    # ---- kubectl -----------------------------------------------------------------------------

    def _webhooks_from(self, rendered: str) -> None:
        import yaml
        for d in yaml.safe_load_all(rendered):
            if isinstance(d, dict) and d.get("kind", "").endswith("WebhookConfiguration"):
                key = (d["kind"].lower() + "s", d["metadata"]["name"])
                if key not in self.webhook_configs:
                    for w in d.get("webhooks") or []:
                        w["clientConfig"]["caBundle"] = b64(self.ca)
                    self.webhook_configs[key] = d

    def _list(self, kind: str, namespace: str | None = None, label: str | None = None) -> dict:
        items = [o for o in self.objects.get(kind, []) if namespace is None or o["metadata"].get("namespace") == namespace]
        if label:
            k, _, v = label.partition("=")
            items = [o for o in items if (o["metadata"].get("labels") or {}).get(k) == v]
        return {"apiVersion": "v1", "kind": "List", "items": copy.deepcopy(items)}

    def kubectl(self, argv, input) -> Answer:
        a = argv[1:]
        ok = lambda out: Answer(argv, 0, out if isinstance(out, str) else json.dumps(out))  # noqa: E731
        ns = a[a.index("-n") + 1] if "-n" in a else None
        if a[:2] == ["config", "current-context"]:
            return ok(f"kind-appmesh-gateway-demo\n" if self.target == "kind" else "arn:aws:eks:...\n")
        if a[0] == "version":
            return ok({"clientVersion": {"gitVersion": "v1.32.4"}, "serverVersion": {"gitVersion": "v1.32.2"}})
        if a[:2] == ["version", "--client"]:
            return ok({"clientVersion": {"gitVersion": "v1.32.4"}})
        if a[:3] == ["get", "crd", "-o"]:
            return ok("".join(f"customresourcedefinition.apiextensions.k8s.io/{p}.appmesh.k8s.aws\n" for p in (
                "gatewayroutes", "meshes", "virtualgateways", "virtualnodes", "virtualrouters", "virtualservices")))
        if a[:2] == ["get", "deployment"]:
            d = next((o for o in self.objects["Deployment"] if o["metadata"]["name"] == a[2]), None)
            return ok(d) if d else Answer(argv, 1, "", f'Error from server (NotFound): deployments.apps "{a[2]}" not found')
        if a[:3] == ["auth", "can-i", a[2]]:
            sub = next((x.split("=", 1)[1] for x in a if x.startswith("--subresource=")), "")
            assert f"--as={SA}" in a, a
            return Answer(argv, 1, "no\n") if (a[2], a[3], sub) in self.denied else ok("yes\n")
        if a[:2] == ["get", "secret"]:
            assert a[-1] == "jsonpath={.data.tls\\.crt}", a  # the doctor never reads the key
            return ok(self.secret["data"]["tls.crt"])
        if a[0] == "get" and a[1].endswith("webhookconfigurations"):
            cfg = self.webhook_configs.get((a[1], a[2]))
            return ok(cfg) if cfg else Answer(argv, 1, "", f'Error from server (NotFound): {a[1]} "{a[2]}" not found')
        if a[:2] == ["get", "namespaces"]:
            return ok(self._list("Namespace", label=a[a.index("-l") + 1]))
        if a[:2] == ["get", "virtualnodes.appmesh.k8s.aws"]:
            return ok(self._list("VirtualNode", ns))
        if a[:2] == ["apply", "--dry-run=server"] and "-" in a:
            pod = json.loads(input)
            if self.inject:
                pod["spec"]["containers"].append({"name": "envoy", "image": "envoyproxy/envoy:v1.40.0"})
                pod["spec"]["initContainers"] = [{"name": "proxyinit", "image": "appmesh-lab/proxy-init:0.1.0"}]
            return ok(pod)
        if a[:2] == ["apply", "--dry-run=server"]:
            path = a[a.index("-f") + 1]
            errors = self.dry_run_errors.get(path, [])
            out = "".join(f"virtualnode.appmesh.k8s.aws/x{i} created (server dry run)\n" for i in range(3))
            return Answer(argv, 1 if errors else 0, out, "\n".join(errors))
        if a[0] == "logs" and a[1:3] == ["-n", "appmesh-system"]:
            return ok(self.controller_log)
        if a[0] == "logs" and a[-1] == "proxyinit":
            return ok(PROXYINIT_LOG) if self.proxyinit_exit == 0 else Answer(
                argv, 0, "iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied\n")
        if a[:3] == ["get", "pods", "-A"]:
            pods = self._list("Pod")
            for p in pods["items"]:
                for s in p["status"].get("initContainerStatuses") or []:
                    s["state"]["terminated"]["exitCode"] = self.proxyinit_exit
            return ok(pods)
        if a[:2] == ["get", "--raw"]:
            return ok(self.ready_answer)
        if a[:2] == ["get", "services"]:
            return ok(self._list("Service", ns))
        if a[:2] == ["get", "gatewayroutes.appmesh.k8s.aws"]:
            return ok("".join(f"gatewayroute.appmesh.k8s.aws/{o['metadata']['name']}\n"
                              for o in self.objects["GatewayRoute"]))
        raise AssertionError(f"the recorded cluster has no answer for {argv}")
