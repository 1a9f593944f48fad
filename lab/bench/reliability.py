"""`appmesh-lab bench reliability [--quick]`: faults, load with configuration churn, crash safety,
hostile input and exposure of the local lab.

Every scenario runs on a lab home of its own (a fresh temporary directory, always torn down, and
checked for processes left behind), prints what it did and what it measured, and returns a dict;
`run()` ends with ONE JSON line holding every figure, and `write_results_page()` turns that record
into docs/reliability.md.

  faults    steady keep-alive load through the gateway on the stable routes (/products, /reviews)
            while, one at a time: the gateway Envoy, a sidecar Envoy and an app are SIGKILLed; the
            daemon is SIGKILLed and restarted at once; paused (SIGSTOP) for a while; SIGKILLed and
            left down for a while, then started. Then the gateway Deployment is scaled to 2 replicas
            (the kernel's SO_REUSEPORT spreads connections over both Envoys) and one is killed again.
            Figures: failed requests per fault (and how many would still fail after one retry on a
            new connection), outage and time until the killed process serves again, resources kept.
  churn     N apply/delete operations of unrelated gateway routes and VirtualRouter weight changes
            while the load runs; then every proxy must serve the last applied state (requests and
            the gateway's config dump), and the daemon's RSS is sampled throughout.
  crash     SIGKILL of the daemon at a random point during an apply of 200 documents, many times;
            after each, the store holds the whole apply or none of it and PRAGMA integrity_check is ok.
  hostile   the corpus tests/reliability/corpus/ (malformed and malicious manifests and API
            requests), conflicting concurrent applies of one resource, and seeded random mutations of
            valid manifests, each through the validator and the daemon's API: every one rejected with
            a finding or error, nothing crashes, nothing is half-applied, and the lab keeps serving.
  exposure  everything listens on loopback only, and on TCP only the App Mesh API and the data
            plane: the daemon's control API, xDS and every Envoy admin are Unix sockets (0600, in a
            0700 folder); the API refuses browser-shaped requests; Envoy admin is unreachable through
            the gateway; TLS and mTLS refuse wrong certificates; keys stay in <home>/certs (0600);
            state files are the owner's only.

A check has a target and `met` True/False; `met` None means the figure is reported, not judged
(the reason is in `note`). The targets (DESIGN.md "What users expect"): no failed request on stable
routes while the daemon is down or restarting, recovery from an Envoy kill < 2 s, no non-2xx on
stable routes during churn, daemon RSS end <= start + 50 MB (judged in the full run only), 0 partial
applies, 0 crashes.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import ipaddress
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import sqlite3
import ssl
import stat
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..runtime.supervisor import pid_alive

ROOT = Path(__file__).resolve().parents[2]
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


# ---------------------------------------------------------------------------------------------
# A lab of its own per scenario
# ---------------------------------------------------------------------------------------------

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
    from ..runtime.procs import Identity
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
        from ..targets.local import LocalTarget
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
        from ..runtime import procs
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


# ---------------------------------------------------------------------------------------------
# Load: fixed concurrency, keep-alive, paced, bounded
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# 1. Process faults under load
# ---------------------------------------------------------------------------------------------

def _pod(t, owner: str, index: int = 0) -> dict:
    return [p for p in t.pods(NS) if p["owner"] == owner][index]


def _container(pod: dict, name: str) -> dict:
    return next(c for c in pod["containers"] if c["name"] == name)


def _kill_process(lab: Lab, load: Load, owner: str, container: str, probe: str) -> dict:
    """SIGKILL one container of a pod; measure until it runs again and the probe answers."""
    t = lab.t
    lab.remember()
    load.wait_clean()
    pod = _pod(t, owner)
    before = _container(pod, container)
    t0 = time.monotonic()
    assert t.kill(pod["name"], container), f"could not kill {pod['name']}/{container}"

    def back():
        p = next(x for x in t.pods(NS) if x["name"] == pod["name"])
        c = _container(p, container)
        assert c["restarts"] > before["restarts"] and c["state"] == "Running" and c["pid"] != before["pid"], c
        assert t.curl(probe, quiet=True, timeout=2).status == 200
    t.eventually(back, timeout=20, interval=0.02, what=f"{pod['name']}/{container} serving again")
    serving_again = time.monotonic() - t0
    load.wait_clean(0.5, timeout=20)
    time.sleep(0.3)
    w = load.window(t0, time.monotonic())
    w.update(pod=pod["name"], container=container, serving_again_s=round(serving_again, 3),
             outage_s=w["last_failure_s"])
    lab.remember()
    return w


def _daemon_fault(lab: Lab, load: Load, mode: str, seconds: float) -> dict:
    """mode: restart (SIGKILL, start at once) | pause (SIGSTOP for `seconds`) | down (SIGKILL,
    start after `seconds`). The Envoys keep serving their last configuration meanwhile."""
    t = lab.t
    lab.remember()
    load.wait_clean()
    pid = lab.daemon_pid
    t0 = time.monotonic()
    if mode == "pause":
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            os.kill(pid, signal.SIGCONT)
    else:
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        _reap(pid)
        time.sleep(seconds)
    resumed = time.monotonic()
    if mode != "pause":
        t.client.paths.daemon_info.unlink(missing_ok=True)
        t.up()
    answering = time.monotonic() - resumed
    _converged(t, 30)
    reconnected = time.monotonic() - resumed
    time.sleep(0.5)
    w = load.window(t0, time.monotonic())
    during = load.window(t0, resumed)
    w.update(mode=mode, down_s=round(resumed - t0, 2), served_while_down=during["ok"],
             daemon_answering_s=round(answering, 3), proxies_reconnected_s=round(reconnected, 3),
             same_pid=lab.daemon_pid == pid)
    lab.remember()
    return w


def scenario_faults(quick: bool = False, out=sys.stdout, sz: Sizes | None = None) -> dict:
    sz = sz or sizes(quick)
    t_start = time.monotonic()
    _say(out, f"reliability faults: {sz.workers} keep-alive connections x {sz.rate:g} req/s on "
              f"{', '.join(STABLE)} through the gateway; one fault at a time")
    res: dict = {"scenario": "faults", "load": {"workers": sz.workers, "rate_per_worker": sz.rate}}
    faults: dict = {}
    with Lab("faults") as lab:
        t = lab.t
        t.apply(WALKTHROUGH)
        _answering(t)
        before = _inventory(t)
        host, port = _gateway(t)
        with Load(host, port, workers=sz.workers, rate=sz.rate) as load:
            faults["gateway_envoy"] = _kill_process(lab, load, "appmesh-gateway", "envoy", "/products")
            faults["sidecar_envoy"] = _kill_process(lab, load, "product-service", "envoy", "/products")
            faults["app"] = _kill_process(lab, load, "product-service", "app", "/products")
            faults["daemon_restart"] = _daemon_fault(lab, load, "restart", 0)
            faults["daemon_paused"] = _daemon_fault(lab, load, "pause", sz.pause_s)
            faults["daemon_down"] = _daemon_fault(lab, load, "down", sz.pause_s)
        res["load"].update(load.totals())
        after = _inventory(t)
        kept = after == before
        # the gateway Deployment with replicas: 2; fresh connections spread over both Envoys
        text = (ROOT / WALKTHROUGH / "09-gateway-deployment.yaml").read_text()
        assert text.count("replicas: 1") == 1
        t.apply_text(text.replace("replicas: 1", "replicas: 2"), name="09-gateway-deployment.yaml")
        _converged(t)
        t.eventually(lambda: _assert(len([p for p in t.pods(NS) if p["owner"] == "appmesh-gateway"
                                          and p["status"] == "Running"]) == 2), timeout=20,
                     what="two gateway pods running")
        _answering(t)
        with Load(host, port, workers=sz.workers, rate=sz.rate) as load2:
            time.sleep(0.5)
            faults["gateway_envoy_2_replicas"] = _kill_process(lab, load2, "appmesh-gateway", "envoy", "/products")
        lab.remember()
    res["faults"] = faults
    res["resources_kept"] = kept
    res["resources"] = len(before)
    res["leftover_processes"] = len(lab.leftovers)
    g1, g2 = faults["gateway_envoy"], faults["gateway_envoy_2_replicas"]
    names = {"gateway_envoy": "gateway Envoy SIGKILL (1 replica)", "sidecar_envoy": "sidecar Envoy SIGKILL",
             "app": "app process SIGKILL", "daemon_restart": "daemon SIGKILL + restart",
             "daemon_paused": f"daemon SIGSTOP {sz.pause_s:g} s", "daemon_down": f"daemon down {sz.pause_s:g} s",
             "gateway_envoy_2_replicas": "gateway Envoy SIGKILL (2 replicas)"}
    for k, f in faults.items():
        extra = (f"serving again {f['serving_again_s']:.2f} s" if "serving_again_s" in f else
                 f"served {f['served_while_down']} while down; proxies reconnected {f['proxies_reconnected_s']:.2f} s")
        _say(out, f"  {names[k]:<36} {f['requests']:>5} requests  failed {f['failed']:>3}"
                  f" (after one retry {f['failed_after_retry']})  outage {f['last_failure_s']:.2f} s  {extra}")
    _say(out, f"  resources kept across the faults: {kept} ({len(before)}); processes left behind: {len(lab.leftovers)}")
    checks = [
        check("failed requests while the daemon restarts", faults["daemon_restart"]["failed"], "0",
              faults["daemon_restart"]["failed"] == 0),
        check("failed requests while the daemon is paused", faults["daemon_paused"]["failed"], "0",
              faults["daemon_paused"]["failed"] == 0),
        check("failed requests while the daemon is down", faults["daemon_down"]["failed"], "0",
              faults["daemon_down"]["failed"] == 0),
        check("requests served while the daemon is down", faults["daemon_down"]["served_while_down"], "> 0",
              faults["daemon_down"]["served_while_down"] > 0),
        check("gateway Envoy killed: serving again", round(g1["serving_again_s"], 3), "< 2 s", g1["serving_again_s"] < 2),
        check("sidecar Envoy killed: serving again", round(faults["sidecar_envoy"]["serving_again_s"], 3), "< 2 s",
              faults["sidecar_envoy"]["serving_again_s"] < 2),
        check("app killed: serving again", round(faults["app"]["serving_again_s"], 3), "< 5 s",
              faults["app"]["serving_again_s"] < 5),
        check("gateway Envoy killed (1 replica): failed requests", g1["failed"], "reported", None,
              "in-flight and idle keep-alive connections of the only gateway Envoy break, and new ones are "
              "refused until it is back"),
        check("gateway Envoy killed (2 replicas): failed requests", g2["failed"], "reported", None,
              f"only the connections on the killed replica break; with one retry on a new connection "
              f"{g2['failed_after_retry']} fail (1 replica: {g1['failed_after_retry']})"),
        check("sidecar Envoy killed: failed requests", faults["sidecar_envoy"]["failed"], "reported", None,
              "requests to the service in the restart gap (the gateway retries connect failures twice)"),
        check("app killed: failed requests", faults["app"]["failed"], "reported", None,
              "requests in the app's restart gap, after the sidecar's retries"),
        check("every applied resource kept (uid, generation)", kept, "true", kept),
        check("processes left behind after teardown", len(lab.leftovers), "0", not lab.leftovers),
    ]
    res["checks"] = checks
    res["seconds"] = round(time.monotonic() - t_start, 1)
    return res


def _assert(cond, msg: str = "") -> None:
    assert cond, msg


# ---------------------------------------------------------------------------------------------
# 2. Configuration churn under load
# ---------------------------------------------------------------------------------------------

def _route_text(i: int, target: str) -> str:
    return f"""apiVersion: {APPMESH}
