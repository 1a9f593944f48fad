"""The first-run checklist of a kind or EKS cluster, one check at a time.

Every check reads the cluster the way a user would, with `kubectl` (and `helm`, `docker`,
`kind`/`eksctl`), through one `Runner`; the answers are kept for the diagnostic bundle and the
API objects read with `-o json` for `--record`. A check returns what it found or raises
`CheckFailed` with what is wrong and what to do; the doctor stops at the first failure, because
every later check needs the earlier ones to hold (no point dry-running pods without a webhook).
"""
from __future__ import annotations

import base64
import json
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field

import yaml

from ..targets.base import TargetError, request
from ..targets.cluster import CHART, CONTROLLER_NAMESPACE, KIND_PORTS, RELEASE, ROOT
from ..targets.prerequisites import INSTALL, PREREQUISITES

INJECT_LABEL = "appmesh.k8s.aws/sidecarInjectorWebhook"
SERVICE_ACCOUNT = f"system:serviceaccount:{CONTROLLER_NAMESPACE}:{RELEASE}"
WEBHOOK_SECRET = f"{RELEASE}-webhook-tls"
VERSION_COMMANDS = {"docker": ["docker", "version", "--format", "{{.Server.Version}}"],
                    "kind": ["kind", "version"], "eksctl": ["eksctl", "version"], "aws": ["aws", "--version"],
                    "kubectl": ["kubectl", "version", "--client", "-o", "json"],
                    "helm": ["helm", "version", "--short"]}
# The manifest library a server-side dry run checks: everything under manifests/ that is a
# Kubernetes object (not the chart's templates, the CRDs the chart installs, kind's or eksctl's configs).
DRY_RUN_SETS = ("manifests/walkthrough",) + tuple(
    f"manifests/examples/{d.name}" for d in sorted((ROOT / "manifests" / "examples").iterdir()) if d.is_dir())


class CheckFailed(Exception):
    def __init__(self, what: str, hint: str):
        super().__init__(what)
        self.what, self.hint = what, hint


@dataclass
class Answer:
    argv: list
    rc: int
    out: str
    err: str = ""
    seconds: float = 0.0


def subprocess_runner(argv: list[str], input: str | None = None, timeout: float = 60) -> Answer:
    t0 = time.monotonic()
    try:
        p = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except FileNotFoundError:
        return Answer(list(argv), 127, "", f"{argv[0]}: command not found", time.monotonic() - t0)
    except subprocess.TimeoutExpired:
        return Answer(list(argv), 124, "", f"no answer within {timeout:.0f}s", time.monotonic() - t0)
    return Answer(list(argv), p.returncode, p.stdout, p.stderr, time.monotonic() - t0)


@dataclass
class Context:
    """What the checks share: the target, how to run commands, and everything they saw."""
    target: str
    runner: object = subprocess_runner
    which: object = shutil.which
    http: object = request  # (host, port, method, path, headers, body, timeout) -> Response
    answers: list = field(default_factory=list)  # every Answer, in order (the bundle's transcript)
    objects: dict = field(default_factory=dict)  # kind -> {(namespace, name): object} read from the API
    facts: dict = field(default_factory=dict)  # what one check found and a later one needs

    def run(self, argv: list[str], input: str | None = None, timeout: float = 60) -> Answer:
        a = self.runner(list(argv), input=input, timeout=timeout)
        self.answers.append(a)
        return a

    def must(self, argv: list[str], hint: str, input: str | None = None, timeout: float = 60) -> str:
        a = self.run(argv, input=input, timeout=timeout)
        if a.rc != 0:
            raise CheckFailed(f"`{shlex.join(argv)}` failed (exit {a.rc}): {(a.err or a.out).strip()[-600:]}", hint)
        return a.out

    def get_json(self, argv: list[str], hint: str) -> dict:
        """`kubectl get ... -o json`; the objects it returns are remembered for --record."""
        text = self.must(argv, hint)
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise CheckFailed(f"`{shlex.join(argv)}` did not answer JSON: {text[:200]!r}", hint) from exc
        for o in doc.get("items", [doc]) if isinstance(doc, dict) else []:
            if isinstance(o, dict) and o.get("kind") and (o.get("metadata") or {}).get("name"):
                meta = o["metadata"]
                self.objects.setdefault(o["kind"], {})[(meta.get("namespace", ""), meta["name"])] = o
        return doc


