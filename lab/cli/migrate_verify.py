"""`appmesh-lab migrate --verify`: the App Mesh set and its Gateway API export, side by side.

On ONE lab (`OneLab`): a local lab of its own (in a scratch folder, stopped afterwards) is given
the App Mesh set, then a GatewayClass of the export's class name with the lab's controller and the
export; the lab runs the set's apps with their sidecars, the VirtualGateway's Envoy and the
Gateway's own Envoy, each on its own loopback port. A set with a TLS gateway listener runs on two
Envoys of the verifier's own (`SideBySide`; the running lab does not store Secrets yet): one runs
the VirtualGateway as the lab translates it (lab/translate/ir.py), another the exported Gateway
(lab/translate/gatewayapi.py), in front of the same sample apps (one per virtual node; each
answers with its service name and the path and Host it received; a grpc virtual node's app is
the gRPC echo server, which answers with the method and authority). Every probe
(lab/migrate/probes.py, plus the user's) goes to both gateways, a gRPC probe as a real gRPC call
whose grpc-status, answering workload, method and authority are compared; a request whose route
has weighted targets is sent many times to each and the splits are compared. A VirtualGateway
listener that validates client certificates (tls.validation) is sent the probes with a client
certificate of the verifier's CA, and one request without any: the export does not require one,
a difference its finding announces. A request that fails (a refused handshake, a reset) ends the
run with one line naming the gateway and what failed.
"""
from __future__ import annotations

import copy
import dataclasses
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from ..model import World
from ..runtime import certs, pki
from ..runtime.envoy import EnvoyProcess
from ..runtime.secrets import write_tls_secrets
from ..translate import Placement, gatewayapi, naming, to_envoy
from ..translate import ir as irmod
from ..xds import Snapshot, XdsServer, make_bootstrap

SPLIT_SAMPLES = 200
SPLIT_TOLERANCE = 0.15  # largest difference of one service's share between the two sides (3 sigma at 200)


class VerifyError(Exception):
    """A set the verifier cannot run, with what to do instead."""


def _without_mesh_tls(resources) -> list:
    """The resources with the mesh's own TLS left out: virtual node listeners' TLS and client
    policies. The verifier runs no sidecars (the gateways reach the apps directly), and the export
    does not carry mesh TLS either (a stays-behind finding); a gateway listener's TLS stays, and is
    compared: both gateways serve HTTPS."""
    out = []
    for r in resources:
        if r.kind in ("VirtualNode", "VirtualGateway"):
            spec = copy.deepcopy(r.spec)
            if r.kind == "VirtualNode":
                for lst in spec.get("listeners") or []:
                    if isinstance(lst, dict):
                        lst.pop("tls", None)
            ((spec.get("backendDefaults") or {}).get("clientPolicy") or {}).pop("tls", None)
            for b in spec.get("backends") or []:
                ((b.get("virtualService") or {}).get("clientPolicy") or {}).pop("tls", None) \
                    if isinstance(b, dict) else None
            r = dataclasses.replace(r, spec=spec)
        out.append(r)
    return out


def _gateway_tls(app_mesh: list, gateway_api: list) -> bool:
    """Whether a gateway listener of either side terminates TLS."""
    return any((lst.get("tls") or {}).get("mode", "DISABLED") != "DISABLED"
               for r in app_mesh if r.kind == "VirtualGateway" for lst in r.spec.get("listeners") or []) or any(
        lst.get("protocol") in ("HTTPS", "TLS") for r in gateway_api if r.kind == "Gateway"
        for lst in r.spec.get("listeners") or [])


