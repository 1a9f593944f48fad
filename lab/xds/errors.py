"""Exception tree of the xDS layer.

Everything the xDS layer raises on purpose derives from :class:`XdsError`, so
callers can catch one type at the edge. gRPC and protobuf errors are
translated into these before they leave the package.
"""

from __future__ import annotations


class XdsError(Exception):
    """Base class of every error raised by :mod:`lab.xds`."""


class SnapshotError(XdsError):
    """A resource could not be turned into a protobuf message, or is malformed.

    ``kind`` is the resource list it came from (``"clusters"``, ``"routes"``...),
    ``index`` its position there, ``name`` its name when known, and ``detail``
    the parser's message (which names the offending field).
    """

    def __init__(self, kind: str, index: int | None, name: str | None, detail: str):
        self.kind = kind
        self.index = index
        self.name = name
        self.detail = detail
        where = kind if index is None else f"{kind}[{index}]"
        if name:
            where += f" {name!r}"
        super().__init__(f"{where}: {detail}")


class InconsistentSnapshot(XdsError):
    """The snapshot references resources it does not contain.

    ``problems`` is a tuple of human-readable lines; ``missing`` maps a type URL
    to the sorted names that are referenced but absent.
    """

    def __init__(self, version: str, problems: list[str], missing: dict[str, list[str]]):
        self.version = version
        self.problems = tuple(problems)
        self.missing = {k: list(v) for k, v in missing.items()}
        lines = "\n  ".join(self.problems)
        super().__init__(f"snapshot {version!r} is inconsistent:\n  {lines}")


class SnapshotVersionError(XdsError):
    """A snapshot reuses a node's current version string for different content."""


class XdsServerError(XdsError):
    """The xDS gRPC server could not be started or is used in a wrong state."""
