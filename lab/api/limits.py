"""Input limits the API checks before anything is read or stored (BadRequestException, nothing stored).

The service model (service.py) already enforces what botocore's model declares: resource names
(ResourceName) 1-255 characters, tag keys 1-128 and values 0-256 characters, at most 50 tags, …
This module adds what App Mesh documents but the model does not declare, and what the lab needs
so that distinct resources never share an ARN:

  clientToken     "Up to 36 letters, numbers, hyphens, and underscores are allowed" (App Mesh API
                  reference, every Create/Update operation). The model types it as a bare string,
                  so a 10 MB token used to be stored three times over.
  resource names  every name of a resource or of a referenced one (meshName, virtualNodeName, …,
                  and virtualServiceName, which the model types as an unbounded ServiceName): 1-255
                  characters, as App Mesh documents for names; and, the lab's choice where App Mesh
                  documents nothing, no `/` and no control characters. `/` separates the parts of an
                  ARN, so a mesh called `a/virtualNode/b` would have had the ARN of virtual node `b`
                  of mesh `a` (arn:aws:appmesh:…:mesh/a/virtualNode/b), and describing either by ARN
                  found the other; control characters would reach terminals through `get`/`describe`.
"""
from __future__ import annotations

import re

from .errors import BadRequest
from .service import SHAPES

NAME_MAX = 255
CLIENT_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,36}")
_FORBIDDEN_IN_NAMES = re.compile(r"[/\x00-\x1f\x7f-\x9f]")
_NAME_MEMBERS = {"virtualServiceName"}  # ServiceName members that are resource names (not gRPC service names)


def _shown(value: str) -> str:
    text = value if len(value) <= 64 else value[:61] + "..."
    return text.encode("unicode_escape").decode("ascii")


def _names(shape_name: str, value, path: str, out: list, depth: int = 0) -> None:
    """(path, value) of every resource-name member in `value`, walked by its shape."""
    if depth > 64:
        return
    sh = SHAPES[shape_name]
    if sh["type"] == "structure" and isinstance(value, dict):
        for key, member in sh.get("members", {}).items():
            if key not in value:
                continue
            where = f"{path}.{key}" if path else key
            if member["shape"] == "ResourceName" or (member["shape"] == "ServiceName" and key in _NAME_MEMBERS):
                out.append((where, value[key]))
            else:
                _names(member["shape"], value[key], where, out, depth + 1)
    elif sh["type"] == "list" and isinstance(value, list):
        for i, item in enumerate(value):
            _names(sh["member"]["shape"], item, f"{path}[{i}]", out, depth + 1)


def check(op, params: dict) -> None:
    """Raise BadRequest naming the member when a request breaks one of the limits above."""
    token = params.get("clientToken")
    if token is not None and not (isinstance(token, str) and CLIENT_TOKEN.fullmatch(token)):
        shown = _shown(token) if isinstance(token, str) else type(token).__name__
        raise BadRequest(f"Value '{shown}' at 'clientToken' failed to satisfy constraint: Member must be 1 to 36 "
                         "letters, numbers, hyphens and underscores (leave it out and the SDK makes one)")
    found: list = []
    _names(op.input, params, "", found)
    for where, name in found:
        if not isinstance(name, str):
            continue  # the model's validation reports the type
        if not 1 <= len(name) <= NAME_MAX:
            raise BadRequest(f"Value '{_shown(name)}' at '{where}' failed to satisfy constraint: Member must have "
                             f"length between 1 and {NAME_MAX}")
        bad = _FORBIDDEN_IN_NAMES.search(name)
        if bad:
            what = "'/' (it separates the parts of an ARN)" if bad[0] == "/" else f"the control character {bad[0]!r}"
            raise BadRequest(f"Value '{_shown(name)}' at '{where}' failed to satisfy constraint: Member must not "
                             f"contain {what}; use letters, digits, '-', '_' and '.'")
