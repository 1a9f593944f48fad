"""Run the lesson notebooks end to end with papermill, and JupyterLab for people.

    appmesh-lab e2e [--target local|kind|eks] [-p KEY VALUE ...] [--only 03,06] [--keep] [--output-dir runs]
    appmesh-lab jupyter [JUPYTER LAB OPTIONS ...]

`e2e` executes notebooks/NN-*.ipynb in order, each in a fresh kernel started from this
Python (the `python3` kernelspec; registered into this environment if it is missing or points
at another interpreter), with the working directory notebooks/ and the parameters TARGET,
LAB_HOME (runs/<timestamp>/lab, unless $APPMESH_LAB_HOME names the lab) and any
`-p KEY VALUE`. One progress line per notebook. Everything goes to runs/<timestamp>/
(runs/latest points at it):

    NN-name.ipynb   each notebook as executed, outputs and error included
    junit.xml       one testcase per notebook; a failure's message is papermill's error:
                    the cell index, the exception name and its value
    report.html     the failing cell and its error first, then every notebook's outcome and time
    lab/            the local lab's state and logs for this run (unless LAB_HOME or
                    $APPMESH_LAB_HOME is given)

The target is torn down at the end, pass or fail, unless --keep. The exit code is 0 when every
notebook passed, 1 when one failed, 2 on usage errors. On `kind` and `eks` the tools are checked
first (exit 2, one line naming what is missing) and the cluster is brought up once before the
notebooks (lab/targets/cluster.py; docs/clusters.md).
"""
from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
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
    note: str = ""  # what the run was against, when not what the target's name says (e.g. stand-ins)

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


def _execute(path: Path, out: Path, parameters: dict, timeout: float | None) -> Outcome:
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError
    o = Outcome(path.stem)
    t0 = time.perf_counter()
    try:
        pm.execute_notebook(str(path), str(out), parameters=parameters, kernel_name=KERNEL, language="python",
                            cwd=str(path.parent), progress_bar=False, log_output=False, start_timeout=60,
                            execution_timeout=timeout, request_save_on_cell_execute=False)
        o.passed = True
    except PapermillExecutionError as exc:
        o.cell_index, o.ename, o.evalue = exc.cell_index, exc.ename, exc.evalue
        o.source = exc.source
        o.traceback = _ANSI.sub("", "\n".join(exc.traceback or []))
    except Exception as exc:  # a kernel that died or timed out, an unreadable notebook: still one failed testcase
        o.ename, o.evalue = type(exc).__name__, str(exc)
        o.traceback = _ANSI.sub("", str(exc))
    o.seconds = time.perf_counter() - t0
    if not o.passed:
        o.output = _cell_output(out, o.cell_index)
    return o


def _cell_output(path: Path, index: int | None) -> str:
    """The text the failing cell printed before it failed (from the executed notebook)."""
    if index is None or not path.exists():
        return ""
    try:
        nb = json.loads(path.read_text())
        cell = nb["cells"][index]
    except (ValueError, KeyError, IndexError):
        return ""
    parts = []
    for out in cell.get("outputs", []):
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


def run(target: str = "local", params: dict | None = None, only: str | None = None, keep: bool = False,
        output_dir="runs", timeout: float | None = None, log=print, directory: Path | None = None,
        note: str = "") -> Run:
    """Execute the notebooks (of `directory`, default notebooks/) and write the run's files;
    returns the Run (see the module doc). `note` is said first in the log, the report and junit.xml
    (what the target really was, e.g. stand-ins rather than a cluster)."""
    if target not in ("local", "kind", "eks"):
        raise E2EError(f"--target {target}: choose local, kind or eks")
    chosen = notebooks(only, directory or NOTEBOOKS)
    if target != "local":  # a cluster target's tools first: what is missing is said before anything starts
        from .targets.base import TargetError
        from .targets.cluster import check_prerequisites
        try:
            check_prerequisites(target)
        except TargetError as exc:
            raise E2EError(str(exc)) from exc
    ensure_kernel(log=log)
    out_root = Path(output_dir)
    out_root = out_root if out_root.is_absolute() else Path.cwd() / out_root
    run_dir = _new_run_dir(out_root)
    parameters = dict(params or {})
    parameters["TARGET"] = target
    if target == "local" and not parameters.get("LAB_HOME") and not os.environ.get("APPMESH_LAB_HOME"):
        parameters["LAB_HOME"] = str(run_dir / "lab")   # with $APPMESH_LAB_HOME set, the kernels inherit it
    if target != "local":  # the up step, the notebooks and the teardown name the same cluster;
        from .targets.cluster import DEFAULTS  # and a cluster converges slower (image pulls, an NLB)
        parameters.setdefault("CLUSTER_NAME", DEFAULTS[target]["cluster_name"])
        if DEFAULTS[target]["region"]:
            parameters.setdefault("REGION", DEFAULTS[target]["region"])
        parameters.setdefault("TIMEOUT_S", DEFAULTS[target]["timeout_s"])
    r = Run(run_dir, target, note=note)
    log(f"appmesh-lab e2e: {len(chosen)} notebook(s) on target {target}, output in {run_dir}")
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
    try:
        if target != "local":  # the cluster (scripts/<target>-up.sh), once, before the notebooks
            up = _bring_up(target, parameters)
            log(f"[up] {target} cluster {parameters['CLUSTER_NAME']}  {'ok' if up.passed else 'FAILED'} "
                f"{up.seconds:6.1f}s" + ("" if up.passed else f"  {up.message[:160]}"))
            if not up.passed:
                r.outcomes.append(up)
                chosen = []
        for i, path in enumerate(chosen, 1):
            o = _execute(path, run_dir / path.name, parameters, timeout)
            r.outcomes.append(o)
            status = "ok" if o.passed else "FAILED"
            line = f"[{i:>2}/{len(chosen)}] {path.stem:<{width}}  {status:<6} {o.seconds:6.1f}s"
            log(line + ("" if o.passed else f"  {o.message[:160]}"))
    finally:
        if saved is None:
            os.environ.pop("IPYTHONDIR", None)
        else:
            os.environ["IPYTHONDIR"] = saved
        if keep:
            r.teardown = "kept running (--keep)"
        else:
            r.teardown = _teardown(target, parameters.get("LAB_HOME") or os.environ.get("APPMESH_LAB_HOME"),
                                   parameters.get("CLUSTER_NAME"),
                                   parameters.get("REGION"))
        write_junit(r, run_dir / "junit.xml")
        write_report(r, run_dir / "report.html")
    total = sum(o.seconds for o in r.outcomes)
    log(f"{len(r.outcomes) - len(r.failed)} passed, {len(r.failed)} failed in {total:.1f}s; {r.teardown}")
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
<p>target <b>{e(r.target)}</b>, run {e(r.directory.name)}, {sum(o.seconds for o in r.outcomes):.1f}s;
{e(r.teardown)}</p>""" + (f'<p class="box"><b>Note:</b> {e(r.note)}</p>' if r.note else "")]
    if r.failed:
        f = r.failed[0]
        parts.append(f"""<div class="box"><h2>First failure: {e(f.notebook)}, cell {f.cell_index}</h2>
