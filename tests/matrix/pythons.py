"""Which CPython interpreters this machine has among those the README promises (3.10 and newer),
and the oldest and newest of them: the version matrix of the test suite (tests/matrix/)."""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

OLDEST_PROMISED = (3, 10)
NEWEST_MINOR = 20   # python3.10 … python3.20 are looked up on PATH
PYENV_GLOB = "~/.pyenv/versions/3.*/bin/python3"
PROBE = "import sys, platform; print(platform.python_implementation(), *sys.version_info[:3])"


@dataclass(frozen=True)
class Python:
    path: str
    version: tuple

    @property
    def name(self) -> str:
        return ".".join(map(str, self.version))


def candidates() -> list[str]:
    """Where interpreters are looked for: pyenv's installs, then python3.X on PATH."""
    found = sorted(glob.glob(os.path.expanduser(PYENV_GLOB)))
    for minor in range(OLDEST_PROMISED[1], NEWEST_MINOR + 1):
        exe = shutil.which(f"python3.{minor}")
        if exe:
            found.append(exe)
    return found


def looked_for() -> str:
    return (f"{PYENV_GLOB} and python3.{OLDEST_PROMISED[1]} … python3.{NEWEST_MINOR} on PATH "
            f"(CPython {OLDEST_PROMISED[0]}.{OLDEST_PROMISED[1]} or newer)")


def probe(path: str, timeout: float = 10.0) -> Python | None:
    """The interpreter at `path`, when it runs and is a CPython the README promises (a pyenv shim
    for a version that is not selected fails, and is passed over)."""
    try:
        out = subprocess.run([path, "-c", PROBE], capture_output=True, text=True, timeout=timeout,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    parts = out.stdout.split()
    if out.returncode != 0 or len(parts) != 4 or parts[0] != "CPython":
        return None
    version = tuple(int(x) for x in parts[1:])
    return Python(path, version) if version[:2] >= OLDEST_PROMISED else None


def available(paths: list[str] | None = None, probe_fn=probe) -> list[Python]:
    """Every usable interpreter, one per version (the first path found for it), oldest first."""
    by_version: dict = {}
    for path in candidates() if paths is None else paths:
        p = probe_fn(path)
        if p is not None and p.version not in by_version:
            by_version[p.version] = p
    return [by_version[v] for v in sorted(by_version)]


def matrix(found: list[Python]) -> list[Python]:
    """The oldest and the newest (one entry when they are the same version, none when none)."""
    if not found:
        return []
    return [found[0]] if len(found) == 1 else [found[0], found[-1]]


def venv_dir(root: Path, python: Python) -> Path:
    return root / f".venv-{python.name}"
