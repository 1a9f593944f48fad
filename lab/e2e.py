"""Run the lesson notebooks end to end with papermill, and JupyterLab for people.

    appmesh-lab e2e [--target local|kind|eks] [-p KEY VALUE ...] [--only 03,06] [--keep] [-j N] [--output-dir runs]
    appmesh-lab jupyter [JUPYTER LAB OPTIONS ...]

`e2e` executes notebooks/NN-*.ipynb, each in a fresh kernel started from this Python (the
`python3` kernelspec; registered into this environment if it is missing or points at another
interpreter), with the working directory notebooks/ and the parameters TARGET, LAB_HOME (when
given) and any `-p KEY VALUE`. One progress line per notebook, as each ends. Everything goes to
runs/<timestamp>/ (runs/latest points at it):

    NN-name.ipynb   each notebook as executed, outputs and error included
    junit.xml       one testcase per notebook, in order; a failure's message is papermill's
                    error: the cell index, the exception name and its value
    report.html     the failing cell and its error first, then every notebook's outcome and time
    lab/, lab-2/    the local labs' state and logs for this run (lab/ is LAB_HOME or
                    $APPMESH_LAB_HOME when one is given)

Speed (the whole course in about a minute on two cores; `appmesh-lab bench suite`):
  * on the local target, notebooks run on several labs at once (-j, default one more than the
    cores, at most four): each lab takes the next notebook in order when it is free, and each notebook's
    first cell brings its lab to the state it starts from. A lab is passed to the kernels as
    $APPMESH_LAB_HOME, so every notebook shows the same parameters on any lab; the labs' ports
    never collide (lab/runtime/ports.py claims them machine-wide). The course's last notebook
    (cleanup) runs right after the one before it, on that notebook's lab, whose state it
    removes. A lab stops as soon as its last notebook ends.
  * each notebook's kernel is started, and the lesson helpers imported into it, while the
    notebook before it runs, and stopped in the background after it (lab/kernelpool.py): still
    one fresh kernel per notebook, only the waiting is gone.
  * a measurement that must not share the machine (latency) holds the other labs still: each
    lab's cells run under a lock that `lab.quiet.quiet()` takes (lab/quiet.py).
A cluster target runs its notebooks one after another (one cluster, one namespace), with the
kernels started ahead; so does a local run with --keep, whose lab then holds every lesson's state.

The target is torn down at the end, pass or fail, unless --keep. The exit code is 0 when every
notebook passed, 1 when one failed, 2 on usage errors. On `kind` and `eks` the tools are checked
first (exit 2, one line naming what is missing) and the cluster is brought up once before the
notebooks (lab/targets/cluster.py; docs/clusters.md).
"""
from __future__ import annotations

import html
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
KERNEL = "python3"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class E2EError(Exception):
    """The run could not start (bad options, no kernel); the message says what to do."""


@dataclass
class Outcome:
    notebook: str
    passed: bool = False
    seconds: float = 0.0
    cell_index: int | None = None
    ename: str = ""
    evalue: str = ""
    traceback: str = ""
    source: str = ""
    output: str = ""
    lab: int = 1                # which of the run's labs it ran on (1 when there is one)
    kernel_wait_s: float = 0.0  # how long it waited for its kernel (started while the notebook before it ran)
    cells: list = field(default_factory=list)   # [index, seconds, first line] of each code cell it ran
    setup_s: float | None = None                 # its set-up cell's time (the one calling nb.setup)
    probe: dict = field(default_factory=dict)   # what `probe` measured on its lab across it (bench suite)

    @property
    def message(self) -> str:
        if self.passed:
            return ""
        where = f"cell {self.cell_index}: " if self.cell_index is not None else ""
        return f"{where}{self.ename}: {self.evalue}".strip()


@dataclass
class Run:
    directory: Path
    target: str
    outcomes: list = field(default_factory=list)
    teardown: str = ""
    note: str = ""
    labs: list = field(default_factory=list)   # the local labs it ran on (one per lane)
    wall_s: float = 0.0                          # from the first notebook to the teardown's end  # what the run was against, when not what the target's name says (e.g. stand-ins)

    @property
    def failed(self) -> list:
        return [o for o in self.outcomes if not o.passed]


