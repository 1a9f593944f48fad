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
# terminates TLS; its `mutual/` variant also asks clients for a certificate) and `mtls-mesh` (the
# gateway and a service's sidecar authenticate each other with certificates). Every check that
# something is allowed comes with one that something else is refused, and the last part breaks
# mutual TLS on purpose to show what Envoy says when it fails.
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
    nb.cluster_step(t, f"kubectl -n ex-tls-gateway create secret generic mesh-ca --from-file=ca.crt={certs}/ca/ca.crt")

# mtls-mesh first: the lab makes each certificate once, with the names the manifests applied so far ask
# for, and the gateway certificate both examples share must carry the mtls-mesh gateway's name.
nb.apply(t, MTLS)
nb.apply(t, TLS)
CA = nb.tls_ca(t, "ex-mtls-mesh", "mesh-ca")   # local: the lab's CA; a cluster: the CA in the Secret the pods mount
assert CA.is_file(), CA
CA_DIR = CA.parent if TARGET == "local" else certs / "ca"   # the CA's certificate and key, to sign client certificates

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
# ## Client certificates at the gateway: mutual TLS at the edge
#
# So far the gateway proves who it is; anyone may connect. A partner API often wants the
# reverse too: only clients holding a certificate from a CA you trust. That is a `validation`
# block on the gateway listener's `tls` (App Mesh API: `VirtualGatewayListenerTlsValidationContext`:
# a `trust`, `file` or `sds` — there is no ACM option on a listener — and optionally the
# `subjectAlternativeNames` accepted). The example's `mutual/` folder is the same gateway with
# that block, trusting the demo CA; its Deployment also mounts the CA (Secret `mesh-ca`).
#
# Three clients try it, each trusting the demo CA for the gateway's certificate: one presents no
# certificate, one a certificate another CA signed (`impostor`), one a certificate the demo CA
# signed (`partner`). The certificates are made the way `openssl x509 -req -CA ca.crt -CAkey
# ca.key` would (`make_leaf`).

# %%
import tempfile
from lab.runtime.certs import load_ca, make_ca, make_leaf

nb.show_text(nb.to_yaml(nb.manifest_doc(TLS + "mutual/virtual-gateway-mutual-tls.yaml", "VirtualGateway", "gateway")),
             title=TLS + "mutual/virtual-gateway-mutual-tls.yaml (the VirtualGateway)")
nb.apply(t, TLS + "mutual/")
clients = Path(tempfile.mkdtemp(prefix="appmesh-clients-"))
make_leaf(clients / "partner", load_ca(CA_DIR), "partner", ["partner.example.com"])
make_leaf(clients / "impostor", make_ca(clients / "other-ca", "some other CA"), "impostor", ["partner.example.com"])
host, port = nb.gateway_address(t, "gateway_ex-tls-gateway")


def edge(who):
    """(answer, detail) for a client of the TLS gateway presenting `who`'s certificate (None: none)."""
    return nb.https_attempt(host, port, "/account?id=7", CA, cert_dir=clients / who if who else None)


def refused_without_certificate():   # the gateway restarts with the new Deployment: wait for the new listener
    answer, detail = edge(None)
    assert answer == "refused", f"a client without a certificate got {answer}"
t.eventually(refused_without_certificate, TIMEOUT_S, what="the gateway to ask for client certificates")

rows = []
for label, who in (("no certificate", None), ("impostor: another CA signed it", "impostor"),
                   ("partner: the demo CA signed it", "partner")):
    nb.command('curl --cacert ca.crt --connect-to "localhost:443:$GW_HOST:$GW_PORT" '
               + (f"--cert {who}.crt --key {who}.key " if who else "") + '"https://localhost/account?id=7"')
    rows.append([label, edge(who)[0]])
nb.table(rows, ["client certificate", "answer"])
assert [r[1] for r in rows] == ["refused", "refused", "200 from secure-web"], rows

with nb.quiet(t):
    stats = t.stats("gateway_ex-tls-gateway", filter="ssl")
no_cert = nb.stat(stats, r"^listener\..*\.ssl\.fail_verify_no_cert$")
bad_ca = nb.stat(stats, r"^listener\..*\.ssl\.fail_verify_error$")
print("the gateway's listener counted both refusals: ssl.fail_verify_no_cert and ssl.fail_verify_error moved")
assert no_cert >= 1 and bad_ca >= 1, (no_cert, bad_ca)
down = [c for c in nb.tls_contexts(t.config_dump("gateway_ex-tls-gateway")) if c["side"] == "downstream"]
assert down and all(c["client_cert_required"] and c["trusted_ca"].endswith("ca/ca.crt") for c in down), down

