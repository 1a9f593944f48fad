"""The export as text: one YAML file per kind, and the machine-readable report. Pure."""
from __future__ import annotations

import yaml

from .export import Export

FILES = {"Gateway": "gateways.yaml", "HTTPRoute": "httproutes.yaml", "GRPCRoute": "grpcroutes.yaml",
         "ReferenceGrant": "referencegrants.yaml"}


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data):
        return True


def _yaml(data) -> str:
    return yaml.dump(data, Dumper=_NoAliases, sort_keys=False, width=120, allow_unicode=True)


def files(ex: Export, profile: str) -> dict[str, str]:
    """{file name: text}; objects in a stable order, each under a comment naming its App Mesh source."""
    out: dict[str, str] = {}
    for kind, name in FILES.items():
        objs = ex.of_kind(kind)
        if not objs:
            continue
        parts = [f"# Gateway API {kind} objects exported from App Mesh by `appmesh-lab migrate` "
                 f"(profile {profile}).\n"]
        if kind == "Gateway":
            parts += [f"# {c}\n" for c in ["Create the TLS Secrets and CA ConfigMaps first:" if ex.configmaps else "Create the TLS Secrets first:"] + ex.commands] if ex.commands else []
        for i, o in enumerate(objs):
            head = "---\n" if i else ""
            parts.append(head + "".join(f"# from {s}\n" for s in o.sources) + _yaml(o.body))
        out[name] = "".join(parts)
    return out


def stream(ex: Export, profile: str) -> str:
    return "---\n".join(files(ex, profile).values())


def report(ex: Export) -> dict:
    return {"objects": [{"kind": o.kind, "namespace": o.namespace, "name": o.name, "sources": o.sources,
                         "object": o.body} for o in ex.objects],
            "findings": [p.to_dict() for p in ex.findings],
            "commands": list(ex.commands)}
