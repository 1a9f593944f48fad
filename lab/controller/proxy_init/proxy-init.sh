#!/bin/sh
# Redirect a pod's TCP traffic to its Envoy sidecar, the way App Mesh's proxy route manager did
# (APPMESH-FACTS §9.5):
#   inbound  (nat PREROUTING, source not local): TCP to APPMESH_APP_PORTS -> APPMESH_ENVOY_INGRESS_PORT
#   outbound (nat OUTPUT, destination not local): RETURN for Envoy's own UID/GID, for the
#            ignored ports and IPs; every other TCP connection -> APPMESH_ENVOY_EGRESS_PORT
# Environment (set by the injector): APPMESH_START_ENABLED, APPMESH_IGNORE_UID,
# APPMESH_IGNORE_GID, APPMESH_ENVOY_INGRESS_PORT, APPMESH_ENVOY_EGRESS_PORT, APPMESH_APP_PORTS,
# APPMESH_EGRESS_IGNORED_IP, APPMESH_EGRESS_IGNORED_PORTS, APPMESH_ENABLE_IPV6.
# DRY_RUN=1 prints the commands instead of running them (used by the tests); IPV6_PROC names the
# file whose presence says the kernel has IPv6 (default /proc/net/if_inet6).
set -eu

IPTABLES="${IPTABLES:-iptables}"
IP6TABLES="${IP6TABLES:-ip6tables}"
INGRESS_PORT="${APPMESH_ENVOY_INGRESS_PORT:-15000}"
EGRESS_PORT="${APPMESH_ENVOY_EGRESS_PORT:-15001}"
IGNORE_UID="${APPMESH_IGNORE_UID:-1337}"
IGNORE_GID="${APPMESH_IGNORE_GID:-}"
APP_PORTS="${APPMESH_APP_PORTS:-}"
IGNORED_IPS="${APPMESH_EGRESS_IGNORED_IP:-}"
IGNORED_PORTS="${APPMESH_EGRESS_IGNORED_PORTS:-}"

if [ "${APPMESH_START_ENABLED:-1}" != "1" ]; then
    echo "proxy-init: APPMESH_START_ENABLED is not 1; leaving the pod's traffic alone"
    exit 0
fi

run() {
    if [ "${DRY_RUN:-0}" = "1" ]; then
        echo "$*"
    else
        "$@"
    fi
}

is_ipv6() { case "$1" in *:*) return 0 ;; *) return 1 ;; esac; }

rules() {
    ipt="$1"
    family="$2"
    run "$ipt" -t nat -N APPMESH_INGRESS
    run "$ipt" -t nat -N APPMESH_EGRESS
    # inbound: the app ports go to Envoy's ingress listener
    for port in $(echo "$APP_PORTS" | tr ',' ' '); do
        run "$ipt" -t nat -A APPMESH_INGRESS -p tcp --dport "$port" -j REDIRECT --to-port "$INGRESS_PORT"
    done
    run "$ipt" -t nat -A PREROUTING -p tcp -m addrtype ! --src-type LOCAL -j APPMESH_INGRESS
    # outbound: Envoy's own traffic leaves as it is
    run "$ipt" -t nat -A APPMESH_EGRESS -m owner --uid-owner "$IGNORE_UID" -j RETURN
    if [ -n "$IGNORE_GID" ]; then
        run "$ipt" -t nat -A APPMESH_EGRESS -m owner --gid-owner "$IGNORE_GID" -j RETURN
    fi
    if [ -n "$IGNORED_PORTS" ]; then
        run "$ipt" -t nat -A APPMESH_EGRESS -p tcp -m multiport --dports "$IGNORED_PORTS" -j RETURN
    fi
    for ip in $(echo "$IGNORED_IPS" | tr ',' ' '); do
        if { [ "$family" = 6 ] && is_ipv6 "$ip"; } || { [ "$family" = 4 ] && ! is_ipv6 "$ip"; }; then
            run "$ipt" -t nat -A APPMESH_EGRESS -p tcp -d "$ip" -j RETURN
        fi
    done
    run "$ipt" -t nat -A APPMESH_EGRESS -p tcp -j REDIRECT --to-port "$EGRESS_PORT"
    run "$ipt" -t nat -A OUTPUT -p tcp -m addrtype ! --dst-type LOCAL -j APPMESH_EGRESS
}

rules "$IPTABLES" 4
if [ "${APPMESH_ENABLE_IPV6:-0}" = "1" ]; then
    # IPv6 gets the same rules, so IPv6 traffic cannot go around the sidecar (upstream's
    # default). A kernel without IPv6 (booted with ipv6.disable=1) has no IPv6 traffic to
    # redirect, and no ip6tables nat table to write to.
    if [ -e "${IPV6_PROC:-/proc/net/if_inet6}" ]; then
        rules "$IP6TABLES" 6
    else
        echo "proxy-init: this kernel has no IPv6 (no ${IPV6_PROC:-/proc/net/if_inet6}); IPv4 rules only"
    fi
fi
echo "proxy-init: inbound ports [${APP_PORTS}] -> ${INGRESS_PORT}, outbound -> ${EGRESS_PORT}" \
     "(except uid ${IGNORE_UID}, ports [${IGNORED_PORTS}], IPs [${IGNORED_IPS}])"
