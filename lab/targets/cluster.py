"""The `kind` and `eks` targets: a real cluster, driven with the commands a user would type.

    t = ClusterTarget("kind")                    # or ClusterTarget("eks", region="us-east-1")
    t.up(); t.apply("manifests/walkthrough/"); t.curl("/products"); t.down()

Every step that changes something runs the real CLI (`kubectl`, `helm`, `kind`, `eksctl`,
`aws`, the scripts/ that chain them) through `sh`, printing the command line first. Reads and
waits use the `kubernetes` client (and boto3 for ECR and load balancers), which is faster and
gives structured answers. The notebooks call the same methods on every target.

On EKS two things differ from the manifests as written (and the printed commands say so):
the kit's sample image is pulled from the account's ECR registry, and LoadBalancer Services
get the annotation that makes the cloud provider create a Network Load Balancer.

What a target needs on this machine is in prerequisites.py; the boto3 steps the shell scripts
call (`python -m lab.targets.cluster ecr-ensure|ecr-registry|ecr-delete|elb-wait-gone ...`) in
aws.py; kubectl's output and pod objects are read by kube_objects.py.
"""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import yaml

# The AWS steps, the prerequisites and the readers of Kubernetes answers live beside this module;
# what was imported from here before stays importable from here, and `python -m lab.targets.cluster`
# still runs the AWS steps' command line (main).
from .aws import (cluster_load_balancers, ecr_delete, ecr_ensure, ecr_registry, main,  # noqa: F401
                  wait_load_balancers_gone)
from .base import Response, Target, TargetError, request
from .kube_objects import parse_results, pod_proxy_get, pod_view
from .prerequisites import check_prerequisites, missing_prerequisites  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
RELEASE = "appmesh-lab-controller"
CONTROLLER_NAMESPACE = "appmesh-system"
HEALTH_PORT = 8081  # the chart's healthPort: the controller's /healthz, /readyz and /status
CHART = "manifests/charts/appmesh-lab-controller"
KIND_CONFIG = "manifests/kind/cluster.yaml"
EKS_CONFIG = "manifests/eks/cluster.yaml"
SAMPLE_IMAGE = "appmesh-lab/sample-app:0.1.0"
KIT_IMAGES = "appmesh-lab/"  # images the kit builds; on EKS they come from the account's ECR registry
# kind: NodePort -> the port on 127.0.0.1 (manifests/kind/cluster.yaml extraPortMappings)
KIND_PORTS = {30080: 8080, 30081: 8081, 30082: 8082, 30083: 8083}
NLB_ANNOTATION = "service.beta.kubernetes.io/aws-load-balancer-type"
# The notebooks' defaults (CLUSTER_NAME, REGION), the scripts' and manifests/{kind,eks}/cluster.yaml's;
# timeout_s: the notebooks' TIMEOUT_S for `appmesh-lab e2e` on the target (first image pulls on
# kind; on EKS an NLB takes 2-5 minutes and its DNS name a few more).
DEFAULTS = {"kind": {"cluster_name": "appmesh-gateway-demo", "region": None, "timeout_s": 180},
            "eks": {"cluster_name": "appmesh-gateway-demo", "region": "us-west-2", "timeout_s": 600}}
APPMESH_PLURALS = {"Mesh": "meshes", "VirtualNode": "virtualnodes", "VirtualService": "virtualservices",
                   "VirtualRouter": "virtualrouters", "VirtualGateway": "virtualgateways",
                   "GatewayRoute": "gatewayroutes"}


def _sh_runner(argv: list[str], input: str | None = None, env: dict | None = None, timeout: float | None = None,
               stream: bool = False) -> str:
    """Run a command through `sh`; its output (stderr included), or TargetError with it.
    stream=True prints each line as it comes (long steps: cluster creation, image builds)."""
    import os

    import sh
    lines: list[str] = []
    exe = argv[0]
    if "/" in exe and not Path(exe).is_absolute():  # scripts/...: the checkout's, wherever the kernel runs
        exe = str(ROOT / exe)
    try:
        cmd = sh.Command(exe)
        kwargs = {"_in": input, "_err_to_out": True, "_cwd": str(ROOT)}
        if env:
            kwargs["_env"] = {**os.environ, **env}
        if timeout:
            kwargs["_timeout"] = timeout
        if stream:
            def show(line):
                lines.append(line)
                print(line, end="", flush=True)
            kwargs["_out"] = show
            cmd(*argv[1:], **kwargs)
            return "".join(lines)
        return str(cmd(*argv[1:], **kwargs))
    except sh.CommandNotFound as exc:
        raise TargetError(f"{argv[0]} is not installed: {exc}; see docs/clusters.md for the prerequisites") from exc
    except sh.ErrorReturnCode as exc:
        out = (exc.stdout or b"").decode(errors="replace") + (exc.stderr or b"").decode(errors="replace")
        raise TargetError(f"`{shlex.join(argv)}` failed (exit {exc.exit_code}):\n{out.strip()[-3000:]}") from exc
    except sh.TimeoutException as exc:
        raise TargetError(f"`{shlex.join(argv)}` did not finish within {timeout:.0f}s") from exc


