"""Golden files for both translation stages, for every manifest set the kit ships.

    scripts/test.sh tests/translate --update-golden    # regenerate (removes orphans), then review the diff
    (tests/golden.py: the comparison and the flag, shared with tests/migrate)

testdata/<set>/<proxy>.ir.yaml       stage one: the per-proxy intermediate representation
testdata/<set>/<proxy>.envoy.yaml    stage two: clusters, endpoints, listeners, routes
"""
import pytest

from lab.translate import translate
from tests.golden import check_folder, orphan_folders

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
    check_folder(TESTDATA / set_name.replace("/", "__"), files, update_golden, set_name, "*.yaml")


def test_every_manifest_set_has_goldens_and_there_are_no_orphans(update_golden):
    sets = manifest_sets()
    assert "walkthrough" in sets
    expected = {s.replace("/", "__") for s in sets}
    orphans = orphan_folders(TESTDATA, expected, update_golden)
    present = {d.name for d in TESTDATA.iterdir() if d.is_dir()} if TESTDATA.is_dir() else set()
    assert not orphans and expected <= present, \
        f"missing {expected - present}, orphaned {orphans}: run with --update-golden"
