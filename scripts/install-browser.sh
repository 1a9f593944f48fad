#!/usr/bin/env bash
# Install Chromium for the JupyterLab UI test (tests/notebooks/test_jupyterlab.py), which drives
# /usr/bin/chromium headless through Playwright (the Python package; no browser download).
# Idempotent: does nothing when /usr/bin/chromium is there. Installs with apt-get only when
# running as root on a system that has apt-get; otherwise says what to do and exits 0 (the UI
# test then skips, naming the missing browser).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  echo "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo present) at /usr/bin/chromium"
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium is not installed at /usr/bin/chromium, and this script installs it only as root with apt-get." >&2
  echo "Install it yourself (Debian/Ubuntu: sudo apt-get install chromium chromium-driver); the UI test skips until then." >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium chromium-driver >/dev/null
echo "installed: $(/usr/bin/chromium --version 2>/dev/null)"
