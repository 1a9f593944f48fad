# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · A cluster, or the lab that stands in for one
#
# App Mesh on Kubernetes starts with a cluster. The guide creates one on Amazon EKS with
# `eksctl`. This lesson creates the cluster for your target — or, on `local`, starts the lab
# daemon that plays the cluster's part.
#
# The next cell holds the parameters (papermill and `appmesh-lab e2e` override them). The cell after it brings the target to the state this lesson starts from — nothing yet; this lesson creates the cluster — so you can open this notebook on its own. It is safe to run it again.

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
# ## What each target does here
#
# * **eks**: `eksctl create cluster` builds a control plane and a managed node group (two
#   `m5.large` nodes, scaling between one and three) and an OIDC provider, which is what lets a
#   pod assume an IAM role. Allow 15–20 minutes.
# * **kind**: `kind create cluster` starts a Kubernetes node in a Docker container.
#   `manifests/kind/cluster.yaml` maps a host port to the node so you can reach the gateway.
# * **local**: there is no Kubernetes. `appmesh-lab up` starts the *lab daemon* in the background.
#   It keeps the objects you apply in a small database (the part the Kubernetes API plays), runs
#   the control plane, and starts and watches a process for every container of every pod: your
#   apps, and an Envoy for each sidecar and gateway. Everything listens on 127.0.0.1 only.
#
# The commands for every target are shown; the one for your target runs.

# %%
nb.command(f"kind create cluster --name {CLUSTER_NAME} --config manifests/kind/cluster.yaml      # TARGET=kind")
nb.command("eksctl create cluster -f manifests/eks/cluster.yaml      # TARGET=eks")
started = t.up()   # local: starts the lab daemon (or finds it running); kind/eks: creates the cluster, or reuses it

# %% [markdown]
# For EKS, the guide passes its settings as flags. The same settings as an `eksctl` config file:

# %%
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

# %% [markdown]
# ## Is it up?
#
# On `local`, the daemon answers the `appmesh-lab` command on a Unix socket, and the control
# plane's xDS server (where every Envoy gets its configuration) listens on another, both in a
# folder only you can enter: another user of this machine can reach neither. The App Mesh API
# (for boto3 and the aws CLI) listens on a loopback port; testinfra checks that it listens on
# 127.0.0.1 only. On a cluster, `kubectl get nodes` shows the nodes.

# %%
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
    assert ready, f"no node is Ready yet:\n{nodes}"
    print(f"{len(ready)} node(s) Ready: {', '.join(ready)}")

# %% [markdown]
# `appmesh-lab status` shows the daemon, its endpoints, the proxies and the pods. The lessons print
# this machine's folders by name, so what you read is the same on any machine: `$LAB_HOME` is the
# lab's state folder (the `LAB_HOME` parameter, else `$APPMESH_LAB_HOME`, else `.lab/` in the
# checkout), `$VIRTUAL_ENV` the kit's Python environment, `.` the checkout and `$TMPDIR` the
# temporary folder.

#
# On a cluster the same question goes to the cluster: the system pods kind or EKS started
# (the API server, DNS, ...) must be running before anything of ours is installed.

# %% tags=["volatile"]
if TARGET == "local":
    st = nb.cli("status")   # the daemon, its endpoints, the proxies it configures, the pods it runs
    assert st.returncode == 0 and "daemon" in st.stdout, st.stdout + st.stderr
else:
    nb.cluster_step(t, "kubectl get pods -n kube-system")
    system = [p for p in t.pods("kube-system")]
    assert system and all(p["status"] == "Running" for p in system), [(p["name"], p["status"]) for p in system]
    print(f"{len(system)} system pod(s) running")

# %% [markdown]
# The cluster (or the lab) is ready. Next, **02-controller** puts a control plane in it.
