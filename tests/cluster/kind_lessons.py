"""The lessons on TARGET=kind against the stand-ins, as one program: tests/cluster/conftest.py runs
it in the background at collection (tests/background.py) and test_notebooks_kind.py reads what it
wrote, so the rest of the suite runs meanwhile (the five lessons take minutes, mostly waiting).

    python -m tests.cluster.kind_lessons FOLDER LESSONS

starts a StandInCluster in FOLDER/standin, runs `lab.e2e.run("kind", ...)` with the stand-ins first
on PATH, stops the stand-ins and writes FOLDER/result.json: the run's progress lines, its report
folder, its failures and every tool call the stand-ins checked.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ALL = "00,01,02,03,04,05,06,07,08,09,10,11,12,13,14"
# The README's test command runs the lessons whose kind branches differ most from local (the cluster
# and the chart coming up, the gateway's published port, TLS through it, cleanup): every lesson takes
# about a minute here, and the whole list would double the suite's time. Lesson 11 (troubleshooting:
# pod restarts, access-log flags through `kubectl logs`, the webhook's findings) takes five to ten
# minutes here on its own, so it is in the whole list only. Every one runs with
#   APPMESH_LAB_KIND_LESSONS=all scripts/test.sh -m notebooks_kind      (a nightly job's line)
# and a comma list (03,06) runs only those.
DEFAULT = "01,02,05,09,14"
_chosen = os.environ.get("APPMESH_LAB_KIND_LESSONS") or DEFAULT
LESSONS = ALL if _chosen == "all" else _chosen


def main(folder: Path, lessons: str) -> int:
    from lab import e2e
    from tests.cluster.standins.cluster import NOTE, StandInCluster
    from tests.controller.helmbin import find_helm

    env = StandInCluster(folder / "standin")
    helm = find_helm()
    os.environ.update(env.start(real_helm=str(helm) if helm else None))
    lines: list = []
    try:
        r = e2e.run("kind", params={"TIMEOUT_S": 60}, only=lessons, output_dir=folder / "runs", log=lines.append,
                    note=NOTE)
        failed = [f"{o.notebook}: cell {o.cell_index}: {o.ename}: {o.evalue}\n{o.output[-1500:]}" for o in r.failed]
        result = {"lines": lines, "directory": str(r.directory), "failed": failed, "calls": env.calls()}
    finally:
        env.stop()
    tmp = folder / "result.json.tmp"
    tmp.write_text(json.dumps(result))
    tmp.replace(folder / "result.json")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2]))
