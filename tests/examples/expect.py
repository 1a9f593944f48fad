"""Expectation files: the README tables of every manifest set, machine-readable.

Each set (manifests/walkthrough, manifests/examples/<topic>) has next to its README a file
`expect.yaml.txt` listing the rows of the README's "Requests and answers" tables as checks; the
schema is documented at the top of manifests/walkthrough/expect.yaml.txt and in
manifests/README.md. It is YAML, but its name does not end in .yaml on purpose: `kubectl apply -f
DIR`, `appmesh-lab apply -f DIR` and `appmesh-lab validate` read every *.yaml/*.yml file of a
folder as a manifest.

This module loads the files, checks them against the schema, and reads the README rows they
must follow. No lab is needed for any of it.
"""
from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
EXPECT_FILE = "expect.yaml.txt"


def manifest_sets() -> list[str]:
    """Every set, as a path relative to manifests/: walkthrough, examples/<topic>."""
    sets = ["walkthrough"]
    sets += [f"examples/{p.name}" for p in sorted((MANIFESTS / "examples").iterdir()) if p.is_dir()]
    return sets


def load(set_name: str) -> dict:
    return yaml.safe_load((MANIFESTS / set_name / EXPECT_FILE).read_text(encoding="utf-8"))


def gateway_of(set_name: str) -> tuple[str, str]:
    """(VirtualGateway name, namespace) of the set: the one its requests go through."""
    found = []
    for f in sorted((MANIFESTS / set_name).glob("*.yaml")):
        for doc in yaml.safe_load_all(f.read_text(encoding="utf-8")):
            if doc and doc.get("kind") == "VirtualGateway":
                found.append((doc["metadata"]["name"], doc["metadata"]["namespace"]))
    assert len(found) == 1, f"{set_name}: expected one VirtualGateway, found {found}"
    return found[0]


# -- README rows ---------------------------------------------------------------------------------

def normalize(cell: str) -> str:
    """A table cell as the expectation files quote it: backticks dropped, `\\|` unescaped, spaces collapsed."""
    return " ".join(cell.replace("\\|", "|").replace("`", "").split())


def _cells(line: str) -> list[str]:
    inner = line.strip()[1:-1] if line.strip().endswith("|") else line.strip()[1:]
    return [c.strip() for c in re.split(r"(?<!\\)\|", inner)]


def readme_rows(set_name: str) -> list[str]:
    """First-column cells of every table whose first header is `request`, in the README's
    "Requests and answers" section, in order."""
    text = (MANIFESTS / set_name / "README.md").read_text(encoding="utf-8")
    start = text.find("## Requests and answers")
    assert start >= 0, f"{set_name}/README.md has no '## Requests and answers' section"
    section = text[start + 1:]
    end = section.find("\n## ")
    section = section[: end if end >= 0 else None]
    rows, in_table, header_ok = [], False, False
    for line in section.splitlines():
        if not line.strip().startswith("|"):
            in_table = False
            continue
        cells = _cells(line)
        if not in_table:
            in_table, header_ok = True, normalize(cells[0]).lower() == "request"
            continue
        if not header_ok or set(cells[0]) <= set("-: "):
            continue
        rows.append(normalize(cells[0]))
    return rows


# -- schema --------------------------------------------------------------------------------------

REQUEST_KEYS = {"path", "method", "headers", "host", "body", "tls", "grpc", "repeat", "listener"}
GRPC_KEYS = {"service", "method", "metadata", "body", "authority"}
EXPECT_KEYS = {"status", "error", "gateway", "service", "version", "path", "host", "method", "json", "contains",
               "split", "failures", "min_ms", "max_ms", "access_log"}
CHECK_KEYS = {"row", "request", "expect", "steps"}
GRPC_STATUS = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
               "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
               "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}


