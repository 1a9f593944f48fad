"""The admission webhooks' HTTPS server: Pod CREATE (sidecar injection, lab.controller.inject) and
the six App Mesh kinds (defaulting and validation, lab.controller.admission).

The serving certificate is made by the controller with `cryptography`: a CA and a leaf for the
webhook Service's DNS names. It is kept in a Secret so every replica serves the same one (the
first replica to start creates it; creation is atomic, the others read it), and the CA goes
into the Mutating and Validating WebhookConfigurations' `caBundle` — re-checked periodically, because
`helm upgrade` re-renders the configuration without it.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ..runtime.httpjson import send_json
from . import admission
from .inject import InjectConfig, decide
from .kube import Conflict, Kube, KubeError

log = logging.getLogger("appmesh-lab.controller")
MUTATE_PATH = "/mutate-v1-pod"
CA_DAYS = 3650
VALID_DAYS = 3650  # the serving certificate; the Secret is remade RENEW_BEFORE_DAYS before its end
RENEW_BEFORE_DAYS = 30


def dns_names(service: str, namespace: str) -> list[str]:
    return [service, f"{service}.{namespace}", f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local"]


def make_certificate(names: list[str], now: dt.datetime | None = None) -> dict:
    """{"ca.crt", "tls.crt", "tls.key"} as PEM text: a CA and a serving certificate for names
    (RFC 5280 extensions, see lab/runtime/pki.py: the API server may verify strictly)."""
    from ..runtime import pki

    ca = pki.make_ca("appmesh-lab-controller webhook CA", CA_DAYS, now=now)
    leaf, key = pki.make_leaf(ca, names[-1], VALID_DAYS, names, role="server", now=now)
    return {"ca.crt": pki.pem(ca[0]).decode(), "tls.crt": pki.pem(leaf).decode(), "tls.key": pki.key_pem(key).decode()}


def certificate_usable(pems: dict, names: list[str], now: dt.datetime | None = None) -> bool:
    """True when the Secret's certificate can keep serving: it names every DNS name, was issued
    by the CA beside it with the extensions strict verifiers need (a Secret written by an older
    controller lacks them and is replaced), and is not within RENEW_BEFORE_DAYS of its end."""
    from cryptography import x509

    from ..runtime import pki
    try:
        cert = x509.load_pem_x509_certificate(pems["tls.crt"].encode())
        ca = x509.load_pem_x509_certificate(pems["ca.crt"].encode())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except Exception:  # missing or unreadable: make a new one
        return False
    renew = dt.timedelta(days=RENEW_BEFORE_DAYS)
    return set(names) <= set(san.get_values_for_type(x509.DNSName)) and \
        not pki.problems(cert, ca, now, renew) and not pki.problems(ca, ca, now, renew)


def _decode(secret: dict) -> dict:
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def ensure_certificate(kube: Kube, namespace: str, secret_name: str, service: str) -> dict:
    """The shared serving certificate: read it from the Secret, or make it (once, for all replicas)."""
    names = dns_names(service, namespace)
    for _ in range(5):
        secret = kube.get_secret(namespace, secret_name)
        if secret is not None and certificate_usable(_decode(secret), names):
            return _decode(secret)
        pems = make_certificate(names)
        body = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                "metadata": {"name": secret_name, "namespace": namespace,
                             "labels": {"app.kubernetes.io/part-of": "appmesh-lab"}},
                "data": {k: base64.b64encode(v.encode()).decode() for k, v in pems.items()}}
        try:
            if secret is None:
                kube.create_secret(namespace, body)
            else:
                body["metadata"]["resourceVersion"] = (secret.get("metadata") or {}).get("resourceVersion")
                kube.replace_secret(namespace, secret_name, body)
            return pems
        except Conflict:
            continue  # another replica won the race: read what it wrote
    raise KubeError(f"could not create or read the webhook certificate Secret {namespace}/{secret_name}")


def ca_bundle_patch(config: dict, ca_pem: str) -> list:
    """JSONPatch setting caBundle on every webhook of the configuration that lacks it (empty if none)."""
    want = base64.b64encode(ca_pem.encode()).decode()
    return [{"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": want}
            for i, w in enumerate(config.get("webhooks") or []) if (w.get("clientConfig") or {}).get("caBundle") != want]


def ensure_ca_bundle(kube: Kube, config_name: str, ca_pem: str) -> bool:
    """Patch the caBundle of the Mutating and the Validating WebhookConfiguration (both named
    config_name); True when one had to change."""
    changed = False
    for kind, what in (("mutating", "pods will not be injected and App Mesh objects not defaulted"),
                       ("validating", "App Mesh objects are not validated on apply")):
        config = kube.get_webhook_config(config_name, kind=kind)
        if config is None:
            log.warning("%s webhook configuration %s does not exist; %s", kind.capitalize(), config_name, what)
            continue
        patch = ca_bundle_patch(config, ca_pem)
        if patch:
            kube.patch_webhook_config(config_name, patch, kind=kind)
            log.info("caBundle of %s webhook configuration %s updated", kind, config_name)
            changed = True
    return changed


# ---- admission -----------------------------------------------------------------------------

def review_response(review: dict, world_fn, cfg: InjectConfig) -> dict:
    """An AdmissionReview (admission.k8s.io/v1) request -> the review to send back."""
    req = review.get("request") or {}
    uid = req.get("uid", "")
    resp: dict = {"uid": uid, "allowed": True}
    try:
        if (req.get("kind") or {}).get("kind") == "Pod" and req.get("operation", "CREATE") == "CREATE":
            pod = req.get("object") or {}
            namespace = req.get("namespace") or (pod.get("metadata") or {}).get("namespace") or "default"
            d = decide(pod, namespace, world_fn(), cfg)
            if not d.allowed:
                resp = {"uid": uid, "allowed": False, "status": {"code": 403, "reason": "Forbidden",
                                                                  "message": d.message}}
            elif d.patch:
                resp["patchType"] = "JSONPatch"
                resp["patch"] = base64.b64encode(json.dumps(d.patch).encode()).decode()
    except Exception as exc:  # a bug answers as an error, so failurePolicy decides what happens
        log.exception("admission review %s failed", uid)
        resp = {"uid": uid, "allowed": False, "status": {"code": 500, "message": f"appmesh-lab injector error: {exc}"}}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": resp}


class WebhookServer:
    """HTTPS on `port`: POST /mutate-v1-pod (pods), POST /mutate-appmesh-k8s-aws-v1beta2-<kind> and
    /validate-appmesh-k8s-aws-v1beta2-<kind> (App Mesh objects, lab.controller.admission); GET /healthz.
    `objects_fn` returns the cached API objects by kind (what the App Mesh webhooks check against)."""

    def __init__(self, port: int, pems: dict, world_fn, cfg: InjectConfig, host: str = "0.0.0.0", objects_fn=None):
        self.world_fn, self.cfg = world_fn, cfg
        self.objects_fn = objects_fn or (lambda: {})
        handler = _handler(self)
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        with tempfile.TemporaryDirectory() as d:  # ssl loads PEM from files only
            (Path(d) / "tls.crt").write_text(pems["tls.crt"])
            (Path(d) / "tls.key").write_text(pems["tls.key"])
            ctx.load_cert_chain(Path(d) / "tls.crt", Path(d) / "tls.key")
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="webhook", daemon=True)

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def start(self) -> "WebhookServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(server: WebhookServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            log.debug("webhook: " + fmt, *args)

        def _send(self, code: int, body: dict) -> None:
            send_json(self, code, body)

        def do_GET(self):  # noqa: N802 (http.server API)
            if self.path in ("/healthz", "/readyz"):
                self._send(200, {"ok": True})
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self):  # noqa: N802
            path = self.path.split("?")[0]
            if path != MUTATE_PATH and admission.route(path) is None:
                self._send(404, {"error": f"no such path: {self.path}"})
                return
            try:
                n = int(self.headers.get("Content-Length") or 0)
                review = json.loads(self.rfile.read(n) or b"{}")
            except ValueError as exc:
                self._send(400, {"error": f"the body is not an AdmissionReview: {exc}"})
                return
            if path == MUTATE_PATH:
                self._send(200, review_response(review, server.world_fn, server.cfg))
            else:
                self._send(200, admission.review(review, path, server.objects_fn, server.cfg.ip_family))
    return Handler
