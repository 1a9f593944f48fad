"""A small schema language for manifests: one definition drives validation and the CRDs.

Each App Mesh kind is described once (kinds.py) with these nodes. `check()` walks a
document against a node and returns findings; `openapi()` emits the structural
openAPIV3Schema that goes into the generated CustomResourceDefinition. Cross-field rules
that the real controller enforced in its admission webhook (exactly one of …, prefix must
start with /, …) are attached to object nodes as `rules` and run in the same walk.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Callable, Optional

from . import limits
from .problems import join_path

# A rule gets the object's value and returns findings as (relative path, message, hint).
Rule = Callable[[dict], list]


@dataclass
class Finding:
    path: str
    message: str
    hint: str = ""
    code: str = "invalid"
    # for a finding that something is missing: the field(s) it is about, relative to the rule's
    # object (absolute once reported), so a misspelt or misplaced field can stand in for them
    about: tuple = ()


def _type_name(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


def _show(value, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class Node:
    description: str = ""

    def check(self, value, path: str, out: list) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def openapi(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def _doc(self, d: dict) -> dict:
        if self.description:
            d["description"] = self.description
        return d


@dataclass
class Str(Node):
    enum: tuple = ()
    min_len: Optional[int] = None
    max_len: Optional[int] = None
    fmt: Optional[str] = None
    # hints for values people write that are no typo of an allowed one (lower-case value -> hint)
    wrong: dict = field(default_factory=dict)

    def check(self, value, path, out):
        if not isinstance(value, str):
            hint = "put the value in quotes" if isinstance(value, (int, float, bool)) else "write a plain string"
            out.append(Finding(path, f"expected a string, got {_type_name(value)} {_show(value)}", hint, "type"))
            return
        if self.enum and value not in self.enum:
            near = difflib.get_close_matches(value, self.enum, n=1, cutoff=0.5) or [
                e for e in self.enum if e.lower() == value.lower()]
            hint = self.wrong.get(value.lower()) or (
                f"did you mean {near[0]!r}?" if near else f"write one of: {', '.join(self.enum)}")
            out.append(Finding(path, f"{_show(value)} is not one of {', '.join(self.enum)}", hint, "enum"))
        if self.min_len is not None and len(value) < self.min_len:
            out.append(Finding(path, f"must be at least {self.min_len} character(s) long",
                               "give a non-empty value or remove the field", "length"))
        if self.max_len is not None and len(value) > self.max_len:
            out.append(Finding(path, f"is {len(value)} characters long; at most {self.max_len} are allowed",
                               "shorten it", "length"))

    def openapi(self):
        d = {"type": "string"}
        if self.enum:
            d["enum"] = list(self.enum)
        if self.min_len is not None:
            d["minLength"] = self.min_len
        if self.max_len is not None:
            d["maxLength"] = self.max_len
        if self.fmt:
            d["format"] = self.fmt
        return self._doc(d)


@dataclass
class Int(Node):
    minimum: Optional[int] = None
    maximum: Optional[int] = None

    def check(self, value, path, out):
        if isinstance(value, bool) or not isinstance(value, int):
            hint = "write a whole number"
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                hint = f"write {value.strip()} without quotes"
            out.append(Finding(path, f"expected an integer, got {_type_name(value)} {_show(value)}", hint, "type"))
            return
        if value.bit_length() > 63:
            out.append(Finding(path, "is too large for a 64-bit integer", "use a smaller number", "range"))
            return
        lo, hi = self.minimum, self.maximum
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            if lo is not None and hi is not None:
                rng = f"between {lo} and {hi}"
            elif lo is not None:
                rng = f"at least {lo}"
            else:
                rng = f"at most {hi}"
            out.append(Finding(path, f"{value} is out of range: it must be {rng}", f"use a value {rng}", "range"))

    def openapi(self):
        d = {"type": "integer", "format": "int64"}
        if self.minimum is not None:
            d["minimum"] = self.minimum
        if self.maximum is not None:
            d["maximum"] = self.maximum
        return self._doc(d)


@dataclass
class Bool(Node):
    def check(self, value, path, out):
        if not isinstance(value, bool):
            hint = "write true or false without quotes"
            out.append(Finding(path, f"expected true or false, got {_type_name(value)} {_show(value)}", hint, "type"))

    def openapi(self):
        return self._doc({"type": "boolean"})


@dataclass
class Arr(Node):
    items: Node = None
    min_items: Optional[int] = None
    max_items: Optional[int] = None
    unique_by: Optional[str] = None  # a key whose values must differ between items

    def check(self, value, path, out):
        if not isinstance(value, list):
            out.append(Finding(path, f"expected a list, got {_type_name(value)} {_show(value)}",
                               "write the items as a YAML list, each starting with '- '", "type"))
            return
        if self.min_items is not None and len(value) < self.min_items:
            out.append(Finding(path, f"needs at least {self.min_items} item(s), has {len(value)}",
                               "add an item or remove the field", "count"))
        if self.max_items is not None and len(value) > self.max_items:
            out.append(Finding(path, f"has {len(value)} items; at most {self.max_items} are allowed",
                               "remove some items", "count"))
        seen: dict = {}
        for i, item in enumerate(value):
            self.items.check(item, join_path(path, i), out)
            if self.unique_by and isinstance(item, dict) and isinstance(item.get(self.unique_by), str):
                key = item[self.unique_by]
                if key in seen:
                    out.append(Finding(join_path(join_path(path, i), self.unique_by),
                                       f"{self.unique_by} {key!r} is used twice (also at {join_path(path, seen[key])})",
                                       f"give each item its own {self.unique_by}", "duplicate"))
                seen.setdefault(key, i)

    def openapi(self):
        d = {"type": "array", "items": self.items.openapi()}
        if self.min_items is not None:
            d["minItems"] = self.min_items
        if self.max_items is not None:
            d["maxItems"] = self.max_items
        return self._doc(d)


@dataclass
class StrMap(Node):
    """A mapping of string keys to string values (labels, matchLabels, annotations)."""

    def check(self, value, path, out):
        if not isinstance(value, dict):
            out.append(Finding(path, f"expected a mapping of strings, got {_type_name(value)}",
                               "write `key: value` pairs", "type"))
            return
        for k, v in value.items():
            if not isinstance(v, str):
                out.append(Finding(join_path(path, k), f"expected a string, got {_type_name(v)} {_show(v)}",
                                   "put the value in quotes, e.g. \"true\" or \"8080\"", "type"))

    def openapi(self):
        return self._doc({"type": "object", "additionalProperties": {"type": "string"}})


@dataclass
class LabelMap(StrMap):
    """Labels (and the label selectors that match them): Kubernetes' rules for keys and values."""

    def check(self, value, path, out):
        super().check(value, path, out)
        if not isinstance(value, dict):
            return
        for k, v in value.items():
            bad = limits.qualified_name(k) or limits.label_value(v)
            if bad:
                out.append(Finding(join_path(path, k), bad[0], bad[1], "label"))


