# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 08 · Traffic management
#
# A gateway route sends a request to one virtual service. Everything more elaborate — splitting
# traffic between versions, choosing by header, retrying, giving up — happens behind that
# virtual service, in a **VirtualRouter**, or in the gateway route's match. This lesson uses four
# of the kit's self-contained examples from `manifests/examples/`. Each has its own namespace,
# mesh and gateway, so they never mix with the walkthrough.
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
# ## A canary release: 90/10, then 50/50, then 0/100
#
# The canary example's gateway route targets the virtual service `reviews`, whose provider is the
# virtual router `reviews-router`. The router's `weighted` route sends 90% of requests to
# `reviews-v1` and 10% to `reviews-v2`; its `canary-header` route (priority 0) sends testers who
# set `x-canary: true` straight to v2.
#
# The helpers' `gateway=` takes the virtual gateway's **App Mesh name**, `<name>_<namespace>`:
# `gateway_ex-canary` is the VirtualGateway named `gateway` (its Kubernetes name) in namespace
# `ex-canary` (see 00, *Two kinds of names*).

# %%
CANARY = "manifests/examples/canary/"
ROUTER_FILE = CANARY + "10-virtual-services.yaml"
nb.apply(t, CANARY)
nb.show_text(nb.to_yaml(nb.manifest_doc(ROUTER_FILE, "VirtualRouter", "reviews-router")),
             title=ROUTER_FILE + " (the VirtualRouter)")
first = nb.expect(t, "/", 200, gateway="gateway_ex-canary", service="reviews", timeout=TIMEOUT_S)
print("the canary's gateway answers:", first.status, first.service)   # v1 or v2: the next cell counts them

# %% [markdown]
# How close to 90/10 must the answers be? Each request picks v2 with probability 0.1, so the
# count of v2 answers among N is binomial. The check is an **exact two-sided binomial test** at
# **α = 0.001**: a correct router fails it in at most one run in a thousand. N is chosen so that
# a router **20 points off** (70/30 where 90/10 is configured, 30/70 or 70/30 where 50/50 is)
# fails it with probability **≥ 0.999**; the next cell computes that N and the power it reaches.
# (A weight of 0 or 100 allows no exception at all.) The p-value in each table is the
# probability of a count at least this unlikely if the router did exactly what it is configured
# to do.

# %%
SHARES = [0.9, 0.5]   # v1's configured share in the steps below (0/100 needs no sample size)
N = nb.split_sample_size(SHARES)
rows = [[f"{s:.0%} / {1 - s:.0%}", f"{nb.split_power(N, s):.4f}"] for s in SHARES]
nb.table(rows, [f"configured split (N = {N} requests, α = {nb.SPLIT_ALPHA})", "P(a route 20 points off fails)"])
assert all(nb.split_power(N, s) >= nb.SPLIT_POWER for s in SHARES)
# the check itself, on counts: 50/50 expected, an 80/20 router's typical answer is refused
try:
    nb.check_split({"v1": round(0.8 * N), "v2": N - round(0.8 * N)}, {"v1": 50, "v2": 50})
    raise AssertionError("an 80/20 count passed the 50/50 check")
except AssertionError as exc:
    assert "exact binomial test" in str(exc), exc
    print("an 80/20 count against 50/50:", str(exc).split(": ", 1)[1])

# %% tags=["volatile"]
steps = []

def measure(label, weights):
    hits = nb.hit(t, "/", n=N, gateway="gateway_ex-canary", concurrency=16)
    assert all(h.status == 200 for h in hits), nb.count(hits, "status")
    measured = nb.count(hits, "version")
    rows = nb.check_split(measured, weights)
    steps.append((label, weights, measured))
    nb.table(rows, ["version", "configured", "measured", "p-value", f"α = {nb.SPLIT_ALPHA}"])

nb.show_text(nb.route_snippet(nb.to_yaml(nb.manifest_doc(ROUTER_FILE, "VirtualRouter", "reviews-router")), "weighted"),
             title=ROUTER_FILE)
nb.command(f"for i in $(seq {N}); do curl -s -H 'Accept: text/plain' $GW/; done | cut -d' ' -f1,2 | sort | uniq -c")
measure("90/10", {"v1": 90, "v2": 10})

