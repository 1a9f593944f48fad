"""What Gateway API objects mean together: which GatewayClass serves a Gateway, which listeners a
route attaches to, which backends resolve. One reading serves two callers: validation (findings
with file, line and field path; lab/model/semantics.py) and the status conditions the lab writes
(lab/translate/gatewayapi_status.py).

Reasons are Gateway API's own (kubernetes-sigs/gateway-api, apis/v1/shared_types.go
RouteConditionReason, apis/v1/gateway_types.go GatewayConditionReason and
ListenerConditionReason, apis/v1/gatewayclass_types.go): a route's parent is Accepted or
NotAllowedByListeners / NoMatchingParent / NoMatchingListenerHostname / UnsupportedValue; its
references are ResolvedRefs or BackendNotFound / RefNotPermitted / InvalidKind.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass, field

from .gatewayapi import CONTROLLER_NAME, GROUP
from .resources import Resource, selector_matches

SERVED_PROTOCOLS = ("HTTP", "HTTPS")  # listener protocols the lab programs (HTTPS: tls.mode Terminate)
ROUTE_PROTOCOLS = {"HTTPRoute": ("HTTP", "HTTPS"), "GRPCRoute": ("HTTP", "HTTPS")}
SERVED_FILTERS = ("URLRewrite",)


@dataclass
class Cond:
    ok: bool
    reason: str
    message: str
    path: str = ""  # the field the condition is about, relative to the object

    @property
    def status(self) -> str:
        return "True" if self.ok else "False"


@dataclass
class ParentStatus:
    index: int
    ref: dict
    accepted: Cond
    resolved: Cond
    gateway: Resource | None = None
    listeners: list = field(default_factory=list)  # names of the listeners the route attaches to


def gateway_class(world, gw: Resource) -> Resource | None:
    return world.get("GatewayClass", "", gw.spec.get("gatewayClassName"))


def served_by_lab(world, gw: Resource) -> bool:
    gc = gateway_class(world, gw)
    return gc is not None and gc.spec.get("controllerName") == CONTROLLER_NAME


def class_cond(gc: Resource) -> Cond:
    if gc.spec.get("controllerName") == CONTROLLER_NAME:
        return Cond(True, "Accepted", "the lab's controller serves this class")
    return Cond(False, "Unsupported", f"controllerName {gc.spec.get('controllerName')} is not the lab's "
                f"({CONTROLLER_NAME}); the lab leaves this class's Gateways alone")


def gateway_cond(world, gw: Resource) -> Cond:
    name = gw.spec.get("gatewayClassName")
    gc = gateway_class(world, gw)
    if gc is None:
        return Cond(False, "Pending", f"no GatewayClass {name!r}: apply one with controllerName: {CONTROLLER_NAME} "
                    f"(the lab's), or set gatewayClassName to such a class", "spec.gatewayClassName")
    if gc.spec.get("controllerName") != CONTROLLER_NAME:
        return Cond(False, "Pending", f"GatewayClass {name!r} names controller {gc.spec.get('controllerName')}, not "
                    f"the lab's {CONTROLLER_NAME}: no controller here serves it", "spec.gatewayClassName")
    bad = [lst.get("name") for lst in gw.spec.get("listeners") or [] if not listener_accepted(gw, lst).ok]
    if bad and len(bad) == len(gw.spec.get("listeners") or []):
        return Cond(False, "ListenersNotValid", "no listener is valid: " + ", ".join(map(str, bad)), "spec.listeners")
    return Cond(True, "Accepted", "the lab's controller serves this Gateway" + (
        f" (listeners not valid: {', '.join(map(str, bad))})" if bad else ""))


def listener_conflict(gw: Resource, lst: dict) -> Cond | None:
    """ProtocolConflict: another listener on the same port speaks another protocol."""
    others = {o.get("protocol") for o in gw.spec.get("listeners") or []
              if o is not lst and o.get("port") == lst.get("port") and o.get("protocol") != lst.get("protocol")}
    if others:
        return Cond(True, "ProtocolConflict", f"port {lst.get('port')} is also a {', '.join(sorted(others))} listener's")
    return None


def listener_accepted(gw: Resource, lst: dict) -> Cond:
    if lst.get("protocol") not in SERVED_PROTOCOLS:
        return Cond(False, "UnsupportedProtocol", f"the lab does not serve {lst.get('protocol')} listeners; it serves "
                    + ", ".join(SERVED_PROTOCOLS))
    if listener_conflict(gw, lst):
        return Cond(False, "ProtocolConflict", listener_conflict(gw, lst).message)
    return Cond(True, "Accepted", "listener accepted")


def _kinds_allowed(lst: dict) -> list:
    kinds = (lst.get("allowedRoutes") or {}).get("kinds")
    if kinds is None:
        return [k for k, protos in ROUTE_PROTOCOLS.items() if lst.get("protocol") in protos]
    return [k.get("kind") for k in kinds if k.get("group", GROUP) == GROUP and k.get("kind") in ROUTE_PROTOCOLS]


def listener_resolved(lst: dict, world=None, gw: Resource | None = None) -> Cond:
    kinds = (lst.get("allowedRoutes") or {}).get("kinds")
    if kinds is not None:
        bad = [k.get("kind") for k in kinds if k.get("group", GROUP) != GROUP or k.get("kind") not in ROUTE_PROTOCOLS]
        if bad:
            return Cond(False, "InvalidRouteKinds", f"route kinds the lab does not serve: {', '.join(map(str, bad))}")
    if world is not None and gw is not None and lst.get("protocol") == "HTTPS" and \
            (lst.get("tls") or {}).get("mode", "Terminate") == "Terminate":
        good, problems = certificate_secrets(world, gw, lst)
        if problems and not good:  # the spec: ResolvedRefs False when no certificateRef can be used
            reason = "RefNotPermitted" if "ReferenceGrant" in problems[0][1] else "InvalidCertificateRef"
            index = next(i for i, x in enumerate(gw.spec.get("listeners") or []) if x is lst)
            return Cond(False, reason, "; ".join(msg for _, msg, _ in problems),
                        f"spec.listeners[{index}].{problems[0][0]}")
        _, problems, _ = client_ca(world, gw, lst)
        if problems:  # the spec: ResolvedRefs False, reason InvalidCACertificateRef
            reason = "RefNotPermitted" if "ReferenceGrant" in problems[0][1] else "InvalidCACertificateRef"
            return Cond(False, reason, "; ".join(msg for _, msg, _ in problems), problems[0][0])
    return Cond(True, "ResolvedRefs", "all references resolved")


# ---- TLS certificates (HTTPS listeners) ---------------------------------------------------

TLS_SECRET = "kubernetes.io/tls"


def tls_secret_pems(secret: Resource) -> tuple[bytes, bytes] | None:
    """A kubernetes.io/tls Secret's certificate chain and key, PEM (None when it is not one)."""
    raw = secret.raw if isinstance(secret.raw, dict) else {}
    data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
    if raw.get("type") != TLS_SECRET:
        return None
    try:
        crt, key = (base64.b64decode(str(data.get(k) or ""), validate=True) for k in ("tls.crt", "tls.key"))
    except (ValueError, TypeError):
        return None
    if b"-----BEGIN CERTIFICATE-----" not in crt or b"PRIVATE KEY-----" not in key:
        return None
    return crt, key


