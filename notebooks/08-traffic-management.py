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
# traffic between versions, switching all of it at once, choosing by header, retrying, giving
# up, refusing what a service cannot take — happens behind that virtual service, in a
# **VirtualRouter** or a **VirtualNode**'s listener, or in the gateway route's match. This lesson
# uses six of the kit's self-contained examples from `manifests/examples/` (canary, blue-green,
# header-query-matching, path-matching, retries-timeouts, circuit-breaking). Each has its own
# namespace, mesh and gateway, so they never mix with the walkthrough.
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
# **α = 0.001**: a correct router's sample is rejected in at most one run in a thousand. These
# lessons run every night, many times over, so one in a thousand is not rare enough: when a
# sample is rejected, the check measures a **second, fresh sample** and fails only if that one
# is rejected too. A correct router then fails in at most one run in a million (α²). N is
# chosen so that a router **20 points off** (70/30 where 90/10 is configured, 30/70 or 70/30
# where 50/50 is) fails the whole check — both samples rejected — with probability **≥ 0.999**;
# the next cell computes that N and the power it reaches. (A weight of 0 or 100 allows no
# exception at all.) The p-value in each table is the probability of a count at least this
# unlikely if the router did exactly what it is configured to do.

# %%
SHARES = [0.9, 0.5]   # v1's configured share in the steps below (0/100 needs no sample size)
N = nb.split_sample_size(SHARES)
rows = [[f"{s:.0%} / {1 - s:.0%}", f"{nb.split_power(N, s):.4f}"] for s in SHARES]
nb.table(rows, [f"configured split (N = {N} requests a sample, α = {nb.SPLIT_ALPHA})", "P(a route 20 points off fails)"])
assert all(nb.split_power(N, s) >= nb.SPLIT_POWER for s in SHARES)
# the check itself, on counts: 50/50 expected, an 80/20 router's typical answer is refused
try:
    nb.check_split({"v1": round(0.8 * N), "v2": N - round(0.8 * N)}, {"v1": 50, "v2": 50})
    raise AssertionError("an 80/20 count passed the 50/50 check")
except AssertionError as exc:
    assert "exact binomial test" in str(exc), exc
    print("an 80/20 count against 50/50:", str(exc).split(": ", 1)[1])

# %% tags=["volatile"]
steps, samples = [], []

def sample():
    hits = nb.hit(t, "/", n=N, gateway="gateway_ex-canary", concurrency=16)
    assert all(h.status == 200 for h in hits), nb.count(hits, "status")
    samples.append(nb.count(hits, "version"))
    return samples[-1]

def measure(label, weights):
    samples.clear()
    rows = nb.check_split(sample(), weights, again=sample)   # a second sample only if the first is rejected
    steps.append((label, weights, samples[-1]))
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
# ## Blue/green: switching every request at once, under load
#
# A canary moves traffic step by step; a **blue/green** release keeps two complete versions
# running and moves all of it in one step. In the blue-green example, the router `checkout-router`
# sends 100 % to `checkout-blue` and 0 % to `checkout-green`, and testers reach green before the
# switch with `x-preview: green`. The switch is the same router with the weights swapped
# (`switch/virtual-router-green-live.yaml`); the gateway route never changes.
#
# The question a release manager asks is whether anyone notices. The next cell runs a load
# generator — 4 clients sending `GET /checkout/cart` back to back through the gateway, each
# over its own keep-alive connection — for half a second and at least 150 answers, applies the
# switch while they run, and keeps them running half a second after the apply returned and
# until 100 requests sent after it were answered (`apply` returns once every proxy has
# acknowledged the new configuration; the counts keep each phase long enough on a busy machine,
# where half a second may hold only a few dozen requests). It checks that **no request failed**
# (a status other than 200, or no answer at all), that every answer before the apply came from
# blue, and that **every answer after it came from green**. Envoy swaps a route table between
# two requests: a request is routed either by the old table or by the new one, never dropped
# between them.

