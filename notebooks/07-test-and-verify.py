# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 07 · Test and verify
#
# The guide ends with two `curl` commands and "if you see the greeting, it works". This lesson
# checks more carefully: every request in the walkthrough's table, a call from one service to
# another inside the mesh, the status of every resource, and the App Mesh API's view.
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
# ## Through the gateway
#
# The walkthrough's table of requests and answers (`manifests/walkthrough/README.md`), as
# assertions:

# %%
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

# %% [markdown]
# ## What Envoy says about a request
#
# `curl -i` shows the status line and the headers; the gateway's access log says how Envoy
# handled the request. Envoy adds `server: envoy` and, when an upstream answered,
# `x-envoy-upstream-service-time` (milliseconds the upstream took). Each access log line carries
# a **response flag**: `-` when all went well, `NR` when no route matched (the gateway answers
# 404 itself: no upstream, so no `x-envoy-upstream-service-time`). Later lessons meet `UF`, `UH`,
# `URX`, `UT` and `UC`.

# %%
ok = nb.show_request(t, "/products")
assert ok.status == 200 and ok.flag == "-" and ok.headers.get("server") == "envoy"
assert "x-envoy-upstream-service-time" in ok.headers
print()
lost = nb.show_request(t, "/")
assert lost.status == 404 and lost.flag == "NR" and "x-envoy-upstream-service-time" not in lost.headers

# %% [markdown]
# The answers carry each service's greeting, and `Accept: text/plain` gets a one-line summary
# instead of JSON:

# %%
h = nb.expect(t, "/products", 200, service="product-service", timeout=TIMEOUT_S)
assert h.data["message"] == "Hello from Product Service!", h.data
h = nb.expect(t, "/reviews", 200, service="review-service", timeout=TIMEOUT_S)
assert h.data["message"] == "Hello from Review Service!", h.data
h = nb.expect(t, "/products", 200, headers={"Accept": "text/plain"}, timeout=TIMEOUT_S)
text = h.body.decode()
print(text)
assert text.startswith("product-service v1 (pod product-service-") and "got GET /" in text
assert "Hello from Product Service!" in text

# %% [markdown]
# ## Inside the mesh
#
# product-service lists review-service as a backend, so its sidecar knows how to reach it. The
# sample app's `/call/<host>:<port>/<path>` endpoint makes such a call from inside product-service
# and reports the answer:

# %%
path = "/products/call/review-service.appmesh-demo.svc.cluster.local:8080/reviews/7"
h = nb.expect(t, path, 200, service="product-service", timeout=TIMEOUT_S)
called = h.data["called"]
print("product-service called", called["host"], "->", called["status"], called["body"]["service"],
      "saw", called["body"]["request"]["path"])
assert called["status"] == 200
assert called["body"]["service"] == "review-service"
assert called["body"]["request"]["path"] == "/reviews/7"

# %% [markdown]
# ## A gRPC gateway route, called by a gRPC client
#
# A gateway listener with `protocol: grpc` takes gRPC (HTTP/2) calls, and its routes are
# `grpcRoute`s, which match the gRPC **service name** (the part of the call's path before the
# method: a call to `/lab.echo.Echo/Say` is service `lab.echo.Echo`) and **metadata** (gRPC's
# request headers). `manifests/examples/grpc-gateway-route/` runs the kit's gRPC echo server
# (`lab/apps/grpc_echo.py`) as two versions; calls with the metadata `x-tenant: beta` go to v2.
#
# * **App Mesh documented** `serviceName` as the service's "fully qualified domain name"; its own
#   examples used the gRPC service name (`serviceName: Hello`), and that is what the kit matches
#   (the prefix `/<serviceName>/` of the call's path). There is **no method-name match** on a
#   gateway route (a virtual router's gRPC route has `methodName`), and a gRPC path is never
#   rewritten: only the `:authority`, to the virtual service's name by default.
# * **The kit decided** nothing beyond that here; what the calls below get is Envoy's behaviour.
#
# The client is Python's `grpcio`, calling methods by their full path with JSON bytes in and out
# (the echo server needs no `.proto` file).

# %%
import json

import grpc

GRPC = "manifests/examples/grpc-gateway-route/"
nb.apply(t, GRPC)
nb.show_routes(GRPC + "40-gateway-routes.yaml")
host, port = nb.gateway_address(t, "gateway_ex-grpc-gateway-route")
channel = grpc.insecure_channel(f"{host}:{port}")      # GW_ADDR: the gateway's host:port, no http://


def call(path, body=None, metadata=()):
    """One unary gRPC call by its full path. Returns (status name, answer dict or None, details,
    the x-served-by metadata the echo server sends: <service>/<version>/<pod>; "" when none came)."""
    stub = channel.unary_unary(path, request_serializer=None, response_deserializer=None)
    request = json.dumps(body).encode() if body is not None else b""
    try:
        raw, info = stub.with_call(request, metadata=list(metadata), timeout=5)
        return "OK", json.loads(raw), "", dict(info.initial_metadata()).get("x-served-by", "")
    except grpc.RpcError as err:
        meta = dict(list(err.initial_metadata() or ()) + list(err.trailing_metadata() or ()))   # an error can be trailers only
        return err.code().name, None, err.details() or "", meta.get("x-served-by", "")