# ---- kernel --------------------------------------------------------------------------------

def _kernel_python(spec) -> str | None:
    argv0 = spec.argv[0] if spec.argv else ""
    if argv0 in ("python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"):
        return sys.executable  # jupyter_client starts these with the launching interpreter
    return argv0


def _same_python(a: str | None) -> bool:
    if not a:
        return False
    try:
        return os.path.realpath(a) == os.path.realpath(sys.executable) or Path(a).resolve() == Path(sys.executable).resolve()
    except OSError:
        return False


def ensure_kernel(name: str = KERNEL, log=print) -> str:
    """Make sure kernel `name` runs this interpreter (the one with the kit installed).
    Registers it into this environment (`ipykernel install --sys-prefix`) when it is missing or
    points elsewhere. Idempotent. Returns the kernel's interpreter."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    def current():
        try:
            return _kernel_python(KernelSpecManager().get_kernel_spec(name))
        except NoSuchKernel:
            return None
    python = current()
    if _same_python(python):
        return sys.executable
    log(f"registering the {name!r} Jupyter kernel for {sys.executable} (it {'ran ' + python if python else 'was missing'})")
    proc = subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", name,
                           "--display-name", "Python 3 (ipykernel)"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise E2EError(f"could not register the {name!r} kernel: {proc.stderr.strip()[-500:]}")
    python = current()
    if not _same_python(python):
        raise E2EError(f"the {name!r} kernel still runs {python}, not {sys.executable}: another kernelspec of that "
                       "name shadows this environment's (see `jupyter kernelspec list`); remove it and retry")
    return sys.executable


# ---- running -------------------------------------------------------------------------------

def notebooks(only: str | None = None, directory: Path = NOTEBOOKS) -> list[Path]:
    found = sorted(p for p in directory.glob("[0-9][0-9]-*.ipynb"))
    if not found:
        raise E2EError(f"no notebooks in {directory}; write them from their sources with: appmesh-lab lessons sync")
    if not only:
        return found
    wanted = [w.strip().zfill(2) for w in only.split(",") if w.strip()]
    chosen = [p for p in found if p.name[:2] in wanted]
    unknown = sorted(set(wanted) - {p.name[:2] for p in chosen})
    if unknown:
        raise E2EError(f"--only {only}: no notebook numbered {', '.join(unknown)} (have {found[0].name[:2]} to "
                       f"{found[-1].name[:2]})")
    return chosen


def parse_value(text: str):
    """-p values like papermill's: numbers, true/false, null become those; the rest is a string."""
    import yaml
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (int, float, bool)) or value is None else text


def _new_run_dir(output_dir: Path) -> Path:
    output_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    d, n = output_dir / stamp, 1
    while d.exists():
        n += 1
        d = output_dir / f"{stamp}-{n}"
    d.mkdir()
    latest = output_dir / "latest"
    tmp = output_dir / f".latest-{os.getpid()}"
    try:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(d.name)
        os.replace(tmp, latest)
    except OSError:  # no symlinks here (some filesystems): the timestamped folder is enough
        pass
    return d


