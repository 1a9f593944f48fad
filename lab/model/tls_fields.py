"""Certificates and TLS: where a proxy's certificate files may live (CERTS_DIR), a listener's
TLS, a client policy's, and the validation of the peer's certificate. Certificates that only
AWS could provide (ACM, SDS from SPIRE) are refused with what to write instead.
"""
from __future__ import annotations

import difflib
import posixpath

from .fields import port
from .schema import Arr, Bool, Finding, Obj, Str

# Where certificate files live on a proxy: the lab makes them there on the local target, and the
# kit's manifests mount Secrets there on a cluster (appmesh.k8s.aws/secretMounts).
CERTS_DIR = "/etc/appmesh-lab/certs/"
_CERT_EXAMPLE = f"{CERTS_DIR}<name>/tls.crt, {CERTS_DIR}<name>/tls.key or {CERTS_DIR}ca/ca.crt"


def cert_path_problem(path: str) -> tuple[str, str] | None:
    """A certificate file path must name a file inside CERTS_DIR, written plainly: absolute, no '.'
    or '..' steps, no empty steps, no control characters (None when it does)."""
    if any(ord(ch) < 0x20 or ord(ch) == 0x7f for ch in path):
        return f"certificate file {path[:80]!r} holds a control character", f"write {_CERT_EXAMPLE}"
    steps = path.split("/")
    if ".." in steps:
        return f"certificate file {path[:80]!r} climbs out of its folder with '..'", \
            f"name a file inside {CERTS_DIR}: {_CERT_EXAMPLE}"
    if path.startswith(CERTS_DIR) and posixpath.normpath(path) == path:
        return None
    if path.startswith(CERTS_DIR):
        return f"certificate file {path[:80]!r} is not written plainly (an empty or '.' step, or a trailing '/')", \
            f"write {posixpath.normpath(path)!r}" if posixpath.normpath(path).startswith(CERTS_DIR) \
            else f"write {_CERT_EXAMPLE}"
    rest = path.lstrip("/").split("/")
    # /etc/appmesh-lab/cert/gateway/tls.crt: one letter off the folder
    if len(rest) > 3 and rest[:2] == ["etc", "appmesh-lab"] and difflib.get_close_matches(rest[2], ["certs"], 1, 0.6):
        hint = f"did you mean {CERTS_DIR + '/'.join(rest[3:])!r}?"
    else:
        hint = f"put the file in {CERTS_DIR}: {_CERT_EXAMPLE}"
    return f"certificate file {path[:80]!r} is outside {CERTS_DIR}, the folder the lab keeps certificates in", hint


def _cert_files(*keys):
    def check(v: dict) -> list:
        out = []
        for k in keys:
            bad = cert_path_problem(v[k]) if isinstance(v.get(k), str) and v[k] else None
            if bad:
                out.append(Finding(k, bad[0], bad[1], "cert-path"))
        return out
    return check


def tls_file_cert() -> Obj:
    return Obj(description="Certificate chain and private key from files on the proxy.",
               props={"certificateChain": Str(min_len=1, max_len=255), "privateKey": Str(min_len=1, max_len=255)},
               required=("certificateChain", "privateKey"), rules=(_cert_files("certificateChain", "privateKey"),))


def sds() -> Obj:
    return Obj(description="A secret served by the SDS agent.", props={"secretName": Str()}, required=("secretName",),
               rules=(_sds_not_served,))


def _sds_not_served(v: dict) -> list:
    """App Mesh fetched SDS secrets from an agent on the node (SPIRE); the lab's control plane
    serves no secrets, so a proxy told to use one would never get its certificate."""
    return [Finding("", "SDS secrets came from an SDS agent (SPIRE) beside App Mesh's Envoy; the lab's control "
                        "plane serves none, so this proxy would never get the certificate",
                    "use file: certificates under /etc/appmesh-lab/certs/ (certificateChain: "
                    "/etc/appmesh-lab/certs/<name>/tls.crt, privateKey: .../tls.key; a trust: ca/ca.crt)",
                    "unsupported")]


def _acm_trust_not_served(v: dict) -> list:
    """A trust in ACM Private CA certificates: App Mesh fetched them from ACM, which the lab cannot;
    without them the proxy would hold no CA and verify nothing, so the trust is refused."""
    return [Finding("", "ACM Private CA trust came from AWS App Mesh, which was shut down; the lab's control plane "
                        "cannot fetch these CA certificates, so the peer's certificate would go unverified",
                    "use trust.file with the CA certificate's path, e.g. /etc/appmesh-lab/certs/ca/ca.crt",
                    "unsupported")]


def tls_validation(with_acm: bool) -> Obj:
    """A validation context. `with_acm`: the CRD's trust has an acm member (refused by
    _acm_trust_not_served: the lab cannot fetch ACM Private CA certificates)."""
    trust = {"file": Obj(props={"certificateChain": Str(min_len=1, max_len=255)}, required=("certificateChain",),
                         rules=(_cert_files("certificateChain"),)),
             "sds": sds()}
    if with_acm:
        trust["acm"] = Obj(props={"certificateAuthorityARNs": Arr(items=Str(), min_items=1, max_items=3)},
                           required=("certificateAuthorityARNs",), rules=(_acm_trust_not_served,))
    return Obj(description="How to validate the peer's certificate.", props={
        "trust": Obj(props=trust, exactly_one=(tuple(sorted(trust)),)),
        "subjectAlternativeNames": Obj(props={
            "match": Obj(props={"exact": Arr(items=Str())}, required=("exact",))}, required=("match",)),
    }, required=("trust",))


def listener_tls(with_acm_trust: bool) -> Obj:
    return Obj(description="TLS on this listener.", props={
        "mode": Str(enum=("DISABLED", "PERMISSIVE", "STRICT")),
        "certificate": Obj(props={
            "acm": Obj(props={"certificateARN": Str()}, required=("certificateARN",)),
            "file": tls_file_cert(),
            "sds": sds(),
        }, exactly_one=(("acm", "file", "sds"),)),
        "validation": tls_validation(with_acm=with_acm_trust),
    }, required=("certificate", "mode"))


def client_policy() -> Obj:
    return Obj(description="How this proxy talks to its backends.", props={
        "tls": Obj(props={
            "enforce": Bool(description="Whether TLS is required; defaults to true."),
            "ports": Arr(items=port()),
            "certificate": Obj(props={"file": tls_file_cert(), "sds": sds()}, exactly_one=(("file", "sds"),)),
            "validation": tls_validation(with_acm=True),
        }, required=("validation",)),
    })
