"""The lessons one by one, each on a lab nothing has used yet, as one program: tests/notebooks/
conftest.py runs it in the background at collection (tests/background.py) and test_standalone.py
reads what it wrote, so the rest of the suite runs meanwhile (a lesson takes 3 to 25 s here,
the fifteen about a minute and a half, mostly waiting on its lab).

    python -m tests.notebooks.standalone_run FOLDER NAME [NAME ...]

For each NAME (a notebook's stem, `08-traffic-management`), in order: papermill executes
notebooks/NAME.ipynb with LAB_HOME=FOLDER/NAME/lab into FOLDER/NAME/executed.ipynb; then
FOLDER/NAME/result.json says whether it raised (and what papermill said) and whether the lab
was running at its end, the lab is stopped, and FOLDER/NAME.rc (0: the notebook ran through,
1: it raised) tells a reader that this one is done.
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def run_one(folder: Path, name: str) -> int:
    import papermill as pm

    from lab.targets.local import LocalTarget
    from tests.notebooks.conftest import quiet_ipython_dir

    mine = folder / name
    mine.mkdir(parents=True, exist_ok=True)
    home = mine / "lab"
    os.environ["IPYTHONDIR"] = str(quiet_ipython_dir(mine))
    result = {"name": name, "error": None, "fresh": not home.exists(), "running": None}
    started = time.time()
    try:
        pm.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(mine / "executed.ipynb"),
                            parameters={"LAB_HOME": str(home)}, kernel_name="python3", language="python",
                            cwd=str(NOTEBOOKS), progress_bar=False, request_save_on_cell_execute=False)
    except Exception as exc:   # PapermillExecutionError (a cell raised), or the kernel died: the reader fails with it
        result["error"] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-3000:]}"
    target = LocalTarget(home=str(home), echo=False)
    try:
        result["running"] = target.running()
    finally:
        target.down()
    result["seconds"] = round(time.time() - started, 1)
    _write(mine / "result.json", json.dumps(result))
    code = 1 if result["error"] else 0
    _write(folder / f"{name}.rc", f"{code}\n")
    return code


def main(folder: Path, names: list[str]) -> int:
    from lab.e2e import ensure_kernel
    ensure_kernel(log=lambda *_: None)
    failed = 0
    for name in names:
        print(f"{name} ...", flush=True)
        code = run_one(folder, name)
        failed += code
        print(f"{name}: {'ok' if code == 0 else 'FAILED'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2:]))
