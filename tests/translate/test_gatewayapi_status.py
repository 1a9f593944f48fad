"""Gateway API status as the lab writes it (lab/translate/gatewayapi_status.py): the conditions and
reasons of the spec for a Gateway of another controller, listeners the lab cannot serve, two
listeners on one port, and Programmed only when the daemon reports the Envoy's ACK."""
from __future__ import annotations

import yaml

from lab.model import World, validate_texts
from lab.model.gatewayapi import CONTROLLER_NAME
from lab.translate.gatewayapi_status import gateway_status, route_status, with_times

DOCS = f"""
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: lab}}
spec: {{controllerName: {CONTROLLER_NAME}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: other}}
spec: {{controllerName: example.com/other}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: n}}
---
apiVersion: v1
kind: Service
metadata: {{name: svc, namespace: n}}
spec: {{ports: [{{port: 8080}}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: n}}
spec:
  gatewayClassName: lab
  listeners:
  - {{name: http, port: 80, protocol: HTTP}}
  - {{name: tcp, port: 80, protocol: TCP}}
  - {{name: web, port: 8080, protocol: HTTP, hostname: shop.example.com}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: theirs, namespace: n}}
spec:
  gatewayClassName: other
  listeners: [{{name: http, port: 80, protocol: HTTP}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r, namespace: n}}
spec:
  parentRefs: [{{name: gw, sectionName: web}}, {{name: theirs}}, {{name: gw, sectionName: http}}]
  hostnames: [other.example.com]
  rules: [{{backendRefs: [{{name: svc, port: 8080}}]}}]
"""


def _world() -> World:
    result = validate_texts([("s.yaml", DOCS)])
    assert not result.errors, [str(p) for p in result.errors]
    return World(result.resources)


def _by_type(conds: list) -> dict:
    return {c["type"]: (c["status"], c["reason"]) for c in conds}


def test_listeners_the_lab_cannot_serve_and_a_port_shared_by_two_protocols():
    w = _world()
    st = gateway_status(w, w.get("Gateway", "n", "gw"), 3, (True, "Programmed", "ACKed"))
    assert _by_type(st["conditions"]) == {"Accepted": ("True", "Accepted"), "Programmed": ("True", "Programmed")}
    lst = {x["name"]: x for x in st["listeners"]}
    assert _by_type(lst["http"]["conditions"])["Conflicted"] == ("True", "ProtocolConflict")
    assert _by_type(lst["http"]["conditions"])["Accepted"] == ("False", "ProtocolConflict")
    assert _by_type(lst["tcp"]["conditions"])["Accepted"] == ("False", "UnsupportedProtocol")
    assert _by_type(lst["tcp"]["conditions"])["Programmed"] == ("False", "Invalid")
    assert _by_type(lst["web"]["conditions"]) == {"Accepted": ("True", "Accepted"), "ResolvedRefs": (
        "True", "ResolvedRefs"), "Programmed": ("True", "Programmed"), "Conflicted": ("False", "NoConflicts")}
    assert all(c["observedGeneration"] == 3 for c in st["conditions"])


def test_programmed_waits_for_the_ack_and_another_controllers_gateway_is_pending():
    w = _world()
    st = gateway_status(w, w.get("Gateway", "n", "gw"), 1, (False, "Pending", "sent, not ACKed yet"))
    assert _by_type(st["conditions"])["Programmed"] == ("False", "Pending")
    st = gateway_status(w, w.get("Gateway", "n", "theirs"), 1, None)
    assert _by_type(st["conditions"]) == {"Accepted": ("False", "Pending"), "Programmed": ("False", "Pending")}
    assert "example.com/other" in st["conditions"][0]["message"] and "addresses" not in st


def test_route_parents_hostname_mismatch_and_other_controllers_parents_left_out():
    w = _world()
    parents = route_status(w, w.get("HTTPRoute", "n", "r"), 1)["parents"]
    assert [p["parentRef"].get("sectionName") for p in parents] == ["web", "http"]  # not the other class's Gateway
    assert _by_type(parents[0]["conditions"])["Accepted"] == ("False", "NoMatchingListenerHostname")
    assert _by_type(parents[1]["conditions"]) == {"Accepted": ("True", "Accepted"),
                                                  "ResolvedRefs": ("True", "ResolvedRefs")}


def test_last_transition_time_kept_while_the_status_stays():
    w = _world()
    gw = w.get("Gateway", "n", "gw")
    first = with_times(gateway_status(w, gw, 1, (False, "Pending", "x")), {}, "T1")
    same = with_times(gateway_status(w, gw, 1, (False, "Pending", "x")), first, "T2")
    assert same == first
    acked = with_times(gateway_status(w, gw, 1, (True, "Programmed", "y")), first, "T3")
    times = {c["type"]: c["lastTransitionTime"] for c in acked["conditions"]}
    assert times == {"Accepted": "T1", "Programmed": "T3"}
    assert yaml.safe_dump(acked)  # plain data, storable as is
