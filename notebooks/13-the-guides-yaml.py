# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 13 · The guide's YAML, corrected
#
# The guide this course follows teaches GatewayRoute with manifests that App Mesh's controller
# would not accept, and a second article it is often read with uses the retired `v1beta1` API.
# This lesson runs each of those manifests, **verbatim**, through `appmesh-lab validate` (the
# same checks the kit's admission webhooks make on a cluster), explains each finding, shows the
# corrected form, and applies and curls it. The corrected forms are the walkthrough's files
# (`manifests/walkthrough/`), which this course has been running since lesson 03 — so applying
# them changes nothing (`unchanged`), and the requests prove they work — except the last one,
# the weighted split, which is new.
#
# The next cell holds the parameters (papermill and `appmesh-lab e2e` override them). The cell after it brings the target to the state this lesson starts from — the complete walkthrough (notebooks 03 to 06) — so you can open this notebook on its own. It is safe to run it again.

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

t = nb.setup(TARGET, stage="06", namespace=NAMESPACE, cluster_name=CLUSTER_NAME, region=REGION,
             lab_home=LAB_HOME, timeout_s=TIMEOUT_S)

# %% [markdown]
# `validate(name, text, expect)` writes a manifest to a scratch folder, runs
# `appmesh-lab validate` on it (what you would run on your own files), and checks that it found
# the fields listed in `expect` (a file validated alone also gets warnings about the resources it
# names that are defined in other files: they are only warnings). `corrected(path)` shows a walkthrough file, validates the
# walkthrough it belongs to (a file validated alone gets warnings about the resources it names in
# other files), applies it and checks the resources it holds are active.

# %%
import contextlib
import io

import yaml
from lab.cli import main as appmesh_lab

WALKTHROUGH = "manifests/walkthrough/"
SCRATCH = "runs/guide"   # in the checkout (runs/ is where the kit writes its outputs; git ignores it)
(nb.ROOT / SCRATCH).mkdir(parents=True, exist_ok=True)


def run_validate(path):
    """`appmesh-lab validate PATH`, run in this kernel (quicker than a new process): what it
    prints, and its exit status."""
    print(f"$ appmesh-lab validate {path}")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = appmesh_lab(["validate", str(nb.ROOT / path)])
    text = nb.tidy(out.getvalue()).replace("./" + path, path)
    print(text, end="")
    return code, text


def validate(name, text, expect=()):
    path = f"{SCRATCH}/{name}"
    (nb.ROOT / path).write_text(text)
    code, stdout = run_validate(path)
    report = type("Report", (), {"returncode": code, "stdout": stdout})
    for field in expect:
        assert f": error: {field}" in report.stdout, f"{name}: no finding at {field}"
    if expect:
        assert report.returncode == 1, f"{name}: validate exited {report.returncode}"
        return None   # checked: nothing to show twice
    return report


def corrected(path):
    nb.show(path)
    code, stdout = run_validate(WALKTHROUGH)   # the file among the files it refers to
    assert code == 0 and "0 error(s), 0 warning(s)" in stdout, stdout
    results = nb.apply(t, path)
    for doc in yaml.safe_load_all(open(nb.ROOT / path)):
        if doc and doc["apiVersion"].startswith("appmesh.k8s.aws/"):
            t.wait_active(doc["kind"], doc["metadata"]["name"], doc["metadata"].get("namespace"), timeout=TIMEOUT_S)
    return results

# %% [markdown]
# ## 1. The Mesh: no `namespaceSelector`
#
# The guide's `00-mesh.yaml`. In `v1beta2` a namespace joins a mesh when its labels match the
# Mesh's `namespaceSelector`; without one, no namespace matches, and nothing can ever join. (The
# guide's `awsName` is allowed — the mesh's name in App Mesh — but it is simply the default.)

# %%
GUIDE_MESH = """# 00-mesh.yaml
apiVersion: appmesh.k8s.aws/v1beta2
kind: Mesh
metadata:
  name: my-app-mesh
spec:
  awsName: my-app-mesh # The actual AWS App Mesh resource name
  # Optional: Configure egress filter for the mesh
  egressFilter:
    type: ALLOW_ALL
"""
validate("00-mesh.yaml", GUIDE_MESH, ["spec.namespaceSelector"])

# %% [markdown]
# **Corrected**: a selector, and the namespace labelled to match (`mesh: my-app-mesh`, in
# `00-namespace.yaml`).

