"""What every reliability scenario shares: sizes, checks, a lab of its own per scenario, the load
generator, and plain HTTP to a port or a Unix socket."""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from pathlib import Path


ROOT = Path(__file__).resolve().parents[3]


CORPUS = ROOT / "tests" / "reliability" / "corpus"


WALKTHROUGH = "manifests/walkthrough/"


STABLE = ("/products", "/reviews")


SERVICE_OF = {"/products": "product-service", "/reviews": "review-service"}


SCENARIOS = ("faults", "churn", "crash", "hostile", "exposure")


NS = "appmesh-demo"


APPMESH = "appmesh.k8s.aws/v1beta2"


@dataclass(frozen=True)
class Sizes:
    pause_s: float  # how long the daemon stays paused, and down
    churn_ops: int
    churn_routes: int  # distinct churned gateway routes
    crash_trials: int
    crash_docs: int
    fuzz_cases: int
    hyp_validator: int  # hypothesis examples: documents through the validator
    hyp_api: int  # hypothesis examples: requests to the daemon (its /v1 API and the App Mesh API)
    conflict_threads: int
    conflict_rounds: int
    workers: int  # load: concurrent keep-alive connections
    rate: float  # load: requests per second per connection
    rss_interval_s: float


FULL = Sizes(pause_s=30, churn_ops=10_000, churn_routes=40, crash_trials=100, crash_docs=200, fuzz_cases=1000,
             hyp_validator=500, hyp_api=300,
             conflict_threads=8, conflict_rounds=25, workers=4, rate=25, rss_interval_s=1.0)


QUICK = Sizes(pause_s=3, churn_ops=300, churn_routes=20, crash_trials=10, crash_docs=200, fuzz_cases=60,
              hyp_validator=60, hyp_api=40,
              conflict_threads=4, conflict_rounds=6, workers=4, rate=25, rss_interval_s=0.25)


def sizes(quick: bool) -> Sizes:
    return QUICK if quick else FULL


def _say(out, text: str = "") -> None:
    print(text, file=out, flush=True)


def check(name: str, value, target: str, met: bool | None, note: str = "") -> dict:
    """One judged (met True/False) or reported (met None) figure."""
    return {"name": name, "value": value, "target": target, "met": met, "note": note}


def _reap(pid: int) -> None:
    """Collect a killed daemon this process started (it stays a zombie otherwise)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # not our child: init reaps it


def _lab_pids(home: Path) -> set:
    """Every process the lab of `home` runs: the daemon and what its store says it started."""
    pids = set()
    try:
        pid = json.loads((home / "daemon.json").read_text()).get("pid")
        if pid:
            pids.add(pid)
    except (OSError, ValueError):
        pass  # no daemon.json: the daemon never started or is gone
    for proc in _kv(home, "proc:").values():
        if isinstance(proc, dict) and proc.get("pid"):
            pids.add(proc["pid"])
    return pids


def _lab_processes(home: Path) -> set:
    """The identities (pid, start time, command line) of every process the lab of `home` runs, as
    daemon.json and the store record them: a pid alone may belong to somebody else by teardown."""
    from ...runtime.procs import Identity
    found = set()
    try:
        found.add(Identity.from_dict(json.loads((home / "daemon.json").read_text()).get("ident")))
    except (OSError, ValueError, AttributeError):
        pass  # no daemon.json: the daemon never started or is gone
    for proc in _kv(home, "proc:").values():
        if isinstance(proc, dict):
            found.add(Identity.from_dict(proc.get("ident")))
    return found - {None}


def _kv(home: Path, prefix: str) -> dict:
    """The store's kv entries under a prefix, read without writing (the daemon may be running)."""
    db = home / "state.db"
    if not db.exists():
        return {}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        rows = con.execute("SELECT key, value FROM kv WHERE key LIKE ?", (prefix + "%",)).fetchall()
    finally:
        con.close()
    return {k: json.loads(v) for k, v in rows}


