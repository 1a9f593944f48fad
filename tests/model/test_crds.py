"""The committed CRDs are what the model generates, and they accept what the upstream CRDs accept."""

import pytest
import yaml

from lab.model import kinds as K
from lab.model.crds import all_crds, render
from tests.conftest import ROOT, SHARED

UPSTREAM = SHARED / "reference" / "crds"


def test_committed_crds_match_the_model():
    target = ROOT / "manifests" / "crds"
    generated = {name: render(doc) for name, doc in all_crds().items()}
    on_disk = {p.name: p.read_text() for p in target.glob("*.yaml")}
    assert set(on_disk) == set(generated), "run: appmesh-lab crds --write"
    for name, text in generated.items():
        assert on_disk[name] == text, f"{name} is out of date: run appmesh-lab crds --write"


def test_generated_crds_are_structural_with_status_and_columns():
    for name, doc in all_crds().items():
        version = doc["spec"]["versions"][0]
        assert version["subresources"] == {"status": {}}
        assert {c["name"] for c in version["additionalPrinterColumns"]} >= {"ARN", "Age"}
        assert doc["spec"]["names"]["shortNames"]

        def walk(schema, path):
            assert "type" in schema, f"{name}: {path} has no type (not structural)"
            for k, child in (schema.get("properties") or {}).items():
                walk(child, f"{path}.{k}")
            if "items" in schema:
                walk(schema["items"], f"{path}[]")
        walk(version["schema"]["openAPIV3Schema"], "")


def _fields(schema, path=""):
    """path -> (type, enum, required) for every node of an openAPIV3Schema."""
    out = {path: (schema.get("type"), tuple(schema.get("enum") or ()), tuple(sorted(schema.get("required") or ())))}
    if path == ".metadata":
        return out
    for k, child in (schema.get("properties") or {}).items():
        out.update(_fields(child, f"{path}.{k}"))
    if "items" in schema:
        out.update(_fields(schema["items"], f"{path}[]"))
    return out


@pytest.mark.skipif(not UPSTREAM.is_dir(), reason=f"the upstream reference CRDs are not here ({UPSTREAM}): "
                    "this check needs the shared/ folder beside the repository")
@pytest.mark.parametrize("kind", sorted(K.APPMESH_KINDS))
def test_generated_crd_conforms_to_upstream(kind):
    plural = K.APPMESH_KINDS[kind]["plural"]
    upstream = yaml.safe_load((UPSTREAM / f"appmesh.k8s.aws_{plural}.yaml").read_text())
    ours = all_crds()[f"appmesh.k8s.aws_{plural}.yaml"]
    assert upstream["spec"]["scope"] == ours["spec"]["scope"]
    theirs = _fields(upstream["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    mine = _fields(ours["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    missing = sorted(p for p in theirs if p not in mine)
    assert not missing, f"fields of the upstream {kind} CRD missing from ours: {missing}"
    for path, (typ, enum, required) in theirs.items():
        mtyp, menum, mrequired = mine[path]
        assert mtyp == typ, f"{kind} {path}: type {mtyp} != upstream {typ}"
        if enum:  # where upstream declares an enum, ours is the same set (ours may add enums upstream lacks)
            assert set(enum) == set(menum), f"{kind} {path}: enum {menum} != upstream {enum}"
        assert set(required) <= set(mrequired), f"{kind} {path}: required {mrequired} lacks {set(required) - set(mrequired)}"