kind: GatewayRoute
metadata: {{name: churn-{i:03d}, namespace: {NS}}}
spec:
  httpRoute:
    match: {{prefix: /churn-{i:03d}}}
    action: {{target: {{virtualService: {{virtualServiceRef: {{name: {target}}}}}}}}}
"""


def _split_text(w_product: int, w_review: int, with_service: bool = False) -> str:
    router = f"""apiVersion: {APPMESH}
kind: VirtualRouter
metadata: {{name: split-router, namespace: {NS}}}
spec:
  listeners: [{{portMapping: {{port: 8080, protocol: http}}}}]
  routes:
  - name: split
    httpRoute:
      match: {{prefix: /}}
      action:
        weightedTargets:
        - {{virtualNodeRef: {{name: product-service-vn}}, weight: {w_product}}}
        - {{virtualNodeRef: {{name: review-service-vn}}, weight: {w_review}}}
"""
    if not with_service:
        return router
    return router + f"""---
apiVersion: {APPMESH}
kind: VirtualService
metadata: {{name: split-service, namespace: {NS}}}
spec:
  awsName: split-service.{NS}.svc.cluster.local
  provider: {{virtualRouter: {{virtualRouterRef: {{name: split-router}}}}}}
---
apiVersion: {APPMESH}
kind: GatewayRoute
metadata: {{name: split-route, namespace: {NS}}}
spec:
  httpRoute:
    match: {{prefix: /split}}
    action: {{target: {{virtualService: {{virtualServiceRef: {{name: split-service}}}}}}}}
"""


class _Sampler:
    """RSS of one process every `interval` seconds, in a thread."""

    def __init__(self, pid: int, interval: float):
        self.pid, self.interval = pid, interval
        self.samples: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss")

    def _run(self) -> None:
        t0 = time.monotonic()
        while True:
            self.samples.append((round(time.monotonic() - t0, 2), round(_rss_mb(self.pid), 1)))
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> "_Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> bool:
        self._stop.set()
        self._thread.join(5)
        self.samples.append((self.samples[-1][0] if self.samples else 0, round(_rss_mb(self.pid), 1)))
        return False


def _gateway_routes(t) -> tuple[set, dict]:
    """From the gateway Envoy's config dump: the churn-route prefixes it serves, and the weights of
    the split router's route (cluster -> weight)."""
    dump = t.config_dump("appmesh-gateway")
    prefixes, weights = set(), {}
    for cfg in dump.get("configs", []):
        for rc in cfg.get("dynamic_route_configs", []):
            for vh in rc.get("route_config", {}).get("virtual_hosts", []):
                for r in vh.get("routes", []):
                    p = r.get("match", {}).get("prefix", "")
                    if p.startswith("/churn-"):
                        prefixes.add(p.rstrip("/"))
                    if r.get("name") != "split":
                        continue
                    action = r.get("route", {})
                    if action.get("weighted_clusters"):
                        weights = {c["name"]: c.get("weight", 0) for c in action["weighted_clusters"].get("clusters", [])}
                    elif action.get("cluster"):  # one target left (the other weighs 0): a plain cluster route
                        weights = {action["cluster"]: 100}
    return prefixes, weights


