"""Whatever text it is given, the validator answers with findings and never raises.

Three families: arbitrary text and arbitrary YAML values; random mutations of valid
manifests (the walkthrough's, when present, and a few written here); hostile inputs
(anchor bombs, deep nesting, huge strings) that must be refused quickly.
"""
import copy
import time

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lab.model import Problem, validate_texts
from lab.model import kinds as K
from lab.model.loader import MAX_BYTES
from tests.conftest import ROOT

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HEAVY = settings(SETTINGS, max_examples=75)  # each example validates a whole set of manifests

# ---- valid documents to mutate -----------------------------------------------------------

INLINE = """
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: {mesh: shop-mesh, gateway: ingress, appmesh.k8s.aws/sidecarInjectorWebhook: enabled}
---
apiVersion: appmesh.k8s.aws/v1beta2
kind: Mesh
metadata: {name: shop-mesh}
spec:
  namespaceSelector: {matchLabels: {mesh: shop-mesh}}
  egressFilter: {type: DROP_ALL}
---
apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualGateway
metadata: {name: ingress-gw, namespace: shop}
spec:
  namespaceSelector: {matchLabels: {gateway: ingress}}
  podSelector: {matchLabels: {app: ingress-gw}}
  gatewayRouteSelector: {matchExpressions: [{key: exposed, operator: NotIn, values: ["false"]}]}
  listeners:
    - portMapping: {port: 8088, protocol: http}
      healthCheck: {protocol: http, path: /ping, port: 8088, healthyThreshold: 2, unhealthyThreshold: 2,
                    intervalMillis: 5000, timeoutMillis: 2000}
      connectionPool: {http: {maxConnections: 100}}
  logging: {accessLog: {file: {path: /dev/stdout}}}
---
apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualNode
metadata: {name: products-v1, namespace: shop}
spec:
  podSelector: {matchLabels: {app: products, version: v1}}
  listeners: [{portMapping: {port: 8080, protocol: http}}]
  serviceDiscovery: {dns: {hostname: products-v1.shop.svc.cluster.local}}
  backends: [{virtualService: {virtualServiceRef: {name: reviews}}}]
---
apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualNode
metadata: {name: products-v2, namespace: shop}
spec:
  podSelector: {matchLabels: {app: products, version: v2}}
  listeners: [{portMapping: {port: 8080, protocol: http}}]
  serviceDiscovery: {dns: {hostname: products-v2.shop.svc.cluster.local}}
---
apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualRouter
metadata: {name: products-router, namespace: shop}
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
  routes:
    - name: split
      priority: 10
      httpRoute:
        match: {prefix: /, headers: [{name: x-canary, match: {range: {start: 1, end: 5}}}]}
        action:
          weightedTargets:
            - {virtualNodeRef: {name: products-v1}, weight: 90}
            - {virtualNodeRef: {name: products-v2}, weight: 10}
        retryPolicy: {maxRetries: 2, perRetryTimeout: {unit: ms, value: 500}, httpRetryEvents: [server-error]}
---
apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualService
metadata: {name: products, namespace: shop}
spec:
  awsName: products.shop.svc.cluster.local
  provider: {virtualRouter: {virtualRouterRef: {name: products-router}}}
---
apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  provider: {virtualNode: {virtualNodeRef: {name: products-v2}}}
---
apiVersion: appmesh.k8s.aws/v1beta2
kind: GatewayRoute
metadata: {name: products-route, namespace: shop, labels: {exposed: "true"}}
spec:
  priority: 5
  httpRoute:
    match: {prefix: /products/, method: GET, queryParameters: [{name: color, match: {exact: blue}}]}
    action:
      target: {virtualService: {virtualServiceRef: {name: products}}}
      rewrite: {prefix: {value: /}, hostname: {defaultTargetHostname: DISABLED}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ingress-gw, namespace: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: ingress-gw}}
  template:
    metadata: {labels: {app: ingress-gw}}
    spec:
      containers: [{name: envoy, image: envoyproxy/envoy:v1.29.0, ports: [{containerPort: 8088}]}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: products-v1, namespace: shop}
spec:
  selector: {matchLabels: {app: products, version: v1}}
  template:
    metadata: {labels: {app: products, version: v1}, annotations: {appmesh.k8s.aws/ports: "8080"}}
    spec:
      containers: [{name: app, image: nginxdemos/hello:latest, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: ingress-gw, namespace: shop}
spec:
  type: LoadBalancer
  selector: {app: ingress-gw}
  ports: [{port: 80, targetPort: 8088}]
"""


