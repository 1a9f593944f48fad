"""Reading manifest files and folders from disk (the I/O the model layer leaves to its callers)."""
from __future__ import annotations

from pathlib import Path

from .model.loader import MAX_BYTES
from .model.problems import Problem

SUFFIXES = (".yaml", ".yml")
# folders under a manifest tree that hold something other than manifests
SKIP_DIRS = {"charts", "testdata", "certs", ".git"}


def manifest_files(paths, recursive: bool = True) -> tuple[list[Path], list[Problem]]:
    files, problems = [], []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            for f in sorted(p.rglob("*") if recursive else p.glob("*")):
                rel = f.relative_to(p).parts
                if f.is_file() and f.suffix in SUFFIXES and not (set(rel[:-1]) & SKIP_DIRS):
                    files.append(f)
        elif p.is_file():
            files.append(p)
        else:
            problems.append(Problem(str(raw), 0, "", "no such file or folder", "check the path", "not-found"))
    return files, problems


def read_texts(paths, recursive: bool = True) -> tuple[list[tuple[str, str]], list[Problem]]:
    files, problems = manifest_files(paths, recursive)
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


def folder_groups(texts) -> list[tuple[str, list, list]]:
    """Group (file, text) pairs by folder, the way a user applies them: `kubectl apply -f DIR`
    for a folder, then for each subfolder of it. Returns (folder, own texts, ancestor folders),
    ancestors outermost first, so a subfolder is checked on top of what its parents define."""
    by_dir: dict[str, list] = {}
    for name, text in texts:
        by_dir.setdefault(str(Path(name).parent), []).append((name, text))
    out = []
    for d in sorted(by_dir, key=lambda x: (len(Path(x).parts), x)):
        ancestors = [a for a in sorted(by_dir, key=lambda x: len(Path(x).parts))
                     if a != d and Path(d).is_relative_to(Path(a))]
        out.append((d, by_dir[d], ancestors))
    return out
