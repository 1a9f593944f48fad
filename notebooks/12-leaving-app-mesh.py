# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 12 · Leaving App Mesh
#
# App Mesh shut down on 2026-09-30. Its users move to implementations of the **Kubernetes
# Gateway API**: Amazon VPC Lattice (through the AWS Gateway API Controller), Istio, Envoy
# Gateway. This lesson exports the walkthrough to Gateway API with `appmesh-lab migrate`, reads
# what the export says it could not carry over, proves on real Envoy that the export routes every
# request the same way (`migrate --verify`), meets an App Mesh priority that Gateway API cannot
# keep — and restructures the routes so it can — and lists what stays behind.
#
# The next cell holds the parameters (papermill and `appmesh-lab e2e` override them). The cell after it brings the target to the state this lesson starts from — a running cluster or lab (notebook 01); the export itself only reads manifests — so you can open this notebook on its own. It is safe to run it again.

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

t = nb.setup(TARGET, stage="01", namespace=NAMESPACE, cluster_name=CLUSTER_NAME, region=REGION,
             lab_home=LAB_HOME, timeout_s=TIMEOUT_S)

# %% [markdown]
# ## The mapping
#
# | App Mesh | Gateway API | VPC Lattice (AWS Gateway API Controller) | Istio | Envoy Gateway |
# |---|---|---|---|---|
# | VirtualGateway + its Service | Gateway (a listener per port) | Gateway → a service network | Gateway (an Envoy Deployment per Gateway) | Gateway (an Envoy Deployment per Gateway) |
# | GatewayRoute `httpRoute` / `grpcRoute` | HTTPRoute / GRPCRoute on the Gateway | HTTPRoute / GRPCRoute → a Lattice service and its rules | same | same |
# | prefix / exact / regex path | PathPrefix (whole segments) / Exact / RegularExpression | prefix, exact; no regex; paths case-insensitive | all three (RE2) | all three (RE2) |
# | header exact / prefix / suffix / regex / range, `invert` | Exact, RegularExpression; no invert | exact only, at most 5 | Exact, RegularExpression | Exact, RegularExpression |
# | query parameters, method, hostname | `queryParams`, `method`, `hostnames` | no query matches | all | all |
# | rewrites (prefix, path, hostname) and their defaults | URLRewrite filter | not documented | URLRewrite | URLRewrite |
# | VirtualService → VirtualRouter → weighted VirtualNodes | GAMMA route: `parentRefs` a Service, weighted `backendRefs` | HTTPRoute on a Lattice service | GAMMA HTTPRoute | — (not a mesh) |
# | timeouts | `timeouts.request` | — | `timeouts` | `timeouts` |
# | retries | experimental `retry` only | — | VirtualService retries | BackendTrafficPolicy `retry` |
# | outlier detection, connection pools, health checks | — | target-group health checks | DestinationRule | BackendTrafficPolicy |
# | mTLS inside the mesh | — | IAM auth policies | PeerAuthentication | BackendTLSPolicy, ClientTrafficPolicy |
#
# The export writes standard-channel Gateway API v1.6.1; `--profile` (`standard`, `vpc-lattice`,
# `istio`, `envoy-gateway`) decides which parts an implementation lacks, and names its nearest feature
# in the findings.

# %% [markdown]
# ## Export the walkthrough
#
# `appmesh-lab migrate PATH -o DIR` writes one file per kind; each object is preceded by a comment
# naming the App Mesh resource, file and line it came from. Findings go to stderr.

# %%
import json
import subprocess
import sys
import tempfile
from pathlib import Path

def migrate(*args):
    return subprocess.run([sys.executable, "-m", "lab.cli", "migrate", *map(str, args)], cwd=nb.ROOT,
                          capture_output=True, text=True, timeout=60)

