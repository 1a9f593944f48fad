# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 10 · Observability
#
# Every request through the mesh passes an Envoy, and Envoy counts, logs and times all of it.
# This lesson reads the gateway's statistics and access log, measures latency, reads a
# configuration dump the way a human would, and draws the mesh from the live resources.
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
# ## Envoy statistics
#
# Envoy's admin interface (port 9901 in a pod: `kubectl exec ... -c envoy -- curl
# localhost:9901/stats`) lists thousands of counters. The gateway listener's HTTP counters are
# named `http.ingress_<port>.downstream_rq_*`; per-destination counters are
# `cluster.<cluster>.upstream_rq_*`. (The same data is at `/stats/prometheus` for Prometheus.)
# Send 50 requests and watch the counter rise by at least 50:

# %% tags=["volatile"]
def ingress_requests():
    with nb.quiet(t):
        return nb.stat(t.stats("appmesh-gateway", filter="downstream_rq_total"), r"^http\.ingress_\d+\.downstream_rq_total$")

nb.command("kubectl -n appmesh-demo exec deploy/appmesh-gateway -c envoy -- curl -s localhost:9901/stats?filter=downstream_rq_total")
before = ingress_requests()
N = 50
hits = nb.hit(t, "/products", n=N, concurrency=4)
assert all(h.status == 200 for h in hits), nb.count(hits, "status")

def risen():
    after = ingress_requests()
    assert after - before >= N, f"the counter rose by {after - before}, expected at least {N}"
    return after
after = t.eventually(risen, TIMEOUT_S, what="the gateway's request counter to rise")
print(f"http.ingress_8088.downstream_rq_total: {before} -> {after} (+{after - before})")

# %% tags=["volatile"]
with nb.quiet(t):
    stats = t.stats("appmesh-gateway", filter="upstream_rq_2xx")
rows = [[name, value] for name, value in sorted(stats.items())
        if name.startswith("cluster.cds_") and name.endswith(".upstream_rq_2xx") and ".external." not in name]
nb.table(rows, ["counter", "value"])
assert any("product-service-vn" in name and value >= N for name, value in rows), rows

# %% [markdown]
# ## Access logs
#
# The virtual gateway's `logging.accessLog.file.path: /dev/stdout` makes Envoy write to its
# standard output — what `kubectl logs` shows — **two lines per request**, one at each of the
# gateway's two routing stages, both with the same request id: first the line of the second
# stage (the virtual service's routing, whose upstream is the sidecar, and where an upstream
# failure sets the response flag), then the line of the listener where the gateway route matched
# (whose upstream is the gateway's own internal listener, `envoy://lds_egress_internal_...`).
# A sidecar with a log writes one line per request it receives. Envoy's default line format is:
# time, `"METHOD PATH PROTOCOL"`, status, response flags, bytes received and sent, total and
# upstream milliseconds, `x-forwarded-for`, user agent, request id, authority (Host) and the
# upstream address.

# %%
MARK = "/products/observability-check"
nb.expect(t, MARK, 200, service="product-service", timeout=TIMEOUT_S)
nb.command(f"kubectl -n {NAMESPACE} logs deploy/appmesh-gateway -c envoy --tail 20")

def logged():   # both lines of the last request for MARK (the same request id)
    with nb.quiet(t):
        entries = [nb.access_log_entry(l) for l in t.logs("appmesh-gateway", "envoy").splitlines()
                   if f'"GET {MARK} HTTP/1.1" 200' in l]
    assert entries, "the request is not in the gateway's access log yet"
    last = [e for e in entries if e["request_id"] == entries[-1]["request_id"]]
    assert len(last) == 2, f"{len(last)} line(s) for request {entries[-1]['request_id']}, expected 2"
    return last
lines = t.eventually(logged, TIMEOUT_S, what="the two access-log lines of the request")
nb.table([[stage, e["status"], e["flags"], e["upstream_host"]] for stage, e in
          zip(("second stage: the virtual service's routing", "first stage: the listener, the gateway route"), lines)],
         [f"gateway line for GET {MARK}", "status", "flags", "upstream host"])
assert not lines[0]["upstream_host"].startswith("envoy://") and lines[1]["upstream_host"].startswith("envoy://"), lines

