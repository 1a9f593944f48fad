"""YAML loading that keeps the file and line of every node.

Pure: it takes text, not paths (reading files is the caller's job). Anything wrong with
the text itself — malformed YAML, duplicate keys, a non-mapping document, a file that is
too large, anchors that expand into a huge document — becomes a Problem, never an exception.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field

import yaml
from yaml.constructor import SafeConstructor

from .problems import Problem, join_path

MAX_BYTES = 4 * 1024 * 1024  # a manifest file larger than this is refused
MAX_NODES = 100_000  # nodes after expanding anchors/aliases (YAML bombs stop here)
MAX_DEPTH = 64  # nesting depth
# brackets opened one after another: PyYAML's scanner slows down quadratically on them (seconds for
# a few thousand), so such a text is refused before it is parsed
_DEEP_FLOW = re.compile(r"(?:[\[{][\s,]*){%d}" % (MAX_DEPTH + 1))


@dataclass
class Document:
    """One YAML document of a manifest file, with the line of every field path."""

    data: object
    file: str
    index: int  # position of the document within its file
    line: int  # line where the document starts
    lines: dict = field(default_factory=dict)  # "spec.httpRoute.match" -> line

    def line_of(self, path: str) -> int:
        """The line of the field at `path`, or of its nearest ancestor that exists."""
        p = path
        while p:
            if p in self.lines:
                return self.lines[p]
            # strip the last component: either .key or [n]
            cut = max(p.rfind("."), p.rfind("["))
            p = p[:cut] if cut > 0 else ""
        return self.line


class _TooBig(Exception):
    pass


class _Converter:
    def __init__(self, file: str, doc_index: int):
        self.file = file
        self.doc_index = doc_index
        self.nodes = 0
        self.chars = 0  # scalar characters after expanding aliases
        self.lines: dict[str, int] = {}
        self.problems: list[Problem] = []
        self._scalars = SafeConstructor()

    def convert(self, node, path: str, depth: int):
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _TooBig(f"the document expands to more than {MAX_NODES} nodes")
        if depth > MAX_DEPTH:
            raise _TooBig(f"the document nests deeper than {MAX_DEPTH} levels")
        line = node.start_mark.line + 1
        if path:
            self.lines.setdefault(path, line)
        if isinstance(node, yaml.MappingNode):
            out: dict = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    self.problems.append(Problem(
                        self.file, key_node.start_mark.line + 1, path,
                        "YAML merge keys (<<) are not supported in manifests",
                        "write the fields out in full, so the manifest reads the same in every tool",
                        code="merge-key", doc=self.doc_index))
                    continue
                if not isinstance(key_node, yaml.ScalarNode):
                    self.problems.append(Problem(
                        self.file, key_node.start_mark.line + 1, path,
                        "a mapping key must be a plain string", "use `name: value` pairs",
                        code="bad-key", doc=self.doc_index))
                    continue
                key = self._scalars.construct_scalar(key_node)
                key = str(key)
                child = join_path(path, key)
                if key in out:
                    self.problems.append(Problem(
                        self.file, key_node.start_mark.line + 1, child,
                        f"duplicate key {key!r} (first at line {self.lines.get(child, '?')})",
                        "remove one of them: YAML keeps only the last, which hides the first",
                        code="duplicate-key", doc=self.doc_index))
                out[key] = self.convert(value_node, child, depth + 1)
                self.lines[child] = key_node.start_mark.line + 1
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, join_path(path, i), depth + 1) for i, item in enumerate(node.value)]
        # aliases of a long scalar multiply its size without adding many nodes; no file can hold more
        # scalar text than MAX_BYTES without them
        self.chars += len(node.value)
        if self.chars > MAX_BYTES:
            raise _TooBig(f"the document expands to more than {MAX_BYTES // (1024 * 1024)} MiB of text")
        try:
            return self._scalars.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            self.problems.append(Problem(
                self.file, line, path, f"cannot read this value: {exc}".splitlines()[0],
                "quote it as a string or fix its format", code="bad-scalar", doc=self.doc_index))
            return None


def load_text(text: str, file: str = "<input>") -> tuple[list[Document], list[Problem]]:
    """Parse every document of a multi-document YAML text."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        return [], [Problem(file, 0, "", f"the file is larger than {MAX_BYTES // (1024 * 1024)} MiB",
                            "split it into smaller manifest files", code="too-large")]
    deep = _DEEP_FLOW.search(text)
    if deep:
        return [], [Problem(file, text.count("\n", 0, deep.start()) + 1, "",
                            f"the document nests deeper than {MAX_DEPTH} levels",
                            "manifests are small; this file is not a manifest", code="too-large")]
    if _FAST_LOADER is not None:
        try:
            return _parse(text, file, _FAST_LOADER, raise_errors=True)
        except Exception:  # noqa: BLE001
            # anything libyaml refuses (malformed YAML; a lone surrogate, which it cannot encode to
            # UTF-8 first; ...) is read again by the pure-Python parser, which turns it into the problem
            # the hints are written for — and raises again itself if the fault is not in the text
            pass
    return _parse(text, file, yaml.SafeLoader)


# libyaml's parser (PyYAML's C extension) builds the same nodes, with the same line marks, several
# times faster; where PyYAML was built without it, the pure-Python parser does everything
_FAST_LOADER = getattr(yaml, "CSafeLoader", None) if getattr(yaml, "__with_libyaml__", False) else None


def _parse(text: str, file: str, loader_class, raise_errors: bool = False) -> tuple[list[Document], list[Problem]]:
    """Documents and problems of `text` read with `loader_class`; with raise_errors, a YAML error
    is raised instead of becoming a problem (the caller then reads the text again)."""
    problems: list[Problem] = []
    docs: list[Document] = []
    loader = None
    index = 0
    try:
        loader = loader_class(text)  # raises ReaderError at once for a control character
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            conv = _Converter(file, index)
            start = node.start_mark.line + 1
            try:
                data = conv.convert(node, "", 0)
            except _TooBig as exc:
                problems.append(Problem(file, start, "", str(exc),
                                        "manifests are small; remove anchors that repeat large blocks",
                                        code="too-large", doc=index))
                index += 1
                continue
            problems.extend(conv.problems)
            if data is None:  # an empty document (e.g. a trailing ---)
                index += 1
                continue
            docs.append(Document(data, file, index, start, conv.lines))
            index += 1
    except (yaml.YAMLError, RecursionError):
        if raise_errors:
            raise
        _yaml_problem(sys.exc_info()[1], text, file, index, problems)
    finally:
        if loader is not None:
            loader.dispose()
    return docs, problems


def _yaml_problem(exc, text: str, file: str, index: int, problems: list) -> None:
    """A YAML error as one problem."""
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        problems.append(Problem(file, line, "", f"malformed YAML: the character U+{exc.character:04X} is not "
                                "allowed (a control or invalid character)",
                                "delete it; such characters often come with text pasted from a web page or a terminal",
                                code="yaml", doc=index))
    elif isinstance(exc, yaml.YAMLError):
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark else 0
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        problems.append(Problem(file, line, "", f"malformed YAML: {what}",
                                "check the indentation and quoting around this line",
                                code="yaml", doc=index))
    else:  # RecursionError
        problems.append(Problem(file, 0, "", "the YAML nests too deeply to read",
                                "manifests are small; this file is not a manifest", code="too-large"))