# %%
BG = "manifests/examples/blue-green/"
nb.apply(t, BG)
nb.show_text(nb.route_snippet(nb.to_yaml(nb.manifest_doc(BG + "switch/virtual-router-green-live.yaml", "VirtualRouter",
                                                         "checkout-router")), "live"),
             title=BG + "switch/virtual-router-green-live.yaml (the live route after the switch)")
nb.expect(t, "/checkout/cart", 200, gateway="gateway_ex-blue-green", version="blue", timeout=TIMEOUT_S)
nb.command("hey -z 1s -c 4 $GW/checkout/cart &    # any load generator; the cell uses 4 Python clients")
hits, (switch_start, switch_end) = nb.load_during(t, "/checkout/cart", lambda: nb.apply(t, BG + "switch/"),
                                                  gateway="gateway_ex-blue-green", concurrency=4,
                                                  before_s=0.5, after_s=0.5, before_n=150, after_n=100)

# %% tags=["volatile"]
phases = [("before the apply", lambda h: h.at < switch_start),
          ("while apply waited for the proxies", lambda h: switch_start <= h.at < switch_end),
          ("after the apply returned", lambda h: h.at >= switch_end)]
rows = []
for label, within in phases:
    some = [h for h in hits if within(h)]
    rows.append([label, len(some), sum(h.status != 200 for h in some), some and nb.count(some, "version").get("blue", 0),
                 some and nb.count(some, "version").get("green", 0)])
nb.table(rows, ["phase", "requests", "failed", "blue", "green"])

# %%
failed = [h for h in hits if h.status != 200]
before = nb.count([h for h in hits if h.at < switch_start], "version")
after = nb.count([h for h in hits if h.at >= switch_end], "version")
print(f"no request failed; before the switch only {sorted(before)} answered, after it only {sorted(after)}")
assert len(hits) >= 200, f"the load generator sent only {len(hits)} requests"
assert not failed, f"{len(failed)} request(s) failed during the cutover: {failed[:5]}"
assert set(before) == {"blue"} and set(after) == {"green"} and after["green"] >= 50, (before, after)

# %% [markdown]
# ### Exercise: roll back
#
# Green has a bug. Write `checkout-router` so that **all traffic goes back to blue**, while
# testers can still reach green with the header `x-preview: green` (to check the fix). The
# starting point below is the router as it is now, after the switch. Edit `ANSWER`, then run the
# check cell: it applies your router, sends 40 requests without the header and 5 with it, and
# says what it found. (The solution is in the hidden cell after it.)

# %%
ANSWER = (nb.ROOT / BG / "switch/virtual-router-green-live.yaml").read_text()


def check_rollback(text):
    """True when `text` applies and the router sends plain requests to blue, x-preview: green to green."""
    def rolled_back():
        plain = nb.count(nb.hit(t, "/checkout", n=40, gateway="gateway_ex-blue-green", concurrency=4), "version")
        assert plain == {"blue": 40}, f"40 requests without the header were answered by {dict(plain)}: all should be blue"
        preview = nb.count(nb.hit(t, "/checkout", n=5, headers={"x-preview": "green"}, gateway="gateway_ex-blue-green"),
                           "version")
        assert preview == {"green": 5}, f"5 requests with x-preview: green were answered by {dict(preview)}: all should be green"
    return nb.try_manifest(t, text, TIMEOUT_S) and nb.verdict(
        rolled_back, ok="rolled back: 40/40 plain requests to blue, 5/5 previews to green",
        hint="the live route's weights decide the plain requests; the preview route's header match and target the previews")