class OneLab:
    """The App Mesh set and its export applied side by side to one local lab of their own (plain HTTP
    gateways; the mesh's own TLS is left out, as the export carries none)."""

    def __init__(self, app_mesh_resources: list, gateway_api_resources: list, workdir: Path):
        self.app_mesh = _without_mesh_tls(app_mesh_resources)
        self.am = World(self.app_mesh)
        self.gateway_api = gateway_api_resources
        self.home = workdir / "lab"
        self.vg = self.am.by_kind["VirtualGateway"][0]
        self.gw = next(r for r in gateway_api_resources if r.kind == "Gateway")
        self.target = None

    def _docs(self) -> tuple[str, str]:
        import yaml

        from ..model.gatewayapi import CONTROLLER_NAME, V1
        classes = sorted({r.spec.get("gatewayClassName") for r in self.gateway_api if r.kind == "Gateway"})
        # the lab serves the export's class: a GatewayClass of that name with the lab's controller
        own = [{"apiVersion": V1, "kind": "GatewayClass", "metadata": {"name": c},
                "spec": {"controllerName": CONTROLLER_NAME}} for c in classes]
        export = [r.raw for r in self.gateway_api if r.kind != "GatewayClass"]
        app_mesh = [dict(r.raw, spec=r.spec) if "spec" in r.raw else r.raw for r in self.app_mesh]
        return (yaml.safe_dump_all(app_mesh, sort_keys=False), yaml.safe_dump_all(own + export, sort_keys=False))

    def __enter__(self):
        from ..targets.base import TargetError
        from ..targets.local import LocalTarget
        app_mesh, gateway_api = self._docs()
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.target = LocalTarget(home=str(self.home), echo=False)
        try:
            self.target.up()
            self.target.apply_text(app_mesh, name="<App Mesh set>", timeout=60)
            self.target.apply_text(gateway_api, name="<Gateway API export>", timeout=60)
            self.vg_port = self._port("virtualGateway", self.vg.aws_name(),
                                      (self.vg.spec["listeners"][0].get("portMapping") or {}).get("port"))
            self.gw_port = self._port("gateway", f"{self.gw.name}_{self.gw.namespace}",
                                      self.gw.spec["listeners"][0]["port"])
            self._apps_run()
        except TargetError as exc:
            self.__exit__(None, None, None)
            raise VerifyError(f"the lab did not take the set: {exc}") from exc
        except VerifyError:
            self.__exit__(None, None, None)
            raise
        return self

    def _port(self, kind: str, name: str, listener) -> int:
        for g in self.target.status()["gateways"]:
            if g["node_id"].split("/")[-2:] == [kind, name]:
                url = g["listeners"].get(str(listener)) or next(iter(g["listeners"].values()))
                return int(url.rsplit(":", 1)[1])
        raise VerifyError(f"the lab runs no {kind} {name}: is it served? (`appmesh-lab get gateways -A` on a lab "
                          "with the set shows its conditions)")

    def _apps_run(self) -> None:
        """Requests are answered by the set's own apps: each virtual node needs pods."""
        from ..apps import SAMPLE_IMAGE
        served = {p["proxy"] for p in self.target.pods()}
        missing = [vn.ref for vn in sorted(self.am.by_kind["VirtualNode"], key=lambda r: r.key) if vn.ref not in served]
        if missing:
            raise VerifyError(f"no pod runs {', '.join(missing)}: the verifier sends its requests to the set's apps; "
                              f"add the Deployments of their pods (the kit's sample app, {SAMPLE_IMAGE}, answers with "
                              "the path and Host it received)")

    def __exit__(self, *exc):
        if self.target is not None and self.target.running():
            self.target.down()

    def ask(self, port: int, method: str, path: str, headers: dict) -> tuple:
        return ask(port, method, path, headers)

    def ask_grpc(self, port: int, path: str, authority: str, metadata: tuple, channel=None) -> tuple:
        return ask_grpc(port, path, authority, metadata, channel)  # a channel of its own when None, closed after

    def channel(self, port: int, authority: str):
        return grpc_channel(port, authority)

    def both(self, method: str, path: str, headers: dict) -> tuple:
        return self.ask(self.vg_port, method, path, headers), self.ask(self.gw_port, method, path, headers)