def problems(set_name: str, data) -> list[str]:
    """What is wrong with an expectation file, as messages (empty when it follows the schema)."""
    out: list[str] = []

    def bad(where: str, msg: str) -> None:
        out.append(f"{set_name}/{EXPECT_FILE}: {where}: {msg}")

    def unknown(where: str, node: dict, allowed: set) -> None:
        for k in set(node) - allowed:
            bad(where, f"unknown key {k!r} (allowed: {', '.join(sorted(allowed))})")

    def str_map(where: str, node) -> None:
        if not isinstance(node, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in node.items()):
            bad(where, "must map names to strings (quote values like \"true\" or \"2.0\")")

    if not isinstance(data, dict) or set(data) != {"checks"} or not isinstance(data["checks"], list) \
            or not data["checks"]:
        return [f"{set_name}/{EXPECT_FILE}: the file must be a mapping with one key, checks: a non-empty list"]
    for i, check in enumerate(data["checks"]):
        w = f"checks[{i}]"
        if not isinstance(check, dict):
            bad(w, "a check is a mapping")
            continue
        unknown(w, check, CHECK_KEYS)
        if not isinstance(check.get("row"), str) or not check["row"]:
            bad(w, "row (the README row's first column) is required")
        else:
            w = f"{w} ({check['row']})"
        for j, step in enumerate(check.get("steps") or []):
            if not (isinstance(step, dict) and set(step) == {"apply"} and isinstance(step["apply"], str)):
                bad(f"{w}.steps[{j}]", "a step is {apply: <file or folder relative to the set>}")
            elif not (MANIFESTS / set_name / step["apply"]).exists():
                bad(f"{w}.steps[{j}]", f"{step['apply']} does not exist in the set")
        req, exp = check.get("request"), check.get("expect")
        if not isinstance(req, dict) or not isinstance(exp, dict) or not exp:
            bad(w, "request and expect (mappings) are required")
            continue
        unknown(f"{w}.request", req, REQUEST_KEYS)
        unknown(f"{w}.expect", exp, EXPECT_KEYS)
        grpc = req.get("grpc")
        if grpc is not None:
            if not isinstance(grpc, dict) or not grpc.get("service") or not grpc.get("method"):
                bad(f"{w}.request.grpc", "needs service and method")
            else:
                unknown(f"{w}.request.grpc", grpc, GRPC_KEYS)
                if "metadata" in grpc:
                    str_map(f"{w}.request.grpc.metadata", grpc["metadata"])
                if set(req) - {"grpc", "repeat", "listener"}:
                    bad(f"{w}.request", "a gRPC request has only grpc (and repeat, listener)")
            if "status" in exp and exp["status"] not in GRPC_STATUS:
                bad(f"{w}.expect.status", f"a gRPC status is a name: {', '.join(sorted(GRPC_STATUS))}")
        else:
            if not isinstance(req.get("path"), str) or not req["path"].startswith("/"):
                bad(f"{w}.request.path", "an HTTP request needs a path starting with /")
            if "status" in exp and not (isinstance(exp["status"], int) and 100 <= exp["status"] <= 599):
                bad(f"{w}.expect.status", "an HTTP status is a number")
        if "headers" in req:
            str_map(f"{w}.request.headers", req["headers"])
        if "tls" in req and not (isinstance(req["tls"], dict) and req["tls"].get("ca") in ("lab", "none", "wrong")
                                 and set(req["tls"]) <= {"ca", "cert"} and req["tls"].get("cert", "lab") in ("lab", "wrong")):
            bad(f"{w}.request.tls", "is {ca: lab | none | wrong}, with cert: lab | wrong to present a client certificate")
        if "repeat" in req and not (isinstance(req["repeat"], int) and req["repeat"] >= 1):
            bad(f"{w}.request.repeat", "is a whole number >= 1")
        if "listener" in req and not (isinstance(req["listener"], int) and 1 <= req["listener"] <= 65535):
            bad(f"{w}.request.listener", "is the port of one of the gateway's listeners (1-65535)")
        if ("status" in exp) == ("error" in exp) and "split" not in exp:
            bad(f"{w}.expect", "give exactly one of status and error")
        if "error" in exp and (exp["error"] not in ("tls", "connect") or set(exp) - {"error"}):
            bad(f"{w}.expect.error", "is tls or connect, and nothing else is expected then")
        if "split" in exp:
            split = exp["split"]
            weights = {k: v for k, v in split.items() if k != "n"} if isinstance(split, dict) else {}
            if not (isinstance(split, dict) and isinstance(split.get("n"), int) and split["n"] >= 10 and weights
                    and all(isinstance(v, int) and 0 <= v for v in weights.values()) and sum(weights.values())):
                bad(f"{w}.expect.split", "is {<version>: <weight>, ..., n: <requests, at least 10>}")
            if "repeat" in req or "failures" in exp:
                bad(f"{w}.expect.split", "n sets the number of requests; no repeat or failures with it")
        if "failures" in exp:
            f = exp["failures"]
            if not (isinstance(f, dict) and isinstance(f.get("code"), int) and set(f) <= {"code", "max", "exact",
                                                                                         "alternating"}
                    and ("max" in f) != ("exact" in f)):
                bad(f"{w}.expect.failures", "is {code: <status>, exact: <n> | max: <n>, alternating?: true}")
            if req.get("repeat", 1) < 2:
                bad(f"{w}.expect.failures", "counts the answers of a repeated request: set request.repeat")
        for k in ("min_ms", "max_ms"):
            if k in exp and not isinstance(exp[k], (int, float)):
                bad(f"{w}.expect.{k}", "is a number of milliseconds")
        if "contains" in exp and not (isinstance(exp["contains"], list)
                                      and all(isinstance(s, str) for s in exp["contains"])):
            bad(f"{w}.expect.contains", "is a list of strings")
        if "json" in exp and not isinstance(exp["json"], dict):
            bad(f"{w}.expect.json", "maps dotted paths to values")
        if "gateway" in exp and exp["gateway"] is not True:
            bad(f"{w}.expect.gateway", "is true (Envoy answered itself) or left out")
        for j, entry in enumerate(exp.get("access_log") or []):
            if not (isinstance(entry, dict) and isinstance(entry.get("pod"), str)
                    and isinstance(entry.get("fields"), dict) and entry["fields"]
                    and set(entry) <= {"pod", "fields", "absent"} and entry.get("absent", True) is True):
                bad(f"{w}.expect.access_log[{j}]", "is {pod: <deployment>, fields: {...}, absent?: true}")
    return out


def loosely_same_request(row: str, request: dict) -> bool:
    """Whether a README row plausibly shows this request: its path (without the query) or gRPC
    method appears in the row, and so does every header value."""
    grpc = request.get("grpc")
    if grpc:
        needles = [grpc["method"]] + list((grpc.get("metadata") or {}).values())
    else:
        path = request["path"].split("?")[0]
        needles = [path] if path != "/" else []
        needles += list((request.get("headers") or {}).values())
        if request.get("host"):
            needles.append(request["host"])
        if request.get("method", "GET") != "GET":
            needles.append(request["method"])
    return all(n in row for n in needles)
