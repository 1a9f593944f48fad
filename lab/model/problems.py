"""Findings: what the validator says about a user's manifests.

A problem is never an exception: every mistake in user input becomes one of these,
with the file, the line, the field path, what is wrong and what to write instead.
"""
from __future__ import annotations

from dataclasses import dataclass, asdict


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int  # 1-based; 0 when the problem is about the file as a whole
    path: str  # field path such as spec.httpRoute.match.prefix ("" for the document)
    message: str
    hint: str = ""
    code: str = "invalid"  # a short machine-readable reason, e.g. unknown-field, required
    severity: str = "error"  # error | warning
    doc: int = 0  # index of the YAML document within the file (0-based)

    def location(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    def __str__(self) -> str:  # one finding, as the CLI prints it
        where = f"{self.location()}: "
        field = f"{self.path}: " if self.path else ""
        text = f"{where}{self.severity}: {field}{self.message}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text

    def to_dict(self) -> dict:
        return asdict(self)


def join_path(parent: str, key) -> str:
    """Field path notation used in every finding: a.b[0].c"""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else str(key)