def certificate_secrets(world, gw: Resource, listener: dict) -> tuple[list, list]:
    """The Secrets an HTTPS listener's certificateRefs name and can use, as (namespace, name);
    and what is wrong, as (field path under the listener, message, hint)."""
    tls = listener.get("tls") or {}
    good, problems = [], []
    for i, ref in enumerate(tls.get("certificateRefs") or []):
        where = f"tls.certificateRefs[{i}]"
        if ref.get("group", "") != "" or ref.get("kind", "Secret") != "Secret":
            problems.append((where, f"a certificate of kind {ref.get('kind')!r} (group {ref.get('group')!r})",
                             "the lab reads core Secrets: kind: Secret, no group"))
            continue
        ns = ref.get("namespace") or gw.namespace
        if not granted(world, gw, ns, "Secret", ref.get("name")):
            problems.append((where, f"Secret {ns}/{ref.get('name')} is in another namespace and no ReferenceGrant "
                             f"there lets Gateways of {gw.namespace} use it",
                             f"add a ReferenceGrant in {ns} from Gateway in {gw.namespace} to Secret"))
            continue
        secret = world.get("Secret", ns, ref.get("name"))
        if secret is None:
            problems.append((where, f"Secret {ns}/{ref.get('name')} does not exist",
                             f"kubectl create secret tls {ref.get('name')} -n {ns} --cert=FILE --key=FILE"))
            continue
        pems = tls_secret_pems(secret)
        if pems is None:
            problems.append((where, f"Secret {ns}/{ref.get('name')} is not a TLS Secret (type {TLS_SECRET} with "
                             "data tls.crt and tls.key, PEM, base64-encoded)", "make it with kubectl create secret tls"))
            continue
        good.append((ns, ref.get("name")))
    if not good and not problems:
        problems.append(("tls.certificateRefs", "an HTTPS listener without a certificate",
                         "name the Secret with the certificate in tls.certificateRefs"))
    return good, problems


