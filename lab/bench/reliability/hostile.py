"""Scenario hostile: the hostile-input corpus, conflicting applies and mutations, through the
validator and a running lab's API."""
from __future__ import annotations

import base64
import json
import os
import random
import re
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .common import (
    APPMESH, CORPUS, Lab, NS, ROOT, Sizes, WALKTHROUGH, _answering, _assert, _converged, _raw, _say, _send,
    _snapshot, check, sizes)


@dataclass
class Case:
    """One corpus entry: a manifest (.yaml) or an API request (.json)."""
    name: str
    kind: str  # manifest | request | conflict
    description: str
    expect: str  # rejected | unchanged | any
    text: str = ""  # manifest
    request: dict | None = None


def _expand(v):
    """Corpus JSON: {"$repeat": s, "times": n} becomes s * n, {"$list": x, "times": n} a list of n x,
    {"$join": [...]} the parts joined (big inputs from small files)."""
    if isinstance(v, dict):
        if set(v) == {"$repeat", "times"}:
            return v["$repeat"] * v["times"]
        if set(v) == {"$list", "times"}:
            return [_expand(v["$list"]) for _ in range(v["times"])]
        if set(v) == {"$join"}:
            return "".join(_expand(x) for x in v["$join"])
        return {k: _expand(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_expand(x) for x in v]
    return v


def load_corpus(directory: Path = CORPUS) -> list:
    cases = []
    for f in sorted(directory.glob("*")):
        if f.suffix == ".yaml":
            text = f.read_bytes().decode("utf-8", "surrogateescape")
            head = dict(re.findall(r"^# (hostile|expect): (.*)$", text[:4000], re.M))
            cases.append(Case(f.name, "manifest", head.get("hostile", ""), head.get("expect", "rejected").strip(),
                              text=text))
        elif f.suffix == ".json":
            spec = json.loads(f.read_text())
            kind = "conflict" if "versions" in spec else "request"
            cases.append(Case(f.name, kind, spec.get("description", ""), spec.get("expect", "rejected"),
                              request=spec))
    return cases


def _clear(problems: list) -> bool:
    """A rejection is clear when every error says what is wrong and what to write instead."""
    errs = [p for p in problems if p.get("severity", "error") == "error"]
    return bool(errs) and all(str(p.get("message", "")).strip() and str(p.get("hint", "")).strip() for p in errs)


def appmesh_api_present() -> bool:
    import importlib.util
    return importlib.util.find_spec("lab.api.appmesh") is not None


class Hostile:
    """Sends hostile input to a running lab and keeps the score."""

    def __init__(self, lab: Lab):
        self.lab, self.t = lab, lab.t
        self.control = lab.t.client.sockets.api  # the lab's own API: its Unix socket
        self.api_port = lab.t.client.info()["appmesh_api_port"]  # the App Mesh API: TCP
        self.log = lab.home / "daemon.log"
        self.results: list = []
        self.baseline = self._docs()
        self.restores = 0

    def _docs(self) -> dict:
        items = self.t.client.call("GET", "/v1/resources", timeout=30)["items"]
        return {(i["kind"], i["namespace"], i["name"]): i["doc"] for i in items}

    def restore(self) -> None:
        """Put the store back as it was before the barrage (after an input that was accepted)."""
        now = self._docs()
        extra = [list(k) for k in now if k not in self.baseline]
        if extra:
            self.t.client.call("POST", "/v1/delete", {"keys": extra})
        back = [[f"{k[0]}-{k[2]}.json", json.dumps(d)] for k, d in self.baseline.items() if now.get(k) != d]
        if back:
            out = self.t.client.call("POST", "/v1/apply", {"texts": back}, ok=(200, 422))
            assert not out.get("rejected"), out["problems"][:3]
        self.restores += 1

    def _tracebacks(self) -> int:
        try:
            return self.log.read_text(errors="replace").count("Traceback (most recent call last)")
        except OSError:
            return 0

    def alive(self) -> bool:
        status, _, _ = _send(self.control, "GET", "/v1/status", timeout=30)
        return status == 200

    def request(self, name: str, method: str, path: str, headers=None, body: bytes | None = None,
                raw: bytes | None = None, expect: str = "rejected", texts=None, signed: bool = False) -> dict:
        """One hostile request; returns its record (crash, partial, clear, status). An App Mesh API
        request is signed with the lab's credentials (so what is tested is the input, not the
        missing signature) unless `signed` says it carries its own Authorization (or none, on purpose)."""
        before, tb0 = _snapshot(self.t), self._tracebacks()
        t0 = time.monotonic()
        lab_signed = False
        if raw is not None:
            answer = _raw(self.api_port if b" /v20190125/" in raw[:200] else self.control, raw)
            # http.server answers a request line it cannot read HTTP/0.9 style: the error page, no status line
            m = re.match(rb"HTTP/1\.[01] (\d{3})", answer) or re.search(rb"<p>Error code: (\d{3})</p>", answer)
            status, rheaders, rbody = (int(m.group(1)) if m else None), {}, answer.split(b"\r\n\r\n", 1)[-1]
            dropped = not answer
        else:
            if path.startswith("/v20190125/") and not signed:
                headers = self._signed(method, path, headers, body)
                lab_signed = any(k.lower() == "authorization" for k in headers)
            status, rheaders, rbody = _send(self.api_port if path.startswith("/v20190125/") else self.control,
                                            method, path, headers, body)
            dropped = status is None
        seconds = time.monotonic() - t0
        alive = self.alive()
        tracebacks = self._tracebacks() - tb0
        after = _snapshot(self.t)
        try:
            payload = json.loads(rbody) if rbody else {}
        except ValueError:
            payload = {}
        modelled = status == 500 and rheaders.get("x-amzn-errortype") == "InternalServerErrorException"
        # the HTTP layer refusing a method or protocol version it does not speak is a rejection, not a crash
        protocol = status in (501, 505) and rbody.lstrip()[:15].upper() == b"<!DOCTYPE HTML>"
        crash = (not alive) or tracebacks > 0 or (raw is None and dropped) or \
            (status is not None and status >= 500 and not (modelled and tracebacks == 0) and not protocol)
        accepted = status is not None and 200 <= status < 300
        changed = before != after
        rec = {"name": name, "status": status, "seconds": round(seconds, 3), "crash": crash, "alive": alive,
               "tracebacks": tracebacks, "changed": changed, "accepted": accepted}
        if status == 422:
            rec["clear"] = _clear(payload.get("problems", []))
        elif status is not None and 400 <= status < 500:
            msg = payload.get("error") or payload.get("message") or payload.get("Message") if isinstance(payload, dict) else ""
            rec["clear"] = bool(msg) or raw is not None  # http.server's own 4xx pages for broken HTTP
        else:
            rec["clear"] = None
        if protocol:
            rec["clear"] = True
        if expect == "rejected":
            rec["ok"] = not crash and not changed and status is not None and (400 <= status < 500 or protocol) \
                and rec["clear"]
            rec["partial"] = changed and not accepted
        elif expect == "unchanged":
            rec["ok"] = not crash and not changed
            rec["partial"] = changed and not accepted
        else:  # any: accepted or rejected, but whole, fast and not a crash
            rec["partial"] = changed and not accepted
            rec["ok"] = not crash and not rec["partial"]
            if accepted and texts is not None:
                rec["ok"] = rec["ok"] and self._applied_whole(texts, payload)
        if raw is None and lab_signed and status == 403:
            rec["ok"] = False  # the lab refused its own signature: the case never reached its input
        if not rec["ok"]:
            rec["answer"] = (rbody[:300].decode(errors="replace") if isinstance(rbody, bytes) else str(rbody)[:300])
        if changed and alive:
            self.restore()
        self.results.append(rec)
        return rec

    def _signed(self, method: str, path: str, headers, body) -> dict:
        """`headers` plus a SigV4 signature made with the lab's profile (lab/api/credentials.py)."""
        from ...api.credentials import load_profile
        from ...api.sigv4 import sign
        p = load_profile(self.lab.home)
        try:
            out = sign(p.access_key_id, p.secret_access_key, p.region or "us-west-2", method,
                       f"http://127.0.0.1:{self.api_port}{path}", body or b"", headers)
        except ValueError:
            return dict(headers or {})  # a path botocore cannot sign goes unsigned (and is refused)
        out.pop("Host", None)  # the HTTP client sends the same Host itself
        return out

    def _applied_whole(self, texts, payload) -> bool:
        """An accepted apply: every document of it is stored as applied."""
        from ...model import validate_texts
        docs = {(r.kind, r.namespace or "", r.name): {k: v for k, v in r.raw.items() if k != "status"}
                for r in validate_texts(texts).resources}
        now = self._docs()
        return all(json.dumps(now.get(k), sort_keys=True) == json.dumps(d, sort_keys=True) for k, d in docs.items())

    def apply(self, name: str, texts, expect: str = "rejected") -> dict:
        body = json.dumps({"texts": texts}).encode()
        return self.request(name, "POST", "/v1/apply", {"Content-Type": "application/json"}, body,
                            expect=expect, texts=texts)


_WALKTHROUGH_RESOURCES: list = []


def walkthrough_resources() -> list:
    """The walkthrough's resources: the world a corpus input meets in the lab."""
    if not _WALKTHROUGH_RESOURCES:
        from ...files import read_texts
        from ...model import validate_texts
        _WALKTHROUGH_RESOURCES.extend(validate_texts(read_texts([ROOT / WALKTHROUGH])[0]).resources)
    return _WALKTHROUGH_RESOURCES


def validator_case(name: str, texts, expect: str = "rejected") -> dict:
    """The validator alone (in this process, on the walkthrough's world as the lab has it): never
    raises, answers fast, rejects clearly."""
    from ...model import validate_texts
    existing = walkthrough_resources()
    t0 = time.monotonic()
    try:
        r = validate_texts(texts, complete=True, existing=existing)
        errors = [p for p in r.errors]
        crash, err = False, ""
    except Exception as exc:  # a crash of the validator is the finding
        errors, crash, err = [], True, f"{type(exc).__name__}: {exc}"
    seconds = time.monotonic() - t0
    per_file = seconds / max(1, len(texts))  # one request may carry many files (the corpus has 10,000)
    rejected = bool(errors)
    clear = all(p.message.strip() and p.hint.strip() for p in errors) if errors else None
    # how fast is a figure of its own ("slowest validation …", judged by the bench), not part of
    # whether this input was handled: on a loaded machine a correct rejection may take longer
    ok = not crash and (expect != "rejected" or (rejected and clear))
    rec = {"name": name, "seconds": round(per_file, 3), "total_s": round(seconds, 3), "files": len(texts),
           "crash": crash, "rejected": rejected, "clear": clear, "ok": ok}
    if not ok:
        rec["detail"] = err or [(p.path, p.message[:80]) for p in errors[:3]]
    return rec


def _case_request(case: Case) -> dict:
    spec = _expand(case.request)
    body = None
    if "body" in spec:
        body = json.dumps(spec["body"]).encode()
    elif "body_text" in spec:
        body = spec["body_text"].encode("utf-8", "surrogatepass")
    elif "body_b64" in spec:
        body = base64.b64decode(spec["body_b64"])
    raw = None
    if "raw" in spec:
        raw = spec["raw"].encode("utf-8", "surrogatepass")
    return {"method": spec.get("method", "POST"), "path": spec.get("path", "/v1/apply"),
            "headers": spec.get("headers") or {}, "body": body, "raw": raw,
            "target": spec.get("target", "v1"), "unsigned": bool(spec.get("unsigned")),
            "texts": (spec.get("body") or {}).get("texts")
            if isinstance(spec.get("body"), dict) else None}


def _conflicts(h: Hostile, case: Case, threads: int, rounds: int) -> dict:
    """Threads applying conflicting versions of one resource at once (and invalid ones among them):
    the store ends with exactly one of the valid versions, never a mix, never an invalid one."""
    spec = case.request
    valid, invalid = spec["versions"], spec.get("invalid", [])
    kind, name = spec["resource"]["kind"], spec["resource"]["name"]
    ns = spec["resource"].get("namespace", NS)
    c = h.t.client
    barrier = threading.Barrier(threads)
    errors, statuses = [], Counter()
    lock = threading.Lock()

    def worker(j):
        rng = random.Random(j)
        barrier.wait(10)
        for r in range(rounds):
            bad = invalid and rng.random() < 0.25
            text = rng.choice(invalid) if bad else valid[(j + r) % len(valid)]
            try:
                out = c.call("POST", "/v1/apply", {"texts": [[f"{name}.yaml", text]]}, ok=(200, 422))
                code = out.get("_status", 422 if out.get("rejected") else 200)
                with lock:
                    statuses[(("invalid" if bad else "valid"), code)] += 1
            except Exception as exc:  # a crash or a dropped answer is the finding
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
    ths = [threading.Thread(target=worker, args=(j,), daemon=True) for j in range(threads)]
    tb0 = h._tracebacks()
    for th in ths:
        th.start()
    for th in ths:
        th.join(120)
    from ...model import validate_texts
    docs = [validate_texts([("v", v)]).resources[0].raw for v in valid]
    items = c.call("GET", f"/v1/resources?kind={kind}&namespace={ns}&name={name}")["items"]
    stored = items[0]["doc"] if items else None
    one_of = stored is not None and any(json.dumps(stored, sort_keys=True) ==
                                        json.dumps({k: v for k, v in d.items() if k != "status"}, sort_keys=True)
                                        for d in docs)
    invalid_stored = statuses.get(("invalid", 200), 0)
    # the gateway serves the stored version
    served = None
    if one_of and kind == "GatewayRoute":
        prefix = stored["spec"]["httpRoute"]["match"]["prefix"]
        try:
            _converged(h.t, 30)
            h.t.eventually(lambda: _assert(h.t.curl(prefix + "/x", quiet=True, timeout=3).status == 200),
                           timeout=15, what=f"{prefix} answering")
            served = True
        except AssertionError:
            served = False
    c.call("POST", "/v1/delete", {"keys": [[kind, ns, name]]})
    crash = bool(errors) or h._tracebacks() > tb0 or not h.alive()
    ok = one_of and not invalid_stored and not crash and served is not False
    rec = {"name": case.name, "threads": threads, "rounds": rounds, "statuses": {f"{a} {b}": n for (a, b), n in
                                                                             statuses.items()},
           "stored_one_valid_version": one_of, "invalid_accepted": invalid_stored, "served": served,
           "crash": crash, "partial": not one_of, "ok": ok, "errors": errors[:3]}
    h.results.append(rec)
    return rec


_BASES = [
    {"apiVersion": APPMESH, "kind": "GatewayRoute", "metadata": {"name": "fuzz", "namespace": NS},
     "spec": {"httpRoute": {"match": {"prefix": "/fuzz"},
                            "action": {"target": {"virtualService": {"virtualServiceRef": {"name": "product-service"}}}}}}},
    {"apiVersion": APPMESH, "kind": "VirtualService", "metadata": {"name": "fuzz", "namespace": NS},
     "spec": {"awsName": f"fuzz.{NS}.svc.cluster.local",
              "provider": {"virtualNode": {"virtualNodeRef": {"name": "product-service-vn"}}}}},
    {"apiVersion": APPMESH, "kind": "VirtualRouter", "metadata": {"name": "fuzz", "namespace": NS},
     "spec": {"listeners": [{"portMapping": {"port": 8080, "protocol": "http"}}],
              "routes": [{"name": "r", "httpRoute": {"match": {"prefix": "/"}, "action": {"weightedTargets": [
                  {"virtualNodeRef": {"name": "product-service-vn"}, "weight": 1}]}}}]}},
]


_HOSTILE_VALUES = [None, True, 0, -1, 2 ** 63, 1e308, float("inf"), "", " ", "../../etc/passwd", "a/b", "x" * 5000,
                   "\u202e", "\x07", "ÿ" * 10, [], {}, [1, 2], {"a": {"b": {"c": {}}}}, "*", "${HOME}", "$(id)",
                   "(a+)+$", "a{1001}", "/" * 300, "🙂", "\t", "0x10", "1e3", "NaN", "null", "true", "yes", "on"]


def _paths(v, prefix=()):
    yield prefix
    if isinstance(v, dict):
        for k, x in v.items():
            yield from _paths(x, prefix + (k,))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            yield from _paths(x, prefix + (i,))


def _set(doc, path, value):
    cur = doc
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value


def mutate(rng: random.Random, k: int) -> str:
    """A mutated copy of a valid App Mesh manifest (named fuzz-<k>), as YAML text, or raw text damage."""
    import copy

    import yaml
    doc = copy.deepcopy(rng.choice(_BASES))
    doc["metadata"]["name"] = f"fuzz-{k}"
    for _ in range(rng.randint(1, 3)):
        paths = [p for p in _paths(doc) if p]
        path = rng.choice(paths)
        op = rng.random()
        try:
            if op < 0.5:
                _set(doc, path, copy.deepcopy(rng.choice(_HOSTILE_VALUES)))
            elif op < 0.65:
                parent = doc
                for p in path[:-1]:
                    parent = parent[p]
                del parent[path[-1]]
            elif op < 0.8:
                parent = doc
                for p in path[:-1]:
                    parent = parent[p]
                if isinstance(parent, dict):
                    parent[rng.choice(["prefixx", "Prefix", "meshRef", "status", "spec", "weight", "x" * 60])] = \
                        copy.deepcopy(rng.choice(_HOSTILE_VALUES))
            else:
                node = doc
                for p in path[:-1]:
                    node = node[p]
                node[path[-1]] = [node[path[-1]]] if rng.random() < 0.5 else {"wrapped": node[path[-1]]}
        except (KeyError, IndexError, TypeError):
            continue
    try:
        text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    except yaml.YAMLError:
        text = json.dumps(doc, default=str)
    r = rng.random()
    if r < 0.15:  # damage the text itself
        cut = rng.randrange(len(text))
        text = text[:cut] + rng.choice(["\t", "\x00", ": :", "- ", "&a", "*b", "\"", "{", "]", "\n  -", "\ufeff"]) + \
            text[cut:]
    elif r < 0.2:
        text = text[: rng.randrange(len(text))]
    return text


def hypothesis_available() -> bool:
    import importlib.util
    return importlib.util.find_spec("hypothesis") is not None


def _hyp_strategies():
    """(documents, requests): hypothesis strategies for manifest texts and for daemon requests
    (method, path, body bytes, texts or None)."""
    from urllib.parse import quote

    import yaml
    from hypothesis import strategies as st
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70),
                        st.floats(allow_nan=False), st.text(max_size=40),
                        st.sampled_from([v for v in _HOSTILE_VALUES if isinstance(v, (str, int, float))]))
    values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=4) |
                          st.dictionaries(st.text(max_size=12), kids, max_size=4), max_leaves=12)

    @st.composite
    def documents(draw):
        import copy
        form = draw(st.integers(0, 9))
        if form == 0:  # any text at all
            return draw(st.text(max_size=400))
        if form == 1:  # any YAML value
            try:
                return yaml.safe_dump(draw(values), allow_unicode=True)
            except (yaml.YAMLError, ValueError):
                return "{}"
        doc = copy.deepcopy(draw(st.sampled_from(_BASES)))
        doc["metadata"]["name"] = draw(st.sampled_from(["fuzz", "fuzz-h"]) | st.text(max_size=70))
        for _ in range(draw(st.integers(1, 3))):
            paths = [q for q in _paths(doc) if q]
            if not paths:
                break
            path = paths[draw(st.integers(0, len(paths) - 1))]
            parent = doc
            for q in path[:-1]:
                parent = parent[q]
            if draw(st.booleans()):
                parent[path[-1]] = draw(values)
            elif isinstance(parent, dict) and len(parent) > 1:
                del parent[path[-1]]
        try:
            return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
        except (yaml.YAMLError, ValueError):
            return json.dumps(doc, default=str)

    names = st.sampled_from(["my-app-mesh", "appmesh-gateway_appmesh-demo", "product-service", "fuzz", ""]) | \
        st.text(max_size=300)
    q = lambda n: quote(n, safe="")  # noqa: E731
    specs = st.sampled_from([{}, {"httpRoute": {"match": {"prefix": "/fuzz"}, "action": {"target": {
        "virtualService": {"virtualServiceName": "product-service.appmesh-demo.svc.cluster.local"}}}}},
        {"listeners": [{"portMapping": {"port": 8088, "protocol": "http"}}]},
        {"egressFilter": {"type": "ALLOW_ALL"}}]) | values

    @st.composite
    def requests(draw):
        kind = draw(st.integers(0, 7))
        if kind <= 1:  # the lab's own apply, with generated documents
            texts = [[draw(st.sampled_from(["fuzz.yaml", "a/../b.yaml"]) | st.text(max_size=40)), draw(documents())]
                     for _ in range(draw(st.integers(1, 2)))]
            return "POST", "/v1/apply", json.dumps({"texts": texts}).encode(), texts
        if kind == 2:  # the lab's own API, any body
            method = draw(st.sampled_from(["GET", "POST", "DELETE"]))
            path = draw(st.sampled_from(["/v1/apply", "/v1/delete", "/v1/resources", "/v1/events", "/v1/kill",
                                         "/v1/proxy"]))
            query = draw(st.sampled_from(["", "?kind=GatewayRoute&name=", "?limit=", "?namespace="]))
            if query.endswith("="):
                query += q(draw(names))
            return method, path + query, json.dumps(draw(values)).encode(), None
        # the App Mesh API: a generated name in a real route, a generated body
        m, g, n = q(draw(names)), q(draw(names)), q(draw(names))
        method, path, field = draw(st.sampled_from([
            ("PUT", "/v20190125/meshes", "meshName"),
            ("GET", f"/v20190125/meshes/{m}", None),
            ("PUT", f"/v20190125/meshes/{m}", None),
            ("PUT", f"/v20190125/meshes/{m}/virtualGateways", "virtualGatewayName"),
            ("PUT", f"/v20190125/meshes/{m}/virtualNodes", "virtualNodeName"),
            ("PUT", f"/v20190125/meshes/{m}/virtualServices", "virtualServiceName"),
            ("PUT", f"/v20190125/meshes/{m}/virtualRouters", "virtualRouterName"),
            ("PUT", f"/v20190125/meshes/{m}/virtualGateway/{g}/gatewayRoutes", "gatewayRouteName"),
            ("PUT", f"/v20190125/meshes/{m}/virtualGateway/{g}/gatewayRoutes/{n}", None),
            ("GET", f"/v20190125/meshes/{m}/virtualGateway/{g}/gatewayRoutes?limit={q(draw(names))}", None),
            ("GET", f"/v20190125/meshes/{m}/virtualGateway/{g}/gatewayRoutes/{n}", None),
            ("DELETE", f"/v20190125/meshes/{m}/virtualGateway/{g}/gatewayRoutes/{n}", None),
            ("DELETE", f"/v20190125/meshes/{m}", None),
            ("PUT", f"/v20190125/tag?resourceArn={q(draw(names))}", None),
        ]))
        body = {"spec": draw(specs)} if draw(st.booleans()) else draw(values)
        if field and isinstance(body, dict):
            body[field] = draw(names | values)
        return method, path, json.dumps(body).encode(), None

    return documents(), requests()