@dataclass
class AnnotationMap(StrMap):
    """Annotations: keys as label keys, values free, at most 256 KiB in all per object."""

    def check(self, value, path, out):
        super().check(value, path, out)
        if not isinstance(value, dict):
            return
        for k in value:
            bad = limits.qualified_name(k.lower() if isinstance(k, str) else k)
            if bad:
                out.append(Finding(join_path(path, k), bad[0], bad[1], "annotation"))
        size = limits.annotations_size(value)
        if size > limits.ANNOTATIONS_TOTAL_MAX:
            out.append(Finding(path, f"annotations take {size} bytes in all; at most {limits.ANNOTATIONS_TOTAL_MAX} "
                                     "(256 KiB) are allowed per object", "keep large data out of annotations "
                                     "(in a ConfigMap, or a file the container reads)", "size"))


@dataclass
class Free(Node):
    """Anything goes (Kubernetes metadata, fields the lab does not read)."""

    def check(self, value, path, out):
        return

    def openapi(self):
        return self._doc({"type": "object", "x-kubernetes-preserve-unknown-fields": True})


@dataclass
class ReadOnly(Node):
    """A field the controller fills in (status-like data in spec). Setting it is one finding,
    whatever is inside; the CRD still declares its shape."""
    inner: Node = None
    message: str = ""
    hint: str = ""

    def check(self, value, path, out, unknown_hint=None):
        out.append(Finding(path, self.message, self.hint, "read-only"))

    def openapi(self):
        return self.inner.openapi()


# hints for unknown fields: (path, key) -> a hint, or (hint, fields the unknown one stands in for,
# relative to its object); filled by hints.py
UnknownHint = Callable[[str, str], object]