# %%
corrected("manifests/walkthrough/01-mesh.yaml")

# %% [markdown]
# ## 2. Virtual nodes and services: a hand-set `meshRef`
#
# The guide sets `spec.meshRef` on every resource. In `v1beta2` it is read-only: the controller
# fills it in from the namespace's mesh, and a create that sets it is refused. The guide's virtual
# node also has no `podSelector`, so it would select no pod — the link between a virtual node and
# its pods in `v1beta2` is that selector, not an annotation.

# %%
GUIDE_VN = """# 01-product-service-vn.yaml
apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualNode
metadata:
  name: product-service-vn
  namespace: default
spec:
  awsName: product-service-vn_default # Name for the AWS App Mesh resource
  meshRef:
    name: my-app-mesh
  listeners:
    - portMapping:
        port: 8080
        protocol: http
  serviceDiscovery:
    dns:
      hostname: product-service.default.svc.cluster.local # Kubernetes service DNS
"""
GUIDE_VS = """# 03-product-service-vs.yaml
apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualService
metadata:
  name: product-service
  namespace: default
spec:
  awsName: product-service.default.svc.cluster.local # Name for the AWS App Mesh resource
  meshRef:
    name: my-app-mesh
  provider:
    virtualNode:
      virtualNodeRef:
        name: product-service-vn
"""
validate("01-product-service-vn.yaml", GUIDE_VN, ["spec.meshRef"])
validate("03-product-service-vs.yaml", GUIDE_VS, ["spec.meshRef"])

# %% [markdown]
# **Corrected**: no `meshRef`, a `podSelector`, in the walkthrough's namespace.

# %%
corrected("manifests/walkthrough/02-product-service-vn.yaml")
corrected("manifests/walkthrough/04-product-service-vs.yaml")

# %% [markdown]
# ## 3. The Deployments: annotations the injector never reads
#
# The guide puts `appmesh.k8s.aws/mesh`, `appmesh.k8s.aws/virtualNode` and
# `appmesh.k8s.aws/appPorts` on the pod template. The first two are `v1beta1` annotations; the
# third never existed (`appmesh.k8s.aws/ports` does). In `v1beta2` the injector adds the Envoy
# container to a pod in a namespace labelled `appmesh.k8s.aws/sidecarInjectorWebhook: enabled`,
# and picks the virtual node whose `podSelector` matches the pod's labels.

# %%
GUIDE_APP = """# 05-product-service-app.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: product-service
  namespace: default
spec:
  replicas: 1
  selector:
    matchLabels:
      app: product-service
  template:
    metadata:
      labels:
        app: product-service
      annotations:
        # App Mesh annotations for sidecar injection
        appmesh.k8s.aws/mesh: my-app-mesh
        appmesh.k8s.aws/virtualNode: product-service-vn
        appmesh.k8s.aws/ports: "8080" # Comma-separated list of application ports
        appmesh.k8s.aws/appPorts: "8080"
    spec:
      containers:
      - name: product-service
        image: nginxdemos/hello:latest # Using a simple Nginx hello world image for demonstration
        ports:
        - containerPort: 8080
        env:
        - name: MESSAGE
          value: "Hello from Product Service!"
        - name: COLOR
          value: "#FF0000"
"""
validate("05-product-service-app.yaml", GUIDE_APP, [
    "spec.template.metadata.annotations.appmesh.k8s.aws/mesh",
    "spec.template.metadata.annotations.appmesh.k8s.aws/virtualNode",
    "spec.template.metadata.annotations.appmesh.k8s.aws/appPorts"])

# %% [markdown]
# **Corrected**: no annotations; the pod's labels match the virtual node's `podSelector`, and the
# pod gets its Envoy: two containers.

# %%
corrected("manifests/walkthrough/06-product-service-app.yaml")
pod = next(p for p in t.pods(NAMESPACE) if p.get("owner") == "product-service" or p["name"].startswith("product-service"))
names = [c["name"] for c in pod["containers"]]
print("product-service pod containers:", names)
assert "envoy" in names and len(names) == 2

# %% [markdown]
# ## 4. The VirtualGateway: no selectors
#
# The guide's virtual gateway has neither `podSelector` (which pods are its Envoy) nor
# `namespaceSelector` (from which namespaces gateway routes attach). Absent selectors select
# nothing: no pod becomes the gateway, no route ever attaches. And `meshRef` again.

