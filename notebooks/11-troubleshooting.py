# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 11 · Troubleshooting
#
# Six things that go wrong, each broken on purpose: what you see, how to find the cause with the
# status conditions, `appmesh-lab doctor`, Envoy's statistics and its configuration dump — and
# the fix, checked. Each scenario cleans up after itself.
#
# The next cell holds the parameters (papermill and `appmesh-lab e2e` override them). The cell after it brings the target to the state this lesson starts from — the complete walkthrough (notebooks 03 to 06); it also repairs what an interrupted run of this notebook left broken — so you can open this notebook on its own. It is safe to run it again.

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
# Your tools, from the outside in:
#
# | tool | tells you |
# |---|---|
# | the response (status, body, `server` header) | *what* happens |
# | status conditions (`kubectl get`/`describe`) | whether the control plane accepted a resource, and if not, why |
# | `appmesh-lab doctor` (local) | every inactive resource, every pod not running, every proxy that rejected its configuration |
# | ACK/NACK (`appmesh-lab status`) | whether each Envoy took the configuration it was sent |
# | Envoy stats, logs and config dump | what the data plane actually does |

# %%
def doctor():
    """appmesh-lab doctor on local; the cluster equivalent is shown otherwise."""
    if TARGET == "local":
        return nb.cli("doctor")
    nb.command(f"kubectl get virtualnodes,virtualservices,virtualgateways,gatewayroutes -n {NAMESPACE}")
    nb.command("kubectl -n appmesh-system logs deploy/appmesh-lab-controller --tail 50")
    return None

for name in ("broken-route", "inventory-route"):   # leftovers of an interrupted run
    nb.forget(t, "GatewayRoute", name, NAMESPACE)

# %% [markdown]
# ## 1. A gateway route whose virtual service does not exist
#
# A typo in `virtualServiceRef.name`. **Symptom**: the path gets 404, as if the route were not
# there — and for the gateway it is not: the control plane does not program a route to nowhere.

# %%
BROKEN = """apiVersion: appmesh.k8s.aws/v1beta2
kind: GatewayRoute
metadata:
  name: broken-route
  namespace: appmesh-demo
spec:
  httpRoute:
    match:
      prefix: /broken
    action:
      target:
        virtualService:
          virtualServiceRef:
            name: product-servce
"""
nb.apply_text(t, BROKEN)
nb.expect(t, "/broken", 404, timeout=TIMEOUT_S)

# %% [markdown]
# **Diagnose**: the route's condition says why, and so does `doctor`.

# %%
c = nb.condition(t.get("GatewayRoute", "broken-route", NAMESPACE)[0])
print(f"GatewayRouteActive={c['status']} reason={c['reason']}: {c['message']}")
assert (c["status"], c["reason"]) == ("False", "VirtualServiceNotFound"), c
report = doctor()
if report is not None:
    assert report.returncode == 1 and "broken-route" in report.stdout and "VirtualServiceNotFound" in report.stdout

# %% [markdown]
# **Fix**: name the service that exists.

# %%
nb.apply_text(t, BROKEN.replace("product-servce", "product-service"))
nb.expect(t, "/broken", 200, service="product-service", seen_path="/", timeout=TIMEOUT_S)
t.wait_active("GatewayRoute", "broken-route", NAMESPACE, timeout=TIMEOUT_S)
nb.remove(t, "GatewayRoute", "broken-route", NAMESPACE)

# %% [markdown]
# ## 2. A virtual node listener on the wrong port
#
# The virtual node says the app listens on 9090; the app listens on 8080. **Symptom**: 503 from
# the gateway — `upstream connect error`. The sidecar forwards to a port where nothing listens.

# %%
VN_FILE = "manifests/walkthrough/02-product-service-vn.yaml"
vn = nb.manifest_doc(VN_FILE, "VirtualNode", "product-service-vn")
vn["spec"]["listeners"][0]["portMapping"]["port"] = 9090
nb.apply_text(t, nb.to_yaml(vn))
h = nb.expect(t, "/products", 503, timeout=TIMEOUT_S)
print("->", h.status, h.body.decode()[:100])

# %% [markdown]
# **Diagnose**: this one the control plane cannot see. Every resource is valid and active, and
# `doctor` finds nothing wrong — the mismatch is between the virtual node and the application.
# Compare the listener port with the Deployment's `containerPort`, and look at the sidecar's
# inbound cluster: its connection failures count up.