def answered():
    r = call("/lab.echo.Echo/Say", {"message": "hello"})
    assert r[0] == "OK", r
    return r


first = t.eventually(answered, TIMEOUT_S, what="the first gRPC call through the gateway")
print("Say ->", first[0], json.dumps(first[1]["message"]), "from", first[1]["service"], first[1]["version"])
assert first[1]["message"] == "hello" and first[1]["request"]["method"] == "/lab.echo.Echo/Say"

CASES = [  # path, body, metadata, status, version that answers, :authority it sees, details
    ("/lab.echo.Echo/Say", {"message": "hello"}, (), "OK", "v1", "echo.ex-grpc-gateway-route.svc.cluster.local", ""),
    ("/lab.echo.Echo/Info", None, [("x-tenant", "beta")], "OK", "v2", "echo-v2.ex-grpc-gateway-route.svc.cluster.local", ""),
    ("/lab.echo.Echo/Info", None, [("x-tenant", "Beta")], "OK", "v1", "echo.ex-grpc-gateway-route.svc.cluster.local", ""),
    ("/lab.echo.Echo/Nope", None, (), "UNIMPLEMENTED", None, None, "Method not found!"),
    ("/unknown.Service/Call", None, (), "UNIMPLEMENTED", None, None, ""),
]
rows = []
for path, body, metadata, status, version, authority, details in CASES:
    code, data, said, served_by = call(path, body, metadata)
    rows.append([path, ", ".join(f"{k}: {v}" for k, v in metadata) or "-", code, said or "-",
                 f"{data['service']} {data['version']}" if data else "-", (data or {}).get("request", {}).get("authority", "-")])
    assert (code, said) == (status, details), rows[-1]
    if version:
        assert (data["version"], served_by.split("/")[:2]) == (version, ["echo", version]), rows[-1]
        assert data["request"]["authority"] == authority, rows[-1]
    elif not details:   # nobody but the gateway answered: no server's x-served-by
        assert served_by == "", rows[-1]
nb.table(rows, ["call", "metadata", "grpc-status", "details", "answered by", "server sees :authority"])

# %% [markdown]
# The two `UNIMPLEMENTED` answers come from different places, and the gateway's access log tells
# them apart:
#
# * `/lab.echo.Echo/Nope`: the route matched the **service** name, so the call reached the echo
#   server, which has no method `Nope` and answers as gRPC libraries do, `Method not found!`.
#   Envoy logged a normal HTTP/2 200 with no flag: in gRPC the status travels in the
#   `grpc-status` trailer, not in the HTTP status.
# * `/unknown.Service/Call`: no route matched. Envoy answers a gRPC request it has no route for in
#   gRPC terms, `grpc-status: 12` (UNIMPLEMENTED) instead of a bare 404, and logs `NR`.
#
# When a route matches but nothing can answer (no healthy endpoint, a reset connection), the
# gateway's 503 becomes `grpc-status: 14`, **UNAVAILABLE**, the code a gRPC client retries.

# %%
gw_flags = {p: nb.flags(t, "gateway", p, show=True)[-1] for p in ("/lab.echo.Echo/Nope", "/unknown.Service/Call")}
assert gw_flags == {"/lab.echo.Echo/Nope": "-", "/unknown.Service/Call": "NR"}, gw_flags

# %% [markdown]
# ### Exercise: a canary for gRPC callers
#
# Calls that carry the metadata `x-canary: true` should go to echo v2; every other call stays on
# v1. The route below was copied from an HTTP gateway and the lab refuses it. Correct `ANSWER`,
# then run the check cell: it applies your route and makes two calls, one with the metadata and
# one without. (The solution is in the hidden cell after it.)

# %%
ANSWER = """apiVersion: appmesh.k8s.aws/v1beta2
kind: GatewayRoute
metadata:
  name: echo-canary
  namespace: ex-grpc-gateway-route
spec:
  priority: 5
  httpRoute:
    match:
      prefix: /lab.echo.Echo/
      headers:
        - name: x-canary
          match:
            exact: "true"
    action:
      target:
        virtualService:
          virtualServiceRef:
            name: echo-v2
"""


def canary_split():
    """A call with x-canary: true reaches echo v2 and one without reaches v1 (within 10 s: the
    gateway takes a moment to take the route)."""
    def both():
        canary, plain = call("/lab.echo.Echo/Info", None, [("x-canary", "true")]), call("/lab.echo.Echo/Info")
        assert canary[0] == "OK" and canary[1]["version"] == "v2", f"with x-canary: true: {canary[0]} {canary[3]}"
        assert plain[0] == "OK" and plain[1]["version"] == "v1", f"without it: {plain[0]} {plain[3]}"
    t.eventually(both, 10, what="the two calls")


