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
# `rewrite.path.exact` and `rewrite.hostname` come after the method and host matches below.)

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
# ## Matching on the method and on the host
#
# A route's `match` can also name one HTTP **method** (`match.method`) and the **host** the client
# asked for (`match.hostname.exact` or `.suffix`). The example `manifests/examples/method-hostname-matching/`
# has its own namespace, mesh and gateway (`gateway_ex-method-hostname-matching` in App Mesh's
# names: the VirtualGateway `gateway` of that namespace), and four routes, each with a priority
# because a request can match two of them:
#
# * **App Mesh documented:** one method per route (`GET`, `POST`, ... — `HEAD` is a method of its
#   own, so a `GET` route does not take it); a hostname is matched `exact`ly or by `suffix`. A
#   `Host` that carried a port (`shop.example.com:8080`) did not match, which users reported as a
#   bug (App Mesh roadmap issue 365; whether it was fixed is unclear).
# * **The kit decided:** the port in a `Host` is ignored when matching, and host names match
#   regardless of case (as HTTP says they are compared, RFC 9110 §4.2.3).

# %%
MH = "manifests/examples/method-hostname-matching/"
nb.apply(t, MH)
nb.show_routes(MH + "40-gateway-routes.yaml")
CASES = [  # method, request, Host, status, answered by, path the app sees
    ("POST", "/orders/new", None, 200, "order-writer", "/new"),
    ("GET", "/orders/7", None, 200, "order-reader", "/7"),
    ("DELETE", "/orders/7", None, 404, None, None),
    ("HEAD", "/orders/7", None, 404, None, None),
    ("GET", "/orders/7", "shop.example.com", 200, "shop", "/orders/7"),
    ("GET", "/cart", "SHOP.example.com:8080", 200, "shop", "/cart"),
    ("GET", "/", "admin.internal.example.com", 200, "internal", "/"),
    ("GET", "/", "internal.example.com", 404, None, None),
]
rows = []
for method, path, host, status, service, seen in CASES:
    h = nb.expect(t, path, status, method=method, headers={"Host": host} if host else None, service=service,
                  seen_path=seen, gateway="gateway_ex-method-hostname-matching", timeout=TIMEOUT_S, echo=False)
    rows.append([f"{method} {path}", host or "(the gateway's address)", h.status,
                 h.service or "gateway: no route matched", h.path or "-", h.host or "-"])
nb.table(rows, ["request", "Host sent", "status", "answered by", "app sees path", "app sees Host"])
assert all(r[5].endswith(".ex-method-hostname-matching.svc.cluster.local") for r in rows if r[2] == 200), rows
nb.delete(t, MH)

# %% [markdown]
# `DELETE` and `HEAD` match no route (404, `NR` in the gateway's access log). `GET /orders/7` sent
# to `shop.example.com` matches both `shop-host` (priority 10) and `orders-get` (40): the lower
# number wins. No app ever sees the client's host name: the Host is rewritten to the target's
# virtual service name, which is the next topic.
#
# ## Rewrites: a prefix value, an exact path, the client's Host
#
# The default rewrites (the matched prefix becomes `/`, the Host becomes the virtual service's
# name) can be changed in `action.rewrite`; `manifests/examples/rewrites/` has one route for each:
#
# * `rewrite.prefix.value` replaces the matched prefix with another one. **App Mesh documented**
#   that the value and the match prefix must then both end with `/` (the slash marks where the
#   prefix ends), and the validator refuses them otherwise.
# * `rewrite.path.exact` replaces the whole path; it goes with a `match.path`, which on its own
#   keeps the path as sent.
# * `rewrite.hostname.defaultTargetHostname: DISABLED` keeps the client's `Host`.
#
# App Mesh did not say what happens to the query string; **the kit decided** to pass it on
# untouched (`/store/items?color=red` arrives as `/shop/items?color=red`).

# %%
RW = "manifests/examples/rewrites/"
nb.apply(t, RW)
nb.show_routes(RW + "40-gateway-routes.yaml")
CASES = [  # request, Host sent, status, answered by, path the app sees, Host the app sees
    ("/store/items/1", None, 200, "shop", "/shop/items/1", "shop.ex-rewrites.svc.cluster.local"),
    ("/store/items?color=red", None, 200, "shop", "/shop/items?color=red", "shop.ex-rewrites.svc.cluster.local"),
    ("/store", None, 404, None, None, None),
    ("/old-report", None, 200, "reports", "/reports/latest", "reports.ex-rewrites.svc.cluster.local"),
    ("/old-report/2024", None, 404, None, None, None),
    ("/host/kept", "www.example.com", 200, "hosts", "/", "www.example.com"),
    ("/host/default", "www.example.com", 200, "hosts", "/", "hosts.ex-rewrites.svc.cluster.local"),
]
rows = []
for path, host, status, service, seen, seen_host in CASES:
    h = nb.expect(t, path, status, headers={"Host": host} if host else None, service=service, seen_path=seen,
                  seen_host=seen_host, gateway="gateway_ex-rewrites", timeout=TIMEOUT_S, echo=False)
    rows.append([path, host or "(the gateway's address)", h.status, h.service or "gateway: no route matched",
                 h.path or "-", h.host or "-"])
