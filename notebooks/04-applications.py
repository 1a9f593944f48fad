# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · The applications and their sidecars
#
# A virtual node describes pods; now the pods have to exist. This lesson deploys product-service
# and review-service (`manifests/walkthrough/06` and `07`) and looks at the Envoy sidecar each
# pod receives.
#
# The next cell holds the parameters (papermill and `appmesh-lab e2e` override them). The cell after it brings the target to the state this lesson starts from — the namespace, mesh, virtual nodes and services of notebook 03 — so you can open this notebook on its own. It is safe to run it again.

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

t = nb.setup(TARGET, stage="03", namespace=NAMESPACE, cluster_name=CLUSTER_NAME, region=REGION,
             lab_home=LAB_HOME, timeout_s=TIMEOUT_S)

# %% [markdown]
# ## A Deployment and a Service per application
#
# Both applications run the kit's sample app, which answers every request with JSON saying
# which service, version and pod answered and what request it received — so the effect of
# every route and rewrite is visible from outside.
#
# Two things tie a pod to the mesh, and neither is an annotation:
#
# 1. its namespace has the label `appmesh.k8s.aws/sidecarInjectorWebhook: enabled`, and
# 2. its labels match **exactly one** virtual node's `podSelector` (`app: product-service`).
#
# The injector then adds an Envoy container to the pod. On a cluster this happens when the pod is
# created; on `local` the lab starts an Envoy process as the pod's second container.

# %%
nb.show("manifests/walkthrough/06-product-service-app.yaml")
nb.apply(t, "manifests/walkthrough/06-product-service-app.yaml")
nb.apply(t, "manifests/walkthrough/07-review-service-app.yaml")

# %% [markdown]
# ## Each pod has two containers
#
# `READY 2/2`: the app and its Envoy.

# %%
pods = nb.wait_pods(t, NAMESPACE, ["product-service", "review-service"], TIMEOUT_S)
nb.cluster_step(t, f"kubectl get pods -n {NAMESPACE}", note="the table below is the same view")
nb.table([[p["owner"], p["ready"], p["status"], ", ".join(c["name"] for c in p["containers"])] for p in pods],
         ["deployment", "READY", "STATUS", "containers"])
for p in pods:
    assert p["ready"] == "2/2", f"{p['name']} is {p['ready']}: the sidecar is missing or not ready"
    assert "envoy" in [c["name"] for c in p["containers"]], f"{p['name']} has no envoy container"

# %% [markdown]
# Each sidecar has connected to the control plane and accepted its configuration:

# %%
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

# %% [markdown]
# And the application itself has started (its first log line says where it listens — on
# `local`, a port the lab chose; on a cluster, 8080):

# %% tags=["volatile"]
pod = next(p for p in pods if p["owner"] == "product-service")
log = t.logs(pod["name"], "app")
first = next(line for line in log.splitlines() if "listening on" in line)
print(first)
assert "product-service v1" in first

# %% [markdown]
# ## The guide's annotations, and why the kit has none
#
# The guide put four annotations on the pod template. Here is what the validator says about
# them:

# %%
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
    print(f"{name}: {p.message}\n    hint: {p.hint}")
assert {"appmesh.k8s.aws/mesh", "appmesh.k8s.aws/virtualNode", "appmesh.k8s.aws/appPorts"} <= set(flagged), flagged
assert "appmesh.k8s.aws/ports" not in flagged, "appmesh.k8s.aws/ports is a real annotation"

# %% [markdown]
# * `appmesh.k8s.aws/mesh` and `appmesh.k8s.aws/virtualNode` belonged to the old injector that
#   came before the v1beta2 controller; the v1beta2 injector ignores them. The namespace labels
#   and the `podSelector` decide.
# * `appmesh.k8s.aws/appPorts` never existed.
# * `appmesh.k8s.aws/ports` is real: it overrides which inbound ports are redirected to Envoy
#   (by default, the virtual node's listener ports). The walkthrough does not need it.
#
# ## Exercise: a pod that gets its sidecar
#
# Deploy **rating-service** into the mesh: its virtual node, its Deployment and its Service are
# below. Its pods must come up `2/2`, the app and an Envoy sidecar configured for
# `rating-service-vn`. As written, the injector refuses them. Correct `ANSWER` (change the
# Deployment, not the virtual node), then run the check cell: it validates your manifest together
# with the namespace (`manifests/walkthrough/00-namespace.yaml`, whose labels turn injection on),
# applies it and looks at the pods. (The solution is in the hidden cell after it.)

# %%
ANSWER = """apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualNode
metadata:
  name: rating-service-vn
  namespace: appmesh-demo
spec:
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
apiVersion: apps/v1
kind: Deployment
metadata:
  name: rating-service
  namespace: appmesh-demo
spec:
  replicas: 1
  selector:
    matchLabels:
      app: ratings
  template:
    metadata:
      labels:
        app: ratings
      annotations:
        appmesh.k8s.aws/virtualNode: rating-service-vn
    spec:
      containers:
        - name: app
          image: appmesh-lab/sample-app:0.1.0
          ports:
            - containerPort: 8080
          env:
            - name: SERVICE_NAME
              value: rating-service
---
apiVersion: v1
kind: Service
metadata:
  name: rating-service
  namespace: appmesh-demo
spec:
  selector:
    app: rating-service
  ports:
    - port: 8080
      targetPort: 8080
"""


def with_sidecar():
    """rating-service's pod runs with its Envoy sidecar, and its virtual node is active."""
    pods = nb.wait_pods(t, NAMESPACE, ["rating-service"], TIMEOUT_S)
    names = [c["name"] for c in pods[0]["containers"]]
    assert "envoy" in names and pods[0]["ready"] == "2/2", f"{pods[0]['name']} is {pods[0]['ready']}: {names}"
    nb.active(t, "VirtualNode", "rating-service-vn", NAMESPACE, TIMEOUT_S)


# the namespace's labels decide injection: the validator reads its file with your manifest
check_exercise = nb.exercise(t, with_sidecar, TIMEOUT_S, context=["manifests/walkthrough/00-namespace.yaml"],
                             ok="it works: rating-service runs 2/2, its app and its Envoy",
                             hint="the injector picks the virtual node whose podSelector matches the pod's labels")
check_exercise(ANSWER)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution (hidden in the notebook: expand the cell to read it): the pods' labels (and so the
# Deployment's selector) must match the virtual node's podSelector, app: rating-service; the
# annotation does nothing in v1beta2 (and the validator says so).
ANSWER = ANSWER.replace("app: ratings", "app: rating-service").replace(
    "      annotations:\n        appmesh.k8s.aws/virtualNode: rating-service-vn\n", "")
assert check_exercise(ANSWER)
for kind, name in (("Deployment", "rating-service"), ("Service", "rating-service"), ("VirtualNode", "rating-service-vn")):
    nb.remove(t, kind, name, NAMESPACE)

# %% [markdown]
# The applications run inside the mesh. Next, **05-virtual-gateway** opens a door into it.