def _kubeconfig() -> str | None:
    """$KUBECONFIG as it is now, as kubectl reads it on every call (the `kubernetes` client reads it
    once, when it is first imported); None: the client's default, ~/.kube/config."""
    import os
    return os.environ.get("KUBECONFIG") or None


class ClusterTarget(Target):
    def __init__(self, name: str = "kind", cluster_name: str | None = None, region: str | None = None,
                 echo: bool = True, namespace: str = "appmesh-demo", runner=None, kube=None, aws=None,
                 admin=None, controller_status=None):
        if name not in DEFAULTS:
            raise TargetError(f"unknown cluster target {name!r}: choose kind or eks")
        self.name = name
        self.cluster_name = cluster_name or DEFAULTS[name]["cluster_name"]
        self.region = (region or DEFAULTS[name]["region"]) if name == "eks" else None  # kind has no region
        self.echo = echo
        self.namespace = namespace
        self._runner = runner or _sh_runner
        self._kube = kube  # an ApiClient-like object (tests pass a fake)
        self._aws = aws  # a boto3.Session (tests use moto)
        self._admin = admin  # (namespace, pod, path) -> bytes; tests pass a fake
        self._controller_status = controller_status  # (namespace, pod) -> the replica's /status; tests pass a fake
        self._registry: str | None = None
        self._host_ports: dict | None = None  # kind: NodePort -> host port (kind_host_ports)

    # -- plumbing ---------------------------------------------------------------------------

    def run(self, argv: list[str], input: str | None = None, env: dict | None = None, show: str | None = None,
            timeout: float | None = None, print_output: bool = True, stream: bool = False) -> str:
        """Run a command as a user would type it (printed first); its output is printed too
        (unless print_output=False: the target's own steps report their results themselves)."""
        self.say(show or shlex.join(argv))
        if stream:
            return self._runner(list(argv), input=input, env=env, timeout=timeout, stream=True)
        out = self._runner(list(argv), input=input, env=env, timeout=timeout)
        if print_output and self.echo and out:
            print(out, end="" if out.endswith("\n") else "\n", flush=True)
        return out

    @property
    def kube(self):
        if self._kube is None:
            from kubernetes import client, config
            context = self.context
            try:
                config.load_kube_config(config_file=_kubeconfig(), context=context)
            except Exception as exc:  # no kubeconfig, or no such context: said, with what to run
                raise TargetError(f"cannot use kube context {context!r}: {exc}; bring the target up first "
                                  f"(scripts/{self.name}-up.sh)") from exc
            self._kube = client.ApiClient()
        return self._kube

    @property
    def context(self) -> str:
        if self.name == "kind":
            return f"kind-{self.cluster_name}"
        return self._eks_context()

    def _eks_context(self) -> str:
        # aws eks update-kubeconfig names the context after the cluster ARN
        from botocore.exceptions import BotoCoreError, ClientError
        try:
            account = self.session().client("sts").get_caller_identity()["Account"]
        except (BotoCoreError, ClientError) as exc:
            raise TargetError(f"cannot find the AWS account (sts get-caller-identity): {exc}; configure AWS "
                              "credentials (aws configure, or AWS_PROFILE)") from exc
        return f"arn:aws:eks:{self.region}:{account}:cluster/{self.cluster_name}"

    def session(self):
        if self._aws is None:
            import boto3
            self._aws = boto3.Session(region_name=self.region)
        return self._aws

    def _api(self, name: str):
        from kubernetes import client
        return getattr(client, name)(self.kube)

    def _raw(self, func, *args, **kwargs) -> dict:
        try:
            return json.loads(func(*args, _preload_content=False, **kwargs).data)
        except Exception as exc:
            status = getattr(exc, "status", None)
            if status == 404:
                return {}
            raise TargetError(f"kubernetes API: {exc}") from exc

    def _env(self) -> dict:
        env = {"CLUSTER_NAME": self.cluster_name}
        if self.region:
            env["REGION"] = self.region
        return env

    # -- lifecycle --------------------------------------------------------------------------

    def up(self, timeout: float = 1800, force: bool = False) -> dict:
        """scripts/<target>-up.sh: cluster, images, chart; then wait for the controller.
        Every notebook calls up(): when the cluster exists and its controller is ready, it says
        so and does nothing (force=True runs the script anyway, e.g. after changing the code)."""
        if not force and self.running() and self._controller_ready():
            self.say(f"# the {self.name} cluster {self.cluster_name} is up and the controller is ready "
                     f"(scripts/{self.name}-up.sh runs only when it is not)")
            self._use_context()
            return self.status()
        self.run([f"scripts/{self.name}-up.sh"], env=self._env(), timeout=timeout, stream=True,
                 show=" ".join(f"{k}={v}" for k, v in self._env().items()) + f" scripts/{self.name}-up.sh")
        self.wait_controller()
        return self.status()

    def down(self, purge: bool = False, timeout: float = 1800) -> None:
        self.run([f"scripts/{self.name}-down.sh"], env=self._env(), timeout=timeout, stream=True,
                 show=" ".join(f"{k}={v}" for k, v in self._env().items()) + f" scripts/{self.name}-down.sh")

    def _use_context(self) -> None:
        """The kubectl and helm commands a step prints carry no --context: make the cluster's
        context the current one, as the up scripts do, if another one is."""
        from kubernetes import config
        try:
            active = config.list_kube_config_contexts(config_file=_kubeconfig())[1] or {}
        except (config.ConfigException, OSError):
            active = {}
        if active.get("name") != self.context:
            self.run(["kubectl", "config", "use-context", self.context])

    def _controller_ready(self) -> bool:
        try:
            d = self._raw(self._api("AppsV1Api").read_namespaced_deployment, RELEASE, CONTROLLER_NAMESPACE)
        except TargetError:  # no kube context for the cluster yet, or the API does not answer
            return False
        want = (d.get("spec") or {}).get("replicas", 1)
        return bool(d) and (d.get("status") or {}).get("readyReplicas", 0) >= want

    def running(self) -> bool:
        """Whether the cluster exists (kind: `kind get clusters`; EKS: the EKS API)."""
        if self.name == "kind":
            try:
                out = self._runner(["kind", "get", "clusters"], input=None, env=None, timeout=60)
            except TargetError:
                return False
            return self.cluster_name in out.split()
        from botocore.exceptions import BotoCoreError, ClientError
        try:
            self.session().client("eks", region_name=self.region).describe_cluster(name=self.cluster_name)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return False
            raise TargetError(f"EKS describe-cluster {self.cluster_name} in {self.region}: {exc}") from exc
        except BotoCoreError as exc:  # no credentials, no network
            raise TargetError(f"EKS describe-cluster {self.cluster_name} in {self.region}: {exc}; configure AWS "
                              "credentials (aws configure, or AWS_PROFILE)") from exc

    def ip_family(self) -> str:
        """The cluster's IP family as the chart's ipFamily takes it, IPv4 or IPv6: the first of the
        API server's own Service's ipFamilies (default/kubernetes), as scripts/kind-up.sh reads it."""
        svc = self._raw(self._api("CoreV1Api").read_namespaced_service, "kubernetes", "default")
        families = (svc.get("spec") or {}).get("ipFamilies") or []
        if not families or families[0] not in ("IPv4", "IPv6"):
            raise TargetError(f"the cluster's IP family is unknown: the Service default/kubernetes lists ipFamilies "
                              f"{families or 'none'}; the chart takes ipFamily IPv4 or IPv6")
        return families[0]

    def release_images(self) -> list[str]:
        """The image tags the installed release was given (`helm get values`: the up script sets
        the images' content tags), as `--set` arguments; none when there is no release yet."""
        try:
            out = self._runner(["helm", "get", "values", RELEASE, "--namespace", CONTROLLER_NAMESPACE,
                                "--output", "json"])
        except TargetError:  # no release: the chart's default tag, which the images also carry
            return []
        values = None
        for line in reversed(out.splitlines()):  # helm may warn first (a kubeconfig's permissions)
            try:
                values = json.loads(line)
                break
            except ValueError:
                continue
        images = (values.get("images") if isinstance(values, dict) else None) or {}
        return [f"images.{name}.tag={images[name]['tag']}" for name in ("controller", "proxyInit")
                if isinstance(images.get(name), dict) and images[name].get("tag")]

    def install_controller(self, timeout: str = "5m") -> None:
        """helm upgrade --install the controller chart (the up script did it already; this makes
        the notebook step real and repairs a changed release). Values not given return to the
        chart's defaults, so the cluster's IP family is given again (the Mesh webhook's ipPreference)
        and so are the image tags the release runs (the up script's content tags: without them the
        controller would roll once to the chart's default tag, the same image)."""
        argv = ["helm", "upgrade", "--install", RELEASE, CHART, "--namespace", CONTROLLER_NAMESPACE,
                "--create-namespace", "--wait", "--timeout", timeout, "--set", f"ipFamily={self.ip_family()}"]
        for value in self.release_images():
            argv += ["--set", value]
        if self.name == "eks":
            reg = self.registry()
            argv += ["--set", f"images.controller.repository={reg}/appmesh-lab/controller",
                     "--set", f"images.proxyInit.repository={reg}/appmesh-lab/proxy-init", "--set", f"region={self.region}"]
        self.run(argv)
        self.wait_controller()

    def wait_controller(self, timeout: float = 180) -> dict:
        apps = self._api("AppsV1Api")

        def check():
            d = self._raw(apps.read_namespaced_deployment, RELEASE, CONTROLLER_NAMESPACE)
            st = d.get("status") or {}
            assert d, f"deployment {CONTROLLER_NAMESPACE}/{RELEASE} does not exist"
            assert st.get("readyReplicas", 0) >= (d.get("spec") or {}).get("replicas", 1), \
                f"controller {st.get('readyReplicas', 0)}/{(d.get('spec') or {}).get('replicas', 1)} ready"
            return d
        return self.eventually(check, timeout, 2.0, what="the appmesh-lab controller")

    def status(self) -> dict:
        apps = self._api("AppsV1Api")
        d = self._raw(apps.read_namespaced_deployment, RELEASE, CONTROLLER_NAMESPACE)
        st = d.get("status") or {}
        try:
            gateway = self.gateway_url(publish=False)
        except TargetError as exc:
            gateway = f"none ({exc})"
        return {"target": self.name, "cluster": self.cluster_name, "region": self.region, "context": self.context,
                "controller": {"ready": st.get("readyReplicas", 0), "replicas": (d.get("spec") or {}).get("replicas")},
                "gateway": gateway, "pods": self.pods()}

    # -- resources --------------------------------------------------------------------------

    def _path(self, path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() or p.exists() else ROOT / p

    def registry(self) -> str:
        if self._registry is None:
            self._registry = ecr_registry(self.session(), self.region)
        return self._registry

    def adapt(self, text: str) -> str:
        """EKS: the sample image from ECR, and NLB for LoadBalancer Services. kind: unchanged."""
        if self.name != "eks":
            return text
        docs = [d for d in yaml.safe_load_all(text)]
        for d in docs:
            if not isinstance(d, dict):
                continue
            if d.get("kind") == "Service" and (d.get("spec") or {}).get("type") == "LoadBalancer":
                d.setdefault("metadata", {}).setdefault("annotations", {}).setdefault(NLB_ANNOTATION, "nlb")
            tmpl = ((d.get("spec") or {}).get("template") or {}).get("spec") if d.get("kind") == "Deployment" \
                else (d.get("spec") if d.get("kind") == "Pod" else None)
            for c in (tmpl or {}).get("containers") or []:
                if str(c.get("image", "")).startswith(KIT_IMAGES):
                    c["image"] = f"{self.registry()}/{c['image']}"
        return yaml.safe_dump_all([d for d in docs if d is not None], sort_keys=False)

    def _files(self, path: str) -> list[Path]:
        p = self._path(path)
        return sorted(p.glob("*.yaml")) + sorted(p.glob("*.yml")) if p.is_dir() else [p]

    def _apply_argv(self, path: str) -> tuple[list, str | None, str]:
        if self.name == "eks":
            text = "\n---\n".join(self.adapt(f.read_text()) for f in self._files(path))
            return ["kubectl", "apply", "-f", "-"], text, (
                f"kubectl apply -f {path}   # with the kit's images (appmesh-lab/*) from {self.registry()} and "
                f"{NLB_ANNOTATION}: nlb on LoadBalancer Services")
        return ["kubectl", "apply", "-f", str(path)], None, f"kubectl apply -f {path}"

    def apply(self, path: str, wait: bool = True, timeout: float = 180.0) -> list:
        argv, text, show = self._apply_argv(path)
        out = self.run(argv, input=text, show=show, print_output=False)
        results = parse_results(out)
        if wait:
            self.converge(timeout)
        return results

    def apply_text(self, text: str, name: str = "<notebook>", wait: bool = True) -> list:
        out = self.run(["kubectl", "apply", "-f", "-"], input=self.adapt(text),
                       show=f"kubectl apply -f - <<'EOF'\n{text.rstrip()}\nEOF", print_output=False)
        if wait:
            self.converge()
        return parse_results(out)

    def try_apply(self, path_or_text: str, is_text: bool = False) -> dict:
        """Apply and report like the local target: the model's findings, and whether the cluster
        (API server, CRD schema, webhooks) rejected it."""
        from ..files import read_texts
        from ..model import validate_texts
        from ..model.problems import from_denial
        texts = [["<notebook>", path_or_text]] if is_text else read_texts([self._path(path_or_text)])[0]
        problems = [p.to_dict() for p in validate_texts(texts).problems]
        try:
            if is_text:
                out = self.run(["kubectl", "apply", "-f", "-"], input=self.adapt(path_or_text), show="kubectl apply -f -",
                               print_output=False)
            else:
                argv, text, show = self._apply_argv(path_or_text)
                out = self.run(argv, input=text, show=show, print_output=False)
            return {"problems": problems, "rejected": False, "results": parse_results(out)}
        except TargetError as exc:
            # the validating webhook's findings, read back from kubectl's error text with their
            # codes and field paths (the ones the local lab gives), then the error itself
            seen = {(p["code"], p["path"], p["message"]) for p in problems}
            for p in from_denial(str(exc)):
                if (p.code, p.path, p.message) not in seen:
                    seen.add((p.code, p.path, p.message))
                    problems.append(p.to_dict())
            problems.append({"file": "<cluster>", "line": 0, "path": "", "message": str(exc), "hint": "",
                             "code": "cluster", "severity": "error", "doc": 0})
            return {"problems": problems, "rejected": True, "results": []}

    def delete(self, path: str) -> list:
        out = self.run(["kubectl", "delete", "-f", str(path), "--ignore-not-found", "--wait=false"], print_output=False)
        return parse_results(out)

    def delete_text(self, text: str) -> list:
        out = self.run(["kubectl", "delete", "-f", "-", "--ignore-not-found", "--wait=false"], input=self.adapt(text),
                       show=f"kubectl delete -f - <<'EOF'\n{text.rstrip()}\nEOF", print_output=False)
        return parse_results(out)

    def delete_resource(self, kind: str, name: str, namespace: str | None = None) -> list:
        argv = ["kubectl", "delete", kind.lower(), name, "--ignore-not-found", "--wait=false"]
        if kind not in ("Mesh", "Namespace"):
            argv += ["-n", namespace or self.namespace]
        return parse_results(self.run(argv, print_output=False))

    def converge(self, timeout: float = 180.0) -> None:
        """Wait until every Deployment of the target namespaces is rolled out and every App Mesh
        object has been reconciled at its current generation."""
        apps = self._api("AppsV1Api")
        custom = self._api("CustomObjectsApi")

        def check():
            waiting = []
            for d in self._raw(apps.list_deployment_for_all_namespaces).get("items") or []:
                if d["metadata"]["namespace"] in ("kube-system", "local-path-storage"):
                    continue
                spec, st = d.get("spec") or {}, d.get("status") or {}
                want = spec.get("replicas", 1)
                if st.get("observedGeneration", 0) < d["metadata"].get("generation", 0) or \
                        st.get("updatedReplicas", 0) < want or st.get("availableReplicas", 0) < want or \
                        st.get("replicas", 0) > want:
                    waiting.append(f"deployment {d['metadata']['namespace']}/{d['metadata']['name']} "
                                   f"{st.get('availableReplicas', 0)}/{want} available")
            for kind, plural in APPMESH_PLURALS.items():
                for o in self._raw(custom.list_cluster_custom_object, "appmesh.k8s.aws", "v1beta2", plural).get("items") or []:
                    if (o.get("status") or {}).get("observedGeneration") != o["metadata"].get("generation"):
                        waiting.append(f"{kind} {o['metadata'].get('namespace', '')}/{o['metadata']['name']} not reconciled")
            if not waiting:  # reconciled: the controller pushed it before writing the status
                waiting += self.proxies_waiting()
            assert not waiting, "; ".join(waiting[:5])
        self.eventually(check, timeout, 1.0, what="the cluster to converge")

    def proxies_waiting(self) -> list[str]:
        """Proxies that do not run the App Mesh objects as the API server has them now, from each
        running replica's /status (its health port, through the API server's pod proxy). Every
        replica serves xDS from its own informers, which may lag the API server (and the leader,
        whose `observedGeneration` says nothing of the others): a replica holding proxies must
        report that its published configuration was made from the objects' current generations
        (lab/runtime/generations.py), and each proxy connected to it must have ACKed the version
        it serves now. A NACK of the current version is reported with Envoy's message."""
        from ..runtime.generations import behind, generations
        from ..runtime.status import proxy_rejected, proxy_waiting
        current = None
        waiting = []
        for pod in self.get("Pod", None, CONTROLLER_NAMESPACE):
            meta = pod.get("metadata") or {}
            if (meta.get("labels") or {}).get("app.kubernetes.io/name") != RELEASE or \
                    (pod.get("status") or {}).get("phase") != "Running":
                continue
            name = meta["name"]
            if self._controller_status is not None:
                status = self._controller_status(CONTROLLER_NAMESPACE, name)
            else:
                status = json.loads(pod_proxy_get(self.kube, CONTROLLER_NAMESPACE, name, HEALTH_PORT, "/status"))
            mine = [p for p in (status.get("proxies") or {}).values() if p.get("connected")]  # others: another replica's
            if not mine:
                continue
            if current is None:
                current = generations((kind, o) for kind in APPMESH_PLURALS for o in self.get(kind))
            lag = behind((status.get("last_pass") or {}).get("generations"), current)
            if lag:
                waiting.append(f"controller {name} serves {len(mine)} prox{'y' if len(mine) == 1 else 'ies'} a "
                               f"configuration made before its informers saw {', '.join(lag)}")
                continue
            for proxy in mine:
                rejected = proxy_rejected(proxy)
                if rejected:
                    raise TargetError(f"{rejected} (controller {name}); see `kubectl describe` of its resource")
                why = proxy_waiting(proxy, None)
                if why:
                    waiting.append(f"{why} (controller {name})")
        return waiting

    def get(self, kind: str, name: str | None = None, namespace: str | None = None) -> list:
        # a read, not a step: not echoed (waits call it many times), like the local target
        if kind in APPMESH_PLURALS:
            custom = self._api("CustomObjectsApi")
            if kind == "Mesh" or namespace is None:
                items = self._raw(custom.list_cluster_custom_object, "appmesh.k8s.aws", "v1beta2",
                                  APPMESH_PLURALS[kind]).get("items") or []
            else:
                items = self._raw(custom.list_namespaced_custom_object, "appmesh.k8s.aws", "v1beta2", namespace,
                                  APPMESH_PLURALS[kind]).get("items") or []
        else:
            core, apps = self._api("CoreV1Api"), self._api("AppsV1Api")
            calls = {"Namespace": (core.list_namespace, core.list_namespace),
                     "Pod": (core.list_pod_for_all_namespaces, core.list_namespaced_pod),
                     "Service": (core.list_service_for_all_namespaces, core.list_namespaced_service),
                     "Deployment": (apps.list_deployment_for_all_namespaces, apps.list_namespaced_deployment),
                     "Secret": (core.list_secret_for_all_namespaces, core.list_namespaced_secret),
                     "ConfigMap": (core.list_config_map_for_all_namespaces, core.list_namespaced_config_map)}
            if kind not in calls:
                raise TargetError(f"the cluster target cannot get {kind}")
            every, one_ns = calls[kind]
            items = self._raw(one_ns, namespace).get("items") if namespace and kind != "Namespace" else \
                self._raw(every).get("items")
            items = items or []
        return [i for i in items if name is None or i["metadata"]["name"] == name]

    def pods(self, namespace: str | None = None) -> list:
        return [pod_view(p) for p in self.get("Pod", None, namespace)]

    def events(self, kind: str, name: str, namespace: str = "") -> list:
        core = self._api("CoreV1Api")
        sel = f"involvedObject.kind={kind},involvedObject.name={name}"
        # cluster-scoped objects (a Mesh, a Namespace) have their events in `default`, the only
        # namespace the API server takes them in (lab.controller.reconcile.event_object)
        ns = "default" if kind in ("Mesh", "Namespace") else (namespace or self.namespace)
        items = self._raw(core.list_namespaced_event, ns, field_selector=sel).get("items") or []
        items.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
        return [{"time": e.get("lastTimestamp") or e.get("eventTime"), "kind": kind, "namespace": namespace,
                 "name": name, "type": e.get("type"), "reason": e.get("reason"), "message": e.get("message")}
                for e in items]

    # -- traffic ----------------------------------------------------------------------------

    def _gateway_service(self, gateway: str | None) -> dict:
        vgs = self.get("VirtualGateway", None, None)
        if gateway:  # a name prefix, or the proxy's name as the lessons write it: <name>_<namespace>
            name, _, ns = gateway.partition("_")
            vgs = [v for v in vgs if (v["metadata"]["name"] == name and v["metadata"].get("namespace") == ns)
                   or (not ns and v["metadata"]["name"].startswith(gateway))]
        services = self.get("Service", None, None)
        for vg in vgs:
            sel = ((vg.get("spec") or {}).get("podSelector") or {}).get("matchLabels") or {}
            for s in services:
                spec = s.get("spec") or {}
                if s["metadata"]["namespace"] == vg["metadata"]["namespace"] and spec.get("type") in (
                        "LoadBalancer", "NodePort") and spec.get("selector") and \
                        all(sel.get(k) == v for k, v in spec["selector"].items()):
                    return s
        raise TargetError("no LoadBalancer or NodePort Service in front of a virtual gateway; apply one "
                          "(e.g. manifests/walkthrough/) first")

    def gateway_url(self, gateway: str | None = None, publish: bool = True, listener: int | None = None) -> str:
        """Where the gateway answers: the load balancer's name on EKS; on kind 127.0.0.1 and the
        host port of the Service's NodePort (moved to a published one first, unless publish=False).
        `listener` picks the Service port in front of that gateway listener (its targetPort);
        by default the Service's first port."""
        svc = self._gateway_service(gateway)
        ports = svc["spec"].get("ports") or [{}]
        index = 0
        if listener is not None:
            index = next((i for i, p in enumerate(ports) if p.get("targetPort", p.get("port")) == listener), None)
            if index is None:
                raise TargetError(f"Service {svc['metadata']['name']} has no port in front of listener {listener} "
                                  f"(its targetPorts: {', '.join(str(p.get('targetPort', p.get('port'))) for p in ports)})")
        port = ports[index]
        if self.name == "eks":
            ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            if not ingress:
                raise TargetError(f"the load balancer of Service {svc['metadata']['name']} has no address yet "
                                  "(an NLB takes 2-5 minutes; DNS a little longer)")
            host = ingress[0].get("hostname") or ingress[0].get("ip")
            return f"http://{host}:{port['port']}"
        node_port = port.get("nodePort")
        if node_port not in KIND_PORTS:
            if not publish:
                raise TargetError(f"Service {svc['metadata']['name']} uses NodePort {node_port}, which the kind "
                                  "cluster does not publish (gateway_url() moves it to 30080-30083)")
            used = {p.get("nodePort") for s in self.get("Service", None, None) for p in (s.get("spec") or {}).get("ports") or []}
            free = next((p for p in KIND_PORTS if p not in used), None)
            if free is None:
                raise TargetError("all NodePorts published by the kind cluster (30080-30083) are in use")
            patch = json.dumps([{"op": "replace", "path": f"/spec/ports/{index}/nodePort", "value": free}])
            self.run(["kubectl", "patch", "service", svc["metadata"]["name"], "-n", svc["metadata"]["namespace"],
                      "--type", "json", "-p", patch], print_output=False)
            node_port = free
        return f"http://127.0.0.1:{self.kind_host_ports()[node_port]}"

    def kind_host_ports(self) -> dict:
        """NodePort -> port on 127.0.0.1, as docker publishes the kind node's ports (`docker port
        <cluster>-control-plane`: what is, even if the config was edited); the config's
        (KIND_PORTS, manifests/kind/cluster.yaml) for any docker does not list."""
        if self._host_ports is None:
            import re
            try:
                out = self._runner(["docker", "port", f"{self.cluster_name}-control-plane"], input=None, env=None,
                                   timeout=30)
            except TargetError:
                out = ""
            seen = {int(m[1]): int(m[2]) for m in re.finditer(r"^(\d+)/tcp -> [\d.]+:(\d+)\s*$", out, re.M)}
            self._host_ports = {p: seen.get(p, h) for p, h in KIND_PORTS.items()}
        return self._host_ports

    def curl(self, path: str, headers: dict | None = None, method: str = "GET", body: bytes | None = None,
             timeout: float = 10.0, gateway: str | None = None, quiet: bool = False) -> Response:
        url = self.gateway_url(gateway)
        if not quiet:
            hs = " ".join(f"-H '{k}: {v}'" for k, v in (headers or {}).items())
            self.say(f"curl {'-X ' + method + ' ' if method != 'GET' else ''}{hs + ' ' if hs else ''}{url}{path}")
        rest = url.split("//", 1)[1]
        host, _, port = rest.partition(":")
        return request(host, int(port or 80), method, path, headers, body, timeout)

    # -- proxies ----------------------------------------------------------------------------

    def _pod_for(self, proxy: str) -> dict:
        pods = self.get("Pod", None, None)
        for p in pods:
            view = pod_view(p)
            names = {p["metadata"]["name"], view["owner"], (view["proxy"] or "").split("/")[-1]}
            if proxy in names or (view["proxy"] and proxy in view["proxy"]):
                if "envoy" in [c["name"] for c in view["containers"]]:
                    return p
        raise TargetError(f"no pod with an Envoy for {proxy!r}")

    def admin(self, proxy: str, path: str) -> bytes:
        p = self._pod_for(proxy)
        ns, name = p["metadata"]["namespace"], p["metadata"]["name"]
        if self._admin is not None:
            return self._admin(ns, name, path)
        return pod_proxy_get(self.kube, ns, name, 9901, path)

    def config_dump(self, proxy: str) -> dict:
        p = self._pod_for(proxy)
        self.say(f"kubectl -n {p['metadata']['namespace']} port-forward pod/{p['metadata']['name']} 9901 & "
                 "curl -s localhost:9901/config_dump")
        return json.loads(self.admin(proxy, "/config_dump"))

    def stats(self, proxy: str, filter: str | None = None) -> dict:
        import re
        p = self._pod_for(proxy)
        q = f"/stats?filter={filter}" if filter else "/stats"
        self.say(f"kubectl -n {p['metadata']['namespace']} port-forward pod/{p['metadata']['name']} 9901 & "
                 f"curl -s localhost:9901{q}")
        rx = re.compile(filter) if filter else None  # Envoy's filter, applied here (the pod proxy passes no query)
        out = {}
        for line in self.admin(proxy, "/stats").decode(errors="replace").splitlines():
            k, _, v = line.partition(": ")
            if v.strip().isdigit() and (rx is None or rx.search(k)):
                out[k] = int(v)
        return out

    def logs(self, pod: str, container: str | None = None, tail: int = 0) -> str:
        p = self._resolve_pod(pod)
        names = [c["name"] for c in (p.get("spec") or {}).get("containers") or []]
        container = container or next((n for n in names if n != "envoy"), names[0] if names else None)
        argv = ["kubectl", "logs", p["metadata"]["name"], "-n", p["metadata"]["namespace"], "-c", container]
        if tail:
            argv += ["--tail", str(tail)]
        return self.run(argv, print_output=False)

    def _resolve_pod(self, pod: str) -> dict:
        for p in self.get("Pod", None, None):
            if p["metadata"]["name"] == pod or pod_view(p)["owner"] == pod:
                return p
        raise TargetError(f"no pod {pod!r}")

    def kill(self, pod: str, container: str, signal: int = 15) -> bool:
        """Stop one container's main process (it restarts, as a crash would). Inside a container
        PID 1 ignores SIGKILL from its own namespace, so SIGTERM is sent whatever `signal` says."""
        p = self._resolve_pod(pod)
        self.run(["kubectl", "exec", p["metadata"]["name"], "-n", p["metadata"]["namespace"], "-c", container,
                  "--", "/bin/sh", "-c", "kill -TERM 1"], print_output=False)
        return True


if __name__ == "__main__":
    sys.exit(main())
