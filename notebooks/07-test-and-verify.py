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
# On `local`, the kit's command line shows the same view as `kubectl get`:

# %% tags=["volatile"]
if TARGET == "local":
    nb.cli("get", "gr", "-n", NAMESPACE)

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

# %% [markdown]
# The walkthrough works and the mesh agrees about it. Next, **08-traffic-management**.
