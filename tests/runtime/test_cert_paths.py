"""Certificate paths stay inside the lab's certificate folder: validation refuses a manifest path
with '..' or outside /etc/appmesh-lab/certs/ (file, line, field path, hint), and should such a path
reach the runtime anyway (a stored object from an older lab, a bug), lab/runtime/certs.py writes no
key outside <lab home>/certs/."""
from __future__ import annotations

import os
import textwrap

from lab.model import validate_texts
from lab.runtime import certs

PREFIX = certs.PREFIX


def _files_under(root) -> set:
    return {os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs}


def test_a_key_path_with_dotdot_writes_nothing_outside_certs(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    certs_dir = home / "certs"
    paths = {PREFIX + "../tls.key", PREFIX + "../tls.crt", PREFIX + "gateway/../../tls.key",
             PREFIX + "./tls.key", PREFIX + "gateway/tls.crt"}
    mapping = certs.ensure(certs_dir, paths, set())
    outside = {f for f in _files_under(tmp_path) if not f.startswith("home/certs/")}
    assert outside == set(), f"written outside certs/: {outside}"
    assert (certs_dir / "gateway" / "tls.key").exists()  # a plain path still gets its certificate
    assert all(os.path.realpath(f).startswith(str(certs_dir) + os.sep) for f in mapping.values())


def test_a_link_in_the_certs_folder_is_not_followed_out_of_it(tmp_path):
    certs_dir = tmp_path / "certs"
    certs_dir.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (certs_dir / "gateway").symlink_to(elsewhere)
    certs.ensure(certs_dir, {PREFIX + "gateway/tls.crt", PREFIX + "gateway/tls.key"}, set())
    assert os.listdir(elsewhere) == [], "a key was written through a link, outside certs/"


def test_validation_refuses_a_certificate_path_outside_the_folder_with_a_hint():
    doc = textwrap.dedent(f"""\
        apiVersion: appmesh.k8s.aws/v1beta2
        kind: VirtualNode
        metadata: {{name: products, namespace: shop}}
        spec:
          podSelector: {{matchLabels: {{app: products}}}}
          listeners:
            - portMapping: {{port: 8443, protocol: http}}
              tls:
                mode: STRICT
                certificate:
                  file: {{certificateChain: {PREFIX}products/tls.crt, privateKey: {PREFIX}products/../../../x.key}}
                validation:
                  trust:
                    file: {{certificateChain: /root/ca.crt}}
          serviceDiscovery: {{dns: {{hostname: products.shop.svc.cluster.local}}}}
        """)
    result = validate_texts([("vn.yaml", doc)])
    found = {p.path: p for p in result.errors}
    key = found["spec.listeners[0].tls.certificate.file.privateKey"]
    assert key.line == 11 and "'..'" in key.message and PREFIX in key.hint
    ca = found["spec.listeners[0].tls.validation.trust.file.certificateChain"]
    assert ca.line == 14 and "outside /etc/appmesh-lab/certs/" in ca.message and PREFIX in ca.hint
    assert len(result.errors) == 2, [str(p) for p in result.errors]
