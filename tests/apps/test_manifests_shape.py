"""Shape checks for the manifest library (manifests/walkthrough and manifests/examples).

These need no CRDs and no cluster: every document parses, uses only the API versions the
kit teaches, and carries none of the mistakes the guide's YAML made. The full schema and
semantic validation is the validator's job; this keeps the library honest on its own.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lab.apps import ENVOY_IMAGE, GRPC_ECHO_IMAGE, LOCAL_COMMAND_ANNOTATION, SAMPLE_IMAGE

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
WALKTHROUGH = MANIFESTS / "walkthrough"
EXAMPLES = MANIFESTS / "examples"

ALLOWED_API_VERSIONS = {"appmesh.k8s.aws/v1beta2", "apps/v1", "v1"}
FORBIDDEN_KEYS = {"meshName", "gatewayRouteTarget", "meshRef", "virtualGatewayRef"}
FORBIDDEN_ANNOTATIONS = {
    "appmesh.k8s.aws/mesh",
    "appmesh.k8s.aws/virtualNode",
    "appmesh.k8s.aws/virtualGateway",
    "appmesh.k8s.aws/appPorts",
}
TOPICS = {
    "path-matching",
    "header-query-matching",
    "method-hostname-matching",
    "priority",
    "rewrites",
    "multiple-listeners",
    "canary",
    "blue-green",
    "retries-timeouts",
    "circuit-breaking",
    "tls-gateway",
    "mtls-mesh",
    "access-logging",
    "grpc-gateway-route",
}
WALKTHROUGH_FILES = [
    "00-namespace.yaml",
    "01-mesh.yaml",
    "02-product-service-vn.yaml",
    "03-review-service-vn.yaml",
    "04-product-service-vs.yaml",
    "05-review-service-vs.yaml",
    "06-product-service-app.yaml",
    "07-review-service-app.yaml",
    "08-virtual-gateway.yaml",
    "09-gateway-deployment.yaml",
    "10-product-gateway-route.yaml",
    "11-review-gateway-route.yaml",
]
ROUTE_TYPES = ("httpRoute", "http2Route", "grpcRoute")


def _yaml_files() -> list[Path]:
    files = sorted(WALKTHROUGH.glob("*.yaml")) + sorted(EXAMPLES.rglob("*.yaml"))
    assert files, f"no manifests found under {MANIFESTS}"
    return files


def _docs(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [d for d in yaml.safe_load_all(fh) if d is not None]


def _all_docs(directory: Path, recursive: bool = False) -> list[dict]:
    pattern = directory.rglob if recursive else directory.glob
    return [d for f in sorted(pattern("*.yaml")) for d in _docs(f)]


def _walk(node, path=()):
    """Yield (path, key, value) for every mapping entry in a document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield path, key, value
            yield from _walk(value, path + (key,))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _walk(item, path + (i,))


def _annotations(doc: dict):
    yield from (doc.get("metadata", {}).get("annotations") or {}).items()
    template = (doc.get("spec") or {}).get("template") or {}
    yield from ((template.get("metadata") or {}).get("annotations") or {}).items()


def _rel(path: Path) -> str:
    return str(path.relative_to(MANIFESTS))


FILES = _yaml_files()


@pytest.mark.parametrize("path", FILES, ids=_rel)
def test_every_document_parses_and_is_identified(path):
    docs = _docs(path)
    assert docs, f"{_rel(path)} has no documents"
    for doc in docs:
        assert isinstance(doc, dict), f"{_rel(path)}: a document is not a mapping"
        assert doc.get("apiVersion"), f"{_rel(path)}: a document has no apiVersion"
        assert doc.get("kind"), f"{_rel(path)}: a document has no kind"
        assert (doc.get("metadata") or {}).get("name"), f"{_rel(path)}: {doc['kind']} has no metadata.name"


@pytest.mark.parametrize("path", FILES, ids=_rel)
def test_only_the_api_versions_the_kit_teaches(path):
    for doc in _docs(path):
        assert doc["apiVersion"] in ALLOWED_API_VERSIONS, (
            f"{_rel(path)}: {doc['kind']} {doc['metadata']['name']} uses {doc['apiVersion']}"
        )


@pytest.mark.parametrize("path", FILES, ids=_rel)
def test_none_of_the_guides_mistakes(path):
    for doc in _docs(path):
        name = f"{_rel(path)}: {doc['kind']} {doc['metadata']['name']}"
        for where, key, _ in _walk(doc):
            assert key not in FORBIDDEN_KEYS, f"{name}: forbidden key {key!r} at {where}"
            if doc["kind"] == "GatewayRoute":
                assert key != "weightedTargets", f"{name}: a GatewayRoute has one target, no weights"
        if doc["kind"] == "GatewayRoute":
            assert "http" not in doc["spec"], f"{name}: the route type is httpRoute, not http"
            for route_type in ROUTE_TYPES:
                match = (doc["spec"].get(route_type) or {}).get("match") or {}
                assert "http" not in match, f"{name}: write match.prefix, not match.http.prefix"
        for key, _ in _annotations(doc):
            assert key not in FORBIDDEN_ANNOTATIONS, f"{name}: annotation {key} is not read by App Mesh"