class SideBySide:
    """Sample apps, the App Mesh gateway and the Gateway API gateway, on loopback.

    A gateway listener with TLS serves HTTPS on both sides: the App Mesh side's certificate files
    are made by the lab's CA as the local lab makes them (lab/runtime/certs.py); the Gateway API
    side's Secrets are made of the same files, as the export's `kubectl create secret tls`
    commands make them (`secrets`: Export.secrets), its CA ConfigMaps likewise (`configmaps`:
    Export.configmaps, for Gateway.spec.tls.frontend), and written owner-only for Envoy
    (lab/runtime/secrets.py). All of it lives in a 0700 folder removed at the end.
    """

    def __init__(self, app_mesh_resources: list, gateway_api_resources: list, workdir: Path,
                 secrets: list | None = None, configmaps: list | None = None):
        app_mesh_resources = _without_mesh_tls(app_mesh_resources)
        self.am = World(app_mesh_resources)
        self.workdir = workdir
        self.apps, self.envoys = [], []
        self.sockets = Path(tempfile.mkdtemp(prefix="lab-gwapi-"))
        try:
            self.files_am, made = self._certificates(app_mesh_resources, gateway_api_resources, secrets or [],
                                                      configmaps or [])
        except BaseException:
            shutil.rmtree(self.sockets, ignore_errors=True)
            raise
        self.world = World(app_mesh_resources + gateway_api_resources + made)
        self.xds = XdsServer(unix_socket=str(self.sockets / "xds.sock"))
        endpoints, self.app_ports, self.grpc_nodes = {}, {}, set()
        nodes = sorted(self.am.by_kind["VirtualNode"], key=lambda r: r.key)
        ports = iter(free_ports(len(nodes) + 4))
        for vn in nodes:
            mesh = self.am.mesh_of(vn)
            port = next(ports)
            self.app_ports[vn.name] = port
            if any((lst.get("portMapping") or {}).get("protocol") == "grpc" for lst in vn.spec.get("listeners") or []):
                self.grpc_nodes.add(vn.name)
            nid = naming.node_id(mesh.aws_name(), "virtualNode", vn.aws_name())
            endpoints[nid] = {(lst.get("portMapping") or {}).get("port"): [["127.0.0.1", port]]
                              for lst in vn.spec.get("listeners") or []}
        self.vg = self.am.by_kind["VirtualGateway"][0]
        self.gw = self.world.by_kind["Gateway"][0]
        self.vg_id = irmod.proxy_id(self.am, self.vg)
        self.gw_id = gatewayapi.node_id(self.gw)
        self.vg_port, self.gw_port = next(ports), next(ports)
        self.placement = Placement(
            bind_address="127.0.0.1", endpoints=endpoints,
            listeners={self.vg_id: {(self.vg.spec["listeners"][0]["portMapping"])["port"]: self.vg_port},
                       self.gw_id: {self.gw.spec["listeners"][0]["port"]: self.gw_port}},
            egress={self.vg_id: next(ports), self.gw_id: next(ports)})
        problems = gatewayapi.listener_problems(self.world, self.gw)
        if problems:
            shutil.rmtree(self.sockets, ignore_errors=True)
            raise VerifyError(f"{self.gw.ref} is not served as written: " + "; ".join(
                f"{path}: {msg} ({hint})" for path, msg, hint in problems))
        self.files_gw = write_tls_secrets(self.world, self.sockets / "secrets")
        ca = self.certs / "ca" / "ca.crt"
        self.ca_pem = ca.read_bytes() if ca.is_file() else None
        try:
            self.client = self._client_certificate()
        except BaseException:
            shutil.rmtree(self.sockets, ignore_errors=True)
            raise
        self.tls = {self.vg_port: bool((self.vg.spec["listeners"][0].get("tls") or {}).get("mode", "DISABLED")
                                       != "DISABLED"),
                    self.gw_port: self.gw.spec["listeners"][0].get("protocol") == "HTTPS"}

    def _certificates(self, app_mesh: list, gateway_api: list, secrets: list, configmaps: list) -> tuple[dict, list]:
        """The App Mesh side's certificate files (path in the manifests -> file), and the TLS Secrets
        and CA ConfigMaps the export's commands make of them (those the Gateway API objects do not bring)."""
        self.certs = self.sockets / "certs"
        paths, sans = certs.tls_paths(World(app_mesh))
        files = certs.ensure(self.certs, paths, sans)
        have = {(r.namespace, r.name) for r in gateway_api if r.kind == "Secret"}
        made = []
        for sec in secrets:
            if (sec["namespace"], sec["name"]) in have:
                continue
            if sec["cert"] not in files or sec["key"] not in files:
                raise VerifyError(f"the Secret {sec['namespace']}/{sec['name']} is made of {sec['cert']} and "
                                  f"{sec['key']}, which the lab does not make: name files under "
                                  f"{certs.PREFIX}<name>/tls.crt and tls.key, as the local lab reads them")
            made.append(gatewayapi.tls_secret(sec["namespace"], sec["name"], Path(files[sec["cert"]]).read_bytes(),
                                              Path(files[sec["key"]]).read_bytes()))
        have = {(r.namespace, r.name) for r in gateway_api if r.kind == "ConfigMap"}
        for cm in configmaps:
            if (cm["namespace"], cm["name"]) in have:
                continue
            if cm["ca"] not in files:
                raise VerifyError(f"the ConfigMap {cm['namespace']}/{cm['name']} is made of {cm['ca']}, which the "
                                  f"lab does not make: name the trust file {certs.PREFIX}ca/ca.crt, as the local "
                                  "lab reads it")
            made.append(gatewayapi.ca_configmap(cm["namespace"], cm["name"], Path(files[cm["ca"]]).read_bytes()))
        return files, made

    def _client_certificate(self) -> tuple | None:
        """(certificate file, key file) the probes present when the App Mesh gateway's listener
        validates client certificates (tls.validation): a client certificate of the verifier's
        own CA, the one the listener's trust file names on this side; None otherwise. The
        export's side is sent it too: whether that side requires it is the export's finding."""
        if not (self.vg.spec["listeners"][0].get("tls") or {}).get("validation"):
            return None
        if not (self.certs / "ca" / "ca.key").is_file():
            raise VerifyError(f"{self.vg.ref}: spec.listeners[0].tls.validation trusts no CA the verifier makes: "
                              f"name the trust file {certs.PREFIX}ca/ca.crt, as the local lab reads it")
        cert, key = pki.make_leaf(certs.load_ca(self.certs / "ca"), "migrate-verify client", 1,
                                  ["migrate-verify.client"], role="client")
        out = self.sockets / "client"
        out.mkdir(mode=0o700)
        (out / "tls.crt").write_bytes(pki.pem(cert))
        (out / "tls.key").touch(mode=0o600)
        (out / "tls.key").write_bytes(pki.key_pem(key))
        return str(out / "tls.crt"), str(out / "tls.key")

    def context(self, port: int):
        """An SSL context for the side on `port` (None when it is plain HTTP): the lab CA trusted,
        the host name not checked (probes use made-up hosts; the certificate names the gateway);
        the client certificate presented when the App Mesh gateway asks for one."""
        if not self.tls.get(port):
            return None
        ctx = ssl.create_default_context(cadata=self.ca_pem.decode() if self.ca_pem else None)
        ctx.check_hostname = False
        if self.client:
            ctx.load_cert_chain(*self.client)
        return ctx

    def side(self, port: int) -> str:
        return f"the App Mesh gateway {self.vg.ref}" if port == self.vg_port else f"the exported Gateway {self.gw.ref}"

    def ask(self, port: int, method: str, path: str, headers: dict) -> tuple:
        try:
            return ask(port, method, path, headers, tls=self.context(port))
        except (OSError, http.client.HTTPException) as exc:
            what = "the TLS handshake failed" if isinstance(exc, ssl.SSLError) else "the request failed"
            hint = ""
            if self.client and port == self.vg_port:
                hint = (f"; the probes present a client certificate of the verifier's CA: does "
                        f"spec.listeners[0].tls.validation.trust name {certs.PREFIX}ca/ca.crt?")
            raise VerifyError(f"{self.side(port)} (127.0.0.1:{port}): {what} for {method} {path}: "
                              f"{exc}{hint}") from exc

    def ask_grpc(self, port: int, path: str, authority: str, metadata: tuple, channel=None) -> tuple:
        return ask_grpc(port, path, authority, metadata, channel or self.channel(port, authority))

    def channel(self, port: int, authority: str):
        return grpc_channel(port, authority, self.ca_pem if self.tls.get(port) else None,
                            self.client if self.tls.get(port) else None)

    def __enter__(self):
        self.xds.start()
        for vn, port in self.app_ports.items():
            env = dict(os.environ, PORT=str(port), HOST="127.0.0.1", SERVICE_NAME=vn, POD_NAME=vn)
            app = "lab.apps.grpc_echo" if vn in self.grpc_nodes else "lab.apps.sample"
            self.apps.append(subprocess.Popen([sys.executable, "-m", app], env=env,
                                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.DEVNULL))
        irs = {self.vg_id: irmod.gateway_ir(self.am, self.vg, self.placement),
               self.gw_id: gatewayapi.gateway_ir(self.world, self.gw, self.placement)}
        files = {self.vg_id: self.files_am, self.gw_id: self.files_gw}
        for i, (nid, ir) in enumerate(irs.items()):
            boot = make_bootstrap(nid, cluster="gateway", xds_socket=self.xds.unix_socket,
                                  admin_socket=str(self.sockets / f"admin{i}.sock"))
            envoy = EnvoyProcess(boot, self.workdir, name=f"gw{i}")
            envoy.start()
            self.envoys.append(envoy)
            snap = Snapshot.from_dicts("v1", **to_envoy(ir, files[nid]))
            self.xds.set_snapshot(nid, snap)
            if not self.xds.wait_for_ack(nid, "v1", 20):
                self.__exit__(None, None, None)
                raise VerifyError(f"Envoy did not accept the configuration of {nid}: {self.xds.status(nid)}")
        for port in list(self.app_ports.values()) + [self.vg_port, self.gw_port]:
            wait_listening(port)
        return self

    def __exit__(self, *exc):
        for e in self.envoys:
            e.stop(3)
        for a in self.apps:
            a.terminate()
            a.wait(5)
        self.xds.stop(0)
        shutil.rmtree(self.sockets, ignore_errors=True)

    def both(self, method: str, path: str, headers: dict) -> tuple:
        return self.ask(self.vg_port, method, path, headers), self.ask(self.gw_port, method, path, headers)


