"""Leaving App Mesh: the export to the Kubernetes Gateway API (standard channel v1.6.1).

Pure like translate: validated App Mesh resources in, Gateway API objects, findings and the
commands a user must run out. No I/O (reading manifests and writing files is the CLI's job).

    ex = export(resources, profile="istio")
    render.files(ex, "istio")   # {"gateways.yaml": ..., "httproutes.yaml": ...}
    ex.findings                 # model.Problem, severity "warning": what Gateway API cannot say
"""
from .export import Export, Obj, export
from .profiles import PROFILES

__all__ = ["Export", "Obj", "PROFILES", "export"]