def _execute(path: Path, out: Path, parameters: dict, timeout: float | None, spare, ahead: int = 0,
             probe=None, home: str | None = None, gate=None) -> Outcome:
    """Run one notebook with papermill in a kernel from `spare` (lab/kernelpool.py); the kernels of
    the `ahead` notebooks that follow on this lab start while this one runs. `gate`
    (lab/quiet.py) is held while each cell runs."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    from .kernelpool import register_engine
    o = Outcome(path.stem)
    before = probe(home) if probe else {}
    t0 = time.perf_counter()
    km = None
    try:
        km, o.kernel_wait_s = spare.take()
        if ahead:
            spare.prepare(ahead)
        pm.execute_notebook(str(path), str(out), parameters=parameters, kernel_name=KERNEL, language="python",
                            engine_name=register_engine(), km=km, progress_bar=False, log_output=False,
                            start_timeout=60, request_save_on_cell_execute=False,
                            # papermill takes whole seconds (a float is a TraitError that fails every notebook)
                            execution_timeout=None if timeout is None else max(1, math.ceil(timeout)),
                            **({"on_cell_execute": gate.enter, "on_cell_executed": gate.leave} if gate else {}))
        o.passed = True
    except PapermillExecutionError as exc:
        o.cell_index, o.ename, o.evalue = exc.cell_index, exc.ename, exc.evalue
        o.source = exc.source
        o.traceback = _ANSI.sub("", "\n".join(exc.traceback or []))
    except Exception as exc:  # a kernel that died or timed out, an unreadable notebook: still one failed testcase
        o.ename, o.evalue = type(exc).__name__, str(exc)
        o.traceback = _ANSI.sub("", str(exc))
    finally:
        if gate:
            gate.leave()   # a cell that timed out, or a kernel that died in one
        spare.release(km)   # stops in the background
    o.seconds = time.perf_counter() - t0
    if probe:
        after = probe(home)
        o.probe = {k: round(v - before.get(k, 0), 3) for k, v in after.items() if isinstance(v, (int, float))}
    o.cells, o.setup_s = _cell_times(out)
    if not o.passed:
        o.output = _cell_output(out, o.cell_index)
    return o


def _cell_times(path: Path) -> tuple[list, float | None]:
    """([index, seconds, first line] of each code cell papermill ran, from its
    metadata.papermill.duration; the seconds of the first cell calling `nb.setup(`)."""
    times, setup = [], None
    for i, cell in enumerate(_executed_cells(path)):
        seconds = (cell.get("metadata", {}).get("papermill") or {}).get("duration")
        if cell.get("cell_type") == "code" and isinstance(seconds, (int, float)):
            source = cell.get("source", "")
            source = "".join(source) if isinstance(source, list) else source
            first = next((line for line in source.splitlines() if line.strip() and not line.startswith("#")), "")
            times.append([i, round(seconds, 3), first.strip()[:100]])
            if setup is None and "nb.setup(" in source:
                setup = round(seconds, 3)
    return times, setup


_ERROR_CELL = "papermill-error-cell-tag"   # the two cells papermill inserts in a failed notebook


def _executed_cells(path: Path) -> list:
    """The executed notebook's cells without the ones papermill inserted to mark a failure, so
    index i is cell i of the notebook as it ran (the index papermill's error names)."""
    try:
        nb = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [c for c in nb.get("cells", []) if _ERROR_CELL not in c.get("metadata", {}).get("tags", [])]


def _cell_output(path: Path, index: int | None) -> str:
    """The text the failing cell printed before it failed (from the executed notebook)."""
    cells = _executed_cells(path)
    if index is None or not 0 <= index < len(cells):
        return ""
    parts = []
    for out in cells[index].get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append("".join(out.get("text", "")))
    return _ANSI.sub("", "".join(parts))[-4000:]


def _bring_up(target: str, parameters: dict) -> Outcome:
    """ClusterTarget.up() for a cluster target; a failure is an Outcome named `up`."""
    from .notebook.staging import make_target
    o = Outcome("up")
    t0 = time.perf_counter()
    try:
        make_target(target, cluster_name=parameters.get("CLUSTER_NAME"), region=parameters.get("REGION")).up()
        o.passed = True
    except Exception as exc:  # reported as the run's failure; the teardown still runs
        o.ename, o.evalue = type(exc).__name__, str(exc)
        o.traceback = f"{type(exc).__name__}: {exc}"
    o.seconds = time.perf_counter() - t0
    return o


def _teardown(target: str, lab_home: str | None, cluster_name=None, region=None) -> str:
    try:
        if target == "local":
            from .targets.local import LocalTarget
            LocalTarget(home=lab_home, echo=False).down()
            return "local lab stopped"
        from .notebook.staging import make_target
        make_target(target, echo=False, cluster_name=cluster_name, region=region).down()
        return f"{target} target torn down"
    except Exception as exc:  # teardown must not hide the run's result; it is reported instead
        return f"teardown failed: {type(exc).__name__}: {exc}"


def default_jobs() -> int:
    """How many labs a local run uses at once: one more than the cores, at most four. Most of a
    lesson is waiting (requests, timeouts, Envoys starting): the whole course used about 30 s of
    CPU in 60-100 s on two busy cores, and three labs ended it in 69 s where two took 96 s."""
    env = os.environ.get("APPMESH_LAB_E2E_JOBS", "")
    if env.strip().isdigit() and int(env) >= 1:
        return int(env)
    return max(1, min(4, (os.cpu_count() or 1) + 1))


class _Lanes:
    """Which lab runs which notebook. Each lab takes the next notebook in order when it is free,
    so each lab runs a rising part of the course: a lesson finds its lab as lessons before it
    could have left it, never with a later lesson's state (lessons 03-06 print what they create;
    run after 06 they would print "unchanged"), and it shows the same outputs as in one line.
    Taking the longest first would break that. The course's last notebook (cleanup: it removes
    what the lessons before it left and stops the lab) runs when every other has been handed
    out, on the lab of the notebook numbered before it, the state it expects."""

    AHEAD = 2   # kernels a lab keeps starting ahead: a short notebook ends before one kernel has started

    def __init__(self, chosen: list[Path], last_of_course: str | None, jobs: int = 1):
        self.jobs = jobs
        self.queue = list(range(len(chosen)))
        self.final = self.queue.pop() if len(chosen) > 1 and chosen[-1].name == last_of_course else None
        self.owner: int | None = None      # the lane that runs the final notebook
        self.lock = threading.Lock()

    def next(self, lane: int) -> tuple[int | None, int]:
        """(the next notebook for `lane`, or None when it has no more; how many kernels to start ahead
        for it: about its share of the notebooks left, at most AHEAD)."""
        with self.lock:
            if self.queue:
                i = self.queue.pop(0)
                if self.final is not None and i == self.final - 1:
                    self.owner = lane
            elif self.owner == lane and self.final is not None:
                i, self.final = self.final, None
            else:
                return None, 0
            share = -(-len(self.queue) // self.jobs) + (1 if self.owner == lane and self.final is not None else 0)
            return i, min(self.AHEAD, share)


def _lab_homes(target: str, parameters: dict, run_dir: Path, jobs: int) -> list[str | None]:
    """The lab of each lane: the first is LAB_HOME, else $APPMESH_LAB_HOME, else runs/<ts>/lab;
    the others runs/<ts>/lab-2, lab-3, ... (a cluster target has one lane and no local lab)."""
    if target != "local":
        return [None]
    first = parameters.get("LAB_HOME") or os.environ.get("APPMESH_LAB_HOME") or str(run_dir / "lab")
    return [str(first)] + [str(run_dir / f"lab-{k}") for k in range(2, jobs + 1)]


def _lane_setup(target: str, parameters: dict, homes: list, lane: int) -> tuple[dict, dict | None]:
    """(the notebook parameters, the kernels' environment) of lane `lane` (1-based). The lab goes
    to the kernels as $APPMESH_LAB_HOME, and as the LAB_HOME parameter only when the run was
    given one: a notebook shows the same parameters on every lab."""
    env = dict(os.environ)
    if target != "local":
        return dict(parameters), env
    params = dict(parameters)
    if params.get("LAB_HOME"):
        params["LAB_HOME"] = homes[lane - 1]
    env["APPMESH_LAB_HOME"] = homes[lane - 1]
    return params, env


def run(target: str = "local", params: dict | None = None, only: str | None = None, keep: bool = False,
        output_dir="runs", timeout: float | None = None, log=print, directory: Path | None = None,
        note: str = "", jobs: int | None = None, probe=None) -> Run:
    """Execute the notebooks (of `directory`, default notebooks/) and write the run's files;
    returns the Run (see the module doc). `note` is said first in the log, the report and junit.xml
    (what the target really was, e.g. stand-ins rather than a cluster). `jobs`: how many local
    labs run notebooks at once (default: default_jobs(); one with --keep, and on a cluster).
    `probe(lab_home) -> {name: number}` is called before and after each notebook on its lab;
    each Outcome's `probe` holds the differences (the bench's CPU accounting)."""
    if target not in ("local", "kind", "eks"):
        raise E2EError(f"--target {target}: choose local, kind or eks")
    directory = directory or NOTEBOOKS
    chosen = notebooks(only, directory)
    if target != "local":  # a cluster target's tools first: what is missing is said before anything starts
        from .targets.base import TargetError
        from .targets.cluster import check_prerequisites
        try:
            check_prerequisites(target)
        except TargetError as exc:
            raise E2EError(str(exc)) from exc
    if jobs is not None and jobs < 1:
        raise E2EError(f"--jobs {jobs}: give 1 or more")
    if target != "local":
        jobs = 1   # one cluster, one namespace: its notebooks run one after another
    elif jobs is None:
        jobs = 1 if keep else default_jobs()   # --keep: the lab left running has every lesson's state
    jobs = max(1, min(jobs, len(chosen)))
    ensure_kernel(log=log)
    out_root = Path(output_dir)
    out_root = out_root if out_root.is_absolute() else Path.cwd() / out_root
    run_dir = _new_run_dir(out_root)
    parameters = dict(params or {})
    parameters["TARGET"] = target
    if target != "local":  # the up step, the notebooks and the teardown name the same cluster;
        from .targets.cluster import DEFAULTS  # and a cluster converges slower (image pulls, an NLB)
        parameters.setdefault("CLUSTER_NAME", DEFAULTS[target]["cluster_name"])
        if DEFAULTS[target]["region"]:
            parameters.setdefault("REGION", DEFAULTS[target]["region"])
        parameters.setdefault("TIMEOUT_S", DEFAULTS[target]["timeout_s"])
    homes = _lab_homes(target, parameters, run_dir, jobs)
    r = Run(run_dir, target, note=note, labs=[h for h in homes if h])
    log(f"appmesh-lab e2e: {len(chosen)} notebook(s) on target {target}"
        + (f", {jobs} labs at once" if jobs > 1 else "") + f", output in {run_dir}")
    if note:
        log(f"note: {note}")
    width = max(len(p.stem) for p in chosen)
    # The kernels get an IPython profile of their own: history stays in the run, and the kernel's
    # start-up warnings (e.g. "running over TCP without encryption") do not drown the progress lines.
    ipython_dir = run_dir / ".ipython"
    (ipython_dir / "profile_default").mkdir(parents=True, exist_ok=True)
    (ipython_dir / "profile_default" / "ipython_kernel_config.json").write_text(
        json.dumps({"IPKernelApp": {"log_level": "CRITICAL"}}))
    saved = os.environ.get("IPYTHONDIR")
    os.environ["IPYTHONDIR"] = str(ipython_dir)
    outcomes: dict[int, Outcome] = {}
    done, log_lock = [0], threading.Lock()
    teardowns: dict[int, str] = {}

    def report(i: int, o: Outcome) -> None:
        with log_lock:
            outcomes[i] = o
            done[0] += 1
            status = "ok" if o.passed else "FAILED"
            line = f"[{done[0]:>2}/{len(chosen)}] {chosen[i].stem:<{width}}  {status:<6} {o.seconds:6.1f}s"
            line += f"  lab {o.lab}" if jobs > 1 else ""
            log(line + ("" if o.passed else f"  {o.message[:160]}"))

    errors: list = []

    def lane(number: int, lanes: _Lanes) -> None:
        lane_params, env = _lane_setup(target, parameters, homes, number)
        from .kernelpool import Spare
        gate = None
        if jobs > 1:   # a measurement in a notebook holds the other labs still (lab/quiet.py)
            from .quiet import ENV_DIR, ENV_LANE, CellGate
            gate = CellGate(run_dir / ".quiet", number)
            env[ENV_DIR], env[ENV_LANE] = str(run_dir / ".quiet"), str(number)
        spare = Spare(KERNEL, cwd=str(directory), env=env)
        home = homes[number - 1]
        try:
            while True:
                i, ahead = lanes.next(number)
                if i is None:
                    break
                o = _execute(chosen[i], run_dir / chosen[i].name, lane_params, timeout, spare, ahead, probe, home,
                             gate)
                o.lab = number
                report(i, o)
        except BaseException as exc:  # a bug of the runner's, not a notebook's: raised again below
            errors.append(exc)
        finally:
            spare.close()
            if gate:
                gate.close()
            if jobs > 1 and not keep:   # this lab's part is done: stopped while the others still run
                teardowns[number] = _teardown(target, home)

    t_start = time.perf_counter()
    try:
        if target != "local":  # the cluster (scripts/<target>-up.sh), once, before the notebooks
            up = _bring_up(target, parameters)
            log(f"[up] {target} cluster {parameters['CLUSTER_NAME']}  {'ok' if up.passed else 'FAILED'} "
                f"{up.seconds:6.1f}s" + ("" if up.passed else f"  {up.message[:160]}"))
            if not up.passed:
                r.outcomes.append(up)
                chosen = []
        if chosen:
            lanes = _Lanes(chosen, notebooks(None, directory)[-1].name, jobs)
            threads = [threading.Thread(target=lane, args=(n, lanes), name=f"e2e-lab-{n}", daemon=True)
                       for n in range(1, jobs + 1)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            r.outcomes.extend(outcomes[i] for i in sorted(outcomes))
            if errors:
                raise errors[0]
    finally:
        if saved is None:
            os.environ.pop("IPYTHONDIR", None)
        else:
            os.environ["IPYTHONDIR"] = saved
        if keep:
            r.teardown = "kept running (--keep)" + (f": labs {', '.join(r.labs)}" if len(r.labs) > 1 else "")
        elif jobs > 1 and chosen:
            missing = [n for n in range(1, jobs + 1) if n not in teardowns]   # a lane that never ran
            for n in missing:
                teardowns[n] = _teardown(target, homes[n - 1])
            failed = [m for m in teardowns.values() if m.startswith("teardown failed")]
            r.teardown = "; ".join(failed) if failed else f"{jobs} local labs stopped"
        else:
            r.teardown = _teardown(target, homes[0], parameters.get("CLUSTER_NAME"), parameters.get("REGION"))
        r.wall_s = time.perf_counter() - t_start
        write_junit(r, run_dir / "junit.xml")
        write_report(r, run_dir / "report.html")
    total = sum(o.seconds for o in r.outcomes)
    log(f"{len(r.outcomes) - len(r.failed)} passed, {len(r.failed)} failed in {r.wall_s:.1f}s"
        + (f" ({total:.1f}s of notebooks on {jobs} labs)" if jobs > 1 else "") + f"; {r.teardown}")
    log(f"report: {run_dir / 'report.html'}")
    return r


# ---- reports -------------------------------------------------------------------------------

def write_junit(r: Run, path: Path) -> None:
    suite = ET.Element("testsuite", name=f"appmesh-lab e2e ({r.target})", tests=str(len(r.outcomes)),
                       failures=str(len(r.failed)), errors="0", skipped="0",
                       time=f"{sum(o.seconds for o in r.outcomes):.3f}",
                       timestamp=time.strftime("%Y-%m-%dT%H:%M:%S"))
    if r.note:
        ET.SubElement(ET.SubElement(suite, "properties"), "property", name="note", value=r.note)
    for o in r.outcomes:
        case = ET.SubElement(suite, "testcase", classname=f"notebooks.{r.target}", name=o.notebook,
                             time=f"{o.seconds:.3f}")
        if not o.passed:
            failure = ET.SubElement(case, "failure", message=o.message, type=o.ename or "Error")
            failure.text = o.traceback
    root = ET.Element("testsuites", tests=suite.get("tests"), failures=suite.get("failures"), time=suite.get("time"))
    root.append(suite)
    ET.indent(root)
    path.write_text('<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n")


def write_report(r: Run, path: Path) -> None:
    e = html.escape
    passed = len(r.outcomes) - len(r.failed)
    parts = [f"""<!doctype html><html><head><meta charset="utf-8"><title>appmesh-lab e2e {e(r.directory.name)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:70em}} pre{{background:#f6f8fa;padding:1em;
overflow:auto;font-size:85%}} table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:.3em .7em;
text-align:left}} .ok{{color:#1a7f37}} .fail{{color:#cf222e;font-weight:bold}} .box{{border:2px solid #cf222e;
padding:0 1em;margin:1em 0}}</style></head><body>
<h1>appmesh-lab e2e: <span class="{'ok' if not r.failed else 'fail'}">{passed} passed, {len(r.failed)} failed</span></h1>
<p>target <b>{e(r.target)}</b>, run {e(r.directory.name)}, {r.wall_s:.1f}s ({sum(o.seconds for o in r.outcomes):.1f}s
of notebooks{f" on {len(r.labs)} labs at once" if len(r.labs) > 1 else ""}); {e(r.teardown)}</p>""" + (f'<p class="box"><b>Note:</b> {e(r.note)}</p>' if r.note else "")]
    if r.failed:
        f = r.failed[0]
        where = f" (lab {f.lab}: {e(r.labs[f.lab - 1])})" if len(r.labs) > 1 and f.lab <= len(r.labs) else ""
        parts.append(f"""<div class="box"><h2>First failure: {e(f.notebook)}, cell {f.cell_index}</h2>{where}
<p><b>{e(f.ename)}</b>: {e(f.evalue)}</p><h3>The cell</h3><pre>{e(f.source or '(not available)')}</pre>
{f'<h3>What it printed</h3><pre>{e(f.output)}</pre>' if f.output else ''}
<h3>Traceback</h3><pre>{e(f.traceback)}</pre>
<p>Executed notebook: <a href="{e(f.notebook)}.ipynb">{e(f.notebook)}.ipynb</a></p></div>""")
    labs = len(r.labs) > 1
    parts.append("<h2>Notebooks</h2><table><tr><th>notebook</th><th>outcome</th><th>time</th>"
                 + ("<th>lab</th>" if labs else "") + "<th>error</th></tr>")
    for o in r.outcomes:
        parts.append(f"<tr><td><a href=\"{e(o.notebook)}.ipynb\">{e(o.notebook)}</a></td>"
                     f"<td class=\"{'ok' if o.passed else 'fail'}\">{'passed' if o.passed else 'FAILED'}</td>"
                     f"<td>{o.seconds:.1f}s</td>" + (f"<td>{o.lab}</td>" if labs else "") + f"<td>{e(o.message)}</td></tr>")
    parts.append("</table>")
    for o in r.failed[1:]:
        parts.append(f"<h3>{e(o.notebook)}, cell {o.cell_index}: {e(o.ename)}</h3><pre>{e(o.traceback)}</pre>")
    parts.append("</body></html>\n")
    path.write_text("\n".join(parts))


# ---- CLI -------------------------------------------------------------------------------------

def notebook_parameters(path: Path) -> set[str]:
    """The names the notebook's `parameters` cell assigns (what -p may set)."""
    import ast
    for cell in json.loads(path.read_text())["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            return {t.id for node in ast.parse(src).body if isinstance(node, (ast.Assign, ast.AnnAssign))
                    for t in (node.targets if isinstance(node, ast.Assign) else [node.target]) if isinstance(t, ast.Name)}
    return set()


def check_parameters(params: dict, only: str | None) -> None:
    """-p TARGET would be overridden by --target; a name no chosen lesson has would be ignored."""
    if "TARGET" in params:
        raise E2EError(f"-p TARGET {params['TARGET']}: the target is chosen with --target local|kind|eks, which also "
                       "brings it up and tears it down")
    import difflib
    known = set().union(*(notebook_parameters(p) for p in notebooks(only)))
    for key in sorted(set(params) - known):
        near = difflib.get_close_matches(key.upper(), sorted(known), n=1)
        raise E2EError(f"-p {key}: the lessons have no parameter {key!r}" + (f"; did you mean {near[0]}?" if near else ".")
                       + f" They take: {', '.join(sorted(known - {'TARGET'}))}")


def cmd_e2e(args) -> int:
    params = {}
    for key, value in args.parameter or []:
        params[key] = parse_value(value)
    try:
        check_parameters(params, args.only)
        r = run(args.target, params, args.only, args.keep, args.output_dir, args.timeout, jobs=args.jobs)
    except E2EError as exc:
        print(f"appmesh-lab e2e: {exc}", file=sys.stderr)
        return 2
    return 1 if r.failed or not r.outcomes else 0


JUPYTER_DIRS = ("JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR", "JUPYTER_CONFIG_DIR", "IPYTHONDIR")


def jupyter_env(environ) -> tuple[dict, str | None]:
    """JupyterLab keeps its runtime files (its own and each kernel's connection file), settings and
    the IPython profile under $HOME, and stops with a traceback where it cannot write there (a
    service account, a CI runner, HOME=/nonexistent). Then the ones not set point into a new
    private folder (0700, mkdtemp; cmd_jupyter removes it when JupyterLab exits); returns the
    environment and that folder (None: HOME will do)."""
    env = dict(environ)
    home = env.get("HOME", "")
    missing = [n for n in JUPYTER_DIRS if not env.get(n)]
    if not missing or (os.path.isdir(home) and os.access(home, os.W_OK | os.X_OK)):
        return env, None
    import tempfile
    base = tempfile.mkdtemp(prefix="appmesh-lab-jupyter-")
    env.update({n: os.path.join(base, n.lower()) for n in missing})
    return env, base


def cmd_jupyter(args) -> int:
    try:
        ensure_kernel()
    except E2EError as exc:
        print(f"appmesh-lab jupyter: {exc}", file=sys.stderr)
        return 2
    env, base = jupyter_env(os.environ)
    if base:
        print(f"appmesh-lab jupyter: HOME ({os.environ.get('HOME', 'not set')}) is not a folder you may write; "
              f"Jupyter's runtime files, settings and IPython profile go to {base} (set {', '.join(JUPYTER_DIRS)} "
              "to choose)", file=sys.stderr)
    argv = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={NOTEBOOKS}", *args.jupyter_args]
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in argv:
        argv.append("--allow-root")   # containers often run as root; JupyterLab refuses that otherwise
    print("$ jupyter lab " + " ".join(argv[3:]), flush=True)
    proc = subprocess.Popen(argv, cwd=NOTEBOOKS, env=env)
    # SIGTERM (a CI job's timeout, `timeout`, systemd) stops JupyterLab too; it was left running
    signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.kill()
        proc.wait()
        return 130
    finally:
        if base:
            import shutil
            shutil.rmtree(base, ignore_errors=True)


def add_e2e_parser(sub) -> None:
    p = sub.add_parser("e2e", help="run the lesson notebooks end to end (papermill) and write a report",
                       description="Execute notebooks/NN-*.ipynb with papermill, on the local target on several "
                       "labs at once (-j), each in a fresh kernel started ahead; write the executed notebooks, "
                       "junit.xml and report.html under OUTPUT_DIR/<timestamp>/ (OUTPUT_DIR/latest points at it). "
                       "Exit 1 if any notebook fails.")
    p.add_argument("--target", choices=("local", "kind", "eks"), default="local")
    p.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("KEY", "VALUE"),
                   help="a notebook parameter, e.g. -p TIMEOUT_S 60 (repeatable)")
    p.add_argument("--only", help="comma-separated notebook numbers, e.g. 03,06")
    p.add_argument("--keep", action="store_true", help="leave the target running afterwards")
    p.add_argument("--output-dir", default="runs", help="where runs go (default: runs/)")
    p.add_argument("--timeout", type=float, default=None, help="seconds a single cell may take (default: no limit)")
    p.add_argument("-j", "--jobs", type=int, default=None,
                   help="local target: how many labs run notebooks at once (default: one more than the cores, at most 4, "
                   "or $APPMESH_LAB_E2E_JOBS; 1 with --keep)")
    p.set_defaults(func=cmd_e2e)


def add_jupyter_parser(sub) -> None:
    p = sub.add_parser("jupyter", help="start JupyterLab on notebooks/ with the kit's kernel",
                       description="Start JupyterLab with notebooks/ as its root, making sure the python3 kernel "
                       "runs this environment's Python. Extra arguments go to jupyter lab (e.g. --no-browser).")
    p.add_argument("jupyter_args", nargs="*", help="options for jupyter lab (put them after --)")
    p.set_defaults(func=cmd_jupyter)
