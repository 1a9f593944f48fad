"""Fixtures of the controller tests: recorded API objects and a fake of lab.controller.kube.Kube."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from lab.controller.kube import CLUSTER_SCOPED, Conflict, Gone, KubeError, NotFound, key_of

TESTDATA = Path(__file__).parent / "testdata"


def load(name: str):
    return json.loads((TESTDATA / name).read_text())


def event_rejection(namespace: str, event: dict) -> str:
    """What the API server says to a core/v1 Event it refuses (its validation of events created
    through the v1 API: pkg/apis/core/validation/events.go); "" when it takes it."""
    meta, involved = event.get("metadata") or {}, event.get("involvedObject") or {}
    if meta.get("namespace", namespace) != namespace:
        return "the namespace of the provided object does not match the namespace sent on the request"
    inv_ns = involved.get("namespace") or ""
    if not event.get("eventTime"):
        if not inv_ns and namespace not in ("", "default"):
            return "involvedObject.namespace: Invalid value: \"\": does not match event.namespace"
        if inv_ns and inv_ns != namespace:
            return f"involvedObject.namespace: Invalid value: {inv_ns!r}: does not match event.namespace"
        return ""
    if not inv_ns and namespace not in ("default", "kube-system"):
        return "involvedObject.namespace: Invalid value: \"\": does not match event.namespace"
    for f in ("reportingComponent", "reportingInstance", "action"):
        if not event.get(f):
            return f"{f}: Required value"
    return ""


class FakeKube:
    """The Kube interface over a dict of objects; records every write."""

    def __init__(self, objects: dict | None = None):
        self.objects = {kind: {key_of(kind, o): copy.deepcopy(o) for o in items}
                        for kind, items in (objects or {}).items()}
        self.rv = 9000
        self.calls: list[tuple] = []
        self.events: list[dict] = []
        self.leases: dict = {}
        self.secrets: dict = {}
        self.webhooks: dict = {}
        self.watch_script: dict = {}  # kind -> list of (type, obj) or an exception to raise
        self.fail_next: dict = {}  # method name -> exception

    def _maybe_fail(self, name):
        exc = self.fail_next.pop(name, None)
        if exc:
            raise exc

    def _bump(self, obj):
        self.rv += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.rv)
        return obj

    def list(self, kind):
        self.calls.append(("list", kind))
        return [copy.deepcopy(o) for o in self.objects.get(kind, {}).values()], str(self.rv)

    def watch(self, kind, resource_version, timeout_s):
        self.calls.append(("watch", kind, resource_version))
        script = self.watch_script.pop(kind, [])
        if isinstance(script, Exception):
            raise script
        for type_, obj in script:
            yield type_, obj

    def _obj(self, kind, namespace, name):
        key = (kind, "" if kind in CLUSTER_SCOPED else namespace, name)
        if key not in self.objects.get(kind, {}):
            raise NotFound(f"{kind} {namespace}/{name} not found")
        return key

    def patch_status(self, kind, namespace, name, status):
        self._maybe_fail("patch_status")
        self.calls.append(("patch_status", kind, namespace, name, copy.deepcopy(status)))
        key = self._obj(kind, namespace, name)
        obj = self.objects[kind][key]
        merged = dict(obj.get("status") or {})
        for k, v in status.items():
            if v is None:
                merged.pop(k, None)
            else:
                merged[k] = v
        obj["status"] = merged
        return copy.deepcopy(self._bump(obj))

    def set_finalizers(self, kind, namespace, name, finalizers, resource_version):
        self._maybe_fail("set_finalizers")
        self.calls.append(("set_finalizers", kind, namespace, name, list(finalizers)))
        key = self._obj(kind, namespace, name)
        obj = self.objects[kind][key]
        if obj["metadata"].get("resourceVersion") != resource_version:
            raise Conflict("the object has been modified")
        obj["metadata"]["finalizers"] = list(finalizers)
        if not finalizers and obj["metadata"].get("deletionTimestamp"):
            del self.objects[kind][key]  # the API server removes it once the last finalizer goes
            return {}
        return copy.deepcopy(self._bump(obj))

    def create_event(self, namespace, event):
        problem = event_rejection(namespace, event)
        if problem:
            raise KubeError(f"create event in {namespace}: 422 {problem}")
        self.calls.append(("create_event", namespace, event["reason"]))
        self.events.append(copy.deepcopy(event))

    def get_lease(self, namespace, name):
        return copy.deepcopy(self.leases.get((namespace, name)))

    def create_lease(self, namespace, lease):
        self._maybe_fail("create_lease")
        key = (namespace, lease["metadata"]["name"])
        if key in self.leases:
            raise Conflict("already exists")
        self.leases[key] = self._bump(copy.deepcopy(lease))
        return copy.deepcopy(self.leases[key])

    def replace_lease(self, namespace, name, lease):
        self._maybe_fail("replace_lease")
        cur = self.leases.get((namespace, name))
        if cur is None:
            raise NotFound("no lease")
        if lease["metadata"].get("resourceVersion") != cur["metadata"]["resourceVersion"]:
            raise Conflict("the object has been modified")
        self.leases[(namespace, name)] = self._bump(copy.deepcopy(lease))
        return copy.deepcopy(self.leases[(namespace, name)])

    def get_secret(self, namespace, name):
        return copy.deepcopy(self.secrets.get((namespace, name)))

    def create_secret(self, namespace, secret):
        self._maybe_fail("create_secret")
        key = (namespace, secret["metadata"]["name"])
        if key in self.secrets:
            raise Conflict("already exists")
        self.secrets[key] = self._bump(copy.deepcopy(secret))
        return copy.deepcopy(self.secrets[key])

    def replace_secret(self, namespace, name, secret):
        self.secrets[(namespace, name)] = self._bump(copy.deepcopy(secret))
        return copy.deepcopy(self.secrets[(namespace, name)])

    def get_webhook_config(self, name, kind="mutating"):
        return copy.deepcopy(self.webhooks.get(name if kind == "mutating" else (kind, name)))

    def patch_webhook_config(self, name, patch, kind="mutating"):
        from tests.controller.apiserver import _json_patch
        key = name if kind == "mutating" else (kind, name)
        self.calls.append(("patch_webhook_config", name, patch) if kind == "mutating"
                          else ("patch_webhook_config", name, patch, kind))
        self.webhooks[key] = _json_patch(self.webhooks[key], patch)


@pytest.fixture
def walkthrough():
    return load("walkthrough.json")


@pytest.fixture
def fake_kube():
    return FakeKube


@pytest.fixture
def gone():
    return Gone
