# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · The virtual gateway
#
# Nothing outside the mesh can reach the applications yet. A **VirtualGateway** is the mesh's
# front door: an Envoy that accepts traffic from outside and sends it on to virtual services,
# as its gateway routes say. This lesson creates the gateway (`manifests/walkthrough/08` and
# `09`); the routes come in notebook 06.
#
# The next cell holds the parameters (papermill and `appmesh-lab e2e` override them). The cell after it brings the target to the state this lesson starts from — the mesh and the running applications of notebooks 03 and 04 — so you can open this notebook on its own. It is safe to run it again.

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

t = nb.setup(TARGET, stage="04", namespace=NAMESPACE, cluster_name=CLUSTER_NAME, region=REGION,
             lab_home=LAB_HOME, timeout_s=TIMEOUT_S)

# %% [markdown]
# ## The VirtualGateway resource
#
# Two selectors link it to the rest:
#
# * `namespaceSelector` — whose GatewayRoutes attach to this gateway: those created in a
#   namespace with the label `gateway: appmesh-gateway`. Leave it out and the gateway is
#   accepted, but **no route can ever attach**.
# * `podSelector` — which pods run this gateway's Envoy.
#
# A gateway listener speaks `http`, `http2` or `grpc` (never `tcp`). The access log goes to the
# Envoy's standard output, where notebook 10 reads it.

# %%
nb.show("manifests/walkthrough/08-virtual-gateway.yaml")
nb.apply(t, "manifests/walkthrough/08-virtual-gateway.yaml")
c = t.wait_active("VirtualGateway", "appmesh-gateway", NAMESPACE, timeout=TIMEOUT_S)
print(f"{c['type']}={c['status']} ({c['message']})")
assert c["status"] == "True", c

# %% [markdown]
# ## The gateway's Envoy: a Deployment you write yourself
#
# Unlike an application pod, a gateway pod brings its own Envoy container, and it **must be named
# `envoy`**: that is the container the injector configures for the virtual gateway whose
# `podSelector` matches the pod. Gateway pods have no traffic redirection; Envoy listens on the
# listener port (8088) itself. A Service of type LoadBalancer exposes it on port 80.

# %%
nb.show("manifests/walkthrough/09-gateway-deployment.yaml")
nb.apply(t, "manifests/walkthrough/09-gateway-deployment.yaml")
pods = nb.wait_pods(t, NAMESPACE, ["appmesh-gateway"], TIMEOUT_S)
nb.table([[p["owner"], p["ready"], p["status"], ", ".join(c["name"] for c in p["containers"])] for p in pods],
         ["deployment", "READY", "STATUS", "containers"])
assert [c["name"] for c in pods[0]["containers"]] == ["envoy"] and pods[0]["ready"] == "1/1", pods[0]

# %% [markdown]
# ## Where the gateway is
#
# * **local**: the Service's port is exposed on 127.0.0.1 (port 80 becomes 30080 when that port
#   is free); `appmesh-lab status` lists every gateway's address.
# * **kind**: a LoadBalancer Service stays `<pending>` without a load-balancer helper, so forward
#   a port: `kubectl -n appmesh-demo port-forward svc/appmesh-gateway 9080:80`.
# * **eks**: AWS provisions a load balancer; its DNS name appears in the Service's status (allow
#   a few minutes).
#
# In the lessons, `$GW` stands for that address.

# %% tags=["volatile"]
nb.command("kubectl -n appmesh-demo port-forward svc/appmesh-gateway 9080:80 &      # kind: GW=http://127.0.0.1:9080")
nb.command("kubectl -n appmesh-demo get svc appmesh-gateway "
           "-o jsonpath='{.status.loadBalancer.ingress[0].hostname}'      # eks: GW=http://<that name>")
GW = t.gateway_url()
print("GW =", GW)
assert GW.startswith("http")

# %% [markdown]
# ## The gateway answers — with 404
#
# Send it a request. The gateway's Envoy answers by itself with **404**: it has no route for the
# path (`/` has none, even after notebook 06 adds `/products` and `/reviews`). App Mesh never
# documented the status of an unmatched request at a gateway; 404 is Envoy's own answer when no
# route matches, and it is what App Mesh users saw. The `server: envoy` header shows who answered.

# %%
r = nb.expect(t, "/", 404, timeout=TIMEOUT_S)
print("->", r.status, "| server:", r.headers.get("server"))
assert r.headers.get("server") == "envoy", r.headers

# %% [markdown]
# ## Exercise: a second door
#
# A partner team wants a gateway of its own, `partner-gateway` in this namespace: it should take
# HTTP on port 8443 and accept the GatewayRoutes of the namespaces labelled `gateway: partner`
# (and no others: the walkthrough's routes, coming in 06, must attach to `appmesh-gateway` alone). The
# manifest below is the guide's way of writing a gateway. Correct `ANSWER`, then run the check
# cell: it validates and applies your gateway and reads its condition. (No pods run it here, so
# it costs nothing; the solution is in the hidden cell after it.)

# %%
ANSWER = """apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualGateway
metadata:
  name: partner-gateway
  namespace: appmesh-demo
spec:
  podSelector:
    matchLabels:
      app: partner-gateway
  listeners:
    - portMapping:
        port: 8443
        protocol: tcp
"""


def partner_gateway():
    """The gateway is active, listens for HTTP on 8443 and selects `gateway: partner`."""
    nb.active(t, "VirtualGateway", "partner-gateway", NAMESPACE, TIMEOUT_S)
    spec = t.get("VirtualGateway", "partner-gateway", NAMESPACE)[0]["spec"]
    ports = [(lst["portMapping"]["port"], lst["portMapping"]["protocol"]) for lst in spec["listeners"]]
    assert ports == [(8443, "http")], f"the listeners are {ports}, expected [(8443, 'http')]"
    assert spec.get("namespaceSelector") == {"matchLabels": {"gateway": "partner"}}, \
        f"namespaceSelector is {spec.get('namespaceSelector')}: it should select the label gateway: partner"


check_exercise = nb.exercise(
    t, partner_gateway, TIMEOUT_S, ok="it works: partner-gateway is active, and only partner namespaces' routes can attach",
    hint="a gateway listener speaks http, http2 or grpc; which namespaces' routes attach is namespaceSelector's job")
check_exercise(ANSWER)

# %% jupyter={"source_hidden": true} tags=["solution"]
# Solution (hidden in the notebook: expand the cell to read it): a namespaceSelector (without one
# no route can ever attach) and an http listener (a gateway cannot take plain tcp).
ANSWER = ANSWER.replace("spec:\n", "spec:\n  namespaceSelector:\n    matchLabels:\n      gateway: partner\n").replace(
    "protocol: tcp", "protocol: http")
assert check_exercise(ANSWER)
nb.remove(t, "VirtualGateway", "partner-gateway", NAMESPACE)

# %% [markdown]
# The door is open, but it leads nowhere yet. Next, **06-gateway-routes**.
