"""Where the local lab keeps its state: `.lab/` at the kit's checkout root, or $APPMESH_LAB_HOME."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def _checkout_root(start: Path) -> Path | None:
    for d in [start, *start.parents]:
        if (d / "pyproject.toml").is_file() and (d / "manifests").is_dir() and (d / "lab").is_dir():
            return d
    return None


def lab_home() -> Path:
    env = os.environ.get("APPMESH_LAB_HOME")
    if env:
        return Path(env).expanduser().resolve()
    root = _checkout_root(Path.cwd().resolve())
    return (root or Path.cwd().resolve()) / ".lab"


@dataclass(frozen=True)
class Paths:
    home: Path

    @property
    def db(self) -> Path:
        return self.home / "state.db"

    @property
    def lock(self) -> Path:
        return self.home / "daemon.lock"

    @property
    def daemon_info(self) -> Path:
        return self.home / "daemon.json"

    @property
    def daemon_log(self) -> Path:
        return self.home / "daemon.log"

    @property
    def pods(self) -> Path:
        return self.home / "pods"

    def pod_dir(self, namespace: str, pod: str) -> Path:
        return self.pods / namespace / pod

    def ensure(self) -> "Paths":
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.home, 0o700)  # state is the owner's only
        self.pods.mkdir(exist_ok=True, mode=0o700)  # like everything under the home: the owner's only
        return self
