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
# can run both side by side: `--verify` applies the walkthrough and its export to one lab of its
# own — the App Mesh virtual gateway and the exported Gateway, each with its own Envoy and port, in
# front of the same apps. It generates requests from the matches — ones each route must take, and
# near misses around every condition (a path one character longer, without its trailing slash, in
# upper case; other header values, other methods, other hosts) — sends each to both gateways, and
# compares the status, the workload that answered, and the path and Host it received.
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

# %% [markdown]
# ## The export, live on the lab
#
# The lab is also a Gateway API implementation: it accepts GatewayClass, Gateway, HTTPRoute,
# GRPCRoute and ReferenceGrant, checks them as the upstream CRDs do, and serves every Gateway of a
# class whose `controllerName` is `lab.appmesh.dev/gateway-controller` with a gateway Envoy of its
# own, on its own loopback port (listener port 80 on 127.0.0.1:40080 when that port is free). So
# the export can run **beside** the walkthrough it came from, on the same lab, in front of the same
# apps. The export names the class `my-gateway-class` (profile `standard`): a GatewayClass of that
# name with the lab's controller makes the lab serve it.
#
# The walkthrough runs on the lab first (as notebook 06 left it). On a cluster the kit's controller
# serves App Mesh only, so on kind and EKS this section starts a local lab beside the cluster,
# applies the walkthrough to it, and uses that.

# %%
GATEWAY_CLASS = """apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: my-gateway-class
spec:
  controllerName: lab.appmesh.dev/gateway-controller
"""
if TARGET == "local":
    lab = t  # the walkthrough's own lab
else:
    from lab.targets.local import LocalTarget
    lab = LocalTarget(home=tempfile.mkdtemp(prefix="lab-gateway-api-"), echo=False, namespace=NAMESPACE)
    lab.up()
lab.apply("manifests/walkthrough")  # nothing changes where the walkthrough runs already (notebook 06)
nb.command("appmesh-lab apply -f gatewayclass.yaml -f gateway-api/")
export_text = "---\n".join([GATEWAY_CLASS, (out / "gateways.yaml").read_text(), (out / "httproutes.yaml").read_text()])
for r in lab.apply_text(export_text, name="gateway-api/"):
    print(f"{r['kind'].lower()}/{r['name']} {r['action']}")

# %% [markdown]
# `appmesh-lab get gateways` and `get httproutes` show the conditions Gateway API defines. A
# Gateway is `Accepted` once a controller takes it, and `Programmed` only once its Envoy has ACKed
# the configuration made of it; each listener counts the routes attached to it. Each route has
# one entry per parent (`status.parents[]`), `Accepted` when it attached, `ResolvedRefs` when
# every backend it names exists and may be referred to.

# %%
def cond(conditions, type_):
    c = next((c for c in conditions or [] if c["type"] == type_), {})
    return c.get("status", "Unknown") + (f" ({c['reason']})" if c.get("status") == "False" else "")

def gateway_rows():
    rows = []
    for g in lab.get("Gateway", namespace=NAMESPACE):
        st = g["status"]
        # the loopback port differs from lab to lab: `appmesh-lab get gateways` shows it (EXPOSED)
        address = ", ".join(a["value"] for a in st.get("addresses", [])) or "-"
        rows.append([g["metadata"]["name"], g["spec"]["gatewayClassName"], address,
                     cond(st.get("conditions"), "Accepted"), cond(st.get("conditions"), "Programmed"),
                     ", ".join(f"{x['name']}: {x['attachedRoutes']}" for x in st.get("listeners", []))])
    return rows

def route_rows():
    return [[r["metadata"]["name"], ", ".join(p["parentRef"]["name"] + "/" + p["parentRef"].get("sectionName", "*")
                                              for p in r["status"].get("parents", [])),
             ", ".join(cond(p["conditions"], "Accepted") for p in r["status"].get("parents", [])),
             ", ".join(cond(p["conditions"], "ResolvedRefs") for p in r["status"].get("parents", []))]
            for r in lab.get("HTTPRoute", namespace=NAMESPACE)]

nb.command("appmesh-lab get gateways -n appmesh-demo")
def programmed():
    assert [row[4] for row in gateway_rows()] == ["True"], gateway_rows()

