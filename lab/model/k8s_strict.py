"""Strict field validation for the Kubernetes objects the lab reads, as an API server does it.

kubectl 1.27 and later ask the API server for strict field validation (`--validate=strict`, the
default): a field the object's type does not have fails the apply ("unknown field
"spec.ports[0].targetPrt""). The lab's schemas (k8s_specs.py) describe only the fields it acts
on, so the rest of each object is checked here against the field names of its Kubernetes type.
Those names come from the kubernetes Python client's models, copied once into k8s_openapi.py by
scripts/k8s-openapi-fields.py (importing the client's models costs about a second, and the model
layer does no I/O); a test keeps the copy equal to the pinned client.

Anything still goes where Kubernetes itself takes anything: label, annotation and other string
maps (Dict[str, str]), fields typed `object` (int-or-string, quantities, free JSON), and kinds the
lab does not read at all (validate.py passes them over or refuses them by kind).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from .k8s_openapi import TYPES
from .problems import join_path
from .schema import Obj, UnknownHint, unknown_field

_LIST = re.compile(r"^List\[(.+)\]$")


@dataclass
class K8sObj(Obj):
    """An object of the Kubernetes type `k8s` (e.g. "V1ServiceSpec"): the fields in props are checked
    by their nodes, every other field against the type's field names (see the module text)."""
    k8s: str = ""

    def __post_init__(self):
        if self.k8s not in TYPES:
            raise ValueError(f"{self.k8s!r} is not a type in k8s_openapi.TYPES")
        self.open = True  # the CRD-style view (openapi()) of these objects stays open

    def other_field(self, key, value, path, out, unknown_hint, stand_ins):
        fields, sub = TYPES[self.k8s], join_path(path, key)
        if key in fields:
            check_type(fields[key], value, sub, out, unknown_hint)
        else:  # a misspelt required field is reported once, as unknown (Obj.check drops its "is missing")
            allowed = sorted(set(fields) | set(self.props))
            stand_ins.update(join_path(path, k) for k in unknown_field(key, sub, allowed, out, unknown_hint))


def check_type(type_name: str, value, path: str, out: list, unknown_hint: Optional[UnknownHint] = None) -> None:
    """Report the unknown fields in `value`, an instance of the Kubernetes type `type_name`.
    Only field names are checked here: a value of another shape is left to the lab's own schema
    where it reads the field, and passes where it does not."""
    item = _LIST.match(type_name)
    if item:
        if isinstance(value, list):
            for i, x in enumerate(value):
                check_type(item.group(1), x, join_path(path, i), out, unknown_hint)
        return
    fields = TYPES.get(type_name)
    if fields is None or not isinstance(value, dict):  # a scalar, a string map, or `object`
        return
    for key, child in value.items():
        sub = join_path(path, key)
        if key in fields:
            check_type(fields[key], child, sub, out, unknown_hint)
        else:
            unknown_field(key, sub, sorted(fields), out, unknown_hint)