def _worlds() -> list:
    """Sets of valid documents that belong together: the inline ones, and the walkthrough's."""
    worlds = [[d for d in yaml.safe_load_all(INLINE) if d]]
    walkthrough = ROOT / "manifests" / "walkthrough"
    if walkthrough.is_dir():  # written by another part of the kit; used when present, never required
        docs = []
        for f in sorted(walkthrough.glob("*.yaml")):
            try:
                docs += [d for d in yaml.safe_load_all(f.read_text()) if isinstance(d, dict)]
            except yaml.YAMLError:
                continue
        if docs:
            worlds.append(docs)
    return worlds


WORLDS = _worlds()


def _dump(docs) -> str:
    return yaml.dump_all(docs, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper))


def test_the_inline_documents_are_valid():
    result = validate_texts([("inline.yaml", INLINE)], complete=True)
    assert not result.errors, "\n".join(map(str, result.errors))


def _assert_findings_only(result):
    for p in result.problems:
        assert isinstance(p, Problem)
        assert isinstance(p.path, str) and isinstance(p.message, str) and isinstance(p.hint, str)
        assert isinstance(p.line, int) and p.line >= 0
        assert p.severity in ("error", "warning")
        str(p), p.to_dict()  # printable and serialisable


# ---- (a) arbitrary text and arbitrary YAML values ----------------------------------------

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                    st.text(max_size=20))
json_like = st.recursive(scalars, lambda kids: st.one_of(
    st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=12), kids, max_size=4)), max_leaves=25)


@SETTINGS
@given(st.text(max_size=400))
def test_arbitrary_text_gives_findings_never_an_exception(text):
    _assert_findings_only(validate_texts([("any.yaml", text)]))


@SETTINGS
@given(st.text(alphabet=st.sampled_from(list("abc:-[]{}&*!|>'\"#%@` \n\t?,0123456789")), max_size=200))
def test_yaml_punctuation_soup_gives_findings_never_an_exception(text):
    _assert_findings_only(validate_texts([("soup.yaml", text)]))


@SETTINGS
@given(json_like)
def test_arbitrary_yaml_values_give_findings_never_an_exception(value):
    _assert_findings_only(validate_texts([("value.yaml", yaml.safe_dump(value))]))


KINDS = [("appmesh.k8s.aws/v1beta2", k) for k in K.APPMESH_KINDS] + list(K.K8S_KINDS)
CONTEXT = [d for d in WORLDS[0] if d["kind"] in ("Namespace", "Mesh", "VirtualGateway", "VirtualService")]


@HEAVY
@given(st.sampled_from(KINDS), json_like, st.one_of(st.none(), st.text(max_size=10)), st.booleans())
def test_known_kinds_with_arbitrary_specs_give_findings_never_an_exception(api_kind, spec, namespace, complete):
    api, kind = api_kind
    doc = {"apiVersion": api, "kind": kind, "metadata": {"name": "x", "namespace": namespace}, "spec": spec}
    # x in namespace shop joins the inline world's mesh and gateway when its spec happens to be valid
    text = _dump([doc] + CONTEXT)
    _assert_findings_only(validate_texts([("spec.yaml", text)], complete=complete))


# ---- (b) mutations of valid documents ----------------------------------------------------

