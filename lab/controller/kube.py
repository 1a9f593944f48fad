"""The controller's only door to the Kubernetes API.

Everything else in lab/controller works on plain dicts (API objects as JSON) and calls the few
methods of :class:`Kube`. :class:`ApiKube` implements them with the `kubernetes` client; tests
use a fake holding recorded objects. Errors of the client become the three exceptions below,
chained with `raise ... from`.

`PERMISSIONS` lists every (API group, resource, verb) this module uses. The Helm chart's RBAC
grants exactly these, and a test checks that the two agree.
"""
from __future__ import annotations

import json
import logging
from typing import Iterator, Protocol

from ..model import kinds as K

log = logging.getLogger("appmesh-lab.controller")

GROUP, VERSION = K.GROUP, K.VERSION
APPMESH_KINDS = tuple(K.APPMESH_KINDS)
PLURALS = {kind: info["plural"] for kind, info in K.APPMESH_KINDS.items()}
CLUSTER_SCOPED = ("Mesh", "Namespace")
WATCHED = APPMESH_KINDS + ("Namespace", "Pod", "EndpointSlice")

# (apiGroup, resource, verbs, scope): "cluster" goes into the ClusterRole, "namespace" into the
# Role of the controller's own namespace (with resourceNames where Kubernetes allows it).
PERMISSIONS = (
    (GROUP, tuple(sorted(PLURALS.values())), ("list", "patch", "watch"), "cluster"),
    (GROUP, tuple(sorted(p + "/status" for p in PLURALS.values())), ("patch",), "cluster"),
    ("", ("namespaces", "pods"), ("list", "watch"), "cluster"),
    ("discovery.k8s.io", ("endpointslices",), ("list", "watch"), "cluster"),
    ("", ("events",), ("create",), "cluster"),
    ("admissionregistration.k8s.io", ("mutatingwebhookconfigurations", "validatingwebhookconfigurations"),
     ("get", "patch"), "cluster"),
    ("coordination.k8s.io", ("leases",), ("create", "get", "update"), "namespace"),
    ("", ("secrets",), ("create", "get", "update"), "namespace"),
)


class KubeError(Exception):
    """A call to the Kubernetes API failed (the message names the call and the API's answer)."""

    status: int | None = None


class NotFound(KubeError):
    status = 404


class Conflict(KubeError):
    """409: somebody else changed the object (or it already exists)."""

    status = 409


class Gone(KubeError):
    """410: the watch's resourceVersion is too old; list again."""

    status = 410


def key_of(kind: str, obj: dict) -> tuple:
    meta = obj.get("metadata") or {}
    return (kind, "" if kind in CLUSTER_SCOPED else meta.get("namespace", ""), meta.get("name", ""))


class Kube(Protocol):
    def list(self, kind: str) -> tuple[list[dict], str]:
        """All objects of a kind (cluster-wide) and the list's resourceVersion."""

    def watch(self, kind: str, resource_version: str, timeout_s: int) -> Iterator[tuple[str, dict]]:
        """(event type, object) from resource_version on; raises Gone when it is too old."""

    def patch_status(self, kind: str, namespace: str, name: str, status: dict) -> dict:
        """Merge-patch the status subresource of an App Mesh object."""

    def set_finalizers(self, kind: str, namespace: str, name: str, finalizers: list, resource_version: str) -> dict:
        """Replace metadata.finalizers, if the object is still at resource_version (else Conflict)."""

    def create_event(self, namespace: str, event: dict) -> None: ...

    def get_lease(self, namespace: str, name: str) -> dict | None: ...

    def create_lease(self, namespace: str, lease: dict) -> dict: ...

    def replace_lease(self, namespace: str, name: str, lease: dict) -> dict: ...

    def get_secret(self, namespace: str, name: str) -> dict | None: ...

    def create_secret(self, namespace: str, secret: dict) -> dict: ...

    def replace_secret(self, namespace: str, name: str, secret: dict) -> dict: ...

    def get_webhook_config(self, name: str, kind: str = "mutating") -> dict | None:
        """The Mutating (kind "mutating") or Validating ("validating") WebhookConfiguration."""

    def patch_webhook_config(self, name: str, patch: list, kind: str = "mutating") -> None: ...