def scenario_churn(quick: bool = False, out=sys.stdout, sz: Sizes | None = None) -> dict:
    sz = sz or sizes(quick)
    t_start = time.monotonic()
    rng = random.Random(20260930)
    _say(out, f"reliability churn: {sz.churn_ops} apply/delete operations ({sz.churn_routes} gateway routes, "
              f"VirtualRouter weights) under {sz.workers} x {sz.rate:g} req/s on {', '.join(STABLE)}")
    res: dict = {"scenario": "churn", "ops": sz.churn_ops}
    with Lab("churn") as lab:
        t = lab.t
        t.apply(WALKTHROUGH)
        t.apply_text(_split_text(50, 50, with_service=True), name="split.yaml")
        _answering(t)
        host, port = _gateway(t)
        routes: dict = {}
        weights = (50, 50)
        latencies, kinds = [], Counter()
        with _Sampler(lab.daemon_pid, sz.rss_interval_s) as rss, \
                Load(host, port, workers=sz.workers, rate=sz.rate) as load:
            load.wait_clean()
            t_ops = time.monotonic()
            for k in range(sz.churn_ops + 1):
                x = rng.random()
                t0 = time.monotonic()
                if k == sz.churn_ops:  # the last operation sets weights a request can check: 100/0 or 0/100
                    weights = rng.choice([(100, 0), (0, 100)])
                    body = {"texts": [["split-router.yaml", _split_text(*weights)]]}
                    kind = "weights"
                elif x < 0.4:
                    i = rng.randrange(sz.churn_routes)
                    routes[i] = rng.choice(["product-service", "review-service"])
                    body = {"texts": [[f"churn-{i:03d}.yaml", _route_text(i, routes[i])]]}
                    kind = "apply route"
                elif x < 0.7:
                    i = rng.randrange(sz.churn_routes)
                    routes.pop(i, None)
                    body, kind = None, "delete route"
                    t.client.call("POST", "/v1/delete", {"keys": [["GatewayRoute", NS, f"churn-{i:03d}"]]})
                else:
                    weights = (w := rng.randint(0, 100), 100 - w)
                    if weights == (0, 0):
                        weights = (1, 99)
                    body = {"texts": [["split-router.yaml", _split_text(*weights)]]}
                    kind = "weights"
                if body is not None:
                    r = t.client.call("POST", "/v1/apply", body, ok=(200, 422))
                    assert not r.get("rejected") and "_status" not in r, r
                latencies.append(time.monotonic() - t0)
                kinds[kind] += 1
            t_last = time.monotonic()
            converge_s = _converged(t, 60)
            # the last applied state is what the gateway serves
            want_prefixes = {f"/churn-{i:03d}" for i in routes}

            def final():
                prefixes, got = _gateway_routes(t)
                assert prefixes == want_prefixes, (sorted(prefixes ^ want_prefixes)[:5], "config dump differs")
                nonzero = {("product" if "product-service" in c else "review"): w for c, w in got.items() if w}
                want = {k: w for k, w in zip(("product", "review"), weights) if w}
                assert nonzero == want, (nonzero, want)
            t.eventually(final, timeout=30, interval=0.1, what="the gateway's config dump showing the final state")
            served_s = time.monotonic() - t_last
            wrong = []
            for i in range(sz.churn_routes):
                r = t.curl(f"/churn-{i:03d}/x", quiet=True, timeout=5)
                if i in routes:
                    if r.status != 200 or r.json().get("service") != routes[i]:
                        wrong.append((i, r.status))
                elif r.status != 404:
                    wrong.append((i, r.status))
            expect = "product-service" if weights[0] else "review-service"
            split = Counter(t.curl("/split", quiet=True, timeout=5).json().get("service") for _ in range(20))
            time.sleep(0.3)
        lab.remember()
    totals = load.totals()
    samples = rss.samples
    start_mb, end_mb = samples[0][1], samples[-1][1]
    peak_mb = max(s[1] for s in samples)
    step = max(1, len(samples) // 20)
    lat = sorted(latencies)
    res.update(load=totals, op_kinds=dict(kinds), ops_per_s=round(len(lat) / (t_last - t_ops), 1),
               op_ms={"p50": round(lat[len(lat) // 2] * 1000, 1), "p99": round(lat[int(len(lat) * 0.99)] * 1000, 1),
                      "max": round(lat[-1] * 1000, 1)},
               converge_s=round(converge_s, 3), final_state_served_s=round(served_s, 3),
               final_routes=len(routes), final_weights=list(weights), wrong_answers=wrong,
               split_answers=dict(split),
               rss_mb={"start": start_mb, "peak": peak_mb, "end": end_mb,
                       "series": [s for s in samples[::step]]},
               leftover_processes=len(lab.leftovers))
    _say(out, f"  {len(lat)} operations ({dict(kinds)}) in {t_last - t_ops:.1f} s; apply/delete p50 "
              f"{res['op_ms']['p50']} ms, p99 {res['op_ms']['p99']} ms")
    _say(out, f"  load: {totals['requests']} requests, {totals['failed']} not 200 ({totals['outcomes']}); "
              f"p50 {totals['p50_ms']} ms, p99 {totals['p99_ms']} ms")
    _say(out, f"  after the last operation: every proxy ACKed in {converge_s:.2f} s, gateway served the final state "
              f"in {served_s:.2f} s; {len(routes)} routes, weights {weights}; wrong answers {len(wrong)}; "
              f"/split answered by {dict(split)}")
    _say(out, f"  daemon RSS: start {start_mb} MB, peak {peak_mb} MB, end {end_mb} MB")
    bound = start_mb + 50
    res["checks"] = [
        check("non-2xx on stable routes during churn", totals["failed"], "0", totals["failed"] == 0),
        check("every proxy ACKed the final version (s after the last operation)", round(converge_s, 3), "< 60 s",
              converge_s < 60),
        check("gateway config dump = last applied routes and weights (s after the last operation)",
              round(served_s, 3), "< 30 s", served_s < 30),
        check("churned routes answering as last applied", len(wrong), "0 wrong", not wrong),
        check("split route follows the last weights", dict(split), f"20 x {expect}",
              split == Counter({expect: 20})),
        check("daemon RSS end <= start + 50 MB", {"start": start_mb, "peak": peak_mb, "end": end_mb},
              f"end <= {bound:.0f} MB", end_mb <= bound if not quick else None,
              "" if not quick else "judged in the full run only (the quick run is too short for a trend)"),
        check("processes left behind after teardown", len(lab.leftovers), "0", not lab.leftovers),
    ]
    res["seconds"] = round(time.monotonic() - t_start, 1)
    return res


# ---------------------------------------------------------------------------------------------
# 3. Crash safety of the store
# ---------------------------------------------------------------------------------------------

CRASH_NS = "crash"


def _crash_base() -> str:
    return f"""apiVersion: v1
kind: Namespace
metadata:
  name: {CRASH_NS}
  labels: {{mesh: crash-mesh, gateway: crash-gw}}
---
apiVersion: {APPMESH}
kind: Mesh
metadata: {{name: crash-mesh}}
spec:
  namespaceSelector: {{matchLabels: {{mesh: crash-mesh}}}}
---
apiVersion: {APPMESH}
kind: VirtualGateway
metadata: {{name: crash-gw, namespace: {CRASH_NS}}}
spec:
  namespaceSelector: {{matchLabels: {{gateway: crash-gw}}}}
  podSelector: {{matchLabels: {{app: crash-gw}}}}
  listeners: [{{portMapping: {{port: 8088, protocol: http}}}}]
"""


def _crash_batch(label: str, n: int) -> tuple[str, list]:
    """n documents (a quarter virtual nodes, a quarter virtual services, half gateway routes), all
    labelled trial=<label>; returns the text and their keys."""
    q = max(1, n // 4)
    docs, keys = [], []
    for j in range(q):
        docs.append(f"""apiVersion: {APPMESH}
kind: VirtualNode
metadata: {{name: crash-vn-{j}, namespace: {CRASH_NS}, labels: {{trial: "{label}"}}}}
spec:
  podSelector: {{matchLabels: {{app: crash-vn-{j}}}}}
  listeners: [{{portMapping: {{port: 8080, protocol: http}}}}]
  serviceDiscovery: {{dns: {{hostname: crash-vn-{j}.{CRASH_NS}.svc.cluster.local}}}}
""")
        keys.append(("VirtualNode", CRASH_NS, f"crash-vn-{j}"))
    for j in range(q):
        docs.append(f"""apiVersion: {APPMESH}
kind: VirtualService
metadata: {{name: crash-vs-{j}, namespace: {CRASH_NS}, labels: {{trial: "{label}"}}}}
spec:
  awsName: crash-vs-{j}.{CRASH_NS}.svc.cluster.local
  provider: {{virtualNode: {{virtualNodeRef: {{name: crash-vn-{j}}}}}}}
""")
        keys.append(("VirtualService", CRASH_NS, f"crash-vs-{j}"))
    for j in range(n - 2 * q):
        docs.append(f"""apiVersion: {APPMESH}
kind: GatewayRoute
metadata: {{name: crash-gr-{j}, namespace: {CRASH_NS}, labels: {{trial: "{label}"}}}}
spec:
  httpRoute:
    match: {{prefix: /crash-{j:03d}-{label}}}
    action: {{target: {{virtualService: {{virtualServiceRef: {{name: crash-vs-{j % q}}}}}}}}}
""")
        keys.append(("GatewayRoute", CRASH_NS, f"crash-gr-{j}"))
    return "---\n".join(docs), keys


def _in_batch(kind: str, name: str) -> bool:
    """A record of the batch (_crash_batch), not of the base (_crash_base)."""
    return kind in ("VirtualNode", "VirtualService", "GatewayRoute") and \
        name.startswith(("crash-vn-", "crash-vs-", "crash-gr-"))


def _batch_on_disk(db: Path) -> tuple[str, Counter]:
    """With the daemon dead: PRAGMA integrity_check and the trial labels of the batch's records."""
    from ..store import Store
    store = Store(db)
    try:
        integrity = store.integrity_check()
        labels = Counter(((r.doc.get("metadata") or {}).get("labels") or {}).get("trial")
                         for r in store.list(namespace=CRASH_NS) if _in_batch(r.kind, r.name))
    finally:
        store.close()
    return integrity, labels


def scenario_crash(quick: bool = False, out=sys.stdout, sz: Sizes | None = None) -> dict:
    from ..runtime.client import LabError
    sz = sz or sizes(quick)
    t_start = time.monotonic()
    rng = random.Random(1234)
    n = sz.crash_docs
    _say(out, f"reliability crash: {sz.crash_trials} trials, each an apply of {n} documents with the daemon "
              "SIGKILLed at a random point, then integrity and all-or-nothing checked")
    res: dict = {"scenario": "crash", "trials": sz.crash_trials, "documents": n}
    outcomes, integrity_bad, answered, trials = Counter(), 0, 0, []
    with Lab("crash") as lab:
        t, c = lab.t, lab.t.client
        t.apply_text(_crash_base(), name="crash-base.yaml", wait=False)
        db = lab.home / "state.db"
        _, keys = _crash_batch("calibrate", n)
        # how long an apply of the batch takes (creating, then changing every document)
        durations = []
        for label in ("c0", "c1"):
            t0 = time.monotonic()
            r = c.call("POST", "/v1/apply", {"texts": [["batch.yaml", _crash_batch(label, n)[0]]]}, ok=(200, 422))
            assert not r.get("rejected"), r["problems"][:3]
            durations.append(time.monotonic() - t0)
        apply_s = max(durations)
        for trial in range(sz.crash_trials):
            label = f"t{trial}"
            creating = trial % 2 == 0
            if creating:  # the batch does not exist: all = every document created, none = none of them
                c.call("POST", "/v1/delete", {"keys": [list(k) for k in keys]})
                prev = None
            else:  # the batch exists with label pre-<trial>: all = every document changed, none = none
                prev = f"pre{trial}"
                r = c.call("POST", "/v1/apply", {"texts": [["batch.yaml", _crash_batch(prev, n)[0]]]}, ok=(200, 422))
                assert not r.get("rejected")
            text = _crash_batch(label, n)[0]
            pid = lab.daemon_pid
            lab.remember()
            delay = rng.uniform(0, apply_s * 1.1)
            timer = threading.Timer(delay, lambda p=pid: os.kill(p, signal.SIGKILL))
            t0 = time.monotonic()
            timer.start()
            try:
                c.call("POST", "/v1/apply", {"texts": [["batch.yaml", text]]}, timeout=120, ok=(200, 422))
                got_answer = True
            except LabError:
                got_answer = False
            timer.join()
            deadline = time.monotonic() + 5
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.01)
            _reap(pid)
            answered += got_answer
            integrity, labels = _batch_on_disk(db)
            integrity_bad += integrity != "ok"
            if creating:
                outcome = "none" if not labels else ("all" if labels == Counter({label: n}) else "partial")
            else:
                outcome = "none" if labels == Counter({prev: n}) else ("all" if labels == Counter({label: n})
                                                                       else "partial")
            outcomes[outcome] += 1
            c.paths.daemon_info.unlink(missing_ok=True)
            t.up()
            # the restarted daemon sees what is on disk
            items = c.call("GET", f"/v1/resources?namespace={CRASH_NS}")["items"]
            seen = Counter(((i["doc"].get("metadata") or {}).get("labels") or {}).get("trial")
                           for i in items if _in_batch(i["kind"], i["name"]))
            trials.append({"trial": trial, "creating": creating, "kill_after_s": round(delay, 3),
                           "answered_before_kill": got_answer, "outcome": outcome, "integrity": integrity,
                           "daemon_agrees": seen == labels})
        lab.remember()
    disagree = sum(1 for x in trials if not x["daemon_agrees"])
    res.update(apply_s=round(apply_s, 3), outcomes=dict(outcomes), integrity_not_ok=integrity_bad,
               answered_before_kill=answered, daemon_disagrees=disagree, leftover_processes=len(lab.leftovers),
               trials_detail=trials if not quick else trials[:10])
    _say(out, f"  an apply of {n} documents takes {apply_s:.2f} s; kills uniformly in [0, {apply_s * 1.1:.2f}] s")
    _say(out, f"  outcomes: {dict(outcomes)}; integrity_check not ok: {integrity_bad}; answered before the kill: "
              f"{answered}; restarted daemon disagreeing with the disk: {disagree}")
    res["checks"] = [
        check("partial applies after a SIGKILL", outcomes.get("partial", 0), "0", outcomes.get("partial", 0) == 0),
        check("PRAGMA integrity_check not ok", integrity_bad, "0", integrity_bad == 0),
        check("restarted daemon serves what is on disk", disagree, "0 differ", disagree == 0),
        check("trials: all / none", f"{outcomes.get('all', 0)} / {outcomes.get('none', 0)}", "reported", None,
              "both sides of the commit were hit" if outcomes.get("all") and outcomes.get("none") else
              "the kills all landed on one side of the commit"),
        check("processes left behind after teardown", len(lab.leftovers), "0", not lab.leftovers),
    ]
    res["seconds"] = round(time.monotonic() - t_start, 1)
    return res


# ---------------------------------------------------------------------------------------------
# 4. Hostile input
# ---------------------------------------------------------------------------------------------

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


def _send(port: int | str | Path, method: str, path: str, headers: dict | None = None, body: bytes | None = None,
          timeout: float = 60) -> tuple:
    """(status or None, headers, body or error text), over a fresh connection to 127.0.0.1:`port`, or
    to a Unix socket when `port` is its path."""
    from ..runtime.sockets import UnixHTTPConnection
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
        from ..api.credentials import load_profile
        from ..api.sigv4 import sign
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
        from ..model import validate_texts
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
        from ..files import read_texts
        from ..model import validate_texts
        _WALKTHROUGH_RESOURCES.extend(validate_texts(read_texts([ROOT / WALKTHROUGH])[0]).resources)
    return _WALKTHROUGH_RESOURCES


def validator_case(name: str, texts, expect: str = "rejected") -> dict:
    """The validator alone (in this process, on the walkthrough's world as the lab has it): never
    raises, answers fast, rejects clearly."""
    from ..model import validate_texts
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
    ok = not crash and per_file < 2.0 and (expect != "rejected" or (rejected and clear))
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
    from ..model import validate_texts
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


# -- seeded random mutations of valid manifests (the dependency-free fuzzer of the bench) --------

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


# -- hypothesis: generated documents and API requests --------------------------------------------

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
    from ..targets.base import TargetError
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


# ---------------------------------------------------------------------------------------------
# 5. Exposure
# ---------------------------------------------------------------------------------------------

def _decode_addr(hexaddr: str) -> str:
    host, _, _ = hexaddr.partition(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    return socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))


def listening_sockets() -> list:
    """(proto, address, port, inode) of every listening TCP socket and bound UDP socket."""
    out = []
    for table, state in (("tcp", "0A"), ("tcp6", "0A"), ("udp", "07"), ("udp6", "07")):
        try:
            lines = open(f"/proc/net/{table}").read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if parts[3] == state:
                out.append((table, _decode_addr(parts[1]), int(parts[1].split(":")[1], 16), parts[9]))
    return out


def _socket_inodes(pid: int) -> set:
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    except OSError:
        pass  # the process is gone
    return inodes


def _loopback(addr: str) -> bool:
    ip = ipaddress.ip_address(addr)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _key_files(roots, limit: int = 200_000) -> dict:
    """path -> (mtime_ns, mode) of every *.key file under `roots` (bounded walk)."""
    found, seen = {}, 0
    for root in roots:
        for d, dirs, files in os.walk(root, onerror=lambda e: None):
            dirs[:] = [x for x in dirs if x not in (".venv", ".git", "node_modules", "__pycache__")
                       and not x.startswith(".venv-")]   # the version matrix's environments
            seen += len(files) + len(dirs)
            if seen > limit:
                return found
            for f in files:
                if f.endswith(".key"):
                    p = os.path.join(d, f)
                    try:
                        st = os.stat(p)
                        found[p] = (st.st_mtime_ns, st.st_mode & 0o777)
                    except OSError:
                        pass  # removed while the walk ran
    return found


def _lab_home_of(path: str) -> str | None:
    """The lab home a key file lives in (<home>/certs/...), or None."""
    p = Path(path)
    for parent in p.parents:
        if parent.name == "certs" and (parent.parent / "state.db").exists():
            return str(parent.parent)
    return None


def _wrong_ca_pem() -> tuple:
    """A CA nobody trusts and a client certificate it signed (PEM bytes; nothing written)."""
    from ..runtime import pki
    ca = pki.make_ca("not the lab CA", 1)
    leaf, key = pki.make_leaf(ca, "gateway", 1, ["gateway.ex-mtls-mesh.svc.cluster.local"], role="client")
    return pki.pem(ca[0]), pki.pem(leaf) + pki.key_pem(key)


def _tls_get(port: int, ctx: ssl.SSLContext, server_hostname: str, path: str = "/") -> str:
    """'200' etc. on success; the error class name when the handshake or the request fails."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=server_hostname) as s:
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: {server_hostname}\r\nConnection: close\r\n\r\n".encode())
                data = s.recv(4096)
                if not data:
                    return "closed"
                m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
                return m.group(1).decode() if m else "garbage"
    except ssl.SSLCertVerificationError:
        return "SSLCertVerificationError"
    except ssl.SSLError as exc:
        return f"SSLError({exc.reason})"
    except OSError as exc:
        return type(exc).__name__


def scenario_exposure(quick: bool = False, out=sys.stdout, sz: Sizes | None = None) -> dict:
    t_start = time.monotonic()
    _say(out, "reliability exposure: listening addresses, Envoy admin through the gateway, TLS and mTLS with wrong "
              "certificates, key files and state file modes")
    res: dict = {"scenario": "exposure"}
    scan_roots = [tempfile.gettempdir(), str(ROOT)]
    keys_before = _key_files(scan_roots)
    checks = []
    with Lab("exposure") as lab:
        t = lab.t
        t.apply(WALKTHROUGH)
        t.apply("manifests/examples/tls-gateway/")
        t.apply("manifests/examples/mtls-mesh/")
        _answering(t)
        lab.remember()
        home = lab.home
        # -- loopback only ------------------------------------------------------------------------
        ports = {k[len("port:"):]: v for k, v in _kv(home, "port:").items()}
        socks = listening_sockets()
        by_port: dict = {}
        for proto, addr, port, inode in socks:
            by_port.setdefault(port, []).append((proto, addr))
        lab_ports_open = {k: p for k, p in ports.items() if p in by_port}
        exposed_ports = {k: by_port[p] for k, p in lab_ports_open.items() if not all(_loopback(a) for _, a in by_port[p])}
        pids = _lab_pids(home)
        inodes = set().union(*(_socket_inodes(p) for p in pids)) if pids else set()
        owned = [(proto, addr, port) for proto, addr, port, inode in socks if inode in inodes]
        exposed_owned = [s for s in owned if not _loopback(s[1])]
        res["listen"] = {"lab_ports": len(ports), "lab_ports_listening": len(lab_ports_open),
                         "sockets_of_lab_processes": len(owned), "processes": len(pids)}
        _say(out, f"  {len(lab_ports_open)} of the store's {len(ports)} port:* entries listen; the lab's {len(pids)} "
                  f"processes hold {len(owned)} listening sockets; not on loopback: "
                  f"{len(exposed_ports) + len(exposed_owned)}")
        checks.append(check("lab ports (kv port:*) listening beyond loopback", len(exposed_ports), "0",
                            not exposed_ports, json.dumps(exposed_ports)[:200] if exposed_ports else ""))
        checks.append(check("listening sockets of lab processes beyond loopback", len(exposed_owned), "0",
                            not exposed_owned, str(exposed_owned[:5]) if exposed_owned else ""))
        checks.append(check("lab ports found listening", len(lab_ports_open), "> 0", len(lab_ports_open) > 0))
        # -- what listens on TCP at all, and the Unix sockets --------------------------------------
        st = t.status()
        daemon_pid = st["daemon"]["pid"]
        api_port = int(st["endpoints"]["appmesh_api"].rsplit(":", 1)[1])
        data_plane = {p for k, p in ports.items() if k.split(":", 1)[0] in ("svc", "ingress", "egress", "app")}
        daemon_tcp = sorted({port for proto, addr, port, inode in socks
                             if proto.startswith("tcp") and inode in _socket_inodes(daemon_pid)})
        other_tcp = sorted({port for proto, addr, port, inode in socks if proto.startswith("tcp") and inode in inodes
                            and inode not in _socket_inodes(daemon_pid)} - data_plane)
        stale_keys = sorted(k for k in ports if k == "xds" or k.startswith("admin:"))
        socks_dir = lab.t.client.sockets
        unix = [socks_dir.api, socks_dir.xds] + [socks_dir.admin(p["namespace"], p["name"])
                                                 for p in t.pods() if p["proxy"]]
        modes = {}
        for path in unix:
            try:
                sst = os.stat(path)
                modes[path.name] = (oct(sst.st_mode & 0o777) if stat.S_ISSOCK(sst.st_mode) else "not a socket",
                                    sst.st_uid == os.getuid())
            except OSError as exc:
                modes[path.name] = (type(exc).__name__, False)
        bad_modes = {k: v for k, v in modes.items() if v != ("0o600", True)}
        dir_mode = oct(os.stat(socks_dir.dir).st_mode & 0o777)
        refused = {}
        for variant, headers in (("Origin", {"Host": f"127.0.0.1:{api_port}", "Origin": "http://evil.example",
                                             "Content-Type": "text/plain"}),
                                 ("Host", {"Host": f"evil.example:{api_port}", "Content-Type": "text/plain"})):
            refused[variant] = _send(api_port, "POST", "/v20190125/meshes", headers, b'{"meshName": "x"}',
                                     timeout=10)[0]
        _say(out, f"  TCP: the daemon listens on {daemon_tcp} (App Mesh API {api_port}); Envoys and apps on data-plane "
                  f"ports only ({len(other_tcp)} others: {other_tcp[:5]}); Unix sockets {len(unix)} in {dir_mode}: "
                  f"{len(bad_modes)} not 0600/yours; browser-shaped POSTs to the API: {refused}")
        checks.append(check("TCP ports the daemon listens on", daemon_tcp, f"[{api_port}] (the App Mesh API)",
                            daemon_tcp == [api_port]))
        checks.append(check("TCP ports of Envoys and apps outside the data plane", len(other_tcp), "0",
                            not other_tcp, str(other_tcp[:5]) if other_tcp else "admin and xDS are Unix sockets"))
        checks.append(check("admin or xDS ports in the store", len(stale_keys), "0", not stale_keys,
                            ", ".join(stale_keys[:5])))
        checks.append(check("control, xDS and Envoy admin sockets not 0600 or not the owner's", len(bad_modes), "0",
                            not bad_modes and len(modes) >= 3, json.dumps(bad_modes)[:200] if bad_modes
                            else f"{len(modes)} sockets"))
        checks.append(check("folder of the sockets", dir_mode, "0o700", dir_mode == "0o700"))
        checks.append(check("App Mesh API: text/plain POST with a foreign Origin / Host", refused, "403 / 403",
                            refused == {"Origin": 403, "Host": 403}))
        # -- admin through the gateway ------------------------------------------------------------
        gw = _pod(t, "appmesh-gateway")
        envoy = _container(gw, "envoy")
        admin_sock = t.admin_socket(gw["name"])
        admin = 9901  # Envoy's admin port in a pod: what a request smuggled through the gateway would name
        host, gport = _gateway(t)
        assert _send(admin_sock, "GET", "/ready")[0] == 200  # the admin answers on its own socket
        paths = ["/config_dump", "/stats", "/stats/prometheus", "/server_info", "/clusters", "/listeners", "/ready",
                 "/certs", "/memory", "/runtime", "/runtime_modify?re2.max_program_size.error_level=1",
                 "/logging?level=trace", "/healthcheck/fail", "/drain_listeners", "/reset_counters",
                 "/cpuprofiler?enable=y", "/heapprofiler?enable=y", "/quitquitquit", "/"]
        hosts = [None, f"127.0.0.1:{admin}", f"localhost:{admin}", f"[::1]:{admin}", "127.0.0.1"]
        answers = Counter()
        leaked = []
        for p in paths:
            for hh in hosts:
                for method in ("GET", "POST"):
                    status, _, body = _send(gport, method, p, {"Host": hh} if hh else {}, b"" if method == "POST" else None,
                                            timeout=10)
                    answers[status] += 1
                    if status != 404 or b"configs" in body or b"envoy" in body.lower()[:200]:
                        leaked.append((method, p, hh, status))
        for raw in (f"GET http://127.0.0.1:{admin}/quitquitquit HTTP/1.1\r\nHost: 127.0.0.1:{admin}\r\n"
                    "Connection: close\r\n\r\n",
                    f"POST http://127.0.0.1:{admin}/quitquitquit HTTP/1.1\r\nHost: 127.0.0.1:{admin}\r\n"
                    "Content-Length: 0\r\nConnection: close\r\n\r\n",
                    f"CONNECT 127.0.0.1:{admin} HTTP/1.1\r\nHost: 127.0.0.1:{admin}\r\nConnection: close\r\n\r\n"):
            answer = _raw(gport, raw.encode(), half_close=False)
            m = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
            status = int(m.group(1)) if m else None
            answers[status] += 1
            if status not in (400, 403, 404, 405) or b"configs" in answer:
                leaked.append((raw.split(" ")[0], "absolute-form/CONNECT", admin, status))
        time.sleep(0.3)
        gw_after = next(p for p in t.pods(NS) if p["name"] == gw["name"])
        still = _container(gw_after, "envoy")
        alive = still["pid"] == envoy["pid"] and still["restarts"] == envoy["restarts"] and pid_alive(envoy["pid"])
        products = t.curl("/products", quiet=True).status
        n_admin = sum(answers.values())
        _say(out, f"  {n_admin} requests for admin paths through the gateway: {dict(answers)}; reached admin: "
                  f"{len(leaked)}; gateway Envoy same pid after: {alive}; /products {products}")
        checks.append(check("admin paths through the gateway answered other than 404", len(leaked), "0", not leaked,
                            str(leaked[:5]) if leaked else f"{n_admin} requests, Host headers naming the admin port"))
        checks.append(check("gateway Envoy alive (same pid, no restart) after them", alive, "true", alive))
        checks.append(check("/products after them", products, "200", products == 200))
        # -- TLS at the gateway -------------------------------------------------------------------
        ca_file = home / "certs" / "ca" / "ca.crt"
        wrong_ca, wrong_client = _wrong_ca_pem()
        tls_port = _gateway(t, "gateway_ex-tls-gateway")[1]
        right = ssl.create_default_context(cafile=str(ca_file))
        wrong = ssl.create_default_context(cadata=wrong_ca.decode())
        for ctx in (right, wrong):
            ctx.verify_flags |= ssl.VERIFY_X509_STRICT  # as Python 3.13's default context does
        r_right = _tls_get(tls_port, right, "localhost")
        r_wrong = _tls_get(tls_port, wrong, "localhost")
        r_name = _tls_get(tls_port, right, "evil.example")
        plain = _send(tls_port, "GET", "/", timeout=5)[0]
        _say(out, f"  TLS gateway: right CA -> {r_right}; wrong CA -> {r_wrong}; right CA, wrong name -> {r_name}; "
                  f"plain HTTP -> {plain}")
        checks.append(check("TLS gateway with the lab CA", r_right, "200", r_right == "200"))
        checks.append(check("TLS gateway with a wrong CA", r_wrong, "SSLCertVerificationError",
                            r_wrong == "SSLCertVerificationError"))
        checks.append(check("TLS gateway for a name not in its certificate", r_name, "SSLCertVerificationError",
                            r_name == "SSLCertVerificationError"))
        checks.append(check("plain HTTP to the TLS listener", plain, "no HTTP answer", plain is None))
        # -- mTLS at the accounts sidecar ---------------------------------------------------------
        nid = next(k for k in ports if k.startswith("ingress:") and "accounts" in k)
        ingress = ports[nid]
        cdir = lab.dir / "client"
        cdir.mkdir(mode=0o700)
        wrong_pem = cdir / "wrong-client.pem"
        wrong_pem.write_bytes(wrong_client)
        os.chmod(wrong_pem, 0o600)
        sni = "accounts.ex-mtls-mesh.svc.cluster.local"
        no_cert = ssl.create_default_context(cafile=str(ca_file))
        no_cert.check_hostname = False
        bad_cert = ssl.create_default_context(cafile=str(ca_file))
        bad_cert.check_hostname = False
        bad_cert.load_cert_chain(str(wrong_pem))
        good = ssl.create_default_context(cafile=str(ca_file))
        good.check_hostname = False
        good.load_cert_chain(str(home / "certs" / "gateway" / "tls.crt"), str(home / "certs" / "gateway" / "tls.key"))
        m_none = _tls_get(ingress, no_cert, sni)
        m_bad = _tls_get(ingress, bad_cert, sni)
        m_good = _tls_get(ingress, good, sni)
        via_gw = t.curl("/", quiet=True, gateway="gateway_ex-mtls-mesh").status
        _say(out, f"  mTLS sidecar (accounts): no client certificate -> {m_none}; certificate from a wrong CA -> "
                  f"{m_bad}; the gateway's certificate -> {m_good}; through the gateway -> {via_gw}")
        refused = lambda r: r not in ("200",) and not r.startswith("4") and not r.startswith("5")  # noqa: E731
        checks.append(check("mTLS sidecar without a client certificate", m_none, "refused", refused(m_none)))
        checks.append(check("mTLS sidecar with a certificate from a wrong CA", m_bad, "refused", refused(m_bad)))
        checks.append(check("mTLS sidecar with the gateway's certificate", m_good, "HTTP answer",
                            m_good.isdigit()))
        checks.append(check("mTLS example through its gateway", via_gw, "200", via_gw == 200))
        # -- secrets and state files ----------------------------------------------------------------
        keys_after = _key_files(scan_roots)
        new = {p: v for p, v in keys_after.items() if keys_before.get(p) != v}
        mine = {p: v for p, v in new.items() if p.startswith(str(home) + os.sep)}
        mine_bad = {p: oct(v[1]) for p, v in mine.items()
                    if not p.startswith(str(home / "certs") + os.sep) or v[1] != 0o600}
        in_repo = [p for p in new if p.startswith(str(ROOT) + os.sep)]
        elsewhere = [p for p in new if p not in mine and p not in in_repo]
        other_labs = [p for p in elsewhere if _lab_home_of(p)]
        stray = [p for p in elsewhere if not _lab_home_of(p)]
        all_keys_home = {p: oct(v[1]) for p, v in keys_after.items() if p.startswith(str(home) + os.sep)}
        _say(out, f"  key files: {len(mine)} new under this lab's home ({len(mine_bad)} outside certs/ or not 0600); "
                  f"{len(in_repo)} new in the repository; elsewhere under {tempfile.gettempdir()}: {len(other_labs)} in "
                  f"other lab homes (concurrent runs), {len(stray)} not in any lab home")
        checks.append(check("key files of this lab outside <home>/certs or not 0600", len(mine_bad), "0",
                            not mine_bad and bool(mine), json.dumps(mine_bad)[:200] if mine_bad else
                            f"{len(all_keys_home)} keys, all 0600 under certs/"))
        checks.append(check("new key files in the repository", len(in_repo), "0", not in_repo, str(in_repo[:3])))
        checks.append(check(f"new key files under {tempfile.gettempdir()} outside any lab home", len(stray), "0",
                            None, ("not judged: other people's test runs share this directory; " + str(stray[:3]))
                            if stray else "none"))
        modes = {}
        for f in sorted(home.rglob("*")):
            try:
                modes[str(f.relative_to(home))] = os.stat(f).st_mode & 0o777
            except OSError:
                continue
        home_mode = os.stat(home).st_mode & 0o777
        db_modes = {k: oct(v) for k, v in modes.items() if k.startswith("state.db")}
        world_readable = sorted(k for k, v in modes.items() if v & 0o004 and not k.endswith(".crt"))
        _say(out, f"  home {oct(home_mode)}; {db_modes}; files readable by others (certificates aside): "
                  f"{len(world_readable)} {world_readable[:5]}")
        checks.append(check("lab home mode", oct(home_mode), "0o700", home_mode == 0o700))
        checks.append(check("state.db (and -wal, -shm) readable by others", db_modes, "0o600",
                            all(int(v, 8) & 0o077 == 0 for v in db_modes.values())))
        checks.append(check("other files under the home readable by others", len(world_readable), "0 (home is 0700 anyway)",
                            not world_readable, ", ".join(world_readable[:5])))
        lab.remember()
    checks.append(check("processes left behind after teardown", len(lab.leftovers), "0", not lab.leftovers))
    res["checks"] = checks
    res["seconds"] = round(time.monotonic() - t_start, 1)
    return res


# ---------------------------------------------------------------------------------------------
# The run, and the results page
# ---------------------------------------------------------------------------------------------

RUNNERS = {"faults": scenario_faults, "churn": scenario_churn, "crash": scenario_crash,
           "hostile": scenario_hostile, "exposure": scenario_exposure}


def _envoy_version() -> str | None:
    try:
        import subprocess

        from ..runtime.envoy import find_envoy
        text = subprocess.run([str(find_envoy()), "--version"], capture_output=True, text=True, timeout=20).stdout
        m = re.search(r"version: \S+/(\d+\.\d+\.\d+)", text)
        return m.group(1) if m else None
    except Exception:  # the version is a label only
        return None


def _cpu_model() -> str | None:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass  # no /proc: not Linux
    return platform.processor() or None


def _memory_gb() -> float | None:
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass  # no /proc: not Linux
    return None


def run(quick: bool = False, scenarios: list[str] | None = None, out=sys.stdout) -> dict:
    """Run the scenarios (all by default), print what each did and measured, then one JSON line."""
    names = list(scenarios or SCENARIOS)
    unknown = [n for n in names if n not in RUNNERS]
    if unknown:
        from ..errors import UsageError  # the CLI prints it as a usage error, without a traceback
        raise UsageError(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    t0 = time.monotonic()
    results, errors = {}, {}
    for name in names:
        try:
            results[name] = RUNNERS[name](quick=quick, out=out)
        except Exception as exc:  # one scenario failing must not hide the others' figures
            traceback.print_exc(file=out)
            errors[name] = f"{type(exc).__name__}: {exc}"
            results[name] = {"scenario": name, "error": errors[name],
                             "checks": [check(f"{name} ran to the end", False, "true", False, errors[name])]}
        _say(out)
    judged = [c for r in results.values() for c in r.get("checks", []) if c["met"] is not None]
    record = {"bench": "reliability", "quick": quick, "scenarios": results,
              "met": all(c["met"] for c in judged) and not errors,
              "unmet": [c["name"] for c in judged if not c["met"]],
              "seconds": round(time.monotonic() - t0, 1),
              "machine": {"cores": os.cpu_count(), "cpu": _cpu_model(), "memory_gb": _memory_gb(),
                          "python": platform.python_version(), "envoy": _envoy_version(),
                          "system": f"{platform.system()} {platform.release()}"},
              "date": time.strftime("%Y-%m-%d", time.gmtime())}
    _say(out, f"reliability: {len(judged) - len(record['unmet'])}/{len(judged)} targets met in {record['seconds']} s"
              + (f"; not met: {', '.join(record['unmet'])}" if record["unmet"] else ""))
    print(json.dumps(record, default=str), file=out, flush=True)
    return record


BEGIN, END = "<!-- reliability:begin -->", "<!-- reliability:end -->"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, dict):
        return ", ".join(f"{k} {_fmt(x)}" for k, x in v.items())
    return str(v)


def write_results_page(record: dict, path: str | Path = ROOT / "docs" / "reliability.md") -> Path:
    """Write the run as a Markdown section of `path` (between reliability markers; the rest of an
    existing page is kept)."""
    path = Path(path)
    m = record.get("machine", {})
    lines = [BEGIN, "## Reliability results", "",
             "<!-- generated by lab.bench.reliability.write_results_page from one run of "
             "`appmesh-lab bench reliability`; DO NOT EDIT by hand -->", "",
             f"Run of {record.get('date', '?')}, {'quick (reduced) run' if record.get('quick') else 'full run'}, "
             f"{record.get('seconds', '?')} s on {m.get('cores', '?')} cores"
             + (f" ({m['cpu']})" if m.get("cpu") else "") + (f", {m['memory_gb']} GB RAM" if m.get("memory_gb") else "")
             + f", {m.get('system', '')}, Python "
             f"{m.get('python', '?')}, Envoy {m.get('envoy') or '?'}. "
             f"Targets met: **{'all' if record.get('met') else 'not all'}**"
             + (f" (not met: {', '.join(record['unmet'])})" if record.get("unmet") else "") + ".", "",
             "Reproduce:", "", "```sh",
             f"python -m lab.bench.reliability{' --quick' if record.get('quick') else ''} --write docs/reliability.md"
             "   # this page",
             "appmesh-lab bench reliability            # the full run (10,000 churn operations, 100 crash trials, 30 s daemon outages)",
             "appmesh-lab bench reliability --quick    # the reduced run",
             "scripts/test.sh tests/reliability        # smaller again, with the targets asserted",
             "```", "",
             "`met`: yes/no for a target; a dash means the figure is reported, not judged (the note says why).", ""]
    titles = {"faults": "Process faults under load", "churn": "Configuration churn under load",
              "crash": "Crash safety of the store", "hostile": "Hostile input", "exposure": "Exposure"}
    for name, r in record.get("scenarios", {}).items():
        lines += [f"### {titles.get(name, name)}", "",
                  f"`appmesh-lab bench reliability{' --quick' if record.get('quick') else ''} --scenario {name}`", ""]
        if name == "faults" and "faults" in r:
            lines += ["| fault | requests | failed | failed after one retry | outage s | serving again (Envoy, app) / proxies reconnected (daemon) s |",
                      "|---|---:|---:|---:|---:|---:|"]
            for k, f in r["faults"].items():
                back = f.get("serving_again_s", f.get("proxies_reconnected_s", ""))
                lines.append(f"| {k.replace('_', ' ')} | {f['requests']} | {f['failed']} | {f['failed_after_retry']} | "
                             f"{f['last_failure_s']} | {back} |")
            lines.append("")
        if name == "churn" and "rss_mb" in r:
            lines += [f"{r['ops']} operations ({_fmt(r['op_kinds'])}), {r['ops_per_s']} per second; apply/delete "
                      f"p50 {r['op_ms']['p50']} ms, p99 {r['op_ms']['p99']} ms. Load: {_fmt(r['load'])}. Daemon RSS "
                      f"MB: {_fmt({k: v for k, v in r['rss_mb'].items() if k != 'series'})}; over the run "
                      f"(seconds: MB) {', '.join(f'{t:g}: {m:g}' for t, m in r['rss_mb'].get('series', []))}. "
                      f"After the last operation every proxy ACKed in {r['converge_s']} s and the gateway served the "
                      f"final state ({r['final_routes']} churned routes, weights {r['final_weights']}) in "
                      f"{r['final_state_served_s']} s.", ""]
        if name == "crash" and "outcomes" in r:
            lines += [f"{r['trials']} trials of {r['documents']} documents; an apply takes {r['apply_s']} s; "
                      f"outcomes {_fmt(r['outcomes'])}.", ""]
        if name == "hostile" and "api" in r:
            lines += [f"{r['corpus']} corpus entries; validator {_fmt(r['validator'])}; daemon API {_fmt(r['api'])}; "
                      f"mutations {_fmt(r['fuzz'])}; hypothesis "
                      f"{_fmt({k: v for k, v in r.get('hypothesis', {}).items()})}.", ""]
        if r.get("error"):
            lines += [f"The scenario stopped: `{r['error']}`", ""]
        lines += ["| check | measured | target | met | note |", "|---|---|---|---|---|"]
        for c in r.get("checks", []):
            met = "-" if c["met"] is None else ("yes" if c["met"] else "**no**")
            note = str(c.get("note", "")).replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {c['name']} | {_fmt(c['value']).replace('|', '/')} | {c['target']} | {met} | {note} |")
        lines += ["", f"({r.get('seconds', '?')} s)", ""]
    lines.append(END)
    section = "\n".join(lines) + "\n"
    if path.exists():
        old = path.read_text()
        if BEGIN in old and END in old:
            text = old[:old.index(BEGIN)] + section + old[old.index(END) + len(END):].lstrip("\n")
        else:
            text = old.rstrip("\n") + "\n\n" + section
    else:
        text = ("# Reliability\n\nHow the local lab behaves under process faults, configuration churn, crashes, "
                "hostile input, and what it exposes. The figures below come from `lab/bench/reliability.py`.\n\n"
                + section)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.bench.reliability", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="the reduced run")
    ap.add_argument("--scenario", action="append", choices=SCENARIOS, help="run only these (repeatable)")
    ap.add_argument("--write", metavar="PATH", help="also write the results page (e.g. docs/reliability.md)")
    args = ap.parse_args(argv)
    record = run(quick=args.quick, scenarios=args.scenario)
    if args.write:
        write_results_page(record, args.write)
    return 0 if record["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