def kubectl(*args: str) -> list[str]:
    return ["kubectl", *args]


# ---- the checks ------------------------------------------------------------------------------

def check_tools(ctx: Context) -> str:
    """The tools the target needs, installed and answering; docker's daemon reachable."""
    missing, versions = [], []
    for tool in PREREQUISITES[ctx.target]:
        if not ctx.which(tool):
            missing.append(f"{tool} is not installed ({INSTALL[tool]})")
            continue
        a = ctx.run(VERSION_COMMANDS[tool], timeout=30)
        if a.rc != 0:
            said = " ".join((a.err or a.out).split())[:200]
            missing.append(f"docker is installed but its daemon does not answer ({said})" if tool == "docker"
                           else f"`{shlex.join(VERSION_COMMANDS[tool])}` fails ({said}): reinstall {tool} "
                                f"({INSTALL[tool]})")
            continue
        out = a.out.strip()
        if tool == "kubectl":
            try:
                out = json.loads(out)["clientVersion"]["gitVersion"]
            except (ValueError, KeyError, TypeError):
                pass
        first = out.splitlines()[0] if out else "?"
        versions.append(first if first.startswith(tool) else f"{tool} {first}")
    if missing:
        hint = f"install what is missing, then run `appmesh-lab doctor --target {ctx.target}` again " \
               "(docs/clusters.md#prerequisites)"
        if any(m.startswith("docker is installed") for m in missing):
            hint = ("start Docker (Docker Desktop, or `sudo systemctl start docker`), or check DOCKER_HOST and that "
                    "your user may use the docker socket; " + hint)
        raise CheckFailed("; ".join(missing), hint)
    if ctx.target == "eks":
        who = ctx.run(["aws", "sts", "get-caller-identity", "--output", "json"], timeout=30)
        if who.rc != 0:
            raise CheckFailed(f"no usable AWS credentials: {(who.err or who.out).strip()[:300]}",
                              "aws configure, or set AWS_PROFILE (the account the EKS cluster is in)")
    return ", ".join(versions)


def check_api_server(ctx: Context) -> str:
    """The current kube context reaches an API server, and the App Mesh CRDs are installed."""
    context = ctx.run(kubectl("config", "current-context")).out.strip() or "(none)"
    ctx.facts["context"] = context
    doc = ctx.get_json(kubectl("version", "-o", "json"), f"bring the cluster up (scripts/{ctx.target}-up.sh), or "
                       "select its context: `kubectl config use-context ...`")
    server = (doc.get("serverVersion") or {}).get("gitVersion")
    if not server:
        raise CheckFailed("kubectl reaches no API server (no serverVersion in `kubectl version`)",
                          f"bring the cluster up (scripts/{ctx.target}-up.sh) or check `kubectl config current-context`")
    crds = ctx.run(kubectl("get", "crd", "-o", "name"))
    have = {line.split("/", 1)[-1] for line in crds.out.split()}
    want = {f"{p}.appmesh.k8s.aws" for p in ("meshes", "virtualnodes", "virtualservices", "virtualrouters",
                                              "virtualgateways", "gatewayroutes")}
    if crds.rc != 0 or not want <= have:
        raise CheckFailed("the App Mesh CRDs are not installed: missing " + ", ".join(sorted(want - have)),
                          f"install the controller chart: helm upgrade -i {RELEASE} {CHART} -n {CONTROLLER_NAMESPACE} "
                          "--create-namespace")
    return f"context {context}: API server {server}; the six App Mesh CRDs are installed"


