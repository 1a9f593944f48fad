"""TLS from a lesson: the lab's CA, a Secret's CA, HTTPS requests with SNI."""
from __future__ import annotations

import http.client
import ssl
from pathlib import Path

from .common import NotebookError
from .staging import command
from .traffic import Hit


def lab_ca(t) -> Path:
    """The local lab's demo CA certificate (made on first use under <lab home>/certs/)."""
    if t.name != "local":
        raise NotebookError("the lab CA lives in the local lab; on clusters read it from its Secret: "
                            "nb.tls_ca(t, NAMESPACE, SECRET)")
    return Path(t.client.paths.home) / "certs" / "ca" / "ca.crt"


def tls_ca(t, namespace: str, secret: str, key: str = "ca.crt") -> Path:
    """The CA certificate a client of the TLS lessons trusts, as a file: on `local` the lab's CA;
    on a cluster the one stored in Secret `secret` of `namespace` (what the pods mount), read back
    through the API, as `kubectl get secret ... -o jsonpath='{.data.ca\\.crt}' | base64 -d` does."""
    if t.name == "local":
        return lab_ca(t)
    import base64
    import tempfile
    command(f"kubectl -n {namespace} get secret {secret} -o jsonpath='{{.data.{key.replace('.', chr(92) + '.')}}}' "
            f"| base64 -d > {key}")
    items = t.get("Secret", secret, namespace)
    data = ((items[0] if items else {}).get("data") or {}).get(key)
    if not data:
        raise NotebookError(f"Secret {namespace}/{secret} has no {key}: create it first (kubectl -n {namespace} create "
                            f"secret generic {secret} --from-file={key}=...)")
    path = Path(tempfile.mkdtemp(prefix="appmesh-ca-")) / key
    path.write_bytes(base64.b64decode(data))
    return path


class _SNIConnection(http.client.HTTPSConnection):
    """HTTPS to an address, checking the server's certificate for another name (as a client
    inside the mesh would: it connects to a pod, and expects the service's name)."""

    def __init__(self, host, port, sni: str, **kwargs):
        super().__init__(host, port, **kwargs)
        self._sni = sni

    def connect(self):
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self._sni)


def https_get(host: str, port: int, path: str, cafile, server_hostname: str = "localhost",
              timeout: float = 5.0, certfile=None, keyfile=None) -> Hit:
    """GET over TLS, trusting only `cafile` and expecting the name `server_hostname`, with a
    client certificate when `certfile` (and `keyfile`) are given; raises ssl.SSLError when
    the server's certificate is not signed by that CA, and ssl.SSLError or ConnectionError
    when the server refuses the client."""
    import time as _time
    ctx = ssl.create_default_context(cafile=str(cafile))
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT  # as Python 3.13's default does, on every Python
    if certfile:
        ctx.load_cert_chain(str(certfile), str(keyfile) if keyfile else None)
    conn = _SNIConnection(host, port, server_hostname, timeout=timeout, context=ctx)
    t0 = _time.perf_counter()
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        return Hit(resp.status, (_time.perf_counter() - t0) * 1000, body, {k.lower(): v for k, v in resp.getheaders()})
    finally:
        conn.close()


def https_attempt(host: str, port: int, path: str, cafile, server_hostname: str = "localhost",
                  cert_dir=None, timeout: float = 5.0) -> tuple[str, str]:
    """What a TLS client gets: ("200 from <service>", "") when it is served, or ("refused",
    what the client library said) when the handshake or the first read fails (with TLS 1.3 a
    server refuses a client certificate after the client's side of the handshake is done, so
    the refusal may show as an alert, an EOF or a reset). `cert_dir` holds the client
    certificate to present (tls.crt, tls.key), or None for none."""
    from pathlib import Path
    try:
        h = https_get(host, port, path, cafile, server_hostname=server_hostname, timeout=timeout,
                      certfile=Path(cert_dir) / "tls.crt" if cert_dir else None,
                      keyfile=Path(cert_dir) / "tls.key" if cert_dir else None)
        return f"{h.status} from {h.service}", ""
    except ssl.SSLError as exc:
        return "refused", exc.reason or type(exc).__name__
    except (ConnectionError, http.client.HTTPException) as exc:
        return "refused", type(exc).__name__