class Lab:
    """A lab on a fresh home: `with Lab("faults") as lab: lab.t.apply(...)`. Teardown always runs,
    resumes a paused daemon, stops everything and kills (by pid) anything the lab left behind."""

    def __init__(self, scenario: str):
        self.scenario = scenario
        self.dir = Path(tempfile.mkdtemp(prefix=f"appmesh-rel-{scenario}-"))
        self.home = self.dir / "lab"
        self.leftovers: list = []
        self.seen: set = set()

    def __enter__(self) -> "Lab":
        from ...targets.local import LocalTarget
        self.t = LocalTarget(home=str(self.home), echo=False)
        try:
            self.t.up()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    @property
    def daemon_pid(self) -> int:
        return self.t.client.info()["pid"]

    def remember(self) -> None:
        """Note the lab's current processes (checked for leftovers at teardown)."""
        self.seen |= _lab_processes(self.home)

    def __exit__(self, *exc) -> bool:
        from ...runtime import procs
        try:
            self.remember()
            for ident in self.seen:
                procs.signal_process(ident, signal.SIGCONT, group=False)  # a paused daemon cannot shut down
            try:
                self.t.down()
            except Exception:  # the daemon may be dead: its processes are stopped below
                traceback.print_exc()
            deadline = time.time() + 5
            while time.time() < deadline and any(procs.is_running(p) for p in self.seen):
                time.sleep(0.05)
            # still the lab's own (same pid, start time and command line): a recycled pid is not
            self.leftovers = [p.pid for p in self.seen if procs.is_running(p)]
            for ident in self.seen:
                procs.signal_process(ident, signal.SIGKILL)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
        return False


def _converged(t, timeout: float = 30) -> float:
    t0 = time.monotonic()
    t.converge(timeout)
    return time.monotonic() - t0


def _answering(t, paths=STABLE, timeout: float = 30, gateway=None) -> None:
    def ok():
        for p in paths:
            r = t.curl(p, quiet=True, timeout=3, gateway=gateway)
            assert r.status == 200, f"{p}: {r.status}"
            if p in SERVICE_OF:
                assert r.json().get("service") == SERVICE_OF[p], r.text[:200]
    t.eventually(ok, timeout=timeout, interval=0.05, what="the stable routes answering")


def _inventory(t) -> dict:
    """(kind, namespace, name) -> (uid, generation) of every stored resource."""
    items = t.client.call("GET", "/v1/resources")["items"]
    return {(i["kind"], i["namespace"], i["name"]): (i["uid"], i["generation"]) for i in items}


def _snapshot(t) -> str:
    """A digest of every stored resource as applied (status excluded)."""
    items = t.client.call("GET", "/v1/resources", timeout=30)["items"]
    rows = sorted((i["kind"], i["namespace"], i["name"], i["uid"], i["generation"],
                   json.dumps(i["doc"], sort_keys=True)) for i in items)
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def _rss_mb(pid: int) -> float:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass  # the process is gone
    return 0.0


def _gateway(t, name: str = "appmesh-gateway") -> tuple[str, int]:
    host, port = t.gateway_url(name).split("//")[1].split(":")
    return host, int(port)