# %%
GUIDE_VG = """# 07-virtual-gateway.yaml
apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualGateway
metadata:
  name: appmesh-gateway
  namespace: default
spec:
  awsName: appmesh-gateway_default
  meshRef:
    name: my-app-mesh
  listeners:
    - portMapping:
        port: 8080
        protocol: http
"""
validate("07-virtual-gateway.yaml", GUIDE_VG, ["spec.namespaceSelector", "spec.podSelector", "spec.meshRef"])

# %%
corrected("manifests/walkthrough/08-virtual-gateway.yaml")

# %% [markdown]
# ## 5. The GatewayRoute: fields that do not exist
#
# The heart of the guide, and four mistakes in eighteen lines: `gatewayRouteTarget` is the name
# of a *type* in App Mesh's API reference, not a field; `match` belongs inside the route type
# (`httpRoute.match.prefix`), not beside it under `http`; `virtualGatewayRef` and `meshRef` are
# filled in by the controller (a gateway route attaches to the virtual gateway whose
# `namespaceSelector` matches its namespace and whose `gatewayRouteSelector`, if any, matches
# its labels).

# %%
GUIDE_ROUTE = """# 09-product-gateway-route.yaml
apiVersion: appmesh.k8s.aws/v1beta2
kind: GatewayRoute
metadata:
  name: product-gateway-route
  namespace: default
spec:
  awsName: product-gateway-route_default
  gatewayRouteTarget:
    virtualService:
      virtualServiceRef:
        name: product-service
  match:
    http:
      prefix: "/products" # Match requests starting with /products
  virtualGatewayRef:
    name: appmesh-gateway # Link to our VirtualGateway
  meshRef:
    name: my-app-mesh
"""
validate("09-product-gateway-route.yaml", GUIDE_ROUTE,
         ["spec.gatewayRouteTarget", "spec.match", "spec.virtualGatewayRef", "spec.meshRef"])

# %% [markdown]
# **Corrected**, applied and curled:

# %%
corrected("manifests/walkthrough/10-product-gateway-route.yaml")
h = nb.expect(t, "/products", 200, service="product-service", timeout=TIMEOUT_S)
print("->", h.status, h.service, "saw", h.path)

# %% [markdown]
# ## 6. The `v1beta1` API, and weighted targets on a gateway route
#
# The companion article writes `appmesh.k8s.aws/v1beta1` with `meshName` and `gatewayName`, and
# gives its gateway route `weightedTargets`. `v1beta1` is no longer served; `v1beta2` has no
# `meshName` or `gatewayName` (membership and attachment come from labels), and a gateway route
# sends to exactly **one** virtual service. A weighted split belongs to a `VirtualRouter` route,
# behind a virtual service the gateway route targets.

# %%
BLOG_MESH = """apiVersion: appmesh.k8s.aws/v1beta1
kind: Mesh
metadata:
  name: my-app-mesh
spec:
  meshName: my-app
"""
BLOG_ROUTE = """apiVersion: appmesh.k8s.aws/v1beta1
kind: GatewayRoute
metadata:
  name: my-gateway-route
spec:
  meshName: my-app
  gatewayName: my-gateway
  httpRoute:
    match:
      prefix: "/api"
    action:
      weightedTargets:
        - targetRef:
            virtualServiceRef:
              name: my-backend-service
            weight: 10
        - targetRef:
            virtualServiceRef:
              name: my-secondary-service
            weight: 90
"""
validate("blog-mesh.yaml", BLOG_MESH, ["apiVersion", "spec.meshName"])
validate("blog-gateway-route.yaml", BLOG_ROUTE, ["apiVersion", "spec.meshName", "spec.gatewayName"])
# the same route written in v1beta2 still has the weighted targets, which a gateway route cannot have
validate("blog-gateway-route-v1beta2.yaml",
         BLOG_ROUTE.replace("v1beta1", "v1beta2").replace("  meshName: my-app\n  gatewayName: my-gateway\n", ""),
         ["spec.httpRoute.action.weightedTargets"])

# %% [markdown]
# **Corrected**: the split moves to a router (10 % to the product service, 90 % to the review
# service, standing in for the article's two backends), a virtual service `api` in front of it,
# and the gateway route targets that one service.

