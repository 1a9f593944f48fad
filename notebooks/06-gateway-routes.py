# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · Gateway routes
#
# The heart of the course. A **GatewayRoute** says: requests that look like *this* go to *that*
# virtual service. This lesson adds the walkthrough's two routes (`manifests/walkthrough/10` and
# `11`), then looks at how matching, priority and rewriting work by watching what the
# applications receive.
#
# The next cell holds the parameters (papermill and `appmesh-lab e2e` override them). The cell after it brings the target to the state this lesson starts from — the mesh, the applications and the gateway of notebooks 03 to 05 — so you can open this notebook on its own. It is safe to run it again.

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

t = nb.setup(TARGET, stage="05", namespace=NAMESPACE, cluster_name=CLUSTER_NAME, region=REGION,
             lab_home=LAB_HOME, timeout_s=TIMEOUT_S)

# %% [markdown]
# ## The path of a request
#
# A request through the virtual gateway is routed twice: first the **gateway** picks a virtual
# service (a GatewayRoute: this lesson), then the **virtual service's provider** picks a virtual
# node (a virtual router's route, notebook 08; or the one virtual node that provides it).
#
# ```text
#  client
#    │  GET /products/42            Host: <gateway address>
#    ▼
#  load balancer (Service type LoadBalancer; on local: 127.0.0.1, port 80 → 30080)
#    ▼
#  gateway Envoy: the VirtualGateway's listener (port 8088)
#    │  stage 1 ─ GatewayRoute match: priority first, then the longest prefix ....... NR 404 if none
#    │            rewrite: prefix /products → /, Host → product-service.appmesh-demo.svc.cluster.local
#    ▼
#  virtual service product-service
#    │  stage 2 ─ its provider: a virtual router (a route's match, weights, retries, timeouts)
#    │            or one virtual node
#    ▼
#  virtual node product-service-vn ─► a pod: its sidecar Envoy (ingress listener) ─► the app
#                                                                 GET /42  Host: product-service...
# ```
#
# The gateway's Envoy does stage 2 itself, on a second listener of its own, reached through the
# `_self_redirect_…` cluster in its configuration (the name App Mesh's gateways used; in the kit
# an Envoy internal listener, reached in memory), then sends the request to a pod's sidecar.

# %% [markdown]
# ## Anatomy of a GatewayRoute
#
# * The route type: exactly one of `httpRoute`, `http2Route` or `grpcRoute`, matching the
#   gateway listener's protocol.
# * `match` (required): here a `prefix`. A prefix match is plain string matching: `/products`
#   also matches `/productsXYZ`.
# * `action.target.virtualService.virtualServiceRef` (required): the one virtual service the
#   request goes to. A gateway route has no weights; splitting traffic is a virtual router's job
#   (notebook 08).
#
# There is no field naming the gateway. A route attaches to the virtual gateway whose
# `namespaceSelector` matches the route's namespace labels (and whose optional
# `gatewayRouteSelector` matches the route's own labels) — decided once, when the route is created.

# %%
nb.show("manifests/walkthrough/10-product-gateway-route.yaml")
nb.apply(t, "manifests/walkthrough/10-product-gateway-route.yaml")
nb.apply(t, "manifests/walkthrough/11-review-gateway-route.yaml")
for name in ("product-gateway-route", "review-gateway-route"):
    c = t.wait_active("GatewayRoute", name, NAMESPACE, timeout=TIMEOUT_S)
    print(f"{name}: {c['type']}={c['status']} ({c['message']})")

# %% [markdown]
# ## Requests and what the applications see
#
# Each answer says which service answered and which path and `Host` it received:

# %%
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

# %% [markdown]
# ## The default rewrites
#
# Two things changed on the way in, and App Mesh does both **by default** for a prefix match:
#
# * **The matched prefix is replaced by `/`.** `/products/42` arrives as `/42`, `/productsXYZ`
#   as `/XYZ`. (Envoy adds the original path in the `x-envoy-original-path` header.)
# * **The Host header becomes the virtual service's name**, its `awsName`:
#   `product-service.appmesh-demo.svc.cluster.local`. That is the name the mesh routes by.
#
# A path match (`match.path.exact` or `match.path.regex`) has no default path rewrite: the path
# arrives as sent (see notebook 08).

# %%
h = nb.expect(t, "/products/42", 200, service="product-service", timeout=TIMEOUT_S)
headers = h.data["request"]["headers"]
print("path:", h.path, "| Host:", h.host, "| x-envoy-original-path:", headers.get("x-envoy-original-path"))
assert h.path == "/42" and headers.get("x-envoy-original-path") == "/products/42"
assert h.host == "product-service.appmesh-demo.svc.cluster.local"

# %% [markdown]
# ## Priority
#
# When several routes match a request, `priority` decides: from 0 (first) to 1000 (last); the
# first route that matches wins.
#
# * **App Mesh documented:** routes are tried in priority order, 0 first (the API's range is
#   0–1000), and among gateway routes without a priority "a request is matched to the route
#   with the longest prefix" (App Mesh User Guide, *Gateway routes*: `/chapter` before `/`).
#   The App Mesh controller's CRD says a route without a priority has priority 1000, the lowest.
# * **The kit decided** (App Mesh's documentation is silent, `lab/translate/precedence.py`):
#   routes that tie on an explicit priority are ordered the same way, exact path before the
#   longest prefix before a regex, then the route with more conditions (headers, query, method,
#   hostname, port), then by name, so the order never depends on the order you applied them in.
#
# `/products` and `/reviews` have no priority and do not overlap, so they never competed.
#
# Add a catch-all route, prefix `/` to review-service, with priority **0**. It now beats the
# walkthrough's routes for every request, `/products` included. (A `/` prefix rewrites `/` to
# `/`, so the path arrives unchanged.)

# %%
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

# %% [markdown]
# Now give the catch-all priority **1000**, the same as the walkthrough's routes. They tie, so
# the longest matching prefix wins: `/products` goes back to product-service, and the catch-all
# only gets what nothing else matches — `/`, which used to be a 404.

# %%
nb.apply_text(t, CATCH_ALL.format(priority=1000))
nb.expect(t, "/products", 200, service="product-service", seen_path="/", timeout=TIMEOUT_S)
nb.expect(t, "/", 200, service="review-service", seen_path="/", timeout=TIMEOUT_S)
nb.remove(t, "GatewayRoute", "catch-all", NAMESPACE)
nb.expect(t, "/", 404, timeout=TIMEOUT_S)
print("catch-all removed: / is unmatched again")

# %% [markdown]
# ## Keeping the prefix: `defaultPrefix: DISABLED`
#
# Some applications expect the full path. `rewrite.prefix.defaultPrefix: DISABLED` turns the
# default prefix rewrite off; the Host rewrite still happens. (`rewrite.prefix.value`,
# `rewrite.path.exact` and `rewrite.hostname` are shown in `manifests/examples/rewrites/`.)

# %%
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

# %% [markdown]
# The walkthrough is complete: clients outside the mesh reach both services through the gateway.
# Next, **07-test-and-verify** checks it thoroughly.