out = Path(tempfile.mkdtemp(prefix="gateway-api-"))
nb.command("appmesh-lab migrate manifests/walkthrough --to gateway-api -o gateway-api/")
r = migrate("manifests/walkthrough", "--to", "gateway-api", "-o", out)
print(r.stderr.replace(str(out), "gateway-api"))
assert r.returncode == 0 and sorted(p.name for p in out.iterdir()) == ["gateways.yaml", "httproutes.yaml"]
nb.show_text((out / "gateways.yaml").read_text(), title="gateway-api/gateways.yaml", lang="yaml")
nb.show_text((out / "httproutes.yaml").read_text(), title="gateway-api/httproutes.yaml", lang="yaml")

# %% [markdown]
# What to notice:
#
# * The **Gateway listens on 80**, the port of the Service in front of the gateway pods — not on
#   8088, the Envoy port App Mesh names. The listener is named `http-8088` so that a route's
#   `match.port: 8088` becomes `sectionName: http-8088`.
# * App Mesh's **defaults are written out**: a prefix match sent `/products/1` to the app as
#   `/1` and set the Host to the virtual service's name. Gateway API does neither unless told, so
#   each route carries a `URLRewrite` with `ReplacePrefixMatch: /` and the `hostname`.
# * The finding on each prefix: App Mesh matched a **string** prefix (`/productsXYZ` too),
#   Gateway API's `PathPrefix` matches whole path segments (`/products`, `/products/...`). If a
#   client relies on the difference, the hint says what to add.
#
# The same export as data, for scripts and CI: `-o json` prints `{objects, findings, commands}`.

# %%
report = json.loads(migrate("manifests/walkthrough", "-o", "json").stdout)
nb.table([[o["kind"], o["name"], o["sources"][0]] for o in report["objects"]], ["kind", "name", "from"])
assert {f["code"] for f in report["findings"]} == {"semantics", "stays-behind"}, report["findings"]

# %% [markdown]
# ## Prove it: `migrate --verify`
#
# The lab translates Gateway API into the same Envoy configuration language as App Mesh, so it
# can run both side by side: one Envoy for the VirtualGateway, one for the exported Gateway, in
# front of the same sample apps. `--verify` generates requests from the matches — ones each route
# must take, and near misses around every condition (a path one character longer, without its
# trailing slash, in upper case; other header values, other methods, other hosts) — sends each to
# both, and compares the status, the service that answered, and the path and Host it received.
# A difference the export announced as a finding is marked as such and does not fail the run
# (`--strict` makes it fail); any other difference does, and the exit status is 1.

# %%
nb.command("appmesh-lab migrate --verify manifests/walkthrough")
r = migrate("--verify", "manifests/walkthrough")
print(r.stdout)
assert r.returncode == 0 and "GET /productsXYZ" in r.stdout and "EQUIVALENT" in r.stdout

# %% [markdown]
# The two differences are the string prefixes the first finding described: App Mesh sends
# `/productsXYZ` to product-service (as `/XYZ`), Gateway API answers 404. If no client sends such
# paths, the export is equivalent; if one does, add the RegularExpression match the hint suggests.
#
# ## A priority Gateway API cannot keep
#
# App Mesh tries routes in `priority` order. Gateway API has **no priority**: among the rules
# that match a request it prefers the most specific hostname, then an Exact path, then the
# longest PathPrefix, then a method, then the most header matches, then the most query
# parameters, then the oldest route. Two routes, written for App Mesh:
#
# * `gold` (priority 10): any path with `x-tier: gold` → product-service;
# * `api` (priority 20): `/api` → review-service.
#
# In App Mesh a gold customer calling `/api/orders` reaches product-service. In Gateway API
# `/api` is the longer path match, so `api` wins. The export finds the pair, names both routes and
# a request both match.

# %%
from lab.migrate import export
from lab.migratecli import load

def route(name, priority, match, rewrite="", target="product-service"):
    rw = f"\n      rewrite: {rewrite}" if rewrite else ""
    return f"""---
apiVersion: appmesh.k8s.aws/v1beta2
kind: GatewayRoute
metadata: {{name: {name}, namespace: {NAMESPACE}}}
spec:
  priority: {priority}
  httpRoute:
    match: {match}
    action:
      target: {{virtualService: {{virtualServiceRef: {{name: {target}}}}}}}{rw}
"""

