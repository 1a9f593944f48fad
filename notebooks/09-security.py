# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 09 · Security: TLS at the gateway, mutual TLS into the mesh
#
# Two places to encrypt: between clients and the gateway, and between the gateway and the
# services behind it. This lesson uses two examples: `tls-gateway` (the gateway listener
# terminates TLS) and `mtls-mesh` (the gateway and a service's sidecar authenticate each other
# with certificates).
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
# ## Certificates
#
# The manifests name certificate files under `/etc/appmesh-lab/certs/`, as a cluster would mount
# them from Secrets: the demo CA in `ca/ca.crt`, and a certificate and key per name
# (`gateway/tls.crt`, `gateway/tls.key`, ...). On `local` the lab creates them the first time a
# manifest names them, under `<lab home>/certs/`, with the DNS names the manifests list in their
# `subjectAlternativeNames`. On a cluster you create them and store them in Secrets (the cell
# below does that when `TARGET` is not `local`). Either way a client trusts the CA the pods were
# given: on `local` the lab's, on a cluster the one in the Secret `mesh-ca`, read back from the
# cluster (`kubectl get secret mesh-ca -o jsonpath=...`).

# %%
from pathlib import Path

TLS, MTLS = "manifests/examples/tls-gateway/", "manifests/examples/mtls-mesh/"

if TARGET != "local":
    # On a cluster you make the certificates and put them into Secrets the pods mount.
    import tempfile
    from lab.runtime.certs import make_ca, make_leaf
    certs = Path(tempfile.mkdtemp(prefix="appmesh-certs-"))
    ca = make_ca(certs / "ca")
    make_leaf(certs / "gateway", ca, "gateway", ["gateway.ex-mtls-mesh.svc.cluster.local",
                                                 "gateway.ex-tls-gateway.svc.cluster.local", "localhost"])
    make_leaf(certs / "accounts", ca, "accounts", ["accounts.ex-mtls-mesh.svc.cluster.local"])
    for example in (MTLS, TLS):
        nb.apply(t, example + "00-namespace-mesh.yaml")
    nb.cluster_step(t, f"kubectl -n ex-tls-gateway create secret tls gateway-tls --cert={certs}/gateway/tls.crt --key={certs}/gateway/tls.key")
    nb.cluster_step(t, f"kubectl -n ex-mtls-mesh create secret generic mesh-ca --from-file=ca.crt={certs}/ca/ca.crt")
    nb.cluster_step(t, f"kubectl -n ex-mtls-mesh create secret tls gateway-tls --cert={certs}/gateway/tls.crt --key={certs}/gateway/tls.key")
    nb.cluster_step(t, f"kubectl -n ex-mtls-mesh create secret tls accounts-tls --cert={certs}/accounts/tls.crt --key={certs}/accounts/tls.key")

# mtls-mesh first: the lab makes each certificate once, with the names the manifests applied so far ask
# for, and the gateway certificate both examples share must carry the mtls-mesh gateway's name.
nb.apply(t, MTLS)
nb.apply(t, TLS)
CA = nb.tls_ca(t, "ex-mtls-mesh", "mesh-ca")   # local: the lab's CA; a cluster: the CA in the Secret the pods mount
assert CA.is_file(), CA

# %% [markdown]
# ## TLS at the gateway
#
# The gateway listener has `tls.mode: STRICT` and a certificate from files: clients must speak
# TLS. (`PERMISSIVE` would accept both TLS and plain HTTP.) Inside the mesh, the request goes on
# as plain HTTP.
#
# Where the client connects depends on the target — 127.0.0.1 and the lab's port on `local`,
# 127.0.0.1 and the port kind publishes for the Service's NodePort on `kind`, the load balancer's
# DNS name on `eks` — and the target says which. What the client verifies does not: the demo
# certificate is made for the name `localhost` (and the gateway's service names), so the check
# connects to the gateway's address and verifies that name (`curl --connect-to` does the same).

