"""Golden files of the lab's Gateway API translation: each manifest set's export, translated.

    scripts/test.sh tests/migrate --update-golden

testdata-ir/<set>/<gateway>.ir.yaml     the gateway IR (lab/translate/gatewayapi.py)
testdata-ir/<set>/<gateway>.envoy.yaml  the Envoy resources made of it (lab/translate/envoy.py)
"""
import pytest

from lab.model import World
from lab.translate import gatewayapi, to_envoy
from tests.golden import check_folder, orphan_folders
from tests.translate.helpers import cluster_placement, dump
from tests.translate.test_golden import manifest_sets

from .test_export import TESTDATA, exported

GOLDEN = TESTDATA.parent / "testdata-ir"


PEM = (b"-----BEGIN CERTIFICATE-----\n(golden)\n-----END CERTIFICATE-----\n",
       b"-----BEGIN PRIVATE KEY-----\n(golden)\n-----END PRIVATE KEY-----\n")


def render(set_name: str) -> dict:
    """The export's Gateway API objects, and the TLS Secrets and CA ConfigMaps its commands make
    (their content does not reach the IR, which names their files only)."""
    ex = exported(set_name)
    secrets = [gatewayapi.tls_secret(s["namespace"], s["name"], *PEM) for s in ex.secrets]
    secrets += [gatewayapi.ca_configmap(c["namespace"], c["name"], PEM[0]) for c in ex.configmaps]
    resources = _app_mesh(set_name) + ex.resources() + secrets
    world = World(resources)
    out = {}
    placement = cluster_placement(world)
    for gw in world.by_kind["Gateway"]:  # whatever its class: the translation itself
        ir = gatewayapi.gateway_ir(world, gw, placement)
        base = ir["node_id"].split("/")[-1]
        out[f"{base}.ir.yaml"] = dump(ir)
        out[f"{base}.envoy.yaml"] = dump(to_envoy(ir))
    return out


def _app_mesh(set_name: str):
    from .test_export import _paths
    from lab.cli.migrate import load
    from tests.conftest import ROOT
    resources = {}
    for p in _paths(set_name):
        rs, _ = load([ROOT / p])
        resources.update({r.key: r for r in rs})
    return list(resources.values())


@pytest.mark.parametrize("set_name", manifest_sets())
def test_gateway_api_translation_matches_golden(set_name, update_golden):
    files = render(set_name)
    assert files, f"{set_name}: the export has no Gateway"
    check_folder(GOLDEN / set_name.replace("/", "__"), files, update_golden, set_name, "*.yaml")


def test_every_ir_golden_folder_belongs_to_a_manifest_set(update_golden):
    want = {s.replace("/", "__") for s in manifest_sets()}
    orphans = orphan_folders(GOLDEN, want, update_golden)
    assert not orphans, f"golden folders without a manifest set: {orphans}; run with --update-golden"
