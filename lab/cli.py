"""`appmesh-lab`: the kit's command line. Verbs are shaped like kubectl's where they mean the same."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .errors import UsageError
from .runtime.client import LabError
from .terminal import out




def _print_problems(result, stream) -> None:
    by_file: dict = {}
    for p in result.problems:
        by_file.setdefault(p.file, []).append(p)
    for file, problems in by_file.items():
        out(f"{file}", file=stream)
        for p in problems:
            field = f"{p.path}: " if p.path else ""
            line = f"line {p.line}" if p.line else "file"
            out(f"  {line}: {p.severity}: {field}{p.message}", file=stream)
            if p.hint:
                out(f"      hint: {p.hint}", file=stream)


def cmd_validate(args) -> int:
    from .files import folder_groups, read_texts
    from .model import Result, validate_texts

    texts, read_problems = read_texts(args.paths)
    # each folder is checked as it is applied: on top of the folders above it (deeper files
    # replace resources of the same name), reporting on its own files only
    result, by_folder = Result(problems=list(read_problems)), {}
    for folder, own, ancestors in folder_groups(texts):
        existing: dict = {}
        for a in ancestors:
            existing.update({r.key: r for r in by_folder[a].resources})
        r = validate_texts(own, existing=list(existing.values()))
        by_folder[folder] = r
        result.resources += r.resources
        result.problems += r.problems
        result.skipped.update(r.skipped)
        result.documents += r.documents
    kinds = result.kinds()
    errors = [p for p in result.problems if p.severity == "error"]
    warnings = [p for p in result.problems if p.severity == "warning"]
    if args.output == "json":
        json.dump({
            "files": len(texts), "documents": result.documents,
            "kinds": dict(sorted(kinds.items())), "not_checked": dict(sorted(result.skipped.items())),
            "errors": len(errors), "warnings": len(warnings),
            "problems": [p.to_dict() for p in result.problems],
        }, sys.stdout, indent=2)
        out()
    else:
        _print_problems(result, sys.stdout)
        summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "no resources"
        out(f"checked {result.documents} document(s) in {len(texts)} file(s): {summary}")
        if result.skipped:
            out("not checked (the lab passes over these kinds): "
                  + ", ".join(f"{n} {k}" for k, n in sorted(result.skipped.items())))
        verdict = "OK" if not errors else "FAILED"
        out(f"{verdict}: {len(errors)} error(s), {len(warnings)} warning(s)")
    return 1 if errors or (not texts and read_problems) else 0


def cmd_crds(args) -> int:
    from .model.crds import all_crds, render

    target = Path(args.dir)
    docs = {name: render(doc) for name, doc in all_crds().items()}
    if args.write:
        target.mkdir(parents=True, exist_ok=True)
        for old in target.glob("*.yaml"):
            if old.name not in docs:
                old.unlink()
        for name, text in docs.items():
            (target / name).write_text(text)
        out(f"wrote {len(docs)} CRDs to {target}/")
        return 0
    if args.check:
        stale = [n for n, t in docs.items() if not (target / n).is_file() or (target / n).read_text() != t]
        extra = [p.name for p in target.glob("*.yaml") if p.name not in docs]
        if stale or extra:
            out("out of date: " + ", ".join(stale + extra) + "\nrun: appmesh-lab crds --write", file=sys.stderr)
            return 1
        out(f"{len(docs)} CRDs in {target}/ match the model")
        return 0
    for text in docs.values():
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        out("---")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="appmesh-lab", description="App Mesh GatewayRoute Lab: validate manifests, run "
                                "the local lab, drive the notebooks.")
    p.add_argument("--version", action="version", version=f"appmesh-lab {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    v = sub.add_parser("validate", help="check manifests against the App Mesh v1beta2 model",
                       description="Check manifest files or folders (multi-document YAML). Exit 0 when clean, "
                       "1 when there are errors, 2 on usage errors.")
    v.add_argument("paths", nargs="+", metavar="PATH")
    v.add_argument("-o", "--output", choices=("text", "json"), default="text")
    v.set_defaults(func=cmd_validate)

    c = sub.add_parser("crds", help="print, write or check the CRDs generated from the model")
    c.add_argument("--dir", default="manifests/crds")
    g = c.add_mutually_exclusive_group()
    g.add_argument("--write", action="store_true", help="write them into --dir (removing stale files)")
    g.add_argument("--check", action="store_true", help="exit 1 if --dir differs from the model")
    c.set_defaults(func=cmd_crds)
    from .labcli import add_parsers
    add_parsers(sub)
    from .migratecli import add_parser as add_migrate
    add_migrate(sub)
    return p


def _output_closed() -> bool:
    """True when the reader of stdout or stderr went away (`appmesh-lab get … | head -1`): the
    write end of a pipe whose read end is closed polls as an error."""
    import select
    poll = select.poll()
    for stream in (sys.__stdout__, sys.__stderr__):
        try:
            poll.register(stream.fileno(), select.POLLOUT)
        except (AttributeError, OSError, ValueError):
            continue
    return any(ev & select.POLLERR for _, ev in poll.poll(0))


def _end_on_closed_pipe() -> int:
    """End quietly as `git log | head -1` does: no traceback, and the status of a process
    ended by SIGPIPE (a shell shows 141). Output still buffered is dropped: nobody reads it."""
    import os
    import signal
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.__stdout__, sys.__stderr__):
        try:
            os.dup2(devnull, stream.fileno())
        except (AttributeError, OSError, ValueError):
            pass
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGPIPE)
    return 128 + signal.SIGPIPE  # where SIGPIPE cannot end the process


def main(argv=None) -> int:
    """Run one verb. A closed pipe on stdout or stderr ends it silently, with SIGPIPE's status
    (see _end_on_closed_pipe); any other BrokenPipeError (a socket) is an error like any other."""
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, not at exit, so a closed pipe is seen while it can be handled
        return code
    except BrokenPipeError:
        if _output_closed():
            return _end_on_closed_pipe()
        raise


def _main(argv=None) -> int:
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


if __name__ == "__main__":
    sys.exit(main())