# %% [markdown]
# ## Latency
#
# A latency means something only next to a baseline, measured in the same cell on the same
# machine. The cell times product-service three ways, in turns, one request at a time:
#
# | hop | path of a request | Envoys on the way |
# |---|---|---|
# | direct | client → the app's own port | none |
# | sidecar | client → the pod's sidecar (its ingress listener) → app | 1 |
# | gateway | client → gateway Envoy (GatewayRoute `/products`) → the same Envoy's internal listener (the virtual service's routing) → sidecar → app | 2, the gateway's passed twice |
#
# The gateway's second pass is the virtual services' routing, applied to the rewritten request
# (the `_self_redirect_` cluster in the config dump below); the kit runs it on an Envoy internal
# listener, reached in memory, with no socket in between.
#
# **What to expect:** each pass through Envoy on loopback costs a fraction of a millisecond at
# the median when requests come one at a time (docs/benchmarks.md has the gateway path under wrk's
# full load on 2 cores), so the gateway's median is at most a millisecond or
# two above the direct one, and not below it. The cell checks that the gateway adds less than 5 ms at
# p50 over the direct path: generous for a busy 2-core machine, but a proxy that buffered,
# retried or resolved a name on every request would break it. When the machine is so busy that
# one Envoy hop alone (the sidecar row) adds more than a millisecond and a quarter — every process
# then waits for a core before it runs — the bound is four times that hop instead: the gateway's
# path has two more processes to wake than the direct one, so it may add about twice what one
# hop adds, not more. On a cluster only the gateway is reachable from here; the cell then shows
# it alone.

# %% tags=["volatile"]
hops = nb.hop_addresses(t, NAMESPACE, "product-service")
samples = nb.latency_by_hop(t, hops, {"direct": "/", "sidecar": "/", "gateway": "/products"}, n=200)
p50 = {hop: nb.percentile(ms, 0.5) for hop, ms in samples.items()}
rows = [[hop, len(ms), f"{p50[hop]:.2f}", f"{nb.percentile(ms, 0.99):.2f}",
         f"{p50[hop] - p50['direct']:+.2f}" if "direct" in p50 else "-"] for hop, ms in samples.items()]
nb.table(rows, ["hop", "requests", "p50 ms", "p99 ms", "p50 over direct, ms"])
if "direct" in p50:
    added, one_hop = p50["gateway"] - p50["direct"], p50["sidecar"] - p50["direct"]
    bound = max(5.0, 4 * one_hop)
    assert added < bound, (f"the gateway adds {added:.2f} ms at p50 over the direct path (expected < {bound:.2f} ms: "
                           f"5 ms, or 4 x the {one_hop:.2f} ms one sidecar hop adds)")
    assert p50["gateway"] >= p50["direct"] - 0.2, f"two Envoys faster than none? {p50}"
nb.latency_histogram(samples["gateway"], title="GET /products through the gateway")

# %% [markdown]
# ## A configuration dump, read by a human
#
# `/config_dump` is everything the control plane sent the gateway, as JSON — easily thousands of
# lines. The tables below keep what matters for routing: each listener (name, address, which
# route table it uses, TLS or not) and each route (match, destination cluster, rewrites). The
# gateway has two listeners: the one clients reach, and an internal one the gateway sends its
# routed requests to, where the virtual services' own routing is applied a second time, as in
# App Mesh (it calls that cluster `..._self_redirect_...`). Here that second listener is an Envoy
# internal listener: it has no socket, and the request passes to it in memory.

# %% tags=["volatile"]
dump = t.config_dump("appmesh-gateway")
listeners, routes = nb.config_summary(dump)
nb.table(listeners, ["listener", "address", "route table", "transport"])
nb.table(routes, ["route table", "route", "match", "cluster", "rewrite"])
assert any("ingress" in name and "8088" in name for name, *_ in listeners), listeners
matches = {r[2] for r in routes if r[0].startswith("rds_ingress")}
assert {"prefix /products", "prefix /reviews"} <= matches, matches
assert any("product-service.appmesh-demo.svc.cluster.local" in r[4] for r in routes), routes

# %% [markdown]
# ## The mesh, drawn from the live resources
#
# The diagram below is built from what the target reports (`get` on every App Mesh kind), not
# from the manifests: gateway → gateway routes (labelled with their match) → virtual services →
# routers → nodes. A green border means the resource is active; a reference to something that
# does not exist would show up in red. The walkthrough has no virtual router:

