"""Builders for translation tests: one call per input."""
from pathlib import Path

import yaml

from lab.files import read_texts
from lab.model import World, validate_texts
from lab.translate import Placement
from lab.translate import naming

ROOT = Path(__file__).resolve().parents[2]


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data):
        return True


def dump(data) -> str:
    return yaml.dump(data, Dumper=_NoAliases, sort_keys=False, width=120)


def world_from(*paths, texts=None) -> World:
    """The world a user has after applying each folder in turn (`kubectl apply -f DIR`, not
    recursive): a later folder replaces resources of the same name."""
    resources: dict = {}
    batches = [read_texts([ROOT / p], recursive=False) for p in paths] if texts is None else [(texts, [])]
    for batch, problems in batches:
        assert not problems, problems
        result = validate_texts(batch, existing=list(resources.values()))
        assert result.ok, "\n".join(map(str, result.errors))
        resources.update({r.key: r for r in result.resources})
    return World(list(resources.values()))


def world_from_yaml(text: str) -> World:
    return world_from(texts=[("<test>", text)])


def cluster_placement(world: World) -> Placement:
    """A deterministic in-cluster style placement: virtual node i has pod IP 10.0.<i>.1."""
    endpoints = {}
    for i, vn in enumerate(sorted(world.by_kind["VirtualNode"], key=lambda r: r.key)):
        mesh = world.mesh_of(vn)
        if not mesh:
            continue
        nid = naming.node_id(mesh.aws_name(), "virtualNode", vn.aws_name())
        ports = [(lst.get("portMapping") or {}).get("port") for lst in vn.spec.get("listeners") or []]
        endpoints[nid] = {p: [[f"10.0.{i}.1", p]] for p in ports}
    return Placement(bind_address="0.0.0.0", endpoints=endpoints)
