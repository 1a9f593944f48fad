"""`appmesh-lab bench KIND [--quick]`: benchmarks that print numbers (a table, then one JSON line).

    appmesh-lab bench translate   model -> IR -> Envoy dicts (-> Snapshot) for 10/100/1,000 routes (translate.py)
    appmesh-lab bench converge    a new gateway route on a running lab until traffic follows it (converge.py)
    appmesh-lab bench lab         lab start-up time and memory (labbench.py)
    appmesh-lab bench reliability faults, churn, crash safety, hostile input, exposure (reliability.py)

They are measurements, not tests: nothing here fails on a slow machine. The last line of each
run is a JSON record with every number and the machine (cores, python, envoy version), for
comparing runs. Each kind is a module with `run(quick=False, ..., out=sys.stdout) -> dict`;
a kind whose module is absent is not offered.
"""
from __future__ import annotations

import importlib
import importlib.util


def _sizes(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


# kind -> (module, help, extra options: (flag, argparse kwargs, run() keyword))
KINDS = {
    "translate": ("translate", "translation time for 10/100/1,000 gateway routes",
                  [("--sizes", {"type": _sizes, "help": "route counts, e.g. 10,100,1000"}, "sizes")]),
    "converge": ("converge", "apply a new gateway route until the gateway routes by it (10 and 100 existing)",
                 [("--sizes", {"type": _sizes, "help": "existing route counts, e.g. 10,100"}, "sizes")]),
    "lab": ("labbench", "lab start-up time and memory", []),
    "reliability": ("reliability", "faults, churn, crash safety, hostile input, exposure",
                    [("--scenario", {"action": "append", "help": "run only this scenario (repeatable)"},
                      "scenarios")]),
}


def _runner(module: str, options):
    def run(args) -> int:
        mod = importlib.import_module(f"{__name__}.{module}")
        kwargs = {kw: getattr(args, flag.lstrip("-").replace("-", "_")) for flag, _, kw in options
                  if getattr(args, flag.lstrip("-").replace("-", "_"), None) is not None}
        mod.run(quick=args.quick, **kwargs)
        return 0
    return run


def add_parser(sub) -> None:
    """Register `bench` and its kinds on the CLI's subparsers (called from lab/labcli.py)."""
    b = sub.add_parser("bench", help="benchmarks: " + ", ".join(KINDS) + " (print a table and a JSON line)")
    kinds = b.add_subparsers(dest="bench", metavar="KIND")
    for kind, (module, text, options) in KINDS.items():
        if importlib.util.find_spec(f"{__name__}.{module}") is None:
            continue
        p = kinds.add_parser(kind, help=text)
        p.add_argument("--quick", action="store_true", help="a reduced run (fewer sizes, repeats or changes)")
        for flag, kwargs, _ in options:
            p.add_argument(flag, **kwargs)
        p.set_defaults(func=_runner(module, options))
    b.set_defaults(func=lambda a: (b.print_help(), 2)[1])