def check_controller(ctx: Context) -> str:
    d = ctx.get_json(kubectl("get", "deployment", RELEASE, "-n", CONTROLLER_NAMESPACE, "-o", "json"),
                     f"install the controller chart: helm upgrade -i {RELEASE} {CHART} -n {CONTROLLER_NAMESPACE} "
                     "--create-namespace")
    want, ready = (d.get("spec") or {}).get("replicas", 1), (d.get("status") or {}).get("readyReplicas", 0)
    if ready < want:
        raise CheckFailed(f"controller {ready}/{want} ready",
                          f"kubectl -n {CONTROLLER_NAMESPACE} describe pods -l app.kubernetes.io/name={RELEASE}; "
                          f"kubectl -n {CONTROLLER_NAMESPACE} logs deploy/{RELEASE}")
    image = next((c.get("image") for c in (d["spec"]["template"]["spec"].get("containers") or [])), "?")
    return f"deployment {CONTROLLER_NAMESPACE}/{RELEASE} {ready}/{want} ready ({image})"


def rendered_chart(ctx: Context) -> list[dict]:
    if "chart" not in ctx.facts:
        text = ctx.must(["helm", "template", RELEASE, CHART, "--namespace", CONTROLLER_NAMESPACE],
                        f"`helm lint {CHART}` says what is wrong with the chart")
        ctx.facts["chart"] = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    return ctx.facts["chart"]


def permissions(chart: list[dict]) -> list[tuple]:
    """(verb, resource as kubectl names it, subresource, namespace or None) for every rule of the
    chart's ClusterRoles and Roles: what the controller may do, so what `can-i` must confirm."""
    out = []
    for doc in chart:
        if doc.get("kind") not in ("ClusterRole", "Role"):
            continue
        ns = (doc.get("metadata") or {}).get("namespace") or CONTROLLER_NAMESPACE if doc["kind"] == "Role" else None
        for rule in doc.get("rules") or []:
            for group in rule.get("apiGroups") or [""]:
                for res in rule.get("resources") or []:
                    base, _, sub = res.partition("/")
                    name = base + (f".{group}" if group else "")
                    for verb in rule.get("verbs") or []:
                        for rn in rule.get("resourceNames") or [None]:
                            out.append((verb, name + (f"/{rn}" if rn else ""), sub, ns))
    return out


def check_rbac(ctx: Context) -> str:
    """`kubectl auth can-i` as the controller's ServiceAccount, for every permission the chart grants it."""
    perms = permissions(rendered_chart(ctx))
    if not perms:
        raise CheckFailed("the chart renders no ClusterRole or Role", f"`helm template {RELEASE} {CHART}` to look")
    denied = []
    for verb, resource, sub, ns in perms:
        argv = kubectl("auth", "can-i", verb, resource, f"--as={SERVICE_ACCOUNT}")
        argv += [f"--subresource={sub}"] if sub else []
        argv += ["-n", ns] if ns else ["--all-namespaces"]
        a = ctx.run(argv)
        if a.out.strip() != "yes":
            denied.append(f"{verb} {resource}{'/' + sub if sub else ''}{' in ' + ns if ns else ''}"
                          f" ({(a.out or a.err).strip()[:80] or 'no answer'})")
    if denied:
        raise CheckFailed(f"the controller's ServiceAccount may not: {'; '.join(denied)}",
                          f"reinstall the chart (helm upgrade -i {RELEASE} {CHART} -n {CONTROLLER_NAMESPACE}); if the "
                          "denial stays, an admission policy or a changed ClusterRole overrides it: "
                          f"kubectl describe clusterrole {RELEASE}")
    return f"{len(perms)} permissions, each confirmed with kubectl auth can-i as {SERVICE_ACCOUNT}"


def _pem_certs(text: str) -> list:
    from cryptography import x509
    return x509.load_pem_x509_certificates(text.encode()) if "BEGIN CERTIFICATE" in text else []


def signed_by(leaf_pem: str, ca_pem: str) -> bool:
    """Whether the first certificate of leaf_pem was issued by one of the CA certificates in ca_pem."""
    leaf = _pem_certs(leaf_pem)
    if not leaf:
        return False
    from cryptography.exceptions import InvalidSignature
    for ca in _pem_certs(ca_pem):
        try:
            leaf[0].verify_directly_issued_by(ca)
            return True
        except (ValueError, TypeError, InvalidSignature):  # another issuer, or a signature that does not verify
            continue
    return False


