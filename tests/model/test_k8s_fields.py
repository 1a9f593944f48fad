"""Strict field validation of Kubernetes objects (lab/model/k8s_strict.py), as kubectl 1.27+ has the
API server do it: a misspelt field is an error at its line with the nearest real field name, the
field names come from the kubernetes client's models (k8s_openapi.py, kept equal to it here), and
the places Kubernetes leaves open stay open."""
import subprocess
import sys
import textwrap

from lab.model import validate_texts
from lab.model.k8s_openapi import TYPES
from lab.model.semantics import SemanticIndex
from tests.conftest import ROOT


def validate(text: str, **kw):
    return validate_texts([("t.yaml", textwrap.dedent(text).lstrip("\n"))], **kw)


def only(result, path):
    """The one problem of `result`, which must be at `path`."""
    assert [p.path for p in result.problems] == [path], "\n".join(map(str, result.problems))
    return result.problems[0]


def test_the_field_table_is_the_pinned_kubernetes_clients():
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "k8s-openapi-fields.py"), "--check"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert {"V1ObjectMeta", "V1ServicePort", "V1PodSpec", "V1Container", "V1Probe"} <= set(TYPES)


def test_a_misspelt_namespace_label_field_is_unknown():
    p = only(validate("""
        apiVersion: v1
        kind: Namespace
        metadata:
          name: shop
          lables: {mesh: shop-mesh}
        """), "metadata.lables")
    assert (p.line, p.code, p.hint) == (5, "unknown-field", "did you mean 'labels'?")


def test_misspelt_service_fields_are_unknown_with_the_nearest_name():
    r = validate("""
        apiVersion: v1
        kind: Service
        metadata: {name: web, namespace: shop}
        spec:
          selectr: {app: web}
          ports:
            - port: 80
              targetPrt: 8080
        """)
    assert [(p.line, p.path, p.hint) for p in r.errors] == [
        (5, "spec.selectr", "did you mean 'selector'?"),
        (8, "spec.ports[0].targetPrt", "did you mean 'targetPort'?")]


def test_a_misspelt_required_field_is_reported_once_as_unknown():
    p = only(validate("""
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web, namespace: shop}
        spec:
          selector: {matchLabels: {app: web}}
          template:
            metadata: {labels: {app: web}}
            spec:
              contaners:
                - {name: web, image: nginx}
        """), "spec.template.spec.contaners")
    assert p.hint == "did you mean 'containers'?"


def test_a_misspelt_metadata_name_of_an_app_mesh_kind_is_reported_once_as_unknown():
    p = only(validate("""
        apiVersion: appmesh.k8s.aws/v1beta2
        kind: Mesh
        metadata:
          nme: shop-mesh
        spec:
          namespaceSelector: {matchLabels: {mesh: shop-mesh}}
        """), "metadata.nme")
    assert (p.line, p.hint) == (4, "did you mean 'name'?")


def test_fields_the_lab_does_not_read_are_checked_by_name_at_any_depth():
    r = validate("""
        apiVersion: v1
        kind: Pod
        metadata: {name: web, namespace: shop}
        spec:
          containers:
            - name: web
              image: nginx
              readinessProbe:
                httpGet: {pth: /ping, port: 8080}
          volumes:
            - name: conf
              configMap: {nmae: web-conf}
        """)
    assert [(p.path, p.hint) for p in r.errors] == [
        ("spec.containers[0].readinessProbe.httpGet.pth", "did you mean 'path'?"),
        ("spec.volumes[0].configMap.nmae", "did you mean 'name'?")]


def test_what_kubernetes_leaves_open_stays_open_and_real_fields_pass():
    r = validate("""
        apiVersion: v1
        kind: Namespace
        metadata:
          name: shop
          labels: {any-label: x}
          annotations: {example.com/anything: "y"}
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: web
          namespace: shop
          annotations: {whatever.example/key: "1"}
        spec:
          replicas: 2
          strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 25%, maxUnavailable: 0}}
          selector: {matchLabels: {app: web}}
          template:
            metadata: {labels: {app: web}, annotations: {free.example/form: "z"}}
            spec:
              nodeSelector: {any-node-label: "a"}
              securityContext: {runAsNonRoot: true}
              containers:
                - name: web
                  image: nginx
                  resources: {limits: {cpu: 500m, memory: 64Mi}}
                  livenessProbe: {httpGet: {path: /ping, port: http}, periodSeconds: 5}
                  volumeMounts: [{name: conf, mountPath: /etc/web}]
              volumes:
                - {name: conf, configMap: {name: web-conf}}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: web, namespace: shop}
        spec:
          selector: {app: web}
          sessionAffinity: None
          ports: [{name: http, port: 80, targetPort: http, appProtocol: http}]
        ---
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata: {name: widgets.example.com}
        spec:
          anyField: {x-kubernetes-preserve-unknown-fields: true, whatever: 1}
        """)
    assert not r.problems, "\n".join(map(str, r.problems))


def test_a_misspelt_namespace_gets_the_nearest_known_one_on_apply():
    stored = validate("""
        apiVersion: v1
        kind: Namespace
        metadata: {name: appmesh-demo, labels: {mesh: m}}
        ---
        apiVersion: appmesh.k8s.aws/v1beta2
        kind: Mesh
        metadata: {name: m}
        spec:
          namespaceSelector: {matchLabels: {mesh: m}}
        """).resources
    index = SemanticIndex(complete=True)
    index.sync(stored)
    node = """
        apiVersion: appmesh.k8s.aws/v1beta2
        kind: VirtualNode
        metadata: {name: vn, namespace: appmesh-dem}
        spec:
          podSelector: {matchLabels: {app: a}}
          listeners: [{portMapping: {port: 8080, protocol: http}}]
          serviceDiscovery: {dns: {hostname: a.appmesh-demo.svc.cluster.local}}
        """
    for r in (validate(node, complete=True, existing=stored), validate(node, complete=True, index=index)):
        p = only(r, "metadata.namespace")
        assert p.severity == "error" and "'appmesh-dem' is not among the documents" in p.message
        assert p.hint.startswith("did you mean 'appmesh-demo'?"), p.hint