def _paths(node, prefix=()):
    """Every path into a document: tuples of keys and indexes."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


_copy = copy.deepcopy


def _mutate(doc, path, op, value, new_key):
    """Apply one mutation at `path`; a mutation that does not apply leaves the document as it is."""
    doc = _copy(doc)
    if not path:
        return value if op == "replace" else doc
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    current = parent[last]
    if op == "delete":
        del parent[last]
    elif op == "replace":
        parent[last] = value
    elif op == "rename" and isinstance(parent, dict):
        parent[new_key] = parent.pop(last)
    elif op == "retype":
        if isinstance(current, bool):
            parent[last] = str(current).lower()
        elif isinstance(current, int):
            parent[last] = str(current)
        elif isinstance(current, str):
            parent[last] = int(current) if current.isdigit() else [current]
        elif isinstance(current, dict):
            parent[last] = list(current.items())
        elif isinstance(current, list):
            parent[last] = {str(i): v for i, v in enumerate(current)}
        else:
            parent[last] = {}
    elif op == "duplicate" and isinstance(parent, list):
        parent.append(_copy(current))
    return doc


@st.composite
def mutated_sets(draw):
    docs = _copy(draw(st.sampled_from(WORLDS)))
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(docs) - 1))
        op = draw(st.sampled_from(["delete", "replace", "rename", "retype", "duplicate", "duplicate-document"]))
        if op == "duplicate-document":
            docs.append(_copy(docs[i]))
            continue
        path = draw(st.sampled_from(list(_paths(docs[i]))))
        value = draw(json_like)
        new_key = draw(st.one_of(st.text(max_size=12), st.sampled_from(["spec", "match", "prefix", "port", "name"])))
        docs[i] = _mutate(docs[i], path, op, value, new_key)
    return docs


@HEAVY
@given(mutated_sets(), st.booleans())
def test_mutated_valid_documents_give_findings_never_an_exception(docs, complete):
    _assert_findings_only(validate_texts([("mutated.yaml", _dump(docs))], complete=complete))


@HEAVY
@given(mutated_sets())
def test_mutated_documents_split_over_files_give_findings_never_an_exception(docs):
    texts = [(f"{i:02d}.yaml", _dump([d])) for i, d in enumerate(docs)]
    _assert_findings_only(validate_texts(texts))


@st.composite
def well_shaped_worlds(draw):
    """Documents that pass the per-document checks but relate to each other at random, so the
    cross-document pass (meshes, attachment, ports, references, injection) sees odd combinations."""
    names, namespaces, ports = ["a", "b"], ["n1", "n2"], st.sampled_from([8080, 8088, 9090])
    def labels(min_size=0):
        return st.dictionaries(st.sampled_from(["mesh", "gw", "app", "appmesh.k8s.aws/sidecarInjectorWebhook"]),
                               st.sampled_from(["enabled", "disabled", "x", "y"]), min_size=min_size, max_size=3)
    present = st.one_of(st.just({}), labels().map(lambda m: {"matchLabels": m}),
                        st.builds(lambda k, op: {"matchExpressions": [{"key": k, "operator": op}]},
                                  st.sampled_from(["mesh", "gw", "app"]), st.sampled_from(["Exists", "DoesNotExist"])))
    selector = st.one_of(st.none(), present)

    def listeners(min_size=0):
        return st.lists(st.builds(lambda p, proto: {"portMapping": {"port": p, "protocol": proto}},
                                  ports, st.sampled_from(["http", "http2", "grpc"])), min_size=min_size, max_size=2)
    ref = st.sampled_from(names).map(lambda n: {"name": n})
    meta = lambda ns: {"name": draw(st.sampled_from(names)), "namespace": ns, "labels": draw(labels())}  # noqa: E731
    docs = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": draw(labels())}}
            for ns in namespaces]
    for name in draw(st.lists(st.sampled_from(["m1", "m2"]), max_size=2, unique=True)):
        docs.append({"apiVersion": "appmesh.k8s.aws/v1beta2", "kind": "Mesh", "metadata": {"name": name},
                     "spec": {"namespaceSelector": draw(present)}})
    mesh = lambda kind, spec, ns: {"apiVersion": "appmesh.k8s.aws/v1beta2", "kind": kind,  # noqa: E731
                                   "metadata": meta(ns), "spec": {k: v for k, v in spec.items() if v is not None}}
    for _ in range(draw(st.integers(0, 8))):
        ns = draw(st.sampled_from(namespaces))
        kind = draw(st.sampled_from(["VirtualGateway", "GatewayRoute", "VirtualService", "VirtualNode",
                                     "VirtualRouter", "Deployment"]))
        if kind == "VirtualGateway":
            docs.append(mesh(kind, {"namespaceSelector": draw(present),
                                    "podSelector": draw(present),
                                    "gatewayRouteSelector": draw(selector), "listeners": draw(listeners())}, ns))
        elif kind == "GatewayRoute":
            rtype = draw(st.sampled_from(["httpRoute", "http2Route", "grpcRoute"]))
            match = {"serviceName": "svc"} if rtype == "grpcRoute" else {"prefix": "/"}
            match["port"] = draw(st.one_of(st.none(), ports))
            target = {"virtualService": {"virtualServiceRef": draw(ref)}, "port": draw(st.one_of(st.none(), ports))}
            docs.append(mesh(kind, {rtype: {"match": {k: v for k, v in match.items() if v is not None},
                                            "action": {"target": {k: v for k, v in target.items() if v is not None}}},
                                    "priority": draw(st.one_of(st.none(), st.integers(0, 3)))}, ns))
        elif kind == "VirtualService":
            provider = draw(st.sampled_from([None, "virtualNode", "virtualRouter"]))
            docs.append(mesh(kind, {"provider": {provider: {f"{provider}Ref": draw(ref)}} if provider else None}, ns))
        elif kind == "VirtualNode":
            ls = draw(listeners())
            docs.append(mesh(kind, {"podSelector": draw(selector), "listeners": ls,
                                    "serviceDiscovery": {"dns": {"hostname": "h.local"}} if ls else None,
                                    "backends": [{"virtualService": {"virtualServiceRef": draw(ref)}}]}, ns))
        elif kind == "VirtualRouter":
            target = {"virtualNodeRef": draw(ref), "weight": 1, "port": draw(st.one_of(st.none(), ports))}
            docs.append(mesh(kind, {"listeners": draw(listeners(min_size=1)), "routes": [
                {"name": "r", "httpRoute": {"match": {"prefix": "/", **draw(st.one_of(st.just({}),
                                                                                      ports.map(lambda p: {"port": p})))},
                                            "action": {"weightedTargets": [
                                                {k: v for k, v in target.items() if v is not None}]}}}]}, ns))
        else:
            pod_labels = draw(labels(min_size=1))
            docs.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": ns},
                         "spec": {"selector": {"matchLabels": pod_labels}, "template": {
                             "metadata": {"labels": pod_labels, "annotations": draw(labels())},
                             "spec": {"containers": [{"name": draw(st.sampled_from(["envoy", "app"])),
                                                      "image": "i"}]}}}})
    return docs


@HEAVY
@given(well_shaped_worlds(), st.booleans())
def test_well_shaped_documents_in_odd_combinations_give_findings_never_an_exception(docs, complete):
    result = validate_texts([("world.yaml", _dump(docs))], complete=complete)
    _assert_findings_only(result)
    assert not [p for p in result.problems if p.code in ("type", "unknown-field", "yaml")], \
        "the generator should only make well-shaped documents"


# ---- (c) hostile inputs are refused, quickly ---------------------------------------------

def _found_quickly(text, limit=5.0):
    start = time.monotonic()
    result = validate_texts([("hostile.yaml", text)])
    elapsed = time.monotonic() - start
    assert elapsed < limit, f"took {elapsed:.1f}s"
    assert result.errors, "a hostile input must give a finding"
    _assert_findings_only(result)
    return result


def test_billion_laughs_is_found_quickly():
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    result = _found_quickly("\n".join(lines) + "\n")
    assert any(p.code == "too-large" for p in result.errors)


def test_anchor_bomb_inside_a_real_kind_is_found_quickly():
    bomb = ["apiVersion: appmesh.k8s.aws/v1beta2", "kind: GatewayRoute", "metadata: {name: x, namespace: shop}",
            "x0: &x0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8}"]
    for i in range(1, 8):
        bomb.append(f"x{i}: &x{i} [" + ", ".join([f"*x{i - 1}"] * 8) + "]")
    result = _found_quickly("\n".join(bomb) + "\n")
    assert any(p.code == "too-large" for p in result.errors)


@pytest.mark.parametrize("kind", ["mapping", "list"])
def test_a_hundred_levels_of_nesting_are_refused(kind):
    text = "a: " + "{a: " * 100 + "1" + "}" * 100 if kind == "mapping" else "[" * 100 + "]" * 100
    result = _found_quickly(text + "\n")
    assert any(p.code == "too-large" for p in result.errors)


def test_a_hundred_levels_of_block_nesting_are_refused():
    text = "".join("  " * i + f"k{i}:\n" for i in range(100)) + "  " * 100 + "end\n"
    result = _found_quickly(text)
    assert any(p.code == "too-large" for p in result.errors)


def test_a_five_mib_string_is_refused():
    text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n  labels:\n    big: \"" + "x" * (5 << 20) + "\"\n"
    assert len(text) > MAX_BYTES
    result = _found_quickly(text)
    assert [p.code for p in result.errors] == ["too-large"]


def test_a_file_one_byte_over_the_limit_is_refused_unread():
    text = "# " + "x" * (MAX_BYTES - 2) + "\n"
    assert len(text.encode()) == MAX_BYTES + 1
    result = _found_quickly(text, limit=1.0)
    assert [(p.code, p.line) for p in result.errors] == [("too-large", 0)]


def test_a_one_mib_string_under_the_limit_is_read_and_checked():
    text = f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {'x' * (1 << 20)}\n"
    result = _found_quickly(text)
    assert [p.path for p in result.errors] == ["metadata.name"]
