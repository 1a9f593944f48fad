"""`appmesh-lab migrate`: export App Mesh manifests to the Kubernetes Gateway API."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .terminal import out


def load(paths):
    """Validated resources of the manifests at `paths` (each folder on top of its parents, as
    applied), and the problems found; resources are None when there are errors."""
    from .files import folder_groups, read_texts
    from .model import validate_texts

    texts, problems = read_texts(paths)
    merged: dict = {}
    by_folder: dict = {}
    for folder, own, ancestors in folder_groups(texts):
        existing: dict = {}
        for a in ancestors:
            existing.update(by_folder[a])
        r = validate_texts(own, existing=list(existing.values()))
        by_folder[folder] = {**existing, **{x.key: x for x in r.resources}}
        merged.update({x.key: x for x in r.resources})
        problems += r.problems
    errors = [p for p in problems if p.severity == "error"]
    if errors or not texts:
        return None, problems
    return list(merged.values()), problems


def _print_findings(findings, stream) -> None:
    for p in findings:
        out(str(p), file=stream)


def cmd_migrate(args) -> int:
    from .migrate import export
    from .migrate import render

    resources, problems = load(args.paths)
    if resources is None:
        _print_findings(problems, sys.stderr)
        out("migrate: the manifests have errors (above); fix them first (appmesh-lab validate PATH)",
            file=sys.stderr)
        return 1
    ex = export(resources, args.profile, experimental=args.experimental)
    if args.output == "json":
        json.dump(render.report(ex), sys.stdout, indent=2)
        out()
        return 0
    if args.output:
        target = Path(args.output)
        if target.exists() and not target.is_dir():
            out(f"migrate: {target} is not a folder; -o takes a folder (or the word json)", file=sys.stderr)
            return 2
        target.mkdir(parents=True, exist_ok=True)
        files = render.files(ex, args.profile)
        for name in render.FILES.values():
            if name not in files and (target / name).is_file():
                (target / name).unlink()  # a kind the export no longer has
        for name, text in files.items():
            (target / name).write_text(text)
        _print_findings(ex.findings, sys.stderr)
        kinds = ", ".join(f"{len(ex.of_kind(k))} {k}" for k in render.FILES if ex.of_kind(k))
        out(f"wrote {kinds or 'nothing'} to {target}/ ({', '.join(sorted(files))}); "
            f"{len(ex.findings)} finding(s)", file=sys.stderr)
        for c in ex.commands:
            out(f"run first: {c}", file=sys.stderr)
        return 0
    sys.stdout.write(render.stream(ex, args.profile))
    sys.stdout.flush()
    _print_findings(ex.findings, sys.stderr)
    return 0


def add_parser(sub) -> None:
    from .migrate.profiles import names

    m = sub.add_parser("migrate", help="export App Mesh manifests to the Kubernetes Gateway API",
                       description="Write Gateway, HTTPRoute, GRPCRoute and ReferenceGrant objects (Gateway API "
                       "standard channel v1.6.1) for App Mesh manifests. What Gateway API or the chosen "
                       "implementation cannot express is reported as a finding (file, line, field, hint) on "
                       "stderr. Exit 0 when exported, 1 when the manifests have errors.")
    m.add_argument("paths", nargs="+", metavar="PATH")
    m.add_argument("--to", choices=("gateway-api",), default="gateway-api")
    m.add_argument("--profile", choices=names(), default="standard",
                   help="the implementation to check support against (default: standard)")
    m.add_argument("--experimental", action="store_true",
                   help="also write experimental-channel fields (HTTPRoute rules[].retry, GEP-1731); they need "
                   "the experimental CRDs")
    m.add_argument("-o", "--output", metavar="DIR|json",
                   help="a folder to write one file per kind into, or json for the report "
                   "{objects, findings, commands}; default: the YAML on stdout")
    m.set_defaults(func=cmd_migrate)
