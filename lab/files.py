"""Reading manifest files and folders from disk (the I/O the model layer leaves to its callers)."""
from __future__ import annotations

from pathlib import Path

from .model.loader import MAX_BYTES
from .model.problems import Problem

SUFFIXES = (".yaml", ".yml")
# folders under a manifest tree that hold something other than manifests
SKIP_DIRS = {"charts", "testdata", "certs", ".git"}


def manifest_files(paths) -> tuple[list[Path], list[Problem]]:
    files, problems = [], []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                rel = f.relative_to(p).parts
                if f.is_file() and f.suffix in SUFFIXES and not (set(rel[:-1]) & SKIP_DIRS):
                    files.append(f)
        elif p.is_file():
            files.append(p)
        else:
            problems.append(Problem(str(raw), 0, "", "no such file or folder", "check the path", "not-found"))
    return files, problems


def read_texts(paths) -> tuple[list[tuple[str, str]], list[Problem]]:
    files, problems = manifest_files(paths)
    texts = []
    for f in files:
        try:
            if f.stat().st_size > MAX_BYTES:
                problems.append(Problem(str(f), 0, "", f"the file is larger than {MAX_BYTES // (1024 * 1024)} MiB",
                                        "split it into smaller manifest files", "too-large"))
                continue
            texts.append((str(f), f.read_bytes().decode("utf-8")))
        except UnicodeDecodeError:
            problems.append(Problem(str(f), 0, "", "the file is not UTF-8 text", "save it as UTF-8", "encoding"))
        except OSError as exc:
            problems.append(Problem(str(f), 0, "", f"cannot read the file: {exc.strerror}", "check its permissions",
                                    "io"))
    return texts, problems