# ---- client certificate validation (Gateway.spec.tls.frontend, GEP-91) ------------------------

CA_KEY = "ca.crt"


def frontend_validation(gw: Resource, listener: dict) -> tuple[dict | None, str]:
    """The frontend validation that applies to an HTTPS listener (its port's perPort entry, else the
    default) and its field path in the Gateway; (None, "") when clients are not asked for a certificate."""
    fe = ((gw.spec.get("tls") or {}).get("frontend") or {})
    for i, pp in enumerate(fe.get("perPort") or []):
        if isinstance(pp, dict) and pp.get("port") == listener.get("port"):
            return (pp.get("tls") or {}).get("validation"), f"spec.tls.frontend.perPort[{i}].tls.validation"
    return (fe.get("default") or {}).get("validation"), "spec.tls.frontend.default.validation"


def client_ca(world, gw: Resource, listener: dict) -> tuple[tuple | None, list, str]:
    """The ConfigMap (namespace, name) whose ca.crt a listener checks client certificates with, or
    None; what is wrong, as (field path in the Gateway, message, hint); and the validation mode.
    The lab serves the Core support: one reference to a ConfigMap with the CA under ca.crt."""
    val, base = frontend_validation(gw, listener)
    if not isinstance(val, dict):
        return None, [], ""
    mode = val.get("mode") or "AllowValidOnly"
    refs = [r for r in val.get("caCertificateRefs") or [] if isinstance(r, dict)]
    if len(refs) != 1:
        return None, [(f"{base}.caCertificateRefs", f"{len(refs)} CA references; the lab reads exactly one "
                       "(Core support: one ConfigMap)", "put every CA into the ca.crt of one ConfigMap")], mode
    ref, where = refs[0], f"{base}.caCertificateRefs[0]"
    if ref.get("group", "") != "" or ref.get("kind") != "ConfigMap":
        return None, [(where, f"a CA of kind {ref.get('kind')!r} (group {ref.get('group')!r})",
                       "the lab reads core ConfigMaps: group: '', kind: ConfigMap")], mode
    ns, name = ref.get("namespace") or gw.namespace, ref.get("name")
    if not granted(world, gw, ns, "ConfigMap", name):
        return None, [(where, f"ConfigMap {ns}/{name} is in another namespace and no ReferenceGrant there lets "
                       f"Gateways of {gw.namespace} use it",
                       f"add a ReferenceGrant in {ns} from Gateway in {gw.namespace} to ConfigMap")], mode
    cm = world.get("ConfigMap", ns, name)
    if cm is None:
        return None, [(where, f"ConfigMap {ns}/{name} does not exist",
                       f"kubectl create configmap {name} -n {ns} --from-file={CA_KEY}=FILE")], mode
    if ca_pem(cm) is None:
        return None, [(where, f"ConfigMap {ns}/{name} has no PEM certificate under the key {CA_KEY}",
                       f"kubectl create configmap {name} -n {ns} --from-file={CA_KEY}=FILE")], mode
    return (ns, name), [], mode


