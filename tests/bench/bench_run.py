"""One small `bench all` (every part, the sizes of conftest.SMALL) as one program: tests/bench/
conftest.py runs it in the background at collection (tests/background.py) and the tests that
read `bench_run` check what it wrote, so the rest of the suite runs meanwhile (it takes about a
minute, mostly labs starting and loads running).

    python -m tests.bench.bench_run FOLDER

writes the parts' records and the results page's inputs into FOLDER/results (run_all's
directory), what run_all printed into FOLDER/out.txt and its combined record into
FOLDER/combined.json.
"""
from __future__ import annotations

import io
import json
import os
import signal
import sys
from pathlib import Path


def main(folder: Path) -> int:
    # the session ended early (tests/background.py stops the run with SIGTERM): exit through the
    # parts' `finally`s, which stop their scratch labs (in the temp dir, not in FOLDER)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    from lab.bench import run_all
    from tests.bench.conftest import SMALL
    directory = folder / "results"
    directory.mkdir(parents=True, exist_ok=True)
    out = io.StringIO()
    try:
        combined = run_all(quick=True, directory=directory, parts=list(SMALL), kwargs=SMALL, out=out)
    finally:   # what it printed, also when it raised (the traceback follows in the log)
        (folder / "out.txt").write_text(out.getvalue())
        sys.stdout.write(out.getvalue())
    tmp = folder / ".combined.json"
    tmp.write_text(json.dumps(combined))
    os.replace(tmp, folder / "combined.json")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