def check_webhooks(ctx: Context) -> str:
    """Each admission webhook the chart renders has a caBundle that signed the serving certificate."""
    configs = [(d["kind"], d["metadata"]["name"]) for d in rendered_chart(ctx)
               if d.get("kind") in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")]
    # only the certificate: the key never enters the transcript or the bundle
    crt = ctx.must(kubectl("get", "secret", WEBHOOK_SECRET, "-n", CONTROLLER_NAMESPACE, "-o",
                           "jsonpath={.data.tls\\.crt}"),
                   f"the controller makes this Secret when it starts: kubectl -n {CONTROLLER_NAMESPACE} logs deploy/{RELEASE}")
    try:
        serving = base64.b64decode(crt.strip()).decode(errors="replace")
    except ValueError:
        serving = ""
    if not _pem_certs(serving):
        raise CheckFailed(f"Secret {CONTROLLER_NAMESPACE}/{WEBHOOK_SECRET} holds no tls.crt",
                          f"delete it and restart the controller: kubectl -n {CONTROLLER_NAMESPACE} delete secret "
                          f"{WEBHOOK_SECRET}; kubectl -n {CONTROLLER_NAMESPACE} rollout restart deploy/{RELEASE}")
    count = 0
    for kind, name in configs:
        plural = kind.lower() + "s"
        cfg = ctx.get_json(kubectl("get", plural, name, "-o", "json"),
                           f"reinstall the chart: helm upgrade -i {RELEASE} {CHART} -n {CONTROLLER_NAMESPACE}")
        for w in cfg.get("webhooks") or []:
            bundle = (w.get("clientConfig") or {}).get("caBundle") or ""
            ca = base64.b64decode(bundle).decode(errors="replace") if bundle else ""
            if not ca:
                raise CheckFailed(f"{kind} {name}, webhook {w.get('name')}: caBundle is empty",
                                  "the controller fills it in when it starts and re-checks it every minute; "
                                  f"kubectl -n {CONTROLLER_NAMESPACE} logs deploy/{RELEASE} | grep caBundle")
            if not signed_by(serving, ca):
                raise CheckFailed(f"{kind} {name}, webhook {w.get('name')}: its caBundle did not sign the serving "
                                  f"certificate in Secret {CONTROLLER_NAMESPACE}/{WEBHOOK_SECRET}, so the API server "
                                  "will refuse to call it (x509: certificate signed by unknown authority)",
                                  f"kubectl -n {CONTROLLER_NAMESPACE} rollout restart deploy/{RELEASE} (the controller "
                                  "puts its CA back into the configuration)")
            count += 1
    if not count:
        raise CheckFailed("the chart renders no admission webhook", f"`helm template {RELEASE} {CHART}` to look")
    return f"{count} webhook(s) in {len(configs)} configuration(s): caBundle signed the serving certificate"


def _canary(ctx: Context) -> dict:
    """A pod the injector must mutate: in a namespace with injection enabled, labelled like one
    VirtualNode's podSelector there."""
    hint = ("apply the walkthrough's namespace and virtual nodes first (kubectl apply -f manifests/walkthrough/), or "
            f"label a namespace {INJECT_LABEL}=enabled and give it a VirtualNode")
    namespaces = ctx.get_json(kubectl("get", "namespaces", "-l", f"{INJECT_LABEL}=enabled", "-o", "json"), hint)
    for ns in namespaces.get("items") or []:
        name = ns["metadata"]["name"]
        nodes = ctx.get_json(kubectl("get", "virtualnodes.appmesh.k8s.aws", "-n", name, "-o", "json"), hint)
        for vn in nodes.get("items") or []:
            labels = ((vn.get("spec") or {}).get("podSelector") or {}).get("matchLabels") or {}
            if labels:
                return {"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": "appmesh-lab-doctor-canary", "namespace": name, "labels": labels},
                        "spec": {"containers": [{"name": "app", "image": "appmesh-lab/sample-app:0.1.0",
                                                 "ports": [{"containerPort": 8080}]}]},
                        "_virtualnode": vn["metadata"]["name"]}
    raise CheckFailed(f"no namespace labelled {INJECT_LABEL}=enabled has a VirtualNode with podSelector.matchLabels",
                      hint)


