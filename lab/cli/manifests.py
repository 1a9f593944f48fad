"""Verbs that work on manifest files alone, with no lab running: validate, crds."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..terminal import out
from .printing import print_findings


def cmd_validate(args) -> int:
    from ..files import folder_groups, read_texts
    from ..model import Result, validate_texts

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
        print_findings(result, sys.stdout)
        summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "no resources"
        out(f"checked {result.documents} document(s) in {len(texts)} file(s): {summary}")
        if result.skipped:
            out("not checked (the lab passes over these kinds): "
                  + ", ".join(f"{n} {k}" for k, n in sorted(result.skipped.items())))
        verdict = "OK" if not errors else "FAILED"
        out(f"{verdict}: {len(errors)} error(s), {len(warnings)} warning(s)")
    return 1 if errors or (not texts and read_problems) else 0


def cmd_crds(args) -> int:
    from ..model.crds import all_crds, render

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