def hypothesis_fuzz(h: "Hostile", n_validator: int, n_api: int) -> tuple:
    """Hypothesis-generated documents through the validator, and generated requests through the
    daemon (expect: any outcome, whole and clear). Derandomized: the same examples every run.
    Returns (validator records, API records)."""
    from hypothesis import HealthCheck, Phase, given, settings
    docs, reqs = _hyp_strategies()
    vrecs, arecs = [], []
    common = dict(deadline=None, database=None, derandomize=True, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))

    @settings(max_examples=n_validator, **common)
    @given(docs)
    def validator(text):
        vrecs.append(validator_case(f"hyp-validator-{len(vrecs)}", [("hyp.yaml", text)], "any"))

    @settings(max_examples=n_api, **common)
    @given(reqs)
    def api(req):
        method, path, body, texts = req
        rec = h.request(f"hyp-api-{len(arecs)} {method} {path[:60]}", method, path,
                        {"Content-Type": "application/json"}, body, expect="any", texts=texts)
        if rec["status"] is not None and 400 <= rec["status"] < 500 and not rec.get("clear"):
            rec["ok"] = False  # a rejection that does not say what is wrong
        arecs.append(rec)

    validator()
    api()
    return vrecs, arecs


def scenario_hostile(quick: bool = False, out=sys.stdout, lab: Lab | None = None, sz: Sizes | None = None) -> dict:
    from ...targets.base import TargetError
    sz = sz or sizes(quick)
    t_start = time.monotonic()
    cases = load_corpus() if CORPUS.is_dir() else []
    api = appmesh_api_present()
    _say(out, f"reliability hostile: {len(cases)} corpus entries ({CORPUS.relative_to(ROOT)}), "
              f"{sz.fuzz_cases} seeded mutations, {sz.hyp_validator} + {sz.hyp_api} hypothesis examples (validator + "
              f"API), conflicting concurrent applies; App Mesh API "
              f"{'present' if api else 'absent (its requests are skipped)'}")
    res: dict = {"scenario": "hostile", "corpus": len(cases), "appmesh_api": api}
    own = lab is None
    lab = lab or Lab("hostile").__enter__()
    try:
        t = lab.t
        t.apply(WALKTHROUGH)
        _answering(t)
        h = Hostile(lab)
        # the validator alone
        vrecs = []
        for case in cases:
            if case.kind == "manifest":
                vrecs.append(validator_case(case.name, [(case.name, case.text)], case.expect))
            elif case.kind == "request":
                rq = _case_request(case)
                texts = rq["texts"]
                if isinstance(texts, list) and all(isinstance(x, list) and len(x) == 2 and
                                                   all(isinstance(y, str) for y in x) for x in texts):
                    vrecs.append(validator_case(case.name, [tuple(x) for x in texts],
                                                "rejected" if case.expect == "rejected" and texts else "any"))
        # through the daemon
        skipped = 0
        for case in cases:
            if case.kind == "manifest":
                h.apply(case.name, [[case.name, case.text]], case.expect)
            elif case.kind == "request":
                rq = _case_request(case)
                if rq["target"] == "appmesh" and not api:
                    skipped += 1
                    continue
                h.request(case.name, rq["method"], rq["path"], rq["headers"], rq["body"], rq["raw"], case.expect,
                          texts=rq["texts"], signed=rq["unsigned"])
        corpus_recs = list(h.results)
        # conflicting concurrent applies
        for case in cases:
            if case.kind == "conflict":
                _conflicts(h, case, sz.conflict_threads, sz.conflict_rounds)
        conflict_recs = h.results[len(corpus_recs):]
        # seeded mutations: whatever the outcome, whole, clear and no crash
        rng = random.Random(42)
        fuzz_v, fuzz_a = [], []
        for k in range(sz.fuzz_cases):
            text = mutate(rng, k)
            fuzz_v.append(validator_case(f"fuzz-{k}", [(f"fuzz-{k}.yaml", text)], "any"))
            rec = h.apply(f"fuzz-{k}", [[f"fuzz-{k}.yaml", text]], "any")
            if rec["status"] == 422 and not rec.get("clear"):
                rec["ok"] = False
            fuzz_a.append(rec)
        del h.results[len(corpus_recs) + len(conflict_recs):]
        # hypothesis: generated documents through the validator, generated requests through the daemon
        hyp = hypothesis_available()
        hyp_v, hyp_a = hypothesis_fuzz(h, sz.hyp_validator, sz.hyp_api) if hyp else ([], [])
        del h.results[len(corpus_recs) + len(conflict_recs):]
        # the lab keeps serving
        try:
            _converged(t, 30)
            _answering(t, timeout=15)
            serving = True
        except (AssertionError, TargetError) as exc:
            _say(out, f"  the lab does not serve after the barrage: {exc}")
            serving = False
        lab.remember()
    finally:
        if own:
            lab.__exit__(None, None, None)
    bad_corpus = [r for r in corpus_recs if not r["ok"]]
    bad_v = [r for r in vrecs if not r["ok"]]
    all_api = corpus_recs + conflict_recs + fuzz_a + hyp_a
    crashes = sum(1 for r in all_api if r["crash"]) + sum(1 for r in vrecs + fuzz_v + hyp_v if r["crash"])
    partial = sum(1 for r in all_api if r.get("partial"))
    fuzz_bad = [r for r in fuzz_a if not r["ok"]] + [r for r in fuzz_v if not r["ok"]]
    hyp_bad = [r for r in hyp_v + hyp_a if not r["ok"]]
    slowest = max((r["seconds"] for r in vrecs + fuzz_v + hyp_v), default=0)
    slowest_many = max((r for r in vrecs if r["files"] > 1), key=lambda r: r["total_s"], default=None)
    res.update(validator={"cases": len(vrecs), "not_ok": len(bad_v), "slowest_s": slowest},
               api={"cases": len(corpus_recs), "not_ok": len(bad_corpus), "skipped_appmesh": skipped,
                    "statuses": dict(Counter(str(r["status"]) for r in corpus_recs))},
               conflicts=conflict_recs,
               fuzz={"cases": len(fuzz_a), "accepted": sum(1 for r in fuzz_a if r["accepted"]),
                     "rejected": sum(1 for r in fuzz_a if not r["accepted"]), "not_ok": len(fuzz_bad)},
               hypothesis={"available": hyp, "validator": len(hyp_v), "api": len(hyp_a),
                           "api_statuses": dict(Counter(str(r["status"]) for r in hyp_a)), "not_ok": len(hyp_bad)},
               crashes=crashes, partial_applies=partial, serving_after=serving,
               failures=(bad_v + bad_corpus + [r for r in conflict_recs if not r["ok"]] + fuzz_bad + hyp_bad)[:20],
               leftover_processes=len(lab.leftovers) if own else 0)
    _say(out, f"  validator: {len(vrecs)} corpus inputs, {len(bad_v)} not rejected clearly/fast; slowest {slowest:.3f} s "
              f"per file" + (f" ({slowest_many['name']}: {slowest_many['files']} files in {slowest_many['total_s']} s)"
                             if slowest_many else ""))
    _say(out, f"  daemon API: {len(corpus_recs)} corpus requests ({skipped} App Mesh API requests skipped), "
              f"{len(bad_corpus)} not ok; statuses {res['api']['statuses']}")
    for r in conflict_recs:
        _say(out, f"  conflicting applies {r['name']}: {r['threads']} threads x {r['rounds']}: {r['statuses']}; "
                  f"stored one valid version: {r['stored_one_valid_version']}; served: {r['served']}")
    _say(out, f"  mutations: {len(fuzz_a)} ({res['fuzz']['accepted']} accepted whole, {res['fuzz']['rejected']} "
              f"rejected), {len(fuzz_bad)} not ok")
    if hyp:
        _say(out, f"  hypothesis: {len(hyp_v)} generated documents through the validator, {len(hyp_a)} generated "
                  f"requests through the daemon (statuses {res['hypothesis']['api_statuses']}), {len(hyp_bad)} not ok")
    else:
        _say(out, "  hypothesis: not installed (pip install -e '.[test]'), its phase is skipped")
    _say(out, f"  crashes {crashes}, partial applies {partial}; /products and /reviews answer after: {serving}")
    for r in res["failures"][:10]:
        _say(out, f"    not ok: {r}")
    if os.environ.get("APPMESH_RELIABILITY_DEBUG"):
        Path(os.environ["APPMESH_RELIABILITY_DEBUG"]).write_text(json.dumps(
            [r for r in vrecs + corpus_recs + conflict_recs + fuzz_v + fuzz_a + hyp_v + hyp_a if not r["ok"]], indent=1,
            default=str))
    res["checks"] = [
        check("crashes (exception, 5xx, dropped answer, daemon gone)", crashes, "0", crashes == 0),
        check("partial applies (store changed by a rejected request)", partial, "0", partial == 0),
        check("corpus manifests rejected clearly by the validator", f"{len(vrecs) - len(bad_v)}/{len(vrecs)}",
              "all", not bad_v),
        check("corpus requests rejected clearly by the daemon", f"{len(corpus_recs) - len(bad_corpus)}/{len(corpus_recs)}",
              "all", not bad_corpus),
        check("conflicting concurrent applies end on one valid version",
              f"{sum(1 for r in conflict_recs if r['ok'])}/{len(conflict_recs)}", "all",
              all(r["ok"] for r in conflict_recs)),
        check("mutations handled whole and clearly", f"{len(fuzz_a) - len(fuzz_bad)}/{len(fuzz_a)}", "all",
              not fuzz_bad),
        check("hypothesis-generated documents and requests handled whole and clearly",
              f"{len(hyp_v) + len(hyp_a) - len(hyp_bad)}/{len(hyp_v) + len(hyp_a)}" if hyp else "skipped", "all",
              not hyp_bad if hyp else None, "" if hyp else "hypothesis is not installed (pip install -e '.[test]')"),
        check("slowest validation of one hostile input file", round(slowest, 3), "< 2 s", slowest < 2,
              f"a request with {slowest_many['files']} files took {slowest_many['total_s']} s in all"
              if slowest_many else ""),
        check("lab serves /products and /reviews after the barrage", serving, "true", serving),
        check("App Mesh API requests", "skipped" if not api else "sent", "sent when lab/api/appmesh.py exists",
              None, "" if api else "lab/api/appmesh.py does not exist yet"),
    ]
    res["seconds"] = round(time.monotonic() - t_start, 1)
    return res
