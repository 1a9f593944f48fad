#!/usr/bin/env bash
# Install the data-plane benchmark's tools (`appmesh-lab bench dataplane`): wrk, the load
# generator, and nginx (the nginx-light flavour), the reverse proxy it is compared with.
# Idempotent and never fatal: does nothing when both are on PATH; installs with apt-get only
# when running as root on a system that has apt-get; otherwise says what to do and exits 0
# (the benchmark then uses the kit's asyncio load generator and skips the nginx row, saying so).
# The package's own nginx service is not started: the benchmark runs nginx unprivileged on a
# loopback port with a config in a temporary directory.
set -uo pipefail
missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
if [ ${#missing[@]} -eq 0 ]; then
  echo "bench tools: wrk and nginx are installed"
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "bench tools missing: ${missing[*]}; this script installs them only as root with apt-get." >&2
  echo "Install them yourself (Debian/Ubuntu: sudo apt-get install wrk nginx-light); until then the data-plane" >&2
  echo "benchmark uses the kit's asyncio load generator and leaves out the nginx row." >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# Keep the package scripts from starting nginx's system service on port 80 (policy-rc.d 101 =
# "action not allowed"); only when no policy is in place already, and removed afterwards.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && made_policy=1
fi
status=0
apt-get update -qq || status=$?
if [ $status -eq 0 ]; then
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || status=$?
fi
[ $made_policy -eq 1 ] && rm -f "$policy"
if [ $status -ne 0 ]; then
  echo "bench tools: apt-get failed (exit $status) installing ${missing[*]}; the data-plane benchmark falls back" >&2
  echo "to the kit's asyncio load generator and leaves out the nginx row." >&2
  exit 0
fi
echo "bench tools installed: $(wrk --version 2>&1 | head -1 || true); $( (nginx -v || /usr/sbin/nginx -v) 2>&1 | head -1)"
