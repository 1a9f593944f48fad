# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Mesh, virtual nodes and virtual services
#
# This lesson creates the parts of the mesh that describe your services: a namespace labelled
# for the mesh, the Mesh itself, a VirtualNode for each application and a VirtualService for
# each name clients call. The files are `manifests/walkthrough/00` to `05`.
#
# The next cell holds the parameters (papermill and `appmesh-lab e2e` override them). The cell after it brings the target to the state this lesson starts from — a running cluster or lab with its control plane (notebooks 01 and 02) — so you can open this notebook on its own. It is safe to run it again.

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
# ## The namespace: labels do the wiring
#
# In `appmesh.k8s.aws/v1beta2` you never write which mesh a resource belongs to. A Mesh selects
# namespaces by their **labels**, and every App Mesh resource created in a selected namespace
# joins that mesh. The namespace carries three labels:
#
# * `mesh: my-app-mesh` — what the Mesh's `namespaceSelector` looks for;
# * `gateway: appmesh-gateway` — what the VirtualGateway's `namespaceSelector` looks for (05);
# * `appmesh.k8s.aws/sidecarInjectorWebhook: enabled` — turns on Envoy injection for new pods (04).

# %%
nb.show("manifests/walkthrough/00-namespace.yaml")
nb.apply(t, "manifests/walkthrough/00-namespace.yaml")

# %% [markdown]
# ## The Mesh
#
# A Mesh is cluster-scoped (no namespace). Its `namespaceSelector` follows the Kubernetes label
# selector rules with one App Mesh twist worth remembering: **leaving the selector out selects
# no namespace at all**, while an empty selector `{}` selects every namespace.
# `egressFilter: ALLOW_ALL` lets applications reach destinations outside the mesh; without it,
# App Mesh's default is `DROP_ALL`.

# %%
nb.show("manifests/walkthrough/01-mesh.yaml")
nb.apply(t, "manifests/walkthrough/01-mesh.yaml")
condition = t.wait_active("Mesh", "my-app-mesh", timeout=TIMEOUT_S)
print(condition["type"], "=", condition["status"])
assert (condition["type"], condition["status"]) == ("MeshActive", "True"), condition

# %% [markdown]
# ## Virtual nodes
#
# A VirtualNode stands for the pods of one Deployment. `podSelector` says which pods (and so
# which pods get an Envoy sidecar), `listeners` the port and protocol the app serves, and
# `serviceDiscovery` how other Envoys find those pods — here the DNS name of the Kubernetes
# Service. product-service lists review-service as a **backend**, because it calls it.

# %%
nb.show("manifests/walkthrough/02-product-service-vn.yaml")
nb.apply(t, "manifests/walkthrough/02-product-service-vn.yaml")
nb.apply(t, "manifests/walkthrough/03-review-service-vn.yaml")

# %% [markdown]
# ## Virtual services
#
# A VirtualService is the name clients call. Its `awsName` *is* that host name: Envoy routes by
# it, so using the Kubernetes Service's DNS name keeps the application's DNS lookups and the
# mesh in agreement. Without `awsName` the name would default to `<name>.<namespace>`. The
# `provider` says who answers: a virtual node directly (here) or a virtual router (notebook 08).

# %%
nb.show("manifests/walkthrough/04-product-service-vs.yaml")
nb.apply(t, "manifests/walkthrough/04-product-service-vs.yaml")
nb.apply(t, "manifests/walkthrough/05-review-service-vs.yaml")

# %% [markdown]
# ## Check: everything is active
#
# Each resource carries a condition, `<Kind>Active`. The App Mesh controller set it to `True` once
# the AWS object existed; the kit sets it when the resource is valid and everything it depends
# on is active — a virtual service waits for its provider, everything waits for its mesh — and
# fills in `reason` and `message`, which the AWS controller always left empty.

# %%
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

