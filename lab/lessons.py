"""The lessons' sources and their notebooks: Jupytext pairs, kept in sync and executed.

    appmesh-lab lessons sync              write notebooks/NN-*.ipynb from notebooks/NN-*.py
                                          (outputs of cells whose source did not change are kept)
    appmesh-lab lessons check             exit 1 when a pair is out of sync (cells, sources, tags)
    appmesh-lab lessons execute [--only 03,06]
                                          sync, then run the notebooks with papermill on a fresh
                                          local lab (`appmesh-lab e2e`) and save their outputs

Each lesson is one file a writer edits: notebooks/NN-name.py, in Jupytext's percent format
(`# %%` starts a code cell, `# %% [markdown]` a prose cell, `# %% tags=["volatile"]` a tagged
one). notebooks/jupytext.toml pairs it with notebooks/NN-name.ipynb, so JupyterLab with
Jupytext (`appmesh-lab jupyter`) saves both when either is edited; `jupytext --sync` does the
same from a shell. The .ipynb carries the outputs the regression test compares
(tests/notebooks/test_regression.py); `execute` refreshes them.

Tags a cell may carry:
    parameters    papermill's: the values `appmesh-lab e2e -p NAME VALUE` overrides
    volatile      its output changes between runs (timings, counters): the regression test
                  does not compare it
    hide-input    JupyterLab shows the output only (the source stays in the file)
    solution      the answer to an exercise: collapsed in JupyterLab, executed by the suite
"""
from __future__ import annotations

import copy
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
FORMAT = "py:percent"
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
# The kernel's own language_info (with its Python version) is replaced by this on every write, so
# a notebook does not change with the interpreter that last ran it.
LANGUAGE_INFO = {"name": "python", "pygments_lexer": "ipython3", "file_extension": ".py",
                 "mimetype": "text/x-python", "codemirror_mode": {"name": "ipython", "version": 3},
                 "nbconvert_exporter": "python"}
TAGS = ("parameters", "volatile", "hide-input", "solution")


class LessonsError(Exception):
    """A source that cannot be read, or a run that cannot start; the message says what to do."""


def sources(directory: Path = NOTEBOOKS) -> list[Path]:
    """The lessons' sources, in order: notebooks/NN-name.py."""
    return sorted(directory.glob("[0-9][0-9]-*.py"))


def read_source(path: Path):
    """The notebook a source describes (cells, tags and kernelspec; no outputs)."""
    import jupytext
    try:
        return jupytext.read(path, fmt=FORMAT)
    except Exception as exc:  # jupytext's errors name the line; keep them, say which file
        raise LessonsError(f"{path}: cannot read it as a Jupytext percent notebook: {exc}") from exc


def _tags(cell) -> list:
    return list(cell.get("metadata", {}).get("tags", []))


def paired(source: Path, old=None):
    """The .ipynb a source pairs with: its cells and tags, and from `old` (the notebook written
    before) the id, outputs and execution count of every cell whose type and source are
    unchanged."""
    import nbformat
    text = read_source(source)
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": dict(text.metadata.get("kernelspec") or KERNELSPEC),
                   "language_info": copy.deepcopy(LANGUAGE_INFO)}
    before: dict = {}
    for c in (old.cells if old is not None else []):
        before.setdefault((c.cell_type, c.source), []).append(c)
    matched = []
    for cell in text.cells:
        match = before.get((cell.cell_type, cell.source), [])
        matched.append(match.pop(0) if match else None)
    used = {o.get("id") for o in matched if o is not None and o.get("id")}
    for i, (cell, o) in enumerate(zip(text.cells, matched)):
        cid = o.get("id") if o is not None and o.get("id") else None
        if cid is None:   # a new cell: an id no other cell of this notebook has
            cid, n = f"{source.stem[:2]}-{i:02d}", 0
            while cid in used:
                n += 1
                cid = f"{source.stem[:2]}-{i:02d}-{n}"
            used.add(cid)
        if cell.cell_type == "markdown":
            c = nbformat.v4.new_markdown_cell(cell.source, id=cid)
        elif cell.cell_type == "code":
            c = nbformat.v4.new_code_cell(cell.source, id=cid)
            if o is not None and o.cell_type == "code":
                c.outputs, c.execution_count = o.outputs, o.execution_count
        else:
            c = nbformat.v4.new_raw_cell(cell.source, id=cid)
        if _tags(cell):
            c.metadata["tags"] = _tags(cell)
        if cell.metadata.get("jupyter"):   # e.g. an exercise's solution, hidden: {"source_hidden": true}
            c.metadata["jupyter"] = copy.deepcopy(cell.metadata["jupyter"])
        nb.cells.append(c)
    return nb


def comparable(nb) -> list:
    """What makes a pair in sync: the kernelspec, and each cell's type, source, tags and
    `jupyter` metadata (a hidden solution)."""
    return [nb.metadata.get("kernelspec", {}).get("name")] + [
        (c.cell_type, c.source, _tags(c), c.metadata.get("jupyter") or {}) for c in nb.cells]


def _notebook_text(nb) -> str:
    import nbformat
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def sync(directory: Path = NOTEBOOKS, names=None, log=print) -> list[Path]:
    """Write each source's .ipynb (keeping outputs of unchanged cells); returns the notebooks."""
    import nbformat
    written = []
    for src in sources(directory):
        if names and src.stem not in names:
            continue
        path = src.with_suffix(".ipynb")
        old = nbformat.read(path, as_version=4) if path.exists() else None
        text = _notebook_text(paired(src, old))
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            log(f"wrote {path.relative_to(directory.parent) if directory.parent in path.parents else path}")
        written.append(path)
    return written


