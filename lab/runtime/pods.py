"""Pods the local lab runs for the Deployments (and Pods) in the store.

A Deployment with `replicas: N` becomes N pods named like Kubernetes pods
(`<deployment>-<template hash>-<suffix>`). Which local command runs for a container:
  * the kit's sample app image (`appmesh-lab/sample-app:*`): python -m lab.apps.sample;
  * any other image: the pod template annotation `lab.appmesh.dev/local-command`
    (a shell-style command line, run with the container's env);
  * a pod selected by a VirtualGateway's podSelector: its `envoy` container runs as that
    gateway's Envoy, whatever image it names (as the injector configures it on a cluster).
Sidecars follow the injector's rules (APPMESH-FACTS §9.4), via lab.model.semantics.
"""
from __future__ import annotations

import hashlib
import json
import random
import shlex
import sys
from dataclasses import dataclass, field

from ..apps import LOCAL_COMMAND_ANNOTATION as LOCAL_COMMAND, SAMPLE_IMAGE
from ..model import World
from ..model import gatewayapi_refs as gwrefs
from ..model.resources import Resource
from ..model.semantics import INJECT_LABEL

SAMPLE_REPO = SAMPLE_IMAGE.split(":")[0]


@dataclass
class Container:
    name: str
    image: str
    argv: list
    env: dict
    ports: list  # container ports


@dataclass
class Pod:
    namespace: str
    name: str
    owner: str  # Deployment name (or the Pod's own name)
    labels: dict
    containers: list = field(default_factory=list)
    role: str = "app"  # app | meshed | gateway
    proxy: Resource | None = None  # the VirtualNode (meshed), VirtualGateway or Gateway API Gateway (gateway)
    node_id: str | None = None  # its Envoy's node id, once placed


def template_hash(template: dict) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


def _suffix(rng: random.Random) -> str:
    return "".join(rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))


def pod_names(deploy: Resource, existing: list[str], replicas: int) -> list[str]:
    """Keep existing names of the current template; make new ones as needed."""
    h = template_hash(deploy.spec.get("template") or {})
    prefix = f"{deploy.name}-{h}-"
    names = [n for n in existing if n.startswith(prefix)][:replicas]
    rng = random.Random()
    while len(names) < replicas:
        n = prefix + _suffix(rng)
        if n not in names:
            names.append(n)
    return names


def local_command(container: dict, annotations: dict) -> list | None:
    from ..apps import GRPC_ECHO_IMAGE
    image = str(container.get("image", ""))
    if annotations.get(LOCAL_COMMAND):
        return shlex.split(annotations[LOCAL_COMMAND])
    repo = image.split(":")[0].split("@")[0]
    if repo == SAMPLE_REPO:
        return [sys.executable, "-m", "lab.apps.sample"]
    if repo == GRPC_ECHO_IMAGE.split(":")[0]:  # the kit's gRPC echo server
        return [sys.executable, "-m", "lab.apps.grpc_echo"]
    return None


def plan(world: World, names: dict) -> tuple[list[Pod], list[tuple[Resource, str, str, str]]]:
    """All pods, and problems as (resource, field path, message, hint).

    names: "<namespace>/<deployment>" -> list of pod names already in use.
    """
    pods, problems = [], []
    for r in world.by_kind["Deployment"] + world.by_kind["Pod"]:
        if r.kind == "Deployment":
            tmpl = r.spec.get("template") or {}
            meta, spec, base = tmpl.get("metadata") or {}, tmpl.get("spec") or {}, "spec.template"
            replicas = r.spec.get("replicas", 1)
            pnames = pod_names(r, names.get(f"{r.namespace}/{r.name}", []), replicas)
        else:
            meta, spec, base = {"labels": r.labels, "annotations": r.annotations}, r.spec, ""
            pnames = [r.name]
        labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
        ns_labels = world.namespace_labels(r.namespace) or {}
        injecting = INJECT_LABEL in ns_labels and str(
            annotations.get(INJECT_LABEL) or ns_labels.get(INJECT_LABEL)).lower() != "disabled"
        vns, vgs = world.pod_owners(r.namespace, labels) if injecting else ([], [])
        role, proxy = "app", None
        if len(vgs) == 1 and not vns:
            role, proxy = "gateway", vgs[0]
        elif len(vns) == 1 and not vgs:
            role, proxy = "meshed", vns[0]
        containers = []
        for i, c in enumerate(spec.get("containers") or []):
            env = {e["name"]: str(e.get("value", "")) for e in c.get("env") or [] if "name" in e}
            ports = [p.get("containerPort") for p in c.get("ports") or []]
            if role == "gateway" and c.get("name") == "envoy":
                containers.append(Container("envoy", c.get("image", ""), [], env, ports))
                continue
            argv = local_command(c, annotations)
            if argv is None:
                path = f"{base}.spec.containers[{i}].image" if base else f"spec.containers[{i}].image"
                problems.append((r, path, f"the local lab has no command for image {c.get('image')!r}",
                                 f"use the kit's sample app image {SAMPLE_IMAGE}, or annotate the pod template with "
                                 f"{LOCAL_COMMAND}: \"<command to run>\""))
                continue
            containers.append(Container(c.get("name", f"c{i}"), c.get("image", ""), argv, env, ports))
        for n in pnames:
            pods.append(Pod(r.namespace, n, r.name, labels, containers, role, proxy))
    pods += gateway_api_pods(world)
    return pods, problems


GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"


def gateway_api_pods(world: World) -> list[Pod]:
    """One Envoy pod for each Gateway the lab serves (its GatewayClass names the lab's controller), as
    an implementation provisions one Deployment per Gateway: named <gateway>-<class>, labelled
    with the Gateway's name."""
    out = []
    for gw in sorted(world.by_kind["Gateway"], key=lambda r: r.key):
        if gwrefs.served_by_lab(world, gw):
            name = f"{gw.name}-{gw.spec.get('gatewayClassName')}"
            out.append(Pod(gw.namespace, name, name, {GATEWAY_NAME_LABEL: gw.name}, [], "gateway", gw))
    return out