GOLD = route("gold", 10, "{prefix: /, headers: [{name: x-tier, match: {exact: gold}}]}")
API = route("api", 20, "{prefix: /api}", target="review-service")

def with_routes(*routes):
    """The walkthrough with these gateway routes in place of its own, in a scratch folder."""
    folder = Path(tempfile.mkdtemp(prefix="priority-"))
    for f in nb.walkthrough_files():
        if "gateway-route" not in Path(f).name:
            (folder / Path(f).name).write_text((nb.ROOT / f).read_text())
    (folder / "routes.yaml").write_text("".join(routes))
    return folder

def precedence_findings(folder):
    resources, problems = load([folder])
    assert resources is not None, [str(p) for p in problems]
    return [f for f in export(resources).findings if f.code == "precedence"]

before = with_routes(GOLD, API)
found = precedence_findings(before)
for f in found:
    print(f.message, "\n  hint:", f.hint)
assert len(found) == 1 and "x-tier: gold" in found[0].message and "/api/" in found[0].message

# %% [markdown]
# The verifier shows the request: the same gold customer, two different services (`--strict`,
# because the export announced this difference).

# %%
r = migrate("--verify", before, "--strict")
print(r.stdout)
assert r.returncode == 1 and "GET /api/x Host: example.test, x-tier: gold" in r.stdout

# %% [markdown]
# **The restructuring.** Give the gold customers' `/api` requests a route of their own, as
# specific as `api` plus the header: `gold-api`, priority 5, prefix `/api` with `x-tier: gold`.
# In App Mesh it changes nothing — the same requests reach the same service — as long as it
# keeps the path as `gold` did (`defaultPrefix: DISABLED`; a prefix match would otherwise strip
# `/api`). In Gateway API it is now the most specific match for those requests, so both agree.

# %%
GOLD_API = route("gold-api", 5, "{prefix: /api, headers: [{name: x-tier, match: {exact: gold}}]}",
                 "{prefix: {defaultPrefix: DISABLED}}")
after = with_routes(GOLD, API, GOLD_API)
found = precedence_findings(after)
print("precedence findings after the restructuring:", len(found))
assert found == []
report = json.loads(migrate("--verify", after, "--strict", "-o", "json").stdout)
gold = [x for x in report["requests"] if "x-tier: gold" in x["request"] and x["request"].startswith("GET /api")]
nb.table([[x["request"], x["app_mesh"]["service"], x["app_mesh"]["path"], x["gateway_api"]["service"],
           x["gateway_api"]["path"]] for x in gold],
         ["request", "App Mesh: service", "path at the app", "Gateway API: service", "path at the app"])
assert gold and not any(x["differs"] for x in gold)

# %% [markdown]
# ## What stays behind
#
# Gateway API routes say where a request goes. What App Mesh configured *on each proxy* — outlier
# detection, connection pools, health checks, mTLS between sidecars, the egress filter, access
# logs — has no place in them. Each becomes a finding whose hint names the nearest feature of the
# implementation you chose. The mTLS example set, exported for each profile:

# %%
rows = {}
for profile in ("istio", "envoy-gateway", "vpc-lattice"):
    rep = json.loads(migrate("manifests/examples/mtls-mesh", "-o", "json", "--profile", profile).stdout)
    for f in rep["findings"]:
        if f["code"] == "stays-behind":
            key = (Path(f["file"]).name, f["path"])
            rows.setdefault(key, {})[profile] = f["hint"].split(": ", 1)[1]
nb.table([[file, path, *(hints.get(p, "") for p in ("istio", "envoy-gateway", "vpc-lattice"))]
          for (file, path), hints in sorted(rows.items())],
         ["file", "field", "Istio", "Envoy Gateway", "VPC Lattice"])
assert any(path.endswith(".tls") for _, path in rows) and any("PeerAuthentication" in h.get("istio", "")
                                                               for h in rows.values())

# %% [markdown]
# Before the cut-over, read every finding: each one is a request that may route differently, or a
# policy you must configure again in the new implementation. `appmesh-lab migrate --help` lists
# the options.
#
# Next, **13-the-guides-yaml**.
