"""`appmesh-lab`: the kit's command line. Verbs are shaped like kubectl's where they mean the same.

  parser.py     the grammar: every verb, its arguments and the function that runs it
  manifests.py  verbs on manifest files alone: validate, crds
  lifecycle.py  the local lab's life: up, down (--purge), status
  resources.py  apply, delete, get, describe, logs, wait
  proxies.py    curl through a virtual gateway; config-dump and stats over an Envoy's admin socket
  doctor.py     doctor: the local lab's checks, or a cluster's (--target kind|eks, lab/doctor)
  migrate.py    migrate: the export to Gateway API (lab/migrate) and its findings; --verify through
  migrate_verify.py  the App Mesh set and its export side by side on one lab, probed request by request
  kinds.py      resource kinds as the verbs name them
  printing.py   tables, findings and documents, with names escaped (lab/terminal.py)
  pipes.py      a reader that goes away early ends a verb quietly, as git does

The notebooks' verbs (e2e, jupyter) live in lab/e2e.py, bench in lab/bench, controller in
lab/controller/main.py; parser.py registers them.
"""
from __future__ import annotations

import sys

from ..errors import UsageError
from ..runtime.client import LabError
from ..terminal import out
from .parser import build_parser
from .pipes import end_on_closed_pipe, output_closed


__all__ = ["LabError", "UsageError", "build_parser", "main"]


def main(argv=None) -> int:
    """Run one verb. A closed pipe on stdout or stderr ends it silently, with SIGPIPE's status
    (see pipes.py); any other BrokenPipeError (a socket) is an error like any other."""
    try:
        code = _run(argv)
        sys.stdout.flush()  # here, not at exit, so a closed pipe is seen while it can be handled
        return code
    except BrokenPipeError:
        if output_closed():
            return end_on_closed_pipe()
        raise


def _run(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 for --help
        return int(exc.code or 0)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except UsageError as exc:
        out(f"appmesh-lab: {exc}", file=sys.stderr)
        return 2
    except LabError as exc:
        out(f"appmesh-lab: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130