# %%
nb.show_text(nb.to_yaml(nb.manifest_doc(TLS + "20-gateway.yaml", "VirtualGateway", "gateway")),
             title=TLS + "20-gateway.yaml (the VirtualGateway)")
host, port = nb.gateway_address(t, "gateway_ex-tls-gateway")   # local, kind: 127.0.0.1 and a port; eks: the NLB
nb.command('curl --cacert ca.crt --connect-to "localhost:443:$GW_HOST:$GW_PORT" "https://localhost/account?id=7"')

def tls_ok():
    h = nb.https_get(host, port, "/account?id=7", CA)
    assert h.status == 200 and h.service == "secure-web", h
    return h
h = t.eventually(tls_ok, TIMEOUT_S, what="an HTTPS answer from the TLS gateway")
print("trusting the demo CA:", h.status, h.service, h.path)
assert h.path == "/account?id=7"

# %% [markdown]
# A client that trusts a different CA refuses the gateway's certificate — which is what protects
# clients from an impostor. The same client talking plain HTTP to the TLS port gets no HTTP
# answer at all.

# %%
import ssl
import tempfile
from lab.runtime.certs import make_ca

with tempfile.TemporaryDirectory() as other:
    make_ca(Path(other), "some other CA")
    try:
        nb.https_get(host, port, "/", Path(other) / "ca.crt")
        raise AssertionError("a client trusting another CA accepted the gateway's certificate")
    except ssl.SSLCertVerificationError as exc:
        print("trusting another CA: refused,", exc.verify_message)

try:
    h = nb.hit(t, "/", gateway="gateway_ex-tls-gateway", timeout=5)[0]
    raise AssertionError(f"plain HTTP to the STRICT TLS listener got an answer: {h.status}")
except nb.NotebookError as exc:
    print("plain HTTP to the TLS port: no HTTP answer")

# %% [markdown]
# The gateway Envoy's configuration shows the TLS context on its listener: the certificate
# files, and no client certificate required.

# %%
contexts = nb.tls_contexts(t.config_dump("gateway_ex-tls-gateway"))
nb.table([[c["side"], c["where"], c["certificate"], c["client_cert_required"]] for c in contexts],
         ["side", "on", "certificate", "client certificate required"])
down = [c for c in contexts if c["side"] == "downstream"]
assert down and down[0]["certificate"].endswith("gateway/tls.crt") and not down[0]["client_cert_required"], contexts

# %% [markdown]
# ## Mutual TLS from the gateway into the mesh
#
# In the `mtls-mesh` example, clients talk plain HTTP to the gateway, and the gateway talks
# **mutual TLS** to the `accounts` sidecar:
#
# * the `accounts` virtual node's listener has `tls.mode: STRICT`, a server certificate, and a
#   `validation` block: a client must present a certificate signed by the demo CA with the name
#   `gateway.ex-mtls-mesh.svc.cluster.local`;
# * the virtual gateway's `backendDefaults.clientPolicy.tls` makes the gateway start TLS towards
#   its backends, present its own certificate, and accept only a server certificate signed by the
#   demo CA with the name `accounts.ex-mtls-mesh.svc.cluster.local`.
#
# (A virtual gateway can only have this one default client policy; per-backend policies exist on
# virtual nodes only.)

# %%
h = nb.expect(t, "/balance", 200, gateway="gateway_ex-mtls-mesh", service="accounts", seen_path="/balance",
              timeout=TIMEOUT_S)
with nb.quiet(t):
    stats = t.stats("accounts", filter="ssl")
handshakes = nb.stat(stats, r"^listener\..*\.ssl\.handshake$")
failures = nb.stat(stats, r"^listener\..*\.ssl\.fail_verify")
print(f"accounts sidecar: {handshakes} TLS handshake(s), {failures} failed verification(s)")
assert handshakes >= 1 and failures == 0