def free_ports(n: int) -> list[int]:
    """`n` different ports free a moment ago: held all at once, so no two are the same (the apps
    and Envoys bind with SO_REUSEPORT, so a port handed out twice would be shared, not refused)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_listening(port: int, timeout: float = 20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise VerifyError(f"nothing listens on port {port} after {timeout:.0f} s")


def ask(port: int, method: str, path: str, headers: dict, tls: ssl.SSLContext | None = None) -> tuple:
    """One request; over TLS when `tls` is given, naming the request's Host in SNI, as a client would."""
    headers = {"Host": "client.example", **headers}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    if tls is not None:
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            conn.sock = tls.wrap_socket(raw, server_hostname=headers["Host"].rsplit(":", 1)[0])
        except BaseException:
            raw.close()
            raise
    conn.request(method, path, headers=headers)
    r = conn.getresponse()
    body = r.read()
    conn.close()
    try:
        data = json.loads(body)
        return (r.status, _answered_by(data), data["request"]["path"], data["request"]["host"])
    except (ValueError, KeyError, TypeError):
        return (r.status, None, None, None)


_POD = re.compile(r"(.+)-[0-9a-f]{10}-[b-z2-9]{5}")  # <deployment>-<template hash>-<suffix> (lab/runtime/pods.py)