# %% [markdown]
# ### Exercise: only the partner
#
# Any certificate the demo CA signed gets in — including those it signed for your own services
# (`gateway`, `accounts`). Restrict the listener to clients whose certificate names
# `partner.example.com`. Edit `ANSWER` (the `mutual/` gateway as it is now), then run the check
# cell: it applies your gateway, then tries the partner's certificate and the `accounts` service's
# (signed by the same CA, for another name). (The solution is in the hidden cell after it.)

# %%
ANSWER = nb.to_yaml(nb.manifest_doc(TLS + "mutual/virtual-gateway-mutual-tls.yaml", "VirtualGateway", "gateway"))
make_leaf(clients / "accounts", load_ca(CA_DIR), "accounts", ["accounts.ex-mtls-mesh.svc.cluster.local"])


def check_partner_only(text):
    """True when `text` applies, the partner is served and the accounts certificate is refused."""
    def partner_only():
        partner, other = edge("partner")[0], edge("accounts")[0]
        assert partner == "200 from secure-web", f"the partner's certificate got {partner}"
        assert other == "refused", f"a certificate for accounts.ex-mtls-mesh.svc.cluster.local got {other}: it should be refused"
    return nb.try_manifest(t, text, TIMEOUT_S) and nb.verdict(
        partner_only, ok="only the partner: partner.example.com is served, accounts.ex-mtls-mesh.svc.cluster.local is refused",
        hint="a listener's validation can list the client names it accepts, as a client policy's lists the server's")


check_partner_only(ANSWER)

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution (hidden in the notebook: expand the cell to read it): list the accepted name under
# validation.subjectAlternativeNames.match.exact. The gateway's Envoy then also checks the
# client certificate's DNS (or URI) names, and counts a mismatch as ssl.fail_verify_san.
ANSWER = """apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualGateway
metadata:
  name: gateway
  namespace: ex-tls-gateway
spec:
  namespaceSelector:
    matchLabels:
      gateway: ex-tls-gateway
  podSelector:
    matchLabels:
      app: gateway
  listeners:
    - portMapping:
        port: 8443
        protocol: http
      tls:
        mode: STRICT
        certificate:
          file:
            certificateChain: /etc/appmesh-lab/certs/gateway/tls.crt
            privateKey: /etc/appmesh-lab/certs/gateway/tls.key
        validation:
          trust:
            file:
              certificateChain: /etc/appmesh-lab/certs/ca/ca.crt
          subjectAlternativeNames:
            match:
              exact:
                - partner.example.com
  logging:
    accessLog:
      file:
        path: /dev/stdout
"""
assert check_partner_only(ANSWER)

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
# handshake count above proves little. The `accounts` sidecar must refuse a client that presents
# **no certificate**, and one whose certificate carries **a name its `validation` does not
# accept**. The gateway is such a client the moment its configuration says so, and it is a client
# every target lets us watch, so each case below changes one thing, sends one request through the
# gateway, and reads the sidecar's counters (`ssl.fail_verify_no_cert`, `ssl.fail_verify_san` on
# its listener):
#
# | case | what changes | the sidecar |
# |---|---|---|
# | no client certificate | the gateway's client policy without its `certificate` | refuses: `fail_verify_no_cert` +1 |
# | a name it does not accept | the `accounts` listener accepts only `edge.ex-mtls-mesh.svc.cluster.local` | refuses: `fail_verify_san` +1 |
#
# The client sees a 503 from the gateway each time; then both go back and the request is served.

# %%
GW_FILE, VN_FILE = MTLS + "20-gateway.yaml", MTLS + "10-virtual-services.yaml"
GOOD = nb.to_yaml(nb.manifest_doc(GW_FILE, "VirtualGateway", "gateway"))
GOOD_VN = nb.to_yaml(nb.manifest_doc(VN_FILE, "VirtualNode", "accounts"))
NO_CERT = GOOD[:GOOD.index("        certificate:\n")] + GOOD[GOOD.index("        validation:\n"):]
OTHER_NAME = GOOD_VN.replace("- gateway.ex-mtls-mesh.svc.cluster.local", "- edge.ex-mtls-mesh.svc.cluster.local")
assert "certificate:" not in NO_CERT.split("clientPolicy:")[1] and OTHER_NAME != GOOD_VN


def sidecar_refusals():
    with nb.quiet(t):
        stats = t.stats("accounts", filter="ssl")
    return {k: nb.stat(stats, rf"^listener\..*\.ssl\.{k}$") for k in ("fail_verify_no_cert", "fail_verify_san")}


rows = []
for case, text, undo in (("no client certificate", NO_CERT, GW_FILE), ("a name it does not accept", OTHER_NAME, VN_FILE)):
    before = sidecar_refusals()
    nb.apply_text(t, text)
    h = nb.hit(t, f"/balance?refused={case.split()[0]}", gateway="gateway_ex-mtls-mesh")[0]
    after = sidecar_refusals()
    rows.append([case, h.status, ", ".join(k for k in after if after[k] > before[k]) or "-"])
    nb.apply(t, undo)