def ca_pem(cm: Resource) -> bytes | None:
    """A ConfigMap's ca.crt when it holds a PEM certificate (None otherwise)."""
    from .configmaps import value
    pem = value(cm.raw, CA_KEY)
    return pem if pem and b"-----BEGIN CERTIFICATE-----" in pem else None


def namespace_allowed(world, gw: Resource, lst: dict, ns: str) -> bool:
    frm = ((lst.get("allowedRoutes") or {}).get("namespaces") or {})
    how = frm.get("from", "Same")
    if how == "All":
        return True
    if how == "Same":
        return ns == gw.namespace
    return selector_matches(frm.get("selector"), world.namespace_labels(ns) or {})


def _hosts_intersect(route_hosts: list, listener_host) -> bool:
    if not route_hosts or not listener_host:
        return True
    lh = listener_host.lower()
    for h in (x.lower() for x in route_hosts):
        if h == lh or (lh.startswith("*.") and h.endswith(lh[1:])) or (h.startswith("*.") and lh.endswith(h[1:])):
            return True
    return False


def is_gateway_ref(ref: dict) -> bool:
    return ref.get("group", GROUP) == GROUP and ref.get("kind", "Gateway") == "Gateway"


def is_service_ref(ref: dict) -> bool:
    return ref.get("group", GROUP) == "" and ref.get("kind") == "Service"


def granted(world, route: Resource, ns: str, to_kind: str = "Service", to_name: str | None = None) -> bool:
    """A reference into another namespace needs a ReferenceGrant there."""
    if ns == route.namespace:
        return True
    for g in world.by_kind["ReferenceGrant"]:
        if g.namespace != ns:
            continue
        if any(f.get("group") == GROUP and f.get("kind") == route.kind and f.get("namespace") == route.namespace
               for f in g.spec.get("from") or []) and any(
                t.get("group", "") == "" and t.get("kind") == to_kind and t.get("name") in (None, to_name)
                for t in g.spec.get("to") or []):
            return True
    return False


def backends(world, route: Resource) -> list[tuple[str, Cond]]:
    """(field path, condition) for each backendRef that does not resolve."""
    out = []
    for i, rule in enumerate(route.spec.get("rules") or []):
        for j, b in enumerate(rule.get("backendRefs") or []):
            path = f"spec.rules[{i}].backendRefs[{j}]"
            if b.get("group", "") != "" or b.get("kind", "Service") != "Service":
                out.append((path, Cond(False, "InvalidKind", f"{b.get('group', '')}/{b.get('kind')} is not a kind the "
                                       "lab routes to: backendRefs name Services (group '', kind Service)")))
                continue
            ns = b.get("namespace") or route.namespace
            svc = world.get("Service", ns, b.get("name"))
            if not granted(world, route, ns, "Service", b.get("name")):
                out.append((f"{path}.namespace", Cond(False, "RefNotPermitted", f"Service {ns}/{b.get('name')} is in "
                            f"another namespace and no ReferenceGrant in {ns} lets {route.kind}s from "
                            f"{route.namespace} refer to it")))
            elif svc is None:
                out.append((f"{path}.name", Cond(False, "BackendNotFound", f"Service {ns}/{b.get('name')} not found")))
            elif b.get("port") is not None and b["port"] not in [p.get("port") for p in svc.spec.get("ports") or []]:
                out.append((f"{path}.port", Cond(False, "BackendNotFound", f"Service {ns}/{b.get('name')} has no port "
                            f"{b['port']} (it has {', '.join(str(p.get('port')) for p in svc.spec.get('ports') or [])})")))
    return out


def unsupported_filters(route: Resource) -> list[tuple[str, str]]:
    out = []
    for i, rule in enumerate(route.spec.get("rules") or []):
        for j, f in enumerate(rule.get("filters") or []):
            if f.get("type") not in SERVED_FILTERS:
                out.append((f"spec.rules[{i}].filters[{j}].type", str(f.get("type"))))
        for j, b in enumerate(rule.get("backendRefs") or []):
            for k, f in enumerate(b.get("filters") or []):
                out.append((f"spec.rules[{i}].backendRefs[{j}].filters[{k}].type", str(f.get("type"))))
    return out