@dataclass
class Obj(Node):
    props: dict = field(default_factory=dict)
    required: tuple = ()
    exactly_one: tuple = ()  # groups (tuples) of which exactly one key must be present
    at_most_one: tuple = ()  # groups of which at most one key may be present
    open: bool = False  # unknown keys go to other_field: taken as they are, or checked by K8sObj (k8s_strict.py)
    rules: tuple = ()  # callables: value -> list[Finding] (paths relative to this object)

    def check(self, value, path, out, unknown_hint: Optional[UnknownHint] = None):
        if not isinstance(value, dict):
            out.append(Finding(path, f"expected a mapping, got {_type_name(value)} {_show(value)}",
                               "write `field: value` pairs indented under this key", "type"))
            return
        start = len(out)
        stand_ins: set = set()  # missing fields an unknown one is a misspelling or misplacement of
        for key, child in value.items():
            sub = join_path(path, key)
            node = self.props.get(key)
            if node is None:
                if not self.open:
                    stand_ins |= {join_path(path, k) for k in
                                  unknown_field(key, sub, list(self.props), out, unknown_hint)}
                else:
                    self.other_field(key, child, path, out, unknown_hint, stand_ins)
                continue
            if isinstance(node, (Obj, ReadOnly)):
                node.check(child, sub, out, unknown_hint)
            elif isinstance(node, Arr) and isinstance(node.items, Obj):
                _check_obj_array(node, child, sub, out, unknown_hint)
            else:
                node.check(child, sub, out)
        for key in self.required:
            if key not in value or value[key] is None:
                out.append(Finding(join_path(path, key), f"required field {key!r} is missing",
                                   _required_hint(self, key), "required", (join_path(path, key),)))
        for group in self.exactly_one:
            present = [k for k in group if value.get(k) is not None]
            if len(present) != 1:
                names = " or ".join(group)
                if not present:
                    out.append(Finding(path or "(document)", f"needs exactly one of {names}; none is set",
                                       f"add one of: {', '.join(group)}", "one-of",
                                       tuple(join_path(path, k) for k in group)))
                else:
                    out.append(Finding(join_path(path, present[1]), f"only one of {names} may be set; found {', '.join(present)}",
                                       f"keep one of {', '.join(present)} and remove the others", "one-of"))
        for group in self.at_most_one:
            present = [k for k in group if value.get(k) is not None]
            if len(present) > 1:
                out.append(Finding(join_path(path, present[1]),
                                   f"{' and '.join(present)} cannot be used together",
                                   f"keep one of {', '.join(present)}", "one-of"))
        for rule in self.rules:
            for f in rule(value):
                out.append(Finding(join_path(path, f.path) if f.path else path, f.message, f.hint, f.code,
                                   tuple(join_path(path, a) for a in f.about)))
        if stand_ins:  # "x is missing" next to "unknown field y (write x)" says the same thing twice
            out[start:] = [f for f in out[start:] if not stand_ins.intersection(f.about)]

    def other_field(self, key, value, path: str, out: list, unknown_hint, stand_ins: set) -> None:
        """`key` of an open object at `path` is not in props: taken as it is (K8sObj checks it against its
        Kubernetes type). A finding it adds may name in `stand_ins` the fields the key stands in for."""
        return

    def openapi(self):
        d: dict = {"type": "object"}
        if self.props:
            d["properties"] = {k: v.openapi() for k, v in sorted(self.props.items())}
        if self.required:
            d["required"] = sorted(self.required)
        if self.open:
            d["x-kubernetes-preserve-unknown-fields"] = True
        return self._doc(d)


def unknown_field(key, path: str, allowed: list, out: list, unknown_hint: Optional[UnknownHint] = None) -> tuple:
    """Report the unknown field `key` at `path` (a known mistake's hint, or the nearest of `allowed`);
    returns the fields it stands in for, relative to its object."""
    got = unknown_hint(path, key) if unknown_hint else None
    hint, instead = got if isinstance(got, tuple) else (got, ())
    near = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
    if not hint:
        hint = (f"did you mean {near[0]!r}?" if near
                else f"fields allowed here: {', '.join(sorted(allowed)) or 'none'}")
    out.append(Finding(path, f"unknown field {key!r}", hint, "unknown-field"))
    return (*instead, *near)


def _check_obj_array(arr: Arr, value, path, out, unknown_hint):
    if not isinstance(value, list):
        arr.check(value, path, out)
        return
    # counts and uniqueness from Arr, items with the unknown-field hints
    probe = Arr(items=Free(), min_items=arr.min_items, max_items=arr.max_items, unique_by=arr.unique_by)
    probe.check(value, path, out)
    for i, item in enumerate(value):
        arr.items.check(item, join_path(path, i), out, unknown_hint)


