#!/usr/bin/env bash
# Install what the pod-network test (tests/netns/test_pod_network.py) needs besides the kit:
# iptables from Debian's package (its nf_tables variant, iptables-nft, is what proxy-init's
# image uses: Alpine's `iptables` is nf_tables too), `ip` (iproute2) and `setpriv` (util-linux).
# Idempotent and never fatal: does nothing when they are there; installs with apt-get only when
# running as root on a system that has apt-get; otherwise says what to do and exits 0 (the test
# then skips, naming what is missing; it needs root anyway).
set -uo pipefail
missing=()
command -v iptables-nft >/dev/null 2>&1 || missing+=(iptables)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)
if [ ${#missing[@]} -eq 0 ]; then
  echo "netns tools: $(iptables-nft --version 2>/dev/null), $(ip -V 2>/dev/null), setpriv"
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "netns tools missing: ${missing[*]}; this script installs them only as root with apt-get." >&2
  echo "The pod-network test needs root and skips, naming what is missing (Debian: sudo apt-get install ${missing[*]})." >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
status=0
# try the package lists already there first; refresh them only if that fails
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
  apt-get update -qq || status=$?
  if [ $status -eq 0 ]; then
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || status=$?
  fi
fi
if [ $status -ne 0 ]; then
  echo "netns tools: apt-get failed (exit $status) installing ${missing[*]}; the pod-network test will skip, naming it." >&2
  exit 0
fi
echo "netns tools installed: $(iptables-nft --version 2>/dev/null)"