def _answered_by(data: dict):
    """The workload that answered: the Deployment of the pod (two versions of one service, as in a
    canary, are told apart), else the service name the app gives."""
    m = _POD.fullmatch(str(data.get("pod") or ""))
    return m.group(1) if m else data.get("service")


def ask_grpc(port: int, path: str, authority: str, metadata: tuple, channel=None) -> tuple:
    """A real gRPC call (unary, JSON bytes as the echo app takes them): (grpc-status name, the
    service that answered, the method it received, the authority it received). The answering
    service comes from the app's x-served-by metadata, so an UNIMPLEMENTED from the app (a method
    it lacks) is told apart from one Envoy answers for a call no route matches."""
    import grpc
    own = channel is None
    ch = channel or grpc_channel(port, authority)  # the caller's channel closes with the caller
    try:
        call = ch.unary_unary(path, request_serializer=None, response_deserializer=None)
        try:
            body, info = call.with_call(b"{}", metadata=tuple(metadata), timeout=10)
        except grpc.RpcError as exc:
            served = dict(exc.initial_metadata() or ()).get("x-served-by")
            seen = dict(exc.trailing_metadata() or ())  # the echo app's answer to a method it lacks
            by = {"service": served.split("/")[0], "pod": served.split("/")[-1]} if served else {}
            return (exc.code().name, _answered_by(by) if served else None, seen.get("x-request-method"),
                    seen.get("x-request-authority"))
        try:
            data = json.loads(body)
            return ("OK", _answered_by(data), data["request"]["method"], data["request"]["authority"])
        except (ValueError, KeyError, TypeError):
            return ("OK", None, None, None)
    finally:
        if own:
            ch.close()


