"""The corpus of wrong manifests: each file holds one mistake, and the validator names it —
at the right field path and line, with a hint that says what to write — and nothing else.

Each file under corpus/ starts with comment lines:

    # mistake: <what is wrong, in a sentence a learner understands>
    # expect-path: <field path of the error; "" for the whole document>
    # expect-hint: <a distinctive part of the hint>
    # expect-line: <line of the error>                       (optional)
    # also-path: <a second path the same mistake is flagged at>   (rare; optional)
    # complete: true     (validate as a complete world: missing referents are errors)

A file may hold several documents when the mistake only shows in context (a Namespace's
labels, a Mesh, a VirtualGateway…); everything but the one mistake is valid.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lab.model import validate_texts
from tests.conftest import ROOT

CORPUS = Path(__file__).parent / "corpus"
FILES = sorted(CORPUS.glob("*.yaml"))
CLI = Path(sys.executable).parent / "appmesh-lab"

# Every mistake of the guide the kit walks (shared/seeds), by the slug of its corpus file.
SEED_MISTAKES = [
    "v1beta1-mesh", "v1beta1-gatewayroute", "v1beta1-virtualnode", "v1beta1-virtualservice",
    "v1beta1-virtualgateway",
    "mesh-spec-meshname", "gatewayroute-spec-meshname", "virtualservice-spec-meshname",
    "gatewayroutetarget-in-action", "gatewayroutetarget-at-spec",
    "match-http-prefix", "spec-match-at-top", "gatewayroute-weightedtargets", "gatewayroute-gatewayname",
    "virtualnode-meshref", "virtualservice-meshref", "virtualgateway-meshref", "gatewayroute-meshref",
    "gatewayroute-virtualgatewayref",
    "annotation-mesh", "annotation-virtualnode", "annotation-virtualgateway", "annotation-appports",
    "virtualgateway-no-namespaceselector", "virtualgateway-no-podselector", "gateway-container-not-envoy",
    "virtualgateway-tls-mutualtls", "virtualgateway-acm-certificatearns",
]

# The other mistakes the corpus must keep covering.
OTHER_MISTAKES = [
    "quoted-listener-port", "listener-port-out-of-range", "priority-above-1000", "weight-negative",
    "healthcheck-interval-too-short", "virtualgateway-tcp-listener", "method-lowercase",
    "portmapping-missing-protocol", "header-two-methods", "header-range-start-not-below-end", "path-regex-invalid",
    "reserved-prefix", "prefix-without-slash", "prefix-and-path", "rewrite-value-no-trailing-slash",
    "rewrite-match-prefix-no-trailing-slash", "rewrite-prefix-with-path-match", "rewrite-defaultprefix-and-value",
    "grpc-match-without-servicename", "virtualservice-two-providers", "virtualrouter-no-listeners",
    "virtualrouter-duplicate-route-names", "retry-policy-without-events", "weights-add-to-zero", "weights-above-100",
    "connection-pool-protocol-mismatch", "virtualnode-listeners-without-servicediscovery",
    "virtualnode-duplicate-backends", "typo-priority", "typo-kind", "deployment-extensions-v1beta1",
    "non-mapping-document", "malformed-yaml", "duplicate-key", "name-upper-case", "name-with-slash",
    # semantic
    "target-port-missing-two-listeners", "match-port-not-on-gateway", "route-namespace-matches-no-gateway",
    "route-matches-two-gateways", "namespace-in-two-meshes", "namespace-in-no-mesh", "httproute-on-grpc-gateway",
    "pod-matches-two-virtualnodes", "injection-enabled-nothing-matches", "virtualservice-provider-missing",
    # Kubernetes' limits on metadata
    "label-value-too-long", "label-value-with-space", "label-key-prefix-upper-case", "label-key-name-too-long",
    "selector-label-value-invalid", "annotations-over-256kib", "annotation-key-with-space", "nodeport-out-of-range",
    "service-name-starts-with-digit", "namespace-name-too-long", "name-too-long", "name-with-escape-sequence",
    "selector-expression-key-invalid", "container-port-name-too-long", "service-port-name-underscore",
    "service-targetport-name-invalid",
    # certificate files stay inside the lab's certificate folder
    "certificate-path-dotdot", "certificate-path-outside-certs",
    # App Mesh's limit on names
    "appmesh-name-too-long",
]


def slug(path: Path) -> str:
    return path.stem.split("-", 1)[1]


def header(path: Path) -> dict:
    """The `# key: value` lines at the top of a corpus file."""
    out = {}
    for line in path.read_text().splitlines():
        if not line.startswith("# "):
            break
        key, _, value = line[2:].partition(":")
        value = value.strip()
        out[key.strip()] = "" if value == '""' else value
    return out


def validate(path: Path, head: dict):
    return validate_texts([(path.name, path.read_text())], complete=head.get("complete") == "true")


def show(problems) -> str:
    return "\n".join(str(p) for p in problems)


@pytest.mark.parametrize("path", FILES, ids=[f.name for f in FILES])
def test_corpus_file_is_reported_at_its_path_with_its_hint(path):
    head = header(path)
    assert {"mistake", "expect-path", "expect-hint"} <= set(head), f"{path.name}: incomplete header {head}"
    expect, hint = head["expect-path"], head["expect-hint"]
    result = validate(path, head)
    hits = [p for p in result.errors if p.path == expect and hint in p.hint]
    assert hits, f"no error at {expect!r} with a hint containing {hint!r}; got:\n{show(result.problems)}"
    if head.get("expect-line"):
        assert int(head["expect-line"]) in [p.line for p in hits], \
            f"expected line {head['expect-line']}, got {[p.line for p in hits]}"
    allowed = {expect} | ({head["also-path"]} if "also-path" in head else set())
    stray = [p for p in result.errors if p.path not in allowed]
    assert not stray, f"one mistake, yet errors elsewhere:\n{show(stray)}"
    if "also-path" in head:
        assert any(p.path == head["also-path"] for p in result.errors), "also-path is no longer flagged: drop it"


def test_every_corpus_file_is_named_number_slug_and_numbers_are_unique():
    numbers = [f.name.split("-", 1)[0] for f in FILES]
    assert all(n.isdigit() and len(n) == 3 for n in numbers), numbers
    assert len(set(numbers)) == len(numbers)
    assert len({slug(f) for f in FILES}) == len(FILES)


def test_corpus_has_at_least_sixty_files():
    assert len(FILES) >= 60


@pytest.mark.parametrize("required", SEED_MISTAKES + OTHER_MISTAKES)
def test_corpus_covers_mistake(required):
    assert required in {slug(f) for f in FILES}, f"no corpus file NNN-{required}.yaml"


def test_corpus_covers_every_seed_mistake_category():
    slugs = {slug(f) for f in FILES}
    assert not [s for s in SEED_MISTAKES if s not in slugs]
    assert len(SEED_MISTAKES) >= 28


# ---- the command line on a few representative files ------------------------------------

REPRESENTATIVE = ["gatewayroutetarget-in-action", "match-http-prefix", "gateway-container-not-envoy"]


def _corpus_file(name: str) -> Path:
    return next(f for f in FILES if slug(f) == name)


def _cli(*args) -> subprocess.CompletedProcess:
    cmd = [str(CLI)] if CLI.exists() else [sys.executable, "-m", "lab.cli"]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, cwd=ROOT, timeout=60)


@pytest.mark.parametrize("name", REPRESENTATIVE)
def test_cli_reports_the_corpus_mistake_and_exits_1(name):
    path = _corpus_file(name)
    head = header(path)
    proc = _cli("validate", str(path))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert head["expect-hint"] in proc.stdout
    assert "FAILED" in proc.stdout


@pytest.mark.parametrize("name", REPRESENTATIVE)
def test_cli_json_output_holds_the_corpus_problem(name):
    path = _corpus_file(name)
    head = header(path)
    proc = _cli("validate", str(path), "-o", "json")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["errors"] >= 1
    assert any(p["path"] == head["expect-path"] and head["expect-hint"] in p["hint"] and p["severity"] == "error"
               and p["line"] == int(head["expect-line"]) for p in report["problems"]), report["problems"]