def check_injection(ctx: Context) -> str:
    """A server-side dry run of a canary pod: the webhook adds the envoy sidecar and proxyinit."""
    pod = _canary(ctx)
    node = pod.pop("_virtualnode")
    ns = pod["metadata"]["namespace"]
    out = ctx.must(kubectl("apply", "--dry-run=server", "-o", "json", "-f", "-"),
                   f"the API server or the webhook refused the pod: kubectl -n {CONTROLLER_NAMESPACE} logs "
                   f"deploy/{RELEASE}", input=json.dumps(pod))
    try:
        got = json.loads(out)
    except ValueError as exc:
        raise CheckFailed(f"the dry run did not answer JSON: {out[:200]!r}", "run it by hand to see") from exc
    names = [c["name"] for c in (got.get("spec") or {}).get("containers") or []]
    inits = [c["name"] for c in (got.get("spec") or {}).get("initContainers") or []]
    added = [f"container {n}" for n in names if n != "app"] + [f"init container {n}" for n in inits]
    ctx.facts["injected"] = got
    if "envoy" not in names or "proxyinit" not in inits:
        raise CheckFailed(f"the canary pod in {ns} (labels of VirtualNode {node}) came back without "
                          f"{'an envoy container' if 'envoy' not in names else 'the proxyinit init container'}: "
                          f"containers {names}, init containers {inits}",
                          "the webhook was not called: check that the MutatingWebhookConfiguration's "
                          f"namespaceSelector matches the namespace's labels and kubectl -n {CONTROLLER_NAMESPACE} "
                          f"logs deploy/{RELEASE}")
    return f"canary pod in {ns} (VirtualNode {node}): the webhook added " + ", ".join(added)


def check_manifests(ctx: Context) -> str:
    """A server-side dry run of the manifest library (CRD schemas and webhooks judge each object).
    A dry run creates nothing, so objects in a namespace the same set would create cannot be
    judged until it exists: those are counted, not failed."""
    bad, judged, waiting = [], 0, 0
    for path in DRY_RUN_SETS:
        a = ctx.run(kubectl("apply", "--dry-run=server", "-f", path))
        judged += sum(1 for line in a.out.splitlines() if "(server dry run)" in line)
        for line in a.err.splitlines():
            if re.search(r'namespaces? "[^"]+" not found', line):
                waiting += 1
            elif line.strip() and not line.startswith("Warning:"):
                bad.append(f"{path}: {line.strip()}")
    if bad:
        raise CheckFailed("the API server rejects manifests the kit ships: " + "; ".join(bad[:5]),
                          "the CRDs or webhooks on the cluster differ from the kit's: reinstall the chart "
                          f"(helm upgrade -i {RELEASE} {CHART} -n {CONTROLLER_NAMESPACE}) and compare "
                          "`appmesh-lab validate manifests/`")
    return (f"{judged} objects in {len(DRY_RUN_SETS)} sets accepted"
            + (f"; {waiting} wait for their namespace to exist" if waiting else ""))


HTTP_4XX = re.compile(r"(?:^|[\s(:=])(4\d\d)(?:[\s):,]|$)")


def check_controller_log(ctx: Context) -> str:
    """The controller's log: the API server answered none of its requests with a 4xx."""
    out = ctx.must(kubectl("logs", "-n", CONTROLLER_NAMESPACE, f"deploy/{RELEASE}", "--tail", "2000"),
                   f"kubectl -n {CONTROLLER_NAMESPACE} get pods")
    ctx.facts["controller_log"] = out
    hits = [line for line in out.splitlines() if re.search(r"\b(WARNING|ERROR)\b", line) and HTTP_4XX.search(line)]
    if hits:
        raise CheckFailed(f"the API server answered the controller with 4xx {len(hits)} time(s); first: {hits[0][:300]}",
                          "403: RBAC (see the can-i check); 404: a missing CRD or namespace; 409: two writers "
                          "(check that one Lease holder writes); 422: an object the API server's schema refuses")
    return f"{len(out.splitlines())} log lines, no 4xx answer"