def grpc_channel(port: int, authority: str, ca_pem: bytes | None = None, client: tuple | None = None):
    """A channel to a gateway; over TLS trusting `ca_pem` when given (the server name checked is
    localhost, which the lab's certificates carry; the authority is the probe's), presenting the
    client certificate `client` (certificate file, key file) when given."""
    import grpc
    options = [("grpc.default_authority", authority), ("grpc.enable_retries", 0)]
    if ca_pem is None:
        return grpc.insecure_channel(f"127.0.0.1:{port}", options=options)
    return grpc.secure_channel(f"127.0.0.1:{port}", grpc.ssl_channel_credentials(
        root_certificates=ca_pem, private_key=Path(client[1]).read_bytes() if client else None,
        certificate_chain=Path(client[0]).read_bytes() if client else None),
                               options=options + [("grpc.ssl_target_name_override", "localhost")])


def _split_targets(world: World, vs_name: str) -> bool:
    """Does the virtual service (by its App Mesh name) route by weights to more than one node?"""
    for vs in world.by_kind["VirtualService"]:
        if vs.aws_name() != vs_name:
            continue
        ref = (vs.spec.get("provider") or {}).get("virtualRouter") or {}
        vr = world.resolve("VirtualRouter", ref.get("virtualRouterRef"), ref.get("virtualRouterARN"), vs)
        for route in (vr.spec.get("routes") or []) if vr else []:
            for key in ("httpRoute", "http2Route", "grpcRoute"):
                wts = ((route.get(key) or {}).get("action") or {}).get("weightedTargets") or []
                if len([w for w in wts if w.get("weight", 0) > 0]) > 1:
                    return True
    return False


def _split_routes(world: World) -> set:
    out = set()
    for gr in world.by_kind["GatewayRoute"]:
        for key in ("httpRoute", "http2Route", "grpcRoute"):
            vsref = (((gr.spec.get(key) or {}).get("action") or {}).get("target") or {}).get("virtualService") or {}
            vs = world.resolve("VirtualService", vsref.get("virtualServiceRef"), vsref.get("virtualServiceARN"), gr)
            if vs is not None and _split_targets(world, vs.aws_name()):
                out.add(f"GatewayRoute {gr.namespace}/{gr.name}")
    return out


def _warm_up(lab, probes, timeout: float = 20.0) -> None:
    """Until both gateways route a request each must take (an ACKed configuration can take a
    moment more to serve on a loaded machine), or `timeout` seconds."""
    if not probes:
        return
    p = probes[0]
    headers = dict(p.headers, Host=p.host)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if p.grpc:
            a, g = (lab.ask_grpc(port, p.path, p.host, p.headers) for port in (lab.vg_port, lab.gw_port))
            if a[1] and g[1]:
                return
        else:
            a, g = lab.both(p.method, p.path, headers)
            if a[0] not in (404, 503) and g[0] not in (404, 503):
                return
        time.sleep(0.1)


def _answer(a) -> dict:
    return {"status": a[0], "service": a[1], "path": a[2], "host": a[3]}