nb.table(rows, ["case", "status through the gateway", "the sidecar's refusal counters that moved"])
assert [r[1] for r in rows] == [503, 503], rows
assert [r[2] for r in rows] == ["fail_verify_no_cert", "fail_verify_san"], rows
h = nb.expect(t, "/balance", 200, gateway="gateway_ex-mtls-mesh", service="accounts", timeout=TIMEOUT_S)
print("both back:", h.status, h.service)

# %% [markdown]
# ## When mutual TLS fails: what Envoy says
#
# Two mistakes account for most mTLS outages: the client checks for a **name** the server's
# certificate does not carry (a SAN mismatch), or trusts a **CA** that did not sign it. Either
# way the TLS handshake from the gateway to the sidecar fails, and the client, who spoke plain
# HTTP to the gateway, gets a **503** from the gateway itself. Each case below breaks the
# gateway's client policy, predicts, observes — the status and body Envoy answers with, the
# response flag in the gateway's access log and the TLS error behind it (the example's gateway
# logs Envoy's default line plus `%UPSTREAM_TRANSPORT_FAILURE_REASON%`), the gateway's upstream
# TLS counters for the accounts cluster — and then fixes it.
#
# | case | the client policy's mistake | expect |
# |---|---|---|
# | SAN mismatch | `subjectAlternativeNames` lists `account.ex-mtls-mesh.svc.cluster.local` (one letter short) | 503, flag `UF`, `ssl.fail_verify_san` +1 |
# | CA mismatch | `trust` names the gateway's own certificate, which signed nothing | 503, flag `UF`, `ssl.fail_verify_error` +1 |
#
# (`UF`: upstream connection failure. App Mesh's default retry policy retries a failed
# connection, so the same line may carry `URX` too.)

# %%
import re

BROKEN = {
    "SAN mismatch": GOOD.replace("- accounts.ex-mtls-mesh.svc.cluster.local", "- account.ex-mtls-mesh.svc.cluster.local"),
    "CA mismatch": GOOD.replace("certificateChain: /etc/appmesh-lab/certs/ca/ca.crt",
                                "certificateChain: /etc/appmesh-lab/certs/gateway/tls.crt"),
}
assert all(text != GOOD for text in BROKEN.values())


def upstream_ssl():
    """The gateway's TLS counters for its connections to accounts (the upstream side)."""
    with nb.quiet(t):
        stats = t.stats("gateway_ex-mtls-mesh", filter="ssl")
    return {k.rsplit(".ssl.", 1)[1]: v for k, v in stats.items()
            if k.startswith("cluster.") and "accounts" in k and ".ssl.fail_verify" in k}


rows = []
for case, text in BROKEN.items():
    before = upstream_ssl()
    nb.apply_text(t, text)
    path = f"/balance?case={case.split()[0].lower()}"
    h = nb.show_request(t, path, gateway="gateway_ex-mtls-mesh", log=None)
    print(h.body.decode(errors="replace"))
    assert h.status == 503, (case, h.status, h.body[:200])

    def failed_and_logged():   # two examples each have a Deployment `gateway`: read this one's pod
        pod = next(p["name"] for p in t.pods("ex-mtls-mesh") if p["owner"] == "gateway")
        lines = [l for l in nb.access_log(t, pod, path) if "UF" in l["flags"]]
        assert lines, f"no UF line for {path} in the gateway's access log yet"
        return lines[-1]
    with nb.quiet(t):
        line = t.eventually(failed_and_logged, TIMEOUT_S, what="the gateway's access-log line")
    print("the gateway's access log:", line["line"])
    reason = re.findall(r'"([^"]*)"', line["line"])[-1]   # the format's last field
    after = upstream_ssl()
    moved = sorted(k for k in after if after[k] > before.get(k, 0))
    rows.append([case, h.status, line["flags"], reason, ", ".join(moved) or "-"])

nb.table(rows, ["case", "status", "gateway's response flags", "upstream transport failure reason (access log)",
                "upstream counters that moved"])
assert [r[4] for r in rows] == ["fail_verify_san", "fail_verify_error"], rows
assert all("UF" in r[2].split(",") and "CERTIFICATE_VERIFY_FAILED" in r[3] for r in rows), rows

# %% [markdown]
# The fix is the example's own gateway: the server's real name, and the CA that signed it.
# `apply` returns once the gateway has the new configuration; the next request is served.

# %%
nb.apply(t, GW_FILE)
h = nb.expect(t, "/balance?case=fixed", 200, gateway="gateway_ex-mtls-mesh", service="accounts", timeout=TIMEOUT_S)
print("fixed:", h.status, h.service)

# %% [markdown]
# Clean up the two examples:

# %%
nb.delete(t, TLS)
nb.delete(t, MTLS)

# %% [markdown]
# Next, **10-observability**: what Envoy tells you about the traffic it carries.
