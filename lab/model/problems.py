"""Findings: what the validator says about a user's manifests.

A problem is never an exception: every mistake in user input becomes one of these,
with the file, the line, the field path, what is wrong and what to write instead.
"""
from __future__ import annotations

import re
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


# ---- findings in an admission webhook's denial --------------------------------------------
# A cluster's validating webhook answers with text (kubectl prints it after "denied the request:"),
# so each finding is written on a line that carries its code and field path, and read back from
# that text into the same finding the local lab returns: a lesson asserts one thing on every target.

_DENIAL = re.compile(r"^(?P<where>.*?): (?P<severity>error|warning) \[(?P<code>[A-Za-z0-9_.-]+)\] "
                     r"(?P<path>\S+): (?P<message>.*)$")


def denial_line(p: Problem) -> str:
    """One finding as the validating webhook writes it:
    `<file>: error [<code>] <field path>: <message>` and, when there is one, `    hint: <hint>`."""
    text = f"{p.location()}: {p.severity} [{p.code}] {p.path or '(object)'}: {p.message}"
    return text + (f"\n    hint: {p.hint}" if p.hint else "")


def from_denial(text: str, file: str = "<cluster>") -> list[Problem]:
    """The findings in a webhook's denial (as kubectl prints it), in order; [] when the text has
    none in denial_line's form (another admission error, a schema error of the API server)."""
    out: list[Problem] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("hint: ") and out:
            out[-1] = Problem(**{**out[-1].to_dict(), "hint": line[len("hint: "):]})
            continue
        # kubectl prefixes the first line with `Error from server (Forbidden): ... denied the request: `
        m = _DENIAL.match(line.split("denied the request: ", 1)[-1])
        if m:
            path = "" if m["path"] == "(object)" else m["path"]
            out.append(Problem(file=file, line=0, path=path, message=m["message"], code=m["code"],
                               severity=m["severity"]))
    return out