class Load:
    """`workers` keep-alive connections, each sending `rate` GETs per second, round robin over
    `paths`, until stopped (or `max_seconds`). A request fails on a connection error, a timeout, a
    status other than 200 or an answer from the wrong service; after a failure the same request
    is tried once more on a new connection, which tells a retrying client's view apart."""

    def __init__(self, host: str, port: int, paths=STABLE, workers: int = 4, rate: float = 25,
                 timeout: float = 5.0, max_seconds: float = 3600, expect=None):
        self.host, self.port, self.paths = host, port, tuple(paths)
        self.workers, self.rate, self.timeout, self.max_seconds = workers, rate, timeout, max_seconds
        self.expect = SERVICE_OF if expect is None else expect
        self.lock = threading.Lock()
        self.ok_times: list = []  # end time of every success
        self.latencies: list = []
        self.failures: list = []  # (start, end, path, outcome, retry_ok)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._worker, args=(i,), daemon=True, name=f"load-{i}")
                         for i in range(workers)]

    def __enter__(self) -> "Load":
        self.started = time.monotonic()
        for th in self._threads:
            th.start()
        return self

    def __exit__(self, *exc) -> bool:
        self.stop()
        return False

    def stop(self) -> None:
        self._stop.set()
        for th in self._threads:
            th.join(self.timeout + 5)
        self.stopped = time.monotonic()

    def _request(self, conn, path: str):
        try:
            if conn is None:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            if resp.will_close:
                conn.close()
                conn = None
            if resp.status != 200:
                return conn, f"HTTP {resp.status}"
            want = self.expect.get(path)
            if want and f'"service": "{want}"'.encode() not in body and f'"service":"{want}"'.encode() not in body:
                return conn, "wrong service"
            return conn, "ok"
        except (OSError, http.client.HTTPException) as exc:
            if conn is not None:
                conn.close()
            return None, type(exc).__name__

    def _worker(self, idx: int) -> None:
        conn, i = None, idx
        interval = 1.0 / self.rate
        next_at = time.monotonic() + idx * interval / self.workers
        end = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < end:
            path = self.paths[i % len(self.paths)]
            i += 1
            t0 = time.monotonic()
            conn, outcome = self._request(conn, path)
            t1 = time.monotonic()
            if outcome == "ok":
                with self.lock:
                    self.ok_times.append(t1)
                    self.latencies.append(t1 - t0)
            else:
                retry, again = self._request(None, path)
                if retry is not None:
                    retry.close()
                with self.lock:
                    self.failures.append((t0, t1, path, outcome, again == "ok"))
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            elif delay < -1.0:
                next_at = time.monotonic()  # far behind (a stall): do not burst to catch up
        if conn is not None:
            conn.close()

    def window(self, t0: float, t1: float) -> dict:
        with self.lock:
            fails = [f for f in self.failures if t0 <= f[0] <= t1]
            ok = sum(1 for x in self.ok_times if t0 <= x <= t1)
        return {"requests": ok + len(fails), "ok": ok, "failed": len(fails),
                "failed_after_retry": sum(1 for f in fails if not f[4]),
                "outcomes": dict(Counter(f[3] for f in fails)),
                "last_failure_s": round(max(f[1] for f in fails) - t0, 3) if fails else 0.0}

    def clean_since(self, seconds: float) -> bool:
        now = time.monotonic()
        with self.lock:
            return not any(f[1] >= now - seconds for f in self.failures) and \
                any(x >= now - seconds for x in self.ok_times[-self.workers * 4:])

    def wait_clean(self, seconds: float = 0.5, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.clean_since(seconds):
                return
            time.sleep(0.05)
        raise AssertionError(f"the load did not run {seconds}s without failures within {timeout}s: "
                             f"{self.failures[-3:]}")

    def totals(self) -> dict:
        with self.lock:
            lat = sorted(self.latencies)
            n = len(self.ok_times) + len(self.failures)
            return {"requests": n, "ok": len(self.ok_times), "failed": len(self.failures),
                    "failed_after_retry": sum(1 for f in self.failures if not f[4]),
                    "outcomes": dict(Counter(f[3] for f in self.failures)),
                    "p50_ms": round(lat[len(lat) // 2] * 1000, 2) if lat else None,
                    "p99_ms": round(lat[int(len(lat) * 0.99)] * 1000, 2) if lat else None,
                    "rps": round(n / max(1e-9, getattr(self, "stopped", time.monotonic()) - self.started), 1)}


def _pod(t, owner: str, index: int = 0) -> dict:
    return [p for p in t.pods(NS) if p["owner"] == owner][index]


def _container(pod: dict, name: str) -> dict:
    return next(c for c in pod["containers"] if c["name"] == name)


def _assert(cond, msg: str = "") -> None:
    assert cond, msg


def _send(port: int | str | Path, method: str, path: str, headers: dict | None = None, body: bytes | None = None,
          timeout: float = 60) -> tuple:
    """(status or None, headers, body or error text), over a fresh connection to 127.0.0.1:`port`, or
    to a Unix socket when `port` is its path."""
    from ...runtime.sockets import UnixHTTPConnection
    conn = (http.client.HTTPConnection("127.0.0.1", port, timeout=timeout) if isinstance(port, int)
            else UnixHTTPConnection(port, timeout=timeout))
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        hs = {k.lower(): v for k, v in (headers or {}).items()}
        if body is not None and "content-length" not in hs and "transfer-encoding" not in hs:
            hs["content-length"] = str(len(body))
        for k, v in hs.items():
            conn.putheader(k, v)
        try:
            conn.endheaders()
            if body:
                conn.send(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered (a refusal) before taking the whole request: read that answer
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    except (OSError, http.client.HTTPException) as exc:
        return None, {}, f"{type(exc).__name__}: {exc}".encode()
    finally:
        conn.close()


def _raw(port: int | str | Path, data: bytes, timeout: float = 10, half_close: bool = True) -> bytes:
    """Send bytes as they are (no HTTP client in between) and return what comes back until the server
    closes. `half_close` shuts the sending side after the bytes (a server waiting for more then sees
    the end); Envoy takes that for the client going away and answers nothing, so requests to Envoy
    go without it and ask for `Connection: close` instead."""
    if isinstance(port, int):
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    else:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(str(port))
    with s:
        chunks = []
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server answered and closed before reading everything
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
        except OSError:
            pass  # the server reset the connection: what came so far is the answer
    return b"".join(chunks)