check_rollback(ANSWER)

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution (hidden in the notebook: expand the cell to read it): the preview route matches
# x-preview: green and leads to green; the live route gives blue 100 and green 0. This is the
# example's own router in 10-virtual-services.yaml: rolling back is re-applying that file.
ANSWER = """apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualRouter
metadata:
  name: checkout-router
  namespace: ex-blue-green
spec:
  listeners:
    - portMapping:
        port: 8080
        protocol: http
  routes:
    - name: preview
      priority: 0
      httpRoute:
        match:
          prefix: /
          headers:
            - name: x-preview
              match:
                exact: green
        action:
          weightedTargets:
            - virtualNodeRef:
                name: checkout-green
              weight: 100
    - name: live
      priority: 10
      httpRoute:
        match:
          prefix: /
        action:
          weightedTargets:
            - virtualNodeRef:
                name: checkout-blue
              weight: 100
            - virtualNodeRef:
                name: checkout-green
              weight: 0
"""
assert check_rollback(ANSWER)
nb.delete(t, BG)

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
# ## Circuit breaking: a connection pool under concurrent load
#
# A service that is slow to answer collects waiting requests; a **connection pool** limit makes
# Envoy refuse the excess at once instead of letting the queue — and every caller's wait — grow.
# In the circuit-breaking example, the `inventory` virtual node's listener has
# `connectionPool.http: {maxConnections: 1, maxPendingRequests: 2}`, and its app takes 50 ms per
# answer. App Mesh's user guide applies a virtual node listener's pool in the node's own Envoy,
# to its connections to the local application; the kit does the same (the circuit breaker of
# the sidecar's local-app cluster). So the sidecar lets 1 request reach the app, queues 2 more,
# and answers any request beyond those 3 itself: **503**, header `x-envoy-overloaded: true`,
# response flag **`UO`** (upstream overflow) in its access log, and one more
# `upstream_rq_pending_overflow` on that cluster.
#
# The cell sends the same request twice over: 30 times, 3 at a time (never more than the pool
# holds: nothing may be refused), then 160 times, 16 at a time.

# %%
CB = "manifests/examples/circuit-breaking/"
nb.apply(t, CB)
nb.show_text(nb.to_yaml(nb.manifest_doc(CB + "10-virtual-services.yaml", "VirtualNode", "inventory")),
             title=CB + "10-virtual-services.yaml (the VirtualNode inventory)")
nb.expect(t, "/inventory/items", 200, gateway="gateway_ex-circuit-breaking", service="inventory", timeout=TIMEOUT_S)


def overflows():
    with nb.quiet(t):
        return nb.stat(t.stats("inventory", filter="upstream_rq_pending_overflow"),
                       r"^cluster\.cds_ingress_.*\.upstream_rq_pending_overflow$")


LIGHT, HEAVY = "/inventory/items?load=3-at-a-time", "/inventory/items?load=16-at-a-time"
nb.command("hey -n 30 -c 3 \"$GW/inventory/items?load=3-at-a-time\"; hey -n 160 -c 16 \"$GW/inventory/items?load=16-at-a-time\"")
o0 = overflows()
light = nb.hit(t, LIGHT, n=30, gateway="gateway_ex-circuit-breaking", concurrency=3)
o1 = overflows()
heavy = nb.hit(t, HEAVY, n=160, gateway="gateway_ex-circuit-breaking", concurrency=16)
o2 = overflows()

# %% tags=["volatile"]
nb.table([["3 at a time", len(light), sum(h.status == 200 for h in light), sum(h.status == 503 for h in light), o1 - o0],
          ["16 at a time", len(heavy), sum(h.status == 200 for h in heavy), sum(h.status == 503 for h in heavy), o2 - o1]],
         ["load", "requests", "200", "503", "upstream_rq_pending_overflow (inventory's sidecar)"])

# %%
refused = [h for h in heavy if h.status != 200]
assert all(h.status == 200 for h in light) and o1 == o0, (nb.count(light, "status"), o1 - o0)
assert refused and len(refused) < len(heavy), nb.count(heavy, "status")   # some refused, some served
assert all(h.status == 503 and h.headers.get("x-envoy-overloaded") == "true" for h in refused), refused[:3]
assert o2 - o1 >= len(refused), (o2 - o1, len(refused))
print("3 at a time: none refused; 16 at a time: some served, the others refused with 503 and "
      "x-envoy-overloaded: true, each counted by the sidecar's upstream_rq_pending_overflow")

