"""Golden files for both translation stages, for every manifest set the kit ships.

    scripts/test.sh tests/translate --update-golden    # regenerate (removes orphans), then review the diff

testdata/<set>/<proxy>.ir.yaml       stage one: the per-proxy intermediate representation
testdata/<set>/<proxy>.envoy.yaml    stage two: clusters, endpoints, listeners, routes
"""
import shutil

import pytest

from lab.translate import translate

from .helpers import ROOT, cluster_placement, dump, world_from

TESTDATA = ROOT / "tests" / "translate" / "testdata"


def manifest_sets():
    sets = ["walkthrough"] if (ROOT / "manifests" / "walkthrough").is_dir() else []
    examples = ROOT / "manifests" / "examples"
    if examples.is_dir():
        for p in sorted(examples.iterdir()):
            if p.is_dir():
                sets.append(f"examples/{p.name}")
                # a subfolder is a later step, applied on top of its parent (e.g. blue-green/switch)
                sets += [f"examples/{p.name}/{q.name}" for q in sorted(p.iterdir()) if q.is_dir()]
    return sets


def _file_name(node_id: str) -> str:
    _, kind, name = node_id.split("/")[1:4]
    return f"{kind}.{name}"


def render(set_name: str) -> dict:
    parts = set_name.split("/")
    world = world_from(*["manifests/" + "/".join(parts[:i]) for i in range(2 if parts[0] == "examples" else 1,
                                                                            len(parts) + 1)])
    out = {}
    for nid, t in translate(world, cluster_placement(world)).items():
        base = _file_name(nid)
        out[f"{base}.ir.yaml"] = dump(t["ir"])
        out[f"{base}.envoy.yaml"] = dump(t["envoy"])
    return out


@pytest.mark.parametrize("set_name", manifest_sets())
def test_translation_matches_golden(set_name, update_golden):
    files = render(set_name)
    assert files, f"{set_name} produces no proxy at all"
    d = TESTDATA / set_name.replace("/", "__")
    if update_golden:
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        for name, text in files.items():
            (d / name).write_text(text)
    on_disk = {p.name: p.read_text() for p in d.glob("*.yaml")} if d.is_dir() else {}
    assert set(on_disk) == set(files), f"{set_name}: golden files differ in names; run with --update-golden"
    for name, text in files.items():
        assert on_disk[name] == text, f"{set_name}/{name} differs from its golden; review, then --update-golden"


def test_every_manifest_set_has_goldens_and_there_are_no_orphans(update_golden):
    sets = manifest_sets()
    assert "walkthrough" in sets
    expected = {s.replace("/", "__") for s in sets}
    if update_golden:
        for d in TESTDATA.iterdir() if TESTDATA.is_dir() else []:
            if d.name not in expected:
                shutil.rmtree(d)
    present = {d.name for d in TESTDATA.iterdir()} if TESTDATA.is_dir() else set()
    assert present == expected, f"missing {expected - present}, orphaned {present - expected}: run with --update-golden"