# %% [markdown]
# ## What the guide wrote, and why it is refused
#
# The guide ties resources to the mesh by hand: `spec.meshRef` on a virtual node, and (in its
# second part) `spec.meshName`, a field from the old `v1beta1` API. Both are wrong for v1beta2:
#
# * `spec.meshRef` is **read-only**. The controller's webhook fills it in from the namespace
#   labels, and refuses a resource that sets it on create.
# * `spec.meshName` does not exist in v1beta2. A real API server would silently drop it (unknown
#   fields inside `spec` are pruned), and the resource would join whatever mesh its namespace
#   labels select — or none.
#
# The kit's validator refuses both, says where, and says what to write instead:

# %%
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
    print(f"line {p.line}: {p.path}: {p.message}\n    hint: {p.hint}")
by_path = {p.path: p for p in result.errors}
assert "spec.meshRef" in by_path, "the validator should refuse spec.meshRef"
assert "spec.meshName" in by_path, "the validator should refuse spec.meshName"
assert "namespaceSelector" in by_path["spec.meshRef"].hint
assert "namespaceSelector" in by_path["spec.meshName"].hint

# %% [markdown]
# Applying it changes nothing: a rejected apply is all-or-nothing.

# %%
if hasattr(t, "try_apply"):
    before = len(t.get("VirtualNode", namespace="default"))
    answer = t.try_apply(GUIDE_STYLE, is_text=True)
    assert answer["rejected"], "the guide-style manifest should have been rejected"
    assert len(t.get("VirtualNode", namespace="default")) == before, "a rejected apply must change nothing"
    print(f"rejected with {sum(p['severity'] == 'error' for p in answer['problems'])} error(s); nothing was created")

# %% [markdown]
# ## Exercise: declare the rating service
#
# A third service is coming: **rating-service**, pods labelled `app: rating-service`, serving HTTP
# on 8080 behind the Kubernetes Service `rating-service`. It needs a virtual node
# `rating-service-vn` and a virtual service `rating-service` whose name is that Service's DNS name.
# The manifest below was written the guide's way and has two mistakes: one the validator finds,
# one only the mesh can find once it is applied. Correct `ANSWER`, then run the check cell: it
# validates and applies your manifest and reads both resources' conditions. (The solution is in
# the hidden cell after it: expand it if you are stuck.)

# %%
ANSWER = """apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualNode
metadata:
  name: rating-service-vn
  namespace: appmesh-demo
spec:
  meshRef:
    name: my-app-mesh
  podSelector:
    matchLabels:
      app: rating-service
  listeners:
    - portMapping:
        port: 8080
        protocol: http
  serviceDiscovery:
    dns:
      hostname: rating-service.appmesh-demo.svc.cluster.local
---
apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualService
metadata:
  name: rating-service
  namespace: appmesh-demo
spec:
  awsName: rating-service.appmesh-demo.svc.cluster.local
  provider:
    virtualNode:
      virtualNodeRef:
        name: rating-service
"""


def both_active():
    """Both resources are active, the service under its DNS name."""
    nb.active(t, "VirtualNode", "rating-service-vn", NAMESPACE, TIMEOUT_S)
    nb.active(t, "VirtualService", "rating-service", NAMESPACE, TIMEOUT_S)
    vs = t.get("VirtualService", "rating-service", NAMESPACE)[0]
    assert vs["spec"].get("awsName") == "rating-service.appmesh-demo.svc.cluster.local", vs["spec"].get("awsName")


check_exercise = nb.exercise(t, both_active, TIMEOUT_S, ok="it works: rating-service-vn and rating-service are active",
                             hint="a reference names the other resource by its metadata.name")
check_exercise(ANSWER)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution (hidden in the notebook: expand the cell to read it): no meshRef (the namespace's
# labels choose the mesh), and the provider names the virtual node, rating-service-vn.
ANSWER = ANSWER.replace("  meshRef:\n    name: my-app-mesh\n", "").replace(
    "virtualNodeRef:\n        name: rating-service\n", "virtualNodeRef:\n        name: rating-service-vn\n")
assert check_exercise(ANSWER)
nb.remove(t, "VirtualService", "rating-service", NAMESPACE)
nb.remove(t, "VirtualNode", "rating-service-vn", NAMESPACE)

# %% [markdown]
# The mesh knows the services. Next, **04-applications** deploys the programs behind them.