# %%
inactive = [r for r in nb.resource_rows(t, NAMESPACE) if r[2] != "True"]
assert not inactive, inactive
report = doctor()
if report is not None:
    assert report.returncode == 0, "doctor sees no problem: the control plane is content"
live_vn = t.get("VirtualNode", "product-service-vn", NAMESPACE)[0]
deploy = t.get("Deployment", "product-service", NAMESPACE)[0]
listener_ports = [l["portMapping"]["port"] for l in live_vn["spec"]["listeners"]]
container_ports = [p["containerPort"] for c in deploy["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])]
print("virtual node listener ports:", listener_ports, "| container ports:", container_ports)
assert set(listener_ports) != set(container_ports)
with nb.quiet(t):
    failures = nb.stat(t.stats("product-service-vn", filter="cds_ingress"), r"^cluster\.cds_ingress_.*_9090\.upstream_cx_connect_fail$")
print("sidecar inbound cluster for 9090: upstream_cx_connect_fail =", failures)
assert failures > 0

# %% [markdown]
# **Fix**: put the listener back on the app's port.

# %%
nb.apply(t, VN_FILE)
nb.expect(t, "/products", 200, service="product-service", timeout=TIMEOUT_S)

# %% [markdown]
# ## 3. A prefix that never matches
#
# The route says `/inventory/`; clients call `/inventory`. **Symptom**: 404. A prefix is plain
# string matching, and `/inventory` does not start with `/inventory/`.

# %%
INVENTORY = """apiVersion: appmesh.k8s.aws/v1beta2
kind: GatewayRoute
metadata:
  name: inventory-route
  namespace: appmesh-demo
spec:
  httpRoute:
    match:
      prefix: /inventory/
    action:
      target:
        virtualService:
          virtualServiceRef:
            name: product-service
"""
nb.apply_text(t, INVENTORY)
t.wait_active("GatewayRoute", "inventory-route", NAMESPACE, timeout=TIMEOUT_S)
nb.expect(t, "/inventory", 404, timeout=TIMEOUT_S)

# %% [markdown]
# **Diagnose**: the route is active — nothing is wrong with it as configuration. The gateway's
# route table in the config dump shows the match Envoy really uses:

# %%
_, routes = nb.config_summary(t.config_dump("appmesh-gateway"))
ingress = [r for r in routes if r[0].startswith("rds_ingress")]
nb.table(ingress, ["route table", "route", "match", "cluster", "rewrite"])
assert any(r[2] == "prefix /inventory/" for r in ingress), ingress

# %% [markdown]
# **Fix**: match what clients send.

# %%
nb.apply_text(t, INVENTORY.replace("prefix: /inventory/", "prefix: /inventory"))
nb.expect(t, "/inventory", 200, service="product-service", seen_path="/", timeout=TIMEOUT_S)
nb.remove(t, "GatewayRoute", "inventory-route", NAMESPACE)

# %% [markdown]
# ## 4. A namespace outside the mesh
#
# A team creates a namespace and a virtual node in it, but forgets the label the Mesh selects.
# **Symptom**: the apply is refused. App Mesh's controller said "failed to find matching mesh
# for namespace ..., expecting 1 but found 0"; the kit's finding says the same and what to do.

# %%
OUTSIDE = """
apiVersion: v1
kind: Namespace
metadata:
  name: outside
---
apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualNode
metadata:
  name: lonely
  namespace: outside
spec:
  podSelector:
    matchLabels:
      app: lonely
  listeners:
    - portMapping: {port: 8080, protocol: http}
  serviceDiscovery:
    dns: {hostname: lonely.outside.svc.cluster.local}
"""
nb.forget(t, "VirtualNode", "lonely", "outside")
nb.forget(t, "Namespace", "outside")
answer = t.try_apply(OUTSIDE, is_text=True)
errors = [p for p in answer["problems"] if p["severity"] == "error"]
for p in errors:
    print(f"line {p['line']}: {p['path']}: {p['message']}\n    hint: {p['hint']}")
assert answer["rejected"] and any(p["code"] == "mesh-membership" for p in errors), answer
assert "namespaceSelector" in next(p["message"] for p in errors if p["code"] == "mesh-membership")
assert not t.get("Namespace", "outside"), "a rejected apply must create nothing"

# %% [markdown]
# **Fix**: label the namespace for the mesh.

# %%
nb.apply_text(t, OUTSIDE.replace("  name: outside\n---", "  name: outside\n  labels:\n    mesh: my-app-mesh\n---", 1))
c = t.wait_active("VirtualNode", "lonely", "outside", timeout=TIMEOUT_S)
print("VirtualNode lonely:", c["type"], c["status"])
nb.remove(t, "VirtualNode", "lonely", "outside")
nb.remove(t, "Namespace", "outside")

# %% [markdown]
# ## 5. The gateway's Envoy cannot open its listener
#
# Something else already holds the port the gateway's listener needs — a stray process, say.
# Here, this notebook plays it: the cell removes the gateway's pods, opens a listening socket on
# the port that never answers, and brings the gateway back. The Envoy starts and connects to the
# control plane, but cannot bind its listener and **rejects** that part of its configuration (a
# NACK). **Symptom**: the pod is `Running`, yet requests get no answer — they time out in the
# other program's queue.

# %%
import os
import socket
from lab.runtime.ports import holder_of

if TARGET == "local":
    gw_host, gw_port = nb.gateway_address(t)
    nb.remove(t, "Deployment", "appmesh-gateway", NAMESPACE)
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as servers do: closed connections do not block it

    def take_port():
        try:
            squatter.bind((gw_host, gw_port))
        except OSError as exc:
            raise AssertionError(f"port {gw_port} still busy: {exc}")
    t.eventually(take_port, TIMEOUT_S, what=f"port {gw_port} to be free")
    squatter.listen(8)   # accepts connections into its queue, and never reads them
    nb.apply(t, "manifests/walkthrough/09-gateway-deployment.yaml", wait=False)
    nb.wait_pods(t, NAMESPACE, ["appmesh-gateway"], TIMEOUT_S)

    def no_answer():
        try:
            h = nb.hit(t, "/products", timeout=1)[0]
        except nb.NotebookError as exc:
            return str(exc)
        raise AssertionError(f"the gateway still answers ({h.status})")
    print("pod Running, and:", t.eventually(no_answer, TIMEOUT_S, what="requests to go unanswered"))
else:
    print("This scenario is specific to the local lab: on a cluster, each pod has its own network namespace.")

# %% [markdown]
# **Diagnose**: `doctor` reports the rejected configuration with Envoy's own message, the proxy
# table shows the gateway has not acknowledged its latest version, and the virtual gateway has a
# `ConfigRejected` event. The port's holder can be looked up:

# %% tags=["volatile"]
if TARGET == "local":
    def nacked():
        rows = [r for r in nb.proxy_rows(t) if "/virtualGateway/appmesh-gateway_" in r[0]]
        assert rows and rows[0][2] == "no" and "cannot bind" in rows[0][3], rows
        return rows
    nb.table(t.eventually(nacked, TIMEOUT_S, what="the gateway's NACK"), ["proxy", "connected", "ACKed", "last NACK"])
    report = doctor()
    assert report.returncode == 1 and "cannot bind" in report.stdout and "Address already in use" in report.stdout
    events = [e for e in t.events("VirtualGateway", "appmesh-gateway", NAMESPACE) if e["reason"] == "ConfigRejected"]
    assert events and "cannot bind" in events[-1]["message"]
    nb.command(f"ss -ltnp 'sport = :{gw_port}'      # who listens on the port (on a node: the pod's network namespace)")
    holder = holder_of(gw_port)   # the same lookup, from /proc
    print("port", gw_port, "is held by", nb.tidy(holder))
    assert holder and str(os.getpid()) in holder, f"expected this notebook's kernel to hold port {gw_port}: {holder}"

# %% [markdown]
# **Fix**: free the port and restart the gateway's Envoy, which binds the listener on start.

# %%
if TARGET == "local":
    squatter.close()
    nb.command(f"kubectl -n {NAMESPACE} rollout restart deploy/appmesh-gateway")
    assert t.kill("appmesh-gateway", "envoy"), "could not restart the gateway's Envoy"
    nb.expect(t, "/products", 200, service="product-service", timeout=TIMEOUT_S)

    def acked():
        rows = [r for r in nb.proxy_rows(t) if "/virtualGateway/appmesh-gateway_" in r[0]]
        assert rows and rows[0][2] == "yes", rows
    t.eventually(acked, TIMEOUT_S, what="the gateway to ACK its configuration")

# %% [markdown]
# ## 6. A configuration Envoy rejects
#
# The validator checks what can be checked from the manifest: a certificate path outside
# `/etc/appmesh-lab/certs/` (a typo such as `cert/`, or a `..` step) is refused at apply. It cannot
# know which files exist inside the Envoy container. Here the gateway listener gets TLS with a
# private key path that has a typo (`tsl.key` instead of `tls.key`). The control plane accepts it
# and sends it; Envoy cannot load the key and **NACKs** the listener update. **Symptom**: nothing
# breaks — the gateway keeps serving its last good configuration, plain HTTP. The change simply
# never happens.

# %%
VG_FILE = "manifests/walkthrough/08-virtual-gateway.yaml"
vg = nb.manifest_doc(VG_FILE, "VirtualGateway", "appmesh-gateway")
vg["spec"]["listeners"][0]["tls"] = {"mode": "STRICT", "certificate": {"file": {
    "certificateChain": "/etc/appmesh-lab/certs/gateway/tls.crt",
    "privateKey": "/etc/appmesh-lab/certs/gateway/tsl.key"}}}     # typo: tsl.key instead of tls.key
nb.command("kubectl apply -f virtual-gateway-with-tls.yaml")
answer = t.try_apply(nb.to_yaml(vg), is_text=True) if hasattr(t, "try_apply") else {"rejected": False}
assert not answer["rejected"], "the validator cannot know which files exist where Envoy runs"
h = nb.expect(t, "/products", 200, service="product-service", timeout=TIMEOUT_S)
print("still plain HTTP:", h.status, h.service)

# %% [markdown]
# **Diagnose**: on the local lab, the control plane noticed the NACK, found the resource Envoy
# refused (here the virtual gateway itself; for a bad route, only that route), and left only that
# change out: the gateway's Envoy is back on the last configuration it accepted and has ACKed it.
# The virtual gateway's condition is `False`, reason `ConfigRejected`, with Envoy's message, and
# `doctor` prints it. (The in-cluster controller does not do this yet: there the condition stays
# `True` and the proxy's ACK/NACK status tells.)

# %% tags=["volatile"]
if TARGET == "local":
    def rejected():
        c = nb.condition(t.get("VirtualGateway", "appmesh-gateway", NAMESPACE)[0])
        assert c["status"] == "False" and c["reason"] == "ConfigRejected", c
        return c
    c = t.eventually(rejected, TIMEOUT_S, what="the gateway's ConfigRejected condition")
    print(c["reason"] + ":", c["message"])
    assert "tsl.key" in c["message"], c

    def back_on_last_good():
        rows = [r for r in nb.proxy_rows(t) if "/virtualGateway/appmesh-gateway_" in r[0]]
        assert rows and rows[0][2] == "yes", rows
        return rows
    nb.table(t.eventually(back_on_last_good, TIMEOUT_S, what="the gateway to ACK its last good configuration"),
             ["proxy", "connected", "ACKed", "last NACK"])
    report = doctor()
    assert report.returncode == 1 and "ConfigRejected" in report.stdout and "tsl.key" in report.stdout

# %% [markdown]
# **Fix**: correct the path. Envoy accepts the listener, and the gateway now speaks TLS only; a
# client trusting the lab's CA gets its answer. Then put the walkthrough's plain-HTTP gateway back.

# %%
tls = vg["spec"]["listeners"][0]["tls"]["certificate"]["file"]
tls["privateKey"] = tls["privateKey"].replace("/tsl.key", "/tls.key")
nb.apply_text(t, nb.to_yaml(vg))
if TARGET == "local":
    gw_host, gw_port = nb.gateway_address(t)
    h = t.eventually(lambda: nb.https_get("localhost", gw_port, "/products", nb.lab_ca(t)), TIMEOUT_S,
                     what="an HTTPS answer")
    print("over TLS:", h.status, h.service)
    assert h.status == 200 and h.service == "product-service"
    assert all(r[2] == "yes" for r in nb.proxy_rows(t)), nb.proxy_rows(t)
nb.apply(t, VG_FILE)
nb.expect(t, "/products", 200, service="product-service", timeout=TIMEOUT_S)

# %% [markdown]
# ## All clear
#
# Every scenario is repaired: all resources active, every proxy on its latest configuration,
# and `doctor` content.

# %%
rows = nb.resource_rows(t, NAMESPACE)
assert all(r[2] == "True" for r in rows), rows
if TARGET == "local":
    def all_acked():
        behind = [r for r in nb.proxy_rows(t) if r[2] != "yes"]
        assert not behind, behind
    t.eventually(all_acked, TIMEOUT_S, what="every proxy to ACK")
    assert doctor().returncode == 0

# %% [markdown]
# Next, **12-leaving-app-mesh**.