lab.eventually(programmed, TIMEOUT_S, what="the Gateway is Programmed")
nb.table(gateway_rows(), ["NAME", "CLASS", "ADDRESS", "ACCEPTED", "PROGRAMMED", "ATTACHED ROUTES"])
nb.command("appmesh-lab get httproutes -n appmesh-demo")
nb.table(route_rows(), ["NAME", "PARENTS", "ACCEPTED", "RESOLVEDREFS"])
assert [row[3:5] for row in gateway_rows()] == [["True", "True"]]
assert gateway_rows()[0][5] == "http-8088: 2"
assert all(row[2:] == ["True", "True"] for row in route_rows()), route_rows()

# %% [markdown]
# Both gateways, one lab: `curl --gateway vg/NAME` goes through the App Mesh virtual gateway,
# `--gateway gateway/NAME` through the Gateway API one (they have the same name here). The same
# request reaches the same service, with the same path and Host at the app.

# %%
rows = []
for path in ("/products/1", "/reviews/1"):
    answers = []
    for gateway in ("vg/appmesh-gateway", "gateway/appmesh-gateway"):
        h = nb.expect(lab, path, 200, gateway=gateway, timeout=TIMEOUT_S)
        answers.append((h.service, h.path, h.host))
        rows.append([gateway, path, h.status, h.service, h.path, h.host])
    assert answers[0] == answers[1], answers
nb.table(rows, ["gateway", "request", "status", "service", "path at the app", "Host at the app"])

# %% [markdown]
# ## Exercise: an exported route that does not attach
#
# Someone edited the exported review route by hand, and now `/reviews` no longer reaches the
# review service through the Gateway API gateway. Apply `ANSWER` as it is, read the route's
# conditions (the check cell prints them), then correct `ANSWER` so that the route is
# `Accepted` and `ResolvedRefs` and `/reviews/1` reaches review-service through
# `gateway/appmesh-gateway`. (The solution is in the hidden cell after it: expand it if you are
# stuck.)

# %%
review = (out / "httproutes.yaml").read_text().split("---\n")
review = next(d for d in review if "name: review-gateway-route" in d)
ANSWER = review.replace("sectionName: http-8088", "sectionName: http").replace("port: 8080", "port: 80")
print(ANSWER)


def check_exercise(text):
    """True when the route applies, attaches, resolves, and /reviews/1 reaches the review service."""
    try:
        lab.apply_text(text, name="exercise.yaml")
    except Exception as exc:  # a rejected apply: its findings say what to fix
        print("not yet:", exc)
        return False
    route = lab.get("HTTPRoute", "review-gateway-route", NAMESPACE)[0]
    parents = route["status"].get("parents", [])
    for p in parents:
        for c in p["conditions"]:
            print(f"{c['type']}={c['status']} ({c['reason']}): {c['message']}")
    if not parents or not all(c["status"] == "True" for p in parents for c in p["conditions"]):
        print("not yet: the route's conditions above say what is wrong")
        return False
    try:
        nb.expect(lab, "/reviews/1", 200, gateway="gateway/appmesh-gateway", service="review-service",
                  timeout=TIMEOUT_S)
    except AssertionError as exc:
        print("not yet:", exc)
        return False
    print("it works: the route is attached and /reviews/1 reaches the review service")
    return True


check_exercise(ANSWER)

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution (this cell is hidden in the notebook: expand it to read it). The listener is named
# http-8088 (the Gateway's listeners list it), and review-service's Service port is 8080.
ANSWER = ANSWER.replace("sectionName: http\n", "sectionName: http-8088\n").replace("port: 80\n", "port: 8080\n")
assert check_exercise(ANSWER)

# %% [markdown]
# The export leaves the lab again: its Gateway's Envoy stops with it.

# %%
if TARGET == "local":
    for kind, name in (("HTTPRoute", "product-gateway-route"), ("HTTPRoute", "review-gateway-route"),
                       ("Gateway", "appmesh-gateway")):
        nb.remove(lab, kind, name, NAMESPACE)
    nb.remove(lab, "GatewayClass", "my-gateway-class")
    assert not lab.get("Gateway", namespace=NAMESPACE) and not lab.get("GatewayClass", "my-gateway-class")
    assert not [p for p in lab.pods(NAMESPACE) if p["name"].endswith("-my-gateway-class")]
else:
    lab.down(purge=True)
    assert not lab.running()

# %% [markdown]
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
from lab.cli.migrate import load

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
