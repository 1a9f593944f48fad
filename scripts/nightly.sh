#!/usr/bin/env bash
# What a nightly CI job calls: set up .venv/ if needed, then run every lesson notebook end to end
# with papermill on the target named by $TARGET (local, the default; kind; eks).
#
#   TARGET=kind scripts/nightly.sh                 # extra arguments go to `appmesh-lab e2e`,
#   scripts/nightly.sh -p TIMEOUT_S 60 --keep      # e.g. parameters, --only 03,06, --keep
#
# Results: $RUNS_DIR/<timestamp>/ (default runs/): the executed notebooks, junit.xml for the CI's
# test report, report.html for people; $RUNS_DIR/latest points at the newest run. The target is
# torn down at the end unless --keep. Exits with e2e's code: 0 all passed, 1 a notebook failed,
# 2 a usage error.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${TARGET:-local}"
case "$target" in
  local|kind|eks) ;;
  *) echo "nightly.sh: TARGET=$target is not a target: set TARGET to local (the default), kind or eks" >&2
     exit 2 ;;
esac
"$root/scripts/bootstrap.sh" || exit $?
cd "$root"
runs="${RUNS_DIR:-runs}"
echo "==> appmesh-lab e2e --target $target --output-dir $runs $*"
.venv/bin/appmesh-lab e2e --target "$target" --output-dir "$runs" "$@"
code=$?
exit $code