def _pods(ctx: Context) -> list[dict]:
    if "pods" not in ctx.facts:
        ctx.facts["pods"] = ctx.get_json(kubectl("get", "pods", "-A", "-o", "json"), "check the API server").get(
            "items") or []
    return ctx.facts["pods"]


def check_proxyinit(ctx: Context) -> str:
    """Every meshed pod's proxyinit init container ran to exit 0, and its log names the redirect."""
    meshed = [p for p in _pods(ctx) if any(c["name"] == "proxyinit" for c in p["spec"].get("initContainers") or [])]
    if not meshed:
        raise CheckFailed("no pod runs a proxyinit init container (no meshed pod)",
                          "apply the walkthrough's applications (kubectl apply -f manifests/walkthrough/)")
    seen = []
    for p in meshed:
        ns, name = p["metadata"]["namespace"], p["metadata"]["name"]
        st = next((s for s in (p.get("status") or {}).get("initContainerStatuses") or [] if s["name"] == "proxyinit"), {})
        done = ((st.get("state") or {}).get("terminated") or (st.get("lastState") or {}).get("terminated") or {})
        log = ctx.run(kubectl("logs", name, "-n", ns, "-c", "proxyinit"))
        if done.get("exitCode") != 0 or "proxy-init: inbound ports" not in log.out:
            raise CheckFailed(f"proxyinit of pod {ns}/{name} did not finish cleanly (exit {done.get('exitCode')}): "
                              f"{(log.out or log.err).strip()[-300:] or 'no log'}",
                              "it needs NET_ADMIN and NET_RAW (a PodSecurity 'restricted' namespace forbids them) and "
                              "iptables in the image; kubectl describe pod " + f"{name} -n {ns}")
        seen.append(f"{ns}/{name}")
    return f"{len(seen)} meshed pod(s): proxyinit exited 0 and set up the redirect"


def _gateway_pod(ctx: Context) -> dict:
    for p in _pods(ctx):
        for c in p["spec"].get("containers") or []:
            env = {e.get("name"): e.get("value") for e in c.get("env") or []}
            if c["name"] == "envoy" and "/virtualGateway/" in (env.get("APPMESH_RESOURCE_ARN") or ""):
                return p
    raise CheckFailed("no virtual gateway pod runs an Envoy",
                      "apply a VirtualGateway and its Deployment (manifests/walkthrough/08-*, 09-*)")


def check_envoy_ready(ctx: Context) -> str:
    """The gateway's Envoy answers LIVE on /ready (read through the API server's pod proxy)."""
    p = _gateway_pod(ctx)
    ns, name = p["metadata"]["namespace"], p["metadata"]["name"]
    a = ctx.run(kubectl("get", "--raw", f"/api/v1/namespaces/{ns}/pods/{name}:9901/proxy/ready"))
    if a.rc != 0 or a.out.strip() != "LIVE":
        raise CheckFailed(f"Envoy of gateway pod {ns}/{name} is not ready: {(a.out or a.err).strip()[:300]}",
                          f"kubectl logs {name} -n {ns} -c envoy (it has not received its listeners: is the "
                          f"controller's xDS Service reachable? kubectl -n {CONTROLLER_NAMESPACE} get endpoints)")
    ctx.facts["gateway_pod"] = p
    return f"gateway pod {ns}/{name}: Envoy /ready says LIVE"


