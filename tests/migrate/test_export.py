"""The export to Gateway API: goldens for every manifest set, and validity against the upstream
v1.6.1 standard-channel CRDs (schema and CEL rules, see crds.py).

    scripts/test.sh tests/migrate --update-golden    # regenerate, then review the diff

testdata/<set>/<kind>.yaml   the files `appmesh-lab migrate SET -o DIR` writes
testdata/<set>/findings.txt  the findings it prints
"""

import copy

import pytest
import yaml

from lab.migrate import export
from lab.migrate import render
from lab.cli.migrate import load
from tests.golden import check_folder, orphan_folders
from tests.translate.test_golden import manifest_sets

from . import crds
from .crds import CRD_DIR, ROOT

TESTDATA = ROOT / "tests" / "migrate" / "testdata"
needs_crds = pytest.mark.skipif(not CRD_DIR.is_dir(), reason=f"the upstream Gateway API CRDs are not at {CRD_DIR} "
                                "(../shared beside the repository, or $APPMESH_LAB_SHARED; present in CI)")


def _paths(set_name: str) -> list:
    parts = set_name.split("/")
    return ["manifests/" + "/".join(parts[:i]) for i in range(2 if parts[0] == "examples" else 1, len(parts) + 1)]


def exported(set_name: str, profile: str = "standard"):
    resources = {}
    for p in _paths(set_name):  # each folder applied on top of its parent, as a user does
        rs, problems = load([ROOT / p])
        assert rs is not None, [str(x) for x in problems]
        resources.update({r.key: r for r in rs})
    return export(list(resources.values()), profile)


def _relative(text: str) -> str:
    return text.replace(str(ROOT) + "/", "")


@pytest.mark.parametrize("set_name", manifest_sets())
def test_export_matches_golden(set_name, update_golden):
    ex = exported(set_name)
    files = {n: _relative(t) for n, t in render.files(ex, "standard").items()}
    files["findings.txt"] = "".join(_relative(str(p)) + "\n" for p in ex.findings)
    assert any(n != "findings.txt" for n in files), f"{set_name} exports nothing"
    check_folder(TESTDATA / set_name.replace("/", "__"), files, update_golden, set_name)


@needs_crds
@pytest.mark.parametrize("profile", ["standard", "vpc-lattice", "istio", "envoy-gateway"])
@pytest.mark.parametrize("set_name", manifest_sets())
def test_export_is_valid_against_the_upstream_crds(set_name, profile):
    ex = exported(set_name, profile)
    unchecked: set = set()
    docs = [d for text in render.files(ex, profile).values() for d in yaml.safe_load_all(text)]
    assert len(docs) == len(ex.objects)
    for doc in docs:
        errors = crds.validate(doc, unchecked)
        assert not errors, f"{doc['kind']} {doc['metadata']['name']}: {errors}"
    assert unchecked <= set(crds.NOT_CHECKED), f"CEL rules without a Python equivalent: {unchecked}"


@needs_crds
def test_the_crd_check_rejects_what_an_api_server_rejects():
    ex = exported("walkthrough")
    route = next(o.body for o in ex.objects if o.kind == "HTTPRoute")
    assert crds.validate(route) == []
    bad = yaml.safe_load(yaml.safe_dump(route))
    bad["spec"]["rules"][0]["matches"][0]["path"]["type"] = "Exact"  # ReplacePrefixMatch needs a PathPrefix
    assert any("exactly one PathPrefix match" in e for e in crds.validate(bad))
    bad = yaml.safe_load(yaml.safe_dump(route))
    bad["spec"]["rules"][0]["backendRefs"][0].pop("port")
    assert any("Must have port for Service reference" in e for e in crds.validate(bad))
    bad = yaml.safe_load(yaml.safe_dump(route))
    bad["spec"]["rules"][0]["matches"][0]["path"]["value"] = "/a//b"
    assert any("must not contain '//'" in e for e in crds.validate(bad))
    bad = yaml.safe_load(yaml.safe_dump(route))
    bad["spec"]["rules"][0]["matches"][0]["method"] = "FETCH"  # not in the enum
    assert any("FETCH" in e for e in crds.validate(bad))
    bad = yaml.safe_load(yaml.safe_dump(route))
    bad["spec"]["rules"][0]["retry"] = {"attempts": 2}  # experimental channel only
    assert any("retry" in e for e in crds.validate(bad))
    gw = next(o.body for o in ex.objects if o.kind == "Gateway")
    bad = yaml.safe_load(yaml.safe_dump(gw))
    bad["spec"]["listeners"].append(dict(bad["spec"]["listeners"][0]))
    assert any("Listener name must be unique" in e for e in crds.validate(bad))


