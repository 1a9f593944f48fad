"""`appmesh-lab doctor --target kind|eks`: the first-run checklist of a cluster.

    appmesh-lab doctor --target kind                  # the checks, in order, stopping at the first failure
    appmesh-lab doctor --target eks --record DIR      # also save the API objects read, for the tests to replay

It runs the checks of lab/doctor/checks.py in order, prints one line per check (and the hint of
the one that failed), and always writes a diagnostic bundle, runs/doctor-<timestamp>.tar.gz:
what it ran, every answer, the controller's log and the pod the injector returned, ready to
attach to a bug report. Nothing it runs changes the cluster (reads, `auth can-i` and server-side
dry runs only). The local target's `appmesh-lab doctor` (no --target) is lab/cli/doctor.py's.
"""
from __future__ import annotations

import io
import json
import shlex
import tarfile
import time
from pathlib import Path

from .checks import CHECKS, CheckFailed, Context, subprocess_runner

ROOT = Path(__file__).resolve().parents[2]


def run(target: str, *, out_dir: Path | None = None, record: Path | None = None, runner=subprocess_runner,
        which=None, http=None, say=print) -> int:
    """Run the checks for `target` (kind or eks); 0 when all hold, 1 at the first failure."""
    kw = {k: v for k, v in (("which", which), ("http", http)) if v is not None}
    ctx = Context(target, runner=runner, **kw)
    results, failed = [], None
    for name, check in CHECKS:
        t0 = time.monotonic()
        try:
            found = check(ctx)
        except CheckFailed as exc:
            failed = (name, exc)
            results.append({"check": name, "ok": False, "found": exc.what, "hint": exc.hint,
                            "seconds": round(time.monotonic() - t0, 2)})
            say(f"FAIL    {name}: {exc.what}")
            say(f"        hint: {exc.hint}")
            break
        results.append({"check": name, "ok": True, "found": found, "seconds": round(time.monotonic() - t0, 2)})
        say(f"ok      {name}: {found}")
    if failed is None:
        say(f"all {len(CHECKS)} checks hold on the {target} cluster")
    else:
        left = [n for n, _ in CHECKS[len(results):]]
        if left:
            say(f"stopped at {failed[0]}; not checked: {', '.join(left)}")
    bundle = write_bundle(ctx, results, out_dir or ROOT / "runs")
    say(f"diagnostic bundle: {bundle}")
    if record is not None:
        written = write_record(ctx, Path(record))
        say(f"recorded {sum(len(v) for v in ctx.objects.values())} API objects into {written}")
    return 0 if failed is None else 1


def write_bundle(ctx: Context, results: list, out_dir: Path) -> Path:
    """runs/doctor-<timestamp>.tar.gz: report.json, commands.txt (each command, its exit code and
    time), answers/NNN.txt (each full answer), objects.json, and the controller's log."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = out_dir / f"doctor-{stamp}.tar.gz"
    n = 1
    while path.exists():
        n += 1
        path = out_dir / f"doctor-{stamp}-{n}.tar.gz"
    files = {"report.json": json.dumps({"target": ctx.target, "checks": results}, indent=1),
             "commands.txt": "".join(f"{i:03d} exit {a.rc} {a.seconds:6.2f}s  {shlex.join(a.argv)}\n"
                                     for i, a in enumerate(ctx.answers, 1)),
             "objects.json": json.dumps(recorded(ctx), indent=1, sort_keys=True)}
    for i, a in enumerate(ctx.answers, 1):
        files[f"answers/{i:03d}.txt"] = f"$ {shlex.join(a.argv)}\n# exit {a.rc}\n{a.out}" + (
            f"\n# stderr\n{a.err}" if a.err else "")
    if ctx.facts.get("controller_log"):
        files["logs/controller.log"] = ctx.facts["controller_log"]
    if ctx.facts.get("injected"):
        files["injected-canary-pod.json"] = json.dumps(ctx.facts["injected"], indent=1)
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"doctor-{stamp}/{name}")
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
            tar.addfile(info, io.BytesIO(data))
    path.chmod(0o600)  # logs and objects of the user's cluster: theirs to share, nobody else's to read
    return path


def recorded(ctx: Context) -> dict:
    """The API objects the checks read, {kind: [objects]} sorted by namespace and name: the form of
    tests/cluster/testdata/cluster.json. managedFields are left out (noise); nothing else is changed."""
    out = {}
    for kind in sorted(ctx.objects):
        items = []
        for _, obj in sorted(ctx.objects[kind].items()):
            obj = json.loads(json.dumps(obj))
            (obj.get("metadata") or {}).pop("managedFields", None)
            items.append(obj)
        out[kind] = items
    return out


def write_record(ctx: Context, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "cluster.json"
    path.write_text(json.dumps(recorded(ctx), indent=1, sort_keys=True) + "\n")
    return path