check_exercise = nb.exercise(t, canary_split, TIMEOUT_S, ok="it works: x-canary: true reaches echo v2, other calls echo v1",
                             hint="a grpc listener takes grpcRoutes, which match serviceName and metadata")
check_exercise(ANSWER)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution (hidden in the notebook: expand the cell to read it): a grpcRoute, matching the
# service name and the metadata (gRPC's headers); the match and the target stay as they were.
ANSWER = ANSWER.replace("  httpRoute:\n    match:\n      prefix: /lab.echo.Echo/\n      headers:\n",
                        "  grpcRoute:\n    match:\n      serviceName: lab.echo.Echo\n      metadata:\n")
assert check_exercise(ANSWER)
channel.close()
nb.remove(t, "GatewayRoute", "echo-canary", "ex-grpc-gateway-route")
nb.delete(t, GRPC)

# %% [markdown]
# ## Status conditions
#
# Every resource should be active. `kubectl get` shows the condition; `kubectl describe` adds the
# spec, the ARN and the events.

# %%
rows = nb.resources(t, NAMESPACE)
inactive = [f"{kind} {name}: {reason}" for kind, name, active, reason in rows if active != "True"]
assert not inactive, inactive
assert {"product-gateway-route", "review-gateway-route"} <= {name for kind, name, *_ in rows if kind == "GatewayRoute"}

# %%
item = nb.describe(t, "GatewayRoute", "product-gateway-route", NAMESPACE)
arn = item["status"]["gatewayRouteARN"]
assert arn.endswith("mesh/my-app-mesh/virtualGateway/appmesh-gateway_appmesh-demo"
                    "/gatewayRoute/product-gateway-route_appmesh-demo"), arn

# %% [markdown]
# The ARN follows App Mesh's pattern. Note the names in it: App Mesh objects created from
# Kubernetes get `<name>_<namespace>` as their AWS name (`product-gateway-route_appmesh-demo`),
# except virtual services, whose AWS name is their `awsName` (or `<name>.<namespace>`).
#
# On a cluster `kubectl get` shows the routes; on `local`, the kit's command line shows the same
# view:

# %% tags=["volatile"]
if TARGET == "local":
    listing = nb.cli("get", "gr", "-n", NAMESPACE).stdout
else:
    listing = t.run(["kubectl", "get", "gatewayroutes.appmesh.k8s.aws", "-n", NAMESPACE])
for name in ("product-gateway-route", "review-gateway-route"):
    assert name in listing, f"{name} is missing from the listing"

# %% [markdown]
# ## The App Mesh API's view
#
# App Mesh also had a REST API (`aws appmesh ...`, `boto3.client("appmesh")`). The lab serves the
# same API shape (version 2019-01-25) on its own endpoint, over the same resources, so the same
# scripts can read the lab. Like AWS, it answers only requests signed (SigV4) with credentials it
# knows: at `up` the lab made a key pair of its own and wrote it, with a profile `appmesh-lab` that
# also names the endpoint, to two files in its home, in the aws CLI's `credentials` and `config`
# format (readable by you only). Point boto3 and the aws CLI at the two files and pick the profile;
# `appmesh-lab status` prints the same. Requests signed with any other credentials answer 403
# `UnrecognizedClientException`, as AWS did.

# %%
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
else:   # a cluster: no App Mesh API any more; the controller writes the same names into each route's status
    print(f"The App Mesh API is not available here ({api.reason}); each route's status.gatewayRouteARN names it.")
    names = sorted(r["status"]["gatewayRouteARN"].rsplit("/", 1)[1] for r in t.get("GatewayRoute", None, NAMESPACE)
                   if (r.get("status") or {}).get("gatewayRouteARN"))
    print("gateway routes by their App Mesh names:", names)
    print("On the local lab these commands list them through the API:")
assert {"product-gateway-route_appmesh-demo", "review-gateway-route_appmesh-demo"} <= set(names), names
files = api.env or {"AWS_CONFIG_FILE": "<lab home>/aws/config", "AWS_SHARED_CREDENTIALS_FILE": "<lab home>/aws/credentials"}
nb.command(f"export AWS_CONFIG_FILE={files['AWS_CONFIG_FILE']} AWS_SHARED_CREDENTIALS_FILE={files['AWS_SHARED_CREDENTIALS_FILE']}")
nb.command(f"aws appmesh list-gateway-routes --mesh-name {MESH} --virtual-gateway-name {VG} --profile appmesh-lab")
nb.command(f"aws appmesh describe-gateway-route --mesh-name {MESH} --virtual-gateway-name {VG} "
           f"--gateway-route-name product-gateway-route_appmesh-demo --profile appmesh-lab")

# %% [markdown]
# The walkthrough works and the mesh agrees about it. Next, **08-traffic-management**.