# %% [markdown]
# Who said what? The sidecar's access log has the refusals with flag `UO`. The gateway's line
# for the same request says **`URX`**, retry limit exceeded: App Mesh's default retry policy
# retries a 503, so the gateway tried each refused request up to twice more, each time into the
# same full pool — the overflow counter rises by up to three per refused request. Retries on an
# overloaded service add load where it hurts most; a router route with its own `retryPolicy`
# (without `gateway-error`) changes that.

# %%
def first_line(owner, status, flag):
    with nb.quiet(t):
        lines = [e["line"] for e in nb.access_log(t, owner, HEAVY) if (e["status"], e["flags"]) == (status, flag)]
    assert lines, f"no {status} {flag} line for {HEAVY} in {owner}'s access log"
    return lines[0]


nb.command(f"kubectl -n ex-circuit-breaking logs deploy/inventory -c envoy | grep ' 503 UO ' | head -1")
print(t.eventually(lambda: first_line("inventory", 503, "UO"), TIMEOUT_S, what="the sidecar's UO line"))
nb.command(f"kubectl -n ex-circuit-breaking logs deploy/gateway -c envoy | grep ' 503 URX ' | head -1")
print(t.eventually(lambda: first_line("gateway", 503, "URX"), TIMEOUT_S, what="the gateway's URX line"))
print(nb.explain_flag("UO"), "|", nb.explain_flag("URX"))

# %% [markdown]
# ## Outlier detection: ejecting a failing host
#
# A connection pool protects a service from its callers; **outlier detection** protects callers
# from a service. It is set on the virtual node's listener but applied by the node's callers
# (here the gateway): a host that answers `maxServerErrors` 5xx in a row is ejected from their
# load balancing for `baseEjectionDuration`. The example's `pricing` is a broken release: every
# answer is a 500. Its listener has `maxServerErrors: 3`, `baseEjectionDuration: 30s`.
#
# What ejection changes depends on what is left. App Mesh documents that at least one host is
# always ejected, whatever `maxEjectionPercent` says, and that ejection only helps with several
# hosts (Cloud Map, or DNS that returns every pod's address). Here pricing has one host: Envoy
# ejects it, finds no healthy host left, and — below its panic threshold (50 % healthy, Envoy's
# default) — balances over all hosts anyway, so the 500s keep coming. The ejection is in Envoy's
# counters and in the host's health flags (`/clusters` on the admin port).

# %%
nb.show_text(nb.to_yaml(nb.manifest_doc(CB + "10-virtual-services.yaml", "VirtualNode", "pricing")),
             title=CB + "10-virtual-services.yaml (the VirtualNode pricing)")
PRICING = "cds_egress_ex-circuit-breaking_pricing"


def ejections():
    with nb.quiet(t):
        return nb.stat(t.stats("gateway_ex-circuit-breaking", filter="ejections_enforced_total"),
                       rf"^cluster\.{PRICING}.*\.outlier_detection\.ejections_enforced_total$")


e0 = ejections()
answers = [nb.hit(t, "/pricing/quote", gateway="gateway_ex-circuit-breaking")[0].status for _ in range(5)]
e1 = ejections()
with nb.quiet(t):
    hosts = nb.host_health(t, "gateway_ex-circuit-breaking", PRICING)
print("5 requests to /pricing/quote:", answers)
print(f"outlier_detection.ejections_enforced_total: {e0} -> {e1}")
nb.table([[h["host"], h["health_flags"], h["rq_total"], h["rq_error"]] for h in hosts],
         ["pricing host (the gateway's view)", "health flags", "requests", "errors"])
assert answers == [500] * 5, answers
assert e1 - e0 == 1, (e0, e1)
assert hosts and all("failed_outlier_check" in h["health_flags"] for h in hosts), hosts
nb.delete(t, CB)

# %% [markdown]
# Weights, matches, retries, timeouts, connection pools and outlier detection: all of it
# configuration, none of it in the applications.
# Next, **09-security**.
