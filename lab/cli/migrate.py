"""`appmesh-lab migrate`: export App Mesh manifests to the Kubernetes Gateway API."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from ..terminal import out


def load(paths):
    """Validated resources of the manifests at `paths` (each folder on top of its parents, as
    applied), and the problems found; resources are None when there are errors."""
    from ..files import folder_groups, read_texts
    from ..model import validate_texts

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
    from ..migrate import export
    from ..migrate import render

    resources, problems = load(args.paths)
    if resources is None:
        _print_findings(problems, sys.stderr)
        out("migrate: the manifests have errors (above); fix them first (appmesh-lab validate PATH)",
            file=sys.stderr)
        return 1
    if args.verify:
        return cmd_verify(args, resources)
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


def _gateway_api_from(folder: str):
    """Gateway API objects from YAML files (an edited export), as model resources; problems."""
    from ..files import read_texts
    from ..model import Problem, Resource
    from ..model.loader import load_text

    texts, problems = read_texts([folder])
    out = []
    for name, text in texts:
        docs, p = load_text(text, name)
        problems += p
        for d in docs:
            data = d.data if isinstance(d.data, dict) else {}
            md = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
            if not str(data.get("apiVersion", "")).startswith("gateway.networking.k8s.io/") or not md.get("name"):
                problems.append(Problem(name, d.line, "", "not a Gateway API object with a name",
                                        "the folder should hold what `migrate -o DIR` wrote", "not-gateway-api"))
                continue
            out.append(Resource(data["apiVersion"], str(data.get("kind")), md["name"], md.get("namespace"),
                                md.get("labels") or {}, md.get("annotations") or {}, data.get("spec") or {}, d, data))
    return out, problems


def _user_probes(path: str):
    import yaml

    from ..migrate.probes import DEFAULT_HOST, Probe
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read the probes: {exc}")
    if not isinstance(data, list):
        raise ValueError(f"{path}: write a list of requests, e.g. - {{method: GET, path: /products, "
                         "headers: {{x-tier: gold}}, host: shop.example.com}}, or gRPC calls, "
                         "- {{grpc: true, path: /lab.echo.Echo/Say, headers: {{x-tenant: beta}}}}")
    out = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or not str(item.get("path", "")).startswith("/"):
            raise ValueError(f"{path}: item {i + 1}: each request needs path: /something (method, headers, host "
                             "and grpc: true are optional)")
        headers = item.get("headers") or {}
        grpc = item.get("grpc") is True
        if grpc and not re.fullmatch(r"/[^/]+/[^/]+", str(item["path"])):
            raise ValueError(f"{path}: item {i + 1}: a gRPC call's path is /<service>/<method>, e.g. "
                             "/lab.echo.Echo/Say")
        out.append(Probe("POST" if grpc else str(item.get("method", "GET")).upper(), item["path"],
                         str(item.get("host", DEFAULT_HOST)),
                         tuple(sorted((str(k).lower(), str(v)) for k, v in headers.items())), grpc=grpc))
    return out


def cmd_verify(args, resources) -> int:
    import tempfile

    from ..migrate import export
    from ..migrate.probes import generate
    from .migrate_verify import VerifyError, run, table

    ex = export(resources)
    gateway_api = ex.resources()
    if args.export:
        gateway_api, problems = _gateway_api_from(args.export)
        if problems or not gateway_api:
            _print_findings(problems, sys.stderr)
            out(f"migrate --verify: no Gateway API objects read from {args.export}", file=sys.stderr)
            return 1
    if not any(r.kind == "VirtualGateway" for r in resources) or not any(r.kind == "Gateway" for r in gateway_api):
        out("migrate --verify: needs a VirtualGateway in the manifests and a Gateway in the export", file=sys.stderr)
        return 1
    probes = generate(resources, ex.announced)
    if args.probes:
        try:
            probes += _user_probes(args.probes)
        except ValueError as exc:
            out(f"migrate --verify: {exc}", file=sys.stderr)
            return 2
    if not probes:
        out("migrate --verify: nothing to compare: no gateway routes to probe and no --probes", file=sys.stderr)
        return 0
    try:
        with tempfile.TemporaryDirectory(prefix="appmesh-lab-verify-") as work:
            rows = run(resources, gateway_api, probes, ex.announced, Path(work), ex.secrets, ex.configmaps)
    except VerifyError as exc:
        out(f"migrate --verify: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a gateway that stopped answering, a TLS handshake refused
        out(f"migrate --verify: a request to a gateway failed: {exc}; run it again, and if it fails the same way, "
            "report it with the output of `appmesh-lab doctor`", file=sys.stderr)
        return 2
    failing = [r for r in rows if r["differs"] and (args.strict or not r["announced"])]
    if args.output == "json":
        json.dump({"equivalent": not failing, "requests": rows,
                   "findings": [p.to_dict() for p in ex.findings]}, sys.stdout, indent=2)
        out()
    else:
        out(table(rows))
        announced = sum(1 for r in rows if r["differs"] and r["announced"])
        if failing:
            out(f"DIFFERENT: {len(failing)} request(s) route differently"
                + ("" if args.strict else " without a finding that announced it"))
        else:
            out("EQUIVALENT" + (f" apart from {announced} difference(s) the export announced (--strict fails on "
                                "them)" if announced else ""))
    return 1 if failing else 0


def add_parser(sub) -> None:
    from ..migrate.profiles import names

    m = sub.add_parser("migrate", help="export App Mesh manifests to the Kubernetes Gateway API",
                       description="Write Gateway, HTTPRoute, GRPCRoute and ReferenceGrant objects (Gateway API "
                       "standard channel v1.6.1) for App Mesh manifests. What Gateway API or the chosen "
                       "implementation cannot express is reported as a finding (file, line, field, hint) on "
                       "stderr. Exit 0 when exported, 1 when the manifests have errors.")
    m.add_argument("paths", nargs="+", metavar="PATH")
    m.add_argument("--to", choices=("gateway-api",), default="gateway-api")
    m.add_argument("--profile", choices=names(), default="standard",
                   help="the implementation to check support against (default: standard)")
    m.add_argument("--verify", action="store_true",
                   help="apply the App Mesh set and its export side by side to one local lab of their own, send "
                   "generated requests "
                   "(and --probes) to both and compare status, answering service, path and Host; exit 1 when a "
                   "request routes differently without a finding that announced it")
    m.add_argument("--export", metavar="DIR", help="--verify: compare with the Gateway API objects in DIR (an "
                   "edited export) instead of a fresh export")
    m.add_argument("--probes", metavar="FILE", help="--verify: more requests, a YAML list of "
                   "{method, path, headers, host}; {grpc: true, path: /<service>/<method>, headers, host} for a "
                   "gRPC call")
    m.add_argument("--strict", action="store_true", help="--verify: announced differences fail too")
    m.add_argument("--experimental", action="store_true",
                   help="also write experimental-channel fields (HTTPRoute rules[].retry, GEP-1731); they need "
                   "the experimental CRDs")
    m.add_argument("-o", "--output", metavar="DIR|json",
                   help="a folder to write one file per kind into, or json for the report "
                   "{objects, findings, commands}; default: the YAML on stdout")
    m.set_defaults(func=cmd_migrate)
