# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 14 · Cleanup
#
# Remove everything the lessons created, in the reverse order of creation, then stop the target
# — and check that nothing is left behind.
#
# The next cell holds the parameters (papermill and `appmesh-lab e2e` override them). The cell after it brings the target to the state this lesson starts from — a running cluster or lab (notebook 01); whatever else is there gets removed — so you can open this notebook on its own. It is safe to run it again.

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

t = nb.setup(TARGET, stage="01", namespace=NAMESPACE, cluster_name=CLUSTER_NAME, region=REGION,
             lab_home=LAB_HOME, timeout_s=TIMEOUT_S)

# %% [markdown]
# ## Exercise: delete exactly what you mean
#
# `kubectl delete -f FILE` does not compare specs: it reads each document's `apiVersion`, `kind`,
# `metadata.namespace` and `metadata.name`, and deletes the object with that identity. A document
# without `metadata.namespace` means *your current namespace* (`default`, unless your context
# says otherwise), not "wherever it is". The next cell leaves an object behind, as an interrupted
# experiment would: a Service `leftover` in the namespace `ex-leftover`. The manifest in `ANSWER`
# was meant to delete it; run the check cell, read why it did not, and correct `ANSWER`. (The
# solution is in the hidden cell after it; the namespace itself goes at the end of the lesson.)

# %%
LEFTOVER = """apiVersion: v1
kind: Namespace
metadata:
  name: ex-leftover
---
apiVersion: v1
kind: Service
metadata:
  name: leftover
  namespace: ex-leftover
spec:
  selector:
    app: leftover
  ports:
    - port: 80
"""
nb.apply_text(t, LEFTOVER)

# %%
ANSWER = """apiVersion: v1
kind: Service
metadata:
  name: leftover
spec:
  ports:
    - port: 8080
"""


def check_exercise(text):
    """True when deleting `text` removed the Service ex-leftover/leftover (and nothing else was asked for)."""
    results = nb.delete_text(t, text)

    def gone():
        deleted = [r for r in results if isinstance(r, dict) and (r["kind"], r["name"]) == ("Service", "leftover")
                   and "deleted" in str(r.get("action"))]
        left = t.get("Service", "leftover", "ex-leftover")
        assert deleted or not left, ("nothing named by your document was deleted, and the Service ex-leftover/leftover "
                                     "is still there: compare the document's kind, namespace and name with the leftover's")

        def no_service():
            assert not t.get("Service", "leftover", "ex-leftover"), "the Service is still there"
        t.eventually(no_service, TIMEOUT_S, what="the leftover Service to go")
    return nb.verdict(gone, ok="it works: the leftover Service is gone",
                      hint="kubectl delete -f matches by apiVersion, kind, namespace and name; the spec is not read")


check_exercise(ANSWER)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution (hidden in the notebook: expand the cell to read it): name the namespace. The ports
# may stay wrong: delete -f does not read the spec.
ANSWER = ANSWER.replace("  name: leftover\n", "  name: leftover\n  namespace: ex-leftover\n")
assert check_exercise(ANSWER)

# %% [markdown]
# ## The example sets
#
# The lessons remove the examples they apply; anything still there (from your own experiments,
# or an interrupted lesson) goes now. Each example lives in its own namespace `ex-<name>`.

# %%
present = [d.name for d in sorted(nb.EXAMPLES.iterdir()) if d.is_dir() and t.get("Namespace", f"ex-{d.name}")]
for name in present:
    nb.delete(t, f"manifests/examples/{name}/")
print("example sets removed:", ", ".join(present) if present else "none were applied")

# %% [markdown]
# ## The walkthrough, in reverse
#
# Routes first, then the gateway, the applications, the virtual services and nodes, the mesh and
# finally the namespace — the reverse of the order they were created in.

# %%
for path in reversed(nb.walkthrough_files()):
    nb.delete(t, path)

# %% [markdown]
# ## Anything else
#
# An interrupted lesson can leave an object behind (a troubleshooting route, a namespace outside
# the mesh). Remove what is left of the App Mesh resources — and on `local`, where everything in
# the lab came from these lessons, every other object too — routes first, namespaces last.

# %%
ORDER = ["GatewayRoute", "VirtualGateway", "VirtualService", "VirtualRouter", "VirtualNode", "Mesh"]
if TARGET == "local":
    ORDER = ORDER[:2] + ["Deployment", "Service"] + ORDER[2:] + ["Namespace"]
left = [(kind, i["metadata"]["name"], i["metadata"].get("namespace") or "") for kind in ORDER for i in t.get(kind)]
for kind, name, namespace in left:
    nb.remove(t, kind, name, namespace)
nb.remove(t, "Namespace", "ex-leftover")   # the exercise's (on a cluster, with what is left in it)
print("left over:", ", ".join(f"{k.lower()}/{n}" for k, n, _ in left) if left else "nothing")


# %%
def all_gone():
    left = {kind: [i["metadata"]["name"] for i in t.get(kind)] for kind in nb.APPMESH_KINDS}
    left = {kind: names for kind, names in left.items() if names}
    # on a cluster, its own pods and the control plane's stay until the cluster goes (next step)
    pods = [p["name"] for p in t.pods() if p["namespace"] not in ("kube-system", "local-path-storage", "appmesh-system")]
    assert not left and not pods, f"still there: {left} pods {pods}"
t.eventually(all_gone, TIMEOUT_S, what="every App Mesh resource and pod to be gone")
assert not t.get("Namespace", NAMESPACE)
print("no App Mesh resources, no pods, no walkthrough namespace")

# %% [markdown]
# ## Stop the target
#
# * **local**: `appmesh-lab down` stops the daemon and every process it started. The lab's state
#   stays in its directory (`appmesh-lab down --purge` removes it too).
# * **kind**: uninstall the chart, then delete the cluster.
# * **eks**: uninstall the chart, then delete the cluster (this also removes the load balancer).
#
# The check after it differs by target because what is left to look for does: on `local`, processes
# and sockets on this machine (no daemon, nothing listening); on a cluster, the cluster itself
# (`kind get clusters`, or the EKS API, no longer lists it), and what the up script made outside
# it — on kind the kit's images in docker, on EKS the load balancers.

# %%
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

# %%
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
else:
    # what scripts/kind-down.sh / eks-down.sh removed: the cluster (and with it every pod, Service
    # and load balancer in it), and on kind the images kind-up.sh built (unless KEEP_IMAGES=1)
    import os
    assert not t.running(), f"the {TARGET} cluster {CLUSTER_NAME} still exists"
    if TARGET == "kind":
        clusters = nb.cluster_step(t, "kind get clusters")
        assert CLUSTER_NAME not in clusters.split(), clusters
        if os.environ.get("KEEP_IMAGES") != "1":
            for image in ("appmesh-lab/controller", "appmesh-lab/proxy-init", "appmesh-lab/sample-app"):
                left = nb.cluster_step(t, ["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}", image])
                assert not left.strip(), f"{image} is still there: {left}"
    else:
        from lab.targets.cluster import cluster_load_balancers
        assert not cluster_load_balancers(t.session(), REGION, CLUSTER_NAME), "a load balancer of the cluster is left"
    print(f"the {TARGET} cluster {CLUSTER_NAME} is gone" + (", and the kit's images with it" if TARGET == "kind" else
                                                             ", and its load balancers"))

# %% [markdown]
# That's the course. To start again: **01-cluster** (or `appmesh-lab up`), then run the lessons in
# order — or open any of them; each one catches up by itself.
