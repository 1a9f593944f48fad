"""A lab a test starts is stopped even when starting it fails half-way (the daemon runs in a session
of its own: left behind, it would outlive the run with parent pid 1)."""
from __future__ import annotations

import pytest

from lab.targets.base import TargetError

from .conftest import processes_in, reachable_parent, start_lab

pytestmark = pytest.mark.envoy


def test_a_lab_whose_setup_fails_after_up_is_stopped(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "route.yaml").write_text("apiVersion: v1\nkind: Service\nmetadata: {name: Bad_Name}\nspec: {}\n")
    parent = reachable_parent()
    with pytest.raises(TargetError, match="apply rejected"):
        start_lab(parent, manifests=bad)
    assert processes_in([parent]) == {}
    assert not parent.exists()