@needs_crds
def test_every_cel_rule_of_the_crds_has_a_python_equivalent_or_a_reason():
    import re as _re
    messages = set()
    text = "\n".join(p.read_text() for p in CRD_DIR.glob("*.yaml"))
    for doc in yaml.safe_load_all(text):
        def walk(n):
            if isinstance(n, dict):
                for r in n.get("x-kubernetes-validations") or []:
                    messages.add(r.get("message") or r["rule"])
                for v in n.values():
                    walk(v)
            elif isinstance(n, list):
                for v in n:
                    walk(v)
        walk(doc)
    missing = sorted(m for m in messages if crds.check_for(m) is None and m not in crds.NOT_CHECKED)
    assert not missing, missing
    assert _re  # noqa


@needs_crds
def test_experimental_retries_are_written_only_behind_the_flag():
    standard = exported("examples/retries-timeouts")
    assert not any("retry" in r for o in standard.objects if o.kind == "HTTPRoute" for r in o.body["spec"]["rules"])
    resources = {}
    for p in _paths("examples/retries-timeouts"):
        rs, _ = load([ROOT / p])
        resources.update({r.key: r for r in rs})
    ex = export(list(resources.values()), "standard", experimental=True)
    retries = [r["retry"] for o in ex.objects if o.kind == "HTTPRoute" for r in o.body["spec"]["rules"] if "retry" in r]
    assert retries == [{"codes": [500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511], "attempts": 3}]
    assert {"experimental", "dropped"} <= {f.code for f in ex.findings}  # perRetryTimeout has no field
    # the standard CRDs refuse exactly that field
    errors = [e for o in ex.objects for e in crds.validate(o.body)]
    assert errors and all("retry" in e for e in errors), errors


def test_every_golden_folder_belongs_to_a_manifest_set(update_golden):
    want = {s.replace("/", "__") for s in manifest_sets()}
    orphans = orphan_folders(TESTDATA, want, update_golden)
    assert not orphans, f"golden folders without a manifest set: {orphans}; run with --update-golden"


def _set(set_name: str) -> list:
    resources = {}
    for p in _paths(set_name):
        rs, _ = load([ROOT / p])
        resources.update({r.key: r for r in rs})
    return list(resources.values())


def test_experimental_output_is_valid_against_the_experimental_crds(tmp_path):
    """`--experimental` writes fields of the experimental channel: checked against its v1.6.1 CRDs,
    read from a git clone of kubernetes-sigs/gateway-api (crds.experimental_crds; never copied
    into this repository). Only where such a clone is: CI has none, so this is an extra check."""
    folder, why = crds.experimental_crds(tmp_path)
    if folder is None:
        pytest.skip(why)
    checked = 0
    for set_name in manifest_sets():
        ex = export(_set(set_name), "standard", experimental=True)
        for o in ex.objects:
            unchecked: set = set()
            assert crds.validate(o.body, unchecked, folder) == [], (set_name, o.kind, o.name)
            checked += 1
            assert unchecked <= set(crds.NOT_CHECKED), f"CEL rules without a Python equivalent: {unchecked}"
    assert checked
    # the one experimental field the export writes is in the experimental HTTPRoute, not the standard one
    route = crds.crds(folder)[("gateway.networking.k8s.io/v1", "HTTPRoute")]
    rule = route["properties"]["spec"]["properties"]["rules"]["items"]["properties"]
    assert "retry" in rule
    written = next(o.body for o in export(_set("examples/retries-timeouts"), "standard", experimental=True).objects
                   if o.kind == "HTTPRoute" and any("retry" in r for r in o.body["spec"]["rules"]))
    bad = copy.deepcopy(written)
    next(r for r in bad["spec"]["rules"] if "retry" in r)["retry"]["codes"] = [42]  # not an HTTP error status
    assert any("retry" in e and "42" in e for e in crds.validate(bad, None, folder)), crds.validate(bad, None, folder)