# %% tags=["volatile"]
graph, figure = nb.topology(t, NAMESPACE)
edges = {(a, b) for a, b, _ in graph["edges"]}
assert ("VirtualGateway/appmesh-gateway", "GatewayRoute/product-gateway-route") in edges
assert ("GatewayRoute/product-gateway-route", "VirtualService/product-service") in edges
assert ("VirtualService/product-service", "VirtualNode/product-service-vn") in edges
assert all(graph["active"].values()), graph["active"]
figure

# %% [markdown]
# The canary example has one, with weights on its edges:

# %% tags=["volatile"]
nb.apply(t, "manifests/examples/canary/")
graph, figure = nb.topology(t, "ex-canary")
edges = {(a, b): label for a, b, label in graph["edges"]}
assert ("VirtualService/reviews", "VirtualRouter/reviews-router") in edges
assert "weighted:90" in edges[("VirtualRouter/reviews-router", "VirtualNode/reviews-v1")]
nb.delete(t, "manifests/examples/canary/")
figure

# %% [markdown]
# ## Exercise: a sidecar's access log, in JSON
#
# The walkthrough's `product-service-vn` has no access log, so its sidecar says nothing about the
# requests it passes to the app. Give it one: to `/dev/stdout`, as **JSON** lines with the keys
# `path` (the path the sidecar received), `status` (the response code) and `flags` (Envoy's
# response flags). `format.json` is a list of `{key, value}` pairs whose values are Envoy's
# format operators (`%REQ(:PATH)%`, `%RESPONSE_CODE%`, `%RESPONSE_FLAGS%`, ...). Edit `ANSWER`,
# then run the check cell: it applies your virtual node, sends `GET /products?exercise=1` through
# the gateway and looks for the line in the sidecar's log. (The solution is in the hidden cell
# after it; the cell after that puts the walkthrough's virtual node back.)

# %%
import json

VN_FILE = "manifests/walkthrough/02-product-service-vn.yaml"
ANSWER = nb.to_yaml(nb.manifest_doc(VN_FILE, "VirtualNode", "product-service-vn"))


def check_json_log(text, attempt):
    """True when `text` applies and product-service's sidecar logs the request as JSON with path, status, flags."""
    import yaml
    path = f"/products?exercise={attempt}"

    def logged_as_json():
        spec = (yaml.safe_load(text) or {}).get("spec") or {}
        assert ((spec.get("logging") or {}).get("accessLog") or {}).get("file"), \
            "the virtual node has no spec.logging.accessLog.file, so its sidecar writes no access log"

        def found():   # a request, then its line (connections opened before the apply are not logged)
            nb.expect(t, path, 200, service="product-service", timeout=TIMEOUT_S, echo=False)
            import time
            time.sleep(0.1)   # the local lab's Envoys flush their access logs every 50 ms (a cluster's: 10 s)
            with nb.quiet(t):
                out = t.logs("product-service", "envoy").splitlines()
            lines = [json.loads(l) for l in out if l.startswith("{") and f"exercise={attempt}" in l]
            assert lines, "no JSON line for the request in product-service's sidecar log"
            return lines[-1]
        line = t.eventually(found, TIMEOUT_S, what="the sidecar's JSON line")
        want = {"path": f"/?exercise={attempt}", "status": 200, "flags": "-"}
        wrong = {k: line.get(k) for k, v in want.items() if line.get(k) != v}
        assert not wrong, f"the line is {line}; these keys differ from {want}: {wrong}"
        print("product-service's sidecar logged", json.dumps(line))
    return nb.try_manifest(t, text, TIMEOUT_S) and nb.verdict(
        logged_as_json, ok="it works: one JSON line per request, with path, status and flags",
        hint="logging.accessLog.file takes a path and a format; format.json is a list of {key, value}")


check_json_log(ANSWER, "yours")

# %% tags=["solution"] jupyter={"source_hidden": true}
# Solution (hidden in the notebook: expand the cell to read it): a logging block under spec. The
# sidecar receives the path the gateway rewrote (/products -> /), so the path operator gives
# "/?exercise=..."; in a JSON format the response code is written as a number.
ANSWER = ANSWER + """  logging:
    accessLog:
      file:
        path: /dev/stdout
        format:
          json:
            - key: path
              value: "%REQ(:PATH)%"
            - key: status
              value: "%RESPONSE_CODE%"
            - key: flags
              value: "%RESPONSE_FLAGS%"
"""
assert check_json_log(ANSWER, "solution")

# %%
nb.apply(t, VN_FILE)   # the walkthrough's virtual node again, without the access log

# %% [markdown]
# Next, **11-troubleshooting**: the same tools, used when something is wrong.