def _required_hint(obj: Obj, key: str) -> str:
    node = obj.props.get(key)
    if isinstance(node, Obj) and node.props:
        return f"add {key}: with {', '.join(sorted(node.required) or sorted(node.props)[:3])}"
    if isinstance(node, Str) and node.enum:
        return f"add {key}: one of {', '.join(node.enum)}"
    return f"add {key}:"


# ---- helpers for rules ---------------------------------------------------------------

def rule(fn: Callable[[dict], list]) -> Callable[[dict], list]:
    """Mark a function as an object rule (documentation only)."""
    return fn


def valid_re2ish(pattern: str) -> Optional[str]:
    """A syntax check of a regular expression for Envoy's RE2 engine; returns an error text or None.

    Python's `re` accepts a superset of RE2's syntax for the common constructs, so a pattern Python
    rejects is certainly wrong. What Python accepts and RE2 refuses (lookarounds, backreferences,
    atomic groups, possessive quantifiers, \\Z, flags other than i/m/s, repeat counts over 1000) is
    found in Python's parse tree of the pattern, so escaped or bracketed look-alikes are not flagged.
    """
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"is not a valid regular expression ({exc})"
    except RecursionError:
        return "nests too deeply"
    if _has_comment_group(pattern):  # the parser drops comments: found in the text, outside escapes and classes
        return "uses a comment group (?#…), which Envoy's RE2 engine does not support"
    try:
        return _re2_unsupported(_sre_parse.parse(pattern), 1000)
    except RecursionError:
        return "nests too deeply"


def _has_comment_group(pattern: str) -> bool:
    i, n, in_class = 0, len(pattern), False
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            if ch == "]":
                in_class = False
        elif ch == "[":
            in_class = True
            i += 1
            if pattern[i:i + 1] == "^":
                i += 1
            if pattern[i:i + 1] == "]":  # a ] right after [ or [^ is a literal
                i += 1
            continue
        elif pattern.startswith("(?#", i):
            return True
        i += 1
    return False


try:  # Python's own parse of a pattern, to find what RE2 (and so Envoy) refuses to compile
    from re import _parser as _sre_parse  # Python 3.11+
except ImportError:  # Python 3.10
    import sre_parse as _sre_parse  # type: ignore[no-redef]

_RE2_MAX_REPEAT = 1000  # RE2: {n,m} counts, and their product when nested, stay within 1000
_RE2_FLAGS = re.IGNORECASE | re.MULTILINE | re.DOTALL | re.UNICODE  # (?i) (?m) (?s); RE2 has no (?x) (?a) (?L)


def _re2_unsupported(items, budget: int) -> Optional[str]:
    """What in a parsed Python pattern RE2 cannot compile (Envoy would reject the route), or None."""
    flags = getattr(getattr(items, "state", None), "flags", 0)
    if flags & ~_RE2_FLAGS:
        return "uses a flag RE2 does not know (only i, m and s)"
    for op, av in items:
        name = str(op)
        if name == "ATOMIC_GROUP":
            return "uses an atomic group (?>…), which Envoy's RE2 engine does not support"
        if name == "POSSESSIVE_REPEAT":
            return "uses a possessive quantifier (*+, ++, ?+), which Envoy's RE2 engine does not support"
        if name in ("GROUPREF", "GROUPREF_EXISTS"):
            return "uses a backreference, which Envoy's RE2 engine does not support"
        if name in ("ASSERT", "ASSERT_NOT"):
            return "uses a lookaround, which Envoy's RE2 engine does not support"
        if name == "AT" and str(av) == "AT_END_STRING":
            return "uses \\Z, which Envoy's RE2 engine does not know (write $ instead)"
        subs = []
        if name in ("MAX_REPEAT", "MIN_REPEAT"):
            lo, hi, sub = av
            count = lo if hi == _sre_parse.MAXREPEAT else hi
            if count > budget:
                return (f"repeats more than {_RE2_MAX_REPEAT} times (counts of nested repetitions multiply), "
                        "more than Envoy's RE2 engine allows")
            subs.append((sub, budget // count if count > 1 else budget))
        elif name == "SUBPATTERN":
            if (av[1] | av[2]) & ~_RE2_FLAGS:
                return "uses a flag RE2 does not know (only i, m and s)"
            subs.append((av[3], budget))
        elif name == "BRANCH":
            subs += [(b, budget) for b in av[1]]
        for sub, b in subs:
            err = _re2_unsupported(sub, b)
            if err:
                return err
    return None