# ---- client certificate validation (listeners[].tls.validation -> Gateway.spec.tls.frontend) ----

def _mutual(tmp_path, edit) -> list:
    """tls-gateway with its mutual/ gateway, the VirtualGateway edited by `edit`."""
    resources = {r.key: r for r in _set("examples/tls-gateway/mutual")}
    docs = list(yaml.safe_load_all((ROOT / "manifests/examples/tls-gateway/mutual/virtual-gateway-mutual-tls.yaml")
                                   .read_text()))
    edit(docs[0])
    (tmp_path / "vg.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
    rs, problems = load([tmp_path / "vg.yaml"])
    assert rs is not None, [str(p) for p in problems]
    resources.update({r.key: r for r in rs})
    return list(resources.values())


@needs_crds
def test_listeners_validating_clients_differently_get_a_frontend_entry_per_port(tmp_path):
    def edit(vg):
        first = vg["spec"]["listeners"][0]
        second = copy.deepcopy(first)
        second["portMapping"]["port"] = 9443
        second["tls"]["validation"] = {"trust": {"file": {"certificateChain": "/etc/appmesh-lab/certs/partners/ca.crt"}},
                                       "subjectAlternativeNames": {"match": {"exact": ["partner.example"]}}}
        vg["spec"]["listeners"].append(second)
    ex = export(_mutual(tmp_path, edit))
    (gw,) = [o.body for o in ex.objects if o.kind == "Gateway"]
    fe = gw["spec"]["tls"]["frontend"]
    ports = [x["port"] for x in gw["spec"]["listeners"]]
    assert fe["default"] == {} and [(p["port"], p["tls"]["validation"]["caCertificateRefs"][0]["name"])
                                    for p in fe["perPort"]] == [(ports[0], "mesh-ca"), (ports[1], "gateway-client-ca")]
    assert "kubectl create configmap gateway-client-ca -n ex-tls-gateway " \
           "--from-file=ca.crt=/etc/appmesh-lab/certs/partners/ca.crt" in ex.commands
    assert [c["name"] for c in ex.configmaps] == ["mesh-ca", "gateway-client-ca"]
    # the subject alternative names have no Gateway API field: a finding at their line
    (san,) = [f for f in ex.findings if "subjectAlternativeNames" in f.path]
    assert san.path == "spec.listeners[1].tls.validation.subjectAlternativeNames" and san.line > 0
    assert not crds.validate(gw)
    gw["spec"]["tls"]["frontend"]["perPort"][1]["port"] = ports[0]  # the CRD refuses a port given twice
    assert any("must be unique" in e for e in crds.validate(gw))


def test_a_profile_without_frontend_validation_keeps_the_finding_and_writes_none():
    ex = exported("examples/tls-gateway/mutual", "vpc-lattice")
    (gw,) = [o.body for o in ex.objects if o.kind == "Gateway"]
    assert "tls" not in gw["spec"] and not ex.configmaps
    (f,) = [f for f in ex.findings if f.path == "spec.listeners[0].tls.validation"]
    assert f.code == "stays-behind" and "IAMAuthPolicy" in f.hint
    assert ex.announced["VirtualGateway ex-tls-gateway/gateway"] == {"client-certificate"}
    assert "VirtualGateway ex-tls-gateway/gateway" not in exported("examples/tls-gateway/mutual").announced
