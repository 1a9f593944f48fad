"""StandInCluster: the stand-in tools on PATH, the stand-in API, its local lab, kind's ports."""
from __future__ import annotations

import json
import os
import shutil
import sys
import threading
from pathlib import Path

import yaml

from lab.runtime.client import Client

from .apiserver import KIND_NODE_PORTS, Forwarder, LabApi, make_server

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
TOOLS = ("kubectl", "helm", "kind", "eksctl", "docker")
NOTE = ("a recording, not a cluster: the kind code paths of the lessons ran against stand-in kubectl, helm, kind, "
        "eksctl and docker (every argument and manifest checked) and a stand-in Kubernetes API whose nodes and "
        "controller are the local lab (real Envoy carries the traffic)")


class StandInCluster:
    def __init__(self, directory: Path, cluster_name: str = "appmesh-gateway-demo"):
        self.dir = Path(directory)
        self.cluster_name = cluster_name
        self.lab_home = self.dir / "lab"
        self.bin = self.dir / "bin"
        self.kubeconfig = self.dir / "kubeconfig"
        self.log = self.dir / "tools.jsonl"
        self.api = LabApi(self.lab_home, cluster_name)
        self.server = None
        self.forwarders: list[Forwarder] = []

    def start(self, real_helm: str | None = None) -> dict:
        self.dir.mkdir(parents=True, exist_ok=True)
        Client(self.lab_home).up()
        self.server = make_server(self.api)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.forwarders = [Forwarder(self.api, p) for p in KIND_NODE_PORTS]
        self.api.state["ports"] = {str(f.node_port): f.port for f in self.forwarders}
        # what every kind cluster runs before anything is applied: the lessons must leave it alone
        for name in ("coredns-668d6bf9bc-7xk2p", "etcd-" + self.cluster_name + "-control-plane"):
            self.api.extra.setdefault("Pod", {})[("kube-system", name)] = {
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "kube-system", "labels": {}},
                "spec": {"containers": [{"name": name.split("-")[0], "image": "registry.k8s.io/" + name.split("-")[0]}]},
                "status": {"phase": "Running", "containerStatuses": [{"name": name.split("-")[0], "ready": True,
                                                                      "restartCount": 0, "state": {"running": {}},
                                                                      "image": "x", "imageID": ""}]}}
        self.api.extra.setdefault("Deployment", {})[("kube-system", "coredns")] = {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "coredns", "namespace": "kube-system",
                                                                         "generation": 1},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
                     "template": {"metadata": {"labels": {"k8s-app": "kube-dns"}},
                                  "spec": {"containers": [{"name": "coredns", "image": "registry.k8s.io/coredns"}]}}},
            "status": {"observedGeneration": 1, "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1,
                       "availableReplicas": 1}}
        self.api.extra.setdefault("Namespace", {})[("", "kube-system")] = {
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}, "status": {"phase": "Active"}}
        context = f"kind-{self.cluster_name}"
        self.kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "",
            "clusters": [{"name": context, "cluster": {"server": url}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
            "users": [{"name": context, "user": {"token": "stand-in"}}]}))
        self.bin.mkdir(exist_ok=True)
        for tool in TOOLS:
            exe = self.bin / tool
            exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m tests.cluster.standins.tools "$0" "$@"\n')
            exe.chmod(0o755)
        self.environ = {
            "PATH": f"{self.bin}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin",
            "KUBECONFIG": str(self.kubeconfig), "STANDIN_API": url, "STANDIN_LOG": str(self.log),
            "APPMESH_LAB_HOME": str(self.lab_home), "PYTHONPATH": str(ROOT),
            "STANDIN_REAL_HELM": real_helm or "", "PYTHON": sys.executable,
        }
        return self.environ

    def calls(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def stop(self) -> None:
        for f in self.forwarders:
            f.close()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        lab = Client(self.lab_home)
        if lab.running():
            lab.down()
        shutil.rmtree(self.bin, ignore_errors=True)
