"""Showing manifests, YAML and tables in a notebook."""
from __future__ import annotations

from pathlib import Path

from .common import NotebookError, ROOT, tidy


# ---- showing manifests and tables --------------------------------------------------------

def _display(obj) -> None:
    try:
        from IPython.display import display
        display(obj)
    except ImportError:  # plain Python: print the text form
        print(getattr(obj, "data", obj))


def _rel(path) -> str:
    p = Path(path)
    p = p if p.is_absolute() else ROOT / p
    try:
        return str(p.resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


def show(path, lang: str | None = None) -> None:
    """Display a manifest (or any text file) as a highlighted Markdown code block."""
    p = Path(path)
    p = p if p.is_absolute() or p.exists() else ROOT / p
    if not p.is_file():
        raise NotebookError(f"no file {path} (paths are relative to the kit's checkout, e.g. manifests/walkthrough/...)")
    show_text(p.read_text(), title=_rel(p), lang=lang or ("yaml" if p.suffix in (".yaml", ".yml") else ""))


def show_text(text: str, title: str | None = None, lang: str = "yaml") -> None:
    from IPython.display import Markdown
    text = tidy(text)
    fence = "````" if "```" in text else "```"
    head = f"**`{title}`**\n\n" if title else ""
    _display(Markdown(f"{head}{fence}{lang}\n{text.rstrip()}\n{fence}"))


def table(rows: list, headers: list) -> None:
    """Display rows as a Markdown table."""
    from IPython.display import Markdown

    def cell(v) -> str:
        return tidy(v).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(map(cell, headers)) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
    _display(Markdown("\n".join(lines)))


def show_parameters(**params) -> None:
    table([[k, repr(v)] for k, v in params.items()], ["parameter", "value"])


