"""Every port-forward the kit tells a user to run on kind uses a local port that kind's own
configuration (manifests/kind/cluster.yaml) does not already bind: `kubectl port-forward
... 8080:80` next to kind's 127.0.0.1:8080 hostPort fails with "address already in use"."""
from __future__ import annotations

import re

import yaml

from tests.conftest import ROOT

FORWARD = re.compile(r"port-forward\s+(?:-n\s+\S+\s+)?(?:svc|service|pod|deploy)/\S+\s+(\d+):(\d+)")


def kind_host_ports() -> set[int]:
    cfg = yaml.safe_load((ROOT / "manifests" / "kind" / "cluster.yaml").read_text())
    return {m["hostPort"] for node in cfg["nodes"] for m in node.get("extraPortMappings") or []}


def documented_forwards() -> list[tuple[str, int]]:
    files = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "manifests").rglob("*.yaml"),
             *(ROOT / "manifests").rglob("*.md"), *(ROOT / "notebooks").glob("[0-9][0-9]-*.py"), *(ROOT / "notebooks").glob("*.ipynb"),
             *(ROOT / "lab").rglob("*.py"), *(ROOT / "scripts").glob("*.sh")]
    out = []
    for f in files:
        for m in FORWARD.finditer(f.read_text(errors="replace")):
            out.append((str(f.relative_to(ROOT)), int(m.group(1))))
    return out


def test_no_documented_port_forward_collides_with_the_ports_kind_binds():
    bound = kind_host_ports()
    assert bound == {8080, 8081, 8082, 8083}
    forwards = documented_forwards()
    assert len(forwards) >= 15  # the walkthrough, every example, the notebooks, the docs
    clashes = [(f, port) for f, port in forwards if port in bound]
    assert clashes == [], f"these port-forwards collide with kind's hostPorts {sorted(bound)}: {clashes}"