# %% [markdown]
# Promote the canary: change the weights on the router's `weighted` route and apply the router
# again. The gateway route does not change. Envoy takes the new weights within a moment
# (`apply` waits until every proxy has acknowledged the new configuration).

# %% tags=["volatile"]
router = nb.router_with_weights(ROUTER_FILE, "reviews-router", "weighted", {"reviews-v1": 50, "reviews-v2": 50})
nb.apply_text(t, router)
measure("50/50", {"v1": 50, "v2": 50})

# %% tags=["volatile"]
router = nb.router_with_weights(ROUTER_FILE, "reviews-router", "weighted", {"reviews-v1": 0, "reviews-v2": 100})
nb.apply_text(t, router)
measure("0/100", {"v1": 0, "v2": 100})

# %% tags=["volatile"]
nb.split_chart(steps, title=f"Canary through the gateway: configured vs measured share of {N} requests")

# %% [markdown]
# The header route works independently of the weights: with `x-canary: true`, every answer
# comes from v2.

# %%
nb.apply(t, ROUTER_FILE)   # back to 90/10
hits = nb.hit(t, "/", n=20, headers={"x-canary": "true"}, gateway="gateway_ex-canary")
print(nb.count(hits, "version"))
assert nb.count(hits, "version") == {"v2": 20}
nb.delete(t, CANARY)

# %% [markdown]
# ## Choosing by header, query parameter and path
#
# A gateway route can match more than a prefix. The header example routes by `x-tier` (exact),
# `x-client-version` (prefix), `x-user` (suffix), `x-region` (regex), `x-build` (a numeric range,
# end excluded), `x-env` (inverted) and the query parameter `preview`, each to its own app; `main`
# takes the rest. Lower priority numbers are checked first. Header names are case-insensitive,
# header values are not. App Mesh's documentation does not say whether a header `regex` must
# match the whole value or only part of it; the kit matches the whole value (Envoy's RE2), and
# the example anchors its regex (`^eu-(west|central)-[0-9]$`) so it reads the same either way:
# `eu-west-12` falls through to `main`.

# %%
HQ = "manifests/examples/header-query-matching/"
nb.apply(t, HQ)
nb.show_routes(HQ + "40-gateway-routes.yaml")
CASES = [  # request, headers, answered by, path the app sees
    ("/orders", {}, "main", "/orders"),
    ("/orders", {"x-tier": "gold"}, "gold", "/orders"),
    ("/orders", {"X-Tier": "gold"}, "gold", "/orders"),
    ("/orders", {"x-tier": "Gold"}, "main", "/orders"),
    ("/", {"x-client-version": "2.3.1"}, "beta-client", "/"),
    ("/", {"x-user": "alice@example.com"}, "staff", "/"),
    ("/", {"x-region": "eu-west-1"}, "eu", "/"),
    ("/", {"x-region": "eu-west-12"}, "main", "/"),
    ("/", {"x-build": "199"}, "build-1xx", "/"),
    ("/", {"x-build": "200"}, "main", "/"),
    ("/deploy/42", {"x-env": "staging"}, "non-prod", "/42"),
    ("/deploy/42", {"x-env": "prod"}, "main", "/deploy/42"),
    ("/items?preview=true", {}, "preview", "/items?preview=true"),
    ("/", {"x-tier": "gold", "x-user": "alice@example.com"}, "gold", "/"),
]
rows = []
for path, headers, service, seen in CASES:
    h = nb.expect(t, path, 200, headers=headers, gateway="gateway_ex-header-query-matching", service=service,
                  seen_path=seen, timeout=TIMEOUT_S, echo=False)
    rows.append([path, ", ".join(f"{k}: {v}" for k, v in headers.items()) or "-", h.service, h.path])
nb.table(rows, ["request", "headers", "answered by", "app sees path"])
nb.delete(t, HQ)

# %% [markdown]
# A **path** match compares the whole path, exactly or with a regular expression, and keeps
# the path as sent: no default rewrite. (App Mesh never named its regex dialect; the kit uses
# Envoy's RE2 and matches the whole path.) The gateway
# normalises the path first (`//status` becomes `/status`).