# %%
API_SPLIT = """apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualRouter
metadata:
  name: api-router
  namespace: appmesh-demo
spec:
  listeners:
    - portMapping:
        port: 8080
        protocol: http
  routes:
    - name: api-split
      httpRoute:
        match:
          prefix: /
        action:
          weightedTargets:
            - virtualNodeRef:
                name: product-service-vn
              weight: 10
            - virtualNodeRef:
                name: review-service-vn
              weight: 90
---
apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualService
metadata:
  name: api
  namespace: appmesh-demo
spec:
  awsName: api.appmesh-demo.svc.cluster.local
  provider:
    virtualRouter:
      virtualRouterRef:
        name: api-router
---
apiVersion: appmesh.k8s.aws/v1beta2
kind: GatewayRoute
metadata:
  name: my-gateway-route
  namespace: appmesh-demo
spec:
  httpRoute:
    match:
      prefix: /api
    action:
      target:
        virtualService:
          virtualServiceRef:
            name: api
"""
report = validate("api-split.yaml", API_SPLIT)   # warnings only: what it names is in the walkthrough's files
assert report.returncode == 0 and " 0 error(s)" in report.stdout, report.stdout
nb.apply_text(t, API_SPLIT)
t.wait_active("GatewayRoute", "my-gateway-route", NAMESPACE, timeout=TIMEOUT_S)
h = nb.expect(t, "/api", 200, timeout=TIMEOUT_S)   # the route is programmed (either service may answer)

# %% [markdown]
# 80 requests: each has a 10 % chance of reaching the product service, so both services answer
# except with probability 0.9⁸⁰ + 0.1⁸⁰ ≈ 0.0002.

# %% tags=["volatile"]
hits = nb.hit(t, "/api", n=80, concurrency=4)
seen = nb.count(hits, "service")
print(dict(seen))
assert all(h.status == 200 for h in hits) and seen["product-service"] > 0 and seen["review-service"] > 0, seen
assert seen["review-service"] > seen["product-service"], seen

# %% [markdown]
# ## Exercise: the guide's review route
#
# Below is the guide's `10-review-gateway-route.yaml`, verbatim. Correct `ANSWER` so that
# `appmesh-lab validate` accepts it and `/reviews` reaches the review service through the
# gateway, then run the check cell. (The solution is in the hidden cell after it: expand it if
# you are stuck.)

# %%
ANSWER = """apiVersion: appmesh.k8s.aws/v1beta2
kind: GatewayRoute
metadata:
  name: review-gateway-route
  namespace: default
spec:
  awsName: review-gateway-route_default
  gatewayRouteTarget:
    virtualService:
      virtualServiceRef:
        name: review-service
  match:
    http:
      prefix: "/reviews" # Match requests starting with /reviews
  virtualGatewayRef:
    name: appmesh-gateway
  meshRef:
    name: my-app-mesh
"""


def reviews_routed():
    """/reviews reaches the review service through the gateway."""
    nb.expect(t, "/reviews", 200, service="review-service", timeout=TIMEOUT_S)


check_exercise = nb.exercise(t, reviews_routed, TIMEOUT_S, ok="it works: /reviews reaches the review service",
                             hint="a route attaches to the gateway whose namespaceSelector matches its namespace's "
                                  "labels: appmesh-demo has gateway: appmesh-gateway")
check_exercise(ANSWER)

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution (this cell is hidden in the notebook: expand it to read it)
ANSWER = """apiVersion: appmesh.k8s.aws/v1beta2
kind: GatewayRoute
metadata:
  name: review-gateway-route
  namespace: appmesh-demo
spec:
  httpRoute:
    match:
      prefix: /reviews
    action:
      target:
        virtualService:
          virtualServiceRef:
            name: review-service
"""
assert check_exercise(ANSWER)

# %% [markdown]
# ## Clean up
#
# The split and its route go; the walkthrough stays as lesson 06 left it.

# %%
for kind, name in (("GatewayRoute", "my-gateway-route"), ("VirtualService", "api"), ("VirtualRouter", "api-router")):
    nb.remove(t, kind, name, NAMESPACE)
nb.apply(t, "manifests/walkthrough/11-review-gateway-route.yaml")
nb.expect(t, "/reviews", 200, service="review-service", timeout=TIMEOUT_S)

# %% [markdown]
# Next, **14-cleanup**.
