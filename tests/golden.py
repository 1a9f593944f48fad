"""Golden files: what a test renders, compared with the files committed beside it.

Every golden test takes the `update_golden` fixture (tests/conftest.py). With

    scripts/test.sh tests/translate tests/migrate --update-golden

each folder is written anew from what the code renders now (files no longer rendered are
removed, and so are folders no test renders any more); review the change with `git diff`.
"""
from __future__ import annotations

import shutil
from pathlib import Path

UPDATE_HINT = "review the change, then run with --update-golden"


def check_folder(folder: Path, files: dict[str, str], update: bool, what: str, pattern: str = "*") -> None:
    """Assert that `folder` holds exactly `files` (name -> text) among its files matching
    `pattern`; with `update`, rewrite the folder from `files` first."""
    if update:
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        for name, text in files.items():
            (folder / name).write_text(text)
    on_disk = {p.name: p.read_text() for p in folder.glob(pattern) if p.is_file()} if folder.is_dir() else {}
    assert set(on_disk) == set(files), (
        f"{what}: golden files differ in names (missing {sorted(set(files) - set(on_disk))}, "
        f"extra {sorted(set(on_disk) - set(files))}); {UPDATE_HINT}")
    for name, text in files.items():
        assert on_disk[name] == text, f"{what}/{name} differs from its golden file; {UPDATE_HINT}"


def orphan_folders(root: Path, expected: set[str], update: bool) -> list[str]:
    """The folders under `root` that are not in `expected` (none after removing them, with `update`)."""
    orphans = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in expected) if root.is_dir() else []
    if update:
        for name in orphans:
            shutil.rmtree(root / name)
        return []
    return orphans