def parents(world, route: Resource) -> list[ParentStatus]:
    """The route's status for each parentRef (Gateway or, for GAMMA, Service)."""
    bad_refs = backends(world, route)
    resolved = Cond(True, "ResolvedRefs", "all backendRefs resolved") if not bad_refs else Cond(
        False, bad_refs[0][1].reason, "; ".join(c.message for _, c in bad_refs), bad_refs[0][0])
    filters = unsupported_filters(route)
    out = []
    for i, ref in enumerate(route.spec.get("parentRefs") or []):
        ns = ref.get("namespace") or route.namespace
        path = f"spec.parentRefs[{i}]"
        if is_service_ref(ref):
            svc = world.get("Service", ns, ref.get("name"))
            if svc is None:
                acc = Cond(False, "NoMatchingParent", f"Service {ns}/{ref.get('name')} not found", f"{path}.name")
            elif ref.get("port") is not None and ref["port"] not in [p.get("port") for p in svc.spec.get("ports") or []]:
                acc = Cond(False, "NoMatchingParent", f"Service {ns}/{ref.get('name')} has no port {ref['port']}",
                           f"{path}.port")
            elif ns != route.namespace:
                acc = Cond(False, "NotAllowedByListeners", "a GAMMA route in another namespace than its Service is a "
                           "consumer route, which the lab does not serve", f"{path}.namespace")
            else:
                # GAMMA on the lab: applied where the lab's Gateways send to the Service; requests
                # between meshed pods follow the App Mesh routes their sidecars have
                acc = Cond(True, "Accepted", f"attached to Service {ns}/{ref.get('name')}: routes what the lab's "
                           "Gateways send to it (traffic between sidecars follows the App Mesh routes)")
            out.append(ParentStatus(i, ref, _with_filters(acc, filters), resolved))
            continue
        if not is_gateway_ref(ref):
            out.append(ParentStatus(i, ref, Cond(False, "NoMatchingParent", f"{ref.get('group')}/{ref.get('kind')} is "
                                                 "not a parent kind: name a Gateway or, for GAMMA, a Service",
                                                 f"{path}.kind"), resolved))
            continue
        gw = world.get("Gateway", ns, ref.get("name"))
        if gw is None:
            out.append(ParentStatus(i, ref, Cond(False, "NoMatchingParent", f"Gateway {ns}/{ref.get('name')} not found",
                                                 f"{path}.name"), resolved))
            continue
        lsts = [lst for lst in gw.spec.get("listeners") or []
                if ref.get("sectionName") in (None, lst.get("name")) and ref.get("port") in (None, lst.get("port"))]
        if not lsts:
            what = " and ".join(x for x in (f"sectionName {ref['sectionName']!r}" if ref.get("sectionName") else "",
                                             f"port {ref['port']}" if ref.get("port") else "") if x)
            names = ", ".join(f"{lst.get('name')} (port {lst.get('port')})" for lst in gw.spec.get("listeners") or [])
            out.append(ParentStatus(i, ref, Cond(False, "NoMatchingParent", f"Gateway {ns}/{gw.name} has no listener "
                                                 f"with {what}; its listeners: {names}",
                                                 f"{path}.sectionName" if ref.get("sectionName") else f"{path}.port"),
                                    resolved, gw))
            continue
        allowed = [lst for lst in lsts if namespace_allowed(world, gw, lst, route.namespace)
                   and route.kind in _kinds_allowed(lst)]
        if not allowed:
            out.append(ParentStatus(i, ref, Cond(False, "NotAllowedByListeners", f"the listeners of Gateway {ns}/"
                                                 f"{gw.name} it names do not allow {route.kind}s from namespace "
                                                 f"{route.namespace} (allowedRoutes)", path), resolved, gw))
            continue
        hosts = route.spec.get("hostnames") or []
        matching = [lst for lst in allowed if _hosts_intersect(hosts, lst.get("hostname"))]
        if not matching:
            out.append(ParentStatus(i, ref, Cond(False, "NoMatchingListenerHostname", "none of the route's hostnames "
                                                 "matches a listener's hostname", "spec.hostnames"), resolved, gw))
            continue
        out.append(ParentStatus(i, ref, _with_filters(Cond(True, "Accepted", f"attached to Gateway {ns}/{gw.name}"),
                                                      filters), resolved, gw, [lst.get("name") for lst in matching]))
    return out


