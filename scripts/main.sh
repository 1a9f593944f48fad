#!/usr/bin/env bash
# The README's main-job command: set up .venv/ if needed, then run the kit's main job.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/bootstrap.sh"
cd "$root"
exec .venv/bin/appmesh-lab validate manifests/ "$@"