# %%
PM = "manifests/examples/path-matching/"
nb.apply(t, PM)
nb.show_routes(PM + "40-gateway-routes.yaml")
CASES = [("/status", 200, "status", "/status"), ("/status?verbose=1", 200, "status", "/status?verbose=1"),
         ("//status", 200, "status", "/status"), ("/status/", 404, None, None), ("/STATUS", 404, None, None),
         ("/items/42", 200, "items", "/items/42"), ("/items/abc", 404, None, None),
         ("/items/42/reviews", 404, None, None)]
rows = []
for path, status, service, seen in CASES:
    h = nb.expect(t, path, status, gateway="gateway_ex-path-matching", service=service, seen_path=seen,
                  timeout=TIMEOUT_S, echo=False)
    rows.append([path, h.status, h.service or "gateway (no route matched)", h.path or "-"])
nb.table(rows, ["request", "status", "answered by", "app sees path"])
nb.delete(t, PM)

# %% [markdown]
# ## Retries
#
# The retries example runs `payments`, an app that fails **every second request** it receives
# with a 500, on purpose. Retries are set on virtual router routes (a gateway route has none).
# App Mesh's built-in default retry policy retries 503s and connection failures, not 500s, so
# without a policy of its own every second client request fails.
#
# First, the router with the `retryPolicy` taken out of its `with-retries` route:

# %%
RT = "manifests/examples/retries-timeouts/"
nb.apply(t, RT)
nb.apply_text(t, nb.router_without(RT + "10-virtual-services.yaml", "payments-router", "with-retries", "retryPolicy"))

def error_rate(n=20):
    hits = nb.hit(t, "/retry/charge", n=n, gateway="gateway_ex-retries-timeouts")   # one at a time
    failed = sum(h.status >= 500 for h in hits)
    assert all(h.status in (200, 500) for h in hits), nb.count(hits, "status")
    return failed / n

def routed():   # the example's gateway has just started: wait until it routes (200, or the app's own 500)
    h = nb.hit(t, "/retry/charge", gateway="gateway_ex-retries-timeouts")[0]
    assert h.status in (200, 500), f"/retry/charge: {h.status}"
t.eventually(routed, TIMEOUT_S, what="the payments route through the example's gateway")
before = error_rate()
print(f"without retries: {before:.0%} of requests failed")
assert before >= 0.4, before

# %% [markdown]
# Now the router as the example writes it: up to 3 retries on `server-error` (500–511), 2 s per
# try. The retry lands on the app's next request, which succeeds, so the client never sees the 500:

# %%
nb.show_text(nb.to_yaml(nb.manifest_doc(RT + "10-virtual-services.yaml", "VirtualRouter", "payments-router")),
             title="the payments router, with its retry policy")
nb.apply(t, RT + "10-virtual-services.yaml")
after = error_rate()
print(f"with retries: {after:.0%} of requests failed (was {before:.0%})")
assert after == 0 and after < before

# %% [markdown]
# ## Timeouts
#
# `ledger` answers after 3 seconds. Its router's `impatient` route gives up after 1 second; the
# `patient` route (header `x-patience: long`) waits up to 5. When a timeout expires, the gateway's
# Envoy answers **504** itself; the app still finishes its work.

# %% tags=["volatile"]
from concurrent.futures import ThreadPoolExecutor

nb.command("curl $GW/ledger/balance & curl -H 'x-patience: long' $GW/ledger/balance      # both at once")
with ThreadPoolExecutor(2) as pool:
    impatient = pool.submit(nb.hit, t, "/ledger/balance", gateway="gateway_ex-retries-timeouts")
    patient = pool.submit(nb.hit, t, "/ledger/balance", headers={"x-patience": "long"},
                          gateway="gateway_ex-retries-timeouts")
    h, p = impatient.result()[0], patient.result()[0]
print(f"impatient: {h.status} after {h.elapsed_ms / 1000:.1f} s: {h.body.decode()[:40]}")
print(f"patient:   {p.status} after {p.elapsed_ms / 1000:.1f} s, answered by {p.service}")
assert h.status == 504 and 900 <= h.elapsed_ms < 2900, (h.status, h.elapsed_ms)
assert p.status == 200 and p.service == "ledger" and p.elapsed_ms >= 2900, (p.status, p.elapsed_ms)
nb.delete(t, RT)

# %% [markdown]
# Weights, matches, retries and timeouts: all of it configuration, none of it in the applications.
# Next, **09-security**.
