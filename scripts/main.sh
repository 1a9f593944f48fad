#!/usr/bin/env bash
# The README's main-job command: set up .venv/ if needed, check the manifest library, then run
# every lesson notebook end to end on the local target (`appmesh-lab e2e`), and say where the
# report is. Extra arguments go to `appmesh-lab e2e` (e.g. --only 03,06, --keep, -p TIMEOUT_S 60).
#
# Results: runs/<timestamp>/ with the executed notebooks, junit.xml and report.html;
# runs/latest points at the newest run. The lab of the run lives in runs/<timestamp>/lab/ and is
# stopped at the end (unless --keep). Exit code: 0 when everything passed, 1 when a manifest or a
# notebook failed, 2 on a usage error.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/bootstrap.sh" || exit $?
cd "$root"
echo "==> appmesh-lab validate manifests/"
.venv/bin/appmesh-lab validate manifests/ || exit $?
echo "==> appmesh-lab e2e $*"
.venv/bin/appmesh-lab e2e "$@"
code=$?
if [ "$code" -le 1 ] && [ -e runs/latest/report.html ]; then
  echo "==> report: $root/runs/latest/report.html (JUnit: $root/runs/latest/junit.xml)"
fi
exit $code
