"""The App Mesh v1beta2 model: load manifests, validate them, and generate the CRDs.

No I/O here: callers pass text (see lab/files.py for reading paths).

    result = validate_texts([(path, text), ...])
    result.problems   # findings, never exceptions
    result.resources  # the documents that passed
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .loader import Document, load_text
from .problems import Problem
from .resources import Resource, selector_matches
from .semantics import ADMISSION, World, check_semantics
from .validate import check_document

__all__ = ["Document", "Problem", "Resource", "Result", "World", "ADMISSION", "check_semantics",
           "load_text", "selector_matches", "validate_texts", "validate_documents"]


@dataclass
class Result:
    resources: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    documents: int = 0

    @property
    def errors(self) -> list:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def kinds(self) -> Counter:
        return Counter(r.kind for r in self.resources)


def validate_documents(docs, *, complete: bool = False, existing=(), problems=(), index=None) -> Result:
    """`index`: a SemanticIndex synced with the existing resources (the lab's daemon), used instead
    of `existing` to check the documents against them; the findings are the same."""
    result = Result(problems=list(problems), documents=len(docs))
    for doc in docs:
        r = check_document(doc)
        result.problems += r.problems
        if r.skipped:
            result.skipped[r.skipped] += 1
        elif r.resource is not None:
            result.resources.append(r.resource)
    if index is not None:
        result.problems += index.check(result.resources)
    else:
        result.problems += check_semantics(result.resources, complete=complete, existing=existing)
    result.problems.sort(key=lambda p: (p.file, p.line, p.path))
    return result


def validate_texts(texts, *, complete: bool = False, existing=(), index=None) -> Result:
    """texts: iterable of (file name, text). `index`: see validate_documents."""
    docs, problems = [], []
    for name, text in texts:
        d, p = load_text(text, name)
        docs += d
        problems += p
    return validate_documents(docs, complete=complete, existing=existing, problems=problems, index=index)
