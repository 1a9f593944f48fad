"""`appmesh-lab bench KIND [--quick]`: benchmarks that print numbers (a table, then one JSON line).

    appmesh-lab bench translate   model -> IR -> Envoy dicts (-> Snapshot) for 10/100/1,000 routes (translate.py)
    appmesh-lab bench converge    a new gateway route / router weights until traffic follows (converge.py)
    appmesh-lab bench scale       10/100/1,000/5,000 routes: translation, snapshot size, RSS, ACK time (scale.py)
    appmesh-lab bench dataplane   wrk against a static upstream direct, via its sidecar, via the gateway, via nginx,
                                  and the floors: bare Envoy, Envoy -> Envoy, nginx -> nginx (dataplane.py)
    appmesh-lab bench lab         lab start-up time and memory (labbench.py)
    appmesh-lab bench suite       the notebook suite's wall time, --profile: where it goes (suite.py)
    appmesh-lab bench reliability faults, churn, crash safety, hostile input, exposure (reliability/)
    appmesh-lab bench all         every part above but reliability, one after the other (--write-docs:
                                  and docs/benchmarks.md from the results)
    appmesh-lab bench docs DIR    docs/benchmarks.md from the results of an earlier run

They are measurements, not tests: nothing here fails on a slow machine. The last line of each
run is a JSON record with every number and the machine (cores, python, envoy version), for
comparing runs; each run also writes its record (<kind>.json) and PNG plots into
runs/bench/<UTC timestamp>/ (or --out DIR). Each kind is a module with
`run(quick=False, ..., out=sys.stdout) -> dict`; a kind whose module is absent is not offered.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import time
import traceback


def _sizes(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


# kind -> (module, help, extra options: (flag, argparse kwargs, run() keyword))
KINDS = {
    "translate": ("translate", "translation time for 10/100/1,000 gateway routes",
                  [("--sizes", {"type": _sizes, "help": "route counts, e.g. 10,100,1000"}, "sizes")]),
    "converge": ("converge", "a new gateway route, or router weights, until traffic follows (10/100/1,000 routes)",
                 [("--sizes", {"type": _sizes, "help": "existing route counts, e.g. 10,100,1000"}, "sizes"),
                  ("--changes", {"type": int, "help": "changes per size (default 200, --quick 20)"}, "changes"),
                  ("--weight-changes", {"type": int, "help": "router weight flips per size (default: --changes)"},
                   "weight_changes")]),
    "scale": ("scale", "10/100/1,000/5,000 gateway routes: translation, snapshot size, RSS, time to ACK",
              [("--sizes", {"type": _sizes, "help": "route counts, e.g. 10,100,1000,5000"}, "sizes")]),
    "dataplane": ("dataplane", "load on one static upstream direct, through its sidecar, through the gateway, through "
                               "nginx; and the floors: a bare Envoy, two bare Envoys, two nginx in a row",
                  [("--duration", {"type": float, "help": "seconds per path (default 10, --quick 3)"}, "duration"),
                   ("--light-duration", {"type": float, "help": "seconds per path at the light load, one connection "
                                                                "(default 3, --quick 1)"}, "light_duration"),
                   ("--paths", {"type": lambda t: [x.strip() for x in t.split(",") if x.strip()],
                                "help": "only these paths, e.g. gateway,nginx (direct always runs: every ratio is "
                                        "to it)"}, "paths"),
                   ("--connections", {"type": int, "help": "keep-alive connections (default 8)"}, "connections"),
                   ("--rounds", {"type": int, "help": "runs per path, median kept (default 2, --quick 1)"}, "rounds"),
                   ("--tool", {"choices": ("auto", "wrk", "asyncio"), "help": "load generator (default auto: wrk "
                                                                              "when installed)"}, "tool")]),
    "lab": ("labbench", "lab start-up time and memory", []),
    "suite": ("suite", "every lesson notebook end to end on the local target: per notebook, the total, the load; "
                       "target <= 60 s on 2 cores",
              [("--only", {"help": "only these notebook numbers, e.g. 00,03 (the target applies to all of them)"}, "only"),
               ("--rounds", {"type": int, "help": "suite runs, median kept (default 3, --quick 1)"}, "rounds"),
               ("--jobs", {"type": int, "help": "labs at once (default: as appmesh-lab e2e, one more than the cores, at most 4)"},
                "jobs"),
               ("--profile", {"action": "store_true", "default": None,
                              "help": "per notebook: kernel wait, set-up cell, slowest cell, its lab's CPU; "
                                      "the suite's slowest cells"}, "profile")]),
    "reliability": ("reliability", "faults, churn, crash safety, hostile input, exposure",
                    [("--scenario", {"action": "append", "help": "run only this scenario: faults, churn, crash, "
                                                  "hostile or exposure (repeatable)"},
                      "scenarios")]),
}
# what `bench all` runs, in this order (reliability has its own page and takes long)
ALL = ("translate", "converge", "scale", "dataplane", "lab", "suite")


def available(kind: str) -> bool:
    return kind in KINDS and importlib.util.find_spec(f"{__name__}.{KINDS[kind][0]}") is not None


def run_part(kind: str, directory, quick: bool = False, out=sys.stdout, **kwargs) -> dict:
    """Run one kind, write its record and plots into `directory`; returns the record."""
    from .common import save
    mod = importlib.import_module(f"{__name__}.{KINDS[kind][0]}")
    record = mod.run(quick=quick, out=out, **kwargs)
    files = save(kind, record, directory)
    # on stderr: the part's last line on stdout stays its JSON record
    print(f"bench {kind} results: {', '.join(str(f) for f in files)}", file=sys.stderr, flush=True)
    return record


def _strip_samples(obj):
    if isinstance(obj, dict):
        return {k: _strip_samples(v) for k, v in obj.items() if k != "samples_ms"}
    if isinstance(obj, list):
        return [_strip_samples(v) for v in obj]
    return obj


def run_all(quick: bool = False, directory=None, parts=None, write_docs: bool = False, kwargs=None,
            out=sys.stdout) -> dict:
    """Every part of ALL that is available (or `parts`), each printing its table and JSON line;
    then one combined JSON line (the records without raw samples, each part's `met`, the
    directory). A part that fails is reported in the combined record (`errors`) and the others
    still run. kwargs: kind -> extra run() keywords (tests use small sizes)."""
    from .common import machine, results_dir
    directory = results_dir(directory)
    kinds = [k for k in (parts or ALL) if available(k)]
    records, errors, seconds = {}, {}, {}
    for kind in kinds:
        print(f"== bench {kind} ==", file=out, flush=True)
        t0 = time.perf_counter()
        try:
            records[kind] = run_part(kind, directory, quick=quick, out=out, **(kwargs or {}).get(kind, {}))
        except Exception as exc:  # one broken part must not hide the others' numbers; it is reported
            traceback.print_exc()
            errors[kind] = f"{type(exc).__name__}: {exc}"
            print(f"  bench {kind} failed: {errors[kind]}", file=out, flush=True)
        seconds[kind] = round(time.perf_counter() - t0, 1)
    combined = {"bench": "all", "quick": quick, "directory": str(directory), "parts": kinds, "seconds": seconds,
                "met": {k: r.get("met") for k, r in records.items()}, "errors": errors,
                "results": _strip_samples(records), "machine": machine()}
    (directory / "all.json").write_text(json.dumps(combined, indent=1) + "\n")
    if write_docs:
        from . import docs
        page = docs.write(directory)
        print(f"== results page: {page}", file=out, flush=True)
    print(json.dumps(combined), file=out, flush=True)
    return combined


def _options(args, options) -> dict:
    return {kw: getattr(args, flag.lstrip("-").replace("-", "_")) for flag, _, kw in options
            if getattr(args, flag.lstrip("-").replace("-", "_"), None) is not None}


def _runner(kind: str, options):
    def run(args) -> int:
        from .common import results_dir
        run_part(kind, results_dir(args.out), quick=args.quick, **_options(args, options))
        return 0
    return run


def _run_all(args) -> int:
    combined = run_all(quick=args.quick, directory=args.out, write_docs=args.write_docs)
    return 1 if combined["errors"] else 0


def _run_docs(args) -> int:
    from . import docs
    print(docs.write(args.directory))
    return 0


def add_parser(sub) -> None:
    """Register `bench` and its kinds on the CLI's subparsers (called from lab/cli/parser.py)."""
    b = sub.add_parser("bench", help="benchmarks: " + ", ".join(KINDS) + ", all (print a table and a JSON line)")
    kinds = b.add_subparsers(dest="bench", metavar="KIND")
    out_help = "directory for the results (default runs/bench/<UTC timestamp>/)"
    for kind, (module, text, options) in KINDS.items():
        if not available(kind):
            continue
        p = kinds.add_parser(kind, help=text)
        p.add_argument("--quick", action="store_true", help="a reduced run (fewer sizes, repeats or changes)")
        p.add_argument("--out", default=None, help=out_help)
        for flag, kwargs, _ in options:
            p.add_argument(flag, **kwargs)
        p.set_defaults(func=_runner(kind, options))
    p = kinds.add_parser("all", help="every part but reliability: " + ", ".join(k for k in ALL if available(k)))
    p.add_argument("--quick", action="store_true", help="a reduced run of every part")
    p.add_argument("--out", default=None, help=out_help)
    p.add_argument("--write-docs", action="store_true",
                   help="also write docs/benchmarks.md and its plots (docs/img/bench/) from this run")
    p.set_defaults(func=_run_all)
    p = kinds.add_parser("docs", help="write docs/benchmarks.md from an earlier run's directory")
    p.add_argument("directory", help="a runs/bench/<timestamp>/ directory with all.json or <kind>.json files")
    p.set_defaults(func=_run_docs)
    b.set_defaults(func=lambda a: (b.print_help(), 2)[1])