nb.table(rows, ["request", "Host sent", "status", "answered by", "app sees path", "app sees Host"])
nb.delete(t, RW)

# %% [markdown]
# `/store` (no trailing slash) does not match the prefix `/store/`, and `/old-report/2024` is not
# the exact path `/old-report`: both are 404s from the gateway.
#
# ## One gateway, two listeners: `match.port`
#
# A VirtualGateway can listen on several ports. `manifests/examples/multiple-listeners/` gives
# one gateway a public listener (8080) and an admin listener (8090), with a Service that exposes
# them as ports 80 and 81, and pins a route to each listener with `match.port` (the
# **listener's** port, not the Service's). Both routes match the prefix `/`; the port the client
# connected to decides.
#
# * **App Mesh documented:** `match.port` is "required if this virtual gateway has multiple
#   listeners" (User Guide, *Gateway routes*; AWS's walkthrough `howto-k8s-multiple-listeners`
#   pins every route this way).
# * **The kit decided** what "required" means when it is missing: the validator refuses the
#   route (on a cluster, the admission webhook does), rather than attaching it to every
#   listener or to none.

# %%
ML = "manifests/examples/multiple-listeners/"
nb.apply(t, ML)
vg = nb.manifest_doc(ML + "20-gateway.yaml", "VirtualGateway", "gateway")
nb.show_text(nb.to_yaml({"listeners": vg["spec"]["listeners"]}), title=ML + "20-gateway.yaml (the VirtualGateway's listeners)")
nb.show_routes(ML + "40-gateway-routes.yaml")
rows = []
for listener, path, service in ((8080, "/", "web"), (8080, "/settings", "web"), (8090, "/", "admin"),
                                (8090, "/settings", "admin")):
    h = nb.expect(t, path, 200, gateway="gateway_ex-multiple-listeners", listener=listener, service=service,
                  seen_path=path, timeout=TIMEOUT_S, echo=False)
    rows.append([f"listener {listener}", path, h.status, h.service, h.path])
nb.table(rows, ["connected to", "request", "status", "answered by", "app sees path"])

# %% [markdown]
# A third route without `match.port` is refused, with the field and what to write instead, and
# nothing changes:

# %%
NO_PORT = """
apiVersion: appmesh.k8s.aws/v1beta2
kind: GatewayRoute
metadata:
  name: status
  namespace: ex-multiple-listeners
spec:
  httpRoute:
    match:
      prefix: /status
    action:
      target:
        virtualService:
          virtualServiceRef:
            name: web
"""
answer = t.try_apply(NO_PORT, is_text=True)
refused = [p for p in answer["problems"] if p["severity"] == "error"]
for p in refused:
    print(nb.tidy(f"{p['path'] or '(cluster)'}: {p['message']}" + (f"\n    hint: {p['hint']}" if p.get("hint") else "")))
assert answer["rejected"] and any("match.port" in p["path"] + p["message"] for p in refused), answer
assert not t.get("GatewayRoute", "status", "ex-multiple-listeners"), "a rejected apply must change nothing"
nb.delete(t, ML)

# %% [markdown]
# ## Exercise: a versioned API path
#
# Clients call `/v2/products/<id>`; product-service expects `/api/<id>`. The route below means to
# do that but the validator refuses it. Correct `ANSWER` so that `GET /v2/products/42` reaches
# product-service as `/api/42`, then run the check cell: it validates your route, applies it and
# sends the request. (The solution is in the hidden cell after it: expand it if you are stuck.)

# %%
ANSWER = """apiVersion: appmesh.k8s.aws/v1beta2
kind: GatewayRoute
metadata:
  name: products-v2
  namespace: appmesh-demo
spec:
  httpRoute:
    match:
      prefix: /v2/products
    action:
      target:
        virtualService:
          virtualServiceRef:
            name: product-service
      rewrite:
        prefix:
          value: /api
"""


def check_exercise(text):
    """True when the route applies and /v2/products/42 reaches product-service as /api/42."""
    return nb.try_manifest(t, text, TIMEOUT_S) and nb.verdict(
        lambda: nb.expect(t, "/v2/products/42", 200, service="product-service", seen_path="/api/42",
                          timeout=5, echo=False),
        ok="it works: /v2/products/42 reaches product-service as /api/42",
        hint="a prefix rewrite replaces exactly the matched prefix: which prefix leaves /42 behind?")


check_exercise(ANSWER)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution (hidden in the notebook: expand the cell to read it): with a rewrite value, both the
# match prefix and the value end with "/", so /v2/products/ + 42 becomes /api/ + 42.
ANSWER = ANSWER.replace("prefix: /v2/products", "prefix: /v2/products/").replace("value: /api", "value: /api/")
assert check_exercise(ANSWER)
nb.remove(t, "GatewayRoute", "products-v2", NAMESPACE)

# %% [markdown]
# The walkthrough is complete: clients outside the mesh reach both services through the gateway.
# Next, **07-test-and-verify** checks it thoroughly.
