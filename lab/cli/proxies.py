"""Verbs that reach the lab's Envoys: curl through a virtual gateway, config-dump and stats over a
proxy's admin socket."""
from __future__ import annotations

import http.client
import json
import socket
import ssl
import sys
import time
from urllib.parse import quote

import yaml

from ..runtime.client import Client, LabError
from ..runtime.status import _names_gateway, gateway_address
from ..terminal import escape, out


def http_request(host, port, method, path, headers, body=None, timeout=10.0):
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.reason, resp.getheaders(), resp.read()
    finally:
        conn.close()


def speaks_tls(host: str, port: int) -> bool:
    """Whether the listener answers a TLS ClientHello with a handshake (its certificate unchecked)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=5) as raw, ctx.wrap_socket(raw, server_hostname="localhost"):
            return True
    except ssl.SSLError as exc:   # the server spoke TLS, then refused (e.g. no client certificate)
        return "WRONG_VERSION_NUMBER" not in str(exc)
    except OSError:
        return False


def _gateway(c: Client, word: str | None) -> tuple[str, int]:
    """(host, port) of the first listener of the one running gateway `word` names: its name, or a
    prefix of it, with vg/ or gateway/ in front when a virtual gateway and a Gateway share a name.
    A prefix of several is an error naming them (gateway_address would pick the first)."""
    if word is None:
        return gateway_address(c)
    gws = c.call("GET", "/v1/status")["gateways"]
    short = {g["node_id"]: ("vg/" if "/virtualGateway/" in g["node_id"] else "gateway/")
             + g["node_id"].rsplit("/", 1)[-1] for g in gws}
    hits = [g for g in gws if _names_gateway(g["node_id"], word)]
    exact = [g for g in hits if g["node_id"].rsplit("/", 1)[-1] == word.rpartition("/")[2]]
    if len(exact) == 1 or len(hits) == 1:
        url = next(iter((exact or hits)[0]["listeners"].values()))
        host, port = url.split("//")[1].split(":")
        return host, int(port)
    if not hits:
        raise LabError(f"no running gateway is named {escape(word)!r} (a name or its prefix; vg/NAME, gateway/NAME); "
                       f"running: {escape(', '.join(sorted(short.values()))) or 'none'}")
    raise LabError(f"{escape(word)!r} names {len(hits)} gateways: "
                   f"{escape(', '.join(sorted(short[g['node_id']] for g in hits)))}; name one of them")


def cmd_curl(args) -> int:
    c = Client()
    host, port = _gateway(c, args.gateway)
    headers = {}
    for h in args.header or []:
        k, _, v = h.partition(":")
        headers[k.strip()] = v.strip()
    path = args.path if args.path.startswith("/") else "/" + args.path
    deadline = time.time() + args.wait
    while True:
        try:
            status, reason, hdrs, body = http_request(host, port, args.request, path, headers,
                                                      args.data.encode() if args.data else None)
            if status in (503, 404) and time.time() < deadline and not args.no_retry:
                time.sleep(0.2)  # the mesh may still be converging: retry for --wait seconds
                continue
            break
        except (ConnectionError, OSError) as exc:
            if isinstance(exc, http.client.RemoteDisconnected) and speaks_tls(host, port):
                ca = c.paths.home / "certs" / "ca" / "ca.crt"
                raise LabError(f"the gateway listener at {host}:{port} terminates TLS, and appmesh-lab curl sends "
                               f"plain HTTP; use curl: curl --cacert {ca} https://localhost:{port}{path} "
                               "(add --cert and --key when the listener validates client certificates)") from exc
            if time.time() >= deadline:
                raise LabError(f"cannot connect to the gateway at {host}:{port}: {exc}") from exc
            time.sleep(0.2)
    out(f"HTTP/1.1 {status} {reason}")
    if not args.silent_headers:
        for k, v in hdrs:
            out(f"{k}: {v}")
    out()
    sys.stdout.write(body.decode(errors="replace"))
    if not body.endswith(b"\n"):
        out()
    return 22 if args.fail and status >= 400 else 0


def _one_proxy(c: Client, word: str) -> None:
    """`word` (a pod, namespace/pod, a proxy's resource name or node id) must name one proxy: the
    daemon takes the first pod whose VirtualGateway is called `gateway` in any namespace."""
    pods = [p for p in c.call("GET", "/v1/pods")["pods"] if p.get("node_id")]
    if any(word in (p["name"], f"{p['namespace']}/{p['name']}") for p in pods):
        return
    by_id: dict = {}
    for p in pods:
        if word in (p["node_id"], p["node_id"].rsplit("/", 1)[-1], (p.get("proxy") or "").rsplit("/", 1)[-1]):
            by_id.setdefault(p["node_id"], f"{p['namespace']}/{p['name']}")
    if len(by_id) > 1:
        raise LabError(f"{escape(word)!r} names {len(by_id)} proxies; name one by its pod: "
                       + escape(", ".join(sorted(by_id.values()))))


def _admin(c: Client, proxy: str, path: str) -> str:
    from ..runtime.envoy import admin_request
    _one_proxy(c, proxy)
    answer = c.call("GET", f"/v1/proxy?proxy={quote(proxy, safe='')}", ok=(200, 404))
    if "admin_socket" not in answer:
        raise LabError(answer.get("error", f"no running Envoy for {proxy}"))
    try:
        _, body = admin_request(answer["admin_socket"], "GET", path)
    except (OSError, http.client.HTTPException) as exc:
        raise LabError(f"the Envoy of {proxy} does not answer on its admin socket {answer['admin_socket']}: "
                       f"{exc}") from exc
    return body.decode(errors="replace")


def cmd_config_dump(args) -> int:
    text = _admin(Client(), args.proxy, "/config_dump" + ("?include_eds" if args.include_eds else ""))
    if args.output == "yaml":
        out(yaml.safe_dump(json.loads(text), sort_keys=False))
    else:
        out(text)
    return 0


def cmd_stats(args) -> int:
    path = "/stats" + (f"?filter={args.filter}" if args.filter else "")
    out(_admin(Client(), args.proxy, path), end="")
    return 0