def run(app_mesh, gateway_api, probes, announced, workdir: Path, secrets: list | None = None,
        configmaps: list | None = None) -> list[dict]:
    """One row per probe: the two answers, whether they differ and whether a finding announced it."""
    from ..migrate.probes import is_announced
    world = World(app_mesh)
    split = _split_routes(world)
    rows = []
    one_lab = not _gateway_tls(app_mesh, gateway_api)
    with (OneLab(app_mesh, gateway_api, workdir) if one_lab else SideBySide(app_mesh, gateway_api, workdir, secrets,
                                                                                configmaps)) \
            as lab:
        _warm_up(lab, [p for p in probes if p.tag == "match"])
        for p in probes:
            headers = dict(p.headers)
            if p.host:
                headers["Host"] = p.host
            row = {"probe": p.to_dict(), "request": p.describe()}
            if p.route in split or (split and not p.route):  # a user's request may reach a split
                am, gw = (_samples(lab, lab.vg_port, p, headers), _samples(lab, lab.gw_port, p, headers))
                share_am = {k: v / len(am) for k, v in Counter(a[1] for a in am).items()}
                share_gw = {k: v / len(gw) for k, v in Counter(a[1] for a in gw).items()}
                # GRPCRoute cannot rewrite the authority: compared only when the export did not say so
                n = 3 if p.grpc and is_announced(p, announced, only_authority=True) else 4
                rest_am = {(a[0],) + a[2:n] for a in am}
                rest_gw = {(a[0],) + a[2:n] for a in gw}
                worst = max(abs(share_am.get(k, 0) - share_gw.get(k, 0)) for k in set(share_am) | set(share_gw))
                row.update(app_mesh={"split": dict(sorted(share_am.items(), key=str))},
                           gateway_api={"split": dict(sorted(share_gw.items(), key=str))},
                           differs=worst > SPLIT_TOLERANCE or rest_am != rest_gw)
            elif p.grpc:
                a, g = (lab.ask_grpc(port, p.path, p.host, p.headers) for port in (lab.vg_port, lab.gw_port))
                row.update(app_mesh=_answer(a), gateway_api=_answer(g), differs=a != g)
            else:
                a, g = lab.both(p.method, p.path, headers)
                row.update(app_mesh=_answer(a), gateway_api=_answer(g), differs=a != g)
            only_authority = p.grpc and "split" not in row["app_mesh"] and a[:3] == g[:3]
            row["announced"] = bool(row["differs"]) and is_announced(p, announced, only_authority)
            rows.append(row)
        if getattr(lab, "client", None):
            rows.append(_without_client_certificate(lab, [p for p in probes if p.tag == "match"], announced))
    return rows


NO_CLIENT_CERT = "refused: no client certificate"


def _without_client_certificate(lab, probes, announced: dict) -> dict:
    """The App Mesh gateway asks clients for a certificate (tls.validation): one request of the
    set sent to both sides without one. The App Mesh side refuses it in the TLS handshake; an
    export that cannot require client certificates answers it, a difference its finding announces
    (a gRPC-only set is sent a plain GET: the handshake is what is compared)."""
    from ..migrate.probes import Probe
    p = next((q for q in probes if not q.grpc), None) or Probe("GET", "/", "client.example")
    client, lab.client = lab.client, None
    try:
        answers = []
        for port in (lab.vg_port, lab.gw_port):
            try:
                answers.append(_answer(ask(port, p.method, p.path, dict(p.headers, Host=p.host),
                                           tls=lab.context(port))))
            except (OSError, http.client.HTTPException):  # the handshake ended by the server
                answers.append({"status": NO_CLIENT_CERT, "service": None, "path": None, "host": None})
    finally:
        lab.client = client
    a, g = answers
    key = f"VirtualGateway {lab.vg.namespace}/{lab.vg.name}"
    differs = a != g
    return {"probe": dict(p.to_dict(), tag="client-certificate"),
            "request": p.describe() + " (no client certificate)", "app_mesh": a, "gateway_api": g,
            "differs": differs, "announced": differs and "client-certificate" in (announced.get(key) or ())}


def _samples(lab, port: int, p, headers: dict) -> list[tuple]:
    if not p.grpc:
        return [lab.ask(port, p.method, p.path, headers) for _ in range(SPLIT_SAMPLES)]
    ch = lab.channel(port, p.host)
    try:
        return [lab.ask_grpc(port, p.path, p.host, p.headers, ch) for _ in range(SPLIT_SAMPLES)]
    finally:
        ch.close()


def _fmt(ans: dict) -> str:
    if "split" in ans:
        return "split " + ", ".join(f"{k}: {v:.0%}" for k, v in ans["split"].items())
    if ans["service"] is None:
        return str(ans["status"])
    return f"{ans['status']} {ans['service']} {ans['path']} (Host {ans['host']})"


def table(rows: list[dict]) -> str:
    differ = [r for r in rows if r["differs"]]
    lines = [f"{len(rows)} request(s) sent to both gateways; {len(differ)} routed differently"
             f" ({sum(1 for r in differ if r['announced'])} announced by a finding)"]
    if differ:
        head = ("request", "App Mesh", "Gateway API", "finding")
        body = [(r["request"], _fmt(r["app_mesh"]), _fmt(r["gateway_api"]), "announced" if r["announced"] else "NONE")
                for r in differ]
        widths = [max(len(x[i]) for x in [head] + body) for i in range(4)]
        lines.append("  ".join(h.ljust(w) for h, w in zip(head, widths)))
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in body]
    return "\n".join(lines)