@pytest.mark.parametrize("path", FILES, ids=_rel)
def test_app_mesh_resources_are_scoped_correctly(path):
    for doc in _docs(path):
        if doc["apiVersion"] != "appmesh.k8s.aws/v1beta2":
            continue
        namespace = doc["metadata"].get("namespace")
        if doc["kind"] == "Mesh":
            assert namespace is None, f"{_rel(path)}: a Mesh is cluster-scoped"
            assert "namespaceSelector" in doc["spec"], f"{_rel(path)}: a Mesh without namespaceSelector selects nothing"
        else:
            assert namespace, f"{_rel(path)}: {doc['kind']} {doc['metadata']['name']} needs a namespace"


@pytest.mark.parametrize("path", FILES, ids=_rel)
def test_gateway_routes_have_one_route_with_match_and_target(path):
    for doc in _docs(path):
        if doc["kind"] != "GatewayRoute":
            continue
        name = f"{_rel(path)}: GatewayRoute {doc['metadata']['name']}"
        spec = doc["spec"]
        types = [t for t in ROUTE_TYPES if t in spec]
        assert len(types) == 1, f"{name}: needs exactly one of {ROUTE_TYPES}, has {types}"
        route = spec[types[0]]
        assert "match" in route and "action" in route, f"{name}: match and action are required"
        ref = route["action"]["target"]["virtualService"]["virtualServiceRef"]
        assert ref["name"], name
        if "priority" in spec:
            assert 0 <= spec["priority"] <= 1000, f"{name}: priority is 0-1000"
        for header in route["match"].get("headers", []) + route["match"].get("metadata", []):
            if "match" in header:
                assert len(header["match"]) == 1, f"{name}: header {header['name']} needs one method"


@pytest.mark.parametrize("path", FILES, ids=_rel)
def test_string_matchers_stay_strings(path):
    """YAML 1.1 turns bare on/true/2.0 into booleans and numbers; matchers must be quoted."""
    for doc in _docs(path):
        for where, key, value in _walk(doc):
            if key in {"exact", "prefix", "suffix", "regex", "serviceName"} and not isinstance(value, (list, dict)):
                assert isinstance(value, str), f"{_rel(path)}: {key} at {where} is {value!r}, not a string"