def _with_filters(acc: Cond, filters: list) -> Cond:
    if acc.ok and filters:
        return Cond(False, "UnsupportedValue", "the lab does not serve the filter(s) " + ", ".join(
            sorted({t for _, t in filters})) + f"; it serves {', '.join(SERVED_FILTERS)}", filters[0][0])
    return acc


def attached_routes(world, gw: Resource, lst: dict) -> list[Resource]:
    """The routes attached to one listener (for its attachedRoutes count)."""
    out = []
    for route in world.by_kind["HTTPRoute"] + world.by_kind["GRPCRoute"]:
        for p in parents(world, route):
            if p.gateway is gw and p.accepted.ok and lst.get("name") in p.listeners:
                out.append(route)
                break
    return out


def findings(world, r: Resource) -> list[tuple[str, str, str, str]]:
    """(field path, message, hint, severity) for one Gateway API object, for validation."""
    out = []
    if r.kind == "Gateway":
        c = gateway_cond(world, r)
        if not c.ok and c.reason == "Pending":
            out.append((c.path, c.message, f"apply a GatewayClass named {r.spec.get('gatewayClassName')!r} with "
                        f"controllerName: {CONTROLLER_NAME}", "error"))
        for i, lst in enumerate(r.spec.get("listeners") or []):
            a = listener_accepted(r, lst)
            if not a.ok:
                hint = ("use protocol: HTTP, or HTTPS with tls.certificateRefs naming a kubernetes.io/tls Secret"
                        if a.reason == "UnsupportedProtocol" else "give each protocol its own port")
                out.append((f"spec.listeners[{i}].protocol" if a.reason == "UnsupportedProtocol"
                            else f"spec.listeners[{i}].port", a.message, hint, "warning"))
            elif lst.get("protocol") == "HTTPS" and (lst.get("tls") or {}).get("mode", "Terminate") == "Terminate":
                # stored as a cluster stores it (ResolvedRefs False until the Secret is there): a warning
                out += [(f"spec.listeners[{i}].{path}", msg, hint, "warning")
                        for path, msg, hint in certificate_secrets(world, r, lst)[1]]
    elif r.kind in ("HTTPRoute", "GRPCRoute"):
        for p in parents(world, r):
            if not p.accepted.ok:
                sev = "warning" if p.accepted.reason == "UnsupportedValue" else "error"
                out.append((p.accepted.path, f"{p.accepted.reason}: {p.accepted.message}", _parent_hint(p), sev))
        for path, c in backends(world, r):
            hint = {"RefNotPermitted": "add a ReferenceGrant in the Service's namespace: from {group: "
                    f"{GROUP}, kind: {r.kind}, namespace: {r.namespace}}}, to {{group: '', kind: Service}}",
                    "InvalidKind": "write kind: Service (and group: '', or leave both out)",
                    "BackendNotFound": "apply the Service, or name one that exists (`appmesh-lab get svc -A`)"}[c.reason]
            out.append((path, f"{c.reason}: {c.message}", hint, "error"))
    return out


def _parent_hint(p: ParentStatus) -> str:
    return {"NoMatchingParent": "name an existing Gateway (`appmesh-lab get gateways -A`) and one of its listeners "
                                "(sectionName: the listener's name)",
            "NotAllowedByListeners": "widen the listener's allowedRoutes.namespaces (from: All, or a selector matching "
                                     "this namespace's labels), or move the route",
            "NoMatchingListenerHostname": "make a route hostname match the listener's hostname, or drop hostnames",
            "UnsupportedValue": "remove the filter, or express it as a URLRewrite"}.get(p.accepted.reason, "")