def out_of_sync(directory: Path = NOTEBOOKS) -> list[str]:
    """One line per pair that differs, per notebook without a source and per source without one."""
    import nbformat
    problems = []
    srcs = sources(directory)
    stems = {s.stem for s in srcs}
    for nbpath in sorted(directory.glob("[0-9][0-9]-*.ipynb")):
        if nbpath.stem not in stems:
            problems.append(f"{nbpath.name}: no source {nbpath.stem}.py next to it")
    for src in srcs:
        path = src.with_suffix(".ipynb")
        if not path.exists():
            problems.append(f"{src.name}: no notebook {path.name} (run: appmesh-lab lessons sync)")
            continue
        committed = nbformat.read(path, as_version=4)
        want, have = comparable(paired(src, committed)), comparable(committed)
        if want != have:
            problems.append(f"{src.name} and {path.name} differ{_first_difference(want, have)} "
                            "(edited the .py: appmesh-lab lessons sync; edited the .ipynb in Jupyter "
                            f"without Jupytext: jupytext --sync notebooks/{path.name})")
    return problems


def _first_difference(want: list, have: list) -> str:
    if want[0] != have[0]:
        return f": kernel {have[0]!r} in the notebook, {want[0]!r} in the source"
    for i, (a, b) in enumerate(zip(want[1:], have[1:])):
        if a != b:
            what = "type" if a[0] != b[0] else "source" if a[1] != b[1] else "tags"
            return f" at cell {i} ({what})"
    return f": {len(want) - 1} cells in the source, {len(have) - 1} in the notebook"


def execute(only: str | None = None, directory: Path = NOTEBOOKS, timeout: float | None = 600,
            log=print) -> int:
    """Sync, run the notebooks with papermill on fresh local labs (`appmesh-lab e2e`: several at
    once; a notebook's outputs do not depend on which lab ran it), and save the outputs of each
    that passed into its .ipynb. Returns the number that failed."""
    import nbformat
    from pytest_notebook.post_processors import coalesce_streams

    from . import e2e
    sync(directory, log=log)
    folder = Path(tempfile.mkdtemp(prefix="appmesh-lessons-"))
    saved = os.environ.get("APPMESH_LAB_HOME")
    os.environ["APPMESH_LAB_HOME"] = str(folder / "lab")
    r = None
    try:
        r = e2e.run("local", {}, only, keep=False, output_dir=str(folder / "runs"), timeout=timeout, log=log,
                    directory=directory)
        for o in r.outcomes:
            if not o.passed:
                log(f"{o.notebook}: not saved ({o.message})")
                continue
            path = directory / f"{o.notebook}.ipynb"
            ran = nbformat.read(r.directory / path.name, as_version=4)
            ran.cells = [c for c in ran.cells if "injected-parameters" not in _tags(c)]
            nb = nbformat.read(path, as_version=4)
            if [(c.cell_type, c.source) for c in ran.cells] != [(c.cell_type, c.source) for c in nb.cells]:
                raise LessonsError(f"{path.name} changed while it ran: run `appmesh-lab lessons execute` again")
            for c, done in zip(nb.cells, ran.cells):
                if c.cell_type == "code":
                    c.outputs, c.execution_count = done.outputs, done.execution_count
            nb, _ = coalesce_streams(nb, {})
            path.write_text(_notebook_text(nb))
            log(f"saved the outputs of {path.name}")
        return len(r.failed) + (0 if r.outcomes else 1)
    finally:
        if saved is None:
            os.environ.pop("APPMESH_LAB_HOME", None)
        else:
            os.environ["APPMESH_LAB_HOME"] = saved
        if r is not None and r.failed:   # the report printed above names the failing cell: keep it
            log(f"kept the run of the failed notebooks (report.html, the executed notebooks, the lab's logs): {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


# ---- CLI -------------------------------------------------------------------------------------

def cmd_lessons(args) -> int:
    from .e2e import E2EError
    try:
        if args.action == "sync":
            paths = sync()
            print(f"{len(paths)} notebooks in sync with their sources")
            return 0
        if args.action == "check":
            problems = out_of_sync()
            for p in problems:
                print(f"appmesh-lab lessons check: {p}", file=sys.stderr)
            if not problems:
                print(f"{len(sources())} lessons: every notebook matches its source")
            return 1 if problems else 0
        failed = execute(args.only, timeout=args.timeout)
        return 1 if failed else 0
    except (LessonsError, E2EError) as exc:
        print(f"appmesh-lab lessons: {exc}", file=sys.stderr)
        return 2


def add_lessons_parser(sub) -> None:
    p = sub.add_parser("lessons", help="keep the lessons' sources (notebooks/NN-*.py) and notebooks in sync; "
                       "execute them to refresh their outputs",
                       description="Each lesson is notebooks/NN-name.py (Jupytext percent format), paired with "
                       "notebooks/NN-name.ipynb. sync writes the notebooks from the sources (keeping outputs of "
                       "unchanged cells); check exits 1 when a pair is out of sync; execute syncs, runs the "
                       "notebooks with papermill on a fresh local lab and saves their outputs.")
    p.add_argument("action", choices=("sync", "check", "execute"))
    p.add_argument("--only", help="execute: comma-separated notebook numbers, e.g. 03,06")
    p.add_argument("--timeout", type=float, default=600, help="execute: seconds a single cell may take")
    p.set_defaults(func=cmd_lessons)
