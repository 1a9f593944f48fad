"""The lab's Gateway API schema (lab/model/gatewayapi.py) agrees with the upstream v1.6.1 CRDs:
every exported document is accepted by both, and each broken document below is rejected by both,
the lab's finding naming the field."""
from __future__ import annotations

import copy

import pytest
import yaml

from lab.model import validate_texts
from tests.migrate.crds import CRD_DIR, ROOT, validate as upstream

needs_crds = pytest.mark.skipif(not CRD_DIR.is_dir(), reason=f"the upstream Gateway API CRDs are not at {CRD_DIR} "
                                "(../shared beside the repository, or $APPMESH_LAB_SHARED)")

ROUTE = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "r", "namespace": "n"},
         "spec": {"parentRefs": [{"name": "gw"}], "rules": [{
             "matches": [{"path": {"type": "PathPrefix", "value": "/a"}}],
             "backendRefs": [{"name": "svc", "port": 8080}]}]}}
GATEWAY = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "gw", "namespace": "n"},
           "spec": {"gatewayClassName": "c", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}


def _with(doc: dict, path: str, value) -> dict:
    out = copy.deepcopy(doc)
    node = out
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value
    return out


CA_REFS = {"caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "ca"}]}

# (document, the field path the lab's finding names)
BROKEN = [
    (_with(ROUTE, "spec.rules.0.matches.0.path.value", "a"), "spec.rules[0].matches[0].path.value"),
    (_with(ROUTE, "spec.rules.0.matches.0.path.value", "/a//b"), "spec.rules[0].matches[0].path.value"),
    (_with(ROUTE, "spec.rules.0.matches.0.path.type", "Prefix"), "spec.rules[0].matches[0].path.type"),
    (_with(ROUTE, "spec.rules.0.matches.0.method", "FETCH"), "spec.rules[0].matches[0].method"),
    (_with(ROUTE, "spec.rules.0.backendRefs.0", {"name": "svc"}), "spec.rules[0].backendRefs[0].port"),
    (_with(ROUTE, "spec.rules.0.backendRefs.0.weight", -1), "spec.rules[0].backendRefs[0].weight"),
    (_with(ROUTE, "spec.rules.0.filters", [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplaceFullPath"}}}]),
     "spec.rules[0].filters[0].urlRewrite.path.replaceFullPath"),
    (_with(ROUTE, "spec.rules.0.filters", [{"type": "URLRewrite"}]), "spec.rules[0].filters[0].urlRewrite"),
    (_with(ROUTE, "spec.rules.0.timeouts", {"request": "1s", "backendRequest": "2s"}),
     "spec.rules[0].timeouts.backendRequest"),
    (_with(ROUTE, "spec.parentRefs", [{"name": "gw"}, {"name": "gw"}]), "spec.parentRefs[1]"),
    (_with(ROUTE, "spec.hostnames", ["Shop.Example.com"]), "spec.hostnames[0]"),
    (_with(ROUTE, "spec.rules.0.matchs", []), "spec.rules[0].matchs"),
    (_with(GATEWAY, "spec.listeners.0.tls", {"mode": "Terminate", "certificateRefs": [{"name": "s"}]}),
     "spec.listeners[0].tls"),
    (_with(GATEWAY, "spec.listeners", [{"name": "a", "port": 80, "protocol": "HTTP"},
                                       {"name": "a", "port": 81, "protocol": "HTTP"}]), "spec.listeners[1].name"),
    (_with(GATEWAY, "spec.listeners.0.port", 0), "spec.listeners[0].port"),
    (_with(GATEWAY, "spec.listeners", []), "spec.listeners"),
    (_with(GATEWAY, "spec.tls", {"frontend": {"perPort": []}}), "spec.tls.frontend.default"),
    (_with(GATEWAY, "spec.tls", {"frontend": {"default": {"validation": {"caCertificateRefs": []}}}}),
     "spec.tls.frontend.default.validation.caCertificateRefs"),
    (_with(GATEWAY, "spec.tls", {"frontend": {"default": {"validation": dict(CA_REFS, mode="Required")}}}),
     "spec.tls.frontend.default.validation.mode"),
    (_with(GATEWAY, "spec.tls", {"frontend": {"default": {}, "perPort": [{"port": 443, "tls": {"validation": CA_REFS}},
                                                                          {"port": 443, "tls": {}}]}}),
     "spec.tls.frontend.perPort"),
]
GOOD_FRONTEND = _with(GATEWAY, "spec.tls", {"frontend": {"default": {"validation": CA_REFS},
                                                          "perPort": [{"port": 443, "tls": {}}]}})


def _lab_errors(doc: dict) -> list:
    return [p for p in validate_texts([("doc.yaml", yaml.safe_dump(doc))]).problems if p.severity == "error"]


@needs_crds
@pytest.mark.parametrize("i", range(len(BROKEN)))
def test_a_document_the_crds_reject_is_rejected_with_its_field(i):
    doc, path = BROKEN[i]
    assert upstream(doc), f"the upstream CRDs accept {doc}"
    errors = _lab_errors(doc)
    assert errors, f"the lab accepts {doc}"
    assert path in [p.path for p in errors], [str(p) for p in errors]
    assert all(p.hint for p in errors)


@needs_crds
def test_the_good_documents_and_every_export_are_accepted_by_both():
    docs = [ROUTE, GATEWAY, GOOD_FRONTEND]
    for f in sorted((ROOT / "tests/migrate/testdata").glob("*/*.yaml")):
        docs += [d for d in yaml.safe_load_all(f.read_text()) if d]
    assert len(docs) > 40
    for doc in docs:
        assert not upstream(doc), doc
        assert not _lab_errors(doc), (doc, [str(p) for p in _lab_errors(doc)])
