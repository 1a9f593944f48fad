#!/usr/bin/env bash
# The README's test command: set up .venv/ if needed, then run the whole pytest suite.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/bootstrap.sh"
# Chromium for the JupyterLab UI test; never fatal (without it that one test skips, naming it)
"$root/scripts/install-browser.sh" || echo "chromium could not be installed; the JupyterLab UI test will skip" >&2
# iptables (nf_tables), ip, setpriv for the pod-network test; never fatal (without them, or without
# root, that test skips, naming what is missing)
"$root/scripts/install-netns-tools.sh" || echo "the pod-network test's tools could not be installed; it will skip" >&2
cd "$root"
# APPMESH_TEST_WORKERS=N runs the tests on N worker processes at once (pytest-xdist), a module's
# tests on one worker (many share a lab started once per module): --dist loadfile. (loadgroup,
# with tests/conftest.py's groups, no longer keeps them together with pytest 9: tests/test_workers.py.)
# Off by default: on this 2-core machine, already busy, three workers were slower than one.
workers="${APPMESH_TEST_WORKERS:-0}"
exec .venv/bin/python -m pytest -n "$workers" --dist loadfile "$@"
