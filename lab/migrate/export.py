"""App Mesh -> Kubernetes Gateway API (standard channel v1.6.1). Pure: resources in, objects out.

  VirtualGateway (+ the Service in front of it)  -> Gateway, one listener per App Mesh listener
  GatewayRoute (http, http2 / grpc)               -> HTTPRoute / GRPCRoute on that Gateway
  VirtualService provided by a VirtualRouter      -> GAMMA HTTPRoute / GRPCRoute whose parentRef is
                                                     the virtual service's Service
  a backend in another namespace                  -> ReferenceGrant
What Gateway API cannot say becomes a finding (file, line, field path, hint), never a silent drop.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field

from ..model import Problem, Resource, World, selector_matches
from ..translate.precedence import sort_key
from . import matches as M
from .order import Entry, conflicts, describe
from .profiles import PROFILES

GROUP = "gateway.networking.k8s.io"
API = f"{GROUP}/v1"
_PRECISE_HOST = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# App Mesh's HTTP retry events as status codes (App Mesh API reference, HttpRetryPolicy)
RETRY_EVENT_CODES = {"server-error": (500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511),
                     "gateway-error": (502, 503, 504), "client-error": (409,)}
DEFAULT_PER_REQUEST = "15s"  # App Mesh's per-request timeout when a route sets none (APPMESH-FACTS)


@dataclass
class Obj:
    kind: str
    namespace: str
    name: str
    body: dict
    sources: list = field(default_factory=list)  # "GatewayRoute ns/name (file:line)"


@dataclass
class Export:
    objects: list = field(default_factory=list)
    findings: list = field(default_factory=list)
    commands: list = field(default_factory=list)
    # the TLS Secrets the commands make: {"namespace", "name", "cert", "key"} (the files' paths as
    # the manifests name them), for the verifier to make them the same way
    secrets: list = field(default_factory=list)
    # the CA ConfigMaps the commands make (Gateway.spec.tls.frontend): {"namespace", "name", "ca"}
    configmaps: list = field(default_factory=list)
    # which requests the findings say route differently: "GatewayRoute ns/name" -> tags of
    # lab/migrate/probes.py ("*": every request of that route), plus precedence examples
    announced: dict = field(default_factory=dict)

    def of_kind(self, kind: str) -> list:
        return [o for o in self.objects if o.kind == kind]

    def resources(self) -> list:
        """The exported objects as model resources (what the lab's Gateway API translation reads)."""
        out = []
        for o in self.objects:
            md = o.body["metadata"]
            out.append(Resource(o.body["apiVersion"], o.kind, md["name"], md.get("namespace"), dict(md.get("labels") or {}),
                                dict(md.get("annotations") or {}), copy.deepcopy(o.body.get("spec") or {}), None,
                                copy.deepcopy(o.body)))
        return out


def _source(r: Resource) -> str:
    return f"{r.kind} {r.namespace}/{r.name} ({r.file}:{r.line_of('metadata.name')})"


class _Exporter:
    def __init__(self, resources, profile: str, experimental: bool = False):
        self.experimental = experimental
        self.world = World(resources)
        self.profile = PROFILES[profile]
        self.profile_name = profile
        self.out = Export()
        self.taken: set = set()
        self.grants: dict = {}  # (backend ns) -> {from (kind, ns)}
        self.listener_names: dict = {}  # (vg key, envoy port) -> (section name, protocol)

    # -- findings -------------------------------------------------------------------------
    def find(self, r: Resource, path: str, message: str, hint: str = "", code: str = "semantics"):
        self.out.findings.append(Problem(r.file, r.line_of(path), path, message, hint, code, "warning",
                                         r.doc.index if r.doc else 0))

    def _name(self, kind: str, ns: str, want: str) -> str:
        name, n = want, 2
        while (kind, ns, name) in self.taken:
            name, n = f"{want}-{n}", n + 1
        self.taken.add((kind, ns, name))
        return name

    # -- Services -------------------------------------------------------------------------
    def _service_from_host(self, host: str, ns: str) -> tuple[str, str]:
        parts = host.lower().split(".")
        if len(parts) >= 2 and parts[1] and (len(parts) == 2 or parts[2] == "svc"):
            return parts[1], parts[0]
        return ns, parts[0]

    def _service_port(self, ns: str, name: str, port) -> int:
        svc = self.world.get("Service", ns, name)
        for p in (svc.spec.get("ports") or []) if svc else []:
            if p.get("port") == port:
                return port
        for p in (svc.spec.get("ports") or []) if svc else []:
            if p.get("targetPort") == port:
                return p["port"]
        return port

    def vs_service(self, vs: Resource) -> tuple[str, str]:
        ns, name = self._service_from_host(vs.aws_name(), vs.namespace)
        if self.world.get("Service", ns, name) is None and self.world.get("Service", vs.namespace, vs.name):
            ns, name = vs.namespace, vs.name
        if self.world.get("Service", ns, name) is None:
            self.find(vs, "spec.awsName", f"no Service {ns}/{name} in these manifests: the export sends "
                      f"{vs.aws_name()} to it", f"create the Service {name} in {ns} (Gateway API routes name "
                      "Services, not virtual services)", "missing-service")
        return ns, name

    def vs_port(self, vs: Resource, port=None):
        prov = vs.spec.get("provider") or {}
        if port is None:
            for kind, key in (("VirtualNode", "virtualNode"), ("VirtualRouter", "virtualRouter")):
                ref = prov.get(key) or {}
                r = self.world.resolve(kind, ref.get(key + "Ref"), ref.get(key + "ARN"), vs)
                if r is not None:
                    lst = [x for x in r.spec.get("listeners") or [] if isinstance(x, dict)]
                    if lst:
                        port = (lst[0].get("portMapping") or {}).get("port")
        ns, name = self.vs_service(vs)
        return ns, name, self._service_port(ns, name, port or 80)

    def backend(self, route_kind: str, route_ns: str, ns: str, name: str, port: int, weight=None) -> dict:
        ref: dict = {"name": name}
        if ns != route_ns:
            ref["namespace"] = ns
            self.grants.setdefault(ns, set()).add((route_kind, route_ns))
        ref["port"] = port
        if weight is not None:
            ref["weight"] = weight
        return ref

    # -- Gateways -------------------------------------------------------------------------
    def gateway(self, vg: Resource):
        listeners = []
        frontend: dict = {}  # listener port -> caCertificateRefs (the listeners that validate clients)
        for i, lst in enumerate(vg.spec.get("listeners") or []):
            base = f"spec.listeners[{i}]"
            pm = lst.get("portMapping") or {}
            port, proto = pm.get("port"), pm.get("protocol")
            tls = lst.get("tls") or {}
            mode = tls.get("mode")
            https = mode in ("STRICT", "PERMISSIVE")
            section = f"{'https' if https else 'http'}-{port}"
            self.listener_names[(vg.key, port)] = (section, proto)
            out: dict = {"name": section, "port": self._front_port(vg, port, base), "protocol":
                         "HTTPS" if https else "HTTP"}
            if https:
                out["tls"] = {"mode": "Terminate", "certificateRefs": [self._certificate(vg, tls, f"{base}.tls")]}
                if mode == "PERMISSIVE":
                    self.find(vg, f"{base}.tls.mode", "PERMISSIVE (plain text and TLS on one port) has no Gateway "
                              "API equivalent; the listener is HTTPS only", "add a second, HTTP listener on "
                              "another port if plain-text clients remain", "no-equivalent")
                if tls.get("validation"):
                    self._client_validation(vg, tls["validation"], f"{base}.tls.validation", out["port"], frontend)
            sel = vg.spec.get("namespaceSelector")
            if sel is not None:
                s = {k: v for k, v in sel.items() if k in ("matchLabels", "matchExpressions")}
                out["allowedRoutes"] = {"namespaces": {"from": "Selector", "selector": s}}
            else:
                out["allowedRoutes"] = {"namespaces": {"from": "Same"}}
                self.find(vg, "spec.namespaceSelector", "no namespaceSelector: App Mesh attached no gateway "
                          "route, the Gateway accepts routes from its own namespace",
                          "set allowedRoutes as you mean it", "semantics")
            for key, what in (("connectionPool", "pool"), ("healthCheck", "health")):
                if lst.get(key):
                    self._stays(vg, f"{base}.{key}", key, what)
            listeners.append(out)
        if vg.spec.get("gatewayRouteSelector") is not None:
            self.find(vg, "spec.gatewayRouteSelector", "a gatewayRouteSelector has no Gateway API equivalent: "
                      "routes choose their Gateway", "the export writes parentRefs only on the routes the "
                      "selector picked", "no-equivalent")
        cp = (vg.spec.get("backendDefaults") or {}).get("clientPolicy")
        if cp:
            self._stays(vg, "spec.backendDefaults.clientPolicy", "client TLS policy", "mtls")
        if (vg.spec.get("logging") or {}).get("accessLog"):
            self._stays(vg, "spec.logging.accessLog", "access log", "logging")
        body = {"apiVersion": API, "kind": "Gateway", "metadata": {"name": vg.name, "namespace": vg.namespace},
                "spec": {"gatewayClassName": self.profile["gateway_class"], "listeners": listeners}}
        if frontend:
            body["spec"]["tls"] = {"frontend": self._frontend(listeners, frontend)}
        self.taken.add(("Gateway", vg.namespace, vg.name))
        self.out.objects.append(Obj("Gateway", vg.namespace, vg.name, body, [_source(vg)]))

    def _front_port(self, vg: Resource, port: int, path: str) -> int:
        """The port of the Service in front of the gateway pods that leads to `port`."""
        for svc in self.world.by_kind["Service"]:
            if svc.namespace != vg.namespace:
                continue
            sel = svc.spec.get("selector") or {}
            if not sel or not selector_matches(vg.spec.get("podSelector"), sel):
                continue
            for p in svc.spec.get("ports") or []:
                if p.get("targetPort", p.get("port")) == port or (p.get("targetPort") is None and p.get("port") == port):
                    return p["port"]
        self.find(vg, f"{path}.portMapping.port", f"no Service in front of the gateway pods leads to port {port}; "
                  "the Gateway listens on the Envoy port itself", "add the Service (kind LoadBalancer) you expose "
                  "the gateway with; its port becomes the listener port", "missing-service")
        return port

    def _certificate(self, vg: Resource, tls: dict, path: str) -> dict:
        cert = tls.get("certificate") or {}
        f = cert.get("file")
        if not f:
            what = "ACM" if cert.get("acm") else "SDS"
            self.find(vg, f"{path}.certificate", f"an {what} certificate cannot be named by a Gateway",
                      "export the certificate into a Secret of type kubernetes.io/tls; the export refers to "
                      f"{vg.name}-tls", "no-equivalent")
            return {"kind": "Secret", "name": f"{vg.name}-tls"}
        name = self._mounted_secret(vg, f.get("certificateChain") or "") or f"{vg.name}-tls"
        self.out.commands.append(f"kubectl create secret tls {name} -n {vg.namespace} "
                                 f"--cert={f.get('certificateChain')} --key={f.get('privateKey')}")
        self.out.secrets.append({"namespace": vg.namespace, "name": name, "cert": f.get("certificateChain"),
                                 "key": f.get("privateKey")})
        return {"kind": "Secret", "name": name}

    def _client_validation(self, vg: Resource, validation: dict, path: str, port: int, frontend: dict):
        """listeners[].tls.validation -> the CA reference of Gateway.spec.tls.frontend (GEP-91, standard
        channel since v1.5: a ConfigMap holding the CA under the key ca.crt), where the profile serves it."""
        if not self.profile.get("frontend_tls"):
            self.find(vg, path, "client certificate validation is not exported: the exported Gateway accepts "
                      "clients without a certificate",
                      f"nearest in {self.profile_name}: {self.profile['near']['client_cert']}", "stays-behind")
            self.out.announced.setdefault(f"VirtualGateway {vg.namespace}/{vg.name}", set()).add("client-certificate")
            return
        trust = validation.get("trust") or {}
        f = (trust.get("file") or {}).get("certificateChain")
        if not f:
            name = f"{vg.name}-client-ca"
            self.find(vg, f"{path}.trust", "an SDS trust bundle cannot be named by a Gateway",
                      f"put the CA into a ConfigMap {name} (key ca.crt); the export refers to it", "no-equivalent")
        else:
            name = self._mounted_secret(vg, f) or f"{vg.name}-client-ca"
            cm = {"namespace": vg.namespace, "name": name, "ca": f}
            if cm not in self.out.configmaps:
                self.out.commands.append(f"kubectl create configmap {name} -n {vg.namespace} --from-file=ca.crt={f}")
                self.out.configmaps.append(cm)
        if validation.get("subjectAlternativeNames"):
            self.find(vg, f"{path}.subjectAlternativeNames", "Gateway.spec.tls.frontend has no subject alternative "
                      "name restriction: the exported Gateway accepts every client certificate its CA signed",
                      f"nearest in {self.profile_name}: {self.profile['near']['client_san']}", "no-equivalent")
        frontend[port] = [{"group": "", "kind": "ConfigMap", "name": name}]

    @staticmethod
    def _frontend(listeners: list, frontend: dict) -> dict:
        """One default when every HTTPS listener validates clients with the same CA, else one entry per port."""
        https = {x["port"] for x in listeners if x["protocol"] == "HTTPS"}
        refs = list(frontend.values())
        if set(frontend) == https and all(r == refs[0] for r in refs):
            return {"default": {"validation": {"caCertificateRefs": refs[0]}}}
        return {"default": {}, "perPort": [{"port": p, "tls": {"validation": {"caCertificateRefs": r}}}
                                           for p, r in sorted(frontend.items())]}

    def _mounted_secret(self, vg: Resource, file: str) -> str | None:
        for dep in self.world.by_kind["Deployment"]:
            tpl = (dep.spec.get("template") or {})
            if dep.namespace != vg.namespace or not selector_matches(vg.spec.get("podSelector"),
                                                                     (tpl.get("metadata") or {}).get("labels") or {}):
                continue
            pod = tpl.get("spec") or {}
            secrets = {v.get("name"): (v.get("secret") or {}).get("secretName") for v in pod.get("volumes") or []}
            for c in pod.get("containers") or []:
                for vm in c.get("volumeMounts") or []:
                    mp = (vm.get("mountPath") or "").rstrip("/") + "/"
                    if file.startswith(mp) and secrets.get(vm.get("name")):
                        return secrets[vm["name"]]
        return None

    def _announce(self, gr: Resource, path: str, msg: str, code: str):
        tags = set()
        if "string prefix" in msg:
            tags.add("prefix-boundary")
        elif "trailing slash" in msg:
            tags.add("prefix-no-slash")
        elif path.endswith(".hostname.suffix"):
            tags |= {"host-bare", "host-bad"}
        elif code in ("no-equivalent", "unsupported", "not-exported", "dropped"):
            tags.add("*")
        elif "range" in path:
            tags.add("header-range-edge")
        if tags:
            self.out.announced.setdefault(f"GatewayRoute {gr.namespace}/{gr.name}", set()).update(tags)

    def _stays(self, r: Resource, path: str, what: str, near: str):
        self.find(r, path, f"{what} is a per-proxy policy that Gateway API routes do not carry",
                  f"nearest in {self.profile_name}: {self.profile['near'][near]}", "stays-behind")

    # -- gateway routes -------------------------------------------------------------------
    def gateway_route(self, gr: Resource, scopes: dict):
        vgs = self.world.gateways_for(gr) or []
        if not vgs:
            self.find(gr, "metadata.namespace", "no VirtualGateway selects this gateway route; not exported",
                      "label its namespace for a VirtualGateway's namespaceSelector", "not-exported")
            return
        for key in ("httpRoute", "http2Route", "grpcRoute"):
            body = gr.spec.get(key)
            if not isinstance(body, dict):
                continue
            base = f"spec.{key}"
            grpc = key == "grpcRoute"
            match, action = body.get("match") or {}, body.get("action") or {}
            target = action.get("target") or {}
            vsref = target.get("virtualService") or {}
            vs = self.world.resolve("VirtualService", vsref.get("virtualServiceRef"), vsref.get("virtualServiceARN"), gr)
            if vs is None:
                self.find(gr, f"{base}.action.target", "the target virtual service is not in these manifests; "
                          "not exported", "export it together with its virtual service", "not-exported")
                continue
            parents = []
            want = {"httpRoute": "http", "http2Route": "http2", "grpcRoute": "grpc"}[key]
            for vg in vgs:
                for (vkey, port), (section, proto) in sorted(self.listener_names.items(), key=lambda x: str(x)):
                    if vkey == vg.key and proto == want and match.get("port") in (None, port):
                        ref = {"name": vg.name, "sectionName": section}
                        if vg.namespace != gr.namespace:
                            ref["namespace"] = vg.namespace
                        parents.append((vg, port, ref))
            if not parents:
                self.find(gr, base, f"no {want} listener{' on port ' + str(match['port']) if match.get('port') else ''} "
                          "on its VirtualGateway; not exported", "App Mesh did not route it either", "not-exported")
                continue
            conv = M.grpc_match if grpc else M.http_match
            gw_match, hosts, found = conv(match, f"{base}.match", self.profile)
            for path, msg, hint, code in found:
                self.find(gr, path, msg, hint, code)
                self._announce(gr, path, msg, code)
            if gw_match is None:
                self.out.announced.setdefault(f"GatewayRoute {gr.namespace}/{gr.name}", set()).add("*")
                self.find(gr, base, "not exported: its match cannot be written in Gateway API for this "
                          "implementation (see the findings above)", "restructure the route", "not-exported")
                continue
            ns, svc, port = self.vs_port(vs, target.get("port"))
            kind = "GRPCRoute" if grpc else "HTTPRoute"
            rule: dict = {"matches": [gw_match]} if gw_match else {}
            if grpc:
                rw = (action.get("rewrite") or {}).get("hostname") or {}
                if rw.get("defaultTargetHostname", "ENABLED") != "DISABLED":
                    self.find(gr, f"{base}.action.rewrite", "App Mesh rewrites the Host (:authority) to "
                              f"{vs.aws_name()} by default; GRPCRoute has no URLRewrite filter in the standard "
                              "channel, so the app sees the client's authority", "make the app accept any "
                              "authority, or set defaultTargetHostname: DISABLED to compare like for like",
                              "semantics")
                    self.out.announced.setdefault(f"GatewayRoute {gr.namespace}/{gr.name}", set()).add("authority")
            else:
                host = vs.aws_name().lower()
                if not _PRECISE_HOST.match(host):
                    self.find(gr, f"{base}.action.rewrite.hostname", f"{vs.aws_name()!r} is not a valid hostname "
                              "for a URLRewrite", "name the virtual service by its DNS name", "not-exported")
                    host = None
                if host is None:  # keep the path rewrite, leave the Host as it came
                    rw = dict(action.get("rewrite") or {}, hostname={"defaultTargetHostname": "DISABLED"})
                    action = dict(action, rewrite=rw)
                flt, found = M.http_rewrite(match, action, host or "", base, self.profile)
                for path, msg, hint, code in found:
                    self.find(gr, path, msg, hint, code)
                if flt:
                    rule["filters"] = [flt]
            rule["backendRefs"] = [self.backend(kind, gr.namespace, ns, svc, port)]
            spec: dict = {"parentRefs": [p[2] for p in parents]}
            if hosts:
                spec["hostnames"] = hosts
            spec["rules"] = [rule]
            name = self._name(kind, gr.namespace, gr.name)
            obj = Obj(kind, gr.namespace, name, {"apiVersion": API, "kind": kind,
                                                "metadata": {"name": name, "namespace": gr.namespace}, "spec": spec},
                      [_source(gr)])
            self.out.objects.append(obj)
            for vg, port, ref in parents:
                scopes.setdefault(("gateway", vg.key, port), []).append(Entry(
                    ref=f"GatewayRoute {gr.namespace}/{gr.name}", route=f"{gr.namespace}/{name}", rule=0,
                    appmesh_key=sort_key(gr.aws_name(), gr.spec.get("priority"), match), match=match, gw=gw_match,
                    hostnames=hosts, grpc=grpc, where=(gr, f"{base}.match")))

    # -- GAMMA: virtual services provided by a virtual router ---------------------------------
    def router(self, vs: Resource, scopes: dict, via_gateway: bool):
        prov = (vs.spec.get("provider") or {}).get("virtualRouter") or {}
        vr = self.world.resolve("VirtualRouter", prov.get("virtualRouterRef"), prov.get("virtualRouterARN"), vs)
        if vr is None:
            return
        ns, svc = self.vs_service(vs)
        if via_gateway:
            self.find(vs, "spec.provider.virtualRouter", f"gateway routes send traffic to {ns}/{svc}; whether an "
                      "implementation applies the Service's GAMMA route to traffic from a Gateway differs (Istio "
                      "applies it only to mesh clients, and gateways are not sidecars)",
                      "check your implementation, or copy the router's rules into the gateway's HTTPRoute",
                      "gamma-ingress")
        routes = sorted(enumerate(vr.spec.get("routes") or []),
                        key=lambda ir: sort_key(ir[1].get("name", ""), ir[1].get("priority"),
                                                next((ir[1][k].get("match") or {} for k in
                                                      ("httpRoute", "http2Route", "grpcRoute")
                                                      if isinstance(ir[1].get(k), dict)), {})))
        rules: dict = {"HTTPRoute": [], "GRPCRoute": []}
        entries: dict = {"HTTPRoute": [], "GRPCRoute": []}
        lst = [x for x in vr.spec.get("listeners") or [] if isinstance(x, dict)]
        parent_port = self._service_port(ns, svc, (lst[0].get("portMapping") or {}).get("port")) if lst else None
        for i, route in routes:
            base = f"spec.routes[{i}]"
            if route.get("tcpRoute"):
                self.find(vr, f"{base}.tcpRoute", "TCPRoute is experimental-channel only; not exported",
                          "keep TCP traffic on the Service without a route", "not-exported")
                continue
            key = next((k for k in ("httpRoute", "http2Route", "grpcRoute") if isinstance(route.get(k), dict)), None)
            if key is None:
                continue
            body, grpc = route[key], key == "grpcRoute"
            kind = "GRPCRoute" if grpc else "HTTPRoute"
            match = body.get("match") or {}
            gw_match, hosts, found = (M.grpc_match if grpc else M.http_match)(match, f"{base}.{key}.match", self.profile)
            for path, msg, hint, code in found:
                self.find(vr, path, msg, hint, code)
            if gw_match is None:
                self.find(vr, f"{base}.{key}", "not exported: its match cannot be written in Gateway API",
                          "restructure the route", "not-exported")
                continue
            backends = []
            for j, wt in enumerate((body.get("action") or {}).get("weightedTargets") or []):
                vn = self.world.resolve("VirtualNode", wt.get("virtualNodeRef"), wt.get("virtualNodeARN"), vr)
                if vn is None:
                    continue
                dns = ((vn.spec.get("serviceDiscovery") or {}).get("dns") or {}).get("hostname")
                if not dns:
                    self.find(vn, "spec.serviceDiscovery", "a virtual node without DNS service discovery has no "
                              "Service to send to", "put a Kubernetes Service in front of its pods",
                              "not-exported")
                    continue
                bns, bname = self._service_from_host(dns, vn.namespace)
                vport = wt.get("port")
                if vport is None:
                    vl = [x for x in vn.spec.get("listeners") or [] if isinstance(x, dict)]
                    vport = (vl[0].get("portMapping") or {}).get("port") if vl else 80
                backends.append(self.backend(kind, vs.namespace, bns, bname, self._service_port(bns, bname, vport),
                                             wt.get("weight")))
            rule: dict = {"matches": [gw_match]} if gw_match else {}
            rule["backendRefs"] = backends
            if not grpc:
                per = (body.get("timeout") or {}).get("perRequest")
                rule["timeouts"] = {"request": _duration(per) if per else DEFAULT_PER_REQUEST}
                if not self.profile["request_timeout"]:
                    self.find(vr, f"{base}.{key}.timeout", "request timeouts are not documented for this "
                              "implementation", "rely on its default", "unsupported")
            if (body.get("timeout") or {}).get("idle"):
                self.find(vr, f"{base}.{key}.timeout.idle", "an idle timeout has no Gateway API route field",
                          f"nearest: {self.profile['near']['pool']}", "stays-behind")
            if grpc and (body.get("timeout") or {}).get("perRequest"):
                self.find(vr, f"{base}.{key}.timeout.perRequest", "GRPCRoute has no timeouts field in the "
                          "standard channel", f"nearest: {self.profile['near']['retry']}", "no-equivalent")
            if body.get("retryPolicy") and self.experimental and not grpc:
                rule["retry"] = self._retry(vr, f"{base}.{key}.retryPolicy", body["retryPolicy"])
            elif body.get("retryPolicy"):
                self.find(vr, f"{base}.{key}.retryPolicy", "retries are not in the standard-channel route "
                          "(the experimental channel has rules[].retry, GEP-1731; --experimental writes it)",
                          f"nearest in {self.profile_name}: {self.profile['near']['retry']}", "no-equivalent")
            if hosts:
                self.find(vr, f"{base}.{key}.match.hostname", "a hostname match inside a GAMMA route is ignored",
                          "route by path or header", "dropped")
            rules[kind].append(rule)
            entries[kind].append((route.get("name", ""), sort_key(route.get("name", ""), route.get("priority"),
                                                                  match), match, gw_match, grpc, f"{base}.{key}"))
        for kind, rs in rules.items():
            if not rs:
                continue
            name = self._name(kind, vs.namespace, vr.name)
            parent = {"group": "", "kind": "Service", "name": svc}
            if ns != vs.namespace:
                parent["namespace"] = ns
            if parent_port:
                parent["port"] = parent_port
            body = {"apiVersion": API, "kind": kind, "metadata": {"name": name, "namespace": vs.namespace},
                    "spec": {"parentRefs": [parent], "rules": rs}}
            self.out.objects.append(Obj(kind, vs.namespace, name, body, [_source(vs), _source(vr)]))
            for idx, (rname, key, match, gw_match, grpc, path) in enumerate(entries[kind]):
                scopes.setdefault(("service", ns, svc, kind), []).append(Entry(
                    ref=f"VirtualRouter {vr.namespace}/{vr.name} route {rname}", route=f"{vs.namespace}/{name}",
                    rule=idx, appmesh_key=key, match=match, gw=gw_match, grpc=grpc, where=(vr, path)))

    def _retry(self, r: Resource, path: str, policy: dict) -> dict:
        """App Mesh's retry policy as the experimental HTTPRoute retry (GEP-1731)."""
        codes: set = set()
        for event in policy.get("httpRetryEvents") or []:
            codes |= set(RETRY_EVENT_CODES.get(event, ()))
            if event not in RETRY_EVENT_CODES:
                self.find(r, f"{path}.httpRetryEvents", f"retry event {event!r} is not a status code; Gateway "
                          "API's retry lists codes only", "rely on the implementation's retry on reset", "dropped")
        if policy.get("tcpRetryEvents"):
            self.find(r, f"{path}.tcpRetryEvents", "whether connection errors are retried is left to the "
                      "implementation by GEP-1731", f"nearest in {self.profile_name}: {self.profile['near']['retry']}",
                      "semantics")
        if policy.get("perRetryTimeout"):
            self.find(r, f"{path}.perRetryTimeout", "GEP-1731 has no per-try timeout (its backoff is the wait "
                      "between tries)", "set the implementation's per-try timeout", "dropped")
        self.find(r, path, "rules[].retry is an experimental-channel field: install the experimental Gateway API "
                  "CRDs, or the API server drops or rejects it", "without --experimental the export leaves it out "
                  "and reports it", "experimental")
        out: dict = {}
        if codes:
            out["codes"] = sorted(codes)
        out["attempts"] = policy.get("maxRetries", 0)
        return out

    def virtual_node(self, vn: Resource):
        for i, lst in enumerate(vn.spec.get("listeners") or []):
            base = f"spec.listeners[{i}]"
            for key, what, near in (("outlierDetection", "outlier detection", "outlier"),
                                    ("connectionPool", "connection pool", "pool"),
                                    ("healthCheck", "health check", "health"), ("tls", "listener TLS (mTLS)", "mtls")):
                if lst.get(key):
                    self._stays(vn, f"{base}.{key}", what, near)
        if (vn.spec.get("backendDefaults") or {}).get("clientPolicy"):
            self._stays(vn, "spec.backendDefaults.clientPolicy", "client TLS policy", "mtls")
        for j, b in enumerate(vn.spec.get("backends") or []):
            if ((b.get("virtualService") or {}).get("clientPolicy")):
                self._stays(vn, f"spec.backends[{j}].virtualService.clientPolicy", "client TLS policy", "mtls")
        if (vn.spec.get("logging") or {}).get("accessLog"):
            self._stays(vn, "spec.logging.accessLog", "access log", "logging")

    def mesh(self, mesh: Resource):
        if ((mesh.spec.get("egressFilter") or {}).get("type")) == "DROP_ALL":
            self._stays(mesh, "spec.egressFilter.type", "egressFilter DROP_ALL (with each node's backends)", "egress")

    # -- the whole export -----------------------------------------------------------------
    def run(self) -> Export:
        w = self.world
        for m in sorted(w.by_kind["Mesh"], key=lambda r: r.key):
            self.mesh(m)
        for vg in sorted(w.by_kind["VirtualGateway"], key=lambda r: r.key):
            self.gateway(vg)
        scopes: dict = {}
        for gr in sorted(w.by_kind["GatewayRoute"], key=lambda r: r.key):
            self.gateway_route(gr, scopes)
        targets = set()
        for gr in w.by_kind["GatewayRoute"]:
            for key in ("httpRoute", "http2Route", "grpcRoute"):
                vsref = ((((gr.spec.get(key) or {}).get("action") or {}).get("target") or {})
                         .get("virtualService") or {})
                vs = w.resolve("VirtualService", vsref.get("virtualServiceRef"), vsref.get("virtualServiceARN"), gr)
                if vs is not None:
                    targets.add(vs.key)
        for vs in sorted(w.by_kind["VirtualService"], key=lambda r: r.key):
            if (vs.spec.get("provider") or {}).get("virtualRouter"):
                self.router(vs, scopes, vs.key in targets)
        for vn in sorted(w.by_kind["VirtualNode"], key=lambda r: r.key):
            self.virtual_node(vn)
        for entries in scopes.values():
            for first, second, req, why in conflicts(entries):
                r, path = first.where
                self.out.announced.setdefault("precedence", []).append({**req, "grpc": first.grpc})
                self.find(r, path, f"App Mesh sends {describe(req)} to {first.ref}, Gateway API to {second.ref}: "
                          f"{why}", f"to keep App Mesh's order, add to {first.ref}'s rule a match as specific as "
                          f"{second.ref}'s (its path and conditions plus this route's own), or narrow "
                          f"{second.ref} so it no longer matches these requests", "precedence")
        for ns, sources in sorted(self.grants.items()):
            for kind_ns in sorted({s[1] for s in sources}):
                kinds = sorted({k for k, n in sources if n == kind_ns})
                name = self._name("ReferenceGrant", ns, f"from-{kind_ns}")
                body = {"apiVersion": API, "kind": "ReferenceGrant",
                        "metadata": {"name": name, "namespace": ns},
                        "spec": {"from": [{"group": GROUP, "kind": k, "namespace": kind_ns} for k in kinds],
                                 "to": [{"group": "", "kind": "Service"}]}}
                self.out.objects.append(Obj("ReferenceGrant", ns, name, body,
                                            [f"routes in {kind_ns} that send to Services in {ns}"]))
        self.out.objects.sort(key=lambda o: (o.kind, o.namespace, o.name))
        self.out.findings.sort(key=lambda p: (p.file, p.line, p.path, p.message))
        return self.out


def _duration(d: dict) -> str:
    value, unit = int(d.get("value", 0)), d.get("unit", "ms")
    ms = value * 1000 if unit == "s" else value
    if ms % 1000 == 0 and ms // 1000 <= 99999:
        return f"{ms // 1000}s"
    if ms <= 99999:
        return f"{ms}ms"
    return f"{ms // 60000}m{(ms % 60000) // 1000}s"


def export(resources, profile: str = "standard", experimental: bool = False) -> Export:
    """App Mesh resources (validated) -> Gateway API objects, findings and commands to run.
    `experimental`: also write experimental-channel fields (rules[].retry)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}")
    return _Exporter(resources, profile, experimental).run()
