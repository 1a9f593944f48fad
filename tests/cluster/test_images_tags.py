"""lab.targets.images: the images' content tags (a code change is a new tag, so `helm upgrade`
rolls the pods) and the platform EKS images are built for."""
from __future__ import annotations

import shutil

import pytest

from lab.targets.images import content_tag, copy_sources, eks_platform, main
from tests.conftest import ROOT


def test_copy_sources_are_what_copy_and_add_take_from_the_context():
    text = (ROOT / "lab" / "controller" / "Dockerfile").read_text()
    assert copy_sources(text) == ["lab/controller/requirements.txt", "pyproject.toml", "README.md", "lab"]
    assert copy_sources("FROM x AS b\nCOPY --from=b /a /b\nCOPY --chown=1:1 a \\\n  b /dst/\nADD c.tar /\n") == \
        ["a", "b", "c.tar"]


@pytest.fixture
def context(tmp_path):
    ctx = tmp_path / "ctx"
    shutil.copytree(ROOT / "lab" / "controller" / "proxy_init", ctx)
    (ctx / "unrelated.txt").write_text("not copied by the Dockerfile\n")
    return ctx


def test_a_change_to_a_copied_file_is_a_new_tag_and_nothing_else_is(context):
    dockerfile = context / "Dockerfile"
    first = content_tag(dockerfile, context, "0.1.0")
    assert first.startswith("0.1.0-") and len(first) == len("0.1.0-") + 12
    assert content_tag(dockerfile, context, "0.1.0") == first  # stable
    (context / "unrelated.txt").write_text("changed\n")
    (context / "__pycache__").mkdir()
    (context / "__pycache__" / "x.pyc").write_bytes(b"\0")
    assert content_tag(dockerfile, context, "0.1.0") == first
    copied = next(p for p in copy_sources(dockerfile.read_text()) if (context / p).is_file())
    (context / copied).write_text((context / copied).read_text() + "\n# changed\n")
    second = content_tag(dockerfile, context, "0.1.0")
    assert second != first
    assert content_tag(dockerfile, context, "0.1.0", "linux/arm64") != second  # another platform, another image
    dockerfile.write_text(dockerfile.read_text() + "\nLABEL x=y\n")
    assert content_tag(dockerfile, context, "0.1.0") != second


def test_a_copy_source_that_does_not_exist_is_one_line_naming_it(context, capsys):
    (context / "Dockerfile").write_text("FROM alpine\nCOPY missing.sh /x\n")
    assert main(["tag", "--dockerfile", str(context / "Dockerfile"), "--context", str(context)]) == 1
    assert "COPY source missing.sh does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("types, platform", [
    (["m5.large"], "linux/amd64"),
    (["m6g.large"], "linux/arm64"),
    (["c7gn.xlarge", "t4g.medium"], "linux/arm64"),
    (["m5.large", "m7g.large"], "linux/amd64"),  # a mix: amd64, and stderr says how to build both
])
def test_the_eks_platform_follows_the_node_groups_instance_types(types, platform):
    config = "managedNodeGroups:\n" + "".join(f"  - name: g{i}\n    instanceType: {t}\n" for i, t in enumerate(types))
    assert eks_platform(config) == platform


def test_the_kits_eks_cluster_runs_amd64_nodes():
    assert eks_platform((ROOT / "manifests" / "eks" / "cluster.yaml").read_text()) == "linux/amd64"
