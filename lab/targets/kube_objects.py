"""Reading what Kubernetes answers: kubectl apply/delete output as results, a pod as the local
target describes it, and an Envoy admin page fetched through the API server's pod proxy."""
from __future__ import annotations

from .base import TargetError


def parse_results(out: str) -> list:
    """kubectl apply/delete output lines -> [{kind, namespace, name, action}].
    apply prints `kind.group/name action`, delete `kind.group "name" deleted`."""
    results = []
    for line in out.splitlines():
        parts = line.strip().split()
        if len(parts) < 2:
            continue
        if "/" in parts[0]:
            kind_group, _, name = parts[0].partition("/")
            action = " ".join(parts[1:])
        elif len(parts) >= 3 and parts[1].startswith('"') and parts[1].endswith('"'):
            kind_group, name, action = parts[0], parts[1], " ".join(parts[2:])
        else:
            continue
        results.append({"kind": kind_group.split(".")[0], "namespace": "", "name": name.strip('"'), "action": action})
    return results


def pod_view(p: dict) -> dict:
    """A pod as the local target describes it (ready, status, role, the proxy it runs)."""
    meta, spec, st = p.get("metadata") or {}, p.get("spec") or {}, p.get("status") or {}
    statuses = {c["name"]: c for c in st.get("containerStatuses") or []}
    containers, proxy, role = [], None, "app"
    for c in spec.get("containers") or []:
        cs = statuses.get(c["name"], {})
        state = next(iter(cs.get("state") or {"waiting": {}}), "waiting")
        containers.append({"name": c["name"], "state": {"running": "Running", "waiting": "Pending",
                                                        "terminated": "Exited"}.get(state, state),
                           "restarts": cs.get("restartCount", 0), "ready": cs.get("ready", False)})
        if c["name"] == "envoy":
            nid = next((e.get("value") for e in c.get("env") or [] if e.get("name") == "APPMESH_RESOURCE_ARN"), None)
            if nid:
                proxy = nid
                role = "gateway" if "/virtualGateway/" in nid else "meshed"
    owner = meta.get("name", "")
    refs = meta.get("ownerReferences") or []
    if refs and refs[0].get("kind") == "ReplicaSet":
        owner = refs[0]["name"].rsplit("-", 1)[0]
    ready = sum(1 for c in containers if c["ready"])
    return {"namespace": meta.get("namespace"), "name": meta.get("name"), "owner": owner, "role": role,
            "proxy": proxy, "labels": meta.get("labels") or {}, "ready": f"{ready}/{len(containers)}",
            "status": st.get("phase", "Pending") if ready == len(containers) or st.get("phase") != "Running"
            else "NotReady", "restarts": sum(c["restarts"] for c in containers), "containers": containers}


def pod_proxy_get(api_client, namespace: str, pod: str, port: int, path: str) -> bytes:
    """GET http://<pod>:<port>/<path> through the API server's pod proxy
    (/api/v1/namespaces/NS/pods/POD:PORT/proxy/PATH): one request, no port-forward to keep open.
    `path` is one segment with no query (Envoy's /stats filter is applied by the caller)."""
    from kubernetes.client import CoreV1Api
    try:
        resp = CoreV1Api(api_client).connect_get_namespaced_pod_proxy_with_path(
            f"{pod}:{port}", namespace, path.lstrip("/"), _preload_content=False)
        return resp.data
    except Exception as exc:  # ApiException, urllib3 errors: said with the pod and the path
        raise TargetError(f"Envoy admin {path} in {namespace}/{pod} (through the API server's pod proxy): "
                          f"{getattr(exc, 'status', '')} {getattr(exc, 'reason', '') or exc}".strip()) from exc