class _HttpError(Exception):
    """A non-2xx answer the client handed back unread (_preload_content=False)."""

    def __init__(self, status: int, body):
        super().__init__(status)
        self.status, self.body = status, body


def _translate(exc: Exception, what: str) -> KubeError:
    status = getattr(exc, "status", None)
    body = getattr(exc, "body", None) or getattr(exc, "reason", None) or str(exc)
    try:
        message = json.loads(body).get("message", body) if isinstance(body, (str, bytes)) else body
    except ValueError:
        message = body
    cls = {404: NotFound, 409: Conflict, 410: Gone}.get(status, KubeError)
    err = cls(f"{what}: {status or ''} {message}".strip())
    err.status = status
    return err


class ApiKube:
    """:class:`Kube` over the `kubernetes` client (in-cluster config, or ~/.kube/config)."""

    def __init__(self, api_client=None):
        from kubernetes import client
        self._client = client
        self.api = api_client or client.ApiClient()
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.discovery = client.DiscoveryV1Api(self.api)
        self.coordination = client.CoordinationV1Api(self.api)
        self.admission = client.AdmissionregistrationV1Api(self.api)

    @classmethod
    def from_environment(cls) -> "ApiKube":
        from kubernetes import config
        try:
            config.load_incluster_config()
        except config.ConfigException:
            try:
                config.load_kube_config()
            except (config.ConfigException, OSError) as exc:
                raise KubeError("no Kubernetes API to talk to: not running in a pod (no service account) and "
                                f"no usable kubeconfig ({exc}); the controller runs in a cluster, installed by the "
                                "chart manifests/charts/appmesh-lab-controller") from exc
        return cls()

    # -- list / watch ------------------------------------------------------------------

    def _list_call(self, kind: str):
        if kind in PLURALS:
            return self.custom.list_cluster_custom_object, (GROUP, VERSION, PLURALS[kind])
        return {"Namespace": (self.core.list_namespace, ()),
                "Pod": (self.core.list_pod_for_all_namespaces, ()),
                "EndpointSlice": (self.discovery.list_endpoint_slice_for_all_namespaces, ())}[kind]

    def list(self, kind: str) -> tuple[list[dict], str]:
        func, args = self._list_call(kind)
        try:
            resp = func(*args, _preload_content=False)
            data = json.loads(resp.data)
        except Exception as exc:
            raise _translate(exc, f"list {kind}") from exc
        return data.get("items") or [], (data.get("metadata") or {}).get("resourceVersion", "")

    def watch(self, kind: str, resource_version: str, timeout_s: int) -> Iterator[tuple[str, dict]]:
        """The watch stream read line by line as plain JSON. Nothing is turned into the client's
        models: they are strict about types (pydantic), so a field a newer API server sends in
        another shape would break the informer, and the controller reads dicts anyway."""
        from kubernetes.watch.watch import iter_resp_lines
        func, args = self._list_call(kind)
        try:
            resp = func(*args, watch=True, resource_version=resource_version, timeout_seconds=timeout_s,
                        allow_watch_bookmarks=True, _preload_content=False)
        except Exception as exc:
            raise _translate(exc, f"watch {kind}") from exc
        try:
            status = getattr(resp, "status", 200)
            if isinstance(status, int) and not 200 <= status <= 299:
                err = _translate(_HttpError(status, resp.data), f"watch {kind}")
                raise Gone(str(err)) if status == 410 else err
            for line in iter_resp_lines(resp):
                if not line or not line.strip():
                    continue
                ev = json.loads(line)
                obj = ev.get("object") or {}
                if ev.get("type") == "ERROR":
                    if obj.get("code") == 410:
                        raise Gone(f"watch {kind}: {obj.get('message', 'resource version too old')}")
                    raise KubeError(f"watch {kind}: {obj.get('message', obj)}")
                yield ev["type"], obj
        except KubeError:
            raise
        except Exception as exc:
            raise _translate(exc, f"watch {kind}") from exc
        finally:
            resp.close()
            resp.release_conn()

    # -- App Mesh objects --------------------------------------------------------------

    def _patch_custom(self, kind: str, namespace: str, name: str, body, content_type: str, status: bool = False):
        """Patch an App Mesh object (or its status subresource), cluster-scoped or namespaced."""
        suffix = "_status" if status else ""
        if kind in CLUSTER_SCOPED:
            return getattr(self.custom, f"patch_cluster_custom_object{suffix}")(
                GROUP, VERSION, PLURALS[kind], name, body, _content_type=content_type)
        return getattr(self.custom, f"patch_namespaced_custom_object{suffix}")(
            GROUP, VERSION, namespace, PLURALS[kind], name, body, _content_type=content_type)

    def patch_status(self, kind: str, namespace: str, name: str, status: dict) -> dict:
        try:
            return self._patch_custom(kind, namespace, name, {"status": status}, "application/merge-patch+json",
                                      status=True)
        except Exception as exc:
            raise _translate(exc, f"patch status of {kind} {namespace}/{name}") from exc

    def set_finalizers(self, kind, namespace, name, finalizers, resource_version) -> dict:
        patch = [{"op": "test", "path": "/metadata/resourceVersion", "value": resource_version},
                 {"op": "add", "path": "/metadata/finalizers", "value": list(finalizers)}]
        try:
            return self._patch_custom(kind, namespace, name, patch, "application/json-patch+json")
        except Exception as exc:
            err = _translate(exc, f"set finalizers of {kind} {namespace}/{name}")
            if err.status == 422:  # the "test" op failed: the object changed since we read it
                raise Conflict(str(err)) from exc
            raise err from exc

    # -- events ------------------------------------------------------------------------

    def create_event(self, namespace: str, event: dict) -> None:
        try:
            self.core.create_namespaced_event(namespace, self._client.CoreV1Event.from_dict(event),
                                              _preload_content=False)
        except Exception as exc:
            raise _translate(exc, f"create event in {namespace}") from exc

    # -- leases, secrets, webhook configuration ----------------------------------------

    def _get(self, func, what, *args) -> dict | None:
        """A read; None when the object does not exist."""
        try:
            return self._call(func, what, *args)
        except NotFound:
            return None

    def get_lease(self, namespace, name):
        return self._get(self.coordination.read_namespaced_lease, f"get lease {namespace}/{name}", name, namespace)

    def _call(self, func, what, *args) -> dict:
        """One write call; its JSON answer, or the API's error as a KubeError saying what failed."""
        try:
            return json.loads(func(*args, _preload_content=False).data)
        except Exception as exc:
            raise _translate(exc, what) from exc

    def create_lease(self, namespace, lease):
        return self._call(self.coordination.create_namespaced_lease, f"create lease in {namespace}",
                          namespace, self._client.V1Lease.from_dict(lease))

    def replace_lease(self, namespace, name, lease):
        return self._call(self.coordination.replace_namespaced_lease, f"update lease {namespace}/{name}",
                          name, namespace, self._client.V1Lease.from_dict(lease))

    def get_secret(self, namespace, name):
        return self._get(self.core.read_namespaced_secret, f"get secret {namespace}/{name}", name, namespace)

    def create_secret(self, namespace, secret):
        return self._call(self.core.create_namespaced_secret, f"create secret in {namespace}",
                          namespace, self._client.V1Secret.from_dict(secret))

    def replace_secret(self, namespace, name, secret):
        return self._call(self.core.replace_namespaced_secret, f"update secret {namespace}/{name}",
                          name, namespace, self._client.V1Secret.from_dict(secret))

    def get_webhook_config(self, name, kind="mutating"):
        return self._get(getattr(self.admission, f"read_{kind}_webhook_configuration"),
                         f"get {kind}webhookconfiguration {name}", name)

    def patch_webhook_config(self, name, patch, kind="mutating"):
        try:
            getattr(self.admission, f"patch_{kind}_webhook_configuration")(
                name, patch, _content_type="application/json-patch+json", _preload_content=False)
        except Exception as exc:
            raise _translate(exc, f"patch {kind}webhookconfiguration {name}") from exc
