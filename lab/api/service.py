"""The wire protocol of App Mesh 2019-01-25, driven by botocore's service model.

The model (`botocore/data/appmesh/2019-01-25/service-2.json`) is data shipped with a declared
dependency (boto3 → botocore); it is loaded once at import and never copied. From it come:

  - routing: each operation's `http.method` and `requestUri` template ({meshName} …) → a regex;
  - request parsing: each input member's location (uri, querystring, header, or the JSON body);
  - validation: required members, types, enums, string lengths, number ranges, list sizes,
    patterns and unions, with AWS-style messages that name the member ("Value … at
    'spec.httpRoute.match.prefix' failed to satisfy constraint: …");
  - responses: output shapes filter what the handlers return to the modelled members, turn
    timestamps into epoch seconds, and unwrap the `payload` member (Describe/Create/… answer with
    the bare `…Data` object, List with `{<items>, nextToken}`).

Nothing here knows about meshes or gateway routes; appmesh.py does.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import unquote

from botocore.loaders import Loader

from .errors import BadRequest, TooManyTags

MODEL = Loader().load_service_model("appmesh", "service-2")
SHAPES: dict = MODEL["shapes"]
API_VERSION = MODEL["metadata"]["apiVersion"]  # 2019-01-25


@dataclass(frozen=True)
class Operation:
    name: str  # CreateGatewayRoute
    method: str  # PUT
    uri: str  # /v20190125/meshes/{meshName}/virtualGateway/{virtualGatewayName}/gatewayRoutes
    pattern: re.Pattern
    input: str  # input shape name
    output: str  # output shape name
    errors: tuple  # error shape names the operation declares
    status: int  # HTTP status of a success (200 for every App Mesh operation)


def _compile(uri: str) -> re.Pattern:
    """`/meshes/{meshName}` → `^/meshes/(?P<meshName>[^/]+)$` ({name+} would be greedy: none in this model)."""
    path = uri.split("?", 1)[0]
    out, pos = "", 0
    for m in re.finditer(r"\{(\w+)(\+?)\}", path):
        out += re.escape(path[pos:m.start()]) + (f"(?P<{m[1]}>.+)" if m[2] else f"(?P<{m[1]}>[^/]+)")
        pos = m.end()
    return re.compile("^" + out + re.escape(path[pos:]) + "$")


OPERATIONS: dict[str, Operation] = {
    name: Operation(name, op["http"]["method"], op["http"]["requestUri"], _compile(op["http"]["requestUri"]),
                    op["input"]["shape"], op["output"]["shape"], tuple(e["shape"] for e in op.get("errors", ())),
                    op["http"].get("responseCode", 200))
    for name, op in MODEL["operations"].items()
}


def match(method: str, path: str) -> tuple[Operation, dict]:
    """The operation a request is for, and its URI parameters (decoded)."""
    allowed = []
    for op in OPERATIONS.values():
        m = op.pattern.match(path)
        if m:
            if op.method == method:
                return op, {k: unquote(v) for k, v in m.groupdict().items()}
            allowed.append(op.method)
    if allowed:
        raise BadRequest(f"{method} is not an App Mesh operation on {path} "
                         f"(this path takes {', '.join(sorted(allowed))})")
    raise BadRequest(f"no App Mesh {API_VERSION} operation answers {method} {path}")


# ---- requests -----------------------------------------------------------------------------

def _scalar_from_text(shape_name: str, text: str, where: str):
    """A querystring or header value, typed by its shape."""
    t = SHAPES[shape_name]["type"]
    if t in ("integer", "long"):
        try:
            return int(text)
        except ValueError:
            raise BadRequest(f"Value '{text}' at '{where}' failed to satisfy constraint: Member must be an integer") \
                from None
    if t == "boolean":
        if text.lower() not in ("true", "false"):
            raise BadRequest(f"Value '{text}' at '{where}' failed to satisfy constraint: Member must be true or false")
        return text.lower() == "true"
    return text


def parse_input(op: Operation, uri_params: dict, query: dict, raw_body: bytes, headers: dict) -> dict:
    """The operation's input as one dict keyed by member name, validated against the model."""
    shape = SHAPES[op.input]
    body: dict = {}
    if raw_body and raw_body.strip():
        try:
            body = json.loads(raw_body)
        except (ValueError, RecursionError) as exc:  # RecursionError: JSON nested thousands deep
            raise BadRequest(f"the request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
    lower_headers = {k.lower(): v for k, v in (headers or {}).items()}
    params: dict = {}
    body_members = set()
    for name, member in shape["members"].items():
        where = member.get("locationName", name)
        loc = member.get("location")
        if loc == "uri":
            if where in uri_params:
                params[name] = _scalar_from_text(member["shape"], uri_params[where], name)
        elif loc == "querystring":
            values = query.get(where) or []
            if SHAPES[member["shape"]]["type"] == "list":
                params[name] = list(values) if values else None
            elif values:
                params[name] = _scalar_from_text(member["shape"], values[0], name)
        elif loc == "header":
            if where.lower() in lower_headers:
                params[name] = _scalar_from_text(member["shape"], lower_headers[where.lower()], name)
        else:
            body_members.add(name)
            if name in body:
                params[name] = body[name]
    unknown = sorted(set(body) - body_members)
    if unknown:
        raise BadRequest(f"unknown member(s) in the {op.name} request body: {', '.join(unknown)} "
                         f"(it takes {', '.join(sorted(body_members)) or 'no body'})")
    params = {k: v for k, v in params.items() if v is not None}
    errors: list = []
    _validate(op.input, params, "", errors, op)
    if errors:
        too_many = [e for e in errors if isinstance(e, TooManyTags)]
        if too_many:
            raise too_many[0]
        shown = "; ".join(str(e) for e in errors[:5])
        raise BadRequest(f"{len(errors)} validation error{'s' if len(errors) > 1 else ''} detected: {shown}")
    return params


def _show(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 64 else text[:61] + "..."


def _at(path: str, key) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _fail(errors: list, value, path: str, constraint: str) -> None:
    shown = "null" if value is None else f"'{_show(value)}'"
    errors.append(f"Value {shown} at '{path}' failed to satisfy constraint: Member must {constraint}")


def _validate(shape_name: str, value, path: str, errors: list, op: Operation) -> None:
    """Check `value` against a shape; append AWS-style messages naming the member to `errors`."""
    sh = SHAPES[shape_name]
    t = sh["type"]
    if t == "structure":
        if not isinstance(value, dict):
            return _fail(errors, value, path, "be an object")
        members = sh.get("members", {})
        for req in sh.get("required", ()):
            if value.get(req) is None:
                _fail(errors, None, _at(path, req), "not be null")
        present = [k for k, v in value.items() if v is not None]
        for k in present:
            if k not in members:
                errors.append(f"Unknown member '{_at(path, k)}' (allowed here: {', '.join(members)})")
            else:
                _validate(members[k]["shape"], value[k], _at(path, k), errors, op)
        if sh.get("union") and len(present) != 1:
            errors.append(f"Value at '{path or shape_name}' failed to satisfy constraint: Member must have exactly one "
                          f"of {', '.join(members)} set (has {len(present)})")
    elif t == "list":
        if not isinstance(value, list):
            return _fail(errors, value, path, "be a list")
        _size(sh, value, path, errors, "length", op, shape_name)
        for i, item in enumerate(value):
            _validate(sh["member"]["shape"], item, _at(path, i), errors, op)
    elif t == "map":
        if not isinstance(value, dict):
            return _fail(errors, value, path, "be a map")
        _size(sh, value, path, errors, "length", op, shape_name)
        for k, v in value.items():
            _validate(sh["key"]["shape"], k, _at(path, k), errors, op)
            _validate(sh["value"]["shape"], v, _at(path, k), errors, op)
    elif t == "string":
        if not isinstance(value, str):
            return _fail(errors, value, path, "be a string")
        _size(sh, value, path, errors, "length", op, shape_name)
        if sh.get("enum") and value not in sh["enum"]:
            _fail(errors, value, path, f"satisfy enum value set: [{', '.join(sh['enum'])}]")
        if sh.get("pattern") and not re.search(sh["pattern"], value):
            _fail(errors, value, path, f"satisfy regular expression pattern: {sh['pattern']}")
    elif t in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            return _fail(errors, value, path, "be an integer")
        if "min" in sh and value < sh["min"]:
            _fail(errors, value, path, f"have value greater than or equal to {sh['min']}")
        if "max" in sh and value > sh["max"]:
            _fail(errors, value, path, f"have value less than or equal to {sh['max']}")
    elif t in ("double", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(errors, value, path, "be a number")
    elif t == "boolean":
        if not isinstance(value, bool):
            _fail(errors, value, path, "be true or false")
    elif t == "timestamp":
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            _fail(errors, value, path, "be a timestamp")


def _size(sh: dict, value, path: str, errors: list, what: str, op: Operation, shape_name: str) -> None:
    if "min" in sh and len(value) < sh["min"]:
        _fail(errors, value, path, f"have {what} greater than or equal to {sh['min']}")
    if "max" in sh and len(value) > sh["max"]:
        if shape_name == "TagList" and "TooManyTagsException" in op.errors:
            # the one size limit the model gives its own error (TagResource)
            errors.append(TooManyTags(f"{len(value)} tags at '{path}': a resource can have at most {sh['max']} tags"))
        else:
            _fail(errors, value, path, f"have {what} less than or equal to {sh['max']}")


# ---- responses ----------------------------------------------------------------------------

def serialize(shape_name: str, value):
    """`value` reduced to what `shape_name` models (unknown keys and None dropped), timestamps as
    epoch seconds. CRD-only fields (podSelector, awsName, …) never reach a client this way."""
    sh = SHAPES[shape_name]
    t = sh["type"]
    if t == "structure":
        if not isinstance(value, dict):
            return None
        out = {}
        for k, m in sh.get("members", {}).items():
            if value.get(k) is not None:
                v = serialize(m["shape"], value[k])
                if v is not None:
                    out[k] = v
        return out
    if t == "list":
        return [serialize(sh["member"]["shape"], x) for x in value] if isinstance(value, list) else None
    if t == "map":
        return {k: serialize(sh["value"]["shape"], v) for k, v in value.items()} if isinstance(value, dict) else None
    if t == "timestamp":
        return float(value)
    return value


def output_body(op: Operation, out: dict) -> dict:
    """The JSON body of a successful answer: the output shape, or its payload member alone."""
    sh = SHAPES[op.output]
    data = serialize(op.output, out) or {}
    if "payload" in sh:
        return data.get(sh["payload"]) or {}
    return data


def page_size(op: Operation) -> int:
    """A List operation's page size without `limit`: the most its `limit` member allows (100; tags 50)."""
    member = SHAPES[op.input]["members"].get("limit")
    return SHAPES[member["shape"]].get("max", 100) if member else 100