<p><b>{e(f.ename)}</b>: {e(f.evalue)}</p><h3>The cell</h3><pre>{e(f.source or '(not available)')}</pre>
{f'<h3>What it printed</h3><pre>{e(f.output)}</pre>' if f.output else ''}
<h3>Traceback</h3><pre>{e(f.traceback)}</pre>
<p>Executed notebook: <a href="{e(f.notebook)}.ipynb">{e(f.notebook)}.ipynb</a></p></div>""")
    parts.append("<h2>Notebooks</h2><table><tr><th>notebook</th><th>outcome</th><th>time</th><th>error</th></tr>")
    for o in r.outcomes:
        parts.append(f"<tr><td><a href=\"{e(o.notebook)}.ipynb\">{e(o.notebook)}</a></td>"
                     f"<td class=\"{'ok' if o.passed else 'fail'}\">{'passed' if o.passed else 'FAILED'}</td>"
                     f"<td>{o.seconds:.1f}s</td><td>{e(o.message)}</td></tr>")
    parts.append("</table>")
    for o in r.failed[1:]:
        parts.append(f"<h3>{e(o.notebook)}, cell {o.cell_index}: {e(o.ename)}</h3><pre>{e(o.traceback)}</pre>")
    parts.append("</body></html>\n")
    path.write_text("\n".join(parts))


# ---- CLI -------------------------------------------------------------------------------------

def cmd_e2e(args) -> int:
    params = {}
    for key, value in args.parameter or []:
        params[key] = parse_value(value)
    try:
        r = run(args.target, params, args.only, args.keep, args.output_dir, args.timeout)
    except E2EError as exc:
        print(f"appmesh-lab e2e: {exc}", file=sys.stderr)
        return 2
    return 1 if r.failed or not r.outcomes else 0


def cmd_jupyter(args) -> int:
    try:
        ensure_kernel()
    except E2EError as exc:
        print(f"appmesh-lab jupyter: {exc}", file=sys.stderr)
        return 2
    argv = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={NOTEBOOKS}", *args.jupyter_args]
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in argv:
        argv.append("--allow-root")   # containers often run as root; JupyterLab refuses that otherwise
    print("$ jupyter lab " + " ".join(argv[3:]), flush=True)
    try:
        return subprocess.call(argv, cwd=NOTEBOOKS)
    except KeyboardInterrupt:
        return 130


def add_e2e_parser(sub) -> None:
    p = sub.add_parser("e2e", help="run the lesson notebooks end to end (papermill) and write a report",
                       description="Execute notebooks/NN-*.ipynb in order with papermill; write the executed "
                       "notebooks, junit.xml and report.html under OUTPUT_DIR/<timestamp>/ (OUTPUT_DIR/latest "
                       "points at it). Exit 1 if any notebook fails.")
    p.add_argument("--target", choices=("local", "kind", "eks"), default="local")
    p.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("KEY", "VALUE"),
                   help="a notebook parameter, e.g. -p TIMEOUT_S 60 (repeatable)")
    p.add_argument("--only", help="comma-separated notebook numbers, e.g. 03,06")
    p.add_argument("--keep", action="store_true", help="leave the target running afterwards")
    p.add_argument("--output-dir", default="runs", help="where runs go (default: runs/)")
    p.add_argument("--timeout", type=float, default=None, help="seconds a single cell may take (default: no limit)")
    p.set_defaults(func=cmd_e2e)


def add_jupyter_parser(sub) -> None:
    p = sub.add_parser("jupyter", help="start JupyterLab on notebooks/ with the kit's kernel",
                       description="Start JupyterLab with notebooks/ as its root, making sure the python3 kernel "
                       "runs this environment's Python. Extra arguments go to jupyter lab (e.g. --no-browser).")
    p.add_argument("jupyter_args", nargs="*", help="options for jupyter lab (put them after --)")
    p.set_defaults(func=cmd_jupyter)