@pytest.mark.parametrize("path", FILES, ids=_rel)
def test_pods_use_the_kits_images_or_say_how_to_run_locally(path):
    for doc in _docs(path):
        if doc["kind"] != "Deployment":
            continue
        template = doc["spec"]["template"]
        annotations = (template["metadata"].get("annotations") or {})
        assert doc["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
        for container in template["spec"]["containers"]:
            image = container["image"]
            if image not in (SAMPLE_IMAGE, ENVOY_IMAGE, GRPC_ECHO_IMAGE):
                assert LOCAL_COMMAND_ANNOTATION in annotations, (
                    f"{_rel(path)}: {image} needs the {LOCAL_COMMAND_ANNOTATION} annotation"
                )
            if image == ENVOY_IMAGE:
                assert container["name"] == "envoy", f"{_rel(path)}: a gateway's Envoy container must be named envoy"


def test_walkthrough_has_the_guides_steps_in_order():
    assert sorted(p.name for p in WALKTHROUGH.glob("*.yaml")) == WALKTHROUGH_FILES
    docs = _all_docs(WALKTHROUGH)
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {
        ("Namespace", "appmesh-demo"),
        ("Mesh", "my-app-mesh"),
        ("VirtualNode", "product-service-vn"),
        ("VirtualNode", "review-service-vn"),
        ("VirtualService", "product-service"),
        ("VirtualService", "review-service"),
        ("Deployment", "product-service"),
        ("Service", "review-service"),
        ("VirtualGateway", "appmesh-gateway"),
        ("Deployment", "appmesh-gateway"),
        ("Service", "appmesh-gateway"),
        ("GatewayRoute", "product-gateway-route"),
        ("GatewayRoute", "review-gateway-route"),
    } <= kinds
    prefixes = {
        d["metadata"]["name"]: d["spec"]["httpRoute"]["match"]["prefix"]
        for d in docs
        if d["kind"] == "GatewayRoute"
    }
    assert prefixes == {"product-gateway-route": "/products", "review-gateway-route": "/reviews"}


def test_walkthrough_namespace_is_wired_by_labels():
    docs = _all_docs(WALKTHROUGH)
    ns = next(d for d in docs if d["kind"] == "Namespace")
    labels = ns["metadata"]["labels"]
    mesh = next(d for d in docs if d["kind"] == "Mesh")
    vg = next(d for d in docs if d["kind"] == "VirtualGateway")
    assert labels["appmesh.k8s.aws/sidecarInjectorWebhook"] == "enabled"
    assert mesh["spec"]["namespaceSelector"]["matchLabels"].items() <= labels.items()
    assert vg["spec"]["namespaceSelector"]["matchLabels"].items() <= labels.items()
    gateway = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "appmesh-gateway")
    pod_labels = gateway["spec"]["template"]["metadata"]["labels"]
    assert vg["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()


def test_examples_are_exactly_the_documented_topics():
    assert {p.name for p in EXAMPLES.iterdir() if p.is_dir()} == TOPICS


@pytest.mark.parametrize("topic", sorted(TOPICS))
def test_each_example_is_self_contained(topic):
    directory = EXAMPLES / topic
    namespace = f"ex-{topic}"
    docs = _all_docs(directory, recursive=True)
    namespaces = [d for d in docs if d["kind"] == "Namespace"]
    assert [n["metadata"]["name"] for n in namespaces] == [namespace]
    labels = namespaces[0]["metadata"]["labels"]
    assert labels.get("appmesh.k8s.aws/sidecarInjectorWebhook") == "enabled"

    meshes = [d for d in docs if d["kind"] == "Mesh"]
    assert [m["metadata"]["name"] for m in meshes] == [namespace]
    mesh_selector = meshes[0]["spec"]["namespaceSelector"]["matchLabels"]
    assert mesh_selector and mesh_selector.items() <= labels.items()

    gateways = [d for d in docs if d["kind"] == "VirtualGateway"]
    # one gateway; a sub-folder may hold a variant of it (tls-gateway/mutual/), under the same name
    assert len({g["metadata"]["name"] for g in gateways}) == 1 and len(_all_docs(directory)) and \
        sum(d["kind"] == "VirtualGateway" for d in _all_docs(directory)) == 1
    vg_selector = gateways[0]["spec"]["namespaceSelector"]["matchLabels"]
    assert vg_selector and vg_selector.items() <= labels.items()
    assert gateways[0]["spec"]["podSelector"]["matchLabels"]
    for listener in gateways[0]["spec"]["listeners"]:
        assert listener["portMapping"]["protocol"] in {"http", "http2", "grpc"}

    for doc in docs:
        if doc["kind"] not in {"Namespace", "Mesh"}:
            assert doc["metadata"].get("namespace") == namespace, (
                f"{topic}: {doc['kind']} {doc['metadata']['name']} is outside {namespace}"
            )
    assert any(d["kind"] == "GatewayRoute" for d in docs)
    assert any(
        c["name"] == "envoy" and c["image"] == ENVOY_IMAGE
        for d in docs
        if d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"]
    )


def test_examples_do_not_share_selector_labels():
    """Each example's Mesh and VirtualGateway select only their own namespace."""
    namespaces = {}
    selectors = []
    for topic in TOPICS:
        for doc in _all_docs(EXAMPLES / topic, recursive=True):
            if doc["kind"] == "Namespace":
                namespaces[doc["metadata"]["name"]] = doc["metadata"]["labels"]
            if doc["kind"] in {"Mesh", "VirtualGateway"}:
                selectors.append((topic, doc["kind"], doc["spec"]["namespaceSelector"]["matchLabels"]))
    for doc in _all_docs(WALKTHROUGH):
        if doc["kind"] == "Namespace":
            namespaces[doc["metadata"]["name"]] = doc["metadata"]["labels"]
    for topic, kind, selector in selectors:
        selected = [n for n, labels in namespaces.items() if selector.items() <= labels.items()]
        assert selected == [f"ex-{topic}"], f"{topic}: the {kind} selects {selected}"


@pytest.mark.parametrize("topic", sorted(TOPICS))
def test_each_example_readme_says_how_to_apply_it(topic):
    readme = (EXAMPLES / topic / "README.md").read_text(encoding="utf-8")
    assert f"appmesh-lab apply -f manifests/examples/{topic}/" in readme
    assert f"kubectl apply -f manifests/examples/{topic}/" in readme
    assert "## Requests and answers" in readme


def test_index_lists_every_example_and_the_conventions():
    index = (MANIFESTS / "README.md").read_text(encoding="utf-8")
    for topic in TOPICS:
        assert f"examples/{topic}/" in index
    for needle in (SAMPLE_IMAGE, ENVOY_IMAGE, LOCAL_COMMAND_ANNOTATION, "appmesh-lab apply -f", "kubectl apply -f"):
        assert needle in index