# %%
rows = []
for proxy in ("gateway_ex-mtls-mesh", "accounts"):
    for c in nb.tls_contexts(t.config_dump(proxy)):
        rows.append([proxy, c["side"], Path(c["certificate"]).parent.name if c["certificate"] != "-" else "-",
                     Path(c["trusted_ca"]).name if c["trusted_ca"] != "-" else "-", c["san"], c["client_cert_required"]])
nb.table(rows, ["proxy", "side", "presents", "trusts", "accepts the name", "client certificate required"])
assert ["gateway_ex-mtls-mesh", "upstream", "gateway", "ca.crt", "accounts.ex-mtls-mesh.svc.cluster.local", False] in rows
assert any(r[0] == "accounts" and r[1] == "downstream" and r[5] is True for r in rows), rows

# %% [markdown]
# Both sides present a certificate and check the other's. Now the refusals, without which the
# handshake count above proves little: a client that connects to the `accounts` sidecar itself
# (its TLS listener, as another pod in the cluster could) is refused **without a certificate**,
# and refused **with a certificate the demo CA signed for another name** (`accounts`' own: the
# listener's `validation` accepts only the gateway's name); the same client with the gateway's
# certificate is served. The sidecar counts each refusal (`ssl.fail_verify_no_cert`,
# `ssl.fail_verify_san`). On a cluster the pod's port is not reachable from here: the cell
# shows the commands.

# %%
import http.client

ACCOUNTS = "accounts.ex-mtls-mesh.svc.cluster.local"
if TARGET == "local":
    nb.apply(t, MTLS)   # unchanged: nothing to do
    sidecar = nb.hop_addresses(t, "ex-mtls-mesh", "accounts")["sidecar"]
    certs = CA.parent.parent   # $LAB_HOME/certs: ca/, gateway/, accounts/
    attempts = [("no client certificate", None), ("accounts' certificate (wrong name)", "accounts"),
                ("the gateway's certificate", "gateway")]
    rows = []
    for label, who in attempts:
        nb.command(f"curl --cacert {CA} --connect-to {ACCOUNTS}:443:{sidecar[0]}:{sidecar[1]} "
                   + (f"--cert {certs / who / 'tls.crt'} --key {certs / who / 'tls.key'} " if who else "")
                   + f"https://{ACCOUNTS}/balance")
        try:
            h = nb.https_get(*sidecar, "/balance", CA, server_hostname=ACCOUNTS,
                             certfile=certs / who / "tls.crt" if who else None,
                             keyfile=certs / who / "tls.key" if who else None)
            rows.append([label, f"{h.status} from {h.service}"])
        except (ssl.SSLError, ConnectionError, http.client.HTTPException) as exc:
            rows.append([label, "refused (the TLS handshake or the first read fails)"])
    nb.table(rows, ["client presents", "answer"])
    assert rows[0][1].startswith("refused") and rows[1][1].startswith("refused"), rows
    assert rows[2][1] == "200 from accounts", rows
    with nb.quiet(t):
        stats = t.stats("accounts", filter="ssl")
    no_cert, bad_san = nb.stat(stats, r"^listener\..*\.ssl\.fail_verify_no_cert$"), nb.stat(stats, r"^listener\..*\.ssl\.fail_verify_san$")
    print(f"accounts sidecar: ssl.fail_verify_no_cert {no_cert}, ssl.fail_verify_san {bad_san}")
    assert no_cert >= 1 and bad_san >= 1
else:
    nb.command(f"kubectl -n ex-mtls-mesh run tls-probe --rm -i --restart=Never --image=curlimages/curl -- "
               f"curl -sk https://{ACCOUNTS}:8080/balance      # refused: no client certificate")

# %% [markdown]
# Clean up the two examples:

# %%
nb.delete(t, TLS)
nb.delete(t, MTLS)

# %% [markdown]
# Next, **10-observability**: what Envoy tells you about the traffic it carries.
