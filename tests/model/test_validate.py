"""The validator's rules, one test each: selectors, attachment, mesh membership, defaults,
line numbers, how one mistake is reported once, and the command line's contract."""
import json
import subprocess
import sys
import textwrap

import pytest

from lab.model import ADMISSION, Problem, Resource, World, load_text, selector_matches, validate_texts
from tests.conftest import ROOT

CLI = [sys.executable, "-m", "lab.cli"]


def y(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def validate(*docs: str, complete: bool = False, name: str = "test.yaml"):
    return validate_texts([(name, "---\n".join(y(d) for d in docs))], complete=complete)


def errors_at(result, path):
    return [p for p in result.errors if p.path == path]


def show(problems) -> str:
    return "\n".join(map(str, problems))


NAMESPACE = """
    apiVersion: v1
    kind: Namespace
    metadata:
      name: {name}
      labels: {labels}
    """


def namespace(name="shop", **labels):
    labels = {"mesh": "shop-mesh", "appmesh.k8s.aws/sidecarInjectorWebhook": "enabled", **labels}
    return NAMESPACE.format(name=name, labels=json.dumps(labels))


MESH = """
    apiVersion: appmesh.k8s.aws/v1beta2
    kind: Mesh
    metadata: {name: shop-mesh}
    spec:
      namespaceSelector: {matchLabels: {mesh: shop-mesh}}
    """


def gateway(name="ingress-gw", ns="shop", namespace_selector="{matchLabels: {gateway: ingress}}",
            route_selector=None, listeners="[{portMapping: {port: 8088, protocol: http}}]"):
    lines = ["apiVersion: appmesh.k8s.aws/v1beta2", "kind: VirtualGateway",
             f"metadata: {{name: {name}, namespace: {ns}}}", "spec:",
             f"  podSelector: {{matchLabels: {{app: {name}}}}}", f"  listeners: {listeners}"]
    if namespace_selector is not None:
        lines.append(f"  namespaceSelector: {namespace_selector}")
    if route_selector is not None:
        lines.append(f"  gatewayRouteSelector: {route_selector}")
    return "\n".join(lines) + "\n"


NODE = """
    apiVersion: appmesh.k8s.aws/v1beta2
    kind: VirtualNode
    metadata: {name: products-v1, namespace: shop}
    spec:
      podSelector: {matchLabels: {app: products}}
      listeners: [{portMapping: {port: 8080, protocol: http}}]
      serviceDiscovery: {dns: {hostname: products.shop.svc.cluster.local}}
    """

SERVICE = """
    apiVersion: appmesh.k8s.aws/v1beta2
    kind: VirtualService
    metadata: {name: products, namespace: shop}
    spec:
      provider: {virtualNode: {virtualNodeRef: {name: products-v1}}}
    """


def route(name="products-route", ns="shop", labels=None, target="products", extra_match=""):
    meta = f"{{name: {name}, namespace: {ns}" + (f", labels: {json.dumps(labels)}" if labels else "") + "}"
    return y(f"""
        apiVersion: appmesh.k8s.aws/v1beta2
        kind: GatewayRoute
        metadata: {meta}
        spec:
          httpRoute:
            match: {{prefix: /products{extra_match}}}
            action:
              target: {{virtualService: {{virtualServiceRef: {{name: {target}}}}}}}
        """)


def world_of(*docs):
    result = validate(*docs)
    assert not result.errors, show(result.errors)
    return World(result.resources), {(r.kind, r.name): r for r in result.resources}


# ---- label selectors ---------------------------------------------------------------------

def test_absent_selector_selects_nothing():
    assert not selector_matches(None, {"a": "b"})
    assert not selector_matches(None, {})


def test_absent_selector_selects_everything_where_absent_means_all():
    assert selector_matches(None, {"a": "b"}, absent_matches=True)


def test_empty_selector_selects_everything():
    assert selector_matches({}, {})
    assert selector_matches({}, {"any": "label"})
    assert selector_matches({"matchLabels": {}, "matchExpressions": []}, {"x": "y"})


def test_match_labels_need_every_label_with_its_value():
    sel = {"matchLabels": {"mesh": "shop", "tier": "edge"}}
    assert selector_matches(sel, {"mesh": "shop", "tier": "edge", "extra": "ok"})
    assert not selector_matches(sel, {"mesh": "shop"})
    assert not selector_matches(sel, {"mesh": "shop", "tier": "core"})


@pytest.mark.parametrize("operator, values, labels, expected", [
    ("In", ["a", "b"], {"k": "a"}, True),
    ("In", ["a", "b"], {"k": "c"}, False),
    ("In", ["a"], {}, False),
    ("NotIn", ["a"], {"k": "b"}, True),
    ("NotIn", ["a"], {"k": "a"}, False),
    ("NotIn", ["a"], {}, True),
    ("Exists", [], {"k": ""}, True),
    ("Exists", [], {"other": "x"}, False),
    ("DoesNotExist", [], {}, True),
    ("DoesNotExist", [], {"k": "x"}, False),
])
def test_match_expressions_follow_kubernetes_semantics(operator, values, labels, expected):
    sel = {"matchExpressions": [{"key": "k", "operator": operator, "values": values}]}
    assert selector_matches(sel, labels) is expected


def test_match_labels_and_expressions_must_both_hold():
    sel = {"matchLabels": {"mesh": "shop"}, "matchExpressions": [{"key": "team", "operator": "Exists"}]}
    assert selector_matches(sel, {"mesh": "shop", "team": "x"})
    assert not selector_matches(sel, {"mesh": "shop"})
    assert not selector_matches(sel, {"team": "x"})


def test_selector_expression_in_without_values_is_an_error():
    r = validate(gateway(namespace_selector="{matchExpressions: [{key: gateway, operator: In}]}"))
    assert errors_at(r, "spec.namespaceSelector.matchExpressions[0].values")


def test_selector_expression_exists_with_values_is_an_error():
    r = validate(gateway(namespace_selector="{matchExpressions: [{key: gateway, operator: Exists, values: [x]}]}"))
    assert errors_at(r, "spec.namespaceSelector.matchExpressions[0].values")


# ---- VirtualGateway selectors and GatewayRoute attachment ---------------------------------

def test_absent_namespace_selector_selects_no_namespace():
    r = validate(gateway(namespace_selector=None))
    (p,) = errors_at(r, "spec.namespaceSelector")
    assert "selects no namespace" in p.message and "no GatewayRoute can ever attach" in p.message


def test_absent_pod_selector_selects_no_pod():
    text = gateway().replace("  podSelector: {matchLabels: {app: ingress-gw}}\n", "")
    r = validate(text)
    (p,) = errors_at(r, "spec.podSelector")
    assert "selects no pod" in p.message


def test_empty_namespace_selector_selects_every_namespace():
    world, res = world_of(namespace("shop"), namespace("admin"), MESH.replace("{matchLabels: {mesh: shop-mesh}}", "{}"),
                          gateway(namespace_selector="{}"), route(ns="shop"), route(ns="admin"))
    for gr in world.by_kind["GatewayRoute"]:
        assert [vg.name for vg in world.gateways_for(gr)] == ["ingress-gw"]


def test_gateway_route_attaches_to_the_gateway_whose_selectors_match():
    world, _ = world_of(
        namespace("shop", gateway="public"), namespace("admin", gateway="internal"),
        MESH.replace("{matchLabels: {mesh: shop-mesh}}", "{}"),
        gateway("public-gw", namespace_selector="{matchLabels: {gateway: public}}"),
        gateway("internal-gw", namespace_selector="{matchLabels: {gateway: internal}}"),
        route("shop-route", ns="shop"), route("admin-route", ns="admin"))
    attached = {gr.name: [vg.name for vg in world.gateways_for(gr)] for gr in world.by_kind["GatewayRoute"]}
    assert attached == {"shop-route": ["public-gw"], "admin-route": ["internal-gw"]}


def test_gateway_route_selector_absent_or_empty_selects_every_route_of_selected_namespaces():
    for selector in (None, "{}"):
        world, _ = world_of(namespace(gateway="ingress"), MESH, gateway(route_selector=selector), route())
        (gr,) = world.by_kind["GatewayRoute"]
        assert [vg.name for vg in world.gateways_for(gr)] == ["ingress-gw"]


def test_gateway_route_selector_picks_routes_by_their_labels():
    r = validate(namespace(gateway="ingress"), MESH, gateway(route_selector="{matchLabels: {exposed: 'true'}}"),
                 NODE, SERVICE, route("public", labels={"exposed": "true"}), route("private"))
    (p,) = r.errors
    assert p.code == "gateway-attachment" and p.doc == 6  # the private route's document


def test_gateway_route_matched_by_no_gateway_is_an_admission_error():
    r = validate(namespace(), MESH, gateway(), NODE, SERVICE, route())  # namespace lacks gateway: ingress
    (p,) = r.errors
    assert p.path == "metadata" and p.code == "gateway-attachment" and p.code in ADMISSION


def test_gateway_route_matched_by_two_gateways_is_an_error_naming_both():
    r = validate(namespace(gateway="ingress"), MESH, gateway("a-gw"), gateway("b-gw"), NODE, SERVICE, route())
    (p,) = r.errors
    assert p.path == "metadata" and "shop/a-gw" in p.message and "shop/b-gw" in p.message


def test_match_port_that_names_no_listener_is_reported_once_without_a_protocol_complaint():
    r = validate(namespace(gateway="ingress"), MESH, gateway(), NODE, SERVICE, route(extra_match=", port: 9999"))
    assert [p.path for p in r.errors] == ["spec.httpRoute.match.port"], show(r.errors)
    assert "use one of 8088" in r.errors[0].hint


def test_route_type_must_match_a_gateway_listener_protocol():
    r = validate(namespace(gateway="ingress"), MESH, gateway(listeners="[{portMapping: {port: 8088, protocol: grpc}}]"),
                 NODE, SERVICE, route())
    (p,) = r.errors
    assert p.path == "spec.httpRoute" and "use grpcRoute" in p.hint and p.code == "protocol"


# ---- mesh membership ------------------------------------------------------------------------

def test_a_namespace_belongs_to_the_mesh_whose_selector_matches_its_labels():
    world, res = world_of(namespace(), MESH, SERVICE)
    assert world.mesh_of(res[("VirtualService", "products")]).name == "shop-mesh"


def test_a_mesh_without_namespace_selector_selects_no_namespace():
    r = validate(y("""
        apiVersion: appmesh.k8s.aws/v1beta2
        kind: Mesh
        metadata: {name: shop-mesh}
        spec: {}
        """))
    (p,) = r.errors
    assert p.path == "spec.namespaceSelector" and "selects no namespace" in p.message


def test_a_namespace_selected_by_two_meshes_is_an_error():
    r = validate(namespace(), MESH, MESH.replace("name: shop-mesh}", "name: other-mesh}"), SERVICE)
    (p,) = r.errors
    assert p.path == "metadata.namespace" and p.code == "mesh-membership" and "other-mesh" in p.message


def test_a_namespace_not_among_the_documents_is_a_warning_when_validating_a_folder():
    r = validate(NODE)
    assert not r.errors
    assert [p.code for p in r.problems] == ["mesh-membership"] and r.problems[0].severity == "warning"


def test_a_cluster_scoped_mesh_with_a_namespace_gets_a_warning():
    r = validate(MESH.replace("name: shop-mesh}", "name: shop-mesh, namespace: shop}"))
    assert not r.errors and r.ok
    (p,) = r.problems
    assert p.severity == "warning" and p.path == "metadata.namespace"


# ---- references --------------------------------------------------------------------------

def test_missing_referent_is_a_warning_when_validating_a_folder_and_an_error_when_complete():
    docs = (namespace(), MESH, SERVICE)  # products-v1 is not among them
    folder = validate(*docs)
    assert not folder.errors
    (w,) = [p for p in folder.problems if p.path == "spec.provider.virtualNode"]
    assert w.severity == "warning"
    complete = validate(*docs, complete=True)
    (e,) = complete.errors
    assert e.path == "spec.provider.virtualNode" and "create the VirtualNode" in e.hint


def test_existing_resources_resolve_references_but_are_not_reported_on():
    store = validate(namespace(gateway="ingress"), MESH, gateway(), NODE, SERVICE).resources
    r = validate_texts([("new.yaml", route())], complete=True, existing=store)
    assert not r.errors, show(r.errors)
    assert all(p.file == "new.yaml" for p in r.problems)


def test_a_reference_by_arn_resolves_by_aws_name():
    by_arn = SERVICE.replace("{virtualNodeRef: {name: products-v1}}",
                             "{virtualNodeARN: 'arn:aws:appmesh:us-west-2:111122223333:mesh/shop-mesh/virtualNode/products-v1_shop'}")
    assert not validate(namespace(), MESH, NODE, by_arn, complete=True).problems


def test_a_resource_defined_twice_is_an_error_on_the_second():
    r = validate(namespace(), MESH, SERVICE, SERVICE)
    (p,) = r.errors
    assert p.path == "metadata.name" and p.doc == 3 and "defined twice" in p.message


# ---- awsName defaults ---------------------------------------------------------------------

@pytest.mark.parametrize("kind, expected", [
    ("Mesh", "products"),
    ("VirtualService", "products.shop"),
    ("VirtualNode", "products_shop"),
    ("VirtualRouter", "products_shop"),
    ("VirtualGateway", "products_shop"),
    ("GatewayRoute", "products_shop"),
])
def test_aws_name_defaults_follow_the_controller(kind, expected):
    ns = None if kind == "Mesh" else "shop"
    assert Resource("appmesh.k8s.aws/v1beta2", kind, "products", ns).aws_name() == expected


def test_a_given_aws_name_wins_and_an_empty_one_counts_as_absent():
    given = Resource("appmesh.k8s.aws/v1beta2", "VirtualService", "products", "shop",
                     spec={"awsName": "products.shop.svc.cluster.local"})
    assert given.aws_name() == "products.shop.svc.cluster.local"
    empty = Resource("appmesh.k8s.aws/v1beta2", "VirtualNode", "products", "shop", spec={"awsName": ""})
    assert empty.aws_name() == "products_shop"


def test_a_document_without_namespace_is_in_default():
    r = validate(route().replace(", namespace: shop", ""))
    (gr,) = r.resources
    assert gr.namespace == "default" and gr.aws_name() == "products-route_default"


# ---- line numbers -----------------------------------------------------------------------

def test_each_field_path_has_the_line_it_is_written_on():
    docs, problems = load_text(y("""
        apiVersion: v1
        kind: Namespace
        metadata:
          name: shop
          labels:
            a: b
        ---
        apiVersion: v1
        kind: Namespace
        metadata:
          name: other
        """), "ns.yaml")
    assert not problems
    first, second = docs
    assert first.line == 1 and first.line_of("metadata.labels.a") == 6
    assert second.line == 8 and second.line_of("metadata.name") == 11 and second.index == 1


def test_a_missing_field_is_reported_at_its_nearest_written_ancestor():
    docs, _ = load_text("a:\n  b:\n    c: 1\n")
    assert docs[0].line_of("a.b.missing.deeper") == 2
    assert docs[0].line_of("nowhere") == 1


def test_list_items_have_their_own_lines():
    docs, _ = load_text("items:\n  - name: a\n  - name: b\n")
    assert docs[0].line_of("items[1].name") == 3


def test_problems_in_a_later_document_carry_its_lines_and_index():
    r = validate(namespace(), route(extra_match=", method: get"))
    (p,) = r.errors
    assert p.doc == 1 and p.line == 12 and p.path == "spec.httpRoute.match.method"


def test_a_duplicate_key_is_reported_at_the_second_occurrence_naming_the_first():
    r = validate_texts([("d.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  name: b\n")])
    (p,) = r.errors
    assert p.line == 5 and p.code == "duplicate-key" and "first at line 4" in p.message


def test_malformed_yaml_is_reported_at_its_line():
    r = validate_texts([("bad.yaml", "a: 1\nb: [1, 2\nc: 3\n")])
    (p,) = r.errors
    assert p.path == "" and p.code == "yaml" and p.line >= 2


def test_a_control_character_is_a_finding_with_its_line_not_an_exception():
    r = validate_texts([("ctl.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: \x1b[31mshop\n")])
    (p,) = r.errors
    assert p.line == 4 and p.code == "yaml" and "U+001B" in p.message


# ---- one mistake, one finding --------------------------------------------------------------

def test_a_misspelt_required_field_is_reported_once_as_unknown():
    r = validate(gateway(listeners="[{portMapping: {port: 8088, protocl: http}}]"))
    assert [(p.path, p.hint) for p in r.errors] == [("spec.listeners[0].portMapping.protocl", "did you mean 'protocol'?")]


def test_a_truly_missing_required_field_is_still_reported_next_to_an_unrelated_unknown_one():
    r = validate(gateway(listeners="[{portMapping: {port: 8088, colour: blue}}]"))
    assert sorted(p.path for p in r.errors) == ["spec.listeners[0].portMapping.colour",
                                               "spec.listeners[0].portMapping.protocol"]


def test_a_misplaced_match_is_not_also_reported_missing_from_the_route():
    r = validate(y("""
        apiVersion: appmesh.k8s.aws/v1beta2
        kind: GatewayRoute
        metadata: {name: r, namespace: shop}
        spec:
          match: {prefix: /products}
          httpRoute:
            action: {target: {virtualService: {virtualServiceRef: {name: products}}}}
        """))
    assert [p.path for p in r.errors] == ["spec.match"]


def test_a_misspelt_spec_is_not_also_reported_as_an_empty_spec():
    r = validate(route().replace("spec:", "sepc:"))
    assert [(p.path, p.hint) for p in r.errors] == [("sepc", "did you mean 'spec'?")]


def test_acm_certificates_are_reported_at_the_tls_certificate():
    r = validate(gateway(listeners="[{portMapping: {port: 8443, protocol: http}, "
                         "tls: {mode: STRICT, certificate: {acm: {certificateARN: 'arn:aws:acm:x'}}}}]"))
    (p,) = r.errors
    assert p.path == "spec.listeners[0].tls.certificate.acm" and p.code == "unsupported"


def test_an_acm_trust_is_refused_where_app_mesh_had_none_and_where_the_lab_cannot_fetch_it():
    """An ACM Private CA trust, on a gateway listener's validation (the upstream CRD has it; App Mesh's
    API VirtualGatewayListenerTlsValidationContextTrust did not) or in a client policy: only AWS could
    fetch those CAs; served, the proxy would hold no CA and verify no certificate (before, the listener
    silently asked for no client certificate at all)."""
    file_cert = "{file: {certificateChain: /etc/appmesh-lab/certs/g/tls.crt, privateKey: /etc/appmesh-lab/certs/g/tls.key}}"
    acm = "{trust: {acm: {certificateAuthorityARNs: ['arn:aws:acm-pca:us-west-2:111122223333:certificate-authority/x']}}}"
    r = validate(gateway(listeners=f"[{{portMapping: {{port: 8443, protocol: http}}, "
                         f"tls: {{mode: STRICT, certificate: {file_cert}, validation: {acm}}}}}]"))
    (p,) = r.errors
    assert p.path == "spec.listeners[0].tls.validation.trust.acm" and p.code == "unsupported", p
    r = validate(gateway() + f"  backendDefaults: {{clientPolicy: {{tls: {{validation: {acm}}}}}}}\n")
    (p,) = r.errors
    assert p.path == "spec.backendDefaults.clientPolicy.tls.validation.trust.acm" and p.code == "unsupported"
    assert "unverified" in p.message and "trust.file" in p.hint
    ok = validate(gateway() + "  backendDefaults: {clientPolicy: {tls: {validation: "
                              "{trust: {file: {certificateChain: /etc/appmesh-lab/certs/ca/ca.crt}}}}}}\n")
    assert not ok.errors, [p.message for p in ok.errors]


def test_tcp_on_a_gateway_listener_is_explained_not_taken_for_a_typo_of_http():
    r = validate(gateway(listeners="[{portMapping: {port: 8088, protocol: tcp}}]"))
    (p,) = r.errors
    assert "did you mean" not in p.hint and "cannot take plain tcp" in p.hint


def test_a_malformed_listener_or_backend_list_gives_findings_not_exceptions():
    r = validate(gateway(listeners="[{portMapping: [8088, http], healthCheck: {port: 8088}}]"),
                 NODE.replace("serviceDiscovery:", "backends: [{virtualService: {virtualServiceRef: {name: [a]}}}, "
                              "{virtualService: {virtualServiceARN: {x: 1}}}, 7]\n      serviceDiscovery:"))
    assert r.errors and all(isinstance(p, Problem) for p in r.problems)


# ---- documents the lab passes over, and results --------------------------------------------

def test_kinds_the_lab_passes_over_are_counted_not_checked():
    r = validate("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: x}\nfoo: {a: 1}\n")
    assert not r.problems and r.skipped == {"v1/ServiceAccount": 1} and not r.resources


def test_a_configmap_is_a_kind_the_lab_reads_and_checks():
    # what a Gateway's spec.tls.frontend names (the CA under ca.crt): read, and checked as the API server does
    r = validate("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ca, namespace: ns}\ndata: {ca.crt: x}\n")
    assert not r.problems and [(x.kind, x.namespace, x.name) for x in r.resources] == [("ConfigMap", "ns", "ca")]
    r = validate("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: 1, b/c: x}\nspec: {}\n")
    assert {(p.path, p.line) for p in r.problems} == {("data.a", 4), ("data.b/c", 4), ("spec", 5)}
    assert not r.resources


def test_warnings_alone_leave_the_result_ok():
    r = validate(SERVICE)
    assert r.problems and not r.errors and r.ok


def test_only_documents_without_errors_become_resources():
    r = validate(namespace(), route(extra_match=", method: get"))
    assert [x.kind for x in r.resources] == ["Namespace"]


# ---- the command line -----------------------------------------------------------------------

def _cli(*args, cwd=ROOT):
    return subprocess.run(CLI + list(args), capture_output=True, text=True, cwd=cwd, timeout=60)


@pytest.fixture
def manifests(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("---\n".join(y(d) for d in (namespace(gateway="ingress"), MESH, gateway(), NODE, SERVICE))
                    + "---\n" + route())
    bad = tmp_path / "bad.yaml"
    bad.write_text(route(extra_match=", method: get"))
    return good, bad


def test_cli_exits_0_on_clean_manifests(manifests):
    good, _ = manifests
    run = _cli("validate", str(good))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "OK: 0 error(s)" in run.stdout


def test_cli_exits_1_on_errors_and_prints_file_line_path_and_hint(manifests):
    _, bad = manifests
    run = _cli("validate", str(bad))
    assert run.returncode == 1
    assert str(bad) in run.stdout
    assert "line 6: error: spec.httpRoute.match.method:" in run.stdout
    assert "hint: did you mean 'GET'?" in run.stdout


def test_cli_json_output_has_counts_and_every_problem_field(manifests):
    good, bad = manifests
    run = _cli("validate", str(good), str(bad), "-o", "json")
    assert run.returncode == 1
    report = json.loads(run.stdout)
    assert report["files"] == 2 and report["documents"] == 7 and report["errors"] == 1
    assert report["kinds"]["GatewayRoute"] == 1 and report["kinds"]["VirtualGateway"] == 1
    (p,) = [p for p in report["problems"] if p["severity"] == "error"]
    assert set(p) == {"file", "line", "path", "message", "hint", "code", "severity", "doc"}
    assert (p["path"], p["line"], p["code"], p["doc"]) == ("spec.httpRoute.match.method", 6, "enum", 0)


def test_cli_json_output_of_a_clean_run_is_empty_of_problems(manifests):
    good, _ = manifests
    report = json.loads(_cli("validate", str(good), "-o", "json").stdout)
    assert report["errors"] == 0 and report["warnings"] == 0 and report["problems"] == []


@pytest.mark.parametrize("args", [[], ["validate"], ["validate", "x.yaml", "-o", "xml"], ["frobnicate"],
                                  ["validate", "--no-such-flag", "x.yaml"]])
def test_cli_exits_2_on_a_usage_error(args):
    run = _cli(*args)
    assert run.returncode == 2, (args, run.stdout, run.stderr)


def test_cli_exits_1_when_a_path_does_not_exist(tmp_path):
    run = _cli("validate", str(tmp_path / "missing.yaml"))
    assert run.returncode == 1 and "no such file or folder" in run.stdout


def _walkthrough_with_gateway(containers: list, annotations: dict | None = None) -> list:
    """The walkthrough's texts with the gateway Deployment's containers replaced."""
    import yaml

    from lab.files import read_texts
    texts, _ = read_texts([ROOT / "manifests" / "walkthrough"])
    out = []
    for name, text in texts:
        if name.endswith("09-gateway-deployment.yaml"):
            text = yaml.safe_dump({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "appmesh-gateway", "namespace": "appmesh-demo"},
                "spec": {"selector": {"matchLabels": {"app": "appmesh-gateway"}}, "template": {
                    "metadata": {"labels": {"app": "appmesh-gateway"}, "annotations": annotations or {}},
                    "spec": {"containers": containers}}}})
        out.append((name, text))
    return out


def test_a_gateway_envoy_container_without_image_is_valid_because_the_injector_sets_it():
    """Kubernetes allows a pod template's container without image; App Mesh's injector sets the
    gateway's. The kit says nothing about it (every target: the model is the same)."""
    result = validate_texts(_walkthrough_with_gateway([{"name": "envoy", "ports": [{"containerPort": 8088}]}]),
                            complete=True)
    assert result.errors == [], show(result.errors)


@pytest.mark.parametrize("containers, annotations, path, says", [
    # another container of the gateway pod: nobody sets its image
    ([{"name": "envoy"}, {"name": "helper"}], {}, "spec.template.spec.containers[1].image",
     "only App Mesh's injector fills in an image"),
    # the pod asks the injector to keep the image, and there is none
    ([{"name": "envoy"}], {"appmesh.k8s.aws/virtualGatewaySkipImageOverride": "enabled"},
     "spec.template.spec.containers[0].image", "virtualGatewaySkipImageOverride: enabled tells the injector to keep"),
])
def test_a_container_without_image_that_nobody_fills_in_is_an_error(containers, annotations, path, says):
    result = validate_texts(_walkthrough_with_gateway(containers, annotations), complete=True)
    found = errors_at(result, path)
    assert len(found) == 1 and says in found[0].message and found[0].hint.startswith("add image:"), show(result.errors)