def gateway_address(ctx: Context) -> tuple[str, int]:
    """Where a client reaches the gateway: kind: 127.0.0.1 and the host port kind publishes for the
    Service's NodePort; EKS: the load balancer's name."""
    p = ctx.facts.get("gateway_pod") or _gateway_pod(ctx)
    labels = p["metadata"].get("labels") or {}
    ns = p["metadata"]["namespace"]
    services = ctx.get_json(kubectl("get", "services", "-n", ns, "-o", "json"), "check the API server")
    for s in services.get("items") or []:
        spec = s.get("spec") or {}
        sel = spec.get("selector") or {}
        if spec.get("type") in ("LoadBalancer", "NodePort") and sel and all(labels.get(k) == v for k, v in sel.items()):
            port = (spec.get("ports") or [{}])[0]
            if ctx.target == "eks":
                ingress = ((s.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
                if not ingress:
                    raise CheckFailed(f"Service {ns}/{s['metadata']['name']} has no load balancer address yet",
                                      "an NLB takes 2-5 minutes, its DNS name a little longer; if it stays empty: "
                                      f"kubectl -n {ns} describe service {s['metadata']['name']} (events)")
                return ingress[0].get("hostname") or ingress[0].get("ip"), int(port.get("port", 80))
            if port.get("nodePort") not in KIND_PORTS:
                raise CheckFailed(f"Service {ns}/{s['metadata']['name']} uses NodePort {port.get('nodePort')}, which "
                                  "the kind cluster does not publish",
                                  "use one of 30080-30083 (manifests/kind/cluster.yaml publishes them on 8080-8083)")
            node = f"{ctx.facts.get('context', '').removeprefix('kind-') or 'appmesh-gateway-demo'}-control-plane"
            published = ctx.run(["docker", "port", node]).out  # "30080/tcp -> 127.0.0.1:8080", as docker publishes it
            seen = {int(m[1]): int(m[2]) for m in re.finditer(r"^(\d+)/tcp -> [\d.]+:(\d+)\s*$", published, re.M)}
            return "127.0.0.1", seen.get(port["nodePort"], KIND_PORTS[port["nodePort"]])
    raise CheckFailed(f"no LoadBalancer or NodePort Service selects the gateway pod in {ns}",
                      "apply one (manifests/walkthrough/09-gateway-deployment.yaml has it)")


def check_gateway_curl(ctx: Context) -> str:
    """A request through the gateway gets Envoy's answer (the walkthrough's /products: 200)."""
    host, port = gateway_address(ctx)
    routes = ctx.run(kubectl("get", "gatewayroutes.appmesh.k8s.aws", "-A", "-o", "name"))
    walkthrough = "gatewayroute.appmesh.k8s.aws/product-gateway-route" in routes.out
    path = "/products" if walkthrough else "/"
    try:
        r = ctx.http(host, port, "GET", path, {}, None, 10)
    except TargetError as exc:
        raise CheckFailed(f"curl http://{host}:{port}{path}: {exc}",
                          "kind: is the node container publishing the port (docker ps)? EKS: do the nodes' security "
                          "groups let the NLB in?") from exc
    ctx.answers.append(Answer(["curl", f"http://{host}:{port}{path}"], 0, f"{r.status}\n{r.headers}\n{r.text[:2000]}"))
    if "envoy" not in (r.headers.get("server") or ""):
        raise CheckFailed(f"http://{host}:{port}{path} answered {r.status} without `server: envoy`: something else "
                          "holds that address", "find what listens there (ss -ltnp) or use another NodePort")
    if walkthrough and r.status != 200:
        raise CheckFailed(f"http://{host}:{port}/products answered {r.status}: {r.text[:200]!r}",
                          "appmesh-lab's lesson 11 walks through each cause; start with "
                          "kubectl get virtualnodes,gatewayroutes -A and the gateway's Envoy log")
    return f"curl http://{host}:{port}{path}: {r.status} from Envoy"


CHECKS = (("tools", check_tools), ("API server", check_api_server), ("controller", check_controller),
          ("RBAC", check_rbac), ("webhooks", check_webhooks), ("injection", check_injection),
          ("manifests", check_manifests), ("controller log", check_controller_log),
          ("proxyinit", check_proxyinit), ("Envoy /ready", check_envoy_ready), ("gateway", check_gateway_curl))

