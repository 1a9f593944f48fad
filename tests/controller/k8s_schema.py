"""A strict check of Kubernetes objects against the `kubernetes` client's models, offline.

The tests have no API server and no network, so no OpenAPI document from a cluster. The
`kubernetes` Python client carries one model class per API type, generated from the Kubernetes
OpenAPI spec (37.0.0 here: "release-1.37"). From 37 on they are pydantic models with
`extra="forbid"`; `problems(obj)` validates with them (`model_validate`): every field must exist
on its type (a misspelt or misplaced field is an error), every value must have the field's type,
required fields must be there. With an older client (plain classes), it walks the object with
the models' `attribute_map` / `openapi_types` and checks the same things.

What it does not check: formats (quantities, DNS names), cross-field rules, and anything the
API server's admission adds. `int-or-string` fields are `object` in the models: anything goes.
"""
from __future__ import annotations

import re

from kubernetes import client

# (apiVersion, kind) -> model class name, for the kinds the kit renders or injects
MODELS = {
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("v1", "Service"): "V1Service",
    ("v1", "Secret"): "V1Secret",
    ("v1", "Pod"): "V1Pod",
    ("v1", "Namespace"): "V1Namespace",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "V1ClusterRole",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "V1ClusterRoleBinding",
    ("rbac.authorization.k8s.io/v1", "Role"): "V1Role",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "V1RoleBinding",
    ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"): "V1MutatingWebhookConfiguration",
    ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"): "V1ValidatingWebhookConfiguration",
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): "V1CustomResourceDefinition",
    ("coordination.k8s.io/v1", "Lease"): "V1Lease",
}
SCALARS = {"str": str, "int": int, "bool": bool, "float": (int, float), "datetime": str, "date": str}


def problems(obj: dict) -> list[str]:
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key not in MODELS:
        return [f"no model for apiVersion {key[0]!r} kind {key[1]!r}"]
    model = getattr(client, MODELS[key])
    if hasattr(model, "model_validate"):  # pydantic models (kubernetes >= 37)
        from pydantic import ValidationError
        try:
            model.model_validate(obj)
        except ValidationError as exc:
            return [f"{key[1]}." + ".".join(str(p) for p in e["loc"]) + f": {e['msg']}" for e in exc.errors()]
        return []
    out: list[str] = []
    _check(obj, MODELS[key], f"{key[1]}", out)
    return out


def _check(value, type_name: str, path: str, out: list) -> None:
    if value is None:
        return  # an explicit null is "unset" for the API server
    m = re.fullmatch(r"[lL]ist\[(.+)\]", type_name)
    if m:
        if not isinstance(value, list):
            out.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            _check(item, m.group(1), f"{path}[{i}]", out)
        return
    m = re.fullmatch(r"dict\(str, (.+)\)|Dict\[str, (.+)\]", type_name)
    if m:
        if not isinstance(value, dict):
            out.append(f"{path}: expected a map, got {type(value).__name__}")
            return
        for k, v in value.items():
            if not isinstance(k, str):
                out.append(f"{path}: key {k!r} is not a string")
            _check(v, m.group(1) or m.group(2), f"{path}.{k}", out)
        return
    if type_name == "object":
        return
    if type_name in SCALARS:
        want = SCALARS[type_name]
        if isinstance(value, bool) and want is not bool:
            out.append(f"{path}: expected {type_name}, got bool")
        elif not isinstance(value, want):
            out.append(f"{path}: expected {type_name}, got {type(value).__name__} {value!r}")
        return
    model = getattr(client, type_name, None)
    if model is None:
        out.append(f"{path}: the client has no model {type_name}")
        return
    if not isinstance(value, dict):
        out.append(f"{path}: expected an object ({type_name}), got {type(value).__name__}")
        return
    by_json = {j: attr for attr, j in model.attribute_map.items()}
    present = {}
    for k, v in value.items():
        attr = by_json.get(k)
        if attr is None:
            out.append(f"{path}: unknown field {k!r} (a {type_name} has {', '.join(sorted(by_json))})")
            continue
        present[attr] = v
        _check(v, model.openapi_types[attr], f"{path}.{k}", out)
    try:  # the constructor's setters: required fields (not None) and the enums the model knows
        model(**present)
    except ValueError as exc:
        out.append(f"{path}: {exc}")
    except TypeError as exc:
        out.append(f"{path}: {exc}")
